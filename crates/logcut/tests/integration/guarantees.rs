//! Guarantees of the crate docs that no other test pins down: writers wait
//! when held memory is full, Direct mode's size overshoot, a foreign file
//! at the active path, recovery of a compressed file that does not match,
//! close-on-exec descriptors, a library that never prints, a moved active
//! file noticed in real time, and writers that never wait for compression.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Barrier, mpsc},
    time::{Duration, Instant},
};

use logcut::{Appender, ManualClock, Mode};

use crate::kit::*;

const LEN: usize = 100;

fn clock() -> ManualClock {
    ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap())
}

/// `record(0, i, LEN)` for every `i` in `ids`, back to back.
fn records(ids: std::ops::Range<u64>) -> Vec<u8> {
    ids.flat_map(|i| record(0, i, LEN)).collect()
}

// === max_held ===

/// Direct mode on a full disk: records are held in memory, up to
/// `max_held` bytes. The write that would pass it waits: it does not
/// return, and nothing more is accepted, until the disk frees and the held
/// records are written; then every record is written once, in order.
#[test]
fn writers_wait_when_held_memory_is_full() {
    let Some(fs) = SmallFs::mount("held-full", "1m") else {
        return;
    };
    const HELD: u64 = 10;
    const COUNT: u64 = 100;
    let dir = fs.path().join("log");
    let clock = clock();
    let a = Appender::builder()
        .dir(&dir)
        .mode(Mode::Direct)
        .max_held(HELD as usize * LEN)
        .clock(clock.clone())
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .error_handler(|_: logcut::Error| {})
        .build()
        .unwrap();
    fs.fill();
    let (tx, rx) = mpsc::channel();
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            for i in 0..COUNT {
                a.write_record(&record(0, i, LEN)).unwrap();
                tx.send(i).unwrap();
            }
        })
    };
    // The first failed write holds its record; the writer goes on until
    // `max_held` is full. (Retries wait for the manual clock to pass the
    // backoff, so nothing held is written meanwhile.)
    wait_for("held memory to fill", || a.stats().queue_depth >= HELD);
    let written = a.stats().records_written;
    let mut returned = 0u64;
    let take = |returned: &mut u64| {
        while let Ok(i) = rx.try_recv() {
            assert_eq!(i, *returned, "the writer's ids in order");
            *returned += 1;
        }
    };
    wait_for("the writer to return for each held record", || {
        take(&mut returned);
        returned >= written + HELD
    });
    // Round trips to the background thread give the writer every chance
    // to return once more, if it did not wait.
    for _ in 0..3 {
        a.tick().unwrap();
    }
    take(&mut returned);
    let s = a.stats();
    assert_eq!(
        (returned, s.queue_depth, s.records),
        (written + HELD, HELD, written + HELD),
        "a write returned, or a record was accepted, past max_held: {s:?}"
    );
    assert!(!writer.is_finished());
    assert!(s.write_failures > 0, "{s:?}");
    // Space again: the held records are written, and the writer goes on.
    fs.free();
    for _ in 0..2_000 {
        if writer.is_finished() {
            break;
        }
        clock.advance(Duration::from_secs(2));
        a.tick().unwrap();
    }
    assert!(writer.is_finished(), "the writer never returned");
    writer.join().unwrap();
    take(&mut returned);
    assert_eq!(returned, COUNT);
    for _ in 0..2_000 {
        if a.stats().queue_depth == 0 {
            break;
        }
        clock.advance(Duration::from_secs(2));
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let s = a.stats();
    assert_eq!((s.records_written, s.records_lost), (COUNT, 0), "{s:?}");
    let counts = check_records(&read_log(&dir, "app"), LEN);
    assert_eq!(counts[&0], COUNT);
    assert_eq!(verify_ok(&dir).records(), COUNT);
}

// === Direct mode's size overshoot ===

