//! The machine the tests run on: what they require of it (root, programs), temporary
//! directories that clean up after the processes and mounts started in them, numbers unique to
//! this test process, and readings of a process's memory and descriptors from /proc.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique within this test process.
pub fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A seed no other fixture of this test process uses, and no other process's.
pub fn fresh_seed() -> u64 {
    (std::process::id() as u64) << 32 | unique() as u64
}

// ---------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------

/// Panics unless the tests run as root: the engines need it, and a suite that silently
/// skips its engine tests would pass without testing anything.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("no effective Uid in /proc/self/status");
    assert_eq!(
        uid, "0",
        "the integration tests start dockerd and podman and must run as root (euid is {uid})"
    );
}

/// `sh -c SCRIPT sh` in a mount namespace of its own (private propagation), so the mounts the
/// script makes end with it and never reach this machine; the script's arguments ($1 ...) and
/// the command it execs are appended by the caller.
pub fn in_private_mounts(script: &str) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ]);
    c
}

/// Panics unless `program` is an executable on $PATH.
pub fn require_program(program: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    });
    assert!(
        found,
        "`{program}` is required by the integration tests but is not on PATH \
         (install docker.io, podman, zstd, gzip, xz-utils)"
    );
}

// ---------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed (with everything in it) on drop.
/// Processes still running from inside it are killed first, leftover mounts unmounted.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        // Short names: unix socket paths (including containerd's inside dockerd's
        // exec-root) must stay below 108 bytes.
        let path =
            std::env::temp_dir().join(format!("clt-{}-{}-{}", std::process::id(), unique(), tag));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        kill_processes_mentioning(&self.path);
        if fs::remove_dir_all(&self.path).is_ok() || !self.path.exists() {
            return;
        }
        unmount_below(&self.path);
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// PIDs of processes (other than this one) whose command line mentions `dir`.
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmd| cmd.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Stops (TERM, then KILL) every process this harness started inside `dir`, found by the
/// unique directory name in its command line (e.g. the containerd that dockerd spawned).
pub(super) fn kill_processes_mentioning(dir: &Path) {
    let pids = processes_mentioning(dir);
    if pids.is_empty() {
        return;
    }
    for pid in &pids {
        signal(*pid, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !processes_mentioning(dir).is_empty() {
        thread::sleep(Duration::from_millis(50));
    }
    for pid in processes_mentioning(dir) {
        signal(pid, "KILL");
    }
}

pub(super) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Unmounts every mount point at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-R").arg(p).status();
    }
}

// ---------------------------------------------------------------------------------------
// A process seen from /proc
// ---------------------------------------------------------------------------------------

/// `VmHWM` (peak resident memory) of process `pid` in KiB, None once it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// A `kB` field of /proc/PID/status, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Number of open file descriptors of process `pid`, None once it is gone.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
