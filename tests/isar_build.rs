//! An unchanged upstream-style recipe, built by a real Isar with this layer added, gives an
//! image whose boot loads its images with the loader. Upstream Isar's bitbake builds the tests'
//! image packages (tests/isar/layer: `inherit docker-loader` / `inherit podman-loader`,
//! `docker://` entries in SRC_URI) once with Isar's own classes and once with this layer, then
//! `isar-image-base` for qemuamd64 (Debian 12) with this layer's packages. qemu boots that
//! image four times on one disk:
//!
//! 1. the first boot loads the images with the loader; the applications ordered after the
//!    packages' units start;
//! 2. the second skips them; at its end the machine becomes one built with Isar's classes:
//!    their packages (Isar's script, zstd) replace this layer's, the loader's package is purged
//!    and the engines forget the images;
//! 3. Isar's script loads the images; at its end apt upgrades to this layer's packages;
//! 4. the loader skips what Isar's script loaded; the applications start.
//!
//! With the layer, an image package that sets CONTAINER_LOADER_PACK is built too (with the
//! checkout's dist/container-loader-pack, `make pack-tool`): its archive is the fetched tar,
//! layer-framed. It is not installed: the engine suites load packed archives.
//!
//! No registry is reached here: DL_DIR is seeded with the images under the docker fetcher's
//! names (`container-images/<arch>/<name>_<digest or tag>.zst` and its `.done` stamp), made as
//! the fetcher makes them (skopeo to a docker-archive, then zstd).
//!
//! Ignored by default (a full Isar build and four boots): `make isar-test` runs them, one at a
//! time. The build and each boot happen once per run, whichever test asks for them first.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;
mod isar;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use common::{pipe, require_program, Fixture};
use device::qemu::{self, Report};
use device::run_ok;
use isar::{BuildDir, LocalConf, Site};

/// The image packages, as the tests' layer names them, and what each ships.
const DOCKER_PKG: &str = "isar-test-docker-images";
const PODMAN_PKG: &str = "isar-test-podman-images";
/// Opts into this layer's xz recompression (CONTAINER_LOADER_COMPRESSION).
const XZ_PKG: &str = "isar-test-xz-images";
const APP: &str = "registry.example.com/isar-test/app:1";
const TOOLS: &str = "registry.example.com/isar-test/tools:2";
/// Opts into layer-framed archives (CONTAINER_LOADER_PACK); built with this layer only, not
/// installed: the engine suites load packed archives (loads::packed::).
const PACKED_PKG: &str = "isar-test-packed-images";
/// The zstd seekable format's footer magic, last in a layer-framed archive (little-endian).
const SEEKABLE_MAGIC: [u8; 4] = 0x8F92_EAB1_u32.to_le_bytes();
/// Each image package: its engine and the images it lists.
const PACKAGES: [(&str, &str, &[&str]); 3] = [
    (DOCKER_PKG, "docker", &[APP, TOOLS]),
    (PODMAN_PKG, "podman", &[APP]),
    (XZ_PKG, "podman", &[TOOLS]),
];
/// The packages whose recipes build the same package with Isar's classes: no opt-in of ours.
const AS_ISAR_BUILDS: [&str; 2] = [DOCKER_PKG, PODMAN_PKG];
/// The applications the probe package orders after the image packages' units.
const APP_DOCKER_UNIT: &str = "isar-test-app-docker.service";
const APP_PODMAN_UNIT: &str = "isar-test-app-podman.service";
/// The loader's package, as Isar's deploy step puts it into isar-apt, and its program.
const LOADER_PKG: &str = "container-loader";
const LOADER_BIN: &str = "/usr/bin/container-loader";
/// The image Isar builds, for its qemuamd64 machine on Debian 12.
const IMAGE: &str = "isar-image-base";
const IMAGE_NAME: &str = "isar-image-base-debian-bookworm-qemuamd64";
const DEPLOY_IMAGES: &str = "tmp/deploy/images/qemuamd64";
const ISAR_APT: &str = "tmp/deploy/isar-apt";
/// The docker fetcher's architecture directory in DL_DIR (container-images/<arch>/).
const FETCH_ARCH: &str = "amd64";
/// The root file system on the wic image's disk (sdimage-efi: boot, then root; its fstab names
/// /dev/sda1), and the label of the data disk the probe mounts.
const ROOT_DEVICE: &str = "/dev/sda2";
const DATA_LABEL: &str = "isar-test";
/// Room on the data disk beyond what is put on it: the reports.
const DATA_HEADROOM_MIB: u64 = 32;
/// Where the static busybox is (busybox-static): the program of the images the apps run.
const BUSYBOX: &str = "/bin/busybox";