/// Direct mode: writers check the size limit without a lock, so a segment
/// may end up to one record per concurrently writing thread past the
/// limit, and no more while a prepared segment is always ready
/// (`Stats::cuts_deferred` stays 0). Threads write in rounds that start
/// together (so they race at every cut); between rounds the background
/// thread refills its four prepared segments (`tick`), more than a round
/// can use.
#[test]
fn direct_segments_overshoot_by_at_most_one_record_per_thread() {
    const THREADS: usize = 4;
    const PER_ROUND: u64 = 20; // 8,000 bytes a round: at most 3 cuts
    const ROUNDS: u64 = 400;
    const MAX: u64 = 4_000;
    let dir = TempDir::new("overshoot");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(MAX)
        .mode(Mode::Direct)
        .clock(clock())
        .build()
        .unwrap();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let end = Arc::new(Barrier::new(THREADS + 1));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, start, end) = (a.clone(), Arc::clone(&start), Arc::clone(&end));
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    start.wait();
                    for i in r * PER_ROUND..(r + 1) * PER_ROUND {
                        a.write_record(&record(t, i, LEN)).unwrap();
                    }
                    end.wait();
                }
            })
        })
        .collect();
    for _ in 0..ROUNDS {
        start.wait();
        end.wait();
        a.tick().unwrap();
    }
    for w in writers {
        w.join().unwrap();
    }
    a.shutdown().unwrap();
    let s = a.stats();
    assert_eq!(s.cuts_deferred, 0, "a cut found no prepared segment: {s:?}");
    let seals = sealed(dir.path(), "app");
    assert!(seals.len() as u64 >= ROUNDS, "{} segments", seals.len());
    let bound = MAX + (THREADS * LEN) as u64;
    for seal in &seals {
        assert!(
            seal.bytes <= bound,
            "segment {} holds {} bytes, past {MAX} + {THREADS} records of {LEN}",
            seal.seq,
            seal.bytes
        );
    }
    let counts = check_records(&read_log(dir.path(), "app"), LEN);
    assert!(
        counts.values().all(|n| *n == ROUNDS * PER_ROUND),
        "{counts:?}"
    );
    verify_ok(dir.path());
}

// === A foreign file at the active path ===

/// Someone moves the active file away and puts a non-empty file of their
/// own at its path: the appender continues in a new file there, keeps
/// theirs, byte for byte, as `app.log.foreign-<ms>` (the appender's clock),
/// and reports it.
#[test]
fn a_foreign_file_at_the_active_path_is_kept_unchanged() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("foreign");
        let dir = tmp.path();
        let clock = clock();
        let (tx, rx) = mpsc::channel();
        let a = Appender::builder()
            .dir(dir)
            .manual_only()
            .mode(mode)
            .clock(clock.clone())
            .watch_interval(None)
            .error_handler(tx)
            .build()
            .unwrap();
        for i in 0..3 {
            a.write_record(&record(0, i, LEN)).unwrap();
        }
        a.flush_records().unwrap();
        std::fs::rename(dir.join("app.log"), dir.join("moved.log")).unwrap();
        let theirs: Vec<u8> = (0..=255u8).cycle().take(5_000).collect();
        std::fs::write(dir.join("app.log"), &theirs).unwrap();
        a.reopen().unwrap();
        let aside = format!("app.log.foreign-{}", a.now().as_millisecond());
        let errors: Vec<logcut::Error> = rx.try_iter().collect();
        assert_eq!(errors.len(), 1, "{mode:?}: {errors:?}");
        assert_eq!(errors[0].operation(), "install next segment", "{mode:?}");
        assert_eq!(
            errors[0].path(),
            Some(dir.join(&aside).as_path()),
            "{mode:?}"
        );
        assert_eq!(std::fs::read(dir.join(&aside)).unwrap(), theirs, "{mode:?}");
        assert_eq!(a.stats().reopens, 1, "{mode:?}");
        for i in 3..5 {
            a.write_record(&record(0, i, LEN)).unwrap();
        }
        a.flush_records().unwrap();
        assert_eq!(std::fs::read(dir.join("app.log")).unwrap(), records(3..5));
        a.shutdown().unwrap();
        assert_eq!(std::fs::read(dir.join(&aside)).unwrap(), theirs, "{mode:?}");
        assert_eq!(std::fs::read(dir.join("moved.log")).unwrap(), records(0..3));
        assert_eq!(read_log(dir, "app"), records(3..5), "{mode:?}");
        let report = verify_ok(dir);
        assert_eq!(report.records(), 5, "{mode:?}");
        assert_eq!(report.logs[0].segments_moved, 1, "{mode:?}");
    }
}

