//! Finding the engine: every candidate socket is knocked on at once until one answers or
//! `--wait` is over, and the first answer's headers tell which engine it is (podman sends
//! `Libpod-Api-Version` with every answer, docker none) and its version (`Server`). Telling
//! the engines apart by a header saves a `GET /version`, which podman answers only after
//! asking conmon and the OCI runtime for theirs (half a second on every boot).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::api::{self, is_api_version, Api, PING};
use super::http::{answer, Client};
use super::{Engine, EngineError, Kind, Listing, LIBPOD_FALLBACK_VERSION, NAME_MAX};

/// How often to knock while waiting for the engine to come up.
const WAIT_STEP: Duration = Duration::from_millis(200);
/// Least time one `GET /_ping` is given, so `--wait 0` (or a knock at the very end of
/// `--wait`) still asks once instead of timing out before it starts.
const PING_MIN: Duration = Duration::from_secs(1);
/// How long a socket that answered waits for one earlier in the list whose knock is still out:
/// the order decides which engine a run uses when both answer (a device with docker and
/// podman), and an engine that is up answers `GET /_ping` in milliseconds; a silent one holds
/// the others up no longer than this.
const PREFER_EARLIER: Duration = Duration::from_millis(500);

/// What a socket is first asked, to tell whether an engine answers there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knock {
    /// `GET /_ping`.
    Ping,
    /// The image listing, for a caller that asks it next anyway: a no-op boot then waits for
    /// one answer instead of two (docs/performance.md). An engine that answers it otherwise
    /// than with a listing is pinged.
    Listing,
}

/// What the first answer of a socket told (`GET /_ping`, or the listing: both engines send the
/// same headers with every answer).
struct Pong {
    /// podman's libpod API version (`Libpod-Api-Version`); docker sends none.
    libpod: Option<String>,
    /// `Server: Docker/26.1.5+dfsg1 (linux)`, `Server: Libpod/5.4.2 (linux)`.
    server: Option<String>,
    /// The listing, when that was the knock and it could be read.
    listing: Option<Listing>,
}

/// A knock's result, by the index of its socket.
type Answer = (usize, Result<Pong, ureq::Error>);

/// One socket being knocked on.
struct Candidate {
    engine: Engine,
    /// When it is knocked on next; `None` while a knock is out, or after `--wait`.
    due: Option<Instant>,
    knocking: bool,
    pong: Option<Pong>,
    /// Its last failure, for the unreachable message.
    error: Option<ureq::Error>,
}

/// The sockets being knocked on, and the answers coming back.
struct Knocks {
    candidates: Vec<Candidate>,
    /// The listing each knock asks first, if any; else the knock is a ping.
    listing: Option<String>,
    /// The end of `--wait`.
    deadline: Instant,
    answers: Sender<Answer>,
    answered: Receiver<Answer>,
    /// Until when an answer waits for the knocks still out on earlier sockets.
    prefer_until: Option<Instant>,
    /// How many knocks are out.
    out: usize,
}

