//! The pre-flight space check: before an upload, the archive's unpacked size against the free
//! space where the engine will copy it, so that a load that cannot fit is skipped with both
//! numbers instead of filling the engine's disk.
//!
//! Both sides err towards loading: a device that never gets its images is worse off than one
//! whose engine reports a full disk. The size is what the archive records (zstd frame headers,
//! the xz index, the gzip trailer) or else its compressed size, never a guess above it; the
//! need counted is only the copy of the whole archive that the engine makes for every load
//! (docker unpacks it under its data root, podman copies it to its temporary directory), not
//! the layers it stores next, which may be shared with images it already has. Whatever cannot
//! be found out (no answer from the engine, a directory the loader cannot see) skips the check.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::archive::Archive;
use crate::decode::Format;
use crate::engine::Engine;
use crate::log::Log;
use crate::units::Size;

/// Unpacked bytes assumed per archive byte when the archive does not record its size: 1, the
/// least any of these formats unpacks to (incompressible data is stored nearly as is, so the
/// real size is this or more).
const UNRECORDED_FACTOR: u64 = 1;
/// deflate's largest ratio (RFC 1951: a 258-byte match in about 2 bits): a gzip trailer that
/// claims more than this is not the size of the whole archive.
const DEFLATE_MAX_RATIO: u64 = 1032;
/// Most zstd block headers read for one archive (32 GiB of content in full 128 KiB blocks);
/// the rest of an archive beyond counts at its compressed size.
const ZSTD_BLOCK_BUDGET: u32 = 1 << 18;
/// Largest content of one zstd block (RFC 8878, Block_Maximum_Size).
const ZSTD_BLOCK_MAX: u64 = 128 << 10;
const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames (pzstd writes one in front of each frame) have magics 0x184D2A50..5F.
const ZSTD_SKIPPABLE: u32 = 0x184D_2A50;
const ZSTD_SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;

/// How many bytes of tar an archive unpacks to, at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub bytes: u64,
    /// Where the number comes from, for the verbose log.
    pub basis: Basis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A plain tar: its size.
    TarSize,
    /// Every zstd frame records its content size.
    ZstdFrames,
    /// The gzip trailer (exact for one member below 4 GiB, less for several).
    GzipTrailer,
    /// The xz index, which records every block's size.
    XzIndex,
    /// Not recorded (or not for every zstd frame): what the archive shows, and at least its
    /// compressed size times `UNRECORDED_FACTOR`.
    Compressed,
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Basis::TarSize => "the tar's size",
            Basis::ZstdFrames => "zstd frame headers",
            Basis::GzipTrailer => "gzip trailer",
            Basis::XzIndex => "xz index",
            Basis::Compressed => "not recorded, at least the compressed size",
        })
    }
}

/// The unpacked size of an archive of `format` and `size` bytes, read from `file` without
/// moving its position (the decoder reads on from there).
pub fn estimate(format: Format, file: &File, size: u64) -> Estimate {
    let recorded = match format {
        Format::Tar => Some((size, Basis::TarSize)),
        Format::Zstd => zstd_content_size(file, size).map(|(bytes, all)| match all {
            true => (bytes, Basis::ZstdFrames),
            false => (bytes, Basis::Compressed),
        }),
        Format::Gzip => gzip_trailer_size(file, size).map(|bytes| (bytes, Basis::GzipTrailer)),
        Format::Xz => lzma_rust2::xz_uncompressed_size(At {
            file,
            pos: 0,
            len: size,
        })
        .ok()
        .map(|bytes| (bytes, Basis::XzIndex)),
    };
    let (bytes, basis) = recorded.unwrap_or((size, Basis::Compressed));
    let bytes = match basis {
        Basis::Compressed => bytes.max(size.saturating_mul(UNRECORDED_FACTOR)),
        _ => bytes,
    };
    Estimate { bytes, basis }
}

