//! The load pipeline: list -> entry -> present? -> archive reader -> engine -> present!
//!
//! Entries are independent: whatever happens to one is reported on its own line and the next
//! one still runs. An entry counts as loaded only when the engine has its reference after the
//! upload, and only then is its archive deleted (with `--delete-after-load`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crate::cli::Load as Options;
use crate::decode::{self, DecodeError, HoldBack, Pipelined};
use crate::engine::requests::Requests;
use crate::engine::{short_id, EngineError, Held, Knock, Listing, LISTING_NAMES_MAX};
use crate::image::describe::{Images, Match};
use crate::input::archive::{self, Archive, ArchiveError, Origin};
use crate::input::format::Format;
use crate::input::list::Entry;
use crate::plan::delta::{self, Leaving};
use crate::report::exit::Exit;
use crate::report::log::Log;
use crate::state::connect::connect;
use crate::state::entries::read_lists;
use crate::state::lock;
mod names;

use crate::image::platform::Platform;
use crate::input::reference::Reference;
use crate::input::sizes::Size;
use crate::plan::space::{self, Shortfall};
use crate::plan::verify::{archive_id, VerifyError};
use crate::report::notify::Notifier;
use crate::report::progress::{EntryReport, Reporter};
use crate::rewrite::{LeftOutNeeded, Loadable, Unloadable};
use crate::state::ready::{self, Recorder};
use crate::state::row::State;
use crate::state::rundir::RunDir;
use names::{Asked, Before, Change};

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
        // Another loader that held the lock may have loaded since the knock.
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
        let mut records = Records {
            recorder: match (options.dry_run, &run_dir) {
                (false, Some(run)) => Some(Recorder::new(run, &options.lists, *log)),
                _ => None,
            },
            outcomes: Vec::with_capacity(total),
        };
        let mut turns = Turns {
            engine: &engine,
            options,
            log,
            deletions: match options.delete_after_load {
                true => Deletions::new(&lists.entries),
                false => Deletions::default(),
            },
            held: Held::default(),
            fresh: listing.is_some(),
            lists: listing.is_some(),
            swept: false,
            listing,
        };
        for (index, entry) in lists.entries.iter().enumerate() {
            let report = reporter.entry(index + 1, total, entry);
            // Answered by the listing, without a request: written with the next ones.
            let batched = !options.verify && turns.listed(&entry.reference).is_some();
            if !batched {
                records.flush();
            }
            // Their lines too go out together; anything that may take long or fail goes out
            // line by line, as it happens.
            match batched {
                true => log.hold(),
                false => log.release(),
            }
            let ended = turns.entry(entry, &report);
            turns
                .deletions
                .ended(index, entry, ended.result.is_ok(), log);
            let present = matches!(ended.result, Ok(Outcome::Present(_) | Outcome::Verified(_)));
            records.entry(entry, recorded(&ended, options.verify), batched, present);
            // A load that moved names earlier entries were recorded under changed what they
            // stand for: those entries are recorded again (a verified one may now differ).
            let revised = records.revise(&lists.entries, index, &ended.moved, log);
            summary.present -= revised.no_longer_present;
            summary.differ += revised.now_differ;
            match ended.result {
                Ok(Outcome::Present(_) | Outcome::Verified(_)) => summary.present += 1,
                Ok(Outcome::Loaded { .. }) => summary.loaded += 1,
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
        if let Some(recorder) = records.recorder {
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

/// What status.json records of an entry's turn; `verify`: the run compares ids (--verify).
fn recorded(ended: &Ended, verify: bool) -> ready::Outcome {
    let (state, image_id, archive_id) = match &ended.result {
        Ok(Outcome::Present(id)) => (State::Present, id.clone(), None),
        Ok(Outcome::Loaded { id, archive_id }) => (
            State::Present,
            id.clone(),
            archive_id.clone().filter(|_| verify),
        ),
        Ok(Outcome::Verified(id)) => (State::Present, Some(id.clone()), Some(id.clone())),
        Ok(Outcome::Differs { id, archive_id }) => {
            (State::Differs, Some(id.clone()), Some(archive_id.clone()))
        }
        Ok(Outcome::WouldLoad) => (State::Missing, None, None),
        Err(EntryError::Presence(_)) => (State::Unknown, None, None),
        // A failed load over an image the engine had (--replace-differing) leaves it there.
        Err(_) => match &ended.remains {
            Some(id) => (State::Present, Some(id.clone()), None),
            None => (State::Missing, None, None),
        },
    };
    let error = ended.result.as_ref().err().map(ToString::to_string);
    ready::Outcome {
        state,
        image_id,
        archive_id,
        error,
    }
}

/// The run's entries as recorded: status.json and the markers, and what each entry was
/// recorded as, so that a later load that moves its name has it recorded again.
struct Records<'r> {
    recorder: Option<Recorder<'r>>,
    /// Each entry's outcome as recorded, and whether the summary counts it as present.
    outcomes: Vec<(ready::Outcome, bool)>,
}

/// How many earlier entries a load's moved names recorded again.
#[derive(Default)]
struct Revised {
    no_longer_present: usize,
    now_differ: usize,
}

impl Records<'_> {
    fn flush(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.flush();
        }
    }

    /// Records `entry`'s outcome; `present`: the summary counts it as present.
    fn entry(&mut self, entry: &Entry, outcome: ready::Outcome, batched: bool, present: bool) {
        if let Some(recorder) = &mut self.recorder {
            recorder.entry(entry, &outcome, batched);
        }
        self.outcomes.push((outcome, present));
    }

    /// Entry `index` loaded, moving the names `moved`: each earlier entry under one of them
    /// now stands for the image the name is on now, and is recorded again with it.
    fn revise(&mut self, entries: &[Entry], index: usize, moved: &[Change], log: &Log) -> Revised {
        let mut revised = Revised::default();
        for change in moved {
            for (earlier, (outcome, present)) in self.outcomes[..index].iter_mut().enumerate() {
                let entry = &entries[earlier];
                let stale = names::same_name(&entry.reference, &change.name)
                    && matches!(outcome.state, State::Present | State::Differs)
                    && outcome.image_id != change.now;
                if !stale {
                    continue;
                }
                let was = outcome.state;
                revise_outcome(outcome, change.now.clone());
                log.warn(format_args!(
                    "{}: {}: now {}: the load of {} ({}) moved the name",
                    entry.place(),
                    entry.reference,
                    change.now.as_deref().map_or("gone".to_owned(), short_id),
                    entries[index].archive,
                    entries[index].place()
                ));
                if let Some(recorder) = &mut self.recorder {
                    recorder.revise(entry, outcome);
                }
                if was != State::Differs && outcome.state == State::Differs {
                    revised.now_differ += 1;
                    revised.no_longer_present += usize::from(*present);
                    *present = false;
                }
            }
        }
        revised
    }
}

