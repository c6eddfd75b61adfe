//! The text of an ntfy message: one event, a digest, or an alert; plain text by default,
//! Markdown when the sink says so.
//!
//! ntfy takes a message of at most 4,096 bytes: a longer one becomes an attachment on
//! ntfy.sh (`attachment.txt`) and is refused (400 40014) by a server without attachments,
//! which is how most self-hosted ones are set up (D: docs.ntfy.sh/publish/#limitations; S:
//! `handlePublishBody`). The JSON form's whole body may hold at most 8,192 bytes (413 41303;
//! S: `transformBodyJSON`). So every text is built to a [`Budget`] of both, and cut with a
//! visible marker when it must be.
//!
//! Plain text is data whatever it holds: ntfy shows it as it is. With `markdown = true` the
//! web app renders it (D: docs.ntfy.sh/publish/#markdown-formatting), so every value from the
//! event is made inert first: the matched log lines go in a fenced code block whose fence is
//! longer than any run of backticks in them, the address and the user in code spans built
//! the same way, and other text has Markdown's special characters backslash-escaped. The
//! phone apps show the raw text, so the Markdown is kept readable as plain text.

use std::borrow::Cow;

pub use f2b_notify_core::flatten_shown as flatten;
use f2b_notify_core::markdown::md_fence;
pub use f2b_notify_core::markdown::{md_code, md_escape, Style, MAX_VALUE};
use f2b_notify_core::{cut_marker, truncate_chars, Alert, Digest, Event, EventKind, Renderer, TemplateError};

/// ntfy's message limit (bytes): a longer body is not a message but an attachment.
pub const MAX_MESSAGE: usize = 4096;
/// The JSON form's body limit (bytes): twice the message limit (S: `readJSONWithLimit(…,
/// MessageLimit*2)`).
pub const MAX_JSON: usize = 8192;
/// Characters of a title at most: at most 1,000 bytes, under ntfy's 1 KB title limit (400
/// 40057 since v2.28).
pub const MAX_TITLE: usize = 250;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 20;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 300;

/// What a text costs against ntfy's two limits: its bytes, and its bytes once escaped as a
/// JSON string (`"` and `\` take two, a control character two or six).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// UTF-8 bytes.
    pub raw: usize,
    /// Bytes inside the JSON string's quotes.
    pub json: usize,
}

fn char_cost(c: char) -> Cost {
    let json = match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    };
    Cost { raw: c.len_utf8(), json }
}

/// The cost of `s`.
pub fn cost(s: &str) -> Cost {
    s.chars().map(char_cost).fold(Cost::default(), |a, b| Cost { raw: a.raw + b.raw, json: a.json + b.json })
}

/// Room left for a message: bytes, and bytes once escaped for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub raw: usize,
    /// Bytes escaped for JSON.
    pub json: usize,
}

impl Budget {
    /// Whether `c` fits.
    pub fn fits(&self, c: Cost) -> bool {
        c.raw <= self.raw && c.json <= self.json
    }

    /// What is left after `c` (nothing, if it does not fit).
    pub fn less(&self, c: Cost) -> Budget {
        Budget { raw: self.raw.saturating_sub(c.raw), json: self.json.saturating_sub(c.json) }
    }

    /// Takes `s` if it fits and says so.
    fn take(&mut self, out: &mut String, s: &str) -> bool {
        let c = cost(s);
        if !self.fits(c) {
            return false;
        }
        *self = self.less(c);
        out.push_str(s);
        true
    }
}

/// `s` within `budget`: whole if it fits, else cut on a character boundary and ended with a
/// marker that says how many characters were cut, the whole within the budget.
pub fn fit(s: &str, budget: Budget) -> Cow<'_, str> {
    if budget.fits(cost(s)) {
        return Cow::Borrowed(s);
    }
    let total = s.chars().count();
    // The marker's length depends on the number it holds: sized for the most it may say,
    // then written with the number cut (never longer).
    let widest = cost(&cut_marker(total));
    let room = budget.less(widest);
    let mut used = Cost::default();
    let mut keep = 0;
    for c in s.chars() {
        let next = char_cost(c);
        let sum = Cost { raw: used.raw + next.raw, json: used.json + next.json };
        if !room.fits(sum) {
            break;
        }
        used = sum;
        keep += c.len_utf8();
    }
    let kept = &s[..keep];
    let mut out = kept.to_owned();
    out.push_str(&cut_marker(total - kept.chars().count()));
    Cow::Owned(out)
}

/// The title of an event's message, built from the host, the jail and the event only: the
/// id, user and matched lines are an attacker's text and stay in the body. Flattened and
/// capped (ntfy shows it as one line).
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

/// Any title as ntfy shows it: one line, at most [`MAX_TITLE`] characters.
pub fn title(s: &str) -> String {
    truncate_chars(flatten(s).trim(), MAX_TITLE).into_owned()
}

