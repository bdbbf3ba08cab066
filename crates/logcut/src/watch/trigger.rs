//! The trigger file (feature `trigger`): creating, writing, touching or
//! renaming a file onto a path rotates the appender.
//!
//! A thread of the appender owns a `notify` watcher and follows the path
//! through deletion and re-creation, of the file and of the directories
//! above it:
//!
//! - while the file exists, the file itself is watched (so a busy log in
//!   the same directory causes no events);
//! - while it does not, the nearest existing directory on its path is
//!   watched, and the watch moves down as directories appear;
//! - whenever the watch is moved or renewed and the file appeared, was
//!   replaced or changed since it was last seen, that is a trigger too (it
//!   may have been touched before the watch was in place);
//! - once a second, and after any event on the path or a directory above
//!   it, the watch is checked again, so a change the watcher could not
//!   report (an event queue overflow, a race with a re-creation) is caught.
//!
//! Triggers are merged by the appender (see `Requests::request_rotate`): a burst
//! produces at most one cut per record written.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode, ModifyKind},
};

use crate::{
    Error,
    context::{Requests, Watch},
};

/// How often the watch is checked again without an event.
const RESCAN: Duration = Duration::from_secs(1);

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// Events waiting for the trigger thread at most. A storm of touches
/// faster than the thread handles them (a loop in a script, a hostile
/// user) would otherwise queue without bound; past this, events are
/// dropped and stand for one rescan (`Follower::overflow`), which fires if
/// the file changed: that loses nothing, since triggers that arrive before
/// the cut are merged anyway.
const EVENTS: usize = 1024;

pub(crate) struct TriggerWatch {
    tx: mpsc::SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// What is watched: a path and the identity of what was there.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// The trigger file itself, not a directory above it.
    is_file: bool,
}

struct Follower {
    path: PathBuf,
    watcher: RecommendedWatcher,
    target: Option<Target>,
    sh: Weak<dyn Requests>,
    /// An error was reported and not yet followed by a success: report the
    /// next one only after the watch worked again.
    failing: bool,
    /// The trigger file as last seen (identity and change time), to tell
    /// whether it appeared or changed while the watch was being moved.
    seen: Option<Stamp>,
    /// The first watch is set up (changes before it are not triggers).
    started: bool,
    /// Set by the watcher when it dropped events (the queue was full).
    overflow: Arc<AtomicBool>,
}

/// Identity, change and modification time and length of the trigger file. The change
/// time tells a file created again under a reused inode number from the one
/// deleted; the modification time, which a touch sets to the nanosecond,
/// tells two touches apart within one tick of the kernel's coarse clock.
type Stamp = (u64, u64, i64, i64, i64, i64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let md = std::fs::symlink_metadata(path).ok()?;
    (!md.file_type().is_symlink() && !md.is_dir()).then(|| {
        (
            md.dev(),
            md.ino(),
            md.ctime(),
            md.ctime_nsec(),
            md.mtime(),
            md.mtime_nsec(),
            md.len(),
        )
    })
}

impl TriggerWatch {
    pub(crate) fn start(path: PathBuf, sh: Arc<dyn Requests>) -> Result<TriggerWatch, Error> {
        let (tx, rx) = mpsc::sync_channel(EVENTS);
        let events = tx.clone();
        let overflow = Arc::new(AtomicBool::new(false));
        let dropped = Arc::clone(&overflow);
        let watcher = notify::recommended_watcher(move |ev| {
            if let Err(mpsc::TrySendError::Full(_)) = events.try_send(Msg::Event(ev)) {
                // Relaxed: a flag the trigger thread swaps after each
                // message; the channel orders the rest.
                dropped.store(true, Ordering::Relaxed);
            }
        })
        .map_err(|e| Error::io("watch trigger file", &path, into_io(e)))?;
        let mut f = Follower {
            path: path.clone(),
            watcher,
            target: None,
            sh: Arc::downgrade(&sh),
            failing: false,
            seen: None,
            started: false,
            overflow,
        };
        // The first watch is set up before `build` returns: a trigger right
        // after it is seen.
        f.rewatch(false)
            .map_err(|e| Error::io("watch trigger file", &path, into_io(e)))?;
        let thread = std::thread::Builder::new()
            .name(format!("logcut-trigger-{}", sh.context().cfg.name))
            .spawn(move || f.run(rx))
            .map_err(|e| Error::io("start trigger thread", &path, e))?;
        Ok(TriggerWatch {
            tx,
            thread: Some(thread),
        })
    }
}

