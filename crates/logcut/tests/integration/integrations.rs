use crate::kit::*;

#[cfg(feature = "tracing")]
#[test]
fn tracing_events_are_whole_records() {
    use tracing_subscriber::fmt::format::FmtSpan;
    let dir = TempDir::new("tracing");
    let a = logcut::Appender::builder()
        .dir(dir.path())
        .max_size(4096)
        .mode(logcut::Mode::Buffered)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(a.clone())
        .with_ansi(false)
        .with_span_events(FmtSpan::NONE)
        .with_thread_names(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..2_000 {
                        tracing::info!(thread = t, seq = i, "event with\nembedded newline");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    a.shutdown().unwrap();
    let report = verify_ok(dir.path());
    assert_eq!(report.records(), 8_000);
    let text = String::from_utf8(read_log(dir.path(), "app")).unwrap();
    // Each event is "<time> INFO <target>: event with\nembedded newline thread=T seq=I\n".
    let mut next = [0u32; 4];
    let mut events = 0;
    for chunk in text.split(" INFO ").skip(1) {
        events += 1;
        let t: usize = chunk.split("thread=").nth(1).unwrap()[..1].parse().unwrap();
        let seq: u32 = chunk
            .split("seq=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(seq, next[t], "thread {t}");
        next[t] += 1;
    }
    assert_eq!(events, 8_000);
    // No event is split across two segments: every sealed file ends with
    // the end of an event.
    for seg in logcut_format::segments(dir.path(), "app").unwrap() {
        let data = std::fs::read(&seg.path).unwrap();
        assert!(
            data.ends_with(b"\n")
                && String::from_utf8_lossy(&data)
                    .trim_end()
                    .rsplit('\n')
                    .next()
                    .unwrap()
                    .contains("seq=")
        );
    }
}

#[cfg(feature = "log")]
#[test]
fn log_backend_writes_one_line_per_record() {
    let dir = TempDir::new("log");
    let clock = logcut::ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap());
    let a = logcut::Appender::builder()
        .dir(dir.path())
        .clock(clock)
        .build()
        .unwrap();
    logcut::LogBackend::new(a.clone())
        .max_level(log::LevelFilter::Info)
        .install()
        .unwrap();
    log::info!(target: "svc", "hello {}", 42);
    log::debug!("filtered out");
    log::warn!("multi\nline");
    log::logger().flush();
    a.shutdown().unwrap();
    assert_eq!(verify_ok(dir.path()).records(), 2);
    assert_eq!(
        String::from_utf8(read_log(dir.path(), "app")).unwrap(),
        "2026-11-24T10:00:00Z INFO  svc: hello 42\n2026-11-24T10:00:00Z WARN  integration::integrations: multi\nline\n"
    );
}

#[test]
fn stats_count_what_happened() {
    let dir = TempDir::new("stats");
    let a = logcut::Appender::builder()
        .dir(dir.path())
        .max_size(100)
        .build()
        .unwrap();
    for i in 0..50 {
        a.write_record(&record(0, i, 50)).unwrap();
        a.tick().unwrap();
    }
    let s = a.stats();
    assert_eq!(
        (s.records, s.bytes, s.records_written, s.records_lost),
        (50, 2_500, 50, 0)
    );
    assert_eq!(s.rotations, 24);
    assert_eq!(s.fallback, logcut::FallbackState::Closed);
    assert_eq!(s.write_latency.count(), 50 / 32);
    a.shutdown().unwrap();
    assert_eq!(a.stats().rotations, 25);
}

/// Buffered mode times the hand-over to the buffer, one record in 32 per
/// thread, through `write_record` and `write_batch` alike.
#[test]
fn buffered_writes_are_timed_one_record_in_32() {
    let dir = TempDir::new("latency-buffered");
    let a = logcut::Appender::builder()
        .dir(dir.path())
        .mode(logcut::Mode::Buffered)
        .build()
        .unwrap();
    // A thread of its own: the sampling counter is per thread.
    let w = a.clone();
    std::thread::spawn(move || {
        for i in 0..3_200 {
            w.write_record(&record(0, i, 50)).unwrap();
        }
    })
    .join()
    .unwrap();
    let h = a.stats().write_latency;
    assert_eq!(h.count(), 100, "{h:?}");
    assert!(h.quantile(0.5) > std::time::Duration::ZERO, "{h:?}");
    assert!(h.sum() > std::time::Duration::ZERO, "{h:?}");
    // Batches of 100 records: 64 batches, 6,400 records, 200 samples.
    let w = a.clone();
    std::thread::spawn(move || {
        for b in 0..64u64 {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for i in 0..100 {
                buf.extend_from_slice(&record(1, b * 100 + i, 50));
                ends.push(buf.len());
            }
            w.write_batch(&buf, &ends).unwrap();
        }
    })
    .join()
    .unwrap();
    let h2 = a.stats().write_latency;
    assert_eq!(h2.count(), 300, "{h2:?}");
    assert!(h2.sum() > h.sum(), "{h2:?}");
    a.shutdown().unwrap();
    assert_eq!(verify_ok(dir.path()).records(), 9_600);
}

#[cfg(feature = "metrics")]
#[test]
fn stats_are_published_through_the_metrics_facade() {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, atomic::AtomicU64},
    };

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            // Only this test's log and router: other tests' publish too.
            let ours = key.labels().any(|l| {
                (l.key() == "log" && l.value() == "metricslog")
                    || (l.key() == "router" && l.value() == "metricsroot")
            });
            if !ours {
                return Counter::noop();
            }
            // A router's series by name and labels (tenant, group).
            let mut name = key.name().to_string();
            for l in key
                .labels()
                .filter(|l| l.key() == "group" || l.key() == "tenant")
            {
                name.push_str(&format!(",{}={}", l.key(), l.value()));
            }
            let cell = self.0.lock().unwrap().entry(name).or_default().clone();
            Counter::from_arc(cell)
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    let capture = Capture::default();
    metrics::set_global_recorder(capture.clone()).unwrap();
    let dir = TempDir::new("metrics");
    let a = logcut::Appender::builder()
        .dir(dir.path())
        .name("metricslog")
        .max_size(100)
        .build()
        .unwrap();
    for i in 0..10 {
        a.write_record(&record(0, i, 50)).unwrap();
        a.tick().unwrap();
    }
    a.shutdown().unwrap();
    let get = |name: &str| {
        capture
            .0
            .lock()
            .unwrap()
            .get(name)
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    assert_eq!(get("logcut_records_total"), Some(10));
    assert_eq!(get("logcut_bytes_total"), Some(500));
    assert_eq!(get("logcut_records_written_total"), Some(10));
    assert_eq!(get("logcut_rotations_total"), Some(5));
    assert_eq!(get("logcut_records_lost_total"), Some(0));
    // A router: totals, per group, and 20 tenants by name, the rest summed
    // as `_other` (30 tenants here: the series stay bounded).
    let router = logcut::Router::builder(dir.path().join("metricsroot"))
        .group(
            "std",
            logcut::Appender::builder().fsync(logcut::Fsync::Never),
        )
        .build()
        .unwrap();
    for t in 0..30u64 {
        for i in 0..=t {
            router
                .write_to(&[("tenant", &format!("t{t:02}"))], &record(0, i, 50))
                .unwrap();
        }
    }
    router.shutdown().unwrap();
    let total: u64 = (1..=30).sum();
    assert_eq!(get("logcut_router_records_total"), Some(total));
    assert_eq!(
        get("logcut_router_group_records_total,group=std"),
        Some(total)
    );
    assert_eq!(
        get("logcut_router_group_bytes_total,group=std"),
        Some(total * 50)
    );
    // The busiest 20 (t10 to t29) by name; t00 to t09 summed.
    assert_eq!(
        get("logcut_router_tenant_records_total,group=std,tenant=t29"),
        Some(30)
    );
    assert_eq!(
        get("logcut_router_tenant_records_total,group=std,tenant=t10"),
        Some(11)
    );
    assert_eq!(
        get("logcut_router_tenant_records_total,group=std,tenant=t09"),
        None
    );
    assert_eq!(
        get("logcut_router_tenant_records_total,group=_all,tenant=_other"),
        Some((1..=10).sum())
    );
    let series = capture
        .0
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.contains("tenant="))
        .count();
    assert_eq!(series, 21);
}

