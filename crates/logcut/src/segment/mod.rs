//! A segment: one log file and the accounting of the records in it.
//!
//! Direct-mode writers append to a segment without a lock: each record is
//! one `write(2)` on a file opened with `O_APPEND`, which the kernel places
//! whole at the end of the file, never interleaved with another. Around it,
//! a writer registers in `flight`, so that whoever closes the segment can
//! wait until every write on it has finished before sealing it, and counts
//! the record in atomics. A write that fails moves the segment to the
//! locked path: the partial bytes are cut off again and the records are
//! held in memory, in order, until the background thread writes them (see
//! `drain_held`).

use std::{
    collections::VecDeque,
    fs::File,
    io,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
};

use jiff::Timestamp;
use logcut_format::manifest::SealReason;

pub(crate) mod policy;

use crate::sys::{self, FileInfo};

/// Where the record count starts in `Segment::flight`.
pub(crate) const RECORD_SHIFT: u32 = 24;
/// One record written, in `Segment::flight`.
pub(crate) const RECORD: u64 = 1 << RECORD_SHIFT;
/// The mask of writes under way, in `Segment::flight`.
pub(crate) const INFLIGHT: u64 = RECORD - 1;

/// Shared mode: a process looks at its segment's file (`Shared::probe`)
/// once per this many records it writes there.
pub(crate) const PROBE_EVERY: u32 = 16;

/// One log file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) seq: u64,
    /// Its file name before it becomes the active segment.
    pub(crate) prep_name: String,
    pub(crate) file: File,
    pub(crate) id: FileInfo,
    pub(crate) state: Mutex<SegState>,
    /// Writers waiting for held records to drain wait here.
    pub(crate) space: Condvar,
    /// Direct writes under way (the low 24 bits) and records written by
    /// them (the bits above), in one word so a write costs two atomic
    /// operations: +1 when it starts, +`RECORD`-1 when it is done. The
    /// increment is `SeqCst` and comes before the writer checks `closed`
    /// and `failing`; it pairs with the `SeqCst` stores of those flags, so
    /// that a closer or a failing writer that then sees no write under way
    /// knows none will start.
    pub(crate) flight: AtomicU64,
    /// Direct writes that failed and have left `flight` but whose record
    /// is not yet held (see `failed_write`). `SeqCst`, read with `flight`.
    pub(crate) failing_writes: std::sync::atomic::AtomicU32,
    /// Mirror of `SegState::closed` for the lock-free path.
    pub(crate) closed: AtomicBool,
    /// Writes are failing (records are held): writers take the locked path.
    pub(crate) failing: AtomicBool,
    /// A cut is pending without a next segment: skip the size check.
    pub(crate) overshoot: AtomicBool,
    /// Bytes of Direct writes, done or under way: the size check while
    /// writes run, the exact count of their bytes in the file once none
    /// runs (a failed write takes back what did not reach the file).
    /// `Relaxed`: a count, ordered by `flight` where it must be exact.
    pub(crate) reserved: AtomicU64,
    /// Mirror of `SegState::bytes` (bytes written under the lock: held
    /// records written out, a batch, an adopted file's start) for the
    /// lock-free size check, which otherwise sees only `reserved`.
    /// `Relaxed`: an estimate there; the locked path reads `SegState`.
    pub(crate) locked_bytes: AtomicU64,
    /// Mirror of `SegState::deadline` in milliseconds (`i64::MAX`: none);
    /// `Relaxed`: a stale value only delays the check to the locked path.
    pub(crate) deadline_ms: AtomicI64,
    /// Other processes write to this file too (shared mode): what this
    /// process knows of them. Its partial writes are never cut off (that
    /// could cut off their records). `None` for a log written by one
    /// appender alone.
    outside: Option<Outside>,
    /// The directory was synced since this segment took the active path,
    /// so its name survives a power loss (see `sync_records`).
    name_synced: AtomicBool,
}

/// What a process knows of the other processes writing a segment's file.
#[derive(Debug, Default)]
struct Outside {
    /// Bytes the other processes wrote, as of the last check (the file's
    /// length less ours), for the size limit. `Relaxed`: an estimate,
    /// refreshed by the background thread.
    others: AtomicU64,
    /// A probe saw that another process cut this segment (its write bits
    /// are gone); the background thread follows now. `Relaxed`: a hint,
    /// checked again under the cut lock.
    stale: AtomicBool,
    /// Records this process wrote here, for `probe_due`. `Relaxed`: a
    /// counter.
    probes: std::sync::atomic::AtomicU32,
}

