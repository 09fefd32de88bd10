//! The load pipeline: list -> entry -> present? -> archive reader -> engine -> present!
//!
//! Entries are independent: whatever happens to one is reported on its own line and the next
//! one still runs. An entry counts as loaded only when the engine has its reference after the
//! upload, and only then is its archive deleted (with `--delete-after-load`).
//!
//! Here is the run: the lists, the engine, the lock, and the loop over entries, each recorded
//! as it ends. One entry's turn is in `entry.rs`: present? if not, the upload (`upload.rs`,
//! again whole after a refused delta), the check that the engine has the reference on the
//! archive's image (`confirm.rs`) and the names a failed load puts back (`names.rs`). What an
//! entry failed with is in `error.rs`, what is recorded of it in `records.rs`, which archives
//! are deleted in `deletions.rs`. Every request goes through [`Requests`], so all of it runs
//! against the fake engine in the unit tests (`tests.rs`).
//!
//! [`Requests`]: crate::engine::requests::Requests

mod confirm;
mod deletions;
mod entry;
mod error;
mod names;
mod records;
#[cfg(test)]
mod tests;
mod upload;

use std::path::Path;

use crate::cli::Load as Options;
use crate::engine::{EngineError, Knock, LISTING_NAMES_MAX};
use crate::input::list::Entry;
use crate::report::exit::Exit;
use crate::report::log::Log;
use crate::report::notify::Notifier;
use crate::report::progress::{EntryReport, Reporter};
use crate::state::connect::connect;
use crate::state::entries::{read_lists, Entries};
use crate::state::lock::{self, Lock};
use crate::state::ready::{self, Recorder};
use crate::state::row::State;
use crate::state::rundir::RunDir;
use entry::{Ended, Outcome, Turns};
use records::{recorded, Records};

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
        match load_entries(&lists.entries, options, log, &reporter, &mut summary) {
            Ok(all_recorded) => unrecorded = !all_recorded,
            Err(exit) => return exit,
        }
    }
    finish(&summary, &lists, unrecorded, options, log, &notifier)
}

/// Connects to the engine and gives each entry its turn, recording each as it ends. Whether
/// everything could be recorded; `Err` with the exit status when no engine answered.
fn load_entries(
    entries: &[Entry],
    options: &Options,
    log: &Log,
    reporter: &Reporter,
    summary: &mut Summary,
) -> Result<bool, Exit> {
    // The lock, status.json and the markers. A refused run directory (a symlink, someone
    // else's) is not used at all; the images still load.
    let run_dir = RunDir::open(&options.run_dir)
        .inspect_err(|e| log.error(e))
        .ok();
    // A dry run records nothing anyway.
    let mut all_recorded = run_dir.is_some() || options.dry_run;
    let total = entries.len();
    // One listing answers "present" for every entry it names (measured: 50 entries cost
    // one request instead of 50); the rest are asked one by one. It is the knock itself:
    // one answer to wait for instead of two.
    let knock = match total > 1 {
        true => Knock::Listing,
        false => Knock::Ping,
    };
    let connected = connect(
        &options.sockets,
        options.engine,
        options.wait,
        options.timeout,
        knock,
        log,
    );
    let mut engine = match connected {
        Ok(engine) => engine,
        Err(e) => {
            log.error(&e);
            record_unknown(entries, &e, run_dir.as_ref(), options, log);
            return Err(Exit::Unreachable);
        }
    };
    let (_lock, waited) = lock_engine(&engine.socket, run_dir.as_ref(), log);
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
    let recorder = match (options.dry_run, &run_dir) {
        (false, Some(run)) => Some(Recorder::new(run, &options.lists, *log)),
        _ => None,
    };
    let mut records = Records::new(recorder, total);
    let mut turns = Turns::new(&engine, options, log, entries, listing);
    for (index, entry) in entries.iter().enumerate() {
        let report = reporter.entry(index + 1, total, entry);
        take_turn(&mut turns, &mut records, summary, (entries, index), &report);
    }
    log.release();
    if let Some(recorder) = records.recorder {
        all_recorded &= recorder.finish();
    }
    Ok(all_recorded)
}

/// No engine answered: what status.json said from an earlier run is no longer known.
fn record_unknown(
    entries: &[Entry],
    e: &EngineError,
    run_dir: Option<&RunDir>,
    options: &Options,
    log: &Log,
) {
    let Some(run) = run_dir.filter(|_| !options.dry_run) else {
        return;
    };
    let unknown = ready::Record {
        state: State::Unknown,
        image_id: None,
        archive_id: None,
        error: Some(e.to_string()),
    };
    let mut recorder = Recorder::new(run, &options.lists, *log);
    for entry in entries {
        recorder.entry(entry, &unknown, true);
    }
    recorder.finish();
}

/// The lock for the engine at `socket`, held until the run ends, and whether another loader
/// held it first. Without /run (a very early hook), running unlocked beats not running: the
/// engines refuse nothing when two loads overlap, they only slow down.
fn lock_engine(socket: &Path, run_dir: Option<&RunDir>, log: &Log) -> (Option<Lock>, bool) {
    let lock_name = lock::name_for(socket);
    let mut waited = false;
    let lock = run_dir.and_then(|run| {
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
    (lock, waited)
}

/// Entry `index` of `entries`: its turn, its record, what its load changed of earlier records,
/// and its count in the summary.
fn take_turn(
    turns: &mut Turns,
    records: &mut Records,
    summary: &mut Summary,
    (entries, index): (&[Entry], usize),
    report: &EntryReport,
) {
    let (entry, options, log) = (&entries[index], turns.options, turns.log);
    // Answered by the listing, without a request: written with the next ones.
    let batched = !options.verify && turns.listed(&entry.reference).is_some();
    if !batched {
        records.flush();
    }
    // Their lines too go out together; anything that may take long or fail goes out line by
    // line, as it happens.
    match batched {
        true => log.hold(),
        false => log.release(),
    }
    let ended = turns.entry(entry, report);
    turns
        .deletions
        .ended(index, entry, ended.result.is_ok(), log);
    let present = matches!(
        ended.result,
        Ok(Outcome::Present(_) | Outcome::Verified { .. })
    );
    records.entry(entry, recorded(&ended, options.verify), batched, present);
    // A load that moved names earlier entries were recorded under changed what they stand
    // for: those entries are recorded again (a verified one may now differ).
    let revised = records.revise(entries, index, &ended.moved, log);
    summary.present -= revised.no_longer_present;
    summary.differ += revised.now_differ;
    summary.count(entry, ended, log);
}

impl Summary {
    /// Counts how `entry` ended; a failure is logged here.
    fn count(&mut self, entry: &Entry, ended: Ended, log: &Log) {
        match ended.result {
            Ok(Outcome::Present(_) | Outcome::Verified { .. }) => self.present += 1,
            Ok(Outcome::Loaded { .. }) => self.loaded += 1,
            Ok(Outcome::WouldLoad) => self.would_load += 1,
            Ok(Outcome::Differs { .. }) => self.differ += 1,
            Err(reason) => {
                log.error(format_args!(
                    "{}: {}: failed: {reason}",
                    entry.place(),
                    entry.reference
                ));
                self.failed += 1;
            }
        }
    }
}

/// The run's last line (also sd_notify's status) and its exit status.
fn finish(
    summary: &Summary,
    lists: &Entries,
    unrecorded: bool,
    options: &Options,
    log: &Log,
    notifier: &Notifier,
) -> Exit {
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
