//! The shutdown guard: shuts an appender down when it goes out of scope,
//! for programs whose global logger keeps a clone of the appender forever.
//!
//! A global `tracing` subscriber or `log` logger is never dropped: it holds
//! an [`Appender`] clone until the process exits, so the last handle is
//! never dropped and the automatic shutdown never runs. Returning from
//! `main` then ends the process with Buffered records still in memory and
//! the active segment unsealed. A guard held in `main` runs the shutdown
//! on the way out, as tracing-appender's `WorkerGuard` does.

use crate::{Appender, Router};

/// Shuts its appender down when dropped: writes every accepted record,
/// seals the active segment and records the session's totals (see
/// [`Appender::shutdown`]). Errors go to the appender's
/// [`ErrorHandler`](crate::ErrorHandler), as they do for a shutdown on drop;
/// [`ShutdownGuard::shutdown`] returns them instead.
///
/// Made by [`Appender::shutdown_guard`] (or [`Router::shutdown_guard`],
/// which shuts every open log of the router down). Keep it in `main` (or wherever the
/// program ends) for as long as it logs:
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("logcut-doc-guard-{}", std::process::id()));
/// let appender = logcut::Appender::builder().dir(&dir).build()?;
/// let _guard = appender.shutdown_guard();
/// // install a global subscriber or logger with `appender.clone()` here
/// # drop(_guard);
/// # assert!(logcut::verify(&dir)?.is_ok());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Records written after the guard is dropped (a global logger still
/// logging from another thread) are refused and counted in
/// [`Stats::records_rejected`](crate::Stats::records_rejected).
#[must_use = "dropping the guard at once shuts the appender down; bind it with `let _guard = ...`"]
#[derive(Debug)]
pub struct ShutdownGuard {
    target: Option<Target>,
}

/// What a guard shuts down.
#[derive(Debug)]
enum Target {
    Appender(Appender),
    Router(Router),
}

impl ShutdownGuard {
    pub(crate) fn new(appender: Appender) -> ShutdownGuard {
        ShutdownGuard {
            target: Some(Target::Appender(appender)),
        }
    }

    pub(crate) fn for_router(router: Router) -> ShutdownGuard {
        ShutdownGuard {
            target: Some(Target::Router(router)),
        }
    }

    /// Shuts the appender (or router) down now and returns the outcome
    /// (the error is also given to the error handler).
    pub fn shutdown(mut self) -> crate::Result<()> {
        match self.target.take() {
            Some(Target::Appender(a)) => a.shutdown(),
            Some(Target::Router(r)) => r.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        // Reported to the error handlers by the shutdown itself; nobody is
        // left to return it to.
        let _ = match self.target.take() {
            Some(Target::Appender(a)) => a.shutdown(),
            Some(Target::Router(r)) => r.shutdown(),
            None => Ok(()),
        };
    }
}
