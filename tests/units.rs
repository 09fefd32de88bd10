//! The device files `make install` lays out, and the systemd units among them.
//!
//! `systemd-analyze verify` checks the installed units against a Debian system's own units
//! (this machine's /lib/systemd/system: the targets, docker.service, podman.socket). Then the
//! units run for real: a systemd 252 boots as PID 1 of fresh pid, mount, cgroup, uts, ipc and
//! net namespaces, sees the installed tree through an overlay on /usr, the test's dockerd and
//! podman sockets at /run/docker.sock and /run/podman/podman.sock, and only the installed
//! units plus a few stand-ins, so nothing of this machine's own boot runs. The loader runs in
//! it under every hardening option of the unit, and a probe with the same options checks that
//! systemd really applied them.
//!
//! Root is needed (namespaces, mounts); nothing is skipped: a missing tool fails the test
//! (`make deps` installs systemd, docker.io, podman and busybox-static).

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use device::*;

const UNIT_DIR: &str = "lib/systemd/system";
const UNITS: [&str; 2] = ["container-loader.service", "container-loader@.service"];
const DROP_INS: [&str; 3] = ["docker.conf", "podman.conf", "delete-after-load.conf"];

#[test]
fn make_install_lays_out_binary_units_hooks_man_page_and_docs() {
    let root = TempDir::new("install");
    make_install(root.path(), &[]);
    let r = |p: &str| root.join(p);

    let bin = r("usr/bin/container-loader");
    assert_eq!(mode(&bin), 0o755);
    let version = run_ok(Command::new(&bin).arg("--version"));
    assert!(version.starts_with("container-loader "), "{version}");
    for unit in UNITS {
        assert_eq!(mode(&r(&format!("{UNIT_DIR}/{unit}"))), 0o644, "{unit}");
    }
    for conf in DROP_INS {
        let path = r(&format!("usr/share/container-loader/drop-ins/{conf}"));
        assert_eq!(mode(&path), 0o644, "{conf}");
    }
    assert_eq!(
        mode(&r("usr/share/initramfs-tools/hooks/container-loader")),
        0o755
    );
    assert_eq!(
        mode(&r(
            "usr/lib/dracut/modules.d/90container-loader/module-setup.sh"
        )),
        0o755
    );
    let man = r("usr/share/man/man8/container-loader.8");
    assert!(read(&man).starts_with(".TH CONTAINER-LOADER 8"));
    assert!(r("usr/share/doc/container-loader/README.md").is_file());
    for example in [
        "inittab",
        "rcS",
        "initramfs-tools.conf",
        "dracut.conf",
        "example-app.service",
        "example-app.path",
    ] {
        let path = r(&format!(
            "usr/share/doc/container-loader/examples/{example}"
        ));
        assert!(path.is_file(), "{} missing", path.display());
    }

    // Another PREFIX moves the binary, and every file that runs it follows; the unit and hook
    // directories are the init systems' own and stay.
    let local = TempDir::new("install-local");
    make_install(local.path(), &["PREFIX=/usr/local"]);
    assert!(local.join("usr/local/bin/container-loader").is_file());
    for file in [
        format!("{UNIT_DIR}/container-loader.service"),
        format!("{UNIT_DIR}/container-loader@.service"),
        "usr/share/initramfs-tools/hooks/container-loader".into(),
        "usr/lib/dracut/modules.d/90container-loader/module-setup.sh".into(),
    ] {
        let text = read(&local.join(&file));
        assert!(
            text.contains("/usr/local/bin/container-loader")
                && !text.contains(" /usr/bin/container-loader")
                && !text.contains("=/usr/bin/container-loader"),
            "{file} does not name /usr/local/bin/container-loader:\n{text}"
        );
    }
}

/// The options a `--help` text lists: the words of its option lines before their text.
fn options_of_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.starts_with("  ") && l.trim_start().starts_with('-'))
        .flat_map(|l| l.get(..27).unwrap_or(l).split([' ', ',']))
        .filter(|w| w.starts_with('-') && w.len() > 1)
        .map(str::to_owned)
        .collect()
}

