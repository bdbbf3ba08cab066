//! `verify`, `cat` and `status`: they read the on-disk format only.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Result;
use logcut_format::{last_error, name, segments, verify as check};

use crate::{json, progress::Progress};

/// `verify DIR`; `seal`: with `--json --key-file`, what the seal's check
/// found, to go into the document (and its `ok`).
pub(crate) fn verify(
    dir: &Path,
    json: bool,
    seal: Option<&(String, logcut_format::sealing::SealCheck)>,
) -> Result<ExitCode> {
    if is_root(dir) {
        return verify_root(dir, json);
    }
    // verify reads every sealed segment once: a bar over their total size.
    let progress = Progress::bytes(crate::progress::log_bytes(dir), "verify");
    let report = progress
        .track_reads(|| check(dir))
        .map_err(|e| cannot(&format!("cannot verify {}", dir.display()), dir, &e))?;
    // Nothing checked is not "ok".
    if report.logs.is_empty() {
        return Err(no_log(dir));
    }
    let mut out = io::stdout().lock();
    if json {
        let mut doc = json::Report::new(&report, |_| None);
        if let Some((log, c)) = seal {
            doc = doc.with_seal(log, c);
        }
        writeln!(out, "{}", json::line(&doc)?)?;
    } else {
        writeln!(out, "{report}")?;
    }
    let sealed_ok = seal.is_none_or(|(_, c)| c.is_ok());
    Ok(if report.is_ok() && sealed_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether `dir` is a router's root: no log of its own, logs below.
pub(crate) fn is_root(dir: &Path) -> bool {
    logcut_format::log_names(dir).is_ok_and(|n| n.is_empty()) && log_dirs(dir, None, None).is_ok()
}

/// `dir` relative to `root`, for a table.
fn rel(dir: &Path, root: &Path) -> String {
    dir.strip_prefix(root).unwrap_or(dir).display().to_string()
}

/// `verify ROOT`: every tenant's log, one line each (or one JSON object
/// with every report); exit 1 if any has a problem.
fn verify_root(root: &Path, json: bool) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let reports = root_reports(root)?;
    let failed = reports.iter().filter(|(_, r)| !r.is_ok()).count();
    if json {
        let doc = json::Root::new(root, &reports, |_, _| None);
        writeln!(out, "{}", json::line(&doc)?)?;
    } else {
        for (name, r) in &reports {
            let records: u64 = r.logs.iter().map(|l| l.records).sum();
            let lost: u64 = r.logs.iter().map(|l| l.lost).sum();
            let state = if r.is_ok() { "ok" } else { "FAIL" };
            writeln!(
                out,
                "{state:<4}  {name:<40}  {records:>10} records  {lost:>6} lost  {} problems",
                r.problems.len()
            )?;
        }
        writeln!(out, "{} logs, {failed} with problems", reports.len())?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `status ROOT`: one line per tenant's log.
fn status_root(root: &Path) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{:<40}  {:>8}  {:>12}  {:>10}  {:>10}  {:>6}  {:>12}  last error",
        "log", "segments", "bytes", "records", "deleted", "lost", "active bytes"
    )?;
    for dir in log_dirs(root, None, None)? {
        let r =
            check(&dir).map_err(|e| cannot(&format!("cannot read {}", dir.display()), &dir, &e))?;
        for l in &r.logs {
            // When; `status TENANT_DIR` says what.
            let last_error = match last_error::read(&dir, &l.name) {
                Ok(Some(e)) => e.at.to_string(),
                Ok(None) => "-".to_string(),
                Err(_) => "unreadable".to_string(),
            };
            writeln!(
                out,
                "{:<40}  {:>8}  {:>12}  {:>10}  {:>10}  {:>6}  {:>12}  {last_error}",
                rel(&dir, root),
                l.segments,
                l.bytes,
                l.records,
                l.deleted_records,
                l.lost,
                l.active_bytes.map_or("-".to_string(), |b| b.to_string())
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every tenant's log under a router's root, checked: its directory
/// relative to the root, and its report.
fn root_reports(root: &Path) -> Result<Vec<(String, logcut_format::Report)>> {
    log_dirs(root, None, None)?
        .into_iter()
        .map(|dir| {
            let report = check(&dir)
                .map_err(|e| cannot(&format!("cannot verify {}", dir.display()), &dir, &e))?;
            Ok((rel(&dir, root), report))
        })
        .collect()
}

/// `status --json`: `verify --json`'s document, with each log's writer;
/// exit 0 whatever it finds.
fn status_json(dir: &Path) -> Result<ExitCode> {
    let line = if is_root(dir) {
        let reports = root_reports(dir)?;
        json::line(&json::Root::new(dir, &reports, status_of))?
    } else {
        let report =
            check(dir).map_err(|e| cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
        json::line(&json::Report::new(&report, |log| status_of(dir, log)))?
    };
    writeln!(io::stdout().lock(), "{line}")?;
    Ok(ExitCode::SUCCESS)
}

/// What `status --json` adds to a log: its writer, and its last error
/// (null as well if the error file cannot be read; the text says why).
fn status_of(dir: &Path, log: &str) -> Option<json::Status> {
    Some(json::Status {
        writer: crate::rotate::holder(dir, log),
        last_error: last_error::read(dir, log).ok().flatten().map(Into::into),
    })
}

/// The `last error:` line of `status`.
fn last_error_line(dir: &Path, log: &str) -> String {
    match last_error::read(dir, log) {
        Ok(Some(e)) => format!("{} by pid {}: {}", e.at, e.pid, e.message),
        Ok(None) => "none recorded".to_string(),
        Err(e) => format!(
            "cannot read {}: {e}",
            dir.join(name::error_file(log)).display()
        ),
    }
}

pub(crate) fn status(dir: &Path, json: bool) -> Result<ExitCode> {
    if json {
        return status_json(dir);
    }
    if is_root(dir) {
        return status_root(dir);
    }
    let report =
        check(dir).map_err(|e| cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
    let mut out = io::stdout().lock();
    if report.logs.is_empty() {
        writeln!(out, "{}: no logcut log here", dir.display())?;
    }
    for log in &report.logs {
        writeln!(out, "log {}", log.name)?;
        writeln!(
            out,
            "  sealed segments: {} ({} bytes)",
            log.segments, log.bytes
        )?;
        writeln!(out, "  records:         {}", log.records)?;
        if log.segments_unknown_records > 0 {
            writeln!(
                out,
                "  segments adopted after a crash (record count unknown): {}",
                log.segments_unknown_records
            )?;
        }
        if log.segments_moved > 0 {
            writeln!(
                out,
                "  segments moved away by someone else (logrotate, mv): {}",
                log.segments_moved
            )?;
        }
        writeln!(out, "  records lost:    {}", log.lost)?;
        if log.compressed_segments > 0 {
            writeln!(
                out,
                "  compressed:      {} of {} segments ({} bytes on disk)",
                log.compressed_segments, log.segments, log.disk_bytes
            )?;
        }
        if log.shipped_segments > 0 {
            writeln!(
                out,
                "  shipped:         {} of {} segments on disk",
                log.shipped_segments, log.segments
            )?;
        }
        if log.deleted_segments > 0 {
            writeln!(
                out,
                "  deleted by retention: {} segments ({} records)",
                log.deleted_segments, log.deleted_records
            )?;
        }
        match log.active_bytes {
            Some(b) => writeln!(out, "  active segment:  {b} bytes")?,
            None => writeln!(out, "  active segment:  none (not running, or shut down)")?,
        }
        writeln!(
            out,
            "  runs:            {} ({} not closed: running or crashed)",
            log.sessions, log.open_sessions
        )?;
        writeln!(
            out,
            "  last error:      {}",
            last_error_line(dir, &log.name)
        )?;
        for seg in segments(dir, &log.name)? {
            if let Some(s) = &seg.seal {
                let stored = match seg.codec {
                    Some(c) => {
                        let on_disk = std::fs::symlink_metadata(&seg.path).map_or(0, |m| m.len());
                        format!("{c} {on_disk} bytes")
                    }
                    None => "uncompressed".to_string(),
                };
                writeln!(
                    out,
                    "    {:>6}  {:<45} {:>10} bytes  {:>9} records  {:<8}  {}",
                    s.seq,
                    s.file,
                    s.bytes,
                    s.records.map_or("?".to_string(), |r| r.to_string()),
                    s.reason.as_str(),
                    stored
                )?;
            }
        }
    }
    if !report.is_ok() {
        writeln!(
            out,
            "{} problems; run `logcut verify {}` for details",
            report.problems.len(),
            dir.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `what` failed because of `e`: one line, saying the path once (the
/// format crate's errors name their operation and path too).
pub(crate) fn cannot(what: &str, dir: &Path, e: &logcut_format::Error) -> anyhow::Error {
    match e.io_error() {
        Some(io) if e.path() == Some(dir) => anyhow::anyhow!("{what}: {io}"),
        _ => anyhow::anyhow!("{what}: {e}"),
    }
}

/// The log directories of `dir`: `dir` itself if it holds a log, else
/// the tenants' directories under it (`GROUP/TENANT`, and `quarantine`),
/// narrowed to `group` and `tenant`.
pub(crate) fn log_dirs(
    dir: &Path,
    group: Option<&str>,
    tenant: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let has_log = |d: &Path| logcut_format::log_names(d).is_ok_and(|n| !n.is_empty());
    if has_log(dir) {
        if group.is_some() || tenant.is_some() {
            return Err(crate::UsageError(format!(
                "{} is one log, not a root: --group and --tenant do not apply",
                dir.display()
            ))
            .into());
        }
        return Ok(vec![dir.to_path_buf()]);
    }
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let name_is = |p: &Path, want: Option<&str>| {
        want.is_none_or(|w| p.file_name().and_then(|n| n.to_str()) == Some(w))
    };
    let mut out = Vec::new();
    for g in subdirs(dir) {
        if !name_is(&g, group) {
            continue;
        }
        if has_log(&g) {
            // The quarantine log sits right under the root.
            if tenant.is_none() {
                out.push(g);
            }
            continue;
        }
        out.extend(
            subdirs(&g)
                .into_iter()
                .filter(|t| name_is(t, tenant) && has_log(t)),
        );
    }
    if out.is_empty() {
        return Err(no_log(dir));
    }
    Ok(out)
}

/// The error for a directory that holds no log.
pub(crate) fn no_log(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no log in {}: no manifest or segment of any log there (is the directory right?)",
        dir.display()
    )
}

/// The log to read in `dir`, found the way `verify` and `status` find logs
/// ([`logcut_format::log_names`]): the one named, which must be there; or,
/// with no name, the only log there. No log is a runtime error; several, a
/// usage error asking for `--name`.
pub(crate) fn pick_log(dir: &Path, name: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        logcut_format::name::validate_name(n)
            .map_err(|m| crate::UsageError(format!("invalid --name: {m}")))?;
    }
    let names = logcut_format::log_names(dir)
        .map_err(|e| cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
    match (name, names.as_slice()) {
        (Some(n), names) if names.iter().any(|l| l == n) => Ok(n.to_string()),
        (Some(n), []) => Err(anyhow::anyhow!(
            "no log {n} in {}: no log there at all (is the directory right?)",
            dir.display()
        )),
        (Some(n), names) => Err(anyhow::anyhow!(
            "no log {n} in {}; the logs there: {}",
            dir.display(),
            names.join(", ")
        )),
        (None, []) => Err(no_log(dir)),
        (None, [only]) => Ok(only.clone()),
        (None, names) => Err(crate::UsageError(format!(
            "{} holds {} logs ({}); say which with --name",
            dir.display(),
            names.len(),
            names.join(", ")
        ))
        .into()),
    }
}