/// The build's settings beside the machine and the layers. The image gets zstd (Isar's
/// package, installed on the machine between boots, depends on it); SBOM generation fetches
/// its tools from GitHub, which is not reached here.
const LOCAL_CONF: &str = r#"MACHINE = "qemuamd64"
DISTRO = "debian-bookworm"
CONF_VERSION = "1"
PATCHRESOLVE = "noop"
BB_NUMBER_THREADS = "2"
DL_DIR = "@SITE@/downloads"
SSTATE_DIR = "@SITE@/sstate"
ROOTFS_FEATURES:remove = "generate-sbom"
ISAR_RELEASE_CMD = "echo isar-test"
IMAGE_INSTALL = "isar-test-docker-images isar-test-podman-images isar-test-xz-images isar-test-probe"
IMAGE_PREINSTALL:append = " zstd"
USERS += "root"
USER_root[password] = "root"
USER_root[flags] = "clear-text-password"
"#;

/// The boots, in order.
const BOOT_FIRST: usize = 1;
/// Every image is present already. At its end, Isar's packages replace the layer's and the
/// engines forget the images.
const BOOT_AGAIN: usize = 2;
/// Isar's script loads the images; at its end, apt upgrades to the layer's packages.
const BOOT_ISAR: usize = 3;
/// After the upgrade.
const BOOT_UPGRADED: usize = 4;

// ---------------------------------------------------------------------------------------
// The packages
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn an_unchanged_recipe_builds_a_package_whose_unit_runs_the_loader() {
    let build = built();
    for (pkg, engine, _) in PACKAGES {
        let tree = &build.ours[pkg];
        let unit = tree.text(&format!("lib/systemd/system/{pkg}.service"));
        let exec =
            format!("ExecStart=/usr/bin/container-loader load --list /usr/share/{pkg}/image.list");
        assert!(unit.contains(&exec), "{pkg}.service:\n{unit}");
        assert!(
            unit.contains(&format!("Environment=CONTAINER_LOADER_ENGINE={engine}")),
            "{pkg}.service:\n{unit}"
        );
        assert!(
            !tree
                .root
                .join(format!("usr/share/{pkg}/container-loader.sh"))
                .exists(),
            "{pkg}: ships Isar's script"
        );
    }
}

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn an_unchanged_recipe_depends_on_the_engine_and_the_loader_instead_of_zstd() {
    let build = built();
    for (pkg, depends) in [
        (DOCKER_PKG, "docker.io, apparmor, container-loader"),
        (PODMAN_PKG, "podman, container-loader"),
        (XZ_PKG, "podman, container-loader"),
    ] {
        let control = &build.ours[pkg].control();
        assert_eq!(control.field("Depends"), depends, "{pkg}");
        assert_eq!(control.field("Architecture"), "amd64", "{pkg}");
        assert_eq!(control.field("Multi-Arch"), "allowed", "{pkg}");
    }
}

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn the_unit_keeps_isars_name_and_its_place_after_the_engine() {
    let build = built();
    for (pkg, engine_unit) in [
        (DOCKER_PKG, "docker.service"),
        (PODMAN_PKG, "podman.socket"),
    ] {
        let unit = build.ours[pkg].text(&format!("lib/systemd/system/{pkg}.service"));
        let isar = build.isar[pkg].text(&format!("lib/systemd/system/{pkg}.service"));
        for line in [
            format!("Requires={engine_unit}"),
            format!("After={engine_unit}"),
        ] {
            assert!(
                unit.lines().any(|l| l == line),
                "{pkg}.service has no {line}:\n{unit}"
            );
        }
        for line in ["WantedBy=multi-user.target", "Type=oneshot"] {
            assert!(
                isar.lines().any(|l| l == line),
                "Isar's {pkg}.service: {isar}"
            );
            assert!(unit.lines().any(|l| l == line), "{pkg}.service: {unit}");
        }
    }
}

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn the_package_ships_the_list_and_the_archives_isars_classes_ship_byte_for_byte() {
    let build = built();
    for pkg in AS_ISAR_BUILDS {
        let (ours, isar) = (&build.ours[pkg], &build.isar[pkg]);
        let list = format!("usr/share/{pkg}/image.list");
        assert_eq!(ours.text(&list), isar.text(&list), "{pkg}: image.list");
        let images = format!("usr/share/{pkg}/images");
        let names = isar.names(&images);
        assert_eq!(ours.names(&images), names, "{pkg}: images/");
        assert!(!names.is_empty(), "{pkg}: no archive");
        for name in names {
            let path = format!("{images}/{name}");
            assert!(
                ours.bytes(&path) == isar.bytes(&path),
                "{pkg}: {name} differs from Isar's"
            );
        }
    }
}

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn an_opted_in_compression_stores_the_fetched_archive_recompressed() {
    let build = built();
    let ours = &build.ours[XZ_PKG];
    let isar = &build.isar[XZ_PKG];
    let (name, tag) = TOOLS.rsplit_once(':').unwrap();
    let fetched = format!("{}:{tag}", name.replace('/', "."));
    assert_eq!(
        ours.text(&format!("usr/share/{XZ_PKG}/image.list")),
        format!("{fetched}.xz {TOOLS}\n")
    );
    // Isar's class ignores the variable: its package holds the archive as fetched.
    let zst = isar.bytes(&format!("usr/share/{XZ_PKG}/images/{fetched}.zst"));
    let xz = ours.bytes(&format!("usr/share/{XZ_PKG}/images/{fetched}.xz"));
    assert_eq!(&xz[..6], b"\xfd7zXZ\0", "not an xz stream");
    assert!(
        pipe("xz", &["-dc"], &xz) == pipe("zstd", &["-dc"], &zst),
        "the xz archive does not hold the fetched tar"
    );
}

