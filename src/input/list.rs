//! The image.list parser: one `ARCHIVE REF` per line, blank lines and `#` comments skipped.
//!
//! A list is data on a device's disk, written at build time and read at boot as root, so every
//! line is checked and a bad one is reported with its place (`FILE:LINE: what is wrong`) and
//! skipped; the lines around it still count. Only a list that cannot be read at all is an error
//! for the whole list.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use crate::input::bounded;
use crate::input::reference::{RefError, Reference};

/// The list shipped by a package that installs the loader itself.
pub const DEFAULT_LIST: &str = "/usr/share/container-loader/image.list";
/// Archives live in this directory beside their list unless `--images-dir` says otherwise.
pub const IMAGES_SUBDIR: &str = "images";
/// Generous for thousands of entries, small enough that a stray multi-gigabyte file named
/// image.list is refused instead of read into memory at boot.
const MAX_LIST_BYTES: u64 = 16 << 20;
/// Longer than any real `ARCHIVE REF` line (a reference is at most ~400 bytes).
const MAX_LINE_BYTES: usize = 4096;

/// One valid line of a list: which archive to load, and the image it must provide.
#[derive(Debug, Clone)]
pub struct Entry {
    pub list: PathBuf,
    pub line: usize,
    pub archive: String,
    pub reference: Reference,
    pub images_dir: PathBuf,
}

impl Entry {
    /// `LIST:LINE`, the place an operator opens to fix the entry.
    pub fn place(&self) -> Place<'_> {
        Place(self)
    }
}

/// An entry's `LIST:LINE`, written out only where a line shows it (most entries of a boot
/// show none under `-q`).
#[derive(Clone, Copy)]
pub struct Place<'a>(&'a Entry);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.list.display(), self.0.line)
    }
}

/// A line that is not a valid entry.
#[derive(Debug)]
pub struct LineError {
    pub list: PathBuf,
    pub line: usize,
    pub problem: LineProblem,
}

#[derive(Debug)]
pub enum LineProblem {
    NotUtf8,
    Nul,
    TooLong(usize),
    Fields(usize),
    Reference(String, RefError),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.list.display(), self.line)?;
        let expected = "expected \"ARCHIVE REF\"";
        match &self.problem {
            LineProblem::NotUtf8 => write!(f, "invalid line: not UTF-8 text; {expected}"),
            LineProblem::Nul => write!(f, "invalid line: contains a NUL byte; {expected}"),
            LineProblem::TooLong(n) => write!(
                f,
                "invalid line: {n} bytes, longer than {MAX_LINE_BYTES}; {expected}"
            ),
            LineProblem::Fields(n) => write!(f, "invalid line: {n} field(s); {expected}"),
            LineProblem::Reference(text, e) => {
                write!(
                    f,
                    "invalid image reference \"{}\": {e}",
                    text.escape_debug()
                )
            }
        }
    }
}

/// A list that cannot be read at all.
#[derive(Debug)]
pub struct ListError {
    pub list: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: cannot read image list: {}",
            self.list.display(),
            self.source
        )
    }
}

impl std::error::Error for ListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What one list holds: its valid entries and the lines that were refused.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub invalid: Vec<LineError>,
}

/// Reads and parses the list at `path`; archives are looked for in `images_dir`, or in
/// `images/` beside the list.
pub fn read(path: &Path, images_dir: Option<&Path>) -> Result<Parsed, ListError> {
    let fail = |source| ListError {
        list: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO would block the boot until a writer appears; the file
    // opened is the one checked, and read.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(fail)?;
    if !file.metadata().map_err(fail)?.is_file() {
        return Err(fail(io::Error::other("not a regular file")));
    }
    let bytes = bounded::read(&file, MAX_LIST_BYTES).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => fail(io::Error::other(format!(
            "larger than {} MiB",
            MAX_LIST_BYTES >> 20
        ))),
        _ => fail(e),
    })?;
    let images_dir = match images_dir {
        Some(dir) => dir.to_owned(),
        None => path.parent().unwrap_or(Path::new(".")).join(IMAGES_SUBDIR),
    };
    Ok(parse(path, &images_dir, &bytes))
}

