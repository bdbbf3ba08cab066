//! `logcut completions` and `logcut manpage`: the shell completion scripts
//! and the roff man pages, made from the same definition of the command
//! line as `--help` (so they cannot drift from it).

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::{Cli, UsageError};

/// Options of `logcut completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Install, for example: \
logcut completions bash > /etc/bash_completion.d/logcut; \
logcut completions zsh > \"${fpath[1]}/_logcut\"; \
logcut completions fish > ~/.config/fish/completions/logcut.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Options of `logcut manpage`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Install, for example: \
logcut manpage --dir /usr/local/share/man/man1 (then `man logcut`, `man logcut-write`)")]
pub(crate) struct ManpageArgs {
    /// The page of this subcommand (logcut-SUBCOMMAND(1)) rather than
    /// logcut(1).
    subcommand: Option<String>,
    /// Write every page, logcut.1 and logcut-SUBCOMMAND.1 for each
    /// subcommand, into this directory instead of printing one.
    #[arg(short, long, value_name = "DIR", conflicts_with = "subcommand")]
    dir: Option<PathBuf>,
}

pub(crate) fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "logcut", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn manpage(args: ManpageArgs) -> Result<ExitCode> {
    // Built, so that subcommands have their full names (logcut-write).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = args.dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(cmd.clone(), &dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        let pages = 1 + cmd.get_subcommands().count();
        println!("{pages} man pages written to {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| UsageError(format!("no subcommand {name:?}; see `logcut --help`")))?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}
