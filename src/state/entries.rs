//! The entries of a run: every list read, its invalid lines and unreadable lists reported and
//! counted, since `load` and `status` both exit by those counts.

use std::path::{Path, PathBuf};

use crate::input::list::{self, Entry};
use crate::report::log::Log;

/// All entries of all lists, after reporting the invalid lines and unreadable lists.
pub struct Entries {
    pub entries: Vec<Entry>,
    pub invalid_lines: usize,
    pub unreadable_lists: usize,
}

/// Reads `lists` in order, archives relative to `images_dir` when given (else each list's
/// directory); what cannot be used is logged as an error here.
pub fn read_lists(lists: &[PathBuf], images_dir: Option<&Path>, log: &Log) -> Entries {
    let mut all = Entries {
        entries: Vec::new(),
        invalid_lines: 0,
        unreadable_lists: 0,
    };
    for path in lists {
        match list::read(path, images_dir) {
            Ok(parsed) => {
                for bad in &parsed.invalid {
                    log.error(bad);
                }
                all.invalid_lines += parsed.invalid.len();
                all.entries.extend(parsed.entries);
            }
            Err(e) => {
                log.error(&e);
                all.unreadable_lists += 1;
            }
        }
    }
    all
}
