//! The tar cut into the pieces `pack` compresses: each member (the extension headers before it,
//! its header, its data and padding) starts a new piece, a member longer than [`CHUNK`] is cut
//! into several, and the tar's end (its zero blocks and whatever follows) is a piece of its own.
//! A member of more than [`HEAD_AFTER`] bytes (a layer) has its header blocks and first data
//! block in a piece of their own: a reader learns what the member is, and whether a layer is
//! compressed, by decoding a frame of about a kilobyte instead of a block of 128 KiB.
//!
//! Only the headers are read for meaning: every byte of the tar goes into exactly one piece, in
//! order, so the pieces put together are the tar as it was, whatever its members hold.

use std::io::Read;

use super::PackError;

/// The most tar bytes in one frame: a member larger than this is split. 8 MiB keeps a packed
/// image archive within 0.1% of `zstd -3` of the same tar (docs/design.md, "Layer-framed
/// archives"): zstd -3's window is smaller than this, so a cut loses little context.
pub(super) const CHUNK: usize = 8 << 20;

/// Members larger than this get a head piece of their own (their headers and first block).
pub(super) const HEAD_AFTER: u64 = 64 << 10;

/// Extension headers (PAX, GNU long names) before one member, at most: a tar with more is
/// refused rather than held in memory.
const MAX_EXTENSIONS: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Where a member lies in the tar and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// As the tar names it, after PAX and GNU long names.
    pub(super) path: String,
    /// The tar offset of its first header block (an extension header's, if it has one).
    pub(super) header: u64,
    /// The tar offset of its data.
    pub(super) data: u64,
    /// Its data's size, without padding.
    pub(super) size: u64,
}

/// What a piece begins, if anything: a piece that begins nothing continues the member before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Start {
    Member(Member),
    /// The tar's end: its zero blocks and anything after them.
    End,
    Continued,
}

/// One piece of the tar, to be one frame.
#[derive(Debug)]
pub(super) struct Piece {
    pub(super) start: Start,
    pub(super) bytes: Vec<u8>,
}

/// The tar read from `reader`, cut into [`Piece`]s of at most `chunk` bytes (more only for
/// headers longer than that).
pub(super) struct Pieces<R> {
    reader: R,
    chunk: usize,
    /// Tar bytes read so far.
    offset: u64,
    /// Bytes of the current member's data and padding still to read.
    left: u64,
    /// Past the tar's end: the rest is read as it comes.
    ended: bool,
}

impl<R: Read> Pieces<R> {
    pub(super) fn new(reader: R, chunk: usize) -> Pieces<R> {
        Pieces {
            reader,
            chunk,
            offset: 0,
            left: 0,
            ended: false,
        }
    }

    /// The next piece; `None` at the end of the input.
    pub(super) fn next_piece(&mut self) -> Result<Option<Piece>, PackError> {
        if self.left > 0 || self.ended {
            let mut bytes = Vec::new();
            self.fill(&mut bytes, self.chunk)?;
            return Ok((!bytes.is_empty()).then_some(Piece {
                start: Start::Continued,
                bytes,
            }));
        }
        let mut bytes = Vec::new();
        let Some(start) = self.headers(&mut bytes)? else {
            return Ok(None);
        };
        let up_to = match &start {
            Start::Member(m) if m.size > HEAD_AFTER => bytes.len() + BLOCK,
            _ => self.chunk,
        };
        self.fill(&mut bytes, up_to)?;
        Ok(Some(Piece { start, bytes }))
    }

    /// Reads into `bytes` what is left of the member (or of the end) until `bytes` holds
    /// `up_to` bytes; a short read means the input ended.
    fn fill(&mut self, bytes: &mut Vec<u8>, up_to: usize) -> Result<(), PackError> {
        let room = up_to.saturating_sub(bytes.len()) as u64;
        let want = if self.ended {
            room
        } else {
            room.min(self.left)
        };
        let got = self.read(bytes, want)?;
        self.left = if got < want {
            0
        } else {
            self.left - got.min(self.left)
        };
        Ok(())
    }

