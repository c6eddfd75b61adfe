//! Builds sinks from their config by `type`. Each sink crate is behind a Cargo feature; a
//! type this build left out was already rejected when the config was loaded.

use std::sync::Arc;

use f2b_notify_core::Sink;

use crate::config::SinkConfig;

/// Builds the sink `name`. The error names the sink and never holds a secret.
pub fn build(name: &str, config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
    let built: Result<Arc<dyn Sink>, f2b_notify_core::ConfigError> = match config {
        #[cfg(feature = "stdout")]
        SinkConfig::Stdout(c) => f2b_notify_stdout::StdoutSink::new(name, c.clone()).map(|s| Arc::new(s) as _),
        #[cfg(feature = "slack-webhook")]
        SinkConfig::SlackWebhook(c) => f2b_notify_slack_webhook::new(name, c.clone()).map(|s| Arc::new(s) as _),
        #[cfg(feature = "slack-api")]
        SinkConfig::SlackApi(c) => f2b_notify_slack_api::new(name, c.clone()).map(|s| Arc::new(s) as _),
        #[cfg(feature = "email")]
        SinkConfig::Email(c) => f2b_notify_email::EmailSink::new(name, c.clone()).map(|s| Arc::new(s) as _),
        #[cfg(feature = "syslog")]
        SinkConfig::Syslog(c) => f2b_notify_syslog::SyslogSink::new(name, c.clone()).map(|s| Arc::new(s) as _),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!(
            "sink `{name}` has type `{ty}`, which this build does not include: rebuild with `--features {ty}`",
            ty = other.type_name()
        ),
    };
    built.map_err(|e| anyhow::anyhow!("sink `{name}`: {e}"))
}
