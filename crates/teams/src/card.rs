//! The message: one Adaptive Card (version 1.4) in the envelope the Workflows template reads,
//! `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//! "contentUrl":null,"content":{…card…}}]}`, with exactly one attachment (the template posts
//! each attachment as its own card).
//!
//! An event's card: a bold title TextBlock coloured by event (attention for a ban, good for an
//! unban), a FactSet (jail, address, failures, ban time, host, user, and what enrichment found:
//! host name, location, network, repeat) and, for a ban, the last matched log lines in a
//! monospace TextBlock. A digest's card: the title (and where the bans come from), then per
//! jail what happened and every address in monospace TextBlocks of a sane length.
//!
//! Every value is text, never markup: [`escape`] backslash-escapes what the card's markdown
//! subset would read. Every text has a cap with a visible cut marker, and the serialised JSON
//! stays within [`MAX_PAYLOAD`] bytes whatever the input: the matched lines are cut first,
//! then the user name. JSON is built with serde, never by pasting strings.

use std::borrow::Cow;

use f2b_notify_core::ContextValue;
use f2b_notify_core::{
    flatten, human_duration, truncate_chars, Alert, Digest, Event, EventKind, Renderer, TemplateError,
};
use serde_json::{json, Value};

/// The most bytes of JSON one request carries. Teams refuses a message over about 28 KB
/// ("Request Entity too large", learn.microsoft.com/connectors/teams and the incoming-webhook
/// page), and it does so after the trigger has answered 202, so the caller never learns of
/// it. Teams measures the message it builds from the card, not our JSON, so the card keeps
/// 4 KB of headroom, as the contract advises (about 24 KB).
pub const MAX_PAYLOAD: usize = 24_000;
/// Characters of the rendered title shown at most (escaped markdown).
pub const MAX_TITLE: usize = 1_000;
/// Characters of a fact's value (jail, address, host) shown at most.
pub const MAX_VALUE: usize = 200;
/// Characters of a user name shown at most (fewer if the card would be too large).
pub const MAX_USER: usize = 200;
/// Matched log lines shown at most (the newest).
pub const MAX_MATCH_LINES: usize = 10;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 500;
/// Characters of an alert's text shown at most.
pub const MAX_ALERT: usize = 4_000;
/// Characters of one digest TextBlock listing addresses.
pub const MAX_LIST_BLOCK: usize = 1_000;
/// Bytes of the card set aside for the digest's closing "… and N more" line.
const FOOTER_RESERVE: usize = 300;

/// The characters the card's markdown reads anywhere in a line (CommonMark's, which is what
/// Adaptive Cards implement, less those nothing in the subset uses): emphasis `* _ ~`, code
/// `` ` ``, links `[ ] ( )`, autolinks and tags `< >` (so no `<at>` mention tag), headings
/// `#`, the DATE()/TIME() functions' `{ }`, and the escape character itself.
const SPECIAL: &[char] = &['\\', '`', '*', '_', '~', '[', ']', '(', ')', '{', '}', '<', '>', '#'];

/// The characters the card's markdown reads only at the start of a line: list items `- +`,
/// and the underlines `- =` that make the line above a heading.
const LEADING: &[char] = &['-', '+', '='];

/// Escapes text for the Adaptive Card markdown subset (TextBlock text, fact titles and
/// values): every character in [`SPECIAL`] gets a backslash (CommonMark allows one before any
/// ASCII punctuation and shows the character), and so does the first character of a line
/// (after white space) when it is in [`LEADING`], as does the dot of a number that would
/// start an ordered list (`1. `). Control characters other than a line break become spaces,
/// and the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which could
/// make an address read backwards, become U+FFFD. `&` needs no entity: cards do not read
/// HTML (learn.microsoft.com cards-format).
///
/// Teams on the web and the desktop shows escaped characters as themselves; some mobile
/// versions have shown the backslash too (microsoft/AdaptiveCards#5590 and others), which
/// is why hyphens and dots inside a line (host names, dates, addresses) are left alone.
pub fn escape(s: &str) -> Cow<'_, str> {
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let plain = |c: char| !(SPECIAL.contains(&c) || bidi(c) || (c.is_control() && c != '\n'));
    if s.chars().all(plain) && !s.split('\n').any(|l| leading(l).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let lead = leading(line);
        for (at, c) in line.char_indices() {
            if SPECIAL.contains(&c) || Some(at) == lead {
                out.push('\\');
                out.push(c);
            } else if bidi(c) {
                out.push('\u{FFFD}');
            } else if c.is_control() {
                out.push(' ');
            } else {
                out.push(c);
            }
        }
    }
    Cow::Owned(out)
}

