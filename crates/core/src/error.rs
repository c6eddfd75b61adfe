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

    /// The longest wait a remote may ask for: a `Retry-After` beyond it (a broken or hostile
    /// server's `18446744073709551615`) is cut to it, so that one answer can neither overflow
    /// the router's clock nor hold a sink back for days.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

    /// A transient failure the remote asked us to retry after `wait` (at most
    /// [`Self::MAX_RETRY_AFTER`]).
    pub fn retry_after(message: impl Into<String>, wait: Duration) -> Self {
        Self::Transient { message: message.into(), retry_after: Some(wait.min(Self::MAX_RETRY_AFTER)) }
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

    /// The wait the remote asked for, if any, at most [`Self::MAX_RETRY_AFTER`] (also when
    /// the variant was built by hand with a larger one).
    pub fn retry_after_hint(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => retry_after.map(|w| w.min(Self::MAX_RETRY_AFTER)),
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

    #[test]
    fn absurd_retry_after_is_capped() {
        let cap = Some(SinkError::MAX_RETRY_AFTER);
        for secs in [u64::MAX, 1_000_000_000, 3601] {
            let e = SinkError::retry_after("slow down", Duration::from_secs(secs));
            assert_eq!(e.retry_after_hint(), cap, "{secs}");
        }
        assert_eq!(SinkError::retry_after("x", Duration::MAX).retry_after_hint(), cap);
        // Built by hand, around the constructor: the hint is capped all the same.
        let raw = SinkError::Transient { message: "x".into(), retry_after: Some(Duration::MAX) };
        assert_eq!(raw.retry_after_hint(), cap);
        // Sane values pass unchanged.
        let e = SinkError::retry_after("x", Duration::from_millis(1500));
        assert_eq!(e.retry_after_hint(), Some(Duration::from_millis(1500)));
    }
}
