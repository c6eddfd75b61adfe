//! A Matrix homeserver's `send` endpoint, as the Client-Server API documents it and Synapse
//! answers it: `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}` for one
//! account (one access token) that has joined some rooms.
//!
//! Rules, in the order a request meets them (`CS` is
//! <https://spec.matrix.org/latest/client-server-api/>; Synapse's texts are from
//! <https://github.com/element-hq/synapse/blob/develop/synapse/api/errors.py>):
//! - Only that path; another is 404 `M_UNRECOGNIZED` "Unrecognized request", another method
//!   on it 405 `M_UNRECOGNIZED` (CS#common-error-codes; matrix-org/synapse behaviour, seen in
//!   <https://github.com/fadenb/Matrix-Chat-Message/issues/113>). Path segments are
//!   percent-decoded.
//! - The access token, from `Authorization: Bearer …` or the `access_token` query parameter
//!   (CS#using-access-tokens): none is 401 `M_MISSING_TOKEN` "Missing access token", a wrong
//!   one 401 `M_UNKNOWN_TOKEN` "Unrecognised access token" with `soft_logout: false`
//!   (Synapse's `MissingClientTokenError`, `InvalidClientTokenError`).
//! - Transaction ids (CS#transaction-identifiers): a request with the same token, path and
//!   txnId as an earlier one that succeeded is a retransmission: the same 200 and
//!   `event_id`, nothing stored, no rate-limit token spent. Failed requests are not
//!   remembered: their retry is new.
//! - The body must be JSON (400 `M_NOT_JSON` "Content not JSON.") and an object (400
//!   `M_BAD_JSON`) (CS#common-error-codes).
//! - The rate limit: a token bucket per account like Synapse's `rc_message` (default 0.2 a
//!   second, bursts of 10:
//!   <https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html#rc_message>):
//!   past it 429 `{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":N}`
//!   with `Retry-After: ceil(N/1000)` (CS#rate-limiting; Synapse's `LimitExceededError`).
//! - Membership: a room the account has not joined is 403 `M_FORBIDDEN` "User @bot:… not in
//!   room !…" (Synapse's text: <https://github.com/matrix-org/synapse/issues/13414>).
//! - `m.room.message` content per the spec's schema (CS#mroommessage-msgtypes, CS#mnotice):
//!   `msgtype` and `body` strings; with `format`, a `formatted_body` string; `m.mentions`,
//!   if any, an object (CS#user-and-room-mentions); else 400 `M_BAD_JSON`.
//! - Size (CS#size-limits): the whole event (the content in the envelope the homeserver
//!   signs) at most 65536 bytes of canonical JSON, else 413 `M_TOO_LARGE` (Synapse's
//!   `EventSizeError`).
//! - Relations (CS#forming-relationships-between-events), as Synapse checks them
//!   (`_validate_event_relation` in `synapse/handlers/message.py`), each a 400 `M_UNKNOWN`:
//!   an `m.relates_to.event_id` the homeserver does not know (never sent, or
//!   [purged](Service::purge)) and that nothing stored relates to is "Can't send relation to
//!   unknown event"; one in another room "Relations must be in the same room"; an `m.thread`
//!   whose root itself has a `rel_type` "Cannot start threads from an event with a relation"
//!   (CS#threading: servers should reject it with 400 `M_UNKNOWN`).
//! - Success: 200 `{"event_id": "$…"}` (CS#put_matrixclientv3roomsroomidsendeventtypetxnid),
//!   a new id per stored event.
//!
//! What the room shows ([`Service::shown`]) is what a client renders: every event that
//! replaces nothing, with its latest *valid* replacement applied (CS#event-replacements: same
//! room, same sender and type, a target that is no replacement itself, an `m.new_content`;
//! an invalid one is ignored, as clients must, and Synapse stores it all the same), its
//! thread root and its reply target.
//!
//! A test can force the next answers ([`Forced`]): any reply instead of the rules, or the
//! rules followed and the message stored but the answer lost (the connection dropped, or a
//! 5xx), and it can delay every answer after the message is stored, so that a worker can be
//! killed between request and answer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{Reply, Request, Responder, StandIn};

