//! The content-addressed layer cache.
//!
//! A layer blob is immutable, so its measurement (the figures and the
//! per-path index the merged view needs) is stored once under its digest and
//! never recomputed. One file per digest, written to a temporary file and
//! renamed into place, so processes sharing the directory (parallel CI jobs,
//! webhook workers) never see half an entry. Each file starts with a header
//! naming the format version and the checksum of its payload: an entry from
//! another format version, or one that is truncated or corrupt, is a miss,
//! never data.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::layer::LayerMeasurement;
use crate::digest::hex;

/// Bump whenever the analyzer's output or this encoding changes meaning.
pub const FORMAT_VERSION: u32 = 4;
const MAGIC: &str = "sizeguard-layer-cache";

#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

/// What `cache stats` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CacheStats {
    pub dir: PathBuf,
    pub entries: u64,
    pub bytes: u64,
    /// Files of other format versions or unreadable ones.
    pub stale: u64,
}

/// The directory used when none is given: `$SIZEGUARD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sizeguard`, else `~/.cache/sizeguard`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SIZEGUARD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("sizeguard"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sizeguard"))
}

impl LayerCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayerCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn layers_dir(&self) -> PathBuf {
        self.dir.join(format!("layers-v{FORMAT_VERSION}"))
    }

    /// `sha256:<hex>` → a file name; anything else is not cacheable (and
    /// can never name a path outside the cache).
    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        let (alg, hex) = digest.split_once(':')?;
        let valid = matches!(alg, "sha256" | "sha512")
            && !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| self.layers_dir().join(format!("{alg}-{hex}")))
    }

    /// The cached measurement of a blob, or `None` on any miss: absent,
    /// another format version, truncated, corrupt, or for another blob.
    pub fn get(&self, digest: &str, size: u64) -> Option<LayerMeasurement> {
        let path = self.path_for(digest)?;
        let mut raw = Vec::new();
        File::open(&path).ok()?.read_to_end(&mut raw).ok()?;
        let m = decode(&raw)?;
        if m.digest != digest || m.figures.compressed_bytes != size {
            return None;
        }
        // Least-recently-used pruning goes by modification time.
        if let Ok(f) = File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(m)
    }

    /// Stores a measurement. Failures are not errors: the cache is an
    /// optimisation, and a read-only or full disk must not fail a check.
    pub fn put(&self, m: &LayerMeasurement) {
        // A measurement taken with the content scan off has no hashes or
        // debug sizes; cached, it would hide those hints from every later
        // run that has the scan on.
        if !super::layer::content_scan_enabled() {
            return;
        }
        if let Err(e) = self.try_put(m) {
            tracing::warn!("layer cache: could not store {}: {e}", m.digest);
        }
    }

    fn try_put(&self, m: &LayerMeasurement) -> std::io::Result<()> {
        let Some(path) = self.path_for(&m.digest) else {
            return Ok(());
        };
        let dir = self.layers_dir();
        fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(&encode(m)?)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Every file in the cache directory, with whether it is a current entry.
    fn files(&self) -> Vec<(PathBuf, u64, SystemTime, bool)> {
        let mut out = Vec::new();
        let Ok(top) = fs::read_dir(&self.dir) else {
            return out;
        };
        let current = self.layers_dir();
        for d in top.flatten() {
            let dir = d.path();
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((e.path(), meta.len(), mtime, dir == current));
            }
        }
        out
    }

    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats {
            dir: self.dir.clone(),
            ..Default::default()
        };
        for (_, len, _, current) in self.files() {
            s.bytes += len;
            if current {
                s.entries += 1;
            } else {
                s.stale += 1;
            }
        }
        s
    }

    /// Deletes stale files, then current entries least recently used first,
    /// until the cache holds at most `max_bytes`. Returns (files, bytes) freed.
    pub fn prune(&self, max_bytes: u64) -> (u64, u64) {
        let mut files = self.files();
        // Stale first, then oldest.
        files.sort_by_key(|(_, _, mtime, current)| (*current, *mtime));
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let (mut n, mut freed) = (0, 0);
        for (path, len, _, current) in files {
            if current && total <= max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
                freed += len;
                n += 1;
            }
        }
        (n, freed)
    }
}

