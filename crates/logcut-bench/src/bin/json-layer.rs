//! `JsonLayer` against `tracing_subscriber::fmt().json()`: the same events
//! (a message, three fields, inside two spans with a trace id and a
//! business key), each layer writing to its own logcut appender
//! (Buffered, `Fsync::Never`, 64 MiB segments), interleaved over rounds.
//! Reports events per second and heap allocations per event (a counting
//! allocator), medians, and the ratios.
//!
//! Usage: `cargo run --release -p logcut-bench --bin json-layer [-- EVENTS [ROUNDS]]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use tracing_subscriber::layer::SubscriberExt;

/// Counts allocations (the bench's own are outside the timed loops).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a counter read between runs.
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Relaxed: as in `alloc`.
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `events` events under `subscriber`; returns (events/s, allocations
/// per event).
fn run(events: u64, subscriber: impl tracing::Subscriber + Send + Sync) -> (f64, f64) {
    tracing::subscriber::with_default(subscriber, || {
        let req = tracing::info_span!(
            "request",
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
            order_id = 42_u64
        );
        let _r = req.enter();
        let step = tracing::info_span!("charge", user_id = 7_u64);
        let _s = step.enter();
        // Relaxed: read on this thread only.
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        for i in 0..events {
            tracing::info!(amount = 9.5, attempt = i, ok = true, "payment accepted");
        }
        let secs = t.elapsed().as_secs_f64();
        let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
        (events as f64 / secs, allocs as f64 / events as f64)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(200_000);
    let rounds = args.get(1).copied().unwrap_or(5) as usize;
    let root = std::env::temp_dir().join(format!("logcut-json-layer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let app = |name: &str| {
        logcut::Appender::builder()
            .dir(root.join(name))
            .mode(logcut::Mode::Buffered)
            .fsync(logcut::Fsync::Never)
            .max_size(64 << 20)
            .build()
            .expect("appender")
    };
    let (ours_log, theirs_log) = (app("ours"), app("theirs"));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let layer = logcut::JsonLayer::new(ours_log.clone()).lift(["order_id", "user_id"]);
        ours.push(run(events, tracing_subscriber::registry().with(layer)));
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(theirs_log.clone());
        theirs.push(run(events, tracing_subscriber::registry().with(fmt)));
    }
    ours_log.shutdown().expect("shutdown");
    theirs_log.shutdown().expect("shutdown");
    let sample = |name: &str| {
        let text =
            String::from_utf8(logcut_format::read_all(&root.join(name), "app").unwrap_or_default())
                .unwrap_or_default();
        text.lines().next().unwrap_or("").to_string()
    };
    let (o, t) = (sample("ours"), sample("theirs"));
    let _ = std::fs::remove_dir_all(&root);
    let (or, oa) = (
        median(ours.iter().map(|x| x.0).collect()),
        median(ours.iter().map(|x| x.1).collect()),
    );
    let (tr, ta) = (
        median(theirs.iter().map(|x| x.0).collect()),
        median(theirs.iter().map(|x| x.1).collect()),
    );
    println!(
        "{events} events x {rounds} rounds (medians), one thread, each layer into its own Buffered appender"
    );
    println!("| layer | events/s | allocations per event | line bytes |");
    println!("|---|---|---|---|");
    println!(
        "| logcut::JsonLayer (lift order_id, user_id) | {or:.0} | {oa:.2} | {} |",
        o.len() + 1
    );
    println!(
        "| fmt().json() (current span, span list) | {tr:.0} | {ta:.2} | {} |",
        t.len() + 1
    );
    println!(
        "JsonLayer / fmt().json(): throughput {:.2}x, allocations {:.2}x",
        or / tr,
        oa / ta.max(f64::MIN_POSITIVE)
    );
    println!("sample (ours):   {o}");
    println!("sample (theirs): {t}");
}
