//! The one parser of logs of numbered records, for the integration tests of
//! `logcut` (through the kit) and the tests of the `logcut` command (which
//! include this file by path): every line must be a whole record, exactly
//! as it was written, and each writer's ids must come as the tolerance
//! chosen says.
//!
//! A record is one line, `<tag> <id> <rest>\n`: the tag names its writer,
//! the id counts that writer's records from 0, and the whole line is what
//! the [`Format`] says record `id` of `tag` is. The tolerances, each named
//! by a method of [`Parser`] (none: [`Parser::exact`]):
//!
//! - [`Parser::oldest_deleted`]: each writer's ids start anywhere
//!   (retention deleted its oldest), then follow without a gap;
//! - [`Parser::gaps`]: ids only increase (whole segments were deleted
//!   before a follower could read them);
//! - [`Parser::any_order`]: records of several files, read in an order that
//!   is not each writer's: each id exactly once, in any order;
//! - [`Parser::killed`]: that writer died in a `write(2)` (SIGKILL stops one
//!   between pages): its last record may be torn, a proper prefix of the
//!   record after its last whole one, at the end of the data or before
//!   another writer's record, and nothing of it follows. Given for several
//!   writers (the threads of one killed process), one of them may have
//!   torn its record, not more.

#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::{collections::BTreeMap, ops::Range};

/// What the records look like.
#[derive(Clone, Copy)]
pub enum Format<'f> {
    /// The test kit's records of exactly this many bytes (at least 24),
    /// [`fixed_record`]: tag `t<writer, 2 digits>`.
    Fixed(usize),
    /// Lines `<tag> <id> ...\n` of any length: the function gives record
    /// `id` of writer `tag`, newline included (`None` if `tag` names no
    /// writer).
    Lines(&'f dyn Fn(&str, u64) -> Option<Vec<u8>>),
}

/// The tag of the kit's records of writer (thread) `thread`.
pub fn tag(thread: usize) -> String {
    format!("t{thread:02}")
}

/// Record `seq` of thread `thread`, exactly `len` bytes (at least 24):
/// `t<thread> <seq> x...\n`.
pub fn fixed_record(thread: usize, seq: u64, len: usize) -> Vec<u8> {
    let mut r = format!("t{thread:02} {seq:010} ").into_bytes();
    while r.len() + 1 < len {
        r.push(b'a' + (seq % 26) as u8);
    }
    r.push(b'\n');
    r
}

impl Format<'_> {
    /// Record `id` of `tag`, or `None` if `tag` names no writer.
    fn record(&self, tag: &str, id: u64) -> Option<Vec<u8>> {
        match self {
            Format::Fixed(len) => {
                let t = tag.strip_prefix('t').filter(|t| t.len() == 2)?;
                Some(fixed_record(t.parse().ok()?, id, *len))
            }
            Format::Lines(f) => f(tag, id),
        }
    }

    /// The tag and id of `line` if it is a whole record, exactly.
    fn whole(&self, line: &[u8]) -> Option<(String, u64)> {
        let text = std::str::from_utf8(line).ok()?;
        let mut words = text.splitn(3, [' ', '\n']);
        let tag = words.next()?;
        let id = words.next()?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: u64 = id.parse().ok()?;
        (self.record(tag, id)?.as_slice() == line).then(|| (tag.to_string(), id))
    }
}

/// How each writer's ids may come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// 0, 1, 2, ... with no gap.
    Exact,
    /// Any first id, then no gap.
    OldestDeleted,
    /// Increasing, gaps allowed.
    Gaps,
    /// Each of 0..n once, in any order.
    Any,
}

/// Parses a log of records with named tolerances (see the module docs).
pub struct Parser<'f> {
    format: Format<'f>,
    order: Order,
    killed: Vec<String>,
}

/// The records found: each writer's ids in the order they came, and the
/// torn record of a killed writer, if any.
#[derive(Debug, Default)]
pub struct Records {
    pub ids: BTreeMap<String, Vec<u64>>,
    /// The first bytes of the killed writer's torn record.
    pub torn: Option<Vec<u8>>,
}

impl<'f> Parser<'f> {
    pub fn new(format: Format<'f>) -> Parser<'f> {
        Parser {
            format,
            order: Order::Exact,
            killed: Vec::new(),
        }
    }

    /// The kit's records of `len` bytes.
    pub fn fixed(len: usize) -> Parser<'static> {
        Parser::new(Format::Fixed(len))
    }

    /// No tolerance (the default): every byte is part of a whole record,
    /// and each writer's ids are 0, 1, 2, ... with nothing missing.
    pub fn exact(mut self) -> Self {
        self.order = Order::Exact;
        self
    }

    /// Each writer's ids may start past 0 (retention deleted the oldest
    /// segments), and follow without a gap from there.
    pub fn oldest_deleted(mut self) -> Self {
        self.order = Order::OldestDeleted;
        self
    }

    /// Each writer's ids only increase; any may be missing (segments
    /// deleted before they could be read).
    pub fn gaps(mut self) -> Self {
        self.order = Order::Gaps;
        self
    }

    /// The data is several files whose order is not each writer's: each id
    /// from 0 up once, in any order.
    pub fn any_order(mut self) -> Self {
        self.order = Order::Any;
        self
    }

