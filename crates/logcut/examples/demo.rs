//! A busy service in miniature: several threads log through one appender
//! with a small size limit, one of them calls `rotate()` now and then,
//! and at the end `verify` checks the directory and every record is read
//! back and counted.
//!
//! ```text
//! cargo run --release -p logcut --example demo -- [DIR] [--records N] [--mode direct|buffered]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{collections::HashMap, path::PathBuf, time::Instant};

const THREADS: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir = PathBuf::from("logcut-demo");
    let mut total: u64 = 1_000_000;
    let mut mode = logcut::Mode::Buffered;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => total = args.next().ok_or("--records needs a number")?.parse()?,
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("direct") => logcut::Mode::Direct,
                    Some("buffered") => logcut::Mode::Buffered,
                    _ => return Err("--mode takes direct or buffered".into()),
                }
            }
            "-h" | "--help" => {
                println!("usage: demo [DIR] [--records N] [--mode direct|buffered]");
                return Ok(());
            }
            other => dir = PathBuf::from(other),
        }
    }
    if dir.exists() {
        // Start from an empty directory, so the counts below are this run's.
        std::fs::remove_dir_all(&dir)?;
    }
    let (err_tx, err_rx) = std::sync::mpsc::channel::<logcut::Error>();
    let appender = logcut::Appender::builder()
        .dir(&dir)
        .name("demo")
        .max_size(1 << 20)
        .mode(mode)
        .error_handler(err_tx)
        .build()?;
    println!(
        "logging {total} records from {THREADS} threads to {} ({mode:?} mode, 1 MiB segments)",
        dir.display()
    );
    let per_thread = total / THREADS as u64;
    let start = Instant::now();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let a = appender.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    if t == 0 && i % 100_000 == 99_999 {
                        // An operator's manual cut, now and then.
                        a.rotate().expect("rotate");
                    }
                    let line = format!(
                        "thread={t} seq={i:010} level=INFO msg=\"request handled\" took_us={}\n",
                        i % 997
                    );
                    a.write_record(line.as_bytes()).expect("write");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().map_err(|_| "a writer panicked")?;
    }
    appender.shutdown()?;
    let elapsed = start.elapsed();
    let stats = appender.stats();
    for e in err_rx.try_iter() {
        eprintln!("reported: {e}");
    }

    let report = logcut::verify(&dir)?;
    print!("{report}");
    println!();
    // Read every record back and count each (thread, seq) pair.
    let data = logcut_format::read_all(&dir, "demo")?;
    let mut seen: HashMap<(u32, u64), u32> = HashMap::new();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line)?;
        let t: u32 = text
            .split("thread=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .ok_or("torn record")?
            .parse()?;
        let i: u64 = text
            .split("seq=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .ok_or("torn record")?
            .parse()?;
        *seen.entry((t, i)).or_insert(0) += 1;
    }
    let written = per_thread * THREADS as u64;
    let found = seen.len() as u64;
    let duplicated: u64 = seen.values().map(|c| u64::from(*c) - 1).sum();
    let lost = written
        - (0..THREADS as u32)
            .map(|t| {
                (0..per_thread)
                    .filter(|i| seen.contains_key(&(t, *i)))
                    .count() as u64
            })
            .sum::<u64>();
    println!("records written:    {written}");
    println!("records found:      {found}");
    println!("lost:               {lost} (stats: {})", stats.records_lost);
    println!("duplicated:         {duplicated}");
    println!(
        "segments sealed:    {}",
        report.logs.first().map_or(0, |l| l.segments)
    );
    println!(
        "throughput:         {:.0} records/s ({:.1} MB/s)",
        written as f64 / elapsed.as_secs_f64(),
        stats.bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    if !report.is_ok() || lost > 0 || duplicated > 0 || found != written {
        eprintln!("FAILED: the log is not complete");
        std::process::exit(1);
    }
    println!("ok: every record exactly once, verify passed");
    Ok(())
}
