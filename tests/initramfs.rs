//! The initramfs-tools hook and the dracut module, installed by `make install`.
//!
//! A real `mkinitramfs` builds an initramfs with the hook, run as if the installed tree were
//! this machine's /usr and /etc (overlays in a private mount namespace, nothing here changes),
//! for a stand-in kernel version. Its busybox then runs as PID 1 of a pid namespace with the
//! extracted initramfs as root, and its init runs the loader from the inittab line of
//! initramfs/examples/inittab against a real podman. The hook's other cases run against a
//! scratch DESTDIR with initramfs-tools' hook functions; the dracut module is sourced with
//! stand-ins for dracut's functions (dracut itself conflicts with initramfs-tools).
//!
//! Root is needed; nothing is skipped: `make deps` installs initramfs-tools-core,
//! busybox-static and podman.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use device::*;

const HOOK: &str = "/usr/share/initramfs-tools/hooks/container-loader";
const DRACUT_MODULE: &str = "/usr/lib/dracut/modules.d/90container-loader/module-setup.sh";
const CONF: &str = "etc/initramfs-tools/conf.d/container-loader";

/// A staged install with package `app`: /usr/share/app/image.list naming `archives` (written
/// from `fixtures`) plus `extra_lines`.
struct Stage {
    dir: TempDir,
}

impl Stage {
    fn new(fixtures: &[(&str, &Fixture)], extra_lines: &[&str]) -> Stage {
        let dir = TempDir::new("stage");
        make_install(dir.path(), &[]);
        let app = dir.join("usr/share/app");
        fs::create_dir_all(app.join("images")).unwrap();
        let mut list = String::from("# ARCHIVE REF\n\n");
        for (archive, fixture) in fixtures {
            fs::write(
                app.join("images").join(archive),
                fixture.compressed(Codec::Zstd),
            )
            .unwrap();
            list.push_str(&format!("{archive}  {}\n", fixture.reference));
        }
        for line in extra_lines {
            list.push_str(line);
            list.push('\n');
        }
        fs::write(app.join("image.list"), list).unwrap();
        Stage { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the initramfs-tools configuration (conf.d/container-loader).
    fn configure(&self, text: &str) {
        let conf = self.dir.join(CONF);
        fs::create_dir_all(conf.parent().unwrap()).unwrap();
        fs::write(conf, text).unwrap();
    }
}

/// Every file (and link) below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let out = run_ok(Command::new("find").arg(dir).args([
        "-mindepth",
        "1",
        "-not",
        "-type",
        "d",
        "-printf",
        "%P\\n",
    ]));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// busybox init as PID 1 of fresh pid and mount namespaces, chrooted into `root`, with the
/// engine socket bound in at /run/podman/podman.sock. Killed on drop.
struct BusyboxInit {
    child: Child,
    log: PathBuf,
}

const BOOT_BUSYBOX: &str = r#"
set -eu
if [ "${CLT_INSIDE:-}" != 1 ]; then
    CLT_INSIDE=1 exec unshare --mount --pid --fork --propagation private sh "$0" "$@"
fi
root=$1 socket=$2
mkdir -p "$root/run/podman"
touch "$root/run/podman/podman.sock"
mount --bind "$socket" "$root/run/podman/podman.sock"
# No CONSOLE: init and what it starts keep this script's stdout and stderr, the test's log.
unset CLT_INSIDE CONSOLE console
exec chroot "$root" /bin/busybox init
"#;

