//! What the power-loss tests share: temporary mount points, the child
//! writer's records, mounting (skipped only outside CI where FUSE is not
//! available).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use logcut_powercut::{Disk, Faults, Mount};

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("logcut-pc-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The log directory inside every test disk.
pub(crate) const LOGS: &str = "logs";

/// A disk holding an empty, durable log directory.
pub(crate) fn empty_disk() -> Disk {
    let mut d = Disk::new();
    d.create_dir_all(LOGS.as_ref());
    d
}

/// Mounts `disk` at `at`; `None` (the test is skipped, and says so) only
/// where FUSE cannot be mounted and `CI` is not set: in CI it must work.
pub(crate) fn mount(disk: Disk, at: &Path, faults: Faults) -> Option<Mount> {
    if std::env::var_os("LOGCUT_NO_FUSE").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: LOGCUT_NO_FUSE is set (no usable /dev/fuse)"
        );
        return None;
    }
    match Mount::new(disk, at, faults) {
        Ok(m) => Some(m),
        Err(e) if std::env::var_os("CI").is_none() => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: cannot mount FUSE here ({e}); CI=true makes this a failure"
            );
            None
        }
        Err(e) => panic!("cannot mount FUSE at {}: {e}", at.display()),
    }
}

/// Length of every record.
pub(crate) const LEN: usize = 100;

/// Record `seq` of writer `w`: `w<w> <seq> x...\n`, exactly [`LEN`] bytes.
pub(crate) fn record(w: usize, seq: u64) -> Vec<u8> {
    let mut r = format!("w{w:03} {seq:010} ").into_bytes();
    while r.len() + 1 < LEN {
        r.push(b'a' + (seq % 26) as u8);
    }
    r.push(b'\n');
    r
}

/// The writer and id of a whole record, checked byte for byte.
pub(crate) fn parse(rec: &[u8]) -> Option<(usize, u64)> {
    if rec.len() != LEN {
        return None;
    }
    let text = std::str::from_utf8(rec).ok()?;
    let w: usize = text.get(1..4)?.parse().ok()?;
    let seq: u64 = text.get(5..15)?.parse().ok()?;
    (rec == record(w, seq)).then_some((w, seq))
}

/// A command that runs the ignored test `name` of this test binary alone.
pub(crate) fn child_test(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// Waits until `cond` holds, yielding in between, and fails after 30 s.
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}
