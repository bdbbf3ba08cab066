//! Power cuts while logcut writes: one or two child processes log from two
//! threads each onto the file system, the power goes at a chosen point (or
//! after they finished), the disk keeps what it had synced (and, with
//! `Lose::Some`, part of the rest), the file system is mounted again, an
//! appender starts (recovery) and writes on, and the log is checked
//! against what each fsync policy promises.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, Read, Write},
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use logcut::{Appender, AppenderBuilder, Compression, Fsync, Mode};
use logcut_format::manifest::{Manifest, SealReason};
use logcut_powercut::{CutAt, CutReport, Faults, Lose, Rng};

use crate::kit::{self, LEN, LOGS, TempDir};

const NAME: &str = "app";
/// Small segments, so that a run makes many cuts (and seals and syncs).
const SEGMENT: u64 = 8 * 1024;
const THREADS: usize = 2;
const PER_THREAD: u64 = 400;
/// The writer number of the records written after recovery.
const AFTER: usize = 999;

/// One configuration of the appender under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Setup {
    mode: Mode,
    fsync: Fsync,
    /// Processes sharing the log (1: exclusive).
    procs: usize,
    /// zstd compression and `keep` 3 segments.
    retire: bool,
    /// The file system refuses `RENAME_NOREPLACE`, as LazyFS does.
    no_rename_flags: bool,
}

impl Setup {
    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{}",
            match self.mode {
                Mode::Direct => "direct",
                Mode::Buffered => "buffered",
            },
            match self.fsync {
                Fsync::Never => "never",
                Fsync::Always => "always",
                _ => "atseal",
            },
            self.procs,
            self.retire,
            self.no_rename_flags
        )
    }

    fn decode(s: &str) -> Setup {
        let v: Vec<&str> = s.split(',').collect();
        Setup {
            mode: if v[0] == "direct" {
                Mode::Direct
            } else {
                Mode::Buffered
            },
            fsync: match v[1] {
                "never" => Fsync::Never,
                "always" => Fsync::Always,
                _ => Fsync::AtSeal,
            },
            procs: v[2].parse().expect("procs"),
            retire: v[3] == "true",
            no_rename_flags: v[4] == "true",
        }
    }

    fn faults(&self) -> Faults {
        Faults {
            refuse_rename_flags: self.no_rename_flags,
            ..Faults::default()
        }
    }

    fn builder(&self, dir: &Path) -> AppenderBuilder {
        let mut b = Appender::builder()
            .dir(dir)
            .name(NAME)
            .max_size(SEGMENT)
            .mode(self.mode)
            .fsync(self.fsync)
            .buffer_size(4 * 1024)
            .shared(self.procs > 1);
        if self.retire {
            b = b.compress(Compression::Zstd { level: 1 }).keep(3);
        }
        b
    }
}

/// The child: writes `PER_THREAD` records from each of `THREADS` threads
/// and prints `ack <writer> <seq>` for each record known written: in
/// Direct mode when `write` returned, in Buffered mode when the
/// `flush_records` after it returned (every 25 records).
#[test]
#[ignore = "run by the power-cut tests as a child process"]
fn child_writer() {
    let dir = std::env::var_os("LOGCUT_PC_DIR").expect("LOGCUT_PC_DIR: run by the power-cut tests");
    let setup = Setup::decode(&std::env::var("LOGCUT_PC_SETUP").expect("LOGCUT_PC_SETUP"));
    let proc: usize = std::env::var("LOGCUT_PC_PROC")
        .expect("LOGCUT_PC_PROC")
        .parse()
        .expect("LOGCUT_PC_PROC");
    let app = setup.builder(Path::new(&dir)).build().expect("start");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let app = &app;
            s.spawn(move || {
                let w = proc * THREADS + t;
                for seq in 0..PER_THREAD {
                    let mut a = app;
                    a.write_all(&kit::record(w, seq)).expect("write");
                    let known = match setup.mode {
                        Mode::Direct => true,
                        Mode::Buffered if seq % 25 == 24 => {
                            app.flush_records().expect("flush");
                            true
                        }
                        Mode::Buffered => false,
                    };
                    if known {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {w} {seq}").expect("stdout");
                    }
                }
            });
        }
    });
    app.shutdown().expect("shutdown");
}

