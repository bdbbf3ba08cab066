//! A sealed manifest (`logcut::sealing`): the MAC chain the appender writes
//! proves the history, and every forgery tried fails the check.

use std::{fs, path::Path, time::Duration};

use logcut::{
    Appender, ManualClock, Mode,
    sealing::{self, SealCheck, SealKey, VerifyKey},
};

use crate::kit::*;

const LEN: usize = 100;
const EPOCH: Duration = Duration::from_secs(15 * 60);

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// A log directory with a sealing key; its verification key.
fn keyed(dir: &Path, clock: &ManualClock) -> VerifyKey {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o750).create(dir).unwrap();
    sealing::keygen(dir, "app", EPOCH, logcut::Clock::now(clock)).unwrap()
}

fn appender(dir: &Path, clock: &ManualClock, mode: Mode) -> Appender {
    let b = Appender::builder()
        .dir(dir)
        .max_size(2000)
        .mode(mode)
        .clock(clock.clone());
    #[cfg(feature = "zstd")]
    let b = b.compress(logcut::Compression::zstd());
    b.build().unwrap()
}

fn write(a: &Appender, thread: usize, ids: std::ops::Range<u64>) {
    for i in ids {
        a.write_record(&record(thread, i, LEN)).unwrap();
    }
    a.flush_records().unwrap();
}

fn check(dir: &Path, vk: &VerifyKey) -> SealCheck {
    sealing::check_log(dir, "app", vk).unwrap()
}

fn key(dir: &Path) -> SealKey {
    SealKey::parse(&fs::read_to_string(dir.join("app.seal-key")).unwrap()).unwrap()
}

