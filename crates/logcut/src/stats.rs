//! Counters, a latency histogram and the [`Stats`] snapshot.

use std::{
    fmt,
    sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// The state of the circuit breaker around segment creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FallbackState {
    /// Rotation works normally.
    #[default]
    Closed,
    /// Creating the next segment failed; records keep going to the current
    /// segment, and the next attempt waits for the backoff to pass.
    Open,
    /// The backoff passed; the next attempt is under way or due.
    HalfOpen,
}

impl FallbackState {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            FallbackState::Closed => 0,
            FallbackState::Open => 1,
            FallbackState::HalfOpen => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> FallbackState {
        match v {
            1 => FallbackState::Open,
            2 => FallbackState::HalfOpen,
            _ => FallbackState::Closed,
        }
    }
}

/// A snapshot of an appender's counters, from [`Appender::stats`](crate::Appender::stats).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted from callers.
    pub records: u64,
    /// Bytes accepted from callers.
    pub bytes: u64,
    /// Records written to a segment file.
    pub records_written: u64,
    /// Segments sealed and recorded in the manifest.
    pub rotations: u64,
    /// Attempts to create or install the next segment that failed.
    pub rotation_failures: u64,
    /// Cuts that were due when no next segment was ready (still being
    /// created, or creating it failed): the segment went on receiving
    /// records, past its size limit, until one was (see the crate docs,
    /// Size limit). Each such cut counts once.
    pub cuts_deferred: u64,
    /// Writes to a segment that failed (each then retried).
    pub write_failures: u64,
    /// The circuit breaker around rotation.
    pub fallback: FallbackState,
    /// Records that could not be written anywhere (also in the manifest).
    pub records_lost: u64,
    /// Records refused because the appender was shut down (the caller got
    /// an error; they were never accepted).
    pub records_rejected: u64,
    /// Records accepted but not yet written (buffered, or held after a
    /// failed write).
    pub queue_depth: u64,
    /// Bytes accepted but not yet written.
    pub queue_bytes: u64,
    /// External rotation requests received (trigger file events, SIGUSR1).
    /// Several arriving together are merged into one cut.
    pub triggers: u64,
    /// Times the active file was found renamed or removed by someone else
    /// (logrotate, an operator), and the appender continued in a new file.
    pub reopens: u64,
    /// Time a write takes to hand its record over (to the file in
    /// [`Mode::Direct`](crate::Mode::Direct), to the buffer in
    /// [`Mode::Buffered`](crate::Mode::Buffered)), sampled: see
    /// [`LatencyHistogram`].
    pub write_latency: LatencyHistogram,
    /// Sealed segments waiting to be compressed or being compressed.
    pub compress_backlog: u64,
    /// Sealed segments compressed by this appender.
    pub segments_compressed: u64,
    /// Compressions that failed (the segment stays uncompressed; the next
    /// start tries again).
    pub compress_failures: u64,
    /// Time the compression workers spent, all together.
    pub compress_time: Duration,
    /// Sealed segments deleted by the retention limits.
    pub segments_deleted: u64,
    /// Of those, deleted by the free-space floor before they were shipped
    /// (their records are nowhere now).
    pub segments_deleted_unshipped: u64,
    /// Sealed segments shipped by this appender (feature `ship`).
    pub segments_shipped: u64,
    /// Their bytes (as uploaded: compressed, if compressed).
    pub bytes_shipped: u64,
    /// Uploads that failed (tried again after the backoff).
    pub ship_failures: u64,
    /// Sealed segments not shipped yet, and their bytes on disk.
    pub ship_backlog: u64,
    /// See [`ship_backlog`](Self::ship_backlog).
    pub ship_backlog_bytes: u64,
    /// When the oldest segment not shipped yet was sealed.
    pub oldest_unshipped: Option<jiff::Timestamp>,
}

const SUB: usize = 8;
const BUCKETS: usize = 64 * SUB;

/// Counts of write latencies in logarithmic buckets (8 per power of two, so
/// a quantile is exact to within 12.5 %), and their sum.
///
/// A write's latency is the time the caller waits for the record to be
/// accepted: in [`Mode::Direct`](crate::Mode::Direct), written to the file;
/// in [`Mode::Buffered`](crate::Mode::Buffered), copied into the buffer
/// (including any wait for room in it).
///
/// The appender samples one record in 32 on each thread (two clock reads
/// per sample, no system call), so measuring does not slow the write path;
/// the counts are samples, not all writes: after `n` records written from
/// one thread, [`count`](Self::count) is `n / 32`, rounded down. A
/// [`write_batch`](crate::Appender::write_batch) of `n` records that took
/// `t` counts as `n` records of `t / n` each (in Buffered mode; in Direct
/// mode each record is written, and timed, on its own).
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    sum_nanos: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS],
            sum_nanos: 0,
        }
    }
}

impl LatencyHistogram {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the sampled latencies (exact, not bucketed).
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// The latency below which a fraction `q` (0.0 to 1.0) of the samples
    /// fall (the upper edge of that bucket); zero without samples.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let target = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Duration::from_nanos(bucket_upper(i));
            }
        }
        Duration::from_nanos(bucket_upper(BUCKETS - 1))
    }

    /// The largest bucket with a sample (its upper edge).
    pub fn max(&self) -> Duration {
        self.counts
            .iter()
            .rposition(|c| *c > 0)
            .map_or(Duration::ZERO, |i| Duration::from_nanos(bucket_upper(i)))
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros() as usize; // >= 3
    let sub = ((ns >> (octave - 3)) & (SUB as u64 - 1)) as usize;
    ((octave - 2) * SUB + sub).min(BUCKETS - 1)
}

