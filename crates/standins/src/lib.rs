//! Stand-ins for the web services f2b-notify's sinks talk to: one small HTTP server on a
//! loopback port (port 0), [`StandIn`], whose answers a [`Responder`] decides, and one module
//! per service whose responder follows that service's documented contract (status codes,
//! error bodies, rate-limit shapes, limits), so that a sink that breaks the contract fails its
//! tests the way it would fail in production. Used by the sink crates' tests and by the
//! router's end-to-end tests (`tests/`).
//!
//! A thread per connection and no async runtime: the end-to-end tests are plain threads, and
//! a sink's async client talks to it like to any server.

pub mod alertmanager;
/// A loopback DNS server answering from a table (enrichment's reverse DNS).
pub mod dns;
/// MaxMind-format databases written at test time (enrichment's country and network).
pub mod mmdb;
pub mod ntfy;
pub mod pushover;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod tls;

use std::io::Write;

pub mod discord;
pub mod gotify;
use std::time::{Duration, Instant};

pub mod matrix;
pub mod webhook;

/// One HTTP request the [`StandIn`] received.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// The method: `POST`, `PUT`, `PATCH`, …
    pub method: String,
    /// The path with its query string, as sent.
    pub path: String,
    /// Every header, names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body (invalid UTF-8 replaced).
    pub body: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(p, _)| p)
    }

    /// The value of the query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.path.split_once('?')?;
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| decode(v))
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Percent-decoding (and `+` as a space), for query values and form bodies.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => match (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form body (`application/x-www-form-urlencoded`) as its fields, decoded.
pub fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// What the [`StandIn`] answers.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// Close the connection instead of answering (a lost answer: the request was received,
    /// the client sees the connection drop). See [`Reply::hang_up`].
    pub hang_up: bool,
}

impl Reply {
    /// A reply with `status` and `body`.
    pub fn new(status: u16, body: &str) -> Self {
        Self { status, headers: Vec::new(), body: body.to_owned(), hang_up: false }
    }

    /// No answer at all: the connection is closed once the request has been read, as when a
    /// server or the network fails between the request and its answer.
    pub fn hang_up() -> Self {
        Self { hang_up: true, ..Self::new(0, "") }
    }

    /// A JSON reply (with `Content-Type: application/json`).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(status, &body.to_string()).header("Content-Type", "application/json")
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Decides the reply from the request and how many requests that path had before it.
pub type Responder = std::sync::Arc<dyn Fn(&Request, usize) -> Reply + Send + Sync>;

/// Answers like Slack on success: `ok` for a webhook, `{"ok":true}` for chat.postMessage.
pub fn slack_ok() -> Responder {
    std::sync::Arc::new(|req: &Request, _| {
        if req.path.starts_with("/api/") {
            Reply::new(200, r#"{"ok":true}"#)
        } else {
            Reply::new(200, "ok")
        }
    })
}

/// A small HTTP/1.1 server on loopback for delivery tests, scripted per request and recording
/// when each request came. Runs on threads; stopped when dropped.
pub struct StandIn {
    /// The loopback port it listens on.
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    /// On a free port (port 0).
    pub fn start(responder: Responder) -> Self {
        Self::start_on(0, responder)
    }

    /// A free loopback port, for a server that comes up later.
    pub fn reserve_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
    }

    /// On `port` (0 for a free one).
    pub fn start_on(port: u16, responder: Responder) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind stand-in");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (log, responder, stop) = (Arc::clone(&log2), Arc::clone(&responder), Arc::clone(&stop2));
                        std::thread::spawn(move || serve(sock, &log, &responder, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, log, stop, thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    /// Requests to paths starting with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one keep-alive connection until the client closes it or the stand-in stops.
fn serve(
    mut sock: std::net::TcpStream,
    log: &std::sync::Mutex<Vec<Request>>,
    responder: &Responder,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::Read;
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Read a full request: headers, then Content-Length bytes of body.
        let request = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    buf.drain(..end + 4 + len);
                    let mut first = head.lines().next().unwrap_or("").split_whitespace();
                    let method = first.next().unwrap_or("GET").to_owned();
                    let path = first.next().unwrap_or("/").to_owned();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let authorization = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
                    break Request { at: Instant::now(), method, path, headers, body, authorization };
                }
            }
            match sock.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        };
        let seen = {
            let mut log = log.lock().expect("log");
            let seen = log.iter().filter(|r| r.path == request.path).count();
            log.push(request.clone());
            seen
        };
        let reply = responder(&request, seen);
        if reply.hang_up {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut out = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", reply.status, reply.body.len());
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        if sock.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