/// Record ids per writer, in log order.
type Ids = BTreeMap<usize, Vec<u64>>;

/// What one run left.
struct Outcome {
    /// Highest id acknowledged per writer.
    acked: BTreeMap<usize, u64>,
    /// The power went while the children ran (not after they finished).
    cut: bool,
    report: CutReport,
    /// Ids found per writer in segments sealed by the writers, in log
    /// order.
    sealed: BTreeMap<usize, Vec<u64>>,
    /// Ids found per writer in segments recovery adopted (what was not
    /// sealed when the power went), in log order.
    adopted: BTreeMap<usize, Vec<u64>>,
    /// Sealed segments recovery recorded as lost (`Fsync::Never`).
    segments_lost: usize,
    /// Segments of a shared log not yet sealed, gone with the power,
    /// recorded as lost from their `part` entries.
    unsealed_lost: usize,
    /// Records in deleted segments (by retention), from the manifest;
    /// `None` if a deleted segment's count is unknown.
    deleted_records: Option<u64>,
    /// Torn records found at the end of recovered segments.
    torn: usize,
}

/// Runs the children on a fresh disk, cuts the power at `at` (or after
/// they finished, if they finish first or `at` is `None`), reboots,
/// recovers, and reads the log back. `None` if FUSE cannot be mounted here.
fn run(setup: Setup, at: Option<CutAt>, lose: Lose) -> Option<(Outcome, u64, u64)> {
    let tmp = TempDir::new("cut");
    let dir = tmp.path().join(LOGS);
    let m = kit::mount(kit::empty_disk(), tmp.path(), setup.faults())?;
    if let Some(at) = at {
        m.cut_at(at);
    }
    let mut children: Vec<Child> = (0..setup.procs)
        .map(|p| {
            kit::child_test("cut::child_writer")
                .env("LOGCUT_PC_DIR", &dir)
                .env("LOGCUT_PC_SETUP", setup.encode())
                .env("LOGCUT_PC_PROC", p.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let out = c.stdout.take().expect("stdout");
            let err = c.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                let acks: Vec<String> = std::io::BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| l.starts_with("ack "))
                    .collect();
                let mut e = String::new();
                let _ = std::io::BufReader::new(err).read_to_string(&mut e);
                (acks, e)
            })
        })
        .collect();
    // Wait for the cut or for every child to end (a wait on the file
    // system's condition variable, woken by the cut).
    let mut ended = vec![None; children.len()];
    while !m.wait_dead(Duration::from_millis(20)) {
        for (c, e) in children.iter_mut().zip(&mut ended) {
            if e.is_none() {
                *e = c.try_wait().expect("wait child");
            }
        }
        if ended.iter().all(Option::is_some) {
            break;
        }
    }
    let cut = m.is_dead();
    if cut {
        // The machine stops: every writer dies before any request of its
        // returns (see `Mount::release`).
        for c in &mut children {
            let _ = c.kill();
        }
    }
    m.release();
    let mut acked = BTreeMap::new();
    for ((mut c, r), e) in children.into_iter().zip(readers).zip(ended) {
        let status = match e {
            Some(s) => s,
            None => c.wait().expect("wait child"),
        };
        let (acks, err) = r.join().expect("reader");
        assert!(
            cut || status.success(),
            "{setup:?}: the child failed without a power cut: {status}\n{err}"
        );
        for a in acks {
            let mut it = a.split(' ').skip(1);
            let w: usize = it.next().and_then(|x| x.parse().ok()).expect("ack");
            let seq: u64 = it.next().and_then(|x| x.parse().ok()).expect("ack");
            let e = acked.entry(w).or_insert(seq);
            *e = (*e).max(seq);
        }
    }
    let counts = m.counts();
    let mut disk = m.unmount().expect("unmount");
    let report = disk.power_cut(lose);

    // The reboot: mount what the disk kept, start an appender (recovery),
    // write on, shut down.
    let m = kit::mount(disk, tmp.path(), setup.faults()).expect("mount again");
    let problems = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p = problems.clone();
    let app = setup
        .builder(&dir)
        .error_handler(move |e: logcut::Error| p.lock().expect("lock").push(e.to_string()))
        .build()
        .unwrap_or_else(|e| panic!("{setup:?} {at:?} {lose:?}: cannot start after the cut: {e}"));
    for seq in 0..10 {
        (&app)
            .write_all(&kit::record(AFTER, seq))
            .expect("write after recovery");
    }
    app.shutdown()
        .unwrap_or_else(|e| panic!("{setup:?} {at:?} {lose:?}: shutdown after recovery: {e}"));
    drop(app);
    // `verify` must accept the directory, but for the losses recovery
    // counted: with `Fsync::Never` sealed segments the power cut took
    // ("missing"), and in a shared log the segments not yet sealed that
    // processes had written to ("power-loss", their `part` entries count
    // the records).
    let v = logcut::verify(&dir).expect("verify");
    let lost = |why: &str| {
        v.problems
            .iter()
            .filter(|p| p.kind == logcut::ProblemKind::RecordsLost && p.detail.ends_with(why))
            .count()
    };
    let (missing, unsealed) = (lost(": missing"), lost(": power-loss"));
    assert!(
        missing + unsealed == v.problems.len()
            && (setup.fsync == Fsync::Never || missing == 0)
            && (setup.procs > 1 || unsealed == 0),
        "{setup:?} cut {at:?} {lose:?} ({report:?}): verify after recovery failed:\n{v}\nreported: {:?}",
        problems.lock().expect("lock")
    );
    let segments_lost = missing;
    let unsealed_lost = unsealed;
    let (sealed, adopted, torn, deleted_records) = read_back(&dir, setup, at, lose);
    drop(m);
    Some((
        Outcome {
            acked,
            cut,
            report,
            sealed,
            adopted,
            deleted_records,
            torn,
            segments_lost,
            unsealed_lost,
        },
        counts.ops,
        counts.syncs,
    ))
}

