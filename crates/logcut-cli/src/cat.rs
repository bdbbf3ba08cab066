//! `logcut cat`: print a log's records, oldest first.

use std::{
    io::{self, IsTerminal, Write},
    os::fd::AsFd,
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context, Result};
use jiff::Timestamp;
use logcut_format::segments;

use crate::{
    progress::Progress,
    range::{self, TimeRange},
};

/// Options of `logcut cat`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
--since and --until select whole segments, not single records (logcut does not \
read timestamps inside records): a segment is printed if the time it was the \
active segment, from when it became active until the next segment took over, \
overlaps the range, both ends included. The active segment's time is \
open-ended (it is still being written), so it is printed unless --until is \
before it became active. Records near the ends of the range may therefore lie \
a little outside it.")]
pub(crate) struct CatArgs {
    /// The log directory.
    dir: PathBuf,
    /// The log's name; by default the only log in DIR (with several, say
    /// which).
    #[arg(short, long)]
    name: Option<String>,
    /// Print only segments that overlap the time from TIME on: an RFC 3339
    /// time such as 2026-11-25T10:00:00Z, or a duration such as 15m, 1h or
    /// 2d meaning that long ago.
    #[arg(long, value_name = "TIME", value_parser = range::parse_time)]
    since: Option<Timestamp>,
    /// Print only segments that overlap the time up to TIME (same forms as
    /// --since).
    #[arg(long, value_name = "TIME", value_parser = range::parse_time, conflicts_with = "follow")]
    until: Option<Timestamp>,
    /// Keep printing records as they are written, across rotations, until
    /// interrupted (SIGINT, SIGTERM) or the output is closed. No record is
    /// skipped or printed twice; a segment deleted by retention before it
    /// could be read is named on standard error, with its record count.
    #[arg(long, short = 'f')]
    follow: bool,
    /// With --follow: stop once every writer of the log has shut down (each
    /// `open` in the manifest has its `close`) and all they wrote was
    /// printed. Waits for a writer if none has opened the log yet.
    #[arg(long, requires = "follow")]
    until_closed: bool,
    /// With --follow: start where this file says the last run stopped, and
    /// keep it up to date after each write, so that a reader stopped and
    /// started again (a shipper reading this output) loses nothing. The
    /// position saved is what the reader has read (what was written, less
    /// what the pipe still holds), kept back by --replay. Created on the
    /// first run, which starts as --follow would.
    #[arg(long, value_name = "FILE", requires = "follow")]
    cursor: Option<PathBuf>,
    /// With --cursor: after a restart, send again this much of what the
    /// reader had read before it stopped (1MiB). A shipper that is stopped
    /// drops what it read and had not yet passed on: syslog-ng, up to its
    /// log-msg-size (64 KiB by default). 0 for a reader that delivers
    /// every byte it reads.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = crate::write::size, requires = "cursor")]
    replay: u64,
    /// DIR is a router's root (`write --route-field`): print this tenant's
    /// logs, in every group it was routed to, their segments merged in
    /// time order.
    #[arg(long, conflicts_with = "follow")]
    tenant: Option<String>,
    /// DIR is a router's root: only this group's logs (with --tenant, that
    /// tenant's log in the group; alone, every tenant of the group).
    #[arg(long, conflicts_with = "follow")]
    group: Option<String>,
}

