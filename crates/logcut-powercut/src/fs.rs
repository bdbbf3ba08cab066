//! The FUSE side: kernel requests turned into [`Op`]s on a [`Disk`], with
//! the power switch and the injected faults.

use std::{
    ffi::OsStr,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::{
    disk::{Disk, is_dir},
    tree::{Kind, Node, Op},
};

/// Nothing is cached by the kernel: every lookup and attribute comes from
/// the live tree, so a rename or a power cut is never hidden by a cache.
const TTL: Duration = Duration::ZERO;

/// When the power goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutAt {
    /// Before the `n`th changing operation (counting from 1) takes effect.
    Op(u64),
    /// Before the `n`th sync (`fsync`, `fdatasync`, directory `fsync`)
    /// takes effect.
    BeforeSync(u64),
    /// After the `n`th sync reached the disk, before its caller learns.
    AfterSync(u64),
}

/// Faults the file system injects while it has power.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Refuse `renameat2` flags (`RENAME_NOREPLACE`) with EINVAL, as
    /// LazyFS, sshfs and other FUSE file systems do.
    pub refuse_rename_flags: bool,
    /// Fail every write to a file with this errno (EIO, ENOSPC ...).
    pub fail_writes: Option<i32>,
}

/// Counts of what the file system did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Changing operations (writes, creations, renames, syncs ...).
    pub ops: u64,
    /// Syncs.
    pub syncs: u64,
    /// Writes failed by [`Faults::fail_writes`].
    pub failed_writes: u64,
}

/// The power switch and the disk, shared by the FUSE thread and the test.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Signalled when the power goes and when the test releases the
    /// requests blocked since.
    pub(crate) changed: Condvar,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) disk: Disk,
    pub(crate) faults: Faults,
    pub(crate) cut: Option<CutAt>,
    pub(crate) counts: Counts,
    /// The power is off: changes fail.
    pub(crate) dead: bool,
    /// The test has killed the writers: blocked requests may now fail.
    pub(crate) released: bool,
}

