//! The manifest: an append-only, line-based journal of a log's segments.
//!
//! # Format (version 1)
//!
//! The file `<name>.manifest` is UTF-8 text. The first line is the header
//! `logcut-manifest 1`. Every other line is one entry:
//!
//! ```text
//! <kind> <key>=<value> <key>=<value> ... ~<crc>
//! ```
//!
//! where `<crc>` is the CRC-32 (IEEE) of everything before ` ~`, as 8 lower
//! case hex digits. A line whose checksum does not match, or a last line
//! without its newline, was torn (for example by a crash during the append)
//! and is reported, never trusted. Values never contain spaces. Readers
//! ignore keys they do not know and entry kinds they do not know, so later
//! versions can add both without breaking older readers.
//!
//! | kind | written when | keys |
//! |---|---|---|
//! | `open` | an appender starts | `session`, `pid`, `at` |
//! | `seal` | a segment is sealed | `seq`, `file`, `session`, `start`, `end`, `first`, `records`, `bytes`, `crc32`, `reason`, and `sha256` when computed |
//! | `lost` | records could not be written anywhere | `session`, `records`, `bytes`, `reason` |
//! | `close` | an appender shuts down | `session`, `at`, `accepted`, `lost` |
//! | `compress` | a sealed segment was replaced by its compressed file | `seq`, `file`, `crc32`, `bytes` |
//! | `delete` | a retention policy removed a sealed segment | `seq`, `file`, `reason` |
//! | `part` | a process sharing the log left a segment | `seq`, `session`, `records`, `bytes` |
//! | `recover` | an appender starting alone repaired what a crash left | `at`, `session`, `torn` |
//! | `index` | a sealed segment's search index was written | `seq`, `file`, `crc32`, `bytes` |
//! | `ship` | a sealed segment arrived in object storage | `seq`, `file`, `key`, `etag`, `sha256`, `crc32`, `bytes` |
//! | `sealing` | a sealed manifest's chain begins (see [`sealing`](crate::sealing)) | `id`, `name`, `at`, `interval` |
//! | `epoch` | a sealed manifest's epoch ends (see [`sealing`](crate::sealing)) | `n`, `at` |
//!
//! In a sealed manifest every entry's last key is `mac` (`<epoch>.<64 hex
//! digits>`), before the checksum; [`parse_line`] ignores it, and
//! [`sealing::check`](crate::sealing::check) proves the chain.
//!
//! A segment that someone else moved out of the directory while it was
//! active (logrotate, an operator's `mv`) has `file=-` and `reason=reopen`:
//! its records and checksum are those of the file when it was sealed, but
//! the file is no longer the log's to check.
//!
//! `first` is the index of the segment's first record among all records of
//! the log, and `records` their count: consecutive segments cover
//! consecutive ranges. A segment adopted after a crash has `first=?` and
//! `records=?` (unknown). `accepted` on a `close` line is the number of
//! records the session accepted: it must equal the records of the session's
//! sealed segments plus its lost records.
//!
//! `compress` names the compressed file (`file`, the sealed name plus `.gz`
//! or `.zst`; see [`codec`](crate::codec)) and the CRC-32 and length of
//! the compressed bytes; the segment's own `seal` entry keeps the checksum
//! and length of the decompressed contents. It is written once the
//! compressed file is durable under its final name, before the original is
//! removed. `delete` says that a retention policy removed the segment
//! (`reason`: `count`, `age`, `bytes`, `free`, or, for a router's budget
//! across its logs, `root-bytes` and `root-free`); it is written before the files
//! are removed, so a deleted segment is never mistaken for a missing one,
//! and its records still count in its session's totals. Both kinds were
//! added in version 1 of the format; older readers ignore them.
//!
//! `index` names the search index of a segment (`file`, the sealed name
//! plus `.idx`; see [`index`](crate::index)) and the CRC-32 and length of
//! the index file. It is written once the file is durable; older readers
//! ignore it.
//!
//! `ship` says that `file` (the segment's compressed file, or the sealed
//! file) was uploaded to object storage under `key` (the object's key,
//! without the bucket), with the server's `etag` (`-` if none), and the
//! SHA-256 (64 hex digits), CRC-32 and length of what was uploaded. A
//! segment with no `ship` entry in a log that ships was not shipped: no
//! retention limit deletes it, only the free-space floor, with reason
//! `disk-pressure-unshipped`, which [`verify`](crate::verify()) reports.
//!
//! `recover` records a repair made at start: `session` names a session
//! that ended without its `close` entry (a crash; `-` if none did), and
//! `torn` the bytes of a torn last line that were cut off (`0` if none).
//! A session with neither a `close` nor a `recover` entry is running, or
//! crashed and not yet recovered: [`verify`](crate::verify) reports it
//! unless a writer holds the log's lock. A torn line is cut off only if it
//! is the last one and really torn (no newline, or a checksum that fails);
//! a whole last line with a valid checksum that does not parse is
//! reported, never cut off.

