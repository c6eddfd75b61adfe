//! Errors a sink reports: the sink decides whether a failure is worth retrying (as in
//! Alertmanager's notifiers), and only the router acts on that decision.

use std::time::Duration;

/// Why a sink could not deliver a message.
///
/// The message text must never hold a secret (webhook URL, token, password): sinks build it
/// from the remote's own error string and from status codes, never from the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again later: a timeout, a refused connection, a 5xx, a rate limit.
    #[error("{message}")]
    Transient {
        /// What went wrong, safe to log.
        message: String,
        /// How long the remote asked us to wait (for example a 429's `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: a bad channel, revoked credentials, a rejected payload.
    #[error("{message}")]
    Permanent {
        /// What went wrong, safe to log.
        message: String,
    },
}

impl SinkError {
    /// A transient failure with no hint of when to retry.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient { message: message.into(), retry_after: None }
    }

    /// A transient failure the remote asked us to retry after `wait`.
    pub fn retry_after(message: impl Into<String>, wait: Duration) -> Self {
        Self::Transient { message: message.into(), retry_after: Some(wait) }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent { message: message.into() }
    }

    /// Whether the router may retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether the router must give up on this message.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// The wait the remote asked for, if any.
    pub fn retry_after_hint(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            Self::Permanent { .. } => None,
        }
    }

    /// The error text, without the transient/permanent label.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. } | Self::Permanent { message } => message,
        }
    }
}

/// A sink's configuration could not be turned into a working sink (for example a secret file
/// that cannot be read). The text names the key and file, never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A configuration error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let t = SinkError::retry_after("rate limited", Duration::from_secs(3));
        assert!(t.is_transient() && !t.is_permanent());
        assert_eq!(t.retry_after_hint(), Some(Duration::from_secs(3)));
        let p = SinkError::permanent("channel_not_found");
        assert!(p.is_permanent() && !p.is_transient());
        assert_eq!(p.retry_after_hint(), None);
        assert_eq!(p.to_string(), "channel_not_found");
        assert_eq!(SinkError::transient("x").retry_after_hint(), None);
    }
}