/// `outcome` with its reference now on `now`: present, or with --verify's archive id, present
/// only as that image and differing otherwise.
fn revise_outcome(outcome: &mut ready::Outcome, now: Option<String>) {
    outcome.state = match (&now, &outcome.archive_id) {
        (None, _) => State::Missing,
        (Some(now), Some(archive)) if now != archive => State::Differs,
        (Some(_), _) => State::Present,
    };
    outcome.image_id = now;
}

/// How an entry ended, with the engine's id for its reference where known.
enum Outcome {
    Present(Option<String>),
    /// `--verify`: present, and the archive's image.
    Verified(String),
    /// Loaded; with the archive's id for the reference where it could be told, which the
    /// engine's was checked to be.
    Loaded {
        id: Option<String>,
        archive_id: Option<String>,
    },
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

/// What the run carries from one entry to the next.
struct Turns<'a> {
    engine: &'a dyn Requests,
    options: &'a Options,
    log: &'a Log,
    deletions: Deletions,
    /// The layers the engine holds, learned once and brought up to date before each upload
    /// that could leave some out (src/plan/delta.rs).
    held: Held,
    /// The engine's listing (names and ids). A load moves names, so it says what they stand
    /// for only while `fresh`: taken since the run's last load.
    listing: Option<Listing>,
    fresh: bool,
    /// Whether presence is answered from the listing (a run of more than one entry).
    lists: bool,
    /// Whether keeper names a load that did not end left were looked for (src/commands/load/names.rs).
    swept: bool,
}

/// How an entry's turn ended.
struct Ended {
    result: Result<Outcome, EntryError>,
    /// What the names the archive carries are on after a load that worked, and were on before.
    moved: Vec<Change>,
    /// After a failed load over an image the engine had (--replace-differing): that image,
    /// when the reference is back on it.
    remains: Option<String>,
}

impl From<Result<Outcome, EntryError>> for Ended {
    fn from(result: Result<Outcome, EntryError>) -> Ended {
        Ended {
            result,
            moved: Vec::new(),
            remains: None,
        }
    }
}

