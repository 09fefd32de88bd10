//! The load pipeline: list -> entry -> present? -> archive reader -> engine -> present!
//!
//! Entries are independent: whatever happens to one is reported on its own line and the next
//! one still runs. An entry counts as loaded only when the engine has its reference after the
//! upload, and only then is its archive deleted (with `--delete-after-load`).

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::time::Instant;

use crate::archive::{self, Archive, ArchiveError};
use crate::cli::Options;
use crate::decode::{DecodeError, Format, HoldBack, Pipelined};
use crate::engine::{self, Engine, EngineError};
use crate::list::{self, Entry};
use crate::lock;
use crate::log::Log;
use crate::notify::Notifier;
use crate::space::{self, Shortfall};
use crate::units::Size;

/// How a run ended, as the exit status tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every entry's image is present (or, in a dry run, could be loaded).
    Done = 0,
    /// Some entry failed, or a list line was invalid.
    Failed = 1,
    /// A usage error, or a list that could not be read.
    Usage = 2,
    /// No engine answered within `--wait`.
    Unreachable = 3,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub loaded: usize,
    pub present: usize,
    pub would_load: usize,
    pub failed: usize,
}

/// All entries of all lists, after reporting the invalid lines and unreadable lists.
pub struct Entries {
    pub entries: Vec<Entry>,
    pub invalid_lines: usize,
    pub unreadable_lists: usize,
}

pub fn read_lists(options: &Options, log: &Log) -> Entries {
    let mut all = Entries {
        entries: Vec::new(),
        invalid_lines: 0,
        unreadable_lists: 0,
    };
    for path in &options.lists {
        match list::read(path, options.images_dir.as_deref()) {
            Ok(parsed) => {
                for bad in &parsed.invalid {
                    log.error(bad);
                }
                all.invalid_lines += parsed.invalid.len();
                all.entries.extend(parsed.entries);
            }
            Err(e) => {
                log.error(&e);
                all.unreadable_lists += 1;
            }
        }
    }
    all
}

/// Connects to the engine, or says why not.
pub fn connect(options: &Options, log: &Log) -> Result<Engine, EngineError> {
    let engine = Engine::connect(
        &options.sockets,
        options.engine,
        options.wait,
        options.timeout,
    )?;
    log.debug(format_args!(
        "engine: {} at {}",
        engine.kind,
        engine.socket.display()
    ));
    Ok(engine)
}

pub fn run(options: &Options, log: &Log) -> Exit {
    let notifier = Notifier::from_env();
    let lists = read_lists(options, log);
    let mut summary = Summary {
        failed: lists.invalid_lines,
        ..Summary::default()
    };
    if !lists.entries.is_empty() {
        let engine = match connect(options, log) {
            Ok(engine) => engine,
            Err(e) => {
                log.error(&e);
                return Exit::Unreachable;
            }
        };
        // Held until the run ends. Without /run (a very early hook), running unlocked beats
        // not running: the engines refuse nothing when two loads overlap, they only slow down.
        let lock_path = lock::path_for(&options.lock_dir, &engine.socket);
        let _lock = lock::acquire(&lock_path, || {
            log.info(format_args!(
                "another container-loader is using this engine; waiting for {}",
                lock_path.display()
            ))
        })
        .inspect_err(|e| {
            log.warn(format_args!(
                "running without the lock {}: {e}",
                lock_path.display()
            ))
        });
        let total = lists.entries.len();
        // One listing answers "present" for every entry it names (measured: 50 entries cost
        // one request instead of 50); the rest are asked one by one. Loads add images only,
        // so what was listed at the start stays present.
        let listed = (total > 1).then(|| engine.image_names()).flatten();
        for (index, entry) in lists.entries.iter().enumerate() {
            notifier.status(&format!("{}/{total}: {}", index + 1, entry.reference));
            match load_entry(&engine, listed.as_ref(), entry, options, log) {
                Ok(Outcome::Present) => summary.present += 1,
                Ok(Outcome::Loaded) => summary.loaded += 1,
                Ok(Outcome::WouldLoad) => summary.would_load += 1,
                Err(reason) => {
                    log.error(format_args!(
                        "{}: {}: failed: {reason}",
                        entry.place(),
                        entry.reference
                    ));
                    summary.failed += 1;
                }
            }
        }
    }
    let first = if options.dry_run {
        format!("{} would load", summary.would_load)
    } else {
        format!("{} loaded", summary.loaded)
    };
    let line = format!(
        "{first}, {} present, {} failed",
        summary.present, summary.failed
    );
    notifier.status(&line);
    if summary.failed > 0 || lists.unreadable_lists > 0 {
        log.warn(line);
    } else {
        log.info(line);
    }
    if lists.unreadable_lists > 0 {
        Exit::Usage
    } else if summary.failed > 0 {
        Exit::Failed
    } else {
        Exit::Done
    }
}

enum Outcome {
    Present,
    Loaded,
    WouldLoad,
}

