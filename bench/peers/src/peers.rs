//! Each target, driven the way its documentation recommends, configured to
//! keep every file of the run.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::{Arc, Mutex},
};

/// The targets, in the table's order: the limits first, then logcut, then
/// the peers.
pub(crate) const NAMES: &[&str] = &[
    "file",
    "bufwriter",
    "fmt-bufwriter",
    "fdatasync-limit",
    "logcut-raw-never",
    "logcut-raw-default",
    "logcut-raw-sealed",
    "logcut-tracing",
    "logcut-log",
    "tracing-appender",
    "tracing-appender-nb-lossy",
    "tracing-appender-nb-lossless",
    "flexi-direct",
    "flexi-buffered",
    "log4rs",
    "file-rotate",
    "rolling-file",
    "spdlog-sync",
    "spdlog-async",
];

/// What the table says next to a target's name.
pub(crate) fn note(target: &str) -> &'static str {
    match target {
        "file" | "bufwriter" => " (limit, no rotation)",
        "fmt-bufwriter" => " (tracing fmt limit, no rotation)",
        "fdatasync-limit" => " (disk limit: each segment written whole, then fdatasync'd)",
        t if t.starts_with("tracing-appender") => " (rotates by time only)",
        "logcut-raw-default" => " (Buffered, Fsync::AtSeal)",
        "logcut-raw-sealed" => " (Buffered, Fsync::AtSeal, sealed manifest)",
        t if t.starts_with("logcut") => " (Buffered, Fsync::Never)",
        _ => "",
    }
}

/// How a target is driven, so that the summary compares like with like.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Style {
    /// A limit, not a peer.
    Limit,
    /// Whole records written to an `io::Write`.
    Raw,
    /// Through the `log` macros (or the crate's own macros).
    Log,
    /// Through `tracing` and its fmt subscriber.
    Tracing,
}

pub(crate) fn style(target: &str) -> Style {
    match target {
        "file" | "bufwriter" | "fmt-bufwriter" | "fdatasync-limit" => Style::Limit,
        "logcut-raw-never" | "logcut-raw-default" | "logcut-raw-sealed" | "file-rotate"
        | "rolling-file" => Style::Raw,
        t if t.starts_with("tracing") || t == "logcut-tracing" => Style::Tracing,
        _ => Style::Log,
    }
}

/// Whether a target can be the fastest peer of a rotating configuration:
/// not logcut, not a limit, and able to cut by size.
pub(crate) fn rotating_peer(target: &str) -> bool {
    style(target) != Style::Limit
        && !target.starts_with("logcut")
        && !target.starts_with("tracing-appender")
}

/// A way to write one record.
pub(crate) trait Sink: Send + Sync {
    /// Writes `msg` (without its newline) as one record.
    fn write(&self, msg: &str);
    /// Flushes and shuts down, as the documentation says to at exit.
    fn finish(&self) {}
}

/// A size limit for those that must have one: none in effect.
const HUGE: u64 = u64::MAX / 4;