/// The options the manual page documents for `command`: the tags of the paragraphs under each
/// OPTIONS subsection whose title names the command, as in `.SS "Engine (load, status)"`.
fn options_of_man(man: &str, command: &str) -> BTreeSet<String> {
    let options = &man[man.find(".SH OPTIONS").expect("an OPTIONS section")..];
    let options = &options[..options[1..].find(".SH ").map_or(options.len(), |i| i + 1)];
    let mut found = BTreeSet::new();
    let mut theirs = false;
    let mut lines = options.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix(".SS ") {
            let named = title
                .rsplit_once('(')
                .map(|(_, c)| c.trim_end_matches(['"', ')']))
                .unwrap_or_else(|| panic!("{title} names no commands in parentheses"));
            theirs = named.split(", ").any(|c| c == command);
        } else if line == ".TP" && theirs {
            let tag = lines.next().unwrap_or_default().replace("\\-", "-");
            found.extend(
                tag.split([' ', '"', ','])
                    .filter(|w| w.starts_with('-') && w.len() > 1)
                    .map(str::to_owned),
            );
        }
    }
    found
}

/// The manual page documents, under each command, exactly the options its `--help` lists.
#[test]
fn man_page_documents_each_commands_options_as_its_help_lists_them() {
    let man = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("man/container-loader.8"));
    for command in ["load", "status", "inspect", "scan"] {
        let help = run_ok(Command::new(loader_bin()).args([command, "--help"]));
        let in_help = options_of_help(&help);
        assert!(
            in_help.len() > 3,
            "no options found in {command} --help:\n{help}"
        );
        let in_man = options_of_man(&man, command);
        assert_eq!(
            in_help, in_man,
            "{command} --help (left) and its options in man/container-loader.8 (right)"
        );
    }
}

/// `container-loader --help` lists the default command's options.
#[test]
fn help_without_a_command_lists_the_options_of_load() {
    let overview = run_ok(Command::new(loader_bin()).arg("--help"));
    let load = run_ok(Command::new(loader_bin()).args(["load", "--help"]));
    assert_eq!(options_of_help(&overview), options_of_help(&load));
}

/// Both units carry the same [Service] settings apart from the list they load.
#[test]
fn plain_and_template_unit_share_their_hardening() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let settings = |unit: &str| -> Vec<String> {
        read(&dir.join(unit))
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .skip_while(|l| *l != "[Service]")
            .take_while(|l| *l != "[Install]")
            .map(|l| l.replace("/usr/share/%i/", "/usr/share/container-loader/"))
            .collect()
    };
    let template = settings("container-loader@.service");
    assert!(template.len() > 30, "{template:?}");
    assert_eq!(template, settings("container-loader.service"));
    // The template's list, archives and writable directory are those of its instance.
    let text = read(&dir.join("container-loader@.service"));
    assert!(
        text.contains("ExecStart=/usr/bin/container-loader load --list /usr/share/%i/image.list ")
    );
    let plain = read(&dir.join("container-loader.service"));
    assert!(plain.contains("\nConditionPathExists=/usr/share/container-loader/image.list\n"));
    let delete = read(&dir.join("drop-ins/delete-after-load.conf"));
    assert!(delete.contains("\nReadWritePaths=-/usr/share/%i/images\n"));
    assert!(delete.contains("\nEnvironment=CONTAINER_LOADER_OPTS=--delete-after-load\n"));
}

/// An installed tree with this machine's own units beside the project's, as on a device.
fn root_with_system_units(tag: &str) -> TempDir {
    require_root();
    // docker.service and podman.socket, which the engine drop-ins require, come with them.
    require_program("dockerd");
    require_program("podman");
    let root = TempDir::new(tag);
    let units = root.join(UNIT_DIR);
    fs::create_dir_all(&units).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg("/lib/systemd/system/.")
            .arg(&units),
    );
    make_install(root.path(), &[]);
    root
}

/// Copies `conf` from the installed drop-ins into `unit`'s drop-in directory, as a package
/// (one that enables an instance of the template) does it.
fn copy_drop_in(root: &Path, unit: &str, conf: &str) {
    let dir = root.join(format!("{UNIT_DIR}/{unit}.d"));
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        root.join(format!("usr/share/container-loader/drop-ins/{conf}")),
        dir.join(conf),
    )
    .unwrap();
}

