//! The text of a Gotify message: one event, a digest, or an alert; Markdown by default, plain
//! text when the sink says so.
//!
//! Gotify documents no length limit: the message is stored in a `text` column and sent to
//! every client as it is (S: model/message.go; https://github.com/gotify/server/issues/441).
//! The real limits are elsewhere: a reverse proxy's body cap (nginx's default is 1 MB), a
//! MySQL `TEXT` column (64 KiB), and the phone's notification, which shows a few lines. So
//! every message is kept within [`MAX_MESSAGE`] bytes, far under all of them, and cut with a
//! visible marker when it must be.
//!
//! Markdown (`text/markdown`) is rendered by the web UI (GFM) and the Android app (CommonMark)
//! with HTML ignored (D: https://gotify.net/docs/msgextras#clientdisplay). Gotify's docs warn
//! that Markdown from outside can leak information (an image is fetched as soon as the message
//! is shown), so every value from the event is made inert first: the matched log lines go in a
//! fenced code block whose fence is longer than any run of backticks in them, the address and
//! the user in code spans built the same way, and other text has Markdown's special characters
//! backslash-escaped. Plain text (`text/plain`) is shown as it is.

use std::borrow::Cow;

use f2b_notify_core::{
    flatten as flatten_controls, human_duration, truncate_chars, Alert, Digest, Event, EventKind, Renderer,
    TemplateError,
};

/// The most bytes of one message: 16 KiB, a long log excerpt and 500 banned IPv4 addresses,
/// well under any proxy's body cap and a MySQL `TEXT` column.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Characters of a title at most (Gotify shows it as one line).
pub const MAX_TITLE: usize = 250;
/// Characters of the template's text (the message's first line) at most.
pub const MAX_LEAD: usize = 1000;
/// Characters of one field's value (jail, host, address, user) at most.
pub const MAX_VALUE: usize = 200;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 20;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 300;

/// `s` within `max` bytes: whole if it fits, else cut on a character boundary and ended with
/// a marker that says how many characters were cut, the whole within `max`.
pub fn fit(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let total = s.chars().count();
    // The marker's length depends on the number it holds: sized for the most it may say,
    // then written with the number cut (never longer).
    let room = max.saturating_sub(marker(total).len());
    let mut keep = room.min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    let kept = &s[..keep];
    let mut out = kept.to_owned();
    out.push_str(&marker(total - kept.chars().count()));
    Cow::Owned(out)
}

fn marker(cut: usize) -> String {
    format!(" … [cut {cut} chars]")
}