/// Where an entry stands after the presence check.
enum Settled {
    Done(Outcome),
    /// To be loaded; the id the engine has under the reference now, if any (--replace-differing).
    Load(Option<String>),
}

impl Turns<'_> {
    /// The listing's id for `image`, the listing taken again first if a load came since.
    fn listed(&mut self, image: &Reference) -> Option<String> {
        if self.lists && !self.fresh {
            self.listing = self.engine.listing();
            self.fresh = true;
        }
        self.listing.as_ref()?.id_of(image).map(str::to_owned)
    }

    /// The listing as of now, for the upload about to start, which makes it stale.
    fn take_listing(&mut self) -> Option<Listing> {
        if !self.fresh || self.listing.is_none() {
            self.listing = self.engine.listing();
        }
        self.fresh = false;
        self.listing.take()
    }

    fn entry(&mut self, entry: &Entry, report: &EntryReport) -> Ended {
        match self.settle(entry) {
            Ok(Settled::Done(outcome)) => Ok(outcome).into(),
            Ok(Settled::Load(replacing)) => self.load(entry, report, replacing),
            Err(e) => Err(e).into(),
        }
    }

    /// Whether the engine has the entry's image, and with --verify whether it is the archive's.
    fn settle(&mut self, entry: &Entry) -> Result<Settled, EntryError> {
        let (engine, options, log) = (self.engine, self.options, self.log);
        let image = &entry.reference;
        // Presence first: with --delete-after-load a present image's archive is gone by design.
        // Asked by its id where the listing does not answer: the marker and the row give it.
        let present = match self.listed(image) {
            Some(id) => Some(id),
            None => engine.image_id(image).map_err(EntryError::Presence)?,
        };
        match (present, options.verify) {
            // `None`: it differs, and --replace-differing loads the archive.
            (Some(id), true) => Ok(match verify(engine, entry, &id, options, log)? {
                Some(outcome) => Settled::Done(outcome),
                None => Settled::Load(Some(id)),
            }),
            (Some(id), false) => {
                log.info(format_args!("{}: {image}: present, skipped", entry.place()));
                Ok(Settled::Done(Outcome::Present(Some(id))))
            }
            (None, _) => Ok(Settled::Load(None)),
        }
    }

    /// Loads the entry's archive as a transaction over names: a load that fails or ends with
    /// an image that is not the archive's puts back every name it moved (src/commands/load/names.rs).
    fn load(&mut self, entry: &Entry, report: &EntryReport, replacing: Option<String>) -> Ended {
        let (engine, options, log) = (self.engine, self.options, self.log);
        let archive = match Archive::open(&entry.images_dir, &entry.archive) {
            Ok(archive) => archive,
            Err(e) => return Err(EntryError::Archive(e)).into(),
        };
        if options.dry_run {
            return dry_run(engine, entry, &archive, options, log).into();
        }
        let asked = RefCell::new(Asked::new(engine));
        let ended = self.transact(entry, report, archive, replacing, &asked);
        asked
            .borrow_mut()
            .let_go(engine, &entry.place().to_string(), log);
        ended
    }

    /// [`Turns::load`] once the archive is open: `asked` gets the names the archive carries
    /// as the engine has them just before the tar's end.
    fn transact(
        &mut self,
        entry: &Entry,
        report: &EntryReport,
        archive: Archive,
        replacing: Option<String>,
        asked: &RefCell<Asked>,
    ) -> Ended {
        let (engine, options, log) = (self.engine, self.options, self.log);
        let (image, place) = (&entry.reference, entry.place().to_string());
        let started = Instant::now();
        let snapshot = self.take_listing();
        let keeps = asked.borrow().keep;
        if let Some(listing) = snapshot.as_ref().filter(|_| keeps && !self.swept) {
            names::sweep(engine, listing, log);
            self.swept = true;
        }
        let origin = archive.origin();
        let sent = self.send(entry, report, archive, replacing.is_some(), asked);
        let asked = asked.borrow();
        let before = Before {
            asked: &asked.names,
            listing: snapshot.as_ref(),
            reference: (image, replacing),
        };
        let sent = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(failed)) => return self.undo(entry, &before, failed),
            Err(e) => return Err(e).into(),
        };
        let Sent {
            carried,
            promised,
            progress,
            format,
        } = sent;
        log.debug(format_args!(
            "{place}: engine reports loaded: {}",
            carried.join(", ")
        ));
        let names = names_of(image, promised.as_ref(), &carried);
        let (archive_id, _) = archive_image(engine, promised.as_ref(), image);
        let confirmed = confirm(engine, entry, promised.as_ref(), carried, log);
        let readings = names::read_back(engine, &before, &names, &place, log);
        let checked = confirmed.and_then(|id| {
            whole(engine, entry, promised.as_ref(), &readings)?;
            Ok(id)
        });
        let id = match checked {
            Ok(id) => id,
            Err(e) => return self.undo(entry, &before, Failed::Read(e, readings)),
        };
        log.info(format_args!(
            "{place}: {image}: loaded from {} ({format}, {} -> {}, {:.2} s)",
            entry.archive,
            Size(progress.compressed()),
            Size(progress.decoded()),
            started.elapsed().as_secs_f64()
        ));
        if options.delete_after_load {
            self.deletions.loaded(entry, origin);
        }
        Ended {
            result: Ok(Outcome::Loaded { id, archive_id }),
            moved: readings.into_iter().filter(Change::moved).collect(),
            remains: None,
        }
    }

    /// After a failed load: every name it may have moved goes back where it was.
    fn undo(&self, entry: &Entry, before: &Before, failed: Failed) -> Ended {
        let (engine, log) = (self.engine, self.log);
        let place = entry.place().to_string();
        let (error, readings) = match failed {
            Failed::Read(error, readings) => (error, readings),
            Failed::Refused { error, names } => {
                let readings = names::read_back(engine, before, &names, &place, log);
                (error, readings)
            }
            // The request was cut before the tar's end: the engine loaded nothing.
            Failed::Aborted(error) => return Err(error).into(),
        };
        names::restore(engine, &readings, &place, log);
        // Back where it was, or the entry is not recorded as present.
        let remains = before
            .reference
            .1
            .clone()
            .filter(|id| engine.image_id(&entry.reference).ok().flatten().as_ref() == Some(id));
        Ended {
            result: Err(error),
            moved: Vec::new(),
            remains,
        }
    }

    /// Uploads the archive, and again whole where the engine refused it without the layers
    /// it holds. `Err` when nothing could be sent; `Ok(Err)` when the load failed.
    fn send(
        &mut self,
        entry: &Entry,
        report: &EntryReport,
        archive: Archive,
        replacing: bool,
        asked: &RefCell<Asked>,
    ) -> Result<Result<Sent, Failed>, EntryError> {
        let (engine, options, log) = (self.engine, self.options, self.log);
        let (image, place) = (&entry.reference, entry.place().to_string());
        // The archive's unpacked size is read here (a few reads); where the engine copies it,
        // and how much room is there, is asked beside the upload (see `space::Gate`).
        let estimate = options
            .space_check
            .then(|| space::estimate(archive.format, archive.file(), archive.size));
        let (format, size) = (archive.format, archive.size);
        let plan = leaving(engine, &archive, options, &mut self.held, &place, log);
        // A retry reads the file already opened, from its start: the same file as the first
        // upload, whatever its name stands for by then.
        let again = plan.as_ref().and_then(|_| archive.file().try_clone().ok());
        let check_listed = plan.as_ref().is_some_and(|p| p.check_listed);
        let decoder = decode::open(archive, options.memory_limit);
        let name = || entry.archive.clone();
        let job = Job {
            engine,
            reference: image,
            asked,
            format,
            estimate,
            place: &place,
            log,
            report,
            size,
        };
        let mut sent = upload(&job, decoder, plan);
        // Not when the archive or the space check failed the upload: a whole one would fail too.
        let misjudged = sent.error.as_ref().and_then(LeftOutNeeded::find).cloned();
        let retry = (sent.error.is_none() || misjudged.is_some()) && sent.shortfall.is_none();
        if let Some(file) = again.filter(|_| retry) {
            let why = match (misjudged, &sent.result) {
                // Cut before the tar's end: the engine loaded nothing.
                (Some(misjudged), _) => {
                    Some(format!("the upload stopped before its end: {misjudged}"))
                }
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
                (None, Ok(carried))
                    if check_listed && !listed_whole(engine, image, sent.promised.as_ref(), carried) =>
                {
                    Some("the engine does not list the image loaded without the layers it held (its content is incomplete)".to_owned())
                }
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
                sent = upload(&job, decoder, None);
            }
        }
        Ok(sent.outcome(entry, image))
    }
}

