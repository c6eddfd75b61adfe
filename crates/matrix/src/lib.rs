//! The Matrix sink: posts each event, digest or alert as an `m.notice` to one room through the
//! Client-Server API (`PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with
//! `Authorization: Bearer`), as an account of its own (a bot user) that has joined the room.
//!
//! Retries are idempotent: the transaction id is derived from the events ([`txn`]), so a send
//! whose answer was lost and is sent again is recognised by the homeserver, which posts it
//! once. Failures are classified from the standard error body (`errcode`, `error`): a rate
//! limit (`M_LIMIT_EXCEEDED`, 429) waits as asked (the `Retry-After` header, else
//! `retry_after_ms`), 5xx and lost connections are transient, and a token the server does not
//! know, a room the bot is not in, an oversized or malformed event are permanent, each with
//! what to do. The access token travels only in the `Authorization` header (marked
//! sensitive) and never appears in errors, logs, `check` or `Debug`; the homeserver's URL is
//! no secret and is shown.
//! Source: <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid>.
//!
//! **References.** The answer's `event_id` is the [`MessageRef`] the router keeps (when it has
//! an event id's shape: `$`, then at most 254 printable ASCII characters).
//!
//! **Threads.** [`Sink::post`] with a reference posts the unban in its ban's thread
//! (CS#threading, MSC3440): `m.relates_to = {"rel_type": "m.thread", "event_id": BAN,
//! "is_falling_back": true, "m.in_reply_to": {"event_id": BAN}}`, the reply fallback for
//! clients without threads. A homeserver that refuses the relation for the ban's sake (400
//! `M_UNKNOWN`: an event it does not know, after a purge or a move to another room; one in
//! another room; a root that is itself in a relation) gets the unban again on its own.
//!
//! **Edits.** [`Sink::post_digest`] with a reference edits that message (CS#event-replacements):
//! a new event whose `m.new_content` is the digest and whose `m.relates_to` is `m.replace` of
//! the original ([`message::build_edit`]), and returns the original's reference, since every
//! edit names the original. The edit is a send of its own, with its own transaction id, as
//! deterministic as a message's ([`txn`]): a retry of the same edit is recognised, and it
//! differs from the original's and from any other edit's. A refusal of the relation (as
//! above) posts the digest as a new message. An edit counts as a message for the pace.

