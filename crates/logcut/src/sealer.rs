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
    journal::Journal,
    keeper::{self, Sealed},
    segment::Segment,
    stats::Counters,
};

/// Work for the sealer, in order.
pub(crate) enum Job {
    /// Seal these segments (closed, renamed, nothing held), oldest first.
    Seal(Vec<Arc<Segment>>),
    /// Answer once every earlier job is done.
    Barrier(mpsc::SyncSender<()>),
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
    keeper: Option<mpsc::Sender<keeper::Msg>>,
    next_first: u64,
    accepted: u64,
    /// Shared mode: records of the parts read from the manifest, by
    /// sequence number, for segments not sealed yet.
    parts: std::collections::HashMap<u64, u64>,
    /// Shared mode: a segment left unsealed at shutdown's deadline, for
    /// `close` to return.
    gave_up: Option<Error>,
}

impl Sealer {
    pub(crate) fn new(
        sh: Arc<Context>,
        link: Arc<dyn SealerLink>,
        journal: Arc<Mutex<Journal>>,
        keeper: Option<mpsc::Sender<keeper::Msg>>,
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
        }
    }

    fn append(&self, entries: &[Entry]) -> Result<(), Error> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(entries)
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

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut backlog: Vec<Arc<Segment>> = Vec::new();
        let mut retry = self.sh.cfg.backoff_min;
        // A job taken while gathering seal jobs, handled next.
        let mut next: Option<Job> = None;
        loop {
            // While a manifest append is failing, retry after a delay; any
            // new job wakes us early.
            let job = if let Some(j) = next.take() {
                Some(j)
            } else if backlog.is_empty() {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(retry) {
                    Ok(j) => Some(j),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            };
            match job {
                Some(Job::Seal(segs)) => {
                    backlog.extend(segs);
                    // Segments that queued up while the last ones were
                    // synced are sealed together: one directory sync and
                    // one manifest append (and sync) for all of them.
                    loop {
                        match rx.try_recv() {
                            Ok(Job::Seal(more)) => backlog.extend(more),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(Job::Barrier(tx)) => {
                    self.seal(&mut backlog);
                    let _ = tx.send(());
                    continue;
                }
                Some(Job::Close(c)) => {
                    let res = self.close(
                        &mut backlog,
                        c.lost_records,
                        c.lost_bytes,
                        c.accepted,
                        c.extra_accepted,
                        c.deadline,
                    );
                    let _ = c.reply.send(res);
                    return;
                }
                None if backlog.is_empty() => return,
                None => {}
            }
            if self.seal(&mut backlog) {
                retry = self.sh.cfg.backoff_min;
            } else {
                retry = retry.saturating_mul(2).min(self.sh.cfg.backoff_max);
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
            let (crc32, bytes) = match logcut_format::checksum_reader(ReadAt(&seg.file, 0)) {
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
                    Entry::Seal(s) => Some(Sealed {
                        seq: s.seq,
                        file: s.file.clone(),
                        end: s.end,
                        bytes: s.bytes,
                        crc32: s.crc32,
                        compressed: None,
                        disk_bytes: s.bytes,
                    }),
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

    /// Shared mode: takes the exclusive lock on a segment's file, that is,
    /// waits until every other process has left it. Polls, so that
    /// shutdown's deadline (`SealerLink::close_by`) can end the wait: `false`
    /// then. (A sleep in the library: there is no event to wait for when
    /// another process releases a flock, other than a blocking `flock`
    /// that no deadline could end.)
    fn wait_alone(&self, file: &std::fs::File) -> std::io::Result<bool> {
        let mut pause = Duration::from_micros(50);
        loop {
            if crate::sys::flock(file, crate::sys::Flock::TryExclusive)? {
                return Ok(true);
            }
            let by = self.link.close_by();
            if by.is_some_and(|t| Instant::now() >= t) {
                return Ok(false);
            }
            std::thread::park_timeout(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
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
                match self.wait_alone(&seg.file) {
                    Ok(true) => {}
                    Ok(false) => {
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
                let (crc32, file_bytes) = match logcut_format::checksum_reader(ReadAt(&seg.file, 0))
                {
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

    fn close(
        &mut self,
        backlog: &mut Vec<Arc<Segment>>,
        lost_records: u64,
        lost_bytes: u64,
        accepted: Option<u64>,
        extra_accepted: u64,
        deadline: Instant,
    ) -> Result<(), Error> {
        let sh = Arc::clone(&self.sh);
        let mut first_err = None;
        let mut retry = Duration::from_millis(10);
        while !self.seal(backlog) {
            if Instant::now() >= deadline {
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
                break;
            }
            // A bounded wait between retries at shutdown; nothing else to wait on.
            std::thread::park_timeout(
                retry.min(deadline.saturating_duration_since(Instant::now())),
            );
            retry = (retry * 2).min(Duration::from_millis(500));
        }
        if let Some(e) = self.gave_up.take() {
            first_err.get_or_insert(e);
        }
        let accepted = accepted.unwrap_or(self.accepted + extra_accepted);
        let mut entries = Vec::new();
        if lost_records > 0 {
            entries.push(Entry::Lost(Lost {
                session: sh.session.clone(),
                records: lost_records,
                bytes: lost_bytes,
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
