//! Finding an entry's archive inside its images directory, and nowhere else.
//!
//! The loader runs as root and may delete what it loaded, so an archive name from the list is
//! only ever a plain file name inside the images directory: no absolute path, no `/`, no `..`.
//! The directory is opened once per use, and everything after that goes through its handle,
//! never through a path again: the archive is opened by name with `O_NOFOLLOW | O_NONBLOCK`
//! and the opened file itself must be a regular file, so neither a symlink nor a FIFO swapped in
//! after a check (nor the directory itself replaced by a symlink) can redirect the read or block
//! it; a deletion unlinks the name in that same directory, and only while it still names the
//! file that was loaded. A symlink is followed one level, and only to a plain name in the same
//! directory (`link.tar.zst -> real.tar.zst`), which is then opened with `O_NOFOLLOW` too; a
//! deletion removes such a link, never its target.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::input::format::{self, Foreign, Format, NotOurs};

#[derive(Debug)]
pub enum ArchiveError {
    NotPlainName {
        name: String,
        dir: PathBuf,
    },
    NotFound {
        name: String,
        dir: PathBuf,
    },
    Outside {
        name: String,
        dir: PathBuf,
    },
    NotRegular {
        name: String,
    },
    /// The name stood for another file when it was used than when it was checked.
    Changed {
        name: String,
        dir: PathBuf,
    },
    /// None of the loader's formats; `foreign` names the compression when its first bytes do.
    UnknownFormat {
        name: String,
        foreign: Option<Foreign>,
    },
    Io {
        name: String,
        source: io::Error,
    },
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::NotPlainName { name, dir } => write!(
                f,
                "archive name \"{}\" must be a plain file name inside {}; fix the list",
                name.escape_debug(),
                dir.display()
            ),
            ArchiveError::NotFound { name, dir } => write!(
                f,
                "archive {name} not found in {}; was it deleted or never installed?",
                dir.display()
            ),
            ArchiveError::Outside { name, dir } => write!(
                f,
                "archive {name} resolves outside {} (a symlink may only name a file beside it); refusing to read it",
                dir.display()
            ),
            ArchiveError::NotRegular { name } => write!(f, "archive {name} is not a regular file"),
            ArchiveError::Changed { name, dir } => write!(
                f,
                "archive {name} in {} changed while it was used (replaced by a symlink or another file?); left alone, check who writes there",
                dir.display()
            ),
            ArchiveError::UnknownFormat { name, foreign } => {
                write!(f, "archive {name} is {}", NotOurs(*foreign))
            }
            ArchiveError::Io { name, source } => write!(f, "cannot read archive {name}: {source}"),
        }
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArchiveError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A plain file name: no `/`, not empty, not `.` or `..`.
fn plain(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

/// The images directory, opened once; every name below is looked up through this handle.
struct Dir<'a> {
    fd: BorrowedFd<'a>,
    path: &'a Path,
}

/// Opens the images directory `path` for archive `name`, which must be a plain file name.
fn open_dir(path: &Path, name: &str) -> Result<OwnedFd, ArchiveError> {
    if !plain(name.as_bytes()) {
        return Err(ArchiveError::NotPlainName {
            name: name.to_owned(),
            dir: path.to_owned(),
        });
    }
    open_images(path).map_err(|e| dir_error(path, name, e))
}

/// How an archive is opened. O_NONBLOCK: a FIFO swapped in after a check must not block the
/// open (it would, forever, while the engine lock is held); O_NOFOLLOW: nor may a symlink
/// redirect it. O_NONBLOCK changes nothing on a regular file.
const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

fn open_images(path: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
}

/// Why archive `name` cannot be looked for in `path`, which could not be opened.
fn dir_error(path: &Path, name: &str, e: Errno) -> ArchiveError {
    match e {
        Errno::NOENT => ArchiveError::NotFound {
            name: name.to_owned(),
            dir: path.to_owned(),
        },
        e => ArchiveError::Io {
            name: name.to_owned(),
            source: io::Error::new(
                io::Error::from(e).kind(),
                format!("opening {}: {e}", path.display()),
            ),
        },
    }
}

