//! Shared harness for the integration tests: real engines on private sockets, fixture
//! archives built in memory, and a runner for the loader binary.
//!
//! Nothing here is skipped: the suite needs root, `dockerd`, `podman`, `zstd`, `gzip`
//! and `xz`, and it fails loudly when one of them is missing (CI installs all of them).

#![allow(dead_code)]

pub mod proxy;

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Longest a single loader run may take before the harness kills it and fails the test.
pub const LOADER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest an engine may take to answer `GET /_ping` after it was started.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest an engine may take to exit after SIGTERM before it gets SIGKILL.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
fn kill_processes_mentioning(dir: &Path) {
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

fn signal(pid: u32, sig: &str) {
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
// Minimal HTTP/1.0 over a unix socket (test harness only)
// ---------------------------------------------------------------------------------------

/// Sends `GET path` over the unix socket, returns (status, body) or None if nobody answers.
pub fn http_get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    read_response(stream)
}

/// Sends `POST path` with `body` (Content-Length) and returns (status, body).
pub fn http_post(socket: &Path, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-tar\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .ok()?;
    stream.write_all(body).ok()?;
    read_response(stream)
}

/// Sends `DELETE path` and returns (status, body).
pub fn http_delete(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    write!(stream, "DELETE {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    read_response(stream)
}

fn read_response(mut stream: UnixStream) -> Option<(u16, String)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------

/// An engine family: what the loader's `--engine` names, and how its API is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }
}

/// One real engine build the tests run on. Debian 12's come from the host; the others from the
/// Debian 13 root filesystem `make engines-root` builds (see `engines_root`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// dockerd 20.10 (Debian 12), vfs.
    Docker20,
    /// podman 4.3 (Debian 12), vfs.
    Podman43,
    /// dockerd 26 (Debian 13) with its classic image store, vfs.
    Docker26,
    /// dockerd 26 (Debian 13) with the containerd image store (the default from docker 29 on
    /// fresh installs), overlayfs snapshotter, the containerd dockerd starts itself.
    Docker26Containerd,
    /// podman 5.4 (Debian 13), vfs.
    Podman54,
}

impl Flavor {
    pub const ALL: [Flavor; 5] = [
        Flavor::Docker20,
        Flavor::Podman43,
        Flavor::Docker26,
        Flavor::Docker26Containerd,
        Flavor::Podman54,
    ];

    pub fn family(self) -> Kind {
        match self {
            Flavor::Docker20 | Flavor::Docker26 | Flavor::Docker26Containerd => Kind::Docker,
            Flavor::Podman43 | Flavor::Podman54 => Kind::Podman,
        }
    }

    /// The test name `on_every_engine!` gives this engine.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Docker20 => "docker20",
            Flavor::Podman43 => "podman43",
            Flavor::Docker26 => "docker26",
            Flavor::Docker26Containerd => "docker26_containerd",
            Flavor::Podman54 => "podman54",
        }
    }

    /// Whether it runs from the Debian 13 root filesystem rather than the host.
    pub fn chrooted(self) -> bool {
        matches!(
            self,
            Flavor::Docker26 | Flavor::Docker26Containerd | Flavor::Podman54
        )
    }

    /// Whether images are kept by containerd (docker's containerd image store), where an
    /// image's `Id` is its manifest's digest rather than its config's.
    pub fn containerd_store(self) -> bool {
        self == Flavor::Docker26Containerd
    }

    // Short: it names the engine's TempDir, and containerd's sockets sit a few levels
    // below it (unix socket paths must stay below 108 bytes).
    fn dir_tag(self) -> &'static str {
        match self {
            Flavor::Docker20 => "docker",
            Flavor::Podman43 => "podman",
            Flavor::Docker26 => "d26",
            Flavor::Docker26Containerd => "d26c",
            Flavor::Podman54 => "p54",
        }
    }
}

