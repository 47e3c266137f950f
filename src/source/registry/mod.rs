//! Registries, over HTTP: no Docker daemon involved. oci-client's
//! reference grammar names images; the requests are sizeguard's own, made
//! with one HTTP client per registry host whose redirect policy and DNS
//! resolver enforce where a registry may send it ([`egress`]).
//!
//! What a registry host needs before the first request (CA certificates,
//! credentials, whether a loopback registry speaks plain HTTP, the HTTP
//! client and its connection pool) is set up once per host by a
//! [`RegistryPool`] and shared by every source opened on that host: a
//! server opening thousands of references against a few registries pays
//! for it a few times, not thousands.
//!
//! Every request runs under the run's [`Deadline`] (`--timeout`) and is
//! tried again on connection errors, stalls, 429 and 5xx ([`retrying`]).
//! [`http`] holds the request helpers: the `/v2/` probe, token requests
//! (whose credentials follow the rules there), documents (capped at
//! [`MAX_DOCUMENT_BYTES`]); [`blob`] streams layers and resumes broken
//! downloads. oci-client's own client is not used for requests: it cannot
//! be given a redirect policy or a resolver, and hides the headers
//! (`Retry-After`, `Content-Range`) the retries need.

mod blob;
pub mod egress;
pub mod http;
pub mod repository;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use oci_client::Reference;
use reqwest::header::{self, HeaderValue};
use tokio::sync::OnceCell;

use self::egress::Egress;
use self::http::{Challenge, CredentialRules, Decision};
use super::auth::{self, Secret};
use super::manifest::{ACCEPTED_MANIFESTS, MAX_DOCUMENT_BYTES};
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::retry::{DEFAULT_RUN_TIMEOUT, Deadline, Failed, retrying};
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `HOST:PORT`s that speak plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust, besides the system store.
    pub ca_files: Vec<PathBuf>,
    /// From `--username` and `--password-stdin` (or a `serve` registry's
    /// password file), with the one host they are for.
    pub basic: Option<auth::Explicit>,
    /// How long the whole run may take (`--timeout`), from the moment the
    /// pool is made; [`DEFAULT_RUN_TIMEOUT`] when not given.
    pub timeout: Option<Duration>,
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

/// The CA certificates to trust besides the system store, as read from
/// their PEM files.
fn load_certs(opts: &RegistryOptions) -> Result<Vec<reqwest::Certificate>, Error> {
    let mut files = opts.ca_files.clone();
    // rustls does not read SSL_CERT_FILE by itself everywhere; OpenSSL-based
    // tools (curl, skopeo) do, so users expect it.
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        files.push(PathBuf::from(f));
    }
    let mut roots = Vec::new();
    for f in &files {
        let data = std::fs::read(f)
            .map_err(|e| Error::usage(format!("CA file {}", f.display())).with_source(e))?;
        roots.extend(
            reqwest::Certificate::from_pem_bundle(&data)
                .map_err(|e| Error::usage("invalid CA certificate").with_source(e))?,
        );
    }
    Ok(roots)
}

/// The one client of a registry host: every request for it, whatever
/// host the registry sends it on to, goes through `egress`'s checks.
fn http_client(
    certs: Vec<reqwest::Certificate>,
    egress: &Arc<Egress>,
) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .tls_certs_merge(certs)
        .redirect(egress.redirect_policy())
        .dns_resolver(egress.resolver())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("sizeguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::usage("HTTP client").with_source(e))
}

