//! The message texts, in Telegram's HTML: one event, a digest, an alert. Every value is
//! escaped exactly once; values that Telegram could turn into a mention or a link (and every
//! banned id, user name and log line, which come from attackers) are in `<code>` or `<pre>`,
//! where Telegram makes nothing of them. Every text stays within Telegram's 4096-character
//! limit as Telegram counts it (the visible text in UTF-16 code units), cut with a visible
//! marker; each part has its own share, so one long value never pushes out the others.
//!
//! Only `<b>`, `<code>` and `<pre>` are used, never nested in each other (bold may not hold
//! code), and line breaks are plain `\n` (there is no `<br>`).

use f2b_notify_core::ContextValue;
use f2b_notify_core::{flatten, human_duration, Alert, Digest, Event, EventKind, Renderer, TemplateError};

use crate::html::{code, cut, escape, len, value, visible};

/// Telegram's limit: 4096 characters of visible text after entities parsing, counted here in
/// UTF-16 code units (the stricter reading; never more code points either).
pub const MAX_TEXT: usize = 4096;
/// The template's text (the first line) at most.
pub const MAX_LEAD: usize = 1500;
/// A jail or host name at most.
pub const MAX_NAME: usize = 100;
/// A banned id or user name at most.
pub const MAX_VALUE: usize = 200;
/// Matched log lines shown at most (the last ones).
pub const MAX_MATCH_LINES: usize = 8;
/// One matched line at most.
pub const MAX_MATCH_LINE: usize = 300;
/// A digest's line of where the bans come from at most.
pub const MAX_ORIGINS: usize = 600;
/// What the template sees of `matches` at most (the message shows the last lines anyway).
const MAX_TEMPLATE_MATCHES: usize = 3000;

/// An HTML message being built, with its visible length kept as it grows.
#[derive(Default)]
struct Text {
    html: String,
    visible: usize,
}

impl Text {
    /// Appends `html` whose visible text is `shown`.
    fn push(&mut self, html: &str, shown: usize) {
        self.html.push_str(html);
        self.visible += shown;
    }

    /// Appends text of our own, escaped.
    fn text(&mut self, s: &str) {
        self.push(&escape(s), len(s));
    }

    /// Appends `s` in bold.
    fn bold(&mut self, s: &str) {
        self.push(&format!("<b>{}</b>", escape(s)), len(s));
    }

    /// Appends a value (see [`value`]).
    fn value(&mut self, s: &str) {
        self.push(&value(s), len(s));
    }

    /// Appends a value in `<code>`.
    fn code(&mut self, s: &str) {
        self.push(&code(s), len(s));
    }

    /// Appends `s` as a `<pre>` block.
    fn pre(&mut self, s: &str) {
        self.push(&format!("<pre>{}</pre>", escape(s)), len(s));
    }

    /// `Label: value` on a line of its own, the label in bold.
    fn field(&mut self, label: &str, add: impl FnOnce(&mut Self)) {
        self.text("\n");
        self.bold(&format!("{label}:"));
        self.text(" ");
        add(self);
    }

    /// The finished HTML. By construction it is within [`MAX_TEXT`]; should a change ever
    /// break that, the text is cut as plain text rather than sent to be refused.
    fn finish(self) -> String {
        if self.visible <= MAX_TEXT && len(&visible(&self.html)) <= MAX_TEXT {
            return self.html;
        }
        escape(&cut(&visible(&self.html), MAX_TEXT)).into_owned()
    }
}

/// A one-line value cut to `max`.
fn line(s: &str, max: usize) -> String {
    cut(&flatten(s), max).into_owned()
}

