//! The command line: `container-loader [load|status] [OPTIONS]`.
//!
//! Parsing takes the arguments and the environment as parameters, so tests can call it, and
//! turns them into a [`Command`] that says everything the run needs; nothing later looks at
//! `std::env`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use lexopt::prelude::*;

use crate::engine::{Kind, DOCKER_SOCKET, PODMAN_SOCKET};
use crate::list::DEFAULT_LIST;
use crate::lock::RUN_DIR;
use crate::scan::Scan;
use crate::units::Size;

/// How long to wait for the engine by default: at boot, docker can take tens of seconds.
const DEFAULT_WAIT_SECS: u64 = 60;
/// How long the engine may stay silent in one request before the entry fails.
const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// zstd's own default window limit, which plain `zstd -19` archives stay within.
const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;
/// How often a long load says how far it is when stderr is not a terminal (the journal): often
/// enough to tell a slow load from a hung one, rarely enough not to flood the boot log.
const DEFAULT_PROGRESS_INTERVAL_SECS: u64 = 10;

pub const USAGE: &str = "\
container-loader: load the container images a root filesystem ships into docker or podman

usage:
  container-loader [load] [OPTIONS]           load what is missing (the default command)
  container-loader status [--json] [--verify] [OPTIONS]
                                              per entry: archive present?, format, size,
                                              image present / missing / differs, image id
  container-loader scan DIR [--ref ARCHIVE=REF]... [-o LIST]
                                              write an image.list for the archives in DIR
                                              from the references inside them
  container-loader inspect [--json] ARCHIVE...
                                              the images inside archives: references, id,
                                              layers, platform, sizes (reads, never unpacks)

options:
  -l, --list PATH          image list (default /usr/share/container-loader/image.list);
                           may repeat
  -d, --images-dir DIR     archives directory (default: images/ beside each list)
  -e, --engine auto|docker|podman
                           default auto: detect from the engine's GET /_ping
  -H, --host URL           unix:///path.sock or a path; default $CONTAINER_HOST, then
                           $DOCKER_HOST, then /run/docker.sock or /run/podman/podman.sock
      --delete-after-load  remove an archive only after its image is verified present
      --wait SECONDS       wait up to this long for the engine to answer (default 60)
      --timeout SECONDS    longest the engine may stay silent during an upload (default
                           600); any other request gets at most this or 30 s in all
      --memory-limit SIZE  cap on zstd window / xz dictionary memory, e.g. 512M
                           (default 128M)
      --dry-run            say what would be loaded, load nothing
      --verify             present only if the engine's image for REF is the
                           archive's (same id); else \"differs\", image kept, exit 1.
                           Decodes the archive of each image present by name
      --replace-differing  with --verify, load the archive over an image that differs
      --run-dir DIR        lock file per engine socket; status.json and a marker
                           images/NAME per image present, NAME as systemd-escape
                           spells REF (default /run/container-loader)
      --no-space-check     load even when the archive's unpacked size is more than
                           the free space where the engine copies it
      --progress-interval SECONDS
                           without a terminal, a progress line this often during
                           a long load; 0: none (default 10)
      --json               (status, inspect) print JSON instead of text
  -q, --quiet              errors and warnings only
  -v, --verbose            also say what is asked of the engine
  -h, --help               this text
  -V, --version            version, target and formats

image.list: one \"ARCHIVE REF\" per line; blank lines and # comments are skipped.
An archive that does not carry REF but holds one image: that image is tagged REF.

