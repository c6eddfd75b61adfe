//! Loading the configuration: built-in defaults < files < `F2B_NOTIFY_…` environment, merged
//! with figment, then checked as a whole (routes name real sinks, sink types are in this build,
//! names and patterns are well formed) so that every mistake is one clear line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use f2b_notify_core::{EventKind, Secret};
use f2b_notify_fastpath::layout::{self, valid_sink_name};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

mod collect;
pub use crate::registry::SinkConfig;
pub use collect::check;

/// The environment variable that lists config files, like repeated `--config`.
pub const CONFIG_ENV: &str = layout::CONFIG_ENV;
/// The environment variable that moves the default config directory (tests, packagers).
pub const CONFIG_DIR_ENV: &str = layout::CONFIG_DIR_ENV;
/// Where the config lives unless told otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/f2b-notify";

/// Used when no config file exists at all: every event goes to stdout.
pub const EMBEDDED_DEFAULT: &str = r#"
[sinks.stdout]
type = "stdout"

[jails."*"]
sinks = ["stdout"]
"#;

/// The whole configuration: the top-level keys, the sinks, the routes and `[delivery]`.
///
/// An exact jail name beats a glob, a longer glob beats a shorter one, `"*"` comes last; a
/// jail that matches nothing is dropped with a warning.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// host name in messages; default the system's
    #[serde(default)]
    pub host: Option<String>,
    /// a sink; NAME of `[a-z0-9_]`; its `type` is one of the sink types (each has a table
    /// below) and selects the other keys it takes
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// a route: exact jail name, a glob (`nginx-*`), or `"*"` as fallback
    #[serde(default)]
    pub jails: BTreeMap<String, RouteConfig>,
    /// how events are delivered: whether the action waits for the network, and how the
    /// background worker retries, folds and paces messages
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// what the worker adds to a message about each banned address: its host name (reverse
    /// DNS), country, city and network, from lookups made in the worker within a time budget,
    /// never on Fail2Ban's action path; all off by default
    #[serde(default)]
    pub enrich: f2b_notify_enrich::Config,
}

/// `[delivery]`: whether the action waits for the network, and how the background worker
/// retries, folds and paces messages.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `queue` (default) or `direct`
    ///
    /// `queue`: the action writes the event to the spool and returns at once; a background
    /// worker delivers. `direct`: deliver inside the action, with the sinks' timeouts
    /// (Fail2Ban waits, under its global lock).
    #[serde(default)]
    pub mode: Mode,
    /// spool directory, absolute; default `/var/spool/f2b-notify`; a second set of config
    /// files naming it gets `SPOOL/sets/ID`
    ///
    /// Created with mode 0700. The packaged service may write only the default spool: a
    /// config naming another one needs a drop-in with `ReadWritePaths=` for it (see the
    /// README's "Service").
    #[serde(default = "default_spool")]
    pub spool: PathBuf,
    /// give up (dead letter) after this long; default `1d`
    ///
    /// Events older than this go to the dead-letter directory instead of out.
    #[serde(default = "default_max_age")]
    pub max_age: Seconds,
    /// longest backoff between tries; default 300 s
    ///
    /// Exponential backoff with jitter grows up to it; a `Retry-After` is obeyed as given.
    #[serde(default = "default_retry_max")]
    pub retry_max: Seconds,
    /// the on-demand worker exits after this long idle; default 30 s
    ///
    /// The next event starts a new one.
    #[serde(default = "default_idle_exit")]
    pub idle_exit: Seconds,
    /// most events in one digest message; default 500
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// per-sink pacing override, `{ NAME = SECS }`
    ///
    /// The least time between two messages of a sink, overriding the sink's own default
    /// (Slack sinks: 1 s; others: none): `min_interval = { ops = 2 }`.
    #[serde(default)]
    pub min_interval: BTreeMap<String, Seconds>,
    /// most events waiting for one sink; past it the oldest go to the dead letters ("spool cap
    /// reached"); default 50000, 0 no cap
    ///
    /// The batch being sent is never set aside, and the move is logged with the count: a sink
    /// down for long, or an attacker who sets the event rate, cannot fill the disk, and
    /// nothing is dropped unseen.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// dead letters are deleted this long after they were set aside; default `30d`, 0 keeps
    /// them
    ///
    /// Each deletion is logged with the count.
    #[serde(default = "default_dead_retention")]
    pub dead_retention: Seconds,
    /// sinks told when another sink has been failing for `alert_after`, gives events up, or
    /// recovers; default none
    ///
    /// One message per failing sink ("sink `ops` failing since …: the last error; N events
    /// waiting"), then only new dead letters, at most one per `alert_after`, and one when it
    /// recovers. An alert sink is never told about itself.
    #[serde(default)]
    pub alert: Vec<String>,
    /// how long a sink fails before the alert sinks hear of it, and the least time between
    /// two alerts about one sink; default `10m`
    #[serde(default = "default_alert_after")]
    pub alert_after: Seconds,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            spool: default_spool(),
            max_age: default_max_age(),
            retry_max: default_retry_max(),
            idle_exit: default_idle_exit(),
            batch_max: default_batch_max(),
            min_interval: BTreeMap::new(),
            max_pending: default_max_pending(),
            dead_retention: default_dead_retention(),
            alert: Vec::new(),
            alert_after: default_alert_after(),
        }
    }
}

