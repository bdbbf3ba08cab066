//! The state an appender's handles and its background threads share, in
//! three parts: the write path (the current segment, the ready pool, the
//! closed flag), the mailbox (records and commands for the background
//! thread, and the waits around them) and the lifecycle state (locks,
//! watches, shutdown's deadline), beside the narrow [`Context`] the
//! background stages get. The write path's code is in `append.rs`, the
//! background thread's in `worker.rs`; both work on these types.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, OnceLock, WaitTimeoutResult, atomic::AtomicBool, mpsc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use crate::{
    Error,
    context::{Context, Watch},
    runtime::Waker,
    segment::Segment,
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
