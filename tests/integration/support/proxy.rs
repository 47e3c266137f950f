//! A fault-injecting HTTP/1.1 proxy in front of a loopback server (the
//! test's `docker-registry`), on std threads. It reads each request, may
//! answer it itself (a 429 or 503 before forwarding), and otherwise
//! forwards it on a fresh upstream connection (one request per connection:
//! it answers with `Connection: close`), optionally breaking the answer's
//! body: closing the connection after N bytes (with or without the
//! `Content-Length`, so the body is cut or ends early and cleanly),
//! stalling for a while, or dropping the request's `Range` header (a
//! registry that ignores it). Every request is recorded.
//!
//! [`TlsOnlyRelay`] is a raw TCP relay that resets every connection that
//! does not start with a TLS handshake (a TLS registry that resets plain
//! HTTP instead of answering 400).
//!
//! Both run on the stand-ins' server ([`super::http`]): loopback only, a
//! read timeout on every socket, the accept loops ended when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::http::IO_TIMEOUT;
pub use super::http::{Head, serve};

/// What happens to a request a [`Rule`] matches.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answered by the proxy with this status and headers, not forwarded.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Forwarded; the connection is closed after `after` bytes of the body.
    Cut { after: u64 },
    /// Forwarded without `Content-Length` (a close-delimited body) and
    /// closed after `after` bytes: the body ends early, cleanly.
    CutCloseDelimited { after: u64 },
    /// Forwarded; the body pauses for `pause` after `after` bytes.
    Stall { after: u64, pause: Duration },
}

/// The first `times` requests whose path contains `path` get `fault`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub path: String,
    pub fault: Fault,
    pub times: usize,
}

impl Rule {
    pub fn new(path: &str, times: usize, fault: Fault) -> Rule {
        Rule {
            path: path.to_string(),
            fault,
            times,
        }
    }
}

/// A 429 with `Retry-After: VALUE`.
pub fn too_many_requests(retry_after: &str) -> Fault {
    Fault::Answer {
        status: 429,
        headers: vec![("Retry-After".into(), retry_after.into())],
    }
}

/// A bare 503.
pub fn unavailable() -> Fault {
    Fault::Answer {
        status: 503,
        headers: Vec::new(),
    }
}

/// A request as the proxy saw it, and the fault it got (if any).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub fault: Option<Fault>,
    /// When it arrived.
    pub at: std::time::Instant,
    pub wall: std::time::SystemTime,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    strip_range: bool,
    seen: Vec<Seen>,
}

pub struct FaultProxy {
    /// `127.0.0.1:PORT`
    pub addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`HOST:PORT`) applying `rules` in order.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        Self::start_with(upstream, rules, false)
    }

    /// The same, and requests lose their `Range` header.
    pub fn ignoring_range(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        Self::start_with(upstream, rules, true)
    }

    fn start_with(upstream: &str, rules: Vec<Rule>, strip_range: bool) -> FaultProxy {
        let state = Arc::new(Mutex::new(State {
            rules,
            strip_range,
            seen: Vec::new(),
        }));
        let upstream = upstream.to_string();
        let st = state.clone();
        let (addr, stop) = serve(move |conn| {
            let _ = handle(conn, &upstream, &st);
        });
        FaultProxy { addr, state, stop }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests that got a fault.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let Some(mut req) = Head::read(&mut client) else {
        return Ok(());
    };
    let mut parts = req.start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (fault, strip_range) = {
        let mut st = state.lock().unwrap();
        let fault = st
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && path.contains(&r.path))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        st.seen.push(Seen {
            method,
            path,
            headers: req
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            fault: fault.clone(),
            at: std::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        });
        (fault, st.strip_range)
    };
    if let Some(Fault::Answer { status, headers }) = &fault {
        let mut s = format!("HTTP/1.1 {status} Injected\r\n");
        for (k, v) in headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        client.write_all(s.as_bytes())?;
        return Ok(());
    }
    req.remove("connection");
    req.headers.push(("Connection".into(), "close".into()));
    if strip_range {
        req.remove("range");
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.write_all(&req.to_bytes())?;
    up.write_all(&req.rest)?;
    let Some(mut resp) = Head::read(&mut up) else {
        return Ok(());
    };
    resp.remove("connection");
    resp.headers.push(("Connection".into(), "close".into()));
    if matches!(fault, Some(Fault::CutCloseDelimited { .. })) {
        resp.remove("content-length");
    }
    client.write_all(&resp.to_bytes())?;
    let body = resp.rest.clone();
    relay_body(&mut up, &mut client, body, fault.as_ref())
}

/// Copies the body to the client, breaking it as `fault` says.
fn relay_body(
    up: &mut TcpStream,
    client: &mut TcpStream,
    first: Vec<u8>,
    fault: Option<&Fault>,
) -> std::io::Result<()> {
    let (limit, pause) = match fault {
        Some(Fault::Cut { after }) | Some(Fault::CutCloseDelimited { after }) => {
            (Some(*after), None)
        }
        Some(Fault::Stall { after, pause }) => (None, Some((*after, *pause))),
        _ => (None, None),
    };
    let mut sent = 0u64;
    let mut pending = first;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if pending.is_empty() {
            let n = up.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&chunk[..n]);
        }
        let mut take = pending.len() as u64;
        if let Some(l) = limit {
            take = take.min(l - sent);
        }
        if let Some((at, _)) = pause
            && sent < at
        {
            take = take.min(at - sent);
        }
        client.write_all(&pending[..take as usize])?;
        pending.drain(..take as usize);
        sent += take;
        if limit == Some(sent) {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        if let Some((at, d)) = pause
            && sent == at
        {
            thread::sleep(d);
        }
    }
}

/// A raw TCP relay to a TLS server that resets every connection whose
/// first byte is not a TLS handshake record (0x16).
pub struct TlsOnlyRelay {
    pub addr: String,
    stop: Arc<AtomicBool>,
    resets: Arc<Mutex<usize>>,
}

impl TlsOnlyRelay {
    pub fn start(upstream: &str) -> TlsOnlyRelay {
        let upstream = upstream.to_string();
        let resets = Arc::new(Mutex::new(0));
        let counter = resets.clone();
        let (addr, stop) = serve(move |conn| {
            let mut first = [0u8; 1];
            match conn.peek(&mut first) {
                Ok(1) if first[0] == 0x16 => {
                    let _ = splice(conn, &upstream);
                }
                // Closing with the request unread makes the kernel send a
                // reset rather than a clean close.
                _ => *counter.lock().unwrap() += 1,
            }
        });
        TlsOnlyRelay { addr, stop, resets }
    }

    /// Connections reset so far.
    pub fn resets(&self) -> usize {
        *self.resets.lock().unwrap()
    }
}

impl Drop for TlsOnlyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies bytes both ways until either side closes.
fn splice(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    let (mut c2, mut u2) = (client.try_clone()?, up.try_clone()?);
    let t = thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut u, mut c) = (up, client);
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = t.join();
    Ok(())
}
