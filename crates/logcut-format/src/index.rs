//! The search index of a sealed segment: which values of a few JSON fields
//! (`trace_id` by default) its lines may hold, so that a search for one
//! value can skip the segments that cannot hold it.
//!
//! # Format (version 1)
//!
//! The file `<sealed name>.idx` (for example
//! `app.2026-11-24T10-00-00.000Z.000042.log.idx`; it keeps its name when the
//! segment is compressed) is:
//!
//! ```text
//! logcut-index 1 keys=trace_id,user_id wild=user_id k=7 bits=4096 values=312\n
//! <bits / 8 bytes: a Bloom filter>
//! <CRC-32 (IEEE) of everything before, 4 bytes, little endian>
//! ```
//!
//! `keys` are the indexed field names; `wild` those for which some line
//! held a value the index could not record exactly (a string with an
//! escape, a number JSON may print otherwise): a search for such a key
//! reads the segment. The filter holds one entry per distinct
//! (key, value) pair, `values` of them, with `k` probes each. The manifest
//! records the file with an `index` entry (its CRC-32 and length), which
//! [`verify`](crate::verify()) checks.
//!
//! # What is indexed
//!
//! A key is indexed wherever `"key"` appears in a line followed by `:`
//! (JSON whitespace allowed), at any depth, so the value of the dotted path
//! `ctx.trace_id` is indexed under `trace_id`. Recorded values are strings
//! without escapes (as they are), integers of at most 18 digits, `true` and
//! `false`, which is how a search compares them; `null`, objects and arrays
//! never match a search and are not recorded. A line holding `\u` (which
//! could spell a key with escapes) makes every key wild. So a segment the
//! index says cannot hold a value never holds it: the index can only make a
//! search read a segment it did not need to read (about 1 % of segments
//! for a value that is nowhere), never miss a line.

use std::collections::HashSet;

/// The first word of an index file.
pub const MAGIC: &str = "logcut-index";

/// The index format version this crate writes.
pub const VERSION: u32 = 1;

/// The longest field name that can be indexed.
pub const MAX_KEY_LEN: usize = 64;

/// Bits of filter per value: about 1 % false positives with 7 probes.
const BITS_PER_VALUE: u64 = 10;
const PROBES: u32 = 7;

/// The index file's name for the sealed segment `sealed`: `<sealed>.idx`.
pub fn index_file(sealed: &str) -> String {
    format!("{sealed}.idx")
}

/// Checks that `key` can be indexed: 1 to 64 ASCII letters, digits, `_`
/// and `-` (a field name, not a dotted path). Returns what is wrong
/// otherwise.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "the index field {key:?} must be 1 to {MAX_KEY_LEN} bytes long"
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "the index field {key:?} may hold only ASCII letters, digits, '_' and '-' (a field name, not a path)"
        ));
    }
    Ok(())
}

/// Builds a segment's index from its bytes, fed in pieces of any size.
#[derive(Debug)]
pub struct IndexBuilder {
    keys: Vec<String>,
    /// Each key's pattern, `"key"`.
    patterns: Vec<Vec<u8>>,
    wild: Vec<bool>,
    hashes: HashSet<u64>,
    /// The unfinished last line of what was fed.
    partial: Vec<u8>,
}

impl IndexBuilder {
    /// An index of the fields `keys`; each must pass [`validate_key`].
    pub fn new(keys: &[String]) -> Result<IndexBuilder, String> {
        for k in keys {
            validate_key(k)?;
        }
        Ok(IndexBuilder {
            keys: keys.to_vec(),
            patterns: keys
                .iter()
                .map(|k| format!("\"{k}\"").into_bytes())
                .collect(),
            wild: vec![false; keys.len()],
            hashes: HashSet::new(),
            partial: Vec::new(),
        })
    }

