//! The Pushover sink: push notifications to phones and desktops through Pushover's Message
//! API, one message per event (a digest for a storm), with an application token and a user
//! or group key.
//!
//! It posts a form (`application/x-www-form-urlencoded`, the encoding Pushover's
//! documentation shows first; D: https://pushover.net/api#messages) to
//! `{api_url}/1/messages.json`. Both secrets travel in the body, never in the URL, so neither
//! can reach a proxy's log or an error that quotes the URL; they never appear in errors,
//! logs, `check`, `Debug` or a preview either, and any answer that quotes them is redacted.
//!
//! The message is Pushover's HTML by default, every value escaped ([`message`]); the title is
//! built from the host, the jail and the event only. Messages and titles stay within
//! Pushover's 1,024 and 250 characters, cut with a visible marker, the matched log lines
//! first.
//!
//! Pushover asks its clients to be friendly (D: `#friendly`): never repeat a refused request
//! (4xx: repeated refusals get the sending address blocked), repeat a failed one no sooner
//! than 5 s later. So every 4xx is permanent, and once Pushover refuses the token or the user
//! key this sink sends nothing more until its config changes; 5xx and network failures wait
//! at least 5 s; the monthly quota's 429 waits until the quota renews (an hour at a time).
//! The quota each answer reports (`X-Limit-App-*`) is kept ([`PushoverSink::quota`]) and
//! logged: at debug level after each message, as a warning when a tenth, a twentieth and a
//! hundredth of it are left.

mod answer;
pub mod message;
mod settings;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::{exchange, parse_url, Answer, Client, Timeout, Url, UrlKind};
use serde::{Deserialize, Deserializer, Serialize};

pub use answer::{backoff, classify, Quota, Refusal, QUOTA_CLOCK_WAIT, QUOTA_WAIT, RETRY_CAP, RETRY_FLOOR};
pub use message::{Style, MAX_MESSAGE, MAX_TITLE};
pub use settings::{valid_key, Priorities, Priority, PriorityConfig, MAX_URL, MAX_URL_TITLE};

/// Pushover's API.
pub const DEFAULT_API_URL: &str = "https://api.pushover.net";
/// The path of the Message API, under `api_url`.
pub const MESSAGES_PATH: &str = "/1/messages.json";

/// The least time between two messages. Pushover sets no rate, but counts every message
/// against the application's monthly quota (10,000 free; D: `#limits`) and asks that a failed
/// request be repeated no sooner than 5 s later (D: `#friendly`). One message every 5 s folds
/// a storm into digests of everything that arrived meanwhile: an hour of storm costs at most
/// 720 messages instead of one per ban, the phone does not buzz every second, and a retry is
/// never sooner than Pushover allows (the router counts a failed try as a message).
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// The least `retry` of an emergency-priority message (D: `#priority`).
pub const MIN_RETRY: u64 = 30;
/// The most `expire` of an emergency-priority message (D: `#priority`).
pub const MAX_EXPIRE: u64 = 10_800;

