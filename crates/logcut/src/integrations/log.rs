//! A `log::Log` backend (feature `log`).

use std::{cell::RefCell, io::Write as _};

use crate::{Appender, Router};

/// A record's line and its key-values.
type Scratch = (Vec<u8>, Vec<(String, String)>);

thread_local! {
    /// A record's line and key-values, reused.
    static LINE: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Sends `log` records to an [`Appender`], one line per record:
///
/// ```text
/// 2026-11-24T10:00:00.123456789Z INFO  my_crate::module: the message
/// ```
///
/// The timestamp comes from the appender's [`Clock`](crate::Clock), in UTC.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("logcut-doc-log-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let appender = logcut::Appender::builder().dir(&dir).build()?;
/// logcut::LogBackend::new(appender.clone()).max_level(log::LevelFilter::Info).install()?;
/// log::info!("hello");
/// log::debug!("not logged: below the level");
/// # appender.shutdown()?;
/// # let text = String::from_utf8(logcut_format::read_all(&dir, "app")?)?;
/// # let (time, rest) = text.split_once(' ').unwrap();
/// # assert!(time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'), "{text:?}");
/// # assert!(rest.starts_with("INFO  ") && rest.ends_with(": hello\n"), "{text:?}");
/// # assert_eq!(text.lines().count(), 1, "{text:?}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A record's key-values (`log::info!(order = 7; "paid")`) follow the
/// message as ` key=value`. With [`routed`](Self::routed), they also pick
/// the tenant's log.
#[derive(Debug, Clone)]
pub struct LogBackend {
    sink: Sink,
    level: log::LevelFilter,
}

/// Where records go.
#[derive(Debug, Clone)]
enum Sink {
    One(Appender),
    /// Each to the log its key-values select.
    Routed(Router),
}

impl LogBackend {
    /// A backend that logs everything at `Trace` and above to `appender`.
    pub fn new(appender: Appender) -> LogBackend {
        LogBackend {
            sink: Sink::One(appender),
            level: log::LevelFilter::Trace,
        }
    }

    /// A backend that sends each record to the log `router` picks from
    /// its key-values: `log::info!(tenant = "acme"; "paid")` goes to
    /// tenant `acme`'s log (the router's
    /// [`tenant_field`](crate::RouterBuilder::tenant_field)), under the
    /// group its [`RoutingTable`](crate::RoutingTable) gives those
    /// key-values. Timestamps come from the system clock.
    ///
    /// ```
    /// # let root = std::env::temp_dir().join(format!("logcut-doc-log-routed-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&root);
    /// let router = logcut::Router::builder(&root)
    ///     .group("default", logcut::Appender::builder())
    ///     .build()?;
    /// logcut::LogBackend::routed(router.clone()).install()?;
    /// log::info!(tenant = "acme"; "paid");
    /// log::logger().flush();
    /// # router.shutdown()?;
    /// # let text = String::from_utf8(logcut_format::read_all(&root.join("default/acme"), "app")?)?;
    /// # assert!(text.ends_with(": paid tenant=acme\n"), "{text:?}");
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn routed(router: Router) -> LogBackend {
        LogBackend {
            sink: Sink::Routed(router),
            level: log::LevelFilter::Trace,
        }
    }

    /// Only records at `level` or more severe.
    pub fn max_level(mut self, level: log::LevelFilter) -> LogBackend {
        self.level = level;
        self
    }

    /// Installs this backend as the global logger and sets the global
    /// maximum level. Fails if a logger was already installed.
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        let level = self.level;
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(level);
        Ok(())
    }

    /// Formats one record as its line; its key-values go to `kv`.
    fn format(&self, out: &mut Vec<u8>, kv: &mut Vec<(String, String)>, record: &log::Record<'_>) {
        let now = match &self.sink {
            Sink::One(a) => a.now(),
            Sink::Routed(_) => jiff::Timestamp::now(),
        };
        let _ = write!(
            out,
            "{now} {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
        kv.clear();
        let _ = record.key_values().visit(&mut Collect(kv));
        for (k, v) in kv.iter() {
            let _ = write!(out, " {k}={v}");
        }
        out.push(b'\n');
    }

    /// Writes one formatted line. Errors (only after shutdown) are counted
    /// in the stats.
    fn write(&self, line: &[u8], kv: &[(String, String)]) {
        match &self.sink {
            Sink::One(a) => {
                let _ = a.write_record(line);
            }
            Sink::Routed(r) => {
                let fields: Vec<(&str, &str)> =
                    kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let _ = r.write_to(&fields, line);
            }
        }
    }
}

/// Collects a record's key-values as text.
struct Collect<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

impl log::Log for LogBackend {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let reused = LINE.try_with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let (line, kv) = &mut *b;
            line.clear();
            self.format(line, kv, record);
            self.write(line, kv);
            true
        });
        if reused != Ok(true) {
            // Re-entered (a Display impl that logs), or during thread exit.
            let (mut line, mut kv) = (Vec::new(), Vec::new());
            self.format(&mut line, &mut kv, record);
            self.write(&line, &kv);
        }
    }

    fn flush(&self) {
        match &self.sink {
            Sink::One(a) => {
                let _ = a.flush_records();
            }
            Sink::Routed(r) => r.flush(),
        }
    }
}
