use std::{io::Write, os::unix::fs::PermissionsExt};

use logcut::{Appender, Mode};

use crate::kit::*;

#[test]
fn contract_from_the_issue() {
    let dir = TempDir::new("contract");
    let appender = Appender::builder()
        .dir(dir.path())
        .name("app")
        .max_size(1 << 20)
        .mode(Mode::Direct)
        .build()
        .unwrap();
    (&appender).write_all(b"one record\n").unwrap();
    assert!(dir.join("app.log").exists());
    appender.rotate().unwrap();
    (&appender).write_all(b"two\n").unwrap();
    appender.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!(report.records(), 2);
    assert_eq!(read_log(dir.path(), "app"), b"one record\ntwo\n");
    let seals = sealed(dir.path(), "app");
    assert_eq!(seals.len(), 2);
    assert_eq!(seals[0].reason, logcut::SealReason::Manual);
    assert_eq!(seals[1].reason, logcut::SealReason::Shutdown);
    assert_eq!((seals[0].first, seals[0].records), (Some(0), Some(1)));
    assert_eq!((seals[1].first, seals[1].records), (Some(1), Some(1)));
    // After shutdown no next file is left: two segments (the last one
    // also at the active path, until the next start), the manifest, the
    // lock file (kept: removing it would race with the next appender
    // taking it) and the error file (blank: no error).
    assert!(crate::kit::last_at_active(dir.path(), "app"));
    assert_eq!(files(dir.path()).len(), 6, "{:?}", files(dir.path()));
    assert_eq!(
        logcut_format::last_error::read(dir.path(), "app").unwrap(),
        None
    );
    assert!(dir.join("app.lock").exists());
    assert!(appender.write_record(b"late\n").unwrap_err().is_shutdown());
    assert_eq!(appender.stats().records_rejected, 1);
}

#[test]
fn odd_records_round_trip_in_both_modes() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("odd");
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(100)
            .mode(mode)
            .build()
            .unwrap();
        let big = vec![b'x'; 1000];
        let recs: Vec<Vec<u8>> = vec![
            b"plain\n".to_vec(),
            Vec::new(),
            b"multi\nline\nrecord\n".to_vec(),
            vec![0xff, 0xfe, 0x00, b'\r', b'\n'],
            big.clone(),
            b"after big\n".to_vec(),
            b"no newline".to_vec(),
        ];
        for r in &recs {
            a.write_record(r).unwrap();
        }
        a.shutdown().unwrap();
        let report = verify_ok(dir.path());
        assert_eq!(report.records(), recs.len() as u64, "{mode:?}");
        assert_eq!(read_log(dir.path(), "app"), recs.concat(), "{mode:?}");
        // The big record is alone in its segment, never split.
        let seals = sealed(dir.path(), "app");
        assert!(
            seals
                .iter()
                .any(|s| s.bytes == 1000 && s.records == Some(1)),
            "{seals:?}"
        );
        for s in &seals {
            assert!(s.bytes <= 100 || s.records == Some(1), "{s:?}");
        }
    }
}

#[test]
fn write_fmt_is_one_record() {
    let dir = TempDir::new("fmt");
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    let two = "two";
    writeln!(&a, "a {} b {two} c", 1).unwrap();
    a.shutdown().unwrap();
    assert_eq!(verify_ok(dir.path()).records(), 1);
    assert_eq!(read_log(dir.path(), "app"), b"a 1 b two c\n");
}

#[test]
fn size_limit_is_exact_at_record_boundaries() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("exact");
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(1000)
            .mode(mode)
            .build()
            .unwrap();
        for i in 0..100 {
            a.write_record(&record(0, i, 100)).unwrap();
            // Direct mode cuts exactly when a prepared segment is ready;
            // let the background thread refill them (see the overshoot
            // bound in the crate docs).
            a.tick().unwrap();
        }
        a.shutdown().unwrap();
        let seals = sealed(dir.path(), "app");
        assert_eq!(seals.len(), 10, "{mode:?}");
        for s in &seals {
            assert_eq!((s.bytes, s.records), (1000, Some(10)), "{mode:?}");
        }
        check_records(&read_log(dir.path(), "app"), 100);
    }
}

