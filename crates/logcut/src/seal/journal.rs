//! The manifest writer: appends whole entries, repairs a torn tail.

use std::{fs::File, io::Read, os::unix::fs::FileExt, path::PathBuf, sync::Arc, time::Duration};

use logcut_format::manifest::{Entry, HEADER, Manifest, Part, parse_line};

use crate::{
    Clock, Error,
    seal::chain::Chain,
    sys::{self, Dir},
};

/// Bytes kept allocated past the manifest's end (see `keep_reserve`).
const RESERVE: u64 = 64 << 10;
/// The reserve is topped up when less than this is left.
const RESERVE_LOW: u64 = 32 << 10;

/// The open manifest of one log. `build` (before the threads start), then
/// the sealer, the compression workers and the retention thread append to
/// it, one at a time (it sits behind a mutex).
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    len: u64,
    /// A failed append left a fragment that could not be cut off: the next
    /// append starts with a newline, so the fragment is one bad line and
    /// the entries after it stay readable.
    stranded: bool,
    path: PathBuf,
    sync: bool,
    /// Shared mode: other processes append too. Each append holds an
    /// exclusive `flock` on the manifest, and a failed one is never cut
    /// back (the file's end may be theirs by then).
    shared: bool,
    /// Shared mode: how far `scan_parts` has read.
    scanned: u64,
    /// Shared mode: parts read at open, not yet returned by `scan_parts`.
    pending: Vec<Part>,
    /// Where the blocks allocated ahead of the end (`keep_reserve`) end.
    reserved_to: u64,
    /// The MAC chain, when the log has a key file (a sealed manifest).
    chain: Option<Chain>,
}

