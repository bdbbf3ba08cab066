//! `verify`: checks that a log directory is consistent with its manifests.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt, fs,
    path::{Path, PathBuf},
};

use crate::{
    Error,
    codec::{CODECS, Codec},
    manifest::{DeleteReason, Entry, LineError, Manifest},
    name::{self, SealedName},
    reader::{checksum_file, checksum_reader, log_of, open_segment},
};

/// What kind of inconsistency was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A sealed segment in the manifest is not on disk.
    Missing,
    /// A sealed segment's length differs from the manifest (truncated or
    /// grown after sealing).
    SizeMismatch,
    /// A sealed segment's contents do not match its checksum.
    ChecksumMismatch,
    /// A sealed segment's path is not a regular file (a symlink, a
    /// directory, ...).
    NotRegularFile,
    /// A sealed segment could not be read.
    Unreadable,
    /// The manifest names a file outside this log's naming scheme.
    BadFileName,
    /// Sequence numbers skip a value.
    SequenceGap,
    /// A sequence number appears twice, or goes backwards.
    DuplicateSequence,
    /// Record ranges of consecutive segments leave a gap.
    RecordGap,
    /// Record ranges of consecutive segments overlap.
    RecordOverlap,
    /// A session's accepted records differ from what it sealed plus lost.
    CountMismatch,
    /// The manifest says records were lost.
    RecordsLost,
    /// A file named like a sealed segment is not in the manifest.
    Unrecorded,
    /// The manifest's last line was torn (a crash during an append; the
    /// next start of an appender repairs it).
    TornManifestTail,
    /// A manifest line other than the last fails its checksum or is
    /// malformed.
    CorruptManifestLine,
    /// A compressed segment cannot be decompressed (truncated, altered), or
    /// decompresses to other contents than were sealed.
    BadCompression,
    /// The free-space floor deleted a segment before it was shipped to
    /// object storage (reason `disk-pressure-unshipped`): its records are
    /// lost.
    UnshippedDeleted,
    /// A segment's search index (see [`index`](crate::index)) is missing,
    /// or differs from what its `index` entry records. Searches read the
    /// segment instead, so none is wrong, but the file was altered.
    BadIndex,
    /// A session has no `close` entry, and no writer holds the log: it
    /// crashed (or was killed), and no appender has started since to
    /// recover what it left (which records a `recover` entry).
    UnclosedSession,
}

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The log it belongs to.
    pub log: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The file concerned, if any.
    pub file: Option<String>,
    /// A sentence saying what is wrong.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.log)?;
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        f.write_str(&self.detail)
    }
}

