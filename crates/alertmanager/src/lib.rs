//! The Prometheus Alertmanager sink: every ban becomes an alert posted to Alertmanager's API
//! v2, and Alertmanager does what a fleet needs and f2b-notify should not grow itself:
//! grouping (one message when the same address hits ten hosts), deduplication across a highly
//! available cluster, silences, inhibition, and routing to Slack, mail, PagerDuty, webhooks….
//!
//! # What this relies on (Alertmanager's contract)
//!
//! - `POST {base}/api/v2/alerts` takes a JSON list of postable alerts, each `{labels,
//!   annotations, startsAt, endsAt, generatorURL}`; `labels` is required, label sets are
//!   objects of strings, times are `date-time` (RFC 3339). 200 is success; 400 (a string) is a
//!   bad alert; 500 an internal error.
//!   <https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml>. What a
//!   client does is in <https://prometheus.io/docs/alerting/latest/clients/>
//!   (`docs/clients.md`): labels identify an alert and deduplicate it, annotations are always
//!   the most recently received, `endsAt` is set "if the end time of an alert is known", and
//!   clients "are expected to continuously re-send alerts as long as they are still active".
//!   f2b-notify departs from that last point: it posts a ban when it happens (and again when
//!   Fail2Ban restores it at a restart) with the ban's known end, which keeps the alert
//!   firing until then; an Alertmanager that restarts forgets it (alerts live in memory),
//!   while its cluster peers still have it. API v1 was removed in Alertmanager 0.27: v2 only.
//! - An alert is identified by its label set (its fingerprint). A post of an alert that exists
//!   merges into it: the earliest `startsAt` stays, the newest post's annotations and `endsAt`
//!   win, so posting the same alert again is harmless (idempotent) and an `endsAt` of now
//!   resolves it. An alert without `endsAt` resolves by itself after `resolve_timeout`
//!   (default 5 min): each ban therefore carries its own end. Labels with an empty value are
//!   dropped, and of a post with some invalid alerts the valid ones are kept (a 400 then
//!   names the others). `postAlertsHandler` in
//!   <https://github.com/prometheus/alertmanager/blob/main/api/v2/api.go>, `Alert.Merge` in
//!   `types/types.go`, `Alert.Validate` in prometheus/common `model/alert.go`.
//! - High availability: every client posts every alert to **every** Alertmanager of the
//!   cluster, not to a load balancer; the nodes gossip which notifications went out, so one
//!   notification leaves the cluster. "It's important not to load balance traffic between
//!   Prometheus and its Alertmanagers, but instead, point Prometheus to a list of all
//!   Alertmanagers": <https://prometheus.io/docs/alerting/latest/alertmanager/#high-availability>.
//!   Prometheus posts in batches of 64 alerts, to all Alertmanagers at once, and counts a
//!   batch as sent when at least one of them took it (`maxBatchSize`, `sendAll` in
//!   <https://github.com/prometheus/prometheus/blob/main/notifier/notifier.go>).
//! - Basic auth is Alertmanager's own (its `--web.config.file`, the Prometheus exporter
//!   toolkit, which answers 401 `Unauthorized` to wrong credentials); a bearer token is for a
//!   proxy in front of it. <https://prometheus.io/docs/alerting/latest/https/>
//!
//! # What this sink does with it
//!
//! A ban is `Fail2BanBan{jail, ip, host}` firing from the ban's time to its end; the unban is
//! the same alert with `endsAt` now. Jail starts and stops are no alerts unless `jail_alerts`
//! (then `Fail2BanJail{jail, host}` fires while a jail is stopped). See [`alert`] for the
//! layout. A digest (a storm) is every event's alert in one post (chunked by 64, like
//! Prometheus). Every post goes to all `urls` at once; the alerts are out as soon as one node
//! took them (it notifies), and the send is delivered once every node has them, or once the
//! nodes that did not take them count as down (failing for `down_after`, default 60 s); what
//! a down node missed is kept for its return. See [`AlertmanagerSink`] for the whole rule and
//! why; when no node took the alerts, the send fails, transient or permanent as the nodes
//! answered, and the router retries it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use f2b_notify_core::OneOrMany;
use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::header::{HeaderValue, AUTHORIZATION};
use f2b_notify_http::{
    classify_status, cleartext_warning, describe, exchange, parse_url, secret_header, Answer, Client, Timeout, Url,
    UrlKind,
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub mod alert;
#[cfg(test)]
mod tests;

/// Alerts in one post at most, as Prometheus sends them (`maxBatchSize`).
pub const MAX_BATCH: usize = 64;
/// Alerts kept at most for one node that missed them; past it the oldest are dropped (and
/// logged).
pub const MAX_BACKLOG: usize = 10_000;
/// How long a node may fail while others take the alerts before it counts as down, by default.
pub const DOWN_AFTER: Duration = Duration::from_secs(60);
/// The most `down_after` may be.
pub const MAX_DOWN_AFTER: Duration = Duration::from_secs(3600);
/// The wait asked of the router while a node that is not yet down did not take the alerts.
pub const RETRY_MISSING: Duration = Duration::from_secs(1);

/// Configuration of a `type = "alertmanager"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Alertmanagers' base URLs, one or a list: every node of a cluster
    /// (`["http://am1:9093", "http://am2:9093"]`), with the route prefix if one is set
    /// (`https://example.com/alertmanager`). Every alert goes to all of them; it is delivered
    /// when one took it. No credentials in them: use `username`/`password` or `token`.
    #[serde(default)]
    pub urls: OneOrMany,
    /// User name for basic auth (Alertmanager's `--web.config.file` `basic_auth_users`).
    pub username: Option<String>,
    /// Password for basic auth. A secret: prefer `password_file` or
    /// `F2B_NOTIFY_SINKS__NAME__PASSWORD`.
    #[serde(default, deserialize_with = "password")]
    pub password: Option<Secret>,
    /// A file holding the basic-auth password (mode 0600; `check` warns when others can read it).
    pub password_file: Option<PathBuf>,
    /// A bearer token (`Authorization: Bearer …`), for a proxy in front of Alertmanager. A
    /// secret: prefer `token_file` or `F2B_NOTIFY_SINKS__NAME__TOKEN`. Not with `username`.
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the bearer token (mode 0600).
    pub token_file: Option<PathBuf>,
    /// An extra CA certificate (PEM, one or a bundle) to trust besides the system's, for
    /// Alertmanagers whose certificates a private CA issued.
    pub ca_file: Option<PathBuf>,
    /// Static labels added to every alert (`labels = { team = "ops", env = "prod" }`), for
    /// routing and silences. Names as Prometheus's (`[a-zA-Z_][a-zA-Z0-9_]*`); not
    /// `alertname`, `jail`, `ip`, `host` or `sink`, which the sink sets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Also post jail stops and starts: `Fail2BanJail` fires while a jail is stopped and is
    /// resolved when it starts again. Default false (they are no alerts).
    #[serde(default)]
    pub jail_alerts: bool,
    /// Per-event templates for the `summary` annotation (`[sinks.NAME.templates] ban = "…"`).
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one post may take (default 5, at most 30). All nodes are posted to at once.
    pub timeout: Option<f64>,
    /// Seconds an Alertmanager may fail to take alerts that another took before it counts as
    /// down (default 60, at most 3600). Until then the alerts are posted again, to every node,
    /// each second, so that every node of the cluster has them (a restart, a cluster coming
    /// back node by node); after that sends succeed without it and what it missed waits for
    /// its return. 0: never wait for a node while another takes the alerts.
    pub down_after: Option<f64>,
}

