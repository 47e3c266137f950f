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
//!
//! The directory is sizeguard's alone, and only ever touched as such: it is
//! created mode 0700 with a `CACHEDIR.TAG` (the Cache Directory Tagging
//! specification's, plus a line naming sizeguard) that marks it as a cache
//! sizeguard made. A directory without that marker is refused (unless it is
//! empty, or holds nothing but `layers-vN` directories: an older
//! sizeguard's cache), and so is one another user owns. Inside, only
//! sizeguard's own files are read, counted or removed: digest-named entries
//! and its temporary files in `layers-vN/`, never through a symlink.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::layer::LayerMeasurement;
use crate::digest::hex;
use crate::error::Error;

/// Bump whenever the analyzer's output or this encoding changes meaning.
pub const FORMAT_VERSION: u32 = 5;
const MAGIC: &str = "sizeguard-layer-cache";

#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
    /// Whether the directory is a sizeguard cache (created or checked on
    /// first use), else why it is not.
    ready: Arc<OnceLock<Result<(), String>>>,
}

/// The marker file: the Cache Directory Tagging specification's name.
pub const MARKER: &str = "CACHEDIR.TAG";
/// Its first line, as the specification wants it.
const MARKER_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";
/// The line that says sizeguard made it.
const MARKER_OWNER: &str = "# This file is a cache directory tag created by sizeguard.";
/// The prefix of sizeguard's temporary files.
const TMP_PREFIX: &str = ".sizeguard-tmp-";

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
        LayerCache {
            dir: dir.into(),
            ready: Arc::default(),
        }
    }

    /// Creates the cache directory (0700, with its marker) when it does
    /// not exist, else checks that it is a sizeguard cache this user owns;
    /// once per cache. `Err` says why the directory is refused.
    fn ready(&self) -> Result<(), String> {
        self.ready
            .get_or_init(|| {
                let ready = prepare(&self.dir);
                if let Err(why) = &ready {
                    // Once: the run goes on without the cache.
                    tracing::warn!(
                        "layer cache not used: {} is not a sizeguard cache directory ({why})",
                        self.shown()
                    );
                }
                ready
            })
            .clone()
    }

    /// Whether the directory is a sizeguard cache, checked without
    /// creating anything: `Ok(false)` when it does not exist.
    fn existing(&self) -> Result<bool, Error> {
        match fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("cache directory {}", self.shown()), e)),
            Ok(_) => check_existing(&self.dir)
                .map(|()| true)
                .map_err(|why| self.refusal(&why)),
        }
    }

    fn shown(&self) -> String {
        crate::plain_text::escape(&self.dir.display().to_string()).into_owned()
    }

    fn refusal(&self, why: &str) -> Error {
        Error::usage(format!(
            "{} is not a sizeguard cache directory ({why}); sizeguard only uses and \
             prunes a directory it created (marked by its {MARKER}): name another with \
             --cache-dir or SIZEGUARD_CACHE_DIR",
            self.shown()
        ))
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

    /// Whether an entry for this blob is present, without reading it: the
    /// admission webhook's test of whether an image can be rebuilt from
    /// the cache alone (an entry that then fails to decode is a miss then).
    pub fn contains(&self, digest: &str) -> bool {
        let Some(path) = self.path_for(digest) else {
            return false;
        };
        self.ready().is_ok() && fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
    }

    /// The cached measurement of a blob, or `None` on any miss: absent,
    /// another format version, truncated, corrupt, or for another blob.
    pub fn get(&self, digest: &str, size: u64) -> Option<LayerMeasurement> {
        let path = self.path_for(digest)?;
        self.ready().ok()?;
        let mut raw = Vec::new();
        // An entry that is a symlink is not one of sizeguard's: not read.
        let mut f = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        f.read_to_end(&mut raw).ok()?;
        let m = decode(&raw)?;
        if m.digest != digest || m.figures.compressed_bytes != size {
            return None;
        }
        // Least-recently-used pruning goes by modification time.
        if let Ok(f) = File::options()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(m)
    }

    /// Stores a measurement, which must have every content fact (taken
    /// with the content scan on): entries are read whatever the run's
    /// scan. Failures are not errors: the cache is an optimisation, and a
    /// read-only or full disk must not fail a check.
    pub fn put(&self, m: &LayerMeasurement) {
        if let Err(e) = self.try_put(m) {
            tracing::warn!("layer cache: could not store {}: {e}", m.digest);
        }
    }

    fn try_put(&self, m: &LayerMeasurement) -> std::io::Result<()> {
        let Some(path) = self.path_for(&m.digest) else {
            return Ok(());
        };
        if self.ready().is_err() {
            // Said once already.
            return Ok(());
        }
        let dir = self.layers_dir();
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a directory (a symlink?)",
                    dir.display()
                )));
            }
            Err(_) => match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            },
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)?;
        tmp.write_all(&encode(m)?)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// sizeguard's own files in the cache directory, with whether each is
    /// a current entry: digest-named files and temporaries in `layers-vN/`
    /// directories, never a symlink, never anything else.
    fn files(&self) -> Vec<(PathBuf, u64, SystemTime, bool)> {
        let mut out = Vec::new();
        let Ok(top) = fs::read_dir(&self.dir) else {
            return out;
        };
        let current = format!("layers-v{FORMAT_VERSION}");
        for d in top.flatten() {
            let name = d.file_name();
            let Some(name) = name.to_str().filter(|n| is_layers_dir(n)) else {
                continue;
            };
            // DirEntry's metadata does not follow a symlink.
            if !d.metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let Ok(entries) = fs::read_dir(d.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let own = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| is_entry_name(n) || is_temporary_name(n));
                let Ok(meta) = e.metadata() else { continue };
                if !own || !meta.is_file() {
                    continue;
                }
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let entry = e.file_name().to_str().is_some_and(is_entry_name);
                out.push((e.path(), meta.len(), mtime, entry && name == current));
            }
        }
        out
    }

    /// What `cache stats` shows; a directory that is not a sizeguard
    /// cache is refused (a missing one is empty).
    pub fn stats(&self) -> Result<CacheStats, Error> {
        let mut s = CacheStats {
            dir: self.dir.clone(),
            ..Default::default()
        };
        if !self.existing()? {
            return Ok(s);
        }
        for (_, len, _, current) in self.files() {
            s.bytes += len;
            if current {
                s.entries += 1;
            } else {
                s.stale += 1;
            }
        }
        Ok(s)
    }

    /// Deletes stale files, then current entries least recently used first,
    /// until the cache holds at most `max_bytes`. Returns (files, bytes)
    /// freed. Only sizeguard's own files go; a directory that is not a
    /// sizeguard cache is refused whole, before anything is removed.
    pub fn prune(&self, max_bytes: u64) -> Result<(u64, u64), Error> {
        if !self.existing()? {
            return Ok((0, 0));
        }
        let mut files = self.files();
        // Stale first, then oldest.
        files.sort_by_key(|(_, _, mtime, current)| (*current, *mtime));
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let (mut n, mut freed) = (0, 0);
        for (path, len, _, current) in files {
            if current && total <= max_bytes {
                break;
            }
            // remove_file unlinks a name: had the file become a symlink
            // since it was listed, the link would go, not its target.
            if fs::remove_file(&path).is_ok() {
                total -= len;
                freed += len;
                n += 1;
            }
        }
        Ok((n, freed))
    }
}