#[test]
#[ignore = "a full Isar build: make isar-test"]
fn an_opted_in_pack_stores_the_fetched_tar_layer_framed_under_the_fetchers_name() {
    let build = built();
    let (name, tag) = TOOLS.rsplit_once(':').unwrap();
    let file = format!("{}:{tag}.zst", name.replace('/', "."));
    assert_eq!(
        build
            .packed
            .text(&format!("usr/share/{PACKED_PKG}/image.list")),
        format!("{file} {TOOLS}\n")
    );
    let packed = build
        .packed
        .bytes(&format!("usr/share/{PACKED_PKG}/images/{file}"));
    assert!(
        packed.ends_with(&SEEKABLE_MAGIC),
        "{file}: no seek table at its end: not packed"
    );
    // The fetcher's download (DockerUri::download_name of a tag-only entry).
    let download = build.site.root().join(format!(
        "downloads/container-images/{FETCH_ARCH}/{}_{tag}.zst",
        name.replace('/', ".")
    ));
    let fetched = fs::read(&download).unwrap_or_else(|e| panic!("{}: {e}", download.display()));
    assert!(
        pipe("zstd", &["-dc"], &packed) == pipe("zstd", &["-dc"], &fetched),
        "{file}: the packed archive does not hold the fetched tar"
    );
}

// ---------------------------------------------------------------------------------------
// The boots
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "a full Isar build and a boot: make isar-test"]
fn first_boot_loads_every_image_with_the_loader() {
    let boot = report(BOOT_FIRST);
    for (pkg, _, refs) in PACKAGES {
        assert_eq!(boot.state(&unit(pkg)), "active success", "{boot:?}");
        for reference in refs {
            let line = boot.loader_line(pkg, &format!("{reference}: loaded from "));
            assert_eq!(line.program, LOADER_BIN, "{pkg}: {line:?}");
        }
    }
    boot.loader_line(
        XZ_PKG,
        &format!("{TOOLS}: loaded from registry.example.com.isar-test.tools:2.xz (xz, "),
    );
    assert_eq!(boot.images("docker"), [APP, TOOLS], "{boot:?}");
    assert_eq!(boot.images("podman"), [APP, TOOLS], "{boot:?}");
}