/// `password` is a secret: a value of the wrong type is an error naming the key, never the
/// value.
fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "password")
}

/// `token` is a secret, like `password`.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// How requests prove who sends them.
#[derive(Debug)]
enum Auth {
    Basic {
        username: String,
        password: Secret,
    },
    /// The whole header value, marked sensitive.
    Bearer(HeaderValue),
}

/// One Alertmanager, and what the sink knows of it.
struct Node {
    /// The base URL as configured, for messages (it holds no secret).
    shown: String,
    /// `{base}/api/v2/alerts`.
    endpoint: Url,
    state: Mutex<NodeState>,
}

#[derive(Default)]
struct NodeState {
    /// Since when every post to it failed (transiently), if it does.
    failing_since: Option<Instant>,
    /// What it missed while it counted as down and another node took the alerts: one alert
    /// per label set, oldest first.
    missed: Vec<Value>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let missed = self.state.lock().map(|s| s.missed.len()).unwrap_or(0);
        f.debug_struct("Node").field("url", &self.shown).field("missed", &missed).finish()
    }
}

/// A built Alertmanager sink.
///
/// How "delivered when one node took it, the others retried" fits the router, which retries a
/// whole send and only a failed one. Every node of a cluster must hold every alert: the nodes
/// share which notifications went out, not the alerts, and a node that lacks one sends a
/// notification of its own for the alerts it has (split and repeated messages), or, having
/// missed an unban, announces again what the others called resolved. Prometheus gets there by
/// posting every firing alert again each minute; f2b-notify posts an event once. So:
///
/// - all nodes took the alerts: delivered;
/// - some took them and another failed (transiently) for less than `down_after` (default
///   60 s: a restart, a cluster coming back node by node): the send fails with a wait of
///   1 s, and the router posts the same alerts again to every node (a repeat is harmless:
///   Alertmanager merges an alert into the one it has) until all took them. The alerts are
///   already with the nodes that took them, which notify at once; only the queue waits;
/// - some took them and every node that failed has been failing for `down_after` or longer:
///   delivered, and what the down node missed is kept for it and goes first in its next post
///   (merged by label set, the newest state winning), so that it catches up when it is back
///   and a new event comes. That is in memory: a worker that stops before then loses it, and
///   past [`MAX_BACKLOG`] alerts the oldest are dropped; both are logged;
/// - a node that refused the alerts outright (401, 400) is not waited for and keeps nothing:
///   a repeat would be refused the same way (logged);
/// - no node took them: the send fails, transient or permanent as the nodes answered.
#[derive(Debug)]
pub struct AlertmanagerSink {
    name: String,
    nodes: Vec<Arc<Node>>,
    auth: Option<Arc<Auth>>,
    secret_source: Option<(&'static str, SecretSource)>,
    client: Client,
    timeout: Timeout,
    labels: BTreeMap<String, String>,
    jail_alerts: bool,
    down_after: Duration,
    renderer: Renderer,
    /// `check`'s warnings about credentials sent over plain http.
    cleartext: Vec<String>,
}

/// Builds the sink `name`: checks every URL, the credentials (reading a secret file now), the
/// labels, the CA file and the templates. Errors name the key, never a secret.
pub fn new(name: &str, config: Config) -> Result<AlertmanagerSink, ConfigError> {
    let (auth, secret_source) = auth(&config)?;
    let what = match &auth {
        Some(Auth::Basic { .. }) => Some("the basic-auth password"),
        Some(Auth::Bearer(_)) => Some("the bearer token"),
        None => None,
    };
    let texts = config.urls.list();
    if texts.is_empty() {
        return Err(ConfigError::new(
            "missing `urls`: the Alertmanagers' base URLs, every node of the cluster, like `urls = [\"http://am1:9093\", \"http://am2:9093\"]`",
        ));
    }
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    let mut cleartext = Vec::new();
    for text in texts {
        let node = node(text)?;
        if nodes.iter().any(|n| n.endpoint == node.endpoint) {
            return Err(ConfigError::new(format!("`urls` names {} twice", node.shown)));
        }
        if let Some(what) = what {
            cleartext.extend(cleartext_warning(&node.endpoint, "urls", what).map(|w| format!("{w} ({})", node.shown)));
        }
        nodes.push(Arc::new(node));
    }
    for (key, value) in &config.labels {
        check_label(key, value)?;
    }
    let down_after = match config.down_after {
        None => DOWN_AFTER,
        Some(secs) if (0.0..=MAX_DOWN_AFTER.as_secs_f64()).contains(&secs) => Duration::from_secs_f64(secs),
        Some(secs) => {
            return Err(ConfigError::new(format!(
                "`down_after` = {secs} must be from 0 to {} seconds",
                MAX_DOWN_AFTER.as_secs()
            )))
        }
    };
    let timeout = Timeout::from_config(config.timeout)?;
    let client = f2b_notify_http::client_trusting(timeout, config.ca_file.as_deref())?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(AlertmanagerSink {
        name: name.to_owned(),
        nodes,
        auth: auth.map(Arc::new),
        secret_source,
        client,
        timeout,
        labels: config.labels,
        jail_alerts: config.jail_alerts,
        down_after,
        renderer,
        cleartext,
    })
}

/// Basic auth, a bearer token, or neither, from the config.
#[allow(clippy::type_complexity)]
fn auth(config: &Config) -> Result<(Option<Auth>, Option<(&'static str, SecretSource)>), ConfigError> {
    let has = |inline: &Option<Secret>, file: &Option<PathBuf>| inline.is_some() || file.is_some();
    let basic = config.username.is_some() || has(&config.password, &config.password_file);
    let bearer = has(&config.token, &config.token_file);
    if basic && bearer {
        return Err(ConfigError::new(
            "give either `username` and `password` (basic auth) or `token` (a bearer token), not both",
        ));
    }
    if bearer {
        let source = SecretSource::from_pair("token", config.token.clone(), config.token_file.clone())?;
        let token = source.load("token")?;
        let header = secret_header(&format!("Bearer {}", token.expose()), "token")?;
        return Ok((Some(Auth::Bearer(header)), Some(("token", source))));
    }
    if !basic {
        return Ok((None, None));
    }
    let Some(username) = config.username.clone() else {
        return Err(ConfigError::new("`password` needs `username`"));
    };
    if !has(&config.password, &config.password_file) {
        return Err(ConfigError::new("`username` needs `password` or `password_file`"));
    }
    if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
        return Err(ConfigError::new(format!(
            "`username` = {username:?} cannot be used for basic auth: it must not be empty or hold a `:` or a line break"
        )));
    }
    let source = SecretSource::from_pair("password", config.password.clone(), config.password_file.clone())?;
    let password = source.load("password")?;
    // The header is built per request by reqwest (and marked sensitive there); check now that
    // it can be built at all.
    if password.expose().chars().any(char::is_control) {
        return Err(ConfigError::new(
            "`password` holds a line break or another control character (the value is a secret: not shown)",
        ));
    }
    Ok((Some(Auth::Basic { username, password }), Some(("password", source))))
}

/// One entry of `urls`.
fn node(text: &str) -> Result<Node, ConfigError> {
    // Before anything quotes it: a URL with `user:password@` is never shown.
    if text.contains('@') {
        return Err(ConfigError::new(
            "`urls` must not hold credentials (an `@`): put the user in `username` and the password in `password_file` (the URL is not shown)",
        ));
    }
    let (url, _) = parse_url(text, "urls", UrlKind::Public, "the credentials")?;
    let shown = text.trim().trim_end_matches('/').to_owned();
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(format!("`urls`: `{shown}` must not have a query or a fragment")));
    }
    let path = url.path().trim_end_matches('/');
    if ["/api/v2/alerts", "/api/v2", "/api/v1/alerts", "/api/v1"].iter().any(|api| path.ends_with(api)) {
        return Err(ConfigError::new(format!(
            "`urls`: `{shown}` is an API path; give the Alertmanager's base URL (like `http://am1:9093`): the sink adds /api/v2/alerts"
        )));
    }
    let mut endpoint = url.clone();
    endpoint.set_path(&format!("{path}/api/v2/alerts"));
    Ok(Node { shown, endpoint, state: Mutex::default() })
}

