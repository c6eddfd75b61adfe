//! A Discord incoming webhook (Execute Webhook) that follows Discord's documented contract,
//! so that a sink that breaks it fails here the way it would against discord.com.
//!
//! Sources (repository discord/discord-api-docs, rendered at discord.com/developers/docs):
//! - W: <https://discord.com/developers/docs/resources/webhook#execute-webhook>
//! - M: <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>,
//!   `#allowed-mentions-object`
//! - R: <https://discord.com/developers/docs/topics/rate-limits>
//! - C: <https://discord.com/developers/docs/topics/opcodes-and-status-codes#json>
//! - F: <https://discord.com/developers/docs/reference> (error messages, User-Agent, Content-Type)
//!
//! Rules, checked in this order (the first that fails answers):
//! 1. A forced reply ([`Service::force`]) answers before anything else.
//! 2. `User-Agent` must be `DiscordBot (…)` [F §User Agent]; else 403, code 40333 [C]. (The
//!    body of that refusal is not documented; the code is.)
//! 3. The path is `/api[/vN]/webhooks/{id}/{token}` [W, F], or
//!    `…/{token}/messages/{message_id}` (Edit Webhook Message [W]); another path gets
//!    Discord's generic `404: Not Found`, code 0. Only POST on the first and PATCH on the
//!    second (the only calls modelled); another method gets 405, code 0.
//! 4. An unknown (or [deleted](Service::delete)) webhook id: 404 `Unknown Webhook`, code 10015;
//!    the right id with another token: 401 `Invalid Webhook Token`, code 50027 [C; bodies as
//!    observed in discord.js#10798 and client tests].
//! 5. Rate limits, counted over every request that got this far (failed ones count too [R;
//!    birdie0's guide in discord-api-docs#6753]): 5 per 2 s per webhook and 30 per 60 s per
//!    channel (Discord staff in discord-api-docs#367; the docs say only to read the headers).
//!    A request over either gets 429 with `{"message", "retry_after" (float s), "global":
//!    false}` and `Retry-After` (whole seconds, rounded up) plus `X-RateLimit-Limit`,
//!    `-Remaining`, `-Reset`, `-Reset-After`, `-Bucket`, `-Scope` (`user` for the webhook's
//!    bucket, `shared` with "The resource is being rate limited." for the channel's) [R].
//!    Every other answer from here on carries the `X-RateLimit-*` headers of the webhook's
//!    bucket. [`Service::limits`] changes the numbers (tests that must not wait a minute).
//!    Edits count in the same buckets as posts: Discord gives the edit route a bucket of its
//!    own and does not publish its numbers, so the stand-in takes the stricter reading.
//! 6. `Content-Type: application/json` [F §Content Type]; else 400, code 50035 with a
//!    request-level `CONTENT_TYPE_INVALID` form error (the shape of F §Error Messages).
//! 7. A body that is not JSON: 400, code 50109 "The request body contains invalid JSON." [C].
//! 8. The form [W, M], each violation a 400 `Invalid Form Body`, code 50035, with Discord's
//!    `errors` tree (`{"embeds": {"0": {"description": {"_errors": [{"code":
//!    "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}`) [F]:
//!    `content` ≤ 2000; `username` 1–80; `avatar_url` an http(s) URL; `embeds` ≤ 10; per embed
//!    `title` ≤ 256, `description` ≤ 4096, `fields` ≤ 25, field `name` ≤ 256 and `value` ≤
//!    1024 (both required and not empty), `footer.text` ≤ 2048, `author.name` ≤ 256, `color`
//!    0 to 0xFFFFFF; all embeds' texts together ≤ 6000 (`MAX_EMBED_SIZE_EXCEEDED`, as
//!    observed); `flags` only SUPPRESS_EMBEDS (4) and SUPPRESS_NOTIFICATIONS (4096); the
//!    `thread_id` and `wait` query parameters well formed. Lengths are measured "inclusively"
//!    after trimming [M], in UTF-16 units: Discord does not say whether it counts units or
//!    code points, and units are the stricter reading.
//! 9. f2b-notify's own rule, not Discord's: `allowed_mentions` must be `{"parse": []}` (Discord
//!    parses mentions when it is left out [M]). A body without it gets a 400, code 50035, whose
//!    form error is marked `STAND_IN_POLICY`.
//! 10. Nothing to show (no `content`, `embeds`, `components`, `attachments`, `poll`): 400
//!     "Cannot send an empty message", code 50006 [C; body as in discord-api-docs#5424].
//! 11. Success: with `wait=true` (or `1`), 200 and the message object (`id` a snowflake
//!     string, unique and increasing, `channel_id`, `webhook_id`, `content`, `embeds`,
//!     `timestamp`, …); without it, 204 and no body [W].
//!
//! An edit (PATCH …/messages/{message_id}) meets rules 1 to 9 too (its form is Edit Webhook
//! Message's: `content`, `embeds`, `flags`, `allowed_mentions`, … [W]; `username` and
//! `avatar_url` are not among them, which Discord ignores and the stand-in refuses with a
//! `STAND_IN_POLICY` form error, so that a sink believing it changes them is noticed; and
//! `allowed_mentions` is required as on a post: without it Discord parses the edited content
//! with the default allowances [W]). Then:
//! 12. A message this webhook did not post, one [deleted](Service::delete_message), or one
//!     in another thread than the `thread_id` query names (none: the webhook's channel):
//!     404 `Unknown Message`, code 10008 [C].
//! 13. The fields given replace the message's (`null` clears one; the rest are kept [W]); a
//!     message left with nothing to show is 400, code 50006. Success: 200 and the message
//!     object, with `edited_timestamp` [W].
//!
//! Webhooks cannot reply: Execute Webhook takes no `message_reference` [W], and Discord
//! ignores fields it does not know, so the stand-in records none.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{Reply, Request, Responder};

