//! The engine client: docker's and podman's HTTP API over their unix socket.
//!
//! Three questions are asked of an engine: which engine is it (the headers of its first
//! answer: `GET /_ping`, or the image listing when that is asked next anyway), does it have
//! an image (`GET /images/{ref}/json` on docker, `GET /libpod/images/{ref}/exists` on podman),
//! and will it load this tar (`POST /images/load`, `POST /libpod/images/load`); before a load,
//! also where it will write it (`GET /info`, `GET /libpod/info`). An expected answer is not an
//! error: "no such image" is `Ok(false)`. Requests share one kept-alive connection, so presence
//! checks for many images cost one connect; an upload has one of its own, whose socket its
//! body writes to as chunks straight from the pipeline's buffer ([`chunks`]). The routes
//! follow the engine's API; what its image store decides (ids, accepted layouts, where
//! uploads go) is in [`store`].
//!
//! Every request is bounded in time, so a hung or hostile engine cannot hold the boot:
//! the knock gets what is left of `--wait` (connect, headers and body together), asked of
//! every candidate socket at once, so a silent one does not hold up the others; the other
//! small requests (presence, listing, inspect, tag, delete, info) get
//! min(`--timeout`, [`SMALL_REQUEST_MAX`]) in total; only the upload and its answer, which
//! podman sends only after the whole import, are bounded per read and per write
//! (`--timeout`). And in memory: an answer is read up to [`ANSWER_MAX`] bytes and parsed
//! within a budget of values ([`answer`]); a listing keeps only what can match an entry
//! (ids as `sha256:` + 64 hex, shared between their names, at most [`LISTING_NAMES_MAX`]
//! names of at most [`NAME_MAX`] bytes).

pub mod answer;
mod chunks;
#[cfg(test)]
pub(crate) mod fake;
mod held;
mod listing;
pub(crate) mod requests;
pub mod store;
mod unix;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use ureq::{Agent, Body, RequestBuilder, SendBody};

use crate::image::describe::Image;
use crate::input::reference::Reference;
use chunks::Chunked;
pub use held::{chain_on, chains, Held};
pub use listing::Listing;
use store::Reads;
use store::Store;
use unix::{BodySocket, LateAnswer, NoResolver, UnixConnector};

/// docker's socket when it runs as a system service.
pub const DOCKER_SOCKET: &str = "/run/docker.sock";
/// podman's socket when `podman.socket` / `podman.service` run as root.
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// Host part of every URL; ignored by the unix connector, but HTTP/1.1 needs one.
const BASE: &str = "http://localhost";
/// libpod API version used when `--engine podman` talks to an engine that does not say.
pub const LIBPOD_FALLBACK_VERSION: &str = "4.0.0";
/// podman's listing at that version: what `--engine podman` knocks with before the engine
/// says its version (podman 4 and 5 answer it alike).
const LIBPOD_FALLBACK_LISTING: &str = "/v4.0.0/libpod/images/json";
/// How often to knock while waiting for the engine to come up.
const WAIT_STEP: Duration = Duration::from_millis(200);
/// Largest answer read for presence, version and load results (load answers are a few lines).
pub const ANSWER_MAX: u64 = 8 << 20;
/// ureq's buffers of each connection, in and out. An engine's answer head is under 1 KiB and a
/// request head smaller, and a body passes through in pieces; ureq's 128 KiB defaults were
/// zeroed on every connection and, that large, mapped and unmapped by musl's malloc, each
/// unmap a TLB flush on every core: a fifth of a no-op run's CPU (docs/performance.md).
const CONNECTION_BUFFER: usize = 16 << 10;
/// The longest answer head taken, in the input buffer with room to spare, so that a longer one
/// is refused by name (`response header is too big`), not as a stall.
const ANSWER_HEAD_MAX: usize = 8 << 10;
/// Longest a request other than the upload may take in all (connect, headers, body), when
/// `--timeout` is longer: the slowest seen is podman 4.3 listing its images or answering
/// `GET /libpod/info` (~0.2 s), so 30 s means a hung engine, not a busy one.
pub const SMALL_REQUEST_MAX: Duration = Duration::from_secs(30);
/// Least time one `GET /_ping` is given, so `--wait 0` (or a knock at the very end of
/// `--wait`) still asks once instead of timing out before it starts.
const PING_MIN: Duration = Duration::from_secs(1);
/// How long a socket that answered waits for one earlier in the list whose knock is still out:
/// the order decides which engine a run uses when both answer (a device with docker and
/// podman), and an engine that is up answers `GET /_ping` in milliseconds; a silent one holds
/// the others up no longer than this.
const PREFER_EARLIER: Duration = Duration::from_millis(500);
/// Most names kept from one listing. A device has tens of images; names beyond this are not
/// lost, only asked about one by one, as every name the listing does not show is.
pub const LISTING_NAMES_MAX: usize = 10_000;
/// Longest name kept from a listing or a load answer: longer than any reference the list
/// accepts (255 for the name, 128 for the tag), so such a name could never match an entry.
pub const NAME_MAX: usize = 512;
/// Most names kept from one load answer (an archive names a few images).
const LOADED_NAMES_MAX: usize = 1_000;