// === Recovery of compressed files that do not match ===

/// A compressed file the manifest does not record (a crash between its
/// rename and its `compress` entry) is checked at the next start by
/// decompressing it: one that does not match its segment's seal is removed
/// while the original is there, and the original is kept as it was; one
/// whose original is gone is kept, reported to the error handler, and left
/// for `verify` to report.
#[cfg(all(feature = "zstd", feature = "gzip"))]
#[test]
fn recovery_removes_a_compressed_file_that_does_not_match_its_seal() {
    use logcut_format::codec::Codec;
    let dir = TempDir::new("mismatch");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1_000)
        // As after a compression: the last segment's only name is its
        // sealed one (removed below).
        .keep_active_name(false)
        .build()
        .unwrap();
    for i in 0..50 {
        a.write_record(&record(0, i, LEN)).unwrap();
    }
    a.shutdown().unwrap();
    let seals = sealed(dir.path(), "app");
    assert_eq!(seals.len(), 5);
    let originals: Vec<Vec<u8>> = seals
        .iter()
        .map(|s| std::fs::read(dir.join(&s.file)).unwrap())
        .collect();
    let encode = |codec: Codec, data: &[u8]| {
        let mut out = Vec::new();
        codec.encode(3, data, &mut out).unwrap();
        out
    };
    let name = |i: usize, codec: Codec| codec.compressed_name(&seals[i].file);
    // Not a compressed stream at all.
    std::fs::write(dir.path().join(name(0, Codec::Zstd)), b"not zstd at all").unwrap();
    // Valid streams of the wrong bytes: a part of the segment, another one.
    std::fs::write(
        dir.path().join(name(1, Codec::Zstd)),
        encode(Codec::Zstd, &originals[1][..500]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(name(2, Codec::Gzip)),
        encode(Codec::Gzip, &originals[3]),
    )
    .unwrap();
    // One that does not match segment 4, whose original is gone: kept.
    let wrong = encode(Codec::Zstd, &originals[3]);
    std::fs::write(dir.path().join(name(4, Codec::Zstd)), &wrong).unwrap();
    std::fs::remove_file(dir.join(&seals[4].file)).unwrap();
    let (tx, rx) = mpsc::channel();
    let a = Appender::builder()
        .dir(dir.path())
        .error_handler(tx)
        .build()
        .unwrap();
    for (i, codec) in [(0, Codec::Zstd), (1, Codec::Zstd), (2, Codec::Gzip)] {
        assert!(
            !dir.path().join(name(i, codec)).exists(),
            "{} kept",
            name(i, codec)
        );
    }
    for i in 0..4 {
        assert_eq!(
            std::fs::read(dir.join(&seals[i].file)).unwrap(),
            originals[i],
            "{} altered",
            seals[i].file
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join(name(4, Codec::Zstd))).unwrap(),
        wrong
    );
    a.shutdown().unwrap();
    let errors: Vec<logcut::Error> = rx.try_iter().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].path(),
        Some(dir.path().join(name(4, Codec::Zstd)).as_path()),
        "{}",
        errors[0]
    );
    assert!(!errors[0].is_repair(), "{}", errors[0]);
    let report = logcut::verify(dir.path()).unwrap();
    assert_eq!(
        problems(&report),
        [(
            logcut::ProblemKind::BadCompression,
            Some(name(4, Codec::Zstd))
        )],
        "{report}"
    );
    assert_eq!(
        logcut_format::manifest::Manifest::read(&dir.join("app.manifest"))
            .unwrap()
            .compressed()
            .len(),
        0
    );
}

