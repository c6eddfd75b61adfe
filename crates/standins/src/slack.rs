//! A loopback stand-in for Slack's Web API methods `chat.postMessage` and `chat.update`,
//! following their documented contract, so that a sink that breaks it (a channel name given
//! to chat.update, a reply threaded under a message of another channel, an edit that drops
//! what it should replace) fails here as it would against slack.com.
//!
//! Sources:
//! - P: <https://docs.slack.dev/reference/methods/chat.postMessage> (arguments, errors, the
//!   answer `{"ok":true,"channel":"C…","ts":"…","message":{…}}`)
//! - U: <https://docs.slack.dev/reference/methods/chat.update> (Tier 3; `channel` is the
//!   conversation's id; `ts`; `text`, `attachments`, `blocks`; `parse` defaults to `client`;
//!   errors `message_not_found`, `cant_update_message`, `edit_window_closed`,
//!   `msg_too_long` past 4,000 characters of `text`, `no_text`, …)
//! - R: <https://docs.slack.dev/apis/web-api/rate-limits> (HTTP 429 with `Retry-After`)
//! - A: <https://docs.slack.dev/authentication/tokens> (a JSON body's token goes in
//!   `Authorization: Bearer`)
//!
//! Rules, checked in this order (the first that fails answers; every refusal but the 429 is
//! HTTP 200 with `{"ok": false, "error": …}`, as Slack answers):
//! 1. A forced reply ([`Service::force`]) answers before anything else.
//! 2. Only `POST /api/chat.postMessage` and `POST /api/chat.update`; another method name is
//!    `unknown_method`; another HTTP method is refused with `invalid_request` (this rule is
//!    the stand-in's: Slack takes GET for some methods; the sink must POST JSON).
//! 3. The rate-limit mode ([`Service::rate_limit`]): HTTP 429, `Retry-After: N` and
//!    `{"ok":false,"error":"ratelimited"}` [R], for every call until it is turned off.
//! 4. `Authorization: Bearer <token>` [A]: none is `not_authed`, another token
//!    `invalid_auth`.
//! 5. `Content-Type: application/json` (`invalid_post_type` otherwise; the form encoding
//!    Slack also takes is refused: the stand-in's rule), a JSON object (`invalid_json`). A
//!    type without `charset` is answered with `"warning": "missing_charset"` and
//!    `response_metadata.warnings`, as Slack does, so that a sink is seen to ignore extra
//!    fields.
//! 6. chat.postMessage [P]: `channel` a known channel's id, or its name with or without `#`
//!    ([`Service::add_channel`]), else `channel_not_found`; one of `text`, `attachments`,
//!    `blocks`, else `no_text`; `text` at most 40,000 characters, else `msg_too_long` (Slack
//!    documents that it cuts longer texts; the stand-in refuses, the stricter reading); at most
//!    100 attachments (`too_many_attachments`); at most 50 blocks at the top and in each
//!    attachment, sections' text at most 3,000 characters, else `invalid_blocks`;
//!    `reply_broadcast` a boolean. `thread_ts` of the wrong shape is `invalid_thread_ts`; one
//!    that names no message of that channel (one of another channel, a deleted one, a number
//!    instead of a string) is accepted with `ok: true` and the reply is shown nowhere, as
//!    python-slack-sdk#840 reports: [`Message::visible`] is false.
//! 7. chat.update [U]: `channel` must be an id (a name is `channel_not_found`: the method takes
//!    no names, python-slack-sdk#1495); `ts` a message of that channel not deleted
//!    ([`Service::delete`]), else `message_not_found`; one of `text`, `attachments`, `blocks`,
//!    else `no_text`; `text` at most 4,000 characters, else `msg_too_long`; blocks as above.
//!    The edit replaces `text`, and `attachments` and `blocks` when given; without `blocks`,
//!    a `text` removes the old blocks [U]. `parse` is recorded ([`Message::parse`]).
//! 8. Success: a new `ts` per message, unique and increasing (`1700000000.000001`), the
//!    channel's id, and the message echoed back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// chat.postMessage's longest `text` before the stand-in refuses it (Slack cuts it there).
pub const MAX_POST_TEXT: usize = 40_000;
/// chat.update's longest `text`.
pub const MAX_UPDATE_TEXT: usize = 4_000;
/// The most blocks in a message or in one attachment.
pub const MAX_BLOCKS: usize = 50;
/// The longest text of a section block.
pub const MAX_SECTION: usize = 3_000;
/// The most attachments on a message.
pub const MAX_ATTACHMENTS: usize = 100;