/// Every record of every segment, checked whole; a torn record is allowed
/// only at the end of a segment adopted by recovery, and a segment whose
/// seal entry counts its records must hold exactly that many.
fn read_back(
    dir: &Path,
    setup: Setup,
    at: Option<CutAt>,
    lose: Lose,
) -> (Ids, Ids, usize, Option<u64>) {
    let ctx = format!("{setup:?} cut {at:?} {lose:?}");
    let manifest = Manifest::read(&dir.join(format!("{NAME}.manifest"))).expect("manifest");
    let deleted = manifest.deleted();
    // Records retention deleted; `None` if a deleted segment's count is
    // unknown (one recovery adopted).
    let deleted_records = manifest
        .seals()
        .filter(|s| {
            deleted
                .get(&s.seq)
                .is_some_and(|d| d.reason != logcut_format::manifest::DeleteReason::Lost)
        })
        .map(|s| s.records)
        .sum();
    let mut sealed: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut adopted: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut torn = 0;
    for seg in logcut_format::segments(dir, NAME).expect("segments") {
        assert!(!seg.active, "{ctx}: an active segment after shutdown");
        let mut data = Vec::new();
        seg.open()
            .and_then(|mut r| r.read_to_end(&mut data))
            .unwrap_or_else(|e| panic!("{ctx}: read {}: {e}", seg.path.display()));
        let seal = seg.seal.as_ref().expect("sealed");
        let whole = data.len() / LEN;
        if data.len() % LEN != 0 {
            assert_eq!(
                seal.reason,
                SealReason::Recovery,
                "{ctx}: a torn record in {} (not a recovered segment)",
                seg.path.display()
            );
            torn += 1;
            let tail = &data[whole * LEN..];
            assert!(
                !tail.contains(&b'\n'),
                "{ctx}: misaligned records in {}",
                seg.path.display()
            );
        }
        if let Some(n) = seal.records {
            assert_eq!(
                n,
                whole as u64,
                "{ctx}: {} holds {whole} records, its seal says {n}",
                seg.path.display()
            );
        }
        for (i, rec) in data.chunks_exact(LEN).enumerate() {
            let (w, seq) = kit::parse(rec).unwrap_or_else(|| {
                panic!(
                    "{ctx}: record {i} of {} is damaged: {:?}",
                    seg.path.display(),
                    String::from_utf8_lossy(rec)
                )
            });
            let into = if seal.reason == SealReason::Recovery {
                &mut adopted
            } else {
                &mut sealed
            };
            into.entry(w).or_default().push(seq);
        }
    }
    (sealed, adopted, torn, deleted_records)
}

