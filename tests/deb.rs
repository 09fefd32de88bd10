//! The Debian packages `make deb` builds in dist/deb/: the loader's, one per architecture, and
//! its initramfs hooks' (container-loader-initramfs, Architecture: all).
//!
//! The amd64 package is installed into copies of Debian 12 and 13 root filesystems with systemd
//! (`make roots`: target/roots/{bookworm,trixie}; each test copies one), by the root's own dpkg,
//! chrooted, in a private mount namespace with a /proc of its own (tests/device/debian_root.rs),
//! so neither the roots nor this machine change. The packages of the other architectures are read
//! with dpkg-deb.
//!
//! Root is needed (chroot, mounts); nothing is skipped: without dist/deb/ or the roots the tests
//! fail and say which make target builds them. Lintian runs in `make deb`, which fails on an
//! error; these tests check what lintian cannot: the files, the units and the maintainer
//! scripts at work.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use device::debian_root::DebianRoot;
use device::{read, run, run_ok};

/// Where `make deb` writes the packages, relative to the project.
const DEB_DIR: &str = "dist/deb";
/// The binary packages' names.
const PACKAGE: &str = "container-loader";
const INITRAMFS_PACKAGE: &str = "container-loader-initramfs";
/// What the initramfs package holds, in the root.
const INITRAMFS_HOOK: &str = "usr/share/initramfs-tools/hooks/container-loader";
const DRACUT_MODULE: &str = "usr/lib/dracut/modules.d/90container-loader/module-setup.sh";
/// The package's changelog, whose first line gives the version of every .deb.
const CHANGELOG: &str = "debian/changelog";
/// The architectures `make deb` builds, each with the ELF machine (e_machine) and class
/// (EI_CLASS: 1 for 32-bit, 2 for 64-bit) its binary must have.
const ARCHS: [(&str, u16, u8); 3] = [("amd64", 62, 2), ("arm64", 183, 2), ("armhf", 40, 1)];
/// Where the package installs the binary, in the root.
const BIN: &str = "usr/bin/container-loader";
/// Debian's unit directory (/usr/lib/systemd/system through the /lib link on Debian 13).
const UNIT_DIR: &str = "lib/systemd/system";
const UNIT: &str = "container-loader.service";
const TEMPLATE: &str = "container-loader@.service";
/// An instance of the template, as an image package `example` enables it.
const INSTANCE: &str = "container-loader@example.service";
const DROP_IN_DIR: &str = "usr/share/container-loader/drop-ins";
const DOC_DIR: &str = "usr/share/doc/container-loader";
/// What the tests compare before and after install and purge leaves out, because dpkg and apt
/// change it by design: dpkg's database (status, status-old, the package's info/ files until
/// the purge removes them), dpkg's log, and apt's log and caches (apt is not used, but an
/// `apt install ./x.deb` writes there).
const DPKG_OWN_FILES: [&str; 4] = [
    "var/lib/dpkg",
    "var/log/dpkg.log",
    "var/log/apt",
    "var/cache/apt",
];

/// Declares, for each behaviour `fn(&str)`, a module of the same name with one test per Debian
/// release: `bookworm` (12) and `trixie` (13), the suites of target/roots/.
macro_rules! on_debian_12_and_13 {
    ($($behaviour:ident;)*) => {
        $(
            mod $behaviour {
                #[test]
                fn bookworm() {
                    super::$behaviour("bookworm")
                }
                #[test]
                fn trixie() {
                    super::$behaviour("trixie")
                }
            }
        )*
    };
}

on_debian_12_and_13! {
    install_puts_the_files_where_the_docs_say;
    the_initramfs_package_puts_the_hooks_where_the_tools_look;
    units_and_an_instance_with_drop_ins_pass_systemd_analyze_verify;
    install_enables_the_plain_unit_and_not_the_template;
    install_upgrade_and_remove_start_and_stop_no_unit;
    purge_leaves_no_file_behind;
}