/// Markdown escaping for text that is not in code: a backslash before each character that
/// could start emphasis, a link, an image, HTML or an entity, a heading, a table or a code
/// span (every ASCII punctuation character may be escaped in CommonMark, and these are the
/// ones that do something), and before a `-`, `+` or `=` or an ordered list's `.` or `)` at
/// the start of a line, where they make lists, rules and headings. `.`, `-`, `(` and `)` are
/// otherwise left alone so that addresses and times stay readable; without `[` a parenthesis
/// makes no link.
pub fn md_escape(s: &str) -> Cow<'_, str> {
    const SPECIAL: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '#', '!', '|', '~', '&', '+', '=', '{', '}'];
    if !s.contains(SPECIAL) && !s.split('\n').any(|l| block_mark(l).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mark = block_mark(line);
        for (j, c) in line.char_indices() {
            if SPECIAL.contains(&c) || mark == Some(j) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Where a line's `-` (a list item, a rule, a heading's underline) or an ordered list's `.`
/// or `)` is, if the line starts a block with one (CommonMark 4.1, 4.3, 5.2): after at most
/// three spaces, a `-` followed by a space, another `-` or nothing, or one to nine digits and
/// a `.` or `)` followed by a space or nothing. `-x` and `203.0.113.7` start no block.
fn block_mark(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let body = &line.as_bytes()[indent..];
    let ends_mark = |next: Option<&u8>| matches!(next, None | Some(b' ' | b'\t'));
    if body.first() == Some(&b'-') && (ends_mark(body.get(1)) || body.get(1) == Some(&b'-')) {
        return Some(indent);
    }
    let digits = body.iter().take_while(|b| b.is_ascii_digit()).count();
    ((1..=9).contains(&digits) && matches!(body.get(digits), Some(b'.' | b')')) && ends_mark(body.get(digits + 1)))
        .then_some(indent + digits)
}

fn plain(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

/// The longest run of backticks in `s`.
fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `s` (one line) as a Markdown code span: delimited by one backtick more than the longest
/// run inside, and padded with a space where it starts or ends with one (CommonMark 6.1), so
/// that nothing in it can close the span.
pub fn md_code(s: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// One line of text fit to show: every control character becomes a space (a CR/LF cannot
/// fake a line), and every bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069)
/// becomes `�`, so that a log line cannot make the text after it read backwards in the
/// notification (an address shown reversed).
pub fn flatten(s: &str) -> String {
    flatten_controls(s)
        .chars()
        .map(|c| if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') { '\u{fffd}' } else { c })
        .collect()
}

/// How the message is written, and the content type it is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Markdown (the default): rendered by the web UI and the Android app; values made inert.
    Markdown,
    /// Plain text: shown as it is.
    Plain,
}

impl Style {
    /// The content type the clients are told (`extras.client::display.contentType`).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Markdown => "text/markdown",
            Self::Plain => "text/plain",
        }
    }

    fn escape(self) -> fn(&str) -> Cow<'_, str> {
        match self {
            Self::Plain => plain,
            Self::Markdown => md_escape,
        }
    }

    /// A labelled line: `Jail: sshd`, or `**Jail:** sshd`.
    fn field(self, label: &str, value: &str) -> String {
        match self {
            Self::Plain => format!("{label}: {value}"),
            Self::Markdown => format!("**{label}:** {value}"),
        }
    }

    /// A value from the event (one line, capped), escaped: as text, or in Markdown as a code
    /// span when `code` (an address or user name, to be read as it is).
    fn value(self, s: &str, code: bool) -> String {
        let v = truncate_chars(&flatten(s), MAX_VALUE).into_owned();
        match (self, code) {
            (Self::Plain, _) => v,
            (Self::Markdown, true) => md_code(&v),
            (Self::Markdown, false) => md_escape(&v).into_owned(),
        }
    }
}

/// The title of an event's message, built from the host, the jail and the event only: the
/// id, user and matched lines are an attacker's text and stay in the message. Gotify shows
/// the title as plain text, on one line.
pub fn event_title(event: &Event) -> String {
    let jail = truncate_chars(&flatten(&event.jail), 100).into_owned();
    let what = match event.kind {
        EventKind::Ban => "ban",
        EventKind::Unban => "unban",
        EventKind::Start => "jail started",
        EventKind::Stop => "jail stopped",
    };
    let host = truncate_chars(&flatten(&event.host), 100).into_owned();
    let on = if host.trim().is_empty() { String::new() } else { format!(" on {host}") };
    title(&format!("Fail2Ban ({jail}) {what}{on}"))
}

/// Any title as Gotify shows it: one line, at most [`MAX_TITLE`] characters, never empty (an
/// empty title would become the application's name).
pub fn title(s: &str) -> String {
    let t = truncate_chars(flatten(s).trim(), MAX_TITLE).into_owned();
    if t.is_empty() {
        "Fail2Ban".to_owned()
    } else {
        t
    }
}

