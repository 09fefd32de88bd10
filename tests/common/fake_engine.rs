//! A fake engine that records requests, to prove what the loader never sends.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::*;

/// Answers like dockerd 20.10 on `/_ping` and `/version`, 404 on everything else, and
/// records every request line it receives.
pub struct FakeEngine {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl FakeEngine {
    /// A fake engine that answers every upload with HTTP 500.
    pub fn start() -> FakeEngine {
        FakeEngine::start_with(false)
    }

    /// A fake engine that accepts an upload and then never answers (a hung engine).
    pub fn start_stalling_loads() -> FakeEngine {
        FakeEngine::start_with(true)
    }

    fn start_with(stall_loads: bool) -> FakeEngine {
        let dir = TempDir::new("fake");
        let socket = dir.join("fake.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake engine socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req, st) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut stalled = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Ok(Some(held)) = serve_fake(stream, &req, stall_loads) {
                            // Keep the connection open, unanswered, until the fake stops.
                            stalled.push(held);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeEngine {
            socket,
            requests,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn host_args(&self) -> Vec<String> {
        vec!["-H".into(), self.socket.display().to_string()]
    }

    /// Request lines received so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one request; returns the connection instead of answering when it is an upload
/// and `stall_loads` is set.
fn serve_fake(
    stream: UnixStream,
    requests: &Mutex<Vec<String>>,
    stall_loads: bool,
) -> std::io::Result<Option<UnixStream>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let request_line = request_line.trim_end().to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if h.starts_with("transfer-encoding:") && h.contains("chunked") {
            chunked = true;
        }
    }
    requests.lock().unwrap().push(request_line.clone());
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if stall_loads && (chunked || content_length > 0) {
        return Ok(Some(writer));
    }
    let (status, body) = if chunked || content_length > 0 {
        ("500 Internal Server Error", r#"{"message":"fake engine"}"#)
    } else if path.ends_with("/_ping") {
        ("200 OK", "OK")
    } else if path.ends_with("/version") {
        (
            "200 OK",
            r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41"}}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
        )
    } else {
        ("404 Not Found", r#"{"message":"No such image"}"#)
    };
    let ctype = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    write!(
        writer,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Api-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()?;
    // One request per connection: the fake engine always closes.
    Ok(None)
}
