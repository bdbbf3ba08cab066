//! The integration tests of logcut: one binary, a module per topic.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

// Behaviour of a single appender: records, files, names, configuration.
mod basics;
// Compression and retention of sealed segments, and their crash recovery.
mod compress;
// A disk that fills and frees (a small tmpfs, as root).
mod diskfull;
// Failures injected: unusable next segment, EFBIG, verify's detections.
mod faults;
// The search index of sealed segments.
mod index;
// Integrations with tracing and log.
mod integrations;
// Routing records to per-tenant logs under group policies.
mod route;
// One runtime for many logs: bounded threads, records kept apart.
mod runtime;
// Randomized scenarios from a printed seed.
mod scenarios;
// A sealed manifest: the MAC chain, and forgeries that fail it.
mod sealing;
// Several appenders and processes sharing one log.
mod shared;
// Shipping sealed segments through an uploader.
mod ship;
// Shutdown and drop: everything accepted is written.
mod shutdown;
// Time rotation with a manual clock.
mod time;
// Many threads, many rotations, every record exactly once.
mod torture;
// Trigger files, signals, reopen after an external rename, the lock.
#[cfg(all(feature = "trigger", feature = "signals"))]
mod triggers;

pub mod kit;
// Buffered mode killed by SIGKILL at random points.
mod crash;
// Documented guarantees: held memory, size overshoot, foreign files,
// recovery of compressed files, close-on-exec, silence, real-time watch,
// compression off the write path.
mod guarantees;
