//! Buffered mode's writing: a batch taken from the inbox goes to the
//! current segment in as few writes as the cuts allow, cut between records
//! where the policy says and where `rotate` calls stand.

use std::collections::VecDeque;

use logcut_format::manifest::SealReason;

use super::{Coordinator, worker::Worker};
use crate::{Error, append::state::Cmd, builder::Fsync};

/// Records taken from the buffer and not yet all written.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) ends: Vec<usize>,
    /// Index of the first record not yet written.
    pub(super) next: usize,
    /// Rotate commands, with the record index they come before.
    pub(super) cmds: VecDeque<(usize, Cmd)>,
}

impl<C: Coordinator> Worker<C> {
    /// Writes the taken batch, cutting between records where the policy
    /// says and where rotate commands stand. Stops at a failed write and
    /// keeps the rest for a retry.
    pub(super) fn process_batch(&mut self) {
        let Some(mut b) = self.batch.take() else {
            return;
        };
        let now = self.now();
        let mut written_now = 0u64;
        let mut failed = None;
        // Shared mode: a segment found cut by another process is followed
        // once per batch at most (if that fails, records go on to it: its
        // sealer waits for this process).
        let mut followed = false;
        loop {
            while b.cmds.front().is_some_and(|(pos, _)| *pos <= b.next) {
                if let Some((_, Cmd::Rotate(tx))) = b.cmds.pop_front() {
                    self.sh.lock_inbox().written += std::mem::take(&mut written_now);
                    self.rotate(tx);
                }
            }
            if b.next >= b.ends.len() {
                break;
            }
            let seg = self.sh.path.current.load_full();
            if !C::before_batch(self, &seg, &mut followed) {
                continue;
            }
            let mut st = seg.lock();
            // A time boundary that passed before this batch: cut first.
            if st.cut_pending.is_none() && self.sh.time_cut_due(&seg, &mut st, now) {
                if self.sh.try_swap(&seg, &mut st, SealReason::Time) {
                    drop(st);
                    self.after_swap();
                    continue;
                }
                self.sh.defer_cut(&mut st, SealReason::Time);
            }
            // Gather records up to the size limit or the next command.
            let stop_at = b
                .cmds
                .front()
                .map_or(b.ends.len(), |(p, _)| (*p).min(b.ends.len()));
            let start_byte = if b.next == 0 { 0 } else { b.ends[b.next - 1] };
            // A cut already pending (no next segment was ready): the
            // records go on past the limit until it is made.
            let limit = self.sh.cfg.max_size.filter(|_| st.cut_pending.is_none());
            let room = Room {
                records: st.records,
                bytes: seg.planned_bytes(&st),
                limit,
            };
            let (j, size_cut) = room.fit(&b.ends, b.next, stop_at);
            let cut = size_cut.then_some(SealReason::Size);
            if j > b.next {
                let end_byte = b.ends[j - 1];
                let n = (j - b.next) as u64;
                let rel: Vec<usize> = b.ends[b.next..j].iter().map(|e| e - start_byte).collect();
                match seg.append_records(&mut st, &b.buf[start_byte..end_byte], &rel) {
                    Ok(()) => {
                        b.next = j;
                        written_now += n;
                        if self.sh.cfg.fsync == Fsync::Always {
                            if let Err(e) = seg.sync_records(&self.sh.dir) {
                                drop(st);
                                self.sh.report(Error::io(
                                    "sync segment",
                                    self.sh.dir.join(&self.sh.active_name),
                                    e,
                                ));
                                st = seg.lock();
                            }
                        }
                    }
                    Err((e, whole)) => {
                        b.next += whole;
                        written_now += whole as u64;
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(reason) = cut {
                C::cut_in_batch(self, &seg, st, reason, now);
            }
        }
        {
            let mut q = self.sh.lock_inbox();
            q.written += written_now;
        }
        self.sh.mail.written.notify_all();
        if let Some(e) = failed {
            let path = self.sh.dir.join(&self.sh.active_name);
            self.batch = Some(b);
            self.note_write_failure(Error::io("write records", path, e), true);
            return;
        }
        if self.write.failures > 0 {
            self.write_recovered();
        }
        self.spare = recycle(b.buf, b.ends);
    }
}

/// What a segment holds, against its size limit.
#[derive(Debug, Clone, Copy)]
struct Room {
    records: u64,
    bytes: u64,
    limit: Option<u64>,
}

impl Room {
    /// How far records `next..stop` (ending at `ends`, offsets into one
    /// buffer) go into the segment: each while it stays within the limit,
    /// and always a segment's first record, whatever its size. Returns the
    /// index after the last record that goes in, and whether a size cut
    /// comes before the next.
    fn fit(&self, ends: &[usize], next: usize, stop: usize) -> (usize, bool) {
        let Some(max) = self.limit else {
            return (stop, false);
        };
        let end_of = |j: usize| if j == 0 { 0 } else { ends[j - 1] };
        let start = end_of(next);
        for (j, end) in ends.iter().enumerate().take(stop).skip(next) {
            let records_before = self.records + (j - next) as u64;
            let after = self.bytes + (end - start) as u64;
            if records_before > 0 && after > max {
                return (j, true);
            }
        }
        (stop, false)
    }
}

/// A written batch's buffers, kept for the next batch (they alternate with
/// the inbox's), and shrunk when this batch used little of them: a log
/// that had one burst does not keep megabytes while it is quiet.
fn recycle(mut buf: Vec<u8>, mut ends: Vec<usize>) -> (Vec<u8>, Vec<usize>) {
    const KEEP: usize = 64 << 10;
    let (used, records) = (buf.len(), ends.len());
    buf.clear();
    ends.clear();
    if buf.capacity() > KEEP && used < buf.capacity() / 8 {
        buf.shrink_to(KEEP.max(used * 2));
    }
    if ends.capacity() > KEEP / 16 && records < ends.capacity() / 8 {
        ends.shrink_to((KEEP / 16).max(records * 2));
    }
    (buf, ends)
}

#[cfg(test)]
mod tests {
    use super::{Room, recycle};

    #[test]
    fn records_fill_a_segment_up_to_its_limit_and_a_first_record_always_fits() {
        // Records of 10, 10, 30 and 10 bytes.
        let ends = [10, 20, 50, 60];
        let room = |records, bytes, limit| Room {
            records,
            bytes,
            limit,
        };
        assert_eq!(room(0, 0, None).fit(&ends, 0, 4), (4, false));
        // 25 bytes of room: two records, then a cut.
        assert_eq!(room(0, 0, Some(25)).fit(&ends, 0, 4), (2, true));
        // Exactly full is within the limit.
        assert_eq!(room(0, 0, Some(20)).fit(&ends, 0, 4), (2, true));
        assert_eq!(room(0, 0, Some(60)).fit(&ends, 0, 4), (4, false));
        // An empty segment takes its first record even if it is too big.
        assert_eq!(room(0, 0, Some(5)).fit(&ends, 0, 4), (1, true));
        assert_eq!(room(0, 0, Some(5)).fit(&ends, 2, 4), (3, true));
        // A segment holding records already: the next one that does not fit
        // waits for the cut, even the first of this run.
        assert_eq!(room(3, 40, Some(45)).fit(&ends, 0, 4), (0, true));
        assert_eq!(room(3, 40, Some(50)).fit(&ends, 3, 4), (4, false));
        // The run stops at a command (`stop`), not at a cut.
        assert_eq!(room(0, 0, Some(100)).fit(&ends, 1, 3), (3, false));
    }

    #[test]
    fn buffers_shrink_after_a_small_batch_and_keep_their_size_under_load() {
        let big = vec![0u8; 1 << 20];
        let (buf, ends) = recycle(big, vec![0; 10_000]);
        // A full batch: kept as it is.
        assert!(buf.capacity() >= 1 << 20 && buf.is_empty());
        assert!(ends.capacity() >= 10_000 && ends.is_empty());
        let mut small = buf;
        small.extend_from_slice(&[1u8; 1000]);
        let mut few = ends;
        few.extend([1, 2, 3]);
        let (buf, ends) = recycle(small, few);
        assert!(
            buf.capacity() < 1 << 20 && buf.capacity() >= 64 << 10,
            "{}",
            buf.capacity()
        );
        assert!(ends.capacity() < 10_000, "{}", ends.capacity());
        assert!(buf.is_empty() && ends.is_empty());
    }
}
