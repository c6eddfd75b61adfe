//! An ntfy server as its documentation and source describe it, for the ntfy sink's tests and
//! the router's end-to-end tests: [`Service`] checks what ntfy checks, in ntfy's order, and
//! answers with ntfy's own status codes and error bodies.
//!
//! Sources (D: the docs at docs.ntfy.sh, `docs/publish.md` and `docs/config.md` in
//! github.com/binwiederhier/ntfy; S: its `server/server.go` and `server/errors.go`):
//!
//! 1. Authentication first, before any route (S: `handle` → `maybeAuthenticate`): an
//!    `Authorization` header that is not the expected `Bearer` token or `Basic` user and
//!    password (an access token is also accepted as the password of an empty user, D:
//!    docs.ntfy.sh/publish/#authentication), or any credentials on a server without access
//!    control, is **401** `{"code":40101,"http":401,"error":"unauthorized",…}`.
//! 2. Routes (S: `handleInternal`): `POST`/`PUT /` is the JSON form; `POST`/`PUT /<topic>`
//!    (`^/[-_A-Za-z0-9]{1,64}$`) the plain form; anything else is **404**
//!    `{"code":40401,"http":404,"error":"page not found"}`.
//! 3. The visitor's request limit (S: `limitRequests`; D: docs.ntfy.sh/config/#rate-limiting):
//!    a token bucket, burst 60 refilled one every 5 s (a test may make both smaller); past it
//!    **429** `{"code":42901,"http":429,"error":"limit reached: too many requests, please be
//!    nice",…}` with no `Retry-After` (S: `handleError` sets only Content-Type and CORS).
//! 4. JSON form (S: `transformBodyJSON`; D: docs.ntfy.sh/publish/#publish-as-json): a body
//!    over 8,192 bytes (twice the message limit) is **413** 41303; one that is not JSON, or
//!    whose fields have the wrong type (`priority` must be a number, `tags` a list of
//!    strings, `markdown` a boolean), **400** 40024; a `topic` that breaks the topic rule
//!    **400** 40009. ntfy does not look at the Content-Type.
//! 5. Topic names the web app uses (`docs`, `static`, `file`, …) are **400** 40010 (S:
//!    `disallowedTopics`).
//! 6. Write permission (S: `authorizeTopicWrite`): on a server with access control, an
//!    anonymous request, or a user not allowed to write ([`Service::deny_write`]), is **403**
//!    `{"code":40301,"http":403,"error":"forbidden",…}`.
//! 7. The message (S: `handlePublishBody`; D: docs.ntfy.sh/publish/#limitations): more than
//!    4,096 bytes is an attachment, which a server without attachments (the self-hosted
//!    default, and this stand-in's unless [`Service::allow_attachments`]) refuses with **400**
//!    `{"code":40014,…,"error":"invalid request: attachments not allowed"}`. An empty message
//!    is stored as `triggered`; the message is trimmed.
//! 8. Priority (D: docs.ntfy.sh/publish/#message-priority): 1 to 5 (0 or none is 3), or in
//!    the plain form's header also `min`, `low`, `default`, `high`, `max`, `urgent`; anything
//!    else **400** 40007. Title over 1,024 bytes **400** 40057, tags over 512 bytes together
//!    **400** 40058 (v2.28, D: github.com/binwiederhier/ntfy/releases/tag/v2.28.0).
//! 9. Success: **200**, `application/json`, the message object and a newline (S:
//!    `handlePublish` → `writeJSON`; D: docs.ntfy.sh/subscribe/api/#json-message-format):
//!    `id`, `time`, `expires`, `event: "message"`, `topic`, and `title`, `message`,
//!    `priority`, `tags`, `click`, `content_type: "text/markdown"` when given.
//!
//! The plain form takes the title, priority, tags, markdown flag and click from the headers
//! (`X-Title`/`Title`/`t`, …) as sent: this stand-in does not decode RFC 2047.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// ntfy's message limit (bytes).
pub const MESSAGE_LIMIT: usize = 4096;
/// The JSON form's body limit (bytes): twice the message limit.
pub const JSON_LIMIT: usize = 2 * MESSAGE_LIMIT;
/// The title limit (bytes, v2.28).
pub const TITLE_LIMIT: usize = 1024;
/// The limit of all tags together (bytes, v2.28).
pub const TAGS_LIMIT: usize = 512;
/// The default request burst of a visitor.
pub const BURST: u32 = 60;
/// The default time that refills one request token.
pub const REPLENISH: Duration = Duration::from_secs(5);

/// Topic names the web app uses.
const DISALLOWED: &[&str] =
    &["docs", "static", "file", "app", "account", "settings", "pricing", "signup", "login", "reset-password"];

