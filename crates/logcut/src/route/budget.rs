//! A router's budget across all its logs: at most `root_max_total` bytes of
//! sealed segments under the root, and at least `root_min_free` bytes free
//! on its file system. Past either, the oldest sealed segments of the
//! lowest-priority group go first, across its tenants, then the next
//! group's.
//!
//! A pass lists the logs under the root (every tenant of every group the
//! router knows, open or not: the files say what they hold), chooses, and
//! has each chosen log's keeper delete its segments, recording each in the
//! log's manifest first, as its own retention would. A log that is not
//! open is opened for that. The choice is a pure function, tested below.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use logcut_format::{
    codec::Codec,
    manifest::{DeleteReason, Manifest},
    name,
};

use super::{Key, QUARANTINE};

/// The limits, and how often writes start a pass.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Budget {
    pub(crate) max_total: Option<u64>,
    pub(crate) min_free: Option<u64>,
    /// Records start a pass at most this often; `None`: only
    /// [`Router::apply_budget`](crate::Router::apply_budget) does.
    pub(crate) every: Option<Duration>,
}

impl Budget {
    pub(crate) fn is_none(&self) -> bool {
        self.max_total.is_none() && self.min_free.is_none()
    }
}

/// One sealed segment under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// Its log (an index into the scan's list of logs).
    pub(crate) log: usize,
    pub(crate) seq: u64,
    pub(crate) end: Timestamp,
    /// On disk (its compressed file's, once compressed).
    pub(crate) bytes: u64,
    /// Its group's: the lowest goes first.
    pub(crate) priority: u32,
}

/// Which of `held` to delete (indexes, in deletion order) and why: the
/// lowest priority first, oldest first within it, while they take more
/// than `max_total` or the file system has less than `min_free` (`free`:
/// what it has now; unknown, the floor waits).
pub(crate) fn choose(
    held: &[Held],
    max_total: Option<u64>,
    free: Option<u64>,
    min_free: Option<u64>,
) -> Vec<(usize, DeleteReason)> {
    let mut order: Vec<usize> = (0..held.len()).collect();
    order.sort_by_key(|&i| (held[i].priority, held[i].end, held[i].log, held[i].seq));
    let mut total: u64 = held.iter().map(|h| h.bytes).sum();
    let mut free = free;
    let mut out = Vec::new();
    for i in order {
        let reason = if max_total.is_some_and(|m| total > m) {
            DeleteReason::RootBytes
        } else if let (Some(f), Some(m)) = (free, min_free)
            && f < m
        {
            DeleteReason::RootFree
        } else {
            break;
        };
        total -= held[i].bytes;
        free = free.map(|f| f.saturating_add(held[i].bytes));
        out.push((i, reason));
    }
    out
}

/// The logs under `root` of the groups in `priority` (and the
/// quarantine's), with their sealed segments. No symlink is followed; a
/// directory that is not a safe tenant name is not a log.
pub(crate) fn scan(
    root: &Path,
    log_name: impl Fn(&str) -> Option<(String, u32)>,
) -> (Vec<Key>, Vec<Held>) {
    let mut logs: Vec<Key> = Vec::new();
    let mut held = Vec::new();
    let mut add = |key: Key, dir: &Path, log: &str, priority: u32| {
        let segs = sealed(dir, log);
        if segs.is_empty() {
            return;
        }
        let at = logs.len();
        logs.push(key);
        held.extend(segs.into_iter().map(|(seq, end, bytes)| Held {
            log: at,
            seq,
            end,
            bytes,
            priority,
        }));
    };
    for group in real_dirs(root) {
        let Some((log, priority)) = log_name(&group) else {
            continue;
        };
        let dir = root.join(&group);
        if group == QUARANTINE {
            add((group.clone(), String::new()), &dir, &log, priority);
            continue;
        }
        for tenant in real_dirs(&dir) {
            if super::name::is_safe(tenant.as_bytes()) {
                add(
                    (group.clone(), tenant.clone()),
                    &dir.join(&tenant),
                    &log,
                    priority,
                );
            }
        }
    }
    (logs, held)
}

