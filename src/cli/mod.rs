//! The command line: `container-loader [load|status|inspect|scan] [OPTIONS] [OPERANDS]`.
//!
//! Each command takes its own options, listed once in `flags::FLAGS` with the commands they
//! belong to and what they set: that table drives the parsing (an option of another command is
//! refused, naming the command) and each command's `--help` (`help.rs`). Parsing takes the
//! arguments and the environment as parameters, so tests can call it, and turns them into a
//! [`Command`] holding the command's options (`options.rs`), everything its run needs; nothing
//! later looks at `std::env`.
//!
//! A line is read in three passes: the words (command, options, operands), then each option
//! checked against the command, then the values applied and the command's options built.

use std::ffi::OsString;
use std::fmt;

use lexopt::prelude::*;

mod error;
mod flags;
mod help;
mod options;
mod values;

use error::Refusal;
use flags::{Action, Flag, FLAGS};
use options::Given;

pub use error::UsageError;
pub use help::{help, version};
#[cfg(feature = "pack")]
pub use options::Pack;
pub use options::{Inspect, Load, Scan, Status};

/// The commands; `load` when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Load,
    Status,
    Inspect,
    Scan,
    #[cfg(feature = "pack")]
    Pack,
}

impl Name {
    /// Every command, in the order the overview lists them. A new command goes here by hand:
    /// one left out is refused as unknown and missing from the overview.
    pub(crate) const ALL: &[Name] = &[
        Name::Load,
        Name::Status,
        Name::Inspect,
        Name::Scan,
        #[cfg(feature = "pack")]
        Name::Pack,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Name::Load => "load",
            Name::Status => "status",
            Name::Inspect => "inspect",
            Name::Scan => "scan",
            #[cfg(feature = "pack")]
            Name::Pack => "pack",
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the command line asks for, with everything the run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Load(Load),
    Status(Status),
    Inspect(Inspect),
    Scan(Scan),
    #[cfg(feature = "pack")]
    Pack(Pack),
    /// `None`: the overview.
    Help(Option<Name>),
    Version,
}

/// Parses `args` (without the program name); `env` looks up environment variables.
///
/// Options may stand before or after the command; each is checked against the command, and
/// one that is not its own is refused, naming the command.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let line = Line::read(args)?;
    let command = line.command;
    if line.help {
        return Ok(Command::Help(command));
    }
    if line.asks_version() {
        return Ok(Command::Version);
    }
    let name = command.unwrap_or(Name::Load);
    let err = |refusal| UsageError { command, refusal };
    let owned = line.owned(name).map_err(err)?;
    let mut given = Given::default();
    for (written, flag) in line.options.into_iter().zip(owned) {
        flag.apply(&mut given, &written.spelled, written.value)
            .map_err(err)?;
    }
    build(name, given, line.operands, &env).map_err(err)
}