use std::{fmt::Write as _, fs, io, path::Path};

use jiff::Timestamp;

use crate::Error;

/// The manifest format version this crate writes.
pub const VERSION: u32 = 1;

/// The header line, without its newline.
pub const HEADER: &str = "logcut-manifest 1";

/// Why a segment was sealed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealReason {
    /// It reached the size limit.
    Size,
    /// A time boundary passed.
    Time,
    /// `rotate()` was called, or an external trigger fired.
    Manual,
    /// The appender shut down.
    Shutdown,
    /// It was left behind by a crashed run and adopted at start-up.
    Recovery,
    /// Someone else renamed or removed the active file (logrotate, an
    /// operator's `mv`); the appender continued in a new file. The
    /// segment's `file` is [`MOVED`](crate::name::MOVED).
    Reopen,
    /// A reason written by a newer version.
    Other(String),
}

impl SealReason {
    /// The token written in the manifest.
    pub fn as_str(&self) -> &str {
        match self {
            SealReason::Size => "size",
            SealReason::Time => "time",
            SealReason::Manual => "manual",
            SealReason::Shutdown => "shutdown",
            SealReason::Recovery => "recovery",
            SealReason::Reopen => "reopen",
            SealReason::Other(s) => s,
        }
    }

    fn parse(s: &str) -> SealReason {
        match s {
            "size" => SealReason::Size,
            "time" => SealReason::Time,
            "manual" => SealReason::Manual,
            "shutdown" => SealReason::Shutdown,
            "recovery" => SealReason::Recovery,
            "reopen" => SealReason::Reopen,
            other => SealReason::Other(other.to_string()),
        }
    }
}

/// A sealed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// Sequence number, unique within the log, increasing by one.
    pub seq: u64,
    /// The sealed file's name in the log directory.
    pub file: String,
    /// The session that sealed it.
    pub session: String,
    /// When it became active.
    pub start: Timestamp,
    /// When it was sealed.
    pub end: Timestamp,
    /// Index of its first record in the log; `None` if unknown.
    pub first: Option<u64>,
    /// How many records it holds; `None` if unknown (adopted after a crash).
    pub records: Option<u64>,
    /// Its length in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE) of its contents.
    pub crc32: u32,
    /// Why it was sealed.
    pub reason: SealReason,
    /// SHA-256 of its contents (64 hex digits), when the appender computes
    /// it (a log that ships its segments does); [`verify`](crate::verify())
    /// checks it.
    pub sha256: Option<String>,
}

/// Records that could not be written anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The session that lost them.
    pub session: String,
    /// How many records.
    pub records: u64,
    /// How many bytes.
    pub bytes: u64,
    /// Why, as a short token (for example `shutdown-timeout`).
    pub reason: String,
}

/// An appender started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// A random identifier of this run of the appender.
    pub session: String,
    /// The process id.
    pub pid: u32,
    /// When it started.
    pub at: Timestamp,
}

/// An appender shut down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// The session.
    pub session: String,
    /// When.
    pub at: Timestamp,
    /// Records the session accepted from its callers.
    pub accepted: u64,
    /// Records it lost (also listed in `lost` entries).
    pub lost: u64,
}

/// An appender starting alone repaired what a crash left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recover {
    /// When.
    pub at: Timestamp,
    /// The session that ended without a `close` entry, if any.
    pub session: Option<String>,
    /// Bytes of a torn last line that were cut off (0 if none).
    pub torn: u64,
}

