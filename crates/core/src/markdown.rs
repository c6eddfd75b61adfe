//! Markdown for the sinks whose services render it (ntfy, Gotify, …): values escaped so that
//! they stay text, and code spans that nothing inside can close. Written once here so that
//! every Markdown sink escapes by the same, strictest rule; and the head of an event's message
//! (its text and labelled fields) that ntfy and Gotify both write, plain or in Markdown.

use std::borrow::Cow;

use crate::{
    flatten_shown, human_duration, truncate_chars, ContextValue, Digest, Event, EventKind, Renderer, TemplateError,
};

/// Characters of the template's text (the message's first line) at most.
pub const MAX_LEAD: usize = 1000;
/// Characters of one field's value (jail, host, address, user) at most.
pub const MAX_VALUE: usize = 200;

/// How a message is written, for services that show either (ntfy, Gotify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Plain text: shown as it is.
    Plain,
    /// Markdown: rendered by the clients; values made inert.
    Markdown,
}

fn plain(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

impl Style {
    /// The escaper of text values: none, or [`md_escape`].
    pub fn escape(self) -> fn(&str) -> Cow<'_, str> {
        match self {
            Self::Plain => plain,
            Self::Markdown => md_escape,
        }
    }

    /// A labelled line: `Jail: sshd`, or `**Jail:** sshd`.
    pub fn field(self, label: &str, value: &str) -> String {
        match self {
            Self::Plain => format!("{label}: {value}"),
            Self::Markdown => format!("**{label}:** {value}"),
        }
    }

    /// A value from the event (one line, capped at [`MAX_VALUE`]), escaped: as text, or in
    /// Markdown as a code span when `code` (an address or user name, to be read as it is).
    pub fn value(self, s: &str, code: bool) -> String {
        let v = truncate_chars(&flatten_shown(s), MAX_VALUE).into_owned();
        match (self, code) {
            (Self::Plain, _) => v,
            (Self::Markdown, true) => md_code(&v),
            (Self::Markdown, false) => md_escape(&v).into_owned(),
        }
    }

    /// The head of an event's message: the template's text (its lines kept, each flattened,
    /// at most [`MAX_LEAD`] characters), a blank line, then the fields — jail, address,
    /// failures, ban time, host, user, restored, then what enrichment found — one per line,
    /// or in Markdown one per list item (a single line break inside a paragraph would be a
    /// space).
    pub fn event_head(self, event: &Event, renderer: &Renderer) -> Result<String, TemplateError> {
        let lead = renderer.render(event, self.escape())?;
        let lead: Vec<String> = lead.trim().lines().map(flatten_shown).collect();
        let lead = truncate_chars(&lead.join("\n"), MAX_LEAD).into_owned();
        let mut fields = vec![self.field("Jail", &self.value(&event.jail, false))];
        if let Some(id) = &event.id {
            let label = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
            fields.push(self.field(label, &self.value(id, true)));
        }
        if let Some(f) = event.failures.filter(|&f| f > 0) {
            fields.push(self.field("Failures", &f.to_string()));
        }
        if event.kind == EventKind::Ban {
            if let Some(b) = event.bantime {
                fields.push(self.field("Ban time", &human_duration(b)));
            }
        }
        if !event.host.trim().is_empty() {
            fields.push(self.field("Host", &self.value(&event.host, false)));
        }
        if let Some(u) = event.user.as_deref().filter(|u| !u.trim().is_empty()) {
            fields.push(self.field("User", &self.value(u, true)));
        }
        if event.restored {
            fields.push(self.field("Restored", "yes, at Fail2Ban's restart"));
        }
        fields.extend(self.context_fields(event));
        let item = match self {
            Self::Plain => "\n",
            Self::Markdown => "\n- ",
        };
        Ok(format!("{lead}\n\n{}{}", item.trim_start_matches('\n'), fields.join(item)))
    }

    /// What enrichment found about the address and the ban's repeat
    /// ([`Event::context_fields`]), a field each. The PTR name is whatever the owner of the
    /// address's reverse zone wrote: in Markdown a code span like the address ("(unconfirmed)"
    /// after it); the databases' names are escaped text like the host's.
    pub fn context_fields(self, event: &Event) -> Vec<String> {
        event
            .context_parts()
            .into_iter()
            .map(|(label, value)| match &value {
                ContextValue::Name { name, .. } => {
                    self.field(label, &format!("{}{}", self.value(name, true), value.note()))
                }
                ContextValue::Text(text) => self.field(label, &self.value(text, false)),
            })
            .collect()
    }

    /// Where a digest's bans come from (networks and countries from third-party databases),
    /// as a field escaped like any value: `Banned: 41 addresses, 30 of them from AS4134 …`.
    pub fn origins_field(self, digest: &Digest) -> Option<String> {
        let line = truncate_chars(&flatten_shown(&digest.origins()?.line()), MAX_LEAD).into_owned();
        Some(self.field("Banned", &self.escape()(&line)))
    }
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

/// The longest run of backticks in `s`.
fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// The fence of a fenced code block holding `lines`: backticks, at least three and one more
/// than the longest run in any line, so that no line can close the block.
pub fn md_fence<S: AsRef<str>>(lines: &[S]) -> String {
    "`".repeat((lines.iter().map(|l| longest_backtick_run(l.as_ref())).max().unwrap_or(0) + 1).max(3))
}

/// `s` (one line) as a Markdown code span: delimited by one backtick more than the longest
/// run inside, and padded with a space where it starts or ends with one (CommonMark 6.1), so
/// that nothing in it can close the span.
pub fn md_code(s: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_text() {
        assert_eq!(md_escape("203.0.113.7 (x)"), "203.0.113.7 (x)");
        assert_eq!(md_escape("*a* _b_ [c](d) <e> `f` #g"), "\\*a\\* \\_b\\_ \\[c\\](d) \\<e\\> \\`f\\` \\#g");
        // Block marks at the start of a line only.
        assert_eq!(md_escape("- item\n1. one\n-x\n a-b"), "\\- item\n1\\. one\n-x\n a-b");
        assert_eq!(md_escape("---"), "\\---");
    }

    #[test]
    fn code_spans_cannot_be_closed_from_inside() {
        assert_eq!(md_code("a"), "`a`");
        assert_eq!(md_code("a``b"), "```a``b```");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(md_fence(&["a", "b"]), "```");
        assert_eq!(md_fence(&["a````b"]), "`````");
    }
}
