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
    Bzip2,
    Tar,
}

impl Format {
    /// Every format the loader reads, in the order messages name them.
    pub const ALL: [Format; 5] = [
        Format::Zstd,
        Format::Gzip,
        Format::Xz,
        Format::Bzip2,
        Format::Tar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Bzip2 => "bzip2",
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
            // `BZh` and the block size, `1` to `9` (hundreds of kB). Plain text, unlike the
            // other magics: a tar whose first file is named so is still a tar.
            Format::Bzip2 => {
                head.len() >= 4
                    && head.starts_with(b"BZh")
                    && (b'1'..=b'9').contains(&head[3])
                    && !Format::Tar.starts(head)
            }
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

/// A compression the loader does not read but can name, so a refusal says what the archive
/// is rather than only what it is not. None of these is decoded: they exist for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    Lz4,
    Lzip,
    Compress,
}

impl Foreign {
    const ALL: [Foreign; 3] = [Foreign::Lz4, Foreign::Lzip, Foreign::Compress];

    pub fn name(self) -> &'static str {
        match self {
            Foreign::Lz4 => "lz4",
            Foreign::Lzip => "lzip",
            Foreign::Compress => "LZW",
        }
    }

    /// Whether `head`, an archive's first bytes, starts this compression.
    fn starts(self, head: &[u8]) -> bool {
        match self {
            // An lz4 frame's magic number, little-endian (the legacy format is not named).
            Foreign::Lz4 => head.starts_with(&0x184D_2204u32.to_le_bytes()),
            Foreign::Lzip => head.starts_with(b"LZIP"),
            // The magic of Unix `compress` (`.Z`), named for its LZW coding: "LZW-compressed".
            Foreign::Compress => head.starts_with(&[0x1f, 0x9d]),
        }
    }
}

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Names the compression of an archive that is none of the loader's formats, from its first
/// bytes; `None` when they say nothing the loader knows.
pub fn foreign(head: &[u8]) -> Option<Foreign> {
    Foreign::ALL.into_iter().find(|kind| kind.starts(head))
}

/// What a refusal says of an archive that is none of the loader's formats, after "is": its
/// compression and what to do when the first bytes name one, what it is not otherwise.
pub struct NotOurs(pub Option<Foreign>);

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kind) => write!(
                f,
                "{kind}-compressed (by its first bytes), which the loader does not read: recompress it with zstd (or gzip, xz)"
            ),
            None => write!(f, "not {KnownFormats} (by its first bytes)"),
        }
    }
}

/// The formats as a message lists them, from [`Format::ALL`]: `zstd, gzip, xz, bzip2 or tar`.
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
        assert_eq!(sniff(b"BZh91AY&SY"), Some(Format::Bzip2));
        assert_eq!(sniff(b"BZh1"), Some(Format::Bzip2));
        let mut tar = vec![0u8; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(sniff(&tar), Some(Format::Tar));
        assert_eq!(sniff(b"PK\x03\x04"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn takes_bytes_that_only_resemble_the_bzip2_magic_for_no_format() {
        assert_eq!(sniff(b"BZh0"), None, "block size out of 1-9");
        assert_eq!(sniff(b"BZh"), None, "cut before the block size");
        assert_eq!(foreign(b"BZh9"), None, "bzip2 is ours");
    }

    #[test]
    fn takes_a_tar_whose_first_file_is_named_like_the_bzip2_magic_for_a_tar() {
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"BZh9.txt");
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(sniff(&tar), Some(Format::Tar));
    }

    #[test]
    fn names_compressions_it_does_not_read_by_their_magic() {
        assert_eq!(foreign(&[0x04, 0x22, 0x4d, 0x18, 0x64]), Some(Foreign::Lz4));
        assert_eq!(foreign(b"LZIP\x01"), Some(Foreign::Lzip));
        assert_eq!(foreign(&[0x1f, 0x9d, 0x90]), Some(Foreign::Compress));
        assert_eq!(sniff(b"LZIP\x01"), None, "named, never decoded");
    }

    #[test]
    fn names_nothing_for_bytes_that_only_resemble_a_magic() {
        assert_eq!(foreign(b"PK\x03\x04"), None);
        assert_eq!(foreign(&[0x1f, 0x8b]), None, "gzip is ours");
        assert_eq!(foreign(b""), None);
    }

    #[test]
    fn a_refusal_names_the_compression_or_lists_ours() {
        assert_eq!(
            NotOurs(Some(Foreign::Lzip)).to_string(),
            "lzip-compressed (by its first bytes), which the loader does not read: recompress it with zstd (or gzip, xz)"
        );
        assert_eq!(
            NotOurs(None).to_string(),
            "not zstd, gzip, xz, bzip2 or tar (by its first bytes)"
        );
    }
}
