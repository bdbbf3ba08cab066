//! The name grammar of routed logs: which tenant values and group names may
//! become part of a path. Tenant values come from records, so from anyone
//! who can make the service log something: only a small alphabet is taken,
//! and everything else goes to quarantine.
//!
//! The alphabet is ASCII lowercase letters, digits, `_` and `-`, starting
//! with a letter or digit, 1 to 64 bytes. That rules out, with no special
//! case: path separators and `..`, NUL and control characters, an empty
//! value, long values, every non-ASCII character (so no Unicode that
//! normalises to another name), and names that differ only by case (so a
//! case-insensitive file system cannot merge two tenants).

/// The longest tenant value or group name taken as a path component.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `value` may name a tenant's (or a group's) directory.
pub(crate) fn is_safe(value: &[u8]) -> bool {
    let Some((&first, _)) = value.split_first() else {
        return false;
    };
    value.len() <= MAX_NAME_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && value
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `value` as a quoted, escaped string of at most about 300 bytes, for the
/// record written to quarantine (the original value kept in the log,
/// whatever its bytes).
pub(crate) fn quoted(value: &[u8]) -> String {
    const SHOWN: usize = 256;
    let mut out = String::with_capacity(value.len().min(SHOWN) + 8);
    out.push('"');
    for &b in value.iter().take(SHOWN) {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    out.push('"');
    if value.len() > SHOWN {
        out.push_str(&format!("+{}B", value.len() - SHOWN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_small_alphabet_names_a_directory() {
        for ok in ["acme", "a", "0", "tenant-42", "t_1", &"x".repeat(64)] {
            assert!(is_safe(ok.as_bytes()), "{ok}");
        }
        let long = "x".repeat(65);
        let bad: [&[u8]; 17] = [
            b"",
            b".",
            b"..",
            b"../x",
            b"/etc",
            b"a/b",
            b"a\0b",
            b"a\nb",
            b"-a",
            b"_a",
            b"Acme",
            b"ACME",
            "caf\u{e9}".as_bytes(),
            "e\u{301}".as_bytes(),
            "\u{FB01}le".as_bytes(),
            b"a b",
            long.as_bytes(),
        ];
        for v in bad {
            assert!(!is_safe(v), "{v:?}");
        }
    }

    #[test]
    fn a_quarantined_value_is_kept_escaped_and_bounded() {
        assert_eq!(quoted(b"../x"), "\"../x\"");
        assert_eq!(quoted(b"a\0\n\"b"), "\"a\\x00\\n\\\"b\"");
        assert_eq!(quoted("\u{e9}".as_bytes()), "\"\\xc3\\xa9\"");
        let q = quoted(&[b'a'; 10_000]);
        assert!(q.len() < 300 && q.ends_with("+9744B"), "{q}");
    }
}
