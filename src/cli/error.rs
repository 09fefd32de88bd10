//! A command line that cannot be run: what is wrong with it ([`Refusal`]) and the command it
//! was meant for, said as `container-loader COMMAND: WHAT; see container-loader COMMAND --help`.

use std::ffi::OsString;
use std::fmt;

use super::Name;

/// A command line that cannot be run, and the command it was meant for (`None`: none given).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    pub(crate) command: Option<Name>,
    pub(crate) refusal: Refusal,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command {
            Some(name) => write!(
                f,
                "container-loader {name}: {}; see container-loader {name} --help",
                self.refusal
            ),
            None => write!(
                f,
                "container-loader: {}; see container-loader --help",
                self.refusal
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// What is wrong with a command line, with the words at fault as written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// What lexopt says of a word it cannot read (a value missing, or given to a switch).
    Unreadable(String),
    UnknownCommand(String),
    UnknownOption(String),
    /// An option of another command; `default`: no command was given, so it was `load`'s.
    NotAnOption {
        spelled: String,
        command: Name,
        default: bool,
    },
    /// A value that is not UTF-8 where text is needed.
    NotText {
        spelled: String,
        value: OsString,
    },
    NotSeconds {
        flag: &'static str,
        text: String,
    },
    NotAnEngine(String),
    NotASize(String),
    NotARef(String),
    /// `from`: `--host`, `$CONTAINER_HOST` or `$DOCKER_HOST`.
    NotASocket {
        from: &'static str,
        url: String,
    },
    ReplaceWithoutVerify,
    /// An operand after `load` or `status`, which take none.
    Operand(OsString),
    NoArchive,
    NoDir,
    /// A second operand after `scan DIR`.
    SecondDir(OsString),
    /// `pack` in a build without it.
    NoPack,
    /// `pack` takes IN and OUT.
    #[cfg(feature = "pack")]
    PackOperands,
    #[cfg(feature = "pack")]
    NotALevel(String),
    #[cfg(feature = "pack")]
    NotThreads(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unreadable(what) => f.write_str(what),
            Refusal::UnknownCommand(word) => write!(f, "unknown command \"{word}\""),
            Refusal::UnknownOption(spelled) => write!(f, "unknown option {spelled}"),
            Refusal::NotAnOption {
                spelled,
                command,
                default,
            } => {
                let default = if *default {
                    " (the default command)"
                } else {
                    ""
                };
                write!(f, "{spelled} is not an option of {command}{default}")
            }
            Refusal::NotText { spelled, value } => write!(f, "{spelled} takes text, not {value:?}"),
            Refusal::NotSeconds { flag, text } => {
                write!(f, "{flag} takes whole seconds, not \"{text}\"")
            }
            Refusal::NotAnEngine(text) => {
                write!(f, "--engine takes auto, docker or podman, not \"{text}\"")
            }
            Refusal::NotASize(text) => {
                write!(
                    f,
                    "--memory-limit takes a size like 512M or 2G, not \"{text}\""
                )
            }
            Refusal::NotARef(text) => write!(f, "--ref takes ARCHIVE=REF, not \"{text}\""),
            Refusal::NotASocket { from, url } => {
                write!(f, "{from} must be unix:///path or a path, not \"{url}\"")
            }
            Refusal::ReplaceWithoutVerify => f.write_str("--replace-differing needs --verify"),
            Refusal::Operand(word) => {
                write!(f, "takes only options, not \"{}\"", word.to_string_lossy())
            }
            Refusal::NoArchive => f.write_str("no ARCHIVE given"),
            Refusal::NoDir => f.write_str("no DIR given"),
            Refusal::SecondDir(word) => {
                write!(f, "takes one DIR, not also \"{}\"", word.to_string_lossy())
            }
            Refusal::NoPack => f.write_str(
                "this build has no pack; run it from a build with --features pack (the build host's)",
            ),
            #[cfg(feature = "pack")]
            Refusal::PackOperands => f.write_str("takes IN and OUT"),
            #[cfg(feature = "pack")]
            Refusal::NotALevel(text) => {
                write!(f, "--level takes a zstd level from 1 to 22, not \"{text}\"")
            }
            #[cfg(feature = "pack")]
            Refusal::NotThreads(text) => {
                write!(f, "--threads takes a number of threads from 1, not \"{text}\"")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_command_and_its_help_or_the_overview_without_one() {
        let refusal = || Refusal::NotAnEngine("containerd".into());
        assert_eq!(
            UsageError {
                command: Some(Name::Status),
                refusal: refusal(),
            }
            .to_string(),
            "container-loader status: --engine takes auto, docker or podman, not \"containerd\"; see container-loader status --help"
        );
        assert_eq!(
            UsageError {
                command: None,
                refusal: refusal(),
            }
            .to_string(),
            "container-loader: --engine takes auto, docker or podman, not \"containerd\"; see container-loader --help"
        );
    }

    #[test]
    fn an_option_of_another_command_says_when_load_was_the_default() {
        let refusal = |default| Refusal::NotAnOption {
            spelled: "-o".into(),
            command: Name::Load,
            default,
        };
        assert_eq!(refusal(false).to_string(), "-o is not an option of load");
        assert_eq!(
            refusal(true).to_string(),
            "-o is not an option of load (the default command)"
        );
    }

    #[test]
    fn a_word_that_is_not_utf8_is_shown_escaped() {
        use std::os::unix::ffi::OsStringExt;
        let word = || OsString::from_vec(b"a\xffb".to_vec());
        assert_eq!(
            Refusal::Operand(word()).to_string(),
            "takes only options, not \"a\u{fffd}b\""
        );
        assert_eq!(
            Refusal::NotText {
                spelled: "-e".into(),
                value: word(),
            }
            .to_string(),
            "-e takes text, not \"a\\xFFb\""
        );
    }
}
