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

use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::{exchange, parse_url, Timeout, UrlKind};
use serde::{Deserialize, Deserializer};

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

/// Checks that the secret is a Discord webhook URL, never quoting it; returns the URL to post
/// to (`wait=true`, and `thread_id` when configured, replacing any the URL had), its origin
/// and `check`'s warning for plain http:// to another machine.
fn endpoint(url: &Secret, thread_id: Option<&str>) -> Result<(Secret, String, Option<String>), ConfigError> {
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
    Ok((Secret::new(String::from(parsed)), origin, warning))
}

/// Builds the sink: reads the URL (from the file, if so configured), checks it and the other
/// keys, compiles the templates. Errors name the key, never the URL.
pub fn new(name: impl Into<String>, config: Config) -> Result<DiscordSink, ConfigError> {
    let source = SecretSource::from_pair("url", config.url, config.url_file)?;
    let url = source.load("url")?;
    let (endpoint, origin, cleartext) = endpoint(&url, config.thread_id.as_deref())?;
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
    /// Posts one body; success is 200 with the saved message (or 204), anything else is
    /// classified by [`answer::classify`].
    async fn post(&self, body: &serde_json::Value) -> Result<(), SinkError> {
        if let Some(wait) = answer::global_wait(&self.origin) {
            return Err(SinkError::retry_after(
                format!(
                    "not sent: Discord's global rate limit (all requests from this address) holds for {:.1} s more",
                    wait.as_secs_f64()
                ),
                wait,
            ));
        }
        let request =
            self.client.post(self.endpoint.expose()).header(reqwest::header::USER_AGENT, USER_AGENT).json(body);
        let answer = exchange(request, self.timeout).await?;
        answer::classify(&answer, &self.origin)
    }

    fn render(&self, event: &Event) -> Result<serde_json::Value, SinkError> {
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
        self.post(&self.render(event)?).await
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post(&build_digest(digest, &self.options)).await
    }

    /// See [`MIN_INTERVAL`].
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("url").into_iter().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.post(&build_alert(alert, &self.options)).await
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
