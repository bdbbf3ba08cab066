//! The cut's coordination: the background task that writes Buffered
//! batches, prepares next segments, renames swapped-out ones to their
//! sealed names and hands them to the sealer (`worker`), and the protocol
//! by which several processes share one log (`share`).

pub(crate) mod breaker;
pub(crate) mod share;
pub(crate) mod worker;
