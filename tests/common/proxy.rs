//! A fault-injecting proxy: a unix socket in front of a real engine socket.
//!
//! Every connection to the proxy's socket is forwarded to the engine's socket, byte for byte,
//! in both directions. The proxy counts what goes through and watches the client's requests
//! (a request starts where a read begins with an HTTP method). The first upload (a request
//! starting with `POST `) can be hit by one [`Fault`]; everything else, including later
//! uploads, passes untouched, so the entries after a faulted one still load.
//!
//! Threads and std only. Dropping the proxy stops its threads, shuts every socket it holds
//! and removes its socket file.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the proxy does to the first upload. Offsets count the upload's bytes from the first
/// byte of its request line (`POST ...`), headers included.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Forward everything (and count it).
    None,
    /// After `after` bytes of the upload, close both sides of that connection.
    Cut { after: u64 },
    /// After `after` bytes of the upload, stop forwarding in both directions and keep both
    /// sockets open (a hung engine), until [`Proxy::release`] or drop.
    Stall { after: u64 },
    /// After `after` bytes of the upload, close the engine side and send `answer` (a whole
    /// HTTP response) to the client, then close: an engine that refuses an upload early.
    Refuse { after: u64, answer: Vec<u8> },
    /// Forward the whole first upload and its answer, then hold the next request (on any
    /// connection) unforwarded until [`Proxy::release`] or drop: the loader is then between
    /// its load and its presence re-check.
    StallAfterUpload,
    /// Forward the first upload at about `per_second` bytes a second: a slow engine or disk,
    /// so the load lasts long enough to be watched.
    Throttle { per_second: u64 },
    /// When the first upload's request comes, first send `DELETE path` to the engine (on a
    /// connection of its own, waiting for the answer), then forward the upload: something
    /// else changed the engine between the loader's questions and its load.
    DeleteFirst { path: String },
}

#[derive(Default)]
struct State {
    /// Client-to-engine bytes forwarded, all connections.
    up: AtomicU64,
    /// Bytes of the first upload forwarded to the engine so far.
    upload_bytes: AtomicU64,
    /// Uploads (`POST` requests) seen.
    uploads: AtomicUsize,
    /// Requests seen (reads that start with a method).
    requests: AtomicUsize,
    /// The first upload's request has been seen (later ones are not faulted).
    first_upload_taken: AtomicBool,
    /// The first upload has been completely passed on (for `StallAfterUpload`).
    first_upload_done: AtomicBool,
    /// The fault has fired.
    fired: AtomicBool,
    /// A stall is in effect.
    stalled: AtomicBool,
    /// `release` was called: stalled connections go on forwarding.
    released: AtomicBool,
    stop: AtomicBool,
    /// Every socket the proxy holds, for shutting them on drop.
    sockets: Mutex<Vec<UnixStream>>,
    /// Request lines seen (first line of each request).
    request_lines: Mutex<Vec<String>>,
}

