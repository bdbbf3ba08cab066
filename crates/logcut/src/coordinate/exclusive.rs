//! Exclusive mode's cut: this appender alone writes the log. Next segments
//! are prepared ahead, off the writers' path, into a pool (`Ahead`, refilled
//! by a one-shot task on the runtime); a cut takes one and swaps it in, and
//! the worker then promotes the old segment to its sealed name.

use std::{
    io,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use jiff::Timestamp;
use logcut_format::{manifest::SealReason, name};

use super::{
    Coordinator,
    worker::{PREPARE_AHEAD, Worker},
};
use crate::append::state::Shared;
use crate::{
    Error,
    segment::{SegState, Segment},
};

/// The exclusive mode's state: the pool's refill, how many cuts had found
/// the pool empty when its size was last looked at, and the segment that
/// was active when the pool last changed size.
pub(super) struct ExclusiveLog {
    ahead: Arc<Ahead>,
    seen_deferred: u64,
    resized_at: u64,
}

impl ExclusiveLog {
    /// Segments are numbered from `next_seq` on; a writer whose cut finds
    /// the pool empty starts a refill through `sh`'s write path.
    pub(super) fn new(sh: &Arc<Shared>, next_seq: u64) -> ExclusiveLog {
        let ahead = Arc::new(Ahead::new(next_seq));
        ahead.set_log(sh);
        let _ = sh
            .path
            .refill
            .set(Arc::new(Arc::clone(&ahead)) as Arc<dyn crate::context::Refill>);
        ExclusiveLog {
            ahead,
            seen_deferred: 0,
            resized_at: next_seq,
        }
    }
}

type W = Worker<ExclusiveLog>;

impl Coordinator for ExclusiveLog {
    fn start(w: &mut W) {
        // Before the first write can need one; a failure is reported, and
        // the first cut tries again.
        fill_here(w, PREPARE_AHEAD);
    }

    /// Creates one next segment on this task if the pool is empty (after
    /// a refill under way, which may bring it).
    fn prepare_next(w: &mut W) -> Option<Error> {
        Self::collect(w);
        fill_here(w, 1)
    }

    /// Refills the pool on another runtime thread, so that a cut never
    /// waits for a file to be created (on a busy file system a creation
    /// takes a millisecond or more, and this task would stop writing
    /// meanwhile). At most one such refill runs at a time.
    fn prepare_ahead(w: &mut W) {
        // The last refill's outcome first: a failure opens the breaker.
        Self::collect(w);
        if !w.prepare.allow(w.now()) {
            return;
        }
        resize_pool(w);
        if w.sh.lock_next().len() >= w.mode.ahead.want() || !w.mode.ahead.start() {
            return;
        }
        let job = AheadJob {
            sh: Arc::clone(&w.sh),
            ahead: Arc::clone(&w.mode.ahead),
        };
        w.sh.rt.spawn(crate::runtime::Lane::Core, Box::new(job));
    }

    /// Refills the pool on this task if a refill is due (its backoff
    /// passed), after one under way.
    fn prepare_due(w: &mut W) {
        Self::collect(w);
        if w.prepare.allow(w.now()) {
            fill_here(w, w.mode.ahead.want());
        }
    }

    /// The outcome of the last background refill: a failure counts as a
    /// rotation failure (backoff, fallback state, the handler).
    fn collect(w: &mut W) {
        match w.mode.ahead.outcome() {
            Some(Ok(())) if w.prepare.failures > 0 => {
                w.prepare.succeed();
                w.set_fallback();
            }
            Some(Err(e)) => w.rotation_failed(e),
            Some(Ok(())) | None => {}
        }
    }

    fn wants_segments(w: &W) -> bool {
        w.sh.lock_next().len() < w.mode.ahead.want() && !w.mode.ahead.busy()
    }

    fn preparing(w: &W) -> bool {
        w.mode.ahead.busy()
    }

    fn backoff_changed(w: &W, until: Option<Timestamp>) {
        // A refill a writer starts keeps to the same backoff.
        w.mode.ahead.block_until(until);
    }

    /// Moves every swapped-out segment that still sits at the active path
    /// to its sealed name, and the segment that replaced it from the next
    /// path to the active path.
    fn promote_pending(w: &mut W) -> Result<(), Error> {
        let sealing = w.sh.lock_inbox().sealing.clone();
        let current = w.sh.path.current.load_full();
        for seg in &sealing {
            if seg.lock().sealed_name.is_some() {
                continue;
            }
            // Only the segment at the active path can move, and only once
            // its successor (the next sequence number: prepared segments
            // are installed in order) is known. A writer that swapped may
            // not have listed its old segment yet; it kicks this thread
            // when it has.
            if seg.seq != w.active_seq {
                return Ok(());
            }
            let successor = match sealing.iter().find(|s| s.seq == seg.seq + 1) {
                Some(s) => s,
                None if current.seq == seg.seq + 1 => &current,
                None => return Ok(()),
            };
            w.promote(seg, Some(successor))?;
            w.active_seq = seg.seq + 1;
        }
        Ok(())
    }

    fn before_batch(_: &mut W, _: &Arc<Segment>, _: &mut bool) -> bool {
        true
    }

    fn cut_in_batch<'a>(
        w: &mut W,
        seg: &'a Arc<Segment>,
        mut st: MutexGuard<'a, SegState>,
        reason: SealReason,
        now: Timestamp,
    ) {
        if w.sh.lock_next().is_empty() && w.prepare.allow(now) {
            // This thread is the only writer here: preparing the next
            // segment now delays no caller, and keeps the cut exact.
            drop(st);
            Self::prepare_next(w);
            st = seg.lock();
        }
        Self::cut_due(w, seg, st, reason, now);
    }

    fn cut_due<'a>(
        w: &mut W,
        seg: &'a Arc<Segment>,
        mut st: MutexGuard<'a, SegState>,
        reason: SealReason,
        _: Timestamp,
    ) {
        if w.sh.try_swap(seg, &mut st, reason.clone()) {
            drop(st);
            w.after_swap();
        } else {
            w.sh.defer_cut(&mut st, reason);
        }
    }

    fn rotate(w: &mut W) -> Result<(), Error> {
        Self::promote_pending(w)?;
        let cur = w.sh.path.current.load_full();
        {
            let st = cur.lock();
            if !cur.has_records(&st) {
                return Ok(());
            }
        }
        // An explicit request tries at once, whatever the backoff.
        swap_now(w, &cur, SealReason::Manual, "rotate")
    }

    /// If the active path no longer holds the active segment (someone
    /// renamed or removed it), cuts, and installs the next segment there.
    fn reopen(w: &mut W) -> Result<(), Error> {
        Self::promote_pending(w)?;
        if !w.all_promoted() {
            // A cut is under way; its promotion checks the path itself.
            return Ok(());
        }
        let cur = w.sh.path.current.load_full();
        if cur.seq != w.active_seq {
            return Ok(());
        }
        let sh = Arc::clone(&w.sh);
        let here = sh
            .dir
            .stat(&sh.active_name)
            .map_err(|e| Error::io("check active file", sh.dir.join(&sh.active_name), e))?;
        if here.is_some_and(|i| i.dev == cur.id.dev && i.ino == cur.id.ino) {
            return Ok(());
        }
        swap_now(w, &cur, SealReason::Reopen, "reopen")
    }

    fn check_due(w: &W, interval_passed: bool, now: Timestamp) -> bool {
        // The check may cut: it waits for the backoff like every cut.
        interval_passed && w.prepare.allow(now)
    }

    /// Whether a writer swapped segments and the old one is not at its
    /// sealed name yet (or not even listed: the writer lists it right after
    /// the swap, and kicks this task).
    fn cut_under_way(w: &W) -> bool {
        w.sh.path.current.load().seq != w.active_seq || !w.all_promoted()
    }

    fn stop_cuts(w: &mut W) {
        // No refill makes a cut from now on (one under way ends first).
        w.mode.ahead.stop_cuts();
    }

    fn before_last(w: &mut W) {
        // A refill under way ends first; none follows.
        w.mode.ahead.close();
    }

    fn finish_last(
        w: &mut W,
        cur: &Arc<Segment>,
        records: u64,
        accepted: u64,
    ) -> Result<(), Error> {
        let sh = Arc::clone(&w.sh);
        if !w.all_promoted() {
            // Its records are recovered at the next start; keep the close
            // entry's count consistent with what was accepted.
            w.accepted += accepted;
            return Err(Error::io(
                "shut down",
                sh.dir.join(&sh.active_name),
                io::Error::other(
                    "earlier segments could not be renamed; the next start recovers them",
                ),
            ));
        }
        if records == 0 {
            w.accepted += accepted;
            return sh
                .dir
                .unlink(&sh.active_name)
                .map_err(|e| Error::io("remove empty segment", sh.dir.join(&sh.active_name), e));
        }
        w.promote(cur, None)?;
        sh.lock_inbox().sealing.push(Arc::clone(cur));
        Ok(())
    }
}

