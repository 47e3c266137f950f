//! Registries, through the oci-client crate: no Docker daemon involved.
//!
//! What a registry host needs before the first request (CA certificates,
//! credentials, whether a loopback registry speaks plain HTTP, the HTTP
//! client and its connection pool) is set up once per host by a
//! [`RegistryPool`] and shared by every source opened on that host: a
//! server opening thousands of references against a few registries pays
//! for it a few times, not thousands.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::sync::OnceCell;

use super::auth::{self, Credential, Secret};
use super::manifest::ACCEPTED_MANIFESTS;
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::digest::Digest;
use crate::error::{Error, Kind, chain};
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `HOST:PORT`s that speak plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust, besides the system store.
    pub ca_files: Vec<PathBuf>,
    /// From `--username` and `--password-stdin`.
    pub basic: Option<(String, String)>,
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

fn load_certs(opts: &RegistryOptions) -> Result<Vec<Certificate>, Error> {
    let mut files = opts.ca_files.clone();
    // rustls does not read SSL_CERT_FILE by itself everywhere; OpenSSL-based
    // tools (curl, skopeo) do, so users expect it.
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        files.push(PathBuf::from(f));
    }
    files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
                .map_err(|e| Error::usage(format!("CA file {}", f.display())).with_source(e))
        })
        .collect()
}

fn http_client(certs: &[Certificate]) -> Result<reqwest::Client, Error> {
    let mut roots = Vec::new();
    for c in certs {
        for cert in reqwest::Certificate::from_pem_bundle(&c.data)
            .map_err(|e| Error::usage("invalid CA certificate").with_source(e))?
        {
            roots.push(cert);
        }
    }
    reqwest::Client::builder()
        .tls_certs_merge(roots)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("sizeguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::usage("HTTP client").with_source(e))
}

/// Loopback registries may speak plain HTTP (as Docker allows them to).
/// One plain request tells: a registry answers `/v2/` with 200 or 401 and
/// its API-version header, a TLS server with 400. A bare socket keeps the
/// probe to one round trip, with no TLS set-up.
async fn probe_scheme(host: &str) -> Result<&'static str, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let unreachable = || Error::transient(format!("registry {host} unreachable"));
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(host).await?;
        conn.write_all(
            format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = vec![0u8; 2048];
        let mut n = 0;
        while n < buf.len() {
            let k = conn.read(&mut buf[n..]).await?;
            if k == 0 || buf[..n + k].windows(4).any(|w| w == b"\r\n\r\n") {
                n += k;
                break;
            }
            n += k;
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase())
    };
    let head = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| Error::transient(format!("registry {host} unreachable: timed out")))?
        .map_err(|e| unreachable().with_source(e))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let is_registry = head.starts_with("http/1.")
        && (head.contains("docker-distribution-api-version") || status == "200" || status == "401");
    Ok(if is_registry { "http" } else { "https" })
}

/// Exchanges an OAuth2 refresh token (identity token) for an access token,
/// as `docker login` tokens for ACR and others require.
async fn exchange_identity_token(
    http: &reqwest::Client,
    scheme: &str,
    reference: &Reference,
    token: &str,
    source: &str,
) -> Result<String, Error> {
    let host = reference.resolve_registry();
    let ping = http
        .get(format!("{scheme}://{host}/v2/"))
        .send()
        .await
        .map_err(|e| Error::transient(format!("registry {host} unreachable")).with_source(e))?;
    let challenge = ping
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::parse_bearer_challenge)
        .ok_or_else(|| {
            Error::unauthorized(format!(
                "{host}: an identity token ({source}) needs a Bearer token service, but the registry offers none"
            ))
        })?;
    let scope = format!("repository:{}:pull", reference.repository());
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", "sizeguard"),
        ("refresh_token", token),
        ("scope", scope.as_str()),
    ];
    if let Some(service) = challenge.get("service") {
        form.push(("service", service));
    }
    let resp = http
        .post(&challenge["realm"])
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            Error::transient(format!("{host}: token service unreachable")).with_source(e)
        })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::new(
            status_kind(status.as_u16()).unwrap_or(Kind::Unauthorized),
            format!(
                "{host}: identity token from {source} was refused by the token service (HTTP {status})"
            ),
        ));
    }
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        access_token: Option<String>,
        token: Option<String>,
    }
    let answer: TokenAnswer = resp.json().await.map_err(|e| {
        Error::corrupt(format!("{host}: unreadable token service answer")).with_source(e)
    })?;
    answer.access_token.or(answer.token).ok_or_else(|| {
        Error::corrupt(format!(
            "{host}: the token service returned no access token"
        ))
    })
}