/// `[delivery] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Spool and deliver in the background.
    #[default]
    Queue,
    /// Deliver inside the action.
    Direct,
}

/// The spool when the config names none.
pub fn default_spool() -> PathBuf {
    PathBuf::from("/var/spool/f2b-notify")
}
fn default_max_age() -> Seconds {
    Seconds(Duration::from_secs(86_400))
}
fn default_retry_max() -> Seconds {
    Seconds(Duration::from_secs(300))
}
fn default_idle_exit() -> Seconds {
    Seconds(Duration::from_secs(30))
}
fn default_batch_max() -> usize {
    500
}
fn default_max_pending() -> usize {
    50_000
}
fn default_alert_after() -> Seconds {
    Seconds(Duration::from_secs(600))
}
fn default_dead_retention() -> Seconds {
    Seconds(Duration::from_secs(30 * 86_400))
}

/// A duration given as seconds (`30`, `0.5`) or in words (`"5m"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

/// Seconds (a number) or a duration in words (a string).
impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Seconds".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["number", "string"] })
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let bad = |what: &dyn std::fmt::Display| {
            serde::de::Error::custom(format!("`{what}` is not a duration (seconds, or like \"5m\", \"1h 30m\")"))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self(Duration::from_secs(n))),
            Raw::Float(f) if (0.0..1e12).contains(&f) => Ok(Self(Duration::from_secs_f64(f))),
            Raw::Float(f) => Err(bad(&f)),
            Raw::Text(t) => match t.trim().parse::<f64>() {
                Ok(f) if (0.0..1e12).contains(&f) => Ok(Self(Duration::from_secs_f64(f))),
                _ => humantime::parse_duration(t.trim()).map(Self).map_err(|_| bad(&t)),
            },
        }
    }
}

/// One route: where a jail's events go.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// the sinks that get the jail's events
    pub sinks: Vec<String>,
    /// which of `start`, `stop`, `ban`, `unban` to send (default all)
    #[serde(default = "all_events")]
    pub events: Vec<EventKind>,
    /// announce bans restored at Fail2Ban's restart (default `false`)
    ///
    /// Off by default so that a restart does not flood the channel; when on, a digest says
    /// how many bans were restored.
    #[serde(default)]
    pub restored: bool,
}

