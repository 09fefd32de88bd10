//! A `Read` over zstd-safe's streaming decompressor.
//!
//! Handles any number of frames, including the skippable frames pzstd writes. The window the
//! frames may ask for is capped (`WindowLogMax`), which is what `--memory-limit` means for zstd.

use std::io::{self, Read};

use zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

use super::{DecodeError, DecodeErrorKind, Format};

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
}

impl<R: Read> ZstdReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        let mut dctx = DCtx::create();
        let log = (63 - limit.max(1).leading_zeros()).clamp(WINDOW_LOG_MIN, WINDOW_LOG_MAX);
        // Cannot fail for a value inside zstd's own bounds.
        let _ = dctx.set_parameter(DParameter::WindowLogMax(log));
        ZstdReader {
            inner,
            dctx,
            limit,
            buf: vec![0; DCtx::in_size()].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            in_frame: false,
        }
    }

    fn error(&self, code: usize) -> io::Error {
        let name = zstd_safe::get_error_name(code);
        let kind = if name.contains("too much memory") {
            DecodeErrorKind::MemoryLimit { limit: self.limit }
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
                    Err(DecodeError::corrupt(
                        Format::Zstd,
                        "stream ends inside a frame",
                    ))
                } else {
                    Ok(0)
                };
            }
        }
    }
}
