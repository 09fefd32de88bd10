//! Image archives built in memory (docker-archive images of seeded layers, compressed by the
//! real command-line tools, or saved by podman), and the seeded data they are made of.

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use super::*;

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// xorshift64 from `seed`: reproducible test data, no crate needed.
fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

/// A seeded generator for randomized tests: the same seed makes the same choices.
pub struct Rng(Box<dyn Iterator<Item = u64>>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Box::new(xorshift(seed)))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.0.next().unwrap_or_default() % n as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `len` bytes that do not compress, so an upload is as big as its archive.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    for x in xorshift(seed) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layer tar holding one file.
fn layer_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, name, content, 0o644);
    b.into_inner().expect("finish layer tar")
}

/// Deterministic, compressible filler: words from a small vocabulary picked by an
/// xorshift generator seeded with `seed`.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "container",
        "loader",
        "layer",
        "image",
        "archive",
        "boot",
        "socket",
        "engine",
        "zstd",
        "gzip",
        "xz",
        "tar",
        "manifest",
        "config",
        "digest",
        "podman",
        "docker",
        "debian",
        "bookworm",
        "rootfs",
    ];
    let mut out = Vec::with_capacity(len + 16);
    for x in xorshift(seed) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut header = tar::Header::new_ustar();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder
        .append_data(&mut header, path, std::io::empty())
        .expect("append dir to tar");
}

/// A docker-archive image built in memory.
#[derive(Clone)]
pub struct Fixture {
    /// The first RepoTag (what a list line names).
    pub reference: String,
    /// The uncompressed docker-archive tar.
    pub tar: Vec<u8>,
    /// The image ID (`<hex>` of the config's sha256).
    pub id: String,
    /// The ID on docker's containerd image store (`<hex>`): the digest of the manifest
    /// containerd writes for a docker-archive (containerd's images/archive `ImportIndex`).
    pub manifest_id: String,
    /// The layer tars, bottom up, so that another image can be built on them.
    pub layers: Vec<Vec<u8>>,
}

impl Fixture {
    /// A one-layer image tagged `reference`.
    pub fn new(reference: &str) -> Fixture {
        Fixture::build(&[reference], 1)
    }

    /// An image with `layers` layers, each holding a file unique to this fixture, tagged
    /// with every entry of `repo_tags` (none: an untagged archive).
    pub fn build(repo_tags: &[&str], layers: usize) -> Fixture {
        let seed = fresh_seed();
        let layer_tars = (0..layers)
            .map(|i| {
                let name = format!("fixture-{seed:x}-{i}.txt");
                let mut content =
                    format!("fixture {seed:x} layer {i} for {repo_tags:?}\n").into_bytes();
                content.extend(filler(seed.wrapping_add(i as u64), 6000));
                layer_of(&name, &content)
            })
            .collect();
        Fixture::from_layers(repo_tags, layer_tars)
    }

    /// A one-layer image tagged `reference` whose layer holds one file, `name`: sized and
    /// shaped as a test needs it (random bytes that do not compress, text that does).
    pub fn one_file_layer(reference: &str, name: &str, content: &[u8]) -> Fixture {
        Fixture::from_layers(&[reference], vec![layer_of(name, content)])
    }

