//! HTTP/1.1 to the engine over its unix socket, by ureq: one kept-alive connection for the small
//! requests, each bounded in total time and answer size, and a connection of its own for the
//! upload, whose body goes to the socket as chunks straight from the pipeline's buffer
//! ([`chunks`]). What is asked, and what each answer means, is the API's ([`super::api`]).

pub mod answer;
mod chunks;
mod unix;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::http::HeaderMap;
use ureq::{Agent, Body, SendBody};

use super::{EngineError, ANSWER_MAX, SMALL_REQUEST_MAX};
use chunks::Chunked;
use unix::{BodySocket, LateAnswer, NoResolver, UnixConnector};

/// Host part of every URL; ignored by the unix connector, but HTTP/1.1 needs one.
const BASE: &str = "http://localhost";
/// ureq's buffers of each connection, in and out. An engine's answer head is under 1 KiB and a
/// request head smaller, and a body passes through in pieces; ureq's 128 KiB defaults were
/// zeroed on every connection and, that large, mapped and unmapped by musl's malloc, each
/// unmap a TLB flush on every core: a fifth of a no-op run's CPU (docs/performance.md).
const CONNECTION_BUFFER: usize = 16 << 10;
/// The longest answer head taken, in the input buffer with room to spare, so that a longer one
/// is refused by name (`response header is too big`), not as a stall.
const ANSWER_HEAD_MAX: usize = 8 << 10;

/// The request methods the engine is asked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Delete,
}

/// The connection to one engine socket (a clone shares it: a knock on a thread of its own).
#[derive(Clone)]
pub(crate) struct Client {
    agent: Agent,
    socket: PathBuf,
    /// Total time for a request other than the upload.
    small: Duration,
    late: LateAnswer,
}

impl Client {
    /// A client of the engine at `socket`, which may stay silent `timeout` within a request.
    pub(crate) fn new(socket: &Path, timeout: Duration) -> Client {
        let config = Agent::config_builder()
            // 404 and 500 answers carry the engine's message: they are read, not raised.
            .http_status_as_error(false)
            // Proxy variables in the environment would bypass the unix connector.
            .proxy(None)
            // A stalled engine is caught per read and per write; no total limit here, since
            // podman answers a load only after the whole import. Every other request sets
            // its own total (`Client::exchange`, the knock).
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
        Client {
            agent: Agent::with_parts(config, connector, NoResolver),
            socket: socket.to_owned(),
            small: timeout.min(SMALL_REQUEST_MAX),
            late,
        }
    }

    /// `GET path` within `within` in all (connect, headers and body), answered 200: `read`
    /// is given the answer's headers and its body (up to [`ANSWER_MAX`]). Any other status is
    /// the error `StatusCode`.
    pub(crate) fn knock<T>(
        &self,
        path: &str,
        within: Duration,
        read: impl FnOnce(&HeaderMap, &mut dyn Read) -> T,
    ) -> Result<T, ureq::Error> {
        let r = self
            .agent
            .get(format!("{BASE}{path}"))
            .config()
            .timeout_global(Some(within))
            .build()
            .call()?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(ureq::Error::StatusCode(status));
        }
        let (head, mut body) = r.into_parts();
        let mut answer = body.with_config().limit(ANSWER_MAX).reader();
        Ok(read(&head.headers, &mut answer))
    }

    /// Asks `method path` in at most the small requests' time: the status and the (small)
    /// answer; `what` names the request in errors.
    pub(crate) fn exchange(
        &self,
        method: Method,
        path: &str,
        what: &str,
    ) -> Result<(u16, Vec<u8>), EngineError> {
        let url = format!("{BASE}{path}");
        let sent = match method {
            Method::Get => self.small(self.agent.get(url)).call(),
            Method::Delete => self.small(self.agent.delete(url)).call(),
            Method::Post => self.small(self.agent.post(url)).send_empty(),
        };
        let mut r = sent.map_err(|source| EngineError::request(what, source))?;
        let status = r.status().as_u16();
        let body = read_small(r.body_mut()).map_err(|source| EngineError::request(what, source))?;
        Ok((status, body))
    }

    /// `GET path`, its answer read as it streams in by `read` (up to [`ANSWER_MAX`]); `None`
    /// when the request fails or is answered otherwise than 200.
    pub(crate) fn stream<T>(&self, path: &str, read: impl FnOnce(&mut dyn Read) -> T) -> Option<T> {
        let mut r = self
            .small(self.agent.get(format!("{BASE}{path}")))
            .call()
            .ok()?;
        if r.status().as_u16() != 200 {
            return None;
        }
        let mut answer = r.body_mut().with_config().limit(ANSWER_MAX).reader();
        Some(read(&mut answer))
    }

    /// Streams `tar` to `POST path` and reads the load answer to its end: the names the engine
    /// says it loaded. If `tar` fails, the request is aborted before its last chunk, so the
    /// engine loads nothing.
    pub(crate) fn upload(
        &self,
        path: &str,
        tar: &mut dyn Read,
    ) -> Result<Vec<String>, EngineError> {
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
        let mut r = sent.map_err(|source| self.unsent(source))?;
        let status = r.status().as_u16();
        let reader = r.body_mut().with_config().limit(ANSWER_MAX).reader();
        answer::load_result(status, reader).map_err(|e| match e {
            answer::Failure::Engine(message) => EngineError::Refused { message },
            answer::Failure::Read(source) => {
                EngineError::request("reading the load answer", source)
            }
        })
    }

    /// Why an upload did not get its answer: the engine's own words when it answered before
    /// closing, else what happened to the connection.
    fn unsent(&self, source: ureq::Error) -> EngineError {
        let late = self.late.lock().ok().and_then(|mut slot| slot.take());
        match late.as_deref().and_then(answer::late_message) {
            Some(message) => EngineError::Refused { message },
            None if closed(&source) => EngineError::request(
                "uploading: the engine closed the connection (did it stop or crash?)",
                source,
            ),
            None => EngineError::request("uploading", source),
        }
    }

    /// `request` with the total time a request other than the upload may take.
    fn small<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        request.config().timeout_global(Some(self.small)).build()
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