/// A static label from the config: a Prometheus label name that is not one the sink sets, and
/// a one-line value that is not empty (Alertmanager drops empty labels).
fn check_label(key: &str, value: &str) -> Result<(), ConfigError> {
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ConfigError::new(format!(
            "`labels`: {key:?} is not a label name: letters, digits and `_`, not starting with a digit"
        )));
    }
    if key.starts_with("__") {
        return Err(ConfigError::new(format!("`labels`: {key:?}: names starting with `__` are reserved")));
    }
    if alert::OWN_LABELS.contains(&key) {
        return Err(ConfigError::new(format!(
            "`labels`: `{key}` is set by the sink itself (alertname, jail, ip, host, sink): pick another name"
        )));
    }
    if value.is_empty() {
        return Err(ConfigError::new(format!("`labels.{key}` is empty: Alertmanager drops empty labels")));
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::new(format!("`labels.{key}` holds a line break or another control character")));
    }
    Ok(())
}

/// The text of an Alertmanager error body: a JSON string (its validation errors), go-openapi's
/// `{"code":…,"message":…}`, or whatever a proxy sent.
fn error_text(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(o)) => match o.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => body.to_owned(),
        },
        _ => body.to_owned(),
    }
}

/// What a non-success answer means, classified: the shared table (429, 408, 5xx but 501 are
/// transient), with what each refusal means for the operator.
fn classify(answer: &Answer) -> SinkError {
    let meaning = match answer.status {
        400 | 422 => Some("Alertmanager refused the alerts (please report this as a bug)"),
        401 => Some(
            "the credentials were refused: check `username` and `password`/`password_file`, or `token`/`token_file`",
        ),
        403 => Some("forbidden: these credentials may not post alerts"),
        404 | 405 => Some(
            "no Alertmanager API v2 here: give the base URL (`http://host:9093`, with its route prefix if it has one); API v2 needs Alertmanager 0.16 or later",
        ),
        413 => Some("the post is too large for a proxy in front of Alertmanager"),
        415 => Some("Alertmanager refused the content type (please report this as a bug)"),
        _ => None,
    };
    classify_status(
        answer.status,
        answer.retry_after(),
        describe(&error_text(&answer.body), Some(answer.status), meaning),
    )
}

