//! `logcut demo`: a busy service in miniature, on a local directory.
//!
//! Several threads log through `tracing` into one appender with small size
//! and time limits; one of them also cuts by hand now and then, and an
//! operator's script touches the trigger file in storms of 200 touches
//! (merged: each storm makes at most one cut). A status
//! line shows progress (on a terminal). Sealed segments are compressed
//! with zstd in the background, and only the newest 20 are kept. At the end
//! the directory is verified and every record is read back and counted:
//! each one is found exactly once, or was in a segment the retention limit
//! deleted (the oldest records of each thread, as the manifest records).

use std::{
    collections::HashMap,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::UsageError;

/// Options of `logcut demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to write the demo's logs: a new or empty directory, or one an
    /// earlier run made (its logs are removed first; any other directory
    /// is refused).
    #[arg(long, default_value = "logcut-demo")]
    dir: PathBuf,
    /// How long the service runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// How many threads log.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Records per second, all threads together (0: as fast as possible).
    #[arg(long, default_value_t = 200_000)]
    rate: u64,
}

/// Sealed segments the demo keeps.
const KEEP: usize = 20;

/// The file that marks a directory as the demo's: only then does a later
/// run remove the demo's files from it.
const MARKER: &str = ".logcut-demo";

/// The log's name; every file the demo makes, but the marker, starts with
/// `service.`.
const LOG: &str = "service";

