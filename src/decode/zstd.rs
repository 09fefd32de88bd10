//! zstd: its magic, a `Read` over zstd-safe's streaming decompressor, and the unpacked size
//! its frame headers record.
//!
//! Handles any number of frames, including the skippable frames pzstd writes. The window the
//! frames may ask for is capped (`WindowLogMax`), which is what `--memory-limit` means for zstd.

use std::fs::File;
use std::io::{self, Read};

use zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

use super::at::{read_at_most, read_exact_at};
use super::{DecodeError, DecodeErrorKind};
use crate::input::format::{
    Format, ZSTD_MAGIC as MAGIC, ZSTD_SKIPPABLE as SKIPPABLE, ZSTD_SKIPPABLE_MASK as SKIPPABLE_MASK,
};

/// Most headers read for one archive, each a pread or two: frame headers, block headers, and
/// skippable frame headers too, since an empty one is 8 bytes (32 MiB of them are 4 million
/// headers, 2.5 to 6.6 s of reads here, where decoding the whole archive takes under a
/// second; this many take ~0.2 s). Some 32 GiB of content in full 128 KiB blocks; the rest of
/// an archive beyond counts at its compressed size.
const HEADER_BUDGET: u32 = 1 << 18;
/// Largest content of one block (RFC 8878, Block_Maximum_Size).
pub(crate) const BLOCK_MAX: u64 = 128 << 10;
/// The longest frame header, magic included (RFC 8878, 3.1.1.1).
pub(crate) const HEADER_MAX: usize = 18;

/// The sum of the content sizes of all frames, and whether every frame recorded its own (a
/// frame that does not counts what its blocks are known to hold: raw and RLE blocks exactly,
/// compressed blocks at their compressed size). `None` when the frames cannot be walked to the
/// end of the file: then the archive is damaged, and the decoder will say so. Past
/// [`HEADER_BUDGET`] headers, what is left counts at its compressed size.
///
/// The walk reads headers only, with pread: zstd-safe's `find_frame_compressed_size` would
/// need each whole frame in memory, so the frame and block headers are stepped over here.
/// The frames are the bytes from `start` up to `len` (a whole archive from 0, or a layer
/// inside a plain tar).
pub fn recorded_size(file: &File, start: u64, len: u64) -> Option<(u64, bool)> {
    let mut pos = start;
    let mut total = 0u64;
    let mut all_recorded = true;
    let mut budget = HEADER_BUDGET;
    while pos < len {
        if budget == 0 {
            // Enough read: the rest counts at its compressed size.
            return Some((total + len.saturating_sub(pos), false));
        }
        budget -= 1;
        let magic = u32::from_le_bytes(read_exact_at(file, pos)?);
        if magic & SKIPPABLE_MASK == SKIPPABLE {
            let skip = u32::from_le_bytes(read_exact_at(file, pos + 4)?);
            pos = pos.checked_add(8 + u64::from(skip))?;
            continue;
        }
        if magic != MAGIC {
            return None;
        }
        let mut head = [0u8; HEADER_MAX];
        let got = read_at_most(file, pos, &mut head)?;
        let header = FrameHeader::parse(&head[..got])?;
        pos += header.len;
        let (mut floor, mut blocks) = (0u64, 0u64);
        loop {
            if budget == 0 {
                // Enough read: the rest counts at its compressed size.
                return Some((total + floor + len.saturating_sub(pos), false));
            }
            budget -= 1;
            let [a, b, c] = read_exact_at(file, pos)?;
            let block = u32::from_le_bytes([a, b, c, 0]);
            let size = u64::from(block >> 3);
            pos += 3;
            pos += match (block >> 1) & 3 {
                // RLE: one byte on disk, repeated `size` times.
                1 => 1,
                // Raw, or compressed (taken to unpack to at least its own size).
                0 | 2 => size,
                _ => return None,
            };
            floor += size;
            blocks += 1;
            if block & 1 == 1 {
                break;
            }
        }
        if header.checksum {
            pos += 4;
        }
        if pos > len {
            return None;
        }
        // A recorded size its blocks cannot hold is damage, not a size.
        match header.content_size {
            Some(n) if n <= blocks * BLOCK_MAX => total += n,
            _ => {
                total += floor;
                all_recorded = false;
            }
        }
    }
    Some((total, all_recorded))
}

