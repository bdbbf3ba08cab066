//! Start-up recovery: what a crashed run left in the directory becomes
//! sealed segments again, so that `verify` accepts the directory.
//!
//! Handled here (see the crate docs' Guarantees):
//! - a torn last manifest line is cut off (in [`Journal::open`](crate::seal::journal::Journal::open));
//! - a non-empty active file (`app.log`) or prepared next file
//!   (`app.log.next.<seq>`) is sealed with reason `recovery` and an unknown record
//!   count; empty ones are removed;
//! - files named like sealed segments but missing from the manifest (a
//!   crash between the rename and the manifest append) are recorded the
//!   same way; a second name of the same file is removed;
//! - a symlink at the active or next path is removed, never followed;
//! - compression and retention cut short (see `compress.rs`): a `.tmp`
//!   compressed file is removed; a compressed file the manifest records
//!   whose original is still there: the original is removed; a compressed
//!   file the manifest does not record is decompressed and checked against
//!   the seal, then recorded (and the original removed), or removed if it
//!   does not match and the original is still there; files of a segment
//!   recorded as deleted are removed.

use jiff::Timestamp;
use logcut_format::{
    codec::{CODECS, Codec},
    manifest::{Compress, Delete, DeleteReason, Entry, Lost, Manifest, Recover, Seal, SealReason},
    name::{self, SealedName},
};

use crate::{
    Error,
    seal::journal::Journal,
    sealed::keeper::{self, Sealed},
    sys::{Dir, FileInfo},
};

/// Where numbering continues after recovery.
#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) next_seq: u64,
    pub(crate) next_first: u64,
    /// Problems worth reporting to the error handler (not fatal).
    pub(crate) notes: Vec<Error>,
    /// The sealed segments on disk, oldest first, for compression and
    /// retention.
    pub(crate) sealed: Vec<Sealed>,
}

/// What a shared log's cut file says, for recovery: the sequence number
/// of the active file (the one the cut file names, or the one before it if
/// a cut was interrupted before its new segment took the active path).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SharedHint {
    /// The sequence number of the file at the active path, if known.
    pub(crate) active_seq: Option<u64>,
}

/// The `recover` entries for what a start alone repairs: one for each
/// session that ended without its `close` entry (and no `recover` entry
/// yet), and the bytes of a torn last line cut off (`torn`, on the first,
/// or on an entry of its own). So the manifest keeps the evidence of every
/// crash and repair, and `verify` stops reporting the crashed sessions.
pub(crate) fn recover_entries(manifest: &Manifest, torn: u64, now: Timestamp) -> Vec<Entry> {
    let mut unclosed: Vec<&str> = Vec::new();
    for e in &manifest.entries {
        match e {
            Entry::Open(o) => unclosed.push(&o.session),
            Entry::Close(c) => unclosed.retain(|s| *s != c.session),
            Entry::Recover(Recover {
                session: Some(r), ..
            }) => unclosed.retain(|s| s != r),
            _ => {}
        }
    }
    let mut out: Vec<Entry> = unclosed
        .iter()
        .map(|s| {
            Entry::Recover(Recover {
                at: now,
                session: Some(s.to_string()),
                torn: 0,
            })
        })
        .collect();
    if torn > 0 {
        match out.first_mut() {
            Some(Entry::Recover(r)) => r.torn = torn,
            _ => out.push(Entry::Recover(Recover {
                at: now,
                session: None,
                torn,
            })),
        }
    }
    out
}

