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
//!
//! Most runs find what the last one left: every image present, as it was. So nothing is
//! written that is already right. `status.json` is read once, at the first entry (at most
//! [`STATUS_MAX`] bytes), noting where this run's lists' rows lie in it; each row recorded is
//! compared with the one at its place there. The file is not rewritten while those rows are,
//! in order and byte for byte, the rows recorded so far (and no other list's rows are to be
//! dropped); the first row that differs has it written as before, with the rows matched. A
//! marker whose entry's row is unchanged and which `images/` (read once) lists as a regular
//! file is left alone: the run that wrote that row put it down. Any other marker is read, and
//! written only if it does not hold the id.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::input::archive::Directories;
use crate::input::bounded;
use crate::input::list::Entry;
use crate::report::log::Log;
use crate::state::lock;
use crate::state::marker;
use crate::state::row::{Row, State};
use crate::state::rundir::{self, RunDir, RunDirError};

/// The run's entries, as `status --json` prints them, merged with other lists' entries.
pub const STATUS_FILE: &str = "status.json";
/// The largest `status.json` read back: some 13,000 rows, more than any device's lists hold.
/// A larger one was not written by the loader; it is written anew (other lists' rows with it
/// until their next run) rather than read into memory.
const STATUS_MAX: u64 = 4 << 20;
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
pub struct Record {
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
    /// The regular files in `images/` when it was opened: a marker not among them is not read
    /// first. `None` if they could not be read: every marker is read before it is written.
    marker_names: Option<HashSet<Vec<u8>>>,
    /// Where a marker is written before it is renamed into place (one name per process).
    marker_partial: String,
    /// The images directories the rows' archive columns are read through.
    dirs: Directories,
    /// Rows finished but not yet in `status.json`, each preceded by `,\n`.
    pending: Vec<u8>,
    pending_rows: usize,
    /// The `status.json` this run last wrote (device, inode) and how many rows it holds:
    /// while it is still there, new rows are added to a copy of it, without reading it again.
    written: Option<((u64, u64), usize)>,
    /// Whether this run has written `status.json` once: from then on, its lists' rows there are
    /// this run's, not an earlier run's.
    wrote_once: bool,
    /// Whether the `status.json` found before the first entry was looked at.
    looked: bool,
    /// That file, to compare this run's rows with.
    earlier: Option<Earlier>,
    /// How many rows this run has recorded.
    recorded: usize,
    last_write: Instant,
    /// How long the last write took.
    last_cost: Duration,
    /// Rows recorded again after a later load moved their reference (see [`Recorder::revise`]),
    /// by list and line, to put in place of the rows first written when the run ends.
    revised: Vec<((String, usize), Vec<u8>)>,
    failed: bool,
}

impl<'a> Recorder<'a> {
    pub fn new(run: &'a RunDir, lists: &[PathBuf], log: Log) -> Recorder<'a> {
        Recorder {
            run,
            log,
            ours: lists.iter().map(|l| l.display().to_string()).collect(),
            markers: None,
            marker_names: None,
            // A leading `.` is never a marker's (the encoding escapes it).
            marker_partial: format!(".partial-{}", std::process::id()),
            dirs: Directories::default(),
            pending: Vec::new(),
            pending_rows: 0,
            written: None,
            wrote_once: false,
            looked: false,
            earlier: None,
            recorded: 0,
            last_write: Instant::now(),
            last_cost: Duration::ZERO,
            revised: Vec::new(),
            failed: false,
        }
    }

    /// Records `entry`'s record: its marker now, its row in `status.json` now unless
    /// `batched` (it was answered without asking the engine; see [`BATCH`]).
    pub fn entry(&mut self, entry: &Entry, record: &Record, batched: bool) {
        let row = self.row(entry, record);
        let start = self.pending.len();
        self.pending.extend_from_slice(b",\n");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.pending, &row.to_json());
        self.pending_rows += 1;
        let unchanged = self.unchanged(start + 2);
        // Every entry puts down or takes away its reference's marker: where two lines name
        // one reference, the marker follows the last, as the image under the name does.
        self.mark_or_report(&row, unchanged);
        if !batched
            || self.pending.len() >= PENDING_MAX
            || self.last_write.elapsed() >= BATCH.max(self.last_cost * 10)
        {
            self.flush();
        }
    }

