//! `--targets`: the tracker's target table (issue 11). Every figure is
//! measured in the same run as its baseline, configurations interleaved
//! within a round, and printed as a ratio with PASS/MISS.
//!
//! See README.md, section "Targets table", for what each row measures.

use std::{
    convert::Infallible,
    fmt::{self, Display},
    fs::{self, File},
    io::{self, BufRead, BufReader, BufWriter, Read, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use logcut::{Appender, Fsync, Mode};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

use crate::{
    Config, KIB64, Kind, MIB, RECORD_LEN, Record, THREAD_COUNTS, TempRoot, drive, fail, median,
    open_append, quantile, size_label,
};

/// Thread counts of the tracing rows.
const TRACING_THREADS: [usize; 2] = [1, 4];
const STORM_THREADS: usize = 4;
/// Writer threads (exclusive) or processes (shared) of the shared-mode row.
const SHARED_WRITERS: usize = 4;

/// Appenders, records per appender per burst, bursts and the pause between
/// them, of the many-logs row.
const MANY_LOGS: usize = 1000;
const MANY_RECORDS: u64 = 3;
const MANY_BURSTS: u64 = 10;
const MANY_PAUSE: Duration = Duration::from_millis(100);
const MANY_MAX_THREADS: i64 = 8;
const MANY_MAX_RSS_KIB: i64 = 64 << 10;

/// Hidden command-line flags: the bench binary re-executes itself with
/// these for the rows that need a process of their own.
pub(crate) const MANY_LOGS_FLAG: &str = "--many-logs-child";
pub(crate) const SHARED_WRITER_FLAG: &str = "--shared-writer-child";

/// The message of a tracing event: with the newline the formatter adds,
/// the same 120 bytes as [`Record`] (`logcut-bench thread=TT seq=S{10} ` is
/// 38 bytes).
const PAD: &str =
    ".................................................................................";
const _: () = assert!(38 + PAD.len() + 1 == RECORD_LEN);

// ---------------------------------------------------------------------------
// Configurations

/// When the timed section of a logcut run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// When the last write returns.
    LastWrite,
    /// When `flush_records` returns (every record is in its file).
    Flush,
    /// When `shutdown` returns (every segment sealed and synced).
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lc {
    mode: Mode,
    max_size: u64,
    fsync: Fsync,
    until: Until,
    /// One more thread calls `rotate()` in a loop until the writers finish.
    storm: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    PlainFile,
    BufWriter,
    /// One thread creating, writing and `fdatasync`ing files of this size
    /// back to back: the disk's limit for durable segments.
    Disk(u64),
    Logcut(Lc),
    /// A `tracing_subscriber::fmt()` subscriber writing to a
    /// `Mutex<BufWriter<File>>`.
    TracingBufWriter,
    /// The same subscriber writing to an appender.
    TracingLogcut(Lc),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cfg {
    sink: Sink,
    threads: usize,
}

fn direct(max_size: u64) -> Lc {
    Lc {
        mode: Mode::Direct,
        max_size,
        fsync: Fsync::AtSeal,
        until: Until::LastWrite,
        storm: false,
    }
}

fn buffered_never(max_size: u64) -> Lc {
    Lc {
        mode: Mode::Buffered,
        max_size,
        fsync: Fsync::Never,
        until: Until::Flush,
        storm: false,
    }
}

/// Buffered with the default fsync policy, timed until `flush_records`.
fn buffered_seal(max_size: u64) -> Lc {
    Lc {
        fsync: Fsync::AtSeal,
        ..buffered_never(max_size)
    }
}

fn durable(max_size: u64) -> Lc {
    Lc {
        until: Until::Shutdown,
        ..buffered_seal(max_size)
    }
}

fn storm(mode: Mode) -> Lc {
    let steady = if mode == Mode::Direct {
        direct(MIB)
    } else {
        buffered_seal(MIB)
    };
    Lc {
        storm: true,
        ..steady
    }
}

fn cfg(sink: Sink, threads: usize) -> Cfg {
    Cfg { sink, threads }
}

impl Display for Lc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Direct => "direct",
            Mode::Buffered => "buffered",
        };
        write!(f, "{mode} {}", size_label(self.max_size))?;
        match self.fsync {
            Fsync::Never => f.write_str(" never")?,
            Fsync::AtSeal => {}
            other => write!(f, " {other:?}")?,
        }
        if self.until == Until::Shutdown {
            f.write_str(" durable")?;
        }
        if self.storm {
            f.write_str(" storm")?;
        }
        Ok(())
    }
}

