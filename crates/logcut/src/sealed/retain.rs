//! Retention: which sealed segments to delete, oldest first.
//!
//! A pure choice over the list of sealed segments, so it can be tested
//! without files; the keeper thread (see `keeper.rs`) records and carries
//! out the deletions.

use std::{collections::HashSet, sync::Mutex, time::Duration};

use jiff::{SignedDuration, Timestamp};
use logcut_format::manifest::DeleteReason;

/// The limits on sealed segments; any combination, none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) keep: Option<usize>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_total: Option<u64>,
    /// The free-space floor: the oldest segments go while the file system
    /// has less free than this.
    pub(crate) min_free: Option<u64>,
}

impl Retention {
    pub(crate) fn is_none(&self) -> bool {
        self.keep.is_none()
            && self.max_age.is_none()
            && self.max_total.is_none()
            && self.min_free.is_none()
    }

    /// When the oldest of `ends` (segment end times) passes the age limit.
    pub(crate) fn next_expiry(&self, oldest_end: Option<Timestamp>) -> Option<Timestamp> {
        let age = SignedDuration::try_from(self.max_age?).ok()?;
        oldest_end?.checked_add(age).ok()
    }
}

/// What retention needs to know of one sealed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) seq: u64,
    /// When it was sealed.
    pub(crate) end: Timestamp,
    /// What it takes on disk now.
    pub(crate) disk_bytes: u64,
    /// Being compressed right now: it must not be deleted under the
    /// compressor.
    pub(crate) busy: bool,
}

/// Sequence numbers that another policy still needs (a shipper that has
/// not uploaded them yet, for example): retention stops at the oldest of
/// them rather than delete it or anything newer out of order.
#[derive(Debug, Default)]
pub(crate) struct Pins(Mutex<HashSet<u64>>);

// Nothing pins segments yet; shipping to object storage will.
#[cfg_attr(not(test), allow(dead_code))]
impl Pins {
    pub(crate) fn pin(&self, seq: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(seq);
    }

    pub(crate) fn unpin(&self, seq: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
    }

    pub(crate) fn is_pinned(&self, seq: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&seq)
    }
}

