//! What the webhook sends: by default every field of the event, digest or alert as JSON in
//! one documented schema (no template at all), or the operator's own minijinja `body` /
//! `digest_body`.
//!
//! The default schema (values of the example are what a ban gives):
//!
//! ```json
//! {"type": "event", "text": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)",
//!  "event": {"kind": "ban", "jail": "sshd", "id": "203.0.113.7", "ip": "203.0.113.7",
//!            "failures": 5, "time": 1700000000.5, "bantime": 600, "restored": false,
//!            "user": null, "matches": null, "host": "host.example", "bancount": null,
//!            "hostname": null, "hostname_confirmed": null, "country": null, "country_code": null,
//!            "city": null, "asn": null, "as_org": null}}
//! {"type": "digest", "title": "…", "origins": "…", "text": "…", "host": "…", "count": 2,
//!  "events": [{…}, {…}]}
//! {"type": "alert", "text": "…", "alert": {"subject": "…", "text": "…", "recovered": false}}
//! ```
//!
//! Every key of `event` is always there (`null` when Fail2Ban gave no value, or enrichment
//! found none), so a consumer (an n8n workflow, a Home Assistant automation) never trips over
//! a missing one. What `[enrich]` found is flat in `event`, beside Fail2Ban's fields, by the
//! names of the template variables; a digest's `origins` is its line of where the bans come
//! from (`null` when enrichment found nothing).
//!
//! A template for a JSON `content_type` renders with minijinja's JSON auto-escaping: every
//! value it prints is written as JSON (a string with its quotes and escapes), so
//! `{"text": {{ text }}}` and `{"text": {{ text | tojson }}}` are both safe whatever the
//! attacker put into a user name or log line, and `"{{ user }}"` (quotes around a value)
//! cannot produce valid JSON for any value. The template is rendered at config time for
//! hostile sample events, and a result that is not JSON is a config error saying how to fix
//! it, so a broken template never reaches the first ban.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use f2b_notify_core::{flatten, human_duration, Alert, Digest, Event, EventKind, Renderer};
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;

/// Characters of `matches` an event carries at most (a visible marker says what was cut).
pub const MAX_MATCHES: usize = 8_000;
/// Characters of `matches` each event of a digest carries at most: a digest holds up to
/// `batch_max` (default 500) events, and its point is the addresses.
pub const MAX_DIGEST_MATCHES: usize = 1_000;
/// Characters of `user` carried at most.
pub const MAX_USER: usize = 256;

/// One event as the default body and the templates' `event` / `events` carry it: every
/// field of Fail2Ban's ticket, `null` when absent. `jail`, `id`, `user` and `host` are
/// flattened to one line (control characters become spaces) as everywhere in f2b-notify,
/// `matches` keeps its lines; `user` and `matches` are cut to [`MAX_USER`] and
/// [`MAX_MATCHES`] (digests: [`MAX_DIGEST_MATCHES`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireEvent {
    /// `start`, `stop`, `ban` or `unban`.
    pub kind: &'static str,
    /// The jail.
    pub jail: String,
    /// The banned id as Fail2Ban gave it (usually an address).
    pub id: Option<String>,
    /// `id` when it is an IPv4/IPv6 address.
    pub ip: Option<String>,
    /// Failures that led to the ban.
    pub failures: Option<u64>,
    /// When, seconds since the epoch.
    pub time: Option<f64>,
    /// Ban length in seconds; -1 is permanent.
    pub bantime: Option<i64>,
    /// Restored from Fail2Ban's database at its restart.
    pub restored: bool,
    /// The user name from the log line: attacker-controlled.
    pub user: Option<String>,
    /// The matched log lines: attacker-controlled.
    pub matches: Option<String>,
    /// The host that runs Fail2Ban.
    pub host: String,
    /// How often Fail2Ban has banned this address, this ban included.
    pub bancount: Option<u64>,
    /// The address's PTR name (reverse DNS): whatever the owner of its reverse zone wrote.
    pub hostname: Option<String>,
    /// Whether `hostname` resolves back to the address.
    pub hostname_confirmed: Option<bool>,
    /// The country's English name.
    pub country: Option<String>,
    /// The country's ISO 3166-1 alpha-2 code.
    pub country_code: Option<String>,
    /// The city's English name.
    pub city: Option<String>,
    /// The autonomous system number of the address's network.
    pub asn: Option<u32>,
    /// The autonomous system's organisation.
    pub as_org: Option<String>,
}

