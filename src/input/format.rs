//! What an archive is, by its first bytes and whatever its name: the magic numbers of the
//! formats the loader reads. How each is decoded is in `decode/`, one file per format.

use std::fmt;
use std::io::{self, Read};

/// Enough to see the tar magic at offset 257 as well as every compression magic.
const SNIFF_LEN: usize = 512;

/// A zstd frame's magic number (RFC 8878, 3.1.1).
pub(crate) const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames (pzstd writes one in front of each frame) have magics 0x184D2A50..5F.
pub(crate) const ZSTD_SKIPPABLE: u32 = 0x184D_2A50;
pub(crate) const ZSTD_SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;

/// An archive's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zstd,
    Gzip,
    Xz,
    Tar,
}

impl Format {
    /// Every format the loader reads, in the order messages name them.
    pub const ALL: [Format; 4] = [Format::Zstd, Format::Gzip, Format::Xz, Format::Tar];

    pub fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Tar => "tar",
        }
    }

    /// Whether `head`, an archive's first bytes, starts this format.
    fn starts(self, head: &[u8]) -> bool {
        match self {
            // A zstd frame, or a skippable frame (as pzstd writes in front).
            Format::Zstd => head.get(..4).is_some_and(|m| {
                let magic = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                magic == ZSTD_MAGIC || magic & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE
            }),
            // A gzip member (RFC 1952: ID1, ID2).
            Format::Gzip => head.starts_with(&[0x1f, 0x8b]),
            // An xz stream header's magic bytes.
            Format::Xz => head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]),
            // A tar header's `ustar` magic (POSIX and GNU tar, at offset 257).
            Format::Tar => head.len() >= 263 && &head[257..262] == b"ustar",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The formats as a message lists them, from [`Format::ALL`]: `zstd, gzip, xz or tar`.
pub struct KnownFormats;

impl fmt::Display for KnownFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (last, rest) = Format::ALL.split_last().expect("formats");
        for (i, format) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.name())?;
        }
        write!(f, " or {last}")
    }
}

/// Tells the format from an archive's first bytes, `None` if it is none of ours.
pub fn sniff(head: &[u8]) -> Option<Format> {
    Format::ALL.into_iter().find(|format| format.starts(head))
}

/// Reads just enough of `file` to tell its format.
pub fn peek<R: Read>(file: &mut R) -> io::Result<(Vec<u8>, Option<Format>)> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    file.by_ref()
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let format = sniff(&head);
    Ok((head, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats_by_magic_bytes() {
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Format::Zstd));
        assert_eq!(sniff(&[0x5e, 0x2a, 0x4d, 0x18]), Some(Format::Zstd));
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Some(Format::Gzip));
        assert_eq!(sniff(b"\xfd7zXZ\0\0"), Some(Format::Xz));
        let mut tar = vec![0u8; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(sniff(&tar), Some(Format::Tar));
        assert_eq!(sniff(b"PK\x03\x04"), None);
        assert_eq!(sniff(b""), None);
    }
}
