//! Each command's options, as its `run` reads them, built from what the command line gave.
//!
//! The rows of `FLAGS` set fields of [`Given`], one struct for every option of every command
//! with its default. Each command's constructor names every field of `Given` (no `..`), so an
//! option added there is taken or left out by each command where the compiler points.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Refusal;
use super::values;
use crate::engine::Kind;
use crate::input::list::DEFAULT_LIST;
use crate::state::lock::RUN_DIR;

/// How long to wait for the engine by default: at boot, docker can take tens of seconds.
const DEFAULT_WAIT_SECS: u64 = 60;
/// How long the engine may stay silent in one request before the entry fails.
const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// zstd's own default window limit, which plain `zstd -19` archives stay within.
const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;
/// How often a long load says how far it is when stderr is not a terminal (the journal): often
/// enough to tell a slow load from a hung one, rarely enough not to flood the boot log.
const DEFAULT_PROGRESS_INTERVAL_SECS: u64 = 10;

/// `load`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub(crate) lists: Vec<PathBuf>,
    pub(crate) images_dir: Option<PathBuf>,
    /// `None`: detect.
    pub(crate) engine: Option<Kind>,
    /// Sockets to try, in order; the first that answers is used.
    pub(crate) sockets: Vec<PathBuf>,
    pub(crate) delete_after_load: bool,
    pub(crate) wait: Duration,
    pub(crate) timeout: Duration,
    pub(crate) memory_limit: u64,
    pub(crate) dry_run: bool,
    /// Lock files, status.json and the image markers.
    pub(crate) run_dir: PathBuf,
    /// An image is present only if it is the archive's (same config: src/plan/verify.rs).
    pub(crate) verify: bool,
    /// With `verify`: load the archive over an image that differs.
    pub(crate) replace_differing: bool,
    /// Skip an archive that cannot fit where the engine copies it (`--no-space-check`: false).
    pub(crate) space_check: bool,
    /// -1 quiet, 0 normal, 1 verbose.
    pub verbosity: i8,
    /// How often a load reports progress in the journal; zero: never.
    pub(crate) progress_interval: Duration,
}

/// `status`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub(crate) lists: Vec<PathBuf>,
    pub(crate) images_dir: Option<PathBuf>,
    /// `None`: detect.
    pub(crate) engine: Option<Kind>,
    /// Sockets to try, in order; the first that answers is used.
    pub(crate) sockets: Vec<PathBuf>,
    pub(crate) wait: Duration,
    pub(crate) timeout: Duration,
    pub(crate) memory_limit: u64,
    /// Compare the engine's image with the archive's (same config: src/plan/verify.rs).
    pub(crate) verify: bool,
    pub json: bool,
    /// -1 quiet, 0 normal, 1 verbose.
    pub verbosity: i8,
}

/// `inspect`'s options and its archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspect {
    pub archives: Vec<PathBuf>,
    pub json: bool,
    pub memory_limit: u64,
}

/// `scan`'s options and its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub(crate) dir: PathBuf,
    /// `ARCHIVE=REF`: the reference for an archive that carries none (or another one).
    pub(crate) refs: BTreeMap<String, String>,
    /// Where to write the list; standard output when `None`.
    pub(crate) output: Option<PathBuf>,
    pub(crate) memory_limit: u64,
    /// -1 quiet, 0 normal, 1 verbose.
    pub verbosity: i8,
}

/// Every option of every command as the command line gave it, or its default; the rows of
/// `FLAGS` set it, the command's constructor takes what is its own.
#[derive(Debug)]
pub(super) struct Given {
    pub(super) lists: Vec<PathBuf>,
    pub(super) images_dir: Option<PathBuf>,
    pub(super) engine: Option<Kind>,
    pub(super) host: Option<String>,
    pub(super) wait: Duration,
    pub(super) timeout: Duration,
    pub(super) delete_after_load: bool,
    pub(super) dry_run: bool,
    pub(super) verify: bool,
    pub(super) replace_differing: bool,
    pub(super) run_dir: PathBuf,
    pub(super) space_check: bool,
    pub(super) progress_interval: Duration,
    pub(super) refs: BTreeMap<String, String>,
    pub(super) output: Option<PathBuf>,
    pub(super) memory_limit: u64,
    pub(super) json: bool,
    pub(super) verbosity: i8,
    #[cfg(feature = "pack")]
    pub(super) level: i32,
    /// `None`: one per core.
    #[cfg(feature = "pack")]
    pub(super) threads: Option<usize>,
}

impl Default for Given {
    fn default() -> Given {
        Given {
            lists: Vec::new(),
            images_dir: None,
            engine: None,
            host: None,
            wait: Duration::from_secs(DEFAULT_WAIT_SECS),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            delete_after_load: false,
            dry_run: false,
            verify: false,
            replace_differing: false,
            run_dir: PathBuf::from(RUN_DIR),
            space_check: true,
            progress_interval: Duration::from_secs(DEFAULT_PROGRESS_INTERVAL_SECS),
            refs: BTreeMap::new(),
            output: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            json: false,
            verbosity: 0,
            #[cfg(feature = "pack")]
            level: 3,
            #[cfg(feature = "pack")]
            threads: None,
        }
    }
}

