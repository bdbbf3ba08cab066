//! Randomized scenarios: a seeded mix of what the other tests try one at a
//! time. Each scenario draws a mode, writer threads, record length, size
//! limit, compression, retention and whether the last segment keeps the
//! active name; runs one to three sessions (a clean shutdown and a new
//! appender between them); and, while the threads write, makes manual
//! cuts, touches the trigger file, moves the clock past the time limit
//! (15 minutes, on a manual clock) and moves the active file away as
//! logrotate would. After each
//! scenario `verify` passes and every record is found exactly once,
//! whole, in the log or in a moved file, but for the oldest ones that
//! retention deleted, which the manifest counts. One scenario in three
//! runs a session in a child process and SIGKILLs it once its log has a
//! few sealed segments (then without retention or moves, and in Buffered
//! mode with one thread, so that what the kill may cost is exactly what
//! the guarantees allow: each writer's records a prefix of what it wrote,
//! whole but for one torn last record, of one writer).
//!
//! One scenario in four that is not killed shares its log between two
//! appenders (`shared(true)`, which lock against each other as two
//! processes do), the threads split between them, without moves (a shared
//! log does not yet seal a segment moved away while another writes it).
//!
//! One in three of the rest (one appender, not killed), and half of the
//! shared ones, run their log on a small tmpfs (as root; otherwise without
//! the fill) that is full when one of their sessions starts and frees
//! after the first write that fails, the clock then driven past every
//! backoff until the writers are done (and, shared, nothing is held).
//!
//! The seed is printed; `LOGCUT_SEED=<seed>` replays it, and
//! `LOGCUT_SCENARIOS=<n>` runs more than the 16 that CI runs (TESTING.md).

#![cfg(all(feature = "gzip", feature = "zstd", feature = "trigger"))]

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Barrier,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use logcut::{Appender, Compression, Interval, ManualClock, Mode};

use crate::kit::*;

/// splitmix64: small, seedable, good enough to draw test parameters.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.range(0, of.len() as u64 - 1) as usize]
    }
}

/// Seals by reason, over the scenarios run (for the summary: what the
/// draws covered).
static REASONS: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

/// Scenarios whose full disk made a write fail (for the summary).
static DISK_FAILED: AtomicU64 = AtomicU64::new(0);

/// What the first writer thread does between two records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Rotate,
    /// Touch the trigger file.
    Touch,
    /// Move the manual clock past the 15-minute limit.
    Later,
    /// Move `app.log` away, as logrotate would.
    Move,
}

/// What one scenario does.
#[derive(Debug, Clone)]
struct Plan {
    mode: Mode,
    threads: usize,
    len: usize,
    max_size: u64,
    compression: Compression,
    keep: Option<usize>,
    keep_active_name: bool,
    /// Records per thread in each session.
    sessions: Vec<u64>,
    /// Per session: after how many of its records thread 0 does what.
    actions: Vec<Vec<(u64, Action)>>,
    /// The session run in a child process and SIGKILLed (never the last),
    /// once the manifest has this many seals.
    kill: Option<(usize, usize)>,
    /// Two appenders share the log: thread `t` writes through appender
    /// `t % 2`.
    shared: bool,
    /// The session that starts on a full disk, which frees after the
    /// first failed write (the log on a tmpfs, without moves).
    disk: Option<usize>,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        let sessions: Vec<u64> = (0..rng.range(1, 3)).map(|_| rng.range(500, 4000)).collect();
        let actions = sessions
            .iter()
            .map(|&n| {
                let kinds = [Action::Rotate, Action::Touch, Action::Later, Action::Move];
                let mut a: Vec<(u64, Action)> = (0..rng.range(0, 5))
                    .map(|_| (rng.range(0, n - 1), rng.pick(&kinds)))
                    .collect();
                a.sort_unstable();
                a
            })
            .collect();
        let mut plan = Plan {
            mode: rng.pick(&[Mode::Direct, Mode::Buffered]),
            threads: rng.range(1, 4) as usize,
            len: rng.range(40, 200) as usize,
            max_size: rng.pick(&[4 << 10, 16 << 10, 64 << 10]),
            compression: rng.pick(&[Compression::None, Compression::zstd(), Compression::gzip()]),
            keep: rng.pick(&[None, Some(3), Some(8)]),
            keep_active_name: rng.range(0, 1) == 0,
            sessions,
            actions,
            kill: None,
            shared: false,
            disk: None,
        };
        if plan.sessions.len() > 1 && rng.range(0, 2) == 0 {
            let s = rng.range(0, plan.sessions.len() as u64 - 2) as usize;
            plan.kill = Some((s, rng.range(1, 3) as usize));
            plan.keep = None;
            for a in &mut plan.actions {
                a.retain(|(_, what)| *what != Action::Move);
            }
            if plan.mode == Mode::Buffered {
                plan.threads = 1;
            }
        } else if plan.threads > 1 && rng.range(0, 3) == 0 {
            plan.shared = true;
            for a in &mut plan.actions {
                a.retain(|(_, what)| *what != Action::Move);
            }
            // Half of them on a full disk too: chosen by what was drawn
            // already, so that earlier seeds replay the same draws.
            if plan.len % 2 == 0 {
                plan.disk = Some(plan.len / 2 % plan.sessions.len());
            }
        } else if rng.range(0, 2) == 0 {
            plan.disk = Some(rng.range(0, plan.sessions.len() as u64 - 1) as usize);
            // Moved files would go to another file system.
            for a in &mut plan.actions {
                a.retain(|(_, what)| *what != Action::Move);
            }
        }
        plan
    }

    /// The kit's writer number of thread `t` in session `s`: each session
    /// has writers of its own, their ids from 0.
    fn writer(s: usize, t: usize) -> usize {
        s * 4 + t
    }
}

