//! The content of the `m.room.message` event for one event, a digest or an alert: an
//! `m.notice` (the msgtype the spec gives automated senders: clients show it apart, and no bot
//! answers it) with a plain `body` and an HTML `formatted_body`, and `"m.mentions": {}`.
//!
//! Every value is data: in `formatted_body` it is HTML-escaped once (`& < > " '`) and only tags
//! from the spec's suggested list are written (`p`, `b`, `br`, `code`, `pre`), so a `<b>` or a
//! `<a href>` in a log line shows as text. `"m.mentions": {}` says that the message mentions
//! nobody: an `@room` or a user id in a log line pings no one (the spec recommends it on every
//! event so that the legacy body-matching push rules do not fire).
//!
//! The spec limits a whole event to 65536 bytes of canonical JSON, signatures and all; the
//! content is kept to [`MAX_CONTENT`] bytes of JSON, which leaves room for the envelope the
//! homeserver adds. Every text is cut with a visible marker, never silently.
//! Sources: <https://spec.matrix.org/latest/client-server-api/#mnotice>,
//! <https://spec.matrix.org/latest/client-server-api/#user-and-room-mentions>,
//! <https://spec.matrix.org/latest/client-server-api/#size-limits>.

use std::borrow::Cow;

use f2b_notify_core::ContextValue;
use f2b_notify_core::{
    flatten, human_duration, truncate_chars, Alert, Digest, Event, EventKind, Renderer, TemplateError,
};
use serde_json::{json, Value};

/// The most bytes the content may take as JSON (`body` and `formatted_body` together, with
/// the keys): the event limit is 65536 bytes for everything, and the homeserver's envelope
/// (sender, room id, auth and prev events, hashes, signatures) takes a few hundred more.
pub const MAX_CONTENT: usize = 60_000;
/// Characters of the first line (the template's text) shown at most.
pub const MAX_LEAD: usize = 1_000;
/// Characters of a jail name, host or banned id shown at most.
pub const MAX_VALUE: usize = 300;
/// Characters of a user name shown at most.
pub const MAX_USER: usize = 200;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 20;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 500;
/// Characters of one banned id in a digest shown at most.
pub const MAX_DIGEST_ID: usize = 200;
/// Lines of an alert's text shown at most, and characters of each.
const MAX_ALERT_LINES: usize = 50;
const MAX_ALERT_LINE: usize = 1_000;
/// Bytes kept free for what closes a cut text: the closing tags and the "not listed" note.
const RESERVE: usize = 400;
/// Bytes an edit adds around the content it carries as `m.new_content` at most: the keys,
/// the original's event id (255 bytes at most), and a fallback of one line of at most
/// [`MAX_EDIT_FALLBACK`] characters in both bodies (4 bytes a character, 6 escaped).
pub const EDIT_ROOM: usize = 3_000;
/// Characters of the short fallback of an edit at most.
const MAX_EDIT_FALLBACK: usize = 200;

/// Escapes text for HTML: `&`, `<`, `>`, `"` and `'` become entities. Applied once, to values,
/// never to the markup around them.
pub fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
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
    Cow::Owned(out)
}

/// An `m.notice` content with both bodies and no mentions.
fn content(body: &str, html: &str) -> Value {
    json!({
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {},
    })
}

/// The bytes a content takes as JSON (what the limit counts).
pub fn json_size(content: &Value) -> usize {
    serde_json::to_vec(content).map_or(usize::MAX, |v| v.len())
}

/// The bytes `s` takes inside a JSON string: escapes are per character, so the sizes of the
/// pieces of a text add up to the size of the text.
fn encoded(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Both bodies, written side by side within the byte budget of one content.
struct Out {
    plain: String,
    html: String,
    used: usize,
    limit: usize,
}

impl Out {
    fn new() -> Self {
        Self::within(MAX_CONTENT)
    }

    /// Both bodies within `max` bytes of content.
    fn within(max: usize) -> Self {
        let overhead = json_size(&content("", ""));
        Self { plain: String::new(), html: String::new(), used: overhead, limit: max - RESERVE }
    }

    fn cost(plain: &str, html: &str) -> usize {
        encoded(plain) + encoded(html)
    }

    fn fits(&self, plain: &str, html: &str) -> bool {
        self.used + Self::cost(plain, html) <= self.limit
    }

    /// Appends without looking at the budget: for what the caps keep small, and for the
    /// closing tags and notes [`RESERVE`] is kept for.
    fn push(&mut self, plain: &str, html: &str) {
        self.used += Self::cost(plain, html);
        self.plain.push_str(plain);
        self.html.push_str(html);
    }

    /// Appends if it fits; says whether it did.
    fn try_push(&mut self, plain: &str, html: &str) -> bool {
        let fits = self.fits(plain, html);
        if fits {
            self.push(plain, html);
        }
        fits
    }

    fn finish(self) -> Value {
        content(self.plain.trim_end(), &self.html)
    }
}

/// One value on one line, cut to `max` characters with a visible marker.
fn value(s: &str, max: usize) -> String {
    truncate_chars(&flatten(s), max).into_owned()
}

/// The labelled fields, in reading order, and whether the value is shown as code.
fn fields(event: &Event) -> Vec<(&'static str, String, bool)> {
    let mut out = vec![("Jail", value(&event.jail, MAX_VALUE), false)];
    if let Some(id) = &event.id {
        let label = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        out.push((label, value(id, MAX_VALUE), true));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        out.push(("Failures", f.to_string(), false));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            out.push(("Ban time", human_duration(b), false));
        }
    }
    if !event.host.is_empty() {
        out.push(("Host", value(&event.host, MAX_VALUE), false));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.is_empty()) {
        out.push(("User", value(u, MAX_USER), true));
    }
    if event.restored {
        out.push(("Restored", "yes, at Fail2Ban's restart".to_owned(), false));
    }
    out
}

