//! `status`: what each entry's archive and image look like now, without changing anything.
//!
//! Meant for the operator at a device's console after a bad boot, and for tools (`--json`).
//! When the engine does not answer, the archive columns are still shown and the run exits 3.

use serde_json::{json, Value};

use crate::archive::{self, Archive};
use crate::cli::Options;
use crate::engine::Engine;
use crate::list::Entry;
use crate::load::{self, Exit};
use crate::log::Log;
use crate::units::Size;

struct Row {
    entry: Entry,
    archive_present: bool,
    format: Option<&'static str>,
    size: Option<u64>,
    image_present: Option<bool>,
    image_id: Option<String>,
    error: Option<String>,
}

pub fn run(options: &Options, json: bool, log: &Log) -> Exit {
    let lists = load::read_lists(options, log);
    let engine = match lists.entries.is_empty() {
        true => None,
        false => load::connect(options, log)
            .inspect_err(|e| log.error(e))
            .ok(),
    };
    let rows: Vec<Row> = lists
        .entries
        .into_iter()
        .map(|entry| row(entry, engine.as_ref()))
        .collect();
    if json {
        let array: Vec<Value> = rows.iter().map(to_json).collect();
        println!("{}", Value::Array(array));
    } else {
        print_table(&rows);
    }
    let failed = lists.invalid_lines > 0
        || rows
            .iter()
            .any(|r| r.error.is_some() || r.image_present == Some(false));
    if lists.unreadable_lists > 0 {
        Exit::Usage
    } else if engine.is_none() && !rows.is_empty() {
        Exit::Unreachable
    } else if failed {
        Exit::Failed
    } else {
        Exit::Done
    }
}

fn row(entry: Entry, engine: Option<&Engine>) -> Row {
    let mut row = Row {
        archive_present: false,
        format: None,
        size: None,
        image_present: None,
        image_id: None,
        error: None,
        entry,
    };
    let mut errors = Vec::new();
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
            if row.archive_present || !matches!(e, archive::ArchiveError::NotFound { .. }) {
                errors.push(e.to_string());
            }
        }
    }
    if let Some(engine) = engine {
        match engine.image_id(&row.entry.reference) {
            Ok(id) => {
                row.image_present = Some(id.is_some());
                row.image_id = id;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        row.error = Some(errors.join("; "));
    }
    row
}

fn to_json(r: &Row) -> Value {
    json!({
        "list": r.entry.list.display().to_string(),
        "line": r.entry.line,
        "archive": r.entry.archive,
        "archive_present": r.archive_present,
        "format": r.format,
        "size": r.size,
        "ref": r.entry.reference.as_str(),
        "image_present": r.image_present,
        "image_id": r.image_id,
        "error": r.error,
    })
}

fn print_table(rows: &[Row]) {
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
        let image = match r.image_present {
            Some(true) => "present",
            Some(false) => "missing",
            None => "unknown",
        };
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
            image.to_owned(),
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
        println!("{}", cells.join("  ").trim_end());
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        println!(
            "{}: {}",
            r.entry.place(),
            r.error.as_deref().unwrap_or_default()
        );
    }
}
