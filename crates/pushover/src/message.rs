//! The text of a Pushover message: one event, a digest, or an alert; in Pushover's HTML by
//! default, or as plain text (optionally in a monospace font).
//!
//! Limits (D: https://pushover.net/api#limits): "Messages are currently limited to 1024
//! 4-byte UTF-8 characters, with a title of up to 250 characters." Counted here as Pushover
//! says, in characters (Unicode scalar values), and conservatively: whether tags and
//! entities count toward the limit is not documented, so they do. Every text is built within
//! the limit, piece by piece, so that nothing is ever cut inside a tag or an entity; a value
//! that does not fit is cut with a visible marker. The matched log lines get what the other
//! parts leave: they are the first to be cut.
//!
//! HTML (D: https://pushover.net/api#html): Pushover renders `<b>`, `<i>`, `<u>`,
//! `<font color>` and `<a href>`. The sink's own markup is `<b>` alone; every value is escaped
//! (`&`, `<`, `>`, `"`), so that text from a log line shows as the characters it is and can
//! neither format nor link. Plain and monospace text is sent as it is: Pushover shows it as
//! it is. Either way every value is flattened to one line, with bidirectional overrides
//! replaced, so that a log line can fake neither a line nor the reading order of the next.

use std::borrow::Cow;

use f2b_notify_core::{flatten as flatten_controls, human_duration, Alert, Digest, Event, EventKind, Renderer};

/// Pushover's message limit, in characters.
pub const MAX_MESSAGE: usize = 1024;
/// Pushover's title limit, in characters.
pub const MAX_TITLE: usize = 250;
/// The template's text (the first line) at most, in characters as sent.
pub const MAX_LEAD: usize = 300;
/// A jail or host name at most, in characters as sent.
pub const MAX_NAME: usize = 64;
/// A banned id or user name at most, in characters as sent.
pub const MAX_VALUE: usize = 100;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 10;
/// One matched line at most, in characters as sent.
pub const MAX_MATCH_LINE: usize = 200;
/// A digest's line of where the bans come from at most, in characters as sent.
pub const MAX_ORIGINS: usize = 300;
/// Room below which a matched line is not worth cutting to fit.
const MIN_MATCH_ROOM: usize = 40;

/// How the message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Pushover's HTML (`html=1`), the default: labels in bold, values escaped.
    Html,
    /// Plain text in a monospace font (`monospace=1`).
    Monospace,
    /// Plain text.
    Plain,
}

/// Length as Pushover counts it: characters.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// Escapes text for Pushover's HTML: `&`, `<`, `>` and `"` become entities.
pub fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn no_escape(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

impl Style {
    /// The escaper for values in this style (also what templates get).
    pub fn escaper(self) -> fn(&str) -> Cow<'_, str> {
        match self {
            Self::Html => escape_html,
            Self::Monospace | Self::Plain => no_escape,
        }
    }

    /// How many characters `c` takes once escaped.
    fn char_len(self, c: char) -> usize {
        match (self, c) {
            (Self::Html, '&') => 5,
            (Self::Html, '<' | '>') => 4,
            (Self::Html, '"') => 6,
            _ => 1,
        }
    }

    /// The length of `s` once escaped.
    fn escaped_len(self, s: &str) -> usize {
        s.chars().map(|c| self.char_len(c)).sum()
    }

    /// `text` in bold where the style has it; `text` is our own words or already escaped.
    fn bold(self, text: &str) -> String {
        match self {
            Self::Html => format!("<b>{text}</b>"),
            Self::Monospace | Self::Plain => text.to_owned(),
        }
    }

    /// The longest start of `s` that takes at most `room` characters once escaped.
    fn prefix(self, s: &str, room: usize) -> &str {
        let mut used = 0;
        let mut end = 0;
        for c in s.chars() {
            let n = self.char_len(c);
            if used + n > room {
                break;
            }
            used += n;
            end += c.len_utf8();
        }
        &s[..end]
    }

    /// `s` escaped and cut so that it takes at most `max` characters as sent, ending with a
    /// marker that says how many characters were cut. Never cuts inside an entity.
    pub fn fit(self, s: &str, max: usize) -> String {
        if self.escaped_len(s) <= max {
            return self.escaper()(s).into_owned();
        }
        let total = len(s);
        // Room for the widest marker this cut can need; the number it then holds is smaller.
        let head = self.prefix(s, max.saturating_sub(len(&marker(total))));
        let out = format!("{}{}", self.escaper()(head), marker(total - len(head)));
        if len(&out) <= max {
            return out;
        }
        // A `max` smaller than the marker itself: the bare cut.
        self.escaper()(self.prefix(s, max)).into_owned()
    }
}

