//! Compression, retention and their crash recovery.

#![cfg(all(feature = "gzip", feature = "zstd"))]

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::Duration,
};

use logcut::{Appender, Compression, ManualClock, Mode, ProblemKind};
use logcut_format::manifest::{Entry, Manifest};

use crate::kit::*;

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn manifest(dir: &std::path::Path) -> Manifest {
    Manifest::read(&dir.join("app.manifest")).unwrap()
}

/// `(seq, reason)` of every delete entry.
fn deletions(dir: &std::path::Path) -> Vec<(u64, String)> {
    manifest(dir)
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Delete(d) => Some((d.seq, d.reason.as_str().to_string())),
            _ => None,
        })
        .collect()
}

/// The ids of thread 0's records of `len` bytes in `data`: each whole,
/// in order, no gap, no duplicate, the oldest perhaps deleted by
/// retention; returns the first and one past the last.
fn id_range(data: &[u8], len: usize) -> (u64, u64) {
    let r = Parser::fixed(len).oldest_deleted().parse(data);
    only_thread_0(&r)
}

/// As `id_range`, from id 0, but the data may end with the first part of
/// the next record: the one being written when the child was killed
/// (SIGKILL stops a `write(2)` between pages; that record was never
/// reported written).
fn id_range_after_kill(data: &[u8], len: usize) -> (u64, u64) {
    let r = Parser::fixed(len).killed(&tag(0)).parse(data);
    only_thread_0(&r)
}

fn only_thread_0(r: &Records) -> (u64, u64) {
    assert!(
        r.tags().iter().all(|t| *t == tag(0)),
        "writers {:?}",
        r.tags()
    );
    let range = r.range(&tag(0));
    (range.start, range.end)
}

fn no_tmp_files(dir: &std::path::Path) {
    let tmp: Vec<String> = files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn gzip_and_zstd_round_trip_in_both_modes() {
    for (compression, ext) in [(Compression::gzip(), ".gz"), (Compression::zstd(), ".zst")] {
        for mode in [Mode::Direct, Mode::Buffered] {
            let dir = TempDir::new("roundtrip");
            let a = Appender::builder()
                .dir(dir.path())
                .max_size(4000)
                .mode(mode)
                .compress(compression)
                // Compress the last one at the shutdown too.
                .keep_active_name(false)
                .build()
                .unwrap();
            write_from_threads(&a, 2, 500, 100);
            a.tick().unwrap();
            a.shutdown().unwrap();
            let what = format!("{compression:?} {mode:?}");
            let report = verify_ok(dir.path());
            let log = &report.logs[0];
            assert_eq!(report.records(), 1000, "{what}");
            // 100,000 bytes, 40 records of 100 bytes to a 4000-byte
            // segment: 25 in Buffered mode, where the limit is exact. In
            // Direct mode a segment cut by size holds at least 40 too, so
            // at most 25, but may hold more (concurrent writers, or a cut
            // that waits for a prepared segment: see the crate docs).
            if mode == Mode::Buffered {
                assert_eq!(log.segments, 25, "{what}: {report}");
            } else {
                assert!((2..=25).contains(&log.segments), "{what}: {report}");
            }
            assert_eq!(log.compressed_segments, log.segments, "{what}: {report}");
            assert!(log.disk_bytes * 3 < log.bytes, "{what}: {report}");
            assert_eq!(a.stats().segments_compressed, log.segments, "{what}");
            assert_eq!(a.stats().compress_backlog, 0, "{what}");
            // Only compressed segments are left; every record once.
            for f in files(dir.path()) {
                assert!(
                    f.ends_with(ext)
                        || ["app.manifest", "app.lock", "app.error"].contains(&f.as_str()),
                    "{what}: {f} left over"
                );
            }
            let counts = check_records(&read_log(dir.path(), "app"), 100);
            assert_eq!((counts[&0], counts[&1]), (500, 500), "{what}");
        }
    }
}

#[test]
fn the_backlog_of_an_earlier_run_is_compressed_at_the_next_start() {
    let dir = TempDir::new("later");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .build()
        .unwrap();
    for i in 0..50 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.shutdown().unwrap();
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .compress(Compression::Gzip { level: 1 })
        .build()
        .unwrap();
    a.tick().unwrap();
    assert_eq!(a.stats().segments_compressed, 5);
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!(report.logs[0].compressed_segments, 5, "{report}");
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (0, 50));
}