impl Dir<'_> {
    fn io_err(&self, name: &str, e: Errno) -> ArchiveError {
        match e {
            Errno::NOENT => ArchiveError::NotFound {
                name: name.to_owned(),
                dir: self.path.to_owned(),
            },
            e => ArchiveError::Io {
                name: name.to_owned(),
                source: e.into(),
            },
        }
    }

    fn stat(&self, name: &str, entry: &CString) -> Result<Stat, ArchiveError> {
        rustix::fs::statat(self.fd, entry.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io_err(name, e))
    }

    /// The entry that `name` stands for: itself, or the plain name its symlink points to;
    /// and that entry's status, which must be a regular file's.
    fn resolve(&self, name: &str) -> Result<(CString, Stat), ArchiveError> {
        let own = CString::new(name).map_err(|_| ArchiveError::NotPlainName {
            name: name.to_owned(),
            dir: self.path.to_owned(),
        })?;
        let stat = self.stat(name, &own)?;
        let (entry, stat) = match kind(&stat) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(self.fd, own.as_c_str(), Vec::new())
                    .map_err(|e| self.io_err(name, e))?;
                if !plain(target.as_bytes()) {
                    return Err(ArchiveError::Outside {
                        name: name.to_owned(),
                        dir: self.path.to_owned(),
                    });
                }
                let stat = self.stat(name, &target)?;
                (target, stat)
            }
            _ => (own, stat),
        };
        match kind(&stat) {
            FileType::RegularFile => Ok((entry, stat)),
            // A link to a link: only one level is followed.
            FileType::Symlink => Err(ArchiveError::Outside {
                name: name.to_owned(),
                dir: self.path.to_owned(),
            }),
            _ => Err(ArchiveError::NotRegular {
                name: name.to_owned(),
            }),
        }
    }

    /// Opens the regular file `name` stands for (see `resolve`) and returns it with its status.
    fn open(&self, name: &str) -> Result<(OwnedFd, Stat), OpenFailed> {
        // The usual archive, a regular file by that very name, is opened at once: the same
        // open and check as below, one `fstatat` fewer per entry of every run.
        if let Some(opened) = self.open_plain(name) {
            return Ok(opened);
        }
        let (entry, _) = self.resolve(name).map_err(OpenFailed::Resolve)?;
        self.open_resolved(name, &entry).map_err(OpenFailed::Open)
    }

    /// `name` opened, if it is a regular file itself (not a link); `None` otherwise, for
    /// `resolve` to say what it is.
    fn open_plain(&self, name: &str) -> Option<(OwnedFd, Stat)> {
        let own = CString::new(name).ok()?;
        let fd = rustix::fs::openat(self.fd, own.as_c_str(), OPEN_FLAGS, Mode::empty()).ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        (kind(&stat) == FileType::RegularFile).then_some((fd, stat))
    }

    /// Opens `entry`, what `resolve` found `name` to stand for, if it still is a regular file.
    fn open_resolved(&self, name: &str, entry: &CString) -> Result<(OwnedFd, Stat), ArchiveError> {
        let io_err = |source: io::Error| ArchiveError::Io {
            name: name.to_owned(),
            source,
        };
        let fd = rustix::fs::openat(self.fd, entry.as_c_str(), OPEN_FLAGS, Mode::empty()).map_err(
            |e| match e {
                Errno::LOOP | Errno::NOENT => ArchiveError::Changed {
                    name: name.to_owned(),
                    dir: self.path.to_owned(),
                },
                e => io_err(e.into()),
            },
        )?;
        // The opened file decides, not what `resolve` saw.
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_err(e.into()))?;
        if kind(&stat) != FileType::RegularFile {
            return Err(ArchiveError::NotRegular {
                name: name.to_owned(),
            });
        }
        Ok((fd, stat))
    }
}

