#![allow(clippy::print_stdout, clippy::print_stderr)]
// Clippy checks the root Cargo.toml's `[workspace.lints]` in every member: there
// `rust_2018_idioms` (a group) shares priority 0 with `unsafe_op_in_unsafe_fn`.
// Remove this once the root gives `rust_2018_idioms` `priority = -1`.
//! Throughput and per-write latency of logcut against two plain-file
//! baselines: a shared `File` with one `write` per record, and a
//! `BufWriter<File>` behind a mutex.
//!
//! Usage: `cargo run --release -p logcut-bench -- [--records N] [--rounds R] [--quick] [--compression | --targets]`
//!
//! See README.md for what is measured and how to read the output.

use std::{
    fmt::{self, Display},
    fs::{self, File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Barrier, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use logcut::{Appender, Mode};

mod compress;
mod targets;

/// Bytes per record, newline included.
const RECORD_LEN: usize = 120;
const THREAD_COUNTS: [usize; 3] = [1, 2, 4];
const MIB: u64 = 1 << 20;
const KIB64: u64 = 64 << 10;
/// Thread count and segment size of the rotation-storm scenario and of the
/// steady state it is compared with.
const STORM_THREADS: usize = 4;
const STORM_MAX_SIZE: u64 = MIB;

const DEFAULT_RECORDS: u64 = 400_000;
const DEFAULT_ROUNDS: usize = 3;
const QUICK_RECORDS: u64 = 50_000;
const QUICK_ROUNDS: usize = 1;

const TARGET_DIRECT: f64 = 0.90;
const TARGET_BUFFERED: f64 = 0.80;
const TARGET_STORM: f64 = 2.0;

// ---------------------------------------------------------------------------
// Configurations

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Shared `File` opened for append, one `write_all` per record.
    PlainFile,
    /// `Mutex<BufWriter<File>>`, 8 KiB buffer, flushed at the end.
    BufWriter,
    /// logcut; `storm` adds a thread calling `rotate()` in a loop.
    Logcut {
        mode: Mode,
        max_size: u64,
        storm: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    kind: Kind,
    threads: usize,
}

impl Config {
    fn logcut(mode: Mode, max_size: u64, threads: usize) -> Config {
        Config {
            kind: Kind::Logcut {
                mode,
                max_size,
                storm: false,
            },
            threads,
        }
    }

    fn storm(mode: Mode) -> Config {
        Config {
            kind: Kind::Logcut {
                mode,
                max_size: STORM_MAX_SIZE,
                storm: true,
            },
            threads: STORM_THREADS,
        }
    }

    /// The baseline this configuration is compared with: Direct against
    /// plain-file, Buffered against bufwriter, same thread count.
    fn baseline(&self) -> Option<Config> {
        match self.kind {
            Kind::PlainFile | Kind::BufWriter => None,
            Kind::Logcut { mode, .. } => Some(Config {
                kind: match mode {
                    Mode::Direct => Kind::PlainFile,
                    Mode::Buffered => Kind::BufWriter,
                },
                threads: self.threads,
            }),
        }
    }
}

impl Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::PlainFile => f.write_str("plain-file"),
            Kind::BufWriter => f.write_str("bufwriter"),
            Kind::Logcut {
                mode,
                max_size,
                storm,
            } => {
                let mode = match mode {
                    Mode::Direct => "direct",
                    Mode::Buffered => "buffered",
                };
                write!(f, "{mode} {}", size_label(max_size))?;
                if storm {
                    f.write_str(" storm")?;
                }
                Ok(())
            }
        }
    }
}

