//! What an archive says about itself: the images it holds, read from its tar as it streams by.
//!
//! A load sends the decoded stream to the engine once. [`Watching`] looks at every byte on the
//! way: tar headers, and the small JSON files that describe images; layers are only counted,
//! never copied. After the load the loader knows which references and which image id the
//! archive promised and checks the engine against them; `inspect` reads archives the same way.
//! Both layouts are read: docker-archive (`manifest.json` with `RepoTags`, which `docker save`
//! writes last) and OCI (`index.json` with the `ref.name` annotation). An image has two
//! content digests, and which one an engine calls its id depends on its image store: the
//! sha256 of the image config (classic docker, podman) and the digest of its manifest (docker's
//! containerd image store; see [`Image::target`]). The tar crate parses each header; this
//! module only steps from one header to the next.
//!
//! An archive is input from whoever built the image, so what is kept of it is bounded, and so
//! is the work of describing it: description files are kept only when they hold JSON, each is
//! parsed and hashed once however often it is named, and past the limits below (images, names,
//! layers, files tracked, JSON kept) the archive is refused as [`Invalid`], naming the limit,
//! rather than read in memory or time without end. So is an archive holding one description
//! file twice, which the engines and the loader could read differently; a file is known by its
//! name as the engines resolve it ([`normalize`]: `./a`, `.//a`, `x/../a` and `/a` are all
//! `a`), so another spelling of a name is the same file again.
//!
//! Where an archive offers one name for several platforms (an image index, or the name on
//! several images), it is described as an engine on the device gets it through
//! [`crate::rewrite::Loadable`]: the name on the device's image alone.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::image::platform::{best, Best, Platform, Unsuited};
use crate::input::reference::{canonical, Reference};

/// tar's block: headers are one block, data is padded to whole blocks.
const BLOCK: usize = 512;
/// Descriptions are small; a larger entry is a layer and only its size is kept.
pub(crate) const SMALL_MAX: u64 = 1 << 20;
/// Bound on the description files kept in memory, whatever the archive holds (4 MiB; `docker
/// save` of 100 images writes well under 1 MiB of them).
const KEEP_MAX: u64 = 4 << 20;
/// Most JSON values in the kept files together: each one costs about 50 bytes once parsed.
const VALUES_MAX: usize = 65_536;
/// Longest PAX extended header or GNU long name accepted.
const EXTENSION_MAX: u64 = 64 << 10;
/// Most files and links whose size, target or digest the walk notes (a docker-archive has
/// about three per layer), and the longest path it notes: no tool names a layer or a
/// description file longer (`blobs/sha512/<128 hex>` is 141 bytes).
const ENTRIES_MAX: usize = 16_384;
const PATH_MAX: usize = 256;
/// Most images one archive may describe, names one image may carry, and layers all its
/// images may list together.
pub(crate) const IMAGES_MAX: usize = 1_000;
const NAMES_MAX: usize = 64;
const LAYERS_MAX: usize = 16_384;
/// Longest name kept (a valid reference is at most 255 + 1 + 128 + 1 + 135 bytes), and the
/// longest os, architecture or variant.
const NAME_LEN_MAX: usize = 600;
const PLATFORM_LEN_MAX: usize = 64;
/// Most lookups of a description file while describing the archive: image indexes may name
/// each other and the same files many times over.
const LOOKUPS_MAX: usize = 100_000;
/// The description files an archive has one of at its top.
const SINGLE_FILES: [&str; 3] = ["manifest.json", "index.json", "oci-layout"];
/// The OCI annotation that names an image in an OCI archive.
pub(crate) const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full name, beside a bare tag as ref.name (`docker save`
/// from docker >= 25 writes both).
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The manifest containerd makes up for a docker-archive, and the media types it gives.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Any compressed layer: containerd 1.7 labels zstd layers gzip too (measured).
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// BuildKit's annotation on the attestation manifests it puts in an index beside the images.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// How deep image indexes may nest inside each other.
pub(crate) const NESTING_MAX: usize = 4;
/// Magic bytes of the layer compressions containerd recognises: gzip, zstd.
const COMPRESSED_MAGIC: [&[u8]; 2] = [&[0x1f, 0x8b], &[0x28, 0xb5, 0x2f, 0xfd]];
/// Where the checksum field sits in a tar header.
const CKSUM: std::ops::Range<usize> = 148..156;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// What the archive calls the image: RepoTags, or the OCI ref name. May be empty.
    pub references: Vec<String>,
    /// `sha256:<hex>` of the image config: the id classic docker and podman give the image.
    pub id: Option<String>,
    /// `sha256:<hex>` of the manifest (or index) the image is known by in a content store,
    /// the id docker's containerd image store gives it: the archive's own descriptor in
    /// index.json where it has an OCI layout (containerd prefers that over manifest.json),
    /// else the docker manifest containerd makes up for a docker-archive, computed here the
    /// same way (config and layer digests and sizes, in the JSON that Go's encoder writes).
    pub target: Option<String>,
    pub layer_sizes: Vec<u64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub variant: Option<String>,
}

impl Image {
    /// The platform its config names.
    pub fn platform(&self) -> Option<Platform> {
        Some(Platform {
            os: self.os.clone()?,
            architecture: self.architecture.clone()?,
            variant: self.variant.clone(),
        })
    }
}

/// The images of one archive and how they are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub layout: &'static str,
    pub images: Vec<Image>,
}

/// Which of an archive's images a list entry's reference stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a> {
    /// The archive carries the reference.
    Named(&'a Image),
    /// The archive holds one image and does not carry the reference.
    Only(&'a Image),
    /// Several images, none of them under the reference.
    Ambiguous(usize),
    /// No image at all.
    Empty,
}

impl Images {
    /// The image `reference` stands for. Names compare as the engines read them: a name without
    /// registry is on docker.io, one without a path under `library/`, and no tag means `latest`.
    /// Where several images carry the reference (one per platform), the one for the device.
    pub fn find(&self, reference: &Reference) -> Match<'_> {
        let wanted = canonical(reference.as_str());
        let device = Platform::device();
        let named = self
            .images
            .iter()
            .filter(|i| i.references.iter().any(|r| canonical(r) == wanted))
            .min_by_key(|i| {
                let rank = i.platform().and_then(|p| p.rank(&device));
                rank.unwrap_or(u8::MAX)
            });
        match (named, self.images.as_slice()) {
            (Some(image), _) => Match::Named(image),
            (None, [only]) => Match::Only(only),
            (None, []) => Match::Empty,
            (None, all) => Match::Ambiguous(all.len()),
        }
    }
}

