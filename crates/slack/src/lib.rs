//! What the Slack incoming-webhook and Web API sinks share, so it is written once: the message
//! layout ([`message`]), the HTTP client and the classification of Slack's answers ([`http`]).

pub mod http;
pub mod message;

pub use http::{classify_api_body, classify_status, classify_transport, client, explain, Timeout};
pub use message::{build, build_digest, MessageOptions};

/// Slack takes about one message per second per channel or webhook.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
