//! `--compression`: codec throughput on realistic log text, and writer
//! throughput with background compression on and off in the same run.

use std::{
    fs,
    io::Read,
    path::Path,
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use logcut::{Appender, Compression, Mode};
use logcut_format::codec::Codec;

use crate::{TempRoot, median};

/// The target: writers keep at least this share of their throughput with
/// one worker compressing.
const TARGET_KEEP: f64 = 0.90;

/// Log text like a service's `tracing` output: timestamps, levels, varied
/// paths, ids and durations. Deterministic (a small LCG), `n` records of
/// varying length, each ending in a newline.
pub(crate) fn log_text(n: usize) -> (Vec<u8>, Vec<usize>) {
    const PATHS: [&str; 6] = [
        "/api/orders",
        "/api/orders/{id}/items",
        "/api/users/{id}",
        "/health",
        "/api/search?q=shoes&page=2",
        "/static/app.js",
    ];
    const MSGS: [&str; 4] = [
        "request handled",
        "cache miss, loading from database",
        "slow query",
        "upstream responded",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut buf = Vec::with_capacity(n * 140);
    let mut ends = Vec::with_capacity(n);
    let mut ms: u64 = 1_795_514_400_000;
    for i in 0..n {
        let r = next();
        ms += r % 3;
        let level = match r % 50 {
            0 => "ERROR",
            1..=3 => "WARN",
            4..=9 => "DEBUG",
            _ => " INFO",
        };
        let line = format!(
            "2026-11-24T10:{:02}:{:02}.{:03}Z {level} service: {} worker={} seq={i} path={} status={} took_us={} user=u{}\n",
            (ms / 60_000) % 60,
            (ms / 1000) % 60,
            ms % 1000,
            MSGS[(r >> 8) as usize % MSGS.len()],
            (r >> 12) % 8,
            PATHS[(r >> 16) as usize % PATHS.len()]
                .replace("{id}", &((r >> 20) % 100_000).to_string()),
            [200, 200, 200, 201, 204, 304, 404, 500][(r >> 40) as usize % 8],
            (r >> 24) % 20_000,
            (r >> 44) % 50_000,
        );
        buf.extend_from_slice(line.as_bytes());
        ends.push(buf.len());
    }
    (buf, ends)
}

/// Compresses and decompresses `text` in memory; prints MB/s and ratio.
fn codecs(text: &[u8], rounds: usize) -> Result<(), String> {
    println!();
    println!(
        "== codecs: {:.1} MB of log text, in memory, one thread, median of {rounds} ==",
        text.len() as f64 / 1e6
    );
    println!(
        "{:<12} {:>14} {:>16} {:>8}",
        "codec", "compress MB/s", "decompress MB/s", "ratio"
    );
    for (codec, level) in [(Codec::Gzip, 6), (Codec::Zstd, 3), (Codec::Zstd, 1)] {
        let mut c_rates = Vec::new();
        let mut d_rates = Vec::new();
        let mut packed_len = 0;
        for _ in 0..rounds {
            let mut packed = Vec::with_capacity(text.len() / 4);
            let t0 = Instant::now();
            codec
                .encode(level, text, &mut packed)
                .map_err(|e| format!("{codec} encode: {e}"))?;
            c_rates.push(text.len() as f64 / 1e6 / t0.elapsed().as_secs_f64());
            let mut back = Vec::with_capacity(text.len());
            let t0 = Instant::now();
            codec
                .decoder(&packed[..])
                .and_then(|mut d| d.read_to_end(&mut back))
                .map_err(|e| format!("{codec} decode: {e}"))?;
            d_rates.push(text.len() as f64 / 1e6 / t0.elapsed().as_secs_f64());
            if back != text {
                return Err(format!("{codec}: the round trip altered the text"));
            }
            packed_len = packed.len();
        }
        println!(
            "{:<12} {:>14.0} {:>16.0} {:>7.1}x",
            format!("{codec} {level}"),
            median(c_rates),
            median(d_rates),
            text.len() as f64 / packed_len as f64
        );
    }
    Ok(())
}

struct WriterRun {
    rate: f64,
    /// Segments still waiting for compression when the writers finished.
    backlog_at_end: u64,
    compress_time: Duration,
    segments: u64,
    drain: Duration,
}

/// One writer configuration: `threads` writers, `mode`, 1 MiB segments,
/// `compression`; timed from the barrier to `flush_records`. Then shuts
/// down (compressing the backlog, timed as `drain`) and verifies.
fn writers(
    dir: &Path,
    text: &[u8],
    ends: &[usize],
    mode: Mode,
    threads: usize,
    compression: Compression,
) -> Result<WriterRun, String> {
    let app = Appender::builder()
        .dir(dir)
        .max_size(1 << 20)
        .mode(mode)
        .compress(compression)
        .build()
        .map_err(|e| format!("build appender: {e}"))?;
    let barrier = Barrier::new(threads + 1);
    let per = ends.len() / threads;
    let elapsed = thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (app, barrier) = (app.clone(), &barrier);
                s.spawn(move || -> Result<(), String> {
                    barrier.wait();
                    let lo = t * per;
                    let hi = if t + 1 == threads {
                        ends.len()
                    } else {
                        lo + per
                    };
                    for i in lo..hi {
                        let start = if i == 0 { 0 } else { ends[i - 1] };
                        app.write_record(&text[start..ends[i]])
                            .map_err(|e| format!("write: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        for h in hs {
            h.join().map_err(|_| "a writer panicked".to_string())??;
        }
        app.flush_records().map_err(|e| format!("flush: {e}"))?;
        Ok::<_, String>(t0.elapsed())
    })?;
    let backlog_at_end = app.stats().compress_backlog;
    let t0 = Instant::now();
    app.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    let drain = t0.elapsed();
    let stats = app.stats();
    let report = logcut::verify(dir).map_err(|e| format!("verify: {e}"))?;
    if !report.is_ok() || report.records() != ends.len() as u64 {
        return Err(format!("verification failed:\n{report}"));
    }
    Ok(WriterRun {
        rate: ends.len() as f64 / elapsed.as_secs_f64(),
        backlog_at_end,
        compress_time: stats.compress_time,
        segments: stats.rotations,
        drain,
    })
}

/// Runs the compression benchmark.
pub(crate) fn run(records: u64, rounds: usize, root: &mut TempRoot) -> Result<(), String> {
    let n = usize::try_from(records).unwrap_or(usize::MAX);
    let (text, ends) = log_text(n);
    println!(
        "logcut-bench --compression: {n} log lines ({:.1} MB, {:.0} bytes per line on average), {rounds} round(s)",
        text.len() as f64 / 1e6,
        text.len() as f64 / n as f64
    );
    codecs(&text, rounds)?;

    let compressions = [
        ("off", Compression::None),
        ("gzip 6", Compression::gzip()),
        ("zstd 3", Compression::zstd()),
    ];
    let configs: Vec<(Mode, usize)> =
        vec![(Mode::Direct, 1), (Mode::Buffered, 1), (Mode::Direct, 2)];
    // results[config][compression] = runs
    let mut results: Vec<Vec<Vec<WriterRun>>> = configs
        .iter()
        .map(|_| compressions.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        eprint!("round {}/{rounds}:", round + 1);
        for (ci, (mode, threads)) in configs.iter().enumerate() {
            let mut order: Vec<usize> = (0..compressions.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for k in order {
                let dir = root.next_dir();
                let r = writers(&dir, &text, &ends, *mode, *threads, compressions[k].1);
                let _ = fs::remove_dir_all(&dir);
                results[ci][k].push(r?);
                eprint!(".");
            }
        }
        eprintln!();
    }
    println!();
    println!(
        "== writers, 1 MiB segments, records/s until flush_records returns (median of {rounds}); one compression worker =="
    );
    println!(
        "{:<18} {:<8} {:>12} {:>8} {:>10} {:>12} {:>10} {:>9}",
        "config",
        "compress",
        "records/s",
        "vs off",
        "backlog*",
        "compress s",
        "drain s",
        "segments"
    );
    let mut verdicts = Vec::new();
    for (ci, (mode, threads)) in configs.iter().enumerate() {
        for (k, (label, _)) in compressions.iter().enumerate() {
            let runs = &results[ci][k];
            let rate = median(runs.iter().map(|r| r.rate).collect());
            // Per round: rate / the same round's rate without compression.
            let ratio = median(
                runs.iter()
                    .zip(&results[ci][0])
                    .map(|(r, o)| r.rate / o.rate)
                    .collect(),
            );
            let last = runs.last().ok_or("no run")?;
            println!(
                "{:<18} {:<8} {:>12.0} {:>8} {:>10} {:>12.2} {:>10.2} {:>9}",
                format!("{mode:?} {threads} thr").to_lowercase(),
                label,
                rate,
                if k == 0 {
                    "base".to_string()
                } else {
                    format!("{:.1}%", ratio * 100.0)
                },
                last.backlog_at_end,
                last.compress_time.as_secs_f64(),
                last.drain.as_secs_f64(),
                last.segments
            );
            if k > 0 {
                verdicts.push((
                    format!("{mode:?} {threads} thr, {label}").to_lowercase(),
                    ratio,
                ));
            }
        }
    }
    println!(
        "* backlog: segments waiting for compression when the writers had finished (last round)"
    );
    println!();
    println!("== targets ==");
    for (what, ratio) in verdicts {
        println!(
            "{:<58} {:<34} {}",
            format!(
                "writers >= {:.0}% with compression: {what}",
                TARGET_KEEP * 100.0
            ),
            format!("{:.1}%", ratio * 100.0),
            if ratio >= TARGET_KEEP { "PASS" } else { "MISS" }
        );
    }
    Ok(())
}