exit status: 0 every entry's image is present at the end; 1 some entry failed
             (or, with --verify, differs);
             2 usage error or unreadable list; 3 engine unreachable after --wait
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Load(Options),
    Status {
        options: Options,
        json: bool,
    },
    Inspect {
        archives: Vec<PathBuf>,
        json: bool,
        memory_limit: u64,
    },
    Scan(Scan),
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub lists: Vec<PathBuf>,
    pub images_dir: Option<PathBuf>,
    /// `None`: detect.
    pub engine: Option<Kind>,
    /// Sockets to try, in order; the first that answers is used.
    pub sockets: Vec<PathBuf>,
    pub delete_after_load: bool,
    pub wait: Duration,
    pub timeout: Duration,
    pub memory_limit: u64,
    pub dry_run: bool,
    /// Lock files, status.json and the image markers.
    pub run_dir: PathBuf,
    /// An image is present only if it is the archive's (same id).
    pub verify: bool,
    /// With `verify`: load the archive over an image that differs.
    pub replace_differing: bool,
    /// Skip an archive that cannot fit where the engine copies it (`--no-space-check`: false).
    pub space_check: bool,
    /// -1 quiet, 0 normal, 1 verbose.
    pub verbosity: i8,
    /// How often a load reports progress in the journal; zero: never.
    pub progress_interval: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usage error: {} (see --help)", self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// Parses `args` (without the program name); `env` looks up environment variables.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let mut status = false;
    let mut inspect = false;
    let mut scan_dir: Option<Option<PathBuf>> = None;
    let mut refs = BTreeMap::new();
    let mut output = None;
    let mut archives = Vec::new();
    let mut json = false;
    let mut seen_command = false;
    let mut lists = Vec::new();
    let mut images_dir = None;
    let mut engine = None;
    let mut host = None;
    let mut o = Options {
        lists: Vec::new(),
        images_dir: None,
        engine: None,
        sockets: Vec::new(),
        delete_after_load: false,
        wait: Duration::from_secs(DEFAULT_WAIT_SECS),
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        memory_limit: DEFAULT_MEMORY_LIMIT,
        dry_run: false,
        run_dir: PathBuf::from(RUN_DIR),
        verify: false,
        replace_differing: false,
        space_check: true,
        verbosity: 0,
        progress_interval: Duration::from_secs(DEFAULT_PROGRESS_INTERVAL_SECS),
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('l') | Long("list") => lists.push(PathBuf::from(p.value()?)),
            Short('d') | Long("images-dir") => images_dir = Some(PathBuf::from(p.value()?)),
            Short('e') | Long("engine") => {
                engine = match p.value()?.string()?.as_str() {
                    "auto" => None,
                    "docker" => Some(Kind::Docker),
                    "podman" => Some(Kind::Podman),
                    other => {
                        return Err(UsageError(format!(
                            "--engine takes auto, docker or podman, not \"{other}\""
                        )))
                    }
                }
            }
            Short('H') | Long("host") => host = Some(p.value()?.string()?),
            Long("delete-after-load") => o.delete_after_load = true,
            Long("wait") => o.wait = seconds("--wait", &p.value()?.string()?)?,
            Long("timeout") => o.timeout = seconds("--timeout", &p.value()?.string()?)?,
            Long("memory-limit") => {
                let text = p.value()?.string()?;
                o.memory_limit = Size::parse(&text)
                    .filter(|s| s.0 > 0)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--memory-limit takes a size like 512M or 2G, not \"{text}\""
                        ))
                    })?
                    .0;
            }
            Long("dry-run") => o.dry_run = true,
            Long("run-dir") => o.run_dir = PathBuf::from(p.value()?),
            Long("verify") => o.verify = true,
            Long("replace-differing") => o.replace_differing = true,
            Long("progress-interval") => {
                o.progress_interval = seconds("--progress-interval", &p.value()?.string()?)?
            }
            Long("no-space-check") => o.space_check = false,
            Long("json") => json = true,
            Short('q') | Long("quiet") => o.verbosity = -1,
            Short('v') | Long("verbose") => o.verbosity = 1,
            Value(v) if !seen_command => {
                seen_command = true;
                match v.string()?.as_str() {
                    "load" => {}
                    "status" => status = true,
                    "inspect" => inspect = true,
                    "scan" => scan_dir = Some(None),
                    other => return Err(UsageError(format!("unknown command \"{other}\""))),
                }
            }
            Value(v) if inspect => archives.push(PathBuf::from(v)),
            Value(v) if scan_dir == Some(None) => scan_dir = Some(Some(PathBuf::from(v))),
            Long("ref") if scan_dir.is_some() => {
                let pair = p.value()?.string()?;
                let (archive, reference) = pair.split_once('=').ok_or_else(|| {
                    UsageError(format!("--ref takes ARCHIVE=REF, not \"{pair}\""))
                })?;
                refs.insert(archive.to_owned(), reference.to_owned());
            }
            Short('o') | Long("output") if scan_dir.is_some() => {
                output = Some(PathBuf::from(p.value()?))
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if let Some(dir) = scan_dir {
        let dir = dir.ok_or_else(|| UsageError("scan needs a DIR".into()))?;
        return Ok(Command::Scan(Scan {
            dir,
            refs,
            output,
            memory_limit: o.memory_limit,
        }));
    }
    if inspect {
        if archives.is_empty() {
            return Err(UsageError("inspect needs at least one ARCHIVE".into()));
        }
        return Ok(Command::Inspect {
            archives,
            json,
            memory_limit: o.memory_limit,
        });
    }
    if o.replace_differing && !o.verify {
        return Err(UsageError("--replace-differing needs --verify".into()));
    }
    if json && !status {
        return Err(UsageError("--json goes with status and inspect".into()));
    }
    if lists.is_empty() {
        lists.push(PathBuf::from(DEFAULT_LIST));
    }
    o.lists = lists;
    o.images_dir = images_dir;
    o.engine = engine;
    o.sockets = sockets(host, engine, &env)?;
    Ok(if status {
        Command::Status { options: o, json }
    } else {
        Command::Load(o)
    })
}

