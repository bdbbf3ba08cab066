//! Several appenders, in one process or several, sharing one log
//! (`AppenderBuilder::shared`). Two appenders in one process lock against
//! each other exactly as two processes do (`flock` belongs to the open
//! file), so most cases run in process, on a manual clock, with the checks
//! driven by `reopen()`; the torture test runs child processes.

use std::{collections::HashMap, io::Write, process::Stdio, time::Duration};

use logcut::{Appender, ManualClock, Mode};
use logcut_format::manifest::{Entry, Manifest, SealReason};

use crate::kit::{
    Parser, TempDir, check_records, child_test, read_log, record, relay_child, sealed, tag,
    verify_ok,
};

const LEN: usize = 48;

fn shared(dir: &std::path::Path, mode: Mode, clock: &ManualClock) -> Appender {
    Appender::builder()
        .dir(dir)
        .manual_only()
        .mode(mode)
        .shared(true)
        .clock(clock.clone())
        .watch_interval(Some(Duration::from_secs(3600)))
        .build()
        .unwrap()
}

fn write(a: &Appender, writer: usize, ids: std::ops::Range<u64>) {
    for i in ids {
        (&*a).write_all(&record(writer, i, LEN)).unwrap();
    }
    a.flush_records().unwrap();
}

/// The `part` entries of the manifest: (seq, session) -> records.
fn parts(dir: &std::path::Path) -> Vec<(u64, u64)> {
    let m = Manifest::read(&dir.join("app.manifest")).unwrap();
    m.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Part(p) => Some((p.seq, p.records)),
            _ => None,
        })
        .collect()
}

#[test]
fn two_appenders_follow_each_others_cuts_and_each_segment_is_sealed_once() {
    // Writer 0 Direct and writer 1 Buffered, then the other way round.
    for (mode_a, mode_b) in [
        (Mode::Direct, Mode::Buffered),
        (Mode::Buffered, Mode::Direct),
    ] {
        let tmp = TempDir::new("shared-two");
        let dir = tmp.path();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let a = shared(dir, mode_a, &clock);
        let b = shared(dir, mode_b, &clock);
        write(&a, 0, 0..10);
        write(&b, 1, 0..10);
        // `a` cuts segment 1. Its seal waits until `b` has left it.
        a.rotate().unwrap();
        write(&a, 0, 10..12);
        // A Direct `b` looks at its file every 16 records it writes there:
        // it has not yet, so it still writes segment 1. A Buffered `b`
        // looks before each batch: it sees the mark `a` left on segment 1
        // (its write bits removed) and follows first.
        write(&b, 1, 10..15);
        let lag = if mode_b == Mode::Direct { 5 } else { 0 };
        if mode_b == Mode::Direct {
            assert!(sealed(dir, "app").is_empty(), "sealed while b writes it");
        }
        // At its check `b` follows to segment 2 (if it had not) and
        // records its part of 1; then `a` can seal 1.
        b.reopen().unwrap();
        a.tick().unwrap();
        let seals = sealed(dir, "app");
        assert_eq!(seals.len(), 1);
        assert_eq!(seals[0].seq, 1);
        assert_eq!(seals[0].records, Some(20 + lag));
        assert_eq!(seals[0].first, None);
        assert_eq!(seals[0].reason, SealReason::Manual);
        let one = std::fs::read(dir.join(&seals[0].file)).unwrap();
        assert_eq!(one.len(), (20 + lag as usize) * LEN);
        let counts = check_records(&one, LEN);
        assert_eq!((counts[&0], counts[&1]), (10, 10 + lag));

        // Now `b` cuts segment 2, which holds `a`'s 2 records (and `b`'s
        // 5 if it followed before writing them).
        b.rotate().unwrap();
        write(&b, 1, 15..18);
        a.reopen().unwrap();
        b.tick().unwrap();
        let seals = sealed(dir, "app");
        assert_eq!(seals.len(), 2);
        assert_eq!((seals[1].seq, seals[1].records), (2, Some(2 + 5 - lag)));

        // `a` leaves first (its part of segment 3), `b` last: it seals 3.
        write(&a, 0, 12..13);
        a.shutdown().unwrap();
        assert_eq!(sealed(dir, "app").len(), 2, "a is not the last");
        b.shutdown().unwrap();
        let seals = sealed(dir, "app");
        assert_eq!(seals.len(), 3);
        assert_eq!((seals[2].seq, seals[2].records), (3, Some(4)));
        assert_eq!(seals[2].reason, SealReason::Shutdown);
        assert!(crate::kit::last_at_active(dir, "app"));
        // Parts: per segment, what each appender wrote there.
        let mut p = parts(dir);
        p.sort();
        let mut want = vec![(1, 10), (1, 10 + lag), (2, 2), (2, 5 - lag), (3, 1), (3, 3)];
        want.sort();
        assert_eq!(p, want);
        let report = verify_ok(dir);
        assert_eq!(report.records(), 31);
        let counts = check_records(&read_log(dir, "app"), LEN);
        assert_eq!((counts[&0], counts[&1]), (13, 18));
    }
}

#[test]
fn writers_see_a_cut_segment_at_once_and_follow_without_waiting_for_their_check() {
    let tmp = TempDir::new("shared-probe");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    // Checks every hour on a clock that does not move: only the probe can
    // make `b` follow.
    let a = shared(dir, Mode::Direct, &clock);
    let b = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 0..3);
    a.rotate().unwrap();
    // The segment `a` cut is read-only now: that is the mark.
    let sealed_file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".000001.log"))
        .unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&sealed_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o440);
    // `b` looks at its file every 16 records it writes: the 16th sees the
    // mark, and its background thread follows (`tick` waits for that
    // round of work; without the probe it would not follow for an hour).
    write(&b, 1, 0..16);
    b.tick().unwrap();
    write(&b, 1, 16..17);
    crate::kit::wait_for("b to record its part of segment 1", || {
        parts(dir).iter().filter(|(seq, _)| *seq == 1).count() == 2
    });
    a.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!((seals.len(), seals[0].records), (1, Some(3 + 16)));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (3, 17));
}

