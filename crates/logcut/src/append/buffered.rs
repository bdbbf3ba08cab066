//! Buffered mode's write path: records copied into the bounded buffer
//! under a short lock, for the background task to write in batches; and
//! `flush`, which waits until what was accepted is written.

use std::io;

use crate::{Error, Mode, append::state::Shared};

impl Shared {
    pub(crate) fn write_buffered(&self, buf: &[u8]) -> Result<(), Error> {
        let mut q = self.lock_inbox();
        loop {
            if q.stop {
                return Err(Error::shutdown("write record"));
            }
            if q.ends.is_empty()
                || q.buf.len() + buf.len() <= self.cfg.buffer_size
                || self.rt.on_runtime_thread()
            {
                // A runtime thread (an error handler, a hook) never waits
                // for room: the task that makes room may need this very
                // thread. Its records go past the bound instead.
                break;
            }
            q = self.mail.space.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.buf.extend_from_slice(buf);
        let end = q.buf.len();
        q.ends.push(end);
        q.accepted += 1;
        q.accepted_bytes += buf.len() as u64;
        // Wake the background thread for the first record after it went
        // idle, and when enough has gathered for a large write; in between,
        // it lingers to batch (see `Worker::wait`). Fewer wake-ups, fewer
        // system calls on the write path.
        if q.sleeping && (q.ends.len() == 1 || q.buf.len() >= self.wake_threshold()) {
            q.sleeping = false;
            self.mail.wake.notify_one();
        }
        Ok(())
    }

    /// `write_batch` in Buffered mode: as many records as fit in the buffer
    /// per lock (at least one), in order.
    pub(crate) fn write_buffered_batch(&self, buf: &[u8], ends: &[usize]) -> Result<(), Error> {
        let mut i = 0;
        let mut start = 0;
        while i < ends.len() {
            let mut q = self.lock_inbox();
            loop {
                if q.stop {
                    return Err(Error::shutdown("write record"));
                }
                if q.ends.is_empty()
                    || q.buf.len() + (ends[i] - start) <= self.cfg.buffer_size
                    || self.rt.on_runtime_thread()
                {
                    // See `write_buffered`.
                    break;
                }
                q = self.mail.space.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            let limit = q.buf.len().max(self.cfg.buffer_size) - q.buf.len();
            let mut j = i + 1;
            while j < ends.len() && ends[j] - start <= limit {
                j += 1;
            }
            let end = ends[j - 1];
            let base = q.buf.len();
            q.buf.extend_from_slice(&buf[start..end]);
            q.ends.extend(ends[i..j].iter().map(|e| base + (e - start)));
            q.accepted += (j - i) as u64;
            q.accepted_bytes += (end - start) as u64;
            if q.sleeping && (q.ends.len() == j - i || q.buf.len() >= self.wake_threshold()) {
                q.sleeping = false;
                self.mail.wake.notify_one();
            }
            start = end;
            i = j;
        }
        Ok(())
    }

    /// Buffered bytes that make the background thread write at once.
    pub(crate) fn wake_threshold(&self) -> usize {
        (self.cfg.buffer_size / 2).clamp(1, 64 << 10)
    }

    pub(crate) fn flush(&self) -> Result<(), Error> {
        match self.cfg.mode {
            Mode::Direct => {
                let mut live = self.lock_inbox().sealing.clone();
                live.push(self.path.current.load_full());
                if live.iter().all(|seg| seg.lock().held.is_empty()) {
                    return Ok(());
                }
                let q = self.lock_inbox();
                Err(q.last_error.clone().unwrap_or_else(|| {
                    Error::io(
                        "flush",
                        self.dir.join(&self.active_name),
                        io::Error::other("records are held after a failed write"),
                    )
                }))
            }
            Mode::Buffered => {
                let mut q = self.lock_inbox();
                let target = q.accepted;
                let generation = q.fail_gen;
                if q.written < target && self.rt.on_runtime_thread() {
                    // The task that writes them may need this very thread.
                    return Err(self.would_block("flush"));
                }
                q.flush_req = true;
                q.sleeping = false;
                self.mail.wake.notify_one();
                while q.written < target {
                    if q.failing || q.fail_gen != generation {
                        if let Some(e) = q.last_error.clone() {
                            return Err(e);
                        }
                    }
                    if q.gone {
                        return Err(Error::shutdown("flush"));
                    }
                    q = self.mail.written.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                Ok(())
            }
        }
    }
}
