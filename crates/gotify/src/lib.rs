//! The Gotify sink: push notifications to phones and browsers through a self-hosted Gotify
//! server, one message per event (a digest for a storm), sent as an application.
//!
//! It posts `{"title", "message", "priority", "extras"}` as JSON to `<url>/message` (D:
//! https://gotify.net/docs/pushmsg; `extras` is only read from a JSON body, D:
//! https://gotify.net/docs/msgextras), with the application token in the `X-Gotify-Key`
//! header, marked sensitive. Never in the query string (`?token=`), which Gotify also takes
//! but which ends up in every proxy's access log. The title is built from the host, the jail
//! and the event only; the banned id, the user and the matched lines (the attacker's text)
//! stay in the message, as Markdown with every value made inert (the default) or as plain
//! text, the content type told to the clients in `extras.client::display`.
//!
//! Secrets: the token never appears in errors, logs, `check`, `test --dry-run` or `Debug`.
//! The server's URL is not a secret (it is shown in config errors and the preview), but a URL
//! with a user, password or query is refused without being quoted.

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
use f2b_notify_http::{exchange, header::HeaderValue, secret_header, Client, Timeout};
use serde::{Deserialize, Deserializer, Serialize};

pub use answer::classify;
pub use message::{md_code, md_escape, Style, MAX_MESSAGE, MAX_TITLE};
pub use settings::{looks_like_client_token, Priorities, Priority};

/// The least time between two messages. Gotify has no rate limit (an open feature request,
/// https://github.com/gotify/server/issues/919), but each message is stored, pushed to every
/// connected client and, on a phone, is a notification of its own, with sound from priority
/// 4. One a second keeps a storm from burying the phone in notifications: what arrives
/// meanwhile goes out in the next message as a digest naming every address, while a single
/// ban still arrives at once.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The header Gotify reads the application token from (S: auth/authentication.go).
pub const TOKEN_HEADER: &str = "X-Gotify-Key";

/// Configuration of a `type = "gotify"` sink.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Gotify server's base URL: `https://gotify.example.com`, or with the path prefix
    /// a reverse proxy serves it under, `https://example.com/gotify`. Messages are posted to
    /// its `/message`. No user, password or query in it: the token goes in `token`. Required.
    pub url: Option<String>,
    /// The application token: in Gotify's web UI, Apps → Create Application, then reveal the
    /// token with the eye icon (`A…`). A client token (the Clients page) cannot send. Sent in
    /// the `X-Gotify-Key` header, never in the URL. A secret: prefer `token_file` or the
    /// environment (`F2B_NOTIFY_SINKS__NAME__TOKEN`). Required (this or `token_file`).
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the application token (mode 0600; `check` warns when others can read
    /// it).
    pub token_file: Option<PathBuf>,
    /// The priority of each event's message, 0 to 10: one number for every event, or a
    /// table: default `{ ban = 8, unban = 4, start = 2, stop = 2 }` (a table may name some
    /// events; the others keep these). Gotify's Android app shows 8 and more as a heads-up
    /// notification with sound and vibration, 4 to 7 with sound, 1 to 3 as an icon only, 0
    /// not in the status bar; the web UI plays a sound from 4. A digest takes the priority of
    /// its most important event (ban, then unban, then start and stop); an alert is 8, a
    /// recovery 4.
    #[serde(default)]
    pub priority: Priorities,
    /// Send the message as Markdown (default true): the web UI and the Android app render it
    /// (HTML is ignored). Every value from the event is escaped or put in code, so log text
    /// cannot format, link or load an image. `false` sends plain text.
    #[serde(default = "yes")]
    pub markdown: bool,
    /// Per-event templates for the message's first line (`[sinks.NAME.templates] ban = "…"`).
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

fn yes() -> bool {
    true
}

impl Default for Config {
    /// What an empty `[sinks.NAME]` table gives (Markdown on), for configs built in code.
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            token_file: None,
            priority: Priorities::default(),
            markdown: true,
            templates: Templates::default(),
            timeout: None,
        }
    }
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// `extras.client::display` (D: https://gotify.net/docs/msgextras#clientdisplay).
#[derive(Debug, Serialize)]
struct Display {
    #[serde(rename = "contentType")]
    content_type: &'static str,
}