/// Posts `alerts` to one node, [`MAX_BATCH`] at a time; the first failure ends it.
async fn post(
    client: Client,
    endpoint: Url,
    auth: Option<Arc<Auth>>,
    timeout: Timeout,
    alerts: Vec<Value>,
) -> Result<(), SinkError> {
    for chunk in alerts.chunks(MAX_BATCH) {
        let mut request = client.post(endpoint.clone()).json(chunk);
        match auth.as_deref() {
            Some(Auth::Basic { username, password }) => {
                request = request.basic_auth(username, Some(password.expose()));
            }
            Some(Auth::Bearer(header)) => request = request.header(AUTHORIZATION, header.clone()),
            None => {}
        }
        let answer = exchange(request, timeout).await?;
        if !answer.is_success() {
            return Err(classify(&answer));
        }
    }
    Ok(())
}

/// One error for a send that no node took: transient if any node's failure was (that node may
/// come back), with a wait only when every transient failure asked for one (the shortest).
fn combine(failures: &[(String, SinkError)]) -> SinkError {
    let text = |(shown, e): &(String, SinkError)| format!("{shown}: {}", e.message());
    let message = match failures {
        [one] => text(one),
        all => format!("no Alertmanager took the alerts: {}", all.iter().map(text).collect::<Vec<_>>().join("; ")),
    };
    let transient: Vec<&SinkError> = failures.iter().map(|(_, e)| e).filter(|e| e.is_transient()).collect();
    if transient.is_empty() {
        return SinkError::permanent(message);
    }
    let waits: Option<Vec<Duration>> = transient.iter().map(|e| e.retry_after_hint()).collect();
    match waits.and_then(|w| w.into_iter().min()) {
        Some(wait) => SinkError::retry_after(message, wait),
        None => SinkError::transient(message),
    }
}

