//! The image package as an Isar recipe with `inherit docker-loader` / `inherit podman-loader`
//! builds it with the layer's classes, made by isar/scripts/image-package from the same steps
//! (image-package-steps.sh): its image.list and archives, its unit (PKG.service, bound to its
//! engine), its Depends, and how it installs, verifies and purges in a Debian 13 root beside the
//! loader's own package, and the input the builder and the steps refuse before writing anything.
//! What real bitbake builds from the classes is tests/isar_build.rs's.
//!
//! The builder needs dpkg-dev, debhelper, fakeroot, zstd, gzip and xz-utils; the tests that
//! install need the loader's .deb (`make deb`, dist/deb/) and the cached Debian 13 root
//! (`make roots`), which each test copies. Root is needed (chroot). Nothing is skipped: a missing
//! piece fails the test naming the make target that provides it.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use device::debian_root::{loader_deb, DebianRoot};

/// The builder under test.
const BUILDER: &str = "isar/scripts/image-package";
/// The class that runs the same steps as the builder.
const CLASS: &str = "isar/classes-recipe/container-loader.bbclass";
/// The steps both run, each a `sh STEPS STEP ARGS...` command.
const STEPS: &str = "isar/recipes-support/container-loader/files/image-package-steps.sh";
/// The loader's units, of which the `unit` step makes the package's unit.
const UNITS: &str = "systemd";
/// The Debian 13 root with systemd that `make roots` caches; copied, never changed.
const SUITE: &str = "trixie";
/// What install and purge change by design, left out of the comparison: dpkg's database and
/// the logs.
const DPKG_OWN_FILES: [&str; 2] = ["var/lib/dpkg", "var/log"];
/// Where the package's unit is, relative to the root.
const UNIT_DIR: &str = "lib/systemd/system";