/// The command's options from what the line gave: one arm per command.
fn build(
    name: Name,
    given: Given,
    operands: Vec<OsString>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Command, Refusal> {
    Ok(match name {
        Name::Load => Command::Load(Load::new(given, operands, env)?),
        Name::Status => Command::Status(Status::new(given, operands, env)?),
        Name::Inspect => Command::Inspect(Inspect::new(given, operands)?),
        Name::Scan => Command::Scan(Scan::new(given, operands)?),
        #[cfg(feature = "pack")]
        Name::Pack => Command::Pack(Pack::new(given, operands)?),
    })
}

/// An option as written: its spelling, the first row spelled so and its value.
struct Written {
    spelled: String,
    flag: &'static Flag,
    value: Option<OsString>,
}

/// The words of a command line, before any option is checked against the command.
struct Line {
    command: Option<Name>,
    options: Vec<Written>,
    operands: Vec<OsString>,
    /// `--help` was given: whatever follows it may be wrong without an error.
    help: bool,
}

impl Line {
    /// Reads the words: the first word before any operand is the command, an unknown option is
    /// refused, and after `--help` a word that cannot be read ends the line instead.
    fn read(args: impl IntoIterator<Item = OsString>) -> Result<Line, UsageError> {
        let mut p = lexopt::Parser::from_args(args);
        let mut line = Line {
            command: None,
            options: Vec::new(),
            operands: Vec::new(),
            help: false,
        };
        loop {
            let err = |refusal| UsageError {
                command: line.command,
                refusal,
            };
            let arg = match p.next() {
                Ok(Some(arg)) => arg,
                Ok(None) => break,
                Err(_) if line.help => break,
                Err(e) => return Err(err(Refusal::Unreadable(e.to_string()))),
            };
            let (spelled, found) = match arg {
                Value(v) if line.command.is_none() && line.operands.is_empty() => {
                    line.command = Some(command(&v.to_string_lossy())?);
                    continue;
                }
                Value(v) => {
                    line.operands.push(v);
                    continue;
                }
                Short(c) => (format!("-{c}"), FLAGS.iter().find(|f| f.short == Some(c))),
                Long(name) => (format!("--{name}"), FLAGS.iter().find(|f| f.long == name)),
            };
            let Some(flag) = found else {
                if line.help {
                    break;
                }
                return Err(err(Refusal::UnknownOption(spelled)));
            };
            line.help |= matches!(flag.action, Action::Help);
            let value = match flag.value() {
                Some(_) => match p.value() {
                    Ok(v) => Some(v),
                    Err(_) if line.help => break,
                    Err(e) => return Err(err(Refusal::Unreadable(e.to_string()))),
                },
                None => None,
            };
            line.options.push(Written {
                spelled,
                flag,
                value,
            });
        }
        Ok(line)
    }

    /// `--version` was given (and `--help` was not: help wins).
    fn asks_version(&self) -> bool {
        self.options
            .iter()
            .any(|o| matches!(o.flag.action, Action::Version))
    }

    /// The row that says what `name` does with each option, in order; the first option that
    /// is not `name`'s is refused.
    fn owned(&self, name: Name) -> Result<Vec<&'static Flag>, Refusal> {
        self.options
            .iter()
            .map(|written| {
                flags::of(name, written.flag.long).ok_or_else(|| Refusal::NotAnOption {
                    spelled: written.spelled.clone(),
                    command: name,
                    default: self.command.is_none(),
                })
            })
            .collect()
    }
}

