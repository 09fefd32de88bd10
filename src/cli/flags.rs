//! Every option of every command, each once in `FLAGS`: how it is spelled, the commands it
//! belongs to, the value it takes, what `--help` says of it and what it sets.
//!
//! A row cannot exist without what it sets (its [`Action`]), and which commands take a group of
//! options is an exhaustive `match` on [`Name`] ([`Commands::include`]), so a new option or a new
//! command is placed where the compiler points instead of falling to a default.

use std::ffi::OsString;
use std::path::PathBuf;

use super::error::Refusal;
use super::options::Given;
use super::values;
use super::Name;

/// The commands an option belongs to: one command, or a group several share.
#[derive(Debug, Clone, Copy)]
pub(super) enum Commands {
    Only(Name),
    /// `--help` and `--version`.
    Every,
    /// The commands that read image lists and ask the engine about them.
    Engine,
    /// The commands that decode archives, and so bound the memory decoding takes.
    Archives,
    /// The commands that say how they are doing on stderr: inspect says nothing but its answer
    /// and its errors.
    Speaking,
    /// The commands whose answer may be JSON.
    Json,
}

impl Commands {
    /// Whether `name` takes the options of this group. Each group names every command, so a new
    /// command is put in or out of each group here, not by a default.
    pub(super) fn include(self, name: Name) -> bool {
        #[cfg(feature = "pack")]
        use Name::Pack;
        use Name::{Inspect, Load, Scan, Status};
        match self {
            Commands::Only(only) => only == name,
            Commands::Every => true,
            Commands::Engine => match name {
                Load | Status => true,
                Inspect | Scan => false,
                #[cfg(feature = "pack")]
                Pack => false,
            },
            Commands::Archives => match name {
                Load | Status | Inspect | Scan => true,
                #[cfg(feature = "pack")]
                Pack => true,
            },
            Commands::Speaking => match name {
                Load | Status | Scan => true,
                Inspect => false,
                #[cfg(feature = "pack")]
                Pack => true,
            },
            Commands::Json => match name {
                Status | Inspect => true,
                Load | Scan => false,
                #[cfg(feature = "pack")]
                Pack => false,
            },
        }
    }
}