    /// A one-layer image tagged `reference` whose layer holds `files` (path, content, mode):
    /// with a static busybox as `bin/busybox` (0o755), an image a container can run. For the
    /// device tests (tests/vm.rs, tests/isar_build.rs); the engine suites need no container.
    #[allow(dead_code)]
    pub fn with_files(reference: &str, files: &[(&str, &[u8], u32)]) -> Fixture {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content, mode) in files {
            append_file(&mut b, path, content, *mode);
        }
        let layer = b.into_inner().expect("finish layer tar");
        Fixture::from_layers(&[reference], vec![layer])
    }

    /// An image tagged `reference` made of `base`'s layers and `more` layers of its own on
    /// top, each as large as `layer_len` bytes of text: images on a shared base.
    pub fn on_base(base: &Fixture, reference: &str, more: usize, layer_len: usize) -> Fixture {
        let seed = fresh_seed();
        let mut layers = base.layers.clone();
        layers.extend((0..more).map(|i| {
            let mut content = format!("{reference} layer {i} ({seed:x})\n").into_bytes();
            content.extend(filler(seed.wrapping_add(i as u64), layer_len));
            layer_of(&format!("on-base-{seed:x}-{i}.txt"), &content)
        }));
        Fixture::from_layers(&[reference], layers)
    }

    /// `self` with its top layer replaced by one of its own: an update that changes one layer.
    pub fn with_new_top(&self, reference: &str) -> Fixture {
        let seed = fresh_seed();
        let mut layers = self.layers.clone();
        let top = layers.pop().map_or(0, |l| l.len());
        let mut content = format!("{reference} new top ({seed:x})\n").into_bytes();
        content.extend(filler(seed, top));
        layers.push(layer_of(&format!("top-{seed:x}.txt"), &content));
        Fixture::from_layers(&[reference], layers)
    }

    /// A one-layer image tagged `reference` whose config names the architecture `arch`
    /// (`arm64`, `s390x`...): an image for another platform than the device's, which every
    /// engine loads and no container here could run.
    pub fn for_arch(reference: &str, arch: &str) -> Fixture {
        let seed = fresh_seed();
        let content = format!("fixture {seed:x} for {arch}\n").into_bytes();
        let layer = layer_of(&format!("fixture-{seed:x}.txt"), &content);
        Fixture::from_layers_for(arch, &[reference], vec![layer])
    }

    /// The docker-archive (`docker save` layout) of an image made of `layer_tars`.
    pub fn from_layers(repo_tags: &[&str], layer_tars: Vec<Vec<u8>>) -> Fixture {
        Fixture::from_layers_for(oci_arch(), repo_tags, layer_tars)
    }

    /// The same, for the architecture `arch`.
    fn from_layers_for(arch: &str, repo_tags: &[&str], layer_tars: Vec<Vec<u8>>) -> Fixture {
        let diff_ids: Vec<String> = layer_tars.iter().map(|l| sha256_hex(l)).collect();
        let config = image_config(arch, "{}", &diff_ids);
        let id = sha256_hex(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{id}.json","RepoTags":[{}],"Layers":[{}]}}]"#,
            repo_tags
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(","),
            diff_ids
                .iter()
                .map(|d| format!("\"{d}/layer.tar\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut b = tar::Builder::new(Vec::new());
        for (d, l) in diff_ids.iter().zip(&layer_tars) {
            append_dir(&mut b, &format!("{d}/"));
            append_file(&mut b, &format!("{d}/layer.tar"), l, 0o644);
        }
        append_file(&mut b, &format!("{id}.json"), config.as_bytes(), 0o644);
        append_file(&mut b, "manifest.json", manifest.as_bytes(), 0o644);
        let layers: Vec<String> = diff_ids
            .iter()
            .zip(&layer_tars)
            .map(|(d, l)| {
                format!(
                    r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"sha256:{d}","size":{}}}"#,
                    l.len()
                )
            })
            .collect();
        let made_up = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{id}","size":{}}},"layers":[{}]}}"#,
            config.len(),
            layers.join(",")
        );
        Fixture {
            reference: repo_tags.first().copied().unwrap_or("").to_string(),
            tar: b.into_inner().expect("finish image tar"),
            id,
            manifest_id: sha256_hex(made_up.as_bytes()),
            layers: layer_tars,
        }
    }

    /// The ID `flavor` gives this image (`<hex>`): the config's digest, or the manifest's on
    /// docker's containerd image store.
    pub fn id_on(&self, flavor: Flavor) -> &str {
        match flavor.containerd_store() {
            true => &self.manifest_id,
            false => &self.id,
        }
    }

    pub fn compressed(&self, codec: Codec) -> Vec<u8> {
        codec.compress(&self.tar)
    }

    /// Its archive with one byte of its first layer's file changed: still a valid tar, whose
    /// layer no longer matches the config's diff_id. Every engine refuses it, each at its own
    /// point of the load (docker's containerd store after naming the image).
    pub fn with_a_layer_not_its_diff_id(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut damaged = false;
        let mut archive = tar::Archive::new(&self.tar[..]);
        for entry in archive.entries().expect("read fixture tar") {
            let mut entry = entry.expect("fixture tar entry");
            let path = entry.path().unwrap().display().to_string();
            if entry.header().entry_type().is_dir() {
                append_dir(&mut b, &path);
                continue;
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path.ends_with("/layer.tar") && !damaged {
                // Past the layer's first tar header: inside the file it holds.
                data[512 + 16] ^= 0x01;
                damaged = true;
            }
            append_file(&mut b, &path, &data, 0o644);
        }
        assert!(damaged, "the fixture has a layer");
        b.into_inner().expect("finish image tar")
    }
}

