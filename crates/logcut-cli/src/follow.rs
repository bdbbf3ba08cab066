//! `logcut cat --follow`: print a log's records as they are written, across
//! rotations, with no byte skipped or printed twice.
//!
//! A segment is identified by its file (device and inode), never by its
//! name: a rotation moves the active file to its sealed name (a hard link,
//! then the next segment is renamed over the active path), and an open
//! descriptor keeps reading the same file wherever it moved, or after it was
//! removed. The follower reads one segment at a time through one open
//! descriptor:
//!
//! 1. It copies what the descriptor has, up to the end.
//! 2. While the file is still at the active path, more may come: it waits
//!    (polling every 100 ms) and goes back to 1.
//! 3. Once another file holds the active path, writes to the old one may
//!    still be finishing; its manifest `seal` entry says how many bytes it
//!    holds in the end, so the follower reads up to exactly that. (A file
//!    that left the directory altogether, such as the empty last segment
//!    removed at shutdown, ends at its end of file.)
//! 4. The next segment is the file after it in the log's order
//!    ([`logcut_format::segments`]), listed afresh: if several rotations
//!    happened meanwhile, their sealed segments come first, in order. A file
//!    opened by its path is checked against a second listing before a byte
//!    of it is printed, since the path may have moved to a newer file
//!    between the listing and the open.
//!
//! It stops on SIGINT or SIGTERM, or when standard output is closed.

use std::{
    collections::HashSet,
    fs::File,
    io::{self, Read, Write},
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use logcut_format::{SegmentFile, name::SealedName, segments};

/// How long to wait for news before looking again.
const POLL: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Look at the directory at least this often, even if nothing seems to
/// have changed.
const RELIST: Duration = Duration::from_secs(2);

/// A file's identity, whatever its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(md: &std::fs::Metadata) -> FileId {
        FileId {
            dev: md.dev(),
            ino: md.ino(),
        }
    }
}

/// One entry of a listing, with the identity of the file at its path then.
#[derive(Debug)]
struct Listed {
    seg: SegmentFile,
    id: FileId,
}

/// Where the follower stands in the log.
#[derive(Debug)]
enum Anchor {
    /// Nothing printed yet: the next segment is the first one not in this
    /// set (the segments `--since` left out).
    Start(HashSet<FileId>),
    /// The next segment is the one after this file, which ended. It stays
    /// open until the next one is found, so that its inode cannot be
    /// reused by a new file meanwhile (say, after retention removed it).
    After {
        id: FileId,
        seq: Option<u64>,
        _open: File,
    },
}

/// The segment being read.
struct Reading {
    file: File,
    /// For a compressed segment: its decompressed contents (`file` is the
    /// compressed file, kept open for its identity).
    decoded: Option<Box<dyn Read>>,
    id: FileId,
    /// Bytes printed from it.
    offset: u64,
    /// Its final length, once its manifest entry is known.
    end: Option<u64>,
    /// Its sequence number, once it has a sealed or prepared name.
    seq: Option<u64>,
}

/// Follows log `name` in `dir` from the first segment `start_with` selects
/// (given the first listing, in log order), writing to `out`, until `stop`
/// is set or `out` is closed.
pub(crate) fn follow(
    dir: &Path,
    name: &str,
    start_with: impl FnOnce(&[SegmentFile]) -> Vec<bool>,
    out: &mut impl Write,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let mut f = Follower {
        dir,
        name,
        active: dir.join(logcut_format::name::active_file(name)),
        manifest: dir.join(logcut_format::name::manifest_file(name)),
        buf: vec![0; 256 << 10],
        ahead: Vec::new(),
        said_missing: false,
        idle: false,
        stamp: None,
        stamp_at: Instant::now(),
    };
    let first = f.list()?;
    let segs: Vec<SegmentFile> = first.iter().map(|l| l.seg.clone()).collect();
    let selected = start_with(&segs);
    // `--since` selects a suffix of the log (spans only grow); everything
    // before its first segment is skipped.
    let skip = first
        .iter()
        .zip(&selected)
        .take_while(|(_, sel)| !**sel)
        .map(|(l, _)| l.id)
        .collect();
    f.run(Anchor::Start(skip), out, &stop)
}

struct Follower<'a> {
    dir: &'a Path,
    name: &'a str,
    active: PathBuf,
    manifest: PathBuf,
    buf: Vec<u8>,
    /// Sealed segments recorded in the manifest that follow the one being
    /// read, from the last listing, next one last. Their order is final,
    /// so a long backlog is read without listing the directory again for
    /// every segment.
    ahead: Vec<Listed>,
    /// Whether the user was told that the directory is missing.
    said_missing: bool,
    /// Whether the last listing found nothing new: then the next one is
    /// made only if the directory or the manifest changed (see
    /// [`Follower::worth_listing`]).
    idle: bool,
    /// What the directory looked like before the last listing, and when.
    stamp: Option<Stamp>,
    stamp_at: Instant,
}