impl Engine {
    /// Waits up to `wait` for an engine to answer on one of `sockets`, then learns which
    /// engine it is unless `kind` says. Every socket is asked at once, each on a thread of its
    /// own (one socket alone without one), and asked again [`WAIT_STEP`] after each failure
    /// until `wait` is over. The engine is the first socket in the list that answers; one that
    /// answers while an earlier one's knock is still out waits for it up to [`PREFER_EARLIER`].
    /// A knock's answer may take until the end of `wait` (at least [`PING_MIN`]): a socket that
    /// accepts and stays silent costs no more than that, and holds up the others no longer than
    /// [`PREFER_EARLIER`]. `timeout` bounds how long the engine may stay silent in a request.
    /// With [`Knock::Listing`], the listing that answered is kept for [`Engine::first_listing`].
    pub fn connect(
        sockets: &[PathBuf],
        kind: Option<Kind>,
        wait: Duration,
        timeout: Duration,
        knock: Knock,
    ) -> Result<Engine, EngineError> {
        let start = Instant::now();
        let (answers, answered) = mpsc::channel();
        let mut knocks = Knocks {
            candidates: sockets
                .iter()
                .map(|s| Candidate {
                    engine: Engine::new(s, kind, timeout),
                    due: Some(start),
                    knocking: false,
                    pong: None,
                    error: None,
                })
                .collect(),
            listing: (knock == Knock::Listing).then(|| Api::knock_listing(kind)),
            deadline: start + wait,
            answers,
            answered,
            prefer_until: None,
            out: 0,
        };
        loop {
            if let Some((engine, pong)) = knocks.chosen() {
                return Ok(engine.identify(kind, pong));
            }
            knocks.knock_due();
            match knocks.next_answer() {
                None => break,
                Some(None) => {}
                Some(Some((i, result))) => knocks.take(i, result),
            }
        }
        Err(knocks.unreachable(start.elapsed()))
    }

    /// An engine at `socket` not yet heard from: of `kind` if said, else taken for docker.
    fn new(socket: &Path, kind: Option<Kind>, timeout: Duration) -> Engine {
        let kind = kind.unwrap_or(Kind::Docker);
        Engine {
            http: Client::new(socket, timeout),
            api: Api::of(kind, LIBPOD_FALLBACK_VERSION),
            kind,
            socket: socket.to_owned(),
            version: None,
            ignored_api_version: None,
            first_listing: None,
            info: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    /// The engine as its first answer tells it, unless `kind` says which it is.
    fn identify(mut self, kind: Option<Kind>, pong: Pong) -> Engine {
        let mut libpod = LIBPOD_FALLBACK_VERSION;
        match pong.libpod.as_deref() {
            Some(api) if is_api_version(api) => libpod = api,
            // It goes into every URL: `4#frag` would make each request `GET /v4`.
            Some(api) => self.ignored_api_version = Some(answer::quote(api)),
            None => {}
        }
        self.kind = api::kind_of(kind, pong.libpod.as_deref());
        self.api = Api::of(self.kind, libpod);
        self.version = pong.server.as_deref().and_then(server_version);
        self.first_listing = pong.listing;
        self
    }
}

impl Knocks {
    /// The first socket that answered, once no earlier one may still answer in time.
    fn chosen(&mut self) -> Option<(Engine, Pong)> {
        let first = self.candidates.iter().position(|c| c.pong.is_some())?;
        let waiting = self.candidates[..first].iter().any(|c| c.knocking);
        let preferring = self.prefer_until.is_none_or(|t| Instant::now() < t);
        if waiting && preferring {
            return None;
        }
        let mut chosen = self.candidates.swap_remove(first);
        let pong = chosen.pong.take().expect("answered");
        Some((chosen.engine, pong))
    }

    /// Knocks on every socket whose turn it is.
    fn knock_due(&mut self) {
        let now = Instant::now();
        let until = now + self.deadline.saturating_duration_since(now).max(PING_MIN);
        let alone = self.candidates.len() == 1;
        for (i, candidate) in self.candidates.iter_mut().enumerate() {
            if candidate.due.is_none_or(|t| t > now) {
                continue;
            }
            candidate.due = None;
            candidate.knocking = true;
            self.out += 1;
            let client = &candidate.engine.http;
            // One socket (the usual case) is knocked on from here: a thread's start costs
            // about as much as the knock (docs/performance.md). Otherwise a thread each, left
            // to finish on its own if another socket answers first: its requests end by
            // `until` anyway (a ping after a silent listing, by PING_MIN later).
            let in_turn = alone || {
                let (client, answers) = (client.clone(), self.answers.clone());
                let listing = self.listing.clone();
                let knock = move || {
                    drop(answers.send((i, knock_on(&client, listing.as_deref(), until))));
                };
                // No thread to be had (a tight limit at boot): knock in turn.
                std::thread::Builder::new().spawn(knock).is_err()
            };
            if in_turn {
                let pong = knock_on(client, self.listing.as_deref(), until);
                let _ = self.answers.send((i, pong));
            }
        }
    }

    /// The next answer, waited for until the next knock is due or an answer's wait for
    /// earlier sockets ends (`Some(None)` then); `None` when nothing is out and none is due.
    fn next_answer(&self) -> Option<Option<Answer>> {
        let due = self.candidates.iter().filter_map(|c| c.due);
        let next = due.chain(self.prefer_until).min();
        match next {
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                Some(self.answered.recv_timeout(left).ok())
            }
            None if self.out > 0 => Some(self.answered.recv().ok()),
            None => None,
        }
    }

    /// Takes socket `i`'s answer: it is a candidate, or knocked on again after [`WAIT_STEP`]
    /// while `--wait` lasts.
    fn take(&mut self, i: usize, result: Result<Pong, ureq::Error>) {
        self.out -= 1;
        let candidate = &mut self.candidates[i];
        candidate.knocking = false;
        match result {
            Ok(pong) => {
                candidate.pong = Some(pong);
                self.prefer_until
                    .get_or_insert(Instant::now() + PREFER_EARLIER);
            }
            Err(e) => {
                candidate.error = Some(e);
                let now = Instant::now();
                if now < self.deadline {
                    candidate.due = Some((now + WAIT_STEP).min(self.deadline));
                }
            }
        }
    }

    /// No socket answered in time: each with its last failure.
    fn unreachable(self, waited: Duration) -> EngineError {
        let sockets = self.candidates.into_iter().map(|c| {
            let error = c.error.unwrap_or(ureq::Error::ConnectionFailed);
            (c.engine.socket, error)
        });
        EngineError::Unreachable {
            sockets: sockets.collect(),
            waited,
        }
    }
}

/// Knocks on a socket until `until`: the `listing` if there is one, else `GET /_ping`. A
/// listing answered otherwise than 200, or not in time, is followed by a ping, which decides;
/// where nothing listens there is nothing to ping.
fn knock_on(client: &Client, listing: Option<&str>, until: Instant) -> Result<Pong, ureq::Error> {
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(PING_MIN)
    };
    if let Some(path) = listing {
        match first_answer(client, path, true, left()) {
            Ok(pong) => return Ok(pong),
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ureq::Error::Io(e))
            }
            Err(_) => {}
        }
    }
    first_answer(client, PING, false, left())
}

