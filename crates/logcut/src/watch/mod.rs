//! External requests: a trigger file's touch and the signals (SIGUSR1,
//! SIGHUP), turned into rotate and reopen requests to the appender.

#[cfg(feature = "signals")]
pub(crate) mod signals;
#[cfg(feature = "trigger")]
pub(crate) mod trigger;
