//! What a keeper worker does to one sealed segment: index it, compress it,
//! or both in one read, then record what it did with one manifest append.
//!
//! Both new files are durable and renamed before one directory sync, and
//! recorded after it; the original is removed last (see
//! [`compress`](crate::sealed::compress) for why this order survives a
//! crash).

use std::sync::Mutex;

use logcut_format::{
    codec::Codec,
    index::IndexBuilder,
    manifest::{Compress, Entry},
};

use crate::{
    Error,
    context::Context,
    seal::journal::Journal,
    sealed::{compress, index},
};

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
}

/// What a task did.
#[derive(Debug)]
pub(crate) struct Done {
    /// The compressed file's name and length, if it compressed one.
    pub(crate) compressed: Option<(String, u64)>,
    /// Whether it wrote the index.
    pub(crate) indexed: bool,
}

/// The outcome of a task.
pub(crate) type Outcome = Result<Done, Error>;

/// Runs `task`: compresses with `codec` unless the segment is compressed
/// already, indexes if asked. On failure, the segment is left as it was.
pub(crate) fn run(
    sh: &Context,
    journal: &Mutex<Journal>,
    codec: Option<(Codec, i32)>,
    task: &Task,
) -> Outcome {
    let mut ix = match task.index {
        true => {
            Some(IndexBuilder::new(&sh.cfg.index).map_err(|m| Error::config("index_fields", m))?)
        }
        false => None,
    };
    let packed = match codec.filter(|_| task.compressed.is_none()) {
        Some((codec, level)) => Some(compress::encode(sh, codec, level, task, ix.as_mut())?),
        None => {
            if let Some(ix) = ix.as_mut() {
                index::read(sh, task, ix)?;
            }
            None
        }
    };
    let drop_packed = |p: &Option<compress::Packed>| {
        if let Some(p) = p {
            let _ = sh.dir.unlink(&p.tmp);
        }
    };
    let mut entries = Vec::new();
    if let Some(ix) = ix {
        match index::write(sh, task, ix) {
            Ok(e) => entries.push(Entry::Index(e)),
            Err(e) => {
                drop_packed(&packed);
                return Err(e);
            }
        }
    }
    if let Some(p) = &packed {
        compress::install(sh, p)?;
        entries.push(Entry::Compress(Compress {
            seq: task.seq,
            file: p.fin.clone(),
            crc32: p.crc32,
            bytes: p.bytes,
        }));
    }
    if let Err(e) = sh.dir.sync() {
        // Not known to be durable: the original stays; the new files are
        // recorded (or redone) at the next start.
        return Err(Error::io("sync log directory", sh.dir.path(), e));
    }
    let appended = journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .append_durable(&entries);
    if let Err(e) = appended {
        // Unrecorded: take them back; the original stays the segment.
        for e in &entries {
            if let Entry::Compress(Compress { file, .. }) = e {
                let _ = sh.dir.unlink(file);
            }
        }
        return Err(e);
    }
    if packed.is_some() {
        if let Err(e) = sh.dir.unlink(&task.file) {
            // Recorded, so readers use the compressed file; the next start
            // removes the original.
            sh.report(Error::io(
                "remove compressed original",
                sh.dir.join(&task.file),
                e,
            ));
        }
    }
    Ok(Done {
        compressed: packed.map(|p| (p.fin, p.bytes)),
        indexed: task.index,
    })
}
