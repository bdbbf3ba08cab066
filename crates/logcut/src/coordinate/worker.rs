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
use logcut_format::{
    manifest::SealReason,
    name::{self, SealedName},
};

/// How many next segments are kept ready, so that a burst of cuts (a small
/// size limit, or rotate calls in a loop) finds one without waiting for the
/// background thread.
const PREPARE_AHEAD: usize = 4;

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
    coordinate::breaker::Breaker,
    coordinate::share::{self, CutGuard},
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
struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
    /// Index of the first record not yet written.
    next: usize,
    /// Rotate commands, with the record index they come before.
    cmds: VecDeque<(usize, Cmd)>,
}

pub(crate) struct Worker {
    sh: Arc<Shared>,
    /// Sequence number of the segment at the active path.
    active_seq: u64,
    sealer: Mail<Job>,
    /// The keeper (compression, retention), when configured.
    keeper: Option<Mail<keeper::Msg>>,
    next_seq: u64,
    prepare: Breaker,
    write: Breaker,
    batch: Option<Batch>,
    spare: (Vec<u8>, Vec<usize>),
    last_fsync: Instant,
    /// When the active path was last checked (see `check_active`).
    last_check: Option<Timestamp>,
    /// Records accepted by sessions' segments sealed or dropped so far
    /// (Direct mode's session total).
    accepted: u64,
    lost_records: u64,
    lost_bytes: u64,
    /// When the task asked to run again (a timeout it waits for).
    wake_at: Option<Instant>,
    /// Buffered mode: it waits `LINGER` for more records before writing.
    lingering: bool,
    /// `reopen` calls that wait for a writer's cut to be promoted.
    reopens: Vec<std::sync::mpsc::SyncSender<Result<(), Error>>>,
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
pub(crate) struct WorkerTask {
    pub(crate) worker: Option<Worker>,
    pub(crate) handoff: std::sync::mpsc::SyncSender<Handoff>,
}

/// The worker and the caller waiting for shutdown's result.
pub(crate) type Handoff = (Worker, std::sync::mpsc::SyncSender<Result<(), Error>>);

impl Task for WorkerTask {
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
                    ) = self.handoff.try_send((w, tx))
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

impl Worker {
    pub(crate) fn new(
        sh: Arc<Shared>,
        journal: Journal,
        next_seq: u64,
        next_first: u64,
        sealed: Vec<keeper::Sealed>,
    ) -> Result<Worker, Error> {
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
            sealer: Mail::new(tx, waker),
            keeper,
            next_seq,
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

    fn now(&self) -> Timestamp {
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
                        Some(tx) if res.is_ok() && self.cut_under_way() => self.reopens.push(tx),
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
    fn next_wake(&self) -> Option<Duration> {
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
            if current.has_records(&st) {
                // A due cut that failed is tried again after the backoff,
                // not in a loop meanwhile.
                consider(
                    st.deadline
                        .map(|d| self.prepare.open_until.map_or(d, |u| d.max(u))),
                );
            }
        }
        if !sh.cfg.shared && sh.lock_next().len() < PREPARE_AHEAD {
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

    fn live(&self) -> Vec<Arc<Segment>> {
        let mut live = self.sh.lock_inbox().sealing.clone();
        let cur = self.sh.path.current.load_full();
        if !live.iter().any(|s| Arc::ptr_eq(s, &cur)) {
            live.push(cur);
        }
        live
    }

    /// Whether every swapped-out segment has its sealed name. (The list is
    /// copied first: a segment's lock is never taken under the inbox's.)
    fn all_promoted(&self) -> bool {
        let sealing = self.sh.lock_inbox().sealing.clone();
        sealing.iter().all(|s| s.lock().sealed_name.is_some())
    }

    fn has_held(&self) -> bool {
        self.live().iter().any(|s| !s.lock().held.is_empty())
    }

    fn path_of(&self, seg: &Segment) -> std::path::PathBuf {
        match &seg.lock().sealed_name {
            Some(n) => self.sh.dir.join(n),
            None => self.sh.dir.join(&self.sh.active_name),
        }
    }

    fn set_fallback(&self) {
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
    fn note_write_failure(&mut self, err: Error, retry: bool) {
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
    fn process_batch(&mut self) {
        let Some(mut b) = self.batch.take() else {
            return;
        };
        let now = self.now();
        let mut written_now = 0u64;
        let mut failed = None;
        // Shared mode: a segment found cut by another process is followed
        // once per batch at most (if that fails, records go on to it: its
        // sealer waits for this process).
        let mut tried_follow = false;
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
            if seg.shared {
                // Look at the file before writing a batch to it: another
                // process may have cut it (follow first) or filled it (the
                // size check below counts its bytes).
                let own = seg.lock().bytes;
                self.sh.probe(&seg, own);
                if seg.stale.load(Ordering::Relaxed) && !tried_follow {
                    tried_follow = true;
                    if let Err(e) = self.shared_check() {
                        self.rotation_failed(e);
                    }
                    continue;
                }
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
                if seg.shared {
                    // This thread cuts a shared log itself, at once.
                    drop(st);
                    if let Err(e) = self.shared_step(Some(reason.clone())) {
                        self.rotation_failed(e);
                    }
                    if Arc::ptr_eq(&self.sh.path.current.load_full(), &seg) {
                        self.sh.defer_cut(&mut seg.lock(), reason);
                    }
                    continue;
                }
                if self.sh.lock_next().is_empty() && self.prepare.allow(now) {
                    // This thread is the only writer here: preparing the
                    // next segment now delays no caller, and keeps the cut
                    // exact.
                    drop(st);
                    self.prepare_next();
                    st = seg.lock();
                }
                if self.sh.try_swap(&seg, &mut st, reason.clone()) {
                    drop(st);
                    self.after_swap();
                } else {
                    self.sh.defer_cut(&mut st, reason);
                }
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
        self.spare = (b.buf, b.ends);
    }

    /// After a swap: give the old segment its sealed name and prepare the
    /// next one, so the following cut finds it ready.
    fn after_swap(&mut self) {
        if let Err(e) = self.promote_pending() {
            self.rotation_failed(e);
            return;
        }
        if self.prepare.allow(self.now()) {
            self.prepare_next();
        }
    }

    fn write_recovered(&mut self) {
        self.write.succeed();
        self.sh.lock_inbox().failing = false;
    }

    fn rotation_failed(&mut self, e: Error) {
        Counters::add(&self.sh.counters.rotation_failures, 1);
        let now = self.now();
        self.prepare.fail(now);
        self.set_fallback();
        self.sh.report(e);
    }

    // === Rotation ===

    /// Creates next segments at `<name>.log.next.<seq>` until
    /// [`PREPARE_AHEAD`] are ready. Returns the error if one failed.
    pub(crate) fn prepare_next(&mut self) -> Option<Error> {
        let sh = Arc::clone(&self.sh);
        if sh.cfg.shared {
            // Sequence numbers are handed out at the cut, under the cut
            // lock: nothing can be prepared ahead.
            return None;
        }
        while sh.lock_next().len() < PREPARE_AHEAD {
            let file = name::prepared_file(&sh.cfg.name, self.next_seq);
            let now = self.now();
            let res = sh
                .dir
                .create_new(&file, sh.cfg.file_mode)
                .and_then(|f| Segment::new(self.next_seq, file.clone(), f, now));
            match res {
                Ok(seg) => {
                    sh.lock_next().push_back(Arc::new(seg));
                    self.next_seq += 1;
                    self.prepare.succeed();
                    self.set_fallback();
                }
                Err(e) => {
                    let err = Error::io("create next segment", sh.dir.join(&file), e);
                    self.rotation_failed(err.clone());
                    return Some(err);
                }
            }
        }
        None
    }

    /// Moves every swapped-out segment that still sits at the active path
    /// to its sealed name, and the segment that replaced it from the next
    /// path to the active path. In swap order.
    fn promote_pending(&mut self) -> Result<(), Error> {
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
    fn promote(&mut self, seg: &Segment, successor: Option<&Segment>) -> Result<(), Error> {
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
    fn is_at(&self, name: &str, seg: &Segment) -> Result<bool, Error> {
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
    fn install(&self, succ: &Segment) -> Result<(), Error> {
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
    fn link_sealed(
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

    /// Handles `rotate()`, a trigger file event or SIGUSR1.
    fn rotate(&mut self, tx: Option<std::sync::mpsc::SyncSender<Result<(), Error>>>) {
        let res = self.rotate_now();
        if res.is_err() && tx.is_none() {
            Counters::add(&self.sh.counters.rotation_failures, 1);
        }
        self.seal_ready();
        answer(tx, res, &self.sh);
    }

    /// Whether a writer swapped segments and the old one is not at its
    /// sealed name yet (or not even listed: the writer lists it right after
    /// the swap, and kicks this task).
    fn cut_under_way(&self) -> bool {
        // Shared mode promotes a cut at once, under the cut lock.
        if self.sh.cfg.shared {
            return false;
        }
        self.sh.path.current.load().seq != self.active_seq || !self.all_promoted()
    }

    /// Answers the `reopen` calls that waited for a cut under way, once it
    /// is promoted (checking the path again then), or failed.
    fn answer_reopens(&mut self, failed: Option<&Error>) {
        if self.reopens.is_empty() {
            return;
        }
        let res = match failed {
            Some(e) => Err(e.clone()),
            None if self.cut_under_way() => return,
            None => self.reopen_now(),
        };
        for tx in self.reopens.drain(..) {
            let _ = tx.send(res.clone());
        }
    }

    /// Handles `reopen()`, SIGHUP and the periodic check: if the active
    /// path no longer holds the active segment (someone renamed or removed
    /// it), cuts, and installs the next segment there.
    fn reopen_now(&mut self) -> Result<(), Error> {
        self.last_check = Some(self.now());
        if self.sh.cfg.shared {
            return self.shared_check();
        }
        self.promote_pending()?;
        if !self.all_promoted() {
            // A cut is under way; its promotion checks the path itself.
            return Ok(());
        }
        let cur = self.sh.path.current.load_full();
        if cur.seq != self.active_seq {
            return Ok(());
        }
        let sh = Arc::clone(&self.sh);
        let here = sh
            .dir
            .stat(&sh.active_name)
            .map_err(|e| Error::io("check active file", sh.dir.join(&sh.active_name), e))?;
        if here.is_some_and(|i| i.dev == cur.id.dev && i.ino == cur.id.ino) {
            return Ok(());
        }
        if sh.lock_next().is_empty() {
            if let Some(e) = self.prepare_next() {
                return Err(e);
            }
        }
        {
            let mut st = cur.lock();
            if !st.closed && !sh.try_swap(&cur, &mut st, SealReason::Reopen) {
                return Err(Error::io(
                    "reopen",
                    sh.dir.join(&sh.active_name),
                    io::Error::other("no next segment is ready"),
                ));
            }
        }
        self.promote_pending()?;
        self.prepare_next();
        Ok(())
    }

    /// The periodic check of the active path.
    fn check_active(&mut self, now: Timestamp) {
        let Some(every) = self.sh.cfg.watch_interval else {
            return;
        };
        let stale = self.sh.cfg.shared && self.sh.path.current.load().stale.load(Ordering::Relaxed);
        let due = stale
            || self.last_check.is_none_or(|t| {
                let every = SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX);
                t.checked_add(every).is_ok_and(|d| now >= d) || now < t
            });
        // Shared mode: following another process's cut (and repairing)
        // goes on during a backoff; only this process's own cuts wait.
        if !due || (!self.sh.cfg.shared && !self.prepare.allow(now)) {
            return;
        }
        if let Err(e) = self.reopen_now() {
            self.rotation_failed(e);
        }
    }

    fn rotate_now(&mut self) -> Result<(), Error> {
        if self.sh.cfg.shared {
            return self.shared_step(Some(SealReason::Manual));
        }
        self.promote_pending()?;
        let cur = self.sh.path.current.load_full();
        {
            let st = cur.lock();
            if !cur.has_records(&st) {
                return Ok(());
            }
        }
        if self.sh.lock_next().is_empty() {
            // An explicit request tries at once, whatever the backoff.
            if let Some(e) = self.prepare_next() {
                return Err(e);
            }
        }
        {
            let mut st = cur.lock();
            if !st.closed && !self.sh.try_swap(&cur, &mut st, SealReason::Manual) {
                return Err(Error::io(
                    "rotate",
                    self.sh.dir.join(&self.sh.active_name),
                    io::Error::other("no next segment is ready"),
                ));
            }
        }
        self.promote_pending()?;
        self.prepare_next();
        Ok(())
    }

    // === Shared mode ===

    /// Shared mode, on every check: refreshes the estimate of the other
    /// processes' bytes in the current segment, and takes the cut lock
    /// only if the active path holds another file (someone cut, or moved
    /// it) or the size limit is reached.
    fn shared_check(&mut self) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let cur = sh.path.current.load_full();
        let len = crate::sys::file_info(&cur.file).map_or(0, |i| i.len);
        let size_due = {
            let st = cur.lock();
            let own = st.bytes + cur.reserved.load(Ordering::Relaxed);
            // Relaxed: an estimate for the size checks (see Segment).
            cur.others.store(len.saturating_sub(own), Ordering::Relaxed);
            !st.closed
                && sh
                    .cfg
                    .max_size
                    .is_some_and(|max| len > 0 && cur.planned_bytes(&st) > max)
        };
        let size_due = size_due && self.prepare.allow(self.now());
        let here = sh
            .dir
            .stat(&sh.active_name)
            .map_err(|e| Error::io("check active file", sh.dir.join(&sh.active_name), e))?;
        // The cut state is read without the lock: a stale or mixed read
        // only costs a look under the lock, where it is read again.
        let state = sh
            .cut
            .as_ref()
            .and_then(|c| crate::sys::read_small(c).ok())
            .and_then(|t| CutState::parse(&t));
        let consistent = state.is_some_and(|st| same(here.as_ref(), st.dev, st.ino));
        if !same(here.as_ref(), cur.id.dev, cur.id.ino)
            || !consistent
            || size_due
            || !self.all_promoted()
        {
            self.shared_step(size_due.then_some(SealReason::Size))?;
        }
        Ok(())
    }

    /// Shared mode, under the cut lock: a cut of this process whose
    /// promotion failed (its link or rename) is retried, unless another
    /// process finished it meanwhile (it found the cut interrupted): that
    /// one seals the segment, and this one only records its part.
    fn shared_retry(&mut self) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let sealing = sh.lock_inbox().sealing.clone();
        let cur = sh.path.current.load_full();
        for seg in sealing {
            if seg.lock().sealed_name.is_some() {
                continue;
            }
            // The successor is still at its prepared name only if nobody
            // installed it: otherwise another process found the cut
            // interrupted and finished it (and may have cut again since);
            // it seals the segment, and this one only records its part.
            let prepared = sh
                .dir
                .stat(&cur.prep_name)
                .map_err(|e| Error::io("check next segment", sh.dir.join(&cur.prep_name), e))?;
            if cur.prep_name != sh.active_name && same(prepared.as_ref(), cur.id.dev, cur.id.ino) {
                self.promote(&seg, Some(&cur))?;
                self.mark_cut(&seg);
            } else {
                let mut st = seg.lock();
                st.followed = true;
                st.sealed_name = Some(String::new());
            }
            self.active_seq = cur.seq;
        }
        Ok(())
    }

    /// Shared mode: under the cut lock, brings this process up to date with
    /// the log (finishes a cut that a killed process left half done,
    /// replaces an active file someone else moved away, follows a cut
    /// another process made) and then cuts for `cut`, unless the segment
    /// it was asked for has been cut already.
    fn shared_step(&mut self, cut: Option<SealReason>) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let Some(cut_file) = sh.cut.as_ref() else {
            return Ok(());
        };
        let cut_path = sh.dir.join(&name::cut_file(&sh.cfg.name));
        let _guard = CutGuard::take(cut_file, &cut_path)?;
        self.shared_retry()?;
        let mut state = share::read_state(cut_file, &cut_path)?.ok_or_else(|| {
            Error::io(
                "cut",
                &cut_path,
                io::Error::other("the cut file does not name the active segment"),
            )
        })?;
        let stat = |n: &str| {
            sh.dir
                .stat(n)
                .map_err(|e| Error::io("check active file", sh.dir.join(n), e))
        };
        let here = stat(&sh.active_name)?;
        if !same(here.as_ref(), state.dev, state.ino) {
            let prepared = name::prepared_file(&sh.cfg.name, state.seq);
            match here {
                Some(here) if same(stat(&prepared)?.as_ref(), state.dev, state.ino) => {
                    self.finish_cut(state, &prepared, here)?;
                }
                _ => state = self.replace_moved(state)?,
            }
        }
        let cur = sh.path.current.load_full();
        if cur.id.dev != state.dev || cur.id.ino != state.ino {
            // Another process cut: this one's records are in the segment
            // it cut, which it seals once this one has left.
            let seg = share::open_followed(&sh.dir, &sh.active_name, state, self.now())?;
            self.swap_to(Arc::new(seg), true)?;
            self.active_seq = state.seq;
            return Ok(());
        }
        let Some(reason) = cut else {
            return Ok(());
        };
        // Nothing to cut if the segment holds no record, of this process
        // or another (records may be empty: the length alone does not say).
        let len = crate::sys::file_info(&cur.file).map_or(0, |i| i.len);
        if len == 0 && !cur.has_records(&cur.lock()) {
            return Ok(());
        }
        let (new, seq) = self.create_shared(next_seq(state, &cut_path)?)?;
        self.swap_to(Arc::clone(&new), false)?;
        {
            let mut st = cur.lock();
            st.reason = Some(reason);
        }
        // Only once the old segment has its sealed name: until then
        // `shared_retry` tries again.
        self.promote(&cur, Some(&new))?;
        self.active_seq = seq;
        self.mark_cut(&cur);
        Ok(())
    }

    /// Removes the write permission bits of a segment this process cut:
    /// the other processes' probes see it and follow at once (see
    /// `Shared::probe`). Sealed segments of a shared log are so read-only.
    fn mark_cut(&self, seg: &Segment) {
        let mode = self.sh.cfg.file_mode;
        if mode & 0o200 == 0 || seg.lock().sealed_name.as_deref() == Some(name::MOVED) {
            // A moved segment is someone else's file now.
            return;
        }
        match crate::sys::set_mode(&seg.file, mode & !0o222) {
            // Only the file's owner may change its mode: a log shared by
            // several users keeps the write bits of segments another user
            // created (the others learn of the cut from the cut file).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => {
                self.sh.report(Error::io(
                    "mark segment cut",
                    self.sh.dir.join(&self.sh.active_name),
                    e,
                ));
            }
            Ok(()) => {}
        }
    }

    /// Creates segment `seq` at its prepared name, with its shared lock,
    /// and names it in the cut file (under the cut lock).
    fn create_shared(&mut self, seq: u64) -> Result<(Arc<Segment>, u64), Error> {
        let sh = Arc::clone(&self.sh);
        let prepared = name::prepared_file(&sh.cfg.name, seq);
        let path = sh.dir.join(&prepared);
        // A file at this name was left by a process killed before it
        // named it in the cut file: nobody ever wrote to it.
        if let Err(e) = sh.dir.unlink(&prepared) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(Error::io("create next segment", &path, e));
            }
        }
        let file = sh
            .dir
            .create_new(&prepared, sh.cfg.file_mode)
            .map_err(|e| Error::io("create next segment", &path, e))?;
        let seg = Segment::new_shared(seq, prepared, file, self.now())
            .map_err(|e| Error::io("create next segment", &path, e))?;
        share::share_segment(&seg, &path)?;
        if let Some(cut) = sh.cut.as_ref() {
            share::write_cut_state(cut, &sh.dir, &sh.cfg.name, seq, &seg)?;
        }
        Ok((Arc::new(seg), seq))
    }

    /// Makes `new` the current segment. The old one is sealed by this
    /// process (after `promote`), or if `followed`, by the process that
    /// cut it; this one then only records its part.
    fn swap_to(&mut self, new: Arc<Segment>, followed: bool) -> Result<(), Error> {
        let cur = self.sh.path.current.load_full();
        let mut st = cur.lock();
        // Under the current segment's lock: no writer can take `new` for a
        // swap of its own meanwhile (they swap only under it).
        self.sh.lock_next().push_back(new);
        if st.closed || !self.sh.try_swap(&cur, &mut st, SealReason::Manual) {
            self.sh.lock_next().clear();
            return Err(Error::io(
                "cut",
                self.sh.dir.join(&self.sh.active_name),
                io::Error::other("the current segment is closed"),
            ));
        }
        if followed {
            st.followed = true;
            st.sealed_name = Some(String::new());
        }
        Ok(())
    }

    /// A process was killed between naming the prepared segment `state.seq`
    /// in the cut file and moving it to the active path: finish its cut,
    /// and seal the segment it cut.
    fn finish_cut(&mut self, state: CutState, prepared: &str, here: FileInfo) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let cur = sh.path.current.load_full();
        if state.seq < 2 {
            return Err(Error::io(
                "finish an interrupted cut",
                sh.dir.join(&name::cut_file(&sh.cfg.name)),
                io::Error::other(format!("the cut file names segment {}", state.seq)),
            ));
        }
        if !same(Some(&here), cur.id.dev, cur.id.ino) {
            // This process had not followed to that segment yet.
            let behind = CutState {
                seq: state.seq - 1,
                dev: here.dev,
                ino: here.ino,
            };
            let seg = share::open_followed(&sh.dir, &sh.active_name, behind, self.now())?;
            self.swap_to(Arc::new(seg), true)?;
        }
        let cur = sh.path.current.load_full();
        if here.nlink > 1 {
            // The killed process had linked it to its sealed name already.
            if let Some(name) = self.sealed_name_of(cur.seq, &here) {
                cur.lock().linked_name = Some(name);
            }
        }
        let path = sh.dir.join(prepared);
        let file = sh
            .dir
            .open_existing_append(prepared)
            .map_err(|e| Error::io("finish an interrupted cut", &path, e))?;
        let new = Segment::new_shared(state.seq, prepared.to_string(), file, self.now())
            .map_err(|e| Error::io("finish an interrupted cut", &path, e))?;
        share::share_segment(&new, &path)?;
        let new = Arc::new(new);
        self.swap_to(Arc::clone(&new), false)?;
        sh.report(Error::io(
            "finish an interrupted cut",
            sh.dir.join(&sh.active_name),
            io::Error::other(format!(
                "a process was killed while it cut segment {}; this one finished the cut",
                cur.seq
            )),
        ));
        self.promote(&cur, Some(&new))?;
        self.active_seq = state.seq;
        self.mark_cut(&cur);
        Ok(())
    }

    /// The sealed name of this log that `info`'s file has, if any.
    fn sealed_name_of(&self, seq: u64, info: &FileInfo) -> Option<String> {
        let rd = std::fs::read_dir(self.sh.dir.path()).ok()?;
        rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| SealedName::parse(&self.sh.cfg.name, f).is_some_and(|n| n.seq == seq))
            .find(|f| {
                self.sh
                    .dir
                    .stat(f)
                    .ok()
                    .flatten()
                    .is_some_and(|i| i.dev == info.dev && i.ino == info.ino)
            })
    }

    /// Someone else moved the active file away (or removed it): a new one
    /// takes its place. If this process was writing the moved segment, it
    /// seals it (as moved); otherwise whoever still writes it only records
    /// a part. Returns the new cut state.
    fn replace_moved(&mut self, state: CutState) -> Result<CutState, Error> {
        let sh = Arc::clone(&self.sh);
        let cur = sh.path.current.load_full();
        let ours = cur.id.dev == state.dev && cur.id.ino == state.ino;
        let cut_path = sh.dir.join(&name::cut_file(&sh.cfg.name));
        let (new, seq) = self.create_shared(next_seq(state, &cut_path)?)?;
        self.swap_to(Arc::clone(&new), !ours)?;
        if ours {
            cur.lock().reason = Some(SealReason::Reopen);
            // The active path holds another file: `promote` records the
            // segment as moved and installs the new one.
            self.promote(&cur, Some(&new))?;
        } else {
            self.install(&new)?;
        }
        self.active_seq = seq;
        Ok(CutState {
            seq,
            dev: new.id.dev,
            ino: new.id.ino,
        })
    }

    // === Periodic work ===

    fn housekeeping(&mut self) {
        self.report_write_errors();
        let promoted = self.promote_pending();
        self.answer_reopens(promoted.as_ref().err());
        if let Err(e) = promoted {
            if self.prepare.allow(self.now()) {
                self.rotation_failed(e);
            }
        }
        let now = self.now();
        if self.sh.lock_next().len() < PREPARE_AHEAD && self.prepare.allow(now) {
            self.prepare_next();
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
    fn cut_if_due(&mut self, now: Timestamp) {
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
        if self.sh.cfg.shared {
            drop(st);
            if self.prepare.allow(now) {
                if let Err(e) = self.shared_step(Some(reason)) {
                    self.rotation_failed(e);
                }
            }
            return;
        }
        if self.sh.try_swap(&cur, &mut st, reason.clone()) {
            drop(st);
            self.after_swap();
        } else {
            self.sh.defer_cut(&mut st, reason);
        }
    }

    fn report_write_errors(&mut self) {
        for seg in self.live() {
            let err = seg.lock().error.take();
            if let Some(e) = err {
                let path = self.path_of(&seg);
                self.note_write_failure(Error::io("write record", path, e), false);
            }
        }
    }

    /// Writes records held after failed writes, once the backoff allows.
    fn retry_held(&mut self, now: Timestamp) {
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
                self.prepare_next();
            }
        }
    }

    /// One pass of `retry_held` over the live segments, oldest first.
    /// Returns true if it cut the current segment (its successor then
    /// holds records to write).
    fn drain_live_held(&mut self) -> bool {
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
    fn cut_for_held(&mut self, seg: &Arc<Segment>, st: &mut SegState) -> bool {
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
    fn seal_ready(&mut self) {
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
            ready.push(seg);
        }
        if !ready.is_empty() {
            let _ = self.sealer.send(Job::Seal(ready));
        }
    }

    /// Waits until the sealer has done everything handed to it.
    fn sealer_barrier(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.sealer.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    fn periodic_fsync(&mut self) {
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
    fn finish(&mut self) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let deadline = Instant::now()
            .checked_add(sh.cfg.shutdown_timeout)
            .unwrap_or(far);
        *sh.close_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
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
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(retry);
            let q = sh.lock_inbox();
            let _ = sh.mail.wake.wait_timeout(q, left);
            retry = (retry * 2).min(Duration::from_millis(500));
        }

        if sh.cfg.shared {
            // Follow a cut that another process made (and perhaps left
            // after): if this process is the last, the active file it
            // seals must be the one at the active path.
            if let Err(e) = self.shared_step(None) {
                sh.report(e);
            }
        }
        // The last segment: closed, nothing more goes in. Empty the pool of
        // prepared segments first, so that no writer still under way can
        // swap in a new one; then take the segment that is current after
        // any swap that was already happening.
        let unused: Vec<Arc<Segment>> = sh.lock_next().drain(..).collect();
        let cur = loop {
            let cur = sh.path.current.load_full();
            let mut st = cur.lock();
            if !Arc::ptr_eq(&sh.path.current.load_full(), &cur) {
                continue;
            }
            st.closed = true;
            st.reason = Some(SealReason::Shutdown);
            break Arc::clone(&cur);
        };
        // Let writes already under way finish (queued writers take over
        // from a leaving combiner, so this ends), on every live segment,
        // before counting what is held; bounded, for a write stuck in the
        // kernel.
        let quiet_deadline = deadline.max(Instant::now() + Duration::from_secs(1));
        for seg in self.live() {
            // A write under way ends within a system call; no new one
            // starts on a closed segment.
            while !seg.is_quiet() && Instant::now() < quiet_deadline {
                std::thread::yield_now();
            }
        }
        // Whatever is still held could not be written in time: lost.
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

        // Give the last segment its sealed name, or remove it if empty.
        let mut first_err: Option<Error> = None;
        let all_promoted = self.all_promoted();
        let (records, accepted) = {
            let st = cur.lock();
            let fast = cur.fast_records();
            (st.records + fast, st.accepted + fast)
        };
        if sh.cfg.shared {
            if let Err(e) = self.finish_shared(&cur, accepted) {
                first_err.get_or_insert(e);
            }
        } else if all_promoted {
            if records == 0 {
                self.accepted += accepted;
                if let Err(e) = sh.dir.unlink(&sh.active_name) {
                    first_err.get_or_insert(Error::io(
                        "remove empty segment",
                        sh.dir.join(&sh.active_name),
                        e,
                    ));
                }
            } else {
                match self.promote(&cur, None) {
                    Ok(()) => sh.lock_inbox().sealing.push(Arc::clone(&cur)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        } else {
            // Its records are recovered at the next start; keep the close
            // entry's count consistent with what was accepted.
            self.accepted += accepted;
            first_err.get_or_insert(Error::io(
                "shut down",
                sh.dir.join(&sh.active_name),
                io::Error::other(
                    "earlier segments could not be renamed; the next start recovers them",
                ),
            ));
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
        let accepted = match sh.cfg.mode {
            Mode::Direct => None,
            Mode::Buffered => Some(sh.lock_inbox().accepted),
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
        let sealed = if self.sealer.send(Job::Close(close)).is_ok() {
            rx.recv().unwrap_or_else(|_| Err(Error::shutdown("seal")))
        } else {
            Err(Error::shutdown("seal"))
        };
        if let Err(e) = sealed {
            first_err.get_or_insert(e);
        }
        // Every segment is sealed and handed over: let the keeper compress
        // what waits (within the shutdown timeout; the rest waits for the
        // next start) and apply retention a last time.
        if let Some(k) = self.keeper.take() {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let until = Instant::now()
                .checked_add(sh.cfg.shutdown_timeout)
                .unwrap_or(far);
            if k.send(keeper::Msg::Shutdown(until, tx)).is_ok() {
                let _ = rx.recv();
            }
        }
        #[cfg(feature = "metrics")]
        crate::metrics::publish(&sh.cfg.name, &sh.stats());
        // The session is recorded as closed: another appender may take the
        // log now.
        sh.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
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

    /// Shared mode, at shutdown: the last process to leave seals the active
    /// segment (or removes it if empty); the others only record their part
    /// of it and leave it to the process that cuts it next.
    fn finish_shared(&mut self, cur: &Arc<Segment>, accepted: u64) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let Some(cut_file) = sh.cut.as_ref() else {
            return Ok(());
        };
        let cut_path = sh.dir.join(&name::cut_file(&sh.cfg.name));
        // Everything swapped out before is recorded first (the part of a
        // segment just followed; a seal waits at most until the deadline):
        // the shared lock on the lock file must outlive this process's
        // seals, or a process starting alone could recover a segment this
        // one is about to seal.
        // A cut of this process whose promotion still fails: its records
        // are recorded as its part, the file is left to the next start.
        let mut stuck = None;
        for seg in sh.lock_inbox().sealing.clone() {
            let mut st = seg.lock();
            if st.sealed_name.is_none() {
                st.followed = true;
                st.sealed_name = Some(String::new());
                stuck.get_or_insert(seg.seq);
            }
        }
        self.seal_ready();
        self.sealer_barrier();
        let drained = sh.lock_inbox().sealing.is_empty();
        let guard = CutGuard::take(cut_file, &cut_path);
        // Alone if the lock file can be held exclusively. A failed attempt
        // releases this process's shared lock: it is leaving anyway. A
        // process starting now waits (for the cut lock, then for this
        // exclusive lock) until the seal is recorded.
        let alone = drained
            && guard.is_ok()
            && sh
                .lock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|f| {
                    crate::sys::flock(f, crate::sys::Flock::TryExclusive).unwrap_or(false)
                });
        let at_active = alone && self.is_at(&sh.active_name, cur).unwrap_or(false);
        let res = if at_active {
            let len = crate::sys::file_info(&cur.file).map_or(1, |i| i.len);
            // Empty: no byte, and no record (records may be empty) of this
            // process or of any that left it.
            let empty = len == 0
                && !cur.has_records(&cur.lock())
                && logcut_format::manifest::Manifest::read(
                    &sh.dir.join(&name::manifest_file(&sh.cfg.name)),
                )
                .is_ok_and(|m| {
                    !m.entries.iter().any(|e| {
                        matches!(e, logcut_format::manifest::Entry::Part(p) if p.seq == cur.seq && p.records > 0)
                    })
                });
            if empty {
                self.accepted += accepted;
                // Its sequence number is handed back (the next start gives
                // it to its first segment): no gap in the sequence. Only
                // empty parts of other processes name it.
                let back = CutState {
                    seq: cur.seq.saturating_sub(1),
                    dev: 0,
                    ino: 0,
                };
                let _ = crate::sys::overwrite(cut_file, back.encode().as_bytes());
                sh.dir
                    .unlink(&sh.active_name)
                    .map_err(|e| Error::io("remove empty segment", sh.dir.join(&sh.active_name), e))
            } else {
                let res = self.promote(cur, None);
                if res.is_ok() {
                    // Read-only like every sealed segment of a shared log.
                    self.mark_cut(cur);
                    sh.lock_inbox().sealing.push(Arc::clone(cur));
                }
                res
            }
        } else {
            {
                let mut st = cur.lock();
                st.followed = true;
                st.sealed_name = Some(String::new());
            }
            sh.lock_inbox().sealing.push(Arc::clone(cur));
            Ok(())
        };
        drop(guard);
        match stuck {
            Some(seq) => Err(Error::io(
                "shut down",
                sh.dir.join(&sh.active_name),
                io::Error::other(format!(
                    "segment {seq} could not be given its sealed name; the next appender to start alone recovers it"
                )),
            )),
            None => res,
        }
    }

    /// Takes whatever records and commands are queued, without waiting.
    fn wait_nonblocking(&mut self) -> Vec<Cmd> {
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

/// The sequence number after the cut state's (a corrupt cut file must not
/// make it wrap).
fn next_seq(state: CutState, path: &std::path::Path) -> Result<u64, Error> {
    state.seq.checked_add(1).ok_or_else(|| {
        Error::io(
            "cut",
            path,
            io::Error::other("the cut file names the last possible sequence number"),
        )
    })
}

/// Whether `info` is the file `dev`/`ino`.
fn same(info: Option<&FileInfo>, dev: u64, ino: u64) -> bool {
    info.is_some_and(|i| i.dev == dev && i.ino == ino)
}

fn reply(c: Cmd, res: Result<(), Error>) {
    match c {
        Cmd::Rotate(Some(tx)) | Cmd::Reopen(Some(tx)) | Cmd::Tick(tx) | Cmd::Shutdown(tx) => {
            let _ = tx.send(res);
        }
        Cmd::Rotate(None) | Cmd::Reopen(None) => {}
    }
}

/// Answers a caller, or for a trigger or signal (nobody waits), reports
/// the error to the handler.
fn answer(
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
