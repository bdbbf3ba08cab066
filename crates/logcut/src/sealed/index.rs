//! The search index of a sealed segment ([`logcut_format::index`]): the
//! values of the fields [`index_fields`](crate::AppenderBuilder::index_fields)
//! names, written beside the segment as `<sealed name>.idx` by a keeper
//! worker, in the same pass that compresses the segment when it is
//! compressed.
//!
//! The file is written under `<name>.idx.tmp`, made durable and renamed;
//! the worker then syncs the directory and records it with an `index`
//! entry. A crash before the entry leaves a file no entry records: the
//! segment is indexed again at the next start, and the file replaced.

use std::io::{self, Read, Write};

use logcut_format::{
    codec::Codec,
    index::{IndexBuilder, index_file},
    manifest::Indexed,
};

use crate::{Error, context::Context, sealed::compress, sealed::task::Task};

/// Feeds `task`'s segment (its compressed file, if it has one) to `ix`,
/// checking that it holds what was sealed.
pub(crate) fn read(sh: &Context, task: &Task, ix: &mut IndexBuilder) -> Result<(), Error> {
    let file = task.compressed.as_deref().unwrap_or(&task.file);
    let fail = |e| Error::io("index", sh.dir.join(file), e);
    let input = sh.dir.open_read(file).map_err(fail)?;
    let r: Box<dyn Read> = match Codec::split(file) {
        Some((_, codec)) => codec
            .decoder(io::BufReader::with_capacity(128 * 1024, input))
            .map_err(fail)?,
        None => Box::new(input),
    };
    let mut crc = crc32fast::Hasher::new();
    let len = logcut_format::read_chunks(r, |chunk| {
        // Relaxed: a flag read on its own; set once by the keeper.
        if sh
            .compress_cancel
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(io::Error::new(io::ErrorKind::TimedOut, compress::CANCELLED));
        }
        ix.feed(chunk);
        crc.update(chunk);
        Ok(())
    })
    .map_err(fail)?;
    compress::check_sum(task, crc.finalize(), len).map_err(fail)
}

/// Writes the index durably under its final name; the caller syncs the
/// directory and records the returned entry.
pub(crate) fn write(sh: &Context, task: &Task, ix: IndexBuilder) -> Result<Indexed, Error> {
    let dir = &sh.dir;
    let name = index_file(&task.file);
    let tmp = format!("{name}.tmp");
    let fail = |f: &str, e| Error::io("index", dir.join(f), e);
    // Leftovers: of an attempt that failed (the temporary file), or of a
    // crash before the entry (an index no entry records).
    for f in [&tmp, &name] {
        match dir.unlink(f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(f, e)),
        }
    }
    let bytes = ix.finish();
    let written = dir.create_new(&tmp, sh.cfg.file_mode).and_then(|mut f| {
        f.write_all(&bytes)?;
        crate::sys::sync_data(&f)
    });
    if let Err(e) = written.and_then(|()| dir.rename_noreplace(&tmp, &name)) {
        let _ = dir.unlink(&tmp);
        return Err(fail(&name, e));
    }
    Ok(Indexed {
        seq: task.seq,
        file: name,
        crc32: crc32fast::hash(&bytes),
        bytes: bytes.len() as u64,
    })
}