/// The channel every stand-in webhook posts to.
pub const CHANNEL_ID: &str = "1100000000000000001";

/// Discord's numbers: 5 requests per 2 s per webhook.
pub const WEBHOOK_LIMIT: (usize, Duration) = (5, Duration::from_secs(2));
/// Discord's numbers: 30 requests per 60 s per channel.
pub const CHANNEL_LIMIT: (usize, Duration) = (30, Duration::from_secs(60));

/// A Discord webhook, its channel and their rate limits.
pub struct Service {
    id: String,
    token: String,
    state: Mutex<State>,
}

/// A message the webhook posted, as the channel shows it now.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id, a snowflake as Discord answers it.
    pub id: String,
    /// The thread it was posted in (the `thread_id` query), if any.
    pub thread_id: Option<String>,
    /// The body as posted, with every accepted edit's fields applied: what the channel shows.
    pub body: Value,
    /// How many edits it took.
    pub edits: usize,
    /// When it was posted.
    pub at: Instant,
    /// When it was last written (posted or edited).
    pub changed: Instant,
}

impl Message {
    /// Every text a reader sees: the content, then each embed's title, description and
    /// fields, one per line.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        if let Some(c) = self.body["content"].as_str() {
            out.push(c.to_owned());
        }
        for e in self.body["embeds"].as_array().into_iter().flatten() {
            for key in ["title", "description"] {
                if let Some(t) = e[key].as_str() {
                    out.push(t.to_owned());
                }
            }
            for f in e["fields"].as_array().into_iter().flatten() {
                out.push(format!("{}: {}", f["name"].as_str().unwrap_or(""), f["value"].as_str().unwrap_or("")));
            }
        }
        out.join("\n")
    }
}

struct State {
    webhook_limit: (usize, Duration),
    channel_limit: (usize, Duration),
    webhook_hits: VecDeque<Instant>,
    channel_hits: VecDeque<Instant>,
    forced: VecDeque<Reply>,
    accepted: Vec<Request>,
    deleted: bool,
    next_message: u64,
    /// Every message posted, deleted ones too (marked by `gone`).
    messages: Vec<(Message, bool)>,
    posts: usize,
    edits: usize,
}

