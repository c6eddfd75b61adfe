//! The Discord sink: posts each event to a channel's incoming webhook (Execute Webhook,
//! <https://discord.com/developers/docs/resources/webhook#execute-webhook>) as one embed
//! coloured by event, a storm as one digest message naming every address, and alerts.
//!
//! The webhook URL is the secret (its token is in the path): it never appears in errors,
//! logs, `check` output, previews or `Debug`. It is posted to as given (the UI's
//! `https://discord.com/api/webhooks/ID/TOKEN` and the versioned `/api/v10/webhooks/…`
//! alike; hosts are never rewritten), with `?wait=true`: without it, Discord answers 204 even
//! for a message it did not save. Every message carries `allowed_mentions = {"parse": []}`.
//! Discord's answers are classified for the router in [`answer`]; the layout, escaping and
//! limits are in [`message`].
//!
//! **References.** The answer to `?wait=true` is the saved message; its `id` (a snowflake) is
//! the [`MessageRef`] the router keeps. Only the id: an edit goes through the same webhook
//! (and `thread_id`) as the post, which name the channel.
//!
//! **Storms.** [`Sink::post_digest`] with a reference edits that message (Edit Webhook
//! Message, `PATCH …/webhooks/{id}/{token}/messages/{message_id}`, with `thread_id` when
//! configured) to hold the digest, and returns the same reference. The edit sends `content`
//! and `embeds` (both replace the message's: a ban's embed becomes the storm's list) and
//! `allowed_mentions = {"parse": []}` again: without it Discord parses the edited content
//! with the default allowances. It sends no `username` or `avatar_url`, which the edit route
//! does not take (the message keeps its poster). An edit Discord refuses for that message's
//! sake ([`EDIT_REFUSALS`]: deleted, not this webhook's, in an archived thread, too many edits
//! of an old message) posts the digest as a new message and returns that one.
//!
//! **Unbans.** A webhook cannot reply: Execute Webhook takes no `message_reference` (only a
//! bot's Create Message does). An unban is posted as a message of its own, like any event,
//! and names its ban only by the address and jail it shows; it links to nothing (a message
//! link needs the server's id, which the webhook's answer does not carry) and mentions
//! nobody. Its reference is returned all the same, so a storm that follows edits it.

use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, MessageRef, Renderer, Secret, SecretSource, Sink, SinkError,
    Templates,
};
use f2b_notify_http::{exchange, parse_url, Method, Timeout, Url, UrlKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use answer::Refused;

pub mod answer;
pub mod message;
#[cfg(test)]
mod tests;

pub use message::{build, build_alert, build_digest, MessageOptions};

/// The `User-Agent` Discord asks every HTTP client for (`DiscordBot ($url, $versionNumber)`,
/// <https://discord.com/developers/docs/reference#user-agent>); without it Cloudflare may
/// refuse the request.
pub const USER_AGENT: &str = concat!("DiscordBot (f2b-notify, ", env!("CARGO_PKG_VERSION"), ")");

/// The least time between two messages. Discord allows about 5 requests per 2 s per webhook
/// and 30 per minute per channel (Discord staff, discord-api-docs#367; not in the docs, which
/// say to read the `X-RateLimit-*` headers). One message per 2 s is 30 a minute: within both
/// even under a storm that lasts, where 400 ms (the per-webhook rate) would run into the
/// channel's limit after 12 s and then wait out 429s. A storm loses nothing by it: what piles
/// up meanwhile goes out as one digest.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Discord's refusals of an edit that are about that one message (JSON error codes,
/// <https://discord.com/developers/docs/topics/opcodes-and-status-codes#json>): the digest
/// is posted as a new message instead. 10008 Unknown Message (deleted, or the webhook's URL
/// now names another webhook); 50005 a message authored by another; 50083 a message in an
/// archived thread (a new post unarchives it); 30046 too many edits of a message older than
/// an hour; 20022 an announcement channel's edit limit.
pub const EDIT_REFUSALS: &[i64] = &[10008, 50005, 50083, 30046, 20022];

/// Configuration of a `type = "discord"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The webhook URL (`https://discord.com/api/webhooks/ID/TOKEN`, or `…/api/v10/webhooks/…`),
    /// from the channel's settings: Integrations → Webhooks → Copy Webhook URL. A secret:
    /// prefer `url_file` or the environment (`F2B_NOTIFY_SINKS__NAME__URL`). Give `url` or
    /// `url_file`, not both.
    #[serde(default, deserialize_with = "url")]
    pub url: Option<Secret>,
    /// A file holding the webhook URL (mode 0600; `check` warns when others can read it).
    pub url_file: Option<PathBuf>,
    /// The poster's name instead of the webhook's own (1 to 80 characters).
    pub username: Option<String>,
    /// The poster's avatar instead of the webhook's own: an https:// URL of an image.
    pub avatar_url: Option<String>,
    /// Post into this thread of the webhook's channel (its id; sent as the `thread_id` query
    /// parameter; Discord unarchives the thread). Required for a forum or media channel.
    #[serde(default, deserialize_with = "snowflake")]
    pub thread_id: Option<String>,
    /// Per-event templates for the message's text, the `content` a notification shows
    /// (`[sinks.NAME.templates] ban = "…"`). Values are escaped for Discord markdown.
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// `url` is a secret: a value of the wrong type is an error naming the key, never the value.
fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "url")
}