#[test]
#[ignore = "a full Isar build and a boot: make isar-test"]
fn first_boot_deletes_the_archives_of_the_package_that_asks_for_it() {
    let boot = report(BOOT_FIRST);
    assert_eq!(
        boot.lines(&archives(DOCKER_PKG)),
        Vec::<String>::new(),
        "{boot:?}"
    );
    assert_eq!(boot.lines(&archives(PODMAN_PKG)).len(), 1, "{boot:?}");
    for reference in [APP, TOOLS] {
        boot.loader_line(DOCKER_PKG, &format!("{reference}: deleted "));
    }
}

#[test]
#[ignore = "a full Isar build and a boot: make isar-test"]
fn first_boot_starts_the_applications_once_their_images_are_loaded() {
    let boot = report(BOOT_FIRST);
    boot.assert_app_started_after_its_images();
}

#[test]
#[ignore = "a full Isar build and a boot: make isar-test"]
fn second_boot_skips_every_image_and_starts_the_applications() {
    let boot = report(BOOT_AGAIN);
    for (pkg, _, refs) in PACKAGES {
        assert_eq!(boot.state(&unit(pkg)), "active success", "{boot:?}");
        for reference in refs {
            boot.loader_line(pkg, &format!("{reference}: present, skipped"));
        }
        let loaded = boot
            .journal(pkg)
            .into_iter()
            .find(|l| l.message.contains("loaded from"));
        assert!(loaded.is_none(), "{pkg}: {loaded:?}");
    }
    boot.assert_app_started_after_its_images();
}

#[test]
#[ignore = "a full Isar build and boots: make isar-test"]
fn isars_own_packages_load_with_their_script_before_the_upgrade() {
    let boot = report(BOOT_ISAR);
    for (pkg, _, _) in PACKAGES {
        assert_eq!(
            boot.text(&format!("before-exec-{pkg}.txt")).trim(),
            format!("/usr/share/{pkg}/container-loader.sh"),
            "{boot:?}"
        );
        let journal = boot.journal(pkg);
        assert!(
            journal
                .iter()
                .any(|l| l.message.starts_with("Loaded image")),
            "{pkg}: {journal:#?}"
        );
        assert!(
            journal.iter().all(|l| l.program != LOADER_BIN),
            "{pkg}: {journal:#?}"
        );
    }
    assert_eq!(
        boot.text("before-loader.txt").trim(),
        "not installed",
        "{boot:?}"
    );
}

#[test]
#[ignore = "a full Isar build and boots: make isar-test"]
fn an_apt_upgrade_from_isars_packages_keeps_each_unit_enabled_and_leaves_no_script() {
    let boot = report(BOOT_ISAR);
    assert_eq!(
        boot.text("apt-exit.txt").trim(),
        "0",
        "apt-get install:\n{}",
        boot.text("apt.log")
    );
    for (pkg, _, _) in PACKAGES {
        assert_eq!(
            boot.text(&format!("after-enabled-{pkg}.txt")).trim(),
            "enabled"
        );
        assert_eq!(
            boot.text(&format!("after-exec-{pkg}.txt")).trim(),
            "/usr/bin/container-loader",
            "{boot:?}"
        );
        let files = boot.lines(&format!("after-files-{pkg}.txt"));
        assert!(
            !files.iter().any(|f| f == "container-loader.sh"),
            "{pkg}: {files:?}"
        );
    }
}

#[test]
#[ignore = "a full Isar build and boots: make isar-test"]
fn after_the_upgrade_the_images_isars_script_loaded_are_skipped_and_the_applications_start() {
    let boot = report(BOOT_UPGRADED);
    for (pkg, _, refs) in PACKAGES {
        assert_eq!(boot.state(&unit(pkg)), "active success", "{boot:?}");
        for reference in refs {
            let line = boot.loader_line(pkg, &format!("{reference}: present, skipped"));
            assert_eq!(line.program, LOADER_BIN, "{pkg}: {line:?}");
        }
    }
    boot.assert_app_started_after_its_images();
}

// ---------------------------------------------------------------------------------------
// The build
// ---------------------------------------------------------------------------------------

fn unit(pkg: &str) -> String {
    format!("{pkg}.service")
}

fn archives(pkg: &str) -> String {
    format!("archives-{pkg}.txt")
}

