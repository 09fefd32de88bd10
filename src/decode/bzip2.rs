//! bzip2: its decoder, over any number of streams (as `cat a.bz2 b.bz2` or `pbzip2` make
//! them), each block's CRC and each stream's combined CRC checked. bzip2 records no unpacked
//! size, so the space check counts such an archive at its compressed size.
//!
//! Memory is fixed by the format, whatever the archive: a block is at most 900 kB (`-9`), and
//! the decoder keeps one block as 4 bytes per byte (libbzip2's fast mode, which bzip2(1) puts at
//! 3700 kB for `-9`), so some 3.7 MB besides the read buffer. No archive can ask for more, so
//! there is nothing for `--memory-limit` to refuse.

use std::fmt;
use std::io::{self, BufReader, Read};

use ::bzip2::bufread::MultiBzDecoder;

use super::{DecodeError, Format, READ_BUF};

/// The decoder over `raw`, the archive from its first byte.
pub fn reader<R: Read + Send + 'static>(raw: R) -> impl Read + Send {
    Worded(MultiBzDecoder::new(BufReader::with_capacity(READ_BUF, raw)))
}

/// Says in the loader's words what the bzip2 crate reports in its own (`bzip2: invalid data`),
/// so the message does not name the format twice.
struct Worded<R>(R);

impl<R: Read> Read for Worded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(
            |e| match e.get_ref().and_then(|inner| inner.downcast_ref()) {
                Some(bz) => DecodeError::corrupt(Format::Bzip2, Detail(*bz)),
                None => e,
            },
        )
    }
}

/// What a bzip2 error means for an archive.
struct Detail(::bzip2::Error);

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            // libbzip2 does not tell a bad block from a CRC that does not match.
            ::bzip2::Error::Data => "invalid data or a CRC that does not match",
            // What follows a stream is neither the end of the file nor another stream.
            ::bzip2::Error::DataMagic => "bytes after the end of a stream that start no other",
            ::bzip2::Error::Sequence | ::bzip2::Error::Param => "the decoder failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::compress;

    fn decode(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader(io::Cursor::new(bytes.to_vec()))
            .read_to_end(&mut out)
            .map(|_| out)
    }

    #[test]
    fn a_damaged_block_is_corrupt_in_the_loaders_words() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut bytes = compress(&["bzip2", "-c"], &data);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            DecodeError::cause(&err).to_string(),
            "corrupt or truncated bzip2 data: invalid data or a CRC that does not match"
        );
    }

    #[test]
    fn bytes_after_the_last_stream_are_corrupt() {
        let mut bytes = compress(&["bzip2", "-c"], b"some data");
        bytes.extend_from_slice(b"trailing garbage");
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            DecodeError::cause(&err).to_string(),
            "corrupt or truncated bzip2 data: bytes after the end of a stream that start no other"
        );
    }
}
