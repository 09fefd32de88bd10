//! The command line: `container-loader [load|status|inspect|scan] [OPTIONS] [OPERANDS]`.
//!
//! Each command takes its own options, listed once in `FLAGS` with the commands they belong
//! to: that table drives both the parsing (an option of another command is refused, naming
//! the command) and each command's `--help`. Parsing takes the arguments and the environment
//! as parameters, so tests can call it, and turns them into a [`Command`] that says
//! everything the run needs; nothing later looks at `std::env`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;

use crate::engine::{Kind, DOCKER_SOCKET, PODMAN_SOCKET};
use crate::input::list::DEFAULT_LIST;
use crate::input::sizes::Size;
use crate::state::lock::RUN_DIR;

/// What `scan` is asked to do: the command's options, as the other commands' are [`Options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub dir: PathBuf,
    /// `ARCHIVE=REF`: the reference for an archive that carries none (or another one).
    pub refs: BTreeMap<String, String>,
    /// Where to write the list; standard output when `None`.
    pub output: Option<PathBuf>,
    pub memory_limit: u64,
}

/// How long to wait for the engine by default: at boot, docker can take tens of seconds.
const DEFAULT_WAIT_SECS: u64 = 60;
/// How long the engine may stay silent in one request before the entry fails.
const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// zstd's own default window limit, which plain `zstd -19` archives stay within.
const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;
/// How often a long load says how far it is when stderr is not a terminal (the journal): often
/// enough to tell a slow load from a hung one, rarely enough not to flood the boot log.
const DEFAULT_PROGRESS_INTERVAL_SECS: u64 = 10;

/// The commands; `load` when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Load,
    Status,
    Inspect,
    Scan,
}

