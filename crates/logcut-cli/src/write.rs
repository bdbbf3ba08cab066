//! `logcut write`: the pipe logger.
//!
//! Each line of standard input (up to and including its `\n`) is one
//! record. Bytes are passed through untouched: not UTF-8, NUL, CRLF. A last
//! line without a newline is written as it is, with no newline added, so
//! `logcut cat` reproduces the input byte for byte. A line longer than
//! `--max-line` is written as several records of `--max-line` bytes (the
//! last one holding the rest of the line and its newline), so memory stays
//! bounded; the pieces follow each other in the log, in order.
//!
//! On SIGTERM or SIGINT it keeps reading until the input ends, or until
//! `--grace` passes with no input, then writes everything, seals and exits
//! 0: what the producer wrote into the pipe is not dropped. SIGUSR1 cuts
//! the log now. SIGHUP is ignored for now (reopening after an external
//! rename is not implemented yet), so that it does not kill the logger.

use std::{
    os::fd::AsFd,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// Options of `logcut write`.
#[derive(Debug, clap::Args)]
pub(crate) struct WriteArgs {
    /// The log directory (created if missing, mode 0750).
    #[arg(long)]
    dir: PathBuf,
    /// The log's name: the active file is DIR/NAME.log.
    #[arg(long, default_value = "app")]
    name: String,
    /// Cut before a segment would exceed this size (64MiB, 1G, 4096), or
    /// "none".
    #[arg(long, default_value = "64MiB", value_parser = size_or_none)]
    max_size: Limit,
    /// Also cut at wall-clock boundaries: 30s, 15m, 1h, 1d.
    #[arg(long, value_parser = interval)]
    interval: Option<logcut::Interval>,
    /// The IANA time zone of the interval's boundaries (default UTC).
    #[arg(long)]
    tz: Option<String>,
    /// direct: every line is in the kernel before the next is read;
    /// buffered: lines are batched in memory (faster).
    #[arg(long, value_enum, default_value_t = ModeArg::Buffered)]
    mode: ModeArg,
    /// The longest record; longer lines are split (see `logcut write --help`).
    #[arg(long, default_value = "1MiB", value_parser = size)]
    max_line: u64,
    /// When to flush to the device: never, seal (each sealed segment), always
    /// (every record), or an interval such as 1s.
    #[arg(long, default_value = "seal", value_parser = fsync)]
    fsync: logcut::Fsync,
    /// Serve the stats in Prometheus text format at http://ADDR/metrics
    /// (such as 127.0.0.1:9184). Nothing listens without it.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// After SIGTERM or SIGINT, keep reading until input ends or nothing
    /// arrives for this long.
    #[arg(long, default_value = "5s", value_parser = duration)]
    grace: Duration,
    /// Compress sealed segments in the background: none, gzip or zstd.
    #[arg(long, value_enum, default_value_t = CompressArg::None)]
    compress: CompressArg,
    /// The compression level (gzip 0-9, default 6; zstd -7 to 22, default 3).
    #[arg(long, allow_negative_numbers = true)]
    compress_level: Option<i32>,
    /// Keep at most this many sealed segments (oldest deleted first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep: Option<u64>,
    /// Delete sealed segments older than this (by their end): 7d, 12h.
    #[arg(long, value_parser = duration)]
    max_age: Option<Duration>,
    /// Delete the oldest sealed segments while all take more than this on
    /// disk: 10GiB.
    #[arg(long, value_parser = size)]
    max_total: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompressArg {
    None,
    Gzip,
    Zstd,
}

/// A size limit, or none.
#[derive(Debug, Clone, Copy)]
struct Limit(Option<u64>);

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Direct,
    Buffered,
}

fn size(s: &str) -> Result<u64, String> {
    logcut::parse_size(s).map_err(|e| e.to_string())
}

fn size_or_none(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match size(s)? {
        0 => Err("the size is zero; give at least 1 byte, or \"none\"".to_string()),
        n => Ok(Limit(Some(n))),
    }
}

fn interval(s: &str) -> Result<logcut::Interval, String> {
    s.parse().map_err(|e: logcut::Error| e.to_string())
}

fn fsync(s: &str) -> Result<logcut::Fsync, String> {
    Ok(match s {
        "never" => logcut::Fsync::Never,
        "seal" => logcut::Fsync::AtSeal,
        "always" => logcut::Fsync::Always,
        other => logcut::Fsync::Every(duration(other).map_err(|_| {
            format!("{other:?} is not an fsync policy; use never, seal, always or an interval such as 1s")
        })?),
    })
}

fn duration(s: &str) -> Result<Duration, String> {
    logcut::parse_duration(s).map_err(|e| e.to_string())
}

impl WriteArgs {
    /// Opens the appender these options describe, for log `name`.
    pub(crate) fn open(&self, name: &str) -> Result<logcut::Appender> {
        if self.max_line == 0 {
            anyhow::bail!("--max-line is zero; give at least 1 byte");
        }
        let compression = match (self.compress, self.compress_level) {
            (CompressArg::None, Some(_)) => {
                anyhow::bail!("--compress-level needs --compress gzip or --compress zstd")
            }
            (CompressArg::None, None) => logcut::Compression::None,
            (CompressArg::Gzip, None) => logcut::Compression::gzip(),
            (CompressArg::Gzip, Some(l)) => logcut::Compression::Gzip {
                level: u32::try_from(l)
                    .map_err(|_| anyhow::anyhow!("--compress-level {l}: gzip levels are 0 to 9"))?,
            },
            (CompressArg::Zstd, None) => logcut::Compression::zstd(),
            (CompressArg::Zstd, Some(level)) => logcut::Compression::Zstd { level },
        };
        let mut b = logcut::Appender::builder()
            .dir(&self.dir)
            .name(name)
            .mode(match self.mode {
                ModeArg::Direct => logcut::Mode::Direct,
                ModeArg::Buffered => logcut::Mode::Buffered,
            })
            .fsync(self.fsync)
            .compress(compression)
            .error_handler(|e: logcut::Error| eprintln!("logcut: {e}"));
        if let Some(n) = self.keep {
            b = b.keep(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(d) = self.max_age {
            b = b.max_age(d);
        }
        if let Some(n) = self.max_total {
            b = b.max_total(n);
        }
        b = match self.max_size.0 {
            Some(n) => b.max_size(n),
            None => b.no_max_size(),
        };
        if let Some(iv) = self.interval {
            b = b.interval(iv);
        }
        if let Some(tz) = &self.tz {
            b = b.time_zone(tz);
        }
        b.build()
            .with_context(|| format!("cannot log to {}", self.dir.display()))
    }

    /// The record splitter for these options.
    pub(crate) fn lines(&self) -> Lines {
        Lines {
            pending: Vec::new(),
            max_line: usize::try_from(self.max_line).unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Starts the metrics endpoint, if asked for.
    pub(crate) fn serve_metrics(&self, logs: Vec<(String, logcut::Appender)>) -> Result<()> {
        match self.metrics {
            Some(addr) => crate::metrics::serve(addr, logs),
            None => Ok(()),
        }
    }
}

pub(crate) fn run(args: WriteArgs) -> Result<ExitCode> {
    let appender = args.open(&args.name)?;
    args.serve_metrics(vec![(args.name.clone(), appender.clone())])?;
    let term = Arc::new(AtomicBool::new(false));
    let rotate = Arc::new(AtomicBool::new(false));
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("cannot handle signals")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&rotate))
        .context("cannot handle signals")?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, ignored)
        .context("cannot handle signals")?;

    let max_line = usize::try_from(args.max_line).unwrap_or(usize::MAX);
    let mut lines = Lines {
        pending: Vec::new(),
        max_line,
    };
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut chunk = vec![0u8; 256 << 10];
    let mut last_input = Instant::now();
    loop {
        if rotate.swap(false, Ordering::Relaxed) {
            if let Err(e) = appender.rotate() {
                eprintln!("logcut: {e}");
            }
        }
        if term.load(Ordering::Relaxed) && last_input.elapsed() >= args.grace {
            break;
        }
        // Wait for input a little at a time, so signals are seen promptly.
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(std::io::Error::from(e)).context("cannot wait for standard input");
            }
        }
        let n = match rustix::io::read(fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(std::io::Error::from(e)).context("cannot read standard input"),
        };
        last_input = Instant::now();
        lines.feed(&chunk[..n], |rec| appender.write_record(rec))?;
    }
    lines.finish(|rec| appender.write_record(rec))?;
    appender.shutdown().context("cannot finish the log")?;
    Ok(ExitCode::SUCCESS)
}

