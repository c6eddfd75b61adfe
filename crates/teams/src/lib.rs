//! The Microsoft Teams sink: each event as an Adaptive Card, posted to a Workflows (Power
//! Automate) webhook, the way to post into a Teams channel since Microsoft retired the Office
//! 365 connectors. The flow of the Teams template "Post to a channel when a webhook request is
//! received" posts the card to the channel it was created for.
//!
//! The URL is the secret (its `sig` parameter is the credential): it never appears in errors,
//! logs, `check` output, previews or `Debug`, nor does its host; error texts the service
//! sends are cleared of its parts. Teams answers 202 Accepted before the flow posts the card,
//! so a card that fails later (too large, say) shows only in the flow's run history: this
//! sink therefore keeps every card far inside Teams' limits itself ([`card`]).

use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::{exchange, header, parse_url, Client, Timeout, Url, UrlKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub mod answer;
pub mod card;
#[cfg(test)]
mod tests;

/// Configuration of a `type = "teams"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Workflows webhook URL (`https://….environment.api.powerplatform.com/powerautomate/
    /// automations/direct/workflows/…/triggers/manual/paths/invoke?…&sig=…`), as Teams shows
    /// it when the workflow is created. A secret (its `sig` is the credential): prefer
    /// `url_file` or the environment (`F2B_NOTIFY_SINKS__NAME__URL`). Give `url` or
    /// `url_file`, not both.
    #[serde(default, deserialize_with = "url")]
    pub url: Option<Secret>,
    /// A file holding the webhook URL (mode 0600; `check` warns when others can read it).
    pub url_file: Option<PathBuf>,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
    /// Per-event templates for the card's title (`[sinks.NAME.templates] ban = "…"`); values
    /// are escaped for the card's markdown, the template's own `**bold**` and `_italics_`
    /// are kept.
    #[serde(default)]
    pub templates: Templates,
}

/// `url` is a secret: a value of the wrong type is an error naming the key, never the value.
fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "url")
}

/// A built Teams sink.
#[derive(Debug)]
pub struct TeamsSink {
    name: String,
    source: SecretSource,
    /// The webhook URL: kept as a [`Secret`] (a parsed `Url` would print in `Debug`).
    url: Secret,
    client: Client,
    timeout: Timeout,
    renderer: Renderer,
    /// `check`'s warnings about the URL, found when the sink was built.
    warnings: Vec<String>,
}

/// Builds the sink: reads the URL (from the file, if so configured), checks it, compiles the
/// templates. Errors name the key, never the URL.
pub fn new(name: &str, config: Config) -> Result<TeamsSink, ConfigError> {
    let source = SecretSource::from_pair("url", config.url, config.url_file)?;
    let url = source.load("url")?;
    let (parsed, cleartext) = parse_url(url.expose(), "url", UrlKind::Secret, "the webhook URL, which is the secret,")?;
    let warnings = cleartext.into_iter().chain(url_warnings(&parsed)).collect();
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(TeamsSink {
        name: name.to_owned(),
        source,
        url: Secret::new(parsed.as_str()),
        client: f2b_notify_http::client(timeout)?,
        timeout,
        renderer,
        warnings,
    })
}

/// What `check` says about a URL that is not a current Workflows URL. No host pattern is
/// required (Microsoft has moved these URLs before, and a proxy may stand in between); none
/// of these texts quotes the URL or its host.
fn url_warnings(url: &Url) -> Vec<String> {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let path = url.path();
    let mut out = Vec::new();
    if host.ends_with(".webhook.office.com") || (host.starts_with("outlook.office") && path.starts_with("/webhook")) {
        out.push(
            "`url` is an Office 365 connector (incoming webhook) URL, which Microsoft has retired: create a workflow from the Teams template \"Post to a channel when a webhook request is received\" and use its URL"
                .to_owned(),
        );
    } else if host.ends_with(".logic.azure.com") {
        out.push(
            "`url` is a Workflows URL of the old form (on the Logic Apps domain), which Microsoft moved to a new domain; such URLs are reported to stop working after 30 November 2025: copy the URL again from the workflow's trigger"
                .to_owned(),
        );
    } else if !url.query_pairs().any(|(k, _)| k == "sig") {
        out.push(
            "`url` has no `sig` parameter: unless the flow's trigger lets only tenant users call it (which this sink cannot do), Teams will refuse it (401 DirectApiAuthorizationRequired); copy the URL again, whole"
                .to_owned(),
        );
    }
    out
}

impl TeamsSink {
    /// Posts one body; the error is classified for the router.
    async fn post(&self, body: &Value) -> Result<(), SinkError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SinkError::permanent(e.to_string()))?;
        let request = self.client.post(self.url.expose()).header(header::CONTENT_TYPE, "application/json").body(bytes);
        let answer = exchange(request, self.timeout).await?;
        if answer.is_success() {
            return Ok(());
        }
        Err(answer::classify(&answer, &self.url))
    }
}

#[async_trait]
impl Sink for TeamsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "teams"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let body = card::build(event, &self.renderer).map_err(|e| SinkError::permanent(e.to_string()))?;
        self.post(&body).await
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.post(&card::build_digest(digest)).await
    }

    /// One second. Microsoft's incoming-webhook page throttles above four requests a second,
    /// and its older connector table allows 60 per 30 seconds (two a second) per channel; one
    /// a second stays under both with room for a second sink on the same channel, and the
    /// router folds whatever piles up meanwhile into one digest card.
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn check(&self) -> Vec<String> {
        self.source.permission_warning("url").into_iter().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.post(&card::build_alert(alert)).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = card::build(event, &self.renderer).map_err(|e| SinkError::permanent(e.to_string()))?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!(
            "POST to the Workflows webhook URL (the secret, not shown), Content-Type: application/json, {} bytes (Teams answers 202 Accepted and posts the card afterwards), this JSON body:\n{json}",
            card::size(&body)
        ))
    }
}
