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

mod buffered;
mod direct;
pub(crate) mod state;
mod swap;

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    fmt,
    hash::{BuildHasher, Hasher},
    io,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Instant,
};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use logcut_format::{
    manifest::{Entry, Open},
    name,
};

use crate::{
    AppenderBuilder, Error, Mode, Stats,
    append::state::{CmdKind, Inbox, Mailbox, Shared, Wake, WritePath},
    builder::{Config, Fsync},
    context::{Context, Watch},
    coordinate::share::{CutGuard, share_segment, take_shared_lock, write_cut_state},
    coordinate::worker::Handoff,
    seal::journal::Journal,
    seal::recovery,
    segment::Segment,
    stats::{Counters, FallbackState},
    sys::Dir,
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

impl fmt::Debug for Appender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sh = &self.handle.shared;
        f.debug_struct("Appender")
            .field("dir", &sh.dir.path())
            .field("name", &sh.cfg.name)
            .finish_non_exhaustive()
    }
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

    /// Whether both are clones of one appender.
    pub(crate) fn same(&self, other: &Appender) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
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
        let active_name = name::active_file(&cfg.name);
        let session = new_session_id();
        let opened = if alone {
            open_alone(&dir, &cfg, cut.as_ref(), &lock, &active_name, &session, now)?
        } else {
            join_shared(&dir, &cfg, cut.as_ref(), &session, now)?
        };
        let (journal, first, next_seq, next_first, sealed) = opened;
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
        // Under the cut lock: see `open_error_file`.
        let errors = crate::context::open_error_file(&dir, &cfg.name, cfg.file_mode);
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
            ctx: Arc::new(Context::new(cfg, rt, dir, active_name, session, errors)),
            path: WritePath {
                current: ArcSwap::from_pointee(first),
                next: Mutex::new(VecDeque::new()),
                closed: AtomicBool::new(false),
                refill: std::sync::OnceLock::new(),
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
        // The background task, in this log's mode; it prepares what the
        // first cut needs before it starts.
        let handed = crate::coordinate::start(&shared, journal, next_seq, next_first, sealed)?;
        let weak = Arc::downgrade(&shared);
        shared.cfg.clock.subscribe(Arc::new(move || {
            if let Some(sh) = weak.upgrade() {
                sh.kick();
            }
        }));
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
            watches.push(Box::new(crate::watch::trigger::TriggerWatch::start(
                path.clone(),
                Arc::clone(&shared) as Arc<dyn crate::context::Requests>,
            )?));
        }
        #[cfg(feature = "signals")]
        if shared.cfg.signals {
            watches.push(Box::new(crate::watch::signals::SignalWatch::start(
                Arc::clone(&shared) as Arc<dyn crate::context::Requests>,
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
    /// limits are applied. Test support with a manual clock, not part of
    /// the stable API: never needed otherwise.
    ///
    /// In shared mode, sealing a segment this appender cut waits until the
    /// others sharing the log have left it, which they do at their next
    /// check: on a manual clock that is not advanced meanwhile, only once
    /// they are asked to ([`reopen`](Self::reopen)), so ask them first.
    #[doc(hidden)]
    pub fn tick(&self) -> Result<(), Error> {
        self.handle.shared.command(CmdKind::Tick, "tick")
    }

    /// Deletes the sealed segments `wanted` (sequence number, reason), of
    /// those not being compressed and not pinned, recording each first, on
    /// the log's keeper; returns how many went. A router's budget across
    /// its logs uses it.
    pub(crate) fn trim(
        &self,
        wanted: Vec<(u64, logcut_format::manifest::DeleteReason)>,
    ) -> Result<usize, Error> {
        let Some(mail) = self.handle.shared.ctx.keeper.get() else {
            return Ok(0);
        };
        let (tx, rx) = mpsc::sync_channel(1);
        if mail.send((wanted, tx)).is_err() {
            return Err(Error::shutdown("trim"));
        }
        // The keeper gone before it answered drops the sender.
        rx.recv().unwrap_or_else(|_| Err(Error::shutdown("trim")))
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
        if self.shared.rt.on_runtime_thread() {
            // Dropped by a task (an error handler's last clone): a runtime
            // thread must not wait for the shutdown, so a thread of its own
            // shuts the log down.
            let h = Handle {
                shared: Arc::clone(&self.shared),
                worker: Mutex::new(self.worker.lock().unwrap_or_else(|e| e.into_inner()).take()),
                result: Mutex::new(None),
            };
            let _ = std::thread::Builder::new()
                .name("logcut-shutdown".to_string())
                .spawn(move || drop(h));
            return;
        }
        // Errors were reported to the handler and counted; nobody is left
        // to return them to.
        let _ = self.shutdown();
    }
}

impl Shared {
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
            segments_deleted_unshipped: Counters::get(&c.segments_deleted_unshipped),
            segments_shipped: Counters::get(&c.segments_shipped),
            bytes_shipped: Counters::get(&c.bytes_shipped),
            ship_failures: Counters::get(&c.ship_failures),
            ship_backlog: c.ship_backlog.load(Ordering::Relaxed),
            ship_backlog_bytes: c.ship_backlog_bytes.load(Ordering::Relaxed),
            oldest_unshipped: Some(c.oldest_unshipped_ms.load(Ordering::Relaxed))
                .filter(|ms| *ms != i64::MIN)
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
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

/// What a start found or made: the manifest open for appending, the first
/// segment, the next sequence number to prepare, the first record index of
/// the next seal, and the sealed segments for the keeper.
type Opened = (
    Journal,
    Segment,
    u64,
    u64,
    Vec<crate::sealed::keeper::Sealed>,
);

/// Starting alone (exclusive, or the first process of a shared log):
/// recovers what an earlier run left, records the session's start, and
/// creates the active segment.
fn open_alone(
    dir: &Dir,
    cfg: &Config,
    cut: Option<&std::fs::File>,
    lock: &std::fs::File,
    active_name: &str,
    session: &str,
    now: Timestamp,
) -> Result<Opened, Error> {
    let sync_manifest = cfg.fsync != Fsync::Never;
    let manifest_name = name::manifest_file(&cfg.name);
    let (mut journal, manifest, repaired) = if cfg.shared {
        Journal::open_shared(
            dir,
            &manifest_name,
            cfg.file_mode,
            sync_manifest,
            None,
            cfg.clock.clone(),
        )?
    } else {
        Journal::open(
            dir,
            &manifest_name,
            cfg.file_mode,
            sync_manifest,
            cfg.clock.clone(),
        )?
    };
    let hint = shared_hint(dir, cfg, cut, active_name)?;
    let mut resume = recovery::recover(dir, &cfg.name, &mut journal, &manifest, now, hint)?;
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
        session: session.to_string(),
        pid: std::process::id(),
        at: now,
    })])?;
    let path = dir.join(active_name);
    let file = dir
        .create_new(active_name, cfg.file_mode)
        .map_err(|e| Error::io("create active segment", &path, e))?;
    let first = if cfg.shared {
        Segment::new_shared(resume.next_seq, active_name.to_string(), file, now)
    } else {
        Segment::new(resume.next_seq, active_name.to_string(), file, now)
    }
    .map_err(|e| Error::io("create active segment", &path, e))?;
    if let Some(cut) = &cut {
        share_segment(&first, &path)?;
        write_cut_state(cut, dir, &cfg.name, resume.next_seq, &first)?;
        // Others may join now (they wait for the cut lock). The
        // change is not atomic: an exclusive appender starting at
        // this moment could take the lock in between; then this
        // one gives up rather than write beside it.
        let lock_path = dir.join(&name::lock_file(&cfg.name));
        let kept = crate::sys::flock(lock, crate::sys::Flock::TryShared)
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
    Ok((
        journal,
        first,
        resume.next_seq.saturating_add(1),
        resume.next_first,
        resume.sealed,
    ))
}

/// Shared mode: what the cut file says about the active file, for
/// recovery (see `recovery::SharedHint`).
fn shared_hint(
    dir: &Dir,
    cfg: &Config,
    cut: Option<&std::fs::File>,
    active_name: &str,
) -> Result<Option<recovery::SharedHint>, Error> {
    Ok(match &cut {
        Some(cut) => {
            let cut_path = dir.join(&name::cut_file(&cfg.name));
            crate::coordinate::share::read_state(cut, &cut_path)?.map(|st| {
                let is = |n: &str| {
                    dir.stat(n)
                        .ok()
                        .flatten()
                        .is_some_and(|i| i.dev == st.dev && i.ino == st.ino)
                };
                if is(active_name) {
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
    })
}

/// Joining a shared log that others keep: follows the active file the cut
/// file names, and records this session's start.
fn join_shared(
    dir: &Dir,
    cfg: &Config,
    cut: Option<&std::fs::File>,
    session: &str,
    now: Timestamp,
) -> Result<Opened, Error> {
    let sync_manifest = cfg.fsync != Fsync::Never;
    let manifest_name = name::manifest_file(&cfg.name);
    // Joining a shared log: the others recovered it and keep it;
    // this process follows the active file the cut file names.
    let cut_path = dir.join(&name::cut_file(&cfg.name));
    let state = match &cut {
        Some(cut) => crate::coordinate::share::read_state(cut, &cut_path)?,
        None => None,
    }
    .ok_or_else(|| {
        Error::io(
            "join shared log",
            &cut_path,
            io::Error::other("the cut file does not name the active file"),
        )
    })?;
    let first = crate::coordinate::share::open_for_join(dir, &cfg.name, state, now)?;
    // Parts of the segments this process may seal: from its first.
    let (mut journal, _, _) = Journal::open_shared(
        dir,
        &manifest_name,
        cfg.file_mode,
        sync_manifest,
        Some(first.seq),
        cfg.clock.clone(),
    )?;
    journal.append(&[Entry::Open(Open {
        session: session.to_string(),
        pid: std::process::id(),
        at: now,
    })])?;
    Ok((journal, first, state.seq.saturating_add(1), 0, Vec::new()))
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
