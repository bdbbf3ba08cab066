//! Forward-secure sealing of the manifest: a MAC chain whose key evolves.
//!
//! A manifest line's CRC-32 catches accidents, not forgeries: anyone can
//! recompute it. Sealing adds what a forger cannot recompute. It follows
//! the idea of systemd-journald's Forward Secure Sealing and of Schneier
//! and Kelsey's secure audit logs, with well-kept primitives (HMAC-SHA256
//! and SHA-256 from RustCrypto):
//!
//! - [`keygen`] draws a random 32-byte key `k0`, the [`VerifyKey`] the
//!   caller shows the operator, to be kept off the machine, and writes the
//!   key of epoch 0, `SHA-256(k0)`, to the log's key file,
//!   `<name>.seal-key` (mode 0600). The verification key itself is never
//!   on the disk.
//! - While the key file exists, every manifest entry the appender writes
//!   ends in `mac=<epoch>.<hex>`: the HMAC-SHA256, under the epoch's key,
//!   of the previous entry's MAC followed by the entry's text before
//!   ` mac=`. The CRC-32 after it covers the MAC too. The first sealed
//!   entry is a `sealing` entry naming the key's id and the log.
//! - An epoch ends (an `epoch` entry, sealed with the epoch's key) once it
//!   holds an entry and its interval (15 minutes by default) has passed,
//!   and when the appender shuts down. The manifest is synced, then the
//!   key file is overwritten in place with `key(i+1) = SHA-256(key(i))`
//!   and synced: the key that sealed the epoch is gone from the machine.
//!
//! # Format
//!
//! | kind | keys |
//! |---|---|
//! | `sealing` | `id` (the key's id), `name` (the log), `at`, `interval` (seconds), `mac` |
//! | `epoch` | `n` (the epoch it ends), `at`, `mac` |
//!
//! Readers that do not know these kinds or the `mac` key ignore them.
//!
//! # Threat model
//!
//! [`check`] with the verification key proves that the entries up to the
//! last `epoch` entry are those the appender wrote, in that order, none
//! removed, inserted or altered; each `seal` entry then carries the
//! SHA-256 of its segment's contents, so a segment replaced with its
//! CRC-32 fixed up is caught by [`verify`](crate::verify()). Someone who
//! takes the machine later holds only the current key: from it no earlier
//! key can be computed, so earlier epochs cannot be forged.
//!
//! What it cannot prove:
//! - the entries of the current epoch (not yet sealed): whoever holds the
//!   current key can change them, or append forged entries after them;
//! - that nothing came after the last sealed epoch: a manifest cut back to
//!   the end of an earlier epoch still checks, and ends early. The report
//!   says when the sealed history ends; compare it with when the writer
//!   last ran (a clean shutdown seals everything before it);
//! - anything, once the whole directory is deleted: only copies elsewhere
//!   (shipping) can show that;
//! - anything, to someone who also holds the verification key: it can
//!   forge every epoch, which is why it is kept off the machine.
//!
//! The key file is overwritten in place; on a copy-on-write file system
//! (btrfs, ZFS) or with snapshots, old blocks may survive the overwrite.

use std::{
    fmt,
    fs::{self, File},
    io::{self, Read as _, Write as _},
    path::Path,
    str::FromStr,
    time::Duration,
};

use hmac::{KeyInit as _, Mac as _};
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::{Error, hex};

/// The default length of an epoch.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The key file's name: `<name>.seal-key`.
pub fn key_file(name: &str) -> String {
    format!("{name}.seal-key")
}

const KEY_FILE_HEADER: &str = "logcut-seal-key 1";
const VERIFY_PREFIX: &str = "logcut-verify-key-1:";

/// A 32-byte key.
type Key = [u8; 32];

fn unhex32(s: &str) -> Option<Key> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The next epoch's key: SHA-256 of this one (one way).
pub fn evolve(key: &Key) -> Key {
    Sha256::new()
        .chain_update(b"logcut seal evolve\0")
        .chain_update(key)
        .finalize()
        .into()
}

