//! The Discord message for one event, a digest or an alert: `content` (the rendered template,
//! what a push notification shows) and embeds coloured by event, with `allowed_mentions =
//! {"parse": []}` on every message so that nothing in it can ping anyone.
//!
//! Attacker text (user names, log lines, ids) is data three times over: Discord markdown is
//! backslash-escaped outside code ([`escape_markdown`]); inside code spans and blocks, backticks
//! become a look-alike so the code cannot be closed ([`code`]); and mentions are broken with a
//! zero-width space (`@everyone`, `@here`, every `<…>` form) even though `allowed_mentions`
//! already stops them, in case a future edit or a client renders them.
//!
//! Every text is kept within Discord's limits whatever the input, cut with a visible
//! [`CUT`] marker. Discord does not say how it counts characters (UTF-16 units or code
//! points); lengths here are UTF-16 units, never fewer than code points, so a text within a
//! limit here is within it either way (an emoji is one code point but two units).
//!
//! Limits: <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>
//! and <https://discord.com/developers/docs/resources/webhook#execute-webhook>.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use f2b_notify_core::ContextValue;
use f2b_notify_core::{flatten, human_duration, Alert, Digest, Event, EventKind, JailSummary, Renderer, TemplateError};
use serde_json::{json, Map, Value};

/// `content`: at most 2000 characters.
pub const MAX_CONTENT: usize = 2000;
/// An embed's `title`: at most 256 characters.
pub const MAX_TITLE: usize = 256;
/// An embed's `description`: at most 4096 characters.
pub const MAX_DESCRIPTION: usize = 4096;
/// Fields in one embed: at most 25.
pub const MAX_FIELDS: usize = 25;
/// A field's `name`: at most 256 characters.
pub const MAX_FIELD_NAME: usize = 256;
/// A field's `value`: at most 1024 characters.
pub const MAX_FIELD_VALUE: usize = 1024;
/// Embeds in one message: at most 10.
pub const MAX_EMBEDS: usize = 10;
/// Title, description, field names and values, footer and author of all embeds together: at
/// most 6000 characters.
pub const MAX_TOTAL: usize = 6000;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 10;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 300;
/// Characters of a host, jail, id or user name shown at most: far less than a field holds,
/// so that a hostile value cannot crowd out the rest.
pub const MAX_VALUE: usize = 200;
/// Characters of one id in a digest's list at most: an address is 45 at most, and a longer
/// "id" must not eat the message's budget.
pub const MAX_LISTED_ID: usize = 100;
/// What ends a text that was cut.
pub const CUT: &str = "… (cut)";

/// Red for a ban (0xE74C3C), green for an unban (0x2ECC71), blue for a jail start (0x3498DB),
/// grey for a jail stop (0x95A5A6).
pub fn color(kind: EventKind) -> u32 {
    match kind {
        EventKind::Ban => 0xE7_4C_3C,
        EventKind::Unban => 0x2E_CC_71,
        EventKind::Start => 0x34_98_DB,
        EventKind::Stop => 0x95_A5_A6,
    }
}

/// How the poster looks, from the config.
#[derive(Debug, Clone, Default)]
pub struct MessageOptions {
    /// Overrides the webhook's name.
    pub username: Option<String>,
    /// Overrides the webhook's avatar.
    pub avatar_url: Option<String>,
}

/// Length as Discord may count it: UTF-16 units (see the module docs).
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Cuts `s` to at most `max` UTF-16 units, ending with ` … (cut)` when it was cut. A cut
/// never leaves a lone escaping backslash at the end (it would escape the marker's space).
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if units(s) <= max {
        return Cow::Borrowed(s);
    }
    let room = max.saturating_sub(units(CUT) + 1);
    let mut out = String::with_capacity(room + 12);
    let mut n = 0;
    for c in s.chars() {
        n += c.len_utf16();
        if n > room {
            break;
        }
        out.push(c);
    }
    if out.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
        out.pop();
    }
    out.push(' ');
    out.push_str(CUT);
    Cow::Owned(out)
}