    /// Writer `tag` was killed: its last record may be torn (see the
    /// module docs). Called for several writers, one of them may have torn
    /// its last record.
    pub fn killed(mut self, tag: &str) -> Self {
        self.killed.push(tag.to_string());
        self
    }

    /// Parses `data`, failing the test at the first record that is not as
    /// the tolerances allow.
    pub fn parse(&self, data: &[u8]) -> Records {
        assert!(
            self.killed.is_empty() || matches!(self.order, Order::Exact | Order::OldestDeleted),
            "a killed writer is checked with exact order, or oldest deleted, only"
        );
        let mut out = Records::default();
        let mut torn_by: Option<String> = None;
        let mut offset = 0usize;
        for (i, line) in data.split_inclusive(|b| *b == b'\n').enumerate() {
            let at = offset;
            offset += line.len();
            if let Some((tag, id)) = self.format.whole(line) {
                self.add(&mut out, torn_by.as_deref(), i, at, tag, id);
                continue;
            }
            let show = String::from_utf8_lossy(line);
            assert!(
                !self.killed.is_empty(),
                "record {i} (byte {at}) is not a whole record: {show:?}"
            );
            assert!(
                out.torn.is_none(),
                "a second torn record (record {i}, byte {at}): {show:?}"
            );
            // Which killed writer `frag` is the torn next record of: the
            // id after its last one (each follows the one before).
            let torn_of = |frag: &[u8]| {
                self.killed.iter().find(|killed| {
                    let next = out
                        .ids
                        .get(*killed)
                        .and_then(|v| v.last())
                        .map_or(0, |l| l + 1);
                    let start = self
                        .format
                        .record(killed, next)
                        .unwrap_or_else(|| panic!("{killed} names no writer"));
                    frag.len() < start.len() && start.starts_with(frag)
                })
            };
            if !line.ends_with(b"\n") {
                // The end of the data.
                let by = torn_of(line).unwrap_or_else(|| {
                    panic!(
                        "the data ends in {} bytes that are not the start of the next record of {:?}: {show:?}",
                        line.len(),
                        self.killed
                    )
                });
                torn_by = Some(by.clone());
                out.torn = Some(line.to_vec());
                continue;
            }
            // A torn record, then a whole one of another writer.
            let split = (1..line.len()).find_map(|p| {
                let (frag, rest) = line.split_at(p);
                let (tag, id) = self.format.whole(rest)?;
                torn_of(frag).map(|by| (frag, by.clone(), tag, id))
            });
            let (frag, by, tag, id) = split.unwrap_or_else(|| {
                panic!(
                    "record {i} (byte {at}) is neither whole nor the torn next record of one of {:?} before a whole one: {show:?}",
                    self.killed
                )
            });
            out.torn = Some(frag.to_vec());
            torn_by = Some(by);
            self.add(&mut out, torn_by.as_deref(), i, at + frag.len(), tag, id);
        }
        if self.order == Order::Any {
            for (tag, ids) in &out.ids {
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                let wrong = sorted
                    .iter()
                    .enumerate()
                    .find(|(n, id)| **id != *n as u64)
                    .map(|(n, id)| (n as u64, *id));
                assert!(
                    wrong.is_none(),
                    "{tag}: {} records, not each of 0..{} once: {:?} (expected, found) at the first difference",
                    ids.len(),
                    ids.len(),
                    wrong
                );
            }
        }
        out
    }

    fn add(
        &self,
        out: &mut Records,
        torn_by: Option<&str>,
        i: usize,
        at: usize,
        tag: String,
        id: u64,
    ) {
        if torn_by == Some(tag.as_str()) {
            panic!("record {i} (byte {at}): {tag}'s record {id} after its torn one");
        }
        let ids = out.ids.entry(tag.clone()).or_default();
        let last = ids.last().copied();
        let ok = match (self.order, last) {
            (Order::Exact, None) => id == 0,
            (Order::Exact | Order::OldestDeleted, Some(l)) => id == l + 1,
            (Order::OldestDeleted | Order::Gaps | Order::Any, None) => true,
            (Order::Gaps, Some(l)) => id > l,
            (Order::Any, Some(_)) => true,
        };
        assert!(
            ok,
            "record {i} (byte {at}): {tag}'s id {id} after {last:?}: lost, duplicated or reordered ({:?} order)",
            self.order
        );
        ids.push(id);
    }
}

impl Records {
    /// How many records of `tag` were found (whole ones).
    pub fn count(&self, tag: &str) -> u64 {
        self.ids.get(tag).map_or(0, |v| v.len() as u64)
    }

    /// `tag`'s ids, in the order they came (empty if none).
    pub fn ids(&self, tag: &str) -> &[u64] {
        self.ids.get(tag).map_or(&[], Vec::as_slice)
    }

    /// The first id of `tag` and one past its last (`0..0` if none): for
    /// ids without gaps, the range they cover.
    pub fn range(&self, tag: &str) -> Range<u64> {
        match self.ids(tag) {
            [] => 0..0,
            ids => ids[0]..ids[ids.len() - 1] + 1,
        }
    }

    /// The tags found, in order.
    pub fn tags(&self) -> Vec<&str> {
        self.ids.keys().map(String::as_str).collect()
    }

    /// The number of records of each tag.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.ids
            .iter()
            .map(|(t, v)| (t.clone(), v.len() as u64))
            .collect()
    }
}
