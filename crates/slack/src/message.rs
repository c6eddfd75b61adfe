//! The Slack message for one event: `text` (the notification fallback, the sink's rendered
//! template) plus one attachment with a colour per event kind, holding Block Kit sections with
//! the fields a reader scans for, and what enrichment found about the address (its host name,
//! location and network, and the ban's repeat) in a section of fields of its own.
//!
//! Everything interpolated into mrkdwn is escaped exactly once (`&`, `<`, `>`), so a user name
//! of `<!channel>` shows as text. Every text is cut to Slack's limits with a visible marker,
//! whatever the input. JSON is built with serde, never by pasting strings.

use std::borrow::Cow;

use f2b_notify_core::ContextValue;
use f2b_notify_core::{
    chunk_list, escape_slack, flatten, human_duration, truncate_chars, Digest, Event, EventKind, Renderer,
    TemplateError,
};
use serde_json::{json, Value};

/// Slack cuts `text` at 40,000 characters; a notification needs far less.
pub const MAX_TEXT: usize = 3_000;
/// A section's text must stay under 3,001 characters.
pub const MAX_SECTION: usize = 3_000;
/// A section field's text must stay under 2,001 characters.
pub const MAX_FIELD: usize = 2_000;
/// Matched log lines shown at most.
pub const MAX_MATCH_LINES: usize = 8;
/// Characters of one matched line shown at most.
pub const MAX_MATCH_LINE: usize = 300;
/// Characters of a user name shown at most.
pub const MAX_USER: usize = 200;
/// Fields in one section at most (Slack refuses more).
pub const MAX_FIELDS: usize = 10;

/// Red for a ban, green for an unban, grey for jail start/stop.
pub fn color(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Ban => "#d50200",
        EventKind::Unban => "#2eb886",
        EventKind::Start | EventKind::Stop => "#9e9e9e",
    }
}

/// Presentation settings both Slack sinks accept.
#[derive(Debug, Clone, Default)]
pub struct MessageOptions {
    /// Post to this channel instead of the default (webhook: where the webhook allows it).
    pub channel: Option<String>,
    /// Display name of the poster.
    pub username: Option<String>,
    /// Emoji for the poster, like `:no_entry:`.
    pub icon_emoji: Option<String>,
}

/// Slack accepts at most 50 blocks per message (and attachment); keep one for the "more" note.
pub const MAX_BLOCKS: usize = 49;

/// The top-level `text`, the attachment and the poster options, shared by both layouts.
fn envelope(text: &str, kind: EventKind, blocks: Vec<Value>, options: &MessageOptions) -> Value {
    envelope_in(text, color(kind), blocks, options)
}

fn envelope_in(text: &str, color: &str, blocks: Vec<Value>, options: &MessageOptions) -> Value {
    let mut body = json!({
        "text": text,
        "attachments": [{
            "color": color,
            "fallback": text,
            "blocks": blocks,
        }],
    });
    let obj = body.as_object_mut().expect("a JSON object");
    for (key, value) in
        [("channel", &options.channel), ("username", &options.username), ("icon_emoji", &options.icon_emoji)]
    {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            obj.insert(key.to_owned(), Value::from(v));
        }
    }
    body
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate_chars(text, MAX_SECTION) } })
}

/// The JSON body for a digest: the title (under it, where the banned addresses come from,
/// when enrichment found it), then per jail what happened and every address, in as many
/// sections as the list needs. Past Slack's block limit the rest is counted, not dropped
/// silently.
pub fn build_digest(digest: &Digest, options: &MessageOptions) -> Value {
    let title = escape_slack(&digest.title()).into_owned();
    // The origins line names networks and countries from third-party databases: escaped like
    // any value, and in the title's own section so that it costs no block.
    let head = match digest.origins() {
        Some(origins) => format!("*{title}*\n*Banned:* {}", escape_slack(&flatten(&origins.line()))),
        None => format!("*{title}*"),
    };
    let mut blocks = vec![section(&head)];
    let mut unlisted = 0usize;
    for jail in digest.jails() {
        let mut head = format!("*{}*", escape_slack(&jail.jail));
        let events = jail.jail_events();
        if !events.is_empty() {
            head.push_str(&format!(": jail {events}"));
        }
        let banned_lead = jail.banned_lead();
        let unbanned_lead = format!("unbanned {}", jail.unbanned.len());
        let lists = [(&banned_lead, &jail.banned), (&unbanned_lead, &jail.unbanned)];
        if lists.iter().all(|(_, ids)| ids.is_empty()) {
            if blocks.len() < MAX_BLOCKS {
                blocks.push(section(&head));
            }
            continue;
        }
        for (what, ids) in lists {
            if ids.is_empty() {
                continue;
            }
            let spans: Vec<String> = ids.iter().map(|id| code_span(id, 200)).collect();
            let lead = format!("{head} {what}:\n");
            for (i, chunk) in chunk_list(&spans, MAX_SECTION - lead.chars().count() - 10).into_iter().enumerate() {
                if blocks.len() >= MAX_BLOCKS {
                    unlisted += chunk.matches(", ").count() + 1;
                    continue;
                }
                blocks.push(section(&if i == 0 { format!("{lead}{chunk}") } else { chunk }));
            }
        }
    }
    if unlisted > 0 {
        blocks.push(section(&format!("… and {unlisted} more not listed here (Slack's block limit)")));
    }
    envelope(&truncate_chars(&title, MAX_TEXT), digest.dominant_kind(), blocks, options)
}