impl AlertmanagerSink {
    /// The alert for `event`, if it is one.
    fn alert_for(&self, event: &Event) -> Result<Option<Value>, SinkError> {
        alert::for_event(event, &self.renderer, &self.labels, self.jail_alerts, SystemTime::now())
    }

    /// What each node missed while it counted as down, for its tests.
    pub fn missed(&self) -> Vec<(String, usize)> {
        self.nodes.iter().map(|n| (n.shown.clone(), n.state.lock().map(|s| s.missed.len()).unwrap_or(0))).collect()
    }

    /// Posts `alerts` to every node at once (each after what it missed before); see
    /// [`AlertmanagerSink`] for when that counts as delivered.
    async fn deliver(&self, alerts: Vec<Value>) -> Result<(), SinkError> {
        let alerts = alert::merge(&[], &alerts);
        if alerts.is_empty() {
            return Ok(());
        }
        let mut posts = tokio::task::JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let missed = node.state.lock().map(|s| s.missed.clone()).unwrap_or_default();
            let payload = alert::merge(&missed, &alerts);
            let (client, endpoint, auth) = (self.client.clone(), node.endpoint.clone(), self.auth.clone());
            let timeout = self.timeout;
            posts.spawn(async move { (i, post(client, endpoint, auth, timeout, payload).await) });
        }
        let mut results: Vec<Option<Result<(), SinkError>>> = self.nodes.iter().map(|_| None).collect();
        while let Some(done) = posts.join_next().await {
            match done {
                Ok((i, result)) => results[i] = Some(result),
                Err(e) => return Err(SinkError::transient(format!("a post did not finish: {e}"))),
            }
        }
        let results: Vec<Result<(), SinkError>> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SinkError::transient("a post did not finish"))))
            .collect();
        let taken = results.iter().filter(|r| r.is_ok()).count();
        let now = Instant::now();
        let mut failures = Vec::new();
        let mut waiting = Vec::new();
        for (node, result) in self.nodes.iter().zip(results) {
            let Ok(mut state) = node.state.lock() else { continue };
            let e = match result {
                Ok(()) => {
                    // Everything, what it had missed included, is there now.
                    *state = NodeState::default();
                    continue;
                }
                Err(e) => e,
            };
            if e.is_permanent() {
                state.failing_since = None;
            } else {
                state.failing_since.get_or_insert(now);
            }
            if taken == 0 {
                // No node took them: the router retries these; what a node missed stays.
                failures.push((node.shown.clone(), e));
            } else if e.is_permanent() {
                state.missed.clear();
                tracing::warn!(
                    "sink `{}`: Alertmanager {} refused {} alert(s) that another took: {}",
                    self.name,
                    node.shown,
                    alerts.len(),
                    e.message()
                );
            } else if state.failing_since.is_some_and(|since| now.duration_since(since) < self.down_after) {
                waiting.push(format!("{}: {}", node.shown, e.message()));
            } else {
                let mut kept = alert::merge(&state.missed, &alerts);
                let dropped = kept.len().saturating_sub(MAX_BACKLOG);
                kept.drain(..dropped);
                state.missed = kept;
                tracing::warn!(
                    "sink `{}`: Alertmanager {} is down ({}): {} alert(s) another took are kept for it, posted to it first when it answers again ({} kept{})",
                    self.name,
                    node.shown,
                    e.message(),
                    alerts.len(),
                    state.missed.len(),
                    if dropped > 0 { format!(", the {dropped} oldest dropped") } else { String::new() }
                );
            }
        }
        if taken == 0 {
            return Err(combine(&failures));
        }
        if waiting.is_empty() {
            return Ok(());
        }
        Err(SinkError::retry_after(
            format!(
                "{taken} of {} Alertmanagers took the alerts; posting them again until the others do too (for up to {} s while a node fails): {}",
                self.nodes.len(),
                self.down_after.as_secs_f64(),
                waiting.join("; ")
            ),
            RETRY_MISSING,
        ))
    }

    /// Where posts go and how they are signed, for `test --dry-run` (never the secret).
    fn describe_target(&self) -> String {
        let urls: Vec<&str> = self.nodes.iter().map(|n| n.endpoint.as_str()).collect();
        let auth = match self.auth.as_deref() {
            Some(Auth::Basic { username, .. }) => format!(", basic auth as {username:?} (the password is not shown)"),
            Some(Auth::Bearer(_)) => ", with a bearer token (not shown)".to_owned(),
            None => String::new(),
        };
        format!("POST to every Alertmanager ({}){auth}", urls.join(", "))
    }
}

