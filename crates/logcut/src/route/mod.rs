//! Routing records to per-tenant logs: a [`Router`] picks, for each record,
//! a strategy group from its fields ([`RoutingTable`]) and the tenant's log
//! in that group, at `<root>/<group>/<tenant>/`, opening it on its first
//! record and closing the least recently used one past `max_open`.
//!
//! One directory per tenant, not one name per tenant in the group's
//! directory: a log's start lists its whole directory (recovery), so a
//! thousand logs in one directory start more than twice as slowly as in a
//! thousand directories (measured on a fresh ext4: 3.3 to 3.9 s against
//! 1.5 s); and each tenant's
//! directory is a complete log that `logcut verify`, `cat` and retention
//! handle on their own.

mod budget;
mod name;
mod open;
mod table;
#[cfg(feature = "tracing")]
mod tracing;

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

pub use name::MAX_NAME_LEN;
pub use table::RoutingTable;
#[cfg(feature = "tracing")]
pub use tracing::{RouteLayer, RouteWriter};

use crate::{Appender, AppenderBuilder, Error, Runtime};
use open::{Found, Key, OpenLogs};

/// Router ids (see `Inner::id`). Relaxed: only uniqueness matters.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The log this thread wrote to last, to write the next record of the
    /// same tenant without the router's lock.
    static LAST: std::cell::RefCell<Option<Cached>> = const { std::cell::RefCell::new(None) };
}

/// A thread's last log (see `LAST`).
struct Cached {
    router: u64,
    group: String,
    tenant: String,
    app: Appender,
    tally: Arc<open::Tally>,
}

/// The group (and directory under the root) of records whose tenant value
/// is not a safe name. Not a valid group name to configure.
pub const QUARANTINE: &str = "quarantine";

/// The directory, under its group, of the log of records without a tenant
/// field (it cannot be a tenant's: tenant names start with a letter or a
/// digit).
pub const NO_TENANT: &str = "_none";

/// Builds a [`Router`].
///
/// | Setting | Default |
/// |---|---|
/// | [`tenant_field`](Self::tenant_field) | `"tenant"` |
/// | [`max_open`](Self::max_open) | 64 |
/// | [`routes`](Self::routes) | every record to the first group added |
/// | [`runtime`](Self::runtime) | the default runtime |
/// | [`root_max_total`](Self::root_max_total) | no budget |
/// | [`root_min_free`](Self::root_min_free) | no floor |
/// | [`priority`](Self::priority) | 0 for every group |
/// | [`budget_interval`](Self::budget_interval) | 10 s |
/// | root directory mode | `0o750` |
#[derive(Debug, Clone)]
pub struct RouterBuilder {
    root: PathBuf,
    groups: Vec<(String, AppenderBuilder)>,
    table: Option<RoutingTable>,
    tenant_field: String,
    extra_fields: Vec<String>,
    max_open: usize,
    runtime: Option<Runtime>,
    budget: budget::Budget,
    priorities: HashMap<String, u32>,
}

impl RouterBuilder {
    /// A budget across every tenant's log under the root: while their
    /// sealed segments take more than `bytes` on disk, the oldest of the
    /// lowest-[`priority`](Self::priority) group are deleted (across its
    /// tenants, oldest first), then the next group's; each deletion is
    /// recorded in its log's manifest (reason `root-bytes`). Distinct from
    /// each log's own `max_total`. Active segments are not counted, and
    /// never deleted. Logs of groups this router does not know (left from
    /// an earlier configuration) are not counted. By default, no budget.
    pub fn root_max_total(mut self, bytes: u64) -> Self {
        self.budget.max_total = Some(bytes);
        self
    }

    /// A free-space floor for the file system holding the root: while it
    /// has less than `bytes` free, sealed segments are deleted in the
    /// budget's order (reason `root-free`). By default, no floor.
    pub fn root_min_free(mut self, bytes: u64) -> Self {
        self.budget.min_free = Some(bytes);
        self
    }

    /// Group `group`'s priority for the budget: the lowest loses its
    /// segments first (a debug storm in a low group never pushes out a
    /// high group's logs while the low one has any left). By default, 0.
    pub fn priority(mut self, group: impl Into<String>, priority: u32) -> Self {
        self.priorities.insert(group.into(), priority);
        self
    }

