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
//! `--grace` passes with no input (counted from the signal, or from the
//! last input after it), then writes everything, seals and exits 0: what
//! the producer wrote into the pipe is not dropped (the grace ends only
//! when there is nothing left to read). If the input is still open then,
//! it says so on standard error: what is written to it afterwards is not
//! logged. SIGUSR1 cuts the log now; SIGHUP reopens it (after logrotate
//! or an operator moved the active file away; the library also notices
//! that by itself within 500 ms). Touching the trigger file (by default
//! `DIR/NAME.trigger`, which `logcut rotate` touches) cuts too.

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::UsageError;

/// Options of `logcut write`.
///
/// A `--config` file may give any of them (see `config.rs`); a flag on the
/// command line wins over the file, so the fields are public to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WriteArgs {
    /// Read options from this TOML file (keys named like the flags, with
    /// '_' for '-': dir, name, max_size, interval, tz, mode, max_line, fsync,
    /// metrics, grace, shutdown_timeout, trigger, compress, compress_level,
    /// index, ship,
    /// ship_endpoint, ship_region, ship_path_style, ship_template, keep, max_age,
    /// max_total, min_free, shared, route_field, max_open, root_max_total,
    /// root_min_free, and stderr_name
    /// for run;
    /// for routing, default_group, [groups.NAME] tables and [[routes]]);
    /// flags given here win.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The log directory (created if missing, mode 0750). Required, here or
    /// in the config file.
    #[arg(short, long)]
    pub(crate) dir: Option<PathBuf>,
    /// The log's name: the active file is DIR/NAME.log.
    #[arg(short, long, default_value = "app")]
    pub(crate) name: String,
    /// Cut before a segment would exceed this size (64MiB, 1G, 4096), or
    /// "none".
    #[arg(short = 's', long, default_value = "64MiB", value_parser = size_or_none)]
    pub(crate) max_size: Limit,
    /// Also cut at wall-clock boundaries: 30s, 15m, 1h, 1d.
    #[arg(long, value_parser = interval)]
    pub(crate) interval: Option<logcut::Interval>,
    /// The IANA time zone of the interval's boundaries (default UTC).
    #[arg(long)]
    pub(crate) tz: Option<String>,
    /// direct: every line is in the kernel before the next is read;
    /// buffered: lines are batched in memory (faster).
    #[arg(long, value_enum, default_value_t = ModeArg::Buffered)]
    pub(crate) mode: ModeArg,
    /// The longest record; longer lines are split (see `logcut write --help`).
    #[arg(long, default_value = "1MiB", value_parser = positive_size)]
    pub(crate) max_line: u64,
    /// When to flush to the device: never, seal (each sealed segment), always
    /// (every record), or an interval such as 1s.
    #[arg(long, default_value = "seal", value_parser = fsync)]
    pub(crate) fsync: logcut::Fsync,
    /// Serve the stats in Prometheus text format at http://ADDR/metrics
    /// (such as 127.0.0.1:9184). Nothing listens without it.
    #[arg(long, value_parser = socket_addr)]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// After SIGTERM or SIGINT, keep reading until input ends or nothing
    /// arrives for this long (from the signal on).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub(crate) grace: Duration,
    /// Once input has ended: how long to keep retrying lines that cannot
    /// be written (a full disk) before counting them lost, and then, as
    /// long again, to finish compressing, indexing and shipping sealed
    /// segments (what is left then is done at the next start).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub(crate) shutdown_timeout: Duration,
    /// Cut when this file is created, written or touched (what `logcut
    /// rotate` does). By default DIR/NAME.trigger, created at start; "none"
    /// for no trigger file.
    #[arg(long, value_name = "PATH")]
    pub(crate) trigger: Option<String>,
    /// Compress sealed segments in the background: none, gzip or zstd.
    #[arg(long, value_enum, default_value_t = CompressArg::None)]
    pub(crate) compress: CompressArg,
    /// The compression level (gzip 0-9, default 6; zstd -7 to 22, default 3).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) compress_level: Option<i32>,
    /// Index the values of these JSON fields (comma-separated names, such
    /// as trace_id,user_id) in each sealed segment, so that `logcut grep
    /// --field` skips segments that cannot hold a value; "none" for no
    /// index. By default trace_id when lines are routed (--route-field) or
    /// segments compressed (the index is built in the same read), else
    /// none.
    #[arg(long, value_name = "FIELDS", value_parser = index_fields)]
    pub(crate) index: Option<IndexFields>,
    /// Keep at most this many sealed segments (oldest deleted first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keep: Option<u64>,
    /// Delete sealed segments older than this (by their end): 7d, 12h.
    #[arg(long, value_parser = positive_duration)]
    pub(crate) max_age: Option<Duration>,
    /// Delete the oldest sealed segments while all take more than this on
    /// disk: 10GiB.
    #[arg(long, value_parser = positive_size)]
    pub(crate) max_total: Option<u64>,
    /// Delete the oldest sealed segments while the file system holding the
    /// log has less than this free: 2GiB.
    #[arg(long, value_parser = positive_size)]
    pub(crate) min_free: Option<u64>,
    /// Share the log with other processes writing it with --shared (other
    /// `logcut write` pipes, or programs using the library's shared mode):
    /// each cut is made by one of them, the others follow; one at a time
    /// compresses, ships and deletes (give them all the same options).
    #[arg(long)]
    pub(crate) shared: bool,
    /// Route each line (a JSON object) to its tenant's log: the value of
    /// this field (a dotted path for a nested one: ctx.tenant) names the
    /// tenant, whose log is DIR/GROUP/TENANT/. Groups and routes come from
    /// the config file ([groups.NAME], [[routes]], default_group); without
    /// them, one group "default" with the options given here. A line that
    /// is not JSON, or lacks the field, goes to DIR/DEFAULT/_none/; an
    /// unsafe tenant value to DIR/quarantine/.
    #[arg(long, value_name = "FIELD")]
    pub(crate) route_field: Option<String>,
    /// With --route-field: at most this many tenants' logs open at once
    /// (the least recently used is sealed and closed).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_open: u64,
    /// With --route-field: a budget across every tenant's log under DIR
    /// (10GiB): past it, the oldest sealed segments of the lowest-priority
    /// group (`priority` in its [groups.NAME] table; 0 by default) are
    /// deleted first, across its tenants.
    #[arg(long, value_parser = positive_size)]
    pub(crate) root_max_total: Option<u64>,
    /// Ship each sealed segment (compressed, if --compress) to this bucket
    /// and key prefix, s3://BUCKET/PREFIX, recorded in the manifest; no
    /// retention limit deletes a segment before it is shipped (only
    /// --min-free, when the disk is about to fill, and then it says so).
    /// Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile
    /// files or instance metadata.
    #[arg(long, value_name = "URL")]
    pub(crate) ship: Option<String>,
    #[command(flatten)]
    pub(crate) s3: crate::ship::S3Args,
    /// One uploader for every log this command opens.
    #[arg(skip)]
    pub(crate) shipper: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<logcut_ship::S3Shipper>>>,
    /// With --route-field: delete sealed segments in the budget's order
    /// while the file system holding DIR has less than this free (2GiB).
    #[arg(long, value_parser = positive_size)]
    pub(crate) root_min_free: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CompressArg {
    None,
    Gzip,
    Zstd,
}

