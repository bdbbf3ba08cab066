//! The write path: [`Appender`], its shared state, and the atomic swap of
//! the current segment.
//!
//! # How a record is written
//!
//! In [`Mode::Direct`] the writing thread loads the current segment (one
//! `ArcSwap` load, no lock), checks the size limit and time boundary on
//! atomics, registers in the segment's in-flight count and writes the
//! record with one `write(2)` (`O_APPEND`: the kernel places it whole at
//! the end of the file). When a cut is due, it takes the segment's lock and
//! installs the segment the background thread prepared: it stores it as the
//! current one (the swap) and marks the old one closed. A writer that had
//! loaded the old segment sees it closed after registering and moves on to
//! the new one; the old segment is sealed only once its in-flight count is
//! zero, so no record is written to a segment after it was sealed.
//! Renaming, syncing and recording the old segment happen later on the
//! background threads.
//!
//! In [`Mode::Buffered`] the writing thread copies the record into a
//! bounded buffer under a short lock; the background thread writes the
//! buffer in large batches and cuts between records.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    fmt,
    hash::{BuildHasher, Hasher},
    io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Instant,
};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use logcut_format::{
    manifest::{Entry, Open, SealReason},
    name,
};

use crate::{
    AppenderBuilder, Error, Mode, Stats,
    builder::{Config, Fsync},
    context::{Context, Requests, SealerLink, Watch},
    journal::Journal,
    recovery,
    runtime::Lane,
    segment::{INFLIGHT, RECORD, SegState, Segment},
    share::{CutGuard, share_segment, take_shared_lock, write_cut_state},
    shared::{Cmd, Inbox, Mailbox, Shared, Wake, WritePath},
    stats::{Counters, FallbackState},
    sys::Dir,
    worker::{Handoff, Worker, WorkerTask},
};

/// A rotating log appender: cheap to clone, safe to share between threads.
///
/// Each `write` call is one record. See the [crate docs](crate) for the
/// guarantees.
///
/// ```
/// use std::io::Write;
/// # let dir = std::env::temp_dir().join(format!("logcut-doc-appender-{}", std::process::id()));
/// let appender = logcut::Appender::builder()
///     .dir(&dir)
///     .name("app")
///     .max_size(1 << 20)
///     .mode(logcut::Mode::Direct)
///     .build()?;
/// (&appender).write_all(b"one record\n")?;
/// appender.rotate()?;
/// appender.shutdown()?;
/// let report = logcut::verify(&dir)?;
/// assert!(report.is_ok(), "{report}");
/// assert_eq!(report.records(), 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Appender {
    handle: Arc<Handle>,
}

/// The user-facing owner: when the last `Appender` clone is dropped, this
/// drops and shuts the appender down. The background thread holds only
/// `Shared`, so it does not keep the appender alive.
struct Handle {
    shared: Arc<Shared>,
    /// Where the background task hands the worker over at shutdown.
    worker: Mutex<Option<mpsc::Receiver<Handoff>>>,
    result: Mutex<Option<Result<(), Error>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CmdKind {
    Rotate,
    Reopen,
    Tick,
    Shutdown,
}

impl fmt::Debug for Appender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sh = &self.handle.shared;
        f.debug_struct("Appender")
            .field("dir", &sh.dir.path())
            .field("name", &sh.cfg.name)
            .finish_non_exhaustive()
    }
}

/// The outcome of a lock-free write attempt.
enum Fast {
    /// Written (or, after a failure, held).
    Done,
    /// The segment was closed meanwhile: try the current one.
    Closed,
    /// A cut or a boundary is due: take the locked path.
    Locked,
}

