//! What programs see, what the disk holds, and the operations in between.
//!
//! Every change goes to the live tree at once and waits in `pending` until
//! a sync makes it durable: `fsync`/`fdatasync` of a file takes that
//! file's data operations, `fsync` of a directory takes the name
//! operations in it (POSIX's promise, and no more: a new file's name is
//! not durable until its directory is synced). A power cut keeps the
//! durable tree and, if asked, some of what was pending, in the order a
//! disk could have written it.

use std::{
    ffi::OsStr,
    path::{Component, Path},
};

use crate::tree::{Kind, Op, ROOT, Tree};

/// A file system's contents across mounts: what programs see and what has
/// reached the disk.
#[derive(Clone, Debug)]
pub struct Disk {
    pub(crate) live: Tree,
    durable: Tree,
    pending: Vec<Op>,
    next_ino: u64,
}

impl Default for Disk {
    fn default() -> Disk {
        Disk::new()
    }
}

/// How much of what was not synced a power cut keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lose {
    /// Nothing that was not synced survives.
    All,
    /// A random part survives, as a disk may have written it before the
    /// power went: a prefix of the pending name operations (a journal
    /// writes them in order), and for each file a prefix of its pending
    /// writes, the last one possibly torn at a 512-byte sector boundary.
    Some {
        /// Seed of the choice, so that a failure can be replayed.
        seed: u64,
    },
}

/// What a power cut kept and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Operations that were synced before the cut (none of them lost).
    pub pending_kept: usize,
    /// Operations that were not synced and were dropped.
    pub pending_lost: usize,
    /// True if a write was kept only in part.
    pub torn: bool,
}

impl Disk {
    /// An empty file system.
    pub fn new() -> Disk {
        Disk {
            live: Tree::new(),
            durable: Tree::new(),
            pending: Vec::new(),
            next_ino: ROOT + 1,
        }
    }

    /// Creates the directories of `path` (relative to the root) and makes
    /// them durable, as a test's setup that a power cut must not undo.
    pub fn create_dir_all(&mut self, path: &Path) {
        let mut dir = ROOT;
        for c in path.components() {
            let Component::Normal(name) = c else { continue };
            dir = match self.live.lookup(dir, name) {
                Some(ino) => ino,
                None => {
                    let ino = self.new_ino();
                    self.change(Op::Create {
                        dir,
                        name: name.to_owned(),
                        ino,
                        is_dir: true,
                        mode: 0o755,
                    });
                    ino
                }
            };
        }
        self.sync_all();
    }

    /// The bytes programs would read at `path`, if it is a file.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let ino = self.resolve(path)?;
        self.live.nodes.get(&ino)?.data().map(<[u8]>::to_vec)
    }

    /// The names in directory `path`, sorted.
    pub fn list(&self, path: &Path) -> Vec<String> {
        self.resolve(path)
            .and_then(|ino| self.live.nodes.get(&ino))
            .and_then(|n| n.entries())
            .map(|e| e.keys().map(|k| k.to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    fn resolve(&self, path: &Path) -> Option<u64> {
        let mut ino = ROOT;
        for c in path.components() {
            if let Component::Normal(name) = c {
                ino = self.live.lookup(ino, name)?;
            }
        }
        Some(ino)
    }

    /// How many operations wait for a sync.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn new_ino(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    pub(crate) fn lookup(&self, dir: u64, name: &OsStr) -> Option<u64> {
        self.live.lookup(dir, name)
    }

    /// Makes a change programs see at once and the disk only once synced.
    pub(crate) fn change(&mut self, op: Op) {
        self.live.apply(&op);
        self.pending.push(op);
    }

    /// `fsync` of a file: its pending data operations reach the disk.
    pub(crate) fn sync_file(&mut self, ino: u64) {
        self.sync_where(|op| op.data_inode() == Some(ino));
    }

    /// `fsync` of a directory: the name operations in it reach the disk.
    pub(crate) fn sync_dir(&mut self, dir: u64) {
        self.sync_where(|op| op.touches_dir(dir));
    }

    /// `sync(2)`: everything reaches the disk.
    pub fn sync_all(&mut self) {
        self.sync_where(|_| true);
    }

    fn sync_where(&mut self, mut pick: impl FnMut(&Op) -> bool) {
        let mut rest = Vec::with_capacity(self.pending.len());
        for op in self.pending.drain(..) {
            if pick(&op) {
                self.durable.apply(&op);
            } else {
                rest.push(op);
            }
        }
        self.pending = rest;
    }

    /// The power goes: what programs see becomes what the disk held, with
    /// what `lose` lets survive of the pending operations.
    pub fn power_cut(&mut self, lose: Lose) -> CutReport {
        let mut report = CutReport::default();
        let pending = std::mem::take(&mut self.pending);
        let keep = match lose {
            Lose::All => vec![Keep::No; pending.len()],
            Lose::Some { seed } => choose(&pending, &mut Rng::new(seed)),
        };
        for (op, keep) in pending.iter().zip(keep) {
            match keep {
                Keep::No => report.pending_lost += 1,
                Keep::Whole => {
                    report.pending_kept += 1;
                    self.durable.apply(op);
                }
                Keep::Torn(len) => {
                    report.pending_kept += 1;
                    report.torn = true;
                    if let Op::Write { ino, offset, data } = op {
                        self.durable.apply(&Op::Write {
                            ino: *ino,
                            offset: *offset,
                            data: data[..len].to_vec(),
                        });
                    }
                }
            }
        }
        self.durable.collect();
        self.live = self.durable.clone();
        report
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    No,
    Whole,
    /// The first `n` bytes of a write.
    Torn(usize),
}

/// Which pending operations a disk wrote before the power went.
fn choose(pending: &[Op], rng: &mut Rng) -> Vec<Keep> {
    let names = pending.iter().filter(|o| o.data_inode().is_none()).count();
    let mut names_left = rng.below(names as u64 + 1);
    let mut data_left = std::collections::BTreeMap::new();
    for op in pending {
        if let Some(ino) = op.data_inode() {
            *data_left.entry(ino).or_insert(0u64) += 1;
        }
    }
    for n in data_left.values_mut() {
        *n = rng.below(*n + 1);
    }
    let mut keep = Vec::with_capacity(pending.len());
    for op in pending {
        let k = match op.data_inode() {
            None if names_left > 0 => {
                names_left -= 1;
                Keep::Whole
            }
            None => Keep::No,
            Some(ino) => match data_left.get_mut(&ino) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    Keep::Whole
                }
                Some(n) if *n == 1 => {
                    *n = 0;
                    torn(op, rng)
                }
                _ => Keep::No,
            },
        };
        keep.push(k);
    }
    keep
}