/// Checks an outcome against what `setup.fsync` promises.
///
/// Every policy: no record twice, none damaged (`read_back`), the records
/// written after recovery all there, and `verify` content (`run`).
/// `AtSeal` and `Always`: each writer's records in the segments it sealed
/// are consecutive (retention deletes only the oldest), and what recovery
/// adopted of the segments not yet sealed comes after them. It may have
/// gaps: the disk may have written back the active segment's pages but
/// not those of the one being sealed, so the newest records are not
/// always the ones lost. After a clean shutdown nothing is lost.
/// `Always`: every acknowledged record is there.
fn check(setup: Setup, at: Option<CutAt>, lose: Lose, o: &Outcome) {
    let ctx = format!("{setup:?} cut {at:?} {lose:?} ({:?})", o.report);
    let writers: BTreeSet<usize> = o.sealed.keys().chain(o.adopted.keys()).copied().collect();
    let mut missing_prefix = 0;
    for w in writers {
        let sealed = o.sealed.get(&w).map_or(&[][..], Vec::as_slice);
        let adopted = o.adopted.get(&w).map_or(&[][..], Vec::as_slice);
        let all: Vec<u64> = sealed.iter().chain(adopted).copied().collect();
        let set: BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(set.len(), all.len(), "{ctx}: writer {w} has a record twice");
        if w == AFTER {
            assert_eq!(
                set,
                (0..10).collect(),
                "{ctx}: records written after recovery"
            );
            continue;
        }
        if setup.fsync == Fsync::Never {
            continue;
        }
        let first = sealed.first().copied().unwrap_or(0);
        let want: Vec<u64> = (first..first + sealed.len() as u64).collect();
        assert_eq!(
            sealed,
            &want[..],
            "{ctx}: writer {w}: a gap or reordering in sealed segments"
        );
        let end = first + sealed.len() as u64;
        assert!(
            adopted.windows(2).all(|p| p[0] < p[1]) && adopted.first().is_none_or(|&a| a >= end),
            "{ctx}: writer {w}: adopted records {adopted:?} do not follow the sealed ones (up to {end})"
        );
        missing_prefix += first;
        if !o.cut {
            assert!(
                adopted.is_empty(),
                "{ctx}: writer {w}: records left unsealed after a clean shutdown"
            );
            assert_eq!(
                end, PER_THREAD,
                "{ctx}: writer {w}: records lost after a clean shutdown"
            );
        }
        if setup.fsync == Fsync::Always {
            if let Some(&a) = o.acked.get(&w) {
                assert!(
                    set.contains(&a) && (first..=a).all(|i| set.contains(&i)),
                    "{ctx}: writer {w}: acknowledged records up to {a}, found {all:?}"
                );
            }
        }
    }
    if setup.fsync != Fsync::Never {
        assert_eq!(o.segments_lost, 0, "{ctx}: segments lost");
        // A writer with nothing left: the power took its records before
        // any was acknowledged, or (with `keep 3`) retention deleted them
        // all, which happens when it finished well before the others.
        for w in 0..setup.procs * THREADS {
            let none = !o.sealed.contains_key(&w) && !o.adopted.contains_key(&w);
            assert!(
                !none
                    || setup.retire
                    || o.cut && !(setup.fsync == Fsync::Always && o.acked.contains_key(&w)),
                "{ctx}: every record of writer {w} is gone"
            );
        }
        if let (true, Some(deleted)) = (setup.retire, o.deleted_records) {
            if o.sealed.len() == setup.procs * THREADS + 1 {
                // Ids missing at the start are exactly those of the
                // deleted segments.
                assert_eq!(missing_prefix, deleted, "{ctx}: deleted records");
            }
        }
    }
}

/// Totals of a series, for the summary line.
#[derive(Default, Debug)]
struct Tally {
    runs: u64,
    cuts_while_writing: u64,
    with_torn_write: u64,
    torn_records: u64,
    ops_lost: u64,
    segments_lost: u64,
    unsealed_lost: u64,
    adopted_records: u64,
}

