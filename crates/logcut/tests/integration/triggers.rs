//! External triggers: the trigger file, signals, an active file renamed or
//! removed by someone else, and the lock that keeps a second appender off
//! a log.

use std::{
    io::{BufRead, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use logcut::{Appender, ManualClock, Mode};
use logcut_format::manifest::SealReason;

use crate::kit::{
    Parser, TempDir, check_records, read_log, record, sealed, tag, touch, verify_ok, wait_for,
};

const LEN: usize = 64;

/// 2 threads write 100,000 records each while a third touches the trigger
/// file in a loop: every record exactly once, no empty segment, and the
/// triggers did cut.
fn trigger_storm(mode: Mode) {
    let _heavy = crate::kit::heavy();
    let tmp = TempDir::new("trigger-storm");
    let dir = tmp.join("log");
    let trig = tmp.join("ctl").join("rotate.trigger");
    std::fs::create_dir_all(trig.parent().unwrap()).unwrap();
    let a = Appender::builder()
        .dir(&dir)
        .manual_only()
        .mode(mode)
        .trigger_file(&trig)
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(3));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let a = a.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for i in 0..100_000 {
                    // Writer 0 lets the triggers cut at least 3 times while
                    // records are still being written (however slow the
                    // watcher is on a loaded machine).
                    // The count is taken before the record is written: a
                    // cut after it is then either already counted, or has
                    // that record to seal (a trigger never cuts an empty
                    // segment, and writer 1 may be done).
                    let check = t == 0 && i > 0 && i % 30_000 == 0;
                    let before = check.then(|| a.stats().rotations);
                    (&a).write_all(&record(t, i, LEN)).unwrap();
                    if let Some(before) = before {
                        wait_for("a trigger to cut", || a.stats().rotations > before);
                    }
                }
            })
        })
        .collect();
    let toucher = {
        let (done, start, trig) = (Arc::clone(&done), Arc::clone(&start), trig.clone());
        let a = a.clone();
        std::thread::spawn(move || {
            start.wait();
            let mut touches = 0u64;
            // Until the writers are done (they wait for 3 cuts on the way).
            while !done.load(Ordering::Acquire) {
                let seen = a.stats().triggers;
                touch(&trig);
                touches += 1;
                // A storm, not a flood: the next touch comes as soon as
                // the watcher took this one (or after a while), so that on
                // a loaded machine the watcher is not starved by the
                // toucher it serves.
                for _ in 0..1_000 {
                    if done.load(Ordering::Acquire) || a.stats().triggers > seen {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            touches
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let touches = toucher.join().unwrap();
    a.shutdown().unwrap();
    let stats = a.stats();
    let counts = check_records(&read_log(&dir, "app"), LEN);
    assert_eq!(counts.get(&0), Some(&100_000));
    assert_eq!(counts.get(&1), Some(&100_000));
    let seals = sealed(&dir, "app");
    for s in &seals {
        assert!(s.records.unwrap() > 0, "empty segment {}", s.file);
    }
    // Every segment it sealed is in the manifest once; each one was cut by
    // a trigger (nothing else cuts: manual only), but the last one if it
    // was sealed at shutdown (when no trigger came after the last record).
    assert_eq!(stats.rotations, seals.len() as u64, "{seals:?}");
    let cuts = match seals.split_last() {
        Some((last, cuts)) if last.reason == SealReason::Shutdown => cuts,
        _ => &seals[..],
    };
    assert!(
        cuts.iter().all(|s| s.reason == SealReason::Manual),
        "{seals:?}"
    );
    // A trigger makes at most one cut (several merged make one), so no
    // more cuts than triggers taken; and at least the 3 writer 0 waited
    // for. (How many of the triggers were merged, or found the segment
    // empty, the stats do not say: no exact count is known.)
    let cuts = cuts.len() as u64;
    assert!(
        touches > 0 && stats.triggers > 0,
        "{touches} touches, {} triggers",
        stats.triggers
    );
    assert!(
        (3..=stats.triggers).contains(&cuts),
        "{cuts} cuts from {} triggers ({touches} touches)",
        stats.triggers
    );
    let report = verify_ok(&dir);
    assert_eq!(report.records(), 200_000);
}

#[test]
fn trigger_storm_direct() {
    trigger_storm(Mode::Direct);
}

#[test]
fn trigger_storm_buffered() {
    trigger_storm(Mode::Buffered);
}

/// The trigger file, then its directory, deleted and created again:
/// triggers keep working. Each trigger after a record cuts exactly once.
#[test]
fn trigger_survives_deletion_of_file_and_directory() {
    let _heavy = crate::kit::heavy();
    let tmp = TempDir::new("trigger-dirs");
    let dir = tmp.join("log");
    let ctl = tmp.join("ctl").join("sub");
    let trig = ctl.join("rotate.trigger");
    let a = Appender::builder()
        .dir(&dir)
        .manual_only()
        .trigger_file(&trig)
        .build()
        .unwrap();
    let mut expected = Vec::new();
    let mut write = |i: u64| {
        let r = record(0, i, LEN);
        (&a).write_all(&r).unwrap();
        expected.extend_from_slice(&r);
    };
    // 1: the directories did not exist at start.
    write(0);
    std::fs::create_dir_all(&ctl).unwrap();
    touch(&trig);
    wait_for("the first cut", || a.stats().rotations == 1);
    // 2: the file is deleted and created again.
    write(1);
    std::fs::remove_file(&trig).unwrap();
    touch(&trig);
    wait_for("the second cut", || a.stats().rotations == 2);
    // 3: the whole directory tree is deleted and created again.
    write(2);
    std::fs::remove_dir_all(tmp.join("ctl")).unwrap();
    std::fs::create_dir_all(&ctl).unwrap();
    touch(&trig);
    wait_for("the third cut", || a.stats().rotations == 3);
    // 4: a touch of the existing file, and writing to it.
    write(3);
    std::fs::write(&trig, b"rotate\n").unwrap();
    wait_for("the fourth cut", || a.stats().rotations == 4);
    a.shutdown().unwrap();
    assert_eq!(read_log(&dir, "app"), expected);
    let seals = sealed(&dir, "app");
    assert_eq!(seals.len(), 4);
    assert!(seals.iter().all(|s| s.records == Some(1)));
    verify_ok(&dir);
}

/// A trigger with no record written since the last cut makes no segment.
#[test]
fn triggers_without_records_cut_nothing() {
    let tmp = TempDir::new("trigger-empty");
    let trig = tmp.join("rotate.trigger");
    let dir = tmp.join("log");
    let a = Appender::builder()
        .dir(&dir)
        .manual_only()
        .trigger_file(&trig)
        .build()
        .unwrap();
    for _ in 0..100 {
        touch(&trig);
    }
    wait_for("the triggers to arrive", || a.stats().triggers > 0);
    // `tick` runs after the queued triggers: they are handled.
    a.tick().unwrap();
    (&a).write_all(&record(0, 0, LEN)).unwrap();
    a.shutdown().unwrap();
    let seals = sealed(&dir, "app");
    assert_eq!(seals.len(), 1, "{seals:?}");
    assert_eq!(seals[0].records, Some(1));
}

/// What logrotate's `create` mode does, without a signal: the active file
/// is renamed; the appender notices at its next check (the manual clock
/// says when) and continues in a new file at the same path. Then the same
/// with `reopen()` (as SIGHUP does), and with the file removed.
#[test]
fn external_rename_is_followed() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("rename");
        let dir = tmp.path();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let a = Appender::builder()
            .dir(dir)
            .manual_only()
            .mode(mode)
            .clock(clock.clone())
            .watch_interval(Some(Duration::from_millis(500)))
            .build()
            .unwrap();
        let w = |i: u64| {
            (&a).write_all(&record(0, i, LEN)).unwrap();
            a.flush_records().unwrap();
        };
        let recs =
            |r: std::ops::Range<u64>| -> Vec<u8> { r.flat_map(|i| record(0, i, LEN)).collect() };
        w(0);
        w(1);
        std::fs::rename(dir.join("app.log"), dir.join("app.log.1")).unwrap();
        // Not noticed yet: the record goes to the renamed file.
        w(2);
        a.tick().unwrap();
        assert!(!dir.join("app.log").exists() || a.stats().reopens == 0);
        clock.advance(Duration::from_millis(500));
        a.tick().unwrap();
        assert_eq!(a.stats().reopens, 1);
        assert!(dir.join("app.log").exists(), "no new active file");
        w(3);
        // logrotate `create`: rename, then an empty file of its own.
        std::fs::rename(dir.join("app.log"), dir.join("app.log.2")).unwrap();
        std::fs::write(dir.join("app.log"), b"").unwrap();
        w(4);
        a.reopen().unwrap();
        assert_eq!(a.stats().reopens, 2);
        w(5);
        // reopen with nothing moved does nothing.
        a.reopen().unwrap();
        assert_eq!(a.stats().reopens, 2);
        // Removed: what was in it is gone with it (the operator's doing);
        // the appender continues.
        std::fs::remove_file(dir.join("app.log")).unwrap();
        a.reopen().unwrap();
        w(6);
        a.shutdown().unwrap();
        assert_eq!(std::fs::read(dir.join("app.log.1")).unwrap(), recs(0..3));
        assert_eq!(std::fs::read(dir.join("app.log.2")).unwrap(), recs(3..5));
        assert_eq!(read_log(dir, "app"), recs(6..7));
        let seals = sealed(dir, "app");
        let moved: Vec<_> = seals.iter().filter(|s| s.file == "-").collect();
        assert_eq!(moved.len(), 3, "{seals:?}");
        assert_eq!(
            moved.iter().map(|s| s.records.unwrap()).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        let report = verify_ok(dir);
        assert_eq!(report.logs[0].segments_moved, 3);
        assert_eq!(report.records(), 7);
    }
}

/// Writers at full speed while the active file is renamed away again and
/// again (each followed by `reopen()`): every record exactly once, in the
/// renamed files or the log.
#[test]
fn renames_under_load_lose_nothing() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("rename-load");
        let dir = tmp.path();
        let a = Appender::builder()
            .dir(dir)
            .max_size(256 << 10)
            .mode(mode)
            .build()
            .unwrap();
        let start = Arc::new(Barrier::new(3));
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let (a, start) = (a.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..50_000 {
                        (&a).write_all(&record(t, i, LEN)).unwrap();
                    }
                })
            })
            .collect();
        start.wait();
        for n in 0..20 {
            match std::fs::rename(dir.join("app.log"), dir.join(format!("moved.{n:03}"))) {
                Ok(()) => a.reopen().unwrap(),
                // Between our own cuts the path always exists.
                Err(e) => panic!("rename: {e}"),
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        a.shutdown().unwrap();
        let mut all = Vec::new();
        for n in 0..20 {
            all.extend(std::fs::read(dir.join(format!("moved.{n:03}"))).unwrap());
        }
        all.extend(read_log(dir, "app"));
        // Order across files is not per-thread order (renamed files are
        // read first): each id once, in any order.
        let r = Parser::fixed(LEN).any_order().parse(&all);
        assert_eq!(r.tags(), [tag(0), tag(1)], "{mode:?}");
        assert_eq!(
            (r.count(&tag(0)), r.count(&tag(1))),
            (50_000, 50_000),
            "{mode:?}"
        );
        verify_ok(dir);
    }
}

/// A second appender on the same log fails with a clear error naming the
/// holder; another name in the same directory is fine; after shutdown the
/// log can be taken again.
#[test]
fn one_appender_per_log() {
    let tmp = TempDir::new("lock");
    let a = Appender::builder().dir(tmp.path()).build().unwrap();
    let e = Appender::builder().dir(tmp.path()).build().unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("process {}", std::process::id())) && msg.contains("app.lock"),
        "{msg}"
    );
    let other = Appender::builder()
        .dir(tmp.path())
        .name("other")
        .build()
        .unwrap();
    other.shutdown().unwrap();
    (&a).write_all(b"one\n").unwrap();
    a.shutdown().unwrap();
    let b = Appender::builder().dir(tmp.path()).build().unwrap();
    (&b).write_all(b"two\n").unwrap();
    b.shutdown().unwrap();
    assert_eq!(read_log(tmp.path(), "app"), b"one\ntwo\n");
    verify_ok(tmp.path());
}

