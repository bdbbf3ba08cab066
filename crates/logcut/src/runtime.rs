//! The runtime: the threads that do the background work of every log in a
//! process, so that a thousand open logs cost a bounded number of threads.
//!
//! Each log's background stages (the worker that writes batches and cuts,
//! the sealer, the keeper) are *tasks*: a task runs when it is woken (a
//! record arrived, a segment waits to be sealed) or when a time it asked
//! for has come, does what is due without waiting for another task, and
//! returns. A small pool of threads runs the tasks that are ready; a second,
//! lazily started pool at a lower priority runs compression, so that a long
//! compression never delays a cut.
//!
//! A task never waits for another task: what it would wait for (a barrier
//! through the sealer to the keeper) is passed along with the message
//! instead. Waits that are not on a task (a write or an fsync in the kernel,
//! another process's lock in shared mode) still hold a thread while they
//! last, which is why the pool has more than one.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use crate::Error;

/// What a task wants after a run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing to do until it is woken.
    Idle,
    /// More to do now: run again after the tasks already waiting.
    Again,
    /// Run again after this long, or earlier if woken.
    After(Duration),
    /// Finished: never run again.
    Done,
}

/// One log's background stage, run by the runtime's threads.
pub(crate) trait Task: Send {
    fn run(&mut self) -> Next;
}

/// Which pool runs a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Writing, cutting, sealing, keeping.
    Core,
    /// Compression and indexing, at a lower priority.
    Compress,
    /// Uploads (shipping), which wait on the network: a pool of its own,
    /// so that a server that is down never holds compression up.
    Ship,
}

impl Lane {
    /// The index of a pool lane's state (`Core` has none).
    fn pool(self) -> usize {
        match self {
            Lane::Core | Lane::Compress => 0,
            Lane::Ship => 1,
        }
    }
}

/// A lazily started pool of threads for one lane.
#[derive(Default)]
struct PoolState {
    queue: VecDeque<Arc<Cell>>,
    /// Threads started, and how many of them wait for work.
    started: usize,
    idle: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Idle,
    Queued,
    Running,
    /// Woken while it ran: queued again when it returns.
    Notified,
    Done,
}

struct CellState {
    run: Run,
    /// The timer it waits for, if any (an earlier timer replaces it).
    timer: Option<Instant>,
}

struct Cell {
    state: Mutex<CellState>,
    task: Mutex<Option<Box<dyn Task>>>,
    lane: Lane,
    rt: Weak<Inner>,
}

/// A channel to a task that wakes it at each message.
pub(crate) struct Mail<T> {
    tx: std::sync::mpsc::Sender<T>,
    waker: Waker,
}

impl<T> std::fmt::Debug for Mail<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").finish_non_exhaustive()
    }
}

impl<T> Clone for Mail<T> {
    fn clone(&self) -> Self {
        Mail {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<T> Mail<T> {
    pub(crate) fn new(tx: std::sync::mpsc::Sender<T>, waker: Waker) -> Mail<T> {
        Mail { tx, waker }
    }

    /// Sends and wakes the task; fails once the task is done.
    pub(crate) fn send(&self, msg: T) -> Result<(), std::sync::mpsc::SendError<T>> {
        let res = self.tx.send(msg);
        self.waker.wake();
        res
    }
}

/// Wakes one task: it runs soon, once, however often it is woken before.
#[derive(Clone)]
pub(crate) struct Waker(Arc<Cell>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").field("lane", &self.0.lane).finish()
    }
}

impl Waker {
    pub(crate) fn wake(&self) {
        let mut st = lock(&self.0.state);
        match st.run {
            Run::Idle => {
                st.run = Run::Queued;
                if let Some(rt) = self.0.rt.upgrade() {
                    rt.push(Arc::clone(&self.0));
                }
            }
            Run::Running => st.run = Run::Notified,
            Run::Queued | Run::Notified | Run::Done => {}
        }
    }
}

/// A task's timer. It holds the task: a task that asked to run again runs,
/// even if nothing else refers to it.
struct Timer {
    at: Instant,
    seq: u64,
    cell: Arc<Cell>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Timer) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Timer) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Timer) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Sched {
    core: VecDeque<Arc<Cell>>,
    /// The compression and shipping pools (see `Lane::pool`).
    pools: [PoolState; 2],
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    stop: bool,
}

