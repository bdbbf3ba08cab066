//! The writer's side of a sealed manifest: the key file and the end of the
//! MAC chain (the format is in `logcut_format::sealing`).
//!
//! The journal asks it to seal each line it appends and, from the sealer,
//! to end an epoch when it is due. In shared mode other processes append
//! and evolve the key too: under the manifest's `flock`, the key file and
//! the chain's end are read again before each append.

use std::{fs::File, os::unix::fs::FileExt, path::PathBuf, sync::Arc};

use logcut_format::sealing::{self, SealKey, Tail};

use crate::{
    Clock, Error,
    sys::{self, Dir},
};

/// How much of the manifest's end is read to find the last MAC (shared
/// mode); all of it if no MAC is found there.
const TAIL: u64 = 64 << 10;

#[derive(Debug)]
pub(crate) struct Chain {
    /// The key file, open for reading and overwriting.
    file: File,
    path: PathBuf,
    key: SealKey,
    name: String,
    /// Whether the manifest holds this key's `sealing` entry.
    started: bool,
    /// The last MAC of the chain.
    prev: [u8; 32],
    /// Whether the current epoch holds an entry (it must end to be sealed).
    open: bool,
    clock: Arc<dyn Clock>,
}

impl Chain {
    /// The chain of log `name`, if its key file exists. `text`: the
    /// manifest's whole, valid lines.
    pub(crate) fn load(
        dir: &Dir,
        name: &str,
        text: &[u8],
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Chain>, Error> {
        let file_name = sealing::key_file(name);
        let path = dir.join(&file_name);
        let file = match dir.open_rw(&file_name) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open key file", &path, e)),
        };
        let key = read_key(&file, &path)?;
        let mut c = Chain {
            file,
            path,
            key,
            name: name.to_string(),
            started: false,
            prev: sealing::START,
            open: false,
            clock,
        };
        c.follow(&Tail::scan(text));
        Ok(Some(c))
    }

    /// Takes up the chain where the manifest ends it.
    fn follow(&mut self, tail: &Tail) {
        self.started |= tail.started.as_deref() == Some(self.key.id.as_str());
        if tail.last.is_none() {
            return;
        }
        if let Some((epoch, mac, ended)) = tail.last {
            self.prev = mac;
            self.open = !ended;
            // A crash after an epoch's end was written, before the key
            // file was overwritten: the key moves on now.
            if ended && epoch == self.key.epoch {
                let now = self.clock.now();
                self.key.evolve(now);
                let _ = self.store();
            }
        }
    }

    /// Shared mode, with the manifest locked: what other processes did
    /// since (the key file they evolved, the entries they appended).
    pub(crate) fn reload(&mut self, manifest: &File, end: u64) -> Result<(), Error> {
        self.key = read_key(&self.file, &self.path)?;
        let tail = read_tail(manifest, end, TAIL)
            .or_else(|| read_tail(manifest, end, end))
            .unwrap_or_default();
        // A MAC in the end read: the chain was started (its `sealing`
        // entry may lie before what was read).
        self.started |= tail.last.is_some();
        self.follow(&tail);
        Ok(())
    }

    /// Seals encoded lines, starting the chain first if it is not. Returns
    /// the text and the chain's end after it, for `commit` once written.
    pub(crate) fn seal(&self, lines: &[String]) -> (String, [u8; 32]) {
        // A new chain starts from `START`, whatever came before it.
        let mut prev = if self.started {
            self.prev
        } else {
            sealing::START
        };
        let mut out = String::new();
        let start = (!self.started).then(|| self.key.start_line(&self.name, self.clock.now()));
        for l in start.iter().chain(lines) {
            let (sealed, m) = self.key.seal_line(&prev, l);
            out.push_str(&sealed);
            prev = m;
        }
        (out, prev)
    }

    /// The lines `seal` returned are in the manifest.
    pub(crate) fn commit(&mut self, prev: [u8; 32]) {
        self.prev = prev;
        self.started = true;
        self.open = true;
    }

    /// The `epoch` entry that ends the current epoch, if it holds an entry
    /// and (unless `force`) its interval has passed.
    pub(crate) fn due(&self, force: bool) -> Option<(String, [u8; 32])> {
        if !self.open || !(force || self.key.is_due(self.clock.now())) {
            return None;
        }
        let (l, m) = self
            .key
            .seal_line(&self.prev, &self.key.epoch_line(self.clock.now()));
        Some((l, m))
    }

    /// The epoch's end is durable in the manifest: the key moves on, and
    /// the old one is overwritten.
    pub(crate) fn ended(&mut self, prev: [u8; 32]) -> Result<(), Error> {
        self.prev = prev;
        self.open = false;
        self.key.evolve(self.clock.now());
        self.store()
    }

    /// How long until the sealer should look again.
    pub(crate) fn until_due(&self) -> std::time::Duration {
        let d = self.key.until_due(self.clock.now());
        if d.is_zero() {
            // Due but empty: an entry may come at any time; it ends the
            // epoch at the next look.
            std::time::Duration::from_secs(self.key.interval_secs.max(1))
        } else {
            d
        }
    }

    fn store(&self) -> Result<(), Error> {
        sys::overwrite(&self.file, self.key.encode().as_bytes())
            .and_then(|()| sys::sync_data(&self.file))
            .map_err(|e| Error::io("overwrite key file", &self.path, e))
    }
}

fn read_key(file: &File, path: &std::path::Path) -> Result<SealKey, Error> {
    let text = sys::read_small(file).map_err(|e| Error::io("read key file", path, e))?;
    SealKey::parse(&text).map_err(|e| logcut_format::Error::parse("read key file", path, e).into())
}

/// The chain's end as the last `len` bytes before `end` hold it (from the
/// first whole line); `None` if they hold no MAC.
fn read_tail(manifest: &File, end: u64, len: u64) -> Option<Tail> {
    let from = end.saturating_sub(len);
    let mut buf = vec![0u8; usize::try_from(end - from).ok()?];
    manifest.read_exact_at(&mut buf, from).ok()?;
    let text = if from == 0 {
        &buf[..]
    } else {
        let nl = buf.iter().position(|b| *b == b'\n')?;
        &buf[nl + 1..]
    };
    let tail = Tail::scan(text);
    tail.last.is_some().then_some(tail)
}