/// Opens `target` for a run of `records` records of up to `len` bytes
/// (its own prefix included) in `dir`, cut every `segment` bytes (0: never).
pub(crate) fn open(
    target: &str,
    dir: &Path,
    segment: u64,
    records: u64,
    len: u64,
) -> Arc<dyn Sink> {
    let size = if segment == 0 { HUGE } else { segment };
    // The rollers that rename every kept file at each cut (log4rs,
    // rolling-file) loop over the whole window, so the window is as many
    // files as the run can make, and no more.
    let window = (records * len)
        .checked_div(segment)
        .map_or(2, |n| n as usize + 16);
    match target {
        "file" => Arc::new(Raw(Mutex::new(file(dir)))),
        "bufwriter" => Arc::new(Raw(Mutex::new(BufWriter::new(file(dir))))),
        "fdatasync-limit" => Arc::new(Raw(Mutex::new(Synced::new(dir, segment)))),
        "fmt-bufwriter" => {
            let w = Arc::new(Mutex::new(BufWriter::new(file(dir))));
            fmt(Shared(w.clone()));
            Arc::new(Tracing(Some(Box::new(move || {
                let _ = w.lock().unwrap().flush();
            }))))
        }
        "logcut-raw-never" => Arc::new(Logcut(appender(dir, segment, true))),
        "logcut-raw-default" => Arc::new(Logcut(appender(dir, segment, false))),
        "logcut-raw-sealed" => {
            // As `logcut keygen DIR` does: the appender seals from its start.
            let epoch = std::time::Duration::from_secs(15 * 60);
            logcut_format::sealing::keygen(dir, "app", epoch, jiff::Timestamp::now())
                .expect("keygen");
            Arc::new(Logcut(appender(dir, segment, false)))
        }
        "logcut-tracing" => {
            let a = appender(dir, segment, true);
            fmt(a.clone());
            Arc::new(Tracing(Some(Box::new(move || {
                let _ = a.shutdown();
            }))))
        }
        "logcut-log" => {
            let a = appender(dir, segment, true);
            logcut::LogBackend::new(a.clone())
                .install()
                .expect("install logger");
            Arc::new(Log(Finish::Logcut(a)))
        }
        "tracing-appender" => {
            let w = tracing_appender::rolling::RollingFileAppender::builder()
                .rotation(tracing_appender::rolling::Rotation::NEVER)
                .filename_prefix("app.log")
                .build(dir)
                .expect("tracing-appender");
            fmt(w);
            Arc::new(Tracing(None))
        }
        "tracing-appender-nb-lossy" | "tracing-appender-nb-lossless" => {
            let w = tracing_appender::rolling::never(dir, "app.log");
            let (nb, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(target.ends_with("-lossy"))
                .finish(w);
            fmt(nb);
            Arc::new(Guarded(Tracing(None), Mutex::new(Some(guard))))
        }
        "flexi-direct" | "flexi-buffered" => {
            use flexi_logger::{Cleanup, Criterion, FileSpec, Logger, Naming, WriteMode};
            let mut l = Logger::try_with_str("info")
                .expect("flexi_logger")
                .log_to_file(FileSpec::default().directory(dir).basename("app"))
                .write_mode(if target == "flexi-direct" {
                    WriteMode::Direct
                } else {
                    WriteMode::BufferAndFlush
                });
            if segment > 0 {
                l = l.rotate(Criterion::Size(segment), Naming::Numbers, Cleanup::Never);
            }
            let handle = l.start().expect("flexi_logger start");
            Arc::new(Log(Finish::Flexi(Mutex::new(Some(handle)))))
        }
        "log4rs" => {
            use log4rs::{
                append::rolling_file::{
                    RollingFileAppender,
                    policy::compound::{
                        CompoundPolicy, roll::fixed_window::FixedWindowRoller,
                        trigger::size::SizeTrigger,
                    },
                },
                config::{Appender, Config, Root},
                encode::pattern::PatternEncoder,
            };
            let pattern = dir.join("app.{}.log").display().to_string();
            let roller = FixedWindowRoller::builder()
                .build(&pattern, window as u32)
                .expect("log4rs roller");
            let policy = CompoundPolicy::new(Box::new(SizeTrigger::new(size)), Box::new(roller));
            let file = RollingFileAppender::builder()
                .encoder(Box::new(PatternEncoder::new("{d} {l} {m}{n}")))
                .build(dir.join("app.log"), Box::new(policy))
                .expect("log4rs appender");
            let config = Config::builder()
                .appender(Appender::builder().build("file", Box::new(file)))
                .build(
                    Root::builder()
                        .appender("file")
                        .build(log::LevelFilter::Info),
                )
                .expect("log4rs config");
            let handle = log4rs::init_config(config).expect("log4rs init");
            let _ = handle;
            Arc::new(Log(Finish::Log))
        }
        "file-rotate" => {
            use file_rotate::{
                ContentLimit, FileRotate, compression::Compression, suffix::AppendCount,
            };
            let limit = if segment == 0 {
                ContentLimit::None
            } else {
                ContentLimit::Bytes(segment as usize)
            };
            let w = FileRotate::new(
                dir.join("app.log"),
                AppendCount::new(usize::MAX),
                limit,
                Compression::None,
                None,
            );
            Arc::new(Raw(Mutex::new(w)))
        }
        "rolling-file" => {
            use rolling_file::{BasicRollingFileAppender, RollingConditionBasic};
            let w = BasicRollingFileAppender::new(
                dir.join("app.log"),
                RollingConditionBasic::new().max_size(size),
                window,
            )
            .expect("rolling-file");
            Arc::new(Raw(Mutex::new(w)))
        }
        "spdlog-sync" | "spdlog-async" => {
            use spdlog::{
                Logger,
                sink::{AsyncPoolSink, OverflowPolicy, RotatingFileSink, RotationPolicy},
            };
            let file = Arc::new(
                RotatingFileSink::builder()
                    .base_path(dir.join("app.log"))
                    .rotation_policy(RotationPolicy::FileSize(size))
                    // 0 is documented as "no limit", but then every cut
                    // truncates the file (spdlog-rs 0.4.3): the window
                    // keeps every file of the run instead.
                    .max_files(window)
                    .build()
                    .expect("spdlog sink"),
            );
            let sink: Arc<dyn spdlog::sink::Sink> = if target == "spdlog-async" {
                Arc::new(
                    AsyncPoolSink::builder()
                        .sink(file)
                        .overflow_policy(OverflowPolicy::Block)
                        .build()
                        .expect("spdlog async"),
                )
            } else {
                file
            };
            let logger = Arc::new(Logger::builder().sink(sink).build().expect("spdlog logger"));
            Arc::new(Spdlog(logger))
        }
        other => panic!("unknown target {other}"),
    }
}

fn file(dir: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(dir.join("app.log"))
        .expect("open file")
}

fn appender(dir: &Path, segment: u64, never: bool) -> logcut::Appender {
    let mut b = logcut::Appender::builder()
        .dir(dir)
        .mode(logcut::Mode::Buffered);
    b = if segment == 0 {
        b.no_max_size()
    } else {
        b.max_size(segment)
    };
    if never {
        b = b.fsync(logcut::Fsync::Never);
    }
    b.build().expect("logcut appender")
}

/// A `tracing` fmt subscriber writing to `w`, installed globally.
fn fmt<W>(w: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let s = tracing_subscriber::fmt()
        .with_writer(w)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(s).expect("install subscriber");
}

/// Raw writes of whole records to a writer behind a mutex.
struct Raw<W>(Mutex<W>);

impl<W: Write + Send> Sink for Raw<W> {
    fn write(&self, msg: &str) {
        let mut line = String::with_capacity(msg.len() + 1);
        line.push_str(msg);
        line.push('\n');
        let _ = self.0.lock().unwrap().write_all(line.as_bytes());
    }

    fn finish(&self) {
        let _ = self.0.lock().unwrap().flush();
    }
}

struct Logcut(logcut::Appender);

impl Sink for Logcut {
    fn write(&self, msg: &str) {
        let mut line = Vec::with_capacity(msg.len() + 1);
        line.extend_from_slice(msg.as_bytes());
        line.push(b'\n');
        let _ = self.0.write_record(&line);
    }

    fn finish(&self) {
        let _ = self.0.shutdown();
    }
}

/// `tracing::info!` through the global subscriber, and what to do at the
/// end (the global subscriber is never dropped).
struct Tracing(Option<Box<dyn Fn() + Send + Sync>>);

impl Sink for Tracing {
    fn write(&self, msg: &str) {
        tracing::info!("{msg}");
    }

    fn finish(&self) {
        if let Some(f) = &self.0 {
            f();
        }
    }
}

/// A `BufWriter` behind a mutex that the fmt subscriber writes to and the
/// end flushes.
struct Shared(Arc<Mutex<BufWriter<File>>>);

struct SharedGuard<'a>(std::sync::MutexGuard<'a, BufWriter<File>>);

