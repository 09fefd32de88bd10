//! A real machine: Debian 13 booted under qemu with the loader and two image packages
//! installed, one for podman and one for docker (its archives deleted after load), several
//! boots in a row on one disk.
//!
//! `make vm-base` builds the base root filesystem once (kernel, systemd, docker.io, podman);
//! each run copies it, installs the loader and the image packages, adds the example
//! application adapted to each engine and a report unit, and makes an ext4 disk image of the
//! copy with `mkfs.ext4 -d` (no loop mount). qemu boots the disk's own kernel and initrd
//! (KVM when /dev/kvm can be opened, TCG otherwise); once boot has finished, the report unit
//! writes the loaders' journal (`journalctl -o json`), `systemctl show` and `is-failed`,
//! `systemd-analyze blame`, the engines' images and containers and the markers into
//! /var/lib/vmtest/reports/N, and powers off. The test reads that directory out of the disk
//! image with debugfs, and writes into it with debugfs between boots.
//!
//! Ignored by default (minutes, and the base root): `make vm-test` runs these tests with
//! `--ignored --test-threads=1`. The boots happen in order on one disk, each once per run,
//! whichever test asks for it first; each test asserts its own boot's behaviour.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use common::*;
use device::debian_root;
use device::qemu::{self, Report};
use device::*;

/// The base root filesystem `make vm-base` builds; $CONTAINER_LOADER_VM_BASE points elsewhere.
const DEFAULT_VM_BASE: &str = "target/vm/trixie";
/// This run's root copy, disk image, serial logs and reports; the next run replaces it.
const RUN_DIR: &str = "target/vm/run";
/// The loader units' times from `systemd-analyze blame`, the figure docs cite.
const BLAME_FILE: &str = "target/vm/blame.txt";
/// Inside the machine: the report unit writes boot N's results into REPORTS_DIR/N.
const REPORTS_DIR: &str = "/var/lib/vmtest/reports";
/// Inside the machine: a shell script the prepare unit runs before the loaders, when present.
const PREPARE_SCRIPT: &str = "/etc/vmtest-prepare.sh";
/// Free space in the disk image beyond the root's files: the engines' stores and what they load.
const DISK_HEADROOM: u64 = 2 << 30;
/// The builder of image packages.
const IMAGE_PACKAGE: &str = "isar/scripts/image-package";
/// Where the host's static busybox is (busybox-static), copied into the images the apps run.
const BUSYBOX: &str = "/bin/busybox";

/// The image packages: /usr/share/PKG/image.list, one loader instance each.
const PODMAN_PKG: &str = "vmtest-podman-images";
const DOCKER_PKG: &str = "vmtest-docker-images";
/// Each package ships an image an application runs (busybox) and one nothing runs.
const PODMAN_APP: &str = "localhost/vmtest/podmanapp:1";
const PODMAN_EXTRA: &str = "localhost/vmtest/podmanextra:1";
const DOCKER_APP: &str = "localhost/vmtest/dockerapp:1";
const DOCKER_EXTRA: &str = "localhost/vmtest/dockerextra:1";
/// The example application (systemd/examples/example-app.service), one copy per engine.
const PODMAN_APP_UNIT: &str = "vmtest-app-podman.service";
const DOCKER_APP_UNIT: &str = "vmtest-app-docker.service";
/// The container name example-app.service gives its container.
const APP_CONTAINER: &str = "example-app";

/// The boots, in order.
const BOOT_FIRST: usize = 1;
/// Every image is present already.
const BOOT_AGAIN: usize = 2;
/// PODMAN_EXTRA's archive truncated; both podman images removed from podman before the loader.
const BOOT_CORRUPT: usize = 3;
/// The archive as it was shipped again; nothing removed.
const BOOT_REPAIRED: usize = 4;

/// An image package's unit, named after the package as the Isar classes name it.
fn loader_unit(pkg: &str) -> String {
    format!("{pkg}.service")
}