/// Everything but what a validated reference may hold and HTTP paths carry as is.
const REF_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'/')
    .remove(b':')
    .remove(b'@');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        })
    }
}

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

pub struct Engine {
    agent: Agent,
    pub kind: Kind,
    pub socket: PathBuf,
    /// The engine's version as its `Server` header says it (`26.1.5+dfsg1`).
    pub version: Option<String>,
    /// Path prefix of podman's own API, `/v4.3.1/libpod`.
    libpod: String,
    /// A `Libpod-Api-Version` header that was not a version (digits and dots), quoted, and
    /// so not used in URLs: for the caller to log.
    pub ignored_api_version: Option<String>,
    /// The listing the knock got ([`Knock::Listing`]).
    first_listing: Option<Listing>,
    /// Total time for a request other than the upload.
    small: Duration,
    late: LateAnswer,
    /// `GET /info` (`/libpod/info`), asked once when first needed: podman takes ~0.2 s to
    /// answer, docker 26 ~15 ms, and a boot that finds every image present needs neither.
    info: OnceLock<Result<Value, EngineError>>,
    store: OnceLock<Box<dyn Store>>,
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
        let deadline = start + wait;
        let mut candidates: Vec<Engine> = sockets
            .iter()
            .map(|s| Engine::new(s, kind, timeout))
            .collect();
        let (answers, answered) = mpsc::channel();
        // When each socket is to be knocked on next; None while a knock is out or after
        // `wait`.
        let mut due: Vec<Option<Instant>> = vec![Some(start); candidates.len()];
        let mut errors: Vec<Option<ureq::Error>> = sockets.iter().map(|_| None).collect();
        // Whose knock is out, who answered, and until when an answer waits for earlier ones.
        let mut knocking = vec![false; candidates.len()];
        let mut pongs: Vec<Option<Pong>> = sockets.iter().map(|_| None).collect();
        let mut prefer_until: Option<Instant> = None;
        let mut out = 0;
        loop {
            // The first socket that answered, once no earlier one may still answer in time.
            if let Some(first) = pongs.iter().position(Option::is_some) {
                let waiting = knocking[..first].contains(&true);
                if !waiting || prefer_until.is_some_and(|t| Instant::now() >= t) {
                    let pong = pongs[first].take().expect("answered");
                    return Ok(candidates.swap_remove(first).identify(kind, pong));
                }
            }
            let now = Instant::now();
            for (i, when) in due.iter_mut().enumerate() {
                if when.is_some_and(|t| t <= now) {
                    *when = None;
                    knocking[i] = true;
                    out += 1;
                    let agent = &candidates[i].agent;
                    let until = now + deadline.saturating_duration_since(now).max(PING_MIN);
                    let first = listing_for(knock, kind);
                    // One socket (the usual case) is knocked on from here: a thread's start
                    // costs about as much as the knock (docs/performance.md). Otherwise a
                    // thread each, left to finish on its own if another socket answers first:
                    // its requests end by `until` anyway (a ping after a silent listing, by
                    // PING_MIN later).
                    let in_turn = candidates.len() == 1 || {
                        let (agent, answers) = (agent.clone(), answers.clone());
                        let knock = move || drop(answers.send((i, knock_on(&agent, first, until))));
                        // No thread to be had (a tight limit at boot): knock in turn.
                        std::thread::Builder::new().spawn(knock).is_err()
                    };
                    if in_turn {
                        let _ = answers.send((i, knock_on(agent, first, until)));
                    }
                }
            }
            let next = due.iter().flatten().chain(&prefer_until).min().copied();
            let got = match next {
                Some(t) => answered.recv_timeout(t.saturating_duration_since(now)).ok(),
                None if out > 0 => answered.recv().ok(),
                None => break,
            };
            let Some((i, result)) = got else { continue };
            out -= 1;
            knocking[i] = false;
            match result {
                Ok(pong) => {
                    pongs[i] = Some(pong);
                    prefer_until.get_or_insert(Instant::now() + PREFER_EARLIER);
                }
                Err(e) => {
                    errors[i] = Some(e);
                    let now = Instant::now();
                    if now < deadline {
                        due[i] = Some((now + WAIT_STEP).min(deadline));
                    }
                }
            }
        }
        Err(EngineError::Unreachable {
            sockets: sockets
                .iter()
                .cloned()
                .zip(errors)
                .map(|(s, e)| (s, e.unwrap_or(ureq::Error::ConnectionFailed)))
                .collect(),
            waited: start.elapsed(),
        })
    }

    fn new(socket: &Path, kind: Option<Kind>, timeout: Duration) -> Engine {
        let config = Agent::config_builder()
            // 404 and 500 answers carry the engine's message: they are read, not raised.
            .http_status_as_error(false)
            // Proxy variables in the environment would bypass the unix connector.
            .proxy(None)
            // A stalled engine is caught per read and per write; no total limit here, since
            // podman answers a load only after the whole import. Every other request sets
            // its own total (`Engine::small`, `ping`).
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .user_agent(concat!("container-loader/", env!("CARGO_PKG_VERSION")))
            .input_buffer_size(CONNECTION_BUFFER)
            .output_buffer_size(CONNECTION_BUFFER)
            .max_response_header_size(ANSWER_HEAD_MAX)
            .build();
        let late = LateAnswer::default();
        let connector = UnixConnector {
            path: socket.to_owned(),
            late: late.clone(),
            body: None,
        };
        Engine {
            agent: Agent::with_parts(config, connector, NoResolver),
            kind: kind.unwrap_or(Kind::Docker),
            socket: socket.to_owned(),
            version: None,
            libpod: format!("/v{LIBPOD_FALLBACK_VERSION}/libpod"),
            ignored_api_version: None,
            first_listing: None,
            small: timeout.min(SMALL_REQUEST_MAX),
            late,
            info: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    fn identify(mut self, kind: Option<Kind>, pong: Pong) -> Engine {
        match pong.libpod.as_deref() {
            Some(api) if is_api_version(api) => self.libpod = format!("/v{api}/libpod"),
            // It goes into every URL: `4#frag` would make each request `GET /v4`.
            Some(api) => self.ignored_api_version = Some(answer::quote(api)),
            None => {}
        }
        self.kind = kind.unwrap_or(match pong.libpod {
            Some(_) => Kind::Podman,
            None => Kind::Docker,
        });
        self.version = pong.server.as_deref().and_then(server_version);
        self.first_listing = pong.listing;
        self
    }

    /// The listing that answered the knock ([`Knock::Listing`]), once; `None` if the knock was
    /// a ping, the listing could not be read, or it was taken already.
    pub fn first_listing(&mut self) -> Option<Listing> {
        self.first_listing.take()
    }

    /// The engine's image store, told from `GET /info` the first time it is asked.
    pub fn store(&self) -> Result<&dyn Store, &EngineError> {
        if let Some(store) = self.store.get() {
            return Ok(store.as_ref());
        }
        let detected = store::detect(self.kind, || self.info())?;
        Ok(self.store.get_or_init(|| detected).as_ref())
    }

    /// `docker 26.1.5+dfsg1, containerd image store`: what `status` and `--verbose` say.
    pub fn describe(&self) -> String {
        let version = self.version.as_deref().unwrap_or("(version unknown)");
        let store = match self.store() {
            Ok(store) => store.name().to_owned(),
            Err(e) => format!("store unknown: {e}"),
        };
        format!("{} {version}, {store}", self.kind)
    }

    /// The id the engine gives `image` when it loads it from an archive: the config digest, or
    /// on docker's containerd image store the manifest digest.
    pub fn id_for<'a>(&self, image: &'a Image) -> Result<Option<&'a str>, &EngineError> {
        Ok(self.store()?.image_id(image))
    }

    /// Which archive layout the engine's store reads. When the store cannot be told, docker
    /// gets a manifest.json into an OCI archive: harmless where an OCI layout is read.
    pub fn reads(&self) -> Reads {
        let fallback = match self.kind {
            Kind::Docker => Reads::DockerArchive,
            Kind::Podman => Reads::Either,
        };
        self.store().map_or(fallback, |s| s.reads())
    }

    /// Where the engine copies a whole upload (its view of the filesystem), or why that
    /// cannot be told.
    pub fn upload_dir(&self) -> Result<PathBuf, String> {
        let store = self.store().map_err(|e| e.to_string())?;
        let info = self.info().map_err(|e| e.to_string())?;
        store.upload_dir(info)
    }

    /// `GET /info` or `GET /libpod/info`, asked once.
    fn info(&self) -> Result<&Value, &EngineError> {
        self.info.get_or_init(|| self.ask_info()).as_ref()
    }

    fn ask_info(&self) -> Result<Value, EngineError> {
        let path = match self.kind {
            Kind::Docker => "/info".to_owned(),
            Kind::Podman => format!("{}/info", self.libpod),
        };
        let what = "asking where the engine stores images";
        let (status, body) = self.get(&path, what)?;
        match status {
            200 => answer::parse(&body).map_err(|e| EngineError::Answer {
                what: what.to_owned(),
                status,
                message: format!("not JSON: {e}"),
            }),
            _ => Err(answer::unexpected(what, status, &body)),
        }
    }

    /// `request` with the total time a request other than the upload may take.
    fn small<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        request.config().timeout_global(Some(self.small)).build()
    }

    /// `GET path`: the status and the (small) answer; `what` names the request in errors.
    fn get(&self, path: &str, what: &str) -> Result<(u16, Vec<u8>), EngineError> {
        let mut r = self
            .small(self.agent.get(format!("{BASE}{path}")))
            .call()
            .map_err(|source| request(what, source))?;
        let status = r.status().as_u16();
        let body = read_small(r.body_mut()).map_err(|source| request(what, source))?;
        Ok((status, body))
    }

    /// Every name the engine lists with its image id, from one request: docker's `RepoTags`
    /// (`GET /images/json`), podman's `Names` (`GET /libpod/images/json`), read as it streams
    /// in ([`Listing`]). `None` if the listing fails or cannot be read; the caller then asks
    /// per image, as it does for every name not listed here.
    pub fn listing(&self) -> Option<Listing> {
        let path = match self.kind {
            Kind::Docker => "/images/json".to_owned(),
            Kind::Podman => format!("{}/images/json", self.libpod),
        };
        let mut r = self
            .small(self.agent.get(format!("{BASE}{path}")))
            .call()
            .ok()?;
        if r.status().as_u16() != 200 {
            return None;
        }
        let answer = r.body_mut().with_config().limit(ANSWER_MAX).reader();
        Listing::read(answer).ok()
    }

    /// The engine's id for `image` (`sha256:…`), `None` when it has no such image.
    pub fn image_id(&self, image: &Reference) -> Result<Option<String>, EngineError> {
        let what = format!("inspecting {image}");
        // Each engine's own route: podman's under its API version, which it answers with the
        // same `Id` (bare hex) and 404.
        let path = match self.kind {
            Kind::Docker => format!("/images/{}/json", encode(image)),
            Kind::Podman => format!("{}/images/{}/json", self.libpod, encode(image)),
        };
        let (status, body) = self.get(&path, &what)?;
        match status {
            200 => {
                let v = answer::parse(&body).unwrap_or_default();
                match v["Id"].as_str() {
                    None => Ok(None),
                    Some(id) => canonical_id(id)
                        .map(Some)
                        .ok_or_else(|| EngineError::Answer {
                            what,
                            status,
                            message: format!(
                                "an image id that is not sha256: and 64 hex digits: {}",
                                answer::quote(id)
                            ),
                        }),
                }
            }
            404 if answer::is_engine_error(&body) => Ok(None),
            _ => Err(answer::unexpected(&what, status, &body)),
        }
    }

    /// Removes the name `image` (`DELETE /images/{ref}`), and the image if no other name
    /// keeps it, as `docker rmi` does without `--force`.
    pub fn remove(&self, image: &Reference) -> Result<(), EngineError> {
        let what = format!("removing {image}");
        let route = match self.kind {
            Kind::Docker => String::new(),
            Kind::Podman => self.libpod.clone(),
        };
        let mut r = self
            .small(
                self.agent
                    .delete(format!("{BASE}{route}/images/{}", encode(image))),
            )
            .call()
            .map_err(|source| request(&what, source))?;
        let status = r.status().as_u16();
        let body = read_small(r.body_mut()).map_err(|source| request(&what, source))?;
        match status {
            200 => Ok(()),
            _ => Err(answer::unexpected(&what, status, &body)),
        }
    }

    /// Gives the image `id` the name `repo:tag` (`POST /images/{id}/tag`), moving the name off
    /// any image that had it, as `docker tag` does. `repo` and `tag` come from a validated
    /// reference ([`Reference::repository_and_tag`]) and are percent-encoded in the query.
    pub fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let what = format!("tagging {} as {repo}:{tag}", short_id(id));
        let query = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let route = match self.kind {
            Kind::Docker => String::new(),
            Kind::Podman => self.libpod.clone(),
        };
        let path = format!(
            "{route}/images/{}/tag?repo={}&tag={}",
            query(id),
            query(repo),
            query(tag)
        );
        let mut r = self
            .small(self.agent.post(format!("{BASE}{path}")))
            .send_empty()
            .map_err(|source| request(&what, source))?;
        let status = r.status().as_u16();
        let body = read_small(r.body_mut()).map_err(|source| request(&what, source))?;
        match status {
            200 | 201 => Ok(()),
            _ => Err(answer::unexpected(&what, status, &body)),
        }
    }

    /// Streams a tar into the engine. Returns what the engine says it loaded. If `tar` fails,
    /// the request is aborted before its last chunk, so the engine loads nothing.
    pub fn load(&self, tar: &mut dyn Read) -> Result<Vec<String>, EngineError> {
        let path = match self.kind {
            Kind::Docker => "/images/load?quiet=1".to_owned(),
            Kind::Podman => format!("{}/images/load", self.libpod),
        };
        let what = "uploading";
        if let Ok(mut slot) = self.late.lock() {
            *slot = None;
        }
        // An agent of its own, so the upload has a connection of its own, whose socket its
        // body writes its chunks to (chunks.rs).
        let config = self.agent.config().clone();
        let socket = BodySocket::default();
        let connector = UnixConnector {
            path: self.socket.clone(),
            late: self.late.clone(),
            body: Some(socket.clone()),
        };
        let write_timeout = config.timeout_per_write();
        let agent = Agent::with_parts(config, connector, NoResolver);
        let mut body = Chunked::new(tar, socket, self.late.clone(), write_timeout);
        let sent = agent
            .post(format!("{BASE}{path}"))
            .header("Content-Type", "application/x-tar")
            .send(SendBody::from_reader(&mut body));
        let mut r = match sent {
            Ok(r) => r,
            Err(source) => {
                let late = self.late.lock().ok().and_then(|mut slot| slot.take());
                return Err(match late.as_deref().and_then(answer::late_message) {
                    Some(message) => EngineError::Refused { message },
                    None if closed(&source) => request(
                        "uploading: the engine closed the connection (did it stop or crash?)",
                        source,
                    ),
                    None => request(what, source),
                });
            }
        };
        let status = r.status().as_u16();
        let reader = r.body_mut().with_config().limit(ANSWER_MAX).reader();
        answer::load_result(status, reader).map_err(|e| match e {
            answer::Failure::Engine(message) => EngineError::Refused { message },
            answer::Failure::Read(source) => request("reading the load answer", source),
        })
    }
}

