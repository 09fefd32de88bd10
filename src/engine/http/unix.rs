//! ureq's transport over the engine's unix socket.
//!
//! ureq speaks HTTP/1.1 over any [`Transport`]; this one is a `UnixStream`. The resolver
//! returns a fixed address without asking DNS or /etc/nsswitch.conf, which may not be usable
//! that early in boot: the connector ignores addresses anyway.
//!
//! Connecting is bounded too: a unix socket whose listener stopped accepting (a hung engine
//! with a full backlog) blocks `connect` until the listener accepts, so the connect waits at
//! most the request's time left (`SO_SNDTIMEO`, which Linux applies to a unix `connect`).
//!
//! When a write fails because the engine has answered and closed (it refused the upload
//! early), the transport reads what the engine had sent before closing and keeps it as the
//! [`LateAnswer`], so the caller can report the engine's own words instead of a broken pipe.
//!
//! The upload's connector also hands a handle on its socket to the body ([`BodySocket`]), which
//! writes its chunks there itself (`chunks.rs`).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};
use ureq::Error;

/// How much of an answer sent before the engine closed is kept; engine errors are short.
const LATE_ANSWER_MAX: u64 = 64 << 10;
/// How long to wait for the rest of such an answer once the socket is known to be closing.
const LATE_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Bytes the engine sent before it closed a connection we were still writing to.
pub type LateAnswer = Arc<Mutex<Option<Vec<u8>>>>;

/// The socket of the upload's connection, for its body's chunks.
pub type BodySocket = Arc<Mutex<Option<UnixStream>>>;

#[derive(Debug)]
pub struct UnixConnector {
    pub path: PathBuf,
    pub late: LateAnswer,
    /// The upload's connector (a connector of its own, so its one connection is the upload's)
    /// puts a handle on the socket it connects here.
    pub body: Option<BodySocket>,
}

impl Connector<()> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        let within = remaining(details.timeout)?;
        let stream =
            connect_within(&self.path, within).map_err(|e| io_error(e, details.timeout))?;
        if let Some(slot) = &self.body {
            let handle = stream.try_clone().map_err(Error::Io)?;
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(handle);
            }
        }
        let config = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            read_timeout: None,
            // The connect's limit is still set; the first write replaces it.
            write_timeout: within,
            late: self.late.clone(),
        }))
    }
}

/// `connect(2)` to `path`, waiting at most `within` for a listener that does not accept.
fn connect_within(path: &Path, within: Option<Duration>) -> io::Result<UnixStream> {
    use rustix::net::{sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, within)?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(UnixStream::from(fd))
}

#[derive(Debug)]
pub struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    late: LateAnswer,
}

/// ureq's timeout for the next I/O, or its timeout error if none is left.
fn remaining(timeout: NextTimeout) -> Result<Option<Duration>, Error> {
    if timeout.after.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|d| *d))
}

fn io_error(e: io::Error, timeout: NextTimeout) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(timeout.reason),
        _ => Error::Io(e),
    }
}

/// Reads what the engine sent before closing `stream`, on which a write just failed, into `late`.
pub fn keep_late_answer(stream: &UnixStream, late: &LateAnswer) {
    let mut answer = Vec::new();
    let _ = stream.set_read_timeout(Some(LATE_ANSWER_WAIT));
    let _ = stream.take(LATE_ANSWER_MAX).read_to_end(&mut answer);
    if !answer.is_empty() {
        if let Ok(mut slot) = late.lock() {
            *slot = Some(answer);
        }
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let wanted = remaining(timeout)?;
        if wanted != self.write_timeout {
            self.stream.set_write_timeout(wanted)?;
            self.write_timeout = wanted;
        }
        let output = &self.buffers.output()[..amount];
        match (&self.stream).write_all(output) {
            Ok(()) => Ok(()),
            Err(e) => {
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    keep_late_answer(&self.stream, &self.late);
                    self.read_timeout = Some(LATE_ANSWER_WAIT);
                }
                Err(io_error(e, timeout))
            }
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        let wanted = remaining(timeout)?;
        if wanted != self.read_timeout {
            self.stream.set_read_timeout(wanted)?;
            self.read_timeout = wanted;
        }
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| io_error(e, timeout))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // An idle connection is open when a read would block: no bytes, no end-of-stream.
        let probe = || -> io::Result<bool> {
            self.stream.set_nonblocking(true)?;
            let open = matches!((&self.stream).read(&mut [0u8]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            self.stream.set_nonblocking(false)?;
            Ok(open)
        };
        probe().unwrap_or(false)
    }
}

/// Answers every name with one fixed address; the unix connector does not use it.
#[derive(Debug)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 80)));
        Ok(addrs)
    }
}
