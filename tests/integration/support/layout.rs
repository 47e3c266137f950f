//! Deterministic, programmatic OCI image-layout builder.
//!
//! ```ignore
//! let mut b = LayoutBuilder::new(&dir.join("layout"));
//! let l1 = b.add_layer(&LayerSpec::new().dir("etc").file("etc/big", 10 << 20), Comp::Gzip);
//! let img = b.add_image(&[l1], "linux", "amd64", None, false);
//! b.tag_image(&img, "latest");   // index.json is rewritten after every change
//! ```
//!
//! `index.json` is (re)written after every mutating call, so there is no
//! `finish()` step: the layout on disk is always complete and valid.
//!
//! Uncompressed layer tars are kept in a private temp dir that lives as long
//! as the builder *or* any [`BuiltLayer`] cloned out of it (shared `Arc`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use sizeguard::digest::{Algorithm, Hasher};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MT_IN_TOTO: &str = "application/vnd.in-toto+json";

pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_REF_TYPE: &str = "vnd.docker.reference.type";
pub const ANN_REF_DIGEST: &str = "vnd.docker.reference.digest";

/// Fixed mtime of every tar entry (2023-11-14T22:13:20Z).
pub const FIXED_MTIME: u64 = 1_700_000_000;
const FIXED_CREATED: &str = "2023-11-14T22:13:20Z";

/// `(os, architecture, variant)` given for an index entry.
pub type PlatformOverride<'a> = (&'a str, &'a str, Option<&'a str>);

/// Layer blob compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

// ---------------------------------------------------------------------------
// Deterministic pseudo-random content
// ---------------------------------------------------------------------------

/// 64-bit FNV-1a, used to derive per-path seeds.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Streaming reader of `len` deterministic, incompressible bytes (xorshift64*).
pub struct PseudoRandom {
    state: u64,
    remaining: u64,
    buf: [u8; 8],
    buf_pos: usize,
}

impl PseudoRandom {
    pub fn new(seed: u64, len: u64) -> Self {
        // splitmix the seed so that similar seeds diverge; never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        PseudoRandom {
            state: z | 1,
            remaining: len,
            buf: [0; 8],
            buf_pos: 8,
        }
    }

    /// Content for a file at `path` (seeded by the path).
    pub fn for_path(path: &str, len: u64) -> Self {
        Self::new(fnv1a64(path.as_bytes()), len)
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Read for PseudoRandom {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = (out.len() as u64).min(self.remaining) as usize;
        let mut i = 0;
        // drain leftover bytes of the previous word
        while i < want && self.buf_pos < 8 {
            out[i] = self.buf[self.buf_pos];
            self.buf_pos += 1;
            i += 1;
        }
        // whole words
        while want - i >= 8 {
            let w = self.next_u64().to_le_bytes();
            out[i..i + 8].copy_from_slice(&w);
            i += 8;
        }
        // tail
        if i < want {
            self.buf = self.next_u64().to_le_bytes();
            self.buf_pos = 0;
            while i < want {
                out[i] = self.buf[self.buf_pos];
                self.buf_pos += 1;
                i += 1;
            }
        }
        self.remaining -= want as u64;
        Ok(want)
    }
}

/// Generate `len` pseudo-random bytes for `path` in memory (for assertions).
pub fn pseudo_random_bytes(path: &str, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    PseudoRandom::for_path(path, len as u64)
        .read_to_end(&mut v)
        .unwrap();
    v
}

// ---------------------------------------------------------------------------
// Layer spec
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Entry {
    Dir(String),
    RandomFile(String, u64),
    ZeroFile(String, u64),
    Bytes(String, Vec<u8>),
    Hardlink(String, String),
    Symlink(String, String),
    Fifo(String),
}

/// Description of a layer's tar contents; entries are written in insertion order.
#[derive(Clone, Debug, Default)]
pub struct LayerSpec {
    entries: Vec<Entry>,
}

fn clean(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_string()
}

