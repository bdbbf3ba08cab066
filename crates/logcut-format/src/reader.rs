//! Finding a log's segments, in order, for readers such as `cat`.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use crate::{
    Error,
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
}

/// The files of log `name` in `dir`, oldest records first: sealed segments
/// in manifest order, then sealed-looking files the manifest does not list
/// (by name), then the active segment, then non-empty prepared segments by
/// sequence (they hold records newer than the active one while a rotation
/// is under way). Sealed segments listed in the manifest but missing on
/// disk are left out (`verify` reports them).
pub fn segments(dir: &Path, name: &str) -> Result<Vec<SegmentFile>, Error> {
    name::validate_name(name).map_err(|m| Error::parse("list segments", dir, m))?;
    let manifest = Manifest::read(&dir.join(name::manifest_file(name)))?;
    let mut out = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for seal in manifest.seals() {
        // The manifest is data, not a path: only a name of this log's
        // sealed grammar is ever joined to the directory.
        if SealedName::parse(name, &seal.file).is_none() {
            continue;
        }
        listed.insert(seal.file.clone());
        let path = dir.join(&seal.file);
        if is_regular(&path) {
            out.push(SegmentFile {
                path,
                seal: Some(seal.clone()),
                active: false,
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
        if let Some(n) = SealedName::parse(name, &file) {
            if !listed.contains(&file) {
                unlisted.push((n, file));
            }
        } else if let Some(seq) = name::parse_prepared(name, &file) {
            prepared.push((seq, file));
        }
    }
    unlisted.sort();
    for (_, file) in unlisted {
        let path = dir.join(file);
        if is_regular(&path) {
            out.push(SegmentFile {
                path,
                seal: None,
                active: false,
            });
        }
    }
    prepared.sort();
    let mut tail = vec![(name::active_file(name), false)];
    tail.extend(prepared.into_iter().map(|(_, f)| (f, true)));
    for (file, must_have_data) in tail {
        let path = dir.join(file);
        if let Ok(md) = fs::symlink_metadata(&path) {
            if md.file_type().is_file() && (!must_have_data || md.len() > 0) {
                out.push(SegmentFile {
                    path,
                    seal: None,
                    active: true,
                });
            }
        }
    }
    Ok(out)
}

fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}

/// Reads every record byte of log `name` in `dir`, in order, into memory.
/// For tests and small logs; streaming readers use [`segments`].
pub fn read_all(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for seg in segments(dir, name)? {
        let mut f =
            fs::File::open(&seg.path).map_err(|e| Error::io("read segment", &seg.path, e))?;
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
pub fn checksum_reader(mut f: impl Read) -> io::Result<(u32, u64)> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((h.finalize(), len))
}

/// Opens a file for reading without following a symlink at its last
/// component.
pub fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The flag's bits fit an i32 on every platform rustix supports.
        o.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    o.open(path)
}