/// Recovers log `log` in `dir`: finishes compressions and deletions cut
/// short, records sealed segments missing from the manifest and the
/// files a crash left at the active and next paths, and says where
/// numbering continues.
pub(crate) fn recover(
    dir: &Dir,
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    now: Timestamp,
    shared: Option<SharedHint>,
) -> Result<Resume, Error> {
    let mut numbers = Numbering::of(manifest);
    let session = crashed_session(manifest);
    let mut notes = Vec::new();
    // The directory is listed once (a listing costs as much as the
    // directory is large: many logs may share it).
    let mut names = list(dir, log)?;
    finish_compression(dir, log, journal, manifest, &names, &mut notes)?;
    // Also after a clean close: with `Fsync::Never` the close entry can
    // reach the disk before the segments do. What is left of a segment cut
    // short is moved to a prepared file's name (added to `names`), adopted
    // below.
    let manifest_now = Manifest::read(journal.path())?;
    check_sealed(
        dir,
        log,
        journal,
        &manifest_now,
        &session,
        &mut names,
        &mut notes,
    )?;
    let mut found = Found::default();
    found.orphans(dir, log, &names, &numbers.listed)?;
    found.tail(dir, log, &names, &mut notes)?;
    for (file, info, parsed) in found.candidates {
        let seq = numbers.adopt(log, &file, parsed.as_ref(), shared);
        let adopted = Adopted {
            file,
            info,
            parsed,
            seq,
        };
        adopted.record(dir, log, journal, &session, now, &mut notes)?;
    }
    record_vanished(
        log,
        journal,
        manifest,
        &numbers.used,
        numbers.last_seq,
        &session,
        now,
        &mut notes,
    )?;
    dir.sync()
        .map_err(|e| Error::io("recover", dir.path(), e))?;
    // What is on disk now, with this run's recovery entries.
    let manifest = Manifest::read(journal.path())?;
    Ok(Resume {
        next_seq: numbers.last_seq.saturating_add(1),
        next_first: numbers.next_first,
        notes,
        sealed: keeper::sealed_from(dir, log, &manifest),
    })
}

/// The names in `dir` that may belong to log `log` (every file of a log
/// starts with `<log>.`), read once.
fn list(dir: &Dir, log: &str) -> Result<Vec<String>, Error> {
    let list_err = |e| Error::io("recover", dir.path(), e);
    let prefix = format!("{log}.");
    let mut names = Vec::new();
    for ent in std::fs::read_dir(dir.path()).map_err(list_err)? {
        let ent = ent.map_err(list_err)?;
        let raw = ent.file_name();
        if !raw.as_encoded_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        if let Some(f) = raw.to_str() {
            names.push(f.to_string());
        }
    }
    Ok(names)
}

/// The session that crashed, if the manifest shows one.
fn crashed_session(manifest: &Manifest) -> String {
    let mut open_sessions: Vec<String> = Vec::new();
    for e in &manifest.entries {
        match e {
            Entry::Open(o) => open_sessions.push(o.session.clone()),
            Entry::Close(c) => open_sessions.retain(|s| *s != c.session),
            _ => {}
        }
    }
    open_sessions.pop().unwrap_or_else(|| "unknown".to_string())
}

/// What the manifest says of the sequence: the last number, the first
/// record number after the last counted seal, the files and numbers
/// recorded.
struct Numbering {
    last_seq: u64,
    next_first: u64,
    listed: std::collections::HashSet<String>,
    used: std::collections::HashSet<u64>,
}