/// Why [`Dir::open`] failed, by its step: `name` stands for no regular file in the directory
/// (`resolve`), or what it stood for could not be opened as one (it changed, or the open
/// failed). A status row tells the two apart; a load only says why.
enum OpenFailed {
    Resolve(ArchiveError),
    Open(ArchiveError),
}

impl From<OpenFailed> for ArchiveError {
    fn from(failed: OpenFailed) -> ArchiveError {
        match failed {
            OpenFailed::Resolve(e) | OpenFailed::Open(e) => e,
        }
    }
}

fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Which file it is: device and inode.
#[allow(clippy::unnecessary_cast)] // the field types differ between architectures
fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

/// Checks that archive `name` in `dir` is a regular file there (itself, or through a symlink
/// to a plain name beside it) and returns its path, for messages only: it is not opened.
pub fn locate(dir: &Path, name: &str) -> Result<PathBuf, ArchiveError> {
    let fd = open_dir(dir, name)?;
    Dir {
        fd: fd.as_fd(),
        path: dir,
    }
    .resolve(name)?;
    Ok(dir.join(name))
}

/// What a row shows of an archive (`status`, `status.json`).
#[derive(Debug)]
pub enum Look {
    /// It opened: its format, told by its first bytes, and its size.
    Opened { format: Format, size: u64 },
    /// It is there (a regular file, or a link to one beside it), but cannot be used.
    Unusable(ArchiveError),
    /// It is not there, or not as an archive may be.
    Absent(ArchiveError),
}

/// The images directories of a run, each opened once: the rows of a run's entries are looked
/// up through these handles, with the checks of [`Archive::open`] (the name resolved without
/// following more than a link beside it, the opened file a regular one) and one read of the
/// first bytes, instead of walking each directory's path again for every entry.
#[derive(Default)]
pub struct Directories {
    open: Vec<(PathBuf, Result<OwnedFd, Errno>)>,
}

impl Directories {
    /// What archive `name` in `dir` is now.
    pub fn look(&mut self, dir: &Path, name: &str) -> Look {
        if !plain(name.as_bytes()) {
            return Look::Absent(ArchiveError::NotPlainName {
                name: name.to_owned(),
                dir: dir.to_owned(),
            });
        }
        // A run's entries come list by list, each list's from one directory.
        let at = match self.open.iter().rposition(|(path, _)| path == dir) {
            Some(at) => at,
            None => {
                self.open.push((dir.to_owned(), open_images(dir)));
                self.open.len() - 1
            }
        };
        let fd = match &self.open[at].1 {
            Ok(fd) => fd,
            Err(e) => return Look::Absent(dir_error(dir, name, *e)),
        };
        let images = Dir {
            fd: fd.as_fd(),
            path: dir,
        };
        let (fd, stat) = match images.open(name) {
            Ok(opened) => opened,
            Err(OpenFailed::Resolve(e)) => return Look::Absent(e),
            Err(OpenFailed::Open(e)) => return Look::Unusable(e),
        };
        // O_NONBLOCK stays set: it changes nothing on a regular file.
        let (head, format) = match format::peek(&mut File::from(fd)) {
            Ok(peeked) => peeked,
            Err(source) => {
                return Look::Unusable(ArchiveError::Io {
                    name: name.to_owned(),
                    source,
                })
            }
        };
        match format {
            Some(format) => Look::Opened {
                format,
                size: stat.st_size as u64,
            },
            None => Look::Unusable(ArchiveError::UnknownFormat {
                name: name.to_owned(),
                foreign: format::foreign(&head),
            }),
        }
    }
}

/// An archive opened for reading, its format known.
pub struct Archive {
    pub size: u64,
    pub format: Format,
    head: Vec<u8>,
    file: File,
    origin: Origin,
}

/// Where an opened archive came from: enough to delete exactly it later, and nothing else.
pub struct Origin {
    dir: OwnedFd,
    dir_path: PathBuf,
    name: String,
    identity: (u64, u64),
    /// Held open so that its inode number cannot be reused by another file before `delete`.
    _file: Option<File>,
}

