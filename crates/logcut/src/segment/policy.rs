//! When to cut: human units for sizes and durations, and wall-clock aligned
//! time intervals.

use std::{fmt, str::FromStr, time::Duration};

use jiff::{
    Timestamp, ToSpan,
    civil::{Date, DateTime},
    tz::TimeZone,
};

use crate::Error;

/// Parses a size in human units: `"64MiB"`, `"1G"`, `"4096"`, `"10KB"`.
///
/// `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB` are powers of 1024 (as in
/// logrotate and `du`); `KB`, `MB`, `GB`, `TB` are powers of 1000. A bare
/// number, or one with `B`, is bytes. Case and a space before the unit do
/// not matter.
///
/// ```
/// assert_eq!(logcut::parse_size("64MiB")?, 64 << 20);
/// assert_eq!(logcut::parse_size("1G")?, 1 << 30);
/// assert_eq!(logcut::parse_size("10 kb")?, 10_000);
/// assert!(logcut::parse_size("ten").is_err());
/// # Ok::<(), logcut::Error>(())
/// ```
pub fn parse_size(s: &str) -> Result<u64, Error> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::config(
            "size",
            format!(
                "{s:?} is not a size; write a whole number with an optional unit, such as 64MiB, 1G or 4096"
            ),
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::config("size", format!("{s:?} is too large")))
}

/// Parses a duration in human units: `"500ms"`, `"30s"`, `"15m"`, `"1h"`,
/// `"1d"`, or several joined (`"1h30m"`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(logcut::parse_duration("1h30m")?, Duration::from_secs(5400));
/// assert_eq!(logcut::parse_duration("250ms")?, Duration::from_millis(250));
/// # Ok::<(), logcut::Error>(())
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::config(
            "duration",
            format!(
                "{s:?} is not a duration; write a number and a unit (ms, s, m, h, d), such as 15m or 1h30m"
            ),
        )
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" | "sec" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(d).ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

/// The unit of an [`Interval`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

/// A time interval for rotation, aligned to wall-clock boundaries in the
/// appender's time zone.
///
/// - Intervals in days cut at local midnight: every N days counted from
///   1970-01-01. A day with a DST change is 23 or 25 hours long, and a
///   midnight that does not exist is replaced by the first instant after
///   the gap.
/// - Intervals in hours, minutes or seconds cut whenever the local clock
///   reads a multiple of the interval since local midnight (every 15 minutes:
///   at :00, :15, :30 and :45). When clocks go back, the repeated hour is
///   cut on each pass; when they jump forward, the boundary inside the gap
///   becomes the instant of the jump. An interval that does not divide the
///   day restarts at midnight (every 7 hours: 00:00, 07:00, 14:00, 21:00).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    count: u32,
    unit: Unit,
}

impl Interval {
    /// Every `n` seconds.
    pub const fn seconds(n: u32) -> Interval {
        Interval {
            count: n,
            unit: Unit::Second,
        }
    }

    /// Every `n` minutes.
    pub const fn minutes(n: u32) -> Interval {
        Interval {
            count: n,
            unit: Unit::Minute,
        }
    }

    /// Every `n` hours.
    pub const fn hours(n: u32) -> Interval {
        Interval {
            count: n,
            unit: Unit::Hour,
        }
    }

    /// Every `n` days, at local midnight.
    pub const fn days(n: u32) -> Interval {
        Interval {
            count: n,
            unit: Unit::Day,
        }
    }