#[async_trait]
impl Sink for AlertmanagerSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        match self.alert_for(event)? {
            Some(alert) => self.deliver(vec![alert]).await,
            // A jail start or stop without `jail_alerts`: nothing to post.
            None => Ok(()),
        }
    }

    /// Every event's alert in one post (chunked by [`MAX_BATCH`]): Alertmanager groups them
    /// itself, so there is no digest text.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        let mut alerts = Vec::with_capacity(digest.events.len());
        for event in &digest.events {
            alerts.extend(self.alert_for(event)?);
        }
        self.deliver(alerts).await
    }

    fn check(&self) -> Vec<String> {
        let readable = self.secret_source.as_ref().and_then(|(key, s)| s.permission_warning(key));
        readable.into_iter().chain(self.cleartext.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.deliver(vec![alert::for_sink_alert(alert, &self.labels, SystemTime::now())]).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let Some(alert) = self.alert_for(event)? else {
            return Ok(format!(
                "nothing: a jail {} is no alert unless `jail_alerts = true`",
                if event.kind == f2b_notify_core::EventKind::Start { "start" } else { "stop" }
            ));
        };
        let json = serde_json::to_string_pretty(&Value::Array(vec![alert]))
            .map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("{}, this JSON body:\n{json}", self.describe_target()))
    }
}