/// A zero-width space: put after `@` in `@everyone`/`@here` and after every `<`, it breaks the
/// mention or tag without changing what a reader sees.
const ZWSP: char = '\u{200B}';

/// Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) reorder the text
/// around them on screen: a user name could make a message read differently from what it
/// says. They become U+FFFD.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `rest` (the text after an `@`) starts with `everyone` or `here`, in any case.
fn mass_mention(rest: &str) -> bool {
    let starts = |word: &str| rest.get(..word.len()).is_some_and(|head| head.eq_ignore_ascii_case(word));
    starts("everyone") || starts("here")
}

/// Escapes text for Discord markdown outside code: a backslash before `\ * _ ~ `` ` `` | [ ] ( )
/// <` anywhere, and before `# - > +` and a numbered list's `1.` at the start of a line (or of
/// the value, which a template may put at the start of a line); mentions broken (see the
/// module docs); bidi controls replaced. For the renderer's values and every text field.
pub fn escape_markdown(s: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '-' | '+' | '.' | '@'
        ) || is_bidi_control(c)
    };
    if !s.contains(needs) {
        return Cow::Borrowed(s);
    }
    #[derive(PartialEq)]
    enum Line {
        /// Only white space since the line began.
        Blank,
        /// White space, then digits only: a `.` now would start a numbered list.
        Digits,
        /// Anything else.
        Text,
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut line = Line::Blank;
    for (i, c) in s.char_indices() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            '<' => {
                out.push_str("\\<");
                out.push(ZWSP);
            }
            '#' | '-' | '>' | '+' if line == Line::Blank => {
                out.push('\\');
                out.push(c);
            }
            // `1. ` starts a list; `203.0.113.7` does not. The end of the value counts as a
            // space: a template may go on with one.
            '.' if line == Line::Digits && s[i + 1..].chars().next().is_none_or(char::is_whitespace) => {
                out.push_str("\\.");
            }
            '@' => {
                out.push('@');
                if mass_mention(&s[i + 1..]) {
                    out.push(ZWSP);
                }
            }
            c if is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
        line = match c {
            '\n' | '\r' => Line::Blank,
            c if c.is_whitespace() && line == Line::Blank => Line::Blank,
            c if c.is_ascii_digit() && matches!(line, Line::Blank | Line::Digits) => Line::Digits,
            _ => Line::Text,
        };
    }
    Cow::Owned(out)
}

/// Text made safe inside a code span or block: backticks become `ˋ` (U+02CB) so the code
/// cannot be closed, mentions are broken, bidi controls replaced. Nothing else is escaped:
/// Discord shows code verbatim, backslashes and all.
pub fn code(s: &str) -> Cow<'_, str> {
    if !s.contains(|c: char| matches!(c, '`' | '<' | '@') || is_bidi_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.char_indices() {
        match c {
            '`' => out.push('\u{2CB}'),
            '<' => {
                out.push('<');
                out.push(ZWSP);
            }
            '@' => {
                out.push('@');
                if mass_mention(&s[i + 1..]) {
                    out.push(ZWSP);
                }
            }
            c if is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A one-line value in an inline code span, cut to `max` first.
fn code_span(value: &str, max: usize) -> String {
    format!("`{}`", code(&cut(&flatten(value), max)))
}

/// A one-line value as escaped text of at most `max` characters (escaped first, so that the
/// cut marker stays as it is).
fn text(value: &str, max: usize) -> String {
    cut(&escape_markdown(&flatten(value)), max).into_owned()
}

/// The JSON body around `embeds`: content (left out when empty), mentions off, the poster.
fn envelope(content: &str, embeds: Vec<Value>, options: &MessageOptions) -> Value {
    let mut body = Map::new();
    if !content.trim().is_empty() {
        body.insert("content".into(), Value::from(cut(content, MAX_CONTENT).into_owned()));
    }
    body.insert("embeds".into(), Value::from(embeds));
    // Always: no `@everyone`, `@here`, role or user in any text may notify anybody.
    body.insert("allowed_mentions".into(), json!({ "parse": [] }));
    for (key, value) in [("username", &options.username), ("avatar_url", &options.avatar_url)] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            body.insert(key.into(), Value::from(v));
        }
    }
    Value::Object(body)
}

/// The embed's title for an event: fixed words, so no attacker text reaches a title (whose
/// markdown support Discord does not document).
fn title(event: &Event) -> &'static str {
    match event.kind {
        EventKind::Ban if event.restored => "Banned (restored at Fail2Ban's restart)",
        EventKind::Ban => "Banned",
        EventKind::Unban => "Unbanned",
        EventKind::Start => "Jail started",
        EventKind::Stop => "Jail stopped",
    }
}