// === Close-on-exec ===

/// The targets of the open descriptors of process `pid` ("self" for this
/// one), by number.
fn descriptors(pid: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for ent in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(ent) = ent else { continue };
        let Some(n) = ent.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A descriptor closed since the listing was read is left out.
        if let Ok(target) = std::fs::read_link(ent.path()) {
            out.insert(n, target.to_string_lossy().into_owned());
        }
    }
    out
}

/// A child process started while appenders run (one exclusive, with
/// compression, a trigger file and signals where built in; one shared)
/// inherits none of their descriptors: every one is opened `O_CLOEXEC`.
/// In a process of its own (`cloexec_child`), so that no other test's
/// descriptors come and go meanwhile, and the signal handlers stay there.
#[test]
fn child_processes_inherit_no_descriptor_of_the_appender() {
    let tmp = TempDir::new("cloexec");
    std::fs::create_dir_all(tmp.path()).unwrap();
    run_child_test(
        "guarantees::cloexec_child",
        "LOGCUT_CLOEXEC_DIR",
        tmp.path(),
    );
}

#[test]
#[ignore = "run as a child process by child_processes_inherit_no_descriptor_of_the_appender"]
fn cloexec_child() {
    let tmp = std::path::PathBuf::from(std::env::var("LOGCUT_CLOEXEC_DIR").expect(
        "LOGCUT_CLOEXEC_DIR: run by child_processes_inherit_no_descriptor_of_the_appender",
    ));
    let before = descriptors("self");
    #[allow(unused_mut)]
    let mut b = Appender::builder().dir(tmp.join("log")).max_size(1_000);
    #[cfg(feature = "zstd")]
    {
        b = b.compress(logcut::Compression::zstd());
    }
    #[cfg(feature = "trigger")]
    {
        b = b.trigger_file(tmp.join("rotate.trigger"));
    }
    #[cfg(feature = "signals")]
    {
        b = b.signals(true);
    }
    let a = b.build().unwrap();
    #[allow(unused_mut)]
    let mut b = Appender::builder().dir(tmp.join("shared")).shared(true);
    #[cfg(feature = "trigger")]
    {
        b = b.trigger_file(tmp.join("shared.trigger"));
    }
    let s = b.build().unwrap();
    for i in 0..25 {
        a.write_record(&record(0, i, LEN)).unwrap();
        s.write_record(&record(0, i, LEN)).unwrap();
    }
    a.rotate().unwrap();
    s.rotate().unwrap();
    let after = descriptors("self");
    let ours: Vec<(u32, String)> = after
        .into_iter()
        .filter(|(n, t)| before.get(n) != Some(t))
        .collect();
    let root = tmp.to_string_lossy().into_owned();
    // The appenders' descriptors are all there.
    let has = |target: &str| ours.iter().any(|(_, t)| t == target);
    for f in [
        "log",
        "log/app.lock",
        "log/app.error",
        "log/app.manifest",
        "log/app.log",
        "shared/app.lock",
        "shared/app.error",
        "shared/app.cut",
        "shared/app.manifest",
        "shared/app.log",
    ] {
        let want = tmp.join(f).to_string_lossy().into_owned();
        assert!(has(&want), "no descriptor for {want}: {ours:?}");
    }
    assert!(
        ours.iter()
            .any(|(_, t)| t.starts_with(&format!("{root}/log/app.log.next."))),
        "no prepared segment open: {ours:?}"
    );
    #[cfg(feature = "trigger")]
    assert!(has("anon_inode:inotify"), "{ours:?}");
    let mut child = std::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `spawn` returns once `cat` runs (after exec): it blocks reading its
    // pipe, so its descriptors stay as it inherited them.
    let inherited = descriptors(&child.id().to_string());
    drop(child.stdin.take());
    child.wait().unwrap();
    let leaked: Vec<_> = inherited
        .iter()
        .filter(|(n, t)| {
            t.starts_with(&root)
                || t.as_str() == "anon_inode:inotify"
                || ours.iter().any(|(m, u)| m == *n && u == *t)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the child inherited {leaked:?} (all: {inherited:?})"
    );
    assert!(inherited.contains_key(&0), "{inherited:?}");
    a.shutdown().unwrap();
    s.shutdown().unwrap();
}

// === The library never prints ===

/// The harness's own output of the test `name` run as a child, with the
/// name and the time it took taken out.
fn harness_output(name: &str, dir: &Path) -> (String, String) {
    let out = child_test(name)
        .env("LOGCUT_QUIET_DIR", dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed:\n{stdout}\n{stderr}"
    );
    let strip = |s: &str| {
        let s = s.replace(name, "NAME");
        match s.find("finished in ") {
            Some(at) => {
                let rest = &s[at..];
                let end = rest.find("s\n").map_or(rest.len(), |e| e + 1);
                format!("{}finished in T{}", &s[..at], &rest[end..])
            }
            None => s,
        }
    };
    (strip(&stdout), strip(&stderr))
}

/// A whole session in a child process (writes from threads, cuts,
/// compression and retention, a trigger file and a signal where built in,
/// a moved active file with a foreign file in its place, writes failing
/// with EFBIG and recovering, shutdown), both modes: its standard output
/// and error are exactly what the test harness prints for a test that
/// does nothing. Everything went to the error handler.
#[test]
fn the_library_never_prints() {
    let dir = TempDir::new("quiet");
    std::fs::create_dir_all(dir.path()).unwrap();
    let base = harness_output("guarantees::quiet_baseline_child", dir.path());
    let session = harness_output("guarantees::quiet_session_child", dir.path());
    assert!(base.0.contains("NAME ... ok"), "{base:?}");
    assert_eq!(session.0, base.0, "standard output");
    assert_eq!(session.1, base.1, "standard error");
}

#[test]
#[ignore = "run as a child process by the_library_never_prints"]
fn quiet_baseline_child() {
    std::env::var("LOGCUT_QUIET_DIR").expect("LOGCUT_QUIET_DIR: run by the_library_never_prints");
}

#[test]
#[ignore = "run as a child process by the_library_never_prints"]
fn quiet_session_child() {
    let dir = std::env::var("LOGCUT_QUIET_DIR")
        .expect("LOGCUT_QUIET_DIR: run by the_library_never_prints");
    // SAFETY: setting a signal's disposition to SIG_IGN in a single-purpose
    // child process; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    for mode in [Mode::Direct, Mode::Buffered] {
        quiet_session(&Path::new(&dir).join(format!("{mode:?}")), mode);
    }
}