/// The JSON body for an alert about f2b-notify itself: red, or green once recovered. Its
/// text quotes remote error messages: flattened per line and escaped like any value.
pub fn build_alert(alert: &f2b_notify_core::Alert, options: &MessageOptions) -> Value {
    let subject = escape_slack(&flatten(&alert.subject)).into_owned();
    let lines: Vec<String> = alert.text.lines().map(|l| escape_slack(&flatten(l)).into_owned()).collect();
    let blocks = vec![section(&format!("*{subject}*")), section(&lines.join("\n"))];
    let color = if alert.recovered { color(EventKind::Unban) } else { color(EventKind::Ban) };
    envelope_in(&truncate_chars(&subject, MAX_TEXT), color, blocks, options)
}

/// The JSON body for `event`.
pub fn build(event: &Event, renderer: &Renderer, options: &MessageOptions) -> Result<Value, TemplateError> {
    let text = renderer.render(event, escape_slack)?;
    let text = truncate_chars(&text, MAX_TEXT).into_owned();
    let mut blocks = vec![section(&text)];
    let fields = fields(event);
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    // A section of its own: with the event's seven fields they would pass Slack's ten.
    let context = context_fields(event);
    if !context.is_empty() {
        blocks.push(json!({ "type": "section", "fields": context }));
    }
    if let Some(m) = event.matches.as_deref().filter(|m| !m.trim().is_empty()) {
        blocks.push(section(&matches_block(m)));
    }
    Ok(envelope(&text, event.kind, blocks, options))
}

/// A section field: the label in bold over the value (already mrkdwn).
fn labelled(label: &str, value: &str) -> Value {
    let text = format!("*{label}*\n{value}");
    json!({ "type": "mrkdwn", "text": truncate_chars(&text, MAX_FIELD) })
}

/// What enrichment found about the address and the ban's repeat ([`Event::context_fields`]),
/// as fields: empty when nothing is known. The PTR name is whatever the owner of the
/// address's reverse zone wrote, and mrkdwn has no escape for `*`, `_` or `~`: it goes in a
/// code span like the address, where Slack formats and links nothing ("(unconfirmed)"
/// outside it). The databases' names are escaped like the other values.
fn context_fields(event: &Event) -> Vec<Value> {
    let mut out: Vec<Value> = event
        .context_parts()
        .into_iter()
        .map(|(label, value)| match &value {
            ContextValue::Name { name, .. } => {
                labelled(label, &format!("{}{}", code_span(name, MAX_USER), value.note()))
            }
            ContextValue::Text(text) => labelled(label, &escape_slack(&flatten(text))),
        })
        .collect();
    out.truncate(MAX_FIELDS);
    out
}

/// Labelled fields: jail, address (in a code span), failures, ban time, host, user.
fn fields(event: &Event) -> Vec<Value> {
    let mut out = Vec::new();
    let mut field = |label: &str, value: Cow<'_, str>| out.push(labelled(label, &value));
    // Flattened like every value: a CR/LF in a jail or host name must not fake a line.
    field("Jail", Cow::Owned(escape_slack(&flatten(&event.jail)).into_owned()));
    if let Some(id) = &event.id {
        let label = if event.ip.is_some() { "Address" } else { "Banned id (not an IP address)" };
        field(label, Cow::Owned(code_span(id, MAX_FIELD - 40)));
    }
    if let Some(f) = event.failures.filter(|&f| f > 0) {
        field("Failures", Cow::Owned(f.to_string()));
    }
    if event.kind == EventKind::Ban {
        if let Some(b) = event.bantime {
            field("Ban time", Cow::Owned(human_duration(b)));
        }
    }
    if !event.host.is_empty() {
        field("Host", Cow::Owned(escape_slack(&flatten(&event.host)).into_owned()));
    }
    if let Some(u) = event.user.as_deref().filter(|u| !u.is_empty()) {
        field("User", Cow::Owned(code_span(u, MAX_USER)));
    }
    if event.restored {
        field("Restored", Cow::Borrowed("yes, at Fail2Ban's restart"));
    }
    out
}