/// The child of the signal and logrotate tests: writes records with ids
/// as fast as it can, with signals on, until its standard input closes;
/// prints its pid first and the count last.
#[test]
#[ignore = "run as a child process by the signal and logrotate tests"]
#[allow(clippy::print_stdout)] // talks to the parent test
fn signal_child() {
    let dir = std::env::var("LOGCUT_SIG_DIR").unwrap();
    let a = Appender::builder()
        .dir(&dir)
        .manual_only()
        .signals(true)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stop.store(true, Ordering::Release);
        });
    }
    println!("pid {}", std::process::id());
    let mut n = 0;
    // At least some records before the first signal can arrive.
    while n < 1000 || !stop.load(Ordering::Acquire) {
        (&a).write_all(&record(0, n, LEN)).unwrap();
        n += 1;
    }
    let stats = a.stats();
    a.shutdown().unwrap();
    println!(
        "count {n} rotations {} reopens {}",
        stats.rotations, stats.reopens
    );
}

struct Child {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    pid: i32,
}

fn spawn_signal_child(dir: &Path) -> Child {
    let mut child = crate::kit::child_test("triggers::signal_child")
        .env("LOGCUT_SIG_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let pid = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        // libtest prints "test ... " before the child's first line.
        if let Some((_, p)) = line.trim().split_once("pid ") {
            break p.parse().unwrap();
        }
    };
    Child { child, out, pid }
}

