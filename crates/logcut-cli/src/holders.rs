//! Which processes hold a lock file now, from the kernel's list of locks
//! (`/proc/locks`, Linux).
//!
//! The pid a lock file records is its first holder's: in a log several
//! processes share, that process may have exited while the others go on
//! writing, and its pid may even belong to another process by now. The
//! kernel's list names every holder of every `flock` by the lock's file
//! (device and inode), so `logcut pid` signals the writers, and only them.

use std::{os::unix::fs::MetadataExt, path::Path};

/// The pids of the processes holding a `flock` on `path` now, sorted;
/// `None` if the kernel's list cannot be read (not Linux, or a `/proc`
/// that hides it).
pub(crate) fn of(path: &Path) -> Option<Vec<u32>> {
    let md = std::fs::symlink_metadata(path).ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = md.dev();
    Some(parse(&text, libc::major(dev), libc::minor(dev), md.ino()))
}

/// The holders of `flock` locks on the file `major:minor:ino` in the text
/// of `/proc/locks`: lines such as
///
/// ```text
/// 1: FLOCK  ADVISORY  WRITE 28423 fe:00:10027532 0 EOF
/// 1: -> FLOCK  ADVISORY  WRITE 28424 fe:00:10027532 0 EOF
/// ```
///
/// (the device's numbers in hexadecimal; a line with `->` is a process
/// waiting for the lock, not holding it). Lines it cannot read are skipped.
fn parse(text: &str, major: u32, minor: u32, ino: u64) -> Vec<u32> {
    let mut pids: Vec<u32> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            if words.next()? != "FLOCK" {
                return None;
            }
            let pid: u32 = words.nth(2)?.parse().ok()?;
            let mut file = words.next()?.split(':');
            let maj = u32::from_str_radix(file.next()?, 16).ok()?;
            let min = u32::from_str_radix(file.next()?, 16).ok()?;
            let i: u64 = file.next()?.parse().ok()?;
            (maj == major && min == minor && i == ino).then_some(pid)
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
junk
7: FLOCK ADVISORY WRITE x fe:00:77 0 EOF
";
        assert_eq!(parse(text, 0xfe, 0, 77), [200, 300]);
        assert_eq!(parse(text, 0xfe, 0, 78), [500]);
        assert_eq!(parse("", 0xfe, 0, 77), Vec::<u32>::new());
    }

    #[test]
    fn a_lock_this_process_holds_is_listed() {
        let path = std::env::temp_dir().join(format!("logcut-holders-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared).unwrap();
        assert_eq!(of(&path).expect("/proc/locks"), [std::process::id()]);
        drop(file);
        assert_eq!(of(&path).expect("/proc/locks"), Vec::<u32>::new());
        std::fs::remove_file(&path).unwrap();
    }
}