/// `extras`: the content type, for the clients.
#[derive(Debug, Serialize)]
struct Extras {
    #[serde(rename = "client::display")]
    display: Display,
}

/// The JSON body (S: model/message.go `MessageExternal`), in the order people read it in
/// `test --dry-run`.
#[derive(Debug, Serialize)]
struct Publish {
    title: String,
    message: String,
    priority: u8,
    extras: Extras,
}

/// A built Gotify sink.
#[derive(Debug)]
pub struct GotifySink {
    name: String,
    target: settings::Target,
    /// The token as the header's value, marked sensitive (its `Debug` shows `Sensitive`).
    key: HeaderValue,
    source: SecretSource,
    priority: Priorities,
    style: Style,
    renderer: Renderer,
    client: Client,
    timeout: Timeout,
    /// What `check` says beyond the token file's mode: plain http://, a client token.
    warnings: Vec<String>,
}

/// Builds the sink: reads the token (from its file, if so configured), checks the URL,
/// compiles the templates. Errors name the key, never the token.
pub fn new(name: impl Into<String>, config: Config) -> Result<GotifySink, ConfigError> {
    let url = config.url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
        ConfigError::new("missing `url`: the Gotify server's base URL, like https://gotify.example.com")
    })?;
    let target = settings::target(&url)?;
    let source = SecretSource::from_pair("token", config.token, config.token_file)?;
    let token = source.load("token")?;
    let token = token.expose().trim();
    if token.is_empty() {
        return Err(ConfigError::new("`token` is empty"));
    }
    let mut warnings: Vec<String> = target.cleartext.iter().cloned().collect();
    if looks_like_client_token(token) {
        warnings.push(
            "`token` looks like a client token (a phone's or browser's, for reading): sending needs an application token, from the web UI's Apps page".to_owned(),
        );
    }
    let key = secret_header(token, "token")?;
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(GotifySink {
        name: name.into(),
        target,
        key,
        source,
        priority: config.priority,
        style: if config.markdown { Style::Markdown } else { Style::Plain },
        renderer,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        warnings,
    })
}

impl GotifySink {
    fn body(&self, title: String, priority: Priority, message: String) -> Publish {
        Publish {
            title,
            message,
            priority: priority.get(),
            extras: Extras { display: Display { content_type: message::content_type(self.style) } },
        }
    }

    fn event_body(&self, event: &Event) -> Result<Publish, SinkError> {
        let text = message::event_message(event, &self.renderer, self.style)
            .map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(self.body(message::event_title(event), self.priority.get(event.kind), text))
    }

    fn digest_body(&self, digest: &Digest) -> Publish {
        let text = message::digest_message(digest, self.style);
        self.body(message::title(&digest.title()), self.priority.get(digest.dominant_kind()), text)
    }

    fn alert_body(&self, alert: &Alert) -> Publish {
        let priority = if alert.recovered { Priority::UNBAN } else { Priority::BAN };
        self.body(message::title(&alert.subject), priority, message::alert_message(alert, self.style))
    }

    /// Posts one JSON body and reads Gotify's answer.
    async fn publish(&self, body: &Publish) -> Result<(), SinkError> {
        let request = self.client.post(self.target.endpoint.clone()).header(TOKEN_HEADER, self.key.clone()).json(body);
        let answer = exchange(request, self.timeout).await?;
        classify(&answer)
    }
}

#[async_trait]
impl Sink for GotifySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "gotify"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.publish(&self.event_body(event)?).await
    }

    /// One message, whatever the storm: every address that fits in the 16 KB cap, and the
    /// exact count of the rest (several messages would each be a notification of their own,
    /// and a failure part-way would send the first ones again).
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.publish(&self.digest_body(digest)).await
    }

    /// See [`MIN_INTERVAL`].
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("token").into_iter().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.publish(&self.alert_body(alert)).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = self.event_body(event)?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!(
            "POST to {} (Gotify at {}) with `{TOKEN_HEADER}` and the application token (not shown), this JSON body:\n{json}",
            self.target.endpoint, self.target.base
        ))
    }
}
