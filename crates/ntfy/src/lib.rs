//! The ntfy sink: push notifications to phones and browsers through ntfy.sh or a self-hosted
//! ntfy server, one message per event (a digest for a storm), with an access token, a user
//! and password, or neither.
//!
//! It publishes with ntfy's JSON form: a POST of `{"topic", "title", "message", "priority",
//! "tags", …}` to the server's root (D: docs.ntfy.sh/publish/#publish-as-json), not a POST to
//! `/<topic>` with the title in a `Title` header. The server turns the JSON into its own
//! headers (S: `transformBodyJSON`), so a host or jail name in UTF-8 reaches the title
//! intact, where a header would need RFC 2047 encoding (and Latin-1 text sent raw turns into
//! `?`); nothing from the event ever travels in an HTTP header, so no value can end or add
//! one; tags are a real list; and the priority is checked here, as a number. The title is
//! built from the host, the jail and the event only: the banned id, the user and the matched
//! lines (the attacker's text) stay in the message body.
//!
//! Secrets: the access token (`Authorization: Bearer`, marked sensitive) and the password
//! (HTTP Basic, marked sensitive) never appear in errors, logs, `check` or `Debug`. The URL
//! is not a secret in the same way (the server is public), but on a server without access
//! control the topic is all it takes to read and write it: errors from delivery (which reach
//! the log, `queue` and the alerts sent to other sinks) never name it, and `Debug` hides it;
//! config errors and `test --dry-run`, which only the administrator sees, show the URL as
//! written (never with a user, password or query, which are refused unquoted).

mod answer;
mod message;
mod settings;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::{exchange, header::HeaderValue, secret_header, Client, Timeout, Url};
use serde::{Deserialize, Deserializer, Serialize};

pub use answer::{classify, AUTH_FAILURE_WAIT, QUOTA_WAIT, RATE_WAIT};
pub use message::{Budget, Style, MAX_JSON, MAX_MESSAGE};
pub use settings::{valid_topic, Priorities, Priority, Tags, MAX_TAGS_BYTES};

/// The least time between two messages: ntfy gives each visitor (an address, or a user when
/// authenticated) a bucket of 60 requests that refills one every 5 s (D:
/// docs.ntfy.sh/config/#rate-limiting). One message every 5 s never empties it, so a storm
/// of any length goes out as digests and never meets a 429; the burst stays free for
/// anything else that publishes from this host.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Configuration of a `type = "ntfy"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server and topic to publish to: `https://ntfy.sh/YOUR-TOPIC`, or
    /// `https://ntfy.example.com/alerts` for your own server (a path prefix before the topic
    /// is kept). The topic is 1 to 64 of `A-Z a-z 0-9 _ -`. On a server without access
    /// control (ntfy.sh without an account) anyone who knows the topic can read and write it:
    /// choose one nobody can guess. No user, password or query in the URL: use `token` or
    /// `username`/`password`. Required.
    pub url: Option<String>,
    /// An access token (`tk_…`: the web app's Account page, or `ntfy token add USER` on the
    /// server), sent as `Authorization: Bearer`. A secret: prefer `token_file` or the
    /// environment (`F2B_NOTIFY_SINKS__NAME__TOKEN`). Not together with `username`.
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the access token (mode 0600; `check` warns when others can read it).
    pub token_file: Option<PathBuf>,
    /// A user name, for HTTP Basic authentication with `password` (instead of `token`).
    pub username: Option<String>,
    /// The user's password. A secret: prefer `password_file` or the environment
    /// (`F2B_NOTIFY_SINKS__NAME__PASSWORD`).
    #[serde(default, deserialize_with = "password")]
    pub password: Option<Secret>,
    /// A file holding the password (mode 0600; `check` warns when others can read it).
    pub password_file: Option<PathBuf>,
    /// The priority of each event's message: 1 to 5, or `min`, `low`, `default`, `high`,
    /// `max` (`urgent`). One value for every event, or a table: default
    /// `{ ban = "high", unban = "default", start = "low", stop = "low" }` (a table may name
    /// some events; the others keep these). A digest takes the priority of its most important
    /// event (ban, then unban, then start and stop); an alert is `high`, a recovery `default`.
    #[serde(default)]
    pub priority: Priorities,
    /// The tags of each event's message; a tag that is an emoji short code is shown as the
    /// emoji before the title (`no_entry` ⛔), others as text. One list for every event
    /// (`[]` for none), or a table: default `{ ban = ["no_entry"], unban =
    /// ["white_check_mark"], start = ["arrow_forward"], stop = ["stop_sign"] }`. At most 512
    /// bytes of tags per event, no commas. A digest takes the tags of its most important
    /// event; an alert has `warning`, a recovery `white_check_mark`.
    #[serde(default)]
    pub tags: Tags,
    /// Send the message as Markdown (default false). Only ntfy's web app renders it; the
    /// phone apps show the text as it is, so it stays readable either way. Every value from
    /// the event is escaped or put in code, so log text cannot format or link.
    #[serde(default)]
    pub markdown: bool,
    /// A URL opened when the notification is tapped (`https://…`, `mailto:…`, `ntfy://…`),
    /// for example your dashboard. Default none.
    pub click: Option<String>,
    /// Per-event templates for the message's first line (`[sinks.NAME.templates] ban = "…"`).
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// `password` is a secret, like `token`.
fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "password")
}