    /// Hourly.
    pub const HOURLY: Interval = Interval::hours(1);
    /// Daily, at local midnight.
    pub const DAILY: Interval = Interval::days(1);

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.count == 0 {
            return Err(Error::config(
                "interval",
                "the interval is zero; use at least 1 (or no interval)",
            ));
        }
        let secs = self.unit_secs() * u64::from(self.count);
        if self.unit != Unit::Day && secs > 86_400 {
            return Err(Error::config(
                "interval",
                format!("{self} is longer than a day; write it in days (such as 1d or 2d)"),
            ));
        }
        if self.unit == Unit::Day && self.count > 3660 {
            return Err(Error::config(
                "interval",
                "the interval is longer than ten years",
            ));
        }
        Ok(())
    }

    fn unit_secs(&self) -> u64 {
        match self.unit {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }

    /// The first boundary strictly after `t`, in zone `tz`.
    pub fn next_boundary(&self, t: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = tz.to_datetime(t);
        let n = i64::from(self.count.max(1));
        let mut candidates: Vec<DateTime> = Vec::with_capacity(6);
        let day = local.date();
        match self.unit {
            Unit::Day => {
                let idx = day
                    .since(Date::constant(1970, 1, 1))
                    .map(|s| i64::from(s.get_days()))
                    .unwrap_or(0);
                let floor = day.checked_sub(idx.rem_euclid(n).days()).unwrap_or(day);
                for k in 0..3 {
                    if let Ok(d) = floor.checked_add((k * n).days()) {
                        candidates.push(d.to_datetime(jiff::civil::Time::midnight()));
                    }
                }
            }
            _ => {
                let step = n * self.unit_secs() as i64;
                let secs = i64::from(local.hour()) * 3600
                    + i64::from(local.minute()) * 60
                    + i64::from(local.second());
                let k = secs / step;
                let midnight = day.to_datetime(jiff::civil::Time::midnight());
                for j in 0..3 {
                    let off = (k + j) * step;
                    if off < 86_400 {
                        if let Ok(dt) = midnight.checked_add(off.seconds()) {
                            candidates.push(dt);
                        }
                    }
                }
                if let Ok(next_day) = day.tomorrow() {
                    let m = next_day.to_datetime(jiff::civil::Time::midnight());
                    candidates.push(m);
                    if step < 86_400 {
                        if let Ok(dt) = m.checked_add(step.seconds()) {
                            candidates.push(dt);
                        }
                    }
                }
            }
        }
        let mut best: Option<Timestamp> = None;
        for dt in candidates {
            let amb = tz.to_ambiguous_timestamp(dt);
            for inst in [amb.earlier(), amb.later()].into_iter().flatten() {
                if inst > t && best.is_none_or(|b| inst < b) {
                    best = Some(inst);
                }
            }
        }
        // Unreachable for valid zones; a far fallback keeps the appender
        // working rather than cutting in a loop.
        best.unwrap_or_else(|| {
            t.checked_add(jiff::SignedDuration::from_hours(24))
                .unwrap_or(Timestamp::MAX)
        })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = match self.unit {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
        };
        write!(f, "{}{u}", self.count)
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Interval {
    type Err = Error;

    /// Parses `"30s"`, `"15m"`, `"1h"`, `"1d"` (one number, one unit).
    fn from_str(s: &str) -> Result<Interval, Error> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            Error::config(
                "interval",
                format!(
                    "{s:?} is not an interval; write a number and one unit, such as 15m, 1h or 1d"
                ),
            )
        };
        let n: u32 = num.parse().map_err(|_| bad())?;
        let iv = match unit.trim() {
            "s" => Interval::seconds(n),
            "m" | "min" => Interval::minutes(n),
            "h" => Interval::hours(n),
            "d" => Interval::days(n),
            _ => return Err(bad()),
        };
        iv.validate()?;
        Ok(iv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size("64k").unwrap(), 65_536);
        assert_eq!(parse_size("2 MB").unwrap(), 2_000_000);
        assert_eq!(parse_size("3TiB").unwrap(), 3 << 40);
        for bad in ["", "MiB", "1.5M", "-1", "1 X", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration("1h30m10s").unwrap(),
            Duration::from_secs(5410)
        );
        for bad in ["", "5", "h", "1y", "1h x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals_parse_and_validate() {
        assert_eq!("15m".parse::<Interval>().unwrap(), Interval::minutes(15));
        assert!("0h".parse::<Interval>().is_err());
        assert!("25h".parse::<Interval>().is_err());
        assert!("1w".parse::<Interval>().is_err());
    }

    #[test]
    fn utc_boundaries() {
        let utc = TimeZone::UTC;
        let iv = Interval::minutes(15);
        assert_eq!(
            iv.next_boundary(ts("2026-11-24T10:07:00Z"), &utc),
            ts("2026-11-24T10:15:00Z")
        );
        assert_eq!(
            iv.next_boundary(ts("2026-11-24T10:15:00Z"), &utc),
            ts("2026-11-24T10:30:00Z")
        );
        assert_eq!(
            iv.next_boundary(ts("2026-11-24T23:59:59Z"), &utc),
            ts("2026-11-25T00:00:00Z")
        );
        let seven = Interval::hours(7);
        assert_eq!(
            seven.next_boundary(ts("2026-11-24T22:00:00Z"), &utc),
            ts("2026-11-25T00:00:00Z")
        );
        assert_eq!(
            Interval::DAILY.next_boundary(ts("2026-11-24T10:00:00Z"), &utc),
            ts("2026-11-25T00:00:00Z")
        );
        let two = Interval::days(2);
        let b = two.next_boundary(ts("2026-11-24T10:00:00Z"), &utc);
        assert_eq!(
            two.next_boundary(b, &utc),
            b.checked_add(jiff::SignedDuration::from_hours(48)).unwrap()
        );
    }

    #[test]
    fn daily_across_fall_back_is_25_hours() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2026-11-01 02:00 EDT -> 01:00 EST.
        let b1 = Interval::DAILY.next_boundary(ts("2026-10-31T12:00:00Z"), &tz);
        assert_eq!(b1, ts("2026-11-01T04:00:00Z")); // midnight EDT
        let b2 = Interval::DAILY.next_boundary(b1, &tz);
        assert_eq!(b2, ts("2026-11-02T05:00:00Z")); // midnight EST
        assert_eq!(b2.duration_since(b1).as_hours(), 25);
    }

    #[test]
    fn hourly_across_fall_back_cuts_the_repeated_hour_twice() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let h = Interval::HOURLY;
        let mut t = ts("2026-11-01T04:30:00Z"); // 00:30 EDT
        let mut got = Vec::new();
        for _ in 0..4 {
            t = h.next_boundary(t, &tz);
            got.push(t);
        }
        // 01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST: hourly in real time.
        let want = [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z",
        ];
        assert_eq!(got, want.map(ts));
    }

    #[test]
    fn hourly_across_spring_forward_skips_the_missing_hour() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2026-03-08 02:00 EST -> 03:00 EDT.
        let h = Interval::HOURLY;
        let b1 = h.next_boundary(ts("2026-03-08T06:30:00Z"), &tz); // 01:30 EST
        assert_eq!(b1, ts("2026-03-08T07:00:00Z")); // 03:00 EDT, the jump
        assert_eq!(h.next_boundary(b1, &tz), ts("2026-03-08T08:00:00Z")); // 04:00 EDT
        let d = Interval::DAILY.next_boundary(ts("2026-03-07T12:00:00Z"), &tz);
        assert_eq!(
            Interval::DAILY
                .next_boundary(d, &tz)
                .duration_since(d)
                .as_hours(),
            23
        );
    }

    #[test]
    fn half_hour_zone_aligns_to_local_hours() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap(); // +05:30
        let b = Interval::HOURLY.next_boundary(ts("2026-11-24T10:10:00Z"), &tz);
        assert_eq!(b, ts("2026-11-24T10:30:00Z")); // 16:00 local
    }

    proptest::proptest! {
        #[test]
        fn any_size_or_duration_text_parses_or_fails_without_panic(s in proptest::prelude::any::<String>()) {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn sizes_and_durations_round_trip(n in 0u64..1 << 40, secs in 0u64..1 << 30, ms in 0u64..1000) {
            proptest::prop_assert_eq!(parse_size(&n.to_string()).ok(), Some(n));
            proptest::prop_assert_eq!(parse_size(&format!("{n}KiB")).ok(), n.checked_mul(1024));
            proptest::prop_assert_eq!(parse_size(&format!("{n} MB")).ok(), n.checked_mul(1_000_000));
            let d = Duration::from_secs(secs) + Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format!("{secs}s{ms}ms")).ok(), Some(d));
            proptest::prop_assert_eq!(parse_duration(&format!("{}m{}s", secs / 60, secs % 60)).ok(), Some(Duration::from_secs(secs)));
        }
    }
}
