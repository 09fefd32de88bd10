//! One entry's turn: is its image present (and with --verify, the archive's)? If not, the
//! archive is loaded as a transaction over names (upload.rs, confirm.rs), and what the turn
//! ended with goes back to the run (mod.rs).

use std::cell::RefCell;
use std::time::Instant;

use super::confirm::{archive_image, confirm, whole};
use super::deletions::Deletions;
use super::error::{EntryError, Failed};
use super::names::{self, names_of, Asked, Before, Change};
use super::upload::Sent;
use crate::cli::Load as Options;
use crate::engine::requests::Requests;
use crate::engine::{short_id, Held, Listing};
use crate::input::archive::{self, Archive};
use crate::input::list::Entry;
use crate::input::reference::Reference;
use crate::input::sizes::Size;
use crate::plan::space;
use crate::plan::verify::{self, ArchiveImage, Compared, Same};
use crate::report::log::Log;
use crate::report::progress::EntryReport;

/// How an entry ended, with the engine's id for its reference where known.
pub(super) enum Outcome {
    Present(Option<String>),
    /// `--verify`: present, and the archive's image: the engine's id, and the one the archive's
    /// image gets (another on the containerd store where the manifests differ).
    Verified {
        id: String,
        archive_id: String,
    },
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

/// What the run carries from one entry to the next.
pub(super) struct Turns<'a> {
    pub(super) engine: &'a dyn Requests,
    pub(super) options: &'a Options,
    pub(super) log: &'a Log,
    pub(super) deletions: Deletions,
    /// The layers the engine holds, learned once and brought up to date before each upload
    /// that could leave some out (src/plan/delta.rs).
    pub(super) held: Held,
    /// The engine's listing (names and ids). A load moves names, so it says what they stand
    /// for only while `fresh`: taken since the run's last load.
    pub(super) listing: Option<Listing>,
    pub(super) fresh: bool,
    /// Whether presence is answered from the listing (a run of more than one entry).
    pub(super) lists: bool,
    /// Whether keeper names a load that did not end left were looked for (src/commands/load/names.rs).
    pub(super) swept: bool,
}

/// How an entry's turn ended.
pub(super) struct Ended {
    pub(super) result: Result<Outcome, EntryError>,
    /// What the names the archive carries are on after a load that worked, and were on before.
    pub(super) moved: Vec<Change>,
    /// After a failed load over an image the engine had (--replace-differing): that image,
    /// when the reference is back on it.
    pub(super) remains: Option<String>,
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

impl<'a> Turns<'a> {
    /// The run's first turn: `listing` is the engine's, as of now, if it could be read;
    /// `entries` are the run's, which `--delete-after-load` counts.
    pub(super) fn new(
        engine: &'a dyn Requests,
        options: &'a Options,
        log: &'a Log,
        entries: &[Entry],
        listing: Option<Listing>,
    ) -> Turns<'a> {
        Turns {
            engine,
            options,
            log,
            deletions: match options.delete_after_load {
                true => Deletions::new(entries),
                false => Deletions::default(),
            },
            held: Held::default(),
            fresh: listing.is_some(),
            lists: listing.is_some(),
            swept: false,
            listing,
        }
    }

    /// The listing's id for `image`, the listing taken again first if a load came since.
    pub(super) fn listed(&mut self, image: &Reference) -> Option<String> {
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

    pub(super) fn entry(&mut self, entry: &Entry, report: &EntryReport) -> Ended {
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
        let mut readings = names::read_back(engine, &before, &names, &place, log);
        let checked = confirmed.and_then(|id| {
            whole(engine, entry, promised.as_ref(), &readings)?;
            Ok(id)
        });
        let id = match checked {
            Ok(id) => id,
            Err(e) => return self.undo(entry, &before, Failed::Read(e, readings)),
        };
        if let (Some(_), Some(id)) = (promised.as_ref(), id.as_deref()) {
            // The archive's names are known: any other the engine made up was not asked for.
            let asked = names_of(image, promised.as_ref(), &[]);
            names::drop_unasked(engine, &mut readings, (&asked, id), &place, log);
        }
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
    let archive = verify::archive_image(entry, engine, options.memory_limit)
        .map_err(EntryError::Unverifiable)?;
    let verified = Ok(Some(Outcome::Verified {
        id: id.to_owned(),
        archive_id: archive.id.clone(),
    }));
    let differs =
        match verify::compare(entry, engine, id, &archive).map_err(EntryError::Unverifiable)? {
            Same::Id => {
                log.info(format_args!(
                    "{place}: {image}: present, skipped (verified: {} as in {})",
                    short_id(id),
                    entry.archive
                ));
                return verified;
            }
            Same::Config(config) => {
                let same = compared(id, Some(&config), &entry.archive, &archive).same_config();
                log.info(format_args!(
                    "{place}: {image}: present, skipped (verified: {same})"
                ));
                return verified;
            }
            Same::No { config } => format!(
                "{place}: {image}: differs: {}",
                compared(id, config.as_deref(), &entry.archive, &archive).differs()
            ),
        };
    if options.replace_differing {
        log.info(format_args!("{differs}; loading the archive"));
        return Ok(None);
    }
    log.warn(format_args!(
        "{differs}; kept (--replace-differing loads the archive)"
    ));
    Ok(Some(Outcome::Differs {
        id: id.to_owned(),
        archive_id: archive.id,
    }))
}

/// The engine's image and the archive's in the log's words: short ids.
fn compared(id: &str, config: Option<&str>, name: &str, archive: &ArchiveImage) -> Compared {
    Compared {
        engine_id: short_id(id),
        engine_config: config.map(short_id),
        archive: name.to_owned(),
        archive_id: short_id(&archive.id),
        archive_config: archive.config.as_deref().map(short_id),
    }
}
