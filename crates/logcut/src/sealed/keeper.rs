//! The keeper thread: looks after sealed segments once their seal entry is
//! durable. It hands them to the workers that index and compress them
//! ([`work`](crate::sealed::work)), oldest first, one per idle worker, and
//! applies the retention limits after every change.
//!
//! It runs only when an index, compression or retention is configured, and nothing
//! on the write path or the sealer waits for it: the sealer sends a message
//! and goes on. While compression falls behind, segments wait uncompressed
//! (the backlog in [`Stats`](crate::Stats)), and retention still counts
//! them.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use logcut_format::{
    codec::Codec,
    manifest::{Delete, DeleteReason, Entry, Manifest, Seal},
};

use crate::{
    Error,
    context::Context,
    runtime::{self, Lane, Mail, Next, Waker},
    seal::journal::Journal,
    sealed::retain::{self, Candidate},
    sealed::turn::Turn,
    sealed::work::{self, Outcome, Task},
    stats::Counters,
    sys::Dir,
};

/// Uploads of one log under way at once, at most (the runtime's shipping
/// lane bounds them across logs).
const UPLOADS: usize = 4;

/// A sealed segment the keeper looks after.
#[derive(Clone, Debug)]
pub(crate) struct Sealed {
    pub(crate) seq: u64,
    pub(crate) file: String,
    /// When it became active, and when it was sealed.
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) bytes: u64,
    pub(crate) crc32: u32,
    /// Its compressed file, once it has one.
    pub(crate) compressed: Option<String>,
    /// Bytes on disk (the compressed file's, once compressed).
    pub(crate) disk_bytes: u64,
    /// Whether its search index is recorded.
    pub(crate) indexed: bool,
    /// Whether it is recorded as shipped.
    pub(crate) shipped: bool,
    /// Also at the active path: the last segment after a shutdown, left
    /// readable there for shippers that follow `<name>.log`. It is shipped
    /// and indexed, but neither compressed nor deleted (either would leave
    /// `<name>.log` a copy of records the log no longer lists there); the
    /// next start's recovery removes that name, and its keeper goes on.
    pub(crate) at_active: bool,
}

pub(crate) use crate::sealed::task::Trim;

pub(crate) enum Msg {
    /// Newly sealed segments (their entries are durable), oldest first.
    Sealed(Vec<Sealed>),
    /// Answer once nothing waits for compression or is being compressed,
    /// and retention has run (a `tick`, answered from here so that the
    /// rotating thread does not wait for compression).
    Barrier(mpsc::SyncSender<Result<(), Error>>),
    /// The clock moved.
    Kick,

