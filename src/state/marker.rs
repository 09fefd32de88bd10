//! The file name of an image's marker in `/run/container-loader/images/`: one flat file per
//! image reference, named so that two references never share a name and every name fits in
//! one directory entry (255 bytes).
//!
//! The name is what `systemd-escape REF` prints, so a unit can spell it with that tool (or
//! take it as a template instance, `%i`): `/` becomes `-`; ASCII letters, digits, `:`, `_`
//! and `.` stay (a leading `.` excepted); every other byte, `-` and `\` included, becomes
//! `\xNN` (two lower-case hex digits). Reading it back (`systemd-escape -u`) gives the
//! reference, so no two references share a name. A reference whose name would be longer than
//! 255 bytes (a long repository path with a long tag or a digest) is named by the first at most
//! 190 bytes of that name, cut before a `\xNN`, then `~` and the sha256 of the whole reference
//! in hex: `~` never appears in an escaped name, so such names meet no escaped one, and two of
//! them meet only if sha256 collides.

use sha2::{Digest, Sha256};

/// The longest file name Linux file systems take.
pub const NAME_MAX: usize = 255;
/// How much of the escaped reference a hashed name keeps, before `~` and 64 hex digits.
pub const HASHED_PREFIX_MAX: usize = NAME_MAX - 1 - 64;

/// The marker file name for `reference` (never empty for a non-empty reference).
pub fn name(reference: &str) -> String {
    let escaped = escape(reference);
    if escaped.len() <= NAME_MAX {
        return escaped;
    }
    let mut cut = HASHED_PREFIX_MAX;
    // Not inside a `\xNN`: the last `\` within the prefix starts an escape of four bytes.
    if let Some(at) = escaped[..cut].rfind('\\') {
        if at + 4 > cut {
            cut = at;
        }
    }
    let digest = Sha256::digest(reference.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}~{hex}", &escaped[..cut])
}

/// `systemd-escape`'s escaping of a unit name (without `--path`).
pub fn escape(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len() + 8);
    for (i, &b) in reference.as_bytes().iter().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The reference an escaped (not hashed) name stands for: `systemd-escape -u`. `None` for a
/// name that no reference is escaped to.
pub fn unescape(name: &str) -> Option<Vec<u8>> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' => out.push(b'/'),
            b'\\' => {
                let hex = bytes.get(i + 1..i + 4)?;
                let digits = std::str::from_utf8(hex.get(1..)?).ok()?;
                let lower_hex = |d: u8| matches!(d, b'0'..=b'9' | b'a'..=b'f');
                if hex[0] != b'x' || !digits.bytes().all(lower_hex) {
                    return None;
                }
                out.push(u8::from_str_radix(digits, 16).ok()?);
                i += 3;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_reference_keeps_its_name() {
        assert_eq!(name("debian:bookworm"), "debian:bookworm");
    }

    #[test]
    fn slashes_become_dashes_and_dashes_are_escaped() {
        assert_eq!(
            name("registry.example.com/app/worker:1"),
            "registry.example.com-app-worker:1"
        );
        assert_eq!(name("my-app:1.0"), "my\\x2dapp:1.0");
        assert_eq!(
            name("example.org/a@sha256:00"),
            "example.org-a\\x40sha256:00"
        );
    }

    #[test]
    fn a_repository_and_its_subpath_get_different_names() {
        assert_ne!(
            name("registry.example.com/app"),
            name("registry.example.com/app/worker:1")
        );
        assert_ne!(name("a/b-c"), name("a-b/c"));
    }

    #[test]
    fn an_escaped_name_reads_back_as_its_reference() {
        for r in [
            "debian:bookworm",
            "quay.io/libpod/alpine:3.10.2",
            "a-b/c_d.e:F-1",
        ] {
            assert_eq!(unescape(&name(r)).unwrap(), r.as_bytes());
        }
    }

    #[test]
    fn a_long_reference_is_hashed_into_255_bytes() {
        let long = format!("{}:{}", "a".repeat(200), "t".repeat(100));
        let named = name(&long);
        assert_eq!(named.len(), 190 + 1 + 64);
        assert!(named.starts_with(&"a".repeat(190)));
        let other = format!("{}:{}", "a".repeat(200), "u".repeat(100));
        assert_ne!(named, name(&other));
    }

    #[test]
    fn a_hashed_name_never_cuts_an_escape() {
        let long = "a-".repeat(150);
        let named = name(&long);
        let (prefix, _) = named.split_once('~').unwrap();
        assert!(unescape(prefix).is_some(), "{prefix}");
        assert!(named.len() <= NAME_MAX);
    }
}