impl Watch for TriggerWatch {
    fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TriggerWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Follower {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            // Relaxed: see the store in `start`.
            if self.overflow.swap(false, Ordering::Relaxed) {
                // Dropped events: look again (and set the watch up again,
                // in case one of them was a removal). It fires if the file
                // changed since it was last seen: one trigger for all the
                // dropped touches, none for events on other files (a busy
                // directory watched while the file does not exist).
                self.follow(true);
            }
            match rx.recv_timeout(RESCAN) {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Event(Ok(ev))) => {
                    let on_path = ev.paths.contains(&self.path);
                    let fires = on_path
                        && matches!(
                            ev.kind,
                            EventKind::Create(_)
                                | EventKind::Modify(_)
                                | EventKind::Access(AccessKind::Close(AccessMode::Write))
                        );
                    // Removing the file changes its link count (an
                    // attribute event on the file): not a trigger.
                    let fires = fires
                        && (!matches!(ev.kind, EventKind::Modify(ModifyKind::Metadata(_)))
                            || std::fs::symlink_metadata(&self.path).is_ok());
                    // One touch makes several events (create or open, set
                    // the time, close), which can come apart: with records
                    // written in between they would cut twice. An event
                    // that finds the file as this watch last saw it (when
                    // it fired, or looked) is part of a touch already
                    // taken. A new touch sets a new modification time (to
                    // the nanosecond), a write a new length: a trigger
                    // again.
                    let now = stamp(&self.path);
                    let fires = fires && (self.seen.is_none() || now != self.seen);
                    if fires || ev.need_rescan() {
                        // The stamp this trigger stands for, taken before
                        // the cut it asks for: a touch that comes while it
                        // is served has a newer one, and fires in its turn
                        // (a stamp read after firing would take it for
                        // this one, and swallow it).
                        self.seen = now;
                        self.fire();
                    }
                    // Only events on the path or a directory above it can
                    // change what must be watched (a busy log in the same
                    // directory costs no `stat`).
                    // After a removal event `notify` drops the watch of that
                    // path, and of every path below it, at the end of its
                    // batch of events, even if one is watched again
                    // meanwhile (a new file or directory by the same name):
                    // set ours up again, after that.
                    let removed = matches!(ev.kind, EventKind::Remove(_))
                        && self
                            .target
                            .as_ref()
                            .is_some_and(|t| ev.paths.iter().any(|p| t.path.starts_with(p)));
                    if ev.need_rescan() || ev.paths.iter().any(|p| self.path.starts_with(p)) {
                        // Not told that it fired: `seen` holds what it fired
                        // for, so a change the move of the watch finds is a
                        // later touch.
                        self.follow(removed);
                    }
                }
                Ok(Msg::Event(Err(e))) => {
                    self.report(e);
                    self.follow(true);
                }
                // Also renews the watch, in case one was dropped unseen.
                Err(mpsc::RecvTimeoutError::Timeout) => self.follow(true),
            }
        }
    }

    fn fire(&self) {
        if let Some(sh) = self.sh.upgrade() {
            if !sh.acts_on_triggers() {
                // Another appender sharing the log acts on this touch: one
                // touch, one cut.
                return;
            }
            sh.request_rotate();
        }
    }

    /// Moves the watch if needed; a trigger file that appeared, was
    /// replaced or changed since it was last seen fires.
    fn follow(&mut self, renew: bool) {
        match self.rewatch(renew) {
            Ok(true) => self.fire(),
            Ok(_) => self.failing = false,
            Err(e) => self.report(e),
        }
    }

    fn report(&mut self, e: notify::Error) {
        if self.failing {
            return;
        }
        self.failing = true;
        if let Some(sh) = self.sh.upgrade() {
            sh.context()
                .report(Error::io("watch trigger file", &self.path, into_io(e)));
        }
    }

    /// Watches the trigger file if it exists, else the nearest existing
    /// directory above it (`renew`: set the watch up again even if it has
    /// not changed). Returns true if the file appeared, was replaced or
    /// changed since it was last seen: a change the watch may have missed
    /// while it was being moved.
    fn rewatch(&mut self, renew: bool) -> notify::Result<bool> {
        let want = wanted(&self.path);
        if want != self.target {
            if let Some(old) = self.target.take() {
                // Gone already if it was deleted; nothing to undo then.
                let _ = self.watcher.unwatch(&old.path);
            }
            if let Some(w) = &want {
                self.watcher.watch(&w.path, RecursiveMode::NonRecursive)?;
            }
            self.target = want;
        } else if let (true, Some(t)) = (renew, &self.target) {
            // Adds to the watch if it is still there.
            self.watcher.watch(&t.path, RecursiveMode::NonRecursive)?;
        }
        // Looked at after the watch is in place: any later change is an
        // event.
        let now = stamp(&self.path);
        let changed = self.started && now.is_some() && now != self.seen;
        self.seen = now;
        self.started = true;
        Ok(changed)
    }
}

/// The trigger file if it is there (and not a symlink, which is not
/// followed), else the nearest existing directory above it.
fn wanted(path: &Path) -> Option<Target> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_symlink() && !md.is_dir() {
            return Some(Target {
                path: path.to_path_buf(),
                dev: md.dev(),
                ino: md.ino(),
                is_file: true,
            });
        }
    }
    path.ancestors().skip(1).find_map(|dir| {
        let md = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
        Some(Target {
            path: dir.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
            is_file: false,
        })
    })
}

fn into_io(e: notify::Error) -> std::io::Error {
    match e.kind {
        notify::ErrorKind::Io(io) => io,
        _ => std::io::Error::other(e.to_string()),
    }
}