fn lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("app.manifest"))
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A line with its body changed by `f` and its CRC-32 recomputed, as a
/// forger would.
fn fixed_up(line: &str, f: impl FnOnce(&str) -> String) -> String {
    let (body, _) = line.trim_end().rsplit_once(" ~").unwrap();
    let body = f(body);
    format!("{body} ~{:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// A sealed log: two epochs of records (the first ended by the clock, the
/// second by the shutdown). Returns the key and the records written.
fn sealed_log(dir: &Path, mode: Mode) -> (VerifyKey, u64) {
    let clock = ManualClock::new(ts("2026-12-01T10:00:00Z"));
    let vk = keyed(dir, &clock);
    let a = appender(dir, &clock, mode);
    write(&a, 0, 0..100);
    a.rotate().unwrap();
    a.tick().unwrap();
    assert_eq!(key(dir).epoch, 0, "the epoch is not over yet");
    clock.set(ts("2026-12-01T10:16:00Z"));
    a.tick().unwrap();
    let k = key(dir);
    assert_eq!(k.epoch, 1, "the clock ended epoch 0");
    // The key that sealed epoch 0 is no longer on the disk.
    let vk_hex = vk.to_string().rsplit(':').next().unwrap().to_string();
    assert!(
        !fs::read_to_string(dir.join("app.seal-key"))
            .unwrap()
            .contains(&vk_hex)
    );
    write(&a, 0, 100..200);
    a.shutdown().unwrap();
    (vk, 200)
}

#[test]
fn a_sealed_manifest_proves_its_history() {
    for mode in [Mode::Direct, Mode::Buffered] {
        let dir = TempDir::new("sealed");
        let (vk, n) = sealed_log(dir.path(), mode);
        let c = check(dir.path(), &vk);
        assert!(c.is_ok(), "{mode:?}: {c}");
        // A clean shutdown seals everything: nothing is left open.
        assert_eq!(c.unsealed, 0, "{c}");
        assert_eq!(c.before, 0, "{c}");
        // Epoch 1 ends at the sealer's close; the keeper's last entries
        // (compressions at shutdown), if any, make one more.
        let (_, last) = c.sealed_until.unwrap();
        assert!((1..=2).contains(&last), "{c}");
        assert_eq!(c.sealed as usize, lines(dir.path()).len() - 1, "{c}");
        assert_eq!(key(dir.path()).epoch, last + 1);
        // Each seal carries its segment's SHA-256, which the MAC covers.
        let seals = sealed(dir.path(), "app");
        assert!(seals.len() >= 10, "{}", seals.len());
        assert!(seals.iter().all(|s| s.sha256.is_some()));
        verify_ok(dir.path());
        assert_eq!(check_records(&read_log(dir.path(), "app"), LEN)[&0], n);
        // The key file is the owner's alone.
        use std::os::unix::fs::PermissionsExt;
        let mode_bits = fs::metadata(dir.join("app.seal-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode_bits & 0o777, 0o600);
    }
}

#[test]
fn every_forgery_tried_fails_the_check() {
    let dir = TempDir::new("forged");
    let (vk, _) = sealed_log(dir.path(), Mode::Direct);
    let good = lines(dir.path());
    let manifest = dir.join("app.manifest");
    let fails = |text: String, what: &str| {
        fs::write(&manifest, &text).unwrap();
        let c = check(dir.path(), &vk);
        assert!(!c.is_ok(), "{what}: the check passed: {c}");
        fs::write(&manifest, good.concat()).unwrap();
    };
    let seal1 = sealed(dir.path(), "app")[0].clone();
    // The attack that `verify` alone let through: a `delete` line with its
    // CRC recomputed, which hides the segment's records from `cat`.
    let body = format!("delete seq=1 file={} reason=count", seal1.file);
    let forged = format!("{body} ~{:08x}\n", crc32fast::hash(body.as_bytes()));
    fs::write(&manifest, format!("{}{forged}", good.concat())).unwrap();
    assert!(
        logcut::verify(dir.path()).unwrap().is_ok(),
        "verify alone passes it"
    );
    fails(format!("{}{forged}", good.concat()), "a forged delete line");
    // The same line inserted in the middle.
    let mut inserted = good.clone();
    inserted.insert(5, forged.clone());
    fails(inserted.concat(), "an inserted delete line");
    // A line removed, two swapped, the manifest truncated (within an
    // epoch, and at the end of the first epoch).
    let mut removed = good.clone();
    removed.remove(4);
    fails(removed.concat(), "a removed line");
    let mut swapped = good.clone();
    swapped.swap(4, 5);
    fails(swapped.concat(), "two swapped lines");
    fails(good[..good.len() / 2].concat(), "a truncated manifest");
    let first_epoch_end = good.iter().position(|l| l.starts_with("epoch ")).unwrap();
    fails(
        good[..=first_epoch_end].concat(),
        "a manifest cut at an epoch's end",
    );
    // A seal entry changed, its CRC fixed up: fewer records, another
    // checksum (as for a replaced segment).
    let i = good
        .iter()
        .position(|l| l.starts_with("seal seq=1 "))
        .unwrap();
    let mut altered = good.clone();
    altered[i] = fixed_up(&good[i], |b| {
        b.replace(&format!("crc32={:08x}", seal1.crc32), "crc32=00000000")
    });
    fails(altered.concat(), "a seal entry altered, its CRC fixed up");
    // The MACs stripped: a manifest never sealed, then.
    let stripped: Vec<String> = good
        .iter()
        .map(|l| match l.trim_end().rsplit_once(" mac=") {
            Some(_) => fixed_up(l, |b| b.rsplit_once(" mac=").unwrap().0.to_string()),
            None => l.clone(),
        })
        .collect();
    fails(stripped.concat(), "the MACs stripped");
    // A manifest copied from another log, with its own key.
    let other = TempDir::new("forged-other");
    sealed_log(other.path(), Mode::Direct);
    fails(
        fs::read_to_string(other.join("app.manifest")).unwrap(),
        "another log's manifest",
    );
    // The key file put back to an earlier epoch's, or removed.
    let key_file = dir.join("app.seal-key");
    let k = fs::read_to_string(&key_file).unwrap();
    let mut earlier = key(dir.path());
    earlier.epoch -= 1;
    fs::write(&key_file, earlier.encode()).unwrap();
    assert!(!check(dir.path(), &vk).is_ok());
    fs::remove_file(&key_file).unwrap();
    assert!(!check(dir.path(), &vk).is_ok());
    fs::write(&key_file, &k).unwrap();
    // Untouched, it still checks.
    assert!(check(dir.path(), &vk).is_ok());
}

#[test]
fn a_crashed_writers_open_epoch_is_sealed_at_the_next_start() {
    let dir = TempDir::new("sealed-crash");
    let clock = ManualClock::new(ts("2026-12-01T10:00:00Z"));
    let vk = keyed(dir.path(), &clock);
    let a = appender(dir.path(), &clock, Mode::Direct);
    write(&a, 0, 0..50);
    a.tick().unwrap();
    let open_key = fs::read(dir.join("app.seal-key")).unwrap();
    a.shutdown().unwrap();
    // What a SIGKILL before the shutdown's epoch end leaves: the epoch's
    // entries unsealed, its key still in the key file.
    let mut l = lines(dir.path());
    assert!(l.pop().unwrap().starts_with("epoch "));
    fs::write(dir.join("app.manifest"), l.concat()).unwrap();
    fs::write(dir.join("app.seal-key"), &open_key).unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.unsealed > 0, "{c}");
    assert!(!c.is_ok(), "unsealed entries with no writer: {c}");
    // The next start seals them at once, before anything else.
    let crashed = key(dir.path()).epoch;
    let b = appender(dir.path(), &clock, Mode::Direct);
    let c = check(dir.path(), &vk);
    assert!(c.is_ok(), "{c}");
    assert_eq!(key(dir.path()).epoch, crashed + 1);
    write(&b, 0, 50..60);
    b.shutdown().unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.is_ok() && c.unsealed == 0, "{c}");
    let done = key(dir.path()).epoch;
    assert!(done > crashed + 1);
    // A crash after an epoch's end was synced, before the key file moved
    // on: the old key is still there. The check says so; the next start
    // moves it on.
    let k = key(dir.path());
    let behind = vk.key_at(k.epoch - 1, k.since_ms, k.interval_secs);
    fs::write(dir.join("app.seal-key"), behind.encode()).unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.is_ok(), "{c}");
    assert_eq!(c.notes.len(), 1, "{c}");
    let d = appender(dir.path(), &clock, Mode::Direct);
    assert_eq!(key(dir.path()).epoch, done);
    d.shutdown().unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.is_ok() && c.notes.is_empty() && c.unsealed == 0, "{c}");
    // An active file a crash left behind is adopted with its SHA-256 too.
    // (The last session wrote nothing, so no segment is kept there.)
    assert!(!dir.join("app.log").exists());
    fs::write(dir.join("app.log"), record(0, 60, LEN)).unwrap();
    appender(dir.path(), &clock, Mode::Direct)
        .shutdown()
        .unwrap();
    let adopted: Vec<_> = sealed(dir.path(), "app")
        .into_iter()
        .filter(|s| s.reason == logcut::SealReason::Recovery)
        .collect();
    assert_eq!(adopted.len(), 1);
    assert!(adopted[0].sha256.is_some());
    let c = check(dir.path(), &vk);
    assert!(c.is_ok() && c.unsealed == 0, "{c}");
    verify_ok(dir.path());
    assert_eq!(check_records(&read_log(dir.path(), "app"), LEN)[&0], 61);
}

