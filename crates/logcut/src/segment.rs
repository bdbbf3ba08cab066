//! A segment: one log file and the accounting of the records in it.
//!
//! Direct-mode writers append to a segment by group commit: the first
//! writer to arrive becomes the combiner and writes its record; writers who
//! arrive while it is in `write(2)` queue their records under the segment's
//! lock and wait; the combiner then writes the whole queue in one call, in
//! queue order, and wakes them. One writer at a time per file means each
//! record reaches the file whole and in order, the checksum and counts are
//! kept exactly, and with several threads there are fewer system calls than
//! records. When a write fails, the partial bytes are cut off again and the
//! records are held in memory, in order, until the background thread
//! writes them (see `drain_held`).

use std::{
    collections::VecDeque,
    fs::File,
    io,
    sync::{Condvar, Mutex, MutexGuard},
};

use jiff::Timestamp;
use logcut_format::manifest::SealReason;

use crate::sys::{self, FileInfo};

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
    /// Writers waiting for the combiner to write their batch wait here.
    pub(crate) batch_done: Condvar,
    /// A copy of `SegState::done_gen`, for waiters to spin on without the
    /// lock. Stored with `Release` after the batch's bookkeeping, under the
    /// lock; loaded with `Acquire` by a spinning waiter, which then returns.
    pub(crate) done_gen: std::sync::atomic::AtomicU64,
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
    pub(crate) crc: crc32fast::Hasher,
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
    /// Written since the last fsync.
    pub(crate) dirty: bool,
    /// The sealed name it was given, once it has left the active path.
    pub(crate) sealed_name: Option<String>,
    /// The sealed name it was linked (or renamed) to, before its successor
    /// took the active path: a retry after a failed rename reuses it.
    pub(crate) linked_name: Option<String>,
    /// A combiner is writing a batch, outside the lock.
    pub(crate) writing: bool,
    /// Bytes and records of that batch.
    pub(crate) inflight_bytes: u64,
    pub(crate) inflight_records: u64,
    /// Records queued for the next batch, and where each ends.
    pub(crate) pend_buf: Vec<u8>,
    pub(crate) pend_ends: Vec<usize>,
    /// The number of the batch being queued, and of the last one done.
    pub(crate) pend_gen: u64,
    pub(crate) done_gen: u64,
    /// Writers asleep on `batch_done` (notify only when there are some:
    /// a notification is a system call).
    pub(crate) sleepers: u32,
    /// Handed to the sealer thread.
    pub(crate) handed: bool,
    /// Recorded in the manifest; its counts are in the appender's totals.
    pub(crate) retired: bool,
}

impl SegState {
    /// Bytes in the file, being written, and queued: where the next record
    /// would end up.
    pub(crate) fn planned_bytes(&self) -> u64 {
        self.bytes + self.inflight_bytes + self.pend_buf.len() as u64
    }

    /// Records in the file, being written, and queued.
    pub(crate) fn planned_records(&self) -> u64 {
        self.records + self.inflight_records + self.pend_ends.len() as u64
    }

    /// Returns true if and only if no write to the file is under way or
    /// queued: the segment can be sealed once closed.
    pub(crate) fn is_quiet(&self) -> bool {
        !self.writing && self.pend_ends.is_empty()
    }
}

impl Segment {
    pub(crate) fn new(
        seq: u64,
        prep_name: String,
        file: File,
        start: Timestamp,
    ) -> io::Result<Segment> {
        let id = sys::file_info(&file)?;
        Ok(Segment {
            seq,
            prep_name,
            file,
            id,
            state: Mutex::new(SegState {
                start,
                deadline: None,
                bytes: id.len,
                records: 0,
                accepted: 0,
                accepted_bytes: 0,
                crc: crc32fast::Hasher::new(),
                closed: false,
                reason: None,
                cut_pending: None,
                held: VecDeque::new(),
                held_bytes: 0,
                error: None,
                dirty: false,
                sealed_name: None,
                linked_name: None,
                writing: false,
                inflight_bytes: 0,
                inflight_records: 0,
                pend_buf: Vec::new(),
                pend_ends: Vec::new(),
                pend_gen: 1,
                done_gen: 0,
                sleepers: 0,
                handed: false,
                retired: false,
            }),
            space: Condvar::new(),
            batch_done: Condvar::new(),
            done_gen: std::sync::atomic::AtomicU64::new(0),
        })
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
        if written > keep {
            if let Err(te) = sys::truncate(&self.file, st.bytes + keep as u64) {
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

    pub(crate) fn count(&self, st: &mut SegState, bytes: &[u8], records: usize) {
        st.bytes += bytes.len() as u64;
        st.records += records as u64;
        st.crc.update(bytes);
        st.dirty = true;
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
