//! Integrations with the logging facades, behind cargo features.

#[cfg(feature = "log")]
pub(crate) mod log;
#[cfg(feature = "tracing")]
pub(crate) mod tracing;