#[test]
fn size_limit_counts_the_other_writers_bytes() {
    let tmp = TempDir::new("shared-size");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let build = || {
        Appender::builder()
            .dir(dir)
            .max_size(10 * LEN as u64)
            .shared(true)
            .clock(clock.clone())
            .watch_interval(Some(Duration::from_secs(3600)))
            .build()
            .unwrap()
    };
    let a = build();
    let b = build();
    write(&a, 0, 0..6);
    write(&b, 1, 0..6);
    // 12 records in the file: over the limit, but neither wrote 10. At its
    // next check `a` sees the file's length and cuts.
    a.reopen().unwrap();
    b.reopen().unwrap();
    a.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals.len(), 1);
    assert_eq!(
        (seals[0].records, seals[0].reason.clone()),
        (Some(12), SealReason::Size)
    );
    // Once a check has shown `b` the other's bytes, its writer that
    // crosses the limit asks for the cut itself: 4 of a's records and 7
    // of b's, where b alone would be far below the limit. (The cut runs on
    // b's background thread: the record that crossed goes to the old
    // segment or the new one.)
    write(&a, 0, 6..10);
    b.reopen().unwrap();
    write(&b, 1, 6..13);
    b.reopen().unwrap();
    a.reopen().unwrap();
    b.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals.len(), 2);
    assert!(matches!(seals[1].records, Some(10 | 11)), "{seals:?}");
    assert_eq!(seals[1].reason, SealReason::Size);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (10, 13));
}

#[test]
fn exclusive_and_shared_appenders_refuse_each_other() {
    let tmp = TempDir::new("shared-lock");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    let err = Appender::builder().dir(dir).build().unwrap_err();
    assert!(err.to_string().contains("others sharing it"), "{err}");
    let b = shared(dir, Mode::Direct, &clock);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    // Everyone left: an exclusive appender takes the log, and then a
    // shared one is refused.
    let c = Appender::builder().dir(dir).build().unwrap();
    let err = Appender::builder()
        .dir(dir)
        .shared(true)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("does not share it"), "{err}");
    c.shutdown().unwrap();
    verify_ok(dir);
}

#[test]
fn a_cut_left_half_done_by_a_killed_process_is_finished() {
    let tmp = TempDir::new("shared-repair");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    let b = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 0..3);
    write(&b, 1, 0..4);
    // What a process killed in the middle of a cut leaves: the next
    // segment created and named in the cut file, not yet at the active
    // path.
    let next = dir.join("app.log.next.2");
    std::fs::write(&next, b"").unwrap();
    let md = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&next).unwrap());
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&next).unwrap());
    std::fs::write(
        dir.join("app.cut"),
        format!("active seq=2 dev={dev} ino={md}\n"),
    )
    .unwrap();
    // The active file did not change, so nobody notices until the next
    // cut: `b`'s finishes the interrupted one first (and has nothing left
    // to cut); `a` follows.
    b.rotate().unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join("app.log")).unwrap()),
        md
    );
    assert!(!next.exists());
    a.reopen().unwrap();
    b.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!((seals[0].seq, seals[0].records), (1, Some(7)));
    write(&a, 0, 3..5);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (5, 4));
}

#[test]
fn an_active_file_moved_away_is_replaced_once() {
    let tmp = TempDir::new("shared-moved");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    let b = shared(dir, Mode::Buffered, &clock);
    write(&a, 0, 0..3);
    write(&b, 1, 0..2);
    std::fs::rename(dir.join("app.log"), dir.join("moved.log")).unwrap();
    // Both notice; one of them installs a new active file, the other
    // follows to it.
    a.reopen().unwrap();
    b.reopen().unwrap();
    write(&a, 0, 3..4);
    write(&b, 1, 2..3);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals.len(), 2, "{seals:?}");
    assert_eq!(
        (
            seals[0].file.as_str(),
            seals[0].records,
            seals[0].reason.clone()
        ),
        ("-", Some(5), SealReason::Reopen)
    );
    assert_eq!(seals[1].records, Some(2));
    let report = verify_ok(dir);
    assert_eq!(report.logs[0].segments_moved, 1);
    let moved = std::fs::read(dir.join("moved.log")).unwrap();
    assert_eq!(moved.len(), 5 * LEN);
    let all = [moved, read_log(dir, "app")].concat();
    let counts = check_records(&all, LEN);
    assert_eq!((counts[&0], counts[&1]), (4, 3));
}

const TORTURE_LEN: usize = 64;

/// One writer process of `four_processes_share_one_log_and_one_is_killed`:
/// writes `LOGCUT_ST_COUNT` records with its id, printing how many are
/// written every 500 (in Direct mode a printed count is in the file), and
/// its stats once it has shut down.
#[test]
#[ignore = "run as a child process by four_processes_share_one_log_and_one_is_killed"]
fn shared_torture_child() {
    let var = |k: &str| std::env::var(k).expect(k);
    let dir = std::path::PathBuf::from(var("LOGCUT_ST_DIR"));
    let id: usize = var("LOGCUT_ST_ID").parse().unwrap();
    let count: u64 = var("LOGCUT_ST_COUNT").parse().unwrap();
    let mode = match var("LOGCUT_ST_MODE").as_str() {
        "direct" => Mode::Direct,
        _ => Mode::Buffered,
    };
    let b = Appender::builder()
        .dir(&dir)
        .max_size(64 << 10)
        .mode(mode)
        .shared(true)
        .fsync(logcut::Fsync::Never)
        // Time to seal what this one cut once the others have left it,
        // however loaded the machine.
        .shutdown_timeout(Duration::from_secs(120))
        .watch_interval(Some(Duration::from_millis(5)));
    // Every writer watches the trigger file (created by the test first);
    // whichever acts first cuts, the others follow.
    #[cfg(feature = "trigger")]
    let b = b.trigger_file(dir.join("app.trigger"));
    let a = b.build().unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        (&a).write_all(&record(id, i, TORTURE_LEN)).unwrap();
        if (i + 1) % 500 == 0 {
            writeln!(out, "written {}", i + 1).unwrap();
            out.flush().unwrap();
        }
    }
    a.shutdown().unwrap();
    // What the parent checks against the manifest: the segments this
    // process sealed, and the triggers it took.
    let s = a.stats();
    writeln!(out, "done {} {}", s.rotations, s.triggers).unwrap();
}

