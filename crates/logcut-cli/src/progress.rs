//! Progress bars for long reads (`verify`, `cat`), on standard error.
//!
//! A bar is drawn only when standard error is a terminal, so scripts and
//! logs never see it, and only for directories large enough for the wait to
//! be noticed. It is cleared when the work ends.

use std::{
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

/// Below this many bytes a run is quick: no bar.
const MIN_BYTES: u64 = 32 << 20;

/// A byte-counting progress bar, or nothing.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for reading `total` bytes, labelled `what`; hidden unless
    /// standard error is a terminal and `total` is large.
    pub(crate) fn bytes(total: u64, what: &str) -> Progress {
        if total < MIN_BYTES || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Progress { bar: Some(bar) }
    }

    /// Returns true if and only if a bar is drawn.
    pub(crate) fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Counts `n` more bytes done.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Sets the bytes done so far.
    pub(crate) fn set(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    /// Runs `work` while a thread moves the bar by the bytes this process
    /// has read meanwhile (for work that has no progress hook of its own,
    /// such as `logcut_format::verify`; it reads each segment once).
    pub(crate) fn track_reads<T>(self, work: impl FnOnce() -> T) -> T {
        let Some(start) = self.bar.as_ref().and_then(|_| bytes_read()) else {
            return work();
        };
        let done = Arc::new(AtomicBool::new(false));
        let ticker: JoinHandle<Progress> = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(n) = bytes_read() {
                        self.set(n.saturating_sub(start));
                    }
                    std::thread::park_timeout(Duration::from_millis(100));
                }
                self
            })
        };
        let out = work();
        done.store(true, Ordering::Relaxed);
        ticker.thread().unpark();
        if let Ok(p) = ticker.join() {
            p.finish();
        }
        out
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Bytes this process has read through system calls so far (`rchar` in
/// `/proc/self/io`); `None` where that is not available.
fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The total length of the regular files in `dir` whose names end in
/// `.log` (what `verify` or `cat` will read, near enough for a bar).
pub(crate) fn log_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_or_unattended_runs_draw_nothing() {
        assert!(!Progress::bytes(10, "x").is_drawn());
        // Tests run with standard error captured, not on a terminal.
        if !std::io::stderr().is_terminal() {
            assert!(!Progress::bytes(u64::MAX, "x").is_drawn());
        }
    }

    #[test]
    fn this_process_read_count_is_visible_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(bytes_read().is_some());
        }
    }
}