/// What the two builds made: each image package's files and control, by Isar's classes and
/// by this layer's, the loader's package and the image.
struct Built {
    site: Site,
    ours: std::collections::HashMap<&'static str, Tree>,
    isar: std::collections::HashMap<&'static str, Tree>,
    /// PACKED_PKG, built with this layer only.
    packed: Tree,
    debs_ours: Vec<PathBuf>,
    debs_isar: Vec<PathBuf>,
    kernel: PathBuf,
    initrd: PathBuf,
    wic: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: Mutex<Option<&'static Built>> = Mutex::new(None);
    let mut guard = BUILT
        .lock()
        .unwrap_or_else(|_| panic!("the Isar build failed: see its test"));
    guard.get_or_insert_with(|| Box::leak(Box::new(build())))
}

fn build() -> Built {
    for program in [
        "skopeo",
        "zstd",
        "dpkg-deb",
        "qemu-system-x86_64",
        "mkfs.ext4",
        "debugfs",
    ] {
        require_program(program);
    }
    let started = Instant::now();
    let site = Site::fresh("build");
    site.add_debs();
    site.add_pack_tool();
    seed_downloads(&site);
    let conf = LOCAL_CONF.replace("@SITE@", &site.root().display().to_string());

    let mut layers = site.isar_layers();
    layers.push(site.test_layer());
    let isar = site.build_dir("build-isar", &layers, LocalConf::Text(conf.clone()));
    isar.bitbake_ok(&PACKAGES.map(|(pkg, _, _)| pkg));
    eprintln!(
        "isar: Isar's classes: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    layers.push(site.layer());
    let ours = site.build_dir("build-ours", &layers, LocalConf::Text(conf));
    ours.bitbake_ok(&[IMAGE, PACKED_PKG]);
    eprintln!(
        "isar: with the layer, {IMAGE} too: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let unpacked = site.root().join("unpacked");
    let tree = |build: &BuildDir, which: &str, pkg: &'static str| {
        let deb = deployed_deb(build, pkg);
        (pkg, Tree::of_deb(&deb, &unpacked.join(which).join(pkg)))
    };
    let deploy = ours.path().join(DEPLOY_IMAGES);
    let pkgs = PACKAGES.map(|(pkg, _, _)| pkg);
    let mut debs_ours: Vec<PathBuf> = pkgs.iter().map(|p| deployed_deb(&ours, p)).collect();
    debs_ours.push(deployed_deb(&ours, LOADER_PKG));
    Built {
        ours: pkgs.map(|p| tree(&ours, "ours", p)).into(),
        isar: pkgs.map(|p| tree(&isar, "isar", p)).into(),
        packed: tree(&ours, "ours", PACKED_PKG).1,
        debs_ours,
        debs_isar: pkgs.iter().map(|p| deployed_deb(&isar, p)).collect(),
        kernel: deploy.join(format!("{IMAGE_NAME}-vmlinuz")),
        initrd: deploy.join(format!("{IMAGE_NAME}-initrd.img")),
        wic: deploy.join(format!("{IMAGE_NAME}.wic")),
        site,
    }
}

/// The one `PKG_*.deb` a build deployed into its isar-apt repository.
fn deployed_deb(build: &BuildDir, pkg: &str) -> PathBuf {
    let out = run_ok(
        Command::new("find")
            .arg(build.path().join(ISAR_APT))
            .args(["-name", &format!("{pkg}_*.deb")]),
    );
    let found: Vec<&str> = out.lines().collect();
    assert_eq!(
        found.len(),
        1,
        "{pkg}: {found:?} in {}",
        build.path().display()
    );
    PathBuf::from(found[0])
}

/// DL_DIR with every docker:// image of the tests' recipes, as Isar's docker fetcher leaves a
/// download: a docker-archive written by skopeo from the image's `dir:` copy, compressed with
/// Isar's zstd options, and the `.done` stamp that tells bitbake not to fetch it again.
fn seed_downloads(site: &Site) {
    let busybox = fs::read(BUSYBOX).unwrap_or_else(|e| panic!("{BUSYBOX}: {e}"));
    let dir = site
        .root()
        .join("downloads/container-images")
        .join(FETCH_ARCH);
    fs::create_dir_all(&dir).unwrap();
    let work = site.root().join("seed");
    for uri in docker_uris(&site.test_layer()) {
        let reference = format!("{}:{}", uri.name, uri.tag);
        let image = Fixture::with_files(
            &reference,
            &[
                ("bin/busybox", &busybox[..], 0o755),
                ("etc/isar-test", reference.as_bytes(), 0o644),
            ],
        );
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        fs::write(work.join("in.tar"), &image.tar).unwrap();
        let copy = |from: String, to: String| {
            run_ok(Command::new("skopeo").args(["copy", "-q", &from, &to]));
        };
        copy(
            format!("docker-archive:{}", work.join("in.tar").display()),
            format!("dir:{}", work.join("dir").display()),
        );
        let tarball = dir.join(uri.download_name());
        let _ = fs::remove_file(&tarball);
        copy(
            format!("dir:{}", work.join("dir").display()),
            format!("docker-archive:{}:{reference}", tarball.display()),
        );
        run_ok(
            Command::new("zstd")
                .args(["-q", "-f", "--rm", "--threads=2", "-3"])
                .arg(&tarball),
        );
        let zst = dir.join(format!("{}.zst", uri.download_name()));
        assert!(zst.is_file(), "{}", zst.display());
        fs::write(dir.join(format!("{}.zst.done", uri.download_name())), "").unwrap();
    }
    fs::remove_dir_all(&work).unwrap();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", isar::BUILDER))
            .arg(site.root().join("downloads")),
    );
}