impl WireEvent {
    /// `event` as carried on the wire, `matches` cut to `max_matches`.
    pub fn new(event: &Event, max_matches: usize) -> Self {
        let e = event.capped(max_matches, MAX_USER);
        Self {
            kind: e.kind.as_str(),
            jail: flatten(&e.jail),
            id: e.id.as_deref().map(flatten),
            ip: e.ip.map(|ip| ip.to_string()),
            failures: e.failures,
            // serde_json writes a NaN as null anyway; say so here.
            time: e.time.filter(|t| t.is_finite()),
            bantime: e.bantime,
            restored: e.restored,
            user: e.user.as_deref().map(flatten),
            matches: e.matches.clone(),
            host: flatten(&e.host),
            bancount: e.bancount,
            // One line already (enrichment cleans them); flattened again like every name.
            hostname: e.context.hostname.as_deref().map(flatten),
            hostname_confirmed: e.context.hostname_confirmed,
            country: e.context.country.as_deref().map(flatten),
            country_code: e.context.country_code.as_deref().map(flatten),
            city: e.context.city.as_deref().map(flatten),
            asn: e.context.asn,
            as_org: e.context.as_org.as_deref().map(flatten),
        }
    }
}

#[derive(Serialize)]
struct EventBody<'a> {
    r#type: &'static str,
    text: &'a str,
    event: &'a WireEvent,
}

#[derive(Serialize)]
struct DigestBody<'a> {
    r#type: &'static str,
    title: &'a str,
    origins: Option<&'a str>,
    text: &'a str,
    host: &'a str,
    count: usize,
    events: &'a [WireEvent],
}

#[derive(Serialize)]
struct AlertBody<'a> {
    r#type: &'static str,
    text: &'a str,
    alert: WireAlert<'a>,
}

/// An alert on the wire.
#[derive(Serialize)]
struct WireAlert<'a> {
    subject: &'a str,
    text: &'a str,
    recovered: bool,
}

/// The names a template may use: its variables (the event's, a digest's, an alert's). A
/// name outside these and minijinja's own functions is a typo, reported at config time.
pub const VARIABLES: &[&str] = &[
    "type",
    "text",
    "kind",
    "jail",
    "id",
    "ip",
    "is_ip",
    "failures",
    "time",
    "time_iso",
    "bantime",
    "bantime_human",
    "restored",
    "user",
    "matches",
    "host",
    "bancount",
    "repeat",
    "hostname",
    "hostname_confirmed",
    "country",
    "country_code",
    "city",
    "asn",
    "as_org",
    "context",
    "event",
    "title",
    "origins",
    "summary",
    "count",
    "events",
    "subject",
    "details",
    "recovered",
    "alert",
];

/// The two template keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `body`: events (and digests and alerts when there is no `digest_body`).
    Body,
    /// `digest_body`: digests.
    DigestBody,
}

impl Key {
    /// The config key.
    pub fn name(self) -> &'static str {
        match self {
            Key::Body => "body",
            Key::DigestBody => "digest_body",
        }
    }
}

/// How the bodies are made: the default JSON, or the operator's templates.
#[derive(Debug)]
pub struct Bodies {
    env: Environment<'static>,
    body: bool,
    digest_body: bool,
    json: bool,
}

/// One message's text for the wire, or why there is none.
pub type Rendered = Result<String, String>;