/// The engines of Debian 12 (the host's packages) stand for their family.
impl From<Kind> for Flavor {
    fn from(kind: Kind) -> Flavor {
        match kind {
            Kind::Docker => Flavor::Docker20,
            Kind::Podman => Flavor::Podman43,
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Debian 13 root filesystem the newer engines run from: $CONTAINER_LOADER_ENGINES_ROOT
/// (relative to the project) or `target/engines/trixie`, as `make engines-root` builds it.
/// Panics when it is missing: tests on those engines must not pass without running.
pub fn engines_root() -> PathBuf {
    let root = match std::env::var_os("CONTAINER_LOADER_ENGINES_ROOT") {
        Some(p) if !p.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR")).join(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/engines/trixie"),
    };
    for program in ["usr/sbin/dockerd", "usr/bin/containerd", "usr/bin/podman"] {
        assert!(
            root.join(program).is_file(),
            "{} has no /{program}: the dockerd 26 and podman 5 tests need the Debian 13 root \
             filesystem (`make engines-root`, or CONTAINER_LOADER_ENGINES_ROOT=DIR)",
            root.display()
        );
    }
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

/// Runs the rest of its arguments chrooted into ROOT ($1) in a private mount namespace, with the
/// test's directory DIR ($2) at its own path inside, so that sockets and the directories the
/// engine reports are the same for the host and the engine. `exec` all the way: the harness's
/// child is the engine, and every mount goes away with the namespace when it exits. ROOT is
/// bound on itself (podman needs `/` to be a mount point) read-only, so no test changes the
/// shared root; what the engines write outside DIR lands on tmpfs: /run, /tmp, /var/tmp,
/// /var/cache (podman's short-name alias cache), /opt (the opt plugin of dockerd's containerd).
const CHROOT_SCRIPT: &str = r#"set -e
root=$1 dir=$2
shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
for d in run tmp var/tmp var/cache opt; do mount -t tmpfs -o mode=0755 tmpfs "$root/$d"; done
chmod 1777 "$root/tmp" "$root/var/tmp"
mkdir -p "$root$dir"
mount --rbind "$dir" "$root$dir"
exec chroot "$root" "$@"
"#;

/// A real engine on a private socket with its storage in a temporary directory: dockerd
/// (data root, exec root, pid file) or `podman system service` (root, runroot, TMPDIR).
/// Stopped by PID (SIGTERM, then SIGKILL after 10 s) on drop.
pub struct Engine {
    flavor: Flavor,
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
    /// The storage driver, `vfs` unless `set_storage_driver` chose another (the containerd
    /// store's snapshotter takes none).
    storage_driver: &'static str,
    // Dropped last, after the engine process is gone.
    dir: TempDir,
}

impl Engine {
    pub fn docker() -> Engine {
        Engine::start(Kind::Docker)
    }

    pub fn podman() -> Engine {
        Engine::start(Kind::Podman)
    }

    /// Starts an engine (a `Flavor`, or a `Kind` for Debian 12's) and waits until it answers
    /// `GET /_ping`.
    pub fn start(flavor: impl Into<Flavor>) -> Engine {
        let mut engine = Engine::unstarted(flavor);
        engine.launch();
        engine
    }

    /// Prepares the directory and socket path of an engine without starting it (for
    /// tests where the socket must appear late); call `launch` to start it.
    pub fn unstarted(flavor: impl Into<Flavor>) -> Engine {
        let flavor = flavor.into();
        require_root();
        if flavor.chrooted() {
            require_program("unshare");
            engines_root();
        } else {
            require_program(match flavor.family() {
                Kind::Docker => "dockerd",
                Kind::Podman => "podman",
            });
        }
        let dir = TempDir::new(flavor.dir_tag());
        if flavor.chrooted() {
            // CHROOT_SCRIPT creates the directory's mount point on one of its tmpfs mounts.
            let under_tmpfs = ["/tmp", "/var/tmp", "/run"]
                .iter()
                .any(|t| dir.path().parent() == Some(Path::new(t)));
            assert!(
                under_tmpfs,
                "{}: the chrooted engines need the test directories directly in /tmp, /var/tmp \
                 or /run (TMPDIR)",
                dir.path().display()
            );
        }
        let socket = dir.join(format!("{}.sock", flavor.family().name()));
        let longest = dir.join("x/containerd/containerd-debug.sock");
        assert!(
            longest.as_os_str().len() < 108,
            "{}: unix socket paths must stay below 108 bytes",
            longest.display()
        );
        let log = dir.join("engine.log");
        Engine {
            flavor,
            child: None,
            socket,
            log,
            storage_driver: "vfs",
            dir,
        }
    }

    /// The command that runs `program` from the Debian 13 root (see CHROOT_SCRIPT).
    fn chrooted(&self, program: &str) -> Command {
        let mut c = in_private_mounts(CHROOT_SCRIPT);
        c.arg(engines_root())
            .arg(self.dir.path())
            .arg(program)
            // The host's PATH may name directories the root does not have.
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        c
    }

    /// Another storage driver than vfs, before `launch`: overlay2 for docker, overlay for
    /// podman, as devices run them (vfs copies every parent layer whole for each new one).
    pub fn set_storage_driver(&mut self, driver: &'static str) {
        assert!(self.child.is_none(), "set the storage driver before launch");
        self.storage_driver = driver;
    }

    /// The storage driver the engine runs with (vfs unless set otherwise).
    pub fn storage_driver(&self) -> &'static str {
        self.storage_driver
    }

    /// Starts the engine process and waits until it answers `GET /_ping` with OK.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "engine already started");
        let d = self.dir.path();
        let log = fs::File::create(&self.log).expect("create engine log");
        let mut cmd = match self.flavor.family() {
            Kind::Docker => {
                let mut c = if self.flavor.chrooted() {
                    // The daemon's own config file, not the root's /etc/docker/daemon.json.
                    let config = d.join("daemon.json");
                    let settings = if self.flavor.containerd_store() {
                        r#"{"features":{"containerd-snapshotter":true}}"#
                    } else {
                        "{}"
                    };
                    fs::write(&config, settings).expect("write daemon.json");
                    let mut c = self.chrooted("dockerd");
                    c.arg("--config-file").arg(config);
                    c
                } else {
                    Command::new("dockerd")
                };
                if !self.flavor.containerd_store() {
                    c.arg(format!("--storage-driver={}", self.storage_driver));
                }
                c.args([
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                    "-H",
                ])
                .arg(format!("unix://{}", self.socket.display()))
                .arg("--data-root")
                .arg(d.join("root"))
                .arg("--exec-root")
                .arg(d.join("x"))
                .arg("--pidfile")
                .arg(d.join("pid"));
                c
            }
            Kind::Podman => {
                let tmp = d.join("tmp");
                fs::create_dir_all(&tmp).expect("create podman tmp dir");
                let mut c = if self.flavor.chrooted() {
                    self.chrooted("podman")
                } else {
                    Command::new("podman")
                };
                c.env("TMPDIR", &tmp)
                    .arg("--root")
                    .arg(d.join("root"))
                    .arg("--runroot")
                    .arg(d.join("run"))
                    .arg("--tmpdir")
                    .arg(d.join("libpod"))
                    .args(["--storage-driver", self.storage_driver])
                    .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
                    .args(["system", "service", "--time=0"])
                    .arg(format!("unix://{}", self.socket.display()));
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .env_remove("CONTAINER_HOST")
            .env_remove("DOCKER_HOST");
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.flavor));
        self.child = Some(child);

        let deadline = started + ENGINE_START_TIMEOUT;
        loop {
            if let Some((200, body)) = http_get(&self.socket, "/_ping") {
                if body.trim() == "OK" {
                    if std::env::var_os("CLT_SHOW_ENGINE_START").is_some() {
                        // For measuring what an engine per test costs (`--nocapture`).
                        eprintln!(
                            "{} answered /_ping after {:.2?}",
                            self.flavor,
                            started.elapsed()
                        );
                    }
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                panic!(
                    "{} exited with {status} before answering /_ping; log:\n{}",
                    self.flavor,
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer /_ping within {ENGINE_START_TIMEOUT:?}; log:\n{}",
                    self.flavor,
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The engine's family.
    pub fn kind(&self) -> Kind {
        self.flavor.family()
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `-H <socket>` as the loader expects it.
    pub fn host_args(&self) -> Vec<String> {
        vec!["-H".into(), self.socket.display().to_string()]
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.socket, path)
            .unwrap_or_else(|| panic!("{} did not answer GET {path}", self.flavor))
    }

    /// Whether the engine has an image `reference`, asked through its API.
    pub fn has_image(&self, reference: &str) -> bool {
        match self.flavor.family() {
            Kind::Docker => {
                let (status, body) = self.get(&format!("/images/{reference}/json"));
                match status {
                    200 => true,
                    404 => false,
                    _ => panic!("docker GET /images/{reference}/json: {status} {body}"),
                }
            }
            Kind::Podman => {
                // Podman 4.3 answers 404 to every unversioned /libpod/ path except
                // /_ping: the version prefix is required. Podman 5.4 takes v4.0.0 too.
                let (status, body) = self.get(&format!("/v4.0.0/libpod/images/{reference}/exists"));
                match status {
                    204 => true,
                    404 => false,
                    _ => panic!("podman GET /libpod/images/{reference}/exists: {status} {body}"),
                }
            }
        }
    }

    /// The image ID of `reference` as the engine reports it (docker: `sha256:<hex>`,
    /// podman: `<hex>`), or None if absent. That is the config's digest, except on docker's
    /// containerd image store, where it is the manifest's (or index's).
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let path = match self.flavor.family() {
            Kind::Docker => format!("/images/{reference}/json"),
            Kind::Podman => format!("/v4.0.0/libpod/images/{reference}/json"),
        };
        let (status, body) = self.get(&path);
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "GET {path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("image JSON");
        Some(v["Id"].as_str().expect("Id in image JSON").to_string())
    }

    /// Every name:tag the engine knows.
    pub fn list_images(&self) -> Vec<String> {
        let (path, field) = match self.flavor.family() {
            Kind::Docker => ("/images/json", "RepoTags"),
            Kind::Podman => ("/v4.0.0/libpod/images/json", "Names"),
        };
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("images JSON");
        let mut names: Vec<String> = v
            .as_array()
            .expect("images array")
            .iter()
            .flat_map(|img| img[field].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .filter(|n| n != "<none>:<none>")
            .collect();
        names.sort();
        names
    }

    /// Number of images (by ID) in the engine.
    pub fn image_count(&self) -> usize {
        let path = match self.flavor.family() {
            Kind::Docker => "/images/json?all=1",
            Kind::Podman => "/v4.0.0/libpod/images/json?all=true",
        };
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("images JSON");
        v.as_array().expect("images array").len()
    }

    /// Loads an uncompressed docker-archive directly through the engine's API (not through
    /// the loader), for images that must already be present before a test runs.
    pub fn preload(&self, fixture: &Fixture) {
        let path = match self.flavor.family() {
            Kind::Docker => "/images/load?quiet=1",
            Kind::Podman => "/v4.0.0/libpod/images/load",
        };
        let (status, body) = http_post(&self.socket, path, &fixture.tar)
            .unwrap_or_else(|| panic!("{} did not answer POST {path}", self.flavor));
        assert!(
            status == 200 && !body.contains("\"error"),
            "preloading {} into {}: {status} {body}",
            fixture.reference,
            self.flavor
        );
        self.assert_has(&fixture.reference);
    }

    /// Removes the image `reference` (forced, as `docker rmi -f`) through the engine's API.
    pub fn remove(&self, reference: &str) {
        let path = format!("/images/{reference}?force=1");
        let (status, body) = http_delete(&self.socket, &path)
            .unwrap_or_else(|| panic!("{} did not answer DELETE {path}", self.flavor));
        assert_eq!(status, 200, "removing {reference}: {body}");
        self.assert_has_not(reference);
    }

    /// Asserts that `reference` is present and returns the engine's ID for it.
    pub fn assert_has(&self, reference: &str) -> String {
        assert!(
            self.has_image(reference),
            "{} should have {reference}; it has {:?}",
            self.flavor,
            self.list_images()
        );
        self.image_id(reference).expect("image id")
    }

    pub fn assert_has_not(&self, reference: &str) {
        assert!(
            !self.has_image(reference),
            "{} should not have {reference}; it has {:?}",
            self.flavor,
            self.list_images()
        );
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + ENGINE_STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
        // `dir` drops next: it kills anything still running from inside it (containerd
        // spawned by dockerd), unmounts leftovers and removes the directory.
    }
}

// ---------------------------------------------------------------------------------------
// A fake engine that records requests (to prove what the loader never sends)
// ---------------------------------------------------------------------------------------

/// Answers like dockerd 20.10 on `/_ping` and `/version`, 404 on everything else, and
/// records every request line it receives.
pub struct FakeEngine {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl FakeEngine {
    /// A fake engine that answers every upload with HTTP 500.
    pub fn start() -> FakeEngine {
        FakeEngine::start_with(false)
    }

    /// A fake engine that accepts an upload and then never answers (a hung engine).
    pub fn start_stalling_loads() -> FakeEngine {
        FakeEngine::start_with(true)
    }

    fn start_with(stall_loads: bool) -> FakeEngine {
        let dir = TempDir::new("fake");
        let socket = dir.join("fake.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake engine socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req, st) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut stalled = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Ok(Some(held)) = serve_fake(stream, &req, stall_loads) {
                            // Keep the connection open, unanswered, until the fake stops.
                            stalled.push(held);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeEngine {
            socket,
            requests,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn host_args(&self) -> Vec<String> {
        vec!["-H".into(), self.socket.display().to_string()]
    }

    /// Request lines received so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one request; returns the connection instead of answering when it is an upload
/// and `stall_loads` is set.
fn serve_fake(
    stream: UnixStream,
    requests: &Mutex<Vec<String>>,
    stall_loads: bool,
) -> std::io::Result<Option<UnixStream>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let request_line = request_line.trim_end().to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if h.starts_with("transfer-encoding:") && h.contains("chunked") {
            chunked = true;
        }
    }
    requests.lock().unwrap().push(request_line.clone());
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if stall_loads && (chunked || content_length > 0) {
        return Ok(Some(writer));
    }
    let (status, body) = if chunked || content_length > 0 {
        ("500 Internal Server Error", r#"{"message":"fake engine"}"#)
    } else if path.ends_with("/_ping") {
        ("200 OK", "OK")
    } else if path.ends_with("/version") {
        (
            "200 OK",
            r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41"}}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
        )
    } else {
        ("404 Not Found", r#"{"message":"No such image"}"#)
    };
    let ctype = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    write!(
        writer,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Api-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()?;
    // One request per connection: the fake engine always closes.
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Fixture archives
// ---------------------------------------------------------------------------------------

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// xorshift64 from `seed`: reproducible test data, no crate needed.
fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

/// A seeded generator for randomized tests: the same seed makes the same choices.
pub struct Rng(Box<dyn Iterator<Item = u64>>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Box::new(xorshift(seed)))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.0.next().unwrap_or_default() % n as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `len` bytes that do not compress, so an upload is as big as its archive.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    for x in xorshift(seed) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layer tar holding one file.
fn layer_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, name, content, 0o644);
    b.into_inner().expect("finish layer tar")
}

/// Deterministic, compressible filler: words from a small vocabulary picked by an
/// xorshift generator seeded with `seed`.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "container",
        "loader",
        "layer",
        "image",
        "archive",
        "boot",
        "socket",
        "engine",
        "zstd",
        "gzip",
        "xz",
        "tar",
        "manifest",
        "config",
        "digest",
        "podman",
        "docker",
        "debian",
        "bookworm",
        "rootfs",
    ];
    let mut out = Vec::with_capacity(len + 16);
    for x in xorshift(seed) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Appends a regular file holding `data` at `path`, with `mode`.
pub fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, data)
        .expect("append to tar");
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut header = tar::Header::new_ustar();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder
        .append_data(&mut header, path, std::io::empty())
        .expect("append dir to tar");
}

/// A docker-archive image built in memory.
#[derive(Clone)]
pub struct Fixture {
    /// The first RepoTag (what a list line names).
    pub reference: String,
    /// The uncompressed docker-archive tar.
    pub tar: Vec<u8>,
    /// The image ID (`<hex>` of the config's sha256).
    pub id: String,
    /// The ID on docker's containerd image store (`<hex>`): the digest of the manifest
    /// containerd writes for a docker-archive (containerd's images/archive `ImportIndex`).
    pub manifest_id: String,
    /// The layer tars, bottom up, so that another image can be built on them.
    pub layers: Vec<Vec<u8>>,
}

impl Fixture {
    /// A one-layer image tagged `reference`.
    pub fn new(reference: &str) -> Fixture {
        Fixture::build(&[reference], 1)
    }

    /// An image with `layers` layers, each holding a file unique to this fixture, tagged
    /// with every entry of `repo_tags` (none: an untagged archive).
    pub fn build(repo_tags: &[&str], layers: usize) -> Fixture {
        let seed = fresh_seed();
        let layer_tars = (0..layers)
            .map(|i| {
                let name = format!("fixture-{seed:x}-{i}.txt");
                let mut content =
                    format!("fixture {seed:x} layer {i} for {repo_tags:?}\n").into_bytes();
                content.extend(filler(seed.wrapping_add(i as u64), 6000));
                layer_of(&name, &content)
            })
            .collect();
        Fixture::from_layers(repo_tags, layer_tars)
    }

    /// A one-layer image tagged `reference` whose layer holds one file, `name`: sized and
    /// shaped as a test needs it (random bytes that do not compress, text that does).
    pub fn one_file_layer(reference: &str, name: &str, content: &[u8]) -> Fixture {
        Fixture::from_layers(&[reference], vec![layer_of(name, content)])
    }

    /// A one-layer image tagged `reference` whose layer holds `files` (path, content, mode):
    /// with a static busybox as `bin/busybox` (0o755), an image a container can run.
    pub fn with_files(reference: &str, files: &[(&str, &[u8], u32)]) -> Fixture {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content, mode) in files {
            append_file(&mut b, path, content, *mode);
        }
        let layer = b.into_inner().expect("finish layer tar");
        Fixture::from_layers(&[reference], vec![layer])
    }

    /// An image tagged `reference` made of `base`'s layers and `more` layers of its own on
    /// top, each as large as `layer_len` bytes of text: images on a shared base.
    pub fn on_base(base: &Fixture, reference: &str, more: usize, layer_len: usize) -> Fixture {
        let seed = fresh_seed();
        let mut layers = base.layers.clone();
        layers.extend((0..more).map(|i| {
            let mut content = format!("{reference} layer {i} ({seed:x})\n").into_bytes();
            content.extend(filler(seed.wrapping_add(i as u64), layer_len));
            layer_of(&format!("on-base-{seed:x}-{i}.txt"), &content)
        }));
        Fixture::from_layers(&[reference], layers)
    }

    /// `self` with its top layer replaced by one of its own: an update that changes one layer.
    pub fn with_new_top(&self, reference: &str) -> Fixture {
        let seed = fresh_seed();
        let mut layers = self.layers.clone();
        let top = layers.pop().map_or(0, |l| l.len());
        let mut content = format!("{reference} new top ({seed:x})\n").into_bytes();
        content.extend(filler(seed, top));
        layers.push(layer_of(&format!("top-{seed:x}.txt"), &content));
        Fixture::from_layers(&[reference], layers)
    }

    /// A one-layer image tagged `reference` whose config names the architecture `arch`
    /// (`arm64`, `s390x`...): an image for another platform than the device's, which every
    /// engine loads and no container here could run.
    pub fn for_arch(reference: &str, arch: &str) -> Fixture {
        let seed = fresh_seed();
        let content = format!("fixture {seed:x} for {arch}\n").into_bytes();
        let layer = layer_of(&format!("fixture-{seed:x}.txt"), &content);
        Fixture::from_layers_for(arch, &[reference], vec![layer])
    }

    /// The docker-archive (`docker save` layout) of an image made of `layer_tars`.
    pub fn from_layers(repo_tags: &[&str], layer_tars: Vec<Vec<u8>>) -> Fixture {
        Fixture::from_layers_for(oci_arch(), repo_tags, layer_tars)
    }

    /// The same, for the architecture `arch`.
    fn from_layers_for(arch: &str, repo_tags: &[&str], layer_tars: Vec<Vec<u8>>) -> Fixture {
        let diff_ids: Vec<String> = layer_tars.iter().map(|l| sha256_hex(l)).collect();
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            arch,
            diff_ids
                .iter()
                .map(|d| format!("\"sha256:{d}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let id = sha256_hex(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{id}.json","RepoTags":[{}],"Layers":[{}]}}]"#,
            repo_tags
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(","),
            diff_ids
                .iter()
                .map(|d| format!("\"{d}/layer.tar\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut b = tar::Builder::new(Vec::new());
        for (d, l) in diff_ids.iter().zip(&layer_tars) {
            append_dir(&mut b, &format!("{d}/"));
            append_file(&mut b, &format!("{d}/layer.tar"), l, 0o644);
        }
        append_file(&mut b, &format!("{id}.json"), config.as_bytes(), 0o644);
        append_file(&mut b, "manifest.json", manifest.as_bytes(), 0o644);
        let layers: Vec<String> = diff_ids
            .iter()
            .zip(&layer_tars)
            .map(|(d, l)| {
                format!(
                    r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"sha256:{d}","size":{}}}"#,
                    l.len()
                )
            })
            .collect();
        let made_up = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{id}","size":{}}},"layers":[{}]}}"#,
            config.len(),
            layers.join(",")
        );
        Fixture {
            reference: repo_tags.first().copied().unwrap_or("").to_string(),
            tar: b.into_inner().expect("finish image tar"),
            id,
            manifest_id: sha256_hex(made_up.as_bytes()),
            layers: layer_tars,
        }
    }

    /// The ID `flavor` gives this image (`<hex>`): the config's digest, or the manifest's on
    /// docker's containerd image store.
    pub fn id_on(&self, flavor: Flavor) -> &str {
        match flavor.containerd_store() {
            true => &self.manifest_id,
            false => &self.id,
        }
    }

    pub fn compressed(&self, codec: Codec) -> Vec<u8> {
        codec.compress(&self.tar)
    }

    /// Its archive with one byte of its first layer's file changed: still a valid tar, whose
    /// layer no longer matches the config's diff_id. Every engine refuses it, each at its own
    /// point of the load (docker's containerd store after naming the image).
    pub fn with_a_layer_not_its_diff_id(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut damaged = false;
        let mut archive = tar::Archive::new(&self.tar[..]);
        for entry in archive.entries().expect("read fixture tar") {
            let mut entry = entry.expect("fixture tar entry");
            let path = entry.path().unwrap().display().to_string();
            if entry.header().entry_type().is_dir() {
                append_dir(&mut b, &path);
                continue;
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path.ends_with("/layer.tar") && !damaged {
                // Past the layer's first tar header: inside the file it holds.
                data[512 + 16] ^= 0x01;
                damaged = true;
            }
            append_file(&mut b, &path, &data, 0o644);
        }
        assert!(damaged, "the fixture has a layer");
        b.into_inner().expect("finish image tar")
    }
}

/// One docker-archive holding both fixtures' images, each under its own RepoTags.
pub fn two_image_archive(a: &Fixture, b: &Fixture) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut manifest: Vec<serde_json::Value> = Vec::new();
    for fixture in [a, b] {
        let mut archive = tar::Archive::new(&fixture.tar[..]);
        for entry in archive.entries().expect("read fixture tar") {
            let mut entry = entry.expect("fixture entry");
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if path == "manifest.json" {
                let items: Vec<serde_json::Value> = serde_json::from_slice(&data).unwrap();
                manifest.extend(items);
            } else if entry.header().entry_type().is_dir() {
                append_dir(&mut builder, &path);
            } else {
                append_file(&mut builder, &path, &data, 0o644);
            }
        }
    }
    let manifest = serde_json::to_vec(&manifest).unwrap();
    append_file(&mut builder, "manifest.json", &manifest, 0o644);
    builder.into_inner().expect("finish two-image tar")
}

/// How a fixture archive is compressed, always by the real command-line tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `zstd -q -c` (with its default content checksum).
    Zstd,
    /// `zstd -q --long=30 -c` from a pipe: the frame asks for a 1 GiB window.
    ZstdLong30,
    /// `gzip -c -n`.
    Gzip,
    /// Two gzip members concatenated, split inside the tar (not on a 512-byte boundary).
    GzipMultiMember,
    /// `xz -c`.
    Xz,
    /// `xz -T1 --block-size=4096 -c`: several xz blocks.
    XzMultiBlock,
    /// `xz -c --lzma2=dict=256MiB`: needs ~257 MiB to decode.
    XzBigDictionary,
    /// No compression at all.
    Tar,
}

impl Codec {
    /// The format name the loader reports ("zstd", "gzip", "xz", "tar").
    pub fn format(self) -> &'static str {
        match self {
            Codec::Zstd | Codec::ZstdLong30 => "zstd",
            Codec::Gzip | Codec::GzipMultiMember => "gzip",
            Codec::Xz | Codec::XzMultiBlock | Codec::XzBigDictionary => "xz",
            Codec::Tar => "tar",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Codec::Zstd | Codec::ZstdLong30 => "tar.zst",
            Codec::Gzip | Codec::GzipMultiMember => "tar.gz",
            Codec::Xz | Codec::XzMultiBlock | Codec::XzBigDictionary => "tar.xz",
            Codec::Tar => "tar",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        let out = match self {
            Codec::Zstd => pipe("zstd", &["-q", "-c"], data),
            Codec::ZstdLong30 => {
                let out = pipe("zstd", &["-q", "--long=30", "-c"], data);
                // Sanity: without a raised limit the zstd CLI itself refuses this frame.
                let plain = pipe_status("zstd", &["-q", "-d", "-c"], &out);
                assert!(
                    !plain.0.success(),
                    "fixture error: a --long=30 frame should need more than zstd's default memory"
                );
                out
            }
            Codec::Gzip => pipe("gzip", &["-c", "-n"], data),
            Codec::GzipMultiMember => {
                let split = data.len() / 2 + 7;
                let mut out = pipe("gzip", &["-c", "-n"], &data[..split]);
                out.extend(pipe("gzip", &["-c", "-n"], &data[split..]));
                out
            }
            Codec::Xz => pipe("xz", &["-c"], data),
            Codec::XzMultiBlock => {
                let out = pipe("xz", &["-T1", "--block-size=4096", "-c"], data);
                let blocks = xz_block_count(&out);
                assert!(
                    blocks > 1,
                    "fixture error: expected several xz blocks, got {blocks}"
                );
                out
            }
            Codec::XzBigDictionary => {
                let out = pipe("xz", &["-c", "--lzma2=dict=256MiB"], data);
                // Sanity: xz itself refuses to decode it within 128 MiB.
                let limited = pipe_status("xz", &["-d", "-c", "--memlimit=128MiB"], &out);
                assert!(
                    !limited.0.success(),
                    "fixture error: a 256 MiB dictionary should need more than 128 MiB"
                );
                out
            }
            Codec::Tar => data.to_vec(),
        };
        if self != Codec::ZstdLong30 {
            // Sanity: the real tool decompresses the fixture back to the tar.
            let (cmd, args): (&str, &[&str]) = match self.format() {
                "zstd" => ("zstd", &["-q", "-d", "-c"]),
                "gzip" => ("gzip", &["-d", "-c"]),
                "xz" => ("xz", &["-d", "-c"]),
                _ => ("cat", &[]),
            };
            assert!(
                pipe(cmd, args, &out) == data,
                "fixture error: {self:?} round trip"
            );
        }
        out
    }
}

fn xz_block_count(xz: &[u8]) -> u64 {
    let dir = TempDir::new("xzl");
    let f = dir.join("a.xz");
    fs::write(&f, xz).unwrap();
    let out = Command::new("xz")
        .args(["--robot", "-l"])
        .arg(&f)
        .output()
        .expect("xz -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("totals\t"))
        .and_then(|l| l.split('\t').nth(2))
        .and_then(|n| n.parse().ok())
        .expect("xz --robot -l totals")
}

/// Runs `program args` with `input` on stdin; returns stdout, panics on failure.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let (status, out, err) = pipe_status(program, args, input);
    assert!(
        status.success(),
        "{program} {args:?} failed: {status}: {}",
        String::from_utf8_lossy(&err)
    );
    out
}

fn pipe_status(program: &str, args: &[&str], input: &[u8]) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    require_program(program);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for compressor");
    writer.join().unwrap();
    (out.status, out.stdout, out.stderr)
}

/// Flips every bit of the byte at `index`.
pub fn flip(data: &mut [u8], index: usize) {
    data[index] ^= 0xff;
}

/// Offset of the last byte of the last block's check field (CRC64) in a one-stream xz
/// file: the index starts `backward size` bytes before the 12-byte stream footer, and the
/// check ends right where the index starts.
pub fn xz_last_block_check_offset(xz: &[u8]) -> usize {
    let n = xz.len();
    assert_eq!(&xz[n - 2..], b"YZ", "xz stream footer magic");
    let stored = u32::from_le_bytes(xz[n - 8..n - 4].try_into().unwrap()) as usize;
    let index_size = (stored + 1) * 4;
    let index_start = n - 12 - index_size;
    assert_eq!(xz[index_start], 0, "xz index indicator");
    index_start - 1
}

/// An archive produced by `podman save --format <format>` (docker-archive or
/// oci-archive) of `fixture`, loaded into a scratch podman storage first.
/// `fixture.reference` should be fully qualified so that the saved name is the same.
pub fn podman_saved(fixture: &Fixture, format: &str) -> Vec<u8> {
    podman_saved_as(fixture, format, &fixture.reference)
}

/// `podman save` of `fixture` named as `what`: a reference, or the image id, which OCI
/// archives then record without a name.
pub fn podman_saved_as(fixture: &Fixture, format: &str, what: &str) -> Vec<u8> {
    require_root();
    require_program("podman");
    let dir = TempDir::new("save");
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let input = dir.join("in.tar");
    let output = dir.join("out.tar");
    fs::write(&input, &fixture.tar).unwrap();
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .env("TMPDIR", &tmp)
            .env_remove("CONTAINER_HOST")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("libpod"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    podman(&["load", "-q", "-i", input.to_str().unwrap()]);
    podman(&[
        "save",
        "-q",
        "--format",
        format,
        "-o",
        output.to_str().unwrap(),
        what,
    ]);
    fs::read(&output).expect("read saved archive")
}

// ---------------------------------------------------------------------------------------
// Packages: DIR/image.list + DIR/images/
// ---------------------------------------------------------------------------------------

/// What an image package ships: `DIR/image.list` and the archives in `DIR/images/`.
pub struct Package {
    pub list: PathBuf,
    pub images: PathBuf,
    dir: TempDir,
}

impl Package {
    pub fn new() -> Package {
        let dir = TempDir::new("pkg");
        let images = dir.join("images");
        fs::create_dir_all(&images).unwrap();
        let list = dir.join("image.list");
        fs::write(&list, "").unwrap();
        Package { list, images, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The list path as a string, exactly as the tests pass it to `-l`.
    pub fn list_arg(&self) -> String {
        self.list.display().to_string()
    }

    /// Writes `data` as `images/<name>` and returns its path.
    pub fn add_archive(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.images.join(name);
        fs::write(&p, data).unwrap();
        p
    }

    /// Compresses `fixture` with `codec`, stores it as `images/<name>`, and returns the
    /// list line `<name> <reference>`.
    pub fn add(&self, name: &str, fixture: &Fixture, codec: Codec) -> String {
        self.add_archive(name, &fixture.compressed(codec));
        format!("{name} {}", fixture.reference)
    }

    /// Writes the list (one entry per line, newline-terminated).
    pub fn write_list(&self, lines: &[&str]) {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&self.list, text).unwrap();
    }

    /// A package of `n` zstd images, `example.org/{repo}{i}:1` in `{name}{i}.tar.zst` (`name`:
    /// the last part of `repo`), listed in that order.
    pub fn of_images(repo: &str, n: usize) -> (Package, Vec<Fixture>) {
        let pkg = Package::new();
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let fixtures: Vec<Fixture> = (0..n)
            .map(|i| Fixture::new(&format!("example.org/{repo}{i}:1")))
            .collect();
        let lines: Vec<String> = fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| pkg.add(&format!("{name}{i}.tar.zst"), f, Codec::Zstd))
            .collect();
        pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        (pkg, fixtures)
    }

    pub fn write_list_bytes(&self, data: &[u8]) {
        fs::write(&self.list, data).unwrap();
    }

    pub fn archive(&self, name: &str) -> PathBuf {
        self.images.join(name)
    }
}

impl Default for Package {
    fn default() -> Self {
        Package::new()
    }
}

// ---------------------------------------------------------------------------------------
// Running the loader
// ---------------------------------------------------------------------------------------

/// The binary under test: $CONTAINER_LOADER_BIN (e.g. the static musl or arm64 build) or
/// the one cargo built for this test run.
pub fn loader_bin() -> PathBuf {
    match std::env::var_os("CONTAINER_LOADER_BIN") {
        // Relative to the project, since some tests run the loader in another directory.
        Some(p) if !p.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR")).join(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_container-loader")),
    }
}

/// A command that runs the binary under test, through $CONTAINER_LOADER_RUNNER when set
/// (`qemu-aarch64-static` for the arm64 build), as cargo's target runners do.
pub fn loader_command() -> Command {
    match std::env::var_os("CONTAINER_LOADER_RUNNER") {
        Some(runner) if !runner.is_empty() => {
            let mut cmd = Command::new(runner);
            cmd.arg(loader_bin());
            cmd
        }
        _ => Command::new(loader_bin()),
    }
}

/// Result of one loader run.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub args: Vec<String>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "container-loader {:?}", self.args)?;
        writeln!(f, "exit code {} after {:.2?}", self.code, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}--------------", self.stderr)
    }
}

