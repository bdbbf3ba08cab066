//! `keygen` and `verify --key-file`: a log's sealed manifest (see
//! `logcut_format::sealing`).

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, Result};
use logcut_format::sealing::{self, VerifyKey};

use crate::{
    UsageError,
    read::{cannot, pick_log},
};

/// `logcut keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The log directory (created, mode 0750, if missing).
    dir: PathBuf,
    /// The log's name; by default the only log in DIR, or `app` if there
    /// is none yet.
    #[arg(short, long)]
    name: Option<String>,
    /// How long an epoch lasts: its entries can be forged by whoever takes
    /// the machine until it ends and the key moves on.
    #[arg(long, default_value = "15m", value_parser = crate::write::duration)]
    epoch: Duration,
}

/// Creates the sealing key of a log and prints its verification key.
pub(crate) fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    use std::os::unix::fs::DirBuilderExt;
    if args.epoch < Duration::from_secs(1) {
        return Err(UsageError("--epoch must be at least 1s".into()).into());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let name = match &args.name {
        Some(n) => {
            logcut_format::name::validate_name(n)
                .map_err(|m| UsageError(format!("invalid --name: {m}")))?;
            n.clone()
        }
        None => match logcut_format::log_names(&args.dir) {
            Ok(names) if names.is_empty() => "app".to_string(),
            _ => pick_log(&args.dir, None)?,
        },
    };
    let key_path = args.dir.join(sealing::key_file(&name));
    let vk = sealing::keygen(&args.dir, &name, args.epoch, jiff::Timestamp::now()).map_err(|e| {
        if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::AlreadyExists) {
            anyhow::anyhow!(
                "{} already exists: log {name} has a sealing key (a new key would start a new chain; remove the file first if that is what you want)",
                key_path.display()
            )
        } else {
            cannot("cannot create the sealing key", &args.dir, &e)
        }
    })?;
    writeln!(io::stdout().lock(), "{vk}")?;
    eprintln!(
        "sealing key written to {} (mode 0600); the line above is the verification key: keep it off this machine, and check the log with `logcut verify {} --key-file FILE`. The writer seals from its next start.",
        key_path.display(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `verify DIR --key-file FILE`: checks the chain of one log's manifest
/// (`name`, or the only log in DIR): the log's name and what was found.
pub(crate) fn check(
    dir: &Path,
    name: Option<&str>,
    key_file: &Path,
) -> Result<(String, sealing::SealCheck)> {
    if crate::read::is_root(dir) {
        return Err(UsageError(format!(
            "--key-file proves one log's sealed history; {} is a router's root: give a tenant's directory (ROOT/GROUP/TENANT)",
            dir.display()
        ))
        .into());
    }
    let vk = VerifyKey::read(key_file)
        .map_err(|e| cannot("cannot read the verification key", key_file, &e))?;
    let name = pick_log(dir, name)?;
    let c = sealing::check_log(dir, &name, &vk).map_err(|e| {
        cannot(
            &format!("cannot check the seal of {}", dir.display()),
            dir,
            &e,
        )
    })?;
    Ok((name, c))
}

/// Prints what [`check`] found (the text form); returns whether the chain
/// holds.
pub(crate) fn print(name: &str, c: &sealing::SealCheck) -> Result<bool> {
    writeln!(io::stdout().lock(), "{name}: {c}")?;
    Ok(c.is_ok())
}
