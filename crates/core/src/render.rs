//! Message rendering shared by every sink: the default texts (worded like the classic Slack
//! action) and per-sink template overrides in minijinja.
//!
//! Template variables, for every event:
//! `kind` (start/stop/ban/unban), `jail`, `host`, and for ban/unban `id` (the banned id as
//! Fail2Ban gave it), `ip` (the same when it is an IP address, else empty), `is_ip`,
//! `failures`, `time` (epoch seconds), `time_iso` (RFC 3339, UTC), `bantime` (seconds, -1 for
//! permanent), `bantime_human` ("10 min", "permanent"), `restored`, `user` and `matches`
//! (both from the log line, so attacker-controlled), `bancount` (how often Fail2Ban banned the
//! address, this ban included) and `repeat` ("4th" when that is 2 or more). What `[enrich]`
//! found: `hostname` (the PTR name), `hostname_confirmed`, `country`, `country_code`, `city`,
//! `asn` (a number), `as_org`, and `context` (all of it on one line: `host.example · Tokyo,
//! Japan (JP) · AS64500 Example Net`). Missing values are empty. The PTR name and the
//! databases' names are attacker-influenced: they are escaped like the log line's values.
//!
//! String values are passed through the sink's escaper *before* they reach the template, so a
//! template author cannot forget to escape attacker text for Slack mrkdwn. `jail`, `host`, `id`
//! and `user` are flattened to one line first (control characters become spaces): the id is
//! whatever Fail2Ban's `<ip>` held, and a CR/LF in it must not fake a line in any sink's
//! text. `matches` keeps its line breaks (it is several log lines); each sink lays it out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use minijinja::{Environment, Value};
use serde::Deserialize;

use crate::{Event, EventKind};

/// Per-event template overrides for one sink. An event without an override uses the default
/// text. Templates are minijinja (Jinja2) syntax; see the module docs for the variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// Text for a jail start.
    pub start: Option<String>,
    /// Text for a jail stop.
    pub stop: Option<String>,
    /// Text for a ban.
    pub ban: Option<String>,
    /// Text for an unban.
    pub unban: Option<String>,
}

impl Templates {
    fn get(&self, kind: EventKind) -> Option<&str> {
        match kind {
            EventKind::Start => self.start.as_deref(),
            EventKind::Stop => self.stop.as_deref(),
            EventKind::Ban => self.ban.as_deref(),
            EventKind::Unban => self.unban.as_deref(),
        }
    }
}

const DEFAULT_START: &str = "Fail2Ban ({{ jail }}) jail started on {{ host }}";
const DEFAULT_STOP: &str = "Fail2Ban ({{ jail }}) jail stopped on {{ host }}";
const DEFAULT_BAN: &str =
    "Fail2Ban ({{ jail }}) banned {% if is_ip %}IP {{ id }}{% else %}{{ id }} (not an IP address){% endif %}\
{% if failures %} for {{ failures }} failure(s){% endif %}{% if repeat %}, the {{ repeat }} time{% endif %}\
{% if restored %} (restored at restart){% endif %}";
const DEFAULT_UNBAN: &str =
    "Fail2Ban ({{ jail }}) unbanned {% if is_ip %}IP {{ id }}{% else %}{{ id }} (not an IP address){% endif %}";

/// A template that does not compile or render. Names the event and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template for `{kind}`: {reason}")]
pub struct TemplateError {
    /// The event whose template failed.
    pub kind: EventKind,
    /// What minijinja said.
    pub reason: String,
}

/// Compiled templates for one sink.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new(&Templates::default()).expect("built-in templates compile")
    }
}

