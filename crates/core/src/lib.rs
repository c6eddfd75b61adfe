//! The core of f2b-notify: the [`Event`] Fail2Ban reports, the [`Sink`] trait every
//! notification target implements, the [`SinkError`] that tells the router whether a failure
//! is worth retrying, and the message rendering all sinks share.
//!
//! This crate has no network dependency on purpose: a sink crate brings its own transport, and
//! a minimal build of the router carries none.

mod context;
mod digest;
mod error;
mod event;
pub mod markdown;
mod net;
mod one_or_many;
mod per_event;
mod render;
mod secret;
mod sink;
mod summary;

pub use context::{clean, Context, MAX_HOSTNAME, MAX_NAME};
pub use digest::{chunk_list, Digest, JailSummary, ORIGINS_TOP};
pub use error::{ConfigError, SinkError};
pub use event::{ordinal, ContextValue, Event, EventKind, ParseEventKindError};
pub use net::is_loopback_host;
pub use one_or_many::OneOrMany;
pub use per_event::{value_kind, PerEvent};
pub use render::{
    cut_marker, escape_slack, flatten, flatten_shown, human_duration, truncate_chars, Renderer, TemplateError,
    Templates,
};
pub use secret::{Secret, SecretSource};
pub use sink::{Alert, MessageRef, Sink};
pub use summary::{Count, Summary};

pub use async_trait::async_trait;
