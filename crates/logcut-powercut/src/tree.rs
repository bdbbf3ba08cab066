//! A file-system tree in memory and the operations that change it.
//!
//! The same [`Op`]s change the live tree (what programs see) and, once
//! synced or chosen to survive a power cut, the durable one (what is on
//! the disk): one `apply` for both, so the two can never disagree about
//! what an operation means.

use std::{collections::BTreeMap, ffi::OsString, time::SystemTime};

/// Inode number of the root directory (FUSE's).
pub(crate) const ROOT: u64 = 1;

/// The mode of a file known by its data only, until its creation says.
const UNKNOWN_MODE: u32 = u32::MAX;

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory and its entries.
    Dir(BTreeMap<OsString, u64>),
}

/// One inode.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// Permission bits.
    pub(crate) mode: u32,
    /// Names pointing at it.
    pub(crate) nlink: u32,
    pub(crate) mtime: SystemTime,
}

impl Node {
    fn new(dir: bool, mode: u32) -> Node {
        Node {
            kind: if dir {
                Kind::Dir(BTreeMap::new())
            } else {
                Kind::File(Vec::new())
            },
            mode,
            nlink: 0,
            mtime: SystemTime::now(),
        }
    }

    /// The file's bytes, or `None` for a directory.
    pub(crate) fn data(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::File(d) => Some(d),
            Kind::Dir(_) => None,
        }
    }

    /// The directory's entries, or `None` for a file.
    pub(crate) fn entries(&self) -> Option<&BTreeMap<OsString, u64>> {
        match &self.kind {
            Kind::Dir(e) => Some(e),
            Kind::File(_) => None,
        }
    }
}

/// A change to the tree. Data operations (`Write`, `Truncate`, `Chmod`)
/// concern one inode and become durable with its `fsync`; name operations
/// concern a directory and become durable with its `fsync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Writes `data` at `offset` (zero-filling any gap).
    Write {
        ino: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// Sets the length.
    Truncate { ino: u64, len: u64 },
    /// Sets the permission bits.
    Chmod { ino: u64, mode: u32 },
    /// A new inode `ino` named `name` in `dir`.
    Create {
        dir: u64,
        name: OsString,
        ino: u64,
        is_dir: bool,
        mode: u32,
    },
    /// Another name for `ino`.
    Link { dir: u64, name: OsString, ino: u64 },
    /// Removes a name (a file's, or an empty directory's).
    Unlink { dir: u64, name: OsString },
    /// Moves a name, replacing what the new name pointed at.
    Rename {
        from_dir: u64,
        from: OsString,
        to_dir: u64,
        to: OsString,
    },
}