fn all_events() -> Vec<EventKind> {
    EventKind::ALL.to_vec()
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

    /// Every path whose change could change the config, given the `files` that were read:
    /// those files, and for the default directory also `config.toml` and `conf.d` themselves
    /// (a file added to or removed from `conf.d` changes the directory).
    pub fn watched(&self, files: &[PathBuf]) -> Vec<PathBuf> {
        let mut paths = match self {
            Self::Explicit(_) => Vec::new(),
            Self::Default(dir) => vec![dir.join("config.toml"), dir.join("conf.d")],
        };
        for f in files {
            if !paths.contains(f) {
                paths.push(f.clone());
            }
        }
        paths
    }

    /// The files to merge, lowest precedence first; the first that cannot be read is the error.
    pub(crate) fn files(&self) -> Result<Vec<PathBuf>, String> {
        let (files, mut unreadable) = self.readable_files();
        if unreadable.is_empty() {
            Ok(files)
        } else {
            Err(unreadable.swap_remove(0))
        }
    }

    /// The files to merge that can be read, lowest precedence first, and one line for each
    /// file (or `conf.d`) that cannot (`check` names them all).
    pub(crate) fn readable_files(&self) -> (Vec<PathBuf>, Vec<String>) {
        let mut unreadable = Vec::new();
        let mut readable = |f: &PathBuf| match std::fs::File::open(f) {
            Ok(_) => true,
            Err(e) => {
                unreadable.push(format!("cannot read config file {}: {e}", f.display()));
                false
            }
        };
        let files = match self {
            Self::Explicit(files) => files.iter().filter(|f| readable(f)).cloned().collect(),
            Self::Default(dir) => {
                let mut files = Vec::new();
                let main = dir.join("config.toml");
                if main.exists() && readable(&main) {
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
                    Err(e) => unreadable.push(format!("cannot read config directory {}: {e}", confd.display())),
                }
                files
            }
        };
        (files, unreadable)
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
/// environment variable), the key and the problem: the first of those [`check`] finds.
pub fn load(sources: &Sources) -> Result<Loaded, String> {
    let files = sources.files()?;
    let figment = merge(files.is_empty(), &files);
    let mut config: Config = match figment.extract() {
        Ok(config) => config,
        // Only a config that does not load pays for the search for every problem, which
        // words the first one as `check` does.
        Err(e) => return Err(check(sources).problems.into_iter().next().unwrap_or_else(|| describe(&e, &figment))),
    };
    validate(&config, &figment)?;
    // Another set of config files may already use this spool: then this set gets its own.
    config.delivery.spool = crate::sets::resolve(&config.delivery.spool, sources);
    Ok(Loaded { config, files })
}

/// The spool a config that does not load would use, as far as can be told: its
/// `delivery.spool` when the files and environment still say it (whatever else is wrong),
/// else the default; then per set of config files, as [`load`] does. `notify` spools an
/// event here unrouted, and the worker of the same files serves it.
pub fn fallback_spool(sources: &Sources) -> PathBuf {
    let spool = lenient::<PathBuf>(sources, "delivery.spool").unwrap_or_else(default_spool);
    crate::sets::resolve(&spool, sources)
}

/// The `host` a config that does not load names, as far as can be told (for the events it
/// spools unrouted).
pub fn fallback_host(sources: &Sources) -> Option<String> {
    lenient::<String>(sources, "host").filter(|h| !h.trim().is_empty())
}

/// One key of a config that does not load: read file by file, later ones winning, then the
/// environment, as the config is merged, so that a mistake in one file (even a syntax error)
/// or in another key does not hide it.
fn lenient<T: serde::de::DeserializeOwned>(sources: &Sources, key: &str) -> Option<T> {
    let files: Vec<PathBuf> = match sources.files() {
        Ok(files) => files,
        Err(_) => match sources {
            Sources::Explicit(files) => files.iter().filter(|f| std::fs::File::open(f).is_ok()).cloned().collect(),
            Sources::Default(dir) => vec![dir.join("config.toml")].into_iter().filter(|f| f.exists()).collect(),
        },
    };
    let find = |figment: Figment| figment.find_value(key).ok().and_then(|v| v.deserialize::<T>().ok());
    let mut found = None;
    for f in &files {
        if let Some(v) = find(Figment::new().merge(Toml::file_exact(f))) {
            found = Some(v);
        }
    }
    find(Figment::new().merge(env_provider())).or(found)
}

/// The sources as one figment: the embedded default (when no config file exists at all), the
/// files, then the environment.
fn merge(embedded: bool, files: &[PathBuf]) -> Figment {
    let mut figment = Figment::new();
    if embedded {
        figment = figment.merge(Toml::string(EMBEDDED_DEFAULT));
    }
    for f in files {
        figment = figment.merge(Toml::file_exact(f));
    }
    figment.merge(env_provider())
}

fn env_provider() -> Env {
    // `__` separates keys; the program's own settings (which files, logging, the run
    // directory) are not config keys.
    let settings: Vec<String> = layout::SETTINGS.iter().map(|(name, _)| setting_key(name)).collect();
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    Env::prefixed(layout::ENV_PREFIX).split("__").ignore(&settings)
}

/// A setting's name as figment's environment provider sees it (`F2B_NOTIFY_RUN_DIR` →
/// `run_dir`).
fn setting_key(name: &str) -> String {
    name.strip_prefix(layout::ENV_PREFIX).unwrap_or(name).to_ascii_lowercase()
}

/// One line for a figment error: where (file or environment variable), which key, what.
fn describe(err: &figment::Error, figment: &Figment) -> String {
    let (path, what) = explain(err);
    let key = path.join(".");
    // The key's own origin when it exists (an unknown field, a secret from the environment in
    // a sink table from a file); else the origin of the value the error came from.
    let place = place_from(figment.find_metadata(&key).or(err.metadata.as_ref()), &key);
    if key.is_empty() {
        format!("{place}: {what}")
    } else {
        format!("{place}: key `{key}`: {what}")
    }
}

/// What a figment error says, without where: the path of the key it is about, and one line.
///
/// A secret's value is never in it, whatever its type: `Secret` refuses anything but a string
/// with a message that names the key and the type only (see `f2b_notify_core::Secret`).
/// Sinks are internally tagged enums, so figment's path stops at `sinks.NAME`; the key an
/// unknown field or a secret's message names is put back on the path here. A mistyped field
/// or value gets "did you mean" with the closest of those serde expected.
fn explain(err: &figment::Error) -> (Vec<String>, String) {
    use figment::error::Kind;
    let mut path = err.path.clone();
    let what = match &err.kind {
        Kind::UnknownField(found, expected) => {
            if path.last() != Some(found) {
                path.push(found.clone());
            }
            match crate::suggest::closest(found, expected.iter().copied()) {
                Some(near) => format!("unknown field `{found}` (did you mean `{near}`?)"),
                None if expected.is_empty() => format!("unknown field `{found}`: this table takes no keys"),
                None => format!("unknown field `{found}`: expected {}", one_of(expected)),
            }
        }
        Kind::UnknownVariant(found, expected) => format!(
            "`{found}` is not one of {}{}",
            one_of(expected),
            crate::suggest::did_you_mean(found, expected.iter().copied())
        ),
        kind => {
            let mut what = one_line(&kind.to_string());
            if let Some(secret) = Secret::key_of_type_error(&what).map(str::to_owned) {
                if path.last() != Some(&secret) {
                    path.push(secret.clone());
                }
                what = what.strip_prefix(&format!("`{secret}` ")).unwrap_or(&what).to_owned();
            }
            what
        }
    };
    (path, what)
}

/// "`a`, `b` or `c`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Where a value came from, from its provider's metadata: the file, the environment variables
/// that set `key` (or something below it), or what figment calls the provider.
fn place_from(metadata: Option<&figment::Metadata>, key: &str) -> String {
    match metadata {
        Some(md) if md.source.is_none() && md.name.contains("environment") => env_vars_under(key),
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            Some(other) => other.to_string(),
            None => md.name.to_string(),
        },
        None => "config".to_owned(),
    }
}

/// Names the `F2B_NOTIFY_…` variables that set `key` or something below it, as typed.
fn env_vars_under(key: &str) -> String {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            let Some(rest) = k.strip_prefix(layout::ENV_PREFIX) else { return false };
            let path = rest.to_ascii_lowercase().replace("__", ".");
            !layout::is_setting(k) && (key.is_empty() || path == key || path.starts_with(&format!("{key}.")))
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
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | ")).collect();
    match lines.as_slice() {
        [] => text.trim().to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first}: {}", rest.join(" ")),
    }
}

