//! Compression of sealed segments, on threads of their own.
//!
//! A worker ([`work`](crate::sealed::work)) replaces one sealed segment by
//! its compressed file, in an order that survives a crash at any point:
//!
//! 1. write `<segment>.zst.tmp` (created new, mode `file_mode`), checking
//!    that what it read matches the seal's length and checksum;
//! 2. `fdatasync` it, rename it to `<segment>.zst`, sync the directory;
//! 3. append a `compress` entry (the compressed file's name, checksum and
//!    length) to the manifest;
//! 4. remove the original.
//!
//! A crash before 2 leaves a `.tmp` file (removed at the next start);
//! between 2 and 3, a compressed file the manifest does not know (checked
//! by decompression and recorded at the next start); between 3 and 4, the
//! original (removed at the next start). Readers find the records in
//! whichever file holds them.

use std::io::{self, BufWriter, Write};

use logcut_format::{codec::Codec, index::IndexBuilder};

use crate::{Error, context::Context, sealed::task::Task};

/// How sealed segments are compressed: see
/// [`AppenderBuilder::compress`](crate::AppenderBuilder::compress).
///
/// Each codec needs its cargo feature (`gzip`, `zstd`); building an
/// appender with a codec whose feature is off fails with a configuration
/// error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Sealed segments stay as they are.
    #[default]
    None,
    /// gzip, `level` 0 (store) to 9 (smallest); files end in `.gz`.
    Gzip {
        /// 0 to 9; 6 is gzip's usual default.
        level: u32,
    },
    /// Zstandard, `level` -7 (fastest) to 22 (smallest); files end in `.zst`.
    Zstd {
        /// -7 to 22; 3 is zstd's usual default.
        level: i32,
    },
}

impl Compression {
    /// gzip at its default level, 6.
    pub const fn gzip() -> Compression {
        Compression::Gzip { level: 6 }
    }

    /// zstd at its default level, 3.
    pub const fn zstd() -> Compression {
        Compression::Zstd { level: 3 }
    }

    /// The codec and level, or `None` for no compression.
    pub(crate) fn codec(self) -> Option<(Codec, i32)> {
        match self {
            Compression::None => None,
            Compression::Gzip { level } => {
                Some((Codec::Gzip, i32::try_from(level).unwrap_or(i32::MAX)))
            }
            Compression::Zstd { level } => Some((Codec::Zstd, level)),
        }
    }