/// The message for one event, within `budget`: the template's text, the fields (jail,
/// address, failures, ban time, host, user, restored, then what enrichment found), then the
/// last matched log lines that fit, newest kept first.
pub fn event_message(
    event: &Event,
    renderer: &Renderer,
    style: Style,
    budget: Budget,
) -> Result<String, TemplateError> {
    let head = style.event_head(event, renderer)?;
    let mut out = fit(&head, budget).into_owned();
    let mut left = budget.less(cost(&out));
    if let Some(m) = event.matches.as_deref() {
        out.push_str(&matches_section(m, style, &mut left));
    }
    Ok(fit(&out, budget).into_owned())
}

/// The last matched lines that fit in `left` (each flattened and cut), newest kept first,
/// with how many earlier ones are not shown; empty if none fits.
fn matches_section(matches: &str, style: Style, left: &mut Budget) -> String {
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
    let frame = cost(&format!("{open}{close}{}", note(all.len())));
    if !left.fits(frame) {
        return String::new();
    }
    let mut room = left.less(frame);
    let mut shown: Vec<&str> = Vec::new();
    for line in &lines {
        let c = cost(line);
        let with_break = Cost { raw: c.raw + 1, json: c.json + 2 };
        if !room.fits(with_break) {
            break;
        }
        room = room.less(with_break);
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
    *left = left.less(cost(&out));
    out
}

/// The message for a digest, within `budget`: where the bans come from (when enrichment found
/// it), then per jail what happened and every address, in order, as many as fit; the rest
/// counted exactly in a last line. (Its title, from the host and the counts, is
/// [`Digest::title`].)
pub fn digest_message(digest: &Digest, style: Style, budget: Budget) -> String {
    let jails = digest.jails();
    let total: usize = jails.iter().map(|j| j.banned.len() + j.unbanned.len()).sum();
    // Markdown: a list per jail, and a blank line after it (a line right after a list item
    // would continue the item).
    let (item, gap) = match style {
        Style::Plain => ("\n  ", "\n"),
        Style::Markdown => ("\n- ", "\n\n"),
    };
    let tail = |n: usize| format!("{gap}… and {n} more not listed (ntfy's 4,096-byte message limit)");
    let mut left = budget.less(cost(&tail(total)));
    let mut out = String::new();
    // Where the bans come from, first: it is what a storm is about. Left out if it cannot fit.
    if let Some(origins) = style.origins_field(digest) {
        left.take(&mut out, &origins);
    }
    let mut listed = 0usize;
    let mut full = false;
    let id = |s: &str| match style {
        Style::Plain => truncate_chars(&flatten(s), MAX_VALUE).into_owned(),
        Style::Markdown => md_code(&truncate_chars(&flatten(s), MAX_VALUE)),
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
        full = full || !left.take(&mut out, &head);
        let unbanned_lead = format!("unbanned {}", j.unbanned.len());
        for (what, ids) in [(j.banned_lead(), &j.banned), (unbanned_lead, &j.unbanned)] {
            for (i, one) in ids.iter().enumerate() {
                let piece = if i == 0 { format!("{item}{what}: {}", id(one)) } else { format!(", {}", id(one)) };
                full = full || !left.take(&mut out, &piece);
                if !full {
                    listed += 1;
                }
            }
        }
    }
    if listed < total {
        out.push_str(&tail(total - listed));
    }
    fit(&out, budget).into_owned()
}

/// The message of an alert about f2b-notify itself (it quotes remote error text: flattened
/// per line, escaped like any value); its title is [`title`] of the subject.
pub fn alert_message(alert: &Alert, style: Style, budget: Budget) -> String {
    let lines: Vec<String> = alert.text.lines().map(|l| style.escape()(&flatten(l)).into_owned()).collect();
    // Markdown: two spaces end a line with a hard break, invisible in the raw text.
    let line_end = if style == Style::Markdown { "  \n" } else { "\n" };
    fit(&lines.join(line_end), budget).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_keeps_both_limits_and_marks_the_cut() {
        let b = Budget { raw: 100, json: 100 };
        assert_eq!(fit("short", b), "short");
        let long = "é".repeat(100);
        let cut = fit(&long, b);
        assert!(cost(&cut).raw <= 100 && cut.ends_with("chars]"), "{cut}");
        let kept = cut.chars().take_while(|&c| c == 'é').count();
        assert!(cut.ends_with(&format!("[cut {} chars]", 100 - kept)), "{cut}");
        // Quotes cost two in JSON: the JSON budget binds.
        let quotes = "\"".repeat(100);
        let cut = fit(&quotes, Budget { raw: 100, json: 100 });
        assert!(cost(&cut).json <= 100, "{}", cost(&cut).json);
        assert!(cut.starts_with("\"\"\"") && cut.contains("[cut "), "{cut}");
    }

    #[test]
    fn markdown_values_are_inert() {
        assert_eq!(md_escape("203.0.113.7 (sshd)"), "203.0.113.7 (sshd)");
        assert_eq!(md_escape("[a](http://x) *b* <b>"), "\\[a\\](http://x) \\*b\\* \\<b\\>");
        assert_eq!(md_code("root"), "`root`");
        assert_eq!(md_code("a``b"), "```a``b```");
        assert_eq!(md_code("`x"), "`` `x ``");
    }
}
