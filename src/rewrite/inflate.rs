//! zstd layers sent decompressed, for classic docker before 23.0, which unpacks no zstd layer
//! but reads a plain tar layer: the layer blob's entry goes out with its decoded size and its
//! decoded bytes. The image keeps its id: the config is untouched, and its diffIDs are the
//! digests of the uncompressed layers, which docker checks as it registers each one (a layer
//! that decodes to other bytes fails the load before anything is named).
//!
//! A tar header gives its entry's size before the data, so the decoded size is learnt first
//! ([`Sizer`]), from a second read of the archive file while the upload waits at the entry's
//! header: in a plain tar, from the frames' recorded content sizes where every frame has one
//! (a few preads per frame), else by decoding the layer once more; in a compressed archive, by
//! a second decoder of the archive that moves on with the upload, decoding each such layer.
//! Memory stays bounded: each decoder holds a window capped by `--memory-limit`, never a layer,
//! and at most three are open at once (the archive's, its second one, and a layer's).
//! What it costs is time: a layer without recorded sizes is decoded twice, and a compressed
//! archive whose blobs are zstd is decoded twice up to its last such blob. Every blob whose data
//! is zstd frames is sent decoded, another platform's layer too: which blobs are the device's
//! layers is told by manifests that may come after them.

use std::fs::File;
use std::io::{self, Read};

use zstd_safe::{DCtx, InBuffer, OutBuffer};

use crate::decode::zstd::{self, HEADER_MAX};
use crate::decode::{self, At, Decoder, READ_BUF};
use crate::input::format::{sniff, Format};

use super::Unloadable;

/// Whether data starting with `head` is zstd frames (a skippable one first, as pzstd writes).
pub(super) fn is_zstd(head: &[u8]) -> bool {
    sniff(head) == Some(Format::Zstd)
}

/// The decoded sizes of zstd layers, read from the archive file a second time.
pub(crate) struct Sizer<'a> {
    format: Format,
    file: &'a File,
    /// `--memory-limit`, the cap on each decoder's window.
    pub(super) limit: u64,
    /// In a compressed archive: a second decoder of it, and its offset in the tar.
    second: Option<(Decoder, u64)>,
}

impl<'a> Sizer<'a> {
    /// For the archive `file` of `format`, whose decoders' windows `limit` caps.
    pub(crate) fn new(format: Format, file: &'a File, limit: u64) -> Self {
        Sizer {
            format,
            file,
            limit,
            second: None,
        }
    }

    /// The size the zstd frames of the `len` bytes at offset `at` of the tar decode to. Asked
    /// in the order the tar holds them: a compressed archive's second decoder only moves on.
    pub(super) fn size(&mut self, at: u64, len: u64) -> io::Result<u64> {
        if self.format == Format::Tar {
            if let Some((bytes, true)) = zstd::recorded_size(self.file, at, at + len) {
                return Ok(bytes);
            }
            let window = At {
                file: self.file,
                pos: at,
                len: at + len,
            };
            return decoded_len(&mut window.take(len), self.limit);
        }
        let (decoder, pos) = match &mut self.second {
            Some(second) => second,
            None => self
                .second
                .insert((decode::reread(self.format, self.file, self.limit)?, 0)),
        };
        let mut skip = at.checked_sub(*pos).ok_or(io::ErrorKind::InvalidInput)?;
        let mut buf = vec![0; READ_BUF];
        while skip > 0 {
            match decoder.read(&mut buf[..skip.min(READ_BUF as u64) as usize])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => skip -= n as u64,
            }
        }
        *pos = at + len;
        decoded_len(&mut decoder.by_ref().take(len), self.limit)
    }
}

/// How many bytes the zstd frames `frames` reads decode to, counted as they are decoded.
fn decoded_len(frames: &mut dyn Read, limit: u64) -> io::Result<u64> {
    let mut unzstd = Unzstd::new(limit);
    let (mut input, mut out) = (vec![0; READ_BUF], vec![0; READ_BUF]);
    let (mut at, mut len, mut total, mut eof) = (0, 0, 0u64, false);
    loop {
        if at == len && !eof {
            (at, len) = (0, frames.read(&mut input)?);
            eof = len == 0;
        }
        let (consumed, produced) = unzstd.decode(&input[at..len], &mut out)?;
        at += consumed;
        total += produced as u64;
        if eof && consumed == 0 && produced == 0 {
            unzstd.end()?;
            return Ok(total);
        }
    }
}

/// zstd frames decoded as their bytes come (zstd-safe's streaming decompressor), in a window
/// capped by `--memory-limit`.
struct Unzstd {
    dctx: DCtx<'static>,
    limit: u64,
    /// A frame has started and not yet ended.
    in_frame: bool,
    /// The first bytes of the frame being decoded, to name the window it asks for.
    head: Vec<u8>,
}

