//! Content digests (`sha256:<hex>`, `sha512:<hex>`): parsed by one rule,
//! formatted one way, computed and verified in one place.
//!
//! The rule is the OCI one restricted to what sizeguard can verify: sha256
//! or sha512, lowercase hex of exactly the algorithm's length. Anything a
//! [`Digest`] holds is therefore also a safe file name, so
//! [`Digest::blob_path`] can never name a path outside `blobs/`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Error;

/// The hash functions a digest may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated `algorithm:hex` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase). A digest
    /// that cannot be verified is refused as corrupt input.
    pub fn parse(s: &str) -> Result<Digest, Error> {
        let invalid = || Error::corrupt(format!("invalid digest {s:?}"));
        let (name, hex) = s.split_once(':').ok_or_else(invalid)?;
        let algorithm = Algorithm::from_name(name).ok_or_else(|| {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Error::corrupt(format!(
                    "unsupported digest algorithm in {s} (sha256 and sha512 are supported)"
                ))
            } else {
                invalid()
            }
        })?;
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(is_lower_hex) {
            return Err(invalid());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest of some bytes.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }

    /// The sha256 digest of some bytes, the algorithm content is addressed
    /// by unless it says otherwise.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A hasher of this digest's algorithm, to verify a stream against it.
    pub fn hasher(&self) -> Hasher {
        self.algorithm.hasher()
    }

    /// Checks that `bytes` are the content this digest addresses.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), Error> {
        let actual = Digest::of(self.algorithm, bytes);
        if actual != *self {
            return Err(Error::corrupt(format!(
                "digest mismatch: expected {self}, content is {actual}"
            )));
        }
        Ok(())
    }

    /// `blobs/<algorithm>/<hex>`: where an OCI image layout stores the blob.
    pub fn blob_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm, self.hex)
    }

    /// The digest a `blobs/<algorithm>/<hex>` path names, if it names one.
    pub fn from_blob_path(path: &str) -> Option<Digest> {
        let (name, hex) = path.strip_prefix("blobs/")?.split_once('/')?;
        Digest::parse(&format!("{name}:{hex}")).ok()
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest, Error> {
        Digest::parse(s)
    }
}

/// An incremental hash of either algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex(&h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex(&h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

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
    Hasher::Sha256(hasher).finish().to_string()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    Digest::sha256(bytes).to_string()
}

/// Digests travel as their `algorithm:hex` text (queue rows, verdict JSON);
/// reading one back validates it like any other digest.
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&text).map_err(|e| serde::de::Error::custom(e.one_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn accepted_forms() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::sha256(b""), d);
        let long = format!("sha512:{}", "0f".repeat(64));
        let d512: Digest = long.parse().unwrap();
        assert_eq!(d512.algorithm(), Algorithm::Sha512);
        assert_eq!(d512.to_string(), long);
        assert_eq!(sha256_digest(b""), EMPTY_SHA256);
    }

    #[test]
    fn refused_forms() {
        let hex64 = "ab".repeat(32);
        for bad in [
            String::new(),
            "sha256".into(),
            format!("sha256:{}", &hex64[..63]),
            format!("sha256:{hex64}0"),
            format!("sha256:{}", hex64.to_uppercase()),
            format!("sha256:{}g", &hex64[..63]),
            format!("sha512:{hex64}"),
            format!("sha384:{}", "ab".repeat(48)),
            format!("SHA256:{hex64}"),
            format!(":{hex64}"),
            format!("sha256:{hex64}:x"),
            format!(" sha256:{hex64}"),
        ] {
            let e = Digest::parse(&bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Corrupt, "{bad:?}");
        }
        let e = Digest::parse(&format!("sha384:{}", "ab".repeat(48))).unwrap_err();
        assert!(
            e.to_string().contains("unsupported digest algorithm"),
            "{e}"
        );
    }

    #[test]
    fn paths_stay_inside_blobs() {
        for hostile in [
            "sha256:../../../../etc/passwd".to_string(),
            format!("sha256:../{}", "a".repeat(61)),
            format!("sha256:{}/..", "a".repeat(61)),
            "../sha256:x".into(),
            format!("sha256/../../x:{}", "a".repeat(64)),
        ] {
            assert!(Digest::parse(&hostile).is_err(), "{hostile}");
        }
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.blob_path(), format!("blobs/sha256/{}", d.hex()));
        assert_eq!(Digest::from_blob_path(&d.blob_path()), Some(d));
        assert_eq!(Digest::from_blob_path("blobs/sha256/../x"), None);
        assert_eq!(Digest::from_blob_path("abc/layer.tar"), None);
    }

    #[test]
    fn both_algorithms_verify() {
        let data = b"layer bytes";
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let d = Digest::of(alg, data);
            assert_eq!(d.hex().len(), alg.hex_len());
            d.verify(data).unwrap();
            let e = d.verify(b"other bytes").unwrap_err();
            assert_eq!(e.kind(), Kind::Corrupt);
            assert!(e.to_string().contains("digest mismatch"), "{e}");
            let mut h = d.hasher();
            h.update(b"layer ");
            h.update(b"bytes");
            assert_eq!(h.finish(), d);
        }
    }
}