/// Loopback registries may speak plain HTTP (as Docker allows them to).
/// One plain request tells: a registry answers `/v2/` with 200 or 401 and
/// its API-version header, a TLS server with 400 or by closing or resetting
/// the connection. A bare socket keeps the probe to one round trip, with
/// no TLS set-up.
async fn probe_scheme(host: &str) -> Result<&'static str, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let unreachable = || Error::transient(format!("registry {host} unreachable"));
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(host),
    );
    let mut conn = connect
        .await
        .map_err(|_| Error::transient(format!("registry {host} unreachable: timed out")))?
        .map_err(|e| unreachable().with_source(e))?;
    let exchange = async {
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
    let head = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(head)) => head,
        // Something listens, and will not speak plain HTTP: a TLS server
        // that resets such connections (or closes them unanswered).
        Ok(Err(e)) => {
            tracing::debug!("{host}: plain HTTP probe failed ({e}); trying HTTPS");
            return Ok("https");
        }
        Err(_) => {
            return Err(Error::transient(format!(
                "registry {host} unreachable: timed out"
            )));
        }
    };
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let is_registry = head.starts_with("http/1.")
        && (head.contains("docker-distribution-api-version") || status == "200" || status == "401");
    Ok(if is_registry { "http" } else { "https" })
}

/// Connections to registries, one per host, shared by every source opened
/// through the same pool.
pub struct RegistryPool {
    opts: RegistryOptions,
    /// The run's: every request of every source ends by it.
    deadline: Deadline,
    /// Host → its connection, set up by the first reference that needs it
    /// (concurrent openers wait for that one set-up). A failed set-up is
    /// not kept: the next open tries again.
    hosts: Mutex<HashMap<String, Arc<OnceCell<Arc<RegistryHost>>>>>,
}

impl Default for RegistryPool {
    fn default() -> Self {
        Self::new(RegistryOptions::default())
    }
}

impl RegistryPool {
    pub fn new(opts: RegistryOptions) -> Self {
        RegistryPool {
            deadline: Deadline::after(opts.timeout.unwrap_or(DEFAULT_RUN_TIMEOUT)),
            opts,
            hosts: Mutex::default(),
        }
    }

    /// The run's deadline.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// A source for a registry reference; `name` is how it was given.
    /// Nothing is asked of the registry until the source is used.
    pub async fn open(
        &self,
        name: ImageRef,
        reference: Reference,
    ) -> Result<RegistrySource, Error> {
        let host = self.host(&reference).await?;
        Ok(RegistrySource {
            name,
            session: Arc::new(Session {
                reference,
                host,
                auth: tokio::sync::Mutex::new(None),
                push: false,
            }),
        })
    }

    /// The connection to a reference's registry host, set up on first use.
    pub async fn host(&self, reference: &Reference) -> Result<Arc<RegistryHost>, Error> {
        let key = reference.resolve_registry().to_string();
        let cell = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let what = format!("connecting to {}", reference.resolve_registry());
        let connect = cell.get_or_try_init(|| async {
            RegistryHost::connect(reference, &self.opts, self.deadline)
                .await
                .map(Arc::new)
        });
        self.deadline.run(what, connect).await?.cloned()
    }
}

/// Everything about one registry host that does not depend on the
/// repository: certificates, scheme, credential, the HTTP clients.
pub struct RegistryHost {
    host: String,
    scheme: &'static str,
    /// The credential and where it may go.
    rules: CredentialRules,
    /// How the registry asks to be authenticated, from its `/v2/` answer,
    /// asked for by the first source that needs it.
    challenge: OnceCell<Challenge>,
    /// The client every source on this host shares, with its connection
    /// pool; its redirects and name lookups go through `egress`.
    http: reqwest::Client,
    egress: Arc<Egress>,
    deadline: Deadline,
}

impl RegistryHost {
    async fn connect(
        reference: &Reference,
        opts: &RegistryOptions,
        deadline: Deadline,
    ) -> Result<Self, Error> {
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
        let credential = auth::lookup(reference.registry(), opts.basic.as_ref())?;
        let rules = CredentialRules::new(credential, &host, scheme, &opts.insecure)?;
        let egress = Egress::for_registry(&host);
        Ok(RegistryHost {
            http: http_client(certs, &egress)?,
            egress,
            host,
            scheme,
            rules,
            challenge: OnceCell::new(),
            deadline,
        })
    }

