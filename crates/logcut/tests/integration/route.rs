//! Routing records to per-tenant logs: every record in its tenant's log
//! exactly once, untrusted tenant values kept inside the root, the routing
//! table replaced while records flow.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use logcut::{Appender, Fsync, Router, RoutingTable};

use crate::kit::{TempDir, check_records, read_log, record, verify_ok};

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A policy for tests: small segments, no fsync (the tests check records,
/// not durability).
fn policy(max_size: u64) -> logcut::AppenderBuilder {
    Appender::builder().max_size(max_size).fsync(Fsync::Never)
}

/// 1,000 tenants written from 4 threads through a router that keeps at
/// most 64 logs open and cuts small segments: each tenant's log holds
/// exactly its records, each thread's in order, across the times its log
/// was closed and opened again; `verify` passes for every tenant; the
/// counters add up.
#[test]
fn a_thousand_tenants_from_four_threads_each_get_exactly_their_records() {
    const TENANTS: usize = 1000;
    const THREADS: usize = 4;
    const ROUNDS: u64 = 2;
    const BURST: u64 = 3;
    const LEN: usize = 64;
    let tmp = TempDir::new("route-1000");
    let root = tmp.join("root");
    let router = Router::builder(&root)
        .group("std", policy(300))
        .max_open(64)
        .build()
        .unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let router = router.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    for i in 0..TENANTS {
                        let tenant = format!("t{i:04}");
                        for k in 0..BURST {
                            let rec = record(t, round * BURST + k, LEN);
                            router.write_to(&[("tenant", &tenant)], &rec).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = router.stats();
    assert_eq!(
        s.records,
        (TENANTS * THREADS) as u64 * ROUNDS * BURST,
        "{s:?}"
    );
    assert_eq!(s.opened - s.evictions, s.open, "{s:?}");
    assert!(s.open <= 64, "{s:?}");
    // Every tenant opened in each round at least (64 of 1,000 stay open).
    assert!(s.opened >= (TENANTS as u64) * ROUNDS - 64, "{s:?}");
    assert_eq!(s.quarantined, 0);
    // Per group and per tenant, bounded: the top 10 and the rest summed.
    let per = THREADS as u64 * ROUNDS * BURST;
    assert_eq!(s.groups.len(), 1);
    let g = &s.groups[0];
    assert_eq!(
        (g.name.as_str(), g.records, g.tenants, g.open),
        ("std", s.records, 1000, s.open)
    );
    assert_eq!(g.bytes, s.records * LEN as u64);
    let top = router.top_tenants(10);
    assert_eq!(top.top.len(), 10);
    assert!(
        top.top
            .iter()
            .all(|t| t.records == per && t.bytes == per * LEN as u64),
        "{top:?}"
    );
    assert_eq!(top.top[0].tenant, "t0000");
    assert_eq!((top.others, top.other_records), (990, 990 * per));
    router.shutdown().unwrap();
    for i in 0..TENANTS {
        let dir = root.join("std").join(format!("t{i:04}"));
        let report = verify_ok(&dir);
        assert_eq!(
            report.records(),
            THREADS as u64 * ROUNDS * BURST,
            "{report}"
        );
        let counts = check_records(&read_log(&dir, "app"), LEN);
        for t in 0..THREADS {
            assert_eq!(
                counts.get(&t),
                Some(&(ROUNDS * BURST)),
                "tenant {i}: {counts:?}"
            );
        }
    }
    // Nothing but the group's tenants under the root.
    let top: BTreeSet<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| PathBuf::from(e.unwrap().file_name()))
        .collect();
    assert_eq!(top, BTreeSet::from([PathBuf::from("std")]));
}

/// The name grammar, as the crate documents it (the test's own copy).
fn safe(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= logcut::MAX_NAME_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// `v` quoted as the quarantine log keeps it.
fn quoted(v: &str) -> String {
    let shown: String = v
        .bytes()
        .take(256)
        .flat_map(std::ascii::escape_default)
        .map(char::from)
        .collect();
    let more = if v.len() > 256 {
        format!("+{}B", v.len() - 256)
    } else {
        String::new()
    };
    format!("\"{shown}\"{more}")
}

/// Writes one record per value through a fresh router; checks that nothing
/// appeared outside the root, that every unsafe value's record is in the
/// quarantine log behind its quoted value, and that safe ones got their own
/// log.
fn route_values(values: &[String]) {
    let tmp = TempDir::new("route-hostile");
    std::fs::create_dir_all(tmp.path()).unwrap();
    let root = tmp.join("root");
    let before = tree(tmp.path());
    let router = Router::builder(&root)
        .group("std", policy(1 << 20))
        .build()
        .unwrap();
    for (i, v) in values.iter().enumerate() {
        router
            .write_to(&[("tenant", v)], format!("record {i}\n").as_bytes())
            .unwrap();
    }
    let unsafe_count = values.iter().filter(|v| !safe(v)).count() as u64;
    let stats = router.stats();
    assert_eq!(stats.quarantined, unsafe_count);
    let in_quarantine = stats
        .groups
        .iter()
        .find(|g| g.name == logcut::QUARANTINE)
        .map_or(0, |g| g.records);
    assert_eq!(in_quarantine, unsafe_count, "{stats:?}");
    router.shutdown().unwrap();
    // Outside the root: exactly what was there.
    let after: BTreeSet<PathBuf> = tree(tmp.path())
        .into_iter()
        .filter(|p| !p.starts_with("root"))
        .collect();
    assert_eq!(after, before);
    let mut expected = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if safe(v) {
            let dir = root.join("std").join(v);
            let data = String::from_utf8(read_log(&dir, "app")).unwrap();
            assert!(data.contains(&format!("record {i}\n")), "{v:?}: {data:?}");
        } else {
            expected.push(format!("[tenant {}] record {i}\n", quoted(v)));
        }
    }
    if expected.is_empty() {
        assert!(!root.join("quarantine").exists());
        return;
    }
    verify_ok(&root.join("quarantine"));
    let data = String::from_utf8(read_log(&root.join("quarantine"), "app")).unwrap();
    assert_eq!(data, expected.concat());
    // Only the group's safe tenants and the quarantine under the root.
    for p in tree(&root) {
        let mut parts = p.components().map(|c| c.as_os_str().to_str().unwrap());
        match parts.next() {
            Some("quarantine") => {}
            Some("std") => {
                if let Some(t) = parts.next() {
                    assert!(safe(t), "{p:?}");
                }
            }
            other => panic!("unexpected {other:?} in {p:?}"),
        }
    }
}

/// Tenant values that must never become a path: each record goes to
/// quarantine with its value, and nothing is created outside the root.
#[test]
fn hostile_tenant_values_stay_in_quarantine_inside_the_root() {
    let long = "x".repeat(10_000);
    let values: Vec<String> = [
        "../x",
        "..",
        ".",
        "/etc",
        "/tmp/evil",
        "a/b",
        "a\0b",
        "\u{7}bell",
        "tab\there",
        "line\n",
        "",
        " ",
        long.as_str(),
        "caf\u{e9}",
        "e\u{301}",
        "\u{FB01}le",
        "Acme",
        "ACME",
        "-rf",
        "~root",
        "$(reboot)",
        "acme",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    route_values(&values);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 16,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Any tenant values (any Unicode, control characters, separators):
    /// safe ones get their log, the rest quarantine, nothing outside the
    /// root.
    #[test]
    fn any_tenant_values_stay_inside_the_root(
        values in proptest::collection::vec(proptest::arbitrary::any::<String>(), 1..12)
    ) {
        route_values(&values);
    }
}

/// The routing table replaced while four threads write: every record is in
/// exactly one group, none lost; every record numbered after the swap
/// returned is under the new table's group, and none under the old one's
/// was still being written then.
#[test]
fn a_routing_table_swapped_while_records_flow_loses_nothing() {
    const THREADS: usize = 4;
    const PER_THREAD: u64 = 3000;
    let tmp = TempDir::new("route-swap");
    let root = tmp.join("root");
    let old = RoutingTable::new("old");
    let router = Router::builder(&root)
        .group("old", policy(4096))
        .group("new", policy(4096))
        .routes(old)
        .build()
        .unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let started = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (router, next, started) = (router.clone(), Arc::clone(&next), Arc::clone(&started));
            std::thread::spawn(move || {
                started.wait();
                for _ in 0..PER_THREAD {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let rec = format!("n{n:08}\n");
                    router
                        .write_to(&[("tenant", "acme")], rec.as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    started.wait();
    // Once some records went under the old table.
    while next.load(Ordering::SeqCst) < 1000 {
        std::thread::yield_now();
    }
    router.set_routes(RoutingTable::new("new")).unwrap();
    let after_swap = next.load(Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    router.shutdown().unwrap();
    let numbers = |group: &str| -> Vec<u64> {
        let dir = root.join(group).join("acme");
        verify_ok(&dir);
        String::from_utf8(read_log(&dir, "app"))
            .unwrap()
            .lines()
            .map(|l| l[1..].parse().unwrap())
            .collect()
    };
    let (old_n, new_n) = (numbers("old"), numbers("new"));
    let total = THREADS as u64 * PER_THREAD;
    assert!(after_swap < total, "the swap came after the last record");
    let mut all: Vec<u64> = old_n.iter().chain(&new_n).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..total).collect::<Vec<_>>(),
        "lost or repeated records"
    );
    assert!(
        old_n.iter().all(|&n| n < after_swap),
        "a record under the old table after the swap"
    );
    assert!(!old_n.is_empty() && !new_n.is_empty());
}

/// Events routed by their fields and their spans' (the innermost value
/// wins), formatted by the usual `fmt` layer: each in its tenant's log
/// under the group the table picks, whole, one record each; an event with
/// no tenant goes to the default group's `_none` log.
#[cfg(feature = "tracing")]
#[test]
fn tracing_events_are_routed_by_their_spans_fields() {
    use tracing_subscriber::layer::SubscriberExt;
    let tmp = TempDir::new("route-tracing");
    let root = tmp.join("root");
    let router = Router::builder(&root)
        .group("std", policy(1 << 20))
        .group("prod", policy(1 << 20))
        .routes(RoutingTable::new("std").route("env=prod", "prod").unwrap())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(router.layer()).with(
        tracing_subscriber::fmt::layer()
            .without_time()
            .with_target(false)
            .with_ansi(false)
            .with_writer(router.clone()),
    );
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", tenant = "acme", env = "prod");
        let _o = outer.enter();
        tracing::info!("m-one");
        {
            let inner = tracing::info_span!("step", tenant = "zeta");
            let _i = inner.enter();
            tracing::info!("m-two");
            tracing::info!(env = "dev", "m-three");
        }
        tracing::info!(tenant = "bolt", "m-four");
        drop(_o);
        tracing::info!("m-five");
        let late = tracing::info_span!("late", tenant = tracing::field::Empty);
        late.record("tenant", "acme");
        let _l = late.enter();
        tracing::info!("m-six");
    });
    router.shutdown().unwrap();
    let log = |g: &str, t: &str| -> Vec<String> {
        let dir = root.join(g).join(t);
        verify_ok(&dir);
        String::from_utf8(read_log(&dir, "app"))
            .unwrap()
            .lines()
            .map(|l| {
                let w = l.split_whitespace().find(|w| w.starts_with("m-"));
                w.unwrap_or(l).to_string()
            })
            .collect()
    };
    assert_eq!(log("prod", "acme"), ["m-one"]);
    assert_eq!(log("prod", "zeta"), ["m-two"]);
    assert_eq!(log("std", "zeta"), ["m-three"]);
    assert_eq!(log("prod", "bolt"), ["m-four"]);
    assert_eq!(log("std", logcut::NO_TENANT), ["m-five"]);
    assert_eq!(log("std", "acme"), ["m-six"]);
}

/// What `router_guard_child` logs: 4 threads of this many events each.
const GUARD_EVENTS: u64 = 20_000;

/// A program whose global tracing subscriber routes through a router of
/// Buffered logs and that returns from `main` (here: from the test, after
/// which the harness exits without dropping the global subscriber): the
/// router's guard must write and seal everything on the way out.
#[cfg(feature = "tracing")]
#[test]
#[ignore = "run as a child process by a_routers_guard_seals_every_tenant_when_main_returns"]
fn router_guard_child() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let root = crate::kit::child_env(
        "LOGCUT_ROUTER_GUARD_DIR",
        "a_routers_guard_seals_every_tenant_when_main_returns",
    );
    let buffered = || {
        Appender::builder()
            .mode(logcut::Mode::Buffered)
            .max_size(64 << 10)
    };
    let router = Router::builder(&root)
        .group("std", buffered())
        .group("prod", buffered())
        .routes(RoutingTable::new("std").route("env=prod", "prod").unwrap())
        .build()
        .unwrap();
    let _guard = router.shutdown_guard();
    tracing_subscriber::registry()
        .with(router.layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(router.clone()),
        )
        .init();
    drop(router);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let env = if t % 2 == 0 { "prod" } else { "dev" };
                let span = tracing::info_span!("work", tenant = "acme", env);
                let _in = span.enter();
                for i in 0..GUARD_EVENTS {
                    tracing::info!("thread={t} seq={i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Runs `router_guard_child` and checks that every event is in its
/// tenant's log (threads 0 and 2 in `prod`, 1 and 3 in `std`), exactly
/// once, in order per thread, and that both logs verify.
#[cfg(feature = "tracing")]
#[test]
fn a_routers_guard_seals_every_tenant_when_main_returns() {
    let tmp = TempDir::new("route-guard");
    let root = tmp.join("root");
    crate::kit::run_child_test(
        "route::router_guard_child",
        "LOGCUT_ROUTER_GUARD_DIR",
        &root,
    );
    for (group, threads) in [("prod", [0usize, 2]), ("std", [1, 3])] {
        let dir = root.join(group).join("acme");
        let report = verify_ok(&dir);
        assert_eq!(report.records(), 2 * GUARD_EVENTS, "{report}");
        let text = String::from_utf8(read_log(&dir, "app")).unwrap();
        let mut next = [0u64; 4];
        for line in text.lines() {
            let rest = line.split("thread=").nth(1).unwrap();
            let (t, seq) = rest.split_once(" seq=").unwrap();
            let t: usize = t.parse().unwrap();
            assert!(threads.contains(&t), "thread {t} in {group}");
            assert_eq!(seq.parse::<u64>().unwrap(), next[t], "thread {t}");
            next[t] += 1;
        }
        for t in threads {
            assert_eq!(next[t], GUARD_EVENTS, "{group}: thread {t}");
        }
    }
}

/// A router dropped without `shutdown` seals every open log at once, even
/// one this very thread still holds (it keeps the last log it wrote to, to
/// write the next record without the router's lock).
#[test]
fn a_router_dropped_without_shutdown_seals_its_logs() {
    let tmp = TempDir::new("route-drop");
    let root = tmp.join("root");
    let router = Router::builder(&root)
        .group(
            "std",
            Appender::builder()
                .mode(logcut::Mode::Buffered)
                .fsync(Fsync::Never),
        )
        .build()
        .unwrap();
    for i in 0..100 {
        router
            .write_to(&[("tenant", "acme")], &record(0, i, LEN_DROP))
            .unwrap();
    }
    drop(router);
    let dir = root.join("std/acme");
    let report = verify_ok(&dir);
    assert_eq!(report.records(), 100, "{report}");
    assert_eq!(report.logs[0].open_sessions, 0, "{report}");
    assert_eq!(
        check_records(&read_log(&dir, "app"), LEN_DROP).get(&0),
        Some(&100)
    );
}

const LEN_DROP: usize = 64;

/// `log` records, routed by their key-values: each tenant's log holds
/// exactly its records, with the key-values after the message; a record
/// without a tenant goes to the default group's `_none` log.
#[cfg(feature = "log")]
#[test]
fn log_records_are_routed_by_their_key_values() {
    use log::Log as _;
    let dir = TempDir::new("route-log");
    let router = Router::builder(dir.path())
        .group("std", policy(2000))
        .group("vip", policy(2000))
        .routes(
            RoutingTable::new("std")
                .route("tenant=acme", "vip")
                .unwrap(),
        )
        .build()
        .unwrap();
    let backend = logcut::LogBackend::routed(router.clone());
    for i in 0..300u32 {
        let tenant = ["acme", "bolt", "zeta"][(i % 3) as usize];
        let kv: &[(&str, &str)] = &[("tenant", tenant), ("order", "7")];
        backend.log(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("svc")
                .args(format_args!("record {i:04}"))
                .key_values(&kv)
                .build(),
        );
    }
    backend.log(
        &log::Record::builder()
            .level(log::Level::Warn)
            .target("svc")
            .args(format_args!("no tenant"))
            .build(),
    );
    backend.flush();
    router.shutdown().unwrap();
    for (path, tenant, phase) in [
        ("vip/acme", "acme", 0),
        ("std/bolt", "bolt", 1),
        ("std/zeta", "zeta", 2),
    ] {
        let log = dir.join(path);
        assert_eq!(verify_ok(&log).records(), 100, "{path}");
        let text = String::from_utf8(read_log(&log, "app")).unwrap();
        let got: Vec<&str> = text
            .lines()
            .map(|l| l.split_once(" INFO  svc: ").expect(l).1)
            .collect();
        let want: Vec<String> = (0..100)
            .map(|k| format!("record {:04} tenant={tenant} order=7", k * 3 + phase))
            .collect();
        assert_eq!(got, want, "{path}");
    }
    let none = String::from_utf8(read_log(&dir.join("std/_none"), "app")).unwrap();
    assert!(none.ends_with(" WARN  svc: no tenant\n"), "{none:?}");
    assert_eq!(none.lines().count(), 1);
}

/// Sealed bytes on disk of the log in `dir`, and its delete entries
/// (end of the deleted segment, reason).
fn sealed_and_deleted(dir: &Path) -> (u64, Vec<(jiff::Timestamp, String)>) {
    let bytes = logcut_format::segments(dir, "app")
        .unwrap()
        .iter()
        .filter(|s| s.seal.is_some())
        .map(|s| std::fs::metadata(&s.path).unwrap().len())
        .sum();
    let m = logcut_format::manifest::Manifest::read(&dir.join("app.manifest")).unwrap();
    let ends: std::collections::HashMap<u64, jiff::Timestamp> =
        m.seals().map(|s| (s.seq, s.end)).collect();
    let deleted = m
        .entries
        .iter()
        .filter_map(|e| match e {
            logcut_format::manifest::Entry::Delete(d) => {
                Some((ends[&d.seq], d.reason.as_str().to_string()))
            }
            _ => None,
        })
        .collect();
    (bytes, deleted)
}

#[test]
fn the_root_budget_takes_the_lowest_priority_groups_oldest_segments_first() {
    let dir = TempDir::new("route-budget");
    let build = |max_total: u64| {
        // Buffered: segments of exactly 1,000 bytes.
        let p = || policy(1000).mode(logcut::Mode::Buffered);
        Router::builder(dir.path())
            .group("debug", p())
            .group("paid", p())
            .priority("paid", 10)
            .routes(
                RoutingTable::new("debug")
                    .route("plan=paid", "paid")
                    .unwrap(),
            )
            .root_max_total(max_total)
            .budget_interval(None)
            // Fewer than the logs: some are closed when the pass comes.
            .max_open(2)
            .build()
            .unwrap()
    };
    let router = build(u64::MAX);
    let write = |tenant: &str, plan: &str, from: u64, n: u64| {
        for i in from..from + n {
            router
                .write_to(&[("tenant", tenant), ("plan", plan)], &record(0, i, 100))
                .unwrap();
        }
    };
    // The paid tenant's records are the oldest.
    write("acme", "paid", 0, 100);
    for k in 0..5 {
        write("d1", "free", k * 30, 30);
        write("d2", "free", k * 30, 30);
    }
    assert_eq!(router.apply_budget().unwrap(), 0, "under the budget");
    router.shutdown().unwrap();
    let logs = ["paid/acme", "debug/d1", "debug/d2"].map(|l| dir.join(l));
    let before: Vec<u64> = logs.iter().map(|d| sealed_and_deleted(d).0).collect();
    assert_eq!(before, [10_000, 15_000, 15_000]);
    // Room for the paid tenant and 3,000 bytes of debug.
    let router = build(before[0] + 3000);
    let deleted = router.apply_budget().unwrap();
    assert!(deleted > 0);
    assert_eq!(router.stats().budget_deleted, deleted);
    let after: Vec<_> = logs.iter().map(|d| sealed_and_deleted(d)).collect();
    assert!(after.iter().map(|a| a.0).sum::<u64>() <= before[0] + 3000);
    assert_eq!(after[0].0, before[0], "the paid tenant lost nothing");
    assert!(after[0].1.is_empty());
    // Across both debug tenants, the oldest went: every deleted segment
    // ended no later than every kept one.
    let gone: Vec<jiff::Timestamp> = after[1..]
        .iter()
        .flat_map(|a| a.1.iter().map(|d| d.0))
        .collect();
    assert!(
        after[1..]
            .iter()
            .all(|a| a.1.iter().all(|d| d.1 == "root-bytes"))
    );
    assert_eq!(gone.len() as u64, deleted);
    for d in &logs[1..] {
        let m = logcut_format::manifest::Manifest::read(&d.join("app.manifest")).unwrap();
        let del = m.deleted();
        for s in m.seals().filter(|s| !del.contains_key(&s.seq)) {
            assert!(gone.iter().all(|g| *g <= s.end), "{}", d.display());
        }
    }
    // Tighter than the paid tenant alone: every debug segment, then the
    // paid tenant's oldest.
    let router2 = build(before[0] / 2);
    router.shutdown().unwrap();
    router2.apply_budget().unwrap();
    router2.shutdown().unwrap();
    let last: Vec<_> = logs.iter().map(|d| sealed_and_deleted(d)).collect();
    assert_eq!((last[1].0, last[2].0), (0, 0));
    assert_eq!(last[0].0, 5000, "{last:?}");
    // The paid tenant's oldest went: what is left are its newest records.
    crate::kit::check_tail_records(&read_log(&logs[0], "app"), 100, 1, 100, 50);
    // Each log still holds every record it was given, or counts it deleted.
    for (d, n) in logs.iter().zip([100u64, 150, 150]) {
        let r = verify_ok(d);
        assert_eq!(r.records() + r.deleted(), n, "{}: {r}", d.display());
    }
}