/// What an option does when given, and the value it takes.
#[derive(Clone, Copy)]
pub(super) enum Action {
    /// `--help`: the command's help, whatever else the line holds.
    Help,
    /// `--version`: the version, unless `--help` is given too.
    Version,
    /// An option without a value.
    Switch(fn(&mut Given)),
    /// A path, named so in `--help`, taken as it is written (any bytes).
    Path(&'static str, fn(&mut Given, PathBuf)),
    /// Text, named so in `--help`; the setter refuses a value it cannot use, saying what it takes.
    Text(&'static str, fn(&mut Given, &str) -> Result<(), Refusal>),
}

/// One option: how it is spelled, the commands it belongs to, what `--help` says of it and
/// what it does. An option may have one row per command where it means more there.
pub(super) struct Flag {
    pub(super) short: Option<char>,
    pub(super) long: &'static str,
    pub(super) commands: Commands,
    pub(super) help: &'static str,
    pub(super) action: Action,
}

impl Flag {
    /// The name of the value the option takes in `--help`; `None` when it takes none.
    pub(super) fn value(&self) -> Option<&'static str> {
        match self.action {
            Action::Help | Action::Version | Action::Switch(_) => None,
            Action::Path(name, _) | Action::Text(name, _) => Some(name),
        }
    }

    /// Sets what the option sets in `given`, from `value` as the reader took it (present exactly
    /// when [`Flag::value`] is). `--help` and `--version` set nothing: they are answered before any
    /// value is looked at.
    pub(super) fn apply(
        &self,
        given: &mut Given,
        spelled: &str,
        value: Option<OsString>,
    ) -> Result<(), Refusal> {
        let value = value.unwrap_or_default();
        match self.action {
            Action::Help | Action::Version => Ok(()),
            Action::Switch(set) => {
                set(given);
                Ok(())
            }
            Action::Path(_, set) => {
                set(given, PathBuf::from(value));
                Ok(())
            }
            Action::Text(_, set) => {
                let text = value.into_string().map_err(|value| Refusal::NotText {
                    spelled: spelled.to_owned(),
                    value,
                })?;
                set(given, &text)
            }
        }
    }
}

/// Every option of every command, in the order `--help` lists them.
pub(super) const FLAGS: &[Flag] = &[
    Flag {
        short: Some('l'),
        long: "list",
        commands: Commands::Engine,
        help: concat!(
            "image list (default /usr/share/container-loader/image.list);\n",
            "may repeat",
        ),
        action: Action::Path("PATH", |g, path| g.lists.push(path)),
    },
    Flag {
        short: Some('d'),
        long: "images-dir",
        commands: Commands::Engine,
        help: "archives directory (default: images/ beside each list)",
        action: Action::Path("DIR", |g, dir| g.images_dir = Some(dir)),
    },
    Flag {
        short: Some('e'),
        long: "engine",
        commands: Commands::Engine,
        help: "default auto: told from the engine's first answer",
        action: Action::Text("auto|docker|podman", |g, text| {
            g.engine = values::engine(text)?;
            Ok(())
        }),
    },
    Flag {
        short: Some('H'),
        long: "host",
        commands: Commands::Engine,
        help: concat!(
            "unix:///path.sock or a path; default $CONTAINER_HOST, then\n",
            "$DOCKER_HOST, then /run/docker.sock or /run/podman/podman.sock",
        ),
        action: Action::Text("URL", |g, url| {
            g.host = Some(url.to_owned());
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "wait",
        commands: Commands::Engine,
        help: "wait up to this long for the engine to answer (default 60)",
        action: Action::Text("SECONDS", |g, text| {
            g.wait = values::seconds("--wait", text)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "timeout",
        commands: Commands::Engine,
        help: concat!(
            "longest the engine may stay silent during an upload (default\n",
            "600); any other request gets at most this or 30 s in all",
        ),
        action: Action::Text("SECONDS", |g, text| {
            g.timeout = values::seconds("--timeout", text)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "delete-after-load",
        commands: Commands::Only(Name::Load),
        help: concat!(
            "remove an archive only after its image is verified present\n",
            "(and every line naming it is done)",
        ),
        action: Action::Switch(|g| g.delete_after_load = true),
    },
    Flag {
        short: None,
        long: "dry-run",
        commands: Commands::Only(Name::Load),
        help: "say what would be loaded, load nothing",
        action: Action::Switch(|g| g.dry_run = true),
    },
    Flag {
        short: None,
        long: "verify",
        commands: Commands::Only(Name::Load),
        help: concat!(
            "present only if the engine's image for REF is the\n",
            "archive's (same config, so the same layers); else\n",
            "\"differs\", image kept, exit 1. Decodes the archive of\n",
            "each image present by name",
        ),
        action: Action::Switch(|g| g.verify = true),
    },
    Flag {
        short: None,
        long: "verify",
        commands: Commands::Only(Name::Status),
        help: concat!(
            "compare the engine's image for REF with the archive's\n",
            "(same config, so the same layers): \"differs\" when not,\n",
            "exit 1. Decodes the archive of each image present by name",
        ),
        action: Action::Switch(|g| g.verify = true),
    },
    Flag {
        short: None,
        long: "replace-differing",
        commands: Commands::Only(Name::Load),
        help: "with --verify, load the archive over an image that differs",
        action: Action::Switch(|g| g.replace_differing = true),
    },
    Flag {
        short: None,
        long: "run-dir",
        commands: Commands::Only(Name::Load),
        help: concat!(
            "lock file per engine socket; status.json and a marker\n",
            "images/NAME per image present, NAME as systemd-escape\n",
            "spells REF (default /run/container-loader)",
        ),
        action: Action::Path("DIR", |g, dir| g.run_dir = dir),
    },
    Flag {
        short: None,
        long: "no-space-check",
        commands: Commands::Only(Name::Load),
        help: concat!(
            "load even when the archive's unpacked size is more than\n",
            "the free space where the engine copies it",
        ),
        action: Action::Switch(|g| g.space_check = false),
    },
    Flag {
        short: None,
        long: "progress-interval",
        commands: Commands::Only(Name::Load),
        help: concat!(
            "without a terminal, a progress line this often during\n",
            "a long load; 0: none (default 10)",
        ),
        action: Action::Text("SECONDS", |g, text| {
            g.progress_interval = values::seconds("--progress-interval", text)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "ref",
        commands: Commands::Only(Name::Scan),
        help: concat!(
            "the reference for ARCHIVE, instead of those inside it;\n",
            "may repeat for other archives",
        ),
        action: Action::Text("ARCHIVE=REF", |g, pair| {
            let (archive, reference) = values::archive_ref(pair)?;
            g.refs.insert(archive, reference);
            Ok(())
        }),
    },
    Flag {
        short: Some('o'),
        long: "output",
        commands: Commands::Only(Name::Scan),
        help: "write the list to LIST (default: standard output)",
        action: Action::Path("LIST", |g, list| g.output = Some(list)),
    },
    #[cfg(feature = "pack")]
    Flag {
        short: None,
        long: "level",
        commands: Commands::Only(Name::Pack),
        help: "zstd compression level, 1 to 22 (default 3)",
        action: Action::Text("N", |g, text| {
            g.level = values::level(text)?;
            Ok(())
        }),
    },
    #[cfg(feature = "pack")]
    Flag {
        short: None,
        long: "threads",
        commands: Commands::Only(Name::Pack),
        help: "compress on N threads (default: one per core)",
        action: Action::Text("N", |g, text| {
            g.threads = Some(values::threads(text)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "memory-limit",
        commands: Commands::Archives,
        help: concat!(
            "cap on zstd window / xz dictionary memory, e.g. 512M\n",
            "(default 128M)",
        ),
        action: Action::Text("SIZE", |g, text| {
            g.memory_limit = values::memory_limit(text)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "json",
        commands: Commands::Json,
        help: "print JSON instead of text",
        action: Action::Switch(|g| g.json = true),
    },
    Flag {
        short: Some('q'),
        long: "quiet",
        commands: Commands::Speaking,
        help: "errors and warnings only",
        action: Action::Switch(|g| g.verbosity = -1),
    },
    Flag {
        short: Some('v'),
        long: "verbose",
        commands: Commands::Engine,
        help: "also say what is asked of the engine",
        action: Action::Switch(|g| g.verbosity = 1),
    },
    Flag {
        short: Some('v'),
        long: "verbose",
        commands: Commands::Only(Name::Scan),
        help: "also say what each archive holds",
        action: Action::Switch(|g| g.verbosity = 1),
    },
    Flag {
        short: Some('h'),
        long: "help",
        commands: Commands::Every,
        help: "this text",
        action: Action::Help,
    },
    Flag {
        short: Some('V'),
        long: "version",
        commands: Commands::Every,
        help: "version, target and formats",
        action: Action::Version,
    },
];

/// The row that says what `name` does with the option spelled `long`, if it is `name`'s.
pub(super) fn of(name: Name, long: &str) -> Option<&'static Flag> {
    FLAGS
        .iter()
        .find(|f| f.long == long && f.commands.include(name))
}