/// Links `conf` into `unit`'s drop-in directory, as an administrator does it on a device. The
/// link is absolute: systemd-analyze --root= would look for its target outside the root (and
/// skip it without a word), so `verify` gets copies instead.
fn link_drop_in(root: &Path, unit: &str, conf: &str) {
    let dir = root.join(format!("{UNIT_DIR}/{unit}.d"));
    fs::create_dir_all(&dir).unwrap();
    symlink(
        format!("/usr/share/container-loader/drop-ins/{conf}"),
        dir.join(conf),
    )
    .unwrap();
}

/// `systemd-analyze verify` on the installed units; Ok(()) only when it says nothing at all
/// (it reports unknown settings and bad values as warnings and still exits 0).
fn verify(root: &Path, units: &[&str]) -> Result<(), String> {
    require_program("systemd-analyze");
    let (code, text) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(units.iter().map(|u| format!("/{UNIT_DIR}/{u}"))));
    if code == 0 && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("exit {code}:\n{text}"))
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_installed_units_and_drop_ins() {
    let root = root_with_system_units("verify");
    let r = root.path();
    verify(
        r,
        &["container-loader.service", "container-loader@demo.service"],
    )
    .unwrap_or_else(|e| panic!("verify of the units: {e}"));

    // Each engine's drop-in, with deletion, on an instance; an engine drop-in on the plain unit.
    for (instance, engine) in [("dk", "docker.conf"), ("pm", "podman.conf")] {
        let unit = format!("container-loader@{instance}.service");
        copy_drop_in(r, &unit, engine);
        copy_drop_in(r, &unit, "delete-after-load.conf");
        verify(r, &[&unit]).unwrap_or_else(|e| panic!("verify of {unit} + {engine}: {e}"));
    }
    copy_drop_in(r, "container-loader.service", "podman.conf");
    verify(r, &["container-loader.service"])
        .unwrap_or_else(|e| panic!("verify of container-loader.service + podman.conf: {e}"));

    // The application example, installed as docs/operations.md says, on a device that has docker.
    fs::copy("/bin/true", r.join("usr/bin/docker")).unwrap();
    for example in ["example-app.service", "example-app.path"] {
        fs::copy(
            r.join(format!("usr/share/doc/container-loader/examples/{example}")),
            r.join(UNIT_DIR).join(example),
        )
        .unwrap();
    }
    verify(r, &["example-app.service", "example-app.path"])
        .unwrap_or_else(|e| panic!("verify of the application example: {e}"));

    // The check is real: a misspelt setting is reported, and so is the engine unit that the
    // drop-in requires once it is missing.
    let template = read(&r.join(UNIT_DIR).join("container-loader@.service"));
    fs::write(
        r.join(UNIT_DIR).join("misspelt-loader@.service"),
        template.replace("\nProtectClock=yes\n", "\nProtectClok=yes\n"),
    )
    .unwrap();
    let err = verify(r, &["misspelt-loader@x.service"]).unwrap_err();
    assert!(err.contains("ProtectClok"), "{err}");
    fs::remove_file(r.join(UNIT_DIR).join("docker.service")).unwrap();
    let err = verify(r, &["container-loader@dk.service"]).unwrap_err();
    assert!(err.contains("docker.service"), "{err}");
}

/// The exposure score `systemd-analyze security` gives the units stays in its "SAFE" band.
#[test]
fn systemd_analyze_security_rates_the_units_safe() {
    let root = root_with_system_units("security");
    for unit in ["container-loader.service", "container-loader@demo.service"] {
        let text = run_ok(
            Command::new("systemd-analyze")
                .args(["security", "--offline=yes", "--no-pager"])
                .arg(format!("--root={}", root.path().display()))
                .arg(format!("/{UNIT_DIR}/{unit}")),
        );
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{text}"));
        let score: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
        assert!(
            score <= 1.0 && line.contains("SAFE"),
            "{unit}: {line}\n{text}"
        );
    }
}