// ---------------------------------------------------------------------------------------
// Installed into Debian 12 and 13
// ---------------------------------------------------------------------------------------

fn install_puts_the_files_where_the_docs_say(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    install_amd64(&root);

    let out = run_ok(&mut root.command(&["container-loader", "--version"]));
    assert!(
        out.starts_with(&format!("container-loader {} ", cargo_version())),
        "`container-loader --version` in the {suite} root: {out}"
    );
    assert_eq!(device::mode(&root.join(BIN)), 0o755);
    // docs/install.md's table, with dh_compress's .gz on the manual page and the longer docs.
    let files = [
        format!("{UNIT_DIR}/{UNIT}"),
        format!("{UNIT_DIR}/{TEMPLATE}"),
        format!("{DROP_IN_DIR}/docker.conf"),
        format!("{DROP_IN_DIR}/podman.conf"),
        format!("{DROP_IN_DIR}/delete-after-load.conf"),
        "usr/share/man/man8/container-loader.8.gz".into(),
        format!("{DOC_DIR}/README.md.gz"),
        format!("{DOC_DIR}/docs/install.md.gz"),
        format!("{DOC_DIR}/docs/operations.md.gz"),
        format!("{DOC_DIR}/docs/design.md.gz"),
        format!("{DOC_DIR}/docs/performance.md.gz"),
        format!("{DOC_DIR}/examples/inittab"),
        format!("{DOC_DIR}/examples/rcS"),
        format!("{DOC_DIR}/examples/initramfs-tools.conf"),
        format!("{DOC_DIR}/examples/dracut.conf"),
        format!("{DOC_DIR}/examples/example-app.service"),
        format!("{DOC_DIR}/examples/example-app.path"),
        format!("{DOC_DIR}/copyright"),
        format!("{DOC_DIR}/changelog.Debian.gz"),
    ];
    let missing: Vec<&String> = files.iter().filter(|f| !root.join(f).is_file()).collect();
    assert!(
        missing.is_empty(),
        "missing in the {suite} root: {missing:?}"
    );
    // The units run the binary where the package put it.
    let unit = read(&root.join(format!("{UNIT_DIR}/{UNIT}")));
    assert!(unit.contains(&format!("ExecStart=/{BIN} load ")), "{unit}");
    let copyright = read(&root.join(format!("{DOC_DIR}/copyright")));
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        ) && copyright.contains("License: MIT"),
        "not a machine-readable MIT copyright:\n{copyright}"
    );
}

fn the_initramfs_package_puts_the_hooks_where_the_tools_look(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    install_amd64(&root);
    root.dpkg_install(&package_path(INITRAMFS_PACKAGE, "all"), &[]);
    for file in [INITRAMFS_HOOK, DRACUT_MODULE] {
        assert_eq!(device::mode(&root.join(file)), 0o755, "{file}");
    }
}

fn units_and_an_instance_with_drop_ins_pass_systemd_analyze_verify(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    install_amd64(&root);
    // The instance as docs/install.md links its drop-ins (absolute links, resolved in the
    // chroot): podman.conf as the engine, and the deletion drop-in.
    let dir = root.join(format!("etc/systemd/system/{INSTANCE}.d"));
    fs::create_dir_all(&dir).unwrap();
    symlink(
        format!("/{DROP_IN_DIR}/podman.conf"),
        dir.join("engine.conf"),
    )
    .unwrap();
    symlink(
        format!("/{DROP_IN_DIR}/delete-after-load.conf"),
        dir.join("delete-after-load.conf"),
    )
    .unwrap();
    // --man=no: the roots have no man-db to look the Documentation= page up with
    // (install_puts_the_files_where_the_docs_say checks that the page is installed).
    let verify = |root: &DebianRoot| {
        run(&mut root.command(&["systemd-analyze", "verify", "--man=no", UNIT, INSTANCE]))
    };

    // The drop-in is read: the podman.socket it requires is not installed.
    let (code, out) = verify(&root);
    assert!(
        code != 0 && out.contains("podman.socket"),
        "without podman, the instance's engine drop-in should fail verify (exit {code}):\n{out}"
    );
    // A stand-in for the device's podman.socket.
    fs::write(
        root.join("etc/systemd/system/podman.socket"),
        "[Socket]\nListenStream=/run/podman/podman.sock\n",
    )
    .unwrap();
    let (code, out) = verify(&root);
    assert_eq!(
        code, 0,
        "systemd-analyze verify in the {suite} root:\n{out}"
    );
    assert!(
        out.trim().is_empty(),
        "systemd-analyze verify in the {suite} root warned:\n{out}"
    );
}