impl Load {
    pub(super) fn new(
        given: Given,
        operands: Vec<OsString>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Load, Refusal> {
        let Given {
            lists,
            images_dir,
            engine,
            host,
            wait,
            timeout,
            delete_after_load,
            dry_run,
            verify,
            replace_differing,
            run_dir,
            space_check,
            progress_interval,
            memory_limit,
            verbosity,
            refs: _,
            output: _,
            json: _,
            #[cfg(feature = "pack")]
                level: _,
            #[cfg(feature = "pack")]
                threads: _,
        } = given;
        no_operands(operands)?;
        if replace_differing && !verify {
            return Err(Refusal::ReplaceWithoutVerify);
        }
        Ok(Load {
            lists: or_default_list(lists),
            images_dir,
            engine,
            sockets: values::sockets(host, engine, env)?,
            delete_after_load,
            wait,
            timeout,
            memory_limit,
            dry_run,
            run_dir,
            verify,
            replace_differing,
            space_check,
            verbosity,
            progress_interval,
        })
    }
}

impl Status {
    pub(super) fn new(
        given: Given,
        operands: Vec<OsString>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Status, Refusal> {
        let Given {
            lists,
            images_dir,
            engine,
            host,
            wait,
            timeout,
            verify,
            memory_limit,
            json,
            verbosity,
            delete_after_load: _,
            dry_run: _,
            replace_differing: _,
            run_dir: _,
            space_check: _,
            progress_interval: _,
            refs: _,
            output: _,
            #[cfg(feature = "pack")]
                level: _,
            #[cfg(feature = "pack")]
                threads: _,
        } = given;
        no_operands(operands)?;
        Ok(Status {
            lists: or_default_list(lists),
            images_dir,
            engine,
            sockets: values::sockets(host, engine, env)?,
            wait,
            timeout,
            memory_limit,
            verify,
            json,
            verbosity,
        })
    }
}

impl Inspect {
    pub(super) fn new(given: Given, operands: Vec<OsString>) -> Result<Inspect, Refusal> {
        let Given {
            memory_limit,
            json,
            lists: _,
            images_dir: _,
            engine: _,
            host: _,
            wait: _,
            timeout: _,
            delete_after_load: _,
            dry_run: _,
            verify: _,
            replace_differing: _,
            run_dir: _,
            space_check: _,
            progress_interval: _,
            refs: _,
            output: _,
            verbosity: _,
            #[cfg(feature = "pack")]
                level: _,
            #[cfg(feature = "pack")]
                threads: _,
        } = given;
        if operands.is_empty() {
            return Err(Refusal::NoArchive);
        }
        Ok(Inspect {
            archives: operands.into_iter().map(PathBuf::from).collect(),
            json,
            memory_limit,
        })
    }
}

impl Scan {
    pub(super) fn new(given: Given, operands: Vec<OsString>) -> Result<Scan, Refusal> {
        let Given {
            refs,
            output,
            memory_limit,
            verbosity,
            lists: _,
            images_dir: _,
            engine: _,
            host: _,
            wait: _,
            timeout: _,
            delete_after_load: _,
            dry_run: _,
            verify: _,
            replace_differing: _,
            run_dir: _,
            space_check: _,
            progress_interval: _,
            json: _,
            #[cfg(feature = "pack")]
                level: _,
            #[cfg(feature = "pack")]
                threads: _,
        } = given;
        let mut operands = operands.into_iter();
        let dir = operands.next().ok_or(Refusal::NoDir)?;
        if let Some(more) = operands.next() {
            return Err(Refusal::SecondDir(more));
        }
        Ok(Scan {
            dir: PathBuf::from(dir),
            refs,
            output,
            memory_limit,
            verbosity,
        })
    }
}

/// `pack`'s options: what to read and where to write.
#[cfg(feature = "pack")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
    pub(crate) level: i32,
    pub(crate) threads: usize,
    pub(crate) memory_limit: u64,
    /// -1 quiet, 0 normal.
    pub verbosity: i8,
}

#[cfg(feature = "pack")]
impl Pack {
    pub(super) fn new(given: Given, operands: Vec<OsString>) -> Result<Pack, Refusal> {
        let Given {
            level,
            threads,
            memory_limit,
            verbosity,
            lists: _,
            images_dir: _,
            engine: _,
            host: _,
            wait: _,
            timeout: _,
            delete_after_load: _,
            dry_run: _,
            verify: _,
            replace_differing: _,
            run_dir: _,
            space_check: _,
            progress_interval: _,
            refs: _,
            output: _,
            json: _,
        } = given;
        let [input, output] =
            <[OsString; 2]>::try_from(operands).map_err(|_| Refusal::PackOperands)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Pack {
            input: input.into(),
            output: output.into(),
            level,
            threads: threads.unwrap_or(cores),
            memory_limit,
            verbosity,
        })
    }
}

/// `load` and `status` read their entries from lists: a word after the options is a mistake.
fn no_operands(operands: Vec<OsString>) -> Result<(), Refusal> {
    match operands.into_iter().next() {
        Some(extra) => Err(Refusal::Operand(extra)),
        None => Ok(()),
    }
}

/// The lists given, or the one the image package installs when none is.
fn or_default_list(mut lists: Vec<PathBuf>) -> Vec<PathBuf> {
    if lists.is_empty() {
        lists.push(PathBuf::from(DEFAULT_LIST));
    }
    lists
}
