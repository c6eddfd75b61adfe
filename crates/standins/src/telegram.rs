//! A loopback stand-in for the Telegram Bot API's `sendMessage` and `editMessageText`, following the documented
//! contract (and, where the documentation is silent, the Bot API server's own source, tdlib's
//! `parse_html`), so that a sink that breaks the contract fails here as it would in production.
//!
//! The rules it enforces, each with its source:
//!
//! - **The token is in the path**, `/bot<token>/METHOD`, method names case-insensitive
//!   (<https://core.telegram.org/bots/api#making-requests>). A path that is not
//!   `/bot<digits>:<letters, digits, _ or ->/…`, or a method other than `sendMessage`, is
//!   `404 {"ok":false,"error_code":404,"description":"Not Found"}`; a well-formed token other
//!   than the one the stand-in was made with is
//!   `401 {"ok":false,"error_code":401,"description":"Unauthorized"}`
//!   (<https://github.com/TelegramBotAPI/errors> json/unauthorized.json; 404 for a malformed
//!   token: <https://github.com/AzuraCast/AzuraCast/issues/1256>).
//! - **POST with `Content-Type: application/json`**: the one way the sink is meant to call it
//!   (the API also takes GET, query strings and forms; the stand-in refuses them so that a
//!   sink that drifts from JSON is noticed, with a description that says it is the stand-in's).
//! - **The parameters** (<https://core.telegram.org/bots/api#sendmessage>): `chat_id` an
//!   integer or a string (`@channelusername`, or the id as text), `text` a string,
//!   `parse_mode`, `message_thread_id` an integer, `disable_notification` a boolean,
//!   `link_preview_options` an object, `reply_parameters` an object; the old
//!   `disable_web_page_preview` and `reply_to_message_id` were replaced in Bot API 7.0
//!   (<https://core.telegram.org/bots/api-changelog#december-29-2023>) and, like any unknown
//!   parameter, are refused here (Telegram ignores unknown ones; the stand-in catches typos).
//! - **Message ids** are per chat, increasing from 1 (each chat has its own sequence), and
//!   the answer is `{"ok":true,"result":{"message_id":N,"date":…,"chat":{"id":…,"type":…},
//!   "text":…}}` (<https://core.telegram.org/bots/api#message>).
//! - **Replies** (<https://core.telegram.org/bots/api#replyparameters>): `reply_parameters`
//!   needs an integer `message_id`; `allow_sending_without_reply` a boolean. A message the
//!   chat does not hold (never sent, or [deleted](Service::delete)) is
//!   `400 "Bad Request: message to be replied not found"`, or, with
//!   `allow_sending_without_reply: true`, sent as no reply at all. The reply's target is
//!   recorded ([`Message::reply_to`]). A `chat_id` in it (a reply to another chat) is not
//!   modelled and refused, as are `quote` and its kin.
//! - **Edits** (<https://core.telegram.org/bots/api#editmessagetext>): `editMessageText`
//!   takes `chat_id`, `message_id`, `text`, `parse_mode`, `entities`, `link_preview_options`,
//!   `reply_markup` (and `business_connection_id`, `inline_message_id`); anything else is
//!   refused like an unknown parameter. The chat must exist (as above); a message it does not
//!   hold is `400 "Bad Request: message to edit not found"` (TelegramBotAPI/errors#7); one
//!   that can no longer be edited ([`Service::freeze`]: a business message older than 48
//!   hours, a message of another sender) `400 "Bad Request: message can't be edited"`; the
//!   HTML and the limits are checked as for a new message; a text and entities equal to the
//!   message's own are `400 "Bad Request: message is not modified: specified new message
//!   content and reply markup are exactly the same as a current content and reply markup of
//!   the message"` (rubenlagus/TelegramBots#431). Success is the edited message, with
//!   `edit_date`. Edits count toward the rate limits below like messages: Telegram's flood
//!   control counts them too and publishes no numbers of its own for them.
//! - **The chat must exist**: an unknown `chat_id` is
//!   `400 "Bad Request: chat not found"`; a `message_thread_id` the chat does not have is
//!   `400 "Bad Request: message thread not found"`
//!   (<https://github.com/TelegramBotAPI/errors> json/bad-request-chat-not-found.json,
//!   <https://github.com/tdlib/telegram-bot-api/issues/472>); a group upgraded to a supergroup
//!   ([`Service::migrate`]) is `400 "Bad Request: group chat was upgraded to a supergroup chat"`
//!   with `parameters.migrate_to_chat_id` (<https://github.com/TwiN/gatus/issues/179>,
//!   <https://core.telegram.org/bots/api#responseparameters>).
//! - **HTML is parsed as Telegram parses it** (<https://core.telegram.org/bots/api#formatting-options>;
//!   the parser is tdlib's `parse_html`, which the Bot API server runs): only the supported
//!   tags, every `<` outside a tag escaped, `&lt;` `&gt;` `&amp;` `&quot;` and numeric
//!   entities decoded (any other `&name;` stays literal text, as in tdlib). A violation is
//!   `400 "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"`
//!   and its siblings, with the byte offset into the text
//!   (<https://github.com/teknologi-umum/bot/issues/87>, <https://github.com/teloxide/teloxide/issues/549>).
//! - **Text limits**: 1-4096 characters after entities parsing, counted here in UTF-16 code
//!   units (the stricter of the two readings; see the contract's section 7): over it is
//!   `400 "Bad Request: message is too long"`
//!   (<https://github.com/j-hc/revanced-magisk-module/issues/262>), nothing visible is
//!   `400 "Bad Request: message text is empty"` (json/bad-request-message-text-is-empty.json).
//! - **Rate limits** (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>):
//!   at most one message per second per chat, and 20 per minute to a group (a chat id starting
//!   with `-`); past them `429 {"ok":false,"error_code":429,"description":"Too Many Requests:
//!   retry after N","parameters":{"retry_after":N}}` with no `Retry-After` header, N the whole
//!   seconds until a message would be accepted (json/too-many-requests.json). Only accepted
//!   messages (and edits) count. [`Service::set_rate_limits`] turns them off for tests that
//!   send quickly.
//! - [`Service::force`] makes the next requests get given replies whatever they hold (5xx
//!   pages, 403s, …); they are recorded but not accepted.
//!
//! What it does not do: Telegram's full detection of links and phone numbers. It does report
//! the mentions (`@name`), hashtags, bot commands and `scheme://` links it would make out of
//! plain text, outside code and pre entities ([`Message::auto`]), so that a test can prove that
//! attacker text pings nobody.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::{Reply, Request, Responder};