/// `MAGIC v<version> <payload sha256>\n` then the zstd-compressed JSON,
/// compressed as it is written so a million-path index is never held as
/// JSON text.
fn encode(m: &LayerMeasurement) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::Encoder::new(Vec::new(), 3)?;
    serde_json::to_writer(&mut enc, m)?;
    let payload = enc.finish()?;
    let mut out = format!(
        "{MAGIC} v{FORMAT_VERSION} {}\n",
        hex(&Sha256::digest(&payload))
    )
    .into_bytes();
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode(raw: &[u8]) -> Option<LayerMeasurement> {
    let nl = raw.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&raw[..nl]).ok()?;
    let mut parts = header.split(' ');
    if parts.next()? != MAGIC || parts.next()? != format!("v{FORMAT_VERSION}") {
        return None;
    }
    let sum = parts.next()?;
    let payload = &raw[nl + 1..];
    if hex(&Sha256::digest(payload)) != sum {
        return None;
    }
    serde_json::from_reader(zstd::Decoder::new(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::layer::{Compression, EntryKind, IndexEntry, LayerFigures, LayerIndex};

    fn sample(digest: &str) -> LayerMeasurement {
        LayerMeasurement {
            figures: LayerFigures {
                compressed_bytes: 1234,
                tar_bytes: 4096,
                content_bytes: 10,
                disk_bytes: 8192,
                inodes: 2,
                whiteouts: 0,
                opaque_dirs: 0,
                files: 1,
            },
            digest: digest.to_string(),
            diff_id: "sha256:feed".into(),
            diff_id_verified: true,
            compression: Compression::Gzip,
            index: LayerIndex::from_entries(&[IndexEntry {
                path: "etc/hosts".into(),
                kind: EntryKind::File { size: 10 },
            }]),
        }
    }

    const D: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn hit_miss_and_size_check() {
        let dir = tempfile::tempdir().unwrap();
        let c = LayerCache::new(dir.path());
        assert!(c.get(D, 1234).is_none());
        c.put(&sample(D));
        let m = c.get(D, 1234).unwrap();
        assert_eq!(m.figures, sample(D).figures);
        assert_eq!(m.index, sample(D).index);
        // Same digest, other size: not this blob.
        assert!(c.get(D, 999).is_none());
        // Digests that are not hex never become paths.
        assert!(c.path_for("sha256:../../etc/passwd").is_none());
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn corrupt_truncated_and_old_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let c = LayerCache::new(dir.path());
        c.put(&sample(D));
        let path = c.path_for(D).unwrap();
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(c.get(D, 1234).is_none(), "truncated");
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&path, &bad).unwrap();
        assert!(c.get(D, 1234).is_none(), "corrupt");
        let old = String::from_utf8_lossy(&good).replacen(&format!("v{FORMAT_VERSION} "), "v0 ", 1);
        fs::write(&path, old.as_bytes()).unwrap();
        assert!(c.get(D, 1234).is_none(), "other version");
        fs::write(&path, b"").unwrap();
        assert!(c.get(D, 1234).is_none(), "empty");
        // A good write replaces a bad entry.
        c.put(&sample(D));
        assert!(c.get(D, 1234).is_some());
    }

    #[test]
    fn concurrent_writers_never_leave_a_partial_entry() {
        let dir = tempfile::tempdir().unwrap();
        let c = LayerCache::new(dir.path());
        let mut big = sample(D);
        let entries: Vec<IndexEntry> = (0..20_000)
            .map(|i| IndexEntry {
                path: format!("usr/share/doc/{i}"),
                kind: EntryKind::File { size: i },
            })
            .collect();
        big.index = LayerIndex::from_entries(&entries);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        c.put(&big);
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    // Absent or whole, never half.
                    if let Some(m) = c.get(D, 1234) {
                        assert_eq!(m.index.len(), 20_000);
                    }
                }
            });
        });
        assert_eq!(c.get(D, 1234).unwrap().index.len(), 20_000);
        // No temporary files left behind.
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn prune_removes_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = LayerCache::new(dir.path());
        let digests: Vec<String> = (0..3).map(|i| format!("sha256:{:064x}", i + 1)).collect();
        for (i, d) in digests.iter().enumerate() {
            c.put(&sample(d));
            let t =
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64 * 10);
            File::options()
                .append(true)
                .open(c.path_for(d).unwrap())
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        // Using the oldest makes it the newest.
        assert!(c.get(&digests[0], 1234).is_some());
        // Entries differ by a byte or two (zstd); room for the largest two.
        let sizes: Vec<u64> = digests
            .iter()
            .map(|d| fs::metadata(c.path_for(d).unwrap()).unwrap().len())
            .collect();
        let (n, _) = c.prune(sizes.iter().sum::<u64>() - sizes[1]);
        assert_eq!(n, 1);
        assert!(
            c.get(&digests[1], 1234).is_none(),
            "least recently used went first"
        );
        assert!(c.get(&digests[0], 1234).is_some());
        assert!(c.get(&digests[2], 1234).is_some());
        c.prune(0);
        assert_eq!(c.stats().entries, 0);
    }
}