    /// Records start a budget pass (on a short-lived thread of its own)
    /// at most this often; `None`: only [`Router::apply_budget`] does.
    /// By default, 10 s.
    pub fn budget_interval(mut self, every: Option<std::time::Duration>) -> Self {
        self.budget.every = every;
        self
    }

    /// Another field for [`RouteLayer`] to pick from events and spans, for
    /// a routing table set later with [`Router::set_routes`] (the fields of
    /// the table given at build are picked anyway).
    pub fn route_field(mut self, name: impl Into<String>) -> Self {
        self.extra_fields.push(name.into());
        self
    }

    /// Adds a strategy group: the policy (size, interval, mode, fsync,
    /// compression, retention, file modes, error handler) of each of its
    /// tenants' logs. The builder's directory and runtime are the
    /// router's.
    pub fn group(mut self, name: impl Into<String>, policy: AppenderBuilder) -> Self {
        self.groups.push((name.into(), policy));
        self
    }

    /// The routing table (see [`RoutingTable`]). Every group it names must
    /// be added with [`group`](Self::group).
    pub fn routes(mut self, table: RoutingTable) -> Self {
        self.table = Some(table);
        self
    }

    /// The field whose value names the tenant (and its directory).
    pub fn tenant_field(mut self, name: impl Into<String>) -> Self {
        self.tenant_field = name.into();
        self
    }

    /// At most this many logs open at once (at least 1); past it, the least
    /// recently used one is sealed and closed, and opened again on its next
    /// record.
    pub fn max_open(mut self, n: usize) -> Self {
        self.max_open = n;
        self
    }

    /// The runtime every routed log runs on.
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// Checks the settings, creates the root directory and returns the
    /// router. No tenant's log is opened before its first record.
    pub fn build(self) -> Result<Router, Error> {
        let table =
            match self.table {
                Some(t) => t,
                None => {
                    let first = self.groups.first().map(|(n, _)| n.clone());
                    RoutingTable::new(first.ok_or_else(|| {
                        Error::config("group", "a router needs at least one group")
                    })?)
                }
            };
        let groups = check_groups(self.groups, &table)?;
        // Quarantine follows the default group's policy as built.
        let quarantine = groups
            .get(table.default_group())
            .cloned()
            .ok_or_else(|| Error::config("routes", "the default group was not added"))?;
        if self.max_open == 0 {
            return Err(Error::config("max_open", "at least one log must stay open"));
        }
        let (groups, quarantine) =
            check_budget(&self.budget, &self.priorities, groups, quarantine)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode_0750()
            .create(&self.root)
            .map_err(|e| Error::io("create router root", &self.root, e))?;
        let rt = match self.runtime {
            Some(rt) => rt,
            None => Runtime::shared_default()?,
        };
        Ok(Router {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                start: std::time::Instant::now(),
                root: self.root,
                groups,
                quarantine,
                table: RwLock::new(Arc::new(table)),
                tenant_field: self.tenant_field,
                extra_fields: self.extra_fields,
                max_open: self.max_open,
                rt,
                open: Mutex::new(OpenLogs::default()),
                changed: Condvar::new(),
                shut: AtomicBool::new(false),
                counters: Counters::default(),
                budget: self.budget,
                priorities: self.priorities,
                pace: budget::Pace::new(),
                passing: Mutex::new(()),
            }),
        })
    }
}

/// Checks the budget's settings; with a budget, every log runs its keeper
/// (the budget deletes through it).
fn check_budget(
    b: &budget::Budget,
    priorities: &HashMap<String, u32>,
    groups: HashMap<String, AppenderBuilder>,
    quarantine: AppenderBuilder,
) -> Result<(HashMap<String, AppenderBuilder>, AppenderBuilder), Error> {
    if b.max_total == Some(0) {
        return Err(Error::config(
            "root_max_total",
            "zero; give at least 1 byte",
        ));
    }
    if b.min_free == Some(0) {
        return Err(Error::config(
            "root_min_free",
            "zero is no floor; give a size such as 1 GiB, or leave it unset",
        ));
    }
    if b.every.is_some_and(|d| d.is_zero()) {
        return Err(Error::config(
            "budget_interval",
            "zero; give an interval such as 10 s, or None",
        ));
    }
    if let Some(g) = priorities.keys().find(|g| !groups.contains_key(*g)) {
        return Err(Error::config(
            "priority",
            format!("a priority for group {g:?}, which was not added"),
        ));
    }
    if b.is_none() {
        return Ok((groups, quarantine));
    }
    let groups = groups
        .into_iter()
        .map(|(n, p)| (n, p.always_keep()))
        .collect();
    Ok((groups, quarantine.always_keep()))
}

