//! What the background stages of one log need to know, and nothing of the
//! write path: configuration, the directory and names, the session,
//! counters, error reporting, the runtime, and the few flags
//! the sealed side shares (retention pins, compression cancel).
//!
//! The sealed-segment stages (keeper, compression, retention) take only a
//! [`Context`]; they never see the current segment, the ready pool, the
//! buffer or the mailbox.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use crate::{Error, Runtime, builder::Config, segment::Segment, stats::Counters, sys::Dir};

/// One log's narrow context (see the module docs).
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) cfg: Config,
    pub(crate) dir: Dir,
    pub(crate) active_name: String,
    pub(crate) session: String,
    pub(crate) counters: Counters,
    /// The runtime whose threads run this log's background tasks. Commands
    /// from those threads (an error handler calling `rotate` or
    /// `shutdown`) would wait on a task that may need the very thread.
    pub(crate) rt: Runtime,
    /// Sealed segments another policy still needs: retention keeps them.
    pub(crate) pins: crate::sealed::retain::Pins,
    /// Set when shutdown's deadline passes: compressions under way stop.
    pub(crate) compress_cancel: AtomicBool,
    /// The keeper's mailbox for trims, once it runs (a router's budget).
    pub(crate) keeper: std::sync::OnceLock<crate::runtime::Mail<crate::sealed::task::Trim>>,
    /// The error file `<name>.error`, sized at start; `None` if it could
    /// not be made (that failure was reported).
    errors: Option<std::fs::File>,
}

impl Context {
    /// `errors`: the error file as [`open_error_file`] left it.
    pub(crate) fn new(
        cfg: Config,
        rt: Runtime,
        dir: Dir,
        active_name: String,
        session: String,
        errors: (Option<std::fs::File>, Option<Error>),
    ) -> Context {
        let (errors, failed) = errors;
        let ctx = Context {
            rt,
            cfg,
            dir,
            active_name,
            session,
            counters: Counters::default(),
            pins: crate::sealed::retain::Pins::default(),
            compress_cancel: AtomicBool::new(false),
            keeper: std::sync::OnceLock::new(),
            errors,
        };
        if let Some(e) = failed {
            ctx.report(e);
        }
        ctx
    }

    /// Hands a background error to the handler, if there is one, after
    /// recording it in the error file (repairs are not errors).
    pub(crate) fn report(&self, err: Error) {
        if let (Some(file), false) = (&self.errors, err.is_repair()) {
            let last = logcut_format::last_error::LastError {
                at: self.cfg.clock.now(),
                pid: std::process::id(),
                message: err.to_string(),
            };
            // Best effort: the handler still hears of the error, and a
            // failure to record it is not worth a second report (it would
            // fail the same way).
            let _ = crate::sys::overwrite(file, &last.encode());
        }
        if let Some(h) = &self.cfg.handler {
            h.handle(err);
        }
    }
}

/// Opens (creating it if missing) the log's error file, and sizes it so
/// that later errors overwrite allocated blocks, even on a full disk. A
/// file an earlier run left keeps its error: it is only ever grown, never
/// cut, so that of two appenders starting on a shared log (under its cut
/// lock, one after the other) the second never blanks what the first has
/// recorded. Returns the file (kept even if it could not be sized: a
/// later error may find room) and what went wrong, for the handler.
pub(crate) fn open_error_file(
    dir: &Dir,
    log: &str,
    mode: u32,
) -> (Option<std::fs::File>, Option<Error>) {
    use logcut_format::last_error;
    let name = logcut_format::name::error_file(log);
    let err = |e| Error::io("open error file", dir.join(&name), e);
    let file = match dir.open_lock(&name, mode) {
        Ok(f) => f,
        Err(e) => return (None, Some(err(e))),
    };
    let sized = file
        .metadata()
        .and_then(|m| {
            if m.len() < last_error::SIZE as u64 {
                crate::sys::overwrite(&file, &last_error::blank())
            } else {
                Ok(())
            }
        })
        .err()
        .map(err);
    (Some(file), sized)
}

/// What a watch (trigger file, signals) may ask of its appender, and all it
/// sees of it: requests go to the mailbox, errors to the handler.
#[cfg_attr(not(any(feature = "trigger", feature = "signals")), allow(dead_code))]
pub(crate) trait Requests: Send + Sync {
    /// The log's context (for names and error reporting).
    fn context(&self) -> &Context;
    /// An external rotation request (trigger file, SIGUSR1); merged with
    /// one already queued at the same place among the records.
    fn request_rotate(&self);
    /// An external reopen request (SIGHUP); merged with one already queued.
    #[cfg_attr(not(feature = "signals"), allow(dead_code))]
    fn request_reopen(&self);
    /// Shared mode: whether this appender acts on a touch of the trigger
    /// file (it holds the trigger lock, taking it if it is free). Always
    /// true for an exclusive appender.
    #[cfg_attr(not(feature = "trigger"), allow(dead_code))]
    fn acts_on_triggers(&self) -> bool;
}

/// A trigger-file watch or signal thread, stopped at shutdown.
pub(crate) trait Watch: Send {
    /// Stops it and waits for its thread.
    fn stop(&mut self);
}

/// What the sealer needs of its appender beyond the context: the list of
/// segments being sealed (which `stats` reads) and shutdown's deadline.
pub(crate) trait SealerLink: Send + Sync {
    /// Takes sealed (or handed-over) segments off the live list and adds
    /// their counts, `(segment, accepted, accepted bytes, records)`, to the
    /// appender's totals, in one step as `stats` sees it. `rotations`: they
    /// were sealed by this process, not left to another sharing the log.
    fn retire(&self, segs: &[(Arc<Segment>, u64, u64, u64)], rotations: bool);
    /// Shared mode: shutdown's deadline, once shutdown has set it.
    fn close_by(&self) -> Option<Instant>;
}

/// What a Direct writer may ask of the cut's coordination when its cut
/// finds no prepared segment: a refill of the pool, which then makes the
/// cut. Exclusive mode only; the write path sees nothing more of it.
pub(crate) trait Refill: Send + Sync {
    /// Starts a refill unless one is under way or creation is backing off.
    fn refill(&self);
}
