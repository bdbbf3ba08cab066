//! Shared mode (`AppenderBuilder::shared`): the locks and the cut file that
//! let several processes write one log.
//!
//! Three kinds of `flock`, all released by the kernel when a process dies:
//! - the lock file `<name>.lock`: shared by every appender of a shared log
//!   (an exclusive appender is refused, and refuses them); exclusive for
//!   the one that starts alone (it recovers) or shuts down last (it seals
//!   the active segment);
//! - the cut file `<name>.cut`: exclusive around start-up, each cut and
//!   each follow, so they happen one at a time and always see the log
//!   between cuts. It holds the active segment's sequence number and file
//!   identity (`CutState`);
//! - each segment file: shared by every appender writing it, exclusive for
//!   the one that seals it, which so waits until every writer has left.
//!
//! A cut, under the cut lock: create `<name>.log.next.<seq>`, write the cut
//! state naming it, link the active file to its sealed name, rename the new
//! file onto the active path. A process killed between the state and the
//! rename leaves a state that names the prepared file; the next process to
//! take the lock finishes that cut.

use std::{fs::File, io, path::Path};

use jiff::Timestamp;
use logcut_format::{lock::CutState, name};

use crate::{
    Error,
    builder::Config,
    segment::Segment,
    sys::{self, Dir, Flock},
};

/// The cut lock, released when dropped.
pub(crate) struct CutGuard(File);

impl CutGuard {
    /// Waits for the exclusive lock on the cut file `cut` (at `path`).
    pub(crate) fn take(cut: &File, path: &Path) -> Result<CutGuard, Error> {
        // A second descriptor of the same open file: the lock belongs to
        // the open file, so dropping this one releases it, and the
        // appender keeps its own.
        let dup = cut
            .try_clone()
            .map_err(|e| Error::io("lock cut file", path, e))?;
        sys::flock(&dup, Flock::Exclusive).map_err(|e| Error::io("lock cut file", path, e))?;
        Ok(CutGuard(dup))
    }
}

impl Drop for CutGuard {
    fn drop(&mut self) {
        // Closing the descriptor does not release a lock another
        // descriptor of the same open file still has: unlock explicitly.
        let _ = sys::flock(&self.0, Flock::Unlock);
    }
}

/// Reads the cut state; `None` if the file names no active segment.
pub(crate) fn read_state(cut: &File, path: &Path) -> Result<Option<CutState>, Error> {
    let text = sys::read_small(cut).map_err(|e| Error::io("read cut file", path, e))?;
    Ok(CutState::parse(&text))
}

