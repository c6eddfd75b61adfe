//! The trait every notification target implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Event, SinkError};

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

    /// Extra lines for `f2b-notify check` (for example a secret file others can read).
    /// Most sinks have nothing to say.
    fn check(&self) -> Vec<String> {
        Vec::new()
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
    fn check(&self) -> Vec<String> {
        (**self).check()
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
    fn check(&self) -> Vec<String> {
        (**self).check()
    }
}
