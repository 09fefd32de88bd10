//! Tar archives, image configs and digests built in memory, for container-loader's unit tests,
//! integration tests, fuzz targets and bench: one definition of each, so a fix to how a fixture
//! is written reaches every test that builds one.

#![forbid(unsafe_code)]

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// The sha256 of `data` as 64 lowercase hex digits (no `sha256:` prefix).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An image config for `arch` on linux, as docker writes one: `config` is the container
/// config (`{}` for none) and `diff_ids` the layers' sha256 digests in hex, bottom first.
pub fn image_config(arch: &str, config: &str, diff_ids: &[String]) -> String {
    let diff_ids: Vec<String> = diff_ids.iter().map(|d| format!("\"sha256:{d}\"")).collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{config},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
}

/// A ustar archive of regular files, in this order (the same path may come twice), with its
/// end blocks. Each name (at most 100 bytes) is written as given, byte for byte: the tar crate
/// would clean `./a` and refuse `x/../a`, which a hostile archive may hold.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    tar_of_files(files)
}

/// [`tar_of`] of owned or borrowed names and contents, e.g. `(String, Vec<u8>)` pairs a test
/// assembled one by one.
pub fn tar_of_files<P: AsRef<str>, D: AsRef<[u8]>>(files: &[(P, D)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        append_raw(&mut builder, path.as_ref(), data.as_ref());
    }
    builder.into_inner().expect("a tar in memory")
}

/// Appends a regular file (mode 0644) holding `data` under `path` written as given, byte for
/// byte (at most 100 bytes; see [`tar_of`]).
pub fn append_raw(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append(&header, data)
        .expect("append to a tar in memory");
}

/// Appends a regular file holding `data` at `path` with `mode`, owned by root, mtime 0: the
/// path goes through the tar crate, which writes long names as GNU long-name entries.
pub fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, data)
        .expect("append to a tar in memory");
}

/// `data` read at most `step` bytes at a time, as decoders and pipes give it: a reader that
/// keeps state across reads must not depend on where they split.
pub struct Pieces<'a> {
    pub data: &'a [u8],
    pub step: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
