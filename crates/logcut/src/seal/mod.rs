//! Sealing: a swapped-out segment made durable (`fdatasync`, the
//! directory synced) and recorded in the manifest with its count, length
//! and checksum; the manifest itself, and its MAC chain when it is sealed; and recovery at start, which seals
//! what a crash left unsealed.

pub(crate) mod chain;
pub(crate) mod journal;
pub(crate) mod recovery;
pub(crate) mod sealer;
