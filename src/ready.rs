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
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

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

/// Writes `status.json` and the markers for `rows`.
pub fn record(run_dir: &Path, rows: &[Row]) -> io::Result<()> {
    fs::create_dir_all(run_dir)?;
    let _lock = lock::acquire(&run_dir.join(STATUS_LOCK), || {})?;
    let path = run_dir.join(STATUS_FILE);
    let ours: HashSet<String> = rows
        .iter()
        .map(|r| r.entry.list.display().to_string())
        .collect();
    // Entries of other lists stay, unless their list is gone (a package removed since).
    let earlier: Vec<Value> = fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut merged: Vec<Value> = earlier
        .into_iter()
        .filter(|v| {
            v["list"]
                .as_str()
                .is_some_and(|l| !ours.contains(l) && Path::new(l).exists())
        })
        .collect();
    merged.extend(rows.iter().map(Row::to_json));
    merged.sort_by_key(|v| (v["list"].to_string(), v["line"].as_u64()));
    // A reader never sees half a file: write beside it, then rename over it.
    let partial = run_dir.join(format!("{STATUS_FILE}.partial"));
    let mut file = fs::File::create(&partial)?;
    serde_json::to_writer_pretty(&mut file, &merged)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    fs::rename(&partial, &path)?;

    for row in rows {
        let Some(marker) = marker(run_dir, row.entry.reference.as_str()) else {
            continue;
        };
        match row.state {
            State::Present | State::Differs => {
                if let Some(dir) = marker.parent() {
                    fs::create_dir_all(dir)?;
                }
                let id = row.image_id.as_deref().unwrap_or_default();
                fs::write(&marker, format!("{id}\n"))?;
            }
            State::Missing => match fs::remove_file(&marker) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
            // Not asked: what an earlier run recorded stays.
            State::Unknown => {}
        }
    }
    Ok(())
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
