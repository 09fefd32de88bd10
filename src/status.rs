//! `status`: what each entry's archive and image look like now, without changing anything.
//!
//! Meant for the operator at a device's console after a bad boot, and for tools (`--json`).
//! When the engine does not answer, the archive columns are still shown and the run exits 3.

use std::fmt::{self, Write as _};

use serde_json::{json, Value};

use crate::archive::{self, Archive, ArchiveError};
use crate::cli::Options;
use crate::engine::{Engine, Listing};
use crate::list::Entry;
use crate::load::{self, Exit};
use crate::log::Log;
use crate::manifest::{self, Match};
use crate::stdout::Stdout;
use crate::units::Size;

/// Where an entry's image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The engine has an image under the entry's reference (with `--verify`: the archive's).
    Present,
    Missing,
    /// `--verify`: the engine has the reference, but as another image than the archive's.
    Differs,
    /// The engine could not be asked.
    Unknown,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Present => "present",
            State::Missing => "missing",
            State::Differs => "differs",
            State::Unknown => "unknown",
        })
    }
}

/// One entry as `status` shows it, and as `/run/container-loader/status.json` records it.
pub struct Row {
    pub entry: Entry,
    pub archive_present: bool,
    pub format: Option<&'static str>,
    pub size: Option<u64>,
    pub state: State,
    pub image_id: Option<String>,
    /// `--verify`: the id of the archive's image for this entry.
    pub archive_id: Option<String>,
    pub errors: Vec<String>,
}

impl Row {
    /// The archive columns, from the file as it is now; the image columns still unknown.
    pub fn new(entry: Entry) -> Row {
        let mut row = Row {
            archive_present: false,
            format: None,
            size: None,
            state: State::Unknown,
            image_id: None,
            archive_id: None,
            errors: Vec::new(),
            entry,
        };
        match Archive::open(&row.entry.images_dir, &row.entry.archive) {
            Ok(a) => {
                row.archive_present = true;
                row.format = Some(a.format.name());
                row.size = Some(a.size);
            }
            Err(e) => {
                // A missing archive is normal once it was loaded and deleted.
                row.archive_present =
                    archive::locate(&row.entry.images_dir, &row.entry.archive).is_ok();
                if row.archive_present || !matches!(e, ArchiveError::NotFound { .. }) {
                    row.errors.push(e.to_string());
                }
            }
        }
        row
    }

    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.state != State::Present
    }

    pub fn to_json(&self) -> Value {
        let error = (!self.errors.is_empty()).then(|| self.errors.join("; "));
        let image_present = match self.state {
            State::Present | State::Differs => Some(true),
            State::Missing => Some(false),
            State::Unknown => None,
        };
        json!({
            "list": self.entry.list.display().to_string(),
            "line": self.entry.line,
            "archive": self.entry.archive,
            "archive_present": self.archive_present,
            "format": self.format,
            "size": self.size,
            "ref": self.entry.reference.as_str(),
            "state": self.state.to_string(),
            "image_present": image_present,
            "image_id": self.image_id,
            "archive_id": self.archive_id,
            "error": error,
        })
    }
}

pub fn run(options: &Options, json: bool, log: &Log) -> Exit {
    let lists = load::read_lists(options, log);
    let engine = match lists.entries.is_empty() {
        true => None,
        false => load::connect(options, log)
            .inspect_err(|e| log.error(e))
            .ok(),
    };
    if let Some(engine) = &engine {
        // On stderr, so that the table and --json on stdout stay as tools read them.
        log.info(format_args!(
            "engine: {} at {}",
            engine.describe(),
            engine.socket.display()
        ));
    }
    let listing = engine.as_ref().and_then(Engine::listing);
    let rows: Vec<Row> = lists
        .entries
        .into_iter()
        .map(|entry| {
            let mut row = Row::new(entry);
            if let Some(engine) = &engine {
                ask(&mut row, engine, listing.as_ref(), options);
            }
            row
        })
        .collect();
    let mut out = Stdout::default();
    if json {
        let array: Vec<Value> = rows.iter().map(Row::to_json).collect();
        out.write(&format!("{}\n", Value::Array(array)));
    } else {
        out.write(&table(&rows));
    }
    let exit = if lists.unreadable_lists > 0 {
        Exit::Usage
    } else if engine.is_none() && !rows.is_empty() {
        Exit::Unreachable
    } else if lists.invalid_lines > 0 || rows.iter().any(Row::failed) {
        Exit::Failed
    } else {
        Exit::Done
    };
    out.finish(exit, log)
}