#[test]
fn four_processes_share_one_log_and_one_is_killed() {
    let _heavy = crate::kit::heavy();
    const COUNT: u64 = 100_000;
    const MAX: u64 = 64 << 10;
    let tmp = TempDir::new("shared-torture");
    let dir = tmp.path();
    std::fs::create_dir_all(dir).unwrap();
    let trigger = dir.join("app.trigger");
    std::fs::write(&trigger, b"").unwrap();
    // This process takes part too: it starts the log, and cuts it from
    // outside the writers (`rotate`) each time writer 1 reports progress;
    // each time writer 2 does, it touches the writers' trigger file.
    let main = Appender::builder()
        .dir(dir)
        .shared(true)
        .fsync(logcut::Fsync::Never)
        .watch_interval(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    enum Msg {
        Written(u64),
        /// The writer shut down: the segments it sealed, the triggers it
        /// took.
        Done(u64, u64),
        Closed,
    }
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Msg)>();
    let mut children = Vec::new();
    for id in 0..4usize {
        let mode = if id < 2 { "direct" } else { "buffered" };
        let mut child = child_test("shared::shared_torture_child")
            .env("LOGCUT_ST_DIR", dir)
            .env("LOGCUT_ST_ID", id.to_string())
            .env("LOGCUT_ST_COUNT", COUNT.to_string())
            .env("LOGCUT_ST_MODE", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let parse = |words: &[&str]| match words {
            [.., "written", n] => Some(Msg::Written(n.parse().unwrap())),
            [.., "done", r, t] => Some(Msg::Done(r.parse().unwrap(), t.parse().unwrap())),
            // The test harness's own lines.
            _ => None,
        };
        relay_child(
            id,
            child.stdout.take().unwrap(),
            tx.clone(),
            parse,
            Msg::Closed,
        );
        children.push(child);
    }
    drop(tx);
    // Writer 0 (Direct) is killed once it has written a quarter.
    let mut killed_after = None;
    let mut finished = 0;
    let mut rotations = 0;
    let mut touches = 0;
    let mut done: HashMap<usize, (u64, u64)> = HashMap::new();
    while finished < 4 {
        let (id, msg) = rx.recv().unwrap();
        match (id, msg) {
            (_, Msg::Closed) => finished += 1,
            (_, Msg::Done(r, t)) => {
                done.insert(id, (r, t));
            }
            (0, Msg::Written(n)) if killed_after.is_none() && n >= COUNT / 4 => {
                children[0].kill().unwrap();
                killed_after = Some(n);
            }
            (1, Msg::Written(_)) => {
                main.rotate().unwrap();
                rotations += 1;
            }
            // The writers' trigger file, touched from outside (feature
            // `trigger`; without it, the touches change nothing).
            (2, Msg::Written(_)) => {
                crate::kit::touch(&trigger);
                touches += 1;
            }
            _ => {}
        }
    }
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
    for (id, c) in children.iter_mut().enumerate() {
        let status = c.wait().unwrap();
        assert!(id == 0 || status.success(), "writer {id}: {status}");
    }
    let killed_after = killed_after.expect("writer 0 was not killed");
    main.shutdown().unwrap();
    // Writer 1 reports every 500 records: exactly that many cuts asked
    // for from outside, and as many touches for writer 2.
    assert_eq!((rotations, touches), (COUNT / 500, COUNT / 500));
    assert!(!done.contains_key(&0), "the killed writer finished");
    assert_eq!(done.len(), 3, "writers 1 to 3 report their stats");
    // Whatever the killed writer left unsealed (a cut or a seal under way)
    // is recovered by the next appender to start alone.
    Appender::builder()
        .dir(dir)
        .shared(true)
        .build()
        .unwrap()
        .shutdown()
        .unwrap();
    let report = verify_ok(dir);
    let data = read_log(dir, "app");
    let seals = sealed(dir, "app");
    // How many segments there are is not known: a cut by size comes when
    // a writer sees the limit crossed, and the segment grows by what the
    // processes write until the cutter's background thread makes the cut
    // (in shared mode nothing bounds that); a `rotate()` or a trigger that
    // finds the segment empty cuts nothing; and the killed writer's cuts
    // are not counted anywhere. What is known is checked exactly instead:
    // the segments hold every byte of the log; each process sealed exactly
    // the segments its stats count, in its own name; none of this
    // process's 200 `rotate()` calls cut twice (one that finds another
    // process's cut first follows it and cuts nothing: this process's own
    // records, none here, are in the segment the other one cut; in runs
    // here 100 to 130 of them cut); no writer's triggers cut more often
    // than it took triggers; and a cut by size is made only once the next
    // record would take the segment past the limit.
    assert_eq!(
        seals.iter().map(|s| s.bytes).sum::<u64>(),
        data.len() as u64,
        "the segments' bytes against the log's"
    );
    for s in &seals {
        if s.reason == SealReason::Size {
            assert!(
                s.bytes + TORTURE_LEN as u64 > MAX,
                "a segment cut by size before the limit: {s:?}"
            );
        }
    }
    let m = Manifest::read(&dir.join("app.manifest")).unwrap();
    let session_of = |pid: u32| -> Vec<String> {
        m.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Open(o) if o.pid == pid => Some(o.session.clone()),
                _ => None,
            })
            .collect()
    };
    let by = |session: &str, reason: Option<SealReason>| {
        seals
            .iter()
            .filter(|s| s.session == session && reason.as_ref().is_none_or(|r| s.reason == *r))
            .count() as u64
    };
    // This process opened the log twice: `main`, then the recovery.
    let ours = session_of(std::process::id());
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(by(&ours[0], None), main.stats().rotations, "main's seals");
    let manual = by(&ours[0], Some(SealReason::Manual));
    assert!(
        (1..=rotations).contains(&manual),
        "{manual} manual cuts from {rotations} rotate() calls"
    );
    for (w, (rot, trig)) in &done {
        let session = session_of(pids[*w]);
        assert_eq!(session.len(), 1, "writer {w}: {session:?}");
        assert_eq!(by(&session[0], None), *rot, "writer {w}'s seals");
        let cuts = by(&session[0], Some(SealReason::Manual));
        assert!(
            cuts <= *trig,
            "writer {w}: {cuts} cuts from {trig} triggers"
        );
    }
    // The rest: the killed writer's own cuts, and the segments it left
    // unsealed, which the recovery recorded in its name (the appender that
    // recovered wrote nothing, and sealed nothing of its own).
    let killed = session_of(pids[0]);
    assert_eq!(killed.len(), 1);
    let survivors: Vec<String> = done
        .keys()
        .map(|w| session_of(pids[*w])[0].clone())
        .collect();
    assert_eq!(by(&ours[1], None), 0, "the recovery's own seals");
    for s in &seals {
        if s.session != ours[0] && !survivors.contains(&s.session) {
            assert!(
                s.session == killed[0]
                    && matches!(
                        s.reason,
                        SealReason::Size | SealReason::Manual | SealReason::Recovery
                    ),
                "{s:?}"
            );
        }
    }
    for reason in [SealReason::Size, SealReason::Manual] {
        assert!(
            seals.iter().any(|s| s.reason == reason),
            "no {reason:?} cut"
        );
    }
    let r = Parser::fixed(TORTURE_LEN).killed(&tag(0)).parse(&data);
    for w in 1..4 {
        assert_eq!(r.count(&tag(w)), COUNT, "writer {w}");
    }
    // Everything the killed writer reported written is there, once, in
    // order (the parser checked the order, and that a torn record, if
    // any, is the start of its next one); and nothing after it.
    assert!(
        r.count(&tag(0)) >= killed_after,
        "{} of writer 0's records, {killed_after} reported",
        r.count(&tag(0))
    );
    // verify compared each finished session's accepted records with its
    // parts: the 3 surviving writers, this process's two appenders. Only
    // the killed writer's session is open.
    let log = &report.logs[0];
    assert_eq!((log.sessions, log.open_sessions), (6, 1));
}

