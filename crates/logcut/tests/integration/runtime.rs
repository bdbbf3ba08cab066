//! One runtime for many logs: a bounded number of threads, every log's
//! records exactly once.

use std::path::Path;

use logcut::{Appender, Fsync, Mode, Runtime};

use crate::kit::{TempDir, check_records, child_env, read_log, record, run_child_test, verify_ok};

/// The threads of this process (`/proc/self/task`).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Raises the soft limit on open files to the hard one; returns it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with valid pointers to a local.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// A thousand Buffered appenders built with the default builder (but for
/// the mode, and no fsync, which only makes the test slow: the threads are
/// the same) share the default runtime: at most 8 threads in all, however
/// many logs. Each log then holds exactly its records. In a process of its
/// own, so that no other test's threads come and go meanwhile.
#[test]
fn a_thousand_appenders_add_at_most_eight_threads() {
    let tmp = TempDir::new("many-logs");
    std::fs::create_dir_all(tmp.path()).unwrap();
    run_child_test("runtime::many_logs_child", "LOGCUT_MANY_DIR", tmp.path());
}

#[test]
#[ignore = "run as a child process by a_thousand_appenders_add_at_most_eight_threads"]
fn many_logs_child() {
    let dir = child_env(
        "LOGCUT_MANY_DIR",
        "a_thousand_appenders_add_at_most_eight_threads",
    );
    let dir = Path::new(&dir);
    // Each appender holds its active file, the next ones prepared, its
    // lock, manifest and directory open.
    let nofile = raise_nofile();
    let logs = 1000usize.min((nofile.saturating_sub(64) / 8) as usize);
    assert!(
        logs >= 100,
        "the open-file limit ({nofile}) leaves room for {logs} logs only"
    );
    let before = threads();
    let apps: Vec<Appender> = (0..logs)
        .map(|i| {
            Appender::builder()
                .dir(dir.join(format!("{i:04}")))
                .mode(Mode::Buffered)
                .fsync(Fsync::Never)
                .build()
                .unwrap()
        })
        .collect();
    let during = threads();
    assert!(
        during <= before + 8,
        "{logs} appenders: {before} threads before, {during} after"
    );
    for round in 0..3u64 {
        for a in &apps {
            a.write_record(&record(0, round, 40)).unwrap();
        }
    }
    assert!(
        threads() <= before + 8,
        "threads grew while writing: {}",
        threads()
    );
    for a in &apps {
        a.shutdown().unwrap();
    }
    for i in 0..logs {
        let sub = dir.join(format!("{i:04}"));
        let got = check_records(&read_log(&sub, "app"), 40);
        assert_eq!(got.get(&0), Some(&3), "log {i:04}: {got:?}");
        assert_eq!(verify_ok(&sub).records(), 3, "log {i:04}");
    }
}

/// Many logs on one runtime of two threads, each cut often, written from
/// several threads at once, in both modes: every log holds exactly its own
/// records, and verifies.
#[test]
fn logs_on_one_small_runtime_keep_every_record_apart() {
    let tmp = TempDir::new("small-runtime");
    let rt = Runtime::builder().threads(2).build().unwrap();
    let apps: Vec<Appender> = (0..12)
        .map(|i| {
            Appender::builder()
                .dir(tmp.path())
                .name(format!("l{i}"))
                .max_size(2_000)
                .mode(if i % 2 == 0 {
                    Mode::Direct
                } else {
                    Mode::Buffered
                })
                .runtime(&rt)
                .build()
                .unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..4usize {
            let apps = &apps;
            s.spawn(move || {
                for seq in 0..300u64 {
                    for (i, a) in apps.iter().enumerate() {
                        // Thread `t` writes to log `i` as writer `t * 12 + i`,
                        // so a record in the wrong log is seen.
                        a.write_record(&record(t * 12 + i, seq, 50)).unwrap();
                    }
                }
            });
        }
    });
    for a in &apps {
        a.shutdown().unwrap();
    }
    for i in 0..12usize {
        let got = check_records(&read_log(tmp.path(), &format!("l{i}")), 50);
        let want: std::collections::HashMap<usize, u64> =
            (0..4).map(|t| (t * 12 + i, 300)).collect();
        assert_eq!(got, want, "log l{i}");
    }
    let report = verify_ok(tmp.path());
    assert_eq!(report.records(), 12 * 4 * 300);
}

