//! Upstream Isar as its users run it, for tests/isar_parse.rs and tests/isar_build.rs: the
//! snapshot in ../shared/isar/ unpacked, a checkout of this repository's layer beside it, build
//! directories with the layer first, last or absent in BBLAYERS, and bitbake run by an
//! unprivileged build user (Isar builds with sudo and sbuild, and fails as root).
//!
//! Each test site lives in a directory of its own under the work directory, which the build
//! user owns: a clone of this repository may sit where that user cannot read (under /root).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::require_root;
use crate::device::run_ok;

/// The Isar snapshot, relative to the repository: CI has ../shared/ beside its clone.
/// $CONTAINER_LOADER_ISAR_TARBALL names another one.
const TARBALL_DEFAULT: &str = "../shared/isar/isar-b90b722f.tar.gz";
/// Where the sites are: outside the repository, readable by the build user.
/// $CONTAINER_LOADER_ISAR_WORK names another directory.
const WORK_DEFAULT: &str = "/var/tmp/container-loader-isar";
/// The build user `make isar-deps` creates: passwordless sudo, group sbuild, as Isar's user
/// manual asks.
pub const BUILDER: &str = "isarbuild";
/// The parts of this repository a checkout of the layer needs: the layer, and the units its
/// classes make an image package's unit of (isar/../systemd).
const CHECKOUT_PARTS: &[&str] = &["isar", "systemd"];
/// Where `make deb` leaves the loader's packages, in the repository and in a checkout.
const DEB_DIR: &str = "dist/deb";
/// The build host's container-loader with pack (`make pack-tool`), in the repository and in a
/// checkout: where the classes look for it (CONTAINER_LOADER_PACK_BIN's default).
const PACK_TOOL: &str = "dist/container-loader-pack";
/// The tests' own layer (two image packages and a probe), relative to the repository.
const TEST_LAYER: &str = "tests/isar/layer";
/// Bitbake's environment: a clean one, with the locale bitbake insists on.
const BUILDER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LOCALE: &str = "en_US.UTF-8";

pub fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Isar snapshot; a test without it fails and names the file it looked for.
pub fn tarball() -> PathBuf {
    let path = match std::env::var_os("CONTAINER_LOADER_ISAR_TARBALL") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => project(TARBALL_DEFAULT),
    };
    assert!(
        path.is_file(),
        "{}: no Isar snapshot there (the tests need upstream Isar with its bitbake; \
         set CONTAINER_LOADER_ISAR_TARBALL to another copy)",
        path.display()
    );
    path
}

/// Where the site `name` is (`Site::fresh` makes it).
pub fn site_dir(name: &str) -> PathBuf {
    work_root().join(name)
}

fn work_root() -> PathBuf {
    match std::env::var_os("CONTAINER_LOADER_ISAR_WORK") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(WORK_DEFAULT),
    }
}

/// One test site: Isar unpacked, a checkout of this layer (and of the tests' layer), and the
/// build directories made in it, under WORK/NAME, made afresh.
pub struct Site {
    root: PathBuf,
}

impl Site {
    /// WORK/`name`, emptied, with Isar and the checkouts in it, owned by the build user.
    pub fn fresh(name: &str) -> Site {
        require_root();
        let tarball = tarball();
        let known = Command::new("id")
            .args(["-u", BUILDER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(known, "no build user {BUILDER} (make isar-deps creates it)");
        let root = site_dir(name);
        if root.exists() {
            // --one-file-system: never into a mount a failed build left behind.
            run_ok(
                Command::new("rm")
                    .arg("-rf")
                    .arg("--one-file-system")
                    .arg(&root),
            );
        }
        fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root),
        );
        assert!(
            root.join("isar/isar-init-build-env").is_file(),
            "{}: no isar/isar-init-build-env inside",
            tarball.display()
        );
        let checkout = root.join("container-loader");
        fs::create_dir_all(&checkout).unwrap();
        for part in CHECKOUT_PARTS {
            run_ok(
                Command::new("cp")
                    .arg("-a")
                    .arg(project(part))
                    .arg(&checkout),
            );
        }
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(project(TEST_LAYER))
                .arg(root.join("isar-test-layer")),
        );
        let site = Site { root };
        site.give_to_builder();
        site
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn isar(&self) -> PathBuf {
        self.root.join("isar")
    }

    /// Isar's own layers, in the order its bblayers.conf.sample lists them.
    pub fn isar_layers(&self) -> Vec<PathBuf> {
        vec![self.isar().join("meta"), self.isar().join("meta-isar")]
    }

    /// This repository's layer, in the checkout.
    pub fn layer(&self) -> PathBuf {
        self.root.join("container-loader/isar")
    }

    pub fn test_layer(&self) -> PathBuf {
        self.root.join("isar-test-layer")
    }

