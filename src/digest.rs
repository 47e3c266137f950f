//! `sha256:<hex>` digests, formatted one way everywhere.

use sha2::{Digest as _, Sha256};

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `sha256:<hex>` of a finished hash.
pub fn sha256_string(hasher: Sha256) -> String {
    format!("sha256:{}", hex(&hasher.finalize()))
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    sha256_string(Sha256::new_with_prefix(bytes))
}
