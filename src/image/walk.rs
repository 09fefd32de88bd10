//! The tar walk: steps through an archive's tar as it streams by, fed in pieces of any size,
//! noting what describes its images.
//!
//! A load sends the decoded stream to the engine once. [`Watching`] looks at every byte on the
//! way: tar headers (with their PAX and GNU extensions), and the small JSON files that
//! describe images; layers are only counted, never copied (a compressed one is hashed as it
//! passes). The tar crate parses each header; this module only steps from one header to the
//! next. What the walk noted ([`Walked`]) is then described ([`crate::image::describe`]).
//!
//! What is kept is bounded ([`crate::image::limits`]): description files are kept only when
//! they hold JSON, each is parsed and hashed once however often it is named. A file is known
//! by its name as the engines resolve it ([`normalize`]: `./a`, `.//a`, `x/../a` and `/a` are
//! all `a`), so another spelling of a name is the same file again.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::decode::TarAt;
use crate::image::digest::{blob_digest, hex, sha256_hex};
use crate::image::limits::{
    Invalid, ENTRIES_MAX, EXTENSION_MAX, KEEP_MAX, LOOKUPS_MAX, PATH_MAX, VALUES_MAX,
};

/// tar's block: headers are one block, data is padded to whole blocks. Every walk of a tar
/// (this one, the upload's, a delta's first pass) steps by it.
pub(crate) const BLOCK: usize = 512;
/// Descriptions are small; a larger entry is a layer and only its size is kept.
pub(crate) const SMALL_MAX: u64 = 1 << 20;
/// The description files an archive has one of at its top.
pub(super) const SINGLE_FILES: [&str; 3] = ["manifest.json", "index.json", "oci-layout"];
/// Magic bytes of the layer compressions containerd recognises: gzip, zstd.
const COMPRESSED_MAGIC: [&[u8]; 2] = [&[0x1f, 0x8b], &[0x28, 0xb5, 0x2f, 0xfd]];
/// Where the checksum field sits in a tar header.
const CKSUM: std::ops::Range<usize> = 148..156;
/// Reads of a walk by position: a header, or a description file in pieces.
const READ_AT: usize = 64 << 10;
/// Files at least this large are noted with where their data lies ([`Extent`]): a delta
/// upload steps over the frames of those it leaves out; smaller ones are not worth a seek.
const EXTENT_MIN: u64 = 64 << 10;

/// Reads through `R`, letting a [`Watcher`] see every byte that passes.
pub(crate) struct Watching<R> {
    inner: R,
    pub(crate) watcher: Watcher,
}

impl<R> Watching<R> {
    pub(crate) fn new(inner: R) -> Self {
        Watching {
            inner,
            watcher: Watcher::default(),
        }
    }
}

impl<R: Read> Read for Watching<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.watcher.feed(&buf[..n]);
        Ok(n)
    }
}

/// Why the walk could not read a tar to its end: where it stopped, or what the loader refuses
/// of it. The text completes "ARCHIVE: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// A header whose checksum does not add up, at byte `at`: the input is no tar, or a
    /// damaged one.
    NotATar { at: u64 },
    /// A header whose size cannot be read.
    DamagedHeader { at: u64 },
    /// A PAX extended header or GNU long name longer than [`EXTENSION_MAX`].
    OversizedExtension { at: u64 },
    /// The input stops inside an entry's header or data.
    EndsInsideEntry { at: u64 },
    /// A readable tar the loader refuses.
    Invalid(Invalid),
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::NotATar { at } => {
                write!(f, "not a tar, or a damaged tar header at byte {at}")
            }
            WalkError::DamagedHeader { at } => write!(f, "damaged tar header at byte {at}"),
            WalkError::OversizedExtension { at } => {
                write!(f, "oversized tar extension header at byte {at}")
            }
            WalkError::EndsInsideEntry { at } => {
                write!(f, "the tar ends inside an entry, at byte {at}")
            }
            WalkError::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl std::error::Error for WalkError {}

impl From<Invalid> for WalkError {
    fn from(invalid: Invalid) -> Self {
        WalkError::Invalid(invalid)
    }
}