#[test]
fn a_time_boundary_is_cut_once_whoever_sees_it_first() {
    let tmp = TempDir::new("shared-time");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:10:00Z".parse().unwrap());
    let build = |mode| {
        Appender::builder()
            .dir(dir)
            .no_max_size()
            .interval(logcut::Interval::HOURLY)
            .mode(mode)
            .shared(true)
            .clock(clock.clone())
            .watch_interval(Some(Duration::from_secs(7200)))
            .build()
            .unwrap()
    };
    let a = build(Mode::Direct);
    let b = build(Mode::Buffered);
    write(&a, 0, 0..3);
    write(&b, 1, 0..4);
    clock.advance(Duration::from_secs(3600));
    // Both background threads see the boundary (the clock wakes them); one
    // cuts, the other follows. Each command runs a round of their work.
    for _ in 0..2 {
        a.reopen().unwrap();
        b.reopen().unwrap();
    }
    write(&a, 0, 3..4);
    write(&b, 1, 4..5);
    a.tick().unwrap();
    b.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals.len(), 1, "{seals:?}");
    assert_eq!(
        (seals[0].records, seals[0].reason.clone()),
        (Some(7), SealReason::Time)
    );
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals.len(), 2);
    assert_eq!(seals[1].records, Some(2));
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (4, 5));
}

/// Runs `f` on another thread and fails the test if it has not returned
/// within 60 s (a hang is the failure this guards against; nothing waits
/// for the time to pass).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not return"))
}

#[test]
fn parts_recorded_before_the_sealer_joined_are_counted() {
    let tmp = TempDir::new("shared-early-parts");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    let b = shared(dir, Mode::Direct, &clock);
    write(&b, 1, 0..5);
    // `b` leaves segment 1 (its part) before `c` joins; `c` cuts and seals
    // segment 1, and must count b's part.
    b.shutdown().unwrap();
    let c = shared(dir, Mode::Direct, &clock);
    write(&c, 2, 0..3);
    write(&a, 0, 0..2);
    c.rotate().unwrap();
    a.reopen().unwrap();
    c.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(seals[0].records, Some(10));
    a.shutdown().unwrap();
    c.shutdown().unwrap();
    verify_ok(dir);
}

#[test]
fn sequence_numbers_stay_consecutive_across_restarts_and_modes() {
    let tmp = TempDir::new("shared-restart");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    // A run that writes nothing, then one that writes: no gap.
    shared(dir, Mode::Direct, &clock).shutdown().unwrap();
    let a = shared(dir, Mode::Direct, &clock);
    let b = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 0..3);
    a.rotate().unwrap();
    b.reopen().unwrap();
    a.tick().unwrap();
    // Segment 2 stays empty: `a` leaves it (an empty part), `b` removes
    // it last and hands its number back.
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    assert_eq!(sealed(dir, "app").len(), 1);
    // An exclusive appender then takes segment 2; the empty parts that
    // name it do not count against it.
    let e = Appender::builder()
        .dir(dir)
        .manual_only()
        .clock(clock.clone())
        .build()
        .unwrap();
    write(&e, 5, 0..3);
    e.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(
        seals.iter().map(|s| (s.seq, s.records)).collect::<Vec<_>>(),
        vec![(1, Some(3)), (2, Some(3))]
    );
    // And a shared run after it continues at 3.
    let a = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 3..4);
    a.shutdown().unwrap();
    assert_eq!(sealed(dir, "app")[2].seq, 3);
    verify_ok(dir);
}

#[test]
fn a_process_joins_while_a_cut_is_left_interrupted_and_it_is_repaired() {
    let tmp = TempDir::new("shared-join-repair");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 0..3);
    let next = dir.join("app.log.next.2");
    std::fs::write(&next, b"").unwrap();
    let md = std::fs::metadata(&next).unwrap();
    let (dev, ino) = (
        std::os::unix::fs::MetadataExt::dev(&md),
        std::os::unix::fs::MetadataExt::ino(&md),
    );
    std::fs::write(
        dir.join("app.cut"),
        format!("active seq=2 dev={dev} ino={ino}\n"),
    )
    .unwrap();
    // A process joins meanwhile: it starts in the file at the active path.
    let c = shared(dir, Mode::Buffered, &clock);
    // Before writing its first batch, `c` looks at the cut file, sees it
    // name segment 2, and finishes the cut itself (its records go to
    // segment 2); `a` follows at its next check.
    write(&c, 2, 0..2);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join("app.log")).unwrap()),
        ino
    );
    a.reopen().unwrap();
    c.reopen().unwrap();
    a.tick().unwrap();
    c.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!((seals.len(), seals[0].records), (1, Some(3)));
    write(&c, 2, 2..3);
    a.shutdown().unwrap();
    c.shutdown().unwrap();
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&2]), (3, 3));
}