/// A summary of one log in the directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// The log's name.
    pub name: String,
    /// Sealed segments in the manifest and not deleted by a retention
    /// policy.
    pub segments: u64,
    /// Of those, segments stored compressed.
    pub compressed_segments: u64,
    /// Of the sealed segments on disk, those recorded as shipped to object
    /// storage (`ship` entries).
    pub shipped_segments: u64,
    /// Records in sealed segments (not deleted) whose count is known.
    pub records: u64,
    /// Sealed segments whose record count is unknown (adopted after a crash).
    pub segments_unknown_records: u64,
    /// Sealed segments that someone else moved out of the directory while
    /// they were active (their records are counted, their files are not
    /// checked).
    pub segments_moved: u64,
    /// Bytes in sealed segments (not deleted), as written (decompressed).
    pub bytes: u64,
    /// Bytes the sealed segments take on disk (compressed ones at their
    /// compressed size).
    pub disk_bytes: u64,
    /// Sealed segments a retention policy deleted.
    pub deleted_segments: u64,
    /// Records in segments a retention policy deleted (those whose count
    /// is known).
    pub deleted_records: u64,
    /// Records the manifest says were lost.
    pub lost: u64,
    /// Sessions (runs of an appender) seen.
    pub sessions: u64,
    /// Sessions with no `close` entry: still running, or crashed.
    pub open_sessions: u64,
    /// Length of the active segment, if there is one.
    pub active_bytes: Option<u64>,
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The directory checked.
    pub dir: PathBuf,
    /// One summary per log.
    pub logs: Vec<LogSummary>,
    /// Every inconsistency found; empty if the directory is consistent.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Returns true if and only if no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records in sealed segments, over all logs.
    pub fn records(&self) -> u64 {
        self.logs.iter().map(|l| l.records).sum()
    }

    /// Records in segments deleted by a retention policy, over all logs:
    /// written, then removed on purpose (not lost).
    pub fn deleted(&self) -> u64 {
        self.logs.iter().map(|l| l.deleted_records).sum()
    }

    /// Records lost, over all logs.
    pub fn lost(&self) -> u64 {
        self.logs.iter().map(|l| l.lost).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.logs {
            let compressed = if l.compressed_segments > 0 {
                format!(
                    " ({} compressed, {} bytes on disk)",
                    l.compressed_segments, l.disk_bytes
                )
            } else {
                String::new()
            };
            let shipped = if l.shipped_segments > 0 {
                format!(", {} of them shipped", l.shipped_segments)
            } else {
                String::new()
            };
            let deleted = if l.deleted_segments > 0 {
                format!(
                    ", {} segments ({} records) deleted by policy",
                    l.deleted_segments, l.deleted_records
                )
            } else {
                String::new()
            };
            writeln!(
                f,
                "{}: {} sealed segments, {} records, {} bytes{compressed}{shipped}, {} lost{deleted}{}",
                l.name,
                l.segments,
                l.records,
                l.bytes,
                l.lost,
                l.active_bytes
                    .map(|b| format!(", active segment {b} bytes"))
                    .unwrap_or_default()
            )?;
        }
        if self.problems.is_empty() {
            write!(f, "ok: no problems found in {}", self.dir.display())
        } else {
            writeln!(
                f,
                "{} problems in {}:",
                self.problems.len(),
                self.dir.display()
            )?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
            Ok(())
        }
    }
}

/// Checks every log in `dir`: each sealed segment in its manifest is present,
/// has the recorded length and checksum; sequence numbers and record ranges
/// have no gaps or overlaps; each finished session's accepted records equal
/// its sealed records plus its lost ones; no file named like a sealed segment
/// is missing from the manifest. A compressed segment is decompressed and
/// checked against the checksum it was sealed with; a segment a retention
/// policy deleted (a `delete` entry) is not missing, and its records still
/// count in its session's totals.
///
/// Returns `Err` only when the directory or a manifest cannot be read at
/// all; every inconsistency is a [`Problem`] in the report.
pub fn verify(dir: &Path) -> Result<Report, Error> {
    let mut report = Report {
        dir: dir.to_path_buf(),
        ..Report::default()
    };
    let mut names = BTreeSet::new();
    let mut sealed_files: HashMap<String, Vec<String>> = HashMap::new();
    let rd = fs::read_dir(dir).map_err(|e| Error::io("verify", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("verify", dir, e))?;
        let Some(file) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // The same rule as `log_names`.
        match log_of(&file) {
            Some((log, true)) => {
                let log = log.to_string();
                sealed_files.entry(log).or_default().push(file);
            }
            Some((log, false)) => {
                names.insert(log.to_string());
            }
            None => {}
        }
    }
    names.extend(sealed_files.keys().cloned());
    for log in names {
        let files = sealed_files.remove(&log).unwrap_or_default();
        verify_log(dir, &log, files, &mut report)?;
    }
    Ok(report)
}

/// Per session: records sealed, whether some counts are unknown, records
/// lost, and the `close` entry's accepted and lost counts.
type SessionTally = (u64, bool, u64, Option<(u64, u64)>);

