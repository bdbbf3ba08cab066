//! The lock file `<name>.lock`: who is writing a log, and how to ask it to
//! rotate.
//!
//! A running appender holds an exclusive `flock` on the file for as long as
//! it runs (the kernel releases it when the process exits, even by
//! SIGKILL), so a second appender on the same log fails at start instead
//! of taking the first one's files. Appenders in shared mode hold a shared
//! `flock` instead, so that several of them can write one log while an
//! exclusive one is refused. The holder (in shared mode, the one that
//! started first) writes, one per line:
//!
//! ```text
//! pid=<process id>
//! trigger=<absolute path of its trigger file>   (only if it watches one)
//! shared=1                                      (only in shared mode)
//! ```
//!
//! Tools such as `logcut rotate` read it to find the trigger file. Unknown
//! lines are ignored.
//!
//! The cut file `<name>.cut` ([`CutState`]) is used in shared mode only.

use std::path::PathBuf;

/// What a lock file says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockInfo {
    /// The holder's process id.
    pub pid: Option<u32>,
    /// The trigger file the holder watches, if any.
    pub trigger: Option<PathBuf>,
    /// The holder shares the log with other processes (shared mode).
    pub shared: bool,
}

impl LockInfo {
    /// The file's contents for this holder. A trigger path that is not
    /// UTF-8, contains a newline or ends in a carriage return is left out (tools then cannot find it).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if let Some(pid) = self.pid {
            s.push_str(&format!("pid={pid}\n"));
        }
        if let Some(t) = self.trigger.as_ref().and_then(|t| t.to_str()) {
            // `lines()` would cut a trailing carriage return off.
            if !t.contains('\n') && !t.ends_with('\r') {
                s.push_str(&format!("trigger={t}\n"));
            }
        }
        if self.shared {
            s.push_str("shared=1\n");
        }
        s
    }

    /// Reads the file's contents; never fails (unknown or bad lines are
    /// skipped).
    pub fn parse(text: &str) -> LockInfo {
        let mut info = LockInfo::default();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("pid=") {
                info.pid = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("trigger=") {
                if !v.is_empty() {
                    info.trigger = Some(PathBuf::from(v));
                }
            } else if line == "shared=1" {
                info.shared = true;
            }
        }
        info
    }
}

/// The contents of the cut file `<name>.cut`, in shared mode: the active
/// segment's sequence number and file identity, written by the process
/// that installs a new active file while it holds the cut file's lock:
///
/// ```text
/// active seq=<seq> dev=<device> ino=<inode>      (each number 20 digits)
/// ```
///
/// A process that finds another file at `<name>.log` than the one it
/// writes reads it, under the same lock, to follow: if the file at the
/// active path has this identity, it is segment `seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutState {
    /// Sequence number of the active segment.
    pub seq: u64,
    /// Device of the active file.
    pub dev: u64,
    /// Inode of the active file.
    pub ino: u64,
}

impl CutState {
    /// The file's contents.
    ///
    /// The numbers are zero-padded to 20 digits, so the contents always
    /// have the same length: a writer overwrites them in place with one
    /// `pwrite`, never leaving the file empty or short.
    pub fn encode(&self) -> String {
        format!(
            "active seq={:020} dev={:020} ino={:020}\n",
            self.seq, self.dev, self.ino
        )
    }

    /// Reads the file's contents; `None` if they are not a cut state (an
    /// empty file: nobody cut yet).
    pub fn parse(text: &str) -> Option<CutState> {
        let rest = text.lines().next()?.strip_prefix("active ")?;
        let mut st = CutState::default();
        let mut seen = 0;
        for w in rest.split(' ') {
            let (k, v) = w.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "seq" => st.seq = v,
                "dev" => st.dev = v,
                "ino" => st.ino = v,
                _ => continue,
            }
            seen += 1;
        }
        (seen == 3).then_some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let info = LockInfo {
            pid: Some(42),
            trigger: Some(PathBuf::from("/var/log/app/app.trigger")),
            shared: false,
        };
        assert_eq!(LockInfo::parse(&info.encode()), info);
        assert_eq!(LockInfo::parse("junk\npid=x\n"), LockInfo::default());
        let no_trigger = LockInfo {
            pid: Some(7),
            trigger: None,
            shared: false,
        };
        assert_eq!(no_trigger.encode(), "pid=7\n");
        let shared = LockInfo {
            shared: true,
            ..no_trigger
        };
        assert_eq!(LockInfo::parse(&shared.encode()), shared);
    }

    #[test]
    fn cut_state_round_trip_and_garbage() {
        let st = CutState {
            seq: 12,
            dev: 2049,
            ino: 77,
        };
        assert_eq!(
            st.encode(),
            "active seq=00000000000000000012 dev=00000000000000002049 ino=00000000000000000077\n"
        );
        assert_eq!(st.encode().len(), CutState::default().encode().len());
        assert_eq!(CutState::parse("active seq=12 dev=2049 ino=77\n"), Some(st));
        assert_eq!(CutState::parse(&st.encode()), Some(st));
        assert_eq!(CutState::parse(""), None);
        assert_eq!(CutState::parse("active seq=1 dev=2\n"), None);
        assert_eq!(CutState::parse("active seq=x dev=2 ino=3\n"), None);
        assert_eq!(CutState::parse("other seq=1 dev=2 ino=3\n"), None);
    }
}