/// A command from a runtime thread (here, the compression hook of one log
/// calling `rotate` on another log of the same runtime) fails with
/// `WouldBlock` instead of waiting for a task that might need that very
/// thread; the log it was called on is unharmed.
#[cfg(feature = "zstd")]
#[test]
fn a_command_from_a_runtime_thread_fails_instead_of_waiting() {
    let tmp = TempDir::new("rt-command");
    let rt = Runtime::builder().threads(2).build().unwrap();
    let other = Appender::builder()
        .dir(tmp.join("other"))
        .runtime(&rt)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let hook_other = other.clone();
    let hook_tx = std::sync::Mutex::new(tx);
    let a = Appender::builder()
        .dir(tmp.join("a"))
        .runtime(&rt)
        .compress(logcut::Compression::zstd())
        .before_compress(move |_| {
            let res = hook_other.rotate();
            let _ = hook_tx.lock().unwrap().send(res);
        })
        .build()
        .unwrap();
    a.write_record(b"one\n").unwrap();
    a.rotate().unwrap();
    let res = rx.recv().unwrap();
    let err = res.expect_err("rotate from a runtime thread");
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::WouldBlock),
        "{err}"
    );
    other.write_record(b"two\n").unwrap();
    other.rotate().unwrap();
    a.shutdown().unwrap();
    other.shutdown().unwrap();
    assert_eq!(verify_ok(&tmp.join("a")).records(), 1);
    assert_eq!(verify_ok(&tmp.join("other")).records(), 1);
}

/// An error handler that panics on a runtime thread stops that log's
/// background task, not the runtime: the command that was waiting gets an
/// error, later writes and `shutdown` fail at once instead of waiting
/// forever, and another log on the same runtime goes on.
#[test]
fn a_panicking_handler_stops_its_log_without_hanging_anyone() {
    let tmp = TempDir::new("rt-panic");
    let dir = tmp.join("a");
    std::fs::create_dir_all(&dir).unwrap();
    // The next segment cannot be created: every rotation fails and calls
    // the handler.
    std::fs::create_dir(dir.join("app.log.next.2")).unwrap();
    let rt = Runtime::builder().threads(2).build().unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&calls);
    let a = Appender::builder()
        .dir(&dir)
        .mode(Mode::Buffered)
        .runtime(&rt)
        .error_handler(move |_e: logcut::Error| {
            // The first call comes from `build`, on this test's thread.
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1 {
                panic!("handler panics on purpose");
            }
        })
        .build()
        .unwrap();
    let other = Appender::builder()
        .dir(tmp.join("other"))
        .runtime(&rt)
        .build()
        .unwrap();
    a.write_record(b"before\n").unwrap();
    let err = a
        .rotate()
        .expect_err("the rotation fails and the handler panics");
    assert!(err.is_shutdown() || err.is_io(), "{err}");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    // The command's answer (its channel dropped while the task unwound)
    // can come just before the task is marked dead: a record may still be
    // accepted then, and is counted as lost rather than silently dropped.
    let w = a.write_record(b"after\n");
    assert!(
        w.as_ref().is_ok() || w.as_ref().is_err_and(logcut::Error::is_shutdown),
        "{w:?}"
    );
    let s = a.shutdown();
    assert!(s.as_ref().is_err_and(logcut::Error::is_shutdown), "{s:?}");
    assert!(a.write_record(b"later\n").is_err_and(|e| e.is_shutdown()));
    let stats = a.stats();
    // "before" and, if accepted, "after": neither in a file, both counted.
    let written = std::fs::read(dir.join("app.log")).unwrap_or_default();
    let in_file = written.split_inclusive(|b| *b == b'\n').count() as u64;
    let accepted = 1 + u64::from(w.is_ok());
    assert_eq!(
        in_file + stats.records_lost,
        accepted,
        "{stats:?}, file {written:?}"
    );
    other.write_record(b"still here\n").unwrap();
    other.rotate().unwrap();
    other.shutdown().unwrap();
    assert_eq!(verify_ok(&tmp.join("other")).records(), 1);
}