/// A message as the channel shows it now.
#[derive(Debug, Clone)]
pub struct Message {
    /// The channel's id.
    pub channel: String,
    /// Its `ts`, unique in the stand-in.
    pub ts: String,
    /// The `thread_ts` it was posted with, as sent (a number is kept as its text).
    pub thread_ts: Option<String>,
    /// Whether the reply was also broadcast to the channel.
    pub reply_broadcast: bool,
    /// False for a reply whose `thread_ts` names no message of its channel: Slack takes it and
    /// shows it nowhere.
    pub visible: bool,
    /// The current `text`.
    pub text: String,
    /// The current `attachments` (`Null` when none).
    pub attachments: Value,
    /// The current top-level `blocks` (`Null` when none).
    pub blocks: Value,
    /// `parse` of the latest edit, if it gave one.
    pub parse: Option<String>,
    /// How many times chat.update changed it.
    pub edits: usize,
    /// Deleted in Slack ([`Service::delete`]).
    pub deleted: bool,
    /// The chat.postMessage body it was posted with.
    pub posted: Value,
}

impl Message {
    /// Every text the message shows now: `text`, then each string inside its attachments and
    /// blocks (sections, fields, fallbacks), one per line.
    pub fn shown(&self) -> String {
        let mut out = vec![self.text.clone()];
        strings(&self.attachments, &mut out);
        strings(&self.blocks, &mut out);
        out.join("\n")
    }

