//! The one `Sink` both Slack sinks are: render, lay out, post, pace. The webhook and the Web
//! API differ only in how a body is posted and how the answer is read, which each sink crate
//! supplies as a [`Post`].

use std::time::Duration;

use async_trait::async_trait;
use f2b_notify_core::{Alert, ConfigError, Digest, Event, Renderer, Sink, SinkError, Templates};
use serde_json::Value;

use crate::{build, build_alert, build_digest, MessageOptions};

/// How a Slack sink sends one JSON body and reads Slack's answer.
#[async_trait]
pub trait Post: Send + Sync + std::fmt::Debug {
    /// The sink's `type` in the config.
    fn kind(&self) -> &'static str;

    /// Posts one message body; the error is classified for the router.
    async fn post(&self, body: &Value) -> Result<(), SinkError>;

    /// Warnings for `f2b-notify check` (a secret file others can read).
    fn check(&self) -> Vec<String> {
        Vec::new()
    }

    /// Where and how a body is posted, for `test --dry-run`: never the secret.
    fn describe(&self) -> String;
}

/// A Slack sink: the shared layout over a [`Post`].
#[derive(Debug)]
pub struct SlackSink<P> {
    name: String,
    renderer: Renderer,
    options: MessageOptions,
    poster: P,
}

impl<P: Post> SlackSink<P> {
    /// Compiles the templates (a bad one is reported now) around `poster`.
    pub fn new(
        name: impl Into<String>,
        templates: &Templates,
        options: MessageOptions,
        poster: P,
    ) -> Result<Self, ConfigError> {
        let renderer = Renderer::new(templates).map_err(|e| ConfigError::new(e.to_string()))?;
        Ok(Self { name: name.into(), renderer, options, poster })
    }

    /// The transport, for its own tests.
    pub fn poster(&self) -> &P {
        &self.poster
    }
}

#[async_trait]
impl<P: Post> Sink for SlackSink<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.poster.kind()
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let body = build(event, &self.renderer, &self.options).map_err(|e| SinkError::permanent(e.to_string()))?;
        self.poster.post(&body).await
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.poster.post(&build_digest(digest, &self.options)).await
    }

    /// Slack takes about one message per second per channel or webhook.
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn check(&self) -> Vec<String> {
        self.poster.check()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.poster.post(&build_alert(alert, &self.options)).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let body = build(event, &self.renderer, &self.options).map_err(|e| SinkError::permanent(e.to_string()))?;
        let json = serde_json::to_string_pretty(&body).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("{}, this JSON body:\n{json}", self.poster.describe()))
    }
}
