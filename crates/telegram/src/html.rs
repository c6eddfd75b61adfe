//! Telegram's HTML parse mode, the little of it the sink needs: escaping values, keeping
//! attacker text from turning into mentions or links, counting what Telegram counts (the
//! visible text, in UTF-16 code units) and cutting values to fit.
//!
//! Facts (https://core.telegram.org/bots/api#formatting-options): every `<`, `>` and `&`
//! outside a tag must be `&lt;`, `&gt;`, `&amp;`; the only named entities are those three and
//! `&quot;`, so nothing else is emitted; text inside `code` and `pre` entities is not scanned
//! for mentions, hashtags, commands or links (observed:
//! https://github.com/fastagent-sh/fastagent/pull/103).

use std::borrow::Cow;

/// Escapes text for Telegram's HTML: `&`, `<` and `>`, nothing else.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether Telegram could make nothing of `s` but text: letters, digits, spaces, `-` and
/// `_`. Anything else (`@` a mention, `#` a hashtag, `/` a bot command, `.` or `:` a link,
/// `$` a cashtag, `+` a phone number, …) may be turned into an entity.
fn inert(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
}

/// A value in running text: escaped, and in `<code>` unless it is inert, so that a user name
/// of `@admin` or `evil.example` shows as text instead of pinging someone or linking away.
/// Empty stays empty (an empty entity is no use).
pub fn value(s: &str) -> Cow<'_, str> {
    if s.is_empty() || inert(s) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("<code>{}</code>", escape(s)))
}

/// A value always in `<code>` (an address or id: monospace, and copied with one tap).
pub fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    format!("<code>{}</code>", escape(s))
}

/// Length as Telegram counts it: UTF-16 code units.
pub fn len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Cuts `s` to at most `max` UTF-16 code units, ending with a visible marker that says how
/// many characters were cut. Cuts on a character boundary, never inside a surrogate pair.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    let total = len(s);
    if total <= max {
        return Cow::Borrowed(s);
    }
    let count = s.chars().count();
    // The marker's length depends on the number it holds; a few rounds settle it.
    let mut room = max;
    let mut marker = String::new();
    for _ in 0..3 {
        let kept = kept_chars(s, room);
        marker = format!(" … [cut {} chars]", count - kept);
        room = max.saturating_sub(len(&marker));
    }
    let kept = kept_chars(s, room);
    let mut out: String = s.chars().take(kept).collect();
    out.push_str(&marker);
    // A marker wider than `max` itself (a tiny `max`): the bare cut, never over the limit.
    if len(&out) > max {
        return Cow::Owned(s.chars().take(kept_chars(s, max)).collect());
    }
    Cow::Owned(out)
}

/// How many leading characters of `s` fit in `room` UTF-16 code units.
fn kept_chars(s: &str, room: usize) -> usize {
    let mut used = 0;
    let mut n = 0;
    for c in s.chars() {
        if used + c.len_utf16() > room {
            break;
        }
        used += c.len_utf16();
        n += 1;
    }
    n
}

/// The text Telegram shows for `html`: tags dropped, entities decoded (tdlib's rules:
/// `&lt;` `&gt;` `&amp;` `&quot;` and numeric ones, the `;` optional; any other `&` is text).
/// Exact for HTML Telegram accepts. For HTML it refuses (a template with a `<p>`) it is the
/// plain text sent instead: a `<` is dropped as a tag only when a letter or `/` follows it
/// and a `>` closes it on the same line.
pub fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let after = &rest[1..];
            let looks_like_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
            let close = after.find(['>', '<', '\n']);
            if looks_like_tag {
                if let Some(end) = close.filter(|&e| after.as_bytes()[e] == b'>') {
                    rest = &after[end + 1..];
                    continue;
                }
            }
        } else if c == '&' {
            if let Some((decoded, used)) = entity(rest) {
                out.push(decoded);
                rest = &rest[used..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The character an entity at the start of `s` stands for, and its length in bytes.
fn entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    let mut end = 1;
    let code = if b.get(1) == Some(&b'#') {
        end = 2;
        let hex = b.get(2) == Some(&b'x');
        if hex {
            end = 3;
        }
        let digits_start = end;
        while b.get(end).is_some_and(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }) {
            end += 1;
        }
        let digits = &s[digits_start..end];
        let code = u32::from_str_radix(digits, if hex { 16 } else { 10 }).ok()?;
        if code == 0 || code >= 0x10ffff || end >= 10 {
            return None;
        }
        code
    } else {
        while b.get(end).is_some_and(u8::is_ascii_alphabetic) {
            end += 1;
        }
        match &s[1..end] {
            "lt" => '<' as u32,
            "gt" => '>' as u32,
            "amp" => '&' as u32,
            "quot" => '"' as u32,
            _ => return None,
        }
    };
    if b.get(end) == Some(&b';') {
        end += 1;
    }
    char::from_u32(code).map(|c| (c, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_values() {
        assert_eq!(escape("a < b & c > d"), "a &lt; b &amp; c &gt; d");
        assert_eq!(escape("\"'`*_~[]()"), "\"'`*_~[]()");
        assert_eq!(value("sshd"), "sshd");
        assert_eq!(value("nginx-http_auth 2"), "nginx-http_auth 2");
        assert_eq!(value("@admin"), "<code>@admin</code>");
        assert_eq!(value("203.0.113.7"), "<code>203.0.113.7</code>");
        assert_eq!(value("<b>x</b>"), "<code>&lt;b&gt;x&lt;/b&gt;</code>");
        assert_eq!(value(""), "");
        assert_eq!(code(""), "");
        assert_eq!(code("root"), "<code>root</code>");
    }

    #[test]
    fn counting_and_cutting_in_utf16_units() {
        assert_eq!(len("abc"), 3);
        assert_eq!(len("é"), 1);
        assert_eq!(len("😀"), 2);
        let emoji = "😀".repeat(100);
        let c = cut(&emoji, 51);
        assert!(len(&c) <= 51, "{c}");
        assert!(c.ends_with(" chars]"), "{c}");
        let kept = c.chars().take_while(|&ch| ch == '😀').count();
        assert!(c.ends_with(&format!("[cut {} chars]", 100 - kept)), "{c}");
        assert_eq!(cut("short", 5), "short");
        assert_eq!(cut("abcdef", 3), "abc");
    }

    #[test]
    fn visible_text() {
        assert_eq!(visible("<b>Jail:</b> <code>a &lt;b&gt; &amp;</code>"), "Jail: a <b> &");
        assert_eq!(visible("&quot;&#65;&#x42;&lt&nbsp;&apos;"), "\"AB<&nbsp;&apos;");
        // HTML Telegram refuses still reads sensibly as text.
        assert_eq!(visible("<p>hi</p> 1 < 2 and 3 > 2 <3"), "hi 1 < 2 and 3 > 2 <3");
    }
}
