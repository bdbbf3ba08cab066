//! Where the appender reads the time: the system clock, or a manual clock
//! that tests move by hand.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::Timestamp;

/// A source of wall-clock time for rotation, backoff and timestamps.
///
/// The appender reads it when a time policy is set, for backoff after
/// failures and for segment names. [`SystemClock`] is the default;
/// [`ManualClock`] lets tests move time without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// How long the background worker may sleep to reach `until`, or `None`
    /// if this clock does not advance by itself (then the worker waits until
    /// it is woken, see [`Clock::subscribe`]).
    fn sleep_hint(&self, until: Timestamp) -> Option<Duration> {
        let d = until.duration_since(self.now());
        Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
    }

    /// Registers `wake`, to be called whenever the time changes by other
    /// means than its own passing. The system clock never calls it.
    fn subscribe(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to: for tests of time rotation and
/// backoff, without sleeping. Test support, not part of the stable API
/// (hidden from the docs, as `Appender::tick` is).
///
/// ```
/// use logcut::{Clock, ManualClock};
/// let clock = ManualClock::new("2026-11-24T10:00:00Z".parse()?);
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(clock.now().to_string(), "2026-11-24T10:01:00Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[doc(hidden)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

struct ManualInner {
    now: Timestamp,
    subscribers: Vec<Arc<dyn Fn() + Send + Sync>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: Timestamp) -> ManualClock {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualInner {
                now,
                subscribers: Vec::new(),
            })),
        }
    }

    /// Sets the time, and wakes every appender using this clock.
    pub fn set(&self, now: Timestamp) {
        let subs = {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.now = now;
            g.subscribers.clone()
        };
        for s in subs {
            s();
        }
    }

    /// Moves the time forward by `d`, and wakes every appender using this
    /// clock.
    pub fn advance(&self, d: Duration) {
        let now = self.now();
        let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
        self.set(now.checked_add(span).unwrap_or(Timestamp::MAX));
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).now
    }

    fn sleep_hint(&self, _until: Timestamp) -> Option<Duration> {
        None
    }

    fn subscribe(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .subscribers
            .push(wake);
    }
}