/// The segments to delete (indices into `segs`, oldest first) and why.
///
/// `segs` are the sealed segments still on disk, oldest first (the active
/// segment is never among them); `free` is what the file system holding
/// them has free now (`None` if unknown: the floor is not applied). Deletion goes strictly oldest first: a
/// segment that is busy or pinned stops it, so a newer segment is never
/// deleted while an older one stays; the limits are met again once that
/// segment is free (the keeper asks again after each event). A segment
/// `unshipped` says was not shipped yet stops every limit but the
/// free-space floor, which deletes it as `UnshippedFree`.
pub(crate) fn select(
    segs: &[Candidate],
    policy: &Retention,
    now: Timestamp,
    free: Option<u64>,
    pinned: impl Fn(u64) -> bool,
    unshipped: impl Fn(u64) -> bool,
) -> Vec<(usize, DeleteReason)> {
    let mut out = Vec::new();
    if policy.is_none() {
        return out;
    }
    let mut count = segs.len();
    let mut total: u64 = segs.iter().map(|s| s.disk_bytes).sum();
    // Free space after the deletions chosen so far.
    let mut free = free;
    let cutoff = policy
        .max_age
        .and_then(|a| SignedDuration::try_from(a).ok())
        .and_then(|a| now.checked_sub(a).ok());
    for (i, s) in segs.iter().enumerate() {
        let reason = if policy.keep.is_some_and(|k| count > k) {
            DeleteReason::Count
        } else if cutoff.is_some_and(|c| s.end < c) {
            DeleteReason::Age
        } else if policy.max_total.is_some_and(|m| total > m) {
            DeleteReason::Bytes
        } else if policy
            .min_free
            .zip(free)
            .is_some_and(|(floor, now_free)| now_free < floor)
        {
            DeleteReason::Free
        } else {
            break;
        };
        if s.busy || pinned(s.seq) {
            break;
        }
        // Not shipped yet: only the free-space floor deletes it, and says
        // so.
        let below_floor = policy
            .min_free
            .zip(free)
            .is_some_and(|(floor, now_free)| now_free < floor);
        let reason = match (unshipped(s.seq), below_floor) {
            (false, _) => reason,
            (true, true) => DeleteReason::UnshippedFree,
            (true, false) => break,
        };
        out.push((i, reason));
        count -= 1;
        total -= s.disk_bytes;
        free = free.map(|f| f.saturating_add(s.disk_bytes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn segs(n: u64) -> Vec<Candidate> {
        (1..=n)
            .map(|seq| Candidate {
                seq,
                end: ts(seq as i64 * 10),
                disk_bytes: 100,
                busy: false,
            })
            .collect()
    }

    fn seqs(segs: &[Candidate], sel: &[(usize, DeleteReason)]) -> Vec<(u64, &'static str)> {
        sel.iter()
            .map(|(i, r)| {
                let r = match r {
                    DeleteReason::Count => "count",
                    DeleteReason::Age => "age",
                    DeleteReason::Bytes => "bytes",
                    DeleteReason::Free => "free",
                    _ => "other",
                };
                (segs[*i].seq, r)
            })
            .collect()
    }

    #[test]
    fn an_unshipped_segment_stops_every_limit_but_the_free_space_floor() {
        let s = segs(5);
        let keep = Retention {
            keep: Some(1),
            min_free: Some(500),
            ..Retention::default()
        };
        let unshipped = |q: u64| q >= 2;
        // Enough free space: only the shipped segment 1 goes.
        let got = select(&s, &keep, ts(0), Some(1000), |_| false, unshipped);
        assert_eq!(seqs(&s, &got), [(1, "count")]);
        // Below the floor: the floor takes unshipped ones too, and says so,
        // until it is met (200 free + 100 each).
        let got = select(&s, &keep, ts(0), Some(200), |_| false, unshipped);
        let r: Vec<_> = got.iter().map(|(i, r)| (s[*i].seq, r.clone())).collect();
        assert_eq!(
            r,
            [
                (1, DeleteReason::Count),
                (2, DeleteReason::UnshippedFree),
                (3, DeleteReason::UnshippedFree),
            ]
        );
    }

    #[test]
    fn nothing_without_a_policy() {
        let s = segs(10);
        assert!(
            select(
                &s,
                &Retention::default(),
                ts(1000),
                None,
                |_| false,
                |_| false
            )
            .is_empty()
        );
    }

    #[test]
    fn count_age_and_bytes_each_and_together() {
        let s = segs(5);
        let keep = Retention {
            keep: Some(3),
            ..Retention::default()
        };
        let got = select(&s, &keep, ts(0), None, |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "count"), (2, "count")]);
        // Ends at 10, 20, ... 50; at 55 with 30 s: ends before 25 go.
        let age = Retention {
            max_age: Some(Duration::from_secs(30)),
            ..Retention::default()
        };
        let got = select(&s, &age, ts(55), None, |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "age"), (2, "age")]);
        let bytes = Retention {
            max_total: Some(250),
            ..Retention::default()
        };
        let got = select(&s, &bytes, ts(0), None, |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "bytes"), (2, "bytes"), (3, "bytes")]);
        let all = Retention {
            keep: Some(4),
            max_age: Some(Duration::from_secs(30)),
            max_total: Some(150),
            min_free: None,
        };
        let got = select(&s, &all, ts(55), None, |_| false, |_| false);
        assert_eq!(
            seqs(&s, &got),
            [(1, "count"), (2, "age"), (3, "bytes"), (4, "bytes")]
        );
    }

    #[test]
    fn the_free_space_floor_deletes_the_oldest_until_enough_is_free() {
        // Five segments of 100 bytes each.
        let s = segs(5);
        let floor = Retention {
            min_free: Some(1000),
            ..Retention::default()
        };
        // 750 free: three go (850, 950, 1050).
        let got = select(&s, &floor, ts(0), Some(750), |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "free"), (2, "free"), (3, "free")]);
        // Enough free already, or unknown: nothing goes.
        assert!(select(&s, &floor, ts(0), Some(1000), |_| false, |_| false).is_empty());
        assert!(select(&s, &floor, ts(0), None, |_| false, |_| false).is_empty());
        // Far too little: every sealed segment, no more.
        assert_eq!(
            select(&s, &floor, ts(0), Some(0), |_| false, |_| false).len(),
            5
        );
        // The other limits first, then the floor on what is left.
        let both = Retention {
            keep: Some(4),
            min_free: Some(1000),
            ..Retention::default()
        };
        let got = select(&s, &both, ts(0), Some(780), |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "count"), (2, "free"), (3, "free")]);
    }

    #[test]
    fn a_busy_or_pinned_segment_stops_deletion_in_order() {
        let mut s = segs(5);
        s[1].busy = true;
        let keep = Retention {
            keep: Some(1),
            ..Retention::default()
        };
        let got = select(&s, &keep, ts(0), None, |_| false, |_| false);
        assert_eq!(seqs(&s, &got), [(1, "count")]);
        s[1].busy = false;
        let pins = Pins::default();
        pins.pin(1);
        assert!(select(&s, &keep, ts(0), None, |q| pins.is_pinned(q), |_| false).is_empty());
        pins.unpin(1);
        let got = select(&s, &keep, ts(0), None, |q| pins.is_pinned(q), |_| false);
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn expiry_of_the_oldest() {
        let r = Retention {
            max_age: Some(Duration::from_secs(30)),
            ..Retention::default()
        };
        assert_eq!(r.next_expiry(Some(ts(10))), Some(ts(40)));
        assert_eq!(r.next_expiry(None), None);
        assert_eq!(Retention::default().next_expiry(Some(ts(10))), None);
    }
}