/// Configuration of a `type = "pushover"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Your application's API token (30 letters and digits): create an application at
    /// https://pushover.net/apps/build and copy its "API Token/Key". A secret: prefer
    /// `token_file` or the environment (`F2B_NOTIFY_SINKS__NAME__TOKEN`). Required: `token`
    /// or `token_file`.
    #[serde(default, deserialize_with = "token")]
    pub token: Option<Secret>,
    /// A file holding the application token (mode 0600; `check` warns when others can read
    /// it).
    pub token_file: Option<PathBuf>,
    /// Who receives the messages: your user key (30 letters and digits, on your dashboard at
    /// https://pushover.net), a group key, or up to 50 keys separated by commas. A secret:
    /// prefer `user_file` or the environment (`F2B_NOTIFY_SINKS__NAME__USER`). Required:
    /// `user` or `user_file`.
    #[serde(default, deserialize_with = "user")]
    pub user: Option<Secret>,
    /// A file holding the user or group key (mode 0600; `check` warns when others can read
    /// it).
    pub user_file: Option<PathBuf>,
    /// Pushover's API (default `https://api.pushover.net`), for a proxy or tests; the sink
    /// posts to `{api_url}/1/messages.json`.
    pub api_url: Option<String>,
    /// Send to these devices only: a device's name as your dashboard shows it (1 to 25 of
    /// `A-Z a-z 0-9 _ -`), several separated by commas. Default: all your devices.
    pub device: Option<String>,
    /// The sound to play: a built-in one (`pushover`, `siren`, `spacealarm`, `none`, …, see
    /// https://pushover.net/api#sounds) or one uploaded to your account. Default: the one each
    /// user chose.
    pub sound: Option<String>,
    /// The priority of each event's message: -2 (no notification), -1 (quiet), 0 (normal),
    /// 1 (high: ignores quiet hours) or 2 (emergency: repeated until acknowledged; needs
    /// `retry` and `expire`), or the names `lowest`, `low`, `normal`, `high`, `emergency`.
    /// One value for every event, or a table: default `{ ban = 0, unban = -1, start = -1,
    /// stop = -1 }` (a table may name some events; the others keep these). A digest takes the
    /// priority of its most important event (ban, then unban, then start and stop); an alert
    /// is 0, a recovery -1.
    #[serde(default)]
    pub priority: PriorityConfig,
    /// For priority 2: seconds between repeats of the notification until it is acknowledged,
    /// at least 30. Required when any priority is 2.
    pub retry: Option<u64>,
    /// For priority 2: seconds to keep repeating, at most 10800 (3 hours). Required when any
    /// priority is 2.
    pub expire: Option<u64>,
    /// Send the message as Pushover's HTML (default true): labels in bold, every value
    /// escaped. Not together with `monospace`. Notifications on the lock screen show the
    /// plain text either way; the formatting shows in the app.
    pub html: Option<bool>,
    /// Show the message in a monospace font, as plain text (default false; turns `html`
    /// off unless `html = true` is also given, which is an error).
    #[serde(default)]
    pub monospace: bool,
    /// A link shown below each message (your dashboard, for example): a URL of at most 512
    /// characters. Default none.
    pub url: Option<String>,
    /// The link's text (at most 100 characters; default the URL itself). Needs `url`.
    pub url_title: Option<String>,
    /// Per-event templates for the message's first line (`[sinks.NAME.templates] ban = "…"`).
    /// With `html` the values arrive escaped, and the template may use Pushover's tags
    /// (`<b>`, `<i>`, `<u>`, `<font color="…">`, `<a href="…">`) and no others.
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// `token` is a secret: a value of the wrong type is an error naming the key, never the value.
fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "token")
}

/// `user` is a secret, like `token`.
fn user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "user")
}

/// The parameters of one message, in the order people read them in `test --dry-run` (D:
/// https://pushover.net/api#messages). The secrets are added only when the form is sent.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// At most 250 characters of plain text.
    pub title: String,
    /// At most 1,024 characters, HTML when `html` is 1.
    pub message: String,
    /// -2 to 2.
    pub priority: i8,
    /// Seconds between repeats (priority 2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
    /// Seconds to repeat (priority 2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire: Option<u64>,
    /// 1 for HTML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<u8>,
    /// 1 for a monospace font.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monospace: Option<u8>,
    /// When the event happened (Unix seconds), shown instead of the time Pushover received
    /// the message: a message that waited in the queue still shows when the ban was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// The devices to send to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The sound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// A supplementary link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The link's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_title: Option<String>,
}

/// The form as sent: the secrets first, then the message.
#[derive(Serialize)]
struct Form<'a> {
    token: &'a str,
    user: &'a str,
    #[serde(flatten)]
    message: &'a Message,
}

/// A built Pushover sink.
#[derive(Debug)]
pub struct PushoverSink {
    name: String,
    token: Secret,
    token_source: SecretSource,
    user: Secret,
    user_source: SecretSource,
    endpoint: Url,
    style: Style,
    priority: Priorities,
    /// `retry` and `expire`, for priority 2.
    emergency: Option<(u64, u64)>,
    device: Option<String>,
    sound: Option<String>,
    url: Option<String>,
    url_title: Option<String>,
    renderer: Renderer,
    client: Client,
    timeout: Timeout,
    /// What `check` says beyond the secret files' modes.
    warnings: Vec<String>,
    /// Requests in a row that got no verdict from Pushover (5xx, no answer), for the wait.
    failures: AtomicU32,
    /// Why Pushover refused the token or the user key, once it has: nothing more is sent.
    refused: Mutex<Option<String>>,
    /// The quota the last answer reported.
    quota: Mutex<Option<Quota>>,
}

/// The tags Pushover's HTML supports (D: https://pushover.net/api#html).
const TAGS: &[&str] = &["b", "i", "u", "font", "a"];