/// The names of the directories in `dir` (not symlinks), sorted.
fn real_dirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// The sealed segments of log `log` in `dir` still on disk: (sequence,
/// end, bytes on disk).
fn sealed(dir: &Path, log: &str) -> Vec<(u64, Timestamp, u64)> {
    let Ok(m) = Manifest::read(&dir.join(name::manifest_file(log))) else {
        return Vec::new();
    };
    let compressed = m.compressed();
    let deleted = m.deleted();
    let on_disk = |f: &str| {
        std::fs::symlink_metadata(dir.join(f))
            .ok()
            .filter(|md| md.is_file())
            .map(|md| md.len())
    };
    m.seals()
        .filter(|s| !deleted.contains_key(&s.seq))
        .filter(|s| name::SealedName::parse(log, &s.file).is_some())
        .filter_map(|s| {
            let comp = compressed
                .get(&s.seq)
                .map(|c| c.file.as_str())
                .filter(|f| Codec::split(f).is_some_and(|(b, _)| b == s.file));
            let bytes = comp.and_then(on_disk).or_else(|| on_disk(&s.file))?;
            Some((s.seq, s.end, bytes))
        })
        .collect()
}

/// The chosen segments, by log.
pub(crate) fn by_log(
    held: &[Held],
    chosen: &[(usize, DeleteReason)],
) -> BTreeMap<usize, Vec<(u64, DeleteReason)>> {
    let mut out: BTreeMap<usize, Vec<(u64, DeleteReason)>> = BTreeMap::new();
    for (i, why) in chosen {
        out.entry(held[*i].log)
            .or_default()
            .push((held[*i].seq, why.clone()));
    }
    out
}

/// When records may start the next pass.
#[derive(Debug)]
pub(crate) struct Pace {
    next: std::sync::Mutex<Option<Instant>>,
}

impl Pace {
    pub(crate) fn new() -> Pace {
        Pace {
            next: std::sync::Mutex::new(None),
        }
    }

    /// Whether a pass is due now (then the next is `every` later).
    pub(crate) fn due(&self, every: Duration) -> bool {
        let Ok(mut next) = self.next.try_lock() else {
            return false;
        };
        let now = Instant::now();
        if next.is_some_and(|n| now < n) {
            return false;
        }
        *next = Some(now + every);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(log: usize, seq: u64, end_s: i64, bytes: u64, priority: u32) -> Held {
        Held {
            log,
            seq,
            end: Timestamp::from_second(end_s).unwrap(),
            bytes,
            priority,
        }
    }

    #[test]
    fn the_lowest_priority_goes_first_oldest_first_across_its_logs() {
        let h = [
            held(0, 1, 10, 100, 5), // premium, oldest of all
            held(1, 1, 20, 100, 0),
            held(2, 1, 15, 100, 0),
            held(1, 2, 30, 100, 0),
            held(0, 2, 40, 100, 5),
        ];
        let c = choose(&h, Some(250), None, None);
        let idx: Vec<usize> = c.iter().map(|(i, _)| *i).collect();
        // 500 bytes to 250: three go, the standard group's by age.
        assert_eq!(idx, [2, 1, 3]);
        assert!(c.iter().all(|(_, r)| *r == DeleteReason::RootBytes));
        let c = choose(&h, Some(150), None, None);
        let idx: Vec<usize> = c.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [2, 1, 3, 0]);
        assert!(choose(&h, Some(500), None, None).is_empty());
        assert!(choose(&h, None, None, None).is_empty());
    }

    #[test]
    fn the_free_space_floor_deletes_until_it_is_met_and_waits_when_unknown() {
        let h = [
            held(0, 1, 1, 100, 0),
            held(0, 2, 2, 100, 0),
            held(0, 3, 3, 100, 0),
        ];
        let c = choose(&h, None, Some(50), Some(200));
        assert_eq!(
            c,
            [(0, DeleteReason::RootFree), (1, DeleteReason::RootFree)]
        );
        assert!(choose(&h, None, None, Some(200)).is_empty());
        // Both: bytes first, the floor for what is left.
        let c = choose(&h, Some(250), Some(100), Some(250));
        assert_eq!(
            c,
            [(0, DeleteReason::RootBytes), (1, DeleteReason::RootFree)]
        );
    }

    #[test]
    fn a_pace_allows_one_pass_per_period() {
        let p = Pace::new();
        assert!(p.due(Duration::from_secs(3600)));
        assert!(!p.due(Duration::from_secs(3600)));
        let q = Pace::new();
        assert!(q.due(Duration::ZERO));
        assert!(q.due(Duration::ZERO));
    }
}