/// `layers-v<N>`: a directory of entries of format version N.
fn is_layers_dir(name: &str) -> bool {
    name.strip_prefix("layers-v")
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// `sha256-<64 hex>` or `sha512-<128 hex>`, lowercase: an entry's name.
fn is_entry_name(name: &str) -> bool {
    let hex_of = |h: &str, len: usize| {
        h.len() == len
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    name.strip_prefix("sha256-").is_some_and(|h| hex_of(h, 64))
        || name.strip_prefix("sha512-").is_some_and(|h| hex_of(h, 128))
}

/// A temporary file sizeguard left (a write interrupted before its
/// rename): its own prefix, or tempfile's default `.tmpXXXXXX` that
/// sizeguard releases before the marker used.
fn is_temporary_name(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
        || name
            .strip_prefix(".tmp")
            .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether `meta` belongs to the user sizeguard runs as.
fn owned_by_me(meta: &fs::Metadata) -> bool {
    meta.uid() == effective_uid()
}

/// The user sizeguard runs as, for the ownership checks of the
/// directories it keeps (this cache, serve's data directory).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `dir` holds sizeguard's marker, a regular file (not a symlink)
/// that names sizeguard.
fn has_marker(dir: &Path) -> bool {
    let Ok(mut f) = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(MARKER))
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file() && m.len() < 4096) {
        return false;
    }
    let mut text = String::new();
    f.read_to_string(&mut text).is_ok()
        && text.starts_with(MARKER_SIGNATURE)
        && text.lines().any(|l| l.trim() == MARKER_OWNER)
}

fn write_marker(dir: &Path) -> std::io::Result<()> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(MARKER))?;
    writeln!(f, "{MARKER_SIGNATURE}")?;
    writeln!(f, "{MARKER_OWNER}")?;
    writeln!(
        f,
        "# Only sizeguard's layer cache lives here; `sizeguard cache prune` trims it."
    )?;
    writeln!(
        f,
        "# For information about cache directory tags, see https://bford.info/cachedir/"
    )
}