/// `container-loader 0.1.0 (x86_64-unknown-linux-musl; formats: zstd gzip xz tar)`.
pub fn version() -> String {
    format!(
        "container-loader {} ({}; formats: zstd gzip xz tar)",
        env!("CARGO_PKG_VERSION"),
        env!("CONTAINER_LOADER_TARGET")
    )
}

fn seconds(flag: &str, text: &str) -> Result<Duration, UsageError> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| UsageError(format!("{flag} takes whole seconds, not \"{text}\"")))
}

/// The sockets to try: `--host`, else `$CONTAINER_HOST`, else `$DOCKER_HOST`, else the
/// engine's usual socket (both engines' when the engine is to be detected).
fn sockets(
    host: Option<String>,
    engine: Option<Kind>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, UsageError> {
    let given = host
        .map(|h| ("--host", h))
        .or_else(|| {
            env("CONTAINER_HOST")
                .filter(|h| !h.is_empty())
                .map(|h| ("$CONTAINER_HOST", h))
        })
        .or_else(|| {
            env("DOCKER_HOST")
                .filter(|h| !h.is_empty())
                .map(|h| ("$DOCKER_HOST", h))
        });
    if let Some((from, url)) = given {
        return unix_path(&url).map(|p| vec![p]).ok_or_else(|| {
            UsageError(format!(
                "{from} must be unix:///path or a path, not \"{url}\""
            ))
        });
    }
    Ok(match engine {
        Some(Kind::Docker) => vec![DOCKER_SOCKET.into()],
        Some(Kind::Podman) => vec![PODMAN_SOCKET.into()],
        None => vec![DOCKER_SOCKET.into(), PODMAN_SOCKET.into()],
    })
}

fn unix_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("unix://").unwrap_or(url);
    (path.starts_with('/') || !url.contains("://")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, UsageError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(args.iter().map(OsString::from), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn options(args: &[&str]) -> Options {
        match parse_with(args, &[]).unwrap() {
            Command::Load(o) | Command::Status { options: o, .. } => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loads_the_default_list_from_either_usual_socket_without_arguments() {
        let o = options(&[]);
        assert_eq!(o.lists, [PathBuf::from(DEFAULT_LIST)]);
        assert_eq!(
            o.sockets,
            [PathBuf::from(DOCKER_SOCKET), PathBuf::from(PODMAN_SOCKET)]
        );
        assert_eq!(o.memory_limit, 128 << 20);
        assert_eq!(o.wait, Duration::from_secs(60));
        assert!(!o.delete_after_load && !o.dry_run);
        assert!(o.space_check);
    }

    #[test]
    fn takes_repeated_lists_and_every_option() {
        let o = options(&[
            "load",
            "-l",
            "/a/image.list",
            "--list",
            "/b/image.list",
            "-d",
            "/imgs",
            "-e",
            "podman",
            "-H",
            "unix:///tmp/p.sock",
            "--delete-after-load",
            "--wait",
            "5",
            "--timeout",
            "9",
            "--memory-limit",
            "1G",
            "--dry-run",
            "--no-space-check",
            "--verify",
            "--replace-differing",
            "--run-dir",
            "/tmp/run",
            "-q",
        ]);
        assert_eq!(
            o.lists,
            [
                PathBuf::from("/a/image.list"),
                PathBuf::from("/b/image.list")
            ]
        );
        assert_eq!(o.images_dir, Some(PathBuf::from("/imgs")));
        assert_eq!(o.engine, Some(Kind::Podman));
        assert_eq!(o.sockets, [PathBuf::from("/tmp/p.sock")]);
        assert!(o.delete_after_load && o.dry_run && !o.space_check);
        assert_eq!(
            (o.wait, o.timeout),
            (Duration::from_secs(5), Duration::from_secs(9))
        );
        assert_eq!(o.memory_limit, 1 << 30);
        assert!(o.verify && o.replace_differing);
        assert_eq!(o.run_dir, PathBuf::from("/tmp/run"));
        assert_eq!(o.verbosity, -1);
    }

    #[test]
    fn picks_the_socket_from_host_then_container_host_then_docker_host() {
        let env = [
            ("CONTAINER_HOST", "unix:///c.sock"),
            ("DOCKER_HOST", "unix:///d.sock"),
        ];
        let socket = |args: &[&str], env: &[(&str, &str)]| match parse_with(args, env).unwrap() {
            Command::Load(o) => o.sockets,
            other => panic!("{other:?}"),
        };
        assert_eq!(socket(&["-H", "/h.sock"], &env), [PathBuf::from("/h.sock")]);
        assert_eq!(socket(&[], &env), [PathBuf::from("/c.sock")]);
        assert_eq!(socket(&[], &env[1..]), [PathBuf::from("/d.sock")]);
        assert_eq!(
            socket(&["-e", "podman"], &[]),
            [PathBuf::from(PODMAN_SOCKET)]
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for args in [
            &["--bogus"][..],
            &["--memory-limit", "abc"],
            &["--memory-limit", "0"],
            &["--wait", "-1"],
            &["-e", "containerd"],
            &["-H", "tcp://10.0.0.1:2375"],
            &["unload"],
            &["load", "--json"],
            &["load", "extra"],
            &["--replace-differing"],
        ] {
            assert!(parse_with(args, &[]).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn reads_status_json_help_and_version() {
        assert!(matches!(
            parse_with(&["status", "--json"], &[]),
            Ok(Command::Status { json: true, .. })
        ));
        assert_eq!(parse_with(&["-h"], &[]), Ok(Command::Help));
        assert_eq!(
            parse_with(&["inspect", "--json", "a.zst", "b.tar"], &[]),
            Ok(Command::Inspect {
                archives: vec!["a.zst".into(), "b.tar".into()],
                json: true,
                memory_limit: 128 << 20,
            })
        );
        assert!(parse_with(&["inspect"], &[]).is_err());
        assert_eq!(
            parse_with(&["status", "--version"], &[]),
            Ok(Command::Version)
        );
    }

    #[test]
    fn reads_the_progress_interval_in_seconds_and_zero_turns_it_off() {
        assert_eq!(options(&[]).progress_interval, Duration::from_secs(10));
        assert_eq!(
            options(&["--progress-interval", "1"]).progress_interval,
            Duration::from_secs(1)
        );
        assert!(options(&["--progress-interval", "0"])
            .progress_interval
            .is_zero());
        assert!(parse_with(&["--progress-interval", "soon"], &[]).is_err());
    }
}