impl Child {
    /// Closes its input, waits, and returns how many records it wrote.
    fn finish(mut self) -> u64 {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        assert!(self.child.wait().unwrap().success(), "child failed: {rest}");
        let count = rest
            .lines()
            .find_map(|l| l.split_once("count ").map(|(_, c)| c))
            .unwrap_or_else(|| panic!("no count in {rest:?}"));
        count.split_whitespace().next().unwrap().parse().unwrap()
    }
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Every id 0..count exactly once across `files` (in this order) and the
/// log's segments, each in order within its file.
fn all_ids_once(dir: &Path, files: &[std::path::PathBuf], count: u64) {
    let mut data = Vec::new();
    for f in files {
        data.extend(std::fs::read(f).unwrap());
    }
    data.extend(read_log(dir, "app"));
    let counts = check_records(&data, LEN);
    assert_eq!(counts.get(&0).copied().unwrap_or(0), count);
}

/// SIGUSR1 rotates; SIGHUP after a rename reopens. Nothing lost.
#[test]
fn signals_rotate_and_reopen() {
    let tmp = TempDir::new("signals");
    let dir = tmp.path();
    let child = spawn_signal_child(dir);
    // A trigger before the first record cuts nothing: wait for one.
    wait_for("the child's first record", || {
        std::fs::metadata(dir.join("app.log")).is_ok_and(|m| m.len() > 0)
    });
    kill(child.pid, libc::SIGUSR1);
    wait_for("a cut after SIGUSR1", || {
        crate::kit::files(dir)
            .iter()
            .any(|f| f.starts_with("app.") && f.ends_with(".000001.log"))
    });
    std::fs::rename(dir.join("app.log"), dir.join("app.log.1")).unwrap();
    kill(child.pid, libc::SIGHUP);
    wait_for("a new active file after SIGHUP", || {
        dir.join("app.log").exists()
    });
    let count = child.finish();
    // The renamed file holds a contiguous run of ids (none if no record
    // came between the cut and the rename); the rest is in the log.
    let moved = std::fs::read(dir.join("app.log.1")).unwrap();
    let mut data = read_log(dir, "app");
    if !moved.is_empty() {
        let first_moved = Parser::fixed(LEN)
            .oldest_deleted()
            .parse(&moved)
            .range(&tag(0))
            .start as usize;
        // Put the moved run back where it belongs and check the whole.
        let tail = data.split_off(first_moved * LEN);
        data.extend(moved);
        data.extend(tail);
    }
    let counts = check_records(&data, LEN);
    assert_eq!(counts[&0], count);
    verify_ok(dir);
}

fn logrotate() -> Option<std::path::PathBuf> {
    [
        "/usr/sbin/logrotate",
        "/sbin/logrotate",
        "/usr/bin/logrotate",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// A real logrotate in `create` mode with `postrotate` sending SIGHUP, run
/// 20 times while the child writes: every record exactly once across
/// logrotate's files and the log.
///
/// Without logrotate installed it is skipped, saying so, except with
/// `CI=true` in the environment (as `.ci/run` sets it): CI installs
/// logrotate and must run this test, so there it fails instead.
#[test]
fn logrotate_create_mode_loses_nothing() {
    let Some(bin) = logrotate() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "logrotate is not installed, and CI=true: CI must run this test (`apt-get install logrotate`; .ci/run installs it)"
        );
        // Past the test harness's capture, so that the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED logrotate_create_mode_loses_nothing: logrotate is not installed (`apt-get install logrotate` to run it)"
        );
        return;
    };
    let tmp = TempDir::new("logrotate");
    let dir = tmp.join("log");
    std::fs::create_dir_all(&dir).unwrap();
    let child = spawn_signal_child(&dir);
    let conf = tmp.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{}/app.log {{\n  rotate 1000\n  create 0640\n  nocompress\n  missingok\n  postrotate\n    kill -HUP {}\n  endscript\n}}\n",
            dir.display(),
            child.pid
        ),
    )
    .unwrap();
    let state = tmp.join("logrotate.state");
    for _ in 0..20 {
        let out = Command::new(&bin)
            .arg("-f")
            .arg("-s")
            .arg(&state)
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logrotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let count = child.finish();
    // logrotate's files, oldest first: app.log.20 .. app.log.1 (some may be
    // the empty files logrotate created and rotated before the reopen).
    let mut rotated: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let n: u32 = name.strip_prefix("app.log.")?.parse().ok()?;
            Some((n, dir.join(name)))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    assert_eq!(rotated.len(), 20);
    let files: Vec<_> = rotated.into_iter().map(|(_, p)| p).collect();
    all_ids_once(&dir, &files, count);
    verify_ok(&dir);
}