/// Splits input into records: lines, and pieces of overlong lines.
pub(crate) struct Lines {
    pending: Vec<u8>,
    max_line: usize,
}

impl Lines {
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8]) -> logcut::Result<()>,
    ) -> logcut::Result<()> {
        while !data.is_empty() {
            let room = self.max_line - self.pending.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if self.pending.is_empty() {
                        emit(&data[..=i])?;
                    } else {
                        self.pending.extend_from_slice(&data[..=i]);
                        emit(&self.pending)?;
                        self.pending.clear();
                    }
                    data = &data[i + 1..];
                }
                None if window.len() == room => {
                    // A full piece of an overlong line.
                    self.pending.extend_from_slice(window);
                    emit(&self.pending)?;
                    self.pending.clear();
                    data = &data[room..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(
        &mut self,
        mut emit: impl FnMut(&[u8]) -> logcut::Result<()>,
    ) -> logcut::Result<()> {
        if !self.pending.is_empty() {
            emit(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    fn split(input: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut l = Lines {
            pending: Vec::new(),
            max_line: max,
        };
        for chunk in input {
            l.feed(chunk, |r| {
                out.push(r.to_vec());
                Ok(())
            })
            .unwrap();
        }
        l.finish(|r| {
            out.push(r.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_across_chunks_and_a_last_line_without_newline() {
        let got = split(&[b"ab\ncd", b"e\n\nf"], 100);
        assert_eq!(
            got,
            [
                b"ab\n".to_vec(),
                b"cde\n".to_vec(),
                b"\n".to_vec(),
                b"f".to_vec()
            ]
        );
    }

    #[test]
    fn overlong_lines_are_split_into_pieces() {
        let got = split(&[b"0123456789\nab", b"cdefg\n"], 4);
        let want: [&[u8]; 5] = [b"0123", b"4567", b"89\n", b"abcd", b"efg\n"];
        assert_eq!(got, want.map(|s| s.to_vec()));
        assert_eq!(got.concat(), b"0123456789\nabcdefg\n");
    }

    #[test]
    fn bytes_pass_through() {
        let input: &[u8] = b"\xff\x00bin\r\n";
        assert_eq!(split(&[input], 100), [input.to_vec()]);
    }
}
