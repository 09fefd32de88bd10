//! gzip: its magic, its decoder (any number of members, as `cat a.gz b.gz` makes) and the
//! unpacked size its trailer records.

use std::fs::File;
use std::io::{BufReader, Read};

use super::at::read_exact_at;
use super::READ_BUF;

/// deflate's largest ratio (RFC 1951: a 258-byte match in about 2 bits): a gzip trailer that
/// claims more than this is not the size of the whole archive.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// The decoder over `raw`, the archive from its first byte.
pub fn reader<R: Read + Send + 'static>(raw: R) -> impl Read + Send {
    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUF, raw))
}

/// The gzip trailer's ISIZE: the last member's size modulo 4 GiB. Exact for the usual archive
/// (one member, below 4 GiB), less than the whole otherwise; believed only between the
/// compressed size and deflate's largest ratio, since garbage there would be believed too.
pub fn recorded_size(file: &File, len: u64) -> Option<u64> {
    if len < 18 {
        return None;
    }
    let isize = u64::from(u32::from_le_bytes(read_exact_at(file, len - 4)?));
    (isize >= len && isize <= len.saturating_mul(DEFLATE_MAX_RATIO)).then_some(isize)
}