#[test]
fn the_template_is_enabled_per_package() {
    require_program("systemctl");
    let root = root_with_system_units("enable");
    run_ok(
        Command::new("systemctl")
            .arg(format!("--root={}", root.path().display()))
            .args(["enable", "container-loader@app.service"]),
    );
    let link = root.join("etc/systemd/system/multi-user.target.wants/container-loader@app.service");
    let target = fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    assert_eq!(
        target,
        PathBuf::from("/lib/systemd/system/container-loader@.service")
    );
}

// ---------------------------------------------------------------------------------------
// The units under a real systemd
// ---------------------------------------------------------------------------------------

/// Boots the namespace systemd. Arguments: STAGE WORK CGROUP-NAME, then pairs of
/// HOST-SOCKET PATH-INSIDE. Run as `sh boot.sh ...`: it moves itself into a new cgroup, then
/// re-runs itself under unshare as the namespaces' first process and execs systemd.
const BOOT_SCRIPT: &str = r#"
set -eu
stage=$1 work=$2 name=$3
shift 3
if [ "${CLT_INSIDE:-}" != 1 ]; then
    # A cgroup of its own, which becomes the root of the new cgroup namespace; on a hybrid
    # hierarchy the cgroup2 one.
    base=/sys/fs/cgroup
    if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        base=/sys/fs/cgroup/unified
    fi
    mkdir "$base/$name"
    echo "$base/$name" > "$work/cgroup"
    echo $$ > "$base/$name/cgroup.procs"
    CLT_INSIDE=1 exec unshare --mount --pid --fork --cgroup --uts --ipc --net \
        --propagation private sh "$0" "$stage" "$work" "$name" "$@"
