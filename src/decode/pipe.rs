//! Runs a reader (the decoder under its `HoldBack`) on its own thread, so decoding overlaps the
//! socket writes instead of taking turns with them.
//!
//! The thread fills a few fixed buffers and passes them over a channel; emptied buffers come
//! back for reuse, so nothing is allocated after the start and memory stays at
//! `BUFFERS * BUF_LEN`. The first error of the reader reaches the consumer as is (the same
//! `io::Error`, with its `DecodeError` inside), after the bytes read before it, and nothing
//! after it. The thread only moves bytes: what `HoldBack` withholds it never sees.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Buffer size and count (measured into a null sink: 512 KiB buffers here and in ureq, instead
/// of 256 KiB and ureq's 128 KiB, made no difference beyond noise).
const BUF_LEN: usize = 256 << 10;
const BUFFERS: usize = 4;

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
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> Pipelined {
        let (empty, empties) = mpsc::sync_channel::<Box<[u8]>>(BUFFERS);
        let (fill, filled) = mpsc::sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            // Cannot fail: the channel has room for every buffer and its receiver is alive.
            let _ = empty.send(vec![0; BUF_LEN].into_boxed_slice());
        }
        let thread = thread::spawn(move || {
            // Ends when the consumer is gone (recv or send fails) or the reader is done.
            while let Ok(mut buf) = empties.recv() {
                let mut len = 0;
                let end = loop {
                    match inner.read(&mut buf[len..]) {
                        Ok(0) => break Some(Message::End),
                        Ok(n) => {
                            len += n;
                            if len == buf.len() {
                                break None;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Some(Message::Failed(e)),
                    }
                };
                if len > 0 && fill.send(Message::Data(buf, len)).is_err() {
                    return;
                }
                if let Some(end) = end {
                    let _ = fill.send(end);
                    return;
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

    struct FailsAfter<'a>(&'a [u8]);

    impl Read for FailsAfter<'_> {
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

    #[test]
    fn passes_every_byte_through_in_order() {
        let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        Pipelined::new(io::Cursor::new(data.clone()))
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
    }

    #[test]
    fn gives_the_bytes_before_an_error_then_the_error_itself() {
        let data: &'static [u8] = Box::leak(vec![5u8; 1_000_000].into_boxed_slice());
        let mut p = Pipelined::new(FailsAfter(data));
        let mut got = 0;
        let mut buf = [0u8; 10_000];
        let err = loop {
            match p.read(&mut buf) {
                Ok(0) => panic!("a failing reader must not end cleanly"),
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(got, data.len());
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "bad checksum");
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