/// A size limit, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit(Option<u64>);

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ModeArg {
    Direct,
    Buffered,
}

/// `true` or `false` (a config file's boolean).
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

pub(crate) fn size(s: &str) -> Result<u64, String> {
    logcut::parse_size(s).map_err(|e| config_message(&e))
}

/// A size of at least 1 byte (`--max-line`, `--max-total`).
pub(crate) fn positive_size(s: &str) -> Result<u64, String> {
    match size(s)? {
        0 => Err("the size is zero; give at least 1 byte".to_string()),
        n => Ok(n),
    }
}

pub(crate) fn size_or_none(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match size(s)? {
        0 => Err("the size is zero; give at least 1 byte, or \"none\"".to_string()),
        n => Ok(Limit(Some(n))),
    }
}

pub(crate) fn interval(s: &str) -> Result<logcut::Interval, String> {
    s.parse().map_err(|e: logcut::Error| config_message(&e))
}

pub(crate) fn fsync(s: &str) -> Result<logcut::Fsync, String> {
    Ok(match s {
        "never" => logcut::Fsync::Never,
        "seal" => logcut::Fsync::AtSeal,
        "always" => logcut::Fsync::Always,
        other => logcut::Fsync::Every(positive_duration(other).map_err(|_| {
            format!("{other:?} is not an fsync policy; use never, seal, always or an interval such as 1s")
        })?),
    })
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    logcut::parse_duration(s).map_err(|e| config_message(&e))
}

