//! File names: the grammar of a log's active, next, sealed and manifest
//! files.
//!
//! For a log called `app`:
//!
//! | file | name |
//! |---|---|
//! | active segment | `app.log` |
//! | prepared next segment | `app.log.next.42` (42: its sequence number) |
//! | sealed segment | `app.2026-11-24T10-00-00.000Z.000042.log` |
//! | sealed segment, name taken | `app.2026-11-24T10-00-00.000Z.000042-1.log` |
//! | manifest | `app.manifest` |
//! | lock, cut and error files | `app.lock`, `app.cut`, `app.error` |
//!
//! The timestamp of a sealed segment is the instant the segment became
//! active, in UTC with millisecond precision. The number after it is the
//! segment's sequence number, unique within the log, so two segments never
//! share a name even when they start in the same millisecond. Names of one
//! log sort in time order (the sequence breaks ties).

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

/// The longest log name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// Checks that `name` can name a log: 1 to 100 bytes of ASCII letters,
/// digits, `_`, `-` and `.`, not starting with `.` and not containing `..`.
///
/// Returns a message saying what is wrong otherwise. Such names never contain
/// a path separator, so a name can never escape its directory.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the log name is empty; use a short word such as \"app\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("the log name is longer than {MAX_NAME_LEN} bytes"));
    }
    // A path separator first: "../x" is a path, not a hidden name.
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "the log name {name:?} contains {c:?}; use only ASCII letters, digits, '_', '-' and '.' \
             (no path separators)"
        ));
    }
    if name.starts_with('.') {
        return Err(format!(
            "the log name {name:?} starts with '.'; hidden names are not allowed"
        ));
    }
    if name.contains("..") {
        return Err(format!("the log name {name:?} contains \"..\""));
    }
    Ok(())
}

/// The active segment's file name: `<name>.log`.
pub fn active_file(name: &str) -> String {
    format!("{name}.log")
}

/// A prepared next segment's file name: `<name>.log.next.<seq>`.
pub fn prepared_file(name: &str, seq: u64) -> String {
    format!("{name}.log.next.{seq}")
}

/// The sequence number of a prepared next segment's file name of log
/// `name`; `None` if `file` is not one.
pub fn parse_prepared(name: &str, file: &str) -> Option<u64> {
    let seq = file.strip_prefix(name)?.strip_prefix(".log.next.")?;
    parse_digits(seq)
}

/// The file name a `seal` entry records for a segment that someone else
/// moved out of the directory (renamed or removed) while it was active.
pub const MOVED: &str = "-";

/// The lock file's name: `<name>.lock`. A running appender holds an
/// exclusive `flock` on it; see [`lock`](crate::lock).
pub fn lock_file(name: &str) -> String {
    format!("{name}.lock")
}

/// The cut file's name: `<name>.cut`. Appenders that share a log hold an
/// exclusive `flock` on it while they start, cut or follow a cut, and it
/// says which file is the active segment; see [`lock::CutState`](crate::lock::CutState).
pub fn cut_file(name: &str) -> String {
    format!("{name}.cut")
}

/// The trigger lock's name: `<name>.trigger-lock`. Of the appenders that
/// share a log and watch a trigger file, the one holding an exclusive
/// `flock` on it acts on the trigger file's events, so that one touch cuts
/// once.
pub fn trigger_lock_file(name: &str) -> String {
    format!("{name}.trigger-lock")
}

/// The error file's name: `<name>.error`. It holds the last error a
/// writer of the log reported; see [`last_error`](crate::last_error).
pub fn error_file(name: &str) -> String {
    format!("{name}.error")
}

/// The manifest's file name: `<name>.manifest`.
pub fn manifest_file(name: &str) -> String {
    format!("{name}.manifest")
}

/// The parts of a sealed segment's file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SealedName {
    /// When the segment became active, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// The segment's sequence number.
    pub seq: u64,
    /// 0, or a disambiguator when the plain name was already taken.
    pub dup: u32,
}

impl SealedName {
    /// The file name for log `name`.
    pub fn file_name(&self, name: &str) -> String {
        let ts = format_ts(self.start_ms);
        if self.dup == 0 {
            format!("{name}.{ts}.{:06}.log", self.seq)
        } else {
            format!("{name}.{ts}.{:06}-{}.log", self.seq, self.dup)
        }
    }