/// The credentials the server expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No access control: anyone may publish, and any credentials are refused (401).
    Open,
    /// Access control with one user's access token (`Bearer tk_…`, or Basic with an empty
    /// user and the token as password).
    Token(String),
    /// Access control with one user's name and password (Basic).
    Basic(String, String),
}

/// ntfy's error body (S: `errHTTP.JSON()`), with the link the docs give for it.
pub fn error(http: u16, code: u32, text: &str) -> Reply {
    let link = match code {
        40101 | 40301 => Some("https://ntfy.sh/docs/publish/#authentication"),
        42901 | 42908 => Some("https://ntfy.sh/docs/publish/#limitations"),
        _ => None,
    };
    let mut body = json!({"code": code, "http": http, "error": text});
    if let Some(link) = link {
        body["link"] = Value::from(link);
    }
    Reply::new(http, &format!("{body}\n"))
        .header("Content-Type", "application/json")
        .header("Access-Control-Allow-Origin", "*")
}

/// The 429 of the request limit.
pub fn too_many_requests() -> Reply {
    error(429, 42901, "limit reached: too many requests, please be nice")
}

/// A token bucket like Go's `rate.Limiter` with `rate.Every(replenish)` and `burst`.
#[derive(Debug)]
struct Bucket {
    burst: u32,
    replenish: Duration,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: u32, replenish: Duration) -> Self {
        Self { burst, replenish, tokens: f64::from(burst), at: Instant::now() }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() / self.replenish.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An ntfy server's publishing side. Make one with [`Service::new`], serve it with
/// `StandIn::start(service.responder())`, publish to `standin.url("/TOPIC")`.
pub struct Service {
    auth: Auth,
    writable: Mutex<bool>,
    attachments: Mutex<bool>,
    bucket: Mutex<Bucket>,
    forced: Mutex<VecDeque<Reply>>,
    accepted: Mutex<Vec<(std::time::Instant, Value)>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("auth", &self.auth).field("accepted", &self.accepted().len()).finish()
    }
}

impl Service {
    /// A server expecting `auth`, with ntfy's default request limit (burst 60, one more every
    /// 5 s), no attachments, and write access for the expected user.
    pub fn new(auth: Auth) -> Arc<Self> {
        Arc::new(Self {
            auth,
            writable: Mutex::new(true),
            attachments: Mutex::new(false),
            bucket: Mutex::new(Bucket::new(BURST, REPLENISH)),
            forced: Mutex::default(),
            accepted: Mutex::default(),
            ids: AtomicU64::new(0),
        })
    }

    /// Sets the request limit (a full bucket of `burst`, one more every `replenish`).
    pub fn set_rate(&self, burst: u32, replenish: Duration) {
        *self.bucket.lock().expect("bucket") = Bucket::new(burst, replenish);
    }

    /// Takes write permission away from the expected user (and anonymous): 403 40301.
    pub fn deny_write(&self) {
        *self.writable.lock().expect("writable") = false;
    }

    /// Turns attachments on (ntfy.sh): a message over 4,096 bytes is stored as
    /// `attachment.txt` instead of refused.
    pub fn allow_attachments(&self) {
        *self.attachments.lock().expect("attachments") = true;
    }

