//! Logging: one line per event on stderr, with sd-daemon priority markers in the journal.
//!
//! systemd sets `JOURNAL_STREAM` when stderr is connected to the journal; lines then start
//! with `<3>`, `<4>` or `<6>` so that `journalctl -p err` finds the failures. Anywhere else
//! (a console, an init script) the lines are plain.

use std::fmt::Display;
use std::io::Write;

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
        // One write per line, so lines from a crash-looping unit never interleave; nothing
        // useful can be done if stderr itself is gone.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