/// Why an archive that is a readable tar is refused: it holds a description file twice, or
/// more than the loader reads. The text completes "ARCHIVE: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A description file the tar holds twice: podman reads the first, docker and the loader
    /// the last.
    Twice(String),
    /// More of `what` than `max`.
    TooMany { what: &'static str, max: usize },
    /// A `what` longer than `max` bytes.
    TooLong { what: &'static str, max: usize },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Twice(path) => write!(
                f,
                "holds {path} twice, and engines differ in which one they read: an invalid archive; save the image again"
            ),
            Invalid::TooMany { what, max } => write!(
                f,
                "describes more than {max} {what}, more than the loader reads: not an archive it loads; save fewer images into one archive"
            ),
            Invalid::TooLong { what, max } => write!(
                f,
                "has a {what} longer than {max} bytes, more than the loader reads: not an archive it loads"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// Reads a whole decoded archive (to its end, where the decoder checks its checksum) and says
/// which images it holds: `Ok(None)` for a tar that describes none.
/// An archive found [`Invalid`] stops the reading there.
pub fn read(decoded: impl Read) -> io::Result<Option<Images>> {
    let mut watching = Watching::new(decoded);
    let mut buf = vec![0; 64 << 10];
    while watching.read(&mut buf)? > 0 {
        if let Some(invalid) = watching.watcher.invalid() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, invalid.clone()));
        }
    }
    let invalid = |reason| io::Error::new(io::ErrorKind::InvalidData, reason);
    let contents = watching.watcher.finish().map_err(invalid)?;
    contents
        .describe()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads through `R`, letting a [`Watcher`] see every byte that passes.
pub struct Watching<R> {
    inner: R,
    pub watcher: Watcher,
}

