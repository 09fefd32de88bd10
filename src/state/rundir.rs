//! The run directory (`/run/container-loader`, `--run-dir`) and its `images/`, used without
//! following links and without blocking on what someone may have planted there.
//!
//! The loader runs as root and writes here (locks, `status.json`, markers), so each directory
//! is opened once with `O_NOFOLLOW` and must be a real directory owned by the user the loader
//! runs as; everything in it is then opened, written, renamed and removed relative to that
//! handle. Files are opened with `O_NOFOLLOW | O_NONBLOCK` and used only when the opened file is
//! a regular one: a symlink is never followed out, a FIFO never blocks the run.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fd::AsFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::input::bounded;

/// A run directory that is not one the loader may use.
#[derive(Debug)]
pub struct RunDirError {
    pub path: PathBuf,
    why: String,
}

impl fmt::Display for RunDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run directory {}: {}; nothing is recorded there (remove it so that the next run makes it anew, or give another --run-dir)",
            self.path.display(),
            self.why
        )
    }
}

impl std::error::Error for RunDirError {}

/// An opened run directory (or its `images/`).
#[derive(Debug)]
pub struct RunDir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

impl RunDir {
    /// Opens the run directory at `path`, making it (and its parents) when missing.
    pub fn open(path: &Path) -> Result<RunDir, RunDirError> {
        let fail = |why: String| RunDirError {
            path: path.to_owned(),
            why,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| fail(format!("cannot make its parent: {e}")))?;
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(fail(format!("cannot make it: {}", io::Error::from(e)))),
        }
        Self::checked(rustix::fs::CWD, path, path.to_owned())
    }

    /// Opens (making it when missing) the subdirectory `name`, under the same rules.
    pub fn subdir(&self, name: &str) -> Result<RunDir, RunDirError> {
        let path = self.path.join(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(RunDirError {
                    path,
                    why: format!("cannot make it: {}", io::Error::from(e)),
                })
            }
        }
        Self::checked(&self.fd, Path::new(name), path)
    }

    fn checked<Fd: AsFd>(at: Fd, name: &Path, path: PathBuf) -> Result<RunDir, RunDirError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(at, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(RunDirError {
                    path,
                    why: "is not a directory (a symlink or a file is in its place)".into(),
                })
            }
            Err(e) => {
                return Err(RunDirError {
                    path,
                    why: format!("cannot open it: {}", io::Error::from(e)),
                })
            }
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| RunDirError {
            path: path.clone(),
            why: format!("cannot stat it: {}", io::Error::from(e)),
        })?;
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != me {
            return Err(RunDirError {
                path,
                why: format!(
                    "is owned by uid {}, not by the user the loader runs as (uid {me})",
                    stat.st_uid
                ),
            });
        }
        Ok(RunDir { fd, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name`'s path, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens `name` with `flags` added to `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, and returns it
    /// only if it is a regular file (on which O_NONBLOCK changes nothing, so it stays).
    fn open_regular(&self, name: &str, flags: OFlags) -> io::Result<File> {
        self.open_regular_stat(name, flags).map(|(file, _)| file)
    }

    /// [`Self::open_regular`], with the opened file's size.
    fn open_regular_stat(&self, name: &str, flags: OFlags) -> io::Result<(File, u64)> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(FILE_MODE))
            .map_err(|e| match e {
                Errno::LOOP => not_regular(&self.join(name), "a symlink"),
                // A FIFO opened for writing without a reader, or a socket.
                Errno::NXIO => not_regular(&self.join(name), "not a regular file"),
                e => e.into(),
            })?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(not_regular(&self.join(name), "not a regular file"));
        }
        Ok((File::from(fd), stat.st_size as u64))
    }

    /// Whether `name` is a regular file holding exactly `data` (one open, one read): what is
    /// already right need not be written again.
    pub fn holds(&self, name: &str, data: &[u8]) -> bool {
        let Ok((mut file, size)) = self.open_regular_stat(name, OFlags::RDONLY) else {
            return false;
        };
        let mut found = vec![0; data.len()];
        size == data.len() as u64
            && io::Read::read_exact(&mut file, &mut found).is_ok()
            && found == data
    }

    /// Reads `name` if it is a regular file of at most `max` bytes; `None` when it is missing.
    pub fn read(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open_regular(name, OFlags::RDONLY) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        bounded::read(&file, max).map(Some)
    }

    /// Opens `name` for reading if it is a regular file; `None` when it is missing.
    pub fn open_read(&self, name: &str) -> io::Result<Option<File>> {
        match self.open_regular(name, OFlags::RDONLY) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens `name` for a lock, making it when missing.
    pub fn lock_file(&self, name: &str) -> io::Result<File> {
        self.open_regular(name, OFlags::WRONLY | OFlags::CREATE)
    }

    /// A new, empty `name` for writing (`O_EXCL`): a stale one (or a symlink or FIFO planted in
    /// its place) is removed, and whatever is found in its place after that is not opened.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        match self.create_exclusive(name) {
            // Usually there is none: the last one was renamed into place.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(name)?;
                self.create_exclusive(name)
            }
            created => created,
        }
    }

    /// Makes `name` a new regular file, or fails: with `O_CREAT | O_EXCL` whatever is there (a
    /// symlink included, which is not followed) makes the open fail, so what opens is the file
    /// just made, and needs no check.
    fn create_exclusive(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(FILE_MODE))?;
        Ok(File::from(fd))
    }

    /// The names of the regular files in the directory, as its entries tell (one read of it,
    /// through its handle): an entry of a file system that does not tell the type is left out.
    pub fn regular_files(&self) -> io::Result<HashSet<Vec<u8>>> {
        let mut names = HashSet::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            if entry.file_type() == FileType::RegularFile {
                names.insert(entry.file_name().to_bytes().to_vec());
            }
        }
        Ok(names)
    }

    /// Replaces `name` with `data`, written to `partial` first, so that a reader sees the old
    /// file or the new one, never half of one.
    pub fn replace(&self, name: &str, partial: &str, data: &[u8]) -> io::Result<()> {
        let mut file = self.create_new(partial)?;
        file.write_all(data)?;
        drop(file);
        self.rename(partial, name)
    }

    /// Renames `from` over `to`; a symlink or FIFO at `to` is replaced, never followed.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Removes `name` (never a directory); a missing one is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Which file `name` is now (device, inode), without following a symlink.
    #[allow(clippy::unnecessary_cast)] // the field types differ between architectures
    pub fn identity(&self, name: &str) -> Option<(u64, u64)> {
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some((stat.st_dev as u64, stat.st_ino as u64))
    }
}