impl Archive {
    pub fn open(dir: &Path, name: &str) -> Result<Archive, ArchiveError> {
        let dir_fd = open_dir(dir, name)?;
        let images = Dir {
            fd: dir_fd.as_fd(),
            path: dir,
        };
        let (fd, stat) = images.open(name)?;
        let io_err = |source: io::Error| ArchiveError::Io {
            name: name.to_owned(),
            source,
        };
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| io_err(e.into()))?;
        let mut file = File::from(fd);
        let (head, format) = format::peek(&mut file).map_err(io_err)?;
        let format = format.ok_or_else(|| ArchiveError::UnknownFormat {
            name: name.to_owned(),
            foreign: format::foreign(&head),
        })?;
        Ok(Archive {
            size: stat.st_size as u64,
            format,
            head,
            file,
            origin: Origin {
                dir: dir_fd,
                dir_path: dir.to_owned(),
                name: name.to_owned(),
                identity: identity(&stat),
                _file: None,
            },
        })
    }

    /// The archive's name in its images directory.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// The opened file, for reads that leave its position alone (`FileExt::read_at`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The archive's format, the first bytes already read from it, and the file past them, for
    /// the decoder.
    pub fn into_parts(self) -> (Format, Vec<u8>, File) {
        (self.format, self.head, self.file)
    }

    /// Where the archive came from, kept past `decoder` for a deletion after the load.
    pub fn origin(&self) -> Result<Origin, ArchiveError> {
        let dir = self
            .origin
            .dir
            .try_clone()
            .map_err(|source| ArchiveError::Io {
                name: self.origin.name.clone(),
                source,
            })?;
        let file = self.file.try_clone().map_err(|source| ArchiveError::Io {
            name: self.origin.name.clone(),
            source,
        })?;
        Ok(Origin {
            dir,
            dir_path: self.origin.dir_path.clone(),
            name: self.origin.name.clone(),
            identity: self.origin.identity,
            _file: Some(file),
        })
    }
}