/// An embed field; inline, so that Discord shows them three to a row.
fn field(name: &str, value: String) -> Value {
    json!({
        "name": cut(name, MAX_FIELD_NAME),
        "value": cut(&value, MAX_FIELD_VALUE),
        "inline": true,
    })
}

/// Host, jail, address (in a code span), failures, ban time, user (in a code span), then
/// what enrichment found. An empty value is left out: Discord refuses an empty field value.
fn fields(event: &Event) -> Vec<Value> {
    let mut out = Vec::new();
    if !event.host.trim().is_empty() {
        out.push(field("Host", text(&event.host, MAX_VALUE)));
    }
    if !event.jail.trim().is_empty() {
        out.push(field("Jail", text(&event.jail, MAX_VALUE)));
    }
    if let Some(id) = event.id.as_deref().filter(|id| !id.trim().is_empty()) {
        let name = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        out.push(field(name, code_span(id, MAX_VALUE)));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        out.push(field("Failures", f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            out.push(field("Ban time", human_duration(b)));
        }
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.trim().is_empty()) {
        out.push(field("User", code_span(u, MAX_VALUE)));
    }
    out.extend(context_fields(event));
    out.truncate(MAX_FIELDS);
    out
}

/// What enrichment found about the address and the ban's repeat ([`Event::context_fields`]):
/// host name, location, network, repeat. The PTR name is whatever the owner of the address's
/// reverse zone wrote: in a code span like the address ("(unconfirmed)" after it), where
/// nothing is a link or a mention; the databases' names are escaped text like the host's.
fn context_fields(event: &Event) -> Vec<Value> {
    event
        .context_parts()
        .into_iter()
        .map(|(label, value)| match &value {
            ContextValue::Name { name, .. } => field(label, format!("{}{}", code_span(name, MAX_VALUE), value.note())),
            ContextValue::Text(t) => field(label, text(t, MAX_VALUE)),
        })
        .collect()
}

/// What one embed counts toward the 6000 of a message.
fn embed_units(embed: &Value) -> usize {
    let s = |v: &Value| v.as_str().map_or(0, units);
    let mut n =
        s(&embed["title"]) + s(&embed["description"]) + s(&embed["footer"]["text"]) + s(&embed["author"]["name"]);
    for f in embed["fields"].as_array().into_iter().flatten() {
        n += s(&f["name"]) + s(&f["value"]);
    }
    n
}

/// The matched log lines in a code block of at most `room` characters: the last
/// [`MAX_MATCH_LINES`] lines, each cut to [`MAX_MATCH_LINE`], and how many earlier ones are
/// not shown.
fn matches_block(matches: &str, room: usize) -> String {
    let lines: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown: Vec<String> = lines
        .iter()
        .skip(lines.len().saturating_sub(MAX_MATCH_LINES))
        .map(|l| code(&cut(&flatten(l), MAX_MATCH_LINE)).into_owned())
        .collect();
    let mut inner = shown.join("\n");
    if lines.len() > shown.len() {
        inner = format!("… {} earlier line(s) not shown\n{inner}", lines.len() - shown.len());
    }
    let (head, tail) = ("**Matched log lines**\n```\n", "\n```");
    let inner = cut(&inner, room.saturating_sub(units(head) + units(tail)));
    format!("{head}{inner}{tail}")
}

/// An event's time as RFC 3339 (UTC), for the embed's `timestamp`; none when absurd.
fn timestamp(epoch: f64) -> Option<String> {
    if !(0.0..=1e11).contains(&epoch) {
        return None;
    }
    Some(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch as u64)).to_string())
}