impl LayerSpec {
    pub fn new() -> Self {
        Self::default()
    }
    /// Directory entry (mode 0755, written as `path/`).
    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(Entry::Dir(clean(path)));
        self
    }
    /// Regular file of `size` incompressible bytes, seeded by the path (mode 0644).
    pub fn file(mut self, path: &str, size: u64) -> Self {
        self.entries.push(Entry::RandomFile(clean(path), size));
        self
    }
    /// Regular file of `size` zero bytes (compresses to almost nothing).
    pub fn file_compressible(mut self, path: &str, size: u64) -> Self {
        self.entries.push(Entry::ZeroFile(clean(path), size));
        self
    }
    /// Regular file with exactly these bytes.
    pub fn file_bytes(mut self, path: &str, bytes: &[u8]) -> Self {
        self.entries.push(Entry::Bytes(clean(path), bytes.to_vec()));
        self
    }
    /// Hard link `path` -> `target` (target is an archive path, written earlier).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries
            .push(Entry::Hardlink(clean(path), clean(target)));
        self
    }
    /// Symlink `path` -> `target` (target kept verbatim; may be long / absolute).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries
            .push(Entry::Symlink(clean(path), target.to_string()));
        self
    }
    /// Whiteout for `path`: empty regular file `dir/.wh.name`.
    pub fn whiteout(mut self, path: &str) -> Self {
        let p = clean(path);
        let (dir, name) = match p.rfind('/') {
            Some(i) => (&p[..i + 1], &p[i + 1..]),
            None => ("", p.as_str()),
        };
        self.entries
            .push(Entry::Bytes(format!("{dir}.wh.{name}"), Vec::new()));
        self
    }
    /// Opaque-directory marker: empty regular file `dir/.wh..wh..opq`.
    pub fn opaque(mut self, dir: &str) -> Self {
        let d = clean(dir);
        let p = if d.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{d}/.wh..wh..opq")
        };
        self.entries.push(Entry::Bytes(p, Vec::new()));
        self
    }
    /// Named pipe (FIFO) entry.
    pub fn fifo(mut self, path: &str) -> Self {
        self.entries.push(Entry::Fifo(clean(path)));
        self
    }
}

// ---------------------------------------------------------------------------
// Tar writing
// ---------------------------------------------------------------------------

fn base_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// Emit a GNU `././@LongLink` record (kind `L` for names, `K` for link targets).
fn long_record<W: Write>(b: &mut tar::Builder<W>, kind: u8, value: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    {
        let name = b"././@LongLink";
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
    }
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(value.len() as u64 + 1);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    b.append(&h, value.chain(io::repeat(0).take(1)))
}

/// Append one entry, writing names byte-for-byte (so directories keep their
/// trailing `/`, as GNU tar / docker produce) and using GNU long records when
/// a name or link target does not fit in 100 bytes.
fn append_entry<W: Write, R: Read>(
    b: &mut tar::Builder<W>,
    mut h: tar::Header,
    name: &str,
    link: Option<&str>,
    data: R,
) -> io::Result<()> {
    let nb = name.as_bytes();
    if nb.len() > 100 {
        long_record(b, b'L', nb)?;
    }
    let n = nb.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&nb[..n]);
    if let Some(link) = link {
        let lb = link.as_bytes();
        if lb.len() > 100 {
            long_record(b, b'K', lb)?;
        }
        let n = lb.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&lb[..n]);
    }
    h.set_cksum();
    b.append(&h, data)
}