/// The sum of the content sizes of all frames, and whether every frame recorded its own (a
/// frame that does not counts what its blocks are known to hold: raw and RLE blocks exactly,
/// compressed blocks at their compressed size). `None` when the frames cannot be walked to the
/// end of the file: then the archive is damaged, and the decoder will say so.
fn zstd_content_size(file: &File, len: u64) -> Option<(u64, bool)> {
    let mut pos = 0u64;
    let mut total = 0u64;
    let mut all_recorded = true;
    let mut budget = ZSTD_BLOCK_BUDGET;
    while pos < len {
        let magic = u32::from_le_bytes(read_exact_at(file, pos)?);
        if magic & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE {
            let skip = u32::from_le_bytes(read_exact_at(file, pos + 4)?);
            pos = pos.checked_add(8 + u64::from(skip))?;
            continue;
        }
        if magic != ZSTD_MAGIC {
            return None;
        }
        let mut head = [0u8; 14];
        let got = read_at_most(file, pos + 4, &mut head)?;
        let header = FrameHeader::parse(&head[..got])?;
        pos += 4 + header.len;
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
            Some(n) if n <= blocks * ZSTD_BLOCK_MAX => total += n,
            _ => {
                total += floor;
                all_recorded = false;
            }
        }
    }
    Some((total, all_recorded))
}

/// The parts of a zstd frame header (RFC 8878, 3.1.1.1) the estimate needs.
#[derive(Debug, PartialEq, Eq)]
struct FrameHeader {
    /// Bytes after the magic number up to the first block.
    len: u64,
    content_size: Option<u64>,
    checksum: bool,
}

impl FrameHeader {
    /// Parses the header from `head`, the bytes after the magic number.
    fn parse(head: &[u8]) -> Option<FrameHeader> {
        let descriptor = *head.first()?;
        if descriptor & 0x08 != 0 {
            return None; // reserved bit
        }
        let single_segment = descriptor & 0x20 != 0;
        let window = usize::from(!single_segment);
        let dict = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let fcs = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let start = 1 + window + dict;
        let field = head.get(start..start + fcs)?;
        let mut value = [0u8; 8];
        value[..fcs].copy_from_slice(field);
        let value = u64::from_le_bytes(value);
        Some(FrameHeader {
            len: (start + fcs) as u64,
            content_size: match fcs {
                0 => None,
                2 => Some(value + 256),
                _ => Some(value),
            },
            checksum: descriptor & 0x04 != 0,
        })
    }
}

/// The gzip trailer's ISIZE: the last member's size modulo 4 GiB. Exact for the usual archive
/// (one member, below 4 GiB), less than the whole otherwise; believed only between the
/// compressed size and deflate's largest ratio, since garbage there would be believed too.
fn gzip_trailer_size(file: &File, len: u64) -> Option<u64> {
    if len < 18 {
        return None;
    }
    let isize = u64::from(u32::from_le_bytes(read_exact_at(file, len - 4)?));
    (isize >= len && isize <= len.saturating_mul(DEFLATE_MAX_RATIO)).then_some(isize)
}

fn read_exact_at<const N: usize>(file: &File, pos: u64) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    file.read_exact_at(&mut buf, pos).ok()?;
    Some(buf)
}

/// Reads up to `buf.len()` bytes at `pos`; fewer only at the end of the file.
fn read_at_most(file: &File, pos: u64, buf: &mut [u8]) -> Option<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(got)
}

/// A `Read + Seek` view of a file that keeps its own position (pread), so the file's own
/// position, where the decoder goes on, stays where it is.
struct At<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Free bytes on the filesystem holding `dir`, as `df` shows them (Avail: the blocks reserved
/// for root stay with the system).
fn free_space(dir: &Path) -> io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let s = rustix::fs::statvfs(path.as_c_str())
        .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// An archive that cannot fit: it would need `need` bytes in `dir`, which has `free`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub need: u64,
    pub dir: PathBuf,
    pub free: u64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not enough space: needs ~{} on {}, {} free; free space or use --no-space-check",
            Size(self.need),
            self.dir.display(),
            Size(self.free)
        )
    }
}

impl std::error::Error for Shortfall {}

/// Whether `archive` fits where the engine will copy it. Anything that cannot be found out
/// skips the check with a note in the verbose log: the check never fails an entry for itself.
pub fn check(engine: &Engine, archive: &Archive, place: &str, log: &Log) -> Result<(), Shortfall> {
    let estimate = estimate(archive.format, archive.file(), archive.size);
    judge(engine, estimate, place, log)
}