/// A duration above zero (`--max-age`).
pub(crate) fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("the duration is zero; give a positive one such as 7d".to_string()),
        d => Ok(d),
    }
}

pub(crate) fn mode(s: &str) -> Result<ModeArg, String> {
    <ModeArg as clap::ValueEnum>::from_str(s, true)
        .map_err(|_| format!("{s:?} is not a mode; use direct or buffered"))
}

pub(crate) fn socket_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address to listen on; write IP:PORT, such as 127.0.0.1:9184")
    })
}

impl WriteArgs {
    /// Checks every option for log `name` (given as `flag`: `--name` or
    /// `--stderr-name`), with the library's own checks, before anything
    /// touches the file system: a configuration the library would refuse
    /// creates no directory and no file.
    pub(crate) fn prepare(&self, name: &str, flag: &str) -> Result<Prepared> {
        let dir = self.dir()?.to_path_buf();
        let mut b = self
            .policy()?
            .dir(&dir)
            .name(name)
            // SIGUSR1 rotates, SIGHUP reopens, handled by the library's
            // own thread: no polling delay.
            .signals(true);
        if let Some(t) = self.trigger_path(&dir, name)? {
            b = b.trigger_file(t);
        }
        if let Err(e) = b.check() {
            return Err(self.build_error(&e, &dir, flag));
        }
        // The default trigger file: DIR/NAME.trigger, the name checked.
        let default_trigger = self
            .trigger
            .is_none()
            .then(|| dir.join(format!("{name}.trigger")));
        Ok(Prepared {
            builder: b,
            dir,
            default_trigger,
            flag: flag.to_string(),
        })
    }

    /// The uploader for `--ship URL`, made once. For routed logs, keys name
    /// each log by its path under the root (`group/tenant`).
    fn uploader(&self, url: &str) -> Result<std::sync::Arc<dyn logcut::Ship>> {
        if let Some(s) = self.shipper.get() {
            return Ok(s.clone());
        }
        let base = self.route_field.as_ref().and(self.dir.as_deref());
        let made = std::sync::Arc::new(self.s3.shipper(url, base)?);
        Ok(self.shipper.get_or_init(|| made).clone())
    }

    /// An error if a router's budget is asked for without routing.
    pub(crate) fn refuse_root_options(&self) -> Result<()> {
        for (given, flag) in [
            (self.root_max_total.is_some(), "--root-max-total"),
            (self.root_min_free.is_some(), "--root-min-free"),
        ] {
            if given {
                return Err(UsageError(format!(
                    "{flag} is a budget across a router's tenants: it needs --route-field (for one log, use {})",
                    flag.replace("root-", "")
                ))
                .into());
            }
        }
        Ok(())
    }

