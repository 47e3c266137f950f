//! The inbound edge: every connection and request a stranger can open
//! passes the limits here before any handler runs, so none of them can hold
//! memory, a socket or a task for longer than these figures allow.
//!
//! - a cap on open connections (past it a connection gets `503` and is
//!   closed at once);
//! - a deadline for a request's headers, and one for its body;
//! - a connection on which no byte moves either way is closed;
//! - a cap on requests being handled (past it `503` with `Retry-After`),
//!   the health probes excepted so an orchestrator does not restart a
//!   service that is only busy;
//! - TLS, its certificate re-read when the files change.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;
use crate::serve::Shutdown;
use crate::serve::metrics::Metrics;

/// A request's headers (and, with TLS, the handshake before them) must
/// have arrived this long after the connection, or the previous answer on
/// it, or the connection is closed. Senders write a few hundred bytes of
/// headers at once; ten seconds is generous over any real network.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's whole body must have arrived this long after its headers,
/// or the request is answered `408` and the connection closed. A delivery
/// is a few kB: this is slack for a slow link, not for a trickle.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection on which no byte moved either way for this long is closed:
/// a client that stops reading its answer, or a socket left half-used.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections open at once by default; each costs a task and a few kB of
/// buffers, so the cap bounds memory, not throughput.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Requests being handled at once by default: a receiver's work is a parse
/// and one store write, so more than this means a flood, not a backlog.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Largest request head (request line and headers) hyper buffers; hyper's
/// own floor is 8 KiB. Senders' heads are well under 2 KiB.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header lines one request may carry.
const MAX_HEADERS: usize = 64;

/// Seconds a client is told to wait when a cap is reached.
const BUSY_RETRY_AFTER: u64 = 1;

/// How often the TLS files are looked at for a new certificate.
pub const TLS_RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The paths exempt from the in-flight cap: the orchestrator's view of
/// whether the process is alive and ready, which a full cap must not turn
/// into a restart or an endpoint removed. `/readyz` asks the store (a
/// query bounded at 2 s); the connection cap bounds how many at once.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The caps, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The request-level limits around every route: the in-flight cap and the
/// body deadline.
pub fn limit_requests(app: Router, max_in_flight: usize, metrics: Arc<Metrics>) -> Router {
    let state = Arc::new(InFlight {
        permits: Arc::new(Semaphore::new(max_in_flight)),
        admission: Arc::new(Semaphore::new(max_in_flight)),
        metrics,
    });
    app.layer(axum::middleware::from_fn_with_state(state, in_flight))
}

struct InFlight {
    permits: Arc<Semaphore>,
    /// The API server's reviews have permits of their own: senders that
    /// must send their body before they are authenticated (GitHub's HMAC)
    /// could otherwise hold every shared permit and turn reviews away,
    /// which `failurePolicy: Ignore` would read as "admit".
    admission: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

async fn in_flight(State(s): State<Arc<InFlight>>, request: Request, next: Next) -> Response {
    if PROBES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let permits = if request.uri().path() == "/v1/admission" {
        &s.admission
    } else {
        &s.permits
    };
    let Ok(_permit) = permits.clone().try_acquire_owned() else {
        s.metrics.inbound_refused("max_in_flight");
        return busy();
    };
    let request = request.map(|body| Body::new(Deadline::new(body, BODY_TIMEOUT)));
    next.run(request).await
}

fn busy() -> Response {
    super::http::busy(BUSY_RETRY_AFTER, "too many requests at once")
}

/// The error a body read gives once [`BODY_TIMEOUT`] passed.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s",
            BODY_TIMEOUT.as_secs()
        )
    }
}

impl StdError for BodyTimeout {}

/// Whether `e`, or an error it wraps, is a `T`.
pub fn caused_by<T: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A body that fails with [`BodyTimeout`] once its deadline passed: one
/// deadline for the whole body, so a byte now and then does not extend it.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Body, within: Duration) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout)))),
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections until shutdown, then waits for the open ones to
/// finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let cap = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(cap));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, mostly: give closing ones a moment.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics.inbound_refused("max_connections");
            if tls.is_none() {
                // Best effort, never waiting: the socket buffer takes it.
                let _ = stream.try_write(&busy_response());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, app, tls, shutdown).await;
            drop(permit);
        });
    }
    // Every connection holds a permit until it is closed.
    let _ = open.acquire_many(cap as u32).await;
}