/// One touch makes several events (open, set the time, close) that can
/// reach the watch apart, with records written in between: each used to
/// be a trigger, so one touch could cut twice. A close (or a time change)
/// that leaves the trigger file as the watch last saw it is not a
/// trigger. Here the file is opened for writing and closed unchanged
/// between two records: no cut, no trigger counted.
#[test]
fn opening_and_closing_the_trigger_file_unchanged_is_not_a_trigger() {
    let dir = TempDir::new("trigger-close");
    let trig = dir.join("rotate.trigger");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(&trig, b"").unwrap();
    let a = Appender::builder()
        .dir(dir.path())
        .trigger_file(&trig)
        .build()
        .unwrap();
    a.write_record(&record(0, 0, 50)).unwrap();
    touch(&trig);
    wait_for("the first cut", || a.stats().rotations == 1);
    assert_eq!(a.stats().triggers, 1, "one touch, one trigger");
    a.write_record(&record(0, 1, 50)).unwrap();
    drop(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&trig)
            .unwrap(),
    );
    a.write_record(&record(0, 2, 50)).unwrap();
    touch(&trig);
    // The watch takes events in order: once the touch has cut, the close
    // before it has been looked at.
    wait_for("the second cut", || a.stats().rotations == 2);
    assert_eq!(a.stats().triggers, 2, "the close counted as a trigger");
    a.shutdown().unwrap();
    let seals = sealed(dir.path(), "app");
    let records: Vec<Option<u64>> = seals.iter().map(|s| s.records).collect();
    assert_eq!(records, [Some(1), Some(2)], "{seals:?}");
}

