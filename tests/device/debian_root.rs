//! A copy of one of the Debian root filesystems `make roots` builds (target/roots/<suite>), in a
//! temporary directory, and commands run inside it: chrooted, with a clean environment, in a
//! private mount namespace with a /proc of its own (systemctl, systemd-analyze and the maintainer
//! scripts read it), so neither the cached roots nor this machine change. Packages are installed
//! by the root's own dpkg (tests/deb.rs, tests/image_package.rs).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, run_ok};
use crate::common::{in_private_mounts, require_root, TempDir};

/// Where `make roots` keeps the Debian root filesystems, relative to the project.
pub const ROOTS_DIR: &str = "target/roots";
/// PATH inside the root: Debian's default, /usr/local first (a test may put a stand-in there).
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where `make deb` writes the loader's packages, relative to the project.
pub const DEB_DIR: &str = "dist/deb";
/// Where a package is copied inside the root for dpkg to install it; removed afterwards.
const PACKAGES_IN_ROOT: &str = "tmp";

/// The loader's package for Debian architecture `arch`: the one container-loader_*_ARCH.deb
/// `make deb` left in dist/deb/.
pub fn loader_deb(arch: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEB_DIR);
    let found: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p: &PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("container-loader_") && name.ends_with(&format!("_{arch}.deb"))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: not one container-loader_*_{arch}.deb but {found:?}: run make deb",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

pub struct DebianRoot {
    _dir: TempDir,
    path: PathBuf,
}

impl DebianRoot {
    /// A copy of target/roots/`suite` (bookworm, trixie), removed with the value.
    pub fn copy_of(suite: &str) -> DebianRoot {
        require_root();
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(ROOTS_DIR)
            .join(suite);
        assert!(
            source.join("usr/bin/dpkg").is_file() && source.join("usr/bin/systemctl").exists(),
            "{}: no Debian root with systemd: run make roots",
            source.display()
        );
        let dir = TempDir::new(&format!("root-{suite}"));
        let path = dir.join("root");
        run_ok(Command::new("cp").arg("-a").arg(&source).arg(&path));
        DebianRoot { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// `args` (program first) run inside the root.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = in_private_mounts(
            r#"set -e; root=$1; shift; mount -t proc proc "$root/proc"; exec chroot "$root" "$@""#,
        );
        cmd.arg(&self.path)
            .args(["env", "-i", &format!("PATH={ROOT_PATH}"), "LC_ALL=C"])
            .args(args);
        cmd
    }

    /// `dpkg ARGS` inside the root, which must succeed; its output.
    pub fn dpkg(&self, args: &[&str]) -> String {
        let mut all = vec!["dpkg"];
        all.extend_from_slice(args);
        run_ok(&mut self.command(&all))
    }

    /// `dpkg OPTIONS -i` of a copy of `deb` placed in the root, which must succeed; dpkg's
    /// output (stdout and stderr).
    pub fn dpkg_install(&self, deb: &Path, options: &[&str]) -> String {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        let copy = self.path.join(PACKAGES_IN_ROOT).join(&name);
        fs::copy(deb, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", deb.display()));
        let inside = format!("/{PACKAGES_IN_ROOT}/{name}");
        let mut args = options.to_vec();
        args.extend(["-i", &inside]);
        let out = self.dpkg(&args);
        fs::remove_file(copy).unwrap();
        out
    }

    /// Every file, directory and link in the root (`PATH TYPE MODE LINK-TARGET`, PATH relative
    /// to the root), but for /proc (a mount point, empty outside the namespace) and the paths
    /// under `skip`.
    pub fn files(&self, skip: &[&str]) -> BTreeSet<String> {
        let out = run_ok(
            Command::new("find")
                .arg(".")
                .args([
                    "-path",
                    "./proc",
                    "-prune",
                    "-o",
                    "-printf",
                    "%P %y %m %l\\n",
                ])
                .current_dir(&self.path),
        );
        out.lines()
            .filter(|l| !l.is_empty() && !l.starts_with(' '))
            .filter(|l| {
                let path = l.split(' ').next().unwrap();
                !skip
                    .iter()
                    .any(|s| path == *s || path.starts_with(&format!("{s}/")))
            })
            .map(str::to_string)
            .collect()
    }

    /// Where `path` leads inside the root, every link followed there (`realpath -e`).
    pub fn resolve(&self, path: &str) -> String {
        let (code, out) = run(&mut self.command(&["realpath", "-e", path]));
        assert_eq!(code, 0, "realpath -e {path} in the root: {out}");
        out.trim().to_string()
    }
}
