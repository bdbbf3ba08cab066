//! The background thread: writes batches (Buffered mode), moves swapped-out
//! segments to their sealed names, prepares the next segment, seals and
//! records segments in the manifest, retries after failures, and shuts down.
//!
//! Everything slow happens here: renames, fsync, manifest appends, file
//! creation. A writer never waits for any of it; at most it finds no next
//! segment ready and keeps writing to the current one.

use std::{
    collections::VecDeque,
    io,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use jiff::{SignedDuration, Timestamp};
use logcut_format::manifest::SealReason;

/// How many next segments are kept ready, so that a burst of cuts (a small
/// size limit, or rotate calls in a loop) finds one without waiting for the
/// background thread.
pub(super) const PREPARE_AHEAD: usize = 4;

/// How long Buffered mode waits for more records before writing a small
/// batch: the bound on how long an accepted record stays in memory when
/// nobody flushes.
const LINGER: Duration = Duration::from_millis(1);

use crate::{
    Error,
    append::state::{Cmd, Shared},
    builder::Fsync,
    coordinate::{Coordinator, batch::Batch, breaker::Breaker},
    runtime::{Lane, Mail, Next, Task},
    seal::journal::Journal,
    seal::sealer::{Job, Sealer, SealerTask},
    sealed::keeper::{self, Keeper},
    segment::Segment,
    stats::Counters,
    sys::FileInfo,
};
use logcut_format::lock::CutState;

/// What `poll` found.
pub(super) enum Poll {
    Sleep(Option<Duration>),
    Work(Vec<Cmd>),
}

pub(crate) struct Worker<C> {
    pub(super) sh: Arc<Shared>,
    /// What differs between an exclusive and a shared log.
    pub(super) mode: C,
    /// Sequence number of the segment at the active path.
    pub(super) active_seq: u64,
    pub(super) sealer: Mail<Job>,
    /// The keeper (compression, retention), when configured.
    pub(super) keeper: Option<Mail<keeper::Msg>>,
    pub(super) prepare: Breaker,
    pub(super) write: Breaker,
    pub(super) batch: Option<Batch>,
    pub(super) spare: (Vec<u8>, Vec<usize>),
    pub(super) last_fsync: Instant,
    /// When the active path was last checked (see `check_active`).
    pub(super) last_check: Option<Timestamp>,
    /// Records accepted by sessions' segments sealed or dropped so far
    /// (Direct mode's session total).
    pub(super) accepted: u64,
    pub(super) lost_records: u64,
    pub(super) lost_bytes: u64,
    /// When the task asked to run again (a timeout it waits for).
    pub(super) wake_at: Option<Instant>,
    /// Buffered mode: it waits `LINGER` for more records before writing.
    pub(super) lingering: bool,
    /// `reopen` calls that wait for a writer's cut to be promoted.
    pub(super) reopens: Vec<std::sync::mpsc::SyncSender<Result<(), Error>>>,
    /// Shared mode, at shutdown: this process was the last to leave the
    /// log, so its keeper waits for the turn to look after the last seals.
    pub(super) last_out: bool,
}

/// What the background task does after a step.
pub(crate) enum Step {
    /// Nothing to do until woken, or until this long has passed.
    Sleep(Option<Duration>),
    /// Look again at once.
    Again,
    /// Shut down: the caller's thread finishes (`Worker::close`).
    Shutdown(std::sync::mpsc::SyncSender<Result<(), Error>>),
}

/// The worker as a runtime task. At shutdown it hands the worker to the
/// thread that called `shutdown`, which finishes there: finishing waits
/// for the sealer and the keeper, tasks that may need this very thread.
struct WorkerTask<C> {
    worker: Option<Worker<C>>,
    handoff: std::sync::mpsc::SyncSender<Handoff>,
}

/// The worker and the caller waiting for shutdown's result.
pub(crate) type Handoff = (
    Box<dyn Close>,
    std::sync::mpsc::SyncSender<Result<(), Error>>,
);

/// A worker handed over at shutdown, whatever its mode.
pub(crate) trait Close: Send {
    /// Finishes the session on this thread and answers `tx`.
    fn close(self: Box<Self>, tx: std::sync::mpsc::SyncSender<Result<(), Error>>);
}

impl<C: Coordinator> Close for Worker<C> {
    fn close(self: Box<Self>, tx: std::sync::mpsc::SyncSender<Result<(), Error>>) {
        (*self).close(tx);
    }
}

/// A worker task dropped without handing its worker over (its step
/// panicked, or the runtime is gone): the log takes no more records, and
/// whoever waits (a command, `flush`, a writer waiting for room) is
/// answered instead of waiting forever.
impl<C> Drop for WorkerTask<C> {
    fn drop(&mut self) {
        let Some(w) = self.worker.take() else {
            return;
        };
        let sh = Arc::clone(&w.sh);
        {
            let mut q = sh.lock_inbox();
            q.stop = true;
            q.gone = true;
            // Records accepted that nobody will write now: counted as lost
            // (Buffered mode: the buffer and the batch under way).
            let mut lost = (q.ends.len() as u64, q.buf.len() as u64);
            if let Some(b) = &w.batch {
                let start = if b.next == 0 { 0 } else { b.ends[b.next - 1] };
                lost.0 += (b.ends.len() - b.next) as u64;
                lost.1 += (b.buf.len() - start) as u64;
            }
            q.ends.clear();
            q.buf.clear();
            Counters::add(&sh.counters.records_lost, lost.0);
            Counters::add(&sh.counters.bytes_lost, lost.1);
            for (_, c) in q.cmds.drain(..) {
                reply(c, Err(Error::shutdown("background work")));
            }
        }
        sh.mail.written.notify_all();
        sh.mail.space.notify_all();
        drop(w);
    }
}

impl<C: Coordinator> Task for WorkerTask<C> {
    fn run(&mut self) -> Next {
        let Some(w) = self.worker.as_mut() else {
            return Next::Done;
        };
        match w.step() {
            Step::Sleep(None) => Next::Idle,
            Step::Sleep(Some(d)) if d.is_zero() => Next::Again,
            Step::Sleep(Some(d)) => Next::After(d),
            Step::Again => Next::Again,
            Step::Shutdown(tx) => {
                if let Some(w) = self.worker.take() {
                    if let Err(
                        std::sync::mpsc::TrySendError::Full((w, tx))
                        | std::sync::mpsc::TrySendError::Disconnected((w, tx)),
                    ) = self.handoff.try_send((Box::new(w), tx))
                    {
                        // Nobody waits (cannot happen: shutdown waits for
                        // it); finish here rather than not at all.
                        w.close(tx);
                    }
                }
                Next::Done
            }
        }
    }
}

impl<C: Coordinator> Worker<C> {
    pub(super) fn new(
        sh: Arc<Shared>,
        journal: Journal,
        next_seq: u64,
        next_first: u64,
        sealed: Vec<keeper::Sealed>,
        mode: C,
    ) -> Result<Worker<C>, Error> {
        let (min, max) = (sh.cfg.backoff_min, sh.cfg.backoff_max);
        let rt = sh.rt.clone();
        let journal = Arc::new(std::sync::Mutex::new(journal));
        let keeper = if sh.cfg.compression.codec().is_some()
            || !sh.cfg.index.is_empty()
            || !sh.cfg.retention.is_none()
            || sh.cfg.always_keep
            || sh.cfg.ship.is_some()
        {
            Some(Keeper::start(
                Arc::clone(&sh.ctx),
                Arc::clone(&journal),
                sealed,
            )?)
        } else {
            None
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = rt.idle_cell(Lane::Core);
        let sealer = Sealer::new(
            Arc::clone(&sh.ctx),
            Arc::clone(&sh) as Arc<dyn crate::context::SealerLink>,
            journal,
            keeper.clone(),
            next_first,
        );
        rt.install(&waker, Box::new(SealerTask::new(sealer, rx)));
        Ok(Worker {
            // The active file was just created: the first check is due one
            // interval from now.
            last_check: Some(sh.cfg.clock.now()),
            active_seq: next_seq - 1,
            sh,
            mode,
            sealer: Mail::new(tx, waker),
            keeper,
            prepare: Breaker::new(min, max),
            write: Breaker::new(min, max),
            batch: None,
            spare: (Vec::new(), Vec::new()),
            last_fsync: Instant::now(),
            accepted: 0,
            lost_records: 0,
            lost_bytes: 0,
            wake_at: None,
            lingering: false,
            reopens: Vec::new(),
            last_out: false,
        })
    }

    /// Prepares what the first cut needs, then puts the worker on the
    /// runtime. Returns where it is handed over at shutdown.
    pub(super) fn spawn(mut self) -> Result<std::sync::mpsc::Receiver<Handoff>, Error> {
        C::start(&mut self);
        let sh = Arc::clone(&self.sh);
        let (handoff, handed) = std::sync::mpsc::sync_channel(1);
        // The waker is in place before the task first runs, so that no
        // wake-up is missed.
        let waker = sh.rt.idle_cell(Lane::Core);
        sh.mail.wake.set_task(waker.clone());
        let task = WorkerTask {
            worker: Some(self),
            handoff,
        };
        sh.rt.install(&waker, Box::new(task));
        Ok(handed)
    }

    pub(super) fn now(&self) -> Timestamp {
        self.sh.cfg.clock.now()
    }

    /// One round of the background work: takes what is queued, writes,
    /// cuts, seals, answers commands. Never waits for another task.
    pub(crate) fn step(&mut self) -> Step {
        let urgent = match self.poll() {
            Poll::Sleep(d) => return Step::Sleep(d),
            Poll::Work(urgent) => urgent,
        };
        self.process_batch();
        self.housekeeping();
        let mut shutdown = None;
        for cmd in urgent {
            match cmd {
                Cmd::Tick(tx) => {
                    // The periodic work, now and waited for: a refill of
                    // the pool that is due runs here, not on the runtime.
                    C::prepare_due(self);
                    self.seal_ready();
                    // The sealer answers once it has sealed everything
                    // before, or passes the tick on to the keeper, which
                    // answers once compression and retention caught up.
                    if let Err(e) = self.sealer.send(Job::Tick(tx)) {
                        if let Job::Tick(tx) = e.0 {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                Cmd::Shutdown(tx) => shutdown = Some(tx),
                Cmd::Rotate(tx) => self.rotate(tx),
                Cmd::Reopen(tx) => {
                    let res = self.reopen_now();
                    self.seal_ready();
                    match tx {
                        // A writer's cut is under way: the new file reaches
                        // the active path once it is promoted; `reopen`
                        // returns then (see `answer_reopens`).
                        Some(tx) if res.is_ok() && C::cut_under_way(self) => self.reopens.push(tx),
                        tx => answer(tx, res, &self.sh),
                    }
                }
            }
        }
        match shutdown {
            Some(tx) => Step::Shutdown(tx),
            None => Step::Again,
        }
    }

    /// Shutdown, on the caller's thread: finishes the session and answers.
    pub(crate) fn close(mut self, tx: std::sync::mpsc::SyncSender<Result<(), Error>>) {
        let res = self.finish();
        {
            let mut q = self.sh.lock_inbox();
            q.gone = true;
            // Anything still queued (nothing, normally) is answered.
            for (_, c) in q.cmds.drain(..) {
                reply(c, Err(Error::shutdown("rotate")));
            }
        }
        self.sh.mail.written.notify_all();
        self.sh.mail.space.notify_all();
        let _ = tx.send(res);
    }

    /// Looks for work; takes buffered records and commands. Returns the
    /// commands that are not tied to a position among the records, or how
    /// long to sleep (writers wake the task once `sleeping` is set).
    pub(super) fn poll(&mut self) -> Poll {
        let sh = Arc::clone(&self.sh);
        // Computed before taking the inbox lock: it locks segments, and a
        // segment's lock is always taken before the inbox's, never after.
        // Anything that changes meanwhile sets `kick`, checked below.
        let timeout = self.next_wake();
        let mut q = sh.lock_inbox();
        q.sleeping = false;
        let can_take = self.batch.is_none();
        let has_records = can_take && !q.ends.is_empty();
        let has_cmds = q
            .cmds
            .iter()
            .any(|(_, c)| can_take || !matches!(c, Cmd::Rotate(_)));
        let timed_out = self.wake_at.is_some_and(|t| Instant::now() >= t);
        if !(has_records || has_cmds || q.kick || timed_out || timeout == Some(Duration::ZERO)) {
            q.sleeping = true;
            self.wake_at = timeout.and_then(|d| Instant::now().checked_add(d));
            return Poll::Sleep(timeout);
        }
        // A few records only: linger briefly so they go out in one write
        // with those that follow (a writer crossing the threshold, a flush
        // or a command cuts the wait short).
        if !self.lingering
            && self.batch.is_none()
            && !q.ends.is_empty()
            && q.buf.len() < sh.wake_threshold()
            && !q.kick
            && !q.flush_req
            && q.cmds.is_empty()
        {
            self.lingering = true;
            q.sleeping = true;
            self.wake_at = Instant::now().checked_add(LINGER);
            return Poll::Sleep(Some(LINGER));
        }
        self.lingering = false;
        self.wake_at = None;
        q.kick = false;
        q.flush_req = false;
        let mut urgent = Vec::new();
        let mut positioned = VecDeque::new();
        let can_take = self.batch.is_none();
        for (pos, c) in std::mem::take(&mut q.cmds) {
            match c {
                Cmd::Rotate(_) if can_take => positioned.push_back((pos, c)),
                Cmd::Rotate(_) => q.cmds.push((pos, c)),
                _ => urgent.push(c),
            }
        }
        if can_take && (!q.ends.is_empty() || !positioned.is_empty()) {
            let (mut buf, mut ends) = std::mem::take(&mut self.spare);
            buf.clear();
            ends.clear();
            std::mem::swap(&mut buf, &mut q.buf);
            std::mem::swap(&mut ends, &mut q.ends);
            self.batch = Some(Batch {
                buf,
                ends,
                next: 0,
                cmds: positioned,
            });
            drop(q);
            sh.mail.space.notify_all();
        }
        Poll::Work(urgent)
    }

    /// How long to sleep: until the next time boundary, the end of a
    /// backoff, or a periodic fsync; `None` to wait until woken.
    pub(super) fn next_wake(&self) -> Option<Duration> {
        let sh = &self.sh;
        let now = self.now();
        let mut until: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                until = Some(until.map_or(t, |u| u.min(t)));
            }
        };
        let current = sh.path.current.load_full();
        {
            let st = current.lock();
            // A due cut that waits for the refill under way: the refill
            // kicks this task when it is done.
            let waits_for_refill = st.cut_pending.is_some() && C::preparing(self);
            if current.has_records(&st) && !waits_for_refill {
                // A due cut that failed is tried again after the backoff,
                // not in a loop meanwhile.
                consider(
                    st.deadline
                        .map(|d| self.prepare.open_until.map_or(d, |u| d.max(u))),
                );
            }
        }
        if C::wants_segments(self) {
            consider(Some(self.prepare.open_until.unwrap_or(now)));
        }
        if self.batch.is_some() || self.has_held() {
            consider(Some(self.write.open_until.unwrap_or(now)));
        }
        if let Some(every) = sh.cfg.watch_interval {
            let every = SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX);
            consider(Some(
                self.last_check
                    .and_then(|t| t.checked_add(every).ok())
                    .unwrap_or(now),
            ));
        }
        let mut d = until.and_then(|t| sh.cfg.clock.sleep_hint(t));
        // A clock that passes by itself: wake at least once a second, to
        // notice a wall-clock jump.
        if sh.cfg.clock.sleep_hint(now).is_some() {
            d = Some(d.map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1))));
        }
        if let Fsync::Every(every) = sh.cfg.fsync {
            let left = every.saturating_sub(self.last_fsync.elapsed());
            d = Some(d.map_or(left, |d| d.min(left)));
        }
        d
    }

    pub(super) fn live(&self) -> Vec<Arc<Segment>> {
        let mut live = self.sh.lock_inbox().sealing.clone();
        let cur = self.sh.path.current.load_full();
        if !live.iter().any(|s| Arc::ptr_eq(s, &cur)) {
            live.push(cur);
        }
        live
    }

    /// Whether every swapped-out segment has its sealed name. (The list is
    /// copied first: a segment's lock is never taken under the inbox's.)
    pub(super) fn all_promoted(&self) -> bool {
        let sealing = self.sh.lock_inbox().sealing.clone();
        sealing.iter().all(|s| s.lock().sealed_name.is_some())
    }

    pub(super) fn has_held(&self) -> bool {
        self.live().iter().any(|s| !s.lock().held.is_empty())
    }

    pub(super) fn path_of(&self, seg: &Segment) -> std::path::PathBuf {
        match &seg.lock().sealed_name {
            Some(n) => self.sh.dir.join(n),
            None => self.sh.dir.join(&self.sh.active_name),
        }
    }

    pub(super) fn set_fallback(&self) {
        // A refill a writer starts keeps to the same backoff.
        C::backoff_changed(self, self.prepare.open_until);
        let s = self.prepare.state(self.now());
        // Relaxed: a status value read on its own by `stats`.
        self.sh
            .counters
            .fallback
            .store(s.to_u8(), Ordering::Relaxed);
    }

    /// Counts and reports a failed write. `retry` says whether it was this
    /// thread's own attempt, which lengthens the backoff; a writer's failure
    /// reported late must not push back a retry that is already due.
    pub(super) fn note_write_failure(&mut self, err: Error, retry: bool) {
        Counters::add(&self.sh.counters.write_failures, 1);
        let now = self.now();
        if retry || self.write.open_until.is_none() {
            self.write.fail(now);
        }
        {
            let mut q = self.sh.lock_inbox();
            q.fail_gen += 1;
            q.failing = true;
            q.last_error = Some(err.clone());
        }
        self.sh.mail.written.notify_all();
        self.sh.report(err);
    }

    /// After a swap: give the old segment its sealed name and prepare the
    /// next one, so the following cut finds it ready.
    pub(super) fn after_swap(&mut self) {
        if let Err(e) = C::promote_pending(self) {
            self.rotation_failed(e);
            return;
        }
        if self.prepare.allow(self.now()) {
            C::prepare_ahead(self);
        }
    }

    pub(super) fn write_recovered(&mut self) {
        self.write.succeed();
        self.sh.lock_inbox().failing = false;
    }

    pub(super) fn rotation_failed(&mut self, e: Error) {
        Counters::add(&self.sh.counters.rotation_failures, 1);
        let now = self.now();
        self.prepare.fail(now);
        self.set_fallback();
        self.sh.report(e);
    }

    /// Handles `rotate()`, a trigger file event or SIGUSR1.
    pub(super) fn rotate(&mut self, tx: Option<std::sync::mpsc::SyncSender<Result<(), Error>>>) {
        let res = C::rotate(self);
        if res.is_err() && tx.is_none() {
            Counters::add(&self.sh.counters.rotation_failures, 1);
        }
        self.seal_ready();
        answer(tx, res, &self.sh);
    }

    /// Answers the `reopen` calls that waited for a cut under way, once it
    /// is promoted (checking the path again then), or failed.
    pub(super) fn answer_reopens(&mut self, failed: Option<&Error>) {
        if self.reopens.is_empty() {
            return;
        }
        let res = match failed {
            Some(e) => Err(e.clone()),
            None if C::cut_under_way(self) => return,
            None => self.reopen_now(),
        };
        for tx in self.reopens.drain(..) {
            let _ = tx.send(res.clone());
        }
    }

    /// Handles `reopen()`, SIGHUP and the periodic check.
    pub(super) fn reopen_now(&mut self) -> Result<(), Error> {
        self.last_check = Some(self.now());
        C::reopen(self)
    }

    /// The periodic check of the active path.
    pub(super) fn check_active(&mut self, now: Timestamp) {
        let Some(every) = self.sh.cfg.watch_interval else {
            return;
        };
        let passed = self.last_check.is_none_or(|t| {
            let every = SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX);
            t.checked_add(every).is_ok_and(|d| now >= d) || now < t
        });
        if !C::check_due(self, passed, now) {
            return;
        }
        if let Err(e) = self.reopen_now() {
            self.rotation_failed(e);
        }
    }

    // === Periodic work ===

    pub(super) fn housekeeping(&mut self) {
        self.report_write_errors();
        let promoted = C::promote_pending(self);
        self.answer_reopens(promoted.as_ref().err());
        if let Err(e) = promoted {
            if self.prepare.allow(self.now()) {
                self.rotation_failed(e);
            }
        }
        let now = self.now();
        if self.prepare.allow(now) {
            C::prepare_ahead(self);
        } else {
            C::collect(self);
        }
        self.cut_if_due(now);
        self.check_active(now);
        self.retry_held(now);
        self.seal_ready();
        self.periodic_fsync();
        self.set_fallback();
        #[cfg(feature = "metrics")]
        crate::metrics::publish(&self.sh.cfg.name, &self.sh.stats());
    }

    /// A cut that was due when no next segment was ready, or a time
    /// boundary that passed with no record written since.
    pub(super) fn cut_if_due(&mut self, now: Timestamp) {
        let cur = self.sh.path.current.load_full();
        let mut st = cur.lock();
        if st.closed {
            return;
        }
        let reason = match st.cut_pending.clone() {
            Some(r) => Some(r),
            None => self
                .sh
                .time_cut_due(&cur, &mut st, now)
                .then_some(SealReason::Time),
        };
        let Some(reason) = reason else { return };
        C::cut_due(self, &cur, st, reason, now);
    }

    /// Hands swapped-out segments that have a sealed name and no held
    /// records to the sealer thread, oldest first.
    pub(super) fn seal_ready(&mut self) {
        let sealing = self.sh.lock_inbox().sealing.clone();
        let mut ready = Vec::new();
        for seg in sealing {
            let mut st = seg.lock();
            if st.handed {
                continue;
            }
            if st.sealed_name.is_none() || !st.held.is_empty() || !st.closed || !seg.is_quiet() {
                break;
            }
            st.handed = true;
            drop(st);
            if self.sh.cfg.fsync != Fsync::Never {
                crate::sys::start_writeback(&seg.file);
            }
            ready.push(seg);
        }
        if !ready.is_empty() {
            let _ = self.sealer.send(Job::Seal(ready));
        }
    }

    /// Waits until the sealer has done everything handed to it.
    pub(super) fn sealer_barrier(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.sealer.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    pub(super) fn periodic_fsync(&mut self) {
        let Fsync::Every(every) = self.sh.cfg.fsync else {
            return;
        };
        if self.last_fsync.elapsed() < every {
            return;
        }
        self.last_fsync = Instant::now();
        for seg in self.live() {
            // Direct writes leave no trace under the lock, so every live
            // segment is synced; for a clean file that costs little.
            if let Err(e) = seg.sync_records(&self.sh.dir) {
                let path = self.path_of(&seg);
                self.sh.report(Error::io("sync segment", path, e));
            }
        }
    }
}