/// The half of [`check`] that asks the engine: where it copies an upload, and how much room
/// is there. Slow on podman (its `GET /libpod/info` takes ~0.2 s), so a load runs it beside
/// the upload and cuts the upload short through a [`Gate`].
pub fn judge(engine: &Engine, estimate: Estimate, place: &str, log: &Log) -> Result<(), Shortfall> {
    let dir = match engine.upload_dir() {
        Ok(dir) => dir,
        Err(why) => {
            log.debug(format_args!("{place}: space check skipped: {why}"));
            return Ok(());
        }
    };
    let free = match free_space(&dir) {
        Ok(free) => free,
        Err(e) => {
            // The engine's path in the loader's view: another mount namespace, a sandbox.
            log.debug(format_args!(
                "{place}: space check skipped: cannot see the engine's {}: {e}",
                dir.display()
            ));
            return Ok(());
        }
    };
    log.debug(format_args!(
        "{place}: space check: needs ~{} on {}, {} free (unpacked size: {})",
        Size(estimate.bytes),
        dir.display(),
        Size(free),
        estimate.basis
    ));
    match estimate.bytes > free {
        true => Err(Shortfall {
            need: estimate.bytes,
            dir,
            free,
        }),
        false => Ok(()),
    }
}

/// What an upload may send before the space check has answered (podman takes ~0.2 s): the
/// most an engine writes to a disk the archive cannot fit on, thrown away when the upload is
/// cut. Measured into podman here (162 MiB from zstd): 8 MiB went out in ~0.1 s and the load
/// then waited for the answer (2.04 s); with 32 MiB it never waits (1.84 s, as with no limit).
pub const SEND_BEFORE_VERDICT: u64 = 32 << 20;

/// The upload's stream, held to the space check's verdict: up to [`SEND_BEFORE_VERDICT`] bytes
/// pass before it is in, then reads wait for it; once the verdict is a shortfall every read
/// fails. A failed read makes the engine client abort the request before its last chunk, so
/// the engine loads nothing (as for a corrupt archive) and throws away what it received.
pub struct Gate<'a, R> {
    inner: R,
    verdict: &'a OnceLock<Result<(), Shortfall>>,
    sent: u64,
}

impl<'a, R> Gate<'a, R> {
    pub fn new(inner: R, verdict: &'a OnceLock<Result<(), Shortfall>>) -> Self {
        Gate {
            inner,
            verdict,
            sent: 0,
        }
    }
}