impl Output {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Stderr lines of entry `list:line`, i.e. starting with `LIST:LINE: `.
    pub fn entry(&self, list: &Path, line: usize) -> Vec<&str> {
        let prefix = format!("{}:{}: ", list.display(), line);
        self.stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    /// The last non-empty stderr line.
    pub fn summary(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self:?}");
        self
    }

    pub fn assert_summary(&self, expected: &str) -> &Self {
        assert_eq!(
            self.summary(),
            expected,
            "unexpected summary line\n{self:?}"
        );
        self
    }

    /// Asserts that entry `list:line` has a stderr line containing every one of `parts`.
    pub fn assert_entry(&self, list: &Path, line: usize, parts: &[&str]) -> &Self {
        let lines = self.entry(list, line);
        assert!(
            lines.iter().any(|l| parts.iter().all(|p| l.contains(p))),
            "expected a line `{}:{line}: ...` containing {parts:?}\n{self:?}",
            list.display()
        );
        self
    }

    /// Asserts that no stderr line of entry `list:line` contains `part`.
    pub fn assert_entry_lacks(&self, list: &Path, line: usize, part: &str) -> &Self {
        let lines = self.entry(list, line);
        assert!(
            !lines.iter().any(|l| l.contains(part)),
            "no line `{}:{line}: ...` should contain {part:?}\n{self:?}",
            list.display()
        );
        self
    }