    /// Whether it is a reply in the thread of `parent`.
    pub fn replies_to(&self, parent: &Message) -> bool {
        self.visible && self.channel == parent.channel && self.thread_ts.as_deref() == Some(parent.ts.as_str())
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// A channel: its id and its name (without `#`).
#[derive(Debug, Clone)]
struct Channel {
    id: String,
    name: String,
}

#[derive(Default)]
struct State {
    channels: Vec<Channel>,
    messages: Vec<Message>,
    forced: VecDeque<Reply>,
    rate_limit: Option<u64>,
    post_calls: usize,
    update_calls: usize,
    last_ts: (u64, u64),
}

/// The Web API stand-in: make it with the token it accepts, add channels, and serve
/// [`Service::responder`] with [`crate::StandIn::start`]; point the sink's `url` at
/// `StandIn::url("/api/")`.
pub struct Service {
    token: String,
    state: Mutex<State>,
}

/// Slack's refusal: HTTP 200 with `{"ok": false, "error": code}`. For [`Service::force`].
pub fn error(code: &str) -> Reply {
    Reply::json(200, &json!({ "ok": false, "error": code }))
}

/// Slack's 429 [R]: `Retry-After` in seconds and `{"ok":false,"error":"ratelimited"}`.
pub fn rate_limited(retry_after: u64) -> Reply {
    Reply::json(429, &json!({ "ok": false, "error": "ratelimited" })).header("Retry-After", &retry_after.to_string())
}

impl Service {
    /// A workspace whose app has `token` (`xoxb-…`) and no channel yet.
    pub fn new(token: &str) -> Arc<Self> {
        Arc::new(Self { token: token.to_owned(), state: Mutex::new(State::default()) })
    }

    /// Adds the channel `id` (`C0123ABCD`) called `name` (`ops` or `#ops`).
    pub fn add_channel(&self, id: &str, name: &str) {
        let name = name.trim_start_matches('#').to_owned();
        self.lock().channels.push(Channel { id: id.to_owned(), name });
    }

    /// The next requests get these replies, one each, whatever they hold; they count as calls.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().forced.extend(replies);
    }

    /// `Some(n)`: every call is refused with a 429 and `Retry-After: n` until `None`.
    pub fn rate_limit(&self, retry_after: Option<u64>) {
        self.lock().rate_limit = retry_after;
    }

    /// Deletes the message `ts`, as a user in Slack would: it is no longer shown or editable.
    pub fn delete(&self, ts: &str) {
        for m in self.lock().messages.iter_mut().filter(|m| m.ts == ts) {
            m.deleted = true;
        }
    }

    /// Every message posted, in order, as it is now (edits applied).
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// The message `ts`, as it is now.
    pub fn message(&self, ts: &str) -> Option<Message> {
        self.lock().messages.iter().find(|m| m.ts == ts).cloned()
    }

    /// Requests to chat.postMessage, whatever their answer.
    pub fn post_calls(&self) -> usize {
        self.lock().post_calls
    }

    /// Requests to chat.update, whatever their answer.
    pub fn update_calls(&self) -> usize {
        self.lock().update_calls
    }

    /// The responder to serve with [`crate::StandIn::start`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to one request, by the rules in the module docs.
    pub fn answer(&self, req: &Request) -> Reply {
        let mut s = self.lock();
        let method = req.route().strip_prefix("/api/").unwrap_or("");
        match method {
            "chat.postMessage" => s.post_calls += 1,
            "chat.update" => s.update_calls += 1,
            _ => {}
        }
        if let Some(forced) = s.forced.pop_front() {
            return forced;
        }
        if !matches!(method, "chat.postMessage" | "chat.update") {
            return error("unknown_method");
        }
        if req.method != "POST" {
            return error("invalid_request");
        }
        if let Some(wait) = s.rate_limit {
            return rate_limited(wait);
        }
        match req.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            None => return error("not_authed"),
            Some(t) if t != self.token => return error("invalid_auth"),
            Some(_) => {}
        }
        let content_type = req.header("content-type").unwrap_or("").to_ascii_lowercase();
        let mut parts = content_type.split(';').map(str::trim);
        if parts.next() != Some("application/json") {
            return error("invalid_post_type");
        }
        let charset = parts.any(|p| p.starts_with("charset="));
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&req.body) else { return error("invalid_json") };
        let answer = if method == "chat.postMessage" { s.post(body) } else { s.update(body) };
        match answer {
            Err(code) => error(code),
            Ok(mut fields) => {
                if !charset {
                    let at = fields.len() - 1;
                    fields.insert(at, ("warning", json!("missing_charset")));
                    fields.insert(at + 1, ("response_metadata", json!({ "warnings": ["missing_charset"] })));
                }
                Reply::new(200, &in_order(&fields)).header("Content-Type", "application/json")
            }
        }
    }
}

/// A JSON object with its fields in this order. Slack's answers start with `ok`, `channel`
/// and `ts` and end with the echoed `message` [P, U], which matters to a client that reads
/// at most so much of an answer (`serde_json` would sort the keys).
fn in_order(fields: &[(&str, Value)]) -> String {
    let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    format!("{{{}}}", parts.join(","))
}

