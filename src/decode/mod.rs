//! Decoders: an archive's byte stream, whatever its format ([`crate::input::format`] tells it
//! by the first bytes).
//!
//! [`decoder`] chains the bytes already read back in front of the file as one `Read`, and puts
//! the matching in-process decoder on top (zstd, gzip with any number of members, xz with any
//! number of blocks and streams, bzip2 with any number of streams, or plain tar). Every decoder
//! streams with a fixed buffer, so memory does not grow with the archive; the only variable
//! cost, the zstd window or xz dictionary, is capped by `--memory-limit` (bzip2's is fixed by
//! its format: one block of at most 900 kB, some 3.7 MB decoding). Decoder failures come out
//! as `io::Error`s that carry a [`DecodeError`], so the caller can tell a corrupt archive from
//! a broken socket.
//!
//! Each compression has its own file (`zstd.rs`, `gzip.rs`, `xz.rs`, `bzip2.rs`): its decoder
//! and the unpacked size it records (bzip2 records none); a plain tar needs neither.

mod at;
mod bzip2;
pub(crate) mod framed;
mod gzip;
mod pipe;
mod tail;
mod xz;
pub(crate) mod zstd;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::input::archive::Archive;
use crate::input::format::Format;
use crate::input::sizes::Size;

pub(crate) use at::{At, TarAt};
pub use framed::{framed, FramedTar, Frames, Unframed};
pub use pipe::Pipelined;
pub use tail::HoldBack;

/// Reads from the archive file in blocks this size (measured: larger blocks do not pay).
pub(crate) const READ_BUF: usize = 128 << 10;

/// What an archive records of the size it unpacks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub bytes: u64,
    /// Every part recorded its size; else `bytes` is the least those parts hold.
    pub complete: bool,
}

/// The unpacked size an archive of `format` and `len` bytes records (a tar: its own), read
/// from `file` without moving its position; `None` if it records none that can be believed.
pub fn recorded_size(format: Format, file: &File, len: u64) -> Option<Recorded> {
    let complete = |bytes| Recorded {
        bytes,
        complete: true,
    };
    match format {
        Format::Tar => Some(complete(len)),
        Format::Zstd => {
            zstd::recorded_size(file, 0, len).map(|(bytes, complete)| Recorded { bytes, complete })
        }
        Format::Gzip => gzip::recorded_size(file, len).map(complete),
        Format::Xz => xz::recorded_size(file, len).map(complete),
        Format::Bzip2 => None,
    }
}

/// What went wrong inside a decoder.
#[derive(Debug)]
pub struct DecodeError {
    pub format: Format,
    pub kind: DecodeErrorKind,
}

#[derive(Debug)]
pub enum DecodeErrorKind {
    /// Bad data, a checksum mismatch, or a stream that ends too early.
    Corrupt(String),
    /// The zstd window or xz dictionary is larger than `--memory-limit`; `needs` is its size,
    /// when the archive's headers tell it.
    MemoryLimit { limit: u64, needs: Option<u64> },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeErrorKind::Corrupt(detail) => {
                write!(f, "corrupt or truncated {} data: {detail}", self.format)
            }
            DecodeErrorKind::MemoryLimit { limit, needs } => {
                let what = match self.format {
                    Format::Xz => "xz dictionary",
                    _ => "zstd window (archive made with zstd --long?)",
                };
                let limit = Size(*limit);
                match needs {
                    Some(needs) => write!(
                        f,
                        "{what} needs {}, more than --memory-limit {limit}; rerun with a larger --memory-limit, e.g. {}",
                        Size(*needs),
                        Size(self.enough_for(*needs)).flag()
                    ),
                    None => write!(
                        f,
                        "{what} needs more than --memory-limit {limit}; rerun with a larger --memory-limit, e.g. {}",
                        Size((limit.0 * 8).min(4 << 30)).flag()
                    ),
                }
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// The smallest `--memory-limit` under which a window or dictionary of `needs` decodes:
    /// zstd caps the window at the power of two at or below the limit, and the xz decoder
    /// counts some 100 KiB of its own beside the dictionary.
    fn enough_for(&self, needs: u64) -> u64 {
        match self.format {
            Format::Xz => enough_for_xz(needs),
            _ => needs.next_power_of_two(),
        }
    }

    fn corrupt(format: Format, detail: impl fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            DecodeError {
                format,
                kind: DecodeErrorKind::Corrupt(detail.to_string()),
            },
        )
    }

    /// The decoder error inside `e`, if it is one.
    pub fn find(e: &io::Error) -> Option<&DecodeError> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }

    /// What a message says of `e`: the decoder's own words when it failed, without the
    /// `io::Error` around them; `e` itself otherwise.
    pub fn cause(e: &io::Error) -> &dyn fmt::Display {
        match DecodeError::find(e) {
            Some(d) => d,
            None => e,
        }
    }
}