impl Name {
    pub const ALL: [Name; 4] = [Name::Load, Name::Status, Name::Inspect, Name::Scan];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Load => "load",
            Name::Status => "status",
            Name::Inspect => "inspect",
            Name::Scan => "scan",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The usage line and what the command does.
    fn synopsis(self) -> &'static str {
        match self {
            Name::Load => {
                "container-loader [load] [OPTIONS]
  load what is missing (the default command)"
            }
            Name::Status => {
                "container-loader status [OPTIONS]
  per entry: archive present?, format, size, image present / missing /
  differs, image id"
            }
            Name::Inspect => {
                "container-loader inspect [OPTIONS] ARCHIVE...
  the images inside archives: references, id, layers, platform, sizes
  (reads, never unpacks; no engine)"
            }
            Name::Scan => {
                "container-loader scan DIR [OPTIONS]
  write an image.list for the archives in DIR, one line per reference
  inside them"
            }
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const LOAD: u8 = 1 << Name::Load as u8;
const STATUS: u8 = 1 << Name::Status as u8;
const INSPECT: u8 = 1 << Name::Inspect as u8;
const SCAN: u8 = 1 << Name::Scan as u8;
/// The groups several commands share: which lists and engine (load, status), how much memory
/// decoding may take (every command that reads archives), how much is said (load, status,
/// scan: inspect says nothing but its answer and its errors).
const LISTS: u8 = LOAD | STATUS;
const ENGINE: u8 = LOAD | STATUS;
const ARCHIVES: u8 = LOAD | STATUS | INSPECT | SCAN;
const VERBOSITY: u8 = LOAD | STATUS | SCAN;
const EVERY: u8 = LOAD | STATUS | INSPECT | SCAN;

/// One option: how it is spelled, the value it takes, the commands it belongs to and what
/// `--help` says of it. An option may have one row per command where it means more there.
struct Flag {
    short: Option<char>,
    long: &'static str,
    value: Option<&'static str>,
    commands: u8,
    help: &'static str,
}

const fn flag(
    short: Option<char>,
    long: &'static str,
    value: Option<&'static str>,
    commands: u8,
    help: &'static str,
) -> Flag {
    Flag {
        short,
        long,
        value,
        commands,
        help,
    }
}

/// Every option of every command, in the order `--help` lists them.
const FLAGS: &[Flag] = &[
    flag(
        Some('l'),
        "list",
        Some("PATH"),
        LISTS,
        concat!(
            "image list (default /usr/share/container-loader/image.list);\n",
            "may repeat",
        ),
    ),
    flag(
        Some('d'),
        "images-dir",
        Some("DIR"),
        LISTS,
        "archives directory (default: images/ beside each list)",
    ),
    flag(
        Some('e'),
        "engine",
        Some("auto|docker|podman"),
        ENGINE,
        "default auto: told from the engine's first answer",
    ),
    flag(
        Some('H'),
        "host",
        Some("URL"),
        ENGINE,
        concat!(
            "unix:///path.sock or a path; default $CONTAINER_HOST, then\n",
            "$DOCKER_HOST, then /run/docker.sock or /run/podman/podman.sock",
        ),
    ),
    flag(
        None,
        "wait",
        Some("SECONDS"),
        ENGINE,
        "wait up to this long for the engine to answer (default 60)",
    ),
    flag(
        None,
        "timeout",
        Some("SECONDS"),
        ENGINE,
        concat!(
            "longest the engine may stay silent during an upload (default\n",
            "600); any other request gets at most this or 30 s in all",
        ),
    ),
    flag(
        None,
        "delete-after-load",
        None,
        LOAD,
        concat!(
            "remove an archive only after its image is verified present\n",
            "(and every line naming it is done)",
        ),
    ),
    flag(
        None,
        "dry-run",
        None,
        LOAD,
        "say what would be loaded, load nothing",
    ),
    flag(
        None,
        "verify",
        None,
        LOAD,
        concat!(
            "present only if the engine's image for REF is the\n",
            "archive's (same id); else \"differs\", image kept, exit 1.\n",
            "Decodes the archive of each image present by name",
        ),
    ),
    flag(
        None,
        "verify",
        None,
        STATUS,
        concat!(
            "compare the engine's image for REF with the archive's\n",
            "(same id): \"differs\" when not, exit 1. Decodes the\n",
            "archive of each image present by name",
        ),
    ),
    flag(
        None,
        "replace-differing",
        None,
        LOAD,
        "with --verify, load the archive over an image that differs",
    ),
    flag(
        None,
        "run-dir",
        Some("DIR"),
        LOAD,
        concat!(
            "lock file per engine socket; status.json and a marker\n",
            "images/NAME per image present, NAME as systemd-escape\n",
            "spells REF (default /run/container-loader)",
        ),
    ),
    flag(
        None,
        "no-space-check",
        None,
        LOAD,
        concat!(
            "load even when the archive's unpacked size is more than\n",
            "the free space where the engine copies it",
        ),
    ),
    flag(
        None,
        "progress-interval",
        Some("SECONDS"),
        LOAD,
        concat!(
            "without a terminal, a progress line this often during\n",
            "a long load; 0: none (default 10)",
        ),
    ),
    flag(
        None,
        "ref",
        Some("ARCHIVE=REF"),
        SCAN,
        concat!(
            "the reference for ARCHIVE, instead of those inside it;\n",
            "may repeat for other archives",
        ),
    ),
    flag(
        Some('o'),
        "output",
        Some("LIST"),
        SCAN,
        "write the list to LIST (default: standard output)",
    ),
    flag(
        None,
        "memory-limit",
        Some("SIZE"),
        ARCHIVES,
        concat!(
            "cap on zstd window / xz dictionary memory, e.g. 512M\n",
            "(default 128M)",
        ),
    ),
    flag(
        None,
        "json",
        None,
        STATUS | INSPECT,
        "print JSON instead of text",
    ),
    flag(
        Some('q'),
        "quiet",
        None,
        VERBOSITY,
        "errors and warnings only",
    ),
    flag(
        Some('v'),
        "verbose",
        None,
        LOAD | STATUS,
        "also say what is asked of the engine",
    ),
    flag(
        Some('v'),
        "verbose",
        None,
        SCAN,
        "also say what each archive holds",
    ),
    flag(Some('h'), "help", None, EVERY, "this text"),
    flag(
        Some('V'),
        "version",
        None,
        EVERY,
        "version, target and formats",
    ),
];

const IMAGE_LIST: &str = "\
image.list: one \"ARCHIVE REF\" per line; blank lines and # comments are skipped.
An archive that does not carry REF but holds one image: that image is tagged REF.
";

const EXIT_STATUS: &str = "\
exit status: 0 every entry's image is present at the end; 1 some entry failed
             (or, with --verify, differs);
             2 usage error or unreadable list; 3 engine unreachable after --wait
";

/// `container-loader --help` (`None`: the overview, with the default command's options) or
/// `container-loader COMMAND --help`.
pub fn help(command: Option<Name>) -> String {
    let mut out = String::new();
    match command {
        None => {
            out.push_str(concat!(
                "container-loader: load the container images a root filesystem ships into ",
                "docker or podman\n\nusage:\n"
            ));
            for name in Name::ALL {
                for (i, line) in name.synopsis().lines().enumerate() {
                    out.push_str(if i == 0 { "  " } else { "    " });
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out.push_str(concat!(
                "  container-loader COMMAND --help\n      that command's options\n\n",
                "options of load:\n"
            ));
        }
        Some(name) => {
            out.push_str("usage: ");
            out.push_str(name.synopsis());
            out.push_str("\n\noptions:\n");
        }
    }
    let name = command.unwrap_or(Name::Load);
    for f in FLAGS.iter().filter(|f| f.commands & name.bit() != 0) {
        let mut tag = match f.short {
            Some(c) => format!("  -{c}, --{}", f.long),
            None => format!("      --{}", f.long),
        };
        if let Some(value) = f.value {
            tag.push(' ');
            tag.push_str(value);
        }
        let mut lines = f.help.lines();
        if tag.len() < HELP_COLUMN - 1 {
            out.push_str(&format!(
                "{tag:<HELP_COLUMN$}{}\n",
                lines.next().unwrap_or("")
            ));
        } else {
            out.push_str(&tag);
            out.push('\n');
        }
        for line in lines {
            out.push_str(&format!("{:HELP_COLUMN$}{line}\n", ""));
        }
    }
    out.push('\n');
    match name {
        Name::Load | Name::Status => {
            out.push_str(IMAGE_LIST);
            out.push('\n');
            out.push_str(EXIT_STATUS);
        }
        Name::Inspect => out.push_str(
            "exit status: 0 every archive read; 1 some archive could not be read; 2 usage error\n",
        ),
        Name::Scan => out.push_str(concat!(
            "exit status: 0 a line for every archive; 1 some archive could not be read,\n",
            "             names no image, or a --ref names none;\n",
            "             2 usage error, DIR unreadable or the list not written\n",
        )),
    }
    out
}

/// Where an option's text starts in `--help`.
const HELP_COLUMN: usize = 27;

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
    Scan {
        scan: Scan,
        /// -1 quiet, 0 normal, 1 verbose.
        verbosity: i8,
    },
    /// `None`: the overview.
    Help(Option<Name>),
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

/// A command line that cannot be run, and the command it was meant for (`None`: none given).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    pub command: Option<Name>,
    pub message: String,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command {
            Some(name) => write!(
                f,
                "container-loader {name}: {}; see container-loader {name} --help",
                self.message
            ),
            None => write!(
                f,
                "container-loader: {}; see container-loader --help",
                self.message
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses `args` (without the program name); `env` looks up environment variables.
///
/// Options may stand before or after the command; each is checked against the command, and
/// one that is not its own is refused, naming the command.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let mut command: Option<Name> = None;
    let mut operands: Vec<OsString> = Vec::new();
    // Each option as written, with its value.
    let mut given: Vec<(String, &'static str, Option<OsString>)> = Vec::new();
    let mut help = false;
    let err = |command, message: String| UsageError { command, message };
    loop {
        let arg = match p.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(_) if help => break,
            Err(e) => return Err(err(command, e.to_string())),
        };
        let (spelled, found) = match arg {
            Value(v) if command.is_none() && operands.is_empty() => {
                let word = v.to_string_lossy();
                command = Some(
                    Name::ALL
                        .into_iter()
                        .find(|n| n.as_str() == word)
                        .ok_or_else(|| err(None, format!("unknown command \"{word}\"")))?,
                );
                continue;
            }
            Value(v) => {
                operands.push(v);
                continue;
            }
            Short(c) => (format!("-{c}"), FLAGS.iter().find(|f| f.short == Some(c))),
            Long(name) => (format!("--{name}"), FLAGS.iter().find(|f| f.long == name)),
        };
        let Some(found) = found else {
            if help {
                break;
            }
            return Err(err(command, format!("unknown option {spelled}")));
        };
        help |= found.long == "help";
        let value = match found.value {
            Some(_) => match p.value() {
                Ok(v) => Some(v),
                Err(_) if help => break,
                Err(e) => return Err(err(command, e.to_string())),
            },
            None => None,
        };
        given.push((spelled, found.long, value));
    }
    if help {
        return Ok(Command::Help(command));
    }
    if given.iter().any(|(_, long, _)| *long == "version") {
        return Ok(Command::Version);
    }
    let name = command.unwrap_or(Name::Load);
    let err = |message: String| UsageError { command, message };
    for (spelled, long, _) in &given {
        let owned = FLAGS
            .iter()
            .any(|f| f.long == *long && f.commands & name.bit() != 0);
        if !owned {
            let default = if command.is_none() {
                " (the default command)"
            } else {
                ""
            };
            return Err(err(format!(
                "{spelled} is not an option of {name}{default}"
            )));
        }
    }
    let mut lists = Vec::new();
    let mut images_dir = None;
    let mut engine = None;
    let mut host = None;
    let mut json = false;
    let mut refs = BTreeMap::new();
    let mut output = None;
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
    for (spelled, long, value) in given {
        let path = || PathBuf::from(value.clone().unwrap_or_default());
        let text = || {
            value
                .clone()
                .unwrap_or_default()
                .into_string()
                .map_err(|v| err(format!("{spelled} takes text, not {v:?}")))
        };
        match long {
            "list" => lists.push(path()),
            "images-dir" => images_dir = Some(path()),
            "engine" => {
                engine = match text()?.as_str() {
                    "auto" => None,
                    "docker" => Some(Kind::Docker),
                    "podman" => Some(Kind::Podman),
                    other => {
                        return Err(err(format!(
                            "--engine takes auto, docker or podman, not \"{other}\""
                        )))
                    }
                }
            }
            "host" => host = Some(text()?),
            "delete-after-load" => o.delete_after_load = true,
            "wait" => o.wait = seconds("--wait", &text()?).map_err(err)?,
            "timeout" => o.timeout = seconds("--timeout", &text()?).map_err(err)?,
            "memory-limit" => {
                let text = text()?;
                o.memory_limit = Size::parse(&text)
                    .filter(|s| s.0 > 0)
                    .ok_or_else(|| {
                        err(format!(
                            "--memory-limit takes a size like 512M or 2G, not \"{text}\""
                        ))
                    })?
                    .0;
            }
            "dry-run" => o.dry_run = true,
            "run-dir" => o.run_dir = path(),
            "verify" => o.verify = true,
            "replace-differing" => o.replace_differing = true,
            "progress-interval" => {
                o.progress_interval = seconds("--progress-interval", &text()?).map_err(err)?
            }
            "no-space-check" => o.space_check = false,
            "json" => json = true,
            "quiet" => o.verbosity = -1,
            "verbose" => o.verbosity = 1,
            "ref" => {
                let pair = text()?;
                let (archive, reference) = pair
                    .split_once('=')
                    .ok_or_else(|| err(format!("--ref takes ARCHIVE=REF, not \"{pair}\"")))?;
                refs.insert(archive.to_owned(), reference.to_owned());
            }
            "output" => output = Some(path()),
            _ => unreachable!("every option in FLAGS is read"),
        }
    }
    match name {
        Name::Inspect => {
            if operands.is_empty() {
                return Err(err("no ARCHIVE given".into()));
            }
            return Ok(Command::Inspect {
                archives: operands.into_iter().map(PathBuf::from).collect(),
                json,
                memory_limit: o.memory_limit,
            });
        }
        Name::Scan => {
            let mut operands = operands.into_iter();
            let dir = operands.next().ok_or_else(|| err("no DIR given".into()))?;
            if let Some(more) = operands.next() {
                return Err(err(format!(
                    "takes one DIR, not also \"{}\"",
                    more.to_string_lossy()
                )));
            }
            return Ok(Command::Scan {
                scan: Scan {
                    dir: PathBuf::from(dir),
                    refs,
                    output,
                    memory_limit: o.memory_limit,
                },
                verbosity: o.verbosity,
            });
        }
        Name::Load | Name::Status => {}
    }
    if let Some(extra) = operands.first() {
        return Err(err(format!(
            "takes only options, not \"{}\"",
            extra.to_string_lossy()
        )));
    }
    if o.replace_differing && !o.verify {
        return Err(err("--replace-differing needs --verify".into()));
    }
    if lists.is_empty() {
        lists.push(PathBuf::from(DEFAULT_LIST));
    }
    o.lists = lists;
    o.images_dir = images_dir;
    o.engine = engine;
    o.sockets = sockets(host, engine, &env).map_err(err)?;
    Ok(match name {
        Name::Status => Command::Status { options: o, json },
        _ => Command::Load(o),
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

fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{flag} takes whole seconds, not \"{text}\""))
}

/// The sockets to try: `--host`, else `$CONTAINER_HOST`, else `$DOCKER_HOST`, else the
/// engine's usual socket (both engines' when the engine is to be detected).
fn sockets(
    host: Option<String>,
    engine: Option<Kind>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, String> {
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
        return unix_path(&url)
            .map(|p| vec![p])
            .ok_or_else(|| format!("{from} must be unix:///path or a path, not \"{url}\""));
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
        assert_eq!(parse_with(&["-h"], &[]), Ok(Command::Help(None)));
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

    /// The operands a command needs, so that only the option is at fault.
    fn operands(name: Name) -> &'static [&'static str] {
        match name {
            Name::Inspect => &["a.tar"],
            Name::Scan => &["images"],
            Name::Load | Name::Status => &[],
        }
    }

    /// `name`'s arguments with `option` (and a valid value for it if it takes one).
    fn with_option(name: Name, flag: &Flag, spelled: &str) -> Vec<String> {
        let mut args = vec![name.as_str().to_owned(), spelled.to_owned()];
        if let Some(value) = flag.value {
            args.push(
                match value {
                    "auto|docker|podman" => "podman",
                    "SECONDS" => "5",
                    "SIZE" => "1G",
                    "ARCHIVE=REF" => "a.tar=example.org/a:1",
                    _ => "/tmp/x",
                }
                .to_owned(),
            );
        }
        args.extend(operands(name).iter().map(|s| s.to_string()));
        args
    }

    fn spellings(flag: &Flag) -> Vec<String> {
        let mut all = vec![format!("--{}", flag.long)];
        all.extend(flag.short.map(|c| format!("-{c}")));
        all
    }

    fn takes(name: Name, long: &str) -> bool {
        FLAGS
            .iter()
            .any(|f| f.long == long && f.commands & name.bit() != 0)
    }

    #[test]
    fn every_command_refuses_every_option_of_another_naming_itself() {
        let mut refused = 0;
        for name in Name::ALL {
            for flag in FLAGS.iter().filter(|f| !takes(name, f.long)) {
                for spelled in spellings(flag) {
                    let args = with_option(name, flag, &spelled);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let e = parse_with(&args, &[]).expect_err(&format!("{args:?}"));
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "container-loader {name}: {spelled} is not an option of {name}; see container-loader {name} --help"
                        )
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 40, "only {refused} refusals");
    }

    #[test]
    fn every_command_takes_each_of_its_options() {
        for name in Name::ALL {
            for flag in FLAGS.iter().filter(|f| f.commands & name.bit() != 0) {
                if matches!(flag.long, "help" | "version" | "replace-differing") {
                    continue;
                }
                for spelled in spellings(flag) {
                    let args = with_option(name, flag, &spelled);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let command =
                        parse_with(&args, &[]).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                    let parsed = match command {
                        Command::Load(_) => Name::Load,
                        Command::Status { .. } => Name::Status,
                        Command::Inspect { .. } => Name::Inspect,
                        Command::Scan { .. } => Name::Scan,
                        other => panic!("{args:?}: {other:?}"),
                    };
                    assert_eq!(parsed, name, "{args:?}");
                }
            }
        }
    }

    #[test]
    fn an_option_before_the_command_is_checked_against_the_command() {
        assert_eq!(
            parse_with(&["--delete-after-load", "inspect", "a.tar"], &[])
                .unwrap_err()
                .to_string(),
            "container-loader inspect: --delete-after-load is not an option of inspect; see container-loader inspect --help"
        );
        assert!(matches!(
            parse_with(&["--json", "status"], &[]),
            Ok(Command::Status { json: true, .. })
        ));
    }

    #[test]
    fn without_a_command_an_option_of_another_is_refused_as_not_loads() {
        assert_eq!(
            parse_with(&["--json"], &[]).unwrap_err().to_string(),
            "container-loader: --json is not an option of load (the default command); see container-loader --help"
        );
    }

    #[test]
    fn each_command_help_is_its_own_usage_with_only_its_options() {
        for name in Name::ALL {
            assert_eq!(
                parse_with(&[name.as_str(), "--help"], &[]),
                Ok(Command::Help(Some(name)))
            );
            assert_eq!(
                parse_with(&["-h", name.as_str()], &[]),
                Ok(Command::Help(Some(name)))
            );
            let text = help(Some(name));
            let usage = format!("usage: container-loader {}", name.as_str());
            assert!(
                text.starts_with(&usage)
                    || (name == Name::Load && text.starts_with("usage: container-loader [load]")),
                "{text}"
            );
            for flag in FLAGS {
                assert_eq!(
                    options_in(&text).contains(&format!("--{}", flag.long)),
                    takes(name, flag.long),
                    "{name} --help and --{}:\n{text}",
                    flag.long
                );
            }
        }
    }

    /// The options `--help` lists: the words of its option lines before their text.
    fn options_in(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  ") && l.trim_start().starts_with('-'))
            .flat_map(|l| l.get(..HELP_COLUMN).unwrap_or(l).split([' ', ',']))
            .filter(|w| w.starts_with('-'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn help_without_a_command_names_every_command_and_load_options() {
        let text = help(None);
        for name in Name::ALL {
            assert!(text.contains(&format!("container-loader {name}")) || name == Name::Load);
        }
        assert!(text.contains("container-loader COMMAND --help"), "{text}");
        assert!(
            text.contains("--delete-after-load") && !text.contains("--ref"),
            "{text}"
        );
    }

    #[test]
    fn help_wins_over_an_option_that_is_not_the_commands() {
        assert_eq!(
            parse_with(&["inspect", "--dry-run", "--help"], &[]),
            Ok(Command::Help(Some(Name::Inspect)))
        );
    }

    #[test]
    fn scan_takes_quiet_and_verbose() {
        for (flag, verbosity) in [("-q", -1), ("-v", 1), ("--verbose", 1)] {
            assert!(matches!(
                parse_with(&["scan", "dir", flag], &[]),
                Ok(Command::Scan { verbosity: v, .. }) if v == verbosity
            ));
        }
    }

    #[test]
    fn scan_takes_one_dir() {
        let e = parse_with(&["scan", "a", "b"], &[]).unwrap_err();
        assert_eq!(e.command, Some(Name::Scan));
        assert!(e.message.contains("one DIR"), "{e}");
        assert!(parse_with(&["scan"], &[]).is_err());
    }

    #[test]
    fn load_and_status_take_no_operands() {
        for name in ["load", "status"] {
            let e = parse_with(&[name, "extra"], &[]).unwrap_err();
            assert!(e.message.contains("\"extra\""), "{e}");
        }
    }

    #[test]
    fn an_unknown_command_is_refused_without_a_command() {
        let e = parse_with(&["unload"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container-loader: unknown command \"unload\"; see container-loader --help"
        );
    }
}
