//! The image package, as an ISAR recipe with isar/recipes-support/container-loader/
//! container-loader.inc builds it, made by isar/scripts/image-package from the same steps
//! (image-package-steps.sh): its image.list and archives, the enabled instance bound to its
//! engine, its Depends, and how it installs, verifies and purges in a Debian 13 root beside the
//! loader's own package. The include's own tasks run too, without bitbake
//! (tests/scripts/isar-include.py), and must lay out what the builder lays out.
//!
//! The builder needs dpkg-dev, debhelper, fakeroot, zstd, gzip and xz-utils, the include's tasks
//! python3; the tests that
//! install need the loader's .deb (`make deb`, dist/deb/) and the cached Debian 13 root
//! (`make roots`), which each test copies. Root is needed (chroot). Nothing is skipped: a missing
//! piece fails the test naming the make target that provides it.

mod common;
mod device;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use device::debian_root::{loader_deb, DebianRoot};

/// The builder under test.
const BUILDER: &str = "isar/scripts/image-package";
/// The ISAR layer's includes, which name the engine packages.
const RECIPE_DIR: &str = "isar/recipes-support/container-loader";
/// The Debian 13 root with systemd that `make roots` caches; copied, never changed.
const SUITE: &str = "trixie";
/// What install and purge change by design, left out of the comparison: dpkg's database and
/// the logs.
const DPKG_OWN_FILES: [&str; 2] = ["var/lib/dpkg", "var/log"];
/// Where the loader package puts the drop-ins that image packages link.
const DROP_IN_DIR: &str = "/usr/share/container-loader/drop-ins";
/// The instance link and the drop-in directory of package PKG, relative to the root.
const UNIT_DIR: &str = "lib/systemd/system";

fn project(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn instance(pkg: &str) -> String {
    format!("container-loader@{pkg}.service")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn host_arch() -> String {
    run_ok(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Building image packages
// ---------------------------------------------------------------------------------------

/// Input for the builder: docker-archive tars written to a temporary directory.
struct Images {
    dir: TempDir,
    fixtures: Vec<Fixture>,
}

impl Images {
    fn of(references: &[&str]) -> Images {
        let dir = TempDir::new("ipkg-in");
        let fixtures = references.iter().map(|r| Fixture::new(r)).collect();
        Images { dir, fixtures }
    }

    /// `IMAGE.tar=REF` for every image, in order.
    fn args(&self) -> Vec<String> {
        self.fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let tar = self.dir.join(format!("{i}.tar"));
                fs::write(&tar, &f.tar).unwrap();
                format!("{}={}", tar.display(), f.reference)
            })
            .collect()
    }
}

/// The builder's command, with its temporary files kept below `tmp`.
fn builder(tmp: &Path) -> Command {
    let mut cmd = Command::new(project(BUILDER));
    cmd.env("TMPDIR", tmp);
    cmd
}

/// A built image package: the .deb and its files unpacked.
struct Built {
    deb: PathBuf,
    tree: PathBuf,
    _dir: TempDir,
}

impl Built {
    fn path(&self, p: &str) -> PathBuf {
        self.tree.join(p.trim_start_matches('/'))
    }

    fn field(&self, name: &str) -> String {
        run_ok(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(&self.deb)
                .arg(name),
        )
        .trim()
        .to_string()
    }

    /// The names in the instance's drop-in directory, and what each links to.
    fn drop_ins(&self, pkg: &str) -> Vec<(String, String)> {
        let dir = self.path(&format!("{UNIT_DIR}/{}.d", instance(pkg)));
        let mut links: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let e = e.unwrap();
                let target = fs::read_link(e.path())
                    .unwrap_or_else(|err| panic!("{}: not a link ({err})", e.path().display()));
                (
                    e.file_name().to_string_lossy().into_owned(),
                    target.display().to_string(),
                )
            })
            .collect();
        links.sort();
        links
    }
}