fn verify_log(
    dir: &Path,
    log: &str,
    on_disk: Vec<String>,
    report: &mut Report,
) -> Result<(), Error> {
    let mut sum = LogSummary {
        name: log.to_string(),
        ..LogSummary::default()
    };
    let mut problem = |kind, file: Option<&str>, detail: String| {
        report.problems.push(Problem {
            log: log.to_string(),
            kind,
            file: file.map(str::to_string),
            detail,
        });
    };
    let manifest_path = dir.join(name::manifest_file(log));
    let manifest = Manifest::read(&manifest_path)?;
    for bad in &manifest.bad {
        let what = match &bad.error {
            LineError::Checksum => "fails its checksum".to_string(),
            LineError::Malformed(m) => format!("is malformed ({m})"),
        };
        if bad.is_last && bad.error == LineError::Checksum {
            problem(
                ProblemKind::TornManifestTail,
                Some(&name::manifest_file(log)),
                format!(
                    "the last line ({}) is torn: a crash during an append; the next start of the appender repairs it",
                    bad.line
                ),
            );
        } else {
            problem(
                ProblemKind::CorruptManifestLine,
                Some(&name::manifest_file(log)),
                format!("line {} {what}", bad.line),
            );
        }
    }

    let compressed = manifest.compressed();
    let shipped = manifest.shipped();
    let deleted = manifest.deleted();
    // Segments written by several processes (shared mode): their records
    // count for the sessions that wrote them, as each one's `part` says.
    let mut parts: HashMap<u64, u64> = HashMap::new();
    for e in &manifest.entries {
        if let Entry::Part(p) = e {
            let sum = parts.entry(p.seq).or_default();
            *sum = sum.saturating_add(p.records);
        }
    }
    // (seq, file) of every seal, in manifest order. Processes sharing a log
    // seal in the order their writers left, not always in sequence order:
    // the sequence is checked once sorted.
    let mut seqs: Vec<(u64, String)> = Vec::new();
    let mut expected_first: u64 = 0;
    let mut listed = BTreeSet::new();
    let mut sessions: BTreeMap<String, SessionTally> = BTreeMap::new();
    // Sessions in the order they opened (with their pid), and those a
    // later start recovered.
    let mut opened: Vec<(String, u32)> = Vec::new();
    let mut recovered = BTreeSet::new();
    for entry in &manifest.entries {
        match entry {
            Entry::Open(o) => {
                sessions.entry(o.session.clone()).or_default();
                opened.push((o.session.clone(), o.pid));
            }
            Entry::Recover(r) => {
                if let Some(s) = &r.session {
                    recovered.insert(s.clone());
                }
            }
            Entry::Lost(l) => {
                let s = sessions.entry(l.session.clone()).or_default();
                s.2 = s.2.saturating_add(l.records);
                sum.lost = sum.lost.saturating_add(l.records);
                problem(
                    ProblemKind::RecordsLost,
                    None,
                    format!(
                        "session {} lost {} records ({} bytes): {}",
                        l.session, l.records, l.bytes, l.reason
                    ),
                );
            }
            Entry::Close(c) => {
                sessions.entry(c.session.clone()).or_default().3 = Some((c.accepted, c.lost));
            }
            Entry::Part(p) => {
                let s = sessions.entry(p.session.clone()).or_default();
                s.0 = s.0.saturating_add(p.records);
            }
            Entry::Compress(_) | Entry::Delete(_) | Entry::Index(_) | Entry::Ship(_) => {}
            Entry::Seal(s) => {
                let is_deleted = deleted.contains_key(&s.seq);
                // A segment recorded as lost after a crash is not one a
                // policy deleted: its records are in a `lost` entry.
                let by_policy = deleted
                    .get(&s.seq)
                    .is_some_and(|d| d.reason != DeleteReason::Lost);
                if deleted
                    .get(&s.seq)
                    .is_some_and(|d| d.reason == DeleteReason::UnshippedFree)
                {
                    problem(
                        ProblemKind::UnshippedDeleted,
                        Some(s.file.as_str()),
                        format!(
                            "deleted by the free-space floor before it was shipped: {} records exist nowhere now",
                            s.records.map_or("its".to_string(), |r| r.to_string())
                        ),
                    );
                }
                if by_policy {
                    sum.deleted_segments += 1;
                } else if !is_deleted {
                    sum.segments += 1;
                    sum.shipped_segments += u64::from(shipped.contains_key(&s.seq));
                    sum.bytes = sum.bytes.saturating_add(s.bytes);
                }
                // A seal of a shared log has `first=?`; a sequence number
                // whose only parts are empty ones of a segment removed
                // empty may be used again by an exclusive appender.
                let shared = parts.get(&s.seq).copied().filter(|_| s.first.is_none());
                let sess = sessions.entry(s.session.clone()).or_default();
                match s.records {
                    Some(r) => {
                        if by_policy {
                            sum.deleted_records = sum.deleted_records.saturating_add(r);
                        } else if !is_deleted {
                            sum.records = sum.records.saturating_add(r);
                        }
                        // A shared segment's records count for the
                        // sessions of its parts (tallied above).
                        if shared.is_none() {
                            sess.0 = sess.0.saturating_add(r);
                        }
                    }
                    None => {
                        sum.segments_unknown_records += 1;
                        if shared.is_none() {
                            sess.1 = true;
                        }
                    }
                }
                if let (Some(r), Some(p)) = (s.records, shared) {
                    if r != p {
                        problem(
                            ProblemKind::CountMismatch,
                            Some(s.file.as_str()),
                            format!(
                                "sealed with {r} records, but the parts of the processes that wrote it say {p}"
                            ),
                        );
                    }
                }
                let file = Some(s.file.as_str());
                seqs.push((s.seq, s.file.clone()));
                if let (Some(first), Some(records)) = (s.first, s.records) {
                    if first > expected_first {
                        problem(
                            ProblemKind::RecordGap,
                            file,
                            format!("records {expected_first}..{first} belong to no segment"),
                        );
                    } else if first < expected_first {
                        problem(
                            ProblemKind::RecordOverlap,
                            file,
                            format!(
                                "starts at record {first}, but records up to {expected_first} are in earlier segments"
                            ),
                        );
                    }
                    expected_first = first.saturating_add(records);
                }
                if s.file == name::MOVED {
                    sum.segments_moved += 1;
                    continue;
                }
                if SealedName::parse(log, &s.file).is_none() {
                    problem(
                        ProblemKind::BadFileName,
                        file,
                        "is not a sealed segment name of this log; not opened".to_string(),
                    );
                    continue;
                }
                listed.insert(s.file.clone());
                for c in CODECS {
                    listed.insert(c.compressed_name(&s.file));
                }
                if is_deleted {
                    continue;
                }
                let recorded = compressed
                    .get(&s.seq)
                    .filter(|c| Codec::split(&c.file).is_some_and(|(b, _)| b == s.file));
                let disk = match recorded {
                    Some(c) if is_present(&dir.join(&c.file)) => {
                        sum.compressed_segments += 1;
                        let Some(codec) = Codec::split(&c.file).map(|(_, c)| c) else {
                            continue;
                        };
                        check_segment(dir, &c.file, c.bytes, c.crc32, &mut problem).and_then(|n| {
                            check_decompressed(dir, &c.file, codec, s.bytes, s.crc32, &mut problem)
                                .then_some(n)
                        })
                    }
                    _ => {
                        let variant = CODECS
                            .into_iter()
                            .map(|c| (c, c.compressed_name(&s.file)))
                            .find(|(_, f)| is_present(&dir.join(f)));
                        match variant {
                            // Compressed, and the original removed, but the
                            // manifest does not say so yet (a crash between
                            // the two; the next start records it).
                            Some((codec, f)) if !is_present(&dir.join(&s.file)) => {
                                sum.compressed_segments += 1;
                                let n = fs::symlink_metadata(dir.join(&f)).map_or(0, |m| m.len());
                                check_decompressed(dir, &f, codec, s.bytes, s.crc32, &mut problem)
                                    .then_some(n)
                            }
                            _ => check_segment(dir, &s.file, s.bytes, s.crc32, &mut problem),
                        }
                    }
                };
                sum.disk_bytes += disk.unwrap_or(0);
                if let (Some(_), Some(want)) = (disk, &s.sha256) {
                    let recorded = recorded.map(|c| c.file.as_str());
                    check_sha256(dir, &s.file, recorded, want, &mut problem);
                }
            }
        }
    }
    check_indexes(dir, &manifest, &mut problem);
    seqs.sort_by_key(|(seq, _)| *seq);
    let mut prev_seq: Option<u64> = None;
    for (seq, file) in &seqs {
        let file = Some(file.as_str());
        let expected_seq = prev_seq.map_or(1, |p| p.saturating_add(1));
        if *seq > expected_seq {
            problem(
                ProblemKind::SequenceGap,
                file,
                format!(
                    "sequence {seq} follows {}: segments {expected_seq}..{} are not in the manifest",
                    expected_seq - 1,
                    seq - 1
                ),
            );
        } else if *seq < expected_seq {
            problem(
                ProblemKind::DuplicateSequence,
                file,
                format!("sequence {seq} appears twice"),
            );
        }
        prev_seq = Some(*seq);
    }
    let running = writer_holds_lock(dir, log);
    for (session, pid) in &opened {
        let closed = sessions.get(session).is_some_and(|t| t.3.is_some());
        if !closed && !running && !recovered.contains(session) {
            problem(
                ProblemKind::UnclosedSession,
                None,
                format!(
                    "session {session} (pid {pid}) has no close entry and no writer holds the log: it crashed or was killed, and no appender has started since to recover it"
                ),
            );
        }
    }
    for (session, (records, unknown, lost, close)) in &sessions {
        sum.sessions += 1;
        match close {
            None => sum.open_sessions += 1,
            Some((accepted, close_lost)) => {
                if !unknown && (*accepted != records + lost || *close_lost != *lost) {
                    problem(
                        ProblemKind::CountMismatch,
                        None,
                        format!(
                            "session {session} accepted {accepted} records but sealed {records} and lost {lost} (its close entry says {close_lost} lost)"
                        ),
                    );
                }
            }
        }
    }
    let mut unrecorded: Vec<&String> = on_disk.iter().filter(|f| !listed.contains(*f)).collect();
    unrecorded.sort();
    for f in unrecorded {
        problem(
            ProblemKind::Unrecorded,
            Some(f),
            "is named like a sealed segment but is not in the manifest".to_string(),
        );
    }
    if let Ok(md) = fs::symlink_metadata(dir.join(name::active_file(log))) {
        // A second name of the last sealed segment (kept after a shutdown)
        // is that segment, checked above, not an active one.
        let sealed = on_disk
            .iter()
            .rev()
            .filter(|f| Codec::split(f).is_none())
            .map(|f| dir.join(f));
        if md.file_type().is_file() && !crate::reader::is_second_name(&md, sealed) {
            sum.active_bytes = Some(md.len());
        }
    }
    report.logs.push(sum);
    Ok(())
}

