//! The upload's body, written to the engine's socket as HTTP/1.1 chunks straight from one
//! buffer, past ureq's body buffers.
//!
//! ureq sends a body of unknown length by reading it into one buffer, copying that into a
//! second one framed as 10 KiB chunks (each size line formatted) and writing the second: two
//! copies of every byte and a write per 128 KiB, on the loader's whole byte path. For the
//! upload, ureq still writes the request head, the last chunk and reads the answer, as for
//! any request; but the one read it makes of the body streams the whole body to the same
//! connection's socket, each [`CHUNK`] of it a single vectored write of its size line, the
//! bytes and the CRLF, and then reports end-of-body, on which ureq writes the last chunk
//! (`0\r\n\r\n`). Errors keep their meaning: the pipeline's own go back to ureq as they are
//! (the request is aborted, no last chunk is sent, so the engine never sees a complete body),
//! a write that times out becomes ureq's per-write timeout, and a write the engine cut short
//! keeps what it answered before closing (`unix.rs`).

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::unix::{keep_late_answer, BodySocket, LateAnswer};

/// Bytes per chunk, one write each: one of the decoder thread's buffers (src/decode/pipe.rs).
const CHUNK: usize = 256 << 10;
/// The longest size line: a usize in hex and CRLF.
const SIZE_LINE_MAX: usize = 2 * size_of::<usize>() + 2;

pub struct Chunked<'a> {
    source: &'a mut dyn Read,
    /// Where the upload's connector puts its socket.
    socket: BodySocket,
    late: LateAnswer,
    /// Longest one write may block (`--timeout`), as ureq's per-write timeout.
    write_timeout: Option<Duration>,
    buf: Vec<u8>,
    sent: bool,
}

impl<'a> Chunked<'a> {
    pub fn new(
        source: &'a mut dyn Read,
        socket: BodySocket,
        late: LateAnswer,
        write_timeout: Option<Duration>,
    ) -> Self {
        Chunked {
            source,
            socket,
            late,
            write_timeout,
            buf: Vec::new(),
            sent: false,
        }
    }

    /// Streams the whole body to `stream`, chunk by chunk.
    fn send(&mut self, stream: &UnixStream) -> io::Result<()> {
        stream.set_write_timeout(self.write_timeout)?;
        self.buf.resize(CHUNK, 0);
        loop {
            let n = fill(self.source, &mut self.buf)?;
            if n == 0 {
                return Ok(());
            }
            write_chunk(stream, &self.buf[..n]).map_err(|e| self.failed(stream, e))?;
        }
    }

    /// A failed write, as ureq's transport would have reported it.
    fn failed(&self, stream: &UnixStream, e: io::Error) -> io::Error {
        match e.kind() {
            // SO_SNDTIMEO ran out.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ureq::Error::Timeout(ureq::Timeout::PerWrite).into_io()
            }
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                keep_late_answer(stream, &self.late);
                e
            }
            _ => e,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.sent {
            return Ok(0);
        }
        let stream = self.socket.lock().ok().and_then(|mut slot| slot.take());
        match stream {
            Some(stream) => {
                self.sent = true;
                self.send(&stream)?;
                Ok(0)
            }
            // No socket handed over: ureq frames the body itself.
            None => self.source.read(out),
        }
    }
}

/// Reads from `source` until `buf` is full or the body ended; its errors are returned as they
/// are (the pipeline keeps the first one, src/commands/load/upload.rs `Guarded`).
fn fill(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match source.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(len)
}

/// One chunk: its size line, `data` and CRLF, in as few writes as the socket takes.
fn write_chunk(mut stream: &UnixStream, data: &[u8]) -> io::Result<()> {
    let mut line = [0u8; SIZE_LINE_MAX];
    let line_len = {
        let mut at = &mut line[..];
        write!(at, "{:x}\r\n", data.len())?;
        SIZE_LINE_MAX - at.len()
    };
    let mut parts = [
        IoSlice::new(&line[..line_len]),
        IoSlice::new(data),
        IoSlice::new(b"\r\n"),
    ];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        match stream.write_vectored(parts) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What `Chunked` writes for `data`, read back from the other end of a socket pair.
    fn framed(data: &'static [u8]) -> Vec<u8> {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&theirs).read_to_end(&mut got).unwrap();
            got
        });
        let mut source = data;
        let socket: BodySocket = Arc::new(Mutex::new(Some(ours)));
        let mut body = Chunked::new(&mut source, socket, LateAnswer::default(), None);
        assert_eq!(body.read(&mut [0; 16]).unwrap(), 0);
        assert_eq!(body.read(&mut [0; 16]).unwrap(), 0);
        drop(body);
        reader.join().unwrap()
    }

    #[test]
    fn writes_the_body_as_chunks_of_its_size_line_bytes_and_crlf() {
        let data: &'static [u8] = Box::leak(vec![7u8; CHUNK + 10].into_boxed_slice());
        let mut want = b"40000\r\n".to_vec();
        want.extend_from_slice(&data[..CHUNK]);
        want.extend_from_slice(b"\r\na\r\n");
        want.extend_from_slice(&data[CHUNK..]);
        want.extend_from_slice(b"\r\n");
        assert!(framed(data) == want);
    }

    #[test]
    fn leaves_the_last_chunk_to_ureq() {
        assert_eq!(framed(b""), b"");
    }

    #[test]
    fn passes_the_first_error_of_the_body_on_after_the_chunks_before_it() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad checksum"));
                }
                let n = self.0.min(buf.len());
                self.0 -= n;
                Ok(n)
            }
        }
        let (ours, theirs) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&theirs).read_to_end(&mut got).unwrap();
            got
        });
        let mut source = Fails(CHUNK + 10);
        let socket: BodySocket = Arc::new(Mutex::new(Some(ours)));
        let mut body = Chunked::new(&mut source, socket, LateAnswer::default(), None);
        let err = body.read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.to_string(), "bad checksum");
        drop(body);
        // The full chunk before the error went; the 10 bytes after it did not.
        assert_eq!(reader.join().unwrap().len(), "40000\r\n".len() + CHUNK + 2);
    }
}