/// A `docker://NAME;digest=...;tag=...` entry of a recipe's SRC_URI.
struct DockerUri {
    name: String,
    tag: String,
    digest: Option<String>,
}

impl DockerUri {
    /// The fetcher's file name: the name with `/` as `.`, then the digest (`:` as `-`) or the
    /// tag (meta/lib/container_fetcher.py), without its `.zst`.
    fn download_name(&self) -> String {
        let label = match &self.digest {
            Some(d) => d.replace(':', "-"),
            None => self.tag.clone(),
        };
        format!("{}_{label}", self.name.replace('/', "."))
    }
}

/// Every docker:// entry of the recipes in `layer`, once each.
fn docker_uris(layer: &Path) -> Vec<DockerUri> {
    let out = run_ok(
        Command::new("grep")
            .args(["-rhoE", "docker://[^ \"]+"])
            .arg(layer),
    );
    let mut uris: Vec<DockerUri> = Vec::new();
    for entry in out.lines() {
        let mut parts = entry.trim_start_matches("docker://").split(';');
        let name = parts.next().unwrap().to_string();
        let mut uri = DockerUri {
            name,
            tag: "latest".into(),
            digest: None,
        };
        for param in parts {
            match param.split_once('=') {
                Some(("tag", t)) => uri.tag = t.to_string(),
                Some(("digest", d)) => uri.digest = Some(d.to_string()),
                _ => {}
            }
        }
        if !uris
            .iter()
            .any(|u| u.download_name() == uri.download_name())
        {
            uris.push(uri);
        }
    }
    assert!(!uris.is_empty(), "{}: no docker:// entry", layer.display());
    uris
}

/// A package's files, as `dpkg-deb -R` lays them out.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn of_deb(deb: &Path, dir: &Path) -> Tree {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir.parent().unwrap()).unwrap();
        run_ok(Command::new("dpkg-deb").arg("-R").arg(deb).arg(dir));
        Tree {
            root: dir.to_path_buf(),
        }
    }

    fn bytes(&self, path: &str) -> Vec<u8> {
        let p = self.root.join(path);
        fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8_lossy(&self.bytes(path)).into_owned()
    }

    fn names(&self, dir: &str) -> Vec<String> {
        let p = self.root.join(dir);
        let mut names: Vec<String> = fs::read_dir(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn control(&self) -> Control {
        Control(self.text("DEBIAN/control"))
    }
}

struct Control(String);

impl Control {
    fn field(&self, name: &str) -> String {
        let prefix = format!("{name}: ");
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name}: in\n{}", self.0))
            .to_string()
    }
}

// ---------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------

/// Boot `n`'s report, booting the machine up to it first.
fn report(n: usize) -> Report {
    static MACHINE: Mutex<Option<Machine>> = Mutex::new(None);
    let mut guard = MACHINE
        .lock()
        .unwrap_or_else(|_| panic!("an earlier boot failed: see its test"));
    let machine = guard.get_or_insert_with(|| Machine::new(built()));
    while machine.reports.len() < n {
        let next = machine.reports.len() + 1;
        machine.boot(next);
    }
    machine.reports[n - 1].clone()
}

