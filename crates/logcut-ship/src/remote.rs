//! `verify --remote`: a log directory's manifests against the bucket.

use std::{collections::BTreeSet, fmt, path::Path};

use futures_util::StreamExt as _;
use logcut_format::manifest::Manifest;
use object_store::{ObjectStore as _, ObjectStoreExt as _, path::Path as Key};
use sha2::Digest as _;

use crate::{Error, S3Shipper};

/// What is wrong with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteProblemKind {
    /// The manifest says it was shipped; the bucket has no such object.
    Missing,
    /// Its length, SHA-256 or CRC-32 differs from what was shipped.
    Mismatch,
    /// It is under a log's key prefix, but no manifest entry names it.
    Extra,
}

/// One object that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteProblem {
    /// What is wrong.
    pub kind: RemoteProblemKind,
    /// The object's key.
    pub key: String,
    /// A sentence saying what is wrong.
    pub detail: String,
}

/// What [`S3Shipper::verify_remote`] found.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// Objects the manifests name, checked.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Every object that does not match, by key.
    pub problems: Vec<RemoteProblem>,
}

impl RemoteReport {
    /// Whether every object matched and none was extra.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for RemoteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            let kind = match p.kind {
                RemoteProblemKind::Missing => "missing",
                RemoteProblemKind::Mismatch => "mismatch",
                RemoteProblemKind::Extra => "extra",
            };
            writeln!(f, "{kind}: {}: {}", p.key, p.detail)?;
        }
        write!(
            f,
            "{} objects ({} bytes) checked, {} problems",
            self.checked,
            self.bytes,
            self.problems.len()
        )
    }
}

/// Objects read back at once.
const CHECKS: usize = 16;

pub(crate) async fn verify(s: &S3Shipper, dir: &Path) -> Result<RemoteReport, Error> {
    let mut report = RemoteReport::default();
    let logs = logcut_format::log_names(dir)
        .map_err(|e| Error::new("list the logs in", dir.display().to_string(), e))?;
    for log in logs {
        let m = Manifest::read(&dir.join(logcut_format::name::manifest_file(&log)))
            .map_err(|e| Error::new("read the manifest of", dir.display().to_string(), e))?;
        let mut shipped: Vec<_> = m.shipped().into_values().collect();
        shipped.sort_by_key(|x| x.seq);
        let known: BTreeSet<String> = shipped.iter().map(|x| x.key.clone()).collect();
        report.checked += shipped.len() as u64;
        report.bytes += shipped.iter().map(|x| x.bytes).sum::<u64>();
        // Several reads at once (one at a time, 10,000 objects took
        // minutes against a server on loopback); problems in seq order.
        let mut checks = futures_util::stream::iter(shipped.iter())
            .map(|x| check_one(s, &x.key, x.bytes, &x.sha256, x.crc32))
            .buffered(CHECKS);
        while let Some(res) = checks.next().await {
            if let Some(p) = res? {
                report.problems.push(p);
            }
        }
        let prefix = s.log_prefix(dir, &log);
        let under = Key::parse(prefix.trim_end_matches('/'))
            .map_err(|e| Error::new("list", s.object_url(&prefix), e))?;
        let mut list = s.store.list(Some(&under));
        while let Some(item) = list.next().await {
            let meta = item.map_err(|e| Error::new("list", s.object_url(&prefix), e))?;
            let key = meta.location.to_string();
            // Another log's keys may share the prefix (a log named like
            // this one's prefix); only this log's names count.
            let name = key.rsplit('/').next().unwrap_or("");
            let ours = logcut_format::name::split_sealed(
                logcut_format::codec::Codec::split(name).map_or(name, |(b, _)| b),
            )
            .is_some_and(|(l, _)| l == log);
            if ours && !known.contains(&key) {
                report.problems.push(RemoteProblem {
                    kind: RemoteProblemKind::Extra,
                    key,
                    detail: "no ship entry of the manifest names it".into(),
                });
            }
        }
    }
    Ok(report)
}

/// Reads object `key` back and compares it with what was shipped.
async fn check_one(
    s: &S3Shipper,
    key: &str,
    bytes: u64,
    sha256: &str,
    crc32: u32,
) -> Result<Option<RemoteProblem>, Error> {
    let problem = |kind, detail: String| {
        Some(RemoteProblem {
            kind,
            key: key.to_string(),
            detail,
        })
    };
    let obj = match Key::parse(key) {
        Ok(k) => k,
        Err(e) => {
            return Ok(problem(
                RemoteProblemKind::Mismatch,
                format!("not a key: {e}"),
            ));
        }
    };
    let got = match s.store.get(&obj).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Ok(problem(
                RemoteProblemKind::Missing,
                "the manifest says it was shipped; the bucket has no such object".into(),
            ));
        }
        Err(e) => return Err(Error::new("read", s.object_url(key), e)),
    };
    let mut sha = sha2::Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::new("read", s.object_url(key), e))?;
        sha.update(&chunk);
        crc.update(&chunk);
        len += chunk.len() as u64;
    }
    let got_sha: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let got_crc = crc.finalize();
    if (len, got_sha.as_str(), got_crc) != (bytes, sha256, crc32) {
        return Ok(problem(
            RemoteProblemKind::Mismatch,
            format!(
                "holds {len} bytes, SHA-256 {got_sha}, CRC-32 {got_crc:08x}; shipped were {bytes} bytes, {sha256}, {crc32:08x}"
            ),
        ));
    }
    Ok(None)
}
