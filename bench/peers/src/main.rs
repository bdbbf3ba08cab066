//! logcut side by side with the Rust crates users have: the same workload
//! through each, each run in a child process of its own (global loggers
//! cannot collide), interleaved, in one run of this program; then every
//! file read back and every record counted.
//!
//! `cargo run --release -- [--threads 1,2,4] [--records 200000] [--runs 3]`
//! prints a Markdown table per configuration (threads x rotation) and the
//! abrupt-exit round. See `bench/peers/README.md`.

use std::{
    collections::HashMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Barrier, Mutex},
    time::Instant,
};

mod peers;

/// The length of every record, newline included.
const LEN: usize = 120;

/// How long one child may run before it is killed.
const CHILD_TIMEOUT_SECS: u64 = 300;

/// A record's text without its newline: `@@<thread> <seq> xxx...`.
fn message(thread: usize, seq: u64) -> String {
    let mut s = format!("@@{thread} {seq:010} ");
    while s.len() < LEN - 1 {
        s.push('x');
    }
    s
}

/// What a child reports on its standard output.
#[derive(Clone, Debug, Default)]
struct Run {
    secs: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    rss_kib: u64,
}

/// What reading a run's files back found.
#[derive(Clone, Debug, Default)]
struct Check {
    files: usize,
    missing: u64,
    duplicated: u64,
    torn: u64,
    split: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2..]);
        return;
    }
    let opt = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let threads: Vec<usize> = opt("--threads", "1,2,4")
        .split(',')
        .map(|t| t.parse().expect("--threads"))
        .collect();
    let records: u64 = opt("--records", "200000").parse().expect("--records");
    let runs: usize = opt("--runs", "3").parse().expect("--runs");
    let only = opt("--only", "");
    let base = PathBuf::from(opt("--dir", "/tmp/logcut-peers"));
    let targets: Vec<&str> = peers::NAMES
        .iter()
        .copied()
        .filter(|t| only.is_empty() || only.split(',').any(|o| t.contains(o)))
        .collect();
    println!(
        "# logcut and its peers: {records} records of {LEN} bytes per run, {runs} runs interleaved (medians)\n"
    );
    let mut goals = Vec::new();
    for &segment in &[0u64, 1 << 20, 64 << 10] {
        for &t in &threads {
            let rows = table(&base, &targets, t, records, segment, runs, false);
            if segment > 0 {
                goals.push(summary(t, segment, &rows));
            }
        }
    }
    table(&base, &targets, 4, records, 1 << 20, runs, true);
    println!("## Targets\n");
    println!(
        "Peers that lost records in the run, or rotate by time only, do not count as the fastest. Ratios are logcut's rate over the fastest peer driven the same way.\n"
    );
    println!(
        "| configuration | raw, Fsync::Never / fastest raw peer (goal 1.5) | log backend / fastest macro peer (goal 1.5) | default policy / fastest raw peer (goal 1.0 at 1 MiB) | default policy / fdatasync limit (goal 0.8 at 64 KiB) | logcut p99.9 us (raw, Never) | lowest peer p99.9 us |"
    );
    println!("|---|---|---|---|---|---|---|");
    for g in goals {
        println!("{g}");
    }
    println!();
}

/// One row of a table: what the summary needs.
#[derive(Clone, Debug)]
struct Row {
    rate: f64,
    p999_us: f64,
    lossless: bool,
}