/// Starts session `s` of `plan` on log `dir` and writes its records (with
/// its cuts and moves; moved files go to `away`); returns the appenders
/// (two if shared), not shut down, and the files moved away. With `disk`
/// (`plan.disk` is this session), the disk is full when the writers start
/// and frees after the first failed write.
fn session(
    plan: &Plan,
    s: usize,
    dir: &Path,
    away: &Path,
    disk: Option<&SmallFs>,
) -> (Vec<Appender>, Vec<PathBuf>) {
    let disk = disk.filter(|_| plan.disk == Some(s));
    // Each session a day after the one before: time never goes back.
    let clock =
        ManualClock::new(jiff::Timestamp::from_second(1_796_000_000 + 86_400 * s as i64).unwrap());
    let trigger = away.join("rotate.trigger");
    let mut b = Appender::builder()
        .dir(dir)
        .mode(plan.mode)
        .max_size(plan.max_size)
        .interval(Interval::minutes(15))
        .clock(clock.clone())
        .trigger_file(&trigger)
        .compress(plan.compression)
        .keep_active_name(plan.keep_active_name)
        .shared(plan.shared);
    if let Some(n) = plan.keep {
        b = b.keep(n);
    }
    if disk.is_some() {
        // Retries within a second of the manual clock, which the session
        // drives below.
        b = b
            .backoff(Duration::from_millis(100), Duration::from_secs(1))
            .error_handler(|_: logcut::Error| {});
    }
    let appenders: Vec<Appender> = (0..1 + usize::from(plan.shared))
        .map(|_| b.clone().build().unwrap())
        .collect();
    let count = plan.sessions[s];
    if let Some(fs) = disk {
        fs.fill();
    }
    let start = Arc::new(Barrier::new(plan.threads));
    let writers: Vec<_> = (0..plan.threads)
        .map(|t| {
            let (a, start) = (appenders[t % appenders.len()].clone(), Arc::clone(&start));
            let len = plan.len;
            let actions = if t == 0 {
                plan.actions[s].clone()
            } else {
                Vec::new()
            };
            let away = away.to_path_buf();
            let active = dir.join("app.log");
            let (clock, trigger) = (clock.clone(), trigger.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut moved = Vec::new();
                let mut next = actions.into_iter().peekable();
                for i in 0..count {
                    while let Some((_, what)) = next.next_if(|(at, _)| *at == i) {
                        match what {
                            Action::Rotate => a.rotate().unwrap(),
                            Action::Touch => touch(&trigger),
                            Action::Later => clock.advance(Duration::from_secs(901)),
                            Action::Move => {
                                let to = away.join(format!("moved-{s}-{i}-{}.log", moved.len()));
                                // Absent for a moment around a cut: then
                                // there is nothing to move.
                                if std::fs::rename(&active, &to).is_ok() {
                                    moved.push(to);
                                }
                            }
                        }
                    }
                    a.write_record(&record(Plan::writer(s, t), i, len)).unwrap();
                }
                moved
            })
        })
        .collect();
    if let Some(fs) = disk {
        let failed = || appenders.iter().any(|a| a.stats().write_failures > 0);
        wait_for("a failed write, or the writers done", || {
            failed() || writers.iter().all(|w| w.is_finished())
        });
        fs.free();
        DISK_FAILED.fetch_add(u64::from(failed()), Ordering::Relaxed);
        // Held records are written by the retries, after the backoff on
        // the manual clock: move it past each one until the writers, who
        // wait while too much is held, are done.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        // Shared: until nothing is held either. An appender still holding
        // records for a segment the other cut stays in it until its own
        // retry, which on this clock comes only when the clock is moved:
        // the other's shutdown would wait for it in vain.
        let held = || plan.shared && appenders.iter().any(|a| a.stats().queue_depth > 0);
        while !writers.iter().all(|w| w.is_finished()) || held() {
            let stats: Vec<_> = appenders.iter().map(Appender::stats).collect();
            assert!(
                std::time::Instant::now() < deadline,
                "writers still held: {stats:?}"
            );
            clock.advance(Duration::from_millis(1100));
            for a in &appenders {
                if plan.shared {
                    // The advance woke them for their retries. A tick
                    // would wait for the seal of a segment this one cut,
                    // which the other leaves only at its next check, and
                    // on this clock that never comes: each follows the
                    // cuts instead, as its check would on a real clock.
                    a.reopen().unwrap();
                } else {
                    a.tick().unwrap();
                }
            }
        }
    }
    let mut moved = Vec::new();
    for w in writers {
        moved.extend(w.join().unwrap());
    }
    (appenders, moved)
}

