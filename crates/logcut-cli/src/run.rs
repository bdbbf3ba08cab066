//! `logcut run -- CMD ARGS...`: starts a program with its standard output
//! and error captured into the log.
//!
//! Each line of either stream is one record (stderr goes to its own log
//! with `--stderr-name`). SIGTERM, SIGINT and SIGHUP are forwarded to the
//! program; logcut exits with the program's exit status (128 + the signal
//! number if a signal ended it) once everything it printed is written.

use std::{
    io::Read,
    process::{Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};

use crate::write::WriteArgs;

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
    crate::config::apply(&mut args.log, Some(&mut args.stderr_name), matches)?;
    let out_log = args.log.open(args.log.name())?;
    let err_log = match &args.stderr_name {
        Some(n) => args.log.open(n)?,
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
    let mut child = Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", args.command[0]))?;
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
