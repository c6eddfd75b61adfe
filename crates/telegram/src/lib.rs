//! The Telegram sink: sends each event to a chat, group, forum topic or channel through a
//! bot, with the Bot API's `sendMessage` (`POST {api_url}/bot{token}/sendMessage`, JSON).
//!
//! The bot token is part of the URL's path, so the URL is as secret as the token: it is never
//! put into an error, a log line, `Debug`, `check` or a preview. Transport errors, which
//! reqwest builds with the URL, go through the shared HTTP layer, which rebuilds them without
//! it; anything the server answers is searched for the token before it is quoted.
//!
//! Messages are Telegram HTML ([`message`]): every value escaped, attacker text in code
//! blocks, within the 4096-character limit. If Telegram cannot parse the HTML (a template
//! with a tag Telegram does not support), the same send tries once more as plain text.
//! Telegram's answers are classified for the router: 429 waits `parameters.retry_after`,
//! 5xx are transient, a bad token, an unknown chat, a blocked or removed bot and a group that
//! became a supergroup are permanent, each with what to do about it.
//!
//! **References.** A message this sink sent is `CHAT:MESSAGE_ID` ([`MessageRef`]): the chat's
//! number as Telegram answered it (a configured `@username` is answered as a number) and the
//! message's id, which is unique within its chat only. So a reference is used only in the
//! chat the sink now posts to: its number is known from the config when it is a number, else
//! from Telegram's latest answer (until then, after a start with an `@username`, an unban is
//! posted on its own and a storm's digest as a new message).
//!
//! **Replies.** [`Sink::post`] with a reference replies to that message with
//! `reply_parameters = {"message_id": N, "allow_sending_without_reply": true}` (Bot API 7.0's
//! replacement of `reply_to_message_id`): an unban shows under its ban. A ban's message that
//! was deleted meanwhile makes Telegram send the unban as no reply, rather than refuse it; a
//! refusal that names the replied message all the same (a ban in another forum topic, where
//! `allow_sending_without_reply` does not apply) sends it again on its own.
//!
//! **Edits.** [`Sink::post_digest`] with a reference edits that message with
//! `editMessageText` (the chat, the id, the digest's text in HTML, link previews off) and
//! returns the same reference; an edit counts as a message for the pace. `message is not
//! modified` (the text is already that) is success. `message to edit not found` (deleted),
//! `message can't be edited` (Telegram refuses edits of some messages, among them business
//! messages older than 48 hours) and `MESSAGE_ID_INVALID` post the digest as a new message and
//! return that one. If Telegram cannot parse the HTML, the edit (like a new message) is sent
//! once more as plain text.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, MessageRef, Renderer, Secret, SecretSource, Sink, SinkError,
    Templates,
};
use f2b_notify_http::{
    classify_status, clean, describe, exchange, parse_url, wait_from_secs, Answer, Timeout, UrlKind,
};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

pub mod answer;
mod html;
pub mod message;
#[cfg(test)]
mod tests;

pub use html::{escape, visible};

use answer::{Fields, Posted};

/// `sendMessage`, a new message.
const SEND: &str = "sendMessage";
/// `editMessageText`, an edit of a message's text.
const EDIT: &str = "editMessageText";

/// Refusals of an edit that are about that one message (Telegram's descriptions, in lower
/// case): the digest is sent as a new message instead.
/// (<https://github.com/TelegramBotAPI/errors/issues/7>; the Bot API's editMessageText.)
const EDIT_REFUSALS: &[&str] = &["message to edit not found", "message can't be edited", "message_id_invalid"];

/// The refusal of an edit whose text the message already has: the edit is done.
const NOT_MODIFIED: &str = "message is not modified";

/// Refusals of a reply that are about the replied message: sent on its own instead.
const REPLY_REFUSALS: &[&str] = &["message to be replied not found", "replied message not found"];