    /// Finish (compress what waits until `until`), then stop. `last_out`:
    /// a shared log's last process to leave, whose keeper waits (until
    /// `until`) for the turn if another holds it, to look after the last
    /// seals.
    Shutdown {
        until: Instant,
        last_out: bool,
        reply: mpsc::SyncSender<()>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Left as it is: nothing to do (no compression or index), or
    /// shutdown's deadline passed.
    Plain,
    /// Its compression failed: tried again at this time (by the
    /// appender's clock), after a backoff that doubles with each failure.
    Retry(Timestamp),
    /// Waiting for a worker.
    Waiting,
    /// A worker is on it.
    Busy,
    /// Compressed, indexed and shipped, as configured.
    Done,
}

struct Seg {
    info: Sealed,
    state: State,
    /// Compressions of it that failed in a row.
    failures: u32,
}

pub(crate) struct Keeper {
    sh: Arc<Context>,
    journal: Arc<Mutex<Journal>>,
    segs: VecDeque<Seg>,
    /// Sequence numbers waiting for a worker to index and compress them,
    /// oldest first, and idle such workers (compression lane).
    waiting: VecDeque<u64>,
    idle: usize,
    /// Sequence numbers waiting to be shipped, oldest first, and idle
    /// upload slots (shipping lane).
    ship_waiting: VecDeque<u64>,
    ship_idle: usize,
    /// How segments are compressed, if they are.
    codec: Option<(Codec, i32)>,
    /// Whether segments are indexed.
    index: bool,
    /// Whether segments are shipped.
    ship: bool,
    /// Compression tasks report here, and wake the keeper.
    done_tx: mpsc::Sender<(Task, Outcome, Duration)>,
    waker: Option<Waker>,
    barriers: Vec<mpsc::SyncSender<Result<(), Error>>>,
    /// Recording deletions failed (a full disk): retention tries again
    /// at this time, and the delay doubles with each failure.
    retain_retry: Option<(Timestamp, u32)>,
    /// Shared mode: the keeper's turn (see [`turn`](crate::sealed::turn)),
    /// and whether its last failure was reported (once until it works).
    turn: Option<Turn>,
    turn_failed: bool,
}

/// The sealed segments of log `log` a manifest lists, not deleted and
/// still on disk, oldest first. A name that is not a sealed segment name of
/// this log (a manifest edited by hand: `../x`, another log's file) is
/// skipped: it never reaches an unlink.
pub(crate) fn sealed_from(dir: &Dir, log: &str, manifest: &Manifest) -> Vec<Sealed> {
    let compressed = manifest.compressed();
    let deleted = manifest.deleted();
    let indexed = manifest.indexed();
    let shipped = manifest.shipped();
    let mut out = Vec::new();
    for s in manifest.seals() {
        if deleted.contains_key(&s.seq) {
            continue;
        }
        let comp = compressed
            .get(&s.seq)
            .map(|c| c.file.clone())
            .filter(|f| Codec::split(f).is_some_and(|(b, _)| b == s.file));
        let Some(mut info) = sealed_info(dir, log, s, comp) else {
            continue;
        };
        info.indexed = indexed.get(&s.seq).is_some_and(|i| {
            i.file == logcut_format::index::index_file(&s.file)
                && dir.stat(&i.file).ok().flatten().is_some()
        });
        info.shipped = shipped.contains_key(&s.seq);
        out.push(info);
    }
    out
}

/// A segment just sealed (by this process or, in shared mode, another):
/// not compressed, indexed or shipped yet. `None` as in `sealed_from`.
pub(crate) fn sealed_new(dir: &Dir, log: &str, seal: &Seal) -> Option<Sealed> {
    sealed_info(dir, log, seal, None)
}

/// What the keeper knows of `seal`'s segment, found on disk (its
/// compressed file `comp` if that is there); nothing of its index or
/// upload yet.
fn sealed_info(dir: &Dir, log: &str, s: &Seal, comp: Option<String>) -> Option<Sealed> {
    logcut_format::name::SealedName::parse(log, &s.file)?;
    let on_disk = |f: &str| dir.stat(f).ok().flatten().filter(|i| i.is_file);
    let (compressed, disk) = match comp.as_deref().and_then(&on_disk) {
        Some(i) => (comp.clone(), i.len),
        // Missing: verify reports it; nothing to keep.
        None => (None, on_disk(&s.file)?.len),
    };
    Some(Sealed {
        compressed,
        disk_bytes: disk,
        ..Sealed::from_seal(s)
    })
}

impl Sealed {
    /// What a seal entry says of its segment: not compressed, indexed or
    /// shipped, its file as long as the seal says.
    pub(crate) fn from_seal(s: &Seal) -> Sealed {
        Sealed {
            seq: s.seq,
            file: s.file.clone(),
            start: s.start,
            end: s.end,
            bytes: s.bytes,
            crc32: s.crc32,
            compressed: None,
            disk_bytes: s.bytes,
            indexed: false,
            shipped: false,
            at_active: false,
        }
    }
}

impl Keeper {
    /// Starts the keeper's task on the log's runtime; returns its mailbox.
    pub(crate) fn start(
        sh: Arc<Context>,
        journal: Arc<Mutex<Journal>>,
        existing: Vec<Sealed>,
    ) -> Result<Mail<Msg>, Error> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let codec = sh.cfg.compression.codec();
        let index = !sh.cfg.index.is_empty();
        let ship = sh.cfg.ship.is_some();
        let turn = if sh.cfg.shared {
            Some(Turn::open(&sh.dir, &sh.cfg.name, sh.cfg.file_mode)?)
        } else {
            None
        };
        let mut keeper = Keeper {
            sh: Arc::clone(&sh),
            journal: Arc::clone(&journal),
            segs: VecDeque::new(),
            waiting: VecDeque::new(),
            idle: if codec.is_some() || index {
                sh.cfg.compress_threads
            } else {
                0
            },
            codec,
            index,
            ship,
            ship_waiting: VecDeque::new(),
            ship_idle: if ship { UPLOADS } else { 0 },
            done_tx,
            waker: None,
            barriers: Vec::new(),
            retain_retry: None,
            turn,
            turn_failed: false,
        };
        // Shared mode: the segments come from the manifest once the turn
        // is taken.
        if keeper.turn.is_none() {
            keeper.add(existing);
        }
        let waker = sh.rt.idle_cell(Lane::Core);
        keeper.waker = Some(waker.clone());
        let mail = Mail::new(tx, waker.clone());
        let (trim_tx, trim_rx) = mpsc::channel();
        let _ = sh.keeper.set(Mail::new(trim_tx, waker.clone()));
        let kick = Mutex::new(mail.clone());
        sh.cfg.clock.subscribe(Arc::new(move || {
            let _ = kick
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(Msg::Kick);
        }));
        sh.rt.install(
            &waker,
            Box::new(KeeperTask {
                keeper,
                rx,
                trim_rx,
                done_rx,
                shutdown: None,
                last_out: false,
                disconnected: false,
            }),
        );
        Ok(mail)
    }

