//! What a keeper worker does to one sealed segment: index it, compress it,
//! or both in one read, and record what it did with one manifest append;
//! then ship the final file, if the log ships (see
//! [`ship`](crate::sealed::ship)), and record that.
//!
//! Both new files are durable and renamed before one directory sync, and
//! recorded after it; the original is removed last (see
//! [`compress`](crate::sealed::compress) for why this order survives a
//! crash).

use std::sync::Mutex;

#[cfg(feature = "ship")]
use logcut_format::manifest::Shipped;
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

pub(crate) use crate::sealed::task::Task;

/// What a task did, recorded (also when a later step failed).
#[derive(Debug, Default)]
pub(crate) struct Done {
    /// The compressed file's name and length, if it compressed one.
    pub(crate) compressed: Option<(String, u64)>,
    /// Whether it wrote the index.
    pub(crate) indexed: bool,
    /// The bytes it shipped, if it shipped the segment.
    pub(crate) shipped: Option<u64>,
}

/// The outcome of a task: what it did, and the error it stopped at.
pub(crate) type Outcome = (Done, Result<(), Error>);

/// Runs `task`: compresses with `codec` unless the segment is compressed
/// already, indexes and ships if asked. A step that fails leaves the
/// segment as that step found it.
pub(crate) fn run(
    sh: &Context,
    journal: &Mutex<Journal>,
    codec: Option<(Codec, i32)>,
    task: &Task,
) -> Outcome {
    let mut done = Done::default();
    let codec = codec.filter(|_| task.compressed.is_none());
    if codec.is_some() || task.index {
        match prepare(sh, journal, codec, task) {
            Ok(d) => done = d,
            Err(e) => return (done, Err(e)),
        }
    }
    if task.ship {
        let file = done
            .compressed
            .as_ref()
            .map(|(f, _)| f.as_str())
            .or(task.compressed.as_deref())
            .unwrap_or(&task.file);
        match ship(sh, journal, task, file) {
            Ok(n) => done.shipped = Some(n),
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// Indexes and compresses (`codec`, if given).
fn prepare(
    sh: &Context,
    journal: &Mutex<Journal>,
    codec: Option<(Codec, i32)>,
    task: &Task,
) -> Result<Done, Error> {
    let mut ix = match task.index {
        true => {
            Some(IndexBuilder::new(&sh.cfg.index).map_err(|m| Error::config("index_fields", m))?)
        }
        false => None,
    };
    let packed = match codec {
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
        shipped: None,
    })
}

/// Ships `file` (the segment's final file) and records it; returns its
/// length.
#[cfg(feature = "ship")]
fn ship(sh: &Context, journal: &Mutex<Journal>, task: &Task, file: &str) -> Result<u64, Error> {
    use crate::sealed::ship::{ShipSegment, hash, hex, key_is_recordable};
    let Some(uploader) = &sh.cfg.ship else {
        return Ok(0);
    };
    let fail = |e| Error::io("ship", sh.dir.join(file), e);
    // Past shutdown's deadline, an upload not started yet waits for the
    // next start. Relaxed: a flag read on its own; set once by the keeper.
    if sh
        .compress_cancel
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            crate::sealed::compress::CANCELLED,
        )));
    }
    let (sha256, crc32, bytes) = sh.dir.open_read(file).and_then(hash).map_err(fail)?;
    let seg = ShipSegment {
        dir: sh.dir.path(),
        log: &sh.cfg.name,
        seq: task.seq,
        sealed: &task.file,
        file,
        start: task.start,
        bytes,
        crc32,
        sha256,
    };
    let shipped = uploader.ship(&seg).map_err(fail)?;
    if !key_is_recordable(&shipped.key) {
        return Err(fail(std::io::Error::other(format!(
            "the uploader gave the key {:?}, which a manifest cannot record (spaces, control characters or '~')",
            shipped.key
        ))));
    }
    let etag = shipped.etag.map(|e| {
        e.replace(
            |c: char| c.is_whitespace() || c.is_control() || c == '~',
            "_",
        )
    });
    journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .append_durable(&[Entry::Ship(Shipped {
            seq: task.seq,
            file: file.to_string(),
            key: shipped.key,
            etag,
            sha256: hex(&sha256),
            crc32,
            bytes,
        })])?;
    Ok(bytes)
}

#[cfg(not(feature = "ship"))]
fn ship(_: &Context, _: &Mutex<Journal>, _: &Task, _: &str) -> Result<u64, Error> {
    Ok(0)
}