/// Where the character is that would make `line` a list item or an underline: its first
/// character after white space when that is in [`LEADING`], or the dot after up to nine
/// digits followed by white space or the end (`1. x`, `42.`).
fn leading(line: &str) -> Option<usize> {
    let start = line.len() - line.trim_start().len();
    if line[start..].starts_with(LEADING) {
        return Some(start);
    }
    let digits = line[start..].bytes().take_while(u8::is_ascii_digit).count();
    let dot = start + digits;
    let ordered = (1..=9).contains(&digits) && line.as_bytes().get(dot) == Some(&b'.');
    let then = line.as_bytes().get(dot + 1);
    (ordered && then.is_none_or(|b| b.is_ascii_whitespace())).then_some(dot)
}

/// A value from the event as one line of escaped text: flattened (a CR/LF in a jail or host
/// name must not fake a line), trimmed (leading spaces would make an indented code block),
/// cut to `max` characters with a visible marker, then escaped (the marker with it).
fn value(raw: &str, max: usize) -> String {
    let flat = flatten(raw);
    escape(&truncate_chars(flat.trim(), max)).into_owned()
}

/// Cuts text that is already escaped markdown (a rendered template) to `max` characters
/// with a visible marker, never between a backslash and what it escapes.
fn cut_escaped(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let mut keep = max;
    let mut marker = String::new();
    for _ in 0..2 {
        marker = escape(&format!(" … [cut {} chars]", count - keep)).into_owned();
        keep = max.saturating_sub(marker.chars().count());
    }
    let mut out: String = text.chars().take(keep).collect();
    // An odd run of backslashes at the end would escape the marker's first character.
    if (out.len() - out.trim_end_matches('\\').len()) % 2 == 1 {
        out.pop();
    }
    out.push_str(&marker);
    out
}

/// The card's colour for an event: attention (red) for a ban, good (green) for an unban.
pub fn color(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Ban => "Attention",
        EventKind::Unban => "Good",
        EventKind::Start | EventKind::Stop => "Default",
    }
}