fn install_enables_the_plain_unit_and_not_the_template(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    install_amd64(&root);

    let is_enabled = |unit: &str| {
        let (_, out) = run(&mut root.command(&["systemctl", "is-enabled", unit]));
        out.trim().to_string()
    };
    assert_eq!(is_enabled(UNIT), "enabled");
    assert_eq!(is_enabled(TEMPLATE), "disabled");
    assert_eq!(is_enabled(INSTANCE), "disabled");
    let wants = root.join(format!("etc/systemd/system/multi-user.target.wants/{UNIT}"));
    assert!(
        fs::symlink_metadata(&wants).is_ok(),
        "{} is missing",
        wants.display()
    );
    // deb-systemd-helper's record, which the purge uses to remove the link again.
    let state = root.join("var/lib/systemd/deb-systemd-helper-enabled");
    assert!(state.join(format!("{UNIT}.dsh-also")).is_file());
    assert!(state
        .join(format!("multi-user.target.wants/{UNIT}"))
        .exists());
    // Nothing anywhere names the template or an instance of it.
    for dir in [root.join("etc/systemd/system"), state] {
        let named = files_under(&dir, &dir)
            .into_iter()
            .filter(|f| f.contains("container-loader@"))
            .collect::<Vec<_>>();
        assert!(named.is_empty(), "{}: {named:?}", dir.display());
    }
}

fn install_upgrade_and_remove_start_and_stop_no_unit(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    // The maintainer scripts act on units only where systemd runs (/run/systemd/system), through
    // deb-systemd-invoke (start, restart, stop) or systemctl. Make them believe it runs, and
    // record each call: deb-systemd-invoke's are only recorded, systemctl's go on to the real one
    // (deb-systemd-helper calls it to enable).
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let log = "/run/unit-calls";
    for (shim, then) in [
        ("usr/local/sbin/deb-systemd-invoke", "exit 0"),
        ("usr/local/bin/systemctl", "exec /usr/bin/systemctl \"$@\""),
    ] {
        let script = format!("#!/bin/sh\necho \"${{0##*/}} $*\" >>{log}\n{then}\n");
        fs::write(root.join(shim), script).unwrap();
        fs::set_permissions(root.join(shim), fs::Permissions::from_mode(0o755)).unwrap();
    }

    install_amd64(&root);
    install_amd64(&root); // the same version again: the upgrade path of the scripts
    root.dpkg(&["--remove", PACKAGE]);

    let calls = fs::read_to_string(root.join(&log[1..])).unwrap_or_default();
    let acting: Vec<&str> = calls
        .lines()
        .filter(|l| {
            l.starts_with("deb-systemd-invoke")
                || l.split_whitespace().any(|w| {
                    matches!(
                        w,
                        "start" | "restart" | "try-restart" | "reload-or-restart" | "stop"
                    )
                })
        })
        .collect();
    assert!(
        acting.is_empty(),
        "dpkg started, restarted or stopped units in the {suite} root:\n{calls}"
    );
    // The scripts did call through the shims: the remove's postrm reloads systemd.
    assert!(
        calls.contains("daemon-reload"),
        "the shims saw no call at all:\n{calls}"
    );
}

