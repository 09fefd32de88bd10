//! One check per fuzz target: drive a parser with arbitrary bytes and assert what must hold
//! for every input. A panic, here or in the library, is a finding.
//!
//! This file is shared: `fuzz/src/lib.rs` exposes it to the fuzz targets, and the root
//! package's `tests/fuzz_regressions.rs` includes it with `#[path]` to replay the seed corpus
//! and the saved crash inputs. It may use only `std`, `container_loader`, `serde_json` (a
//! dependency of the library, so the root tests have it too) and `container_loader_testkit`
//! (a dev-dependency of the root package and a dependency of this one).

use std::io::{self, Read};
use std::path::Path;

use container_loader::decode::{self, HoldBack};
use container_loader::engine::answer::{self, Failure};
use container_loader::engine::store::Reads;
use container_loader::image::platform::Platform;
use container_loader::image::walk::Watcher;
use container_loader::input::format::{self, Format};
use container_loader::input::list;
use container_loader::input::reference::Reference;
use container_loader::rewrite::{Loadable, Unloadable};
use container_loader_testkit::{tar_of_files, Pieces};
use serde_json::Value;

/// The `--memory-limit` the decoders run with: small, so that a header asking for a large
/// zstd window or xz dictionary is refused rather than allocated.
pub const MEMORY_LIMIT: u64 = 8 << 20;
/// Decoded bytes read per input at most, so a decompression bomb costs milliseconds, not the
/// run's budget. Larger than `MEMORY_LIMIT`, so a zstd window does wrap around within it.
pub const OUTPUT_CAP: usize = 16 << 20;
/// `decode::HoldBack` keeps this many bytes back until the stream has ended cleanly (a copy of
/// the private `decode::tail::HOLD`).
const HOLD: usize = 64 << 10;

/// `list::parse`: every line is an entry, a refused line or skipped, in order, with its own
/// line number.
pub fn list_parser(data: &[u8]) {
    let (path, images) = (Path::new("/fuzz/image.list"), Path::new("/fuzz/images"));
    let parsed = list::parse(path, images, data);
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    assert!(
        parsed.entries.len() + parsed.invalid.len() <= lines.len(),
        "{} entries and {} refused lines out of {} lines",
        parsed.entries.len(),
        parsed.invalid.len(),
        lines.len()
    );
    let mut last = 0;
    for e in &parsed.entries {
        assert!(
            e.line > last && e.line <= lines.len(),
            "entry line {}",
            e.line
        );
        last = e.line;
        assert_eq!((e.list.as_path(), e.images_dir.as_path()), (path, images));
        let raw = lines[e.line - 1];
        let archive = &e.archive;
        assert!(
            !archive.is_empty() && !archive.starts_with('#'),
            "{archive:?}"
        );
        assert!(!archive.contains([' ', '\t', '\n', '\0']), "{archive:?}");
        assert!(
            contains(raw, archive.as_bytes()),
            "{archive:?} not on its line"
        );
        let text = e.reference.as_str();
        assert!(contains(raw, text.as_bytes()), "{text:?} not on its line");
        accepted_reference(text, &e.reference);
        assert_eq!(
            e.place().to_string(),
            format!("{}:{}", path.display(), e.line)
        );
    }
    let mut last = 0;
    for bad in &parsed.invalid {
        assert!(
            bad.line > last && bad.line <= lines.len(),
            "bad line {}",
            bad.line
        );
        last = bad.line;
        assert!(parsed.entries.iter().all(|e| e.line != bad.line));
        let prefix = format!("{}:{}: ", path.display(), bad.line);
        assert!(bad.to_string().starts_with(&prefix));
    }
}

/// `Reference::parse` on UTF-8 input.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(text) {
        accepted_reference(text, &r);
    }
}