impl Origin {
    /// Deletes the archive's name from the directory it was opened in, if that name still
    /// stands for the file that was opened. A symlink entry is deleted as the link; its target
    /// stays.
    pub fn delete(&self) -> Result<(), ArchiveError> {
        let images = Dir {
            fd: self.dir.as_fd(),
            path: &self.dir_path,
        };
        let (_, stat) = images.resolve(&self.name)?;
        if identity(&stat) != self.identity {
            return Err(ArchiveError::Changed {
                name: self.name.clone(),
                dir: self.dir_path.clone(),
            });
        }
        rustix::fs::unlinkat(images.fd, self.name.as_str(), AtFlags::empty())
            .map_err(|e| images.io_err(&self.name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("cl-archive-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(p.join("images")).unwrap();
            Scratch(p)
        }
        fn images(&self) -> PathBuf {
            self.0.join("images")
        }
        /// A tar (its format is told by `ustar` at offset 257), so that it opens.
        fn tar(&self, name: &str) -> PathBuf {
            let mut data = vec![0u8; 1024];
            data[257..262].copy_from_slice(b"ustar");
            let p = self.images().join(name);
            fs::write(&p, data).unwrap();
            p
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn refuses_names_that_are_not_plain_file_names() {
        let s = Scratch::new("plain");
        for name in ["", ".", "..", "../x.zst", "/etc/passwd", "sub/x.zst"] {
            let err = locate(&s.images(), name).unwrap_err();
            assert!(
                matches!(err, ArchiveError::NotPlainName { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn refuses_a_symlink_that_resolves_outside_the_images_dir() {
        let s = Scratch::new("outside");
        fs::write(s.0.join("secret"), b"x").unwrap();
        symlink(s.0.join("secret"), s.images().join("a.zst")).unwrap();
        let err = locate(&s.images(), "a.zst").unwrap_err();
        assert!(err.to_string().contains("resolves outside"), "{err}");
        assert!(Archive::open(&s.images(), "a.zst").is_err());
        assert!(s.0.join("secret").exists());
    }

    #[test]
    fn follows_a_symlink_to_a_plain_name_beside_it() {
        let s = Scratch::new("inside");
        s.tar("real.tar");
        symlink("real.tar", s.images().join("link.tar")).unwrap();
        assert_eq!(
            locate(&s.images(), "link.tar").unwrap(),
            s.images().join("link.tar")
        );
        assert_eq!(
            Archive::open(&s.images(), "link.tar").ok().unwrap().format,
            Format::Tar
        );
    }

    #[test]
    fn refuses_a_symlink_to_a_symlink_or_through_the_directory() {
        let s = Scratch::new("chain");
        s.tar("real.tar");
        symlink("real.tar", s.images().join("one.tar")).unwrap();
        symlink("one.tar", s.images().join("two.tar")).unwrap();
        symlink("./real.tar", s.images().join("dotted.tar")).unwrap();
        for name in ["two.tar", "dotted.tar"] {
            let err = locate(&s.images(), name).unwrap_err().to_string();
            assert!(err.contains("resolves outside"), "{name}: {err}");
        }
    }

    #[test]
    fn tells_a_missing_archive_from_a_directory() {
        let s = Scratch::new("kinds");
        fs::create_dir(s.images().join("d.zst")).unwrap();
        let missing = locate(&s.images(), "nope.zst").unwrap_err().to_string();
        assert!(missing.contains("not found in"), "{missing}");
        let dir = locate(&s.images(), "d.zst").unwrap_err().to_string();
        assert!(dir.contains("not a regular file"), "{dir}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let s = Scratch::new("fifo");
        let fifo = s.images().join("f.tar");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = Instant::now();
        let err = Archive::open(&s.images(), "f.tar")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn refuses_a_file_of_unknown_format() {
        let s = Scratch::new("format");
        fs::write(s.images().join("x.zip"), b"PK\x03\x04 not an image").unwrap();
        let err = Archive::open(&s.images(), "x.zip")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not zstd, gzip, xz, bzip2 or tar"), "{err}");
    }

    #[test]
    fn deleting_a_symlink_entry_removes_the_link_and_keeps_its_target() {
        let s = Scratch::new("delete-link");
        let real = s.tar("real.tar");
        symlink("real.tar", s.images().join("link.tar")).unwrap();
        let origin = Archive::open(&s.images(), "link.tar")
            .ok()
            .unwrap()
            .origin()
            .ok()
            .unwrap();
        origin.delete().unwrap();
        assert!(fs::symlink_metadata(s.images().join("link.tar")).is_err());
        assert!(real.exists());
    }

    #[test]
    fn deletes_nothing_once_the_name_stands_for_another_file() {
        let s = Scratch::new("delete-swapped");
        let path = s.tar("a.tar");
        let origin = Archive::open(&s.images(), "a.tar")
            .ok()
            .unwrap()
            .origin()
            .ok()
            .unwrap();
        fs::remove_file(&path).unwrap();
        s.tar("other.tar");
        symlink("other.tar", &path).unwrap();
        let err = origin.delete().unwrap_err().to_string();
        assert!(err.contains("changed while it was used"), "{err}");
        assert!(fs::symlink_metadata(&path).is_ok());
    }

    #[test]
    fn deletes_in_the_directory_it_opened_even_if_the_path_now_leads_elsewhere() {
        let s = Scratch::new("delete-moved");
        s.tar("a.tar");
        let origin = Archive::open(&s.images(), "a.tar")
            .ok()
            .unwrap()
            .origin()
            .ok()
            .unwrap();
        // images/ swapped for a symlink to a directory holding a file of the same name.
        fs::rename(s.images(), s.0.join("moved")).unwrap();
        fs::create_dir(s.0.join("victim")).unwrap();
        fs::write(s.0.join("victim/a.tar"), b"keep").unwrap();
        symlink("victim", s.images()).unwrap();
        origin.delete().unwrap();
        assert!(!s.0.join("moved/a.tar").exists());
        assert_eq!(fs::read(s.0.join("victim/a.tar")).unwrap(), b"keep");
    }
}