/// Grows the pool when a cut found it empty since the last look (the
/// writers cut faster than this task refills between its turns on a
/// thread: a busy machine), and shrinks it back once many cuts went by
/// without that, removing the segments it no longer keeps: a log past its
/// burst does not hold dozens of open files.
fn resize_pool(w: &mut W) {
    // Relaxed: a counter read on its own.
    let deferred = w.sh.counters.cuts_deferred.load(Ordering::Relaxed);
    let found_empty = deferred > w.mode.seen_deferred;
    w.mode.seen_deferred = deferred;
    let want = w.mode.ahead.want();
    let calm_cuts = w.active_seq.saturating_sub(w.mode.resized_at);
    let new = pool_size(want, found_empty, calm_cuts);
    if new == want {
        return;
    }
    w.mode.resized_at = w.active_seq;
    w.mode.ahead.set_want(new);
    if new < want {
        if let Err(e) = w.mode.ahead.trim(&w.sh, new) {
            w.sh.report(e);
        }
    }
}

/// How many next segments to keep ready: `want` doubled (up to
/// `MAX_AHEAD`) when a cut found the pool empty; halved (down to
/// `PREPARE_AHEAD`) after `calm_cuts`, eight times `want` cuts in a row,
/// found it ready.
fn pool_size(want: usize, found_empty: bool, calm_cuts: u64) -> usize {
    if found_empty {
        (want * 2).min(MAX_AHEAD)
    } else if calm_cuts >= 8 * want as u64 {
        (want / 2).max(PREPARE_AHEAD)
    } else {
        want
    }
}

