//! Shared integration-test support for `sizeguard`.
//!
//! Declared by `main.rs`, the integration binary, whose areas name it with
//! `use crate::support;`, and by path by `tests/serve_load.rs`, the one test
//! binary of its own.
//!
//! * [`run`]            – the one way to run sizeguard (or the action's script): scrubbed environment, temporary `HOME`, the checks every run must pass.
//! * [`fixture`]        – references to the committed demo fixture (`oci:…/fixtures/demo:v1`, `:v2`).
//! * [`layout`]         – programmatic, deterministic OCI image-layout builder, and the image shapes several tests share.
//! * [`podman`]         – a private Podman store: images copied in with skopeo, `podman save`, `buildah push`, the API service.
//! * [`imagefs`]        – a fresh loop-mounted ext4 standing in for a node's imageFS, measured with statvfs; one at a time.
//! * [`containerd`]     – a private containerd (root on a given directory) and `ctr` pulls into it.
//! * [`registry`]       – a real `docker-registry` per test (plain / htpasswd / TLS), `skopeo` push and archive helpers.
//! * [`credentials`]    – Docker `config.json` / containers `auth.json` files with a registry's credentials.
//! * [`json`]           – accessors for report JSON (`u`) and tolerance checks (`within_pct`).
//! * [`ground_truth`]   – unpack a layer tar with GNU tar and measure it with `du`.
//! * [`http`]           – the one small HTTP/1.1 server the stand-ins share: accept loop, request parsing, answers.
//! * [`github_standin`] – a local stand-in for the GitHub REST API (issue comments, pull requests, commit statuses).
//! * [`github_markdown`] – Markdown rendered to HTML as GitHub renders a comment (cmark-gfm), and what GitHub scans of it.
//! * [`postgres`]       – a throwaway PostgreSQL cluster (initdb + pg_ctl on a free loopback port, as an unprivileged user).
//! * [`proxy`]          – a fault-injecting HTTP proxy (429/503, cut and stalled bodies, `Range` dropped) and a TLS-only relay.
//! * [`standin_registry`] – small registries that misbehave as asked (trickled, endless, wrong ranges, token services).
#![allow(dead_code)]

pub mod chromium;
pub mod containerd;
pub mod credentials;
pub mod fixture;
pub mod github_markdown;
pub mod github_standin;
pub mod ground_truth;
pub mod http;
pub mod imagefs;
pub mod json;
pub mod layout;
pub mod podman;
pub mod postgres;
pub mod proxy;
pub mod registry;
pub mod run;
pub mod standin_registry;

use std::path::PathBuf;

/// Locate `tool` on `PATH` (or at an absolute path), or panic saying how to
/// install it (`install`: the command, e.g. `apt-get install skopeo`).
///
/// Tests never skip silently: a missing tool is a test failure.
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &PathBuf| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(executable)
        .unwrap_or_else(|| {
            panic!(
                "{tool} not found: install it with `{install}` \
                 (or run scripts/test.sh, which installs every test dependency)"
            )
        })
}

/// A digest as the crate computes it, so a test's expected digest and
/// sizeguard's cannot differ in how they are written.
pub use sizeguard::digest::sha256_digest;

pub mod serve;
pub mod webdriver;
