//! The Alertmanager alert for one event: its labels (what the alert *is*: Alertmanager
//! groups, deduplicates, silences and routes by them), its annotations (what a person reads)
//! and its time range (`startsAt`, `endsAt`; an `endsAt` in the past is a resolved alert).
//!
//! Labels hold only the alert's name, the jail, the banned id and the host (and the config's
//! static labels), each flattened to one line and cut to [`MAX_LABEL`]: the same event always
//! gives the same labels, so a ban and its unban are one alert, and a restored ban posted again
//! is the same alert (Alertmanager merges it). Log text (the user name, the matched lines) goes
//! only into annotations: the templates that turn alerts into Slack or mail messages are the
//! administrator's, not ours, and label values often end up in URLs and routing rules. What
//! enrichment found (host name, location, network, country code, AS number) and Fail2Ban's
//! ban count are annotations too: the alert's identity stays the same whatever the lookups
//! give each time.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{flatten, human_duration, truncate_chars, Alert, Event, EventKind, Renderer, SinkError};
use serde_json::{Map, Value};

/// `alertname` of a ban (firing) and its unban (resolved).
pub const BAN_ALERT: &str = "Fail2BanBan";
/// `alertname` of a stopped jail (firing) and its start (resolved), with `jail_alerts = true`.
pub const JAIL_ALERT: &str = "Fail2BanJail";
/// `alertname` of f2b-notify's own alerts about another sink: firing while it fails,
/// resolved when it recovers.
pub const SINK_ALERT: &str = "F2bNotifySinkFailing";

/// The labels the sink sets itself; the config's `labels` cannot override them.
pub const OWN_LABELS: [&str; 5] = ["alertname", "jail", "ip", "host", "sink"];

/// Longest label value (id, jail, host), in characters.
pub const MAX_LABEL: usize = 200;
/// Longest `summary` annotation, in characters.
pub const MAX_SUMMARY: usize = 1_000;
/// Longest `user` annotation, in characters.
pub const MAX_USER: usize = 200;
/// Longest annotation of what enrichment found (`hostname`, `location`, `network`), in
/// characters: a DNS name is at most 253.
pub const MAX_CONTEXT: usize = 300;
/// Matched log lines kept at most (the last ones).
pub const MAX_MATCH_LINES: usize = 10;
/// Characters of one matched line kept at most.
pub const MAX_MATCH_LINE: usize = 300;
/// Longest `description` of an alert about f2b-notify itself.
pub const MAX_DESCRIPTION: usize = 4_000;

/// How long a permanent ban (bantime -1) or a stopped jail stays firing when nothing resolves
/// it: ten years, "until the unban" for any practical purpose. Alertmanager keeps a firing
/// alert until its `endsAt`; an alert without one would resolve by itself after
/// `resolve_timeout` (5 min by default), which would end a permanent ban's alert at once.
pub const FOREVER: Duration = Duration::from_secs(3650 * 86_400);

/// How long an alert about a failing sink stays firing unless its recovery resolves it (a
/// worker that stopped while the sink failed never sends the recovery).
pub const SINK_ALERT_SPAN: Duration = Duration::from_secs(86_400);

/// One line, at most `max` characters, with a visible cut marker.
fn line(text: &str, max: usize) -> String {
    truncate_chars(&flatten(text), max).into_owned()
}

/// RFC 3339 in UTC with milliseconds, what Alertmanager's `date-time` reads.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The event's own time (Fail2Ban's `<time>`), or `now` when it has none or an absurd one.
fn event_time(event: &Event, now: SystemTime) -> SystemTime {
    match event.time {
        Some(t) if t.is_finite() && (0.0..=1e11).contains(&t) => UNIX_EPOCH + Duration::from_secs_f64(t),
        _ => now,
    }
}

/// The last [`MAX_MATCH_LINES`] matched lines, each one line of at most [`MAX_MATCH_LINE`],
/// after a line that counts the ones left out.
pub fn matches_text(matches: &str) -> String {
    let lines: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(MAX_MATCH_LINES);
    let mut out = Vec::with_capacity(MAX_MATCH_LINES + 1);
    if skip > 0 {
        out.push(format!("… {skip} earlier line(s) not shown"));
    }
    out.extend(lines[skip..].iter().map(|l| line(l.trim_end(), MAX_MATCH_LINE)));
    out.join("\n")
}

/// The labels every alert of this sink starts from: `alertname` and the config's own.
fn base_labels(alertname: &str, extra: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut labels: Map<String, Value> = extra.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    labels.insert("alertname".to_owned(), Value::from(alertname));
    labels
}

fn alert(labels: Map<String, Value>, annotations: Map<String, Value>, starts: SystemTime, ends: SystemTime) -> Value {
    // A start after the end is refused ("start time must be before end time"): the event's
    // own time can be ahead of this clock.
    let starts = starts.min(ends);
    let mut obj = Map::new();
    obj.insert("labels".to_owned(), Value::Object(labels));
    obj.insert("annotations".to_owned(), Value::Object(annotations));
    obj.insert("startsAt".to_owned(), Value::from(timestamp(starts)));
    obj.insert("endsAt".to_owned(), Value::from(timestamp(ends)));
    Value::Object(obj)
}

