//! Records held after failed writes: reported, retried once the backoff
//! allows, and cut to the next segment where they do not fit.

use std::sync::Arc;

use jiff::Timestamp;
use logcut_format::manifest::SealReason;

use super::{Coordinator, worker::Worker};
use crate::{
    Error,
    segment::{SegState, Segment},
};

/// At most this many cuts for held records in one retry (each writes a
/// segment's worth); the rest waits for the next wake-up, which comes at
/// once while records are held.
const HELD_CUTS_PER_RETRY: usize = 64;

impl<C: Coordinator> Worker<C> {
    pub(super) fn report_write_errors(&mut self) {
        for seg in self.live() {
            let err = seg.lock().error.take();
            if let Some(e) = err {
                let path = self.path_of(&seg);
                self.note_write_failure(Error::io("write record", path, e), false);
            }
        }
    }

    /// Writes records held after failed writes, once the backoff allows.
    pub(super) fn retry_held(&mut self, now: Timestamp) {
        if !self.write.allow(now) {
            return;
        }
        if self.batch.is_some() {
            self.process_batch();
            if self.batch.is_some() {
                return;
            }
        }
        // A cut for held records that do not fit gives the next segment
        // records to write at once: go on until everything is written (or
        // a write fails), not one segment per wake-up.
        for _ in 0..HELD_CUTS_PER_RETRY {
            if !self.drain_live_held() {
                return;
            }
            if self.sh.lock_next().is_empty() && self.prepare.allow(now) {
                C::prepare_next(self);
            }
        }
    }

    /// One pass of `retry_held` over the live segments, oldest first.
    /// Returns true if it cut the current segment (its successor then
    /// holds records to write).
    pub(super) fn drain_live_held(&mut self) -> bool {
        for seg in self.live() {
            let mut st = seg.lock();
            // While a combiner writes, the file is its; it moves anything
            // queued behind the held records and leaves.
            if st.held.is_empty() || !seg.is_quiet() {
                continue;
            }
            // Written within the size limit: what does not fit goes to
            // the next segment (the cut moves it there). A segment already
            // cut has no next one for them: writes that were under way at
            // its cut may have taken the room its held records were
            // counted in, and those records come before everything in its
            // successor, so they go to it past the limit, in order.
            let current = !st.closed && Arc::ptr_eq(&self.sh.path.current.load_full(), &seg);
            let max = self.sh.cfg.max_size.filter(|_| current);
            let res = seg.drain_held_within(&mut st, max);
            let swapped = match res {
                Ok(false) => {
                    // Everything held is written: writers may take the
                    // lock-free path again (they were waiting on this lock).
                    seg.failing
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    false
                }
                Ok(true) => self.cut_for_held(&seg, &mut st),
                Err(_) => false,
            };
            drop(st);
            seg.space.notify_all();
            match res {
                Ok(_) => self.write_recovered(),
                Err(e) => {
                    let path = self.path_of(&seg);
                    self.note_write_failure(Error::io("write held records", path, e), true);
                    return false;
                }
            }
            // A deferred cut (no next segment ready) is made now where the
            // mode can: the rest goes on in this retry, not the next round.
            let swapped = swapped
                || (matches!(res, Ok(true))
                    && seg.lock().cut_pending.is_some()
                    && C::cut_held_now(self, &seg));
            if swapped {
                self.after_swap();
                return true;
            }
        }
        false
    }

    /// The current segment is full and still holds records (written out
    /// after a failure): cut it, the rest going to the next segment. If no
    /// next segment is ready, the cut waits (`cut_if_due` makes it once
    /// one is) while creating one still succeeds; while creation fails,
    /// the records go to this segment after all, past the limit, as
    /// records do in the fallback. Returns true if it swapped.
    pub(super) fn cut_for_held(&mut self, seg: &Arc<Segment>, st: &mut SegState) -> bool {
        if st.closed || !Arc::ptr_eq(&self.sh.path.current.load_full(), seg) {
            return false;
        }
        if self.sh.try_swap(seg, st, SealReason::Size) {
            return true;
        }
        if self.prepare.open_until.is_some() {
            if seg.drain_held(st).is_ok() {
                seg.failing
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
        } else {
            self.sh.defer_cut(st, SealReason::Size);
            seg.overshoot
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        false
    }
}