/// What an HTTP status says about the next attempt, when it says anything.
fn status_kind(code: u16) -> Option<Kind> {
    match code {
        401 | 403 => Some(Kind::Unauthorized),
        404 => Some(Kind::NotFound),
        429 | 500..=599 => Some(Kind::Transient),
        _ => None,
    }
}

/// Connections to registries, one per host, shared by every source opened
/// through the same pool.
#[derive(Default)]
pub struct RegistryPool {
    opts: RegistryOptions,
    /// Host → its connection, set up by the first reference that needs it
    /// (concurrent openers wait for that one set-up). A failed set-up is
    /// not kept: the next open tries again.
    hosts: Mutex<HashMap<String, Arc<OnceCell<Arc<RegistryHost>>>>>,
}

impl RegistryPool {
    pub fn new(opts: RegistryOptions) -> Self {
        RegistryPool {
            opts,
            hosts: Mutex::default(),
        }
    }

    /// A source for a registry reference; `name` is how it was given.
    pub async fn open(
        &self,
        name: ImageRef,
        reference: Reference,
    ) -> Result<RegistrySource, Error> {
        let host = self.host(&reference).await?;
        let (client, auth) = host.client_for(&reference).await?;
        Ok(RegistrySource {
            name,
            reference,
            host,
            client,
            auth,
        })
    }

    /// The connection to a reference's registry host, set up on first use.
    pub async fn host(&self, reference: &Reference) -> Result<Arc<RegistryHost>, Error> {
        let key = reference.resolve_registry().to_string();
        let cell = self
            .hosts
            .lock()
            .expect("registry pool lock")
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            RegistryHost::connect(reference, &self.opts)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }
}

/// Everything about one registry host that does not depend on the
/// repository: certificates, scheme, credential, the HTTP client.
pub struct RegistryHost {
    host: String,
    scheme: &'static str,
    credential: Credential,
    /// Kept for the per-repository clients identity tokens need.
    certs: Vec<Certificate>,
    /// The client every source on this host shares (with its connection
    /// pool and oci-client's token cache).
    client: Client,
    /// For the identity-token exchange, which oci-client does not do.
    http: Option<reqwest::Client>,
}

impl RegistryHost {
    async fn connect(reference: &Reference, opts: &RegistryOptions) -> Result<Self, Error> {
        let host = reference.resolve_registry().to_string();
        let certs = load_certs(opts)?;
        let scheme = if opts
            .insecure
            .iter()
            .any(|h| h == &host || h == reference.registry())
        {
            "http"
        } else if is_loopback(&host) {
            probe_scheme(&host).await?
        } else {
            "https"
        };
        let credential = auth::lookup(reference.registry(), opts.basic.clone())?;
        let http = match credential.secret {
            Secret::IdentityToken(_) => Some(http_client(&certs)?),
            _ => None,
        };
        let client = oci_client(&host, scheme, &certs)?;
        Ok(RegistryHost {
            host,
            scheme,
            credential,
            certs,
            client,
            http,
        })
    }

    /// The client and authentication for one reference. oci-client keeps
    /// one authentication per registry, and an identity token is exchanged
    /// for an access token scoped to one repository, so such a reference
    /// gets a client of its own (with a fresh token, as tokens expire);
    /// every other reference shares the host's.
    async fn client_for(&self, reference: &Reference) -> Result<(Client, RegistryAuth), Error> {
        Ok(match &self.credential.secret {
            Secret::Anonymous => (self.client.clone(), RegistryAuth::Anonymous),
            Secret::Basic { username, password } => (
                self.client.clone(),
                RegistryAuth::Basic(username.clone(), password.clone()),
            ),
            Secret::IdentityToken(t) => {
                let http = self
                    .http
                    .as_ref()
                    .expect("an HTTP client for identity tokens");
                let token = exchange_identity_token(
                    http,
                    self.scheme,
                    reference,
                    t,
                    &self.credential.source,
                )
                .await?;
                let client = oci_client(&self.host, self.scheme, &self.certs)?;
                (client, RegistryAuth::Bearer(token))
            }
        })
    }
}