fi
mount -t proc proc /proc
umount -R /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# The installed tree over /usr; this machine's /usr stays as it is.
mkdir -p "$work/usr-upper" "$work/usr-work"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$work/usr-upper,workdir=$work/usr-work" /usr
cp -a "$stage/usr/." /usr/
mount -t tmpfs -o mode=0755 tmpfs /run
while [ $# -ge 2 ]; do
    mkdir -p "${2%/*}"
    touch "$2"
    mount --bind "$1" "$2"
    shift 2
done
# Only these units exist for this systemd: the installed ones, the journal, and stand-ins.
units=/run/cltest/units
mkdir -p $units /run/systemd/journald.conf.d
cp -a "$stage/lib/systemd/system/." $units/
for u in systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket \
        systemd-journald-audit.socket; do
    cp /lib/systemd/system/$u $units/
done
printf '[Journal]\nStorage=volatile\nReadKMsg=no\n' > /run/systemd/journald.conf.d/test.conf
for t in sysinit basic shutdown multi-user; do
    printf '[Unit]\nDescription=stand-in for %s.target\n' $t > $units/$t.target
done
printf '[Unit]\nDescription=container-loader test\nWants=systemd-journald.socket systemd-journald-dev-log.socket multi-user.target\n' \
    > $units/cltest.target
# The engines run outside, their sockets are bound in above; these stand in for their units,
# which the shipped engine drop-ins require.
printf '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n' > $units/docker.service
printf '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n' > $units/podman.service
printf '[Socket]\nListenStream=/run/cltest/podman-stand-in.sock\n' > $units/podman.socket
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
export SYSTEMD_UNIT_PATH=$units container=container-loader-test
exec /lib/systemd/systemd --system --unit=cltest.target
"#;

/// A systemd running as PID 1 of its own namespaces; killed, with its cgroup removed, on drop.
struct NsSystemd {
    child: Child,
    /// PID 1 of the namespaces, as this side sees it.
    init: u32,
    work: PathBuf,
}

impl NsSystemd {
    fn boot(stage: &Path, work: &Path, sockets: &[(&Path, &str)]) -> NsSystemd {
        require_root();
        for program in ["unshare", "nsenter", "busybox"] {
            require_program(program);
        }
        assert!(
            Path::new("/lib/systemd/systemd").is_file(),
            "/lib/systemd/systemd is missing (install systemd)"
        );
        let script = work.join("boot.sh");
        fs::write(&script, BOOT_SCRIPT).unwrap();
        let log = fs::File::create(work.join("systemd.log")).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg(&script).arg(stage).arg(work).arg(format!(
            "clt-units-{}-{}",
            std::process::id(),
            unique()
        ));
        for (host, inside) in sockets {
            cmd.arg(host).arg(inside);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the boot script");
        let mut ns = NsSystemd {
            init: 0,
            child,
            work: work.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = ns.child.try_wait() {
                panic!("the namespace systemd exited ({status}):\n{}", ns.log());
            }
            // Before unshare, the script's children are mkdir, stat and the like: only a
            // child that has become systemd is the namespaces' PID 1.
            ns.init = children(ns.child.id())
                .into_iter()
                .find(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                })
                .unwrap_or(0);
            if ns.init != 0
                && run(ns.command("systemctl").args(["is-active", "cltest.target"]))
                    .1
                    .trim()
                    == "active"
            {
                return ns;
            }
            assert!(
                Instant::now() < deadline,
                "the namespace systemd did not reach cltest.target in 60 s:\n{}",
                ns.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.work.join("systemd.log")).unwrap_or_default()
    }

    /// `program` inside the namespaces, bounded to 3 minutes.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.init.to_string())
            .args(["-m", "-p", "--", "timeout", "180", program]);
        cmd
    }

    fn systemctl(&self, args: &[&str]) -> (i32, String) {
        run(self.command("systemctl").args(args))
    }

    /// `systemctl show -p NAME --value UNIT`.
    fn property(&self, unit: &str, name: &str) -> String {
        run_ok(
            self.command("systemctl")
                .args(["show", "--value", "-p", name, unit]),
        )
        .trim()
        .to_string()
    }

    /// The unit's journal once a line containing `last` is in: journald reads the unit's
    /// output stream on its own time, after the unit may have finished.
    fn journal_until(&self, unit: &str, last: &str) -> Vec<(u8, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let journal = self.journal(unit);
            if journal.iter().any(|(_, m)| m.contains(last)) {
                return journal;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {last:?} from {unit} in its journal: {journal:#?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The unit's journal: (priority, message) per line its processes wrote.
    fn journal(&self, unit: &str) -> Vec<(u8, String)> {
        let text =
            run_ok(
                self.command("journalctl")
                    .args(["--no-pager", "-o", "json", "-u", unit]),
            );
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            // The unit's own processes, not systemd's lines about it.
            .filter(|v| v["SYSLOG_IDENTIFIER"] != "systemd")
            .map(|v| {
                let priority = v["PRIORITY"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(255);
                let message = match &v["MESSAGE"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (priority, message)
            })
            .collect()
    }

    fn exists(&self, path: &str) -> bool {
        run(self.command("test").args(["-e", path])).0 == 0
    }
}

impl Drop for NsSystemd {
    fn drop(&mut self) {
        // Everything the script started is in its cgroup: the script, unshare, systemd and
        // what systemd runs. cgroup.kill ends them all at once.
        let cgroup = fs::read_to_string(self.work.join("cgroup"))
            .map(|c| PathBuf::from(c.trim()))
            .ok();
        if let Some(cgroup) = &cgroup {
            let _ = fs::write(cgroup.join("cgroup.kill"), "1");
        }
        // Without cgroup.kill (before Linux 5.14): unshare's one child is PID 1 of the
        // namespaces, which takes every process in them along when it dies.
        for pid in children(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The cgroup and those systemd made below it, once their processes are gone.
        if let Some(cgroup) = cgroup {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cgroup.exists() && Instant::now() < deadline {
                let _ = Command::new("find")
                    .arg(&cgroup)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(Stdio::null())
                    .status();
                thread::sleep(Duration::from_millis(50));
            }
            if cgroup.exists() {
                eprintln!("warning: could not remove {}", cgroup.display());
            }
        }
    }
}

/// Adds package `pkg` with one zstd archive of `fixture` under the staged /usr/share.
fn stage_package(stage: &Path, pkg: &str, fixture: &Fixture) -> String {
    let dir = stage.join("usr/share").join(pkg);
    fs::create_dir_all(dir.join("images")).unwrap();
    let archive = format!("{pkg}.tar.zst");
    fs::write(
        dir.join("images").join(&archive),
        fixture.compressed(Codec::Zstd),
    )
    .unwrap();
    fs::write(
        dir.join("image.list"),
        format!("# {pkg}\n{archive} {}\n", fixture.reference),
    )
    .unwrap();
    format!("/usr/share/{pkg}/images/{archive}")
}

fn write_drop_in(stage: &Path, unit: &str, name: &str, text: &str) {
    let dir = stage.join(format!("{UNIT_DIR}/{unit}.d"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), text).unwrap();
}

/// What the sandbox probe prints, one KEY=VALUE line each: the unit's options, seen from
/// inside. It runs as instance "probe" of the template with only ExecStart= replaced.
const PROBE: &str = r#"
field() { grep "^$1:" /proc/self/status | cut -f2; }
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=allowed"; else echo "$name=denied"; fi; }
echo "no-new-privs=$(field NoNewPrivs)"
echo "seccomp=$(field Seccomp)"
echo "cap-bounding=$(field CapBnd)"
echo "cap-effective=$(field CapEff)"
try write-usr touch /usr/share/probe/written
try write-run touch /run/probe-written
try write-runtime-directory touch /run/container-loader/probe-written
try list-home ls /home
try read-cpuinfo cat /proc/cpuinfo
echo "tmp-marker=$(ls /tmp/outside-marker 2>&1)"
echo "devices=$(ls /dev | tr '\n' ' ')"
echo "interfaces=$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "inet-socket=$(busybox nc -w 1 127.0.0.1 9 </dev/null 2>&1)"
echo "renice=$(busybox renice -n 5 -p $$ 2>&1)"
echo "unshare=$(busybox unshare -n true 2>&1)"
echo "hostname=$(busybox hostname probe 2>&1)"
"#;

#[test]
fn units_load_images_under_a_real_systemd_with_their_hardening() {
    let podman = Engine::podman();
    let docker = Engine::docker();
    let stage = TempDir::new("unit-stage");
    let work = TempDir::new("unit-work");
    make_install(stage.path(), &[]);
    let s = stage.path();

    // demo: podman (shipped podman.conf), keeps its archive; enabled the way docs/install.md's
    // "Installing on a device" does it, so it starts at boot.
    let demo = Fixture::new("localhost/units/demo:1");
    let demo_archive = stage_package(s, "demo", &demo);
    link_drop_in(s, "container-loader@demo.service", "podman.conf");
    fs::create_dir_all(s.join(UNIT_DIR).join("multi-user.target.wants")).unwrap();
    symlink(
        "../container-loader@.service",
        s.join(UNIT_DIR)
            .join("multi-user.target.wants/container-loader@demo.service"),
    )
    .unwrap();
    // dk: docker (shipped docker.conf) and the shipped deletion drop-in.
    let dk = Fixture::new("localhost/units/dk:1");
    let dk_archive = stage_package(s, "dk", &dk);
    link_drop_in(s, "container-loader@dk.service", "docker.conf");
    link_drop_in(s, "container-loader@dk.service", "delete-after-load.conf");
    // ro: asks for deletion without the drop-in that makes the archives writable.
    let ro = Fixture::new("localhost/units/ro:1");
    let ro_archive = stage_package(s, "ro", &ro);
    link_drop_in(s, "container-loader@ro.service", "podman.conf");
    write_drop_in(
        s,
        "container-loader@ro.service",
        "opts.conf",
        "[Service]\nEnvironment=CONTAINER_LOADER_OPTS=--delete-after-load\n",
    );
    // The plain unit, no drop-in: the engine is found (docker's socket is tried first).
    let plain = Fixture::new("localhost/units/plain:1");
    stage_package(s, "container-loader", &plain);
    // The probe: the template's sandbox around a shell.
    fs::create_dir_all(s.join("usr/share/probe")).unwrap();
    fs::write(s.join("usr/share/probe/probe.sh"), PROBE).unwrap();
    write_drop_in(
        s,
        "container-loader@probe.service",
        "probe.conf",
        "[Service]\nExecStart=\nExecStart=/bin/busybox sh /usr/share/probe/probe.sh\n",
    );

    // The shipped application example, waiting for demo's image (and a twin for an image
    // that is never loaded); the command only records that it ran.
    for (unit, image) in [
        ("app-demo.service", "localhost/units/demo:1"),
        ("app-never.service", "localhost/units/never:1"),
    ] {
        let example = read(&s.join("usr/share/doc/container-loader/examples/example-app.service"));
        fs::write(
            s.join(UNIT_DIR).join(unit),
            example
                .replace("container-loader@example", "container-loader@demo")
                .replace(
                    "images/debian:bookworm",
                    &format!("images/{}", marker(image)),
                )
                .replace("debian:bookworm", image),
        )
        .unwrap();
        write_drop_in(
            s,
            unit,
            "run.conf",
            &format!(
                "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=\nExecStop=\n\
                 ExecStart=/bin/busybox cp /run/container-loader/images/{} /run/{unit}.ran\n",
                marker(image)
            ),
        );
    }

    let ns = NsSystemd::boot(
        s,
        work.path(),
        &[
            (podman.socket_path(), "/run/podman/podman.sock"),
            (docker.socket_path(), "/run/docker.sock"),
        ],
    );

    // Starts `unit`, which must succeed; its journal once the line with `last` is in.
    let start = |unit: &str, last: &str| {
        let (code, text) = ns.systemctl(&["start", unit]);
        assert_eq!(
            code,
            0,
            "systemctl start {unit}: {text}\njournal: {:#?}\nsystemd log:\n{}",
            ns.journal(unit),
            ns.log()
        );
        let journal = ns.journal_until(unit, last);
        assert_eq!(ns.property(unit, "SubState"), "exited", "{unit}");
        assert_eq!(ns.property(unit, "ExecMainStatus"), "0", "{unit}");
        journal
    };

    // demo: started at boot (multi-user.target wants it); loaded, progress in `systemctl
    // status`, info priority, the lock in the RuntimeDirectory, and the engine's unit pulled
    // in by the drop-in's Requires=.
    let deadline = Instant::now() + LOADER_TIMEOUT;
    while ns.property("container-loader@demo.service", "ActiveState") != "active" {
        assert!(
            Instant::now() < deadline,
            "container-loader@demo.service did not start at boot: {:#?}\n{}",
            ns.journal("container-loader@demo.service"),
            ns.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let journal = start("container-loader@demo.service", " failed");
    podman.assert_has(&demo.reference);
    assert_eq!(
        ns.property("container-loader@demo.service", "StatusText"),
        "1 loaded, 0 present, 0 failed",
        "journal: {journal:#?}"
    );
    assert!(
        journal.iter().any(|(p, m)| *p == 6
            && m.contains("localhost/units/demo:1: loaded from demo.tar.zst")),
        "{journal:#?}"
    );
    assert!(journal.iter().all(|(p, _)| *p == 6), "{journal:#?}");
    assert!(ns.exists("/run/container-loader/run_podman_podman.sock.lock"));
    assert!(ns.exists(&demo_archive));
    assert_eq!(ns.property("podman.socket", "ActiveState"), "active");
    assert_eq!(ns.property("docker.service", "ActiveState"), "inactive");
    // Started again, it finds the image present.
    let (code, text) = ns.systemctl(&["restart", "container-loader@demo.service"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        ns.property("container-loader@demo.service", "StatusText"),
        "0 loaded, 1 present, 0 failed"
    );

    // What the run leaves for the units that need the images: status.json and the marker,
    // which lets the application example start; the one whose image is missing is skipped.
    assert!(ns.exists("/run/container-loader/status.json"));
    let (code, text) = ns.systemctl(&["start", "app-demo.service", "app-never.service"]);
    assert_eq!(code, 0, "{text}\n{}", ns.log());
    assert_eq!(ns.property("app-demo.service", "ActiveState"), "active");
    assert!(ns.exists("/run/app-demo.service.ran"), "{}", ns.log());
    assert_eq!(ns.property("app-never.service", "ConditionResult"), "no");
    assert!(!ns.exists("/run/app-never.service.ran"));

    // dk: docker, and the archive deleted through ReadWritePaths=.
    let journal = start("container-loader@dk.service", " failed");
    docker.assert_has(&dk.reference);
    podman.assert_has_not(&dk.reference);
    assert!(
        journal
            .iter()
            .any(|(_, m)| m.contains("deleted dk.tar.zst")),
        "{journal:#?}"
    );
    assert!(!ns.exists(&dk_archive), "{dk_archive} was not deleted");
    assert_eq!(ns.property("docker.service", "ActiveState"), "active");

    // ro: without ReadWritePaths= the read-only /usr keeps the archive: a warning, the image
    // is in, the unit succeeds.
    let journal = start("container-loader@ro.service", " failed");
    podman.assert_has(&ro.reference);
    assert!(
        journal.iter().any(|(p, m)| *p == 4
            && m.contains("loaded, but not deleted")
            && m.contains("Read-only file system")),
        "{journal:#?}"
    );
    assert!(ns.exists(&ro_archive));

    // The plain unit, engine detected.
    start("container-loader.service", " failed");
    docker.assert_has(&plain.reference);
    // Without a list at the default place it is skipped, not failed.
    run_ok(
        ns.command("rm")
            .arg("/usr/share/container-loader/image.list"),
    );
    let (code, text) = ns.systemctl(&["restart", "container-loader.service"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        ns.property("container-loader.service", "ConditionResult"),
        "no"
    );
    assert_eq!(ns.property("container-loader.service", "Result"), "success");

    // The probe sees the sandbox the loader ran in.
    run_ok(ns.command("touch").arg("/tmp/outside-marker"));
    let journal = start("container-loader@probe.service", "hostname=");
    let text: String = journal.iter().map(|(_, m)| format!("{m}\n")).collect();
    let value = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("probe printed no {key}=:\n{text}"))
            .to_string()
    };
    assert_eq!(value("no-new-privs"), "1", "NoNewPrivileges=\n{text}");
    assert_eq!(value("seccomp"), "2", "SystemCallFilter=\n{text}");
    assert_eq!(
        value("cap-bounding"),
        "0000000000000000",
        "CapabilityBoundingSet=\n{text}"
    );
    assert_eq!(value("cap-effective"), "0000000000000000", "{text}");
    assert_eq!(value("write-usr"), "denied", "ProtectSystem=strict\n{text}");
    assert_eq!(value("write-run"), "denied", "ReadOnlyPaths=/run\n{text}");
    assert_eq!(
        value("write-runtime-directory"),
        "allowed",
        "RuntimeDirectory=\n{text}"
    );
    assert_eq!(value("list-home"), "denied", "ProtectHome=\n{text}");
    assert_eq!(value("read-cpuinfo"), "denied", "ProcSubset=pid\n{text}");
    assert!(
        value("tmp-marker").contains("No such file"),
        "PrivateTmp=\n{text}"
    );
    let devices = value("devices");
    assert!(
        devices.contains("null") && !devices.contains("vda"),
        "PrivateDevices=\n{text}"
    );
    assert_eq!(value("interfaces").trim(), "lo", "PrivateNetwork=\n{text}");
    assert!(
        value("inet-socket").contains("Address family not supported"),
        "RestrictAddressFamilies=AF_UNIX\n{text}"
    );
    for (key, option) in [
        ("renice", "SystemCallFilter=~@resources"),
        ("unshare", "RestrictNamespaces="),
        ("hostname", "ProtectHostname= / ~@privileged"),
    ] {
        assert!(
            value(key).contains("Operation not permitted"),
            "{option}: {key} was not refused\n{text}"
        );
    }
}

/// The marker's file name for `image`, as `systemd-escape` spells it (these names need only
/// `/` turned into `-`).
fn marker(image: &str) -> String {
    assert!(
        !image.contains('-'),
        "{image}: spell its marker with systemd-escape"
    );
    image.replace('/', "-")
}