/// What every accepted reference satisfies: it ends up in request paths of the engine API.
fn accepted_reference(text: &str, r: &Reference) {
    let s = r.as_str();
    assert_eq!(s, text, "a reference keeps its text");
    assert_eq!(r.to_string(), text);
    // The grammar's whole alphabet: no '?', '#', '%', blank, control or non-ASCII character.
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@[]+".contains(&b)),
        "{s:?}: character outside the reference grammar"
    );
    assert!(
        !s.starts_with('/') && !s.ends_with('/') && !s.contains("//"),
        "{s:?}"
    );
    // No path segment a URL resolver would collapse.
    assert!(s.split('/').all(|seg| seg != "." && seg != ".."), "{s:?}");
    assert!(s.matches('@').count() <= 1, "{s:?}");
    // The name (registry and path) never holds "..": docker's grammar has no empty label or
    // component, nor dots in an IPv6 registry. (A tag may: docker's is [\w][\w.-]{0,127}.)
    let before_digest = s.split('@').next().unwrap_or_default();
    let last_slash = before_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match before_digest[last_slash..].rfind(':') {
        Some(i) => (
            &before_digest[..last_slash + i],
            &before_digest[last_slash + i + 1..],
        ),
        None => (before_digest, ""),
    };
    assert!(!name.contains(".."), "{s:?}: \"..\" in the name {name:?}");
    assert!(!name.is_empty() && name.len() <= 255, "{s:?}: name length");
    assert!(tag.len() <= 128, "{s:?}: tag length");
    // go-digest's rules: a registered algorithm, and its exact number of lower-case hex digits.
    if let Some((_, digest)) = s.split_once('@') {
        let (alg, hex) = digest.split_once(':').expect("a digest has ':'");
        let digits = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => panic!("{s:?}: digest algorithm {alg:?}"),
        };
        assert_eq!(hex.len(), digits, "{s:?}: digest length");
        assert!(
            hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{s:?}"
        );
    }
}

/// `decode::Frames::read` on arbitrary bytes as an archive file, and where it trusts the seek
/// table, the tar read through it: whatever it reads, a plain zstd decode of the file reads
/// the same bytes (as far as both go within the cap), so a table can only make the loader
/// read what the archive holds, never something else.
pub fn framed(data: &[u8]) {
    let file = scratch_file(data);
    let Ok(frames) = decode::Frames::read(&file, data.len() as u64) else {
        return;
    };
    let len = frames.tar_len();
    let mut tar = decode::framed(file, frames, Vec::new(), MEMORY_LIMIT).take(OUTPUT_CAP as u64);
    let mut framed = Vec::new();
    let read = tar.read_to_end(&mut framed);
    let plain = decode_all(data, false).expect("a file with frames sniffs as zstd");
    let common = framed.len().min(plain.out.len());
    assert!(
        framed[..common] == plain.out[..common],
        "the seek table read other bytes"
    );
    if read.is_ok() && framed.len() < OUTPUT_CAP {
        assert_eq!(framed.len() as u64, len, "read to the end the table gives");
        assert!(
            plain.out.len() >= framed.len(),
            "the table read more than zstd decodes"
        );
    }
}

/// `data` in a file of its own, already unlinked.
fn scratch_file(data: &[u8]) -> std::fs::File {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("cl-fuzz-{}-{n}", std::process::id()));
    std::fs::write(&path, data).expect("writing a scratch file");
    let file = std::fs::File::open(&path).expect("opening the scratch file");
    let _ = std::fs::remove_file(&path);
    file
}

