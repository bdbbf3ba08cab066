//! What the sealed-segment stages hand each other: a segment for a worker
//! (index, compress, ship), and a budget's request to delete segments.
//! Apart from the stages, so that none of them imports another for these.

use std::sync::mpsc;

use logcut_format::manifest::DeleteReason;

use crate::Error;

/// A sealed segment to work on.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub(crate) seq: u64,
    pub(crate) file: String,
    pub(crate) bytes: u64,
    pub(crate) crc32: u32,
    /// Its compressed file, if it has one (it is then only indexed).
    pub(crate) compressed: Option<String>,
    /// Build its index.
    pub(crate) index: bool,
    /// Ship it.
    pub(crate) ship: bool,
    /// When it became active (for the object's key).
    #[cfg_attr(not(feature = "ship"), allow(dead_code))]
    pub(crate) start: jiff::Timestamp,
}

/// Delete these sealed segments (a router's budget across its logs), those
/// not being compressed or pinned; answer how many went. On a mailbox of
/// its own, kept in the log's context: the keeper's own mailbox closing
/// still tells it that its log is gone.
pub(crate) type Trim = (
    Vec<(u64, DeleteReason)>,
    mpsc::SyncSender<Result<usize, Error>>,
);