/// Checks the index file of every segment still kept against its `index`
/// entry: present, of the recorded length and checksum, and parsing.
fn check_indexes(
    dir: &Path,
    manifest: &Manifest,
    problem: &mut impl FnMut(ProblemKind, Option<&str>, String),
) {
    let deleted = manifest.deleted();
    let seals: HashMap<u64, &str> = manifest.seals().map(|s| (s.seq, s.file.as_str())).collect();
    let mut indexed: Vec<_> = manifest.indexed().into_values().collect();
    indexed.sort_by_key(|i| i.seq);
    for ix in indexed {
        if deleted.contains_key(&ix.seq) {
            continue;
        }
        let file = Some(ix.file.as_str());
        // Only the name the segment's own index has: a manifest edited to
        // name another file never makes this open it.
        if seals.get(&ix.seq).map(|f| crate::index::index_file(f)) != Some(ix.file.clone()) {
            problem(
                ProblemKind::BadFileName,
                file,
                format!("is not the index name of segment {}; not opened", ix.seq),
            );
            continue;
        }
        let bytes = match crate::reader::open_nofollow(&dir.join(&ix.file)).and_then(|mut f| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).map(|_| b)
        }) {
            Ok(b) => b,
            Err(e) => {
                problem(ProblemKind::BadIndex, file, format!("cannot be read: {e}"));
                continue;
            }
        };
        let crc = crc32fast::hash(&bytes);
        if bytes.len() as u64 != ix.bytes || crc != ix.crc32 {
            problem(
                ProblemKind::BadIndex,
                file,
                format!(
                    "holds {} bytes with checksum {crc:08x}, but was written with {} bytes, {:08x}",
                    bytes.len(),
                    ix.bytes,
                    ix.crc32
                ),
            );
        } else if let Err(e) = crate::index::Index::parse(&bytes) {
            problem(ProblemKind::BadIndex, file, format!("is not an index: {e}"));
        }
    }
}