/// Creates next segments on this task until `want` are ready; the outcome
/// goes to the breaker (and a failure to the handler).
fn fill_here(w: &mut W, want: usize) -> Option<Error> {
    match w.mode.ahead.fill(&w.sh, want) {
        Ok(()) => {
            w.prepare.succeed();
            w.set_fallback();
            None
        }
        Err(err) => {
            w.rotation_failed(err.clone());
            Some(err)
        }
    }
}

/// Cuts `cur` now for `rotate` or `reopen`: creates a next segment here if
/// the pool is empty, swaps, and promotes.
fn swap_now(
    w: &mut W,
    cur: &Arc<Segment>,
    reason: SealReason,
    op: &'static str,
) -> Result<(), Error> {
    if w.sh.lock_next().is_empty() {
        if let Some(e) = ExclusiveLog::prepare_next(w) {
            return Err(e);
        }
    }
    {
        let mut st = cur.lock();
        if !st.closed && !w.sh.try_swap(cur, &mut st, reason) {
            return Err(Error::io(
                op,
                w.sh.dir.join(&w.sh.active_name),
                io::Error::other("no next segment is ready"),
            ));
        }
    }
    ExclusiveLog::promote_pending(w)?;
    ExclusiveLog::prepare_ahead(w);
    Ok(())
}

/// The next sequence number to prepare, and the state of the refill on the
/// runtime: shared by the worker and the refill task. Creation happens under
/// `next`, so the worker creating a segment itself (the pool is empty and a
/// cut needs one now) waits for a refill under way rather than racing it
/// for a sequence number.
#[derive(Debug)]
struct Ahead {
    next: Mutex<AheadState>,
    /// A refill task is queued or running.
    busy: AtomicBool,
    /// The last refill's outcome, for the worker (apart from `next`, which
    /// a refill holds while it creates files: the worker looks at this
    /// every round without waiting for it).
    outcome: Mutex<Option<Result<(), Error>>>,
    /// How many next segments to keep ready: `PREPARE_AHEAD`, doubled
    /// (up to `MAX_AHEAD`) each time a cut found the pool empty.
    want: AtomicUsize,
    /// While creation fails: no refill before this time (the worker's
    /// backoff, which a refill a writer starts keeps to as well).
    blocked_until: Mutex<Option<Timestamp>>,
    /// The log, for a refill a writer asks for (`refill`).
    log: std::sync::OnceLock<std::sync::Weak<Shared>>,
}