    pub fn assert_stderr_contains(&self, part: &str) -> &Self {
        assert!(
            self.stderr.contains(part),
            "stderr should contain {part:?}\n{self:?}"
        );
        self
    }
}

/// A loader started in the background.
pub struct Running {
    child: Child,
    started: Instant,
    args: Vec<String>,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
    _run_dir: Option<TempDir>,
}

impl Running {
    /// Waits for the loader (killing it after LOADER_TIMEOUT and failing the test).
    pub fn wait(mut self) -> Output {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for loader") {
                break s;
            }
            if self.started.elapsed() > LOADER_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
                panic!(
                    "container-loader {:?} ran longer than {LOADER_TIMEOUT:?} and was killed; \
                     stderr:\n{stderr}",
                    self.args
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        let stdout = String::from_utf8_lossy(&self.out.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
        let code = status.code().unwrap_or_else(|| {
            panic!(
                "container-loader {:?} was killed by a signal ({status}); stderr:\n{stderr}",
                self.args
            )
        });
        let out = Output {
            code,
            stdout,
            stderr,
            elapsed,
            args: self.args,
        };
        if std::env::var_os("CLT_SHOW_OUTPUT").is_some() {
            // For reviewing what the loader says in passing tests (`--nocapture`).
            eprintln!("{out:?}");
        }
        out
    }
}

/// Starts the loader with `args` and extra environment `env` (CONTAINER_HOST,
/// DOCKER_HOST and JOURNAL_STREAM are removed from the inherited environment first).
pub fn spawn_loader<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Running {
    spawn_loader_in(None, args, env)
}

/// Like `spawn_loader`, in working directory `cwd` if given.
pub fn spawn_loader_in<S: AsRef<str>>(
    cwd: Option<&Path>,
    args: &[S],
    env: &[(&str, &str)],
) -> Running {
    let mut cmd = loader_command();
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    start_loader(cmd, args, env)
}

/// Like `spawn_loader`, behind `prefix`: a command that runs the rest of its arguments (setpriv
/// with fewer capabilities, unshare into a namespace of the test's own).
pub fn spawn_loader_behind<S: AsRef<str>>(mut prefix: Command, args: &[S]) -> Running {
    if let Some(runner) = std::env::var_os("CONTAINER_LOADER_RUNNER").filter(|r| !r.is_empty()) {
        prefix.arg(runner);
    }
    prefix.arg(loader_bin());
    start_loader(prefix, args, &[])
}

/// Starts `cmd` (the loader, or a prefix that runs it) with `args` added, its output captured.
fn start_loader<S: AsRef<str>>(mut cmd: Command, args: &[S], env: &[(&str, &str)]) -> Running {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    // Locks, status.json and image markers go to a directory of this run unless the test
    // names one: tests must not write into the host's /run/container-loader. Only load
    // takes --run-dir; the other commands refuse it.
    let other_command = matches!(
        args.first().map(String::as_str),
        Some("status" | "inspect" | "scan")
    );
    let run_dir =
        (!other_command && !args.iter().any(|a| a == "--run-dir")).then(|| TempDir::new("run"));
    if let Some(dir) = &run_dir {
        cmd.arg("--run-dir").arg(dir.path());
    }
    cmd.args(&args)
        .env_remove("CONTAINER_HOST")
        .env_remove("DOCKER_HOST")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", loader_bin().display()));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    Running {
        child,
        started,
        args,
        out,
        err,
        _run_dir: run_dir,
    }
}

