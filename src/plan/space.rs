//! The pre-flight space check: before an upload, the archive's unpacked size against the free
//! space where the engine will copy it, so that a load that cannot fit is skipped with both
//! numbers instead of filling the engine's disk.
//!
//! Both sides err towards loading: a device that never gets its images is worse off than one
//! whose engine reports a full disk. The size is what the archive records (zstd frame headers,
//! the xz index, the gzip trailer: [`decode::recorded_size`]) or else its compressed size, never a guess above it; the
//! need counted is only the copy of the whole archive that the engine makes for every load
//! (docker unpacks it under its data root, podman copies it to its temporary directory), not
//! the layers it stores next, which may be shared with images it already has. Whatever cannot
//! be found out (no answer from the engine, a directory the loader cannot see) skips the check.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::decode;
use crate::engine::requests::Requests;
use crate::input::archive::Archive;
use crate::input::format::Format;
use crate::input::sizes::Size;
use crate::report::log::Log;

/// Unpacked bytes assumed per archive byte when the archive does not record its size: 1, the
/// least any of these formats unpacks to (incompressible data is stored nearly as is, so the
/// real size is this or more).
const UNRECORDED_FACTOR: u64 = 1;
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
    let recorded = decode::recorded_size(format, file, size).map(|r| {
        let basis = match (format, r.complete) {
            (_, false) => Basis::Compressed,
            (Format::Tar, true) => Basis::TarSize,
            (Format::Zstd, true) => Basis::ZstdFrames,
            (Format::Gzip, true) => Basis::GzipTrailer,
            (Format::Xz, true) => Basis::XzIndex,
            // bzip2 records no size: `recorded_size` has none to give.
            (Format::Bzip2, true) => Basis::Compressed,
        };
        (r.bytes, basis)
    });
    let (bytes, basis) = recorded.unwrap_or((size, Basis::Compressed));
    let bytes = match basis {
        Basis::Compressed => bytes.max(size.saturating_mul(UNRECORDED_FACTOR)),
        _ => bytes,
    };
    Estimate { bytes, basis }
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
pub fn check(
    engine: &dyn Requests,
    archive: &Archive,
    place: &str,
    log: &Log,
) -> Result<(), Shortfall> {
    let estimate = estimate(archive.format, archive.file(), archive.size);
    judge(engine, estimate, place, log)
}

/// The half of [`check`] that asks the engine: where it copies an upload, and how much room
/// is there. Slow on podman (its `GET /libpod/info` takes ~0.2 s), so a load runs it beside
/// the upload and cuts the upload short through a [`Gate`].
pub fn judge(
    engine: &dyn Requests,
    estimate: Estimate,
    place: &str,
    log: &Log,
) -> Result<(), Shortfall> {
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

    pub fn into_inner(self) -> R {
        self.inner
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
    use std::io::{Seek, SeekFrom};

    use crate::decode::compress;
    use crate::decode::zstd::BLOCK_MAX as ZSTD_BLOCK_MAX;
    use crate::input::format::ZSTD_SKIPPABLE;
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
        let r = decode::recorded_size(Format::Zstd, &s.open(), len).expect("walked to the end");
        let (bytes, all) = (r.bytes, r.complete);
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
    fn zstd_skippable_frames_count_against_the_walks_budget() {
        // 32 MiB of empty skippable frames (4 million headers) before a frame that records its
        // size: the walk gives up within its budget, and the archive counts at its own size.
        let empty = [ZSTD_SKIPPABLE.to_le_bytes(), 0u32.to_le_bytes()].concat();
        let data = payload(1 << 20);
        let zst = from_file("zskips", &["zstd", "-q", "-c"], &data);
        let archive = [empty.repeat(4 << 20), zst].concat();
        let e = estimate_of("zskips", Format::Zstd, &archive);
        assert_eq!(
            e,
            Estimate {
                bytes: archive.len() as u64,
                basis: Basis::Compressed
            }
        );
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
    fn bzip2_records_no_size_and_counts_at_its_compressed_size() {
        let bz = compress(&["bzip2", "-c"], &payload(1 << 20));
        let e = estimate_of("bz", Format::Bzip2, &bz);
        assert_eq!(
            e,
            Estimate {
                bytes: bz.len() as u64,
                basis: Basis::Compressed
            }
        );
    }

    #[test]
    fn xz_empty_streams_count_against_the_walks_budget() {
        // 32 MiB of empty streams (a million of them) before one that holds the data: the
        // walk gives up within its budget, and the archive counts at its own size.
        let empty = compress(&["xz", "-c"], &[]);
        assert_eq!(empty.len(), 32, "fixture: an empty xz stream");
        let data = payload(1 << 20);
        let archive = [empty.repeat(1 << 20), compress(&["xz", "-c"], &data)].concat();
        let e = estimate_of("xzempty", Format::Xz, &archive);
        assert_eq!(
            e,
            Estimate {
                bytes: archive.len() as u64,
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
