//! Shared mode's side of the cut: several processes write one log; each
//! cut is made by one of them under the cut lock, the others follow the
//! cut file to the new active segment, and at shutdown the last one to
//! leave seals the active segment.

use std::{
    io,
    sync::{Arc, MutexGuard, atomic::Ordering},
};

use jiff::Timestamp;
use logcut_format::{
    lock::CutState,
    manifest::SealReason,
    name::{self, SealedName},
};

use super::{
    Coordinator,
    worker::{Worker, next_seq, same},
};
use crate::{
    Error,
    coordinate::share::{self, CutGuard},
    segment::{SegState, Segment},
    sys::FileInfo,
};

/// The shared mode: its state is all on disk (the cut file and the lock
/// file, in `Shared`), so that every process sees the same.
pub(super) struct SharedLog;

type W = Worker<SharedLog>;

impl Coordinator for SharedLog {
    /// Nothing: sequence numbers are handed out at the cut, under the cut
    /// lock, so nothing can be prepared ahead.
    fn start(_: &mut W) {}

    fn prepare_next(_: &mut W) -> Option<Error> {
        None
    }

    fn prepare_ahead(_: &mut W) {}

    fn prepare_due(_: &mut W) {}

    fn collect(_: &mut W) {}

    fn wants_segments(_: &W) -> bool {
        false
    }

    fn preparing(_: &W) -> bool {
        false
    }

    fn backoff_changed(_: &W, _: Option<Timestamp>) {}

    /// Shared cuts promote at once, under the cut lock, and retry there
    /// (`shared_retry`).
    fn promote_pending(_: &mut W) -> Result<(), Error> {
        Ok(())
    }

    /// Looks at the file before writing a batch to it: another process may
    /// have cut it (follow first, once per batch at most: if that fails,
    /// records go on to it, and its sealer waits for this process) or
    /// filled it (the batch's size check counts its bytes).
    fn before_batch(w: &mut W, seg: &Arc<Segment>, followed: &mut bool) -> bool {
        let own = seg.lock().bytes;
        w.sh.probe(seg, own);
        if seg.is_stale() && !*followed {
            *followed = true;
            if let Err(e) = w.shared_check() {
                w.rotation_failed(e);
            }
            return false;
        }
        true
    }

    /// This thread cuts a shared log itself, at once.
    fn cut_in_batch<'a>(
        w: &mut W,
        seg: &'a Arc<Segment>,
        st: MutexGuard<'a, SegState>,
        reason: SealReason,
        _: Timestamp,
    ) {
        drop(st);
        if let Err(e) = w.shared_step(Some(reason.clone())) {
            w.rotation_failed(e);
        }
        if Arc::ptr_eq(&w.sh.path.current.load_full(), seg) {
            w.sh.defer_cut(&mut seg.lock(), reason);
        }
    }

    fn cut_due<'a>(
        w: &mut W,
        _: &'a Arc<Segment>,
        st: MutexGuard<'a, SegState>,
        reason: SealReason,
        now: Timestamp,
    ) {
        drop(st);
        if w.prepare.allow(now) {
            if let Err(e) = w.shared_step(Some(reason)) {
                w.rotation_failed(e);
            }
        }
    }

    fn rotate(w: &mut W) -> Result<(), Error> {
        w.shared_step(Some(SealReason::Manual))
    }

    fn reopen(w: &mut W) -> Result<(), Error> {
        w.shared_check()
    }

    /// Following another process's cut (and repairing) goes on during a
    /// backoff, and at once when a probe saw the segment cut; only this
    /// process's own cuts wait.
    fn check_due(w: &W, interval_passed: bool, _: Timestamp) -> bool {
        interval_passed || w.sh.path.current.load().is_stale()
    }

    /// Never: a shared cut is promoted at once, under the cut lock.
    fn cut_under_way(_: &W) -> bool {
        false
    }

    fn stop_cuts(_: &mut W) {}

    fn cut_held_now(w: &mut W, seg: &Arc<Segment>) -> bool {
        if let Err(e) = w.shared_step(Some(SealReason::Size)) {
            w.rotation_failed(e);
        }
        !Arc::ptr_eq(&w.sh.path.current.load_full(), seg)
    }

    /// Follows a cut that another process made (and perhaps left after):
    /// if this process is the last, the active file it seals must be the
    /// one at the active path.
    fn before_last(w: &mut W) {
        if let Err(e) = w.shared_step(None) {
            w.sh.report(e);
        }
    }

    fn finish_last(w: &mut W, cur: &Arc<Segment>, _: u64, accepted: u64) -> Result<(), Error> {
        w.finish_shared(cur, accepted)
    }
}

impl Worker<SharedLog> {
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
            cur.set_others(len.saturating_sub(own));
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
        self.last_out = alone;
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
}