/// The parts of a frame header (RFC 8878, 3.1.1.1) the walk needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Bytes from the magic number up to the first block.
    pub(crate) len: u64,
    pub(crate) content_size: Option<u64>,
    pub(crate) checksum: bool,
}

impl FrameHeader {
    /// Parses the header of the frame that `frame` starts, magic number included. The content
    /// size is zstd's own reading (`get_frame_content_size`, which also refuses a reserved bit
    /// or too large a window); the header's length and the checksum flag, which zstd-safe
    /// offers only behind its `experimental` feature, are read from the descriptor here.
    pub(crate) fn parse(frame: &[u8]) -> Option<FrameHeader> {
        let descriptor = *frame.get(4)?;
        let content_size = zstd_safe::get_frame_content_size(frame).ok()?;
        let single_segment = descriptor & 0x20 != 0;
        let window = usize::from(!single_segment);
        let dict = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let fcs = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        Some(FrameHeader {
            len: (4 + 1 + window + dict + fcs) as u64,
            content_size,
            checksum: descriptor & 0x04 != 0,
        })
    }
}

/// The window the frame that `frame` starts asks for (RFC 8878, 3.1.1.1.2): its
/// Window_Descriptor's, or a single-segment frame's content size. `None` for anything but a
/// zstd frame's header, or one cut short.
fn window_size(frame: &[u8]) -> Option<u64> {
    let magic = u32::from_le_bytes(frame.get(..4)?.try_into().ok()?);
    if magic != MAGIC {
        return None;
    }
    let descriptor = *frame.get(4)?;
    if descriptor & 0x20 != 0 {
        return zstd_safe::get_frame_content_size(frame).ok().flatten();
    }
    let window = *frame.get(5)?;
    let base = 1u64 << (10 + u32::from(window >> 3));
    Some(base + base / 8 * u64::from(window & 7))
}

/// zstd accepts window logs from 10 to 31 (30 on 32-bit targets).
const WINDOW_LOG_MIN: u32 = 10;
const WINDOW_LOG_MAX: u32 = if cfg!(target_pointer_width = "64") {
    31
} else {
    30
};

pub struct ZstdReader<R> {
    inner: R,
    dctx: DCtx<'static>,
    limit: u64,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    /// A frame has started and not yet ended: input ending now means a truncated archive.
    in_frame: bool,
    /// The first bytes of the frame being decoded, for the window it asks for should that be
    /// above the limit (zstd only says the frame needs too much memory).
    frame_head: Vec<u8>,
}

/// A decompression context whose window is capped at `limit` (`--memory-limit`).
pub(crate) fn capped(limit: u64) -> DCtx<'static> {
    let mut dctx = DCtx::create();
    let log = (63 - limit.max(1).leading_zeros()).clamp(WINDOW_LOG_MIN, WINDOW_LOG_MAX);
    // Cannot fail for a value inside zstd's own bounds.
    let _ = dctx.set_parameter(DParameter::WindowLogMax(log));
    dctx
}

/// zstd's error `code` as a [`DecodeError`]: a window above `limit` named with the size the
/// frame that `frame_head` starts asks for, anything else as corrupt data.
pub(crate) fn error(code: usize, limit: u64, frame_head: &[u8]) -> io::Error {
    let name = zstd_safe::get_error_name(code);
    let kind = if name.contains("too much memory") {
        DecodeErrorKind::MemoryLimit {
            limit,
            needs: window_size(frame_head),
        }
    } else {
        DecodeErrorKind::Corrupt(name.to_lowercase())
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        DecodeError {
            format: Format::Zstd,
            kind,
        },
    )
}

/// A stream that ends inside a frame.
pub(crate) fn ends_inside_a_frame() -> io::Error {
    DecodeError::corrupt(Format::Zstd, "stream ends inside a frame")
}

