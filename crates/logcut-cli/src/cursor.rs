//! `cat --follow --cursor FILE`: where a follower is in a log, saved after
//! each flush of its output, so that a reader that is stopped and started
//! again (a shipper reading logcut's standard output) goes on where the
//! last flush left it: nothing lost, and nothing printed twice but what was
//! printed after the last save.
//!
//! The file is one line:
//!
//! ```text
//! logcut-cursor 1 log=app done=41 next=42 offset=65536
//! ```
//!
//! `done`: every segment up to this sequence number was printed (`-` for
//! none); `next`: the segment being read, if its number is known (`-`
//! while it is the active file: it is then the one after `done`); `offset`:
//! the bytes of it printed. It is written to `FILE.tmp`, synced and renamed
//! over FILE, so a crash leaves the old cursor or the new one, whole.
//!
//! # What the reader has not read yet
//!
//! A write to a pipe returns once the bytes are in the pipe, not once the
//! reader has them: if the reader dies with bytes unread (a shipper killed
//! or restarted), those are gone with the pipe. So the position saved is
//! not where the output got to but where the reader got to: the bytes
//! written, less what the pipe (or socket) still holds (`FIONREAD`, or
//! `TIOCOUTQ` for a socket), found through a [`Trail`] of where the recent
//! output came from. It is saved after each write and once more when the
//! follower exits (its reader gone, or a signal), so a reader that closes
//! its end loses nothing and sees again nothing it had read. What the
//! reader read but did not deliver before it died is its own at-least-once
//! business.

use std::{
    collections::VecDeque,
    io::Write as _,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// What a cursor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) done: Option<u64>,
    pub(crate) next: Option<u64>,
    pub(crate) offset: u64,
}

/// A cursor file for one log.
#[derive(Debug)]
pub(crate) struct Cursor {
    path: PathBuf,
    tmp: PathBuf,
    /// The log's name: a cursor of another log is refused.
    log: String,
    last: Option<Saved>,
}

impl Cursor {
    pub(crate) fn new(path: &Path, log: &str) -> Cursor {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Cursor {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            log: log.to_string(),
            last: None,
        }
    }

    /// The saved position; `None` if there is no file yet.
    pub(crate) fn load(&self) -> Result<Option<Saved>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        };
        let saved = parse(&text, &self.log).with_context(|| {
            format!(
                "{} is not a cursor of log {}",
                self.path.display(),
                self.log
            )
        })?;
        Ok(Some(saved))
    }

    /// Saves `at`, unless it is what was saved last.
    pub(crate) fn save(&mut self, at: Saved) -> Result<()> {
        if self.last == Some(at) {
            return Ok(());
        }
        let text = format(&at, &self.log);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&self.tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&self.tmp, &self.path)
        };
        write().with_context(|| format!("cannot save the cursor {}", self.path.display()))?;
        self.last = Some(at);
        Ok(())
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn format(at: &Saved, log: &str) -> String {
    format!(
        "logcut-cursor 1 log={log} done={} next={} offset={}\n",
        opt(at.done),
        opt(at.next),
        at.offset
    )
}

fn parse(text: &str, log: &str) -> Result<Saved> {
    let mut words = text.trim_end().split(' ');
    if words.next() != Some("logcut-cursor") || words.next() != Some("1") {
        bail!("it does not start with \"logcut-cursor 1\"");
    }
    let fields: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .with_context(|| format!("it has no {k}"))
    };
    let num = |k: &str| -> Result<Option<u64>> {
        match get(k)? {
            "-" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .with_context(|| format!("{k}={v} is not a number")),
        }
    };
    if get("log")? != log {
        bail!("it is for log {}", get("log")?);
    }
    Ok(Saved {
        done: num("done")?,
        next: num("next")?,
        offset: num("offset")?.context("offset is missing")?,
    })
}

/// Where the bytes written in this run came from, for the recent past:
/// which position in the log each stretch of output holds.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    /// Oldest first: a stretch of output starting at `global` (bytes
    /// written before it in this run), `len` bytes long, from position
    /// `at` of the log on.
    spans: VecDeque<(u64, u64, Saved)>,
    total: u64,
}

/// How far back a [`Trail`] remembers, in bytes of output: more than any
/// pipe or socket buffer holds.
const TRAIL: u64 = 64 << 20;

impl Trail {
    /// `n` bytes were written, from position `at` of the log on.
    pub(crate) fn wrote(&mut self, at: Saved, n: u64) {
        let total = self.total;
        match self.spans.back_mut() {
            // The same segment, on from where the last stretch ended.
            Some((g, len, from))
                if from.done == at.done
                    && from.next == at.next
                    && from.offset + *len == at.offset
                    && *g + *len == total =>
            {
                *len += n;
            }
            _ => self.spans.push_back((total, n, at)),
        }
        self.total += n;
        while self.spans.len() > 1 && self.spans[1].0 + TRAIL < self.total {
            self.spans.pop_front();
        }
    }