/// What enrichment found about the address and the ban's repeat ([`Event::context_fields`]),
/// as fields with a note shown after the value. The PTR name is whatever the owner of the
/// address's reverse zone wrote: as code like the address (where clients link nothing), with
/// "(unconfirmed)" after it; the rest is text, escaped like every value.
fn context_fields(event: &Event) -> Vec<(&'static str, String, bool, &'static str)> {
    event
        .context_parts()
        .into_iter()
        .map(|(label, shown)| match &shown {
            ContextValue::Name { name, .. } => (label, value(name, MAX_VALUE), true, shown.note()),
            ContextValue::Text(text) => (label, value(text, MAX_VALUE), false, ""),
        })
        .collect()
}

/// The content for `event`: the template's text as the first line, the fields (then what
/// enrichment found), and the last matched log lines in a code block, as many as fit.
pub fn build(event: &Event, renderer: &Renderer) -> Result<Value, TemplateError> {
    // One line: a line break that reached the text (a template showing `matches`) must not
    // fake a field line under it.
    let lead = value(&renderer.render_plain(event)?, MAX_LEAD);
    let mut out = Out::new();
    out.push(&format!("{lead}\n\n"), &format!("<p><b>{}</b></p><p>", escape_html(&lead)));
    let fields = fields(event).into_iter().map(|(label, value, code)| (label, value, code, ""));
    for (i, (label, value, code, note)) in fields.chain(context_fields(event)).enumerate() {
        let br = if i == 0 { "" } else { "<br>" };
        let shown = escape_html(&value);
        let html = if code {
            format!("{br}<b>{label}:</b> <code>{shown}</code>{note}")
        } else {
            format!("{br}<b>{label}:</b> {shown}{note}")
        };
        out.push(&format!("{label}: {value}{note}\n"), &html);
    }
    out.push("", "</p>");
    let all: Vec<&str> = event.matches.as_deref().unwrap_or("").lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return Ok(out.finish());
    }
    let lines: Vec<String> = all.iter().map(|l| value(l, MAX_MATCH_LINE)).collect();
    // The last lines, as many as the caps and the byte budget allow (the heading's own size
    // is kept aside first: its counts have at most 20 digits each).
    let heading_room = Out::cost("\nMatched log lines (the last 00000000000000000000; 00000000000000000000 earlier not shown):\n", "<p><b>Matched log lines</b> (the last 00000000000000000000; 00000000000000000000 earlier not shown):</p><pre><code></code></pre>");
    let mut room = out.limit.saturating_sub(out.used + heading_room);
    let mut first = lines.len();
    while first > 0 && lines.len() - first < MAX_MATCH_LINES {
        let line = &lines[first - 1];
        let cost = Out::cost(&format!("  {line}\n"), &format!("{}\n", escape_html(line)));
        if cost > room {
            break;
        }
        room -= cost;
        first -= 1;
    }
    let shown = &lines[first..];
    let heading = match first {
        0 => "Matched log lines".to_owned(),
        n => format!("Matched log lines (the last {}; {n} earlier not shown)", shown.len()),
    };
    let (label, rest) = heading.split_at("Matched log lines".len());
    out.push(&format!("\n{heading}:\n"), &format!("<p><b>{label}</b>{rest}:</p><pre><code>"));
    let html: Vec<String> = shown.iter().map(|l| escape_html(l).into_owned()).collect();
    let plain: Vec<String> = shown.iter().map(|l| format!("  {l}\n")).collect();
    out.push(&plain.concat(), &html.join("\n"));
    out.push("", "</code></pre>");
    Ok(out.finish())
}

/// The content for a digest: the title (and where the bans come from, when enrichment found
/// it), then per jail what happened and every address, as many as fit in one event; past
/// that, how many more (exactly) were not listed.
pub fn build_digest(digest: &Digest) -> Value {
    build_digest_within(digest, MAX_CONTENT)
}