#[test]
fn shutdown_keeps_its_deadline_while_another_process_holds_a_segment() {
    let tmp = TempDir::new("shared-deadline");
    let dir = tmp.path().to_path_buf();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let build = || {
        Appender::builder()
            .dir(&dir)
            .manual_only()
            .shared(true)
            .clock(clock.clone())
            .shutdown_timeout(Duration::from_millis(200))
            .watch_interval(Some(Duration::from_secs(3600)))
            .build()
            .unwrap()
    };
    let a = build();
    let b = build();
    write(&a, 0, 0..3);
    write(&b, 1, 0..3);
    // `a` cuts segment 1 and shuts down while `b`, which checks once an
    // hour, still writes it: `a` gives up sealing it at its deadline.
    a.rotate().unwrap();
    write(&a, 0, 3..5);
    let one = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".000001.log"))
        .expect("segment 1 under its sealed name");
    // A real-time bound: the deadline is 200 ms, and a shutdown that
    // waited for `b` would wait an hour (its check interval). 10 s leaves
    // room for a loaded machine and is still far from both.
    let started = std::time::Instant::now();
    let res = within_a_minute("a.shutdown()", move || a.shutdown());
    let took = started.elapsed();
    // It gave up at its deadline, not before.
    assert!(
        (Duration::from_millis(200)..Duration::from_secs(10)).contains(&took),
        "shutdown took {took:?}"
    );
    // The segment it could not seal is reported: a time-out sealing it.
    let err = res.expect_err("the unsealed segment is reported");
    assert!(err.is_io(), "{err}");
    assert_eq!(err.operation(), "seal", "{err}");
    assert_eq!(err.path(), Some(one.as_path()), "{err}");
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::TimedOut),
        "{err}"
    );
    // `b` leaves last: it follows to a's segment 2 and seals it.
    b.shutdown().unwrap();
    assert!(crate::kit::last_at_active(&dir, "app"));
    let seals = sealed(&dir, "app");
    assert_eq!(
        seals.iter().map(|s| (s.seq, s.records)).collect::<Vec<_>>(),
        vec![(2, Some(2))]
    );
    // Segment 1 is left for the next appender that starts alone.
    build().shutdown().unwrap();
    let seals = sealed(&dir, "app");
    assert_eq!(seals.len(), 2);
    assert_eq!((seals[1].seq, seals[1].records), (1, None));
    let report = verify_ok(&dir);
    assert_eq!(report.logs[0].segments_unknown_records, 1);
    let counts = check_records(&read_log(&dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (5, 3));
}

