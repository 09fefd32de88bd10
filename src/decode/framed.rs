//! Layer-framed zstd archives (the layout `pack` writes, docs/design.md "Layer-framed
//! archives"): the zstd seekable format's seek table at the file's end says where each frame
//! starts, in the file and in the tar it unpacks to, so the tar can be read from any frame on
//! without decoding the frames before it. A first pass reads only the tar's headers and
//! description files this way ([`FramedTar`] behind [`TarAt`]), and a delta upload steps over
//! the frames of the layers the engine holds ([`framed`], whose holes read as zeros).
//!
//! The table is believed only as far as the frames bear it out. When it is read, every frame
//! it lists must start where the table puts it, with a header recording the content size the
//! table gives and, where both carry one, the same checksum at its end; a table that does not
//! match is [`Unframed::Untrusted`], and the caller decodes the archive whole as the zstd
//! stream it also is. A frame that is read is decoded whole through zstd's own checks (its
//! content checksum) and must end exactly where the table says. What is stepped over is never
//! sent: the walk and the upload read the same frames by the same table, and the engine checks
//! every layer it is sent against the digests in the description sent with it. The member
//! index `pack` writes before the table is not read: the tar's own headers, which the walk
//! checks, say the same.

use std::fs::File;
use std::io::{self, Read, Take};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::at::{read_at_most, read_exact_at, At, TarAt};
use super::zstd::{FrameHeader, ZstdReader, HEADER_MAX};
use super::{Counted, DecodeError, Decoded, Decoder, Progress};
use crate::input::format::{Format, ZSTD_MAGIC, ZSTD_SKIPPABLE, ZSTD_SKIPPABLE_MASK};

/// The seekable format's last four bytes (`Seekable_Magic_Number`).
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// The skippable frame that holds the seek table.
const SEEK_TABLE_FRAME: u32 = 0x184D_2A5E;
/// The footer: Number_Of_Frames u32, Seek_Table_Descriptor u8, the magic u32.
const FOOTER: u64 = 9;
/// Most frames a table may list: 24 bytes each in memory (1.5 MiB at most), and a header
/// read or two each when the table is checked. `pack` writes one frame per tar member and per
/// 8 MiB of a larger one; an archive past this is decoded whole.
const FRAMES_MAX: u32 = 1 << 16;
/// A frame of at most this much content is decoded whole, and its checksum checked, before any
/// of its bytes is used: what a walk reads of `pack`'s frames (a layer's head frame, a
/// description file's frame) is then checked, though it stops reading early. A larger frame
/// (a layer's data) is streamed, and checked when it is read to its end.
const WHOLE_MAX: u64 = 1 << 20;
/// The descriptor's checksum flag; its reserved bits must be zero.
const CHECKSUM_FLAG: u8 = 0x80;
const RESERVED_BITS: u8 = 0x7C;

/// Where each frame of a layer-framed archive starts, in the file and in the tar.
#[derive(Debug)]
pub struct Frames {
    /// One entry per frame, and one more for where the last one ends.
    starts: Vec<Start>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    file: u64,
    tar: u64,
}

/// Why an archive is not read by its frames.
#[derive(Debug)]
pub enum Unframed {
    /// It has no seek table: an ordinary zstd stream.
    Plain,
    /// It has one, which its frames do not bear out (or which lists more than is read).
    Untrusted(String),
}

impl std::fmt::Display for Unframed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unframed::Plain => f.write_str("it has no seek table"),
            Unframed::Untrusted(why) => write!(f, "its seek table is not used: {why}"),
        }
    }
}