fn is_present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether a writer holds the log's lock file (`<log>.lock`): an exclusive
/// `flock` on it cannot be had at once. The probe's own lock, if it gets
/// one, lasts only until the file closes here (an appender starting in
/// that instant retries its lock). A symlink is not followed.
#[cfg(unix)]
pub(crate) fn writer_holds_lock(dir: &Path, log: &str) -> bool {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let Ok(fd) = rustix::fs::open(
        dir.join(name::lock_file(log)),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) else {
        return false;
    };
    matches!(
        rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

#[cfg(not(unix))]
pub(crate) fn writer_holds_lock(_dir: &Path, _log: &str) -> bool {
    false
}

/// Decompresses `file` and compares its contents with the seal. Returns
/// true if and only if they match.
fn check_decompressed(
    dir: &Path,
    file: &str,
    codec: Codec,
    bytes: u64,
    crc32: u32,
    problem: &mut impl FnMut(ProblemKind, Option<&str>, String),
) -> bool {
    let res = open_segment(&dir.join(file), Some(codec)).and_then(checksum_reader);
    match res {
        Ok((crc, n)) if crc == crc32 && n == bytes => true,
        Ok((crc, n)) => {
            problem(
                ProblemKind::BadCompression,
                Some(file),
                format!(
                    "decompresses to {n} bytes with checksum {crc:08x}, but was sealed as {bytes} bytes with checksum {crc32:08x}"
                ),
            );
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            problem(
                ProblemKind::Unreadable,
                Some(file),
                format!("cannot be decompressed: {e}"),
            );
            false
        }
        Err(e) => {
            problem(
                ProblemKind::BadCompression,
                Some(file),
                format!("cannot be decompressed ({codec}): {e}"),
            );
            false
        }
    }
}

/// Checks the contents of sealed segment `file` (or its compressed file)
/// against the SHA-256 its seal entry records.
fn check_sha256(
    dir: &Path,
    file: &str,
    recorded: Option<&str>,
    want: &str,
    problem: &mut impl FnMut(ProblemKind, Option<&str>, String),
) {
    use sha2::Digest as _;
    let Some((path, codec)) = crate::reader::find_file(dir, file, recorded) else {
        return;
    };
    let mut h = sha2::Sha256::new();
    let read = open_segment(&path, codec).and_then(|r| {
        crate::reader::read_chunks(r, |chunk| {
            h.update(chunk);
            Ok(())
        })
    });
    // Unreadable files were reported by the checks before.
    if read.is_err() {
        return;
    }
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != want {
        problem(
            ProblemKind::ChecksumMismatch,
            Some(file),
            format!("its contents have SHA-256 {got}, but it was sealed with {want}"),
        );
    }
}

/// Checks a file's length and checksum. Returns its length if it matches.
fn check_segment(
    dir: &Path,
    file: &str,
    bytes: u64,
    crc32: u32,
    problem: &mut impl FnMut(ProblemKind, Option<&str>, String),
) -> Option<u64> {
    let path = dir.join(file);
    let md = match fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problem(
                ProblemKind::Missing,
                Some(file),
                "is in the manifest but not on disk".to_string(),
            );
            return None;
        }
        Err(e) => {
            problem(
                ProblemKind::Unreadable,
                Some(file),
                format!("cannot be examined: {e}"),
            );
            return None;
        }
    };
    if !md.file_type().is_file() {
        problem(
            ProblemKind::NotRegularFile,
            Some(file),
            "is not a regular file".to_string(),
        );
        return None;
    }
    if md.len() != bytes {
        let how = if md.len() < bytes {
            "truncated"
        } else {
            "grown"
        };
        problem(
            ProblemKind::SizeMismatch,
            Some(file),
            format!(
                "is {} bytes but was sealed at {bytes} bytes ({how})",
                md.len()
            ),
        );
        return None;
    }
    match checksum_file(&path) {
        Ok((crc, _)) if crc == crc32 => Some(bytes),
        Ok((crc, _)) => {
            problem(
                ProblemKind::ChecksumMismatch,
                Some(file),
                format!(
                    "checksum {crc:08x} differs from the sealed {crc32:08x}: the contents were modified"
                ),
            );
            None
        }
        Err(e) => {
            problem(
                ProblemKind::Unreadable,
                Some(file),
                format!("cannot be read: {e}"),
            );
            None
        }
    }
}
