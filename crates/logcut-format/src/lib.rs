/*!
The on-disk format of [logcut](https://docs.rs/logcut): how a log directory
is laid out, the manifest that records every sealed segment, and the readers
and checks built on them.

This crate has no threads and no policy, so tools that only read logs (the
`logcut verify` and `logcut cat` commands) depend on it and not on the
runtime.

# Layout

See [`name`] for file names, [`manifest`] for the manifest's format,
[`lock`] for the lock file of a running appender and [`codec`] for
compressed segments and [`index`] for the search index of a sealed
segment.
[`verify()`] checks a directory; [`log_names()`] finds the logs in one;
[`segments()`] lists a log's files in order.

# Crate features

| feature | adds | default |
|---|---|---|
| `gzip` | reading (and writing) `.gz` segments, through flate2 (pure Rust) | no |
| `zstd` | reading (and writing) `.zst` segments, through the zstd crate (builds the zstd C library) | no |

Without them, names and manifest entries of compressed segments are still
understood, but their contents cannot be read: [`verify()`] reports such a
segment as unreadable, and [`SegmentFile::open`] fails with
`ErrorKind::Unsupported`.
*/

#![deny(missing_docs)]

pub mod codec;
mod error;
pub mod index;
pub mod last_error;
pub mod lock;
pub mod manifest;
pub mod name;
#[cfg(test)]
mod properties;
mod reader;
pub mod sealing;
mod verify;

pub use crate::{
    error::Error,
    reader::{
        SegmentFile, checksum_file, checksum_reader, digest_reader, hex, log_names, open_nofollow,
        open_segment, read_all, read_chunks, segments,
    },
    verify::{LogSummary, Problem, ProblemKind, Report, verify},
};