impl Fixture {
    /// Its image as an OCI archive whose layers are compressed by `zstd`, described as
    /// `application/vnd.oci.image.layer.v1.tar+zstd` (as `skopeo copy --dest-compress-format
    /// zstd` writes them), index.json naming it `self.reference` in its OCI ref.name.
    pub fn oci_with_zstd_layers(&self) -> Vec<u8> {
        self.oci(Some(Codec::Zstd), &self.reference)
    }

    /// Its image as an OCI archive whose layers are gzipped
    /// (`application/vnd.oci.image.layer.v1.tar+gzip`, as skopeo and podman push them by
    /// default): the same config, so the same image, under another manifest than its
    /// docker-archive gets.
    pub fn oci_with_gzip_layers(&self) -> Vec<u8> {
        self.oci(Some(Codec::Gzip), &self.reference)
    }

    /// Its image as an OCI archive with plain layers, index.json naming it `ref_name` in its
    /// OCI ref.name: a reference, or a bare tag (`v1`) as `skopeo copy oci-archive:X:v1`
    /// writes it.
    pub fn oci_named(&self, ref_name: &str) -> Vec<u8> {
        self.oci(None, ref_name)
    }

    /// Its image as an OCI archive, layers compressed by `layers` (zstd or gzip) or plain.
    fn oci(&self, layers: Option<Codec>, ref_name: &str) -> Vec<u8> {
        let config = self.file(&format!("{}.json", self.id));
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |data: Vec<u8>| {
            let digest = format!("sha256:{}", sha256_hex(&data));
            let size = data.len();
            blobs.push((format!("blobs/sha256/{}", &digest[7..]), data));
            (digest, size)
        };
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|layer| {
                let (data, media_type) = match layers {
                    Some(Codec::Zstd) => (
                        Codec::Zstd.compress(layer),
                        "application/vnd.oci.image.layer.v1.tar+zstd",
                    ),
                    Some(Codec::Gzip) => (
                        Codec::Gzip.compress(layer),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    ),
                    Some(other) => panic!("no OCI layer media type for {}", other.format()),
                    None => (layer.clone(), "application/vnd.oci.image.layer.v1.tar"),
                };
                let (digest, size) = add(data);
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
            })
            .collect();
        let (config, config_size) = add(config);
        let manifest = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config, "size": config_size},
            "layers": layers});
        let (digest, size) = add(manifest.to_string().into_bytes());
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": ref_name}}]});
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in &blobs {
            append_file(&mut b, path, data, 0o644);
        }
        append_file(
            &mut b,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        );
        append_file(&mut b, "index.json", index.to_string().as_bytes(), 0o644);
        b.into_inner().expect("finish OCI tar")
    }

    /// The content of `path` in its archive.
    fn file(&self, path: &str) -> Vec<u8> {
        let mut archive = tar::Archive::new(&self.tar[..]);
        let mut entry = archive
            .entries()
            .expect("read fixture tar")
            .map(|e| e.expect("fixture tar entry"))
            .find(|e| e.path().unwrap().to_str() == Some(path))
            .unwrap_or_else(|| panic!("{path} in the fixture"));
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        data
    }
}