struct Inner {
    sched: Mutex<Sched>,
    core_cv: Condvar,
    pool_cv: [Condvar; 2],
    pool_max: [usize; 2],
    name: String,
    /// Identifies this runtime's threads (see `on_runtime_thread`).
    id: usize,
}

thread_local! {
    /// The id of the runtime whose thread this is (0: none).
    static RUNTIME_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn push(self: &Arc<Inner>, cell: Arc<Cell>) {
        let mut s = lock(&self.sched);
        match cell.lane {
            Lane::Core => {
                s.core.push_back(cell);
                drop(s);
                self.core_cv.notify_one();
            }
            lane @ (Lane::Compress | Lane::Ship) => {
                let i = lane.pool();
                let pool = &mut s.pools[i];
                pool.queue.push_back(cell);
                if pool.idle == 0 && pool.started < self.pool_max[i] {
                    pool.started += 1;
                    let rt = Arc::clone(self);
                    let kind = if lane == Lane::Ship {
                        "ship"
                    } else {
                        "compress"
                    };
                    let spawned = std::thread::Builder::new()
                        .name(format!("{}-{kind}", self.name))
                        .spawn(move || rt.pool_loop(lane));
                    if spawned.is_err() {
                        // No thread for the pool: the core threads take
                        // its work (it runs; only later than it would).
                        let pool = &mut s.pools[i];
                        pool.started -= 1;
                        if pool.started == 0 {
                            let moved: Vec<_> = pool.queue.drain(..).collect();
                            s.core.extend(moved);
                            drop(s);
                            self.core_cv.notify_one();
                            return;
                        }
                    }
                }
                drop(s);
                self.pool_cv[i].notify_one();
            }
        }
    }

    fn core_loop(self: Arc<Inner>) {
        RUNTIME_ID.with(|c| c.set(self.id));
        loop {
            let mut fired = Vec::new();
            let cell = {
                let mut s = lock(&self.sched);
                loop {
                    let now = Instant::now();
                    while s.timers.peek().is_some_and(|t| t.0.at <= now) {
                        if let Some(Reverse(t)) = s.timers.pop() {
                            fired.push(t);
                        }
                    }
                    if !fired.is_empty() {
                        break None;
                    }
                    if let Some(c) = s.core.pop_front() {
                        break Some(c);
                    }
                    if s.stop {
                        return;
                    }
                    s = match s.timers.peek().map(|t| t.0.at) {
                        Some(at) => {
                            let d = at.saturating_duration_since(now);
                            self.core_cv
                                .wait_timeout(s, d)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                        None => self.core_cv.wait(s).unwrap_or_else(|e| e.into_inner()),
                    };
                }
            };
            for t in fired {
                fire(&t.cell, t.at);
            }
            if let Some(c) = cell {
                self.run_cell(&c);
            }
        }
    }

    fn pool_loop(self: Arc<Inner>, lane: Lane) {
        RUNTIME_ID.with(|c| c.set(self.id));
        // Compression yields to the writers; uploads mostly wait anyway.
        if lane == Lane::Compress {
            crate::sealed::compress::lower_priority();
        }
        let i = lane.pool();
        loop {
            let cell = {
                let mut s = lock(&self.sched);
                loop {
                    if let Some(c) = s.pools[i].queue.pop_front() {
                        break c;
                    }
                    if s.stop {
                        s.pools[i].started -= 1;
                        return;
                    }
                    s.pools[i].idle += 1;
                    s = self.pool_cv[i].wait(s).unwrap_or_else(|e| e.into_inner());
                    s.pools[i].idle -= 1;
                }
            };
            self.run_cell(&cell);
        }
    }

    fn run_cell(self: &Arc<Inner>, cell: &Arc<Cell>) {
        lock(&cell.state).run = Run::Running;
        let next = {
            let mut task = lock(&cell.task);
            match task.as_mut() {
                // A task that panics is stopped, not the thread: the other
                // logs' tasks go on.
                Some(t) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run()))
                    .unwrap_or(Next::Done),
                None => Next::Done,
            }
        };
        let mut st = lock(&cell.state);
        match next {
            Next::Done => {
                st.run = Run::Done;
                st.timer = None;
                drop(st);
                // Dropped here, outside every lock: it may hold the last
                // reference to a log's state.
                let task = lock(&cell.task).take();
                drop(task);
            }
            Next::Again => {
                st.run = Run::Queued;
                drop(st);
                self.push(Arc::clone(cell));
            }
            Next::Idle | Next::After(_) => {
                let requeue = st.run == Run::Notified;
                st.run = if requeue { Run::Queued } else { Run::Idle };
                if let Next::After(d) = next {
                    let at = Instant::now().checked_add(d);
                    if let Some(at) = at {
                        if st.timer.is_none_or(|t| at < t) {
                            st.timer = Some(at);
                            let mut s = lock(&self.sched);
                            s.timer_seq += 1;
                            let seq = s.timer_seq;
                            s.timers.push(Reverse(Timer {
                                at,
                                seq,
                                cell: Arc::clone(cell),
                            }));
                            drop(s);
                            // A thread may sleep until a later timer.
                            self.core_cv.notify_one();
                        }
                    }
                }
                drop(st);
                if requeue {
                    self.push(Arc::clone(cell));
                }
            }
        }
    }
}

