//! `logcut`: a zero-loss pipe logger for any program's output, and the
//! tools to read and check logcut's logs.
//!
//! Exit status: 0 on success, 1 on a runtime failure (or, for `verify`, a
//! problem found or no log at all), 2 on a usage error; `run` exits with
//! the program's status, or 127 if it is not found and 126 if it cannot be
//! executed. Errors are one line on standard error.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cat;
mod config;
mod cursor;
mod demo;
mod follow;
mod grep;
mod holders;
mod json;
mod manual;
mod metrics;
mod progress;
mod range;
mod read;
mod rotate;
mod route;
mod run;
mod seal;
mod ship;
mod write;

use std::{fmt, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Rotate logs by size, by time or on demand, without losing a line; read
/// and verify them.
#[derive(Debug, Parser)]
#[command(name = "logcut", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a busy service in miniature on a local directory, then verify
    /// its logs and count every record.
    Demo(demo::DemoArgs),
    /// Read standard input; write each line as one record to a rotating log.
    Write(write::WriteArgs),
    /// Start a program with its standard output and error captured into the
    /// log; exit with its status.
    Run(run::RunArgs),
    /// Make the running writer of a log seal its active segment now; returns
    /// once the new segment is in place (exit 1 if nobody is writing).
    Rotate(rotate::RotateArgs),
    /// Print the pid of the process writing a log (exit 1 if nobody is),
    /// for logrotate: `postrotate kill -HUP $(logcut pid DIR)`.
    Pid(rotate::PidArgs),
    /// Check a log directory: every segment present, sizes and checksums
    /// match, counts add up. Exits 1 if anything is wrong.
    Verify {
        /// The log directory, or a router's root (`write --route-field`):
        /// then every tenant's log, a line each.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also check the bucket the logs were shipped to (s3://BUCKET/PREFIX):
        /// every object their manifests name there, whole (read back and
        /// hashed), and none unknown to them under their key prefixes.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// Also prove the log's sealed history (see `keygen`) with the
        /// verification key in FILE (never on the command line, where
        /// `ps` shows it). With --json, the result is the document's
        /// `seal`. One log: not a router's root.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// With --key-file: the log to prove, if DIR holds several.
        #[arg(short, long, requires = "key_file")]
        name: Option<String>,
        #[command(flatten)]
        s3: ship::S3Args,
    },
    /// Create a log's sealing key (DIR/NAME.seal-key, mode 0600) and print
    /// its verification key: from the writer's next start, every manifest
    /// entry is sealed, and `verify --key-file` proves the history.
    Keygen(seal::KeygenArgs),
    /// Print every record of a log, oldest first, across sealed and active
    /// segments; or only the segments of a time range; or follow it.
    Cat(cat::CatArgs),
    /// Print every JSON line whose fields have the given values (such as
    /// --field trace_id=ID), across all segments of a log or of every
    /// tenant under a root, in time order. Exits 1 if none matches.
    Grep(grep::GrepArgs),
    /// Ship the sealed segments of a log written earlier (or of every
    /// tenant under a router's root) to object storage, those not shipped
    /// yet, recording each in the manifest.
    Ship(ship::ShipArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell).
    Completions(manual::CompletionsArgs),
    /// Print the man page of logcut or of one subcommand (roff), or write
    /// them all into a directory.
    Manpage(manual::ManpageArgs),
    /// Show a log directory's segments, sizes, records, losses, writer and
    /// last error.
    Status {
        /// The log directory, or a router's root: a line per tenant's log.
        dir: PathBuf,
        /// Print the figures as JSON (what `verify --json` prints, with
        /// each log's writer and last error; the exit status is 0 whatever
        /// it finds).
        #[arg(long)]
        json: bool,
    },
}

/// A mistake in how logcut was called (a bad option value, a bad config
/// file): exit status 2, like clap's own usage errors.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A failure with an exit status of its own (`run`: 127 for a program that
/// is not found, 126 for one that cannot be executed).
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: u8,
    pub(crate) msg: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    // The matches are kept: `--config` needs to know which flags were
    // given on the command line (they win over the file).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let res = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Write(args) => write::run(args, &sub),
        Command::Run(args) => run::run(args, &sub),
        Command::Rotate(args) => rotate::run(args),
        Command::Pid(args) => rotate::pid(args),
        Command::Verify {
            dir,
            json,
            remote,
            key_file,
            name,
            s3,
        } => key_file
            .map(|f| seal::check(&dir, name.as_deref(), &f))
            .transpose()
            .and_then(|seal| {
                // With --json, the seal's result is part of the one
                // document; else it follows the report, as text.
                let code = read::verify(&dir, json, seal.as_ref().filter(|_| json))?;
                match seal.filter(|_| !json) {
                    Some((log, c)) => {
                        seal::print(&log, &c).map(|ok| if ok { code } else { ExitCode::FAILURE })
                    }
                    None => Ok(code),
                }
            })
            .and_then(|code| match remote {
                Some(url) => ship::verify_remote(&dir, &url, &s3).map(|ok| {
                    if ok && code == ExitCode::SUCCESS {
                        code
                    } else {
                        ExitCode::FAILURE
                    }
                }),
                None => Ok(code),
            }),
        Command::Keygen(args) => seal::keygen(args),
        Command::Ship(args) => ship::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Grep(args) => grep::run(args),
        Command::Status { dir, json } => read::status(&dir, json),
        Command::Completions(args) => manual::completions(args),
        Command::Manpage(args) => manual::manpage(args),
    };
    match res {
        Ok(code) => code,
        Err(err) => {
            // A reader that went away (`logcut cat ... | head`) is not an
            // error.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // One line, whatever RUST_BACKTRACE says: an error is a state
            // of the machine or a mistake in the call, not a bug in logcut
            // (a panic, which is one, prints its backtrace as Rust does).
            eprintln!("logcut: {}", one_line(&err));
            if let Some(exit) = err.chain().find_map(|c| c.downcast_ref::<Exit>()) {
                ExitCode::from(exit.code)
            } else if err.chain().any(|c| c.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line. A cause whose text the line
/// already holds (library errors include their source in their own text)
/// is not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