    /// The options every log shares, whatever its directory and name (a
    /// routed group's policy): mode, fsync, compression, retention, limits.
    pub(crate) fn policy(&self) -> Result<logcut::AppenderBuilder> {
        let compression = match (self.compress, self.compress_level) {
            (CompressArg::None, Some(_)) => {
                return Err(UsageError(
                    "--compress-level needs --compress gzip or --compress zstd".into(),
                )
                .into());
            }
            (CompressArg::None, None) => logcut::Compression::None,
            (CompressArg::Gzip, None) => logcut::Compression::gzip(),
            (CompressArg::Gzip, Some(l)) => logcut::Compression::Gzip {
                level: u32::try_from(l).map_err(|_| {
                    UsageError(format!("--compress-level {l}: gzip levels are 0 to 9"))
                })?,
            },
            (CompressArg::Zstd, None) => logcut::Compression::zstd(),
            (CompressArg::Zstd, Some(level)) => logcut::Compression::Zstd { level },
        };
        let index = match &self.index {
            Some(fields) => fields.0.clone(),
            None if !self.shared
                && (self.route_field.is_some() || compression != logcut::Compression::None) =>
            {
                vec!["trace_id".to_string()]
            }
            None => Vec::new(),
        };
        let mut b = logcut::Appender::builder()
            .index_fields(index)
            .mode(match self.mode {
                ModeArg::Direct => logcut::Mode::Direct,
                ModeArg::Buffered => logcut::Mode::Buffered,
            })
            .fsync(self.fsync)
            .compress(compression)
            .shared(self.shared)
            .shutdown_timeout(self.shutdown_timeout)
            .error_handler(|e: logcut::Error| eprintln!("logcut: {e}"));
        if let Some(url) = &self.ship {
            b = b.ship(self.uploader(url)?);
        }
        if let Some(n) = self.keep {
            b = b.keep(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(d) = self.max_age {
            b = b.max_age(d);
        }
        if let Some(n) = self.max_total {
            b = b.max_total(n);
        }
        if let Some(n) = self.min_free {
            b = b.min_free(n);
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
        Ok(b)
    }

    /// The error to report for `e`, from building the appender: a bad
    /// option value is a usage error naming its flag; a directory that is
    /// a file, or one this user cannot write, is the machine's state: a
    /// runtime error, with what to do about it.
    pub(crate) fn build_error(&self, e: &logcut::Error, dir: &Path, flag: &str) -> anyhow::Error {
        if let Some(field) = e.config_field() {
            if field != "dir" || dir.as_os_str().is_empty() {
                let flag = match field {
                    "name" => flag.to_string(),
                    "time_zone" => "--tz".to_string(),
                    "trigger_file" => "--trigger".to_string(),
                    "compress" if self.compress_level.is_some() => "--compress-level".to_string(),
                    other => format!("--{}", other.replace('_', "-")),
                };
                return UsageError(format!("invalid {flag}: {}", config_message(e))).into();
            }
        }
        let hint = match e.io_error().map(std::io::Error::kind) {
            Some(std::io::ErrorKind::PermissionDenied) => {
                "; choose a directory this user can write to, or change its permissions"
            }
            Some(std::io::ErrorKind::ReadOnlyFilesystem) => {
                "; the file system is read-only: choose another directory"
            }
            Some(std::io::ErrorKind::NotADirectory) => "; give a directory, not a file",
            _ => "",
        };
        if e.is_config() {
            // "DIR exists and is not a directory": it names the directory.
            return anyhow::anyhow!("cannot log there: {}", config_message(e));
        }
        // The library's error names the path too: say it once.
        match e.io_error() {
            Some(io) if e.path() == Some(dir) => {
                anyhow::anyhow!("cannot log to {}: {io}{hint}", dir.display())
            }
            _ => anyhow::anyhow!("cannot log to {}: {e}{hint}", dir.display()),
        }
    }

    /// The trigger file for log `name`, if any: `--trigger PATH`, or by
    /// default `DIR/NAME.trigger` (see `create_trigger`).
    fn trigger_path(&self, dir: &Path, name: &str) -> Result<Option<PathBuf>> {
        match self.trigger.as_deref() {
            Some("none") => Ok(None),
            Some("") => {
                Err(UsageError("--trigger is empty; give a file path, or \"none\"".into()).into())
            }
            Some(p) => Ok(Some(PathBuf::from(p))),
            None => Ok(Some(dir.join(format!("{name}.trigger")))),
        }
    }

    /// The log directory, from the flag or the config file.
    pub(crate) fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().ok_or_else(|| {
            UsageError(
                "no log directory; give --dir DIR, or dir = \"DIR\" in the --config file".into(),
            )
            .into()
        })
    }

    /// The record splitter for these options.
    pub(crate) fn lines(&self) -> Lines {
        Lines::new(usize::try_from(self.max_line).unwrap_or(usize::MAX))
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

/// An appender's options, checked: [`Prepared::open`] creates its files.
pub(crate) struct Prepared {
    builder: logcut::AppenderBuilder,
    dir: PathBuf,
    /// The default trigger file, created before the appender starts.
    default_trigger: Option<PathBuf>,
    /// The flag that named the log, for errors.
    flag: String,
}

impl Prepared {
    /// Creates the directory and the default trigger file, and starts the
    /// appender.
    pub(crate) fn open(self, args: &WriteArgs) -> Result<logcut::Appender> {
        if let Some(trigger) = &self.default_trigger {
            // The default trigger file exists before the appender starts:
            // created later, its appearance would count as a trigger. The
            // directory is created as the library would (mode 0750); if
            // that fails, the library says why.
            use std::os::unix::fs::DirBuilderExt;
            if std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&self.dir)
                .is_ok()
            {
                let _ = create_trigger(trigger);
            }
        }
        let appender = self
            .builder
            .build()
            .map_err(|e| args.build_error(&e, &self.dir, &self.flag))?;
        if let Some(trigger) = &self.default_trigger {
            create_trigger(trigger)?;
        }
        Ok(appender)
    }
}

/// A configuration error's message without its "invalid `field`: "
/// prefix (the library's name for the setting, not the flag's).
pub(crate) fn config_message(e: &logcut::Error) -> String {
    let text = e.to_string();
    match e.config_field() {
        Some(field) => text
            .strip_prefix(&format!("invalid `{field}`: "))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

pub(crate) fn run(mut args: WriteArgs, matches: &clap::ArgMatches) -> Result<ExitCode> {
    let routes = crate::config::apply(&mut args, None, matches)?;
    if args.route_field.is_some() {
        return crate::route::run(&args, routes);
    }
    if let Some(r) = routes {
        return Err(UsageError(format!(
            "the config file has {}: they need --route-field (or route_field in the file)",
            r.what()
        ))
        .into());
    }
    args.refuse_root_options()?;
    let appender = args.prepare(&args.name, "--name")?.open(&args)?;
    args.serve_metrics(vec![(args.name.clone(), appender.clone())])?;
    pump(&args, |buf, ends| appender.write_batch(buf, ends))?;
    appender.shutdown().context("cannot finish the log")?;
    Ok(ExitCode::SUCCESS)
}

/// Reads standard input until it ends (or, after SIGTERM or SIGINT, until
/// nothing comes for the grace), handing whole lines to `emit` in batches
/// (the bytes, and where each line ends in them).
pub(crate) fn pump(
    args: &WriteArgs,
    mut emit: impl FnMut(&[u8], &[usize]) -> logcut::Result<()>,
) -> Result<()> {
    // The stop signal received (SIGTERM or SIGINT), 0 for none yet.
    let term = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_usize(sig, Arc::clone(&term), sig as usize)
            .context("cannot handle signals")?;
    }

    let mut lines = args.lines();
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut chunk = vec![0u8; 256 << 10];
    let mut last_input = Instant::now();
    // When the stop signal was first seen: the grace counts from then, or
    // from the last input after it.
    let mut stopping: Option<(Instant, usize)> = None;
    loop {
        if stopping.is_none() {
            let sig = term.load(Ordering::Relaxed);
            if sig != 0 {
                stopping = Some((Instant::now(), sig));
            }
        }
        // Wait for input a little at a time, so signals are seen promptly;
        // once stopping, no longer than the grace has left.
        let mut wait = Duration::from_millis(100);
        if let Some((since, _)) = stopping {
            wait = wait.min(args.grace.saturating_sub(last_input.max(since).elapsed()));
        }
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            // Nothing to read. The grace ends only here, with nothing left
            // in the input: what the producer put there before is read.
            Ok(0) => {
                if let Some((since, sig)) = stopping {
                    if last_input.max(since).elapsed() >= args.grace {
                        // The input is still open: its writer may go on
                        // writing to a pipe nobody reads.
                        eprintln!(
                            "logcut: nothing came on standard input for {:?} after {}, though it is still open: stopped reading; what is written to it from now on is not logged",
                            args.grace,
                            signal_name(sig)
                        );
                        break;
                    }
                }
                continue;
            }
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
        lines.feed(&chunk[..n], &mut emit)?;
    }
    lines.finish(&mut emit)?;
    Ok(())
}

/// The name of the stop signal `sig`.
fn signal_name(sig: usize) -> &'static str {
    if sig == signal_hook::consts::SIGINT as usize {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// The fields `--index` names (none for "none").
#[derive(Debug, Clone)]
pub(crate) struct IndexFields(pub(crate) Vec<String>);

/// `--index`: comma-separated field names, or "none".
pub(crate) fn index_fields(s: &str) -> Result<IndexFields, String> {
    if s == "none" {
        return Ok(IndexFields(Vec::new()));
    }
    s.split(',')
        .map(|f| {
            let f = f.trim();
            logcut_format::index::validate_key(f).map(|()| f.to_string())
        })
        .collect::<Result<_, _>>()
        .map(IndexFields)
}

pub(crate) fn compress(s: &str) -> Result<CompressArg, String> {
    <CompressArg as clap::ValueEnum>::from_str(s, false)
        .map_err(|_| format!("{s:?} is not a compression; use none, gzip or zstd"))
}

pub(crate) fn level(s: &str) -> Result<i32, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a compression level; give an integer such as 3"))
}

pub(crate) fn keep(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number of segments to keep; give at least 1"
        )),
    }
}

/// Creates the default trigger file (empty, mode 0640) if missing, so that
/// the appender watches the file itself rather than the busy log
/// directory. A symlink planted at its name is not followed.
fn create_trigger(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc_nofollow())
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the trigger file {}", path.display()))
        }
    }
}

