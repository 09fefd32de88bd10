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
    XzLimited {
        inner: lzma_rust2::XzReader::new_mem_limit(
            BufReader::with_capacity(READ_BUF, raw),
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

/// Turns lzma-rust2's out-of-memory answer into the `--memory-limit` error.
struct XzLimited<R: Read> {
    inner: lzma_rust2::XzReader<R>,
    limit: u64,
}

impl<R: Read> Read for XzLimited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::OutOfMemory {
                io::Error::other(DecodeError {
                    format: Format::Xz,
                    kind: DecodeErrorKind::MemoryLimit {
                        limit: self.limit,
                        needs: None,
                    },
                })
            } else {
                e
            }
        })
    }
}