impl<R> Watching<R> {
    pub fn new(inner: R) -> Self {
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
    broken: Option<String>,
    /// Set when the tar holds what the loader refuses: the walk stops there.
    invalid: Option<Invalid>,
    contents: Contents,
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
    pub path: String,
    /// Its data's size in the tar.
    pub size: u64,
    /// Whether it is a regular file.
    pub file: bool,
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
        let skippable = self
            .data
            .as_ref()
            .is_some_and(|d| matches!(d.sink, Sink::Skip | Sink::Layer(..)));
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
    pub(crate) fn contents(&self) -> &Contents {
        &self.contents
    }

    /// Why the archive is refused, once the walk has found it.
    pub fn invalid(&self) -> Option<&Invalid> {
        self.invalid.as_ref()
    }

    /// What the tar held, or why it could not be read.
    pub fn finish(self) -> Result<Contents, String> {
        if let Some(reason) = self.broken {
            return Err(reason);
        }
        if let Some(invalid) = self.invalid {
            return Err(invalid.to_string());
        }
        if !self.ended && (self.data.is_some() || !self.header.is_empty()) {
            return Err(format!(
                "the tar ends inside an entry, at byte {}",
                self.offset
            ));
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
            self.broken = Some(format!("not a tar, or a damaged tar header at byte {at}"));
            return;
        }
        let Ok(size) = header.entry_size() else {
            self.broken = Some(format!("damaged tar header at byte {at}"));
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
            self.broken = Some(format!("oversized tar extension header at byte {at}"));
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
        let sink = if kind.is_pax_local_extensions() {
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
        };
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
struct Kept {
    bytes: Vec<u8>,
    sha256: String,
}

/// What one pass over the tar noted.
#[derive(Default, Debug)]
pub struct Contents {
    sizes: HashMap<String, u64>,
    links: HashMap<String, String>,
    /// The targets of hard links: a tar reader makes a hard link from its target's file, so
    /// that file must be in the tar (a symlink may dangle).
    hard_linked: std::collections::HashSet<String>,
    kept: HashMap<String, Kept>,
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

impl Contents {
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

    /// The images described, `None` when the tar is neither a docker-archive nor OCI, or when
    /// it is [`Invalid`] (see [`Contents::describe`]).
    pub fn images(&self) -> Option<Images> {
        self.describe().ok().flatten()
    }

    /// The images described, `None` when the tar is neither a docker-archive nor OCI; an
    /// error when it describes more than the loader reads. Where the archive offers one name
    /// for several platforms, the image this machine's engine gets ([`Contents::describe_for`]).
    pub fn describe(&self) -> Result<Option<Images>, Invalid> {
        self.describe_for(&Platform::device())
    }

    /// The images described as an engine on `device` gets them: where several carry one name,
    /// the one for `device` alone ([`one_per_name`]), and an image index resolved to its
    /// manifest for `device`. Where no single image suits `device`, every image is listed as
    /// the archive has it (the load fails before its end, [`crate::rewrite`]).
    pub fn describe_for(&self, device: &Platform) -> Result<Option<Images>, Invalid> {
        let described = self.describe_all(device);
        self.settled().and(described)
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

    fn describe_all(&self, device: &Platform) -> Result<Option<Images>, Invalid> {
        // containerd reads index.json only with an `oci-layout` file beside it, and then
        // ignores manifest.json; docker and podman read manifest.json first.
        let oci_layout = self
            .json("oci-layout")
            .is_some_and(|l| l["imageLayoutVersion"].is_string());
        let index = self.json("index.json");
        if let Some(manifest) = self.json("manifest.json") {
            let index = index.as_deref().filter(|_| oci_layout);
            return Ok(Some(Images {
                layout: "docker-archive",
                images: self.docker_images(&manifest, index, device)?,
            }));
        }
        let Some(index) = index else {
            return Ok(None);
        };
        Ok(Some(Images {
            layout: "oci-archive",
            images: self.oci_images(&index, device)?,
        }))
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
    fn spend(&self) -> bool {
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

    /// An image with what its config at `path` says: its id and platform.
    fn image_of_config(&self, path: &str) -> Result<Image, Invalid> {
        let kept = self.kept.get(self.resolve(&normalize(path)));
        let config = self.json(path);
        let text = |key: &str| match config.as_ref().and_then(|c| c[key].as_str()) {
            Some(t) if t.len() > PLATFORM_LEN_MAX => Err(Invalid::TooLong {
                what: "platform (os, architecture or variant) in an image config",
                max: PLATFORM_LEN_MAX,
            }),
            t => Ok(t.map(str::to_owned)),
        };
        Ok(Image {
            references: Vec::new(),
            id: kept.map(|k| format!("sha256:{}", k.sha256)),
            target: None,
            layer_sizes: Vec::new(),
            architecture: text("architecture")?,
            os: text("os")?,
            variant: text("variant")?,
        })
    }

    /// The image manifest a descriptor stands for on `device`: its blob, or where that is an
    /// image index (one image for several platforms), its entry for `device` ([`Contents::
    /// best_child`]), as the engines pick it. An error when the archive lacks the blob, or no
    /// entry suits `device` (the platforms offered then).
    pub(crate) fn image_manifest(
        &self,
        descriptor: &Value,
        device: &Platform,
        depth: usize,
    ) -> Result<Rc<Value>, Unresolved> {
        let digest = descriptor["digest"].as_str();
        let missing = || Unresolved::Missing(digest.unwrap_or("a manifest without digest").into());
        let manifest = self
            .json(&blob(digest).ok_or_else(missing)?)
            .ok_or_else(missing)?;
        if !manifest["manifests"].is_array() {
            return Ok(manifest);
        }
        if depth >= NESTING_MAX {
            return Err(Unresolved::TooDeep);
        }
        match self.best_child(&manifest, device, depth) {
            Some(child) => self.image_manifest(child, device, depth + 1),
            None => Err(Unresolved::NoPlatform(
                self.children_platforms(&manifest, device, depth),
            )),
        }
    }

    /// The entry of the image index `index` for `device`: the one whose platform suits it
    /// best, the first of equals, as podman and containerd pick it; attestations are no
    /// images. `None` when none suits it, or the index is nested deeper than [`NESTING_MAX`].
    fn best_child<'v>(
        &self,
        index: &'v Value,
        device: &Platform,
        depth: usize,
    ) -> Option<&'v Value> {
        if depth >= NESTING_MAX {
            return None;
        }
        let children = index["manifests"].as_array()?;
        children
            .iter()
            .filter(|c| !attestation(c))
            .filter_map(|c| Some((self.platform_at(c, device, depth + 1)?.rank(device)?, c)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c)
    }

    /// The platforms an image index offers (its entries', as [`Contents::platform_at`] tells
    /// them), for a message.
    fn children_platforms(
        &self,
        index: &Value,
        device: &Platform,
        depth: usize,
    ) -> Vec<Option<Platform>> {
        let children = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
        children
            .iter()
            .filter(|c| !attestation(c))
            .map(|c| self.platform_at(c, device, depth + 1))
            .collect()
    }

    /// The platform of the image a descriptor stands for on `device`: the one the descriptor
    /// names, else its manifest's config's, and for an image index its entry's for `device`.
    fn platform_at(&self, descriptor: &Value, device: &Platform, depth: usize) -> Option<Platform> {
        if !self.spend() {
            return None;
        }
        if let Some(platform) = Platform::of(&descriptor["platform"]) {
            return Some(platform);
        }
        let manifest = self.json(&blob(descriptor["digest"].as_str())?)?;
        if manifest["manifests"].is_array() {
            let child = self.best_child(&manifest, device, depth)?;
            return self.platform_at(child, device, depth + 1);
        }
        Platform::of(&*self.json(&blob(manifest["config"]["digest"].as_str())?)?)
    }

    /// Which items of manifest.json an engine on `device` gets, under which names: `None` for
    /// an item left out ([`one_per_name`], each item's platform from its config).
    pub(crate) fn docker_choice(
        &self,
        items: &[Value],
        device: &Platform,
    ) -> Result<Vec<Option<Vec<String>>>, Unsuited> {
        let images: Vec<(Vec<String>, Option<Platform>)> = items
            .iter()
            .map(|item| {
                let names = strings(&item["RepoTags"]);
                let config = item["Config"].as_str().filter(|_| !names.is_empty());
                let platform = config.and_then(|c| Platform::of(&*self.json(c)?));
                (names, platform)
            })
            .collect();
        one_per_name(&images, device)
    }

    /// Which entries of index.json an engine on `device` gets (`true`: kept): where several
    /// carry one name, the one for `device` ([`one_per_name`]; an entry that loses a name is
    /// left out, names and all); entries without a name, where they are for several
    /// platforms, the one for `device` (podman refuses several, docker's containerd store
    /// loads each). Attestations stay: they are no images.
    pub(crate) fn index_choice(
        &self,
        descriptors: &[Value],
        device: &Platform,
    ) -> Result<Vec<bool>, Unsuited> {
        let images: Vec<(Vec<String>, Option<Platform>)> = descriptors
            .iter()
            .map(|d| match attestation(d) {
                true => (Vec::new(), None),
                false => (descriptor_names(d), self.platform_at(d, device, 0)),
            })
            .collect();
        let kept = one_per_name(&images, device)?;
        let mut keep: Vec<bool> = kept
            .iter()
            .zip(&images)
            .map(|(k, (names, _))| k.as_ref().is_some_and(|k| k.len() == names.len()))
            .collect();
        let unnamed: Vec<usize> = (0..descriptors.len())
            .filter(|&i| images[i].0.is_empty() && !attestation(&descriptors[i]))
            .collect();
        let platforms: Vec<Option<Platform>> =
            unnamed.iter().map(|&i| images[i].1.clone()).collect();
        if platforms.iter().any(|p| *p != platforms[0]) {
            let chosen = match best(&platforms, device) {
                Best::One(i) => i,
                Best::Several(at) => at[0],
                Best::NoneFits => return Err(Unsuited::none_fits(None, device, &platforms)),
            };
            for (j, &i) in unnamed.iter().enumerate() {
                keep[i] = j == chosen;
            }
        }
        Ok(keep)
    }

    /// The images of a docker-archive; `index` is its index.json when it also has an OCI
    /// layout (`docker save` from docker >= 25), which names the manifests.
    fn docker_images(
        &self,
        manifest: &Value,
        index: Option<&Value>,
        device: &Platform,
    ) -> Result<Vec<Image>, Invalid> {
        let items = manifest.as_array().map_or(&[][..], Vec::as_slice);
        let chosen = self.docker_choice(items, device).ok();
        let mut layers_total = 0;
        let mut images = Vec::with_capacity(items.len().min(IMAGES_MAX));
        for (i, item) in items.iter().enumerate() {
            let names_kept = match &chosen {
                Some(chosen) => match &chosen[i] {
                    Some(kept) => kept.clone(),
                    None => continue,
                },
                None => strings(&item["RepoTags"]),
            };
            let config = item["Config"].as_str().unwrap_or("");
            let mut image = self.image_of_config(config)?;
            image.references = names(names_kept)?;
            let layers = strings(&item["Layers"]);
            layers_total += layers.len();
            image.target = match index {
                Some(index) => self.described_by(index, &image.references, image.id.as_deref()),
                None => self.docker_manifest_digest(config, &layers),
            };
            image.layer_sizes = layers.iter().map(|l| self.size(l).unwrap_or(0)).collect();
            images.push(image);
            within(images.len(), IMAGES_MAX, "images")?;
            within(layers_total, LAYERS_MAX, "layers")?;
        }
        Ok(images)
    }

    /// The digest of the index.json descriptor for an image of manifest.json: the one that
    /// carries one of its names, else the one whose manifest has its config.
    fn described_by(&self, index: &Value, names: &[String], id: Option<&str>) -> Option<String> {
        let descriptors = index["manifests"].as_array()?;
        let wanted: Vec<String> = names.iter().map(|n| canonical(n)).collect();
        let named = descriptors.iter().find(|d| {
            descriptor_names(d)
                .iter()
                .any(|n| wanted.contains(&canonical(n)))
        });
        let by_config = || {
            descriptors.iter().find(|d| {
                let manifest = blob(d["digest"].as_str()).and_then(|p| self.json(&p));
                id.is_some() && manifest.is_some_and(|m| m["config"]["digest"].as_str() == id)
            })
        };
        named
            .or_else(by_config)
            .and_then(|d| sha256_digest(d["digest"].as_str()?))
    }

    /// The digest of the manifest containerd writes for a docker-archive image, which has
    /// none of its own (`ImportIndex` in containerd's images/archive): Go's JSON of
    /// `{schemaVersion, mediaType, config, layers}`, each descriptor `{mediaType, digest,
    /// size}`. A plain layer's digest is its diffID, which the engine checks on load; a
    /// compressed one's was hashed as it passed. `None` when a part is missing or odd.
    fn docker_manifest_digest(&self, config_path: &str, layers: &[String]) -> Option<String> {
        let manifest = self.docker_manifest(config_path, layers)?;
        Some(format!("sha256:{}", sha256_hex(manifest.as_bytes())))
    }

    /// That manifest's JSON text; the OCI layout written for the containerd store holds it.
    pub(crate) fn docker_manifest(&self, config_path: &str, layers: &[String]) -> Option<String> {
        let config = self.kept.get(self.resolve(&normalize(config_path)))?;
        let parsed = self.json(config_path)?;
        let diff_ids = parsed["rootfs"]["diff_ids"].as_array()?;
        let mut descriptors = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let normalized = normalize(layer);
            let path = self.resolve(&normalized);
            let size = self.sizes.get(path)?;
            let (media_type, digest) = match self.digests.get(path) {
                Some(digest) => (DOCKER_LAYER_GZIP, digest.clone()),
                None => (DOCKER_LAYER, sha256_digest(diff_ids.get(i)?.as_str()?)?),
            };
            descriptors.push(format!(
                r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#
            ));
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"sha256:{}","size":{}}},"layers":[{}]}}"#,
            config.sha256,
            config.bytes.len(),
            descriptors.join(",")
        );
        Some(manifest)
    }

    fn oci_images(&self, index: &Value, device: &Platform) -> Result<Vec<Image>, Invalid> {
        let descriptors = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
        let chosen = self.index_choice(descriptors, device).ok();
        let kept = |i: usize| chosen.as_ref().is_none_or(|c| c[i]);
        let mut layers_total = 0;
        let mut images = Vec::new();
        for (i, descriptor) in descriptors.iter().enumerate() {
            if attestation(descriptor) || !kept(i) {
                continue;
            }
            let manifest = self
                .image_manifest(descriptor, device, 0)
                .unwrap_or_default();
            let mut image = match blob(manifest["config"]["digest"].as_str()) {
                Some(p) => self.image_of_config(&p)?,
                None => self.image_of_config("")?,
            };
            image.references = names(descriptor_names(descriptor))?;
            // The descriptor itself, an index for several platforms included: what
            // containerd files the image under.
            image.target = descriptor["digest"].as_str().and_then(sha256_digest);
            let layers = manifest["layers"].as_array().map_or(&[][..], Vec::as_slice);
            layers_total += layers.len();
            within(layers_total, LAYERS_MAX, "layers")?;
            image.layer_sizes = layers
                .iter()
                .map(|l| l["size"].as_u64().unwrap_or(0))
                .collect();
            images.push(image);
            within(images.len(), IMAGES_MAX, "images")?;
        }
        Ok(images)
    }
}

/// Why a descriptor stands for no image manifest ([`Contents::image_manifest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// The archive does not hold the manifest or index with this digest.
    Missing(String),
    /// An image index has no entry for the device; the platforms it offers.
    NoPlatform(Vec<Option<Platform>>),
    /// Image indexes nested in one another deeper than [`NESTING_MAX`].
    TooDeep,
}

/// The names each of several images keeps on `device` (`None`: the image is left out), from
/// each image's names and platform. Where several carry one name (one image for several
/// platforms, which every engine would give the last of them), only the one that suits the
/// device keeps it, and an image left without any of its names is left out; an image without
/// names stays as it is. An error for the first name that no single image suits.
fn one_per_name(
    images: &[(Vec<String>, Option<Platform>)],
    device: &Platform,
) -> Result<Vec<Option<Vec<String>>>, Unsuited> {
    // Each name (as the engines read it), with the images that carry it, in their order.
    let mut carriers: Vec<(String, Vec<usize>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, (names, _)) in images.iter().enumerate() {
        for name in names {
            let slot = *at.entry(canonical(name)).or_insert_with(|| {
                carriers.push((name.clone(), Vec::new()));
                carriers.len() - 1
            });
            if carriers[slot].1.last() != Some(&i) {
                carriers[slot].1.push(i);
            }
        }
    }
    let mut lost: HashSet<(usize, String)> = HashSet::new();
    for (name, carrying) in carriers.iter().filter(|(_, c)| c.len() > 1) {
        let platforms: Vec<Option<Platform>> =
            carrying.iter().map(|&i| images[i].1.clone()).collect();
        let winner = match best(&platforms, device) {
            Best::One(winner) => winner,
            Best::NoneFits => {
                return Err(Unsuited::none_fits(Some(name.clone()), device, &platforms))
            }
            Best::Several(at) => {
                return Err(Unsuited::Several {
                    name: name.clone(),
                    device: device.clone(),
                    count: at.len(),
                })
            }
        };
        let key = canonical(name);
        for (j, &i) in carrying.iter().enumerate() {
            if j != winner {
                lost.insert((i, key.clone()));
            }
        }
    }
    let kept = images.iter().enumerate().map(|(i, (names, _))| {
        let kept: Vec<String> = names
            .iter()
            .filter(|n| !lost.contains(&(i, canonical(n))))
            .cloned()
            .collect();
        (names.is_empty() || !kept.is_empty()).then_some(kept)
    });
    Ok(kept.collect())
}

/// An error when `count` of `what` is above `max`.
pub(crate) fn within(count: usize, max: usize, what: &'static str) -> Result<(), Invalid> {
    match count > max {
        true => Err(Invalid::TooMany { what, max }),
        false => Ok(()),
    }
}

/// The names of one image, within [`NAMES_MAX`] and [`NAME_LEN_MAX`].
fn names(names: Vec<String>) -> Result<Vec<String>, Invalid> {
    within(names.len(), NAMES_MAX, "names for one image")?;
    if names.iter().any(|n| n.len() > NAME_LEN_MAX) {
        return Err(Invalid::TooLong {
            what: "image name",
            max: NAME_LEN_MAX,
        });
    }
    Ok(names)
}

/// How many JSON values `json` holds at most: one per comma, colon and opening bracket
/// outside strings, plus one. Counted before anything is parsed, as what a parse costs.
fn json_values(json: &[u8]) -> usize {
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

/// Whether an index entry is a build attestation (BuildKit puts them beside the images, for
/// platform unknown/unknown), not an image.
pub(crate) fn attestation(descriptor: &Value) -> bool {
    descriptor["annotations"][REFERENCE_TYPE].is_string()
        || descriptor["platform"]["architecture"] == "unknown"
}

/// The names an index.json descriptor gives its image: containerd's full name, and the OCI
/// ref.name where it is a full name too (the spec lets it be a bare tag, which is no reference).
pub(crate) fn descriptor_names(descriptor: &Value) -> Vec<String> {
    let annotations = &descriptor["annotations"];
    let mut names: Vec<String> = Vec::new();
    for key in [CONTAINERD_NAME, OCI_REF_NAME] {
        let Some(name) = annotations[key].as_str() else {
            continue;
        };
        let full = name.contains('/') || name.contains(':');
        if full && !names.iter().any(|n| canonical(n) == canonical(name)) {
            names.push(name.to_owned());
        }
    }
    names
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// `sha256:<hex>` from a blob path `blobs/sha256/<hex>`.
pub(crate) fn blob_digest(path: &str) -> Option<String> {
    sha256_digest(&path.strip_prefix("blobs/")?.replacen('/', ":", 1))
}

/// `sha256:` and 64 lower-case hex digits, the only digests an engine gives as ids.
pub(crate) fn sha256_digest(text: &str) -> Option<String> {
    let hex = text.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| text.to_owned())
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` -> `blobs/sha256/<hex>`.
pub(crate) fn blob(digest: Option<&str>) -> Option<String> {
    let (alg, hex) = digest?.split_once(':')?;
    Some(format!("blobs/{alg}/{hex}"))
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
    use container_loader_testkit::tar_of;

    /// Feeds `tar` in pieces of `step` bytes, as reads of any size would.
    fn watch(tar: &[u8], step: usize) -> Result<Contents, String> {
        let mut w = Watcher::default();
        for piece in tar.chunks(step) {
            w.feed(piece);
        }
        w.finish()
    }

    fn docker_archive(tags: &str) -> (Vec<u8>, String) {
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let id = sha256_hex(config);
        let manifest =
            format!(r#"[{{"Config":"{id}.json","RepoTags":[{tags}],"Layers":["l1/layer.tar"]}}]"#);
        let tar = tar_of(&[
            ("l1/layer.tar", &[7u8; 3000]),
            (&format!("{id}.json"), config),
            ("manifest.json", manifest.as_bytes()),
        ]);
        (tar, id)
    }

    #[test]
    fn reads_a_docker_archive_whose_manifest_comes_last_in_pieces_of_any_size() {
        let (tar, id) = docker_archive(r#""debian:bookworm""#);
        for step in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(images.layout, "docker-archive");
            assert_eq!(
                images.images,
                [Image {
                    references: vec!["debian:bookworm".into()],
                    id: Some(format!("sha256:{id}")),
                    target: None,
                    layer_sizes: vec![3000],
                    architecture: Some("arm64".into()),
                    os: Some("linux".into()),
                    variant: None,
                }],
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn reads_an_oci_archive_and_ignores_a_bare_tag_as_name() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cfg = sha256_hex(config);
        let manifest = format!(
            r#"{{"config":{{"digest":"sha256:{cfg}"}},"layers":[{{"size":123}},{{"size":456}}]}}"#
        );
        let man = sha256_hex(manifest.as_bytes());
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{man}","annotations":{{"{OCI_REF_NAME}":"localhost/a/b:1"}}}},{{"digest":"sha256:{man}","annotations":{{"{OCI_REF_NAME}":"1.0"}}}}]}}"#
        );
        let tar = tar_of(&[
            ("index.json", index.as_bytes()),
            (&format!("blobs/sha256/{man}"), manifest.as_bytes()),
            (&format!("blobs/sha256/{cfg}"), config),
        ]);
        let images = watch(&tar, 100).unwrap().images().unwrap();
        assert_eq!(images.layout, "oci-archive");
        assert_eq!(images.images[0].references, ["localhost/a/b:1"]);
        assert!(images.images[1].references.is_empty());
        assert_eq!(images.images[0].id, Some(format!("sha256:{cfg}")));
        assert_eq!(images.images[0].layer_sizes, [123, 456]);
        assert_eq!(images.images[0].target, Some(format!("sha256:{man}")));
    }

    /// An archive whose config has one layer, an empty tar (1024 zero bytes), sent as `layer`.
    fn one_empty_layer(name: &str, layer: &[u8]) -> Vec<u8> {
        let diff_id = format!("sha256:{}", sha256_hex(&[0u8; 1024]));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let cfg = sha256_hex(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{cfg}.json","RepoTags":["{name}"],"Layers":["l/layer.tar"]}}]"#
        );
        tar_of(&[
            ("l/layer.tar", layer),
            (&format!("{cfg}.json"), config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ])
    }

    // The expected digests are what dockerd 26.1.5 with the containerd image store
    // (containerd 1.7.24) answered as `Id` after loading these very archives.
    #[test]
    fn computes_the_manifest_digest_containerd_gives_a_docker_archive() {
        let tar = one_empty_layer("example.org/kat/plain:1", &[0u8; 1024]);
        for step in [1, 100, 512, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(
                images.images[0].target.as_deref(),
                Some("sha256:88cffdde6bcf3a0868488d5fc1846a04e33672edbfc6383cfc56e0df6dbecef4"),
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn hashes_a_compressed_layer_for_the_manifest_digest() {
        // gzip of the same empty tar (python's gzip.compress(mtime=0)).
        let gzip = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0x18, 0x05,
            0xa3, 0x60, 0x14, 0x8c, 0x54, 0x00, 0x00, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00,
            0x00,
        ];
        let tar = one_empty_layer("example.org/kat/gz:1", &gzip);
        for step in [1, 3, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(
                images.images[0].target.as_deref(),
                Some("sha256:f449af74e4d610f9d89d6014820f50cf3758c3f27646f5ce23dff155c2df2c14"),
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn takes_the_index_descriptor_as_target_where_an_oci_layout_sits_beside_manifest_json() {
        let (docker, id) = docker_archive(r#""example.org/both:1""#);
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{}","annotations":{{"{CONTAINERD_NAME}":"example.org/both:1","{OCI_REF_NAME}":"1"}}}}]}}"#,
            "e".repeat(64)
        );
        let mut entries = tar::Archive::new(&docker[..]);
        let mut files: Vec<(String, Vec<u8>)> = entries
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, data)
            })
            .collect();
        files.push(("index.json".into(), index.into_bytes()));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let images = watch(&tar_of(&borrowed), 512).unwrap().images().unwrap();
        assert_eq!(images.layout, "docker-archive");
        let image = &images.images[0];
        assert_eq!(image.id, Some(format!("sha256:{id}")));
        assert_eq!(image.target, Some(format!("sha256:{}", "e".repeat(64))));
    }

    /// An OCI layout offering `name` for the device's platform and for one no device has,
    /// either as one nested image index or as two manifests side by side in index.json.
    /// Returns the tar, the device's config digest and the top descriptor's digest.
    fn two_platforms(name: &str, nested: bool) -> (Vec<u8>, String, String) {
        let device = Platform::device();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut descriptors = Vec::new();
        let mut device_config = String::new();
        for (os, arch) in [
            ("plan9", "mips"),
            (device.os.as_str(), device.architecture.as_str()),
        ] {
            let config = format!(r#"{{"architecture":"{arch}","os":"{os}"}}"#);
            let cfg = sha256_hex(config.as_bytes());
            if os == device.os {
                device_config = format!("sha256:{cfg}");
            }
            let manifest = format!(r#"{{"config":{{"digest":"sha256:{cfg}"}},"layers":[]}}"#);
            let man = sha256_hex(manifest.as_bytes());
            files.push((format!("blobs/sha256/{cfg}"), config.into_bytes()));
            files.push((format!("blobs/sha256/{man}"), manifest.into_bytes()));
            descriptors.push(format!(
                r#"{{"digest":"sha256:{man}","platform":{{"os":"{os}","architecture":"{arch}"}},"annotations":{{"{OCI_REF_NAME}":"{name}"}}}}"#
            ));
        }
        let top = if nested {
            let inner = format!(r#"{{"manifests":[{}]}}"#, descriptors.join(","));
            let digest = sha256_hex(inner.as_bytes());
            files.push((format!("blobs/sha256/{digest}"), inner.into_bytes()));
            format!(r#"{{"digest":"sha256:{digest}","annotations":{{"{OCI_REF_NAME}":"{name}"}}}}"#)
        } else {
            descriptors.join(",")
        };
        let index = format!(r#"{{"manifests":[{top}]}}"#);
        let target = serde_json::from_str::<Value>(&index).unwrap()["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        files.push(("index.json".into(), index.into_bytes()));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        (tar_of(&borrowed), device_config, target)
    }

    #[test]
    fn takes_the_devices_image_from_an_index_for_several_platforms() {
        let (tar, device_config, index) = two_platforms("example.org/multi:1", true);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        let image = &images.images[0];
        assert_eq!(image.id.as_deref(), Some(device_config.as_str()));
        assert_eq!(
            image.target.as_deref(),
            Some(index.as_str()),
            "the index itself"
        );
        assert_eq!(image.platform(), Some(Platform::device()));
    }

    #[test]
    fn describes_only_the_devices_image_where_index_json_gives_one_name_to_several() {
        let (tar, device_config, _) = two_platforms("example.org/multi:1", false);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 1, "the other is not loaded");
        let wanted = Reference::parse("example.org/multi:1").unwrap();
        match images.find(&wanted) {
            Match::Named(image) => assert_eq!(image.id.as_deref(), Some(device_config.as_str())),
            other => panic!("{other:?}"),
        }
    }

    /// A docker-archive of one image per `(platform, names)` (`os/arch`), each with a config
    /// of its own; and the images' ids.
    fn docker_archive_of(images: &[(&str, &[&str])]) -> (Vec<u8>, Vec<String>) {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut items = Vec::new();
        let mut ids = Vec::new();
        for (i, (platform, names)) in images.iter().enumerate() {
            let (os, arch) = platform.split_once('/').unwrap();
            let config = format!(r#"{{"architecture":"{arch}","os":"{os}","n":{i}}}"#);
            let id = sha256_hex(config.as_bytes());
            items.push(
                serde_json::json!({"Config": format!("{id}.json"), "RepoTags": names,
                "Layers": []}),
            );
            files.push((format!("{id}.json"), config.into_bytes()));
            ids.push(format!("sha256:{id}"));
        }
        files.push((
            "manifest.json".into(),
            Value::from(items).to_string().into_bytes(),
        ));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        (tar_of(&borrowed), ids)
    }

    /// Another platform than the device's.
    fn foreign() -> &'static str {
        match Platform::device().architecture.as_str() {
            "arm64" => "linux/amd64",
            _ => "linux/arm64",
        }
    }

    #[test]
    fn describes_only_the_devices_image_where_manifest_json_gives_one_name_to_several() {
        let device = Platform::device().to_string();
        let (tar, ids) = docker_archive_of(&[
            (&device, &["example.org/a:1"]),
            (foreign(), &["example.org/a:1"]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 1, "{images:?}");
        assert_eq!(images.images[0].id.as_ref(), Some(&ids[0]));
    }

    #[test]
    fn keeps_the_other_names_of_an_image_that_loses_one_to_the_devices() {
        let device = Platform::device().to_string();
        let (tar, ids) = docker_archive_of(&[
            (foreign(), &["a:1", "example.org/b:1"]),
            (&device, &["docker.io/library/a:1", "a:1"]),
            (foreign(), &[]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        let described: Vec<(&str, Vec<String>)> = images
            .images
            .iter()
            .map(|i| (i.id.as_deref().unwrap(), i.references.clone()))
            .collect();
        assert_eq!(
            described,
            [
                (ids[0].as_str(), vec!["example.org/b:1".to_owned()]),
                (
                    ids[1].as_str(),
                    vec!["docker.io/library/a:1".into(), "a:1".into()]
                ),
                (ids[2].as_str(), vec![]),
            ]
        );
    }

    #[test]
    fn lists_every_image_where_one_name_has_none_for_the_device() {
        let (tar, _) = docker_archive_of(&[
            ("plan9/mips", &["example.org/a:1"]),
            (foreign(), &["example.org/a:1"]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 2, "the load fails; inspect shows them");
    }

    #[test]
    fn reads_long_names_from_gnu_and_pax_headers() {
        let long = format!("{}/manifest.json", "d".repeat(120));
        let mut gnu = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        gnu.append_data(&mut h, &long, &b"[]"[..]).unwrap();
        let gnu = gnu.into_inner().unwrap();
        let contents = watch(&gnu, 64).unwrap();
        assert_eq!(
            contents.kept.get(&long).map(|k| k.bytes.as_slice()),
            Some(&b"[]"[..])
        );

        let body = format!(" path={long}\n");
        let record = format!("{}{body}", body.len() + 3);
        let mut pax = tar::Builder::new(Vec::new());
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_size(record.len() as u64);
        x.set_path("PaxHeaders/short.json").unwrap();
        x.set_cksum();
        pax.append(&x, record.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_path("short.json").unwrap();
        h.set_cksum();
        pax.append(&h, &b"[]"[..]).unwrap();
        let pax = pax.into_inner().unwrap();
        let contents = watch(&pax, 64).unwrap();
        assert_eq!(
            contents.kept.get(&long).map(|k| k.bytes.as_slice()),
            Some(&b"[]"[..])
        );
        assert!(!contents.kept.contains_key("short.json"));
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
    fn refuses_a_manifest_json_held_twice_under_another_spelling() {
        for spelling in [
            "x/../manifest.json",
            "./manifest.json",
            ".//manifest.json",
            "/manifest.json",
        ] {
            let tar = tar_of(&[("manifest.json", b"[]"), (spelling, b"[]")]);
            assert_eq!(
                refused(&tar),
                Invalid::Twice("manifest.json".to_owned()).to_string(),
                "{spelling}"
            );
        }
    }

    #[test]
    fn follows_relative_symlinks_to_layers() {
        assert_eq!(join("abc", "../def.tar"), "def.tar");
        assert_eq!(join("a/b", "./c"), "a/b/c");
    }

    #[test]
    fn says_when_a_tar_holds_no_image() {
        let tar = tar_of(&[("etc/hostname", b"x")]);
        assert!(watch(&tar, 512).unwrap().images().is_none());
    }

    #[test]
    fn refuses_what_is_not_a_tar_and_a_tar_cut_inside_an_entry() {
        let noise: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        assert!(watch(&noise, 300).unwrap_err().contains("not a tar"));
        let (tar, _) = docker_archive("");
        let cut = &tar[..BLOCK + 1000];
        assert!(watch(cut, 300)
            .unwrap_err()
            .contains("ends inside an entry"));
    }

    #[test]
    fn finds_the_image_a_reference_stands_for() {
        let image = |refs: &[&str]| Image {
            references: refs.iter().map(|r| r.to_string()).collect(),
            id: None,
            target: None,
            layer_sizes: vec![],
            architecture: None,
            os: None,
            variant: None,
        };
        let r = |s: &str| Reference::parse(s).unwrap();
        let one = Images {
            layout: "docker-archive",
            images: vec![image(&["debian:bookworm"])],
        };
        assert_eq!(
            one.find(&r("docker.io/library/debian:bookworm")),
            Match::Named(&one.images[0])
        );
        assert_eq!(one.find(&r("debian:trixie")), Match::Only(&one.images[0]));
        let two = Images {
            layout: "docker-archive",
            images: vec![image(&["a:1"]), image(&["quay.io/b/c"])],
        };
        assert_eq!(
            two.find(&r("quay.io/b/c:latest")),
            Match::Named(&two.images[1])
        );
        assert_eq!(two.find(&r("d:1")), Match::Ambiguous(2));
        let none = Images {
            layout: "oci-archive",
            images: vec![],
        };
        assert_eq!(none.find(&r("d:1")), Match::Empty);
    }

    /// The reason `tar` is refused, fed in pieces of 4096 bytes.
    fn refused(tar: &[u8]) -> String {
        match watch(tar, 4096) {
            Err(reason) => reason,
            Ok(contents) => match contents.describe() {
                Err(invalid) => invalid.to_string(),
                Ok(images) => panic!("accepted: {images:?}"),
            },
        }
    }

    /// A docker-archive whose manifest.json has `count` items, all naming one `config`.
    fn one_config_named(count: usize, config: &[u8]) -> Vec<u8> {
        let item = r#"{"Config":"c.json","RepoTags":[],"Layers":[]}"#;
        let manifest = format!("[{}]", vec![item; count].join(","));
        tar_of(&[("c.json", config), ("manifest.json", manifest.as_bytes())])
    }

    #[test]
    fn reads_a_config_once_however_many_images_name_it() {
        // 1,000 images of one 1 MiB config took 2 GB and minutes: each copied and hashed it.
        let filler = "a".repeat(SMALL_MAX as usize - 100);
        let config = format!(r#"{{"architecture":"amd64","os":"linux","x":"{filler}"}}"#);
        let tar = one_config_named(IMAGES_MAX, config.as_bytes());
        let started = std::time::Instant::now();
        let images = watch(&tar, 4096).unwrap().describe().unwrap().unwrap();
        assert_eq!(images.images.len(), IMAGES_MAX);
        let id = format!("sha256:{}", sha256_hex(config.as_bytes()));
        assert!(images.images.iter().all(|i| i.id.as_ref() == Some(&id)));
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }

    #[test]
    fn refuses_a_config_of_a_million_short_strings_before_parsing_it() {
        let strings = vec![r#""a""#; 260_000].join(",");
        let config = format!(r#"{{"os":"linux","x":[{strings}]}}"#);
        let tar = one_config_named(1, config.as_bytes());
        assert!(refused(&tar).contains("JSON values in its description files"));
    }

    #[test]
    fn refuses_an_archive_describing_more_than_a_thousand_images() {
        let tar = one_config_named(IMAGES_MAX + 1, br#"{"os":"linux"}"#);
        assert!(refused(&tar).starts_with("describes more than 1000 images"));
    }

    #[test]
    fn refuses_a_platform_name_longer_than_any_real_one() {
        let config = format!(r#"{{"architecture":"{}","os":"linux"}}"#, "a".repeat(65));
        let tar = one_config_named(1, config.as_bytes());
        assert!(refused(&tar).contains("platform (os, architecture or variant)"));
    }

    #[test]
    fn refuses_too_many_names_for_one_image_and_too_long_a_name() {
        let many = vec![r#""a:1""#; NAMES_MAX + 1].join(",");
        let (tar, _) = docker_archive(&many);
        assert!(refused(&tar).contains("more than 64 names for one image"));
        let (tar, _) = docker_archive(&format!(r#""{}""#, "a".repeat(NAME_LEN_MAX + 1)));
        assert!(refused(&tar).contains("image name longer than 600 bytes"));
    }

    #[test]
    fn refuses_a_manifest_json_index_json_or_oci_layout_held_twice() {
        for file in SINGLE_FILES {
            let tar = tar_of(&[(file, b"[]"), ("l/layer.tar", &[1; 10]), (file, b"{}")]);
            assert_eq!(
                refused(&tar),
                Invalid::Twice(file.to_owned()).to_string(),
                "{file}"
            );
        }
    }

    #[test]
    fn refuses_a_config_or_blob_held_twice() {
        let (tar, id) = docker_archive(r#""a:1""#);
        let config = format!("{id}.json");
        let twice = tar_of(&[(&config, b"{}"), ("x", b"y"), (&config, b"{}")]);
        assert!(refused(&twice).starts_with(&format!("holds {config} twice")));
        let blob = format!("blobs/sha256/{id}");
        let twice = tar_of(&[(&blob, b"{}"), (&blob, b"{}")]);
        assert!(refused(&twice).starts_with(&format!("holds {blob} twice")));
        assert!(watch(&tar, 512).is_ok(), "once is fine");
    }

    #[test]
    fn refuses_a_tar_of_more_files_than_it_tracks_as_soon_as_it_sees_one_more() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..=ENTRIES_MAX {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            b.append_data(&mut h, format!("f{i}"), &[][..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        assert!(refused(&tar).starts_with("describes more than 16384 files and links"));
    }

    #[test]
    fn refuses_a_file_name_longer_than_any_image_archive_has() {
        let long = "p".repeat(PATH_MAX + 1);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, &long, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(refused(&tar).starts_with("has a file name longer than 256 bytes"));
    }

    #[test]
    fn keeps_only_json_of_the_files_that_may_describe_images() {
        let gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3];
        let tar = tar_of(&[
            ("blobs/sha256/aa", &gzip),
            ("blobs/sha256/bb", b"  \n{\"a\":1}"),
            ("notes.json", b"plain text"),
        ]);
        let contents = watch(&tar, 3).unwrap();
        let kept: Vec<&String> = contents.kept.keys().collect();
        assert_eq!(kept, ["blobs/sha256/bb"]);
        assert_eq!(contents.size("blobs/sha256/aa"), Some(10));
    }

    #[test]
    fn refuses_more_description_json_than_it_keeps() {
        let big = format!("[{}]", "0".repeat(SMALL_MAX as usize - 2));
        let names: Vec<String> = (0..5).map(|i| format!("c{i}.json")).collect();
        let files: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), big.as_bytes())).collect();
        assert!(
            refused(&tar_of(&files)).starts_with("describes more than 4 MiB of description files")
        );
    }

    #[test]
    fn refuses_description_files_of_more_json_values_than_it_parses() {
        let values = format!("[{}0]", "0,".repeat(VALUES_MAX));
        let tar = tar_of(&[("c.json", values.as_bytes())]);
        assert!(refused(&tar).contains("JSON values"));
        assert_eq!(json_values(br#"{"a":[1,2],"b":"x,:[{"}"#), 7);
    }

    #[test]
    fn refuses_image_indexes_naming_each_other_over_and_over() {
        // A chain of four indexes, each naming the next 1,000 times, all for the device: each
        // is parsed once, but 1,000 images each weigh 4,000 entries. The time bound is a guard
        // against unbounded work (the debug build under load), not a measure of speed.
        let device = Platform::device();
        let platform = format!(
            r#""platform":{{"os":"{}","architecture":"{}"}}"#,
            device.os, device.architecture
        );
        let mut next = format!("sha256:{}", "0".repeat(64));
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for _ in 0..NESTING_MAX {
            let entry = format!(r#"{{"digest":"{next}",{platform}}}"#);
            let index = format!(
                r#"{{"manifests":[{}]}}"#,
                vec![entry.as_str(); 1000].join(",")
            );
            next = format!("sha256:{}", sha256_hex(index.as_bytes()));
            files.push((
                format!("blobs/{}", next.replace(':', "/")),
                index.into_bytes(),
            ));
        }
        let entry = format!(r#"{{"digest":"{next}"}}"#);
        let index = format!(
            r#"{{"manifests":[{}]}}"#,
            vec![entry.as_str(); 1000].join(",")
        );
        files.push(("index.json".into(), index.into_bytes()));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let started = std::time::Instant::now();
        let reason = refused(&tar_of(&borrowed));
        assert!(reason.contains("more than 100000 references to its description files"));
        assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    }
}