/// The Bot API's address.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// The least time between two messages. Telegram asks for at most one message per second in
/// a chat, but at most 20 per minute to a group
/// (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>); the
/// sink does not know which kind of chat it writes to, and ban notifications usually go to a
/// group, so it keeps the group's pace (60 s / 20) everywhere. A storm is folded into digests
/// meanwhile, so a slower pace costs messages, not events.
pub const MIN_INTERVAL: Duration = Duration::from_secs(3);

/// Where messages go: a chat's number, or a public channel's or supergroup's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    /// A chat's number: a user's (positive), a group's (negative), a supergroup's or
    /// channel's (`-100…`).
    Id(i64),
    /// `@channelusername`.
    Username(String),
}

impl ChatId {
    /// As the Bot API takes it: a JSON number, or the `@username` string.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Id(id) => Value::from(*id),
            Self::Username(name) => Value::from(name.as_str()),
        }
    }

    /// Reads text: a number (also `"-1001234567890"` in quotes), or `@` and a username.
    fn parse(text: &str) -> Result<Self, ConfigError> {
        let t = text.trim();
        if let Ok(id) = t.parse::<i64>() {
            return Ok(Self::Id(id));
        }
        match t.strip_prefix('@') {
            Some(name) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Ok(Self::Username(t.to_owned()))
            }
            _ => Err(ConfigError::new(format!(
                "`chat_id` = {:?} is neither a chat's number (like -1001234567890) nor a public channel's @username",
                f2b_notify_core::flatten(text)
            ))),
        }
    }
}

/// `chat_id` is an integer or a string; the string is checked when the sink is built, so
/// that the error can say what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatIdValue(Result<ChatId, String>);

/// In the configuration reference: an integer or a string.
impl schemars::JsonSchema for ChatIdValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ChatIdValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"] })
    }
}

impl From<i64> for ChatIdValue {
    fn from(id: i64) -> Self {
        Self(Ok(ChatId::Id(id)))
    }
}