fn bucket_upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64 + 1;
    }
    let octave = i / SUB + 2;
    let sub = (i % SUB) as u64;
    if octave >= 63 {
        return u64::MAX;
    }
    (SUB as u64 + sub + 1) << (octave - 3)
}

/// The appender's live counters: atomics written by the background thread
/// and, for the sampled histogram, by writers. Every access is `Relaxed`
/// (each counter is read on its own, for reporting; no other memory is
/// published through them) but the histogram's buckets, whose samples
/// must not show up before the records they time (see `record_latencies`).
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) rotations: AtomicU64,
    pub(crate) rotation_failures: AtomicU64,
    pub(crate) cuts_deferred: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) records_lost: AtomicU64,
    pub(crate) bytes_lost: AtomicU64,
    pub(crate) records_rejected: AtomicU64,
    /// Records and bytes accepted into segments that are sealed or were
    /// dropped; live segments add their own.
    pub(crate) retired_accepted: AtomicU64,
    pub(crate) retired_accepted_bytes: AtomicU64,
    pub(crate) retired_written: AtomicU64,
    pub(crate) fallback: AtomicU8,
    pub(crate) triggers: AtomicU64,
    pub(crate) reopens: AtomicU64,
    pub(crate) compress_backlog: AtomicU64,
    pub(crate) segments_compressed: AtomicU64,
    pub(crate) compress_failures: AtomicU64,
    pub(crate) compress_nanos: AtomicU64,
    pub(crate) segments_deleted: AtomicU64,
    pub(crate) segments_deleted_unshipped: AtomicU64,
    pub(crate) segments_shipped: AtomicU64,
    pub(crate) bytes_shipped: AtomicU64,
    pub(crate) ship_failures: AtomicU64,
    pub(crate) ship_backlog: AtomicU64,
    pub(crate) ship_backlog_bytes: AtomicU64,
    /// Milliseconds since the epoch; `i64::MIN` for none.
    pub(crate) oldest_unshipped_ms: std::sync::atomic::AtomicI64,
    latency: Vec<AtomicU64>,
    latency_sum_nanos: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rotations: AtomicU64::new(0),
            rotation_failures: AtomicU64::new(0),
            cuts_deferred: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            records_lost: AtomicU64::new(0),
            bytes_lost: AtomicU64::new(0),
            records_rejected: AtomicU64::new(0),
            retired_accepted: AtomicU64::new(0),
            retired_accepted_bytes: AtomicU64::new(0),
            retired_written: AtomicU64::new(0),
            fallback: AtomicU8::new(0),
            triggers: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
            compress_backlog: AtomicU64::new(0),
            segments_compressed: AtomicU64::new(0),
            compress_failures: AtomicU64::new(0),
            compress_nanos: AtomicU64::new(0),
            segments_deleted: AtomicU64::new(0),
            segments_deleted_unshipped: AtomicU64::new(0),
            segments_shipped: AtomicU64::new(0),
            bytes_shipped: AtomicU64::new(0),
            ship_failures: AtomicU64::new(0),
            ship_backlog: AtomicU64::new(0),
            ship_backlog_bytes: AtomicU64::new(0),
            oldest_unshipped_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            latency_sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Counters {
    pub(crate) fn record_latency(&self, d: Duration) {
        self.record_latencies(d, 1);
    }

    /// Records `samples` samples of latency `d` each.
    pub(crate) fn record_latencies(&self, d: Duration, samples: u64) {
        if samples == 0 {
            return;
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Release: pairs with the Acquire in `latency`, so a reader that
        // sees these samples also sees the records counted before them.
        self.latency[bucket_of(ns)].fetch_add(samples, std::sync::atomic::Ordering::Release);
        self.latency_sum_nanos
            .fetch_add(ns.saturating_mul(samples), Relaxed);
        #[cfg(feature = "metrics")]
        metrics::histogram!("logcut_write_latency_seconds").record_many(
            d.as_secs_f64(),
            usize::try_from(samples).unwrap_or(usize::MAX),
        );
    }

    pub(crate) fn latency(&self) -> LatencyHistogram {
        LatencyHistogram {
            // Acquire: pairs with the Release in `record_latencies`.
            counts: self
                .latency
                .iter()
                .map(|c| c.load(std::sync::atomic::Ordering::Acquire))
                .collect(),
            sum_nanos: self.latency_sum_nanos.load(Relaxed),
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            12_345,
            1_000_000,
            123_456_789,
            u64::MAX / 2,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last, "{ns}");
            last = b;
            assert!(
                bucket_upper(b) > ns || bucket_upper(b) == u64::MAX,
                "{ns} -> {b} -> {}",
                bucket_upper(b)
            );
            if b > 0 {
                assert!(bucket_upper(b - 1) <= ns, "{ns}");
            }
        }
    }

    #[test]
    fn quantiles() {
        let c = Counters::default();
        for _ in 0..99 {
            c.record_latency(Duration::from_nanos(1_000));
        }
        c.record_latency(Duration::from_millis(5));
        let h = c.latency();
        assert_eq!(h.count(), 100);
        assert_eq!(h.sum(), Duration::from_nanos(99 * 1_000 + 5_000_000));
        let p50 = h.quantile(0.5).as_nanos();
        assert!((1_000..=1_125).contains(&p50), "{p50}");
        let max = h.max().as_nanos();
        assert!((5_000_000..=5_625_000).contains(&max), "{max}");
        c.record_latencies(Duration::from_nanos(10), 4);
        c.record_latencies(Duration::from_nanos(10), 0);
        let h = c.latency();
        assert_eq!(h.count(), 104);
        assert_eq!(h.sum(), Duration::from_nanos(99 * 1_000 + 5_000_000 + 40));
    }
}
