//! logcut: a rotating log appender.

#![deny(missing_docs)]

mod append;
mod builder;
mod clock;
mod error;
mod handler;
mod integrations;
mod journal;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod recovery;
mod sealer;
mod segment;
mod stats;
mod sys;
mod worker;

#[cfg(feature = "log")]
pub use crate::integrations::log::LogBackend;
#[cfg(feature = "tracing")]
pub use crate::integrations::tracing::EventWriter;
pub use crate::{
    append::Appender,
    builder::{AppenderBuilder, Fsync, Mode},
    clock::{Clock, ManualClock, SystemClock},
    error::{Error, Result},
    handler::ErrorHandler,
    policy::{Interval, parse_duration, parse_size},
    stats::{FallbackState, LatencyHistogram, Stats},
};
pub use logcut_format::{Problem, ProblemKind, Report, manifest::SealReason};

/// Checks a log directory: see [`logcut_format::verify`].
pub fn verify(dir: impl AsRef<std::path::Path>) -> Result<Report> {
    Ok(logcut_format::verify(dir.as_ref())?)
}
