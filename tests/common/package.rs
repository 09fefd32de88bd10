//! Image packages as a root filesystem ships them: `DIR/image.list` and the archives in
//! `DIR/images/`.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// What an image package ships: `DIR/image.list` and the archives in `DIR/images/`.
pub struct Package {
    pub list: PathBuf,
    pub images: PathBuf,
    dir: TempDir,
}

impl Package {
    pub fn new() -> Package {
        let dir = TempDir::new("pkg");
        let images = dir.join("images");
        fs::create_dir_all(&images).unwrap();
        let list = dir.join("image.list");
        fs::write(&list, "").unwrap();
        Package { list, images, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The list path as a string, exactly as the tests pass it to `-l`.
    pub fn list_arg(&self) -> String {
        self.list.display().to_string()
    }

    /// Writes `data` as `images/<name>` and returns its path.
    pub fn add_archive(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.images.join(name);
        fs::write(&p, data).unwrap();
        p
    }

    /// Compresses `fixture` with `codec`, stores it as `images/<name>`, and returns the
    /// list line `<name> <reference>`.
    pub fn add(&self, name: &str, fixture: &Fixture, codec: Codec) -> String {
        self.add_archive(name, &fixture.compressed(codec));
        format!("{name} {}", fixture.reference)
    }

    /// Writes the list (one entry per line, newline-terminated).
    pub fn write_list(&self, lines: &[&str]) {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&self.list, text).unwrap();
    }

    /// A package of `n` zstd images, `example.org/{repo}{i}:1` in `{name}{i}.tar.zst` (`name`:
    /// the last part of `repo`), listed in that order.
    pub fn of_images(repo: &str, n: usize) -> (Package, Vec<Fixture>) {
        let pkg = Package::new();
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let fixtures: Vec<Fixture> = (0..n)
            .map(|i| Fixture::new(&format!("example.org/{repo}{i}:1")))
            .collect();
        let lines: Vec<String> = fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| pkg.add(&format!("{name}{i}.tar.zst"), f, Codec::Zstd))
            .collect();
        pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        (pkg, fixtures)
    }

    pub fn write_list_bytes(&self, data: &[u8]) {
        fs::write(&self.list, data).unwrap();
    }

    pub fn archive(&self, name: &str) -> PathBuf {
        self.images.join(name)
    }
}

impl Default for Package {
    fn default() -> Self {
        Package::new()
    }
}
