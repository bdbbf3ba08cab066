//! The error file `<name>.error`: the last error a writer of the log
//! reported, for `logcut status` to show after the fact.
//!
//! The file always holds exactly [`SIZE`] bytes, one line padded with
//! spaces:
//!
//! ```text
//! at=<RFC 3339 instant> pid=<process id> <message>
//! ```
//!
//! or only spaces before any error. A writer creates it at start, sized
//! already, and then overwrites it in place with one `pwrite` of the same
//! length: the blocks are allocated by then, so an error is recorded even
//! on the full disk it is often about (not on a copy-on-write file system
//! such as btrfs or ZFS, where an overwrite needs new blocks, nor if the
//! disk was full already when the writer started and the file was new),
//! and two writers that share the log never leave a mix of both (the
//! kernel orders writes to one file). The message is the error's text,
//! with control characters made spaces and cut to fit.

use std::{io, path::Path};

use jiff::Timestamp;

/// The error file's length, in bytes.
pub const SIZE: usize = 1024;

/// The last error of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    /// When the writer reported it (by the writer's clock).
    pub at: Timestamp,
    /// The process that reported it.
    pub pid: u32,
    /// What went wrong: the operation, the path and the cause.
    pub message: String,
}

/// The contents of an error file that records no error yet.
pub fn blank() -> Vec<u8> {
    pad(String::new())
}

impl LastError {
    /// The file's contents: exactly [`SIZE`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = format!("at={} pid={} ", self.at, self.pid);
        let room = SIZE - 1 - line.len();
        let mut msg: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if msg.len() > room {
            let mut end = room - 3;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg.truncate(end);
            msg.push_str("...");
        }
        line.push_str(&msg);
        pad(line)
    }

    /// Reads the file's contents; `None` if they record no error (blank,
    /// or not an error file's line).
    pub fn parse(text: &str) -> Option<LastError> {
        let line = text.lines().next()?.trim_end();
        let rest = line.strip_prefix("at=")?;
        let (at, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("pid=")?;
        // An empty message leaves no space after the pid once trimmed.
        let (pid, message) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(LastError {
            at: at.parse().ok()?,
            pid: pid.parse().ok()?,
            message: message.to_string(),
        })
    }
}

/// `line`, padded with spaces and a newline to [`SIZE`] bytes (`line` is
/// shorter).
fn pad(mut line: String) -> Vec<u8> {
    let fill = SIZE - 1 - line.len();
    line.extend(std::iter::repeat_n(' ', fill));
    line.push('\n');
    line.into_bytes()
}

/// The last error recorded in `dir` for log `log`; `None` if there is no
/// error file or it records none. Does not follow a symlink.
pub fn read(dir: &Path, log: &str) -> io::Result<Option<LastError>> {
    let path = dir.join(crate::name::error_file(log));
    let mut file = match crate::open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    // Bounded: a file planted there cannot make this read without end.
    io::Read::read_to_string(&mut io::Read::take(&mut file, SIZE as u64), &mut text).or_else(
        |e| {
            if e.kind() == io::ErrorKind::InvalidData {
                // Not UTF-8: not an error file's line.
                text.clear();
                Ok(0)
            } else {
                Err(e)
            }
        },
    )?;
    Ok(LastError::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        "2026-12-06T10:00:00.5Z".parse().unwrap()
    }

    #[test]
    fn round_trip_at_a_fixed_length() {
        let e = LastError {
            at: at(),
            pid: 4242,
            message: "create next segment /var/log/app/app.log.next.3: No space left on device"
                .into(),
        };
        let bytes = e.encode();
        assert_eq!(bytes.len(), SIZE);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(
            LastError::parse(std::str::from_utf8(&bytes).unwrap()),
            Some(e)
        );
        assert_eq!(blank().len(), SIZE);
        assert_eq!(
            LastError::parse(std::str::from_utf8(&blank()).unwrap()),
            None
        );
    }

    #[test]
    fn control_characters_and_long_messages_fit_one_line() {
        let e = LastError {
            at: at(),
            pid: 1,
            message: format!("a\nb\rc\td{}", "é".repeat(2000)),
        };
        let bytes = e.encode();
        assert_eq!(bytes.len(), SIZE);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back = LastError::parse(text).unwrap();
        assert!(back.message.starts_with("a b c d"), "{}", back.message);
        assert!(back.message.ends_with("..."), "{}", back.message);
    }

    #[test]
    fn garbage_records_no_error() {
        for text in [
            "",
            "junk",
            "at=x pid=1 m",
            "at=2026-12-06T10:00:00Z pid=x m",
        ] {
            assert_eq!(LastError::parse(text), None, "{text:?}");
        }
    }
}