/// Each touch after a record cuts, however soon it follows the cut before:
/// a touch that came while the trigger thread was still taking the one
/// before (the cut was quick, the next touch quicker) was swallowed, and
/// the record waited for a cut that never came. 400 times: record, touch,
/// wait for the new segment.
#[test]
fn a_touch_right_after_a_cut_still_cuts() {
    let tmp = TempDir::new("trigger-quick");
    let dir = tmp.join("log");
    let trigger = tmp.join("rotate.trigger");
    std::fs::create_dir_all(tmp.path()).unwrap();
    touch(&trigger);
    let a = Appender::builder()
        .dir(&dir)
        .manual_only()
        .trigger_file(&trigger)
        .fsync(logcut::Fsync::Never)
        .build()
        .unwrap();
    // Touched through a descriptor kept open: one event per touch.
    let tf = std::fs::OpenOptions::new()
        .append(true)
        .open(&trigger)
        .unwrap();
    let active = dir.join("app.log");
    let ino = || {
        std::fs::symlink_metadata(&active)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0)
    };
    for i in 0..400u64 {
        a.write_record(&record(0, i, LEN)).unwrap();
        let before = ino();
        tf.set_modified(std::time::SystemTime::now()).unwrap();
        wait_for(&format!("the cut of touch {i}"), || {
            let now = ino();
            now != 0 && now != before
        });
    }
    a.shutdown().unwrap();
    let report = verify_ok(&dir);
    assert_eq!(report.records(), 400);
    assert_eq!(report.logs[0].segments, 400, "{report}");
    assert_eq!(
        check_records(&read_log(&dir, "app"), LEN).get(&0),
        Some(&400)
    );
}