/// The image columns: the engine's id for the reference, and with `--verify` the archive's.
fn ask(row: &mut Row, engine: &Engine, listing: Option<&Listing>, options: &Options) {
    let image = &row.entry.reference;
    let id = match listing.and_then(|l| l.id_of(image)) {
        Some(id) => Ok(Some(id.to_owned())),
        None => engine.image_id(image),
    };
    match id {
        Ok(id) => {
            row.state = match id {
                Some(_) => State::Present,
                None => State::Missing,
            };
            row.image_id = id;
        }
        Err(e) => row.errors.push(e.to_string()),
    }
    if !options.verify || !row.archive_present {
        return;
    }
    match archive_id(&row.entry, engine, options.memory_limit) {
        Ok(id) => {
            if row.state == State::Present && row.image_id.as_ref() != Some(&id) {
                row.state = State::Differs;
            }
            row.archive_id = Some(id);
        }
        Err(reason) => row.errors.push(reason),
    }
}

/// The id `engine` gives the image that `entry`'s archive holds for its reference (the config
/// digest, or the manifest digest on docker's containerd image store), read from the whole
/// archive; why not, as a message that names the archive.
pub fn archive_id(entry: &Entry, engine: &Engine, memory_limit: u64) -> Result<String, String> {
    let name = &entry.archive;
    let archive = Archive::open(&entry.images_dir, name).map_err(|e| e.to_string())?;
    let images = manifest::read(archive.decoder(memory_limit))
        .map_err(|e| match crate::decode::DecodeError::find(&e) {
            Some(d) => format!("cannot verify against {name}: {d}"),
            None => format!("cannot verify against {name}: {e}"),
        })?
        .ok_or_else(|| format!("cannot verify against {name}: it describes no image"))?;
    let image = match images.find(&entry.reference) {
        Match::Named(image) | Match::Only(image) => image,
        Match::Ambiguous(n) => {
            return Err(format!(
                "cannot verify against {name}: it holds {n} images, none named {}",
                entry.reference
            ))
        }
        Match::Empty => return Err(format!("cannot verify against {name}: it holds no image")),
    };
    match engine.id_for(image) {
        Ok(Some(id)) => Ok(id.to_owned()),
        Ok(None) => Err(format!(
            "cannot verify against {name}: its image config or manifest is missing"
        )),
        Err(e) => Err(format!("cannot verify against {name}: {e}")),
    }
}

/// The table `status` prints, with a line per error and per image that differs.
fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut lines = vec![[
        "PLACE".to_owned(),
        "REF".to_owned(),
        "IMAGE".to_owned(),
        "ID".to_owned(),
        "ARCHIVE".to_owned(),
        "FORMAT".to_owned(),
        "SIZE".to_owned(),
    ]];
    for r in rows {
        let image = r.state.to_string();
        let id = r
            .image_id
            .as_deref()
            .map(|id| id.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_else(|| "-".to_owned());
        let archive = if r.archive_present {
            r.entry.archive.clone()
        } else {
            format!("{} (absent)", r.entry.archive)
        };
        lines.push([
            r.entry.place(),
            r.entry.reference.to_string(),
            image,
            id,
            archive,
            r.format.unwrap_or("-").to_owned(),
            r.size.map_or("-".to_owned(), |s| Size(s).to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    for r in rows.iter().filter(|r| !r.errors.is_empty()) {
        let _ = writeln!(out, "{}: {}", r.entry.place(), r.errors.join("; "));
    }
    for r in rows.iter().filter(|r| r.state == State::Differs) {
        let _ = writeln!(
            out,
            "{}: {}: the engine has {}, {} holds {}",
            r.entry.place(),
            r.entry.reference,
            r.image_id.as_deref().unwrap_or("?"),
            r.entry.archive,
            r.archive_id.as_deref().unwrap_or("?")
        );
    }
    out
}