use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{
    async_trait, flatten, Alert, ConfigError, Digest, Event, MessageRef, Renderer, Secret, SecretSource, Sink,
    SinkError, Templates,
};
use f2b_notify_http::{
    classify_status, describe, exchange, header, parse_url, secret_header, wait_from_millis, Answer, Client, Timeout,
    Url, UrlKind,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

pub mod message;
#[cfg(test)]
mod tests;
pub mod txn;

use txn::Transactions;

/// Configuration of a `type = "matrix"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The homeserver's base URL, `https://matrix.example.org` (the client API's, as a client
    /// shows it at login; not the `:8448` federation port, and without `/_matrix/…`). Shown in
    /// errors: it is no secret. Required.
    pub homeserver: Option<String>,
    /// The room's id, `!abc123:example.org` (Element: Room settings → Advanced → "Internal
    /// room ID"). An alias (`#room:example.org`) is refused: its id is looked up once, by
    /// hand. The bot's account must have joined the room. Required.
    pub room_id: Option<String>,
    /// The bot account's access token (`syt_…`). A secret: prefer `token_file` or the
    /// environment (`F2B_NOTIFY_SINKS__NAME__TOKEN`). Give `token` or `token_file`, not both.
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the access token (mode 0600; `check` warns when others can read it).
    pub token_file: Option<PathBuf>,
    /// Per-event templates for the message's first line (`[sinks.NAME.templates] ban = "…"`),
    /// plain text (HTML-escaped for the formatted body).
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// What a path segment may hold unencoded: the unreserved characters of RFC 3986 only, so a
/// room id's `!` and `:` (and anything else) travel percent-encoded (`%21abc%3Aexample.org`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A path segment, percent-encoded.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Synapse's default `rc_message` is 0.2 messages a second per account with bursts of 10:
/// one message every 5 s never empties the bucket, and what piles up meanwhile goes out as
/// one digest. Source:
/// <https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html#rc_message>.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// A built Matrix sink.
#[derive(Debug)]
pub struct MatrixSink {
    name: String,
    /// The homeserver's base URL, without a trailing `/`.
    base: String,
    /// The base as shown (user and password, if any, left out).
    shown: String,
    room_id: String,
    source: SecretSource,
    auth: header::HeaderValue,
    client: Client,
    timeout: Timeout,
    renderer: Renderer,
    txns: Transactions,
    /// `check`'s warning when the homeserver is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Builds the sink: checks the homeserver URL and room id, reads the token (from the file,
/// if so configured), compiles the templates. Errors name the key, never the token.
pub fn new(name: &str, config: Config) -> Result<MatrixSink, ConfigError> {
    let homeserver = config
        .homeserver
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| ConfigError::new("missing `homeserver` (the base URL, like https://matrix.example.org)"))?;
    let (url, cleartext) = parse_url(&homeserver, "homeserver", UrlKind::Public, "the access token")?;
    if url.query().is_some() || url.fragment().is_some() || url.path().contains("/_matrix") {
        return Err(ConfigError::new(format!(
            "`homeserver` must be the base URL alone, like https://matrix.example.org (no `/_matrix/…`, query or fragment): `{}`",
            flatten(&homeserver)
        )));
    }
    let room_id = check_room_id(config.room_id)?;
    let source = SecretSource::from_pair("token", config.token, config.token_file)?;
    let token = source.load("token")?;
    let auth = secret_header(&format!("Bearer {}", token.expose()), "token")?;
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    let base = url.as_str().trim_end_matches('/').to_owned();
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let shown = shown.as_str().trim_end_matches('/').to_owned();
    Ok(MatrixSink {
        name: name.to_owned(),
        base,
        shown,
        room_id,
        source,
        auth,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        renderer,
        txns: Transactions::default(),
        cleartext,
    })
}

/// A room id starts with `!`. Its rest is opaque (newer room versions have no `:server`
/// part), so nothing more is checked but that it is one line. An alias is refused with how to
/// find the id.
fn check_room_id(room_id: Option<String>) -> Result<String, ConfigError> {
    let room_id = room_id.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).ok_or_else(|| {
        ConfigError::new(
            "missing `room_id` (the room's id, like !abc123:example.org: in Element, Room settings → Advanced)",
        )
    })?;
    if room_id.starts_with('#') {
        return Err(ConfigError::new(format!(
            "`room_id` = `{}` is a room alias, not a room id: give the id, which starts with `!` (in Element: Room settings → Advanced → Internal room ID; or ask the homeserver: GET /_matrix/client/v3/directory/room/{})",
            flatten(&room_id),
            encode_segment(&room_id)
        )));
    }
    if !room_id.starts_with('!') || room_id.len() < 2 || room_id.chars().any(char::is_control) || room_id.len() > 255 {
        return Err(ConfigError::new(format!(
            "`room_id` = `{}` is not a room id: it starts with `!`, like !abc123:example.org (in Element: Room settings → Advanced)",
            flatten(&room_id)
        )));
    }
    Ok(room_id)
}

/// A send the homeserver refused: the status and `errcode` (the sink works around a refused
/// relation by them), and the error for the router.
#[derive(Debug)]
struct Refused {
    status: u16,
    errcode: Option<String>,
    error: SinkError,
}

impl Refused {
    /// Whether the homeserver refused the event's relation to another (Synapse's checks: 400
    /// with the spec's `M_UNKNOWN`, CS#threading), not the event: sent without it instead.
    fn relation(&self) -> bool {
        self.status == 400 && self.errcode.as_deref() == Some("M_UNKNOWN")
    }
}

impl From<SinkError> for Refused {
    fn from(error: SinkError) -> Self {
        Self { status: 0, errcode: None, error }
    }
}

/// Whether `id` has an event id's shape: `$`, then printable ASCII without spaces, 255 bytes
/// at most (CS#event-ids and the appendices' identifier grammar).
pub fn event_id_shaped(id: &str) -> bool {
    (2..=255).contains(&id.len()) && id.starts_with('$') && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The standard error body: `{"errcode": "M_…", "error": "…"}`, and what some codes add.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// `M_LIMIT_EXCEEDED`: how long to wait (deprecated in favour of `Retry-After`).
    #[serde(default)]
    retry_after_ms: Option<f64>,
    /// `M_UNKNOWN_TOKEN`: the device still exists; logging in again with it would help.
    #[serde(default)]
    soft_logout: Option<bool>,
    /// `M_RESOURCE_LIMIT_EXCEEDED`: whom to ask.
    #[serde(default)]
    admin_contact: Option<String>,
}