impl BusyboxInit {
    fn boot(root: &Path, socket: &Path, work: &Path) -> BusyboxInit {
        let script = work.join("boot-busybox.sh");
        fs::write(&script, BOOT_BUSYBOX).unwrap();
        let log = work.join("init.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("sh")
            .arg(&script)
            .arg(root)
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start busybox init");
        BusyboxInit { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + LOADER_TIMEOUT;
        loop {
            let log = self.log();
            if log.lines().any(|l| l.contains(text)) {
                return log;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("busybox init exited ({status}) before {text:?}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} from busybox init within {LOADER_TIMEOUT:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for BusyboxInit {
    fn drop(&mut self) {
        // unshare's one child is init, PID 1 of the pid namespace: every process in it dies
        // with it.
        for pid in children(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of initramfs/examples/inittab that run the loader.
fn documented_inittab_lines() -> Vec<String> {
    let example = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("initramfs/examples/inittab"));
    let lines: Vec<String> = example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("container-loader"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one loader line expected in the example inittab: {lines:?}"
    );
    lines
}

#[test]
fn mkinitramfs_with_the_hook_builds_an_initramfs_whose_busybox_init_runs_the_loader() {
    for program in [
        "mkinitramfs",
        "unmkinitramfs",
        "lsinitramfs",
        "busybox",
        "chroot",
    ] {
        require_program(program);
    }
    let engine = Engine::podman();
    let first = Fixture::new("localhost/initramfs/first:1");
    let second = Fixture::new("localhost/initramfs/second:2");
    let stage = Stage::new(
        &[("first.tar.zst", &first), ("second.tar.zst", &second)],
        &[],
    );
    stage.configure(
        "CONTAINER_LOADER_LISTS=\"/usr/share/app/image.list\"\nCONTAINER_LOADER_ARCHIVES=y\n",
    );

    // A real build, for a stand-in kernel: an empty modules directory, and a kernel config
    // that says which compressions it unpacks (mkinitramfs checks).
    let work = TempDir::new("mkinitramfs");
    let image = work.join("initrd.img");
    let build = format!(
        "v=0.0.0-container-loader-test
         mkdir -p /usr/lib/modules/$v
         touch /usr/lib/modules/$v/modules.order /usr/lib/modules/$v/modules.builtin \
               /usr/lib/modules/$v/modules.builtin.modinfo
         printf 'CONFIG_RD_GZIP=y\\nCONFIG_RD_ZSTD=y\\n' > /boot/config-$v
         TMPDIR={work} mkinitramfs -o {image} $v",
        work = work.path().display(),
        image = image.display()
    );
    let output = run_ok(in_system(stage.path(), &work.join("system"), "sh").args(["-c", &build]));
    assert!(
        !output.contains("container-loader hook"),
        "the hook had something to say:\n{output}"
    );

    let listing = run_ok(Command::new("lsinitramfs").arg(&image));
    for file in [
        "usr/bin/container-loader",
        "usr/share/app/image.list",
        "usr/share/app/images/first.tar.zst",
        "usr/share/app/images/second.tar.zst",
        "usr/bin/busybox",
    ] {
        assert!(
            listing.lines().any(|l| l == file),
            "{file} is not in the initramfs:\n{listing}"
        );
    }

    let extracted = work.join("extracted");
    run_ok(Command::new("unmkinitramfs").arg(&image).arg(&extracted));
    // With an early (microcode) part, the main one is in main/.
    let root = if extracted.join("main").is_dir() {
        extracted.join("main")
    } else {
        extracted.clone()
    };
    assert_eq!(
        fs::read(root.join("usr/bin/container-loader")).unwrap(),
        fs::read(stage.path().join("usr/bin/container-loader")).unwrap(),
        "the initramfs holds another binary than the installed one"
    );
    let version = run_ok(
        Command::new("chroot")
            .arg(&root)
            .args(["/usr/bin/container-loader", "--version"]),
    );
    assert!(version.starts_with("container-loader "), "{version}");

    // The initramfs as the whole system: busybox init runs the documented inittab line.
    fs::write(
        root.join("etc/inittab"),
        documented_inittab_lines().join("\n") + "\n",
    )
    .unwrap();
    let mut init = BusyboxInit::boot(&root, engine.socket_path(), work.path());
    let log = init.wait_for("2 loaded, 0 present, 0 failed");
    engine.assert_has(&first.reference);
    engine.assert_has(&second.reference);
    assert!(
        log.contains(
            "/usr/share/app/image.list:3: localhost/initramfs/first:1: loaded from first.tar.zst"
        ),
        "{log}"
    );
}

/// Runs the installed hook against a scratch DESTDIR; returns (exit code, output, files).
fn run_hook(
    stage: &Stage,
    tag: &str,
    arg: Option<&str>,
    setup: &str,
) -> (i32, String, Vec<String>) {
    let work = TempDir::new(tag);
    let destdir = work.join("destdir");
    fs::create_dir_all(&destdir).unwrap();
    // As mkinitramfs calls it: DESTDIR, CONFDIR and verbose exported; the hook sources the
    // hook functions itself.
    let script = format!(
        "{setup}
         export DESTDIR={destdir} CONFDIR=/etc/initramfs-tools verbose=n
         exec sh {HOOK} {arg}",
        destdir = destdir.display(),
        arg = arg.unwrap_or("")
    );
    let (code, output) =
        run(in_system(stage.path(), &work.join("system"), "sh").args(["-c", &script]));
    (code, output, files(&destdir))
}

#[test]
fn initramfs_tools_hook_copies_the_binary_and_what_it_is_configured_to() {
    require_program("mkinitramfs");
    let fixture = Fixture::new("localhost/initramfs/hook:1");
    let stage = Stage::new(
        &[("kept.tar.zst", &fixture)],
        &[
            "gone.tar.zst localhost/initramfs/gone:1",
            "../outside.tar.zst localhost/initramfs/outside:1",
            // The last line without a newline is still read.
            "# a comment\nalso-kept.tar.zst localhost/initramfs/also:1",
        ],
    );
    fs::write(
        stage.path().join("usr/share/app/images/also-kept.tar.zst"),
        b"x",
    )
    .unwrap();
    let list = stage.path().join("usr/share/app/image.list");
    let text = read(&list);
    fs::write(&list, text.trim_end()).unwrap();

    let (code, output, _) = run_hook(&stage, "hook-prereqs", Some("prereqs"), "");
    assert_eq!((code, output.trim()), (0, ""), "prereqs: {output}");

    // Not configured: the binary, nothing else (a static binary has no libraries).
    let (code, output, files) = run_hook(&stage, "hook-bare", None, "");
    assert_eq!(code, 0, "{output}");
    assert!(
        files.contains(&"usr/bin/container-loader".to_string()),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.starts_with("usr/share/")),
        "{files:?}"
    );

    // The list, without archives.
    stage.configure("CONTAINER_LOADER_LISTS=/usr/share/app/image.list\n");
    let (code, output, files) = run_hook(&stage, "hook-list", None, "");
    assert_eq!(code, 0, "{output}");
    assert!(
        files.contains(&"usr/share/app/image.list".to_string()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("/images/")), "{files:?}");

    // With archives: the ones present; a missing one and a path that leaves the images
    // directory are warnings.
    stage.configure(
        "CONTAINER_LOADER_LISTS=/usr/share/app/image.list\nCONTAINER_LOADER_ARCHIVES=y\n",
    );
    let (code, output, files) = run_hook(&stage, "hook-archives", None, "");
    assert_eq!(code, 0, "{output}");
    for file in [
        "usr/bin/container-loader",
        "usr/share/app/image.list",
        "usr/share/app/images/kept.tar.zst",
        "usr/share/app/images/also-kept.tar.zst",
    ] {
        assert!(
            files.contains(&file.to_string()),
            "{file} not copied: {files:?}\n{output}"
        );
    }
    assert!(
        !files
            .iter()
            .any(|f| f.contains("gone") || f.contains("outside")),
        "{files:?}"
    );
    assert!(
        output.contains("W: container-loader hook: /usr/share/app/images/gone.tar.zst is missing"),
        "{output}"
    );
    assert!(
        output.contains("\"../outside.tar.zst\" is not a plain file name"),
        "{output}"
    );

    // Left out altogether.
    stage.configure(
        "CONTAINER_LOADER_LISTS=/usr/share/app/image.list\nCONTAINER_LOADER_INITRAMFS=n\n",
    );
    let (code, output, files) = run_hook(&stage, "hook-off", None, "");
    assert_eq!((code, files.len()), (0, 0), "{files:?}\n{output}");

    // A configured list that is missing, and a missing binary, fail the build.
    stage.configure("CONTAINER_LOADER_LISTS=/usr/share/nothing/image.list\n");
    let (code, output, _) = run_hook(&stage, "hook-no-list", None, "");
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("E: container-loader hook: image list /usr/share/nothing/image.list"),
        "{output}"
    );
    let (code, output, _) = run_hook(
        &stage,
        "hook-no-binary",
        None,
        "rm /usr/bin/container-loader",
    );
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("E: container-loader hook: /usr/bin/container-loader is missing"),
        "{output}"
    );
}

/// dracut's functions as module-setup.sh uses them, copying into $initdir and logging.
const DRACUT_STAND_INS: &str = r#"
set -u
log() { echo "$*" >> "$initdir.log"; }
copy() { mkdir -p "$initdir${1%/*}" && cp -p "$1" "$initdir$1"; }
inst_binary() { log "inst_binary $*"; [[ -x $1 ]] && copy "$1"; }
inst_simple() { log "inst_simple $*"; [[ -f $1 ]] && copy "$1"; }
require_binaries() { local b; for b; do [[ -x $b ]] || { log "require_binaries: $b missing"; return 1; }; done; }
derror() { log "derror: $*"; }
dwarn() { log "dwarn: $*"; }
. "$module"
if check; then echo "check=0"; else echo "check=$?"; fi
echo "depends=[$(depends)]"
if [[ ${SKIP_INSTALL:-} != y ]]; then
    if install; then echo "install=0"; else echo "install=$?"; fi
fi
"#;

/// Sources the installed module-setup.sh in bash with `vars` set (as dracut.conf.d would);
/// returns (output + log, files installed).
fn run_dracut_module(stage: &Stage, tag: &str, setup: &str, vars: &str) -> (String, Vec<String>) {
    let work = TempDir::new(tag);
    let initdir = work.join("initdir");
    fs::create_dir_all(&initdir).unwrap();
    let stand_ins = work.join("stand-ins.sh");
    fs::write(&stand_ins, DRACUT_STAND_INS).unwrap();
    let script = format!(
        "{setup}
         {vars} initdir={initdir} module={DRACUT_MODULE} exec bash {stand_ins}",
        initdir = initdir.display(),
        stand_ins = stand_ins.display()
    );
    let (code, output) =
        run(in_system(stage.path(), &work.join("system"), "sh").args(["-c", &script]));
    assert_eq!(code, 0, "{output}");
    let log = fs::read_to_string(work.join("initdir.log")).unwrap_or_default();
    (format!("{output}{log}"), files(&initdir))
}

#[test]
fn dracut_module_installs_the_binary_and_what_it_is_configured_to() {
    let fixture = Fixture::new("localhost/initramfs/dracut:1");
    let stage = Stage::new(
        &[("dracut.tar.zst", &fixture)],
        &["gone.tar.zst localhost/initramfs/gone:1"],
    );

    // Not configured: wanted (check 0), no other module needed, the binary only.
    let (output, files) = run_dracut_module(&stage, "dracut-bare", "", "");
    assert!(
        output.contains("check=0\ndepends=[]\ninstall=0"),
        "{output}"
    );
    assert_eq!(files, ["usr/bin/container-loader"], "{output}");

    let (output, files) = run_dracut_module(
        &stage,
        "dracut-archives",
        "",
        "CONTAINER_LOADER_LISTS=/usr/share/app/image.list CONTAINER_LOADER_ARCHIVES=y",
    );
    assert!(output.contains("install=0"), "{output}");
    assert_eq!(
        files,
        [
            "usr/bin/container-loader",
            "usr/share/app/image.list",
            "usr/share/app/images/dracut.tar.zst"
        ],
        "{output}"
    );
    assert!(
        output.contains("dwarn: container-loader: /usr/share/app/images/gone.tar.zst is missing"),
        "{output}"
    );

    let (output, _) = run_dracut_module(
        &stage,
        "dracut-no-list",
        "",
        "CONTAINER_LOADER_LISTS=/usr/share/nothing/image.list",
    );
    assert!(output.contains("install=1"), "{output}");
    assert!(
        output.contains("derror: container-loader: image list /usr/share/nothing/image.list"),
        "{output}"
    );

    // Without the binary the module does not apply.
    let (output, _) = run_dracut_module(
        &stage,
        "dracut-no-binary",
        "rm /usr/bin/container-loader",
        "SKIP_INSTALL=y",
    );
    assert!(output.contains("check=1"), "{output}");
    assert!(
        output.contains("require_binaries: /usr/bin/container-loader missing"),
        "{output}"
    );
}

/// The rcS example is valid sh and runs the loader the way the inittab line does.
#[test]
fn rcs_example_is_valid_sh_and_matches_the_inittab_line() {
    let rcs = Path::new(env!("CARGO_MANIFEST_DIR")).join("initramfs/examples/rcS");
    run_ok(Command::new("sh").arg("-n").arg(&rcs));
    let text = read(&rcs);
    let inittab = documented_inittab_lines();
    let command = inittab[0].rsplit(':').next().unwrap();
    let program_and_list = |line: &str| -> (String, String) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let list = words
            .windows(2)
            .find(|w| w[0] == "--list")
            .map(|w| w[1].to_string())
            .unwrap_or_default();
        (words[0].to_string(), list)
    };
    let rcs_line = text
        .lines()
        .find(|l| l.starts_with("/usr/bin/container-loader"))
        .expect("no loader line in rcS");
    assert_eq!(program_and_list(rcs_line), program_and_list(command));
}
