//! Digests as the archive and the engines write them: `sha256:<hex>`, and the blob paths of
//! an OCI layout (`blobs/sha256/<hex>`).

use sha2::{Digest, Sha256};

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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` -> `blobs/sha256/<hex>`.
pub(crate) fn blob(digest: Option<&str>) -> Option<String> {
    let (alg, hex) = digest?.split_once(':')?;
    Some(format!("blobs/{alg}/{hex}"))
}