/// The sequence number after the cut state's (a corrupt cut file must not
/// make it wrap).
pub(super) fn next_seq(state: CutState, path: &std::path::Path) -> Result<u64, Error> {
    state.seq.checked_add(1).ok_or_else(|| {
        Error::io(
            "cut",
            path,
            io::Error::other("the cut file names the last possible sequence number"),
        )
    })
}

/// Whether `info` is the file `dev`/`ino`.
pub(super) fn same(info: Option<&FileInfo>, dev: u64, ino: u64) -> bool {
    info.is_some_and(|i| i.dev == dev && i.ino == ino)
}

pub(super) fn reply(c: Cmd, res: Result<(), Error>) {
    match c {
        Cmd::Rotate(Some(tx)) | Cmd::Reopen(Some(tx)) | Cmd::Tick(tx) | Cmd::Shutdown(tx) => {
            let _ = tx.send(res);
        }
        Cmd::Rotate(None) | Cmd::Reopen(None) => {}
    }
}

/// Answers a caller, or for a trigger or signal (nobody waits), reports
/// the error to the handler.
pub(super) fn answer(
    tx: Option<std::sync::mpsc::SyncSender<Result<(), Error>>>,
    res: Result<(), Error>,
    sh: &Shared,
) {
    match tx {
        Some(tx) => {
            let _ = tx.send(res);
        }
        None => {
            if let Err(e) = res {
                sh.report(e);
            }
        }
    }
}
