use std::sync::{
    Arc, Barrier,
    atomic::{AtomicBool, Ordering},
};

use logcut::{Appender, Mode};

use crate::kit::*;

const THREADS: usize = 4;
const PER_THREAD: u64 = 250_000;
const LEN: usize = 120;

/// 4 threads x 250,000 records of 120 bytes with a 64 KiB limit (about
/// 1,800 rotations), optionally with `rotate()` called in a tight loop from
/// another thread. Every record must come back exactly once, whole, in each
/// thread's order, and `verify` must pass.
fn torture(mode: Mode, rotate_loop: bool) {
    let dir = TempDir::new("torture");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(64 << 10)
        .mode(mode)
        .build()
        .unwrap();
    // The writers, the rotator (if any) and this thread start together.
    let start = Arc::new(Barrier::new(THREADS + 1 + usize::from(rotate_loop)));
    let done = Arc::new(AtomicBool::new(false));
    let rotator = rotate_loop.then(|| {
        let (a, done, start) = (a.clone(), Arc::clone(&done), Arc::clone(&start));
        std::thread::spawn(move || {
            start.wait();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                a.rotate().unwrap();
                n += 1;
            }
            n
        })
    });
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, start) = (a.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    a.write_record(&record(t, i, LEN)).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let rotations = rotator.map(|r| r.join().unwrap());
    let stats = a.stats();
    assert_eq!(stats.records, THREADS as u64 * PER_THREAD);
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    let total = THREADS as u64 * PER_THREAD;
    assert_eq!(report.records(), total);
    assert_eq!(report.lost(), 0);
    let counts = check_records(&read_log(dir.path(), "app"), LEN);
    for t in 0..THREADS {
        assert_eq!(counts.get(&t).copied(), Some(PER_THREAD), "thread {t}");
    }
    let seals = sealed(dir.path(), "app");
    // 120 MB in 64 KiB segments is 1,832 cuts at most. Direct mode
    // overshoots the limit when writers outrun the preparation of next
    // segments (documented), so it may cut fewer times; Buffered is exact.
    assert!(seals.len() > 500, "only {} segments", seals.len());
    if mode == Mode::Buffered && !rotate_loop {
        assert!(
            seals.iter().all(|s| s.bytes <= 64 << 10),
            "a buffered segment exceeds its limit"
        );
        assert!(seals.len() >= 1832, "{} segments", seals.len());
    }
    if let Some(n) = rotations {
        assert!(n > 0);
    }
    // Every segment holds whole records.
    for s in &seals {
        assert_eq!(s.bytes % LEN as u64, 0, "{s:?}");
        assert_eq!(s.records, Some(s.bytes / LEN as u64), "{s:?}");
    }
}

#[test]
fn torture_direct() {
    torture(Mode::Direct, false);
}

#[test]
fn torture_buffered() {
    torture(Mode::Buffered, false);
}

#[test]
fn torture_direct_with_rotate_loop() {
    torture(Mode::Direct, true);
}

#[test]
fn torture_buffered_with_rotate_loop() {
    torture(Mode::Buffered, true);
}
