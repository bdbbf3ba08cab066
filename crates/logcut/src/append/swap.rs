//! The cut on the write path: whether a record must go to a new segment
//! (size and time policy), and the swap that installs the prepared next
//! segment in place of the current one.

use std::sync::{Arc, atomic::Ordering};

use jiff::Timestamp;
use logcut_format::manifest::SealReason;

use crate::{
    append::state::Shared,
    segment::{SegState, Segment},
    stats::Counters,
};

impl Shared {
    /// Whether the record about to be written must go to a new segment.
    pub(crate) fn cut_due(
        &self,
        seg: &Segment,
        st: &mut SegState,
        len: usize,
    ) -> Option<SealReason> {
        if st.deadline.is_some() && self.time_cut_due(seg, st, self.cfg.clock.now()) {
            return Some(SealReason::Time);
        }
        if let Some(max) = self.cfg.max_size {
            if seg.has_records(st) && seg.planned_bytes(st) + len as u64 > max {
                return Some(SealReason::Size);
            }
        }
        None
    }

    /// The time policy, for the writers and the background thread alike:
    /// true if the segment's boundary has passed and it holds at least
    /// `min_size` bytes. A segment below `min_size` waits for the next
    /// boundary. An empty segment whose interval passed starts over in the
    /// current interval (its name then says when that began), so that a
    /// segment never spans an interval it holds no record of.
    pub(crate) fn time_cut_due(&self, seg: &Segment, st: &mut SegState, now: Timestamp) -> bool {
        let (Some(deadline), Some(iv)) = (st.deadline, self.cfg.interval) else {
            return false;
        };
        if now < deadline {
            return false;
        }
        let tz = &self.cfg.tz;
        if !seg.has_records(st) {
            let mut begin = deadline;
            // Bounded: after a very long idle time the start is simply now.
            for _ in 0..10_000 {
                let next = iv.next_boundary(begin, tz);
                if next > now {
                    break;
                }
                begin = next;
            }
            st.start = st.start.max(begin);
            seg.set_deadline(st, Some(iv.next_boundary(begin.max(now), tz)));
            return false;
        }
        if seg.planned_bytes(st) >= self.cfg.min_size {
            return true;
        }
        seg.set_deadline(st, Some(iv.next_boundary(deadline.max(now), tz)));
        false
    }

    /// A cut is due but no next segment is ready: it waits (`cut_pending`)
    /// until the background thread has one, and is counted once, as
    /// deferred.
    pub(crate) fn defer_cut(&self, st: &mut SegState, reason: SealReason) {
        if st.cut_pending.is_none() {
            Counters::add(&self.counters.cuts_deferred, 1);
            if self.cfg.mode == crate::Mode::Direct {
                if let Some(a) = self.path.refill.get() {
                    a.refill();
                }
            }
        }
        st.cut_pending = Some(reason);
    }

    /// Installs the prepared next segment in place of `old`, whose lock the
    /// caller holds as `st`. Returns false if no next segment is ready.
    pub(crate) fn try_swap(
        &self,
        old: &Arc<Segment>,
        st: &mut SegState,
        reason: SealReason,
    ) -> bool {
        let Some(new) = self.lock_next().pop_front() else {
            return false;
        };
        let now = self.cfg.clock.now();
        let mut start = now;
        if reason == SealReason::Time {
            if let Some(d) = st.deadline.filter(|d| *d <= now) {
                start = d;
            }
        }
        if start < st.start {
            start = st.start;
        }
        // Held records that do not fit under the size limit go first in
        // the new segment, before it is visible to writers.
        let excess = old.take_excess(st, self.cfg.max_size);
        {
            let mut ns = new.lock();
            new.give_held(&mut ns, excess);
            ns.start = start;
            let deadline = self
                .cfg
                .interval
                .map(|iv| iv.next_boundary(start, &self.cfg.tz));
            new.set_deadline(&mut ns, deadline);
        }
        self.path.current.store(new);
        st.closed = true;
        // SeqCst: pairs with the writers' `flight` increment (see Segment).
        old.closed.store(true, Ordering::SeqCst);
        old.overshoot.store(false, Ordering::Relaxed);
        st.reason = Some(reason);
        st.cut_pending = None;
        // Writers waiting for room behind held records go to the new one.
        old.space.notify_all();
        let mut q = self.lock_inbox();
        // Two swaps in a row can push out of order (the second writer may
        // get here first): keep the list in sequence order.
        let at = q.sealing.partition_point(|s| s.seq < old.seq);
        q.sealing.insert(at, Arc::clone(old));
        q.kick = true;
        q.sleeping = false;
        self.mail.wake.notify_one();
        true
    }
}