/// Held records moved from one segment to the next at a cut.
#[derive(Debug, Default)]
pub(crate) struct Held {
    records: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// A segment's mutable state, behind its lock.
#[derive(Debug)]
pub(crate) struct SegState {
    pub(crate) start: Timestamp,
    pub(crate) deadline: Option<Timestamp>,
    /// Bytes and records in the file.
    pub(crate) bytes: u64,
    pub(crate) records: u64,
    /// Records and bytes accepted into this segment: in the file, or held.
    pub(crate) accepted: u64,
    pub(crate) accepted_bytes: u64,
    /// No more records go here; writers move on to the current segment.
    pub(crate) closed: bool,
    pub(crate) reason: Option<SealReason>,
    /// A cut is due but the next segment was not ready.
    pub(crate) cut_pending: Option<SealReason>,
    /// Records accepted but not yet written, after a failed write.
    pub(crate) held: VecDeque<Vec<u8>>,
    pub(crate) held_bytes: usize,
    /// A write error the background thread has not reported yet.
    pub(crate) error: Option<io::Error>,
    /// The sealed name it was given, once it has left the active path.
    pub(crate) sealed_name: Option<String>,
    /// The sealed name it was linked (or renamed) to, before its successor
    /// took the active path: a retry after a failed rename reuses it.
    pub(crate) linked_name: Option<String>,
    /// Handed to the sealer thread.
    pub(crate) handed: bool,
    /// Shared mode: another process cut this segment and seals it; ours
    /// only records its part.
    pub(crate) followed: bool,
    /// Shared mode: this process's `part` entry for it is in the manifest.
    pub(crate) part_recorded: bool,
    /// Recorded in the manifest; its counts are in the appender's totals.
    pub(crate) retired: bool,
    /// The CRC-32 of the bytes counted under this lock (`count`), in
    /// order. When they are all the file holds (Buffered mode, one
    /// process: every byte goes through `count`), the sealer takes it
    /// instead of reading the segment back.
    pub(crate) crc: crc32fast::Hasher,
    /// The file was empty when the segment was made: `crc` covers it all.
    pub(crate) crc_from_start: bool,
}

impl Segment {
    /// Bytes in the file or on their way: where the next record would end.
    pub(crate) fn planned_bytes(&self, st: &SegState) -> u64 {
        st.bytes + self.reserved.load(Ordering::Relaxed) + self.others()
    }

    /// Whether other processes write to this file too (shared mode).
    pub(crate) fn is_shared(&self) -> bool {
        self.outside.is_some()
    }

    /// Bytes the other processes wrote here, as of the last look.
    pub(crate) fn others(&self) -> u64 {
        // Relaxed: an estimate (see Outside).
        self.outside
            .as_ref()
            .map_or(0, |o| o.others.load(Ordering::Relaxed))
    }

    /// Records what the last look found the other processes wrote.
    pub(crate) fn set_others(&self, bytes: u64) {
        if let Some(o) = &self.outside {
            o.others.store(bytes, Ordering::Relaxed);
        }
    }

    /// Whether a probe saw another process cut this segment.
    pub(crate) fn is_stale(&self) -> bool {
        self.outside
            .as_ref()
            .is_some_and(|o| o.stale.load(Ordering::Relaxed))
    }

    /// Notes that another process cut this segment; true the first time.
    pub(crate) fn mark_stale(&self) -> bool {
        self.outside
            .as_ref()
            .is_some_and(|o| !o.stale.swap(true, Ordering::Relaxed))
    }

    /// Shared mode: counts `n` records written here by this process, and
    /// says whether it is time to look at the file again (every
    /// `PROBE_EVERY` records). Never for a segment no one else writes.
    pub(crate) fn probe_due(&self, n: u32) -> bool {
        let Some(o) = &self.outside else {
            return false;
        };
        let before = o.probes.fetch_add(n, Ordering::Relaxed);
        before % PROBE_EVERY + n.min(PROBE_EVERY) >= PROBE_EVERY
    }

    /// Whether the segment holds (or is about to hold) any record.
    pub(crate) fn has_records(&self, st: &SegState) -> bool {
        st.records > 0
            || !st.held.is_empty()
            || self.reserved.load(Ordering::Relaxed) > 0
            || self.fast_records() > 0
    }

    /// Records written to the file, by either path.
    pub(crate) fn records(&self, st: &SegState) -> u64 {
        st.records + self.fast_records()
    }

    /// Returns true if and only if no Direct write is under way, and no
    /// failed one is still on its way to the held records.
    pub(crate) fn is_quiet(&self) -> bool {
        self.flight.load(Ordering::SeqCst) & INFLIGHT == 0
            && self.failing_writes.load(Ordering::SeqCst) == 0
    }

    /// Records written by Direct writes.
    pub(crate) fn fast_records(&self) -> u64 {
        self.flight.load(Ordering::Relaxed) >> RECORD_SHIFT
    }

    /// Bytes written by Direct writes (exact when none is under way).
    pub(crate) fn fast_bytes(&self) -> u64 {
        self.reserved.load(Ordering::Relaxed)
    }

