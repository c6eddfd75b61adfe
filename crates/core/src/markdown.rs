//! Markdown for the sinks whose services render it (ntfy, Gotify, …): values escaped so that
//! they stay text, and code spans that nothing inside can close. Written once here so that
//! every Markdown sink escapes by the same, strictest rule.

use std::borrow::Cow;

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
