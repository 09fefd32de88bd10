//! Helpers for the tests of the device files (tests/units.rs, tests/initramfs.rs): running
//! commands, `make install`, and running a command as if the installed tree were this machine's
//! /usr and /etc, without changing either.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::loader_bin;

pub mod debian_root;
pub mod qemu;

/// Runs `cmd`, returns (exit code, stdout + stderr).
pub fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `cmd` and panics with its output unless it succeeds; returns the output.
pub fn run_ok(cmd: &mut Command) -> String {
    let (code, text) = run(cmd);
    assert_eq!(code, 0, "{cmd:?} failed:\n{text}");
    text
}

/// `make install DESTDIR=dest INSTALL_BIN=<the binary under test>` plus `vars`: the install
/// rule itself, not a copy of it. The binary's absolute path, so that make never takes it for
/// its own dist/ target and rebuilds it.
pub fn make_install(dest: &Path, vars: &[&str]) {
    let bin = fs::canonicalize(loader_bin())
        .unwrap_or_else(|e| panic!("{}: {e}", loader_bin().display()));
    run_ok(
        Command::new("make")
            .args([
                "-s",
                "--no-print-directory",
                "-C",
                env!("CARGO_MANIFEST_DIR"),
            ])
            .arg("install")
            .arg(format!("DESTDIR={}", dest.display()))
            .arg(format!("INSTALL_BIN={}", bin.display()))
            .args(vars),
    );
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The children of process `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// `sh in-system.sh STAGE WORK CMD...`: CMD in a private mount namespace in which STAGE's usr/
/// and etc/ are copied over this machine's /usr and /etc (overlays, their upper layers in
/// WORK) and /boot is an empty tmpfs. This machine's own files stay as they are.
const IN_SYSTEM: &str = r#"
set -eu
if [ "${CLT_INSIDE:-}" != 1 ]; then
    CLT_INSIDE=1 exec unshare --mount --propagation private sh "$0" "$@"
fi
unset CLT_INSIDE
stage=$1 work=$2
shift 2
for d in usr etc; do
    mkdir -p "$work/$d-upper" "$work/$d-work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/$d-upper,workdir=$work/$d-work" "/$d"
    if [ -d "$stage/$d" ]; then
        cp -a "$stage/$d/." "/$d/"
    fi
done
mount -t tmpfs tmpfs /boot
exec "$@"
"#;

/// A command that runs `program` in the installed system (see IN_SYSTEM). `work` must be a
/// fresh directory for each call.
pub fn in_system(stage: &Path, work: &Path, program: &str) -> Command {
    crate::common::require_root();
    crate::common::require_program("unshare");
    fs::create_dir_all(work).unwrap();
    let script = work.join("in-system.sh");
    fs::write(&script, IN_SYSTEM).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(script).arg(stage).arg(work).arg(program);
    cmd
}
