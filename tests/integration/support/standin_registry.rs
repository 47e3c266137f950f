//! Stand-in registries for what a proxy in front of a real one cannot
//! fake: small loopback HTTP/1.1 servers (the stand-ins' server,
//! [`super::http`]) that serve an OCI image layout the way the distribution API
//! does, misbehaving as asked: blobs trickled a byte at a time, manifests
//! and configs that never end, `Range` ignored or answered with another
//! range, a Bearer token service (with an identity-token exchange, and
//! tokens that expire) of their own or one on another host.
//! Every request is recorded (method, path, query, headers, body) so that
//! tests can check what was sent where.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::http::Request;
use super::http::{read_request, respond};

/// How an endless body ends at the latest (a bound for the test, far
/// beyond any cap sizeguard has).
const ENDLESS_LIMIT: u64 = 1 << 30;

/// The token service's part: what it accepts and what it issues.
#[derive(Clone, Debug, Default)]
pub struct TokenService {
    /// `user:password` accepted as Basic credentials.
    pub basic: Option<(String, String)>,
    /// A refresh token accepted in a `grant_type=refresh_token` POST.
    pub refresh_token: Option<String>,
    /// Issued for good credentials, and required by the registry.
    pub token: String,
    /// Whether a token is issued without credentials too (a public image).
    pub anonymous: bool,
    /// Tokens live this many seconds (`expires_in`): each one issued is
    /// new (`TOKEN-N`), and one older than this is refused with a 401 and
    /// a challenge, as an expired token is.
    pub expires_in: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// The OCI layout served (`index.json` tags name the manifests).
    pub layout: Option<PathBuf>,
    /// Requests need `Bearer TOKEN` from this service, served at `/token`.
    pub tokens: Option<TokenService>,
    /// The realm named in the challenge instead of this server's `/token`.
    pub realm: Option<String>,
    /// Layer bodies (not JSON ones) go out one byte per interval.
    pub trickle: Option<Duration>,
    /// Manifests never end (no `Content-Length`).
    pub endless_manifest: bool,
    /// Config blobs never end.
    pub endless_config: bool,
    /// Manifests claim this `Content-Length` (and never end).
    pub manifest_length: Option<u64>,
    /// `Range` is ignored: blobs always come whole, with 200.
    pub ignore_range: bool,
    /// A `Range` from any byte but the first is answered with a 206 for
    /// the whole blob (`Content-Range: bytes 0-…`): another range than
    /// the one asked for.
    pub wrong_range: bool,
    /// A `Range` from any byte but the first is answered with a 206 of
    /// the right length that starts at byte 0 (`Content-Range: bytes
    /// 0-…`, truthfully): the wrong bytes, in a part of the right size.
    pub shifted_range: bool,
}

pub struct StandIn {
    /// `127.0.0.1:PORT`
    pub addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

/// Tokens issued so far, and when (for [`TokenService::expires_in`]).
type Issued = Mutex<Vec<(String, Instant)>>;

impl StandIn {
    pub fn start(behaviour: Behaviour) -> StandIn {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let issued: Arc<Issued> = Arc::default();
        let listener = super::http::bind();
        let addr = listener.local_addr().unwrap().to_string();
        let own = addr.clone();
        let stop = super::http::serve_on(listener, move |conn| {
            let _ = handle(conn, &behaviour, &own, &log, &issued);
        });
        StandIn {
            addr,
            requests,
            stop,
        }
    }

    /// `ADDR/REPO:TAG`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(
    mut conn: TcpStream,
    b: &Behaviour,
    addr: &str,
    log: &Mutex<Vec<Request>>,
    issued: &Issued,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut conn) else {
        return Ok(());
    };
    log.lock().unwrap().push(req.clone());
    if req.path == "/token" {
        return token(&mut conn, b, &req, issued);
    }
    if let Some(t) = &b.tokens
        && !authorized(t, req.header("authorization"), issued)
    {
        let realm = b.realm.clone().unwrap_or(format!("http://{addr}/token"));
        let challenge = format!("Bearer realm=\"{realm}\",service=\"standin\"");
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(
            &mut conn,
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            body,
        );
    }
    if req.path == "/v2/" {
        return respond(&mut conn, "200 OK", &[], b"{}");
    }
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return respond(&mut conn, "404 Not Found", &[], b"");
    };
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        return manifest(&mut conn, b, reference);
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return blob(&mut conn, b, digest, req.header("range"));
    }
    respond(&mut conn, "404 Not Found", &[], b"")
}

/// Whether a request carries a token the service issued, still valid.
fn authorized(t: &TokenService, header: Option<&str>, issued: &Issued) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    match t.expires_in {
        None => given == t.token,
        Some(secs) => issued
            .lock()
            .unwrap()
            .iter()
            .any(|(token, at)| token == given && at.elapsed() < Duration::from_secs(secs)),
    }
}

