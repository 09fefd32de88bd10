//! Runs the decoder on its own thread, so decoding overlaps the socket writes instead of taking
//! turns with them, and holds back the end of its output until it has verified it.
//!
//! The decoder writes straight into a few fixed buffers, which the thread passes over a channel;
//! emptied buffers come back for reuse, so nothing is allocated after the start and memory stays
//! at `BUFFERS * BUF_LEN`. A filled buffer is passed on only once [`HOLD`] more bytes follow it
//! or the decoder has returned end-of-stream: zstd, gzip, xz and bzip2 find a bad checksum only
//! after the last data bytes have come out, and the tar's end must not reach the engine before
//! that (see `tail.rs`, which does the same for a plain tar, read without this thread). The first
//! error of the decoder reaches the consumer as is (the same `io::Error`, with its
//! `DecodeError` inside), after the bytes released before it; the held ones are dropped unsent.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use super::tail::HOLD;

/// Buffer size and count (measured into a null sink: 512 KiB buffers here and in ureq, instead
/// of 256 KiB and ureq's 128 KiB, made no difference beyond noise). Four: one being read by the
/// consumer, one held back, one being filled, and one spare so the decoder need not wait for
/// the consumer to finish a buffer.
const BUF_LEN: usize = 256 << 10;
const BUFFERS: usize = 4;
// A filled buffer is released by the next one reaching HOLD bytes, so one buffer must hold it.
const _: () = assert!(BUF_LEN >= HOLD);

enum Message {
    Data(Box<[u8]>, usize),
    End,
    Failed(io::Error),
}

pub struct Pipelined {
    filled: Receiver<Message>,
    empty: Option<SyncSender<Box<[u8]>>>,
    /// The buffer being handed out, and how far.
    current: Option<(Box<[u8]>, usize, usize)>,
    finished: bool,
    thread: Option<JoinHandle<()>>,
}

impl Pipelined {
    /// `decoder` runs on the thread; none of its last [`HOLD`] bytes are released unless it
    /// ends cleanly.
    pub fn new<R: Read + Send + 'static>(mut decoder: R) -> Pipelined {
        let (empty, empties) = mpsc::sync_channel::<Box<[u8]>>(BUFFERS);
        let (fill, filled) = mpsc::sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            // Cannot fail: the channel has room for every buffer and its receiver is alive.
            let _ = empty.send(vec![0; BUF_LEN].into_boxed_slice());
        }
        let thread = thread::spawn(move || {
            // A full buffer waiting for HOLD more bytes behind it.
            let mut held: Option<Box<[u8]>> = None;
            // Ends when the consumer is gone (recv or send fails) or the decoder is done.
            while let Ok(mut buf) = empties.recv() {
                let mut len = 0;
                let end = loop {
                    match decoder.read(&mut buf[len..]) {
                        Ok(0) => break Some(Message::End),
                        Ok(n) => {
                            len += n;
                            if len >= HOLD {
                                if let Some(full) = held.take() {
                                    if fill.send(Message::Data(full, BUF_LEN)).is_err() {
                                        return;
                                    }
                                }
                            }
                            if len == buf.len() {
                                break None;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // What is held and what this buffer got are dropped, never sent.
                        Err(e) => break Some(Message::Failed(e)),
                    }
                };
                match end {
                    None => held = Some(buf),
                    Some(Message::End) => {
                        // Verified: everything goes, in order.
                        let rest = held.take().map(|full| Message::Data(full, BUF_LEN));
                        let last = (len > 0).then_some(Message::Data(buf, len));
                        for message in rest.into_iter().chain(last) {
                            if fill.send(message).is_err() {
                                return;
                            }
                        }
                        let _ = fill.send(Message::End);
                        return;
                    }
                    Some(failed) => {
                        let _ = fill.send(failed);
                        return;
                    }
                }
            }
        });
        Pipelined {
            filled,
            empty: Some(empty),
            current: None,
            finished: false,
            thread: Some(thread),
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some((buf, pos, len)) = &mut self.current {
                let n = (*len - *pos).min(out.len());
                out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                *pos += n;
                if *pos == *len {
                    if let (Some((buf, ..)), Some(empty)) = (self.current.take(), &self.empty) {
                        let _ = empty.send(buf);
                    }
                }
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            match self.filled.recv() {
                Ok(Message::Data(buf, len)) => self.current = Some((buf, 0, len)),
                Ok(Message::End) => self.finished = true,
                Ok(Message::Failed(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                Err(_) => {
                    self.finished = true;
                    return Err(io::Error::other(
                        "the decoder thread ended without a result",
                    ));
                }
            }
        }
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Dropping our ends makes the thread's next send or recv fail: it stops after at most
        // one more buffer.
        self.empty = None;
        let (_, dead) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.filled, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in small reads, then fails instead of reporting end-of-stream, as a decoder
    /// does on a bad trailing checksum.
    struct FailsAtEnd<'a>(&'a [u8]);

    impl Read for FailsAtEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad checksum"));
            }
            let n = self.0.len().min(buf.len()).min(7000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Stream lengths around the buffer and hold sizes.
    const LENGTHS: [usize; 8] = [
        0,
        5,
        HOLD,
        BUF_LEN,
        BUF_LEN + HOLD - 1,
        BUF_LEN + HOLD,
        3 * BUF_LEN,
        3_000_017,
    ];

    fn data(len: usize) -> &'static [u8] {
        let v: Vec<u8> = (0..len as u32).map(|i| (i * 7 + (i >> 9)) as u8).collect();
        Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn passes_every_byte_through_in_order_when_the_stream_ends_cleanly() {
        for len in LENGTHS {
            let data = data(len);
            let mut out = Vec::new();
            Pipelined::new(data).read_to_end(&mut out).unwrap();
            assert!(out == data, "{len} bytes");
        }
    }

    #[test]
    fn never_releases_the_last_bytes_of_a_stream_that_fails_at_the_end() {
        for len in LENGTHS {
            let data = data(len);
            let mut p = Pipelined::new(FailsAtEnd(data));
            let mut released = Vec::new();
            let mut buf = [0u8; 10_000];
            let err = loop {
                match p.read(&mut buf) {
                    Ok(0) => panic!("a failing stream must not end cleanly"),
                    Ok(n) => released.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            assert!(
                released.len() <= len.saturating_sub(HOLD),
                "{len} bytes: released {}",
                released.len()
            );
            assert!(released == data[..released.len()], "{len} bytes");
            // The error itself, not one made up around it.
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(err.to_string(), "bad checksum");
        }
    }

    #[test]
    fn releases_all_but_the_held_buffer_before_the_stream_fails() {
        let data = data(3_000_017);
        let mut p = Pipelined::new(FailsAtEnd(data));
        let mut released = 0;
        let mut buf = [0u8; 10_000];
        while let Ok(n) = p.read(&mut buf) {
            released += n;
        }
        assert!(
            released + HOLD + BUF_LEN >= data.len(),
            "released only {released} of {} bytes",
            data.len()
        );
    }

    #[test]
    fn stops_its_thread_when_dropped_early() {
        let endless = io::repeat(1);
        let mut p = Pipelined::new(endless);
        let mut buf = [0u8; 100];
        p.read_exact(&mut buf).unwrap();
        drop(p);
    }
}