impl Numbering {
    fn of(manifest: &Manifest) -> Numbering {
        // Sequence numbers stay gap-free in the manifest: a number handed
        // out in shared mode (the cut file's) whose segment left nothing
        // (removed empty, or its name lost with the power) is used again,
        // unless a `part` entry names it. Adopted segments are numbered
        // after the last recorded one, never beyond (a power cut can keep
        // a prepared file's data and lose the rename that made it active,
        // and the active segment before it).
        let mut last_seq = manifest
            .entries
            .iter()
            .filter_map(|e| match e {
                // An empty part names a segment that was removed empty: its
                // number is free again.
                Entry::Part(p) if p.records > 0 || p.bytes > 0 => Some(p.seq),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut next_first = 0;
        let mut listed = std::collections::HashSet::new();
        let mut used = std::collections::HashSet::new();
        for s in manifest.seals() {
            used.insert(s.seq);
            last_seq = last_seq.max(s.seq);
            if let (Some(f), Some(r)) = (s.first, s.records) {
                next_first = f.saturating_add(r);
            }
            listed.insert(s.file.clone());
        }
        Numbering {
            last_seq,
            next_first,
            listed,
            used,
        }
    }

    /// The number an adopted file gets. It keeps the one it was given if
    /// no seal has it: in shared mode a process killed before it sealed a
    /// segment it cut leaves it behind while the others go on (the `part`
    /// entries name it by that number).
    fn adopt(
        &mut self,
        log: &str,
        file: &str,
        parsed: Option<&SealedName>,
        shared: Option<SharedHint>,
    ) -> u64 {
        let own = match parsed {
            Some(p) => Some(p.seq),
            None if file == name::active_file(log) => shared.and_then(|h| h.active_seq),
            None => name::parse_prepared(log, file),
        };
        let seq = match own {
            Some(n) if n > 0 && !self.used.contains(&n) && n <= self.last_seq.saturating_add(1) => {
                n
            }
            _ => self.last_seq.saturating_add(1),
        };
        self.used.insert(seq);
        self.last_seq = self.last_seq.max(seq);
        seq
    }
}

/// Files to adopt as segments (name, what it is, its sealed name if it
/// has one), and the files already recorded (device, inode).
#[derive(Default)]
struct Found {
    candidates: Vec<(String, FileInfo, Option<SealedName>)>,
    known: Vec<(u64, u64)>,
}

impl Found {
    /// Files named like sealed segments that the manifest does not record.
    /// A second name of a file that is already recorded (a crash between a
    /// link and the removal of the old name) is removed, not adopted again:
    /// that would duplicate its records.
    fn orphans(
        &mut self,
        dir: &Dir,
        log: &str,
        names: &[String],
        listed: &std::collections::HashSet<String>,
    ) -> Result<(), Error> {
        let mut orphans: Vec<(SealedName, &String)> = names
            .iter()
            .filter(|f| !listed.contains(*f))
            .filter_map(|f| Some((SealedName::parse(log, f)?, f)))
            .collect();
        orphans.sort();
        for file in listed {
            if SealedName::parse(log, file).is_some() {
                if let Ok(Some(i)) = dir.stat(file) {
                    self.known.push((i.dev, i.ino));
                }
            }
        }
        for (n, f) in orphans {
            let Some(info) = dir
                .stat(f)
                .map_err(|e| Error::io("recover", dir.join(f), e))?
            else {
                continue;
            };
            if !info.is_file {
                continue;
            }
            if self.known.contains(&(info.dev, info.ino)) {
                dir.unlink(f)
                    .map_err(|e| Error::io("recover", dir.join(f), e))?;
                continue;
            }
            self.known.push((info.dev, info.ino));
            self.candidates.push((f.clone(), info, Some(n)));
        }
        Ok(())
    }

    /// The active file and the prepared next files, in order. Empty ones
    /// and second names of known files are removed; a symlink (or other
    /// non-file) where only logcut's own files belong is removed, never
    /// followed. (After a power loss the active path can still name a
    /// recorded segment: the cut's link and the seal entry reached the
    /// disk, the successor's rename over the active path did not.)
    fn tail(
        &mut self,
        dir: &Dir,
        log: &str,
        names: &[String],
        notes: &mut Vec<Error>,
    ) -> Result<(), Error> {
        let mut prepared: Vec<(u64, &String)> = names
            .iter()
            .filter_map(|f| Some((name::parse_prepared(log, f)?, f)))
            .collect();
        prepared.sort();
        let mut tail = vec![name::active_file(log)];
        tail.extend(prepared.into_iter().map(|(_, f)| f.clone()));
        for f in tail {
            let path = dir.join(&f);
            let Some(info) = dir.stat(&f).map_err(|e| Error::io("recover", &path, e))? else {
                continue;
            };
            if !info.is_file {
                // A directory cannot be removed safely: the caller fails
                // when creating the file.
                if dir.unlink(&f).is_ok() {
                    notes.push(Error::repaired(
                        &path,
                        "removed a non-regular file (such as a symlink) at a path logcut owns",
                    ));
                }
                continue;
            }
            let duplicate = self.known.contains(&(info.dev, info.ino))
                || self
                    .candidates
                    .iter()
                    .any(|(_, i, _)| i.dev == info.dev && i.ino == info.ino);
            if info.len == 0 || duplicate {
                dir.unlink(&f).map_err(|e| Error::io("recover", &path, e))?;
                continue;
            }
            self.candidates.push((f, info, None));
        }
        Ok(())
    }
}

/// A file adopted as segment `seq`.
struct Adopted {
    file: String,
    info: FileInfo,
    parsed: Option<SealedName>,
    seq: u64,
}

impl Adopted {
    /// Gives it its sealed name (a link, never overwriting) and records its
    /// seal, with an unknown record count.
    fn record(
        self,
        dir: &Dir,
        log: &str,
        journal: &mut Journal,
        session: &str,
        now: Timestamp,
        notes: &mut Vec<Error>,
    ) -> Result<(), Error> {
        let Adopted {
            file,
            info,
            parsed,
            seq,
        } = self;
        let path = dir.join(&file);
        // A sealed manifest covers the contents with a SHA-256 too.
        let (crc, bytes, sha256) = if journal.is_sealing() {
            logcut_format::digest_reader(
                dir.open_read(&file)
                    .map_err(|e| Error::io("recover", &path, e))?,
            )
            .map(|(sha, crc, len)| (crc, len, Some(logcut_format::hex(&sha))))
        } else {
            checksum(dir, &file).map(|(crc, len)| (crc, len, None))
        }
        .map_err(|e| Error::io("recover", &path, e))?;
        let start_ms = parsed.map_or(info.mtime_ms, |p| p.start_ms);
        let final_name = match parsed {
            Some(p) if p.seq == seq => file.clone(),
            _ => link_free_name(dir, log, &file, start_ms, seq)?,
        };
        let start = Timestamp::from_millisecond(start_ms).unwrap_or(now);
        journal.append(&[Entry::Seal(Seal {
            seq,
            file: final_name.clone(),
            session: session.to_string(),
            start,
            end: Timestamp::from_millisecond(info.mtime_ms).unwrap_or(now),
            first: None,
            records: None,
            bytes,
            crc32: crc,
            reason: SealReason::Recovery,
            sha256,
        })])?;
        if final_name != file {
            dir.unlink(&file)
                .map_err(|e| Error::io("recover", &path, e))?;
        }
        notes.push(Error::repaired(
            dir.join(&final_name),
            format!(
                "adopted {file} left by an earlier run as segment {seq} (record count unknown)"
            ),
        ));
        Ok(())
    }
}

/// Links `file` to the first free sealed name for segment `seq`.
fn link_free_name(
    dir: &Dir,
    log: &str,
    file: &str,
    start_ms: i64,
    seq: u64,
) -> Result<String, Error> {
    let mut dup = 0;
    loop {
        let candidate = SealedName { start_ms, seq, dup }.file_name(log);
        match dir.link(file, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dup < 1000 => dup += 1,
            Err(e) => return Err(Error::io("recover", dir.join(&candidate), e)),
        }
    }
}

/// Completes compressions and deletions a crash cut short (see the module
/// docs). A `.tmp` file is never taken for a compressed segment.
fn finish_compression(
    dir: &Dir,
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    names: &[String],
    notes: &mut Vec<Error>,
) -> Result<(), Error> {
    let err = |f: &str, e| Error::io("recover", dir.join(f), e);
    for f in names {
        let index_tmp = f
            .strip_suffix(".idx.tmp")
            .is_some_and(|base| SealedName::parse(log, base).is_some());
        if index_tmp
            || Codec::split_tmp(f).is_some_and(|(base, _)| SealedName::parse(log, base).is_some())
        {
            match dir.unlink(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(f, e)),
            }
        }
    }
    let present = |f: &str| -> Result<bool, Error> {
        Ok(dir
            .stat(f)
            .map_err(|e| err(f, e))?
            .is_some_and(|i| i.is_file))
    };
    let remove = |f: &str| -> Result<(), Error> {
        match dir.unlink(f) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(f, e)),
        }
    };
    let compressed = manifest.compressed();
    let deleted = manifest.deleted();
    for s in manifest.seals() {
        if SealedName::parse(log, &s.file).is_none() {
            continue;
        }
        if deleted.contains_key(&s.seq) {
            remove(&s.file)?;
            remove(&logcut_format::index::index_file(&s.file))?;
            for c in CODECS {
                remove(&c.compressed_name(&s.file))?;
            }
            continue;
        }
        let recorded = compressed
            .get(&s.seq)
            .filter(|c| Codec::split(&c.file).is_some_and(|(b, _)| b == s.file));
        if let Some(c) = recorded {
            if present(&c.file)? && present(&s.file)? {
                remove(&s.file)?;
            }
            continue;
        }
        for codec in CODECS {
            let f = codec.compressed_name(&s.file);
            if !present(&f)? {
                continue;
            }
            let has_original = present(&s.file)?;
            let decoded = dir
                .open_read(&f)
                .and_then(|r| codec.decoder(std::io::BufReader::new(r)))
                .and_then(logcut_format::checksum_reader);
            match decoded {
                Ok(sum) if sum == (s.crc32, s.bytes) => {
                    let (crc32, bytes) = checksum(dir, &f).map_err(|e| err(&f, e))?;
                    journal.append(&[Entry::Compress(Compress {
                        seq: s.seq,
                        file: f.clone(),
                        crc32,
                        bytes,
                    })])?;
                    if has_original {
                        remove(&s.file)?;
                    }
                    notes.push(Error::repaired(
                        dir.join(&f),
                        "recorded a compressed segment an earlier run completed but did not record",
                    ));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                    notes.push(err(&f, e));
                }
                _ if has_original => {
                    // An incomplete compression: the original is the
                    // segment; it is compressed again later.
                    remove(&f)?;
                }
                _ => notes.push(err(
                    &f,
                    std::io::Error::other(
                        "a compressed segment does not match its seal and the original is gone; left for `verify` to report",
                    ),
                )),
            }
        }
    }
    Ok(())
}