    /// Bytes written in this run.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The position of the byte `back` bytes before the end of the
    /// output (`back` 0: right after the last one written); `None` if
    /// that is further back than the trail goes, or nothing was written.
    pub(crate) fn position(&self, back: u64) -> Option<Saved> {
        let target = self.total.checked_sub(back)?;
        let (g, len, at) = self.spans.iter().rev().find(|(g, _, _)| *g <= target)?;
        let into = target - g;
        (into <= *len).then_some(Saved {
            offset: at.offset + into,
            ..*at
        })
    }
}

/// Bytes written to standard output that its reader has not read yet:
/// what a pipe (`FIONREAD`) or a socket (`TIOCOUTQ`) still holds; 0 for a
/// file or a terminal. `None` if the kernel did not say.
pub(crate) fn stdout_unread() -> Option<u64> {
    let out = std::io::stdout();
    let fd = out.as_fd();
    let st = rustix::fs::fstat(fd).ok()?;
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Fifo => rustix::io::ioctl_fionread(fd).ok(),
        rustix::fs::FileType::Socket => {
            let mut n: libc::c_int = 0;
            // SAFETY: TIOCOUTQ writes one c_int through the pointer, which
            // points to `n`, alive for the call; the descriptor is standard
            // output, open for as long as `out` is borrowed.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
            (rc == 0).then(|| u64::try_from(n).unwrap_or(0))
        }
        _ => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: Option<u64>, next: Option<u64>, offset: u64) -> Saved {
        Saved { done, next, offset }
    }

    #[test]
    fn a_trail_finds_the_position_of_bytes_written_before() {
        let mut t = Trail::default();
        assert_eq!(t.position(0), None);
        // Segment 5 from offset 100 (a cursor's skip), in two writes.
        t.wrote(at(Some(4), Some(5), 100), 50);
        t.wrote(at(Some(4), Some(5), 150), 30);
        // Then the active file, number unknown, after 5.
        t.wrote(at(Some(5), None, 0), 20);
        assert_eq!(t.spans.len(), 2);
        assert_eq!(t.total(), 100);
        assert_eq!(t.position(0), Some(at(Some(5), None, 20)));
        assert_eq!(t.position(20), Some(at(Some(5), None, 0)));
        assert_eq!(t.position(21), Some(at(Some(4), Some(5), 179)));
        assert_eq!(t.position(100), Some(at(Some(4), Some(5), 100)));
        assert_eq!(t.position(101), None);
        // Not contiguous (a gap in offsets): a stretch of its own.
        t.wrote(at(Some(5), None, 40), 10);
        assert_eq!(t.spans.len(), 3);
        assert_eq!(t.position(5), Some(at(Some(5), None, 45)));
    }

    #[test]
    fn a_trail_forgets_what_is_far_behind() {
        let mut t = Trail::default();
        for seq in 0..100 {
            t.wrote(at(None, Some(seq), 0), 1 << 20);
        }
        assert!(t.spans.len() <= 66, "{}", t.spans.len());
        assert_eq!(t.position(0), Some(at(None, Some(99), 1 << 20)));
        assert_eq!(t.position(TRAIL), Some(at(None, Some(36), 0)));
        assert_eq!(t.position(99 << 20), None);
    }

    #[test]
    fn unread_bytes_of_a_pipe_are_counted() {
        // The function reads standard output; the same ioctl on a pipe of
        // our own says what it would.
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"12345").unwrap();
        assert_eq!(rustix::io::ioctl_fionread(&w).unwrap(), 5);
        let mut b = [0; 2];
        rustix::io::read(&r, &mut b).unwrap();
        assert_eq!(rustix::io::ioctl_fionread(&w).unwrap(), 3);
    }

    #[test]
    fn a_cursor_round_trips_and_another_logs_is_refused() {
        for at in [
            Saved {
                done: None,
                next: None,
                offset: 0,
            },
            Saved {
                done: Some(41),
                next: Some(42),
                offset: 65536,
            },
            Saved {
                done: Some(7),
                next: None,
                offset: 12,
            },
        ] {
            assert_eq!(parse(&format(&at, "app"), "app").unwrap(), at);
            assert!(parse(&format(&at, "app"), "web").is_err());
        }
        assert!(parse("", "app").is_err());
        assert!(parse("logcut-cursor 1 log=app done=x next=- offset=0", "app").is_err());
        assert!(parse("logcut-cursor 2 log=app done=- next=- offset=0", "app").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_cursor_file_parses_or_fails_without_panic(text in proptest::prelude::any::<String>()) {
            let _ = parse(&text, "app");
            let _ = parse(&format!("logcut-cursor 1 {text}"), "app");
        }

        #[test]
        fn cursors_round_trip(done in proptest::prelude::any::<Option<u64>>(), next in proptest::prelude::any::<Option<u64>>(), offset in proptest::prelude::any::<u64>()) {
            let at = Saved { done, next, offset };
            proptest::prop_assert_eq!(parse(&format(&at, "app"), "app").ok(), Some(at));
        }
    }
}