/// The first tag in a template's source that Pushover does not support.
fn unsupported_tag(source: &str) -> Option<String> {
    source.match_indices('<').find_map(|(i, _)| {
        let rest = source[i + 1..].strip_prefix('/').unwrap_or(&source[i + 1..]);
        let name: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
        let starts_tag = rest.starts_with(|c: char| c.is_ascii_alphabetic());
        (starts_tag && !TAGS.contains(&name.to_ascii_lowercase().as_str())).then_some(name)
    })
}

/// Reads one secret (inline, from the environment or from its file) and checks its shape
/// with `problem`; the error names the key or the file, never the value.
fn load_secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    what: &str,
    problem: impl Fn(&str) -> Option<String>,
) -> Result<(Secret, SecretSource), ConfigError> {
    let from_file = file.clone();
    let source = SecretSource::from_pair(key, inline, file)?;
    let value = source.load(key)?;
    let value = Secret::new(value.expose().trim());
    if let Some(why) = problem(value.expose()) {
        let which = match from_file {
            Some(p) => format!("`{key}_file` {} does not hold {what}", p.display()),
            None => format!("`{key}` is not {what}"),
        };
        return Err(ConfigError::new(format!("{which}: {why} (a secret's value is never shown)")));
    }
    Ok((value, source))
}

/// Builds the sink: reads and checks the secrets (never quoting them), the URL, the
/// priorities, the options and the templates. Errors name the key, never a secret.
pub fn new(name: &str, config: Config) -> Result<PushoverSink, ConfigError> {
    let (token, token_source) = load_secret(
        "token",
        config.token,
        config.token_file,
        "a Pushover application token",
        |t| {
            (!valid_key(t)).then(|| {
                "an application's API token is 30 letters and digits (see your application at https://pushover.net/apps)"
                    .to_owned()
            })
        },
    )?;
    let (user, user_source) =
        load_secret("user", config.user, config.user_file, "a Pushover user or group key", settings::user_problem)?;
    let text = config.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
    if text.contains(token.expose()) || user.expose().split(',').any(|u| text.contains(u)) {
        return Err(ConfigError::new(
            "`api_url` holds the token or the user key: give the API's base only (like https://api.pushover.net), the secrets in `token` and `user` (not shown)",
        ));
    }
    let (url, cleartext) =
        parse_url(text, "api_url", UrlKind::Public, "every request, with the application token and the user key,")?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(format!(
            "`api_url` must be the API's base URL, without a user, password, query or fragment: `{}`",
            settings::shown(text)
        )));
    }
    let base = url.as_str().trim_end_matches('/');
    if base.ends_with(MESSAGES_PATH) {
        return Err(ConfigError::new(format!(
            "`api_url` `{}` is the API's base (like https://api.pushover.net): leave out {MESSAGES_PATH}, which the sink adds",
            settings::shown(text)
        )));
    }
    let endpoint = Url::parse(&format!("{base}{MESSAGES_PATH}"))
        .map_err(|e| ConfigError::new(format!("`api_url` `{}`: {e}", settings::shown(text))))?;
    let style = match (config.html, config.monospace) {
        (Some(true), true) => {
            return Err(ConfigError::new(
                "`html` and `monospace` cannot both be true: Pushover takes one or the other (monospace alone turns html off)",
            ))
        }
        (_, true) => Style::Monospace,
        (Some(false), false) => Style::Plain,
        (None | Some(true), false) => Style::Html,
    };
    let mut warnings: Vec<String> = cleartext.into_iter().collect();
    if let Some(r) = config.retry.filter(|&r| r < MIN_RETRY) {
        return Err(ConfigError::new(format!(
            "`retry` = {r} is below Pushover's minimum of {MIN_RETRY} seconds between repeats"
        )));
    }
    if let Some(e) = config.expire.filter(|e| !(1..=MAX_EXPIRE).contains(e)) {
        return Err(ConfigError::new(format!(
            "`expire` = {e} must be 1 to {MAX_EXPIRE} seconds (3 hours, Pushover's maximum)"
        )));
    }
    let priority = config.priority.values;
    let emergency = match (priority.emergency_key(config.priority.table), config.retry, config.expire) {
        (Some(_), Some(retry), Some(expire)) => Some((retry, expire)),
        (Some(key), retry, _) => {
            let missing = if retry.is_none() {
                "`retry` (seconds between repeats, at least 30)"
            } else {
                "`expire` (seconds to keep repeating, at most 10800)"
            };
            return Err(ConfigError::new(format!(
                "`{key}` = 2 (emergency: repeated until acknowledged) needs {missing}; Pushover refuses it without `retry` and `expire`"
            )));
        }
        (None, None, None) => None,
        (None, _, _) => {
            warnings.push(
                "`retry` and `expire` only matter for priority 2 (emergency), which no event of this sink has"
                    .to_owned(),
            );
            None
        }
    };
    let url_value = config.url.as_deref().map(settings::url).transpose()?;
    let url_title = config.url_title.as_deref().map(settings::url_title).transpose()?;
    if url_title.is_some() && url_value.is_none() {
        return Err(ConfigError::new("`url_title` needs `url`: it is the text of that link"));
    }
    if style == Style::Html {
        for (kind, source) in [
            ("start", &config.templates.start),
            ("stop", &config.templates.stop),
            ("ban", &config.templates.ban),
            ("unban", &config.templates.unban),
        ] {
            if let Some(tag) = source.as_deref().and_then(unsupported_tag) {
                return Err(ConfigError::new(format!(
                    "template for `{kind}`: Pushover's HTML has no `<{}>`; it supports <b>, <i>, <u>, <font color=\"…\"> and <a href=\"…\"> (or set `html = false`)",
                    settings::shown(&tag)
                )));
            }
        }
    }
    let timeout = Timeout::from_config(config.timeout)?;
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    Ok(PushoverSink {
        name: name.to_owned(),
        token,
        token_source,
        user,
        user_source,
        endpoint,
        style,
        priority,
        emergency,
        device: config.device.as_deref().map(settings::device).transpose()?,
        sound: config.sound.as_deref().map(settings::sound).transpose()?,
        url: url_value,
        url_title,
        renderer,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        warnings,
        failures: AtomicU32::new(0),
        refused: Mutex::new(None),
        quota: Mutex::new(None),
    })
}