/// The listing a knock asks before anything else, if any: the one of the engine `kind` says
/// (docker's, which podman serves too, when it is not said).
fn listing_for(knock: Knock, kind: Option<Kind>) -> Option<&'static str> {
    match (knock, kind) {
        (Knock::Ping, _) => None,
        (Knock::Listing, Some(Kind::Podman)) => Some(LIBPOD_FALLBACK_LISTING),
        (Knock::Listing, _) => Some("/images/json"),
    }
}

/// Knocks on a socket until `until`: the `listing` if there is one, else `GET /_ping`. A
/// listing answered otherwise than 200, or not in time, is followed by a ping, which decides;
/// where nothing listens there is nothing to ping.
fn knock_on(agent: &Agent, listing: Option<&str>, until: Instant) -> Result<Pong, ureq::Error> {
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(PING_MIN)
    };
    if let Some(path) = listing {
        match first_answer(agent, path, true, left()) {
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
    first_answer(agent, "/_ping", false, left())
}

/// `GET path` within `within` in all (connect, headers and body), answered 200: podman's libpod
/// API version if the engine is podman, which says so in a `Libpod-Api-Version` header on
/// every answer (docker sends none), and the listing if `listing` and it could be read.
/// Telling the engines apart by a header saves a `GET /version`, which podman answers only
/// after asking conmon and the OCI runtime for theirs (half a second on every boot).
fn first_answer(
    agent: &Agent,
    path: &str,
    listing: bool,
    within: Duration,
) -> Result<Pong, ureq::Error> {
    let mut r = agent
        .get(format!("{BASE}{path}"))
        .config()
        .timeout_global(Some(within))
        .build()
        .call()?;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(NAME_MAX).collect::<String>())
    };
    let (libpod, server) = (header("Libpod-Api-Version"), header("Server"));
    match r.status().as_u16() {
        200 => Ok(Pong {
            libpod,
            server,
            listing: listing
                .then(|| {
                    let answer = r.body_mut().with_config().limit(ANSWER_MAX).reader();
                    Listing::read(answer).ok()
                })
                .flatten(),
        }),
        status => Err(ureq::Error::StatusCode(status)),
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

/// A libpod API version as it may go into a URL path: digits and dots (`5.4.2`).
fn is_api_version(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// `26.1.5+dfsg1` from `Docker/26.1.5+dfsg1 (linux)`.
fn server_version(server: &str) -> Option<String> {
    let (_, rest) = server.split_once('/')?;
    let version = rest.split_whitespace().next()?;
    let printable = version.len() <= 64 && version.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| version.to_owned())
}

fn request(what: &str, source: ureq::Error) -> EngineError {
    EngineError::Request {
        what: what.to_owned(),
        source,
    }
}

/// Whether `e` says the engine hung up: a write into a closed socket, or an answer cut off.
fn closed(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::UnexpectedEof
    ))
}