impl Write for SharedGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Shared {
    type Writer = SharedGuard<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SharedGuard(self.0.lock().unwrap())
    }
}

/// A sink with the guard that flushes it when dropped.
struct Guarded<G>(Tracing, Mutex<Option<G>>);

impl<G: Send> Sink for Guarded<G> {
    fn write(&self, msg: &str) {
        self.0.write(msg);
    }

    fn finish(&self) {
        drop(self.1.lock().unwrap().take());
    }
}

enum Finish {
    Log,
    Logcut(logcut::Appender),
    Flexi(Mutex<Option<flexi_logger::LoggerHandle>>),
}

/// `log::info!` through the global logger.
struct Log(Finish);

impl Sink for Log {
    fn write(&self, msg: &str) {
        log::info!("{msg}");
    }

    fn finish(&self) {
        log::logger().flush();
        match &self.0 {
            Finish::Log => {}
            Finish::Logcut(a) => {
                let _ = a.shutdown();
            }
            Finish::Flexi(h) => {
                if let Some(h) = h.lock().unwrap().take() {
                    h.flush();
                    h.shutdown();
                }
            }
        }
    }
}

struct Spdlog(Arc<spdlog::Logger>);

impl Sink for Spdlog {
    fn write(&self, msg: &str) {
        spdlog::info!(logger: self.0, "{msg}");
    }

    fn finish(&self) {
        self.0.flush();
    }
}

/// The disk's limit for durable segments: a `BufWriter` over a new file
/// per `segment` bytes, each one `fdatasync`ed when full (and the last one
/// at the end). Nothing can make segments of that size durable faster.
struct Synced {
    dir: std::path::PathBuf,
    segment: u64,
    n: u64,
    written: u64,
    w: BufWriter<File>,
}

impl Synced {
    fn new(dir: &Path, segment: u64) -> Self {
        let w = BufWriter::with_capacity(64 << 10, file(dir));
        Synced {
            dir: dir.to_path_buf(),
            segment,
            n: 0,
            written: 0,
            w,
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.w.flush()?;
        self.w.get_ref().sync_data()
    }
}

impl Write for Synced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.write_all(buf)?;
        self.written += buf.len() as u64;
        if self.segment > 0 && self.written >= self.segment {
            self.sync()?;
            self.n += 1;
            let f = File::options()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("app.{}.log", self.n)))?;
            self.w = BufWriter::with_capacity(64 << 10, f);
            self.written = 0;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sync()
    }
}
