//! Property tests of everything here that parses untrusted input: manifest
//! lines and whole manifests, segment names and timestamps, lock and cut
//! files, error files, index files, key files and verification keys. None may panic on
//! any input, and what has a printer parses back to what was printed.

use std::path::Path;

use jiff::Timestamp;
use proptest::prelude::*;

use crate::{
    index::Index,
    last_error::{LastError, SIZE},
    lock::{CutState, LockInfo},
    manifest::{
        Close, Delete, DeleteReason, Entry, Lost, Manifest, Recover, Seal, SealReason, Shipped,
        parse_line,
    },
    name::{SealedName, format_ts, parse_ts, split_sealed},
    sealing::{self, SealKey, Tail, VerifyKey},
};

/// Milliseconds whose timestamp has a four-digit year (what names hold).
fn ms() -> impl Strategy<Value = i64> {
    0i64..253_402_300_799_999
}

/// A manifest value: no spaces, `=` or `~` (the grammar's separators).
fn word() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._/:-]{1,24}"
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (
            any::<u64>(),
            word(),
            word(),
            (ms(), ms()),
            (any::<Option<u64>>(), any::<Option<u64>>()),
            (any::<u64>(), any::<u32>()),
            prop::option::of("[0-9a-f]{64}"),
        )
            .prop_map(
                |(seq, file, session, (start, end), (first, records), (bytes, crc32), sha256)| {
                    Entry::Seal(Seal {
                        seq,
                        file,
                        session,
                        start: ts(start),
                        end: ts(end),
                        first,
                        records,
                        bytes,
                        crc32,
                        reason: SealReason::Size,
                        sha256,
                    })
                }
            ),
        (word(), any::<u64>(), any::<u64>(), word()).prop_map(
            |(session, records, bytes, reason)| {
                Entry::Lost(Lost {
                    session,
                    records,
                    bytes,
                    reason,
                })
            }
        ),
        (word(), ms(), any::<u64>(), any::<u64>()).prop_map(|(session, at, accepted, lost)| {
            Entry::Close(Close {
                session,
                at: ts(at),
                accepted,
                lost,
            })
        }),
        (any::<u64>(), word()).prop_map(|(seq, file)| Entry::Delete(Delete {
            seq,
            file,
            reason: DeleteReason::Age,
        })),
        (
            any::<u64>(),
            word(),
            word(),
            prop::option::of(word()),
            "[0-9a-f]{64}",
            any::<u32>()
        )
            .prop_map(
                |(seq, file, key, etag, sha256, crc32)| Entry::Ship(Shipped {
                    seq,
                    file,
                    key,
                    etag: etag.filter(|e| e != "-"),
                    sha256,
                    crc32,
                    bytes: 0,
                })
            ),
        (ms(), prop::option::of(word()), any::<u64>()).prop_map(|(at, session, torn)| {
            Entry::Recover(Recover {
                at: ts(at),
                session: session.filter(|s| s != "-"),
                torn,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn manifest_lines_round_trip(e in entry()) {
        let line = e.encode();
        prop_assert_eq!(parse_line(line.trim_end()), Ok(Some(e)));
    }

    #[test]
    fn any_manifest_line_parses_or_fails_without_panic(s in any::<String>()) {
        let _ = parse_line(&s);
        let _ = parse_line(&format!("{s} ~{:08x}", crc32fast::hash(s.as_bytes())));
        let _ = parse_line(&format!("seal {s} ~{:08x}", crc32fast::hash(format!("seal {s}").as_bytes())));
    }

    #[test]
    fn any_manifest_bytes_parse_or_fail_without_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in any::<bool>(),
    ) {
        let mut text = if header { format!("{}\n", crate::manifest::HEADER).into_bytes() } else { Vec::new() };
        text.extend_from_slice(&body);
        if let Ok(m) = Manifest::parse(Path::new("m"), &text) {
            prop_assert!(m.valid_len <= text.len() as u64);
        }
        let _ = Tail::scan(&text);
        let vk: VerifyKey = format!("logcut-verify-key-1:{}", "00".repeat(32)).parse().unwrap();
        let c = sealing::check(&text, "app", &vk);
        // Random bytes are never a sealed history.
        prop_assert!(!c.is_ok() || c.sealed_until.is_none());
    }

    #[test]
    fn sealed_names_round_trip(start_ms in ms(), seq in 0u64..10_000_000_000, dup in any::<u32>(), name in "[a-z][a-z0-9_-]{0,20}") {
        let n = SealedName { start_ms, seq, dup };
        let file = n.file_name(&name);
        prop_assert_eq!(SealedName::parse(&name, &file), Some(n));
        prop_assert_eq!(split_sealed(&file), Some((name.as_str(), n)));
        prop_assert_eq!(parse_ts(&format_ts(start_ms)), Some(start_ms));
    }

    #[test]
    fn any_file_name_parses_or_fails_without_panic(file in any::<String>(), name in any::<String>()) {
        let _ = SealedName::parse(&name, &file);
        let _ = split_sealed(&file);
        let _ = parse_ts(&file);
        let _ = crate::name::validate_name(&name);
        let _ = crate::name::parse_prepared(&name, &file);
    }

    #[test]
    fn lock_and_cut_files_round_trip(pid in any::<Option<u32>>(), trigger in prop::option::of("[^\n]{1,40}"), shared in any::<bool>(), seq in any::<u64>(), dev in any::<u64>(), ino in any::<u64>()) {
        let info = LockInfo { pid, trigger: trigger.clone().map(Into::into), shared };
        // A path ending in a carriage return is left out (found by this test).
        let kept = LockInfo { trigger: trigger.filter(|t| !t.ends_with('\r')).map(Into::into), ..info.clone() };
        prop_assert_eq!(LockInfo::parse(&info.encode()), kept);
        let st = CutState { seq, dev, ino };
        prop_assert_eq!(CutState::parse(&st.encode()), Some(st));
    }

    #[test]
    fn any_lock_cut_key_or_index_bytes_parse_without_panic(s in any::<String>(), b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = LockInfo::parse(&s);
        let _ = CutState::parse(&s);
        let _ = SealKey::parse(&s);
        let _ = SealKey::parse(&format!("logcut-seal-key 1 {s}"));
        let _ = s.parse::<VerifyKey>();
        let _ = Index::parse(&b);
        let _ = LastError::parse(&s);
    }

    #[test]
    fn error_files_round_trip_at_their_fixed_length(ms in ms(), pid in any::<u32>(), message in any::<String>()) {
        let e = LastError { at: ts(ms), pid, message: message.clone() };
        let bytes = e.encode();
        prop_assert_eq!(bytes.len(), SIZE);
        let back = LastError::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
        prop_assert_eq!(back.at, e.at);
        prop_assert_eq!(back.pid, pid);
        let clean: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let clean = clean.trim_end();
        if back.message.ends_with("...") && back.message.len() < clean.len() {
            prop_assert!(clean.starts_with(back.message.trim_end_matches("...")));
        } else {
            prop_assert_eq!(back.message.as_str(), clean);
        }
    }

    #[test]
    fn key_files_round_trip(epoch in any::<u64>(), since_ms in 0i64..i64::MAX, interval_secs in 1u64..10_000_000_000) {
        let vk: VerifyKey = format!("logcut-verify-key-1:{}", "5a".repeat(32)).parse().unwrap();
        let mut k = vk.key_at(epoch % 64, since_ms, interval_secs);
        k.epoch = epoch;
        let text = k.encode();
        prop_assert_eq!(SealKey::parse(&text), Ok(k));
        prop_assert_eq!(text.len(), vk.key_at(0, 0, 1).encode().len());
        prop_assert_eq!(vk.to_string().parse::<VerifyKey>(), Ok(vk));
    }
}
