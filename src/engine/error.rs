//! What can go wrong in talking to the engine, in the words an operator needs: which request,
//! what the engine answered, and what to check.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug)]
pub enum EngineError {
    /// No answer to `GET /_ping` within `--wait`: each socket with its last failure, and
    /// how long the loader really waited.
    Unreachable {
        sockets: Vec<(PathBuf, ureq::Error)>,
        waited: Duration,
    },
    /// The request did not complete: socket error, timeout, or a broken answer.
    Request { what: String, source: ureq::Error },
    /// The engine answered, but not with what the API promises for this request.
    Answer {
        what: String,
        status: u16,
        message: String,
    },
    /// The engine refused an upload; its message says why.
    Refused { message: String },
}

impl EngineError {
    /// The request `what` did not complete.
    pub(crate) fn request(what: &str, source: ureq::Error) -> EngineError {
        EngineError::Request {
            what: what.to_owned(),
            source,
        }
    }

    /// The request `what` was answered `status` with something its route never gives.
    pub(crate) fn answer(what: &str, status: u16, message: String) -> EngineError {
        EngineError::Answer {
            what: what.to_owned(),
            status,
            message,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Unreachable { sockets, waited } => {
                let at: Vec<_> = sockets
                    .iter()
                    .map(|(socket, e)| format!("{} ({})", socket.display(), unanswered(e)))
                    .collect();
                write!(
                    f,
                    "engine not reachable at {} after waiting {:.1} s; is docker or podman running? (see --host, --wait)",
                    at.join(" or "),
                    waited.as_secs_f64()
                )
            }
            // A request's total time is out: the engine is hung or far too slow.
            EngineError::Request {
                what,
                source: source @ ureq::Error::Timeout(ureq::Timeout::Global),
            } => write!(
                f,
                "{what}: the engine did not answer in time ({source}; is it hung?)"
            ),
            EngineError::Request { what, source } => write!(f, "{what}: {source}"),
            EngineError::Answer {
                what,
                status,
                message,
            } => write!(f, "{what}: engine answered {status}: {message}"),
            EngineError::Refused { message } => write!(f, "engine refused the archive: {message}"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Unreachable { sockets, .. } => sockets
                .first()
                .map(|(_, e)| e as &(dyn std::error::Error + 'static)),
            EngineError::Request { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a socket did not count as an engine, for the unreachable message.
fn unanswered(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer to GET /_ping in time".to_owned(),
        ureq::Error::StatusCode(status) => format!("GET /_ping answered {status}"),
        e => e.to_string(),
    }
}
