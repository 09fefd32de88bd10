//! Standard output for `status`, `inspect`, `--help` and `--version`: written through a handle
//! whose errors are values, never `print!`, which panics (and aborts the static build) when the
//! reader has gone (`container-loader inspect ... | head`) or the file is full (`> /dev/full`).
//!
//! A reader that went away is normal for a pipe: the run ends quietly with the exit status it
//! would have had. Any other failure to write is one line on stderr and exit 1, since what the
//! caller asked for did not arrive.

use std::io::{self, Write};

use crate::report::exit::Exit;
use crate::report::log::Log;

/// Standard output as one command writes it: after the first failure nothing more is written.
#[derive(Debug, Default)]
pub struct Stdout {
    failed: Option<io::Error>,
}

impl Stdout {
    /// Writes `text` whole and flushes it, unless an earlier write failed.
    pub fn write(&mut self, text: &str) {
        if self.failed.is_some() {
            return;
        }
        let mut out = io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            self.failed = Some(e);
        }
    }

    /// The exit of a run that would end with `exit`: the same when everything was written or
    /// the reader went away, else 1 after saying why.
    pub fn finish(self, exit: Exit, log: &Log) -> Exit {
        match self.failed {
            None => exit,
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => exit,
            Some(e) => {
                log.error(format_args!("cannot write to standard output: {e}"));
                Exit::Failed
            }
        }
    }
}