thread_local! {
    /// Samples one record in 32 per thread for the latency histogram.
    static SAMPLE: Cell<u32> = const { Cell::new(0) };
    /// Scratch space for `write_fmt`, so a formatted record costs no
    /// allocation after the first.
    static FMT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Appender {
    /// A builder with the default settings.
    pub fn builder() -> AppenderBuilder {
        AppenderBuilder::new()
    }

    pub(crate) fn start(mut cfg: Config) -> Result<Appender, Error> {
        // First: without threads to run on, nothing is touched on disk.
        let rt = match cfg.runtime.take() {
            Some(rt) => rt,
            None => crate::Runtime::shared_default()?,
        };
        let dir = Dir::create_and_open(&cfg.dir, cfg.dir_mode)
            .map_err(|e| Error::io("open log directory", &cfg.dir, e))?;
        // Shared mode: start-up holds the cut lock, so that it sees the log
        // between cuts, and two processes starting at once do not both
        // recover.
        let (cut, cut_guard) = if cfg.shared {
            let cut_name = name::cut_file(&cfg.name);
            let cut = dir
                .open_lock(&cut_name, cfg.file_mode)
                .map_err(|e| Error::io("open cut file", dir.join(&cut_name), e))?;
            let guard = CutGuard::take(&cut, &dir.join(&cut_name))?;
            (Some(cut), Some(guard))
        } else {
            (None, None)
        };
        let (lock, alone) = if cfg.shared {
            take_shared_lock(&dir, &cfg)?
        } else {
            (take_lock(&dir, &cfg)?, true)
        };
        let now = cfg.clock.now();
        let sync_manifest = cfg.fsync != Fsync::Never;
        let manifest_name = name::manifest_file(&cfg.name);
        let active_name = name::active_file(&cfg.name);
        let session = new_session_id();
        let (journal, first, next_seq, next_first, sealed) = if alone {
            let (mut journal, manifest, repaired) = if cfg.shared {
                Journal::open_shared(&dir, &manifest_name, cfg.file_mode, sync_manifest, None)?
            } else {
                Journal::open(&dir, &manifest_name, cfg.file_mode, sync_manifest)?
            };
            let hint = match &cut {
                Some(cut) => {
                    let cut_path = dir.join(&name::cut_file(&cfg.name));
                    crate::share::read_state(cut, &cut_path)?.map(|st| {
                        let is = |n: &str| {
                            dir.stat(n)
                                .ok()
                                .flatten()
                                .is_some_and(|i| i.dev == st.dev && i.ino == st.ino)
                        };
                        if is(&active_name) {
                            recovery::SharedHint {
                                active_seq: Some(st.seq),
                            }
                        } else if is(&name::prepared_file(&cfg.name, st.seq)) {
                            // A cut interrupted before its rename: the
                            // active file is the segment before.
                            let before = st.seq.saturating_sub(1);
                            recovery::SharedHint {
                                active_seq: Some(before),
                            }
                        } else {
                            recovery::SharedHint { active_seq: None }
                        }
                    })
                }
                None => None,
            };
            let mut resume =
                recovery::recover(&dir, &cfg.name, &mut journal, &manifest, now, hint)?;
            let repairs = recovery::recover_entries(&manifest, repaired, now);
            if !repairs.is_empty() {
                journal.append(&repairs)?;
            }
            if repaired > 0 {
                resume.notes.insert(
                    0,
                    Error::repaired(
                        journal.path(),
                        format!("cut off a torn last line ({repaired} bytes) left by a crash"),
                    ),
                );
            }
            journal.append(&[Entry::Open(Open {
                session: session.clone(),
                pid: std::process::id(),
                at: now,
            })])?;
            let path = dir.join(&active_name);
            let file = dir
                .create_new(&active_name, cfg.file_mode)
                .map_err(|e| Error::io("create active segment", &path, e))?;
            let first = if cfg.shared {
                Segment::new_shared(resume.next_seq, active_name.clone(), file, now)
            } else {
                Segment::new(resume.next_seq, active_name.clone(), file, now)
            }
            .map_err(|e| Error::io("create active segment", &path, e))?;
            if let Some(cut) = &cut {
                share_segment(&first, &path)?;
                write_cut_state(cut, &dir, &cfg.name, resume.next_seq, &first)?;
                // Others may join now (they wait for the cut lock). The
                // change is not atomic: an exclusive appender starting at
                // this moment could take the lock in between; then this
                // one gives up rather than write beside it.
                let lock_path = dir.join(&name::lock_file(&cfg.name));
                let kept = crate::sys::flock(&lock, crate::sys::Flock::TryShared)
                    .map_err(|e| Error::io("lock log", &lock_path, e))?;
                if !kept {
                    return Err(Error::io(
                        "lock log",
                        &lock_path,
                        io::Error::new(
                            io::ErrorKind::ResourceBusy,
                            "an appender that does not share the log took it while this one started",
                        ),
                    ));
                }
            }
            for note in std::mem::take(&mut resume.notes) {
                if let Some(h) = &cfg.handler {
                    h.handle(note);
                }
            }
            (
                journal,
                first,
                resume.next_seq.saturating_add(1),
                resume.next_first,
                resume.sealed,
            )
        } else {
            // Joining a shared log: the others recovered it and keep it;
            // this process follows the active file the cut file names.
            let cut_path = dir.join(&name::cut_file(&cfg.name));
            let state = match &cut {
                Some(cut) => crate::share::read_state(cut, &cut_path)?,
                None => None,
            }
            .ok_or_else(|| {
                Error::io(
                    "join shared log",
                    &cut_path,
                    io::Error::other("the cut file does not name the active file"),
                )
            })?;
            let first = crate::share::open_for_join(&dir, &cfg.name, state, now)?;
            // Parts of the segments this process may seal: from its first.
            let (mut journal, _, _) = Journal::open_shared(
                &dir,
                &manifest_name,
                cfg.file_mode,
                sync_manifest,
                Some(first.seq),
            )?;
            journal.append(&[Entry::Open(Open {
                session: session.clone(),
                pid: std::process::id(),
                at: now,
            })])?;
            (journal, first, state.seq.saturating_add(1), 0, Vec::new())
        };
        {
            let mut st = first.lock();
            first.set_deadline(
                &mut st,
                cfg.interval.map(|iv| iv.next_boundary(now, &cfg.tz)),
            );
        }
        if cfg.fsync != Fsync::Never {
            dir.sync()
                .map_err(|e| Error::io("sync log directory", dir.path(), e))?;
        }
        drop(cut_guard);
        let trigger_lock = if cfg.shared && cfg.trigger.is_some() {
            let n = name::trigger_lock_file(&cfg.name);
            Some(
                dir.open_lock(&n, cfg.file_mode)
                    .map_err(|e| Error::io("open trigger lock", dir.join(&n), e))?,
            )
        } else {
            None
        };
        let shared = Arc::new(Shared {
            ctx: Arc::new(Context::new(cfg, rt, dir, active_name, session)),
            path: WritePath {
                current: ArcSwap::from_pointee(first),
                next: Mutex::new(VecDeque::new()),
                closed: AtomicBool::new(false),
            },
            mail: Mailbox {
                inbox: Mutex::new(Inbox::default()),
                wake: Wake::default(),
                space: Condvar::new(),
                written: Condvar::new(),
            },
            lock: Mutex::new(Some(lock)),
            cut,
            watches: Mutex::new(Vec::new()),
            close_by: Mutex::new(None),
            trigger_lock: Mutex::new(trigger_lock),
        });
        let mut worker = Worker::new(Arc::clone(&shared), journal, next_seq, next_first, sealed)?;
        // Prepare the next segment before the first write can need it.
        worker.prepare_next();
        let weak = Arc::downgrade(&shared);
        shared.cfg.clock.subscribe(Arc::new(move || {
            if let Some(sh) = weak.upgrade() {
                sh.kick();
            }
        }));
        let (handoff, handed) = mpsc::sync_channel(1);
        // The waker is in place before the task first runs, so that no
        // wake-up is missed.
        let waker = shared.rt.idle_cell(Lane::Core);
        shared.mail.wake.set_task(waker.clone());
        shared.rt.install(
            &waker,
            Box::new(WorkerTask {
                worker: Some(worker),
                handoff,
            }),
        );
        let appender = Appender {
            handle: Arc::new(Handle {
                shared: Arc::clone(&shared),
                worker: Mutex::new(Some(handed)),
                result: Mutex::new(None),
            }),
        };
        // Started last: a failure here drops `appender`, which shuts down
        // cleanly.
        #[allow(unused_mut)] // without the `trigger` and `signals` features
        let mut watches: Vec<Box<dyn Watch>> = Vec::new();
        #[cfg(feature = "trigger")]
        if let Some(path) = &shared.cfg.trigger {
            watches.push(Box::new(crate::trigger::TriggerWatch::start(
                path.clone(),
                Arc::clone(&shared) as Arc<dyn Requests>,
            )?));
        }
        #[cfg(feature = "signals")]
        if shared.cfg.signals {
            watches.push(Box::new(crate::signals::SignalWatch::start(
                Arc::clone(&shared) as Arc<dyn Requests>,
            )?));
        }
        *shared.watches.lock().unwrap_or_else(|e| e.into_inner()) = watches;
        Ok(appender)
    }

    /// Writes one record. Returns once the record is accepted: in
    /// [`Mode::Direct`], written to the file (or, while writes fail, held
    /// in memory and retried); in [`Mode::Buffered`], in the buffer.
    ///
    /// Fails only after [`shutdown`](Self::shutdown); a record that fails
    /// is never partly accepted.
    pub fn write_record(&self, record: &[u8]) -> Result<(), Error> {
        let sh = &self.handle.shared;
        let sample = SAMPLE.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n % 32 == 0
        });
        let t0 = sample.then(Instant::now);
        let res = match sh.cfg.mode {
            Mode::Direct => sh.write_direct(record),
            Mode::Buffered => sh.write_buffered(record),
        };
        if let Some(t0) = t0 {
            sh.counters.record_latency(t0.elapsed());
        }
        if res.is_err() {
            Counters::add(&sh.counters.records_rejected, 1);
        }
        res
    }

    /// Writes several records at once: `records` holds them back to back,
    /// and record `i` ends at `ends[i]` (strictly increasing; the last one
    /// is `records.len()`). The same as [`write_record`](Self::write_record)
    /// for each in turn, but in [`Mode::Buffered`] they are copied into the
    /// buffer under one lock: much cheaper for many small records, such as
    /// the lines of a pipe read in large chunks.
    ///
    /// Fails, accepting nothing, if `ends` does not describe `records`
    /// (an error of kind `InvalidInput`), and after [`shutdown`](Self::shutdown)
    /// (records accepted before it are kept).
    pub fn write_batch(&self, records: &[u8], ends: &[usize]) -> Result<(), Error> {
        let sh = &self.handle.shared;
        let valid = ends.last() == Some(&records.len())
            && ends.first().is_some_and(|e| *e > 0)
            && ends.windows(2).all(|w| w[0] < w[1]);
        if !valid {
            if records.is_empty() && ends.is_empty() {
                return Ok(());
            }
            return Err(Error::io(
                "write records",
                sh.dir.join(&sh.active_name),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the record ends do not describe the batch: give strictly increasing ends, the last one its length",
                ),
            ));
        }
        match sh.cfg.mode {
            Mode::Direct => {
                let mut start = 0;
                for end in ends {
                    self.write_record(&records[start..*end])?;
                    start = *end;
                }
                Ok(())
            }
            Mode::Buffered => {
                // Sampled as `write_record` is, one record in 32 per thread:
                // the batch counts as `n` records of `t / n` each.
                let n = ends.len() as u64;
                let samples = SAMPLE.with(|c| {
                    let old = u64::from(c.get());
                    c.set((old + n) as u32); // wraps at a multiple of 32
                    (old + n) / 32 - old / 32
                });
                let t0 = (samples > 0).then(Instant::now);
                let res = sh.write_buffered_batch(records, ends);
                if let Some(t0) = t0 {
                    let per = t0.elapsed().as_nanos() / u128::from(n);
                    let per = std::time::Duration::from_nanos(per as u64);
                    sh.counters.record_latencies(per, samples);
                }
                if res.is_err() {
                    Counters::add(&sh.counters.records_rejected, 1);
                }
                res
            }
        }
    }

    /// Seals the active segment now and continues in a new one; returns once
    /// the new segment is at the active path. Records written before the
    /// call are in the sealed segment. Does nothing if the active segment
    /// holds no record.
    ///
    /// Fails if the next segment cannot be created; records then keep going
    /// to the current segment.
    pub fn rotate(&self) -> Result<(), Error> {
        self.handle.shared.command(CmdKind::Rotate, "rotate")
    }

    /// Checks that the active file is still at `<dir>/<name>.log`; if
    /// someone else renamed or removed it (logrotate's `create` mode, an
    /// operator's `mv`), continues in a new file there and returns once it
    /// is in place. Records written before are in the moved file (the
    /// manifest records the segment with `file=-`, reason `reopen`). Does
    /// nothing if the active file was not moved. The background thread
    /// also checks on its own every
    /// [`watch_interval`](AppenderBuilder::watch_interval).
    pub fn reopen(&self) -> Result<(), Error> {
        self.handle.shared.command(CmdKind::Reopen, "reopen")
    }

    /// Runs the background thread's periodic work now (time cuts, retries
    /// whose backoff has passed, sealing) and waits for it; with
    /// compression or retention configured, also until every sealed
    /// segment waiting for compression is compressed and the retention
    /// limits are applied. Useful with a [`ManualClock`](crate::ManualClock)
    /// in tests; never needed otherwise.
    pub fn tick(&self) -> Result<(), Error> {
        self.handle.shared.command(CmdKind::Tick, "tick")
    }

    /// Writes every accepted record to its file ([`Mode::Buffered`]), and
    /// returns an error if some are held after a failed write (they are
    /// still retried).
    pub fn flush_records(&self) -> Result<(), Error> {
        self.handle.shared.flush()
    }

    /// Writes every record, seals the active segment, records the session's
    /// totals in the manifest and stops the background thread. Later writes
    /// fail. Called automatically when the last handle is dropped.
    ///
    /// Records that cannot be written within the
    /// [`shutdown_timeout`](AppenderBuilder::shutdown_timeout) are counted
    /// as lost, recorded in the manifest, and the call returns an error
    /// ([`Error::is_lost`]).
    pub fn shutdown(&self) -> Result<(), Error> {
        self.handle.shutdown()
    }

    /// A guard that shuts this appender down when it is dropped. A global
    /// `tracing` subscriber or `log` logger keeps a clone of the appender
    /// until the process exits, so the automatic shutdown (when the last
    /// handle is dropped) never runs: hold the guard in `main` so that
    /// returning from it writes everything and seals the log. See
    /// [`ShutdownGuard`](crate::ShutdownGuard).
    pub fn shutdown_guard(&self) -> crate::ShutdownGuard {
        crate::ShutdownGuard::new(self.clone())
    }

    /// A snapshot of the counters. Exact when no write is in flight; while
    /// writers run, counts may lag by the records being written.
    pub fn stats(&self) -> Stats {
        self.handle.shared.stats()
    }

    /// The path of the active segment (`<dir>/<name>.log`).
    pub fn active_path(&self) -> std::path::PathBuf {
        let sh = &self.handle.shared;
        sh.dir.join(&sh.active_name)
    }

    /// The current time, from the appender's clock.
    pub fn now(&self) -> Timestamp {
        self.handle.shared.cfg.clock.now()
    }

    /// The log directory.
    pub fn dir(&self) -> &std::path::Path {
        self.handle.shared.dir.path()
    }
}

