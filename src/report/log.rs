//! Logging: one line per event on stderr, with sd-daemon priority markers in the journal.
//!
//! systemd sets `JOURNAL_STREAM` when stderr is connected to the journal; lines then start
//! with `<3>`, `<4>` or `<6>` so that `journalctl -p err` finds the failures. Anywhere else
//! (a console, an init script) the lines are plain.
//!
//! A line is written as it comes, whole, in one write. Only while a caller holds the lines
//! ([`Log::hold`], for entries answered in microseconds) are info and debug lines gathered and
//! written together, up to [`HELD_MAX`] bytes a write: a no-op boot of 50 images made 50 writes,
//! on a journal stream 50 wake-ups of journald. A warning or an error first writes out what is
//! held, so the order stays as it happened.

use std::fmt::Display;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

/// The most held lines written at once: up to PIPE_BUF (4096 on Linux) a write to a pipe is
/// never interleaved with another writer's, so whole lines stay whole on a shared stderr.
const HELD_MAX: usize = 4096;

/// Lines held back while [`Log::hold`] is on; `None` while every line is written at once.
/// One per process, as stderr is.
static HELD: Mutex<Option<Vec<u8>>> = Mutex::new(None);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

#[derive(Debug, Clone, Copy)]
pub struct Log {
    journal: bool,
    max: Level,
}

impl Log {
    /// `verbosity`: -1 quiet (errors and warnings), 0 normal, 1 verbose.
    pub fn new(verbosity: i8, journal: bool) -> Log {
        let max = match verbosity {
            i8::MIN..=-1 => Level::Warning,
            0 => Level::Info,
            _ => Level::Debug,
        };
        Log { journal, max }
    }

    /// Reads `JOURNAL_STREAM` from the environment.
    pub fn from_env(verbosity: i8) -> Log {
        Log::new(verbosity, std::env::var_os("JOURNAL_STREAM").is_some())
    }

    pub fn line(&self, level: Level, text: impl Display) {
        if level > self.max {
            return;
        }
        let line = if self.journal {
            format!("<{}>{text}\n", level as u8)
        } else {
            format!("{text}\n")
        };
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(lines) if level >= Level::Info && line.len() <= HELD_MAX => {
                if lines.len() + line.len() > HELD_MAX {
                    write_out(lines);
                }
                lines.extend_from_slice(line.as_bytes());
            }
            Some(lines) => {
                write_out(lines);
                write_out(&mut line.into_bytes());
            }
            None => write_out(&mut line.into_bytes()),
        }
    }

    /// From now on, info and debug lines are gathered, until [`Log::release`]: for a stretch
    /// of work that takes microseconds a line. Lines held when the process dies are lost, so a
    /// caller releases before anything that may take long or fail.
    pub fn hold(&self) {
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| Vec::with_capacity(HELD_MAX));
    }

    /// Writes what is held, and every line from now on at once.
    pub fn release(&self) {
        let held = HELD.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut lines) = held {
            write_out(&mut lines);
        }
    }

    pub fn error(&self, text: impl Display) {
        self.line(Level::Error, text)
    }
    pub fn warn(&self, text: impl Display) {
        self.line(Level::Warning, text)
    }
    pub fn info(&self, text: impl Display) {
        self.line(Level::Info, text)
    }
    pub fn debug(&self, text: impl Display) {
        self.line(Level::Debug, text)
    }

    /// Whether debug lines are shown: for details that cost a request to learn.
    pub fn verbose(&self) -> bool {
        self.max >= Level::Debug
    }
}

/// Writes `lines` (whole lines) to stderr in one write, and empties it. Lines from a
/// crash-looping unit never interleave; nothing useful can be done if stderr itself is gone.
fn write_out(lines: &mut Vec<u8>) {
    if !lines.is_empty() {
        let _ = std::io::stderr().lock().write_all(lines);
        lines.clear();
    }
}
