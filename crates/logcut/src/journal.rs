//! The manifest writer: appends whole entries, repairs a torn tail.

use std::{fs::File, io::Read, path::PathBuf};

use logcut_format::manifest::{Entry, HEADER, Manifest};

use crate::{
    Error,
    sys::{self, Dir},
};

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
        if manifest.has_only_torn_tail()
            || (manifest.entries.is_empty() && !manifest.bad.is_empty() && manifest.valid_len == 0)
        {
            repaired = len - manifest.valid_len;
            sys::truncate(&file, manifest.valid_len).map_err(|e| io("repair manifest", e))?;
            len = manifest.valid_len;
        }
        let mut j = Journal {
            file,
            len,
            stranded: false,
            path,
            sync,
        };
        if j.len == 0 {
            j.write(format!("{HEADER}\n").as_bytes())?;
        }
        Ok((j, manifest, repaired))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends entries in one write. A failed write is cut back off, so the
    /// manifest never holds a partial line written by this process.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let text: String = entries.iter().map(Entry::encode).collect();
        self.write(text.as_bytes())
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

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let owned;
        let bytes = if self.stranded {
            owned = [b"\n".as_slice(), bytes].concat();
            &owned[..]
        } else {
            bytes
        };
        if let Err((e, written)) = sys::write_all(&self.file, bytes) {
            if written > 0 && sys::truncate(&self.file, self.len).is_err() {
                self.stranded = true;
                self.len = sys::file_info(&self.file).map_or(self.len + written as u64, |i| i.len);
            }
            return Err(Error::io("append to manifest", &self.path, e));
        }
        self.stranded = false;
        self.len += bytes.len() as u64;
        if self.sync {
            sys::sync_data(&self.file).map_err(|e| Error::io("sync manifest", &self.path, e))?;
        }
        Ok(())
    }
}