    /// The next requests get these replies, in order, whatever they are (and are not
    /// published).
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.forced.lock().expect("forced").extend(replies);
    }

    /// The messages published so far, as ntfy returned them, with when each arrived.
    pub fn accepted_at(&self) -> Vec<(std::time::Instant, Value)> {
        self.accepted.lock().expect("accepted").clone()
    }

    /// The messages published, in order (ntfy's message objects).
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().expect("accepted").iter().map(|(_, v)| v.clone()).collect()
    }

    /// The responder for a `StandIn`.
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// ntfy's answer to `req`.
    pub fn answer(&self, req: &Request) -> Reply {
        if let Some(reply) = self.forced.lock().expect("forced").pop_front() {
            return reply;
        }
        let user = match self.authenticate(req.authorization.as_deref()) {
            Ok(user) => user,
            Err(reply) => return reply,
        };
        let publish = matches!(req.method.as_str(), "POST" | "PUT");
        let route = req.route();
        let json_form = publish && route == "/";
        let plain_form = publish && route.strip_prefix('/').is_some_and(valid_topic);
        if !json_form && !plain_form {
            return error(404, 40401, "page not found");
        }
        if !self.bucket.lock().expect("bucket").allow() {
            return too_many_requests();
        }
        let message = if json_form { from_json(&req.body) } else { from_headers(req, &route[1..]) };
        let mut m = match message {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        if DISALLOWED.contains(&m.topic.as_str()) {
            return error(400, 40010, "invalid request: topic name is not allowed");
        }
        if self.auth != Auth::Open && !(user && *self.writable.lock().expect("writable")) {
            return error(403, 40301, "forbidden");
        }
        if m.priority.is_none() {
            return error(400, 40007, "invalid priority parameter");
        }
        if m.message.len() > MESSAGE_LIMIT {
            if !*self.attachments.lock().expect("attachments") {
                return error(400, 40014, "invalid request: attachments not allowed");
            }
            m.attachment = true;
        }
        if m.title.len() > TITLE_LIMIT {
            return error(400, 40057, "invalid request: title too large");
        }
        if m.tags.iter().map(String::len).sum::<usize>() + m.tags.len().saturating_sub(1) > TAGS_LIMIT {
            return error(400, 40058, "invalid request: tags too large");
        }
        let stored = self.store(m);
        Reply::new(200, &format!("{stored}\n")).header("Content-Type", "application/json")
    }

    /// `Ok(true)` for the expected user, `Ok(false)` for anonymous, the 401 otherwise.
    fn authenticate(&self, header: Option<&str>) -> Result<bool, Reply> {
        let unauthorized = || error(401, 40101, "unauthorized");
        let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(false) };
        let ok = match &self.auth {
            Auth::Open => false,
            Auth::Token(token) => {
                value.strip_prefix("Bearer").map(str::trim) == Some(token.as_str())
                    || basic(value) == Some((String::new(), token.clone()))
            }
            Auth::Basic(user, pass) => basic(value) == Some((user.clone(), pass.clone())),
        };
        if ok {
            Ok(true)
        } else {
            Err(unauthorized())
        }
    }

    fn store(&self, m: Message) -> Value {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut o = Map::new();
        o.insert("id".into(), Value::from(format!("msg{n:09}")));
        o.insert("time".into(), Value::from(time));
        o.insert("expires".into(), Value::from(time + 43_200));
        o.insert("event".into(), Value::from("message"));
        o.insert("topic".into(), Value::from(m.topic));
        if !m.title.is_empty() {
            o.insert("title".into(), Value::from(m.title));
        }
        let text = if m.attachment {
            "You received a file: attachment.txt".to_owned()
        } else if m.message.trim().is_empty() {
            "triggered".to_owned()
        } else {
            m.message.trim().to_owned()
        };
        o.insert("message".into(), Value::from(text));
        if let Some(p) = m.priority.filter(|&p| p != 3) {
            o.insert("priority".into(), Value::from(p));
        }
        if !m.tags.is_empty() {
            o.insert("tags".into(), json!(m.tags));
        }
        if !m.click.is_empty() {
            o.insert("click".into(), Value::from(m.click));
        }
        if m.markdown {
            o.insert("content_type".into(), Value::from("text/markdown"));
        }
        if m.attachment {
            o.insert("attachment".into(), json!({"name": "attachment.txt", "type": "text/plain; charset=utf-8"}));
        }
        let stored = Value::Object(o);
        self.accepted.lock().expect("accepted").push((std::time::Instant::now(), stored.clone()));
        stored
    }
}

/// ntfy's topic rule (S: `topicRegex`).
pub fn valid_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len()) && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `Basic base64(user:pass)` taken apart.
fn basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Standard base64 with padding (what HTTP Basic uses).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A message as the publish handler sees it, from either form.
#[derive(Debug, Default)]
struct Message {
    topic: String,
    title: String,
    message: String,
    /// 1 to 5; `None` when invalid (refused after the permission check, as ntfy does).
    priority: Option<u8>,
    tags: Vec<String>,
    click: String,
    markdown: bool,
    attachment: bool,
}

/// The JSON form's body (`publishMessage` in S: server/types.go): unknown keys are ignored,
/// a known key of the wrong type is invalid JSON.
fn from_json(body: &str) -> Result<Message, Reply> {
    if body.len() > JSON_LIMIT {
        return Err(error(413, 41303, "invalid request: JSON body too large"));
    }
    let invalid = || error(400, 40024, "invalid request: request body must be valid JSON");
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) else { return Err(invalid()) };
    let text = |key: &str| match o.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid()),
    };
    let topic = text("topic")?;
    if !valid_topic(&topic) {
        return Err(error(400, 40009, "invalid request: topic invalid"));
    }
    // A number (Go's `int`); 0 or none is the default, past 5 ntfy's priority parser refuses.
    let priority = match o.get("priority") {
        None | Some(Value::Null) => Some(3),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Some(3),
            Some(p @ 1..=5) => Some(p as u8),
            Some(_) => None,
            None => return Err(invalid()),
        },
        Some(_) => return Err(invalid()),
    };
    let tags = match o.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            a.iter().map(|t| t.as_str().map(str::to_owned).ok_or_else(invalid)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(invalid()),
    };
    let markdown = match o.get("markdown") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid()),
    };
    Ok(Message {
        topic,
        title: text("title")?,
        message: text("message")?,
        priority,
        tags,
        click: text("click")?,
        markdown,
        attachment: false,
    })
}

