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

pub use f2b_notify_core::flatten_shown as flatten;
use f2b_notify_core::markdown::md_fence;
pub use f2b_notify_core::markdown::{md_code, md_escape, Style, MAX_VALUE};
use f2b_notify_core::{cut_marker, truncate_chars, Alert, Digest, Event, EventKind, Renderer, TemplateError};

/// The most bytes of one message: 16 KiB, a long log excerpt and 500 banned IPv4 addresses,
/// well under any proxy's body cap and a MySQL `TEXT` column.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Characters of a title at most (Gotify shows it as one line).
pub const MAX_TITLE: usize = 250;
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
    let room = max.saturating_sub(cut_marker(total).len());
    let mut keep = room.min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    let kept = &s[..keep];
    let mut out = kept.to_owned();
    out.push_str(&cut_marker(total - kept.chars().count()));
    Cow::Owned(out)
}

/// The content type the clients are told for `style` (`extras.client::display.contentType`).
pub fn content_type(style: Style) -> &'static str {
    match style {
        Style::Markdown => "text/markdown",
        Style::Plain => "text/plain",
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
    let head = style.event_head(event, renderer)?;
    let mut out = fit(&head, MAX_MESSAGE).into_owned();
    if let Some(m) = event.matches.as_deref() {
        let left = MAX_MESSAGE - out.len();
        out.push_str(&matches_section(m, style, left));
    }
    Ok(out)
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
    let fence = md_fence(&lines);
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
    if let Some(origins) = style.origins_field(digest).filter(|o| o.len() <= left) {
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
