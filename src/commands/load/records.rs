//! What status.json and the markers record of each entry's turn, and the records a later
//! load changes: a load that moves a name an earlier entry was recorded under has that entry
//! recorded again, as the image the name is on now.

use super::entry::{Ended, Outcome};
use super::error::EntryError;
use super::names::{self, Change};
use crate::engine::short_id;
use crate::input::list::Entry;
use crate::report::log::Log;
use crate::state::ready::{self, Recorder};
use crate::state::row::State;

/// What status.json records of an entry's turn; `verify`: the run compares ids (--verify).
pub(super) fn recorded(ended: &Ended, verify: bool) -> ready::Record {
    let (state, image_id, archive_id) = match &ended.result {
        Ok(Outcome::Present(id)) => (State::Present, id.clone(), None),
        Ok(Outcome::Loaded { id, archive_id }) => (
            State::Present,
            id.clone(),
            archive_id.clone().filter(|_| verify),
        ),
        Ok(Outcome::Verified { id, archive_id }) => {
            (State::Present, Some(id.clone()), Some(archive_id.clone()))
        }
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
    ready::Record {
        state,
        image_id,
        archive_id,
        error,
    }
}

/// The run's entries as recorded: status.json and the markers, and what each entry was
/// recorded as, so that a later load that moves its name has it recorded again.
pub(super) struct Records<'r> {
    pub(super) recorder: Option<Recorder<'r>>,
    /// Each entry's outcome as recorded, and whether the summary counts it as present.
    pub(super) outcomes: Vec<(ready::Record, bool)>,
}

/// How many earlier entries a load's moved names recorded again.
#[derive(Default)]
pub(super) struct Revised {
    pub(super) no_longer_present: usize,
    pub(super) now_differ: usize,
}

impl<'r> Records<'r> {
    /// Nothing recorded yet of a run of `total` entries; `recorder` `None`: nothing is written.
    pub(super) fn new(recorder: Option<Recorder<'r>>, total: usize) -> Records<'r> {
        Records {
            recorder,
            outcomes: Vec::with_capacity(total),
        }
    }

    pub(super) fn flush(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.flush();
        }
    }

    /// Records `entry`'s outcome; `present`: the summary counts it as present.
    pub(super) fn entry(
        &mut self,
        entry: &Entry,
        outcome: ready::Record,
        batched: bool,
        present: bool,
    ) {
        if let Some(recorder) = &mut self.recorder {
            recorder.entry(entry, &outcome, batched);
        }
        self.outcomes.push((outcome, present));
    }

    /// Entry `index` loaded, moving the names `moved`: each earlier entry under one of them
    /// now stands for the image the name is on now, and is recorded again with it.
    pub(super) fn revise(
        &mut self,
        entries: &[Entry],
        index: usize,
        moved: &[Change],
        log: &Log,
    ) -> Revised {
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
fn revise_outcome(outcome: &mut ready::Record, now: Option<String>) {
    outcome.state = match (&now, &outcome.archive_id) {
        (None, _) => State::Missing,
        (Some(now), Some(archive)) if now != archive => State::Differs,
        (Some(_), _) => State::Present,
    };
    outcome.image_id = now;
}