/// Discord's JSON error body.
pub fn error(status: u16, code: u64, message: &str) -> Reply {
    Reply::json(status, &json!({ "message": message, "code": code }))
}

/// Discord's 400 `Invalid Form Body` (code 50035) with one error at `path` (JSON path; array
/// indices as strings; empty for a request-level error).
pub fn form_error(path: &[&str], code: &str, message: &str) -> Reply {
    let mut tree = json!({ "_errors": [{ "code": code, "message": message }] });
    for key in path.iter().rev() {
        tree = json!({ *key: tree });
    }
    Reply::json(400, &json!({ "code": 50035, "errors": tree, "message": "Invalid Form Body" }))
}

/// Discord's 429, as the rate-limit docs show it: the JSON body with `retry_after` (float
/// seconds) and `global`, and `Retry-After` in whole seconds, rounded up (plus
/// `X-RateLimit-Global` and scope `global` when global). For [`Service::force`].
pub fn rate_limited(retry_after: f64, global: bool) -> Reply {
    let body = json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": global });
    let reply = Reply::json(429, &body).header("Retry-After", &format!("{}", retry_after.ceil() as u64));
    if global {
        reply.header("X-RateLimit-Global", "true").header("X-RateLimit-Scope", "global")
    } else {
        reply.header("X-RateLimit-Scope", "user")
    }
}

fn units(s: &str) -> usize {
    s.trim().encode_utf16().count()
}

fn now_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Drops hits older than `window`; the wait until a slot frees, if none is free.
fn over(hits: &mut VecDeque<Instant>, (limit, window): (usize, Duration), now: Instant) -> Option<Duration> {
    while hits.front().is_some_and(|&t| now.duration_since(t) >= window) {
        hits.pop_front();
    }
    if hits.len() < limit {
        return None;
    }
    let oldest = *hits.front()?;
    Some(window.saturating_sub(now.duration_since(oldest)).max(Duration::from_millis(1)))
}

/// When the oldest hit in `hits` leaves the window: the bucket's reset.
fn reset_after(hits: &VecDeque<Instant>, window: Duration, now: Instant) -> Duration {
    hits.front().map_or(Duration::ZERO, |&t| window.saturating_sub(now.duration_since(t)))
}