    /// Reads a member's header blocks into `bytes`, extension headers first; `None` when the
    /// input ends before a header. After them, `left` holds the member's data and padding.
    fn headers(&mut self, bytes: &mut Vec<u8>) -> Result<Option<Start>, PackError> {
        let header = self.offset;
        let mut names = Names::default();
        loop {
            let at = bytes.len();
            if self.read(bytes, BLOCK as u64)? < BLOCK as u64 {
                // A tar cut short (or none at all): whatever was read is its last piece.
                self.ended = true;
                return Ok((!bytes.is_empty()).then_some(Start::End));
            }
            let block: &[u8; BLOCK] = bytes[at..].try_into().expect("one block");
            if block.iter().all(|&b| b == 0) {
                self.ended = true;
                return Ok(Some(Start::End));
            }
            if !checksum_holds(block) {
                return Err(PackError::NotATar {
                    offset: self.offset - BLOCK as u64,
                });
            }
            let kind = block[156];
            let size = size(block).ok_or(PackError::NotATar {
                offset: self.offset - BLOCK as u64,
            })?;
            if matches!(kind, b'x' | b'g' | b'L' | b'K') {
                self.extension(bytes, kind, size, &mut names)?;
                continue;
            }
            let size = names.size.unwrap_or(size);
            let path = names.path.take().unwrap_or_else(|| ustar_path(block));
            self.left = padded(size);
            return Ok(Some(Start::Member(Member {
                path,
                header,
                data: self.offset,
                size,
            })));
        }
    }

    /// Reads an extension header's data into `bytes` and takes from it what it says of the
    /// member that follows.
    fn extension(
        &mut self,
        bytes: &mut Vec<u8>,
        kind: u8,
        size: u64,
        names: &mut Names,
    ) -> Result<(), PackError> {
        let at = self.offset;
        if size > MAX_EXTENSIONS {
            return Err(PackError::NotATar { offset: at });
        }
        let start = bytes.len();
        if self.read(bytes, padded(size))? < padded(size) {
            return Err(PackError::NotATar { offset: at });
        }
        let data = &bytes[start..start + size as usize];
        match kind {
            b'L' => names.path = Some(c_string(data)),
            b'x' => names.pax(data),
            _ => {}
        }
        Ok(())
    }

    /// Appends up to `n` bytes of the input to `bytes`; fewer only at its end.
    fn read(&mut self, bytes: &mut Vec<u8>, n: u64) -> Result<u64, PackError> {
        let got = (&mut self.reader)
            .take(n)
            .read_to_end(bytes)
            .map_err(PackError::Read)? as u64;
        self.offset += got;
        Ok(got)
    }
}

/// What extension headers said of the member after them.
#[derive(Default)]
struct Names {
    path: Option<String>,
    size: Option<u64>,
}

impl Names {
    /// PAX records, `LEN key=value\n` each: `path` and `size` replace the header's.
    fn pax(&mut self, mut data: &[u8]) {
        while let Some(space) = data.iter().position(|&b| b == b' ') {
            let len: Option<usize> = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|l| l.parse().ok());
            let Some(len) = len.filter(|&l| l > space && l <= data.len()) else {
                return;
            };
            let record = &data[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(path) = record.strip_prefix(b"path=") {
                self.path = Some(String::from_utf8_lossy(path).into_owned());
            } else if let Some(size) = record.strip_prefix(b"size=") {
                self.size = std::str::from_utf8(size).ok().and_then(|s| s.parse().ok());
            }
            data = &data[len..];
        }
    }
}

/// `n` rounded up to whole blocks.
fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// The bytes before the first NUL, as text.
fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The name a header block gives, with the ustar prefix when it has one.
fn ustar_path(block: &[u8; BLOCK]) -> String {
    let name = c_string(&block[..100]);
    let prefix = c_string(&block[345..500]);
    if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
        format!("{prefix}/{name}")
    } else {
        name
    }
}

/// The header's size field: octal, or base-256 when its first bit is set (GNU, over 8 GiB).
fn size(block: &[u8; BLOCK]) -> Option<u64> {
    let field = &block[124..136];
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)? | u64::from(b);
        }
        return Some(n);
    }
    octal(field)
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The header's checksum is the sum of its bytes with the checksum field as spaces (some old
/// tars summed signed bytes; both are taken).
fn checksum_holds(block: &[u8; BLOCK]) -> bool {
    let Some(recorded) = octal(&block[148..156]) else {
        return false;
    };
    let spaces = 8 * u64::from(b' ');
    let field = |b: &u8| u64::from(*b);
    let unsigned: u64 = block.iter().map(field).sum::<u64>()
        - block[148..156].iter().map(field).sum::<u64>()
        + spaces;
    let signed: i64 = block.iter().map(|&b| i64::from(b as i8)).sum::<i64>()
        - block[148..156]
            .iter()
            .map(|&b| i64::from(b as i8))
            .sum::<i64>()
        + spaces as i64;
    recorded == unsigned || recorded as i64 == signed
}