/// The command a word names. `pack` is a command only in a build with the `pack` feature; in
/// another it is refused saying where it can be run.
fn command(word: &str) -> Result<Name, UsageError> {
    let refusal = if cfg!(feature = "pack") || word != "pack" {
        Refusal::UnknownCommand(word.to_owned())
    } else {
        Refusal::NoPack
    };
    Name::ALL
        .iter()
        .copied()
        .find(|n| n.as_str() == word)
        .ok_or(UsageError {
            command: None,
            refusal,
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::help::HELP_COLUMN;
    use super::*;
    use crate::engine::{Kind, DOCKER_SOCKET, PODMAN_SOCKET};
    use crate::input::list::DEFAULT_LIST;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, UsageError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(args.iter().map(OsString::from), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn options(args: &[&str]) -> Load {
        match parse_with(args, &[]).unwrap() {
            Command::Load(o) => o,
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
            Ok(Command::Status(Status { json: true, .. }))
        ));
        assert_eq!(parse_with(&["-h"], &[]), Ok(Command::Help(None)));
        assert_eq!(
            parse_with(&["inspect", "--json", "a.zst", "b.tar"], &[]),
            Ok(Command::Inspect(Inspect {
                archives: vec!["a.zst".into(), "b.tar".into()],
                json: true,
                memory_limit: 128 << 20,
            }))
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
            #[cfg(feature = "pack")]
            Name::Pack => &["in.tar", "out.zst"],
        }
    }

    /// `name`'s arguments with `option` (and a valid value for it if it takes one).
    fn with_option(name: Name, flag: &Flag, spelled: &str) -> Vec<String> {
        let mut args = vec![name.as_str().to_owned(), spelled.to_owned()];
        if let Some(value) = flag.value() {
            args.push(
                match value {
                    "auto|docker|podman" => "podman",
                    "SECONDS" | "N" => "5",
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
            .any(|f| f.long == long && f.commands.include(name))
    }

    #[test]
    fn every_command_refuses_every_option_of_another_naming_itself() {
        let mut refused = 0;
        for &name in Name::ALL {
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
        for &name in Name::ALL {
            for flag in FLAGS.iter().filter(|f| f.commands.include(name)) {
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
                        Command::Status(_) => Name::Status,
                        Command::Inspect(_) => Name::Inspect,
                        Command::Scan(_) => Name::Scan,
                        #[cfg(feature = "pack")]
                        Command::Pack(_) => Name::Pack,
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
            Ok(Command::Status(Status { json: true, .. }))
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
        for &name in Name::ALL {
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
                Ok(Command::Scan(Scan { verbosity: v, .. })) if v == verbosity
            ));
        }
    }

    #[test]
    fn scan_takes_one_dir() {
        let e = parse_with(&["scan", "a", "b"], &[]).unwrap_err();
        assert_eq!(e.command, Some(Name::Scan));
        assert_eq!(e.refusal, Refusal::SecondDir("b".into()));
        assert!(parse_with(&["scan"], &[]).is_err());
    }

    #[test]
    fn load_and_status_take_no_operands() {
        for name in ["load", "status"] {
            let e = parse_with(&[name, "extra"], &[]).unwrap_err();
            assert_eq!(e.refusal, Refusal::Operand("extra".into()));
        }
    }

    #[cfg(not(feature = "pack"))]
    #[test]
    fn pack_in_a_build_without_it_is_refused_saying_where_to_run_it() {
        let e = parse_with(&["pack", "in.tar", "out.zst"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container-loader: this build has no pack; run it from a build with --features pack (the build host's); see container-loader --help"
        );
    }

    #[cfg(feature = "pack")]
    #[test]
    fn pack_takes_in_out_a_level_and_threads() {
        let args = ["pack", "--level", "19", "--threads", "3", "a.tar", "b.zst"];
        match parse_with(&args, &[]) {
            Ok(Command::Pack(p)) => {
                assert_eq!((p.input, p.output), ("a.tar".into(), "b.zst".into()));
                assert_eq!((p.level, p.threads), (19, 3));
            }
            other => panic!("{other:?}"),
        }
        for args in [&["pack", "a.tar"][..], &["pack", "--level", "23", "a", "b"]] {
            assert!(parse_with(args, &[]).is_err(), "{args:?}");
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

    #[test]
    fn an_option_has_at_most_one_row_per_command() {
        for &name in Name::ALL {
            for flag in FLAGS.iter().filter(|f| f.commands.include(name)) {
                let rows = FLAGS
                    .iter()
                    .filter(|f| f.long == flag.long && f.commands.include(name))
                    .count();
                assert_eq!(rows, 1, "{name} has {rows} rows for --{}", flag.long);
            }
        }
    }

    #[test]
    fn rows_of_one_option_spell_it_and_its_value_alike() {
        for a in FLAGS {
            for b in FLAGS.iter().filter(|b| b.long == a.long) {
                assert_eq!((a.short, a.value()), (b.short, b.value()), "--{}", a.long);
            }
        }
    }

    #[test]
    fn status_takes_its_lists_engine_and_verify() {
        let status = match parse_with(
            &["status", "-l", "/a.list", "-e", "docker", "--verify", "-v"],
            &[],
        ) {
            Ok(Command::Status(status)) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status.lists, [PathBuf::from("/a.list")]);
        assert_eq!(status.engine, Some(Kind::Docker));
        assert_eq!(status.sockets, [PathBuf::from(DOCKER_SOCKET)]);
        assert!(status.verify && !status.json);
        assert_eq!(status.verbosity, 1);
    }

    #[test]
    fn a_value_that_is_not_text_is_refused_naming_the_option_as_written() {
        use std::os::unix::ffi::OsStringExt;
        let args = ["scan", "dir", "--ref"].map(OsString::from);
        let args = args.into_iter().chain([OsString::from_vec(vec![0xff])]);
        assert_eq!(
            parse(args, |_| None).unwrap_err().to_string(),
            "container-loader scan: --ref takes text, not \"\\xFF\"; see container-loader scan --help"
        );
    }

    #[test]
    fn scan_writes_where_output_says_with_the_refs_given() {
        let scan = match parse_with(
            &["scan", "d", "-o", "/l", "--ref", "a=b", "--ref", "c=d"],
            &[],
        ) {
            Ok(Command::Scan(scan)) => scan,
            other => panic!("{other:?}"),
        };
        assert_eq!(scan.dir, PathBuf::from("d"));
        assert_eq!(scan.output, Some(PathBuf::from("/l")));
        assert_eq!(scan.refs.len(), 2);
        assert_eq!(scan.refs["a"], "b");
    }
}
