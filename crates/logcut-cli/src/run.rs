//! `logcut run -- CMD ARGS...`: starts a program with its standard output
//! and error captured into the log.
//!
//! Each line of either stream is one record (stderr goes to its own log
//! with `--stderr-name`). SIGTERM, SIGINT and SIGHUP are forwarded to the
//! program; logcut exits with the program's exit status (128 + the signal
//! number if a signal ended it) once everything it printed is written.
//!
//! A program that cannot be started is reported on one line, with the exit
//! status shells, `env` and `timeout` use: 127 if it is not found, 126 if
//! it is found but cannot be executed. Those found out by looking (no such
//! file, a directory, no execute permission) are found before any log is
//! opened; those the kernel reports (a missing `#!` interpreter) leave the
//! log opened and closed, with nothing in it.

use std::{
    io::Read,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{Exit, write::WriteArgs};

/// Options of `logcut run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    log: WriteArgs,
    /// Write standard error to this log instead of the same one.
    #[arg(long)]
    stderr_name: Option<String>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub(crate) fn run(mut args: RunArgs, matches: &clap::ArgMatches) -> Result<ExitCode> {
    let routes = crate::config::apply(&mut args.log, Some(&mut args.stderr_name), matches)?;
    if routes.is_some() || args.log.route_field.is_some() {
        return Err(crate::UsageError(
            "routing (--route-field, [groups], [[routes]]) is for `logcut write`, not `run`".into(),
        )
        .into());
    }
    args.log.refuse_root_options()?;
    // Both logs are checked before either creates a file.
    let out_prepared = args.log.prepare(args.log.name(), "--name")?;
    let err_prepared = match &args.stderr_name {
        Some(n) if n == args.log.name() => {
            return Err(crate::UsageError(format!(
                "--stderr-name {n:?} is the log of standard output too; leave it out to write both streams to one log"
            ))
            .into());
        }
        Some(n) => Some(args.log.prepare(n, "--stderr-name")?),
        None => None,
    };
    // A program that cannot be started creates no log either.
    let program = find_program(&args.command[0])?;
    let out_log = out_prepared.open(&args.log)?;
    let err_log = match err_prepared {
        Some(p) => p.open(&args.log)?,
        None => out_log.clone(),
    };
    let mut logs = vec![(args.log.name().to_string(), out_log.clone())];
    if let Some(n) = &args.stderr_name {
        logs.push((n.clone(), err_log.clone()));
    }
    args.log.serve_metrics(logs)?;
    // Signals to forward: the last one received, 0 for none.
    let pending = Arc::new(AtomicUsize::new(0));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register_usize(sig, Arc::clone(&pending), sig as usize)
            .context("cannot handle signals")?;
    }
    let spawned = Command::new(&program)
        .arg0(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // The log was opened for nothing: close it properly.
            let _ = out_log.shutdown();
            let _ = err_log.shutdown();
            return Err(cannot_start(&args.command[0], &program, &e));
        }
    };
    let pid = rustix::process::Pid::from_raw(child.id() as i32)
        .context("the program has no process id")?;
    let pump =
        |mut from: Box<dyn Read + Send>, to: logcut::Appender, mut lines: crate::write::Lines| {
            std::thread::spawn(move || -> Result<()> {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e).context("cannot read the program's output"),
                    };
                    lines.feed(&buf[..n], |b, e| to.write_batch(b, e))?;
                }
                lines.finish(|b, e| to.write_batch(b, e))?;
                Ok(())
            })
        };
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let out_pump = pump(Box::new(stdout), out_log.clone(), args.log.lines());
    let err_pump = pump(Box::new(stderr), err_log.clone(), args.log.lines());
    let status = loop {
        let sig = pending.swap(0, Ordering::SeqCst);
        if sig != 0 {
            if let Some(s) = rustix::process::Signal::from_named_raw(sig as i32) {
                // The program may have exited already; nothing to do then.
                let _ = rustix::process::kill_process(pid, s);
            }
        }
        if let Some(status) = child.try_wait().context("cannot wait for the program")? {
            break status;
        }
        // Check for signals to forward a few times a second.
        std::thread::park_timeout(Duration::from_millis(50));
    };
    for p in [out_pump, err_pump] {
        p.join()
            .map_err(|_| anyhow::anyhow!("an output reader panicked"))??;
    }
    out_log.shutdown().context("cannot finish the log")?;
    err_log.shutdown().context("cannot finish the stderr log")?;
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Where `prog` is, the way `execvp` looks for it: a name with a `/` as
/// given; a bare name in the directories of `PATH`, the first executable
/// file found (or, if none is executable, the first file found). Checked
/// before any log is opened: not found is an [`Exit`] with status 127, a
/// directory or a file without execute permission one with 126.
fn find_program(prog: &str) -> Result<PathBuf> {
    let exit = |code, why: &str| -> anyhow::Error {
        Exit {
            code,
            msg: format!("cannot run {prog}: {why}"),
        }
        .into()
    };
    if prog.is_empty() {
        return Err(Exit {
            code: 127,
            msg: "cannot run \"\": the program name is empty".into(),
        }
        .into());
    }
    let path = if prog.contains('/') {
        PathBuf::from(prog)
    } else {
        let search =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let mut found: Option<PathBuf> = None;
        for dir in std::env::split_paths(&search) {
            // An empty entry is the working directory.
            let candidate = if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(prog)
            } else {
                dir.join(prog)
            };
            match std::fs::metadata(&candidate) {
                Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => {
                    found = Some(candidate);
                    break;
                }
                Ok(md) if md.is_file() => {
                    found.get_or_insert(candidate);
                }
                _ => {}
            }
        }
        found.ok_or_else(|| exit(127, "command not found (in no directory of PATH)"))?
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(exit(127, "no such file")),
        Ok(md) if md.is_dir() => Err(exit(126, "it is a directory")),
        Ok(md) if md.permissions().mode() & 0o111 == 0 => {
            Err(exit(126, "permission denied (the file is not executable)"))
        }
        // Anything else is found out when it is started.
        _ => Ok(path),
    }
}

/// The error for a program that could not be started: 127 if it is not
/// there, 126 if it cannot be executed, 1 for anything else (no memory,
/// too many processes).
fn cannot_start(prog: &str, path: &Path, e: &std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let (code, why) = match e.kind() {
        // The program is there, but its #! interpreter is not.
        ErrorKind::NotFound if path.is_file() => (
            127,
            "its interpreter (the #! line) is not found".to_string(),
        ),
        ErrorKind::NotFound => (127, "no such file".to_string()),
        ErrorKind::PermissionDenied if path.is_dir() => (126, "it is a directory".to_string()),
        ErrorKind::PermissionDenied => (126, "permission denied (not executable?)".to_string()),
        _ if e.raw_os_error() == Some(libc_enoexec()) => (
            126,
            "not an executable format (a script needs a #! line)".to_string(),
        ),
        _ => {
            return anyhow::anyhow!("cannot run {prog}: {e}");
        }
    };
    Exit {
        code,
        msg: format!("cannot run {prog}: {why}"),
    }
    .into()
}

/// `ENOEXEC`, the error of a file the kernel cannot execute.
fn libc_enoexec() -> i32 {
    rustix::io::Errno::NOEXEC.raw_os_error()
}