/// Steps through a tar fed to it in pieces of any size, noting entry sizes and links and
/// keeping the small description files.
#[derive(Default)]
pub struct Watcher {
    header: Vec<u8>,
    data: Option<Data>,
    /// Path and link name for the next entry, from a PAX header or a GNU long name.
    next_path: Option<String>,
    next_link: Option<String>,
    offset: u64,
    ended: bool,
    broken: Option<WalkError>,
    /// Set when the tar holds what the loader refuses: the walk stops there.
    invalid: Option<Invalid>,
    contents: Walked,
    kept_bytes: u64,
    kept_values: usize,
    first_layer: Option<String>,
    /// The file or link whose header came last, as the walk noted it.
    entry: Option<Entry>,
}

/// A file or link of the tar, as the walk notes it (after any extension header before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its path, as [`normalize`] writes it.
    pub(crate) path: String,
    /// Its data's size in the tar.
    pub(crate) size: u64,
    /// Whether it is a regular file.
    pub(crate) file: bool,
}

/// The entry whose data is passing.
struct Data {
    /// The entry's size.
    size: u64,
    left: u64,
    padding: u64,
    sink: Sink,
}

enum Sink {
    Skip,
    /// A small file that may describe images: kept if it holds JSON (its first byte that is
    /// not white space opens an object or array), else only sniffed as a layer is.
    Maybe(String, Vec<u8>),
    Keep(String, Vec<u8>),
    /// A file too large to keep (a layer, most likely): hashed only if it is compressed.
    Layer(String, Sniff),
    Pax(Vec<u8>),
    LongName(Vec<u8>),
    LongLink(Vec<u8>),
}

/// A [`Sink::Maybe`] of a file of `size` bytes, once its first byte that is not white space
/// has come: kept when that opens JSON and it fits in what is kept (`kept`, counted up),
/// else sniffed as a layer.
fn settle(sink: Sink, size: u64, kept: &mut u64) -> Result<Sink, Invalid> {
    let Sink::Maybe(path, head) = sink else {
        return Ok(sink);
    };
    let Some(&first) = head.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(Sink::Maybe(path, head));
    };
    if first == b'{' || first == b'[' {
        if *kept + size > KEEP_MAX {
            return Err(Invalid::TooMany {
                what: "MiB of description files (JSON)",
                max: (KEEP_MAX >> 20) as usize,
            });
        }
        *kept += size;
        let mut bytes = Vec::with_capacity(size as usize);
        bytes.extend_from_slice(&head);
        return Ok(Sink::Keep(path, bytes));
    }
    // An OCI blob is named by its digest: no need to hash it.
    let named = blob_digest(&path).is_some();
    let mut sniff = Sniff::Undecided(Vec::new(), named);
    sniff.feed(&head);
    Ok(Sink::Layer(path, sniff))
}

