//! Readiness for the units that need the images: `status.json` and one marker per image.
//!
//! After a load the loader records in its run directory (`/run/container-loader`) what
//! `status --json` prints for its entries, and for every image present a marker file named for
//! the reference as the list writes it: `images/debian:bookworm`,
//! `images/quay.io/libpod/alpine:3.10.2`, holding the image id. An application unit waits for
//! its image with `ConditionPathExists=` or a `.path` unit. Loaders for several packages share
//! the file: each replaces only the entries of its own lists, under a lock, and a marker goes
//! away when a later run finds its image missing.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::value::RawValue;
use serde_json::Value;

use crate::list::Entry;
use crate::lock;
use crate::status::{Row, State};

/// The run's entries, as `status --json` prints them, merged with other lists' entries.
pub const STATUS_FILE: &str = "status.json";
/// Serialises loaders that update `status.json` at the same moment (one per engine may run).
const STATUS_LOCK: &str = "status.lock";
/// One file per image present, at `images/<REF>`.
pub const MARKER_DIR: &str = "images";

/// The marker path for `reference` under `run_dir`. A validated reference has no `.`, `..` or
/// empty component; the check is repeated here since the path is created as root.
pub fn marker(run_dir: &Path, reference: &str) -> Option<PathBuf> {
    let relative = Path::new(reference);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| run_dir.join(MARKER_DIR).join(relative))
}

/// How an entry ended, as much as status.json needs beyond the list and the archive.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: State,
    pub image_id: Option<String>,
    /// `--verify`: the id of the archive's image, when the run read it.
    pub archive_id: Option<String>,
    pub error: Option<String>,
}

/// Writes `status.json` and the markers for the entries of `lists`: each entry's row is built
/// (its archive looked at as it is now), written and dropped in turn, so a long list costs
/// memory for its outcomes only. Entries of other lists stay as an earlier run wrote them,
/// unless their list is gone (a package removed since).
pub fn record<'a>(
    run_dir: &Path,
    lists: &[PathBuf],
    entries: impl Iterator<Item = (&'a Entry, &'a Outcome)>,
) -> io::Result<()> {
    fs::create_dir_all(run_dir)?;
    let _lock = lock::acquire(&run_dir.join(STATUS_LOCK), || {})?;
    let path = run_dir.join(STATUS_FILE);
    let ours: HashSet<String> = lists.iter().map(|l| l.display().to_string()).collect();
    let earlier = fs::read(&path).unwrap_or_default();
    let earlier: Vec<&RawValue> = serde_json::from_slice(&earlier).unwrap_or_default();
    let others = earlier.into_iter().filter(|raw| {
        let entry: Value = serde_json::from_str(raw.get()).unwrap_or_default();
        entry["list"]
            .as_str()
            .is_some_and(|l| !ours.contains(l) && Path::new(l).exists())
    });

    // A reader never sees half a file: written beside it, then renamed over it. One entry
    // per line, so that grep shows an image's whole entry.
    let partial = run_dir.join(format!("{STATUS_FILE}.partial"));
    let mut out = BufWriter::new(fs::File::create(&partial)?);
    let mut separator = "[\n";
    for raw in others {
        write!(out, "{separator}{}", raw.get())?;
        separator = ",\n";
    }
    let mut marked = HashSet::new();
    for (entry, outcome) in entries {
        let mut row = Row::new(entry.clone());
        row.state = outcome.state;
        row.image_id.clone_from(&outcome.image_id);
        row.archive_id.clone_from(&outcome.archive_id);
        row.errors.extend(outcome.error.clone());
        write!(out, "{separator}")?;
        serde_json::to_writer(&mut out, &row.to_json())?;
        separator = ",\n";
        // A reference listed twice is marked once.
        if marked.insert(entry.reference.as_str()) {
            mark(run_dir, &row)?;
        }
    }
    if separator == "[\n" {
        out.write_all(b"[")?;
    }
    out.write_all(b"\n]\n")?;
    // No fsync: /run is a tmpfs, gone at power-off anyway; the rename is what readers need.
    out.flush()?;
    drop(out);
    fs::rename(&partial, &path)
}

/// Puts down or takes away the marker for `row`'s image.
fn mark(run_dir: &Path, row: &Row) -> io::Result<()> {
    let Some(marker) = marker(run_dir, row.entry.reference.as_str()) else {
        return Ok(());
    };
    match row.state {
        State::Present | State::Differs => {
            if let Some(dir) = marker.parent() {
                fs::create_dir_all(dir)?;
            }
            let id = row.image_id.as_deref().unwrap_or_default();
            fs::write(&marker, format!("{id}\n"))
        }
        State::Missing => match fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        // Not asked: what an earlier run recorded stays.
        State::Unknown => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_marker_after_the_reference_and_refuses_dot_components() {
        let run = Path::new("/run/container-loader");
        assert_eq!(
            marker(run, "quay.io/libpod/alpine:3.10.2"),
            Some(run.join("images/quay.io/libpod/alpine:3.10.2"))
        );
        assert_eq!(marker(run, "a/../b"), None);
        assert_eq!(marker(run, "/etc/passwd"), None);
        assert_eq!(marker(run, "a//b"), Some(run.join("images/a/b")));
    }
}