impl Display for Cfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sink {
            Sink::PlainFile => f.write_str("plain-file")?,
            Sink::BufWriter => f.write_str("bufwriter")?,
            Sink::Disk(size) => write!(f, "disk-limit {}", size_label(size))?,
            Sink::Logcut(lc) => write!(f, "{lc}")?,
            Sink::TracingBufWriter => f.write_str("tracing bufwriter")?,
            Sink::TracingLogcut(lc) => write!(f, "tracing {lc}")?,
        }
        write!(f, ", {} thr", self.threads)
    }
}

/// Every configuration of one round, each baseline next to what is compared
/// with it.
fn round_configs() -> Vec<Cfg> {
    let mut v = Vec::new();
    for threads in THREAD_COUNTS {
        v.push(cfg(Sink::PlainFile, threads));
        for size in [MIB, KIB64] {
            v.push(cfg(Sink::Logcut(direct(size)), threads));
        }
        if threads == STORM_THREADS {
            v.push(cfg(Sink::Logcut(storm(Mode::Direct)), threads));
        }
        v.push(cfg(Sink::BufWriter, threads));
        for size in [MIB, KIB64] {
            v.push(cfg(Sink::Logcut(buffered_never(size)), threads));
        }
        if threads == STORM_THREADS {
            v.push(cfg(Sink::Logcut(buffered_seal(MIB)), threads));
            v.push(cfg(Sink::Logcut(storm(Mode::Buffered)), threads));
        }
        if TRACING_THREADS.contains(&threads) {
            v.push(cfg(Sink::TracingBufWriter, threads));
            for lc in [
                buffered_never(MIB),
                buffered_never(KIB64),
                buffered_seal(MIB),
                buffered_seal(KIB64),
            ] {
                v.push(cfg(Sink::TracingLogcut(lc), threads));
            }
        }
    }
    for size in [KIB64, MIB] {
        v.push(cfg(Sink::Disk(size), 1));
        v.push(cfg(Sink::Logcut(durable(size)), 1));
    }
    v
}

// ---------------------------------------------------------------------------
// Running one configuration

/// What one run of one configuration measured.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Bytes written per second of the timed section.
    rate: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    /// Sealed segments and the largest one's bytes (logcut only).
    seals: Option<(usize, u64)>,
    /// `Stats::cuts_deferred` (logcut only).
    deferred: u64,
}

impl Sample {
    fn from_latencies(bytes: u64, elapsed: Duration, mut lat: Vec<u64>) -> Sample {
        lat.sort_unstable();
        Sample {
            rate: bytes as f64 / elapsed.as_secs_f64(),
            p50: quantile(&lat, 0.50),
            p99: quantile(&lat, 0.99),
            p999: quantile(&lat, 0.999),
            max: lat.last().copied().unwrap_or(0),
            seals: None,
            deferred: 0,
        }
    }
}

fn run_cfg(c: Cfg, records: u64, dir: &Path) -> Result<Sample, String> {
    let bytes = records * RECORD_LEN as u64;
    let classic = |kind| {
        let s = crate::run(
            Config {
                kind,
                threads: c.threads,
            },
            records,
            dir,
        )?;
        Ok(Sample {
            rate: s.rate * RECORD_LEN as f64,
            p50: s.p50,
            p99: s.p99,
            p999: s.p999,
            max: s.max,
            seals: None,
            deferred: 0,
        })
    };
    match c.sink {
        Sink::PlainFile => classic(Kind::PlainFile),
        Sink::BufWriter => classic(Kind::BufWriter),
        Sink::Disk(size) => {
            fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            disk_limit(size, bytes, dir)
        }
        Sink::Logcut(lc) => run_logcut(lc, c.threads, records, dir, false),
        Sink::TracingLogcut(lc) => run_logcut(lc, c.threads, records, dir, true),
        Sink::TracingBufWriter => {
            fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let path = dir.join("buf.log");
            let w = Locked(Arc::new(Mutex::new(BufWriter::new(open_append(&path)?))));
            let dispatch = subscriber(w.clone());
            let next = AtomicUsize::new(0);
            let d = drive(
                c.threads,
                records,
                || event_writer(&dispatch, &next),
                || {
                    w.0.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .flush()
                        .map_err(|e| format!("flush: {e}"))
                },
                None,
            )?;
            let len = fs::metadata(&path)
                .map_err(|e| format!("stat {}: {e}", path.display()))?
                .len();
            if len != bytes {
                return Err(format!(
                    "{c}: the subscriber wrote {len} bytes for {records} events, not {bytes}: \
                     its lines are not {RECORD_LEN} bytes"
                ));
            }
            Ok(Sample::from_latencies(bytes, d.elapsed, d.latencies))
        }
    }
}