/// The most next segments kept ready (each an open, empty file).
const MAX_AHEAD: usize = 64;

#[derive(Debug)]
struct AheadState {
    next_seq: u64,
    /// Shutdown took the pool: nothing more is created.
    closed: bool,
    /// Shutdown began: a refill no longer makes a waiting cut.
    no_cuts: bool,
}

impl Ahead {
    fn new(next_seq: u64) -> Ahead {
        Ahead {
            next: Mutex::new(AheadState {
                next_seq,
                closed: false,
                no_cuts: false,
            }),
            outcome: Mutex::new(None),
            blocked_until: Mutex::new(None),
            busy: AtomicBool::new(false),
            want: AtomicUsize::new(PREPARE_AHEAD),
            log: std::sync::OnceLock::new(),
        }
    }

    fn block_until(&self, until: Option<Timestamp>) {
        *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    fn blocked(&self, now: Timestamp) -> bool {
        self.blocked_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now < t)
    }

    /// Set once by the worker, before any write.
    fn set_log(&self, sh: &Arc<Shared>) {
        let _ = self.log.set(Arc::downgrade(sh));
    }

    /// Direct mode, from a writer whose cut found the pool empty: starts a
    /// refill (which then makes the cut) unless one is under way, without
    /// waiting for the worker's next turn. Once per segment (the first
    /// time its cut waits), so a failing file system is not hammered.
    fn refill(self: &Arc<Ahead>) {
        let Some(sh) = self.log.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        // Acquire: pairs with shutdown's SeqCst store; a refill that starts
        // anyway finds the pool closed (`close`).
        if sh.path.closed.load(Ordering::Acquire)
            || self.blocked(sh.cfg.clock.now())
            || !self.start()
        {
            return;
        }
        let job = AheadJob {
            sh: Arc::clone(&sh),
            ahead: Arc::clone(self),
        };
        sh.rt.spawn(crate::runtime::Lane::Core, Box::new(job));
    }

    /// How many next segments to keep ready.
    fn want(&self) -> usize {
        // Relaxed: read and written by the worker task; the refill task
        // only reads it, and any recent value will do.
        self.want.load(Ordering::Relaxed)
    }

    fn set_want(&self, want: usize) {
        // Relaxed: see `want`.
        self.want.store(want, Ordering::Relaxed);
    }