/// `GET path` within `within`, answered 200: what its headers say, and the listing if
/// `listing` and it could be read.
fn first_answer(
    client: &Client,
    path: &str,
    listing: bool,
    within: Duration,
) -> Result<Pong, ureq::Error> {
    client.knock(path, within, |headers, body| {
        let header = |name: &str| {
            let value = headers.get(name)?.to_str().ok()?;
            Some(value.chars().take(NAME_MAX).collect::<String>())
        };
        Pong {
            libpod: header(api::LIBPOD_HEADER),
            server: header("Server"),
            listing: listing.then(|| Listing::read(body).ok()).flatten(),
        }
    })
}

/// `26.1.5+dfsg1` from `Docker/26.1.5+dfsg1 (linux)`.
fn server_version(server: &str) -> Option<String> {
    let (_, rest) = server.split_once('/')?;
    let version = rest.split_whitespace().next()?;
    let printable = version.len() <= 64 && version.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_version_from_the_server_header() {
        assert_eq!(
            server_version("Docker/26.1.5+dfsg1 (linux)").as_deref(),
            Some("26.1.5+dfsg1")
        );
        assert_eq!(
            server_version("Libpod/5.4.2 (linux)").as_deref(),
            Some("5.4.2")
        );
        assert_eq!(server_version("nginx"), None);
    }
}