/// What an `errcode` means for the operator, and whether it is worth retrying (`None`: the
/// code does not decide, the HTTP status does). Prefer the errcode over the status, except for
/// `M_UNKNOWN`, where the spec says the status is the better guide.
/// Source: <https://spec.matrix.org/latest/client-server-api/#standard-error-response>.
fn explain(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "M_LIMIT_EXCEEDED" => ("the homeserver's rate limit was hit", true),
        "M_MISSING_TOKEN" => (
            "no access token reached the homeserver: check that `token` or `token_file` holds it (a proxy in between may drop the Authorization header)",
            false,
        ),
        "M_UNKNOWN_TOKEN" => (
            "the homeserver does not know the access token (never valid, logged out, or expired): log the bot in again and put its new access token in `token` or `token_file`",
            false,
        ),
        "M_FORBIDDEN" => (
            "the bot's account may not post in the room: invite it to the room and have it join (accept the invite), or give it the power level to send messages",
            false,
        ),
        "M_NOT_FOUND" => ("the homeserver does not know the room: check `room_id`", false),
        "M_UNRECOGNIZED" => (
            "the homeserver does not know this request: check that `homeserver` is the client API's base URL (as shown at login, without /_matrix)",
            false,
        ),
        "M_TOO_LARGE" => ("the message is too large for the homeserver (please report this as a bug)", false),
        "M_BAD_JSON" | "M_NOT_JSON" => ("the homeserver rejected the message's JSON (please report this as a bug)", false),
        "M_USER_DEACTIVATED" => ("the bot's account is deactivated: use another account's token", false),
        "M_USER_LOCKED" => ("the bot's account is locked by the homeserver's admin", false),
        "M_USER_SUSPENDED" => ("the bot's account is suspended by the homeserver's admin", false),
        "M_RESOURCE_LIMIT_EXCEEDED" => (
            "the homeserver is over a resource limit (its admin can lift it); trying again later",
            true,
        ),
        _ => return None,
    })
}

/// Classifies a non-success answer from the homeserver.
fn classify(answer: &Answer) -> SinkError {
    let Ok(body) = serde_json::from_str::<ErrorBody>(&answer.body) else {
        // Not the homeserver's JSON: a reverse proxy's page. The status decides.
        let text = if answer.body.trim().is_empty() { String::new() } else { answer.body_line() };
        return classify_status(answer.status, answer.retry_after(), describe(&text, Some(answer.status), None));
    };
    let code = f2b_notify_http::clean(body.errcode.as_deref().unwrap_or(""));
    let error = f2b_notify_http::clean(body.error.as_deref().unwrap_or(""));
    let text = match (code.is_empty(), error.is_empty()) {
        (false, false) => format!("{code} {error}"),
        (false, true) => code.clone(),
        (true, _) => error,
    };
    // Retry-After is preferred (the spec deprecated retry_after_ms in its favour).
    let wait = answer.retry_after().or_else(|| body.retry_after_ms.and_then(wait_from_millis));
    let known = if code == "M_UNKNOWN" { None } else { explain(&code) };
    let Some((meaning, transient)) = known else {
        return classify_status(answer.status, wait, describe(&text, Some(answer.status), None));
    };
    let mut meaning = meaning.to_owned();
    if code == "M_UNKNOWN_TOKEN" && body.soft_logout == Some(true) {
        meaning.push_str(" (soft logout: logging in again with the same device_id keeps the device)");
    }
    if let Some(contact) = body.admin_contact.as_deref().filter(|_| code == "M_RESOURCE_LIMIT_EXCEEDED") {
        meaning.push_str(&format!(" (admin contact: {})", f2b_notify_http::clean(contact)));
    }
    let message = describe(&text, Some(answer.status), Some(&meaning));
    if transient {
        SinkError::Transient { message, retry_after: wait }
    } else {
        SinkError::permanent(message)
    }
}

impl MatrixSink {
    /// The URL of one send: the room id and transaction id percent-encoded.
    fn endpoint(&self, base: &str, txn_id: &str) -> String {
        format!(
            "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            encode_segment(&self.room_id),
            encode_segment(txn_id)
        )
    }