fn run_logcut(
    lc: Lc,
    threads: usize,
    records: u64,
    dir: &Path,
    through_tracing: bool,
) -> Result<Sample, String> {
    let bytes = records * RECORD_LEN as u64;
    let app = Appender::builder()
        .dir(dir)
        .name("app")
        .max_size(lc.max_size)
        .mode(lc.mode)
        .fsync(lc.fsync)
        .build()
        .map_err(|e| format!("build appender: {e}"))?;
    let finish = || match lc.until {
        Until::LastWrite => Ok(()),
        Until::Flush => app.flush_records().map_err(|e| format!("flush: {e}")),
        Until::Shutdown => app.shutdown().map_err(|e| format!("shutdown: {e}")),
    };
    let d = if through_tracing {
        let dispatch = subscriber(app.clone());
        let next = AtomicUsize::new(0);
        drive(
            threads,
            records,
            || event_writer(&dispatch, &next),
            finish,
            None,
        )
    } else {
        drive(
            threads,
            records,
            || {
                let a = app.clone();
                move |r: &[u8]| a.write_record(r)
            },
            finish,
            lc.storm.then_some(&app),
        )
    };
    // Shut down even if the run failed, then check the directory.
    let shut = app.shutdown().map_err(|e| format!("shutdown: {e}"));
    let d = d?;
    shut?;
    if d.rotate_failures > 0 {
        eprintln!(
            "warning: {lc}, {threads} thr: {} of {} rotate() calls failed; first: {}",
            d.rotate_failures,
            d.rotate_calls,
            d.rotate_error.as_deref().unwrap_or("?")
        );
    }
    let stats = app.stats();
    if stats.bytes != bytes {
        return Err(format!(
            "{lc}, {threads} thr: {} bytes accepted for {records} records, not {bytes}",
            stats.bytes
        ));
    }
    let report = logcut::verify(dir).map_err(|e| format!("verify: {e}"))?;
    if !report.is_ok() || report.records() != records {
        return Err(format!(
            "verification failed for {lc}, {threads} thr: wrote {records} records, \
             verify found {} sealed ({} lost)\n{report}",
            report.records(),
            report.lost(),
        ));
    }
    let sizes = seal_sizes(dir)?;
    let mut s = Sample::from_latencies(bytes, d.elapsed, d.latencies);
    s.seals = Some((sizes.len(), sizes.iter().copied().max().unwrap_or(0)));
    s.deferred = stats.cuts_deferred;
    Ok(s)
}

/// The bytes of every sealed segment, from the manifest.
fn seal_sizes(dir: &Path) -> Result<Vec<u64>, String> {
    let path = dir.join("app.manifest");
    let m = logcut_format::manifest::Manifest::read(&path)
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(m.seals().map(|s| s.bytes).collect())
}

/// One thread: create a file, write `size` bytes, `fdatasync`, next file,
/// until `total` bytes are written.
fn disk_limit(size: u64, total: u64, dir: &Path) -> Result<Sample, String> {
    let mut chunk = vec![b'.'; size as usize];
    if let Some(last) = chunk.last_mut() {
        *last = b'\n';
    }
    let start = Instant::now();
    let (mut left, mut i) = (total, 0u64);
    while left > 0 {
        let n = left.min(size);
        let path = dir.join(format!("seg-{i:06}.log"));
        let io = |e: io::Error| format!("{}: {e}", path.display());
        let mut f = File::create_new(&path).map_err(io)?;
        f.write_all(&chunk[..n as usize]).map_err(io)?;
        f.sync_data().map_err(io)?;
        left -= n;
        i += 1;
    }
    Ok(Sample::from_latencies(total, start.elapsed(), Vec::new()))
}

// ---------------------------------------------------------------------------
// tracing

/// The writer of the BufWriter baseline behind the subscriber.
#[derive(Clone)]
struct Locked(Arc<Mutex<BufWriter<File>>>);

struct LockedWriter<'a>(MutexGuard<'a, BufWriter<File>>);

impl Write for LockedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for Locked {
    type Writer = LockedWriter<'a>;

