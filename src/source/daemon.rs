//! `docker-daemon:IMAGE` and `podman:IMAGE`: an image as it sits in a local
//! engine, read through the Docker Engine API over the engine's unix socket
//! (`DOCKER_HOST`, default `/var/run/docker.sock`; for `podman:`,
//! `CONTAINER_HOST`, default Podman's socket, which serves the same API).
//!
//! # One pass
//!
//! The engine has no call that serves one layer: `GET /images/{name}/get`
//! exports the whole image as one tar, `docker save`'s format, with the
//! `manifest.json` that says which member is which layer at its end (Podman
//! and Docker before 25 write the layers first, the config, then
//! `manifest.json`). So this is a [`OnePassSource`]: `resolve` asks the
//! engine's inspect call what it knows up front (platform, diff_ids, image
//! ID), and the measurer then calls [`OnePassSource::stream`] instead of
//! opening layers one by one. The stream is walked once, as it arrives:
//! every member that looks like a layer (a tar, or gzip or zstd) goes to the
//! measurer's visitor while it passes, small members (JSON) are kept in
//! memory, and when the archive ends its manifest says which member was
//! which layer. Nothing is written to disk.
//!
//! Both layouts the engines write are read: the legacy one (`<id>.tar` or
//! `<id>/layer.tar` members, symlinks between them) and the OCI layout of
//! Docker 25+ (`blobs/sha256/<hex>`, `index.json`, with a `manifest.json`
//! too); an archive without `manifest.json` is followed from `index.json`.
//!
//! # Sizes
//!
//! A layer is named by the digest of the member that held it: for the
//! uncompressed layers engines export, its diff_id, which the measurer
//! checks against the config. Its `size` is the member's length, the tar's;
//! what a push would upload is smaller, and the measurer estimates it (see
//! `measure::one_pass`).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bollard::Docker;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::docker_save::{
    LAYER_TAR, SavedConfig, SavedImage, layer_digest, parse_manifest_json, sniff_layer,
};
use super::manifest::{DOCKER_MANIFEST, check_document_size, check_single_platform};
use super::reference::{Engine, ImageRef};
use super::{
    BlobVisitor, ImageSource, LayerDescriptor, OnePassSource, PassingBlob, Provenance,
    ResolvedImage, StreamedImage,
};
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::source::platform::{Platform, PlatformSelector};
use crate::tarstream::{ArchiveMember, StreamError, TarStream, normalize_member};

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const PODMAN_ROOT_SOCKET: &str = "/run/podman/podman.sock";

/// Members that are not layers and are at most this long are kept in
/// memory until the archive's manifest says what they are: manifests and
/// configs (a config with a long history is some hundred KiB); and at most
/// this much of them in all, whatever the export holds.
const KEEP_LIMIT: u64 = 16 << 20;
const KEEP_TOTAL: u64 = 64 << 20;

/// How long the engine may take to answer a request (not to stream it).
const REQUEST_TIMEOUT_SECS: u64 = 120;

pub struct DaemonSource {
    reference: ImageRef,
    engine: Engine,
    /// The image as the engine names it.
    name: String,
    socket: PathBuf,
    client: tokio::sync::OnceCell<Docker>,
}

