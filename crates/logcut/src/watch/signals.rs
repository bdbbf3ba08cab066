//! SIGUSR1 rotates, SIGHUP reopens (feature `signals`).
//!
//! `signal-hook`'s handler only records the signal and wakes this module's
//! thread through a pipe; the thread asks the background thread to act,
//! exactly as a trigger file or `reopen()` would. Nothing runs inside the
//! signal handler.

use std::{
    sync::{Arc, Weak},
    thread::JoinHandle,
};

use signal_hook::{
    consts::{SIGHUP, SIGUSR1},
    iterator::{Handle, Signals},
};

use crate::{
    Error,
    context::{Requests, Watch},
};

pub(crate) struct SignalWatch {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalWatch {
    pub(crate) fn start(sh: Arc<dyn Requests>) -> Result<SignalWatch, Error> {
        let mut signals = Signals::new([SIGUSR1, SIGHUP])
            .map_err(|e| Error::io("handle signals", sh.context().dir.path(), e))?;
        let handle = signals.handle();
        let weak: Weak<dyn Requests> = Arc::downgrade(&sh);
        let thread = std::thread::Builder::new()
            .name(format!("logcut-signal-{}", sh.context().cfg.name))
            .spawn(move || {
                for sig in signals.forever() {
                    let Some(sh) = weak.upgrade() else { break };
                    match sig {
                        SIGUSR1 => sh.request_rotate(),
                        SIGHUP => sh.request_reopen(),
                        _ => {}
                    }
                }
            })
            .map_err(|e| {
                handle.close();
                Error::io("start signal thread", sh.context().dir.path(), e)
            })?;
        Ok(SignalWatch {
            handle,
            thread: Some(thread),
        })
    }
}

impl Watch for SignalWatch {
    fn stop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.stop();
    }
}