/// `decode::peek` and `decode::decoder` on arbitrary bytes, plain and under `HoldBack`.
pub fn decoders(data: &[u8]) {
    let Some(plain) = decode_all(data, false) else {
        return;
    };
    if plain.format == Format::Tar {
        // Plain tar passes through untouched.
        assert!(
            plain.result.is_ok(),
            "tar passthrough failed: {:?}",
            plain.result
        );
        assert!(plain.out == data, "tar passthrough changed the bytes");
    }
    if plain.capped {
        return;
    }
    let held = decode_all(data, true).expect("the same input sniffs the same");
    match &plain.result {
        Ok(()) => {
            assert!(held.result.is_ok(), "HoldBack failed: {:?}", held.result);
            assert!(held.out == plain.out, "HoldBack changed the bytes");
        }
        Err(_) => {
            assert!(held.result.is_err(), "HoldBack hid a decoder error");
            // How much comes out before the error depends on the read sizes (a decoder drops
            // what it decoded in the read that fails), but the bytes agree as far as both go.
            let common = plain.out.len().min(held.out.len());
            assert!(
                plain.out[..common] == held.out[..common],
                "HoldBack changed the bytes"
            );
            // The last HOLD bytes the decoder gave before its error never come out.
            assert!(
                held.out.len() <= held.decoded.saturating_sub(HOLD as u64) as usize,
                "HoldBack released {} of {} bytes before the error",
                held.out.len(),
                held.decoded
            );
        }
    }
}

struct Decoded {
    format: Format,
    out: Vec<u8>,
    result: io::Result<()>,
    /// Stopped at `OUTPUT_CAP` before the stream ended.
    capped: bool,
    /// What the decoder gave, counted below `HoldBack` if there is one.
    decoded: u64,
}

/// Sniffs `data` and reads its decoded stream to the end or to `OUTPUT_CAP`; `None` when the
/// format is none of ours.
fn decode_all(data: &[u8], hold_back: bool) -> Option<Decoded> {
    let mut file = io::Cursor::new(data.to_vec());
    let (head, format) = format::peek(&mut file).expect("reading memory cannot fail");
    assert!(head.len() <= 512 && data.starts_with(&head));
    assert_eq!(head.len(), data.len().min(512), "peek reads all it can");
    let format = format?;
    assert_eq!(format::sniff(&head), Some(format));
    let decoder = decode::decoder(format, head, file, MEMORY_LIMIT);
    let progress = decoder.progress.clone();
    // Odd read sizes too, chosen by the length so the input bytes keep their meaning.
    let mut chunk = vec![0; [64 << 10, 4096, 511, 8191][data.len() % 4]];
    let mut reader: Box<dyn Read> = if hold_back {
        Box::new(HoldBack::new(decoder))
    } else {
        Box::new(decoder)
    };
    let mut out = Vec::new();
    let result = loop {
        if out.len() >= OUTPUT_CAP {
            break Ok(());
        }
        match reader.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                assert!(n <= chunk.len());
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let capped = out.len() >= OUTPUT_CAP;
    if let Err(e) = &result {
        // A decoder error names its format, and reading memory never fails.
        let d = decode::DecodeError::find(e).unwrap_or_else(|| panic!("unlabelled error: {e}"));
        assert_eq!(d.format, format);
        assert!(!e.to_string().is_empty());
    }
    assert!(progress.compressed() <= data.len() as u64);
    if result.is_ok() && !capped {
        // A clean end means all of the file was read: nothing after the last frame, member or
        // stream is silently ignored.
        assert_eq!(
            progress.compressed(),
            data.len() as u64,
            "trailing bytes ignored"
        );
    }
    if !hold_back {
        assert_eq!(
            progress.decoded(),
            out.len() as u64,
            "decoded bytes miscounted"
        );
    }
    Some(Decoded {
        format,
        out,
        result,
        capped,
        decoded: progress.decoded(),
    })
}

/// The engine's answer to a load: the first byte picks the HTTP status (200 or 500), the rest
/// is the body, read by `load_result`, `late_message` and `is_engine_error`.
pub fn answer_stream(data: &[u8]) {
    let (status, body) = match data.split_first() {
        Some((&b, rest)) => (if b & 1 == 0 { 200 } else { 500 }, rest),
        None => (200, data),
    };
    let (strings, clean) = strings_in_stream(body);
    match answer::load_result(status, body) {
        Ok(names) => {
            assert_eq!(status, 200, "a 500 answer cannot be a success");
            assert!(
                clean,
                "an error object or unreadable answer was taken as success"
            );
            for name in &names {
                assert!(
                    strings.iter().any(|s| s.contains(name.as_str())),
                    "{name:?} is not a string of the answer"
                );
                if !body.contains(&b'\\') {
                    assert!(
                        contains(body, name.as_bytes()),
                        "{name:?} not in the answer"
                    );
                }
            }
        }
        // The loader prints "engine refused the archive: MESSAGE": it must say something.
        Err(Failure::Engine(message)) => assert!(!message.is_empty(), "empty failure message"),
        Err(Failure::Read(e)) => panic!("reading memory failed: {e}"),
    }
    let raw_http = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), body].concat();
    for raw in [body, raw_http.as_slice()] {
        if let Some(m) = answer::late_message(raw) {
            quoted(&m);
        }
    }
    let _ = answer::is_engine_error(body);
}