fn oci_client(host: &str, scheme: &str, certs: &[Certificate]) -> Result<Client, Error> {
    let config = ClientConfig {
        protocol: if scheme == "http" {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        },
        extra_root_certificates: certs.to_vec(),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("sizeguard/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    Client::try_from(config).map_err(|e| Error::usage("registry client").with_source(e))
}

pub struct RegistrySource {
    name: ImageRef,
    reference: Reference,
    host: Arc<RegistryHost>,
    client: Client,
    auth: RegistryAuth,
}

impl RegistrySource {
    /// One line that says what failed, where, and with which credentials;
    /// its kind says whether trying again may help.
    fn explain(&self, what: &str, e: OciDistributionError) -> Error {
        let who = &self.host.credential.source;
        let host = self.reference.resolve_registry();
        let error = match &e {
            OciDistributionError::AuthenticationFailure(reason) => Error::unauthorized(format!(
                "authentication failed at {host} (credentials: {who}): {reason}"
            )),
            OciDistributionError::UnauthorizedError { url } => {
                Error::unauthorized(format!("401 unauthorized at {url} (credentials: {who})"))
            }
            OciDistributionError::ImageManifestNotFoundError(m) => {
                Error::not_found(format!("manifest unknown (404): {m}"))
            }
            OciDistributionError::ServerError { code, url, message } => {
                let kind = status_kind(*code).unwrap_or(Kind::Corrupt);
                Error::new(
                    kind,
                    match code {
                        401 => format!("401 unauthorized at {url} (credentials: {who}): {message}"),
                        403 => format!("403 denied at {url} (credentials: {who}): {message}"),
                        404 => format!("404 not found at {url}: {message}"),
                        c => format!("HTTP {c} from {url}: {message}"),
                    },
                )
            }
            OciDistributionError::RegistryError { envelope, url } => {
                let text = envelope.to_string();
                match envelope.errors.first().map(|e| &e.code) {
                    Some(OciErrorCode::Unauthorized) => Error::unauthorized(format!(
                        "401 unauthorized at {url} (credentials: {who}): {text}"
                    )),
                    Some(OciErrorCode::Denied) => Error::unauthorized(format!(
                        "403 denied at {url} (credentials: {who}): {text}"
                    )),
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown,
                    ) => Error::not_found(format!("not found at {url}: {text}")),
                    Some(OciErrorCode::Toomanyrequests) => {
                        Error::transient(format!("registry error at {url}: {text}"))
                    }
                    _ => Error::corrupt(format!("registry error at {url}: {text}")),
                }
            }
            OciDistributionError::RequestError(r) => {
                let why = chain(r);
                if why.contains("certificate") {
                    // Trying again cannot make a certificate trusted.
                    Error::corrupt(format!(
                        "registry {host}: TLS certificate not trusted ({why}); pass its CA with --ca-file or SSL_CERT_FILE"
                    ))
                } else {
                    Error::transient(format!("registry {host} unreachable")).with_source(e)
                }
            }
            OciDistributionError::IoError(_) => {
                Error::transient(format!("registry {host}")).with_source(e)
            }
            _ => Error::corrupt(format!("registry {host}")).with_source(e),
        };
        error.context(what)
    }

    fn descriptor(digest: &str, media_type: &str, size: i64) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            urls: None,
            annotations: None,
            ..Default::default()
        }
    }

    /// The registry host's shared connection (tests compare them).
    pub fn host(&self) -> &Arc<RegistryHost> {
        &self.host
    }
}

