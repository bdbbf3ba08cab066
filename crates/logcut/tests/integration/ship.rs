//! Shipping sealed segments (feature `ship`) through an uploader that
//! keeps objects in memory and fails when told: every segment shipped
//! once, with its hashes recorded; retention never deletes an unshipped
//! segment but for the free-space floor, which says so.

#![cfg(all(feature = "ship", feature = "zstd"))]

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use logcut::{Appender, Compression, ManualClock, ProblemKind, Ship, ShipSegment, Shipped};
use logcut_format::manifest::{Entry, Manifest};

use crate::kit::*;

/// An object store in memory; uploads fail while `down` is set.
#[derive(Debug, Default)]
struct Bucket {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    down: AtomicBool,
    uploads: AtomicU64,
}

impl Ship for Bucket {
    fn ship(&self, seg: &ShipSegment<'_>) -> io::Result<Shipped> {
        if self.down.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the bucket is down",
            ));
        }
        let data = std::fs::read(seg.dir.join(seg.file))?;
        assert_eq!(data.len() as u64, seg.bytes);
        assert_eq!(crc32fast::hash(&data), seg.crc32);
        let key = format!("logs/{}/{}", seg.log, seg.file);
        self.uploads.fetch_add(1, Ordering::SeqCst);
        self.objects.lock().unwrap().insert(key.clone(), data);
        Ok(Shipped {
            key,
            etag: Some(format!("\"{:08x}\"", seg.crc32)),
        })
    }
}

fn ships(dir: &std::path::Path) -> Vec<logcut_format::manifest::Shipped> {
    Manifest::read(&dir.join("app.manifest"))
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Ship(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn sealed_files(dir: &std::path::Path) -> usize {
    files(dir)
        .iter()
        .filter(|f| f.starts_with("app.2") && !f.ends_with(".tmp") && !f.ends_with(".idx"))
        .count()
}

#[test]
fn every_sealed_segment_is_shipped_once_and_retention_waits_for_it() {
    let dir = TempDir::new("ship");
    let bucket = Arc::new(Bucket::default());
    let clock = ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap());
    let build = || {
        Appender::builder()
            .dir(dir.path())
            .max_size(1000)
            .mode(logcut::Mode::Buffered)
            .compress(Compression::zstd())
            .keep(3)
            .clock(clock.clone())
            .backoff(Duration::from_secs(1), Duration::from_secs(8))
            .ship(bucket.clone())
            .build()
            .unwrap()
    };
    let a = build();
    // The bucket is down: segments are sealed and compressed, none is
    // shipped, and none is deleted, whatever `keep` says.
    bucket.down.store(true, Ordering::SeqCst);
    for i in 0..100 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.tick().unwrap();
    assert_eq!(sealed_files(dir.path()), 9);
    let s = a.stats();
    assert_eq!(
        (s.segments_shipped, s.ship_backlog, s.segments_deleted),
        (0, 9, 0)
    );
    assert!(s.ship_failures >= 9, "{s:?}");
    assert!(s.oldest_unshipped.is_some());
    // Back up: once the backoff has passed, all are shipped, and retention
    // takes the oldest down to 3.
    bucket.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(60));
    a.tick().unwrap();
    a.tick().unwrap();
    let s = a.stats();
    assert_eq!((s.segments_shipped, s.ship_backlog), (9, 0), "{s:?}");
    assert_eq!(s.oldest_unshipped, None);
    assert_eq!(sealed_files(dir.path()), 3);
    a.shutdown().unwrap();
    // The segment shutdown sealed goes at the next start, the bucket down
    // at first.
    let objects = bucket.objects.lock().unwrap().len();
    let a = build();
    a.tick().unwrap();
    a.shutdown().unwrap();
    // Uploads run several at once: entries come in the order they ended.
    let mut shipped = ships(dir.path());
    shipped.sort_by_key(|s| s.seq);
    let n = shipped.len();
    // The 9, and the one shutdown sealed.
    assert_eq!(n, 10);
    // Each once, under its own key, with what was uploaded.
    let mut keys: Vec<&str> = shipped.iter().map(|s| s.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    let objs = bucket.objects.lock().unwrap();
    assert_eq!(objs.len(), n);
    assert!(objs.len() >= objects);
    for s in &shipped {
        let data = &objs[&s.key];
        assert_eq!(crc32fast::hash(data), s.crc32);
        assert_eq!(data.len() as u64, s.bytes);
        assert_eq!(s.sha256.len(), 64);
        // The one the first shutdown sealed was shipped as it was: it
        // stayed at app.log, uncompressed, until the next start.
        assert_eq!(s.file.ends_with(".zst"), s.seq != 10, "{}", s.file);
    }
    assert_eq!(bucket.uploads.load(Ordering::SeqCst) as usize, n);
    verify_ok(dir.path());
    // The objects hold the log: what retention deleted locally is there;
    // each seal entry has the SHA-256 of its segment's contents.
    let m = Manifest::read(&dir.path().join("app.manifest")).unwrap();
    let seal_sha: std::collections::HashMap<u64, Option<String>> =
        m.seals().map(|s| (s.seq, s.sha256.clone())).collect();
    let mut all = Vec::new();
    for s in &shipped {
        let mut d = if s.file.ends_with(".zst") {
            zstd_decode(&objs[&s.key])
        } else {
            objs[&s.key].clone()
        };
        let sha: String = <sha2::Sha256 as sha2::Digest>::digest(&d)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            seal_sha[&s.seq].as_deref(),
            Some(sha.as_str()),
            "segment {}",
            s.seq
        );
        all.append(&mut d);
    }
    assert_eq!(check_records(&all, 100)[&0], 100);
    // verify checks the contents against it: a seal whose SHA-256 was
    // altered (its line's checksum made to fit) is named.
    let path = dir.path().join("app.manifest");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept = logcut_format::segments(dir.path(), "app").unwrap();
    let victim = kept[0].seal.as_ref().unwrap().clone();
    let altered: String = text
        .lines()
        .map(|l| match logcut_format::manifest::parse_line(l) {
            Ok(Some(Entry::Seal(mut seal))) if seal.seq == victim.seq => {
                seal.sha256 = Some("00".repeat(32));
                Entry::Seal(seal).encode()
            }
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&path, altered).unwrap();
    let report = logcut::verify(dir.path()).unwrap();
    assert_eq!(
        problems(&report),
        [(ProblemKind::ChecksumMismatch, Some(victim.file.clone()))],
        "{report}"
    );
}

fn zstd_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = logcut_format::codec::Codec::Zstd.decoder(data).unwrap();
    std::io::Read::read_to_end(&mut r, &mut out).unwrap();
    out
}

