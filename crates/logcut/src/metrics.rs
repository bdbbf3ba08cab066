//! Publishing [`Stats`] through the `metrics` facade (feature `metrics`).
//!
//! The background thread publishes after each round of work, so exporters
//! see values at most about a second old while the appender is idle. Every
//! metric carries the label `log` with the log's name.

use crate::{FallbackState, Stats};

/// Publishes one snapshot.
pub(crate) fn publish(log: &str, s: &Stats) {
    let label = [("log", log.to_string())];
    metrics::counter!("logcut_records_total", &label).absolute(s.records);
    metrics::counter!("logcut_bytes_total", &label).absolute(s.bytes);
    metrics::counter!("logcut_records_written_total", &label).absolute(s.records_written);
    metrics::counter!("logcut_rotations_total", &label).absolute(s.rotations);
    metrics::counter!("logcut_rotation_failures_total", &label).absolute(s.rotation_failures);
    metrics::counter!("logcut_cuts_deferred_total", &label).absolute(s.cuts_deferred);
    metrics::counter!("logcut_write_failures_total", &label).absolute(s.write_failures);
    metrics::counter!("logcut_records_lost_total", &label).absolute(s.records_lost);
    metrics::counter!("logcut_records_rejected_total", &label).absolute(s.records_rejected);
    metrics::gauge!("logcut_queue_depth", &label).set(s.queue_depth as f64);
    metrics::gauge!("logcut_queue_bytes", &label).set(s.queue_bytes as f64);
    metrics::gauge!("logcut_compress_backlog_segments", &label).set(s.compress_backlog as f64);
    metrics::counter!("logcut_segments_compressed_total", &label).absolute(s.segments_compressed);
    metrics::counter!("logcut_compress_failures_total", &label).absolute(s.compress_failures);
    metrics::gauge!("logcut_compress_seconds_total", &label).set(s.compress_time.as_secs_f64());
    metrics::counter!("logcut_segments_deleted_total", &label).absolute(s.segments_deleted);
    let state = match s.fallback {
        FallbackState::Closed => 0.0,
        FallbackState::Open => 1.0,
        FallbackState::HalfOpen => 2.0,
    };
    metrics::gauge!("logcut_fallback_state", &label).set(state);
}
