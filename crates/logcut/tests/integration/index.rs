//! The search index of sealed segments: built for every segment, compressed
//! or not, holding every value its lines have; checked by verify; removed
//! with its segment.

use logcut::{Appender, Compression, ProblemKind};
use logcut_format::{
    index::index_file,
    manifest::{Entry, Manifest},
    segments,
};

use crate::kit::*;

/// A JSON line of about 100 bytes whose trace is `i / 10`.
fn line(i: u64) -> Vec<u8> {
    format!(
        "{{\"timestamp\":\"2026-12-03T10:00:00Z\",\"trace_id\":\"t{:05}\",\"n\":{i:06},\"msg\":\"work\"}}\n",
        i / 10
    )
    .into_bytes()
}

fn trace_ids(data: &[u8]) -> std::collections::BTreeSet<String> {
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let s = std::str::from_utf8(l).unwrap();
            let at = s.find("\"trace_id\":\"").unwrap() + 12;
            s[at..at + 6].to_string()
        })
        .collect()
}

fn index_entries(dir: &std::path::Path) -> Vec<(u64, String)> {
    Manifest::read(&dir.join("app.manifest"))
        .unwrap()
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Index(i) => Some((i.seq, i.file.clone())),
            _ => None,
        })
        .collect()
}

/// Checks that each sealed segment's index holds every trace id of its
/// lines and rules out most others; returns how many segments there are.
fn check_indexes(dir: &std::path::Path) -> usize {
    let segs: Vec<_> = segments(dir, "app")
        .unwrap()
        .into_iter()
        .filter(|s| s.seal.is_some())
        .collect();
    for s in &segs {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut s.open().unwrap(), &mut data).unwrap();
        let ix = s.index().expect("every sealed segment has an index");
        let ids = trace_ids(&data);
        for id in &ids {
            assert_eq!(ix.may_contain("trace_id", id), Some(true), "{id}");
        }
        let ruled_out = (0..100)
            .map(|t| format!("t{t:05}"))
            .filter(|id| !ids.contains(id) && ix.may_contain("trace_id", id) == Some(false))
            .count();
        assert!(ruled_out >= 100 - ids.len() - 10, "{ruled_out} ruled out");
        assert_eq!(ix.may_contain("msg", "work"), None);
    }
    segs.len()
}

#[test]
fn every_sealed_segment_gets_an_index_of_its_values() {
    let codecs: &[Compression] = if cfg!(feature = "zstd") {
        &[Compression::None, Compression::zstd()]
    } else {
        &[Compression::None]
    };
    for &compression in codecs {
        let dir = TempDir::new("index");
        let a = Appender::builder()
            .dir(dir.path())
            .max_size(2000)
            .compress(compression)
            .index_fields(["trace_id"])
            // Time to finish the background work at the end, under load.
            .shutdown_timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        for i in 0..400 {
            a.write_record(&line(i)).unwrap();
        }
        a.shutdown().unwrap();
        let n = check_indexes(dir.path());
        assert!(n >= 3, "{n} segments");
        // One entry per sealed segment, naming its own index file.
        let seals = sealed(dir.path(), "app");
        let entries = index_entries(dir.path());
        assert_eq!(
            entries,
            seals
                .iter()
                .map(|s| (s.seq, index_file(&s.file)))
                .collect::<Vec<_>>(),
            "{compression:?}"
        );
        verify_ok(dir.path());
        assert!(files(dir.path()).iter().all(|f| !f.ends_with(".tmp")));
    }
}

#[test]
fn verify_reports_a_damaged_or_missing_index() {
    let dir = TempDir::new("index-bad");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(2000)
        .index_fields(["trace_id"])
        .build()
        .unwrap();
    for i in 0..100 {
        a.write_record(&line(i)).unwrap();
    }
    a.shutdown().unwrap();
    let entries = index_entries(dir.path());
    assert!(entries.len() >= 3);
    let (damaged, removed) = (&entries[0].1, &entries[1].1);
    let mut bytes = std::fs::read(dir.join(damaged)).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(dir.join(damaged), &bytes).unwrap();
    std::fs::remove_file(dir.join(removed)).unwrap();
    let report = logcut::verify(dir.path()).unwrap();
    assert_eq!(
        problems(&report),
        [
            (ProblemKind::BadIndex, Some(damaged.clone())),
            (ProblemKind::BadIndex, Some(removed.clone())),
        ],
        "{report}"
    );
    // Readers do not trust it: the damaged index is none.
    let segs = segments(dir.path(), "app").unwrap();
    assert!(segs[0].index().is_none());
    assert!(segs[1].index().is_none());
    assert!(segs[2].index().is_some());
}

#[test]
fn retention_removes_a_segments_index_with_it() {
    let dir = TempDir::new("index-keep");
    let a = Appender::builder()
        .dir(dir.path())
        .max_size(1000)
        .keep(2)
        .index_fields(["trace_id"])
        .build()
        .unwrap();
    for i in 0..100 {
        a.write_record(&line(i)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let idx: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".idx"))
        .collect();
    let kept: Vec<String> = segments(dir.path(), "app")
        .unwrap()
        .iter()
        .filter_map(|s| s.seal.as_ref().map(|s| index_file(&s.file)))
        .collect();
    assert_eq!(kept.len(), 2);
    assert_eq!(idx, kept);
    verify_ok(dir.path());
}

#[test]
fn an_index_turned_on_later_covers_the_earlier_segments() {
    let dir = TempDir::new("index-later");
    let b = || {
        let b = Appender::builder().dir(dir.path()).max_size(2000);
        if cfg!(feature = "zstd") {
            b.compress(Compression::zstd())
        } else {
            b
        }
    };
    let a = b().build().unwrap();
    for i in 0..200 {
        a.write_record(&line(i)).unwrap();
    }
    a.shutdown().unwrap();
    assert!(index_entries(dir.path()).is_empty());
    let a = b().index_fields(["trace_id"]).build().unwrap();
    a.tick().unwrap();
    a.shutdown().unwrap();
    let n = check_indexes(dir.path());
    assert_eq!(index_entries(dir.path()).len(), n);
    verify_ok(dir.path());
}

#[test]
fn index_fields_are_checked() {
    for bad in ["ctx.trace_id", "", "a b", "../x"] {
        let dir = TempDir::new("index-cfg");
        let e = Appender::builder()
            .dir(dir.path())
            .index_fields([bad])
            .build()
            .unwrap_err();
        assert_eq!(e.config_field(), Some("index_fields"), "{bad:?}: {e}");
    }
}