impl Bodies {
    /// Compiles the templates (`json`: the content type is JSON, so values are written as
    /// JSON and the result must parse as JSON), checks their variables and renders them for
    /// hostile samples now. The error names the key and says what to do.
    pub fn new(body: Option<&str>, digest_body: Option<&str>, json: bool, renderer: &Renderer) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        let escape = if json { AutoEscape::Json } else { AutoEscape::None };
        env.set_auto_escape_callback(move |_| escape);
        // A missing value (Fail2Ban gave none; an event's field in a digest) prints as JSON's
        // `null` in a JSON body and as nothing in text, never as minijinja's `none`.
        env.set_formatter(|out, state, value| {
            if value.is_none() || value.is_undefined() {
                if state.auto_escape() == AutoEscape::None {
                    return Ok(());
                }
                return out.write_str("null").map_err(minijinja::Error::from);
            }
            minijinja::escape_formatter(out, state, value)
        });
        for (key, source) in [(Key::Body, body), (Key::DigestBody, digest_body)] {
            if let Some(source) = source {
                env.add_template_owned(key.name(), source.to_owned())
                    .map_err(|e| format!("`{}` is not a valid template: {}", key.name(), one_line(&e)))?;
            }
        }
        let bodies = Self { body: body.is_some(), digest_body: digest_body.is_some(), json, env };
        for key in [Key::Body, Key::DigestBody] {
            bodies.check_variables(key)?;
        }
        bodies.try_samples(renderer)?;
        Ok(bodies)
    }

    /// A typo in a variable's name would print `null` (or nothing) on every message: it is
    /// a config error instead, with the closest name.
    fn check_variables(&self, key: Key) -> Result<(), String> {
        let Ok(template) = self.env.get_template(key.name()) else { return Ok(()) };
        let globals: BTreeSet<String> = self.env.globals().map(|(name, _)| name.to_owned()).collect();
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !VARIABLES.contains(&v.as_str()) && !globals.contains(v))
            .collect();
        unknown.sort();
        let Some(first) = unknown.first() else { return Ok(()) };
        let near = VARIABLES
            .iter()
            .map(|v| (strsim::jaro_winkler(first, v), v))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| format!(" (did you mean `{v}`?)"))
            .unwrap_or_default();
        Err(format!(
            "`{}` uses `{first}`, which is no variable{near}; the variables are {}",
            key.name(),
            VARIABLES.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
        ))
    }

    /// Renders every template for every kind of sample (hostile text, missing fields, a
    /// digest, an alert), so that a template that fails or gives invalid JSON for some
    /// input fails now.
    fn try_samples(&self, renderer: &Renderer) -> Result<(), String> {
        for (what, event) in samples::events() {
            self.event(&event, renderer).map_err(|e| format!("{e} (for {what})"))?;
        }
        for (what, digest) in samples::digests() {
            self.digest(&digest).map_err(|e| format!("{e} (for {what})"))?;
        }
        let alert = samples::alert();
        self.alert(&alert).map_err(|e| format!("{e} (for an alert)"))?;
        Ok(())
    }

    /// The body for one event.
    pub fn event(&self, event: &Event, renderer: &Renderer) -> Rendered {
        self.event_as(event, renderer, false)
    }

    /// The body for one event as `test --dry-run` shows it: the default JSON indented (the
    /// same keys, in the same order), a template's result as it is.
    pub fn event_preview(&self, event: &Event, renderer: &Renderer) -> Rendered {
        self.event_as(event, renderer, true)
    }

    fn event_as(&self, event: &Event, renderer: &Renderer, pretty: bool) -> Rendered {
        let capped = event.capped(MAX_MATCHES, MAX_USER);
        let text = renderer.render_plain(&capped).map_err(|e| e.to_string())?;
        let wire = WireEvent::new(event, MAX_MATCHES);
        if !self.body {
            let body = EventBody { r#type: "event", text: &text, event: &wire };
            let json = if pretty { serde_json::to_string_pretty(&body) } else { serde_json::to_string(&body) };
            return json.map_err(|e| format!("cannot encode JSON: {e}"));
        }
        self.render(Key::Body, event_context(&wire, &text, event))
    }

    /// The body for a digest: `digest_body`, else `body`, else the default JSON.
    pub fn digest(&self, digest: &Digest) -> Rendered {
        let events: Vec<WireEvent> = digest.events.iter().map(|e| WireEvent::new(e, MAX_DIGEST_MATCHES)).collect();
        let (title, text, host) = (digest.title(), digest.plain_text(), digest.host());
        let origins = digest.origins().map(|o| flatten(&o.line()));
        let key = if self.digest_body {
            Key::DigestBody
        } else if self.body {
            Key::Body
        } else {
            let body = DigestBody {
                r#type: "digest",
                title: &title,
                origins: origins.as_deref(),
                text: &text,
                host: &host,
                count: events.len(),
                events: &events,
            };
            return serde_json::to_string(&body).map_err(|e| format!("cannot encode JSON: {e}"));
        };
        let mut ctx = BTreeMap::new();
        ctx.insert("type", Value::from("digest"));
        ctx.insert("title", Value::from(title));
        ctx.insert("origins", Value::from(origins));
        ctx.insert("summary", Value::from(digest.summary()));
        ctx.insert("text", Value::from(text));
        ctx.insert("host", Value::from(host));
        ctx.insert("kind", Value::from(digest.dominant_kind().as_str()));
        ctx.insert("count", Value::from(events.len()));
        ctx.insert("events", Value::from_serialize(&events));
        self.render(key, ctx)
    }

    /// The body for an alert: `body` when there is one (so a chat template carries alerts
    /// too), else the default JSON.
    pub fn alert(&self, alert: &Alert) -> Rendered {
        let subject = flatten(&alert.subject);
        let details: Vec<String> = alert.text.lines().map(flatten).collect();
        let details = details.join("\n");
        let text = format!("{subject}\n{details}");
        let wire = WireAlert { subject: &subject, text: &details, recovered: alert.recovered };
        if !self.body {
            let body = AlertBody { r#type: "alert", text: &text, alert: wire };
            return serde_json::to_string(&body).map_err(|e| format!("cannot encode JSON: {e}"));
        }
        let mut ctx = BTreeMap::new();
        ctx.insert("type", Value::from("alert"));
        ctx.insert("text", Value::from(text));
        ctx.insert("subject", Value::from(subject.clone()));
        ctx.insert("details", Value::from(details.clone()));
        ctx.insert("recovered", Value::from(alert.recovered));
        ctx.insert("alert", Value::from_serialize(&wire));
        self.render(Key::Body, ctx)
    }

    fn render(&self, key: Key, ctx: BTreeMap<&'static str, Value>) -> Rendered {
        let template = self.env.get_template(key.name()).map_err(|e| format!("`{}`: {}", key.name(), one_line(&e)))?;
        let out = template.render(ctx).map_err(|e| format!("`{}` cannot be rendered: {}", key.name(), one_line(&e)))?;
        if self.json {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&out) {
                let hint = if e.is_eof() {
                    "Is a closing `}` or `]` missing?"
                } else {
                    "Every value a JSON body prints is written as JSON already, quotes included: write \
                     `\"text\": {{ text }}` or `{{ user | tojson }}`, never `\"{{ user }}\"` (quotes around a value); \
                     join text with `~`: `{{ \"banned \" ~ ip }}`"
                };
                return Err(format!("`{}` does not give valid JSON: {e}, near {}. {hint}", key.name(), near(&out, &e)));
            }
        }
        Ok(out)
    }
}

