//! Several processes on one log (shared mode) against one process with as
//! many threads (the default, exclusive mode), side by side.
//!
//! Each round writes `RECORDS` records of 120 bytes per writer with a 1 MiB
//! size limit: once with one process of `PROCS` threads, once with `PROCS`
//! processes of one thread each, sharing the log. The time runs from the
//! moment every writer is ready (appenders built) until the last one has
//! shut down. Afterwards each directory is verified and read back: every
//! writer's records must be there exactly once, in order. For the shared
//! log it also reports how far segments exceed the size limit (a process
//! sees the others' bytes and cuts only at its checks, every 50 ms by
//! default).
//!
//! Usage: `cargo run --release -p logcut-bench --bin shared [-- RECORDS] [--procs N] [--rounds R]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use logcut::{Appender, Mode};

const LEN: usize = 120;
const MAX_SIZE: u64 = 1 << 20;

fn record(writer: usize, seq: u64) -> Vec<u8> {
    let mut r = format!("w{writer:02} {seq:010} ").into_bytes();
    r.resize(LEN - 1, b'x');
    r.push(b'\n');
    r
}

fn build(dir: &Path, mode: Mode, shared: bool) -> Result<Appender, String> {
    Appender::builder()
        .dir(dir)
        .max_size(MAX_SIZE)
        .mode(mode)
        .shared(shared)
        .build()
        .map_err(|e| e.to_string())
}

fn write_all(a: &Appender, writer: usize, records: u64) -> Result<(), String> {
    for i in 0..records {
        (&*a)
            .write_all(&record(writer, i))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The child process of a shared round: builds its appender, says
/// "ready", waits for a line on its input, writes, shuts down.
fn child(args: &[String]) -> Result<(), String> {
    let dir = PathBuf::from(&args[0]);
    let writer: usize = args[1].parse().map_err(|_| "bad writer id")?;
    let records: u64 = args[2].parse().map_err(|_| "bad record count")?;
    let mode = if args[3] == "direct" {
        Mode::Direct
    } else {
        Mode::Buffered
    };
    let a = build(&dir, mode, true)?;
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut go = [0u8; 1];
    std::io::stdin()
        .read_exact(&mut go)
        .map_err(|e| e.to_string())?;
    write_all(&a, writer, records)?;
    a.shutdown().map_err(|e| e.to_string())
}

fn exclusive(dir: &Path, mode: Mode, procs: usize, records: u64) -> Result<Duration, String> {
    let a = build(dir, mode, false)?;
    let barrier = std::sync::Barrier::new(procs + 1);
    let t0 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..procs)
            .map(|w| {
                let (a, barrier) = (a.clone(), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    write_all(&a, w, records)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        for h in handles {
            h.join().map_err(|_| "a writer panicked".to_string())??;
        }
        Ok::<_, String>(t0)
    })?;
    a.shutdown().map_err(|e| e.to_string())?;
    Ok(t0.elapsed())
}

fn shared(dir: &Path, mode: Mode, procs: usize, records: u64) -> Result<Duration, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mode_arg = if mode == Mode::Direct {
        "direct"
    } else {
        "buffered"
    };
    let mut children = Vec::new();
    for w in 0..procs {
        let mut c = Command::new(&exe)
            .arg("--child")
            .arg(dir)
            .args([w.to_string(), records.to_string(), mode_arg.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(c.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!("writer {w} did not start"));
        }
        children.push(c);
    }
    let t0 = Instant::now();
    for c in &mut children {
        c.stdin
            .take()
            .ok_or("no stdin")?
            .write_all(b"g")
            .map_err(|e| e.to_string())?;
    }
    for (w, c) in children.iter_mut().enumerate() {
        let st = c.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("writer {w}: {st}"));
        }
    }
    Ok(t0.elapsed())
}