/// One docker-archive holding both fixtures' images, each under its own RepoTags.
pub fn two_image_archive(a: &Fixture, b: &Fixture) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut manifest: Vec<serde_json::Value> = Vec::new();
    for fixture in [a, b] {
        let mut archive = tar::Archive::new(&fixture.tar[..]);
        for entry in archive.entries().expect("read fixture tar") {
            let mut entry = entry.expect("fixture entry");
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if path == "manifest.json" {
                let items: Vec<serde_json::Value> = serde_json::from_slice(&data).unwrap();
                manifest.extend(items);
            } else if entry.header().entry_type().is_dir() {
                append_dir(&mut builder, &path);
            } else {
                append_file(&mut builder, &path, &data, 0o644);
            }
        }
    }
    let manifest = serde_json::to_vec(&manifest).unwrap();
    append_file(&mut builder, "manifest.json", &manifest, 0o644);
    builder.into_inner().expect("finish two-image tar")
}

/// How a fixture archive is compressed, always by the real command-line tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `zstd -q -c` (with its default content checksum).
    Zstd,
    /// `zstd -q --long=30 -c` from a pipe: the frame asks for a 1 GiB window.
    ZstdLong30,
    /// `gzip -c -n`.
    Gzip,
    /// Two gzip members concatenated, split inside the tar (not on a 512-byte boundary).
    GzipMultiMember,
    /// `xz -c`.
    Xz,
    /// `xz -T1 --block-size=4096 -c`: several xz blocks.
    XzMultiBlock,
    /// `xz -c --lzma2=dict=256MiB`: needs ~257 MiB to decode.
    XzBigDictionary,
    /// `bzip2 -c`.
    Bzip2,
    /// No compression at all.
    Tar,
}

impl Codec {
    /// The format name the loader reports ("zstd", "gzip", "xz", "bzip2", "tar").
    pub fn format(self) -> &'static str {
        match self {
            Codec::Zstd | Codec::ZstdLong30 => "zstd",
            Codec::Gzip | Codec::GzipMultiMember => "gzip",
            Codec::Xz | Codec::XzMultiBlock | Codec::XzBigDictionary => "xz",
            Codec::Bzip2 => "bzip2",
            Codec::Tar => "tar",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Codec::Zstd | Codec::ZstdLong30 => "tar.zst",
            Codec::Gzip | Codec::GzipMultiMember => "tar.gz",
            Codec::Xz | Codec::XzMultiBlock | Codec::XzBigDictionary => "tar.xz",
            Codec::Bzip2 => "tar.bz2",
            Codec::Tar => "tar",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        let out = match self {
            Codec::Zstd => pipe("zstd", &["-q", "-c"], data),
            Codec::ZstdLong30 => {
                let out = pipe("zstd", &["-q", "--long=30", "-c"], data);
                // Sanity: without a raised limit the zstd CLI itself refuses this frame.
                let plain = pipe_status("zstd", &["-q", "-d", "-c"], &out);
                assert!(
                    !plain.0.success(),
                    "fixture error: a --long=30 frame should need more than zstd's default memory"
                );
                out
            }
            Codec::Gzip => pipe("gzip", &["-c", "-n"], data),
            Codec::GzipMultiMember => {
                let split = data.len() / 2 + 7;
                let mut out = pipe("gzip", &["-c", "-n"], &data[..split]);
                out.extend(pipe("gzip", &["-c", "-n"], &data[split..]));
                out
            }
            Codec::Xz => pipe("xz", &["-c"], data),
            Codec::XzMultiBlock => {
                let out = pipe("xz", &["-T1", "--block-size=4096", "-c"], data);
                let blocks = xz_block_count(&out);
                assert!(
                    blocks > 1,
                    "fixture error: expected several xz blocks, got {blocks}"
                );
                out
            }
            Codec::XzBigDictionary => {
                let out = pipe("xz", &["-c", "--lzma2=dict=256MiB"], data);
                // Sanity: xz itself refuses to decode it within 128 MiB.
                let limited = pipe_status("xz", &["-d", "-c", "--memlimit=128MiB"], &out);
                assert!(
                    !limited.0.success(),
                    "fixture error: a 256 MiB dictionary should need more than 128 MiB"
                );
                out
            }
            Codec::Bzip2 => pipe("bzip2", &["-c"], data),
            Codec::Tar => data.to_vec(),
        };
        if self != Codec::ZstdLong30 {
            // Sanity: the real tool decompresses the fixture back to the tar.
            let (cmd, args): (&str, &[&str]) = match self.format() {
                "zstd" => ("zstd", &["-q", "-d", "-c"]),
                "gzip" => ("gzip", &["-d", "-c"]),
                "xz" => ("xz", &["-d", "-c"]),
                "bzip2" => ("bzip2", &["-d", "-c"]),
                _ => ("cat", &[]),
            };
            assert!(
                pipe(cmd, args, &out) == data,
                "fixture error: {self:?} round trip"
            );
        }
        out
    }
}