// ---------------------------------------------------------------------------------------
// The behaviours
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn first_boot_loads_every_image_of_both_packages_with_a_line_each_at_priority_info() {
    let boot = report(BOOT_FIRST);
    for (pkg, refs, images) in [
        (PODMAN_PKG, [PODMAN_APP, PODMAN_EXTRA], "podman-images.txt"),
        (DOCKER_PKG, [DOCKER_APP, DOCKER_EXTRA], "docker-images.txt"),
    ] {
        assert_eq!(boot.is_failed(&loader_unit(pkg)), "active", "{boot:?}");
        for reference in refs {
            boot.assert_line(pkg, &format!("{reference}: loaded from "), 6);
            assert!(
                boot.has_line(images, reference),
                "{images}: {:?}, {boot:?}",
                boot.lines(images)
            );
        }
    }
}

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn first_boot_deletes_the_docker_packages_archives_and_keeps_the_podman_ones() {
    let boot = report(BOOT_FIRST);
    for reference in [DOCKER_APP, DOCKER_EXTRA] {
        boot.assert_line(DOCKER_PKG, &format!("{reference}: deleted "), 6);
    }
    assert_eq!(
        boot.lines(&archives_file(DOCKER_PKG)),
        Vec::<String>::new(),
        "{boot:?}"
    );
    let kept = boot.lines(&archives_file(PODMAN_PKG));
    assert_eq!(kept.len(), 2, "{kept:?}, {boot:?}");
}

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn first_boot_starts_the_example_app_on_each_engine_once_its_marker_is_there() {
    let boot = report(BOOT_FIRST);
    for reference in [PODMAN_APP, PODMAN_EXTRA, DOCKER_APP, DOCKER_EXTRA] {
        // systemd-escape's spelling, for references with no character but `/` to escape.
        let marker = reference.replace('/', "-");
        assert!(
            boot.has_line("markers.txt", &marker),
            "{marker}: {:?}, {boot:?}",
            boot.lines("markers.txt")
        );
    }
    for (unit, ps, reference) in [
        (PODMAN_APP_UNIT, "podman-ps.txt", PODMAN_APP),
        (DOCKER_APP_UNIT, "docker-ps.txt", DOCKER_APP),
    ] {
        assert_eq!(boot.is_failed(unit), "active", "{unit}: {boot:?}");
        let running = format!("{APP_CONTAINER} {reference}");
        assert!(
            boot.has_line(ps, &running),
            "{ps}: {:?}, {boot:?}",
            boot.lines(ps)
        );
    }
}

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn second_boot_loads_nothing_and_records_the_units_times() {
    let boot = report(BOOT_AGAIN);
    for (pkg, refs) in [
        (PODMAN_PKG, [PODMAN_APP, PODMAN_EXTRA]),
        (DOCKER_PKG, [DOCKER_APP, DOCKER_EXTRA]),
    ] {
        assert_eq!(boot.is_failed(&loader_unit(pkg)), "active", "{boot:?}");
        for reference in refs {
            boot.assert_line(pkg, &format!("{reference}: present, skipped"), 6);
        }
        let loaded = boot
            .journal(pkg)
            .into_iter()
            .find(|(_, m)| m.contains("loaded from"));
        assert_eq!(
            loaded, None,
            "{pkg}: nothing should load on the second boot"
        );
    }

    let first = report(BOOT_FIRST);
    let mut text = String::new();
    for (name, boot) in [
        ("first boot (loads)", &first),
        ("second boot (nothing to load)", &boot),
    ] {
        text.push_str(&format!(
            "# {name}: systemd-analyze blame, loader and engine units\n"
        ));
        for line in boot.lines("blame.txt") {
            let unit = line.split_whitespace().last().unwrap_or("");
            if [PODMAN_PKG, DOCKER_PKG]
                .iter()
                .any(|p| unit == loader_unit(p))
                || ["docker.service", "podman.service"].contains(&unit)
            {
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    for pkg in [PODMAN_PKG, DOCKER_PKG] {
        let unit = loader_unit(pkg);
        assert!(
            text.lines().filter(|l| l.ends_with(&unit)).count() == 2,
            "{unit}:\n{text}"
        );
    }
    let path = project(BLAME_FILE);
    fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("{text}(written to {BLAME_FILE})");
}

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn corrupt_archive_fails_its_entry_at_priority_err_the_others_load_and_the_unit_fails() {
    let boot = report(BOOT_CORRUPT);
    boot.assert_line(PODMAN_PKG, &format!("{PODMAN_EXTRA}: failed: "), 3);
    boot.assert_line(PODMAN_PKG, &format!("{PODMAN_APP}: loaded from "), 6);
    assert_eq!(
        boot.is_failed(&loader_unit(PODMAN_PKG)),
        "failed",
        "{boot:?}"
    );
    let images = boot.lines("podman-images.txt");
    assert!(
        boot.has_line("podman-images.txt", PODMAN_APP),
        "{images:?}, {boot:?}"
    );
    assert!(
        !boot.has_line("podman-images.txt", PODMAN_EXTRA),
        "{images:?}, {boot:?}"
    );
    // The docker package is untouched by the failure next door.
    assert_eq!(
        boot.is_failed(&loader_unit(DOCKER_PKG)),
        "active",
        "{boot:?}"
    );
    boot.assert_line(DOCKER_PKG, &format!("{DOCKER_APP}: present, skipped"), 6);
}

#[test]
#[ignore = "boots a virtual machine: make vm-test"]
fn entry_that_failed_is_retried_on_the_next_boot_and_loads_once_its_archive_is_repaired() {
    let boot = report(BOOT_REPAIRED);
    boot.assert_line(PODMAN_PKG, &format!("{PODMAN_EXTRA}: loaded from "), 6);
    boot.assert_line(PODMAN_PKG, &format!("{PODMAN_APP}: present, skipped"), 6);
    assert_eq!(
        boot.is_failed(&loader_unit(PODMAN_PKG)),
        "active",
        "{boot:?}"
    );
    assert!(
        boot.has_line("podman-images.txt", PODMAN_EXTRA),
        "{:?}, {boot:?}",
        boot.lines("podman-images.txt")
    );
}

// ---------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------

/// Boot `n`'s report, booting the machine up to it first (built on the first call).
fn report(n: usize) -> Report {
    static MACHINE: Mutex<Option<Machine>> = Mutex::new(None);
    let mut guard = MACHINE
        .lock()
        .unwrap_or_else(|_| panic!("an earlier boot or the disk image failed: see its test"));
    let machine = guard.get_or_insert_with(Machine::build);
    while machine.reports.len() < n {
        let next = machine.reports.len() + 1;
        machine.prepare(next);
        machine.boot(next);
    }
    machine.reports[n - 1].clone()
}

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

struct Machine {
    run: PathBuf,
    disk: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    reports: Vec<Report>,
}

impl Machine {
    fn build() -> Machine {
        require_root();
        for program in ["qemu-system-x86_64", "mkfs.ext4", "debugfs", "zstd", "gzip"] {
            require_program(program);
        }
        let base = match std::env::var_os("CONTAINER_LOADER_VM_BASE") {
            Some(p) if !p.is_empty() => project(&p.to_string_lossy()),
            _ => project(DEFAULT_VM_BASE),
        };
        assert!(
            base.join("usr/bin/podman").exists() && base.join("usr/sbin/dockerd").exists(),
            "{}: no base root filesystem (make vm-base)",
            base.display()
        );
        let started = Instant::now();
        let run = project(RUN_DIR);
        if run.exists() {
            fs::remove_dir_all(&run).unwrap_or_else(|e| panic!("{}: {e}", run.display()));
        }
        fs::create_dir_all(run.join("reports")).unwrap();
        let root = run.join("root");
        run_ok(Command::new("cp").arg("-a").arg(&base).arg(&root));

        install_packages(&root, &run);
        install_example_app(
            &root,
            PODMAN_APP_UNIT,
            PODMAN_PKG,
            PODMAN_APP,
            "/usr/bin/podman",
        );
        install_example_app(
            &root,
            DOCKER_APP_UNIT,
            DOCKER_PKG,
            DOCKER_APP,
            "/usr/bin/docker",
        );
        install_test_units(&root);

        let kernel = run.join("vmlinuz");
        let initrd = run.join("initrd.img");
        fs::copy(only_match(&root.join("boot"), "vmlinuz-"), &kernel).unwrap();
        fs::copy(only_match(&root.join("boot"), "initrd.img-"), &initrd).unwrap();

        let disk = run.join("disk.img");
        let used: u64 = run_ok(Command::new("du").arg("-sb").arg(&root))
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("du -sb prints a size");
        let size = (used + DISK_HEADROOM).div_ceil(1 << 20);
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "vmroot", "-d"])
                .arg(&root)
                .arg(&disk)
                .arg(format!("{size}M")),
        );
        fs::remove_dir_all(&root).unwrap();
        eprintln!(
            "vm: disk image {} MiB (root {} MiB) in {:.1} s",
            size,
            used >> 20,
            started.elapsed().as_secs_f64()
        );
        Machine {
            run,
            disk,
            kernel,
            initrd,
            reports: Vec::new(),
        }
    }

    /// What changes on the disk before boot `n`.
    fn prepare(&mut self, n: usize) {
        let images = format!("/usr/share/{PODMAN_PKG}/images");
        let archive = self.archive_of(PODMAN_PKG, PODMAN_EXTRA);
        let shipped = self.run.join(format!("shipped-{archive}"));
        match n {
            BOOT_CORRUPT => {
                self.debugfs(&[&format!("dump {images}/{archive} {}", shipped.display())]);
                let whole = fs::read(&shipped).unwrap();
                assert!(whole.len() > 1000, "{archive}: {} bytes", whole.len());
                let cut = self.run.join(format!("truncated-{archive}"));
                fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
                let script = self.run.join("prepare.sh");
                fs::write(
                    &script,
                    format!(
                        "# Boot {n} only: podman forgets two of its package's images, so that \
                         the loader loads them again.\npodman rmi -f {PODMAN_EXTRA} {PODMAN_APP}\n"
                    ),
                )
                .unwrap();
                self.debugfs(&[
                    &format!("cd {images}"),
                    &format!("rm {archive}"),
                    &format!("write {} {archive}", cut.display()),
                    &format!("write {} {PREPARE_SCRIPT}", script.display()),
                ]);
            }
            BOOT_REPAIRED => {
                self.debugfs(&[
                    &format!("cd {images}"),
                    &format!("rm {archive}"),
                    &format!("write {} {archive}", shipped.display()),
                    &format!("rm {PREPARE_SCRIPT}"),
                ]);
            }
            _ => {}
        }
    }

    /// The archive `image.list` of `pkg` names for `reference`, read from the disk.
    fn archive_of(&self, pkg: &str, reference: &str) -> String {
        let list = self.debugfs(&[&format!("cat /usr/share/{pkg}/image.list")]);
        list.lines()
            .filter_map(|l| l.split_once(char::is_whitespace))
            .find(|(_, r)| r.trim() == reference)
            .map(|(a, _)| a.to_string())
            .unwrap_or_else(|| panic!("{pkg}: no {reference} in image.list:\n{list}"))
    }

    /// Runs debugfs `commands` on the disk, writable; returns its standard output.
    fn debugfs(&self, commands: &[&str]) -> String {
        let script = self.run.join("debugfs.cmd");
        fs::write(&script, commands.join("\n") + "\n").unwrap();
        let out = Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&self.disk)
            .stdin(Stdio::null())
            .output()
            .expect("run debugfs");
        // debugfs exits 0 whatever its commands did: their complaints are on stderr.
        let err = String::from_utf8_lossy(&out.stderr);
        let complaints: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
            .collect();
        assert!(complaints.is_empty(), "debugfs {commands:?}:\n{err}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn boot(&mut self, n: usize) {
        let serial = self.run.join(format!("serial-{n}.log"));
        let machine = qemu::Machine {
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            append: "root=/dev/vda rw".to_string(),
            drives: vec![format!(
                "file={},format=raw,if=virtio,cache=unsafe",
                self.disk.display()
            )],
            nic: false,
        };
        let booted = machine.boot(&serial);
        let dir = self.run.join("reports");
        self.debugfs(&[&format!("rdump {REPORTS_DIR}/{n} {}", dir.display())]);
        let dir = dir.join(n.to_string());
        assert!(
            dir.join("done").exists(),
            "boot {n} wrote no report; serial console:\n{}",
            qemu::tail(&serial)
        );
        eprintln!(
            "vm: boot {n} ({}) to power-off: {:.1} s",
            booted.accel, booted.seconds
        );
        self.reports.push(Report {
            boot: n,
            dir,
            seconds: booted.seconds,
        });
    }
}