    /// Records `entry` again with `record`: a later load of the run moved its reference. Its
    /// marker follows at once; its row replaces the one written when the run ends.
    pub fn revise(&mut self, entry: &Entry, record: &Record) {
        let row = self.row(entry, record);
        self.mark_or_report(&row, false);
        let mut json = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut json, &row.to_json());
        let key = (entry.list.display().to_string(), entry.line);
        self.revised.retain(|(k, _)| *k != key);
        self.revised.push((key, json));
    }

    /// `entry`'s row with `record`, its archive columns as the file is now.
    fn row<'e>(&mut self, entry: &'e Entry, record: &Record) -> Row<'e> {
        let mut row = Row::new(entry, &mut self.dirs);
        row.state = record.state;
        row.image_id.clone_from(&record.image_id);
        row.archive_id.clone_from(&record.archive_id);
        row.errors.extend(record.error.clone());
        row
    }

    /// [`Recorder::mark`], a failure logged and remembered.
    fn mark_or_report(&mut self, row: &Row, unchanged: bool) {
        if let Err(e) = self.mark(row, unchanged) {
            self.failed = true;
            let entry = row.entry;
            self.log.error(format_args!(
                "{}: {}: cannot record its marker {}: {e}",
                entry.place(),
                entry.reference,
                marker(self.run.path(), entry.reference.as_str()).display()
            ));
        }
    }

    /// Whether the row just recorded, `pending[at..]`, is the one at its place among this
    /// run's lists' rows in the `status.json` found.
    fn unchanged(&mut self, at: usize) -> bool {
        if !self.looked {
            self.looked = true;
            self.earlier = Earlier::read(self.run, &self.ours);
        }
        let index = self.recorded;
        self.recorded += 1;
        let Some(earlier) = &mut self.earlier else {
            return false;
        };
        let same = earlier.row(index) == Some(&self.pending[at..]);
        if !same {
            earlier.differs = true;
        }
        same
    }

    /// Writes the rows not yet in `status.json`.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        if !self.already_there() {
            self.write_or_report();
        }
        self.pending.clear();
        self.pending_rows = 0;
        self.last_write = Instant::now();
        self.last_cost = self.last_write - started;
    }

    /// Writes `status.json` with the pending rows; a failure is logged and makes the run fail.
    fn write_or_report(&mut self) {
        if let Err(e) = self.write() {
            self.failed = true;
            self.written = None;
            self.log.error(format_args!(
                "cannot record the result in {}: {e}",
                self.run.join(STATUS_FILE).display()
            ));
        }
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
            _ => {
                let mut rows = self.merge_earlier(&mut out)?;
                // The rows this run matched in the file found, and so did not write yet.
                if let Some(earlier) = &mut self.earlier {
                    rows += earlier.copy_matched(rows, &mut out)?;
                }
                rows
            }
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
        // The rows matched in the file found are in the new one.
        if let Some(earlier) = &mut self.earlier {
            earlier.matched = 0;
        }
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
        let earlier = self.run.read(STATUS_FILE, STATUS_MAX).unwrap_or_default();
        let earlier = earlier.unwrap_or_default();
        let earlier: Vec<&RawValue> = serde_json::from_slice(&earlier).unwrap_or_default();
        let first = !self.wrote_once;
        let mut lists = Lists::default();
        let kept = earlier
            .into_iter()
            .filter(|raw| !first || lists.keep(raw, &self.ours) == Some(Keep::Other));
        out.write_all(b"[")?;
        let mut rows = 0;
        for raw in kept {
            out.write_all(if rows == 0 { b"\n" } else { b",\n" })?;
            out.write_all(raw.get().as_bytes())?;
            rows += 1;
        }
        Ok(rows)
    }

    /// Whether `status.json` holds the pending rows already: every row this run recorded is
    /// the one at its place there, and the file is still the one found.
    fn already_there(&mut self) -> bool {
        if self.wrote_once {
            return false;
        }
        let Some(earlier) = &mut self.earlier else {
            return false;
        };
        // Replaced by another loader since: written, merged with what it wrote.
        if earlier.differs || self.run.identity(STATUS_FILE) != Some(earlier.identity) {
            return false;
        }
        earlier.matched += self.pending_rows;
        true
    }

    /// Puts down or takes away the marker for `row`'s image; `unchanged`: the row is the one
    /// the `status.json` found holds.
    fn mark(&mut self, row: &Row, unchanged: bool) -> Result<(), MarkError> {
        if row.state == State::Unknown {
            // Not asked: what an earlier run recorded stays.
            return Ok(());
        }
        if self.markers.is_none() {
            let dir = self.run.subdir(MARKER_DIR).map_err(MarkError::Dir)?;
            self.marker_names = dir.regular_files().ok();
            self.markers = Some(dir);
        }
        let Some(markers) = &self.markers else {
            return Ok(());
        };
        let name = marker::name(row.entry.reference.as_str());
        let result = match row.state {
            State::Present | State::Differs => {
                let id = row.image_id.as_deref().unwrap_or_default();
                let content = format!("{id}\n");
                let listed = self
                    .marker_names
                    .as_ref()
                    .map(|names| names.contains(name.as_bytes()));
                // Most runs find the marker the run that wrote the same row put down: left as
                // it is, unread.
                if unchanged && listed == Some(true) {
                    return Ok(());
                }
                // At a boot's first run, `images/` is empty, and nothing is read.
                if listed != Some(false) && markers.holds(&name, content.as_bytes()) {
                    return Ok(());
                }
                markers.replace(&name, &self.marker_partial, content.as_bytes())
            }
            State::Missing => markers.remove(&name),
            State::Unknown => Ok(()),
        };
        result.map_err(MarkError::File)
    }

    /// Writes what is still pending; the run is over.
    pub fn finish(mut self) -> bool {
        self.flush();
        // The file found holds more rows of this run's lists than the run recorded (a list
        // got shorter): written without them.
        if !self.wrote_once
            && self
                .earlier
                .as_ref()
                .is_some_and(|e| e.matched < e.ours.len())
        {
            self.write_or_report();
        }
        if !self.revised.is_empty() {
            if let Err(e) = self.write_revised() {
                self.failed = true;
                self.log.error(format_args!(
                    "cannot record the result in {}: {e}",
                    self.run.join(STATUS_FILE).display()
                ));
            }
        }
        !self.failed
    }

    /// Writes `status.json` again with the revised rows in place of those first recorded.
    /// Rare (a load moved a name an earlier line was recorded under), so the file is read whole.
    fn write_revised(&mut self) -> io::Result<()> {
        let _lock = lock::acquire(self.run, STATUS_LOCK, || {})?;
        let bytes = self.run.read(STATUS_FILE, STATUS_MAX)?.unwrap_or_default();
        let rows: Vec<&RawValue> = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        let mut out = BufWriter::new(self.run.create_new(STATUS_PARTIAL)?);
        out.write_all(b"[")?;
        for (i, raw) in rows.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            let key = placed(raw);
            let revised = self.revised.iter().find(|(k, _)| Some(k) == key.as_ref());
            out.write_all(revised.map_or(raw.get().as_bytes(), |(_, json)| json))?;
        }
        out.write_all(TAIL)?;
        out.into_inner().map_err(|e| e.into_error())?;
        self.run.rename(STATUS_PARTIAL, STATUS_FILE)?;
        self.written = None;
        Ok(())
    }
}

