//! The state an appender's handles and its background threads share, in
//! three parts: the write path (the current segment, the ready pool, the
//! closed flag), the mailbox (records and commands for the background
//! thread, and the waits around them) and the lifecycle state (locks,
//! watches, shutdown's deadline), beside the narrow [`Context`] the
//! background stages get. The write path's code is in `append.rs`, the
//! background thread's in `worker.rs`; both work on these types.

use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, OnceLock, WaitTimeoutResult, atomic::AtomicBool, mpsc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use crate::{
    Error,
    context::{Context, Requests, SealerLink, Watch},
    runtime::Waker,
    segment::Segment,
    stats::Counters,
};

/// How writers and callers wake the background task: its runtime waker,
/// and a condition variable for shutdown, which runs the task's last work
/// on the caller's thread and waits there.
#[derive(Default)]
pub(crate) struct Wake {
    cv: Condvar,
    task: OnceLock<Waker>,
}

impl Wake {
    /// Set once, when the task is started.
    pub(crate) fn set_task(&self, waker: Waker) {
        let _ = self.task.set(waker);
    }

    pub(crate) fn notify_one(&self) {
        self.cv.notify_one();
        if let Some(w) = self.task.get() {
            w.wake();
        }
    }

    /// Shutdown only: waits for a notification or the timeout.
    pub(crate) fn wait_timeout<'a>(
        &self,
        q: MutexGuard<'a, Inbox>,
        d: Duration,
    ) -> (MutexGuard<'a, Inbox>, WaitTimeoutResult) {
        self.cv
            .wait_timeout(q, d)
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// A request to the background thread, answered on its channel. `Rotate`
/// and `Reopen` without a channel come from a trigger or a signal: nobody
/// waits for them, and errors go to the handler.
pub(crate) enum Cmd {
    Rotate(Option<mpsc::SyncSender<Result<(), Error>>>),
    Reopen(Option<mpsc::SyncSender<Result<(), Error>>>),
    Tick(mpsc::SyncSender<Result<(), Error>>),
    Shutdown(mpsc::SyncSender<Result<(), Error>>),
}

/// What writers and callers hand to the background thread.
#[derive(Default)]
pub(crate) struct Inbox {
    /// Buffered mode: record bytes, and where each record ends.
    pub(crate) buf: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    /// Buffered mode: records and bytes accepted, and records written.
    pub(crate) accepted: u64,
    pub(crate) accepted_bytes: u64,
    pub(crate) written: u64,
    /// Commands, each with the number of buffered records before it.
    pub(crate) cmds: Vec<(usize, Cmd)>,
    /// Segments swapped out and not yet sealed, oldest first.
    pub(crate) sealing: Vec<Arc<Segment>>,
    /// Something needs the background thread's attention.
    pub(crate) kick: bool,
    /// A caller waits in `flush`: write the buffer now, without lingering.
    pub(crate) flush_req: bool,
    /// The background thread waits on `wake` (writers notify only then).
    pub(crate) sleeping: bool,
    /// No more records are accepted.
    pub(crate) stop: bool,
    /// The background thread has exited.
    pub(crate) gone: bool,
    /// Incremented at each failed write, with the error, for `flush`.
    pub(crate) fail_gen: u64,
    pub(crate) last_error: Option<Error>,
    /// Writes are failing now (records are held and retried).
    pub(crate) failing: bool,
}

/// The write path: the segment records go to, the segments prepared to
/// follow it, and the flag writers check before writing.
pub(crate) struct WritePath {
    /// The segment records go to. Writers load it without locking.
    pub(crate) current: ArcSwap<Segment>,
    /// Prepared next segments, in sequence order.
    pub(crate) next: Mutex<VecDeque<Arc<Segment>>>,
    /// Set once at shutdown; written with `SeqCst` before the background
    /// thread is told to stop, read by Direct writers (`Acquire`) so that a
    /// writer which sees it set never writes again.
    pub(crate) closed: AtomicBool,
    /// The refill of `next` (exclusive mode), set once at start: a Direct
    /// writer whose cut finds the pool empty starts one.
    pub(crate) refill: OnceLock<Arc<dyn crate::context::Refill>>,
}

/// The mailbox: records (Buffered mode) and commands for the background
/// thread, and the waits around them.
pub(crate) struct Mailbox {
    pub(crate) inbox: Mutex<Inbox>,
    /// Wakes the background task (and shutdown, which waits on it).
    pub(crate) wake: Wake,
    /// Buffered writers wait here for room.
    pub(crate) space: Condvar,
    /// `flush` waits here for records to be written.
    pub(crate) written: Condvar,
}

/// State shared by the handles and the background thread.
pub(crate) struct Shared {
    /// What the background stages see (configuration, directory, names,
    /// session, counters, error reporting); `Shared` derefs to it.
    pub(crate) ctx: Arc<Context>,
    /// Where records go.
    pub(crate) path: WritePath,
    /// What writers and callers hand to the background thread.
    pub(crate) mail: Mailbox,
    /// The lock file, held (exclusive `flock`; shared in shared mode) until
    /// shutdown.
    pub(crate) lock: Mutex<Option<std::fs::File>>,
    /// Shared mode: the cut file `<name>.cut` (see `CutGuard`).
    pub(crate) cut: Option<std::fs::File>,
    /// Trigger-file watch and signal thread, stopped at shutdown.
    pub(crate) watches: Mutex<Vec<Box<dyn Watch>>>,
    /// Shared mode: set at shutdown to its deadline; the sealer stops
    /// waiting then for other processes to leave a segment.
    pub(crate) close_by: Mutex<Option<Instant>>,
    /// Shared mode with a trigger file: the trigger lock (see
    /// `name::trigger_lock_file`); taken away at shutdown.
    pub(crate) trigger_lock: Mutex<Option<std::fs::File>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmdKind {
    Rotate,
    Reopen,
    Tick,
    Shutdown,
}

impl Requests for Shared {
    fn context(&self) -> &Context {
        &self.ctx
    }

    fn request_rotate(&self) {
        self.trigger();
    }

    fn request_reopen(&self) {
        Shared::request_reopen(self);
    }

    fn acts_on_triggers(&self) -> bool {
        if !self.cfg.shared {
            return true;
        }
        // After this appender's shutdown began it no longer acts. An error
        // taking the lock counts as holding it: a double cut is better
        // than a missed one.
        match self
            .trigger_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(f) => crate::sys::flock(f, crate::sys::Flock::TryExclusive).unwrap_or(true),
            None => false,
        }
    }
}

impl SealerLink for Shared {
    fn retire(&self, segs: &[(Arc<Segment>, u64, u64, u64)], rotations: bool) {
        let c = &self.counters;
        let mut q = self.lock_inbox();
        for (seg, accepted, accepted_bytes, records) in segs {
            if let Some(i) = q.sealing.iter().position(|s| Arc::ptr_eq(s, seg)) {
                q.sealing.remove(i);
            }
            // Under the inbox lock, together with the removal, so `stats`
            // sees each segment's counts once.
            Counters::add(&c.retired_accepted, *accepted);
            Counters::add(&c.retired_accepted_bytes, *accepted_bytes);
            Counters::add(&c.retired_written, *records);
            if rotations {
                Counters::add(&c.rotations, 1);
            }
        }
        // Shutdown's last rounds wait for the seals (on `wake`).
        self.mail.wake.notify_one();
    }

    fn close_by(&self) -> Option<Instant> {
        *self.close_by.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::ops::Deref for Shared {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Shared {
    pub(crate) fn lock_inbox(&self) -> MutexGuard<'_, Inbox> {
        self.mail.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_next(&self) -> MutexGuard<'_, VecDeque<Arc<Segment>>> {
        self.path.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the background thread to look at its work.
    pub(crate) fn kick(&self) {
        let mut q = self.lock_inbox();
        q.kick = true;
        q.sleeping = false;
        self.mail.wake.notify_one();
    }

    /// The error for a call from a runtime thread that would have to wait
    /// for a task: that task might need this very thread.
    pub(crate) fn would_block(&self, op: &'static str) -> Error {
        Error::io(
            op,
            self.dir.path(),
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "called from a background thread of the appender's runtime (an error handler?)",
            ),
        )
    }

    pub(crate) fn command(&self, kind: CmdKind, op: &'static str) -> Result<(), Error> {
        let rx = self.enqueue(kind, op)?;
        rx.recv().unwrap_or_else(|_| Err(Error::shutdown(op)))
    }

    /// Queues a command for the background task; its answer comes on the
    /// returned channel.
    pub(crate) fn enqueue(
        &self,
        kind: CmdKind,
        op: &'static str,
    ) -> Result<mpsc::Receiver<Result<(), Error>>, Error> {
        if self.rt.on_runtime_thread() {
            return Err(self.would_block(op));
        }
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut q = self.lock_inbox();
            if q.gone || (q.stop && kind != CmdKind::Shutdown) {
                return Err(Error::shutdown(op));
            }
            let cmd = match kind {
                CmdKind::Rotate => Cmd::Rotate(Some(tx)),
                CmdKind::Reopen => Cmd::Reopen(Some(tx)),
                CmdKind::Tick => Cmd::Tick(tx),
                CmdKind::Shutdown => {
                    q.stop = true;
                    Cmd::Shutdown(tx)
                }
            };
            let pos = q.ends.len();
            q.cmds.push((pos, cmd));
            q.sleeping = false;
            self.mail.wake.notify_one();
        }
        self.mail.space.notify_all();
        Ok(rx)
    }

    /// An external rotation request (trigger file, SIGUSR1). Merged with
    /// one already queued at the same place among the records, so a storm
    /// of triggers queues at most one per record written.
    #[cfg_attr(not(any(feature = "trigger", feature = "signals")), allow(dead_code))]
    pub(crate) fn trigger(&self) {
        Counters::add(&self.counters.triggers, 1);
        let mut q = self.lock_inbox();
        if q.stop || q.gone {
            return;
        }
        let pos = q.ends.len();
        if q.cmds
            .iter()
            .any(|(p, c)| *p == pos && matches!(c, Cmd::Rotate(None)))
        {
            return;
        }
        q.cmds.push((pos, Cmd::Rotate(None)));
        q.sleeping = false;
        self.mail.wake.notify_one();
    }

    /// An external reopen request (SIGHUP); merged with one already queued.
    #[cfg_attr(not(feature = "signals"), allow(dead_code))]
    pub(crate) fn request_reopen(&self) {
        let mut q = self.lock_inbox();
        if q.stop || q.gone || q.cmds.iter().any(|(_, c)| matches!(c, Cmd::Reopen(None))) {
            return;
        }
        let pos = q.ends.len();
        q.cmds.push((pos, Cmd::Reopen(None)));
        q.sleeping = false;
        self.mail.wake.notify_one();
    }
}
