//! Publishing [`Stats`] through the `metrics` facade (feature `metrics`).
//!
//! The background thread publishes after each round of work, so exporters
//! see values at most about a second old while the appender is idle. Every
//! metric carries the label `log` with the log's name.

use crate::{FallbackState, RouterStats, Stats, TopTenants};

/// The tenants published by name; the rest are summed as `_other`, so that
/// 10,000 tenants do not make 10,000 series.
pub(crate) const TOP_TENANTS: usize = 20;

/// Publishes a router's snapshot: per group, and the busiest tenants.
/// Every metric carries the label `router` (the root's last component).
pub(crate) fn publish_router(router: &str, s: &RouterStats, top: &TopTenants) {
    let label = [("router", router.to_string())];
    metrics::counter!("logcut_router_records_total", &label).absolute(s.records);
    metrics::counter!("logcut_router_rejected_total", &label).absolute(s.rejected);
    metrics::counter!("logcut_router_quarantined_total", &label).absolute(s.quarantined);
    metrics::counter!("logcut_router_evictions_total", &label).absolute(s.evictions);
    metrics::gauge!("logcut_router_open_logs", &label).set(s.open as f64);
    for g in &s.groups {
        let labels = [("router", router.to_string()), ("group", g.name.clone())];
        metrics::counter!("logcut_router_group_records_total", &labels).absolute(g.records);
        metrics::counter!("logcut_router_group_bytes_total", &labels).absolute(g.bytes);
        metrics::gauge!("logcut_router_group_open_logs", &labels).set(g.open as f64);
    }
    for t in &top.top {
        let labels = [
            ("router", router.to_string()),
            ("group", t.group.clone()),
            ("tenant", t.tenant.clone()),
        ];
        metrics::counter!("logcut_router_tenant_records_total", &labels).absolute(t.records);
    }
    let other = [
        ("router", router.to_string()),
        ("group", "_all".to_string()),
        ("tenant", "_other".to_string()),
    ];
    metrics::counter!("logcut_router_tenant_records_total", &other).absolute(top.other_records);
}

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
    metrics::counter!("logcut_segments_deleted_unshipped_total", &label)
        .absolute(s.segments_deleted_unshipped);
    metrics::counter!("logcut_segments_shipped_total", &label).absolute(s.segments_shipped);
    metrics::counter!("logcut_bytes_shipped_total", &label).absolute(s.bytes_shipped);
    metrics::counter!("logcut_ship_failures_total", &label).absolute(s.ship_failures);
    metrics::gauge!("logcut_ship_backlog_segments", &label).set(s.ship_backlog as f64);
    metrics::gauge!("logcut_ship_backlog_bytes", &label).set(s.ship_backlog_bytes as f64);
    let age = s.oldest_unshipped.map_or(0.0, |t| {
        jiff::Timestamp::now()
            .duration_since(t)
            .as_secs_f64()
            .max(0.0)
    });
    metrics::gauge!("logcut_oldest_unshipped_seconds", &label).set(age);
    let state = match s.fallback {
        FallbackState::Closed => 0.0,
        FallbackState::Open => 1.0,
        FallbackState::HalfOpen => 2.0,
    };
    metrics::gauge!("logcut_fallback_state", &label).set(state);
}