/// The envelope around one card.
pub fn envelope(body: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

/// The bytes `body` takes as the request's JSON.
pub fn size(body: &Value) -> usize {
    serde_json::to_vec(body).map(|v| v.len()).unwrap_or(usize::MAX)
}

fn title_block(text: &str, color: &str) -> Value {
    json!({ "type": "TextBlock", "text": text, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true })
}

fn text_block(text: &str) -> Value {
    json!({ "type": "TextBlock", "text": text, "wrap": true })
}

fn mono_block(text: &str) -> Value {
    json!({ "type": "TextBlock", "text": text, "fontType": "Monospace", "wrap": true })
}

/// The largest `n` in `0..=max` for which `fits(n)`, given that `fits` only turns false as
/// `n` grows; `None` when not even 0 fits.
fn largest(max: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if !fits(0) {
        return None;
    }
    let (mut lo, mut hi) = (0, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// The matched lines of a ban: the newest [`MAX_MATCH_LINES`] non-empty lines, each one line
/// of raw text without leading space, and how many lines there were in all.
fn match_lines(event: &Event) -> (Vec<String>, usize) {
    if event.kind != EventKind::Ban {
        return (Vec::new(), 0);
    }
    let all: Vec<String> = event
        .matches
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|l| flatten(l).trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let total = all.len();
    let shown = all.into_iter().skip(total.saturating_sub(MAX_MATCH_LINES)).collect();
    (shown, total)
}

/// How much of the variable parts an event's card shows.
#[derive(Clone, Copy)]
struct Cut {
    /// The newest `lines` of the shown matched lines.
    lines: usize,
    /// Characters of the newest line.
    last_line: usize,
    /// Characters of the user name.
    user: usize,
}

/// The JSON body for `event`: the rendered title, the facts, the matched lines, within
/// [`MAX_PAYLOAD`].
pub fn build(event: &Event, renderer: &Renderer) -> Result<Value, TemplateError> {
    build_within(event, renderer, MAX_PAYLOAD)
}

/// [`build`] within `max` bytes.
fn build_within(event: &Event, renderer: &Renderer, max: usize) -> Result<Value, TemplateError> {
    let title = cut_escaped(&renderer.render(event, escape)?, MAX_TITLE);
    let (lines, total) = match_lines(event);
    let layout = |cut: Cut| -> Value {
        let mut body = vec![title_block(&title, color(event.kind))];
        let facts = facts(event, cut.user);
        if !facts.is_empty() {
            body.push(json!({ "type": "FactSet", "facts": facts }));
        }
        if total > 0 {
            body.push(json!({ "type": "TextBlock", "text": "Matched log lines", "weight": "Bolder", "wrap": true }));
            let shown = &lines[lines.len() - cut.lines..];
            let mut text: Vec<String> = Vec::new();
            if cut.lines == 0 {
                text.push(format!("… {total} line(s) not shown: too long for one Teams message"));
            } else if total > cut.lines {
                text.push(format!("… {} earlier line(s) not shown", total - cut.lines));
            }
            for (i, line) in shown.iter().enumerate() {
                let max = if i + 1 == shown.len() { cut.last_line } else { MAX_MATCH_LINE };
                text.push(escape(&truncate_chars(line, max)).into_owned());
            }
            // A single line break is not one in a card's markdown: a blank line is.
            body.push(mono_block(&text.join("\n\n")));
        }
        envelope(body)
    };
    let fits = |cut: Cut| size(&layout(cut)) <= max;
    // All there is, then fewer lines (the oldest go first), then the newest line cut, then
    // no lines and the user name cut.
    let mut cut = Cut { lines: lines.len(), last_line: MAX_MATCH_LINE, user: MAX_USER };
    while !fits(cut) && cut.lines > 1 {
        cut.lines -= 1;
    }
    if !fits(cut) && cut.lines == 1 {
        match largest(MAX_MATCH_LINE, |n| fits(Cut { last_line: n, ..cut })) {
            Some(n) => cut.last_line = n,
            None => cut.lines = 0,
        }
    }
    if !fits(cut) {
        cut.user = largest(MAX_USER, |n| fits(Cut { user: n, ..cut })).unwrap_or(0);
    }
    Ok(layout(cut))
}

/// The facts: jail, address, failures, ban time, host, user (at most `user_max` characters),
/// whether the ban was restored, then host name, location, network and repeat when known.
/// Empty values are left out.
fn facts(event: &Event, user_max: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut fact = |title: &str, value: String| {
        if !value.is_empty() {
            out.push(json!({ "title": title, "value": value }));
        }
    };
    fact("Jail", value(&event.jail, MAX_VALUE));
    if let Some(id) = &event.id {
        let title = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        fact(title, value(id, MAX_VALUE));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        fact("Failures", f.to_string());
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            fact("Ban time", human_duration(b));
        }
    }
    fact("Host", value(&event.host, MAX_VALUE));
    if let Some(u) = &event.user {
        fact("User", value(u, user_max));
    }
    if event.restored {
        fact("Restored", "yes, at Fail2Ban's restart".to_owned());
    }
    // What enrichment found and the repeat: the PTR name is whatever the owner of the
    // address's reverse zone wrote and the rest comes from third-party databases, so each is
    // escaped like every other value. "(unconfirmed)" is our own words, left unescaped as in
    // the titles: some mobile clients show the escaping backslash.
    for (title, shown) in event.context_parts() {
        match &shown {
            ContextValue::Name { name, .. } => fact(title, format!("{}{}", value(name, MAX_VALUE), shown.note())),
            ContextValue::Text(text) => fact(title, value(text, MAX_VALUE)),
        }
    }
    out
}

/// The JSON body for a digest: the title (and under it where the bans come from, when
/// enrichment found it), then per jail what happened and every address, in as many monospace
/// blocks as the list needs. When the card would pass [`MAX_PAYLOAD`], the addresses that did
/// not fit are counted exactly in a last line instead of listed.
pub fn build_digest(digest: &Digest) -> Value {
    let title = value(&digest.title(), MAX_TITLE);
    let mut body = vec![title_block(&title, color(digest.dominant_kind()))];
    // Where the bans come from: networks and countries from third-party databases, escaped.
    if let Some(origins) = digest.origins() {
        body.push(text_block(&format!("**Banned:** {}", value(&origins.line(), MAX_TITLE))));
    }
    let mut room = Room { used: size(&envelope(body.clone())), max: MAX_PAYLOAD - FOOTER_RESERVE };
    let (mut unlisted, mut full) = (0usize, false);
    for jail in digest.jails() {
        let name = value(&jail.jail, MAX_VALUE);
        let events = jail.jail_events();
        let head = if events.is_empty() { format!("**{name}**") } else { format!("**{name}**: jail {events}") };
        let lists = [(jail.banned_lead(), &jail.banned), (format!("unbanned {}", jail.unbanned.len()), &jail.unbanned)];
        let ids = jail.banned.len() + jail.unbanned.len();
        if full || !room.add(&mut body, text_block(&head)) {
            full = true;
            unlisted += ids;
            continue;
        }
        for (lead, ids) in lists {
            if ids.is_empty() {
                continue;
            }
            if full || !room.add(&mut body, text_block(&escape(&format!("{lead}:")))) {
                full = true;
                unlisted += ids.len();
                continue;
            }
            let items: Vec<String> = ids.iter().map(|id| value(id, MAX_VALUE)).collect();
            for part in groups(&items, MAX_LIST_BLOCK) {
                let n = part.len();
                if full {
                    unlisted += n;
                    continue;
                }
                if room.add(&mut body, mono_block(&part.join(", "))) {
                    continue;
                }
                // The group does not fit whole: as many of its addresses as do.
                full = true;
                let fit = largest(n, |k| room.fits(&mono_block(&part[..k].join(", ")))).unwrap_or(0);
                if fit > 0 {
                    room.add(&mut body, mono_block(&part[..fit].join(", ")));
                }
                unlisted += n - fit;
            }
        }
    }
    if unlisted > 0 {
        let more = format!("… and {unlisted} more not listed here: one Teams message holds about 28 KB");
        body.push(text_block(&escape(&more)));
    }
    envelope(body)
}

/// `items` in groups of at most `max` characters when joined by ", " (an item longer than
/// that is a group of its own). Like `chunk_list`, but the groups stay lists, so what is
/// listed and what is not is counted by item, whatever an item holds (an id may contain
/// ", ").
fn groups(items: &[String], max: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = item.chars().count();
        if i > start && len + 2 + n > max {
            out.push(&items[start..i]);
            (start, len) = (i, 0);
        }
        len += if i == start { n } else { n + 2 };
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The bytes a card's body may still take: adding an element to a non-empty JSON array adds
/// its own JSON and one comma, so the size is tracked without serialising the card again.
struct Room {
    used: usize,
    max: usize,
}

impl Room {
    /// Whether `block` and its comma fit.
    fn fits(&self, block: &Value) -> bool {
        self.used + size(block) < self.max
    }

    /// Adds `block` to `body` if it fits.
    fn add(&mut self, body: &mut Vec<Value>, block: Value) -> bool {
        if !self.fits(&block) {
            return false;
        }
        self.used += size(&block) + 1;
        body.push(block);
        true
    }
}

/// The JSON body for an alert about f2b-notify itself: red, or green once recovered. Its text
/// quotes remote error messages: every line flattened and escaped like any value.
pub fn build_alert(alert: &Alert) -> Value {
    let subject = value(&alert.subject, MAX_VALUE * 2);
    let color = if alert.recovered { color(EventKind::Unban) } else { color(EventKind::Ban) };
    let text = truncate_chars(&alert.text, MAX_ALERT).into_owned();
    let layout = |chars: usize| {
        let text = truncate_chars(&text, chars);
        let lines: Vec<String> =
            text.lines().map(|l| escape(flatten(l).trim()).into_owned()).filter(|l| !l.is_empty()).collect();
        envelope(vec![title_block(&subject, color), text_block(&lines.join("\n\n"))])
    };
    let chars = largest(MAX_ALERT, |n| size(&layout(n)) <= MAX_PAYLOAD).unwrap_or(0);
    layout(chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("203.0.113.7"), "203.0.113.7");
        assert_eq!(escape("2001:db8::1 sshd"), "2001:db8::1 sshd");
        assert_eq!(escape("*_~`"), "\\*\\_\\~\\`");
        assert_eq!(escape("[a](http://x)"), "\\[a\\]\\(http://x\\)");
        assert_eq!(escape("<at>everyone</at> & co"), "\\<at\\>everyone\\</at\\> & co");
        assert_eq!(escape("# h\n- item\n+ item\n> quote\n==="), "\\# h\n\\- item\n\\+ item\n\\> quote\n\\===");
        // Hyphens and pluses inside a line are text already.
        assert_eq!(escape("web-1.example 2024-01-01 a+b = c"), "web-1.example 2024-01-01 a+b = c");
        assert_eq!(escape("  - x"), "  \\- x");
        assert_eq!(escape("a\\*b"), "a\\\\\\*b");
        assert_eq!(
            escape("{{DATE(2017-02-14T06:08:39Z, SHORT)}}"),
            "\\{\\{DATE\\(2017-02-14T06:08:39Z, SHORT\\)\\}\\}"
        );
        // Ordered-list markers at a line's start, not numbers elsewhere.
        assert_eq!(escape("1. one\n  22. two\n3.\n4.5 x 1. y"), "1\\. one\n  22\\. two\n3\\.\n4.5 x 1. y");
        assert_eq!(escape("1234567890. ten digits"), "1234567890. ten digits");
        assert_eq!(escape("a\tb\rc\u{1b}d"), "a b c d");
        assert_eq!(escape("x\u{202E}7.311.0.302"), "x\u{FFFD}7.311.0.302");
    }

    #[test]
    fn cutting_escaped_text_keeps_escapes_whole() {
        let text = "\\*".repeat(100);
        let cut = cut_escaped(&text, 51);
        assert!(cut.chars().count() <= 51, "{cut}");
        assert!(cut.ends_with(" … \\[cut 160 chars\\]") || cut.contains("\\[cut "), "{cut}");
        let kept = cut.split(" … ").next().unwrap();
        assert_eq!(kept.len() % 2, 0, "{kept}");
        assert!(kept.chars().collect::<Vec<_>>().chunks(2).all(|p| p == ['\\', '*']), "{kept}");
        assert_eq!(cut_escaped("short", 10), "short");
    }

    /// The order of cutting: the oldest lines, then the newest line, then the user name.
    #[test]
    fn matched_lines_are_cut_before_the_user() {
        let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "h");
        e.user = Some("u".repeat(MAX_USER));
        e.matches = Some((0..12).map(|i| format!("{i:02} {}", "x".repeat(97))).collect::<Vec<_>>().join("\n"));
        let r = Renderer::default();
        let at = |max: usize| {
            let card = build_within(&e, &r, max).unwrap();
            assert!(size(&card) <= max, "{} > {max}", size(&card));
            let body = card["attachments"][0]["content"]["body"].as_array().unwrap().clone();
            let user = body[1]["facts"].as_array().unwrap().last().unwrap()["value"].as_str().unwrap().to_owned();
            (body.last().unwrap()["text"].as_str().unwrap().to_owned(), user)
        };
        let full = size(&build(&e, &r).unwrap());
        let (lines, user) = at(full);
        assert!(lines.starts_with("… 2 earlier line(s) not shown\n\n02 x") && lines.contains("\n\n11 x"), "{lines}");
        assert_eq!(user, "u".repeat(MAX_USER));
        // A little less room: the oldest shown line goes.
        let (lines, user) = at(full - 1);
        assert!(lines.starts_with("… 3 earlier line(s) not shown\n\n03 x"), "{lines}");
        assert_eq!(user, "u".repeat(MAX_USER));
        // Room for one line and a half: the newest, cut.
        let one = full - 9 * 102 - 50;
        let (lines, user) = at(one);
        assert!(lines.starts_with("… 11 earlier line(s) not shown\n\n11 x"), "{lines}");
        assert!(lines.ends_with(" chars\\]"), "{lines}");
        assert_eq!(user, "u".repeat(MAX_USER));
        // No room for any line: they are counted, and the user name is cut.
        let (lines, user) = at(one - 200);
        assert_eq!(lines, "… 12 line(s) not shown: too long for one Teams message");
        assert!(user.len() < MAX_USER && user.ends_with(" chars\\]"), "{user}");
    }

    #[test]
    fn largest_is_exact() {
        assert_eq!(largest(100, |n| n <= 37), Some(37));
        assert_eq!(largest(100, |n| n <= 1000), Some(100));
        assert_eq!(largest(100, |_| false), None);
        assert_eq!(largest(0, |_| true), Some(0));
    }
}