/// The largest event the spec allows, in bytes of canonical JSON.
pub const MAX_EVENT: usize = 65_536;

/// Synapse's default `rc_message`: messages a second, and the burst.
pub const DEFAULT_RATE: (f64, f64) = (0.2, 10.0);

/// What the next send gets instead of the ordinary answer.
pub enum Forced {
    /// This reply, whatever the request (nothing is stored).
    Reply(Reply),
    /// The rules as usual, the message stored if they allow it, and then the connection
    /// closed without an answer: a lost answer.
    Lose,
    /// The rules as usual, the message stored if they allow it, and then this reply (a 502
    /// from a proxy that gave up) instead of the 200.
    LoseWith(Reply),
}

/// One message the homeserver stored (an edit too: it is an event of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The room it was posted to (decoded from the path).
    pub room_id: String,
    /// The event type from the path (`m.room.message`).
    pub event_type: String,
    /// The transaction id from the path (decoded).
    pub txn_id: String,
    /// The event id it got.
    pub event_id: String,
    /// The content (the request's body).
    pub content: Value,
    /// When it was stored.
    pub at: Instant,
}

impl Message {
    /// `m.relates_to`'s `rel_type` and `event_id`, when it has them.
    pub fn relation(&self) -> Option<(&str, &str)> {
        let r = self.content.get("m.relates_to")?;
        Some((r.get("rel_type")?.as_str()?, r.get("event_id")?.as_str()?))
    }

    /// Whether it replaces another event (an edit).
    pub fn is_edit(&self) -> bool {
        self.relation().is_some_and(|(rel, _)| rel == "m.replace")
    }
}

/// A message as the room shows it: an event that replaces nothing, with its latest valid
/// replacement applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The original event's id (what edits and thread replies name).
    pub event_id: String,
    /// The thread it is in (`m.relates_to` with `rel_type: m.thread`): the root's id.
    pub thread_root: Option<String>,
    /// The event it replies to (`m.relates_to.m.in_reply_to`), fallback or not.
    pub in_reply_to: Option<String>,
    /// The content shown: the latest valid replacement's `m.new_content`, else the original.
    pub content: Value,
    /// How many valid replacements it had.
    pub edits: usize,
    /// When the original was stored.
    pub at: Instant,
}

impl Shown {
    /// The plain body shown.
    pub fn body(&self) -> &str {
        self.content.get("body").and_then(Value::as_str).unwrap_or("")
    }
}

struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst, tokens: burst, at: Instant::now() }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
        }
    }
}

#[derive(Default)]
struct State {
    rooms: Vec<String>,
    messages: Vec<Message>,
    /// (token, room, event type, txn id) → event id, for the sends that succeeded.
    transactions: HashMap<(String, String, String, String), String>,
    forced: VecDeque<Forced>,
    bucket: Option<Bucket>,
    delay: Duration,
    next_event: u64,
    /// Events the homeserver no longer has (an admin's purge, a retention policy).
    purged: std::collections::HashSet<String>,
}

/// The homeserver stand-in: one account, its token, the rooms it joined, what it stored.
pub struct Service {
    token: String,
    user_id: String,
    state: Mutex<State>,
}

/// A Matrix error answer, `{"errcode": …, "error": …}`.
pub fn error(status: u16, errcode: &str, error: &str) -> Reply {
    Reply::json(status, &json!({ "errcode": errcode, "error": error }))
}

/// Percent-decoding for a path segment (a `+` stays a `+`).
fn decode_segment(s: &str) -> String {
    crate::decode(&s.replace('+', "%2B"))
}

