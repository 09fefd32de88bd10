//! Archives made loadable by the engine at hand, on their way to it.
//!
//! An archive may offer an image for several platforms: a nested image index, one name on
//! several manifests side by side in index.json, or one name on several items of a
//! docker-archive's manifest.json. The engines differ in what they do with that (podman picks
//! the host's from an index but refuses several manifests side by side; docker's containerd
//! store loads each and leaves the name on the last; classic docker reads no index, and gives
//! a name of manifest.json to its last item), so [`Loadable`] chooses the device's platform for
//! all of them: index.json and manifest.json keep only the device's image of each name, an
//! image index is resolved to its manifest for the device, and an archive without exactly one
//! image of a name for the device fails before its end, so no engine loads a wrong one. The
//! platforms are told by configs and manifests that may come after the file that names them,
//! so such a file is held back and written just before the end-of-archive blocks, which every
//! engine reads (they read the whole upload before they look at its description).
//!
//! Classic docker's image store reads only the docker-archive layout, but it unpacks the whole
//! upload before it reads `manifest.json`, so the file may come last: for classic docker, when
//! the tar has an `index.json` and no `manifest.json`, one is written just before the
//! end-of-archive blocks, as `docker save` from docker >= 25 writes it beside its OCI layout:
//! one item per image, with its config and layer blobs and its names.
//!
//! Only the small description files are kept on the way (the tar walk of [`crate::image::walk`]);
//! blobs pass as they are, and any other tar passes byte for byte, but for the layer files a
//! delta load leaves out ([`Loadable::leaving_out`]): their entries (header, data, padding)
//! are walked as before and not passed on. What was left out is confirmed against what the
//! archive describes before the engine gets the tar's end ([`Omission::confirm`]): when an
//! image needs a file that was left out, the upload fails there, so the engine loads nothing.
//!
//! Classic docker before 23.0 unpacks no zstd layer: for it, each blob of an OCI layout
//! whose data is zstd frames is sent decoded, its header giving the decoded size, learnt
//! first by a second read of the archive ([`Sizer`], see `inflate`). A zstd layer that could
//! not be so sent (behind an extension header, or with no second read to be had) fails the
//! upload before its end, naming the cause.
//!
//! This file holds the adapter; `choice` what an engine on the device gets of manifest.json
//! and index.json, `written` the entries written before the tar's end, `omission` what a delta
//! load leaves out, `inflate` the zstd layers sent decoded.

mod choice;
mod inflate;
mod omission;
mod written;

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};

use crate::engine::store::{Reads, ZstdLayers};
use crate::image::describe::Images;
use crate::image::items::ItemError;
use crate::image::limits::Invalid;
use crate::image::platform::{Platform, Unsuited};
use crate::image::walk::{is_extension, Entry, WalkError, Walked, Watcher, BLOCK};
use choice::Description;
use inflate::{is_zstd, Inflating};
use written::{entry, needs_manifest, written, zstd_unsure};

pub(crate) use inflate::Sizer;
pub(crate) use omission::{LeftOutNeeded, Needed, Omission};

/// Why an archive cannot be made loadable: the upload fails before its end, so the engine
/// loads nothing of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unloadable {
    /// The archive offers an image for several platforms, and not one for the device's.
    Unsuited(Unsuited),
    /// `file` offers a name for several platforms, and had to pass on as it was (behind a tar
    /// extension header) before the files that tell them apart.
    Passed { file: &'static str },
    /// The index names a manifest or config the archive does not hold.
    Missing { digest: String },
    /// The tar stops before its end-of-archive blocks.
    CutShort { at: u64 },
    /// Its layers are compressed with zstd, which the engine (classic docker of `version`)
    /// does not unpack, and could not be sent decoded.
    ZstdLayers { version: String },
    /// The zstd layer at `path` decoded to another size than it did when it was measured
    /// before its entry was sent: the archive changed meanwhile.
    Resized { path: String },
    /// The tar holds a description file twice, or describes more than the loader reads.
    Invalid(Invalid),
}

impl fmt::Display for Unloadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unloadable::Unsuited(unsuited) => unsuited.fmt(f),
            Unloadable::Passed { file } => write!(
                f,
                "its {file} gives one name to images for several platforms, and a tar extension header before it kept the loader from holding it back until the device's image was known; write the archive without extension headers"
            ),
            Unloadable::Missing { digest } => write!(
                f,
                "its index.json names {digest}, which the archive does not hold; save the image again"
            ),
            Unloadable::CutShort { at } => write!(
                f,
                "the tar stops at byte {at}, before its end: the archive is cut short; copy it again"
            ),
            Unloadable::ZstdLayers { version } => write!(
                f,
                "its layers are compressed with zstd, which docker's classic image store before 23.0 cannot unpack (this is docker {version}); save the image with gzip or uncompressed layers (skopeo copy --dest-compress-format gzip), or update docker"
            ),
            Unloadable::Resized { path } => write!(
                f,
                "its zstd layer {path} decoded to another size than it did a moment before: the archive changed while it was read"
            ),
            Unloadable::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl std::error::Error for Unloadable {}

impl Unloadable {
    /// The `Unloadable` inside `e`, if it is one.
    pub fn find(e: &io::Error) -> Option<&Unloadable> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl From<Invalid> for Unloadable {
    fn from(invalid: Invalid) -> Self {
        Unloadable::Invalid(invalid)
    }
}

impl From<ItemError> for Unloadable {
    fn from(e: ItemError) -> Self {
        match e {
            ItemError::Missing { digest } => Unloadable::Missing { digest },
            ItemError::Unsuited(unsuited) => Unloadable::Unsuited(unsuited),
            ItemError::Invalid(invalid) => Unloadable::Invalid(invalid),
        }
    }
}

impl From<Unsuited> for Unloadable {
    fn from(unsuited: Unsuited) -> Self {
        Unloadable::Unsuited(unsuited)
    }
}

/// Reads a decoded tar through, choosing the device's platform where the archive offers one
/// name for several, and adding what the engine's store reads (see [`Reads`]).
pub struct Loadable<'a, R> {
    inner: R,
    device: Platform,
    reads: Reads,
    watcher: Watcher,
    /// The header block being gathered: the end of the tar is known only from a whole one.
    header: Vec<u8>,
    /// Bytes to hand out before reading on: a header passed on, or the written entry.
    out: Vec<u8>,
    out_at: usize,
    /// Bytes read from `inner`.
    offset: u64,
    /// Once the tar's end is past, or the tar cannot be walked: the rest passes as it is.
    through: bool,
    /// What is left out; whether each file left out stays as an empty one; and whether the
    /// entry passing now is left out.
    omission: Option<Box<dyn Omission + 'a>>,
    empty: bool,
    dropping: bool,
    /// Whether the last header was a PAX or GNU extension of the entry after it: that entry
    /// is then passed on whatever its name, or the extension would apply to the next one.
    extended: bool,
    /// Files left out so far, and their bytes in the tar that were not sent.
    left_out: (usize, u64),
    /// Description files held back until the tar's end, where what the device gets of them is
    /// known: which one, and its bytes.
    held: Vec<(Description, Vec<u8>)>,
    /// Description files that offer a choice but passed on at once (behind an extension
    /// header): which one, its bytes, and the bytes passed on (the device's choice so far).
    passed: Vec<(Description, Vec<u8>, Vec<u8>)>,
    /// Called with what the archive describes before the engine gets the tar's end.
    before_end: Option<BeforeEnd<'a>>,
    /// Whether the engine unpacks zstd layers, for the manifest.json written for classic
    /// docker; and whether it got such layers not knowing ([`Loadable::zstd_unsure`]).
    zstd_layers: ZstdLayers,
    zstd_unsure: bool,
    /// For an engine that does not unpack zstd layers: their decoded sizes, the layer entry
    /// being sent decoded, and the paths of the files it need not unpack, sent decoded or
    /// left out.
    sizer: Option<Sizer<'a>>,
    inflating: Option<Inflating>,
    spared: HashSet<String>,
}