/// The most UTF-16 code units a message's visible text may have.
pub const MAX_TEXT: usize = 4096;

/// One formatting entity of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// `bold`, `italic`, `underline`, `strikethrough`, `spoiler`, `code`, `pre`,
    /// `text_link`, `blockquote`, `custom_emoji`.
    pub kind: &'static str,
    /// Offset in UTF-16 code units, as Telegram counts.
    pub offset: usize,
    /// Length in UTF-16 code units.
    pub length: usize,
    /// The text it covers.
    pub text: String,
}

/// A message the stand-in accepted.
#[derive(Debug, Clone)]
pub struct Message {
    /// The `chat_id` as the stand-in keys chats: an id in decimal, or `@name` in lower case.
    pub chat: String,
    /// The request's JSON body, as sent.
    pub body: Value,
    /// The visible text, after entities parsing (the text itself without `parse_mode`).
    pub text: String,
    /// The formatting entities the HTML made (none without `parse_mode`).
    pub entities: Vec<Entity>,
    /// What Telegram would turn into mentions, hashtags, bot commands or links in the plain
    /// parts of the text (outside code and pre).
    pub auto: Vec<String>,
    /// The `message_id` it was given, unique in its chat.
    pub message_id: u64,
    /// The message it replies to (`reply_parameters.message_id`, when the chat held it).
    pub reply_to: Option<u64>,
    /// How many edits it took (`body`, `text`, `entities` and `auto` are the latest's).
    pub edits: usize,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// When it was last written (sent or edited).
    pub changed: std::time::Instant,
}

impl Message {
    /// The visible text's length in UTF-16 code units, as the limit counts it.
    pub fn utf16_len(&self) -> usize {
        self.text.encode_utf16().count()
    }

    /// The texts of the entities of `kind`.
    pub fn entity_texts(&self, kind: &str) -> Vec<&str> {
        self.entities.iter().filter(|e| e.kind == kind).map(|e| e.text.as_str()).collect()
    }
}

#[derive(Default)]
struct State {
    chats: HashSet<String>,
    threads: HashSet<(String, i64)>,
    migrated: HashMap<String, i64>,
    forced: VecDeque<Reply>,
    accepted: Vec<Message>,
    last_sent: HashMap<String, Instant>,
    group_window: HashMap<String, VecDeque<Instant>>,
    rate_limits: bool,
    /// The next `message_id` per chat.
    next_ids: HashMap<String, u64>,
    /// Messages deleted, and messages that can no longer be edited, by (chat, id).
    deleted: HashSet<(String, u64)>,
    frozen: HashSet<(String, u64)>,
    edits: usize,
    /// A public chat's `@username` by the number the stand-in gave it: both name one chat.
    numbers: HashMap<String, String>,
    /// When each message and each edit was accepted.
    writes: Vec<Instant>,
}

/// The Bot API stand-in: make it with the token it accepts, add chats, and serve
/// [`Service::responder`] with [`crate::StandIn::start`]; point the sink's `api_url` at
/// `StandIn::url("")`.
pub struct Service {
    token: String,
    state: Mutex<State>,
}

/// A Bot API error reply: `{"ok":false,"error_code":status,"description":…}`.
pub fn error(status: u16, description: &str) -> Reply {
    Reply::json(status, &json!({"ok": false, "error_code": status, "description": description}))
}

/// A Bot API error reply with `parameters` (`retry_after`, `migrate_to_chat_id`).
pub fn error_with(status: u16, description: &str, parameters: Value) -> Reply {
    Reply::json(
        status,
        &json!({"ok": false, "error_code": status, "description": description, "parameters": parameters}),
    )
}

/// The 429 Telegram sends: the wait in the description and in `parameters.retry_after`.
pub fn too_many_requests(retry_after: u64) -> Reply {
    error_with(429, &format!("Too Many Requests: retry after {retry_after}"), json!({ "retry_after": retry_after }))
}

impl Service {
    /// A stand-in that accepts `token` and knows no chat yet; rate limits on.
    pub fn new(token: &str) -> Arc<Self> {
        let state = State { rate_limits: true, ..State::default() };
        Arc::new(Self { token: token.to_owned(), state: Mutex::new(state) })
    }

