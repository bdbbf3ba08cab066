//! Integrations with the logging facades, behind cargo features.

#[cfg(feature = "json")]
pub(crate) mod json;
#[cfg(feature = "log")]
pub(crate) mod log;
#[cfg(feature = "tracing")]
pub(crate) mod tracing;