/// The memory lzma-rust2 counts for an xz dictionary of `dictionary` bytes, which
/// `--memory-limit` must reach.
fn enough_for_xz(dictionary: u64) -> u64 {
    let dictionary = u32::try_from(dictionary).unwrap_or(u32::MAX);
    u64::from(lzma_rust2::lzma2_get_memory_usage(dictionary)) << 10
}

/// Counts what is read from the archive file, and remembers whether reading it failed, so a
/// decoder error caused by the disk is not reported as a corrupt archive.
#[derive(Debug, Default)]
pub struct Progress {
    pub compressed: AtomicU64,
    pub decoded: AtomicU64,
    file_failed: AtomicBool,
}

impl Progress {
    pub fn compressed(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }
    pub fn decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }
}

struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress
                    .compressed
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.progress.file_failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Labels a decoder's errors with its format and counts its output.
struct Decoded<R> {
    inner: R,
    format: Format,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress.decoded.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if self.progress.file_failed.load(Ordering::Relaxed) => Err(e),
            Err(e) if DecodeError::find(&e).is_some() => Err(e),
            Err(e) => Err(DecodeError::corrupt(self.format, e)),
        }
    }
}

/// An archive's decoded byte stream.
pub struct Decoder {
    pub progress: Arc<Progress>,
    reader: Box<dyn Read + Send>,
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// The decoder for an opened archive.
pub fn open(archive: Archive, memory_limit: u64) -> Decoder {
    let (format, head, file) = archive.into_parts();
    decoder(format, head, file, memory_limit)
}

/// Puts the decoder for `format` on top of `file`, whose first bytes `head` were already read.
pub fn decoder<R: Read + Send + 'static>(
    format: Format,
    head: Vec<u8>,
    file: R,
    memory_limit: u64,
) -> Decoder {
    let progress = Arc::new(Progress::default());
    progress
        .compressed
        .store(head.len() as u64, Ordering::Relaxed);
    // The file behind one type, whatever `R` is (the archive's `File`, or a reread at a
    // position): each decoder is then compiled once, not once per `R` (12 KiB of x86_64's
    // binary, the xz and gzip decoders most), for a virtual call per read of the file.
    let file: Box<dyn Read + Send> = Box::new(file);
    let raw = io::Cursor::new(head).chain(Counted {
        inner: file,
        progress: progress.clone(),
    });
    let inner: Box<dyn Read + Send> = match format {
        Format::Zstd => Box::new(zstd::ZstdReader::new(raw, memory_limit)),
        Format::Gzip => Box::new(gzip::reader(raw)),
        Format::Xz => Box::new(xz::reader(raw, memory_limit)),
        Format::Bzip2 => Box::new(bzip2::reader(raw)),
        Format::Tar => Box::new(raw),
    };
    Decoder {
        progress: progress.clone(),
        reader: Box::new(Decoded {
            inner,
            format,
            progress,
        }),
    }
}

/// Another decoder of the archive `file` (of `format`) from its first byte, reading it by
/// position: the file's own position, where an upload's decoder reads on, stays where it is.
pub fn reread(format: Format, file: &File, memory_limit: u64) -> io::Result<Decoder> {
    let file = file.try_clone()?;
    let len = file.metadata()?.len();
    let reader = at::At { file, pos: 0, len };
    Ok(decoder(format, Vec::new(), reader, memory_limit))
}

