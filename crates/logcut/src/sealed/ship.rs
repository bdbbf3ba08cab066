//! Shipping sealed segments to object storage (feature `ship`): the
//! [`Ship`] trait an uploader implements (the `logcut-ship` crate has one
//! for S3-compatible storage), and what a keeper worker does with it.
//!
//! A segment is shipped once it is sealed, indexed and compressed (as
//! configured): its final file is hashed (SHA-256 and CRC-32), handed to
//! the uploader, and recorded with a `ship` manifest entry (key, entity
//! tag, hashes) once the uploader says it arrived. A failed upload is
//! tried again after the appender's backoff; an upload the process did not
//! record (a crash) is made again at the next start, under the same key.
//! Until a segment is recorded as shipped, no retention limit deletes it:
//! only the free-space floor, which records it as `disk-pressure-unshipped`.

use std::{fmt, io, path::Path};

use jiff::Timestamp;

/// Uploads sealed segments; see [`AppenderBuilder::ship`](crate::AppenderBuilder::ship).
///
/// `ship` runs on a shipping thread of the appender's runtime (a pool of
/// its own, so that a slow server never holds compression up) and may
/// block (for the network); up to 4 segments of one log are shipped at
/// once. It must be idempotent: called again for the
/// same segment (after a crash before the `ship` entry was recorded), it
/// writes the same object under the same key. Its errors are reported to
/// the appender's error handler and counted; they must not carry
/// credentials.
pub trait Ship: Send + Sync + fmt::Debug {
    /// Uploads `segment`; returns where it went once it has arrived
    /// whole.
    fn ship(&self, segment: &ShipSegment<'_>) -> io::Result<Shipped>;
}

/// A segment to upload.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShipSegment<'a> {
    /// The log directory.
    pub dir: &'a Path,
    /// The log's name.
    pub log: &'a str,
    /// The segment's sequence number.
    pub seq: u64,
    /// Its sealed name (`app.<start>.<seq>.log`).
    pub sealed: &'a str,
    /// The file to upload, in `dir`: the compressed file, or the sealed one.
    pub file: &'a str,
    /// When the segment became active.
    pub start: Timestamp,
    /// The file's length.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the file.
    pub crc32: u32,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
}

/// Where an uploaded segment went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped {
    /// The object's key in its bucket (no spaces or control characters:
    /// it is recorded in the manifest).
    pub key: String,
    /// The server's entity tag, if it gave one.
    pub etag: Option<String>,
}

#[cfg(feature = "ship")]
pub(crate) use logcut_format::hex;

/// SHA-256, CRC-32 and length of what `r` yields.
#[cfg(feature = "ship")]
pub(crate) use logcut_format::digest_reader as hash;

/// Whether `key` can be recorded in a manifest: no spaces, control
/// characters or `~`, 1 to 1,024 bytes.
#[cfg_attr(not(feature = "ship"), allow(dead_code))]
pub(crate) fn key_is_recordable(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && !key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_break_a_manifest_line_are_refused() {
        assert!(key_is_recordable("logs/host-1/app/app.2026.000001.log.zst"));
        for bad in ["", "a b", "a\nb", "a~b", "tab\there"] {
            assert!(!key_is_recordable(bad), "{bad:?}");
        }
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }

    #[cfg(feature = "ship")]
    #[test]
    fn hashes_are_those_of_the_bytes() {
        let (sha, crc, len) = hash(&b"abc"[..]).unwrap();
        assert_eq!(
            hex(&sha),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!((crc, len), (crc32fast::hash(b"abc"), 3));
    }
}
