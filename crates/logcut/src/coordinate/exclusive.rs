//! Exclusive mode's side of the cut: the pool of prepared next segments,
//! and the promotion of a swapped-out segment to its sealed name (a hard
//! link, then the successor renamed over the active path), never
//! overwriting a file and noticing when someone else moved it.

use std::{
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use jiff::Timestamp;
use logcut_format::{
    lock::CutState,
    name::{self, SealedName},
};

use super::worker::{PREPARE_AHEAD, Worker};
use crate::append::state::Shared;
use crate::{Error, segment::Segment, stats::Counters};

impl Worker {
    // === Rotation ===

    /// Makes sure a next segment is ready, creating one at
    /// `<name>.log.next.<seq>` on this task if the pool is empty (after a
    /// creation under way on the runtime, which may bring it). Returns the
    /// error if it failed. For the paths that need a segment now: a cut
    /// with the pool empty, `rotate`, `reopen`; the pool is otherwise
    /// refilled off this task (`prepare_ahead`).
    pub(crate) fn prepare_next(&mut self) -> Option<Error> {
        self.collect_ahead();
        self.fill_here(1)
    }

    /// At start: fills the pool of next segments on this thread, before the
    /// first write can need one.
    pub(crate) fn prepare_pool(&mut self) -> Option<Error> {
        self.fill_here(PREPARE_AHEAD)
    }

    /// `tick`: refills the pool on this task if a refill is due (its
    /// backoff passed), after one under way.
    pub(super) fn prepare_due(&mut self) {
        self.collect_ahead();
        if self.prepare.allow(self.now()) {
            self.fill_here(self.ahead.want());
        }
    }

    /// Creates next segments on this task until `want` are ready; the
    /// outcome goes to the breaker (and a failure to the handler).
    fn fill_here(&mut self, want: usize) -> Option<Error> {
        if self.sh.cfg.shared {
            // Sequence numbers are handed out at the cut, under the cut
            // lock: nothing can be prepared ahead.
            return None;
        }
        match self.ahead.fill(&self.sh, want) {
            Ok(()) => {
                self.prepare.succeed();
                self.set_fallback();
                None
            }
            Err(err) => {
                self.rotation_failed(err.clone());
                Some(err)
            }
        }
    }

    /// Refills the pool of next segments on another runtime thread, so
    /// that a cut never waits for a file to be created (on a busy file
    /// system a creation takes a millisecond or more, and this task would
    /// stop writing meanwhile). At most one such task runs at a time.
    pub(super) fn prepare_ahead(&mut self) {
        // The last refill's outcome first: a failure opens the breaker.
        self.collect_ahead();
        if self.sh.cfg.shared || !self.prepare.allow(self.now()) {
            return;
        }
        // A cut found the pool empty since the last look: the writers cut
        // faster than this task refills between its turns on a thread (a
        // busy machine); keep more ready.
        // Relaxed: a counter read on its own.
        let deferred = self.sh.counters.cuts_deferred.load(Ordering::Relaxed);
        if deferred > self.seen_deferred {
            self.seen_deferred = deferred;
            self.ahead.grow();
        }
        if self.sh.lock_next().len() >= self.ahead.want() || !self.ahead.start() {
            return;
        }
        let job = AheadJob {
            sh: Arc::clone(&self.sh),
            ahead: Arc::clone(&self.ahead),
        };
        self.sh.rt.spawn(crate::runtime::Lane::Core, Box::new(job));
    }

    /// The outcome of the last background refill: a failure counts as a
    /// rotation failure (backoff, fallback state, the handler).
    pub(super) fn collect_ahead(&mut self) {
        match self.ahead.outcome() {
            Some(Ok(())) if self.prepare.failures > 0 => {
                self.prepare.succeed();
                self.set_fallback();
            }
            Some(Err(e)) => self.rotation_failed(e),
            Some(Ok(())) | None => {}
        }
    }

    /// Moves every swapped-out segment that still sits at the active path
    /// to its sealed name, and the segment that replaced it from the next
    /// path to the active path. In swap order.
    pub(super) fn promote_pending(&mut self) -> Result<(), Error> {
        if self.sh.cfg.shared {
            // Shared cuts promote at once, under the cut lock, and retry
            // there (`shared_retry`).
            return Ok(());
        }
        let sealing = self.sh.lock_inbox().sealing.clone();
        let current = self.sh.path.current.load_full();
        for seg in &sealing {
            if seg.lock().sealed_name.is_some() {
                continue;
            }
            // Only the segment at the active path can move, and only once
            // its successor (the next sequence number: prepared segments
            // are installed in order) is known. A writer that swapped may
            // not have listed its old segment yet; it kicks this thread
            // when it has.
            if seg.seq != self.active_seq {
                return Ok(());
            }
            let successor = match sealing.iter().find(|s| s.seq == seg.seq + 1) {
                Some(s) => s,
                None if current.seq == seg.seq + 1 => &current,
                None => return Ok(()),
            };
            self.promote(seg, Some(successor))?;
            self.active_seq = seg.seq + 1;
        }
        Ok(())
    }

    /// Gives `seg` (at the active path) its sealed name without ever
    /// overwriting a file, then moves the next segment to the active path
    /// (or, at shutdown, removes the active name). If someone else moved
    /// `seg` away (logrotate, `mv`), it is recorded as moved instead.
    pub(super) fn promote(
        &mut self,
        seg: &Segment,
        successor: Option<&Segment>,
    ) -> Result<(), Error> {
        let last = successor.is_none();
        let sh = Arc::clone(&self.sh);
        let (start, linked) = {
            let st = seg.lock();
            (st.start, st.linked_name.clone())
        };
        let active = &sh.active_name;
        let sealed = match linked {
            // A retry: the sealed name exists already; do not link again.
            Some(name) => name,
            None => {
                let at_active = self.is_at(active, seg)?;
                let name = if at_active {
                    self.link_sealed(seg, start, last)?
                } else {
                    None
                };
                let name = match name {
                    Some(n) => n,
                    None => {
                        // Moved away by someone else: its records stay in
                        // the moved file; the manifest says so.
                        Counters::add(&sh.counters.reopens, 1);
                        name::MOVED.to_string()
                    }
                };
                seg.lock().linked_name = Some(name.clone());
                name
            }
        };
        let mut sealed = sealed;
        if let Some(succ) = successor {
            self.install(succ)?;
            // Between the link and the rename, someone else may have
            // renamed the active file (logrotate racing with a cut): it then
            // has their name besides ours. It is theirs now; once it is not
            // at the active path, nobody else can take it, so this check is
            // final.
            if sealed != name::MOVED
                && crate::sys::file_info(&seg.file).is_ok_and(|i| i.nlink > 1)
                && sh.dir.unlink(&sealed).is_ok()
            {
                Counters::add(&sh.counters.reopens, 1);
                sealed = name::MOVED.to_string();
            }
        }
        seg.lock().sealed_name = Some(sealed);
        Ok(())
    }

    /// Whether the file at `name` is `seg`'s file.
    pub(super) fn is_at(&self, name: &str, seg: &Segment) -> Result<bool, Error> {
        let dir = &self.sh.dir;
        match dir.stat(name) {
            Ok(found) => Ok(found.is_some_and(|i| i.dev == seg.id.dev && i.ino == seg.id.ino)),
            Err(e) => Err(Error::io("seal", dir.join(name), e)),
        }
    }

    /// Moves the prepared segment `succ` to the active path. Whatever is
    /// there is replaced: normally the segment just given its sealed name;
    /// after someone else moved that one away, an empty file logrotate
    /// created in its place. A non-empty file someone else put there is
    /// kept, renamed to `<name>.log.foreign-<ms>`, and reported.
    pub(super) fn install(&self, succ: &Segment) -> Result<(), Error> {
        let sh = &self.sh;
        let dir = &sh.dir;
        let active = &sh.active_name;
        let known = |i: &crate::sys::FileInfo| {
            let live = sh.lock_inbox().sealing.clone();
            live.iter().any(|s| s.id.dev == i.dev && s.id.ino == i.ino)
        };
        if let Ok(Some(i)) = dir.stat(active) {
            // Shared mode: the file the cut file names is the log's live
            // active segment, never someone else's file to move aside.
            let named = sh
                .cut
                .as_ref()
                .and_then(|c| crate::sys::read_small(c).ok())
                .and_then(|t| CutState::parse(&t))
                .is_some_and(|st| st.dev == i.dev && st.ino == i.ino);
            if named {
                return Err(Error::io(
                    "install next segment",
                    dir.join(active),
                    io::Error::other(
                        "the active path holds the live active segment of the shared log",
                    ),
                ));
            }
            if i.len > 0 && !known(&i) {
                let aside = format!("{active}.foreign-{}", self.now().as_millisecond());
                if dir.rename_noreplace(active, &aside).is_ok() {
                    sh.report(Error::io(
                        "install next segment",
                        dir.join(&aside),
                        io::Error::other(format!(
                            "someone else put a file of {} bytes at the active path; it was kept under this name",
                            i.len
                        )),
                    ));
                }
            }
        }
        dir.rename(&succ.prep_name, active)
            .map_err(|e| Error::io("install next segment", dir.join(active), e))
    }

    /// Gives the segment at the active path its sealed name, never
    /// overwriting a file: a hard link (the active path stays in place
    /// until the successor replaces it), or at shutdown, or where the file
    /// system has no hard links, a rename. `None` if the file at the active
    /// path turned out not to be `seg` (someone else moved it meanwhile).
    pub(super) fn link_sealed(
        &self,
        seg: &Segment,
        start: Timestamp,
        last: bool,
    ) -> Result<Option<String>, Error> {
        let dir = &self.sh.dir;
        let active = &self.sh.active_name;
        let mut dup = 0;
        loop {
            let candidate = SealedName {
                start_ms: start.as_millisecond(),
                seq: seg.seq,
                dup,
            }
            .file_name(&self.sh.cfg.name);
            let mut renamed = last;
            let mut res = if last {
                dir.rename_noreplace(active, &candidate)
            } else {
                dir.link(active, &candidate)
            };
            if !last
                && matches!(
                    res.as_ref().map_err(io::Error::raw_os_error),
                    Err(Some(1 | 95))
                )
            {
                // EPERM / EOPNOTSUPP: no hard links on this file system.
                // Rename instead; the active path is briefly absent.
                res = dir.rename_noreplace(active, &candidate);
                renamed = true;
            }
            match res {
                Ok(()) => {
                    // The path was checked before; someone may have moved
                    // the file in between. Make sure the name is ours.
                    if self.is_at(&candidate, seg)? {
                        return Ok(Some(candidate));
                    }
                    if renamed {
                        // Put the other file back where it was.
                        let _ = dir.rename_noreplace(&candidate, active);
                    } else {
                        let _ = dir.unlink(&candidate);
                    }
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dup < 1000 => dup += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("seal", dir.join(&candidate), e)),
            }
        }
    }
}

/// The next sequence number to prepare, and the state of the refill on the
/// runtime: shared by the worker and the refill task. Creation happens under
/// `next`, so the worker creating a segment itself (the pool is empty and a
/// cut needs one now) waits for a refill under way rather than racing it
/// for a sequence number.
#[derive(Debug)]
pub(crate) struct Ahead {
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
    pub(crate) fn new(next_seq: u64) -> Ahead {
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

    pub(super) fn block_until(&self, until: Option<Timestamp>) {
        *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    fn blocked(&self, now: Timestamp) -> bool {
        self.blocked_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now < t)
    }

    /// Set once by the worker, before any write.
    pub(super) fn set_log(&self, sh: &Arc<Shared>) {
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
        if sh.cfg.shared
            || sh.path.closed.load(Ordering::Acquire)
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
    pub(super) fn want(&self) -> usize {
        // Relaxed: read and written by the worker task; the refill task
        // only reads it, and any recent value will do.
        self.want.load(Ordering::Relaxed)
    }

    fn grow(&self) {
        let w = self.want();
        // Relaxed: see `want`.
        self.want.store((w * 2).min(MAX_AHEAD), Ordering::Relaxed);
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
    pub(super) fn busy(&self) -> bool {
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
    pub(super) fn stop_cuts(&self) {
        self.lock().no_cuts = true;
    }

    /// Creates next segments until `want` are ready (or the first failure).
    fn fill(&self, sh: &Shared, want: usize) -> Result<(), Error> {
        let mut st = self.lock();
        if st.closed || sh.cfg.shared {
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
    pub(super) fn close(&self) {
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
    fn the_pool_grows_by_doubling_up_to_its_bound_and_one_refill_runs_at_a_time() {
        let a = Ahead::new(7);
        assert_eq!(a.want(), PREPARE_AHEAD);
        a.grow();
        assert_eq!(a.want(), 2 * PREPARE_AHEAD);
        for _ in 0..10 {
            a.grow();
        }
        assert_eq!(a.want(), MAX_AHEAD);
        assert!(a.start());
        assert!(a.busy());
        assert!(!a.start(), "a second refill while one is under way");
        a.busy.store(false, Ordering::Release);
        assert!(a.start());
        assert!(a.outcome().is_none());
        assert_eq!(a.lock().next_seq, 7);
    }
}
