//! `scan`: writes an image.list for the archives in a directory, from the references inside
//! them. A build-time helper: what a recipe would otherwise script, with the loader's own
//! reading of archives, so the list and the loader never disagree.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::process;

use crate::cli::Scan;
use crate::image::contents::{inspect_file, Unreadable};
use crate::input::reference::{RefError, Reference};
use crate::report::exit::Exit;
use crate::report::log::Log;

pub fn run(scan: &Scan, log: &Log) -> Exit {
    let mut names: Vec<String> = match fs::read_dir(&scan.dir) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            log.error(format_args!("{}: {e}", scan.dir.display()));
            return Exit::Usage;
        }
    };
    names.sort();
    let mut failed = false;
    let mut list = String::new();
    for name in &names {
        match lines_for(scan, name, log) {
            Ok(line) => list.push_str(&line),
            Err(why) => {
                log.error(format_args!("{}: {why}", scan.dir.join(name).display()));
                failed = true;
            }
        }
    }
    for name in scan.refs.keys().filter(|k| !names.contains(k)) {
        log.error(format_args!(
            "--ref {name}=...: no such archive in {}",
            scan.dir.display()
        ));
        failed = true;
    }
    if let Err(e) = write(scan.output.as_deref(), &list) {
        log.error(format_args!("writing the list: {e}"));
        return Exit::Usage;
    }
    let lines = list.lines().count();
    let archives = names.len();
    let to = match &scan.output {
        Some(path) => path.display().to_string(),
        None => "standard output".to_owned(),
    };
    log.info(format_args!(
        "{lines} line{} for {archives} file{} written to {to}",
        if lines == 1 { "" } else { "s" },
        if archives == 1 { "" } else { "s" },
    ));
    if failed {
        Exit::Failed
    } else {
        Exit::Done
    }
}

/// Why an archive gets no line; the caller names the archive's path.
#[derive(Debug)]
enum Skipped {
    /// A name image.list cannot hold.
    Name,
    Unreadable(Unreadable),
    /// No reference inside, and none given.
    Unnamed {
        name: String,
    },
    Reference {
        reference: String,
        source: RefError,
    },
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::Name => {
                f.write_str("an archive name in image.list cannot hold blanks or start with '#'")
            }
            Skipped::Unreadable(reason) => reason.fmt(f),
            Skipped::Unnamed { name } => write!(
                f,
                "the archive names no image; give it one with --ref {name}=NAME:TAG"
            ),
            Skipped::Reference { reference, source } => {
                write!(f, "invalid image reference \"{reference}\": {source}")
            }
        }
    }
}

impl std::error::Error for Skipped {}

fn lines_for(scan: &Scan, name: &str, log: &Log) -> Result<String, Skipped> {
    if name.contains(char::is_whitespace) || name.starts_with('#') {
        return Err(Skipped::Name);
    }
    let inspected = inspect_file(&scan.dir.join(name), scan.memory_limit)
        .map_err(|e| Skipped::Unreadable(e.reason))?;
    // Every name of every image: a line per name, so that each is checked at boot. The
    // loader loads the archive for the first line it misses, and finds the others present.
    let mut inside: Vec<String> = Vec::new();
    for reference in inspected.images.iter().flat_map(|i| &i.references) {
        if !inside.contains(reference) {
            inside.push(reference.clone());
        }
    }
    log.debug(format_args!(
        "{}: {}, {}, {} image{}: {}",
        scan.dir.join(name).display(),
        inspected.format,
        inspected.layout,
        inspected.images.len(),
        if inspected.images.len() == 1 { "" } else { "s" },
        match inside.is_empty() {
            true => "no reference".to_owned(),
            false => inside.join(", "),
        }
    ));
    let references = match scan.refs.get(name) {
        Some(given) => {
            log.debug(format_args!(
                "{}: {given}, given by --ref",
                scan.dir.join(name).display()
            ));
            vec![given.clone()]
        }
        None if !inside.is_empty() => inside,
        None => {
            return Err(Skipped::Unnamed {
                name: name.to_owned(),
            })
        }
    };
    let mut lines = String::new();
    for reference in references {
        if let Err(source) = Reference::parse(&reference) {
            return Err(Skipped::Reference { reference, source });
        }
        lines.push_str(&format!("{name} {reference}\n"));
    }
    Ok(lines)
}

/// Writes a new file next to the target and renames it into place, so a reader never sees half
/// a list. The file must be new: `create_new` (O_EXCL) fails on anything already at its name, a
/// symbolic link included, where a plain create would write through a link planted there to its
/// target. Its name carries the process ID, so that two scans writing one
/// list do not share it; whatever is found at it is left alone, and the scan fails.
fn write(output: Option<&Path>, list: &str) -> io::Result<()> {
    let Some(path) = output else {
        return io::stdout().lock().write_all(list.as_bytes());
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        ));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".{}.tmp", process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "{}: exists already, and is left as it is (the list is written to a new \
                     file of that name, then renamed into place)",
                    tmp.display()
                ),
            ))
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", tmp.display()))),
    };
    let written = file
        .write_all(list.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("renaming {} to {}: {e}", tmp.display(), path.display()),
                )
            })
        });
    if written.is_err() {
        // Ours, created above: nothing else is removed.
        let _ = fs::remove_file(&tmp);
    }
    written
}
