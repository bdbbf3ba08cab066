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
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// Options of `logcut demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to write the demo's logs (emptied first).
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

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode> {
    if args.dir.exists() {
        // Start empty, so that the counts below are this run's.
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("cannot empty {}", args.dir.display()))?;
    }
    // The trigger file exists before the appender starts (its creation
    // would count as a trigger).
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let trigger = args.dir.join("service.trigger");
    std::fs::write(&trigger, b"")
        .with_context(|| format!("cannot create {}", trigger.display()))?;
    let appender = logcut::Appender::builder()
        .dir(&args.dir)
        .trigger_file(&trigger)
        .name("service")
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
    let per_thread_rate = args.rate / args.threads.max(1) as u64;
    let workers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (dispatch, stop, appender) =
                (dispatch.clone(), Arc::clone(&stop), appender.clone());
            std::thread::spawn(move || {
                let mut n: u64 = 0;
                tracing::dispatcher::with_default(&dispatch, || {
                    while !stop.load(Ordering::Relaxed) {
                        if per_thread_rate > 0 && n % 1000 == 0 {
                            // Pace the service: wait until this thread is due.
                            let due =
                                start + Duration::from_secs_f64(n as f64 / per_thread_rate as f64);
                            let now = Instant::now();
                            if due > now {
                                std::thread::park_timeout(due - now);
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
    let mut per_thread = Vec::new();
    for w in workers {
        per_thread.push(
            w.join()
                .map_err(|_| anyhow::anyhow!("a logging thread panicked"))?,
        );
    }
    drop(dispatch);
    let touches = storms
        .join()
        .map_err(|_| anyhow::anyhow!("the trigger thread panicked"))?;
    let stats = appender.stats();
    appender.shutdown().context("cannot finish the log")?;
    let elapsed = start.elapsed();
    if tty {
        eprintln!();
    }

    let report = logcut::verify(&args.dir)?;
    // Read every record back and count each (worker, seq) pair.
    let data = logcut_format::read_all(&args.dir, "service")?;
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
        "throughput:       {:.0} records/s over {:.1} s",
        written as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
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