/// A timer came: wakes its task, unless a newer timer replaced it.
fn fire(cell: &Arc<Cell>, at: Instant) {
    {
        let mut st = lock(&cell.state);
        if st.timer != Some(at) {
            return;
        }
        st.timer = None;
    }
    Waker(Arc::clone(cell)).wake();
}

/// The handle users hold; the threads hold only `Inner`, so they stop when
/// the last handle (and with it the last appender) is gone.
struct Owner {
    inner: Arc<Inner>,
    threads: usize,
}

impl Drop for Owner {
    fn drop(&mut self) {
        lock(&self.inner.sched).stop = true;
        self.inner.core_cv.notify_all();
        for cv in &self.inner.pool_cv {
            cv.notify_all();
        }
    }
}

/// The background threads of many appenders: build one and give it to
/// each [`AppenderBuilder::runtime`](crate::AppenderBuilder::runtime), or
/// let appenders share the default one.
///
/// An appender does all its background work (writing batches in
/// [`Mode::Buffered`](crate::Mode::Buffered), preparing and renaming
/// segments, syncing and recording them, compression and retention) on its
/// runtime's threads; it starts no thread of its own, except for a trigger
/// file's watch and signal handling when those are asked for. A thousand
/// appenders on one runtime cost its few threads.
///
/// | Setting | Default |
/// |---|---|
/// | [`threads`](RuntimeBuilder::threads) | 4 |
/// | [`compress_threads`](RuntimeBuilder::compress_threads) | 2, started on first use, at a lower priority |
/// | [`ship_threads`](RuntimeBuilder::ship_threads) | 4, started on first use (uploads, feature `ship`) |
///
/// The threads stop once every handle to the runtime is dropped and every
/// appender on it has shut down.
#[derive(Clone)]
pub struct Runtime {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.owner.inner.name)
            .field("threads", &self.owner.threads)
            .field("compress_threads", &self.owner.inner.pool_max[0])
            .field("ship_threads", &self.owner.inner.pool_max[1])
            .finish()
    }
}

/// Builds a [`Runtime`]; see its table of defaults.
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    threads: usize,
    compress_threads: usize,
    ship_threads: usize,
    name: String,
}

impl Default for RuntimeBuilder {
    fn default() -> RuntimeBuilder {
        RuntimeBuilder {
            threads: 4,
            compress_threads: 2,
            ship_threads: 4,
            name: "logcut".to_string(),
        }
    }
}

impl RuntimeBuilder {
    /// Threads for writing, cutting, sealing and retention. At least 2:
    /// a wait in the kernel (an fsync, another process's lock) holds one.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Threads for compression, at most; started when first needed.
    pub fn compress_threads(mut self, n: usize) -> Self {
        self.compress_threads = n;
        self
    }

