//! `tracing_subscriber::fmt::MakeWriter` for [`Appender`] (feature `tracing`).
//!
//! A formatter may emit one event in several `write` calls; the writer made
//! for the event collects them and hands the whole event to the appender as
//! one record when it is dropped, at the end of the event. So events are
//! never interleaved with each other, and never split across two segments.

use std::{cell::RefCell, io};

use tracing_subscriber::fmt::MakeWriter;

use crate::Appender;

thread_local! {
    /// A buffer per thread, reused from event to event.
    static EVENT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The writer for one tracing event: collects its bytes, and writes them as
/// one record when dropped. Errors (only after shutdown) are counted in
/// [`Stats::records_rejected`](crate::Stats::records_rejected).
#[derive(Debug)]
pub struct EventWriter<'a> {
    appender: &'a Appender,
    buf: Vec<u8>,
}

impl io::Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // Nobody to return the error to; it is counted in the stats.
            let _ = self.appender.write_record(&self.buf);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Keep the allocation for the next event, unless it grew huge.
        if buf.capacity() <= 64 * 1024 {
            let _ = EVENT_BUF.try_with(|b| {
                if let Ok(mut b) = b.try_borrow_mut() {
                    *b = buf;
                }
            });
        }
    }
}

impl<'a> MakeWriter<'a> for Appender {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        let buf = EVENT_BUF.try_with(|b| {
            b.try_borrow_mut()
                .map(|mut b| std::mem::take(&mut *b))
                .unwrap_or_default()
        });
        EventWriter {
            appender: self,
            buf: buf.unwrap_or_default(),
        }
    }
}
