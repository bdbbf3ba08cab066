/*!
A rotating log appender that never blocks writers on a rotation and never
loses a record, and proves it afterwards.

# Overview

```text
record --> Appender (write path, atomic swap) --> segment <dir>/app.log
                                                     | cut: by size, by time, rotate(),
                                                     |      a trigger file, SIGUSR1
                                                     v
   runtime tasks (shared threads): rename to app.<start>.<seq>.log,
           prepare the next file; Buffered mode: write the batches
                                                     v
           sealer: fsync, append count + bytes + CRC-32 to app.manifest
                                                     v
           keeper (optional): compress to app.<start>.<seq>.log.zst on the
           runtime's compression threads; delete the oldest segments past
           the retention limits; both recorded in the manifest
                                                     v
           verify(): every segment present (or deleted by policy), lengths
                     and checksums match (decompressed, for compressed ones),
                     sequence and record ranges without gaps, counts add up
```

- Each `write` call is one **record**: it is never split across two files,
  never interleaved with another record, and the records of one thread stay
  in order. A record may hold newlines and bytes that are not UTF-8.
- The **active segment** keeps a stable path (`<dir>/<name>.log`), so
  `tail -F` and log shippers can follow it. Sealed segments get unique names
  that sort in time order: `app.2026-11-24T10-00-00.000Z.000042.log` (the
  start of the segment in UTC, then its sequence number).
- A cut is an atomic pointer swap to a segment prepared in advance; renames,
  fsync and manifest appends run in the background.
- **One runtime for many logs**: every appender's background work (Buffered
  batches, cuts and renames, sealing, compression, retention) runs as tasks
  on the threads of a [`Runtime`], shared by all the appenders built
  without one ([`AppenderBuilder::runtime`] gives one explicitly). A
  thousand open logs cost its 4 threads (plus at most 2 for compression,
  started when needed), not thousands. Only a trigger file's watch and
  signal handling start threads of their own, when asked for.
- **Many tenants**: a [`Router`] sends each record to its tenant's log,
  `<root>/<group>/<tenant>/`, under the policy of the strategy group a
  [`RoutingTable`] picks from its fields; tenant values outside a small
  safe alphabet go to a quarantine log, never into a path; at most
  `max_open` logs stay open (the least recently used is sealed, and opened
  again on its next record).
- **Shipping** (feature `ship`): [`AppenderBuilder::ship`] uploads each
  sealed segment on a pool of its own and records it in the manifest; no
  retention limit deletes a segment before it is shipped (only the
  free-space floor, which says so), and what a run could not ship, the
  next start does.
- **Search index**: with [`AppenderBuilder::index_fields`] (`["trace_id"]`
  for JSON lines) each sealed segment gets a Bloom filter of those fields'
  values beside it, recorded in the manifest, so that `logcut grep --field
  trace_id=ID` reads only the segments that may hold the id.
- **External triggers**: a trigger file ([`AppenderBuilder::trigger_file`],
  feature `trigger`: a cron job's `touch`, `logcut rotate`), SIGUSR1 and
  SIGHUP ([`AppenderBuilder::signals`], feature `signals`). When someone
  else renames or removes the active file (logrotate in `create` mode, an
  operator's `mv`), the appender notices within
  [`watch_interval`](AppenderBuilder::watch_interval) (500 ms), or at once
  on [`Appender::reopen`] / SIGHUP, and continues in a new file at the
  stable path; what was written before stays in the moved file.
- **One appender per log** by default: it holds an exclusive `flock` on
  `<dir>/<name>.lock` while it runs, so a second one (in this process or
  another) fails at start with an error naming the holder, instead of taking
  the first one's files for a crash's leftovers.
- **Several processes on one log** with [`AppenderBuilder::shared`]: each
  cut is made by one of them, under a lock; the others follow to the new
  file within 16 records of their own (or one
  [`watch_interval`](AppenderBuilder::watch_interval), 50 ms in this mode,
  if they write less), and a segment is sealed only once every writer has left
  it (each holds a shared `flock` on the segment it writes; the one that
  cut it waits for an exclusive one). Each writer records its part of each
  segment in the manifest, so [`verify`] still checks every process's
  totals.
- Sealed segments can be **compressed** in the background (gzip or zstd,
  [`AppenderBuilder::compress`]) and **deleted** by retention limits
  ([`keep`](AppenderBuilder::keep), [`max_age`](AppenderBuilder::max_age),
  [`max_total`](AppenderBuilder::max_total), and a free-space floor,
  [`min_free`](AppenderBuilder::min_free), so that old segments go before
  the disk fills); readers
  ([`logcut_format::read_all`], `logcut cat`) decompress transparently.
- The **manifest** (`<name>.manifest`) records every sealed segment with its
  record count, byte count, checksum and the reason it was sealed (size,
  time, manual, shutdown, recovery), and each run's totals. [`verify`] checks
  a directory against it. The format is documented in
  [`logcut_format::manifest`].

# Quick start

```
use std::io::Write;
# let dir = std::env::temp_dir().join(format!("logcut-doc-quick-{}", std::process::id()));
let appender = logcut::Appender::builder()
    .dir(&dir)                        // created if missing (mode 0750)
    .name("app")                      // active file: <dir>/app.log
    .max_size(logcut::parse_size("64MiB")?)
    .interval(logcut::Interval::DAILY) // and/or at local midnight
    .time_zone("Europe/Berlin")
    .mode(logcut::Mode::Buffered)     // or Direct (the default)
    .build()?;
writeln!(&appender, "hello {}", 42)?; // one record
appender.rotate()?;                   // cut now
appender.shutdown()?;                 // write everything, seal, record totals
assert!(logcut::verify(&dir)?.is_ok());
# std::fs::remove_dir_all(&dir).ok();
# Ok::<(), Box<dyn std::error::Error>>(())
```

With `tracing` (feature `tracing`), each event is one record even when the
formatter writes it in pieces:

```
# #[cfg(feature = "tracing")] {
let dir = "/var/log/app";
# // The test writes under a temporary directory instead.
# let tmp = std::env::temp_dir().join(format!("logcut-doc-tracing-{}", std::process::id()));
# let _ = std::fs::remove_dir_all(&tmp);
# let dir = &tmp;
let appender = logcut::Appender::builder().dir(dir).build()?;
// Keep the guard until the end of `main`: see the warning below.
let _guard = appender.shutdown_guard();
tracing_subscriber::fmt().with_writer(appender.clone()).with_ansi(false).init();
# tracing::info!("hello");
# drop(_guard);
# let text = String::from_utf8(logcut_format::read_all(dir, "app")?)?;
# assert!(text.contains(" INFO ") && text.ends_with(": hello\n"), "{text:?}");
# assert_eq!(text.lines().count(), 1, "{text:?}");
# std::fs::remove_dir_all(&tmp)?;
# }
# Ok::<(), Box<dyn std::error::Error>>(())
```

With `log` (feature `log`):

```
# #[cfg(feature = "log")] {
# let dir = std::env::temp_dir().join(format!("logcut-doc-log-guard-{}", std::process::id()));
# let _ = std::fs::remove_dir_all(&dir);
# let appender = logcut::Appender::builder().dir(&dir).build()?;
let _guard = appender.shutdown_guard();
logcut::LogBackend::new(appender.clone()).max_level(log::LevelFilter::Info).install()?;
# log::info!("hello");
# drop(_guard);
# let text = String::from_utf8(logcut_format::read_all(&dir, "app")?)?;
# assert!(text.contains(" INFO  ") && text.ends_with(": hello\n"), "{text:?}");
# assert_eq!(text.lines().count(), 1, "{text:?}");
# std::fs::remove_dir_all(&dir)?;
# }
# Ok::<(), Box<dyn std::error::Error>>(())
```

**A global subscriber or logger keeps the appender alive.** `init()`,
`set_global_default` and `install` keep their clone of the appender until
the process exits, so the last handle is never dropped and the automatic
shutdown never runs: a program that returns from `main` would lose the
records still in the buffer ([`Mode::Buffered`]) and leave its active
segment unsealed (`verify` then fails until the next start recovers it).
Hold the [`ShutdownGuard`] from [`Appender::shutdown_guard`] in `main`, as
above (or call [`Appender::shutdown`] before returning): its drop writes
everything, seals and records the totals. `std::process::exit` skips
destructors: call `shutdown` before it.

# Guarantees

**Zero loss.** Every record accepted (a `write` that returned `Ok`) is
either written to a segment, or counted as lost: in [`Stats::records_lost`],
in a `lost` line of the manifest, and by an error from
[`Appender::shutdown`]. Records are only ever lost when writing them keeps
failing past the [shutdown timeout](AppenderBuilder::shutdown_timeout).
Writers are never dropped silently: when memory for waiting records is full,
they wait.

**A crash of the process (SIGKILL, panic, abort).** In [`Mode::Direct`], a
record is in the kernel when `write` returns, and survives. A record whose
`write` had not returned when SIGKILL came may be cut short: Linux stops a
`write(2)` between pages of the page cache for a fatal signal, so the first
part of a record that crosses a 4 KiB boundary can stay at the end of the
segment (its writer never got `Ok`). The one other exception: while writes are failing (disk full, file too large), records are
held in memory (at most [`max_held`](AppenderBuilder::max_held) bytes) and
those are lost with the process; [`Stats::queue_depth`] shows them. In
[`Mode::Buffered`], records not yet written are lost, always the newest
ones: those in the buffer and those of the batch the background thread was
writing, so at most twice [`buffer_size`](AppenderBuilder::buffer_size)
bytes (or, for a record larger than the buffer, that record), normally
those of the last millisecond. A process that exits without
[`Appender::shutdown`] (a `main` that returns while a global logger holds
the appender, without a [`ShutdownGuard`]) loses the same.

Until the next start, [`verify`] reports the crashed session (no `close`
entry, and no writer holds the log). The next start recovers the
directory: a torn last manifest line (no newline, or a failing checksum) is
cut off, and files left at the active or prepared paths, or sealed but not
yet recorded, are recorded as segments with reason `recovery` and an
unknown record count. A `recover` entry in the manifest records the crashed
session and the bytes cut off, so the evidence stays. A whole last line
with a valid checksum that does not parse is not a crash's doing: it is
kept, and `verify` reports it. `verify` then passes.

**A power loss.** Only what was synced to the device survives; what the
kernel had written back by itself may survive in part, in any order.
Tested on a file system that loses power at chosen points (see
`TESTING.md`). With [`Fsync::AtSeal`] (the default): every segment whose
seal entry is in the manifest is intact (length and checksum), with
every record once; of the segments not yet sealed when the power went (the
active one, and one being sealed) any part may be lost, and not always
the newest records: the disk may have kept a later segment's pages and
not an earlier one's. The next start adopts what is left (reason
`recovery`), and in a shared log records as lost, with their counts, the
segments processes had written to (their `part` entries) that left no
file. With [`Fsync::Always`]: every record whose `write` returned (Direct)
or whose [`flush_records`](Appender::flush_records) returned (Buffered) is
there; the first sync in a new segment also syncs the directory, so the
segment's name is as durable as its records. [`Fsync::Every`] bounds the
loss in time. With [`Fsync::Never`] nothing is promised but this: the
next start finds the sealed segments that are gone or shorter than their
seal says, records them as lost (a `delete` entry with reason `lost` and a
`lost` entry with reason `missing`, which `verify` reports) and adopts what
is left of them, so nothing that survived is dropped and `verify` reports
nothing else. The manifest itself is synced with every entry under every
policy but `Never`.

**A full disk (or EFBIG, EIO).** A write that fails part way is cut off
again, so no partial record stays in a file (for the one exception, see
Known problems). The record and every record
after it are held in memory in order, retried with exponential backoff
([`backoff`](AppenderBuilder::backoff)), and written when the cause goes
away; the error reaches the [`ErrorHandler`] and the stats, and is
recorded in `<dir>/<name>.error` (one line, the last error, which
`logcut status` shows: the file is sized at start and overwritten in place,
so the full disk it is about does not keep it out, except on copy-on-write
file systems, or if the disk was full already when the file was made). Held records
keep the size limit when they are written out: those that do not fit go
to the next segment, in order, so the segments before can be sealed,
compressed and deleted by retention while the rest waits. (The exception:
records held in a segment that was cut meanwhile go to it, past the
limit by what writes under way at the cut added, since everything in the
next segment is newer.) Compression
and retention keep running while writes fail: a compression that fails
(its temporary file did not fit) is tried again after the backoff, and so
is a retention whose manifest entry could not be written. The manifest
keeps 64 KiB allocated past its end (`fallocate`, where the file system
has it), so that on a full disk the seal and `delete` entries that make
room can still be appended: nothing is ever removed unrecorded. If the next
segment cannot be created (permission, full disk, too many open files, a
directory in the way), records keep going to the current segment (the
fallback), the circuit breaker in [`Stats::fallback`] opens, and creation is
retried after the backoff; the pending cut happens as soon as a segment is
ready.

**Size limit.** A cut happens before the record that would take a segment
past [`max_size`](AppenderBuilder::max_size); a record larger than the limit
gets a segment of its own, never split. In Buffered mode this is exact. In
Direct mode, writers check the limit without a lock, so a segment may end
up to one record per concurrently writing thread past the limit; and when
writers cut faster than the next files are prepared, or creation fails,
the segment keeps receiving records until a prepared segment is ready and
the cut is made (or, while creation fails, until it succeeds again). Four
next files are kept ready, refilled on a runtime thread; each time a cut
finds none, the pool doubles (up to 64; it halves back, removing the files
it no longer keeps, once eight times its size in cuts found it ready), and
the writer that found it empty starts a refill that makes the cut as soon as it has a file. On a busy
machine that still takes a runtime thread's turn, so writers that write
flat out into very small segments can take one far past its limit
(measured with 4 writer threads on 2 cores, 64 KiB segments, 120-byte
records: 3 or 4 such cuts in 1,800, the largest segment 84 KB to 1 MB;
before the refill moved off the background task, 18 MB).
[`Stats::cuts_deferred`] counts these cuts;
while it stays 0, the first bound holds.

**Time cuts** happen at the first write at or after the boundary, or from
the background thread when nothing is written; records of one segment
therefore belong to its interval. In Buffered mode the boundary applies when
the background thread writes the record (within a millisecond of it being
accepted). See [`Interval`] for DST and [`min_size`](AppenderBuilder::min_size)
for idle services.

**Compression** runs on the runtime's compression threads (at a lower
priority), after a segment's seal entry is durable; writers, the rotating
task and the sealer never wait for it.
A segment is replaced crash-safely: the compressed file is written as
`<segment>.zst.tmp` (or `.gz.tmp`), checked against the seal's checksum
while it is written, `fdatasync`ed, renamed into place, the directory
synced, a `compress` entry appended to the manifest, and only then is the
original removed. After a crash at any step, the next [`build`](AppenderBuilder::build)
removes `.tmp` files (never taking one for a segment), removes an original
whose compressed file is recorded, and checks a compressed file the
manifest does not record by decompressing it: it is recorded (and the
original removed) if it matches the seal, and removed if it does not while
the original is still there. Segments that wait (compression falls behind,
or the shutdown timeout passed during `shutdown`) stay uncompressed and are
compressed later, also by the next run; [`Stats::compress_backlog`] counts
them.

**Retention** deletes sealed segments oldest first, never the active
segment and never one being compressed; a segment past a limit that is
being compressed stops deletion until it is done, so a newer segment is
never deleted before an older one. Each deletion is appended to the
manifest (`delete`, with the limit: `count`, `age` or `bytes`) before the
files are removed, so [`verify`] reports deleted segments as deleted, not
missing, and still counts their records in the session's totals
([`Report::deleted`]); a removal cut short by a crash is finished at the
next start. Age is the time since the segment was sealed, by the
appender's [`clock`](AppenderBuilder::clock).

**External rotation.** A trigger (the trigger file created, written,
touched or renamed into place; SIGUSR1) cuts the active segment if it holds
at least one record; triggers that arrive before the background thread acts
on the first are merged into that cut. So a trigger that arrives after a
record was written always seals that record, and a storm of triggers makes
no empty segment. When the active file is renamed or removed by someone
else, records keep going to it (the moved file) until the appender notices
(within [`watch_interval`](AppenderBuilder::watch_interval), at once on
[`Appender::reopen`] or SIGHUP); then a new segment takes the stable path.
The moved segment is sealed with `file=-` and reason `reopen`: its records
and checksum are in the manifest, and [`verify`] counts them without
looking for the file, which is now someone else's. A file someone else
created at the active path meanwhile (logrotate's `create`) is replaced if
empty and kept under `<name>.log.foreign-<ms>` otherwise. logrotate's
`copytruncate` mode loses the lines written between its copy and its
truncation with any writer (see the README for a measurement); use
`create` with `postrotate kill -HUP`, or logcut's own rotation.

**Shared logs** ([`AppenderBuilder::shared`]). Everything above holds
for each process, with these differences. A record is never written to a
segment after its checksum was taken: the sealer waits until every writer
has left the segment. A process killed by SIGKILL releases its locks (the
kernel drops them), so nobody waits for it; the records it wrote are in
the files, but its `part` entries are missing, so the manifest does not
count them (its session has no `close` entry, so [`verify`] does not check
its totals), and its last record may be torn as above, now possibly
followed by other processes' records. A cut it left half done is finished by
the next process that looks (at its next check); a segment it had cut but
not yet sealed is recorded by the next appender that starts alone (crash
recovery), and until then [`verify`] reports it as unrecorded. At
shutdown, a process waits for the others to leave the segments it cut for
at most the [`shutdown_timeout`](AppenderBuilder::shutdown_timeout); a
segment still held then is left to that recovery, and `shutdown` returns
an error saying so. Sealed segments have `first=?`: record indexes are per process.
Seals may be recorded out of sequence order; [`verify`] and the readers
order segments by sequence number.

**Files** are created with mode 0640 (directories 0750) by default,
`O_CLOEXEC`, and `O_NOFOLLOW` / `O_EXCL` relative to the opened directory: a
symlink planted at the active, prepared or sealed path is never followed,
and an existing file is never overwritten.

**A sealed manifest** (off unless the log has a key file). A manifest
line's CRC-32 catches accidents, not forgeries. Once `logcut keygen DIR`
(or [`sealing::keygen`]) has written `<name>.seal-key` (mode 0600), the
appender's next start seals every manifest entry: each ends in a MAC
(HMAC-SHA256) over the entry and the previous entry's MAC, and each `seal`
entry carries its segment's SHA-256. The key evolves (`key(i+1) =
SHA-256(key(i))`, overwritten in place and synced) once an epoch (15
minutes by default) holds an entry and its time has passed, and at every
clean shutdown; an epoch a crash left open is sealed at the next start.
`logcut verify DIR --key-file FILE` (or [`sealing::check_log`]) proves,
with the verification key `keygen` printed (kept off the machine), that
the entries up to the last ended epoch are those written, in order, none
removed, inserted or altered, and that the key file holds the key the
manifest's end calls for (so a manifest cut back to an earlier epoch
fails too). What it cannot prove: the current epoch's entries (whoever
holds the machine holds their key, and can also append forged entries);
anything once the whole directory is deleted (only copies elsewhere,
such as shipped segments, show that); anything to a holder of the
verification key. On a copy-on-write file system or with snapshots, an
overwritten key may survive in old blocks. Processes sharing a log keep
one chain: each append and each epoch's end happens under the manifest's
lock, after reading the key file and the chain's end again. See
[`sealing`] for the format.

# Crate features

| feature | adds | default |
|---|---|---|
| `tracing` | `tracing_subscriber::fmt::MakeWriter` for [`Appender`] and [`Router`]; `RouteLayer`, which routes events by their spans' fields | no |
| `json` | `JsonLayer`: each event as one JSON line, with `trace_id`, `span_id` and business keys from its spans (implies `tracing`) | no |
| `opentelemetry` | `JsonLayer` takes `trace_id` and `span_id` from the OpenTelemetry context of the event's span (tracing-opentelemetry, opentelemetry's API only; implies `json`) | no |
| `log` | `LogBackend`, a `log::Log` backend; `LogBackend::routed` routes records by their key-values | no |
| `metrics` | publishes [`Stats`] through the `metrics` facade (`logcut_*`) | no |
| `gzip` | [`Compression::Gzip`] (flate2, pure Rust); readers decompress `.gz` segments | no |
| `zstd` | [`Compression::Zstd`] (the zstd crate; builds the zstd C library) | no |
| `trigger` | [`AppenderBuilder::trigger_file`] (the `notify` crate: inotify, kqueue, FSEvents) | no |
| `signals` | [`AppenderBuilder::signals`]: SIGUSR1 rotates, SIGHUP reopens (`signal-hook`) | no |
| `ship` | `AppenderBuilder::ship`: sealed segments handed to a [`Ship`] uploader (the `logcut-ship` crate has one for S3-compatible storage), recorded with their SHA-256 (RustCrypto's `sha2`); no retention limit deletes an unshipped segment | no |

Without a codec's feature, building an appender that uses it fails with a
configuration error, and readers report its segments as unreadable.

# Known problems

- In Direct mode, writers do not lock each other out: each record is one
  `write(2)` with `O_APPEND`. If a write fails part way (disk full) while
  another thread's write lands right after it, the fragment cannot be cut
  off: it stays in the file, counted, and the error reported says so. With
  one writer, or when the fragment is last (the usual case: the writes
  after it fail too), it is removed.
- Direct mode relies on `write(2)` with `O_APPEND` to a local file being
  atomic between threads, as it is on Linux's local file systems; on NFS
  it is not.
- Each cut creates, links and renames a file: with very small size limits
  (tens of KiB), rotation dominates (see the bench crate's README).
- Several processes share one log only in shared mode
  ([`AppenderBuilder::shared`]); otherwise the lock file makes the second
  one fail at start. The locks are `flock`s, which NFS emulates with
  byte-range locks of its own; it has not been tested there.
- In shared mode: a process learns of another one's cut, and of the
  other processes' bytes toward [`max_size`](AppenderBuilder::max_size),
  when it looks at its file (every 16 records in Direct mode, before each
  batch in Buffered mode, and every
  [`watch_interval`](AppenderBuilder::watch_interval)), and the cut itself
  runs on the cutter's background thread: segments exceed the size limit
  by what the processes write meanwhile (median 1.0x, worst 2.4x to 3.0x a 1 MiB
  limit with 4 busy processes on 2 cores; the bench crate's README has the
  figures). Sealed segments of a shared log are read-only (the cutter
  removes their write bits: that is the mark the others look for). A process that is stopped (SIGSTOP) rather than killed keeps
  its locks: the segments it holds wait to be sealed, and a cut it is in
  the middle of waits. Indexing, compression, shipping and retention are
  done by one process at a time, the one holding `<name>.keeper-lock`
  (another takes over when it leaves or dies); a stopped holder stops
  them all, and segments cut by a killed process wait for the next start
  to be sealed, and so to be compressed, shipped or deleted.
  A write that fails part way leaves its fragment in the file. If someone
  moves the active file away, the process that notices first installs a
  new one and seals the moved segment only if it was writing it itself;
  otherwise the moved segment is recorded only through the other
  processes' `part` entries, without a seal. When several processes watch
  the same trigger file (as `logcut write --shared` does by default), only
  the one holding `<name>.trigger-lock` acts on its events (another takes
  over when it leaves or dies), so one touch cuts once; processes that
  watch different trigger files still share that one lock. A segment cut by a process
  that was killed before it sealed it stays unrecorded (and [`verify`]
  says so) until an appender starts alone, however long the others run.
- If someone renames the active file at the very moment the appender cuts
  (between its hard link and its rename), the segment ends up with two
  names; the appender notices and gives it up as moved (`file=-`), so
  nothing is counted twice, but the records are then only in the other
  name.
- The trigger file's appearance counts as a trigger (it may have been
  touched while the watch moved to it): create it before building the
  appender if that first cut is not wanted. While the trigger file does not
  exist, its directory is watched; if that is the busy log directory, every
  write there costs an event.
- SIGUSR1 and SIGHUP stay ignored after the appender shuts down (a signal
  handler cannot be removed), rather than returning to their default
  action (terminating the process).
- Unix only. Hard links are used for the cut where the file system has
  them; otherwise a rename, during which the active path briefly does not
  exist. On NFS, nothing here has been tested.
- [`Appender::stats`] is exact when no write is in flight; during writes,
  counts may lag by the records being written.
- After a shutdown the last segment stays at `<name>.log` too, until the
  next start ([`AppenderBuilder::keep_active_name`]): it is not compressed
  or deleted by retention before then, however long that is, and a
  program that writes to `<name>.log` meanwhile (a `copytruncate`)
  changes that sealed segment, which [`verify`] reports. If its sealed
  name is removed by hand, the next start adopts `<name>.log` as a new
  segment (reason `recovery`), and [`verify`] reports the old one missing.
- Compression replaces segments by name: a reader that opened a segment
  before it was compressed keeps reading the original (still open, though
  unlinked); one that lists segments and opens them later falls back to
  the other file ([`logcut_format::SegmentFile::open`]).
- Retention by age uses the time a segment was sealed, not the time of its
  last record; a segment kept open by [`min_size`](AppenderBuilder::min_size)
  ages from when it is finally sealed. The count and total limits may be
  exceeded while the oldest segment is being compressed.
- The manifest keeps a line for every segment ever sealed, compressed or
  deleted: it grows with the log's history (about 300 bytes per segment).
  Without a retention limit, the keeper also keeps a small entry per
  segment in memory for the appender's lifetime.
- A runtime thread waits while a task waits in the kernel: an `fsync`, a
  write to a slow disk, and in shared mode another process's lock on the
  cut file. Other logs' tasks then run on the remaining threads (there are
  at least 2), later than they would. Shared mode's sealer does not wait
  for the other processes to leave a segment, during the session or at
  shutdown: it looks again every few milliseconds.
- `rotate`, `reopen`, `tick`, `shutdown` and a Buffered `flush` that would
  wait, called from a runtime thread (an error handler, a compression hook),
  fail with `WouldBlock` for every appender on that runtime, not only the
  handler's own: the task they would wait for may need that very thread.
  Records written there are accepted past [`buffer_size`](AppenderBuilder::buffer_size)
  and [`max_held`](AppenderBuilder::max_held) rather than wait for room, so
  a handler that writes without bound grows memory without bound.
- Many logs in **one directory** make each start slower: recovery lists
  the whole directory (once), so a thousand logs there take 3.3 to 3.9 s
  to start where a thousand directories take 1.5 s (fresh ext4, this
  machine). A [`Router`] gives each tenant a directory of its own.
*/

