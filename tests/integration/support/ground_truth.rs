//! Ground truth for a layer: unpack it with GNU tar and measure with `du`.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::require_tool;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truth {
    /// `du --block-size=1 -s ROOT` (allocated bytes, hard links counted once,
    /// includes the root directory itself).
    pub disk_bytes: u64,
    /// Unique inodes under (and including) the root directory.
    pub inodes: u64,
    /// Sum of `st_size` of regular files, once per inode.
    pub content_bytes: u64,
}

/// Extract `tar_path` (uncompressed tar) into a fresh temp dir with GNU tar and
/// measure it. Panics with tar's / du's stderr on failure.
pub fn unpack_and_measure(tar_path: &Path) -> Truth {
    let tar = require_tool("tar", "apt-get install tar");
    let du = require_tool("du", "apt-get install coreutils");
    let root = tempfile::Builder::new()
        .prefix("sizeguard-truth-")
        .tempdir()
        .expect("create ground-truth temp dir");

    let out = Command::new(&tar)
        .arg("-xf")
        .arg(tar_path)
        .arg("-C")
        .arg(root.path())
        .arg("--no-same-owner")
        .output()
        .expect("spawn tar");
    if !out.status.success() {
        panic!(
            "tar -xf {} failed ({}): {}",
            tar_path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = Command::new(&du)
        .arg("--block-size=1")
        .arg("-s")
        .arg(root.path())
        .output()
        .expect("spawn du");
    if !out.status.success() {
        panic!(
            "du failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let disk_bytes: u64 = stdout
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse du output: {stdout:?}"));

    let mut seen = HashSet::new();
    let mut content_bytes = 0u64;
    walk(root.path(), &mut seen, &mut content_bytes);

    Truth {
        disk_bytes,
        inodes: seen.len() as u64,
        content_bytes,
    }
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>, content: &mut u64) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    if seen.insert((meta.dev(), meta.ino())) && meta.file_type().is_file() {
        *content += meta.size();
    }
    if meta.file_type().is_dir() {
        let mut entries: Vec<_> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, seen, content);
        }
    }
}