impl From<&str> for ChatIdValue {
    /// Checked when the sink is built, as when read from the config.
    fn from(text: &str) -> Self {
        Self(Err(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for ChatIdValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ChatIdValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a chat's number (like -1001234567890) or a channel's \"@username\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ChatIdValue(Ok(ChatId::Id(v))))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(|v| ChatIdValue(Ok(ChatId::Id(v))))
                    .map_err(|_| E::custom(format!("`chat_id` = {v} is too large for a chat's number")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ChatIdValue(Err(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// Configuration of a `type = "telegram"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bot token @BotFather gives (`123456789:AA…`). A secret: prefer `token_file` or the
    /// environment (`F2B_NOTIFY_SINKS__NAME__TOKEN`). Give `token` or `token_file`, not both.
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the token (mode 0600; `check` warns when others can read it).
    pub token_file: Option<PathBuf>,
    /// Required: the chat to post to, a number (a group's or channel's is negative, like
    /// `-1001234567890`; a user's is positive) or a public channel's `"@username"`.
    pub chat_id: Option<ChatIdValue>,
    /// The forum topic to post in (a supergroup with topics); leave it out for the chat
    /// itself (a forum's General topic).
    pub message_thread_id: Option<i64>,
    /// The Bot API's base URL (default `https://api.telegram.org`), for a local Bot API
    /// server, a proxy or tests; without `/bot…`, which the sink adds with the token.
    pub api_url: Option<String>,
    /// Send silently: the chat's members get the message without a sound (default false).
    #[serde(default)]
    pub disable_notification: bool,
    /// Per-event templates for the message's first line (`[sinks.NAME.templates] ban = "…"`),
    /// in Telegram's HTML: values arrive escaped (and in `<code>` when they hold anything
    /// Telegram could turn into a link or mention), so do not wrap them in tags yourself.
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// What is wrong with a bot token's shape, in words that never quote it. BotFather's tokens
/// are the bot's number, a colon and a secret of letters, digits, `_` and `-`
/// (<https://core.telegram.org/bots/api#authorizing-your-bot>).
fn token_problem(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        return Some("it is empty");
    }
    if token.contains("://") {
        return Some("it looks like a URL: put the token alone here, and a server other than Telegram's in `api_url`");
    }
    if token.contains(char::is_whitespace) {
        return Some("it holds a space or a line break");
    }
    if token.len() > 3 && token[..3].eq_ignore_ascii_case("bot") && token.as_bytes()[3].is_ascii_digit() {
        return Some("it starts with `bot`: write the token alone, without the `bot` the URL puts before it");
    }
    let Some((id, secret)) = token.split_once(':') else {
        return Some("it has no `:` between the bot's number and the secret");
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Some("the part before the `:` must be the bot's number, digits only");
    }
    if secret.is_empty() {
        return Some("nothing follows the `:`");
    }
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Some("the part after the `:` holds a character other than letters, digits, `_` and `-`");
    }
    None
}

/// Whether a URL's text holds something shaped like `/bot<digits>:` (a token pasted along).
fn holds_token_path(text: &str) -> bool {
    text.match_indices("/bot").any(|(i, _)| {
        let rest = &text[i + 4..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(':')
    })
}

/// A built Telegram sink.
#[derive(Debug)]
pub struct TelegramSink {
    name: String,
    renderer: Renderer,
    source: SecretSource,
    /// The token, only to find it in what a server answers.
    token: Secret,
    /// `{api_url}/bot{token}/`, to which a method's name is added: as secret as the token.
    base: Secret,
    /// `{api_url}/bot<token>/sendMessage`, for previews.
    shown: String,
    chat_id: ChatId,
    /// The chat's number: from the config when it is one, else from Telegram's latest answer.
    chat_number: Mutex<Option<i64>>,
    thread: Option<i64>,
    silent: bool,
    client: f2b_notify_http::Client,
    timeout: Timeout,
    /// `check`'s warning when `api_url` is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Builds the sink: reads and checks the token (never quoting it), the chat, the URL and the
/// templates.
pub fn new(name: &str, config: Config) -> Result<TelegramSink, ConfigError> {
    let from_file = config.token_file.clone();
    let source = SecretSource::from_pair("token", config.token, config.token_file)?;
    let token = source.load("token")?;
    if let Some(why) = token_problem(token.expose()) {
        let what = match &from_file {
            Some(p) => format!("`token_file` {} does not hold a Telegram bot token", p.display()),
            None => "`token` is not a Telegram bot token".to_owned(),
        };
        return Err(ConfigError::new(format!(
            "{what}: {why}; @BotFather gives it as 123456:ABC-DEF1234… (a secret's value is never shown)"
        )));
    }
    let chat_id = match config.chat_id {
        None => {
            return Err(ConfigError::new(
                "missing `chat_id` (a chat's number like -1001234567890, or a public channel's \"@username\")",
            ))
        }
        Some(ChatIdValue(Ok(id))) => id,
        Some(ChatIdValue(Err(text))) => ChatId::parse(&text)?,
    };
    if let Some(t) = config.message_thread_id {
        if t <= 0 {
            return Err(ConfigError::new(format!("`message_thread_id` = {t} must be a forum topic's number, above 0")));
        }
    }
    let text = config.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
    if text.contains(token.expose()) || holds_token_path(text) {
        return Err(ConfigError::new(
            "`api_url` holds a bot token: give the Bot API's base only (like https://api.telegram.org; the sink adds /bot<token>/sendMessage) and the token in `token` or `token_file` (not shown)",
        ));
    }
    let (url, cleartext) = parse_url(text, "api_url", UrlKind::Public, "the bot token (part of every request's URL)")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(format!(
            "`api_url` must be the Bot API's base URL, without a query or fragment: `{}`",
            f2b_notify_core::flatten(text)
        )));
    }
    let base = url.as_str().trim_end_matches('/');
    let endpoint = Secret::new(format!("{base}/bot{}/", token.expose()));
    let mut public = url.clone();
    let _ = public.set_username("");
    let _ = public.set_password(None);
    let shown = format!("{}/bot<token>/sendMessage", public.as_str().trim_end_matches('/'));
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    let chat_number = match chat_id {
        ChatId::Id(n) => Some(n),
        ChatId::Username(_) => None,
    };
    Ok(TelegramSink {
        name: name.to_owned(),
        renderer,
        source,
        token,
        base: endpoint,
        shown,
        chat_id,
        chat_number: Mutex::new(chat_number),
        thread: config.message_thread_id,
        silent: config.disable_notification,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        cleartext,
    })
}

/// How one request went, short of an error.
enum Outcome {
    /// Done: what the answer said of the message.
    Sent(Fields),
    /// Telegram could not parse the HTML: its words after "can't parse entities: ".
    CantParse(String),
}

/// A request the Bot API refused: its description, in lower case (the sink recognises the
/// refusals it works around by it), and the error the router gets otherwise.
#[derive(Debug)]
struct Refused {
    description: String,
    error: SinkError,
}

impl Refused {
    /// Whether the description holds one of `words`.
    fn says(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.description.contains(w))
    }
}

impl From<SinkError> for Refused {
    fn from(error: SinkError) -> Self {
        Self { description: String::new(), error }
    }
}

impl TelegramSink {
    /// The JSON body of `sendMessage` for `text`, in HTML or as plain text.
    pub fn body(&self, text: &str, html: bool) -> Value {
        let mut body = json!({
            "chat_id": self.chat_id.to_json(),
            "text": text,
            "link_preview_options": {"is_disabled": true},
            "disable_notification": self.silent,
        });
        let obj = body.as_object_mut().expect("an object");
        if html {
            obj.insert("parse_mode".into(), Value::from("HTML"));
        }
        if let Some(t) = self.thread {
            obj.insert("message_thread_id".into(), Value::from(t));
        }
        body
    }

    /// The body of `sendMessage` replying to `parent`: sent even if `parent` is gone.
    fn reply_body(&self, text: &str, html: bool, parent: Posted) -> Value {
        let mut body = self.body(text, html);
        body["reply_parameters"] = json!({"message_id": parent.message_id, "allow_sending_without_reply": true});
        body
    }

    /// The body of `editMessageText` putting `text` in `target`. It takes no
    /// `disable_notification` (an edit notifies nobody) and no topic (the message has one).
    fn edit_body(&self, text: &str, html: bool, target: Posted) -> Value {
        let mut body = json!({
            "chat_id": target.chat,
            "message_id": target.message_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if html {
            body["parse_mode"] = Value::from("HTML");
        }
        body
    }

    /// The chat's number, if known yet.
    fn chat_number(&self) -> Option<i64> {
        *self.chat_number.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reference handed back by the router, if it names a message of the chat this sink
    /// posts to (see the module docs).
    fn ours(&self, r: Option<&MessageRef>) -> Option<Posted> {
        let posted = Posted::from_ref(r?)?;
        (Some(posted.chat) == self.chat_number()).then_some(posted)
    }

    /// The message an answer names; its chat is the configured one's number.
    fn learn(&self, fields: &Fields) -> Option<MessageRef> {
        let posted = fields.message()?;
        *self.chat_number.lock().unwrap_or_else(PoisonError::into_inner) = Some(posted.chat);
        posted.to_ref()
    }

    /// Sends `html` with `method` in the body `body` makes of it; if Telegram cannot parse
    /// it, sends its text once more as plain text, with a line saying why, in the same call.
    async fn deliver(&self, method: &str, html: &str, body: impl Fn(&str, bool) -> Value) -> Result<Fields, Refused> {
        let why = match self.call(method, &body(html, true)).await? {
            Outcome::Sent(fields) => return Ok(fields),
            Outcome::CantParse(why) => why,
        };
        let note = format!("\n\n(sent as plain text: Telegram could not parse its HTML: {why})");
        let room = message::MAX_TEXT.saturating_sub(html::len(&note));
        let plain = format!("{}{note}", html::cut(&visible(html), room));
        match self.call(method, &body(&plain, false)).await? {
            Outcome::Sent(fields) => Ok(fields),
            Outcome::CantParse(why) => Err(SinkError::permanent(describe(
                &format!("Bad Request: can't parse entities: {why}"),
                Some(400),
                Some("Telegram refused even the plain text (please report this as a bug)"),
            ))
            .into()),
        }
    }

    /// Sends a new message: in the chat, replying to `parent` when given (see the module
    /// docs); its reference.
    async fn send_new(&self, html: &str, parent: Option<Posted>) -> Result<Option<MessageRef>, SinkError> {
        let sent = match parent {
            Some(p) => match self.deliver(SEND, html, |t, h| self.reply_body(t, h, p)).await {
                Err(refused) if refused.says(REPLY_REFUSALS) => self.deliver(SEND, html, |t, h| self.body(t, h)).await,
                other => other,
            },
            None => self.deliver(SEND, html, |t, h| self.body(t, h)).await,
        };
        Ok(self.learn(&sent.map_err(|r| r.error)?))
    }

    /// One request and its classified answer.
    async fn call(&self, method: &str, body: &Value) -> Result<Outcome, Refused> {
        let url = format!("{}{method}", self.base.expose());
        let request = self.client.post(url).json(body);
        let answer = exchange(request, self.timeout).await.map_err(|e| self.redact_error(e))?;
        self.classify(&answer)
    }

    /// `text` with the token (and its secret half) replaced, for text a server sent back: a
    /// proxy's or web server's error page may quote the path it was asked for.
    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let token = self.token.expose();
        let secret = token.split_once(':').map_or(token, |(_, s)| s);
        if !text.contains(secret) {
            return Cow::Borrowed(text);
        }
        Cow::Owned(text.replace(token, "<token>").replace(secret, "<token>"))
    }

    fn redact_error(&self, e: SinkError) -> SinkError {
        match e {
            SinkError::Transient { message, retry_after } => {
                SinkError::Transient { message: self.redact(&message).into_owned(), retry_after }
            }
            SinkError::Permanent { message } => SinkError::permanent(self.redact(&message).into_owned()),
        }
    }

    /// Reads the Bot API's answer: `{"ok":true,…}` is sent (see [`answer::read`]); otherwise
    /// its `description` (or, for a page that is not the Bot API's JSON, its text) with what
    /// it means.
    fn classify(&self, answer: &Answer) -> Result<Outcome, Refused> {
        let status = answer.status;
        if answer.is_success() {
            if let Some(fields) = answer::read(&answer.body) {
                return Ok(Outcome::Sent(fields));
            }
            return Err(SinkError::permanent(format!(
                "unexpected answer (HTTP {status}), not the Bot API's JSON: {}",
                clean(&self.redact(&answer.body))
            ))
            .into());
        }
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let description = match body.get("description").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            None => page_text(&answer.body),
        };
        let description = self.redact(&description).into_owned();
        if status == 400 {
            if let Some((_, why)) = description.split_once("can't parse entities") {
                return Ok(Outcome::CantParse(clean(why.trim_start_matches(':').trim())));
            }
        }
        let lower = description.to_lowercase();
        let parameters = body.get("parameters");
        if let Some(to) = parameters.and_then(|p| p.get("migrate_to_chat_id")).and_then(Value::as_i64) {
            let meaning = format!(
                "the group became a supergroup, whose chat_id is {to}: set `chat_id = {to}` in this sink's config (f2b-notify does not switch chats by itself)"
            );
            let error = SinkError::permanent(describe(&description, Some(status), Some(&meaning)));
            return Err(Refused { description: lower, error });
        }
        let wait = parameters
            .and_then(|p| p.get("retry_after"))
            .and_then(Value::as_f64)
            .and_then(wait_from_secs)
            .or_else(|| retry_after_in(&description))
            .or_else(|| answer.retry_after());
        let meaning = meaning(status, &description);
        let error = classify_status(status, wait, describe(&description, Some(status), meaning));
        Err(Refused { description: lower, error })
    }
}

/// The text of an answer that is not the Bot API's JSON (an nginx error page): its
/// `<title>` if it has one, else the body.
fn page_text(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            return body[a + 7..b].to_owned();
        }
    }
    body.to_owned()
}

/// The wait in a description such as "Too Many Requests: retry after 35".
fn retry_after_in(description: &str) -> Option<Duration> {
    let (_, rest) = description.split_once("retry after ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    wait_from_secs(digits.parse::<u64>().ok()? as f64)
}

/// What Telegram's errors mean for the operator, and what to do.
/// (<https://github.com/TelegramBotAPI/errors>, <https://core.telegram.org/bots/api>)
fn meaning(status: u16, description: &str) -> Option<&'static str> {
    let d = description.to_ascii_lowercase();
    Some(match status {
        401 => {
            "Telegram does not accept the bot token (revoked, or mistyped): get the current one from @BotFather (/mybots, the bot, API Token) and put it in `token` or `token_file`"
        }
        404 => {
            "the Bot API knows no such bot or method: the token is not a bot's (copy the whole 123456:ABC-DEF1234… from @BotFather), or `api_url` points at something other than the Bot API"
        }
        429 => "Telegram's flood control: the message waits as long as Telegram asked",
        400 if d.contains("chat not found") => {
            "the chat does not exist or the bot cannot see it: check `chat_id` (a group's or channel's number is negative, like -1001234567890), add the bot to the group, or to the channel as an administrator; a user must have started the bot first"
        }
        400 if d.contains("message thread not found") => {
            "the chat has no forum topic `message_thread_id` names: check it, or leave it out to post in the chat itself"
        }
        400 if d.contains("not enough rights") => {
            "the bot may not post in this chat: let members send messages, or make the bot an administrator (in a channel, with the right to post)"
        }
        400 if d.contains("too long") || d.contains("text is empty") || d.contains("entities too long") => {
            "f2b-notify keeps messages within Telegram's limits: please report this as a bug"
        }
        403 if d.contains("blocked by the user") => {
            "the user blocked the bot: unblock it in the chat with the bot, or choose another `chat_id`"
        }
        403 if d.contains("not a member") || d.contains("kicked") => {
            "the bot is not in this chat (never added, or removed): add it to the group, or to the channel as an administrator"
        }
        403 if d.contains("can't initiate conversation") => {
            "a bot cannot write first: the user must open the chat with the bot and press Start"
        }
        403 if d.contains("deactivated") => "the user's account was deleted: choose another `chat_id`",
        403 => "the bot may not post in this chat",
        500..=599 => "a problem on Telegram's side",
        _ => return None,
    })
}

#[async_trait]
impl Sink for TelegramSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "telegram"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.post(event, None).await.map(drop)
    }

    /// One message, whatever the storm: every address that fits, and the exact count of the
    /// rest.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post_digest(digest, None).await.map(drop)
    }

    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let html = message::event(event, &self.renderer).map_err(|e| SinkError::permanent(e.to_string()))?;
        self.send_new(&html, self.ours(reply_to)).await
    }

    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let html = message::digest(digest);
        if let Some(target) = self.ours(update) {
            match self.deliver(EDIT, &html, |t, h| self.edit_body(t, h, target)).await {
                Ok(_) => return Ok(target.to_ref()),
                Err(refused) if refused.says(&[NOT_MODIFIED]) => return Ok(target.to_ref()),
                Err(refused) if refused.says(EDIT_REFUSALS) => {}
                Err(refused) => return Err(refused.error),
            }
        }
        self.send_new(&html, None).await
    }

    /// See [`MIN_INTERVAL`]; an edit counts as a message.
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("token").into_iter().chain(self.cleartext.clone()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.send_new(&message::alert(alert), None).await.map(drop)
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let html = message::event(event, &self.renderer).map_err(|e| SinkError::permanent(e.to_string()))?;
        let json =
            serde_json::to_string_pretty(&self.body(&html, true)).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("POST to {} (the token is not shown), this JSON body:\n{json}", self.shown))
    }
}