impl Frames {
    /// The frames of the zstd archive `file` (`len` bytes), from its seek table, each checked
    /// against the frame it lists.
    pub fn read(file: &File, len: u64) -> Result<Frames, Unframed> {
        let untrusted = |why: String| Err(Unframed::Untrusted(why));
        let Some(footer_at) = len.checked_sub(FOOTER) else {
            return Err(Unframed::Plain);
        };
        let footer: [u8; FOOTER as usize] =
            read_exact_at(file, footer_at).ok_or(Unframed::Plain)?;
        if u32_at(&footer, 5) != SEEKABLE_MAGIC {
            return Err(Unframed::Plain);
        }
        let (count, descriptor) = (u32_at(&footer, 0), footer[4]);
        if descriptor & RESERVED_BITS != 0 {
            return untrusted(format!(
                "reserved bits set in its descriptor ({descriptor:#04x})"
            ));
        }
        if count == 0 || count > FRAMES_MAX {
            return untrusted(format!("it lists {count} frames (read: 1 to {FRAMES_MAX})"));
        }
        let entry = if descriptor & CHECKSUM_FLAG != 0 {
            12
        } else {
            8
        };
        let body = u64::from(count) * entry + FOOTER;
        let Some(table_at) = len.checked_sub(body + 8) else {
            return untrusted(format!(
                "it lists {count} frames, more than the file can hold"
            ));
        };
        let head: [u8; 8] = read_exact_at(file, table_at).ok_or(Unframed::Plain)?;
        if u32_at(&head, 0) != SEEK_TABLE_FRAME || u64::from(u32_at(&head, 4)) != body {
            return untrusted("it is not in a skippable frame of its own length".to_owned());
        }
        let mut table = vec![0; (body - FOOTER) as usize];
        if read_at_most(file, table_at + 8, &mut table) != Some(table.len()) {
            return untrusted("it cannot be read".to_owned());
        }
        let frames = Frames::sum(&table, entry as usize)?;
        frames.ends_before(file, table_at)?;
        for k in 0..frames.count() {
            let checksum = (entry == 12).then(|| u32_at(&table, k * 12 + 8));
            frames.check(file, k, checksum)?;
        }
        Ok(frames)
    }

    /// The frames' starts, from the table's sizes.
    fn sum(table: &[u8], entry: usize) -> Result<Frames, Unframed> {
        let mut starts = Vec::with_capacity(table.len() / entry + 1);
        let mut at = Start { file: 0, tar: 0 };
        starts.push(at);
        for e in table.chunks_exact(entry) {
            let (compressed, decompressed) = (u32_at(e, 0), u32_at(e, 4));
            if compressed == 0 {
                return Err(Unframed::Untrusted(format!(
                    "frame {} has no bytes",
                    starts.len() - 1
                )));
            }
            at.file += u64::from(compressed);
            at.tar += u64::from(decompressed);
            starts.push(at);
        }
        Ok(Frames { starts })
    }

    /// Whether the frames end where the table begins, or where a skippable frame before it
    /// (`pack`'s member index) does.
    fn ends_before(&self, file: &File, table_at: u64) -> Result<(), Unframed> {
        let end = self.end().file;
        let fits = match end {
            e if e == table_at => true,
            e if e < table_at => read_exact_at::<8>(file, e).is_some_and(|h| {
                u32_at(&h, 0) & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE
                    && e + 8 + u64::from(u32_at(&h, 4)) == table_at
            }),
            _ => false,
        };
        match fits {
            true => Ok(()),
            false => Err(Unframed::Untrusted(format!(
                "its frames would end at byte {end}, and the table starts at {table_at}"
            ))),
        }
    }

