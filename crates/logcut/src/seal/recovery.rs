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

pub(crate) fn recover(
    dir: &Dir,
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    now: Timestamp,
    shared: Option<SharedHint>,
) -> Result<Resume, Error> {
    // Sequence numbers stay gap-free in the manifest: a number handed out
    // in shared mode (the cut file's) whose segment left nothing (removed
    // empty, or its name lost with the power) is used again, unless a
    // `part` entry names it. Adopted segments are numbered after the last
    // recorded one, never beyond (a power cut can keep a prepared file's
    // data and lose the rename that made it active, and the active segment
    // before it).
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
    // The session that crashed, if the manifest shows one.
    let mut open_sessions: Vec<String> = Vec::new();
    for e in &manifest.entries {
        match e {
            Entry::Open(o) => open_sessions.push(o.session.clone()),
            Entry::Close(c) => open_sessions.retain(|s| *s != c.session),
            _ => {}
        }
    }
    let session = open_sessions.pop().unwrap_or_else(|| "unknown".to_string());
    let mut notes = Vec::new();
    finish_compression(dir, log, journal, manifest, &mut notes)?;
    // Also after a clean close: with `Fsync::Never` the close entry can
    // reach the disk before the segments do.
    let manifest_now = Manifest::read(journal.path())?;
    check_sealed(dir, log, journal, &manifest_now, &session, &mut notes)?;

    let list_err = |e| Error::io("recover", dir.path(), e);
    let mut orphans: Vec<(SealedName, String)> = Vec::new();
    for ent in std::fs::read_dir(dir.path()).map_err(list_err)? {
        let ent = ent.map_err(list_err)?;
        let Some(f) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Some(n) = SealedName::parse(log, &f) {
            if !listed.contains(&f) {
                orphans.push((n, f));
            }
        }
    }
    orphans.sort();
    let mut candidates: Vec<(String, FileInfo, Option<SealedName>)> = Vec::new();
    // A second name of a file that is already recorded (a crash between a
    // link and the removal of the old name) is removed, not adopted again:
    // that would duplicate its records.
    // The same holds for the active path: after a power loss it can still
    // name a recorded segment (the cut's link and the seal entry reached the
    // disk, the successor's rename over the active path did not).
    let mut known: Vec<(u64, u64)> = Vec::new();
    for file in &listed {
        if SealedName::parse(log, file).is_some() {
            if let Ok(Some(i)) = dir.stat(file) {
                known.push((i.dev, i.ino));
            }
        }
    }
    for (n, f) in orphans {
        let Some(info) = dir
            .stat(&f)
            .map_err(|e| Error::io("recover", dir.join(&f), e))?
        else {
            continue;
        };
        if !info.is_file {
            continue;
        }
        if known.contains(&(info.dev, info.ino)) {
            dir.unlink(&f)
                .map_err(|e| Error::io("recover", dir.join(&f), e))?;
            continue;
        }
        known.push((info.dev, info.ino));
        candidates.push((f, info, Some(n)));
    }
    let mut tail = vec![name::active_file(log)];
    let mut prepared: Vec<(u64, String)> = Vec::new();
    for ent in std::fs::read_dir(dir.path()).map_err(list_err)? {
        let ent = ent.map_err(list_err)?;
        let Some(f) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Some(seq) = name::parse_prepared(log, &f) {
            prepared.push((seq, f));
        }
    }
    prepared.sort();
    tail.extend(prepared.into_iter().map(|(_, f)| f));
    for f in tail {
        let path = dir.join(&f);
        let Some(info) = dir.stat(&f).map_err(|e| Error::io("recover", &path, e))? else {
            continue;
        };
        if !info.is_file {
            // A symlink (or other non-file) where only logcut's own files
            // belong is removed, never followed. A directory cannot be
            // removed safely: the caller fails when creating the file.
            if dir.unlink(&f).is_ok() {
                notes.push(Error::repaired(
                    &path,
                    "removed a non-regular file (such as a symlink) at a path logcut owns",
                ));
            }
            continue;
        }
        let duplicate = known.contains(&(info.dev, info.ino))
            || candidates
                .iter()
                .any(|(_, i, _)| i.dev == info.dev && i.ino == info.ino);
        if info.len == 0 || duplicate {
            dir.unlink(&f).map_err(|e| Error::io("recover", &path, e))?;
            continue;
        }
        candidates.push((f, info, None));
    }

    let active = name::active_file(log);
    for (file, info, parsed) in candidates {
        let path = dir.join(&file);
        let (crc, bytes) = checksum(dir, &file).map_err(|e| Error::io("recover", &path, e))?;
        // A segment keeps the sequence number it was given if no seal has
        // it: in shared mode a process killed before it sealed a segment it
        // cut leaves it behind while the others go on (the `part` entries
        // name it by that number).
        let own = match &parsed {
            Some(p) => Some(p.seq),
            None if file == active => shared.and_then(|h| h.active_seq),
            None => name::parse_prepared(log, &file),
        };
        let seq = match own {
            Some(n) if n > 0 && !used.contains(&n) && n <= last_seq.saturating_add(1) => n,
            _ => last_seq.saturating_add(1),
        };
        used.insert(seq);
        let start_ms = parsed.map_or(info.mtime_ms, |p| p.start_ms);
        let final_name = match parsed {
            Some(p) if p.seq == seq => file.clone(),
            _ => {
                let mut dup = 0;
                loop {
                    let candidate = SealedName { start_ms, seq, dup }.file_name(log);
                    match dir.link(&file, &candidate) {
                        Ok(()) => break candidate,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dup < 1000 => {
                            dup += 1
                        }
                        Err(e) => return Err(Error::io("recover", dir.join(&candidate), e)),
                    }
                }
            }
        };
        let start = Timestamp::from_millisecond(start_ms).unwrap_or(now);
        journal.append(&[Entry::Seal(Seal {
            seq,
            file: final_name.clone(),
            session: session.clone(),
            start,
            end: Timestamp::from_millisecond(info.mtime_ms).unwrap_or(now),
            first: None,
            records: None,
            bytes,
            crc32: crc,
            reason: SealReason::Recovery,
        })])?;
        if final_name != file {
            dir.unlink(&file)
                .map_err(|e| Error::io("recover", &path, e))?;
        }
        last_seq = last_seq.max(seq);
        notes.push(Error::repaired(
            dir.join(&final_name),
            format!(
                "adopted {file} left by an earlier run as segment {seq} (record count unknown)"
            ),
        ));
    }
    record_vanished(
        log, journal, manifest, &used, last_seq, &session, now, &mut notes,
    )?;
    dir.sync()
        .map_err(|e| Error::io("recover", dir.path(), e))?;
    // What is on disk now, with this run's recovery entries.
    let manifest = Manifest::read(journal.path())?;
    Ok(Resume {
        next_seq: last_seq.saturating_add(1),
        next_first,
        notes,
        sealed: keeper::sealed_from(dir, log, &manifest),
    })
}

/// Completes compressions and deletions a crash cut short (see the module
/// docs). A `.tmp` file is never taken for a compressed segment.
fn finish_compression(
    dir: &Dir,
    log: &str,
    journal: &mut Journal,
    manifest: &Manifest,
    notes: &mut Vec<Error>,
) -> Result<(), Error> {
    let err = |f: &str, e| Error::io("recover", dir.join(f), e);
    let list_err = |e| Error::io("recover", dir.path(), e);
    for ent in std::fs::read_dir(dir.path()).map_err(list_err)? {
        let ent = ent.map_err(list_err)?;
        let Some(f) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if Codec::split_tmp(&f).is_some_and(|(base, _)| SealedName::parse(log, base).is_some()) {
            dir.unlink(&f).map_err(|e| err(&f, e))?;
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