/// Sets the soft limit on the size of files this process writes.
fn limit_file_size(soft: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain system call with a valid pointer to a local.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

fn quiet_session(root: &Path, mode: Mode) {
    let log = root.join("log");
    let (tx, rx) = mpsc::channel();
    #[allow(unused_mut)]
    let mut b = Appender::builder()
        .dir(&log)
        .max_size(8 << 10)
        .mode(mode)
        .keep(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        // The move below is noticed by `reopen`, not by a check that
        // could come between the move and the foreign file.
        .watch_interval(None)
        .error_handler(tx);
    #[cfg(feature = "zstd")]
    {
        b = b.compress(logcut::Compression::zstd());
    }
    #[cfg(feature = "trigger")]
    let trigger = root.join("rotate.trigger");
    #[cfg(feature = "trigger")]
    {
        b = b.trigger_file(&trigger);
    }
    #[cfg(feature = "signals")]
    {
        b = b.signals(true);
    }
    let a = b.build().unwrap();
    write_from_threads(&a, 3, 1_000, LEN);
    a.rotate().unwrap();
    // Each external cut is awaited until its segment is sealed (`tick`
    // first, so that no earlier seal counts): later ones (a touch makes
    // several events) then find an empty segment and do nothing.
    #[cfg(feature = "trigger")]
    {
        a.tick().unwrap();
        let sealed = a.stats().rotations;
        a.write_record(b"before the touch\n").unwrap();
        touch(&trigger);
        wait_for("the trigger's cut", || a.stats().rotations > sealed);
    }
    #[cfg(feature = "signals")]
    {
        a.tick().unwrap();
        let sealed = a.stats().rotations;
        a.write_record(b"before the signal\n").unwrap();
        // SAFETY: raising a signal the appender handles.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        wait_for("the signal's cut", || a.stats().rotations > sealed);
    }
    // Moved away, with someone else's file put in its place.
    a.flush_records().unwrap();
    std::fs::rename(log.join("app.log"), root.join("moved.log")).unwrap();
    std::fs::write(log.join("app.log"), b"someone else's\n").unwrap();
    a.reopen().unwrap();
    // Writes fail part way (EFBIG) and are retried until the limit goes.
    // Seals, compression and retention are done first (`tick`), so only the
    // active segment is written meanwhile.
    a.tick().unwrap();
    let failures = a.stats().write_failures;
    limit_file_size(150);
    for i in 0..3 {
        a.write_record(&record(9, i, LEN)).unwrap();
    }
    let _ = a.flush_records();
    wait_for("a failed write", || a.stats().write_failures > failures);
    limit_file_size(libc::RLIM_INFINITY);
    wait_for("the held records", || a.stats().queue_depth == 0);
    a.shutdown().unwrap();
    let s = a.stats();
    assert!(s.rotations > 3 && s.segments_deleted > 0, "{s:?}");
    #[cfg(feature = "zstd")]
    assert!(s.segments_compressed > 0, "{s:?}");
    let errors: Vec<logcut::Error> = rx.try_iter().collect();
    assert!(
        errors.iter().any(|e| e.raw_os_error() == Some(libc::EFBIG)),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.operation() == "install next segment"),
        "{errors:?}"
    );
    verify_ok(&log);
}

// === A moved active file, in real time ===

/// With the real clock and a watch interval of 20 ms, an active file moved
/// away is noticed without any call (no `reopen`, no write): the appender
/// continues in a new file at the active path, the records written before
/// stay in the moved file, those written after are in the new one.
#[test]
fn a_moved_active_file_is_noticed_in_real_time() {
    let _heavy = heavy();
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("watch-real");
        let dir = tmp.path();
        let a = Appender::builder()
            .dir(dir)
            .manual_only()
            .mode(mode)
            .watch_interval(Some(Duration::from_millis(20)))
            .build()
            .unwrap();
        for i in 0..10 {
            a.write_record(&record(0, i, LEN)).unwrap();
        }
        a.flush_records().unwrap();
        std::fs::rename(dir.join("app.log"), dir.join("moved.log")).unwrap();
        let t0 = Instant::now();
        wait_for("the move to be noticed", || {
            a.stats().reopens == 1 && dir.join("app.log").exists()
        });
        let took = t0.elapsed();
        // A real-time bound, so a generous one: the check is due every
        // 20 ms, but on 2 shared cores the background thread can be
        // scheduled late. A check that does not run on its own never
        // notices (`wait_for` fails after 30 s).
        assert!(
            took < Duration::from_secs(5),
            "{mode:?}: noticed after {took:?}"
        );
        for i in 10..20 {
            a.write_record(&record(0, i, LEN)).unwrap();
        }
        a.flush_records().unwrap();
        assert_eq!(
            std::fs::read(dir.join("app.log")).unwrap(),
            records(10..20),
            "{mode:?}"
        );
        a.shutdown().unwrap();
        assert_eq!(
            std::fs::read(dir.join("moved.log")).unwrap(),
            records(0..10)
        );
        assert_eq!(read_log(dir, "app"), records(10..20), "{mode:?}");
        let seals = sealed(dir, "app");
        assert_eq!(seals[0].file, "-", "{mode:?}: {seals:?}");
        assert_eq!(seals[0].records, Some(10), "{mode:?}");
        assert_eq!(seals[0].reason, logcut::SealReason::Reopen, "{mode:?}");
        assert_eq!(verify_ok(dir).records(), 20, "{mode:?}");
    }
}