fn read_small(body: &mut Body) -> Result<Vec<u8>, ureq::Error> {
    body.with_config().limit(ANSWER_MAX).read_to_vec()
}

/// `sha256:` + 64 lower-case hex, whether the engine said it so (docker) or gave the bare hex
/// (podman); `None` for anything else, which no engine gives an image: such an id is never
/// kept, logged or put in a URL.
pub fn canonical_id(id: &str) -> Option<String> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    let digest = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    digest.then(|| format!("sha256:{hex}"))
}

/// `sha256:0123456789ab`: as much of an id as a log line needs, like `docker images` shows.
pub fn short_id(id: &str) -> String {
    let (algorithm, digest) = id.split_once(':').unwrap_or(("sha256", id));
    format!("{algorithm}:{}", short_hex(digest))
}

/// `0123456789ab`: the first 12 digits of an id, without `sha256:`, for a table's column.
pub fn short_hex(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// A validated reference, percent-encoded for a URL path.
fn encode(image: &Reference) -> String {
    utf8_percent_encode(image.as_str(), REF_ENCODE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_sha256_ids_and_gives_podmans_bare_hex_the_prefix() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(canonical_id(&hex), Some(format!("sha256:{hex}")));
        assert_eq!(
            canonical_id(&format!("sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        for bad in [
            &hex[1..],
            &format!("{hex}0"),
            &hex.to_uppercase(),
            &format!("sha512:{hex}"),
            &format!("sha256:{}", &hex[..63]),
            "",
        ] {
            assert_eq!(canonical_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn takes_a_libpod_api_version_only_as_digits_and_dots() {
        for good in ["4", "4.0.0", "5.4.2"] {
            assert!(is_api_version(good), "{good}");
        }
        for bad in [
            "",
            "4#frag",
            "4/../../x",
            "v4",
            ".4",
            "4 ",
            "4?x=1",
            &"1".repeat(33),
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn keeps_reference_characters_a_path_carries_and_encodes_the_rest() {
        let r = Reference::parse("localhost:5000/a_b/c-d.e:1.0").unwrap();
        assert_eq!(encode(&r), "localhost:5000/a_b/c-d.e:1.0");
        // The grammar lets no '+' through (go-digest knows no such algorithm); the encoder
        // would still escape one.
        let digest = format!("x@sha256:{}", "0".repeat(64));
        let d = Reference::parse(&digest).unwrap();
        assert_eq!(encode(&d), digest);
    }
}