/// Runs session `s` of scenario `k` of `seed` in a child process
/// (`scenario_child`) and SIGKILLs it once the manifest has `seals` seals
/// or the child has written everything; true if it was still writing.
fn killed_session(seed: u64, k: u64, s: usize, seals: usize, dir: &Path, tmp: &Path) -> bool {
    let done = tmp.join(format!("child-{s}-done"));
    let mut child = child_test("scenarios::scenario_child")
        .env("LOGCUT_SCENARIO", format!("{seed}:{k}:{s}"))
        .env("LOGCUT_SCENARIO_DIR", tmp)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = dir.join("app.manifest");
    wait_for("the child's seals", || {
        done.exists()
            || std::fs::read_to_string(&manifest)
                .is_ok_and(|m| m.lines().filter(|l| l.starts_with("seal ")).count() >= seals)
    });
    let writing = !done.exists();
    child.kill().unwrap();
    child.wait().unwrap();
    writing
}

/// Runs `plan` (scenario `k` of `seed`) in a directory of its own and
/// checks the outcome; true if a session was killed while it wrote.
fn run(plan: &Plan, seed: u64, k: u64) -> bool {
    let tmp = TempDir::new("scenario");
    std::fs::create_dir_all(tmp.path()).unwrap();
    // Records are at most 4 x 4,000 x 200 bytes: 32 MiB holds them all
    // once the filler is gone, so only the session with the filler waits.
    let fs = plan
        .disk
        .and_then(|_| SmallFs::mount("scenario-disk", "32m"));
    let dir = fs.as_ref().map_or(tmp.path(), SmallFs::path).join("log");
    let mut moved = Vec::new();
    let mut killed_writing = false;
    for s in 0..plan.sessions.len() {
        if let Some((ks, seals)) = plan.kill.filter(|(ks, _)| *ks == s) {
            killed_writing = killed_session(seed, k, ks, seals, &dir, tmp.path());
            continue;
        }
        let (appenders, m) = session(plan, s, &dir, tmp.path(), fs.as_ref());
        moved.extend(m);
        // On the manual clock an idle shared appender never runs its
        // check, so it would still hold a segment the other cut: each
        // follows the cuts first, as its check would on a real clock.
        if plan.shared {
            for a in &appenders {
                a.reopen().unwrap();
            }
        }
        for a in appenders {
            if let Err(e) = a.shutdown() {
                panic!("shutdown: {e}; {:?}", a.stats());
            }
        }
    }
    let report = verify_ok(&dir);
    assert_eq!(report.lost(), 0, "{report}");
    for seal in sealed(&dir, "app") {
        let mut r = REASONS.lock().unwrap();
        *r.entry(seal.reason.as_str().to_string()).or_default() += 1;
        if seal.file == logcut_format::name::MOVED {
            *r.entry("moved away".to_string()).or_default() += 1;
        }
    }
    let log = read_log(&dir, "app");
    // How many records each writer wrote (`None`: killed, unknown).
    let wrote = |w: &str| {
        let s = (0..plan.sessions.len())
            .find(|s| (0..plan.threads).any(|t| tag(Plan::writer(*s, t)) == w));
        let s = s.unwrap_or_else(|| panic!("records of {w}, no writer of this scenario"));
        (plan.kill.map(|(ks, _)| ks) != Some(s)).then_some(plan.sessions[s])
    };
    if let Some((ks, _)) = plan.kill {
        // Without retention or moves: each writer's ids from 0 without a
        // gap (of a killed one, a prefix of what it wrote), every record
        // whole but one torn last record of one of the killed session's
        // writers (Direct: a `write(2)` stopped between pages; Buffered:
        // the batch under way).
        let mut p = Parser::fixed(plan.len).exact();
        for t in 0..plan.threads {
            p = p.killed(&tag(Plan::writer(ks, t)));
        }
        let r = p.parse(&log);
        for (w, n) in r.counts() {
            match wrote(&w) {
                Some(count) => assert_eq!(n, count, "{w}"),
                None => assert!(n <= plan.sessions[ks], "{w}: {n}"),
            }
        }
        for s in (0..plan.sessions.len()).filter(|s| *s != ks) {
            for t in 0..plan.threads {
                assert_eq!(
                    r.count(&tag(Plan::writer(s, t))),
                    plan.sessions[s],
                    "session {s}"
                );
            }
        }
        return killed_writing;
    }
    // Every record once: in the log, or in a file moved away, each whole
    // and each writer's in order within a file.
    let mut ids: BTreeMap<String, Vec<u64>> = Parser::fixed(plan.len).gaps().parse(&log).ids;
    for m in &moved {
        let data = std::fs::read(m).unwrap();
        for (t, more) in Parser::fixed(plan.len).gaps().parse(&data).ids {
            ids.entry(t).or_default().extend(more);
        }
    }
    let mut found = 0;
    for (w, got) in &mut ids {
        let count = wrote(w).unwrap_or(0);
        got.sort_unstable();
        let n = got.len();
        got.dedup();
        assert_eq!(got.len(), n, "{w}: a record twice");
        assert!(
            got.last().is_none_or(|l| *l < count),
            "{w}: ids past {count}"
        );
        found += n as u64;
    }
    // The rest is what retention deleted, as the manifest counts it. (Not
    // per writer: one that finished first may have had all its records in
    // deleted segments.)
    let written = plan.threads as u64 * plan.sessions.iter().sum::<u64>();
    assert_eq!(
        written - found,
        report.logs[0].deleted_records,
        "records missing against those retention deleted"
    );
    if plan.keep.is_none() && moved.is_empty() {
        // Nothing deleted or moved: each writer's ids from 0, no gap.
        let r = Parser::fixed(plan.len).exact().parse(&log);
        for (w, n) in r.counts() {
            assert_eq!(Some(n), wrote(&w), "{w}");
        }
    }
    false
}