/// What `guard_child` logs: 4 threads of this many events each.
const GUARD_EVENTS: u64 = 50_000;

/// A program whose global logger keeps a clone of a Buffered appender and
/// that returns from `main` (here: from the test, after which the harness
/// exits without dropping the global logger): the guard must write and
/// seal everything on the way out.
#[cfg(all(feature = "tracing", feature = "log"))]
#[test]
#[ignore = "run as a child process by shutdown_guard_*"]
fn guard_child() {
    let dir = child_env("LOGCUT_GUARD_DIR", "shutdown_guard_*");
    let via_log = match child_env("LOGCUT_GUARD_VIA", "shutdown_guard_*").as_str() {
        "log" => true,
        "tracing" => false,
        other => panic!("LOGCUT_GUARD_VIA={other}"),
    };
    let a = logcut::Appender::builder()
        .dir(&dir)
        .max_size(256 << 10)
        .mode(logcut::Mode::Buffered)
        .build()
        .unwrap();
    let _guard = a.shutdown_guard();
    if via_log {
        logcut::LogBackend::new(a.clone())
            .max_level(log::LevelFilter::Info)
            .install()
            .unwrap();
    } else {
        tracing_subscriber::fmt()
            .with_writer(a.clone())
            .with_ansi(false)
            .init();
    }
    drop(a);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..GUARD_EVENTS {
                    if via_log {
                        log::info!("thread={t} seq={i}");
                    } else {
                        tracing::info!("thread={t} seq={i}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Runs `guard_child` through `via` and checks every event is in the log
/// exactly once, in order per thread, and the log verifies.
#[cfg(all(feature = "tracing", feature = "log"))]
fn shutdown_guard_through(via: &str) {
    let dir = TempDir::new(&format!("guard-{via}"));
    let out = child_test("integrations::guard_child")
        .env("LOGCUT_GUARD_DIR", dir.path())
        .env("LOGCUT_GUARD_VIA", via)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = verify_ok(dir.path());
    assert_eq!(report.records(), 4 * GUARD_EVENTS);
    let text = String::from_utf8(read_log(dir.path(), "app")).unwrap();
    let mut next = [0u64; 4];
    for line in text.lines() {
        let rest = line.split("thread=").nth(1).unwrap();
        let (t, seq) = rest.split_once(" seq=").unwrap();
        let t: usize = t.parse().unwrap();
        assert_eq!(seq.parse::<u64>().unwrap(), next[t], "thread {t}");
        next[t] += 1;
    }
    assert_eq!(next, [GUARD_EVENTS; 4]);
}

#[cfg(all(feature = "tracing", feature = "log"))]
#[test]
fn shutdown_guard_seals_everything_when_main_returns_with_a_global_subscriber() {
    shutdown_guard_through("tracing");
}

#[cfg(all(feature = "tracing", feature = "log"))]
#[test]
fn shutdown_guard_seals_everything_when_main_returns_with_a_global_logger() {
    shutdown_guard_through("log");
}

/// `JsonLayer`: every event one line that parses as JSON, with its level,
/// target, message and fields; `trace_id`, `span_id` and the lifted
/// business keys from the enclosing spans (the innermost value wins),
/// late-recorded span fields too; the span path from the root; strings
/// escaped whatever they hold. Through a router, the lines land in their
/// tenants' logs.
#[cfg(feature = "json")]
#[test]
fn json_lines_carry_the_trace_context_of_their_spans() {
    use tracing_subscriber::layer::SubscriberExt;
    let tmp = crate::kit::TempDir::new("json");
    let router = logcut::Router::builder(tmp.join("root"))
        .group(
            "std",
            logcut::Appender::builder().fsync(logcut::Fsync::Never),
        )
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(router.layer())
        .with(logcut::JsonLayer::new(router.clone()).lift(["order_id", "user_id"]));
    tracing::subscriber::with_default(subscriber, || {
        let req = tracing::info_span!(
            "request",
            tenant = "acme",
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
            user_id = 7,
            order_id = tracing::field::Empty
        );
        let _r = req.enter();
        tracing::info!(amount = 9.5, ok = true, "start \"quoted\"\nnext");
        req.record("order_id", 42);
        let step = tracing::warn_span!("step", span_id = "00f067aa0ba902b7", user_id = 8);
        let _s = step.enter();
        tracing::warn!(note = ?vec![1, 2], "inner");
    });
    router.shutdown().unwrap();
    let text = String::from_utf8(crate::kit::read_log(&tmp.join("root/std/acme"), "app")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (a, b) = (&lines[0], &lines[1]);
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["message"], "start \"quoted\"\nnext");
    assert_eq!(a["fields"]["amount"], 9.5);
    assert_eq!(a["fields"]["ok"], true);
    assert_eq!(a["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(a["user_id"], 7);
    assert!(
        a.get("order_id").is_none() && a.get("span_id").is_none(),
        "{a}"
    );
    assert_eq!(a["spans"], serde_json::json!(["request"]));
    assert!(
        a["target"].as_str().unwrap().contains("integrations"),
        "{a}"
    );
    let ts = a["timestamp"].as_str().unwrap();
    assert!(
        ts.parse::<jiff::Timestamp>().is_ok() && ts.ends_with('Z'),
        "{ts}"
    );
    assert_eq!(b["level"], "WARN");
    assert_eq!(b["message"], "inner");
    assert_eq!(b["fields"]["note"], "[1, 2]");
    assert_eq!(b["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(b["span_id"], "00f067aa0ba902b7");
    assert_eq!(b["order_id"], 42);
    assert_eq!(b["user_id"], 8);
    assert_eq!(b["spans"], serde_json::json!(["request", "step"]));
}

/// With feature `opentelemetry`, a line beneath a span with an
/// OpenTelemetry context (here a remote parent, as a propagator extracts
/// from a request's headers) carries its trace id; a span field
/// `trace_id` still wins; a span without a valid context adds none.
#[cfg(feature = "opentelemetry")]
#[test]
fn json_lines_carry_the_opentelemetry_trace_id() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt;
    let dir = crate::kit::TempDir::new("json-otel");
    let a = logcut::Appender::builder().dir(dir.path()).build().unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer())
        .with(logcut::JsonLayer::new(a.clone()));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    tracing::subscriber::with_default(subscriber, || {
        let remote = SpanContext::new(
            TraceId::from_hex(trace).unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let req = tracing::info_span!("request");
        req.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
            .unwrap();
        let _r = req.enter();
        tracing::info!("from otel");
        let own = tracing::info_span!("own", trace_id = "field-wins");
        let _o = own.enter();
        tracing::info!("from the field");
        drop(_o);
        drop(_r);
        tracing::info!("no span");
    });
    a.shutdown().unwrap();
    let text = String::from_utf8(crate::kit::read_log(dir.path(), "app")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["trace_id"], trace, "{text}");
    let span_id = lines[0]["span_id"].as_str().expect("a span id");
    assert_eq!(span_id.len(), 16, "{span_id}");
    assert_eq!(lines[1]["trace_id"], "field-wins");
    assert!(lines[2].get("trace_id").is_none(), "{}", lines[2]);
}
