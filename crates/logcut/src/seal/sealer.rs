//! The sealer thread: makes sealed segments durable and records them in the
//! manifest, off the thread that rotates.
//!
//! `fdatasync` of a segment and of the directory can take milliseconds. Run
//! on the rotating thread, they would delay the next prepared segment (and
//! in Buffered mode, the next batch). So the rotating thread only renames
//! and hands segments over here, in sequence order; this thread syncs them,
//! appends their entries in one write, and retires them.

use std::{
    io::Read,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use logcut_format::manifest::{Close, Entry, Lost, Part, Seal, SealReason};

use crate::{
    Error,
    builder::Fsync,
    context::{Context, SealerLink},
    runtime::{Mail, Next, Task},
    seal::journal::Journal,
    sealed::keeper::{self, Sealed},
    segment::Segment,
    stats::Counters,
};

/// Work for the sealer, in order.
pub(crate) enum Job {
    /// Seal these segments (closed, renamed, nothing held), oldest first.
    Seal(Vec<Arc<Segment>>),
    /// Answer once every earlier job is done.
    Barrier(mpsc::SyncSender<()>),
    /// A `tick`: once every earlier job is done, passed on to the keeper
    /// (which answers once it caught up), or answered here without one.
    Tick(mpsc::SyncSender<Result<(), Error>>),
    /// Record the session's end, then stop.
    Close(CloseJob),
}

/// The session's totals, known only to the rotating thread.
pub(crate) struct CloseJob {
    pub(crate) lost_records: u64,
    pub(crate) lost_bytes: u64,
    /// Buffered mode: records accepted into the buffer. Direct mode: `None`
    /// (the sum of the sealed segments' accepted records is used), plus
    /// `extra_accepted` from a final segment that was not sealed.
    pub(crate) accepted: Option<u64>,
    pub(crate) extra_accepted: u64,
    pub(crate) deadline: Instant,
    pub(crate) reply: mpsc::SyncSender<Result<(), Error>>,
}

pub(crate) struct Sealer {
    sh: Arc<Context>,
    /// The appender's side: the live list and shutdown's deadline.
    link: Arc<dyn SealerLink>,
    /// Shared with the keeper and the compression workers, which append
    /// their (rare) entries between the sealer's.
    journal: Arc<Mutex<Journal>>,
    /// Where sealed segments go next (compression, retention), if anywhere.
    keeper: Option<Mail<keeper::Msg>>,
    next_first: u64,
    accepted: u64,
    /// Shared mode: records of the parts read from the manifest, by
    /// sequence number, for segments not sealed yet.
    parts: std::collections::HashMap<u64, u64>,
    /// Shared mode: a segment left unsealed at shutdown's deadline, for
    /// `close` to return.
    gave_up: Option<Error>,
    /// Shared mode: the last `seal` stopped at a segment another process
    /// still writes; it is tried again shortly (not an error).
    not_alone: bool,
}

impl Sealer {
    pub(crate) fn new(
        sh: Arc<Context>,
        link: Arc<dyn SealerLink>,
        journal: Arc<Mutex<Journal>>,
        keeper: Option<Mail<keeper::Msg>>,
        next_first: u64,
    ) -> Sealer {
        Sealer {
            sh,
            link,
            journal,
            keeper,
            next_first,
            accepted: 0,
            parts: std::collections::HashMap::new(),
            gave_up: None,
            not_alone: false,
        }
    }

    fn append(&self, entries: &[Entry]) -> Result<(), Error> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(entries)
    }

    /// A sealed manifest: ends the epoch if it is due (or, with `force`,
    /// at shutdown, if it holds an entry).
    fn end_epoch_now(&self, force: bool) -> Result<(), Error> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_epoch(force)
    }

    fn end_epoch(&self, force: bool) {
        if let Err(e) = self.end_epoch_now(force) {
            self.sh.report(e);
        }
    }

    /// What the task waits for with nothing to seal: the epoch's end, if
    /// the manifest is sealed.
    fn until_epoch_due(&self) -> Next {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until_epoch_due()
            .map_or(Next::Idle, Next::After)
    }

    /// Shared mode: appends entries that must appear once (parts, seals).
    /// Returns whether they are in the manifest: a failure is counted and
    /// reported, but entries written whose sync then failed count as
    /// written (appending them again would count them twice).
    fn append_once(&self, entries: &[Entry]) -> bool {
        match self.append(entries) {
            Ok(()) => true,
            Err(e) => {
                Counters::add(&self.sh.counters.write_failures, 1);
                let written = e.operation() == "sync manifest";
                self.sh.report(e);
                written
            }
        }
    }

    /// Seals everything in `backlog`. Returns false (keeping the backlog)
    /// if the manifest could not be written.
    fn seal(&mut self, backlog: &mut Vec<Arc<Segment>>) -> bool {
        if backlog.is_empty() {
            return true;
        }
        if self.sh.cfg.shared {
            return self.seal_shared(backlog);
        }
        let sh = Arc::clone(&self.sh);
        if sh.cfg.fsync != Fsync::Never {
            for seg in backlog.iter() {
                if let Err(e) = crate::sys::sync_data(&seg.file) {
                    let name = seg.lock().sealed_name.clone().unwrap_or_default();
                    sh.report(Error::io("sync segment", sh.dir.join(&name), e));
                }
            }
            // The sealed names must be durable before the manifest says so.
            if let Err(e) = sh.dir.sync() {
                sh.report(Error::io("sync log directory", sh.dir.path(), e));
            }
        }
        let now = sh.cfg.clock.now();
        let mut first = self.next_first;
        let mut entries = Vec::with_capacity(backlog.len());
        for seg in backlog.iter() {
            let st = seg.lock();
            let name = st.sealed_name.clone().unwrap_or_default();
            let records = seg.records(&st);
            let counted = st.bytes + seg.fast_bytes();
            // The checksum of what is in the file: no write is under way
            // (the segment is closed and quiet).
            // Buffered mode computed it while writing; otherwise (Direct
            // writers append without a lock) the file is read back.
            let counted_sum = seg.counted_checksum(&st, sh.cfg.mode == crate::Mode::Buffered);
            // A log that ships records each segment's SHA-256 too (the
            // object's, and later a tamper-evident manifest's): one read
            // back gives both.
            let summed = match (sha256_wanted(&sh, &self.journal), counted_sum) {
                (true, _) => sha256_and_crc(&seg.file),
                (false, Some(x)) => Ok((x, None)),
                (false, None) => {
                    logcut_format::checksum_reader(ReadAt(&seg.file, 0)).map(|x| (x, None))
                }
            };
            let ((crc32, bytes), sha256) = match summed {
                Ok(x) => x,
                Err(e) => {
                    drop(st);
                    sh.report(Error::io("checksum segment", sh.dir.join(&name), e));
                    return false;
                }
            };
            if bytes != counted {
                sh.report(Error::io(
                    "seal",
                    sh.dir.join(&name),
                    std::io::Error::other(format!(
                        "the file holds {bytes} bytes, {counted} were counted"
                    )),
                ));
            }
            entries.push(Entry::Seal(Seal {
                seq: seg.seq,
                file: name,
                session: sh.session.clone(),
                start: st.start,
                end: now,
                first: Some(first),
                records: Some(records),
                bytes,
                crc32,
                reason: st.reason.clone().unwrap_or(SealReason::Manual),
                sha256,
            }));
            first += records;
        }
        if let Err(e) = self.append(&entries) {
            Counters::add(&sh.counters.write_failures, 1);
            sh.report(e);
            return false;
        }
        self.next_first = first;
        if let Some(k) = &self.keeper {
            // The entries are durable: compression and retention may
            // start on these segments.
            let sealed = entries
                .iter()
                .filter_map(|e| match e {
                    // Moved away by someone else: not ours to compress or
                    // delete.
                    Entry::Seal(s) if s.file == logcut_format::name::MOVED => None,
                    Entry::Seal(s) => Some(Sealed::from_seal(s)),
                    _ => None,
                })
                .collect();
            let _ = k.send(keeper::Msg::Sealed(sealed));
        }
        self.retire(backlog, true);
        backlog.clear();
        true
    }

    /// Marks segments recorded, and moves their counts to the appender's
    /// totals. `rotations`: they were sealed (by this process) rather than
    /// left to another process that shares the log.
    fn retire(&mut self, segs: &[Arc<Segment>], rotations: bool) {
        let mut totals = Vec::with_capacity(segs.len());
        for seg in segs {
            let mut st = seg.lock();
            st.retired = true;
            let fast = seg.fast_records();
            totals.push((
                st.accepted + fast,
                st.accepted_bytes + seg.fast_bytes(),
                st.records + fast,
            ));
        }
        let retired: Vec<(Arc<Segment>, u64, u64, u64)> = segs
            .iter()
            .zip(totals)
            .map(|(seg, (a, ab, r))| (Arc::clone(seg), a, ab, r))
            .collect();
        self.accepted += retired.iter().map(|t| t.1).sum::<u64>();
        self.link.retire(&retired, rotations);
    }

    /// Shared mode: takes the exclusive lock on a segment's file if every
    /// other process has left it: `Some(true)`; `Some(false)` once
    /// shutdown's deadline (`SealerLink::close_by`) has passed; `None` if
    /// others still write it (the task tries again shortly: there is no
    /// event to wait for when another process releases a flock, and a
    /// blocking `flock` would hold a runtime thread).
    fn try_alone(&self, file: &std::fs::File) -> std::io::Result<Option<bool>> {
        if crate::sys::flock(file, crate::sys::Flock::TryExclusive)? {
            return Ok(Some(true));
        }
        let by = self.link.close_by();
        if by.is_some_and(|t| Instant::now() >= t) {
            return Ok(Some(false));
        }
        Ok(None)
    }

    /// Shared mode: for each segment, in order, records this process's part
    /// of it; then either leaves it to the process that cut it, or (if this
    /// one cut it) waits until every other writer has left, and seals it
    /// with the sum of the parts. Returns false (keeping what is left) if
    /// the manifest could not be written.
    fn seal_shared(&mut self, backlog: &mut Vec<Arc<Segment>>) -> bool {
        let sh = Arc::clone(&self.sh);
        // The directory is synced once per round: the sealed names of all
        // the segments in the backlog exist already.
        let mut dir_synced = false;
        while let Some(seg) = backlog.first().cloned() {
            let (followed, name, records, bytes, recorded, start, reason) = {
                let st = seg.lock();
                (
                    st.followed,
                    st.sealed_name.clone().unwrap_or_default(),
                    seg.records(&st),
                    st.bytes + seg.fast_bytes(),
                    st.part_recorded,
                    st.start,
                    st.reason.clone().unwrap_or(SealReason::Manual),
                )
            };
            let path = sh.dir.join(if followed { &sh.active_name } else { &name });
            let part = Entry::Part(Part {
                seq: seg.seq,
                session: sh.session.clone(),
                records,
                bytes,
            });
            // A segment this process seals gets its part in the same
            // append as the seal (one manifest sync); one it leaves to
            // another needs its part recorded before it lets go.
            if !recorded && followed {
                if !self.append_once(std::slice::from_ref(&part)) {
                    return false;
                }
                seg.lock().part_recorded = true;
            }
            if followed {
                // Leave it: the process that cut it may seal it now (it
                // also syncs it: the same file).
                if let Err(e) = crate::sys::flock(&seg.file, crate::sys::Flock::Unlock) {
                    sh.report(Error::io("unlock segment", &path, e));
                }
            } else {
                // Wait until every other writer has left it (each one
                // records its part first).
                match self.try_alone(&seg.file) {
                    Ok(None) => {
                        self.not_alone = true;
                        return false;
                    }
                    Ok(Some(true)) => {}
                    Ok(Some(false)) => {
                        // Shutdown's deadline passed: leave it to the next
                        // appender that starts alone (crash recovery).
                        let err = Error::io(
                            "seal",
                            &path,
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "another process still writes this segment at shutdown's deadline; the next appender to start alone records it",
                            ),
                        );
                        sh.report(err.clone());
                        self.gave_up.get_or_insert(err);
                        // Its records still count for this session.
                        if !recorded {
                            if let Err(e) = self.append(&[part]) {
                                sh.report(e);
                            }
                        }
                        self.retire(std::slice::from_ref(&seg), false);
                        backlog.remove(0);
                        continue;
                    }
                    Err(e) => {
                        sh.report(Error::io("lock segment", &path, e));
                        return false;
                    }
                }
                if sh.cfg.fsync != Fsync::Never {
                    if let Err(e) = crate::sys::sync_data(&seg.file) {
                        sh.report(Error::io("sync segment", &path, e));
                    }
                    if !dir_synced {
                        dir_synced = true;
                        if let Err(e) = sh.dir.sync() {
                            sh.report(Error::io("sync log directory", sh.dir.path(), e));
                        }
                    }
                }
                let scanned = self
                    .journal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .scan_parts();
                match scanned {
                    Ok(parts) => {
                        for p in parts {
                            let sum = self.parts.entry(p.seq).or_default();
                            *sum = sum.saturating_add(p.records);
                        }
                    }
                    Err(e) => {
                        sh.report(e);
                        return false;
                    }
                }
                let summed = if sha256_wanted(&sh, &self.journal) {
                    sha256_and_crc(&seg.file)
                } else {
                    logcut_format::checksum_reader(ReadAt(&seg.file, 0)).map(|x| (x, None))
                };
                let ((crc32, file_bytes), sha256) = match summed {
                    Ok(x) => x,
                    Err(e) => {
                        sh.report(Error::io("checksum segment", &path, e));
                        return false;
                    }
                };
                let seal = Entry::Seal(Seal {
                    seq: seg.seq,
                    file: name,
                    session: sh.session.clone(),
                    start,
                    end: sh.cfg.clock.now(),
                    // Record indexes are per process; unknown here.
                    first: None,
                    records: Some(
                        self.parts
                            .get(&seg.seq)
                            .copied()
                            .unwrap_or(0)
                            .saturating_add(if recorded { 0 } else { records }),
                    ),
                    bytes: file_bytes,
                    crc32,
                    reason,
                    sha256,
                });
                let entries = if recorded {
                    vec![seal]
                } else {
                    vec![part, seal]
                };
                if !self.append_once(&entries) {
                    return false;
                }
                seg.lock().part_recorded = true;
                // Parts of segments up to this one are all counted now.
                let done = seg.seq;
                self.parts.retain(|seq, _| *seq > done);
            }
            self.retire(std::slice::from_ref(&seg), !followed);
            backlog.remove(0);
        }
        true
    }

    /// Records the session's close, once the backlog is sealed (`sealed`)
    /// or shutdown's deadline passed with segments left unrecorded.
    fn close(&mut self, sealed: bool, job: &CloseJob) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let mut first_err = None;
        if !sealed {
            let path = self
                .journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .path()
                .to_path_buf();
            first_err = Some(Error::io(
                "shut down",
                path,
                std::io::Error::other(
                    "some segments could not be recorded in the manifest; the next start recovers them",
                ),
            ));
        }
        if let Some(e) = self.gave_up.take() {
            first_err.get_or_insert(e);
        }
        let accepted = job.accepted.unwrap_or(self.accepted + job.extra_accepted);
        let lost_records = job.lost_records;
        let mut entries = Vec::new();
        if lost_records > 0 {
            entries.push(Entry::Lost(Lost {
                session: sh.session.clone(),
                records: lost_records,
                bytes: job.lost_bytes,
                reason: "shutdown-timeout".to_string(),
            }));
        }
        entries.push(Entry::Close(Close {
            session: sh.session.clone(),
            at: sh.cfg.clock.now(),
            accepted,
            lost: lost_records,
        }));
        if let Err(e) = self.append(&entries) {
            first_err.get_or_insert(e);
        }
        // A clean shutdown seals the whole history (the keeper, if any,
        // does so again after its last entries).
        if let Err(e) = self.end_epoch_now(true) {
            first_err.get_or_insert(e);
        }
        if let Err(e) = sh.dir.sync() {
            first_err.get_or_insert(Error::io("sync log directory", sh.dir.path(), e));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Reads a file from an offset with `pread`, whatever its open mode's
/// position (segments are open for appending).
struct ReadAt<'a>(&'a std::fs::File, u64);

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.0, buf, self.1)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// The sealer as a runtime task: takes the jobs queued, seals what they
/// bring in rounds (one directory sync and one manifest append for the
/// segments of a round), and asks to run again while something waits.
pub(crate) struct SealerTask {
    sealer: Sealer,
    rx: mpsc::Receiver<Job>,
    backlog: Vec<Arc<Segment>>,
    /// A job taken while gathering seal jobs, or one that waits until the
    /// backlog is sealed (a barrier behind a segment others still write).
    next: Option<Job>,
    /// While a manifest append fails: the delay before the next attempt,
    /// and when that is.
    retry: Duration,
    retry_at: Option<Instant>,
    /// Shared mode: the delay before looking again whether the other
    /// writers left a segment.
    pause: Duration,
    /// Shutdown's close, once it came: tried in rounds until the backlog
    /// is sealed or its deadline passed, each round a turn on the runtime
    /// (not a thread held while it waits).
    closing: Option<Closing>,
}