fn purge_leaves_no_file_behind(suite: &str) {
    let root = DebianRoot::copy_of(suite);
    let before = root.files(&DPKG_OWN_FILES);
    install_amd64(&root);
    let installed = root.files(&DPKG_OWN_FILES);
    assert!(
        installed.iter().any(|f| f.starts_with(&format!("{BIN} "))),
        "the install added no {BIN}"
    );
    root.dpkg(&["--purge", PACKAGE]);
    let after = root.files(&DPKG_OWN_FILES);

    let left: Vec<&String> = after.difference(&before).collect();
    let lost: Vec<&String> = before.difference(&after).collect();
    assert!(
        left.is_empty() && lost.is_empty(),
        "install and purge changed the {suite} root\nleft behind: {left:#?}\ngone: {lost:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Every architecture's package
// ---------------------------------------------------------------------------------------

#[test]
fn changelog_version_is_cargo_version_with_a_debian_revision() {
    let version = deb_version();
    let (upstream, revision) = version
        .rsplit_once('-')
        .unwrap_or_else(|| panic!("{CHANGELOG}: version {version} has no Debian revision"));
    assert_eq!(
        upstream,
        cargo_version(),
        "{CHANGELOG}'s upstream version is not Cargo.toml's"
    );
    assert!(
        !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit()),
        "{CHANGELOG}: Debian revision {revision:?} is not a number"
    );
}

#[test]
fn each_architecture_holds_a_binary_for_its_machine() {
    for (arch, machine, class) in ARCHS {
        let dir = TempDir::new("deb-x");
        run_ok(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb_path(arch))
                .arg(dir.path()),
        );
        let elf = fs::read(dir.join(BIN)).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{arch}: /{BIN} is not an ELF file");
        assert_eq!(elf[4], class, "{arch}: /{BIN} has ELF class {}", elf[4]);
        assert_eq!(elf[5], 1, "{arch}: /{BIN} is not little-endian");
        let e_machine = u16::from_le_bytes([elf[18], elf[19]]);
        assert_eq!(
            e_machine, machine,
            "{arch}: /{BIN} is for ELF machine {e_machine}"
        );
    }
}

#[test]
fn each_architecture_ships_the_same_files_as_amd64() {
    let amd64 = deb_contents("amd64");
    assert!(amd64.contains(&format!("./{BIN}")), "{amd64:#?}");
    for (arch, _, _) in &ARCHS[1..] {
        let other = deb_contents(arch);
        assert_eq!(
            other.symmetric_difference(&amd64).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{arch}'s package differs from amd64's"
        );
    }
}

#[test]
fn the_loaders_package_leaves_the_initramfs_alone() {
    // No hook, so dpkg's update-initramfs trigger never fires for the loader: installing or
    // upgrading it does not rebuild an initramfs (which fails on a /boot without room for a
    // second copy, as on Isar's EFI images).
    for (arch, _, _) in ARCHS {
        let contents = deb_contents(arch);
        let hooks: Vec<&String> = contents
            .iter()
            .filter(|p| {
                p.starts_with("./usr/share/initramfs-tools") || p.starts_with("./usr/lib/dracut")
            })
            .collect();
        assert_eq!(hooks, Vec::<&String>::new(), "{arch}");
        let control = control_dir(&deb_path(arch));
        let triggers = control.join("triggers");
        assert!(!triggers.exists(), "{arch}: {}", read(&triggers));
    }
}