/// The answer to a connection past the cap, written before any request
/// is read (the connection then closes).
fn busy_response() -> Vec<u8> {
    let body = "{\"error\":\"too many connections at once\"}\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {BUSY_RETRY_AFTER}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connection(stream: TcpStream, app: Router, tls: Option<TlsAcceptor>, shutdown: Shutdown) {
    let activity = Arc::new(Activity::new());
    match tls {
        None => {
            http(
                Watched::new(stream, activity.clone()),
                app,
                activity,
                shutdown,
            )
            .await
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(stream)) => {
                    // Only a certificate the client CA verified gets this far.
                    let app = if stream.get_ref().1.peer_certificates().is_some() {
                        app.layer(axum::Extension(ClientCertificate))
                    } else {
                        app
                    };
                    http(
                        Watched::new(stream, activity.clone()),
                        app,
                        activity,
                        shutdown,
                    )
                    .await
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(io: Watched<S>, app: Router, activity: Arc<Activity>, mut shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection closed");
            }
            return;
        }
        () = activity.idle_for(IDLE_TIMEOUT) => return,
        () = shutdown.wait() => conn.as_mut().graceful_shutdown(),
    }
    // Shutting down: the request under way is answered, nothing more.
    tokio::select! {
        _ = conn.as_mut() => {}
        () = activity.idle_for(IDLE_TIMEOUT) => {}
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A stream that records each read or write that moved bytes.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates client certificates are verified against
    /// (`[serve.admission] client-ca-file`): a client may then present one,
    /// and requests on its connection carry [`ClientCertificate`]. Read
    /// once at start.
    pub client_ca: Option<PathBuf>,
}

/// Marks a request whose connection presented a client certificate the
/// client CA verified (a connection whose certificate does not verify
/// never completes its handshake).
#[derive(Debug, Clone, Copy)]
pub struct ClientCertificate;

/// The certificate served to each new handshake: the last pair that
/// loaded. A pair that does not load (half written, mismatched) leaves the
/// previous one in place.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Largest certificate chain or key file read.
const MAX_TLS_FILE: u64 = 1 << 20;

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let unreadable = |e: std::io::Error| {
        Error::usage(format!("cannot read TLS {what} {}", path.display())).with_source(e)
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_TLS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_TLS_FILE {
        return Err(Error::usage(format!(
            "TLS {what} {} is larger than {MAX_TLS_FILE} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, Error> {
    let cert_pem = read_pem(&files.cert, "certificate")?;
    let key_pem = read_pem(&files.key, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::usage(format!(
                "{}: not a PEM certificate chain ({e})",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::usage(format!(
            "{}: no certificate in it",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::usage(format!(
            "{}: not a PEM private key ({e})",
            files.key.display()
        ))
    })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        Error::usage(format!(
            "{} and {} are not a certificate and its key ({e})",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    Ok(Arc::new(pair))
}

/// Verifies client certificates against the CAs in `path`; a client that
/// presents none is let through (the receivers and probes have none), and
/// its requests carry no [`ClientCertificate`].
fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Error> {
    let pem = read_pem(path, "client CA")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Error::usage(format!("{}: not a PEM certificate ({e})", path.display()))
        })?;
        roots
            .add(cert)
            .map_err(|e| Error::usage(format!("{}: not a CA certificate ({e})", path.display())))?;
    }
    if roots.is_empty() {
        return Err(Error::usage(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}

/// What identifies one version of the two files.
fn stamp(files: &TlsFiles) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

/// The TLS acceptor for `files`, and a task that re-reads them when they
/// change. A pair that does not load at start is a usage error.
pub fn tls(files: TlsFiles, shutdown: Shutdown) -> Result<TlsAcceptor, Error> {
    let provider = provider();
    let first = stamp(&files);
    let resolver = Arc::new(Reloading {
        current: RwLock::new(load_pair(&files, &provider)?),
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::usage(format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, &provider)?),
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(reload(files, first, resolver, provider, shutdown));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn reload(
    files: TlsFiles,
    mut seen: Option<[(SystemTime, u64); 2]>,
    resolver: Arc<Reloading>,
    provider: Arc<CryptoProvider>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TLS_RELOAD_EVERY) => {}
            _ = shutdown.wait() => return,
        }
        let now = stamp(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match load_pair(&files, &provider) {
            Ok(pair) => {
                match resolver.current.write() {
                    Ok(mut c) => *c = pair,
                    Err(poisoned) => *poisoned.into_inner() = pair,
                }
                tracing::info!(
                    cert = %files.cert.display(),
                    "TLS certificate reloaded: new connections get the new one"
                );
            }
            Err(e) => tracing::warn!(
                error = %e.one_line(),
                "TLS files changed but do not load; the previous certificate stays in use"
            ),
        }
    }
}