    /// Checks frame `k` against the table: a zstd frame header where the table puts it,
    /// recording the content size the table gives, and the table's `checksum` at its end
    /// where the frame has one.
    fn check(&self, file: &File, k: usize, checksum: Option<u32>) -> Result<(), Unframed> {
        let (start, end) = (self.starts[k], self.starts[k + 1]);
        let wrong = |what: &str| Err(Unframed::Untrusted(format!("frame {k} {what}")));
        let mut head = [0u8; HEADER_MAX];
        let got = read_at_most(file, start.file, &mut head).unwrap_or(0);
        let header = (got >= 4 && u32_at(&head, 0) == ZSTD_MAGIC)
            .then(|| FrameHeader::parse(&head[..got]))
            .flatten();
        let Some(header) = header else {
            return wrong(&format!("is not a zstd frame at byte {}", start.file));
        };
        let content = self.content(k);
        if header.content_size != Some(content) {
            return wrong(&format!(
                "records {:?} bytes of content, the table {content}",
                header.content_size
            ));
        }
        let trailer = 4 * u64::from(header.checksum);
        if end.file - start.file < header.len + trailer {
            return wrong("is shorter than its own header");
        }
        if let (Some(listed), true) = (checksum, header.checksum) {
            let found = read_exact_at::<4>(file, end.file - 4).map(u32::from_le_bytes);
            if found != Some(listed) {
                return wrong("ends with another checksum than the table lists");
            }
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.starts.len() - 1
    }

    fn end(&self) -> Start {
        self.starts[self.count()]
    }

    /// The tar's size.
    pub fn tar_len(&self) -> u64 {
        self.end().tar
    }

    /// The content size of frame `k`.
    fn content(&self, k: usize) -> u64 {
        self.starts[k + 1].tar - self.starts[k].tar
    }

    /// The frame holding the tar's byte `at` (`at` below [`Frames::tar_len`]).
    fn holding(&self, at: u64) -> usize {
        self.starts.partition_point(|s| s.tar <= at) - 1
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// The tar of a layer-framed archive, read from any offset on: a read decodes from the frame
/// holding it (past bytes of that frame decoded and dropped), or goes on where the last read
/// ended. The tar's bytes in `holes` read as zeros, without decoding their frames.
pub struct FramedTar {
    file: Arc<File>,
    frames: Frames,
    holes: Vec<Range<u64>>,
    decoder: ZstdReader<Counted<Take<At<Arc<File>>>>>,
    progress: Arc<Progress>,
    /// The frame being decoded (none at first), and the tar offset of its next byte.
    frame: Option<usize>,
    /// The first frame not yet started: the frames stepped over between it and the next one
    /// started count as read, so that progress and its percent go on over a hole.
    reached: usize,
    decoded: u64,
    /// The tar offset of the next read.
    pos: u64,
    scratch: Vec<u8>,
    /// The last small frame decoded whole ([`WHOLE_MAX`]), and its content.
    whole: Option<(usize, Vec<u8>)>,
}

impl FramedTar {
    /// The tar of `file` (whose `frames` were read) with `holes` (sorted, apart) of zeros.
    pub fn new(file: File, frames: Frames, holes: Vec<Range<u64>>, limit: u64) -> Self {
        let file = Arc::new(file);
        let progress = Arc::new(Progress::default());
        let nothing = Counted {
            inner: At {
                file: file.clone(),
                pos: 0,
                len: 0,
            }
            .take(0),
            progress: progress.clone(),
        };
        FramedTar {
            decoder: ZstdReader::new(nothing, limit),
            file,
            frames,
            holes,
            progress,
            frame: None,
            reached: 0,
            decoded: 0,
            pos: 0,
            scratch: Vec::new(),
            whole: None,
        }
    }

    /// The frames, once the tar has been read.
    pub fn into_frames(self) -> Frames {
        self.frames
    }

    /// Starts decoding frame `k`.
    fn start(&mut self, k: usize) {
        let (start, end) = (self.frames.starts[k], self.frames.starts[k + 1]);
        if k > self.reached {
            let stepped = start.file - self.frames.starts[self.reached].file;
            self.progress
                .compressed
                .fetch_add(stepped, Ordering::Relaxed);
        }
        self.reached = self.reached.max(k + 1);
        let at = At {
            file: self.file.clone(),
            pos: start.file,
            len: end.file,
        };
        self.decoder.restart(Counted {
            inner: at.take(end.file - start.file),
            progress: self.progress.clone(),
        });
        self.frame = Some(k);
        self.decoded = start.tar;
    }

    /// Decodes into `out` from where the decoder stands, within one frame; moves to the next
    /// frame at the end of one, which must end exactly where the table says.
    fn decode(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let k = self.frame.expect("a frame is started before decoding");
            let end = self.frames.starts[k + 1].tar;
            if self.decoded == end {
                self.frame_ends(k)?;
                if k + 1 == self.frames.count() {
                    return Ok(0);
                }
                self.start(k + 1);
                continue;
            }
            let want = out.len().min((end - self.decoded) as usize);
            let n = self.decoder.read(&mut out[..want])?;
            if n == 0 {
                return Err(lies(k, "holds fewer bytes than"));
            }
            self.decoded += n as u64;
            return Ok(n);
        }
    }

    /// Puts the decoder at tar offset `at`: on from where it stands if that is in the same
    /// frame before `at`, else from the start of the frame holding `at`.
    fn seek(&mut self, at: u64) -> io::Result<()> {
        let k = self.frames.holding(at);
        if self.frame != Some(k) || self.decoded > at {
            self.start(k);
        }
        if self.decoded == at {
            return Ok(());
        }
        // Bytes before `at` in its frame: decoded and dropped (never with pack's frames,
        // which start where the members a reader looks for do).
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(super::READ_BUF, 0);
        while self.decoded < at {
            let want = scratch.len().min((at - self.decoded) as usize);
            if self.decode(&mut scratch[..want])? == 0 {
                break;
            }
        }
        self.scratch = scratch;
        Ok(())
    }

    /// With frame `k`'s content all decoded: one more read has zstd check the frame's
    /// checksum, and must give nothing more.
    fn frame_ends(&mut self, k: usize) -> io::Result<()> {
        match self.decoder.read(&mut [0u8; 1])? {
            0 => Ok(()),
            _ => Err(lies(k, "holds more bytes than")),
        }
    }

    /// Decodes small frame `k` whole into `self.whole`, its checksum checked (unless it is
    /// there already).
    fn decode_whole(&mut self, k: usize) -> io::Result<()> {
        if self.whole.as_ref().is_some_and(|(w, _)| *w == k) {
            return Ok(());
        }
        let mut bytes = self.whole.take().map(|(_, b)| b).unwrap_or_default();
        bytes.clear();
        bytes.resize(self.frames.content(k) as usize, 0);
        self.start(k);
        let mut got = 0;
        while got < bytes.len() {
            got += self.decode(&mut bytes[got..])?;
        }
        self.frame_ends(k)?;
        self.whole = Some((k, bytes));
        Ok(())
    }

    /// Up to `want` bytes at `pos` from small frame `k`, decoded whole first.
    fn read_whole(&mut self, k: usize, out: &mut [u8]) -> io::Result<usize> {
        self.decode_whole(k)?;
        let (_, bytes) = self.whole.as_ref().expect("decoded just now");
        let from = (self.pos - self.frames.starts[k].tar) as usize;
        let n = out.len().min(bytes.len() - from);
        out[..n].copy_from_slice(&bytes[from..from + n]);
        Ok(n)
    }

    /// The hole holding `pos`, or the start of the next one.
    fn hole(&self) -> Result<&Range<u64>, u64> {
        let next = self.holes.partition_point(|h| h.end <= self.pos);
        match self.holes.get(next) {
            Some(h) if h.start <= self.pos => Ok(h),
            Some(h) => Err(h.start),
            None => Err(u64::MAX),
        }
    }
}

/// A frame that decodes to another size than the table gives it.
fn lies(k: usize, what: &str) -> io::Error {
    DecodeError::corrupt(
        Format::Zstd,
        format!("frame {k} {what} its seek table says"),
    )
}

impl Read for FramedTar {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let len = self.frames.tar_len();
        if self.pos >= len || out.is_empty() {
            return Ok(0);
        }
        let n = match self.hole() {
            Ok(hole) => {
                let n = out.len().min((hole.end.min(len) - self.pos) as usize);
                out[..n].fill(0);
                n
            }
            Err(next) => {
                let want = out.len().min((next.min(len) - self.pos) as usize);
                let k = self.frames.holding(self.pos);
                if self.frames.content(k) <= WHOLE_MAX {
                    self.read_whole(k, &mut out[..want])?
                } else {
                    if self.decoded != self.pos || self.frame.is_none() {
                        self.seek(self.pos)?;
                    }
                    self.decode(&mut out[..want])?
                }
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl TarAt for FramedTar {
    fn read_tar_at(&mut self, out: &mut [u8], at: u64) -> io::Result<usize> {
        self.pos = at;
        self.read(out)
    }
}

/// The decoded stream of a layer-framed `file`, with the tar's bytes in `holes` (sorted,
/// apart) as zeros: their frames are stepped over, not decoded.
pub fn framed(file: File, frames: Frames, holes: Vec<Range<u64>>, limit: u64) -> Decoder {
    let tar = FramedTar::new(file, frames, holes, limit);
    let progress = tar.progress.clone();
    Decoder {
        progress: progress.clone(),
        reader: Box::new(Decoded {
            inner: tar,
            format: Format::Zstd,
            progress,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zstd_safe::{CCtx, CParameter};

    /// `pieces` as a layer-framed archive: a frame each (content size and checksum in it),
    /// then the seek table, with checksums.
    pub(crate) fn archive_of(pieces: &[&[u8]]) -> Vec<u8> {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        let (mut out, mut table) = (Vec::new(), Vec::new());
        for piece in pieces {
            let mut frame = vec![0; zstd_safe::compress_bound(piece.len())];
            let n = cctx.compress2(&mut frame[..], piece).unwrap();
            frame.truncate(n);
            table.extend_from_slice(&(n as u32).to_le_bytes());
            table.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            table.extend_from_slice(&frame[n - 4..]);
            out.extend_from_slice(&frame);
        }
        let body = table.len() as u32 + FOOTER as u32;
        out.extend_from_slice(&SEEK_TABLE_FRAME.to_le_bytes());
        out.extend_from_slice(&body.to_le_bytes());
        out.extend_from_slice(&table);
        out.extend_from_slice(&(pieces.len() as u32).to_le_bytes());
        out.push(CHECKSUM_FLAG);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// `bytes` as an open file (already unlinked).
    fn file_of(bytes: &[u8], tag: &str) -> File {
        let path = std::env::temp_dir().join(format!("cl-framed-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    fn frames_of(bytes: &[u8], tag: &str) -> (File, Result<Frames, Unframed>) {
        let file = file_of(bytes, tag);
        let frames = Frames::read(&file, bytes.len() as u64);
        (file, frames)
    }

    /// Three pieces of distinct bytes, 1000, 3000 and 500 long.
    fn pieces() -> [Vec<u8>; 3] {
        [
            vec![1; 1000],
            (0..3000).map(|i| i as u8).collect(),
            vec![3; 500],
        ]
    }

    fn untrusted(frames: Result<Frames, Unframed>) -> String {
        match frames {
            Err(Unframed::Untrusted(why)) => why,
            other => panic!("expected an untrusted table, got {other:?}"),
        }
    }

    #[test]
    fn reads_the_tar_from_any_offset_by_the_seek_table() {
        let [a, b, c] = pieces();
        let (file, frames) = frames_of(&archive_of(&[&a, &b, &c]), "any");
        let frames = frames.unwrap();
        assert_eq!(frames.tar_len(), 4500);
        let whole = [&a[..], &b, &c].concat();
        let mut tar = FramedTar::new(file, frames, Vec::new(), 1 << 30);
        for at in [0, 999, 1000, 2500, 3999, 4000, 4499, 10] {
            let mut buf = [0u8; 700];
            let n = tar.read_tar_at(&mut buf, at).unwrap();
            assert!(n > 0, "at {at}");
            assert_eq!(&buf[..n], &whole[at as usize..at as usize + n], "at {at}");
        }
        assert_eq!(tar.read_tar_at(&mut [0u8; 10], 4500).unwrap(), 0);
    }

    #[test]
    fn reads_the_whole_tar_as_zstd_decodes_it() {
        let [a, b, c] = pieces();
        let (file, frames) = frames_of(&archive_of(&[&a, &b, &c]), "whole");
        let mut out = Vec::new();
        let mut decoder = framed(file, frames.unwrap(), Vec::new(), 1 << 30);
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, [&a[..], &b, &c].concat());
    }

    /// The archive of [`pieces`] with one byte flipped, at `at` from where frame 1 starts
    /// (so that frame 0 ends at -1), and opened: the table still holds, the frame does not.
    fn flipped(at: isize, tag: &str) -> (Vec<u8>, File, Frames) {
        let [a, b, c] = pieces();
        let mut archive = archive_of(&[&a, &b, &c]);
        let second = frames_of(&archive, tag).1.unwrap().starts[1].file;
        archive[second.checked_add_signed(at as i64).unwrap() as usize] ^= 0xff;
        let (file, frames) = frames_of(&archive, tag);
        (archive, file, frames.unwrap())
    }

    #[test]
    fn holes_read_as_zeros_without_decoding_their_frames() {
        let [a, _, c] = pieces();
        // The middle frame's blocks damaged: decoding it would fail its checksum.
        let (archive, file, frames) = flipped(20, "holes");
        let mut out = Vec::new();
        let holes = vec![Range {
            start: 1000,
            end: 4000,
        }];
        let mut decoder = framed(file, frames, holes, 1 << 30);
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, [&a[..], &[0; 3000], &c].concat());
        // The frame stepped over counts as read: the whole data frames are.
        let data_frames = archive.len() as u64 - (8 + 3 * 12 + FOOTER);
        assert_eq!(decoder.progress.compressed(), data_frames);
    }

    #[test]
    fn a_frame_read_checks_its_content_checksum() {
        let (_, file, frames) = flipped(20, "checksum");
        let mut decoder = framed(file, frames, Vec::new(), 1 << 30);
        let e = decoder.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(DecodeError::find(&e).is_some(), "{e}");
    }

    #[test]
    fn a_small_frame_is_checked_whole_before_its_first_bytes_are_used() {
        // The last byte of frame 0's content (its checksum is the 4 bytes after it).
        let (_, file, frames) = flipped(-5, "small");
        let mut tar = FramedTar::new(file, frames, Vec::new(), 1 << 30);
        let e = tar.read_tar_at(&mut [0u8; 10], 0).unwrap_err();
        assert!(DecodeError::find(&e).is_some(), "{e}");
    }

    #[test]
    fn a_stream_without_a_seek_table_is_plain() {
        let [a, ..] = pieces();
        let mut cctx = CCtx::create();
        let mut frame = vec![0; zstd_safe::compress_bound(a.len())];
        let n = cctx.compress2(&mut frame[..], &a).unwrap();
        let (_, frames) = frames_of(&frame[..n], "plain");
        assert!(matches!(frames, Err(Unframed::Plain)));
    }

    #[test]
    fn a_table_whose_size_differs_from_its_frame_header_is_untrusted() {
        let [a, b, c] = pieces();
        let mut archive = archive_of(&[&a, &b, &c]);
        // The second entry's Decompressed_Size: 12 bytes per entry, before the 9-byte footer.
        let entry = archive.len() - 9 - 2 * 12;
        archive[entry + 4..entry + 8].copy_from_slice(&3512u32.to_le_bytes());
        let why = untrusted(frames_of(&archive, "size").1);
        assert!(why.contains("frame 1 records Some(3000) bytes"), "{why}");
    }

    #[test]
    fn a_table_whose_checksum_differs_from_its_frame_is_untrusted() {
        let [a, b, c] = pieces();
        let mut archive = archive_of(&[&a, &b, &c]);
        let entry = archive.len() - 9 - 12;
        archive[entry + 8] ^= 1;
        let why = untrusted(frames_of(&archive, "sum").1);
        assert!(why.contains("frame 2 ends with another checksum"), "{why}");
    }

    #[test]
    fn a_table_for_other_frames_is_untrusted() {
        let [a, b, c] = pieces();
        let ours = archive_of(&[&a, &b, &c]);
        let theirs = archive_of(&[&b, &a, &c]);
        let (_, frames) = frames_of(&theirs, "theirs");
        let table_at = frames.unwrap().end().file as usize;
        let (_, frames) = frames_of(&ours, "ours");
        let ours_end = frames.unwrap().end().file as usize;
        let mixed = [&ours[..ours_end], &theirs[table_at..]].concat();
        let why = untrusted(frames_of(&mixed, "mixed").1);
        assert!(why.contains("frame 0"), "{why}");
    }

    #[test]
    fn a_table_giving_a_frame_fewer_bytes_than_its_header_is_untrusted() {
        let [a, b, ..] = pieces();
        let mut archive = archive_of(&[&a, &b]);
        // Frame 0 said to be 3 bytes long, frame 1 to take the rest.
        let (first, second) = (archive.len() - 9 - 24, archive.len() - 9 - 12);
        let sizes = u32_at(&archive, first) + u32_at(&archive, second);
        archive[first..first + 4].copy_from_slice(&3u32.to_le_bytes());
        archive[second..second + 4].copy_from_slice(&(sizes - 3).to_le_bytes());
        let why = untrusted(frames_of(&archive, "short").1);
        assert!(
            why.contains("frame 0 is shorter than its own header"),
            "{why}"
        );
    }

    #[test]
    fn a_table_listing_more_frames_than_the_file_holds_is_untrusted() {
        let [a, ..] = pieces();
        let mut archive = archive_of(&[&a]);
        let count = archive.len() - 9;
        archive[count..count + 4].copy_from_slice(&1000u32.to_le_bytes());
        let why = untrusted(frames_of(&archive, "count").1);
        assert!(why.contains("more than the file can hold"), "{why}");
    }
}