#[test]
fn processes_sharing_a_log_keep_one_chain() {
    let dir = TempDir::new("sealed-shared");
    let clock = ManualClock::new(ts("2026-12-01T10:00:00Z"));
    let vk = keyed(dir.path(), &clock);
    let open = || {
        Appender::builder()
            .dir(dir.path())
            .manual_only()
            .shared(true)
            .clock(clock.clone())
            .watch_interval(Some(Duration::from_secs(3600)))
            .build()
            .unwrap()
    };
    let a = open();
    let b = open();
    for round in 0..6u64 {
        let (from, to) = (round * 20, round * 20 + 20);
        write(&a, 0, from..to);
        write(&b, 1, from..to);
        // One cuts; the other looks at once (as its check would later)
        // and leaves the old segment, which can then be sealed.
        let (cuts, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        cuts.rotate().unwrap();
        other.reopen().unwrap();
        a.tick().unwrap();
        b.tick().unwrap();
        if round == 2 {
            // Either process may end the epoch; the other goes on with
            // the evolved key.
            clock.advance(EPOCH + Duration::from_secs(1));
            b.tick().unwrap();
            a.tick().unwrap();
            assert_eq!(key(dir.path()).epoch, 1);
        }
    }
    a.shutdown().unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.is_ok(), "{c}");
    b.shutdown().unwrap();
    let c = check(dir.path(), &vk);
    assert!(c.is_ok() && c.unsealed == 0, "{c}");
    assert!(c.sealed_until.is_some_and(|(_, e)| e >= 2), "{c}");
    verify_ok(dir.path());
    let counts = check_records(&read_log(dir.path(), "app"), LEN);
    assert_eq!((counts[&0], counts[&1]), (120, 120));
}