/// The message for one event, within [`MAX_MESSAGE`]: the template's text, the fields (jail,
/// address, failures, ban time, host, user, restored, then what enrichment found), then the
/// last matched log lines that fit, newest kept first.
pub fn event_message(event: &Event, renderer: &Renderer, style: Style) -> Result<String, TemplateError> {
    // The template's text keeps its lines (a template may show `matches`), each flattened:
    // no carriage return or other control character reaches the message.
    let lead = renderer.render(event, style.escape())?;
    let lead: Vec<String> = lead.trim().lines().map(flatten).collect();
    let lead = truncate_chars(&lead.join("\n"), MAX_LEAD).into_owned();
    let mut fields = vec![style.field("Jail", &style.value(&event.jail, false))];
    if let Some(id) = &event.id {
        let label = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        fields.push(style.field(label, &style.value(id, true)));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        fields.push(style.field("Failures", &f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            fields.push(style.field("Ban time", &human_duration(b)));
        }
    }
    if !event.host.trim().is_empty() {
        fields.push(style.field("Host", &style.value(&event.host, false)));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.trim().is_empty()) {
        fields.push(style.field("User", &style.value(u, true)));
    }
    if event.restored {
        fields.push(style.field("Restored", "yes, at Fail2Ban's restart"));
    }
    fields.extend(context_fields(event, style));
    // Markdown: a list, one field per item (a single line break inside a paragraph would be
    // a space).
    let item = match style {
        Style::Plain => "\n",
        Style::Markdown => "\n- ",
    };
    let head = format!("{lead}\n\n{}{}", item.trim_start_matches('\n'), fields.join(item));
    let mut out = fit(&head, MAX_MESSAGE).into_owned();
    if let Some(m) = event.matches.as_deref() {
        let left = MAX_MESSAGE - out.len();
        out.push_str(&matches_section(m, style, left));
    }
    Ok(out)
}

/// What enrichment found about the address and the ban's repeat ([`Event::context_fields`]),
/// a field each. The PTR name is whatever the owner of the address's reverse zone wrote: in
/// Markdown a code span like the address ("(unconfirmed)" after it); the databases' names
/// are escaped text like the host's.
fn context_fields(event: &Event, style: Style) -> Vec<String> {
    let c = &event.context;
    event
        .context_fields()
        .into_iter()
        .map(|(label, shown)| match (label, &c.hostname) {
            ("Host name", Some(name)) => {
                let unconfirmed = if c.hostname_confirmed == Some(false) { " (unconfirmed)" } else { "" };
                style.field(label, &format!("{}{unconfirmed}", style.value(name, true)))
            }
            _ => style.field(label, &style.value(&shown, false)),
        })
        .collect()
}

/// Where a digest's bans come from (networks and countries from third-party databases), as
/// a field escaped like any value: `Banned: 41 addresses, 30 of them from AS4134 …`.
fn origins_field(digest: &Digest, style: Style) -> Option<String> {
    let line = truncate_chars(&flatten(&digest.origins()?.line()), MAX_LEAD).into_owned();
    Some(style.field("Banned", &style.escape()(&line)))
}

/// The last matched lines that fit in `left` bytes (each flattened and cut), newest kept
/// first, with how many earlier ones are not shown; empty if none fits.
fn matches_section(matches: &str, style: Style, left: usize) -> String {
    let all: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = all
        .iter()
        .rev()
        .take(MAX_MATCH_LINES)
        .map(|l| truncate_chars(&flatten(l), MAX_MATCH_LINE).into_owned())
        .collect();
    let fence = "`".repeat((lines.iter().map(|l| longest_backtick_run(l)).max().unwrap_or(0) + 1).max(3));
    let (open, close) = match style {
        Style::Plain => ("\n\nMatched log lines:".to_owned(), String::new()),
        Style::Markdown => (format!("\n\n**Matched log lines:**\n{fence}"), format!("\n{fence}")),
    };
    // Room for the frame and the widest note of lines left out.
    let note = |n: usize| format!("\n… {n} earlier line(s) not shown");
    let frame = open.len() + close.len() + note(all.len()).len();
    let Some(mut room) = left.checked_sub(frame) else { return String::new() };
    let mut shown: Vec<&str> = Vec::new();
    for line in &lines {
        if line.len() + 1 > room {
            break;
        }
        room -= line.len() + 1;
        shown.push(line);
    }
    if shown.is_empty() {
        return String::new();
    }
    let mut out = open;
    let earlier = all.len() - shown.len();
    if earlier > 0 {
        out.push_str(&note(earlier));
    }
    for line in shown.iter().rev() {
        out.push('\n');
        out.push_str(line);
    }
    out.push_str(&close);
    out
}

/// The message for a digest, within [`MAX_MESSAGE`]: where the bans come from (when
/// enrichment found it), then per jail what happened and every address, in order, as many as
/// fit; the rest counted exactly in a last line. (Its title, from the host and the counts,
/// is [`Digest::title`].)
pub fn digest_message(digest: &Digest, style: Style) -> String {
    let jails = digest.jails();
    let total: usize = jails.iter().map(|j| j.banned.len() + j.unbanned.len()).sum();
    // Markdown: a list per jail, and a blank line after it (a line right after a list item
    // would continue the item).
    let (item, gap) = match style {
        Style::Plain => ("\n  ", "\n"),
        Style::Markdown => ("\n- ", "\n\n"),
    };
    let tail = |n: usize| format!("{gap}… and {n} more not listed (the 16 KB message cap)");
    let mut left = MAX_MESSAGE - tail(total).len();
    let mut out = String::new();
    // Where the bans come from, first: it is what a storm is about. Left out if it cannot fit.
    if let Some(origins) = origins_field(digest, style).filter(|o| o.len() <= left) {
        left -= origins.len();
        out.push_str(&origins);
    }
    let mut listed = 0usize;
    let mut full = false;
    let mut take = |out: &mut String, piece: &str| {
        if full || piece.len() > left {
            full = true;
            return false;
        }
        left -= piece.len();
        out.push_str(piece);
        true
    };
    // An address as it is (digits, dots, colons: nothing Markdown reads); any other id, in
    // Markdown, in a code span.
    let id = |s: &str| {
        let s = truncate_chars(&flatten(s), MAX_VALUE).into_owned();
        match style {
            Style::Markdown if s.parse::<std::net::IpAddr>().is_err() => md_code(&s),
            _ => s,
        }
    };
    for j in &jails {
        let name = match style {
            Style::Plain => flatten(&j.jail),
            Style::Markdown => format!("**{}**", md_escape(&flatten(&j.jail))),
        };
        let sep = if out.is_empty() { "" } else { gap };
        let mut head = format!("{sep}{name}:");
        let events = j.jail_events();
        if !events.is_empty() {
            head.push_str(&format!("{item}jail {events}"));
        }
        take(&mut out, &head);
        let unbanned_lead = format!("unbanned {}", j.unbanned.len());
        for (what, ids) in [(j.banned_lead(), &j.banned), (unbanned_lead, &j.unbanned)] {
            for (i, one) in ids.iter().enumerate() {
                let piece = if i == 0 { format!("{item}{what}: {}", id(one)) } else { format!(", {}", id(one)) };
                if take(&mut out, &piece) {
                    listed += 1;
                }
            }
        }
    }
    if listed < total {
        out.push_str(&tail(total - listed));
    }
    fit(&out, MAX_MESSAGE).into_owned()
}

/// The message of an alert about f2b-notify itself (it quotes remote error text: flattened
/// per line, escaped like any value); its title is [`title`] of the subject.
pub fn alert_message(alert: &Alert, style: Style) -> String {
    let lines: Vec<String> = alert.text.lines().map(|l| style.escape()(&flatten(l)).into_owned()).collect();
    // Markdown: two spaces end a line with a hard break.
    let line_end = if style == Style::Markdown { "  \n" } else { "\n" };
    let text = lines.join(line_end);
    // Gotify refuses an empty message.
    let text = if text.trim().is_empty() { "(no details)".to_owned() } else { text };
    fit(&text, MAX_MESSAGE).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_keeps_the_cap_and_marks_the_cut() {
        assert_eq!(fit("short", 100), "short");
        let long = "é".repeat(100);
        let cut = fit(&long, 100);
        assert!(cut.len() <= 100 && cut.ends_with("chars]"), "{cut}");
        let kept = cut.chars().take_while(|&c| c == 'é').count();
        assert!(cut.ends_with(&format!("[cut {} chars]", 100 - kept)), "{cut}");
    }

    #[test]
    fn markdown_values_are_inert() {
        assert_eq!(md_escape("203.0.113.7 (sshd) 2001:db8::1"), "203.0.113.7 (sshd) 2001:db8::1");
        assert_eq!(md_escape("[a](http://x) *b* <b>"), "\\[a\\](http://x) \\*b\\* \\<b\\>");
        assert_eq!(
            md_escape("- item\n  1. one\n2) two\n---\nx-y 3.5\n-x\n1.5\n    - code\n3."),
            "\\- item\n  1\\. one\n2\\) two\n\\---\nx-y 3.5\n-x\n1.5\n    - code\n3\\."
        );
        assert_eq!(md_code("root"), "`root`");
        assert_eq!(md_code("a``b"), "```a``b```");
        assert_eq!(md_code("`x"), "`` `x ``");
    }
}