/// A success's fields, in the order Slack sends them.
type Fields = Vec<(&'static str, Value)>;

/// `text`, `attachments` and `blocks` as Slack checks them for both methods.
fn content(body: &Map<String, Value>, max_text: usize) -> Result<(), &'static str> {
    let text = match body.get("text") {
        None | Some(Value::Null) => "",
        Some(Value::String(t)) => t,
        Some(_) => return Err("invalid_arguments"),
    };
    let attachments = match body.get("attachments") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a,
        Some(_) => return Err("invalid_attachments"),
    };
    let blocks = match body.get("blocks") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(b)) => b,
        Some(_) => return Err("invalid_blocks_format"),
    };
    if text.trim().is_empty() && attachments.is_empty() && blocks.is_empty() {
        return Err("no_text");
    }
    if text.chars().count() > max_text {
        return Err("msg_too_long");
    }
    if attachments.len() > MAX_ATTACHMENTS {
        return Err("too_many_attachments");
    }
    let lists = attachments.iter().map(|a| a.get("blocks").and_then(Value::as_array).map_or(&[][..], Vec::as_slice));
    for list in std::iter::once(blocks).chain(lists) {
        if list.len() > MAX_BLOCKS {
            return Err("invalid_blocks");
        }
        for block in list {
            let section = block.get("text").and_then(|t| t.get("text")).and_then(Value::as_str);
            if section.is_some_and(|t| t.chars().count() > MAX_SECTION) {
                return Err("invalid_blocks");
            }
        }
    }
    Ok(())
}