impl DaemonSource {
    pub fn open(reference: ImageRef) -> Result<Self, Error> {
        let ImageRef::Daemon { engine, name } = &reference else {
            return Err(Error::usage(format!("{reference}: not a daemon reference")));
        };
        Ok(DaemonSource {
            engine: *engine,
            name: name.clone(),
            socket: socket_path(*engine, |var| std::env::var_os(var))?,
            reference,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// A client speaking the newest API version both sides know (Podman
    /// speaks an older one than the crate's default).
    async fn client(&self) -> Result<&Docker, Error> {
        self.client
            .get_or_try_init(|| async {
                let path = self.socket.to_string_lossy();
                let docker = Docker::connect_with_unix(
                    &path,
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|e| self.engine_error(e))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| self.engine_error(e))
            })
            .await
    }

    /// An engine's answer as an error of the right kind, naming the socket
    /// when it could not be reached.
    fn engine_error(&self, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as E;
        let what = &self.reference;
        let kind = match &e {
            E::DockerResponseServerError { status_code, .. } => match status_code {
                404 => Kind::NotFound,
                401 | 403 => Kind::Unauthorized,
                400..=499 => Kind::Usage,
                _ => Kind::Transient,
            },
            E::JsonDataError { .. } | E::JsonSerdeError { .. } => Kind::Corrupt,
            _ => {
                let var = match self.engine {
                    Engine::Docker => "DOCKER_HOST",
                    Engine::Podman => "CONTAINER_HOST",
                };
                return Error::transient(format!(
                    "{what}: cannot talk to the engine at unix://{} (is it running? {var} names another socket)",
                    self.socket.display()
                ))
                .with_source(e);
            }
        };
        Error::new(kind, what).with_source(e)
    }
}

/// The engine's socket: `DOCKER_HOST` (or, for Podman, `CONTAINER_HOST`)
/// when it names a unix socket, else the engine's usual place. `env` reads
/// the environment.
fn socket_path(
    engine: Engine,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, Error> {
    let var = match engine {
        Engine::Docker => "DOCKER_HOST",
        Engine::Podman => "CONTAINER_HOST",
    };
    let host = env(var).map(|h| h.to_string_lossy().into_owned());
    if let Some(host) = host.filter(|h| !h.is_empty()) {
        return match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(Error::usage(format!(
                "{var}={host}: {}: reads the local engine through a unix socket (unix:///PATH)",
                engine.prefix()
            ))),
        };
    }
    Ok(match engine {
        Engine::Docker => PathBuf::from(DOCKER_SOCKET),
        Engine::Podman => env("XDG_RUNTIME_DIR")
            .map(|d| Path::new(&d).join("podman/podman.sock"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(PODMAN_ROOT_SOCKET)),
    })
}

#[async_trait]
impl ImageSource for DaemonSource {
    fn reference(&self) -> String {
        self.reference.to_string()
    }

    /// What the engine says of the image before it is exported: enough to
    /// refuse a missing image or the wrong platform at once. The layer
    /// sizes and the config's length come from the export.
    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        let what = self.reference.to_string();
        let inspect = self
            .client()
            .await?
            .inspect_image(&self.name)
            .await
            .map_err(|e| self.engine_error(e))?;
        let platform = Platform::new(
            inspect.os.as_deref().unwrap_or_default(),
            inspect.architecture.as_deref().unwrap_or_default(),
            inspect.variant.as_deref().filter(|v| !v.is_empty()),
        );
        check_single_platform(&what, &platform, platforms)?;
        let diff_ids = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        let provenance = Provenance::from_map(|k| labels?.get(k).map(String::as_str));
        let id = inspect.id.unwrap_or_default();
        Ok(vec![ResolvedImage {
            reference: what,
            digest: id.clone(),
            index_digest: None,
            index_bytes: None,
            media_type: DOCKER_MANIFEST.to_string(),
            platform,
            manifest_bytes: 0,
            config_digest: id,
            config_bytes: 0,
            created: None,
            layers: diff_ids
                .iter()
                .map(|d| LayerDescriptor {
                    digest: d.clone(),
                    size: 0,
                    media_type: LAYER_TAR.to_string(),
                    urls: Vec::new(),
                })
                .collect(),
            diff_ids,
            // The inspect call carries no history; the export's config does.
            created_by: Vec::new(),
            locale_env: Vec::new(),
            provenance,
        }])
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        Err(Error::usage(format!(
            "{}: layer {} can only be read with the whole image (one-pass source)",
            self.reference, layer.digest
        )))
    }

    fn one_pass(&self) -> Option<&dyn OnePassSource> {
        Some(self)
    }
}

#[async_trait]
impl OnePassSource for DaemonSource {
    async fn stream(
        &self,
        image: &ResolvedImage,
        visit: BlobVisitor,
    ) -> Result<StreamedImage, Error> {
        let what = self.reference.to_string();
        let body = self.client().await?.export_image(&self.name);
        // Aborted when this future is dropped too (at the deadline): the
        // reader then sees the end of the export, and the walk's blocking
        // thread ends instead of waiting on a stalled engine.
        let (mut reader, pump) = ExportReader::start(body);
        let walked = tokio::task::spawn_blocking(move || {
            let walked = walk(&mut reader, visit);
            (walked, reader.failure.take())
        })
        .await;
        // The walk is over, whether the body is or not.
        drop(pump);
        let walked = walked.map_err(|e| {
            Error::corrupt(format!("{what}: reading the export crashed")).with_source(e)
        })?;
        let walked = match walked {
            (_, Some(engine_failure)) => return Err(self.engine_error(engine_failure)),
            (w, None) => w.map_err(|e| e.context(&what))?,
        };
        let streamed = walked.describe(&what, &self.name)?;
        if !image.diff_ids.is_empty() && streamed.image.diff_ids != image.diff_ids {
            return Err(Error::transient(format!(
                "{what}: the image changed while it was read (tagged anew?); run again"
            )));
        }
        Ok(streamed)
    }
}

/// Chunks of the export read ahead of the walk. The engine writes the tar
/// as fast as it reads its store while the walk hashes and parses it; with
/// no read-ahead the two take turns (an HTTP body holds one chunk). Chunks
/// are at most some tens of KiB, so this bounds memory to a few MiB.
const READ_AHEAD_CHUNKS: usize = 256;

type Chunk = Result<Bytes, bollard::errors::Error>;

/// The engine's export body as a blocking `Read`, for the tar walk on a
/// blocking thread, fed by a task that reads the body ahead of it.
struct ExportReader {
    chunks: tokio::sync::mpsc::Receiver<Chunk>,
    chunk: Bytes,
    /// The engine's own error, kept whole to tell a missing image from a
    /// broken connection.
    failure: Option<bollard::errors::Error>,
}

impl ExportReader {
    /// The reader, and the task that feeds it (it stops when the body ends,
    /// fails, or the reader is dropped).
    fn start(body: impl Stream<Item = Chunk> + Send + 'static) -> (ExportReader, AbortOnDrop) {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_CHUNKS);
        let pump = tokio::spawn(async move {
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        let reader = ExportReader {
            chunks: rx,
            chunk: Bytes::new(),
            failure: None,
        };
        (reader, AbortOnDrop(pump))
    }
}

/// A task that ends with its handle.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Read for ExportReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    let text = e.to_string();
                    self.failure = Some(e);
                    return Err(io::Error::other(text));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// `docker save` writes layers as plain tars.
/// A member handed to the visitor.
struct Passed {
    size: u64,
    media_type: &'static str,
}

/// What the walk saw.
struct Walked {
    visit: BlobVisitor,
    passed: HashMap<String, Passed>,
    /// Small members that did not look like layers, whole.
    kept: HashMap<String, Vec<u8>>,
    /// Symbolic and hard links: member → the member it points at.
    links: HashMap<String, String>,
}

/// Walks the export once, handing layers to `visit` as they pass. The
/// export's own tar goes through the same bounded reader as a layer's.
fn walk(reader: &mut dyn Read, visit: BlobVisitor) -> Result<Walked, Error> {
    let io_error = |e: io::Error| Error::io("reading the export", e);
    let corrupt = |e: StreamError| match e {
        StreamError::Read(e) => io_error(e),
        StreamError::Format { offset, message } => Error::corrupt(format!(
            "the export is a corrupt tar archive at offset {offset}: {message}"
        )),
    };
    let mut walked = Walked {
        visit,
        passed: HashMap::new(),
        kept: HashMap::new(),
        links: HashMap::new(),
    };
    let mut kept_bytes = 0;
    let mut stream = TarStream::new(reader);
    while let Some(member) = stream.next_member().map_err(corrupt)? {
        let name = normalize_member(&String::from_utf8_lossy(&member.name));
        let size = match member.as_archive_member(&name) {
            ArchiveMember::Link(target) => {
                walked.links.insert(name, target);
                continue;
            }
            ArchiveMember::Content(size) => size,
            ArchiveMember::Skipped => continue,
        };
        let mut head = Vec::with_capacity(512);
        stream.data(512).read_to_end(&mut head).map_err(io_error)?;
        let rest = size - head.len() as u64;
        if let Some(media_type) = sniff_layer(&head, size) {
            let mut reader = io::Cursor::new(head).chain(stream.data(rest));
            (walked.visit)(PassingBlob {
                name: &name,
                size,
                reader: &mut reader,
            })?;
            walked.passed.insert(name, Passed { size, media_type });
        } else if size <= KEEP_LIMIT && kept_bytes + size <= KEEP_TOTAL {
            kept_bytes += size;
            stream.data(rest).read_to_end(&mut head).map_err(io_error)?;
            walked.kept.insert(name, head);
        }
    }
    Ok(walked)
}

impl Walked {
    /// A member's name once links are followed (a bounded chain: a loop is
    /// corrupt data, not a reason to spin).
    fn canonical(&self, member: &str) -> String {
        let mut name = normalize_member(member);
        for _ in 0..16 {
            match self.links.get(&name) {
                Some(target) => name = target.clone(),
                None => break,
            }
        }
        name
    }

    fn kept(&self, what: &str, member: &str) -> Result<&[u8], Error> {
        self.kept
            .get(&self.canonical(member))
            .map(Vec::as_slice)
            .ok_or_else(|| Error::corrupt(format!("{what}: the export has no {member}")))
    }

    /// A JSON document of the export (`manifest.json`, `index.json`, a
    /// manifest, a config), held to the cap every image document has.
    fn document(&self, what: &str, member: &str) -> Result<&[u8], Error> {
        let bytes = self.kept(what, member)?;
        check_document_size(what, member, bytes.len() as u64)?;
        Ok(bytes)
    }

    /// The image the archive describes: its config member and its layer
    /// members, in order, from `manifest.json`, else from `index.json`.
    fn saved_image(&self, what: &str, name: &str) -> Result<SavedImage, Error> {
        let invalid = |file: &str, e: serde_json::Error| {
            Error::corrupt(format!("{what}: the export's {file} is invalid")).with_source(e)
        };
        if self.kept.contains_key("manifest.json") {
            let entries = parse_manifest_json(what, self.document(what, "manifest.json")?)?;
            return pick_saved(what, name, entries);
        }
        let index: oci_spec::image::ImageIndex =
            crate::go_json::from_slice(self.document(what, "index.json").map_err(|_| {
                Error::corrupt(format!(
                    "{what}: the export has neither manifest.json nor index.json"
                ))
            })?)
            .map_err(|e| invalid("index.json", e))?;
        let first = index.manifests().first().ok_or_else(|| {
            Error::corrupt(format!("{what}: the export's index.json lists no image"))
        })?;
        let blob = |d: &oci_spec::image::Digest| -> Result<String, Error> {
            Ok(Digest::parse(d.as_ref())
                .map_err(|e| e.context(what))?
                .blob_path())
        };
        let manifest: oci_spec::image::ImageManifest =
            crate::go_json::from_slice(self.document(what, &blob(first.digest())?)?)
                .map_err(|e| invalid("image manifest", e))?;
        Ok(SavedImage {
            config: blob(manifest.config().digest())?,
            repo_tags: None,
            layers: manifest
                .layers()
                .iter()
                .map(|l| blob(l.digest()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Matches the members that passed to the layers the archive names.
    fn describe(mut self, what: &str, name: &str) -> Result<StreamedImage, Error> {
        let saved = self.saved_image(what, name)?;
        let config = SavedConfig::read(
            what,
            self.document(what, &saved.config)?,
            saved.layers.len(),
        )?;
        let diff_ids = &config.parsed.diff_ids;
        let mut layers = Vec::with_capacity(saved.layers.len());
        let mut layer_blobs = Vec::with_capacity(saved.layers.len());
        for (i, member) in saved.layers.iter().enumerate() {
            let blob = self.canonical(member);
            self.pass_kept(what, &blob)?;
            let passed = self.passed.get(&blob).ok_or_else(|| {
                Error::corrupt(format!("{what}: the export has no layer {member}"))
            })?;
            // Engines export layers by diff_id or by their blob's path;
            // a compressed member named otherwise is told by its stream's
            // digest when the layer is checked.
            let digest = layer_digest(
                &blob,
                passed.media_type,
                diff_ids.get(i).map(String::as_str),
            )
            .unwrap_or_default();
            layers.push(LayerDescriptor {
                digest,
                size: passed.size,
                media_type: passed.media_type.to_string(),
                urls: Vec::new(),
            });
            layer_blobs.push(blob);
        }
        Ok(StreamedImage {
            image: config.into_image(what, layers),
            layer_blobs,
        })
    }

    /// A layer that did not look like one as it passed (and so was kept)
    /// is measured from memory now that the archive says what it is.
    fn pass_kept(&mut self, what: &str, blob: &str) -> Result<(), Error> {
        if self.passed.contains_key(blob) {
            return Ok(());
        }
        let Some(bytes) = self.kept.remove(blob) else {
            return Ok(());
        };
        let size = bytes.len() as u64;
        (self.visit)(PassingBlob {
            name: blob,
            size,
            reader: &mut bytes.as_slice(),
        })
        .map_err(|e| e.context(what))?;
        self.passed.insert(
            blob.to_string(),
            Passed {
                size,
                media_type: LAYER_TAR,
            },
        );
        Ok(())
    }
}

/// The entry for the image asked for: an export of one name holds one.
fn pick_saved(what: &str, name: &str, mut entries: Vec<SavedImage>) -> Result<SavedImage, Error> {
    let count = entries.len();
    let at = if count == 1 {
        Some(0)
    } else {
        entries
            .iter()
            .position(|e| e.repo_tags.iter().flatten().any(|t| t == name))
    };
    match at {
        Some(i) => Ok(entries.swap_remove(i)),
        None if count == 0 => Err(Error::corrupt(format!(
            "{what}: the export's manifest.json lists no image"
        ))),
        None => Err(Error::corrupt(format!(
            "{what}: the export holds {count} images, none tagged {name}"
        ))),
    }
}

#[cfg(test)]
mod tests;