    fn who(&self) -> &str {
        &self.rules.credential.source
    }

    /// `SCHEME://HOST/v2/PATH`.
    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{path}", self.scheme, self.host)
    }

    /// How the registry asks to be authenticated: its `/v2/` answer's
    /// challenge, asked for once.
    async fn challenge(&self) -> Result<Challenge, Error> {
        let what = format!("the API version check of {}", self.host);
        self.challenge
            .get_or_try_init(|| {
                retrying(&self.deadline, &what, || async {
                    let req = self.http.get(self.url(""));
                    let resp = http::send(req, &what, &self.host, &self.deadline).await?;
                    if http::is_retryable(resp.status()) {
                        return Err(http::status_failure(resp, &what, self.who()).await);
                    }
                    Ok(Challenge::of(&resp))
                })
            })
            .await
            .cloned()
    }

    /// The authentication for one reference: a Bearer token from the
    /// registry's token service, Basic credentials when the registry asks
    /// for them and may have them, or none.
    async fn authenticate(&self, reference: &Reference, push: bool) -> Result<Auth, Error> {
        let what = reference.whole();
        match self.challenge().await? {
            Challenge::None => Ok(Auth::anonymous(None)),
            Challenge::Basic => {
                let url = reqwest::Url::parse(&self.url(""))
                    .map_err(|e| Error::usage(format!("registry {}", self.host)).with_source(e))?;
                match (self.rules.decide(&url)?, &self.rules.credential.secret) {
                    (Decision::Send(_), Secret::Basic { username, password }) => Ok(Auth {
                        bearer: false,
                        header: http::basic_header(username, password),
                        withheld: None,
                    }),
                    (Decision::Send(_), Secret::IdentityToken(_)) => {
                        Err(Error::unauthorized(format!(
                            "{}: an identity token ({}) needs a Bearer token service, but the registry offers none",
                            self.host,
                            self.who()
                        )))
                    }
                    (Decision::Withhold(why), _) => Ok(Auth::anonymous(Some(why))),
                    (Decision::Send(_), Secret::Anonymous) => Ok(Auth::anonymous(None)),
                }
            }
            Challenge::Bearer(params) => {
                let access = if push { "pull,push" } else { "pull" };
                let scope = format!("repository:{}:{access}", reference.repository());
                let token = retrying(&self.deadline, &what, || {
                    http::fetch_token(
                        &self.http,
                        &self.egress,
                        &self.rules,
                        &params,
                        &scope,
                        &what,
                        &self.deadline,
                    )
                })
                .await?;
                Ok(Auth {
                    header: http::sensitive(&format!("Bearer {}", token.value)),
                    bearer: true,
                    withheld: token.withheld,
                })
            }
        }
    }
}

/// How one source's requests are authenticated.
#[derive(Clone)]
struct Auth {
    /// A Bearer token, which may expire (a 401 asks for a new one).
    bearer: bool,
    /// The `Authorization` header requests carry.
    header: Option<HeaderValue>,
    /// Why the credentials were not used, when they were not.
    withheld: Option<String>,
}

impl Auth {
    fn anonymous(withheld: Option<String>) -> Self {
        Auth {
            bearer: false,
            header: None,
            withheld,
        }
    }
}

pub struct RegistrySource {
    name: ImageRef,
    session: Arc<Session>,
}

/// One repository on a registry host and the authentication its requests
/// carry: shared by a source and its layer downloads (which renew an
/// expired token in the middle of a resumed download).
struct Session {
    reference: Reference,
    host: Arc<RegistryHost>,
    /// Set by the first request that needs it; renewed on a 401.
    auth: tokio::sync::Mutex<Option<Auth>>,
    /// Its token covers pushes too.
    push: bool,
}

impl RegistrySource {
    /// The registry host's shared connection (tests compare them).
    pub fn host(&self) -> &Arc<RegistryHost> {
        &self.session.host
    }