impl Handle {
    fn shutdown(&self) -> Result<(), Error> {
        if self.shared.rt.on_runtime_thread() {
            // From an error handler: the background thread cannot wait for
            // itself. Nothing is changed; the caller's handle shuts down.
            return Err(Error::io(
                "shut down",
                self.shared.dir.path(),
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "called from a background thread of the appender's runtime",
                ),
            ));
        }
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(res) = self
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return res;
        }
        let sh = &self.shared;
        // Shared mode: another appender acts on the trigger file from now
        // on (released before the watch stops, so no touch goes unserved).
        sh.trigger_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // No more triggers or signals: they would only be refused.
        let watches = std::mem::take(&mut *sh.watches.lock().unwrap_or_else(|e| e.into_inner()));
        for mut w in watches {
            w.stop();
        }
        // SeqCst: pairs with the Acquire load in `write_direct`; a writer that
        // misses it is still in its segment's lock before the final seal.
        sh.path.closed.store(true, Ordering::SeqCst);
        let res = sh.enqueue(CmdKind::Shutdown, "shut down").and_then(|rx| {
            sh.mail.space.notify_all();
            // The task hands the worker over; its last work (which waits
            // for the sealer and the keeper) runs on this thread.
            if let Some((w, tx)) = worker.take().and_then(|h| h.recv().ok()) {
                w.close(tx);
            }
            rx.recv()
                .unwrap_or_else(|_| Err(Error::shutdown("shut down")))
        });
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(res.clone());
        res
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Errors were reported to the handler and counted; nobody is left
        // to return them to.
        let _ = self.shutdown();
    }
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

    fn command(&self, kind: CmdKind, op: &'static str) -> Result<(), Error> {
        let rx = self.enqueue(kind, op)?;
        rx.recv().unwrap_or_else(|_| Err(Error::shutdown(op)))
    }

    /// Queues a command for the background task; its answer comes on the
    /// returned channel.
    fn enqueue(
        &self,
        kind: CmdKind,
        op: &'static str,
    ) -> Result<mpsc::Receiver<Result<(), Error>>, Error> {
        if self.rt.on_runtime_thread() {
            return Err(Error::io(
                op,
                self.dir.path(),
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "called from a background thread of the appender's runtime (an error handler?)",
                ),
            ));
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

    fn write_direct(&self, buf: &[u8]) -> Result<(), Error> {
        // Acquire: pairs with the SeqCst store in `Handle::shutdown`.
        if self.path.closed.load(Ordering::Acquire) {
            return Err(Error::shutdown("write record"));
        }
        loop {
            // A guard, not a clone of the Arc: no shared reference count is
            // touched on the write path.
            let seg = self.path.current.load();
            if !seg.failing.load(Ordering::Relaxed) {
                match self.try_fast(&seg, buf) {
                    Fast::Done => return Ok(()),
                    Fast::Closed
                        if self.path.closed.load(Ordering::Acquire)
                            && seg.closed.load(Ordering::SeqCst) =>
                    {
                        return Err(Error::shutdown("write record"));
                    }
                    Fast::Closed => continue,
                    Fast::Locked => {}
                }
            }
            // The locked path: a cut to make, records held after a failed
            // write, or a closed segment.
            let mut st = seg.lock();
            if st.closed {
                if self.path.closed.load(Ordering::Acquire) {
                    return Err(Error::shutdown("write record"));
                }
                continue;
            }
            if let Some(reason) = self.cut_due(&seg, &mut st, buf.len()) {
                if st.cut_pending.is_none() {
                    if self.try_swap(&seg, &mut st, reason.clone()) {
                        continue;
                    }
                    // No next segment yet: keep writing here; the
                    // background thread cuts as soon as one is ready.
                    self.defer_cut(&mut st, reason);
                    seg.overshoot.store(true, Ordering::Relaxed);
                    self.kick();
                }
            }
            if st.held.is_empty() && !seg.failing.load(Ordering::SeqCst) {
                drop(st);
                match self.write_now(&seg, buf) {
                    Fast::Done => return Ok(()),
                    _ => continue,
                }
            }
            // Writes are failing: queue behind the held records, in order,
            // within the memory bound.
            while st.held_bytes + buf.len() > self.cfg.max_held && !st.held.is_empty() && !st.closed
            {
                st = seg.space.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.closed {
                continue;
            }
            if st.held.is_empty() && !seg.failing.load(Ordering::SeqCst) {
                continue;
            }
            st.accepted += 1;
            st.accepted_bytes += buf.len() as u64;
            st.held.push_back(buf.to_vec());
            st.held_bytes += buf.len();
            return Ok(());
        }
    }

    /// The lock-free path: checks the size limit and the time boundary on
    /// atomics, then writes. Anything else goes to the locked path.
    fn try_fast(&self, seg: &Segment, buf: &[u8]) -> Fast {
        if self.cfg.interval.is_some() {
            let now = self.cfg.clock.now().as_millisecond();
            if now >= seg.deadline_ms.load(Ordering::Relaxed) {
                return Fast::Locked;
            }
        }
        if let Some(max) = self.cfg.max_size {
            if !seg.overshoot.load(Ordering::Relaxed) {
                let planned = seg.reserved.load(Ordering::Relaxed)
                    + seg.others.load(Ordering::Relaxed)
                    + seg.locked_bytes.load(Ordering::Relaxed);
                if planned > 0 && planned + buf.len() as u64 > max {
                    return Fast::Locked;
                }
            }
        }
        self.write_now(seg, buf)
    }

    /// Writes one record with one `write(2)`, registered in `flight`.
    fn write_now(&self, seg: &Segment, buf: &[u8]) -> Fast {
        seg.flight.fetch_add(1, Ordering::SeqCst);
        if seg.closed.load(Ordering::SeqCst) || seg.failing.load(Ordering::SeqCst) {
            self.leave(seg, false);
            return Fast::Closed;
        }
        seg.reserved.fetch_add(buf.len() as u64, Ordering::Relaxed);
        match crate::sys::write_all(&seg.file, buf) {
            Ok(()) => {
                if self.cfg.fsync == Fsync::Always {
                    if let Err(e) = seg.sync_records(&self.dir) {
                        seg.lock().error = Some(e);
                        self.kick();
                    }
                }
                if seg.shared && seg.probe_due(1) {
                    self.probe(seg, 0);
                }
                self.leave(seg, true);
                Fast::Done
            }
            Err((e, written)) => {
                // SeqCst: pairs with the `flight` increment of writers, who
                // then take the locked path.
                seg.failing.store(true, Ordering::SeqCst);
                seg.reserved
                    .fetch_sub((buf.len() - written) as u64, Ordering::Relaxed);
                // Counted before this write leaves `flight`, until its
                // record is held: the segment is not quiet meanwhile, so it
                // is not sealed without the record.
                // SeqCst: read with `flight` by `Segment::is_quiet`.
                seg.failing_writes.fetch_add(1, Ordering::SeqCst);
                self.leave(seg, false);
                self.failed_write(seg, buf, e, written);
                Fast::Done
            }
        }
    }

    /// Shared mode: looks at the segment's file (one `fstat`) and at the
    /// cut file (one `pread`). The file's length less this process's bytes
    /// (`reserved`, plus `own` counted under the segment's lock) is what
    /// the other processes wrote, for the size limit. If the cut file names
    /// another segment (or the cutter marked this one read-only), another
    /// process cut it: the background thread follows now rather than at
    /// its next check.
    pub(crate) fn probe(&self, seg: &Segment, own: u64) {
        let Ok(info) = crate::sys::file_info(&seg.file) else {
            return;
        };
        // Relaxed: an estimate (see Segment::others).
        let mine = seg.reserved.load(Ordering::Relaxed) + own;
        seg.others
            .store(info.len.saturating_sub(mine), Ordering::Relaxed);
        let moved_on = self
            .cut
            .as_ref()
            .and_then(crate::share::peek_state)
            .is_some_and(|st| st.seq != seg.seq);
        let marked = self.cfg.file_mode & 0o200 != 0 && info.mode & 0o200 == 0;
        if (moved_on || marked) && !seg.stale.swap(true, Ordering::Relaxed) {
            self.kick();
        }
    }

    /// Ends a write registered in `flight`, counting its record if it was
    /// written.
    fn leave(&self, seg: &Segment, written: bool) {
        let prev = if written {
            seg.flight.fetch_add(RECORD - 1, Ordering::SeqCst)
        } else {
            seg.flight.fetch_sub(1, Ordering::SeqCst)
        };
        if prev & INFLIGHT == 1 && seg.closed.load(Ordering::SeqCst) {
            // The last write on a closed segment: it can be sealed now.
            self.kick();
        }
    }

    /// After a failed write (counted in `failing_writes`): waits until no
    /// other write is under way, cuts off the partial record if it is the
    /// last thing in the file, and holds the record (accepted: `write`
    /// returns `Ok`) for the background thread to write.
    fn failed_write(&self, seg: &Segment, buf: &[u8], err: io::Error, written: usize) {
        let mut st = seg.lock();
        // Not `is_quiet`: other failed writes in this wait count there.
        while seg.flight.load(Ordering::SeqCst) & INFLIGHT != 0 {
            // Writes under way finish in a system call's time; no new one
            // starts (`failing` is set).
            drop(st);
            std::thread::yield_now();
            st = seg.lock();
        }
        let mut err = err;
        if written > 0 && seg.shared {
            // Other processes append to this file: cutting it back could
            // cut off their records. The fragment stays, counted.
            err = io::Error::new(
                err.kind(),
                format!("{err}; {written} bytes of the failed record remain in the shared file"),
            );
        } else if written > 0 {
            let kept = written as u64;
            let at_end = crate::sys::file_info(&seg.file).ok().and_then(|i| {
                let start = i.len.checked_sub(kept)?;
                let mut tail = vec![0u8; written];
                std::os::unix::fs::FileExt::read_exact_at(&seg.file, &mut tail, start).ok()?;
                (tail == buf[..written]).then_some(start)
            });
            match at_end.map(|start| crate::sys::truncate(&seg.file, start)) {
                Some(Ok(())) => {
                    seg.reserved.fetch_sub(kept, Ordering::Relaxed);
                }
                _ => {
                    // Another write landed after the fragment (or it could
                    // not be removed): it stays, counted (in `reserved`) so
                    // the length and checksum describe the file, and the
                    // error says so.
                    err = io::Error::new(
                        err.kind(),
                        format!("{err}; {written} bytes of the failed record remain in the file"),
                    );
                }
            }
        }
        st.accepted += 1;
        st.accepted_bytes += buf.len() as u64;
        st.held.push_back(buf.to_vec());
        st.held_bytes += buf.len();
        st.error = Some(err);
        // SeqCst: see the increment in `write_now`.
        seg.failing_writes.fetch_sub(1, Ordering::SeqCst);
        drop(st);
        self.kick();
    }

    fn write_buffered(&self, buf: &[u8]) -> Result<(), Error> {
        let mut q = self.lock_inbox();
        loop {
            if q.stop {
                return Err(Error::shutdown("write record"));
            }
            if q.ends.is_empty() || q.buf.len() + buf.len() <= self.cfg.buffer_size {
                break;
            }
            q = self.mail.space.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.buf.extend_from_slice(buf);
        let end = q.buf.len();
        q.ends.push(end);
        q.accepted += 1;
        q.accepted_bytes += buf.len() as u64;
        // Wake the background thread for the first record after it went
        // idle, and when enough has gathered for a large write; in between,
        // it lingers to batch (see `Worker::wait`). Fewer wake-ups, fewer
        // system calls on the write path.
        if q.sleeping && (q.ends.len() == 1 || q.buf.len() >= self.wake_threshold()) {
            q.sleeping = false;
            self.mail.wake.notify_one();
        }
        Ok(())
    }

    /// `write_batch` in Buffered mode: as many records as fit in the buffer
    /// per lock (at least one), in order.
    fn write_buffered_batch(&self, buf: &[u8], ends: &[usize]) -> Result<(), Error> {
        let mut i = 0;
        let mut start = 0;
        while i < ends.len() {
            let mut q = self.lock_inbox();
            loop {
                if q.stop {
                    return Err(Error::shutdown("write record"));
                }
                if q.ends.is_empty() || q.buf.len() + (ends[i] - start) <= self.cfg.buffer_size {
                    break;
                }
                q = self.mail.space.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            let limit = q.buf.len().max(self.cfg.buffer_size) - q.buf.len();
            let mut j = i + 1;
            while j < ends.len() && ends[j] - start <= limit {
                j += 1;
            }
            let end = ends[j - 1];
            let base = q.buf.len();
            q.buf.extend_from_slice(&buf[start..end]);
            q.ends.extend(ends[i..j].iter().map(|e| base + (e - start)));
            q.accepted += (j - i) as u64;
            q.accepted_bytes += (end - start) as u64;
            if q.sleeping && (q.ends.len() == j - i || q.buf.len() >= self.wake_threshold()) {
                q.sleeping = false;
                self.mail.wake.notify_one();
            }
            start = end;
            i = j;
        }
        Ok(())
    }

    /// Buffered bytes that make the background thread write at once.
    pub(crate) fn wake_threshold(&self) -> usize {
        (self.cfg.buffer_size / 2).clamp(1, 64 << 10)
    }

    fn flush(&self) -> Result<(), Error> {
        match self.cfg.mode {
            Mode::Direct => {
                let mut live = self.lock_inbox().sealing.clone();
                live.push(self.path.current.load_full());
                if live.iter().all(|seg| seg.lock().held.is_empty()) {
                    return Ok(());
                }
                let q = self.lock_inbox();
                Err(q.last_error.clone().unwrap_or_else(|| {
                    Error::io(
                        "flush",
                        self.dir.join(&self.active_name),
                        io::Error::other("records are held after a failed write"),
                    )
                }))
            }
            Mode::Buffered => {
                let mut q = self.lock_inbox();
                let target = q.accepted;
                let generation = q.fail_gen;
                q.flush_req = true;
                q.sleeping = false;
                self.mail.wake.notify_one();
                while q.written < target {
                    if q.failing || q.fail_gen != generation {
                        if let Some(e) = q.last_error.clone() {
                            return Err(e);
                        }
                    }
                    if q.gone {
                        return Err(Error::shutdown("flush"));
                    }
                    q = self.mail.written.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                Ok(())
            }
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        // Writers count a record, then time it: reading the times first
        // keeps every timed record among the records counted (a scrape
        // never shows more samples than records).
        let write_latency = c.latency();
        // Load the current segment before snapshotting the list of
        // segments being sealed: one swapped out in between is then in one
        // of the two (or both, and counted once).
        let current = self.path.current.load_full();
        // The retired counters change together with the list, under the
        // inbox lock: read both there.
        let (
            mut live,
            q_accepted,
            q_bytes,
            q_written,
            q_buf,
            lost,
            mut records,
            mut bytes,
            mut written,
        ) = {
            let q = self.lock_inbox();
            (
                q.sealing.clone(),
                q.accepted,
                q.accepted_bytes,
                q.written,
                q.buf.len() as u64,
                Counters::get(&c.records_lost),
                Counters::get(&c.retired_accepted),
                Counters::get(&c.retired_accepted_bytes),
                Counters::get(&c.retired_written),
            )
        };
        let mut held = 0;
        let mut held_bytes = 0;
        // Segments in the list are not in the retired counters (the sealer
        // removes them and adds their counts under the inbox lock, where
        // the snapshot was taken). The current segment, if not in the
        // list, is counted unless it was already retired (after shutdown).
        let current_retired = !live.iter().any(|s| Arc::ptr_eq(s, &current)) && {
            let retired = current.lock().retired;
            live.push(current);
            retired
        };
        let n = live.len();
        for (i, seg) in live.iter().enumerate() {
            let st = seg.lock();
            if i + 1 == n && current_retired {
                continue;
            }
            let fast = seg.fast_records();
            records += st.accepted + fast;
            bytes += st.accepted_bytes + seg.fast_bytes();
            written += st.records + fast;
            held += st.held.len() as u64;
            held_bytes += st.held_bytes as u64;
        }
        let (records, bytes, queue_depth, queue_bytes) = match self.cfg.mode {
            Mode::Direct => (records, bytes, held, held_bytes),
            Mode::Buffered => (
                q_accepted,
                q_bytes,
                q_accepted.saturating_sub(q_written + lost),
                q_buf,
            ),
        };
        Stats {
            records,
            bytes,
            records_written: written,
            rotations: Counters::get(&c.rotations),
            rotation_failures: Counters::get(&c.rotation_failures),
            cuts_deferred: Counters::get(&c.cuts_deferred),
            write_failures: Counters::get(&c.write_failures),
            fallback: FallbackState::from_u8(c.fallback.load(Ordering::Relaxed)),
            records_lost: lost,
            records_rejected: Counters::get(&c.records_rejected),
            queue_depth,
            queue_bytes,
            triggers: Counters::get(&c.triggers),
            reopens: Counters::get(&c.reopens),
            write_latency,
            compress_backlog: c.compress_backlog.load(Ordering::Relaxed),
            segments_compressed: Counters::get(&c.segments_compressed),
            compress_failures: Counters::get(&c.compress_failures),
            compress_time: std::time::Duration::from_nanos(Counters::get(&c.compress_nanos)),
            segments_deleted: Counters::get(&c.segments_deleted),
        }
    }
}

impl io::Write for &Appender {
    /// Writes `buf` as one record and returns its whole length.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_record(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(self.flush_records()?)
    }

    /// Formats the whole of `args` first, so `write!` and `writeln!` produce
    /// one record rather than one per formatted piece.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        FMT_BUF.with(|b| {
            let mut b = match b.try_borrow_mut() {
                Ok(b) => b,
                // Re-entered from a Display impl that logs: use a fresh buffer.
                Err(_) => {
                    return self
                        .write_record(fmt::format(args).as_bytes())
                        .map_err(io::Error::from);
                }
            };
            b.clear();
            io::Write::write_fmt(&mut *b, args)?;
            self.write_record(&b).map_err(io::Error::from)
        })
    }
}

impl io::Write for Appender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        (&*self).write_fmt(args)
    }
}