/// The first bytes of a blob, read to tell zstd frames by their magic number.
const ZSTD_HEAD: usize = 4;

/// See [`Loadable::before_end`].
pub(crate) type BeforeEnd<'a> = Box<dyn FnMut(&Images) + 'a>;

impl<'a, R: Read> Loadable<'a, R> {
    /// What the archive described, from the walk the adapter made of it on the way (what it
    /// wrote in names the same images with the same ids), or why it could not be read.
    pub(crate) fn finish(self) -> Result<Walked, WalkError> {
        self.watcher.finish()
    }

    pub fn new(inner: R, device: Platform, reads: Reads) -> Self {
        Loadable {
            inner,
            device,
            reads,
            watcher: Watcher::default(),
            header: Vec::with_capacity(BLOCK),
            out: Vec::new(),
            out_at: 0,
            offset: 0,
            through: false,
            omission: None,
            empty: false,
            dropping: false,
            extended: false,
            left_out: (0, 0),
            held: Vec::new(),
            passed: Vec::new(),
            before_end: None,
            zstd_layers: ZstdLayers::Read,
            zstd_unsure: false,
            sizer: None,
            inflating: None,
            spared: HashSet::new(),
        }
    }

    /// Whether classic docker of a version not known got an OCI archive with zstd layers,
    /// which only docker 23.0 and later unpack: the cause to tell should it refuse the load.
    pub(crate) fn zstd_unsure(&self) -> bool {
        self.zstd_unsure
    }

    /// Tells whether the engine unpacks zstd layers: an OCI archive with such layers fails
    /// before its end where classic docker would fail them as a damaged tar.
    pub(crate) fn zstd_layers(mut self, zstd_layers: ZstdLayers) -> Self {
        self.zstd_layers = zstd_layers;
        self
    }

    /// Sends zstd layers decoded, their sizes learnt by `sizer`, where the engine unpacks
    /// none ([`ZstdLayers::Unread`]) and reads the manifest.json written for it.
    pub(crate) fn sizing(mut self, sizer: Sizer<'a>) -> Self {
        self.sizer = Some(sizer);
        self
    }

    /// Calls `hook` with what the archive describes just before the engine gets the tar's
    /// end-of-archive blocks: no engine has loaded or named anything yet (each reads to the
    /// end first), and the archive's names are known. Not called for a tar the walk cannot
    /// describe, nor when the upload fails before its end.
    pub(crate) fn before_end(mut self, hook: BeforeEnd<'a>) -> Self {
        self.before_end = Some(hook);
        self
    }

    /// Leaves out the regular files `omission` names, or with `empty` their data only (each
    /// header passes with a size of 0); the walk still sees them whole, so what the archive
    /// describes is told as before.
    pub(crate) fn leaving_out(mut self, omission: Box<dyn Omission + 'a>, empty: bool) -> Self {
        self.omission = Some(omission);
        self.empty = empty;
        self
    }

    /// How many files were left out so far, and their bytes in the tar not sent.
    pub(crate) fn left_out(&self) -> (usize, u64) {
        self.left_out
    }

    /// Whether the entry whose header the walk was just fed is one to leave out, and its
    /// bytes in the tar then; `extended`: whether an extension header came before it.
    fn omitted(&mut self, extended: bool) -> Option<u64> {
        let entry = self.watcher.entry().filter(|e| e.file && !extended)?;
        if !self.omission.as_mut()?.omits(&entry.path) {
            return None;
        }
        Some(BLOCK as u64 + entry.size.div_ceil(BLOCK as u64) * BLOCK as u64)
    }

    /// An error when a file was left out that the archive's images need (so far as the walk
    /// tells them).
    fn confirm(&self) -> io::Result<()> {
        match (&self.omission, self.left_out.0) {
            (Some(omission), 1..) => omission
                .confirm(self.watcher.contents())
                .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, LeftOutNeeded(why))),
            _ => Ok(()),
        }
    }

    /// An error once the walk has found the archive invalid: the upload ends before the
    /// engine could load anything.
    fn checked(&self) -> io::Result<()> {
        match self.watcher.invalid() {
            Some(invalid) => Err(Unloadable::Invalid(invalid.clone()).into_io()),
            None => Ok(()),
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }

    /// A whole header block is in `self.header`: the end of the archive, or one to pass on.
    fn on_header(&mut self) -> io::Result<()> {
        self.dropping = false;
        if self.header.iter().all(|&b| b == 0) {
            return self.on_end();
        }
        let extension = is_extension(&self.header);
        let extended = std::mem::replace(&mut self.extended, extension);
        self.watcher.feed(&self.header);
        self.checked()?;
        if let Some(file) = self.watcher.entry().and_then(Description::of) {
            let size = self.watcher.entry().map_or(0, |e| e.size as usize);
            return self.on_description(file, size, extended);
        }
        let omitted = self.omitted(extended);
        if let Some(blob) = self.inflates().filter(|_| omitted.is_none() && !extended) {
            return self.on_blob(blob);
        }
        self.dropping = omitted.is_some();
        if let Some(bytes) = omitted {
            if let Some(entry) = self.watcher.entry() {
                self.spared.insert(entry.path.clone());
            }
            self.left_out.0 += 1;
            self.out.clear();
            if self.empty {
                self.out = resized(&self.header, 0);
            }
            self.left_out.1 += bytes - self.out.len() as u64;
        } else {
            // The two buffers trade places: no allocation per entry.
            std::mem::swap(&mut self.out, &mut self.header);
        }
        self.header.clear();
        self.out_at = 0;
        Ok(())
    }

    /// The end-of-archive block: the files held back and the entries written go in front of
    /// it, once the archive is known to describe no more than the loader reads and to offer
    /// the device one image per name.
    fn on_end(&mut self) -> io::Result<()> {
        self.confirm()?;
        let contents = self.watcher.contents();
        let described = contents
            .describe_for(&self.device)
            .map_err(Unloadable::from);
        let held = self.released();
        let written = written(
            contents,
            &self.device,
            self.reads,
            &self.zstd_layers,
            &self.spared,
        );
        self.zstd_unsure = zstd_unsure(contents, &self.device, self.reads, &self.zstd_layers);
        let settled = contents.settled().map_err(Unloadable::from);
        let images = described.clone().ok().flatten();
        let mut out = described
            .and(held)
            .and_then(|mut held| {
                held.extend(written?.unwrap_or_default());
                settled.map(|_| held)
            })
            .map_err(Unloadable::into_io)?;
        if let (Some(images), Some(hook)) = (images, self.before_end.as_mut()) {
            hook(&images);
        }
        out.append(&mut self.header);
        self.out = out;
        self.out_at = 0;
        self.through = true;
        Ok(())
    }

    /// The entries of the description files held back, as the device gets them; an error
    /// where one that passed at once is not what the device gets.
    fn released(&self) -> Result<Vec<u8>, Unloadable> {
        let contents = self.watcher.contents();
        let mut out = Vec::new();
        for (file, json) in &self.held {
            let chosen = file.chosen(contents, json, &self.device)?;
            out.extend(entry(file.name(), chosen.as_deref().unwrap_or(json)));
        }
        for (file, json, sent) in &self.passed {
            let chosen = file.chosen(contents, json, &self.device)?;
            if chosen.as_deref().unwrap_or(json) != sent.as_slice() {
                return Err(Unloadable::Passed { file: file.name() });
            }
        }
        Ok(out)
    }

    /// A description file, whose header the walk was just fed: read whole (it is small).
    /// Where it offers one name for several platforms, it is held back until the tar's end,
    /// where what the device gets of it is known (the configs and manifests that tell the
    /// platforms may come after it); otherwise it passes as it is. One behind an extension
    /// header cannot be held back (the extension would apply to the next entry): it passes
    /// with the device's choice as far as the tar has told it, checked at the end.
    fn on_description(&mut self, file: Description, size: usize, extended: bool) -> io::Result<()> {
        let mut data = self.read_fed(size.div_ceil(BLOCK) * BLOCK)?;
        data.truncate(size);
        let header = std::mem::replace(&mut self.header, Vec::with_capacity(BLOCK));
        self.out_at = 0;
        if !file.offers_a_choice(&data) {
            self.out = header;
            self.out.extend_from_slice(&data);
            self.out.resize(self.out.len().div_ceil(BLOCK) * BLOCK, 0);
        } else if !extended {
            self.out.clear();
            self.held.push((file, data));
        } else {
            let contents = self.watcher.contents();
            let chosen = file.chosen(contents, &data, &self.device).ok().flatten();
            contents
                .settled()
                .map_err(|e| Unloadable::from(e).into_io())?;
            let sent = chosen.unwrap_or_else(|| data.clone());
            self.out = resized(&header, sent.len() as u64);
            self.out.extend_from_slice(&sent);
            self.out.resize(self.out.len().div_ceil(BLOCK) * BLOCK, 0);
            self.passed.push((file, data, sent));
        }
        Ok(())
    }

    /// The next `len` bytes of the entry whose header the walk was just fed, fed to the walk
    /// in turn; a tar that ends before them is cut short.
    fn read_fed(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut data = vec![0; len];
        if let Err(e) = self.inner.read_exact(&mut data) {
            return Err(match e.kind() {
                io::ErrorKind::UnexpectedEof => Unloadable::CutShort { at: self.offset }.into_io(),
                _ => e,
            });
        }
        self.offset += len as u64;
        self.watcher.feed(&data);
        self.checked()?;
        Ok(data)
    }

    /// The entry whose header the walk was just fed, where it may be a zstd layer to send
    /// decoded: a blob of an OCI layout, for classic docker before 23.0.
    fn inflates(&self) -> Option<Entry> {
        let unread = matches!(self.zstd_layers, ZstdLayers::Unread { .. });
        let classic = unread && self.reads == Reads::DockerArchive && self.sizer.is_some();
        let entry = self.watcher.entry().filter(|_| classic)?;
        let blob = entry.file && entry.path.starts_with("blobs/") && entry.size >= ZSTD_HEAD as u64;
        blob.then(|| entry.clone())
    }

    /// A blob's header, which the walk was just fed: its first bytes are read to tell zstd
    /// frames, which then go out decoded under a header giving their decoded size; any other
    /// blob passes as it is.
    fn on_blob(&mut self, blob: Entry) -> io::Result<()> {
        let head = self.read_fed(ZSTD_HEAD)?;
        let header = std::mem::replace(&mut self.header, Vec::with_capacity(BLOCK));
        self.out_at = 0;
        let sizer = match self.sizer.as_mut() {
            Some(sizer) if is_zstd(&head) => sizer,
            _ => {
                self.out = header;
                self.out.extend_from_slice(&head);
                return Ok(());
            }
        };
        let at = self.offset - head.len() as u64;
        let size = sizer.size(at, blob.size)?;
        self.out = resized(&header, size);
        self.spared.insert(blob.path.clone());
        let limit = sizer.limit;
        self.inflating = Some(Inflating::new(blob.path, head, blob.size, size, limit));
        Ok(())
    }

    /// Reads a zstd layer's entry on, its decoded bytes into `buf`; at its end, the padding
    /// for its decoded size, while the tar's own padding is walked and not passed on.
    fn inflate(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inflating) = self.inflating.as_mut() else {
            return Ok(0);
        };
        if let Some(room) = inflating.room() {
            let n = self.inner.read(room)?;
            if n == 0 {
                return Err(Unloadable::CutShort { at: self.offset }.into_io());
            }
            self.offset += n as u64;
            self.watcher.feed(inflating.filled(n));
            return Ok(0);
        }
        let n = inflating.decode(buf)?;
        if n == 0 && inflating.done() {
            inflating.end()?;
            let padding = inflating.size().next_multiple_of(BLOCK as u64) - inflating.size();
            self.inflating = None;
            self.dropping = true;
            self.out = vec![0; padding as usize];
            self.out_at = 0;
        }
        Ok(n)
    }

    /// `inner` ended before the end-of-archive block: fine for a tar that needs nothing
    /// written or held back (docker judges it), an error for one that does.
    fn on_early_end(&mut self) -> io::Result<()> {
        self.through = true;
        self.confirm()?;
        if needs_manifest(self.watcher.contents()) || !self.held.is_empty() {
            let at = self.offset;
            return Err(Unloadable::CutShort { at }.into_io());
        }
        self.out = std::mem::take(&mut self.header);
        self.out_at = 0;
        Ok(())
    }
}