/// Runs `setup` once without a cut (to learn how many operations and
/// syncs a run makes), then with the power cut at evenly spread
/// operations, before and after evenly spread syncs, and at random
/// operations, alternating what the disk keeps.
fn series(setup: Setup, points: u64, seed: u64) {
    // `LOGCUT_POWER_CUTS=<n>` runs n points of each kind instead (the
    // long run documented in TESTING.md).
    let points = std::env::var("LOGCUT_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(points);
    let Some((o, ops, syncs)) = run(setup, None, Lose::All) else {
        return;
    };
    check(setup, None, Lose::All, &o);
    // After a clean shutdown, the disk may also have kept part of what was
    // not synced: nothing of what was must be lost either way.
    let lose = Lose::Some { seed };
    let (o, _, _) = run(setup, None, lose).expect("mounted before");
    check(setup, None, lose, &o);
    let mut tally = Tally {
        runs: 2,
        ..Tally::default()
    };
    let mut rng = Rng::new(seed);
    let mut cuts = Vec::new();
    for j in 1..=points {
        cuts.push(CutAt::Op(ops * j / (points + 1)));
        let s = (syncs * j / (points + 1)).max(1);
        cuts.push(CutAt::BeforeSync(s));
        cuts.push(CutAt::AfterSync(s));
        cuts.push(CutAt::Op(rng.below(ops) + 1));
    }
    for (i, at) in cuts.into_iter().enumerate() {
        let lose = if i % 2 == 0 {
            Lose::All
        } else {
            Lose::Some {
                seed: seed ^ i as u64,
            }
        };
        let (o, _, _) = run(setup, Some(at), lose).expect("mounted before");
        check(setup, Some(at), lose, &o);
        tally.runs += 1;
        tally.cuts_while_writing += u64::from(o.cut);
        tally.with_torn_write += u64::from(o.report.torn);
        tally.torn_records += o.torn as u64;
        tally.ops_lost += o.report.pending_lost as u64;
        tally.segments_lost += o.segments_lost as u64;
        tally.unsealed_lost += o.unsealed_lost as u64;
        tally.adopted_records += o.adopted.values().map(|v| v.len() as u64).sum::<u64>();
    }
    let _ = writeln!(
        std::io::stderr(),
        "power cuts {}: {tally:?} (a run makes {ops} operations, {syncs} syncs)",
        setup.encode()
    );
}

fn setup(mode: Mode, fsync: Fsync) -> Setup {
    Setup {
        mode,
        fsync,
        procs: 1,
        retire: false,
        no_rename_flags: false,
    }
}

#[test]
fn direct_at_seal() {
    series(setup(Mode::Direct, Fsync::AtSeal), 3, 1);
}

#[test]
fn buffered_at_seal() {
    series(setup(Mode::Buffered, Fsync::AtSeal), 3, 2);
}

#[test]
fn direct_always() {
    series(setup(Mode::Direct, Fsync::Always), 3, 3);
}

#[test]
fn buffered_always() {
    series(setup(Mode::Buffered, Fsync::Always), 3, 4);
}

#[test]
fn direct_never() {
    series(setup(Mode::Direct, Fsync::Never), 3, 5);
}

#[test]
fn buffered_never() {
    series(setup(Mode::Buffered, Fsync::Never), 3, 6);
}

#[test]
fn shared_two_processes_at_seal() {
    series(
        Setup {
            procs: 2,
            ..setup(Mode::Direct, Fsync::AtSeal)
        },
        3,
        7,
    );
    series(
        Setup {
            procs: 2,
            ..setup(Mode::Buffered, Fsync::AtSeal)
        },
        3,
        8,
    );
}

#[test]
fn compression_and_retention_at_seal() {
    series(
        Setup {
            retire: true,
            ..setup(Mode::Direct, Fsync::AtSeal)
        },
        3,
        9,
    );
    series(
        Setup {
            retire: true,
            ..setup(Mode::Buffered, Fsync::Never)
        },
        3,
        10,
    );
}

#[test]
fn without_rename_noreplace_at_seal() {
    for (mode, seed) in [(Mode::Direct, 11), (Mode::Buffered, 12)] {
        series(
            Setup {
                no_rename_flags: true,
                ..setup(mode, Fsync::AtSeal)
            },
            3,
            seed,
        );
    }
}
