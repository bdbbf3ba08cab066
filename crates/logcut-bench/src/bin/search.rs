//! The search target: 1 GiB (uncompressed) of JSON lines of about 240
//! bytes in 4 MiB zstd-compressed segments with a `trace_id` index, 10,000
//! distinct trace ids per 150 MB, each trace's lines close together (8
//! traces interleaved at a time, about 62 lines each). Times
//! `logcut grep DIR --field trace_id=ID` for one trace against
//! `zstdcat DIR/*.zst | grep -F ID`, interleaved over 5 rounds (medians),
//! and the same grep with the index moved away; checks that all find the
//! same lines; prints the index's share of the compressed size.
//!
//! Usage: `cargo build --release -p logcut-cli && cargo run --release -p
//! logcut-bench --bin search [-- GIB]` (the `logcut` binary is taken from
//! beside this one). Needs `zstdcat` and `grep`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

/// Lines per block of interleaved traces, and traces per block.
const BLOCK: u64 = 500;
const TRACES_PER_BLOCK: u64 = 8;

/// A trace id that looks like one: 32 hex digits from the trace number.
fn trace_id(t: u64) -> String {
    let mut h = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    h ^= h >> 29;
    format!("{h:016x}{:016x}", h.wrapping_mul(0xbf58_476d_1ce4_e5b9))
}

fn trace_of(i: u64) -> u64 {
    (i / BLOCK) * TRACES_PER_BLOCK + i % TRACES_PER_BLOCK
}

fn line(i: u64, out: &mut Vec<u8>) {
    out.clear();
    let ms = 1_780_000_000_000 + i / 4;
    let ts = jiff::Timestamp::from_millisecond(ms as i64).expect("time");
    let _ = write!(
        out,
        "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"trace_id\":\"{}\",\"span_id\":\"{:016x}\",\"user_id\":{},\"status\":200,\"message\":\"GET /api/v1/items/{}",
        trace_id(trace_of(i)),
        i.wrapping_mul(0x2545_f491_4f6c_dd1d),
        i % 9973,
        i % 100_000
    );
    // Words picked by a hash of the line: text that compresses about as
    // a service's messages do, not a run of one byte.
    const WORDS: [&str; 16] = [
        "cache", "miss", "hit", "db", "query", "took", "ms", "user", "ok", "retry", "shard",
        "lease", "queue", "flush", "batch", "token",
    ];
    let mut h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    while out.len() < 237 {
        h = h.rotate_left(5).wrapping_add(0x2545_f491);
        let _ = write!(out, " {} {}", WORDS[(h % 16) as usize], h % 1000);
    }
    out.truncate(237);
    out.extend_from_slice(b"\"}\n");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(cmd: &mut Command) -> (f64, Vec<u8>) {
    let t0 = Instant::now();
    let out = cmd.output().expect("run");
    (t0.elapsed().as_secs_f64(), out.stdout)
}

fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

fn main() {
    let gib: f64 = std::env::args()
        .nth(1)
        .map_or(1.0, |s| s.parse().expect("GIB: a number"));
    let logcut = std::env::current_exe()
        .expect("exe")
        .with_file_name("logcut");
    assert!(
        logcut.exists(),
        "build it first: cargo build --release -p logcut-cli"
    );
    let dir = std::env::temp_dir().join(format!("logcut-search-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = (gib * f64::from(1u32 << 30)) as u64;
    let lines = total / 240;
    let t0 = Instant::now();
    let a = logcut::Appender::builder()
        .dir(&dir)
        .mode(logcut::Mode::Buffered)
        .fsync(logcut::Fsync::Never)
        .max_size(4 << 20)
        .compress(logcut::Compression::zstd())
        .compress_threads(2)
        .index_fields(["trace_id"])
        .shutdown_timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("appender");
    let mut buf = Vec::with_capacity(256);
    for i in 0..lines {
        line(i, &mut buf);
        a.write_record(&buf).expect("write");
    }
    a.shutdown().expect("shutdown");
    let wrote = t0.elapsed().as_secs_f64();
    let zst = files_ending(&dir, ".zst");
    let idx = files_ending(&dir, ".idx");
    let size = |v: &[PathBuf]| -> u64 {
        v.iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum()
    };
    let (zbytes, ibytes) = (size(&zst), size(&idx));
    println!(
        "wrote {lines} lines ({:.2} GiB) in {wrote:.1} s: {} zstd segments, {:.1} MB compressed; {} indexes, {} KB ({:.3} % of the compressed size; target under 2 %)",
        (lines * 240) as f64 / f64::from(1u32 << 30),
        zst.len(),
        zbytes as f64 / 1e6,
        idx.len(),
        ibytes / 1000,
        100.0 * ibytes as f64 / zbytes as f64
    );
    // A trace in the middle: 62 or 63 lines.
    let target = trace_of(lines / 2) + 3;
    let id = trace_id(target);
    let want = (0..lines).filter(|i| trace_of(*i) == target).count();
    let field = format!("trace_id={id}");
    let shell = format!("zstdcat -q {}/*.zst | grep -F {id}", dir.display());
    let grep = || {
        let mut c = Command::new(&logcut);
        c.args(["grep", dir.to_str().expect("utf-8"), "--field", &field]);
        c
    };
    let (mut ours, mut plain, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let (t, out) = timed(&mut grep());
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            want,
            "logcut grep"
        );
        ours.push(t);
        let (t, out) = timed(Command::new("sh").args(["-c", &shell]));
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            want,
            "zstdcat | grep"
        );
        theirs.push(t);
        for p in &idx {
            std::fs::rename(p, p.with_extension("off")).expect("move index");
        }
        let (t, out) = timed(&mut grep());
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            want,
            "grep, no index"
        );
        plain.push(t);
        for p in &idx {
            std::fs::rename(p.with_extension("off"), p).expect("index back");
        }
    }
    let (o, p, t) = (median(ours), median(plain), median(theirs));
    println!("| search for one trace ({want} lines) | median of 5 | target |");
    println!("|---|---|---|");
    println!("| logcut grep, indexed | {:.3} s | under 1 s |", o);
    println!("| logcut grep, index moved away | {:.3} s | |", p);
    println!("| zstdcat \\| grep -F | {:.3} s | |", t);
    println!("| zstdcat / logcut grep | {:.1}x | at least 20x |", t / o);
    if std::env::var_os("LOGCUT_BENCH_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