    /// Adds the next bytes of the segment.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(nl + 1);
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole);
                whole.clear();
                self.partial = whole;
            }
            bytes = rest;
        }
        self.partial.extend_from_slice(bytes);
    }

    fn line(&mut self, line: &[u8]) {
        if memchr::memmem::find(line, b"\\u").is_some() {
            self.wild.iter_mut().for_each(|w| *w = true);
            return;
        }
        for (i, pat) in self.patterns.iter().enumerate() {
            if self.wild[i] {
                continue;
            }
            for at in memchr::memmem::find_iter(line, pat) {
                match value_after(&line[at + pat.len()..]) {
                    Value::Exact(v) => {
                        self.hashes.insert(hash(&self.keys[i], v));
                    }
                    Value::Wild => {
                        self.wild[i] = true;
                        break;
                    }
                    Value::None => {}
                }
            }
        }
    }

    /// The index file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last);
        }
        let values = self.hashes.len() as u64;
        let bits = (values * BITS_PER_VALUE).div_ceil(64).max(1) * 64;
        let mut filter = vec![0u8; usize::try_from(bits / 8).unwrap_or(0)];
        for h in &self.hashes {
            for p in probes(*h, bits) {
                filter[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        let wild: Vec<&str> = self
            .keys
            .iter()
            .zip(&self.wild)
            .filter_map(|(k, w)| w.then_some(k.as_str()))
            .collect();
        let mut out = format!(
            "{MAGIC} {VERSION} keys={} wild={} k={PROBES} bits={bits} values={values}\n",
            self.keys.join(","),
            wild.join(",")
        )
        .into_bytes();
        out.extend_from_slice(&filter);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// A value found after a key's pattern.
enum Value<'a> {
    /// Not a key (no `:` follows), or a value no search matches.
    None,
    /// A value recorded as it is.
    Exact(&'a [u8]),
    /// A value the index cannot record exactly.
    Wild,
}

fn value_after(rest: &[u8]) -> Value<'_> {
    let ws = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = &rest[ws(rest)..];
    let Some(rest) = rest.strip_prefix(b":") else {
        return Value::None;
    };
    let rest = &rest[ws(rest)..];
    match rest.first() {
        Some(b'"') => {
            let body = &rest[1..];
            match memchr::memchr2(b'"', b'\\', body) {
                Some(end) if body[end] == b'"' => Value::Exact(&body[..end]),
                // An escape, or no end in the line.
                _ => Value::Wild,
            }
        }
        Some(b'-' | b'0'..=b'9' | b't' | b'f') => {
            let len = rest
                .iter()
                .take_while(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                .count();
            let token = &rest[..len];
            if token == b"true" || token == b"false" || is_plain_integer(token) {
                Value::Exact(token)
            } else {
                Value::Wild
            }
        }
        _ => Value::None,
    }
}

/// An integer JSON prints back as it was written: `0`, or up to 18 digits
/// without a leading zero, with an optional `-` (not `-0`).
fn is_plain_integer(t: &[u8]) -> bool {
    if t == b"0" {
        return true;
    }
    let digits = t.strip_prefix(b"-").unwrap_or(t);
    !digits.is_empty()
        && digits.len() <= 18
        && digits[0] != b'0'
        && digits.iter().all(u8::is_ascii_digit)
}

/// A stable 64-bit hash of a (key, value) pair: FNV-1a, then the
/// splitmix64 finaliser to spread it over all bits.
fn hash(key: &str, value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0]).chain(value.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The filter bits a hash sets (double hashing).
fn probes(h: u64, bits: u64) -> impl Iterator<Item = u64> {
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..u64::from(PROBES)).map(move |i| a.wrapping_add(i.wrapping_mul(b)) % bits)
}

/// A parsed index file.
#[derive(Clone, Debug)]
pub struct Index {
    keys: Vec<String>,
    wild: Vec<String>,
    bits: u64,
    probes: u32,
    values: u64,
    filter: Vec<u8>,
}

impl Index {
    /// Parses an index file's bytes; a message saying what is wrong if they
    /// are not one (damaged, truncated, another version).
    pub fn parse(bytes: &[u8]) -> Result<Index, String> {
        let Some(body_len) = bytes.len().checked_sub(4) else {
            return Err("too short to be an index".into());
        };
        let (body, crc) = bytes.split_at(body_len);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != crc {
            return Err("fails its checksum".into());
        }
        let nl = memchr::memchr(b'\n', body).ok_or("has no header line")?;
        let header = std::str::from_utf8(&body[..nl]).map_err(|_| "header is not UTF-8")?;
        let mut words = header.split(' ');
        if words.next() != Some(MAGIC) || words.next() != Some("1") {
            return Err(format!("is not a version {VERSION} index"));
        }
        let fields: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("header without {k}"))
        };
        let num = |k: &str| -> Result<u64, String> {
            get(k)?.parse().map_err(|_| format!("{k} is not a number"))
        };
        let list = |k: &str| -> Result<Vec<String>, String> {
            Ok(get(k)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        };
        let bits = num("bits")?;
        let filter = body[nl + 1..].to_vec();
        if bits == 0 || bits % 64 != 0 || filter.len() as u64 != bits / 8 {
            return Err(format!("its filter is not {bits} bits long"));
        }
        let probes = u32::try_from(num("k")?)
            .ok()
            .filter(|k| (1..=32).contains(k))
            .ok_or("k is out of range")?;
        Ok(Index {
            keys: list("keys")?,
            wild: list("wild")?,
            bits,
            probes,
            values: num("values")?,
            filter,
        })
    }

    /// Whether the segment may hold a line whose field `key` has `value`:
    /// `None` if `key` is not indexed (the index cannot say), `Some(false)`
    /// if it surely does not.
    pub fn may_contain(&self, key: &str, value: &str) -> Option<bool> {
        if !self.keys.iter().any(|k| k == key) {
            return None;
        }
        if self.wild.iter().any(|k| k == key) {
            return Some(true);
        }
        let h = hash(key, value.as_bytes());
        let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
        Some((0..u64::from(self.probes)).all(|i| {
            let p = a.wrapping_add(i.wrapping_mul(b)) % self.bits;
            self.filter[(p / 8) as usize] & (1 << (p % 8)) != 0
        }))
    }

    /// The indexed field names.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// How many distinct (key, value) pairs the filter holds.
    pub fn values(&self) -> u64 {
        self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: &[&str], text: &str) -> Index {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut b = IndexBuilder::new(&keys).unwrap();
        // In pieces that split lines anywhere.
        for piece in text.as_bytes().chunks(7) {
            b.feed(piece);
        }
        Index::parse(&b.finish()).unwrap()
    }

    #[test]
    fn values_found_anywhere_in_a_line_are_in_the_index() {
        let ix = build(
            &["trace_id", "user"],
            "{\"trace_id\":\"abc\",\"msg\":\"x\"}\n\
             {\"span\":{\"trace_id\" : \"def\"},\"user\":7}\n\
             {\"user\":true}\n{\"trace_id\":null}\nnot json trace_id\n\
             {\"trace_id\":\"last\"}",
        );
        for (k, v) in [
            ("trace_id", "abc"),
            ("trace_id", "def"),
            ("trace_id", "last"),
            ("user", "7"),
            ("user", "true"),
        ] {
            assert_eq!(ix.may_contain(k, v), Some(true), "{k}={v}");
        }
        assert_eq!(ix.may_contain("msg", "x"), None, "not indexed");
        // A value as a value of another key is not one of this key's.
        assert_eq!(ix.may_contain("trace_id", "x"), Some(false));
        let absent = (0..1000)
            .filter(|i| ix.may_contain("trace_id", &format!("nope{i}")) == Some(true))
            .count();
        assert!(absent < 50, "{absent} false positives of 1000");
    }

    #[test]
    fn values_the_index_cannot_record_make_their_key_wild() {
        let ix = build(
            &["a", "b", "c"],
            "{\"a\":\"x\\\"y\",\"b\":1.5,\"c\":\"ok\"}\n",
        );
        assert_eq!(ix.may_contain("a", "anything"), Some(true));
        assert_eq!(ix.may_contain("b", "anything"), Some(true));
        assert_eq!(ix.may_contain("c", "other"), Some(false));
        // `\u` could spell a key: every key is wild.
        let ix = build(&["a"], "{\"\\u0061\":\"x\"}\n");
        assert_eq!(ix.may_contain("a", "x"), Some(true));
        for t in ["007", "-0", "1e3", "1234567890123456789"] {
            let ix = build(&["n"], &format!("{{\"n\":{t}}}\n"));
            assert_eq!(ix.may_contain("n", "whatever"), Some(true), "{t}");
        }
    }

    #[test]
    fn a_false_positive_rate_near_one_percent() {
        let keys = vec!["trace_id".to_string()];
        let mut b = IndexBuilder::new(&keys).unwrap();
        for i in 0..2000 {
            b.feed(format!("{{\"trace_id\":\"{i:032x}\"}}\n").as_bytes());
        }
        let ix = Index::parse(&b.finish()).unwrap();
        assert_eq!(ix.values(), 2000);
        for i in 0..2000 {
            assert_eq!(ix.may_contain("trace_id", &format!("{i:032x}")), Some(true));
        }
        let fp = (2000..22000)
            .filter(|i| ix.may_contain("trace_id", &format!("{i:032x}")) == Some(true))
            .count();
        assert!(fp < 400, "{fp} false positives of 20,000");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let keys = vec!["k".to_string()];
        let mut b = IndexBuilder::new(&keys).unwrap();
        b.feed(b"{\"k\":\"v\"}\n");
        let good = b.finish();
        assert!(Index::parse(&good).is_ok());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(Index::parse(&bad).is_err(), "flip at {i}");
        }
        assert!(Index::parse(&good[..good.len() - 1]).is_err());
        assert!(Index::parse(b"").is_err());
        assert!(IndexBuilder::new(&["a.b".to_string()]).is_err());
        assert!(IndexBuilder::new(&[String::new()]).is_err());
    }
}