/// `DirBuilder` with mode 0750 (the crate's default for directories).
trait Mode0750 {
    fn mode_0750(&mut self) -> &mut Self;
}

impl Mode0750 for std::fs::DirBuilder {
    fn mode_0750(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o750)
    }
}

/// Checks group names (a path component each, never the quarantine's),
/// that every group the table names exists, and that no group asks for
/// what a router does not do per tenant.
fn check_groups(
    list: Vec<(String, AppenderBuilder)>,
    table: &RoutingTable,
) -> Result<HashMap<String, AppenderBuilder>, Error> {
    let mut groups = HashMap::new();
    for (name, policy) in list {
        if !name::is_safe(name.as_bytes()) || name == QUARANTINE {
            return Err(Error::config(
                "group",
                format!(
                    "group name {name:?}: lowercase ASCII letters, digits, '_' and '-', starting with a letter or digit, at most {MAX_NAME_LEN} bytes, not {QUARANTINE:?}"
                ),
            ));
        }
        if policy.has_watches() {
            return Err(Error::config(
                "group",
                format!("group {name:?}: trigger files and signals are not routed per tenant"),
            ));
        }
        if groups.insert(name.clone(), policy).is_some() {
            return Err(Error::config(
                "group",
                format!("group {name:?} added twice"),
            ));
        }
    }
    if let Some(g) = table.groups().find(|g| !groups.contains_key(*g)) {
        return Err(Error::config(
            "routes",
            format!("the routing table names group {g:?}, which was not added"),
        ));
    }
    Ok(groups)
}

/// Routes each record to its tenant's log, under the policy of the group
/// its fields select. Cheap to clone; every clone routes through the same
/// open logs.
///
/// ```no_run
/// use logcut::{Appender, Interval, Router, RoutingTable};
/// let router = Router::builder("/var/log/svc")
///     .group("premium", Appender::builder().interval(Interval::HOURLY).keep(24 * 90))
///     .group("standard", Appender::builder().max_size(16 << 20).keep(7))
///     .routes(RoutingTable::new("standard").route("plan=premium", "premium")?)
///     .build()?;
/// router.write_to(&[("tenant", "acme"), ("plan", "premium")], b"order 42 paid\n")?;
/// router.shutdown()?;
/// # Ok::<(), logcut::Error>(())
/// ```
///
/// A tenant value outside the safe alphabet (see [`MAX_NAME_LEN`] and the
/// crate docs) never becomes part of a path: the record goes to the
/// quarantine log at `<root>/quarantine/`, behind the value, quoted and
/// escaped, so that nothing of it is lost.
#[derive(Clone, Debug)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    /// Unique among the process's routers (for the threads' caches).
    id: u64,
    /// When the router was built: the clock of `Tally::used`.
    start: std::time::Instant,
    root: PathBuf,
    groups: HashMap<String, AppenderBuilder>,
    /// The policy of the quarantine log.
    quarantine: AppenderBuilder,
    /// Writers hold it shared while they route and write a record, so
    /// `set_routes` returns only once no record is being written under the
    /// old table.
    table: RwLock<Arc<RoutingTable>>,
    tenant_field: String,
    /// See `RouterBuilder::route_field`.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    extra_fields: Vec<String>,
    max_open: usize,
    rt: Runtime,
    open: Mutex<OpenLogs>,
    /// A log finished starting or closing (see `OpenLogs::busy`).
    changed: Condvar,
    shut: AtomicBool,
    counters: Counters,
    budget: budget::Budget,
    priorities: HashMap<String, u32>,
    pace: budget::Pace,
    /// Held by a budget pass: one at a time.
    passing: Mutex<()>,
}

