//! A file system that can lose power, for testing what survives a power
//! cut.
//!
//! # Overview
//!
//! [`Mount`] serves a [`Disk`] through FUSE. Programs see an ordinary file
//! system; underneath, every change (write, truncate, create, link,
//! rename, unlink, chmod) waits in memory until a sync makes it durable, as
//! POSIX promises and no more: `fsync`/`fdatasync` of a file makes that
//! file's data durable, `fsync` of a directory the names in it. A new
//! file's name is therefore not durable until its directory is synced,
//! even where ext4 or XFS would usually have committed it.
//!
//! The power switch ([`Mount::cut_at`]) goes off before the Nth changing
//! operation, or just before or just after the Nth sync. From then on no
//! operation returns to its caller until the test has killed the programs
//! ([`Mount::release`]), so no program learns of anything after the cut.
//! [`Disk::power_cut`] then keeps what was durable and, with
//! [`Lose::Some`], a random part of what was not, in an order a disk could
//! have written it (a prefix of the name operations, a prefix of each
//! file's writes, the last possibly torn at a sector boundary). Mounting
//! the disk again is the reboot.
//!
//! This is the method of the crash-consistency tools ALICE and CrashMonkey
//! and of xfstests' `log-writes` replay; those need device-mapper, which is
//! not always at hand, and FUSE is.
//!
//! [`Faults`] adds what real file systems do: refuse `RENAME_NOREPLACE`
//! (as LazyFS, sshfs and older NFS do) or fail writes with EIO.
//!
//! # Known problems
//!
//! - Space is not modelled: `fallocate` reserves nothing, writes never
//!   fail with ENOSPC unless asked to.
//! - Locks (`flock`) are the kernel's, which FUSE keeps per mount: they
//!   are right for processes on this machine.
//! - Rename of a name between two directories becomes durable with either
//!   directory's sync (logcut renames within one directory).
//! - The file system runs one request at a time, and keeps every file in
//!   memory: it is for tests of a few megabytes.

mod disk;
mod fs;
mod mount;
mod tree;

pub use crate::{
    disk::{CutReport, Disk, Lose, Rng},
    fs::{Counts, CutAt, Faults},
    mount::Mount,
};