    /// Checks the level and that the codec is built in.
    pub(crate) fn validate(self) -> Result<(), Error> {
        let Some((codec, level)) = self.codec() else {
            return Ok(());
        };
        let range = match codec {
            Codec::Gzip => 0..=9,
            _ => -7..=22,
        };
        if !range.contains(&level) {
            return Err(Error::config(
                "compress",
                format!(
                    "{codec} level {level} is out of range; use {} to {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        if !codec.is_supported() {
            return Err(Error::config(
                "compress",
                format!("{codec} support is not built in; enable logcut's cargo feature `{codec}`"),
            ));
        }
        Ok(())
    }
}

/// A compressed file written under its temporary name, durable, not yet
/// renamed.
pub(crate) struct Packed {
    pub(crate) tmp: String,
    pub(crate) fin: String,
    pub(crate) crc32: u32,
    pub(crate) bytes: u64,
}

/// Steps 1 and the `fdatasync` of 2 (see the module docs): writes `task`'s
/// segment compressed under its temporary name, feeding what it reads to
/// `index` too. On failure, any partial file is removed.
pub(crate) fn encode(
    sh: &Context,
    codec: Codec,
    level: i32,
    task: &Task,
    index: Option<&mut IndexBuilder>,
) -> Result<Packed, Error> {
    let dir = &sh.dir;
    let tmp = codec.tmp_name(&task.file);
    let fin = codec.compressed_name(&task.file);
    let fail = |op, name: &str, e| Error::io(op, dir.join(name), e);
    // A leftover of an earlier failed attempt in this run.
    if dir
        .stat(&tmp)
        .map_err(|e| fail("compress", &tmp, e))?
        .is_some()
    {
        dir.unlink(&tmp).map_err(|e| fail("compress", &tmp, e))?;
    }
    let input = dir
        .open_read(&task.file)
        .map_err(|e| fail("compress", &task.file, e))?;
    let out = dir
        .create_new(&tmp, sh.cfg.file_mode)
        .map_err(|e| fail("compress", &tmp, e))?;
    let written = (|| {
        let mut w = CrcWriter {
            inner: BufWriter::with_capacity(128 * 1024, &out),
            hash: crc32fast::Hasher::new(),
            len: 0,
            cancel: &sh.compress_cancel,
        };
        let input = Tee {
            inner: input,
            index,
        };
        let (crc, len) = codec.encode(
            level,
            io::BufReader::with_capacity(128 * 1024, input),
            &mut w,
        )?;
        check_sum(task, crc, len)?;
        w.inner.flush()?;
        crate::sys::sync_data(&out)?;
        Ok((w.hash.finalize(), w.len))
    })();
    drop(out);
    match written {
        Ok((crc32, bytes)) => Ok(Packed {
            tmp,
            fin,
            crc32,
            bytes,
        }),
        Err(e) => {
            let _ = dir.unlink(&tmp);
            Err(fail("compress", &task.file, e))
        }
    }
}

/// The rename of step 2; the caller syncs the directory.
pub(crate) fn install(sh: &Context, p: &Packed) -> Result<(), Error> {
    if let Err(e) = sh.dir.rename_noreplace(&p.tmp, &p.fin) {
        let _ = sh.dir.unlink(&p.tmp);
        return Err(Error::io("compress", sh.dir.join(&p.fin), e));
    }
    Ok(())
}

/// An error unless `crc` and `len` are those `task`'s segment was sealed
/// with.
pub(crate) fn check_sum(task: &Task, crc: u32, len: u64) -> io::Result<()> {
    if (crc, len) != (task.crc32, task.bytes) {
        return Err(io::Error::other(format!(
            "the segment holds {len} bytes with checksum {crc:08x}, but was sealed with {} bytes, {:08x}; left as it is",
            task.bytes, task.crc32
        )));
    }
    Ok(())
}

/// Passes what it reads to an index builder too.
struct Tee<'a, R> {
    inner: R,
    index: Option<&'a mut IndexBuilder>,
}

impl<R: io::Read> io::Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(ix) = self.index.as_deref_mut() {
            ix.feed(&buf[..n]);
        }
        Ok(n)
    }
}

/// Counts and checksums what passes through; stops when `cancel` is set
/// (shutdown's deadline passed).
struct CrcWriter<'a, W> {
    inner: W,
    hash: crc32fast::Hasher,
    len: u64,
    cancel: &'a std::sync::atomic::AtomicBool,
}

/// The error a compression stopped by shutdown ends with.
pub(crate) const CANCELLED: &str = "stopped at shutdown; compressed at the next start";

impl<W: Write> Write for CrcWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Relaxed: a flag read on its own; set once by the keeper.
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            // Not `Interrupted`: `write_all` would retry that.
            return Err(io::Error::new(io::ErrorKind::TimedOut, CANCELLED));
        }
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The nice value of compression threads: on a busy machine the writers'
/// threads come first, and compression falls behind (the backlog grows)
/// rather than slow them down.
const NICE: i32 = 10;

/// Lowers the calling thread's priority (Linux: `setpriority` on the
/// thread id); best effort.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(tid), NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_checked() {
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 23 }.validate().is_err());
        assert!(Compression::Zstd { level: -8 }.validate().is_err());
        assert!(Compression::None.validate().is_ok());
        let e = Compression::Gzip { level: 10 }.validate().unwrap_err();
        assert_eq!(e.config_field(), Some("compress"));
        #[cfg(feature = "zstd")]
        assert!(Compression::zstd().validate().is_ok());
        #[cfg(not(feature = "gzip"))]
        assert!(
            Compression::gzip()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("feature `gzip`")
        );
    }
}