/// The one entry of `dir` whose name starts with `prefix` (the kernel, its initrd).
fn only_match(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{}: {prefix}*: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------
// What goes into the machine
// ---------------------------------------------------------------------------------------

/// The loader's package and one image package per engine, built by isar/scripts/image-package
/// from the fixtures' docker-archives, installed with dpkg inside the root, as an image build
/// installs them (their maintainer scripts enable the instances).
fn install_packages(root: &Path, work: &Path) {
    let busybox = fs::read(BUSYBOX).unwrap_or_else(|e| panic!("{BUSYBOX}: {e}"));
    let app =
        |reference: &str| Fixture::with_files(reference, &[("bin/busybox", &busybox[..], 0o755)]);
    let podman = image_package(
        work,
        PODMAN_PKG,
        &["--engine", "podman", "--compression", "zst"],
        &[app(PODMAN_APP), Fixture::new(PODMAN_EXTRA)],
    );
    let docker = image_package(
        work,
        DOCKER_PKG,
        &[
            "--engine",
            "docker",
            "--delete-after-load",
            "--compression",
            "gz",
        ],
        &[app(DOCKER_APP), Fixture::new(DOCKER_EXTRA)],
    );
    let debs = [loader_deb(), podman, docker];
    let inside = root.join("tmp/vmtest-debs");
    fs::create_dir_all(&inside).unwrap();
    let mut args = vec!["dpkg".to_string(), "-i".to_string()];
    for deb in &debs {
        let name = deb.file_name().unwrap();
        fs::copy(deb, inside.join(name)).unwrap_or_else(|e| panic!("{}: {e}", deb.display()));
        args.push(format!("/tmp/vmtest-debs/{}", name.to_string_lossy()));
    }
    // dpkg's maintainer scripts want /proc: mounted in a mount namespace of their own.
    run_ok(
        in_private_mounts(
            r#"root=$1; shift; mount -t proc proc "$root/proc" && exec chroot "$root" "$@""#,
        )
        .arg(root)
        .args(&args),
    );
    fs::remove_dir_all(&inside).unwrap();
}

/// The loader's .deb: $CONTAINER_LOADER_DEB, or the one amd64 package `make deb` left in dist/deb.
fn loader_deb() -> PathBuf {
    match std::env::var_os("CONTAINER_LOADER_DEB") {
        Some(p) if !p.is_empty() => project(&p.to_string_lossy()),
        _ => debian_root::loader_deb("amd64"),
    }
}

/// `isar/scripts/image-package --out DIR --name PKG OPTIONS IMAGE.tar=REF...`: the .deb's path.
fn image_package(work: &Path, pkg: &str, options: &[&str], images: &[Fixture]) -> PathBuf {
    let out = work.join("debs");
    let tars = work.join(format!("{pkg}-tars"));
    fs::create_dir_all(&tars).unwrap();
    let mut cmd = Command::new(project(IMAGE_PACKAGE));
    cmd.arg("--out")
        .arg(&out)
        .args(["--name", pkg])
        .args(options);
    for (i, fixture) in images.iter().enumerate() {
        let tar = tars.join(format!("{i}.tar"));
        fs::write(&tar, &fixture.tar).unwrap();
        cmd.arg(format!("{}={}", tar.display(), fixture.reference));
    }
    let printed = run_ok(cmd.stderr(Stdio::null()));
    let deb = PathBuf::from(printed.lines().last().unwrap_or("").trim());
    assert!(
        deb.is_file(),
        "image-package printed no .deb path:\n{printed}"
    );
    deb
}

/// systemd/examples/example-app.service for `reference` on `engine`: the example itself,
/// with its package, image and engine replaced, and a command busybox has.
fn install_example_app(root: &Path, unit: &str, pkg: &str, reference: &str, engine: &str) {
    let example = read(&project("systemd/examples/example-app.service"));
    let marker = reference.replace('/', "-");
    let mut text = example.clone();
    for (from, to) in [
        ("container-loader@example.service".to_string(), loader_unit(pkg)),
        ("/run/container-loader/images/debian:bookworm".to_string(), format!("/run/container-loader/images/{marker}")),
        (
            format!("/usr/bin/docker run --rm --name {APP_CONTAINER} debian:bookworm sleep infinity"),
            format!("{engine} run --rm --network none --name {APP_CONTAINER} {reference} /bin/busybox sleep infinity"),
        ),
        (format!("/usr/bin/docker stop {APP_CONTAINER}"), format!("{engine} stop {APP_CONTAINER}")),
    ] {
        assert!(text.contains(&from), "example-app.service no longer says {from:?}:\n{example}");
        text = text.replace(&from, &to);
    }
    let path = root.join("etc/systemd/system").join(unit);
    fs::write(&path, text).unwrap();
    enable(root, unit, &format!("/etc/systemd/system/{unit}"));
}

/// The report unit and its script, and the prepare unit that runs PREPARE_SCRIPT if present.
fn install_test_units(root: &Path) {
    let units = [
        loader_unit(PODMAN_PKG),
        loader_unit(DOCKER_PKG),
        PODMAN_APP_UNIT.to_string(),
        DOCKER_APP_UNIT.to_string(),
    ]
    .join(" ");
    let archive_dirs = [PODMAN_PKG, DOCKER_PKG]
        .map(|pkg| {
            format!(
                "ls -1 /usr/share/{pkg}/images > \"$out/{}\"",
                archives_file(pkg)
            )
        })
        .join("\n");
    let script = format!(
        r#"#!/bin/sh
# Writes this boot's results into {REPORTS_DIR}/N (N: this boot's number), then powers off.
# systemd-analyze blame needs the boot finished, so this runs as a Type=exec service, whose
# start job does not hold the boot up, and waits for it.
set -u
uptime() {{ cut -d' ' -f1 /proc/uptime; }}
systemctl is-system-running --wait >/dev/null
finished=$(uptime)
n=1
while [ -e "{REPORTS_DIR}/$n" ]; do n=$((n + 1)); done
out={REPORTS_DIR}/$n
mkdir -p "$out"
# ENGINE UNIT: the app's container starts a moment after its unit, so wait for it while the
# unit runs; then the engine's images and containers. Both engines at once: their CLIs are
# slow to start under emulation.
engine_report() {{
    for i in $(seq 60); do
        systemctl is-active -q "$2" || break
        "$1" ps --format '{{{{.Names}}}}' | grep -qx {APP_CONTAINER} && break
        sleep 0.5
    done
    "$1" images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' > "$out/$1-images.txt" 2>&1
    "$1" ps --format '{{{{.Names}}}} {{{{.Image}}}}' > "$out/$1-ps.txt" 2>&1
}}
engine_report podman {PODMAN_APP_UNIT} &
engine_report docker {DOCKER_APP_UNIT} &
wait
journalctl -b -o json --no-pager -u {PODMAN_PKG}.service -u {DOCKER_PKG}.service > "$out/loader-journal.json"
journalctl -b --no-pager > "$out/journal.txt"
for u in {units}; do
    systemctl show "$u" > "$out/show-$u.txt"
    systemctl is-failed "$u" > "$out/is-failed-$u.txt"
done
systemd-analyze blame --no-pager > "$out/blame.txt" 2>&1
ls -1 /run/container-loader/images > "$out/markers.txt"
cp /run/container-loader/status.json "$out/"
{archive_dirs}
touch "$out/done"
sync
# Stopped here rather than at power-off: busybox, PID 1 of the apps' containers, ignores
# SIGTERM, which would cost each engine's stop timeout (10 s).
podman stop -t 0 {APP_CONTAINER} >/dev/null 2>&1 &
docker stop -t 0 {APP_CONTAINER} >/dev/null 2>&1 &
wait
echo "vmtest-report: boot finished at $finished s of uptime, report written at $(uptime) s"
systemctl poweroff --no-block
"#
    );
    // The apps run with --network none: docker's bridge and iptables rules, which take it
    // seconds to set up under emulation at every start, serve nothing here.
    fs::create_dir_all(root.join("etc/docker")).unwrap();
    fs::write(
        root.join("etc/docker/daemon.json"),
        r#"{"bridge": "none", "iptables": false, "ip6tables": false}"#,
    )
    .unwrap();
    let sbin = root.join("usr/local/sbin");
    fs::create_dir_all(&sbin).unwrap();
    let path = sbin.join("vmtest-report");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();

    let report_unit =
        "[Unit]\nDescription=Write this boot's results for tests/vm.rs, then power off\n\n\
        [Service]\nType=exec\nExecStart=/usr/local/sbin/vmtest-report\n\
        StandardOutput=journal+console\n\n\
        [Install]\nWantedBy=multi-user.target\n";
    let prepare_unit = format!(
        "[Unit]\nDescription=Change the engines before the loaders run, for tests/vm.rs\n\
         ConditionPathExists={PREPARE_SCRIPT}\nBefore={} {}\n\
         \n\
         [Service]\nType=oneshot\nExecStart=/bin/sh -ex {PREPARE_SCRIPT}\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        loader_unit(PODMAN_PKG),
        loader_unit(DOCKER_PKG)
    );
    for (unit, text) in [
        ("vmtest-report.service", report_unit.to_string()),
        ("vmtest-prepare.service", prepare_unit),
    ] {
        fs::write(root.join("etc/systemd/system").join(unit), text).unwrap();
        enable(root, unit, &format!("/etc/systemd/system/{unit}"));
    }
}

fn archives_file(pkg: &str) -> String {
    format!("archives-{pkg}.txt")
}

/// `systemctl enable` for a unit wanted by multi-user.target, done as a link in the root.
fn enable(root: &Path, unit: &str, target: &str) {
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    symlink(target, wants.join(unit)).unwrap();
}

// ---------------------------------------------------------------------------------------
// Reading a boot's report
// ---------------------------------------------------------------------------------------

impl Report {
    fn is_failed(&self, unit: &str) -> String {
        self.text(&format!("is-failed-{unit}.txt"))
            .trim()
            .to_string()
    }

    /// The journal lines of `pkg`'s loader instance: (PRIORITY, MESSAGE).
    fn journal(&self, pkg: &str) -> Vec<(u8, String)> {
        let unit = loader_unit(pkg);
        self.text("loader-journal.json")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("journal JSON line"))
            .filter(|v| v["_SYSTEMD_UNIT"] == unit.as_str())
            .filter_map(|v| {
                let priority = v["PRIORITY"].as_str()?.parse().ok()?;
                Some((priority, v["MESSAGE"].as_str()?.to_string()))
            })
            .collect()
    }

    /// Asserts a journal line of `pkg`'s instance containing `part`, at `priority`.
    fn assert_line(&self, pkg: &str, part: &str, priority: u8) {
        let lines = self.journal(pkg);
        let found = lines.iter().find(|(_, m)| m.contains(part));
        match found {
            Some((p, _)) => assert_eq!(*p, priority, "priority of {part:?}: {lines:#?}\n{self:?}"),
            None => panic!("{pkg}: no journal line containing {part:?}: {lines:#?}\n{self:?}"),
        }
    }
}