/// An event time as Pushover's `timestamp`: whole Unix seconds, when sane.
fn timestamp(time: Option<f64>) -> Option<u64> {
    time.filter(|t| t.is_finite() && *t > 0.0 && *t < 1e11).map(|t| t as u64)
}

impl PushoverSink {
    /// The parameters of a message with `title`, `text` and `priority`.
    fn message(&self, title: String, text: String, priority: Priority, time: Option<f64>) -> Message {
        let emergency = self.emergency.filter(|_| priority == Priority::EMERGENCY);
        Message {
            title,
            message: text,
            priority: priority.get(),
            retry: emergency.map(|(r, _)| r),
            expire: emergency.map(|(_, e)| e),
            html: (self.style == Style::Html).then_some(1),
            monospace: (self.style == Style::Monospace).then_some(1),
            timestamp: timestamp(time),
            device: self.device.clone(),
            sound: self.sound.clone(),
            url: self.url.clone(),
            url_title: self.url_title.clone(),
        }
    }

    /// The message for one event.
    pub fn event_message(&self, event: &Event) -> Result<Message, SinkError> {
        let text = message::event_message(event, &self.renderer, self.style)
            .map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(self.message(message::event_title(event), text, self.priority.get(event.kind), event.time))
    }

    /// The message for a digest: the time is its last event's.
    pub fn digest_message(&self, digest: &Digest) -> Message {
        let time = digest.events.iter().filter_map(|e| e.time).reduce(f64::max);
        let text = message::digest_message(digest, self.style);
        self.message(message::title(&digest.title()), text, self.priority.get(digest.dominant_kind()), time)
    }

    /// The message for an alert: 0 for a failure, -1 for a recovery.
    pub fn alert_message(&self, alert: &Alert) -> Message {
        let priority = if alert.recovered { Priority::LOW } else { Priority::NORMAL };
        self.message(message::title(&alert.subject), message::alert_message(alert, self.style), priority, None)
    }

    /// The quota Pushover reported with its last answer, if any.
    pub fn quota(&self) -> Option<Quota> {
        *self.quota.lock().expect("quota")
    }

