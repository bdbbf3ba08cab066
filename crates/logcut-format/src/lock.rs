//! The lock file `<name>.lock`: who is writing a log, and how to ask it to
//! rotate.
//!
//! A running appender holds an exclusive `flock` on the file for as long as
//! it runs (the kernel releases it when the process exits, even by
//! SIGKILL), so a second appender on the same log fails at start instead
//! of taking the first one's files. The holder writes, one per line:
//!
//! ```text
//! pid=<process id>
//! trigger=<absolute path of its trigger file>   (only if it watches one)
//! ```
//!
//! Tools such as `logcut rotate` read it to find the trigger file. Unknown
//! lines are ignored.

use std::path::PathBuf;

/// What a lock file says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockInfo {
    /// The holder's process id.
    pub pid: Option<u32>,
    /// The trigger file the holder watches, if any.
    pub trigger: Option<PathBuf>,
}

impl LockInfo {
    /// The file's contents for this holder. A trigger path that is not
    /// UTF-8 or contains a newline is left out (tools then cannot find it).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if let Some(pid) = self.pid {
            s.push_str(&format!("pid={pid}\n"));
        }
        if let Some(t) = self.trigger.as_ref().and_then(|t| t.to_str()) {
            if !t.contains('\n') {
                s.push_str(&format!("trigger={t}\n"));
            }
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
            }
        }
        info
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
        };
        assert_eq!(LockInfo::parse(&info.encode()), info);
        assert_eq!(LockInfo::parse("junk\npid=x\n"), LockInfo::default());
        let no_trigger = LockInfo {
            pid: Some(7),
            trigger: None,
        };
        assert_eq!(no_trigger.encode(), "pid=7\n");
    }
}