/// The last router handle gone without `shutdown`: every open log is shut
/// down now, rather than when the last clone of its appender goes (a
/// thread's cache may keep one until the thread ends).
impl Drop for Inner {
    fn drop(&mut self) {
        self.shut.store(true, Ordering::SeqCst);
        let logs = self
            .open
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain();
        for (_, app) in logs {
            // Errors went to the group's handler.
            let _ = app.shutdown();
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("root", &self.root)
            .field("max_open", &self.max_open)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    rejected: AtomicU64,
    quarantined: AtomicU64,
    opened: AtomicU64,
    evictions: AtomicU64,
    budget_deleted: AtomicU64,
    budget_failures: AtomicU64,
}

/// A router's counters (see [`Router::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Records accepted.
    pub records: u64,
    /// Records refused (after `shutdown`, or a log that could not be
    /// opened); `write_to` returned the error.
    pub rejected: u64,
    /// Records whose tenant value was not a safe name, written to the
    /// quarantine log.
    pub quarantined: u64,
    /// Logs open now.
    pub open: u64,
    /// Logs opened (a log closed and opened again counts again).
    pub opened: u64,
    /// Logs closed to stay within `max_open`.
    pub evictions: u64,
    /// Sealed segments the budget deleted (`root_max_total`,
    /// `root_min_free`).
    pub budget_deleted: u64,
    /// Budget passes that failed (a log that could not be opened or
    /// could not record a deletion); the next pass tries again.
    pub budget_failures: u64,
    /// Each group's totals (the quarantine's as group `quarantine`), by
    /// name.
    pub groups: Vec<GroupStats>,
}

/// One group's totals (see [`RouterStats::groups`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group.
    pub name: String,
    /// Records accepted into its logs.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Its logs open now.
    pub open: u64,
    /// Its logs opened so far (one per tenant).
    pub tenants: u64,
}

/// One tenant's log (see [`Router::top_tenants`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantStats {
    /// Its group.
    pub group: String,
    /// The tenant (its directory under the group).
    pub tenant: String,
    /// Records accepted.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
}

/// The busiest tenants and the sum of the rest: a bounded view however
/// many tenants there are (for metrics labels, a status page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopTenants {
    /// The busiest, by records, most first.
    pub top: Vec<TenantStats>,
    /// How many other tenants' logs there are.
    pub others: u64,
    /// Their records, summed.
    pub other_records: u64,
    /// Their bytes, summed.
    pub other_bytes: u64,
}

impl Router {
    /// A builder for a router whose logs live under `root`.
    pub fn builder(root: impl Into<PathBuf>) -> RouterBuilder {
        RouterBuilder {
            root: root.into(),
            groups: Vec::new(),
            table: None,
            tenant_field: "tenant".to_string(),
            extra_fields: Vec::new(),
            max_open: 64,
            runtime: None,
            budget: budget::Budget {
                every: Some(std::time::Duration::from_secs(10)),
                ..budget::Budget::default()
            },
            priorities: HashMap::new(),
        }
    }

    /// Writes one record to the log its fields (name, value) select. Like
    /// [`Appender::write_record`], it returns once the record is accepted.
    pub fn write_to(&self, fields: &[(&str, &str)], record: &[u8]) -> Result<(), Error> {
        let inner = &self.inner;
        let table = inner.table.read().unwrap_or_else(|e| e.into_inner());
        let tenant = fields
            .iter()
            .find(|(n, _)| *n == inner.tenant_field)
            .map(|(_, v)| *v);
        let res = match tenant {
            None => self.write_key(table.default_group(), NO_TENANT, record),
            Some(t) if name::is_safe(t.as_bytes()) => {
                self.write_key(table.group_for(fields), t, record)
            }
            Some(t) => {
                let mut rec = format!("[tenant {}] ", name::quoted(t.as_bytes())).into_bytes();
                rec.extend_from_slice(record);
                let res = self.write_key(QUARANTINE, "", &rec);
                if res.is_ok() {
                    // Relaxed: counters read on their own.
                    inner.counters.quarantined.fetch_add(1, Ordering::Relaxed);
                }
                res
            }
        };
        drop(table);
        // Relaxed: counters read on their own.
        let n = match &res {
            Ok(()) => inner.counters.records.fetch_add(1, Ordering::Relaxed),
            Err(_) => inner.counters.rejected.fetch_add(1, Ordering::Relaxed),
        };
        // Every 1,024 records (and at shutdown): a snapshot for exporters.
        #[cfg(feature = "metrics")]
        if n % 1024 == 1023 {
            self.publish_metrics();
        }
        #[cfg(not(feature = "metrics"))]
        let _ = n;
        if n % 1024 == 1023 {
            self.maybe_pass();
        }
        res
    }