/// Runs the builder with `options` for `images`, checks it printed the .deb's path as its last
/// line, and unpacks the package.
fn build(pkg: &str, options: &[&str], images: &Images) -> Built {
    let dir = TempDir::new("ipkg");
    let out = dir.join("out");
    let output = run(builder(dir.path())
        .arg("--out")
        .arg(&out)
        .arg("--name")
        .arg(pkg)
        .args(options)
        .args(images.args()));
    assert!(
        output.status.success(),
        "{BUILDER} failed ({}):\n{}",
        output.status,
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(
        deb.starts_with(&out) && deb.is_file(),
        "the builder's last line is not a .deb in {}: {stdout:?}",
        out.display()
    );
    let tree = dir.join("tree");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
    Built {
        deb,
        tree,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// A Debian 13 root with the loader's package installed
// ---------------------------------------------------------------------------------------

/// A copy of the Debian 13 root with the loader's package installed.
struct Root(DebianRoot);

impl std::ops::Deref for Root {
    type Target = DebianRoot;
    fn deref(&self) -> &DebianRoot {
        &self.0
    }
}

impl Root {
    fn with_loader() -> Root {
        let root = DebianRoot::copy_of(SUITE);
        root.dpkg_install(&loader_deb(&host_arch()), &[]);
        Root(root)
    }

    /// Installs an image package. The engines are not in the test root, so dpkg is told to
    /// configure it anyway; the check below makes sure the engine packages are the only
    /// dependencies that are missing (the loader's package is installed).
    fn install_image_package(&self, built: &Built, engine_packages: &[&str]) {
        let out = self.0.dpkg_install(&built.deb, &["--force-depends"]);
        let missing: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.split_once(" depends on ").map(|(_, rest)| rest))
            .map(|rest| rest.split(';').next().unwrap().trim().to_string())
            .collect();
        let expected: BTreeSet<String> = engine_packages.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            missing, expected,
            "dpkg found other dependencies missing than the engine packages:\n{out}"
        );
    }

    /// Stand-ins for the engine's units, which the engine packages would install: the drop-ins
    /// require docker.service or podman.socket, and systemd-analyze verify fails on a
    /// requirement it cannot find.
    fn add_engine_stand_ins(&self) {
        let etc = self.path().join("etc/systemd/system");
        let service = "[Unit]\nDescription=stand-in for the engine package's unit\n\n\
                       [Service]\nExecStart=/bin/true\n";
        fs::write(etc.join("docker.service"), service).unwrap();
        fs::write(etc.join("podman.service"), service).unwrap();
        fs::write(
            etc.join("podman.socket"),
            "[Unit]\nDescription=stand-in for podman's API socket\n\n\
             [Socket]\nListenStream=/run/podman/podman.sock\n",
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The package's files
// ---------------------------------------------------------------------------------------

#[test]
fn image_list_names_every_archive_with_its_reference() {
    let images = Images::of(&[
        "example.com/team/app:1.2",
        "busybox:1.36",
        "localhost:5000/tool:v1",
    ]);
    let built = build("app-images", &["--engine", "docker"], &images);

    let list = fs::read_to_string(built.path("/usr/share/app-images/image.list")).unwrap();
    assert_eq!(
        list,
        "example.com.team.app:1.2.tar.zst example.com/team/app:1.2\n\
         busybox:1.36.tar.zst busybox:1.36\n\
         localhost:5000.tool:v1.tar.zst localhost:5000/tool:v1\n"
    );
    let archives: BTreeSet<String> = fs::read_dir(built.path("/usr/share/app-images/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = list
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        archives, listed,
        "images/ holds other files than the list names"
    );
}

#[test]
fn each_archive_decompresses_to_its_input_tar_with_every_compression() {
    let images = Images::of(&["example.com/app:1", "busybox:1.36"]);
    for (compression, tool) in [("zst", "zstd"), ("gz", "gzip"), ("xz", "xz")] {
        let built = build(
            "app-images",
            &["--engine", "podman", "--compression", compression],
            &images,
        );
        for fixture in &images.fixtures {
            let (name, tag) = fixture.reference.rsplit_once(':').unwrap();
            let archive = built.path(&format!(
                "/usr/share/app-images/images/{}:{tag}.tar.{compression}",
                name.replace('/', ".")
            ));
            let out = run(Command::new(tool).arg("-dc").arg(&archive));
            assert!(
                out.status.success(),
                "{tool} -dc {}: {}",
                archive.display(),
                text(&out.stderr)
            );
            assert!(
                out.stdout == fixture.tar,
                "{}: does not decompress to the docker-archive of {}",
                archive.display(),
                fixture.reference
            );
        }
    }
}

#[test]
fn the_loader_reads_the_reference_inside_each_archive() {
    let images = Images::of(&["example.com/app:1", "busybox:1.36"]);
    let built = build(
        "app-images",
        &["--engine", "docker", "--compression", "xz"],
        &images,
    );
    let list = fs::read_to_string(built.path("/usr/share/app-images/image.list")).unwrap();
    for line in list.lines() {
        let (archive, reference) = line.split_once(' ').unwrap();
        let path = built.path(&format!("/usr/share/app-images/images/{archive}"));
        let out = run(loader_command().arg("inspect").arg(&path));
        assert!(
            out.status.success(),
            "inspect {archive}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(reference),
            "inspect {archive} does not name {reference}:\n{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn the_instance_is_enabled_and_bound_to_the_engine() {
    let images = Images::of(&["example.com/app:1"]);
    for engine in ["docker", "podman"] {
        let built = build("app-images", &["--engine", engine], &images);
        let wants = built.path(&format!(
            "{UNIT_DIR}/multi-user.target.wants/{}",
            instance("app-images")
        ));
        assert_eq!(
            fs::read_link(&wants).unwrap(),
            Path::new("../container-loader@.service"),
            "{engine}: multi-user.target does not want the template's instance"
        );
        assert_eq!(
            built.drop_ins("app-images"),
            [(
                "engine.conf".to_string(),
                format!("{DROP_IN_DIR}/{engine}.conf")
            )],
            "{engine}: the instance is not bound to its engine by the loader's drop-in"
        );
    }
}

#[test]
fn the_links_resolve_to_the_loaders_files_inside_a_root_with_its_package() {
    let root = Root::with_loader();
    let images = Images::of(&["example.com/app:1"]);
    let built = build(
        "app-images",
        &["--engine", "docker", "--delete-after-load"],
        &images,
    );
    root.install_image_package(&built, &["docker.io", "apparmor"]);

    let template = root.resolve("/lib/systemd/system/container-loader@.service");
    let wants = format!(
        "/lib/systemd/system/multi-user.target.wants/{}",
        instance("app-images")
    );
    assert_eq!(root.resolve(&wants), template);
    for (link, shipped) in [
        ("engine.conf", "docker.conf"),
        ("delete-after-load.conf", "delete-after-load.conf"),
    ] {
        let link = format!("/lib/systemd/system/{}.d/{link}", instance("app-images"));
        assert_eq!(
            root.resolve(&link),
            root.resolve(&format!("{DROP_IN_DIR}/{shipped}")),
            "{link} does not lead to the loader package's {shipped}"
        );
    }
}

#[test]
fn delete_after_load_adds_its_drop_in_only_when_asked() {
    let images = Images::of(&["example.com/app:1"]);
    let kept = build("app-images", &["--engine", "docker"], &images);
    assert_eq!(
        kept.drop_ins("app-images"),
        [(
            "engine.conf".to_string(),
            format!("{DROP_IN_DIR}/docker.conf")
        )]
    );
    let deleted = build(
        "app-images",
        &["--engine", "docker", "--delete-after-load"],
        &images,
    );
    assert_eq!(
        deleted.drop_ins("app-images"),
        [
            (
                "delete-after-load.conf".to_string(),
                format!("{DROP_IN_DIR}/delete-after-load.conf")
            ),
            (
                "engine.conf".to_string(),
                format!("{DROP_IN_DIR}/docker.conf")
            ),
        ]
    );
}

#[test]
fn depends_names_the_engine_packages_and_the_loader() {
    let images = Images::of(&["example.com/app:1"]);
    for (engine, depends) in [
        ("docker", "docker.io, apparmor, container-loader"),
        ("podman", "podman, container-loader"),
    ] {
        let built = build("app-images", &["--engine", engine], &images);
        assert_eq!(built.field("Depends"), depends, "{engine}");
    }
}

#[test]
fn the_engine_packages_are_the_ones_the_engine_include_names() {
    for (engine, packages) in [("docker", "docker.io, apparmor"), ("podman", "podman")] {
        let inc = project(&format!("{RECIPE_DIR}/{engine}-loader.inc"));
        let text = fs::read_to_string(&inc).unwrap();
        let line = format!("CONTAINER_ENGINE_PACKAGES ?= \"{packages}\"");
        assert!(
            text.lines().any(|l| l == line),
            "{}: no line {line}",
            inc.display()
        );
    }
}

#[test]
fn the_package_is_named_after_name_version_and_architecture() {
    let dir = TempDir::new("ipkg");
    let images = Images::of(&["example.com/app:1"]);
    for (options, deb) in [
        (vec![], format!("app-images_1.0_{}.deb", host_arch())),
        (
            vec!["--version", "2.3-1", "--arch", "arm64"],
            "app-images_2.3-1_arm64.deb".to_string(),
        ),
    ] {
        let out = run_ok(
            builder(dir.path())
                .args(["--out", dir.join("out").to_str().unwrap()])
                .args(["--name", "app-images", "--engine", "podman"])
                .args(&options)
                .args(images.args()),
        );
        let expected = dir.join("out").join(&deb);
        assert_eq!(
            out.lines().last(),
            Some(expected.to_str().unwrap()),
            "{options:?}"
        );
        let arch = deb.rsplit_once('_').unwrap().1.trim_end_matches(".deb");
        let field = run_ok(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(&expected)
                .arg("Architecture"),
        );
        assert_eq!(field.trim(), arch, "{options:?}");
    }
}

#[test]
fn the_include_runs_the_steps_the_builder_runs() {
    let steps = "image-package-steps.sh";
    let inc = fs::read_to_string(project(&format!("{RECIPE_DIR}/container-loader.inc"))).unwrap();
    let script = fs::read_to_string(project(BUILDER)).unwrap();
    assert!(
        inc.contains(&format!("file://{steps}")),
        "the include does not fetch {steps}"
    );
    for step in ["install-units", "install-images"] {
        assert!(
            inc.contains(step),
            "the include does not run the step {step}"
        );
        assert!(
            script.contains(&format!("\"$steps\" {step}")),
            "the builder does not run the step {step}"
        );
    }
    assert!(
        script.contains(&format!("files/{steps}")),
        "the builder runs another steps file"
    );
}

// ---------------------------------------------------------------------------------------
// Installed beside the loader's package
// ---------------------------------------------------------------------------------------

#[test]
fn the_installed_instance_passes_systemd_analyze_verify() {
    for (engine, engine_packages) in [
        ("docker", &["docker.io", "apparmor"][..]),
        ("podman", &["podman"][..]),
    ] {
        let root = Root::with_loader();
        root.add_engine_stand_ins();
        let images = Images::of(&["example.com/app:1"]);
        let built = build(
            "app-images",
            &["--engine", engine, "--delete-after-load"],
            &images,
        );
        root.install_image_package(&built, engine_packages);

        // --man=no: the root has no man; the unit's man: link is the loader package's.
        let out = run(&mut root.command(&[
            "systemd-analyze",
            "verify",
            "--man=no",
            &instance("app-images"),
        ]));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{engine}: systemd-analyze verify failed:\n{said}"
        );
        assert!(
            !said.contains("container-loader"),
            "{engine}: systemd-analyze verify complains about the unit:\n{said}"
        );
    }
}

#[test]
fn the_installed_instance_is_enabled_as_a_static_unit() {
    let root = Root::with_loader();
    let images = Images::of(&["example.com/app:1"]);
    let built = build("app-images", &["--engine", "podman"], &images);
    root.install_image_package(&built, &["podman"]);

    // docs/install.md: the multi-user.target.wants link enables the instance for as long as
    // the package is installed, and `systemctl is-enabled` says static.
    let out = run(&mut root.command(&["systemctl", "is-enabled", &instance("app-images")]));
    assert_eq!(text(&out.stdout).trim(), "static", "{}", text(&out.stderr));
    assert!(out.status.success());
}

#[test]
fn purge_removes_everything_the_package_installed() {
    let root = Root::with_loader();
    let before = root.files(&DPKG_OWN_FILES);
    let images = Images::of(&["example.com/app:1", "busybox:1.36"]);
    let built = build(
        "app-images",
        &["--engine", "docker", "--delete-after-load"],
        &images,
    );
    root.install_image_package(&built, &["docker.io", "apparmor"]);
    assert!(
        root.files(&DPKG_OWN_FILES).len() > before.len(),
        "the package installed nothing"
    );

    root.dpkg(&["--purge", "app-images"]);
    let after = root.files(&DPKG_OWN_FILES);
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "left after dpkg --purge: {left:?}");
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// Runs the builder with `args` and checks that it failed saying `message`, with nothing
/// written: neither DIR nor a temporary file.
fn refused(args: &[&str], message: &str) {
    let dir = TempDir::new("ipkg-bad");
    let tmp = dir.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let out_dir = dir.join("out");
    let tar = dir.join("app.tar");
    fs::write(&tar, &Fixture::new("example.com/app:1").tar).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("APP_TAR", tar.to_str().unwrap()))
        .collect();
    let out = run(builder(&tmp)
        .args(["--out", out_dir.to_str().unwrap(), "--name", "app-images"])
        .args(&args));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{args:?}: stderr does not say {message:?}:\n{stderr}"
    );
    assert!(
        text(&out.stdout).is_empty(),
        "{args:?}: printed {:?}",
        text(&out.stdout)
    );
    assert!(
        !out_dir.exists(),
        "{args:?}: {} was created",
        out_dir.display()
    );
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "{args:?}: left temporary files"
    );
}

#[test]
fn refuses_a_package_without_images() {
    refused(
        &["--engine", "docker"],
        "image-package: no images: give at least one IMAGE.tar=NAME:TAG",
    );
}

#[test]
fn refuses_a_reference_that_is_not_name_and_tag() {
    for (reference, why) in [
        ("Example.com/App:1", "repository name must be lower case"),
        (
            "example.com/app",
            "no tag: write NAME:TAG (example.com/app:latest for the latest)",
        ),
        ("example.com/app:", "tag \"\""),
        ("example.com//app:1", "repository name"),
        ("app:1 2", "a reference holds only"),
        (
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a digest names content",
        ),
    ] {
        refused(
            &["--engine", "docker", &format!("APP_TAR={reference}")],
            &format!("image-package: invalid image reference \"{reference}\": {why}"),
        );
    }
}

#[test]
fn refuses_an_unknown_engine() {
    refused(
        &["--engine", "containerd", "APP_TAR=example.com/app:1"],
        "image-package: unknown engine \"containerd\": docker or podman",
    );
}

#[test]
fn refuses_an_input_that_is_not_an_uncompressed_tar() {
    let dir = TempDir::new("ipkg-bad-in");
    let gz = dir.join("app.tar.gz");
    fs::write(
        &gz,
        Codec::Gzip.compress(&Fixture::new("example.com/app:1").tar),
    )
    .unwrap();
    refused(
        &[
            "--engine",
            "docker",
            &format!("{}=example.com/app:1", gz.display()),
        ],
        "not an uncompressed tar",
    );
}

#[test]
fn refuses_two_images_that_would_share_an_archive() {
    refused(
        &[
            "--engine",
            "docker",
            "APP_TAR=example.com/app:1",
            "APP_TAR=example.com.app:1",
        ],
        "archive example.com.app:1.tar.zst is named twice",
    );
}

// ---------------------------------------------------------------------------------------
// The ISAR include, its tasks run by tests/scripts/isar-include.py
// ---------------------------------------------------------------------------------------

/// Runs the include's do_install and do_install_fetched_containers for an image recipe of
/// `engine` with `settings` (the recipe's variables; SRC_URI gets `docker://` entries for
/// `images`, with `;tag=` unless a reference's tag is `latest`), `images` unpacked in WORKDIR as
/// ISAR's docker:// fetcher leaves them. Returns D and the Depends the package would get.
fn run_include(
    engine: &str,
    settings: &[&str],
    images: &Images,
    dir: &TempDir,
) -> (PathBuf, String) {
    require_program("python3");
    let workdir = dir.join("workdir");
    fs::create_dir_all(&workdir).unwrap();
    let steps = "image-package-steps.sh";
    fs::copy(
        project(&format!("{RECIPE_DIR}/files/{steps}")),
        workdir.join(steps),
    )
    .unwrap();
    let mut src_uri = format!("file://{steps}");
    for fixture in &images.fixtures {
        let (name, tag) = fixture.reference.rsplit_once(':').unwrap();
        // container_fetcher's unpack: <name, / as .>:<tag>.zst, a zstd docker-archive.
        let unpacked = workdir.join(format!("{}:{tag}.zst", name.replace('/', ".")));
        fs::write(&unpacked, Codec::Zstd.compress(&fixture.tar)).unwrap();
        src_uri.push_str(&format!(" docker://{name}"));
        if tag != "latest" {
            src_uri.push_str(&format!(";tag={tag}"));
        }
    }
    let d = dir.join("image");
    let stdout = run_ok(
        Command::new("python3")
            .arg(project("tests/scripts/isar-include.py"))
            .arg(project(&format!("{RECIPE_DIR}/{engine}-loader.inc")))
            .arg(&workdir)
            .arg(&d)
            .args(settings)
            .arg(format!("SRC_URI={src_uri}")),
    );
    (d, stdout.lines().last().unwrap_or_default().to_string())
}

/// Every path below `root` but `skip`, with what it is: a link's target, a file's bytes.
fn tree(root: &Path, skip: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if name == skip || name.starts_with(&format!("{skip}/")) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                dirs.push(path.clone());
                "dir".to_string()
            } else {
                format!("file {}", sha256_hex(&fs::read(&path).unwrap()))
            };
            entries.push((name, what));
        }
    }
    entries.sort();
    entries
}