/// An engine message as the loader quotes it: one line, at most 300 characters and an ellipsis.
fn quoted(m: &str) {
    assert!(!m.is_empty(), "empty engine message");
    assert!(
        m.chars().count() <= 301,
        "quote of {} chars",
        m.chars().count()
    );
    assert!(!m.starts_with(' ') && !m.ends_with(' '), "{m:?}");
    assert!(
        !m.chars().any(|c| c.is_whitespace() && c != ' '),
        "{m:?} spans lines"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every string (keys too) in the stream's JSON values, and whether the stream is clean: it
/// all parses and no top-level object has an `error` or `errorDetail` member.
fn strings_in_stream(body: &[u8]) -> (Vec<String>, bool) {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push(k.clone());
                collect(v, out);
            }),
            _ => {}
        }
    }
    let mut strings = Vec::new();
    let mut clean = true;
    for item in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        let Ok(v) = item else {
            clean = false;
            break;
        };
        clean &= v.get("error").is_none() && v.get("errorDetail").is_none();
        collect(&v, &mut strings);
    }
    (strings, clean)
}

/// `walk::Watcher`, the tar walk a load runs as the archive streams by: the first byte
/// picks the size of the pieces the rest is fed in. Whatever the pieces, the walk must come to
/// the same result as one fed the whole input at once, and every image id it reports is a
/// sha256 digest.
pub fn manifest_walk(data: &[u8]) {
    let (step, tar) = match data.split_first() {
        Some((&b, rest)) => (usize::from(b) * 7 + 1, rest),
        None => (1, data),
    };
    let walk = |piece: usize| {
        let mut w = Watcher::default();
        for chunk in tar.chunks(piece.max(1)) {
            w.feed(chunk);
        }
        w.finish().map(|c| c.images())
    };
    let whole = walk(tar.len());
    let pieces = walk(step);
    assert_eq!(
        whole.as_ref().ok(),
        pieces.as_ref().ok(),
        "fed in {step}-byte pieces, the walk found something else"
    );
    assert_eq!(whole.is_err(), pieces.is_err());
    if let Ok(Some(images)) = whole {
        for id in images.images.iter().filter_map(|i| i.id.as_deref()) {
            let hex = id
                .strip_prefix("sha256:")
                .expect("an id is a sha256 digest");
            assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}

/// Description files of arbitrary JSON in a well-formed tar, as a hostile archive brings them:
/// the first byte picks the layout (bit 0: the first part is index.json, not manifest.json;
/// bit 1: the third part is `oci-layout`; bit 2: the first file comes again at the end; bits
/// 3-5: the piece size; bits 6-7: the image store the adapter writes for), and the rest,
/// split at zero bytes, gives the files: that first file, a config `c.json`, then blobs named
/// `blobs/sha256/<i as 64 hex digits>`, which the JSON may name. The walk and its description
/// (`walk::Watcher`, `Walked::describe`) and the load's adapter (`rewrite::Loadable`) must
/// neither panic nor take more memory than libFuzzer's -malloc_limit_mb; what the walk refuses,
/// the adapter refuses before the end; what it describes stays within the loader's limits.
pub fn description_files(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut files: Vec<(String, &[u8])> = Vec::new();
    for (i, part) in rest.split(|&b| b == 0).take(8).enumerate() {
        let name = match i {
            0 if flags & 1 == 0 => "manifest.json".to_owned(),
            0 => "index.json".to_owned(),
            1 => "c.json".to_owned(),
            2 if flags & 2 != 0 => "oci-layout".to_owned(),
            _ => format!("blobs/sha256/{i:064x}"),
        };
        files.push((name, part));
    }
    let twice = flags & 4 != 0;
    if twice {
        files.push(files[0].clone());
    }
    let tar = tar_of_files(&files);
    let step = usize::from((flags >> 3) & 7) * 97 + 1;
    let mut walk = Watcher::default();
    for piece in tar.chunks(step) {
        walk.feed(piece);
    }
    let described = walk.finish().and_then(|c| c.describe().map_err(Into::into));
    if twice {
        // Refused as held twice, or for a limit the walk reached before the second one.
        described.as_ref().expect_err("a description file twice");
    }
    if let Ok(Some(images)) = &described {
        assert!(
            images.images.len() <= 1000,
            "{} images",
            images.images.len()
        );
        for image in &images.images {
            assert!(image.references.len() <= 64);
            let layers: usize = images.images.iter().map(|i| i.layer_sizes.len()).sum();
            assert!(layers <= 16_384);
            for id in image.id.iter().chain(&image.target) {
                let hex = id.strip_prefix("sha256:").expect("a sha256 digest");
                assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
    let reads =
        [Reads::DockerArchive, Reads::OciLayout, Reads::Either][usize::from(flags >> 6) % 3];
    let pieces = Pieces { data: &tar, step };
    let mut adapter = Loadable::new(pieces, Platform::device(), reads);
    let adapted = io::copy(&mut adapter, &mut io::sink());
    if described.is_err() {
        let e = adapted.expect_err("the walk refused the archive, the adapter passed it");
        assert!(Unloadable::find(&e).is_some(), "{e}");
    }
}

/// `marker::name`: the input is one or two references (split at the first NUL; bytes that are
/// not UTF-8 replaced). Every name is a plain file name that fits in a directory entry and
/// never starts with `.`; an escaped name reads back as its reference, a hashed one (over 255
/// bytes escaped) holds a prefix of the escaped reference, `~` and 64 hex digits; two different
/// references never get the same name.
pub fn marker_name(data: &[u8]) {
    use container_loader::state::marker;
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    for r in [a, b].into_iter().filter(|r| !r.is_empty()) {
        let name = marker::name(r);
        assert!(
            !name.is_empty() && name.len() <= marker::NAME_MAX,
            "{r:?}: {name:?}"
        );
        assert!(
            !name.contains(['/', '\0']) && !name.starts_with('.'),
            "{name:?}"
        );
        let escaped = marker::escape(r);
        match name.split_once('~') {
            None => {
                assert_eq!(escaped, name);
                assert_eq!(marker::unescape(&name).as_deref(), Some(r.as_bytes()));
            }
            Some((prefix, hash)) => {
                assert!(
                    escaped.len() > marker::NAME_MAX,
                    "{r:?} hashed, but it fits"
                );
                assert!(prefix.len() <= marker::HASHED_PREFIX_MAX);
                assert!(escaped.starts_with(prefix), "{prefix:?}");
                assert!(
                    marker::unescape(prefix).is_some(),
                    "{prefix:?}: an escape cut"
                );
                assert!(
                    hash.len() == 64
                        && hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                );
            }
        }
    }
    if !a.is_empty() && !b.is_empty() && a != b {
        assert_ne!(marker::name(a), marker::name(b), "{a:?} and {b:?}");
    }
}