/// Records the segments of a shared log that processes wrote to (their
/// `part` entries say so) and that left no file and no seal: a power cut
/// before the segment's name or data reached the disk. Each gets a seal
/// entry with the parts' counts, at once recorded as lost, so that the
/// sequence has no gap and the records are counted.
#[allow(clippy::too_many_arguments)]
fn record_vanished(
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    used: &std::collections::HashSet<u64>,
    last_seq: u64,
    session: &str,
    now: Timestamp,
    notes: &mut Vec<Error>,
) -> Result<(), Error> {
    let mut parts: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for e in &manifest.entries {
        if let Entry::Part(p) = e {
            if !used.contains(&p.seq) && p.seq <= last_seq {
                let t = parts.entry(p.seq).or_default();
                t.0 = t.0.saturating_add(p.records);
                t.1 = t.1.saturating_add(p.bytes);
            }
        }
    }
    // A number below one in use that has nothing at all (no seal, no file,
    // no part: its part entries were in the part of the manifest the power
    // took) was a segment too; it is recorded the same way, its count
    // unknown.
    for seq in 1..=last_seq {
        if !used.contains(&seq) {
            parts.entry(seq).or_insert((0, 0));
        }
    }
    for (seq, (records, bytes)) in parts {
        let file = SealedName {
            start_ms: now.as_millisecond(),
            seq,
            dup: 0,
        }
        .file_name(log);
        journal.append(&[
            Entry::Seal(Seal {
                seq,
                file: file.clone(),
                session: session.to_string(),
                start: now,
                end: now,
                first: None,
                records: (records > 0).then_some(records),
                bytes,
                crc32: 0,
                reason: SealReason::Recovery,
                sha256: None,
            }),
            Entry::Delete(Delete {
                seq,
                file,
                reason: DeleteReason::Lost,
            }),
        ])?;
        if records > 0 || bytes > 0 {
            journal.append(&[Entry::Lost(Lost {
                session: session.to_string(),
                records,
                bytes,
                reason: "power-loss".to_string(),
            })])?;
        }
        notes.push(Error::repaired(
            journal.path(),
            format!(
                "segment {seq}, which processes wrote {records} records to, left no file (a power loss before it was synced): recorded as lost"
            ),
        ));
    }
    Ok(())
}