impl Renderer {
    /// Compiles the overrides (and the defaults for the rest); a syntax error is reported now,
    /// when the config is loaded, not at the first ban.
    pub fn new(templates: &Templates) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // Whitespace handling as people expect from config files: no trailing newline games.
        env.set_keep_trailing_newline(false);
        for kind in EventKind::ALL {
            let source = templates.get(kind).unwrap_or(match kind {
                EventKind::Start => DEFAULT_START,
                EventKind::Stop => DEFAULT_STOP,
                EventKind::Ban => DEFAULT_BAN,
                EventKind::Unban => DEFAULT_UNBAN,
            });
            env.add_template_owned(kind.as_str().to_owned(), source.to_owned())
                .map_err(|e| TemplateError { kind, reason: e.to_string() })?;
        }
        Ok(Self { env })
    }

    /// Renders `event` with its template; `escape` is applied to every text value first.
    pub fn render(&self, event: &Event, escape: fn(&str) -> Cow<'_, str>) -> Result<String, TemplateError> {
        let ctx = context(event, escape);
        let template = self
            .env
            .get_template(event.kind.as_str())
            .map_err(|e| TemplateError { kind: event.kind, reason: e.to_string() })?;
        template
            .render(ctx)
            .map(|s| s.trim().to_owned())
            .map_err(|e| TemplateError { kind: event.kind, reason: e.to_string() })
    }

    /// Renders with no escaping (plain text: stdout, email bodies).
    pub fn render_plain(&self, event: &Event) -> Result<String, TemplateError> {
        self.render(event, no_escape)
    }
}

