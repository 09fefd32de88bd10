//! The zstd frames of a packed archive: pieces compressed on worker threads and written in
//! order ([`Pool`]), then the member index and the seek table that follow them ([`Trailer`]).
//!
//! Every frame is compressed alone from a piece held in memory, so it records its content size
//! and ends with its content checksum (the low 4 bytes of the XXH64 of its content), which the
//! seek table repeats.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use serde::Serialize;
use zstd_safe::{CCtx, CParameter};

use super::members::Member;

/// The skippable frame holding the member index (zstd's skippable magics are 0x184D2A50 to
/// 0x184D2A5F; 0x184D2A5E is the seek table's, 0x184D2A50 is common in other tools' use).
pub(super) const INDEX_MAGIC: u32 = 0x184D_2A5B;
/// The zstd seekable format's seek table frame, and the magic that ends its footer.
pub(super) const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
pub(super) const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// The largest index a reader takes (and the writer writes): 64 MiB, some 300,000 members.
pub(super) const MAX_INDEX: usize = 64 << 20;
/// The seek table descriptor: bit 7, every entry has its checksum.
const CHECKSUM_FLAG: u8 = 0x80;

/// How hard and on how many threads to compress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) level: i32,
    pub(super) threads: usize,
}

/// One compressed frame and what the seek table says of it.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) bytes: Vec<u8>,
    pub(super) content_size: u32,
    /// The frame's own content checksum: its last 4 bytes.
    pub(super) checksum: u32,
}

/// A piece to compress and where to send its frame.
type Job = (Vec<u8>, Sender<io::Result<Frame>>);

/// Worker threads compressing pieces, each into one frame; frames come back in the order their
/// pieces went in. At most `2 × threads` pieces are in flight, so memory stays within about
/// `(2 × threads + 1) × 2 × CHUNK` (a piece and its frame each) besides each thread's context.
pub(super) struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Frame>>>,
    limit: usize,
}

impl Pool {
    pub(super) fn new(settings: Settings) -> Pool {
        let threads = settings.threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = queue.clone();
                thread::spawn(move || work(&queue, settings.level))
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            workers,
            pending: VecDeque::new(),
            limit: 2 * threads,
        }
    }

    /// Hands `piece` to a worker; returns the oldest frame when enough are in flight.
    pub(super) fn push(&mut self, piece: Vec<u8>) -> io::Result<Option<Frame>> {
        let (done, frame) = mpsc::channel();
        let jobs = self.jobs.as_ref().expect("open until finish");
        jobs.send((piece, done)).map_err(|_| worker_gone())?;
        self.pending.push_back(frame);
        if self.pending.len() < self.limit {
            return Ok(None);
        }
        self.next().map(Some)
    }

    /// The oldest frame still in flight, `None` when none is.
    pub(super) fn finish(&mut self) -> io::Result<Option<Frame>> {
        if self.pending.is_empty() {
            self.jobs = None;
            return Ok(None);
        }
        self.next().map(Some)
    }

    fn next(&mut self) -> io::Result<Frame> {
        let oldest = self.pending.pop_front().expect("one in flight");
        oldest.recv().map_err(|_| worker_gone())?
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a compression thread stopped")
}

/// A worker: compresses the pieces it takes from `queue` until the queue closes.
fn work(queue: &Mutex<Receiver<Job>>, level: i32) {
    let mut cctx = CCtx::create();
    let setup = [
        CParameter::CompressionLevel(level),
        CParameter::ChecksumFlag(true),
        CParameter::ContentSizeFlag(true),
    ]
    .into_iter()
    .try_for_each(|p| cctx.set_parameter(p).map(drop));
    loop {
        let job = queue.lock().map(|q| q.recv());
        let Ok(Ok((piece, done))) = job else {
            return;
        };
        let frame = match setup {
            Ok(()) => compress(&mut cctx, &piece),
            Err(code) => Err(zstd_error(code)),
        };
        let _ = done.send(frame);
    }
}

/// `piece` as one frame, with its content size and checksum.
pub(super) fn compress(cctx: &mut CCtx<'_>, piece: &[u8]) -> io::Result<Frame> {
    let content_size = u32::try_from(piece.len()).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(zstd_safe::compress_bound(piece.len()));
    cctx.compress2(&mut bytes, piece).map_err(zstd_error)?;
    let tail: [u8; 4] = bytes[bytes.len() - 4..].try_into().expect("4 bytes");
    Ok(Frame {
        bytes,
        content_size,
        checksum: u32::from_le_bytes(tail),
    })
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

/// A member in the index: where it lies in the tar and in which frames.
#[derive(Debug, Serialize)]
pub(super) struct Entry {
    pub(super) path: String,
    pub(super) header: u64,
    pub(super) data: u64,
    pub(super) size: u64,
    /// Its first frame's number, counting the archive's data frames from 0.
    pub(super) frame: u64,
    pub(super) frames: u64,
}

impl Entry {
    pub(super) fn new(member: Member, frame: u64) -> Entry {
        Entry {
            path: member.path,
            header: member.header,
            data: member.data,
            size: member.size,
            frame,
            frames: 0,
        }
    }
}

/// What follows the data frames: the index of the members and the seek table of the frames.
#[derive(Debug, Default)]
pub(super) struct Trailer {
    pub(super) members: Vec<Entry>,
    /// Per data frame: compressed size, content size, checksum.
    pub(super) frames: Vec<(u32, u32, u32)>,
}

#[derive(Serialize)]
struct Index<'a> {
    version: u32,
    members: &'a [Entry],
}

impl Trailer {
    /// Notes a written frame in the seek table and counts it to the member it belongs to.
    pub(super) fn written(&mut self, frame: &Frame) -> io::Result<()> {
        let compressed = u32::try_from(frame.bytes.len()).map_err(io::Error::other)?;
        self.frames
            .push((compressed, frame.content_size, frame.checksum));
        Ok(())
    }

    /// The index frame, then the seek table frame.
    pub(super) fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let index = serde_json::to_vec(&Index {
            version: 1,
            members: &self.members,
        })
        .map_err(io::Error::other)?;
        if index.len() > MAX_INDEX {
            return Err(io::Error::other(format!(
                "the member index would take {} bytes, more than a reader takes ({MAX_INDEX})",
                index.len()
            )));
        }
        skippable(out, INDEX_MAGIC, &index)?;
        skippable(out, SEEK_TABLE_MAGIC, &self.seek_table())
    }

    /// The seek table's content: an entry per data frame, then the footer.
    fn seek_table(&self) -> Vec<u8> {
        let mut table = Vec::with_capacity(self.frames.len() * 12 + 9);
        for &(compressed, content, checksum) in &self.frames {
            for n in [compressed, content, checksum] {
                table.extend_from_slice(&n.to_le_bytes());
            }
        }
        table.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        table.push(CHECKSUM_FLAG);
        table.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        table
    }
}

/// A skippable frame: its magic, its content's length, its content.
fn skippable(out: &mut impl Write, magic: u32, content: &[u8]) -> io::Result<()> {
    let len = u32::try_from(content.len()).map_err(io::Error::other)?;
    out.write_all(&magic.to_le_bytes())?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(content)
}