/// A value shown verbatim in a code span: escaped, cut, and with backticks swapped for a
/// look-alike so the value cannot close the span and format the rest of the message.
fn code_span(value: &str, max: usize) -> String {
    let flat = flatten(value);
    let cut = truncate_chars(&flat, max);
    format!("`{}`", escape_slack(&cut.replace('`', "\u{2CB}")))
}

/// The matched log lines in a code block, cut to a few lines of sane length.
fn matches_block(matches: &str) -> String {
    let lines: Vec<&str> = matches.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown: Vec<String> = lines
        .iter()
        .rev()
        .take(MAX_MATCH_LINES)
        .rev()
        .map(|l| truncate_chars(&flatten(l), MAX_MATCH_LINE).replace('`', "\u{2CB}"))
        .collect();
    let mut body = shown.join("\n");
    if lines.len() > shown.len() {
        body = format!("… {} earlier line(s) not shown\n{body}", lines.len() - shown.len());
    }
    let head = "*Matched log lines*\n```";
    let tail = "```";
    let room = MAX_SECTION - head.chars().count() - tail.chars().count();
    let escaped = escape_slack(&body).into_owned();
    format!("{head}{}{tail}", truncate_chars(&escaped, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban() -> Event {
        let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
        e.failures = Some(5);
        e.bantime = Some(600);
        e
    }

    fn all_mrkdwn(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| all_mrkdwn(x, out)),
            Value::Object(o) => o.values().for_each(|x| all_mrkdwn(x, out)),
            _ => {}
        }
    }

    #[test]
    fn layout_of_a_ban() {
        let body = build(&ban(), &Renderer::default(), &MessageOptions::default()).unwrap();
        assert_eq!(body["text"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
        let att = &body["attachments"][0];
        assert_eq!(att["color"], "#d50200");
        let fields: Vec<&str> =
            att["blocks"][1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert_eq!(
            fields,
            ["*Jail*\nsshd", "*Address*\n`203.0.113.7`", "*Failures*\n5", "*Ban time*\n10 min", "*Host*\nhost.example"]
        );
        assert!(body.get("channel").is_none());
    }

    #[test]
    fn hostile_values_cannot_ping_or_link() {
        let mut e = ban();
        let evil = "<!channel> <!here> <@U123> <http://x|bank> & `code`";
        e.user = Some(evil.into());
        e.matches = Some(format!("{evil}\n```\n{evil}"));
        e.jail = "<!here>".into();
        let body = build(&e, &Renderer::default(), &MessageOptions::default()).unwrap();
        let mut texts = Vec::new();
        all_mrkdwn(&body, &mut texts);
        for t in &texts {
            assert!(!t.contains('<') && !t.contains('>'), "unescaped: {t}");
            assert!(!t.contains("&amp;lt;"), "escaped twice: {t}");
        }
        let joined = texts.join("\n");
        assert!(joined.contains("&lt;!channel&gt;"));
        assert!(joined.contains("&lt;http://x|bank&gt;"));
        // The block of matched lines opens and closes exactly once.
        let block = body["attachments"][0]["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(block.matches("```").count(), 2, "{block}");
    }

    #[test]
    fn limits_hold_whatever_the_input() {
        let mut e = ban();
        e.matches = Some("A".repeat(1_000_000));
        e.user = Some("u".repeat(100_000));
        e.id = Some("i".repeat(50_000));
        let r = Renderer::new(&f2b_notify_core::Templates { ban: Some("{{ matches }}".into()), ..Default::default() })
            .unwrap();
        let body = build(&e, &r, &MessageOptions::default()).unwrap();
        assert!(body["text"].as_str().unwrap().chars().count() <= MAX_TEXT);
        assert!(body["text"].as_str().unwrap().contains("[cut "));
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION, "{}", t.len());
            }
            for f in b["fields"].as_array().into_iter().flatten() {
                assert!(f["text"].as_str().unwrap().chars().count() <= MAX_FIELD);
            }
        }
        // 10,000 short lines: a few shown, the rest counted.
        let mut e = ban();
        e.matches = Some((0..10_000).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n"));
        let body = build(&e, &Renderer::default(), &MessageOptions::default()).unwrap();
        let block = body["attachments"][0]["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(block.contains("9992 earlier line(s) not shown"), "{block}");
        assert!(block.contains("line 9999"));
        assert!(!block.contains("line 9991\n"));
    }

    #[test]
    fn digest_names_every_address_within_limits() {
        let mut events: Vec<Event> = (0..1000)
            .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("203.0.{}.{}", i / 256, i % 256), "h"))
            .collect();
        events.push(Event::target_event(EventKind::Unban, "<!here>", "198.51.100.1", "h"));
        events.push(Event::jail_event(EventKind::Stop, "web", "h"));
        let body = build_digest(&Digest::new(events), &MessageOptions::default());
        assert_eq!(body["text"], "Fail2Ban on h: 1000 bans, 1 unban, 1 jail stop in 3 jails");
        assert_eq!(body["attachments"][0]["color"], "#d50200");
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        let mut all = String::new();
        for b in blocks {
            let t = b["text"]["text"].as_str().unwrap();
            assert!(t.chars().count() <= MAX_SECTION);
            assert!(!t.contains('<'), "{t}");
            all.push_str(t);
            all.push('\n');
        }
        for i in 0..1000 {
            assert!(all.contains(&format!("`203.0.{}.{}`", i / 256, i % 256)), "address {i} missing");
        }
        assert!(all.contains("*sshd* banned 1000:"));
        assert!(all.contains("*&lt;!here&gt;* unbanned 1:\n`198.51.100.1`"), "{all}");
        assert!(all.contains("*web*: jail stopped"));
        // Past the block limit, the rest is counted.
        let many: Vec<Event> =
            (0..20_000).map(|i| Event::target_event(EventKind::Ban, "sshd", format!("2001:db8::{i:x}"), "h")).collect();
        let body = build_digest(&Digest::new(many), &MessageOptions::default());
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 50);
        assert!(blocks[49]["text"]["text"].as_str().unwrap().contains("more not listed"));
    }

    /// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
    fn enriched(mut e: Event) -> Event {
        e.bancount = Some(4);
        e.context = f2b_notify_core::Context::example();
        e
    }

    fn field_texts(block: &Value) -> Vec<&str> {
        block["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_ban_shows_what_enrichment_found_in_fields_of_its_own() {
        let body = build(&enriched(ban()), &Renderer::default(), &MessageOptions::default()).unwrap();
        assert_eq!(body["text"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time");
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3, "{blocks:?}");
        // The event's own fields are as they were.
        assert_eq!(field_texts(&blocks[1]).len(), 5);
        assert_eq!(
            field_texts(&blocks[2]),
            [
                "*Host name*\n`h.example` (unconfirmed)",
                "*Location*\nTokyo, Japan (JP)",
                "*Network*\nAS64500 Example Net",
                "*Repeat*\n4th ban"
            ]
        );
        // Every field at once stays within Slack's ten per section.
        let mut all = enriched(ban());
        all.user = Some("root".into());
        all.restored = true;
        let body = build(&all, &Renderer::default(), &MessageOptions::default()).unwrap();
        let blocks = body["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(field_texts(&blocks[1]).len(), 7);
        assert_eq!(field_texts(&blocks[2]).len(), 4);
        // A confirmed name is just the name.
        let mut confirmed = enriched(ban());
        confirmed.context.hostname_confirmed = Some(true);
        let body = build(&confirmed, &Renderer::default(), &MessageOptions::default()).unwrap();
        assert_eq!(field_texts(&body["attachments"][0]["blocks"][2])[0], "*Host name*\n`h.example`");
    }

    #[test]
    fn a_hostile_context_can_neither_ping_nor_link() {
        let mut e = enriched(ban());
        e.context.hostname = Some("<!channel>.example *bold* `x` @everyone".into());
        e.context.country = Some("*bold*[link](http://evil) <b>x</b>".into());
        e.context.city = Some("<http://evil|Tokyo>".into());
        e.context.as_org = Some("<!here> & <@U123>".into());
        let body = build(&e, &Renderer::default(), &MessageOptions::default()).unwrap();
        let mut texts = Vec::new();
        all_mrkdwn(&body, &mut texts);
        for t in &texts {
            assert!(!t.contains('<') && !t.contains('>'), "unescaped: {t}");
            assert!(!t.contains("&amp;lt;"), "escaped twice: {t}");
        }
        let fields = field_texts(&body["attachments"][0]["blocks"][2]);
        // The PTR name whole in one code span that its backticks cannot close.
        assert_eq!(fields[0], "*Host name*\n`&lt;!channel&gt;.example *bold* \u{2CB}x\u{2CB} @everyone` (unconfirmed)");
        assert_eq!(
            fields[1],
            "*Location*\n&lt;http://evil|Tokyo&gt;, *bold*[link](http://evil) &lt;b&gt;x&lt;/b&gt; (JP)"
        );
        assert_eq!(fields[2], "*Network*\nAS64500 &lt;!here&gt; &amp; &lt;@U123&gt;");
        // Each value is one line: nothing in it adds a line to a field.
        assert!(fields.iter().all(|f| f.lines().count() == 2), "{fields:?}");
    }

    #[test]
    fn a_digest_says_where_the_bans_come_from() {
        let mut events: Vec<Event> = (0..3)
            .map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h")))
            .collect();
        events[2].context.asn = Some(64501);
        events[2].context.as_org = Some("<!channel> & co".into());
        events[2].context.country = Some("*Evil*".into());
        events[2].context.country_code = Some("EV".into());
        let body = build_digest(&Digest::new(events), &MessageOptions::default());
        let head = body["attachments"][0]["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            head,
            "*Fail2Ban on h: 3 bans in 1 jail*\n*Banned:* 3 addresses, 2 of them from AS64500 Example Net, \
             1 from AS64501 &lt;!channel&gt; &amp; co; countries: Japan 2, *Evil* 1"
        );
        // The notification text stays the title, and a digest without context has no line.
        assert_eq!(body["text"], "Fail2Ban on h: 3 bans in 1 jail");
        let bare = build_digest(&Digest::new(vec![ban()]), &MessageOptions::default());
        assert_eq!(bare["attachments"][0]["blocks"][0]["text"]["text"], "*Fail2Ban on host.example: 1 ban in 1 jail*");
    }

    /// Every line of every text in a body, to look for a faked one.
    fn lines_of(body: &Value) -> Vec<String> {
        let mut texts = Vec::new();
        all_mrkdwn(body, &mut texts);
        texts.iter().flat_map(|t| t.split(['\n', '\r']).map(str::to_owned).collect::<Vec<_>>()).collect()
    }

    #[test]
    fn a_cr_lf_in_an_id_jail_or_host_fakes_no_line() {
        let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
        let mut e = Event::target_event(EventKind::Ban, "sshd\nFAKE jail", evil, "h\r\nFAKE host");
        e.user = Some("root\r\nFAKE user".into());
        let body = build(&e, &Renderer::default(), &MessageOptions::default()).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(!text.contains(['\r', '\n']), "{text:?}");
        assert!(text.contains("198.51.100.1  FAKE LINE: banned 10.0.0.1"), "{text}");
        let lines = lines_of(&body);
        assert!(!lines.iter().any(|l| l.starts_with("FAKE")), "{lines:?}");
        let digest = Digest::new(vec![
            e.clone(),
            Event::target_event(EventKind::Unban, "sshd", evil, "h"),
            Event::jail_event(EventKind::Stop, "web\nFAKE stop", "h"),
        ]);
        let body = build_digest(&digest, &MessageOptions::default());
        assert!(!body["text"].as_str().unwrap().contains(['\r', '\n']), "{body}");
        let lines = lines_of(&body);
        assert!(!lines.iter().any(|l| l.starts_with("FAKE")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("`198.51.100.1  FAKE LINE: banned 10.0.0.1`")), "{lines:?}");
    }

    #[test]
    fn empty_fields_are_left_out_and_options_applied() {
        let e = Event::jail_event(EventKind::Stop, "sshd", "");
        let opts = MessageOptions {
            channel: Some("#sec".into()),
            username: Some("fail2ban".into()),
            icon_emoji: Some(":lock:".into()),
        };
        let body = build(&e, &Renderer::default(), &opts).unwrap();
        assert_eq!(body["attachments"][0]["color"], "#9e9e9e");
        assert_eq!(body["channel"], "#sec");
        assert_eq!(body["username"], "fail2ban");
        assert_eq!(body["icon_emoji"], ":lock:");
        let fields = body["attachments"][0]["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 1, "{fields:?}");
        let unban = Event::target_event(EventKind::Unban, "sshd", "x", "h");
        let body = build(&unban, &Renderer::default(), &MessageOptions::default()).unwrap();
        assert_eq!(body["attachments"][0]["color"], "#2eb886");
    }
}