impl Journal {
    /// Opens (creating) the manifest, parses it, and cuts off a torn last
    /// line left by a crash during an append. Returns the parsed manifest
    /// and, if a tail was cut off, how many bytes.
    pub(crate) fn open(
        dir: &Dir,
        file_name: &str,
        mode: u32,
        sync: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<(Journal, Manifest, u64), Error> {
        Journal::open_with(dir, file_name, mode, sync, false, None, clock)
    }

    /// `open` for a shared log. `join`: `None` if this process is alone
    /// (it may cut off a torn tail and write the header, as `open` does);
    /// otherwise others are writing it, the manifest is only read, and its
    /// `part` entries of segments from this sequence number on are kept
    /// for `scan_parts` (this process may seal those segments).
    pub(crate) fn open_shared(
        dir: &Dir,
        file_name: &str,
        mode: u32,
        sync: bool,
        join: Option<u64>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Journal, Manifest, u64), Error> {
        Journal::open_with(dir, file_name, mode, sync, true, join, clock)
    }

    fn open_with(
        dir: &Dir,
        file_name: &str,
        mode: u32,
        sync: bool,
        shared: bool,
        join: Option<u64>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Journal, Manifest, u64), Error> {
        let path = dir.join(file_name);
        let io = |op, e| Error::io(op, &path, e);
        let mut file = dir
            .open_append(file_name, mode)
            .map_err(|e| io("open manifest", e))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .map_err(|e| io("read manifest", e))?;
        let manifest = Manifest::parse(&path, &text)?;
        let mut len = text.len() as u64;
        let mut repaired = 0;
        if join.is_none()
            && (manifest.has_only_torn_tail()
                || (manifest.entries.is_empty()
                    && !manifest.bad.is_empty()
                    && manifest.valid_len == 0))
        {
            repaired = len - manifest.valid_len;
            sys::truncate(&file, manifest.valid_len).map_err(|e| io("repair manifest", e))?;
            len = manifest.valid_len;
        }
        // Joining: the text was read while others may append, so it may
        // end in a line being written; what follows the last whole line
        // is read again by `scan_parts`, and the parts before it come from
        // the parse.
        let (scanned, pending) = match join {
            None => (len, Vec::new()),
            Some(floor) => (
                text.iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i as u64 + 1),
                manifest
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Part(p) if p.seq >= floor => Some(p.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        let mut j = Journal {
            file,
            len,
            stranded: false,
            path,
            sync,
            shared,
            scanned,
            pending,
            reserved_to: 0,
            chain: None,
        };
        if j.len == 0 && join.is_none() {
            j.write(&[format!("{HEADER}\n")])?;
        }
        let name = file_name.strip_suffix(".manifest").unwrap_or(file_name);
        j.chain = Chain::load(dir, name, &text, clock)?;
        // Alone: an epoch left open by a crash is sealed now, so that the
        // crashed session's history is not left forgeable.
        if join.is_none() {
            j.end_epoch(true)?;
        }
        j.keep_reserve();
        Ok((j, manifest, repaired))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends entries in one write. A failed write is cut back off, so the
    /// manifest never holds a partial line written by this process.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let lines: Vec<String> = entries.iter().map(Entry::encode).collect();
        self.write(&lines)
    }

    /// Whether the manifest is sealed (the log has a key file).
    pub(crate) fn is_sealing(&self) -> bool {
        self.chain.is_some()
    }

    /// A sealed manifest: how long until the current epoch may be due.
    pub(crate) fn until_epoch_due(&self) -> Option<Duration> {
        self.chain.as_ref().map(Chain::until_due)
    }

    /// A sealed manifest: ends the current epoch if it holds an entry and
    /// (unless `force`, at shutdown) its interval has passed. The `epoch`
    /// entry is synced before the key file moves on, so a crash between
    /// the two only leaves the old key to be overwritten at the next start.
    pub(crate) fn end_epoch(&mut self, force: bool) -> Result<(), Error> {
        if self.chain.is_none() {
            return Ok(());
        }
        self.locked(|j| {
            let Some((line, prev)) = j.chain.as_ref().and_then(|c| c.due(force)) else {
                return Ok(());
            };
            j.write_unlocked(line.as_bytes())?;
            if !j.sync {
                sys::sync_data(&j.file).map_err(|e| Error::io("sync manifest", &j.path, e))?;
            }
            j.chain.as_mut().map_or(Ok(()), |c| c.ended(prev))
        })
    }

    /// Appends entries and syncs the manifest whatever the fsync policy:
    /// for `compress` and `delete` entries, which must be durable before a
    /// file is removed (the sync also makes every earlier line durable).
    pub(crate) fn append_durable(&mut self, entries: &[Entry]) -> Result<(), Error> {
        self.append(entries)?;
        if !self.sync {
            sys::sync_data(&self.file).map_err(|e| Error::io("sync manifest", &self.path, e))?;
        }
        Ok(())
    }

    /// Appends whole lines (sealed first, if the manifest is).
    fn write(&mut self, lines: &[String]) -> Result<(), Error> {
        self.locked(|j| {
            let Some(chain) = &j.chain else {
                return j.write_unlocked(lines.concat().as_bytes());
            };
            let (text, prev) = chain.seal(lines);
            let res = j.write_unlocked(text.as_bytes());
            // Written, even if the sync failed: the chain goes on from them.
            if res.as_ref().is_ok()
                || res
                    .as_ref()
                    .is_err_and(|e| e.operation() == "sync manifest")
            {
                if let Some(c) = &mut j.chain {
                    c.commit(prev);
                }
            }
            res
        })
    }

    /// Runs `f` alone on the manifest: in shared mode, holding an
    /// exclusive `flock`, with what other processes appended taken in.
    fn locked(&mut self, f: impl FnOnce(&mut Journal) -> Result<(), Error>) -> Result<(), Error> {
        if !self.shared {
            return f(self);
        }
        sys::flock(&self.file, sys::Flock::Exclusive)
            .map_err(|e| Error::io("lock manifest", &self.path, e))?;
        // A failed append of any process may have left a partial line:
        // start on a line of its own, so the fragment stays one bad line
        // and this entry stays whole.
        let end = sys::file_info(&self.file).map_or(0, |i| i.len);
        let mut last = [b'\n'];
        if end > 0 {
            let _ = self.file.read_exact_at(&mut last, end - 1);
        }
        self.stranded = last[0] != b'\n';
        let res = match &mut self.chain {
            Some(c) => c.reload(&self.file, end),
            None => Ok(()),
        }
        .and_then(|()| f(self));
        // Released when the file closes otherwise; an error here leaves
        // nothing to undo.
        let _ = sys::flock(&self.file, sys::Flock::Unlock);
        res
    }

    /// Shared mode: the `part` entries appended (by any process) since the
    /// last call, read from the file. Only whole lines are read; a line
    /// being appended is read at the next call.
    pub(crate) fn scan_parts(&mut self) -> Result<Vec<Part>, Error> {
        let mut parts = std::mem::take(&mut self.pending);
        let end = sys::file_info(&self.file)
            .map_err(|e| Error::io("read manifest", &self.path, e))?
            .len;
        if end <= self.scanned {
            return Ok(parts);
        }
        let mut buf = vec![0u8; (end - self.scanned) as usize];
        self.file
            .read_exact_at(&mut buf, self.scanned)
            .map_err(|e| Error::io("read manifest", &self.path, e))?;
        let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in buf[..whole].split(|b| *b == b'\n') {
            if let Ok(Some(Entry::Part(p))) = std::str::from_utf8(line).map_or(Ok(None), parse_line)
            {
                parts.push(p);
            }
        }
        self.scanned += whole as u64;
        Ok(parts)
    }

    /// Keeps `RESERVE` bytes allocated past the end of the manifest, so
    /// that on a full disk the entries that make room (`delete` entries
    /// of retention, and the seals and compressions they wait for) can
    /// still be appended: without them nothing may be removed. Best
    /// effort: on a file system without `fallocate`, or a disk already
    /// full, it is tried again after the next append.
    fn keep_reserve(&mut self) {
        // Shared mode: other processes' appends use the reserve too.
        let end = if self.shared {
            sys::file_info(&self.file).map_or(self.len, |i| i.len)
        } else {
            self.len
        };
        if end + RESERVE_LOW <= self.reserved_to {
            return;
        }
        if sys::reserve(&self.file, end, RESERVE).is_ok() {
            self.reserved_to = end + RESERVE;
        }
    }

    fn write_unlocked(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let owned;
        let bytes = if self.stranded {
            owned = [b"\n".as_slice(), bytes].concat();
            &owned[..]
        } else {
            bytes
        };
        if let Err((e, written)) = sys::write_all(&self.file, bytes) {
            if written > 0 && (self.shared || sys::truncate(&self.file, self.len).is_err()) {
                self.stranded = true;
                self.len = sys::file_info(&self.file).map_or(self.len + written as u64, |i| i.len);
            }
            // A cut-back frees the blocks past the end: reserve again.
            self.reserved_to = 0;
            return Err(Error::io("append to manifest", &self.path, e));
        }
        self.stranded = false;
        self.len += bytes.len() as u64;
        self.keep_reserve();
        if self.sync {
            sys::sync_data(&self.file).map_err(|e| Error::io("sync manifest", &self.path, e))?;
        }
        Ok(())
    }
}