#[test]
fn sealed_names_sort_in_order_and_are_unique() {
    let dir = TempDir::new("names");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(10)
        .build()
        .unwrap();
    for i in 0..300 {
        a.write_record(&record(0, i, 30)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let seals = sealed(dir.path(), "app");
    assert_eq!(seals.len(), 300);
    let mut names: Vec<&str> = seals.iter().map(|s| s.file.as_str()).collect();
    let in_manifest_order = names.clone();
    names.sort();
    assert_eq!(
        names, in_manifest_order,
        "names do not sort in sealing order"
    );
    names.dedup();
    assert_eq!(names.len(), 300);
    verify_ok(dir.path());
}

#[test]
fn files_and_dirs_get_safe_modes() {
    let dir = TempDir::new("modes");
    let logdir = dir.join("a/b");
    let a = Appender::builder().dir(&logdir).build().unwrap();
    a.write_record(b"x\n").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&logdir.join("app.log")), 0o640);
    assert_eq!(mode(&logdir.join("app.log.next.2")), 0o640);
    assert_eq!(mode(&logdir.join("app.log.next.5")), 0o640);
    assert_eq!(mode(&logdir.join("app.manifest")), 0o640);
    assert_eq!(mode(&logdir.join("app.lock")), 0o640);
    assert_eq!(mode(&logdir.join("app.error")), 0o640);
    assert_eq!(mode(&logdir) & 0o750, 0o750);
    assert_eq!(mode(&logdir) & 0o007, 0, "directory is world-accessible");
    a.shutdown().unwrap();
    let b = Appender::builder()
        .dir(&logdir)
        .file_mode(0o600)
        .build()
        .unwrap();
    assert_eq!(mode(&logdir.join("app.log")), 0o600);
    b.shutdown().unwrap();
}

#[test]
fn planted_symlinks_are_never_followed() {
    let dir = TempDir::new("symlink");
    std::fs::create_dir_all(dir.path()).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let logdir = dir.join("logs");
    std::fs::create_dir_all(&logdir).unwrap();
    std::os::unix::fs::symlink(&victim, logdir.join("app.log")).unwrap();
    std::os::unix::fs::symlink(&victim, logdir.join("app.log.next.1")).unwrap();
    std::os::unix::fs::symlink(&victim, logdir.join("app.log.next.2")).unwrap();
    std::os::unix::fs::symlink(&victim, logdir.join("app.log.next.9")).unwrap();
    std::os::unix::fs::symlink(&victim, logdir.join("app.error")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<logcut::Error>();
    let a = Appender::builder()
        .dir(&logdir)
        .error_handler(tx)
        .build()
        .unwrap();
    a.write_record(b"record\n").unwrap();
    a.rotate().unwrap();
    a.write_record(b"record 2\n").unwrap();
    a.shutdown().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    // The error file is not opened through the link, and that is said.
    let errors: Vec<String> = rx
        .try_iter()
        .filter(|e| !e.is_repair())
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("open error file"), "{errors:?}");
    assert!(errors[0].contains("app.error"), "{errors:?}");
    assert_eq!(read_log(&logdir, "app"), b"record\nrecord 2\n");
    verify_ok(&logdir);
}