    /// Sends one content with `txn_id`; success is 200 with an `event_id`, which is the
    /// message's reference when it has an event id's shape.
    async fn put(&self, txn_id: &str, content: &Value) -> Result<Option<MessageRef>, Refused> {
        let url = Url::parse(&self.endpoint(&self.base, txn_id))
            .map_err(|e| SinkError::permanent(format!("cannot build the request URL: {e}")))?;
        let request = self.client.put(url).header(header::AUTHORIZATION, self.auth.clone()).json(content);
        let answer = exchange(request, self.timeout).await.map_err(|e| self.at_homeserver(e))?;
        if answer.status == 200 {
            let event_id = serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| v.get("event_id").and_then(Value::as_str).map(str::to_owned));
            return match event_id {
                Some(id) => Ok(Some(id).filter(|id| event_id_shaped(id)).and_then(MessageRef::new)),
                // Cut at the HTTP layer's limit: stored (a 200), its id past the cut.
                None if answer.body.len() >= f2b_notify_http::MAX_BODY => Ok(None),
                None => Err(SinkError::permanent(format!(
                    "{}: unexpected answer (HTTP 200 without an event_id): {}: check that `homeserver` is the client API's base URL",
                    self.shown,
                    answer.body_line()
                ))
                .into()),
            };
        }
        let errcode = serde_json::from_str::<ErrorBody>(&answer.body).ok().and_then(|b| b.errcode);
        Err(Refused { status: answer.status, errcode, error: self.at_homeserver(classify(&answer)) })
    }

    /// The error with the homeserver it came from in front (the URL is no secret; the
    /// transient/permanent class and the wait are kept).
    fn at_homeserver(&self, e: SinkError) -> SinkError {
        let message = format!("{}: {}", self.shown, e.message());
        match e {
            SinkError::Transient { retry_after, .. } => SinkError::Transient { message, retry_after },
            SinkError::Permanent { .. } => SinkError::permanent(message),
        }
    }

    /// Sends the content for `events` with their transaction id (`what` keeps apart sends of
    /// equal events that are different messages: an event, a digest, an edit of a message).
    async fn send_events(&self, what: &str, events: &[&Event], content: &Value) -> Result<Option<MessageRef>, Refused> {
        let txn_id = self.txns.id(what, events);
        let posted = self.put(&txn_id, content).await?;
        self.txns.delivered(&txn_id);
        Ok(posted)
    }

    /// The content [`Sink::send`] posts for `event`.
    pub fn content(&self, event: &Event) -> Result<Value, SinkError> {
        message::build(event, &self.renderer).map_err(|e| SinkError::permanent(e.to_string()))
    }
}

#[async_trait]
impl Sink for MatrixSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "matrix"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.post(event, None).await.map(drop)
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post_digest(digest, None).await.map(drop)
    }

    /// The transaction id is the event's whether it replies or not: a retry after a lost
    /// answer is the same message either way.
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let content = self.content(event)?;
        if let Some(parent) = reply_to.map(MessageRef::as_str).filter(|id| event_id_shaped(id)) {
            let mut threaded = content.clone();
            threaded["m.relates_to"] = json!({
                "rel_type": "m.thread",
                "event_id": parent,
                "is_falling_back": true,
                "m.in_reply_to": { "event_id": parent },
            });
            match self.send_events("event", &[event], &threaded).await {
                Err(refused) if refused.relation() => {}
                other => return other.map_err(|r| r.error),
            }
        }
        self.send_events("event", &[event], &content).await.map_err(|r| r.error)
    }

    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let events: Vec<&Event> = digest.events.iter().collect();
        let content = message::build_digest(digest);
        if let Some(target) = update.filter(|r| event_id_shaped(r.as_str())) {
            let within = message::build_digest_within(digest, message::MAX_CONTENT - message::EDIT_ROOM);
            let edit = message::build_edit(within, target.as_str());
            match self.send_events(&format!("edit {}", target.as_str()), &events, &edit).await {
                Ok(_) => return Ok(Some(target.clone())),
                Err(refused) if refused.relation() => {}
                Err(refused) => return Err(refused.error),
            }
        }
        self.send_events("digest", &events, &content).await.map_err(|r| r.error)
    }

    /// See [`MIN_INTERVAL`]; an edit counts as a message.
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("token").into_iter().chain(self.cleartext.clone()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        // An alert is not retried as such (a later one says what is new): a unique id.
        self.put(&Transactions::unique("alert"), &message::build_alert(alert)).await.map(drop).map_err(|r| r.error)
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let content = self.content(event)?;
        let json = serde_json::to_string_pretty(&content).map_err(|e| SinkError::permanent(e.to_string()))?;
        let txn_id = Transactions::preview("event", &[event]);
        Ok(format!(
            "PUT {} with `Authorization: Bearer` and the access token (not shown), this JSON body:\n{json}",
            self.endpoint(&self.shown, &txn_id)
        ))
    }
}
