//! `--since` and `--until`: which segments of a log fall in a time range.
//!
//! Records are opaque bytes with no timestamp logcut could trust, so the
//! range selects whole segments, by the span each segment was the active
//! one: from when it became active to when it was sealed. A segment is
//! selected if and only if its span overlaps the range (both ends
//! included). Where a span's end is not known, it is taken as open:
//!
//! - a sealed segment recorded in the manifest: the manifest's `start` and
//!   `end`;
//! - a sealed segment the manifest does not list yet: from the start in its
//!   name, open-ended;
//! - the active segment (and prepared next segments holding records): from
//!   the previous segment's end (or the beginning of time if there is
//!   none), open-ended, since it is still being written.

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

    /// Which of `segs` (in log order, as `logcut_format::segments` lists
    /// them) this range selects, by the rule in the module docs.
    pub(crate) fn select(&self, segs: &[SegmentFile], log: &str) -> Vec<bool> {
        let mut prev_end: Option<Timestamp> = None;
        segs.iter()
            .map(|seg| {
                let (start, end) = span(seg, log, prev_end);
                if end.is_some() {
                    prev_end = end;
                }
                self.overlaps(start, end)
            })
            .collect()
    }
}

/// The span of one segment; `prev_end` is the previous segment's end.
fn span(
    seg: &SegmentFile,
    log: &str,
    prev_end: Option<Timestamp>,
) -> (Option<Timestamp>, Option<Timestamp>) {
    if let Some(s) = &seg.seal {
        return (Some(s.start), Some(s.end));
    }
    if seg.active {
        return (prev_end, None);
    }
    let start = seg
        .path
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| SealedName::parse(log, f))
        .and_then(|n| Timestamp::from_millisecond(n.start_ms).ok());
    (start, None)
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