/// `--dry-run`: what loading the entry would do, and whether it would fit.
fn dry_run(
    engine: &dyn Requests,
    entry: &Entry,
    archive: &Archive,
    options: &Options,
    log: &Log,
) -> Result<Outcome, EntryError> {
    let place = entry.place().to_string();
    if options.space_check {
        space::check(engine, archive, &place, log).map_err(EntryError::Space)?;
    }
    log.info(format_args!(
        "{place}: {}: would load from {} ({}, {})",
        entry.reference,
        entry.archive,
        archive.format,
        Size(archive.size)
    ));
    Ok(Outcome::WouldLoad)
}

/// A load that worked, as far as the engine says.
struct Sent {
    /// The names the engine says it loaded.
    carried: Vec<String>,
    /// What the archive described, from the walk on the way.
    promised: Option<Images>,
    progress: std::sync::Arc<crate::decode::Progress>,
    format: Format,
}

/// A load that did not work, and what is known of the names it may have moved.
enum Failed {
    /// The request was aborted before the tar's end (the archive, the disk, the space check):
    /// the engine loaded nothing.
    Aborted(EntryError),
    /// The engine refused the archive: `names` are those it may have moved.
    Refused {
        error: EntryError,
        names: Vec<Reference>,
    },
    /// The engine loaded it, but the names are not the archive's image: as read back.
    Read(EntryError, Vec<Change>),
}

