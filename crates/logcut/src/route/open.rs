//! The open logs of a router, at most `max_open`: the least recently used
//! one is closed (sealed) to make room, and opened again on its next
//! record. A log being opened or closed is marked busy (the work is done
//! outside the lock, so that other logs' records go on meanwhile), and
//! whoever needs it waits until it is done: an appender must have let go
//! of a log's files before the next one takes them.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::Appender;

/// Which log: its group and its directory under the group (the tenant).
pub(crate) type Key = (String, String);

#[derive(Default)]
pub(crate) struct OpenLogs {
    /// By group, then tenant: a record's lookup borrows its names, with no
    /// allocation.
    logs: HashMap<String, HashMap<String, Entry>>,
    /// How many logs `logs` holds.
    count: usize,
    /// Logs whose appender is starting or shutting down.
    busy: HashSet<Key>,
    /// What each log took, open or closed since (one small entry per log
    /// ever opened).
    tallies: HashMap<Key, Arc<Tally>>,
}

/// Records and bytes a log took through the router, and when it was last
/// used (nanoseconds since the router started, for the least recently
/// used: set by every record, also those that bypass the lock through a
/// thread's cache). `Relaxed`: counters and a time read on their own.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) used: AtomicU64,
}

struct Entry {
    app: Appender,
    tally: Arc<Tally>,
}

/// What `take` found for a key.
pub(crate) enum Found {
    Open(Appender, Arc<Tally>),
    /// Being opened or closed: wait, and look again.
    Busy,
    Missing,
}

impl OpenLogs {
    /// The open appender of the log `group`/`tenant`.
    pub(crate) fn take(&mut self, group: &str, tenant: &str) -> Found {
        if let Some(e) = self.logs.get(group).and_then(|m| m.get(tenant)) {
            return Found::Open(e.app.clone(), Arc::clone(&e.tally));
        }
        if self.busy.iter().any(|(g, t)| g == group && t == tenant) {
            return Found::Busy;
        }
        Found::Missing
    }

    /// The number of open logs.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether another log may be opened: open ones and those starting
    /// stay within `max`.
    pub(crate) fn full(&self, max: usize) -> bool {
        self.count + self.busy.len() >= max
    }

    /// Marks `key` busy while it is started, outside the lock.
    pub(crate) fn opening(&mut self, key: &Key) {
        self.busy.insert(key.clone());
    }

    /// Removes the least recently used log and marks it busy; the caller
    /// shuts it down and then calls `done`.
    pub(crate) fn evict(&mut self) -> Option<(Key, Appender)> {
        let all = self
            .logs
            .iter()
            // Relaxed: see `Tally`.
            .flat_map(|(g, m)| {
                m.iter()
                    .map(move |(t, e)| ((g, t), e.tally.used.load(Ordering::Relaxed)))
            });
        let (g, t) = victim(all)?;
        let key = (g.clone(), t.clone());
        let e = self.logs.get_mut(&key.0)?.remove(&key.1)?;
        self.count -= 1;
        self.busy.insert(key.clone());
        Some((key, e.app))
    }

    /// Opening or closing `key` is over.
    pub(crate) fn done(&mut self, key: &Key) {
        self.busy.remove(key);
    }

    /// Adds the open appender of `key`; returns its tally.
    pub(crate) fn insert(&mut self, key: Key, app: Appender) -> Arc<Tally> {
        let tally = Arc::clone(self.tallies.entry(key.clone()).or_default());
        let entry = Entry {
            app,
            tally: Arc::clone(&tally),
        };
        let (group, tenant) = key;
        if self
            .logs
            .entry(group)
            .or_default()
            .insert(tenant, entry)
            .is_none()
        {
            self.count += 1;
        }
        tally
    }

    /// Every log's tally, and whether it is open.
    pub(crate) fn tallies(&self) -> Vec<(Key, Arc<Tally>, bool)> {
        self.tallies
            .iter()
            .map(|(k, t)| {
                let open = self.logs.get(&k.0).is_some_and(|m| m.contains_key(&k.1));
                (k.clone(), Arc::clone(t), open)
            })
            .collect()
    }

    /// Whether `app` is still the open appender of `group`/`tenant`.
    pub(crate) fn holds(&self, group: &str, tenant: &str, app: &Appender) -> bool {
        self.logs
            .get(group)
            .and_then(|m| m.get(tenant))
            .is_some_and(|e| e.app.same(app))
    }

    /// Takes every open log (shutdown).
    /// Every open log's appender (clones).
    pub(crate) fn appenders(&self) -> Vec<Appender> {
        self.logs
            .values()
            .flat_map(|m| m.values().map(|e| e.app.clone()))
            .collect()
    }

    pub(crate) fn drain(&mut self) -> Vec<(Key, Appender)> {
        self.count = 0;
        self.logs
            .drain()
            .flat_map(|(g, m)| m.into_iter().map(move |(t, e)| ((g.clone(), t), e.app)))
            .collect()
    }
}

/// The least recently used of `(key, last use)`.
fn victim<K>(entries: impl Iterator<Item = (K, u64)>) -> Option<K> {
    entries.min_by_key(|(_, used)| *used).map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::victim;

    #[test]
    fn the_least_recently_used_is_the_victim() {
        let e = [("a", 5), ("b", 2), ("c", 9)];
        assert_eq!(victim(e.iter().map(|(k, u)| (k, *u))), Some(&"b"));
        let none: [(&str, u64); 0] = [];
        assert_eq!(victim(none.iter().map(|(k, u)| (k, *u))), None);
    }
}