/// Parses list text; `list` and `images_dir` only label the results.
pub fn parse(list: &Path, images_dir: &Path, bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((archive, reference))) => parsed.entries.push(Entry {
                list: list.to_owned(),
                line,
                archive,
                reference,
                images_dir: images_dir.to_owned(),
            }),
            Err(problem) => parsed.invalid.push(LineError {
                list: list.to_owned(),
                line,
                problem,
            }),
        }
    }
    parsed
}

fn parse_line(raw: &[u8]) -> Result<Option<(String, Reference)>, LineProblem> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(LineProblem::TooLong(raw.len()));
    }
    if raw.contains(&0) {
        return Err(LineProblem::Nul);
    }
    let text = std::str::from_utf8(raw).map_err(|_| LineProblem::NotUtf8)?;
    let text = text.trim_matches([' ', '\t']);
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = text.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
    let [archive, reference] = fields[..] else {
        return Err(LineProblem::Fields(fields.len()));
    };
    let reference =
        Reference::parse(reference).map_err(|e| LineProblem::Reference(reference.to_owned(), e))?;
    Ok(Some((archive.to_owned(), reference)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &[u8]) -> Parsed {
        parse(Path::new("/l/image.list"), Path::new("/l/images"), text)
    }

    #[test]
    fn reads_entries_with_their_line_numbers() {
        let p = parse_str(b"# header\n\na.tar.zst debian:bookworm\n\tb.tar.gz  quay.io/x/y:1\t\n");
        assert!(p.invalid.is_empty());
        let got: Vec<_> = p
            .entries
            .iter()
            .map(|e| (e.line, e.archive.as_str(), e.reference.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "a.tar.zst", "debian:bookworm"),
                (4, "b.tar.gz", "quay.io/x/y:1")
            ]
        );
        assert_eq!(p.entries[0].place().to_string(), "/l/image.list:3");
    }

    #[test]
    fn accepts_crlf_line_ends_and_a_missing_final_newline() {
        let p = parse_str(b"a.zst a:1\r\nb.zst b:2");
        assert!(p.invalid.is_empty());
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[0].reference.as_str(), "a:1");
    }

    #[test]
    fn keeps_a_colon_in_the_archive_name() {
        let p = parse_str(b"quay.io.libpod.alpine:3.10.2.zst quay.io/libpod/alpine:3.10.2\n");
        assert_eq!(p.entries[0].archive, "quay.io.libpod.alpine:3.10.2.zst");
    }

    #[test]
    fn reports_each_bad_line_and_keeps_the_good_ones() {
        let mut text =
            b"one-field\na b c\nok.zst ok:1\nx.zst Bad/Ref\nn\0ul x:1\n\xff\xfe y:1\n".to_vec();
        text.extend(vec![b'a'; 10 << 20]);
        text.extend(b" r:1\nlast.zst last:1\n");
        let p = parse_str(&text);
        let lines: Vec<_> = p.entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 8]);
        let msgs: Vec<_> = p.invalid.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 6);
        assert!(msgs[0].starts_with("/l/image.list:1: invalid line: 1 field(s)"));
        assert!(msgs[1].starts_with("/l/image.list:2: invalid line: 3 field(s)"));
        assert!(msgs[2].starts_with("/l/image.list:4: invalid image reference \"Bad/Ref\""));
        assert!(msgs[3].contains(":5: invalid line: contains a NUL byte"));
        assert!(msgs[4].contains(":6: invalid line: not UTF-8"));
        assert!(msgs[5].contains(":7: invalid line: 10485764 bytes"));
    }

    #[test]
    fn refuses_a_directory_as_list() {
        let err = read(Path::new("/"), None).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn refuses_a_fifo_as_list_without_waiting_for_a_writer() {
        let dir = std::env::temp_dir().join(format!("cl-list-fifo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("image.list");
        let _ = fs::remove_file(&fifo);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // No writer ever opens it: a blocking open would hang here.
        let err = read(&fifo, None).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_the_images_dir_to_images_beside_the_list() {
        let dir = std::env::temp_dir().join(format!("cl-list-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let list = dir.join("image.list");
        fs::write(&list, "a.zst a:1\n").unwrap();
        let p = read(&list, None).unwrap();
        assert_eq!(p.entries[0].images_dir, dir.join("images"));
        let p = read(&list, Some(Path::new("/srv/img"))).unwrap();
        assert_eq!(p.entries[0].images_dir, Path::new("/srv/img"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
