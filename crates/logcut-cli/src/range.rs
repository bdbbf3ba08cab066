//! `--since` and `--until`: which segments of a log fall in a time range.
//!
//! Records are opaque bytes with no timestamp logcut could trust, so the
//! range selects whole segments, by the span each segment was the active
//! one: from when it became active to when the next one took over. A
//! segment is selected if and only if its span overlaps the range (both
//! ends included). A span's start and end come from what is known:
//!
//! - start: the manifest's `start` of a sealed segment, or the start in its
//!   name; for the active segment (and prepared next segments holding
//!   records), the end of the segment before it, or the beginning of time
//!   if there is none;
//! - end: the start of the next segment, or the manifest's `end` (when it
//!   was sealed) if that is earlier, as for the last segment of a run; open
//!   (still being written, or not known yet) if neither is known.

use jiff::Timestamp;
use logcut_format::{SegmentFile, name::SealedName};

/// A time range; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub(crate) since: Option<Timestamp>,
    pub(crate) until: Option<Timestamp>,
}

/// The help text of the TIME value, shared by `--since` and `--until`.
pub(crate) const TIME_HELP: &str = "an RFC 3339 time such as 2026-11-25T10:00:00Z, or a duration such as 90s, 15m, 1h or 2d meaning that long ago";

/// Parses a TIME argument: an RFC 3339 timestamp, or a duration meaning
/// that long before now.
pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    parse_time_at(s, Timestamp::now())
}

fn parse_time_at(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = s.trim();
    // A duration starts with a digit and has no date separators; an RFC
    // 3339 time always has a '-' in its date.
    if !t.contains('-') {
        if let Ok(d) = logcut::parse_duration(t) {
            return jiff::SignedDuration::try_from(d)
                .ok()
                .and_then(|d| now.checked_sub(d).ok())
                .ok_or_else(|| format!("{s:?} is too long ago"));
        }
    }
    t.parse::<Timestamp>().map_err(|_| {
        format!(
            "{s:?} is not a time; write {TIME_HELP} (a time needs its offset, such as Z or +01:00)"
        )
    })
}

impl TimeRange {
    /// Checks that the range is not empty.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match (self.since, self.until) {
            (Some(s), Some(u)) if s > u => Err(format!(
                "--since ({s}) is later than --until ({u}); swap them"
            )),
            _ => Ok(()),
        }
    }

    /// Returns true if and only if the span `[start, end]` (`None`: open)
    /// overlaps this range.
    pub(crate) fn overlaps(&self, start: Option<Timestamp>, end: Option<Timestamp>) -> bool {
        let starts_in_time = match (start, self.until) {
            (Some(s), Some(u)) => s <= u,
            _ => true,
        };
        let ends_in_time = match (end, self.since) {
            (Some(e), Some(s)) => e >= s,
            _ => true,
        };
        starts_in_time && ends_in_time
    }

    /// Which of `segs` (in log order, as `logcut_format::segments`
    /// lists them) this range selects, by the rule in the module docs.
    pub(crate) fn select(&self, segs: &[SegmentFile], log: &str) -> Vec<bool> {
        spans(segs, log)
            .into_iter()
            .map(|(start, end)| self.overlaps(start, end))
            .collect()
    }
}

/// The span of each of `segs`, by the rule in the module docs.
pub(crate) fn spans(
    segs: &[SegmentFile],
    log: &str,
) -> Vec<(Option<Timestamp>, Option<Timestamp>)> {
    let starts: Vec<Option<Timestamp>> = segs.iter().map(|s| known_start(s, log)).collect();
    let mut out = Vec::with_capacity(segs.len());
    let mut prev_end = None;
    for (i, seg) in segs.iter().enumerate() {
        let start = if seg.active { prev_end } else { starts[i] };
        let next_start = starts.get(i + 1).copied().flatten();
        let sealed_at = seg.seal.as_ref().map(|s| s.end);
        let end = match (next_start, sealed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        prev_end = end.or(prev_end);
        out.push((start, end));
    }
    out
}

/// When a sealed segment became active: from the manifest, or its name.
/// `None` for the active and prepared segments (their names carry no time).
fn known_start(seg: &SegmentFile, log: &str) -> Option<Timestamp> {
    if let Some(s) = &seg.seal {
        return Some(s.start);
    }
    if seg.active {
        return None;
    }
    let file = seg.path.file_name()?.to_str()?;
    let n = SealedName::parse(log, file)?;
    Timestamp::from_millisecond(n.start_ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let now = ts("2026-11-25T12:00:00Z");
        assert_eq!(
            parse_time_at("2026-11-25T10:00:00Z", now),
            Ok(ts("2026-11-25T10:00:00Z"))
        );
        assert_eq!(
            parse_time_at("2026-11-25T11:00:00+01:00", now),
            Ok(ts("2026-11-25T10:00:00Z"))
        );
        assert_eq!(parse_time_at("1h", now), Ok(ts("2026-11-25T11:00:00Z")));
        assert_eq!(parse_time_at("1h30m", now), Ok(ts("2026-11-25T10:30:00Z")));
        assert_eq!(parse_time_at("2d", now), Ok(ts("2026-11-23T12:00:00Z")));
        for bad in ["yesterday", "2026-11-25", "2026-11-25T10:00:00", "1x", ""] {
            let e = parse_time_at(bad, now).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn overlap_includes_both_ends_and_open_spans() {
        let r = TimeRange {
            since: Some(ts("2026-11-25T10:00:00Z")),
            until: Some(ts("2026-11-25T11:00:00Z")),
        };
        let t = |s| Some(ts(s));
        assert!(r.overlaps(t("2026-11-25T09:00:00Z"), t("2026-11-25T10:00:00Z")));
        assert!(r.overlaps(t("2026-11-25T11:00:00Z"), t("2026-11-25T12:00:00Z")));
        assert!(r.overlaps(t("2026-11-25T10:10:00Z"), t("2026-11-25T10:20:00Z")));
        assert!(!r.overlaps(t("2026-11-25T08:00:00Z"), t("2026-11-25T09:59:59Z")));
        assert!(!r.overlaps(t("2026-11-25T11:00:01Z"), None));
        assert!(r.overlaps(None, None));
        assert!(r.overlaps(t("2026-11-25T09:00:00Z"), None));
        assert!(
            TimeRange {
                since: r.until,
                until: r.since
            }
            .validate()
            .is_err()
        );
    }
}
