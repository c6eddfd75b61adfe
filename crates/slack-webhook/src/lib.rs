//! The Slack incoming-webhook sink: posts each event to a webhook URL.
//!
//! Success is HTTP 200 with the body `ok`; anything else is an error carrying Slack's own error
//! string (`invalid_payload`, `action_prohibited`, `channel_not_found`, …), classified for the
//! router as transient or permanent. The URL is the secret: it never appears in errors, logs
//! or `Debug` output. The message layout and pacing are shared with the Web API sink
//! (`f2b_notify_slack::SlackSink`); this crate only posts.

use std::path::PathBuf;

use f2b_notify_core::{async_trait, ConfigError, Secret, SecretSource, SinkError, Templates};
use f2b_notify_http::{exchange, parse_url, Timeout, UrlKind};
use f2b_notify_slack::{classify_status, MessageOptions, Post, SlackSink};
use serde::{Deserialize, Deserializer};

#[cfg(test)]
mod tests;

/// Configuration of a `type = "slack-webhook"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// the webhook URL, a secret: inline or `F2B_NOTIFY_SINKS__NAME__URL`; or `url_file`, not
    /// both
    ///
    /// `https://hooks.slack.com/services/…`: the URL is the credential, so it is never quoted
    /// in an error or a log.
    #[serde(default, deserialize_with = "url")]
    pub url: Option<Secret>,
    /// a file holding the webhook URL (mode 0600; `check` warns when others can read it)
    pub url_file: Option<PathBuf>,
    /// post to this channel instead of the webhook's own, where the webhook allows it
    pub channel: Option<String>,
    /// poster's name, where the webhook allows it
    pub username: Option<String>,
    /// poster's emoji, like `:no_entry:`, where the webhook allows it
    pub icon_emoji: Option<String>,
    /// the message text per event (minijinja)
    #[serde(default)]
    pub templates: Templates,
    /// seconds one request may take, default 5, at most 30
    pub timeout: Option<f64>,
}

/// `url` is a secret: a value of the wrong type is an error naming the key, never the value.
fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "url")
}

/// A built webhook sink.
pub type WebhookSink = SlackSink<Webhook>;

/// Posting to an incoming webhook.
#[derive(Debug)]
pub struct Webhook {
    source: SecretSource,
    url: Secret,
    client: reqwest::Client,
    timeout: Timeout,
    /// `check`'s warning when the URL is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Builds the sink: reads the URL (from the file, if so configured), checks it, compiles the
/// templates. Errors name the key, never the URL.
pub fn new(name: impl Into<String>, config: Config) -> Result<WebhookSink, ConfigError> {
    let source = SecretSource::from_pair("url", config.url, config.url_file)?;
    let url = source.load("url")?;
    let cleartext = check_url(&url, "url")?;
    let timeout = Timeout::from_config(config.timeout)?;
    let poster = Webhook { source, url, client: f2b_notify_http::client(timeout)?, timeout, cleartext };
    let options = MessageOptions { channel: config.channel, username: config.username, icon_emoji: config.icon_emoji };
    SlackSink::new(name, &config.templates, options, poster)
}

/// Checks that a secret is an http(s) URL, without ever quoting it; returns the warning for
/// a plain http:// URL to another machine.
fn check_url(url: &Secret, key: &str) -> Result<Option<String>, ConfigError> {
    parse_url(url.expose(), key, UrlKind::Secret, "the webhook URL, which is the secret,").map(|(_, warning)| warning)
}

#[async_trait]
impl Post for Webhook {
    fn kind(&self) -> &'static str {
        "slack-webhook"
    }

    /// Success is HTTP 200 with the body `ok`.
    async fn post(&self, body: &serde_json::Value) -> Result<(), SinkError> {
        let request = self.client.post(self.url.expose()).json(body);
        let answer = exchange(request, self.timeout).await?;
        if answer.status == 200 && answer.body.trim() == "ok" {
            return Ok(());
        }
        if answer.status == 200 {
            return Err(SinkError::permanent(format!(
                "unexpected answer to a webhook post (HTTP 200 without `ok`): {}",
                answer.body_line()
            )));
        }
        Err(classify_status(answer.status, answer.header("retry-after"), &answer.body))
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("url").into_iter().chain(self.cleartext.clone()).collect()
    }

    fn describe(&self) -> String {
        "POST to the webhook URL (the secret, not shown)".to_owned()
    }
}
