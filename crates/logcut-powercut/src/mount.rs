//! A mounted [`Disk`]: the handle a test holds while programs use it.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    disk::Disk,
    fs::{Counts, CutAt, Faults, PowerFs, Shared},
};

/// A [`Disk`] mounted with FUSE at a directory. Dropping it unmounts.
#[derive(Debug)]
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    shared: Arc<Shared>,
    path: PathBuf,
}

impl Mount {
    /// Mounts `disk` at the (existing, empty) directory `at`. Needs
    /// `/dev/fuse` and the right to mount (root, or `fusermount3`).
    pub fn new(disk: Disk, at: &Path, faults: Faults) -> io::Result<Mount> {
        let shared = Arc::new(Shared::new(disk, faults));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("logcut-powercut".into()),
            fuser::MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(PowerFs::new(shared.clone()), at, &config)?;
        Ok(Mount {
            session: Some(session),
            shared,
            path: at.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Arms the power switch.
    pub fn cut_at(&self, at: CutAt) {
        self.shared.lock().cut = Some(at);
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// What the file system has done so far.
    pub fn counts(&self) -> Counts {
        self.shared.lock().counts
    }

    /// True once the power went.
    pub fn is_dead(&self) -> bool {
        self.shared.lock().dead
    }

    /// Waits until the power went, at most `timeout` (a wait on a condition
    /// variable, woken by the cut); returns whether it did.
    pub fn wait_dead(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while !st.dead {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Cuts the power now (if the switch did not already), without
    /// waiting for an operation to arrive.
    pub fn power_off(&self) {
        let mut st = self.shared.lock();
        st.dead = true;
        self.shared.changed.notify_all();
    }

    /// Lets the requests blocked since the power went fail. Call it only
    /// once every process that used the file system has been sent SIGKILL:
    /// they die before they see the failure.
    pub fn release(&self) {
        let mut st = self.shared.lock();
        st.released = true;
        self.shared.changed.notify_all();
    }

    /// Unmounts, and returns the disk as it stands: call
    /// [`Disk::power_cut`] on it for a power loss, or mount it again as it
    /// is (an orderly unmount, nothing lost).
    pub fn unmount(mut self) -> io::Result<Disk> {
        self.release();
        if let Some(s) = self.session.take() {
            match s.umount_and_join() {
                // The kernel may end the connection as aborted rather than
                // unmounted (a request of a killed process still queued);
                // every operation has been applied or refused by then.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                res => res?,
            }
        }
        let st = self.shared.lock();
        Ok(st.disk.clone())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.release();
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