/// Verifies the directory and reads every record back. Returns the sizes
/// of the sealed segments.
fn check(dir: &Path, procs: usize, records: u64) -> Result<Vec<u64>, String> {
    let report = logcut::verify(dir).map_err(|e| e.to_string())?;
    if !report.is_ok() {
        return Err(format!("verify: {report}"));
    }
    let data = logcut_format::read_all(dir, "app").map_err(|e| e.to_string())?;
    let mut next: HashMap<usize, u64> = HashMap::new();
    for rec in data.chunks(LEN) {
        let text = std::str::from_utf8(rec).map_err(|_| "not text")?;
        let w: usize = text[1..3].parse().map_err(|_| format!("torn: {text:?}"))?;
        let seq: u64 = text[4..14].parse().map_err(|_| format!("torn: {text:?}"))?;
        if rec != record(w, seq) {
            return Err(format!("altered: {text:?}"));
        }
        let want = next.entry(w).or_insert(0);
        if seq != *want {
            return Err(format!("writer {w}: id {seq} where {want} was due"));
        }
        *want += 1;
    }
    for w in 0..procs {
        if next.get(&w).copied() != Some(records) {
            return Err(format!("writer {w}: {:?} of {records}", next.get(&w)));
        }
    }
    let m = logcut_format::manifest::Manifest::read(&dir.join("app.manifest"))
        .map_err(|e| e.to_string())?;
    Ok(m.seals().map(|s| s.bytes).collect())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return match child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut records = 250_000u64;
    let mut procs = 4usize;
    let mut rounds = 3usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Option<u64> {
            it.next().and_then(|v| v.parse().ok()).or_else(|| {
                eprintln!("{what} needs a number");
                None
            })
        };
        match a.as_str() {
            "--procs" => match num("--procs") {
                Some(n) => procs = n as usize,
                None => return ExitCode::from(2),
            },
            "--rounds" => match num("--rounds") {
                Some(n) => rounds = n as usize,
                None => return ExitCode::from(2),
            },
            n => match n.parse() {
                Ok(n) => records = n,
                Err(_) => {
                    eprintln!("usage: shared [RECORDS] [--procs N] [--rounds R]");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let base = std::env::temp_dir().join(format!("logcut-bench-shared-{}", std::process::id()));
    let total = records * procs as u64;
    println!(
        "{procs} writers x {records} records of {LEN} bytes, 1 MiB segments, {rounds} rounds (interleaved)"
    );
    let mut failed = false;
    for mode in [Mode::Direct, Mode::Buffered] {
        let mut ex = Vec::new();
        let mut sh = Vec::new();
        let mut sizes = Vec::new();
        for round in 0..rounds {
            for is_shared in [false, true] {
                let dir = base.join(format!("{mode:?}-{round}-{is_shared}"));
                let _ = std::fs::remove_dir_all(&dir);
                let res = if is_shared {
                    shared(&dir, mode, procs, records)
                } else {
                    exclusive(&dir, mode, procs, records)
                }
                .and_then(|d| check(&dir, procs, records).map(|s| (d, s)));
                match res {
                    Ok((d, s)) => {
                        if is_shared {
                            sh.push(d);
                            sizes.extend(s);
                        } else {
                            ex.push(d);
                        }
                    }
                    Err(e) => {
                        eprintln!("{mode:?} round {round} shared={is_shared}: {e}");
                        failed = true;
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let rate = |d: &[Duration]| {
            let mut v: Vec<f64> = d
                .iter()
                .map(|d| total as f64 / d.as_secs_f64() / 1e6)
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let (e, s) = (rate(&ex), rate(&sh));
        sizes.sort_unstable();
        let mib = |b: u64| b as f64 / MAX_SIZE as f64;
        println!(
            "{mode:?}: exclusive ({procs} threads) {e:.2} M rec/s; shared ({procs} processes) {s:.2} M rec/s = {:.2}x; shared segments: {} (median {:.2}, max {:.2} x the 1 MiB limit)",
            if e > 0.0 { s / e } else { 0.0 },
            sizes.len(),
            sizes.get(sizes.len() / 2).copied().map_or(0.0, mib),
            sizes.last().copied().map_or(0.0, mib),
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
