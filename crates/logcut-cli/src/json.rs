//! The JSON that `verify --json` and `status --json` print, serialised by
//! serde_json from these structs: their fields are the schema (version
//! [`SCHEMA`], described in the README). Fields are only ever added; a
//! change to one that exists raises the version.

use serde::Serialize;

/// The schema's version, in every document as `"schema"`.
pub(crate) const SCHEMA: u32 = 1;

/// One log directory's report.
#[derive(Serialize)]
pub(crate) struct Report<'a> {
    schema: u32,
    dir: String,
    /// No problem found.
    ok: bool,
    logs: Vec<Log<'a>>,
    problems: Vec<Problem<'a>>,
    /// `verify --key-file --json`: the sealed history's check.
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<Seal<'a>>,
}

/// What `verify --key-file` found of one log's sealed history.
#[derive(Serialize)]
struct Seal<'a> {
    log: &'a str,
    /// The chain holds: sealing began with this key, no entry fails.
    ok: bool,
    /// Entries from before sealing began (not covered).
    before: u64,
    /// Entries proven, up to the last sealed epoch's end.
    sealed: u64,
    /// The last sealed epoch: `at` (RFC 3339) and `epoch`; null if none.
    sealed_until: Option<SealedUntil>,
    /// Entries after it, whose key is still on the machine.
    unsealed: u64,
    /// Entries after the first failure, not checked.
    unchecked: u64,
    notes: &'a [String],
    problems: Vec<SealProblem<'a>>,
}

#[derive(Serialize)]
struct SealedUntil {
    at: String,
    epoch: u64,
}

#[derive(Serialize)]
struct SealProblem<'a> {
    /// The manifest's line (1-based); null for the file as a whole.
    line: Option<usize>,
    detail: &'a str,
}

#[derive(Serialize)]
struct Log<'a> {
    name: &'a str,
    /// Sealed segments in the manifest, not deleted by retention.
    segments: u64,
    records: u64,
    bytes: u64,
    /// Records lost (counted by the writers, a `lost` entry each).
    lost: u64,
    compressed_segments: u64,
    /// Sealed segments not compressed (the backlog, if the writer
    /// compresses).
    uncompressed_segments: u64,
    shipped_segments: u64,
    /// What the sealed segments take on disk, compressed or not.
    disk_bytes: u64,
    deleted_segments: u64,
    deleted_records: u64,
    segments_unknown_records: u64,
    segments_moved: u64,
    sessions: u64,
    /// Sessions without their `close`: running, or crashed.
    open_sessions: u64,
    /// The active segment's size; null if there is none.
    active_bytes: Option<u64>,
    /// What `status --json` adds: the writer and the last error.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

/// What `status --json` adds to a log's entry.
#[derive(Serialize)]
pub(crate) struct Status {
    /// Who holds the log; absent without a lock file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) writer: Option<Writer>,
    /// The last error a writer reported (its error file); null if none.
    pub(crate) last_error: Option<LastError>,
}

/// A writer's last error.
#[derive(Serialize)]
pub(crate) struct LastError {
    /// When, as RFC 3339 in UTC.
    pub(crate) at: String,
    pub(crate) pid: u32,
    pub(crate) message: String,
}

impl From<logcut_format::last_error::LastError> for LastError {
    fn from(e: logcut_format::last_error::LastError) -> LastError {
        LastError {
            at: e.at.to_string(),
            pid: e.pid,
            message: e.message,
        }
    }
}

/// The writer named in the log's lock file.
#[derive(Serialize)]
pub(crate) struct Writer {
    /// The pid the lock file records (its first holder's); null if none
    /// does.
    pub(crate) pid: Option<u32>,
    /// Every process holding the log's lock now, by the kernel's list of
    /// locks; empty if none does; null if the list cannot say (not
    /// readable, or it names no holder of a lock that is held).
    pub(crate) pids: Option<Vec<u32>>,
    /// Whether a process holds the log's lock now.
    pub(crate) alive: bool,
    /// Whether it shares the log with other processes.
    pub(crate) shared: bool,
}

#[derive(Serialize)]
struct Problem<'a> {
    log: &'a str,
    kind: String,
    file: Option<&'a str>,
    detail: &'a str,
}

/// A router's root: every tenant's report.
#[derive(Serialize)]
pub(crate) struct Root<'a> {
    schema: u32,
    root: String,
    ok: bool,
    logs: Vec<Tenant<'a>>,
}

#[derive(Serialize)]
struct Tenant<'a> {
    /// The tenant's directory, relative to the root.
    log: &'a str,
    report: Report<'a>,
}

impl<'a> Report<'a> {
    /// `r`, with what `status` finds of each log (`None`: `verify`).
    pub(crate) fn new(
        r: &'a logcut_format::Report,
        status: impl Fn(&str) -> Option<Status>,
    ) -> Report<'a> {
        Report {
            schema: SCHEMA,
            dir: r.dir.display().to_string(),
            ok: r.is_ok(),
            logs: r
                .logs
                .iter()
                .map(|l| Log {
                    name: &l.name,
                    segments: l.segments,
                    records: l.records,
                    bytes: l.bytes,
                    lost: l.lost,
                    compressed_segments: l.compressed_segments,
                    uncompressed_segments: l.segments.saturating_sub(l.compressed_segments),
                    shipped_segments: l.shipped_segments,
                    disk_bytes: l.disk_bytes,
                    deleted_segments: l.deleted_segments,
                    deleted_records: l.deleted_records,
                    segments_unknown_records: l.segments_unknown_records,
                    segments_moved: l.segments_moved,
                    sessions: l.sessions,
                    open_sessions: l.open_sessions,
                    active_bytes: l.active_bytes,
                    status: status(&l.name),
                })
                .collect(),
            problems: r
                .problems
                .iter()
                .map(|p| Problem {
                    log: &p.log,
                    kind: format!("{:?}", p.kind),
                    file: p.file.as_deref(),
                    detail: &p.detail,
                })
                .collect(),
            seal: None,
        }
    }

    /// With what `verify --key-file` found of log `log`: `ok` then also
    /// says whether the sealed history holds.
    pub(crate) fn with_seal(
        mut self,
        log: &'a str,
        c: &'a logcut_format::sealing::SealCheck,
    ) -> Report<'a> {
        self.ok &= c.is_ok();
        self.seal = Some(Seal {
            log,
            ok: c.is_ok(),
            before: c.before,
            sealed: c.sealed,
            sealed_until: c.sealed_until.map(|(at, epoch)| SealedUntil {
                at: at.to_string(),
                epoch,
            }),
            unsealed: c.unsealed,
            unchecked: c.unchecked,
            notes: &c.notes,
            problems: c
                .problems
                .iter()
                .map(|(line, detail)| SealProblem {
                    line: (*line > 0).then_some(*line),
                    detail,
                })
                .collect(),
        });
        self
    }
}

impl<'a> Root<'a> {
    pub(crate) fn new(
        root: &std::path::Path,
        reports: &'a [(String, logcut_format::Report)],
        status: impl Fn(&std::path::Path, &str) -> Option<Status>,
    ) -> Root<'a> {
        Root {
            schema: SCHEMA,
            root: root.display().to_string(),
            ok: reports.iter().all(|(_, r)| r.is_ok()),
            logs: reports
                .iter()
                .map(|(name, r)| Tenant {
                    log: name,
                    report: Report::new(r, |log| status(&r.dir, log)),
                })
                .collect(),
        }
    }
}

/// One line of JSON.
pub(crate) fn line(v: &impl Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string(v)?)
}
