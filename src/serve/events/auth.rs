//! Authentication of webhook deliveries: the shared secret that
//! Distribution (`notifications.endpoints[].headers`) and Harbor ("Auth
//! Header") send verbatim as `Authorization: Bearer SECRET`, and GitHub's
//! HMAC-SHA256 signature of the raw body.
//!
//! Both comparisons take the same time whatever the guess: a timing
//! difference would let anyone who can reach the receiver learn the
//! secret byte by byte.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// Longest secret file read; secrets are tokens, not documents.
const MAX_SECRET_FILE: u64 = 4096;

/// Whether `Authorization: Bearer SECRET` carries exactly `secret`. The
/// scheme name is case-insensitive (RFC 9110); the token is not. An empty
/// secret matches nothing.
pub fn bearer_matches(secret: &[u8], headers: &http::HeaderMap) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some((scheme, token)) = value.split_at_checked(7) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    // Comparing digests rather than the bytes keeps the secret's length
    // out of the timing too.
    let expected = Sha256::digest(secret);
    let given = Sha256::digest(token);
    bool::from(expected.as_slice().ct_eq(given.as_slice()))
}

/// Whether `X-Hub-Signature-256: sha256=HEX` is the HMAC-SHA256 of `body`
/// under `secret`. An empty secret matches nothing (GitHub sends no
/// signature for a hook without one).
pub fn github_signature_matches(secret: &[u8], body: &[u8], headers: &http::HeaderMap) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(signature) = github_signature(headers) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The signature GitHub's `X-Hub-Signature-256: sha256=HEX` carries, if the
/// header is there and well formed: what can be checked of a GitHub
/// delivery before its body is read.
pub fn github_signature(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get("x-hub-signature-256")?;
    decode_hex(value.as_bytes().strip_prefix(b"sha256=")?)
}

/// Hex of exactly a SHA-256's length, either case.
fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Reads a secret file as `echo SECRET > FILE` or a Kubernetes Secret
/// mount writes it: one trailing newline (`\n` or `\r\n`) is not part of
/// the secret. An empty secret, or one with a line break or other control
/// character left inside, is a usage error: it could never arrive intact
/// in a header, so every delivery would be refused.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let shown = path.display();
    // A file the operator named that cannot be read is a mistake in the
    // command, not a measurement problem: usage, whatever the OS says.
    let unreadable =
        |e: std::io::Error| Error::usage(format!("cannot read secret file {shown}")).with_source(e);
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(Error::usage(format!(
            "secret file {shown} is longer than {MAX_SECRET_FILE} bytes"
        )));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(Error::usage(format!("secret file {shown} is empty")));
    }
    if bytes.iter().any(|b| b.is_ascii_control()) {
        return Err(Error::usage(format!(
            "secret file {shown} holds a line break or control character inside the secret"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn with(name: &str, value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    /// GitHub's documented test vector ("Validating webhook deliveries",
    /// docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries,
    /// "Testing the webhook payload validation").
    #[test]
    fn github_documented_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_matches(
            secret,
            body,
            &with("X-Hub-Signature-256", sig)
        ));
        let upper = format!("sha256={}", sig[7..].to_uppercase());
        assert!(github_signature_matches(
            secret,
            body,
            &with("x-hub-signature-256", &upper)
        ));
        assert!(!github_signature_matches(
            secret,
            b"Hello, World?",
            &with("X-Hub-Signature-256", sig)
        ));
        assert!(!github_signature_matches(
            b"It's a Secret to Everybody!",
            body,
            &with("X-Hub-Signature-256", sig)
        ));
        assert!(!github_signature_matches(
            b"",
            body,
            &with("X-Hub-Signature-256", sig)
        ));
        let flipped = sig.replace("757107", "757106");
        for bad in [
            flipped.as_str(),
            &sig[7..],
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            &sig[..70],
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "",
        ] {
            assert!(
                !github_signature_matches(secret, body, &with("X-Hub-Signature-256", bad)),
                "{bad:?}"
            );
        }
        assert!(!github_signature_matches(
            secret,
            body,
            &http::HeaderMap::new()
        ));
    }

    #[test]
    fn bearer() {
        let secret = b"s3cret-token";
        assert!(bearer_matches(
            secret,
            &with("Authorization", "Bearer s3cret-token")
        ));
        assert!(bearer_matches(
            secret,
            &with("authorization", "bearer s3cret-token")
        ));
        for bad in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token ",
            "Bearer  s3cret-token",
            "Basic s3cret-token",
            "s3cret-token",
            "Bearer",
            "",
        ] {
            assert!(
                !bearer_matches(secret, &with("Authorization", bad)),
                "{bad:?}"
            );
        }
        assert!(!bearer_matches(secret, &http::HeaderMap::new()));
        assert!(!bearer_matches(b"", &with("Authorization", "Bearer ")));
    }

    #[test]
    fn secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        assert_eq!(read_secret_file(&write("a", b"tok\n")).unwrap(), b"tok");
        assert_eq!(read_secret_file(&write("b", b"tok\r\n")).unwrap(), b"tok");
        assert_eq!(read_secret_file(&write("c", b"tok")).unwrap(), b"tok");
        for (name, content) in [
            ("d", &b""[..]),
            ("e", b"\n"),
            ("f", b"tok\n\n"),
            ("g", b"to\nk"),
        ] {
            let e = read_secret_file(&write(name, content)).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{content:?}");
        }
        let big = read_secret_file(&write("h", &vec![b'a'; 5000])).unwrap_err();
        assert_eq!(big.kind(), Kind::Usage);
        let missing = read_secret_file(&dir.path().join("none")).unwrap_err();
        assert_eq!(missing.kind(), Kind::Usage);
        assert!(missing.one_line().contains("secret file"), "{missing:?}");
    }
}
