//! The integration tests of the `f2b-notify` binary (one test binary, ripgrep style):
//! `cli` runs the built binary directly, `check` its config, spool and action-file checks,
//! `slack` against a loopback Slack stand-in, `fail2ban` under the real Fail2Ban, `fastpath`
//! the action's front end, `report` Fail2Ban's database as the real server fills it, `setup` the first run (`cargo run`, `f2b-notify setup` into a copy
//! of Fail2Ban's config, the config examples), `web_sinks` the delivery guarantees for every web
//! sink against its service's stand-in.

mod util;

#[cfg(feature = "alertmanager")]
mod alertmanager;
mod check;
mod cli;
#[cfg(feature = "slack-webhook")]
mod config_changes;
#[cfg(feature = "slack-api")]
mod conversation;
#[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
mod delivery;
#[cfg(feature = "webhook")]
mod enrich;
mod fail2ban;
#[cfg(feature = "slack-webhook")]
mod fastpath;
#[cfg(feature = "slack-webhook")]
mod full_disk;
mod no_config;
mod report;
#[cfg(feature = "slack-webhook")]
mod security;
mod setup;
#[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
mod slack;
#[cfg(feature = "syslog")]
mod syslog;
#[cfg(any(
    feature = "webhook",
    feature = "discord",
    feature = "telegram",
    feature = "matrix",
    feature = "teams",
    feature = "ntfy",
    feature = "gotify",
    feature = "pushover"
))]
mod web_sinks;