#[async_trait]
impl ManifestStore for RegistrySource {
    async fn root(&self) -> Result<Blob, Error> {
        let what = self.reference.whole();
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&self.reference, &self.auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| self.explain(&what, e))?;
        Ok(Blob {
            bytes,
            digest: Digest::parse(&digest).map_err(|e| e.context(&what))?,
            media_type: None,
        })
    }

    async fn fetch(
        &self,
        digest: &Digest,
        media_type: &str,
        is_manifest: bool,
    ) -> Result<Blob, Error> {
        let what = format!("{}@{digest}", self.reference.whole());
        let bytes: bytes::Bytes = if is_manifest {
            let r = self.reference.clone_with_digest(digest.to_string());
            self.client
                .pull_manifest_raw(&r, &self.auth, ACCEPTED_MANIFESTS)
                .await
                .map_err(|e| self.explain(&what, e))?
                .0
        } else {
            let mut out = Vec::new();
            self.client
                .pull_blob(
                    &self.reference,
                    &Self::descriptor(&digest.to_string(), media_type, 0),
                    &mut out,
                )
                .await
                .map_err(|e| self.explain(&what, e))?;
            out.into()
        };
        Ok(Blob {
            bytes,
            digest: digest.clone(),
            media_type: Some(media_type.to_string()),
        })
    }
}

#[async_trait]
impl ImageSource for RegistrySource {
    fn reference(&self) -> String {
        self.name.to_string()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        super::resolve(self, platforms).await
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let desc = Self::descriptor(&layer.digest, &layer.media_type, layer.size as i64);
        let stream = self
            .client
            .pull_blob_stream(&self.reference, &desc)
            .await
            .map_err(|e| self.explain(&format!("layer {}", layer.digest), e))?;
        if let Some(len) = stream.content_length
            && len != layer.size
        {
            return Err(Error::corrupt(format!(
                "layer {}: blob is truncated or padded: the registry serves {len} bytes, the descriptor says {}",
                layer.digest, layer.size
            )));
        }
        // The download (and oci-client's digest check, which hashes every
        // chunk) runs in a task of its own, on the async runtime's threads;
        // the analyzer's blocking thread only inflates and parses. A few
        // chunks of read-ahead keep both busy without buffering the layer.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let mut body = stream.stream;
        tokio::spawn(async move {
            while let Some(item) = body.next().await {
                let item = item.map_err(|e| {
                    if e.get_ref()
                        .is_some_and(|inner| inner.is::<reqwest::Error>())
                    {
                        e
                    } else {
                        // oci-client's verifier: a mismatch at end of stream.
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("digest mismatch: {e}"),
                        )
                    }
                });
                let failed = item.is_err();
                // The analyzer stopped reading (done, failed, cancelled).
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(ChannelReader::new(rx)))
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.blob_range(layer, offset, len).await
    }

    fn verifies_digests(&self) -> bool {
        true
    }
}

impl RegistrySource {
    /// A byte range of a blob (HTTP `Range`); `None` when the registry
    /// answers with the whole blob instead.
    pub async fn blob_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        use oci_client::client::BlobResponse;
        let what = format!("layer {}", layer.digest);
        let desc = Self::descriptor(&layer.digest, &layer.media_type, layer.size as i64);
        let resp = self
            .client
            .pull_blob_stream_partial(&self.reference, &desc, offset, Some(len))
            .await
            .map_err(|e| self.explain(&what, e))?;
        let mut stream = match resp {
            BlobResponse::Partial(s) => s.stream,
            // Dropping the stream closes the connection: nothing more is read.
            BlobResponse::Full(_) => return Ok(None),
        };
        let mut buf = Vec::with_capacity(len as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::io(&what, e))?;
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > len {
                return Ok(None);
            }
        }
        Ok(Some(buf))
    }
}

impl std::fmt::Debug for RegistrySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RegistrySource({}, {}, {})",
            self.reference.whole(),
            self.host.scheme,
            self.host.credential.source
        )
    }
}

/// A blocking `Read` over chunks sent by an async task: the bridge between
/// a download on the runtime and an analyzer on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelReader {
            rx,
            chunk: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                // The sender finished: end of stream.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        bytes::Buf::advance(&mut self.chunk, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:35117"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(status_kind(401), Some(Kind::Unauthorized));
        assert_eq!(status_kind(403), Some(Kind::Unauthorized));
        assert_eq!(status_kind(404), Some(Kind::NotFound));
        assert_eq!(status_kind(429), Some(Kind::Transient));
        assert_eq!(status_kind(503), Some(Kind::Transient));
        assert_eq!(status_kind(400), None);
    }
}
