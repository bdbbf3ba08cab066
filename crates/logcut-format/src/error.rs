//! The error type of the on-disk format crate.

use std::{fmt, io, path::PathBuf, sync::Arc};

/// An error from reading or writing logcut's on-disk format.
///
/// It always names the operation that failed and, where there is one, the
/// path. It is cheap to clone.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    op: &'static str,
    path: Option<PathBuf>,
    kind: Kind,
}

enum Kind {
    Io(io::Error),
    Parse(String),
}

impl Error {
    /// An I/O error during `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, err: io::Error) -> Error {
        Error {
            inner: Arc::new(Inner {
                op,
                path: Some(path.into()),
                kind: Kind::Io(err),
            }),
        }
    }

    /// A parse error during `op` on `path`.
    pub fn parse(op: &'static str, path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error {
            inner: Arc::new(Inner {
                op,
                path: Some(path.into()),
                kind: Kind::Parse(msg.into()),
            }),
        }
    }

    /// The operation that failed, such as `"read manifest"`.
    pub fn operation(&self) -> &'static str {
        self.inner.op
    }

    /// The path the operation was working on, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// Returns true if and only if this error came from the operating system.
    pub fn is_io(&self) -> bool {
        matches!(self.inner.kind, Kind::Io(_))
    }

    /// Returns true if and only if this error is about malformed content.
    pub fn is_corrupt(&self) -> bool {
        matches!(self.inner.kind, Kind::Parse(_))
    }

    /// The underlying I/O error, if this is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.inner.kind {
            Kind::Io(e) => Some(e),
            Kind::Parse(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.inner.op)?;
        if let Some(p) = &self.inner.path {
            write!(f, " for {}", p.display())?;
        }
        match &self.inner.kind {
            Kind::Io(e) => write!(f, ": {e}"),
            Kind::Parse(m) => write!(f, ": {m}"),
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
            Kind::Parse(_) => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e.inner.kind {
            Kind::Io(err) => err.kind(),
            Kind::Parse(_) => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