fn marker(cut: usize) -> String {
    format!(" … [cut {cut} chars]")
}

/// One line of text fit to show: every control character becomes a space (a CR/LF cannot
/// fake a line), and every bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069)
/// becomes `�`, so that a log line cannot make the text after it read backwards.
pub fn line(s: &str) -> String {
    flatten_controls(s)
        .chars()
        .map(|c| if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') { '\u{fffd}' } else { c })
        .collect()
}

/// Any title as Pushover shows it: plain text (Pushover renders HTML in the message only),
/// one line, at most [`MAX_TITLE`] characters.
pub fn title(s: &str) -> String {
    f2b_notify_core::truncate_chars(line(s).trim(), MAX_TITLE).into_owned()
}

/// The title of an event's message, built from the host, the jail and the event only: the
/// id, user and matched lines are an attacker's text and stay in the body.
pub fn event_title(event: &Event) -> String {
    let jail = f2b_notify_core::truncate_chars(&line(&event.jail), MAX_NAME).into_owned();
    let what = match event.kind {
        EventKind::Ban => "ban",
        EventKind::Unban => "unban",
        EventKind::Start => "jail started",
        EventKind::Stop => "jail stopped",
    };
    let host = f2b_notify_core::truncate_chars(&line(&event.host), MAX_NAME).into_owned();
    let on = if host.trim().is_empty() { String::new() } else { format!(" on {host}") };
    title(&format!("Fail2Ban ({jail}) {what}{on}"))
}

/// The text a template's HTML shows: tags dropped, the entities this sink writes decoded.
/// Used only to cut a template's text that is too long, since HTML cannot be cut anywhere.
fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' if !in_tag => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// The message for one event: the template's text, the fields (jail, address, failures, ban
/// time, host, user, restored, then what enrichment found), and for a ban the last matched
/// log lines that fit, newest kept first.
pub fn event_message(
    event: &Event,
    renderer: &Renderer,
    style: Style,
) -> Result<String, f2b_notify_core::TemplateError> {
    // The template sees the values as they will be shown: one line, cut to their share.
    let mut capped = event.capped(4 * MAX_LEAD, MAX_VALUE).into_owned();
    capped.id = capped.id.as_deref().map(|id| f2b_notify_core::truncate_chars(id, MAX_VALUE).into_owned());
    capped.jail = f2b_notify_core::truncate_chars(&capped.jail, MAX_NAME).into_owned();
    capped.host = f2b_notify_core::truncate_chars(&capped.host, MAX_NAME).into_owned();
    let lead = renderer.render(&capped, style.escaper())?;
    // The template's text keeps its lines (a template may show `matches`), each flattened.
    let lead: Vec<String> = lead.trim().lines().map(line).collect();
    let lead = lead.join("\n");
    let lead = if len(&lead) <= MAX_LEAD {
        lead
    } else {
        match style {
            Style::Html => style.fit(&visible(&lead), MAX_LEAD),
            Style::Monospace | Style::Plain => style.fit(&lead, MAX_LEAD),
        }
    };
    let value = |s: &str, max: usize| style.fit(&line(s), max);
    let mut fields = vec![(style.bold("Jail:"), value(&event.jail, MAX_NAME))];
    if let Some(id) = &event.id {
        let label = if event.ip.is_some() { "Address:" } else { "Banned id (not an IP address):" };
        fields.push((style.bold(label), value(id, MAX_VALUE)));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        fields.push((style.bold("Failures:"), f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            fields.push((style.bold("Ban time:"), human_duration(b)));
        }
    }
    if !event.host.trim().is_empty() {
        fields.push((style.bold("Host:"), value(&event.host, MAX_NAME)));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.trim().is_empty()) {
        fields.push((style.bold("User:"), value(u, MAX_VALUE)));
    }
    if event.restored {
        fields.push((style.bold("Restored:"), "yes, at Fail2Ban's restart".to_owned()));
    }
    // What enrichment found and the repeat: the PTR name is whatever the owner of the
    // address's reverse zone wrote, the rest comes from third-party databases; escaped and
    // cut like every value (Pushover's HTML has no code to put the host name in). Each is cut
    // like a host name, and they share the room the other fields leave, so that the message
    // is never cut as a whole.
    let context = event.context_fields();
    if !context.is_empty() {
        let used = len(&lead) + 2 + fields.iter().map(|(label, v)| len(label) + len(v) + 2).sum::<usize>();
        let share = MAX_MESSAGE.saturating_sub(used) / context.len();
        for (label, shown) in context {
            let label = style.bold(&format!("{label}:"));
            let room = share.saturating_sub(len(&label) + 2).min(MAX_NAME);
            if room > 0 {
                fields.push((label, value(&shown, room)));
            }
        }
    }
    let fields: Vec<String> = fields.into_iter().map(|(label, v)| format!("{label} {v}")).collect();
    let mut out = if lead.is_empty() { fields.join("\n") } else { format!("{lead}\n\n{}", fields.join("\n")) };
    if event.kind == EventKind::Ban {
        if let Some(m) = event.matches.as_deref() {
            let room = MAX_MESSAGE.saturating_sub(len(&out));
            out.push_str(&matches_section(m, style, room));
        }
    }
    Ok(finish(out, style))
}

/// The last matched lines that fit in `room` characters (each flattened and cut), newest
/// kept first, with how many earlier ones are not shown; the newest alone is cut to fit if
/// it must; empty if nothing fits.
fn matches_section(matches: &str, style: Style, room: usize) -> String {
    let all: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return String::new();
    }
    let open = format!("\n\n{}", style.bold("Matched log lines:"));
    let note = |n: usize| format!("\n… {n} earlier line(s) not shown");
    // Room for the heading and the widest note of lines left out.
    let Some(mut left) = room.checked_sub(len(&open) + len(&note(all.len()))) else { return String::new() };
    let mut shown: Vec<String> = Vec::new();
    for raw in all.iter().rev().take(MAX_MATCH_LINES) {
        let l = style.fit(&line(raw), MAX_MATCH_LINE);
        if len(&l) + 1 > left {
            // Nothing shown yet: the newest line, cut to the room there is.
            if shown.is_empty() && left > MIN_MATCH_ROOM {
                shown.push(style.fit(&line(raw), left - 1));
            }
            break;
        }
        left -= len(&l) + 1;
        shown.push(l);
    }
    if shown.is_empty() {
        return String::new();
    }
    let mut out = open;
    let earlier = all.len() - shown.len();
    if earlier > 0 {
        out.push_str(&note(earlier));
    }
    for l in shown.iter().rev() {
        out.push('\n');
        out.push_str(l);
    }
    out
}

/// The finished text: within the limit by construction; should a change ever break that, it
/// is cut as text rather than sent to be refused.
fn finish(text: String, style: Style) -> String {
    if len(&text) <= MAX_MESSAGE {
        return text;
    }
    match style {
        Style::Html => style.fit(&visible(&text), MAX_MESSAGE),
        Style::Monospace | Style::Plain => style.fit(&text, MAX_MESSAGE),
    }
}

/// The message for a digest (its title is [`Digest::title`]): where the bans come from (when
/// enrichment found it), then per jail what happened and every address, in order, as many as
/// fit; the rest counted exactly in a last line.
pub fn digest_message(digest: &Digest, style: Style) -> String {
    let jails = digest.jails();
    let total: usize = jails.iter().map(|j| j.banned.len() + j.unbanned.len()).sum();
    let tail = |n: usize| format!("\n… and {n} more not listed (Pushover's 1,024-character limit)");
    let mut left = MAX_MESSAGE.saturating_sub(len(&tail(total)));
    let mut out = String::new();
    // Where the bans come from, first: it is what a storm is about. Left out if it cannot fit.
    if let Some(origins) = digest.origins() {
        let shown = format!("{} {}", style.bold("Banned:"), style.fit(&line(&origins.line()), MAX_ORIGINS));
        if len(&shown) <= left {
            left -= len(&shown);
            out.push_str(&shown);
        }
    }
    let mut listed = 0usize;
    let mut full = false;
    let mut take = |out: &mut String, piece: &str| {
        if full || len(piece) > left {
            full = true;
            return false;
        }
        left -= len(piece);
        out.push_str(piece);
        true
    };
    for j in &jails {
        let sep = if out.is_empty() { "" } else { "\n" };
        let name = style.bold(&format!("{}:", style.fit(&line(&j.jail), MAX_NAME)));
        let events = j.jail_events();
        let head = if events.is_empty() { format!("{sep}{name}") } else { format!("{sep}{name} jail {events}") };
        take(&mut out, &head);
        let unbanned_lead = format!("unbanned {}", j.unbanned.len());
        for (what, ids) in [(j.banned_lead(), &j.banned), (unbanned_lead, &j.unbanned)] {
            for (i, one) in ids.iter().enumerate() {
                let id = style.fit(&line(one), MAX_VALUE);
                let piece = if i == 0 { format!("\n{what}: {id}") } else { format!(", {id}") };
                if take(&mut out, &piece) {
                    listed += 1;
                }
            }
        }
    }
    if listed < total {
        out.push_str(&tail(total - listed));
    }
    finish(out, style)
}

/// The message of an alert about f2b-notify itself (it quotes remote error text: each line
/// flattened and escaped like any value); its title is [`title`] of the subject.
pub fn alert_message(alert: &Alert, style: Style) -> String {
    let text = if alert.text.trim().is_empty() { alert.subject.as_str() } else { alert.text.as_str() };
    let lines: Vec<String> = text.trim().lines().map(line).collect();
    style.fit(&lines.join("\n"), MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_counts_entities_and_never_cuts_one() {
        assert_eq!(Style::Html.fit("a<b", 10), "a&lt;b");
        let quotes = "\"".repeat(100);
        for max in [20, 50, 99, 100, 101] {
            let cut = Style::Html.fit(&quotes, max);
            assert!(len(&cut) <= max, "{max}: {cut}");
            let body = cut.split(" … ").next().unwrap();
            assert!(body.split("&quot;").all(str::is_empty), "{max}: {cut}");
            let kept = body.matches("&quot;").count();
            assert!(cut.ends_with(&format!("[cut {} chars]", 100 - kept)), "{cut}");
        }
        assert_eq!(Style::Plain.fit(&quotes, 100), quotes);
        let plain = Style::Plain.fit(&"é".repeat(300), 100);
        assert!(len(&plain) <= 100 && plain.ends_with("chars]"), "{plain}");
    }

    #[test]
    fn escaping_and_visible_text() {
        assert_eq!(escape_html("<b>x</b> & \"y\" 'z'"), "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot; 'z'");
        assert_eq!(visible("<b>Jail:</b> a &lt;b&gt; &amp;lt;"), "Jail: a <b> &lt;");
        assert_eq!(line("a\r\nb\u{202e}c"), "a  b\u{fffd}c");
    }
}
