//! `logcut cat --follow`: print a log's records as they are written, across
//! rotations, compression and retention, each byte once and in order.
//!
//! # Which segment comes next
//!
//! A segment is identified by its sequence number, never by a file name or
//! an inode alone: the active file `app.log` becomes
//! `app.<start>.<seq>.log` at a cut, which may become
//! `app.<start>.<seq>.log.zst` (a new file, with a new inode) once
//! compressed, and the original is then removed; all three are the same
//! segment. The follower keeps one number, `done`: every segment up to it
//! was printed (or reported, see below). The next segment is the one with
//! the smallest sequence number above `done` that the manifest (`seal`,
//! `delete` entries) or a sealed file name in the directory knows of, or,
//! if there is none, the file at the active path. In a shared log, where
//! several processes seal segments in any order, names are given in cut
//! order, so this is still the log's order.
//!
//! # Reading one segment
//!
//! The follower reads a segment through one open descriptor, so whatever
//! happens to its name afterwards changes nothing about what it reads:
//!
//! - **Renamed** (a cut: the active file linked to its sealed name, then
//!   the next segment renamed over the active path; or, at shutdown, the
//!   active file renamed): the descriptor reads on.
//! - **Compressed** (`.zst`/`.gz` written, recorded, original removed):
//!   the descriptor of the original reads on; a segment not opened yet is
//!   opened under whichever name holds it, decompressed on the way.
//! - **Removed** (the original after compression, or the segment deleted
//!   by retention while being read): the descriptor keeps the file alive,
//!   so nothing is lost.
//! - **Deleted by retention before it was opened**: it cannot be printed;
//!   see below.
//!
//! A segment ends at the length its manifest `seal` entry records (writes
//! to it may finish after it left the active path; in a shared log, other
//! processes may write it until they all left it). Until then the follower
//! waits (polling every 100 ms). A sealed segment is final and is read
//! straight to that length. In a shared log, a cut segment whose seal is
//! not recorded yet also ends once every writer has left it (each holds a
//! shared `flock` on it until then; the follower tries an exclusive one and
//! drops it at once): its seal may never come if the process that cut it
//! was killed or gave up at its shutdown, and the segments after it must
//! not wait for that.
//!
//! The file at the active path has no sequence number in its name. Once
//! another file holds the active path, the follower learns the number of
//! the one it reads from the sealed name of the same file (device and
//! inode). If no name in the directory is that file any more (it was
//! sealed, compressed and its original removed, or deleted by retention,
//! before the follower looked), the manifest tells: it is the segment with
//! the smallest sequence number above `done` whose seal records exactly the
//! length and CRC-32 of what was read. A file that left the directory with
//! nothing in it and no seal (the empty last segment a writer removes at
//! shutdown) just ends.
//!
//! # Segments that cannot be printed
//!
//! A segment not opened yet whose `delete` entry is in the manifest and
//! whose files are gone was deleted by retention before the follower
//! could read it. The follower says so on standard error, one line naming
//! the segment and its record count from the manifest, and counts it; so
//! it does for a recorded segment whose file left the directory (moved
//! away by someone else: `file=-`, or removed). On exit it prints the
//! totals if there were any. Segments already deleted or missing when the
//! follower starts are not part of what it follows (as for `cat`), and are
//! not reported.
//!
//! # Ending
//!
//! It stops on SIGINT or SIGTERM, or when standard output is closed; with
//! `--until-closed`, also once every writer that opened the log (each
//! manifest `open` entry) has closed it (its `close` entry) and everything
//! they wrote was printed. A writer killed with SIGKILL writes no `close`
//! entry: the follower then waits for it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use logcut_format::{
    SegmentFile,
    codec::{CODECS, Codec},
    manifest::{self, Delete, Entry, Seal},
    name::{self, SealedName},
    open_nofollow,
};

/// How long to wait for news before looking again.
const POLL: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Look at the directory at least this often, even if nothing seems to
/// have changed.
const RELIST: Duration = Duration::from_secs(2);

/// How the follower ends, besides a signal or a closed output.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options<'a> {
    /// Stop once every writer of the log has closed it and everything was
    /// printed.
    pub(crate) until_closed: bool,
    /// `--cursor FILE`: start where it says, and keep it up to date.
    pub(crate) cursor: Option<&'a Path>,
    /// Bytes written to the output that its reader has not read yet (see
    /// [`crate::cursor`]); `None` from the function: unknown. Without it,
    /// none are counted.
    pub(crate) unread: Option<fn() -> Option<u64>>,
    /// `--replay`: how far behind what the reader read the cursor stays.
    pub(crate) replay: u64,
}

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

