//! How to write your own sink against `f2b-notify-core`: implement [`Sink`], render the text
//! with the shared [`Renderer`], and classify failures instead of retrying them (the router
//! retries, batches and rate-limits).
//!
//! Run it: `cargo run --example custom_sink`

use std::sync::Mutex;

use f2b_notify_core::{async_trait, Event, EventKind, Renderer, Sink, SinkError};

/// A sink that keeps messages in memory and refuses anything once it is full.
struct MemorySink {
    name: String,
    renderer: Renderer,
    capacity: usize,
    messages: Mutex<Vec<String>>,
}

#[async_trait]
impl Sink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let text = self.renderer.render_plain(event).map_err(|e| SinkError::permanent(e.to_string()))?;
        let mut messages = self.messages.lock().map_err(|_| SinkError::permanent("poisoned"))?;
        if messages.len() >= self.capacity {
            // Full now, maybe not later: let the router decide when to try again.
            return Err(SinkError::transient("memory sink is full"));
        }
        messages.push(text);
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sink = MemorySink {
        name: "memory".into(),
        renderer: Renderer::default(),
        capacity: 2,
        messages: Mutex::new(Vec::new()),
    };
    let mut ban = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    ban.failures = Some(5);
    let unban = Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example");
    for event in [&ban, &unban, &ban] {
        match sink.send(event).await {
            Ok(()) => println!("{}: delivered", event.kind),
            Err(e) if e.is_transient() => println!("{}: try again later: {e}", event.kind),
            Err(e) => println!("{}: gave up: {e}", event.kind),
        }
    }
    for m in sink.messages.lock().expect("not poisoned").iter() {
        println!("stored: {m}");
    }
}
