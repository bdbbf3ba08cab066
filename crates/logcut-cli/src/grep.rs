//! `logcut grep`: every line with the given field values (JSON lines, such
//! as `JsonLayer` or a JSON-logging service writes), across the active,
//! sealed and compressed segments of one log or of every tenant's log
//! under a router's root, in time order.
//!
//! Each line is first searched for the wanted values' bytes (fast); only a
//! line holding all of them is parsed and its fields compared. There is no
//! index yet: every segment in the time range is read.

use std::{
    io::{self, BufRead, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use jiff::Timestamp;
use logcut_format::segments;

use crate::{
    UsageError,
    range::{self, TimeRange},
};

/// Options of `logcut grep`.
#[derive(Debug, clap::Args)]
pub(crate) struct GrepArgs {
    /// A log directory, or the root of a router (`write --route-field`),
    /// whose tenants' logs are all searched.
    dir: PathBuf,
    /// FIELD=VALUE: only lines whose FIELD (a dotted path for a nested
    /// one) has this value; several mean all of them.
    #[arg(long = "field", value_name = "FIELD=VALUE", required = true, value_parser = field)]
    fields: Vec<(String, String)>,
    /// Under a root: only this tenant's logs, in every group.
    #[arg(long)]
    tenant: Option<String>,
    /// Under a root: only this group's logs.
    #[arg(long)]
    group: Option<String>,
    /// Only segments that overlap the time from TIME on (as `cat --since`).
    #[arg(long, value_name = "TIME", value_parser = range::parse_time)]
    since: Option<Timestamp>,
    /// Only segments that overlap the time up to TIME (as `cat --until`).
    #[arg(long, value_name = "TIME", value_parser = range::parse_time)]
    until: Option<Timestamp>,
}

fn field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: give FIELD=VALUE")),
    }
}

/// A line found, with the time it sorts by.
struct Hit {
    at: Option<Timestamp>,
    /// Where it was found: log order, then line order, for ties.
    order: (usize, usize),
    line: Vec<u8>,
}

pub(crate) fn run(args: GrepArgs) -> Result<ExitCode> {
    let range = TimeRange {
        since: args.since,
        until: args.until,
    };
    range.validate().map_err(UsageError)?;
    let dirs = crate::read::log_dirs(&args.dir, args.group.as_deref(), args.tenant.as_deref())?;
    let names: Vec<String> = args.fields.iter().map(|(k, _)| k.clone()).collect();
    let mut hits = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        search_dir(dir, &range, &args.fields, &names, i, &mut hits)?;
    }
    // Time order (by the `timestamp` field) across logs; within one log,
    // as written. Lines without a timestamp come first.
    hits.sort_by_key(|h| (h.at, h.order));
    let mut out = io::stdout().lock();
    for h in &hits {
        if let Err(e) = out.write_all(&h.line) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("cannot write the output");
        }
    }
    out.flush().ok();
    Ok(if hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Searches every log in `dir`, adding what matches to `hits`.
fn search_dir(
    dir: &Path,
    range: &TimeRange,
    fields: &[(String, String)],
    names: &[String],
    index: usize,
    hits: &mut Vec<Hit>,
) -> Result<()> {
    let logs = logcut_format::log_names(dir)
        .map_err(|e| crate::read::cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
    for name in logs {
        let segs = segments(dir, &name).map_err(|e| {
            crate::read::cannot(&format!("cannot list the segments of {name}"), dir, &e)
        })?;
        let selected = range.select(&segs, &name);
        let mut n = 0;
        for seg in segs
            .iter()
            .zip(selected)
            .filter_map(|(s, y)| y.then_some(s))
        {
            let f = seg
                .open()
                .with_context(|| format!("cannot open {}", seg.path.display()))?;
            let mut r = io::BufReader::with_capacity(256 << 10, f);
            let mut line = Vec::new();
            loop {
                line.clear();
                let got = r
                    .read_until(b'\n', &mut line)
                    .with_context(|| format!("cannot read {}", seg.path.display()))?;
                if got == 0 {
                    break;
                }
                n += 1;
                if let Some(at) = matches(&line, fields, names) {
                    hits.push(Hit {
                        at,
                        order: (index, n),
                        line: line.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether `line` has every wanted field value; if so, its `timestamp`.
fn matches(
    line: &[u8],
    fields: &[(String, String)],
    names: &[String],
) -> Option<Option<Timestamp>> {
    // Cheap first: each value's bytes must be in the line somewhere.
    if !fields
        .iter()
        .all(|(_, v)| memchr::memmem::find(line, v.as_bytes()).is_some())
    {
        return None;
    }
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let found = crate::route::lookup_all(&v, names);
    let all = fields
        .iter()
        .all(|(k, want)| found.iter().any(|(n, got)| n == k && got == want));
    if !all {
        return None;
    }
    let at = v
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn a_line_matches_only_with_every_field_equal() {
        let f = |k: &str, v: &str| (k.to_string(), v.to_string());
        let fields = [f("trace_id", "abc"), f("ctx.user", "7")];
        let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
        let line = br#"{"timestamp":"2026-12-02T10:00:00Z","trace_id":"abc","ctx":{"user":7}}"#;
        let at = matches(line, &fields, &names).expect("a match");
        assert_eq!(at.unwrap().to_string(), "2026-12-02T10:00:00Z");
        // The bytes are there but not as the field's value.
        let other = br#"{"trace_id":"abcd","note":"abc","ctx":{"user":7}}"#;
        assert!(matches(other, &fields, &names).is_none());
        assert!(matches(b"abc 7 not json", &fields, &names).is_none());
        let no_time = br#"{"trace_id":"abc","ctx":{"user":7}}"#;
        assert_eq!(matches(no_time, &fields, &names), Some(None));
    }
}