/// The message for one event: the template's text, the fields (jail, address, failures,
/// ban time, host, user, then what enrichment found), and for a ban the last matched log
/// lines in a `<pre>` block.
pub fn event(event: &Event, renderer: &Renderer) -> Result<String, TemplateError> {
    // The template sees every value already cut to its share, so that its text keeps its
    // shape ("… (not an IP address)") whatever an attacker put in the id.
    let mut capped = event.capped(MAX_TEMPLATE_MATCHES, MAX_VALUE).into_owned();
    capped.id = capped.id.as_deref().map(|id| cut(id, MAX_VALUE).into_owned());
    capped.jail = cut(&capped.jail, MAX_NAME).into_owned();
    capped.host = cut(&capped.host, MAX_NAME).into_owned();
    let lead = renderer.render(&capped, value)?;
    let mut text = Text::default();
    // The template's own markup is the operator's; if its text is too long it is cut as
    // plain text, since HTML cannot be cut anywhere.
    let shown = visible(&lead);
    if len(&shown) <= MAX_LEAD {
        text.push(&lead, len(&shown));
    } else {
        text.text(&cut(&shown, MAX_LEAD));
    }
    text.text("\n");
    text.field("Jail", |t| t.value(&line(&event.jail, MAX_NAME)));
    if let Some(id) = &event.id {
        let label = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        text.field(label, |t| t.code(&line(id, MAX_VALUE)));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        text.field("Failures", |t| t.text(&f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            text.field("Ban time", |t| t.text(&human_duration(b)));
        }
    }
    if !event.host.is_empty() {
        text.field("Host", |t| t.value(&line(&event.host, MAX_NAME)));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.is_empty()) {
        text.field("User", |t| t.code(&line(u, MAX_VALUE)));
    }
    if event.restored {
        text.field("Restored", |t| t.text("yes, at Fail2Ban's restart"));
    }
    context_fields(&mut text, event);
    if event.kind == EventKind::Ban {
        if let Some(m) = event.matches.as_deref().filter(|m| !m.trim().is_empty()) {
            matches_block(&mut text, m);
        }
    }
    Ok(text.finish())
}

/// What enrichment found about the address and the ban's repeat ([`Event::context_fields`]),
/// a field each. The PTR name is whatever the owner of the address's reverse zone wrote: in
/// `<code>` like the address ("(unconfirmed)" after it); the databases' names are values,
/// in `<code>` too unless they are inert words (`Tokyo, Japan (JP)` is not: its comma).
fn context_fields(text: &mut Text, event: &Event) {
    for (label, value) in event.context_parts() {
        match &value {
            ContextValue::Name { name, .. } => text.field(label, |t| {
                t.code(&line(name, MAX_VALUE));
                if !value.note().is_empty() {
                    t.text(value.note());
                }
            }),
            ContextValue::Text(shown) => text.field(label, |t| t.value(&line(shown, MAX_VALUE))),
        }
    }
}

/// The last matched lines, as many as the room left allows (earlier ones counted, not
/// shown), in a `<pre>` block.
fn matches_block(text: &mut Text, matches: &str) {
    let head = "Matched log lines:";
    let room = MAX_TEXT.saturating_sub(text.visible + 2 + len(head) + 1);
    let lines: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut shown: Vec<String> =
        lines.iter().rev().take(MAX_MATCH_LINES).rev().map(|l| line(l, MAX_MATCH_LINE)).collect();
    let body = |shown: &[String]| {
        let hidden = lines.len() - shown.len();
        let mut b = String::new();
        if hidden > 0 {
            b = format!("… {hidden} earlier line(s) not shown\n");
        }
        b + &shown.join("\n")
    };
    // Drop the earliest shown lines until the block fits; the last line is cut if even it
    // alone does not.
    while shown.len() > 1 && len(&body(&shown)) > room {
        shown.remove(0);
    }
    let block = body(&shown);
    let block = cut(&block, room);
    if block.trim().is_empty() {
        return;
    }
    text.text("\n\n");
    text.bold(head);
    text.text("\n");
    text.pre(&block);
}

/// Room kept for the line that counts the jails that did not fit.
const NOTE_ROOM: usize = 120;
/// Room kept after each list for its "… and N more" and line break.
const MORE_ROOM: usize = 64;
/// A line of addresses in the digest's block, at most.
const LIST_LINE: usize = 64;

/// One jail's part of a digest: its lines without addresses, and its lists.
struct JailPart {
    /// "sshd: jail started, stopped", if it did.
    events: Option<String>,
    /// ("sshd: banned 3:", the ids) for each list that is not empty.
    lists: Vec<(String, Vec<String>)>,
}

impl JailPart {
    /// The room its lines take before any address, with each list's reserve.
    fn need(&self) -> usize {
        let events = self.events.as_deref().map_or(0, |e| len(e) + 1);
        events + self.lists.iter().map(|(head, _)| len(head) + 1 + MORE_ROOM).sum::<usize>()
    }
}

/// One message for a digest: the title (and on a line of its own where the bans come from,
/// when enrichment found it), then one `<pre>` block with, per jail, what happened and the
/// addresses. Every jail that fits is named with its counts (a storm in one jail does
/// not push the others out); the room left for addresses is shared among the lists, each
/// naming as many as its share holds and then the exact number left out (`… and 120 more`).
/// Jails that find no room at all are counted in a last line.
pub fn digest(digest: &Digest) -> String {
    let mut text = Text::default();
    text.text("Fail2Ban on ");
    text.value(&line(&digest.host(), MAX_NAME));
    text.text(": ");
    text.text(&digest.summary());
    // Where the bans come from: networks and countries from third-party databases, a value.
    if let Some(origins) = digest.origins() {
        text.field("Banned", |t| t.value(&line(&origins.line(), MAX_ORIGINS)));
    }
    // What the block may hold, leaving room for the line break before it and the last note.
    let mut room = MAX_TEXT.saturating_sub(text.visible + 1 + NOTE_ROOM);
    let (mut left_out_jails, mut left_out_ids) = (0usize, 0usize);
    let mut parts = Vec::new();
    for jail in digest.jails() {
        let name = line(&jail.jail, MAX_NAME);
        let events = jail.jail_events();
        let mut lists = Vec::new();
        for (lead, ids) in
            [(jail.banned_lead(), &jail.banned), (format!("unbanned {}", jail.unbanned.len()), &jail.unbanned)]
        {
            if !ids.is_empty() {
                lists.push((format!("{name}: {lead}:"), ids.iter().map(|id| line(id, MAX_VALUE)).collect()));
            }
        }
        let part = JailPart { events: (!events.is_empty()).then(|| format!("{name}: jail {events}")), lists };
        if part.need() <= room {
            room -= part.need();
            parts.push(part);
        } else {
            left_out_jails += 1;
            left_out_ids += jail.banned.len() + jail.unbanned.len();
        }
    }
    // `room` is now what the addresses may take, shared fairly: each list gets an equal share
    // of what is left, and what one list does not use goes to those after it.
    let mut lists_left: usize = parts.iter().map(|p| p.lists.len()).sum();
    let mut block = String::new();
    for part in parts {
        if let Some(events) = &part.events {
            block.push_str(events);
            block.push('\n');
        }
        for (head, ids) in &part.lists {
            block.push_str(head);
            block.push('\n');
            let share = room / lists_left.max(1);
            let (mut used, mut current, mut listed) = (0usize, 0usize, 0usize);
            for id in ids {
                let sep = if listed == 0 {
                    ""
                } else if current + 2 + len(id) > LIST_LINE {
                    ",\n"
                } else {
                    ", "
                };
                let cost = len(sep) + len(id);
                if used + cost > share {
                    break;
                }
                block.push_str(sep);
                block.push_str(id);
                used += cost;
                current = if sep == ",\n" { len(id) } else { current + cost };
                listed += 1;
            }
            room -= used;
            lists_left -= 1;
            if listed < ids.len() {
                let space = if listed > 0 { " " } else { "" };
                block.push_str(&format!("{space}… and {} more (Telegram's 4096-character limit)", ids.len() - listed));
            }
            block.push('\n');
        }
    }
    if !block.is_empty() {
        text.text("\n");
        text.pre(block.trim_end());
    }
    if left_out_jails > 0 {
        text.text(&format!(
            "\n… and {left_out_jails} more jail(s) with {left_out_ids} address(es) not listed (Telegram's 4096-character limit)"
        ));
    }
    text.finish()
}

/// An alert about f2b-notify itself: the subject in bold, then its lines. The text quotes
/// remote error messages: each line is flattened and escaped like any value.
pub fn alert(alert: &Alert) -> String {
    let mut text = Text::default();
    text.bold(&line(&alert.subject, MAX_LEAD));
    text.text("\n\n");
    let room = MAX_TEXT.saturating_sub(text.visible);
    let lines: Vec<String> = alert.text.lines().map(flatten).collect();
    text.text(&cut(&lines.join("\n"), room));
    text.finish()
}