impl Unzstd {
    fn new(limit: u64) -> Self {
        Unzstd {
            dctx: zstd::capped(limit),
            limit,
            in_frame: false,
            head: Vec::with_capacity(HEADER_MAX),
        }
    }

    /// Decodes from `input` into `out`: the bytes consumed and produced. Called again with
    /// what is left (or nothing) until both are 0, as zstd may hold output back.
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        if !self.in_frame {
            self.head.clear();
            self.head
                .extend_from_slice(&input[..input.len().min(HEADER_MAX)]);
        }
        let mut input = InBuffer::around(input);
        let mut output = OutBuffer::around(out);
        let hint = self
            .dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(|code| zstd::error(code, self.limit, &self.head))?;
        let (consumed, produced) = (input.pos(), output.pos());
        if consumed > 0 || produced > 0 {
            self.in_frame = hint != 0;
        }
        Ok((consumed, produced))
    }

    /// An error when the input ended inside a frame.
    fn end(&self) -> io::Result<()> {
        match self.in_frame {
            true => Err(zstd::ends_inside_a_frame()),
            false => Ok(()),
        }
    }
}

/// A zstd layer entry being sent decoded: its compressed bytes are read from the tar in
/// pieces into `pending`, and decoded into the reader's buffer.
pub(super) struct Inflating {
    unzstd: Unzstd,
    pending: Vec<u8>,
    at: usize,
    /// Compressed bytes of the entry not yet read from the tar.
    left: u64,
    /// Decoded bytes so far, and the size the entry's header gave.
    produced: u64,
    size: u64,
    /// The entry's path, to name it should it decode to another size.
    path: String,
}

impl Inflating {
    /// An entry of `len` compressed bytes, whose first bytes `head` were read, that decodes
    /// to `size` bytes.
    pub(super) fn new(path: String, head: Vec<u8>, len: u64, size: u64, limit: u64) -> Self {
        Inflating {
            unzstd: Unzstd::new(limit),
            left: len - head.len() as u64,
            pending: head,
            at: 0,
            produced: 0,
            size,
            path,
        }
    }

    /// Where the next compressed bytes go, once those held are decoded; `None` while some are
    /// held, or when the entry's are all read.
    pub(super) fn room(&mut self) -> Option<&mut [u8]> {
        if self.at < self.pending.len() || self.left == 0 {
            return None;
        }
        let want = self.left.min(READ_BUF as u64) as usize;
        self.pending.resize(want, 0);
        self.at = want;
        Some(&mut self.pending)
    }

    /// `n` bytes were read into [`Inflating::room`]; their bytes.
    pub(super) fn filled(&mut self, n: usize) -> &[u8] {
        self.pending.truncate(n);
        self.at = 0;
        self.left -= n as u64;
        &self.pending
    }

