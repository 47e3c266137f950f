//! The one small HTTP/1.1 server the stand-ins share: a loopback accept
//! loop on std threads (a thread per connection, one request per
//! connection, `Connection: close`), reading a request head and body, and
//! writing a whole answer. Each stand-in supplies only what it does with a
//! connection: route a parsed [`Request`] and [`respond`], or relay and
//! break bytes as the fault proxy does.
//!
//! Every socket has a read timeout, and an accept loop ends once its stop
//! flag is set (the stand-ins set it when dropped), so a test that fails
//! halfway leaves no thread waiting on a port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// No socket waits longer than this for a byte.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body past this is not read: far more than any client under
/// test sends, and a bound for a `Content-Length` that lies.
const BODY_LIMIT: usize = 64 << 20;

/// A fresh loopback port, bound: its address is known before the loop runs
/// (a stand-in that names itself in its answers needs it).
pub fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

/// Accepts connections on a fresh loopback port until the returned flag is
/// set, handing each to `handle` on a thread of its own.
pub fn serve(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> (String, Arc<AtomicBool>) {
    let listener = bind();
    let addr = listener.local_addr().unwrap().to_string();
    (addr, serve_on(listener, handle))
}

/// [`serve`] on a listener already bound.
pub fn serve_on(
    listener: TcpListener,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> Arc<AtomicBool> {
    // Polled rather than blocking, so the loop sees the stop flag.
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                    let h = handle.clone();
                    thread::spawn(move || h(conn));
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    stop
}

/// A request or response head: the start line and the headers as sent.
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read past the head (the start of a body).
    pub rest: Vec<u8>,
}

impl Head {
    /// Reads a head (up to 64 KiB); `None` when the peer closed first.
    pub fn read(conn: &mut TcpStream) -> Option<Head> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if buf.len() > 64 * 1024 {
                return None;
            }
            let n = conn.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let text = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut lines = text.split("\r\n");
        let start = lines.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Some(Head {
            start,
            headers,
            rest: buf[end + 4..].to_vec(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// A request as a stand-in received it, kept for the test to check.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, `null` when it is none.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one request: its head and as much of the body as its
/// `Content-Length` says (less if the peer stops sending); `None` when the
/// peer closed or sent no request line.
pub fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let head = Head::read(conn)?;
    let mut parts = head.start.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let len: usize = head
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = head.rest.clone();
    let mut chunk = [0u8; 4096];
    while body.len() < len.min(BODY_LIMIT) {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers: head
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Writes a whole answer: `status` is the status line's rest (`200 OK`).
pub fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut s = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    conn.write_all(s.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
