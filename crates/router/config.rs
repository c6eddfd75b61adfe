//! Loading the configuration: built-in defaults < files < `F2B_NOTIFY_…` environment, merged
//! with figment, then checked as a whole (routes name real sinks, sink types are in this build,
//! names and patterns are well formed) so that every mistake is one clear line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use f2b_notify_core::EventKind;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The environment variable that lists config files, like repeated `--config`.
pub const CONFIG_ENV: &str = "F2B_NOTIFY_CONFIG";
/// The environment variable that moves the default config directory (tests, packagers).
pub const CONFIG_DIR_ENV: &str = "F2B_NOTIFY_CONFIG_DIR";
/// Where the config lives unless told otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/f2b-notify";

/// Used when no config file exists at all: every event goes to stdout.
pub const EMBEDDED_DEFAULT: &str = r#"
[sinks.stdout]
type = "stdout"

[jails."*"]
sinks = ["stdout"]
"#;

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host name messages mention. Default: the system's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Named sinks: `[sinks.NAME]` with a `type` and that type's settings.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes: `[jails.PATTERN]` where PATTERN is a jail name, a glob, or `*`.
    #[serde(default)]
    pub jails: BTreeMap<String, RouteConfig>,
}

/// One route: where a jail's events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Names of the sinks that get this jail's events.
    pub sinks: Vec<String>,
    /// Which events to send. Default: all of start, stop, ban, unban.
    #[serde(default = "all_events")]
    pub events: Vec<EventKind>,
    /// Whether bans that Fail2Ban restores from its database at restart are announced.
    /// Default false: a restart does not flood the channel.
    #[serde(default)]
    pub restored: bool,
}

fn all_events() -> Vec<EventKind> {
    EventKind::ALL.to_vec()
}

/// Stands in for a sink type this build left out, so that the config still parses and the
/// error can say which feature to rebuild with.
#[derive(Debug, Deserialize)]
pub struct Absent {}

/// A sink's settings, chosen by its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SinkConfig {
    /// `type = "stdout"`: text or JSON lines to stdout or a file.
    #[cfg(feature = "stdout")]
    Stdout(f2b_notify_stdout::Config),
    /// `type = "stdout"` in a build without it.
    #[cfg(not(feature = "stdout"))]
    Stdout(Absent),
    /// `type = "slack-webhook"` in a build without it.
    SlackWebhook(Absent),
    /// `type = "slack-api"` in a build without it.
    SlackApi(Absent),
    /// `type = "email"` in a build without it.
    Email(Absent),
}

impl SinkConfig {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::SlackWebhook(_) => "slack-webhook",
            Self::SlackApi(_) => "slack-api",
            Self::Email(_) => "email",
        }
    }

    /// Whether this build has the code for this sink type.
    pub fn is_built(&self) -> bool {
        match self {
            #[cfg(feature = "stdout")]
            Self::Stdout(_) => true,
            _ => false,
        }
    }
}

/// Which files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Files named by `--config` or `F2B_NOTIFY_CONFIG`; each must exist.
    Explicit(Vec<PathBuf>),
    /// The default locations; what exists is read.
    Default(PathBuf),
}

impl Sources {
    /// `--config` wins over `F2B_NOTIFY_CONFIG`, which wins over the default directory.
    pub fn from_args(args: &[PathBuf]) -> Self {
        if !args.is_empty() {
            return Self::Explicit(args.to_vec());
        }
        if let Some(list) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
            return Self::Explicit(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect());
        }
        let dir = std::env::var_os(CONFIG_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
        Self::Default(dir)
    }

    /// The files to merge, lowest precedence first.
    fn files(&self) -> Result<Vec<PathBuf>, String> {
        match self {
            Self::Explicit(files) => {
                for f in files {
                    std::fs::File::open(f).map_err(|e| format!("cannot read config file {}: {e}", f.display()))?;
                }
                Ok(files.clone())
            }
            Self::Default(dir) => {
                let mut files = Vec::new();
                let main = dir.join("config.toml");
                if main.exists() {
                    std::fs::File::open(&main)
                        .map_err(|e| format!("cannot read config file {}: {e}", main.display()))?;
                    files.push(main);
                }
                let confd = dir.join("conf.d");
                match std::fs::read_dir(&confd) {
                    Ok(entries) => {
                        let mut extra: Vec<PathBuf> = entries
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                            .collect();
                        extra.sort();
                        files.extend(extra);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot read config directory {}: {e}", confd.display())),
                }
                Ok(files)
            }
        }
    }
}

/// A loaded, checked configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// The files that were read, in order; empty means the embedded default.
    pub files: Vec<PathBuf>,
}