/// [`build_digest`] within `max` bytes of content: an edit's `m.new_content` leaves
/// [`EDIT_ROOM`] for the edit around it.
pub fn build_digest_within(digest: &Digest, max: usize) -> Value {
    let jails = digest.jails();
    let total: usize = jails.iter().map(|j| j.banned.len() + j.unbanned.len()).sum();
    let title = value(&digest.title(), MAX_LEAD);
    let mut out = Out::within(max);
    out.push(&format!("{title}\n"), &format!("<p><b>{}</b></p>", escape_html(&title)));
    // Where the bans come from: networks and countries from third-party databases, escaped.
    if let Some(origins) = digest.origins() {
        let line = value(&origins.line(), MAX_LEAD);
        out.push(&format!("Banned: {line}\n"), &format!("<p><b>Banned:</b> {}</p>", escape_html(&line)));
    }
    let mut listed = 0usize;
    let mut jails_shown = 0usize;
    let mut cut = false;
    'jails: for jail in &jails {
        let name = value(&jail.jail, MAX_VALUE);
        let events = jail.jail_events();
        let (plain_events, html_events) = if events.is_empty() {
            (String::new(), String::new())
        } else {
            (format!(": jail {events}"), format!(": jail {events}"))
        };
        if !out
            .try_push(&format!("\n{name}{plain_events}\n"), &format!("<p><b>{}</b>{html_events}", escape_html(&name)))
        {
            cut = true;
            break;
        }
        jails_shown += 1;
        let banned_lead = jail.banned_lead();
        let unbanned_lead = format!("unbanned {}", jail.unbanned.len());
        for (lead, ids) in [(&banned_lead, &jail.banned), (&unbanned_lead, &jail.unbanned)] {
            if ids.is_empty() {
                continue;
            }
            if !out.try_push(&format!("  {lead}: "), &format!("<br>{lead}: <code>")) {
                // The list's lead did not fit: nothing of it is shown.
                out.push("\n", "</p>");
                cut = true;
                break 'jails;
            }
            for (i, id) in ids.iter().enumerate() {
                let id = value(id, MAX_DIGEST_ID);
                let sep = if i == 0 { "" } else { ", " };
                if !out.try_push(&format!("{sep}{id}"), &format!("{sep}{}", escape_html(&id))) {
                    out.push("\n", "</code></p>");
                    cut = true;
                    break 'jails;
                }
                listed += 1;
            }
            out.push("\n", "</code>");
        }
        out.push("", "</p>");
    }
    if cut {
        let mut parts = Vec::new();
        if total > listed {
            parts.push(format!("{} more address(es)", total - listed));
        }
        if jails.len() > jails_shown {
            parts.push(format!("{} more jail(s)", jails.len() - jails_shown));
        }
        let note = format!("… and {} not listed here (Matrix's 64 KiB event limit)", parts.join(" and "));
        out.push(&format!("\n{note}\n"), &format!("<p>{}</p>", escape_html(&note)));
    }
    out.finish()
}

/// The content of an edit (CS#event-replacements) that makes `target` show `new` (a content
/// from [`build`] or [`build_digest`]): `m.new_content` is `new` whole, `m.relates_to` is
/// `m.replace` of `target`, and the event's own `body` and `formatted_body` are the fallback
/// for clients that do not know edits, `new`'s prefixed with `* ` as the spec shows it. When
/// that doubles the content past [`MAX_CONTENT`] (a storm's digest near the limit), the
/// fallback is `new`'s first line alone (cut to 200 characters), so that the list keeps its
/// room in `m.new_content`; `new` is to be built within `MAX_CONTENT - EDIT_ROOM` for the
/// whole to fit. The edit mentions nobody, like every message.
pub fn build_edit(new: Value, target: &str) -> Value {
    let text = |key: &str| new.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let (body, html) = (text("body"), text("formatted_body"));
    let edit = |fallback: &str, fallback_html: &str| {
        json!({
            "msgtype": "m.notice",
            "body": format!("* {fallback}"),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("* {fallback_html}"),
            "m.new_content": new,
            "m.relates_to": { "rel_type": "m.replace", "event_id": target },
            "m.mentions": {},
        })
    };
    let full = edit(&body, &html);
    if json_size(&full) <= MAX_CONTENT {
        return full;
    }
    let first = value(body.lines().next().unwrap_or(""), MAX_EDIT_FALLBACK);
    edit(&first, &escape_html(&first))
}

/// The content for an alert about f2b-notify itself. Its text quotes remote error messages:
/// each line flattened, cut and escaped like any value.
pub fn build_alert(alert: &Alert) -> Value {
    let subject = value(&alert.subject, MAX_LEAD);
    let mut out = Out::new();
    out.push(&format!("{subject}\n\n"), &format!("<p><b>{}</b></p><p>", escape_html(&subject)));
    let lines: Vec<&str> = alert.text.lines().collect();
    let mut shown = 0;
    for line in lines.iter().take(MAX_ALERT_LINES) {
        let line = value(line, MAX_ALERT_LINE);
        let br = if shown == 0 { "" } else { "<br>" };
        if !out.try_push(&format!("{line}\n"), &format!("{br}{}", escape_html(&line))) {
            break;
        }
        shown += 1;
    }
    if shown < lines.len() {
        let note = format!("… {} more line(s) not shown", lines.len() - shown);
        let br = if shown == 0 { "" } else { "<br>" };
        out.push(&format!("{note}\n"), &format!("{br}{note}"));
    }
    out.push("", "</p>");
    out.finish()
}
