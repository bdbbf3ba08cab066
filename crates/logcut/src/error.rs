//! The one error type of the library.

use std::{fmt, io, path::PathBuf, sync::Arc};

/// The error type of logcut.
///
/// Every error names the operation that failed (`"create next segment"`,
/// `"write record"`, `"seal"`, ...) and, where there is one, the path. It is
/// one pointer wide and cheap to clone, so it can be both returned and handed
/// to an [`ErrorHandler`](crate::ErrorHandler).
///
/// ```
/// let err = logcut::Appender::builder().name("a/b").dir("/tmp/x").build().unwrap_err();
/// assert!(err.is_config());
/// assert_eq!(err.config_field(), Some("name"));
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    op: &'static str,
    path: Option<PathBuf>,
}

enum Kind {
    Io(io::Error),
    Config { field: &'static str, msg: String },
    Format(logcut_format::Error),
    Shutdown,
    Lost { records: u64, bytes: u64 },
    Repaired(String),
}

/// A shorthand for `Result<T, logcut::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn new(kind: Kind, op: &'static str, path: Option<PathBuf>) -> Error {
        Error {
            inner: Arc::new(Inner { kind, op, path }),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, err: io::Error) -> Error {
        Error::new(Kind::Io(err), op, Some(path.into()))
    }

    pub(crate) fn config(field: &'static str, msg: impl Into<String>) -> Error {
        Error::new(
            Kind::Config {
                field,
                msg: msg.into(),
            },
            "configure appender",
            None,
        )
    }

    pub(crate) fn shutdown(op: &'static str) -> Error {
        Error::new(Kind::Shutdown, op, None)
    }

    pub(crate) fn lost(path: impl Into<PathBuf>, records: u64, bytes: u64) -> Error {
        Error::new(
            Kind::Lost { records, bytes },
            "shut down",
            Some(path.into()),
        )
    }

    /// Not a failure: a repair made at start of something an earlier run
    /// left behind (see [`Error::is_repair`]).
    pub(crate) fn repaired(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::new(Kind::Repaired(msg.into()), "recover", Some(path.into()))
    }

    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        self.inner.op
    }

    /// The path concerned, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// Returns true if and only if the operating system reported the error.
    pub fn is_io(&self) -> bool {
        match &self.inner.kind {
            Kind::Io(_) => true,
            Kind::Format(e) => e.is_io(),
            _ => false,
        }
    }

    /// Returns true if and only if the configuration given to the builder is
    /// invalid. [`Error::config_field`] names the field.
    pub fn is_config(&self) -> bool {
        matches!(self.inner.kind, Kind::Config { .. })
    }

    /// Returns true if and only if something on disk is malformed (a
    /// manifest that is not one, for example).
    pub fn is_corrupt(&self) -> bool {
        matches!(&self.inner.kind, Kind::Format(e) if e.is_corrupt())
    }

    /// Returns true if and only if the appender was already shut down.
    pub fn is_shutdown(&self) -> bool {
        matches!(self.inner.kind, Kind::Shutdown)
    }

    /// Returns true if and only if records were lost (counted in the stats
    /// and recorded in the manifest).
    pub fn is_lost(&self) -> bool {
        matches!(self.inner.kind, Kind::Lost { .. })
    }

    /// Returns true if and only if this is not a failure but the report of
    /// a repair that succeeded: at start, the appender finished or undid
    /// what a crashed run left (adopted a leftover segment, cut off a torn
    /// manifest line, recorded a finished compression). Such reports go to
    /// the [`ErrorHandler`](crate::ErrorHandler) like errors, and read
    /// "recovered PATH: what was done".
    pub fn is_repair(&self) -> bool {
        matches!(self.inner.kind, Kind::Repaired(_))
    }

    /// The builder field a configuration error is about.
    pub fn config_field(&self) -> Option<&'static str> {
        match &self.inner.kind {
            Kind::Config { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The underlying I/O error, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.inner.kind {
            Kind::Io(e) => Some(e),
            Kind::Format(e) => e.io_error(),
            _ => None,
        }
    }

    /// The raw OS error code, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_error().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.kind {
            Kind::Config { field, msg } => write!(f, "invalid `{field}`: {msg}"),
            Kind::Format(e) => fmt::Display::fmt(e, f),
            Kind::Shutdown => write!(f, "{} failed: the appender is shut down", self.inner.op),
            Kind::Lost { records, bytes } => {
                write!(
                    f,
                    "{} lost {records} records ({bytes} bytes)",
                    self.inner.op
                )?;
                if let Some(p) = &self.inner.path {
                    write!(f, " of {}", p.display())?;
                }
                write!(
                    f,
                    "; they are counted in the stats and recorded in the manifest"
                )
            }
            Kind::Repaired(msg) => {
                f.write_str("recovered")?;
                if let Some(p) = &self.inner.path {
                    write!(f, " {}", p.display())?;
                }
                write!(f, ": {msg}")
            }
            Kind::Io(e) => {
                write!(f, "{} failed", self.inner.op)?;
                if let Some(p) = &self.inner.path {
                    write!(f, " for {}", p.display())?;
                }
                write!(f, ": {e}")
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.kind {
            Kind::Io(e) => Some(e),
            Kind::Format(e) => Some(e),
            _ => None,
        }
    }
}

impl From<logcut_format::Error> for Error {
    fn from(e: logcut_format::Error) -> Error {
        let op = e.operation();
        let path = e.path().map(PathBuf::from);
        Error::new(Kind::Format(e), op, path)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e.inner.kind {
            Kind::Io(err) => err.kind(),
            Kind::Config { .. } => io::ErrorKind::InvalidInput,
            Kind::Format(err) if err.is_corrupt() => io::ErrorKind::InvalidData,
            Kind::Format(err) => err.io_error().map_or(io::ErrorKind::Other, io::Error::kind),
            Kind::Shutdown => io::ErrorKind::BrokenPipe,
            Kind::Lost { .. } | Kind::Repaired(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_operation_and_path() {
        let e = Error::io(
            "create next segment",
            "/x/app.log.next",
            io::Error::from_raw_os_error(28),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("create next segment failed for /x/app.log.next: "),
            "{s}"
        );
        assert!(e.is_io());
        assert_eq!(e.raw_os_error(), Some(28));
        let io: io::Error = e.into();
        assert_eq!(io.raw_os_error(), None);
        assert_eq!(io.kind(), io::ErrorKind::StorageFull);
    }
}