/// Which file `file` is (device, inode).
#[allow(clippy::unnecessary_cast)] // the field types differ between architectures
pub fn identity(file: &File) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(file)?;
    Ok((stat.st_dev as u64, stat.st_ino as u64))
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}; refusing to use it", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("cl-rundir-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn fifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn makes_a_missing_run_directory_and_its_parents() {
        let s = Scratch::new("make");
        let run = RunDir::open(&s.0.join("a/b")).unwrap();
        assert!(s.0.join("a/b").is_dir());
        run.subdir("images").unwrap();
        assert!(s.0.join("a/b/images").is_dir());
    }

    #[test]
    fn refuses_a_run_directory_or_images_that_is_a_symlink() {
        let s = Scratch::new("symlink");
        fs::create_dir(s.0.join("elsewhere")).unwrap();
        symlink("elsewhere", s.0.join("run")).unwrap();
        let err = RunDir::open(&s.0.join("run")).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        fs::create_dir(s.0.join("real")).unwrap();
        symlink("../elsewhere", s.0.join("real/images")).unwrap();
        let run = RunDir::open(&s.0.join("real")).unwrap();
        let err = run.subdir("images").unwrap_err().to_string();
        assert!(err.contains("real/images: is not a directory"), "{err}");
    }

    #[test]
    fn never_writes_through_a_planted_symlink() {
        let s = Scratch::new("planted");
        fs::write(s.0.join("victim"), b"keep").unwrap();
        let run = RunDir::open(&s.0.join("run")).unwrap();
        symlink("../victim", s.0.join("run/out.partial")).unwrap();
        symlink("../victim", s.0.join("run/out")).unwrap();
        run.replace("out", "out.partial", b"new").unwrap();
        assert_eq!(fs::read(s.0.join("victim")).unwrap(), b"keep");
        assert_eq!(fs::read(s.0.join("run/out")).unwrap(), b"new");
        symlink("../victim", s.0.join("run/lock")).unwrap();
        let err = run.lock_file("lock").unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");
    }

    #[test]
    fn never_blocks_on_a_planted_fifo() {
        let s = Scratch::new("fifo");
        let run = RunDir::open(&s.0.join("run")).unwrap();
        fifo(&s.0.join("run/status.json"));
        fifo(&s.0.join("run/x.lock"));
        let started = Instant::now();
        assert!(run.read("status.json", 1 << 20).is_err());
        assert!(run.lock_file("x.lock").is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