/// Where a row of `status.json` comes from: its list and line.
fn placed(raw: &RawValue) -> Option<(String, usize)> {
    let row: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    let list = row["list"].as_str()?.to_owned();
    Some((list, usize::try_from(row["line"].as_u64()?).ok()?))
}

/// The `status.json` found before this run's first entry.
struct Earlier {
    /// Its bytes (at most [`STATUS_MAX`]): the run's rows are compared with its rows, and the
    /// rows matched copied from it should the file have to be written.
    bytes: Vec<u8>,
    identity: (u64, u64),
    /// Where each row of this run's lists lies in it (offset, length), in the file's order.
    ours: Vec<(usize, usize)>,
    /// Whether a row this run recorded is not the one at its place.
    differs: bool,
    /// How many of this run's rows were not written, the file holding them already.
    matched: usize,
}

impl Earlier {
    /// The `status.json` in `run`, if this run may leave it as it is while its rows match:
    /// none when it is missing, larger than [`STATUS_MAX`] or not a JSON array of rows, or
    /// when another list's rows in it are to be dropped (that list is gone).
    fn read(run: &RunDir, ours: &HashSet<String>) -> Option<Earlier> {
        let file = run.open_read(STATUS_FILE).ok()??;
        let identity = rundir::identity(&file).ok()?;
        let bytes = bounded::read(&file, STATUS_MAX).ok()?;
        let rows: Vec<&RawValue> = serde_json::from_slice(&bytes).ok()?;
        let mut lists = Lists::default();
        let mut mine = Vec::new();
        for raw in rows {
            match lists.keep(raw, ours)? {
                Keep::Ours => {
                    let text = raw.get();
                    // Where the row's text lies in the bytes it was parsed from.
                    let offset = text.as_ptr() as usize - bytes.as_ptr() as usize;
                    mine.push((offset, text.len()));
                }
                Keep::Other => {}
            }
        }
        Some(Earlier {
            bytes,
            identity,
            ours: mine,
            differs: false,
            matched: 0,
        })
    }

