//! Test kit: temporary directories, records with ids, and reading a log back.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

// The one record parser, in a file of its own that the CLI tests include
// too.
#[path = "records.rs"]
pub mod records;
pub use records::{Format, Parser, Records, tag};

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("logcut-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record of exactly `len` bytes (at least 24): `t<thread> <seq> x...\n`.
pub fn record(thread: usize, seq: u64, len: usize) -> Vec<u8> {
    records::fixed_record(thread, seq, len)
}

/// Parses the records of a log read back, with no tolerance
/// ([`Parser::exact`]): every line is a whole record of `len` bytes, each
/// thread's ids come in order from 0; returns how many records each thread
/// has.
pub fn check_records(data: &[u8], len: usize) -> HashMap<usize, u64> {
    by_thread(&Parser::fixed(len).parse(data))
}

/// Each thread's record count, from the tags `t<thread>` of the kit's
/// records.
pub fn by_thread(r: &Records) -> HashMap<usize, u64> {
    r.counts()
        .into_iter()
        .map(|(t, n)| {
            let thread = t[1..].parse().unwrap_or_else(|_| panic!("tag {t}"));
            (thread, n)
        })
        .collect()
}

/// Every byte of log `name` in `dir`, in order.
pub fn read_log(dir: &Path, name: &str) -> Vec<u8> {
    logcut_format::read_all(dir, name).expect("read log")
}

/// The file names in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Whether `<name>.log` in `dir` is a second name of the newest sealed
/// segment, as a shutdown leaves it (see `keep_active_name`).
pub fn last_at_active(dir: &Path, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |f: &str| {
        std::fs::symlink_metadata(dir.join(f))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let Some(last) = sealed(dir, name).into_iter().max_by_key(|s| s.seq) else {
        return false;
    };
    id(&format!("{name}.log")).is_some_and(|a| Some(a) == id(&last.file))
}

/// The sealed segment files of `name`, in manifest order.
pub fn sealed(dir: &Path, name: &str) -> Vec<logcut_format::manifest::Seal> {
    let m = logcut_format::manifest::Manifest::read(&dir.join(format!("{name}.manifest"))).unwrap();
    m.seals().cloned().collect()
}

/// Asserts that verify finds no problem, and returns the report.
pub fn verify_ok(dir: &Path) -> logcut::Report {
    let report = logcut::verify(dir).expect("verify");
    assert!(report.is_ok(), "{report}");
    report
}

/// Waits until `cond` holds, yielding in between (no sleep: the thread
/// gives way and checks again), and fails the test after 30 s with `what`.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}

/// Creates `path` if missing and sets its modification time to now, as
/// `touch` does.
pub fn touch(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("touch");
    f.set_modified(std::time::SystemTime::now())
        .expect("touch: set time");
}

/// `threads` threads each write `count` records of `len` bytes
/// (`record(t, 0..count, len)`) through `a`; returns once all are written.
pub fn write_from_threads(a: &logcut::Appender, threads: usize, count: u64, len: usize) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                for i in 0..count {
                    a.write_record(&record(t, i, len)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// A command that runs the ignored test `name` (such as
/// `faults::crash_child`) of this test binary alone, as a child process.
pub fn child_test(name: &str) -> std::process::Command {
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

/// Runs the ignored test `name` alone in a child process with `var` set to
/// `dir`, and asserts that it passed (its output shown otherwise).
pub fn run_child_test(name: &str, var: &str, dir: &Path) {
    let out = child_test(name).env(var, dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Relays the lines a child test prints on `out` to `tx` as messages of
/// child `id`: each line `parse` understands (given its words; libtest
/// prints "test ... " before the child's first line, on the same line, so
/// the words count from the end), then `closed` when the output ends.
pub fn relay_child<M: Send + 'static>(
    id: usize,
    out: std::process::ChildStdout,
    tx: std::sync::mpsc::Sender<(usize, M)>,
    parse: fn(&[&str]) -> Option<M>,
    closed: M,
) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let words: Vec<&str> = line.split(' ').collect();
            if let Some(msg) = parse(&words) {
                let _ = tx.send((id, msg));
            }
        }
        let _ = tx.send((id, closed));
    });
}

/// The environment variable `var` of a child helper (an ignored test that
/// `parent` runs with `child_test`). Run without it (`cargo test --
/// --ignored`), the helper fails rather than pass having done nothing.
pub fn child_env(var: &str, parent: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: this helper is run by {parent}"))
}

/// The kind and file of each problem `verify` reported, in order.
pub fn problems(report: &logcut::Report) -> Vec<(logcut::ProblemKind, Option<String>)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind, p.file.clone()))
        .collect()
}

/// Held by the tests that load the machine most (several processes writing
/// flat out) and by those that wait for file-system events, so that they do
/// not run at the same time: on 2 cores, the first starve the watcher
/// threads the second wait for.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small tmpfs mounted for a disk-full test, unmounted when dropped.
/// Mounting needs root (CI runs as root); elsewhere `mount` returns `None`
/// and the test says it is skipped.
pub struct SmallFs {
    dir: TempDir,
}

impl SmallFs {
    pub fn mount(tag: &str, size: &str) -> Option<SmallFs> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(dir.path()).unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={size},mode=0750")).unwrap();
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // Past the test harness's capture, so that the skip is seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED {tag}: cannot mount a tmpfs for a disk-full test ({err}); run as root\n")
                    .as_bytes(),
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the disk-full tests (as root): {err}"
            );
            return None;
        }
        Some(SmallFs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with the file `filler` until a write fails
    /// with ENOSPC.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("filler"))
            .unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
        // Pages partly filled: the last bytes.
        while f.write(b"x").is_ok_and(|n| n == 1) {}
    }

    /// Removes the filler: the space is free again.
    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Checks a log whose oldest segments retention deleted: every record
/// whole, each thread's ids consecutive up to `count - 1`, and the records
/// missing at the start of each thread, added up, exactly `deleted`.
pub fn check_tail_records(data: &[u8], len: usize, threads: usize, count: u64, deleted: u64) {
    let r = Parser::fixed(len).oldest_deleted().parse(data);
    assert!(
        r.tags().iter().all(|t| (0..threads).any(|n| tag(n) == *t)),
        "writers {:?}, not 0..{threads}",
        r.tags()
    );
    let mut missing = 0;
    for t in 0..threads {
        let range = r.range(&tag(t));
        if range.is_empty() {
            // All its records were in deleted segments.
            missing += count;
        } else {
            assert_eq!(range.end, count, "thread {t}: the last records");
            missing += range.start;
        }
    }
    assert_eq!(
        missing, deleted,
        "records missing at the start against those deleted by policy"
    );
}