/// `O_NOFOLLOW`: a symlink planted at the trigger file's name is not
/// followed.
fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Splits input into records: lines, and pieces of overlong lines. The
/// records found whole in a chunk are handed on as one batch
/// ([`logcut::Appender::write_batch`]): one lock and one copy per chunk
/// rather than per line.
pub(crate) struct Lines {
    pending: Vec<u8>,
    max_line: usize,
    /// Scratch: where each record of the batch ends.
    ends: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(max_line: usize) -> Lines {
        Lines {
            pending: Vec::new(),
            max_line: max_line.max(1),
            ends: Vec::new(),
        }
    }

    /// Splits `data`, emitting batches of whole records (the bytes, and
    /// where each record ends in them); keeps a partial last line for the
    /// next call.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8], &[usize]) -> logcut::Result<()>,
    ) -> logcut::Result<()> {
        // First complete the line left over from the previous chunk.
        while !self.pending.is_empty() && !data.is_empty() {
            let room = self.max_line - self.pending.len();
            let window = &data[..data.len().min(room)];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..=i]);
                    emit(&self.pending, &[self.pending.len()])?;
                    self.pending.clear();
                    data = &data[i + 1..];
                }
                None if window.len() == room => {
                    // A full piece of an overlong line.
                    self.pending.extend_from_slice(window);
                    emit(&self.pending, &[self.pending.len()])?;
                    self.pending.clear();
                    data = &data[room..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &[];
                }
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        // Then every whole record in the rest, as one batch.
        self.ends.clear();
        // One pass over the chunk for its newlines (a search per line costs
        // a call and a set-up each); an overlong line is cut into pieces of
        // `max_line` bytes on the way.
        let mut pos = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            while nl + 1 - pos > self.max_line {
                pos += self.max_line;
                self.ends.push(pos);
            }
            pos = nl + 1;
            self.ends.push(pos);
        }
        // After the last newline: full pieces of an overlong line go now;
        // a partial last line is kept for the next chunk.
        while data.len() - pos >= self.max_line {
            pos += self.max_line;
            self.ends.push(pos);
        }
        if !self.ends.is_empty() {
            emit(&data[..pos], &self.ends)?;
        }
        self.pending.extend_from_slice(&data[pos..]);
        Ok(())
    }

    /// Emits a last line without its newline, if any.
    pub(crate) fn finish(
        &mut self,
        mut emit: impl FnMut(&[u8], &[usize]) -> logcut::Result<()>,
    ) -> logcut::Result<()> {
        if !self.pending.is_empty() {
            emit(&self.pending, &[self.pending.len()])?;
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
        let mut l = Lines::new(max);
        let mut take = |buf: &[u8], ends: &[usize]| {
            let mut start = 0;
            for e in ends {
                out.push(buf[start..*e].to_vec());
                start = *e;
            }
            Ok(())
        };
        for chunk in input {
            l.feed(chunk, &mut take).unwrap();
        }
        l.finish(&mut take).unwrap();
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

    proptest::proptest! {
        /// Any input in any chunks: the records are the input, in order,
        /// each a line of at most `max` bytes or a piece of exactly `max`
        /// bytes of a longer one; only the very last may lack its newline.
        #[test]
        fn any_input_is_framed_into_whole_lines_losing_nothing(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![proptest::prelude::Just(b'\n'), proptest::prelude::any::<u8>()], 0..64),
                0..8,
            ),
            max in 1usize..40,
        ) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let records = split(&refs, max);
            proptest::prop_assert_eq!(records.concat(), chunks.concat());
            for (i, r) in records.iter().enumerate() {
                proptest::prop_assert!(!r.is_empty() && r.len() <= max);
                let last = i + 1 == records.len();
                proptest::prop_assert!(r.ends_with(b"\n") || r.len() == max || last);
                // A newline only at the end: a line is never joined to
                // the next.
                proptest::prop_assert!(!r[..r.len() - 1].contains(&b'\n'));
            }
        }
    }
}