/// A sealed segment was replaced by its compressed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compress {
    /// The segment's sequence number.
    pub seq: u64,
    /// The compressed file's name in the log directory.
    pub file: String,
    /// CRC-32 (IEEE) of the compressed file.
    pub crc32: u32,
    /// The compressed file's length in bytes.
    pub bytes: u64,
}

/// A sealed segment's search index was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// The segment's sequence number.
    pub seq: u64,
    /// The index file's name in the log directory.
    pub file: String,
    /// CRC-32 (IEEE) of the index file.
    pub crc32: u32,
    /// The index file's length in bytes.
    pub bytes: u64,
}

/// A sealed segment arrived in object storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped {
    /// The segment's sequence number.
    pub seq: u64,
    /// The file uploaded (compressed, or the sealed file).
    pub file: String,
    /// The object's key in its bucket.
    pub key: String,
    /// The server's entity tag, if it gave one.
    pub etag: Option<String>,
    /// SHA-256 of what was uploaded, as 64 lower case hex digits.
    pub sha256: String,
    /// CRC-32 (IEEE) of what was uploaded.
    pub crc32: u32,
    /// Its length in bytes.
    pub bytes: u64,
}

/// Why a retention policy deleted a sealed segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeleteReason {
    /// More sealed segments than the count limit.
    Count,
    /// The segment ended longer ago than the age limit.
    Age,
    /// The sealed segments took more bytes than the size limit.
    Bytes,
    /// The file system had less free space than the floor (`min_free`).
    Free,
    /// The logs under a router's root took more than its budget
    /// (`root_max_total`); the oldest segments of its lowest-priority
    /// group went first.
    RootBytes,
    /// The file system holding a router's root had less free space than
    /// its floor (`root_min_free`).
    RootFree,
    /// The free-space floor deleted a segment that had not been shipped
    /// to object storage yet: its records are nowhere now.
    UnshippedFree,
    /// Not a retention: after a crash, the segment was gone or shorter
    /// than its seal says (a power loss before its data or its name was
    /// synced, as [`Fsync::Never`](https://docs.rs/logcut) allows). What is
    /// left of it, if anything, was adopted as a new segment; a `lost`
    /// entry counts the rest.
    Lost,
    /// A reason written by a newer version.
    Other(String),
}

impl DeleteReason {
    /// The token written in the manifest.
    pub fn as_str(&self) -> &str {
        match self {
            DeleteReason::Count => "count",
            DeleteReason::Age => "age",
            DeleteReason::Bytes => "bytes",
            DeleteReason::Free => "free",
            DeleteReason::RootBytes => "root-bytes",
            DeleteReason::RootFree => "root-free",
            DeleteReason::UnshippedFree => "disk-pressure-unshipped",
            DeleteReason::Lost => "lost",
            DeleteReason::Other(s) => s,
        }
    }

    fn parse(s: &str) -> DeleteReason {
        match s {
            "count" => DeleteReason::Count,
            "age" => DeleteReason::Age,
            "bytes" => DeleteReason::Bytes,
            "free" => DeleteReason::Free,
            "root-bytes" => DeleteReason::RootBytes,
            "root-free" => DeleteReason::RootFree,
            "disk-pressure-unshipped" => DeleteReason::UnshippedFree,
            "lost" => DeleteReason::Lost,
            other => DeleteReason::Other(other.to_string()),
        }
    }
}

/// A retention policy removed a sealed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// The segment's sequence number.
    pub seq: u64,
    /// The sealed file's name (as in its `seal` entry).
    pub file: String,
    /// Which limit it exceeded.
    pub reason: DeleteReason,
}

/// A process sharing the log left a segment: what it wrote there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The segment's sequence number.
    pub seq: u64,
    /// The session that wrote the records.
    pub session: String,
    /// How many records it wrote in the segment.
    pub records: u64,
    /// How many bytes.
    pub bytes: u64,
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// See [`Open`].
    Open(Open),
    /// See [`Seal`].
    Seal(Seal),
    /// See [`Lost`].
    Lost(Lost),
    /// See [`Close`].
    Close(Close),
    /// See [`Compress`].
    Compress(Compress),
    /// See [`Delete`].
    Delete(Delete),
    /// See [`Part`].
    Part(Part),
    /// See [`Recover`].
    Recover(Recover),
    /// See [`Indexed`].
    Index(Indexed),
    /// See [`Shipped`].
    Ship(Shipped),
}

