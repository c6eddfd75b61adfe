//! A sink in the shape every f2b-notify sink crate has, in one file: a `Config` the config
//! file fills (`deny_unknown_fields`; `schemars::JsonSchema`, which keeps the `///` docs for
//! the manual; the secret in a redacting [`Secret`]), `new(name, Config)` that checks it, and a [`Sink`] that renders with the
//! shared [`Renderer`], posts with the shared HTTP layer (`f2b_notify_http`) and classifies
//! failures instead of retrying them (the router retries, batches and paces).
//!
//! As a crate, `crates/mysink/src/lib.rs` would hold everything above `main`; registering it
//! is one line in `crates/router/registry.rs` (`"mysink" => MySink(f2b_notify_mysink),`) and
//! a feature `mysink` in the root `Cargo.toml` (see the README's "Writing your own sink").
//!
//! Run it: `cargo run --example custom_sink` (it posts to a stand-in on a loopback port).

use f2b_notify_core::{async_trait, ConfigError, Event, EventKind, Renderer, Secret, Sink, SinkError, Templates};
use f2b_notify_http::{classify_status, describe, exchange, parse_url, secret_header, Timeout, UrlKind};
use serde::Deserialize;

/// Configuration of a `type = "mysink"` sink.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The endpoint, `https://…` (shown in errors: it holds no secret).
    pub url: String,
    /// The API key, sent as `Authorization: Bearer …`. A secret: never printed.
    #[serde(deserialize_with = "token")]
    pub token: Option<Secret>,
    /// Per-event templates for the text.
    #[serde(default)]
    pub templates: Templates,
}

fn token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// The built sink.
#[derive(Debug)]
pub struct MySink {
    name: String,
    url: f2b_notify_http::Url,
    auth: f2b_notify_http::header::HeaderValue,
    client: f2b_notify_http::Client,
    timeout: Timeout,
    renderer: Renderer,
}

/// Checks the config; errors name the key, never a secret.
pub fn new(name: &str, config: Config) -> Result<MySink, ConfigError> {
    let (url, _cleartext_warning) = parse_url(&config.url, "url", UrlKind::Public, "the token")?;
    let token = config.token.ok_or_else(|| ConfigError::new("`token` is required"))?;
    let auth = secret_header(&format!("Bearer {}", token.expose()), "token")?;
    let timeout = Timeout::from_config(None)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(MySink { name: name.to_owned(), url, auth, client: f2b_notify_http::client(timeout)?, timeout, renderer })
}

#[async_trait]
impl Sink for MySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mysink"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let text = self.renderer.render_plain(event).map_err(|e| SinkError::permanent(e.to_string()))?;
        let request = self
            .client
            .post(self.url.clone())
            .header(f2b_notify_http::header::AUTHORIZATION, self.auth.clone())
            .json(&serde_json::json!({ "text": text }));
        let answer = exchange(request, self.timeout).await?;
        if answer.is_success() {
            return Ok(());
        }
        // The shared table: 429 and 5xx are worth retrying (after Retry-After), the rest not.
        Err(classify_status(answer.status, answer.retry_after(), describe(&answer.body, Some(answer.status), None)))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    use f2b_notify_standins::{Reply, StandIn};
    // A stand-in service: the second request is refused with 503 and a Retry-After.
    let service = StandIn::start(std::sync::Arc::new(|_: &_, seen: usize| match seen {
        1 => Reply::new(503, "busy").header("Retry-After", "7"),
        _ => Reply::new(200, "ok"),
    }));
    let config: Config = serde_json::from_value(serde_json::json!({
        "url": service.url("/notify"),
        "token": "s3cret-token",
    }))
    .expect("config");
    let sink = new("mine", config).expect("sink");
    let mut ban = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    ban.failures = Some(5);
    let unban = Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example");
    for event in [&ban, &unban, &ban] {
        match sink.send(event).await {
            Ok(()) => println!("{}: delivered", event.kind),
            Err(e) if e.is_transient() => {
                println!("{}: try again in {:?}: {e}", event.kind, e.retry_after_hint().unwrap_or_default())
            }
            Err(e) => println!("{}: gave up: {e}", event.kind),
        }
    }
    for request in service.requests() {
        println!("received: {} {}", request.path, request.body);
    }
    assert!(!format!("{sink:?}").contains("s3cret"), "the token is redacted in Debug");
}