impl Watcher {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.ended && self.broken.is_none() && self.invalid.is_none() {
            let taken = match &mut self.data {
                None => {
                    let n = (BLOCK - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..n]);
                    if self.header.len() == BLOCK {
                        self.on_header(self.offset + n as u64 - BLOCK as u64);
                        self.header.clear();
                    }
                    n
                }
                Some(data) if data.left > 0 => {
                    let n = data.left.min(bytes.len() as u64) as usize;
                    match &mut data.sink {
                        Sink::Skip => {}
                        Sink::Layer(_, sniff) => sniff.feed(&bytes[..n]),
                        Sink::Maybe(_, v)
                        | Sink::Keep(_, v)
                        | Sink::Pax(v)
                        | Sink::LongName(v)
                        | Sink::LongLink(v) => v.extend_from_slice(&bytes[..n]),
                    }
                    if let Sink::Maybe(..) = data.sink {
                        let sink = std::mem::replace(&mut data.sink, Sink::Skip);
                        data.sink =
                            settle(sink, data.size, &mut self.kept_bytes).unwrap_or_else(|e| {
                                self.invalid = Some(e);
                                Sink::Skip
                            });
                    }
                    if let (None, Sink::Layer(path, _)) = (&self.first_layer, &data.sink) {
                        self.first_layer = Some(path.clone());
                    }
                    data.left -= n as u64;
                    n
                }
                Some(data) => {
                    let n = data.padding.min(bytes.len() as u64) as usize;
                    data.padding -= n as u64;
                    n
                }
            };
            bytes = &bytes[taken..];
            self.offset += taken as u64;
            if self
                .data
                .as_ref()
                .is_some_and(|d| d.left == 0 && d.padding == 0)
            {
                let data = self.data.take().expect("checked above");
                self.on_data(data.sink);
            }
        }
    }

    /// The path of the first file the walk took for a layer (too large to keep, or not JSON),
    /// once its data has begun to pass.
    pub(crate) fn first_layer(&self) -> Option<&str> {
        self.first_layer.as_deref()
    }

    /// Bytes before the next header block begins (0 at or inside a header); `None` once the
    /// walk has stopped, at the end-of-archive block or at a tar it cannot read.
    pub(crate) fn to_next_header(&self) -> Option<u64> {
        if self.ended || self.broken.is_some() {
            return None;
        }
        Some(self.data.as_ref().map_or(0, |d| d.left + d.padding))
    }

    /// Steps over the rest of the entry whose data is passing, without its bytes, where the
    /// walk would keep nothing of them (a layer, or what it does not look at); returns how
    /// many bytes the tar has until the next header then, 0 when the entry's bytes are needed.
    /// A first pass over a plain tar reads only headers and description files this way.
    pub(crate) fn skip(&mut self) -> u64 {
        // A layer whose first bytes have not come, or that is being hashed, is read on: the
        // description may need its digest.
        let skippable = self.data.as_ref().is_some_and(|d| {
            matches!(
                d.sink,
                Sink::Skip | Sink::Layer(_, Sniff::Plain | Sniff::Compressed)
            )
        });
        if !skippable {
            return 0;
        }
        let data = self.data.take().expect("checked above");
        let n = data.left + data.padding;
        self.offset += n;
        // A layer not fed is not hashed: nothing is noted of it beyond its size.
        n
    }

    /// The file or link whose header the walk was fed last; `None` after any other header
    /// (a directory, an extension header).
    pub(crate) fn entry(&self) -> Option<&Entry> {
        self.entry.as_ref()
    }

    /// What the walk has noted so far.
    pub(crate) fn contents(&self) -> &Walked {
        &self.contents
    }

    /// Why the archive is refused, once the walk has found it.
    pub(crate) fn invalid(&self) -> Option<&Invalid> {
        self.invalid.as_ref()
    }

    /// What the tar held, or why it could not be read.
    pub fn finish(self) -> Result<Walked, WalkError> {
        if let Some(broken) = self.broken {
            return Err(broken);
        }
        if let Some(invalid) = self.invalid {
            return Err(WalkError::Invalid(invalid));
        }
        if !self.ended && (self.data.is_some() || !self.header.is_empty()) {
            return Err(WalkError::EndsInsideEntry { at: self.offset });
        }
        Ok(self.contents)
    }

    /// A whole header block is in `self.header`; `at` is its offset in the tar.
    fn on_header(&mut self, at: u64) {
        self.entry = None;
        if self.header.iter().all(|&b| b == 0) {
            self.ended = true;
            return;
        }
        let header = tar::Header::from_byte_slice(&self.header);
        let sum: u32 = self
            .header
            .iter()
            .enumerate()
            .map(|(i, &b)| if CKSUM.contains(&i) { b' ' } else { b } as u32)
            .sum();
        if header.cksum().ok() != Some(sum) {
            self.broken = Some(WalkError::NotATar { at });
            return;
        }
        let Ok(size) = header.entry_size() else {
            self.broken = Some(WalkError::DamagedHeader { at });
            return;
        };
        let kind = header.entry_type();
        let path = self
            .next_path
            .take()
            .unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
        let path = normalize(&path);
        let link = self.next_link.take().or_else(|| {
            header
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
        });
        let extension =
            kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink();
        if extension && size > EXTENSION_MAX {
            self.broken = Some(WalkError::OversizedExtension { at });
            return;
        }
        let tracked = kind.is_file() || kind.is_symlink() || kind.is_hard_link();
        self.entry = (tracked && !extension).then(|| Entry {
            path: path.clone(),
            size,
            file: kind.is_file(),
        });
        if tracked && !extension {
            if let Err(e) = self.contents.track(&path) {
                self.invalid = Some(e);
                return;
            }
        }
        let sink = self.sink(kind, path, link, size);
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if size == 0 {
            self.on_data(sink);
        } else {
            self.data = Some(Data {
                size,
                left: size,
                padding,
                sink,
            });
        }
    }

    /// Where the data of the entry just read goes: an extension header's into the path or
    /// link of the next entry, a small file that may describe images into what is kept, a
    /// larger one past its compression sniffer; a link is noted as it is read.
    fn sink(
        &mut self,
        kind: tar::EntryType,
        path: String,
        link: Option<String>,
        size: u64,
    ) -> Sink {
        if kind.is_pax_local_extensions() {
            Sink::Pax(Vec::new())
        } else if kind.is_gnu_longname() {
            Sink::LongName(Vec::new())
        } else if kind.is_gnu_longlink() {
            Sink::LongLink(Vec::new())
        } else if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = link {
                // A symlink is relative to its own directory, a hard link to the archive root.
                let base = match kind.is_symlink() {
                    true => path.rsplit_once('/').map_or("", |(dir, _)| dir),
                    false => "",
                };
                let resolved = join(base, &target);
                if kind.is_hard_link() {
                    self.contents.hard_linked.insert(resolved.clone());
                }
                self.contents.links.insert(path, resolved);
            }
            Sink::Skip
        } else if kind.is_file() {
            self.contents.sizes.insert(path.clone(), size);
            if describes(&path) && size <= SMALL_MAX {
                Sink::Maybe(path, Vec::new())
            } else {
                // An OCI blob is named by its digest: no need to hash it.
                let named = blob_digest(&path).is_some();
                Sink::Layer(path, Sniff::Undecided(Vec::new(), named))
            }
        } else {
            Sink::Skip
        }
    }

    fn on_data(&mut self, sink: Sink) {
        let text = |v: &[u8]| {
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        };
        match sink {
            Sink::Skip => {}
            Sink::Layer(path, Sniff::Hashing(hash)) => {
                let digest = format!("sha256:{}", hex(&hash.finalize()));
                self.contents.digests.insert(path, digest);
            }
            Sink::Layer(path, Sniff::Compressed) => {
                if let Some(digest) = blob_digest(&path) {
                    self.contents.digests.insert(path, digest);
                }
            }
            Sink::Layer(..) | Sink::Maybe(..) => {}
            Sink::Keep(path, bytes) => {
                self.kept_values += json_values(&bytes);
                if self.kept_values > VALUES_MAX {
                    self.invalid = Some(Invalid::TooMany {
                        what: "JSON values in its description files",
                        max: VALUES_MAX,
                    });
                    return;
                }
                let sha256 = sha256_hex(&bytes);
                self.contents.kept.insert(path, Kept { bytes, sha256 });
            }
            Sink::LongName(v) => self.next_path = Some(text(&v)),
            Sink::LongLink(v) => self.next_link = Some(text(&v)),
            Sink::Pax(v) => {
                for record in tar::PaxExtensions::new(&v).flatten() {
                    match (record.key(), record.value()) {
                        (Ok("path"), Ok(p)) => self.next_path = Some(p.to_owned()),
                        (Ok("linkpath"), Ok(l)) => self.next_link = Some(l.to_owned()),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Whether the tar header `block` is an extension header for the entry after it (PAX local,
/// GNU long name or long link).
pub(crate) fn is_extension(block: &[u8]) -> bool {
    let kind = tar::Header::from_byte_slice(block).entry_type();
    kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink()
}

/// Where a file's data lies in the tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extent {
    /// Its path, as [`normalize`] writes it.
    pub(crate) path: String,
    /// The tar offset of its data, and the data's size.
    pub(crate) at: u64,
    pub(crate) size: u64,
}

/// Feeds `watcher` the tar that `source` reads by position (`size` bytes at most): its
/// headers and the entries the walk keeps, stepping over the others. Notes in `extents` where
/// each file of [`EXTENT_MIN`] bytes or more lies (at most [`ENTRIES_MAX`] of them).
pub(crate) fn walk_at(
    source: &mut dyn TarAt,
    size: u64,
    watcher: &mut Watcher,
    extents: &mut Vec<Extent>,
) -> io::Result<()> {
    let mut buf = vec![0; READ_AT];
    let mut at = 0;
    // Whether the last header was an extension header: the upload's rewrite leaves out no
    // file behind one (src/rewrite/mod.rs), so none is noted.
    let mut extended = false;
    while at < size && watcher.invalid().is_none() {
        let Some(left) = watcher.to_next_header() else {
            break;
        };
        let skipped = watcher.skip();
        if skipped > 0 {
            at += skipped;
            if at > size {
                // A file stepped over runs past the tar's end: it is cut short.
                let cut = WalkError::EndsInsideEntry { at: size };
                return Err(io::Error::new(io::ErrorKind::InvalidData, cut));
            }
            continue;
        }
        let want = match left {
            0 => BLOCK as u64,
            left => left.min(READ_AT as u64),
        } as usize;
        let n = source.read_tar_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        let header = left == 0 && n == BLOCK;
        let after_extension = header && std::mem::replace(&mut extended, is_extension(&buf[..n]));
        watcher.feed(&buf[..n]);
        at += n as u64;
        let data_begins = header && watcher.to_next_header().is_some_and(|l| l > 0);
        let room = extents.len() < ENTRIES_MAX;
        if let Some(e) = watcher
            .entry()
            .filter(|_| data_begins && room && !after_extension)
        {
            if e.file && e.size >= EXTENT_MIN {
                extents.push(Extent {
                    path: e.path.clone(),
                    at,
                    size: e.size,
                });
            }
        }
    }
    Ok(())
}

/// Whether a large file is compressed, and its digest if so. A docker-archive's layers are
/// plain tars as a rule, whose digest is the config's diffID; a compressed one's digest is
/// known by hashing it, which costs nothing for the plain ones, or from its name where that
/// is `blobs/sha256/<digest>` (an OCI blob: trusted, as a wrong one can only make the engine's
/// id differ from the one expected, never match it).
enum Sniff {
    /// The first bytes, and whether the name holds the digest.
    Undecided(Vec<u8>, bool),
    Hashing(Sha256),
    Compressed,
    Plain,
}

impl Sniff {
    fn feed(&mut self, bytes: &[u8]) {
        match self {
            Sniff::Hashing(hash) => hash.update(bytes),
            Sniff::Plain | Sniff::Compressed => {}
            Sniff::Undecided(head, named) => {
                let want = 4 - head.len();
                head.extend_from_slice(&bytes[..want.min(bytes.len())]);
                if head.len() < 4 {
                    return;
                }
                let compressed = COMPRESSED_MAGIC.iter().any(|m| head.starts_with(m));
                *self = match compressed {
                    true if *named => Sniff::Compressed,
                    true => {
                        let mut hash = Sha256::new();
                        hash.update(&head[..]);
                        hash.update(&bytes[want..]);
                        Sniff::Hashing(hash)
                    }
                    false => Sniff::Plain,
                };
            }
        }
    }
}

/// A description file as kept: its bytes, and their sha256 (hex), taken once as it passed.
#[derive(Debug)]
pub(super) struct Kept {
    pub(super) bytes: Vec<u8>,
    sha256: String,
}

/// What one pass over the tar noted.
#[derive(Default, Debug)]
pub struct Walked {
    sizes: HashMap<String, u64>,
    links: HashMap<String, String>,
    /// The targets of hard links: a tar reader makes a hard link from its target's file, so
    /// that file must be in the tar (a symlink may dangle).
    hard_linked: HashSet<String>,
    pub(super) kept: HashMap<String, Kept>,
    /// `sha256:<hex>` of each large compressed file.
    digests: HashMap<String, String>,
    /// Kept files parsed so far (`None`: not JSON after all): each is parsed once, however
    /// often descriptors name it. Emptied when a description is done.
    parsed: RefCell<HashMap<String, Option<Rc<Value>>>>,
    /// Lookups of description files since then; past [`LOOKUPS_MAX`] they find nothing and
    /// the description ends in an error.
    lookups: Cell<usize>,
}

/// Whether a file may describe images by its path (it is kept if it also holds JSON).
fn describes(path: &str) -> bool {
    path.ends_with(".json") || path.starts_with("blobs/") || path == "json" || path == "oci-layout"
}

impl Walked {
    /// Checks a file or link at `path` before it is noted: not too long a path, not too many
    /// entries, and no description file twice.
    fn track(&self, path: &str) -> Result<(), Invalid> {
        if path.len() > PATH_MAX {
            return Err(Invalid::TooLong {
                what: "file name",
                max: PATH_MAX,
            });
        }
        let again = self.sizes.contains_key(path) || self.links.contains_key(path);
        if again && (SINGLE_FILES.contains(&path) || describes(path)) {
            return Err(Invalid::Twice(path.to_owned()));
        }
        if self.sizes.len() + self.links.len() >= ENTRIES_MAX {
            return Err(Invalid::TooMany {
                what: "files and links",
                max: ENTRIES_MAX,
            });
        }
        Ok(())
    }

    /// Ends a description: the parsed files are let go, and an error if it took more lookups
    /// than [`LOOKUPS_MAX`] (whatever was found then is incomplete).
    pub(crate) fn settled(&self) -> Result<(), Invalid> {
        self.parsed.borrow_mut().clear();
        let lookups = self.lookups.replace(0);
        if lookups > LOOKUPS_MAX {
            return Err(Invalid::TooMany {
                what: "references to its description files",
                max: LOOKUPS_MAX,
            });
        }
        Ok(())
    }

    fn resolve<'a>(&'a self, path: &'a str) -> &'a str {
        let mut path = path;
        for _ in 0..8 {
            match self.links.get(path) {
                Some(target) => path = target,
                None => break,
            }
        }
        path
    }

    /// The kept file at `path`, parsed (once).
    pub(crate) fn json(&self, path: &str) -> Option<Rc<Value>> {
        if !self.spend() {
            return None;
        }
        let normalized = normalize(path);
        let path = self.resolve(&normalized);
        if let Some(parsed) = self.parsed.borrow().get(path) {
            return parsed.clone();
        }
        let kept = self.kept.get(path)?;
        let parsed = serde_json::from_slice(&kept.bytes).ok().map(Rc::new);
        self.parsed
            .borrow_mut()
            .insert(path.to_owned(), parsed.clone());
        parsed
    }

    /// Counts one lookup; false once there were more than [`LOOKUPS_MAX`].
    pub(super) fn spend(&self) -> bool {
        let lookups = self.lookups.get() + 1;
        self.lookups.set(lookups);
        lookups <= LOOKUPS_MAX
    }

    /// The regular file `path` stands for (links followed) and its size.
    pub(crate) fn file(&self, path: &str) -> Option<(String, u64)> {
        let normalized = normalize(path);
        let path = self.resolve(&normalized);
        self.sizes.get(path).map(|&size| (path.to_owned(), size))
    }

    /// Whether a hard link in the archive points at `path`.
    pub(crate) fn hard_linked(&self, path: &str) -> bool {
        self.hard_linked.contains(path)
    }

    pub(crate) fn size(&self, path: &str) -> Option<u64> {
        self.sizes.get(self.resolve(&normalize(path))).copied()
    }

    /// The sha256 (hex) and size of the description file kept at `path` (links followed).
    pub(crate) fn kept_file(&self, path: &str) -> Option<(&str, usize)> {
        let kept = self.kept.get(self.resolve(&normalize(path)))?;
        Some((&kept.sha256, kept.bytes.len()))
    }

    /// `sha256:<hex>` of the compressed layer file at `path` (links followed), hashed as it
    /// passed or told by its blob name.
    pub(crate) fn compressed_digest(&self, path: &str) -> Option<&str> {
        self.digests
            .get(self.resolve(&normalize(path)))
            .map(String::as_str)
    }
}

/// How many JSON values `json` holds at most: one per comma, colon and opening bracket
/// outside strings, plus one. Counted before anything is parsed, as what a parse costs.
pub(super) fn json_values(json: &[u8]) -> usize {
    let (mut count, mut in_string, mut escaped) = (1, false, false);
    for &b in json {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b',' | b':' | b'[' | b'{') => count += 1,
            (false, _, _) => {}
        }
    }
    count
}

/// A tar entry's name as the engines resolve it, the one spelling every walk of a tar notes and
/// looks a file up by: Go's `path.Clean` (docker's extraction, containers/image's
/// `findTarComponent` and containerd's importer all clean names so: `./a`, `.//a` and
/// `x/../a` are `a`), without the leading `/` that docker's extraction drops by joining the
/// name to its directory (`/../a` is `a` too). A `..` above the top stays: it names no file
/// inside the archive. The top itself is "".
pub(crate) fn normalize(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|&p| p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// `dir` + a link target, as [`normalize`] writes the path: `..` stops at the archive's top.
fn join(dir: &str, target: &str) -> String {
    normalize(&format!("/{dir}/{target}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use container_loader_testkit::tar_of_files;

    /// A tar in memory, read by position.
    struct InMemory(Vec<u8>);

    impl TarAt for InMemory {
        fn read_tar_at(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize> {
            let rest = self.0.get(at as usize..).unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }
    }

    #[test]
    fn a_walk_by_position_notes_where_large_files_lie_but_not_behind_an_extension_header() {
        let big = vec![7u8; 100 << 10];
        let long = format!("{}/layer.tar", "d".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        for path in ["small", "a/layer.tar", long.as_str()] {
            let data = if path == "small" {
                &b"{}"[..]
            } else {
                &big[..]
            };
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            // The long name goes behind a GNU long-name header.
            b.append_data(&mut h, path, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let (mut watcher, mut extents) = (Watcher::default(), Vec::new());
        let len = tar.len() as u64;
        walk_at(&mut InMemory(tar), len, &mut watcher, &mut extents).unwrap();
        let first = Extent {
            path: "a/layer.tar".to_owned(),
            at: 3 * BLOCK as u64,
            size: 100 << 10,
        };
        assert_eq!(extents, [first]);
        assert!(watcher.finish().is_ok());
    }

    #[test]
    fn a_walk_by_position_fails_where_a_file_stepped_over_runs_past_the_end() {
        let mut tar = tar_of_files(&[("a/layer.tar", vec![7u8; 100 << 10])]);
        // Past the first read of the file (64 KiB), which tells a plain layer from a compressed one.
        tar.truncate(BLOCK + (80 << 10));
        let len = tar.len() as u64;
        let mut watcher = Watcher::default();
        let e = walk_at(&mut InMemory(tar), len, &mut watcher, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("ends inside"), "{e}");
    }

    #[test]
    fn cleans_tar_names_as_the_engines_read_them() {
        for (name, clean) in [
            ("manifest.json", "manifest.json"),
            ("./manifest.json", "manifest.json"),
            (".//manifest.json", "manifest.json"),
            ("././manifest.json", "manifest.json"),
            ("x/../manifest.json", "manifest.json"),
            ("/manifest.json", "manifest.json"),
            ("/../manifest.json", "manifest.json"),
            ("blobs//sha256/./a/", "blobs/sha256/a"),
            ("a/b/../../c", "c"),
            ("../manifest.json", "../manifest.json"),
            ("a/../../b", "../b"),
            ("./", ""),
            ("", ""),
        ] {
            assert_eq!(normalize(name), clean, "{name:?}");
        }
    }

    #[test]
    fn follows_relative_symlinks_to_layers() {
        assert_eq!(join("abc", "../def.tar"), "def.tar");
        assert_eq!(join("a/b", "./c"), "a/b/c");
    }
}
