//! `[enrich]` in the worker: a sink wrapped so that, just before each send, the events get
//! what the lookups found about their addresses (host name, country, city, network).
//!
//! The lookups run here, in the worker's send task, and never on Fail2Ban's action path: a
//! DNS server that does not answer costs a message the budget (1 s by default), never a ban.
//! A digest gets the databases' places and networks only (its origins line); reverse DNS is
//! for a message about one address.
//! What a lookup could not find in time is left out and the message goes out without it.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{async_trait, Alert, Digest, Event, MessageRef, Sink, SinkError};
use f2b_notify_enrich::Enricher;

/// A sink whose events are enriched before they reach it.
pub struct Enriched {
    inner: Arc<dyn Sink>,
    enricher: Arc<Enricher>,
}

impl Enriched {
    /// `inner`, with `enricher`'s lookups before every send.
    pub fn wrap(inner: Arc<dyn Sink>, enricher: Arc<Enricher>) -> Arc<dyn Sink> {
        Arc::new(Self { inner, enricher })
    }

    async fn one(&self, event: &Event) -> Event {
        let mut events = [event.clone()];
        self.enricher.enrich(&mut events).await;
        let [event] = events;
        event
    }

    /// A digest's events with what the databases say, without DNS (see
    /// [`Enricher::locate_all`]): its origins line counts networks and countries.
    fn many(&self, digest: &Digest) -> Digest {
        let mut events = digest.events.clone();
        self.enricher.locate_all(&mut events);
        Digest::new(events)
    }
}

#[async_trait]
impl Sink for Enriched {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.inner.send(&self.one(event).await).await
    }
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.inner.send_digest(&self.many(digest)).await
    }
    async fn post(&self, event: &Event, reply_to: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        self.inner.post(&self.one(event).await, reply_to).await
    }
    async fn post_digest(&self, digest: &Digest, update: Option<&MessageRef>) -> Result<Option<MessageRef>, SinkError> {
        self.inner.post_digest(&self.many(digest), update).await
    }
    fn min_interval(&self) -> Duration {
        self.inner.min_interval()
    }
    fn check(&self) -> Vec<String> {
        self.inner.check()
    }
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.inner.send_alert(alert).await
    }
    fn carries_alerts(&self) -> bool {
        self.inner.carries_alerts()
    }
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        self.inner.preview(event)
    }
}