#[test]
fn only_the_free_space_floor_deletes_unshipped_segments_and_says_so() {
    let Some(fs) = SmallFs::mount("ship-floor", "4m") else {
        return;
    };
    let dir = fs.path().join("log");
    let bucket = Arc::new(Bucket::default());
    bucket.down.store(true, Ordering::SeqCst);
    let a = Appender::builder()
        .dir(&dir)
        .max_size(100_000)
        .mode(logcut::Mode::Buffered)
        .keep(1)
        .min_free(3 << 20)
        .ship(bucket.clone())
        .build()
        .unwrap();
    // 1.5 MB in 15 segments: the floor (3 MB free of 4 MB) is crossed.
    for i in 0..15_000 {
        a.write_record(&record(0, i, 100)).unwrap();
    }
    a.tick().unwrap();
    let s = a.stats();
    assert!(s.segments_deleted_unshipped > 0, "{s:?}");
    assert_eq!(s.segments_deleted, s.segments_deleted_unshipped);
    a.shutdown().unwrap();
    let m = Manifest::read(&dir.join("app.manifest")).unwrap();
    let reasons: Vec<&str> = m.deleted().values().map(|d| d.reason.as_str()).collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons.iter().all(|r| *r == "disk-pressure-unshipped"),
        "{reasons:?}"
    );
    let report = logcut::verify(&dir).unwrap();
    let kinds = problems(&report);
    assert!(!kinds.is_empty());
    assert!(
        kinds
            .iter()
            .all(|(k, _)| *k == ProblemKind::UnshippedDeleted),
        "{kinds:?}"
    );
}