/// A thread id: a snowflake, written as a number (`thread_id = 1234567890123456789`) or a
/// string; only digits.
fn snowflake<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::{Error, Visitor};
    struct Id;
    impl<'de> Visitor<'de> for Id {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a thread id (digits)")
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|v| Some(v.to_string()))
                .map_err(|_| E::custom("`thread_id` must be a thread's id: digits"))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!("`thread_id` = {v:?} must be a thread's id: digits")));
            }
            Ok(Some(v.to_owned()))
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Id)
}

/// A built Discord sink.
#[derive(Debug)]
pub struct DiscordSink {
    name: String,
    source: SecretSource,
    /// The URL posted to: the configured one with `wait=true` (and `thread_id`) in its query.
    endpoint: Secret,
    /// The URL of the webhook's messages, `…/webhooks/ID/TOKEN/messages` (with `thread_id`
    /// and the configured query, without `wait`), to which an edit adds the message's id.
    messages: Secret,
    /// `scheme://host:port` of the webhook, the scope of a global rate limit (not a secret).
    origin: String,
    thread_id: Option<String>,
    client: reqwest::Client,
    timeout: Timeout,
    renderer: Renderer,
    options: MessageOptions,
    /// `check`'s warnings found while building: plain http:// to another machine, a
    /// username Discord may refuse.
    warnings: Vec<String>,
}

/// Where a webhook URL's path must end, in words, for the errors.
const WEBHOOK_PATH: &str = "its path must end in /webhooks/ID/TOKEN: copy it with Copy Webhook URL in the channel's settings (Integrations → Webhooks)";

/// Where a sink sends: the URL to post to, the URL of its messages (for edits), the origin.
struct Endpoints {
    post: Secret,
    messages: Secret,
    origin: String,
}

