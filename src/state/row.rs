//! An entry's row: where its archive and its image stand, as `status` shows it and as
//! `status.json` records it. The JSON form is [`StatusRow`], the format tools read.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::input::archive::{ArchiveError, Directories, Look};
use crate::input::list::Entry;

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
        f.write_str(self.name())
    }
}

impl State {
    /// The word `status` and `status.json` use.
    pub fn name(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Missing => "missing",
            State::Differs => "differs",
            State::Unknown => "unknown",
        }
    }
}

/// One entry as `status` shows it, and as `/run/container-loader/status.json` records it.
pub struct Row<'e> {
    pub entry: &'e Entry,
    pub archive_present: bool,
    pub format: Option<&'static str>,
    pub size: Option<u64>,
    pub state: State,
    pub image_id: Option<String>,
    /// `--verify`: the id of the archive's image for this entry.
    pub archive_id: Option<String>,
    /// `--verify` where the engine's id is not the archive's and the store's ids are not
    /// configs: the configs compared.
    pub configs: Option<Configs>,
    pub errors: Vec<String>,
}

/// The configs `--verify` compared where the store names images by manifest: the engine's
/// image's, and the archive's image's where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configs {
    pub engine: String,
    pub archive: Option<String>,
}

/// One element of `status --json` and of `status.json`. Its fields are in the order they have
/// always been written (by name), which tools may compare byte for byte; `null` where unknown.
#[derive(Debug, Serialize)]
pub struct StatusRow<'a> {
    /// The entry's archive, as its list names it.
    pub archive: &'a str,
    /// `--verify`: the id of the archive's image for this entry (`sha256:...`).
    pub archive_id: Option<&'a str>,
    /// Whether the archive file is there (a deleted one is normal after a load).
    pub archive_present: bool,
    /// What went wrong with this entry, errors joined by `; `.
    pub error: Option<String>,
    /// `zstd`, `gzip`, `xz` or `tar`, when the archive could be opened.
    pub format: Option<&'a str>,
    /// The engine's id for the reference (`sha256:...`).
    pub image_id: Option<&'a str>,
    /// Whether the engine has an image under the reference; `null` when it could not be asked.
    pub image_present: Option<bool>,
    /// The line of the list the entry is on, from 1.
    pub line: usize,
    /// The list the entry comes from.
    pub list: Cow<'a, str>,
    /// The image reference, as the list writes it.
    #[serde(rename = "ref")]
    pub reference: &'a str,
    /// The archive's size on disk in bytes.
    pub size: Option<u64>,
    /// `present`, `missing`, `differs` or `unknown`.
    pub state: &'static str,
}

impl<'e> Row<'e> {
    /// The archive columns, from the file as it is now (looked at through `dirs`); the image
    /// columns still unknown.
    pub fn new(entry: &'e Entry, dirs: &mut Directories) -> Row<'e> {
        let mut row = Row {
            archive_present: false,
            format: None,
            size: None,
            state: State::Unknown,
            image_id: None,
            archive_id: None,
            configs: None,
            errors: Vec::new(),
            entry,
        };
        match dirs.look(&row.entry.images_dir, &row.entry.archive) {
            Look::Opened { format, size } => {
                row.archive_present = true;
                row.format = Some(format.name());
                row.size = Some(size);
            }
            Look::Unusable(e) => {
                row.archive_present = true;
                row.errors.push(e.to_string());
            }
            // A missing archive is normal once it was loaded and deleted.
            Look::Absent(ArchiveError::NotFound { .. }) => {}
            Look::Absent(e) => row.errors.push(e.to_string()),
        }
        row
    }

    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.state != State::Present
    }

    /// The row as `status --json` and `status.json` write it.
    pub fn to_json(&self) -> StatusRow<'_> {
        let image_present = match self.state {
            State::Present | State::Differs => Some(true),
            State::Missing => Some(false),
            State::Unknown => None,
        };
        StatusRow {
            archive: &self.entry.archive,
            archive_id: self.archive_id.as_deref(),
            archive_present: self.archive_present,
            error: (!self.errors.is_empty()).then(|| self.errors.join("; ")),
            format: self.format,
            image_id: self.image_id.as_deref(),
            image_present,
            line: self.entry.line,
            // As `display()` writes it, without a copy when the path is UTF-8.
            list: self.entry.list.to_string_lossy(),
            reference: self.entry.reference.as_str(),
            size: self.size,
            state: self.state.name(),
        }
    }
}