/// Why an entry failed: everything its log line needs, the archive named where it matters.
#[derive(Debug)]
pub enum EntryError {
    /// Asking the engine whether it has the image failed.
    Presence(EngineError),
    /// The archive cannot be used: missing, outside the images dir, not a file, unknown format.
    Archive(ArchiveError),
    /// The archive would not fit where the engine copies it; nothing was sent.
    Space(Shortfall),
    /// The decoder found the archive corrupt (or too large for --memory-limit) mid-upload.
    Decode { archive: String, source: io::Error },
    /// Reading the archive file failed mid-upload.
    Read { archive: String, source: io::Error },
    /// The engine refused or failed the upload.
    Load {
        archive: String,
        source: EngineError,
    },
    /// The upload succeeded, but the engine has no image under the listed reference.
    NotPresentAfterLoad {
        archive: String,
        image: String,
        carried: Vec<String>,
    },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Presence(e) => e.fmt(f),
            EntryError::Archive(e) => e.fmt(f),
            EntryError::Space(e) => e.fmt(f),
            EntryError::Decode { archive, source } => {
                let what = DecodeError::find(source).map_or(source.to_string(), |d| d.to_string());
                write!(
                    f,
                    "{archive}: {what}; nothing was loaded, the archive is kept"
                )
            }
            EntryError::Read { archive, source } => {
                write!(
                    f,
                    "cannot read archive {archive}: {source}; nothing was loaded"
                )
            }
            EntryError::Load {
                archive,
                source: EngineError::Refused { message },
            } => write!(f, "engine refused {archive}: {message}"),
            EntryError::Load { archive, source } => write!(f, "loading {archive}: {source}"),
            EntryError::NotPresentAfterLoad {
                archive,
                image,
                carried,
            } => {
                let carried = match carried.is_empty() {
                    true => "no name".to_owned(),
                    false => carried.join(", "),
                };
                write!(
                    f,
                    "loaded {archive} but the engine has no {image} (the archive carries {carried}); fix the list or retag the archive"
                )
            }
        }
    }
}

impl std::error::Error for EntryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EntryError::Presence(e) | EntryError::Load { source: e, .. } => Some(e),
            EntryError::Archive(e) => Some(e),
            EntryError::Space(e) => Some(e),
            EntryError::Decode { source, .. } | EntryError::Read { source, .. } => Some(source),
            EntryError::NotPresentAfterLoad { .. } => None,
        }
    }
}

fn load_entry(
    engine: &Engine,
    listed: Option<&HashSet<String>>,
    entry: &Entry,
    options: &Options,
    log: &Log,
) -> Result<Outcome, EntryError> {
    let image = &entry.reference;
    let place = entry.place();
    // Presence first: with --delete-after-load a present image's archive is gone by design.
    let present = match listed {
        Some(names) if engine::listed(names, image) => true,
        _ => engine.has_image(image).map_err(EntryError::Presence)?,
    };
    if present {
        log.info(format_args!("{place}: {image}: present, skipped"));
        return Ok(Outcome::Present);
    }
    let archive = Archive::open(&entry.images_dir, &entry.archive).map_err(EntryError::Archive)?;
    if options.space_check {
        space::check(engine, &archive, &place, log).map_err(EntryError::Space)?;
    }
    if options.dry_run {
        log.info(format_args!(
            "{place}: {image}: would load from {} ({}, {})",
            entry.archive,
            archive.format,
            Size(archive.size)
        ));
        return Ok(Outcome::WouldLoad);
    }
    let started = Instant::now();
    let format = archive.format;
    let decoder = archive.decoder(options.memory_limit);
    let progress = decoder.progress.clone();
    // Decoding on its own thread, overlapping the socket writes; a plain tar has nothing to
    // decode, and the thread's copy would only slow it (README, "Performance").
    let held = HoldBack::new(decoder);
    let mut body: Guarded<Box<dyn Read>> = Guarded::new(match format {
        Format::Tar => Box::new(held),
        _ => Box::new(Pipelined::new(held)),
    });
    let result = engine.load(&mut body);
    let name = || entry.archive.clone();
    if let Some(source) = body.error {
        // The decoder or the disk failed: the request was aborted, the engine loaded nothing.
        return Err(match DecodeError::find(&source) {
            Some(_) => EntryError::Decode {
                archive: name(),
                source,
            },
            None => EntryError::Read {
                archive: name(),
                source,
            },
        });
    }
    let carried = result.map_err(|source| EntryError::Load {
        archive: name(),
        source,
    })?;
    log.debug(format_args!(
        "{place}: engine reports loaded: {}",
        carried.join(", ")
    ));
    // The engine's own word is what counts: the name it has now, not the one it printed.
    if !engine.has_image(image).map_err(EntryError::Presence)? {
        return Err(EntryError::NotPresentAfterLoad {
            archive: name(),
            image: image.to_string(),
            carried,
        });
    }
    log.info(format_args!(
        "{place}: {image}: loaded from {} ({format}, {} -> {}, {:.2} s)",
        entry.archive,
        Size(progress.compressed()),
        Size(progress.decoded()),
        started.elapsed().as_secs_f64()
    ));
    if options.delete_after_load {
        match archive::delete(&entry.images_dir, &entry.archive) {
            Ok(()) => log.info(format_args!("{place}: {image}: deleted {}", entry.archive)),
            // The image is there, which is what the run is for; a kept archive costs only space.
            Err(e) => log.warn(format_args!(
                "{place}: {image}: loaded, but not deleted: {e}"
            )),
        }
    }
    Ok(Outcome::Loaded)
}

/// Keeps the first error the body reader returned: ureq only reports that the upload failed,
/// and the pipeline must know whether the archive or the engine was at fault.
struct Guarded<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R> Guarded<R> {
    fn new(inner: R) -> Self {
        Guarded { inner, error: None }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let told = io::Error::new(e.kind(), e.to_string());
            self.error.get_or_insert(e);
            told
        })
    }
}