/// Checks that the secret is a Discord webhook URL, never quoting it; returns the URL to post
/// to (`wait=true`, and `thread_id` when configured, replacing any the URL had), the URL of
/// its messages, its origin and `check`'s warning for plain http:// to another machine.
fn endpoint(url: &Secret, thread_id: Option<&str>) -> Result<(Endpoints, Option<String>), ConfigError> {
    let (mut parsed, warning) =
        parse_url(url.expose(), "url", UrlKind::Secret, "the webhook URL, which is the secret,")?;
    let segments: Vec<&str> = parsed.path_segments().map(|s| s.filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    let hidden = "(the URL is the secret: not shown)";
    if let [.., "webhooks", _, _, "slack" | "github"] = segments.as_slice() {
        return Err(ConfigError::new(format!(
            "`url` is a Discord webhook's Slack- or GitHub-compatible address, which takes another format: drop the `/slack` or `/github` at its end {hidden}"
        )));
    }
    let valid = match segments.as_slice() {
        [.., "webhooks", id, token] => {
            id.bytes().all(|b| b.is_ascii_digit())
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        _ => false,
    };
    if !valid {
        return Err(ConfigError::new(format!("`url` is not a Discord webhook URL: {WEBHOOK_PATH} {hidden}")));
    }
    let origin = parsed.origin().ascii_serialization();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "wait" && !(thread_id.is_some() && k == "thread_id"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut messages = parsed.clone();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query.append_pair("wait", "true");
        if let Some(id) = thread_id {
            query.append_pair("thread_id", id);
        }
    }
    // Edits: the same webhook, thread and query; `wait` is Execute Webhook's alone.
    messages
        .path_segments_mut()
        .map_err(|()| ConfigError::new(format!("`url` is not a Discord webhook URL: {WEBHOOK_PATH} {hidden}")))?
        .pop_if_empty()
        .push("messages");
    messages.set_query(None);
    let mut pairs: Vec<(String, String)> = kept;
    if let Some(id) = thread_id {
        pairs.push(("thread_id".into(), id.to_owned()));
    }
    if !pairs.is_empty() {
        messages.query_pairs_mut().extend_pairs(pairs);
    }
    let endpoints =
        Endpoints { post: Secret::new(String::from(parsed)), messages: Secret::new(String::from(messages)), origin };
    Ok((endpoints, warning))
}

/// Builds the sink: reads the URL (from the file, if so configured), checks it and the other
/// keys, compiles the templates. Errors name the key, never the URL.
pub fn new(name: impl Into<String>, config: Config) -> Result<DiscordSink, ConfigError> {
    let source = SecretSource::from_pair("url", config.url, config.url_file)?;
    let url = source.load("url")?;
    let (Endpoints { post: endpoint, messages, origin }, cleartext) = endpoint(&url, config.thread_id.as_deref())?;
    let mut warnings: Vec<String> = cleartext.into_iter().collect();
    if let Some(name) = &config.username {
        let n = name.trim().chars().count();
        if !(1..=80).contains(&n) {
            return Err(ConfigError::new(format!(
                "`username` must be 1 to 80 characters, not {n} (leave it out for the webhook's own name)"
            )));
        }
        let lower = name.to_lowercase();
        if lower.contains("discord") || lower.contains("clyde") {
            warnings.push(format!(
                "`username` = {:?} contains \"discord\" or \"clyde\", which Discord refuses in a webhook's name and may refuse here",
                f2b_notify_core::flatten(name)
            ));
        }
    }
    if let Some(avatar) = &config.avatar_url {
        // Discord fetches the image itself; a plain http:// address carries no secret, so
        // the cleartext warning does not apply.
        parse_url(avatar, "avatar_url", UrlKind::Public, "")?;
    }
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(DiscordSink {
        name: name.into(),
        source,
        endpoint,
        messages,
        origin,
        thread_id: config.thread_id,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        renderer,
        options: MessageOptions { username: config.username, avatar_url: config.avatar_url },
        warnings,
    })
}

impl DiscordSink {
    /// Sends one body (a post, or with `message` an edit of it): the saved message's id, if
    /// Discord's answer names it sanely; anything but success is classified by
    /// [`answer::read`].
    async fn call(&self, body: &Value, message: Option<&str>) -> Result<Option<String>, Refused> {
        if let Some(wait) = answer::global_wait(&self.origin) {
            return Err(SinkError::retry_after(
                format!(
                    "not sent: Discord's global rate limit (all requests from this address) holds for {:.1} s more",
                    wait.as_secs_f64()
                ),
                wait,
            )
            .into());
        }
        let request = match message {
            None => self.client.post(self.endpoint.expose()),
            Some(id) => {
                // Never quotes the URL: it holds the token.
                let mut url = Url::parse(self.messages.expose())
                    .map_err(|_| SinkError::permanent("cannot build the edit's URL from the webhook URL"))?;
                url.path_segments_mut()
                    .map_err(|()| SinkError::permanent("cannot build the edit's URL from the webhook URL"))?
                    .push(id);
                self.client.request(Method::PATCH, url)
            }
        };
        let request = request.header(reqwest::header::USER_AGENT, USER_AGENT).json(body);
        let answer = exchange(request, self.timeout).await?;
        answer::read(&answer, &self.origin)
    }

    /// Posts `body` as a new message; its reference, if Discord named it sanely.
    async fn post_new(&self, body: &Value) -> Result<Option<MessageRef>, SinkError> {
        let id = self.call(body, None).await.map_err(|r| r.error)?;
        Ok(id.and_then(MessageRef::new))
    }

    /// Edits message `id` to show `body`; `Ok(false)` when Discord refuses the edit for that
    /// message's sake ([`EDIT_REFUSALS`]) and a new message is the way.
    async fn edit(&self, body: &Value, id: &str) -> Result<bool, SinkError> {
        let mut edit = body.clone();
        if let Some(obj) = edit.as_object_mut() {
            // Not Edit Webhook Message's fields: the message keeps its poster.
            obj.remove("username");
            obj.remove("avatar_url");
            // Both replace the message's own: a field left out would be kept (the ban's
            // text above the storm's list), `null` clears it.
            obj.entry("content").or_insert(Value::Null);
            obj.entry("embeds").or_insert_with(|| Value::Array(Vec::new()));
        }
        match self.call(&edit, Some(id)).await {
            Ok(_) => Ok(true),
            Err(Refused { code: Some(code), .. }) if EDIT_REFUSALS.contains(&code) => Ok(false),
            Err(refused) => Err(refused.error),
        }
    }

    fn render(&self, event: &Event) -> Result<Value, SinkError> {
        build(event, &self.renderer, &self.options).map_err(|e| SinkError::permanent(e.to_string()))
    }
}

#[async_trait]
impl Sink for DiscordSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "discord"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.post_new(&self.render(event)?).await.map(drop)
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post_new(&build_digest(digest, &self.options)).await.map(drop)
    }

    /// A webhook cannot reply (see the module docs): an unban is a message of its own.
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let _ = reply_to;
        self.post_new(&self.render(event)?).await
    }

    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let body = build_digest(digest, &self.options);
        // A reference of another shape (an older version's, a hand-edited spool) is no message.
        if let Some(target) = update.filter(|r| answer::snowflake(r.as_str())) {
            if self.edit(&body, target.as_str()).await? {
                return Ok(Some(target.clone()));
            }
        }
        self.post_new(&body).await
    }

    /// See [`MIN_INTERVAL`]; an edit counts as a message.
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("url").into_iter().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.post_new(&build_alert(alert, &self.options)).await.map(drop)
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = self.render(event)?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        let thread = self.thread_id.as_deref().map(|t| format!("&thread_id={t}")).unwrap_or_default();
        Ok(format!(
            "POST to the webhook URL (the secret, not shown) with ?wait=true{thread} and `User-Agent: {USER_AGENT}`, this JSON body:\n{json}"
        ))
    }
}