#[test]
fn the_initramfs_package_holds_the_hooks_and_triggers_their_rebuild() {
    let deb = package_path(INITRAMFS_PACKAGE, "all");
    let out = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for file in [INITRAMFS_HOOK, DRACUT_MODULE] {
        assert!(out.contains(&format!(" ./{file}\n")), "{file}:\n{out}");
    }
    assert!(!out.contains(&format!("./{BIN}")), "{out}");
    let field = |name: &str| {
        let (_, out) = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        out.trim_end().to_string()
    };
    assert_eq!(field("Architecture"), "all");
    assert_eq!(
        field("Depends"),
        format!("{PACKAGE} (>= {})", deb_version())
    );
    let triggers = read(&control_dir(&deb).join("triggers"));
    assert!(
        triggers
            .lines()
            .any(|l| l.trim() == "activate-noawait update-initramfs"),
        "{triggers}"
    );
}

#[test]
fn package_metadata_is_as_intended() {
    for (arch, _, _) in ARCHS {
        let deb = deb_path(arch);
        let field = |name: &str| {
            let (_, out) = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
            out.trim_end().to_string()
        };
        assert_eq!(field("Package"), PACKAGE);
        assert_eq!(field("Architecture"), arch);
        assert_eq!(field("Version"), deb_version());
        // Static binary: nothing to depend on. The engine is the device's choice.
        assert_eq!(
            field("Depends"),
            "",
            "{arch}: a static binary needs no Depends"
        );
        assert_eq!(field("Pre-Depends"), "");
        assert_eq!(
            field("Recommends"),
            "",
            "{arch}: a Recommends would pull in an engine"
        );
        assert_eq!(field("Suggests"), "docker.io | podman");
        assert_eq!(field("Section"), "admin");
        assert_eq!(field("Priority"), "optional");
        let description = field("Description");
        assert!(
            description.starts_with(
                "load the container images a root filesystem ships into docker or podman\n"
            ) && description.contains("container-loader@PKG.service")
                && description.contains("PKG.service made of it"),
            "{arch}: Description:\n{description}"
        );
        assert!(
            field("Maintainer").contains('@'),
            "{arch}: no Maintainer address"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The version on debian/changelog's first line: `container-loader (VERSION) ...`.
fn deb_version() -> String {
    let changelog = read(&project().join(CHANGELOG));
    let first = changelog.lines().next().unwrap_or_default();
    first
        .strip_prefix(&format!("{PACKAGE} ("))
        .and_then(|rest| rest.split_once(')'))
        .map(|(version, _)| version.to_string())
        .unwrap_or_else(|| {
            panic!("{CHANGELOG}: no `{PACKAGE} (VERSION)` on its first line: {first}")
        })
}

/// dist/deb/container-loader_VERSION_ARCH.deb, which must exist.
fn deb_path(arch: &str) -> PathBuf {
    package_path(PACKAGE, arch)
}

/// dist/deb/PACKAGE_VERSION_ARCH.deb, which must exist.
fn package_path(package: &str, arch: &str) -> PathBuf {
    let name = format!("{package}_{}_{arch}.deb", deb_version());
    let path = project().join(DEB_DIR).join(&name);
    assert!(
        path.is_file(),
        "{} is missing: run make deb (it builds the packages of every architecture into {DEB_DIR}/)",
        path.display()
    );
    path
}

/// A .deb's control files (its DEBIAN/), in a directory removed with the value.
fn control_dir(deb: &Path) -> TempDir {
    let dir = TempDir::new("deb-ctl");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(dir.path()));
    dir
}

/// The paths in a .deb (`./usr/bin/container-loader`), directories included.
fn deb_contents(arch: &str) -> BTreeSet<String> {
    let out = run_ok(
        Command::new("dpkg-deb")
            .arg("--contents")
            .arg(deb_path(arch)),
    );
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect()
}

/// Every path under `dir`, relative to `base`, without following links.
fn files_under(dir: &Path, base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        out.push(path.strip_prefix(base).unwrap().display().to_string());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(files_under(&path, base));
        }
    }
    out
}

/// The amd64 package installed into `root` by its dpkg.
fn install_amd64(root: &DebianRoot) {
    root.dpkg_install(&deb_path("amd64"), &[]);
}