    /// Removes prepared segments beyond `want`, the last ones first (their
    /// sequence numbers are handed out again). A segment whose file cannot
    /// be removed stays in the pool: its number must not be created again.
    fn trim(&self, sh: &Shared, want: usize) -> Result<(), Error> {
        // Under `next`: no refill creates meanwhile.
        let mut st = self.lock();
        while !st.closed {
            let seg = {
                let mut next = sh.lock_next();
                let last = next.back().is_some_and(|s| s.seq + 1 == st.next_seq);
                if next.len() <= want || !last {
                    return Ok(());
                }
                next.pop_back()
            };
            let Some(seg) = seg else {
                return Ok(());
            };
            if let Err(e) = sh.dir.unlink(&seg.prep_name) {
                let path = sh.dir.join(&seg.prep_name);
                sh.lock_next().push_back(seg);
                return Err(Error::io("remove unused next segment", path, e));
            }
            st.next_seq -= 1;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AheadState> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the refill: false if one is queued or running already.
    fn start(&self) -> bool {
        // AcqRel: pairs with the Release store at the end of a refill.
        !self.busy.swap(true, Ordering::AcqRel)
    }

    /// Whether a refill is queued or running (the worker then need not
    /// wake for the pool: the refill kicks it when done).
    fn busy(&self) -> bool {
        // Acquire: pairs with the Release store at the end of a refill.
        self.busy.load(Ordering::Acquire)
    }

    fn outcome(&self) -> Option<Result<(), Error>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Shutdown begins: waits for a refill under way, after which none
    /// makes a cut.
    fn stop_cuts(&self) {
        self.lock().no_cuts = true;
    }

    /// Creates next segments until `want` are ready (or the first failure).
    fn fill(&self, sh: &Shared, want: usize) -> Result<(), Error> {
        let mut st = self.lock();
        if st.closed {
            return Ok(());
        }
        while sh.lock_next().len() < want {
            let seq = st.next_seq;
            let file = name::prepared_file(&sh.cfg.name, seq);
            let now = sh.cfg.clock.now();
            let seg = sh
                .dir
                .create_new(&file, sh.cfg.file_mode)
                .and_then(|f| Segment::new(seq, file.clone(), f, now))
                .map_err(|e| Error::io("create next segment", sh.dir.join(&file), e))?;
            sh.lock_next().push_back(Arc::new(seg));
            st.next_seq += 1;
        }
        Ok(())
    }

    /// Shutdown: waits for a refill under way, and stops later ones.
    fn close(&self) {
        self.lock().closed = true;
    }
}

/// Direct mode: makes a cut that found the pool empty, now that it is
/// not, rather than leave it to the worker's next turn (on a busy machine
/// the writers fill segments meanwhile). Writers stop checking the size of
/// a segment whose cut waits, so nobody else would.
fn cut_deferred(sh: &Shared) {
    let cur = sh.path.current.load_full();
    let mut st = cur.lock();
    if st.closed {
        return;
    }
    if let Some(reason) = st.cut_pending.clone() {
        sh.try_swap(&cur, &mut st, reason);
    }
}

impl crate::context::Refill for Arc<Ahead> {
    fn refill(&self) {
        Ahead::refill(self);
    }
}

/// One refill of the pool, a one-shot task.
struct AheadJob {
    sh: Arc<Shared>,
    ahead: Arc<Ahead>,
}

impl crate::runtime::Task for AheadJob {
    fn run(&mut self) -> crate::runtime::Next {
        if self.ahead.blocked(self.sh.cfg.clock.now()) {
            // Creation failed since this refill was asked for: it waits for
            // the backoff like every other attempt.
            // Release: pairs with the Acquire loads in `start` and `busy`.
            self.ahead.busy.store(false, Ordering::Release);
            return crate::runtime::Next::Done;
        }
        let res = self.ahead.fill(&self.sh, self.ahead.want());
        if res.is_ok() && self.sh.cfg.mode == crate::Mode::Direct {
            // Under the lock, so that shutdown (`stop_cuts`) either waits
            // for this cut, and promotes it, or sees none.
            let st = self.ahead.lock();
            if !st.no_cuts && !st.closed {
                cut_deferred(&self.sh);
            }
        }
        *self.ahead.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(res);
        // Release: pairs with the Acquire loads in `start` and `busy`.
        self.ahead.busy.store(false, Ordering::Release);
        // The worker takes the outcome, and makes a cut that waited.
        self.sh.kick();
        crate::runtime::Next::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_doubles_up_to_its_bound_and_halves_after_calm_cuts() {
        let p = PREPARE_AHEAD;
        assert_eq!(pool_size(p, true, 0), 2 * p);
        assert_eq!(pool_size(MAX_AHEAD, true, 1000), MAX_AHEAD);
        let mut want = p;
        for _ in 0..10 {
            want = pool_size(want, true, 0);
        }
        assert_eq!(want, MAX_AHEAD);
        // Fewer than eight times its size in calm cuts: it stays.
        assert_eq!(
            pool_size(MAX_AHEAD, false, 8 * MAX_AHEAD as u64 - 1),
            MAX_AHEAD
        );
        assert_eq!(
            pool_size(MAX_AHEAD, false, 8 * MAX_AHEAD as u64),
            MAX_AHEAD / 2
        );
        assert_eq!(pool_size(p, false, 1_000_000), p);
        assert_eq!(pool_size(2 * p + 2, false, 1_000_000), p + 1);
        assert_eq!(pool_size(p + 1, false, 1_000_000), p);
    }

    #[test]
    fn one_refill_runs_at_a_time() {
        let a = Ahead::new(7);
        assert_eq!(a.want(), PREPARE_AHEAD);
        assert!(a.start());
        assert!(a.busy());
        assert!(!a.start(), "a second refill while one is under way");
        a.busy.store(false, Ordering::Release);
        assert!(a.start());
        assert!(a.outcome().is_none());
        assert_eq!(a.lock().next_seq, 7);
    }
}
