//! Holds back the end of a decoded stream until the decoder has verified it.
//!
//! zstd, gzip, xz and bzip2 find a bad checksum only after the last data bytes have come out
//! (bzip2's block CRC after its block, up to 900 kB of data, and the stream's after all). If
//! those bytes went to the engine at once, the engine could see a complete tar (its
//! end-of-archive blocks) and import it before the decoder says the archive is corrupt. Holding
//! back the last [`HOLD`] bytes until the decoder returns end-of-stream keeps the tar's end away
//! from the engine; on a decoder error the request is aborted and the held bytes are never sent.
//!
//! `HoldBack` is the guard for a plain tar, read without a decoder thread (a failed read of the
//! file must not let the tar's end through either); the compressed formats get the same rule
//! from `Pipelined` (`pipe.rs`), whose decoder writes into its buffers directly, so that no
//! extra copy goes through a buffer here.

use std::io::{self, Read};

/// Tar writers end an archive with two 512-byte zero blocks, padded to at most a 10 KiB
/// record; 64 KiB covers that with room to spare.
pub const HOLD: usize = 64 << 10;
/// The buffer size; the larger it is beyond `HOLD`, the rarer the held bytes move.
const BUF: usize = HOLD + (512 << 10);

pub struct HoldBack<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> HoldBack<R> {
    pub fn new(inner: R) -> Self {
        HoldBack {
            inner,
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for HoldBack<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let available = self.end - self.start;
            let releasable = if self.eof {
                available
            } else {
                available.saturating_sub(HOLD)
            };
            if releasable > 0 || self.eof {
                let n = releasable.min(out.len());
                out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
                self.start += n;
                return Ok(n);
            }
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.inner.read(&mut self.buf[self.end..])?;
            self.end += n;
            self.eof = n == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data`, then fails instead of reporting end-of-stream, as a decoder does on a bad
    /// trailing checksum.
    struct FailsAtEnd<'a>(&'a [u8]);

    impl Read for FailsAtEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("checksum mismatch"));
            }
            let n = self.0.len().min(buf.len()).min(7000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn passes_everything_through_when_the_stream_ends_cleanly() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        HoldBack::new(&data[..]).read_to_end(&mut out).unwrap();
        assert!(out == data);
    }

    #[test]
    fn never_releases_the_last_bytes_of_a_stream_that_fails_at_the_end() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 13) as u8).collect();
        let mut reader = HoldBack::new(FailsAtEnd(&data));
        let mut released = 0;
        let mut buf = [0u8; 10_000];
        let err = loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("a failing stream must not end cleanly"),
                Ok(n) => released += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.to_string(), "checksum mismatch");
        assert!(released <= data.len() - HOLD, "released {released} bytes");
    }

    #[test]
    fn passes_a_stream_shorter_than_the_hold_on_clean_end() {
        let mut out = Vec::new();
        HoldBack::new(&b"short"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"short");
    }
}