    fn make_writer(&'a self) -> LockedWriter<'a> {
        LockedWriter(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The subscriber, the same formatter settings for every writer: the
/// message only.
fn subscriber<W>(writer: W) -> Dispatch
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Dispatch::new(
        tracing_subscriber::fmt()
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_ansi(false)
            .with_writer(writer)
            .finish(),
    )
}

/// A writer thread's body for `drive`: one `info!` event per record, with
/// `dispatch` as the thread's default subscriber (set on the first event,
/// unset when the thread's loop ends). Thread numbers are handed out in the
/// order the writers are made.
fn event_writer(
    dispatch: &Dispatch,
    next: &AtomicUsize,
) -> impl FnMut(&[u8]) -> Result<(), Infallible> + Send + use<> {
    let dispatch = dispatch.clone();
    let thread = next.fetch_add(1, Ordering::Relaxed);
    let mut seq = 0u64;
    let mut guard = None;
    move |_record: &[u8]| {
        if guard.is_none() {
            guard = Some(tracing::dispatcher::set_default(&dispatch));
        }
        tracing::info!("logcut-bench thread={thread:02} seq={seq:010} {PAD}");
        seq += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Many logs (a child process)

/// Threads of this process.
fn task_count() -> Result<i64, String> {
    let n = fs::read_dir("/proc/self/task")
        .map_err(|e| format!("/proc/self/task: {e}"))?
        .count();
    Ok(n as i64)
}

/// VmRSS of this process, in KiB.
fn rss_kib() -> Result<i64, String> {
    let s =
        fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_string())
}

fn raise_nofile() -> Result<(), String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).map_err(|e| format!("setrlimit(NOFILE): {e}"))?;
    }
    Ok(())
}

/// The child process of the many-logs row: 1,000 Buffered appenders with
/// the default settings, each in `<dir>/log-NNNN`, written a few records
/// in bursts; prints the threads and RSS before and at most after.
pub(crate) fn many_logs_child(dir: &Path) -> Result<(), String> {
    raise_nofile()?;
    let (threads0, rss0) = (task_count()?, rss_kib()?);
    let (mut threads_max, mut rss_max) = (threads0, rss0);
    let mut apps = Vec::with_capacity(MANY_LOGS);
    for i in 0..MANY_LOGS {
        let d = dir.join(format!("log-{i:04}"));
        let app = Appender::builder()
            .dir(&d)
            .mode(Mode::Buffered)
            .build()
            .map_err(|e| format!("build appender {i} of {MANY_LOGS}: {e}"))?;
        apps.push(app);
    }
    let mut rec = Record::new(0);
    let mut seq = 0;
    for _ in 0..MANY_BURSTS {
        for a in &apps {
            for k in 0..MANY_RECORDS {
                rec.set_seq(seq + k);
                a.write_record(rec.bytes())
                    .map_err(|e| format!("write: {e}"))?;
            }
        }
        seq += MANY_RECORDS;
        // The workload itself, not a wait for a condition: the logs are
        // written "now and then", idle in between (buffers shrink, tasks
        // sleep), and the idle process is what is measured.
        thread::sleep(MANY_PAUSE);
        threads_max = threads_max.max(task_count()?);
        rss_max = rss_max.max(rss_kib()?);
    }
    for (i, a) in apps.iter().enumerate() {
        a.shutdown()
            .map_err(|e| format!("shutdown of appender {i}: {e}"))?;
    }
    drop(apps);
    for i in 0..MANY_LOGS {
        let d = dir.join(format!("log-{i:04}"));
        let report = logcut::verify(&d).map_err(|e| format!("verify {}: {e}", d.display()))?;
        if !report.is_ok() || report.records() != seq {
            return Err(format!(
                "verify {}: {} records of {seq}\n{report}",
                d.display(),
                report.records()
            ));
        }
    }
    println!(
        "threads_before={threads0} threads_max={threads_max} rss_before_kib={rss0} rss_max_kib={rss_max}"
    );
    Ok(())
}

struct ManyLogs {
    threads_added: i64,
    rss_added_kib: i64,
    threads: (i64, i64),
    rss: (i64, i64),
}

fn many_logs(dir: &Path) -> Result<ManyLogs, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .arg(MANY_LOGS_FLAG)
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("start the many-logs child: {e}"))?;
    if !out.status.success() {
        return Err(format!("the many-logs child failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> Result<i64, String> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            .ok_or_else(|| format!("the many-logs child printed no {k}: {text:?}"))
    };
    let (t0, t1) = (field("threads_before")?, field("threads_max")?);
    let (r0, r1) = (field("rss_before_kib")?, field("rss_max_kib")?);
    Ok(ManyLogs {
        threads_added: t1 - t0,
        rss_added_kib: r1 - r0,
        threads: (t0, t1),
        rss: (r0, r1),
    })
}

// ---------------------------------------------------------------------------
// Shared mode

fn shared_builder(dir: &Path, shared: bool) -> logcut::AppenderBuilder {
    Appender::builder()
        .dir(dir)
        .name("app")
        .max_size(MIB)
        .mode(Mode::Buffered)
        .shared(shared)
}

/// The child process of a shared round: builds its appender, says
/// "ready", waits for a byte on its input, writes, shuts down.
pub(crate) fn shared_writer_child(args: &[String]) -> Result<(), String> {
    let [dir, writer, records] = args else {
        return Err(format!("{SHARED_WRITER_FLAG} DIR WRITER RECORDS"));
    };
    let writer: usize = writer.parse().map_err(|_| "bad writer number")?;
    let records: u64 = records.parse().map_err(|_| "bad record count")?;
    let app = shared_builder(Path::new(dir), true)
        .build()
        .map_err(|e| format!("build: {e}"))?;
    let mut out = io::stdout();
    out.write_all(b"ready\n")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    let mut go = [0u8; 1];
    io::stdin()
        .read_exact(&mut go)
        .map_err(|e| format!("stdin: {e}"))?;
    let mut rec = Record::new(writer);
    for seq in 0..records {
        rec.set_seq(seq);
        app.write_record(rec.bytes())
            .map_err(|e| format!("write: {e}"))?;
    }
    app.shutdown().map_err(|e| format!("shutdown: {e}"))
}

/// One process, `SHARED_WRITERS` threads: from the moment they start
/// together until `shutdown` returns.
fn shared_exclusive(dir: &Path, records: u64) -> Result<Duration, String> {
    let app = shared_builder(dir, false)
        .build()
        .map_err(|e| format!("build: {e}"))?;
    let d = drive(
        SHARED_WRITERS,
        records,
        || {
            let a = app.clone();
            move |r: &[u8]| a.write_record(r)
        },
        || app.shutdown().map_err(|e| format!("shutdown: {e}")),
        None,
    );
    let shut = app.shutdown().map_err(|e| format!("shutdown: {e}"));
    let d = d?;
    shut?;
    Ok(d.elapsed)
}

/// `SHARED_WRITERS` processes of one thread sharing the log: from the
/// moment every one is ready until the last has shut down.
fn shared_processes(dir: &Path, records: u64) -> Result<Duration, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let per = records / SHARED_WRITERS as u64;
    let mut children = Vec::new();
    let result = (|| {
        for w in 0..SHARED_WRITERS {
            let count = per + u64::from((w as u64) < records % SHARED_WRITERS as u64);
            let mut c = Command::new(&exe)
                .arg(SHARED_WRITER_FLAG)
                .arg(dir)
                .args([w.to_string(), count.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("start writer {w}: {e}"))?;
            let stdout = c.stdout.take();
            children.push(c);
            let mut line = String::new();
            BufReader::new(stdout.ok_or("no stdout")?)
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if line.trim() != "ready" {
                return Err(format!("writer {w} did not start"));
            }
        }
        let t0 = Instant::now();
        for c in &mut children {
            c.stdin
                .take()
                .ok_or("no stdin")?
                .write_all(b"g")
                .map_err(|e| e.to_string())?;
        }
        for (w, c) in children.iter_mut().enumerate() {
            let st = c.wait().map_err(|e| e.to_string())?;
            if !st.success() {
                return Err(format!("writer {w}: {st}"));
            }
        }
        Ok(t0.elapsed())
    })();
    // On an error, no child is left behind.
    for c in &mut children {
        if c.try_wait().ok().flatten().is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    result
}

struct SharedRound {
    exclusive: Duration,
    shared: Duration,
    /// Sealed segments of the shared log, bytes.
    sizes: Vec<u64>,
}

fn shared_round(
    root: &mut TempRoot,
    records: u64,
    shared_first: bool,
) -> Result<SharedRound, (String, std::path::PathBuf)> {
    let mut one = |shared: bool| {
        let dir = root.next_dir();
        let res = if shared {
            shared_processes(&dir, records)
        } else {
            shared_exclusive(&dir, records)
        }
        .and_then(|d| {
            let report = logcut::verify(&dir).map_err(|e| format!("verify: {e}"))?;
            if !report.is_ok() || report.records() != records {
                return Err(format!(
                    "verification failed (shared={shared}): wrote {records} records, verify found {}\n{report}",
                    report.records()
                ));
            }
            Ok((d, seal_sizes(&dir)?))
        });
        match res {
            Ok(r) => {
                let _ = fs::remove_dir_all(&dir);
                Ok(r)
            }
            Err(e) => Err((e, dir)),
        }
    };
    let (ex, sh) = if shared_first {
        let sh = one(true)?;
        (one(false)?, sh)
    } else {
        let ex = one(false)?;
        (ex, one(true)?)
    };
    Ok(SharedRound {
        exclusive: ex.0,
        shared: sh.0,
        sizes: sh.1,
    })
}

// ---------------------------------------------------------------------------
// The run

pub(crate) fn run(records: u64, rounds: usize, root: &mut TempRoot) -> bool {
    let configs = round_configs();
    println!(
        "logcut-bench --targets: {records} records of {RECORD_LEN} bytes per configuration, \
         {rounds} round(s), {} configurations + shared mode per round, then many logs; in {}",
        configs.len(),
        root.path.display()
    );

    // Warm-up (not reported): page cache, allocator, thread start, the
    // tracing callsite.
    let warm = (records / 10).clamp(1, 20_000);
    for c in configs.iter().filter(|c| c.threads == 1) {
        let dir = root.next_dir();
        if let Err(e) = run_cfg(*c, warm, &dir) {
            fail(&e, &dir);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
    let mut shared: Vec<SharedRound> = Vec::new();
    for round in 0..rounds {
        eprint!("round {}/{rounds}:", round + 1);
        let order: Vec<usize> = if round % 2 == 0 {
            (0..configs.len()).collect()
        } else {
            (0..configs.len()).rev().collect()
        };
        for i in order {
            let dir = root.next_dir();
            match run_cfg(configs[i], records, &dir) {
                Ok(s) => samples[i].push(s),
                Err(e) => fail(&e, &dir),
            }
            let _ = fs::remove_dir_all(&dir);
            eprint!(".");
        }
        match shared_round(root, records, round % 2 == 1) {
            Ok(r) => shared.push(r),
            Err((e, dir)) => fail(&format!("shared mode: {e}"), &dir),
        }
        eprintln!("s");
    }
    eprint!("many logs: ");
    let many_dir = root.next_dir();
    let many = many_logs(&many_dir);
    match &many {
        Ok(_) => {
            let _ = fs::remove_dir_all(&many_dir);
            eprintln!("done");
        }
        Err(e) => eprintln!("error: {e} (its directory is kept: {})", many_dir.display()),
    }

    let res = Results {
        configs,
        samples,
        rounds,
        records,
    };
    res.print_configs();
    let rows = res.rows(&shared, &many);
    print_rows(&rows);
    many.is_ok()
}

struct Results {
    configs: Vec<Cfg>,
    samples: Vec<Vec<Sample>>,
    rounds: usize,
    records: u64,
}

struct Row {
    what: String,
    measured: String,
    baseline: String,
    ratio: String,
    target: String,
    ok: bool,
}

fn mrec(rate: f64) -> String {
    format!("{:.3} Mrec/s", rate / RECORD_LEN as f64 / 1e6)
}

fn mbs(rate: f64) -> String {
    format!("{:.1} MB/s", rate / 1e6)
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1000.0)
}

fn median_duration(d: impl Iterator<Item = Duration>) -> Duration {
    Duration::from_secs_f64(median(d.map(|d| d.as_secs_f64()).collect()))
}

fn paired(a: &[Sample], b: &[Sample], f: impl Fn(&Sample, &Sample) -> f64) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| f(x, y)).collect())
}

