//! Registries, through the oci-client crate: no Docker daemon involved.
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
//! oci-client fetches blobs ([`blob`] resumes broken layer downloads);
//! [`http`] makes the requests oci-client cannot make safely, or whose
//! answer's headers it does not show: the `/v2/` probe, token requests
//! (whose credentials follow the rules there), manifests (capped at
//! [`MAX_DOCUMENT_BYTES`]), the `HEAD` that asks a throttled blob's
//! `Retry-After`, and the resumes of layer downloads.

mod blob;
pub mod http;

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
use oci_client::token_cache::{RegistryOperation, RegistryToken, RegistryTokenType};
use oci_client::{Client, Reference};
use reqwest::header::{self, HeaderValue};
use tokio::sync::OnceCell;

use self::http::{Challenge, CredentialRules, Decision};
use super::auth::{self, Secret};
use super::manifest::{ACCEPTED_MANIFESTS, MAX_DOCUMENT_BYTES};
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::digest::Digest;
use crate::error::{Error, Kind, chain};
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;
use crate::source::retry::{DEFAULT_TIMEOUT, Deadline, Failed, retrying};

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
    /// pool is made; [`DEFAULT_TIMEOUT`] when not given.
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
            deadline: Deadline::after(opts.timeout.unwrap_or(DEFAULT_TIMEOUT)),
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
                client: host.client.clone(),
                host,
                auth: tokio::sync::Mutex::new(None),
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
    /// The client every source on this host shares (with its connection
    /// pool and oci-client's token cache, which sources fill).
    client: Client,
    /// For the requests oci-client cannot make safely ([`http`]).
    http: reqwest::Client,
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
        Ok(RegistryHost {
            client: oci_client(&host, scheme, &certs)?,
            http: http_client(&certs)?,
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
    async fn authenticate(&self, reference: &Reference) -> Result<Auth, Error> {
        let what = reference.whole();
        match self.challenge().await? {
            Challenge::None => Ok(Auth::anonymous(None)),
            Challenge::Basic => {
                let url = reqwest::Url::parse(&self.url(""))
                    .map_err(|e| Error::usage(format!("registry {}", self.host)).with_source(e))?;
                match (self.rules.decide(&url)?, &self.rules.credential.secret) {
                    (Decision::Send(_), Secret::Basic { username, password }) => Ok(Auth {
                        oci: RegistryAuth::Basic(username.clone(), password.clone()),
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
                let scope = format!("repository:{}:pull", reference.repository());
                let token = retrying(&self.deadline, &what, || {
                    http::fetch_token(
                        &self.http,
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
                    oci: RegistryAuth::Bearer(token.value),
                    withheld: token.withheld,
                })
            }
        }
    }
}

/// How one source's requests are authenticated.
#[derive(Clone)]
struct Auth {
    /// For oci-client.
    oci: RegistryAuth,
    /// For the requests sizeguard makes itself.
    header: Option<HeaderValue>,
    /// Why the credentials were not used, when they were not.
    withheld: Option<String>,
}

impl Auth {
    fn anonymous(withheld: Option<String>) -> Self {
        Auth {
            oci: RegistryAuth::Anonymous,
            header: None,
            withheld,
        }
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
        // Tokens are sizeguard's (it asks for them, and asks again on a
        // 401): oci-client is not to drop them and ask on its own.
        default_token_expiration_secs: 24 * 60 * 60,
        user_agent: concat!("sizeguard/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    Client::try_from(config).map_err(|e| Error::usage("registry client").with_source(e))
}

/// oci-client's errors as sizeguard's: one line that says what failed,
/// where, and with which credentials; its kind says whether trying again
/// may help.
fn explain(host: &str, who: &str, what: &str, e: OciDistributionError) -> Error {
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
            let kind = http::status_kind(*code).unwrap_or(Kind::Corrupt);
            let status = reqwest::StatusCode::from_u16(*code)
                .map_or_else(|_| code.to_string(), |s| s.to_string());
            let text = match message.trim() {
                "" => String::new(),
                m => format!(": {m}"),
            };
            Error::new(
                kind,
                match code {
                    401 => format!("401 unauthorized at {url} (credentials: {who}){text}"),
                    403 => format!("403 denied at {url} (credentials: {who}){text}"),
                    404 => format!("404 not found at {url}{text}"),
                    _ => format!("HTTP {status} from {url}{text}"),
                },
            )
        }
        OciDistributionError::RegistryError { envelope, url } => {
            let text = envelope.to_string();
            match envelope.errors.first().map(|e| &e.code) {
                Some(OciErrorCode::Unauthorized) => Error::unauthorized(format!(
                    "401 unauthorized at {url} (credentials: {who}): {text}"
                )),
                Some(OciErrorCode::Denied) => {
                    Error::unauthorized(format!("403 denied at {url} (credentials: {who}): {text}"))
                }
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown,
                ) => Error::not_found(format!("not found at {url}: {text}")),
                Some(OciErrorCode::Toomanyrequests) => {
                    Error::transient(format!("HTTP 429 Too Many Requests from {url}: {text}"))
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
    client: Client,
    /// Set by the first request that needs it; renewed on a 401.
    auth: tokio::sync::Mutex<Option<Auth>>,
}

impl RegistrySource {
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
            && matches!(auth.oci, RegistryAuth::Bearer(_))
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

    /// A config blob, through oci-client, read up to [`MAX_DOCUMENT_BYTES`].
    async fn config(&self, digest: &Digest, media_type: &str) -> Result<bytes::Bytes, Error> {
        let what = format!("{}@{digest}", self.session.reference.whole());
        let desc = Self::descriptor(&digest.to_string(), media_type, 0);
        let deadline = self.deadline();
        retrying(deadline, &what, || async {
            let sent = self
                .session
                .client
                .pull_blob_stream(&self.session.reference, &desc);
            let stream = match deadline.run_unless_stalled(&what, sent).await? {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    return Err(self.session.blob_failure(&desc.digest, &what, e).await);
                }
                None => return Err(Error::transient(format!("{what}: no answer")).into()),
            };
            let cap = MAX_DOCUMENT_BYTES;
            if stream.content_length.is_some_and(|l| l > cap) {
                return Err(too_large(&what).into());
            }
            let mut body = stream.stream;
            let mut out = Vec::new();
            while let Some(chunk) = deadline
                .run_unless_stalled(&what, body.next())
                .await?
                .ok_or_else(|| Error::transient(format!("{what}: the registry stalled")))?
            {
                let chunk = chunk.map_err(|e| Error::io(&what, e))?;
                if (out.len() + chunk.len()) as u64 > cap {
                    return Err(too_large(&what).into());
                }
                out.extend_from_slice(&chunk);
            }
            Ok::<_, Failed>(bytes::Bytes::from(out))
        })
        .await
    }
}

impl Session {
    fn deadline(&self) -> &Deadline {
        &self.host.deadline
    }

    /// The source's authentication, asked for on first use (`renew`:
    /// asked for again, after a 401), and handed to oci-client's token
    /// cache for this repository.
    async fn auth(&self, renew: bool) -> Result<Auth, Error> {
        let mut slot = self.auth.lock().await;
        if let Some(a) = slot.as_ref().filter(|_| !renew) {
            return Ok(a.clone());
        }
        let auth = self.host.authenticate(&self.reference).await?;
        let registry = self.reference.resolve_registry();
        let token = match &auth.oci {
            RegistryAuth::Bearer(t) => Some(RegistryTokenType::Bearer(RegistryToken::Token {
                token: t.clone(),
            })),
            RegistryAuth::Basic(u, p) => Some(RegistryTokenType::Basic(u.clone(), p.clone())),
            _ => None,
        };
        // Without a stored authentication oci-client sends requests as
        // they are; with one, it uses the cached token for the repository.
        if let Some(token) = token {
            self.client.store_auth_if_needed(registry, &auth.oci).await;
            self.client
                .tokens
                .insert(&self.reference, RegistryOperation::Pull, token)
                .await;
        }
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
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED
            || !matches!(auth.oci, RegistryAuth::Bearer(_))
        {
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

    /// oci-client's error for a blob request as an attempt's failure. A
    /// 429 or 503 keeps the wait the registry asks for, which oci-client's
    /// error does not carry: it is learnt from a `HEAD` of the blob (one
    /// small request, made only then; a registry that throttles the `GET`
    /// throttles the `HEAD` with it, and one that answers the `HEAD`
    /// lets the next `GET` through). This keeps oci-client the only reader
    /// of blob bodies from byte 0.
    async fn blob_failure(&self, digest: &str, what: &str, e: OciDistributionError) -> Failed {
        let throttled = match &e {
            OciDistributionError::ServerError { code, .. } => matches!(code, 429 | 503),
            OciDistributionError::RegistryError { envelope, .. } => envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::Toomanyrequests),
            _ => false,
        };
        let error = explain(&self.host.host, self.host.who(), what, e);
        let retry_after = match throttled {
            true => self.asked_wait(digest, what).await,
            false => None,
        };
        Failed { error, retry_after }
    }

    /// The `Retry-After` of a throttled `HEAD` of a blob, if it is one.
    async fn asked_wait(&self, digest: &str, what: &str) -> Option<Duration> {
        let url = self.blob_url(digest);
        let resp = self
            .send_authorized(what, || self.host.http.head(&url))
            .await
            .ok()?;
        let asked = http::retry_after_of(&resp);
        tracing::debug!("{what}: HEAD {} asks to wait {asked:?}", resp.status());
        asked.filter(|_| http::is_retryable(resp.status()))
    }
}

fn too_large(what: &str) -> Error {
    Error::corrupt(format!(
        "{what}: larger than the {} a manifest or config may have",
        crate::units::human_bytes(MAX_DOCUMENT_BYTES)
    ))
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
            self.authorized(|_| self.config(digest, media_type)).await?
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
                desc: Self::descriptor(&layer.digest, &layer.media_type, layer.size as i64),
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
        let deadline = self.deadline();
        retrying(deadline, &what, || async {
            let sent = self.session.client.pull_blob_stream_partial(
                &self.session.reference,
                &desc,
                offset,
                Some(len),
            );
            let resp = match deadline.run_unless_stalled(&what, sent).await? {
                Some(r) => r.map_err(|e| {
                    explain(&self.session.host.host, self.session.host.who(), &what, e)
                })?,
                None => return Err(Error::transient(format!("{what}: no answer")).into()),
            };
            let mut stream = match resp {
                BlobResponse::Partial(s) => s.stream,
                // Dropping the stream closes the connection: nothing more is read.
                BlobResponse::Full(_) => return Ok(None),
            };
            let mut buf = Vec::with_capacity(len as usize);
            while let Some(chunk) = deadline
                .run_unless_stalled(&what, stream.next())
                .await?
                .ok_or_else(|| Error::transient(format!("{what}: the registry stalled")))?
            {
                let chunk = chunk.map_err(|e| Error::io(&what, e))?;
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
