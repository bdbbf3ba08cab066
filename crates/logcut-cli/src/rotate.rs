//! `logcut rotate`: asks the running writer of a log to seal its active
//! segment, and waits until the new segment is in place.
//!
//! The writer holds an exclusive `flock` on `DIR/NAME.lock` (writers that
//! share the log, shared ones) and names its trigger file there (see
//! `logcut_format::lock`); this command touches the trigger file and
//! watches the active file's identity change.

use std::{
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use logcut_format::{lock::LockInfo, name};

use crate::UsageError;

/// Which log: a directory (given as the argument, as the other commands
/// take it, or with `--dir`) and a name.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// The log directory.
    #[arg(value_name = "DIR", required_unless_present = "dir_flag")]
    dir: Option<PathBuf>,
    /// The log directory (the same as DIR).
    #[arg(short = 'd', long = "dir", value_name = "DIR", conflicts_with = "dir")]
    dir_flag: Option<PathBuf>,
    /// The log's name; by default the only log in DIR (with several, say
    /// which).
    #[arg(short, long)]
    name: Option<String>,
}

impl LogArgs {
    /// The directory, and the log's name (checked, or the only one there).
    fn resolve(&self) -> Result<(PathBuf, String)> {
        let dir = self
            .dir
            .clone()
            .or_else(|| self.dir_flag.clone())
            .unwrap_or_default();
        let log = match &self.name {
            Some(n) => {
                name::validate_name(n).map_err(|m| UsageError(format!("invalid --name: {m}")))?;
                n.clone()
            }
            None => find_log(&dir)?,
        };
        Ok((dir, log))
    }
}

/// Options of `logcut rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Give up (exit 1) if the new segment is not in place within this long.
    #[arg(long, default_value = "10s", value_parser = crate::write::duration)]
    timeout: Duration,
}

/// Options of `logcut pid`.
#[derive(Debug, clap::Args)]
pub(crate) struct PidArgs {
    #[command(flatten)]
    log: LogArgs,
}