    /// Decodes what is held into `out`: `Ok(0)` when more is to be read, or (`done`) when the
    /// entry has ended. An error for bad data, or a decoded size other than the header's.
    pub(super) fn decode(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let (consumed, produced) = self.unzstd.decode(&self.pending[self.at..], out)?;
            self.at += consumed;
            self.produced += produced as u64;
            if self.produced > self.size {
                return Err(self.resized());
            }
            if produced > 0 || self.at == self.pending.len() && consumed == 0 {
                return Ok(produced);
            }
        }
    }

    /// The size the entry's header gave.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the entry has been read and decoded whole.
    pub(super) fn done(&self) -> bool {
        self.left == 0 && self.at == self.pending.len()
    }

    /// At the entry's end: an error when a frame was cut, or it decoded to fewer bytes than
    /// its header gave.
    pub(super) fn end(&self) -> io::Result<()> {
        self.unzstd.end()?;
        match self.produced == self.size {
            true => Ok(()),
            false => Err(self.resized()),
        }
    }

    fn resized(&self) -> io::Error {
        Unloadable::Resized {
            path: self.path.clone(),
        }
        .into_io()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    use crate::decode::compress;

    /// Data that compresses, but not to nothing.
    pub(in crate::rewrite) fn payload(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ (i >> 11) as u8)
            .collect()
    }

    /// A file holding `before`, then `data`, then `after`: a layer inside a plain tar.
    pub(in crate::rewrite) fn file_with(before: &[u8], data: &[u8], after: &[u8]) -> File {
        let mut file = tempfile();
        file.write_all(&[before, data, after].concat()).unwrap();
        file
    }

    fn tempfile() -> File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "inflate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn learns_a_plain_tars_layer_size_from_the_sizes_its_frames_record() {
        let data = payload(300_000);
        let layer = compress(&["zstd", "-q", "-c", "--stream-size=300000"], &data);
        assert_eq!(
            zstd_safe::get_frame_content_size(&layer).unwrap(),
            Some(300_000),
            "recorded"
        );
        // The frame walk reads headers only: a corrupt block body is not seen.
        let mut damaged = layer.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xff;
        let file = file_with(&[1; 1024], &damaged, &[2; 600]);
        let mut sizer = Sizer::new(Format::Tar, &file, 8 << 20);
        assert_eq!(sizer.size(1024, damaged.len() as u64).unwrap(), 300_000);
    }

    #[test]
    fn decodes_a_plain_tars_layer_whose_frames_record_no_size() {
        let data = payload(700_000);
        let layer = compress(&["zstd", "-q", "-c"], &data);
        assert_eq!(zstd_safe::get_frame_content_size(&layer).unwrap(), None);
        let file = file_with(&[1; 512], &layer, &[2; 512]);
        let mut sizer = Sizer::new(Format::Tar, &file, 8 << 20);
        assert_eq!(sizer.size(512, layer.len() as u64).unwrap(), 700_000);
    }

    #[test]
    fn decodes_the_layers_of_a_compressed_archive_in_order_with_a_second_decoder() {
        let (a, b) = (payload(200_000), payload(90_000));
        let (za, zb) = (
            compress(&["zstd", "-q", "-c"], &a),
            compress(&["zstd", "-q", "-c"], &b),
        );
        let tar = [&[0; 512][..], &za, &[0; 100], &zb, &[0; 1024]].concat();
        let file = file_with(&compress(&["gzip", "-c"], &tar), &[], &[]);
        let mut sizer = Sizer::new(Format::Gzip, &file, 8 << 20);
        assert_eq!(sizer.size(512, za.len() as u64).unwrap(), 200_000);
        let at = 512 + za.len() as u64 + 100;
        assert_eq!(sizer.size(at, zb.len() as u64).unwrap(), 90_000);
    }

    #[test]
    fn names_a_layer_window_above_the_memory_limit() {
        let layer = compress(&["zstd", "-q", "-c", "--long=22"], &payload(3 << 20));
        let file = file_with(&[], &layer, &[]);
        let err = Sizer::new(Format::Tar, &file, 1 << 20)
            .size(0, layer.len() as u64)
            .unwrap_err();
        assert!(
            decode::DecodeError::cause(&err)
                .to_string()
                .starts_with("zstd window (archive made with zstd --long?) needs 4.0 MiB"),
            "{err}"
        );
    }

    #[test]
    fn takes_zstd_frames_for_zstd_with_a_skippable_frame_first() {
        let layer = compress(&["pzstd", "-q", "-c", "-p", "2"], &payload(1000));
        assert!(is_zstd(&layer[..4]));
        assert!(is_zstd(&compress(&["zstd", "-q", "-c"], &[1])[..4]));
        assert!(!is_zstd(b"{\"sc"));
        assert!(!is_zstd(&[0x1f, 0x8b, 8, 0]));
    }

    #[test]
    fn refuses_a_layer_cut_inside_a_frame() {
        let layer = compress(&["zstd", "-q", "-c"], &payload(300_000));
        let cut = &layer[..layer.len() / 2];
        let file = file_with(&[], cut, &[]);
        let err = Sizer::new(Format::Tar, &file, 8 << 20)
            .size(0, cut.len() as u64)
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    /// `layer` through [`Inflating`] in reads of `step` bytes into buffers of `out` bytes.
    fn inflated(layer: &[u8], size: u64, step: usize, out: usize) -> io::Result<Vec<u8>> {
        let mut inflating = Inflating::new(
            "l".into(),
            layer[..4].to_vec(),
            layer.len() as u64,
            size,
            8 << 20,
        );
        let (mut read, mut decoded, mut buf) = (4, Vec::new(), vec![0; out]);
        loop {
            if let Some(room) = inflating.room() {
                let n = step.min(room.len()).min(layer.len() - read);
                room[..n].copy_from_slice(&layer[read..read + n]);
                read += n;
                inflating.filled(n);
            }
            let n = inflating.decode(&mut buf)?;
            decoded.extend_from_slice(&buf[..n]);
            if n == 0 && inflating.done() {
                return inflating.end().map(|()| decoded);
            }
        }
    }

    #[test]
    fn sends_a_layer_decoded_whatever_the_pieces_it_comes_in() {
        let data = payload(1 << 20);
        let layer = compress(&["zstd", "-q", "-c"], &data);
        for (step, out) in [(1000, 700), (7, 100_000), (1 << 20, 1 << 20)] {
            let got = inflated(&layer, data.len() as u64, step, out).unwrap();
            assert!(got == data, "{step}/{out}");
        }
    }

    #[test]
    fn fails_a_layer_that_decodes_to_another_size_than_its_header_gave() {
        let data = payload(100_000);
        let layer = compress(&["zstd", "-q", "-c"], &data);
        for size in [99_999, 100_001] {
            let err = inflated(&layer, size, 4096, 4096).unwrap_err();
            assert_eq!(
                Unloadable::find(&err),
                Some(&Unloadable::Resized { path: "l".into() }),
                "{size}"
            );
        }
    }
}