impl Op {
    /// The inode whose `fsync` makes this data operation durable, or
    /// `None` for a name operation.
    pub(crate) fn data_inode(&self) -> Option<u64> {
        match self {
            Op::Write { ino, .. } | Op::Truncate { ino, .. } | Op::Chmod { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    /// True if this name operation changes directory `d`.
    pub(crate) fn touches_dir(&self, d: u64) -> bool {
        match self {
            Op::Create { dir, .. } | Op::Link { dir, .. } | Op::Unlink { dir, .. } => *dir == d,
            Op::Rename {
                from_dir, to_dir, ..
            } => *from_dir == d || *to_dir == d,
            _ => false,
        }
    }
}

/// Inodes by number.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub(crate) nodes: BTreeMap<u64, Node>,
}

impl Tree {
    /// An empty root directory.
    pub(crate) fn new() -> Tree {
        let mut root = Node::new(true, 0o755);
        root.nlink = 1;
        Tree {
            nodes: BTreeMap::from([(ROOT, root)]),
        }
    }

    /// The inode `name` in directory `dir` points at.
    pub(crate) fn lookup(&self, dir: u64, name: &std::ffi::OsStr) -> Option<u64> {
        self.nodes.get(&dir)?.entries()?.get(name).copied()
    }

    /// Applies `op`. An operation whose inode or directory is missing (its
    /// creation did not survive) changes nothing it cannot reach; the caller
    /// checked the operation against the live tree before.
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::Write { ino, offset, data } => {
                if let Kind::File(d) = &mut self.file(*ino).kind {
                    let off = *offset as usize;
                    if d.len() < off + data.len() {
                        d.resize(off + data.len(), 0);
                    }
                    d[off..off + data.len()].copy_from_slice(data);
                }
                self.touch(*ino);
            }
            Op::Truncate { ino, len } => {
                if let Kind::File(d) = &mut self.file(*ino).kind {
                    d.resize(*len as usize, 0);
                }
                self.touch(*ino);
            }
            Op::Chmod { ino, mode } => self.file(*ino).mode = *mode,
            Op::Create {
                dir,
                name,
                ino,
                is_dir,
                mode,
            } => {
                // The inode may be here already, without a name: its data
                // was synced before its name was.
                let n = self
                    .nodes
                    .entry(*ino)
                    .or_insert_with(|| Node::new(*is_dir, *mode));
                if n.mode == UNKNOWN_MODE {
                    n.mode = *mode;
                }
                self.put(*dir, name.clone(), *ino);
            }
            Op::Link { dir, name, ino } => {
                if self.nodes.contains_key(ino) {
                    self.put(*dir, name.clone(), *ino);
                }
            }
            Op::Unlink { dir, name } => {
                self.take(*dir, name);
            }
            Op::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                if let Some(ino) = self.take(*from_dir, from) {
                    self.put(*to_dir, to.clone(), ino);
                }
            }
        }
    }

    /// The file `ino`; a file whose data reaches the disk before its name
    /// does (`fsync` of the file, not of its directory) is made here,
    /// nameless, and named when its creation reaches the disk.
    fn file(&mut self, ino: u64) -> &mut Node {
        self.nodes
            .entry(ino)
            .or_insert_with(|| Node::new(false, UNKNOWN_MODE))
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.mtime = SystemTime::now();
        }
    }

    /// Names `ino` `name` in `dir`, replacing (and unlinking) what was there.
    fn put(&mut self, dir: u64, name: OsString, ino: u64) {
        let old = match self.nodes.get_mut(&dir).map(|n| &mut n.kind) {
            Some(Kind::Dir(e)) => e.insert(name, ino),
            _ => return,
        };
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink += 1;
        }
        if let Some(old) = old {
            self.drop_link(old);
        }
        self.touch(dir);
    }

    /// Removes `name` from `dir`; returns the inode it pointed at.
    fn take(&mut self, dir: u64, name: &OsString) -> Option<u64> {
        let ino = match self.nodes.get_mut(&dir).map(|n| &mut n.kind) {
            Some(Kind::Dir(e)) => e.remove(name)?,
            _ => return None,
        };
        self.drop_link(ino);
        self.touch(dir);
        Some(ino)
    }

    fn drop_link(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
        }
    }

    /// Forgets the inodes no name reaches (after a power cut, an unlinked
    /// file that was still open is gone) and recounts the links.
    pub(crate) fn collect(&mut self) {
        let mut links: BTreeMap<u64, u32> = BTreeMap::from([(ROOT, 1)]);
        let mut todo = vec![ROOT];
        while let Some(d) = todo.pop() {
            let Some(entries) = self.nodes.get(&d).and_then(Node::entries) else {
                continue;
            };
            for &ino in entries.values() {
                let n = links.entry(ino).or_insert(0);
                *n += 1;
                if *n == 1 {
                    todo.push(ino);
                }
            }
        }
        self.nodes.retain(|ino, _| links.contains_key(ino));
        for (ino, n) in &mut self.nodes {
            n.nlink = links[ino];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dir: u64, name: &str, ino: u64) -> Op {
        Op::Create {
            dir,
            name: name.into(),
            ino,
            is_dir: false,
            mode: 0o640,
        }
    }

    fn write(ino: u64, offset: u64, data: &[u8]) -> Op {
        Op::Write {
            ino,
            offset,
            data: data.to_vec(),
        }
    }

    #[test]
    fn writes_fill_gaps_with_zeros_and_truncate_cuts() {
        let mut t = Tree::new();
        t.apply(&create(ROOT, "a", 2));
        t.apply(&write(2, 2, b"xy"));
        assert_eq!(t.nodes[&2].data(), Some(&b"\0\0xy"[..]));
        t.apply(&Op::Truncate { ino: 2, len: 1 });
        assert_eq!(t.nodes[&2].data(), Some(&b"\0"[..]));
    }

    #[test]
    fn rename_replaces_and_counts_links() {
        let mut t = Tree::new();
        t.apply(&create(ROOT, "a", 2));
        t.apply(&create(ROOT, "b", 3));
        t.apply(&Op::Link {
            dir: ROOT,
            name: "c".into(),
            ino: 2,
        });
        assert_eq!(t.nodes[&2].nlink, 2);
        t.apply(&Op::Rename {
            from_dir: ROOT,
            from: "a".into(),
            to_dir: ROOT,
            to: "b".into(),
        });
        assert_eq!(t.lookup(ROOT, "b".as_ref()), Some(2));
        assert_eq!(t.lookup(ROOT, "a".as_ref()), None);
        assert_eq!(t.nodes[&2].nlink, 2);
        assert_eq!(t.nodes[&3].nlink, 0);
        t.collect();
        assert!(!t.nodes.contains_key(&3), "unreachable inode kept");
    }

    #[test]
    fn data_synced_before_the_name_is_kept_when_the_name_arrives() {
        let mut disk = Tree::new();
        disk.apply(&write(2, 0, b"abc"));
        disk.apply(&create(ROOT, "a", 2));
        assert_eq!(disk.nodes[&2].data(), Some(&b"abc"[..]));
        assert_eq!(disk.nodes[&2].mode, 0o640);
    }

    #[test]
    fn data_without_a_name_is_collected() {
        let mut t = Tree::new();
        t.apply(&write(9, 0, b"x"));
        t.apply(&Op::Unlink {
            dir: ROOT,
            name: "nothing".into(),
        });
        assert_eq!(t.nodes.len(), 2);
        t.collect();
        assert_eq!(t.nodes.len(), 1);
        assert!(t.nodes[&ROOT].entries().is_some_and(BTreeMap::is_empty));
    }
}
