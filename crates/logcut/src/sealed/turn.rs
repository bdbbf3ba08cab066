//! Shared mode: whose turn it is to keep a shared log. Of the processes
//! that write one log, only the one holding an exclusive `flock` on
//! `<name>.keeper-lock` indexes, compresses, ships and deletes its sealed
//! segments, so that nothing is done twice. The others try for the lock at
//! every look (the watch interval); the kernel releases it when its holder
//! exits or dies, even by SIGKILL, and the next to try takes over.
//!
//! The holder learns of segments sealed by any process from the manifest
//! (each seal entry is appended whole, under the manifest's lock): when it
//! takes the turn it reads the whole manifest, as a start does, and then
//! only the lines appended since.

use std::{fs::File, io::Read, os::unix::fs::FileExt};

use logcut_format::{
    codec::CODECS,
    manifest::{Entry, Manifest, parse_line},
    name,
};

use crate::{
    Error,
    sealed::keeper::{self, Sealed},
    sys::{self, Dir, Flock},
};

/// The keeper lock's file name.
pub(crate) fn lock_file(log: &str) -> String {
    format!("{log}.keeper-lock")
}

/// One process's claim on the keeper's work of a shared log.
pub(crate) struct Turn {
    lock: File,
    /// The manifest, read from `scanned` on, while the turn is held.
    manifest: Option<File>,
    scanned: u64,
    log: String,
}

impl Turn {
    /// Opens the keeper lock (creating it, mode `mode`) without taking it.
    pub(crate) fn open(dir: &Dir, log: &str, mode: u32) -> Result<Turn, Error> {
        let n = lock_file(log);
        let lock = dir
            .open_lock(&n, mode)
            .map_err(|e| Error::io("open keeper lock", dir.join(&n), e))?;
        Ok(Turn {
            lock,
            manifest: None,
            scanned: 0,
            log: log.to_string(),
        })
    }

    pub(crate) fn held(&self) -> bool {
        self.manifest.is_some()
    }

    /// Takes the turn if it is free, without waiting. Returns the sealed
    /// segments the manifest lists, for the keeper to look after; `None`
    /// if another process holds it.
    pub(crate) fn try_take(&mut self, dir: &Dir) -> Result<Option<Vec<Sealed>>, Error> {
        let lock_path = || dir.join(&lock_file(&self.log));
        if !sys::flock(&self.lock, Flock::TryExclusive)
            .map_err(|e| Error::io("take keeper lock", lock_path(), e))?
        {
            return Ok(None);
        }
        match self.load(dir) {
            Ok(sealed) => Ok(Some(sealed)),
            Err(e) => {
                // Not taken after all: another process may do better.
                let _ = sys::flock(&self.lock, Flock::Unlock);
                Err(e)
            }
        }
    }

    /// Reads the manifest up to its last whole line and removes what an
    /// earlier holder killed mid-work left: compressed files it did not get
    /// to record (the segment itself is still there).
    fn load(&mut self, dir: &Dir) -> Result<Vec<Sealed>, Error> {
        let m = name::manifest_file(&self.log);
        let io = |e| Error::io("read manifest", dir.join(&m), e);
        let mut file = dir.open_read(&m).map_err(io)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io)?;
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let manifest = Manifest::parse(&dir.join(&m), &text[..whole])?;
        let sealed = keeper::sealed_from(dir, &self.log, &manifest);
        for s in sealed.iter().filter(|s| s.compressed.is_none()) {
            for c in CODECS {
                for f in [c.compressed_name(&s.file), c.tmp_name(&s.file)] {
                    match dir.unlink(&f) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("remove unrecorded file", dir.join(&f), e)),
                    }
                }
            }
        }
        self.manifest = Some(file);
        self.scanned = whole as u64;
        Ok(sealed)
    }

    /// While the turn is held: the segments sealed (by any process) since
    /// the last look. A line being appended is read at the next look.
    pub(crate) fn news(&mut self, dir: &Dir) -> Result<Vec<Sealed>, Error> {
        let Some(file) = &self.manifest else {
            return Ok(Vec::new());
        };
        let path = || dir.join(&name::manifest_file(&self.log));
        let end = sys::file_info(file)
            .map_err(|e| Error::io("read manifest", path(), e))?
            .len;
        if end <= self.scanned {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; usize::try_from(end - self.scanned).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, self.scanned)
            .map_err(|e| Error::io("read manifest", path(), e))?;
        let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut out = Vec::new();
        for line in buf[..whole].split(|b| *b == b'\n') {
            let Ok(Some(Entry::Seal(s))) = std::str::from_utf8(line).map_or(Ok(None), parse_line)
            else {
                continue;
            };
            if let Some(info) = keeper::sealed_new(dir, &self.log, &s) {
                out.push(info);
            }
        }
        self.scanned += whole as u64;
        Ok(out)
    }

    /// Gives the turn up (the next process to try takes it).
    pub(crate) fn release(&mut self) {
        if self.manifest.take().is_some() {
            // Released when the file closes otherwise; nothing to undo.
            let _ = sys::flock(&self.lock, Flock::Unlock);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.release();
    }
}
