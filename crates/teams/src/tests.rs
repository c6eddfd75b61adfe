//! The Teams sink against the Workflows stand-in (`f2b_notify_standins::teams`), a real HTTP
//! server on loopback that follows the trigger's documented contract.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::teams::{Service, WORKFLOW_ID};
use f2b_notify_standins::{Reply, StandIn};
use serde_json::{json, Value};

use super::card::{escape, MAX_PAYLOAD};
use super::{Config, TeamsSink};

/// The URL's signature: it must never show up in any error, warning, preview or Debug.
const SIG: &str = "SIGsecretXYZ0123456789abcdef";

/// Every part of the secret URL a leak would show.
fn assert_no_secret(text: &str) {
    for part in [SIG, WORKFLOW_ID, "powerautomate", "127.0.0.1", "sig="] {
        assert!(!text.contains(part), "{part} leaked: {text}");
    }
}

fn assert_error_has_no_secret(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

fn sink_for(url: String, timeout: Option<f64>) -> TeamsSink {
    super::new("ops", Config { url: Some(Secret::new(url)), timeout, ..Config::default() }).unwrap()
}

/// A flow that is on, its stand-in server, and a sink posting to it.
fn setup() -> (Arc<Service>, StandIn, TeamsSink) {
    let service = Service::new(SIG);
    let server = service.start();
    let sink = sink_for(service.url(&server), None);
    (service, server, sink)
}

/// Waits a quarter second and a bit: the stand-in, like Teams, throttles above four requests
/// a second, and tests that send more than four keep under that as the router would.
async fn pace() {
    tokio::time::sleep(Duration::from_millis(260)).await;
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.user = Some("root".into());
    e.matches = Some("Failed password for root from 203.0.113.7\nFailed password for root from 203.0.113.7".into());
    e
}

/// The envelope around one card, as the stand-in must receive it.
fn message(body: Value) -> Value {
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

fn title(text: &str, color: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true})
}

/// The card's body (its elements) of an accepted message.
fn body_of(message: &Value) -> &Vec<Value> {
    message["attachments"][0]["content"]["body"].as_array().expect("a card body")
}