/// Directories at every sealed name segment `seq` could get: linking it to
/// a sealed name fails.
fn block_sealed_names(dir: &std::path::Path, seq: u64) -> Vec<std::path::PathBuf> {
    let start = jiff::Timestamp::from_second(1_767_225_600).unwrap();
    (0..=1000)
        .map(|dup| {
            let n = logcut_format::name::SealedName {
                start_ms: start.as_millisecond(),
                seq,
                dup,
            }
            .file_name("app");
            let p = dir.join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect()
}

#[test]
fn a_cut_whose_link_failed_is_finished_by_its_process_or_another() {
    for finisher in ["self", "other", "other, who cuts again"] {
        let tmp = TempDir::new("shared-link-fails");
        let dir = tmp.path().to_path_buf();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let a = shared(&dir, Mode::Direct, &clock);
        let b = shared(&dir, Mode::Direct, &clock);
        write(&a, 0, 0..3);
        write(&b, 1, 0..3);
        let blocks = block_sealed_names(&dir, 1);
        let err = a.rotate().unwrap_err();
        assert!(err.to_string().contains("seal"), "{err}");
        for p in blocks {
            std::fs::remove_dir(p).unwrap();
        }
        write(&a, 0, 3..5);
        // The next look under the cut lock finishes the cut: a's own
        // retry, or b finding the cut interrupted.
        let (x, y) = if finisher == "self" { (a, b) } else { (b, a) };
        x.reopen().unwrap();
        let again = finisher.ends_with("again");
        if again {
            // `b` cuts segment 2 (a's 2 records) before `a` looks again:
            // a's retry must see that its cut was finished, not redo it.
            x.rotate().unwrap();
        }
        y.reopen().unwrap();
        let (x, y) = within_a_minute("the ticks", move || {
            x.tick().unwrap();
            y.tick().unwrap();
            (x, y)
        });
        let seals = sealed(&dir, "app");
        let want: Vec<(u64, Option<u64>)> = if again {
            vec![(1, Some(6)), (2, Some(2))]
        } else {
            vec![(1, Some(6))]
        };
        assert_eq!(
            seals.iter().map(|s| (s.seq, s.records)).collect::<Vec<_>>(),
            want,
            "{finisher}"
        );
        assert!(
            !crate::kit::files(&dir)
                .iter()
                .any(|f| f.contains("foreign")),
            "{finisher}"
        );
        within_a_minute("the shutdowns", move || {
            x.shutdown().unwrap();
            y.shutdown().unwrap();
        });
        verify_ok(&dir);
        let counts = check_records(&read_log(&dir, "app"), LEN);
        assert_eq!((counts[&0], counts[&1]), (5, 3), "{finisher}");
    }
}

#[test]
fn empty_records_count_in_a_shared_log() {
    let tmp = TempDir::new("shared-empty-records");
    let dir = tmp.path();
    let clock = ManualClock::new("2026-01-01T00:10:00Z".parse().unwrap());
    let a = Appender::builder()
        .dir(dir)
        .no_max_size()
        .interval(logcut::Interval::HOURLY)
        .shared(true)
        .clock(clock.clone())
        .watch_interval(Some(Duration::from_secs(7200)))
        .build()
        .unwrap();
    // Records of no bytes: the segment is empty on disk but not of records.
    a.write_record(b"").unwrap();
    clock.advance(Duration::from_secs(3600));
    a.tick().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(
        seals
            .iter()
            .map(|s| (s.records, s.bytes))
            .collect::<Vec<_>>(),
        vec![(Some(1), 0)]
    );
    a.write_record(b"").unwrap();
    a.rotate().unwrap();
    a.write_record(b"").unwrap();
    // The last one out seals it rather than removing it as empty.
    a.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(
        seals.iter().map(|s| s.records).collect::<Vec<_>>(),
        vec![Some(1), Some(1), Some(1)]
    );
    verify_ok(dir);
}

#[test]
fn a_lone_buffered_writer_counts_its_own_bytes_once() {
    let tmp = TempDir::new("shared-buffered-size");
    let dir = tmp.path();
    let a = Appender::builder()
        .dir(dir)
        .max_size(10 * LEN as u64)
        .mode(Mode::Buffered)
        .shared(true)
        .build()
        .unwrap();
    for i in 0..20 {
        (&a).write_all(&record(0, i, LEN)).unwrap();
        a.flush_records().unwrap();
    }
    a.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(
        seals.iter().map(|s| s.records).collect::<Vec<_>>(),
        vec![Some(10), Some(10)]
    );
    verify_ok(dir);
}

/// A writer of `recovery_after_an_interrupted_cut_leaves_no_gap` that
/// crashes: writes 3 records and aborts.
#[test]
#[ignore = "run as a child process by recovery_after_an_interrupted_cut_leaves_no_gap"]
fn shared_crash_child() {
    let dir = std::path::PathBuf::from(std::env::var("LOGCUT_SC_DIR").unwrap());
    let a = Appender::builder().dir(&dir).shared(true).build().unwrap();
    write(&a, 0, 0..3);
    std::process::abort();
}

#[test]
fn recovery_after_an_interrupted_cut_leaves_no_gap() {
    let tmp = TempDir::new("shared-crash-cut");
    let dir = tmp.path();
    let status = child_test("shared::shared_crash_child")
        .env("LOGCUT_SC_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    // What a cut interrupted by the crash leaves: the next segment created
    // and named in the cut file, the active file not yet moved.
    let next = dir.join("app.log.next.2");
    std::fs::write(&next, b"").unwrap();
    let md = std::fs::metadata(&next).unwrap();
    std::fs::write(
        dir.join("app.cut"),
        format!(
            "active seq=2 dev={} ino={}\n",
            std::os::unix::fs::MetadataExt::dev(&md),
            std::os::unix::fs::MetadataExt::ino(&md)
        ),
    )
    .unwrap();
    // The next appender starts alone: the active file is segment 1, the
    // empty next one is dropped and its number used again.
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = shared(dir, Mode::Direct, &clock);
    write(&a, 0, 3..5);
    a.shutdown().unwrap();
    let seals = sealed(dir, "app");
    assert_eq!(
        seals.iter().map(|s| (s.seq, s.records)).collect::<Vec<_>>(),
        vec![(1, None), (2, Some(2))]
    );
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!(counts[&0], 5);
}

#[cfg(feature = "trigger")]
#[test]
fn one_touch_of_a_shared_trigger_file_cuts_once() {
    let _heavy = crate::kit::heavy();
    let tmp = TempDir::new("shared-trigger");
    let dir = tmp.path();
    std::fs::create_dir_all(dir).unwrap();
    let trigger = dir.join("app.trigger");
    std::fs::write(&trigger, b"").unwrap();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let build = |mode| {
        Appender::builder()
            .dir(dir)
            .manual_only()
            .mode(mode)
            .shared(true)
            .clock(clock.clone())
            .watch_interval(Some(Duration::from_secs(3600)))
            .trigger_file(&trigger)
            .build()
            .unwrap()
    };
    let a = build(Mode::Direct);
    let b = build(Mode::Buffered);
    for round in 0..5u64 {
        write(&a, 0, round * 2..round * 2 + 2);
        write(&b, 1, round..round + 1);
        crate::kit::touch(&trigger);
        // Both watch the file; one of them (the holder of the trigger
        // lock) acts on the touch. The commands let each follow the other.
        crate::kit::wait_for("the touch to cut", || {
            a.reopen().unwrap();
            b.reopen().unwrap();
            sealed(dir, "app").len() as u64 > round
        });
    }
    // Only one of them acted on the trigger file, every time.
    let (ta, tb) = (a.stats().triggers, b.stats().triggers);
    assert!(ta == 0 || tb == 0, "both acted: {ta} {tb}");
    assert!(ta + tb >= 5);
    a.reopen().unwrap();
    b.reopen().unwrap();
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    verify_ok(dir);
    let counts = check_records(&read_log(dir, "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (10, 5));
}

/// A bucket in a directory, for processes that share a log: each upload
/// writes the object (an upload made again writes the same bytes) and
/// appends its key to `uploads`, so that the test counts them.
#[cfg(all(feature = "ship", feature = "zstd"))]
#[derive(Debug)]
struct DirBucket(std::path::PathBuf);

#[cfg(all(feature = "ship", feature = "zstd"))]
impl logcut::Ship for DirBucket {
    fn ship(&self, seg: &logcut::ShipSegment<'_>) -> std::io::Result<logcut::Shipped> {
        let data = std::fs::read(seg.dir.join(seg.file))?;
        if data.len() as u64 != seg.bytes || crc32fast::hash(&data) != seg.crc32 {
            return Err(std::io::Error::other("not the file the keeper hashed"));
        }
        std::fs::write(self.0.join(seg.file), &data)?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.0.join("uploads"))?;
        log.write_all(format!("{}\n", seg.file).as_bytes())?;
        Ok(logcut::Shipped {
            key: seg.file.to_string(),
            etag: None,
        })
    }
}

#[cfg(all(feature = "ship", feature = "zstd"))]
const KEEP_LEN: usize = 100;
#[cfg(all(feature = "ship", feature = "zstd"))]
const KEEP: usize = 5;

/// A writer of `three_processes_compress_ship_and_keep_a_shared_log_once`:
/// writes `LOGCUT_SK_COUNT` records with its id to the shared log in
/// `LOGCUT_SK_DIR`, compressed, shipped to `LOGCUT_SK_BUCKET` and kept to
/// 5 segments, printing its progress every 500 records and its stats at
/// the end.
#[cfg(all(feature = "ship", feature = "zstd"))]
#[test]
#[ignore = "run as a child process by three_processes_compress_ship_and_keep_a_shared_log_once"]
fn shared_keeper_child() {
    let var = |k: &str| std::env::var(k).expect(k);
    let id: usize = var("LOGCUT_SK_ID").parse().unwrap();
    let count: u64 = var("LOGCUT_SK_COUNT").parse().unwrap();
    let a = shared_keeper(
        std::path::Path::new(&var("LOGCUT_SK_DIR")),
        &var("LOGCUT_SK_BUCKET"),
    );
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        (&a).write_all(&record(id, i, KEEP_LEN)).unwrap();
        if (i + 1) % 500 == 0 {
            writeln!(out, "written {}", i + 1).unwrap();
            out.flush().unwrap();
        }
    }
    a.shutdown().unwrap();
    let s = a.stats();
    writeln!(out, "done {} {}", s.segments_compressed, s.segments_shipped).unwrap();
}

#[cfg(all(feature = "ship", feature = "zstd"))]
fn shared_keeper(dir: &std::path::Path, bucket: &str) -> Appender {
    Appender::builder()
        .dir(dir)
        .max_size(16 << 10)
        .mode(Mode::Buffered)
        .shared(true)
        .fsync(logcut::Fsync::Never)
        .watch_interval(Some(Duration::from_millis(5)))
        .compress(logcut::Compression::zstd())
        .keep(KEEP)
        .ship(std::sync::Arc::new(DirBucket(bucket.into())))
        // Shutdown finishes the compressions and uploads it finds still to
        // do, within this deadline: the checks below count on it, and on a
        // loaded machine the default 5 s was not enough (the last keeper
        // left uploads to the next start: found in CI).
        .shutdown_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// The pid holding an exclusive `flock` on `path`, from `/proc/locks`.
#[cfg(all(feature = "ship", feature = "zstd"))]
fn flock_holder(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    locks.lines().find_map(|l| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let w: Vec<&str> = l.split_whitespace().collect();
        let file_ino = w.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (w.get(1) == Some(&"FLOCK") && w.get(3) == Some(&"WRITE") && file_ino == ino)
            .then(|| w[4].parse().ok())
            .flatten()
    })
}

/// Checks the keeper's work on the shared log in `dir`: every segment
/// sealed is compressed once and shipped once (its object in `bucket`,
/// uploaded once but for at most 4 made again), only shipped segments are
/// deleted, and the newest `KEEP` are left. Returns the manifest and the
/// deleted sequence numbers.
#[cfg(all(feature = "ship", feature = "zstd"))]
/// Returns the manifest, the deleted segments, and the segment that stays
/// at `app.log` after the last one left (neither compressed nor deleted
/// until the next start; shipped as it is). `shipped_plain`: a segment
/// shipped that way before, whose object has the plain name.
fn check_kept(
    dir: &std::path::Path,
    bucket: &std::path::Path,
    shipped_plain: Option<u64>,
) -> (Manifest, std::collections::HashSet<u64>, Option<u64>) {
    use std::os::unix::fs::MetadataExt;
    let m = Manifest::read(&dir.join("app.manifest")).unwrap();
    let inode = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let at_active = inode(&dir.join("app.log")).and_then(|id| {
        m.seals()
            .find(|s| inode(&dir.join(&s.file)) == Some(id))
            .map(|s| s.seq)
    });
    let mut compressions: HashMap<u64, u64> = HashMap::new();
    let mut ships: HashMap<u64, u64> = HashMap::new();
    let mut deleted = std::collections::HashSet::new();
    for e in &m.entries {
        match e {
            Entry::Compress(c) => *compressions.entry(c.seq).or_default() += 1,
            Entry::Ship(s) => *ships.entry(s.seq).or_default() += 1,
            Entry::Delete(d) => {
                assert_eq!(
                    d.reason,
                    logcut_format::manifest::DeleteReason::Count,
                    "{d:?}"
                );
                assert_eq!(
                    ships.get(&d.seq),
                    Some(&1),
                    "deleted before it was shipped: {d:?}"
                );
                deleted.insert(d.seq);
            }
            _ => {}
        }
    }
    let seals: Vec<_> = m.seals().cloned().collect();
    assert!(seals.len() > 3 * KEEP, "{} segments", seals.len());
    let newest = seals.iter().map(|s| s.seq).max();
    assert_eq!(
        at_active.is_some(),
        dir.join("app.log").exists(),
        "app.log is a sealed segment's"
    );
    assert!(at_active.is_none() || at_active == newest, "{at_active:?}");
    for s in &seals {
        let want = if Some(s.seq) == at_active {
            None
        } else {
            Some(&1)
        };
        assert_eq!(compressions.get(&s.seq), want, "compressions of {}", s.seq);
        assert_eq!(ships.get(&s.seq), Some(&1), "ship entries of {}", s.seq);
    }
    let live: Vec<u64> = seals
        .iter()
        .map(|s| s.seq)
        .filter(|q| !deleted.contains(q))
        .collect();
    assert_eq!(live.len(), KEEP, "segments kept: {live:?}");
    let newest: Vec<u64> = {
        let mut all: Vec<u64> = seals.iter().map(|s| s.seq).collect();
        all.sort_unstable();
        all.split_off(all.len() - KEEP)
    };
    let mut live_sorted = live.clone();
    live_sorted.sort_unstable();
    assert_eq!(live_sorted, newest, "the newest are kept");
    // Uploads: once each, but those the killed writer may have had under
    // way (at most its 4 upload slots), made again under the same key.
    let uploads = std::fs::read_to_string(bucket.join("uploads")).unwrap();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for k in uploads.lines() {
        *per_key.entry(k).or_default() += 1;
    }
    assert_eq!(per_key.len(), seals.len(), "objects against segments");
    let again = per_key.values().filter(|n| **n > 1).count();
    assert!(
        again <= 4 && per_key.values().all(|n| *n <= 2),
        "uploads made again: {again}"
    );
    for s in &seals {
        let obj = if [at_active, shipped_plain].contains(&Some(s.seq)) {
            s.file.clone()
        } else {
            logcut_format::codec::Codec::Zstd.compressed_name(&s.file)
        };
        assert!(bucket.join(&obj).is_file(), "{obj} not in the bucket");
    }
    (m, deleted, at_active)
}

/// Whether the manifest in `dir` records a compression.
#[cfg(all(feature = "ship", feature = "zstd"))]
fn compressed_some(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("app.manifest")).is_ok_and(|m| m.contains("\ncompress "))
}

/// Three processes write one shared log with compression, shipping and
/// `keep(5)`; the one doing the keeper's work is killed once it has
/// compressed a segment, and another takes its turn. Every segment is compressed once and
/// shipped once (but those whose upload the killed one had under way),
/// only shipped segments are deleted, exactly 5 are left, and each
/// surviving writer's records are all there but those in deleted
/// segments, counted from the manifest's parts.
#[cfg(all(feature = "ship", feature = "zstd"))]
#[test]
fn three_processes_compress_ship_and_keep_a_shared_log_once() {
    let _heavy = crate::kit::heavy();
    const COUNT: u64 = 30_000;
    let tmp = TempDir::new("shared-keeper");
    let dir = tmp.join("log");
    let bucket = tmp.join("bucket");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&bucket).unwrap();
    enum Msg {
        Written,
        Done(u64, u64),
        Closed,
    }
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Msg)>();
    let mut children = Vec::new();
    for id in 0..3usize {
        let mut child = child_test("shared::shared_keeper_child")
            .env("LOGCUT_SK_DIR", &dir)
            .env("LOGCUT_SK_BUCKET", &bucket)
            .env("LOGCUT_SK_ID", id.to_string())
            .env("LOGCUT_SK_COUNT", COUNT.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let parse = |words: &[&str]| match words {
            [.., "written", _] => Some(Msg::Written),
            [.., "done", c, s] => Some(Msg::Done(c.parse().unwrap(), s.parse().unwrap())),
            _ => None,
        };
        relay_child(
            id,
            child.stdout.take().unwrap(),
            tx.clone(),
            parse,
            Msg::Closed,
        );
        children.push(child);
    }
    drop(tx);
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
    let lock = dir.join("app.keeper-lock");
    let mut killed = None;
    let mut taken_over = false;
    let mut done: HashMap<usize, (u64, u64)> = HashMap::new();
    let mut finished = 0;
    while finished < 3 {
        let (id, msg) = rx.recv().unwrap();
        match msg {
            Msg::Closed => finished += 1,
            Msg::Done(c, s) => {
                done.insert(id, (c, s));
            }
            // Once the keeper has done some of its work.
            Msg::Written if killed.is_none() && compressed_some(&dir) => {
                let holder = flock_holder(&lock).expect("nobody holds the keeper's turn");
                let k = pids
                    .iter()
                    .position(|p| *p == holder)
                    .expect("a writer holds it");
                children[k].kill().unwrap();
                killed = Some(k);
            }
            Msg::Written => {
                // Another writer takes the turn while they all still write.
                if let (Some(k), Some(h)) = (killed, flock_holder(&lock)) {
                    taken_over |= done.is_empty() && h != pids[k] && pids.contains(&h);
                }
            }
        }
    }
    let killed = killed.expect("nobody was killed");
    for (id, c) in children.iter_mut().enumerate() {
        let status = c.wait().unwrap();
        assert!(id == killed || status.success(), "writer {id}: {status}");
    }
    assert!(taken_over, "no other writer took the keeper's turn");
    assert_eq!(done.len(), 2, "the survivors report their stats");

    // What the last one to leave looked after: every segment sealed so far
    // (the killed writer's own cuts wait for the next start to seal them).
    let (_, deleted_before, at_active) = check_kept(&dir, &bucket, None);
    assert!(at_active.is_some(), "the last segment stays at app.log");
    // The next to start alone seals what the killed writer left (its
    // cuts whose seal it had not made), and looks after them too.
    shared_keeper(&dir, bucket.to_str().unwrap())
        .shutdown()
        .unwrap();
    let (m, deleted, _) = check_kept(&dir, &bucket, at_active);
    assert!(deleted.is_superset(&deleted_before));
    verify_ok(&dir);
    // The compressions and uploads the survivors counted are theirs in
    // the manifest: the rest is the killed writer's.
    let by_survivors: u64 = done.values().map(|(c, _)| c).sum();
    assert!(
        by_survivors > 0 && by_survivors < m.seals().count() as u64,
        "{by_survivors} of {} compressed by the survivors",
        m.seals().count()
    );

    // Records: each survivor's are all there from the first one not in a
    // deleted segment, by the parts the manifest records per session.
    let session_of = |pid: u32| {
        m.entries
            .iter()
            .find_map(|e| match e {
                Entry::Open(o) if o.pid == pid => Some(o.session.clone()),
                _ => None,
            })
            .unwrap()
    };
    let data = read_log(&dir, "app");
    let r = crate::kit::Parser::fixed(KEEP_LEN)
        .oldest_deleted()
        .killed(&tag(killed))
        .parse(&data);
    for w in (0..3).filter(|w| *w != killed) {
        let session = session_of(pids[w]);
        let gone: u64 = m
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Part(p) if p.session == session && deleted.contains(&p.seq) => {
                    Some(p.records)
                }
                _ => None,
            })
            .sum();
        let range = r.range(&tag(w));
        let range = if range.is_empty() {
            COUNT..COUNT
        } else {
            range
        };
        assert_eq!(range, gone..COUNT, "writer {w}'s records kept");
    }
    // And the bucket holds every record, once, in sequence order.
    let mut seals: Vec<_> = m.seals().cloned().collect();
    seals.sort_by_key(|s| s.seq);
    let mut shipped = Vec::new();
    for s in &seals {
        let obj = bucket.join(logcut_format::codec::Codec::Zstd.compressed_name(&s.file));
        let Ok(f) = std::fs::File::open(&obj) else {
            // The one that stayed at app.log was shipped as it was.
            assert_eq!(Some(s.seq), at_active, "{} not in the bucket", s.file);
            shipped.extend(std::fs::read(bucket.join(&s.file)).unwrap());
            continue;
        };
        let mut rd = logcut_format::codec::Codec::Zstd.decoder(f).unwrap();
        std::io::Read::read_to_end(&mut rd, &mut shipped).unwrap();
    }
    let r = crate::kit::Parser::fixed(KEEP_LEN)
        .killed(&tag(killed))
        .parse(&shipped);
    for w in (0..3).filter(|w| *w != killed) {
        assert_eq!(r.count(&tag(w)), COUNT, "writer {w}'s records shipped");
    }
}