fn token(
    conn: &mut TcpStream,
    b: &Behaviour,
    req: &Request,
    issued: &Issued,
) -> std::io::Result<()> {
    let Some(t) = &b.tokens else {
        return respond(conn, "200 OK", &[], br#"{"token":"anonymous"}"#);
    };
    let basic_ok = t.basic.as_ref().is_some_and(|(u, p)| {
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.header("authorization") == Some(format!("Basic {want}").as_str())
    });
    let refresh_ok = t
        .refresh_token
        .as_ref()
        .is_some_and(|r| req.method == "POST" && req.body.contains(&format!("refresh_token={r}")));
    let anonymous_ok = t.anonymous && req.header("authorization").is_none();
    if basic_ok || refresh_ok || anonymous_ok {
        let (token, expires_in) = match t.expires_in {
            None => (t.token.clone(), 300),
            Some(secs) => {
                let mut issued = issued.lock().unwrap();
                let token = format!("{}-{}", t.token, issued.len() + 1);
                issued.push((token.clone(), Instant::now()));
                (token, secs)
            }
        };
        let body = format!(r#"{{"access_token":"{token}","expires_in":{expires_in}}}"#);
        return respond(conn, "200 OK", &[], body.as_bytes());
    }
    respond(
        conn,
        "401 Unauthorized",
        &[],
        br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
    )
}

fn layout_file(b: &Behaviour, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(b.layout.as_ref()?.join(rel)).ok()
}

/// The digest and media type `index.json` tags `reference` with, or the
/// digest itself.
fn find_manifest(b: &Behaviour, reference: &str) -> Option<(String, String)> {
    let index: serde_json::Value = serde_json::from_slice(&layout_file(b, "index.json")?).ok()?;
    let entries = index["manifests"].as_array()?;
    let entry = entries.iter().find(|m| {
        m["digest"] == reference
            || m["annotations"]["org.opencontainers.image.ref.name"] == reference
    });
    match entry {
        Some(m) => Some((
            m["digest"].as_str()?.to_string(),
            m["mediaType"].as_str()?.to_string(),
        )),
        None if reference.starts_with("sha256:") => Some((
            reference.to_string(),
            "application/vnd.oci.image.manifest.v1+json".to_string(),
        )),
        None => None,
    }
}

fn manifest(conn: &mut TcpStream, b: &Behaviour, reference: &str) -> std::io::Result<()> {
    if b.endless_manifest || b.manifest_length.is_some() {
        let head = match b.manifest_length {
            Some(n) => format!("Content-Length: {n}\r\n"),
            None => String::new(),
        };
        return endless(conn, &head, b"{\"schemaVersion\":2,\"x\":\"");
    }
    let Some((digest, media_type)) = find_manifest(b, reference) else {
        return respond(
            conn,
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        );
    };
    let path = format!("blobs/{}", digest.replace(':', "/"));
    let Some(body) = layout_file(b, &path) else {
        return respond(conn, "404 Not Found", &[], b"");
    };
    respond(
        conn,
        "200 OK",
        &[
            ("Content-Type", media_type),
            ("Docker-Content-Digest", digest),
        ],
        &body,
    )
}

/// A body that never ends (until the client leaves, or 1 GiB).
fn endless(conn: &mut TcpStream, extra_head: &str, start: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{extra_head}Connection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(start)?;
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < ENDLESS_LIMIT {
        conn.write_all(&chunk)?;
        sent += chunk.len() as u64;
    }
    Ok(())
}

fn blob(
    conn: &mut TcpStream,
    b: &Behaviour,
    digest: &str,
    range: Option<&str>,
) -> std::io::Result<()> {
    let Some(data) = layout_file(b, &format!("blobs/{}", digest.replace(':', "/"))) else {
        return respond(
            conn,
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
        );
    };
    if b.endless_config && data.first() == Some(&b'{') {
        return endless(conn, "", b"{\"architecture\":\"");
    }
    let from = range
        .filter(|_| !b.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, z)| {
            let a: usize = a.parse().ok()?;
            let z: usize = if z.is_empty() {
                data.len() - 1
            } else {
                z.parse().ok()?
            };
            (a <= z && z < data.len()).then_some((a, z))
        });
    let from = match from {
        Some((a, _)) if a > 0 && b.wrong_range => Some((0, data.len() - 1)),
        Some((a, z)) if a > 0 && b.shifted_range => Some((0, z - a)),
        other => other,
    };
    let (status, body, extra) = match from {
        Some((a, z)) => (
            "206 Partial Content",
            &data[a..=z],
            vec![("Content-Range", format!("bytes {a}-{z}/{}", data.len()))],
        ),
        None => ("200 OK", &data[..], Vec::new()),
    };
    let Some(interval) = b.trickle.filter(|_| data.first() != Some(&b'{')) else {
        return respond(conn, status, &extra, body);
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in &extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    for byte in body {
        conn.write_all(&[*byte])?;
        std::thread::sleep(interval);
    }
    Ok(())
}