    /// Sets the time boundary, and its lock-free mirror.
    pub(crate) fn set_deadline(&self, st: &mut SegState, deadline: Option<Timestamp>) {
        st.deadline = deadline;
        let ms = deadline.map_or(i64::MAX, |d| d.as_millisecond());
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn new(
        seq: u64,
        prep_name: String,
        file: File,
        start: Timestamp,
    ) -> io::Result<Segment> {
        Segment::build(seq, prep_name, file, start, false)
    }

    /// A segment of a shared log (see `AppenderBuilder::shared`): the bytes
    /// already in the file are the other processes'; `st.bytes` counts
    /// only ours.
    pub(crate) fn new_shared(
        seq: u64,
        prep_name: String,
        file: File,
        start: Timestamp,
    ) -> io::Result<Segment> {
        Segment::build(seq, prep_name, file, start, true)
    }

    fn build(
        seq: u64,
        prep_name: String,
        file: File,
        start: Timestamp,
        shared: bool,
    ) -> io::Result<Segment> {
        let id = sys::file_info(&file)?;
        let bytes = if shared { 0 } else { id.len };
        Ok(Segment {
            seq,
            prep_name,
            file,
            id,
            state: Mutex::new(SegState {
                start,
                deadline: None,
                bytes,
                records: 0,
                accepted: 0,
                accepted_bytes: 0,
                closed: false,
                reason: None,
                cut_pending: None,
                held: VecDeque::new(),
                held_bytes: 0,
                error: None,
                sealed_name: None,
                linked_name: None,
                handed: false,
                followed: false,
                part_recorded: false,
                retired: false,
                crc: crc32fast::Hasher::new(),
                crc_from_start: bytes == 0,
            }),
            space: Condvar::new(),
            flight: AtomicU64::new(0),
            failing_writes: std::sync::atomic::AtomicU32::new(0),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            overshoot: AtomicBool::new(false),
            reserved: AtomicU64::new(0),
            locked_bytes: AtomicU64::new(bytes),
            deadline_ms: AtomicI64::new(i64::MAX),
            outside: shared.then(|| Outside {
                others: AtomicU64::new(id.len),
                ..Outside::default()
            }),
            name_synced: AtomicBool::new(false),
        })
    }

    /// Makes the records written here so far durable (`Fsync::Always`,
    /// `Fsync::Every`): the data, and the first time, the directory, since
    /// a new segment's data is lost with the power if its name (the rename
    /// to the active path) did not reach the disk. Called only once the
    /// segment is at the active path.
    pub(crate) fn sync_records(&self, dir: &sys::Dir) -> io::Result<()> {
        sys::sync_data(&self.file)?;
        // Acquire/Release: pairs with the store below, so a writer that
        // sees `true` also sees the directory sync as done. Two writers may
        // both sync the directory; that costs a sync, nothing else.
        if !self.name_synced.load(Ordering::Acquire) {
            dir.sync()?;
            self.name_synced.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Locks the state. A panic while it was held (there is no code that
    /// panics under it) would leave counts that still describe the file, so
    /// the lock is taken over rather than failing every writer after.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SegState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one record at the end of the file. On failure the file is
    /// cut back to where it was, so no partial record stays in it.
    pub(crate) fn append(&self, st: &mut SegState, buf: &[u8]) -> io::Result<()> {
        self.append_records(st, buf, &[buf.len()])
            .map_err(|(e, _)| e)
    }

    /// Appends `buf`, whose records end at the offsets `ends` (relative to
    /// `buf`, increasing, the last one `buf.len()`), in one write. If the
    /// write fails part way, the records that reached the file whole are
    /// kept and counted, the rest is cut off again, and the error is
    /// returned with the number of whole records written.
    pub(crate) fn append_records(
        &self,
        st: &mut SegState,
        buf: &[u8],
        ends: &[usize],
    ) -> Result<(), (io::Error, usize)> {
        let (err, written) = match sys::write_all(&self.file, buf) {
            Ok(()) => {
                self.count(st, buf, ends.len());
                return Ok(());
            }
            Err(x) => x,
        };
        let whole = ends.partition_point(|e| *e <= written);
        let keep = if whole == 0 { 0 } else { ends[whole - 1] };
        if written > keep && self.is_shared() {
            // Other processes append to this file: the fragment may no
            // longer be at its end, and cutting the file back could cut
            // off their records. It stays, counted, and the record is
            // written again whole after it.
            self.count(st, &buf[..written], whole);
            return Err((
                io::Error::new(
                    err.kind(),
                    format!(
                        "{err}; {} bytes of a partly written record remain in the shared file",
                        written - keep
                    ),
                ),
                whole,
            ));
        }
        if written > keep {
            // Where the file ended before this write: this path only runs
            // with no other write under way (the Buffered writer thread, or
            // a drain while Direct writers are held off), so the counts are
            // exact.
            let before = st.bytes + self.reserved.load(Ordering::Relaxed);
            if let Err(te) = sys::truncate(&self.file, before + keep as u64) {
                // The partial record could not be removed. Count its bytes
                // so that length and checksum still describe the file; the
                // record is written again whole after the fragment, and the
                // error says so.
                self.count(st, &buf[..written], whole);
                return Err((
                    io::Error::new(
                        te.kind(),
                        format!("{err}; removing the partial record also failed: {te}"),
                    ),
                    whole,
                ));
            }
        }
        self.count(st, &buf[..keep], whole);
        Err((err, whole))
    }

    /// The checksum and length of the file from what was counted, when
    /// that is certain to be the whole file: Buffered mode's segments of
    /// one process, created empty, every byte counted (none written on the
    /// lock-free path), and the file's length agreeing. `None` otherwise:
    /// the caller reads the file back.
    pub(crate) fn counted_checksum(&self, st: &SegState, buffered: bool) -> Option<(u32, u64)> {
        if !buffered || self.is_shared() || !st.crc_from_start || self.fast_bytes() != 0 {
            return None;
        }
        let len = sys::file_info(&self.file).ok()?.len;
        (len == st.bytes).then(|| (st.crc.clone().finalize(), len))
    }

    pub(crate) fn count(&self, st: &mut SegState, bytes: &[u8], records: usize) {
        st.crc.update(bytes);
        st.bytes += bytes.len() as u64;
        self.locked_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        st.records += records as u64;
    }

    /// Takes the held records that would take this segment past `max`
    /// bytes once written (all but those that fit; the first one stays if
    /// the segment has no record at all, as a record larger than the limit
    /// gets a segment of its own), with their count taken out of the
    /// segment's accepted records: they go to the next segment, after the
    /// ones that stay and before anything written there.
    pub(crate) fn take_excess(&self, st: &mut SegState, max: Option<u64>) -> Held {
        let Some(max) = max else {
            return Held::default();
        };
        let mut planned = self.planned_bytes(st);
        let mut keep = 0;
        for rec in &st.held {
            let empty = keep == 0 && !self.has_written(st);
            if !empty && planned + rec.len() as u64 > max {
                break;
            }
            planned += rec.len() as u64;
            keep += 1;
        }
        let records = st.held.split_off(keep);
        let bytes: usize = records.iter().map(Vec::len).sum();
        st.held_bytes -= bytes;
        st.accepted -= records.len() as u64;
        st.accepted_bytes -= bytes as u64;
        Held { records, bytes }
    }

    /// Puts records taken from the previous segment (`take_excess`) in
    /// front of this one, which nobody writes to yet: writers then queue
    /// behind them (`failing`), and the background thread writes them.
    pub(crate) fn give_held(&self, st: &mut SegState, held: Held) {
        if held.records.is_empty() {
            return;
        }
        st.accepted += held.records.len() as u64;
        st.accepted_bytes += held.bytes as u64;
        st.held_bytes += held.bytes;
        let mut records = held.records;
        records.append(&mut st.held);
        st.held = records;
        // SeqCst: pairs with the writers' `flight` increment, as in
        // `Shared::write_now`.
        self.failing.store(true, Ordering::SeqCst);
    }

    /// Whether any record is in the file or on its way there (held ones
    /// not counted).
    fn has_written(&self, st: &SegState) -> bool {
        st.records > 0 || self.reserved.load(Ordering::Relaxed) > 0 || self.fast_records() > 0
    }

    /// Writes held records in order, but none that would take the segment
    /// past `max` bytes (see `take_excess`: those wait for the next
    /// segment). Stops at the first failure. `Ok(true)` if records are
    /// still held because of the limit.
    pub(crate) fn drain_held_within(
        &self,
        st: &mut SegState,
        max: Option<u64>,
    ) -> io::Result<bool> {
        let excess = self.take_excess(st, max);
        let res = self.drain_held(st);
        let more = !excess.records.is_empty();
        // Back at the end, in order, whatever happened: the next cut moves
        // them on.
        st.accepted += excess.records.len() as u64;
        st.accepted_bytes += excess.bytes as u64;
        st.held_bytes += excess.bytes;
        st.held.extend(excess.records);
        res.map(|()| more)
    }

    /// Writes held records in order. Stops at the first failure.
    pub(crate) fn drain_held(&self, st: &mut SegState) -> io::Result<()> {
        while let Some(rec) = st.held.pop_front() {
            if let Err(e) = self.append(st, &rec) {
                st.held.push_front(rec);
                return Err(e);
            }
            st.held_bytes -= rec.len();
        }
        Ok(())
    }
}