    /// Lets `chat_id` (`-1001234567890`, `42`, `@channel`) exist. A `@channel` gets a number
    /// too (`-1001000000001`, …), which names the same chat, as Telegram's answers show it.
    pub fn add_chat(&self, chat_id: &str) {
        let key = chat_key_str(chat_id);
        let mut s = self.lock();
        if key.starts_with('@') && !s.numbers.values().any(|k| *k == key) {
            let number = (-1_001_000_000_001i64 - s.numbers.len() as i64).to_string();
            s.numbers.insert(number, key.clone());
        }
        s.chats.insert(key);
    }

    /// Lets the forum topic `thread` exist in `chat_id`.
    pub fn add_thread(&self, chat_id: &str, thread: i64) {
        self.lock().threads.insert((chat_key_str(chat_id), thread));
    }

    /// Marks the group `from` as upgraded to the supergroup `to` (which then exists).
    pub fn migrate(&self, from: &str, to: i64) {
        let mut s = self.lock();
        s.migrated.insert(chat_key_str(from), to);
        s.chats.insert(to.to_string());
    }

    /// Turns the per-chat and per-group rate limits on or off.
    pub fn set_rate_limits(&self, on: bool) {
        self.lock().rate_limits = on;
    }

    /// The next requests get these replies, one each, whatever they hold.
    pub fn force(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().forced.extend(replies);
    }

    /// The messages accepted so far, in the order they were sent, each as its chat shows it
    /// now (after its edits; deleted ones left out).
    pub fn accepted(&self) -> Vec<Message> {
        let s = self.lock();
        s.accepted.iter().filter(|m| !s.deleted.contains(&(m.chat.clone(), m.message_id))).cloned().collect()
    }

    /// The message `message_id` of `chat_id` (a number or a `@channel`), as the chat shows
    /// it now.
    pub fn message(&self, chat_id: &str, message_id: u64) -> Option<Message> {
        let chat = canonical(&self.lock(), chat_key_str(chat_id));
        self.accepted().into_iter().find(|m| m.chat == chat && m.message_id == message_id)
    }

    /// When each message and each edit was accepted, in order: what the rate limits count.
    pub fn writes(&self) -> Vec<Instant> {
        self.lock().writes.clone()
    }

