//! Which processes hold a lock file now, from the kernel's list of locks
//! (`/proc/locks`, Linux).
//!
//! The pid a lock file records is its first holder's: in a log several
//! processes share, that process may have exited while the others go on
//! writing, and its pid may even belong to another process by now. The
//! kernel's list names every holder of every `flock` by the lock's file
//! (device and inode), so `logcut pid` signals the writers, and only them.

use std::path::Path;

/// The pids of the processes holding a `flock` on `path` now, sorted,
/// this process left out; `None` if the kernel's list cannot be read (not
/// Linux, or a `/proc` that hides it). `shared`: the log is shared, so
/// its writers hold shared locks; an exclusive writer holds an exclusive
/// one, and a shared lock on its file is another tool's probe (`status`
/// takes one for an instant), not a writer.
///
/// The list may name no holder although one holds the lock: on file
/// systems whose `stat` reports another device than the kernel's list
/// (btrfs subvolumes), or when the holder is in another pid namespace
/// (the list then says 0, which is left out).
#[cfg(target_os = "linux")]
pub(crate) fn of(path: &Path, shared: bool) -> Option<Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = md.dev();
    let file = (libc::major(dev), libc::minor(dev), md.ino());
    let mut pids = parse(&text, file, shared);
    pids.retain(|p| *p != std::process::id());
    Some(pids)
}

/// Elsewhere there is no list to read.
#[cfg(not(target_os = "linux"))]
pub(crate) fn of(_path: &Path, _shared: bool) -> Option<Vec<u32>> {
    None
}

/// The holders of `flock` locks on the file `(major, minor, ino)` in the
/// text of `/proc/locks`: lines such as
///
/// ```text
/// 1: FLOCK  ADVISORY  WRITE 28423 fe:00:10027532 0 EOF
/// 1: -> FLOCK  ADVISORY  WRITE 28424 fe:00:10027532 0 EOF
/// ```
///
/// (the device's numbers in hexadecimal; a line with `->` is a process
/// waiting for the lock, not holding it). Only exclusive (`WRITE`) locks
/// unless `shared`. Pid 0 (a holder the list cannot name) and lines it
/// cannot read are skipped.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse(text: &str, file: (u32, u32, u64), shared: bool) -> Vec<u32> {
    let mut pids: Vec<u32> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            if words.next()? != "FLOCK" {
                return None;
            }
            let kind = words.nth(1)?;
            if !(kind == "WRITE" || shared && kind == "READ") {
                return None;
            }
            let pid: u32 = words.next()?.parse().ok()?;
            let mut at = words.next()?.split(':');
            let maj = u32::from_str_radix(at.next()?, 16).ok()?;
            let min = u32::from_str_radix(at.next()?, 16).ok()?;
            let ino: u64 = at.next()?.parse().ok()?;
            (pid != 0 && (maj, min, ino) == file).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_of_one_file_not_waiters_nor_other_files() {
        let text = "\
1: FLOCK  ADVISORY  READ  300 fe:00:77 0 EOF
1: -> FLOCK  ADVISORY  WRITE 400 fe:00:77 0 EOF
2: FLOCK  ADVISORY  READ  200 fe:00:77 0 EOF
3: FLOCK  ADVISORY  WRITE 500 fe:00:78 0 EOF
4: FLOCK  ADVISORY  WRITE 600 fe:01:77 0 EOF
5: POSIX  ADVISORY  WRITE 700 fe:00:77 0 EOF
6: FLOCK  ADVISORY  READ  300 fe:00:77 0 EOF
7: FLOCK  ADVISORY  WRITE 0 fe:00:77 0 EOF
8: FLOCK  ADVISORY  WRITE 800 103:1a2:77 0 EOF
junk
9: FLOCK ADVISORY WRITE x fe:00:77 0 EOF
";
        assert_eq!(parse(text, (0xfe, 0, 77), true), [200, 300]);
        assert_eq!(parse(text, (0xfe, 0, 77), false), Vec::<u32>::new());
        assert_eq!(parse(text, (0xfe, 0, 78), false), [500]);
        assert_eq!(parse(text, (0x103, 0x1a2, 77), false), [800]);
        assert_eq!(parse("", (0xfe, 0, 77), true), Vec::<u32>::new());
    }

    /// The kernel's list names a lock another process holds (this one's
    /// own are left out: `logcut pid` probes the lock itself).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lock_another_process_holds_is_listed() {
        let path = std::env::temp_dir().join(format!("logcut-holders-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let mut child = std::process::Command::new("flock")
            .arg("-s")
            .arg(&path)
            .arg("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // flock(1) takes the lock, then runs cat in a child; the list
        // names the process that took the lock, flock(1) itself.
        let want = [child.id()];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let seen = of(&path, true).expect("/proc/locks");
            if seen == want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{seen:?}");
            std::thread::yield_now();
        }
        assert_eq!(of(&path, false).expect("/proc/locks"), Vec::<u32>::new());
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(of(&path, true).expect("/proc/locks"), Vec::<u32>::new());
        std::fs::remove_file(&path).unwrap();
    }
}
