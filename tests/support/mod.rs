//! Shared integration-test support for `sizeguard`.
//!
//! Include from a test file with `mod support;`.
//!
//! * [`layout`]       – programmatic, deterministic OCI image-layout builder.
//! * [`ground_truth`] – unpack a layer tar with GNU tar and measure it with `du`.
//! * [`registry`]     – a real `docker-registry` per test (plain / htpasswd / TLS),
//!   plus `skopeo` helpers to push layouts and convert them to archives.
#![allow(dead_code)]

pub mod github_standin;
pub mod ground_truth;
pub mod layout;
pub mod registry;
pub mod run;

use std::path::PathBuf;
use std::process::Command;

/// A `Command` for the `sizeguard` binary built by cargo for this test run.
///
/// The layer cache is off (`SIZEGUARD_NO_CACHE`), so every run streams its
/// layers and no test leans on another's results or on the user's cache;
/// cache tests remove the variable and pass `--cache-dir`.
pub fn sizeguard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sizeguard"));
    cmd.env("SIZEGUARD_NO_CACHE", "1");
    cmd
}

/// Locate `tool` on `PATH`, or panic with an installation hint.
///
/// Tests never skip silently: a missing tool is a test failure.
pub fn require_tool(tool: &str, apt_package: &str) -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(tool);
            if let Ok(meta) = std::fs::metadata(&candidate) {
                use std::os::unix::fs::PermissionsExt;
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                    return candidate;
                }
            }
        }
    }
    panic!(
        "{tool} not found: install it with `apt-get install {apt_package}` \
         (or run scripts/test.sh, which installs every test dependency)"
    );
}

/// Lowercase hex encoding (sha2 0.11 output types do not implement `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// `"sha256:<hex>"` of a byte slice.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}