    /// `text` with the secrets replaced, for anything a server sent back.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(self.token.expose(), "<token>");
        for key in self.user.expose().split(',') {
            out = out.replace(key, "<user>");
        }
        out
    }

    fn redact_error(&self, e: SinkError) -> SinkError {
        match e {
            SinkError::Transient { message, retry_after } => {
                SinkError::Transient { message: self.redact(&message), retry_after }
            }
            SinkError::Permanent { message } => SinkError::permanent(self.redact(&message)),
        }
    }

    /// Posts one message and reads Pushover's answer.
    async fn deliver(&self, message: &Message) -> Result<(), SinkError> {
        if let Some(why) = self.refused.lock().expect("refused").clone() {
            return Err(SinkError::permanent(format!(
                "not sent: Pushover refused this sink's credentials before ({why}); nothing more goes out with them, since Pushover blocks addresses that keep sending refused requests: fix `token` or `user` (the worker reads the changed config), then `f2b-notify queue retry`"
            )));
        }
        let failures = self.failures.load(Ordering::Relaxed).saturating_add(1);
        let form = Form { token: self.token.expose(), user: self.user.expose(), message };
        let request = self.client.post(self.endpoint.clone()).form(&form);
        let answer = match exchange(request, self.timeout).await {
            Ok(answer) => answer,
            Err(e) => {
                self.failures.store(failures, Ordering::Relaxed);
                return Err(self.redact_error(self.no_verdict(e, failures)));
            }
        };
        self.note_quota(&answer);
        let result = classify(&answer, failures, SystemTime::now()).map_err(|e| self.redact_error(e));
        match &result {
            Ok(()) => self.failures.store(0, Ordering::Relaxed),
            Err(e) if e.is_transient() && answer.status != 429 => self.failures.store(failures, Ordering::Relaxed),
            Err(e) => {
                if (400..500).contains(&answer.status)
                    && answer.status != 429
                    && Refusal::parse(&answer.body).is_some_and(|r| r.credentials())
                {
                    *self.refused.lock().expect("refused") = Some(e.to_string());
                }
            }
        }
        result
    }

    /// A request that got no answer: transient (unless the certificate is not trusted), and
    /// repeated no sooner than Pushover allows. After a timeout the router's own, longer
    /// wait applies (Pushover may have the message).
    fn no_verdict(&self, e: SinkError, failures: u32) -> SinkError {
        match e {
            SinkError::Transient { message, retry_after: None } if !message.starts_with("no answer within") => {
                SinkError::retry_after(message, backoff(failures))
            }
            other => other,
        }
    }

    /// Keeps the quota an answer reports, and logs it: at debug level always, as a warning
    /// when what is left falls to a tenth, a twentieth or a hundredth of the limit.
    fn note_quota(&self, answer: &Answer) {
        let Some(quota) = Quota::of(answer) else { return };
        let before = self.quota.lock().expect("quota").replace(quota).and_then(|q| q.remaining);
        let (Some(limit), Some(left)) = (quota.limit, quota.remaining) else { return };
        let reset = quota.reset_text().map_or_else(String::new, |r| format!(", renewed at {r}"));
        tracing::debug!("sink `{}`: {left} of {limit} Pushover messages left this month{reset}", self.name);
        let crossed = [10, 20, 100]
            .into_iter()
            .map(|part| limit / part)
            .any(|mark| left <= mark && before.is_none_or(|b| b > mark));
        if crossed && answer.status != 429 {
            tracing::warn!(
                "sink `{}`: only {left} of the application's {limit} Pushover messages are left this month{reset}; a storm of bans can use them up (each digest is one message: a larger `min_interval` makes fewer)",
                self.name
            );
        }
    }

    /// Where messages go and how, for `test --dry-run`: the secrets are not shown.
    fn describe(&self) -> String {
        format!(
            "POST to {} (form-encoded; the application token and the user key in the body, not shown)",
            self.endpoint
        )
    }

    /// The Message API's address.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

#[async_trait]
impl Sink for PushoverSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pushover"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.deliver(&self.event_message(event)?).await
    }

    /// One message, whatever the storm: every address that fits in Pushover's 1,024
    /// characters, and the exact count of the rest (each message costs quota, and a failure
    /// part-way through several would send the first ones again).
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.deliver(&self.digest_message(digest)).await
    }

    /// See [`MIN_INTERVAL`].
    fn min_interval(&self) -> Duration {
        MIN_INTERVAL
    }

    fn check(&self) -> Vec<String> {
        let files = [self.token_source.permission_warning("token"), self.user_source.permission_warning("user")];
        files.into_iter().flatten().chain(self.warnings.iter().cloned()).collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.deliver(&self.alert_message(alert)).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let message = self.event_message(event)?;
        let json = serde_json::to_string_pretty(&message).map_err(|e| SinkError::permanent(e.to_string()))?;
        Ok(format!("{}, these parameters:\n{json}", self.describe()))
    }
}