fn xz_block_count(xz: &[u8]) -> u64 {
    let dir = TempDir::new("xzl");
    let f = dir.join("a.xz");
    fs::write(&f, xz).unwrap();
    let out = Command::new("xz")
        .args(["--robot", "-l"])
        .arg(&f)
        .output()
        .expect("xz -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("totals\t"))
        .and_then(|l| l.split('\t').nth(2))
        .and_then(|n| n.parse().ok())
        .expect("xz --robot -l totals")
}

/// Runs `program args` with `input` on stdin; returns stdout, panics on failure.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let (status, out, err) = pipe_status(program, args, input);
    assert!(
        status.success(),
        "{program} {args:?} failed: {status}: {}",
        String::from_utf8_lossy(&err)
    );
    out
}

/// Runs `program args` with `input` on stdin; returns its status, stdout and stderr.
pub fn pipe_status(program: &str, args: &[&str], input: &[u8]) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    require_program(program);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for compressor");
    writer.join().unwrap();
    (out.status, out.stdout, out.stderr)
}

/// Flips every bit of the byte at `index`.
pub fn flip(data: &mut [u8], index: usize) {
    data[index] ^= 0xff;
}

/// Offset of the last byte of the last block's check field (CRC64) in a one-stream xz
/// file: the index starts `backward size` bytes before the 12-byte stream footer, and the
/// check ends right where the index starts.
pub fn xz_last_block_check_offset(xz: &[u8]) -> usize {
    let n = xz.len();
    assert_eq!(&xz[n - 2..], b"YZ", "xz stream footer magic");
    let stored = u32::from_le_bytes(xz[n - 8..n - 4].try_into().unwrap()) as usize;
    let index_size = (stored + 1) * 4;
    let index_start = n - 12 - index_size;
    assert_eq!(xz[index_start], 0, "xz index indicator");
    index_start - 1
}

/// An archive produced by `podman save --format <format>` (docker-archive or
/// oci-archive) of `fixture`, loaded into a scratch podman storage first.
/// `fixture.reference` should be fully qualified so that the saved name is the same.
pub fn podman_saved(fixture: &Fixture, format: &str) -> Vec<u8> {
    podman_saved_as(fixture, format, &fixture.reference)
}

