//! `--metrics ADDR`: the appender's stats in Prometheus text format at
//! `http://ADDR/metrics`. Nothing listens unless the flag is given; give a
//! loopback address (127.0.0.1:9184) unless the metrics must be reachable
//! from elsewhere.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};

/// Starts serving `logs` (name, appender) on `addr` from a background thread.
pub(crate) fn serve(addr: SocketAddr, logs: Vec<(String, logcut::Appender)>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
    std::thread::Builder::new()
        .name("logcut-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // One request per connection, a slow client cannot hold it.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                let _ = answer(conn, &logs);
            }
        })
        .context("cannot start the metrics thread")?;
    Ok(())
}

fn answer(conn: TcpStream, logs: &[(String, logcut::Appender)]) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut conn = conn;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if !request.starts_with("GET ") || (path != "/metrics" && !path.starts_with("/metrics?")) {
        return conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n",
        );
    }
    let body = render(logs);
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The Prometheus text exposition of every log's stats.
pub(crate) fn render(logs: &[(String, logcut::Appender)]) -> String {
    let stats: Vec<(&str, logcut::Stats)> =
        logs.iter().map(|(n, a)| (n.as_str(), a.stats())).collect();
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
    let _ = writeln!(
        out,
        "# HELP logcut_write_latency_seconds Time in write calls (sampled).\n# TYPE logcut_write_latency_seconds summary"
    );
    for (log, s) in &stats {
        for q in [0.5, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "logcut_write_latency_seconds{{log=\"{log}\",quantile=\"{q}\"}} {}",
                s.write_latency.quantile(q).as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "logcut_write_latency_seconds_count{{log=\"{log}\"}} {}",
            s.write_latency.count()
        );
    }
    out
}
