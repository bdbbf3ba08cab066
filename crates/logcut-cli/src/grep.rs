//! `logcut grep`: every line with the given field values (JSON lines, such
//! as `JsonLayer` or a JSON-logging service writes), across the active,
//! sealed and compressed segments of one log or of every tenant's log
//! under a router's root, in time order.
//!
//! A sealed segment with a search index (`write --index`, the library's
//! `index_fields`) that says it holds none of a wanted value is not read;
//! the others are read on a few threads at once. In each, a line is first
//! searched for the wanted values' bytes (fast); only a line holding all of
//! them (or with escapes, which may spell them) is parsed and its fields
//! compared. A missing or damaged index only makes the search read more.

use std::{
    io::{self, BufRead, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result};
use jiff::Timestamp;
use logcut_format::{SegmentFile, segments};

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
    /// Afterwards, print to standard error how many segments were read and
    /// how many their index let the search skip.
    #[arg(long)]
    stats: bool,
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
    /// Where it was found: log, segment, then line, for ties.
    order: (usize, usize, usize),
    line: Vec<u8>,
}

/// A segment to search: which log (in `dirs` order), which segment of it.
struct Job {
    log: usize,
    seg: usize,
    file: SegmentFile,
}

/// What the search did, for `--stats`.
#[derive(Default)]
struct Tally {
    segments: usize,
    skipped: usize,
    lines: u64,
}

pub(crate) fn run(args: GrepArgs) -> Result<ExitCode> {
    let range = TimeRange {
        since: args.since,
        until: args.until,
    };
    range.validate().map_err(UsageError)?;
    let dirs = crate::read::log_dirs(&args.dir, args.group.as_deref(), args.tenant.as_deref())?;
    let mut jobs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        list_dir(dir, &range, i, &mut jobs)?;
    }
    let mut tally = Tally {
        segments: jobs.len(),
        ..Tally::default()
    };
    // The index first: a segment that surely holds none of the values is
    // not read.
    jobs.retain(|j| {
        let keep = j.file.index().is_none_or(|ix| {
            args.fields.iter().all(|(k, v)| {
                let leaf = k.rsplit('.').next().unwrap_or(k);
                ix.may_contain(leaf, v) != Some(false)
            })
        });
        tally.skipped += usize::from(!keep);
        keep
    });
    let (mut hits, lines) = search(&jobs, &args.fields)?;
    tally.lines = lines;
    // Time order (by the `timestamp` field) across logs; within one log,
    // as written. Lines without a timestamp come first.
    hits.sort_by_key(|h| (h.at, h.order));
    if args.stats {
        eprintln!(
            "logcut grep: {} matching lines; read {} of {} segments ({} skipped by their index), {} lines",
            hits.len(),
            tally.segments - tally.skipped,
            tally.segments,
            tally.skipped,
            tally.lines
        );
    }
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

/// Adds the segments of every log in `dir` within `range` to `jobs`.
fn list_dir(dir: &Path, range: &TimeRange, log: usize, jobs: &mut Vec<Job>) -> Result<()> {
    let logs = logcut_format::log_names(dir)
        .map_err(|e| crate::read::cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
    for name in logs {
        let segs = segments(dir, &name).map_err(|e| {
            crate::read::cannot(&format!("cannot list the segments of {name}"), dir, &e)
        })?;
        let selected = range.select(&segs, &name);
        for file in segs
            .into_iter()
            .zip(selected)
            .filter_map(|(s, y)| y.then_some(s))
        {
            let seg = jobs.len();
            jobs.push(Job { log, seg, file });
        }
    }
    Ok(())
}

/// Reads the segments of `jobs` on a few threads (one per core, at most
/// 8): every matching line, and how many lines were read.
fn search(jobs: &[Job], fields: &[(String, String)]) -> Result<(Vec<Hit>, u64)> {
    let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Result<(Vec<Hit>, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut hits, mut lines) = (Vec::new(), 0);
                    loop {
                        // Relaxed: only hands out distinct indexes.
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return Ok((hits, lines));
                        };
                        lines += search_segment(job, fields, &names, &mut hits)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a search thread failed")))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut lines = 0;
    for r in results {
        let (hits, n) = r?;
        all.extend(hits);
        lines += n;
    }
    Ok((all, lines))
}

/// Adds the matching lines of one segment to `hits`; returns the lines read.
fn search_segment(
    job: &Job,
    fields: &[(String, String)],
    names: &[String],
    hits: &mut Vec<Hit>,
) -> Result<u64> {
    let path = &job.file.path;
    let f = job
        .file
        .open()
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = io::BufReader::with_capacity(256 << 10, f);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if got == 0 {
            return Ok(n as u64);
        }
        n += 1;
        if let Some(at) = matches(&line, fields, names) {
            hits.push(Hit {
                at,
                order: (job.log, job.seg, n),
                line: line.clone(),
            });
        }
    }
}

/// Whether `line` has every wanted field value; if so, its `timestamp`.
fn matches(
    line: &[u8],
    fields: &[(String, String)],
    names: &[String],
) -> Option<Option<Timestamp>> {
    // Cheap first: each value's bytes must be in the line somewhere,
    // unless the line has escapes (`\u0041`, `\"`), which may spell them
    // otherwise.
    let literal = |v: &String| memchr::memmem::find(line, v.as_bytes()).is_some();
    if !fields.iter().all(|(_, v)| literal(v)) && memchr::memchr(b'\\', line).is_none() {
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