#[test]
fn the_include_lays_out_the_files_and_depends_the_builder_builds() {
    let dir = TempDir::new("ipkg-isar");
    let images = Images::of(&["example.com/team/app:1.2", "busybox:1.36"]);
    let settings = [
        "BPN=app-images",
        "CONTAINER_DELETE_AFTER_LOAD=1",
        "CONTAINER_COMPRESSION=xz",
    ];
    let (d, depends) = run_include("docker", &settings, &images, &dir);
    let built = build(
        "app-images",
        &[
            "--engine",
            "docker",
            "--delete-after-load",
            "--compression",
            "xz",
        ],
        &images,
    );

    // dh adds the changelog; the rest is the steps' work in both.
    assert_eq!(tree(&d, ""), tree(&built.tree, "usr/share/doc"));
    assert_eq!(depends, built.field("Depends"));
}

#[test]
fn the_include_lists_an_image_fetched_without_a_tag_as_latest() {
    let dir = TempDir::new("ipkg-isar");
    let images = Images::of(&["busybox:latest"]);
    let (d, _) = run_include("podman", &["BPN=app-images"], &images, &dir);
    let list = fs::read_to_string(d.join("usr/share/app-images/image.list")).unwrap();
    assert_eq!(list, "busybox:latest.tar.zst busybox:latest\n");
}
