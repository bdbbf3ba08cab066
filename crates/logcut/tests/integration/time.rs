use logcut::{Appender, Interval, ManualClock, Mode};

use crate::kit::*;

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn starts(dir: &std::path::Path) -> Vec<(String, Option<u64>, logcut::SealReason)> {
    sealed(dir, "app")
        .into_iter()
        .map(|s| (s.start.to_string(), s.records, s.reason))
        .collect()
}

#[test]
fn cuts_exactly_at_boundaries_in_both_modes() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("time");
        let clock = ManualClock::new(ts("2026-11-24T10:00:00Z"));
        let a = Appender::builder()
            .dir(dir.path())
            .no_max_size()
            .interval(Interval::minutes(15))
            .mode(mode)
            .clock(clock.clone())
            .build()
            .unwrap();
        a.write_record(b"a\n").unwrap();
        clock.set(ts("2026-11-24T10:14:59.999Z"));
        a.write_record(b"b\n").unwrap();
        a.flush_records().unwrap();
        clock.set(ts("2026-11-24T10:15:00Z"));
        a.write_record(b"c\n").unwrap();
        a.flush_records().unwrap();
        // A boundary passing with no write: the background thread cuts.
        clock.set(ts("2026-11-24T10:31:00Z"));
        a.tick().unwrap();
        a.write_record(b"d\n").unwrap();
        a.shutdown().unwrap();
        use logcut::SealReason::*;
        assert_eq!(
            starts(dir.path()),
            [
                ("2026-11-24T10:00:00Z".to_string(), Some(2), Time),
                ("2026-11-24T10:15:00Z".to_string(), Some(1), Time),
                ("2026-11-24T10:30:00Z".to_string(), Some(1), Shutdown),
            ],
            "{mode:?}"
        );
        let seals = sealed(dir.path(), "app");
        assert_eq!(seals[1].file, "app.2026-11-24T10-15-00.000Z.000002.log");
        assert_eq!(read_log(dir.path(), "app"), b"a\nb\nc\nd\n");
        verify_ok(dir.path());
    }
}

#[test]
fn idle_and_small_segments_are_not_cut() {
    let dir = TempDir::new("minsize");
    let clock = ManualClock::new(ts("2026-11-24T10:00:00Z"));
    let a = Appender::builder()
        .dir(dir.path())
        .no_max_size()
        .interval(Interval::hours(1))
        .min_size(10)
        .clock(clock.clone())
        .build()
        .unwrap();
    // Idle for three boundaries: nothing is cut.
    for h in 11..14 {
        clock.set(ts(&format!("2026-11-24T{h}:00:00Z")));
        a.tick().unwrap();
    }
    assert!(sealed(dir.path(), "app").is_empty());
    a.write_record(b"12345\n").unwrap(); // 6 bytes < min_size
    clock.set(ts("2026-11-24T14:00:00Z"));
    a.tick().unwrap();
    a.write_record(b"6789\n").unwrap(); // 11 bytes now, but the boundary has passed
    assert!(
        sealed(dir.path(), "app").is_empty(),
        "cut between boundaries"
    );
    clock.set(ts("2026-11-24T15:00:00Z"));
    a.write_record(b"next\n").unwrap();
    a.shutdown().unwrap();
    use logcut::SealReason::*;
    assert_eq!(
        starts(dir.path()),
        // The empty segment started over in the interval of its first record.
        [
            ("2026-11-24T13:00:00Z".to_string(), Some(2), Time),
            ("2026-11-24T15:00:00Z".to_string(), Some(1), Shutdown)
        ]
    );
    verify_ok(dir.path());
}

#[test]
fn daily_cuts_follow_local_midnight_across_dst() {
    let dir = TempDir::new("dst");
    // America/New_York leaves DST on 2026-11-01: that day has 25 hours.
    let clock = ManualClock::new(ts("2026-10-31T12:00:00Z"));
    let a = Appender::builder()
        .dir(dir.path())
        .no_max_size()
        .interval(Interval::DAILY)
        .time_zone("America/New_York")
        .clock(clock.clone())
        .build()
        .unwrap();
    a.write_record(b"oct 31\n").unwrap();
    clock.set(ts("2026-11-01T03:59:59Z")); // 23:59:59 EDT
    a.write_record(b"still oct 31\n").unwrap();
    clock.set(ts("2026-11-01T04:00:00Z")); // 00:00 EDT
    a.write_record(b"nov 1\n").unwrap();
    clock.set(ts("2026-11-02T04:30:00Z")); // 23:30 EST, 24.5 h later
    a.write_record(b"still nov 1\n").unwrap();
    clock.set(ts("2026-11-02T05:00:00Z")); // 00:00 EST
    a.write_record(b"nov 2\n").unwrap();
    a.shutdown().unwrap();
    use logcut::SealReason::*;
    assert_eq!(
        starts(dir.path()),
        [
            ("2026-10-31T12:00:00Z".to_string(), Some(2), Time),
            ("2026-11-01T04:00:00Z".to_string(), Some(2), Time),
            ("2026-11-02T05:00:00Z".to_string(), Some(1), Shutdown),
        ]
    );
    verify_ok(dir.path());
}

#[test]
fn size_and_time_whichever_comes_first() {
    let dir = TempDir::new("both");
    let clock = ManualClock::new(ts("2026-11-24T10:00:00Z"));
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(10)
        .interval(Interval::HOURLY)
        .mode(Mode::Buffered)
        .clock(clock.clone())
        .build()
        .unwrap();
    a.write_record(b"1234\n").unwrap();
    a.write_record(b"5678\n").unwrap();
    a.write_record(b"size\n").unwrap(); // 15 bytes would exceed 10: cut by size
    a.flush_records().unwrap();
    clock.set(ts("2026-11-24T11:00:00Z"));
    a.write_record(b"time\n").unwrap(); // boundary: cut by time
    a.shutdown().unwrap();
    use logcut::SealReason::*;
    let reasons: Vec<_> = sealed(dir.path(), "app")
        .into_iter()
        .map(|s| (s.records, s.reason))
        .collect();
    assert_eq!(
        reasons,
        [(Some(2), Size), (Some(1), Time), (Some(1), Shutdown)]
    );
    verify_ok(dir.path());
}