    /// Starts a budget pass on a thread of its own if one is due. Not on
    /// the runtime: a pass opens logs and waits for their keepers, which
    /// run there.
    fn maybe_pass(&self) {
        let inner = &self.inner;
        let Some(every) = inner.budget.every.filter(|_| !inner.budget.is_none()) else {
            return;
        };
        if !inner.pace.due(every) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let _ = std::thread::Builder::new()
            .name("logcut-budget".into())
            .spawn(move || {
                if let Some(inner) = weak.upgrade() {
                    // Counted in the stats.
                    let _ = Router { inner }.apply_budget();
                }
            });
    }

    /// Runs a budget pass now (see
    /// [`RouterBuilder::root_max_total`]): lists every log under the root,
    /// chooses, and has each chosen log delete its segments, opening it if
    /// it is closed. Returns how many segments went. Records start passes
    /// on their own ([`RouterBuilder::budget_interval`]); this is for a
    /// caller that wants one at a known time.
    pub fn apply_budget(&self) -> Result<u64, Error> {
        let inner = &self.inner;
        let b = inner.budget;
        if b.is_none() {
            return Ok(0);
        }
        let _one = inner.passing.lock().unwrap_or_else(|e| e.into_inner());
        let res = self.pass(b);
        // Relaxed: counters read on their own.
        match &res {
            Ok(n) => inner
                .counters
                .budget_deleted
                .fetch_add(*n, Ordering::Relaxed),
            Err(_) => inner
                .counters
                .budget_failures
                .fetch_add(1, Ordering::Relaxed),
        };
        res
    }