/// The id of the key chain that starts at `k0`: 16 hex digits, safe to
/// show (it reveals nothing of the key).
fn key_id(k0: &Key) -> String {
    let h: Key = Sha256::new()
        .chain_update(b"logcut seal id\0")
        .chain_update(k0)
        .finalize()
        .into();
    hex(&h[..8])
}

/// The MAC of an entry's text (before ` mac=`), chained on `prev`.
fn mac(key: &Key, prev: &Key, body: &str) -> Key {
    // A key of any length is valid for HMAC: this cannot fail.
    let mut m = <hmac::Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(prev);
    m.update(body.as_bytes());
    m.finalize().into_bytes().into()
}

/// The verification key: the first key of a log's chain. Whoever holds it
/// can check the manifest, and could also forge it: keep it off the
/// machine. Its text form is `logcut-verify-key-1:<64 hex digits>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey(Key);

impl VerifyKey {
    /// The key chain's id, as the `sealing` entry names it.
    pub fn id(&self) -> String {
        key_id(&self.0)
    }

    /// The key file's state at `epoch` (begun at `since_ms`, epochs of
    /// `interval_secs`): what the writer held then. For tools and tests
    /// that hold the verification key, which can derive every epoch's key.
    pub fn key_at(&self, epoch: u64, since_ms: i64, interval_secs: u64) -> SealKey {
        let mut key = evolve(&self.0);
        for _ in 0..epoch {
            key = evolve(&key);
        }
        SealKey {
            id: self.id(),
            epoch,
            since_ms,
            interval_secs,
            key,
        }
    }

    /// Reads a verification key from a file (its first word; surrounding
    /// white space and a trailing newline are fine).
    pub fn read(path: &Path) -> Result<VerifyKey, Error> {
        let mut text = String::new();
        crate::open_nofollow(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| Error::io("read verification key", path, e))?;
        text.trim()
            .parse()
            .map_err(|e: String| Error::parse("read verification key", path, e))
    }
}

impl fmt::Display for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VERIFY_PREFIX}{}", hex(&self.0))
    }
}

// Never printed by accident: a secret.
impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyKey(id {})", self.id())
    }
}

impl FromStr for VerifyKey {
    type Err = String;

    fn from_str(s: &str) -> Result<VerifyKey, String> {
        s.strip_prefix(VERIFY_PREFIX)
            .and_then(unhex32)
            .map(VerifyKey)
            .ok_or_else(|| {
                format!(
                    "not a logcut verification key (expected {VERIFY_PREFIX} and 64 hex digits)"
                )
            })
    }
}

