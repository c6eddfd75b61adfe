//! The Slack Web API sink: calls `chat.postMessage` with a bot token.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": …}` on failure, so the body is always
//! read: `ok:false` is an error with Slack's string (`channel_not_found`, `not_in_channel`,
//! `invalid_auth`, `missing_scope`, …), classified for the router. The token travels only in
//! the `Authorization: Bearer` header (marked sensitive) and never appears in errors, logs or
//! `Debug` output. The message layout and pacing are shared with the webhook sink
//! (`f2b_notify_slack::SlackSink`); this crate only posts.

use std::path::PathBuf;

use f2b_notify_core::{async_trait, ConfigError, Secret, SecretSource, SinkError, Templates};
use f2b_notify_http::{cleartext_warning, exchange, url_problem, Timeout};
use f2b_notify_slack::{classify_api_body, classify_status, MessageOptions, Post, SlackSink};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Deserializer};

#[cfg(test)]
mod tests;

/// Slack's Web API, where `chat.postMessage` lives.
pub const DEFAULT_URL: &str = "https://slack.com/api/";

/// Configuration of a `type = "slack-api"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// the bot token (`xoxb-…`, scope `chat:write`), a secret: inline or
    /// `F2B_NOTIFY_SINKS__NAME__TOKEN`; or `token_file`, not both
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// a file holding the token (mode 0600; `check` warns when others can read it)
    pub token_file: Option<PathBuf>,
    /// required: the channel, a name (`#security`) or an id (`C0123456789`)
    pub channel: Option<String>,
    /// poster's name (needs the `chat:write.customize` scope)
    pub username: Option<String>,
    /// poster's emoji, like `:no_entry:` (needs `chat:write.customize`)
    pub icon_emoji: Option<String>,
    /// the message text per event (minijinja)
    #[serde(default)]
    pub templates: Templates,
    /// seconds one request may take, default 5, at most 30
    pub timeout: Option<f64>,
    /// Web API base, default `https://slack.com/api/` (proxies, tests)
    pub url: Option<String>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// A built Web API sink.
pub type ApiSink = SlackSink<ChatPostMessage>;

/// Calling chat.postMessage with a bearer token.
#[derive(Debug)]
pub struct ChatPostMessage {
    source: SecretSource,
    auth: HeaderValue,
    endpoint: reqwest::Url,
    client: reqwest::Client,
    timeout: Timeout,
    /// `check`'s warning when the API base is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Builds the sink: reads the token, checks the channel and URL, compiles the templates.
pub fn new(name: impl Into<String>, config: Config) -> Result<ApiSink, ConfigError> {
    let source = SecretSource::from_pair("token", config.token, config.token_file)?;
    let token = source.load("token")?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| ConfigError::new("`token` holds characters that cannot go in an HTTP header"))?;
    // Keeps the value out of reqwest's and hyper's debug output.
    auth.set_sensitive(true);
    let channel = config
        .channel
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ConfigError::new("missing `channel` (a channel name like #security, or an id)"))?;
    let base = config.url.as_deref().unwrap_or(DEFAULT_URL);
    let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
    let endpoint = reqwest::Url::parse(&base)
        .and_then(|b| b.join("chat.postMessage"))
        .map_err(|e| ConfigError::new(format!("`url` = {base:?} is not a valid URL: {}", url_problem(&base, &e))))?;
    if !matches!(endpoint.scheme(), "https" | "http") {
        return Err(ConfigError::new(format!(
            "`url` = {base:?} must be an https:// URL, not {}://",
            endpoint.scheme()
        )));
    }
    let cleartext = cleartext_warning(&endpoint, "url", "the bot token");
    let timeout = Timeout::from_config(config.timeout)?;
    let poster =
        ChatPostMessage { source, auth, endpoint, client: f2b_notify_http::client(timeout)?, timeout, cleartext };
    let options = MessageOptions { channel: Some(channel), username: config.username, icon_emoji: config.icon_emoji };
    SlackSink::new(name, &config.templates, options, poster)
}

#[async_trait]
impl Post for ChatPostMessage {
    fn kind(&self) -> &'static str {
        "slack-api"
    }

    /// Success is HTTP 200 with `"ok": true`.
    async fn post(&self, body: &serde_json::Value) -> Result<(), SinkError> {
        let request = self.client.post(self.endpoint.clone()).header(AUTHORIZATION, self.auth.clone()).json(body);
        let answer = exchange(request, self.timeout).await?;
        let retry_after = answer.header("retry-after");
        if answer.status != 200 {
            return Err(classify_status(answer.status, retry_after, &answer.body));
        }
        classify_api_body(&answer.body, retry_after)
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("token").into_iter().chain(self.cleartext.clone()).collect()
    }

    fn describe(&self) -> String {
        // A URL may carry a user and password: never shown.
        let mut shown = self.endpoint.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        format!("POST to {shown} with `Authorization: Bearer` and the token (not shown)")
    }
}