/// The JSON body for `event`: the rendered text as `content`, one embed with the fields and,
/// for a ban, the matched lines.
pub fn build(event: &Event, renderer: &Renderer, options: &MessageOptions) -> Result<Value, TemplateError> {
    let content = renderer.render(event, escape_markdown)?;
    let mut embed = json!({
        "title": title(event),
        "color": color(event.kind),
        "fields": fields(event),
    });
    if let Some(m) = event.matches.as_deref().filter(|m| event.kind == EventKind::Ban && !m.trim().is_empty()) {
        let room = MAX_DESCRIPTION.min(MAX_TOTAL.saturating_sub(embed_units(&embed)));
        embed["description"] = Value::from(matches_block(m, room));
    }
    if let Some(t) = event.time.and_then(timestamp) {
        embed["timestamp"] = Value::from(t);
    }
    Ok(envelope(&content, vec![embed], options))
}

/// The JSON body for an alert about f2b-notify itself: the subject as `content`, the details
/// in a red embed (green once recovered). It quotes remote error text: escaped like any value.
pub fn build_alert(alert: &Alert, options: &MessageOptions) -> Value {
    let subject = text(&alert.subject, MAX_CONTENT);
    let lines: Vec<String> = alert.text.lines().map(|l| escape_markdown(&flatten(l)).into_owned()).collect();
    let (title, kind) = if alert.recovered {
        ("f2b-notify: delivery recovered", EventKind::Unban)
    } else {
        ("f2b-notify: delivery problem", EventKind::Ban)
    };
    let mut embed = json!({ "title": title, "color": color(kind) });
    let description = lines.join("\n");
    if !description.trim().is_empty() {
        embed["description"] = Value::from(cut(&description, MAX_DESCRIPTION).into_owned());
    }
    envelope(&subject, vec![embed], options)
}

/// A jail's colour in a digest: red if it banned, green if it only unbanned, else blue for a
/// start or grey for a stop.
fn jail_color(jail: &JailSummary) -> u32 {
    let kind = if !jail.banned.is_empty() {
        EventKind::Ban
    } else if !jail.unbanned.is_empty() {
        EventKind::Unban
    } else if jail.started > 0 {
        EventKind::Start
    } else {
        EventKind::Stop
    };
    color(kind)
}

/// Fills up to [`MAX_EMBEDS`] embeds within [`MAX_TOTAL`], counting what does not fit.
struct Pack {
    /// Finished embeds: description and colour.
    done: Vec<(String, u32)>,
    /// What the finished embeds count toward the total.
    used: usize,
    /// The embed being filled, with its length.
    open: Option<(String, u32, usize)>,
    /// Ids that fit nowhere.
    unlisted_ids: usize,
    /// Jails that got no embed at all.
    unlisted_jails: usize,
}

impl Pack {
    /// How long the open embed's description may grow.
    fn cap(&self) -> usize {
        MAX_DESCRIPTION.min(MAX_TOTAL.saturating_sub(self.used))
    }

    /// Starts a new embed with `head`, when there is an embed left and room for `head` and
    /// `then` more characters. Closes the open one first.
    fn start(&mut self, head: &str, color: u32, then: usize) -> bool {
        self.close();
        let n = units(head);
        if self.done.len() >= MAX_EMBEDS || n + then > self.cap() {
            return false;
        }
        self.open = Some((head.to_owned(), color, n));
        true
    }