    /// Whether `info` still needs indexing or compression.
    fn needs_prepare(&self, info: &Sealed) -> bool {
        (self.codec.is_some() && info.compressed.is_none() && !info.at_active)
            || (self.index && !info.indexed)
    }

    /// Puts `info` in the line for what it needs next, in sequence order;
    /// false if it needs nothing.
    fn enqueue(&mut self, info: &Sealed) -> bool {
        let q = if self.needs_prepare(info) {
            &mut self.waiting
        } else if self.ship && !info.shipped {
            &mut self.ship_waiting
        } else {
            return false;
        };
        let at = q.partition_point(|s| *s < info.seq);
        q.insert(at, info.seq);
        true
    }

    /// Adds segments it does not know yet, in sequence order (a shared
    /// log's seals may be recorded out of order).
    fn add(&mut self, mut sealed: Vec<Sealed>) {
        sealed.sort_by_key(|s| s.seq);
        // One stat per batch: the active path has a second name only at a
        // shutdown (or for an instant during a cut, before the seal).
        let active = self
            .sh
            .dir
            .stat(&self.sh.active_name)
            .ok()
            .flatten()
            .filter(|i| i.is_file && i.nlink > 1);
        for mut info in sealed {
            let Err(at) = self.segs.binary_search_by_key(&info.seq, |s| s.info.seq) else {
                continue;
            };
            info.at_active = info.compressed.is_none()
                && active.is_some_and(|a| {
                    self.sh
                        .dir
                        .stat(&info.file)
                        .ok()
                        .flatten()
                        .is_some_and(|i| i.dev == a.dev && i.ino == a.ino)
                });
            let state = if self.enqueue(&info) {
                State::Waiting
            } else if info.compressed.is_some() {
                State::Done
            } else {
                State::Plain
            };
            self.segs.insert(
                at,
                Seg {
                    info,
                    state,
                    failures: 0,
                },
            );
        }
    }