/// The plain form: the body is the message, the rest is in headers (any case) or lower-case
/// query parameters (D: docs.ntfy.sh/publish/#list-of-all-parameters).
fn from_headers(req: &Request, topic: &str) -> Result<Message, Reply> {
    let param = |names: &[&str]| {
        names.iter().find_map(|n| req.header(n).map(str::to_owned).or_else(|| req.query(n))).unwrap_or_default()
    };
    let priority = match param(&["x-priority", "priority", "prio", "p"]).trim().to_ascii_lowercase().as_str() {
        "" | "3" | "default" => Some(3),
        "1" | "min" => Some(1),
        "2" | "low" => Some(2),
        "4" | "high" => Some(4),
        "5" | "max" | "urgent" => Some(5),
        _ => None,
    };
    let tags = param(&["x-tags", "tags", "tag", "ta"])
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let markdown =
        matches!(param(&["x-markdown", "markdown", "md"]).to_ascii_lowercase().as_str(), "1" | "yes" | "true")
            || req.header("content-type").is_some_and(|c| c.starts_with("text/markdown"));
    Ok(Message {
        topic: topic.to_owned(),
        title: param(&["x-title", "title", "ti", "t"]),
        message: req.body.clone(),
        priority,
        tags,
        click: param(&["x-click", "click"]),
        markdown,
        attachment: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, body: &str, auth: Option<&str>) -> Request {
        Request {
            at: Instant::now(),
            method: "POST".into(),
            path: path.into(),
            headers: Vec::new(),
            body: body.into(),
            authorization: auth.map(str::to_owned),
        }
    }

    fn code(r: &Reply) -> (u16, u64) {
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v["code"].as_u64().unwrap_or(0))
    }

    #[test]
    fn follows_the_contract() {
        let s = Service::new(Auth::Token("tk_good".into()));
        let ok = r#"{"topic":"alerts","message":"hi","priority":4,"tags":["no_entry"]}"#;
        assert_eq!(code(&s.answer(&post("/", ok, Some("Bearer tk_good")))), (200, 0));
        // Basic with an empty user and the token as password: "OnRrX2dvb2Q=" is ":tk_good".
        assert_eq!(code(&s.answer(&post("/", ok, Some("Basic OnRrX2dvb2Q=")))), (200, 0));
        assert_eq!(code(&s.answer(&post("/", ok, Some("Bearer tk_bad")))), (401, 40101));
        assert_eq!(code(&s.answer(&post("/", ok, None))), (403, 40301));
        assert_eq!(code(&s.answer(&post("/a/b", ok, Some("Bearer tk_good")))), (404, 40401));
        let cases = [
            (r#"{"topic":"a b"}"#.to_owned(), (400, 40009)),
            (r#"{"topic":"docs"}"#.to_owned(), (400, 40010)),
            ("not json".to_owned(), (400, 40024)),
            (r#"{"topic":"t","priority":"high"}"#.to_owned(), (400, 40024)),
            (r#"{"topic":"t","priority":7}"#.to_owned(), (400, 40007)),
            (format!(r#"{{"topic":"t","message":"{}"}}"#, "x".repeat(4097)), (400, 40014)),
            (format!(r#"{{"topic":"t","message":"{}"}}"#, "x".repeat(8200)), (413, 41303)),
            (format!(r#"{{"topic":"t","title":"{}"}}"#, "x".repeat(1025)), (400, 40057)),
            (format!(r#"{{"topic":"t","tags":["{}"]}}"#, "x".repeat(513)), (400, 40058)),
        ];
        for (body, want) in cases {
            assert_eq!(code(&s.answer(&post("/", &body, Some("Bearer tk_good")))), want, "{body:.60}");
        }
        s.deny_write();
        assert_eq!(code(&s.answer(&post("/", ok, Some("Bearer tk_good")))), (403, 40301));
        let open = Service::new(Auth::Open);
        assert_eq!(code(&open.answer(&post("/", ok, Some("Bearer tk_any")))), (401, 40101));
        assert_eq!(code(&open.answer(&post("/alerts", "plain", None))), (200, 0));
        assert_eq!(open.accepted()[0]["message"], "plain");
    }

    #[test]
    fn the_request_limit_is_a_token_bucket() {
        let s = Service::new(Auth::Open);
        s.set_rate(3, Duration::from_millis(200));
        let ok = r#"{"topic":"t"}"#;
        for _ in 0..3 {
            assert_eq!(s.answer(&post("/", ok, None)).status, 200);
        }
        let r = s.answer(&post("/", ok, None));
        assert_eq!(code(&r), (429, 42901));
        assert!(!r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")));
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(s.answer(&post("/", ok, None)).status, 200);
        assert_eq!(s.answer(&post("/", ok, None)).status, 429);
        assert_eq!(s.accepted()[0]["message"], "triggered");
    }
}