/// Shutdown's close under way, and its own retry delays (shorter than the
/// backoff: shutdown is waited for).
struct Closing {
    job: CloseJob,
    retry: Duration,
    pause: Duration,
}

impl SealerTask {
    pub(crate) fn new(sealer: Sealer, rx: mpsc::Receiver<Job>) -> SealerTask {
        let retry = sealer.sh.cfg.backoff_min;
        SealerTask {
            sealer,
            rx,
            backlog: Vec::new(),
            next: None,
            retry,
            retry_at: None,
            pause: Duration::from_micros(50),
            closing: None,
        }
    }

    /// One round of shutdown's close: seals the backlog; if that is not
    /// done, looks again after a pause (shared mode: others still write a
    /// segment; past the deadline `try_alone` gives up on it) or a retry
    /// delay, until the deadline. Then records the close and answers.
    fn close_round(&mut self) -> Next {
        let Some(c) = self.closing.as_mut() else {
            return Next::Done;
        };
        self.sealer.not_alone = false;
        let sealed = self.sealer.seal(&mut self.backlog);
        if !sealed && self.sealer.not_alone {
            let wait = c.pause;
            c.pause = (c.pause * 2).min(Duration::from_millis(2));
            return Next::After(wait);
        }
        let left = c.job.deadline.saturating_duration_since(Instant::now());
        if !sealed && !left.is_zero() {
            let wait = c.retry.min(left);
            c.retry = (c.retry * 2).min(Duration::from_millis(500));
            return Next::After(wait);
        }
        let Some(c) = self.closing.take() else {
            return Next::Done;
        };
        let res = self.sealer.close(sealed, &c.job);
        let _ = c.job.reply.send(res);
        Next::Done
    }

