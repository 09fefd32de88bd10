//! Readiness for the units that need the images: `status.json` and one marker per image.
//!
//! The loader records in its run directory (`/run/container-loader`) what `status --json`
//! prints for its entries, and for every image present a marker file in `images/`, named for
//! the reference by [`marker::name`] (`images/debian:bookworm`,
//! `images/quay.io-libpod-alpine:3.10.2`), holding the image id. An application unit waits for
//! its image with `ConditionPathExists=` or a `.path` unit. Loaders for several packages share
//! the file: each replaces only the entries of its own lists, under a lock, and a marker goes
//! away when a later run finds its image missing.
//!
//! Each entry is recorded as it finishes, so that a loader stopped halfway (systemd's SIGTERM
//! when a slow boot times out) leaves both true for the entries it did: the marker at once,
//! and `status.json` rewritten before the loader next asks the engine anything. Entries answered
//! by the one image listing, microseconds apart, are written together: at the latest before
//! the next request, and otherwise every [`BATCH`] or ten times as long as the last write took,
//! which keeps a run over thousands of present images from rewriting a growing file for each of
//! them (the writes then cost at most about a tenth of the run).

use std::collections::HashSet;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::Value;

use crate::list::Entry;
use crate::lock;
use crate::log::Log;
use crate::marker;
use crate::row::{Row, State};
use crate::rundir::{self, RunDir, RunDirError};

/// The run's entries, as `status --json` prints them, merged with other lists' entries.
pub const STATUS_FILE: &str = "status.json";
/// Where `status.json` is written before it is renamed into place.
const STATUS_PARTIAL: &str = "status.json.partial";
/// Serialises loaders that update `status.json` at the same moment (one per engine may run).
const STATUS_LOCK: &str = "status.lock";
/// One file per image present, at `images/<marker::name(REF)>`.
pub const MARKER_DIR: &str = "images";
/// How long entries answered without a request may wait to be written to `status.json`, at
/// least (ten times the last write's cost when that is longer; never past the next request).
pub const BATCH: Duration = Duration::from_millis(20);
/// Rows held for a batched write at most, in bytes: memory stays flat over any run.
const PENDING_MAX: usize = 256 << 10;
/// What `status.json` ends with; new rows go before it.
const TAIL: &[u8] = b"\n]\n";

/// The marker path for `reference` under `run_dir`.
pub fn marker(run_dir: &Path, reference: &str) -> PathBuf {
    run_dir.join(MARKER_DIR).join(marker::name(reference))
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

/// Records a run's entries as they finish. Failures are logged here, as errors naming the
/// file; [`Recorder::failed`] tells whether there were any.
pub struct Recorder<'a> {
    run: &'a RunDir,
    log: Log,
    ours: HashSet<String>,
    markers: Option<RunDir>,
    /// Rows finished but not yet in `status.json`, each preceded by `,\n`.
    pending: Vec<u8>,
    pending_rows: usize,
    /// The `status.json` this run last wrote (device, inode) and how many rows it holds:
    /// while it is still there, new rows are added to a copy of it, without reading it again.
    written: Option<((u64, u64), usize)>,
    /// Whether this run has written `status.json` once: from then on, its lists' rows there are
    /// this run's, not an earlier run's.
    wrote_once: bool,
    last_write: Instant,
    /// How long the last write took.
    last_cost: Duration,
    /// References whose marker this run has put down or taken away: the first entry decides.
    marked: HashSet<String>,
    failed: bool,
}

impl<'a> Recorder<'a> {
    pub fn new(run: &'a RunDir, lists: &[PathBuf], log: Log) -> Recorder<'a> {
        Recorder {
            run,
            log,
            ours: lists.iter().map(|l| l.display().to_string()).collect(),
            markers: None,
            pending: Vec::new(),
            pending_rows: 0,
            written: None,
            wrote_once: false,
            last_write: Instant::now(),
            last_cost: Duration::ZERO,
            marked: HashSet::new(),
            failed: false,
        }
    }

    /// Whether anything could not be recorded.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Records `entry`'s outcome: its marker now, its row in `status.json` now unless
    /// `batched` (it was answered without asking the engine; see [`BATCH`]).
    pub fn entry(&mut self, entry: &Entry, outcome: &Outcome, batched: bool) {
        let mut row = Row::new(entry.clone());
        row.state = outcome.state;
        row.image_id.clone_from(&outcome.image_id);
        row.archive_id.clone_from(&outcome.archive_id);
        row.errors.extend(outcome.error.clone());
        if self.marked.insert(entry.reference.as_str().to_owned()) {
            if let Err(e) = self.mark(&row) {
                self.failed = true;
                self.log.error(format_args!(
                    "{}: {}: cannot record its marker {}: {e}",
                    entry.place(),
                    entry.reference,
                    marker(self.run.path(), entry.reference.as_str()).display()
                ));
            }
        }
        self.pending.extend_from_slice(b",\n");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.pending, &row.to_json());
        self.pending_rows += 1;
        if !batched
            || self.pending.len() >= PENDING_MAX
            || self.last_write.elapsed() >= BATCH.max(self.last_cost * 10)
        {
            self.flush();
        }
    }

