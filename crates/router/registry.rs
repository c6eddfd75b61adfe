//! Where sinks are registered: one line per sink type in [`sinks!`] below. Adding a sink is
//! its own crate (which exports `Config` and `new(name, Config)`), a Cargo feature named like
//! its `type` (with the optional dependency), and one line here; the config enum, the
//! "rebuild with `--features X`" error, the list `--version` and `check` show, and building
//! the sink all follow from that line.

use std::sync::Arc;

use f2b_notify_core::Sink;
use serde::Deserialize;

/// Stands in for a sink type this build left out, so that the config still parses and the
/// error can say which feature to rebuild with.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)] // constructed only in builds that leave a sink type out
pub struct Absent {}

/// Generates, from one line per sink (`"type" => Variant(crate),`, the Cargo feature being
/// named like the type): [`SinkConfig`] (the variant holds the crate's `Config`, or
/// [`Absent`] in a build without the feature), its `type_name` and `is_built`, [`TYPES`] and
/// [`build`].
macro_rules! sinks {
    ($($ty:literal => $variant:ident($krate:ident),)+) => {
        /// A sink's settings, chosen by its `type`. (Each crate's `Config` must derive
        /// `schemars::JsonSchema`: its `///` docs are the sink's part of the configuration
        /// reference, see [`reference_sections`].)
        #[derive(Debug, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "type")]
        // A build without most sink types has small `Absent` variants beside a large one; a
        // config is read once and holds a handful of sinks, so boxing buys nothing.
        #[allow(clippy::large_enum_variant)]
        pub enum SinkConfig {
            $(
                #[doc = concat!("`type = \"", $ty, "\"`.")]
                #[cfg(feature = $ty)]
                #[serde(rename = $ty)]
                $variant($krate::Config),
                #[doc = concat!("`type = \"", $ty, "\"` in a build without it.")]
                #[cfg(not(feature = $ty))]
                #[serde(rename = $ty)]
                $variant(Absent),
            )+
        }

        /// Every sink type f2b-notify knows, and whether this build has its code.
        pub const TYPES: &[(&str, bool)] = &[$(($ty, cfg!(feature = $ty))),+];

        impl SinkConfig {
            /// The `type` as written in the config.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $ty,)+
                }
            }

            /// Whether this build has the code for this sink type.
            pub fn is_built(&self) -> bool {
                match self {
                    $(Self::$variant(_) => cfg!(feature = $ty),)+
                }
            }
        }

        /// Each sink type's part of the configuration reference (README's key tables,
        /// f2b-notify.toml(5)), from its `Config`'s `///` docs; `None` for a type this
        /// build left out.
        pub fn reference_sections() -> Vec<(&'static str, Option<crate::reference::Section>)> {
            vec![$(
                ($ty, {
                    #[cfg(feature = $ty)]
                    let section = Some(crate::reference::Section::of::<$krate::Config>($ty));
                    #[cfg(not(feature = $ty))]
                    let section = None;
                    section
                }),
            )+]
        }

        /// Builds the sink `name`. The error names the sink and never holds a secret.
        pub fn build(name: &str, config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
            let built: Result<Arc<dyn Sink>, f2b_notify_core::ConfigError> = match config {
                $(
                    #[cfg(feature = $ty)]
                    SinkConfig::$variant(c) => $krate::new(name, c.clone()).map(|s| Arc::new(s) as _),
                )+
                #[allow(unreachable_patterns)]
                other => anyhow::bail!(
                    "sink `{name}` has type `{ty}`, which this build does not include: rebuild with `--features {ty}`",
                    ty = other.type_name()
                ),
            };
            built.map_err(|e| anyhow::anyhow!("sink `{name}`: {e}"))
        }
    };
}

sinks! {
    "stdout" => Stdout(f2b_notify_stdout),
    "slack-webhook" => SlackWebhook(f2b_notify_slack_webhook),
    "slack-api" => SlackApi(f2b_notify_slack_api),
    "email" => Email(f2b_notify_email),
    "syslog" => Syslog(f2b_notify_syslog),
    "webhook" => Webhook(f2b_notify_webhook),
    "discord" => Discord(f2b_notify_discord),
    "telegram" => Telegram(f2b_notify_telegram),
    "matrix" => Matrix(f2b_notify_matrix),
    "teams" => Teams(f2b_notify_teams),
    "ntfy" => Ntfy(f2b_notify_ntfy),
    "alertmanager" => Alertmanager(f2b_notify_alertmanager),
    "gotify" => Gotify(f2b_notify_gotify),
    "pushover" => Pushover(f2b_notify_pushover),
}

impl SinkConfig {
    /// Whether the action delivers to this sink itself even in queue mode: writing a line to
    /// stdout or a local file is as cheap as spooling it, and stdout only exists there.
    pub fn delivered_inline(&self) -> bool {
        matches!(self, Self::Stdout(_))
    }

    /// Whether this sink writes to the process's stdout (not to a file): only the action has
    /// one that anybody reads.
    pub fn writes_to_stdout(&self) -> bool {
        match self {
            #[cfg(feature = "stdout")]
            Self::Stdout(c) => c.path.is_none(),
            #[cfg(not(feature = "stdout"))]
            Self::Stdout(_) => true,
            _ => false,
        }
    }
}

/// The sink types this build includes.
pub fn built_types() -> Vec<&'static str> {
    TYPES.iter().filter(|(_, built)| *built).map(|(ty, _)| *ty).collect()
}

/// What `--version` prints after the name: the version and the sink types compiled in, so
/// that an administrator sees at once whether this build can reach their channel.
pub fn version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| format!("{} (sinks: {})", env!("CARGO_PKG_VERSION"), built_types().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sink type has its Cargo feature, and the build includes exactly the enabled ones.
    #[test]
    fn types_and_features_agree() {
        let manifest = include_str!("../../Cargo.toml");
        for (ty, built) in TYPES {
            assert!(manifest.contains(&format!("\n{ty} = [\"dep:")), "no feature `{ty}` in Cargo.toml");
            let parsed: SinkConfig = serde_json::from_str(&format!(r#"{{"type":"{ty}"}}"#))
                .or_else(|_| serde_json::from_str(&format!(r#"{{"type":"{ty}","url":"https://x.invalid/"}}"#)))
                .unwrap_or_else(|e| panic!("{ty}: {e}"));
            assert_eq!((parsed.type_name(), parsed.is_built()), (*ty, *built));
        }
    }
}
