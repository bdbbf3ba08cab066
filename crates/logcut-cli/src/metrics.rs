//! `--metrics ADDR`: the appender's stats in Prometheus text format at
//! `http://ADDR/metrics`. Nothing listens unless the flag is given; give a
//! loopback address (127.0.0.1:9184) unless the metrics must be reachable
//! from elsewhere (a warning on standard error says so otherwise).
//!
//! One thread serves every connection through `poll`, so a slow or idle
//! client delays nobody: each connection has [`REQUEST_DEADLINE`] from its
//! acceptance to send its whole request (not per byte: a client trickling
//! headers is cut off all the same) and [`RESPONSE_DEADLINE`] to take the
//! answer; at most [`MAX_CONNECTIONS`] are open at once, and one more
//! closes the oldest that has not finished its request. One request per
//! connection (`Connection: close`). No HTTP crate fits: the small ones
//! (`tiny_http`) take a thread per connection without a request deadline,
//! the others bring an async runtime.

use std::{
    borrow::Cow,
    fmt::Write as _,
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use rustix::event::{PollFd, PollFlags, Timespec};

/// Time a connection has to send its request, from its acceptance.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time a connection has to take the response, once its request is in.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// Connections open at once.
const MAX_CONNECTIONS: usize = 256;
/// The longest request (line and headers) read.
const MAX_REQUEST: usize = 8 << 10;
/// Pause before accepting again after `accept` failed (no file descriptor
/// left, say), so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Starts serving `logs` (name, appender) on `addr` from a background
/// thread; warns on standard error if `addr` is not a loopback address.
pub(crate) fn serve(addr: SocketAddr, logs: Vec<(String, logcut::Appender)>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
    let local = listener.local_addr().unwrap_or(addr);
    if !is_loopback(local.ip()) {
        eprintln!(
            "logcut: warning: --metrics {local} is not a loopback address: anyone who can reach this host can read the stats (give 127.0.0.1:PORT to keep them local)"
        );
    }
    listener
        .set_nonblocking(true)
        .context("cannot set up the --metrics listener")?;
    std::thread::Builder::new()
        .name("logcut-metrics".into())
        .spawn(move || Server::new(listener, logs).run())
        .context("cannot start the metrics thread")?;
    Ok(())
}

/// Loopback, also as an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

struct Server {
    listener: TcpListener,
    logs: Vec<(String, logcut::Appender)>,
    /// Oldest first.
    conns: Vec<Conn>,
    accept_paused_until: Option<Instant>,
}

struct Conn {
    stream: TcpStream,
    deadline: Instant,
    state: State,
}

enum State {
    /// Reading the request: what came so far.
    Request(Vec<u8>),
    /// Sending the response: all of it, and how much went.
    Response(Vec<u8>, usize),
}

/// What to do with a connection after some work on it.
#[derive(PartialEq)]
enum Next {
    Keep,
    Close,
}

impl Server {
    fn new(listener: TcpListener, logs: Vec<(String, logcut::Appender)>) -> Server {
        Server {
            listener,
            logs,
            conns: Vec::new(),
            accept_paused_until: None,
        }
    }

    fn run(mut self) {
        loop {
            let now = Instant::now();
            self.expire(now);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }
            let accepting = self.accept_paused_until.is_none();
            let wake = self
                .conns
                .iter()
                .map(|c| c.deadline)
                .chain(self.accept_paused_until)
                .min();
            let timeout =
                wake.and_then(|t| Timespec::try_from(t.saturating_duration_since(now)).ok());
            let ready = {
                let mut fds = Vec::with_capacity(self.conns.len() + 1);
                fds.push(PollFd::new(
                    &self.listener,
                    if accepting {
                        PollFlags::IN
                    } else {
                        PollFlags::empty()
                    },
                ));
                for c in &self.conns {
                    let events = match c.state {
                        State::Request(_) => PollFlags::IN,
                        State::Response(..) => PollFlags::OUT,
                    };
                    fds.push(PollFd::new(&c.stream, events));
                }
                match rustix::event::poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    // Nothing sensible to do but try again a little later.
                    Err(_) => {
                        std::thread::sleep(ACCEPT_PAUSE);
                        continue;
                    }
                }
                fds.iter()
                    .map(|f| !f.revents().is_empty())
                    .collect::<Vec<_>>()
            };
            let mut i = 0;
            self.conns.retain_mut(|c| {
                i += 1;
                !ready[i] || c.step(&self.logs) == Next::Keep
            });
            if ready[0] {
                self.accept();
            }
        }
    }

    /// Closes connections past their deadline; one that has not sent its
    /// request is told so first.
    fn expire(&mut self, now: Instant) {
        self.conns.retain_mut(|c| {
            if c.deadline > now {
                return true;
            }
            if matches!(c.state, State::Request(_)) {
                let _ = c.stream.write(&response(
                    "408 Request Timeout",
                    "",
                    b"request timeout\n",
                    false,
                ));
            }
            false
        });
    }

    /// Accepts what is waiting, up to [`MAX_CONNECTIONS`] in one round so
    /// that a flood of connections does not starve those already open.
    fn accept(&mut self) {
        for _ in 0..MAX_CONNECTIONS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if self.conns.len() >= MAX_CONNECTIONS {
                        // Make room: the oldest one still sending its
                        // request goes (or, if every one is taking its
                        // response, the new one).
                        match self
                            .conns
                            .iter()
                            .position(|c| matches!(c.state, State::Request(_)))
                        {
                            Some(oldest) => drop(self.conns.remove(oldest)),
                            None => continue,
                        }
                    }
                    self.conns.push(Conn {
                        stream,
                        deadline: Instant::now() + REQUEST_DEADLINE,
                        state: State::Request(Vec::new()),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }
}

impl Conn {
    /// Reads or writes what the socket allows now.
    fn step(&mut self, logs: &[(String, logcut::Appender)]) -> Next {
        if let State::Request(req) = &mut self.state {
            let mut chunk = [0u8; 1024];
            loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => return Next::Close,
                    Ok(n) => {
                        let from = req.len().saturating_sub(3);
                        req.extend_from_slice(&chunk[..n]);
                        if let Some(end) = header_end(req, from) {
                            let answer = answer(&req[..end], logs);
                            self.state = State::Response(answer, 0);
                            self.deadline = Instant::now() + RESPONSE_DEADLINE;
                            break;
                        }
                        if req.len() > MAX_REQUEST {
                            let answer = response(
                                "431 Request Header Fields Too Large",
                                "",
                                b"request too large\n",
                                false,
                            );
                            self.state = State::Response(answer, 0);
                            self.deadline = Instant::now() + RESPONSE_DEADLINE;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
            }
        }
        let State::Response(out, sent) = &mut self.state else {
            return Next::Keep;
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        Next::Close
    }
}

/// Where the request's headers end (after the blank line), searching from
/// `from`.
fn header_end(req: &[u8], from: usize) -> Option<usize> {
    let tail = &req[from..];
    let crlf = tail
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(|i| from + i)
}

/// The response to a whole request.
fn answer(req: &[u8], logs: &[(String, logcut::Appender)]) -> Vec<u8> {
    let line = req.split(|b| *b == b'\n').next().unwrap_or(b"");
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let head = method == "HEAD";
    if method != "GET" && !head {
        return response(
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            b"method not allowed\n",
            false,
        );
    }
    if target != "/metrics" && !target.starts_with("/metrics?") {
        return response("404 Not Found", "", b"not found\n", head);
    }
    response(
        "200 OK",
        "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
        render(logs).as_bytes(),
        head,
    )
}

fn response(status: &str, headers: &str, body: &[u8], head: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// A label value in the Prometheus text format: `\`, `"` and newline
/// escaped. (Log names cannot hold them; this is in case that changes.)
fn escape_label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 2);
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The Prometheus text exposition of every log's stats.
pub(crate) fn render(logs: &[(String, logcut::Appender)]) -> String {
    let stats: Vec<(Cow<'_, str>, logcut::Stats)> = logs
        .iter()
        .map(|(n, a)| (escape_label(n), a.stats()))
        .collect();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&logcut::Stats) -> f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (log, s) in &stats {
            let _ = writeln!(out, "{name}{{log=\"{log}\"}} {}", value(s));
        }
    };
    family(
        "logcut_records_total",
        "counter",
        "Records accepted.",
        &|s| s.records as f64,
    );
    family("logcut_bytes_total", "counter", "Bytes accepted.", &|s| {
        s.bytes as f64
    });
    family(
        "logcut_records_written_total",
        "counter",
        "Records written to a segment.",
        &|s| s.records_written as f64,
    );
    family(
        "logcut_rotations_total",
        "counter",
        "Segments sealed.",
        &|s| s.rotations as f64,
    );
    family(
        "logcut_rotation_failures_total",
        "counter",
        "Failed attempts to create or install a segment.",
        &|s| s.rotation_failures as f64,
    );
    family(
        "logcut_cuts_deferred_total",
        "counter",
        "Cuts that came due with no prepared segment ready (Direct mode: the segment overshot its size limit meanwhile).",
        &|s| s.cuts_deferred as f64,
    );
    family(
        "logcut_write_failures_total",
        "counter",
        "Failed writes (retried).",
        &|s| s.write_failures as f64,
    );
    family(
        "logcut_records_lost_total",
        "counter",
        "Records that could not be written anywhere.",
        &|s| s.records_lost as f64,
    );
    family(
        "logcut_records_rejected_total",
        "counter",
        "Records refused because the appender was shut down (never accepted).",
        &|s| s.records_rejected as f64,
    );
    family(
        "logcut_fallback_state",
        "gauge",
        "Rotation circuit breaker: 0 closed, 1 open, 2 half-open.",
        &|s| match s.fallback {
            logcut::FallbackState::Closed => 0.0,
            logcut::FallbackState::Open => 1.0,
            logcut::FallbackState::HalfOpen => 2.0,
        },
    );
    family(
        "logcut_backlog_records",
        "gauge",
        "Records accepted but not yet written.",
        &|s| s.queue_depth as f64,
    );
    family(
        "logcut_compress_backlog_segments",
        "gauge",
        "Sealed segments waiting for compression or being compressed.",
        &|s| s.compress_backlog as f64,
    );
    family(
        "logcut_segments_compressed_total",
        "counter",
        "Sealed segments compressed.",
        &|s| s.segments_compressed as f64,
    );
    family(
        "logcut_compress_seconds_total",
        "counter",
        "Time the compression workers spent.",
        &|s| s.compress_time.as_secs_f64(),
    );
    family(
        "logcut_segments_deleted_total",
        "counter",
        "Sealed segments deleted by the retention limits.",
        &|s| s.segments_deleted as f64,
    );
    family(
        "logcut_segments_deleted_unshipped_total",
        "counter",
        "Sealed segments the free-space floor deleted before they were shipped.",
        &|s| s.segments_deleted_unshipped as f64,
    );
    family(
        "logcut_segments_shipped_total",
        "counter",
        "Sealed segments shipped to object storage.",
        &|s| s.segments_shipped as f64,
    );
    family(
        "logcut_bytes_shipped_total",
        "counter",
        "Bytes shipped to object storage.",
        &|s| s.bytes_shipped as f64,
    );
    family(
        "logcut_ship_failures_total",
        "counter",
        "Uploads that failed (tried again after the backoff).",
        &|s| s.ship_failures as f64,
    );
    family(
        "logcut_ship_backlog_segments",
        "gauge",
        "Sealed segments not shipped yet.",
        &|s| s.ship_backlog as f64,
    );
    family(
        "logcut_oldest_unshipped_seconds",
        "gauge",
        "Age of the oldest sealed segment not shipped yet (0: none).",
        &|s| {
            s.oldest_unshipped.map_or(0.0, |t| {
                jiff::Timestamp::now()
                    .duration_since(t)
                    .as_secs_f64()
                    .max(0.0)
            })
        },
    );
    let _ = writeln!(
        out,
        "# HELP logcut_write_latency_seconds Time a write takes to hand its record over (to the file in direct mode, to the buffer in buffered mode), one record in 32 sampled.\n# TYPE logcut_write_latency_seconds summary"
    );
    for (log, s) in &stats {
        let h = &s.write_latency;
        for q in [0.5, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "logcut_write_latency_seconds{{log=\"{log}\",quantile=\"{q}\"}} {}",
                h.quantile(q).as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "logcut_write_latency_seconds_sum{{log=\"{log}\"}} {}",
            h.sum().as_secs_f64()
        );
        let _ = writeln!(
            out,
            "logcut_write_latency_seconds_count{{log=\"{log}\"}} {}",
            h.count()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert!(matches!(
            escape_label("app-1.x_y"),
            Cow::Borrowed("app-1.x_y")
        ));
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("one\ntwo"), r"one\ntwo");
        assert_eq!(escape_label("\\\"\n"), r#"\\\"\n"#);
        assert_eq!(escape_label("été\\"), "été\\\\");
    }

    #[test]
    fn loopback_addresses() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["0.0.0.0", "::", "192.168.1.1", "::ffff:10.0.0.1"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn requests_end_at_the_blank_line() {
        assert_eq!(
            header_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", 0),
            Some(24)
        );
        assert_eq!(header_end(b"GET / HTTP/1.0\n\n", 0), Some(16));
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn answers() {
        let ok = answer(b"GET /metrics HTTP/1.1\r\n\r\n", &[]);
        assert!(ok.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let head = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n", &[]);
        assert!(head.ends_with(b"\r\n\r\n"));
        let q = answer(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", &[]);
        assert!(q.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let nf = answer(b"GET /other HTTP/1.1\r\n\r\n", &[]);
        assert!(nf.starts_with(b"HTTP/1.1 404 "));
        let post = answer(b"POST /metrics HTTP/1.1\r\n\r\n", &[]);
        assert!(post.starts_with(b"HTTP/1.1 405 "));
    }
}