impl Entry {
    /// Encodes the entry as one line, newline included.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(256);
        match self {
            Entry::Open(o) => {
                let _ = write!(
                    s,
                    "open session={} pid={} at={}",
                    o.session,
                    o.pid,
                    o.at.as_millisecond()
                );
            }
            Entry::Seal(e) => {
                let _ = write!(
                    s,
                    "seal seq={} file={} session={} start={} end={} first={} records={} bytes={} crc32={:08x} reason={}",
                    e.seq,
                    e.file,
                    e.session,
                    e.start.as_millisecond(),
                    e.end.as_millisecond(),
                    opt(e.first),
                    opt(e.records),
                    e.bytes,
                    e.crc32,
                    e.reason.as_str()
                );
                if let Some(h) = &e.sha256 {
                    let _ = write!(s, " sha256={h}");
                }
            }
            Entry::Lost(l) => {
                let _ = write!(
                    s,
                    "lost session={} records={} bytes={} reason={}",
                    l.session, l.records, l.bytes, l.reason
                );
            }
            Entry::Close(c) => {
                let _ = write!(
                    s,
                    "close session={} at={} accepted={} lost={}",
                    c.session,
                    c.at.as_millisecond(),
                    c.accepted,
                    c.lost
                );
            }
            Entry::Compress(c) => {
                let _ = write!(
                    s,
                    "compress seq={} file={} crc32={:08x} bytes={}",
                    c.seq, c.file, c.crc32, c.bytes
                );
            }
            Entry::Ship(c) => {
                let _ = write!(
                    s,
                    "ship seq={} file={} key={} etag={} sha256={} crc32={:08x} bytes={}",
                    c.seq,
                    c.file,
                    c.key,
                    c.etag.as_deref().unwrap_or("-"),
                    c.sha256,
                    c.crc32,
                    c.bytes
                );
            }
            Entry::Index(c) => {
                let _ = write!(
                    s,
                    "index seq={} file={} crc32={:08x} bytes={}",
                    c.seq, c.file, c.crc32, c.bytes
                );
            }
            Entry::Delete(d) => {
                let _ = write!(
                    s,
                    "delete seq={} file={} reason={}",
                    d.seq,
                    d.file,
                    d.reason.as_str()
                );
            }
            Entry::Part(p) => {
                let _ = write!(
                    s,
                    "part seq={} session={} records={} bytes={}",
                    p.seq, p.session, p.records, p.bytes
                );
            }
            Entry::Recover(r) => {
                let _ = write!(
                    s,
                    "recover at={} session={} torn={}",
                    r.at.as_millisecond(),
                    r.session.as_deref().unwrap_or("-"),
                    r.torn
                );
            }
        }
        let crc = crc32fast::hash(s.as_bytes());
        let _ = writeln!(s, " ~{crc:08x}");
        s
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// What was wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The checksum did not match or was missing: the line was torn or
    /// altered.
    Checksum,
    /// The checksum matched but a field was missing or malformed.
    Malformed(String),
}