pub struct Proxy {
    socket: PathBuf,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const METHODS: &[&[u8]] = &[b"GET ", b"POST ", b"HEAD ", b"DELETE ", b"PUT "];

fn is_request_start(data: &[u8]) -> bool {
    METHODS.iter().any(|m| data.starts_with(m))
}

impl Proxy {
    /// Listens on `socket` and forwards to `engine`, applying `fault` to the first upload.
    pub fn start(socket: &Path, engine: &Path, fault: Fault) -> Proxy {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("bind proxy socket {}: {e}", socket.display()));
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(State::default());
        let workers = Arc::new(Mutex::new(Vec::new()));
        let engine = engine.to_owned();
        let (st, wk) = (state.clone(), workers.clone());
        let accept = thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(upstream) = UnixStream::connect(&engine) else {
                            // Engine gone: close the client at once, as a dead engine would.
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        {
                            let mut held = st.sockets.lock().unwrap();
                            held.push(client.try_clone().unwrap());
                            held.push(upstream.try_clone().unwrap());
                        }
                        let (c1, u1) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        let (s1, s2, f1) = (st.clone(), st.clone(), fault.clone());
                        let held = Arc::new(AtomicBool::new(false));
                        let h1 = held.clone();
                        let e1 = engine.clone();
                        let a = thread::spawn(move || client_to_engine(c1, u1, &s1, &f1, &h1, &e1));
                        let b =
                            thread::spawn(move || engine_to_client(upstream, client, &s2, &held));
                        let mut w = wk.lock().unwrap();
                        w.push(a);
                        w.push(b);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            socket: socket.to_owned(),
            state,
            accept: Some(accept),
            workers,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn host_args(&self) -> Vec<String> {
        vec!["-H".into(), self.socket.display().to_string()]
    }

    /// Client-to-engine bytes forwarded so far, all connections.
    pub fn bytes_up(&self) -> u64 {
        self.state.up.load(Ordering::SeqCst)
    }

    /// Bytes of the first upload forwarded so far.
    pub fn upload_bytes(&self) -> u64 {
        self.state.upload_bytes.load(Ordering::SeqCst)
    }

    /// `POST` requests seen.
    pub fn uploads(&self) -> usize {
        self.state.uploads.load(Ordering::SeqCst)
    }

    /// First lines of the requests seen so far.
    pub fn request_lines(&self) -> Vec<String> {
        self.state.request_lines.lock().unwrap().clone()
    }

    /// Whether the fault has fired.
    pub fn fired(&self) -> bool {
        self.state.fired.load(Ordering::SeqCst)
    }

    /// Whether a stall is in effect now.
    pub fn stalled(&self) -> bool {
        self.state.stalled.load(Ordering::SeqCst) && !self.state.released.load(Ordering::SeqCst)
    }

    /// Waits until the fault has fired; panics after `limit`.
    pub fn wait_fired(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.fired() {
            assert!(
                Instant::now() < deadline,
                "the proxy fault did not fire within {limit:?} ({} upload bytes seen)",
                self.upload_bytes()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ends a stall: held data is forwarded again.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        for s in self.state.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        // Connections accepted after the sockets were shut: shut them too.
        for s in self.state.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Holds the calling thread while a stall is in effect (until release or stop); `held` tells
/// the other direction of the same connection to hold too.
fn hold(state: &State, held: &AtomicBool) {
    held.store(true, Ordering::SeqCst);
    state.stalled.store(true, Ordering::SeqCst);
    while !state.released.load(Ordering::SeqCst) && !state.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(5));
    }
}

fn client_to_engine(
    mut client: UnixStream,
    mut upstream: UnixStream,
    state: &State,
    fault: &Fault,
    held: &AtomicBool,
    engine: &Path,
) {
    let mut buf = vec![0u8; 64 << 10];
    // Whether this connection carries the first upload right now, and how far into it.
    let mut in_first_upload = false;
    let mut offset = 0u64;
    loop {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if is_request_start(data) {
            state.requests.fetch_add(1, Ordering::SeqCst);
            let line_end = data.iter().position(|&b| b == b'\r').unwrap_or(data.len());
            state
                .request_lines
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&data[..line_end.min(200)]).into_owned());
            if in_first_upload {
                // The upload ended on this connection; a new request begins.
                in_first_upload = false;
                state.first_upload_done.store(true, Ordering::SeqCst);
            }
            if matches!(fault, Fault::StallAfterUpload)
                && state.first_upload_done.load(Ordering::SeqCst)
                && !state.fired.swap(true, Ordering::SeqCst)
            {
                hold(state, held);
            }
            if data.starts_with(b"POST ") {
                state.uploads.fetch_add(1, Ordering::SeqCst);
                if !state.first_upload_taken.swap(true, Ordering::SeqCst) {
                    in_first_upload = true;
                    offset = 0;
                    if let Fault::DeleteFirst { path } = fault {
                        // Fired only if the engine deleted it: the test checks.
                        if let Some((200, _)) = super::http_delete(engine, path) {
                            state.fired.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
        if let (true, Fault::Throttle { per_second }) = (in_first_upload, fault) {
            state.fired.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_secs_f64(
                data.len() as f64 / *per_second as f64,
            ));
        }
        if in_first_upload {
            let limit = match fault {
                Fault::Cut { after } | Fault::Stall { after } | Fault::Refuse { after, .. } => {
                    Some(*after)
                }
                _ => None,
            };
            if let Some(after) = limit.filter(|_| !state.fired.load(Ordering::SeqCst)) {
                if offset + data.len() as u64 >= after {
                    let head = (after - offset) as usize;
                    if upstream.write_all(&data[..head]).is_err() {
                        break;
                    }
                    state.up.fetch_add(head as u64, Ordering::SeqCst);
                    state.upload_bytes.fetch_add(head as u64, Ordering::SeqCst);
                    offset += head as u64;
                    data = &data[head..];
                    match fault {
                        Fault::Cut { .. } => {
                            state.fired.store(true, Ordering::SeqCst);
                            let _ = upstream.shutdown(Shutdown::Both);
                            let _ = client.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::Refuse { answer, .. } => {
                            // The answer first: once the engine side is shut, the other
                            // thread shuts the client side too.
                            let _ = client.write_all(answer);
                            let _ = client.flush();
                            let _ = upstream.shutdown(Shutdown::Both);
                            state.fired.store(true, Ordering::SeqCst);
                            // Close like an engine that answered and hung up; what the
                            // client still sends is never read.
                            let _ = client.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::Stall { .. } => {
                            state.fired.store(true, Ordering::SeqCst);
                            hold(state, held);
                            if state.stop.load(Ordering::SeqCst) {
                                break;
                            }
                        }
                        _ => unreachable!(),
                    }
                }
            }
            offset += data.len() as u64;
            state
                .upload_bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        if upstream.write_all(data).is_err() {
            break;
        }
        state.up.fetch_add(data.len() as u64, Ordering::SeqCst);
        if in_first_upload && data.ends_with(b"0\r\n\r\n") {
            // The last chunk of a chunked upload: the request is complete.
            in_first_upload = false;
            state.first_upload_done.store(true, Ordering::SeqCst);
        }
    }
    if in_first_upload {
        state.first_upload_done.store(true, Ordering::SeqCst);
    }
    // The client is gone (or the engine): pass the end on, in both directions.
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

fn engine_to_client(
    mut upstream: UnixStream,
    mut client: UnixStream,
    state: &State,
    held: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // A stalled engine says nothing either.
        while held.load(Ordering::SeqCst)
            && !state.released.load(Ordering::SeqCst)
            && !state.stop.load(Ordering::SeqCst)
        {
            thread::sleep(Duration::from_millis(5));
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// The answer docker gives an upload it cannot store: HTTP 200 and an error object in the
/// stream (`{"errorDetail":{"message":...},"error":...}`), chunked.
pub fn docker_refusal(message: &str) -> Vec<u8> {
    let body =
        format!("{{\"errorDetail\":{{\"message\":\"{message}\"}},\"error\":\"{message}\"}}\r\n");
    format!(
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n\
         Server: Docker/20.10.24+dfsg1 (linux)\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
    .into_bytes()
}

/// The answer podman gives an upload it cannot store: HTTP 500 with its error object.
pub fn podman_refusal(message: &str) -> Vec<u8> {
    let body = format!("{{\"cause\":\"{message}\",\"message\":\"{message}\",\"response\":500}}\n");
    format!(
        "HTTP/1.1 500 Internal Server Error\r\nApi-Version: 1.41\r\n\
         Content-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