    fn close(&mut self) {
        if let Some((desc, color, n)) = self.open.take() {
            self.used += n;
            self.done.push((desc, color));
        }
    }

    /// Appends `s` to the open embed when it fits.
    fn push(&mut self, s: &str) -> bool {
        let cap = self.cap();
        let Some((desc, _, n)) = self.open.as_mut() else { return false };
        let more = units(s);
        if *n + more > cap {
            return false;
        }
        desc.push_str(s);
        *n += more;
        true
    }

    /// Lists `ids` under `lead` in code blocks, going on in new embeds (`head`, continued)
    /// while there are embeds and room; counts the rest.
    fn list(&mut self, head: &str, color: u32, lead: &str, ids: &[String]) {
        const CLOSE: &str = "\n```";
        let items: Vec<String> = ids.iter().map(|id| code(&cut(id, MAX_LISTED_ID)).into_owned()).collect();
        let mut i = 0;
        let mut opening = format!("\n{lead}:\n```\n");
        while i < items.len() {
            let first = units(&opening) + units(&items[i]) + units(CLOSE);
            // Room for the opening, one id and the closing fence in this embed?
            let fits = self.open.as_ref().is_some_and(|(_, _, n)| n + first <= self.cap());
            if !fits {
                let continued = format!("{head} (continued)");
                if !self.start(&continued, color, first) {
                    self.unlisted_ids += items.len() - i;
                    return;
                }
            }
            let pushed = self.push(&opening) && self.push(&items[i]);
            debug_assert!(pushed, "room was checked");
            i += 1;
            // Further ids while they fit with the closing fence.
            while i < items.len() {
                let cap = self.cap();
                let next = units(&items[i]) + 2;
                let n = self.open.as_ref().map_or(usize::MAX, |(_, _, n)| *n);
                if n + next + units(CLOSE) > cap {
                    break;
                }
                self.push(", ");
                self.push(&items[i]);
                i += 1;
            }
            self.push(CLOSE);
            opening = format!("\n{lead} (continued):\n```\n");
        }
    }
}

