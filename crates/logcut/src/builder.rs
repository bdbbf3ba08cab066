//! The appender's configuration and its builder.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use jiff::tz::TimeZone;

use crate::{
    Appender, Clock, Compression, Error, ErrorHandler, Interval, SystemClock,
    sealed::retain::Retention,
};

/// How records reach the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each record is written to the file by the thread that logs it, in one
    /// `write(2)`, before `write` returns: once `write` has returned, the
    /// record survives a crash (even SIGKILL) of the process.
    #[default]
    Direct,
    /// Records are copied into a bounded in-memory buffer, and a background
    /// thread writes them in large batches. Much faster for many small
    /// records; records still in the buffer are lost if the process is
    /// killed. When the buffer is full, writers wait (nothing is dropped).
    /// `flush()`, `shutdown()` and dropping the last handle write everything.
    Buffered,
}

/// When segment data is flushed to the device (`fdatasync`), for durability
/// across power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Never; the operating system writes data back in its own time.
    Never,
    /// Every interval, from the background thread.
    Every(Duration),
    /// When a segment is sealed, before its manifest entry is written.
    #[default]
    AtSeal,
    /// After every record (Direct) or every batch (Buffered). Slow.
    Always,
}

/// See [`AppenderBuilder::before_compress`].
pub(crate) type BeforeCompress = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) max_size: Option<u64>,
    pub(crate) interval: Option<Interval>,
    pub(crate) tz: TimeZone,
    pub(crate) min_size: u64,
    pub(crate) mode: Mode,
    pub(crate) fsync: Fsync,
    pub(crate) buffer_size: usize,
    pub(crate) max_held: usize,
    pub(crate) file_mode: u32,
    pub(crate) dir_mode: u32,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) handler: Option<Arc<dyn ErrorHandler>>,
    pub(crate) trigger: Option<PathBuf>,
    #[cfg_attr(not(feature = "signals"), allow(dead_code))]
    pub(crate) signals: bool,
    pub(crate) watch_interval: Option<Duration>,
    pub(crate) compression: Compression,
    pub(crate) compress_threads: usize,
    pub(crate) index: Vec<String>,
    /// Run the keeper even with nothing of its own to do: a router's
    /// budget deletes through it.
    pub(crate) always_keep: bool,
    /// Where sealed segments are shipped, if anywhere.
    pub(crate) ship: Option<Arc<dyn crate::sealed::ship::Ship>>,
    pub(crate) before_compress: Option<BeforeCompress>,
    pub(crate) retention: Retention,
    pub(crate) shared: bool,
    pub(crate) keep_active_name: bool,
    pub(crate) runtime: Option<crate::Runtime>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("max_size", &self.max_size)
            .field("interval", &self.interval)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Appender`].
///
/// | setting | default |
/// |---|---|
/// | [`dir`](Self::dir) | none: required |
/// | [`name`](Self::name) | `"app"` (active file `app.log`) |
/// | [`max_size`](Self::max_size) | 64 MiB |
/// | [`interval`](Self::interval) | none |
/// | [`time_zone`](Self::time_zone) | UTC |
/// | [`min_size`](Self::min_size) | 0 |
/// | [`mode`](Self::mode) | [`Mode::Direct`] |
/// | [`fsync`](Self::fsync) | [`Fsync::AtSeal`] |
/// | [`buffer_size`](Self::buffer_size) | 1 MiB |
/// | [`max_held`](Self::max_held) | 8 MiB |
/// | [`file_mode`](Self::file_mode) / [`dir_mode`](Self::dir_mode) | `0o640` / `0o750` |
/// | [`backoff`](Self::backoff) | 50 ms doubling to 30 s |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | 5 s |
/// | [`clock`](Self::clock) | [`SystemClock`] |
/// | [`error_handler`](Self::error_handler) | none |
/// | [`watch_interval`](Self::watch_interval) | 500 ms (50 ms when shared) |
/// | [`shared`](Self::shared) | off |
/// | [`keep_active_name`](Self::keep_active_name) | on |
/// | `trigger_file` (feature `trigger`) | none |
/// | `signals` (feature `signals`) | off |
/// | [`compress`](Self::compress) | [`Compression::None`] |
/// | [`compress_threads`](Self::compress_threads) | 1 |
/// | [`index_fields`](Self::index_fields) | none |
/// | `ship` (feature `ship`) | none |
/// | [`keep`](Self::keep) | no limit |
/// | [`max_age`](Self::max_age) | no limit |
/// | [`max_total`](Self::max_total) | no limit |
/// | [`min_free`](Self::min_free) | no floor |
/// | [`runtime`](Self::runtime) | the default [`Runtime`](crate::Runtime), shared |
#[must_use]
#[derive(Clone)]
pub struct AppenderBuilder {
    dir: Option<PathBuf>,
    name: String,
    max_size: Option<u64>,
    interval: Option<Interval>,
    tz: Option<String>,
    min_size: u64,
    mode: Mode,
    fsync: Fsync,
    buffer_size: usize,
    max_held: usize,
    file_mode: u32,
    dir_mode: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    shutdown_timeout: Duration,
    clock: Arc<dyn Clock>,
    handler: Option<Arc<dyn ErrorHandler>>,
    trigger: Option<PathBuf>,
    signals: bool,
    watch_interval: Option<Duration>,
    compression: Compression,
    compress_threads: usize,
    index: Vec<String>,
    always_keep: bool,
    ship: Option<Arc<dyn crate::sealed::ship::Ship>>,
    before_compress: Option<BeforeCompress>,
    retention: Retention,
    shared: bool,
    keep_active_name: bool,
    watch_interval_set: bool,
    runtime: Option<crate::Runtime>,
}

impl fmt::Debug for AppenderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppenderBuilder")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("max_size", &self.max_size)
            .field("interval", &self.interval)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Default for AppenderBuilder {
    fn default() -> Self {
        AppenderBuilder::new()
    }
}

impl AppenderBuilder {
    /// Whether it asks for a trigger file or signals (threads of their own).
    pub(crate) fn has_watches(&self) -> bool {
        self.trigger.is_some() || self.signals
    }

    /// A builder with the defaults in the table above.
    pub fn new() -> AppenderBuilder {
        AppenderBuilder {
            dir: None,
            name: "app".to_string(),
            max_size: Some(64 << 20),
            interval: None,
            tz: None,
            min_size: 0,
            mode: Mode::Direct,
            fsync: Fsync::AtSeal,
            buffer_size: 1 << 20,
            max_held: 8 << 20,
            file_mode: 0o640,
            dir_mode: 0o750,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            handler: None,
            trigger: None,
            signals: false,
            watch_interval: Some(Duration::from_millis(500)),
            compression: Compression::None,
            compress_threads: 1,
            index: Vec::new(),
            always_keep: false,
            ship: None,
            before_compress: None,
            retention: Retention::default(),
            shared: false,
            keep_active_name: true,
            watch_interval_set: false,
            runtime: None,
        }
    }

    /// The [`Runtime`](crate::Runtime) whose threads do this appender's
    /// background work. Without one, appenders share a default runtime
    /// ([`Runtime::shared_default`](crate::Runtime::shared_default)):
    /// either way, a thousand appenders cost a few threads, not thousands.
    pub fn runtime(mut self, rt: &crate::Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// The log directory; created (with parents, mode [`dir_mode`](Self::dir_mode)) if missing.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The log's name: the active file is `<dir>/<name>.log`. ASCII letters,
    /// digits, `_`, `-` and `.` only. By default, `app`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Cut when the next record would make the segment larger than `bytes`.
    /// A record is never split: one larger than the limit gets a segment of
    /// its own. By default, 64 MiB. See [`parse_size`](crate::parse_size)
    /// for human units.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// No size limit.
    pub fn no_max_size(mut self) -> Self {
        self.max_size = None;
        self
    }

    /// Cut at wall-clock boundaries: see [`Interval`]. With a size limit
    /// too, whichever comes first. By default, none.
    pub fn interval(mut self, interval: Interval) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Only [`Appender::rotate`] cuts: no size limit, no interval.
    pub fn manual_only(mut self) -> Self {
        self.max_size = None;
        self.interval = None;
        self
    }

    /// The IANA time zone the interval's boundaries follow, such as
    /// `"Europe/Berlin"`. By default, UTC.
    pub fn time_zone(mut self, name: impl Into<String>) -> Self {
        self.tz = Some(name.into());
        self
    }

    /// A time cut only happens when the segment holds at least `bytes`;
    /// a smaller segment is kept and cut at a later boundary once it is big
    /// enough (its name still says when it started). This keeps an idle
    /// service from producing a file per interval. Size and manual cuts
    /// ignore it. An empty segment is never cut by time. By default, 0.
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// How records reach the file: see [`Mode`]. By default, [`Mode::Direct`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// When to flush data to the device: see [`Fsync`]. By default,
    /// [`Fsync::AtSeal`].
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// The buffer of [`Mode::Buffered`], in bytes: writers wait when it is
    /// full (but for an error handler or hook, which runs on the runtime
    /// and never waits: its records go past the bound). A larger record is
    /// accepted alone. By default, 1 MiB. While
    /// the background thread writes one buffer's worth, the next fills:
    /// a crash loses at most twice this (see the crate's Guarantees).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }

    /// How many bytes of records [`Mode::Direct`] holds in memory while
    /// writes fail (disk full, file too large); writers wait beyond it (but
    /// for an error handler or hook, which never waits). By default, 8 MiB.
    pub fn max_held(mut self, bytes: usize) -> Self {
        self.max_held = bytes;
        self
    }

    /// Permission bits of the files created. By default, `0o640`.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Permission bits of the directories created. By default, `0o750`.
    pub fn dir_mode(mut self, mode: u32) -> Self {
        self.dir_mode = mode;
        self
    }

    /// Retry delays after a failure: the first wait is `min`, doubling on
    /// each failure up to `max`. By default, 50 ms and 30 s.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// How long `shutdown` keeps retrying records that cannot be written
    /// before it counts them as lost. By default, 5 s.
    ///
    /// Once every segment is sealed, compression, indexing and shipping of
    /// the sealed segments still waiting get as long again; what is left
    /// then (not an error) is done at the next start. A shutdown may so
    /// take up to twice this (a service manager's stop timeout should
    /// allow for it).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The clock for time cuts, backoff and names. By default, [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where errors of the background thread go. By default, nowhere (they
    /// are still counted in [`Appender::stats`], and the last one is kept
    /// in `<dir>/<name>.error` for `logcut status`; see
    /// [`logcut_format::last_error`]).
    ///
    /// The handler runs on a thread of the appender's runtime. It may write
    /// records to any appender, this one included (they are accepted past
    /// the memory bounds rather than wait for the task it interrupted), but
    /// `flush`, `rotate`, `reopen`, `tick` and `shutdown` called there fail
    /// with [`WouldBlock`](std::io::ErrorKind::WouldBlock) instead of
    /// waiting for that task.
    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// How often the background thread checks that the active file is still
    /// at `<dir>/<name>.log`. When someone else renamed or removed it
    /// (logrotate without `copytruncate`, an operator's `mv`), the appender
    /// continues in a new file at that path within this interval (measured
    /// on the [`clock`](Self::clock)); records written before the switch
    /// stay in the moved file. [`Appender::reopen`] (and SIGHUP, with
    /// [`signals`](Self::signals)) checks at once. `None` never checks on
    /// its own. By default, 500 ms: one `stat` per check.
    ///
    /// With [`shared`](Self::shared), the same check is how a process
    /// notices that another one cut the log, so it bounds how long a
    /// process keeps writing to a segment another one cut (and so how long
    /// that segment waits to be sealed); the default is then 50 ms, and
    /// `None` is refused.
    pub fn watch_interval(mut self, every: Option<Duration>) -> Self {
        self.watch_interval = every;
        self.watch_interval_set = true;
        self
    }

    /// Share the log with other processes (or other appenders in this
    /// process) that also build it with `shared(true)`: they all append to
    /// `<dir>/<name>.log`, and each cut is made by one of them while the
    /// others follow to the new file. Off by default: a second appender on
    /// the log is then refused at [`build`](Self::build).
    ///
    /// How it works, and what it costs:
    /// - Each appender holds a shared `flock` on the lock file, so an
    ///   exclusive appender (and a shared one while an exclusive one
    ///   runs) is refused. Start-up, cuts and following a cut take an
    ///   exclusive `flock` on `<dir>/<name>.cut`, which also names the
    ///   active file's sequence number. The first appender to start
    ///   recovers what a crash left; the others join.
    /// - Each appender holds a shared `flock` on the segment it writes.
    ///   The one that cut a segment seals it once it gets an exclusive
    ///   lock, that is once every writer has left it; each writer records
    ///   in the manifest (a `part` entry) how many records it wrote there.
    ///   Manifest appends hold an exclusive `flock` on the manifest.
    /// - The cutter removes the write permission bits of the segment it cut
    ///   (sealed segments of a shared log are read-only, 0440 by default).
    ///   The others look at their file (one `fstat`) every 16 records they
    ///   write there in [`Mode::Direct`], before each batch in
    ///   [`Mode::Buffered`], and at every
    ///   [`watch_interval`](Self::watch_interval) (50 ms by default in this
    ///   mode): they follow to the new file when they see the mark, and
    ///   count the other processes' bytes toward [`max_size`](Self::max_size)
    ///   from the file's length. A segment can so exceed the limit by what
    ///   the processes write between one of them crossing it and the cut.
    /// - Sealed segments have `first=?` in the manifest (record indexes
    ///   are per process), and the records of a process killed while
    ///   writing are in the files but counted in no `part`.
    /// - Indexing, compression, shipping and retention are done by one
    ///   process at a time: the one holding an exclusive `flock` on
    ///   `<dir>/<name>.keeper-lock`. It learns of every process's seals from
    ///   the manifest; the others try for the lock at every
    ///   [`watch_interval`](Self::watch_interval), and one takes over when
    ///   its holder exits or dies (a compressed file it had not recorded is
    ///   removed and made again; an upload it had not recorded is made again
    ///   under the same key). The holder's configuration applies: give
    ///   every process the same. The last process to leave waits (within
    ///   [`shutdown_timeout`](Self::shutdown_timeout)) for the turn, to
    ///   look after the last seals. [`Stats`](crate::Stats) count the
    ///   keeper's work in the process that did it.
    /// - A write that fails part way (a full disk) leaves its first part
    ///   in the file, since cutting it off could cut off other processes'
    ///   records.
    pub fn shared(mut self, on: bool) -> Self {
        self.shared = on;
        self
    }

    /// Whether the last segment keeps the active name (`app.log`) after
    /// [`shutdown`](crate::Appender::shutdown), besides its sealed name,
    /// until the next start. On by default, so that a shipper that follows
    /// `app.log` by name and had not opened the last segment yet still
    /// finds it there, rather than nothing.
    ///
    /// `app.log` is then a second name (a hard link) of the last sealed
    /// segment: readers of the log (`cat`, `verify`, `cat --follow`,
    /// [`segments`](logcut_format::segments)) know it and list the
    /// segment once. That segment is shipped and indexed at the shutdown
    /// but not compressed or deleted by retention: either would leave
    /// `app.log` holding records the log no longer lists there. The next
    /// start removes the name and does both. Do not write to `app.log`
    /// while no appender has it: that changes a sealed segment, which
    /// `verify` reports. Off: the last segment is renamed to its sealed
    /// name, and the active path is empty until the next start. Where the
    /// file system has no hard links, it is renamed either way.
    pub fn keep_active_name(mut self, on: bool) -> Self {
        self.keep_active_name = on;
        self
    }

    /// Rotate whenever `path` is created, written, touched or renamed into
    /// place (a cron job's `touch`, `logcut rotate`). The file's directory
    /// need not exist yet; the watch survives the file and its directory
    /// being deleted and created again.
    ///
    /// A burst of triggers is merged: a trigger cuts the active segment if
    /// it holds at least one record, and triggers that arrive before the
    /// background thread acts on the first are merged into that cut. So a
    /// trigger that arrives after a record was written always cuts (that
    /// record is sealed), and a thousand touches in a second produce no
    /// empty segment.
    ///
    /// The path is recorded in the lock file `<dir>/<name>.lock`, where
    /// `logcut rotate` finds it.
    ///
    /// With [`shared`](Self::shared), the appenders that watch a trigger
    /// file take turns: the one holding `<dir>/<name>.trigger-lock` acts
    /// on the events, so one touch cuts once.
    #[cfg(feature = "trigger")]
    pub fn trigger_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trigger = Some(path.into());
        self
    }

    /// Handle SIGUSR1 (rotate, like a trigger) and SIGHUP (reopen: see
    /// [`Appender::reopen`]), for `kill -USR1` and logrotate's `postrotate`
    /// scripts. The signal handler only records the signal; a thread of the
    /// appender does the work. Off by default: signals belong to the
    /// application. After shutdown these signals are ignored (the handler
    /// cannot be removed), not restored to their default action.
    #[cfg(feature = "signals")]
    pub fn signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// Compress sealed segments in the background: see [`Compression`].
    /// A segment is compressed once its seal is durable, on threads of
    /// its own ([`compress_threads`](Self::compress_threads)), never on the
    /// write path; it is replaced crash-safely (the crate docs'
    /// Guarantees). [`Stats::compress_backlog`](crate::Stats::compress_backlog)
    /// shows how many wait. By default, [`Compression::None`].
    pub fn compress(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// How many threads compress sealed segments. By default, 1.
    pub fn compress_threads(mut self, threads: usize) -> Self {
        self.compress_threads = threads;
        self
    }

    /// Index the values of these JSON fields in every sealed segment, so
    /// that a search for one value (`logcut grep --field trace_id=ID`)
    /// skips the segments that cannot hold it. Each is a field name
    /// (ASCII letters, digits, `_`, `-`), indexed at any depth of a line:
    /// `trace_id` covers `span.trace_id` too. The index, a Bloom filter of
    /// about 10 bits per distinct value, is written beside the segment as
    /// `<sealed name>.idx` and recorded in the manifest; see
    /// [`logcut_format::index`]. It is built on a compression thread
    /// ([`compress_threads`](Self::compress_threads)), in the same read
    /// as the compression, never on the write path. By default, none: a
    /// log of JSON lines such as `JsonLayer` (feature `json`) writes
    /// wants `["trace_id"]`.
    pub fn index_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.index = fields.into_iter().map(Into::into).collect();
        self
    }

    /// The log's name (`name`).
    pub(crate) fn log_name(&self) -> &str {
        &self.name
    }

    /// Ship every sealed segment (once indexed and compressed, as
    /// configured) with `uploader`, on the runtime's shipping threads
    /// (at most 4 uploads of this log at once; see
    /// [`RuntimeBuilder::ship_threads`](crate::RuntimeBuilder::ship_threads)),
    /// recording each in
    /// the manifest (`ship` entry: key, entity tag, SHA-256); failed
    /// uploads are tried again after the [`backoff`](Self::backoff), and a
    /// segment not recorded as shipped at shutdown is shipped by the next
    /// start. No retention limit deletes a segment before it is shipped;
    /// the free-space floor ([`min_free`](Self::min_free)) does when the
    /// disk is about to fill, and records it (`disk-pressure-unshipped`,
    /// which `verify` reports). Not for a shared log (yet).
    #[cfg(feature = "ship")]
    pub fn ship(mut self, uploader: Arc<dyn crate::sealed::ship::Ship>) -> Self {
        self.ship = Some(uploader);
        self
    }

    /// See `Config::always_keep`.
    pub(crate) fn always_keep(mut self) -> Self {
        self.always_keep = true;
        self
    }

    /// For tests only, not part of the API: `hook` runs on a compression
    /// thread before each segment it compresses, with the segment's file
    /// name. It exists so that tests can hold a compression up (block in
    /// the hook) and show that nothing else waits for it.
    #[doc(hidden)]
    pub fn before_compress(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.before_compress = Some(Arc::new(hook));
        self
    }

    /// Keep at most `segments` sealed segments: older ones are deleted,
    /// oldest first, and each deletion recorded in the manifest. The
    /// active segment is not counted and never deleted. By default, no
    /// limit.
    pub fn keep(mut self, segments: usize) -> Self {
        self.retention.keep = Some(segments);
        self
    }

    /// Delete sealed segments sealed longer than `age` ago (by the
    /// appender's [`clock`](Self::clock)), oldest first. By default, no
    /// limit.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.retention.max_age = Some(age);
        self
    }

    /// Delete the oldest sealed segments while all of them together take
    /// more than `bytes` on disk (compressed ones at their compressed
    /// size; the active segment is not counted). By default, no limit.
    pub fn max_total(mut self, bytes: u64) -> Self {
        self.retention.max_total = Some(bytes);
        self
    }

    /// A free-space floor: delete the oldest sealed segments while the file
    /// system holding the log has less than `bytes` free (to unprivileged
    /// users), so that old segments go before the disk fills. Looked at
    /// after each seal and compression. The active segment is never
    /// deleted, so a disk filled by something else can still fill. By
    /// default, no floor.
    pub fn min_free(mut self, bytes: u64) -> Self {
        self.retention.min_free = Some(bytes);
        self
    }

    /// Checks the configuration, creates the directory, recovers what an
    /// earlier run left behind, opens the active segment and prepares the
    /// next one.
    ///
    /// Fails with a configuration error ([`Error::is_config`]) naming the
    /// field when a setting is invalid, and with an I/O error naming the
    /// path when the directory or the active file cannot be used.
    pub fn build(self) -> Result<Appender, Error> {
        let cfg = self.validate()?;
        Appender::start(cfg)
    }

    /// Checks the configuration as [`build`](Self::build) does, and fails
    /// with the same configuration error, without creating or changing
    /// anything: for a program that prepares files of its own in the
    /// directory (a trigger file) and must not do so for a configuration
    /// that `build` will refuse.
    ///
    /// ```
    /// let b = logcut::Appender::builder().dir("/tmp/never-created").name("../x");
    /// assert_eq!(b.check().unwrap_err().config_field(), Some("name"));
    /// assert!(!std::path::Path::new("/tmp/never-created").exists());
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        self.clone().validate().map(drop)
    }

    /// The size limit, the minimum size for time cuts, the interval.
    fn check_limits(&self) -> Result<(), Error> {
        if self.max_size == Some(0) {
            return Err(Error::config(
                "max_size",
                "the size limit is zero; give at least 1 byte, or call .no_max_size() for no limit",
            ));
        }
        if let Some(iv) = &self.interval {
            iv.validate()?;
        }
        if let Some(max) = self.max_size {
            if self.min_size > max {
                return Err(Error::config(
                    "min_size",
                    format!(
                        "the minimum size for time cuts ({}) is above the size limit ({max})",
                        self.min_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The memory bounds and the permission bits of what is created.
    fn check_memory_and_modes(&self) -> Result<(), Error> {
        if self.buffer_size == 0 {
            return Err(Error::config(
                "buffer_size",
                "the buffer size is zero; give at least 4096 bytes",
            ));
        }
        if self.max_held == 0 {
            return Err(Error::config("max_held", "zero; give at least 4096 bytes"));
        }
        if self.file_mode & !0o777 != 0 || self.file_mode & 0o600 != 0o600 {
            return Err(Error::config(
                "file_mode",
                format!(
                    "{:o} is not a file mode the owner can read and write; use something like 0o640",
                    self.file_mode
                ),
            ));
        }
        if self.dir_mode & !0o777 != 0 || self.dir_mode & 0o700 != 0o700 {
            return Err(Error::config(
                "dir_mode",
                format!(
                    "{:o} is not a directory mode the owner can use; use something like 0o750",
                    self.dir_mode
                ),
            ));
        }
        Ok(())
    }

    /// The fsync interval and the backoff.
    fn check_timing(&self) -> Result<(), Error> {
        if let Fsync::Every(d) = self.fsync {
            if d.is_zero() {
                return Err(Error::config(
                    "fsync",
                    "Fsync::Every with a zero interval; use Fsync::Always instead",
                ));
            }
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(Error::config(
                "backoff",
                "the minimum must be above zero and at most the maximum",
            ));
        }
        Ok(())
    }

    /// The interval of the active path's check (50 ms by default in shared
    /// mode, which follows other processes' cuts by it).
    fn watch_interval_checked(&self) -> Result<Option<Duration>, Error> {
        let watch_interval = if self.shared && !self.watch_interval_set {
            Some(Duration::from_millis(50))
        } else {
            self.watch_interval
        };
        if self.shared && watch_interval.is_none() {
            return Err(Error::config(
                "watch_interval",
                "None with shared(true): a shared log is followed by these checks; give an interval such as 50 ms",
            ));
        }
        if watch_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                "watch_interval",
                "zero; give an interval such as 500 ms, or None to never check",
            ));
        }
        Ok(watch_interval)
    }

    /// Compression and retention.
    fn check_keeping(&self) -> Result<(), Error> {
        self.compression.validate()?;
        for f in &self.index {
            logcut_format::index::validate_key(f).map_err(|m| Error::config("index_fields", m))?;
        }
        if self.index.len() > 16 {
            return Err(Error::config(
                "index_fields",
                "more than 16 fields; index the few a search looks for (trace_id, a user id)",
            ));
        }
        if self.compress_threads == 0 {
            return Err(Error::config(
                "compress_threads",
                "zero threads; give at least 1",
            ));
        }
        if self.retention.keep == Some(0) {
            return Err(Error::config(
                "keep",
                "keeping 0 sealed segments deletes every segment at once; give at least 1",
            ));
        }
        if self.retention.max_age.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                "max_age",
                "zero; give a positive age such as 7 days",
            ));
        }
        if self.retention.max_total == Some(0) {
            return Err(Error::config("max_total", "zero; give at least 1 byte"));
        }
        if self.retention.min_free == Some(0) {
            return Err(Error::config(
                "min_free",
                "zero is no floor; give a size such as 1 GiB, or leave it unset",
            ));
        }
        Ok(())
    }

    fn validate(self) -> Result<Config, Error> {
        let dir = check_dir(self.dir.as_deref())?;
        logcut_format::name::validate_name(&self.name).map_err(|m| Error::config("name", m))?;
        self.check_limits()?;
        let tz = match &self.tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                Error::config("time_zone", format!("{name:?} is not a known time zone ({e}); use an IANA name such as Europe/Berlin"))
            })?,
        };
        self.check_memory_and_modes()?;
        self.check_timing()?;
        let watch_interval = self.watch_interval_checked()?;
        let trigger = trigger_path(self.trigger.as_deref())?;
        self.check_keeping()?;
        Ok(Config {
            trigger,
            signals: self.signals,
            watch_interval,
            shared: self.shared,
            keep_active_name: self.keep_active_name,
            dir,
            name: self.name,
            max_size: self.max_size,
            interval: self.interval,
            tz,
            min_size: self.min_size,
            mode: self.mode,
            fsync: self.fsync,
            buffer_size: self.buffer_size,
            max_held: self.max_held,
            file_mode: self.file_mode,
            dir_mode: self.dir_mode,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            shutdown_timeout: self.shutdown_timeout,
            clock: self.clock,
            handler: self.handler,
            compression: self.compression,
            compress_threads: self.compress_threads,
            index: self.index,
            always_keep: self.always_keep,
            ship: self.ship,
            before_compress: self.before_compress,
            retention: self.retention,
            runtime: self.runtime,
        })
    }
}

