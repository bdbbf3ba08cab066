//! Direct mode's write path: one `write(2)` per record on the current
//! segment, lock-free while no cut is due and writes succeed; the locked
//! path for cuts, and records held while writes fail.

use std::{io, sync::atomic::Ordering};

use crate::{
    Error,
    append::state::Shared,
    builder::Fsync,
    segment::{INFLIGHT, RECORD, Segment},
};

/// The outcome of a lock-free write attempt.
pub(crate) enum Fast {
    /// Written (or, after a failure, held).
    Done,
    /// The segment was closed meanwhile: try the current one.
    Closed,
    /// A cut or a boundary is due: take the locked path.
    Locked,
}

impl Shared {
    pub(crate) fn write_direct(&self, buf: &[u8]) -> Result<(), Error> {
        // Acquire: pairs with the SeqCst store in `Handle::shutdown`.
        if self.path.closed.load(Ordering::Acquire) {
            return Err(Error::shutdown("write record"));
        }
        loop {
            // A guard, not a clone of the Arc: no shared reference count is
            // touched on the write path.
            let seg = self.path.current.load();
            if !seg.failing.load(Ordering::Relaxed) {
                match self.try_fast(&seg, buf) {
                    Fast::Done => return Ok(()),
                    Fast::Closed
                        if self.path.closed.load(Ordering::Acquire)
                            && seg.closed.load(Ordering::SeqCst) =>
                    {
                        return Err(Error::shutdown("write record"));
                    }
                    Fast::Closed => continue,
                    Fast::Locked => {}
                }
            }
            // The locked path: a cut to make, records held after a failed
            // write, or a closed segment.
            let mut st = seg.lock();
            if st.closed {
                if self.path.closed.load(Ordering::Acquire) {
                    return Err(Error::shutdown("write record"));
                }
                continue;
            }
            if let Some(reason) = self.cut_due(&seg, &mut st, buf.len()) {
                if st.cut_pending.is_none() {
                    if self.try_swap(&seg, &mut st, reason.clone()) {
                        continue;
                    }
                    // No next segment yet: keep writing here; the
                    // background thread cuts as soon as one is ready.
                    self.defer_cut(&mut st, reason);
                    seg.overshoot.store(true, Ordering::Relaxed);
                    self.kick();
                }
            }
            if st.held.is_empty() && !seg.failing.load(Ordering::SeqCst) {
                drop(st);
                match self.write_now(&seg, buf) {
                    Fast::Done => return Ok(()),
                    _ => continue,
                }
            }
            // Writes are failing: queue behind the held records, in order,
            // within the memory bound.
            // A runtime thread (an error handler) never waits: the task
            // that writes the held records may need this very thread.
            while st.held_bytes + buf.len() > self.cfg.max_held
                && !st.held.is_empty()
                && !st.closed
                && !self.rt.on_runtime_thread()
            {
                st = seg.space.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.closed {
                continue;
            }
            if st.held.is_empty() && !seg.failing.load(Ordering::SeqCst) {
                continue;
            }
            st.accepted += 1;
            st.accepted_bytes += buf.len() as u64;
            st.held.push_back(buf.to_vec());
            st.held_bytes += buf.len();
            return Ok(());
        }
    }

    /// The lock-free path: checks the size limit and the time boundary on
    /// atomics, then writes. Anything else goes to the locked path.
    pub(crate) fn try_fast(&self, seg: &Segment, buf: &[u8]) -> Fast {
        if self.cfg.interval.is_some() {
            let now = self.cfg.clock.now().as_millisecond();
            if now >= seg.deadline_ms.load(Ordering::Relaxed) {
                return Fast::Locked;
            }
        }
        if let Some(max) = self.cfg.max_size {
            if !seg.overshoot.load(Ordering::Relaxed) {
                let planned = seg.reserved.load(Ordering::Relaxed)
                    + seg.others()
                    + seg.locked_bytes.load(Ordering::Relaxed);
                if planned > 0 && planned + buf.len() as u64 > max {
                    return Fast::Locked;
                }
            }
        }
        self.write_now(seg, buf)
    }

    /// Writes one record with one `write(2)`, registered in `flight`.
    pub(crate) fn write_now(&self, seg: &Segment, buf: &[u8]) -> Fast {
        seg.flight.fetch_add(1, Ordering::SeqCst);
        if seg.closed.load(Ordering::SeqCst) || seg.failing.load(Ordering::SeqCst) {
            self.leave(seg, false);
            return Fast::Closed;
        }
        seg.reserved.fetch_add(buf.len() as u64, Ordering::Relaxed);
        match crate::sys::write_all(&seg.file, buf) {
            Ok(()) => {
                if self.cfg.fsync == Fsync::Always {
                    if let Err(e) = seg.sync_records(&self.dir) {
                        seg.lock().error = Some(e);
                        self.kick();
                    }
                }
                if seg.probe_due(1) {
                    self.probe(seg, 0);
                }
                self.leave(seg, true);
                Fast::Done
            }
            Err((e, written)) => {
                // SeqCst: pairs with the `flight` increment of writers, who
                // then take the locked path.
                seg.failing.store(true, Ordering::SeqCst);
                seg.reserved
                    .fetch_sub((buf.len() - written) as u64, Ordering::Relaxed);
                // Counted before this write leaves `flight`, until its
                // record is held: the segment is not quiet meanwhile, so it
                // is not sealed without the record.
                // SeqCst: read with `flight` by `Segment::is_quiet`.
                seg.failing_writes.fetch_add(1, Ordering::SeqCst);
                self.leave(seg, false);
                self.failed_write(seg, buf, e, written);
                Fast::Done
            }
        }
    }

    /// Shared mode: looks at the segment's file (one `fstat`) and at the
    /// cut file (one `pread`). The file's length less this process's bytes
    /// (`reserved`, plus `own` counted under the segment's lock) is what
    /// the other processes wrote, for the size limit. If the cut file names
    /// another segment (or the cutter marked this one read-only), another
    /// process cut it: the background thread follows now rather than at
    /// its next check.
    pub(crate) fn probe(&self, seg: &Segment, own: u64) {
        let Ok(info) = crate::sys::file_info(&seg.file) else {
            return;
        };
        // Relaxed: an estimate (see Segment::others).
        let mine = seg.reserved.load(Ordering::Relaxed) + own;
        seg.set_others(info.len.saturating_sub(mine));
        let moved_on = self
            .cut
            .as_ref()
            .and_then(crate::coordinate::share::peek_state)
            .is_some_and(|st| st.seq != seg.seq);
        let marked = self.cfg.file_mode & 0o200 != 0 && info.mode & 0o200 == 0;
        if (moved_on || marked) && seg.mark_stale() {
            self.kick();
        }
    }

    /// Ends a write registered in `flight`, counting its record if it was
    /// written.
    pub(crate) fn leave(&self, seg: &Segment, written: bool) {
        let prev = if written {
            seg.flight.fetch_add(RECORD - 1, Ordering::SeqCst)
        } else {
            seg.flight.fetch_sub(1, Ordering::SeqCst)
        };
        if prev & INFLIGHT == 1 && seg.closed.load(Ordering::SeqCst) {
            // The last write on a closed segment: it can be sealed now.
            self.kick();
        }
    }

    /// After a failed write (counted in `failing_writes`): waits until no
    /// other write is under way, cuts off the partial record if it is the
    /// last thing in the file, and holds the record (accepted: `write`
    /// returns `Ok`) for the background thread to write.
    pub(crate) fn failed_write(&self, seg: &Segment, buf: &[u8], err: io::Error, written: usize) {
        let mut st = seg.lock();
        // Not `is_quiet`: other failed writes in this wait count there.
        while seg.flight.load(Ordering::SeqCst) & INFLIGHT != 0 {
            // Writes under way finish in a system call's time; no new one
            // starts (`failing` is set).
            drop(st);
            std::thread::yield_now();
            st = seg.lock();
        }
        let mut err = err;
        if written > 0 && seg.is_shared() {
            // Other processes append to this file: cutting it back could
            // cut off their records. The fragment stays, counted.
            err = io::Error::new(
                err.kind(),
                format!("{err}; {written} bytes of the failed record remain in the shared file"),
            );
        } else if written > 0 {
            let kept = written as u64;
            let at_end = crate::sys::file_info(&seg.file).ok().and_then(|i| {
                let start = i.len.checked_sub(kept)?;
                let mut tail = vec![0u8; written];
                std::os::unix::fs::FileExt::read_exact_at(&seg.file, &mut tail, start).ok()?;
                (tail == buf[..written]).then_some(start)
            });
            match at_end.map(|start| crate::sys::truncate(&seg.file, start)) {
                Some(Ok(())) => {
                    seg.reserved.fetch_sub(kept, Ordering::Relaxed);
                }
                _ => {
                    // Another write landed after the fragment (or it could
                    // not be removed): it stays, counted (in `reserved`) so
                    // the length and checksum describe the file, and the
                    // error says so.
                    err = io::Error::new(
                        err.kind(),
                        format!("{err}; {written} bytes of the failed record remain in the file"),
                    );
                }
            }
        }
        st.accepted += 1;
        st.accepted_bytes += buf.len() as u64;
        st.held.push_back(buf.to_vec());
        st.held_bytes += buf.len();
        st.error = Some(err);
        // SeqCst: see the increment in `write_now`.
        seg.failing_writes.fetch_sub(1, Ordering::SeqCst);
        drop(st);
        self.kick();
    }
}