    fn deadline(&self) -> &Deadline {
        &self.session.host.deadline
    }

    async fn auth(&self, renew: bool) -> Result<Auth, Error> {
        self.session.auth(renew).await
    }

    /// Runs a request with the source's authentication; a 401 to a
    /// Bearer token gets a new token and one more try (tokens expire).
    async fn authorized<T, F, Fut>(&self, request: F) -> Result<T, Error>
    where
        F: Fn(Auth) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut auth = self.auth(false).await?;
        let mut result = request(auth.clone()).await;
        if let Err(e) = &result
            && e.kind() == Kind::Unauthorized
            && auth.bearer
        {
            tracing::info!("{}; asking for a new token", e.one_line());
            auth = self.auth(true).await?;
            result = request(auth.clone()).await;
        }
        result.map_err(|e| Self::with_withheld(e, &auth))
    }

    /// A refusal says why the credentials were not used, if they were not.
    fn with_withheld(e: Error, auth: &Auth) -> Error {
        match (&auth.withheld, e.kind()) {
            (Some(why), Kind::Unauthorized) => {
                Error::unauthorized(format!("{}; credentials withheld: {why}", e.one_line()))
            }
            _ => e,
        }
    }

    /// A manifest, read by sizeguard itself (oci-client reads one whole,
    /// however long): streamed and cut at [`MAX_DOCUMENT_BYTES`].
    async fn manifest(&self, reference: &Reference, auth: Auth) -> Result<Blob, Error> {
        let what = format!("manifest {}", reference.whole());
        let target = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let url = self
            .session
            .host
            .url(&format!("{}/manifests/{target}", reference.repository()));
        let deadline = self.deadline();
        let (bytes, media_type) = retrying(deadline, &what, || async {
            let mut req = self
                .session
                .host
                .http
                .get(&url)
                .header(header::ACCEPT, ACCEPTED_MANIFESTS.join(", "));
            if let Some(h) = &auth.header {
                req = req.header(header::AUTHORIZATION, h.clone());
            }
            let resp = http::send(req, &what, &self.session.host.host, deadline).await?;
            if !resp.status().is_success() {
                return Err(http::status_failure(resp, &what, self.session.host.who()).await);
            }
            let media_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let bytes = http::read_capped(resp, MAX_DOCUMENT_BYTES, &what, deadline).await?;
            Ok::<_, Failed>((bytes, media_type))
        })
        .await?;
        let digest = match reference.digest() {
            Some(d) => Digest::parse(d).map_err(|e| e.context(&what))?,
            None => Digest::sha256(&bytes),
        };
        Ok(Blob {
            bytes,
            digest,
            media_type,
        })
    }

    /// A config blob, read up to [`MAX_DOCUMENT_BYTES`].
    async fn config(&self, digest: &Digest) -> Result<bytes::Bytes, Error> {
        let what = format!("{}@{digest}", self.session.reference.whole());
        let deadline = self.deadline();
        retrying(deadline, &what, || async {
            let resp = self.session.get_blob(digest, None, &what).await?;
            http::read_capped(resp, MAX_DOCUMENT_BYTES, &what, deadline).await
        })
        .await
    }
}

impl Session {
    fn deadline(&self) -> &Deadline {
        &self.host.deadline
    }

    /// The source's authentication, asked for on first use (`renew`:
    /// asked for again, after a 401).
    async fn auth(&self, renew: bool) -> Result<Auth, Error> {
        let mut slot = self.auth.lock().await;
        if let Some(a) = slot.as_ref().filter(|_| !renew) {
            return Ok(a.clone());
        }
        let auth = self.host.authenticate(&self.reference, self.push).await?;
        *slot = Some(auth.clone());
        Ok(auth)
    }