    /// One attempt at sealing the backlog; what to do next if it failed.
    fn seal(&mut self) -> Option<Next> {
        self.sealer.not_alone = false;
        if self.sealer.seal(&mut self.backlog) {
            self.retry = self.sealer.sh.cfg.backoff_min;
            self.retry_at = None;
            self.pause = Duration::from_micros(50);
            return None;
        }
        if self.sealer.not_alone {
            let wait = self.pause;
            self.pause = (self.pause * 2).min(Duration::from_millis(2));
            return Some(Next::After(wait));
        }
        let wait = self.retry;
        self.retry = self
            .retry
            .saturating_mul(2)
            .min(self.sealer.sh.cfg.backoff_max);
        self.retry_at = Instant::now().checked_add(wait);
        Some(Next::After(wait))
    }
}

impl Task for SealerTask {
    fn run(&mut self) -> Next {
        if self.closing.is_some() {
            return self.close_round();
        }
        self.sealer.end_epoch(false);
        loop {
            let job = match self.next.take() {
                Some(j) => Some(j),
                None => match self.rx.try_recv() {
                    Ok(j) => Some(j),
                    Err(mpsc::TryRecvError::Empty) => None,
                    // The appender is gone without closing (a start that
                    // failed): seal what is here, then stop.
                    Err(mpsc::TryRecvError::Disconnected) if self.backlog.is_empty() => {
                        return Next::Done;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => None,
                },
            };
            match job {
                Some(Job::Seal(segs)) => {
                    self.backlog.extend(segs);
                    // Segments that queued up while the last ones were
                    // synced are sealed together: one directory sync and
                    // one manifest append (and sync) for all of them.
                    loop {
                        match self.rx.try_recv() {
                            Ok(Job::Seal(more)) => self.backlog.extend(more),
                            Ok(other) => {
                                self.next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(n) = self.seal() {
                        return self.wait(n);
                    }
                }
                Some(Job::Barrier(tx)) => {
                    if let Some(Next::After(d)) = self.seal() {
                        if self.sealer.not_alone {
                            self.next = Some(Job::Barrier(tx));
                            return Next::After(d);
                        }
                    }
                    let _ = tx.send(());
                }
                Some(Job::Tick(tx)) => {
                    if let Some(Next::After(d)) = self.seal() {
                        if self.sealer.not_alone {
                            self.next = Some(Job::Tick(tx));
                            return Next::After(d);
                        }
                    }
                    match &self.sealer.keeper {
                        Some(k) => {
                            if let Err(e) = k.send(keeper::Msg::Barrier(tx)) {
                                if let keeper::Msg::Barrier(tx) = e.0 {
                                    let _ = tx.send(Ok(()));
                                }
                            }
                        }
                        None => {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                Some(Job::Close(job)) => {
                    self.closing = Some(Closing {
                        job,
                        retry: Duration::from_millis(10),
                        pause: Duration::from_micros(50),
                    });
                    return self.close_round();
                }
                // A sealed manifest: look again when the epoch may end.
                None if self.backlog.is_empty() => return self.sealer.until_epoch_due(),
                None => {
                    // Woken with nothing new: a retry whose time has come
                    // (or not yet).
                    if let Some(at) = self.retry_at {
                        let now = Instant::now();
                        if now < at && !self.sealer.not_alone {
                            return Next::After(at - now);
                        }
                    }
                    return match self.seal() {
                        Some(n) => n,
                        None => Next::Again,
                    };
                }
            }
        }
    }
}

impl SealerTask {
    /// After a failed round: a queued job is still taken at once (a
    /// barrier or the close must not wait for the backoff).
    fn wait(&mut self, n: Next) -> Next {
        if self.next.is_some() { Next::Again } else { n }
    }
}

/// Whether sealed segments get a SHA-256 in their seal entry: when the
/// log ships them, or its manifest is sealed (the MAC then covers the
/// segment's contents, not only a CRC anyone can fix up).
fn sha256_wanted(sh: &crate::context::Context, journal: &Mutex<Journal>) -> bool {
    (cfg!(feature = "ship") && sh.cfg.ship.is_some())
        || journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_sealing()
}

/// CRC-32 and length, and SHA-256 (hex), of a sealed segment's file.
fn sha256_and_crc(file: &std::fs::File) -> std::io::Result<((u32, u64), Option<String>)> {
    let (sha, crc, len) = logcut_format::digest_reader(ReadAt(file, 0))?;
    Ok(((crc, len), Some(logcut_format::hex(&sha))))
}