/// The state kept in a log's key file: the current epoch and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey {
    /// The key chain's id.
    pub id: String,
    /// The current epoch.
    pub epoch: u64,
    /// When the current epoch began, in milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// How long an epoch lasts, in seconds.
    pub interval_secs: u64,
    key: Key,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("since_ms", &self.since_ms)
            .field("interval_secs", &self.interval_secs)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// The key file's contents: one line of a fixed length, so that an
    /// overwrite in place replaces it whole.
    pub fn encode(&self) -> String {
        format!(
            "{KEY_FILE_HEADER} id={} epoch={:020} since={:020} interval={:010} key={}\n",
            self.id,
            self.epoch,
            self.since_ms.max(0),
            self.interval_secs,
            hex(&self.key)
        )
    }

    /// Parses the key file's contents.
    pub fn parse(text: &str) -> Result<SealKey, String> {
        let rest = text
            .trim_end()
            .strip_prefix(KEY_FILE_HEADER)
            .ok_or("not a logcut key file")?;
        let get = |k: &str| {
            rest.split(' ')
                .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("the key file has no {k}"))
        };
        let num = |k: &str| {
            get(k)?
                .parse::<u64>()
                .map_err(|_| format!("{k} is not a number"))
        };
        let id = get("id")?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the key file's id is not 16 hex digits".into());
        }
        let interval_secs = num("interval")?;
        if interval_secs == 0 {
            return Err("the key file's interval is 0".into());
        }
        Ok(SealKey {
            id: id.to_string(),
            epoch: num("epoch")?,
            since_ms: i64::try_from(num("since")?).map_err(|_| "since is out of range")?,
            interval_secs,
            key: unhex32(get("key")?).ok_or("the key file's key is not 64 hex digits")?,
        })
    }

    /// Moves to the next epoch, which begins `now`.
    pub fn evolve(&mut self, now: Timestamp) {
        self.key = evolve(&self.key);
        self.epoch = self.epoch.saturating_add(1);
        self.since_ms = now.as_millisecond();
    }

    /// Whether the current epoch's interval has passed at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.until_due(now).is_zero()
    }

    /// How long until the current epoch's interval has passed (zero if it
    /// has).
    pub fn until_due(&self, now: Timestamp) -> Duration {
        let end = self.since_ms.saturating_add(
            i64::try_from(self.interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        Duration::from_millis(u64::try_from(end.saturating_sub(now.as_millisecond())).unwrap_or(0))
    }

    /// Seals an encoded manifest line (`<body> ~<crc>\n`, as
    /// [`Entry::encode`](crate::manifest::Entry::encode) returns it):
    /// adds `mac=` chained on `prev` and a new checksum. Returns the line
    /// and its MAC, the next line's `prev`.
    pub fn seal_line(&self, prev: &[u8; 32], line: &str) -> (String, [u8; 32]) {
        let body = line
            .trim_end_matches('\n')
            .rsplit_once(" ~")
            .map_or(line, |(b, _)| b);
        let m = mac(&self.key, prev, body);
        let sealed = format!("{body} mac={}.{}", self.epoch, hex(&m));
        let crc = crc32fast::hash(sealed.as_bytes());
        (format!("{sealed} ~{crc:08x}\n"), m)
    }

    /// The `sealing` entry that starts a log's chain, unsealed (pass it
    /// to [`seal_line`](Self::seal_line) with [`START`] as `prev`).
    pub fn start_line(&self, name: &str, now: Timestamp) -> String {
        line(&format!(
            "sealing id={} name={name} at={} interval={}",
            self.id,
            now.as_millisecond(),
            self.interval_secs
        ))
    }

    /// The `epoch` entry that ends the current epoch, unsealed.
    pub fn epoch_line(&self, now: Timestamp) -> String {
        line(&format!(
            "epoch n={} at={}",
            self.epoch,
            now.as_millisecond()
        ))
    }
}

/// The `prev` of the first sealed entry.
pub const START: [u8; 32] = [0; 32];

fn line(body: &str) -> String {
    format!("{body} ~{:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// Creates the key file of log `name` in `dir` (mode 0600; it must not
/// exist) with a new random key, epochs of `interval` (whole seconds, at
/// least one) beginning `now`. Returns the verification key.
pub fn keygen(
    dir: &Path,
    name: &str,
    interval: Duration,
    now: Timestamp,
) -> Result<VerifyKey, Error> {
    let path = dir.join(key_file(name));
    let mut k0 = [0u8; 32];
    getrandom::fill(&mut k0)
        .map_err(|e| Error::io("draw a random key", &path, io::Error::other(e.to_string())))?;
    let key = SealKey {
        id: key_id(&k0),
        epoch: 0,
        since_ms: now.as_millisecond(),
        interval_secs: interval.as_secs().max(1),
        key: evolve(&k0),
    };
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f: File = o
        .open(&path)
        .map_err(|e| Error::io("create key file", &path, e))?;
    f.write_all(key.encode().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write key file", &path, e))?;
    Ok(VerifyKey(k0))
}

/// The chain's end as a manifest holds it: what an appender needs to go on
/// sealing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// The id of the last `sealing` entry, if any.
    pub started: Option<String>,
    /// The last sealed entry: its epoch, MAC, and whether it was an
    /// `epoch` entry (so that its epoch is over).
    pub last: Option<(u64, [u8; 32], bool)>,
}

impl Tail {
    /// Reads the chain's end from manifest text (whole lines with valid
    /// checksums only; others are skipped, as [`check`] skips them).
    pub fn scan(text: &[u8]) -> Tail {
        let mut t = Tail::default();
        for raw in text.split(|b| *b == b'\n') {
            let Some(l) = Line::parse(raw) else { continue };
            if l.kind == "sealing" {
                t.started = l.field("id").map(str::to_string);
            }
            if let Some((epoch, m)) = l.mac {
                t.last = Some((epoch, m, l.kind == "epoch"));
            }
        }
        t
    }
}

/// A whole manifest line with a valid checksum, split for the chain.
struct Line<'a> {
    kind: &'a str,
    /// The text the MAC covers.
    body: &'a str,
    mac: Option<(u64, Key)>,
}

impl<'a> Line<'a> {
    fn parse(raw: &'a [u8]) -> Option<Line<'a>> {
        let s = std::str::from_utf8(raw).ok()?;
        let (text, crc) = s.rsplit_once(" ~")?;
        if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(text.as_bytes())
        {
            return None;
        }
        let (body, mac) = match text.rsplit_once(" mac=") {
            Some((body, m)) => {
                let (e, h) = m.split_once('.')?;
                (body, Some((e.parse().ok()?, unhex32(h)?)))
            }
            None => (text, None),
        };
        Some(Line {
            kind: body.split(' ').next().unwrap_or_default(),
            body,
            mac,
        })
    }

    fn field(&self, k: &str) -> Option<&'a str> {
        self.body
            .split(' ')
            .skip(1)
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealCheck {
    /// Entries before the `sealing` entry (written before the key).
    pub before: u64,
    /// Entries proven, up to and including the last `epoch` entry.
    pub sealed: u64,
    /// When the last sealed epoch ended (its `epoch` entry's `at`), and
    /// its number.
    pub sealed_until: Option<(Timestamp, u64)>,
    /// Entries after the last sealed epoch whose MACs check, but whose key
    /// is still on the machine.
    pub unsealed: u64,
    /// Entries after the first failure, not checked.
    pub unchecked: u64,
    /// The epoch the chain ends in (the next to be sealed), once it began.
    pub epoch: Option<u64>,
    /// Worth knowing, not a failure (a key not yet overwritten after a
    /// crash).
    pub notes: Vec<String>,
    /// What is wrong, by line (1-based), worst first. Empty if the chain
    /// holds.
    pub problems: Vec<(usize, String)>,
}

impl SealCheck {
    /// Returns true if and only if the chain holds: sealing began with
    /// this key, and no entry after it fails.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for SealCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sealed_until {
            Some((at, epoch)) => write!(
                f,
                "sealed history verified up to {} (epoch {epoch}, entry {})",
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                self.sealed
            )?,
            None => write!(f, "no sealed epoch yet")?,
        }
        match self.unsealed {
            0 => write!(f, "; every entry is sealed")?,
            n => write!(f, "; {n} entries after it are not yet sealed")?,
        }
        if self.before > 0 {
            write!(
                f,
                "; {} entries from before sealing began are not covered",
                self.before
            )?;
        }
        for (line, p) in &self.problems {
            match line {
                0 => write!(f, "\n{p}")?,
                n => write!(f, "\nline {n}: {p}")?,
            }
        }
        for n in &self.notes {
            write!(f, "\nnote: {n}")?;
        }
        if self.unchecked > 0 {
            write!(
                f,
                "\n{} entries after the first failure were not checked",
                self.unchecked
            )?;
        }
        Ok(())
    }
}

/// Checks the MAC chain of log `name`'s manifest text with its
/// verification key. See the module docs for what it proves.
pub fn check(text: &[u8], name: &str, vk: &VerifyKey) -> SealCheck {
    let mut c = SealCheck::default();
    // The chain's state once the `sealing` entry is found: epoch, its key,
    // the previous MAC, and how many entries this epoch holds.
    let mut chain: Option<(u64, Key, Key, u64)> = None;
    let mut broken = false;
    for (i, raw) in text.split(|b| *b == b'\n').enumerate().skip(1) {
        let n = i + 1;
        // Torn or garbled lines are verify's to report; the chain skips them.
        let Some(l) = Line::parse(raw) else { continue };
        if broken {
            c.unchecked += 1;
            continue;
        }
        let Some((epoch, key, prev, in_epoch)) = chain.as_mut() else {
            match (l.kind, l.mac) {
                ("sealing", Some((e, m))) => {
                    let id = l.field("id").unwrap_or_default();
                    if id != vk.id() {
                        c.problems.push((
                            n,
                            format!(
                                "sealed with another key (id {id}; this key's id is {})",
                                vk.id()
                            ),
                        ));
                        broken = true;
                        continue;
                    }
                    if l.field("name") != Some(name) {
                        c.problems.push((n, format!("the sealing entry is that of log {:?}, not {name:?}: a manifest copied from another log", l.field("name").unwrap_or_default())));
                        broken = true;
                        continue;
                    }
                    let mut k = evolve(&vk.0);
                    for _ in 0..e.min(1 << 20) {
                        k = evolve(&k);
                    }
                    if e != 0 {
                        c.problems.push((n, format!("sealing begins in epoch {e}, not 0: the history before it is missing")));
                    }
                    if mac(&k, &START, l.body) != m {
                        c.problems
                            .push((n, "the sealing entry's MAC does not match this key".into()));
                        broken = true;
                        continue;
                    }
                    chain = Some((e, k, m, 1));
                }
                (_, Some(_)) => {
                    c.problems.push((
                        n,
                        "a sealed entry before any sealing entry: the sealing entry was removed"
                            .into(),
                    ));
                    broken = true;
                }
                (_, None) => c.before += 1,
            }
            continue;
        };
        let Some((e, m)) = l.mac else {
            c.problems.push((n, "an entry without a MAC after sealing began: written without the key (was the key file removed?), or inserted".into()));
            broken = true;
            continue;
        };
        if e != *epoch || mac(key, prev, l.body) != m {
            c.problems.push((n, "the MAC does not match: this entry was altered, or one before it was removed, reordered or inserted".into()));
            broken = true;
            continue;
        }
        *prev = m;
        *in_epoch += 1;
        if l.kind == "epoch" {
            if l.field("n") != Some(epoch.to_string().as_str()) {
                c.problems.push((
                    n,
                    format!(
                        "an epoch entry of epoch {} in epoch {epoch}",
                        l.field("n").unwrap_or("?")
                    ),
                ));
                broken = true;
                continue;
            }
            let at = l
                .field("at")
                .and_then(|v| v.parse().ok())
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            c.sealed += *in_epoch;
            c.sealed_until = Some((at, *epoch));
            *in_epoch = 0;
            *epoch += 1;
            *key = evolve(key);
        }
    }
    match chain {
        Some((epoch, _, _, in_epoch)) => {
            c.unsealed = in_epoch;
            c.epoch = Some(epoch);
        }
        None if c.problems.is_empty() => c.problems.push((
            0,
            format!(
                "no sealing entry: this manifest was never sealed (the key's id is {})",
                vk.id()
            ),
        )),
        None => {}
    }
    c
}

/// Checks log `name` in `dir` with its verification key: the manifest's
/// chain (see [`check`]), and the key file against it. The key file must
/// hold this chain's key of the epoch the manifest ends in: a key that
/// moved on further shows entries cut off the manifest's end, which the
/// chain alone cannot show. Entries not yet sealed are a problem only if
/// no writer holds the log (one killed and not started again, or a
/// manifest cut back within an epoch).
pub fn check_log(dir: &Path, name: &str, vk: &VerifyKey) -> Result<SealCheck, Error> {
    let path = dir.join(crate::name::manifest_file(name));
    let mut text = Vec::new();
    crate::open_nofollow(&path)
        .and_then(|mut f| f.read_to_end(&mut text))
        .map_err(|e| Error::io("read manifest", &path, e))?;
    let mut c = check(&text, name, vk);
    let Some(epoch) = c.epoch else {
        return Ok(c);
    };
    let key_path = dir.join(key_file(name));
    let mut key_text = String::new();
    let read = crate::open_nofollow(&key_path).and_then(|mut f| f.read_to_string(&mut key_text));
    match read.map(|_| SealKey::parse(&key_text)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => c.problems.push((
            0,
            format!(
                "the key file {} is gone: the writer seals no new entry",
                key_path.display()
            ),
        )),
        Err(e) => return Err(Error::io("read key file", &key_path, e)),
        Ok(Err(e)) => c.problems.push((
            0,
            format!("the key file {} is not one: {e}", key_path.display()),
        )),
        Ok(Ok(key)) => check_key(&mut c, vk, &key, epoch),
    }
    if c.unsealed > 0 && c.is_ok() && !crate::verify::writer_holds_lock(dir, name) {
        c.problems.push((
            0,
            format!(
                "{} entries after the last sealed epoch are not sealed, and no writer holds the log: its writer was killed and has not started again (which seals them), or the manifest was cut back",
                c.unsealed
            ),
        ));
    }
    Ok(c)
}

/// The key file against the chain that ends in `epoch`.
fn check_key(c: &mut SealCheck, vk: &VerifyKey, key: &SealKey, epoch: u64) {
    if key.id != vk.id() {
        c.problems
            .push((0, format!("the key file holds another key (id {})", key.id)));
        return;
    }
    if key.epoch > epoch {
        c.problems.push((0, format!("the key moved on to epoch {}, but the manifest ends in epoch {epoch}: entries were cut off its end", key.epoch)));
        return;
    }
    if vk.key_at(key.epoch, 0, 1).key != key.key {
        c.problems.push((
            0,
            format!(
                "the key file's key is not this chain's key of epoch {}: it was replaced",
                key.epoch
            ),
        ));
    } else if key.epoch + 1 == epoch {
        c.notes.push(format!("the key of epoch {} was not overwritten yet (a crash after its epoch ended); the writer's next start does it", key.epoch));
    } else if key.epoch < epoch {
        c.problems.push((0, format!("the key file is at epoch {}, the manifest at epoch {epoch}: an old key file was put back", key.epoch)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Delete, DeleteReason, Entry, HEADER};

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    fn delete(seq: u64) -> Entry {
        Entry::Delete(Delete {
            seq,
            file: format!("app.x.{seq:06}.log"),
            reason: DeleteReason::Count,
        })
    }

    /// A sealed manifest of `epochs` closed epochs of two entries each,
    /// then one unsealed entry; and its verification key.
    fn manifest(epochs: u64) -> (String, VerifyKey, SealKey) {
        let k0 = [7u8; 32];
        let vk = VerifyKey(k0);
        let mut key = SealKey {
            id: key_id(&k0),
            epoch: 0,
            since_ms: 0,
            interval_secs: 60,
            key: evolve(&k0),
        };
        let mut text = format!("{HEADER}\n");
        text.push_str(&delete(100).encode());
        let (l, mut prev) = key.seal_line(&START, &key.start_line("app", ts(1)));
        text.push_str(&l);
        let mut seq = 1;
        for e in 0..=epochs {
            for _ in 0..2 {
                let (l, m) = key.seal_line(&prev, &delete(seq).encode());
                text.push_str(&l);
                prev = m;
                seq += 1;
            }
            if e < epochs {
                let (l, m) = key.seal_line(&prev, &key.epoch_line(ts(60_000 * (e as i64 + 1))));
                text.push_str(&l);
                prev = m;
                key.evolve(ts(60_000 * (e as i64 + 1)));
            }
        }
        (text, vk, key)
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn a_whole_chain_checks() {
        let (text, vk, _) = manifest(2);
        let c = check(text.as_bytes(), "app", &vk);
        assert!(c.is_ok(), "{c}");
        assert_eq!(c.before, 1);
        // sealing + 2 + epoch, then 2 + epoch; then 2 unsealed.
        assert_eq!((c.sealed, c.unsealed), (7, 2));
        assert_eq!(c.sealed_until, Some((ts(120_000), 1)));
        assert!(c.to_string().starts_with(
            "sealed history verified up to 1970-01-01T00:02:00Z (epoch 1, entry 7); 2 entries after it are not yet sealed"
        ));
    }

    #[test]
    fn forgeries_fail() {
        let (text, vk, _) = manifest(2);
        let l = lines(&text);
        let fails = |t: &str, what: &str| {
            let c = check(t.as_bytes(), "app", &vk);
            assert!(!c.is_ok(), "{what} passed: {c}");
        };
        // A forged delete line with its CRC recomputed (no MAC).
        fails(&format!("{text}{}", delete(1).encode()), "appended delete");
        // The same with a MAC of a made-up key.
        let other = SealKey {
            key: [9; 32],
            ..manifest(0).2
        };
        let (forged, _) = other.seal_line(&START, &delete(1).encode());
        fails(&format!("{text}{forged}"), "delete with a wrong MAC");
        // A line removed, two swapped, one altered.
        let mut removed = l.clone();
        removed.remove(3);
        fails(&removed.concat(), "removed line");
        let mut swapped = l.clone();
        swapped.swap(3, 4);
        fails(&swapped.concat(), "swapped lines");
        let altered = text.replace("app.x.000002.log", "app.x.000009.log");
        let fixed: String = lines(&altered)
            .iter()
            .map(|l| match l.trim_end().rsplit_once(" ~") {
                Some((b, _)) if b.contains("000009") => line(b),
                _ => l.clone(),
            })
            .collect();
        fails(&fixed, "altered line, CRC fixed up");
        // Another log's manifest, and another key.
        fails(&text.replace("name=app", "name=web"), "renamed");
        let c = check(text.as_bytes(), "web", &vk);
        assert!(!c.is_ok());
        let c = check(text.as_bytes(), "app", &VerifyKey([8; 32]));
        assert!(c.problems[0].1.contains("another key"), "{c}");
        // Its MACs stripped: never sealed, then.
        let stripped: String = l
            .iter()
            .map(|x| match x.trim_end().rsplit_once(" mac=") {
                Some((b, _)) => line(b),
                None => x.clone(),
            })
            .collect();
        fails(&stripped, "stripped");
    }

    #[test]
    fn a_cut_back_manifest_ends_early() {
        let (text, vk, _) = manifest(2);
        let l = lines(&text);
        // Cut back to the end of epoch 0 (header, 1, sealing, 2, epoch).
        let cut = l[..6].concat();
        let c = check(cut.as_bytes(), "app", &vk);
        assert!(c.is_ok(), "{c}");
        assert_eq!(c.sealed_until, Some((ts(60_000), 0)));
        // Epoch 1's key cannot be had from epoch 2's: entries sealed with
        // the current key after the cut fail.
        let (_, _, current) = manifest(2);
        let (forged, _) = current.seal_line(&[0; 32], &delete(1).encode());
        let c = check(format!("{cut}{forged}").as_bytes(), "app", &vk);
        assert!(!c.is_ok(), "{c}");
    }

    #[test]
    fn key_files_and_verify_keys_round_trip() {
        let (_, vk, key) = manifest(1);
        let text = key.encode();
        assert_eq!(text.len(), manifest(0).2.encode().len());
        assert_eq!(SealKey::parse(&text).unwrap(), key);
        assert!(SealKey::parse("logcut-seal-key 1 id=zz").is_err());
        assert_eq!(vk.to_string().parse::<VerifyKey>().unwrap(), vk);
        assert!("logcut-verify-key-1:00".parse::<VerifyKey>().is_err());
        assert!(!format!("{vk:?}").contains(&hex(&vk.0)));
        let t = Tail::scan(manifest(1).0.as_bytes());
        assert_eq!(t.started.as_deref(), Some(vk.id().as_str()));
        assert!(matches!(t.last, Some((1, _, false))));
    }

    #[test]
    fn due_follows_the_interval() {
        let (_, _, mut key) = manifest(0);
        key.since_ms = 1_000;
        assert_eq!(key.until_due(ts(31_000)), Duration::from_secs(30));
        assert!(!key.is_due(ts(60_999)));
        assert!(key.is_due(ts(61_000)));
        key.evolve(ts(61_000));
        assert_eq!((key.epoch, key.since_ms), (1, 61_000));
    }
}
