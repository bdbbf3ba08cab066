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

/// Shutdown's last seal waits, in shared mode, for every other writer to
/// leave the segment. That wait takes turns on the runtime rather than
/// holding one of its threads: here two logs on a runtime of two threads
/// wait at once (a stand-in for another process holds each last segment's
/// shared lock), and a third log on the same runtime still cuts and ticks
/// meanwhile. Once the stand-ins leave, both seal everything. (Were the
/// waits to hold the threads, the third log's `tick` would return only
/// after both shutdowns gave up at their deadline, with an error.)
#[test]
fn a_shutdown_waiting_for_other_writers_leaves_the_runtime_to_other_logs() {
    let tmp = TempDir::new("rt-close-wait");
    let rt = Runtime::builder().threads(2).build().unwrap();
    let waiting: Vec<Appender> = (0..2)
        .map(|i| {
            Appender::builder()
                .dir(tmp.join(&format!("wait{i}")))
                .shared(true)
                .shutdown_timeout(std::time::Duration::from_secs(60))
                .runtime(&rt)
                .build()
                .unwrap()
        })
        .collect();
    let other = Appender::builder()
        .dir(tmp.join("other"))
        .runtime(&rt)
        .build()
        .unwrap();
    // Another "process" writing each last segment: a shared lock on it.
    let mut holders = Vec::new();
    for (i, a) in waiting.iter().enumerate() {
        a.write_record(format!("w{i}\n").as_bytes()).unwrap();
        std::io::Write::flush(&mut &*a).unwrap();
        let f = std::fs::File::open(tmp.join(&format!("wait{i}/app.log"))).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: flock on a valid descriptor that `f` owns.
        let rc = unsafe { libc::flock(fd, libc::LOCK_SH) };
        assert_eq!(rc, 0);
        holders.push(f);
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for (i, a) in waiting.into_iter().enumerate() {
        let tx = done_tx.clone();
        std::thread::spawn(move || tx.send((i, a.shutdown())).unwrap());
    }
    // Both last segments are promoted: their seals (and the closes) wait.
    for i in 0..2 {
        let dir = tmp.join(&format!("wait{i}"));
        crate::kit::wait_for("the last segment's sealed name", || {
            crate::kit::files(&dir)
                .iter()
                .any(|f| f.starts_with("app.") && f.ends_with(".log") && f != "app.log")
        });
    }
    other.write_record(b"one\n").unwrap();
    other.rotate().unwrap();
    other.write_record(b"two\n").unwrap();
    other.tick().unwrap();
    assert!(
        done_rx.try_recv().is_err(),
        "a shutdown finished while its segment was still held"
    );
    drop(holders);
    let mut results: Vec<(usize, Result<(), logcut::Error>)> =
        (0..2).map(|_| done_rx.recv().unwrap()).collect();
    results.sort_by_key(|r| r.0);
    for (i, res) in results {
        res.unwrap_or_else(|e| panic!("log {i}: {e}"));
        assert_eq!(verify_ok(&tmp.join(&format!("wait{i}"))).records(), 1);
    }
    other.shutdown().unwrap();
    assert_eq!(verify_ok(&tmp.join("other")).records(), 2);
}

/// An error handler runs on the worker's own turn on the runtime; one that
/// writes to its own Buffered log (logging the error there, say) finds the
/// buffer full and must not wait for room: the worker that makes room is
/// the very task it interrupted. Its records go past the bound, and every
/// record reaches the log. Here creating the next segment fails (a
/// directory sits at its name), so each size cut reports to the handler,
/// which writes 50 records into a buffer of 256 bytes, then flushes (which
/// cannot wait there either).
#[test]
fn an_error_handler_writing_to_its_own_full_log_does_not_wait_for_room() {
    let tmp = TempDir::new("rt-handler-full");
    let dir = tmp.join("log");
    std::fs::create_dir_all(&dir).unwrap();
    // The first next segments (the log starts at 1) cannot be created.
    for seq in 2..6 {
        std::fs::create_dir(dir.join(format!("app.log.next.{seq}"))).unwrap();
    }
    let me: std::sync::Arc<std::sync::OnceLock<Appender>> = Default::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (hook_me, hook_written) = (std::sync::Arc::clone(&me), std::sync::Arc::clone(&written));
    let hook_tx = std::sync::Mutex::new(tx);
    let a = Appender::builder()
        .dir(&dir)
        .mode(Mode::Buffered)
        .buffer_size(256)
        .max_size(1024)
        .fsync(Fsync::Never)
        .error_handler(move |e: logcut::Error| {
            let Some(a) = hook_me.get() else {
                return;
            };
            for i in 0..50 {
                a.write_record(format!("handler {i:03} after {:?}\n", e.operation()).as_bytes())
                    .unwrap();
                hook_written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let flushed = std::io::Write::flush(&mut &*a);
            let _ = hook_tx.lock().unwrap().send(flushed);
        })
        .build()
        .unwrap();
    me.set(a.clone()).unwrap();
    for i in 0..100 {
        a.write_record(format!("writer {i:03} {}\n", "x".repeat(40)).as_bytes())
            .unwrap();
    }
    // The writer's records cross the size limit: the cut fails and the
    // handler runs (a wait for room there would never end).
    let flushed = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the handler returned");
    if let Err(e) = flushed {
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
    }
    for seq in 2..6 {
        std::fs::remove_dir(dir.join(format!("app.log.next.{seq}"))).unwrap();
    }
    a.shutdown().unwrap();
    let handler = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(handler >= 50, "{handler}");
    let report = verify_ok(&dir);
    assert_eq!(report.records(), 100 + handler, "{report}");
    let data = read_log(&dir, "app");
    let lines = data.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let (mut w, mut h) = (0u64, 0u64);
    for l in lines {
        if l.starts_with(b"writer ") {
            w += 1;
        } else if l.starts_with(b"handler ") {
            h += 1;
        }
    }
    assert_eq!((w, h), (100, handler));
}

/// The prepared next segments of `dir` (`app.log.next.<seq>`).
fn prepared(dir: &Path) -> usize {
    crate::kit::files(dir)
        .iter()
        .filter(|f| f.starts_with("app.log.next."))
        .count()
}

/// The pool of prepared next segments grows when a cut finds it empty and
/// shrinks back once cuts find it ready again, removing the files it no
/// longer keeps: a log past its burst does not keep dozens of open files.
/// Every record stays, once, in order.
#[test]
fn the_pool_of_next_segments_grows_after_a_cut_found_it_empty_and_shrinks_back() {
    let tmp = TempDir::new("rt-pool");
    let dir = tmp.join("log");
    std::fs::create_dir_all(&dir).unwrap();
    // Creating the first next segments fails: the cuts find the pool empty.
    for seq in 2..6 {
        std::fs::create_dir(dir.join(format!("app.log.next.{seq}"))).unwrap();
    }
    let a = Appender::builder()
        .dir(&dir)
        .max_size(30)
        .fsync(Fsync::Never)
        .error_handler(|_: logcut::Error| {})
        .build()
        .unwrap();
    let mut n = 0u64;
    let mut write = |a: &Appender| {
        a.write_record(format!("record {n:012}\n").as_bytes())
            .unwrap();
        n += 1;
    };
    for _ in 0..3 {
        write(&a);
    }
    assert!(a.stats().cuts_deferred > 0, "{:?}", a.stats());
    for seq in 2..6 {
        std::fs::remove_dir(dir.join(format!("app.log.next.{seq}"))).unwrap();
    }
    // The backoff passes on the real clock: the next segments come, and the
    // cut that waited is made.
    let mut grown = 0;
    crate::kit::wait_for("a larger pool", || {
        write(&a);
        a.tick().unwrap();
        grown = prepared(&dir);
        grown > 4
    });
    // Cuts that find the pool ready, until it is back to its first size.
    let mut cuts = 0;
    while prepared(&dir) > 4 {
        assert!(
            cuts < 2000,
            "still {} prepared after {cuts} cuts",
            prepared(&dir)
        );
        write(&a);
        write(&a);
        a.tick().unwrap();
        cuts += 1;
    }
    assert_eq!(prepared(&dir), 4);
    a.shutdown().unwrap();
    assert_eq!(prepared(&dir), 0);
    let report = verify_ok(&dir);
    assert_eq!(report.records(), n, "{report}");
    let data = read_log(&dir, "app");
    let expected: Vec<u8> = (0..n)
        .flat_map(|i| format!("record {i:012}\n").into_bytes())
        .collect();
    assert_eq!(data, expected);
}