    fn pass(&self, b: budget::Budget) -> Result<u64, Error> {
        let inner = &self.inner;
        let log_of = |group: &str| -> Option<(String, u32)> {
            let policy = if group == QUARANTINE {
                &inner.quarantine
            } else {
                inner.groups.get(group)?
            };
            let p = inner.priorities.get(group).copied().unwrap_or(0);
            Some((policy.log_name().to_string(), p))
        };
        let (logs, held) = budget::scan(&inner.root, log_of);
        let free = b
            .min_free
            .and_then(|_| rustix::fs::statvfs(&inner.root).ok())
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
        let chosen = budget::choose(&held, b.max_total, free, b.min_free);
        let mut deleted = 0;
        let mut first_err = None;
        for (log, wanted) in budget::by_log(&held, &chosen) {
            let (group, tenant) = &logs[log];
            let res = self
                .open(group, tenant)
                .and_then(|(app, _)| app.trim(wanted));
            match res {
                Ok(n) => deleted += n as u64,
                Err(e) if e.is_shutdown() => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(deleted), Err)
    }

    /// Replaces the routing table while records flow. When it returns, no
    /// record is being written under the old table, and every later one
    /// follows the new. Fails, leaving the old table, if the new one names
    /// a group that was not added.
    pub fn set_routes(&self, table: RoutingTable) -> Result<(), Error> {
        if let Some(g) = table.groups().find(|g| !self.inner.groups.contains_key(*g)) {
            return Err(Error::config(
                "routes",
                format!("the routing table names group {g:?}, which was not added"),
            ));
        }
        *self.inner.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// The router's counters.
    pub fn stats(&self) -> RouterStats {
        let c = &self.inner.counters;
        let (open, tallies) = {
            let o = self.lock_open();
            (o.len() as u64, o.tallies())
        };
        let mut groups: std::collections::BTreeMap<String, GroupStats> = Default::default();
        for ((group, _), t, is_open) in tallies {
            let g = groups.entry(group.clone()).or_insert_with(|| GroupStats {
                name: group,
                ..GroupStats::default()
            });
            // Relaxed: counters read on their own.
            g.records += t.records.load(Ordering::Relaxed);
            g.bytes += t.bytes.load(Ordering::Relaxed);
            g.open += u64::from(is_open);
            g.tenants += 1;
        }
        RouterStats {
            records: c.records.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            quarantined: c.quarantined.load(Ordering::Relaxed),
            open,
            opened: c.opened.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            budget_deleted: c.budget_deleted.load(Ordering::Relaxed),
            budget_failures: c.budget_failures.load(Ordering::Relaxed),
            groups: groups.into_values().collect(),
        }
    }

    /// The `n` busiest tenants' logs by records, and the rest summed.
    pub fn top_tenants(&self, n: usize) -> TopTenants {
        let tallies = self.lock_open().tallies();
        let mut all: Vec<TenantStats> = tallies
            .into_iter()
            .map(|((group, tenant), t, _)| TenantStats {
                group,
                tenant,
                // Relaxed: counters read on their own.
                records: t.records.load(Ordering::Relaxed),
                bytes: t.bytes.load(Ordering::Relaxed),
            })
            .collect();
        all.sort_by(|a, b| {
            b.records
                .cmp(&a.records)
                .then_with(|| (&a.group, &a.tenant).cmp(&(&b.group, &b.tenant)))
        });
        let rest = all.split_off(n.min(all.len()));
        TopTenants {
            top: all,
            others: rest.len() as u64,
            other_records: rest.iter().map(|t| t.records).sum(),
            other_bytes: rest.iter().map(|t| t.bytes).sum(),
        }
    }

    /// A guard that shuts the router down when dropped: for a program
    /// whose global logger keeps a clone of the router, which is then never
    /// dropped (see [`ShutdownGuard`](crate::ShutdownGuard)).
    pub fn shutdown_guard(&self) -> crate::ShutdownGuard {
        crate::ShutdownGuard::for_router(self.clone())
    }

    /// Publishes the router's figures through the `metrics` facade (feature
    /// `metrics`): totals, per group, and the busiest tenants by name (the
    /// rest summed as tenant `_other`, so that the number of series stays
    /// bounded). Done every 1,024 records and at shutdown; call it for a
    /// fresher snapshot.
    #[cfg(feature = "metrics")]
    pub fn publish_metrics(&self) {
        let name = self.inner.root.file_name().map_or_else(
            || self.inner.root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        crate::metrics::publish_router(
            &name,
            &self.stats(),
            &self.top_tenants(crate::metrics::TOP_TENANTS),
        );
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Hands every record accepted so far to the kernel, in every open log
    /// (see [`Appender::flush_records`]); errors went to each group's
    /// handler.
    pub fn flush(&self) {
        // Outside the lock: a flush waits for the log's batch.
        let apps = self.lock_open().appenders();
        for app in apps {
            let _ = app.flush_records();
        }
    }

    /// Seals and closes every open log. Later writes fail. Returns the
    /// first error of the logs' shutdowns (each also went to its group's
    /// error handler).
    pub fn shutdown(&self) -> Result<(), Error> {
        self.inner.shut.store(true, Ordering::SeqCst);
        let logs = self.lock_open().drain();
        let mut first = None;
        for (_, app) in logs {
            if let Err(e) = app.shutdown() {
                first.get_or_insert(e);
            }
        }
        #[cfg(feature = "metrics")]
        self.publish_metrics();
        first.map_or(Ok(()), Err)
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, OpenLogs> {
        self.inner.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `record` to the log `key`, opening it if needed. A log closed
    /// to make room while this thread held it refuses the record (whole):
    /// it is written again to the log opened anew.
    fn write_key(&self, group: &str, tenant: &str, record: &[u8]) -> Result<(), Error> {
        if let Some(res) = self.write_cached(group, tenant, record) {
            return res;
        }
        loop {
            let (app, tally) = self.open(group, tenant)?;
            match app.write_record(record) {
                Ok(()) => {
                    self.count(&tally, record.len());
                    self.remember(group, tenant, app, tally);
                    return Ok(());
                }
                Err(e) if e.is_shutdown() && !self.inner.shut.load(Ordering::SeqCst) => {
                    if self.lock_open().holds(group, tenant, &app) {
                        // Shut down for another reason (its task died).
                        return Err(e);
                    }
                }
                res => return res,
            }
        }
    }

    /// Writes through this thread's last log if it is `group`/`tenant` of
    /// this router; `None` to take the lock (no such log cached, or it was
    /// closed meanwhile: the record was refused whole, and goes the long
    /// way).
    fn write_cached(&self, group: &str, tenant: &str, record: &[u8]) -> Option<Result<(), Error>> {
        LAST.try_with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            let c = last.as_ref()?;
            if c.router != self.inner.id || c.group != group || c.tenant != tenant {
                return None;
            }
            match c.app.write_record(record) {
                Ok(()) => {
                    self.count(&c.tally, record.len());
                    Some(Ok(()))
                }
                Err(e) if e.is_shutdown() && !self.inner.shut.load(Ordering::SeqCst) => {
                    *last = None;
                    None
                }
                Err(e) => Some(Err(e)),
            }
        })
        .ok()
        .flatten()
    }

    /// Keeps `app` as this thread's last log.
    fn remember(&self, group: &str, tenant: &str, app: Appender, tally: Arc<open::Tally>) {
        let _ = LAST.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some(Cached {
                    router: self.inner.id,
                    group: group.to_string(),
                    tenant: tenant.to_string(),
                    app,
                    tally,
                });
            }
        });
    }

    /// Counts a record written to the log of `tally`, and marks it used.
    fn count(&self, tally: &open::Tally, len: usize) {
        // Relaxed: counters and a time read on their own.
        tally.records.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.touch(tally);
    }

    /// Marks the log of `tally` used now.
    fn touch(&self, tally: &open::Tally) {
        let now = u64::try_from(self.inner.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: a time read on its own (by `OpenLogs::evict`).
        tally.used.store(now, Ordering::Relaxed);
    }

    /// The open appender of `key`: opened (closing the least recently used
    /// past `max_open`) if needed. Starting and closing happen outside the
    /// lock, the log marked busy meanwhile.
    fn open(&self, group: &str, tenant: &str) -> Result<(Appender, Arc<open::Tally>), Error> {
        let inner = &self.inner;
        let mut open = self.lock_open();
        loop {
            if inner.shut.load(Ordering::SeqCst) {
                return Err(Error::shutdown("route record"));
            }
            match open.take(group, tenant) {
                Found::Open(app, tally) => return Ok((app, tally)),
                Found::Busy => {
                    open = inner.changed.wait(open).unwrap_or_else(|e| e.into_inner());
                }
                Found::Missing if open.full(inner.max_open) => match open.evict() {
                    Some((victim, app)) => {
                        drop(open);
                        // Errors went to the group's handler.
                        let _ = app.shutdown();
                        inner.counters.evictions.fetch_add(1, Ordering::Relaxed);
                        open = self.lock_open();
                        open.done(&victim);
                        inner.changed.notify_all();
                    }
                    // Every slot is starting or closing: wait for one.
                    None => {
                        open = inner.changed.wait(open).unwrap_or_else(|e| e.into_inner());
                    }
                },
                Found::Missing => {
                    let key: Key = (group.to_string(), tenant.to_string());
                    open.opening(&key);
                    drop(open);
                    let started = self.start(&key);
                    open = self.lock_open();
                    open.done(&key);
                    inner.changed.notify_all();
                    let app = started?;
                    inner.counters.opened.fetch_add(1, Ordering::Relaxed);
                    if inner.shut.load(Ordering::SeqCst) {
                        // `shutdown` took the open logs meanwhile.
                        drop(open);
                        let _ = app.shutdown();
                        return Err(Error::shutdown("route record"));
                    }
                    let tally = open.insert(key, app.clone());
                    // Used now: the next eviction does not take it first.
                    self.touch(&tally);
                    return Ok((app, tally));
                }
            }
        }
    }

    /// Starts the appender of `key` under its group's policy.
    fn start(&self, key: &Key) -> Result<Appender, Error> {
        let inner = &self.inner;
        let (group, tenant) = key;
        let (policy, dir) = if group == QUARANTINE {
            (Some(&inner.quarantine), inner.root.join(QUARANTINE))
        } else {
            (inner.groups.get(group), inner.root.join(group).join(tenant))
        };
        let policy = policy.ok_or_else(|| Error::config("group", format!("no group {group:?}")))?;
        check_no_symlink(&inner.root, &dir)?;
        policy.clone().dir(dir).runtime(&inner.rt).build()
    }
}

/// Refuses a symlink anywhere between the root and `dir` (which lies
/// under it): a routed log never follows one out of the root.
fn check_no_symlink(root: &Path, dir: &Path) -> Result<(), Error> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(Error::config("route", "a log outside the router's root"));
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(Error::io(
                    "open routed log",
                    &at,
                    io::Error::other("not a directory (a symlink is never followed here)"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("open routed log", &at, e)),
        }
    }
    Ok(())
}
