//! The trait every notification target implements.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Digest, Event, SinkError};

/// A message about f2b-notify itself, for the sinks named in `[delivery] alert`: a sink that
/// has been failing for a while or gave events up, and later that it recovered. Plain text:
/// each sink escapes it for its medium, since it quotes error text a remote server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// One line, for a mail subject or a notification's first line.
    pub subject: String,
    /// The details: a few lines.
    pub text: String,
    /// Whether it says that all is well again (Slack shows it green, not red).
    pub recovered: bool,
}

/// A place notifications go: a Slack channel, a mailbox, a file.
///
/// A sink sends one message per call and reports how that went. It never sleeps, loops or
/// retries: it classifies its failure ([`SinkError::Transient`] with an optional retry-after,
/// or [`SinkError::Permanent`]) and the router decides what to do.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The sink's name from the config (`[sinks.NAME]`).
    fn name(&self) -> &str;

    /// The sink's type as written in the config (`stdout`, `slack-webhook`, …).
    fn kind(&self) -> &'static str;

    /// Delivers one event.
    async fn send(&self, event: &Event) -> Result<(), SinkError>;

    /// Delivers several events as one message (a storm, or what piled up while the sink was
    /// rate-limited). The default sends them one by one, for sinks that have no digest layout;
    /// a failure part-way means the router may send the first ones again.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        for event in &digest.events {
            self.send(event).await?;
        }
        Ok(())
    }

    /// The least time between two messages, which the router keeps (Slack: about one message
    /// per second per channel). Default: none.
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// Extra lines for `f2b-notify check` (for example a secret file others can read).
    /// Most sinks have nothing to say.
    fn check(&self) -> Vec<String> {
        Vec::new()
    }

    /// Delivers an alert about another sink (see [`Alert`]). A sink that has no way to show
    /// one says so; `check` refuses it in `[delivery] alert`.
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        let _ = alert;
        Err(SinkError::permanent(format!("a `{}` sink cannot carry alerts", self.kind())))
    }

    /// Whether [`Sink::send_alert`] does something.
    fn carries_alerts(&self) -> bool {
        false
    }

    /// What [`Sink::send`] would deliver for `event`, for `f2b-notify test --dry-run`: where
    /// it would go and the exact payload, secrets left out. Sends nothing.
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let _ = event;
        Err(SinkError::permanent(format!("a `{}` sink cannot show what it would send", self.kind())))
    }
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        (**self).send(event).await
    }
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        (**self).send_digest(digest).await
    }
    fn min_interval(&self) -> Duration {
        (**self).min_interval()
    }
    fn check(&self) -> Vec<String> {
        (**self).check()
    }
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        (**self).send_alert(alert).await
    }
    fn carries_alerts(&self) -> bool {
        (**self).carries_alerts()
    }
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        (**self).preview(event)
    }
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        (**self).send(event).await
    }
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        (**self).send_digest(digest).await
    }
    fn min_interval(&self) -> Duration {
        (**self).min_interval()
    }
    fn check(&self) -> Vec<String> {
        (**self).check()
    }
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        (**self).send_alert(alert).await
    }
    fn carries_alerts(&self) -> bool {
        (**self).carries_alerts()
    }
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        (**self).preview(event)
    }
}
