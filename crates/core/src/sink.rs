//! The trait every notification target implements.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::{Digest, Event, SinkError};

/// A message a sink posted that a later message can refer to: Slack's `ts` (with its
/// channel), Discord's message id, Telegram's `message_id`, Matrix's event id. Opaque to the
/// router, which keeps the one of each ban in the spool's state (so that it survives a
/// restart) until the ban has ended, and hands it back with the unban; and keeps a storm's
/// digest message while the storm lasts, to update it in place.
///
/// At most [`MessageRef::MAX`] bytes of one line: it comes from a remote server's answer.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageRef(String);

/// Read back (from the spool's state) by the same rules as [`MessageRef::new`].
impl TryFrom<String> for MessageRef {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text).ok_or("not a message reference: empty, longer than 256 bytes or not one line")
    }
}

impl MessageRef {
    /// The longest reference kept (Slack's `C0123ABCD:1700000000.123456` is 30 bytes).
    pub const MAX: usize = 256;

    /// `text` as a reference: `None` when it is empty, longer than [`Self::MAX`] or holds a
    /// control character (a server's answer is not trusted to be sane).
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        (!text.is_empty() && text.len() <= Self::MAX && !text.chars().any(char::is_control)).then_some(Self(text))
    }

    /// The reference as the sink made it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MessageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageRef({:?})", self.0)
    }
}

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

    /// Delivers one event, as a reply to `reply_to` when given (an unban under its ban's
    /// message), and says which message it posted, so that later messages can refer to it.
    /// The router calls this instead of [`Sink::send`]; the default sends with `send` and
    /// returns no reference, for sinks that cannot reply or edit.
    ///
    /// A reply that the service refuses because the message is gone must not fail the event:
    /// post it on its own instead.
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let _ = reply_to;
        self.send(event).await.map(|()| None)
    }

    /// Delivers a digest: with `update`, by editing that message in place (a storm's message,
    /// `digest` then holding every event of the storm so far), else as a new message; and says
    /// which message holds it. The router calls this instead of [`Sink::send_digest`] and
    /// keeps a storm's message only when one is returned; the default sends with
    /// `send_digest` and returns none.
    ///
    /// An edit the service refuses because the message is gone or too old to edit must not
    /// fail the events: post a new message instead and return that one. An edit counts as a
    /// message for pacing ([`Sink::min_interval`]).
    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        let _ = update;
        self.send_digest(digest).await.map(|()| None)
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
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        (**self).post(event, reply_to).await
    }
    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        (**self).post_digest(digest, update).await
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
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        (**self).post(event, reply_to).await
    }
    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        (**self).post_digest(digest, update).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_refs_are_sane_or_nothing() {
        assert_eq!(MessageRef::new("C0123:1700000000.123456").unwrap().as_str(), "C0123:1700000000.123456");
        assert!(MessageRef::new("").is_none());
        assert!(MessageRef::new("a\nb").is_none());
        assert!(MessageRef::new("x".repeat(MessageRef::MAX + 1)).is_none());
        assert!(MessageRef::new("x".repeat(MessageRef::MAX)).is_some());
        // Read back by the same rules.
        let back: MessageRef = serde_json::from_str("\"C1:1.5\"").unwrap();
        assert_eq!(back.as_str(), "C1:1.5");
        assert!(serde_json::from_str::<MessageRef>("\"a\\nb\"").is_err());
    }
}
