//! xz: its magic, its decoder (any number of blocks and streams, its dictionary capped by
//! `--memory-limit`) and the unpacked size its index records.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::at::At;
use super::{DecodeError, DecodeErrorKind, Format, READ_BUF};

/// Most reads the walk over the streams' footers, indexes and headers may make, nine for an
/// empty stream: some 7,000 streams, where a real archive has one for each `xz` run that wrote
/// it. An empty stream is 32 bytes, so 32 MiB of them are a million streams, 4 to 9 s of reads
/// here, where decoding the whole archive takes under a second; within the budget the walk
/// takes ~0.1 s, and beyond it the archive counts at its compressed size.
const WALK_READS: u32 = 1 << 16;

/// The decoder over `raw`, the archive from its first byte.
pub fn reader<R: Read + Send + 'static>(raw: R, memory_limit: u64) -> impl Read + Send {
    let kept = Kept {
        inner: raw,
        head: Vec::with_capacity(HEAD_KEPT),
    };
    XzLimited {
        inner: lzma_rust2::XzReader::new_mem_limit(
            BufReader::with_capacity(READ_BUF, kept),
            true,
            u32::try_from(memory_limit >> 10).unwrap_or(u32::MAX),
        ),
        limit: memory_limit,
    }
}

/// The sum of every block's size, from the index of every stream; `None` past
/// [`WALK_READS`] reads.
pub fn recorded_size(file: &File, len: u64) -> Option<u64> {
    let at = At { file, pos: 0, len };
    lzma_rust2::xz_uncompressed_size(Budgeted {
        inner: at,
        reads: WALK_READS,
    })
    .ok()
}

/// A reader that fails once it has made its number of reads.
struct Budgeted<R> {
    inner: R,
    reads: u32,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads = self
            .reads
            .checked_sub(1)
            .ok_or_else(|| io::Error::other("the walk over the xz streams read enough"))?;
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Budgeted<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// The stream header and the longest block header: where the first block's dictionary size is.
const HEAD_KEPT: usize = 12 + 1024;

/// Keeps the first [`HEAD_KEPT`] bytes read through it, for the dictionary size a refusal
/// names (lzma-rust2 only says the block needs too much memory).
struct Kept<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R: Read> Read for Kept<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = HEAD_KEPT - self.head.len();
        self.head.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}

/// The LZMA2 dictionary size the first block's header declares (xz file format, 3.1 and
/// 5.3.1), `None` when `head` does not hold that header whole.
fn dictionary_size(head: &[u8]) -> Option<u64> {
    let size = usize::from(*head.get(12)?);
    if size == 0 {
        // An index, not a block: the stream is empty.
        return None;
    }
    let header = head.get(12..12 + (size + 1) * 4)?;
    let flags = header[1];
    let mut at = 2;
    // The compressed and the uncompressed size, where present.
    for present in [flags & 0x40, flags & 0x80] {
        if present != 0 {
            number(header, &mut at)?;
        }
    }
    for _ in 0..=(flags & 3) {
        let (id, len) = (number(header, &mut at)?, number(header, &mut at)?);
        let props = (id == 0x21 && len == 1).then(|| header.get(at).copied());
        at += usize::try_from(len).ok()?;
        if let Some(props) = props {
            let bits = u32::from(props? & 0x3f);
            return match bits {
                0..=39 => Some(u64::from(2 | (bits & 1)) << (bits / 2 + 11)),
                40 => Some(u64::from(u32::MAX)),
                _ => None,
            };
        }
    }
    None
}

/// The variable-length integer of an xz header (xz file format, 1.2) at `*at`, which it moves
/// past it.
fn number(header: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *header.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Turns lzma-rust2's out-of-memory answer into the `--memory-limit` error.
struct XzLimited<R: Read> {
    inner: lzma_rust2::XzReader<BufReader<Kept<R>>>,
    limit: u64,
}

impl<R: Read> Read for XzLimited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::OutOfMemory {
                let head = &self.inner.inner().get_ref().head;
                io::Error::other(DecodeError {
                    format: Format::Xz,
                    kind: DecodeErrorKind::MemoryLimit {
                        limit: self.limit,
                        // The first block's, if the limit is too small for it: a later
                        // block that asks for more is not named.
                        needs: dictionary_size(head)
                            .filter(|&d| super::enough_for_xz(d) > self.limit),
                    },
                })
            } else {
                e
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::compress;

    #[test]
    fn reads_the_dictionary_size_from_the_first_block_header() {
        let data = vec![7u8; 1000];
        let plain = compress(&["xz", "-c", "--lzma2=dict=3MiB"], &data);
        assert_eq!(dictionary_size(&plain), Some(3 << 20));
        // Behind another filter of the chain.
        let chained = compress(&["xz", "-c", "--x86", "--lzma2=dict=1MiB"], &data);
        assert_eq!(dictionary_size(&chained), Some(1 << 20));
    }

    #[test]
    fn names_no_dictionary_where_the_header_is_not_whole() {
        let bytes = compress(&["xz", "-c"], &[7u8; 1000]);
        assert_eq!(dictionary_size(&bytes[..14]), None, "cut short");
        let empty = compress(&["xz", "-c"], &[]);
        assert_eq!(dictionary_size(&empty), None, "no block at all");
    }
}