/// Every string in a JSON value.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The texts the card's markdown reads that may hold event data: TextBlock texts and fact
/// values (fact titles are the sink's own words, one of a fixed few).
fn markdown_texts(message: &Value) -> Vec<String> {
    const TITLES: [&str; 12] = [
        "Jail",
        "Address",
        "Banned id (not an IP address)",
        "Failures",
        "Ban time",
        "Host",
        "User",
        "Restored",
        "Host name",
        "Location",
        "Network",
        "Repeat",
    ];
    let mut out = Vec::new();
    for element in body_of(message) {
        if let Some(t) = element["text"].as_str() {
            out.push(t.to_owned());
        }
        for f in element["facts"].as_array().into_iter().flatten() {
            assert!(TITLES.contains(&f["title"].as_str().unwrap()), "{f}");
            out.push(f["value"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// Whether every markdown character in `text` is escaped (preceded by a backslash that is
/// not itself escaped), so that the card's markdown shows it as a character: those that
/// count anywhere, and those that count at a line's start.
fn inert(text: &str) -> bool {
    text.split('\n').all(|line| {
        let line = line.trim_start();
        if line.starts_with(['-', '+', '=']) {
            return false;
        }
        let mut escaped = false;
        for c in line.chars() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '*' | '_' | '~' | '`' | '[' | ']' | '(' | ')' | '{' | '}' | '<' | '>' | '#' => return false,
                _ => {}
            }
        }
        true
    })
}

#[tokio::test]
async fn the_exact_card_for_each_event_kind() {
    let (service, server, sink) = setup();
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    let mut manual = Event::target_event(EventKind::Ban, "recidive", "mail.example", "host.example");
    manual.bantime = Some(-1);
    manual.restored = true;
    for e in [&ban(), &unban, &start, &stop, &manual] {
        pace().await;
        sink.send(e).await.unwrap();
    }
    let got = service.accepted();
    assert_eq!(got.len(), 5);
    assert!(service.dropped().is_empty(), "{:?}", service.dropped());
    let facts = |list: &[(&str, &str)]| json!({"type": "FactSet", "facts": list.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()});
    assert_eq!(
        got[0],
        message(json!([
            title("Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)", "Attention"),
            facts(&[
                ("Jail", "sshd"),
                ("Address", "203.0.113.7"),
                ("Failures", "5"),
                ("Ban time", "10 min"),
                ("Host", "host.example"),
                ("User", "root"),
            ]),
            {"type": "TextBlock", "text": "Matched log lines", "weight": "Bolder", "wrap": true},
            {"type": "TextBlock", "fontType": "Monospace", "wrap": true,
             "text": "Failed password for root from 203.0.113.7\n\nFailed password for root from 203.0.113.7"},
        ]))
    );
    assert_eq!(
        got[1],
        message(json!([
            title("Fail2Ban (sshd) unbanned IP 2001:db8::1", "Good"),
            facts(&[("Jail", "sshd"), ("Address", "2001:db8::1"), ("Host", "host.example")]),
        ]))
    );
    for (i, what) in [(2, "started"), (3, "stopped")] {
        assert_eq!(
            got[i],
            message(json!([
                title(&format!("Fail2Ban (sshd) jail {what} on host.example"), "Default"),
                facts(&[("Jail", "sshd"), ("Host", "host.example")]),
            ]))
        );
    }
    assert_eq!(
        got[4],
        message(json!([
            title("Fail2Ban (recidive) banned mail.example (not an IP address) (restored at restart)", "Attention"),
            facts(&[
                ("Jail", "recidive"),
                ("Banned id (not an IP address)", "mail.example"),
                ("Ban time", "permanent"),
                ("Host", "host.example"),
                ("Restored", "yes, at Fail2Ban's restart"),
            ]),
        ]))
    );
    // The request itself: POST to the URL as given (path and query), JSON.
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("{}?{}", Service::path(), Service::query(SIG)));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn templates_set_the_title_and_values_stay_escaped() {
    let service = Service::new(SIG);
    let server = service.start();
    let templates = Templates { ban: Some("**{{ jail }}**: {{ id }} as _{{ user }}_".into()), ..Templates::default() };
    let sink =
        super::new("ops", Config { url: Some(Secret::new(service.url(&server))), templates, ..Config::default() })
            .unwrap();
    let mut e = ban();
    e.user = Some("*root*".into());
    sink.send(&e).await.unwrap();
    let got = service.accepted();
    assert_eq!(body_of(&got[0])[0]["text"], "**sshd**: 203.0.113.7 as _\\*root\\*_");
    let bad = Templates { unban: Some("{% if %}".into()), ..Templates::default() };
    let err =
        super::new("ops", Config { url: Some(Secret::new(service.url(&server))), templates: bad, ..Config::default() })
            .unwrap_err();
    assert!(err.to_string().starts_with("template for `unban`"), "{err}");
}

/// The hostile strings of the brief, and a few of our own.
fn hostile() -> Vec<&'static str> {
    vec![
        "<!channel>",
        "@everyone",
        "@here",
        "<b>x</b>",
        "*_~",
        "`code` ```block```",
        "[a](http://x)",
        "![img](http://x/i.png)",
        "\r\nX-Header: y",
        "<at>everyone</at>",
        "{{DATE(2017-02-14T06:08:39Z, SHORT)}}",
        "# heading",
        "- item",
        "1. item",
        "> quote",
        "    indented code",
        "===",
        "+ plus",
        "a\\*b\\",
        "&lt;at&gt; &amp; <http://x>",
        "\u{202E}7.311.0.302\u{202C} \u{200B}\u{FEFF}\u{FFFE}\u{FFFF} e\u{301}\u{301}\u{301} 𝕏🙂 \u{0}\u{7}\u{1b}[31m",
    ]
}

#[tokio::test]
async fn hostile_user_and_matches_arrive_inert() {
    let (service, server, sink) = setup();
    // One ban per string, in every field.
    for evil in hostile() {
        let mut e = Event::target_event(EventKind::Ban, evil, evil, evil);
        e.user = Some(evil.to_owned());
        e.matches = Some(format!("{evil}\n{evil}\r\n{evil}"));
        // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
        e.context = hostile_context(evil);
        pace().await;
        sink.send(&e).await.unwrap();
    }
    // All of them in one digest (as ids, jails, host and origins) and one alert.
    let mut events = Vec::new();
    for evil in hostile() {
        let mut ban = Event::target_event(EventKind::Ban, evil, evil, evil);
        ban.context = hostile_context(evil);
        events.push(ban);
        events.push(Event::target_event(EventKind::Unban, "sshd", evil, evil));
    }
    pace().await;
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let text = hostile().join("\n");
    pace().await;
    sink.send_alert(&Alert { subject: hostile().concat(), text, recovered: false }).await.unwrap();
    let got = service.accepted();
    assert_eq!(got.len(), hostile().len() + 2);
    assert!(service.dropped().is_empty(), "{:?}", service.dropped());
    for (i, m) in got.iter().enumerate() {
        let raw = m.to_string();
        assert!(!raw.contains("msteams") && !raw.contains("entities"), "{raw}");
        let mut all = Vec::new();
        strings(m, &mut all);
        assert!(!all.iter().any(|s| s.contains('\r')), "{all:?}");
        let evil = hostile().get(i).copied().unwrap_or("(digest or alert)");
        let mut texts = markdown_texts(m);
        if let Some(evil) = hostile().get(i) {
            // The title is the default template, its values escaped.
            let v = escape(&f2b_notify_core::flatten(evil)).into_owned();
            assert_eq!(texts.remove(0), format!("Fail2Ban ({v}) banned {v} (not an IP address)"));
        }
        for text in texts {
            // The digest's jail headings are our own bold.
            let text = text.strip_prefix("**").map(|t| t.replacen("**", "", 1)).unwrap_or(text);
            assert!(inert(&text), "{evil:?}: markdown left in {text:?}");
            for line in text.split('\n') {
                assert!(!line.starts_with(' '), "{evil:?}: an indented line {text:?}");
                assert!(!line.starts_with("1. "), "{evil:?}: a list {text:?}");
                assert!(!line.contains(['\r', '\u{0}', '\u{7}', '\u{1b}', '\u{202E}']), "{evil:?}: {text:?}");
            }
        }
    }
    // The digest names every id (banned and unbanned), escaped.
    let listed = listed_ids(&got[hostile().len()]).join(", ");
    for evil in hostile() {
        let id = escape(f2b_notify_core::flatten(evil).trim()).into_owned();
        assert!(listed.matches(&id).count() >= 2, "{id:?} in {listed:?}");
    }
    // What the brief's strings look like once escaped: every character still there.
    let user = |i: usize| {
        let facts = body_of(&got[i])[1]["facts"].as_array().unwrap();
        facts.iter().find(|f| f["title"] == "User").unwrap()["value"].as_str().unwrap().to_owned()
    };
    assert_eq!(user(0), "\\<!channel\\>");
    assert_eq!(user(1), "@everyone");
    assert_eq!(user(3), "\\<b\\>x\\</b\\>");
    assert_eq!(user(6), "\\[a\\]\\(http://x\\)");
    assert_eq!(user(8), "X-Header: y");
    assert_eq!(user(9), "\\<at\\>everyone\\</at\\>");
    assert_eq!(user(13), "1\\. item");
    assert_eq!(user(15), "indented code");
    // What enrichment found, escaped the same way.
    let fact = |i: usize, title: &str| {
        let facts = body_of(&got[i])[1]["facts"].as_array().unwrap();
        facts.iter().find(|f| f["title"] == title).unwrap()["value"].as_str().unwrap().to_owned()
    };
    assert_eq!(fact(0, "Host name"), "\\<!channel\\>");
    assert_eq!(fact(3, "Location"), "\\<b\\>x\\</b\\>");
    assert_eq!(fact(6, "Network"), "AS64500 \\[a\\]\\(http://x\\)");
    assert_eq!(fact(9, "Host name"), "\\<at\\>everyone\\</at\\>");
    let origins = body_of(&got[hostile().len()])[1]["text"].as_str().unwrap();
    assert!(origins.starts_with("**Banned:** 21 addresses, 21 of them from AS64500 "), "{origins}");
    assert!(origins.contains("\\<!channel\\>"), "{origins}");
    // Nothing hostile reached a header.
    assert!(server.requests().iter().all(|r| r.header("x-header").is_none()));
}

/// Every text field of a context holding `evil`.
fn hostile_context(evil: &str) -> Context {
    Context {
        hostname: Some(evil.into()),
        hostname_confirmed: Some(true),
        country: Some(evil.into()),
        country_code: None,
        city: None,
        asn: Some(64500),
        as_org: Some(evil.into()),
    }
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn a_ban_shows_what_enrichment_found_and_a_digest_where_the_bans_come_from() {
    let (service, _server, sink) = setup();
    let mut e = enriched(ban());
    e.matches = None;
    sink.send(&e).await.unwrap();
    let facts = |list: &[(&str, &str)]| json!({"type": "FactSet", "facts": list.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()});
    assert_eq!(
        service.accepted()[0],
        message(json!([
            title("Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time", "Attention"),
            facts(&[
                ("Jail", "sshd"),
                ("Address", "203.0.113.7"),
                ("Failures", "5"),
                ("Ban time", "10 min"),
                ("Host", "host.example"),
                ("User", "root"),
                ("Host name", "h.example (unconfirmed)"),
                // Escaped like any value: the card shows `\(` as `(`.
                ("Location", "Tokyo, Japan \\(JP\\)"),
                ("Network", "AS64500 Example Net"),
                ("Repeat", "4th ban"),
            ]),
        ]))
    );

    let mut events: Vec<Event> =
        (1..=3).map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"))).collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("<at>Org</at> *x*".into());
    events[2].context.country_code = Some("EV".into());
    events[2].context.country = Some("[Evil](http://evil)".into());
    pace().await;
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = service.accepted();
    let text = |t: &str| json!({"type": "TextBlock", "text": t, "wrap": true});
    let mono = |t: &str| json!({"type": "TextBlock", "text": t, "fontType": "Monospace", "wrap": true});
    assert_eq!(
        got[1],
        message(json!([
            title("Fail2Ban on h: 3 bans in 1 jail", "Attention"),
            text(
                "**Banned:** 3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 \\<at\\>Org\\</at\\> \\*x\\*; \
                 countries: Japan 2, \\[Evil\\]\\(http://evil\\) 1"
            ),
            text("**sshd**"),
            text("banned 3:"),
            mono("192.0.2.1, 192.0.2.2, 192.0.2.3"),
        ]))
    );
    assert!(service.dropped().is_empty(), "{:?}", service.dropped());
}

/// 100 KB of the most expensive text there is (each character 4 bytes of JSON once
/// escaped): the card stays within its budget, and what was cut says so.
#[tokio::test]
async fn huge_input_stays_within_the_limit_with_visible_cuts() {
    let (service, _server, sink) = setup();
    let costly = |n: usize| "\\𝕏".repeat(n / 2);
    let mut e = ban();
    e.user = Some(costly(100_000));
    e.id = Some(costly(50_000));
    e.jail = costly(10_000);
    e.host = costly(10_000);
    e.matches = Some((0..200).map(|_| costly(500)).collect::<Vec<_>>().join("\n"));
    // Enrichment cuts its names, but the card does not count on it.
    e.context = hostile_context(&costly(10_000));
    let templates = Templates { ban: Some("{{ matches }} {{ user }}".into()), ..Templates::default() };
    let fat =
        super::new("ops", Config { url: Some(Secret::new(service.url(&_server))), templates, ..Config::default() })
            .unwrap();
    sink.send(&e).await.unwrap();
    fat.send(&e).await.unwrap();
    // One 100 KB line.
    let mut one = ban();
    one.matches = Some("A".repeat(100_000));
    sink.send(&one).await.unwrap();
    let got = service.accepted();
    assert_eq!(got.len(), 3);
    assert!(service.dropped().is_empty());
    for m in &got {
        let size = m.to_string().len();
        assert!(size <= MAX_PAYLOAD, "{size}");
    }
    let texts = markdown_texts(&got[0]);
    let lines = texts.last().unwrap();
    assert!(lines.starts_with("… 1"), "{}", &lines[..40]);
    assert!(lines.contains(" earlier line(s) not shown"), "{}", &lines[..40]);
    let facts = &body_of(&got[0])[1]["facts"];
    assert_eq!(facts.as_array().unwrap().len(), 9, "{facts}");
    for i in 0..9 {
        let v = facts[i]["value"].as_str().unwrap();
        if v.chars().count() > 20 {
            assert!(v.contains("\\[cut ") && v.ends_with(" chars\\]"), "{}", facts[i]);
        }
    }
    assert!(texts[0].contains("\\[cut "), "the title is cut visibly");
    // The one long line: cut, not dropped.
    let last = markdown_texts(&got[2]).last().unwrap().clone();
    assert!(last.starts_with("AAAA") && last.ends_with(" chars\\]"), "{}", &last[last.len() - 40..]);
    // 10,000 short lines: the newest shown, the rest counted.
    let mut many = ban();
    many.matches = Some((0..10_000).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n"));
    sink.send(&many).await.unwrap();
    let got = service.accepted();
    let last = markdown_texts(&got[3]).last().unwrap().clone();
    assert!(last.starts_with("… 9990 earlier line(s) not shown\n\nline 9990\n\n"), "{last}");
    assert!(last.ends_with("line 9999"), "{last}");
}

#[tokio::test]
async fn a_digest_names_every_address_it_can_and_counts_the_rest_exactly() {
    let (service, _server, sink) = setup();
    let mut events = vec![Event::jail_event(EventKind::Start, "web", "h")];
    for i in 0..3 {
        events.push(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"));
    }
    events.push(Event::target_event(EventKind::Unban, "sshd", "192.0.2.0", "h"));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = service.accepted();
    let text = |t: &str| json!({"type": "TextBlock", "text": t, "wrap": true});
    let mono = |t: &str| json!({"type": "TextBlock", "text": t, "fontType": "Monospace", "wrap": true});
    assert_eq!(
        got[0],
        message(json!([
            title("Fail2Ban on h: 3 bans, 1 unban, 1 jail start in 2 jails", "Attention"),
            text("**web**: jail started"),
            text("**sshd**"),
            text("banned 3:"),
            mono("192.0.2.0, 192.0.2.1, 192.0.2.2"),
            text("unbanned 1:"),
            mono("192.0.2.0"),
        ]))
    );

    // 1000 addresses fit: every one is listed.
    let events: Vec<Event> = (0..1000)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("203.0.{}.{}", i / 256, i % 256), "h"))
        .collect();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let listed = listed_ids(&service.accepted()[1]);
    assert_eq!(listed.len(), 1000);
    for i in 0..1000 {
        assert!(listed.contains(&format!("203.0.{}.{}", i / 256, i % 256)), "address {i} missing");
    }

    // A full batch (the router's default `batch_max`, 500) of the longest IPv6 addresses
    // fits whole, in two jails.
    let events: Vec<Event> = (0..500)
        .map(|i| {
            let jail = if i % 2 == 0 { "sshd" } else { "nginx-http-auth" };
            Event::target_event(
                EventKind::Ban,
                jail,
                format!("2001:0db8:85a3:0000:0000:8a2e:{:04x}:{i:04x}", 0xffff - i),
                "h",
            )
        })
        .collect();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = service.accepted().pop().unwrap();
    assert_eq!(listed_ids(&m).len(), 500, "{}", body_of(&m).last().unwrap());
    assert!(!m.to_string().contains("not listed here"));

    // 20,000 addresses in three jails do not: as many as fit, the rest counted exactly.
    let mut events = Vec::new();
    for jail in ["sshd", "nginx", "postfix"] {
        for i in 0..20_000 / 3 {
            events.push(Event::target_event(EventKind::Ban, jail, format!("2001:db8:{jail}::{i:x}"), "h"));
        }
    }
    events.push(Event::target_event(EventKind::Unban, "postfix", "2001:db8::1, 2001:db8::2", "h"));
    let total = events.len();
    pace().await;
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = &service.accepted()[3];
    assert!(m.to_string().len() <= MAX_PAYLOAD, "{}", m.to_string().len());
    let listed = listed_ids(m);
    let footer = body_of(m).last().unwrap()["text"].as_str().unwrap().to_owned();
    let more: usize = footer
        .strip_prefix("… and ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {footer}"));
    assert_eq!(listed.len() + more, total, "{footer}");
    assert!(listed.len() > 500, "{}", listed.len());
    assert!(footer.ends_with("more not listed here: one Teams message holds about 28 KB"), "{footer}");
    assert!(service.dropped().is_empty());
}

/// The addresses a digest card lists (its monospace blocks), split back into ids.
fn listed_ids(m: &Value) -> Vec<String> {
    body_of(m)
        .iter()
        .filter(|b| b["fontType"] == "Monospace")
        .flat_map(|b| b["text"].as_str().unwrap().split(", ").map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn alerts_are_red_then_green() {
    let (service, _server, sink) = setup();
    assert!(sink.carries_alerts());
    let failing = Alert {
        subject: "f2b-notify on h: sink `ops` failing since 12:00:00".into(),
        text: "The slack-webhook sink `ops` has been failing since 12:00:00.\nLast error: no_service (HTTP 404)\n3 event(s) waiting for it.".into(),
        recovered: false,
    };
    sink.send_alert(&failing).await.unwrap();
    sink.send_alert(&Alert { subject: "recovered".into(), text: "all well".into(), recovered: true }).await.unwrap();
    let got = service.accepted();
    assert_eq!(
        got[0],
        message(json!([
            title("f2b-notify on h: sink \\`ops\\` failing since 12:00:00", "Attention"),
            {"type": "TextBlock", "wrap": true, "text": "The slack-webhook sink \\`ops\\` has been failing since 12:00:00.\n\nLast error: no\\_service \\(HTTP 404\\)\n\n3 event\\(s\\) waiting for it."},
        ]))
    );
    assert_eq!(
        got[1],
        message(json!([title("recovered", "Good"), {"type": "TextBlock", "wrap": true, "text": "all well"}]))
    );
    let huge = Alert { subject: "x".repeat(100_000), text: "\\".repeat(100_000), recovered: false };
    sink.send_alert(&huge).await.unwrap();
    assert!(service.accepted()[2].to_string().len() <= MAX_PAYLOAD);
}

/// An answer and how it must be classified: status, body, `Retry-After`, transient, the
/// wait, and text the error must carry.
type Case<'a> = (u16, String, Option<&'a str>, bool, Option<u64>, &'a str);

fn body(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message}}).to_string()
}

#[tokio::test]
async fn every_failure_class() {
    let not_enabled = body(
        "WorkflowTriggerIsNotEnabled",
        &format!("Could not execute workflow '{WORKFLOW_ID}' trigger 'manual' with state 'Suspended': trigger is not enabled."),
    );
    let cases: Vec<Case> = vec![
        (
            400,
            body("InvalidRequestContent", "The input body … must be of type JSON"),
            None,
            false,
            None,
            "InvalidRequestContent: The input body",
        ),
        (
            400,
            body("TriggerInputSchemaMismatch", "did not match its schema definition"),
            None,
            false,
            None,
            "remove the schema",
        ),
        (
            400,
            not_enabled,
            None,
            false,
            None,
            "with state 'Suspended': trigger is not enabled. (HTTP 400): the flow is turned off",
        ),
        (
            401,
            body("DirectApiAuthorizationRequired", "The request must be authenticated only by Shared Access scheme."),
            None,
            false,
            None,
            "\"Anyone\"",
        ),
        (
            401,
            body("DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid."),
            None,
            false,
            None,
            "copy the URL again",
        ),
        (401, body("MisMatchingOAuthClaims", "x"), None, false, None, "\"Anyone\""),
        (
            403,
            String::new(),
            None,
            false,
            None,
            "no error text (HTTP 403): the flow's trigger does not let this caller in",
        ),
        (
            404,
            body("WorkflowNotFound", &format!("The workflow '{WORKFLOW_ID}' could not be found.")),
            None,
            false,
            None,
            "The workflow '…' could not be found. (HTTP 404): there is no such flow",
        ),
        (
            413,
            "<html>Request Entity Too Large</html>".into(),
            None,
            false,
            None,
            "(HTTP 413): the request is too large",
        ),
        (408, String::new(), None, true, None, "HTTP 408"),
        (
            429,
            body("WorkflowRequestsThrottled", "Number of requests exceeded"),
            Some("17"),
            true,
            Some(17),
            "WorkflowRequestsThrottled: Number of requests exceeded (HTTP 429)",
        ),
        (429, body("WorkflowRequestsThrottled", "x"), None, true, None, "HTTP 429"),
        // A hostile or broken Retry-After is no hint: the router's own backoff applies.
        (429, String::new(), Some("18446744073709551615"), true, None, "HTTP 429"),
        (429, String::new(), Some("Wed, 21 Oct 2015 07:28:00 GMT"), true, None, "HTTP 429"),
        (500, String::new(), None, true, None, "(HTTP 500): a problem on Microsoft's side"),
        (501, String::new(), None, false, None, "HTTP 501"),
        (502, "<html>bad gateway</html>".into(), None, true, None, "<html>bad gateway</html> (HTTP 502)"),
        (503, String::new(), Some("2"), true, Some(2), "HTTP 503"),
        (504, body("GatewayTimeout", "x"), None, true, None, "GatewayTimeout: x (HTTP 504)"),
        (302, String::new(), None, false, None, "HTTP 302"),
    ];
    let (service, _server, sink) = setup();
    for (status, text, ra, transient, wait, want) in &cases {
        let mut reply = Reply::new(*status, text);
        if let Some(ra) = ra {
            reply = reply.header("Retry-After", ra);
        }
        service.force([reply]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), *transient, "{status}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait.map(Duration::from_secs), "{status}");
        assert!(err.to_string().contains(want), "{status}: {err} lacks {want}");
        assert_error_has_no_secret(&err);
    }
    // Any 2xx is success: 202 from the template's flow, another from a flow of one's own.
    for status in [200, 201, 204] {
        service.force([Reply::new(status, "")]);
        sink.send(&ban()).await.unwrap();
    }
}

/// The stand-in's own rules, reached through a wrong URL, a flow that is off, and the rate.
#[tokio::test]
async fn the_services_refusals_say_what_to_do() {
    let service = Service::new(SIG);
    let server = service.start();
    let url = service.url(&server);
    let wrong = sink_for(url.replace(SIG, "SIGwrongXYZ0123456789abcdef"), None);
    let err = wrong.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("DirectApiInvalidAuthorizationSignature: The provided authorization signature is not valid. (HTTP 401): the URL's signature"), "{err}");
    assert_error_has_no_secret(&err);
    let unsigned = sink_for(url.split("&sig=").next().unwrap().to_owned(), None);
    let err = unsigned.send(&ban()).await.unwrap_err();
    assert!(err.to_string().starts_with("DirectApiAuthorizationRequired: "), "{err}");
    assert!(unsigned.check().iter().any(|w| w.contains("`url` has no `sig` parameter")));
    let typo = sink_for(url.replace(WORKFLOW_ID, "0f8fad5bd9cb469fa16570867728950f"), None);
    let err = typo.send(&ban()).await.unwrap_err();
    assert!(
        err.is_permanent()
            && err.to_string().starts_with("WorkflowNotFound: The workflow '…' could not be found. (HTTP 404)"),
        "{err}"
    );
    assert_error_has_no_secret(&err);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sink = sink_for(url, None);
    for state in ["Disabled", "Suspended", "Deleted"] {
        service.set_state(Some(state));
        let err = sink.send(&ban()).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("with state '{state}'")) && text.contains("turn it on again"), "{text}");
        assert!(text.contains("create a new one"), "{text}");
        assert_error_has_no_secret(&err);
    }
    service.set_state(None);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Faster than four a second (the router would pace at one): the fifth is throttled, and
    // the service's Retry-After is the wait.
    for _ in 0..4 {
        sink.send(&ban()).await.unwrap();
    }
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.retry_after_hint() == Some(Duration::from_secs(1)), "{err:?}");
    assert!(err.to_string().starts_with("WorkflowRequestsThrottled: Number of requests for workflow '…'"), "{err}");
    assert_error_has_no_secret(&err);
    assert_eq!(sink.min_interval(), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    sink.send(&ban()).await.unwrap();
    assert_eq!(service.accepted().len(), 5);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = StandIn::start(Arc::new(|_: &_, _| {
        std::thread::sleep(Duration::from_secs(2));
        Reply::new(202, "")
    }));
    let url = server.url(&format!("{}?{}", Service::path(), Service::query(SIG)));
    let err = sink_for(url, Some(0.3)).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn closed_and_refused_connections_are_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let query = Service::query(SIG);
    let err = sink_for(format!("http://{addr}{}?{query}", Service::path()), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;

    let port = StandIn::reserve_port();
    let url = format!("http://127.0.0.1:{port}{}?{query}", Service::path());
    let err = sink_for(url, None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err:?}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let (addr, der) = (tls.addr, tls.der.clone());
    let url = format!("https://127.0.0.1:{}{}?{}", addr.port(), Service::path(), Service::query(SIG));
    let trusting =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_der(&der).unwrap()).build().unwrap();
    let answer = trusting.post(&url).json(&json!({"type": "message"})).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let err = sink_for(url, Some(5.0)).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn the_secret_is_in_no_debug_check_or_preview() {
    let (_service, server, sink) = setup();
    assert_no_secret(&format!("{sink:?}"));
    let config = Config { url: Some(Secret::new(_service.url(&server))), ..Config::default() };
    assert_no_secret(&format!("{config:?}"));
    for line in sink.check() {
        assert_no_secret(&line);
    }
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    assert!(
        preview
            .starts_with("POST to the Workflows webhook URL (the secret, not shown), Content-Type: application/json, "),
        "{preview}"
    );
    assert!(preview.contains("202 Accepted") && preview.contains("\"AdaptiveCard\""), "{preview}");
    assert!(preview.contains("Fail2Ban (sshd) banned IP 203.0.113.7"), "{preview}");
    assert_eq!(sink.kind(), "teams");
    assert_eq!(sink.name(), "ops");
}

#[tokio::test]
async fn config_errors_name_the_key_never_the_value() {
    let host = "prod-28.westeurope.logic.azure.com";
    for (bad, why) in [
        (format!("not a url {SIG}"), "`url` is not a valid URL: it has no scheme: write it as https://…"),
        (format!("{host}/workflows/{WORKFLOW_ID}?sig={SIG}"), "it has no scheme"),
        (format!("https://{host} /workflows?sig={SIG}"), "it holds a space or a line break"),
        (format!("ftp://{host}/{SIG}"), "`url` must be an https:// URL"),
        (format!("{SIG}:1234"), "`url` must be an https:// URL"),
    ] {
        let err = super::new("ops", Config { url: Some(Secret::new(bad)), ..Config::default() }).unwrap_err();
        assert_no_secret(&err.to_string());
        assert!(!err.to_string().contains(host) && !err.to_string().contains("ftp"), "{err}");
        assert!(err.to_string().contains(why), "{err} lacks {why}");
    }
    // A secret of the wrong type names the key and the type, never the value.
    let err = serde_json::from_value::<Config>(json!({"url": 123456789})).unwrap_err().to_string();
    assert!(err.starts_with("`url` must be a string, not an integer") && !err.contains("123456789"), "{err}");
    let err = serde_json::from_value::<Config>(json!({"url": "https://x/", "colour": "red"})).unwrap_err();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    let err = super::new("ops", Config::default()).unwrap_err();
    assert_eq!(err.to_string(), "missing `url` (or `url_file`)");
    let both = Config { url: Some(Secret::new("https://x/")), url_file: Some("/x".into()), ..Config::default() };
    assert!(super::new("ops", both).unwrap_err().to_string().contains("not both"));
    let err =
        super::new("ops", Config { url: Some(Secret::new("https://x/")), timeout: Some(99.0), ..Config::default() })
            .unwrap_err();
    assert!(err.to_string().contains("`timeout` = 99"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, [format!("https://{host}/workflows/{SIG}").as_bytes(), b"\xff"].concat()).unwrap();
    let err = super::new("ops", Config { url_file: Some(file), ..Config::default() }).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    assert_no_secret(&err.to_string());
    assert!(!err.to_string().contains(host));
}

#[cfg(unix)]
#[tokio::test]
async fn check_warns_about_the_file_plain_http_and_old_urls() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    let new_form =
        format!("https://0123abcd.de.environment.api.powerplatform.com:443{}?{}", Service::path(), Service::query(SIG));
    std::fs::write(&file, format!("{new_form}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sink = super::new("ops", Config { url_file: Some(file.clone()), ..Config::default() }).unwrap();
    let warnings = sink.check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("mode 644"), "{warnings:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink.check().is_empty(), "{:?}", sink.check());

    let warn = |url: String| {
        let lines = sink_for(url, None).check();
        for l in &lines {
            assert_no_secret(l);
            for host in ["0123abcd", "prod-28", "westeurope", "contoso"] {
                assert!(!l.contains(host), "{l}");
            }
        }
        lines
    };
    let path_query = format!("{}?{}", Service::path(), Service::query(SIG));
    let plain = warn(format!("http://0123abcd.de.environment.api.powerplatform.com{path_query}"));
    assert!(plain.len() == 1 && plain[0].contains("plain http://"), "{plain:?}");
    assert!(warn(format!("http://127.0.0.1:8080{path_query}")).is_empty());
    let old = warn(format!(
        "https://prod-28.westeurope.logic.azure.com:443/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
    ));
    assert!(old.len() == 1 && old[0].contains("old form"), "{old:?}");
    let connector = warn(format!("https://contoso.webhook.office.com/webhookb2/{WORKFLOW_ID}@x/IncomingWebhook/{SIG}"));
    assert!(connector.len() == 1 && connector[0].contains("Office 365 connector"), "{connector:?}");
    let legacy = warn(format!("https://outlook.office.com/webhook/{WORKFLOW_ID}/IncomingWebhook/{SIG}"));
    assert!(legacy.len() == 1 && legacy[0].contains("retired"), "{legacy:?}");
}

#[test]
fn escaping_is_what_the_card_shows() {
    // A plain address passes unchanged; the brief's strings are all escaped.
    assert_eq!(escape("203.0.113.7"), "203.0.113.7");
    for evil in hostile() {
        assert!(inert(&escape(evil)), "{evil:?} -> {:?}", escape(evil));
    }
}
