//! Where background errors go: a closure or a channel of the user's.

use std::sync::mpsc;

use crate::Error;

/// Receives the errors that happen away from the caller: a next segment that
/// cannot be created, a write that fails and is being retried, a seal that
/// cannot be recorded.
///
/// It is called from the appender's background thread, never from a thread
/// that is writing a record, so it may take its time; it must not write to
/// the same appender (that record would wait behind the failure it reports).
///
/// Implemented for closures and for the sending half of a channel:
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("logcut-doc-handler-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # // What a crashed run leaves: an active segment nobody sealed.
/// # std::fs::create_dir_all(&dir)?;
/// # std::fs::write(dir.join("app.log"), b"left by a crash\n")?;
/// let (tx, rx) = std::sync::mpsc::channel::<logcut::Error>();
/// let appender = logcut::Appender::builder().dir(&dir).error_handler(tx).build()?;
/// # let mut repairs = 0;
/// // Elsewhere, such as on a thread of its own:
/// for e in rx.try_iter() {
///     if e.is_repair() {
///         // What the start repaired after a crash ("recovered ...").
/// #       assert!(e.to_string().contains("adopted app.log"), "{e}");
/// #       repairs += 1;
///     } else {
///         // A failure: a disk that is full, a segment that cannot be created.
/// #       panic!("{e}");
///     }
/// }
/// # assert_eq!(repairs, 1);
/// # appender.shutdown()?;
/// # assert_eq!(logcut_format::read_all(&dir, "app")?, b"left by a crash\n");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ErrorHandler: Send + Sync + 'static {
    /// Handles one error.
    fn handle(&self, error: Error);
}

impl<F> ErrorHandler for F
where
    F: Fn(Error) + Send + Sync + 'static,
{
    fn handle(&self, error: Error) {
        self(error)
    }
}

impl ErrorHandler for mpsc::Sender<Error> {
    fn handle(&self, error: Error) {
        // A receiver that went away wants no more errors.
        let _ = self.send(error);
    }
}

impl ErrorHandler for mpsc::SyncSender<Error> {
    /// Never blocks the background thread: when the channel is full, the
    /// error is dropped (it is still counted in the stats).
    fn handle(&self, error: Error) {
        let _ = self.try_send(error);
    }
}