/// Follows log `name` in `dir` from the first segment `start_with` selects
/// (given the first listing, in log order), writing to `out`, until `stop`
/// is set, `out` is closed or (with `opts.until_closed`) every writer has
/// closed the log.
pub(crate) fn follow(
    dir: &Path,
    name: &str,
    start_with: impl FnOnce(&[SegmentFile]) -> Vec<bool>,
    opts: Options<'_>,
    out: &mut impl Write,
) -> Result<()> {
    name::validate_name(name).map_err(|m| anyhow::anyhow!(m))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let mut f = Follower {
        dir,
        name,
        active: dir.join(name::active_file(name)),
        manifest: dir.join(name::manifest_file(name)),
        opts,
        buf: vec![0; 256 << 10],
        journal: Journal::default(),
        names: BTreeMap::new(),
        active_id: None,
        looks: 0,
        said_missing: false,
        stamp: None,
        stamp_at: Instant::now(),
        done: None,
        silent: BTreeSet::new(),
        suspect: None,
        lost_segments: 0,
        lost_records: 0,
        lost_unknown: 0,
        last_live: None,
        closed_seen: false,
        progress: false,
        cursor: None,
        resume: None,
        trail: crate::cursor::Trail::default(),
    };
    let saved = match opts.cursor {
        Some(path) => {
            let c = crate::cursor::Cursor::new(path, name);
            let saved = c.load()?;
            f.cursor = Some(c);
            saved
        }
        None => None,
    };
    f.start(start_with)?;
    if let Some(saved) = saved {
        // Everything before the segment the cursor is in was printed.
        let before = saved.next.map(|n| n.checked_sub(1)).unwrap_or(saved.done);
        if let Some(d) = saved.done.max(before) {
            f.advance(d);
        }
        f.resume = Some(saved);
    }
    let res = f.run(out, &stop);
    // Once more on the way out: the reader may have read more since the
    // last save, or have gone with bytes unread.
    let saved = f.save_cursor(None, true);
    if f.lost_segments > 0 {
        let unknown = if f.lost_unknown > 0 {
            format!(" (and {} of unknown count)", f.lost_unknown)
        } else {
            String::new()
        };
        eprintln!(
            "logcut: {} records in {} segments{unknown} could not be printed: deleted or moved \
             away before they were read",
            f.lost_records, f.lost_segments
        );
    }
    res.and(saved)
}

/// What the manifest says, read incrementally: it is append-only, so each
/// look reads only what was appended since the last one.
#[derive(Debug, Default)]
struct Journal {
    /// The manifest file read so far (a new file is read from its start).
    id: Option<FileId>,
    /// Bytes of it consumed: whole lines only.
    offset: u64,
    header: bool,
    /// Seals above the follower's `done`, by sequence number.
    seals: BTreeMap<u64, Seal>,
    /// Deletions by retention above `done`.
    deleted: BTreeMap<u64, Delete>,
    /// Compressed file names above `done`.
    compressed: HashMap<u64, String>,
    /// Sessions opened and not closed yet.
    open: HashSet<String>,
    /// Sessions opened, in all.
    opened: u64,
}