    /// A request of sizeguard's own to the repository (`build` makes it),
    /// sent with the session's authentication; a 401 to a Bearer token
    /// gets a new token and one more try (a token may expire in the middle
    /// of a download). The answer is returned whatever its status.
    async fn send_authorized(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failed> {
        let send = |auth: &Auth| {
            let mut req = build();
            if let Some(h) = &auth.header {
                req = req.header(header::AUTHORIZATION, h.clone());
            }
            http::send(req, what, &self.host.host, self.deadline())
        };
        let auth = self.auth(false).await?;
        let resp = send(&auth).await?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED || !auth.bearer {
            return Ok(resp);
        }
        tracing::info!("{what}: 401 unauthorized (the token expired?); asking for a new token");
        let auth = self.auth(true).await?;
        send(&auth).await
    }

    /// `SCHEME://HOST/v2/REPOSITORY/blobs/DIGEST`.
    fn blob_url(&self, digest: &str) -> String {
        self.host
            .url(&format!("{}/blobs/{digest}", self.reference.repository()))
    }

    /// One `GET` of a blob (whole, or the `Range` given) with the
    /// session's authentication: a 2xx answer, or the attempt's failure
    /// with the wait a 429 or 503 asks for.
    async fn get_blob(
        &self,
        digest: &Digest,
        range: Option<String>,
        what: &str,
    ) -> Result<reqwest::Response, Failed> {
        let url = self.blob_url(&digest.to_string());
        let resp = self
            .send_authorized(what, || {
                let req = self.host.http.get(&url);
                match &range {
                    Some(r) => req.header(header::RANGE, r),
                    None => req,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(http::status_failure(resp, what, self.host.who()).await);
        }
        Ok(resp)
    }
}

#[async_trait]
impl ManifestStore for RegistrySource {
    async fn root(&self) -> Result<Blob, Error> {
        self.authorized(|auth| self.manifest(&self.session.reference, auth))
            .await
    }

    async fn fetch(
        &self,
        digest: &Digest,
        media_type: &str,
        is_manifest: bool,
    ) -> Result<Blob, Error> {
        let bytes = if is_manifest {
            let r = self.session.reference.clone_with_digest(digest.to_string());
            self.authorized(|auth| self.manifest(&r, auth)).await?.bytes
        } else {
            self.authorized(|_| self.config(digest)).await?
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
        let digest = Digest::parse(&layer.digest)?;
        self.authorized(|_| {
            let download = blob::Download {
                session: self.session.clone(),
                size: layer.size,
                digest: digest.clone(),
                what: format!("layer {}", layer.digest),
            };
            download.open()
        })
        .await
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.authorized(|_| self.blob_range(layer, offset, len))
            .await
    }

    fn verifies_digests(&self) -> bool {
        true
    }

    fn serves_pushed_blobs(&self) -> bool {
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
        let what = format!("layer {}", layer.digest);
        let digest = Digest::parse(&layer.digest)?;
        let last = offset + len.max(1) - 1;
        let deadline = self.deadline();
        retrying(deadline, &what, || async {
            let range = format!("bytes={offset}-{last}");
            let resp = self.session.get_blob(&digest, Some(range), &what).await?;
            // The whole blob instead of the part: not worth reading.
            if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                return Ok(None);
            }
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::with_capacity(len as usize);
            while let Some(chunk) = deadline
                .run_unless_stalled(&what, stream.next())
                .await?
                .ok_or_else(|| Error::transient(format!("{what}: the registry stalled")))?
            {
                let chunk = chunk.map_err(|e| {
                    Error::transient(format!("{what}: the answer broke off"))
                        .with_source(e.without_url())
                })?;
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > len {
                    return Ok(None);
                }
            }
            Ok::<_, Failed>(Some(buf))
        })
        .await
    }
}

impl std::fmt::Debug for RegistrySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RegistrySource({}, {}, {})",
            self.session.reference.whole(),
            self.session.host.scheme,
            self.session.host.who()
        )
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
}