struct Machine {
    built: &'static Built,
    run: PathBuf,
    disk: PathBuf,
    reports: Vec<Report>,
}

impl Machine {
    /// A copy of the built image's disk (sparse, as the .wic is), booted as it is.
    fn new(built: &'static Built) -> Machine {
        let run = built.site.root().join("run");
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).unwrap();
        let disk = run.join("disk.wic");
        run_ok(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&built.wic)
                .arg(&disk),
        );
        Machine {
            built,
            run,
            disk,
            reports: Vec::new(),
        }
    }

    fn boot(&mut self, n: usize) {
        let data = self.run.join(format!("data-{n}"));
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("run.sh"), run_script(n)).unwrap();
        let payload: &[PathBuf] = match n {
            BOOT_AGAIN => &self.built.debs_isar,
            BOOT_ISAR => &self.built.debs_ours,
            _ => &[],
        };
        for deb in payload {
            fs::copy(deb, data.join(deb.file_name().unwrap())).unwrap();
        }
        let image = self.run.join(format!("data-{n}.img"));
        let size = du_mib(&data) + DATA_HEADROOM_MIB;
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", DATA_LABEL, "-d"])
                .arg(&data)
                .arg(&image)
                .arg(format!("{size}M")),
        );
        let machine = qemu::Machine {
            kernel: self.built.kernel.clone(),
            initrd: self.built.initrd.clone(),
            append: format!("root={ROOT_DEVICE} rw"),
            drives: vec![
                format!(
                    "file={},format=raw,if=ide,cache=unsafe",
                    self.disk.display()
                ),
                format!("file={},format=raw,if=virtio", image.display()),
            ],
            nic: true,
        };
        let serial = self.run.join(format!("serial-{n}.log"));
        let booted = machine.boot(&serial);
        let dir = self.run.join(format!("report-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        run_ok(
            Command::new("debugfs")
                .args(["-R", &format!("rdump / {}", dir.display())])
                .arg(&image),
        );
        let report = Report {
            boot: n,
            dir,
            seconds: booted.seconds,
        };
        assert!(
            report.dir.join("run.log").exists() && report.dir.join("done").exists(),
            "boot {n} wrote no report; serial console:\n{}",
            qemu::tail(&serial)
        );
        eprintln!(
            "isar: boot {n} ({}) to power-off: {:.0} s",
            booted.accel, booted.seconds
        );
        self.reports.push(report);
    }
}

fn du_mib(dir: &Path) -> u64 {
    let out = run_ok(Command::new("du").arg("-sm").arg(dir));
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du -sm prints a size")
}