impl Results {
    fn get(&self, c: Cfg) -> &[Sample] {
        let i = self
            .configs
            .iter()
            .position(|x| *x == c)
            .expect("every configuration of the table is measured");
        &self.samples[i]
    }

    fn med(&self, c: Cfg, f: fn(&Sample) -> f64) -> f64 {
        median(self.get(c).iter().map(f).collect())
    }

    fn print_configs(&self) {
        println!();
        println!(
            "== configurations == (median over {} round(s); throughput in bytes of \
             {RECORD_LEN}-byte records; latency of one write call, in µs; segments: \
             sealed (median); largest: bytes, from the manifest, over all rounds; \
             deferred: stats.cuts_deferred (median))",
            self.rounds
        );
        println!(
            "{:<36} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
            "config",
            "Mrec/s",
            "MB/s",
            "p50",
            "p99",
            "p99.9",
            "max",
            "segments",
            "largest",
            "deferred"
        );
        for (c, s) in self.configs.iter().zip(&self.samples) {
            let rate = self.med(*c, |s| s.rate);
            let lat = |f: fn(&Sample) -> u64| {
                if matches!(c.sink, Sink::Disk(_)) {
                    "-".to_string()
                } else {
                    format!(
                        "{:.2}",
                        median(s.iter().map(|x| f(x) as f64).collect()) / 1000.0
                    )
                }
            };
            let (segs, largest, deferred) = match s.first().and_then(|x| x.seals) {
                Some(_) => (
                    format!(
                        "{:.0}",
                        median(
                            s.iter()
                                .filter_map(|x| x.seals)
                                .map(|x| x.0 as f64)
                                .collect()
                        )
                    ),
                    s.iter()
                        .filter_map(|x| x.seals)
                        .map(|x| x.1)
                        .max()
                        .unwrap_or(0)
                        .to_string(),
                    format!(
                        "{:.0}",
                        median(s.iter().map(|x| x.deferred as f64).collect())
                    ),
                ),
                None => ("-".to_string(), "-".to_string(), "-".to_string()),
            };
            println!(
                "{:<36} {:>8.3} {:>7.1} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
                c.to_string(),
                rate / RECORD_LEN as f64 / 1e6,
                rate / 1e6,
                lat(|x| x.p50),
                lat(|x| x.p99),
                lat(|x| x.p999),
                lat(|x| x.max),
                segs,
                largest,
                deferred,
            );
        }
    }