/// The alert for `event`, or `None` for a jail start or stop when `jail_alerts` is off.
///
/// - ban: `Fail2BanBan`, firing from the ban's time until the ban's end (`time + bantime`, or
///   [`FOREVER`] for a permanent ban);
/// - unban: the same labels, resolved now;
/// - jail stop (with `jail_alerts`): `Fail2BanJail`, firing until the jail starts again;
/// - jail start (with `jail_alerts`): the same labels, resolved now.
pub fn for_event(
    event: &Event,
    renderer: &Renderer,
    extra: &BTreeMap<String, String>,
    jail_alerts: bool,
    now: SystemTime,
) -> Result<Option<Value>, SinkError> {
    let target = event.kind.has_target();
    if !target && !jail_alerts {
        return Ok(None);
    }
    let mut labels = base_labels(if target { BAN_ALERT } else { JAIL_ALERT }, extra);
    labels.insert("jail".to_owned(), Value::from(line(&event.jail, MAX_LABEL)));
    if target {
        labels.insert("ip".to_owned(), Value::from(line(event.id.as_deref().unwrap_or(""), MAX_LABEL)));
    }
    labels.insert("host".to_owned(), Value::from(line(&event.host, MAX_LABEL)));

    let summary = renderer.render_plain(event).map_err(|e| SinkError::permanent(e.to_string()))?;
    let mut annotations = Map::new();
    annotations.insert("summary".to_owned(), Value::from(line(&summary, MAX_SUMMARY)));
    if let Some(failures) = event.failures {
        annotations.insert("failures".to_owned(), Value::from(failures.to_string()));
    }
    if let Some(bantime) = event.bantime {
        annotations.insert("bantime".to_owned(), Value::from(human_duration(bantime)));
    }
    if event.restored {
        annotations.insert("restored".to_owned(), Value::from("true"));
    }
    if let Some(user) = event.user.as_deref().filter(|u| !u.trim().is_empty()) {
        annotations.insert("user".to_owned(), Value::from(line(user, MAX_USER)));
    }
    if let Some(matches) = event.matches.as_deref().filter(|m| !m.trim().is_empty()) {
        annotations.insert("matches".to_owned(), Value::from(matches_text(matches)));
    }
    // What enrichment found, as annotations only: a label would make it part of the alert's
    // identity, and the lookups are made again for the unban (a DNS answer late once, a
    // database updated in between), whose labels must be the ban's to resolve its alert. The
    // PTR name is whatever the owner of the address's reverse zone wrote: data, like the user.
    let c = &event.context;
    let found = [
        ("hostname", c.hostname_shown()),
        ("location", c.place()),
        ("network", c.network()),
        ("country_code", c.country_code.clone()),
        ("asn", c.asn.map(|n| n.to_string())),
        ("bancount", event.bancount.map(|n| n.to_string())),
    ];
    for (name, value) in found {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            annotations.insert(name.to_owned(), Value::from(line(&v, MAX_CONTEXT)));
        }
    }

    let starts = event_time(event, now);
    let ends = match event.kind {
        EventKind::Ban => {
            let span = match event.bantime {
                Some(secs) if secs >= 0 => Duration::from_secs(secs.unsigned_abs()).min(FOREVER),
                Some(_) => FOREVER,
                // No ban time given (a hand-made `notify ban`): Fail2Ban's default, 10 min.
                None => Duration::from_secs(600),
            };
            starts + span
        }
        EventKind::Stop => starts + FOREVER,
        EventKind::Unban | EventKind::Start => now,
    };
    Ok(Some(alert(labels, annotations, starts, ends)))
}

/// The alert for f2b-notify's own message about another sink (`[delivery] alert`):
/// `F2bNotifySinkFailing`, labelled with the sink and host the subject names, firing for a
/// day unless the recovery resolves it.
pub fn for_sink_alert(msg: &Alert, extra: &BTreeMap<String, String>, now: SystemTime) -> Value {
    let mut labels = base_labels(SINK_ALERT, extra);
    // The worker's subjects read "f2b-notify on HOST: sink `NAME` …" (NAME is [a-z0-9_]).
    let rest = msg.subject.strip_prefix("f2b-notify on ").unwrap_or("");
    if let Some((host, tail)) = rest.split_once(": sink `") {
        labels.insert("host".to_owned(), Value::from(line(host, MAX_LABEL)));
        if let Some((sink, _)) = tail.split_once('`') {
            labels.insert("sink".to_owned(), Value::from(line(sink, MAX_LABEL)));
        }
    }
    let mut annotations = Map::new();
    annotations.insert("summary".to_owned(), Value::from(line(&msg.subject, MAX_SUMMARY)));
    annotations.insert("description".to_owned(), Value::from(truncate_chars(&msg.text, MAX_DESCRIPTION).into_owned()));
    let ends = if msg.recovered { now } else { now + SINK_ALERT_SPAN };
    alert(labels, annotations, now, ends)
}

/// What identifies an alert in Alertmanager: its label set (as canonical JSON, the keys
/// sorted).
pub fn identity(alert: &Value) -> String {
    alert.get("labels").map(Value::to_string).unwrap_or_default()
}

/// `older` then `newer`, one alert per label set: a later alert replaces an earlier one with
/// the same labels (its state is the newer), and goes to the end (the order a post applies
/// them in).
pub fn merge(older: &[Value], newer: &[Value]) -> Vec<Value> {
    let mut slots: Vec<Option<&Value>> = Vec::with_capacity(older.len() + newer.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for alert in older.iter().chain(newer) {
        if let Some(earlier) = index.insert(identity(alert), slots.len()) {
            slots[earlier] = None;
        }
        slots.push(Some(alert));
    }
    slots.into_iter().flatten().cloned().collect()
}