impl Service {
    /// A homeserver whose account `@bot:example.org` has the access token `token` and has
    /// joined `room_id`, with Synapse's default rate limit.
    pub fn new(token: &str, room_id: &str) -> Arc<Self> {
        let state = State {
            rooms: vec![room_id.to_owned()],
            bucket: Some(Bucket::new(DEFAULT_RATE.0, DEFAULT_RATE.1)),
            ..State::default()
        };
        Arc::new(Self { token: token.to_owned(), user_id: "@bot:example.org".to_owned(), state: Mutex::new(state) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account joins another room.
    pub fn join(&self, room_id: &str) {
        self.state().rooms.push(room_id.to_owned());
    }

    /// The account leaves a room (or is kicked).
    pub fn leave(&self, room_id: &str) {
        self.state().rooms.retain(|r| r != room_id);
    }

    /// The rate limit: `per_second` messages a second, bursts of `burst` (the bucket starts
    /// full). `None`: no limit (an account the admin exempted).
    pub fn rate_limit(&self, limit: Option<(f64, f64)>) {
        self.state().bucket = limit.map(|(rate, burst)| Bucket::new(rate, burst));
    }

    /// Every answer to a send waits `delay` after the message is stored.
    pub fn delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// What the next sends get, in order, before the ordinary answers resume.
    pub fn force(&self, next: impl IntoIterator<Item = Forced>) {
        self.state().forced.extend(next);
    }

    /// Every message stored, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.state().messages.clone()
    }

    /// The contents of the messages stored, in order.
    pub fn contents(&self) -> Vec<Value> {
        self.messages().into_iter().map(|m| m.content).collect()
    }

    /// How many events were stored that replace nothing (posts), and how many replacements
    /// (edits).
    pub fn counts(&self) -> (usize, usize) {
        let messages = self.messages();
        let edits = messages.iter().filter(|m| m.is_edit()).count();
        (messages.len() - edits, edits)
    }

    /// What the room shows, in order: see the module docs.
    pub fn shown(&self) -> Vec<Shown> {
        let messages = self.messages();
        let mut out: Vec<Shown> = Vec::new();
        for m in messages.iter().filter(|m| !m.is_edit()) {
            let relates = m.content.get("m.relates_to");
            let thread_root = m.relation().filter(|(rel, _)| *rel == "m.thread").map(|(_, id)| id.to_owned());
            let in_reply_to = relates
                .and_then(|r| r.get("m.in_reply_to"))
                .and_then(|r| r.get("event_id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let mut shown = Shown {
                event_id: m.event_id.clone(),
                thread_root,
                in_reply_to,
                content: m.content.clone(),
                edits: 0,
                at: m.at,
            };
            for edit in messages.iter().filter(|e| e.relation() == Some(("m.replace", m.event_id.as_str()))) {
                let valid = edit.room_id == m.room_id && edit.event_type == m.event_type;
                if let (true, Some(new)) = (valid, edit.content.get("m.new_content").filter(|n| n.is_object())) {
                    shown.content = new.clone();
                    shown.edits += 1;
                }
            }
            out.push(shown);
        }
        out
    }

    /// The message `event_id` as the room shows it.
    pub fn shown_event(&self, event_id: &str) -> Option<Shown> {
        self.shown().into_iter().find(|s| s.event_id == event_id)
    }

    /// The homeserver forgets `event_id` and what relates to it (an admin's purge of the
    /// room's history, a retention policy): a relation to it is to an unknown event.
    pub fn purge(&self, event_id: &str) {
        let mut state = self.state();
        state.purged.insert(event_id.to_owned());
        let related: Vec<String> = state
            .messages
            .iter()
            .filter(|m| m.relation().is_some_and(|(_, id)| id == event_id))
            .map(|m| m.event_id.clone())
            .collect();
        state.purged.extend(related);
        let purged = state.purged.clone();
        state.messages.retain(|m| !purged.contains(&m.event_id));
    }

    /// The responder for a [`StandIn`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// A [`StandIn`] on a free loopback port answering as this homeserver.
    pub fn start(self: &Arc<Self>) -> StandIn {
        StandIn::start(self.responder())
    }

    fn answer(&self, req: &Request) -> Reply {
        let forced = self.state().forced.pop_front();
        let lose = match forced {
            Some(Forced::Reply(reply)) => return reply,
            Some(Forced::Lose) => Some(Reply::hang_up()),
            Some(Forced::LoseWith(reply)) => Some(reply),
            None => None,
        };
        let (reply, stored) = self.follow_rules(req);
        if stored {
            let delay = self.state().delay;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            if let Some(lost) = lose {
                return lost;
            }
        }
        reply
    }

    /// The documented answer; whether a message was stored.
    fn follow_rules(&self, req: &Request) -> (Reply, bool) {
        let segments: Vec<&str> = req.route().split('/').collect();
        let [_, "_matrix", "client", "v3", "rooms", room, "send", event_type, txn_id] = segments[..] else {
            return (error(404, "M_UNRECOGNIZED", "Unrecognized request"), false);
        };
        if req.method != "PUT" {
            return (error(405, "M_UNRECOGNIZED", "Unrecognized request"), false);
        }
        let (room, event_type, txn_id) = (decode_segment(room), decode_segment(event_type), decode_segment(txn_id));
        let token = match (req.authorization.as_deref(), req.query("access_token")) {
            (Some(auth), _) => auth.strip_prefix("Bearer ").map(str::to_owned),
            (None, Some(t)) => Some(t),
            (None, None) => return (error(401, "M_MISSING_TOKEN", "Missing access token"), false),
        };
        if token.as_deref() != Some(self.token.as_str()) {
            let body =
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token", "soft_logout": false});
            return (Reply::json(401, &body), false);
        }
        let key = (self.token.clone(), room.clone(), event_type.clone(), txn_id.clone());
        let mut state = self.state();
        if let Some(event_id) = state.transactions.get(&key) {
            // A retransmission: the first answer again, nothing new stored.
            return (Reply::json(200, &json!({ "event_id": event_id })), true);
        }
        let Ok(content) = serde_json::from_str::<Value>(&req.body) else {
            return (error(400, "M_NOT_JSON", "Content not JSON."), false);
        };
        if !content.is_object() {
            return (error(400, "M_BAD_JSON", "Content must be a JSON object."), false);
        }
        if let Some(bucket) = &mut state.bucket {
            if let Err(wait) = bucket.take() {
                let ms = wait.as_millis().max(1) as u64;
                let body = json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": ms});
                return (Reply::json(429, &body).header("Retry-After", &ms.div_ceil(1000).to_string()), false);
            }
        }
        if !state.rooms.contains(&room) {
            let text = format!("User {} not in room {room}", self.user_id);
            return (error(403, "M_FORBIDDEN", &text), false);
        }
        if event_type == "m.room.message" {
            if let Err(why) = check_message(&content) {
                return (error(400, "M_BAD_JSON", &why), false);
            }
        }
        if let Err(why) = check_relation(&state.messages, &room, &content) {
            return (error(400, "M_UNKNOWN", why), false);
        }
        state.next_event += 1;
        let event_id = format!("${:0>43}", state.next_event);
        let pdu = json!({
            "auth_events": [format!("${:0>43}", 1), format!("${:0>43}", 2), format!("${:0>43}", 3)],
            "content": content,
            "depth": 123_456,
            "hashes": {"sha256": "A".repeat(43)},
            "origin": "example.org",
            "origin_server_ts": 1_700_000_000_000u64,
            "prev_events": [format!("${:0>43}", state.next_event - 1)],
            "room_id": room,
            "sender": self.user_id,
            "signatures": {"example.org": {"ed25519:a_AbCd": "B".repeat(86)}},
            "type": event_type,
            "unsigned": {"age_ts": 1_700_000_000_000u64},
        });
        let size = serde_json::to_vec(&pdu).map_or(usize::MAX, |v| v.len());
        if size > MAX_EVENT {
            return (error(413, "M_TOO_LARGE", "event too large"), false);
        }
        state.transactions.insert(key, event_id.clone());
        state.messages.push(Message {
            room_id: room,
            event_type,
            txn_id,
            event_id: event_id.clone(),
            content,
            at: Instant::now(),
        });
        (Reply::json(200, &json!({ "event_id": event_id })), true)
    }
}

/// Synapse's checks of a relation (see the module docs): the refusal's text, if any.
fn check_relation(stored: &[Message], room: &str, content: &Value) -> Result<(), &'static str> {
    let Some(relates) = content.get("m.relates_to") else { return Ok(()) };
    let Some(parent) = relates.get("event_id").and_then(Value::as_str) else { return Ok(()) };
    match stored.iter().find(|m| m.event_id == parent) {
        Some(p) if p.room_id != room => Err("Relations must be in the same room"),
        Some(p) if relates.get("rel_type").and_then(Value::as_str) == Some("m.thread") && p.relation().is_some() => {
            Err("Cannot start threads from an event with a relation")
        }
        Some(_) => Ok(()),
        None if stored.iter().any(|m| m.relation().is_some_and(|(_, id)| id == parent)) => Ok(()),
        None => Err("Can't send relation to unknown event"),
    }
}

/// The spec's schema for `m.room.message`, as far as a notice uses it.
fn check_message(content: &Value) -> Result<(), String> {
    for key in ["msgtype", "body"] {
        if !content.get(key).is_some_and(Value::is_string) {
            return Err(format!("'{key}' not in content or not a string"));
        }
    }
    if content.get("format").is_some() && !content.get("formatted_body").is_some_and(Value::is_string) {
        return Err("'formatted_body' is required with 'format'".to_owned());
    }
    if content.get("m.mentions").is_some_and(|m| !m.is_object()) {
        return Err("'m.mentions' must be an object".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    const TOKEN: &str = "syt_token";
    const ROOM: &str = "!room:example.org";
    const SEND: &str = "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message";

    /// One request over a fresh connection: the status and body of the answer, or `None` when
    /// the connection closed without one.
    fn call(port: u16, method: &str, path: &str, auth: Option<&str>, body: &str) -> Option<(u16, String, Value)> {
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if rest.len() >= len {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, head.to_owned(), serde_json::from_str(rest).unwrap_or(Value::Null)))
    }

    fn notice(text: &str) -> String {
        json!({"msgtype": "m.notice", "body": text, "m.mentions": {}}).to_string()
    }

    #[test]
    fn the_documented_rules() {
        let service = Service::new(TOKEN, ROOM);
        let standin = service.start();
        let port = standin.port;
        let put = |path: &str, auth: Option<&str>, body: &str| call(port, "PUT", path, auth, body).unwrap();
        let code = |a: &(u16, String, Value)| (a.0, a.2["errcode"].as_str().unwrap_or("").to_owned());
        let t1 = format!("{SEND}/t1");

        assert_eq!(code(&put("/_matrix/client/v3/rooms/x/send", Some(TOKEN), "{}")), (404, "M_UNRECOGNIZED".into()));
        assert_eq!(code(&call(port, "POST", &t1, Some(TOKEN), "{}").unwrap()), (405, "M_UNRECOGNIZED".into()));
        let missing = put(&t1, None, &notice("x"));
        assert_eq!(
            (code(&missing), missing.2["error"].clone()),
            ((401, "M_MISSING_TOKEN".into()), json!("Missing access token"))
        );
        let wrong = put(&t1, Some("syt_other"), &notice("x"));
        assert_eq!(code(&wrong), (401, "M_UNKNOWN_TOKEN".into()));
        assert_eq!(wrong.2["soft_logout"], json!(false));
        assert_eq!(code(&put(&t1, Some(TOKEN), "not json")), (400, "M_NOT_JSON".into()));
        assert_eq!(code(&put(&t1, Some(TOKEN), "[1]")), (400, "M_BAD_JSON".into()));
        assert_eq!(code(&put(&t1, Some(TOKEN), r#"{"msgtype":"m.notice"}"#)), (400, "M_BAD_JSON".into()));
        let html_without_body = json!({"msgtype": "m.notice", "body": "x", "format": "org.matrix.custom.html"});
        assert_eq!(code(&put(&t1, Some(TOKEN), &html_without_body.to_string())), (400, "M_BAD_JSON".into()));
        let other =
            put("/_matrix/client/v3/rooms/%21other%3Aexample.org/send/m.room.message/t1", Some(TOKEN), &notice("x"));
        assert_eq!(code(&other), (403, "M_FORBIDDEN".into()));
        assert_eq!(other.2["error"], json!("User @bot:example.org not in room !other:example.org"));
        // The whole event counts: a content of 65,000 bytes is too large once enveloped.
        assert_eq!(code(&put(&t1, Some(TOKEN), &notice(&"x".repeat(65_000)))), (413, "M_TOO_LARGE".into()));
        assert!(service.messages().is_empty(), "nothing refused was stored");

        // Success, then the same transaction again: the same event id, one message.
        let first = put(&t1, Some(TOKEN), &notice("hello"));
        assert_eq!(first.0, 200);
        let event_id = first.2["event_id"].as_str().unwrap().to_owned();
        assert!(event_id.starts_with('$'));
        let again = put(&t1, Some(TOKEN), &notice("something else"));
        assert_eq!((again.0, again.2["event_id"].as_str().unwrap()), (200, event_id.as_str()));
        // The token in the query works as well, and is the same client.
        let query = call(port, "PUT", &format!("{t1}?access_token={TOKEN}"), None, &notice("x")).unwrap();
        assert_eq!(query.2["event_id"].as_str(), Some(event_id.as_str()));
        let messages = service.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(
            (messages[0].room_id.as_str(), messages[0].txn_id.as_str(), messages[0].event_type.as_str()),
            (ROOM, "t1", "m.room.message")
        );
        assert_eq!(messages[0].content["body"], "hello");
        // Another txn id is another message; the same txn id in another room too.
        service.join("!b:example.org");
        put(&format!("{SEND}/t2"), Some(TOKEN), &notice("two"));
        put("/_matrix/client/v3/rooms/%21b%3Aexample.org/send/m.room.message/t1", Some(TOKEN), &notice("b"));
        assert_eq!(service.contents().len(), 3);
    }

    #[test]
    fn the_rate_limit_like_synapse() {
        let service = Service::new(TOKEN, ROOM);
        service.rate_limit(Some((1.0, 2.0)));
        let standin = service.start();
        let put = |txn: &str| call(standin.port, "PUT", &format!("{SEND}/{txn}"), Some(TOKEN), &notice(txn)).unwrap();
        assert_eq!(put("a").0, 200);
        assert_eq!(put("b").0, 200);
        let limited = put("c");
        assert_eq!(limited.0, 429);
        assert_eq!(limited.2["errcode"], "M_LIMIT_EXCEEDED");
        assert_eq!(limited.2["error"], "Too Many Requests");
        let ms = limited.2["retry_after_ms"].as_u64().unwrap();
        assert!(ms > 0 && ms <= 1000, "{ms}");
        assert!(limited.1.lines().any(|l| l == "Retry-After: 1"), "{}", limited.1);
        // A retransmission costs nothing.
        assert_eq!(put("a").0, 200);
        std::thread::sleep(Duration::from_millis(ms + 20));
        assert_eq!(put("c").0, 200);
        assert_eq!(service.messages().len(), 3);
        // Synapse's default: bursts of 10.
        let service = Service::new(TOKEN, ROOM);
        let standin = service.start();
        let codes: Vec<u16> = (0..11)
            .map(|i| call(standin.port, "PUT", &format!("{SEND}/{i}"), Some(TOKEN), &notice("x")).unwrap().0)
            .collect();
        assert_eq!(codes, [vec![200; 10], vec![429]].concat());
    }

    #[test]
    fn forced_lost_and_delayed_answers() {
        let service = Service::new(TOKEN, ROOM);
        let standin = service.start();
        let port = standin.port;
        service.force([
            Forced::Reply(Reply::json(500, &json!({"errcode": "M_UNKNOWN", "error": "boom"}))),
            Forced::Lose,
            Forced::LoseWith(Reply::new(502, "bad gateway")),
        ]);
        let put = |txn: &str| call(port, "PUT", &format!("{SEND}/{txn}"), Some(TOKEN), &notice(txn));
        assert_eq!(put("a").unwrap().0, 500);
        assert!(service.messages().is_empty(), "a forced reply stores nothing");
        assert!(put("a").is_none(), "the connection closed without an answer");
        assert_eq!(service.messages().len(), 1, "but the message was stored");
        assert_eq!(put("b").unwrap().0, 502);
        assert_eq!(service.messages().len(), 2);
        // The retries are recognised.
        assert_eq!(put("a").unwrap().0, 200);
        assert_eq!(put("b").unwrap().0, 200);
        assert_eq!(service.messages().len(), 2);

        // A delayed answer: the message is stored before the answer leaves.
        service.delay(Duration::from_millis(600));
        let started = Instant::now();
        let waiting = std::thread::spawn(move || call(port, "PUT", &format!("{SEND}/c"), Some(TOKEN), &notice("c")));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(service.messages().len(), 3, "stored while the answer waits");
        assert_eq!(waiting.join().unwrap().unwrap().0, 200);
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn relations_threads_and_edits() {
        let service = Service::new(TOKEN, ROOM);
        service.join("!b:example.org");
        let standin = service.start();
        let put = |room: &str, txn: &str, content: Value| {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                room.replace('!', "%21").replace(':', "%3A")
            );
            call(standin.port, "PUT", &path, Some(TOKEN), &content.to_string()).unwrap()
        };
        let id = |a: &(u16, String, Value)| a.2["event_id"].as_str().unwrap().to_owned();
        let root = id(&put(ROOM, "1", json!({"msgtype": "m.notice", "body": "ban"})));
        let reply = put(
            ROOM,
            "2",
            json!({"msgtype": "m.notice", "body": "unban", "m.relates_to": {
            "rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": {"event_id": root}}}),
        );
        assert_eq!(reply.0, 200);
        assert_ne!(id(&reply), root, "every stored event has its own id");
        let shown = service.shown_event(&id(&reply)).unwrap();
        assert_eq!(
            (shown.thread_root.as_deref(), shown.in_reply_to.as_deref()),
            (Some(root.as_str()), Some(root.as_str()))
        );
        // A thread off the reply (itself in a relation) is refused; so is one in another room
        // and one to an event nobody knows.
        let refusal = |a: (u16, String, Value)| {
            (a.0, a.2["errcode"].as_str().unwrap_or("").to_owned(), a.2["error"].as_str().unwrap_or("").to_owned())
        };
        let thread_of = |target: &str| json!({"msgtype": "m.notice", "body": "x", "m.relates_to": {"rel_type": "m.thread", "event_id": target}});
        assert_eq!(
            refusal(put(ROOM, "3", thread_of(&id(&reply)))),
            (400, "M_UNKNOWN".into(), "Cannot start threads from an event with a relation".into())
        );
        assert_eq!(refusal(put("!b:example.org", "4", thread_of(&root))).2, "Relations must be in the same room");
        assert_eq!(refusal(put(ROOM, "5", thread_of("$nothing"))).2, "Can't send relation to unknown event");
        // Edits: the latest valid replacement is shown; one without m.new_content is not.
        let edit = |txn: &str, body: &str, new: bool| {
            let mut c = json!({"msgtype": "m.notice", "body": format!("* {body}"), "m.relates_to": {"rel_type": "m.replace", "event_id": root}});
            if new {
                c["m.new_content"] = json!({"msgtype": "m.notice", "body": body});
            }
            put(ROOM, txn, c)
        };
        assert_eq!(edit("6", "ban, ban", true).0, 200);
        assert_eq!(edit("7", "ignored", false).0, 200);
        assert_eq!(edit("8", "ban, ban, ban", true).0, 200);
        let shown = service.shown_event(&root).unwrap();
        assert_eq!((shown.body(), shown.edits), ("ban, ban, ban", 2));
        assert_eq!(service.counts(), (2, 3));
        assert_eq!(service.shown().len(), 2);
        // Purged: the event and its edits are gone, and a new edit is to an unknown event.
        service.purge(&root);
        assert_eq!(refusal(edit("9", "late", true)).2, "Can't send relation to unknown event");
        assert!(service.shown_event(&root).is_none());
    }
}