    /// How many messages were sent and how many edits were accepted.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.accepted.len(), s.edits)
    }

    /// Somebody deleted this message: replies to it and edits of it find nothing.
    pub fn delete(&self, chat_id: &str, message_id: u64) {
        let mut s = self.lock();
        let chat = canonical(&s, chat_key_str(chat_id));
        s.deleted.insert((chat, message_id));
    }

    /// This message can no longer be edited (`message can't be edited`).
    pub fn freeze(&self, chat_id: &str, message_id: u64) {
        let mut s = self.lock();
        let chat = canonical(&s, chat_key_str(chat_id));
        s.frozen.insert((chat, message_id));
    }

    /// The responder to serve with [`crate::StandIn::start`].
    pub fn responder(self: &Arc<Self>) -> Responder {
        let me = Arc::clone(self);
        Arc::new(move |req: &Request, _| me.handle(req))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(&self, req: &Request) -> Reply {
        if let Some(forced) = self.lock().forced.pop_front() {
            return forced;
        }
        // /bot<token>/<method>: a path of another shape is not the Bot API's.
        let Some(rest) = req.route().strip_prefix("/bot") else { return error(404, "Not Found") };
        let Some((token, method)) = rest.split_once('/') else { return error(404, "Not Found") };
        if !token_shaped(token) {
            return error(404, "Not Found");
        }
        if token != self.token {
            return error(401, "Unauthorized");
        }
        let edit = method.eq_ignore_ascii_case("editMessageText");
        if !edit && !method.eq_ignore_ascii_case("sendMessage") {
            return error(404, "Not Found");
        }
        if req.method != "POST" {
            return error(400, "Bad Request: stand-in: the sink must POST");
        }
        let content_type = req.header("content-type").unwrap_or("");
        if !content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
            return error(400, "Bad Request: stand-in: the body must be application/json");
        }
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&req.body) else {
            return error(400, "Bad Request: stand-in: the body is not a JSON object");
        };
        if edit {
            return self.edit_message_text(Value::Object(body), req.at);
        }
        self.send_message(Value::Object(body), req.at)
    }

    fn send_message(&self, body: Value, at: std::time::Instant) -> Reply {
        const KNOWN: [&str; 7] = [
            "chat_id",
            "text",
            "parse_mode",
            "message_thread_id",
            "disable_notification",
            "link_preview_options",
            "reply_parameters",
        ];
        let fields = body.as_object().expect("an object");
        if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return error(400, &format!("Bad Request: stand-in: unknown or replaced parameter `{unknown}`"));
        }
        let reply = match body.get("reply_parameters") {
            None => None,
            Some(Value::Object(p)) => {
                if let Some(other) =
                    p.keys().find(|k| !["message_id", "allow_sending_without_reply"].contains(&k.as_str()))
                {
                    return error(400, &format!("Bad Request: stand-in: reply_parameters.{other} is not modelled"));
                }
                let Some(id) = p.get("message_id").and_then(Value::as_u64) else {
                    return error(400, "Bad Request: stand-in: reply_parameters.message_id must be an integer");
                };
                let anyway = match p.get("allow_sending_without_reply") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return error(400, "Bad Request: stand-in: allow_sending_without_reply must be a boolean")
                    }
                };
                Some((id, anyway))
            }
            Some(_) => return error(400, "Bad Request: stand-in: reply_parameters must be an object"),
        };
        let chat = match body.get("chat_id") {
            Some(Value::Number(n)) if n.is_i64() => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => chat_key_str(s),
            None => return error(400, "Bad Request: stand-in: chat_id is missing"),
            Some(_) => return error(400, "Bad Request: stand-in: chat_id must be an integer or a string"),
        };
        let text = match body.get("text") {
            Some(Value::String(s)) => s.clone(),
            None => return error(400, "Bad Request: message text is empty"),
            Some(_) => return error(400, "Bad Request: stand-in: text must be a string"),
        };
        let thread = match body.get("message_thread_id") {
            None => None,
            Some(v) => match v.as_i64() {
                Some(t) => Some(t),
                None => return error(400, "Bad Request: stand-in: message_thread_id must be an integer"),
            },
        };
        if body.get("disable_notification").is_some_and(|v| !v.is_boolean()) {
            return error(400, "Bad Request: stand-in: disable_notification must be a boolean");
        }
        if body.get("link_preview_options").is_some_and(|v| !v.is_object()) {
            return error(400, "Bad Request: stand-in: link_preview_options must be an object");
        }
        let html = match body.get("parse_mode") {
            None => false,
            Some(Value::String(m)) if m == "HTML" => true,
            Some(_) => return error(400, "Bad Request: stand-in: parse_mode must be \"HTML\", the one it parses"),
        };

        let mut state = self.lock();
        let chat = canonical(&state, chat);
        if let Some(&to) = state.migrated.get(&chat) {
            return error_with(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                json!({ "migrate_to_chat_id": to }),
            );
        }
        if !state.chats.contains(&chat) {
            return error(400, "Bad Request: chat not found");
        }
        if let Some(t) = thread {
            if !state.threads.contains(&(chat.clone(), t)) {
                return error(400, "Bad Request: message thread not found");
            }
        }
        let (visible, entities) = match parse_text(&text, html) {
            Ok(parsed) => parsed,
            Err(reply) => return reply,
        };
        let reply_to = match reply {
            None => None,
            Some((id, anyway)) => {
                let held = state.accepted.iter().any(|m| m.chat == chat && m.message_id == id)
                    && !state.deleted.contains(&(chat.clone(), id));
                match (held, anyway) {
                    (true, _) => Some(id),
                    (false, true) => None,
                    (false, false) => return error(400, "Bad Request: message to be replied not found"),
                }
            }
        };
        if let Some(wait) = spend(&mut state, &chat) {
            return too_many_requests(wait);
        }
        let next = state.next_ids.entry(chat.clone()).or_insert(1);
        let message_id = *next;
        *next += 1;
        let auto = auto_entities(&visible, &entities);
        let chat_type = if chat.starts_with("-100") || chat.starts_with('@') {
            "supergroup"
        } else if chat.starts_with('-') {
            "group"
        } else {
            "private"
        };
        let date = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let reply = json!({"ok": true, "result": {
            "message_id": message_id, "date": date,
            "chat": {"id": chat_number(&state, &chat), "type": chat_type}, "text": visible,
        }});
        state.accepted.push(Message {
            chat,
            body,
            text: visible,
            entities,
            auto,
            message_id,
            reply_to,
            edits: 0,
            at,
            changed: at,
        });
        Reply::json(200, &reply)
    }

    fn edit_message_text(&self, body: Value, at: std::time::Instant) -> Reply {
        const KNOWN: [&str; 9] = [
            "chat_id",
            "message_id",
            "text",
            "parse_mode",
            "entities",
            "link_preview_options",
            "reply_markup",
            "business_connection_id",
            "inline_message_id",
        ];
        let fields = body.as_object().expect("an object");
        if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return error(400, &format!("Bad Request: stand-in: `{unknown}` is not a parameter of editMessageText"));
        }
        let chat = match body.get("chat_id") {
            Some(Value::Number(n)) if n.is_i64() => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => chat_key_str(s),
            None => return error(400, "Bad Request: stand-in: chat_id is missing (inline messages are not modelled)"),
            Some(_) => return error(400, "Bad Request: stand-in: chat_id must be an integer or a string"),
        };
        let Some(message_id) = body.get("message_id").and_then(Value::as_u64) else {
            return error(400, "Bad Request: stand-in: message_id must be an integer");
        };
        let Some(text) = body.get("text").and_then(Value::as_str) else {
            return error(400, "Bad Request: message text is empty");
        };
        if body.get("link_preview_options").is_some_and(|v| !v.is_object()) {
            return error(400, "Bad Request: stand-in: link_preview_options must be an object");
        }
        let html = match body.get("parse_mode") {
            None => false,
            Some(Value::String(m)) if m == "HTML" => true,
            Some(_) => return error(400, "Bad Request: stand-in: parse_mode must be \"HTML\", the one it parses"),
        };
        let mut state = self.lock();
        let chat = canonical(&state, chat);
        if !state.chats.contains(&chat) {
            return error(400, "Bad Request: chat not found");
        }
        let key = (chat.clone(), message_id);
        let Some(index) = state
            .accepted
            .iter()
            .position(|m| m.chat == chat && m.message_id == message_id)
            .filter(|_| !state.deleted.contains(&key))
        else {
            return error(400, "Bad Request: message to edit not found");
        };
        if state.frozen.contains(&key) {
            return error(400, "Bad Request: message can't be edited");
        }
        let (visible, entities) = match parse_text(text, html) {
            Ok(parsed) => parsed,
            Err(reply) => return reply,
        };
        let current = &state.accepted[index];
        if current.text == visible && current.entities == entities {
            return error(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            );
        }
        if let Some(wait) = spend(&mut state, &chat) {
            return too_many_requests(wait);
        }
        state.edits += 1;
        let auto = auto_entities(&visible, &entities);
        let message = &mut state.accepted[index];
        message.body = body;
        message.text = visible.clone();
        message.entities = entities;
        message.auto = auto;
        message.edits += 1;
        message.changed = at;
        let date = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Reply::json(
            200,
            &json!({"ok": true, "result": {
                "message_id": message_id, "date": date, "edit_date": date,
                "chat": {"id": chat_number(&state, &chat), "type": "supergroup"}, "text": visible,
            }}),
        )
    }
}

