//! The load pipeline: list -> entry -> present? -> archive reader -> engine -> present!
//!
//! Entries are independent: whatever happens to one is reported on its own line and the next
//! one still runs. An entry counts as loaded only when the engine has its reference after the
//! upload, and only then is its archive deleted (with `--delete-after-load`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crate::archive::{self, Archive, ArchiveError, Origin};
use crate::cli::Options;
use crate::connect::connect;
use crate::decode::{self, DecodeError, Format, HoldBack, Pipelined};
use crate::delta::{self, Leaving};
use crate::engine::{short_id, Engine, EngineError, Held, Knock, Listing, LISTING_NAMES_MAX};
use crate::entries::read_lists;
use crate::exit::Exit;
use crate::list::Entry;
use crate::lock;
use crate::log::Log;
use crate::manifest::{Images, Match};
use crate::notify::Notifier;
use crate::oci::{LeftOutNeeded, Loadable, Unloadable};
use crate::platform::Platform;
use crate::progress::{EntryReport, Reporter};
use crate::ready::{self, Recorder};
use crate::reference::Reference;
use crate::row::State;
use crate::rundir::RunDir;
use crate::space::{self, Shortfall};
use crate::units::Size;
use crate::verify::{archive_id, VerifyError};

#[derive(Debug, Default)]
pub struct Summary {
    pub loaded: usize,
    pub present: usize,
    pub would_load: usize,
    pub differ: usize,
    pub failed: usize,
}

