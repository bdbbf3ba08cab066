use logcut::{Appender, Mode};

use crate::kit::*;

#[test]
fn dropping_the_last_handle_drains_the_buffer() {
    let dir = TempDir::new("drop");
    {
        let a = Appender::builder()
            .dir(dir.path())
            .mode(Mode::Buffered)
            .max_size(32 << 10)
            .build()
            .unwrap();
        let b = a.clone();
        let t = std::thread::spawn(move || {
            for i in 0..20_000 {
                b.write_record(&record(1, i, 64)).unwrap();
            }
        });
        for i in 0..20_000 {
            a.write_record(&record(0, i, 64)).unwrap();
        }
        t.join().unwrap();
        // Both handles dropped here, without shutdown().
    }
    let report = verify_ok(dir.path());
    assert_eq!(report.records(), 40_000);
    let counts = check_records(&read_log(dir.path(), "app"), 64);
    assert_eq!((counts[&0], counts[&1]), (20_000, 20_000));
    // The session was closed with its totals.
    assert_eq!(report.logs[0].open_sessions, 0);
}

#[test]
fn shutdown_drains_and_later_calls_fail() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("shutdown");
        let a = Appender::builder()
            .dir(dir.path())
            .mode(mode)
            .build()
            .unwrap();
        for i in 0..5_000 {
            a.write_record(&record(0, i, 50)).unwrap();
        }
        a.shutdown().unwrap();
        // Idempotent; later writes and rotations fail, counted as rejected.
        a.shutdown().unwrap();
        assert!(a.rotate().unwrap_err().is_shutdown());
        assert!(a.write_record(b"x\n").unwrap_err().is_shutdown());
        let stats = a.stats();
        assert_eq!(
            (stats.records, stats.records_written, stats.records_rejected),
            (5_000, 5_000, 1),
            "{mode:?}"
        );
        assert_eq!(verify_ok(dir.path()).records(), 5_000);
        check_records(&read_log(dir.path(), "app"), 50);
    }
}

#[test]
fn flush_puts_buffered_records_in_the_file() {
    let dir = TempDir::new("flush");
    let a = Appender::builder()
        .dir(dir.path())
        .mode(Mode::Buffered)
        .no_max_size()
        .build()
        .unwrap();
    for i in 0..1_000 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.flush_records().unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("app.log")).unwrap().len(),
        100_000
    );
    assert_eq!(a.stats().queue_depth, 0);
    a.shutdown().unwrap();
}

#[test]
fn buffered_writers_wait_when_the_buffer_is_full_and_lose_nothing() {
    let dir = TempDir::new("full");
    // A buffer of 4 KiB for 1 MB of records: writers must wait often.
    let a = Appender::builder()
        .dir(dir.path())
        .mode(Mode::Buffered)
        .buffer_size(4096)
        .max_size(64 << 10)
        .build()
        .unwrap();
    write_from_threads(&a, 3, 3_000, 120);
    a.shutdown().unwrap();
    let counts = check_records(&read_log(dir.path(), "app"), 120);
    assert_eq!(counts.values().sum::<u64>(), 9_000);
    verify_ok(dir.path());
}
