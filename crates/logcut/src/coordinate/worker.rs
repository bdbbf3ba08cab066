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

/// At most this many cuts for held records in one retry (each writes a
/// segment's worth); the rest waits for the next wake-up, which comes at
/// once while records are held.
const HELD_CUTS_PER_RETRY: usize = 64;

use crate::{
    Error, Mode,
    append::state::{Cmd, Shared},
    builder::Fsync,
    coordinate::{Coordinator, breaker::Breaker},
    runtime::{Lane, Mail, Next, Task},
    seal::journal::Journal,
    seal::sealer::{CloseJob, Job, Sealer, SealerTask},
    sealed::keeper::{self, Keeper},
    segment::{SegState, Segment},
    stats::Counters,
    sys::FileInfo,
};
use logcut_format::lock::CutState;

/// What `poll` found.
enum Poll {
    Sleep(Option<Duration>),
    Work(Vec<Cmd>),
}

/// Records taken from the buffer and not yet all written.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) ends: Vec<usize>,
    /// Index of the first record not yet written.
    pub(super) next: usize,
    /// Rotate commands, with the record index they come before.
    pub(super) cmds: VecDeque<(usize, Cmd)>,
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
        let keeper = if sh.cfg.compression.codec().is_some() || !sh.cfg.retention.is_none() {
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
    fn poll(&mut self) -> Poll {
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

    // === Buffered writing ===

    /// Writes the taken batch, cutting between records where the policy
    /// says and where rotate commands stand. Stops at a failed write and
    /// keeps the rest for a retry.
    pub(super) fn process_batch(&mut self) {
        let Some(mut b) = self.batch.take() else {
            return;
        };
        let now = self.now();
        let mut written_now = 0u64;
        let mut failed = None;
        // Shared mode: a segment found cut by another process is followed
        // once per batch at most (if that fails, records go on to it: its
        // sealer waits for this process).
        let mut followed = false;
        loop {
            while b.cmds.front().is_some_and(|(pos, _)| *pos <= b.next) {
                if let Some((_, Cmd::Rotate(tx))) = b.cmds.pop_front() {
                    self.sh.lock_inbox().written += std::mem::take(&mut written_now);
                    self.rotate(tx);
                }
            }
            if b.next >= b.ends.len() {
                break;
            }
            let seg = self.sh.path.current.load_full();
            if !C::before_batch(self, &seg, &mut followed) {
                continue;
            }
            let mut st = seg.lock();
            // A time boundary that passed before this batch: cut first.
            if st.cut_pending.is_none() && self.sh.time_cut_due(&seg, &mut st, now) {
                if self.sh.try_swap(&seg, &mut st, SealReason::Time) {
                    drop(st);
                    self.after_swap();
                    continue;
                }
                self.sh.defer_cut(&mut st, SealReason::Time);
            }
            // Gather records up to the size limit or the next command.
            let stop_at = b
                .cmds
                .front()
                .map_or(b.ends.len(), |(p, _)| (*p).min(b.ends.len()));
            let start_byte = if b.next == 0 { 0 } else { b.ends[b.next - 1] };
            let mut j = b.next;
            let mut cut = None;
            while j < stop_at {
                let rec_len = b.ends[j] - if j == 0 { 0 } else { b.ends[j - 1] };
                let run_bytes = (if j == 0 { 0 } else { b.ends[j - 1] }) - start_byte;
                let records_before = st.records + (j - b.next) as u64;
                if let Some(max) = self.sh.cfg.max_size {
                    if records_before > 0
                        && seg.planned_bytes(&st) + (run_bytes + rec_len) as u64 > max
                        && st.cut_pending.is_none()
                    {
                        cut = Some(SealReason::Size);
                        break;
                    }
                }
                j += 1;
            }
            if j > b.next {
                let end_byte = b.ends[j - 1];
                let n = (j - b.next) as u64;
                let rel: Vec<usize> = b.ends[b.next..j].iter().map(|e| e - start_byte).collect();
                match seg.append_records(&mut st, &b.buf[start_byte..end_byte], &rel) {
                    Ok(()) => {
                        b.next = j;
                        written_now += n;
                        if self.sh.cfg.fsync == Fsync::Always {
                            if let Err(e) = seg.sync_records(&self.sh.dir) {
                                drop(st);
                                self.sh.report(Error::io(
                                    "sync segment",
                                    self.sh.dir.join(&self.sh.active_name),
                                    e,
                                ));
                                st = seg.lock();
                            }
                        }
                    }
                    Err((e, whole)) => {
                        b.next += whole;
                        written_now += whole as u64;
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(reason) = cut {
                C::cut_in_batch(self, &seg, st, reason, now);
            }
        }
        {
            let mut q = self.sh.lock_inbox();
            q.written += written_now;
        }
        self.sh.mail.written.notify_all();
        if let Some(e) = failed {
            let path = self.sh.dir.join(&self.sh.active_name);
            self.batch = Some(b);
            self.note_write_failure(Error::io("write records", path, e), true);
            return;
        }
        if self.write.failures > 0 {
            self.write_recovered();
        }
        self.spare = recycle(b.buf, b.ends);
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
            // the next segment (the cut moves it there).
            let res = seg.drain_held_within(&mut st, self.sh.cfg.max_size);
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

    // === Shutdown ===

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
            if k.send(keeper::Msg::Shutdown(until, tx)).is_ok() {
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

/// A written batch's buffers, kept for the next batch (they alternate with
/// the inbox's), and shrunk when this batch used little of them: a log
/// that had one burst does not keep megabytes while it is quiet.
fn recycle(mut buf: Vec<u8>, mut ends: Vec<usize>) -> (Vec<u8>, Vec<usize>) {
    const KEEP: usize = 64 << 10;
    let (used, records) = (buf.len(), ends.len());
    buf.clear();
    ends.clear();
    if buf.capacity() > KEEP && used < buf.capacity() / 8 {
        buf.shrink_to(KEEP.max(used * 2));
    }
    if ends.capacity() > KEEP / 16 && records < ends.capacity() / 8 {
        ends.shrink_to((KEEP / 16).max(records * 2));
    }
    (buf, ends)
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

#[cfg(test)]
mod tests {
    use super::recycle;

    #[test]
    fn buffers_shrink_after_a_small_batch_and_keep_their_size_under_load() {
        let big = vec![0u8; 1 << 20];
        let (buf, ends) = recycle(big, vec![0; 10_000]);
        // A full batch: kept as it is.
        assert!(buf.capacity() >= 1 << 20 && buf.is_empty());
        assert!(ends.capacity() >= 10_000 && ends.is_empty());
        let mut small = buf;
        small.extend_from_slice(&[1u8; 1000]);
        let mut few = ends;
        few.extend([1, 2, 3]);
        let (buf, ends) = recycle(small, few);
        assert!(
            buf.capacity() < 1 << 20 && buf.capacity() >= 64 << 10,
            "{}",
            buf.capacity()
        );
        assert!(ends.capacity() < 10_000, "{}", ends.capacity());
        assert!(buf.is_empty() && ends.is_empty());
    }
}