    /// Writes the rows not yet in `status.json`.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        if let Err(e) = self.write() {
            self.failed = true;
            self.written = None;
            self.log.error(format_args!(
                "cannot record the result in {}: {e}",
                self.run.join(STATUS_FILE).display()
            ));
        }
        self.pending.clear();
        self.pending_rows = 0;
        self.last_write = Instant::now();
        self.last_cost = self.last_write - started;
    }

    fn write(&mut self) -> io::Result<()> {
        let _lock = lock::acquire(self.run, STATUS_LOCK, || {})?;
        let current = self.run.identity(STATUS_FILE);
        let mut out = BufWriter::new(self.run.create_new(STATUS_PARTIAL)?);
        let mut rows = match self.written {
            // Still the file this run wrote: copied as it is, but for its tail.
            Some((identity, rows)) if Some(identity) == current => {
                let mut file = self
                    .run
                    .open_read(STATUS_FILE)?
                    .ok_or(io::ErrorKind::NotFound)?;
                let len = file.seek(SeekFrom::End(0))?;
                file.seek(SeekFrom::Start(0))?;
                let keep = len.saturating_sub(TAIL.len() as u64);
                io::copy(&mut (&mut file).take(keep), &mut out)?;
                rows
            }
            // The first write, or another loader has written since: read and merged.
            _ => self.merge_earlier(&mut out)?,
        };
        // The first row of an empty array has no comma before it.
        let skip = if rows == 0 { 1 } else { 0 };
        out.write_all(&self.pending[skip..])?;
        rows += self.pending_rows;
        out.write_all(TAIL)?;
        // No fsync: /run is a tmpfs, gone at power-off anyway; the rename is what readers need.
        let file = out.into_inner().map_err(|e| e.into_error())?;
        let identity = rundir::identity(&file)?;
        drop(file);
        self.run.rename(STATUS_PARTIAL, STATUS_FILE)?;
        self.written = Some((identity, rows));
        self.wrote_once = true;
        Ok(())
    }

    /// Writes `[` and the rows of the `status.json` found to keep: at this run's first write,
    /// other lists' rows unless their list is gone; later (another loader wrote in between),
    /// every row, this run's included. Returns how many.
    fn merge_earlier(&self, out: &mut impl Write) -> io::Result<usize> {
        // A status.json that is not a regular file (a FIFO, a symlink) is not read, and is
        // replaced by the rename.
        let earlier = self.run.read(STATUS_FILE).unwrap_or_default();
        let earlier = earlier.unwrap_or_default();
        let earlier: Vec<&RawValue> = serde_json::from_slice(&earlier).unwrap_or_default();
        let first = !self.wrote_once;
        let kept = earlier.into_iter().filter(|raw| {
            if !first {
                return true;
            }
            let entry: Value = serde_json::from_str(raw.get()).unwrap_or_default();
            entry["list"]
                .as_str()
                .is_some_and(|l| !self.ours.contains(l) && Path::new(l).exists())
        });
        out.write_all(b"[")?;
        let mut rows = 0;
        for raw in kept {
            out.write_all(if rows == 0 { b"\n" } else { b",\n" })?;
            out.write_all(raw.get().as_bytes())?;
            rows += 1;
        }
        Ok(rows)
    }

    /// Puts down or takes away the marker for `row`'s image.
    fn mark(&mut self, row: &Row) -> Result<(), String> {
        if row.state == State::Unknown {
            // Not asked: what an earlier run recorded stays.
            return Ok(());
        }
        if self.markers.is_none() {
            let dir = self
                .run
                .subdir(MARKER_DIR)
                .map_err(|e: RunDirError| e.to_string())?;
            self.markers = Some(dir);
        }
        let Some(markers) = &self.markers else {
            return Ok(());
        };
        let name = marker::name(row.entry.reference.as_str());
        let result = match row.state {
            State::Present | State::Differs => {
                let id = row.image_id.as_deref().unwrap_or_default();
                // A leading `.` is never a marker's (the encoding escapes it).
                let partial = format!(".partial-{}", std::process::id());
                markers.replace(&name, &partial, format!("{id}\n").as_bytes())
            }
            State::Missing => markers.remove(&name),
            State::Unknown => Ok(()),
        };
        result.map_err(|e| e.to_string())
    }

    /// Writes what is still pending; the run is over.
    pub fn finish(mut self) -> bool {
        self.flush();
        !self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_marker_by_the_escaped_reference() {
        let run = Path::new("/run/container-loader");
        assert_eq!(
            marker(run, "quay.io/libpod/alpine:3.10.2"),
            run.join("images/quay.io-libpod-alpine:3.10.2")
        );
        assert_eq!(marker(run, "a/../b"), run.join("images/a-..-b"));
    }
}