/// The last write a disk took may have reached it only up to a sector
/// boundary inside it.
fn torn(op: &Op, rng: &mut Rng) -> Keep {
    let Op::Write { offset, data, .. } = op else {
        return Keep::Whole;
    };
    let end = offset + data.len() as u64;
    let first = (offset / 512 + 1) * 512;
    if first >= end || rng.below(2) == 0 {
        return Keep::Whole;
    }
    let sectors = (end - 1 - first) / 512 + 1;
    let cut = first + 512 * rng.below(sectors);
    Keep::Torn((cut - offset) as usize)
}

/// A small deterministic random generator (xorshift64*), so that every
/// power cut can be replayed from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`0` if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// True if the inode is a directory.
pub(crate) fn is_dir(tree: &Tree, ino: u64) -> bool {
    matches!(tree.nodes.get(&ino).map(|n| &n.kind), Some(Kind::Dir(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(d: &mut Disk, name: &str) -> u64 {
        let ino = d.new_ino();
        d.change(Op::Create {
            dir: ROOT,
            name: name.into(),
            ino,
            is_dir: false,
            mode: 0o640,
        });
        ino
    }

    fn write(d: &mut Disk, ino: u64, offset: u64, data: &[u8]) {
        d.change(Op::Write {
            ino,
            offset,
            data: data.to_vec(),
        });
    }

    #[test]
    fn a_synced_file_without_a_synced_name_is_lost() {
        let mut d = Disk::new();
        let a = file(&mut d, "a");
        write(&mut d, a, 0, b"hello");
        d.sync_file(a);
        let r = d.power_cut(Lose::All);
        assert_eq!(d.read("a".as_ref()), None);
        assert_eq!(r.pending_lost, 1);
    }

    #[test]
    fn data_synced_before_its_name_is_there_once_the_name_is() {
        let mut d = Disk::new();
        let a = file(&mut d, "a");
        write(&mut d, a, 0, b"hello");
        d.sync_file(a);
        write(&mut d, a, 5, b"!");
        d.sync_dir(ROOT);
        d.power_cut(Lose::All);
        assert_eq!(d.read("a".as_ref()), Some(b"hello".to_vec()));
    }

    #[test]
    fn a_synced_name_without_synced_data_is_an_empty_file() {
        let mut d = Disk::new();
        let a = file(&mut d, "a");
        write(&mut d, a, 0, b"hello");
        d.sync_dir(ROOT);
        d.power_cut(Lose::All);
        assert_eq!(d.read("a".as_ref()), Some(Vec::new()));
    }

    #[test]
    fn name_and_data_synced_survive_and_later_writes_do_not() {
        let mut d = Disk::new();
        let a = file(&mut d, "a");
        write(&mut d, a, 0, b"hello");
        d.sync_file(a);
        d.sync_dir(ROOT);
        write(&mut d, a, 5, b" world");
        d.change(Op::Rename {
            from_dir: ROOT,
            from: "a".into(),
            to_dir: ROOT,
            to: "b".into(),
        });
        assert_eq!(d.read("b".as_ref()), Some(b"hello world".to_vec()));
        d.power_cut(Lose::All);
        assert_eq!(d.read("a".as_ref()), Some(b"hello".to_vec()));
        assert_eq!(d.read("b".as_ref()), None);
    }

    #[test]
    fn some_keeps_a_prefix_of_each_files_writes() {
        for seed in 0..200 {
            let mut d = Disk::new();
            let a = file(&mut d, "a");
            d.sync_dir(ROOT);
            let mut all = Vec::new();
            for i in 0..20u8 {
                let chunk = vec![b'a' + i; 300];
                write(&mut d, a, all.len() as u64, &chunk);
                all.extend_from_slice(&chunk);
            }
            let r = d.power_cut(Lose::Some { seed });
            let got = d.read("a".as_ref()).expect("a is durable");
            assert!(all.starts_with(&got), "seed {seed}: not a prefix");
            if r.torn {
                assert_eq!(got.len() % 512, 0, "seed {seed}: torn off a sector");
            }
        }
    }

    #[test]
    fn some_keeps_a_prefix_of_the_name_operations() {
        for seed in 0..100 {
            let mut d = Disk::new();
            for i in 0..10 {
                file(&mut d, &format!("f{i}"));
            }
            d.power_cut(Lose::Some { seed });
            let names = d.list("".as_ref());
            let n = names.len();
            let want: Vec<String> = {
                let mut v: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
                v.sort();
                v
            };
            assert_eq!(names, want, "seed {seed}: not a prefix of the creations");
        }
    }
}