impl Service {
    /// A webhook with this id (a snowflake) and token, under Discord's rate limits.
    pub fn new(id: &str, token: &str) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            token: token.to_owned(),
            state: Mutex::new(State {
                webhook_limit: WEBHOOK_LIMIT,
                channel_limit: CHANNEL_LIMIT,
                webhook_hits: VecDeque::new(),
                channel_hits: VecDeque::new(),
                forced: VecDeque::new(),
                accepted: Vec::new(),
                deleted: false,
                next_message: 1_200_000_000_000_000_001,
                messages: Vec::new(),
                posts: 0,
                edits: 0,
            }),
        })
    }

    /// The webhook's path as the UI's Copy Webhook URL gives it: `/api/webhooks/{id}/{token}`.
    pub fn path(&self) -> String {
        format!("/api/webhooks/{}/{}", self.id, self.token)
    }

    /// The responder for a [`crate::StandIn`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.answer(req))
    }

    /// The bodies of the requests accepted (posts and edits), in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.lock().accepted.iter().map(Request::json).collect()
    }

    /// The requests accepted (posts and edits), in order (headers, query and all).
    pub fn accepted_requests(&self) -> Vec<Request> {
        self.lock().accepted.clone()
    }

    /// The messages the channel shows, in the order they were posted, each with its edits
    /// applied (deleted ones left out).
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.iter().filter(|(_, gone)| !gone).map(|(m, _)| m.clone()).collect()
    }

    /// The message with this id, as the channel shows it (none once deleted).
    pub fn message(&self, id: &str) -> Option<Message> {
        self.messages().into_iter().find(|m| m.id == id)
    }

    /// How many messages were posted and how many edits were accepted.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.posts, s.edits)
    }

    /// Somebody deleted this message in Discord: edits of it get 404 `Unknown Message`.
    pub fn delete_message(&self, id: &str) {
        for (m, gone) in &mut self.lock().messages {
            if m.id == id {
                *gone = true;
            }
        }
    }

    /// The next requests get these replies, in order, whatever they hold.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().forced.extend(replies);
    }

    /// Other rate limits than Discord's: (requests, window) per webhook and per channel.
    pub fn limits(&self, per_webhook: (usize, Duration), per_channel: (usize, Duration)) {
        let mut s = self.lock();
        s.webhook_limit = per_webhook;
        s.channel_limit = per_channel;
    }

    /// The webhook is deleted: from now on, 404 `Unknown Webhook`.
    pub fn delete(&self) {
        self.lock().deleted = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to one request, by the rules in the module docs.
    pub fn answer(&self, req: &Request) -> Reply {
        let mut s = self.lock();
        if let Some(forced) = s.forced.pop_front() {
            return forced;
        }
        // 2. Cloudflare in front wants a bot's User-Agent.
        if !req.header("user-agent").is_some_and(|ua| ua.starts_with("DiscordBot (")) {
            return error(403, 40333, "internal network error");
        }
        // 3. The route and the method.
        let segments: Vec<&str> = req.route().split('/').filter(|s| !s.is_empty()).collect();
        let rest = match segments.as_slice() {
            ["api", "webhooks", rest @ ..] => rest,
            ["api", v, "webhooks", rest @ ..] if v.strip_prefix('v').is_some_and(|n| n.parse::<u8>().is_ok()) => rest,
            _ => return error(404, 0, "404: Not Found"),
        };
        let (id, token, edit) = match rest {
            [id, token] => (*id, *token, None),
            [id, token, "messages", message] => (*id, *token, Some(*message)),
            _ => return error(404, 0, "404: Not Found"),
        };
        let allowed = if edit.is_some() { "PATCH" } else { "POST" };
        if req.method != allowed {
            return error(405, 0, "405: Method Not Allowed");
        }
        // 4. The webhook and its token.
        if id != self.id || s.deleted {
            return error(404, 10015, "Unknown Webhook");
        }
        if token != self.token {
            return error(401, 50027, "Invalid Webhook Token");
        }
        // 5. Rate limits: the webhook's bucket, then the channel's.
        let now = Instant::now();
        let (webhook_limit, channel_limit) = (s.webhook_limit, s.channel_limit);
        if let Some(wait) = over(&mut s.webhook_hits, webhook_limit, now) {
            return Self::limited(wait, webhook_limit.0, "user", "You are being rate limited.");
        }
        if let Some(wait) = over(&mut s.channel_hits, channel_limit, now) {
            return Self::limited(wait, channel_limit.0, "shared", "The resource is being rate limited.");
        }
        s.webhook_hits.push_back(now);
        s.channel_hits.push_back(now);
        let remaining = webhook_limit.0.saturating_sub(s.webhook_hits.len());
        let reset = reset_after(&s.webhook_hits, webhook_limit.1, now);
        let headers = move |reply: Reply| {
            reply
                .header("X-RateLimit-Limit", &webhook_limit.0.to_string())
                .header("X-RateLimit-Remaining", &remaining.to_string())
                .header("X-RateLimit-Reset-After", &format!("{:.3}", reset.as_secs_f64()))
                .header("X-RateLimit-Reset", &format!("{:.3}", now_epoch() + reset.as_secs_f64()))
                .header("X-RateLimit-Bucket", "f2b0standin0webhook")
        };
        if let Some(message_id) = edit {
            return headers(self.edit(&mut s, req, message_id));
        }
        match Self::validate(req, false) {
            Err(reply) => headers(reply),
            Ok(body) => {
                s.accepted.push(req.clone());
                s.posts += 1;
                // The id is made whether or not the answer carries it: the message exists.
                let message_id = s.next_message.to_string();
                s.next_message += 1;
                let message = Message {
                    id: message_id.clone(),
                    thread_id: req.query("thread_id"),
                    body: body.clone(),
                    edits: 0,
                    at: req.at,
                    changed: req.at,
                };
                s.messages.push((message, false));
                let wait = req.query("wait").is_some_and(|w| w == "true" || w == "1");
                if !wait {
                    return headers(Reply::new(204, ""));
                }
                headers(Reply::json(200, &self.message_object(&message_id, &body, false)))
            }
        }
    }

    /// Rules 12 and 13: an edit of `message_id`, after the rules every request meets.
    fn edit(&self, s: &mut State, req: &Request, message_id: &str) -> Reply {
        let body = match Self::validate(req, true) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let thread = req.query("thread_id");
        let Some((message, _)) =
            s.messages.iter_mut().find(|(m, gone)| !gone && m.id == message_id && m.thread_id == thread)
        else {
            return error(404, 10008, "Unknown Message");
        };
        let mut merged = message.body.clone();
        for (key, value) in body.as_object().into_iter().flatten() {
            match value {
                Value::Null => {
                    merged.as_object_mut().map(|m| m.remove(key));
                }
                v => merged[key] = v.clone(),
            }
        }
        if !Self::shows_something(&merged) {
            return error(400, 50006, "Cannot send an empty message");
        }
        message.body = merged.clone();
        message.edits += 1;
        message.changed = req.at;
        s.edits += 1;
        s.accepted.push(req.clone());
        Reply::json(200, &self.message_object(message_id, &merged, true))
    }

    /// Whether a message body has anything to show (rule 10).
    fn shows_something(body: &Value) -> bool {
        let has = |key: &str| match body.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        ["content", "embeds", "components", "attachments", "poll", "file"].iter().any(|k| has(k))
    }

    /// A 429 for a full bucket.
    fn limited(wait: Duration, limit: usize, scope: &str, message: &str) -> Reply {
        let secs = (wait.as_secs_f64() * 1000.0).ceil() / 1000.0;
        let body = json!({ "message": message, "retry_after": secs, "global": false });
        Reply::json(429, &body)
            .header("Retry-After", &format!("{}", secs.ceil() as u64))
            .header("X-RateLimit-Limit", &limit.to_string())
            .header("X-RateLimit-Remaining", "0")
            .header("X-RateLimit-Reset-After", &format!("{secs:.3}"))
            .header("X-RateLimit-Reset", &format!("{:.3}", now_epoch() + secs))
            .header("X-RateLimit-Bucket", "f2b0standin0webhook")
            .header("X-RateLimit-Scope", scope)
    }

    /// The message object a `wait=true` post or an edit returns.
    fn message_object(&self, id: &str, body: &Value, edited: bool) -> Value {
        json!({
            "id": id,
            "type": 0,
            "content": body.get("content").cloned().unwrap_or(json!("")),
            "channel_id": CHANNEL_ID,
            "webhook_id": self.id,
            "author": {
                "bot": true,
                "id": self.id,
                "username": body.get("username").cloned().unwrap_or(json!("Captain Hook")),
                "avatar": null,
            },
            "attachments": [],
            "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": false,
            "pinned": false,
            "tts": false,
            "timestamp": "2024-05-01T12:00:00.000000+00:00",
            "edited_timestamp": if edited { json!("2024-05-01T12:00:05.000000+00:00") } else { Value::Null },
            "flags": body.get("flags").cloned().unwrap_or(json!(0)),
        })
    }

    /// Rules 6 to 10 (for an edit, 6 to 9: what it leaves to show is checked once merged):
    /// the body as JSON, or the error reply.
    fn validate(req: &Request, edit: bool) -> Result<Value, Reply> {
        let content_type = req.header("content-type").unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(form_error(
                &[],
                "CONTENT_TYPE_INVALID",
                "Expected \"Content-Type\" header to be one of {'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data'}.",
            ));
        }
        let body: Value = serde_json::from_str(&req.body)
            .map_err(|_| error(400, 50109, "The request body contains invalid JSON."))?;
        let Some(obj) = body.as_object() else {
            return Err(form_error(&[], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"));
        };
        if let Some(w) = req.query("wait").filter(|_| !edit) {
            if !matches!(w.as_str(), "true" | "false" | "1" | "0" | "True" | "False") {
                return Err(form_error(&["wait"], "BOOLEAN_TYPE_CONVERT", "Must be either true or false."));
            }
        }
        if let Some(t) = req.query("thread_id") {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(form_error(
                    &["thread_id"],
                    "NUMBER_TYPE_COERCE",
                    &format!("Value \"{t}\" is not snowflake."),
                ));
            }
        }
        Self::check_form(obj)?;
        // f2b-notify's rule: mentions always off.
        if obj.get("allowed_mentions") != Some(&json!({ "parse": [] })) {
            return Err(form_error(
                &["allowed_mentions"],
                "STAND_IN_POLICY",
                "f2b-notify must send allowed_mentions = {\"parse\": []} (this rule is the stand-in's, not Discord's)",
            ));
        }
        if edit {
            // Not Edit Webhook Message's fields: Discord ignores them, the sink must not
            // believe it changes them.
            if let Some(key) = ["username", "avatar_url", "tts", "thread_name"].iter().find(|k| obj.contains_key(**k)) {
                return Err(form_error(
                    &[key],
                    "STAND_IN_POLICY",
                    "not a field of Edit Webhook Message (this rule is the stand-in's: Discord ignores it)",
                ));
            }
            return Ok(body);
        }
        if !Self::shows_something(&body) {
            return Err(error(400, 50006, "Cannot send an empty message"));
        }
        Ok(body)
    }

    /// Rule 8: types and every documented limit.
    fn check_form(obj: &Map<String, Value>) -> Result<(), Reply> {
        let max = |path: &[&str], v: &Value, limit: usize| -> Result<(), Reply> {
            match v {
                Value::Null => Ok(()),
                Value::String(s) if units(s) <= limit => Ok(()),
                Value::String(_) => {
                    Err(form_error(path, "BASE_TYPE_MAX_LENGTH", &format!("Must be {limit} or fewer in length.")))
                }
                _ => Err(form_error(path, "BASE_TYPE_STRING", "Could not interpret value as string.")),
            }
        };
        max(&["content"], obj.get("content").unwrap_or(&Value::Null), 2000)?;
        if let Some(name) = obj.get("username") {
            let n = name.as_str().map(units);
            if !n.is_some_and(|n| (1..=80).contains(&n)) {
                return Err(form_error(&["username"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."));
            }
        }
        if let Some(url) = obj.get("avatar_url") {
            if !url.as_str().is_some_and(|u| u.starts_with("https://") || u.starts_with("http://")) {
                return Err(form_error(&["avatar_url"], "URL_TYPE_INVALID_URL", "Not a well formed URL."));
            }
        }
        if let Some(flags) = obj.get("flags") {
            if flags.as_u64().is_none_or(|f| f & !(4 | 4096) != 0) {
                return Err(form_error(&["flags"], "MESSAGE_FLAGS_INVALID", "Invalid flags."));
            }
        }
        let embeds = match obj.get("embeds") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(form_error(&["embeds"], "LIST_TYPE_CONVERT", "Must be a list.")),
        };
        if embeds.len() > 10 {
            return Err(form_error(&["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."));
        }
        let mut total = 0;
        for (i, embed) in embeds.iter().enumerate() {
            let i = i.to_string();
            let e = embed.as_object().ok_or_else(|| {
                form_error(&["embeds", &i], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            })?;
            let get = |k: &str| e.get(k).unwrap_or(&Value::Null);
            max(&["embeds", &i, "title"], get("title"), 256)?;
            max(&["embeds", &i, "description"], get("description"), 4096)?;
            max(&["embeds", &i, "footer", "text"], &get("footer")["text"], 2048)?;
            max(&["embeds", &i, "author", "name"], &get("author")["name"], 256)?;
            if let Some(c) = e.get("color") {
                if c.as_u64().is_none_or(|c| c > 0xFF_FF_FF) {
                    return Err(form_error(
                        &["embeds", &i, "color"],
                        "NUMBER_TYPE_MAX",
                        "int value should be <= 16777215 and >= 0.",
                    ));
                }
            }
            let text = |v: &Value| v.as_str().map_or(0, units);
            total += text(get("title"))
                + text(get("description"))
                + text(&get("footer")["text"])
                + text(&get("author")["name"]);
            let fields = match get("fields") {
                Value::Null => &Vec::new(),
                Value::Array(a) => a,
                _ => return Err(form_error(&["embeds", &i, "fields"], "LIST_TYPE_CONVERT", "Must be a list.")),
            };
            if fields.len() > 25 {
                return Err(form_error(
                    &["embeds", &i, "fields"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 25 or fewer in length.",
                ));
            }
            for (j, f) in fields.iter().enumerate() {
                let j = j.to_string();
                for (key, limit) in [("name", 256), ("value", 1024)] {
                    let path = ["embeds", &i, "fields", &j, key];
                    let v = &f[key];
                    if v.as_str().is_none_or(|s| s.trim().is_empty()) {
                        return Err(form_error(&path, "BASE_TYPE_REQUIRED", "This field is required"));
                    }
                    max(&path, v, limit)?;
                    total += text(v);
                }
            }
        }
        if total > 6000 {
            return Err(form_error(&["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, body: Value) -> Request {
        call("POST", path, body)
    }

    fn call(method: &str, path: &str, body: Value) -> Request {
        Request {
            at: Instant::now(),
            method: method.into(),
            path: path.into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("user-agent".into(), "DiscordBot (test, 1)".into()),
            ],
            body: body.to_string(),
            authorization: None,
        }
    }

    fn ok_body() -> Value {
        json!({ "content": "x", "allowed_mentions": { "parse": [] } })
    }

    #[test]
    fn the_contract_in_order() {
        let s = Service::new("123", "tok");
        let p = s.path();
        let status = |r: &Request| s.answer(r).status;
        let body = |r: &Request| serde_json::from_str::<Value>(&s.answer(r).body).unwrap();
        assert_eq!(status(&req(&format!("{p}?wait=true"), ok_body())), 200);
        assert_eq!(status(&req(&p, ok_body())), 204);
        assert_eq!(status(&req("/api/v10/webhooks/123/tok", ok_body())), 204);
        assert_eq!(body(&req("/api/webhooks/123/bad", ok_body()))["code"], 50027);
        assert_eq!(body(&req("/api/webhooks/999/tok", ok_body()))["code"], 10015);
        let mut no_ua = req(&p, ok_body());
        no_ua.headers.retain(|(k, _)| k != "user-agent");
        assert_eq!(body(&no_ua)["code"], 40333);
        assert_eq!(s.accepted().len(), 3);
    }

    #[test]
    fn limits_answer_with_discords_form_errors() {
        let s = Service::new("1", "t");
        s.limits((1000, Duration::from_secs(1)), (1000, Duration::from_secs(1)));
        let p = s.path();
        let mut long = ok_body();
        long["embeds"] = json!([{ "description": "x".repeat(4097) }]);
        let r = s.answer(&req(&p, long));
        let b: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((r.status, b["code"].as_u64()), (400, Some(50035)));
        assert_eq!(
            b["errors"]["embeds"]["0"]["description"]["_errors"][0]["message"],
            "Must be 4096 or fewer in length."
        );
        let mut total = ok_body();
        total["embeds"] = json!([{ "description": "x".repeat(4000) }, { "description": "😀".repeat(1001) }]);
        let b: Value = serde_json::from_str(&s.answer(&req(&p, total)).body).unwrap();
        assert_eq!(b["errors"]["embeds"]["_errors"][0]["code"], "MAX_EMBED_SIZE_EXCEEDED");
        let b: Value = serde_json::from_str(&s.answer(&req(&p, json!({ "content": "x" }))).body).unwrap();
        assert_eq!(b["errors"]["allowed_mentions"]["_errors"][0]["code"], "STAND_IN_POLICY");
        let b: Value =
            serde_json::from_str(&s.answer(&req(&p, json!({ "allowed_mentions": { "parse": [] } }))).body).unwrap();
        assert_eq!(b["code"], 50006);
    }

    #[test]
    fn the_webhooks_bucket_and_the_channels() {
        let s = Service::new("1", "t");
        let p = s.path();
        for _ in 0..5 {
            assert_eq!(s.answer(&req(&p, ok_body())).status, 204);
        }
        let r = s.answer(&req(&p, ok_body()));
        assert_eq!(r.status, 429);
        let b: Value = serde_json::from_str(&r.body).unwrap();
        let wait = b["retry_after"].as_f64().unwrap();
        assert!(wait > 0.0 && wait <= 2.0, "{wait}");
        assert_eq!(b["global"], false);
        assert!(r.headers.iter().any(|(k, v)| *k == "Retry-After" && v == "2"));
        let s = Service::new("1", "t");
        s.limits((100, Duration::from_secs(2)), (3, Duration::from_secs(60)));
        for _ in 0..3 {
            assert_eq!(s.answer(&req(&p, ok_body())).status, 204);
        }
        let r = s.answer(&req(&p, ok_body()));
        assert_eq!(r.status, 429);
        assert!(r.headers.iter().any(|(k, v)| *k == "X-RateLimit-Scope" && v == "shared"));
    }

    #[test]
    fn edits_replace_fields_of_the_webhooks_own_messages() {
        let s = Service::new("1", "t");
        s.limits((1000, Duration::from_secs(1)), (1000, Duration::from_secs(1)));
        let p = s.path();
        let posted = |body: Value| -> String {
            let r = s.answer(&req(&format!("{p}?wait=true"), body));
            assert_eq!(r.status, 200, "{}", r.body);
            serde_json::from_str::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned()
        };
        let mut first = ok_body();
        first["embeds"] = json!([{ "description": "old" }]);
        let a = posted(first);
        let b = posted(ok_body());
        assert!(b > a && b.bytes().all(|c| c.is_ascii_digit()), "{a} {b}");
        let patch = |id: &str, body: Value| s.answer(&call("PATCH", &format!("{p}/messages/{id}"), body));
        let r = patch(&a, json!({ "content": "new", "allowed_mentions": { "parse": [] } }));
        assert_eq!(r.status, 200, "{}", r.body);
        let answered: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((answered["id"].as_str(), answered["content"].as_str()), (Some(a.as_str()), Some("new")));
        assert!(answered["edited_timestamp"].is_string());
        // The fields not given are kept: the embed is still there.
        let m = s.message(&a).unwrap();
        assert_eq!((m.edits, m.body["embeds"][0]["description"].as_str()), (1, Some("old")));
        assert_eq!(m.text(), "new\nold");
        // Unknown, deleted, or in another thread: Unknown Message.
        let code = |r: Reply| serde_json::from_str::<Value>(&r.body).unwrap()["code"].as_u64();
        assert_eq!(code(patch("999", ok_body())), Some(10008));
        let r = s.answer(&call("PATCH", &format!("{p}/messages/{a}?thread_id=5"), ok_body()));
        assert_eq!((r.status, code(r)), (404, Some(10008)));
        s.delete_message(&b);
        assert_eq!(code(patch(&b, ok_body())), Some(10008));
        // The same form rules as a post, and the edit's own.
        let b2: Value = serde_json::from_str(&patch(&a, json!({ "content": "x" })).body).unwrap();
        assert_eq!(b2["errors"]["allowed_mentions"]["_errors"][0]["code"], "STAND_IN_POLICY");
        let mut named = ok_body();
        named["username"] = json!("x");
        let b2: Value = serde_json::from_str(&patch(&a, named).body).unwrap();
        assert_eq!(b2["errors"]["username"]["_errors"][0]["code"], "STAND_IN_POLICY");
        let emptied = json!({ "content": null, "embeds": [], "allowed_mentions": { "parse": [] } });
        assert_eq!(code(patch(&a, emptied)), Some(50006));
        assert_eq!(s.answer(&call("POST", &format!("{p}/messages/{a}"), ok_body())).status, 405);
        assert_eq!(s.answer(&call("PATCH", &p, ok_body())).status, 405);
        assert_eq!(s.counts(), (2, 1));
        assert_eq!(s.messages().len(), 1);
    }
}
