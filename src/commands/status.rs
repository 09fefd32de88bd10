//! `status`: what each entry's archive and image look like now, without changing anything.
//!
//! Meant for the operator at a device's console after a bad boot, and for tools (`--json`).
//! When the engine does not answer, the archive columns are still shown and the run exits 3.

use std::fmt::Write as _;

use crate::cli::Status as Options;
use crate::engine::{short_hex, Engine, Knock, Listing};
use crate::input::archive::Directories;
use crate::input::sizes::Size;
use crate::plan::verify::{self, Compared, Same};
use crate::report::exit::Exit;
use crate::report::log::Log;
use crate::report::stdout::Stdout;
use crate::state::connect::connect;
use crate::state::entries::read_lists;
use crate::state::row::{Configs, Row, State};

pub fn run(options: &Options, json: bool, log: &Log) -> Exit {
    let lists = read_lists(&options.lists, options.images_dir.as_deref(), log);
    let mut engine = match lists.entries.is_empty() {
        true => None,
        false => connect(
            &options.sockets,
            options.engine,
            options.wait,
            options.timeout,
            Knock::Listing,
            log,
        )
        .inspect_err(|e| log.error(e))
        .ok(),
    };
    let listing = engine.as_mut().and_then(Engine::first_listing);
    if let Some(engine) = &engine {
        // On stderr, so that the table and --json on stdout stay as tools read them.
        log.info(format_args!(
            "engine: {} at {}",
            engine.describe(),
            engine.socket.display()
        ));
    }
    let mut dirs = Directories::default();
    let rows: Vec<Row> = lists
        .entries
        .iter()
        .map(|entry| {
            let mut row = Row::new(entry, &mut dirs);
            if let Some(engine) = &engine {
                ask(&mut row, engine, listing.as_ref(), options);
            }
            row
        })
        .collect();
    let mut out = Stdout::default();
    if json {
        let array: Vec<_> = rows.iter().map(Row::to_json).collect();
        let text = serde_json::to_string(&array).expect("plain structs serialize");
        out.write(&format!("{text}\n"));
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
    let archive = match verify::archive_image(row.entry, engine, options.memory_limit) {
        Ok(archive) => archive,
        Err(reason) => return row.errors.push(reason.to_string()),
    };
    if let (State::Present, Some(id)) = (row.state, row.image_id.as_deref()) {
        match verify::compare(row.entry, engine, id, &archive) {
            Ok(Same::Id) => {}
            Ok(Same::Config(config)) => row.configs = Some(configs(config, &archive)),
            Ok(Same::No { config }) => {
                row.state = State::Differs;
                row.configs = config.map(|c| configs(c, &archive));
            }
            Err(reason) => row.errors.push(reason.to_string()),
        }
    }
    row.archive_id = Some(archive.id);
}

fn configs(engine: String, archive: &verify::ArchiveImage) -> Configs {
    Configs {
        engine,
        archive: archive.config.clone(),
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
            .map(short_hex)
            .unwrap_or_else(|| "-".to_owned());
        let archive = if r.archive_present {
            r.entry.archive.clone()
        } else {
            format!("{} (absent)", r.entry.archive)
        };
        lines.push([
            r.entry.place().to_string(),
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
    for r in rows
        .iter()
        .filter(|r| r.state == State::Differs || r.configs.is_some())
    {
        let _ = writeln!(
            out,
            "{}: {}: {}",
            r.entry.place(),
            r.entry.reference,
            verdict(r)
        );
    }
    out
}

/// What `--verify` found for a row whose engine id is not the archive's.
fn verdict(r: &Row) -> String {
    let configs = r.configs.as_ref();
    let unknown = || "?".to_owned();
    let compared = Compared {
        engine_id: r.image_id.clone().unwrap_or_else(unknown),
        engine_config: configs.map(|c| c.engine.clone()),
        archive: r.entry.archive.clone(),
        archive_id: r.archive_id.clone().unwrap_or_else(unknown),
        archive_config: configs.and_then(|c| c.archive.clone()),
    };
    match (configs, r.state) {
        (Some(_), State::Present) => format!("the engine's {}", compared.same_config()),
        _ => compared.differs(),
    }
}