    fn rows(&self, shared: &[SharedRound], many: &Result<ManyLogs, String>) -> Vec<Row> {
        let mut rows = Vec::new();
        let rate = |s: &Sample| s.rate;

        // 1. Buffered, Fsync::Never, against the better BufWriter.
        for size in [KIB64, MIB] {
            let target = if size == MIB { 1.0 } else { 0.8 };
            for t in THREAD_COUNTS {
                let me = self.get(cfg(Sink::Logcut(buffered_never(size)), t));
                let bw1 = self.get(cfg(Sink::BufWriter, 1));
                let bwt = self.get(cfg(Sink::BufWriter, t));
                let best: Vec<f64> = bw1
                    .iter()
                    .zip(bwt)
                    .map(|(a, b)| a.rate.max(b.rate))
                    .collect();
                let ratio = median(me.iter().zip(&best).map(|(m, b)| m.rate / b).collect());
                rows.push(Row {
                    what: format!(
                        "1 buffered never {}, {t} thr / best bufwriter",
                        size_label(size)
                    ),
                    measured: mrec(median(me.iter().map(rate).collect())),
                    baseline: mrec(median(best)),
                    ratio: format!("{ratio:.3}x"),
                    target: format!(">= {target:.1}x"),
                    ok: ratio >= target,
                });
            }
        }

        // 2. Durable, against the disk's limit.
        for size in [KIB64, MIB] {
            let me = self.get(cfg(Sink::Logcut(durable(size)), 1));
            let disk = self.get(cfg(Sink::Disk(size), 1));
            let ratio = paired(me, disk, |a, b| a.rate / b.rate);
            rows.push(Row {
                what: format!(
                    "2 durable {} (until shutdown), 1 thr / disk",
                    size_label(size)
                ),
                measured: mbs(median(me.iter().map(rate).collect())),
                baseline: mbs(median(disk.iter().map(rate).collect())),
                ratio: format!("{ratio:.3}x"),
                target: ">= 0.8x".to_string(),
                ok: ratio >= 0.8,
            });
        }

        // 3. Direct, against plain File writes.
        for size in [MIB, KIB64] {
            let target = if size == MIB { 0.9 } else { 0.8 };
            for t in THREAD_COUNTS {
                let me = self.get(cfg(Sink::Logcut(direct(size)), t));
                let base = self.get(cfg(Sink::PlainFile, t));
                let ratio = paired(me, base, |a, b| a.rate / b.rate);
                rows.push(Row {
                    what: format!("3 direct {}, {t} thr / plain-file", size_label(size)),
                    measured: mrec(median(me.iter().map(rate).collect())),
                    baseline: mrec(median(base.iter().map(rate).collect())),
                    ratio: format!("{ratio:.3}x"),
                    target: format!(">= {target:.1}x"),
                    ok: ratio >= target,
                });
            }
        }

        // 4. Through tracing.
        for lc in [
            buffered_never(MIB),
            buffered_never(KIB64),
            buffered_seal(MIB),
            buffered_seal(KIB64),
        ] {
            for t in TRACING_THREADS {
                let me = self.get(cfg(Sink::TracingLogcut(lc), t));
                let base = self.get(cfg(Sink::TracingBufWriter, t));
                let ratio = paired(me, base, |a, b| a.rate / b.rate);
                rows.push(Row {
                    what: format!("4 tracing {lc}, {t} thr / tracing bufwriter"),
                    measured: mrec(median(me.iter().map(rate).collect())),
                    baseline: mrec(median(base.iter().map(rate).collect())),
                    ratio: format!("{ratio:.3}x"),
                    target: ">= 0.9x".to_string(),
                    ok: ratio >= 0.9,
                });
                let lat = paired(me, base, |a, b| a.p999 as f64 / b.p999 as f64);
                rows.push(Row {
                    what: format!("4   p99.9 latency, {t} thr"),
                    measured: us(median(me.iter().map(|s| s.p999 as f64).collect())),
                    baseline: us(median(base.iter().map(|s| s.p999 as f64).collect())),
                    ratio: format!("{lat:.3}x"),
                    target: "<= 1.0x".to_string(),
                    ok: lat <= 1.0,
                });
            }
        }

        // 5. Rotation storm.
        for mode in [Mode::Direct, Mode::Buffered] {
            let lc = storm(mode);
            let me = self.get(cfg(Sink::Logcut(lc), STORM_THREADS));
            let steady = self.get(cfg(Sink::Logcut(Lc { storm: false, ..lc }), STORM_THREADS));
            let ratio = paired(me, steady, |a, b| a.p999 as f64 / b.p999 as f64);
            rows.push(Row {
                what: format!("5 {lc} p99.9, {STORM_THREADS} thr / steady"),
                measured: us(median(me.iter().map(|s| s.p999 as f64).collect())),
                baseline: us(median(steady.iter().map(|s| s.p999 as f64).collect())),
                ratio: format!("{ratio:.3}x"),
                target: "<= 2.0x".to_string(),
                ok: ratio <= 2.0,
            });
        }

        // 6. Segment sizes.
        for (c, s) in self.configs.iter().zip(&self.samples) {
            let (Sink::Logcut(lc) | Sink::TracingLogcut(lc)) = c.sink else {
                continue;
            };
            let largest = s
                .iter()
                .filter_map(|x| x.seals)
                .map(|x| x.1)
                .max()
                .unwrap_or(0);
            let (limit, how) = match lc.mode {
                Mode::Direct => (
                    lc.max_size + (c.threads * RECORD_LEN) as u64,
                    "max+1 rec/thr",
                ),
                Mode::Buffered => (lc.max_size, "max_size"),
            };
            rows.push(Row {
                what: format!("6 largest segment, {c}"),
                measured: largest.to_string(),
                baseline: format!("{limit} ({how})"),
                ratio: format!("{:.3}x", largest as f64 / limit as f64),
                target: "<= 1.0x".to_string(),
                ok: largest <= limit,
            });
        }

        // 7. Many logs.
        match many {
            Ok(m) => {
                rows.push(Row {
                    what: format!("7 {MANY_LOGS} buffered appenders: threads added"),
                    measured: m.threads_added.to_string(),
                    baseline: format!("{} -> {}", m.threads.0, m.threads.1),
                    ratio: "-".to_string(),
                    target: format!("<= {MANY_MAX_THREADS}"),
                    ok: m.threads_added <= MANY_MAX_THREADS,
                });
                rows.push(Row {
                    what: format!("7 {MANY_LOGS} buffered appenders: RSS added"),
                    measured: format!("{:.1} MiB", m.rss_added_kib as f64 / 1024.0),
                    baseline: format!(
                        "{:.1} -> {:.1} MiB",
                        m.rss.0 as f64 / 1024.0,
                        m.rss.1 as f64 / 1024.0
                    ),
                    ratio: "-".to_string(),
                    target: format!("<= {} MiB", MANY_MAX_RSS_KIB >> 10),
                    ok: m.rss_added_kib <= MANY_MAX_RSS_KIB,
                });
            }
            Err(e) => rows.push(Row {
                what: format!("7 {MANY_LOGS} buffered appenders"),
                measured: "failed".to_string(),
                baseline: e.chars().take(40).collect(),
                ratio: "-".to_string(),
                target: "-".to_string(),
                ok: false,
            }),
        }

        // 8. Shared mode.
        let ratio = median(
            shared
                .iter()
                .map(|r| r.exclusive.as_secs_f64() / r.shared.as_secs_f64())
                .collect(),
        );
        let per_s = |d: Duration| mrec(self.records as f64 * RECORD_LEN as f64 / d.as_secs_f64());
        rows.push(Row {
            what: format!(
                "8 shared buffered 1MiB, {SHARED_WRITERS} procs / {SHARED_WRITERS} thr exclusive"
            ),
            measured: per_s(median_duration(shared.iter().map(|r| r.shared))),
            baseline: per_s(median_duration(shared.iter().map(|r| r.exclusive))),
            ratio: format!("{ratio:.3}x"),
            target: ">= 0.9x".to_string(),
            ok: ratio >= 0.9,
        });
        let mut sizes: Vec<u64> = shared
            .iter()
            .flat_map(|r| r.sizes.iter().copied())
            .collect();
        sizes.sort_unstable();
        let med_size = median(sizes.iter().map(|&b| b as f64).collect());
        let max_size = sizes.last().copied().unwrap_or(0) as f64;
        for (what, v, lim) in [("median", med_size, 1.1), ("max", max_size, 1.5)] {
            let r = v / MIB as f64;
            rows.push(Row {
                what: format!("8 shared segment size, {what} of {}", sizes.len()),
                measured: format!("{v:.0}"),
                baseline: format!("{MIB} (max_size)"),
                ratio: format!("{r:.3}x"),
                target: format!("<= {lim:.1}x"),
                ok: r <= lim,
            });
        }
        rows
    }
}

fn print_rows(rows: &[Row]) {
    println!();
    println!(
        "== targets == (ratio: median over rounds of the ratio within a round; \
         throughput ratios are measured / baseline, latency and size ratios too)"
    );
    let w = rows
        .iter()
        .map(|r| r.what.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "{:<w$}  {:>16}  {:>25}  {:>8}  {:>10}  result",
        "target", "measured", "baseline", "ratio", "target"
    );
    for r in rows {
        println!(
            "{:<w$}  {:>16}  {:>25}  {:>8}  {:>10}  {}",
            r.what,
            r.measured,
            r.baseline,
            r.ratio,
            r.target,
            if r.ok { "PASS" } else { "MISS" }
        );
    }
    let pass = rows.iter().filter(|r| r.ok).count();
    println!("{pass} of {} PASS", rows.len());
}