/// The visible text and entities of `text` (parsed as HTML when `html`), or the Bot API's
/// refusal: can't parse, empty, too long.
fn parse_text(text: &str, html: bool) -> Result<(String, Vec<Entity>), Reply> {
    let (visible, entities) = if html {
        parse_html(text).map_err(|why| error(400, &format!("Bad Request: can't parse entities: {why}")))?
    } else {
        (text.to_owned(), Vec::new())
    };
    if visible.trim().is_empty() {
        return Err(error(400, "Bad Request: message text is empty"));
    }
    if visible.encode_utf16().count() > MAX_TEXT {
        return Err(error(400, "Bad Request: message is too long"));
    }
    Ok((visible, entities))
}

/// Counts a message (or an edit) against `chat`'s rate limits; the whole seconds to wait
/// instead, when over them (and the limits are on).
fn spend(state: &mut State, chat: &str) -> Option<u64> {
    let now = Instant::now();
    if state.rate_limits {
        if let Some(wait) = rate_limited(state, chat, now) {
            return Some(wait);
        }
    }
    state.last_sent.insert(chat.to_owned(), now);
    state.writes.push(now);
    if chat.starts_with('-') {
        let window = state.group_window.entry(chat.to_owned()).or_default();
        window.push_back(now);
        while window.len() > GROUP_PER_MINUTE {
            window.pop_front();
        }
    }
    None
}

/// A chat's id as the answer gives it: its number (a `@name`'s is the one it was given).
fn chat_number(state: &State, chat: &str) -> Value {
    if let Ok(n) = chat.parse::<i64>() {
        return Value::from(n);
    }
    let number = state.numbers.iter().find(|(_, name)| *name == chat).map(|(n, _)| n.as_str());
    Value::from(number.and_then(|n| n.parse::<i64>().ok()).unwrap_or(-1_001_000_000_001))
}

/// The key a chat is kept by: a `@name`'s number stands for the name.
fn canonical(state: &State, chat: String) -> String {
    state.numbers.get(&chat).cloned().unwrap_or(chat)
}

/// Messages a bot may send one group in a minute.
const GROUP_PER_MINUTE: usize = 20;

/// The whole seconds to wait before `chat` may get another message, if it must wait.
fn rate_limited(state: &State, chat: &str, now: Instant) -> Option<u64> {
    let secs_until = |at: Instant| -> u64 {
        let left = at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    };
    let mut wait: Option<u64> = None;
    if let Some(&last) = state.last_sent.get(chat) {
        let next = last + Duration::from_secs(1);
        if next > now {
            wait = Some(secs_until(next).max(1));
        }
    }
    if let Some(window) = state.group_window.get(chat) {
        if window.len() >= GROUP_PER_MINUTE {
            let next = window[window.len() - GROUP_PER_MINUTE] + Duration::from_secs(60);
            if next > now {
                wait = Some(wait.unwrap_or(0).max(secs_until(next).max(1)));
            }
        }
    }
    wait
}

/// How the stand-in keys a chat given as text: an id in decimal, a `@name` in lower case.
fn chat_key_str(s: &str) -> String {
    match s.trim().parse::<i64>() {
        Ok(id) => id.to_string(),
        Err(_) => s.trim().to_lowercase(),
    }
}

/// `digits:letters-digits-_-` — what the Bot API's router takes as a token.
fn token_shaped(token: &str) -> bool {
    let Some((id, secret)) = token.split_once(':') else { return false };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// tdlib's `is_space`: the end of the text (0) counts as one, which ends every scan.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b)
}

/// tdlib's `decode_html_entity`: the character `&…` at `pos` stands for and the position
/// after it, or `None` when it is not an entity Telegram knows (the `&` is then text).
fn decode_entity(s: &[u8], pos: usize) -> Option<(u32, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut end = pos + 1;
    let code: u32;
    if at(pos + 1) == b'#' {
        end += 1;
        let mut res: u64 = 0;
        if at(pos + 2) == b'x' {
            end += 1;
            while at(end).is_ascii_hexdigit() {
                res = (res * 16 + u64::from((at(end) as char).to_digit(16).unwrap_or(0))).min(u64::from(u32::MAX));
                end += 1;
            }
        } else {
            while at(end).is_ascii_digit() {
                res = (res * 10 + u64::from(at(end) - b'0')).min(u64::from(u32::MAX));
                end += 1;
            }
        }
        if res == 0 || res >= 0x10ffff || end - pos >= 10 {
            return None;
        }
        code = res as u32;
    } else {
        while at(end).is_ascii_alphabetic() {
            end += 1;
        }
        code = match &s[pos + 1..end] {
            b"lt" => '<' as u32,
            b"gt" => '>' as u32,
            b"amp" => '&' as u32,
            b"quot" => '"' as u32,
            _ => return None,
        };
    }
    if at(end) == b';' {
        end += 1;
    }
    Some((code, end))
}