impl<R: Read> Read for Loadable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_at < self.out.len() {
                let n = (self.out.len() - self.out_at).min(buf.len());
                buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
                self.out_at += n;
                return Ok(n);
            }
            if self.through {
                return self.read_inner(buf);
            }
            self.checked()?;
            if self.inflating.is_some() {
                match self.inflate(buf)? {
                    0 => continue,
                    n => return Ok(n),
                }
            }
            match self.watcher.to_next_header() {
                // A tar the walk cannot read: docker says what is wrong with it.
                None => self.through = true,
                // Entry data (a layer, mostly) goes straight into the caller's buffer.
                Some(left) if left > 0 => {
                    let room = left.min(buf.len() as u64) as usize;
                    let n = self.read_inner(&mut buf[..room])?;
                    if n == 0 {
                        self.on_early_end()?;
                        continue;
                    }
                    self.watcher.feed(&buf[..n]);
                    self.checked()?;
                    if self.dropping {
                        // Walked, not passed on: the caller's buffer served as scratch.
                        continue;
                    }
                    return Ok(n);
                }
                Some(_) => {
                    let have = self.header.len();
                    self.header.resize(BLOCK, 0);
                    let got = self.inner.read(&mut self.header[have..]);
                    self.header.truncate(have + *got.as_ref().unwrap_or(&0));
                    match got? {
                        0 => self.on_early_end()?,
                        n => {
                            self.offset += n as u64;
                            if self.header.len() == BLOCK {
                                self.on_header()?;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tar header block `header` giving its entry's size as `size`.
fn resized(header: &[u8], size: u64) -> Vec<u8> {
    let mut resized = tar::Header::new_old();
    resized.as_mut_bytes().copy_from_slice(header);
    resized.set_size(size);
    resized.set_cksum();
    resized.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use container_loader_testkit::{
        append_raw as append, sha256_hex as hex, tar_of, tar_of_files, Pieces,
    };
    use serde_json::{json, Value};

    use crate::image::describe::{CONTAINERD_NAME, OCI_REF_NAME};
    use crate::image::limits::{IMAGES_MAX, NESTING_MAX};
    use crate::input::format::Format;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    /// An OCI layout being built: its blobs, then index.json (and more) at the end.
    #[derive(Default)]
    struct Oci {
        blobs: Vec<(String, Vec<u8>)>,
    }

    impl Oci {
        fn blob(&mut self, data: Vec<u8>) -> String {
            let digest = hex(&data);
            self.blobs.push((format!("blobs/sha256/{digest}"), data));
            digest
        }

        /// An image for `platform` (`os/arch[/variant]`) with one layer of `layer_len` bytes;
        /// its manifest descriptor, and its config digest.
        fn image(&mut self, platform: &str, layer_len: usize) -> (Value, String) {
            let p = super::tests::platform(platform);
            let layer = self.blob(vec![platform.len() as u8; layer_len]);
            let config = json!({"architecture": p.architecture, "os": p.os,
                "variant": p.variant,
                "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]}});
            let config = self.blob(config.to_string().into_bytes());
            let manifest = json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"digest": format!("sha256:{config}"), "size": 1},
                "layers": [{"digest": format!("sha256:{layer}"), "size": layer_len}]});
            let manifest = self.blob(manifest.to_string().into_bytes());
            let descriptor = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest}"), "size": 1});
            (descriptor, config)
        }

        /// A nested image index of `manifests`; its descriptor.
        fn index(&mut self, manifests: Vec<Value>) -> Value {
            let index = json!({"schemaVersion": 2, "manifests": manifests});
            let digest = self.blob(index.to_string().into_bytes());
            json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": format!("sha256:{digest}"), "size": 1})
        }

        /// The tar: blobs, `oci-layout`, `index.json` of `manifests`, then `more` files.
        fn tar(&self, manifests: Vec<Value>, more: &[(&str, &[u8])]) -> Vec<u8> {
            let index = json!({"schemaVersion": 2, "manifests": manifests}).to_string();
            let layout: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
            let mut files: Vec<(&str, &[u8])> = self
                .blobs
                .iter()
                .map(|(p, d)| (p.as_str(), d.as_slice()))
                .collect();
            files.push(("oci-layout", layout));
            files.push(("index.json", index.as_bytes()));
            files.extend_from_slice(more);
            tar_of(&files)
        }
    }

    /// The files of a docker-archive of one image per `(platform, names)`, each with a layer
    /// and a config of its own, manifest.json first; and each image's config path.
    fn docker_files(images: &[(&str, &[&str])]) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let mut files = vec![("manifest.json".to_owned(), Vec::new())];
        let mut items = Vec::new();
        let mut configs = Vec::new();
        for (i, (text, names)) in images.iter().enumerate() {
            let p = super::tests::platform(text);
            let layer_path = format!("l{i}/layer.tar");
            let layer = vec![i as u8; 1024];
            let config = json!({"architecture": p.architecture, "os": p.os,
                "variant": p.variant,
                "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&layer))]}});
            let config_path = format!("{}.json", hex(config.to_string().as_bytes()));
            items.push(json!({"Config": config_path, "RepoTags": names, "Layers": [layer_path]}));
            files.push((layer_path, layer));
            files.push((config_path.clone(), config.to_string().into_bytes()));
            configs.push(config_path);
        }
        files[0].1 = Value::from(items).to_string().into_bytes();
        (files, configs)
    }

    /// The regular files of a tar, in order.
    fn names_in(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        let entries = archive.entries().unwrap().map(Result::unwrap);
        entries
            .filter(|e| e.header().entry_type().is_file())
            .map(|e| e.path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// With a platform in a descriptor, as image indexes give it.
    fn on(mut descriptor: Value, platform: &str) -> Value {
        let p = super::tests::platform(platform);
        descriptor["platform"] =
            json!({"os": p.os, "architecture": p.architecture, "variant": p.variant});
        descriptor
    }

    fn named(mut descriptor: Value, name: &str) -> Value {
        descriptor["annotations"] = json!({ OCI_REF_NAME: name });
        descriptor
    }

    /// `tar` through the adapter for `device`, fed `step` bytes at a time and read into
    /// buffers of another size.
    fn through(tar: &[u8], step: usize, device: &str) -> io::Result<Vec<u8>> {
        through_to(tar, step, device, Reads::DockerArchive)
    }

    /// `through`, for a store that `reads` what it does.
    fn through_to(tar: &[u8], step: usize, device: &str, reads: Reads) -> io::Result<Vec<u8>> {
        let inner = Pieces { data: tar, step };
        let mut adapter = Loadable::new(inner, platform(device), reads);
        let mut out = Vec::new();
        let mut buf = vec![0; step * 3 / 2 + 1];
        loop {
            match adapter.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// `tar` through the adapter for a classic docker, leaving out `omit` (or with `empty`,
    /// their data); what came out, and what the adapter counted as left out.
    fn leaving(tar: &[u8], omit: &[&str], empty: bool) -> (Vec<u8>, (usize, u64)) {
        let omit: HashSet<String> = omit.iter().map(|p| p.to_string()).collect();
        let inner = Pieces {
            data: tar,
            step: 700,
        };
        let device = platform("linux/amd64");
        let mut adapter =
            Loadable::new(inner, device, Reads::DockerArchive).leaving_out(Box::new(omit), empty);
        let mut out = Vec::new();
        adapter.read_to_end(&mut out).unwrap();
        (out, adapter.left_out())
    }

    /// Leaves out every file named `*.tar`, and finds that wrong once the archive is told.
    struct Misjudging;

    impl Omission for Misjudging {
        fn omits(&mut self, path: &str) -> bool {
            path.ends_with(".tar")
        }

        fn confirm(&self, contents: &Walked) -> Result<(), Needed> {
            match contents.size("manifest.json") {
                Some(_) => Err(Needed::NotHeld {
                    path: "a.tar".to_owned(),
                }),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn stops_before_the_end_when_a_file_left_out_is_needed() {
        let files: [(&str, &[u8]); 2] = [("a.tar", &[7; 1000]), ("manifest.json", b"[]")];
        let tar = tar_of(&files);
        let inner = Pieces {
            data: &tar,
            step: 700,
        };
        let device = platform("linux/amd64");
        let mut adapter = Loadable::new(inner, device, Reads::DockerArchive)
            .leaving_out(Box::new(Misjudging), false);
        let mut out = Vec::new();
        let e = adapter.read_to_end(&mut out).unwrap_err();
        assert_eq!(
            LeftOutNeeded::find(&e).map(|l| l.0.to_string()),
            Some("a.tar is not a layer the engine holds for every image of the archive".to_owned())
        );
        let kept = tar_of(&files[1..]);
        assert!(
            out == kept[..kept.len() - 1024],
            "not manifest.json alone, without the tar's end"
        );
    }

    #[test]
    fn leaves_out_the_files_named_and_passes_the_rest_byte_for_byte() {
        let (a, b) = (vec![7; 1000], vec![8; 600]);
        let files: [(&str, &[u8]); 3] = [
            ("./a/layer.tar", &a),
            ("b/layer.tar", &b),
            ("manifest.json", b"[]"),
        ];
        let (out, left_out) = leaving(&tar_of(&files), &["a/layer.tar"], false);
        assert!(
            out == tar_of(&files[1..]),
            "not the tar without a/layer.tar"
        );
        assert_eq!(left_out, (1, 512 + 1024));
    }

    #[test]
    fn leaves_the_files_named_empty_and_passes_the_rest_byte_for_byte() {
        let (a, b) = (vec![7; 1000], vec![8; 600]);
        let files: [(&str, &[u8]); 3] = [
            ("./a/layer.tar", &a),
            ("b/layer.tar", &b),
            ("manifest.json", b"[]"),
        ];
        let (out, left_out) = leaving(&tar_of(&files), &["a/layer.tar"], true);
        let emptied: [(&str, &[u8]); 3] = [("./a/layer.tar", b""), files[1], files[2]];
        assert!(
            out == tar_of(&emptied),
            "not the tar with a/layer.tar empty"
        );
        assert_eq!(left_out, (1, 1024));
    }

    #[test]
    fn passes_a_named_file_whose_header_a_pax_header_extends() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("mtime", &b"1.5"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        builder
            .append_data(&mut h, "a/layer.tar", &b"abc"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let (out, left_out) = leaving(&tar, &["a/layer.tar"], false);
        assert!(out == tar, "the extension would apply to the next entry");
        assert_eq!(left_out, (0, 0));
    }

    /// The manifest.json a tar holds.
    fn manifest_of(tar: &[u8]) -> Value {
        json_in(tar, "manifest.json").expect("a manifest.json")
    }

    /// The JSON file `name` of a tar.
    fn json_in(tar: &[u8], name: &str) -> Option<Value> {
        let mut archive = tar::Archive::new(tar);
        let mut entries = archive.entries().unwrap();
        let entry = entries.find(|e| e.as_ref().unwrap().path().unwrap().to_str() == Some(name))?;
        Some(serde_json::from_reader(entry.unwrap()).unwrap())
    }

    fn unloadable(e: io::Error) -> Unloadable {
        Unloadable::find(&e)
            .unwrap_or_else(|| panic!("not Unloadable: {e}"))
            .clone()
    }

    #[test]
    fn writes_manifest_json_just_before_the_end_of_an_oci_archive_fed_in_pieces_of_any_size() {
        let mut oci = Oci::default();
        let (image, config) = oci.image("linux/amd64", 3000);
        let tar = oci.tar(vec![named(image, "example.org/app:1")], &[]);
        let layer = &oci.blobs[0].0;
        let want = format!(
            r#"[{{"Config":"blobs/sha256/{config}","RepoTags":["example.org/app:1"],"Layers":["{layer}"]}}]"#
        );
        let end = tar.len() - 2 * BLOCK;
        let first = through(&tar, tar.len(), "linux/amd64").unwrap();
        assert_eq!(
            &first[..end],
            &tar[..end],
            "everything before the end as it was"
        );
        assert_eq!(
            &first[first.len() - 2 * BLOCK..],
            &tar[end..],
            "the end as it was"
        );
        let entry = &first[end..first.len() - 2 * BLOCK];
        assert_eq!(&entry[..13], b"manifest.json");
        assert_eq!(&entry[BLOCK..BLOCK + want.len()], want.as_bytes());
        for step in [1, 7, 511, 512, 513, 4096] {
            assert!(
                through(&tar, step, "linux/amd64").unwrap() == first,
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn leaves_a_tar_that_has_a_manifest_json_byte_for_byte() {
        let mut oci = Oci::default();
        let (image, _) = oci.image("linux/amd64", 3000);
        let docker_25 = oci.tar(vec![image], &[("manifest.json", b"[]")]);
        let docker_archive = tar_of(&[("abc/layer.tar", &[1; 2000]), ("manifest.json", b"[]")]);
        let no_image = tar_of(&[("etc/hostname", b"x")]);
        for tar in [docker_25, docker_archive, no_image] {
            for step in [100, 512, tar.len()] {
                assert!(through(&tar, step, "linux/amd64").unwrap() == tar);
            }
        }
    }

    #[test]
    fn leaves_what_is_not_a_tar_as_it_is() {
        let noise: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        assert!(through(&noise, 300, "linux/amd64").unwrap() == noise);
    }

    #[test]
    fn picks_the_devices_platform_from_a_nested_image_index() {
        let mut oci = Oci::default();
        let (amd64, amd64_config) = oci.image("linux/amd64", 100);
        let (arm64, arm64_config) = oci.image("linux/arm64/v8", 200);
        let (arm, arm_config) = oci.image("linux/arm/v7", 300);
        let mut attestation = oci.image("unknown/unknown", 10).0;
        attestation["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
        let list = oci.index(vec![
            on(amd64, "linux/amd64"),
            on(arm64, "linux/arm64/v8"),
            on(arm, "linux/arm/v7"),
            on(attestation, "unknown/unknown"),
        ]);
        let tar = oci.tar(vec![named(list, "example.org/multi:1")], &[]);
        for (device, config) in [
            ("linux/amd64", amd64_config),
            ("linux/arm64", arm64_config),
            ("linux/arm/v7", arm_config),
        ] {
            let out = through(&tar, 4096, device).unwrap();
            let manifest = manifest_of(&out);
            assert_eq!(manifest.as_array().unwrap().len(), 1, "{device}");
            assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{config}"));
            assert_eq!(manifest[0]["RepoTags"], json!(["example.org/multi:1"]));
        }
    }

    #[test]
    fn picks_the_devices_platform_among_manifests_of_one_name_by_their_configs() {
        let mut oci = Oci::default();
        let (amd64, amd64_config) = oci.image("linux/amd64", 100);
        let (arm64, _) = oci.image("linux/arm64", 200);
        let tar = oci.tar(
            vec![
                named(arm64, "example.org/two:1"),
                named(amd64, "example.org/two:1"),
            ],
            &[],
        );
        let manifest = manifest_of(&through(&tar, 1000, "linux/amd64").unwrap());
        assert_eq!(manifest.as_array().unwrap().len(), 1);
        assert_eq!(
            manifest[0]["Config"],
            format!("blobs/sha256/{amd64_config}")
        );
    }

    #[test]
    fn keeps_only_the_devices_entry_where_index_json_offers_one_name_for_several_platforms() {
        let mut oci = Oci::default();
        let (amd64, _) = oci.image("linux/amd64", 100);
        let (arm64, _) = oci.image("linux/arm64", 200);
        let tar = oci.tar(
            vec![
                named(amd64.clone(), "example.org/two:1"),
                named(arm64, "example.org/two:1"),
            ],
            &[],
        );
        for step in [1, 300, 512, 4096] {
            let out = through_to(&tar, step, "linux/amd64", Reads::Either).unwrap();
            let index = json_in(&out, "index.json").expect("index.json");
            assert_eq!(
                index["manifests"],
                json!([named(amd64.clone(), "example.org/two:1")])
            );
            assert!(
                json_in(&out, "manifest.json").is_none(),
                "only for classic docker"
            );
            assert_eq!(out.len() % BLOCK, 0);
        }
    }

    #[test]
    fn leaves_an_oci_archive_for_one_platform_byte_for_byte_for_other_engines() {
        let mut oci = Oci::default();
        let (a, _) = oci.image("linux/arm64", 100);
        let tar = oci.tar(vec![named(a, "example.org/one:1")], &[]);
        assert!(through_to(&tar, 700, "linux/amd64", Reads::Either).unwrap() == tar);
    }

    #[test]
    fn fails_before_the_end_without_an_image_for_the_devices_platform_on_other_engines_too() {
        let mut oci = Oci::default();
        let (arm64, _) = oci.image("linux/arm64", 100);
        let (arm, _) = oci.image("linux/arm/v7", 100);
        let index = oci.index(vec![arm64, arm]);
        let tar = oci.tar(vec![named(index, "example.org/foreign:1")], &[]);
        let e = through_to(&tar, 512, "linux/amd64", Reads::Either).unwrap_err();
        assert!(
            matches!(
                Unloadable::find(&e),
                Some(Unloadable::Unsuited(Unsuited::NoneFits { .. }))
            ),
            "{e}"
        );
    }

    #[test]
    fn gives_a_docker_archive_the_oci_layout_of_the_manifest_the_loader_computes() {
        let layer = vec![0u8; 1024];
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&layer))]}})
        .to_string();
        let cfg = hex(config.as_bytes());
        let manifest = json!([{"Config": format!("{cfg}.json"), "RepoTags": ["debian:12"],
            "Layers": ["l/layer.tar"]}])
        .to_string();
        let tar = tar_of(&[
            ("l/layer.tar", &layer),
            (&format!("{cfg}.json"), config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ]);
        let computed = crate::image::describe::read(&tar[..])
            .unwrap()
            .unwrap()
            .images[0]
            .target
            .clone()
            .expect("a computed manifest digest");
        for step in [1, 512, 4096] {
            let out = through_to(&tar, step, "linux/amd64", Reads::OciLayout).unwrap();
            let end = tar.len() - 2 * BLOCK;
            assert!(
                out[..end] == tar[..end],
                "the archive itself passes as it is"
            );
            let index = json_in(&out, "index.json").expect("index.json");
            let descriptor = &index["manifests"][0];
            assert_eq!(descriptor["digest"], computed.as_str());
            assert_eq!(
                descriptor["annotations"],
                json!({CONTAINERD_NAME: "docker.io/library/debian:12", OCI_REF_NAME: "12"})
            );
            let written = json_in(&out, &format!("blobs/sha256/{}", &computed[7..]));
            assert_eq!(
                written.unwrap()["config"]["digest"],
                format!("sha256:{cfg}")
            );
            assert!(json_in(&out, "oci-layout").is_some());
            let read = crate::image::describe::read(&out[..]).unwrap().unwrap();
            assert_eq!(read.images[0].target.as_deref(), Some(computed.as_str()));
        }
        assert!(through_to(&tar, 512, "linux/amd64", Reads::Either).unwrap() == tar);
        assert!(through_to(&tar, 512, "linux/amd64", Reads::DockerArchive).unwrap() == tar);
    }

    #[test]
    fn writes_one_item_per_image_of_a_multi_image_archive() {
        let mut oci = Oci::default();
        let (a, a_config) = oci.image("linux/arm64", 100);
        let (b, b_config) = oci.image("linux/arm64", 200);
        let tar = oci.tar(
            vec![named(a, "example.org/a:1"), named(b, "example.org/b:2")],
            &[],
        );
        // One platform only, and not the device's: loaded as it is, as a docker-archive is.
        let manifest = manifest_of(&through(&tar, 1000, "linux/amd64").unwrap());
        assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{a_config}"));
        assert_eq!(manifest[0]["RepoTags"], json!(["example.org/a:1"]));
        assert_eq!(manifest[1]["Config"], format!("blobs/sha256/{b_config}"));
        assert_eq!(manifest[1]["RepoTags"], json!(["example.org/b:2"]));
    }

    #[test]
    fn fails_before_the_end_without_an_image_for_the_devices_platform() {
        let mut oci = Oci::default();
        let (arm64, _) = oci.image("linux/arm64", 100);
        let (arm, _) = oci.image("linux/arm/v7", 100);
        let list = oci.index(vec![on(arm64, "linux/arm64"), on(arm, "linux/arm/v7")]);
        let tar = oci.tar(vec![named(list, "example.org/foreign:1")], &[]);
        let mut adapter = Loadable::new(
            Pieces {
                data: &tar,
                step: 512,
            },
            platform("linux/amd64"),
            Reads::DockerArchive,
        );
        let mut passed = 0;
        let mut buf = [0; 700];
        let err = loop {
            match adapter.read(&mut buf) {
                Ok(0) => panic!("must fail"),
                Ok(n) => passed += n,
                Err(e) => break e,
            }
        };
        assert!(
            passed <= tar.len() - 2 * BLOCK,
            "the end-of-archive blocks stayed back"
        );
        assert_eq!(
            unloadable(err).to_string(),
            "no image of example.org/foreign:1 for this device's platform linux/amd64, only for \
             linux/arm64, linux/arm/v7; ship an archive that holds the linux/amd64 image"
        );
    }

    #[test]
    fn fails_on_an_oci_tar_cut_short_and_leaves_a_cut_docker_archive_to_docker() {
        let mut oci = Oci::default();
        let (image, _) = oci.image("linux/amd64", 3000);
        let tar = oci.tar(vec![image], &[("late.txt", &[5; 2000])]);
        let end = tar.len() - 2 * BLOCK;
        // Inside the last entry's data, inside its header, and right before the end blocks.
        for cut in [end - 1000, end - 2048 - 100, end] {
            let err = through(&tar[..cut], 512, "linux/amd64").unwrap_err();
            assert_eq!(unloadable(err), Unloadable::CutShort { at: cut as u64 });
        }
        let docker_archive = tar_of(&[("manifest.json", b"[]"), ("abc/layer.tar", &[1; 2000])]);
        let cut = &docker_archive[..docker_archive.len() - 1500];
        assert!(through(cut, 512, "linux/amd64").unwrap() == cut);
    }

    /// An OCI archive of one image for linux/amd64 whose layer is described as zstd.
    fn oci_with_a_zstd_layer() -> Vec<u8> {
        let mut oci = Oci::default();
        let layer = oci.blob(vec![9; 1000]);
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:00"]}});
        let config = oci.blob(config.to_string().into_bytes());
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": format!("sha256:{config}"), "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "digest": format!("sha256:{layer}"), "size": 1000}]});
        let manifest = oci.blob(manifest.to_string().into_bytes());
        let descriptor = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest}"), "size": 1});
        oci.tar(vec![named(descriptor, "example.org/zstd:1")], &[])
    }

    fn through_for_zstd(tar: &[u8], reads: Reads, zstd_layers: ZstdLayers) -> io::Result<Vec<u8>> {
        let inner = Pieces {
            data: tar,
            step: 700,
        };
        let mut adapter =
            Loadable::new(inner, platform("linux/amd64"), reads).zstd_layers(zstd_layers);
        let mut out = Vec::new();
        adapter.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn fails_before_the_end_where_classic_docker_cannot_unpack_zstd_layers() {
        let tar = oci_with_a_zstd_layer();
        let unread = ZstdLayers::Unread {
            version: "20.10.24".to_owned(),
        };
        let err = through_for_zstd(&tar, Reads::DockerArchive, unread.clone()).unwrap_err();
        assert_eq!(
            unloadable(err),
            Unloadable::ZstdLayers {
                version: "20.10.24".to_owned()
            }
        );
        // Podman and the containerd store read them; a later docker too, or one not known.
        for (reads, zstd_layers) in [
            (Reads::Either, unread.clone()),
            (Reads::OciLayout, unread),
            (Reads::DockerArchive, ZstdLayers::Read),
            (Reads::DockerArchive, ZstdLayers::Unknown),
        ] {
            assert!(through_for_zstd(&tar, reads, zstd_layers).is_ok());
        }
    }

    /// An OCI archive of one image for linux/amd64 whose layer blob is `layer`, of
    /// `media_type`, with the diffID `plain` hashes to; and the layer blob's path.
    fn oci_with_layer(layer: Vec<u8>, media_type: &str, plain: &[u8]) -> (Vec<u8>, String) {
        let mut oci = Oci::default();
        let digest = oci.blob(layer);
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(plain))]}});
        let config = oci.blob(config.to_string().into_bytes());
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": format!("sha256:{config}"), "size": 1},
            "layers": [{"mediaType": media_type, "digest": format!("sha256:{digest}"),
                "size": 1}]});
        let manifest = oci.blob(manifest.to_string().into_bytes());
        let descriptor = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest}"), "size": 1});
        let tar = oci.tar(vec![named(descriptor, "example.org/zstd:1")], &[]);
        (tar, format!("blobs/sha256/{digest}"))
    }

    const ZSTD_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    /// `tar` through the adapter for docker 20.10, with the sizes of its zstd layers read from
    /// `file`, fed `step` bytes at a time.
    fn through_docker20(tar: &[u8], file: &std::fs::File, step: usize) -> io::Result<Vec<u8>> {
        let inner = Pieces { data: tar, step };
        let unread = ZstdLayers::Unread {
            version: "20.10.24".to_owned(),
        };
        let mut adapter = Loadable::new(inner, platform("linux/amd64"), Reads::DockerArchive)
            .zstd_layers(unread)
            .sizing(Sizer::new(Format::Tar, file, 8 << 20));
        let mut out = Vec::new();
        let mut buf = vec![0; step * 3 / 2 + 1];
        loop {
            match adapter.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// The content of the regular file `name` in `tar`.
    fn file_in(tar: &[u8], name: &str) -> Option<Vec<u8>> {
        let mut archive = tar::Archive::new(tar);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries
            .find(|e| e.as_ref().unwrap().path().unwrap().to_str() == Some(name))?
            .unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        Some(data)
    }

    #[test]
    fn sends_zstd_layers_decoded_to_classic_docker_before_23() {
        let plain = inflate::tests::payload(300_000);
        let layer = crate::decode::compress(&["zstd", "-q", "-c"], &plain);
        let (tar, path) = oci_with_layer(layer, ZSTD_MEDIA_TYPE, &plain);
        let file = inflate::tests::file_with(&tar, &[], &[]);
        for step in [1000, 4096, tar.len()] {
            let out = through_docker20(&tar, &file, step).unwrap();
            assert!(
                file_in(&out, &path).unwrap() == plain,
                "fed {step} at a time"
            );
            assert_eq!(out.len() % BLOCK, 0);
            let manifest = manifest_of(&out);
            assert_eq!(manifest[0]["Layers"], json!([path]));
            let images = crate::image::describe::read(&tar[..]).unwrap().unwrap();
            let config = images.images[0].id.as_deref().unwrap();
            assert_eq!(
                manifest[0]["Config"],
                format!("blobs/sha256/{}", &config[7..])
            );
        }
    }

    #[test]
    fn passes_blobs_that_are_not_zstd_byte_for_byte_where_it_would_decode_zstd() {
        let plain = inflate::tests::payload(3000);
        let (tar, _) = oci_with_layer(
            plain.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            &plain,
        );
        let file = inflate::tests::file_with(&tar, &[], &[]);
        let out = through_docker20(&tar, &file, 700).unwrap();
        let end = tar.len() - 2 * BLOCK;
        assert!(out[..end] == tar[..end], "the archive passes as it is");
        assert!(json_in(&out, "manifest.json").is_some());
    }

    #[test]
    fn refuses_a_zstd_layer_behind_an_extension_header_it_cannot_send_decoded() {
        let plain = inflate::tests::payload(3000);
        let layer = crate::decode::compress(&["zstd", "-q", "-c"], &plain);
        let (tar, path) = oci_with_layer(layer.clone(), ZSTD_MEDIA_TYPE, &plain);
        let mut b = tar::Builder::new(Vec::new());
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == path {
                b.append_pax_extensions([("mtime", &b"1.5"[..])]).unwrap();
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            append(&mut b, &name, &data);
        }
        let tar = b.into_inner().unwrap();
        let file = inflate::tests::file_with(&tar, &[], &[]);
        let err = through_docker20(&tar, &file, 700).unwrap_err();
        assert_eq!(
            unloadable(err),
            Unloadable::ZstdLayers {
                version: "20.10.24".to_owned()
            }
        );
    }

    #[test]
    fn fails_before_the_end_on_a_zstd_layer_that_cannot_be_decoded() {
        let plain = inflate::tests::payload(300_000);
        let mut layer = crate::decode::compress(&["zstd", "-q", "-c"], &plain);
        layer.truncate(layer.len() / 2);
        let (tar, _) = oci_with_layer(layer, ZSTD_MEDIA_TYPE, &plain);
        let file = inflate::tests::file_with(&tar, &[], &[]);
        let err = through_docker20(&tar, &file, 700).unwrap_err();
        assert!(crate::decode::DecodeError::find(&err).is_some(), "{err}");
    }

    #[test]
    fn leaves_out_a_zstd_layer_classic_docker_holds_without_refusing_the_archive() {
        let plain = inflate::tests::payload(3000);
        let layer = crate::decode::compress(&["zstd", "-q", "-c"], &plain);
        let (tar, path) = oci_with_layer(layer, ZSTD_MEDIA_TYPE, &plain);
        let inner = Pieces {
            data: &tar,
            step: 700,
        };
        let unread = ZstdLayers::Unread {
            version: "20.10.24".to_owned(),
        };
        let omit: HashSet<String> = [path.clone()].into();
        let mut adapter = Loadable::new(inner, platform("linux/amd64"), Reads::DockerArchive)
            .zstd_layers(unread)
            .leaving_out(Box::new(omit), false);
        let mut out = Vec::new();
        adapter.read_to_end(&mut out).unwrap();
        assert!(file_in(&out, &path).is_none(), "left out");
        assert_eq!(manifest_of(&out)[0]["Layers"], json!([path]));
    }

    #[test]
    fn notes_zstd_layers_sent_to_a_classic_docker_of_a_version_not_known() {
        let tar = oci_with_a_zstd_layer();
        for (zstd_layers, unsure) in [(ZstdLayers::Unknown, true), (ZstdLayers::Read, false)] {
            let inner = Pieces {
                data: &tar,
                step: 700,
            };
            let mut adapter = Loadable::new(inner, platform("linux/amd64"), Reads::DockerArchive)
                .zstd_layers(zstd_layers);
            adapter.read_to_end(&mut Vec::new()).unwrap();
            assert_eq!(adapter.zstd_unsure(), unsure);
        }
    }

    #[test]
    fn passes_an_error_of_the_inner_reader_on_unchanged() {
        struct FailsAtEnd<'a>(&'a [u8]);
        impl Read for FailsAtEnd<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("checksum mismatch"));
                }
                let n = self.0.len().min(buf.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut oci = Oci::default();
        let (image, _) = oci.image("linux/amd64", 3000);
        let tar = oci.tar(vec![image], &[]);
        // The decoder fails after the end-of-archive blocks, and in the middle.
        for data in [&tar[..], &tar[..tar.len() / 2]] {
            let mut adapter = Loadable::new(
                FailsAtEnd(data),
                platform("linux/amd64"),
                Reads::DockerArchive,
            );
            let err = io::copy(&mut adapter, &mut io::sink()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other);
            assert_eq!(err.to_string(), "checksum mismatch");
        }
    }

    /// What passes the adapter for `reads` before it fails, and the error.
    fn passed_before_failing(tar: &[u8], reads: Reads) -> (usize, Unloadable) {
        let inner = Pieces {
            data: tar,
            step: 512,
        };
        let mut adapter = Loadable::new(inner, platform("linux/amd64"), reads);
        let (mut passed, mut buf) = (0, [0; 700]);
        loop {
            match adapter.read(&mut buf) {
                Ok(0) => panic!("must fail"),
                Ok(n) => passed += n,
                Err(e) => return (passed, unloadable(e)),
            }
        }
    }

    #[test]
    fn aborts_an_archive_holding_manifest_json_twice_before_its_end_for_every_store() {
        let first = br#"[{"Config":"a.json","RepoTags":["a:1"],"Layers":[]}]"#;
        let last = br#"[{"Config":"b.json","RepoTags":["b:1"],"Layers":[]}]"#;
        let tar = tar_of(&[
            ("manifest.json", first),
            ("l/layer.tar", &[1; 3000]),
            ("manifest.json", last),
        ]);
        for reads in [Reads::DockerArchive, Reads::OciLayout, Reads::Either] {
            let (passed, e) = passed_before_failing(&tar, reads);
            assert!(
                passed < tar.len() - 2 * BLOCK,
                "{reads:?}: {passed} bytes passed"
            );
            assert_eq!(
                e,
                Unloadable::Invalid(Invalid::Twice("manifest.json".into()))
            );
        }
    }

    #[test]
    fn aborts_an_archive_holding_manifest_json_twice_under_another_spelling_before_its_end() {
        for spelling in ["x/../manifest.json", "./manifest.json", ".//manifest.json"] {
            let first = br#"[{"Config":"a.json","RepoTags":["a:1"],"Layers":[]}]"#;
            let last = br#"[{"Config":"b.json","RepoTags":["b:1"],"Layers":[]}]"#;
            let tar = tar_of(&[
                ("manifest.json", first),
                ("l/layer.tar", &[1; 3000]),
                (spelling, last),
            ]);
            let (passed, e) = passed_before_failing(&tar, Reads::Either);
            assert!(
                passed < tar.len() - 2 * BLOCK,
                "{spelling}: {passed} bytes passed"
            );
            assert_eq!(
                e,
                Unloadable::Invalid(Invalid::Twice("manifest.json".into())),
                "{spelling}"
            );
        }
    }

    #[test]
    fn holds_back_manifest_json_giving_one_name_to_several_platforms_until_the_device_is_known() {
        let name: &[&str] = &["example.org/two:1"];
        let (files, configs) = docker_files(&[("linux/arm64", name), ("linux/amd64", name)]);
        let tar = tar_of_files(&files);
        for reads in [Reads::DockerArchive, Reads::Either, Reads::OciLayout] {
            for step in [1, 512, 4096] {
                let out = through_to(&tar, step, "linux/amd64", reads).unwrap();
                let names = names_in(&out);
                let at = names.iter().position(|n| n == "manifest.json");
                assert_eq!(
                    at,
                    Some(files.len() - 1),
                    "{reads:?}: last of the archive's"
                );
                let manifest = manifest_of(&out);
                assert_eq!(
                    manifest,
                    json!([{"Config": configs[1], "RepoTags": name, "Layers": ["l1/layer.tar"]}])
                );
                let images = crate::image::describe::read(&out[..])
                    .unwrap()
                    .unwrap()
                    .images;
                assert_eq!(images.len(), 1, "{reads:?}");
            }
        }
    }

    #[test]
    fn gives_the_containerd_store_the_devices_image_alone_where_one_name_has_several() {
        let name: &[&str] = &["example.org/two:1"];
        let (files, _) = docker_files(&[("linux/amd64", name), ("linux/arm64", name)]);
        let tar = tar_of_files(&files);
        let out = through_to(&tar, 4096, "linux/amd64", Reads::OciLayout).unwrap();
        let index = json_in(&out, "index.json").expect("index.json");
        let described = crate::image::describe::read(&out[..])
            .unwrap()
            .unwrap()
            .images;
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(
            index["manifests"][0]["digest"].as_str(),
            described[0].target.as_deref()
        );
    }

    #[test]
    fn fails_before_the_end_where_manifest_json_gives_one_name_only_to_other_platforms() {
        let name: &[&str] = &["example.org/two:1"];
        let (files, _) = docker_files(&[("linux/arm64", name), ("linux/s390x", name)]);
        let (passed, e) = passed_before_failing(&tar_of_files(&files), Reads::Either);
        assert!(passed <= tar_of_files(&files).len() - 2 * BLOCK);
        assert_eq!(
            e.to_string(),
            "no image of example.org/two:1 for this device's platform linux/amd64, only for \
             linux/arm64, linux/s390x; ship an archive that holds the linux/amd64 image"
        );
    }

    #[test]
    fn fails_before_the_end_where_manifest_json_gives_one_name_to_two_images_for_the_device() {
        let name: &[&str] = &["example.org/two:1"];
        let (files, _) = docker_files(&[("linux/amd64", name), ("linux/amd64", name)]);
        let (_, e) = passed_before_failing(&tar_of_files(&files), Reads::DockerArchive);
        assert_eq!(
            e.to_string(),
            "gives example.org/two:1 to 2 images for this device's platform linux/amd64, and \
             which one is meant cannot be told; ship an archive that gives example.org/two:1 \
             to one image per platform"
        );
    }

    #[test]
    fn chooses_in_place_behind_an_extension_header_once_the_platforms_are_known() {
        let name: &[&str] = &["example.org/two:1"];
        let (mut files, configs) = docker_files(&[("linux/arm64", name), ("linux/amd64", name)]);
        files.rotate_left(1);
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in &files {
            if path == "manifest.json" {
                b.append_pax_extensions([("mtime", &b"1.5"[..])]).unwrap();
            }
            append(&mut b, path, data);
        }
        let tar = b.into_inner().unwrap();
        let out = through(&tar, 700, "linux/amd64").unwrap();
        assert_eq!(manifest_of(&out)[0]["Config"], configs[1]);
        assert_eq!(manifest_of(&out).as_array().unwrap().len(), 1);
    }

    #[test]
    fn fails_where_manifest_json_behind_an_extension_header_came_before_the_platforms() {
        let name: &[&str] = &["example.org/two:1"];
        let (files, _) = docker_files(&[("linux/arm64", name), ("linux/amd64", name)]);
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("mtime", &b"1.5"[..])]).unwrap();
        for (path, data) in &files {
            append(&mut b, path, data);
        }
        let (_, e) = passed_before_failing(&b.into_inner().unwrap(), Reads::Either);
        assert_eq!(
            e,
            Unloadable::Passed {
                file: "manifest.json"
            }
        );
    }

    #[test]
    fn keeps_the_devices_entry_where_one_name_is_on_an_image_index_and_a_manifest_beside_it() {
        let mut oci = Oci::default();
        let (amd64, amd64_config) = oci.image("linux/amd64", 100);
        let (arm64, _) = oci.image("linux/arm64", 200);
        let list = oci.index(vec![on(amd64, "linux/amd64"), on(arm64, "linux/arm64")]);
        let (beside, _) = oci.image("linux/arm64", 300);
        let name = "example.org/beside:1";
        let tar = oci.tar(vec![named(list.clone(), name), named(beside, name)], &[]);
        let out = through_to(&tar, 1000, "linux/amd64", Reads::Either).unwrap();
        let index = json_in(&out, "index.json").expect("index.json");
        assert_eq!(index["manifests"], json!([named(list, name)]));
        let manifest = manifest_of(&through(&tar, 1000, "linux/amd64").unwrap());
        assert_eq!(
            manifest[0]["Config"],
            format!("blobs/sha256/{amd64_config}")
        );
        assert_eq!(manifest.as_array().unwrap().len(), 1);
    }

    #[test]
    fn holds_back_index_json_that_comes_before_the_manifests_it_chooses_between() {
        let mut oci = Oci::default();
        let (amd64, _) = oci.image("linux/amd64", 100);
        let (arm64, _) = oci.image("linux/arm64", 200);
        let name = "example.org/early:1";
        let index = json!({"manifests": [named(arm64, name), named(amd64.clone(), name)]});
        let index = index.to_string();
        let mut files: Vec<(&str, &[u8])> = vec![("index.json", index.as_bytes())];
        files.extend(oci.blobs.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
        files.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
        let out = through_to(&tar_of(&files), 512, "linux/amd64", Reads::Either).unwrap();
        let index = json_in(&out, "index.json").expect("index.json");
        assert_eq!(index["manifests"], json!([named(amd64, name)]));
        assert_eq!(
            names_in(&out).last().map(String::as_str),
            Some("index.json")
        );
    }

    #[test]
    fn fails_before_the_end_where_an_image_index_offers_one_platform_not_the_devices() {
        let mut oci = Oci::default();
        let (arm64, _) = oci.image("linux/arm64", 100);
        let list = oci.index(vec![on(arm64, "linux/arm64")]);
        let tar = oci.tar(vec![named(list, "example.org/arm:1")], &[]);
        for reads in [Reads::DockerArchive, Reads::Either, Reads::OciLayout] {
            let (_, e) = passed_before_failing(&tar, reads);
            assert!(
                e.to_string().starts_with("no image of example.org/arm:1 for this device's platform linux/amd64, only for linux/arm64;"),
                "{e}"
            );
        }
    }

    #[test]
    fn fails_before_the_end_where_index_json_gives_one_name_to_two_manifests_for_the_device() {
        let mut oci = Oci::default();
        let (a, _) = oci.image("linux/amd64", 100);
        let (b, _) = oci.image("linux/amd64", 200);
        let name = "example.org/twice:1";
        let tar = oci.tar(vec![named(a, name), named(b, name)], &[]);
        let (_, e) = passed_before_failing(&tar, Reads::Either);
        assert!(
            matches!(e, Unloadable::Unsuited(Unsuited::Several { count: 2, .. })),
            "{e}"
        );
    }

    #[test]
    fn aborts_an_archive_describing_more_images_than_the_loader_reads_before_its_end() {
        let item = r#"{"Config":"c.json","RepoTags":[],"Layers":[]}"#;
        let many = format!("[{}]", vec![item; IMAGES_MAX + 1].join(","));
        let tar = tar_of(&[("c.json", b"{}"), ("manifest.json", many.as_bytes())]);
        let (passed, e) = passed_before_failing(&tar, Reads::Either);
        assert!(passed <= tar.len() - 2 * BLOCK);
        assert!(
            e.to_string().starts_with("describes more than 1000 images"),
            "{e}"
        );
    }

    /// An image under `levels` image indexes, each naming the next `width` times.
    fn fanned_out(levels: usize, width: usize) -> (Vec<u8>, String) {
        let mut oci = Oci::default();
        let (image, config) = oci.image("linux/amd64", 10);
        let mut top = image;
        for _ in 0..levels {
            top = oci.index(vec![on(top, "linux/amd64"); width]);
        }
        (oci.tar(vec![named(top, "example.org/fan:1")], &[]), config)
    }

    #[test]
    fn follows_image_indexes_naming_each_other_over_and_over_to_one_image() {
        // 10^12 images if every entry were followed; one entry per index is.
        let (tar, config) = fanned_out(NESTING_MAX, 1000);
        let started = std::time::Instant::now();
        let manifest = manifest_of(&through(&tar, 4096, "linux/amd64").unwrap());
        assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{config}"));
        assert_eq!(manifest.as_array().unwrap().len(), 1);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }

    #[test]
    fn refuses_image_indexes_nested_deeper_than_it_reads() {
        let (tar, _) = fanned_out(NESTING_MAX + 1, 2);
        let (_, e) = passed_before_failing(&tar, Reads::Either);
        assert!(
            e.to_string()
                .starts_with("describes more than 4 image indexes nested in one another"),
            "{e}"
        );
    }
}