/// `podman save` of `fixture` named as `what`: a reference, or the image id, which OCI
/// archives then record without a name.
pub fn podman_saved_as(fixture: &Fixture, format: &str, what: &str) -> Vec<u8> {
    require_root();
    require_program("podman");
    let dir = TempDir::new("save");
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let input = dir.join("in.tar");
    let output = dir.join("out.tar");
    fs::write(&input, &fixture.tar).unwrap();
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .env("TMPDIR", &tmp)
            .env_remove("CONTAINER_HOST")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("libpod"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    podman(&["load", "-q", "-i", input.to_str().unwrap()]);
    podman(&[
        "save",
        "-q",
        "--format",
        format,
        "-o",
        output.to_str().unwrap(),
        what,
    ]);
    fs::read(&output).expect("read saved archive")
}

/// `archive` (a tar, or a compressed one) as `container-loader pack` writes it: by the binary
/// cargo built with the `pack` feature, whatever $CONTAINER_LOADER_BIN is, as the build host
/// packs what the device (maybe a build without `pack`) loads.
#[cfg(feature = "pack")]
pub fn packed(archive: &[u8]) -> Vec<u8> {
    let dir = TempDir::new("pack");
    let (input, output) = (dir.join("in"), dir.join("out.tar.zst"));
    std::fs::write(&input, archive).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_container-loader"))
        .arg("pack")
        .args([&input, &output])
        .status()
        .unwrap();
    assert!(status.success(), "container-loader pack: {status}");
    std::fs::read(&output).unwrap()
}

/// A packed archive taken apart (docs/design.md "Layer-framed archives"), to be put together
/// again as it is or damaged: its data frames, its member index, its seek table.
#[cfg(feature = "pack")]
#[derive(Clone)]
pub struct Framed {
    /// The data frames, as `pack` wrote them.
    pub data: Vec<u8>,
    /// The member index's JSON.
    pub index: Vec<u8>,
    /// The seek table's entries: compressed size, decompressed size, checksum.
    pub table: Vec<[u32; 3]>,
}

#[cfg(feature = "pack")]
impl Framed {
    const INDEX_MAGIC: u32 = 0x184D_2A5B;
    const TABLE_MAGIC: u32 = 0x184D_2A5E;
    const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;

    /// The parts of `archive`, found from its end: the footer, the seek table before it, the
    /// index where the data frames' compressed sizes add up to.
    pub fn parse(archive: &[u8]) -> Framed {
        let u32_at = |at: usize| u32::from_le_bytes(archive[at..at + 4].try_into().unwrap());
        let n = archive.len();
        assert_eq!(
            u32_at(n - 4),
            Framed::SEEKABLE_MAGIC,
            "seekable footer magic"
        );
        assert_eq!(archive[n - 5], 0x80, "seek table with checksums");
        let count = u32_at(n - 9) as usize;
        let table_at = n - 9 - count * 12 - 8;
        assert_eq!(u32_at(table_at), Framed::TABLE_MAGIC, "seek table frame");
        let table: Vec<[u32; 3]> = (0..count)
            .map(|k| {
                let e = table_at + 8 + k * 12;
                [u32_at(e), u32_at(e + 4), u32_at(e + 8)]
            })
            .collect();
        let data_len: usize = table.iter().map(|e| e[0] as usize).sum();
        assert_eq!(u32_at(data_len), Framed::INDEX_MAGIC, "member index frame");
        let index_len = u32_at(data_len + 4) as usize;
        assert_eq!(
            data_len + 8 + index_len,
            table_at,
            "the index ends at the table"
        );
        Framed {
            data: archive[..data_len].to_vec(),
            index: archive[data_len + 8..table_at].to_vec(),
            table,
        }
    }

    /// The archive of these parts: the data frames, the index frame, the seek table frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend(Framed::INDEX_MAGIC.to_le_bytes());
        out.extend((self.index.len() as u32).to_le_bytes());
        out.extend(&self.index);
        out.extend(Framed::TABLE_MAGIC.to_le_bytes());
        out.extend((self.table.len() as u32 * 12 + 9).to_le_bytes());
        for entry in &self.table {
            entry.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        out.extend((self.table.len() as u32).to_le_bytes());
        out.push(0x80);
        out.extend(Framed::SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// The members the index lists (path, header, data, size, frame, frames).
    pub fn members(&self) -> Vec<serde_json::Value> {
        let index: serde_json::Value = serde_json::from_slice(&self.index).expect("index JSON");
        index["members"].as_array().expect("index members").clone()
    }

    /// The last frame of the first member whose path ends with `suffix`: the one holding the end
    /// of its data (a layer's first frame, with `pack`'s head frames, holds only its header
    /// and first block).
    pub fn last_frame_of(&self, suffix: &str) -> usize {
        let member = self
            .members()
            .into_iter()
            .find(|m| m["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no member ending with {suffix} in the index"));
        let at = |key: &str| member[key].as_u64().expect("a number") as usize;
        at("frame") + at("frames") - 1
    }

    /// Where data frame `k` lies in the file.
    pub fn frame(&self, k: usize) -> std::ops::Range<usize> {
        let start: usize = self.table[..k].iter().map(|e| e[0] as usize).sum();
        start..start + self.table[k][0] as usize
    }
}