/// The rows of `status.json` in the run directory `run`.
pub fn status_rows(run: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(run.join("status.json")).expect("status.json written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status.json is not JSON ({e}): {text}"))
}

/// The image id the marker for `reference` in the run directory `run` holds, if there is one.
pub fn marker_id(run: &Path, reference: &str) -> Option<String> {
    let name = reference.replace('/', "-");
    let text = fs::read_to_string(run.join("images").join(name)).ok()?;
    Some(text.trim_end().to_owned())
}

/// Runs the loader to completion (see `spawn_loader`).
pub fn run_loader<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Output {
    spawn_loader(args, env).wait()
}

/// Runs the loader against `engine` with `-H <socket>` followed by `args`.
pub fn load(engine: &Engine, args: &[&str]) -> Output {
    let mut all = engine.host_args();
    all.extend(args.iter().map(|s| s.to_string()));
    run_loader(&all, &[])
}

/// Runs the loader against `engine` on the one list of `pkg`, plus `extra` options.
pub fn load_package(engine: &Engine, pkg: &Package, extra: &[&str]) -> Output {
    let list = pkg.list_arg();
    let mut args = vec!["-l", list.as_str()];
    args.extend_from_slice(extra);
    load(engine, &args)
}

/// The ID `flavor` gives the image of the archive at `path` (`<hex>`), as `container-loader
/// inspect --json` reads it: the config digest, or the manifest digest on docker's containerd
/// image store.
pub fn archive_id_on(flavor: Flavor, path: &Path) -> String {
    let out = run_loader(&["inspect", "--json", &path.display().to_string()], &[]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect --json");
    let key = match flavor.containerd_store() {
        true => "manifest_digest",
        false => "id",
    };
    let id = v[0]["images"][0][key].as_str();
    bare_id(id.unwrap_or_else(|| panic!("no {key} in {v}"))).to_owned()
}

/// Strips a `sha256:` prefix so engine and loader IDs compare equal.
pub fn bare_id(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// Set of strings, for order-independent comparisons.
pub fn set<S: AsRef<str>>(items: &[S]) -> HashSet<String> {
    items.iter().map(|s| s.as_ref().to_string()).collect()
}

/// Declares, for each behaviour `fn(Flavor)`, a module of the same name with one `#[test]` per
/// engine: `docker20`, `podman43`, `docker26`, `docker26_containerd`, `podman54` (so
/// `cargo test docker26_containerd` picks an engine, `cargo test behaviour::` a behaviour).
/// `on_every_engine! { behaviour; ... }` (test files use `#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! on_every_engine {
    ($($behaviour:ident;)*) => {
        $(
            mod $behaviour {
                #[test]
                fn docker20() {
                    super::$behaviour($crate::common::Flavor::Docker20)
                }
                #[test]
                fn podman43() {
                    super::$behaviour($crate::common::Flavor::Podman43)
                }
                #[test]
                fn docker26() {
                    super::$behaviour($crate::common::Flavor::Docker26)
                }
                #[test]
                fn docker26_containerd() {
                    super::$behaviour($crate::common::Flavor::Docker26Containerd)
                }
                #[test]
                fn podman54() {
                    super::$behaviour($crate::common::Flavor::Podman54)
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Fault tests: killing and restarting engines and loaders
// ---------------------------------------------------------------------------------------

impl Engine {
    /// The engine's process id (dockerd, or `podman system service`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("engine not running").id()
    }

    /// The directory holding the engine's socket, data, temp files and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the engine with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("engine not running");
        child.kill().expect("SIGKILL the engine");
        child.wait().expect("reap the engine");
    }

    /// Starts the engine again on the same data, socket and temp directories, after what the
    /// killed engine left running is gone. The containerd that dockerd starts dies with it
    /// (parent-death signal), but not at once: a dockerd started while that containerd's pid
    /// still exists believes it is running, waits for its socket and gives up ("timeout
    /// waiting for containerd to start"). On a device, docker.service uses the separate
    /// containerd.service instead, which survives a dockerd crash.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "engine still running");
        kill_processes_mentioning(self.dir.path());
        let pidfile = self.dir.join("x/containerd/containerd.pid");
        if let Ok(pid) = fs::read_to_string(&pidfile) {
            let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
            let deadline = Instant::now() + ENGINE_STOP_TIMEOUT;
            while proc_dir.exists() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !proc_dir.exists(),
                "the killed dockerd's containerd (pid {}) did not exit",
                pid.trim()
            );
        }
        self.launch();
    }
}

impl Running {
    /// The loader's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the loader is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the loader with SIGKILL and returns what it had written to stderr.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        String::from_utf8_lossy(&self.err.join().unwrap()).into_owned()
    }
}

/// Waits for `running`, sampling its peak RSS (VmHWM, KiB) until it exits.
pub fn wait_sampling_peak_rss(running: Running) -> (Output, u64) {
    let pid = running.pid();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let out = running.wait();
    (out, sampler.join().unwrap())
}

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