/// Session `s` of scenario `k` of `seed` (`LOGCUT_SCENARIO=seed:k:s`), in
/// a directory `LOGCUT_SCENARIO_DIR`; run by
/// `random_scenarios_lose_and_repeat_nothing`, which kills it. After its
/// records it says so (a file) and waits to be killed.
#[test]
#[ignore = "run as a child process by random_scenarios_lose_and_repeat_nothing"]
fn scenario_child() {
    let which = child_env("LOGCUT_SCENARIO", "random_scenarios_*");
    let tmp = PathBuf::from(child_env("LOGCUT_SCENARIO_DIR", "random_scenarios_*"));
    let n: Vec<u64> = which.split(':').map(|x| x.parse().unwrap()).collect();
    let (seed, k, s) = (n[0], n[1], n[2] as usize);
    let mut rng = Rng(seed);
    let plan = (0..=k).map(|_| Plan::draw(&mut rng)).last().unwrap();
    let (_a, _) = session(&plan, s, &tmp.join("log"), &tmp, None);
    std::fs::write(tmp.join(format!("child-{s}-done")), b"").unwrap();
    // Killed while it waits; never shut down.
    let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0]);
}

#[test]
fn random_scenarios_lose_and_repeat_nothing() {
    let seed = std::env::var("LOGCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let count: u64 = std::env::var("LOGCUT_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    // Past the harness's capture: the seed of a failing run must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "scenarios: LOGCUT_SEED={seed} LOGCUT_SCENARIOS={count}"
    );
    // `LOGCUT_SCENARIO_FROM=<k>`: the same draws, run from scenario k on
    // (to replay one that failed).
    let from: u64 = std::env::var("LOGCUT_SCENARIO_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rng = Rng(seed);
    let (mut kills, mut mid_write, mut shared, mut disk) = (0, 0, 0, 0);
    for k in 0..count {
        let plan = Plan::draw(&mut rng);
        if k < from {
            continue;
        }
        kills += u64::from(plan.kill.is_some());
        shared += u64::from(plan.shared);
        disk += u64::from(plan.disk.is_some());
        let res = std::panic::catch_unwind(|| run(&plan, seed, k));
        mid_write += u64::from(*res.as_ref().unwrap_or(&false));
        if let Err(e) = res {
            let _ = writeln!(
                std::io::stderr(),
                "scenario {k} of LOGCUT_SEED={seed} failed: {plan:?}"
            );
            std::panic::resume_unwind(e);
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "scenarios: {count} run, {kills} with a SIGKILL ({mid_write} while writing), {shared} shared by two appenders, {disk} on a full disk ({} with a failed write); seals by reason: {:?}",
        DISK_FAILED.load(Ordering::Relaxed),
        REASONS.lock().unwrap()
    );
}