/// Unit tests only: `tool` (a compressor command) with `data` on stdin, its output. Piped,
/// so the tools record no content size unless told to.
#[cfg(test)]
pub(crate) fn compress(tool: &[&str], data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} is needed for this test: {e}", tool[0]));
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool:?}");
    out.stdout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::format::peek;

    /// A payload that compresses but is not trivial, with a recognisable end.
    fn payload(len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        v.extend_from_slice(b"THE-END");
        v
    }

    fn decode(bytes: Vec<u8>, limit: u64) -> io::Result<Vec<u8>> {
        let mut cursor = io::Cursor::new(bytes);
        let (head, format) = peek(&mut cursor).unwrap();
        let mut d = decoder(format.expect("known format"), head, cursor, limit);
        let mut out = Vec::new();
        d.read_to_end(&mut out).map(|_| out)
    }

    const LIMIT: u64 = 128 << 20;

    #[test]
    fn decodes_each_format_to_the_original_bytes() {
        let data = payload(3 << 20);
        for tool in [
            &["zstd", "-q", "-c"][..],
            &["gzip", "-c"],
            &["xz", "-c"],
            &["xz", "-c", "--block-size=100000"],
            &["pzstd", "-q", "-c", "-p", "2"],
            // Several blocks, the smallest (100 kB) and the largest (900 kB) bzip2 makes.
            &["bzip2", "-c", "-1"],
            &["bzip2", "-c", "-9"],
        ] {
            let got = decode(compress(tool, &data), LIMIT).unwrap();
            assert!(got == data, "{tool:?} round trip differs");
        }
    }

    #[test]
    fn decodes_concatenated_gzip_members_xz_streams_zstd_frames_and_bzip2_streams() {
        let (a, b) = (payload(100_000), payload(200_000));
        let want = [a.clone(), b.clone()].concat();
        for tool in [
            &["gzip", "-c"][..],
            &["xz", "-c"],
            &["zstd", "-q", "-c"],
            &["bzip2", "-c"],
        ] {
            let joined = [compress(tool, &a), compress(tool, &b)].concat();
            assert!(decode(joined, LIMIT).unwrap() == want, "{tool:?}");
        }
    }

    #[test]
    fn reports_a_flipped_checksum_at_the_very_end_as_corrupt() {
        let data = payload(500_000);
        // Each tool's last bytes are a checksum over the data (zstd needs --check).
        for (tool, back) in [
            (&["zstd", "-q", "-c", "--check"][..], 2),
            (&["gzip", "-c"], 6),
            (&["xz", "-c"], 30),
            // bzip2's stream CRC, over every block's CRC, in the last 4 bytes and a few bits.
            (&["bzip2", "-c"], 2),
        ] {
            let mut bytes = compress(tool, &data);
            let at = bytes.len() - back;
            bytes[at] ^= 0x55;
            let err = decode(bytes, LIMIT).unwrap_err();
            let d = DecodeError::find(&err).unwrap_or_else(|| panic!("{tool:?}: {err}"));
            assert!(
                matches!(d.kind, DecodeErrorKind::Corrupt(_)),
                "{tool:?}: {d}"
            );
        }
    }

    #[test]
    fn reports_truncated_streams_as_corrupt() {
        let data = payload(500_000);
        for tool in [
            &["zstd", "-q", "-c"][..],
            &["gzip", "-c"],
            &["xz", "-c"],
            &["bzip2", "-c"],
        ] {
            let bytes = compress(tool, &data);
            for cut in [bytes.len() / 2, bytes.len() - 1] {
                let err = decode(bytes[..cut].to_vec(), LIMIT).unwrap_err();
                assert!(
                    err.to_string().contains("corrupt"),
                    "{tool:?} cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn refuses_a_zstd_window_above_the_memory_limit() {
        let data = payload(3 << 20);
        let bytes = compress(&["zstd", "-q", "-c", "--long=22"], &data);
        let err = decode(bytes.clone(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("--memory-limit"), "{err}");
        assert!(decode(bytes, 8 << 20).unwrap() == data);
    }

    #[test]
    fn a_zstd_window_above_the_memory_limit_is_named_with_a_limit_that_decodes_it() {
        let data = payload(3 << 20);
        // From a pipe, so the frame asks for the whole 4 MiB window of --long=22.
        let bytes = compress(&["zstd", "-q", "-c", "--long=22"], &data);
        let err = decode(bytes.clone(), 1 << 20).unwrap_err();
        assert_eq!(
            DecodeError::cause(&err).to_string(),
            "zstd window (archive made with zstd --long?) needs 4.0 MiB, more than --memory-limit 1.0 MiB; rerun with a larger --memory-limit, e.g. 4M"
        );
        assert!(decode(bytes, 4 << 20).unwrap() == data);
    }

    #[test]
    fn an_xz_dictionary_above_the_memory_limit_is_named_with_a_limit_that_decodes_it() {
        let data = payload(1 << 20);
        let bytes = compress(&["xz", "-c", "-9"], &data);
        let err = decode(bytes.clone(), 16 << 20).unwrap_err();
        assert_eq!(
            DecodeError::cause(&err).to_string(),
            "xz dictionary needs 64.0 MiB, more than --memory-limit 16.0 MiB; rerun with a larger --memory-limit, e.g. 65M"
        );
        assert!(decode(bytes, 65 << 20).unwrap() == data);
    }

    #[test]
    fn a_window_of_no_power_of_two_asks_for_the_next_one() {
        let err = DecodeError {
            format: Format::Zstd,
            kind: DecodeErrorKind::MemoryLimit {
                limit: 128 << 20,
                needs: Some(189 << 20),
            },
        };
        assert!(
            err.to_string()
                .ends_with("needs 189.0 MiB, more than --memory-limit 128.0 MiB; rerun with a larger --memory-limit, e.g. 256M"),
            "{err}"
        );
    }

    #[test]
    fn refuses_an_xz_dictionary_above_the_memory_limit() {
        let data = payload(1 << 20);
        let bytes = compress(&["xz", "-c", "-9"], &data);
        let err = decode(bytes.clone(), 16 << 20).unwrap_err();
        assert!(err.to_string().contains("--memory-limit"), "{err}");
        assert!(decode(bytes, 128 << 20).unwrap() == data);
    }
}