impl Shared {
    pub(crate) fn new(disk: Disk, faults: Faults) -> Shared {
        Shared {
            state: Mutex::new(State {
                disk,
                faults,
                cut: None,
                counts: Counts::default(),
                dead: false,
                released: false,
            }),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After the power went, a request gets no answer until the test has
    /// killed the processes that made it: a program must never see an
    /// operation return after the cut (it would go on, and say it had
    /// written what no disk holds). The kernel does not let a process die
    /// while the file system holds its request, so it is answered (EIO)
    /// once the test released it, and the process dies before it can run.
    fn power_off<'a>(&self, mut st: MutexGuard<'a, State>) -> (MutexGuard<'a, State>, Errno) {
        if !st.dead {
            st.dead = true;
            self.changed.notify_all();
        }
        while !st.released {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        (st, Errno::EIO)
    }
}

/// The FUSE file system.
#[derive(Debug)]
pub(crate) struct PowerFs {
    pub(crate) shared: Arc<Shared>,
    uid: u32,
    gid: u32,
}

impl PowerFs {
    pub(crate) fn new(shared: Arc<Shared>) -> PowerFs {
        PowerFs {
            shared,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }

    /// Runs a changing operation: counts it, cuts the power where asked,
    /// and otherwise lets `f` change the disk.
    fn change<T>(
        &self,
        sync: bool,
        f: impl FnOnce(&mut State) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut st = self.shared.lock();
        if st.dead {
            return Err(self.shared.power_off(st).1);
        }
        st.counts.ops += 1;
        if sync {
            st.counts.syncs += 1;
        }
        let (ops, syncs) = (st.counts.ops, st.counts.syncs);
        match st.cut {
            Some(CutAt::Op(n)) if n == ops => return Err(self.shared.power_off(st).1),
            Some(CutAt::BeforeSync(n)) if sync && n == syncs => {
                return Err(self.shared.power_off(st).1);
            }
            _ => {}
        }
        let out = f(&mut st)?;
        if sync && st.cut == Some(CutAt::AfterSync(syncs)) {
            return Err(self.shared.power_off(st).1);
        }
        Ok(out)
    }

    fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        let (kind, size) = match &n.kind {
            Kind::File(d) => (FileType::RegularFile, d.len() as u64),
            Kind::Dir(e) => (FileType::Directory, e.len() as u64),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind,
            perm: (n.mode & 0o7777) as u16,
            nlink: n.nlink.max(u32::from(matches!(kind, FileType::Directory))),
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr_of(&self, ino: u64) -> Result<FileAttr, Errno> {
        let st = self.shared.lock();
        st.disk
            .live
            .nodes
            .get(&ino)
            .map(|n| self.attr(ino, n))
            .ok_or(Errno::ENOENT)
    }

    /// Creates `name` in `parent` (a file, or a directory).
    fn create_node(
        &self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        mode: u32,
    ) -> Result<FileAttr, Errno> {
        let ino = self.change(false, |st| {
            if !is_dir(&st.disk.live, parent) {
                return Err(Errno::ENOTDIR);
            }
            if st.disk.lookup(parent, name).is_some() {
                return Err(Errno::EEXIST);
            }
            let ino = st.disk.new_ino();
            st.disk.change(Op::Create {
                dir: parent,
                name: name.to_owned(),
                ino,
                is_dir: dir,
                mode: mode & 0o7777,
            });
            Ok(ino)
        })?;
        self.attr_of(ino)
    }
}

fn reply_empty(reply: ReplyEmpty, res: Result<(), Errno>) {
    match res {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl fuser::Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = self.shared.lock().disk.lookup(parent.0, name);
        match ino.ok_or(Errno::ENOENT).and_then(|i| self.attr_of(i)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr_of(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = ino.0;
        let res = if mode.is_some() || size.is_some() {
            self.change(false, |st| {
                if !st.disk.live.nodes.contains_key(&ino) {
                    return Err(Errno::ENOENT);
                }
                if let Some(len) = size {
                    if is_dir(&st.disk.live, ino) {
                        return Err(Errno::EISDIR);
                    }
                    st.disk.change(Op::Truncate { ino, len });
                }
                if let Some(mode) = mode {
                    st.disk.change(Op::Chmod {
                        ino,
                        mode: mode & 0o7777,
                    });
                }
                Ok(())
            })
        } else {
            Ok(())
        };
        match res.and_then(|()| self.attr_of(ino)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        match self.create_node(parent.0, name, false, mode & !umask) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.create_node(parent.0, name, true, mode & !umask) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_node(parent.0, name, false, mode & !umask) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.change(false, |st| {
                let ino = st.disk.lookup(parent.0, name).ok_or(Errno::ENOENT)?;
                if is_dir(&st.disk.live, ino) {
                    return Err(Errno::EISDIR);
                }
                st.disk.change(Op::Unlink {
                    dir: parent.0,
                    name: name.to_owned(),
                });
                Ok(())
            }),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.change(false, |st| {
                let ino = st.disk.lookup(parent.0, name).ok_or(Errno::ENOENT)?;
                match st.disk.live.nodes.get(&ino).and_then(Node::entries) {
                    None => return Err(Errno::ENOTDIR),
                    Some(e) if !e.is_empty() => return Err(Errno::ENOTEMPTY),
                    Some(_) => {}
                }
                st.disk.change(Op::Unlink {
                    dir: parent.0,
                    name: name.to_owned(),
                });
                Ok(())
            }),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.change(false, |st| {
                if !flags.is_empty()
                    && (st.faults.refuse_rename_flags || flags != RenameFlags::RENAME_NOREPLACE)
                {
                    return Err(Errno::EINVAL);
                }
                let from = st.disk.lookup(parent.0, name).ok_or(Errno::ENOENT)?;
                if let Some(to) = st.disk.lookup(newparent.0, newname) {
                    if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                        return Err(Errno::EEXIST);
                    }
                    let (a, b) = (is_dir(&st.disk.live, from), is_dir(&st.disk.live, to));
                    if a != b {
                        return Err(if b { Errno::EISDIR } else { Errno::ENOTDIR });
                    }
                    if b && st.disk.live.nodes[&to]
                        .entries()
                        .is_some_and(|e| !e.is_empty())
                    {
                        return Err(Errno::ENOTEMPTY);
                    }
                    if to == from {
                        return Ok(());
                    }
                }
                st.disk.change(Op::Rename {
                    from_dir: parent.0,
                    from: name.to_owned(),
                    to_dir: newparent.0,
                    to: newname.to_owned(),
                });
                Ok(())
            }),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.change(false, |st| {
            if is_dir(&st.disk.live, ino.0) {
                return Err(Errno::EPERM);
            }
            if !st.disk.live.nodes.contains_key(&ino.0) {
                return Err(Errno::ENOENT);
            }
            if st.disk.lookup(newparent.0, newname).is_some() {
                return Err(Errno::EEXIST);
            }
            st.disk.change(Op::Link {
                dir: newparent.0,
                name: newname.to_owned(),
                ino: ino.0,
            });
            Ok(())
        });
        match res.and_then(|()| self.attr_of(ino.0)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.shared.lock();
        match st.disk.live.nodes.get(&ino.0).map(|n| &n.kind) {
            Some(Kind::File(d)) => {
                let start = (offset as usize).min(d.len());
                let end = start.saturating_add(size as usize).min(d.len());
                reply.data(&d[start..end]);
            }
            Some(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let res = self.change(false, |st| {
            if let Some(errno) = st.faults.fail_writes {
                st.counts.failed_writes += 1;
                return Err(Errno::from_i32(errno));
            }
            match st.disk.live.nodes.get(&ino.0).map(|n| &n.kind) {
                Some(Kind::File(_)) => {}
                Some(Kind::Dir(_)) => return Err(Errno::EISDIR),
                None => return Err(Errno::ENOENT),
            }
            st.disk.change(Op::Write {
                ino: ino.0,
                offset,
                data: data.to_vec(),
            });
            Ok(())
        });
        match res {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.change(true, |st| {
                st.disk.sync_file(ino.0);
                Ok(())
            }),
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.shared.lock();
        let Some(entries) = st.disk.live.nodes.get(&ino.0).and_then(Node::entries) else {
            return reply.error(Errno::ENOTDIR);
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots.into_iter().chain(entries.iter().map(|(name, &i)| {
            let kind = if is_dir(&st.disk.live, i) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            (i, kind, name.as_os_str())
        }));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.change(true, |st| {
                st.disk.sync_dir(ino.0);
                Ok(())
            }),
        );
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.change(false, |st| {
                let len = match st.disk.live.nodes.get(&ino.0).and_then(Node::data) {
                    Some(d) => d.len() as u64,
                    None => return Err(Errno::ENOENT),
                };
                match mode {
                    // Space is not modelled: reserving it changes nothing.
                    libc::FALLOC_FL_KEEP_SIZE => Ok(()),
                    0 if offset + length > len => {
                        st.disk.change(Op::Truncate {
                            ino: ino.0,
                            len: offset + length,
                        });
                        Ok(())
                    }
                    0 => Ok(()),
                    _ => Err(Errno::EOPNOTSUPP),
                }
            }),
        );
    }
}