#[test]
fn retention_by_count_never_touches_the_active_segment() {
    for compression in [Compression::None, Compression::zstd()] {
        let dir = TempDir::new("keep");
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(1000)
            .compress(compression)
            .keep(3)
            .build()
            .unwrap();
        for i in 0..105 {
            a.write_record(&record(0, i, 100)).unwrap();
            a.tick().unwrap();
            let sealed = files(dir.path())
                .iter()
                .filter(|f| f.starts_with("app.2") && !f.ends_with(".tmp"))
                .count();
            assert!(sealed <= 3, "{compression:?}: {sealed} sealed segments");
            assert!(dir.join("app.log").exists());
        }
        // The active segment holds the last records, untouched.
        assert_eq!(std::fs::metadata(dir.join("app.log")).unwrap().len(), 500);
        a.shutdown().unwrap();
        let report = verify_ok(dir.path());
        let log = &report.logs[0];
        assert_eq!((log.segments, log.deleted_segments), (3, 8), "{report}");
        assert_eq!((report.records(), report.deleted()), (25, 80), "{report}");
        assert_eq!(a.stats().segments_deleted, 8);
        assert!(report.to_string().contains("deleted by policy"), "{report}");
        let dels = deletions(dir.path());
        assert_eq!(
            dels.iter().map(|d| d.0).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        assert!(dels.iter().all(|d| d.1 == "count"), "{dels:?}");
        // The newest records are there, each once.
        assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (80, 105));
    }
}

#[test]
fn retention_never_deletes_a_segment_under_the_compressor() {
    // Many small segments, slow gzip and keep 1: retention constantly
    // wants the segment the worker is compressing. Had it deleted one, the
    // worker would fail (its input gone) and report it.
    let dir = TempDir::new("busy");
    let (tx, rx) = std::sync::mpsc::channel();
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(20_000)
        .mode(Mode::Buffered)
        .compress(Compression::Gzip { level: 9 })
        .keep(1)
        .error_handler(tx)
        .build()
        .unwrap();
    for i in 0..4000 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.shutdown().unwrap();
    let errors: Vec<String> = rx.try_iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let s = a.stats();
    assert_eq!(s.compress_failures, 0);
    assert!(s.segments_deleted >= 15, "{s:?}");
    let report = verify_ok(dir.path());
    assert_eq!(report.logs[0].segments, 1, "{report}");
    assert_eq!(report.records() + report.deleted(), 4000, "{report}");
    let (_, end) = id_range(&read_log(dir.path(), "app"), 100);
    assert_eq!(end, 4000);
}

#[test]
fn retention_by_age_follows_the_appenders_clock() {
    let dir = TempDir::new("age");
    let clock = ManualClock::new(ts("2026-11-24T10:00:00Z"));
    let a = Appender::builder()
        .dir(dir.path())
        .manual_only()
        .clock(clock.clone())
        .compress(Compression::zstd())
        .max_age(Duration::from_secs(60))
        .build()
        .unwrap();
    // Segment 1 is sealed at 10:00:00, segment 2 at 10:00:30.
    // (A segment's end is when the sealer seals it: tick waits for that.)
    for i in 0..10 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.rotate().unwrap();
    a.tick().unwrap();
    clock.advance(Duration::from_secs(30));
    for i in 10..20 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.rotate().unwrap();
    for i in 20..25 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.tick().unwrap();
    assert!(deletions(dir.path()).is_empty());
    clock.advance(Duration::from_secs(31));
    a.tick().unwrap();
    assert_eq!(deletions(dir.path()), [(1, "age".to_string())]);
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (10, 25));
    clock.advance(Duration::from_secs(30));
    a.tick().unwrap();
    assert_eq!(deletions(dir.path()).len(), 2);
    // Only the active segment is left, however old its records are.
    clock.advance(Duration::from_secs(3600));
    a.tick().unwrap();
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (20, 25));
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!((report.records(), report.deleted()), (5, 20), "{report}");
}