// === Writers never wait for compression ===

#[cfg(feature = "zstd")]
/// A gate the compression hook waits at, until it is opened.
#[derive(Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

#[cfg(feature = "zstd")]
impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

#[cfg(feature = "zstd")]
/// Opens the gate when dropped: a failing test must not leave the
/// compression thread waiting, or shutting the appender down would wait
/// for it forever.
struct OpenOnDrop(Arc<Gate>);

#[cfg(feature = "zstd")]
impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The first compression is held up (the hidden `before_compress` hook
/// waits at a gate): writers still write a hundred segments' worth, cuts
/// (by size and by `rotate`, which returns) and seals go on; then the gate
/// opens and every sealed segment is compressed and verified.
#[cfg(feature = "zstd")]
#[test]
fn writers_never_wait_for_compression() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("compress-blocked");
        let gate = Arc::new(Gate::default());
        let (tx, rx) = mpsc::channel::<String>();
        let tx = std::sync::Mutex::new(tx);
        let hook_gate = Arc::clone(&gate);
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(4_096)
            .mode(mode)
            .compress(logcut::Compression::zstd())
            .before_compress(move |file: &str| {
                let _ = tx.lock().unwrap().send(file.to_string());
                hook_gate.wait();
            })
            .build()
            .unwrap();
        // Declared after the appender, so dropped before it.
        let _open = OpenOnDrop(Arc::clone(&gate));
        let (threads, count) = (2, 2_000u64);
        let writers: Vec<_> = (0..threads)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for i in 0..count {
                        a.write_record(&record(t, i, LEN)).unwrap();
                        // Cuts by hand too: at least 50, however the size
                        // cuts fall.
                        if t == 0 && i % 40 == 39 {
                            a.rotate().unwrap();
                        }
                    }
                })
            })
            .collect();
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no compression started");
        // The compression thread waits at the gate from here on.
        wait_for("the writers, while compression is held up", || {
            writers.iter().all(|w| w.is_finished())
        });
        for w in writers {
            w.join().unwrap();
        }
        a.flush_records().unwrap();
        a.rotate().unwrap();
        // 400 kB in segments of at most 4 KiB (in Direct mode, more when
        // the writers cut faster than the background thread prepares
        // segments: the crate docs' Size limit), and 50 cuts by hand: at
        // least 50 segments, all waiting for the one compression thread.
        wait_for("the seals", || {
            let s = a.stats();
            s.rotations >= 50 && s.compress_backlog == s.rotations
        });
        let s = a.stats();
        assert_eq!(s.segments_compressed, 0, "{mode:?}: {s:?}");
        assert!(
            rx.try_recv().is_err(),
            "{mode:?}: a second compression started"
        );
        gate.open();
        a.tick().unwrap();
        let s = a.stats();
        assert_eq!(
            (s.segments_compressed, s.compress_backlog),
            (s.rotations, 0),
            "{mode:?}: {s:?}"
        );
        a.shutdown().unwrap();
        let seals = sealed(dir.path(), "app");
        assert_eq!(seals[0].file, first, "{mode:?}");
        let report = verify_ok(dir.path());
        assert_eq!(
            report.logs[0].compressed_segments, report.logs[0].segments,
            "{mode:?}: {report}"
        );
        let counts = check_records(&read_log(dir.path(), "app"), LEN);
        assert!(counts.values().all(|n| *n == count), "{mode:?}: {counts:?}");
        assert_eq!(counts.len(), threads, "{mode:?}");
    }
}