/// Parses one line (without its newline). `Ok(None)` for an entry kind this
/// version does not know.
pub fn parse_line(line: &str) -> Result<Option<Entry>, LineError> {
    let (body, crc) = line.rsplit_once(" ~").ok_or(LineError::Checksum)?;
    if crc.len() != 8 {
        return Err(LineError::Checksum);
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|_| LineError::Checksum)?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err(LineError::Checksum);
    }
    let mut words = body.split(' ');
    let kind = words.next().unwrap_or_default();
    let fields: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
    let get = |k: &str| -> Result<&str, LineError> {
        fields
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .ok_or_else(|| LineError::Malformed(format!("{kind} entry without {k}")))
    };
    let num = |k: &str| -> Result<u64, LineError> {
        get(k)?
            .parse()
            .map_err(|_| LineError::Malformed(format!("{k} is not a number")))
    };
    let opt_num = |k: &str| -> Result<Option<u64>, LineError> {
        match get(k)? {
            "?" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| LineError::Malformed(format!("{k} is not a number"))),
        }
    };
    let ts = |k: &str| -> Result<Timestamp, LineError> {
        let ms: i64 = get(k)?
            .parse()
            .map_err(|_| LineError::Malformed(format!("{k} is not a time")))?;
        Timestamp::from_millisecond(ms)
            .map_err(|_| LineError::Malformed(format!("{k} is out of range")))
    };
    let entry = match kind {
        "open" => Entry::Open(Open {
            session: get("session")?.to_string(),
            pid: u32::try_from(num("pid")?)
                .map_err(|_| LineError::Malformed("pid out of range".into()))?,
            at: ts("at")?,
        }),
        "seal" => Entry::Seal(Seal {
            seq: num("seq")?,
            file: get("file")?.to_string(),
            session: get("session")?.to_string(),
            start: ts("start")?,
            end: ts("end")?,
            first: opt_num("first")?,
            records: opt_num("records")?,
            bytes: num("bytes")?,
            crc32: u32::from_str_radix(get("crc32")?, 16)
                .map_err(|_| LineError::Malformed("crc32 is not hex".into()))?,
            reason: SealReason::parse(get("reason")?),
            sha256: fields
                .iter()
                .find(|(k, _)| *k == "sha256")
                .map(|(_, v)| v.to_string()),
        }),
        "lost" => Entry::Lost(Lost {
            session: get("session")?.to_string(),
            records: num("records")?,
            bytes: num("bytes")?,
            reason: get("reason")?.to_string(),
        }),
        "close" => Entry::Close(Close {
            session: get("session")?.to_string(),
            at: ts("at")?,
            accepted: num("accepted")?,
            lost: num("lost")?,
        }),
        "compress" => Entry::Compress(Compress {
            seq: num("seq")?,
            file: get("file")?.to_string(),
            crc32: u32::from_str_radix(get("crc32")?, 16)
                .map_err(|_| LineError::Malformed("crc32 is not hex".into()))?,
            bytes: num("bytes")?,
        }),
        "ship" => Entry::Ship(Shipped {
            seq: num("seq")?,
            file: get("file")?.to_string(),
            key: get("key")?.to_string(),
            etag: Some(get("etag")?).filter(|e| *e != "-").map(str::to_string),
            sha256: get("sha256")?.to_string(),
            crc32: u32::from_str_radix(get("crc32")?, 16)
                .map_err(|_| LineError::Malformed("crc32 is not hex".into()))?,
            bytes: num("bytes")?,
        }),
        "index" => Entry::Index(Indexed {
            seq: num("seq")?,
            file: get("file")?.to_string(),
            crc32: u32::from_str_radix(get("crc32")?, 16)
                .map_err(|_| LineError::Malformed("crc32 is not hex".into()))?,
            bytes: num("bytes")?,
        }),
        "delete" => Entry::Delete(Delete {
            seq: num("seq")?,
            file: get("file")?.to_string(),
            reason: DeleteReason::parse(get("reason")?),
        }),
        "part" => Entry::Part(Part {
            seq: num("seq")?,
            session: get("session")?.to_string(),
            records: num("records")?,
            bytes: num("bytes")?,
        }),
        "recover" => Entry::Recover(Recover {
            at: ts("at")?,
            session: Some(get("session")?)
                .filter(|s| *s != "-")
                .map(str::to_string),
            torn: num("torn")?,
        }),
        _ => return Ok(None),
    };
    Ok(Some(entry))
}

/// A line that could not be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// Whether it is the last line (a torn tail is expected after a crash
    /// and repaired at the next start).
    pub is_last: bool,
    /// What is wrong.
    pub error: LineError,
}

/// A parsed manifest.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// The entries, in file order.
    pub entries: Vec<Entry>,
    /// Lines that could not be trusted.
    pub bad: Vec<BadLine>,
    /// Length in bytes of the longest prefix that holds only whole, valid
    /// lines (where a repair truncates a torn tail).
    pub valid_len: u64,
}