    /// Threads for uploads (shipping), at most; started when first
    /// needed. They wait on the network, so more than the cores help.
    pub fn ship_threads(mut self, n: usize) -> Self {
        self.ship_threads = n;
        self
    }

    /// The prefix of the threads' names (`logcut` by default).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the threads.
    pub fn build(self) -> Result<Runtime, Error> {
        if self.threads < 2 {
            return Err(Error::config(
                "runtime threads",
                "fewer than 2 threads; give at least 2 (a wait in the kernel holds one)",
            ));
        }
        if self.compress_threads == 0 || self.ship_threads == 0 {
            return Err(Error::config(
                "runtime compress_threads",
                "zero compression or shipping threads; give at least 1",
            ));
        }
        let inner = Arc::new(Inner {
            sched: Mutex::new(Sched::default()),
            core_cv: Condvar::new(),
            pool_cv: [Condvar::new(), Condvar::new()],
            pool_max: [self.compress_threads, self.ship_threads],
            name: self.name.clone(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        });
        let owner = Arc::new(Owner {
            inner: Arc::clone(&inner),
            threads: self.threads,
        });
        for i in 0..self.threads {
            let rt = Arc::clone(&inner);
            std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || rt.core_loop())
                .map_err(|e| Error::io("start runtime thread", std::path::Path::new(""), e))?;
        }
        Ok(Runtime { owner })
    }
}

/// The default runtime, shared by appenders built without one, while any
/// of them lives.
static DEFAULT: Mutex<Weak<Owner>> = Mutex::new(Weak::new());

impl Runtime {
    /// A builder with the defaults in the table above.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A runtime with the defaults.
    pub fn new() -> Result<Runtime, Error> {
        RuntimeBuilder::default().build()
    }

    /// The runtime appenders built without [`AppenderBuilder::runtime`](crate::AppenderBuilder::runtime)
    /// share: started by the first of them, stopped after the last.
    pub fn shared_default() -> Result<Runtime, Error> {
        let mut d = lock(&DEFAULT);
        if let Some(owner) = d.upgrade() {
            return Ok(Runtime { owner });
        }
        let rt = Runtime::new()?;
        *d = Arc::downgrade(&rt.owner);
        Ok(rt)
    }

    /// Its number of threads for writing, cutting and sealing.
    pub fn threads(&self) -> usize {
        self.owner.threads
    }

    /// Starts a task, queued to run at once.
    pub(crate) fn spawn(&self, lane: Lane, task: Box<dyn Task>) -> Waker {
        let cell = Arc::new(Cell {
            state: Mutex::new(CellState {
                run: Run::Queued,
                timer: None,
            }),
            task: Mutex::new(Some(task)),
            lane,
            rt: Arc::downgrade(&self.owner.inner),
        });
        self.owner.inner.push(Arc::clone(&cell));
        Waker(cell)
    }

    /// Registers a task that runs only once woken (its waker is needed
    /// before the task can be built: `install` then gives it its task).
    pub(crate) fn idle_cell(&self, lane: Lane) -> Waker {
        Waker(Arc::new(Cell {
            state: Mutex::new(CellState {
                run: Run::Idle,
                timer: None,
            }),
            task: Mutex::new(None),
            lane,
            rt: Arc::downgrade(&self.owner.inner),
        }))
    }

    /// Gives a cell from `idle_cell` its task and runs it once.
    pub(crate) fn install(&self, waker: &Waker, task: Box<dyn Task>) {
        *lock(&waker.0.task) = Some(task);
        waker.wake();
    }