/// Prints the pid of each process writing the log, a line each (for a
/// `postrotate` script: `kill -HUP $(logcut pid DIR)`); exit 1 if nobody
/// writes it. The kernel's list of locks names them (see [`holders`]);
/// where it cannot (see there), the pid the lock file records.
///
/// [`holders`]: crate::holders
pub(crate) fn pid(args: PidArgs) -> Result<ExitCode> {
    let (dir, log) = args.log.resolve()?;
    let holder = writer(&dir, &log)?;
    let lock = dir.join(name::lock_file(&log));
    // Where the kernel's list names no holder of a lock that is held (see
    // `holders::of`), the lock file's pid is all there is to go by.
    let pids = match crate::holders::of(&lock, holder.shared) {
        Some(pids) if !pids.is_empty() => pids,
        _ => holder.pid.into_iter().collect(),
    };
    if pids.is_empty() {
        bail!(
            "nobody is writing {} now, or its writer recorded no pid in {}",
            dir.join(name::active_file(&log)).display(),
            lock.display()
        );
    }
    let mut out = std::io::stdout().lock();
    for pid in pids {
        writeln!(out, "{pid}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: RotateArgs) -> Result<ExitCode> {
    let (dir, log) = args.log.resolve()?;
    let timeout = args.timeout;
    let name = log.as_str();
    let holder = writer(&dir, name)?;
    let pid = holder
        .pid
        .map_or_else(|| "?".to_string(), |p| p.to_string());
    let Some(trigger) = holder.trigger else {
        bail!(
            "the writer of {} (pid {pid}) watches no trigger file; start it with --trigger, or send it SIGUSR1 (kill -USR1 {pid})",
            dir.join(name::active_file(name)).display()
        );
    };
    let active = dir.join(name::active_file(name));
    let before = std::fs::symlink_metadata(&active)
        .with_context(|| format!("cannot examine {}", active.display()))?;
    touch(&trigger)?;
    // An empty segment is not cut (nothing would be sealed); a buffered
    // writer may still be writing its first records, so wait a little.
    let wait = if before.len() == 0 {
        timeout.min(Duration::from_secs(1))
    } else {
        timeout
    };
    let deadline = Instant::now() + wait;
    loop {
        match std::fs::symlink_metadata(&active) {
            Ok(now) if now.ino() != before.ino() || now.dev() != before.dev() => break,
            Ok(now) if Instant::now() >= deadline => {
                if now.len() == 0 {
                    println!("nothing to rotate: {} is empty", active.display());
                    return Ok(ExitCode::SUCCESS);
                }
                bail!(
                    "the writer (pid {pid}) did not rotate {} within {:?}; is it stuck? (see its error output)",
                    active.display(),
                    timeout
                );
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot examine {}", active.display()));
            }
        }
        // Polling: the writer gives no other sign. The cut itself takes a
        // few milliseconds; a short pause keeps this loop cheap.
        std::thread::sleep(Duration::from_millis(2));
    }
    match sealed_name_of(&dir, name, before.ino(), before.dev()) {
        Some(f) => println!("rotated: sealed {}", dir.join(f).display()),
        None => println!("rotated {}", active.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The only log in `dir`, found as `verify` finds logs; none (or no
/// directory) means nobody is writing there, several need `--name`.
fn find_log(dir: &Path) -> Result<String> {
    let names = match logcut_format::log_names(dir) {
        Ok(names) => names,
        Err(e) if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) => {
            Vec::new()
        }
        Err(e) => {
            return Err(crate::read::cannot(
                &format!("cannot read {}", dir.display()),
                dir,
                &e,
            ));
        }
    };
    match names.as_slice() {
        [] => bail!(
            "nobody is writing a log in {}: there is no log there (is the directory right?)",
            dir.display()
        ),
        [only] => Ok(only.clone()),
        names => Err(UsageError(format!(
            "{} holds {} logs ({}); say which with --name",
            dir.display(),
            names.len(),
            names.join(", ")
        ))
        .into()),
    }
}

/// Who is writing the log, from its lock file; an error if nobody is.
fn writer(dir: &Path, log: &str) -> Result<LockInfo> {
    let path = dir.join(name::lock_file(log));
    match lock_state(dir, log)? {
        None => bail!(
            "nobody is writing {}: there is no {} (is the directory right?)",
            dir.join(name::active_file(log)).display(),
            path.display()
        ),
        Some((false, _)) => bail!(
            "nobody is writing {}: no process holds {}",
            dir.join(name::active_file(log)).display(),
            path.display()
        ),
        Some((true, info)) => Ok(info),
    }
}

/// The writer of the log for `status --json`: none without a lock file
/// (or if it cannot be read).
pub(crate) fn holder(dir: &Path, log: &str) -> Option<crate::json::Writer> {
    let (alive, info) = lock_state(dir, log).ok()??;
    Some(crate::json::Writer {
        pid: info.pid,
        // Unknown (null) where the list cannot say: see `holders::of`.
        pids: crate::holders::of(&dir.join(name::lock_file(log)), info.shared)
            .filter(|p| !(alive && p.is_empty())),
        alive,
        shared: info.shared,
    })
}

/// The log's lock file: whether a process holds it, and what it says;
/// `None` if there is no lock file.
fn lock_state(dir: &Path, log: &str) -> Result<Option<(bool, LockInfo)>> {
    let path = dir.join(name::lock_file(log));
    let file = match logcut_format::open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    // A shared lock granted means no writer holds the exclusive one; but
    // writers sharing the log (`--shared`) hold shared locks, so for a log
    // whose lock file says so, only an exclusive lock granted means nobody.
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let info = LockInfo::parse(&text);
    let probe = if info.shared {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockShared
    };
    let held = match rustix::fs::flock(&file, probe) {
        Ok(()) => false,
        Err(rustix::io::Errno::WOULDBLOCK) => true,
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot lock {}", path.display()));
        }
    };
    if !held {
        return Ok(Some((false, info)));
    }
    // Read again now that a holder is known: the one read before the probe
    // may predate its start.
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some((true, LockInfo::parse(&text))))
}

/// Creates the trigger file if missing and sets its time to now, without
/// following a symlink.
fn touch(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |create_new: bool| {
        std::fs::OpenOptions::new()
            .append(true)
            .create_new(create_new)
            .mode(0o640)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
    };
    let cannot = || format!("cannot touch the trigger file {}", path.display());
    // A new file's times are now already: creating it is the whole touch
    // (one change for the writer to see, not two).
    match open(true) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open(false)
            .with_context(cannot)?
            .set_modified(std::time::SystemTime::now())
            .with_context(cannot),
        Err(e) => Err(e).with_context(cannot),
    }
}

/// The sealed segment's file name of the file that was active.
fn sealed_name_of(dir: &Path, log: &str, ino: u64, dev: u64) -> Option<String> {
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let e = e.ok()?;
        let f = e.file_name().into_string().ok()?;
        name::SealedName::parse(log, &f)?;
        let md = e.metadata().ok()?;
        (md.ino() == ino && md.dev() == dev).then_some(f)
    })
}