impl<R: Read> ZstdReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        ZstdReader {
            inner,
            dctx: capped(limit),
            limit,
            buf: vec![0; DCtx::in_size()].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            in_frame: false,
            frame_head: Vec::with_capacity(HEADER_MAX),
        }
    }

    /// Decodes `inner` from its first byte on, keeping the context and its window: a
    /// layer-framed archive's reader starts each frame it reads this way.
    pub(crate) fn restart(&mut self, inner: R) {
        // Resetting the session only cannot fail.
        let _ = self.dctx.reset(zstd_safe::ResetDirective::SessionOnly);
        self.inner = inner;
        (self.pos, self.len, self.eof, self.in_frame) = (0, 0, false, false);
    }

    fn error(&self, code: usize) -> io::Error {
        error(code, self.limit, &self.frame_head)
    }
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.len && !self.eof {
                self.len = self.inner.read(&mut self.buf)?;
                self.pos = 0;
                self.eof = self.len == 0;
            }
            if !self.in_frame {
                // A frame (or a skippable frame) starts here.
                let end = self.len.min(self.pos + HEADER_MAX);
                self.frame_head.clear();
                self.frame_head.extend_from_slice(&self.buf[self.pos..end]);
            }
            let mut input = InBuffer::around(&self.buf[self.pos..self.len]);
            let mut output = OutBuffer::around(&mut *out);
            let hint = self
                .dctx
                .decompress_stream(&mut output, &mut input)
                .map_err(|code| self.error(code))?;
            let (consumed, produced) = (input.pos(), output.pos());
            self.pos += consumed;
            if consumed > 0 || produced > 0 {
                self.in_frame = hint != 0;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if self.eof && self.pos == self.len && consumed == 0 {
                return if self.in_frame {
                    Err(ends_inside_a_frame())
                } else {
                    Ok(0)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::format::sniff;

    #[test]
    fn frame_headers_are_stepped_over_as_zstd_reads_them() {
        let magic = MAGIC.to_le_bytes();
        let frame = |rest: &[u8]| [&magic[..], rest].concat();
        // Two-byte content size field: the value plus 256; a window byte before it.
        let h = FrameHeader::parse(&frame(&[0x40, 0x58, 0x10, 0x00])).unwrap();
        assert_eq!((h.len, h.content_size), (8, Some(256 + 16)));
        // Single segment, one-byte field, a checksum: no window byte.
        let h = FrameHeader::parse(&frame(&[0x24, 0x07])).unwrap();
        assert_eq!((h.len, h.content_size, h.checksum), (6, Some(7), true));
        assert_eq!(
            FrameHeader::parse(&frame(&[0x08, 0x58])),
            None,
            "reserved bit set"
        );
        assert_eq!(FrameHeader::parse(&frame(&[0x40, 0x58])), None, "cut short");
        let piped = crate::decode::compress(&["zstd", "-q", "-c"], &[7; 1000]);
        assert_eq!(FrameHeader::parse(&piped).unwrap().content_size, None);
        assert_eq!(sniff(&piped), Some(Format::Zstd));
        assert_eq!(sniff(&[0x50, 0x2a, 0x4d, 0x18]), Some(Format::Zstd));
        assert_eq!(sniff(&magic[..3]), None);
    }

    #[test]
    fn reads_the_window_a_frame_asks_for_from_its_descriptor() {
        let magic = MAGIC.to_le_bytes();
        let frame = |rest: &[u8]| [&magic[..], rest].concat();
        // Exponent 21 (log 31) and no mantissa: `zstd --long=31` from a pipe.
        assert_eq!(window_size(&frame(&[0x00, 21 << 3])), Some(2 << 30));
        // Log 27 and a mantissa of 4: 128 MiB and 4 eighths of it.
        assert_eq!(window_size(&frame(&[0x00, (17 << 3) | 4])), Some(192 << 20));
        // Single segment: the window is the content size (one-byte field).
        assert_eq!(window_size(&frame(&[0x20, 0x07])), Some(7));
        assert_eq!(window_size(&frame(&[0x00])), None, "cut short");
        assert_eq!(
            window_size(&[0x50, 0x2a, 0x4d, 0x18, 0, 0]),
            None,
            "skippable"
        );
    }
}