/// How requests prove who sends them.
#[derive(Debug)]
enum Auth {
    /// Anonymous: a server without access control, or a topic anyone may write.
    None,
    /// `Authorization: Bearer tk_…` (the header value marked sensitive).
    Token { header: HeaderValue, source: SecretSource },
    /// HTTP Basic (reqwest marks the header sensitive).
    Basic { username: String, password: Secret, source: SecretSource },
}

/// The JSON form's body (D: docs.ntfy.sh/publish/#publish-as-json), in the order people read
/// it in `test --dry-run`.
#[derive(Debug, Serialize)]
struct Publish {
    topic: String,
    title: String,
    message: String,
    /// A number: the JSON form takes no names.
    priority: u8,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    /// Only when asked: a server before v2.7 does not know the key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    markdown: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<String>,
}

/// A built ntfy sink.
#[derive(Debug)]
pub struct NtfySink {
    name: String,
    target: settings::Target,
    auth: Auth,
    priority: Priorities,
    tags: Tags,
    style: Style,
    click: Option<String>,
    renderer: Renderer,
    client: Client,
    timeout: Timeout,
    /// What `check` says beyond the secret files' modes: plain http://, an odd token.
    warnings: Vec<String>,
}

/// Builds the sink: reads the secrets (from their files, if so configured), checks the URL,
/// the credentials and `click`, compiles the templates. Errors name the key, never a secret.
pub fn new(name: impl Into<String>, config: Config) -> Result<NtfySink, ConfigError> {
    let optional = |key: &str, inline: Option<Secret>, file: Option<PathBuf>| match (&inline, &file) {
        (None, None) => Ok(None),
        _ => SecretSource::from_pair(key, inline, file).map(Some),
    };
    let token = optional("token", config.token, config.token_file)?;
    let password = optional("password", config.password, config.password_file)?;
    let mut warnings = Vec::new();
    let auth = match (token, config.username, password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ConfigError::new(
                "give either `token` (an access token) or `username` and `password`, not both",
            ))
        }
        (Some(source), None, None) => {
            let token = source.load("token")?;
            let token = token.expose().trim();
            if token.is_empty() {
                return Err(ConfigError::new("`token` is empty"));
            }
            if !token.starts_with("tk_") {
                warnings.push(
                    "`token` does not start with `tk_` as ntfy's access tokens do: a password goes in `password`, with `username`"
                        .to_owned(),
                );
            }
            Auth::Token { header: secret_header(&format!("Bearer {token}"), "token")?, source }
        }
        (None, Some(username), Some(source)) => {
            if username.contains(':') || username.chars().any(char::is_control) {
                return Err(ConfigError::new(format!(
                    "`username` `{}` cannot hold a `:` or a line break (HTTP Basic authentication)",
                    f2b_notify_core::flatten(&username)
                )));
            }
            Auth::Basic { username, password: source.load("password")?, source }
        }
        (None, Some(_), None) => return Err(ConfigError::new("`username` needs `password` (or `password_file`)")),
        (None, None, Some(_)) => {
            return Err(ConfigError::new("`password` needs `username` (an access token goes in `token` instead)"))
        }
        (None, None, None) => Auth::None,
    };
    let url = config
        .url
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ConfigError::new("missing `url`: the server and topic, like https://ntfy.sh/YOUR-TOPIC"))?;
    let crossing = match auth {
        Auth::None => "the topic (all it takes to read and write it) and every message",
        Auth::Token { .. } => "the access token",
        Auth::Basic { .. } => "the password",
    };
    let target = settings::target(&url, crossing)?;
    warnings.extend(target.cleartext.clone());
    let click = config.click.as_deref().map(settings::click).transpose()?;
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(NtfySink {
        name: name.into(),
        target,
        auth,
        priority: config.priority,
        tags: config.tags,
        style: if config.markdown { Style::Markdown } else { Style::Plain },
        click,
        renderer,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        warnings,
    })
}