/// Makes `dir` ready for a run: a new or empty directory is used (and
/// marked as the demo's); in one an earlier run made (it has the marker),
/// the files of the demo's log are removed, so that the counts are this
/// run's. Any other directory is refused, and nothing in it is touched.
fn prepare_dir(dir: &Path) -> Result<()> {
    let entries: Vec<std::ffi::OsString> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot read {}", dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot use {}", dir.display())),
    };
    let marked = std::fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file());
    if !entries.is_empty() && !marked {
        return Err(UsageError(format!(
            "{} is not empty and is not a directory logcut demo made; nothing was changed: give a new or empty directory with --dir",
            dir.display()
        ))
        .into());
    }
    for f in &entries {
        let path = dir.join(f);
        let ours = f
            .to_str()
            .is_some_and(|n| n.starts_with(&format!("{LOG}.")));
        // Only regular files: a symlink is removed, never followed; a
        // directory is left alone.
        if ours && std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let marker = dir.join(MARKER);
    std::fs::write(
        &marker,
        "made by `logcut demo`; a later run removes the service.* files here\n",
    )
    .with_context(|| format!("cannot create {}", marker.display()))
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode> {
    prepare_dir(&args.dir)?;
    // The trigger file exists before the appender starts (its creation
    // would count as a trigger).
    let trigger = args.dir.join(format!("{LOG}.trigger"));
    std::fs::write(&trigger, b"")
        .with_context(|| format!("cannot create {}", trigger.display()))?;
    let appender = logcut::Appender::builder()
        .dir(&args.dir)
        .trigger_file(&trigger)
        .name(LOG)
        .max_size(1 << 20)
        .interval(logcut::Interval::seconds(1))
        .mode(logcut::Mode::Buffered)
        .compress(logcut::Compression::zstd())
        .keep(KEEP)
        .error_handler(|e: logcut::Error| eprintln!("\nlogcut: {e}"))
        .build()
        .with_context(|| format!("cannot log to {}", args.dir.display()))?;
    let subscriber = tracing_subscriber::fmt()
        .with_writer(appender.clone())
        .with_ansi(false)
        .with_target(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    eprintln!(
        "logcut demo: {} threads log through tracing into {} for {} s, {} records/s (1 MiB or 1 s segments, Buffered mode, zstd, keep {KEEP})",
        args.threads,
        args.dir.display(),
        args.seconds,
        if args.rate == 0 {
            "as many".to_string()
        } else {
            args.rate.to_string()
        }
    );
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // Each thread's share of the rate, and how many records it writes
    // between two looks at the clock: about a hundredth of a second's
    // worth, so that it keeps its pace and stops on time at any rate.
    let per_thread_rate = args.rate as f64 / args.threads.max(1) as f64;
    let pace_every = ((per_thread_rate / 100.0) as u64).clamp(1, 1000);
    let workers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (dispatch, stop, appender) =
                (dispatch.clone(), Arc::clone(&stop), appender.clone());
            std::thread::spawn(move || {
                let mut n: u64 = 0;
                tracing::dispatcher::with_default(&dispatch, || {
                    while !stop.load(Ordering::Relaxed) {
                        if per_thread_rate > 0.0 && n % pace_every == 0 {
                            // Pace the service: wait until this thread is
                            // due (woken early when the run ends).
                            let due = start + Duration::from_secs_f64(n as f64 / per_thread_rate);
                            let now = Instant::now();
                            if due > now {
                                std::thread::park_timeout(due - now);
                                continue;
                            }
                        }
                        tracing::info!(
                            worker = t,
                            seq = n,
                            path = "/api/orders",
                            status = 200,
                            took_us = n % 997,
                            "request handled"
                        );
                        n += 1;
                        if t == 0 && n % 200_000 == 0 {
                            // An operator's manual cut, now and then.
                            let _ = appender.rotate();
                        }
                    }
                });
                n
            })
        })
        .collect();
    // Trigger storms: 200 touches in a row, every 700 ms.
    let storms = {
        let (stop, trigger) = (Arc::clone(&stop), trigger.clone());
        std::thread::spawn(move || {
            let mut touches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(700));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for _ in 0..200 {
                    let touched = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&trigger)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    if touched.is_ok() {
                        touches += 1;
                    }
                }
            }
            touches
        })
    };
    let tty = std::io::stderr().is_terminal();
    let deadline = start + Duration::from_secs(args.seconds);
    while Instant::now() < deadline {
        // The status line is redrawn a few times a second.
        std::thread::park_timeout(
            Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now())),
        );
        if tty {
            let s = appender.stats();
            let secs = start.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r  {:>10} records  {:>9.0} records/s  {:>5} rotations  {:>5} triggers  queue {:>7}  compress backlog {:>3}  deleted {:>4}   ",
                s.records,
                s.records as f64 / secs,
                s.rotations,
                s.triggers,
                s.queue_depth,
                s.compress_backlog,
                s.segments_deleted
            );
            let _ = std::io::stderr().flush();
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Waiting threads stop now, not when they are next due.
    for w in &workers {
        w.thread().unpark();
    }
    storms.thread().unpark();
    let mut per_thread = Vec::new();
    for w in workers {
        per_thread.push(
            w.join()
                .map_err(|_| anyhow::anyhow!("a logging thread panicked"))?,
        );
    }
    // The writing phase: from the start until the last record was handed
    // to the appender.
    let writing = start.elapsed();
    drop(dispatch);
    let touches = storms
        .join()
        .map_err(|_| anyhow::anyhow!("the trigger thread panicked"))?;
    let stats = appender.stats();
    let shutdown_began = Instant::now();
    appender.shutdown().context("cannot finish the log")?;
    let shutdown = shutdown_began.elapsed();
    if tty {
        eprintln!();
    }
    let checking_began = Instant::now();

    let report = logcut::verify(&args.dir)?;
    // Read every record back and count each (worker, seq) pair.
    let data = logcut_format::read_all(&args.dir, LOG)?;
    let mut seen: HashMap<(usize, u64), u32> = HashMap::new();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let text = String::from_utf8_lossy(line);
        let field = |k: &str| {
            text.split(k)
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (field("worker="), field("seq=")) {
            (Some(w), Some(n)) => *seen.entry((w as usize, n)).or_insert(0) += 1,
            _ => anyhow::bail!("a record was torn: {text:?}"),
        }
    }
    let written: u64 = per_thread.iter().sum();
    let found = seen.len() as u64;
    let duplicated: u64 = seen.values().map(|c| u64::from(*c) - 1).sum();
    // Retention deletes the oldest segments, so each thread's records that
    // are gone by policy are the first ones it wrote: below its oldest
    // record found. Anything missing above that is lost.
    let mut deleted = 0;
    let mut lost = 0;
    for (t, n) in per_thread.iter().enumerate() {
        let oldest = (0..*n).find(|i| seen.contains_key(&(t, *i))).unwrap_or(*n);
        deleted += oldest;
        lost += (oldest..*n)
            .filter(|i| !seen.contains_key(&(t, *i)))
            .count() as u64;
    }
    let deleted_by_policy = report.deleted();
    let checking = checking_began.elapsed();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    writeln!(out)?;
    writeln!(out, "records written:  {written}")?;
    writeln!(out, "records found:    {found}")?;
    writeln!(
        out,
        "deleted by policy: {deleted_by_policy} (keep {KEEP} segments; the oldest {deleted} records)"
    )?;
    writeln!(out, "lost:             {lost}")?;
    writeln!(out, "duplicated:       {duplicated}")?;
    writeln!(
        out,
        "segments:         {}",
        report.logs.first().map_or(0, |l| l.segments)
    )?;
    writeln!(
        out,
        "trigger storms:   {touches} touches, {} trigger events seen, {} cuts in all (sizes, seconds, manual, triggers)",
        stats.triggers, stats.rotations
    )?;
    writeln!(
        out,
        "throughput:       {:.0} records/s while writing ({written} records in {:.2} s; asked for {})",
        written as f64 / writing.as_secs_f64().max(1e-9),
        writing.as_secs_f64(),
        if args.rate == 0 {
            "as many as possible".to_string()
        } else {
            format!("{}/s", args.rate)
        }
    )?;
    writeln!(
        out,
        "then:             {:.2} s to shut down (write, seal, compress what was left), {:.2} s to verify and read every record back; {:.2} s in all",
        shutdown.as_secs_f64(),
        checking.as_secs_f64(),
        start.elapsed().as_secs_f64()
    )?;
    if report.is_ok()
        && lost == 0
        && duplicated == 0
        && deleted == deleted_by_policy
        && found + deleted_by_policy == written
    {
        writeln!(
            out,
            "ok: every record exactly once (found + deleted by policy = written), verify passed"
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "FAILED: the log is not complete")?;
        Ok(ExitCode::FAILURE)
    }
}
