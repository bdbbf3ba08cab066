//! The router's cost: 4 threads writing 500,000 records of 120 bytes each
//! (Buffered, `Fsync::Never`, 1 MiB segments), once to 4 appenders
//! directly and once through one `Router` to 4 tenants' logs with the same
//! policy, interleaved over 3 rounds. Prints both rates and the ratio.
//!
//! Usage: `cargo run --release -p logcut-bench --bin route`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

fn main() {
    let root = std::env::temp_dir().join(format!("logcut-route-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let n = 500_000u64;
    let rec: Vec<u8> = [b'x'; 119].iter().copied().chain([b'\n']).collect();
    let policy = || {
        logcut::Appender::builder()
            .mode(logcut::Mode::Buffered)
            .fsync(logcut::Fsync::Never)
            .max_size(1 << 20)
    };
    println!("| round | 4 appenders, Mrec/s | router, 4 tenants, Mrec/s | router / appenders |");
    println!("|---|---|---|---|");
    for round in 0..3 {
        let apps: Vec<_> = (0..4)
            .map(|t| {
                policy()
                    .dir(root.join(format!("direct{round}/t{t}")))
                    .build()
                    .expect("appender")
            })
            .collect();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for a in &apps {
                let rec = &rec;
                s.spawn(move || {
                    for _ in 0..n {
                        a.write_record(rec).expect("write");
                    }
                });
            }
        });
        for a in &apps {
            a.shutdown().expect("shutdown");
        }
        let direct = t0.elapsed().as_secs_f64();
        let router = logcut::Router::builder(root.join(format!("router{round}")))
            .group("std", policy())
            .build()
            .expect("router");
        let t1 = Instant::now();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (router, rec) = (&router, &rec);
                s.spawn(move || {
                    let tenant = format!("t{t}");
                    for _ in 0..n {
                        router.write_to(&[("tenant", &tenant)], rec).expect("write");
                    }
                });
            }
        });
        router.shutdown().expect("shutdown");
        let routed = t1.elapsed().as_secs_f64();
        let total = 4.0 * n as f64;
        println!(
            "| {} | {:.2} | {:.2} | {:.2}x |",
            round + 1,
            total / direct / 1e6,
            total / routed / 1e6,
            direct / routed
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
