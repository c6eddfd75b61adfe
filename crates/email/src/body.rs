//! The parts of a mail: the subject (header-safe), the plain and HTML bodies, and the
//! Message-ID and thread id that let mail clients group the ban and unban of one address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{flatten as flat, human_duration, truncate_chars, Event, EventKind};
use lettre::message::Mailbox;

/// The default subject, worded like "[Fail2Ban] sshd: banned 203.0.113.7 from host.example".
pub const DEFAULT_SUBJECT: &str = "[Fail2Ban] {{ jail }}: \
{% if kind == 'ban' %}banned {{ id }} from {{ host }}\
{% elif kind == 'unban' %}unbanned {{ id }} from {{ host }}\
{% elif kind == 'start' %}jail started on {{ host }}\
{% else %}jail stopped on {{ host }}{% endif %}";

/// Matched log lines shown at most (the last ones).
const MAX_MATCH_LINES: usize = 50;
/// Characters of one matched line shown at most.
const MAX_MATCH_LINE: usize = 500;
/// Characters of a user name shown at most.
const MAX_USER: usize = 200;
/// Characters of a subject at most.
const MAX_SUBJECT: usize = 200;

/// One line of text fit for a header: control characters (a newline that would start a new
/// header) become spaces, runs of space collapse, and the length is capped.
pub fn header_safe(s: &str) -> String {
    let collapsed = flat(s).split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, MAX_SUBJECT).into_owned()
}

/// The labelled fields, in reading order: the event's, then what enrichment found (host
/// name, location, network) and the ban's repeat.
fn fields(event: &Event) -> Vec<(&'static str, String)> {
    let mut out = vec![("Jail", flat(&event.jail))];
    if let Some(id) = &event.id {
        if event.ip.is_some() {
            out.push(("Address", flat(id)));
        } else {
            out.push(("Banned id", format!("{} (not an IP address)", flat(id))));
        }
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        out.push(("Failures", f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            out.push(("Ban time", human_duration(b)));
        }
    }
    if let Some(t) = event.time.filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e11) {
        let when = UNIX_EPOCH + Duration::from_secs(t as u64);
        out.push(("Time", humantime::format_rfc3339_seconds(when).to_string()));
    }
    if !event.host.is_empty() {
        out.push(("Host", flat(&event.host)));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.is_empty()) {
        out.push(("User", truncate_chars(&flat(u), MAX_USER).into_owned()));
    }
    if event.restored {
        out.push(("Restored", "yes, at Fail2Ban's restart".to_owned()));
    }
    // What enrichment found and the repeat; one line each like every value (the plain body
    // is text, the HTML one escapes them).
    out.extend(event.context_fields().into_iter().map(|(label, value)| (label, flat(&value))));
    out
}

/// The last few matched lines, each cut, and how many were left out.
fn match_lines(event: &Event) -> (Vec<String>, usize) {
    let Some(m) = event.matches.as_deref() else { return (Vec::new(), 0) };
    let all: Vec<&str> = m.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = all.len().saturating_sub(MAX_MATCH_LINES);
    let shown = all[skip..].iter().map(|l| truncate_chars(&flat(l), MAX_MATCH_LINE).into_owned()).collect();
    (shown, skip)
}

/// The plain-text body. The lead (the template's text) is the body's first line and stays
/// one: a CR/LF that reached it (from a template's `matches`, say) must not fake a line.
pub fn plain(event: &Event, lead: &str) -> String {
    let mut out = String::new();
    out.push_str(&flat(lead));
    out.push_str("\n\n");
    for (label, value) in fields(event) {
        out.push_str(&format!("{:<10} {value}\n", format!("{label}:")));
    }
    let (lines, skipped) = match_lines(event);
    if !lines.is_empty() {
        out.push_str("\nMatched log lines");
        if skipped > 0 {
            out.push_str(&format!(" (the last {}; {skipped} earlier not shown)", lines.len()));
        }
        out.push_str(":\n");
        for l in lines {
            out.push_str("  ");
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str("\n-- \nsent by f2b-notify\n");
    out
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML alternative: the same content, every value escaped.
pub fn html(event: &Event, lead: &str) -> String {
    let mut out = format!("<!DOCTYPE html><html><body><p><strong>{}</strong></p><table>", esc(&flat(lead)));
    for (label, value) in fields(event) {
        out.push_str(&format!("<tr><th align=\"left\">{}</th><td><code>{}</code></td></tr>", esc(label), esc(&value)));
    }
    out.push_str("</table>");
    let (lines, skipped) = match_lines(event);
    if !lines.is_empty() {
        out.push_str("<p>Matched log lines");
        if skipped > 0 {
            out.push_str(&format!(" (the last {}; {skipped} earlier not shown)", lines.len()));
        }
        out.push_str(":</p><pre>");
        out.push_str(&esc(&lines.join("\n")));
        out.push_str("</pre>");
    }
    out.push_str("<p><small>sent by f2b-notify</small></p></body></html>");
    out
}

/// A token fit for a message id: letters, digits, `.` and `-`; anything else becomes `-`.
fn token(s: &str) -> String {
    let t: String = s.chars().take(100).map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    if t.is_empty() {
        "none".to_owned()
    } else {
        t
    }
}

fn domain(from: &Mailbox) -> String {
    token(from.email.domain())
}

/// A unique Message-ID for this mail.
pub fn message_id(what: &str, from: &Mailbox) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("<f2b-notify.{what}.{nanos}.{}.{n}@{}>", std::process::id(), domain(from))
}

/// The id every mail about one address in one jail refers to (start/stop: about one jail), so
/// that clients thread a ban with its unban.
pub fn thread_id(event: &Event, from: &Mailbox) -> String {
    match &event.id {
        Some(id) => {
            format!("<f2b-notify.{}.{}.{}@{}>", token(&event.host), token(&event.jail), token(id), domain(from))
        }
        None => format!("<f2b-notify.{}.{}@{}>", token(&event.host), token(&event.jail), domain(from)),
    }
}