/// Where a key's value came from, for messages about keys that parsed but do not make sense.
fn place_of(figment: &Figment, key: &str) -> String {
    place_from(figment.find_metadata(key), key)
}

fn validate(config: &Config, figment: &Figment) -> Result<(), String> {
    let defined: Vec<&str> = config.sinks.keys().map(String::as_str).collect();
    validate_all(config, figment, &defined).into_iter().next().map_or(Ok(()), Err)
}

/// Every problem of a config that parsed (`defined`: the sink names the config has, also
/// those whose settings did not parse, which are problems of their own), one line each.
fn validate_all(config: &Config, figment: &Figment, defined: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for name in defined {
        let key = format!("sinks.{name}");
        if !valid_sink_name(name) {
            problems.push(format!(
                "{}: key `{key}`: sink name `{name}` may hold only a-z, 0-9 and _",
                place_of(figment, &key)
            ));
        }
    }
    for (name, sink) in &config.sinks {
        let key = format!("sinks.{name}");
        if !sink.is_built() {
            let ty = sink.type_name();
            problems.push(format!(
                "{}: key `{key}.type`: sink `{name}` has type `{ty}`, which this build does not include: rebuild with `--features {ty}`",
                place_of(figment, &format!("{key}.type"))
            ));
        }
    }
    // A route or pacing naming a sink the config does not have: the line says which it has.
    let no_sink = |sink: &str| {
        let near = crate::suggest::closest(sink, defined.iter().copied());
        let known = if defined.is_empty() { "none".to_owned() } else { defined.join(", ") };
        match near {
            Some(near) => format!("no sink named `{sink}`; did you mean `{near}`? (defined sinks: {known})"),
            None => format!("no sink named `{sink}` (defined sinks: {known})"),
        }
    };
    for name in config.delivery.min_interval.keys() {
        if !defined.contains(&name.as_str()) {
            let key = format!("delivery.min_interval.{name}");
            problems.push(format!("{}: key `{key}`: {}", place_of(figment, &key), no_sink(name)));
        }
    }
    for name in &config.delivery.alert {
        if !defined.contains(&name.as_str()) {
            problems.push(format!("{}: key `delivery.alert`: {}", place_of(figment, "delivery.alert"), no_sink(name)));
        }
    }
    if !config.delivery.spool.is_absolute() {
        problems.push(format!(
            "{}: key `delivery.spool`: `{}` must be an absolute path",
            place_of(figment, "delivery.spool"),
            config.delivery.spool.display()
        ));
    }
    if config.delivery.batch_max == 0 {
        problems
            .push(format!("{}: key `delivery.batch_max`: must be at least 1", place_of(figment, "delivery.batch_max")));
    }
    for (pattern, route) in &config.jails {
        let key = format!("jails.{pattern}");
        if pattern.is_empty() {
            problems.push(format!("{}: key `jails`: a jail pattern is empty", place_of(figment, "jails")));
            continue;
        }
        if let Err(e) = glob::Pattern::new(pattern) {
            problems.push(format!("{}: key `{key}`: `{pattern}` is not a valid glob: {e}", place_of(figment, &key)));
        }
        for sink in &route.sinks {
            if !defined.contains(&sink.as_str()) {
                problems.push(format!(
                    "{}: key `{key}.sinks`: {}",
                    place_of(figment, &format!("{key}.sinks")),
                    no_sink(sink)
                ));
            }
        }
    }
    problems
}

/// The names of the config files in the order they were read, for `check`.
pub fn describe_files(files: &[PathBuf]) -> String {
    if files.is_empty() {
        "built-in default (no config file found): every event goes to stdout".to_owned()
    } else {
        files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err, clippy::type_complexity)] // figment::Jail's API; test tables
mod tests {
    use super::*;
    use figment::Jail;