fn size_label(bytes: u64) -> String {
    if bytes % MIB == 0 {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

/// Every configuration of one round, grouped by thread count, baselines and
/// logcut variants alternating (the storms go with the 4-thread group, next
/// to the steady state they are compared with).
fn round_configs() -> Vec<Config> {
    let mut v = Vec::new();
    for threads in THREAD_COUNTS {
        v.push(Config {
            kind: Kind::PlainFile,
            threads,
        });
        v.push(Config::logcut(Mode::Direct, MIB, threads));
        v.push(Config::logcut(Mode::Direct, KIB64, threads));
        if threads == STORM_THREADS {
            v.push(Config::storm(Mode::Direct));
        }
        v.push(Config {
            kind: Kind::BufWriter,
            threads,
        });
        v.push(Config::logcut(Mode::Buffered, MIB, threads));
        v.push(Config::logcut(Mode::Buffered, KIB64, threads));
        if threads == STORM_THREADS {
            v.push(Config::storm(Mode::Buffered));
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Records

/// A 120-byte record, `logcut-bench thread=TT seq=SSSSSSSSSS ....\n`, whose
/// sequence number is rewritten in place (no allocation, no formatting).
struct Record {
    buf: [u8; RECORD_LEN],
    seq_at: usize,
}

const SEQ_DIGITS: usize = 10;

impl Record {
    fn new(thread: usize) -> Record {
        let mut buf = [b'.'; RECORD_LEN];
        let prefix = format!("logcut-bench thread={thread:02} seq=");
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let seq_at = prefix.len();
        buf[seq_at + SEQ_DIGITS] = b' ';
        buf[RECORD_LEN - 1] = b'\n';
        let mut r = Record { buf, seq_at };
        r.set_seq(0);
        r
    }

    fn set_seq(&mut self, mut seq: u64) {
        for i in (0..SEQ_DIGITS).rev() {
            self.buf[self.seq_at + i] = b'0' + (seq % 10) as u8;
            seq /= 10;
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

// ---------------------------------------------------------------------------
// Running one configuration

/// What one run of one configuration measured.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rate: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    rotations: Option<u64>,
}

/// What the writer threads measured.
struct Drive {
    elapsed: Duration,
    /// Nanoseconds per `write`, every record of every thread.
    latencies: Vec<u64>,
    rotate_calls: u64,
    rotate_failures: u64,
    rotate_error: Option<String>,
}

/// Decrements the count of running writers when a writer ends (even by
/// panic), and tells the rotation thread to stop after the last one.
struct WriterDone<'a> {
    remaining: &'a AtomicUsize,
    done: &'a AtomicBool,
}

impl Drop for WriterDone<'_> {
    fn drop(&mut self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.store(true, Ordering::Release);
        }
    }
}

/// One writer thread: `count` records, each write timed.
fn write_loop<F, E>(thread: usize, count: u64, mut write: F) -> Result<Vec<u64>, String>
where
    F: FnMut(&[u8]) -> Result<(), E>,
    E: Display,
{
    let mut rec = Record::new(thread);
    let mut lat = Vec::with_capacity(count as usize);
    for seq in 0..count {
        rec.set_seq(seq);
        let t0 = Instant::now();
        let res = write(rec.bytes());
        let ns = t0.elapsed().as_nanos() as u64;
        if let Err(e) = res {
            return Err(format!(
                "thread {thread}: write of record {seq} failed: {e}"
            ));
        }
        lat.push(ns);
    }
    Ok(lat)
}

/// Runs `threads` writers over `records` records in total, started together
/// behind a barrier. `make` gives each thread its writer; `finish` runs
/// after the last writer ends and is timed (final flush). With `rotator`,
/// one more thread calls `rotate()` in a loop until the writers are done.
fn drive<M, F, E>(
    threads: usize,
    records: u64,
    make: M,
    finish: impl FnOnce() -> Result<(), String>,
    rotator: Option<&Appender>,
) -> Result<Drive, String>
where
    M: Fn() -> F,
    F: FnMut(&[u8]) -> Result<(), E> + Send,
    E: Display,
{
    let barrier = Barrier::new(threads + 1 + usize::from(rotator.is_some()));
    let remaining = AtomicUsize::new(threads);
    let done = AtomicBool::new(false);
    let (barrier, remaining, done) = (&barrier, &remaining, &done);
    thread::scope(|s| {
        let writers: Vec<_> = (0..threads)
            .map(|t| {
                let count =
                    records / threads as u64 + u64::from((t as u64) < records % threads as u64);
                let write = make();
                s.spawn(move || {
                    let _done = WriterDone { remaining, done };
                    barrier.wait();
                    write_loop(t, count, write)
                })
            })
            .collect();
        let rotating = rotator.map(|app| {
            s.spawn(move || {
                barrier.wait();
                let (mut calls, mut failures, mut first) = (0u64, 0u64, None);
                while !done.load(Ordering::Acquire) {
                    calls += 1;
                    if let Err(e) = app.rotate() {
                        failures += 1;
                        first.get_or_insert_with(|| e.to_string());
                    }
                }
                (calls, failures, first)
            })
        });
        barrier.wait();
        let start = Instant::now();
        let mut latencies = Vec::with_capacity(records as usize);
        let mut error = None;
        for w in writers {
            match w.join() {
                Ok(Ok(lat)) => latencies.extend_from_slice(&lat),
                Ok(Err(e)) => {
                    error.get_or_insert(e);
                }
                Err(_) => {
                    error.get_or_insert_with(|| "a writer thread panicked".to_string());
                }
            }
        }
        let finished = finish();
        let elapsed = start.elapsed();
        let (rotate_calls, rotate_failures, rotate_error) = match rotating {
            Some(h) => h
                .join()
                .map_err(|_| "the rotation thread panicked".to_string())?,
            None => (0, 0, None),
        };
        if let Some(e) = error {
            return Err(e);
        }
        finished?;
        Ok(Drive {
            elapsed,
            latencies,
            rotate_calls,
            rotate_failures,
            rotate_error,
        })
    })
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

/// Runs one configuration in `dir` (which must not exist yet; it is left
/// for the caller to delete).
fn run(cfg: Config, records: u64, dir: &Path) -> Result<Sample, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let (drive, rotations) = match cfg.kind {
        Kind::PlainFile => {
            let file = open_append(&dir.join("plain.log"))?;
            let file = &file;
            let d = drive(
                cfg.threads,
                records,
                || move |r: &[u8]| (&*file).write_all(r),
                || Ok(()),
                None,
            )?;
            (d, None)
        }
        Kind::BufWriter => {
            let w = Mutex::new(BufWriter::new(open_append(&dir.join("buf.log"))?));
            let w = &w;
            let d = drive(
                cfg.threads,
                records,
                || move |r: &[u8]| w.lock().expect("poisoned").write_all(r),
                || {
                    w.lock()
                        .expect("poisoned")
                        .flush()
                        .map_err(|e| format!("flush: {e}"))
                },
                None,
            )?;
            (d, None)
        }
        Kind::Logcut {
            mode,
            max_size,
            storm,
        } => {
            let app = Appender::builder()
                .dir(dir)
                .name("app")
                .max_size(max_size)
                .mode(mode)
                .build()
                .map_err(|e| format!("build appender: {e}"))?;
            let d = drive(
                cfg.threads,
                records,
                || {
                    let a = app.clone();
                    move |r: &[u8]| a.write_record(r)
                },
                || app.flush_records().map_err(|e| format!("flush: {e}")),
                storm.then_some(&app),
            );
            // Shut down even if the run failed, then check the directory.
            let shut = app.shutdown().map_err(|e| format!("shutdown: {e}"));
            let d = d?;
            shut?;
            if d.rotate_failures > 0 {
                eprintln!(
                    "warning: {cfg} ({} threads): {} of {} rotate() calls failed; first: {}",
                    cfg.threads,
                    d.rotate_failures,
                    d.rotate_calls,
                    d.rotate_error.as_deref().unwrap_or("?")
                );
            }
            let report = logcut::verify(dir).map_err(|e| format!("verify: {e}"))?;
            if !report.is_ok() || report.records() != records {
                return Err(format!(
                    "verification failed for {cfg} ({} threads): wrote {records} records, \
                     verify found {} sealed ({} lost)\n{report}",
                    cfg.threads,
                    report.records(),
                    report.lost(),
                ));
            }
            (d, Some(app.stats().rotations))
        }
    };
    let mut lat = drive.latencies;
    lat.sort_unstable();
    Ok(Sample {
        rate: records as f64 / drive.elapsed.as_secs_f64(),
        p50: quantile(&lat, 0.50),
        p99: quantile(&lat, 0.99),
        p999: quantile(&lat, 0.999),
        max: lat.last().copied().unwrap_or(0),
        rotations,
    })
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Temporary directories

/// `<temp>/logcut-bench-<pid>`, removed when dropped.
struct TempRoot {
    path: PathBuf,
    next: usize,
}

impl TempRoot {
    fn new() -> Result<TempRoot, String> {
        let path = std::env::temp_dir().join(format!("logcut-bench-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
        }
        fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(TempRoot { path, next: 0 })
    }

    /// A fresh directory name for one run (not created).
    fn next_dir(&mut self) -> PathBuf {
        self.next += 1;
        self.path.join(format!("run-{}", self.next))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Command line

struct Args {
    records: u64,
    rounds: usize,
    compression: bool,
    targets: bool,
}

const USAGE: &str =
    "usage: logcut-bench [--records N] [--rounds R] [--quick] [--compression | --targets]

  --records N   records per configuration, split among its threads (default 400000)
  --rounds R    rounds; configurations are interleaved within a round and the
                median over rounds is reported (default 3)
  --quick       50000 records, 1 round (a smoke test; --records/--rounds still apply)
  --compression instead: gzip and zstd throughput on log text, and writers with
                background compression on and off (default 1000000 lines x 3
                rounds; --quick: 400000 x 1)
  --targets     instead: the tracker's target table (issue 11), every target next to
                its baseline, as ratios with PASS/MISS (default 400000 records x 3
                rounds; --quick: 50000 x 1)";

fn parse_args() -> Result<Args, String> {
    let (mut records, mut rounds, mut quick, mut compression, mut targets) =
        (None, None, false, false, false);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--records" => {
                let v = it.next().ok_or("--records needs a value")?;
                let n: u64 = v
                    .replace('_', "")
                    .parse()
                    .map_err(|_| format!("--records: not a number: {v}"))?;
                if n == 0 {
                    return Err("--records must be at least 1".into());
                }
                records = Some(n);
            }
            "--rounds" => {
                let v = it.next().ok_or("--rounds needs a value")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--rounds: not a number: {v}"))?;
                if n == 0 {
                    return Err("--rounds must be at least 1".into());
                }
                rounds = Some(n);
            }
            "--quick" => quick = true,
            "--compression" => compression = true,
            "--targets" => targets = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}\n\n{USAGE}")),
        }
    }
    if compression && targets {
        return Err(format!(
            "--compression and --targets exclude each other\n\n{USAGE}"
        ));
    }
    let (dr, dn) = match (quick, compression) {
        (true, false) => (QUICK_RECORDS, QUICK_ROUNDS),
        (false, false) => (DEFAULT_RECORDS, DEFAULT_ROUNDS),
        (true, true) => (400_000, 1),
        (false, true) => (1_000_000, DEFAULT_ROUNDS),
    };
    Ok(Args {
        records: records.unwrap_or(dr),
        rounds: rounds.unwrap_or(dn),
        compression,
        targets,
    })
}

// ---------------------------------------------------------------------------
// Main

fn main() -> ExitCode {
    // Child processes of `--targets` (hidden flags).
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let child = match argv.first().map(String::as_str) {
        Some(targets::MANY_LOGS_FLAG) => Some(match argv.get(1) {
            Some(dir) => targets::many_logs_child(Path::new(dir)),
            None => Err(format!("{} DIR", targets::MANY_LOGS_FLAG)),
        }),
        Some(targets::SHARED_WRITER_FLAG) => Some(targets::shared_writer_child(&argv[1..])),
        _ => None,
    };
    if let Some(res) = child {
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("logcut-bench child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("logcut-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut root = match TempRoot::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("logcut-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.compression {
        return match compress::run(args.records, args.rounds, &mut root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("logcut-bench: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.targets {
        let ok = targets::run(args.records, args.rounds, &mut root);
        drop(root);
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let configs = round_configs();
    println!(
        "logcut-bench: {} records of {RECORD_LEN} bytes per configuration, {} round(s), \
         {} configurations per round, in {}",
        args.records,
        args.rounds,
        configs.len(),
        root.path.display()
    );

    // Warm-up (not reported): page cache, allocator, thread start.
    let warm = (args.records / 10).clamp(1, 20_000);
    for cfg in configs.iter().filter(|c| c.threads == 1) {
        let dir = root.next_dir();
        let res = run(*cfg, warm, &dir);
        if let Err(e) = res {
            fail(&e, &dir);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    // samples[i][round] for configs[i].
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
    for round in 0..args.rounds {
        eprint!("round {}/{}:", round + 1, args.rounds);
        // Alternate the direction between rounds so that no configuration
        // always runs right after the same neighbour.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..configs.len()).collect()
        } else {
            (0..configs.len()).rev().collect()
        };
        for i in order {
            let dir = root.next_dir();
            match run(configs[i], args.records, &dir) {
                Ok(s) => samples[i].push(s),
                Err(e) => fail(&e, &dir),
            }
            let _ = fs::remove_dir_all(&dir);
            eprint!(".");
        }
        eprintln!();
    }

    let summary = summarize(&configs, &samples);
    print_tables(&summary);
    print_targets(&summary);
    drop(root);
    ExitCode::SUCCESS
}

/// Prints the error and exits with status 1, keeping the failed run's
/// directory for inspection (every other run's directory is already gone).
fn fail(e: &str, dir: &Path) -> ! {
    eprintln!();
    eprintln!("logcut-bench: error: {e}");
    if dir.exists() {
        eprintln!(
            "logcut-bench: the run's directory is kept: {}",
            dir.display()
        );
    }
    // Exit here rather than return: returning would drop `TempRoot`, which
    // removes the evidence.
    std::process::exit(1);
}

// ---------------------------------------------------------------------------
// Summary

struct Summary {
    cfg: Config,
    rate: f64,
    /// Median over rounds of (rate / baseline rate in the same round).
    ratio: Option<f64>,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    rotations: Option<f64>,
    /// Per-round p99.9, in nanoseconds, for paired ratios.
    p999_rounds: Vec<f64>,
}

fn summarize(configs: &[Config], samples: &[Vec<Sample>]) -> Vec<Summary> {
    let med = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
    configs
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            let ratio = cfg.baseline().and_then(|b| {
                let j = configs.iter().position(|c| *c == b)?;
                Some(median(
                    samples[i]
                        .iter()
                        .zip(&samples[j])
                        .map(|(s, base)| s.rate / base.rate)
                        .collect(),
                ))
            });
            Summary {
                cfg: *cfg,
                rate: med(i, |s| s.rate),
                ratio,
                p50: med(i, |s| s.p50 as f64),
                p99: med(i, |s| s.p99 as f64),
                p999: med(i, |s| s.p999 as f64),
                max: med(i, |s| s.max as f64),
                rotations: samples[i][0]
                    .rotations
                    .map(|_| med(i, |s| s.rotations.unwrap_or(0) as f64)),
                p999_rounds: samples[i].iter().map(|s| s.p999 as f64).collect(),
            }
        })
        .collect()
}

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

fn print_tables(summary: &[Summary]) {
    println!();
    println!(
        "records/s and latencies: median over rounds; ratio: median over rounds of \
         (records/s / baseline records/s in the same round),"
    );
    println!(
        "direct vs plain-file, buffered vs bufwriter; latency = one write call, in µs; \
         rotations: segments sealed (stats.rotations)"
    );
    for threads in THREAD_COUNTS {
        println!();
        println!(
            "== {threads} thread{} ==",
            if threads == 1 { "" } else { "s" }
        );
        println!(
            "{:<22} {:>12} {:>7} {:>9} {:>9} {:>9} {:>10} {:>9}",
            "config", "records/s", "ratio", "p50", "p99", "p99.9", "max", "rotations"
        );
        for s in summary.iter().filter(|s| s.cfg.threads == threads) {
            println!(
                "{:<22} {:>12.0} {:>7} {:>9} {:>9} {:>9} {:>10} {:>9}",
                s.cfg.to_string(),
                s.rate,
                s.ratio
                    .map_or_else(|| "base".to_string(), |r| format!("{r:.3}")),
                us(s.p50),
                us(s.p99),
                us(s.p999),
                us(s.max),
                s.rotations
                    .map_or_else(|| "-".to_string(), |r| format!("{r:.0}")),
            );
        }
    }
}

fn find(summary: &[Summary], cfg: Config) -> &Summary {
    summary
        .iter()
        .find(|s| s.cfg == cfg)
        .expect("every configuration is measured")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn print_targets(summary: &[Summary]) {
    println!();
    println!("== targets ==");
    let line = |what: String, measured: String, ok: bool| {
        println!("{what:<58} {measured:<34} {}", verdict(ok));
    };
    for threads in THREAD_COUNTS {
        let s = find(summary, Config::logcut(Mode::Direct, MIB, threads));
        let r = s.ratio.unwrap_or(f64::NAN);
        line(
            format!(
                "direct 1MiB >= {:.0}% of plain-file, {threads} thr",
                TARGET_DIRECT * 100.0
            ),
            format!("{:.1}%", r * 100.0),
            r >= TARGET_DIRECT,
        );
    }
    for size in [MIB, KIB64] {
        for threads in THREAD_COUNTS {
            let s = find(summary, Config::logcut(Mode::Buffered, size, threads));
            let r = s.ratio.unwrap_or(f64::NAN);
            line(
                format!(
                    "buffered {} >= {:.0}% of bufwriter, {threads} thr",
                    size_label(size),
                    TARGET_BUFFERED * 100.0
                ),
                format!("{:.1}%", r * 100.0),
                r >= TARGET_BUFFERED,
            );
        }
    }
    for mode in [Mode::Direct, Mode::Buffered] {
        let storm = find(summary, Config::storm(mode));
        let steady = find(summary, Config::logcut(mode, STORM_MAX_SIZE, STORM_THREADS));
        let r = median(
            storm
                .p999_rounds
                .iter()
                .zip(&steady.p999_rounds)
                .map(|(a, b)| a / b)
                .collect(),
        );
        line(
            format!(
                "{} storm p99.9 <= {TARGET_STORM:.0}x steady ({STORM_THREADS} thr, {})",
                storm.cfg.to_string().split(' ').next().unwrap_or(""),
                size_label(STORM_MAX_SIZE)
            ),
            format!("{r:.2}x ({} / {} µs)", us(storm.p999), us(steady.p999)),
            r <= TARGET_STORM,
        );
    }
}