impl Manifest {
    /// Parses manifest text. Fails only if the header is wrong.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Manifest, Error> {
        let mut m = Manifest::default();
        if text.is_empty() {
            return Ok(m);
        }
        let mut offset = 0u64;
        let mut lines = text.split_inclusive(|b| *b == b'\n').enumerate().peekable();
        while let Some((i, raw)) = lines.next() {
            let is_last = lines.peek().is_none();
            let start = offset;
            offset += raw.len() as u64;
            let complete = raw.ends_with(b"\n");
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            if i == 0 {
                if complete && line == HEADER.as_bytes() {
                    m.valid_len = offset;
                    continue;
                }
                if !complete && HEADER.as_bytes().starts_with(line) {
                    // Torn while the header itself was written.
                    m.bad.push(BadLine {
                        line: 1,
                        offset: 0,
                        is_last,
                        error: LineError::Checksum,
                    });
                    continue;
                }
                return Err(Error::parse(
                    "read manifest",
                    path,
                    format!(
                        "the first line is not {HEADER:?}: not a logcut manifest, or a version this logcut does not read"
                    ),
                ));
            }
            let parsed = match std::str::from_utf8(line) {
                Ok(s) if complete => parse_line(s),
                Ok(_) => Err(LineError::Checksum),
                Err(_) => Err(LineError::Checksum),
            };
            match parsed {
                Ok(Some(e)) => m.entries.push(e),
                Ok(None) => {}
                Err(error) => {
                    m.bad.push(BadLine {
                        line: i + 1,
                        offset: start,
                        is_last,
                        error,
                    });
                    continue;
                }
            }
            if m.bad.is_empty() {
                m.valid_len = offset;
            }
        }
        Ok(m)
    }

    /// Reads and parses the manifest at `path`. A missing file is an empty
    /// manifest.
    pub fn read(path: &Path) -> Result<Manifest, Error> {
        match fs::read(path) {
            Ok(text) => Manifest::parse(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(Error::io("read manifest", path, e)),
        }
    }

    /// The sealed segments, in file order.
    pub fn seals(&self) -> impl Iterator<Item = &Seal> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Seal(s) => Some(s),
            _ => None,
        })
    }

    /// The latest `compress` entry of each segment, by sequence number.
    pub fn compressed(&self) -> std::collections::HashMap<u64, &Compress> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Compress(c) => Some((c.seq, c)),
                _ => None,
            })
            .collect()
    }

    /// The latest `ship` entry of each segment, by sequence number.
    pub fn shipped(&self) -> std::collections::HashMap<u64, &Shipped> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Ship(c) => Some((c.seq, c)),
                _ => None,
            })
            .collect()
    }

    /// The latest `index` entry of each segment, by sequence number.
    pub fn indexed(&self) -> std::collections::HashMap<u64, &Indexed> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Index(c) => Some((c.seq, c)),
                _ => None,
            })
            .collect()
    }

    /// The `delete` entry of each segment removed by a retention policy,
    /// by sequence number.
    pub fn deleted(&self) -> std::collections::HashMap<u64, &Delete> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Delete(d) => Some((d.seq, d)),
                _ => None,
            })
            .collect()
    }

    /// Returns true if and only if the only bad line is a torn last line:
    /// the last one, without its newline or failing its checksum. A whole
    /// line with a valid checksum that does not parse was not torn by a
    /// crash: it is evidence, never repaired.
    pub fn has_only_torn_tail(&self) -> bool {
        self.bad.len() == 1 && self.bad[0].is_last && self.bad[0].error == LineError::Checksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(seq: u64) -> Entry {
        Entry::Seal(Seal {
            seq,
            file: format!("app.x.{seq:06}.log"),
            session: "abc".into(),
            start: Timestamp::from_millisecond(1_000).unwrap(),
            end: Timestamp::from_millisecond(2_000).unwrap(),
            first: Some(10),
            records: None,
            bytes: 99,
            crc32: 0xdead_beef,
            reason: SealReason::Size,
            sha256: (seq % 2 == 0).then(|| "ab".repeat(32)),
        })
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            Entry::Open(Open {
                session: "abc".into(),
                pid: 7,
                at: Timestamp::from_millisecond(5).unwrap(),
            }),
            seal(1),
            // With its SHA-256.
            seal(2),
            Entry::Lost(Lost {
                session: "abc".into(),
                records: 3,
                bytes: 30,
                reason: "shutdown-timeout".into(),
            }),
            Entry::Close(Close {
                session: "abc".into(),
                at: Timestamp::from_millisecond(9).unwrap(),
                accepted: 4,
                lost: 3,
            }),
            Entry::Compress(Compress {
                seq: 1,
                file: "app.x.000001.log.zst".into(),
                crc32: 0x0102_0304,
                bytes: 12,
            }),
            Entry::Index(Indexed {
                seq: 1,
                file: "app.x.000001.log.idx".into(),
                crc32: 0x0a0b_0c0d,
                bytes: 80,
            }),
            Entry::Ship(Shipped {
                seq: 1,
                file: "app.x.000001.log.zst".into(),
                key: "logs/host/app/app.x.000001.log.zst".into(),
                etag: Some("\"abc\"".into()),
                sha256: "00".repeat(32),
                crc32: 7,
                bytes: 12,
            }),
            Entry::Ship(Shipped {
                seq: 2,
                file: "app.x.000002.log".into(),
                key: "k".into(),
                etag: None,
                sha256: "ff".repeat(32),
                crc32: 0,
                bytes: 0,
            }),
            Entry::Delete(Delete {
                seq: 1,
                file: "app.x.000001.log".into(),
                reason: DeleteReason::Age,
            }),
        ];
        for e in &entries {
            let line = e.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(parse_line(line.trim_end()).unwrap().as_ref(), Some(e));
        }
    }

    #[test]
    fn altered_line_fails_checksum() {
        let line = seal(1).encode().replace("bytes=99", "bytes=98");
        assert_eq!(parse_line(line.trim_end()), Err(LineError::Checksum));
    }

    #[test]
    fn unknown_kind_and_keys_are_ignored() {
        let body = "future thing=1";
        let line = format!("{body} ~{:08x}", crc32fast::hash(body.as_bytes()));
        assert_eq!(parse_line(&line), Ok(None));
        let body = "lost session=a records=1 bytes=2 reason=x newkey=5";
        let line = format!("{body} ~{:08x}", crc32fast::hash(body.as_bytes()));
        assert!(matches!(parse_line(&line), Ok(Some(Entry::Lost(_)))));
    }

    #[test]
    fn torn_tail_is_detected_and_valid_len_excludes_it() {
        let mut text = format!("{HEADER}\n");
        text.push_str(&seal(1).encode());
        let good = text.len() as u64;
        let second = seal(2).encode();
        text.push_str(&second[..second.len() / 2]);
        let m = Manifest::parse(Path::new("m"), text.as_bytes()).unwrap();
        assert_eq!(m.seals().count(), 1);
        assert!(m.has_only_torn_tail());
        assert_eq!(m.valid_len, good);
    }

    #[test]
    fn a_whole_malformed_last_line_is_not_a_torn_tail() {
        let mut text = format!("{HEADER}\n");
        text.push_str(&seal(1).encode());
        let body = "seal seq=x";
        text.push_str(&format!(
            "{body} ~{:08x}\n",
            crc32fast::hash(body.as_bytes())
        ));
        let m = Manifest::parse(Path::new("m"), text.as_bytes()).unwrap();
        assert!(matches!(m.bad[0].error, LineError::Malformed(_)));
        assert!(m.bad[0].is_last);
        assert!(!m.has_only_torn_tail());
        // A checksum that fails on the last line, newline or not, is torn.
        let mut torn = format!("{HEADER}\n");
        torn.push_str(&seal(1).encode().replace("bytes=99", "bytes=98"));
        assert!(
            Manifest::parse(Path::new("m"), torn.as_bytes())
                .unwrap()
                .has_only_torn_tail()
        );
    }

    #[test]
    fn recover_round_trips() {
        for session in [Some("abc".to_string()), None] {
            let e = Entry::Recover(Recover {
                at: Timestamp::from_millisecond(5).unwrap(),
                session,
                torn: 13,
            });
            assert_eq!(parse_line(e.encode().trim_end()), Ok(Some(e)));
        }
    }

    #[test]
    fn wrong_header_is_an_error() {
        let err = Manifest::parse(Path::new("m"), b"hello\n").unwrap_err();
        assert!(err.is_corrupt());
    }
}