/// Finds the sealed segments that are gone or shorter than their seal
/// says: a power loss kept the manifest's entry but not the segment's data
/// or its name (`Fsync::Never` syncs neither), or someone removed it. Each
/// is recorded as deleted with reason `lost` and its records as lost
/// (reason `missing`, which `verify` reports); what is left of it is moved
/// to a prepared file's name,
/// which the caller adopts as a new segment (record count unknown), so no
/// surviving record is dropped and `verify` accepts the directory. Only
/// lengths are checked (a `stat` per segment): a disk that kept the length
/// but not the bytes is left for `verify`'s checksums to report.
fn check_sealed(
    dir: &Dir,
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    session: &str,
    names: &mut Vec<String>,
    notes: &mut Vec<Error>,
) -> Result<(), Error> {
    let err = |f: &str, e| Error::io("recover", dir.join(f), e);
    let compressed = manifest.compressed();
    let deleted = manifest.deleted();
    for s in manifest.seals() {
        if deleted.contains_key(&s.seq) || SealedName::parse(log, &s.file).is_none() {
            continue;
        }
        let (file, want) = match compressed.get(&s.seq) {
            Some(c) => (c.file.as_str(), c.bytes),
            None => (s.file.as_str(), s.bytes),
        };
        let info = dir.stat(file).map_err(|e| err(file, e))?;
        let have = info.filter(|i| i.is_file).map_or(0, |i| i.len);
        if info.is_some_and(|i| i.is_file) && have == want {
            continue;
        }
        if info.is_none() && !compressed.contains_key(&s.seq) {
            // A compressed file no entry records, that did not match the
            // seal (`finish_compression` reported it): left as evidence
            // for `verify`, not taken for a loss.
            let unrecorded = CODECS.iter().any(|c| {
                dir.stat(&c.compressed_name(&s.file))
                    .ok()
                    .flatten()
                    .is_some()
            });
            if unrecorded {
                continue;
            }
        }
        // What is left of an uncompressed segment is kept; a compressed
        // one cut short cannot be read, and is removed with the entry.
        let kept = if compressed.contains_key(&s.seq) || have == 0 {
            0
        } else {
            let aside = name::prepared_file(log, s.seq);
            dir.rename_noreplace(file, &aside)
                .map_err(|e| err(file, e))?;
            names.push(aside);
            have
        };
        journal.append(&[
            Entry::Delete(Delete {
                seq: s.seq,
                file: s.file.clone(),
                reason: DeleteReason::Lost,
            }),
            Entry::Lost(Lost {
                session: session.to_string(),
                records: if kept == 0 { s.records.unwrap_or(0) } else { 0 },
                bytes: s.bytes.saturating_sub(kept),
                reason: "missing".to_string(),
            }),
        ])?;
        notes.push(Error::repaired(
            dir.join(file),
            format!(
                "segment {} was {} at start ({have} of {want} bytes; a power loss before it was synced, or removed): recorded as lost{}",
                s.seq,
                if info.is_some() { "short" } else { "gone" },
                if kept > 0 {
                    "; what is left is adopted as a new segment"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

fn checksum(dir: &Dir, file: &str) -> std::io::Result<(u32, u64)> {
    logcut_format::checksum_reader(dir.open_read(file)?)
}
