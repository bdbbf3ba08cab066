//! A `log::Log` backend (feature `log`).

use std::{cell::RefCell, io::Write as _};

use crate::Appender;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
#[derive(Debug, Clone)]
pub struct LogBackend {
    appender: Appender,
    level: log::LevelFilter,
}

impl LogBackend {
    /// A backend that logs everything at `Trace` and above to `appender`.
    pub fn new(appender: Appender) -> LogBackend {
        LogBackend {
            appender,
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

    /// Formats one record as its line.
    fn format(&self, out: &mut Vec<u8>, record: &log::Record<'_>) {
        let now = self.appender.now();
        let _ = writeln!(
            out,
            "{now} {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
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
            b.clear();
            self.format(&mut b, record);
            // Errors (only after shutdown) are counted in the stats.
            let _ = self.appender.write_record(&b);
            true
        });
        if reused != Ok(true) {
            // Re-entered (a Display impl that logs), or during thread exit.
            let mut b = Vec::new();
            self.format(&mut b, record);
            let _ = self.appender.write_record(&b);
        }
    }

    fn flush(&self) {
        let _ = self.appender.flush_records();
    }
}