#![deny(missing_docs)]

// The modules follow the pipeline: a record goes through `append` (the
// write path and the swap) into a `segment`; the `coordinate` stage cuts
// and names segments, through one `Coordinator` interface with two
// implementations (a log of one appender, a log shared by several
// processes); `seal` makes them
// durable and records them; `sealed` compresses and retires them; `watch`
// turns triggers and signals into requests. `runtime` runs the background
// stages of every log; `context` is what they see of one.
mod append;
mod builder;
mod clock;
mod context;
mod coordinate;
mod error;
mod guard;
mod handler;
mod integrations;
#[cfg(feature = "metrics")]
mod metrics;
mod route;
mod runtime;
mod seal;
mod sealed;
mod segment;
mod stats;
mod sys;
mod watch;

#[cfg(feature = "json")]
pub use crate::integrations::json::JsonLayer;
#[cfg(feature = "log")]
pub use crate::integrations::log::LogBackend;
#[cfg(feature = "tracing")]
pub use crate::integrations::tracing::EventWriter;
#[cfg(feature = "tracing")]
pub use crate::route::{RouteLayer, RouteWriter};
pub use crate::{
    append::Appender,
    builder::{AppenderBuilder, Fsync, Mode},
    clock::{Clock, ManualClock, SystemClock},
    error::{Error, Result},
    guard::ShutdownGuard,
    handler::ErrorHandler,
    route::{
        GroupStats, MAX_NAME_LEN, NO_TENANT, QUARANTINE, Router, RouterBuilder, RouterStats,
        RoutingTable, TenantStats, TopTenants,
    },
    runtime::{Runtime, RuntimeBuilder},
    sealed::compress::Compression,
    // The trait needs no dependency; `AppenderBuilder::ship` (feature
    // `ship`) takes one.
    sealed::ship::{Ship, ShipSegment, Shipped},
    segment::policy::{Interval, parse_duration, parse_size},
    stats::{FallbackState, LatencyHistogram, Stats},
};
pub use logcut_format::{Problem, ProblemKind, Report, manifest::SealReason, sealing};

/// The README's examples, run as doc tests (`cargo test --doc -p logcut
/// --all-features`; they use every optional feature but `metrics`).
#[cfg(all(
    doctest,
    feature = "tracing",
    feature = "log",
    feature = "trigger",
    feature = "signals",
    feature = "zstd"
))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// Checks a log directory: see [`logcut_format::verify`].
pub fn verify(dir: impl AsRef<std::path::Path>) -> Result<Report> {
    Ok(logcut_format::verify(dir.as_ref())?)
}