const TAGS: [&str; 17] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "span",
    "pre",
    "code",
    "blockquote",
];

/// Telegram's HTML parse mode (tdlib's `parse_html`, ported): the visible text and its
/// entities, or the error text that follows "can't parse entities: ".
pub fn parse_html(input: &str) -> Result<(String, Vec<Entity>), String> {
    struct Open {
        tag: String,
        argument: String,
        offset: usize,
        start: usize,
    }
    let s = input.as_bytes();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut utf16 = 0usize;
    let mut surrogate = false;
    let mut open: Vec<Open> = Vec::new();
    // (kind, utf16 offset, utf16 length, byte start in out, byte end in out)
    let mut found: Vec<(&'static str, usize, usize, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'&' {
            if let Some((code, next)) = decode_entity(s, i) {
                utf16 += 1 + usize::from(code > 0xffff);
                match char::from_u32(code) {
                    Some(ch) => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
                    None => surrogate = true,
                }
                i = next;
                continue;
            }
        }
        if c != b'<' {
            if c & 0xc0 != 0x80 {
                utf16 += 1 + usize::from(c >= 0xf0);
            }
            out.push(c);
            i += 1;
            continue;
        }
        let begin = i;
        i += 1;
        if at(i) != b'/' {
            while !is_space(at(i)) && at(i) != b'>' {
                i += 1;
            }
            if at(i) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let tag = String::from_utf8_lossy(&s[begin + 1..i]).to_lowercase();
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!("Unsupported start tag \"{tag}\" at byte offset {begin}"));
            }
            let mut argument = String::new();
            while at(i) != b'>' {
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) == b'>' {
                    break;
                }
                let name_begin = i;
                while !is_space(at(i)) && at(i) != b'=' {
                    i += 1;
                }
                let name = String::from_utf8_lossy(&s[name_begin..i]).into_owned();
                if name.is_empty() {
                    return Err(format!("Empty attribute name in the tag \"{tag}\" at byte offset {begin}"));
                }
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) != b'=' {
                    return Err(format!(
                        "Expected equal sign in declaration of an attribute of the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                i += 1;
                while at(i) != 0 && is_space(at(i)) {
                    i += 1;
                }
                if at(i) == 0 {
                    return Err(format!("Unclosed start tag \"{tag}\" at byte offset {begin}"));
                }
                let value: String;
                if at(i) != b'\'' && at(i) != b'"' {
                    let token_begin = i;
                    while at(i).is_ascii_alphanumeric() || at(i) == b'.' || at(i) == b'-' {
                        i += 1;
                    }
                    value = String::from_utf8_lossy(&s[token_begin..i]).to_lowercase();
                    if !is_space(at(i)) && at(i) != b'>' {
                        return Err(format!("Unexpected end of name token at byte offset {token_begin}"));
                    }
                } else {
                    let quote = at(i);
                    i += 1;
                    let mut v: Vec<u8> = Vec::new();
                    while at(i) != quote && at(i) != 0 {
                        if at(i) == b'&' {
                            if let Some((code, next)) = decode_entity(s, i) {
                                if let Some(ch) = char::from_u32(code) {
                                    v.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                                }
                                i = next;
                                continue;
                            }
                        }
                        v.push(at(i));
                        i += 1;
                    }
                    if at(i) == quote {
                        i += 1;
                    }
                    value = String::from_utf8_lossy(&v).into_owned();
                }
                if at(i) == 0 {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (tag.as_str(), name.as_str()) {
                    ("a", "href") | ("tg-emoji", "emoji-id") => argument = value,
                    ("code", "class") if value.starts_with("language-") => argument = value[9..].to_owned(),
                    ("span", "class") if value.starts_with("tg-") => argument = value[3..].to_owned(),
                    _ => {}
                }
            }
            if tag == "span" && argument != "spoiler" {
                return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"));
            }
            open.push(Open { tag, argument, offset: utf16, start: out.len() });
        } else {
            let Some(top) = open.last() else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            while !is_space(at(i)) && at(i) != b'>' {
                i += 1;
            }
            let end_tag = String::from_utf8_lossy(&s[begin + 2..i]).to_lowercase();
            while is_space(at(i)) && at(i) != 0 {
                i += 1;
            }
            if at(i) != b'>' {
                return Err(format!("Unclosed end tag at byte offset {begin}"));
            }
            if !end_tag.is_empty() && end_tag != top.tag {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_tag}>\"",
                    top.tag
                ));
            }
            let top = open.pop().expect("an open tag");
            if utf16 > top.offset {
                let kind = match top.tag.as_str() {
                    "i" | "em" => "italic",
                    "b" | "strong" => "bold",
                    "s" | "strike" | "del" => "strikethrough",
                    "u" | "ins" => "underline",
                    "tg-spoiler" | "span" => "spoiler",
                    "tg-emoji" => {
                        if top.argument.parse::<i64>().map_or(true, |id| id == 0) {
                            return Err("Invalid custom emoji identifier specified".to_owned());
                        }
                        "custom_emoji"
                    }
                    "tg-time" => "date_time",
                    "a" => "text_link",
                    "pre" => "pre",
                    "code" => "code",
                    _ => "blockquote",
                };
                found.push((kind, top.offset, utf16 - top.offset, top.start, out.len()));
            }
        }
        // Past the tag's `>`.
        i += 1;
    }
    if let Some(top) = open.last() {
        return Err(format!("Can't find end tag corresponding to start tag {}", top.tag));
    }
    if surrogate {
        return Err("Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units".to_owned());
    }
    let text = String::from_utf8(out).map_err(|_| "Strings must be encoded in UTF-8".to_owned())?;
    found.sort_by_key(|&(_, offset, length, _, _)| (offset, std::cmp::Reverse(length)));
    let entities = found
        .into_iter()
        .map(|(kind, offset, length, start, end)| Entity { kind, offset, length, text: text[start..end].to_owned() })
        .collect();
    Ok((text, entities))
}

