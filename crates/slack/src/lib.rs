//! What the Slack incoming-webhook and Web API sinks share, so it is written once: the message
//! layout ([`message`]), the classification of Slack's answers ([`http`]; the client is the
//! shared `f2b_notify_http`), and [`SlackSink`], which the webhook sink completes with how it
//! posts ([`Post`]). The Web API sink implements `Sink` itself: it converses (threads, edits),
//! which a webhook cannot.

pub mod http;
pub mod message;
mod sink;

pub use http::{classify_api_body, classify_status, explain};
pub use message::{build, build_alert, build_digest, MessageOptions};
pub use sink::{Post, SlackSink};