/// The JSON body for a digest: the counted summary as `content` (and where the bans come
/// from, when enrichment found it), then one embed per jail (or more for a long list) naming
/// every banned and unbanned id in code blocks, while Discord's 10 embeds and 6000 characters
/// last. Whatever does not fit is counted, exactly, in the content.
pub fn build_digest(digest: &Digest, options: &MessageOptions) -> Value {
    let mut pack = Pack { done: Vec::new(), used: 0, open: None, unlisted_ids: 0, unlisted_jails: 0 };
    for jail in digest.jails() {
        let name = text(&jail.jail, MAX_VALUE);
        let events = jail.jail_events();
        let head = if events.is_empty() { format!("**{name}**") } else { format!("**{name}**: jail {events}") };
        let color = jail_color(&jail);
        let unbanned_lead = format!("unbanned {}", jail.unbanned.len());
        let lists = [(jail.banned_lead(), &jail.banned), (unbanned_lead, &jail.unbanned)];
        // A jail's embed is started only with room for its first list's first id too.
        let first = lists.iter().find(|(_, ids)| !ids.is_empty()).map_or(0, |(lead, ids)| {
            units(&format!("\n{lead}:\n```\n")) + units(&code(&cut(&ids[0], MAX_LISTED_ID))) + units("\n```")
        });
        if !pack.start(&head, color, first) {
            pack.unlisted_ids += jail.banned.len() + jail.unbanned.len();
            pack.unlisted_jails += 1;
            continue;
        }
        for (lead, ids) in lists {
            if !ids.is_empty() {
                pack.list(&head, color, &lead, ids);
            }
        }
    }
    pack.close();
    // The summary is counts and fixed words; only the host needs escaping, and the origins
    // line, whose networks and countries come from third-party databases.
    let mut content = format!("Fail2Ban on {}: {}", escape_markdown(&digest.host()), digest.summary());
    if let Some(origins) = digest.origins() {
        content.push_str(&format!("\n**Banned:** {}", escape_markdown(&flatten(&origins.line()))));
    }
    if pack.unlisted_ids > 0 || pack.unlisted_jails > 0 {
        let mut parts = Vec::new();
        if pack.unlisted_ids > 0 {
            parts.push(format!("{} more address(es)", pack.unlisted_ids));
        }
        if pack.unlisted_jails > 0 {
            parts.push(format!("{} more jail(s)", pack.unlisted_jails));
        }
        let note = format!(
            "\nNot listed here: {} (Discord allows {MAX_EMBEDS} embeds and {MAX_TOTAL} characters per message)",
            parts.join(" and ")
        );
        // The note is what must not be lost: the title gives way to it.
        content = format!("{}{note}", cut(&content, MAX_CONTENT - units(&note)));
    }
    let embeds = pack.done.into_iter().map(|(d, c)| json!({ "description": d, "color": c })).collect();
    envelope(&content, embeds, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped_once_and_mentions_broken() {
        assert_eq!(escape_markdown("plain 203.0.113.7"), "plain 203.0.113.7");
        assert_eq!(escape_markdown("2001:db8::1"), "2001:db8::1");
        assert_eq!(escape_markdown("*b* _i_ ~~s~~ ||x|| `c`"), r"\*b\* \_i\_ \~\~s\~\~ \|\|x\|\| \`c\`");
        assert_eq!(escape_markdown(r"a\b"), r"a\\b");
        assert_eq!(escape_markdown("[a](http://x)"), r"\[a\]\(http://x\)");
        assert_eq!(escape_markdown("# h\n- b\n> q\n1. n\n  -# s\n12."), "\\# h\n\\- b\n\\> q\n1\\. n\n  \\-# s\n12\\.");
        assert_eq!(escape_markdown("203.0.113.7 1.5"), "203.0.113.7 1.5");
        // Not at a line's start: no list, heading or quote, left alone.
        assert_eq!(escape_markdown("nginx-http-auth a#b 3.5 x>y"), "nginx-http-auth a#b 3.5 x>y");
        assert_eq!(
            escape_markdown("@everyone @HERE @hereby a@b"),
            "@\u{200B}everyone @\u{200B}HERE @\u{200B}hereby a@b"
        );
        assert_eq!(escape_markdown("<@123> <#1> <t:1:R>"), "\\<\u{200B}@123> \\<\u{200B}#1> \\<\u{200B}t:1:R>");
        assert_eq!(escape_markdown("a\u{202E}b"), "a\u{FFFD}b");
    }

    #[test]
    fn code_cannot_be_closed() {
        assert_eq!(code("a`b```c"), "a\u{2CB}b\u{2CB}\u{2CB}\u{2CB}c");
        assert_eq!(code(r"\*_ plain"), r"\*_ plain");
        assert_eq!(code("@everyone <@1>"), "@\u{200B}everyone <\u{200B}@1>");
    }

    #[test]
    fn cuts_count_utf16_units_and_show_it() {
        assert_eq!(cut("short", 10), "short");
        let emoji = "😀".repeat(100);
        let c = cut(&emoji, 50);
        assert!(units(&c) <= 50 && c.ends_with(" … (cut)"), "{c}");
        // Never a lone escaping backslash before the marker.
        // Room for 11 characters before the marker: the 11th is an escaping backslash.
        let c = cut(r"aaaaaaaaaa\*bbbbbbbbbbbb", 19);
        assert_eq!(c, "aaaaaaaaaa … (cut)");
        // An escaped backslash (two) stays.
        let c = cut(r"aaaaaaaaa\\*bbbbbbbbbbbb", 19);
        assert_eq!(c, r"aaaaaaaaa\\ … (cut)");
    }
}