impl Journal {
    /// Reads what was appended to the manifest at `path` since the last
    /// call. Entries at or below `done` are not kept.
    fn refresh(&mut self, path: &Path, done: Option<u64>) -> Result<()> {
        let mut f = match open_nofollow(path) {
            Ok(f) => f,
            // Not written yet (or removed by someone): what was read stays.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let md = f
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        let id = FileId::of(&md);
        if self.id != Some(id) || md.len() < self.offset {
            // Another file: read it from its start.
            *self = Journal {
                id: Some(id),
                ..Journal::default()
            };
        }
        if md.len() == self.offset {
            return Ok(());
        }
        let mut text = Vec::with_capacity((md.len() - self.offset) as usize);
        f.seek(SeekFrom::Start(self.offset))
            .and_then(|_| f.read_to_end(&mut text))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut pos = 0;
        while let Some(nl) = memchr::memchr(b'\n', &text[pos..]) {
            let line = &text[pos..pos + nl];
            let next = pos + nl + 1;
            if !self.header {
                if line != manifest::HEADER.as_bytes() {
                    bail!(
                        "{} is not a logcut manifest (its first line is not {:?})",
                        path.display(),
                        manifest::HEADER
                    );
                }
                self.header = true;
            } else {
                match std::str::from_utf8(line).map(manifest::parse_line) {
                    Ok(Ok(Some(e))) => self.apply(e, done),
                    Ok(Ok(None)) => {}
                    // A line that cannot be trusted. The last one may be
                    // torn by a crash, and cut off by the next start: read
                    // it again next time, unless more lines follow it.
                    _ if !text[next..].contains(&b'\n') => break,
                    _ => {}
                }
            }
            pos = next;
        }
        self.offset += pos as u64;
        Ok(())
    }

    fn apply(&mut self, e: Entry, done: Option<u64>) {
        let above = |seq: u64| done.is_none_or(|d| seq > d);
        match e {
            Entry::Open(o) => {
                self.opened += 1;
                self.open.insert(o.session);
            }
            Entry::Close(c) => {
                self.open.remove(&c.session);
            }
            Entry::Seal(s) if above(s.seq) => {
                self.seals.insert(s.seq, s);
            }
            Entry::Delete(d) if above(d.seq) => {
                self.deleted.insert(d.seq, d);
            }
            Entry::Compress(c) if above(c.seq) => {
                self.compressed.insert(c.seq, c.file);
            }
            _ => {}
        }
    }

    /// Forgets what concerns segments up to `done`.
    fn forget_through(&mut self, done: u64) {
        let Some(lo) = done.checked_add(1) else {
            return;
        };
        self.seals = self.seals.split_off(&lo);
        self.deleted = self.deleted.split_off(&lo);
        self.compressed.retain(|seq, _| *seq >= lo);
    }

    /// Every writer that opened the log has closed it.
    fn closed(&self) -> bool {
        self.opened > 0 && self.open.is_empty()
    }
}

/// Where the records of the segment being read come from.
enum Source {
    Plain(File),
    Decoded(Box<dyn Read>),
}

/// The segment being read.
struct Reading {
    src: Source,
    /// What it was opened as, for messages.
    label: String,
    /// For the file opened at the active path: its identity.
    live: Option<FileId>,
    /// Its sequence number, once known.
    seq: Option<u64>,
    /// Its final length, once its seal is known.
    end: Option<u64>,
    /// Bytes read from it (printed, or skipped: see `skip`).
    offset: u64,
    /// Bytes at its start printed before (a cursor's): read, not printed,
    /// but for the line the cursor falls in, which is printed whole.
    skip: u64,
    /// The bytes before `skip` since the last newline there: printed
    /// first once `skip` is reached (up to [`LINE_CARRY`]).
    carry: Vec<u8>,
    /// CRC-32 of those bytes.
    crc: crc32fast::Hasher,
    /// A compressed stream ended.
    eof: bool,
}

/// What [`Follower::pick`] found.
enum Pick {
    Got(Reading),
    /// Something changed under the listing: look again at once.
    Again,
    /// Nothing to read yet.
    Nothing,
}

struct Follower<'a> {
    dir: &'a Path,
    name: &'a str,
    active: PathBuf,
    manifest: PathBuf,
    opts: Options<'a>,
    buf: Vec<u8>,
    journal: Journal,
    /// Sealed-looking files in the directory above `done` at the last look,
    /// by sequence number: name, and codec if compressed.
    names: BTreeMap<u64, Vec<(String, Option<Codec>)>>,
    /// The file at the active path at the last look.
    active_id: Option<FileId>,
    /// Looks taken so far.
    looks: u64,
    /// Whether the user was told that the directory is missing.
    said_missing: bool,
    /// What the directory looked like at the last look, and when.
    stamp: Option<Stamp>,
    stamp_at: Instant,
    /// Every segment up to this sequence number was printed, reported, or
    /// left out at the start.
    done: Option<u64>,
    /// Segments above `done` left out at the start (`--since`, or gone).
    silent: BTreeSet<u64>,
    /// A recorded segment found without a file, and the look that found it:
    /// reported if a later look confirms it.
    suspect: Option<(u64, u64)>,
    lost_segments: u64,
    lost_records: u64,
    lost_unknown: u64,
    /// The last file read at the active path, kept open so that its inode
    /// is not reused for another file meanwhile.
    last_live: Option<(FileId, File)>,
    /// `--until-closed`: the last wait found every writer gone.
    closed_seen: bool,
    /// Something was printed or a segment finished since the last wait.
    progress: bool,
    /// `--cursor`: saved after each flush.
    cursor: Option<crate::cursor::Cursor>,
    /// Where a saved cursor says to resume, until the first segment is
    /// picked.
    resume: Option<crate::cursor::Saved>,
    /// Where the output of this run came from (for the cursor).
    trail: crate::cursor::Trail,
}

/// What changes when segments are created, moved or recorded: the
/// directory's and the manifest's modification times and the manifest's
/// length, and the file at the active path.
type Stamp = [i64; 6];

