//! xz: its magic, its decoder (any number of blocks and streams, its dictionary capped by
//! `--memory-limit`) and the unpacked size its index records.

use std::fs::File;
use std::io::{self, BufReader, Read};

use super::at::At;
use super::{DecodeError, DecodeErrorKind, Format, READ_BUF};

/// Whether `head` starts an xz stream (the stream header's magic bytes).
pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
}

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

/// The sum of every block's size, from the index of every stream.
pub fn recorded_size(file: &File, len: u64) -> Option<u64> {
    lzma_rust2::xz_uncompressed_size(At { file, pos: 0, len }).ok()
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
                    kind: DecodeErrorKind::MemoryLimit { limit: self.limit },
                })
            } else {
                e
            }
        })
    }
}
