//! The few file-system calls the appender makes, relative to an open
//! directory and never following a symlink at the last component.
//!
//! Working through a directory descriptor (`openat`, `linkat`, `renameat`)
//! keeps every operation inside the directory the appender opened at start,
//! even if the directory's path is later renamed or replaced.

use std::{
    fs::File,
    io::{self, Write},
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// An open log directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Identity and length of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) len: u64,
    pub(crate) is_file: bool,
    pub(crate) mtime_ms: i64,
    pub(crate) nlink: u64,
    /// Permission bits.
    pub(crate) mode: u32,
}

// The field types of `stat` differ between platforms; the casts are
// no-ops on some of them.
#[allow(clippy::unnecessary_cast)]
fn info(st: &rustix::fs::Stat) -> FileInfo {
    FileInfo {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        len: st.st_size as u64,
        is_file: FileType::from_raw_mode(st.st_mode) == FileType::RegularFile,
        mtime_ms: (st.st_mtime as i64).saturating_mul(1000) + (st.st_mtime_nsec as i64) / 1_000_000,
        nlink: st.st_nlink as u64,
        mode: (st.st_mode as u32) & 0o7777,
    }
}

impl Dir {
    /// Creates `path` (mode `dir_mode`, parents too) if missing, and opens it.
    pub(crate) fn create_and_open(path: &Path, dir_mode: u32) -> io::Result<Dir> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates a new file for appending; fails if anything (a file, a
    /// symlink, a directory) already has that name. Its mode is set to
    /// exactly `mode`, whatever the umask.
    pub(crate) fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR
                | OFlags::CREATE
                | OFlags::EXCL
                | OFlags::APPEND
                | OFlags::CLOEXEC
                | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// Opens (creating if missing) a file for reading and appending, not
    /// following a symlink.
    pub(crate) fn open_append(&self, name: &str, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Opens an existing file for reading and appending, not following a
    /// symlink (shared mode: the active file another process created).
    pub(crate) fn open_existing_append(&self, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::APPEND | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Opens an existing file for reading and writing in place (no
    /// append: `pwrite` at an offset), not following a symlink.
    pub(crate) fn open_rw(&self, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Opens (creating, mode `mode`) a lock file, not following a symlink,
    /// without locking it.
    pub(crate) fn open_lock(&self, name: &str, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Opens a file for reading, not following a symlink.
    pub(crate) fn open_read(&self, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Opens (creating, mode `mode`) the lock file `name` and takes an
    /// exclusive `flock` on it without waiting. `Ok(Err(content))` if
    /// another open file holds the lock: `content` is what its holder wrote
    /// in it (for the error message). The lock lasts as long as the file is
    /// open, and the kernel releases it when the holder dies, even by
    /// SIGKILL.
    pub(crate) fn try_lock(&self, name: &str, mode: u32) -> io::Result<Result<File, String>> {
        let file = self.open_lock(name, mode)?;
        if flock(&file, Flock::TryExclusive)? {
            Ok(Ok(file))
        } else {
            Ok(Err(read_small(&file)
                .unwrap_or_default()
                .trim()
                .to_string()))
        }
    }

    /// `lstat` of a name in the directory; `None` if it does not exist.
    pub(crate) fn stat(&self, name: &str) -> io::Result<Option<FileInfo>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(info(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the file `from` the additional name `to`; fails with
    /// `AlreadyExists` if `to` exists (nothing is ever overwritten).
    pub(crate) fn link(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.fd,
            from,
            &self.fd,
            to,
            AtFlags::empty(),
        )?)
    }

    /// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists.
    ///
    /// Where the file system refuses `RENAME_NOREPLACE` (EINVAL: FUSE file
    /// systems such as sshfs and LazyFS, older NFS, some network and overlay
    /// file systems), a hard link followed by an unlink does the same
    /// without ever overwriting: a crash in between leaves the file under
    /// both names, which recovery reads as one segment (same inode). Where
    /// there are no hard links either, `to` is checked and then plainly
    /// renamed to; only logcut creates names of this form in its directory,
    /// and it does so under its locks, so nothing can appear in between.
    pub(crate) fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        use rustix::io::Errno;
        match rustix::fs::renameat_with(
            &self.fd,
            from,
            &self.fd,
            to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            res => return Ok(res?),
        }
        match self.link(from, to) {
            Ok(()) => {
                if let Err(e) = self.unlink(from) {
                    // Not renamed after all: take the new name away again.
                    let _ = self.unlink(to);
                    return Err(e);
                }
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(1 | 95)) => {
                // EPERM / EOPNOTSUPP: no hard links on this file system.
                if self.stat(to)?.is_some() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                self.rename(from, to)
            }
            Err(e) => Err(e),
        }
    }

    /// Renames `from` to `to`, atomically replacing `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Removes a name (a symlink itself, never its target).
    pub(crate) fn unlink(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Makes renames and creations in the directory durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Bytes free to unprivileged users on the file system holding the
    /// directory.
    pub(crate) fn free_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

/// Replaces the contents of a (locked) lock file with `content`.
pub(crate) fn rewrite(f: &File, content: &[u8]) -> io::Result<()> {
    rustix::fs::ftruncate(f.as_fd(), 0)?;
    overwrite(f, content)
}

/// Writes `content` at the start of a file (one `pwrite`, continued only if
/// it was cut short), without truncating it first.
pub(crate) fn overwrite(f: &File, content: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < content.len() {
        match rustix::io::pwrite(f.as_fd(), &content[done..], done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// An `flock` operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flock {
    /// Shared, waiting for it.
    Shared,
    /// Exclusive, waiting for it.
    Exclusive,
    /// Shared, failing at once if another holds it exclusively.
    TryShared,
    /// Exclusive, failing at once if another holds it.
    TryExclusive,
    /// Release.
    Unlock,
}

/// Takes or releases an `flock` on `f` (on its open file description, so
/// two descriptors opened separately lock against each other even in one
/// process). `Ok(false)` if a `Try*` lock is held by another. Changing a
/// held lock's kind is not atomic: the old lock is released first, so a
/// failed `TryExclusive` leaves none.
pub(crate) fn flock(f: &File, op: Flock) -> io::Result<bool> {
    use rustix::fs::FlockOperation as F;
    let op = match op {
        Flock::Shared => F::LockShared,
        Flock::Exclusive => F::LockExclusive,
        Flock::TryShared => F::NonBlockingLockShared,
        Flock::TryExclusive => F::NonBlockingLockExclusive,
        Flock::Unlock => F::Unlock,
    };
    loop {
        match rustix::fs::flock(f.as_fd(), op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads a small file whole (a lock or cut file), from its start.
pub(crate) fn read_small(f: &File) -> io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = loop {
        match rustix::io::pread(f.as_fd(), &mut buf[..], 0) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Identity and length of an open file.
pub(crate) fn file_info(f: &File) -> io::Result<FileInfo> {
    Ok(info(&rustix::fs::fstat(f.as_fd())?))
}

/// Writes all of `buf`, retrying after interruptions. On failure returns the
/// error and how many bytes did reach the file.
pub(crate) fn write_all(mut f: &File, mut buf: &[u8]) -> Result<(), (io::Error, usize)> {
    let mut done = 0;
    while !buf.is_empty() {
        match f.write(buf) {
            Ok(0) => return Err((io::Error::from(io::ErrorKind::WriteZero), done)),
            Ok(n) => {
                done += n;
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, done)),
        }
    }
    Ok(())
}

/// Cuts a file back to `len` bytes (to remove a partly written record).
pub(crate) fn truncate(f: &File, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(f.as_fd(), len)?)
}

/// Allocates the blocks of `len` bytes from `offset` without changing the
/// file's length (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so that later
/// appends into them need no free space. Fails with `Unsupported` where
/// the file system cannot.
pub(crate) fn reserve(f: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(rustix::fs::fallocate(
            f.as_fd(),
            rustix::fs::FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (f, offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Sets an open file's permission bits.
pub(crate) fn set_mode(f: &File, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode))?)
}

/// Flushes a file's data to the device.
/// Starts writing a file's dirty pages back, without waiting (Linux:
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`): the `fdatasync` that follows
/// then waits for less, and the disk works while the sealer syncs the
/// directory and the manifest. Best effort; a no-op elsewhere.
pub(crate) fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor `f` keeps open for
        // the duration of the call; it reads no memory of ours.
        let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

pub(crate) fn sync_data(f: &File) -> io::Result<()> {
    Ok(rustix::fs::fdatasync(f.as_fd())?)
}