/// The template variables for one event.
fn event_context(wire: &WireEvent, text: &str, event: &Event) -> BTreeMap<&'static str, Value> {
    let opt = |v: &Option<String>| v.clone().map(Value::from).unwrap_or(Value::from(()));
    let mut ctx = BTreeMap::new();
    ctx.insert("type", Value::from("event"));
    ctx.insert("text", Value::from(text));
    ctx.insert("kind", Value::from(wire.kind));
    ctx.insert("jail", Value::from(wire.jail.clone()));
    ctx.insert("id", opt(&wire.id));
    ctx.insert("ip", opt(&wire.ip));
    ctx.insert("is_ip", Value::from(wire.ip.is_some()));
    ctx.insert("failures", wire.failures.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("time", wire.time.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("time_iso", wire.time.and_then(time_iso).map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("bantime", wire.bantime.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("bantime_human", event.bantime.map(|b| Value::from(human_duration(b))).unwrap_or(Value::from(())));
    ctx.insert("restored", Value::from(wire.restored));
    ctx.insert("user", opt(&wire.user));
    ctx.insert("matches", opt(&wire.matches));
    ctx.insert("host", Value::from(wire.host.clone()));
    ctx.insert("bancount", wire.bancount.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("repeat", event.repeat().map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("hostname", opt(&wire.hostname));
    ctx.insert("hostname_confirmed", wire.hostname_confirmed.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("country", opt(&wire.country));
    ctx.insert("country_code", opt(&wire.country_code));
    ctx.insert("city", opt(&wire.city));
    ctx.insert("asn", wire.asn.map(Value::from).unwrap_or(Value::from(())));
    ctx.insert("as_org", opt(&wire.as_org));
    let described = flatten(&event.context.describe());
    ctx.insert("context", if described.is_empty() { Value::from(()) } else { Value::from(described) });
    ctx.insert("event", Value::from_serialize(wire));
    ctx
}

/// RFC 3339 in UTC, whole seconds.
fn time_iso(epoch: f64) -> Option<String> {
    (0.0..=1e11)
        .contains(&epoch)
        .then(|| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch as u64)).to_string())
}

/// minijinja's error on one line, with its cause.
fn one_line(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    flatten(&s)
}

/// A few characters of the rendered body around where the JSON parser gave up.
fn near(out: &str, e: &serde_json::Error) -> String {
    let line = out.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    let col = e.column().saturating_sub(1);
    let chars: Vec<char> = line.chars().collect();
    let start = col.saturating_sub(30).min(chars.len());
    let end = (col + 10).min(chars.len());
    format!("`{}`", flatten(&chars[start..end].iter().collect::<String>()))
}

/// The events, digests and alert every template is tried with at config time: each kind,
/// missing fields, and an attacker's best attempt at breaking out of a JSON string.
pub mod samples {
    use super::*;

    /// What an attacker may put into a user name or a log line.
    pub const HOSTILE: &str = "x\", \"injected\": true, \"y\": \"\\\u{0}\u{1b}[1m\r\nX-Injected: 1\n</script><!channel> @everyone {{ }} ' ` \u{202e}\u{fffd}😀";

    /// (what it is, the event).
    pub fn events() -> Vec<(&'static str, Event)> {
        let mut ban = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
        ban.failures = Some(5);
        ban.time = Some(1_700_000_000.5);
        ban.bantime = Some(-1);
        ban.user = Some(HOSTILE.to_owned());
        ban.matches = Some(format!("{HOSTILE}\n{HOSTILE}"));
        // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
        ban.bancount = Some(4);
        ban.context = f2b_notify_core::Context {
            hostname: Some(HOSTILE.to_owned()),
            hostname_confirmed: Some(false),
            country: Some(HOSTILE.to_owned()),
            country_code: Some("JP".to_owned()),
            city: Some(HOSTILE.to_owned()),
            asn: Some(64500),
            as_org: Some(HOSTILE.to_owned()),
        };
        let mut odd = Event::target_event(EventKind::Ban, "jail\"\\", HOSTILE, "host\"\r\n");
        odd.restored = true;
        vec![
            ("a ban whose user name, log lines and enrichment hold quotes, backslashes and line breaks", ban),
            ("a ban of an id that is no address, with no failures, time or ban time", odd),
            ("an unban", Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example")),
            ("a jail start", Event::jail_event(EventKind::Start, "sshd", "host.example")),
            ("a jail stop", Event::jail_event(EventKind::Stop, "sshd", "host.example")),
        ]
    }

    /// (what it is, the digest).
    pub fn digests() -> Vec<(&'static str, Digest)> {
        let events = events().into_iter().map(|(_, e)| e).collect();
        vec![("a digest", Digest::new(events))]
    }

    /// An alert quoting a remote error.
    pub fn alert() -> Alert {
        Alert {
            subject: "f2b-notify: sink `ops` has been failing for 10 min".to_owned(),
            text: format!("last error: {HOSTILE}"),
            recovered: false,
        }
    }
}
