//! Faults real file systems have, injected by the test file system:
//! `RENAME_NOREPLACE` refused (FUSE file systems such as LazyFS and sshfs,
//! older NFS), and writes failing with EIO.

use std::{io::Write, time::Duration};

use logcut::{Appender, Compression, Mode};
use logcut_powercut::Faults;

use crate::kit::{self, LEN, LOGS, TempDir};

/// Every record of log `app` in `dir`, checked whole, in order per writer.
fn read_ids(dir: &std::path::Path) -> Vec<(usize, u64)> {
    let data = logcut_format::read_all(dir, "app").expect("read log");
    assert_eq!(data.len() % LEN, 0, "a torn record");
    data.chunks(LEN)
        .map(|r| kit::parse(r).expect("a damaged record"))
        .collect()
}

/// Shutdown renames the active file to its sealed name with
/// `RENAME_NOREPLACE`; a file system that refuses the flag (EINVAL) made
/// every shutdown fail ("seal failed ... Invalid argument") and left the
/// last segment unsealed. Both modes, with cuts, compression (its rename
/// of the compressed file) and a restart.
#[test]
fn a_file_system_without_rename_noreplace() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("norename");
        let faults = Faults {
            refuse_rename_flags: true,
            ..Faults::default()
        };
        let Some(m) = kit::mount(kit::empty_disk(), tmp.path(), faults) else {
            return;
        };
        let dir = tmp.path().join(LOGS);
        let reported = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for round in 0..2u64 {
            let r = reported.clone();
            let app = Appender::builder()
                .dir(&dir)
                .name("app")
                .mode(mode)
                .max_size(4 * 1024)
                .compress(Compression::Zstd { level: 1 })
                // Time to finish the compressions at the end, on FUSE under load.
                .shutdown_timeout(std::time::Duration::from_secs(120))
                .error_handler(move |e: logcut::Error| r.lock().expect("lock").push(e.to_string()))
                .build()
                .expect("start");
            for seq in 0..200 {
                (&app)
                    .write_all(&kit::record(0, round * 200 + seq))
                    .expect("write");
            }
            app.rotate().expect("rotate");
            app.shutdown()
                .unwrap_or_else(|e| panic!("{mode:?}: shutdown: {e}"));
            assert_eq!(
                app.stats().segments_compressed,
                app.stats().rotations,
                "{mode:?}"
            );
        }
        assert_eq!(
            *reported.lock().expect("lock"),
            Vec::<String>::new(),
            "{mode:?}"
        );
        let report = logcut::verify(&dir).expect("verify");
        assert!(report.is_ok(), "{mode:?}: {report}");
        let want: Vec<(usize, u64)> = (0..400).map(|s| (0, s)).collect();
        assert_eq!(read_ids(&dir), want, "{mode:?}");
        assert_eq!(report.records(), 400, "{mode:?}");
        drop(m);
    }
}

/// Writes failing with EIO: the records are held, in order, and written
/// when writes work again; none lost, none twice.
#[test]
fn writes_failing_with_eio_are_retried() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let tmp = TempDir::new("eio");
        let Some(m) = kit::mount(kit::empty_disk(), tmp.path(), Faults::default()) else {
            return;
        };
        let dir = tmp.path().join(LOGS);
        let errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let e = errors.clone();
        let app = Appender::builder()
            .dir(&dir)
            .name("app")
            .mode(mode)
            .max_size(8 * 1024)
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .error_handler(move |_err: logcut::Error| {
                e.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .build()
            .expect("start");
        for seq in 0..100 {
            (&app).write_all(&kit::record(0, seq)).expect("write");
        }
        app.flush_records().expect("flush");
        m.set_faults(Faults {
            fail_writes: Some(libc::EIO),
            ..Faults::default()
        });
        for seq in 100..300 {
            (&app)
                .write_all(&kit::record(0, seq))
                .expect("write while failing");
        }
        // Wait until the file system has failed a write and the appender
        // holds records (Buffered: its background thread got there).
        kit::wait_for("a failed write", || {
            m.counts().failed_writes > 0 && app.stats().queue_depth > 0
        });
        m.set_faults(Faults::default());
        app.shutdown()
            .unwrap_or_else(|e| panic!("{mode:?}: shutdown: {e}"));
        let stats = app.stats();
        assert!(stats.write_failures > 0, "{mode:?}: {stats:?}");
        assert_eq!(stats.records_lost, 0, "{mode:?}");
        assert!(
            errors.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "{mode:?}: not reported"
        );
        let report = logcut::verify(&dir).expect("verify");
        assert!(report.is_ok(), "{mode:?}: {report}");
        let want: Vec<(usize, u64)> = (0..300).map(|s| (0, s)).collect();
        assert_eq!(read_ids(&dir), want, "{mode:?}");
        drop(m);
    }
}