    /// Runs `f` inside a figment Jail (a temp dir as cwd, environment restored afterwards,
    /// one at a time) on the given files as `--config` sources, with the Jail's directory
    /// (ending in `/`) for taking it out of messages.
    fn in_jail<T>(files: &[(&str, &str)], env: &[(&str, &str)], f: impl FnOnce(Sources, &str) -> T) -> T {
        let mut f = Some(f);
        let mut out = None;
        Jail::expect_with(|jail| {
            for (name, body) in files {
                jail.create_file(name, body)?;
            }
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let paths: Vec<PathBuf> = files.iter().map(|(n, _)| jail.directory().join(n)).collect();
            let dir = format!("{}/", jail.directory().display());
            out = f.take().map(|f| f(Sources::Explicit(paths), &dir));
            Ok(())
        });
        out.expect("jail ran")
    }

    /// The load result for the given files, in a Jail.
    fn load_in_jail(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Loaded, String> {
        in_jail(files, env, |sources, _| load(&sources))
    }

    fn err(files: &[(&str, &str)], env: &[(&str, &str)]) -> String {
        load_in_jail(files, env).expect_err("config should be rejected")
    }

    const BASE: &str = r#"
host = "from-file-1"
[sinks.console]
type = "stdout"
format = "text"
[jails.sshd]
sinks = ["console"]
"#;

    // Reads the stdout sink's own settings back: only in a build that has it.
    #[cfg(feature = "stdout")]
    #[test]
    fn merge_order_file_then_later_file_then_env() {
        let second = "host = \"from-file-2\"\n[sinks.console]\nformat = \"json\"\n";
        let loaded = load_in_jail(&[("a.toml", BASE), ("b.toml", second)], &[]).unwrap();
        assert_eq!(loaded.config.host.as_deref(), Some("from-file-2"));
        match &loaded.config.sinks["console"] {
            SinkConfig::Stdout(c) => assert_eq!(c.format, f2b_notify_stdout::Format::Json),
            other => panic!("{other:?}"),
        }
        // The first file's route survives the second file.
        assert_eq!(loaded.config.jails["sshd"].sinks, ["console"]);
        let loaded = load_in_jail(
            &[("a.toml", BASE), ("b.toml", second)],
            &[("F2B_NOTIFY_HOST", "from-env"), ("F2B_NOTIFY_SINKS__CONSOLE__FORMAT", "text")],
        )
        .unwrap();
        assert_eq!(loaded.config.host.as_deref(), Some("from-env"));
        match &loaded.config.sinks["console"] {
            SinkConfig::Stdout(c) => assert_eq!(c.format, f2b_notify_stdout::Format::Text),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_can_add_routes_and_defaults_apply() {
        let loaded = load_in_jail(&[("a.toml", BASE)], &[("F2B_NOTIFY_JAILS__WEB__SINKS", "[console]")]).unwrap();
        let web = &loaded.config.jails["web"];
        assert_eq!(web.sinks, ["console"]);
        assert_eq!(web.events, EventKind::ALL);
        assert!(!web.restored);
    }

    #[test]
    fn default_dir_and_embedded_default() {
        Jail::expect_with(|jail| {
            let dir = jail.directory().join("etc");
            std::fs::create_dir_all(dir.join("conf.d")).unwrap();
            // Nothing there: the embedded default sends everything to stdout.
            let loaded = load(&Sources::Default(dir.clone())).unwrap();
            assert!(loaded.files.is_empty());
            assert_eq!(loaded.config.jails["*"].sinks, ["stdout"]);
            // config.toml, then conf.d in name order; a non-.toml file is ignored.
            std::fs::write(dir.join("config.toml"), BASE).unwrap();
            std::fs::write(dir.join("conf.d/20-b.toml"), "host = \"b\"\n").unwrap();
            std::fs::write(dir.join("conf.d/10-a.toml"), "host = \"a\"\n").unwrap();
            std::fs::write(dir.join("conf.d/30-c.toml.bak"), "host = \"bak\"\n").unwrap();
            let loaded = load(&Sources::Default(dir.clone())).unwrap();
            assert_eq!(loaded.config.host.as_deref(), Some("b"));
            assert_eq!(loaded.files.len(), 3);
            assert!(!loaded.config.jails.contains_key("*"), "the embedded default is not mixed into a real config");
            Ok(())
        });
    }

    #[test]
    fn sources_precedence() {
        Jail::expect_with(|jail| {
            jail.set_env(CONFIG_ENV, "/a.toml:/b.toml");
            assert_eq!(Sources::from_args(&[]), Sources::Explicit(vec!["/a.toml".into(), "/b.toml".into()]));
            assert_eq!(Sources::from_args(&["/c.toml".into()]), Sources::Explicit(vec!["/c.toml".into()]));
            jail.set_env(CONFIG_ENV, "");
            jail.set_env(CONFIG_DIR_ENV, "/somewhere");
            assert_eq!(Sources::from_args(&[]), Sources::Default("/somewhere".into()));
            Ok(())
        });
    }

    #[test]
    fn every_config_error_is_one_clear_line() {
        let cases: Vec<(Vec<(&str, &str)>, Vec<(&str, &str)>, Vec<&str>)> = vec![
            // unknown top-level key
            (vec![("a.toml", "sinkz = 1\n")], vec![], vec!["a.toml", "key `sinkz`", "unknown field"]),
            // unknown key in a sink
            (
                vec![("a.toml", "[sinks.c]\ntype = \"stdout\"\nformatt = \"x\"\n")],
                vec![],
                vec!["a.toml", "sinks.c", "formatt"],
            ),
            // unknown key in a route
            (
                vec![("a.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.sshd]\nsinks = [\"c\"]\nevent = [\"ban\"]\n")],
                vec![],
                vec!["a.toml", "jails.sshd", "event"],
            ),
            // unknown sink type
            (vec![("a.toml", "[sinks.c]\ntype = \"pager\"\n")], vec![], vec!["a.toml", "sinks.c", "pager"]),
            // missing type
            (vec![("a.toml", "[sinks.c]\nformat = \"json\"\n")], vec![], vec!["a.toml", "sinks.c", "type"]),
            // route to a missing sink
            (
                vec![("a.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.sshd]\nsinks = [\"ops\"]\n")],
                vec![],
                vec!["a.toml", "jails.sshd.sinks", "no sink named `ops`", "defined sinks: c"],
            ),
            // unknown event in a route
            (
                vec![("a.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.sshd]\nsinks = [\"c\"]\nevents = [\"bann\"]\n")],
                vec![],
                vec!["a.toml", "jails.sshd", "bann"],
            ),
            // bad sink name
            (
                vec![("a.toml", "[sinks.Ops]\ntype = \"stdout\"\n")],
                vec![],
                vec!["a.toml", "sinks.Ops", "a-z, 0-9 and _"],
            ),
            // bad glob
            (
                vec![("a.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.\"nginx-[\"]\nsinks = [\"c\"]\n")],
                vec![],
                vec!["a.toml", "nginx-[", "not a valid glob"],
            ),
            // malformed TOML
            (vec![("a.toml", "[sinks.c\n")], vec![], vec!["a.toml", "TOML parse error"]),
            // a bad value in the later of two files names that file
            (
                vec![("a.toml", BASE), ("b.toml", "[jails.sshd]\nrestored = \"maybe\"\n")],
                vec![],
                vec!["b.toml", "jails.sshd.restored", "maybe"],
            ),
            // bad environment override names the variable
            (
                vec![("a.toml", BASE)],
                vec![("F2B_NOTIFY_JAILS__SSHD__RESTORED", "maybe")],
                vec!["F2B_NOTIFY_JAILS__SSHD__RESTORED", "jails.sshd.restored", "maybe"],
            ),
            (
                vec![("a.toml", BASE)],
                vec![("F2B_NOTIFY_SINKS__CONSOLE__FORMAT", "xml")],
                vec!["F2B_NOTIFY_SINKS__CONSOLE__FORMAT", "xml"],
            ),
        ];
        for (files, env, wants) in cases {
            let msg = err(&files, &env);
            assert!(!msg.contains('\n'), "not one line: {msg}");
            for want in wants {
                assert!(msg.contains(want), "{msg:?} lacks {want:?}");
            }
        }
    }

    /// A secret of the wrong type (a number, a boolean, a table…), in a file or in the
    /// environment: the error names the place, the key and the type it must be, and never
    /// the value, which would otherwise be printed on every action.
    #[test]
    fn a_secret_of_the_wrong_type_is_named_never_shown() {
        let route = "[jails.\"*\"]\nsinks = [\"x\"]\n";
        let mut secrets: Vec<(&str, &str)> = Vec::new();
        if cfg!(feature = "slack-webhook") {
            secrets.push(("slack-webhook", "url"));
        }
        if cfg!(feature = "slack-api") {
            secrets.push(("slack-api", "token"));
        }
        if cfg!(feature = "email") {
            secrets.push(("email", "password"));
        }
        // (TOML value, the same in the environment, what the message says it is, the text
        // that must not appear)
        let values: [(&str, &str, &str, &[&str]); 6] = [
            ("123456789", "123456789", "an integer", &["123456789"]),
            ("-987654321", "-987654321", "an integer", &["987654321"]),
            ("31415.9265", "31415.9265", "a number", &["31415"]),
            ("true", "true", "a boolean", &["true"]),
            ("{ a = 424242 }", "{a=424242}", "a table", &["424242", "a ="]),
            ("[ 7777777 ]", "[7777777]", "a list", &["7777777"]),
        ];
        for (ty, key) in &secrets {
            for (toml, env, found, hidden) in values {
                let file = format!("[sinks.x]\ntype = \"{ty}\"\n{key} = {toml}\n{route}");
                let msg = err(&[("a.toml", &file)], &[]);
                let want = format!("key `sinks.x.{key}`: must be a string, not {found}");
                assert!(msg.contains("a.toml") && msg.contains(&want), "{ty} {toml}: {msg}");
                assert!(msg.contains("never shown") && !msg.contains('\n'), "{msg}");
                for h in hidden {
                    assert!(!msg.contains(h), "{ty} {toml}: the value leaked: {msg}");
                }

                let var = format!("F2B_NOTIFY_SINKS__X__{}", key.to_ascii_uppercase());
                let file = format!("[sinks.x]\ntype = \"{ty}\"\n{route}");
                let msg = err(&[("a.toml", &file)], &[(&var, env)]);
                assert!(
                    msg.contains(&format!("environment variable {var}: key `sinks.x.{key}`")),
                    "{var}={env}: {msg}"
                );
                assert!(msg.contains(&format!("must be a string, not {found}")), "{var}={env}: {msg}");
                for h in hidden {
                    assert!(!msg.contains(h), "{var}={env}: the value leaked: {msg}");
                }
            }
        }
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let msg = load(&Sources::Explicit(vec!["/nonexistent/f2b.toml".into()])).unwrap_err();
        assert!(msg.contains("cannot read config file /nonexistent/f2b.toml"), "{msg}");
    }

    /// [`check`] in a Jail: its problems with the Jail's directory taken out of the paths, and
    /// what `load` says about the same config.
    fn check_in_jail(files: &[(&str, &str)], env: &[(&str, &str)]) -> (Vec<String>, Result<Loaded, String>) {
        in_jail(files, env, |sources, dir| {
            let problems = check(&sources).problems.iter().map(|p| p.replace(dir, "")).collect();
            (problems, load(&sources).map_err(|e| e.replace(dir, "")))
        })
    }

    /// Every mistake is found in one run, each on its own line with its own file and key,
    /// also several in one table, one in a file after another with a syntax error, and a sink
    /// whose table did not read at all; `load` says the first of them, worded the same way.
    #[test]
    fn check_finds_every_problem_each_with_its_file_and_key() {
        let a = r#"
hots = "x"
[sinks.console]
type = "stdout"
formatt = "json"
format = "xml"
[sinks.pager]
type = "stdot"
[sinks.notype]
format = "json"
[sinks.tpl]
type = "stdout"
[sinks.tpl.templates]
ban = 5
bann = "x"
[jails.sshd]
sinks = ["console", "consol"]
events = ["bann", "stop"]
[jails.web]
sinks = 7
"#;
        let b = "[delivery]\nmax_age = \"forever\"\nretry_mx = 5\nbatch_max = 0\nalert = [\"pagr\"]\n[delivery.min_interval]\nconsole = 1\nconsoel = 2\n";
        let broken = "[sinks.c\n";
        let (problems, loaded) = check_in_jail(&[("a.toml", a), ("broken.toml", broken), ("b.toml", b)], &[]);
        // Every registered type, as the message lists them (a new sink adds one).
        let types: Vec<String> = crate::registry::TYPES.iter().map(|(ty, _)| format!("`{ty}`")).collect();
        let (last, rest) = types.split_last().expect("sink types");
        let bad_type = format!(
            "a.toml: key `sinks.pager.type`: `stdot` is not one of {} or {last} (did you mean `stdout`?)",
            rest.join(", ")
        );
        let want = [
            "broken.toml: TOML parse error at line 1",
            "b.toml: key `delivery.max_age`: `forever` is not a duration",
            "b.toml: key `delivery.retry_mx`: unknown field `retry_mx` (did you mean `retry_max`?)",
            "a.toml: key `hots`: unknown field `hots` (did you mean `host`?)",
            "a.toml: key `jails.sshd.events`: `bann` is not one of `start`, `stop`, `ban` or `unban` (did you mean `ban`?)",
            "a.toml: key `jails.web.sinks`: invalid type: found signed int `7`, expected a sequence",
            "a.toml: key `sinks.console.format`: `xml` is not one of `text` or `json`",
            "a.toml: key `sinks.console.formatt`: unknown field `formatt` (did you mean `format`?)",
            "a.toml: key `sinks.notype`: missing field `type`",
            bad_type.as_str(),
            "a.toml: key `sinks.tpl.templates.ban`: invalid type: found signed int `5`, expected a string",
            "a.toml: key `sinks.tpl.templates.bann`: unknown field `bann` (did you mean `ban`?)",
            "b.toml: key `delivery.min_interval.consoel`: no sink named `consoel`; did you mean `console`? (defined sinks: console, notype, pager, tpl)",
            "b.toml: key `delivery.alert`: no sink named `pagr`; did you mean `pager`? (defined sinks: console, notype, pager, tpl)",
            "b.toml: key `delivery.batch_max`: must be at least 1",
            "a.toml: key `jails.sshd.sinks`: no sink named `consol`; did you mean `console`? (defined sinks: console, notype, pager, tpl)",
        ];
        for (got, want) in problems.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} does not start with {want:?}\nall: {problems:#?}");
        }
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        assert_eq!(loaded.unwrap_err(), problems[0]);
        // Without the broken file, `load` stops at the first problem of the settings.
        let (problems, loaded) = check_in_jail(&[("a.toml", a), ("b.toml", b)], &[]);
        assert_eq!(problems.len(), want.len() - 1, "{problems:#?}");
        assert_eq!(loaded.unwrap_err(), problems[0]);
        assert!(problems[0].starts_with(want[1]), "{problems:?}");
    }

    /// A good config has no problem, and `check` reads it as `load` does.
    #[test]
    fn check_agrees_with_load_on_a_good_config() {
        let second = "host = \"from-file-2\"\n[sinks.console]\nformat = \"json\"\n[delivery]\nmax_age = \"6h\"\n";
        let (problems, loaded) = check_in_jail(&[("a.toml", BASE), ("b.toml", second)], &[("F2B_NOTIFY_HOST", "env")]);
        assert_eq!(problems, Vec::<String>::new());
        let loaded = loaded.unwrap();
        assert_eq!(loaded.config.host.as_deref(), Some("env"));
        assert_eq!(loaded.config.delivery.max_age, Seconds(Duration::from_secs(6 * 3600)));
    }

    /// `F2B_NOTIFY_SINKS__OPZ__URL` when no file has `[sinks.opz]`: the variable is named and
    /// the problem said as it is (and the defined sink it may have meant), not "missing field
    /// `type`"; when a file defines the sink, the same variable overrides it.
    #[test]
    fn an_override_of_a_sink_no_file_defines_says_so() {
        let file = "[sinks.ops]\ntype = \"stdout\"\n[jails.\"*\"]\nsinks = [\"ops\"]\n";
        let (problems, loaded) = check_in_jail(&[("a.toml", file)], &[("F2B_NOTIFY_SINKS__OPZ__FORMAT", "json")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let want = "environment variable F2B_NOTIFY_SINKS__OPZ__FORMAT: key `sinks.opz.format`: no config file defines a sink `opz` for it to override; did you mean `ops`? (defined sinks: ops); a sink from the environment alone needs its type too (F2B_NOTIFY_SINKS__OPZ__TYPE)";
        assert_eq!(problems[0], want);
        assert_eq!(loaded.unwrap_err(), want);
        assert!(!problems[0].contains("missing field"), "{problems:?}");
        // Several variables for it: all named, the table is the key; no near name, no guess.
        let (problems, _) = check_in_jail(
            &[("a.toml", file)],
            &[("F2B_NOTIFY_SINKS__PAGER__FORMAT", "json"), ("F2B_NOTIFY_SINKS__PAGER__PATH", "/tmp/x")],
        );
        assert!(
            problems[0].starts_with("environment variables F2B_NOTIFY_SINKS__PAGER__FORMAT, F2B_NOTIFY_SINKS__PAGER__PATH: key `sinks.pager`: no config file defines a sink `pager` for it to override (defined sinks: ops)"),
            "{problems:?}"
        );
        // With its type, the environment alone makes a sink.
        let env = [("F2B_NOTIFY_SINKS__OPZ__TYPE", "stdout"), ("F2B_NOTIFY_SINKS__OPZ__FORMAT", "json")];
        let (problems, loaded) = check_in_jail(&[("a.toml", file)], &env);
        assert_eq!(problems, Vec::<String>::new());
        assert!(loaded.unwrap().config.sinks.contains_key("opz"));
        // A file without the type, the environment adding to it: the file is named.
        let (problems, _) =
            check_in_jail(&[("a.toml", "[sinks.ops]\nformat = \"json\"\n")], &[("F2B_NOTIFY_SINKS__OPS__PATH", "/x")]);
        assert_eq!(problems, ["a.toml: key `sinks.ops`: missing field `type`"]);
        // A table in two files: the first file that has it is named.
        let (problems, _) = check_in_jail(
            // (`format`, from b.toml, comes first in the table: the file order decides.)
            &[("a.toml", "[sinks.ops]\npath = \"/x\"\n"), ("b.toml", "[sinks.ops]\nformat = \"json\"\n")],
            &[],
        );
        assert_eq!(problems, ["a.toml: key `sinks.ops`: missing field `type`"]);
    }

    /// A secret of the wrong type among other problems: named with its key and place, never
    /// shown, and the other problems still found.
    #[test]
    fn check_never_shows_a_secret() {
        let mut cases: Vec<(&str, &str)> = Vec::new();
        if cfg!(feature = "slack-webhook") {
            cases.push(("slack-webhook", "url"));
        }
        if cfg!(feature = "slack-api") {
            cases.push(("slack-api", "token"));
        }
        for (ty, key) in cases {
            let file =
                format!("[sinks.x]\ntype = \"{ty}\"\n{key} = 987654321\ncolour = 1\n[jails.sshd]\nsinks = [\"y\"]\n");
            let var = format!("F2B_NOTIFY_SINKS__X__{}", key.to_ascii_uppercase());
            for env in [vec![], vec![(var.as_str(), "{a=424242}")]] {
                let (problems, _) = check_in_jail(&[("a.toml", &file)], &env);
                let place = if env.is_empty() { "a.toml".to_owned() } else { format!("environment variable {var}") };
                let found = if env.is_empty() { "an integer" } else { "a table" };
                assert!(
                    problems.iter().any(|p| p.starts_with("a.toml: key `sinks.x.colour`: unknown field `colour`")),
                    "{problems:?}"
                );
                assert!(
                    problems.iter().any(|p| p.starts_with(&format!("{place}: key `sinks.x.{key}`: must be a string, not {found}"))),
                    "{problems:?}"
                );
                assert!(problems.iter().any(|p| p.contains("no sink named `y`")), "{problems:?}");
                for p in &problems {
                    assert!(!p.contains("987654321") && !p.contains("424242"), "the value leaked: {p}");
                }
            }
        }
    }
}