/// Every name the load may have moved: the entry's own, those the archive carries, and those
/// the engine says it loaded.
fn names_of(image: &Reference, promised: Option<&Images>, carried: &[String]) -> Vec<Reference> {
    let archive = promised
        .into_iter()
        .flat_map(|p| p.images.iter())
        .flat_map(|i| i.references.iter());
    std::iter::once(image.clone())
        .chain(
            archive
                .chain(carried.iter())
                .filter_map(|name| Reference::parse(name).ok()),
        )
        .collect()
}

/// The names the archive gives its images, each with the id this engine gives that image
/// (where it can be told).
fn archive_names(
    engine: &dyn Requests,
    promised: Option<&Images>,
) -> Vec<(Reference, Option<String>)> {
    let mut names = Vec::new();
    for image in promised.into_iter().flat_map(|p| p.images.iter()) {
        let id = engine.id_for(image).ok().flatten().map(str::to_owned);
        for name in &image.references {
            if let (Ok(name), Some(images)) = (Reference::parse(name), promised) {
                // One name on several images (one per platform): the device's.
                if let Match::Named(named) = images.find(&name) {
                    if std::ptr::eq(named, image) {
                        names.push((name, id.clone()));
                    }
                }
            }
        }
    }
    names
}

/// After a load that worked: every name the archive carries is on the archive's image.
fn whole(
    engine: &dyn Requests,
    entry: &Entry,
    promised: Option<&Images>,
    readings: &[Change],
) -> Result<(), EntryError> {
    for (name, wanted) in archive_names(engine, promised) {
        let Some(wanted) = wanted else { continue };
        let reading = readings.iter().find(|r| names::same_name(&r.name, &name));
        let Some(now) = reading.map(|r| r.now.clone()) else {
            continue;
        };
        match now {
            Some(now) if now == wanted => {}
            Some(now) => {
                return Err(EntryError::NotTheArchives {
                    archive: entry.archive.clone(),
                    image: name.to_string(),
                    engine_id: short_id(&now),
                    archive_id: short_id(&wanted),
                })
            }
            None => {
                return Err(EntryError::NotPresentAfterLoad {
                    archive: entry.archive.clone(),
                    image: name.to_string(),
                    carried: vec![name.to_string()],
                })
            }
        }
    }
    Ok(())
}

/// Whether the engine's listing shows the entry's reference and every name the archive
/// carries, each on the archive's image: docker's containerd store leaves an image whose
/// content is incomplete out of it, and a load of several images may complete some only.
/// Without a description, whether it shows one of the names the engine says it loaded.
fn listed_whole(
    engine: &dyn Requests,
    image: &Reference,
    promised: Option<&Images>,
    carried: &[String],
) -> bool {
    let Some(listing) = engine.listing() else {
        return false;
    };
    let mut names = archive_names(engine, promised);
    if names.is_empty() {
        return carried
            .iter()
            .filter_map(|name| Reference::parse(name).ok())
            .any(|name| listing.id_of(&name).is_some());
    }
    // A reference the archive does not carry gets its name after this check.
    if let Some(Match::Named(i)) = promised.map(|p| p.find(image)) {
        let id = engine.id_for(i).ok().flatten().map(str::to_owned);
        names.push((image.clone(), id));
    }
    names
        .iter()
        .all(|(name, wanted)| listing.id_of(name).map(str::to_owned) == *wanted)
}