impl<R: Read> Read for Gate<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let verdict = match self.verdict.get() {
            Some(verdict) => Some(verdict),
            None if self.sent >= SEND_BEFORE_VERDICT => Some(self.verdict.wait()),
            None => None,
        };
        if let Some(Err(shortfall)) = verdict {
            return Err(io::Error::other(shortfall.clone()));
        }
        let room = match verdict {
            Some(_) => buf.len(),
            None => (SEND_BEFORE_VERDICT - self.sent).min(buf.len() as u64) as usize,
        };
        let n = self.inner.read(&mut buf[..room])?;
        self.sent += n as u64;
        if n == 0 && !buf.is_empty() {
            // The stream does not end before the verdict is in.
            if let Err(shortfall) = self.verdict.wait() {
                return Err(io::Error::other(shortfall.clone()));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::compress;
    use std::process::Command;

    /// A payload that compresses about 3:1, like an image's tar.
    fn payload(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|i| {
                if i % 3 == 0 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    /// A scratch file, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str, data: &[u8]) -> Scratch {
            let p = std::env::temp_dir().join(format!("cl-space-{tag}-{}", std::process::id()));
            std::fs::write(&p, data).unwrap();
            Scratch(p)
        }
        fn open(&self) -> File {
            File::open(&self.0).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `tool ... FILE` on `data` written to a file (zstd records the size then).
    fn from_file(tag: &str, tool: &[&str], data: &[u8]) -> Vec<u8> {
        let input = Scratch::new(&format!("{tag}-in"), data);
        let out = Command::new(tool[0])
            .args(&tool[1..])
            .arg(&input.0)
            .output()
            .unwrap_or_else(|e| panic!("{} is needed for this test: {e}", tool[0]));
        assert!(out.status.success(), "{tool:?}");
        out.stdout
    }

    fn estimate_of(tag: &str, format: Format, archive: &[u8]) -> Estimate {
        let s = Scratch::new(tag, archive);
        estimate(format, &s.open(), archive.len() as u64)
    }

    /// A skippable frame as pzstd writes it: a 4-byte payload, the next frame's size.
    fn skippable(next: &[u8]) -> Vec<u8> {
        let mut v = ZSTD_SKIPPABLE.to_le_bytes().to_vec();
        v.extend(4u32.to_le_bytes());
        v.extend((next.len() as u32).to_le_bytes());
        v
    }

    #[test]
    fn a_tar_needs_its_own_size() {
        let e = estimate_of("tar", Format::Tar, &payload(10_000));
        assert_eq!(
            e,
            Estimate {
                bytes: 10_000,
                basis: Basis::TarSize
            }
        );
    }

    #[test]
    fn zstd_from_a_file_records_the_content_size() {
        let data = payload(3 << 20);
        let zst = from_file("zfile", &["zstd", "-q", "-c"], &data);
        assert!(zst.len() < data.len() / 2);
        let e = estimate_of("zfile", Format::Zstd, &zst);
        assert_eq!(
            e,
            Estimate {
                bytes: data.len() as u64,
                basis: Basis::ZstdFrames
            }
        );
    }

    #[test]
    fn zstd_frames_are_summed_across_skippable_frames() {
        let (a, b) = (payload(300_000), payload(1 << 20));
        let (za, zb) = (
            from_file("za", &["zstd", "-q", "-c", "--check"], &a),
            from_file("zb", &["zstd", "-q", "-c", "--no-check", "-19"], &b),
        );
        let archive = [skippable(&za), za, skippable(&zb), zb].concat();
        let e = estimate_of("zskip", Format::Zstd, &archive);
        assert_eq!(e.bytes, (a.len() + b.len()) as u64);
        assert_eq!(e.basis, Basis::ZstdFrames);
    }

    #[test]
    fn zstd_without_a_content_size_counts_its_compressed_size() {
        let data = payload(3 << 20);
        let zst = compress(&["zstd", "-q", "-c"], &data);
        let e = estimate_of("zpipe", Format::Zstd, &zst);
        assert_eq!(
            e,
            Estimate {
                bytes: zst.len() as u64,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn pzstd_frames_are_walked_but_record_no_size() {
        let data = payload(24 << 20);
        let zst = from_file("pz", &["pzstd", "-q", "-c", "-p", "2"], &data);
        let s = Scratch::new("pz", &zst);
        let len = zst.len() as u64;
        let frames = zst
            .windows(4)
            .filter(|w| w == &ZSTD_SKIPPABLE.to_le_bytes())
            .count();
        assert!(frames >= 2, "fixture: pzstd wrote {frames} frame(s)");
        // The walk reaches the end of the last frame: the sizes are not there to add up.
        let (bytes, all) = zstd_content_size(&s.open(), len).expect("walked to the end");
        assert!(!all && bytes <= len, "{bytes} of {len}");
        assert_eq!(
            estimate(Format::Zstd, &s.open(), len),
            Estimate {
                bytes: len,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn zstd_rle_blocks_count_at_their_full_size() {
        // zstd stores runs of one byte as RLE blocks, whose size the walk reads; its first
        // block here is a compressed one, counted at its few compressed bytes.
        let zeros = vec![0u8; 8 << 20];
        let zst = compress(&["zstd", "-q", "-c"], &zeros);
        assert!(zst.len() < 64 << 10);
        let e = estimate_of("zrle", Format::Zstd, &zst);
        assert_eq!(e.basis, Basis::Compressed);
        let len = zeros.len() as u64;
        assert!(e.bytes > len - ZSTD_BLOCK_MAX && e.bytes <= len, "{e:?}");
    }

    #[test]
    fn a_zstd_content_size_its_blocks_cannot_hold_is_not_believed() {
        let data = payload(1 << 20);
        let mut zst = from_file("zbig", &["zstd", "-q", "-c"], &data);
        // 4-byte content size field right after the magic, descriptor and window byte.
        assert_eq!(zst[4] >> 6, 2, "fixture: expected a 4-byte content size");
        zst[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = estimate_of("zbig", Format::Zstd, &zst);
        assert_eq!(e.basis, Basis::Compressed);
        assert!(e.bytes < data.len() as u64, "{e:?}");
    }

    #[test]
    fn a_damaged_zstd_archive_counts_its_compressed_size() {
        let data = payload(1 << 20);
        let zst = from_file("zcut", &["zstd", "-q", "-c"], &data);
        let cut = &zst[..zst.len() / 2];
        let e = estimate_of("zcut", Format::Zstd, cut);
        assert_eq!(
            e,
            Estimate {
                bytes: cut.len() as u64,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn frame_headers_parse_as_zstd_itself_reads_them() {
        let data = payload(70_000);
        for (tag, tool) in [
            ("h1", &["zstd", "-q", "-c"][..]),
            ("h2", &["zstd", "-q", "-c", "--no-check", "-19"]),
            ("h3", &["zstd", "-q", "-c", "--long=27"]),
        ] {
            let zst = from_file(tag, tool, &data);
            let ours = FrameHeader::parse(&zst[4..]).unwrap();
            assert_eq!(
                Ok(ours.content_size),
                zstd_safe::get_frame_content_size(&zst).map_err(|_| ()),
                "{tool:?}"
            );
        }
        let piped = compress(&["zstd", "-q", "-c"], &data);
        assert_eq!(FrameHeader::parse(&piped[4..]).unwrap().content_size, None);
        // Two-byte field: the value plus 256.
        let h = FrameHeader::parse(&[0x40, 0x58, 0x10, 0x00]).unwrap();
        assert_eq!((h.len, h.content_size), (4, Some(256 + 16)));
        assert_eq!(FrameHeader::parse(&[0x08]), None, "reserved bit set");
    }

    #[test]
    fn gzip_counts_its_trailer_size() {
        let data = payload(2 << 20);
        let gz = compress(&["gzip", "-c", "-n"], &data);
        let e = estimate_of("gz", Format::Gzip, &gz);
        assert_eq!(
            e,
            Estimate {
                bytes: data.len() as u64,
                basis: Basis::GzipTrailer
            }
        );
    }

    #[test]
    fn gzip_with_several_members_counts_no_more_than_it_holds() {
        let (a, b) = (payload(2 << 20), payload(1 << 20));
        let gz = [
            compress(&["gzip", "-c", "-n"], &a),
            compress(&["gzip", "-c", "-n"], &b),
        ]
        .concat();
        let e = estimate_of("gzm", Format::Gzip, &gz);
        assert!(e.bytes >= gz.len() as u64, "{e:?}");
        assert!(e.bytes <= (a.len() + b.len()) as u64, "{e:?}");
    }

    #[test]
    fn gzip_counts_its_compressed_size_when_the_trailer_is_not_plausible() {
        // Incompressible data: the trailer's size is below the archive's own.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let gz = compress(&["gzip", "-c", "-n"], &noise);
        let e = estimate_of("gzn", Format::Gzip, &gz);
        assert_eq!(
            e,
            Estimate {
                bytes: gz.len() as u64,
                basis: Basis::Compressed
            }
        );
        // A trailer claiming more than deflate can hold.
        let mut bogus = compress(&["gzip", "-c", "-n"], &payload(1000));
        let n = bogus.len();
        bogus[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = estimate_of("gzb", Format::Gzip, &bogus);
        assert_eq!(
            e,
            Estimate {
                bytes: n as u64,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn xz_counts_its_index_across_streams() {
        let (a, b) = (payload(2 << 20), payload(300_000));
        let xz = [
            compress(&["xz", "-c", "-T1", "--block-size=500000"], &a),
            compress(&["xz", "-c"], &b),
        ]
        .concat();
        let e = estimate_of("xz", Format::Xz, &xz);
        assert_eq!(
            e,
            Estimate {
                bytes: (a.len() + b.len()) as u64,
                basis: Basis::XzIndex
            }
        );
        let cut = &xz[..xz.len() - 20];
        let e = estimate_of("xzcut", Format::Xz, cut);
        assert_eq!(
            e,
            Estimate {
                bytes: cut.len() as u64,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn estimating_leaves_the_file_position_to_the_decoder() {
        let data = payload(1 << 20);
        for (format, archive) in [
            (
                Format::Zstd,
                from_file("pos-z", &["zstd", "-q", "-c"], &data),
            ),
            (Format::Xz, compress(&["xz", "-c"], &data)),
            (Format::Gzip, compress(&["gzip", "-c"], &data)),
        ] {
            let s = Scratch::new("pos", &archive);
            let mut file = s.open();
            file.seek(SeekFrom::Start(512)).unwrap();
            estimate(format, &file, archive.len() as u64);
            assert_eq!(file.stream_position().unwrap(), 512, "{format}");
        }
    }

    #[test]
    fn a_shortfall_names_the_directory_both_sizes_and_the_way_out() {
        let s = Shortfall {
            need: 1288 << 20,
            dir: PathBuf::from("/var/lib/docker/tmp"),
            free: 300 << 20,
        };
        assert_eq!(
            s.to_string(),
            "not enough space: needs ~1.26 GiB on /var/lib/docker/tmp, 300.0 MiB free; \
             free space or use --no-space-check"
        );
    }

    #[test]
    fn free_space_is_read_where_the_loader_can_see_and_an_error_elsewhere() {
        assert!(free_space(&std::env::temp_dir()).unwrap() > 0);
        assert!(free_space(Path::new("/nonexistent/engine/root")).is_err());
    }

    /// The shortfall that stopped a stream, if that is what `e` is.
    fn shortfall_in(e: &io::Error) -> Option<&Shortfall> {
        e.get_ref()?.downcast_ref::<Shortfall>()
    }

    fn shortfall() -> Shortfall {
        Shortfall {
            need: 2 << 30,
            dir: PathBuf::from("/var/lib/docker/tmp"),
            free: 300 << 20,
        }
    }

    #[test]
    fn a_gate_fails_the_stream_once_the_verdict_is_a_shortfall() {
        let verdict = OnceLock::new();
        let mut gate = Gate::new(&[7u8; 100][..], &verdict);
        let mut buf = [0u8; 10];
        assert_eq!(gate.read(&mut buf).unwrap(), 10);
        verdict.set(Err(shortfall())).unwrap();
        let e = gate.read(&mut buf).unwrap_err();
        assert_eq!(shortfall_in(&e), Some(&shortfall()));
    }

    #[test]
    fn a_gate_sends_no_more_than_its_allowance_before_the_verdict() {
        let data = vec![1u8; SEND_BEFORE_VERDICT as usize + 1000];
        let verdict = OnceLock::new();
        let mut gate = Gate::new(&data[..], &verdict);
        let mut sent = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        while sent < SEND_BEFORE_VERDICT {
            sent += gate.read(&mut buf).unwrap() as u64;
        }
        assert_eq!(sent, SEND_BEFORE_VERDICT);
        verdict.set(Err(shortfall())).unwrap();
        let e = gate.read(&mut buf).unwrap_err();
        assert_eq!(shortfall_in(&e), Some(&shortfall()));
    }

    #[test]
    fn a_gate_ends_the_stream_only_once_the_verdict_is_in() {
        let verdict = OnceLock::new();
        let mut gate = Gate::new(&b"tar"[..], &verdict);
        let mut all = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                verdict.set(Ok(())).unwrap();
            });
            let started = std::time::Instant::now();
            gate.read_to_end(&mut all).unwrap();
            assert!(started.elapsed() >= std::time::Duration::from_millis(150));
        });
        assert_eq!(all, b"tar");
        let late = OnceLock::new();
        let mut gate = Gate::new(&b"tar"[..], &late);
        late.set(Err(shortfall())).unwrap();
        assert!(gate.read_to_end(&mut Vec::new()).is_err());
    }
}