fn no_escape(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

fn context(event: &Event, escape: fn(&str) -> Cow<'_, str>) -> BTreeMap<&'static str, Value> {
    let text = |s: &str| Value::from(escape(s).into_owned());
    let line = |s: &str| Value::from(escape(&flatten(s)).into_owned());
    let opt_line = |s: &Option<String>| s.as_deref().map(line).unwrap_or_else(|| Value::from(""));
    let mut ctx = BTreeMap::new();
    ctx.insert("kind", Value::from(event.kind.as_str()));
    ctx.insert("jail", line(&event.jail));
    ctx.insert("host", line(&event.host));
    ctx.insert("id", opt_line(&event.id));
    ctx.insert("ip", event.ip.map(|ip| Value::from(ip.to_string())).unwrap_or_else(|| Value::from("")));
    ctx.insert("is_ip", Value::from(event.ip.is_some()));
    ctx.insert("failures", event.failures.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("time", event.time.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("time_iso", Value::from(event.time.map(time_iso).unwrap_or_default()));
    ctx.insert("bantime", event.bantime.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("bantime_human", Value::from(event.bantime.map(human_duration).unwrap_or_default()));
    ctx.insert("restored", Value::from(event.restored));
    ctx.insert("user", opt_line(&event.user));
    ctx.insert("matches", event.matches.as_deref().map(text).unwrap_or_else(|| Value::from("")));
    ctx.insert("bancount", event.bancount.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("repeat", Value::from(event.repeat().unwrap_or_default()));
    let c = &event.context;
    ctx.insert("hostname", opt_line(&c.hostname));
    ctx.insert("hostname_confirmed", c.hostname_confirmed.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("country", opt_line(&c.country));
    ctx.insert("country_code", opt_line(&c.country_code));
    ctx.insert("city", opt_line(&c.city));
    ctx.insert("asn", c.asn.map(Value::from).unwrap_or_else(|| Value::from("")));
    ctx.insert("as_org", opt_line(&c.as_org));
    ctx.insert("context", line(&c.describe()));
    ctx
}

fn time_iso(epoch: f64) -> String {
    if !(0.0..=1e11).contains(&epoch) {
        return String::new();
    }
    let t = UNIX_EPOCH + Duration::from_secs(epoch as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A ban time as people say it: "permanent" for a negative value, else the two largest units
/// ("10 min", "1 h 30 min", "2 d").
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "permanent".to_owned();
    }
    if secs == 0 {
        return "0 s".to_owned();
    }
    const UNITS: [(i64, &str); 5] = [(604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    // The largest unit, then the next one down if it is not zero ("2 d", not "2 d 5 s").
    let Some(i) = UNITS.iter().position(|&(size, _)| secs >= size) else { return "0 s".to_owned() };
    let (size, name) = UNITS[i];
    let mut parts = vec![format!("{} {name}", secs / size)];
    if let Some(&(next, next_name)) = UNITS.get(i + 1) {
        let n = (secs % size) / next;
        if n > 0 {
            parts.push(format!("{n} {next_name}"));
        }
    }
    parts.join(" ")
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` become entities, and nothing else is
/// touched (Slack decodes exactly those three). Applied once, to values, never to markup.
pub fn escape_slack(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One line of text: every control character (newline, carriage return, tab, escape) becomes
/// a space, so a value from a log line cannot start a new line, header or record.
pub fn flatten(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The visible marker at the end of a cut text: ` … [cut 42 chars]`.
pub fn cut_marker(cut: usize) -> String {
    format!(" … [cut {cut} chars]")
}

/// One line of text fit to show: every control character becomes a space (a CR/LF cannot
/// fake a line), and every bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069)
/// becomes `�`, so that a log line cannot make the text after it read backwards in a
/// notification (an address shown reversed).
pub fn flatten_shown(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '\u{fffd}',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Cuts `s` to at most `max` characters (on a char boundary), ending with a visible marker
/// that says how much was cut, so nobody mistakes a cut text for the whole.
pub fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    let count = s.chars().count();
    if count <= max {
        return Cow::Borrowed(s);
    }
    // The marker's length depends on the number it holds; two rounds settle it.
    let mut keep = max;
    let mut marker = String::new();
    for _ in 0..2 {
        marker = cut_marker(count - keep);
        keep = max.saturating_sub(marker.chars().count());
    }
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(&marker);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban() -> Event {
        let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
        e.failures = Some(5);
        e.bantime = Some(600);
        e.time = Some(1_700_000_000.5);
        e.user = Some("<!channel> & co".into());
        e
    }

    #[test]
    fn default_texts() {
        let r = Renderer::default();
        assert_eq!(r.render_plain(&ban()).unwrap(), "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
        let mut manual = ban();
        manual.failures = Some(0);
        manual.restored = true;
        assert_eq!(r.render_plain(&manual).unwrap(), "Fail2Ban (sshd) banned IP 203.0.113.7 (restored at restart)");
        let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "h");
        assert_eq!(r.render_plain(&unban).unwrap(), "Fail2Ban (sshd) unbanned IP 2001:db8::1");
        let other = Event::target_event(EventKind::Unban, "mail", "bob@example", "h");
        assert_eq!(r.render_plain(&other).unwrap(), "Fail2Ban (mail) unbanned bob@example (not an IP address)");
        let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
        assert_eq!(r.render_plain(&start).unwrap(), "Fail2Ban (sshd) jail started on host.example");
        let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
        assert_eq!(r.render_plain(&stop).unwrap(), "Fail2Ban (sshd) jail stopped on host.example");
    }

    #[test]
    fn overrides_and_variables() {
        let t = Templates {
            ban: Some("{{ kind }} {{ jail }} {{ ip }} {{ bantime_human }} {{ time_iso }} user={{ user }}".into()),
            ..Templates::default()
        };
        let r = Renderer::new(&t).unwrap();
        assert_eq!(
            r.render(&ban(), escape_slack).unwrap(),
            "ban sshd 203.0.113.7 10 min 2023-11-14T22:13:20Z user=&lt;!channel&gt; &amp; co"
        );
        // The other events keep their defaults.
        let start = Event::jail_event(EventKind::Start, "sshd", "h");
        assert_eq!(r.render_plain(&start).unwrap(), "Fail2Ban (sshd) jail started on h");
    }

    #[test]
    fn repeats_and_context() {
        let mut e = ban();
        e.bancount = Some(4);
        let r = Renderer::default();
        assert_eq!(r.render_plain(&e).unwrap(), "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time");
        e.context = crate::Context {
            hostname: Some("<!channel>.example".into()),
            hostname_confirmed: Some(false),
            country: Some("Japan".into()),
            country_code: Some("JP".into()),
            city: Some("Tokyo".into()),
            asn: Some(64500),
            as_org: Some("Example & Co".into()),
        };
        let t = Templates {
            ban: Some(
                "{{ hostname }}|{{ hostname_confirmed }}|{{ country }}|{{ country_code }}|{{ city }}|AS{{ asn }}|{{ as_org }}|{{ bancount }}|{{ context }}"
                    .into(),
            ),
            ..Templates::default()
        };
        assert_eq!(
            Renderer::new(&t).unwrap().render(&e, escape_slack).unwrap(),
            "&lt;!channel&gt;.example|False|Japan|JP|Tokyo|AS64500|Example &amp; Co|4|\
&lt;!channel&gt;.example (unconfirmed) · Tokyo, Japan (JP) · AS64500 Example &amp; Co"
        );
        // Nothing found, nothing shown.
        let t = Templates {
            ban: Some("[{{ hostname }}{{ asn }}{{ context }}{{ repeat }}]".into()),
            ..Templates::default()
        };
        assert_eq!(Renderer::new(&t).unwrap().render_plain(&ban()).unwrap(), "[]");
    }

    #[test]
    fn bad_template_is_reported_at_load() {
        let t = Templates { unban: Some("{% if %}".into()), ..Templates::default() };
        let err = Renderer::new(&t).unwrap_err();
        assert_eq!(err.kind, EventKind::Unban);
        assert!(err.to_string().starts_with("template for `unban`"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(-1), "permanent");
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(5400), "1 h 30 min");
        assert_eq!(human_duration(86_400 * 2 + 5), "2 d");
        assert_eq!(human_duration(604_800), "1 w");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_slack("plain"), "plain");
        assert_eq!(escape_slack("<!here> <http://x|bank> a&b"), "&lt;!here&gt; &lt;http://x|bank&gt; a&amp;b");
        // Only the three: quotes and already-escaped text are left for Slack to show as is.
        assert_eq!(escape_slack("\"'&amp;"), "\"'&amp;amp;");
    }

    #[test]
    fn hostile_ids_jails_hosts_and_users_render_on_one_line() {
        let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
        let mut e = Event::target_event(EventKind::Ban, "sshd\nFAKE", evil, "h\r\nFAKE");
        e.user = Some("root\nFAKE".into());
        e.matches = Some("line 1\nline 2".into());
        let r = Renderer::default();
        let text = r.render_plain(&e).unwrap();
        assert_eq!(text, "Fail2Ban (sshd FAKE) banned 198.51.100.1  FAKE LINE: banned 10.0.0.1 (not an IP address)");
        let t = Templates { ban: Some("{{ jail }}|{{ host }}|{{ id }}|{{ user }}".into()), ..Templates::default() };
        let text = Renderer::new(&t).unwrap().render(&e, escape_slack).unwrap();
        assert!(!text.contains(['\r', '\n']), "{text:?}");
        // The matched lines stay lines: they are several by nature.
        let t = Templates { ban: Some("{{ matches }}".into()), ..Templates::default() };
        assert_eq!(Renderer::new(&t).unwrap().render_plain(&e).unwrap(), "line 1\nline 2");
    }

    #[test]
    fn flattening() {
        assert_eq!(flatten("a\r\nBcc: x\t\u{1b}[1m"), "a  Bcc: x  [1m");
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate_chars("short", 10), "short");
        let long = "é".repeat(100);
        let cut = truncate_chars(&long, 40);
        assert!(cut.chars().count() <= 40);
        let kept = cut.chars().take_while(|&c| c == 'é').count();
        assert!(cut.ends_with(&format!("[cut {} chars]", 100 - kept)), "{cut}");
    }
}
