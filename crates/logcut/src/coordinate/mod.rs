//! The cut's coordination, on the runtime: the background task of one log
//! (`worker`: Buffered batches, periodic work, held records, shutdown), its
//! exclusive-mode cut (`exclusive`: the pool of prepared next segments and
//! the promotion to sealed names) and its shared-mode cut (`shared`, over
//! the protocol in `share` by which several processes share one log), and
//! the backoff behind every retry (`breaker`).

pub(crate) mod breaker;
mod exclusive;
pub(crate) mod share;
mod shared;
pub(crate) mod worker;
