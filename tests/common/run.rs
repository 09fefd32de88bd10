//! Running the loader under test (the debug build, or $CONTAINER_LOADER_BIN through
//! $CONTAINER_LOADER_RUNNER), in the foreground or the background, and reading what it left in
//! its run directory.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::*;

/// Longest a single loader run may take before the harness kills it and fails the test.
pub const LOADER_TIMEOUT: Duration = Duration::from_secs(120);

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