#[test]
fn bad_configuration_names_the_field() {
    let dir = TempDir::new("config");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.join("file"), b"").unwrap();
    let cases: Vec<(logcut::AppenderBuilder, &str)> = vec![
        (Appender::builder(), "dir"),
        (Appender::builder().dir(dir.join("file")), "dir"),
        (Appender::builder().dir(dir.path()).name("a/b"), "name"),
        (Appender::builder().dir(dir.path()).name(".."), "name"),
        (Appender::builder().dir(dir.path()).name(""), "name"),
        (Appender::builder().dir(dir.path()).max_size(0), "max_size"),
        (
            Appender::builder()
                .dir(dir.path())
                .interval(logcut::Interval::hours(0)),
            "interval",
        ),
        (
            Appender::builder()
                .dir(dir.path())
                .time_zone("Mars/Olympus"),
            "time_zone",
        ),
        (
            Appender::builder()
                .dir(dir.path())
                .max_size(10)
                .min_size(11),
            "min_size",
        ),
        (
            Appender::builder().dir(dir.path()).buffer_size(0),
            "buffer_size",
        ),
        (
            Appender::builder().dir(dir.path()).file_mode(0o7777),
            "file_mode",
        ),
        (
            Appender::builder()
                .dir(dir.path())
                .fsync(logcut::Fsync::Every(std::time::Duration::ZERO)),
            "fsync",
        ),
    ];
    for (b, field) in cases {
        let err = b.build().unwrap_err();
        assert!(err.is_config(), "{err}");
        assert_eq!(err.config_field(), Some(field), "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn clones_share_one_log() {
    let dir = TempDir::new("clones");
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    let b = a.clone();
    std::thread::spawn(move || b.write_record(b"from b\n").unwrap())
        .join()
        .unwrap();
    a.write_record(b"from a\n").unwrap();
    let stats = a.stats();
    assert_eq!(
        (stats.records, stats.records_written, stats.bytes),
        (2, 2, 14)
    );
    a.shutdown().unwrap();
    assert_eq!(read_log(dir.path(), "app"), b"from b\nfrom a\n");
}

#[test]
fn empty_rotate_does_nothing_and_restart_continues_numbering() {
    let dir = TempDir::new("restart");
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    a.rotate().unwrap();
    a.write_record(b"1\n").unwrap();
    a.shutdown().unwrap();
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    a.write_record(b"2\n").unwrap();
    a.rotate().unwrap();
    a.rotate().unwrap();
    a.write_record(b"3\n").unwrap();
    drop(a);
    let seals = sealed(dir.path(), "app");
    let seqs: Vec<u64> = seals.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let firsts: Vec<Option<u64>> = seals.iter().map(|s| s.first).collect();
    assert_eq!(firsts, [Some(0), Some(1), Some(2)]);
    assert_eq!(read_log(dir.path(), "app"), b"1\n2\n3\n");
    assert_eq!(verify_ok(dir.path()).logs[0].sessions, 2);
}

#[test]
fn a_symlink_at_the_sealed_name_is_neither_followed_nor_replaced() {
    let dir = TempDir::new("sealedlink");
    std::fs::create_dir_all(dir.path()).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let logdir = dir.join("logs");
    std::fs::create_dir_all(&logdir).unwrap();
    // With a manual clock the first sealed name is known in advance.
    let planted = logdir.join("app.2026-11-24T10-00-00.000Z.000001.log");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let clock = logcut::ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap());
    let a = Appender::builder()
        .dir(&logdir)
        .clock(clock)
        .build()
        .unwrap();
    a.write_record(b"record\n").unwrap();
    a.rotate().unwrap();
    a.shutdown().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(
        std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let seals = sealed(&logdir, "app");
    assert_eq!(seals[0].file, "app.2026-11-24T10-00-00.000Z.000001-1.log");
    assert_eq!(read_log(&logdir, "app"), b"record\n");
    // verify reports the planted file (named like a segment, not recorded).
    let report = logcut::verify(&logdir).unwrap();
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [logcut::ProblemKind::Unrecorded], "{report}");
}

#[test]
fn every_fsync_policy_writes_everything() {
    use logcut::Fsync;
    for fsync in [
        Fsync::Never,
        Fsync::AtSeal,
        Fsync::Always,
        Fsync::Every(std::time::Duration::from_millis(1)),
    ] {
        for mode in [Mode::Direct, Mode::Buffered] {
            let dir = TempDir::new("fsync");
            let a = Appender::builder()
                .dir(dir.path())
                .max_size(1000)
                .mode(mode)
                .fsync(fsync)
                .build()
                .unwrap();
            for i in 0..100 {
                a.write_record(&record(0, i, 50)).unwrap();
            }
            a.shutdown().unwrap();
            assert_eq!(verify_ok(dir.path()).records(), 100, "{fsync:?} {mode:?}");
            check_records(&read_log(dir.path(), "app"), 50);
        }
    }
}

/// `write_batch` is `write_record` for each record in turn: every record
/// once, in order, cuts between records; a batch larger than the buffer is
/// taken in parts; ends that do not describe the batch are refused whole.
#[test]
fn write_batch_is_one_record_per_end() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("batch");
        let a = Appender::builder()
            .dir(dir.path())
            .mode(mode)
            .max_size(1000)
            .buffer_size(4096)
            .build()
            .unwrap();
        let mut expected = Vec::new();
        let mut seq = 0;
        for batch_len in [1, 7, 100, 300] {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for _ in 0..batch_len {
                buf.extend(record(0, seq, 64));
                ends.push(buf.len());
                seq += 1;
            }
            a.write_batch(&buf, &ends).unwrap();
            expected.extend(buf);
        }
        for bad in [&[10, 5, 64][..], &[0, 64], &[32], &[]] {
            let e = a.write_batch(&record(0, 0, 64), bad).unwrap_err();
            assert_eq!(
                e.io_error().map(std::io::Error::kind),
                Some(std::io::ErrorKind::InvalidInput),
                "{bad:?}"
            );
        }
        a.write_batch(&[], &[]).unwrap();
        a.shutdown().unwrap();
        assert_eq!(read_log(dir.path(), "app"), expected, "{mode:?}");
        let report = verify_ok(dir.path());
        assert_eq!(report.records(), seq);
        for s in sealed(dir.path(), "app") {
            if mode == Mode::Buffered {
                assert!(s.bytes <= 1000, "{mode:?}: {} bytes", s.bytes);
            }
            assert_eq!(s.bytes % 64, 0, "a record split across segments");
        }
    }
}