    /// Parses a sealed segment's file name of log `name`; `None` if `file`
    /// is not one.
    pub fn parse(name: &str, file: &str) -> Option<SealedName> {
        let rest = file.strip_prefix(name)?.strip_prefix('.')?;
        let rest = rest.strip_suffix(".log")?;
        // <ts>.<seq>[-<dup>], where <ts> is exactly 24 bytes.
        if rest.len() < 26 || !rest.is_char_boundary(24) {
            return None;
        }
        let (ts, tail) = rest.split_at(24);
        let start_ms = parse_ts(ts)?;
        let tail = tail.strip_prefix('.')?;
        let (seq, dup) = match tail.split_once('-') {
            Some((s, d)) => (s, parse_digits(d)?),
            None => (tail, 0),
        };
        if seq.len() < 6 {
            return None;
        }
        let seq = parse_digits(seq)?;
        let dup = u32::try_from(dup).ok()?;
        Some(SealedName { start_ms, seq, dup })
    }
}

/// Splits any sealed segment's file name into its log name and parts, for
/// when the log name is not known in advance.
pub fn split_sealed(file: &str) -> Option<(&str, SealedName)> {
    let stem = file.strip_suffix(".log")?;
    let (left, _) = stem.rsplit_once('.')?;
    // `left` is `<name>.<ts>` with a 24-byte timestamp.
    let name_len = left.len().checked_sub(25)?;
    if !left.is_char_boundary(name_len) || left.as_bytes()[name_len] != b'.' {
        return None;
    }
    let name = &left[..name_len];
    validate_name(name).ok()?;
    SealedName::parse(name, file).map(|n| (name, n))
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Formats milliseconds since the epoch as `2026-11-24T10-00-00.000Z`.
pub fn format_ts(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let dt = TimeZone::UTC.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000_000
    )
}

/// Parses the output of [`format_ts`].
pub fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b'-'
        || b[16] != b'-'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let dt = DateTime::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(5..7)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(14..16)?).ok()?,
        i8::try_from(num(17..19)?).ok()?,
        i32::try_from(num(20..23)? * 1_000_000).ok()?,
    )
    .ok()?;
    let ts = TimeZone::UTC.to_timestamp(dt).ok()?;
    Some(ts.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_name_round_trips() {
        let n = SealedName {
            start_ms: 1_795_514_400_123,
            seq: 42,
            dup: 0,
        };
        let f = n.file_name("app");
        assert_eq!(f, "app.2026-11-24T10-00-00.123Z.000042.log");
        assert_eq!(SealedName::parse("app", &f), Some(n));
        let d = SealedName { dup: 3, ..n };
        assert_eq!(
            d.file_name("app"),
            "app.2026-11-24T10-00-00.123Z.000042-3.log"
        );
        assert_eq!(SealedName::parse("app", &d.file_name("app")), Some(d));
        let big = SealedName {
            seq: 12_345_678,
            ..n
        };
        assert_eq!(SealedName::parse("app", &big.file_name("app")), Some(big));
    }

    #[test]
    fn other_files_are_not_sealed_names() {
        for f in [
            "app.log",
            "app.log.next",
            "app.manifest",
            "app.2026-11-24T10-00-00.123Z.42.log",
            "app.2026-11-24T10-00-00.123Z.000042.log.zst.tmp",
            "app.2026-13-24T10-00-00.123Z.000042.log",
            "other.2026-11-24T10-00-00.123Z.000042.log",
            "app.x.2026-11-24T10-00-00.123Z.000042.log",
        ] {
            assert_eq!(SealedName::parse("app", f), None, "{f}");
        }
    }

    #[test]
    fn split_finds_the_log_name() {
        let n = SealedName {
            start_ms: 5,
            seq: 7,
            dup: 0,
        };
        assert_eq!(split_sealed(&n.file_name("my.app")), Some(("my.app", n)));
        assert_eq!(split_sealed("app.log"), None);
        assert_eq!(split_sealed("app.manifest"), None);
    }

    #[test]
    fn prepared_names() {
        assert_eq!(prepared_file("app", 7), "app.log.next.7");
        assert_eq!(parse_prepared("app", "app.log.next.7"), Some(7));
        assert_eq!(parse_prepared("app", "app.log.next."), None);
        assert_eq!(parse_prepared("app", "app.log.next.x"), None);
        assert_eq!(parse_prepared("ap", "app.log.next.7"), None);
    }

    #[test]
    fn names_sort_in_time_order() {
        let a = SealedName {
            start_ms: 1_000,
            seq: 9,
            dup: 0,
        }
        .file_name("app");
        let b = SealedName {
            start_ms: 1_000,
            seq: 10,
            dup: 0,
        }
        .file_name("app");
        let c = SealedName {
            start_ms: 2_000,
            seq: 11,
            dup: 0,
        }
        .file_name("app");
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn name_validation() {
        assert!(validate_name("app").is_ok());
        assert!(validate_name("my-app_2.web").is_ok());
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a\\b",
            "..",
            "a..b",
            "a b",
            "é",
            &"x".repeat(101),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
