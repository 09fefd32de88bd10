//! Reading an archive file at a position without moving it (pread): a format's recorded size
//! is read before the upload, and the decoder then goes on from where the file stands.

use std::borrow::Borrow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// `N` bytes at `pos`, or `None` past the end or on an error.
pub fn read_exact_at<const N: usize>(file: &File, pos: u64) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    file.read_exact_at(&mut buf, pos).ok()?;
    Some(buf)
}

/// Reads up to `buf.len()` bytes at `pos`; fewer only at the end of the file.
pub fn read_at_most(file: &File, pos: u64, buf: &mut [u8]) -> Option<usize> {
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
/// position, where the decoder goes on, stays where it is. `F` is the file, borrowed (a
/// format's recorded size) or owned (another decoder of the archive, see `reread`).
pub struct At<F> {
    pub file: F,
    pub pos: u64,
    pub len: u64,
}

impl<F: Borrow<File>> Read for At<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.borrow().read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F: Borrow<File>> Seek for At<F> {
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

/// A tar read by its offsets: a plain tar's file, or a layer-framed archive's frames
/// ([`super::framed::FramedTar`]). A first pass reads headers and description files only.
pub trait TarAt {
    /// Reads up to `buf.len()` bytes of the tar at `at`; 0 only at its end.
    fn read_tar_at(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize>;
}

impl TarAt for &File {
    fn read_tar_at(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.read_at(buf, at)
    }
}
