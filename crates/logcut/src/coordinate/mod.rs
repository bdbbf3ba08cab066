//! The cut's coordination, on the runtime: the background task of one log
//! (`worker`: Buffered batches, periodic work, held records, shutdown) and
//! the one thing that differs between a log this appender owns alone and
//! one several processes share, the [`Coordinator`]: how a next segment is
//! prepared, how a cut is made and followed, and how the last segment is
//! finished. `exclusive` implements it with a pool of prepared segments;
//! `shared` with the protocol in `share`, by which several processes cut
//! one log under a lock. Both give a segment its sealed name the same way
//! (`promote`); every retry backs off the same way (`breaker`).

mod batch;
pub(crate) mod breaker;
mod exclusive;
mod finish;
mod held;
mod promote;
pub(crate) mod share;
mod shared;
pub(crate) mod worker;

use std::sync::{Arc, MutexGuard, mpsc};

use jiff::Timestamp;
use logcut_format::manifest::SealReason;

use crate::{
    Error,
    append::state::Shared,
    seal::journal::Journal,
    sealed::keeper,
    segment::{SegState, Segment},
};
use worker::{Handoff, Worker};

/// How one log cuts: exclusive (`ExclusiveLog`) or shared by several
/// processes (`SharedLog`). The worker calls these at the points where the
/// two differ; everything else (batches, held records, seals, shutdown's
/// rounds) is the same code for both.
///
/// The methods take the whole worker rather than `self`: a cut uses the
/// worker's breaker, counters and promotion as well as the mode's own
/// state, which is `w.mode`.
pub(crate) trait Coordinator: Sized + Send + 'static {
    /// At start, before the first write can need a cut.
    fn start(w: &mut Worker<Self>);

    /// Makes sure a next segment is ready for a cut needed now (`rotate`,
    /// `reopen`, a cut finding the pool empty). Returns the failure.
    fn prepare_next(w: &mut Worker<Self>) -> Option<Error>;

    /// Keeps next segments ready without holding up this task (after a
    /// swap, in every round while the pool is short).
    fn prepare_ahead(w: &mut Worker<Self>);

    /// `tick`: whatever preparation is due, on this task.
    fn prepare_due(w: &mut Worker<Self>);

    /// Takes the outcome of preparation done elsewhere (a failure opens
    /// the breaker).
    fn collect(w: &mut Worker<Self>);

    /// Whether the task should wake to prepare segments.
    fn wants_segments(w: &Worker<Self>) -> bool;

    /// Whether preparation is under way elsewhere: a cut waiting for it
    /// is woken when it is done.
    fn preparing(w: &Worker<Self>) -> bool;

    /// The breaker of segment creation opened or closed: preparation
    /// started elsewhere keeps to it.
    fn backoff_changed(w: &Worker<Self>, until: Option<Timestamp>);

    /// Gives every swapped-out segment its sealed name, in swap order.
    fn promote_pending(w: &mut Worker<Self>) -> Result<(), Error>;

    /// Before a batch is written to `seg`: false if the task must look
    /// at the current segment again (it followed a cut). `followed` says
    /// whether this batch followed once already.
    fn before_batch(w: &mut Worker<Self>, seg: &Arc<Segment>, followed: &mut bool) -> bool;

    /// A batch reached a cut of `seg`, the current segment, whose lock is
    /// `st`.
    fn cut_in_batch<'a>(
        w: &mut Worker<Self>,
        seg: &'a Arc<Segment>,
        st: MutexGuard<'a, SegState>,
        reason: SealReason,
        now: Timestamp,
    );

    /// A cut that is due (it waited for a next segment, or a time boundary
    /// passed with no write since).
    fn cut_due<'a>(
        w: &mut Worker<Self>,
        seg: &'a Arc<Segment>,
        st: MutexGuard<'a, SegState>,
        reason: SealReason,
        now: Timestamp,
    );

    /// `rotate()`, a trigger or a signal: cuts now.
    fn rotate(w: &mut Worker<Self>) -> Result<(), Error>;

    /// `reopen()`, SIGHUP, the periodic check: makes sure the active path
    /// holds the log's active segment.
    fn reopen(w: &mut Worker<Self>) -> Result<(), Error>;

    /// Whether the periodic check runs now, given whether its interval
    /// passed.
    fn check_due(w: &Worker<Self>, interval_passed: bool, now: Timestamp) -> bool;

    /// Whether a cut is made and not yet promoted (a `reopen` waits for it).
    fn cut_under_way(w: &Worker<Self>) -> bool;

    /// Shutdown begins: no cut starts elsewhere from now on.
    fn stop_cuts(w: &mut Worker<Self>);

    /// Held records fill the current segment `seg` and its cut was
    /// deferred (no next segment ready): makes the cut now if this mode
    /// can, and returns whether `seg` is no longer current. A shared log
    /// can (it creates the next segment under the cut lock); without this,
    /// held records went out one segment per round of the task.
    fn cut_held_now(_: &mut Worker<Self>, _: &Arc<Segment>) -> bool {
        false
    }

    /// Shutdown, before the last segment is closed.
    fn before_last(w: &mut Worker<Self>);

    /// Shutdown: gives the last segment `cur` its sealed name (or removes
    /// it if empty). `records` are in its file; `accepted` were accepted.
    fn finish_last(
        w: &mut Worker<Self>,
        cur: &Arc<Segment>,
        records: u64,
        accepted: u64,
    ) -> Result<(), Error>;
}

/// Starts the background task of the log `sh`, in its mode. Returns where
/// the task hands its worker over at shutdown.
pub(crate) fn start(
    sh: &Arc<Shared>,
    journal: Journal,
    next_seq: u64,
    next_first: u64,
    sealed: Vec<keeper::Sealed>,
) -> Result<mpsc::Receiver<Handoff>, Error> {
    if sh.cfg.shared {
        let mode = shared::SharedLog;
        Worker::new(Arc::clone(sh), journal, next_seq, next_first, sealed, mode)?.spawn()
    } else {
        let mode = exclusive::ExclusiveLog::new(sh, next_seq);
        Worker::new(Arc::clone(sh), journal, next_seq, next_first, sealed, mode)?.spawn()
    }
}
