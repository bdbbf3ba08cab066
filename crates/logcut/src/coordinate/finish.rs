//! Shutdown, on the caller's thread: write what can be written within the
//! timeout, close and seal the last segment, count what could not be
//! written, record the session's totals, and let the keeper catch up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use logcut_format::manifest::SealReason;

use super::{
    Coordinator,
    worker::{Poll, Worker, reply},
};
use crate::{
    Error, Mode,
    append::state::Cmd,
    seal::sealer::{CloseJob, Job},
    sealed::keeper,
    segment::Segment,
    stats::Counters,
};

impl<C: Coordinator> Worker<C> {
    /// Writes everything it can within the shutdown timeout, seals the last
    /// segment, counts and records what could not be written, and records
    /// the session's totals.
    pub(super) fn finish(&mut self) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let deadline = Instant::now()
            .checked_add(sh.cfg.shutdown_timeout)
            .unwrap_or_else(far_future);
        *sh.close_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        // No cut starts elsewhere from now on (one under way ends first):
        // the rounds below promote every cut made so far.
        C::stop_cuts(self);
        self.finish_rounds(deadline);
        C::before_last(self);
        // The last segment: closed, nothing more goes in. Empty the pool of
        // prepared segments first, so that no writer still under way can
        // swap in a new one; then take the segment that is current after
        // any swap that was already happening.
        let unused: Vec<Arc<Segment>> = sh.lock_next().drain(..).collect();
        let cur = self.close_current();
        self.wait_quiet(deadline);
        self.count_unwritten();
        let mut first_err: Option<Error> = None;
        // Give the last segment its sealed name, or remove it if empty.
        let (records, accepted) = {
            let st = cur.lock();
            let fast = cur.fast_records();
            (st.records + fast, st.accepted + fast)
        };
        if let Err(e) = C::finish_last(self, &cur, records, accepted) {
            first_err.get_or_insert(e);
        }
        for next in unused {
            if let Err(e) = sh.dir.unlink(&next.prep_name) {
                first_err.get_or_insert(Error::io(
                    "remove unused next segment",
                    sh.dir.join(&next.prep_name),
                    e,
                ));
            }
        }
        self.seal_ready();
        if let Err(e) = self.close_sealer(deadline) {
            first_err.get_or_insert(e);
        }
        self.close_keeper();
        #[cfg(feature = "metrics")]
        crate::metrics::publish(&sh.cfg.name, &sh.stats());
        // The session is recorded as closed: another appender may take the
        // log now.
        sh.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.outcome(first_err)
    }

    /// Shutdown's rounds: write, promote, seal, retry, until nothing waits
    /// or the deadline passed.
    fn finish_rounds(&mut self, deadline: Instant) {
        let sh = Arc::clone(&self.sh);
        let mut retry = sh.cfg.backoff_min.min(Duration::from_millis(10));
        loop {
            let _ = self.wait_nonblocking();
            self.process_batch();
            // During shutdown, retries follow real time, not the clock.
            self.write.open_until = None;
            self.prepare.open_until = None;
            self.housekeeping();
            let pending_records = { !sh.lock_inbox().ends.is_empty() };
            let unsealed = sh.lock_inbox().sealing.len();
            if self.batch.is_none() && !pending_records && !self.has_held() && unsealed == 0 {
                return;
            }
            if Instant::now() >= deadline {
                return;
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(retry);
            let q = sh.lock_inbox();
            let _ = sh.mail.wake.wait_timeout(q, left);
            retry = (retry * 2).min(Duration::from_millis(500));
        }
    }

    /// Closes the current segment (the one current after any swap already
    /// happening) and returns it.
    fn close_current(&self) -> Arc<Segment> {
        let sh = &self.sh;
        loop {
            let cur = sh.path.current.load_full();
            let mut st = cur.lock();
            if !Arc::ptr_eq(&sh.path.current.load_full(), &cur) {
                continue;
            }
            st.closed = true;
            st.reason = Some(SealReason::Shutdown);
            return Arc::clone(&cur);
        }
    }

    /// Lets writes already under way finish (queued writers take over from
    /// a leaving combiner, so this ends), on every live segment, before
    /// what is held is counted; bounded, for a write stuck in the kernel.
    fn wait_quiet(&self, deadline: Instant) {
        let quiet_deadline = deadline.max(Instant::now() + Duration::from_secs(1));
        for seg in self.live() {
            // A write under way ends within a system call; no new one
            // starts on a closed segment.
            while !seg.is_quiet() && Instant::now() < quiet_deadline {
                std::thread::yield_now();
            }
        }
    }

    /// Whatever is still held or queued could not be written in time:
    /// counted as lost.
    fn count_unwritten(&mut self) {
        let sh = Arc::clone(&self.sh);
        let mut lost_now = (0u64, 0u64);
        if let Some(b) = self.batch.take() {
            let n = (b.ends.len() - b.next) as u64;
            let start = if b.next == 0 { 0 } else { b.ends[b.next - 1] };
            lost_now.0 += n;
            lost_now.1 += (b.buf.len() - start) as u64;
        }
        {
            // Records still queued behind the failed batch.
            let mut q = sh.lock_inbox();
            lost_now.0 += q.ends.len() as u64;
            lost_now.1 += q.buf.len() as u64;
            q.ends.clear();
            q.buf.clear();
        }
        for seg in self.live() {
            let mut st = seg.lock();
            lost_now.0 += st.held.len() as u64;
            lost_now.1 += st.held_bytes as u64;
            st.held.clear();
            st.held_bytes = 0;
            drop(st);
            seg.space.notify_all();
        }
        self.lost_records += lost_now.0;
        self.lost_bytes += lost_now.1;
        Counters::add(&sh.counters.records_lost, lost_now.0);
        Counters::add(&sh.counters.bytes_lost, lost_now.1);
    }

    /// Hands the session's totals to the sealer, which seals what is left
    /// and records the close; waits for it.
    fn close_sealer(&mut self, deadline: Instant) -> Result<(), Error> {
        let accepted = match self.sh.cfg.mode {
            Mode::Direct => None,
            Mode::Buffered => Some(self.sh.lock_inbox().accepted),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let close = CloseJob {
            lost_records: self.lost_records,
            lost_bytes: self.lost_bytes,
            accepted,
            extra_accepted: self.accepted,
            deadline: deadline.max(Instant::now() + Duration::from_millis(100)),
            reply: tx,
        };
        if self.sealer.send(Job::Close(close)).is_ok() {
            rx.recv().unwrap_or_else(|_| Err(Error::shutdown("seal")))
        } else {
            Err(Error::shutdown("seal"))
        }
    }

    /// Every segment is sealed and handed over: lets the keeper compress
    /// what waits (within the shutdown timeout; the rest waits for the
    /// next start) and apply retention a last time.
    fn close_keeper(&mut self) {
        if let Some(k) = self.keeper.take() {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let until = Instant::now()
                .checked_add(self.sh.cfg.shutdown_timeout)
                .unwrap_or_else(far_future);
            let msg = keeper::Msg::Shutdown {
                until,
                last_out: self.last_out,
                reply: tx,
            };
            if k.send(msg).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// Shutdown's result: records lost first, then the first error.
    fn outcome(&self, first_err: Option<Error>) -> Result<(), Error> {
        let sh = &self.sh;
        if self.lost_records > 0 {
            let err = Error::lost(
                sh.dir.join(&sh.active_name),
                self.lost_records,
                self.lost_bytes,
            );
            sh.report(err.clone());
            return Err(err);
        }
        match first_err {
            Some(e) => {
                sh.report(e.clone());
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Takes whatever records and commands are queued, without waiting.
    pub(super) fn wait_nonblocking(&mut self) -> Vec<Cmd> {
        {
            let mut q = self.sh.lock_inbox();
            q.kick = true;
        }
        let urgent = match self.poll() {
            Poll::Work(u) => u,
            Poll::Sleep(_) => Vec::new(),
        };
        for c in urgent {
            reply(c, Err(Error::shutdown("tick")));
        }
        Vec::new()
    }
}

/// An instant a year away: "no deadline" where an `Instant` is needed.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