impl NtfySink {
    /// The JSON body for one message: the text is fitted into what is left of ntfy's limits
    /// once everything else is in the body.
    fn body(
        &self,
        title: String,
        priority: Priority,
        tags: &[String],
        text: impl FnOnce(Budget) -> Result<String, SinkError>,
    ) -> Result<Publish, SinkError> {
        let mut body = Publish {
            topic: self.target.topic.clone(),
            title,
            message: String::new(),
            priority: priority.get(),
            tags: tags.to_vec(),
            markdown: self.style == Style::Markdown,
            click: self.click.clone(),
        };
        let skeleton = serde_json::to_vec(&body).map_err(|e| SinkError::permanent(e.to_string()))?.len();
        let budget = Budget { raw: MAX_MESSAGE, json: MAX_JSON.saturating_sub(skeleton) };
        body.message = text(budget)?;
        Ok(body)
    }

    fn event_body(&self, event: &Event) -> Result<Publish, SinkError> {
        self.body(message::event_title(event), self.priority.get(event.kind), self.tags.get(event.kind), |b| {
            message::event_message(event, &self.renderer, self.style, b)
                .map_err(|e| SinkError::permanent(e.to_string()))
        })
    }

    fn digest_body(&self, digest: &Digest) -> Result<Publish, SinkError> {
        let kind = digest.dominant_kind();
        self.body(message::title(&digest.title()), self.priority.get(kind), self.tags.get(kind), |b| {
            Ok(message::digest_message(digest, self.style, b))
        })
    }

    fn alert_body(&self, alert: &Alert) -> Result<Publish, SinkError> {
        let (priority, tag) =
            if alert.recovered { (Priority::DEFAULT, "white_check_mark") } else { (Priority::HIGH, "warning") };
        self.body(message::title(&alert.subject), priority, &[tag.to_owned()], |b| {
            Ok(message::alert_message(alert, self.style, b))
        })
    }

    /// Posts one JSON body to the server's root and reads ntfy's answer.
    async fn publish(&self, body: &Publish) -> Result<(), SinkError> {
        let mut request = self.client.post(self.target.endpoint.clone()).json(body);
        request = match &self.auth {
            Auth::None => request,
            Auth::Token { header, .. } => request.header(f2b_notify_http::header::AUTHORIZATION, header.clone()),
            Auth::Basic { username, password, .. } => request.basic_auth(username, Some(password.expose())),
        };
        let answer = exchange(request, self.timeout).await?;
        classify(&answer)
    }

    /// Where bodies go, for `test --dry-run`: the server's root and the topic (shown: only
    /// the administrator runs it), never a secret.
    fn describe(&self) -> String {
        let how = match &self.auth {
            Auth::None => "without credentials".to_owned(),
            Auth::Token { .. } => "with `Authorization: Bearer` and the access token (not shown)".to_owned(),
            Auth::Basic { username, .. } => {
                format!("with HTTP Basic authentication as `{username}` and the password (not shown)")
            }
        };
        format!("POST to {} (ntfy's JSON publish form; topic in the body) {how}", self.endpoint())
    }

    /// The server's root the JSON form is posted to.
    pub fn endpoint(&self) -> &Url {
        &self.target.endpoint
    }
}

#[async_trait]
impl Sink for NtfySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "ntfy"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.publish(&self.event_body(event)?).await
    }

    /// One message, whatever the storm: every address that fits in ntfy's 4,096 bytes, and
    /// the exact count of the rest (several messages would each cost a request token, and a
    /// failure part-way would send the first ones again).
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.publish(&self.digest_body(digest)?).await
    }

    /// See [`MIN_INTERVAL`].
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        let secret = match &self.auth {
            Auth::None => None,
            Auth::Token { source, .. } => source.permission_warning("token"),
            Auth::Basic { source, .. } => source.permission_warning("password"),
        };
        secret.into_iter().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.publish(&self.alert_body(alert)?).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = self.event_body(event)?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("{}, this JSON body:\n{json}", self.describe()))
    }
}