fn write_entries<W: Write>(b: &mut tar::Builder<W>, spec: &LayerSpec) -> io::Result<()> {
    use tar::EntryType as T;
    for e in &spec.entries {
        match e {
            Entry::Dir(p) => append_entry(
                b,
                base_header(T::Directory, 0o755, 0),
                &format!("{p}/"),
                None,
                io::empty(),
            )?,
            Entry::RandomFile(p, size) => append_entry(
                b,
                base_header(T::Regular, 0o644, *size),
                p,
                None,
                PseudoRandom::for_path(p, *size),
            )?,
            Entry::ZeroFile(p, size) => append_entry(
                b,
                base_header(T::Regular, 0o644, *size),
                p,
                None,
                io::repeat(0).take(*size),
            )?,
            Entry::Bytes(p, bytes) => append_entry(
                b,
                base_header(T::Regular, 0o644, bytes.len() as u64),
                p,
                None,
                &bytes[..],
            )?,
            Entry::Hardlink(p, t) => {
                append_entry(b, base_header(T::Link, 0o644, 0), p, Some(t), io::empty())?
            }
            Entry::Symlink(p, t) => append_entry(
                b,
                base_header(T::Symlink, 0o777, 0),
                p,
                Some(t),
                io::empty(),
            )?,
            Entry::Fifo(p) => {
                append_entry(b, base_header(T::Fifo, 0o644, 0), p, None, io::empty())?
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Hashing / tee writers
// ---------------------------------------------------------------------------

struct HashWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    count: u64,
    /// false: only count bytes (uncompressed blobs reuse the diff_id).
    hash: bool,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Algorithm::Sha256.hasher(),
            count: 0,
            hash: true,
        }
    }
    fn finish(self) -> (W, String, u64) {
        (self.inner, self.hasher.finish().to_string(), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder {
    None(HashWriter<BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<HashWriter<BufWriter<File>>>),
    Zstd(zstd::Encoder<'static, HashWriter<BufWriter<File>>>),
}

impl Encoder {
    fn finish(self) -> io::Result<HashWriter<BufWriter<File>>> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// Writes everything to both the uncompressed tar file and the blob encoder.
struct Tee {
    tar: BufWriter<File>,
    enc: Encoder,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tar.write_all(buf)?;
        self.enc.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tar.flush()?;
        self.enc.flush()
    }
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// A layer written into the layout.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// Uncompressed tar (ground truth); valid while the builder or any clone
    /// of this `BuiltLayer` is alive.
    pub tar_path: PathBuf,
    /// `"sha256:<hex>"` of the (possibly compressed) blob.
    pub blob_digest: String,
    pub blob_size: u64,
    /// `"sha256:<hex>"` of the uncompressed tar.
    pub diff_id: String,
    /// Uncompressed tar size in bytes.
    pub tar_size: u64,
    /// OCI layer media type (`...tar`, `...tar+gzip`, `...tar+zstd`).
    pub media_type: String,
    pub comp: Comp,
    _keep: Arc<tempfile::TempDir>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }
    fn to_json(&self) -> Value {
        let mut v = json!({"architecture": self.architecture, "os": self.os});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

/// A manifest (image or attestation) or an index written into the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDesc {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// Config blob digest; empty string for indexes.
    pub config_digest: String,
    /// Platform of an image manifest (`unknown/unknown` for attestations, None for indexes).
    pub platform: Option<Platform>,
    /// Annotations to put on descriptors pointing at this manifest
    /// (attestations: `vnd.docker.reference.*`).
    pub annotations: BTreeMap<String, String>,
}

impl ImageDesc {
    fn descriptor(&self, platform: Option<&Platform>) -> Value {
        let mut d = json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size});
        if let Some(p) = platform.or(self.platform.as_ref()) {
            d["platform"] = p.to_json();
        }
        if !self.annotations.is_empty() {
            d["annotations"] = json!(self.annotations);
        }
        d
    }
}

/// What [`LayoutBuilder::add_multi_platform_index`] wrote.
#[derive(Clone, Debug)]
pub struct MultiPlatform {
    pub amd64: ImageDesc,
    pub arm64: ImageDesc,
    pub attestation: ImageDesc,
    pub index: ImageDesc,
}

/// What [`LayoutBuilder::add_docker_list`] wrote.
#[derive(Clone, Debug)]
pub struct DockerList {
    pub image: ImageDesc,
    pub arm64: ImageDesc,
    pub list: ImageDesc,
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct LayoutBuilder {
    dir: PathBuf,
    tars: Arc<tempfile::TempDir>,
    layer_count: u64,
    /// index.json entries as (ref name or "" for untagged, descriptor)
    index_entries: Vec<(String, Value)>,
}

impl LayoutBuilder {
    /// Create (or reinitialise) an OCI image layout at `dir`.
    pub fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout blobs dir");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        let tars = tempfile::Builder::new()
            .prefix("sizeguard-layer-tars-")
            .tempdir()
            .expect("create temp dir for layer tars");
        let b = LayoutBuilder {
            dir: dir.to_path_buf(),
            tars: Arc::new(tars),
            layer_count: 0,
            index_entries: Vec::new(),
        };
        b.write_index();
        b
    }

    /// Layout root.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a blob (`"sha256:<hex>"`) inside the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Store arbitrary bytes as a blob; returns (digest, size).
    pub fn put_blob(&mut self, bytes: &[u8]) -> (String, u64) {
        let digest = super::sha256_digest(bytes);
        fs::write(self.blob_path(&digest), bytes).expect("write blob");
        (digest, bytes.len() as u64)
    }

    fn put_json(&mut self, v: &Value) -> (String, u64) {
        let bytes = serde_json::to_vec(v).unwrap();
        self.put_blob(&bytes)
    }

    /// Build a layer tar from `spec`, compress it, and store the blob.
    pub fn add_layer(&mut self, spec: &LayerSpec, comp: Comp) -> BuiltLayer {
        self.store_layer(comp, |tee| {
            let mut builder = tar::Builder::new(tee);
            write_entries(&mut builder, spec).expect("write layer tar");
            builder.into_inner().expect("finish tar")
        })
    }

    /// Store a tar made elsewhere (GNU tar over a real tree: hard links,
    /// device nodes, owners as they are) as a layer, compressed with `comp`.
    pub fn add_layer_tar(&mut self, tar: &Path, comp: Comp) -> BuiltLayer {
        self.store_layer(comp, |mut tee| {
            let mut src = File::open(tar).unwrap_or_else(|e| panic!("open {}: {e}", tar.display()));
            io::copy(&mut src, &mut tee).expect("copy layer tar");
            tee
        })
    }

    /// Writes a layer's tar (through `write`) to the kept uncompressed copy
    /// and the compressed blob at once, and stores the blob.
    fn store_layer(
        &mut self,
        comp: Comp,
        write: impl FnOnce(HashWriter<Tee>) -> HashWriter<Tee>,
    ) -> BuiltLayer {
        self.layer_count += 1;
        let tar_path = self
            .tars
            .path()
            .join(format!("layer-{}.tar", self.layer_count));
        let tmp_blob = self.dir.join("blobs/sha256").join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let blob_file =
            BufWriter::with_capacity(1 << 20, File::create(&tmp_blob).expect("create blob"));
        let mut blob_hw = HashWriter::new(blob_file);
        // Uncompressed blob == tar: its digest is the diff_id, don't hash twice.
        blob_hw.hash = comp != Comp::None;
        let enc = match comp {
            Comp::None => Encoder::None(blob_hw),
            Comp::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(blob_hw, flate2::Compression::fast()),
            ),
            Comp::Zstd => Encoder::Zstd(zstd::Encoder::new(blob_hw, 3).expect("zstd encoder")),
        };
        let tar_file =
            BufWriter::with_capacity(1 << 20, File::create(&tar_path).expect("create tar"));
        let tee = write(HashWriter::new(Tee { tar: tar_file, enc }));
        let (tee, diff_id, tar_size) = tee.finish();
        let Tee { mut tar, enc } = tee;
        tar.flush().expect("flush tar");
        let blob_hw = enc.finish().expect("finish compression");
        let (mut blob_file, mut blob_digest, blob_size) = blob_hw.finish();
        if comp == Comp::None {
            blob_digest = diff_id.clone();
        }
        blob_file.flush().expect("flush blob");
        drop(blob_file);
        fs::rename(&tmp_blob, self.blob_path(&blob_digest)).expect("rename blob");

        let media_type = match comp {
            Comp::None => MT_OCI_LAYER,
            Comp::Gzip => MT_OCI_LAYER_GZIP,
            Comp::Zstd => MT_OCI_LAYER_ZSTD,
        }
        .to_string();
        BuiltLayer {
            tar_path,
            blob_digest,
            blob_size,
            diff_id,
            tar_size,
            media_type,
            comp,
            _keep: self.tars.clone(),
        }
    }

    /// Write a config + manifest for `layers`. Not tagged: see [`Self::tag_image`].
    pub fn add_image(
        &mut self,
        layers: &[BuiltLayer],
        os: &str,
        arch: &str,
        variant: Option<&str>,
        docker_media_types: bool,
    ) -> ImageDesc {
        let platform = Platform::new(os, arch, variant);
        let mut config = json!({
            "architecture": arch,
            "os": os,
            "created": FIXED_CREATED,
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().enumerate().map(|(i, l)| json!({
                "created": FIXED_CREATED,
                "created_by": format!("sizeguard-test layer {i} ({})", l.diff_id),
            })).collect::<Vec<_>>(),
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        self.add_image_with_config(layers, &config, platform, docker_media_types)
    }

    /// A linux/amd64 image of `layers` whose config history names each
    /// layer's build step (`created_by`), tagged `tag`.
    pub fn add_image_with_steps(
        &mut self,
        layers: &[BuiltLayer],
        steps: &[&str],
        tag: &str,
    ) -> ImageDesc {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": FIXED_CREATED,
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": steps.iter().map(|s| json!({
                "created": FIXED_CREATED,
                "created_by": s,
            })).collect::<Vec<_>>(),
        });
        let img = self.add_image_with_config(
            layers,
            &config,
            Platform::new("linux", "amd64", None),
            false,
        );
        self.tag_image(&img, tag);
        img
    }

    /// Write `config` verbatim (e.g. with diff_ids that do not match the
    /// layers) and a manifest of it and `layers`. Not tagged.
    pub fn add_image_with_config(
        &mut self,
        layers: &[BuiltLayer],
        config: &Value,
        platform: Platform,
        docker_media_types: bool,
    ) -> ImageDesc {
        let (config_digest, config_size) = self.put_json(config);

        let (manifest_mt, config_mt) = if docker_media_types {
            (MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG)
        } else {
            (MT_OCI_MANIFEST, MT_OCI_CONFIG)
        };
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| {
                let mt = match (docker_media_types, l.comp) {
                    (true, Comp::Gzip) => MT_DOCKER_LAYER_GZIP,
                    (true, Comp::None) => MT_DOCKER_LAYER,
                    _ => l.media_type.as_str(),
                };
                json!({"mediaType": mt, "digest": l.blob_digest, "size": l.blob_size})
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_mt,
            "config": {"mediaType": config_mt, "digest": config_digest, "size": config_size},
            "layers": layer_descs,
        });
        let (digest, size) = self.put_json(&manifest);
        ImageDesc {
            digest,
            size,
            media_type: manifest_mt.to_string(),
            config_digest,
            platform: Some(platform),
            annotations: BTreeMap::new(),
        }
    }

    /// Write a buildx-style attestation manifest for `for_image`.
    /// Not added to index.json; put it in an index with [`Self::tag_index`].
    pub fn add_attestation(&mut self, for_image: &ImageDesc) -> ImageDesc {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{
                "name": "pkg:docker/sizeguard-test@latest",
                "digest": {"sha256": for_image.digest.trim_start_matches("sha256:")},
            }],
            "predicate": {"spdxVersion": "SPDX-2.3", "name": "sbom", "packages": []},
        });
        let (layer_digest, layer_size) = self.put_json(&statement);
        let config = json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let (config_digest, config_size) = self.put_json(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{
                "mediaType": MT_IN_TOTO,
                "digest": layer_digest,
                "size": layer_size,
                "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
            }],
        });
        let (digest, size) = self.put_json(&manifest);
        let mut annotations = BTreeMap::new();
        annotations.insert(ANN_REF_TYPE.to_string(), "attestation-manifest".to_string());
        annotations.insert(ANN_REF_DIGEST.to_string(), for_image.digest.clone());
        ImageDesc {
            digest,
            size,
            media_type: MT_OCI_MANIFEST.to_string(),
            config_digest,
            platform: Some(Platform::new("unknown", "unknown", None)),
            annotations,
        }
    }

    /// Store an arbitrary manifest/index JSON verbatim (for malformed / exotic cases).
    pub fn add_raw_manifest(
        &mut self,
        bytes: &[u8],
        media_type: &str,
        platform: Option<Platform>,
    ) -> ImageDesc {
        let (digest, size) = self.put_blob(bytes);
        let config_digest = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v["config"]["digest"].as_str().map(String::from))
            .unwrap_or_default();
        ImageDesc {
            digest,
            size,
            media_type: media_type.to_string(),
            config_digest,
            platform,
            annotations: BTreeMap::new(),
        }
    }

    /// Tag a manifest (or index) in index.json (`org.opencontainers.image.ref.name`).
    /// Re-using a tag replaces the previous entry. Rewrites index.json.
    pub fn tag_image(&mut self, img: &ImageDesc, tag: &str) {
        let mut d = img.descriptor(None);
        if d.get("annotations").is_none() {
            d["annotations"] = json!({});
        }
        d["annotations"][ANN_REF_NAME] = json!(tag);
        self.index_entries.retain(|(t, _)| t != tag);
        self.index_entries.push((tag.to_string(), d));
        self.write_index();
    }

    /// Add an untagged manifest/index entry to index.json. Rewrites index.json.
    pub fn add_untagged(&mut self, img: &ImageDesc) {
        self.index_entries
            .push((String::new(), img.descriptor(None)));
        self.write_index();
    }

    /// Write a nested image index (OCI) or manifest list (Docker, when
    /// `docker_list`) over `entries`, and tag it in index.json.
    /// The platform of each entry is the given override, else the manifest's
    /// own platform (attestations: unknown/unknown, with their annotations).
    pub fn tag_index(
        &mut self,
        entries: &[(ImageDesc, Option<PlatformOverride<'_>>)],
        tag: &str,
        docker_list: bool,
    ) -> ImageDesc {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(img, p)| {
                let p = p.map(|(os, arch, var)| Platform::new(os, arch, var));
                img.descriptor(p.as_ref())
            })
            .collect();
        let mt = if docker_list {
            MT_DOCKER_LIST
        } else {
            MT_OCI_INDEX
        };
        let index = json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests});
        let (digest, size) = self.put_json(&index);
        let desc = ImageDesc {
            digest,
            size,
            media_type: mt.to_string(),
            config_digest: String::new(),
            platform: None,
            annotations: BTreeMap::new(),
        };
        self.tag_image(&desc, tag);
        desc
    }

    /// A linux/amd64 OCI image of `layers`, tagged `tag`: the image most
    /// tests need.
    pub fn add_tagged_image(&mut self, layers: &[BuiltLayer], tag: &str) -> ImageDesc {
        let img = self.add_image(layers, "linux", "amd64", None, false);
        self.tag_image(&img, tag);
        img
    }

    /// An OCI index, tagged `tag`, of a linux/amd64 image of `amd64`, a
    /// linux/arm64/v8 image of `arm64` and a buildx attestation of the
    /// amd64 image (which a platform choice must never pick).
    pub fn add_multi_platform_index(
        &mut self,
        amd64: &[BuiltLayer],
        arm64: &[BuiltLayer],
        tag: &str,
    ) -> MultiPlatform {
        let amd64 = self.add_image(amd64, "linux", "amd64", None, false);
        let arm64 = self.add_image(arm64, "linux", "arm64", Some("v8"), false);
        let attestation = self.add_attestation(&amd64);
        let index = self.tag_index(
            &[
                (amd64.clone(), None),
                (arm64.clone(), None),
                (attestation.clone(), None),
            ],
            tag,
            false,
        );
        MultiPlatform {
            amd64,
            arm64,
            attestation,
            index,
        }
    }

    /// A Docker schema 2 linux/amd64 image of `amd64`, tagged `image_tag`,
    /// and a Docker manifest list, tagged `list_tag`, of it and a
    /// linux/arm64/v8 image of `arm64` (that platform stated in the list).
    pub fn add_docker_list(
        &mut self,
        amd64: &[BuiltLayer],
        arm64: &[BuiltLayer],
        image_tag: &str,
        list_tag: &str,
    ) -> DockerList {
        let image = self.add_image(amd64, "linux", "amd64", None, true);
        self.tag_image(&image, image_tag);
        let arm64 = self.add_image(arm64, "linux", "arm64", Some("v8"), true);
        let list = self.tag_index(
            &[
                (image.clone(), None),
                (arm64.clone(), Some(("linux", "arm64", Some("v8")))),
            ],
            list_tag,
            true,
        );
        DockerList { image, arm64, list }
    }

    fn write_index(&self) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": self.index_entries.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        });
        let tmp = self.dir.join(".index.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&index).unwrap()).expect("write index.json");
        fs::rename(&tmp, self.dir.join("index.json")).expect("rename index.json");
    }
}