    /// The checkout's dist/deb/ with the .debs `make deb` built in this repository, as after
    /// `make deb` in the checkout.
    pub fn add_debs(&self) {
        let from = project(DEB_DIR);
        let to = self.root.join("container-loader").join(DEB_DIR);
        fs::create_dir_all(&to).unwrap();
        let mut found = 0;
        for entry in fs::read_dir(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "deb") {
                fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
                found += 1;
            }
        }
        assert!(
            found >= 3,
            "{}: {found} .debs (make deb builds three)",
            from.display()
        );
        self.give_to_builder();
    }

    /// The checkout's dist/container-loader-pack, as after `make pack-tool` in the checkout.
    pub fn add_pack_tool(&self) {
        let from = project(PACK_TOOL);
        assert!(
            from.is_file(),
            "{}: missing (make pack-tool builds it)",
            from.display()
        );
        let to = self.root.join("container-loader").join(PACK_TOOL);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        // fs::copy keeps the mode: the classes run it.
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        self.give_to_builder();
    }

    /// A build directory `name` with `layers` in BBLAYERS, and Isar's local.conf.sample (its
    /// default multiconfigs) or `local_conf` as conf/local.conf.
    pub fn build_dir(&self, name: &str, layers: &[PathBuf], local_conf: LocalConf) -> BuildDir {
        let dir = self.root.join(name);
        fs::create_dir_all(dir.join("conf")).unwrap();
        let sample = self.isar().join("meta-isar/conf/local.conf.sample");
        let local = match local_conf {
            LocalConf::Sample => {
                fs::read_to_string(&sample).unwrap_or_else(|e| panic!("{}: {e}", sample.display()))
            }
            LocalConf::Text(text) => text,
        };
        fs::write(dir.join("conf/local.conf"), local).unwrap();
        let layers: Vec<String> = layers
            .iter()
            .map(|l| format!("  {} \\\n", l.display()))
            .collect();
        let bblayers = format!(
            "LCONF_VERSION = \"6\"\n\nBBPATH = \"${{TOPDIR}}\"\nBBFILES ?= \"\"\n\n\
             BBLAYERS ?= \" \\\n{}  \"\n",
            layers.concat()
        );
        fs::write(dir.join("conf/bblayers.conf"), bblayers).unwrap();
        self.give_to_builder();
        BuildDir {
            dir,
            isar: self.isar(),
        }
    }

    fn give_to_builder(&self) {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{BUILDER}:{BUILDER}"))
                .arg(&self.root),
        );
    }
}

/// What a build directory's conf/local.conf holds.
pub enum LocalConf {
    /// Isar's meta-isar/conf/local.conf.sample, as isar-init-build-env copies it for a new user.
    Sample,
    Text(String),
}

pub struct BuildDir {
    dir: PathBuf,
    isar: PathBuf,
}

impl BuildDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `bitbake ARGS` in this build directory, as the build user, after Isar's
    /// isar-init-build-env; its exit code and output, whatever they are.
    pub fn bitbake(&self, args: &[&str]) -> Bitbake {
        let home = format!("/home/{BUILDER}");
        let out = Command::new("runuser")
            .args(["-u", BUILDER, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .arg(format!("USER={BUILDER}"))
            .arg(format!("LOGNAME={BUILDER}"))
            .arg(format!("PATH={BUILDER_PATH}"))
            .arg(format!("LANG={LOCALE}"))
            .arg(format!("LC_ALL={LOCALE}"))
            .args([
                "bash",
                "-c",
                r#"cd "$1" && . ./isar-init-build-env "$2" >/dev/null && shift 2 && exec bitbake "$@""#,
                "bash",
            ])
            .arg(&self.isar)
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run bitbake as {BUILDER}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Bitbake {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            text,
        }
    }

    /// `bitbake ARGS`, which must succeed.
    pub fn bitbake_ok(&self, args: &[&str]) -> Bitbake {
        let run = self.bitbake(args);
        assert_eq!(run.code, 0, "{run:?}");
        run
    }
}

/// One bitbake run: what it was asked, its exit code and everything it printed.
pub struct Bitbake {
    pub args: Vec<String>,
    pub code: i32,
    pub text: String,
}

impl std::fmt::Debug for Bitbake {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "bitbake {} exited {}:\n{}",
            self.args.join(" "),
            self.code,
            self.text
        )
    }
}

impl Bitbake {
    /// The lines bitbake prints as warnings or errors.
    pub fn complaints(&self) -> Vec<&str> {
        self.text
            .lines()
            .filter(|l| l.starts_with("WARNING:") || l.starts_with("ERROR:"))
            .collect()
    }

    /// Asserts a parse that succeeded with 0 errors and no warning: returns its summary line
    /// ("Parsing of N .bb files complete ...").
    pub fn assert_clean_parse(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        assert_eq!(self.complaints(), Vec::<&str>::new(), "{self:?}");
        let summary = self
            .text
            .lines()
            .find(|l| l.starts_with("Parsing of "))
            .unwrap_or_else(|| panic!("no parse summary: {self:?}"));
        assert!(summary.ends_with(" 0 errors."), "{summary}");
        summary
    }

    /// A variable's value as `bitbake -e` prints it (`NAME="value"`).
    pub fn var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=\"");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim_end_matches('"').to_string())
    }

    /// A variable `bitbake -e` must print.
    pub fn var_ok(&self, name: &str) -> String {
        self.var(name)
            .unwrap_or_else(|| panic!("bitbake -e printed no {name}: {self:?}"))
    }
}
