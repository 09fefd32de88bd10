//! A plain tar: nothing to decode, and it unpacks to its own size.

/// Whether `head` holds a tar header's `ustar` magic (POSIX and GNU tar, at offset 257).
pub fn sniff(head: &[u8]) -> bool {
    head.len() >= 263 && &head[257..262] == b"ustar"
}
