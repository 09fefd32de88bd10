//! Finding an entry's archive inside its images directory, and nowhere else.
//!
//! The loader runs as root and may delete what it loaded, so an archive name from the list is
//! only ever a plain file name inside the images directory: no absolute path, no `/`, no `..`,
//! and no symlink that resolves outside the directory. The check is made on the resolved path
//! right before the file is opened and again right before it is deleted.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::decode::{self, Decoder, Format};

#[derive(Debug)]
pub enum ArchiveError {
    NotPlainName { name: String, dir: PathBuf },
    NotFound { name: String, dir: PathBuf },
    Outside { name: String, dir: PathBuf },
    NotRegular { name: String },
    UnknownFormat { name: String },
    Io { name: String, source: io::Error },
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
                "archive {name} resolves outside {}; refusing to read it",
                dir.display()
            ),
            ArchiveError::NotRegular { name } => write!(f, "archive {name} is not a regular file"),
            ArchiveError::UnknownFormat { name } => write!(
                f,
                "archive {name} is not zstd, gzip, xz or tar (by its first bytes)"
            ),
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

/// The checked path of archive `name` in `dir`: the name as the list gives it (a symlink stays
/// a symlink) after making sure it resolves to a regular file inside `dir`.
pub fn locate(dir: &Path, name: &str) -> Result<PathBuf, ArchiveError> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    if !plain {
        return Err(ArchiveError::NotPlainName {
            name: name.to_owned(),
            dir: dir.to_owned(),
        });
    }
    let path = dir.join(name);
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => ArchiveError::NotFound {
            name: name.to_owned(),
            dir: dir.to_owned(),
        },
        _ => ArchiveError::Io {
            name: name.to_owned(),
            source,
        },
    };
    let real = fs::canonicalize(&path).map_err(io_err)?;
    let real_dir = fs::canonicalize(dir).map_err(io_err)?;
    if !real.starts_with(&real_dir) {
        return Err(ArchiveError::Outside {
            name: name.to_owned(),
            dir: dir.to_owned(),
        });
    }
    if real == real_dir || !fs::metadata(&real).map_err(io_err)?.is_file() {
        return Err(ArchiveError::NotRegular {
            name: name.to_owned(),
        });
    }
    Ok(path)
}

/// An archive opened for reading, its format known.
pub struct Archive {
    pub size: u64,
    pub format: Format,
    head: Vec<u8>,
    file: File,
}

impl Archive {
    pub fn open(dir: &Path, name: &str) -> Result<Archive, ArchiveError> {
        let path = locate(dir, name)?;
        let io_err = |source| ArchiveError::Io {
            name: name.to_owned(),
            source,
        };
        let mut file = File::open(&path).map_err(io_err)?;
        // The opened file, not the path, decides: the path could have changed since `locate`.
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(ArchiveError::NotRegular {
                name: name.to_owned(),
            });
        }
        let (head, format) = decode::peek(&mut file).map_err(io_err)?;
        let format = format.ok_or_else(|| ArchiveError::UnknownFormat {
            name: name.to_owned(),
        })?;
        Ok(Archive {
            size: meta.len(),
            format,
            head,
            file,
        })
    }

    /// The opened file, for reads that leave its position alone (`FileExt::read_at`).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn decoder(self, memory_limit: u64) -> Decoder {
        decode::decoder(self.format, self.head, self.file, memory_limit)
    }
}

/// Deletes archive `name` from `dir` after checking, once more, that it is ours to delete.
pub fn delete(dir: &Path, name: &str) -> Result<(), ArchiveError> {
    let path = locate(dir, name)?;
    fs::remove_file(&path).map_err(|source| ArchiveError::Io {
        name: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
        assert!(delete(&s.images(), "a.zst").is_err());
        assert!(s.0.join("secret").exists());
    }

    #[test]
    fn follows_a_symlink_that_stays_inside_the_images_dir() {
        let s = Scratch::new("inside");
        fs::write(s.images().join("real.zst"), b"x").unwrap();
        symlink("real.zst", s.images().join("link.zst")).unwrap();
        assert_eq!(
            locate(&s.images(), "link.zst").unwrap(),
            s.images().join("link.zst")
        );
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
    fn refuses_a_file_of_unknown_format() {
        let s = Scratch::new("format");
        fs::write(s.images().join("x.zip"), b"PK\x03\x04 not an image").unwrap();
        let err = Archive::open(&s.images(), "x.zip")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not zstd, gzip, xz or tar"), "{err}");
    }
}