pub(crate) fn run(args: CatArgs) -> Result<ExitCode> {
    let range = TimeRange {
        since: args.since,
        until: args.until,
    };
    if let Err(msg) = range.validate() {
        return Err(crate::UsageError(msg).into());
    }
    let dir = &args.dir;
    if args.tenant.is_some() || args.group.is_some() {
        if args.name.is_some() {
            return Err(
                crate::UsageError("--name does not go with --tenant or --group".into()).into(),
            );
        }
        return cat_root(&args, &range);
    }
    let name = if args.follow {
        follow_name(dir, args.name.as_deref())?
    } else {
        crate::read::pick_log(dir, args.name.as_deref())?
    };
    let name = name.as_str();
    if args.follow {
        let opts = crate::follow::Options {
            until_closed: args.until_closed,
            cursor: args.cursor.as_deref(),
            unread: Some(crate::cursor::stdout_unread),
            replay: args.replay,
        };
        // Unbuffered (it writes in large chunks): what a write took is in
        // the kernel, which is what the cursor counts.
        let mut out = std::fs::File::from(
            io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot use standard output")?,
        );
        crate::follow::follow(dir, name, |segs| range.select(segs, name), opts, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = io::stdout().lock();
    let segs = segments(dir, name).map_err(|e| {
        crate::read::cannot(
            &format!("cannot list the segments of {name} in {}", dir.display()),
            dir,
            &e,
        )
    })?;
    let selected = range.select(&segs, name);
    let chosen: Vec<_> = segs
        .iter()
        .zip(selected)
        .filter_map(|(s, yes)| yes.then_some(s))
        .collect();
    // Output on the terminal would scroll through the bar: draw it only
    // when the records go elsewhere.
    let total = if io::stdout().is_terminal() {
        0
    } else {
        chosen
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum()
    };
    let progress = Progress::bytes(total, "cat");
    for seg in chosen {
        // Compressed segments are decompressed on the way.
        let mut f = seg
            .open()
            .with_context(|| format!("cannot open {}", seg.path.display()))?;
        // Without a bar, a plain copy lets the kernel move the bytes.
        let copied = if progress.is_drawn() {
            io::copy(
                &mut Counted {
                    inner: f,
                    progress: &progress,
                },
                &mut out,
            )
        } else {
            io::copy(&mut f, &mut out)
        };
        copied.with_context(|| format!("cannot copy {}", seg.path.display()))?;
    }
    out.flush()?;
    progress.finish();
    Ok(ExitCode::SUCCESS)
}

/// `cat ROOT --tenant T --group G`: the segments of every selected log,
/// merged by the time each became active (records are not read for
/// times), each log's in order.
fn cat_root(args: &CatArgs, range: &TimeRange) -> Result<ExitCode> {
    let dirs = crate::read::log_dirs(&args.dir, args.group.as_deref(), args.tenant.as_deref())?;
    let mut chosen = Vec::new();
    for (d, dir) in dirs.iter().enumerate() {
        let name = crate::read::pick_log(dir, None)?;
        let segs = segments(dir, &name).map_err(|e| {
            crate::read::cannot(
                &format!("cannot list the segments of {name} in {}", dir.display()),
                dir,
                &e,
            )
        })?;
        let starts = range::spans(&segs, &name);
        let selected = range.select(&segs, &name);
        for (i, seg) in segs.into_iter().enumerate() {
            if selected[i] {
                chosen.push((starts[i].0, d, i, seg));
            }
        }
    }
    chosen.sort_by_key(|(start, d, i, _)| (*start, *d, *i));
    let mut out = io::stdout().lock();
    for (_, _, _, seg) in chosen {
        let mut f = seg
            .open()
            .with_context(|| format!("cannot open {}", seg.path.display()))?;
        match io::copy(&mut f, &mut out) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other.with_context(|| format!("cannot copy {}", seg.path.display()))?,
        };
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The log `--follow` follows: like `pick_log`, except that a log not
/// there yet is waited for (as `tail -F` does): the one named, or with no
/// name and no log yet, `app`.
fn follow_name(dir: &std::path::Path, name: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        logcut_format::name::validate_name(n)
            .map_err(|m| crate::UsageError(format!("invalid --name: {m}")))?;
        return Ok(n.to_string());
    }
    match logcut_format::log_names(dir) {
        Ok(names) if names.is_empty() => Ok("app".to_string()),
        Ok(_) => crate::read::pick_log(dir, None),
        // The directory may not exist yet either.
        Err(e) if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) => {
            Ok("app".to_string())
        }
        Err(e) => Err(crate::read::cannot(
            &format!("cannot read {}", dir.display()),
            dir,
            &e,
        )),
    }
}

/// A reader that moves the progress bar by what it reads.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: io::Read> io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