/// What an upload can leave out of the archive, where the engine's store takes that and holds
/// some of its layers; `None` for a whole upload (why, in the verbose log).
fn leaving<'h>(
    engine: &dyn Requests,
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
    format: Format,
}

/// What every upload of one entry shares.
struct Job<'a> {
    engine: &'a dyn Requests,
    /// The entry's reference, and what the engine's names were before the tar's end.
    reference: &'a Reference,
    asked: &'a RefCell<Asked>,
    format: Format,
    estimate: Option<space::Estimate>,
    place: &'a str,
    log: &'a Log,
    report: &'a EntryReport<'a>,
    size: u64,
}

impl Upload {
    /// How the load went, as the entry sees it.
    fn outcome(self, entry: &Entry, image: &Reference) -> Result<Sent, Failed> {
        let name = || entry.archive.clone();
        // A shortfall is the cause, whatever the upload ended with: the engine may have found
        // its disk full before the check answered.
        if let Some(shortfall) = self.shortfall {
            if self.result.is_err() || self.error.is_some() {
                return Err(Failed::Aborted(EntryError::Space(shortfall)));
            }
        }
        if let Some(source) = self.error {
            // The decoder or the disk failed: the request was aborted, the engine loaded nothing.
            let unusable =
                DecodeError::find(&source).is_some() || Unloadable::find(&source).is_some();
            return Err(Failed::Aborted(match unusable {
                true => EntryError::Decode {
                    archive: name(),
                    source,
                },
                false => EntryError::Read {
                    archive: name(),
                    source,
                },
            }));
        }
        match self.result {
            Ok(carried) => Ok(Sent {
                carried,
                promised: self.promised,
                progress: self.progress,
                format: self.format,
            }),
            Err(source) => Err(Failed::Refused {
                names: names_of(image, self.promised.as_ref(), &[]),
                error: EntryError::Load {
                    archive: name(),
                    source,
                },
            }),
        }
    }
}

/// Streams the archive read by `decoder` into the engine, leaving out what `plan` says.
fn upload(job: &Job, decoder: crate::decode::Decoder, plan: Option<Leaving>) -> Upload {
    let Job {
        engine,
        reference,
        asked,
        format,
        estimate,
        place,
        log,
        report,
        size,
    } = *job;
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
    // engine's store reads written in (src/rewrite/mod.rs); any other tar passes as it is, but for the
    // layer files a delta load leaves out. Its tar walk also notes what the archive promises
    // as it streams by: no second read, and no second walk.
    let stream = Loadable::new(stream, Platform::device(), engine.reads()).before_end(Box::new(
        move |images: &Images| asked.borrow_mut().ask(engine, reference, images),
    ));
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
        format,
    }
}

/// `--verify` for a present image whose engine id is `id`: `Some` outcome when the entry is
/// done (the same image, or differs and stays), `None` when the archive is to be loaded.
fn verify(
    engine: &dyn Requests,
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
    engine: &dyn Requests,
    entry: &Entry,
    promised: Option<&Images>,
    carried: Vec<String>,
    log: &Log,
) -> Result<Option<String>, EntryError> {
    let image = &entry.reference;
    let archive = || entry.archive.clone();
    let has = engine.image_id(image).map_err(EntryError::Presence)?;
    // If the store cannot be told, nothing to compare with, and the engine's word is taken.
    let (wanted, named) = archive_image(engine, promised, image);
    let Some(wanted) = wanted.as_deref() else {
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

/// The archive's image for `image` as this engine's store names it, where that can be told,
/// and whether the archive carries the name (or holds that one image without it).
fn archive_image(
    engine: &dyn Requests,
    promised: Option<&Images>,
    image: &Reference,
) -> (Option<String>, bool) {
    let id_of = |i| engine.id_for(i).ok().flatten().map(str::to_owned);
    match promised.map(|p| p.find(image)) {
        Some(Match::Named(i)) => (id_of(i), true),
        Some(Match::Only(i)) => (id_of(i), false),
        _ => (None, false),
    }
}

/// Removes the name `image` a failed load left on an image, if any: the id it was on, and
/// whether removing it worked.
fn remove_left_name(
    engine: &dyn Requests,
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
