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

use std::{
    io::Write as _,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