    /// The text of row `index` of ours; `None` past the last.
    fn row(&self, index: usize) -> Option<&[u8]> {
        let &(offset, len) = self.ours.get(index)?;
        self.bytes.get(offset..offset + len)
    }

    /// Writes the rows matched so far after `rows` rows already written; returns how many.
    fn copy_matched(&self, rows: usize, out: &mut impl Write) -> io::Result<usize> {
        for i in 0..self.matched {
            let text = self.row(i).ok_or(io::ErrorKind::UnexpectedEof)?;
            out.write_all(if rows + i == 0 { b"\n" } else { b",\n" })?;
            out.write_all(text)?;
        }
        Ok(self.matched)
    }
}

/// Whose a row of `status.json` is, for a run over some lists.
#[derive(Debug, PartialEq, Eq)]
enum Keep {
    /// Of one of the run's lists: replaced by the run's own.
    Ours,
    /// Of another list that is still there: kept.
    Other,
}

/// The lists named in `status.json`, each looked for once.
#[derive(Default)]
struct Lists {
    exists: HashMap<String, bool>,
}

impl Lists {
    /// Whose `raw` is; `None` for a row to drop (its list is gone, or it names none).
    fn keep(&mut self, raw: &RawValue, ours: &HashSet<String>) -> Option<Keep> {
        /// Only the field that says whose a row is.
        #[derive(Deserialize)]
        struct Listed<'a> {
            #[serde(borrow)]
            list: Cow<'a, str>,
        }
        let listed: Listed = serde_json::from_str(raw.get()).ok()?;
        let list = listed.list.as_ref();
        if ours.contains(list) {
            return Some(Keep::Ours);
        }
        let exists = match self.exists.get(list) {
            Some(&exists) => exists,
            None => {
                let exists = Path::new(list).exists();
                self.exists.insert(list.to_owned(), exists);
                exists
            }
        };
        exists.then_some(Keep::Other)
    }
}

/// Why a marker could not be put down or taken away: the directory of markers, or the
/// marker file itself.
#[derive(Debug)]
enum MarkError {
    Dir(RunDirError),
    File(io::Error),
}

impl std::fmt::Display for MarkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MarkError::Dir(e) => e.fmt(f),
            MarkError::File(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MarkError {}

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