/// What Telegram would make mentions, hashtags, bot commands or links of, in the parts of
/// `text` that no code or pre entity covers (tdlib's `match_mentions`, `match_hashtags`,
/// `match_bot_commands`, and links with a scheme).
fn auto_entities(text: &str, entities: &[Entity]) -> Vec<String> {
    // The UTF-16 ranges code and pre cover.
    let covered: Vec<(usize, usize)> =
        entities.iter().filter(|e| matches!(e.kind, "code" | "pre")).map(|e| (e.offset, e.offset + e.length)).collect();
    let chars: Vec<char> = text.chars().collect();
    let mut utf16_at = Vec::with_capacity(chars.len() + 1);
    let mut n = 0;
    for c in &chars {
        utf16_at.push(n);
        n += c.len_utf16();
    }
    utf16_at.push(n);
    let inside = |i: usize| covered.iter().any(|&(a, b)| utf16_at[i] >= a && utf16_at[i] < b);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = if i == 0 { None } else { Some(chars[i - 1]) };
        let run = |from: usize, ok: &dyn Fn(char) -> bool| {
            let mut j = from;
            while j < chars.len() && ok(chars[j]) {
                j += 1;
            }
            j
        };
        let found = match c {
            '@' if !prev.is_some_and(word) => {
                let end = run(i + 1, &name);
                let ok = (2..=32).contains(&(end - i - 1)) && !chars.get(end).is_some_and(|&c| word(c));
                ok.then_some(end)
            }
            '#' if !prev.is_some_and(word) => {
                let end = run(i + 1, &word);
                let letters = chars[i + 1..end].iter().any(|c| c.is_alphabetic());
                (end > i + 1 && letters && chars.get(end) != Some(&'#')).then_some(end)
            }
            '/' if !prev.is_some_and(|p| word(p) || matches!(p, '/' | '<' | '>')) => {
                let mut end = run(i + 1, &name);
                let command = end - i - 1;
                if chars.get(end) == Some(&'@') {
                    let bot = run(end + 1, &name);
                    if (3..=32).contains(&(bot - end - 1)) {
                        end = bot;
                    }
                }
                let ok = (1..=64).contains(&command)
                    && !chars.get(end).is_some_and(|&c| word(c) || matches!(c, '/' | '<' | '>'));
                ok.then_some(end)
            }
            ':' if chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/') => {
                // A scheme: the letters before `://`, and the rest up to white space.
                let mut start = i;
                while start > 0 && chars[start - 1].is_ascii_alphabetic() {
                    start -= 1;
                }
                let end = run(i + 3, &|c: char| !c.is_whitespace());
                if start < i && end > i + 3 && !inside(start) {
                    out.push(chars[start..end].iter().collect());
                }
                i = end.max(i + 1);
                continue;
            }
            _ => None,
        };
        match found {
            Some(end) if !inside(i) => {
                out.push(chars[i..end].iter().collect());
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_errors_read_as_telegrams() {
        let err = |s: &str| parse_html(s).unwrap_err();
        assert_eq!(err("<p>hi</p>"), "Unsupported start tag \"p\" at byte offset 0");
        assert_eq!(err("é <br>"), "Unsupported start tag \"br\" at byte offset 3");
        assert_eq!(err("a < b"), "Unsupported start tag \"\" at byte offset 2");
        assert_eq!(err("<i>x</a>"), "Unmatched end tag at byte offset 4, expected \"</i>\", found \"</a>\"");
        assert_eq!(err("<b>x"), "Can't find end tag corresponding to start tag b");
        assert_eq!(err("x</b>"), "Unexpected end tag at byte offset 1");
        assert_eq!(err("<b"), "Unclosed start tag at byte offset 0");
        assert_eq!(err("<span>x</span>"), "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0");
        assert_eq!(err("&#xD800;"), "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units");
    }

    #[test]
    fn html_text_and_entities() {
        let (text, entities) = parse_html(
            "<b>Jail:</b> a &lt;b&gt; &amp; &quot; &#128512; &nbsp; &apos;\n<pre>x &lt; y</pre><code>@c</code>",
        )
        .unwrap();
        assert_eq!(text, "Jail: a <b> & \" 😀 &nbsp; &apos;\nx < y@c");
        assert_eq!(entities[0], Entity { kind: "bold", offset: 0, length: 5, text: "Jail:".into() });
        assert_eq!(entities[1].kind, "pre");
        assert_eq!(entities[1].text, "x < y");
        // The emoji counts two UTF-16 units: the pre starts at 33, after 32 characters.
        assert_eq!(text.chars().take_while(|&c| c != 'x').count(), 32);
        assert_eq!(entities[1].offset, 33, "{entities:?}");
        assert_eq!(entities[2].text, "@c");
        assert!(auto_entities(&text, &entities).is_empty());
        let (text, entities) = parse_html("hi @admin #tag /ban@bot http://x.example <code>@ok</code> a@b").unwrap();
        assert_eq!(auto_entities(&text, &entities), ["@admin", "#tag", "/ban@bot", "http://x.example"]);
    }

    #[test]
    fn rate_limits_per_chat_and_group() {
        let mut state = State::default();
        let now = Instant::now();
        assert_eq!(rate_limited(&state, "-1", now), None);
        state.last_sent.insert("-1".into(), now);
        assert_eq!(rate_limited(&state, "-1", now + Duration::from_millis(200)), Some(1));
        assert_eq!(rate_limited(&state, "-1", now + Duration::from_millis(1000)), None);
        let window: VecDeque<Instant> = (0..20).map(|i| now + Duration::from_secs(i)).collect();
        state.group_window.insert("-1".into(), window);
        state.last_sent.insert("-1".into(), now + Duration::from_secs(19));
        // The 21st message in a minute waits until the first leaves the window.
        assert_eq!(rate_limited(&state, "-1", now + Duration::from_millis(20_500)), Some(40));
        assert_eq!(rate_limited(&state, "-1", now + Duration::from_secs(60)), None);
    }

    fn call(service: &Service, method: &str, body: Value) -> (u16, Value) {
        let req = Request {
            at: Instant::now(),
            method: "POST".into(),
            path: format!("/bot1:tok/{method}"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            authorization: None,
        };
        let r = service.handle(&req);
        (r.status, serde_json::from_str(&r.body).unwrap())
    }

    #[test]
    fn ids_per_chat_replies_and_edits() {
        let service = Service::new("1:tok");
        service.set_rate_limits(false);
        service.add_chat("-100");
        service.add_chat("42");
        let send = |chat: i64, text: &str, extra: Value| {
            let mut body = json!({ "chat_id": chat, "text": text, "parse_mode": "HTML" });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            call(&service, "sendMessage", body)
        };
        let id = |answer: &(u16, Value)| answer.1["result"]["message_id"].as_u64().unwrap();
        let (a, b, c) = (send(-100, "a", json!({})), send(-100, "b", json!({})), send(42, "c", json!({})));
        assert_eq!((id(&a), id(&b), id(&c)), (1, 2, 1), "each chat counts on its own");
        assert_eq!(a.1["result"]["chat"]["id"], -100);
        // A reply to a message the chat holds; to one it does not, refused unless allowed.
        let r = send(-100, "r", json!({ "reply_parameters": { "message_id": 1 } }));
        assert_eq!(service.message("-100", id(&r)).unwrap().reply_to, Some(1));
        let lost = json!({ "reply_parameters": { "message_id": 99 } });
        assert_eq!(send(-100, "x", lost).1["description"], "Bad Request: message to be replied not found");
        let anyway = json!({ "reply_parameters": { "message_id": 99, "allow_sending_without_reply": true } });
        let r = send(-100, "y", anyway);
        assert_eq!((r.0, service.message("-100", id(&r)).unwrap().reply_to), (200, None));
        // Edits: the text and entities replace the message's; the same again is refused.
        let edit = |chat: i64, message_id: u64, text: &str| {
            call(
                &service,
                "editMessageText",
                json!({ "chat_id": chat, "message_id": message_id, "text": text, "parse_mode": "HTML" }),
            )
        };
        let e = edit(-100, 1, "<b>new</b>");
        assert_eq!((e.0, e.1["result"]["message_id"].as_u64()), (200, Some(1)));
        assert!(e.1["result"]["edit_date"].is_u64());
        let m = service.message("-100", 1).unwrap();
        assert_eq!((m.text.as_str(), m.edits, m.entity_texts("bold")), ("new", 1, vec!["new"]));
        assert!(edit(-100, 1, "<b>new</b>").1["description"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: message is not modified"));
        assert_eq!(
            edit(-100, 1, "<p>x</p>").1["description"],
            "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"
        );
        assert_eq!(edit(-100, 7, "x").1["description"], "Bad Request: message to edit not found");
        assert_eq!(edit(42, 2, "x").1["description"], "Bad Request: message to edit not found");
        service.delete("-100", 2);
        assert_eq!(edit(-100, 2, "x").1["description"], "Bad Request: message to edit not found");
        service.freeze("-100", 1);
        assert_eq!(edit(-100, 1, "z").1["description"], "Bad Request: message can't be edited");
        let extra = json!({ "chat_id": -100, "message_id": 3, "text": "t", "disable_notification": true });
        assert_eq!(call(&service, "editMessageText", extra).0, 400);
        assert_eq!(service.counts(), (5, 1));
        assert_eq!(service.accepted().len(), 4, "the deleted one is not shown");
    }
}