impl Follower<'_> {
    /// The lowest sequence number not done.
    fn lo(&self) -> u64 {
        self.done.map_or(0, |d| d.saturating_add(1))
    }

    /// Decides where to start: everything before the first segment
    /// `start_with` selects, and whatever is already gone, is left out.
    fn start(&mut self, start_with: impl FnOnce(&[SegmentFile]) -> Vec<bool>) -> Result<()> {
        self.look(true)?;
        let mut seqs: BTreeSet<u64> = self.journal.seals.keys().copied().collect();
        seqs.extend(self.journal.deleted.keys());
        seqs.extend(self.names.keys());
        let mut segs = Vec::new();
        let mut segs_seq = Vec::new();
        for &seq in &seqs {
            let found = if self.journal.deleted.contains_key(&seq) {
                None
            } else {
                self.candidates(seq).into_iter().find(|(p, _)| is_file(p))
            };
            match found {
                Some((path, codec)) => {
                    segs.push(SegmentFile {
                        path,
                        seal: self.journal.seals.get(&seq).cloned(),
                        active: false,
                        codec,
                    });
                    segs_seq.push(seq);
                }
                // Deleted or missing already: not part of the log any more.
                None => {
                    self.silent.insert(seq);
                }
            }
        }
        if self.active_id.is_some() {
            segs.push(SegmentFile {
                path: self.active.clone(),
                seal: None,
                active: true,
                codec: None,
            });
        }
        let selected = start_with(&segs);
        for (seq, sel) in segs_seq.iter().zip(&selected) {
            if !sel {
                self.silent.insert(*seq);
            }
        }
        // The left-out segments before the first one kept are simply done.
        for &seq in &seqs {
            if !self.silent.remove(&seq) {
                break;
            }
            self.done = Some(seq);
        }
        if let Some(done) = self.done {
            self.journal.forget_through(done);
            self.names = self.names.split_off(&self.lo());
        }
        Ok(())
    }

    fn run(&mut self, out: &mut impl Write, stop: &AtomicBool) -> Result<()> {
        let mut cur: Option<Reading> = None;
        while !stop.load(Ordering::Relaxed) {
            match cur.as_mut() {
                None => match self.pick()? {
                    Pick::Got(mut r) => {
                        if let Some(saved) = self.resume.take() {
                            // The segment the cursor was in (its number
                            // unknown if it was the active one).
                            if saved.next.is_none() || r.seq.is_none() || saved.next == r.seq {
                                r.skip = saved.offset;
                            }
                        }
                        cur = Some(r);
                        self.progress = true;
                        continue;
                    }
                    Pick::Again => continue,
                    Pick::Nothing => {}
                },
                Some(r) => {
                    self.copy(r, out)?;
                    if self.ended(r, out)? {
                        // One last read: bytes written between the copy and
                        // the check belong to this segment.
                        self.copy(r, out)?;
                        if let Some(r) = cur.take() {
                            self.finish(r);
                        }
                        self.save_cursor(None, false)?;
                        self.progress = true;
                        continue;
                    }
                }
            }
            if self.opts.until_closed && self.all_closed(cur.as_mut(), out)? {
                return Ok(());
            }
            if wait(out)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `--until-closed`: true once every writer closed the log and nothing
    /// is left to read. Two waits in a row must find them closed with no
    /// progress between: the second look lists the directory after the
    /// first one read the `close` entries, so it sees every segment they
    /// sealed.
    fn all_closed(&mut self, cur: Option<&mut Reading>, out: &mut impl Write) -> Result<bool> {
        if std::mem::take(&mut self.progress) {
            self.closed_seen = false;
        }
        self.look(true)?;
        if !self.journal.closed() {
            self.closed_seen = false;
            return Ok(false);
        }
        if !std::mem::replace(&mut self.closed_seen, true) {
            return Ok(false);
        }
        match cur {
            // Every writer left, yet this one is not finished (a segment
            // a writer failed to seal): it will not grow. It ends here, and
            // the follower goes on with what follows it.
            Some(r) => {
                self.copy(r, out)?;
                r.end = Some(r.offset);
                Ok(false)
            }
            None => Ok(self.next_seq().is_none() && !self.active_is_new()),
        }
    }

    /// A segment was read to its end.
    fn finish(&mut self, r: Reading) {
        if let (Some(id), Source::Plain(f)) = (r.live, r.src) {
            self.last_live = Some((id, f));
        }
        let Some(seq) = r.seq else {
            // Never sealed (the empty last segment removed at shutdown):
            // nothing to record.
            return;
        };
        // Segments between the last one done and this one were never seen
        // (moved away before they could be opened).
        let gap: Vec<u64> = self
            .journal
            .seals
            .range(self.lo()..seq)
            .map(|(s, _)| *s)
            .filter(|s| !self.silent.contains(s))
            .collect();
        for s in gap {
            let why = self.why_gone(s);
            self.report_lost(s, &why);
        }
        self.advance(seq);
    }

    fn advance(&mut self, seq: u64) {
        if self.done.is_some_and(|d| d >= seq) {
            return;
        }
        self.done = Some(seq);
        self.journal.forget_through(seq);
        self.names = self.names.split_off(&(seq.saturating_add(1)));
        self.silent = self.silent.split_off(&(seq.saturating_add(1)));
    }

    /// Returns true if and only if a new look was taken. Without `force`,
    /// a look is taken only if the directory, the manifest or the active
    /// path changed, or every [`RELIST`]: reading the directory costs more
    /// than comparing a [`Stamp`].
    fn look(&mut self, force: bool) -> Result<bool> {
        let now = self.stamp();
        if !force && self.stamp == Some(now) && self.stamp_at.elapsed() < RELIST {
            return Ok(false);
        }
        self.stamp = Some(now);
        self.stamp_at = Instant::now();
        self.looks += 1;
        // The order matters: the directory first, then the active path,
        // then the manifest. A segment is named before its seal is
        // recorded, and its deletion recorded before its files go, so a
        // recorded segment missing from the listing is known to be gone,
        // and one the manifest does not know yet is seen by its name.
        if !self.dir.exists() {
            // Like `tail -F`, wait for a log that does not exist yet (say
            // that once), rather than fail.
            if !self.said_missing {
                eprintln!(
                    "logcut: {} does not exist (yet); waiting for it",
                    self.dir.display()
                );
                self.said_missing = true;
            }
            self.names.clear();
            self.active_id = None;
            return Ok(true);
        }
        let lo = self.lo();
        let mut names: BTreeMap<u64, Vec<(String, Option<Codec>)>> = BTreeMap::new();
        // Inodes of plain sealed files, of any segment: a file at the
        // active path that is one of them is that sealed segment (kept
        // there after a shutdown, or for an instant during a cut).
        let mut sealed_inodes = std::collections::HashSet::new();
        let rd = std::fs::read_dir(self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?;
        for ent in rd {
            let ent = ent.with_context(|| format!("cannot list {}", self.dir.display()))?;
            // Regular files only (the type from the listing: a symlink is
            // never followed).
            if !ent.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Some(file) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let (base, codec) = match Codec::split(&file) {
                Some((b, c)) => (b, Some(c)),
                None => (file.as_str(), None),
            };
            if let Some(n) = SealedName::parse(self.name, base) {
                if codec.is_none() {
                    sealed_inodes.insert(std::os::unix::fs::DirEntryExt::ino(&ent));
                }
                if n.seq >= lo {
                    names.entry(n.seq).or_default().push((file.clone(), codec));
                }
            }
        }
        // Plain files first: reading them costs nothing to decode.
        for files in names.values_mut() {
            files.sort_by_key(|(f, c)| (c.is_some(), f.clone()));
        }
        self.names = names;
        self.active_id = std::fs::symlink_metadata(&self.active)
            .ok()
            .filter(|m| m.file_type().is_file())
            .filter(|m| m.nlink() == 1 || !sealed_inodes.contains(&m.ino()))
            .map(|m| FileId::of(&m));
        self.journal.refresh(&self.manifest, self.done)?;
        Ok(true)
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

    /// Whether the last look found a file at the active path that was not
    /// read already. (A file read there never comes back once it left,
    /// but one that stays after its writers left is read only once.)
    fn active_is_new(&self) -> bool {
        self.active_id
            .is_some_and(|id| self.last_live.as_ref().is_none_or(|(done, _)| *done != id))
    }

    /// The smallest sequence number above `done` that the last look knows.
    fn next_seq(&self) -> Option<u64> {
        let lo = self.lo();
        [
            self.journal.seals.range(lo..).next().map(|(s, _)| *s),
            self.journal.deleted.range(lo..).next().map(|(s, _)| *s),
            self.names.range(lo..).next().map(|(s, _)| *s),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The files that may hold segment `seq`'s records, plain ones first:
    /// for a recorded segment, the name its seal records and that name
    /// compressed; for one not recorded yet, the names the directory
    /// showed.
    fn candidates(&self, seq: u64) -> Vec<(PathBuf, Option<Codec>)> {
        let Some(seal) = self.journal.seals.get(&seq) else {
            return self
                .names
                .get(&seq)
                .into_iter()
                .flatten()
                .map(|(f, c)| (self.dir.join(f), *c))
                .collect();
        };
        // The manifest is data, not a path: only a sealed name of this log
        // is ever joined to the directory.
        let f = seal.file.as_str();
        if SealedName::parse(self.name, f).is_none() {
            return Vec::new();
        }
        let mut out = vec![(self.dir.join(f), None)];
        let recorded = self
            .journal
            .compressed
            .get(&seq)
            .and_then(|rec| Codec::split(rec).filter(|(b, _)| *b == f))
            .map(|(_, c)| c);
        // The codec the manifest records first, then any other (a
        // compression not recorded yet).
        for c in recorded.into_iter().chain(CODECS) {
            let p = (self.dir.join(c.compressed_name(f)), Some(c));
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Finds and opens the next segment.
    fn pick(&mut self) -> Result<Pick> {
        loop {
            let Some(seq) = self.next_seq() else {
                return self.pick_active();
            };
            if self.silent.remove(&seq) {
                self.advance(seq);
                continue;
            }
            // Whatever the manifest says, a file still there is read: even
            // a segment being deleted is printed whole once it is open.
            for (path, codec) in self.candidates(seq) {
                let file = match open_nofollow(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot open {}", path.display()));
                    }
                };
                let src = match codec {
                    None => Source::Plain(file),
                    Some(c) => Source::Decoded(
                        c.decoder(io::BufReader::new(file))
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    ),
                };
                return Ok(Pick::Got(Reading {
                    src,
                    label: path.display().to_string(),
                    live: None,
                    seq: Some(seq),
                    end: self.journal.seals.get(&seq).map(|s| s.bytes),
                    offset: 0,
                    skip: 0,
                    carry: Vec::new(),
                    crc: crc32fast::Hasher::new(),
                    eof: false,
                }));
            }
            if self.journal.deleted.contains_key(&seq) {
                let why = self.why_gone(seq);
                self.report_lost(seq, &why);
                self.advance(seq);
                continue;
            }
            if !self.journal.seals.contains_key(&seq) {
                // Only a name, gone since: renamed (compressed) or recorded
                // since the look. Look again.
                self.look(true)?;
                return Ok(Pick::Again);
            }
            // Recorded, not deleted, and no file: confirm with a later
            // look (a deletion recorded after this look's manifest read
            // may have removed it) before saying it is gone.
            match self.suspect {
                Some((s, at)) if s == seq && at < self.looks => {
                    self.suspect = None;
                    let why = self.why_gone(seq);
                    self.report_lost(seq, &why);
                    self.advance(seq);
                }
                _ => {
                    self.suspect = Some((seq, self.looks));
                    self.look(true)?;
                    return Ok(Pick::Again);
                }
            }
        }
    }

    /// No segment above `done` is known: the file at the active path is
    /// next, if there is one.
    fn pick_active(&mut self) -> Result<Pick> {
        if !self.active_is_new() {
            // Nothing in the last look: look again, if anything changed.
            if !self.look(false)? {
                return Ok(Pick::Nothing);
            }
            if self.next_seq().is_some() {
                return Ok(Pick::Again);
            }
            if !self.active_is_new() {
                return Ok(Pick::Nothing);
            }
        }
        let file = match open_nofollow(&self.active) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.look(true)?;
                return Ok(Pick::Again);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", self.active.display()));
            }
        };
        let id = FileId::of(
            &file
                .metadata()
                .with_context(|| format!("cannot read {}", self.active.display()))?,
        );
        // The path may have moved on since the look: take this file only
        // if a look made after the open still finds it there, with no
        // segment before it. Every segment cut before it was named by
        // then, so its sequence number is above all those listed.
        self.look(true)?;
        if self.next_seq().is_some() || self.active_id != Some(id) {
            return Ok(Pick::Again);
        }
        if !self.active_is_new() {
            return Ok(Pick::Nothing);
        }
        Ok(Pick::Got(Reading {
            src: Source::Plain(file),
            label: self.active.display().to_string(),
            live: Some(id),
            seq: None,
            end: None,
            offset: 0,
            skip: 0,
            carry: Vec::new(),
            crc: crc32fast::Hasher::new(),
            eof: false,
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
            if room == 0 || r.eof {
                break;
            }
            let read = match &mut r.src {
                Source::Plain(f) => f.read(&mut self.buf[..room]),
                Source::Decoded(d) => d.read(&mut self.buf[..room]),
            };
            let n = match read {
                Ok(0) => {
                    // A compressed stream is whole: its end is final.
                    r.eof = matches!(r.src, Source::Decoded(_));
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", r.label)),
            };
            // Bytes a cursor says were printed before are read, for the
            // checksum, not printed again.
            let from = usize::try_from(r.skip.saturating_sub(r.offset)).map_or(n, |s| s.min(n));
            carry_line(&mut r.carry, &self.buf[..from]);
            if from < n && !r.carry.is_empty() {
                // A restart goes on with whole lines: a shipper that was
                // stopped dropped the part of a line it had.
                let carry = std::mem::take(&mut r.carry);
                let at = r.offset + from as u64 - carry.len() as u64;
                write_noted(&mut self.trail, self.done, r.seq, at, &carry, out)?;
            }
            let at = r.offset + from as u64;
            write_noted(
                &mut self.trail,
                self.done,
                r.seq,
                at,
                &self.buf[from..n],
                out,
            )?;
            r.crc.update(&self.buf[..n]);
            r.offset += n as u64;
            wrote |= from < n;
        }
        if wrote {
            out.flush()?;
            self.progress = true;
            self.save_cursor(Some(r), false)?;
        }
        Ok(())
    }

    /// Saves the cursor (if there is one): where the reader got to, that
    /// is, what was written less what it has not read yet, less
    /// `--replay`; with nothing left unread and no replay, how far into
    /// `r` (the segment after `done`) the output is. `at_exit`: the
    /// reading under way is not at hand; the trail says where the output
    /// got to.
    fn save_cursor(&mut self, r: Option<&Reading>, at_exit: bool) -> Result<()> {
        let done = self.done;
        let Some(c) = self.cursor.as_mut() else {
            return Ok(());
        };
        let unread = match self.opts.unread {
            Some(f) => f(),
            None => Some(0),
        };
        let back = unread.map(|n| n.saturating_add(self.opts.replay));
        let at = match back {
            Some(0) if !at_exit => {
                let (next, offset) = r.map_or((None, 0), |r| (r.seq, r.offset));
                Some(crate::cursor::Saved { done, next, offset })
            }
            // Unknown, or further back than the trail goes: the last save
            // stays, which is no further than the reader got.
            None => None,
            Some(back) => self.trail.position(back),
        };
        match at {
            Some(at) => c.save(at),
            None => Ok(()),
        }
    }

    /// Returns true if and only if nothing more will be written to `r`
    /// beyond what was read, updating what is known about it.
    fn ended(&mut self, r: &mut Reading, out: &mut impl Write) -> Result<bool> {
        if let Some(end) = r.end {
            if r.eof && r.offset < end {
                eprintln!(
                    "logcut: {} ends after {} of the {end} bytes its seal records",
                    r.label, r.offset
                );
            }
            return Ok(r.offset >= end || r.eof);
        }
        if r.eof {
            return Ok(true);
        }
        if let Some(seq) = r.seq {
            return self.sealed_yet(r, seq);
        }
        let Some(id) = r.live else {
            return Ok(true);
        };
        // Cheap while it is the active file: one stat. With a second name
        // it may be sealed already (a cut under way, or a shutdown that
        // left the last segment at the active path): look.
        let at_active = std::fs::symlink_metadata(&self.active)
            .is_ok_and(|m| FileId::of(&m) == id && m.nlink() == 1);
        if at_active {
            return Ok(false);
        }
        self.look(true)?;
        if self.active_id == Some(id) {
            return Ok(false);
        }
        // Another file holds the active path: this one is sealed under
        // its name with its sequence number, if still there.
        for (&seq, files) in &self.names {
            for (f, c) in files {
                if c.is_none()
                    && std::fs::symlink_metadata(self.dir.join(f))
                        .is_ok_and(|m| FileId::of(&m) == id)
                {
                    r.seq = Some(seq);
                    return self.sealed_yet(r, seq);
                }
            }
        }
        // Gone from the directory: sealed, compressed and removed, or
        // deleted, before this look; or moved away by someone else; or
        // removed empty at shutdown. What it holds is all there is once
        // its seal is recorded: the seal with its length and checksum is
        // this one.
        self.copy(r, out)?;
        let crc = r.crc.clone().finalize();
        let lo = self.lo();
        let ours = self
            .journal
            .seals
            .range(lo..)
            .find(|(_, s)| s.bytes == r.offset && s.crc32 == crc)
            .map(|(seq, _)| *seq);
        if let Some(seq) = ours {
            r.seq = Some(seq);
            r.end = Some(r.offset);
            return Ok(true);
        }
        // No seal of it (yet): a file that held nothing was the empty last
        // segment a writer removes; one that holds records is moved away
        // (its seal comes once its writer notices).
        Ok(r.offset == 0)
    }

    /// For segment `seq` read through a sealed name: whether its seal is
    /// recorded and it was read to the length the seal says.
    fn sealed_yet(&mut self, r: &mut Reading, seq: u64) -> Result<bool> {
        if !self.journal.seals.contains_key(&seq) && !self.look(false)? {
            return Ok(false);
        }
        if let Some(s) = self.journal.seals.get(&seq) {
            r.end = Some(s.bytes);
            return Ok(r.offset >= s.bytes);
        }
        if self.left_alone(r) {
            return Ok(true);
        }
        // Named but never recorded, its name gone, and the log moved on
        // past it: nothing more will be known of it.
        let gone = !self.names.contains_key(&seq);
        let later = self.journal.seals.range(seq + 1..).next().is_some();
        Ok(gone && later)
    }

    /// In a shared log, whether every writer has left `r`, a segment that
    /// was cut but is not recorded yet: then it holds all it ever will,
    /// even if its seal never comes (the process that cut it was killed,
    /// or gave up waiting at its shutdown). Each writer holds a shared
    /// `flock` on the segment it writes from before the cut until it has
    /// left it, so an exclusive one can be had only once they all left.
    /// (Taken and released at once: the process that seals it tries again.)
    /// Not in an exclusive log, where writes end without such a lock.
    fn left_alone(&self, r: &Reading) -> bool {
        let Source::Plain(f) = &r.src else {
            return false;
        };
        let lock = self.dir.join(name::lock_file(self.name));
        let shared = std::fs::read_to_string(lock)
            .is_ok_and(|t| logcut_format::lock::LockInfo::parse(&t).shared);
        if !shared {
            return false;
        }
        // A cut left half done (by a killed process) leaves the segment at
        // the active path, where writers may still join it.
        let Ok(md) = f.metadata() else {
            return false;
        };
        let at_active = std::fs::symlink_metadata(&self.active)
            .is_ok_and(|m| FileId::of(&m) == FileId::of(&md));
        if at_active {
            return false;
        }
        use rustix::fs::{FlockOperation, flock};
        if flock(f, FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        let _ = flock(f, FlockOperation::Unlock);
        true
    }

    /// Why recorded segment `seq` has no file.
    fn why_gone(&self, seq: u64) -> String {
        if let Some(d) = self.journal.deleted.get(&seq) {
            return format!("deleted by retention ({})", d.reason.as_str());
        }
        match self.journal.seals.get(&seq) {
            Some(s) if s.file == name::MOVED => {
                "moved out of the log directory by someone else (logrotate, mv)".to_string()
            }
            _ => "removed from the log directory by someone else".to_string(),
        }
    }

    /// Says on standard error that segment `seq` cannot be printed, and
    /// counts it.
    fn report_lost(&mut self, seq: u64, why: &str) {
        let seal = self.journal.seals.get(&seq);
        let file = seal
            .map(|s| s.file.clone())
            .filter(|f| f != name::MOVED)
            .or_else(|| self.journal.deleted.get(&seq).map(|d| d.file.clone()))
            .unwrap_or_else(|| "-".to_string());
        let records = seal.and_then(|s| s.records);
        let count = records.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
        eprintln!(
            "logcut: segment {seq} ({file}, {count} records) was {why} before it could be read; \
             its records are not printed"
        );
        self.lost_segments += 1;
        match records {
            Some(n) => self.lost_records += n,
            None => self.lost_unknown += 1,
        }
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

/// Waits for news; returns true if and only if standard output was closed
/// (then there is no one left to print for).
/// The longest partial line kept to print whole after a restart; of a
/// longer one, only its last part is printed.
const LINE_CARRY: usize = 1 << 20;

/// Keeps in `carry` what `before` (bytes before the cursor's position,
/// after those already seen) leaves of the line the position falls in.
fn carry_line(carry: &mut Vec<u8>, before: &[u8]) {
    match memchr::memrchr(b'\n', before) {
        Some(nl) => {
            carry.clear();
            carry.extend_from_slice(&before[nl + 1..]);
        }
        None => carry.extend_from_slice(before),
    }
    if carry.len() > LINE_CARRY {
        carry.clear();
    }
}

/// Writes `bytes` (of segment `next`, from `offset` on; `done` before it)
/// to `out`, noting in `trail` what each write took: an unbuffered `out`
/// (as `cat` gives) took it into the kernel.
fn write_noted(
    trail: &mut crate::cursor::Trail,
    done: Option<u64>,
    next: Option<u64>,
    offset: u64,
    bytes: &[u8],
    out: &mut impl Write,
) -> Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        let k = match out.write(&bytes[at..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let pos = crate::cursor::Saved {
            done,
            next,
            offset: offset + at as u64,
        };
        trail.wrote(pos, k as u64);
        at += k;
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(seq: u64) -> Entry {
        Entry::Seal(Seal {
            seq,
            file: format!("app.2026-01-01T00-00-00.000Z.{seq:06}.log"),
            session: "s".into(),
            start: jiff::Timestamp::UNIX_EPOCH,
            end: jiff::Timestamp::UNIX_EPOCH,
            first: Some(0),
            records: Some(1),
            bytes: 2,
            crc32: 3,
            reason: manifest::SealReason::Size,
            sha256: None,
        })
    }

    #[test]
    fn the_manifest_is_read_as_it_grows_and_a_torn_tail_is_read_again() {
        let dir = std::env::temp_dir().join(format!("logcut-follow-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.manifest");
        let mut text = format!("{}\n", manifest::HEADER);
        text.push_str(&seal(1).encode());
        let two = seal(2).encode();
        // Torn in the middle of the second entry.
        text.push_str(&two[..10]);
        std::fs::write(&path, &text).unwrap();
        let mut j = Journal::default();
        j.refresh(&path, None).unwrap();
        assert_eq!(j.seals.keys().copied().collect::<Vec<_>>(), [1]);
        // The line is finished: it is read whole, once.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&two.as_bytes()[10..]).unwrap();
        f.write_all(seal(3).encode().as_bytes()).unwrap();
        j.refresh(&path, Some(1)).unwrap();
        assert_eq!(j.seals.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        j.forget_through(2);
        assert_eq!(j.seals.keys().copied().collect::<Vec<_>>(), [3]);
        // A new manifest (another file) is read from its start.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, format!("{}\n{}", manifest::HEADER, seal(7).encode())).unwrap();
        j.refresh(&path, Some(2)).unwrap();
        assert_eq!(j.seals.keys().copied().collect::<Vec<_>>(), [7]);
        std::fs::write(&path, "not a manifest\n").unwrap();
        let mut j = Journal::default();
        assert!(j.refresh(&path, None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