    /// Shared mode: takes the turn if it is free, or adds what was sealed
    /// since the last look. False while another process holds the turn:
    /// this keeper then does nothing. Always true for an exclusive log.
    fn look(&mut self) -> bool {
        let Some(turn) = self.turn.as_mut() else {
            return true;
        };
        let res = if turn.held() {
            turn.news(&self.sh.dir)
        } else {
            match turn.try_take(&self.sh.dir) {
                Ok(Some(sealed)) => {
                    // Whatever was known before is as the manifest says now.
                    self.segs.clear();
                    self.waiting.clear();
                    self.ship_waiting.clear();
                    Ok(sealed)
                }
                Ok(None) => return false,
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(sealed) => {
                self.turn_failed = false;
                self.add(sealed);
            }
            Err(e) => {
                if !std::mem::replace(&mut self.turn_failed, true) {
                    self.sh.report(e);
                }
            }
        }
        self.turn.as_ref().is_some_and(Turn::held)
    }

    /// Shared mode: how often the turn is looked at (the watch interval).
    fn turn_poll(&self) -> Option<Duration> {
        self.turn.as_ref().map(|_| {
            self.sh
                .cfg
                .watch_interval
                .unwrap_or(Duration::from_millis(50))
        })
    }

    /// Segments whose compression failed go back in line once their
    /// backoff has passed, oldest first. (At shutdown, one whose backoff
    /// has not passed is left for the next start.)
    fn requeue_failed(&mut self) {
        let now = self.sh.cfg.clock.now();
        let due: Vec<Sealed> = self
            .segs
            .iter()
            .filter(|s| matches!(s.state, State::Retry(at) if at <= now))
            .map(|s| s.info.clone())
            .collect();
        for info in due {
            let queued = self.enqueue(&info);
            if let Some(s) = self.segs.iter_mut().find(|s| s.info.seq == info.seq) {
                s.state = if queued { State::Waiting } else { State::Done };
            }
        }
    }

    /// The backoff after `failures` failures in a row: the appender's
    /// [`backoff`](crate::AppenderBuilder::backoff), doubling up to its
    /// maximum.
    fn backoff(&self, failures: u32) -> jiff::SignedDuration {
        let cfg = &self.sh.cfg;
        let d = cfg
            .backoff_min
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(cfg.backoff_max);
        jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
    }

    fn later(&self, failures: u32) -> Timestamp {
        let now = self.sh.cfg.clock.now();
        now.checked_add(self.backoff(failures)).unwrap_or(now)
    }

    /// How long until the next retry (a compression or retention that
    /// failed), as a wait.
    fn next_retry(&self) -> Option<Duration> {
        let at = self
            .segs
            .iter()
            .filter_map(|s| match s.state {
                State::Retry(at) => Some(at),
                _ => None,
            })
            .chain(self.retain_retry.map(|(at, _)| at))
            .min()?;
        self.sh.cfg.clock.sleep_hint(at)
    }

    fn busy(&self) -> usize {
        self.segs.iter().filter(|s| s.state == State::Busy).count()
    }

    fn idle_now(&self) -> bool {
        self.waiting.is_empty() && self.ship_waiting.is_empty() && self.busy() == 0
    }

    /// Hands waiting segments to idle workers, oldest first.
    fn dispatch(&mut self) {
        while self.idle > 0 {
            let Some(seq) = self.waiting.pop_front() else {
                break;
            };
            if self.start_job(seq, false) {
                self.idle -= 1;
            }
        }
        while self.ship_idle > 0 {
            let Some(seq) = self.ship_waiting.pop_front() else {
                break;
            };
            if self.start_job(seq, true) {
                self.ship_idle -= 1;
            }
        }
    }

    /// Starts the job of segment `seq`: indexing and compression on the
    /// compression lane, or (`ship`) its upload on the shipping lane.
    /// False if the segment is gone.
    fn start_job(&mut self, seq: u64, ship: bool) -> bool {
        let index = self.index;
        let Some(seg) = self.segs.iter_mut().find(|s| s.info.seq == seq) else {
            return false;
        };
        let task = Task {
            seq,
            file: seg.info.file.clone(),
            bytes: seg.info.bytes,
            crc32: seg.info.crc32,
            compressed: seg.info.compressed.clone(),
            index: !ship && index && !seg.info.indexed,
            ship,
            start: seg.info.start,
        };
        let job = CompressJob {
            sh: Arc::clone(&self.sh),
            journal: Arc::clone(&self.journal),
            codec: if ship || seg.info.at_active {
                None
            } else {
                self.codec
            },
            task: Some(task),
            done: self.done_tx.clone(),
            waker: self.waker.clone(),
        };
        let lane = if ship { Lane::Ship } else { Lane::Compress };
        self.sh.rt.spawn(lane, Box::new(job));
        seg.state = State::Busy;
        true
    }

    /// At shutdown, past the deadline: what still waits stays uncompressed
    /// (the next start compresses it).
    fn give_up_waiting(&mut self) {
        let waiting: Vec<u64> = self
            .waiting
            .drain(..)
            .chain(self.ship_waiting.drain(..))
            .collect();
        for seq in waiting {
            if let Some(s) = self.segs.iter_mut().find(|s| s.info.seq == seq) {
                s.state = State::Plain;
            }
        }
    }

    fn done(&mut self, task: Task, (done, res): Outcome, took: Duration) {
        let c = &self.sh.counters;
        if task.ship {
            self.ship_idle += 1;
        } else {
            self.idle += 1;
            Counters::add(
                &c.compress_nanos,
                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            );
        }
        // What the task did is recorded, even if a later step failed.
        if done.compressed.is_some() {
            Counters::add(&c.segments_compressed, 1);
        }
        if let Some(n) = done.shipped {
            Counters::add(&c.segments_shipped, 1);
            Counters::add(&c.bytes_shipped, n);
        }
        if let Some(s) = self.segs.iter_mut().find(|s| s.info.seq == task.seq) {
            s.info.indexed |= done.indexed;
            s.info.shipped |= done.shipped.is_some();
            if let Some((file, len)) = done.compressed {
                s.info.compressed = Some(file);
                s.info.disk_bytes = len;
            }
        }
        let Err(e) = res else {
            // Prepared: in line for its upload, if it ships.
            let info = self
                .segs
                .iter()
                .find(|s| s.info.seq == task.seq)
                .map(|s| s.info.clone());
            let queued = info.is_some_and(|i| self.enqueue(&i));
            if let Some(s) = self.segs.iter_mut().find(|s| s.info.seq == task.seq) {
                s.failures = 0;
                s.state = if queued { State::Waiting } else { State::Done };
            }
            return;
        };
        let cancelled = self
            .sh
            .compress_cancel
            .load(std::sync::atomic::Ordering::Relaxed)
            && e.io_error()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        // The segment stays as the failed step found it (a worker removes
        // its partial files) and is tried again after a backoff: a full
        // disk frees up, retention makes room, the server comes back.
        // Cancelled at shutdown: the next start goes on.
        let seg = self.segs.iter().find(|s| s.info.seq == task.seq);
        let failures = seg.map_or(1, |s| s.failures + 1);
        let retry_at = self.later(failures);
        if let Some(s) = self.segs.iter_mut().find(|s| s.info.seq == task.seq) {
            s.failures = failures;
            s.state = if cancelled {
                State::Plain
            } else {
                State::Retry(retry_at)
            };
        }
        if !cancelled {
            if task.ship {
                Counters::add(&c.ship_failures, 1);
            } else {
                Counters::add(&c.compress_failures, 1);
            }
            self.sh.report(e);
        }
    }

    /// When the oldest segment passes the age limit, as a wait.
    fn next_expiry(&self) -> Option<Duration> {
        let oldest = self.segs.front().map(|s| s.info.end);
        let at = self.sh.cfg.retention.next_expiry(oldest)?;
        // Expired but kept (busy, or the manifest append failed): look
        // again in a second, or at the next message.
        let d = self.sh.cfg.clock.sleep_hint(at)?;
        Some(if d.is_zero() {
            Duration::from_secs(1)
        } else {
            d
        })
    }

    /// Deletes what the retention limits say, recording it first.
    fn retain(&mut self) {
        let policy = self.sh.cfg.retention;
        if policy.is_none() || self.segs.is_empty() {
            return;
        }
        let now = self.sh.cfg.clock.now();
        if self.retain_retry.is_some_and(|(at, _)| now < at) {
            return;
        }
        let cands: Vec<Candidate> = self
            .segs
            .iter()
            .map(|s| Candidate {
                seq: s.info.seq,
                end: s.info.end,
                disk_bytes: s.info.disk_bytes,
                // Like a busy one: kept, and nothing newer goes first.
                busy: s.state == State::Busy || s.info.at_active,
            })
            .collect();
        // Unknown free space (the call failed): the floor waits for the
        // next look rather than delete blindly.
        let free = policy.min_free.and_then(|_| self.sh.dir.free_bytes().ok());
        let unshipped =
            |q: u64| self.ship && self.segs.iter().any(|s| s.info.seq == q && !s.info.shipped);
        let chosen = retain::select(
            &cands,
            &policy,
            now,
            free,
            |q| self.sh.pins.is_pinned(q),
            unshipped,
        );
        if chosen.is_empty() {
            // A retry whose time came with nothing left to delete (being
            // compressed, pinned, or under the limits now): no retry is
            // due any more, or the task would be asked to run at once, again
            // and again.
            self.retain_retry = None;
            return;
        }
        if let Err(e) = self.delete(&chosen) {
            // Nothing is removed unrecorded; tried again after a backoff
            // (or at the next change, whichever is later).
            let failures = self.retain_retry.map_or(1, |(_, n)| n + 1);
            self.retain_retry = Some((self.later(failures), failures));
            self.sh.report(e);
            return;
        }
        self.retain_retry = None;
    }

    /// Deletes the segments a router's budget chose, of those still here,
    /// not being compressed and not pinned; returns how many.
    fn trim(&mut self, wanted: &[(u64, DeleteReason)]) -> Result<usize, Error> {
        let chosen: Vec<(usize, DeleteReason)> = self
            .segs
            .iter()
            .enumerate()
            // Not what is being worked on, pinned, or not shipped yet: a
            // budget is a limit, not the free-space floor of a log.
            .filter(|(_, s)| {
                s.state != State::Busy && !s.info.at_active && !self.sh.pins.is_pinned(s.info.seq)
            })
            .filter(|(_, s)| !self.ship || s.info.shipped)
            .filter_map(|(i, s)| {
                let (_, why) = wanted.iter().find(|(q, _)| *q == s.info.seq)?;
                Some((i, why.clone()))
            })
            .collect();
        if chosen.is_empty() {
            return Ok(0);
        }
        self.delete(&chosen)?;
        Ok(chosen.len())
    }

    /// Records the deletion of the segments at `chosen` (indexes into
    /// `segs`, ascending), then removes their files.
    fn delete(&mut self, chosen: &[(usize, DeleteReason)]) -> Result<(), Error> {
        let entries: Vec<Entry> = chosen
            .iter()
            .map(|(i, reason)| {
                Entry::Delete(Delete {
                    seq: self.segs[*i].info.seq,
                    file: self.segs[*i].info.file.clone(),
                    reason: reason.clone(),
                })
            })
            .collect();
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append_durable(&entries)?;
        for (i, _) in chosen.iter().rev() {
            let Some(seg) = self.segs.remove(*i) else {
                continue;
            };
            self.waiting.retain(|q| *q != seg.info.seq);
            self.ship_waiting.retain(|q| *q != seg.info.seq);
            // The original and every compressed name: a compression that
            // was not recorded (a failed directory sync) may have left one.
            let mut names = vec![
                seg.info.file.clone(),
                logcut_format::index::index_file(&seg.info.file),
            ];
            names.extend(
                logcut_format::codec::CODECS
                    .iter()
                    .map(|c| c.compressed_name(&seg.info.file)),
            );
            for name in names {
                match self.sh.dir.unlink(&name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    // Recorded as deleted: the next start removes it.
                    Err(e) => {
                        self.sh
                            .report(Error::io("delete segment", self.sh.dir.join(&name), e))
                    }
                }
            }
            Counters::add(&self.sh.counters.segments_deleted, 1);
            if self.ship && !seg.info.shipped {
                Counters::add(&self.sh.counters.segments_deleted_unshipped, 1);
            }
        }
        Ok(())
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let uploading = if self.ship {
            UPLOADS - self.ship_idle
        } else {
            0
        };
        let backlog = (self.waiting.len() + self.busy().saturating_sub(uploading)) as u64;
        let c = &self.sh.counters;
        // Relaxed: figures read on their own by `stats`.
        c.compress_backlog.store(backlog, Relaxed);
        if self.ship {
            let waiting = self.segs.iter().filter(|s| !s.info.shipped);
            let (n, bytes, oldest) = waiting.fold((0u64, 0u64, None), |(n, b, o), s| {
                (n + 1, b + s.info.disk_bytes, o.or(Some(s.info.end)))
            });
            c.ship_backlog.store(n, Relaxed);
            c.ship_backlog_bytes.store(bytes, Relaxed);
            let ms = oldest.map_or(i64::MIN, |t: Timestamp| t.as_millisecond());
            c.oldest_unshipped_ms.store(ms, Relaxed);
        }
    }
}

/// The shorter of two optional waits.
fn min_wait(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The keeper as a runtime task.
struct KeeperTask {
    keeper: Keeper,
    rx: mpsc::Receiver<Msg>,
    trim_rx: mpsc::Receiver<Trim>,
    done_rx: mpsc::Receiver<(Task, Outcome, Duration)>,
    /// Shutdown's deadline and the caller waiting for it.
    shutdown: Option<(Instant, mpsc::SyncSender<()>)>,
    /// Shutdown of a shared log's last process (see `Msg::Shutdown`).
    last_out: bool,
    /// Every sender is gone without a shutdown (a start that failed).
    disconnected: bool,
}

impl KeeperTask {
    /// Takes every message queued.
    fn take_messages(&mut self) {
        while let Ok((task, res, took)) = self.done_rx.try_recv() {
            self.keeper.done(task, res, took);
        }
        while let Ok((wanted, reply)) = self.trim_rx.try_recv() {
            let _ = reply.send(self.keeper.trim(&wanted));
        }
        loop {
            match self.rx.try_recv() {
                // Shared mode: every seal, this process's too, is read
                // from the manifest by the turn's holder.
                Ok(Msg::Sealed(s)) if self.keeper.turn.is_none() => self.keeper.add(s),
                Ok(Msg::Sealed(_)) => {}
                Ok(Msg::Barrier(b)) => self.keeper.barriers.push(b),
                Ok(Msg::Kick) => {}

                Ok(Msg::Shutdown {
                    until,
                    last_out,
                    reply,
                }) => {
                    self.shutdown = Some((until, reply));
                    self.last_out = last_out;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    break;
                }
            }
        }
    }

    fn finish(&mut self) -> Next {
        let k = &mut self.keeper;
        k.publish();
        // A sealed manifest: its last entries (compressions, deletions at
        // shutdown) are sealed before shutdown returns.
        let ended = k
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_epoch(true);
        if let Err(e) = ended {
            k.sh.report(e);
        }
        if let Some(t) = &mut k.turn {
            t.release();
        }
        for b in k.barriers.drain(..) {
            let _ = b.send(Ok(()));
        }
        if let Some((_, reply)) = self.shutdown.take() {
            let _ = reply.send(());
        }
        Next::Done
    }
}

impl KeeperTask {
    /// Shared mode, while another process holds the turn: nothing to do
    /// but answer, and look again later. At shutdown it stops, unless this
    /// is the last process to leave: then it waits for the turn until the
    /// deadline (its holder is finishing too, and the last seals are
    /// nobody else's to look after).
    fn wait_turn(&mut self) -> Next {
        for b in self.keeper.barriers.drain(..) {
            let _ = b.send(Ok(()));
        }
        if self.disconnected {
            return self.finish();
        }
        match &self.shutdown {
            Some((d, _)) if self.last_out && Instant::now() < *d => Next::After(
                Duration::from_millis(10).min(d.saturating_duration_since(Instant::now())),
            ),
            Some(_) => self.finish(),
            None => self.keeper.turn_poll().map_or(Next::Idle, Next::After),
        }
    }
}

impl runtime::Task for KeeperTask {
    fn run(&mut self) -> Next {
        self.take_messages();
        if !self.keeper.look() {
            return self.wait_turn();
        }
        let k = &mut self.keeper;
        let dispatch = self
            .shutdown
            .as_ref()
            .is_none_or(|(d, _)| Instant::now() < *d);
        if dispatch && !self.disconnected {
            k.requeue_failed();
            k.dispatch();
        } else {
            k.give_up_waiting();
        }
        k.retain();
        k.publish();
        if k.idle_now() {
            for b in k.barriers.drain(..) {
                let _ = b.send(Ok(()));
            }
        }
        if (self.shutdown.is_some() || self.disconnected) && k.busy() == 0 {
            return self.finish();
        }
        if self.disconnected {
            // Compressions under way report back and wake the task.
            return Next::Idle;
        }
        match &self.shutdown {
            Some((d, _)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Past the deadline: stop the tasks under way (they
                    // remove their partial files) and wait for them; each
                    // reports back and wakes the task. Relaxed: read on
                    // its own by the compressing threads.
                    k.sh.compress_cancel
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    Next::Idle
                } else {
                    Next::After(left)
                }
            }
            None => match min_wait(min_wait(k.next_expiry(), k.next_retry()), k.turn_poll()) {
                Some(t) if t.is_zero() => Next::Again,
                Some(t) => Next::After(t),
                None => Next::Idle,
            },
        }
    }
}

/// One segment's work (index, compression), a one-shot task on the
/// compression lane.
struct CompressJob {
    sh: Arc<Context>,
    journal: Arc<Mutex<Journal>>,
    codec: Option<(Codec, i32)>,
    task: Option<Task>,
    done: mpsc::Sender<(Task, Outcome, Duration)>,
    waker: Option<Waker>,
}

impl runtime::Task for CompressJob {
    fn run(&mut self) -> Next {
        if let Some(task) = self.task.take() {
            if let Some(hook) = &self.sh.cfg.before_compress {
                hook(&task.file);
            }
            let t0 = Instant::now();
            let res = work::run(&self.sh, &self.journal, self.codec, &task);
            let _ = self.done.send((task, res, t0.elapsed()));
            if let Some(w) = &self.waker {
                w.wake();
            }
        }
        Next::Done
    }
}
