//! Giving a swapped-out segment its sealed name, the same in both modes:
//! a hard link, then the successor renamed over the active path, never
//! overwriting a file, and noticing when someone else moved the segment
//! away (logrotate, `mv`).

use std::{io, sync::Arc};

use jiff::Timestamp;
use logcut_format::{
    lock::CutState,
    name::{self, SealedName},
};

use super::{Coordinator, worker::Worker};
use crate::{Error, segment::Segment, stats::Counters};

impl<C: Coordinator> Worker<C> {
    /// Gives `seg` (at the active path) its sealed name without ever
    /// overwriting a file, then moves the next segment to the active path
    /// (or, at shutdown, leaves the active name or removes it). If someone else moved
    /// `seg` away (logrotate, `mv`), it is recorded as moved instead.
    pub(super) fn promote(
        &mut self,
        seg: &Segment,
        successor: Option<&Segment>,
    ) -> Result<(), Error> {
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
    pub(super) fn is_at(&self, name: &str, seg: &Segment) -> Result<bool, Error> {
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
    pub(super) fn install(&self, succ: &Segment) -> Result<(), Error> {
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
    /// until the successor replaces it, or at shutdown until the next start
    /// removes it), or where the file system has no hard links, or at a
    /// shutdown without `keep_active_name`, a rename. `None` if the file at the active
    /// path turned out not to be `seg` (someone else moved it meanwhile).
    pub(super) fn link_sealed(
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
            // At shutdown the active name goes, unless it stays as a second
            // name of the last segment (see `keep_active_name`).
            let mut renamed = last && !self.sh.cfg.keep_active_name;
            let mut res = if renamed {
                dir.rename_noreplace(active, &candidate)
            } else {
                dir.link(active, &candidate)
            };
            if !renamed
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
}