pub fn run(options: &Options, log: &Log) -> Exit {
    let notifier = Notifier::from_env();
    let reporter = Reporter::for_run(options.verbosity, options.progress_interval, log, &notifier);
    let lists = read_lists(&options.lists, options.images_dir.as_deref(), log);
    let mut summary = Summary {
        failed: lists.invalid_lines,
        ..Summary::default()
    };
    // Whether something could not be recorded: the units waiting for markers would not start,
    // so the run exits 1.
    let mut unrecorded = false;
    if !lists.entries.is_empty() {
        // The lock, status.json and the markers. A refused run directory (a symlink, someone
        // else's) is not used at all; the images still load.
        let run_dir = RunDir::open(&options.run_dir)
            .inspect_err(|e| log.error(e))
            .ok();
        // A dry run records nothing anyway.
        unrecorded = run_dir.is_none() && !options.dry_run;
        let total = lists.entries.len();
        // One listing answers "present" for every entry it names (measured: 50 entries cost
        // one request instead of 50); the rest are asked one by one. It is the knock itself:
        // one answer to wait for instead of two.
        let knock = match total > 1 {
            true => Knock::Listing,
            false => Knock::Ping,
        };
        let mut engine = match connect(
            &options.sockets,
            options.engine,
            options.wait,
            options.timeout,
            knock,
            log,
        ) {
            Ok(engine) => engine,
            Err(e) => {
                log.error(&e);
                if !options.dry_run {
                    // What status.json said from an earlier run is no longer known.
                    let unknown = ready::Outcome {
                        state: State::Unknown,
                        image_id: None,
                        archive_id: None,
                        error: Some(e.to_string()),
                    };
                    if let Some(run) = &run_dir {
                        let mut recorder = Recorder::new(run, &options.lists, *log);
                        for entry in &lists.entries {
                            recorder.entry(entry, &unknown, true);
                        }
                        recorder.finish();
                    }
                }
                return Exit::Unreachable;
            }
        };
        // Held until the run ends. Without /run (a very early hook), running unlocked beats
        // not running: the engines refuse nothing when two loads overlap, they only slow down.
        let lock_name = lock::name_for(&engine.socket);
        let mut waited = false;
        let _lock = run_dir.as_ref().and_then(|run| {
            let lock_path = run.join(&lock_name);
            lock::acquire(run, &lock_name, || {
                waited = true;
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
            })
            .ok()
        });
        // Loads add images only, so what was listed at the start stays present; but another
        // loader that held the lock may have replaced some since the knock.
        let listing = match waited {
            false => engine.first_listing(),
            true => (total > 1).then(|| engine.listing()).flatten(),
        };
        if let Some(dropped) = listing.as_ref().map(|l| l.dropped).filter(|&n| n > 0) {
            log.debug(format_args!(
                "the engine's listing: {dropped} names not kept (over {} names, too long, or of an id that is not a sha256 digest); entries under them are asked one by one",
                LISTING_NAMES_MAX
            ));
        }
        // Each entry is recorded as it ends (docs/operations.md, "Starting what needs the images").
        let mut recorder = match (options.dry_run, &run_dir) {
            (false, Some(run)) => Some(Recorder::new(run, &options.lists, *log)),
            _ => None,
        };
        let mut deletions = match options.delete_after_load {
            true => Deletions::new(&lists.entries),
            false => Deletions::default(),
        };
        // The layers the engine holds, learned once and brought up to date before each upload
        // that could leave some out (src/delta.rs).
        let mut held = Held::default();
        for (index, entry) in lists.entries.iter().enumerate() {
            let report = reporter.entry(index + 1, total, entry);
            // Answered by the listing, without a request: written with the next ones.
            let batched = !options.verify
                && listing
                    .as_ref()
                    .is_some_and(|l| l.id_of(&entry.reference).is_some());
            if let Some(recorder) = recorder.as_mut().filter(|_| !batched) {
                recorder.flush();
            }
            // Their lines too go out together; anything that may take long or fail goes out
            // line by line, as it happens.
            match batched {
                true => log.hold(),
                false => log.release(),
            }
            let result = load_entry(
                &engine,
                listing.as_ref(),
                entry,
                options,
                log,
                &report,
                &mut deletions,
                &mut held,
            );
            deletions.ended(index, entry, result.is_ok(), log);
            if let Some(recorder) = &mut recorder {
                recorder.entry(entry, &recorded(&result), batched);
            }
            match result {
                Ok(Outcome::Present(_) | Outcome::Verified(_)) => summary.present += 1,
                Ok(Outcome::Loaded(_)) => summary.loaded += 1,
                Ok(Outcome::WouldLoad) => summary.would_load += 1,
                Ok(Outcome::Differs { .. }) => summary.differ += 1,
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
        log.release();
        if let Some(recorder) = recorder {
            unrecorded |= !recorder.finish();
        }
    }
    let first = if options.dry_run {
        format!("{} would load", summary.would_load)
    } else {
        format!("{} loaded", summary.loaded)
    };
    let differ = match options.verify {
        true => format!(", {} differ", summary.differ),
        false => String::new(),
    };
    let line = format!(
        "{first}, {} present{differ}, {} failed",
        summary.present, summary.failed
    );
    notifier.status(&line);
    if summary.failed > 0 || lists.unreadable_lists > 0 || unrecorded {
        log.warn(line);
    } else {
        log.info(line);
    }
    if lists.unreadable_lists > 0 {
        Exit::Usage
    } else if summary.failed > 0 || summary.differ > 0 || unrecorded {
        Exit::Failed
    } else {
        Exit::Done
    }
}

/// What status.json records of an entry's turn.
fn recorded(result: &Result<Outcome, EntryError>) -> ready::Outcome {
    let (state, image_id, archive_id) = match result {
        Ok(Outcome::Present(id)) | Ok(Outcome::Loaded(id)) => (State::Present, id.clone(), None),
        Ok(Outcome::Verified(id)) => (State::Present, Some(id.clone()), Some(id.clone())),
        Ok(Outcome::Differs { id, archive_id }) => {
            (State::Differs, Some(id.clone()), Some(archive_id.clone()))
        }
        Ok(Outcome::WouldLoad) => (State::Missing, None, None),
        Err(EntryError::Presence(_)) => (State::Unknown, None, None),
        Err(_) => (State::Missing, None, None),
    };
    let error = result.as_ref().err().map(ToString::to_string);
    ready::Outcome {
        state,
        image_id,
        archive_id,
        error,
    }
}

/// How an entry ended, with the engine's id for its reference where known.
enum Outcome {
    Present(Option<String>),
    /// `--verify`: present, and the archive's image.
    Verified(String),
    Loaded(Option<String>),
    WouldLoad,
    /// `--verify` without `--replace-differing`: the engine's image is not the archive's.
    Differs {
        id: String,
        archive_id: String,
    },
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
    /// The decoder found the archive corrupt (or too large for --memory-limit) mid-upload, or
    /// its OCI layout cannot be given the manifest.json classic docker reads.
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
    /// The upload succeeded, but the reference names another image than the archive's.
    NotTheArchives {
        archive: String,
        image: String,
        engine_id: String,
        archive_id: String,
    },
    /// The archive does not carry the reference, and giving the loaded image that name failed.
    Tag {
        archive: String,
        source: EngineError,
    },
    /// `--verify`: which image the archive holds for the reference cannot be told.
    Unverifiable(VerifyError),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Presence(e) => e.fmt(f),
            EntryError::Archive(e) => e.fmt(f),
            EntryError::Space(e) => e.fmt(f),
            EntryError::Decode { archive, source } => write!(
                f,
                "{archive}: {}; nothing was loaded, the archive is kept",
                DecodeError::cause(source)
            ),
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
            EntryError::NotTheArchives {
                archive,
                image,
                engine_id,
                archive_id,
            } => write!(
                f,
                "loaded {archive}, but the engine's {image} is {engine_id}, not the archive's {archive_id}; check the archive's names (container-loader inspect)"
            ),
            EntryError::Tag { archive, source } => {
                write!(f, "loaded {archive}, but could not name it: {source}")
            }
            EntryError::Unverifiable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EntryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EntryError::Presence(e)
            | EntryError::Load { source: e, .. }
            | EntryError::Tag { source: e, .. } => Some(e),
            EntryError::Archive(e) => Some(e),
            EntryError::Space(e) => Some(e),
            EntryError::Unverifiable(e) => Some(e),
            EntryError::Decode { source, .. } | EntryError::Read { source, .. } => Some(source),
            EntryError::NotPresentAfterLoad { .. } | EntryError::NotTheArchives { .. } => None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn load_entry(
    engine: &Engine,
    listing: Option<&Listing>,
    entry: &Entry,
    options: &Options,
    log: &Log,
    report: &EntryReport,
    deletions: &mut Deletions,
    held: &mut Held,
) -> Result<Outcome, EntryError> {
    let image = &entry.reference;
    let place = entry.place();
    // Presence first: with --delete-after-load a present image's archive is gone by design.
    let listed = listing.and_then(|l| l.id_of(image)).map(str::to_owned);
    let present = match (&listed, options.verify) {
        (Some(id), _) => Some(Some(id.clone())),
        // --verify compares ids, so it asks for the id; podman answers `exists` faster.
        (None, true) => engine
            .image_id(image)
            .map_err(EntryError::Presence)?
            .map(Some),
        (None, false) => engine
            .has_image(image)
            .map_err(EntryError::Presence)?
            .then_some(None),
    };
    // Only --replace-differing loads over an image the engine has under the name.
    let replacing = present.is_some();
    match (present, options.verify) {
        (Some(Some(id)), true) => {
            // `None`: it differs, and --replace-differing loads the archive below.
            if let Some(outcome) = verify(engine, entry, &id, options, log)? {
                return Ok(outcome);
            }
        }
        (Some(id), _) => {
            log.info(format_args!("{place}: {image}: present, skipped"));
            return Ok(Outcome::Present(id));
        }
        (None, _) => {}
    }
    // From here on the entry loads, and its place is in most lines.
    let place = place.to_string();
    let archive = Archive::open(&entry.images_dir, &entry.archive).map_err(EntryError::Archive)?;
    if options.dry_run {
        if options.space_check {
            space::check(engine, &archive, &place, log).map_err(EntryError::Space)?;
        }
        log.info(format_args!(
            "{place}: {image}: would load from {} ({}, {})",
            entry.archive,
            archive.format,
            Size(archive.size)
        ));
        return Ok(Outcome::WouldLoad);
    }
    let started = Instant::now();
    // The archive's unpacked size is read here (a few reads); where the engine copies it,
    // and how much room is there, is asked beside the upload (see `space::Gate`).
    let estimate = options
        .space_check
        .then(|| space::estimate(archive.format, archive.file(), archive.size));
    let (format, size) = (archive.format, archive.size);
    // Deletion later goes through the directory handle the archive was opened from.
    let origin = archive.origin();
    let plan = leaving(engine, &archive, options, held, &place, log);
    // A retry reads the file already opened, from its start: the same file as the first
    // upload, whatever its name stands for by then.
    let again = plan.as_ref().and_then(|_| archive.file().try_clone().ok());
    let check_listed = plan.as_ref().is_some_and(|p| p.check_listed);
    let decoder = archive.decoder(options.memory_limit);
    let name = || entry.archive.clone();
    let mut sent = upload(
        engine, decoder, format, plan, estimate, &place, log, report, size,
    );
    // Not when the archive or the space check failed the upload: a whole one would fail too.
    let misjudged = sent.error.as_ref().and_then(LeftOutNeeded::find).cloned();
    let retry = (sent.error.is_none() || misjudged.is_some()) && sent.shortfall.is_none();
    if let Some(file) = again.filter(|_| retry) {
        let why = match (misjudged, &sent.result) {
            // Cut before the tar's end: the engine loaded nothing.
            (Some(misjudged), _) => Some(format!("the upload stopped before its end: {misjudged}")),
            (None, Err(EngineError::Refused { message })) => {
                // docker's containerd store names the image before it finds a blob missing;
                // the whole upload follows at once, so the name goes without a word.
                if !replacing {
                    let _ = remove_left_name(engine, image);
                }
                Some(format!(
                    "the engine refused the upload without the layers it held ({message})"
                ))
            }
            (None, Ok(carried)) if check_listed && !lists_any(engine, carried) => Some(
                "the engine does not list the image loaded without the layers it held (its content is incomplete)".to_owned(),
            ),
            _ => None,
        };
        if let Some(why) = why {
            log.info(format_args!(
                "{place}: {image}: {why}; sending {} whole",
                entry.archive
            ));
            let decoder =
                decode::reread(format, &file, options.memory_limit).map_err(|source| {
                    EntryError::Read {
                        archive: name(),
                        source,
                    }
                })?;
            sent = upload(
                engine, decoder, format, None, estimate, &place, log, report, size,
            );
        }
    }
    let Upload {
        result,
        error,
        promised,
        shortfall,
        progress,
    } = sent;
    // A shortfall is the cause, whatever the upload ended with: the engine may have found its
    // disk full before the check answered.
    if let Some(shortfall) = shortfall {
        if result.is_err() || error.is_some() {
            return Err(EntryError::Space(shortfall));
        }
    }
    if let Some(source) = error {
        // The decoder or the disk failed: the request was aborted, the engine loaded nothing.
        let unusable = DecodeError::find(&source).is_some() || Unloadable::find(&source).is_some();
        return Err(match unusable {
            true => EntryError::Decode {
                archive: name(),
                source,
            },
            false => EntryError::Read {
                archive: name(),
                source,
            },
        });
    }
    let carried = match result {
        Ok(carried) => carried,
        Err(source) => {
            if !replacing {
                drop_broken_name(engine, entry, log);
            }
            return Err(EntryError::Load {
                archive: name(),
                source,
            });
        }
    };
    log.debug(format_args!(
        "{place}: engine reports loaded: {}",
        carried.join(", ")
    ));
    let id = confirm(engine, entry, promised.as_ref(), carried, log)?;
    log.info(format_args!(
        "{place}: {image}: loaded from {} ({format}, {} -> {}, {:.2} s)",
        entry.archive,
        Size(progress.compressed()),
        Size(progress.decoded()),
        started.elapsed().as_secs_f64()
    ));
    if options.delete_after_load {
        deletions.loaded(entry, origin);
    }
    Ok(Outcome::Loaded(id))
}

/// What an upload can leave out of the archive, where the engine's store takes that and holds
/// some of its layers; `None` for a whole upload (why, in the verbose log).
fn leaving<'h>(
    engine: &Engine,
    archive: &Archive,
    options: &Options,
    held: &'h mut Held,
    place: &str,
    log: &Log,
) -> Option<Leaving<'h>> {
    let delta = engine.store().ok()?.delta()?;
    let opened = (archive.format, archive.file(), archive.size);
    match delta::prepare(engine, delta, held, opened, options.memory_limit) {
        Ok(leaving) => {
            if leaving.bytes.is_none() {
                log.debug(format_args!(
                    "{place}: leaving out the layer files the engine holds by their names"
                ));
            }
            Some(leaving)
        }
        Err(whole) => {
            log.debug(format_args!("{place}: sending the archive whole: {whole}"));
            None
        }
    }
}

/// Whether the engine's listing shows one of the names it says it loaded: docker's containerd
/// store leaves an image whose content is incomplete out of it.
fn lists_any(engine: &Engine, carried: &[String]) -> bool {
    let Some(listing) = engine.listing() else {
        return false;
    };
    carried
        .iter()
        .filter_map(|name| Reference::parse(name).ok())
        .any(|name| listing.id_of(&name).is_some())
}

/// How one upload of an archive went.
struct Upload {
    /// The engine's answer: the names it says it loaded, or why not.
    result: Result<Vec<String>, EngineError>,
    /// The first error reading the archive (decoder, disk, an archive that cannot be loaded).
    error: Option<io::Error>,
    /// What the archive described, from the walk on the way.
    promised: Option<Images>,
    /// The space check found the archive would not fit.
    shortfall: Option<Shortfall>,
    progress: std::sync::Arc<crate::decode::Progress>,
}

/// Streams the archive read by `decoder` into the engine, leaving out what `plan` says.
#[allow(clippy::too_many_arguments)]
fn upload(
    engine: &Engine,
    decoder: crate::decode::Decoder,
    format: Format,
    plan: Option<Leaving>,
    estimate: Option<space::Estimate>,
    place: &str,
    log: &Log,
    report: &EntryReport,
    size: u64,
) -> Upload {
    let progress = decoder.progress.clone();
    // Decoding on its own thread, overlapping the socket writes, which holds back the tail
    // until the decoder verified it; a plain tar has nothing to decode, and the thread's copy
    // would only slow it (docs/performance.md): `HoldBack` keeps its tail from a failed read.
    let stream: Box<dyn Read> = match format {
        Format::Tar => Box::new(HoldBack::new(decoder)),
        _ => Box::new(Pipelined::new(decoder)),
    };
    // What the engine unpacks is less by the files left out.
    let estimate = estimate.map(|e| space::Estimate {
        bytes: e
            .bytes
            .saturating_sub(plan.as_ref().and_then(|p| p.bytes).unwrap_or(0)),
        ..e
    });
    // OCI archives: the device's platform chosen and checked for every engine; what the
    // engine's store reads written in (src/oci.rs); any other tar passes as it is, but for the
    // layer files a delta load leaves out. Its tar walk also notes what the archive promises
    // as it streams by: no second read, and no second walk.
    let stream = Loadable::new(stream, Platform::device(), engine.reads());
    let stream = match plan {
        Some(p) => stream.leaving_out(p.omission, p.empty),
        None => stream,
    };
    let verdict = OnceLock::new();
    let (result, body) = std::thread::scope(|scope| {
        match estimate {
            Some(estimate) => {
                let verdict = &verdict;
                scope.spawn(move || {
                    // The upload waits for a verdict at its end: there is one even if the
                    // check could not finish.
                    let _unblock = Unblock(verdict);
                    let _ = verdict.set(space::judge(engine, estimate, place, log));
                });
            }
            None => drop(verdict.set(Ok(()))),
        }
        let mut body = Guarded::new(space::Gate::new(stream, &verdict));
        let result = report.during(&progress, size, || engine.load(&mut body));
        (result, body)
    });
    let loadable = body.inner.into_inner();
    let (files, bytes) = loadable.left_out();
    if files > 0 {
        log.debug(format_args!(
            "{place}: left out {files} layer files the engine holds ({} of tar)",
            Size(bytes)
        ));
    }
    let promised = loadable.finish().ok().and_then(|c| c.images());
    Upload {
        result,
        error: body.error,
        promised,
        shortfall: verdict.get().and_then(|v| v.clone().err()),
        progress,
    }
}

/// `--verify` for a present image whose engine id is `id`: `Some` outcome when the entry is
/// done (the same image, or differs and stays), `None` when the archive is to be loaded.
fn verify(
    engine: &Engine,
    entry: &Entry,
    id: &str,
    options: &Options,
    log: &Log,
) -> Result<Option<Outcome>, EntryError> {
    let (place, image) = (entry.place(), &entry.reference);
    if archive::locate(&entry.images_dir, &entry.archive).is_err() {
        // Deleted after an earlier load: nothing to compare with, and the name is there.
        log.info(format_args!(
            "{place}: {image}: present, skipped (not verified: {} is gone)",
            entry.archive
        ));
        return Ok(Some(Outcome::Present(Some(id.to_owned()))));
    }
    let archive_id =
        archive_id(entry, engine, options.memory_limit).map_err(EntryError::Unverifiable)?;
    if archive_id == id {
        log.info(format_args!(
            "{place}: {image}: present, skipped (verified: {} as in {})",
            short_id(id),
            entry.archive
        ));
        return Ok(Some(Outcome::Verified(archive_id)));
    }
    let differs = format!(
        "{place}: {image}: differs: the engine has {}, {} holds {}",
        short_id(id),
        entry.archive,
        short_id(&archive_id)
    );
    if options.replace_differing {
        log.info(format_args!("{differs}; loading the archive"));
        return Ok(None);
    }
    log.warn(format_args!(
        "{differs}; kept (--replace-differing loads the archive)"
    ));
    Ok(Some(Outcome::Differs {
        id: id.to_owned(),
        archive_id,
    }))
}

/// After a load: the engine must have the entry's reference, and as the archive's image. When
/// the archive holds one image that it does not call by the reference, the image gets that
/// name, so the next boot finds it. Returns the engine's id for the reference.
fn confirm(
    engine: &Engine,
    entry: &Entry,
    promised: Option<&Images>,
    carried: Vec<String>,
    log: &Log,
) -> Result<Option<String>, EntryError> {
    let image = &entry.reference;
    let archive = || entry.archive.clone();
    let has = engine.image_id(image).map_err(EntryError::Presence)?;
    let found = promised.map(|p| p.find(image));
    // The archive's image as this engine's store names it; if the store cannot be told,
    // nothing to compare with, and the engine's word is taken below.
    let id_of = |i| engine.id_for(i).ok().flatten();
    let (wanted, named) = match found {
        Some(Match::Named(i)) => (id_of(i), true),
        Some(Match::Only(i)) => (id_of(i), false),
        _ => (None, false),
    };
    let Some(wanted) = wanted else {
        // What the archive holds could not be told; the engine's word is all there is.
        return match has {
            Some(id) => Ok(Some(id)),
            None => Err(EntryError::NotPresentAfterLoad {
                archive: archive(),
                image: image.to_string(),
                carried,
            }),
        };
    };
    match has {
        Some(id) if id == wanted => return Ok(Some(id)),
        Some(id) if named => {
            return Err(EntryError::NotTheArchives {
                archive: archive(),
                image: image.to_string(),
                engine_id: short_id(&id),
                archive_id: short_id(wanted),
            })
        }
        None if named => {
            return Err(EntryError::NotPresentAfterLoad {
                archive: archive(),
                image: image.to_string(),
                carried,
            })
        }
        _ => {}
    }
    // A digest reference names content, not a tag: it cannot be given to an image.
    let Some((repo, tag)) = image.repository_and_tag() else {
        return Err(EntryError::NotPresentAfterLoad {
            archive: archive(),
            image: image.to_string(),
            carried,
        });
    };
    engine
        .tag(wanted, repo, tag)
        .map_err(|source| EntryError::Tag {
            archive: archive(),
            source,
        })?;
    let names = promised
        .map(|p| {
            p.images
                .iter()
                .flat_map(|i| i.references.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let carries = match names.is_empty() {
        true => "no name".to_owned(),
        false => names.join(", "),
    };
    log.info(format_args!(
        "{}: {image}: tagged {} as {image} ({} carries {carries})",
        entry.place(),
        short_id(wanted),
        entry.archive
    ));
    match engine.image_id(image).map_err(EntryError::Presence)? {
        Some(id) if id == wanted => Ok(Some(id)),
        Some(id) => Err(EntryError::NotTheArchives {
            archive: archive(),
            image: image.to_string(),
            engine_id: short_id(&id),
            archive_id: short_id(wanted),
        }),
        None => Err(EntryError::NotPresentAfterLoad {
            archive: archive(),
            image: image.to_string(),
            carried,
        }),
    }
}

/// After a refused load of an image the engine did not have: a name the engine has now is what
/// the failed import left behind. docker's containerd store names the image before it unpacks
/// it, and keeps the name when a layer then does not match its diffID; it shows the image by
/// name though it leaves it out of its listing. Removed, or every later boot would find the
/// name and skip the entry: a failed entry leaves its name missing, as on the other engines.
fn drop_broken_name(engine: &Engine, entry: &Entry, log: &Log) {
    let image = &entry.reference;
    let Some((left, removed)) = remove_left_name(engine, image) else {
        return;
    };
    let place = entry.place();
    match removed {
        Ok(()) => log.warn(format_args!(
            "{place}: {image}: removed the name the failed load left on {}, so that the next run loads it again",
            short_id(&left)
        )),
        Err(e) => log.warn(format_args!(
            "{place}: {image}: the failed load left the name on {}, and removing it failed: {e}; remove it by hand (docker rmi {image})",
            short_id(&left)
        )),
    }
}

/// Removes the name `image` a failed load left on an image, if any: the id it was on, and
/// whether removing it worked.
fn remove_left_name(
    engine: &Engine,
    image: &Reference,
) -> Option<(String, Result<(), EngineError>)> {
    let Ok(Some(left)) = engine.image_id(image) else {
        return None;
    };
    Some((left, engine.remove(image)))
}

/// `--delete-after-load` when several lines name one archive (one per image or name it holds,
/// as `scan` writes them): the archive is deleted after the last of those lines, once each of
/// them ended with its image present, so that no line finds its archive gone while it still
/// needs it. A line whose image is present needs no archive.
#[derive(Default)]
struct Deletions {
    /// The index of the last entry naming each archive.
    last: HashMap<(PathBuf, String), usize>,
    /// Archives loaded in this run, to delete at their last line; `None` once a line failed.
    loaded: HashMap<(PathBuf, String), Option<Result<Origin, ArchiveError>>>,
    /// Archives a line of which failed: kept.
    failed: HashSet<(PathBuf, String)>,
}

impl Deletions {
    fn new(entries: &[Entry]) -> Deletions {
        let last = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (Deletions::key(e), i))
            .collect();
        Deletions {
            last,
            loaded: HashMap::new(),
            failed: HashSet::new(),
        }
    }

    fn key(entry: &Entry) -> (PathBuf, String) {
        (entry.images_dir.clone(), entry.archive.clone())
    }

    /// The entry loaded its archive, opened as `origin`.
    fn loaded(&mut self, entry: &Entry, origin: Result<Origin, ArchiveError>) {
        self.loaded
            .entry(Deletions::key(entry))
            .or_insert(Some(origin));
    }

    /// The entry at `index` ended; at the last line naming its archive, the archive is deleted
    /// if a line loaded it and none failed.
    fn ended(&mut self, index: usize, entry: &Entry, ok: bool, log: &Log) {
        // Nothing to delete, nothing to remember (no archive loaded so far, as on a no-op run).
        if ok && self.loaded.is_empty() {
            return;
        }
        let key = Deletions::key(entry);
        if !ok {
            self.failed.insert(key.clone());
        }
        if self.last.get(&key) != Some(&index) {
            return;
        }
        let Some(Some(origin)) = self.loaded.remove(&key) else {
            return;
        };
        let (place, image) = (entry.place(), &entry.reference);
        if self.failed.contains(&key) {
            log.warn(format_args!(
                "{place}: {image}: kept {}: a line naming it failed",
                entry.archive
            ));
            return;
        }
        match origin.and_then(|o| o.delete()) {
            Ok(()) => log.info(format_args!("{place}: {image}: deleted {}", entry.archive)),
            // The image is there, which is what the run is for; a kept archive costs only space.
            Err(e) => log.warn(format_args!(
                "{place}: {image}: loaded, but not deleted: {e}"
            )),
        }
    }
}

/// Lets an upload that waits for the space check's verdict end, should the check not finish.
struct Unblock<'a>(&'a OnceLock<Result<(), space::Shortfall>>);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        let _ = self.0.set(Ok(()));
    }
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