/// The log directory: given, not empty, and not a file.
fn check_dir(dir: Option<&std::path::Path>) -> Result<PathBuf, Error> {
    let dir = dir.ok_or_else(|| Error::config("dir", "no directory was given; call .dir(path)"))?;
    if dir.as_os_str().is_empty() {
        return Err(Error::config(
            "dir",
            "the directory is empty; give a path such as /var/log/app",
        ));
    }
    if let Ok(md) = std::fs::metadata(dir) {
        if !md.is_dir() {
            return Err(Error::config(
                "dir",
                format!(
                    "{} exists and is not a directory; give a directory",
                    dir.display()
                ),
            ));
        }
    }
    Ok(dir.to_path_buf())
}

/// The trigger file, made absolute (so that a later change of the working
/// directory does not move the watch, and tools reading the lock file find
/// it): a file's path, not a directory.
fn trigger_path(t: Option<&std::path::Path>) -> Result<Option<PathBuf>, Error> {
    let Some(t) = t else {
        return Ok(None);
    };
    if t.as_os_str().is_empty() || t.file_name().is_none() {
        return Err(Error::config(
            "trigger_file",
            format!(
                "{:?} does not name a file; give a path such as /var/log/app/rotate.trigger",
                t
            ),
        ));
    }
    let abs = std::path::absolute(t)
        .map_err(|e| Error::config("trigger_file", format!("{}: {e}", t.display())))?;
    if abs.is_dir() {
        return Err(Error::config(
            "trigger_file",
            format!("{} is a directory; give a file path", abs.display()),
        ));
    }
    Ok(Some(abs))
}