/// What changes when segments are created, moved or recorded: the
/// directory's and the manifest's modification times and the manifest's
/// length, and the file at the active path.
type Stamp = [i64; 6];

impl Follower<'_> {
    fn run(&mut self, mut anchor: Anchor, out: &mut impl Write, stop: &AtomicBool) -> Result<()> {
        let mut cur: Option<Reading> = None;
        while !stop.load(Ordering::Relaxed) {
            let Some(r) = cur.as_mut() else {
                cur = self.open_next(&anchor)?;
                if cur.is_none() && wait(out)? {
                    return Ok(());
                }
                continue;
            };
            self.copy(r, out)?;
            if !self.ended(r)? {
                if wait(out)? {
                    return Ok(());
                }
                continue;
            }
            // One last read: bytes written between the copy and the check
            // belong to this segment.
            self.copy(r, out)?;
            if let Some(done) = cur.take() {
                anchor = Anchor::After {
                    id: done.id,
                    seq: done.seq,
                    _open: done.file,
                };
            }
        }
        Ok(())
    }

    /// Returns true if and only if listing the directory again may show
    /// something new. Listing reads the whole manifest, so while nothing
    /// happens the follower only compares a [`Stamp`]; it lists anyway
    /// every [`RELIST`], in case a change fell within the file system's
    /// timestamp granularity.
    fn worth_listing(&mut self) -> bool {
        let now = self.stamp();
        let fresh = !self.idle || self.stamp != Some(now) || self.stamp_at.elapsed() >= RELIST;
        if fresh {
            self.stamp = Some(now);
            self.stamp_at = Instant::now();
        }
        fresh
    }

    fn stamp(&self) -> Stamp {
        let times = |p: &Path| {
            std::fs::symlink_metadata(p).map_or([0; 3], |m| {
                [
                    m.mtime(),
                    m.mtime_nsec(),
                    i64::try_from(m.size()).unwrap_or(-1),
                ]
            })
        };
        let [dir_s, dir_ns, _] = times(self.dir);
        let [man_s, man_ns, man_len] = times(&self.manifest);
        let active = std::fs::symlink_metadata(&self.active)
            .map_or(0, |m| i64::try_from(m.ino()).unwrap_or(-1));
        [dir_s, dir_ns, man_s, man_ns, man_len, active]
    }

    /// The log's segments now, in order, each with its file's identity.
    /// Files that vanish while listing are left out.
    fn list(&mut self) -> Result<Vec<Listed>> {
        // Like `tail -F`, wait for a log that does not exist yet (say
        // that once), rather than fail.
        if !self.dir.exists() {
            if !self.said_missing {
                eprintln!(
                    "logcut: {} does not exist (yet); waiting for it",
                    self.dir.display()
                );
                self.said_missing = true;
            }
            return Ok(Vec::new());
        }
        let segs = segments(self.dir, self.name).with_context(|| {
            format!(
                "cannot list the segments of {} in {}",
                self.name,
                self.dir.display()
            )
        })?;
        Ok(segs
            .into_iter()
            .filter_map(|seg| {
                let md = std::fs::symlink_metadata(&seg.path).ok()?;
                Some(Listed {
                    id: FileId::of(&md),
                    seg,
                })
            })
            .collect())
    }

    /// Index in `list` of the segment that follows `anchor`, if there is one
    /// yet.
    fn next_index(&self, list: &[Listed], anchor: &Anchor) -> Option<usize> {
        match anchor {
            Anchor::Start(skip) => list.iter().position(|l| !skip.contains(&l.id)),
            Anchor::After { id, seq, .. } => {
                if let Some(i) = list.iter().rposition(|l| l.id == *id) {
                    return (i + 1 < list.len()).then_some(i + 1);
                }
                // The file left the directory (removed at shutdown because
                // it was empty, or by retention): newer sealed segments
                // come first, then the active one.
                list.iter().position(|l| match (self.seq_of(&l.seg), seq) {
                    // `>=`: a session that removed its empty last segment
                    // reuses that segment's number for its successor.
                    (Some(s), Some(prev)) if !l.seg.active => s >= *prev,
                    _ => l.seg.active,
                })
            }
        }
    }

    /// The sequence number in a sealed or prepared segment's name.
    fn seq_of(&self, seg: &SegmentFile) -> Option<u64> {
        if let Some(s) = &seg.seal {
            return Some(s.seq);
        }
        let file = seg.path.file_name()?.to_str()?;
        SealedName::parse(self.name, file)
            .map(|n| n.seq)
            .or_else(|| logcut_format::name::parse_prepared(self.name, file))
    }

    /// Opens the segment after `anchor`, or `None` if there is none yet.
    fn open_next(&mut self, anchor: &Anchor) -> Result<Option<Reading>> {
        let l = match self.ahead.pop() {
            Some(l) => l,
            None => {
                if !self.worth_listing() {
                    return Ok(None);
                }
                let mut list = self.list()?;
                let Some(i) = self.next_index(&list, anchor) else {
                    self.idle = true;
                    return Ok(None);
                };
                self.idle = false;
                let sealed = list[i + 1..]
                    .iter()
                    .take_while(|l| l.seg.seal.is_some())
                    .count();
                self.ahead = list.drain(i + 1..i + 1 + sealed).rev().collect();
                list.swap_remove(i)
            }
        };
        let file = match logcut_format::open_nofollow(&l.seg.path) {
            Ok(f) => f,
            // It moved or went between the listing and the open: list again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ahead.clear();
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", l.seg.path.display()));
            }
        };
        let md = file
            .metadata()
            .with_context(|| format!("cannot read {}", l.seg.path.display()))?;
        let id = FileId::of(&md);
        if l.seg.seal.is_none() {
            // Its path may have moved on to a newer file since the listing:
            // take it only if a listing made after the open still puts this
            // very file next.
            let again = self.list()?;
            match self.next_index(&again, anchor) {
                Some(j) if again[j].id == id => {}
                _ => return Ok(None),
            }
        } else if id != l.id {
            self.ahead.clear();
            return Ok(None);
        }
        // A compressed segment is final: read it through its decoder.
        let decoded = match l.seg.codec {
            Some(_) => Some(
                l.seg
                    .open()
                    .with_context(|| format!("cannot read {}", l.seg.path.display()))?,
            ),
            None => None,
        };
        Ok(Some(Reading {
            file,
            decoded,
            id,
            offset: 0,
            end: l.seg.seal.as_ref().map(|s| s.bytes),
            seq: self.seq_of(&l.seg),
        }))
    }

    /// Copies what `r` holds beyond what was printed (up to its final
    /// length, if known) to `out`.
    fn copy(&mut self, r: &mut Reading, out: &mut impl Write) -> Result<()> {
        let mut wrote = false;
        loop {
            let room = match r.end {
                Some(end) => end.saturating_sub(r.offset).min(self.buf.len() as u64) as usize,
                None => self.buf.len(),
            };
            if room == 0 {
                break;
            }
            let read = match &mut r.decoded {
                Some(d) => d.read(&mut self.buf[..room]),
                None => r.file.read(&mut self.buf[..room]),
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read the segment being followed"),
            };
            out.write_all(&self.buf[..n])?;
            r.offset += n as u64;
            wrote = true;
        }
        if wrote {
            out.flush()?;
        }
        Ok(())
    }

    /// Returns true if and only if nothing more will be written to `r`
    /// beyond what was read, updating what is known about it.
    fn ended(&mut self, r: &mut Reading) -> Result<bool> {
        if let Some(end) = r.end {
            return Ok(r.offset >= end);
        }
        let at_active =
            std::fs::symlink_metadata(&self.active).is_ok_and(|md| FileId::of(&md) == r.id);
        if at_active || !self.worth_listing() {
            return Ok(false);
        }
        let list = self.list()?;
        let ended = match list.iter().rev().find(|l| l.id == r.id) {
            Some(l) => {
                r.seq = self.seq_of(&l.seg).or(r.seq);
                match &l.seg.seal {
                    Some(s) => {
                        r.end = Some(s.bytes);
                        r.offset >= s.bytes
                    }
                    // Sealed by name but not recorded yet, or a prepared
                    // segment not installed yet: writes may still come.
                    None => false,
                }
            }
            // Gone from the directory: nobody writes to it any more.
            None => true,
        };
        self.idle = !ended && r.end.is_none();
        Ok(ended)
    }
}

/// Waits for news; returns true if and only if standard output was closed
/// (then there is no one left to print for).
fn wait(out: &mut impl Write) -> Result<bool> {
    out.flush()?;
    let stdout = io::stdout();
    let fd = stdout.as_fd();
    // No events asked for: poll reports only an error or hang-up, which is
    // how a pipe says its reader went away.
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::empty(),
    )];
    match rustix::event::poll(&mut fds, Some(&POLL)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
        Ok(_) => Ok(fds[0]
            .revents()
            .intersects(rustix::event::PollFlags::ERR | rustix::event::PollFlags::HUP)),
        Err(e) => Err(io::Error::from(e)).context("cannot wait for the log to grow"),
    }
}