/// What the probe runs at the end of boot `n`, with the data disk's mount point as $1: the
/// report every boot writes, then what changes the machine before the next boot.
fn run_script(n: usize) -> String {
    let names = PACKAGES.map(|(pkg, _, _)| pkg);
    let pkgs = names.join(" ");
    let units = names.map(unit).join(" ");
    // The image packages' .debs on the data disk, by their file names' start.
    let debs = names.map(|pkg| format!("\"$out\"/{pkg}_*.deb")).join(" ");
    let mut script = format!(
        r#"set -u
out=$1
report() {{
    for pkg in {pkgs}; do
        journalctl -b -o json --no-pager -u "$pkg.service" > "$out/journal-$pkg.json"
        ls -1 "/usr/share/$pkg/images" > "$out/archives-$pkg.txt"
    done
    for u in {units} {APP_DOCKER_UNIT} {APP_PODMAN_UNIT}; do
        systemctl show -p ActiveState -p Result -p ExecMainStartTimestampMonotonic \
            -p ExecMainExitTimestampMonotonic "$u" > "$out/show-$u.txt"
        journalctl -b -o cat --no-pager -u "$u" > "$out/log-$u.txt"
    done
    docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | sort > "$out/images-docker.txt"
    podman images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | sort > "$out/images-podman.txt"
}}
# PREFIX: what each image package's unit runs and which files it has, and the loader package.
state() {{
    for pkg in {pkgs}; do
        systemctl show -p ExecStart --value "$pkg.service" | sed -n 's/^{{ path=\([^ ;]*\).*/\1/p' \
            > "$out/$1-exec-$pkg.txt"
        systemctl is-enabled "$pkg.service" > "$out/$1-enabled-$pkg.txt"
        ls -1 "/usr/share/$pkg" > "$out/$1-files-$pkg.txt"
    done
    dpkg-query -W -f '${{Version}}\n' {LOADER_PKG} > "$out/$1-loader.txt" 2>/dev/null ||
        echo "not installed" > "$out/$1-loader.txt"
}}
report
"#
    );
    match n {
        BOOT_AGAIN => script.push_str(&format!(
            r#"# The machine as Isar's classes make it: their packages, no loader, the images not
# loaded yet (Isar's units run their script as the packages are installed: the images are
# removed after).
dpkg -i {debs} > "$out/downgrade.log" 2>&1
dpkg --purge {LOADER_PKG} >> "$out/downgrade.log" 2>&1
docker rmi {APP} {TOOLS} >> "$out/downgrade.log" 2>&1
podman rmi {APP} {TOOLS} >> "$out/downgrade.log" 2>&1
"#
        )),
        BOOT_ISAR => script.push_str(&format!(
            r#"state before
# The upgrade: the same recipes built with this layer, and the loader they depend on.
cd "$out"
apt-get install --reinstall -y {debs} "$out"/{LOADER_PKG}_*.deb > "$out/apt.log" 2>&1
echo $? > "$out/apt-exit.txt"
state after
"#
        )),
        _ => {}
    }
    script.push_str("touch \"$out/done\"\n");
    script
}

// ---------------------------------------------------------------------------------------
// Reading a boot's report
// ---------------------------------------------------------------------------------------

/// A line of an image package unit's journal: its message and the program that wrote it.
#[derive(Debug)]
struct JournalLine {
    program: String,
    message: String,
}

impl Report {
    fn images(&self, engine: &str) -> Vec<String> {
        self.lines(&format!("images-{engine}.txt"))
    }

    /// `systemctl show` of a unit: PROPERTY -> value.
    fn show(&self, unit: &str, property: &str) -> String {
        let prefix = format!("{property}=");
        self.lines(&format!("show-{unit}.txt"))
            .into_iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("{unit}: no {property}; {self:?}"))
    }

    /// "ActiveState Result" of a unit.
    fn state(&self, unit: &str) -> String {
        format!(
            "{} {}",
            self.show(unit, "ActiveState"),
            self.show(unit, "Result")
        )
    }

    fn journal(&self, pkg: &str) -> Vec<JournalLine> {
        self.text(&format!("journal-{pkg}.json"))
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("journal JSON line"))
            .filter_map(|v| {
                Some(JournalLine {
                    program: v["_EXE"].as_str().unwrap_or("").to_string(),
                    message: v["MESSAGE"].as_str()?.to_string(),
                })
            })
            .collect()
    }

    /// The line of `pkg`'s unit that contains `part`, which the loader must have written.
    fn loader_line(&self, pkg: &str, part: &str) -> JournalLine {
        let lines = self.journal(pkg);
        let found = lines.into_iter().find(|l| l.message.contains(part));
        found.unwrap_or_else(|| panic!("{pkg}: no journal line containing {part:?}; {self:?}"))
    }

    /// Each application ran in its engine and started after its image package's unit had
    /// finished.
    fn assert_app_started_after_its_images(&self) {
        for (app, pkg, engine) in [
            (APP_DOCKER_UNIT, DOCKER_PKG, "docker"),
            (APP_PODMAN_UNIT, PODMAN_PKG, "podman"),
        ] {
            assert_eq!(self.state(app), "active success", "{app}: {self:?}");
            let said = format!("app started in {engine}");
            assert!(
                self.text(&format!("log-{app}.txt")).contains(&said),
                "{app}: {self:?}"
            );
            let loaded: u64 = self
                .show(&unit(pkg), "ExecMainExitTimestampMonotonic")
                .parse()
                .unwrap();
            let started: u64 = self
                .show(app, "ExecMainStartTimestampMonotonic")
                .parse()
                .unwrap();
            assert!(
                loaded > 0 && started >= loaded,
                "{app} at {started}, {pkg} done at {loaded}"
            );
        }
    }
}