/// Reads, merges and checks the configuration. The error is one line naming the file (or
/// environment variable), the key and the problem.
pub fn load(sources: &Sources) -> Result<Loaded, String> {
    let files = sources.files()?;
    let mut figment = Figment::new();
    if files.is_empty() {
        figment = figment.merge(Toml::string(EMBEDDED_DEFAULT));
    }
    for f in &files {
        figment = figment.merge(Toml::file_exact(f));
    }
    figment = figment.merge(env_provider());
    let config: Config = figment.extract().map_err(|e| describe(&e))?;
    validate(&config, &figment)?;
    Ok(Loaded { config, files })
}

fn env_provider() -> Env {
    // `__` separates keys; the variables that choose the files are not config keys.
    Env::prefixed("F2B_NOTIFY_").split("__").ignore(&["config", "config_dir", "log"])
}

/// One line for a figment error: where (file or environment variable), which key, what.
fn describe(err: &figment::Error) -> String {
    let key = err.path.join(".");
    let place = match &err.metadata {
        Some(md) if md.source.is_none() && md.name.contains("environment") => env_vars_under(&key),
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            Some(other) => other.to_string(),
            None => md.name.to_string(),
        },
        None => "config".to_owned(),
    };
    let what = one_line(&err.kind.to_string());
    if key.is_empty() {
        format!("{place}: {what}")
    } else {
        format!("{place}: key `{key}`: {what}")
    }
}

/// Names the `F2B_NOTIFY_…` variables that set `key` or something below it, as typed.
fn env_vars_under(key: &str) -> String {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            let Some(rest) = k.strip_prefix("F2B_NOTIFY_") else { return false };
            let path = rest.to_ascii_lowercase().replace("__", ".");
            !matches!(path.as_str(), "config" | "config_dir" | "log")
                && (key.is_empty() || path == key || path.starts_with(&format!("{key}.")))
        })
        .collect();
    names.sort();
    match names.len() {
        0 => "environment".to_owned(),
        1 => format!("environment variable {}", names[0]),
        _ => format!("environment variables {}", names.join(", ")),
    }
}

/// Parser errors come with a drawn excerpt over several lines; keep the first and last.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | ")).collect();
    match lines.as_slice() {
        [] => text.trim().to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first}: {}", rest.join(" ")),
    }
}

/// Where a key's value came from, for messages about keys that parsed but do not make sense.
fn place_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            Some(other) => other.to_string(),
            None => md.name.to_string(),
        },
        None => "config".to_owned(),
    }
}

fn validate(config: &Config, figment: &Figment) -> Result<(), String> {
    for (name, sink) in &config.sinks {
        let key = format!("sinks.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(format!(
                "{}: key `{key}`: sink name `{name}` may hold only a-z, 0-9 and _",
                place_of(figment, &key)
            ));
        }
        if !sink.is_built() {
            let ty = sink.type_name();
            return Err(format!(
                "{}: key `{key}.type`: sink `{name}` has type `{ty}`, which this build does not include: rebuild with `--features {ty}`",
                place_of(figment, &format!("{key}.type"))
            ));
        }
    }
    for (pattern, route) in &config.jails {
        let key = format!("jails.{pattern}");
        if pattern.is_empty() {
            return Err(format!("{}: key `jails`: a jail pattern is empty", place_of(figment, "jails")));
        }
        if let Err(e) = glob::Pattern::new(pattern) {
            return Err(format!("{}: key `{key}`: `{pattern}` is not a valid glob: {e}", place_of(figment, &key)));
        }
        for sink in &route.sinks {
            if !config.sinks.contains_key(sink) {
                let known: Vec<&str> = config.sinks.keys().map(String::as_str).collect();
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                return Err(format!(
                    "{}: key `{key}.sinks`: no sink named `{sink}` (defined sinks: {known})",
                    place_of(figment, &format!("{key}.sinks"))
                ));
            }
        }
    }
    Ok(())
}

/// The names of the config files in the order they were read, for `check`.
pub fn describe_files(files: &[PathBuf]) -> String {
    if files.is_empty() {
        "built-in default (no config file found): every event goes to stdout".to_owned()
    } else {
        files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}
