//! `--delete-after-load`: which archives are deleted, and when.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::input::archive::{ArchiveError, Origin};
use crate::input::list::Entry;
use crate::report::log::Log;

/// `--delete-after-load` when several lines name one archive (one per image or name it holds,
/// as `scan` writes them): the archive is deleted after the last of those lines, once each of
/// them ended with its image present, so that no line finds its archive gone while it still
/// needs it. A line whose image is present needs no archive.
#[derive(Default)]
pub(super) struct Deletions {
    /// The index of the last entry naming each archive.
    last: HashMap<(PathBuf, String), usize>,
    /// Archives loaded in this run, to delete at their last line; `None` once a line failed.
    loaded: HashMap<(PathBuf, String), Option<Result<Origin, ArchiveError>>>,
    /// Archives a line of which failed: kept.
    failed: HashSet<(PathBuf, String)>,
}

impl Deletions {
    pub(super) fn new(entries: &[Entry]) -> Deletions {
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
    pub(super) fn loaded(&mut self, entry: &Entry, origin: Result<Origin, ArchiveError>) {
        self.loaded
            .entry(Deletions::key(entry))
            .or_insert(Some(origin));
    }

    /// The entry at `index` ended; at the last line naming its archive, the archive is deleted
    /// if a line loaded it and none failed.
    pub(super) fn ended(&mut self, index: usize, entry: &Entry, ok: bool, log: &Log) {
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