#[test]
fn retention_by_total_bytes_counts_compressed_sizes() {
    // Uncompressed: 1000-byte segments, at most 2500 bytes: two stay.
    let dir = TempDir::new("bytes");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .max_total(2500)
        .build()
        .unwrap();
    for i in 0..60 {
        a.write_record(&record(0, i, 100)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!(report.logs[0].segments, 2, "{report}");
    assert_eq!(report.logs[0].disk_bytes, 2000, "{report}");
    assert!(deletions(dir.path()).iter().all(|d| d.1 == "bytes"));
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (40, 60));

    // Compressed, the same limit keeps many more segments.
    let dir = TempDir::new("bytes-zst");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .compress(Compression::zstd())
        .max_total(2500)
        .build()
        .unwrap();
    for i in 0..200 {
        a.write_record(&record(0, i, 100)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    let log = &report.logs[0];
    assert!(log.disk_bytes <= 2500, "{report}");
    assert!(log.segments > 2, "{report}");
    assert_eq!(report.records() + report.deleted(), 200, "{report}");
}

#[test]
fn retention_limits_combine_and_each_names_its_reason() {
    let dir = TempDir::new("combo");
    let clock = ManualClock::new(ts("2026-11-24T10:00:00Z"));
    let a = Appender::builder()
        .dir(dir.path())
        .manual_only()
        .clock(clock.clone())
        .keep(3)
        .max_age(Duration::from_secs(600))
        .max_total(2500)
        .build()
        .unwrap();
    let mut id = 0;
    let mut seal_one = |a: &Appender, records: usize| {
        for _ in 0..records {
            a.write_record(&record(0, id, 100)).unwrap();
            id += 1;
        }
        a.rotate().unwrap();
        a.tick().unwrap();
        clock.advance(Duration::from_secs(60));
    };
    // Four segments of 500 bytes, sealed a minute apart: one too many.
    for _ in 0..4 {
        seal_one(&a, 5);
    }
    assert_eq!(deletions(dir.path()), [(1, "count".to_string())]);
    // Segment 2 was sealed at 10:01; at 10:11:01 it is too old.
    clock.set(ts("2026-11-24T10:11:01Z"));
    a.tick().unwrap();
    assert_eq!(deletions(dir.path())[1], (2, "age".to_string()));
    // A segment of 2000 bytes: 3000 bytes in all, over the 2500 limit.
    seal_one(&a, 20);
    assert_eq!(
        deletions(dir.path()),
        [
            (1, "count".to_string()),
            (2, "age".to_string()),
            (3, "bytes".to_string())
        ]
    );
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!((report.records(), report.deleted()), (25, 15), "{report}");
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (15, 40));
}

#[test]
fn a_corrupted_compressed_segment_is_reported_by_name() {
    for compression in [Compression::gzip(), Compression::zstd()] {
        let dir = TempDir::new("corrupt");
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(2000)
            .compress(compression)
            .keep_active_name(false)
            .build()
            .unwrap();
        for i in 0..100 {
            a.write_record(&record(0, i, 100)).unwrap();
        }
        a.shutdown().unwrap();
        verify_ok(dir.path());
        let m = manifest(dir.path());
        let comp: Vec<String> = m.compressed().values().map(|c| c.file.clone()).collect();
        let mut comp = comp;
        comp.sort();
        assert_eq!(comp.len(), 5, "{compression:?}");
        // Flip a byte in one, truncate another.
        let p = dir.join(&comp[1]);
        let mut data = std::fs::read(&p).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
        std::fs::write(&p, data).unwrap();
        let p = dir.join(&comp[3]);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        let report = logcut::verify(dir.path()).unwrap();
        let got = problems(&report);
        assert_eq!(
            got,
            [
                (ProblemKind::ChecksumMismatch, Some(comp[1].clone())),
                (ProblemKind::SizeMismatch, Some(comp[3].clone())),
            ],
            "{compression:?}: {report}"
        );
        let text = report.to_string();
        assert!(text.contains("truncated"), "{text}");
        // Without the manifest's word for it, the damage is found by
        // decompressing: drop the compress entries and restore originals'
        // absence (they are gone), as after a crash before recording.
        let kept: String = std::fs::read_to_string(dir.join("app.manifest"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("compress "))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.join("app.manifest"), kept).unwrap();
        let report = logcut::verify(dir.path()).unwrap();
        let got = problems(&report);
        assert_eq!(
            got,
            [
                (ProblemKind::BadCompression, Some(comp[1].clone())),
                (ProblemKind::BadCompression, Some(comp[3].clone())),
            ],
            "{compression:?}: {report}"
        );
    }
}

#[test]
fn recovery_records_a_compression_the_manifest_missed() {
    let dir = TempDir::new("unrecorded");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .compress(Compression::zstd())
        .keep_active_name(false)
        .build()
        .unwrap();
    for i in 0..30 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.shutdown().unwrap();
    // As if a crash hit after the rename, before the manifest append: the
    // compress entries are gone; for one segment the original is back too.
    let text = std::fs::read_to_string(dir.join("app.manifest")).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("compress "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("app.manifest"), kept).unwrap();
    let seals = sealed(dir.path(), "app");
    let original = read_log(dir.path(), "app");
    std::fs::write(dir.join(&seals[0].file), &original[..1000]).unwrap();
    // And a half-written temporary file.
    let tmp = format!("{}.zst.tmp", seals[1].file);
    std::fs::write(dir.join(&tmp), b"(partial)").unwrap();
    verify_ok(dir.path());
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    assert!(!dir.join(&tmp).exists());
    assert!(!dir.join(&seals[0].file).exists());
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!(report.logs[0].compressed_segments, 3);
    assert_eq!(manifest(dir.path()).compressed().len(), 3);
    assert_eq!(read_log(dir.path(), "app"), original);
}

#[test]
fn recovery_finishes_removals_a_crash_cut_short() {
    let dir = TempDir::new("unfinished");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .compress(Compression::zstd())
        .keep(2)
        .build()
        .unwrap();
    for i in 0..40 {
        a.write_record(&record(0, i, 100)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let seals = sealed(dir.path(), "app");
    let m = manifest(dir.path());
    let kept: Vec<_> = seals
        .iter()
        .filter(|s| !m.deleted().contains_key(&s.seq))
        .collect();
    assert_eq!(kept.len(), 2);
    let data = read_log(dir.path(), "app");
    // As if crashes hit after the manifest entries, before the removals:
    // a compressed segment's original, and a deleted segment, are back.
    std::fs::write(dir.join(&kept[0].file), &data[..1000]).unwrap();
    std::fs::write(dir.join(&seals[0].file), b"deleted by policy\n").unwrap();
    verify_ok(dir.path());
    assert_eq!(read_log(dir.path(), "app"), data);
    let a = Appender::builder().dir(dir.path()).build().unwrap();
    assert!(!dir.join(&kept[0].file).exists());
    assert!(!dir.join(&seals[0].file).exists());
    a.shutdown().unwrap();
    verify_ok(dir.path());
    assert_eq!(read_log(dir.path(), "app"), data);
}

/// Writes records in Direct mode with zstd compression (segments of
/// `LOGCUT_CC_MAX` bytes, level `LOGCUT_CC_LEVEL`), printing each id once
/// `write_record` has returned, with the compression backlog and the
/// segments compressed so far, until it is killed.
#[test]
#[ignore = "run as a child process by killed_while_compressing_loses_nothing"]
fn compress_crash_child() {
    use std::io::Write;
    let var = |k: &str| child_env(k, "killed_while_compressing_loses_nothing");
    let dir = var("LOGCUT_CC_DIR");
    let a = Appender::builder()
        .dir(&dir)
        .max_size(var("LOGCUT_CC_MAX").parse().unwrap())
        .compress(Compression::Zstd {
            level: var("LOGCUT_CC_LEVEL").parse().unwrap(),
        })
        .build()
        .unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000 {
        a.write_record(&record(0, i, 100)).unwrap();
        let s = a.stats();
        writeln!(
            out,
            "written {i} {} {}",
            s.compress_backlog, s.segments_compressed
        )
        .unwrap();
        out.flush().unwrap();
    }
}

/// What a kill left of a compression: one under way (its `.tmp` file), or
/// one between its steps (a compressed file the manifest does not record
/// yet, or an original still there after its `compress` entry).
fn interrupted_compression(dir: &std::path::Path) -> Option<String> {
    let names = files(dir);
    if let Some(tmp) = names.iter().find(|f| f.ends_with(".tmp")) {
        return Some(format!("{tmp} being written"));
    }
    let m = manifest(dir);
    let recorded = m.compressed();
    for s in m.seals() {
        let zst = format!("{}.zst", s.file);
        match recorded.get(&s.seq) {
            None if names.contains(&zst) => return Some(format!("{zst} not recorded yet")),
            Some(_) if names.contains(&s.file) => {
                return Some(format!("{} recorded, original not removed yet", s.file));
            }
            _ => {}
        }
    }
    None
}

#[test]
fn killed_while_compressing_loses_nothing() {
    const RUNS: u64 = 24;
    let mut hits = 0;
    for run in 0..RUNS {
        let dir = TempDir::new("killed");
        // Even runs: small segments compressed fast, killed at a record
        // spread over the first few hundred, whatever is under way then.
        // Odd runs: larger segments and a slow zstd level, killed once 0,
        // 1 or 2 segments are compressed while the next compression is
        // under way (its `.tmp` file is there; at level 19 a segment takes
        // many milliseconds more).
        let during_compression = run % 2 == 1;
        let (max, level) = if during_compression {
            (64 << 10, 19)
        } else {
            (2000, 1)
        };
        let mut child = child_test("compress::compress_crash_child")
            .env("LOGCUT_CC_DIR", dir.path())
            .env("LOGCUT_CC_MAX", max.to_string())
            .env("LOGCUT_CC_LEVEL", level.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let target = 3 + (run * 97) % 250;
        let segment = (run / 2) % 3;
        let mut done: Option<u64> = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test ... " before the child's first line, on
            // the same line: the words count from the end.
            let words: Vec<&str> = line.split(' ').collect();
            let [.., "written", id, backlog, compressed] = words[..] else {
                // The test harness's own lines.
                continue;
            };
            let (id, backlog, compressed): (u64, u64, u64) = (
                id.parse().unwrap(),
                backlog.parse().unwrap(),
                compressed.parse().unwrap(),
            );
            done = Some(id);
            let kill = if during_compression {
                compressed >= segment
                    && backlog > 0
                    && files(dir.path()).iter().any(|f| f.ends_with(".zst.tmp"))
            } else {
                id >= target
            };
            if kill {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let done = done.expect("the child wrote nothing") + 1;
        let hit = interrupted_compression(dir.path());
        if during_compression {
            assert!(
                hit.is_some(),
                "run {run}: killed after {done} records, no compression under way"
            );
        }
        hits += u64::from(hit.is_some());
        // A new appender on the same directory recovers, compresses what
        // waits, and shuts down cleanly.
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(max)
            .compress(Compression::zstd())
            .build()
            .unwrap();
        a.shutdown().unwrap();
        no_tmp_files(dir.path());
        assert_eq!(interrupted_compression(dir.path()), None, "run {run}");
        let report = verify_ok(dir.path());
        let (first, end) = id_range_after_kill(&read_log(dir.path(), "app"), 100);
        assert_eq!(first, 0, "run {run}");
        assert!(
            end >= done,
            "run {run}: {done} records written before the kill, {end} found"
        );
        assert!(
            report.logs[0].compressed_segments > 0,
            "run {run}: {report}"
        );
    }
    // Every run meant to hit a compression did; the others may have.
    assert!(hits >= RUNS / 2, "{hits} of {RUNS} kills hit a compression");
}

/// Shutdown's deadline stops a compression under way: nothing half-done
/// is left, the segment stays as it was sealed (or was compressed in
/// time), every record is there, and it is not counted as a failure.
#[test]
fn a_compression_under_way_at_the_shutdown_deadline_is_stopped_cleanly() {
    let dir = TempDir::new("cancel");
    let a = Appender::builder()
        .dir(dir.path())
        .no_max_size()
        .compress(Compression::Gzip { level: 9 })
        .shutdown_timeout(std::time::Duration::from_millis(1))
        .build()
        .unwrap();
    for i in 0..100_000 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.rotate().unwrap();
    a.shutdown().unwrap();
    assert_eq!(a.stats().compress_failures, 0);
    no_tmp_files(dir.path());
    verify_ok(dir.path());
    assert_eq!(id_range(&read_log(dir.path(), "app"), 100), (0, 100_000));
}

/// A shutdown leaves the last segment at `app.log` too, so that a shipper
/// following that path by name finds it; it is listed once, neither
/// compressed nor deleted until the next start, which removes that name
/// and does both.
#[test]
fn the_last_segment_stays_at_the_active_path_until_the_next_start() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("last-at-active");
    let build = || {
        Appender::builder()
            .dir(dir.path())
            .max_size(2000)
            .mode(Mode::Buffered)
            .compress(Compression::zstd())
            .keep(3)
            .build()
            .unwrap()
    };
    let a = build();
    let mut all = Vec::new();
    for i in 0..70 {
        let r = record(0, i, 100);
        a.write_record(&r).unwrap();
        all.extend_from_slice(&r);
    }
    a.flush_records().unwrap();
    // A shipper that has app.log open already reads on through it.
    let mut early = std::fs::File::open(dir.join("app.log")).unwrap();
    a.shutdown().unwrap();
    let seals = sealed(dir.path(), "app");
    let last = seals.iter().max_by_key(|s| s.seq).unwrap().clone();
    assert!(last_at_active(dir.path(), "app"));
    let at_active = std::fs::read(dir.join("app.log")).unwrap();
    let tail = |n: u64| &all[all.len() - n as usize..];
    assert!(
        at_active == tail(last.bytes) && !at_active.is_empty(),
        "app.log holds the last segment"
    );
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut early, &mut rest).unwrap();
    assert!(all.ends_with(&rest) && !rest.is_empty());
    // Listed once: the kept segments, in order, nothing twice.
    let kept: u64 = {
        let mut s = seals.clone();
        s.sort_by_key(|s| s.seq);
        s.iter().rev().take(3).map(|s| s.bytes).sum()
    };
    assert!(
        read_log(dir.path(), "app") == tail(kept),
        "listed once, in order"
    );
    let report = verify_ok(dir.path());
    let log = &report.logs[0];
    assert_eq!((log.segments, log.compressed_segments), (3, 2), "{report}");
    assert_eq!(log.active_bytes, None, "{report}");
    assert!(!manifest(dir.path()).compressed().contains_key(&last.seq));
    // The next start: app.log is a new file; the last segment is
    // compressed, and retention counts it again.
    let a = build();
    let id = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.ino()).ok();
    assert_ne!(id(&dir.join("app.log")), id(&dir.join(&last.file)));
    a.write_record(&record(0, 70, 100)).unwrap();
    a.tick().unwrap();
    assert!(manifest(dir.path()).compressed().contains_key(&last.seq));
    assert!(!dir.join(&last.file).exists());
    a.shutdown().unwrap();
    all.extend_from_slice(&record(0, 70, 100));
    let tail = |n: u64| &all[all.len() - n as usize..];
    // Kept: the newest 3, the one this run sealed among them.
    let now: Vec<_> = sealed(dir.path(), "app");
    let bytes = |q: u64| now.iter().find(|s| s.seq == q).unwrap().bytes;
    assert_eq!(now.iter().map(|s| s.seq).max(), Some(last.seq + 1));
    let kept = bytes(last.seq + 1) + bytes(last.seq) + bytes(last.seq - 1);
    assert!(
        read_log(dir.path(), "app") == tail(kept),
        "after the restart"
    );
    verify_ok(dir.path());
    // Off: the last segment leaves the active path at the shutdown.
    let a = Appender::builder()
        .dir(dir.path())
        .compress(Compression::zstd())
        .keep_active_name(false)
        .build()
        .unwrap();
    a.write_record(&record(0, 71, 100)).unwrap();
    a.shutdown().unwrap();
    assert!(!dir.join("app.log").exists());
    assert_eq!(manifest(dir.path()).compressed().len(), seals.len() + 2);
}