/// Reads the cut state without its lock and without allocating (the
/// write path's probe); `None` if unreadable. A read that races with a
/// cut may see the old state or the new one.
pub(crate) fn peek_state(cut: &File) -> Option<CutState> {
    let mut buf = [0u8; 128];
    let n = rustix::io::pread(cut, &mut buf[..], 0).ok()?;
    CutState::parse(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Records `seg` (sequence `seq`) as the active segment in the cut file.
pub(crate) fn write_cut_state(
    cut: &File,
    dir: &Dir,
    log: &str,
    seq: u64,
    seg: &Segment,
) -> Result<(), Error> {
    let state = CutState {
        seq,
        dev: seg.id.dev,
        ino: seg.id.ino,
    };
    // In place, one `pwrite` of a fixed length: a process killed here
    // leaves the old state or the new one, never an empty file.
    sys::overwrite(cut, state.encode().as_bytes())
        .map_err(|e| Error::io("write cut file", dir.join(&name::cut_file(log)), e))
}

/// Takes the shared lock on a segment's file: whoever seals it waits until
/// this process has left it.
pub(crate) fn share_segment(seg: &Segment, path: &Path) -> Result<(), Error> {
    sys::flock(&seg.file, Flock::Shared)
        .map(|_| ())
        .map_err(|e| Error::io("lock segment", path, e))
}

/// Opens the active file that `state` names, as segment `state.seq`, with
/// its shared lock. Called under the cut lock, so the file at the active
/// path is the one the state names unless a cut was interrupted or someone
/// else moved it: that is an error here.
pub(crate) fn open_followed(
    dir: &Dir,
    active: &str,
    state: CutState,
    now: Timestamp,
) -> Result<Segment, Error> {
    let path = dir.join(active);
    let file = dir
        .open_existing_append(active)
        .map_err(|e| Error::io("open active segment", &path, e))?;
    let seg = Segment::new_shared(state.seq, active.to_string(), file, now)
        .map_err(|e| Error::io("open active segment", &path, e))?;
    if seg.id.dev != state.dev || seg.id.ino != state.ino {
        return Err(Error::io(
            "open active segment",
            &path,
            io::Error::other(
                "it is not the file the cut file names (a cut was interrupted, or someone moved it); the processes writing the log repair this at their next check",
            ),
        ));
    }
    share_segment(&seg, &path)?;
    Ok(seg)
}

/// Joining a shared log (under the cut lock): the segment to start in.
/// Normally the active file the cut state names. If a process was killed
/// in the middle of a cut (the state names the prepared next segment, not
/// yet moved to the active path), the file still at the active path, as
/// the segment before it: the background thread finishes that cut at its
/// first check.
pub(crate) fn open_for_join(
    dir: &Dir,
    log: &str,
    state: CutState,
    now: Timestamp,
) -> Result<Segment, Error> {
    let active = name::active_file(log);
    let prepared = name::prepared_file(log, state.seq);
    let path = dir.join(&active);
    let is = |n: &str| {
        dir.stat(n)
            .ok()
            .flatten()
            .is_some_and(|i| i.dev == state.dev && i.ino == state.ino)
    };
    if is(&active) || !is(&prepared) || state.seq < 2 {
        return open_followed(dir, &active, state, now);
    }
    let file = dir
        .open_existing_append(&active)
        .map_err(|e| Error::io("open active segment", &path, e))?;
    let seg = Segment::new_shared(state.seq - 1, active, file, now)
        .map_err(|e| Error::io("open active segment", &path, e))?;
    share_segment(&seg, &path)?;
    Ok(seg)
}

/// Polls for an exclusive lock on `file` for up to `limit`. (A sleep in the
/// library: there is no event to wait for when another process releases a
/// flock, other than a blocking `flock` that nothing could bound.)
fn wait_exclusive(file: &File, limit: std::time::Duration) -> io::Result<bool> {
    let until = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if sys::flock(file, Flock::TryExclusive)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Takes the lock file of a shared log. Returns it and whether this
/// process is alone (then it holds the lock exclusively: it recovers, and
/// turns its lock into a shared one once the active file is in place).
/// Called under the cut lock.
pub(crate) fn take_shared_lock(dir: &Dir, cfg: &Config) -> Result<(File, bool), Error> {
    let lock_name = name::lock_file(&cfg.name);
    let path = dir.join(&lock_name);
    let err = |e| Error::io("lock log", &path, e);
    let file = dir.open_lock(&lock_name, cfg.file_mode).map_err(err)?;
    // This one is alone: it names itself in the lock file.
    let alone = |file: File| {
        let info = logcut_format::lock::LockInfo {
            pid: Some(std::process::id()),
            trigger: cfg.trigger.clone(),
            shared: true,
        };
        sys::rewrite(&file, info.encode().as_bytes())
            .map_err(|e| Error::io("write lock file", &path, e))?;
        Ok((file, true))
    };
    // See `take_lock` for why a busy lock is tried again for a while.
    for wait_ms in [0, 1, 2, 5, 10, 20, 50, 50, 50, 50] {
        if wait_ms > 0 {
            // A sleep in the library: there is no event to wait for when
            // another process releases a flock.
            std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        }
        if sys::flock(&file, Flock::TryExclusive).map_err(err)? {
            return alone(file);
        }
        if sys::flock(&file, Flock::TryShared).map_err(err)? {
            return Ok((file, false));
        }
        let info =
            logcut_format::lock::LockInfo::parse(&sys::read_small(&file).unwrap_or_default());
        if info.shared {
            // The last appender of the shared log is shutting down (it
            // holds the lock exclusively while it seals): wait for it (for
            // as long as a shutdown may take), then this one is alone.
            if !wait_exclusive(
                &file,
                cfg.shutdown_timeout + std::time::Duration::from_secs(5),
            )
            .map_err(err)?
            {
                break;
            }
            return alone(file);
        }
    }
    let info = logcut_format::lock::LockInfo::parse(&sys::read_small(&file).unwrap_or_default());
    let holder = info.pid.map_or_else(
        || "another appender".to_string(),
        |p| format!("process {p}"),
    );
    Err(Error::io(
        "lock log",
        &path,
        io::Error::new(
            io::ErrorKind::ResourceBusy,
            if info.shared {
                format!(
                    "log {:?} is held by {holder}, the last appender sharing it, which did not finish shutting down in time",
                    cfg.name
                )
            } else {
                format!(
                    "log {:?} is in use by {holder}, which does not share it (build both with shared(true))",
                    cfg.name
                )
            },
        ),
    ))
}