/// Checks an existing directory: this user's, a directory, and marked as
/// sizeguard's, or adoptable (empty, or an older sizeguard's cache holding
/// only `layers-vN` directories), in which case it is marked now.
fn check_existing(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    if !owned_by_me(&meta) {
        return Err(format!("owned by another user (uid {})", meta.uid()));
    }
    if has_marker(dir) {
        return Ok(());
    }
    let mut foreign = None;
    for e in fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name();
        let layers =
            name.to_str().is_some_and(is_layers_dir) && e.metadata().is_ok_and(|m| m.is_dir());
        if !layers {
            foreign = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    if let Some(name) = foreign {
        return Err(format!(
            "no {MARKER} of sizeguard's, and it holds other files, e.g. {:?}",
            crate::plain_text::escape(&name)
        ));
    }
    match write_marker(dir) {
        Ok(()) => Ok(()),
        // Another process marked it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && has_marker(dir) => Ok(()),
        Err(e) => Err(format!("marking it as sizeguard's cache: {e}")),
    }
}

/// The directory ready for use: created (0700, marked) when missing, else
/// checked ([`check_existing`]).
fn prepare(dir: &Path) -> Result<(), String> {
    if fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {
                // The mode asked for is masked by the umask; 0700 it is.
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| e.to_string())?;
                write_marker(dir).map_err(|e| e.to_string())?;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    check_existing(dir)
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
        assert_eq!(c.stats().unwrap().entries, 1);
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
        assert_eq!(c.stats().unwrap().entries, 1);
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
        let (n, _) = c.prune(sizes.iter().sum::<u64>() - sizes[1]).unwrap();
        assert_eq!(n, 1);
        assert!(
            c.get(&digests[1], 1234).is_none(),
            "least recently used went first"
        );
        assert!(c.get(&digests[0], 1234).is_some());
        assert!(c.get(&digests[2], 1234).is_some());
        c.prune(0).unwrap();
        assert_eq!(c.stats().unwrap().entries, 0);
    }

    #[test]
    fn a_new_cache_is_private_and_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deep/er/cache");
        let c = LayerCache::new(&dir);
        c.put(&sample(D));
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
        let layers = fs::metadata(c.layers_dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(layers, 0o700, "{layers:o}");
        let tag = fs::read_to_string(dir.join(MARKER)).unwrap();
        assert!(tag.starts_with(MARKER_SIGNATURE), "{tag}");
        assert!(tag.contains("created by sizeguard"), "{tag}");
        assert!(c.get(D, 1234).is_some());
    }

    #[test]
    fn a_directory_that_is_not_a_cache_is_refused_and_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), b"x").unwrap();
        fs::create_dir(home.path().join(".ssh")).unwrap();
        fs::write(home.path().join(".ssh/id_rsa"), b"key").unwrap();
        fs::write(home.path().join("id_rsa"), b"key").unwrap();
        std::os::unix::fs::symlink(outside.path(), home.path().join("link")).unwrap();
        let before = listing(home.path());
        let c = LayerCache::new(home.path());
        let e = c.prune(0).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.to_string().contains("not a sizeguard cache"), "{e}");
        assert!(c.stats().is_err());
        // Using it to measure stores nothing there either.
        c.put(&sample(D));
        assert!(c.get(D, 1234).is_none());
        assert_eq!(listing(home.path()), before);
        assert!(outside.path().join("precious").exists());
    }

    #[test]
    fn prune_removes_only_its_own_files_and_follows_no_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let c = LayerCache::new(tmp.path().join("cache"));
        c.put(&sample(D));
        let layers = c.layers_dir();
        // Foreign files inside the cache, and an entry-named symlink out.
        fs::write(layers.join("notes.txt"), b"mine").unwrap();
        fs::write(layers.join("sha256-xyz"), b"mine").unwrap();
        let target = outside.path().join("victim");
        fs::write(&target, b"keep").unwrap();
        let linked = format!("sha256-{:064x}", 7);
        std::os::unix::fs::symlink(&target, layers.join(&linked)).unwrap();
        let old = c.dir().join("layers-v1");
        fs::create_dir(&old).unwrap();
        fs::write(old.join(format!("sha256-{:064x}", 9)), b"stale").unwrap();
        fs::write(old.join("README"), b"mine").unwrap();
        fs::write(layers.join(".sizeguard-tmp-abc"), b"half").unwrap();
        std::os::unix::fs::symlink(outside.path(), c.dir().join("layers-v2")).unwrap();
        fs::write(outside.path().join(format!("sha256-{:064x}", 8)), b"out").unwrap();

        assert_eq!(c.stats().unwrap().entries, 1);
        assert_eq!(c.stats().unwrap().stale, 2);
        let (n, _) = c.prune(0).unwrap();
        assert_eq!(n, 3, "the entry, the stale entry, the temporary");
        for kept in ["notes.txt", "sha256-xyz", linked.as_str()] {
            assert!(fs::symlink_metadata(layers.join(kept)).is_ok(), "{kept}");
        }
        assert!(old.join("README").exists());
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(outside.path().join(format!("sha256-{:064x}", 8)).exists());
        // A symlinked entry is never read as one either.
        assert!(c.get(&format!("sha256:{:064x}", 7), 1234).is_none());
    }

    #[test]
    fn an_older_unmarked_cache_is_adopted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        fs::create_dir_all(dir.join("layers-v3")).unwrap();
        fs::write(
            dir.join("layers-v3").join(format!("sha256-{:064x}", 1)),
            b"old",
        )
        .unwrap();
        let c = LayerCache::new(&dir);
        assert_eq!(c.prune(0).unwrap().0, 1);
        assert!(dir.join(MARKER).is_file());
        // An empty directory (made by `mkdir -p`) is adopted as well.
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        LayerCache::new(&empty).put(&sample(D));
        assert!(LayerCache::new(&empty).get(D, 1234).is_some());
    }

    fn listing(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        out.sort();
        out
    }
}