    /// Whether the calling thread is one of this runtime's: it must not
    /// wait for a task (the task might need this very thread).
    pub(crate) fn on_runtime_thread(&self) -> bool {
        RUNTIME_ID.with(|c| c.get()) == self.owner.inner.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Count {
        left: u32,
        tx: mpsc::Sender<u32>,
    }

    impl Task for Count {
        fn run(&mut self) -> Next {
            let _ = self.tx.send(self.left);
            if self.left == 0 {
                return Next::Done;
            }
            self.left -= 1;
            if self.left % 2 == 0 {
                Next::Again
            } else {
                Next::After(Duration::from_millis(1))
            }
        }
    }

    #[test]
    fn a_task_runs_until_done_through_again_and_timers() {
        let rt = Runtime::builder().threads(2).build().unwrap();
        let (tx, rx) = mpsc::channel();
        rt.spawn(Lane::Core, Box::new(Count { left: 5, tx }));
        let got: Vec<u32> = rx.iter().collect();
        // The task's sender drops when it is done: the channel ends.
        assert_eq!(got, vec![5, 4, 3, 2, 1, 0]);
    }

    struct Woken {
        rx: mpsc::Receiver<u32>,
        out: mpsc::Sender<u32>,
    }

    impl Task for Woken {
        fn run(&mut self) -> Next {
            loop {
                match self.rx.try_recv() {
                    Ok(n) => {
                        let _ = self.out.send(n);
                    }
                    Err(mpsc::TryRecvError::Empty) => return Next::Idle,
                    Err(mpsc::TryRecvError::Disconnected) => return Next::Done,
                }
            }
        }
    }

    #[test]
    fn a_woken_task_sees_every_message_sent_before_the_wake() {
        let rt = Runtime::builder().threads(3).build().unwrap();
        let (tx, rx) = mpsc::channel();
        let (out, got) = mpsc::channel();
        let waker = rt.idle_cell(Lane::Core);
        rt.install(&waker, Box::new(Woken { rx, out }));
        let senders: Vec<_> = (0..4u32)
            .map(|t| {
                let (tx, waker) = (tx.clone(), waker.clone());
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        tx.send(t * 1000 + i).unwrap();
                        waker.wake();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        drop(tx);
        waker.wake();
        let mut all: Vec<u32> = got.iter().collect();
        all.sort_unstable();
        assert_eq!(all, (0..4000).collect::<Vec<_>>());
    }

    #[test]
    fn compression_runs_on_its_own_lane_and_threads_are_known() {
        let rt = Runtime::builder()
            .threads(2)
            .compress_threads(1)
            .build()
            .unwrap();
        struct Probe(mpsc::Sender<bool>, Runtime);
        impl Task for Probe {
            fn run(&mut self) -> Next {
                let _ = self.0.send(self.1.on_runtime_thread());
                Next::Done
            }
        }
        let (tx, rx) = mpsc::channel();
        rt.spawn(Lane::Compress, Box::new(Probe(tx.clone(), rt.clone())));
        rt.spawn(Lane::Ship, Box::new(Probe(tx.clone(), rt.clone())));
        rt.spawn(Lane::Core, Box::new(Probe(tx, rt.clone())));
        assert_eq!(
            rx.iter().take(3).collect::<Vec<_>>(),
            vec![true, true, true]
        );
        assert!(!rt.on_runtime_thread());
    }

    /// An upload that hangs (a server that does not answer) holds only
    /// the shipping lane: compression goes on.
    #[test]
    fn a_hung_upload_does_not_hold_compression_up() {
        let rt = Runtime::builder()
            .threads(2)
            .compress_threads(1)
            .ship_threads(1)
            .build()
            .unwrap();
        struct Job(
            Option<mpsc::Receiver<()>>,
            &'static str,
            mpsc::Sender<&'static str>,
        );
        impl Task for Job {
            fn run(&mut self) -> Next {
                if let Some(rx) = self.0.take() {
                    let _ = rx.recv();
                }
                let _ = self.2.send(self.1);
                Next::Done
            }
        }
        let (release, hang) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        rt.spawn(Lane::Ship, Box::new(Job(Some(hang), "upload", tx.clone())));
        rt.spawn(Lane::Compress, Box::new(Job(None, "compression", tx)));
        // The compression ends while the upload still hangs.
        assert_eq!(rx.recv().unwrap(), "compression");
        release.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), "upload");
    }

    #[test]
    fn too_few_threads_is_a_configuration_error() {
        let e = Runtime::builder().threads(1).build().unwrap_err();
        assert!(e.is_config(), "{e}");
    }
}