/// Takes the log's lock file, so that a second appender on the same log
/// (in this process or another) fails here instead of adopting the first
/// one's active file as a crash leftover.
fn take_lock(dir: &Dir, cfg: &Config) -> Result<std::fs::File, Error> {
    let name = name::lock_file(&cfg.name);
    let path = dir.join(&name);
    // A child process forked by another thread holds a copy of the lock
    // until it calls exec (the descriptor is close-on-exec): an appender
    // started again right after a shutdown, while its process spawns
    // children, can find the lock taken for that short moment. Try again
    // for up to 250 ms before reporting the log as in use.
    let mut attempt = dir.try_lock(&name, cfg.file_mode);
    for wait_ms in [1, 2, 5, 10, 20, 50, 50, 50, 50] {
        if !matches!(attempt, Ok(Err(_))) {
            break;
        }
        // A sleep in the library, with its reason above: there is no
        // event to wait for when another process releases a flock.
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        attempt = dir.try_lock(&name, cfg.file_mode);
    }
    match attempt {
        Ok(Ok(file)) => {
            let info = logcut_format::lock::LockInfo {
                pid: Some(std::process::id()),
                trigger: cfg.trigger.clone(),
                shared: false,
            };
            crate::sys::rewrite(&file, info.encode().as_bytes())
                .map_err(|e| Error::io("write lock file", &path, e))?;
            Ok(file)
        }
        Ok(Err(content)) => {
            let info = logcut_format::lock::LockInfo::parse(&content);
            let holder = info.pid.map_or_else(
                || "another appender".to_string(),
                |p| format!("process {p}"),
            );
            let holder = if info.shared {
                format!("{holder} and others sharing it (build with shared(true) to join them)")
            } else {
                holder
            };
            Err(Error::io(
                "lock log",
                &path,
                io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "log {:?} is in use by {holder}; one appender per log (use another name or directory)",
                        cfg.name
                    ),
                ),
            ))
        }
        Err(e) => Err(Error::io("lock log", &path, e)),
    }
}

fn new_session_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_nanosecond() as u128);
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
