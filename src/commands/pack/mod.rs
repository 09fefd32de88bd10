//! `pack`: writes the tar an archive holds as a layer-framed zstd archive, which every zstd
//! reader decodes to that tar, and which a reader that knows the layout can walk member by
//! member, reading the image descriptions and skipping layers undecoded.
//!
//! The layout (docs/design.md, "Layer-framed archives"):
//!
//! - zstd frames, each with its content size and content checksum. Every tar member (the PAX
//!   `x`/`g` and GNU `L`/`K` headers before it, its header, data and padding) starts a new
//!   frame; a member longer than [`members::CHUNK`] (8 MiB) goes on in further frames; the
//!   tar's end (its zero blocks and anything after them) starts a frame of its own;
//! - a skippable frame, magic 0x184D2A5B, holding the member index as JSON:
//!   `{"version":1,"members":[{"path","header","data","size","frame","frames"}]}`, `header`
//!   and `data` tar offsets, `frame` the number of the member's first data frame (from 0) and
//!   `frames` how many it takes; at most [`frames::MAX_INDEX`] bytes;
//! - the zstd seekable format's seek table (skippable magic 0x184D2A5E): per data frame its
//!   compressed size, content size and checksum (u32 little-endian each), then the number of
//!   data frames (u32), the descriptor 0x80 (checksums present) and 0x8F92EAB1. It lists the
//!   data frames only: they begin at offset 0, and the index frame begins where the sum of
//!   their compressed sizes ends.
//!
//! Pieces are compressed on `--threads` workers and written in order (`frames::Pool` bounds
//! what is in flight). Only a build with the `pack` feature has this command: the encoder would
//! not fit the device binary's size budget.

mod frames;
mod members;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::Pack;
use crate::decode::{self, DecodeError};
use crate::input::format::{self, Foreign};
use crate::report::exit::Exit;
use crate::report::log::Log;

use frames::{Entry, Pool, Settings, Trailer};
use members::{Pieces, Start, CHUNK};

/// Why an archive could not be packed.
#[derive(Debug)]
pub enum PackError {
    Open(PathBuf, io::Error),
    UnknownFormat(PathBuf, Option<Foreign>),
    /// Reading or decoding the input failed.
    Read(io::Error),
    /// A block where a tar header should be is not one.
    NotATar {
        offset: u64,
    },
    Write(PathBuf, io::Error),
    /// OUT is IN.
    SameFile(PathBuf),
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::Open(path, e) => write!(f, "{}: {e}", path.display()),
            PackError::UnknownFormat(path, foreign) => {
                write!(
                    f,
                    "{}: not a tar, zstd, gzip, xz or bzip2 archive",
                    path.display()
                )?;
                match foreign {
                    Some(kind) => write!(f, " ({kind})"),
                    None => Ok(()),
                }
            }
            PackError::Read(e) => write!(f, "reading the input: {}", DecodeError::cause(e)),
            PackError::NotATar { offset } => {
                write!(f, "not a tar: no valid header at byte {offset} of the tar")
            }
            PackError::Write(path, e) => write!(f, "writing {}: {e}", path.display()),
            PackError::SameFile(path) => {
                write!(
                    f,
                    "{}: is the input; write the packed archive elsewhere",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for PackError {}

/// `container-loader pack IN OUT`: OUT is written anew; on failure what was written of it is
/// removed.
pub fn run(options: &Pack, log: &Log) -> Exit {
    match pack_file(options) {
        Ok(trailer) => {
            log.info(format_args!(
                "{}: {} members in {} frames",
                options.output.display(),
                trailer.members.len(),
                trailer.frames.len()
            ));
            Exit::Done
        }
        Err(e) => {
            log.error(e);
            Exit::Failed
        }
    }
}

/// Opens the input, decodes it whatever its format, and packs it into the output file.
fn pack_file(options: &Pack) -> Result<Trailer, PackError> {
    let input = &options.input;
    let open_err = |e| PackError::Open(input.clone(), e);
    let mut file = File::open(input).map_err(open_err)?;
    let (head, format) = format::peek(&mut file).map_err(open_err)?;
    let format =
        format.ok_or_else(|| PackError::UnknownFormat(input.clone(), format::foreign(&head)))?;
    let output = &options.output;
    if same_file(&file, output) {
        return Err(PackError::SameFile(output.clone()));
    }
    let decoder = decode::decoder(format, head, file, options.memory_limit);
    let out = File::create(output).map_err(|e| PackError::Write(output.clone(), e))?;
    let settings = Settings {
        level: options.level,
        threads: options.threads,
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let packed = pack(decoder, &mut out, settings, CHUNK, output).and_then(|trailer| {
        out.flush()
            .map_err(|e| PackError::Write(output.clone(), e))?;
        Ok(trailer)
    });
    if packed.is_err() {
        let _ = fs::remove_file(output);
    }
    packed
}

/// Whether `output` is the file `input` is: writing it would destroy what is being read.
fn same_file(input: &File, output: &Path) -> bool {
    match (input.metadata(), fs::metadata(output)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Packs the tar `tar` into `out` in pieces of `chunk` bytes at most; `output` names `out` in
/// errors.
fn pack(
    tar: impl Read,
    out: &mut impl Write,
    settings: Settings,
    chunk: usize,
    output: &Path,
) -> Result<Trailer, PackError> {
    let write_err = |e| PackError::Write(output.to_owned(), e);
    let mut pieces = Pieces::new(tar, chunk);
    let mut pool = Pool::new(settings);
    let mut trailer = Trailer::default();
    let mut in_member = false;
    let mut count = 0;
    while let Some(piece) = pieces.next_piece()? {
        match piece.start {
            Start::Member(member) => {
                trailer.members.push(Entry::new(member, count));
                in_member = true;
            }
            Start::End => in_member = false,
            Start::Continued => {}
        }
        if in_member {
            trailer.members.last_mut().expect("a member").frames += 1;
        }
        count += 1;
        if let Some(frame) = pool.push(piece.bytes).map_err(write_err)? {
            trailer.written(&frame).map_err(write_err)?;
            out.write_all(&frame.bytes).map_err(write_err)?;
        }
    }
    while let Some(frame) = pool.finish().map_err(write_err)? {
        trailer.written(&frame).map_err(write_err)?;
        out.write_all(&frame.bytes).map_err(write_err)?;
    }
    trailer.write(out).map_err(write_err)?;
    Ok(trailer)
}

#[cfg(test)]
mod tests;
