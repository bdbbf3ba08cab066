//! Finding a log's segments, in order, for readers such as `cat`.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use crate::{
    Error,
    codec::{CODECS, Codec},
    manifest::{Manifest, Seal},
    name::{self, SealedName},
};

/// One file holding records of a log.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// Its manifest entry, if it has been sealed and recorded.
    pub seal: Option<Seal>,
    /// Returns true if and only if this is the active (or prepared next)
    /// segment, which may still grow.
    pub active: bool,
    /// The codec `path` is compressed with, if it is.
    pub codec: Option<Codec>,
}

impl SegmentFile {
    /// Opens the segment for reading its records, decompressing a
    /// compressed one. If a sealed segment was compressed (or its
    /// compressed file removed) since it was listed, the other file is
    /// opened instead.
    pub fn open(&self) -> io::Result<Box<dyn Read>> {
        match open_segment(&self.path, self.codec) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.seal.is_some() => {
                let Some(dir) = self.path.parent() else {
                    return Err(e);
                };
                let Some(seal) = &self.seal else {
                    return Err(e);
                };
                match find_file(dir, &seal.file, None) {
                    Some((path, codec)) if path != self.path => open_segment(&path, codec),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// The segment's search index (see [`index`](crate::index)), if it is
    /// sealed and has one that parses; `None` otherwise (none was built, or
    /// it is damaged): then only a full read of the segment can say what it
    /// holds. An index too large to be one (over 64 MiB) is not read.
    pub fn index(&self) -> Option<crate::index::Index> {
        let seal = self.seal.as_ref()?;
        let path = self
            .path
            .parent()?
            .join(crate::index::index_file(&seal.file));
        let mut bytes = Vec::new();
        open_nofollow(&path)
            .ok()?
            .take(64 << 20)
            .read_to_end(&mut bytes)
            .ok()?;
        crate::index::Index::parse(&bytes).ok()
    }
}

/// Opens a segment file (not following a symlink) for reading its records,
/// through the decoder of `codec` if it is compressed.
pub fn open_segment(path: &Path, codec: Option<Codec>) -> io::Result<Box<dyn Read>> {
    let f = io::BufReader::new(open_nofollow(path)?);
    match codec {
        None => Ok(Box::new(f)),
        Some(c) => c.decoder(f),
    }
}

/// Where sealed file `file`'s records are: its compressed file `recorded`
/// (from a `compress` entry) if present, else the original, else any
/// compressed variant (a compression the manifest does not record yet).
pub(crate) fn find_file(
    dir: &Path,
    file: &str,
    recorded: Option<&str>,
) -> Option<(PathBuf, Option<Codec>)> {
    if let Some(r) = recorded {
        let path = dir.join(r);
        if let Some((_, c)) = Codec::split(r).filter(|_| is_regular(&path)) {
            return Some((path, Some(c)));
        }
    }
    let path = dir.join(file);
    if is_regular(&path) {
        return Some((path, None));
    }
    CODECS.into_iter().find_map(|c| {
        let path = dir.join(c.compressed_name(file));
        is_regular(&path).then_some((path, Some(c)))
    })
}

/// The files of log `name` in `dir`, oldest records first: sealed segments
/// in sequence order, then sealed-looking files the manifest does not list
/// (by name), then the active segment, then non-empty prepared segments by
/// sequence (they hold records newer than the active one while a rotation
/// is under way). Sealed segments listed in the manifest but missing on
/// disk are left out (`verify` reports them), and so are segments a
/// retention policy deleted. A compressed segment is listed with its
/// compressed file and codec: read it with [`SegmentFile::open`].
pub fn segments(dir: &Path, name: &str) -> Result<Vec<SegmentFile>, Error> {
    name::validate_name(name).map_err(|m| Error::parse("list segments", dir, m))?;
    let manifest = Manifest::read(&dir.join(name::manifest_file(name)))?;
    let compressed = manifest.compressed();
    let deleted = manifest.deleted();
    let mut out = Vec::new();
    let mut listed = std::collections::HashSet::new();
    // In sequence order: appenders sharing a log may record their seals
    // out of order.
    let mut seals: Vec<&crate::manifest::Seal> = manifest.seals().collect();
    seals.sort_by_key(|s| s.seq);
    for seal in seals {
        // The manifest is data, not a path: only a name of this log's
        // sealed grammar is ever joined to the directory.
        if SealedName::parse(name, &seal.file).is_none() {
            continue;
        }
        listed.insert(seal.file.clone());
        if deleted.contains_key(&seal.seq) {
            continue;
        }
        let recorded = compressed
            .get(&seal.seq)
            .map(|c| c.file.as_str())
            .filter(|f| Codec::split(f).is_some_and(|(base, _)| base == seal.file));
        if let Some((path, codec)) = find_file(dir, &seal.file, recorded) {
            out.push(SegmentFile {
                path,
                seal: Some(seal.clone()),
                active: false,
                codec,
            });
        }
    }
    let mut unlisted: Vec<(SealedName, String)> = Vec::new();
    let mut prepared: Vec<(u64, String)> = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| Error::io("list segments", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list segments", dir, e))?;
        let Some(file) = ent.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let base = Codec::split(&file).map_or(file.as_str(), |(b, _)| b);
        if let Some(n) = SealedName::parse(name, base) {
            if !listed.contains(base) {
                unlisted.push((n, file));
            }
        } else if let Some(seq) = name::parse_prepared(name, &file) {
            prepared.push((seq, file));
        }
    }
    unlisted.sort();
    for (_, file) in unlisted {
        let codec = Codec::split(&file).map(|(_, c)| c);
        let path = dir.join(file);
        if is_regular(&path) {
            out.push(SegmentFile {
                path,
                seal: None,
                active: false,
                codec,
            });
        }
    }
    prepared.sort();
    let mut tail = vec![(name::active_file(name), false)];
    tail.extend(prepared.into_iter().map(|(_, f)| (f, true)));
    for (file, must_have_data) in tail {
        let path = dir.join(file);
        if let Ok(md) = fs::symlink_metadata(&path) {
            if md.file_type().is_file()
                && (!must_have_data || md.len() > 0)
                && !is_second_name(
                    &md,
                    out.iter()
                        .rev()
                        .filter(|s| !s.active && s.codec.is_none())
                        .map(|s| s.path.as_path()),
                )
            {
                out.push(SegmentFile {
                    path,
                    seal: None,
                    active: true,
                    codec: None,
                });
            }
        }
    }
    Ok(out)
}

/// The log a file of a log directory belongs to, by its name: a sealed
/// segment (compressed or not; `true`), or a manifest or active segment
/// (`false`). `None` for any other file.
pub(crate) fn log_of(file: &str) -> Option<(&str, bool)> {
    let base = Codec::split(file).map_or(file, |(b, _)| b);
    if let Some((log, _)) = name::split_sealed(base) {
        return Some((log, true));
    }
    let log = file
        .strip_suffix(".manifest")
        .or_else(|| file.strip_suffix(".log"))?;
    name::validate_name(log).ok()?;
    Some((log, false))
}

/// The names of the logs in `dir`, sorted: every log with a manifest, an
/// active segment or a sealed segment there. [`verify()`](crate::verify())
/// checks exactly these; a reader given no log name uses this to find it.
pub fn log_names(dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = std::collections::BTreeSet::new();
    let rd = fs::read_dir(dir).map_err(|e| Error::io("list logs", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list logs", dir, e))?;
        if let Some((log, _)) = ent.file_name().to_str().and_then(log_of) {
            names.insert(log.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

/// Whether `md` (of the active path) is a second name of one of the
/// sealed segment files `sealed`: after a shutdown the last segment keeps
/// the active name until the next start (and for an instant during a cut,
/// before its seal is recorded). Its records are listed once, under its
/// sealed name.
pub(crate) fn is_second_name(
    md: &fs::Metadata,
    sealed: impl IntoIterator<Item = impl AsRef<Path>>,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    md.nlink() > 1
        && sealed.into_iter().any(|p| {
            fs::symlink_metadata(p.as_ref())
                .is_ok_and(|m| m.dev() == md.dev() && m.ino() == md.ino())
        })
}

fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}

/// Reads every record byte of log `name` in `dir`, in order, into memory,
/// decompressing compressed segments. For tests and small logs; streaming
/// readers use [`segments`].
pub fn read_all(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for seg in segments(dir, name)? {
        let mut f = seg
            .open()
            .map_err(|e| Error::io("read segment", &seg.path, e))?;
        f.read_to_end(&mut out)
            .map_err(|e| Error::io("read segment", &seg.path, e))?;
    }
    Ok(out)
}

/// CRC-32 and length of a file's contents (not following a symlink).
pub fn checksum_file(path: &Path) -> io::Result<(u32, u64)> {
    checksum_reader(open_nofollow(path)?)
}

/// CRC-32 and length of everything `f` yields.
pub fn checksum_reader(f: impl Read) -> io::Result<(u32, u64)> {
    let mut h = crc32fast::Hasher::new();
    let len = read_chunks(f, |chunk| {
        h.update(chunk);
        Ok(())
    })?;
    Ok((h.finalize(), len))
}

/// Reads `r` to its end, handing each piece read to `each` (which may stop
/// the read with an error); returns the bytes read. A read interrupted by
/// a signal is tried again.
pub fn read_chunks(
    mut r: impl Read,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        each(&buf[..n])?;
        len += n as u64;
    }
}

/// SHA-256, CRC-32 (IEEE) and length of everything `f` yields: one read
/// for both checksums (a sealed or shipped segment records both).
pub fn digest_reader(f: impl Read) -> io::Result<([u8; 32], u32, u64)> {
    use sha2::Digest as _;
    let mut sha = sha2::Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let len = read_chunks(f, |chunk| {
        sha.update(chunk);
        crc.update(chunk);
        Ok(())
    })?;
    Ok((sha.finalize().into(), crc.finalize(), len))
}

/// Bytes as lower case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Opens a regular file for reading without following a symlink at its
/// last component. Anything else planted at `path` (a FIFO, a device, a
/// directory) fails with [`InvalidInput`](io::ErrorKind::InvalidInput)
/// instead of being read; a FIFO is opened without blocking for that, so
/// it cannot hang the caller until someone writes to it.
pub fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The flags' bits fit an i32 on every platform rustix supports.
        // O_NONBLOCK changes nothing for a regular file's reads.
        o.custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32);
    }
    let file = o.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a directory or a symlink planted where a file is read fails
    /// at once (a FIFO would otherwise block the open until a writer came).
    #[test]
    fn only_regular_files_are_opened() {
        let dir = std::env::temp_dir().join(format!("logcut-format-open-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("file"), dir.join("link")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(open_nofollow(&dir.join("file")).is_ok());
        for f in ["fifo", "sub"] {
            let e = open_nofollow(&dir.join(f)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{f}: {e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        assert!(open_nofollow(&dir.join("link")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_names_are_those_of_manifests_and_segments() {
        let dir = std::env::temp_dir().join(format!("logcut-format-names-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert!(log_names(&dir).unwrap().is_empty());
        for f in [
            "web.manifest",
            "api.log",
            "old.2026-11-24T10-00-00.000Z.000042.log.zst",
            "web.trigger",
            "notes.txt",
            ".hidden.log",
        ] {
            fs::write(dir.join(f), b"").unwrap();
        }
        assert_eq!(log_names(&dir).unwrap(), ["api", "old", "web"]);
        fs::remove_dir_all(&dir).unwrap();
        let e = log_names(&dir).unwrap_err();
        assert_eq!(
            e.io_error().map(io::Error::kind),
            Some(io::ErrorKind::NotFound)
        );
    }
}
