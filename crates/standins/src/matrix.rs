//! A Matrix homeserver's `send` endpoint, as the Client-Server API documents it and Synapse
//! answers it: `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}` for one
//! account (one access token) that has joined some rooms.
//!
//! Rules, in the order a request meets them (sources: the contract in the f2b-notify repo,
//! from <https://spec.matrix.org/latest/client-server-api/> and Synapse's `synapse/api/errors.py`):
//! - Only that path; another is 404 `M_UNRECOGNIZED` "Unrecognized request", another method
//!   on it 405 `M_UNRECOGNIZED` (`#api-standards`, Synapse). Path segments are percent-decoded.
//! - The access token, from `Authorization: Bearer …` or the `access_token` query parameter:
//!   none is 401 `M_MISSING_TOKEN` "Missing access token", a wrong one 401 `M_UNKNOWN_TOKEN`
//!   "Unrecognised access token" with `soft_logout: false` (`#using-access-tokens`).
//! - Transaction ids: a request with the same token, path and txnId as an earlier one that
//!   succeeded is a retransmission: the same 200 and `event_id`, nothing stored
//!   (`#transaction-identifiers`). Failed requests are not remembered: their retry is new.
//! - The body must be JSON (400 `M_NOT_JSON` "Content not JSON.") and an object (400
//!   `M_BAD_JSON`).
//! - The rate limit: a token bucket per account like Synapse's `rc_message` (default 0.2 a
//!   second, bursts of 10): past it 429 `{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many
//!   Requests","retry_after_ms":N}` with `Retry-After: ceil(N/1000)` (`#rate-limiting`,
//!   Synapse's `LimitExceededError`; the config documentation's `rc_message`).
//! - Membership: a room the account has not joined is 403 `M_FORBIDDEN` "User @bot:… not in
//!   room !…" (Synapse's text; matrix-org/synapse#13414).
//! - `m.room.message` content per the spec's schema: `msgtype` and `body` strings; with
//!   `format`, a `formatted_body` string; `m.mentions`, if any, an object (400 `M_BAD_JSON`).
//! - Size: the whole event (the content in the envelope the homeserver signs) at most 65536
//!   bytes of canonical JSON, else 413 `M_TOO_LARGE` (`#size-limits`, Synapse's
//!   `EventSizeError`).
//! - Success: 200 `{"event_id": "$…"}`.
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

/// One message the homeserver stored.
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
}

/// The homeserver stand-in: one account, its token, the rooms it joined, what it stored.
pub struct Service {
    token: String,
    user_id: String,
    state: Mutex<State>,
}

fn error(status: u16, errcode: &str, error: &str) -> Reply {
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
        state.messages.push(Message { room_id: room, event_type, txn_id, event_id: event_id.clone(), content });
        (Reply::json(200, &json!({ "event_id": event_id })), true)
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