/// `secs.seq`, both parts digits: Slack's shape of a message timestamp.
fn ts_shaped(text: &str) -> bool {
    text.split_once('.').is_some_and(|(a, b)| {
        [a, b].iter().all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

impl State {
    fn channel(&self, given: &str) -> Option<&Channel> {
        let name = given.strip_prefix('#').unwrap_or(given);
        self.channels.iter().find(|c| c.id == given || c.name == name)
    }

    fn next_ts(&mut self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (secs, seq) = self.last_ts;
        self.last_ts = if now > secs {
            (now, 1)
        } else if seq < 999_999 {
            (secs, seq + 1)
        } else {
            (secs + 1, 1)
        };
        format!("{}.{:06}", self.last_ts.0, self.last_ts.1)
    }

    fn post(&mut self, body: Map<String, Value>) -> Result<Fields, &'static str> {
        let given = body.get("channel").and_then(Value::as_str).unwrap_or("");
        let channel = self.channel(given).ok_or("channel_not_found")?.id.clone();
        content(&body, MAX_POST_TEXT)?;
        let reply_broadcast = match body.get("reply_broadcast") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("invalid_arguments"),
        };
        let (thread_ts, visible) = match body.get("thread_ts") {
            None | Some(Value::Null) => (None, true),
            Some(Value::String(t)) if ts_shaped(t) => {
                let parent = self.messages.iter().any(|m| m.channel == channel && m.ts == *t && !m.deleted);
                (Some(t.clone()), parent)
            }
            // A number is taken and names no message (python-slack-sdk#840).
            Some(Value::Number(n)) => (Some(n.to_string()), false),
            Some(_) => return Err("invalid_thread_ts"),
        };
        let ts = self.next_ts();
        let text = body.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
        let attachments = body.get("attachments").cloned().unwrap_or(Value::Null);
        let blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
        let mut echo = json!({
            "type": "message", "subtype": "bot_message", "bot_id": "B0STANDIN", "ts": ts, "text": text,
        });
        for (key, value) in [("attachments", &attachments), ("blocks", &blocks)] {
            if !value.is_null() {
                echo[key] = value.clone();
            }
        }
        if let Some(t) = &thread_ts {
            echo["thread_ts"] = json!(t);
        }
        self.messages.push(Message {
            channel: channel.clone(),
            ts: ts.clone(),
            thread_ts,
            reply_broadcast,
            visible,
            text,
            attachments,
            blocks,
            parse: None,
            edits: 0,
            deleted: false,
            posted: Value::Object(body),
        });
        Ok(vec![("ok", json!(true)), ("channel", json!(channel)), ("ts", json!(ts)), ("message", echo)])
    }

    fn update(&mut self, body: Map<String, Value>) -> Result<Fields, &'static str> {
        let given = body.get("channel").and_then(Value::as_str).unwrap_or("");
        // chat.update takes the conversation's id only.
        let channel = self.channels.iter().find(|c| c.id == given).ok_or("channel_not_found")?.id.clone();
        let ts = body.get("ts").and_then(Value::as_str).unwrap_or("");
        let message = self
            .messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts && !m.deleted)
            .ok_or("message_not_found")?;
        content(&body, MAX_UPDATE_TEXT)?;
        if let Some(text) = body.get("text").and_then(Value::as_str) {
            message.text = text.to_owned();
            if !body.contains_key("blocks") {
                message.blocks = Value::Null;
            }
        }
        for (key, slot) in [("attachments", &mut message.attachments), ("blocks", &mut message.blocks)] {
            if let Some(v) = body.get(key) {
                *slot = v.clone();
            }
        }
        message.parse = body.get("parse").and_then(Value::as_str).map(str::to_owned);
        message.edits += 1;
        let echo = json!({ "text": message.text, "attachments": message.attachments, "ts": message.ts });
        Ok(vec![
            ("ok", json!(true)),
            ("channel", json!(channel)),
            ("ts", json!(message.ts)),
            ("text", json!(message.text)),
            ("message", echo),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StandIn;

    const TOKEN: &str = "xoxb-stand-in";

    /// A request as the sink sends it.
    fn call(server: &StandIn, method: &str, auth: Option<&str>, body: &Value) -> (u16, Value, Option<String>) {
        use std::io::{Read, Write};
        let text = body.to_string();
        let mut head = format!(
            "POST /api/{method} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            text.len()
        );
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        sock.write_all(format!("{head}\r\n{text}").as_bytes()).unwrap();
        sock.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        let _ = sock.read_to_string(&mut out);
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (headers, body) = out.split_once("\r\n\r\n").unwrap();
        let retry = headers.lines().find_map(|l| l.strip_prefix("Retry-After: ")).map(str::to_owned);
        (status, serde_json::from_str(body).unwrap_or(Value::Null), retry)
    }

    fn setup() -> (Arc<Service>, StandIn) {
        let service = Service::new(TOKEN);
        service.add_channel("C0OPS0001", "#ops");
        service.add_channel("C0DEV0002", "dev");
        let server = StandIn::start(service.responder());
        (service, server)
    }

    const AUTH: Option<&str> = Some("Bearer xoxb-stand-in");

    #[test]
    fn posts_threads_and_edits_by_the_contract() {
        let (service, server) = setup();
        let (status, ban, _) = call(&server, "chat.postMessage", AUTH, &json!({"channel": "#ops", "text": "ban"}));
        assert_eq!((status, &ban["ok"], &ban["channel"]), (200, &json!(true), &json!("C0OPS0001")), "{ban}");
        assert_eq!(ban["warning"], "missing_charset");
        // Slack's order, `message` last: a client that reads only the start still finds `ts`.
        let raw = service
            .answer(&Request {
                at: std::time::Instant::now(),
                method: "POST".into(),
                path: "/api/chat.postMessage".into(),
                headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
                body: json!({"channel": "ops", "text": "raw"}).to_string(),
                authorization: AUTH.map(str::to_owned),
            })
            .body;
        assert!(
            raw.starts_with(r#"{"ok":true,"channel":"C0OPS0001","ts":""#) && raw.contains(r#","message":{"#),
            "{raw}"
        );
        assert!(!raw.contains("missing_charset"), "{raw}");
        let ts = ban["ts"].as_str().unwrap().to_owned();
        let (_, reply, _) =
            call(&server, "chat.postMessage", AUTH, &json!({"channel": "ops", "text": "unban", "thread_ts": ts}));
        assert!(reply["ts"].as_str().unwrap() > ts.as_str(), "{reply}");
        // The same ts under another channel names nothing there: taken, shown nowhere.
        let (_, lost, _) =
            call(&server, "chat.postMessage", AUTH, &json!({"channel": "C0DEV0002", "text": "x", "thread_ts": ts}));
        assert_eq!(lost["ok"], true);
        let (_, bad, _) =
            call(&server, "chat.postMessage", AUTH, &json!({"channel": "ops", "text": "x", "thread_ts": "soon"}));
        assert_eq!(bad["error"], "invalid_thread_ts");
        let messages = service.messages();
        assert!(messages[2].replies_to(&messages[0]) && !messages[3].visible && !messages[3].replies_to(&messages[0]));

        // chat.update: an id, not a name; the ts of a live message.
        let edit = |channel: &str, ts: &str, text: &str| {
            call(&server, "chat.update", AUTH, &json!({"channel": channel, "ts": ts, "text": text, "parse": "none"})).1
        };
        assert_eq!(edit("#ops", &ts, "x")["error"], "channel_not_found");
        assert_eq!(edit("C0OPS0001", "1.000001", "x")["error"], "message_not_found");
        assert_eq!(edit("C0OPS0001", &ts, &"y".repeat(MAX_UPDATE_TEXT + 1))["error"], "msg_too_long");
        let ok = edit("C0OPS0001", &ts, "ban, edited");
        assert_eq!((&ok["ok"], ok["ts"].as_str()), (&json!(true), Some(ts.as_str())), "{ok}");
        let m = service.message(&ts).unwrap();
        assert_eq!((m.text.as_str(), m.edits, m.parse.as_deref()), ("ban, edited", 1, Some("none")));
        service.delete(&ts);
        assert_eq!(edit("C0OPS0001", &ts, "gone")["error"], "message_not_found");
        assert_eq!((service.post_calls(), service.update_calls()), (5, 5));
    }

    #[test]
    fn refusals_by_the_contract() {
        let (service, server) = setup();
        let post = |auth, body: Value| call(&server, "chat.postMessage", auth, &body);
        assert_eq!(post(None, json!({"channel": "ops", "text": "x"})).1["error"], "not_authed");
        let (status, wrong, _) = post(Some("Bearer xoxb-other"), json!({"channel": "ops", "text": "x"}));
        assert_eq!((status, &wrong["error"]), (200, &json!("invalid_auth")));
        assert_eq!(post(AUTH, json!({"channel": "#nowhere", "text": "x"})).1["error"], "channel_not_found");
        assert_eq!(post(AUTH, json!({"channel": "ops"})).1["error"], "no_text");
        let long = "x".repeat(MAX_POST_TEXT + 1);
        assert_eq!(post(AUTH, json!({"channel": "ops", "text": long})).1["error"], "msg_too_long");
        let blocks: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        let body = json!({"channel": "ops", "text": "x", "attachments": [{"blocks": blocks}]});
        assert_eq!(post(AUTH, body).1["error"], "invalid_blocks");
        let section = json!({"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(MAX_SECTION + 1)}});
        assert_eq!(
            post(AUTH, json!({"channel": "ops", "text": "x", "blocks": [section]})).1["error"],
            "invalid_blocks"
        );
        assert_eq!(
            call(&server, "chat.delete", AUTH, &json!({"channel": "ops", "ts": "1.1"})).1["error"],
            "unknown_method"
        );
        service.rate_limit(Some(30));
        let (status, limited, retry) = post(AUTH, json!({"channel": "ops", "text": "x"}));
        assert_eq!((status, &limited["error"], retry.as_deref()), (429, &json!("ratelimited"), Some("30")));
        service.rate_limit(None);
        service.force([error("edit_window_closed")]);
        assert_eq!(post(AUTH, json!({"channel": "ops", "text": "x"})).1["error"], "edit_window_closed");
        assert!(service.messages().is_empty());
        assert_eq!(post(AUTH, json!({"channel": "ops", "text": "x"})).1["ok"], true);
    }

    #[test]
    fn timestamps_are_unique_and_increasing() {
        let mut state = State::default();
        let all: Vec<String> = (0..3000).map(|_| state.next_ts()).collect();
        let parts = |t: &str| {
            let (a, b) = t.split_once('.').unwrap();
            (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap())
        };
        assert!(all.windows(2).all(|w| parts(&w[0]) < parts(&w[1])), "{all:?}");
        assert!(all.iter().all(|t| ts_shaped(t)));
    }
}