fn project(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn unit(pkg: &str) -> String {
    format!("{pkg}.service")
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

    /// The unit's lines that set something (no comments, no blank lines).
    fn unit_settings(&self, pkg: &str) -> Vec<String> {
        let path = self.path(&format!("{UNIT_DIR}/{}", unit(pkg)));
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// Whether the unit has `line` as one of its settings.
    fn unit_says(&self, pkg: &str, line: &str) -> bool {
        self.unit_settings(pkg).iter().any(|l| l == line)
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
        "example.com.team.app:1.2.zst example.com/team/app:1.2\n\
         busybox:1.36.zst busybox:1.36\n\
         localhost:5000.tool:v1.zst localhost:5000/tool:v1\n"
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
                "/usr/share/app-images/images/{}:{tag}.{compression}",
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
fn the_unit_is_named_after_the_package_and_bound_to_its_engine() {
    let images = Images::of(&["example.com/app:1"]);
    for (engine, engine_unit) in [("docker", "docker.service"), ("podman", "podman.socket")] {
        let built = build("app-images", &["--engine", engine], &images);
        for line in [
            format!("Requires={engine_unit}"),
            format!("After={engine_unit}"),
            format!("Environment=CONTAINER_LOADER_ENGINE={engine}"),
            "ExecStart=/usr/bin/container-loader load --list /usr/share/app-images/image.list \
             --engine ${CONTAINER_LOADER_ENGINE} $CONTAINER_LOADER_OPTS"
                .to_string(),
            "WantedBy=multi-user.target".to_string(),
        ] {
            assert!(built.unit_says("app-images", &line), "{engine}: no {line}");
        }
    }
}

#[test]
fn the_unit_keeps_every_setting_of_the_loaders_template_for_the_package() {
    let images = Images::of(&["example.com/app:1"]);
    let built = build("app-images", &["--engine", "podman"], &images);
    let template = fs::read_to_string(project("systemd/container-loader@.service")).unwrap();
    let settings = built.unit_settings("app-images");
    for line in template
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let line = line.replace("%i", "app-images");
        assert!(settings.contains(&line), "the unit lost {line:?}");
    }
}

#[test]
fn delete_after_load_is_in_the_unit_only_when_asked() {
    let images = Images::of(&["example.com/app:1"]);
    let lines = [
        "Environment=CONTAINER_LOADER_OPTS=--delete-after-load",
        "ReadWritePaths=-/usr/share/app-images/images",
    ];
    let kept = build("app-images", &["--engine", "docker"], &images);
    let deleted = build(
        "app-images",
        &["--engine", "docker", "--delete-after-load"],
        &images,
    );
    for line in lines {
        assert!(!kept.unit_says("app-images", line), "{line}");
        assert!(deleted.unit_says("app-images", line), "{line}");
    }
}

#[test]
fn depends_names_the_engine_packages_of_the_suite_and_the_loader() {
    let images = Images::of(&["example.com/app:1"]);
    for (engine, suite, depends) in [
        (
            "docker",
            "bookworm",
            "docker.io, apparmor, container-loader",
        ),
        (
            "docker",
            "trixie",
            "docker-cli, docker.io, apparmor, container-loader",
        ),
        ("podman", "trixie", "podman, container-loader"),
    ] {
        let built = build(
            "app-images",
            &["--engine", engine, "--suite", suite],
            &images,
        );
        assert_eq!(built.field("Depends"), depends, "{engine} on {suite}");
        assert_eq!(built.field("Multi-Arch"), "allowed", "{engine} on {suite}");
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
fn the_class_makes_the_unit_with_the_step_the_builder_runs() {
    let steps = "image-package-steps.sh";
    let class = fs::read_to_string(project(CLASS)).unwrap();
    let script = fs::read_to_string(project(BUILDER)).unwrap();
    assert!(
        class.contains(&format!("file://{steps}")),
        "the class does not fetch {steps}"
    );
    assert!(
        class.contains("sh ${CONTAINER_STEPS} unit "),
        "the class does not run the step unit"
    );
    assert!(
        script.contains("\"$steps\" unit "),
        "the builder does not run the step unit"
    );
    assert!(
        script.contains(&format!("files/{steps}")),
        "the builder runs another steps file"
    );
}

// ---------------------------------------------------------------------------------------
// Installed beside the loader's package
// ---------------------------------------------------------------------------------------

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
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
        let out =
            run(&mut root.command(&["systemd-analyze", "verify", "--man=no", &unit("app-images")]));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{engine}: systemd-analyze verify failed:\n{said}"
        );
        assert!(
            !said.contains("app-images") && !said.contains("container-loader"),
            "{engine}: systemd-analyze verify complains about the unit:\n{said}"
        );
    }
}

#[test]
fn the_installed_unit_is_enabled() {
    let root = Root::with_loader();
    let images = Images::of(&["example.com/app:1"]);
    let built = build("app-images", &["--engine", "podman"], &images);
    root.install_image_package(&built, &["podman"]);

    // dh_installsystemd's maintainer scripts enable it, as for Isar's own unit.
    let out = run(&mut root.command(&["systemctl", "is-enabled", &unit("app-images")]));
    assert_eq!(text(&out.stdout).trim(), "enabled", "{}", text(&out.stderr));
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
        "archive example.com.app:1.zst is named twice",
    );
}

/// Package names that are not one Debian package name, each but the first something the old
/// line-by-line check already refused: a second line whose '..' climb out of the package tree,
/// a '/', a leading '-' and a leading '.'.
const NOT_A_PACKAGE_NAME: [&str; 4] = ["app\n/../../../../esc", "app/esc", "-app", ".app"];

#[test]
fn refuses_a_name_that_is_not_one_debian_package_name() {
    for name in NOT_A_PACKAGE_NAME {
        refused(
            &[
                "--name",
                name,
                "--engine",
                "docker",
                "APP_TAR=example.com/app:1",
            ],
            &format!("image-package: package name \"{name}\": lower-case letters, digits"),
        );
    }
}

#[test]
fn refuses_a_version_that_is_not_one_debian_version() {
    for version in ["1.0\n/../../../../esc", "1.0/esc", "-1.0", ".1.0"] {
        refused(
            &[
                "--version",
                version,
                "--engine",
                "docker",
                "APP_TAR=example.com/app:1",
            ],
            &format!("image-package: version \"{version}\": a Debian upstream version"),
        );
    }
}

#[test]
fn refuses_an_architecture_that_is_not_one_debian_architecture() {
    for arch in ["amd64\n/../../../../esc", "amd64/esc", "-amd64", ".amd64"] {
        refused(
            &[
                "--arch",
                arch,
                "--engine",
                "docker",
                "APP_TAR=example.com/app:1",
            ],
            &format!("image-package: architecture \"{arch}\": a Debian architecture"),
        );
    }
}

#[test]
fn refuses_a_suite_that_is_not_one_code_name() {
    for suite in [
        "trixie\n/../../../../esc",
        "trixie/esc",
        "-trixie",
        ".trixie",
    ] {
        refused(
            &[
                "--suite",
                suite,
                "--engine",
                "docker",
                "APP_TAR=example.com/app:1",
            ],
            &format!("image-package: suite \"{suite}\": a Debian release's code name"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bad input to the steps, as the class runs them
// ---------------------------------------------------------------------------------------

/// Runs `sh STEPS args...` as the class does, under the steps' own name in messages.
fn step(args: &[&str]) -> Output {
    run(Command::new("sh")
        .arg(project(STEPS))
        .args(args)
        .env_remove("IMAGE_PACKAGE_PROG"))
}

/// Checks that a step failed saying `message`, with nothing on standard output (which the class
/// writes to ${BPN}.service).
fn step_refused(out: &Output, message: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(message),
        "stderr does not say {message:?}:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "printed {:?}", text(&out.stdout));
}

#[test]
fn the_unit_step_refuses_a_name_that_is_not_one_debian_package_name() {
    let units = project(UNITS);
    for name in NOT_A_PACKAGE_NAME {
        let out = step(&["unit", units.to_str().unwrap(), name, "docker", "0"]);
        step_refused(
            &out,
            &format!("image-package-steps: package name \"{name}\": lower-case letters, digits"),
        );
    }
}

#[test]
fn the_install_images_step_refuses_a_name_that_is_not_one_debian_package_name_and_writes_nothing() {
    for name in NOT_A_PACKAGE_NAME {
        let dir = TempDir::new("ipkg-steps");
        let tar = dir.join("app.tar");
        fs::write(&tar, &Fixture::new("example.com/app:1").tar).unwrap();
        let dest = dir.join("D");
        let out = step(&[
            "install-images",
            dest.to_str().unwrap(),
            name,
            "zst",
            &format!("{}=example.com/app:1", tar.display()),
        ]);
        step_refused(
            &out,
            &format!("image-package-steps: package name \"{name}\": lower-case letters, digits"),
        );
        let written: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "app.tar")
            .collect();
        assert!(written.is_empty(), "{name:?}: wrote {written:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The pack step (CONTAINER_LOADER_PACK), as the class runs it
// ---------------------------------------------------------------------------------------

/// The zstd seekable format's footer magic, last in every layer-framed archive (little-endian).
#[cfg(feature = "pack")]
const SEEKABLE_MAGIC: [u8; 4] = 0x8F92_EAB1_u32.to_le_bytes();

/// A fetched archive as Isar's docker fetcher leaves it (a zstd docker-archive) in `dir`.
fn fetched_archive(dir: &TempDir, fixture: &Fixture) -> PathBuf {
    let archive = dir.join("example.com.app:1.zst");
    fs::write(&archive, Codec::Zstd.compress(&fixture.tar)).unwrap();
    archive
}

/// The steps script's `pack ARCHIVE OUT TOOL`.
fn pack_step(archive: &Path, out: &Path, tool: &Path) -> Output {
    let arg = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
    step(&["pack", &arg(archive), &arg(out), &arg(tool)])
}

#[test]
fn the_pack_step_without_the_tool_says_to_run_make_pack_tool_and_writes_nothing() {
    let dir = TempDir::new("ipkg-pack");
    let archive = fetched_archive(&dir, &Fixture::new("example.com/app:1"));
    let out = dir.join("packed.zst");
    let tool = dir.join("dist/container-loader-pack");
    let run = pack_step(&archive, &out, &tool);
    step_refused(
        &run,
        &format!(
            "image-package-steps: {}: no such program; packing needs a container-loader built \
             with the pack feature: run `make pack-tool`",
            tool.display()
        ),
    );
    assert!(!out.exists());
}

#[test]
fn the_pack_step_fails_naming_the_pack_feature_when_the_tool_cannot_pack() {
    let dir = TempDir::new("ipkg-pack");
    let archive = fetched_archive(&dir, &Fixture::new("example.com/app:1"));
    // What the device build answers `pack` with (a usage error).
    let tool = dir.join("container-loader");
    fs::write(
        &tool,
        "#!/bin/sh\necho 'container-loader: this build has no pack' >&2\nexit 2\n",
    )
    .unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join("packed.zst");
    let run = pack_step(&archive, &out, &tool);
    step_refused(
        &run,
        &format!(
            "{}: {} pack failed (exit 2); packing needs a container-loader built with the pack \
             feature",
            archive.display(),
            tool.display()
        ),
    );
}

/// Packs with the binary cargo built for this run, which has `pack` in a `--features pack` run.
#[cfg(feature = "pack")]
#[test]
fn the_pack_step_writes_a_layer_framed_archive_that_zstd_decodes_to_the_fetched_tar() {
    let dir = TempDir::new("ipkg-pack");
    let fixture = Fixture::build(&["example.com/app:1"], 3);
    let archive = fetched_archive(&dir, &fixture);
    let out = dir.join("packed.zst");
    let tool = Path::new(env!("CARGO_BIN_EXE_container-loader"));
    let run = pack_step(&archive, &out, tool);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let packed = fs::read(&out).unwrap();
    assert!(
        packed.ends_with(&SEEKABLE_MAGIC),
        "no seek table at the end of the archive"
    );
    assert!(pipe("zstd", &["-q", "-d", "-c"], &packed) == fixture.tar);
    let mode = fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}