/// A rotating configuration's line in the targets table.
fn summary(threads: usize, segment: u64, rows: &HashMap<String, Row>) -> String {
    let fastest = |style: peers::Style| {
        rows.iter()
            .filter(|(t, r)| peers::style(t) == style && peers::rotating_peer(t) && r.lossless)
            .map(|(t, r)| (r.rate, t.clone()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let ratio = |ours: &str, theirs: Option<(f64, String)>| match (rows.get(ours), theirs) {
        (Some(o), Some((rate, name))) => format!("{:.2} ({name})", o.rate / rate),
        _ => "n/a".to_string(),
    };
    let limit = rows
        .get("fdatasync-limit")
        .map(|r| (r.rate, "fdatasync-limit".to_string()));
    let lowest = rows
        .iter()
        .filter(|(t, r)| peers::rotating_peer(t) && r.lossless)
        .map(|(t, r)| (r.p999_us, t.clone()))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    format!(
        "| {threads} thread(s), {} | {} | {} | {} | {} | {} | {} |",
        rotation(segment),
        ratio("logcut-raw-never", fastest(peers::Style::Raw)),
        ratio("logcut-log", fastest(peers::Style::Log)),
        ratio("logcut-raw-default", fastest(peers::Style::Raw)),
        ratio("logcut-raw-default", limit),
        rows.get("logcut-raw-never")
            .map_or("n/a".to_string(), |r| format!("{:.1}", r.p999_us)),
        lowest.map_or("n/a".to_string(), |(p, t)| format!("{p:.1} ({t})")),
    )
}

fn rotation(segment: u64) -> String {
    match segment {
        0 => "no rotation".to_string(),
        s if s >= 1 << 20 => format!("{} MiB segments", s >> 20),
        s => format!("{} KiB segments", s >> 10),
    }
}

/// Runs every target `runs` times, interleaved; prints their medians.
fn table(
    base: &Path,
    targets: &[&str],
    threads: usize,
    records: u64,
    segment: u64,
    runs: usize,
    abrupt: bool,
) -> HashMap<String, Row> {
    let mut rows = HashMap::new();
    let mut results: HashMap<&str, (Vec<Run>, Vec<Check>)> = HashMap::new();
    for _ in 0..runs {
        for &target in targets {
            let dir = base.join(target);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create run directory");
            let run = spawn(target, &dir, threads, records, segment, abrupt);
            let check = check(&dir, threads, records / threads as u64);
            let e = results.entry(target).or_default();
            e.0.extend(run);
            e.1.push(check);
            let _ = fs::remove_dir_all(&dir);
        }
    }
    let rotation = rotation(segment);
    let round = if abrupt {
        ", abrupt exit after the last write"
    } else {
        ""
    };
    println!("## {threads} thread(s), {rotation}{round}\n");
    println!(
        "| target | records/s | x plain file | p50 us | p99 us | p99.9 us | max us | peak RSS MiB | files | missing | duplicated | torn | split |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rate = |name: &str| {
        results
            .get(name)
            .map(|(r, _)| records as f64 / median(r.iter().map(|r| r.secs).collect()))
    };
    let baseline = rate("file").unwrap_or(f64::NAN);
    for &target in targets {
        let Some((r, c)) = results.get(target) else {
            continue;
        };
        if r.is_empty() {
            println!(
                "| {target} | failed (killed after {CHILD_TIMEOUT_SECS} s, or crashed) | | | | | | | | | | | |"
            );
            continue;
        }
        let per_sec = rate(target).unwrap_or(f64::NAN);
        let m = |f: fn(&Run) -> u64| median(r.iter().map(|x| f(x) as f64).collect());
        let last = c.last().cloned().unwrap_or_default();
        let worst = |f: fn(&Check) -> u64| c.iter().map(f).max().unwrap_or(0);
        let lossless = r.len() == runs
            && [
                worst(|c| c.missing),
                worst(|c| c.duplicated),
                worst(|c| c.torn),
                worst(|c| c.split),
            ] == [0; 4];
        rows.insert(
            target.to_string(),
            Row {
                rate: per_sec,
                p999_us: m(|x| x.p999) / 1000.0,
                lossless,
            },
        );
        println!(
            "| {target}{} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {} | {} | {} | {} | {} |",
            peers::note(target),
            per_sec,
            per_sec / baseline,
            m(|x| x.p50) / 1000.0,
            m(|x| x.p99) / 1000.0,
            m(|x| x.p999) / 1000.0,
            m(|x| x.max) / 1000.0,
            m(|x| x.rss_kib) / 1024.0,
            last.files,
            worst(|c| c.missing),
            worst(|c| c.duplicated),
            worst(|c| c.torn),
            worst(|c| c.split),
        );
    }
    println!();
    rows
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn spawn(
    target: &str,
    dir: &Path,
    threads: usize,
    records: u64,
    segment: u64,
    abrupt: bool,
) -> Option<Run> {
    // A child that hangs (a peer's bug) is killed and reported as failed,
    // so one target cannot stop the run.
    let out = Command::new("timeout")
        .args(["-s", "KILL", &CHILD_TIMEOUT_SECS.to_string()])
        .arg(std::env::current_exe().expect("current exe"))
        .args(["child", target, &dir.display().to_string()])
        .args([
            threads.to_string(),
            (records / threads as u64).to_string(),
            segment.to_string(),
            u8::from(abrupt).to_string(),
        ])
        .output()
        .expect("spawn child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("run "))?;
    let get = |k: &str| -> f64 {
        line.split(' ')
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Some(Run {
        secs: get("secs"),
        p50: get("p50") as u64,
        p99: get("p99") as u64,
        p999: get("p999") as u64,
        max: get("max") as u64,
        rss_kib: get("rss") as u64,
    })
}

/// Reads every file of a run back and counts the records by id.
fn check(dir: &Path, threads: usize, per_thread: u64) -> Check {
    let mut c = Check::default();
    let mut seen: HashMap<(usize, u64), u64> = HashMap::new();
    let mut files = Vec::new();
    collect(dir, &mut files);
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // logcut's own files are not records; its segments are read as
        // files like everyone's (a second name of the last one is skipped).
        if [".manifest", ".lock", ".cut", ".seal-key"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            continue;
        }
        let Ok(bytes) = fs::read(f) else { continue };
        if name == "app.log" && files.iter().any(|o| o != f && same_file(o, f)) {
            continue;
        }
        c.files += 1;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            c.split += 1;
        }
        for line in bytes.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match parse(line) {
                Some(id) => *seen.entry(id).or_default() += 1,
                None => c.torn += 1,
            }
        }
    }
    for t in 0..threads {
        for s in 0..per_thread {
            match seen.get(&(t, s)) {
                None => c.missing += 1,
                Some(n) => c.duplicated += n - 1,
            }
        }
    }
    c
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// The id of a whole record in a line (after whatever prefix the logger
/// wrote), or `None` if the line holds no whole record.
fn parse(line: &[u8]) -> Option<(usize, u64)> {
    let at = line.windows(2).position(|w| w == b"@@")?;
    let text = std::str::from_utf8(&line[at..]).ok()?;
    let rest = text.strip_prefix("@@")?;
    let (t, rest) = rest.split_once(' ')?;
    let (s, pad) = rest.split_once(' ')?;
    let (t, s): (usize, u64) = (t.parse().ok()?, s.parse().ok()?);
    (text.len() == LEN - 1 && pad.bytes().all(|b| b == b'x')).then_some((t, s))
}

/// One run in this (child) process: write, time each write, report.
fn child(args: &[String]) {
    let target = args[0].as_str();
    let dir = PathBuf::from(&args[1]);
    let threads: usize = args[2].parse().expect("threads");
    let per_thread: u64 = args[3].parse().expect("records");
    let segment: u64 = args[4].parse().expect("segment");
    let abrupt = args[5] == "1";
    let sink = peers::open(
        target,
        &dir,
        segment,
        threads as u64 * per_thread,
        LEN as u64 + 100,
    );
    let barrier = Arc::new(Barrier::new(threads + 1));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(
        threads * per_thread as usize,
    )));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (sink, barrier, lat) = (sink.clone(), barrier.clone(), lat.clone());
            std::thread::spawn(move || {
                let msgs: Vec<String> = (0..per_thread).map(|s| message(t, s)).collect();
                let mut mine = Vec::with_capacity(msgs.len());
                barrier.wait();
                for m in &msgs {
                    let t0 = Instant::now();
                    sink.write(m);
                    mine.push(t0.elapsed().as_nanos() as u64);
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    for h in handles {
        h.join().expect("writer thread");
    }
    let report = |secs: f64| {
        let mut l = std::mem::take(&mut *lat.lock().unwrap());
        l.sort_unstable();
        let q = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let line = format!(
            "run secs={secs:.6} p50={} p99={} p999={} max={} rss={}\n",
            q(0.5),
            q(0.99),
            q(0.999),
            l.last().copied().unwrap_or(0),
            peak_rss_kib()
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    };
    if abrupt {
        // The process ends right after its last write returned: what each
        // tool loses then is what a crash or a forgotten flush loses.
        report(t0.elapsed().as_secs_f64());
        std::process::exit(0);
    }
    sink.finish();
    report(t0.elapsed().as_secs_f64());
}

fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
