//! Real engines on private sockets: dockerd and podman from the host (Debian 12) or from the
//! Debian 13 root filesystem `make engines-root` builds, each with its storage in a temporary
//! directory; started, asked, killed and restarted by the tests.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// Longest an engine may take to answer `GET /_ping` after it was started.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest an engine may take to exit after SIGTERM before it gets SIGKILL.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// benches/bench.rs only: the tests run vfs.
    #[allow(dead_code)]
    pub fn set_storage_driver(&mut self, driver: &'static str) {
        assert!(self.child.is_none(), "set the storage driver before launch");
        self.storage_driver = driver;
    }

    /// The storage driver the engine runs with (vfs unless set otherwise).
    #[allow(dead_code)]
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
// Killing and restarting an engine (the fault tests)
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
