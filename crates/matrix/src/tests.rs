//! The Matrix sink against the homeserver stand-in (`f2b_notify_standins::matrix`), a real
//! HTTP server on loopback that follows the Client-Server API's documented contract.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, MessageRef, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::matrix::{Forced, Service};
use f2b_notify_standins::{Reply, StandIn};
use serde_json::{json, Value};

use super::message::{json_size, MAX_CONTENT};
use super::{Config, MatrixSink};

/// The access token: it must never show up in any error, Debug, check line or preview.
const TOKEN: &str = "syt_Ym90_SECRETxyzzy_1a2b3c";
const ROOM: &str = "!room:example.org";
/// The room id as it travels in the path.
const ROOM_PATH: &str = "%21room%3Aexample.org";

fn homeserver() -> (Arc<Service>, StandIn) {
    let service = Service::new(TOKEN, ROOM);
    service.rate_limit(None);
    let standin = service.start();
    (service, standin)
}

fn config(standin: &StandIn) -> Config {
    Config {
        homeserver: Some(standin.url("")),
        room_id: Some(ROOM.to_owned()),
        token: Some(Secret::new(TOKEN)),
        ..Config::default()
    }
}

fn sink_for(standin: &StandIn) -> MatrixSink {
    super::new("ops", config(standin)).unwrap()
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(1_700_000_000.25);
    e.user = Some("root".into());
    e.matches = Some(
        "Nov 14 22:13:18 h sshd[1]: Failed password for root from 203.0.113.7\nNov 14 22:13:20 h sshd[1]: Failed password for root from 203.0.113.7".into(),
    );
    e
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET") && !text.contains(TOKEN), "the token leaked: {text}");
}

fn assert_error_clean(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

/// The transaction id of a request's path.
fn txn_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn exact_request_for_each_event_kind() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let mut unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    unban.time = Some(1_700_000_000.25);
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let got = service.contents();
    assert_eq!(
        got[0],
        json!({
            "msgtype": "m.notice",
            "body": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\nJail: sshd\nAddress: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\n\nMatched log lines:\n  Nov 14 22:13:18 h sshd[1]: Failed password for root from 203.0.113.7\n  Nov 14 22:13:20 h sshd[1]: Failed password for root from 203.0.113.7",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><b>Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)</b></p><p><b>Jail:</b> sshd<br><b>Address:</b> <code>203.0.113.7</code><br><b>Failures:</b> 5<br><b>Ban time:</b> 10 min<br><b>Host:</b> host.example<br><b>User:</b> <code>root</code></p><p><b>Matched log lines</b>:</p><pre><code>Nov 14 22:13:18 h sshd[1]: Failed password for root from 203.0.113.7\nNov 14 22:13:20 h sshd[1]: Failed password for root from 203.0.113.7</code></pre>",
            "m.mentions": {},
        })
    );
    assert_eq!(
        got[1],
        json!({
            "msgtype": "m.notice",
            "body": "Fail2Ban (sshd) unbanned IP 2001:db8::1\n\nJail: sshd\nAddress: 2001:db8::1\nHost: host.example",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><b>Fail2Ban (sshd) unbanned IP 2001:db8::1</b></p><p><b>Jail:</b> sshd<br><b>Address:</b> <code>2001:db8::1</code><br><b>Host:</b> host.example</p>",
            "m.mentions": {},
        })
    );
    let jail = |text: &str| {
        json!({
            "msgtype": "m.notice",
            "body": format!("{text}\n\nJail: sshd\nHost: host.example"),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("<p><b>{text}</b></p><p><b>Jail:</b> sshd<br><b>Host:</b> host.example</p>"),
            "m.mentions": {},
        })
    };
    assert_eq!(got[2], jail("Fail2Ban (sshd) jail started on host.example"));
    assert_eq!(got[3], jail("Fail2Ban (sshd) jail stopped on host.example"));

    // The request itself: PUT, the room id percent-encoded, the token as a bearer, JSON.
    let requests = standin.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(r.method, "PUT");
        let prefix = format!("/_matrix/client/v3/rooms/{ROOM_PATH}/send/m.room.message/f2b-");
        assert!(r.path.starts_with(&prefix), "{}", r.path);
        assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.query("access_token"), None, "the token goes in the header only");
    }
    // A ban carries Fail2Ban's time: its id is the hash alone, the same in any process.
    let ban_txn = txn_of(&requests[0].path);
    assert_eq!(ban_txn.len(), "f2b-".len() + 32, "{ban_txn}");
    assert!(ban_txn[4..].chars().all(|c| c.is_ascii_hexdigit()), "{ban_txn}");
    let other = sink_for(&standin);
    other.send(&ban()).await.unwrap();
    assert_eq!(txn_of(&standin.requests()[4].path), ban_txn);
    assert_eq!(service.messages().len(), 4, "the same ban again is the same transaction: not posted twice");
    // Each message its own transaction.
    let mut txns: Vec<&str> = requests.iter().map(|r| txn_of(&r.path)).collect();
    txns.dedup();
    assert_eq!(txns.len(), 4);
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn a_ban_shows_what_enrichment_found_and_a_digest_where_the_bans_come_from() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let mut e = enriched(ban());
    e.matches = None;
    sink.send(&e).await.unwrap();
    assert_eq!(
        service.contents()[0],
        json!({
            "msgtype": "m.notice",
            "body": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time\n\nJail: sshd\nAddress: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\nHost name: h.example (unconfirmed)\nLocation: Tokyo, Japan (JP)\nNetwork: AS64500 Example Net\nRepeat: 4th ban",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><b>Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time</b></p><p><b>Jail:</b> sshd<br><b>Address:</b> <code>203.0.113.7</code><br><b>Failures:</b> 5<br><b>Ban time:</b> 10 min<br><b>Host:</b> host.example<br><b>User:</b> <code>root</code><br><b>Host name:</b> <code>h.example</code> (unconfirmed)<br><b>Location:</b> Tokyo, Japan (JP)<br><b>Network:</b> AS64500 Example Net<br><b>Repeat:</b> 4th ban</p>",
            "m.mentions": {},
        })
    );

    let mut events: Vec<Event> = (1..=3)
        .map(|i| {
            let mut e = enriched(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"));
            e.time = Some(1_700_000_000.0 + f64::from(i));
            e
        })
        .collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("@room <b>Org</b> & 'co'".into());
    events[2].context.country_code = Some("EV".into());
    events[2].context.country = Some("<a href=\"http://evil\">Evil</a>".into());
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = &service.contents()[1];
    let origins = "3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 @room <b>Org</b> & 'co'; \
                   countries: Japan 2, <a href=\"http://evil\">Evil</a> 1";
    assert_eq!(
        got["body"],
        format!(
            "Fail2Ban on h: 3 bans in 1 jail\nBanned: {origins}\n\nsshd\n  banned 3: 192.0.2.1, 192.0.2.2, 192.0.2.3"
        )
    );
    assert_eq!(
        got["formatted_body"],
        "<p><b>Fail2Ban on h: 3 bans in 1 jail</b></p><p><b>Banned:</b> 3 addresses, 2 of them from AS64500 Example Net, \
         1 from AS64501 @room &lt;b&gt;Org&lt;/b&gt; &amp; &#39;co&#39;; countries: Japan 2, \
         &lt;a href=&quot;http://evil&quot;&gt;Evil&lt;/a&gt; 1</p>\
         <p><b>sshd</b><br>banned 3: <code>192.0.2.1, 192.0.2.2, 192.0.2.3</code></p>"
    );
    assert_eq!(got["m.mentions"], json!({}));
}

#[tokio::test]
async fn templates_set_the_first_line_as_plain_text() {
    let (service, standin) = homeserver();
    let templates =
        Templates { ban: Some("<b>{{ jail }}</b> & {{ id }} by {{ user }}".into()), ..Templates::default() };
    let mut e = ban();
    e.user = Some("<img src=x onerror=alert(1)>".into());
    super::new("ops", Config { templates, ..config(&standin) }).unwrap().send(&e).await.unwrap();
    let got = &service.contents()[0];
    let body = got["body"].as_str().unwrap();
    assert!(body.starts_with("<b>sshd</b> & 203.0.113.7 by <img src=x onerror=alert(1)>\n\n"), "{body}");
    let html = got["formatted_body"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<p><b>&lt;b&gt;sshd&lt;/b&gt; &amp; 203.0.113.7 by &lt;img src=x onerror=alert(1)&gt;</b></p>"
        ),
        "{html}"
    );
    // A template that does not compile is a config error naming the event.
    let bad = Templates { stop: Some("{% if %}".into()), ..Templates::default() };
    let err = super::new("ops", Config { templates: bad, ..config(&standin) }).unwrap_err();
    assert!(err.to_string().contains("template for `stop`"), "{err}");
}

#[tokio::test]
async fn a_digest_names_every_address_in_one_message() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let mut events = vec![Event::jail_event(EventKind::Start, "web", "h")];
    for i in 0..3 {
        let mut e = Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h");
        e.time = Some(1_700_000_000.0 + f64::from(i));
        events.push(e);
    }
    events.push(Event::target_event(EventKind::Unban, "sshd", "192.0.2.0", "h"));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    assert_eq!(
        service.contents()[0],
        json!({
            "msgtype": "m.notice",
            "body": "Fail2Ban on h: 3 bans, 1 unban, 1 jail start in 2 jails\n\nweb: jail started\n\nsshd\n  banned 3: 192.0.2.0, 192.0.2.1, 192.0.2.2\n  unbanned 1: 192.0.2.0",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><b>Fail2Ban on h: 3 bans, 1 unban, 1 jail start in 2 jails</b></p><p><b>web</b>: jail started</p><p><b>sshd</b><br>banned 3: <code>192.0.2.0, 192.0.2.1, 192.0.2.2</code><br>unbanned 1: <code>192.0.2.0</code></p>",
            "m.mentions": {},
        })
    );

    // 1000 bans fit: every address named, nothing said about a limit.
    let events: Vec<Event> = (0..1000)
        .map(|i| {
            let mut e = Event::target_event(EventKind::Ban, "sshd", format!("203.0.{}.{}", i / 256, i % 256), "h");
            e.time = Some(1_700_000_000.0 + f64::from(i));
            e
        })
        .collect();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = &service.contents()[1];
    let (body, html) = (got["body"].as_str().unwrap(), got["formatted_body"].as_str().unwrap());
    for i in 0..1000 {
        let ip = format!("203.0.{}.{}", i / 256, i % 256);
        assert!(body.contains(&format!(" {ip},")) || body.ends_with(&ip), "{ip} missing from the body");
        assert!(html.contains(&ip), "{ip} missing from the HTML");
    }
    assert!(!body.contains("not listed"), "{body}");
    assert!(json_size(got) <= MAX_CONTENT);
}

#[tokio::test]
async fn a_digest_past_the_event_limit_counts_exactly_what_it_leaves_out() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let n = 5000;
    let mut events: Vec<Event> = (0..n)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}"), "h"))
        .collect();
    events.push(Event::jail_event(EventKind::Stop, "web", "h"));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    // The stand-in took it: within the 65536-byte event limit.
    let got = &service.contents()[0];
    assert!(json_size(got) <= MAX_CONTENT, "{}", json_size(got));
    let body = got["body"].as_str().unwrap();
    let html = got["formatted_body"].as_str().unwrap();
    let listed = body.lines().find(|l| l.starts_with("  banned 5000: ")).unwrap();
    let shown = listed.trim_start_matches("  banned 5000: ").split(", ").count();
    assert!(shown > 500 && shown < n, "{shown}");
    // Exactly the ones shown, in order, then the exact count of the rest and of the jail.
    for (i, id) in listed.trim_start_matches("  banned 5000: ").split(", ").enumerate() {
        assert_eq!(id, format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}"));
    }
    let note = format!(
        "… and {} more address(es) and 1 more jail(s) not listed here (Matrix's 64 KiB event limit)",
        n - shown
    );
    assert!(body.ends_with(&note), "{}", &body[body.len() - 200..]);
    assert!(
        html.ends_with(&format!("</code></p><p>{}</p>", note.replace('\'', "&#39;"))),
        "{}",
        &html[html.len() - 200..]
    );
    assert_tags_allowed(html);
}

#[tokio::test]
async fn an_alert_is_a_notice_with_its_lines() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    assert!(sink.carries_alerts());
    let alert = Alert {
        subject: "f2b-notify: sink `mail` is failing".into(),
        text: "since 2024-01-01T00:00:00Z\nlast error: <html>550 \"no\"</html>".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    sink.send_alert(&alert).await.unwrap();
    let got = service.contents();
    assert_eq!(
        got[0],
        json!({
            "msgtype": "m.notice",
            "body": "f2b-notify: sink `mail` is failing\n\nsince 2024-01-01T00:00:00Z\nlast error: <html>550 \"no\"</html>",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p><b>f2b-notify: sink `mail` is failing</b></p><p>since 2024-01-01T00:00:00Z<br>last error: &lt;html&gt;550 &quot;no&quot;&lt;/html&gt;</p>",
            "m.mentions": {},
        })
    );
    // Two alerts of equal text are two messages (each its own transaction).
    assert_eq!(got.len(), 2);
}

/// Every tag in an HTML body is one of the few written, from the spec's suggested list.
fn assert_tags_allowed(html: &str) {
    for piece in html.split('<').skip(1) {
        let tag = piece.split(['>', ' ']).next().unwrap().trim_start_matches('/');
        assert!(["p", "b", "br", "code", "pre"].contains(&tag), "tag <{tag}> in {html}");
    }
}

#[tokio::test]
async fn hostile_input_arrives_inert_and_within_limits() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let hostile = [
        "<!channel>",
        "@everyone",
        "@here",
        "@room",
        "@admin:example.org",
        "<b>x</b>",
        "*_~",
        "`code` ```block```",
        "[a](http://x)",
        "<a href=\"https://evil.example\">bank</a>",
        "'quoted' & \"double\"",
        "\r\nX-Header: y",
        "\u{202e}reversed\u{200b}zero-width\u{feff}bom\u{fffd}",
        "</code></pre><script>alert(1)</script>",
    ]
    .join(" ");
    let mut e = ban();
    e.user = Some(hostile.clone());
    e.matches = Some(format!("{hostile}\n{hostile}"));
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context = Context {
        hostname: Some(hostile.clone()),
        hostname_confirmed: Some(false),
        country: Some(hostile.clone()),
        city: Some(hostile.clone()),
        as_org: Some(hostile.clone()),
        ..Context::default()
    };
    sink.send(&e).await.unwrap();
    let got = &service.contents()[0];
    assert_eq!(got["m.mentions"], json!({}), "no mention, whatever the text says");
    let html = got["formatted_body"].as_str().unwrap();
    assert_tags_allowed(html);
    for raw in ["<b>x</b>", "<a href", "<script>", "<!channel>", "\"double\"", "'quoted'"] {
        assert!(!html.contains(raw), "{raw} reached the HTML: {html}");
    }
    assert!(
        html.contains("&lt;b&gt;x&lt;/b&gt;") && html.contains("&#39;quoted&#39; &amp; &quot;double&quot;"),
        "{html}"
    );
    let body = got["body"].as_str().unwrap();
    // Plain text stays as it was (it is plain), one line per value: no faked line.
    assert!(body.contains("User: <!channel> @everyone @here @room @admin:example.org <b>x</b>"), "{body}");
    for label in ["Host name", "Location", "Network"] {
        assert!(body.contains(&format!("\n{label}: <!channel> @everyone")), "{label}: {body}");
        assert!(html.contains(&format!("<b>{label}:</b> ")), "{label}: {html}");
    }
    assert!(html.contains("<b>Host name:</b> <code>&lt;!channel&gt; @everyone"), "{html}");
    assert!(!body.lines().any(|l| l.starts_with("X-Header")), "{body}");
    assert!(!body.contains('\r'));

    // 100 KB of text and 10,000 lines: cut with visible markers, within the limit, accepted.
    let mut e = ban();
    e.user = Some("u".repeat(100_000));
    e.id = Some("i".repeat(50_000));
    e.matches = Some((0..10_000).map(|i| format!("line {i} {}", "\"<>&'".repeat(200))).collect::<Vec<_>>().join("\n"));
    sink.send(&e).await.unwrap();
    let got = &service.contents()[1];
    assert!(json_size(got) <= MAX_CONTENT, "{}", json_size(got));
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("[cut "), "no cut marker");
    assert!(body.contains("earlier not shown)"), "{body}");
    assert!(body.contains("line 9999 "), "the last line is shown");
    assert_tags_allowed(got["formatted_body"].as_str().unwrap());
    // Emoji and four-byte characters, counted in bytes, not characters.
    let mut e = ban();
    e.matches = Some(vec!["😀".repeat(500); 100].join("\n"));
    sink.send(&e).await.unwrap();
    let got = &service.contents()[2];
    assert!(json_size(got) <= MAX_CONTENT, "{}", json_size(got));
    assert_eq!(service.messages().len(), 3);
}

/// The test the transaction id exists for: the homeserver stores the message, the answer
/// is lost; the retry carries the same id and the room holds one message.
#[tokio::test]
async fn lost_answer_then_resend_posts_once() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    // The connection drops after the message was stored.
    service.force([Forced::Lose]);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_clean(&err);
    assert_eq!(service.messages().len(), 1, "the homeserver stored it");
    sink.send(&ban()).await.unwrap();
    assert_eq!(service.messages().len(), 1, "the retry was recognised as one");
    let requests = standin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, requests[1].path, "same transaction id");
    assert_eq!(requests[0].body, requests[1].body);
    // The worker enriches every try anew: a PTR name that answered only in time for the
    // retry makes no second message either.
    let mut late = ban();
    late.time = Some(1_700_000_050.5);
    service.force([Forced::Lose]);
    assert!(sink.send(&late).await.unwrap_err().is_transient());
    let retry = Event { context: enriched(late.clone()).context, ..late.clone() };
    sink.send(&retry).await.unwrap();
    assert_eq!(service.messages().len(), 2, "the enriched retry was recognised as one");
    let requests = standin.requests();
    assert_eq!(requests[2].path, requests[3].path, "same transaction id");
    assert_ne!(requests[2].body, requests[3].body);

    // A proxy's 502 after the homeserver stored it; retried by a new process (a new sink).
    service.force([Forced::LoseWith(Reply::new(502, "<html>Bad Gateway</html>"))]);
    let mut second = ban();
    second.time = Some(1_700_000_100.5);
    let err = sink.send(&second).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("HTTP 502"), "{err}");
    sink_for(&standin).send(&second).await.unwrap();
    assert_eq!(service.messages().len(), 3);

    // A digest the same way.
    let digest = Digest::new(vec![ban(), second.clone()]);
    service.force([Forced::Lose]);
    assert!(sink.send_digest(&digest).await.unwrap_err().is_transient());
    sink_for(&standin).send_digest(&digest).await.unwrap();
    assert_eq!(service.messages().len(), 4);

    // No answer within the timeout: the homeserver stored it, the retry is recognised.
    service.delay(Duration::from_millis(1500));
    let slow = super::new("ops", Config { timeout: Some(0.3), ..config(&standin) }).unwrap();
    let mut third = ban();
    third.time = Some(1_700_000_200.5);
    let err = slow.send(&third).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    service.delay(Duration::ZERO);
    slow.send(&third).await.unwrap();
    assert_eq!(service.messages().len(), 5);
    let stored: Vec<String> = service.messages().iter().map(|m| m.txn_id.clone()).collect();
    let mut unique = stored.clone();
    unique.dedup();
    assert_eq!(stored, unique);
}

/// A jail start carries no time: two equal ones are two messages, yet the retry of one whose
/// answer was lost is still recognised (by the same process).
#[tokio::test]
async fn timeless_events_are_retried_once_and_repeated_as_new() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let start = Event::jail_event(EventKind::Start, "sshd", "h");
    service.force([Forced::Lose]);
    assert!(sink.send(&start).await.unwrap_err().is_transient());
    sink.send(&start).await.unwrap();
    assert_eq!(service.messages().len(), 1);
    let requests = standin.requests();
    assert_eq!(requests[0].path, requests[1].path);
    // Later the jail starts again: a new message, a new transaction.
    sink.send(&start).await.unwrap();
    assert_eq!(service.messages().len(), 2);
    assert_ne!(standin.requests()[2].path, requests[0].path);
    // A digest of a restart (stop, start) is the same.
    let restart = Digest::new(vec![Event::jail_event(EventKind::Stop, "sshd", "h"), start.clone()]);
    sink.send_digest(&restart).await.unwrap();
    sink.send_digest(&restart).await.unwrap();
    assert_eq!(service.messages().len(), 4);
}

/// An answer and how it must be classified: the reply, transient, the wait, text it carries.
fn expect(
    reply: Reply,
    transient: bool,
    wait: Option<Duration>,
    text: &str,
) -> (Reply, bool, Option<Duration>, String) {
    (reply, transient, wait, text.to_owned())
}

fn matrix_error(status: u16, body: Value) -> Reply {
    Reply::json(status, &body)
}

#[tokio::test]
async fn every_failure_class() {
    let ms = Duration::from_millis;
    let cases = vec![
        expect(
            matrix_error(401, json!({"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})),
            false,
            None,
            "M_MISSING_TOKEN Missing access token (HTTP 401): no access token reached the homeserver",
        ),
        expect(
            matrix_error(
                401,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token", "soft_logout": true}),
            ),
            false,
            None,
            "log the bot in again and put its new access token in `token` or `token_file` (soft logout",
        ),
        expect(
            matrix_error(
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "User @bot:example.org not in room !room:example.org"}),
            ),
            false,
            None,
            "not in room !room:example.org (HTTP 403): the bot's account may not post in the room: invite it",
        ),
        expect(
            matrix_error(404, json!({"errcode": "M_NOT_FOUND", "error": "Unknown room"})),
            false,
            None,
            "check `room_id`",
        ),
        expect(
            matrix_error(413, json!({"errcode": "M_TOO_LARGE", "error": "event too large"})),
            false,
            None,
            "M_TOO_LARGE event too large (HTTP 413)",
        ),
        expect(
            matrix_error(400, json!({"errcode": "M_BAD_JSON", "error": "bad"})),
            false,
            None,
            "M_BAD_JSON bad (HTTP 400): the homeserver rejected",
        ),
        expect(
            matrix_error(400, json!({"errcode": "M_NOT_JSON", "error": "Content not JSON."})),
            false,
            None,
            "M_NOT_JSON",
        ),
        expect(
            matrix_error(400, json!({"errcode": "M_UNKNOWN", "error": "Cannot start threads"})),
            false,
            None,
            "M_UNKNOWN Cannot start threads (HTTP 400)",
        ),
        expect(
            matrix_error(500, json!({"errcode": "M_UNKNOWN", "error": "Internal server error"})),
            true,
            None,
            "(HTTP 500)",
        ),
        expect(
            matrix_error(403, json!({"errcode": "M_USER_DEACTIVATED", "error": "gone"})),
            false,
            None,
            "deactivated",
        ),
        expect(matrix_error(403, json!({"errcode": "M_USER_LOCKED", "error": "locked"})), false, None, "locked"),
        expect(
            matrix_error(403, json!({"errcode": "M_USER_SUSPENDED", "error": "suspended"})),
            false,
            None,
            "suspended",
        ),
        expect(
            matrix_error(
                403,
                json!({"errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "MAU", "admin_contact": "mailto:admin@example.org"}),
            ),
            true,
            None,
            "(admin contact: mailto:admin@example.org)",
        ),
        expect(
            matrix_error(404, json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})),
            false,
            None,
            "without /_matrix",
        ),
        expect(
            matrix_error(418, json!({"errcode": "ORG.EXAMPLE.CUSTOM", "error": "teapot"})),
            false,
            None,
            "ORG.EXAMPLE.CUSTOM teapot (HTTP 418)",
        ),
        // The rate limit: Retry-After first, then retry_after_ms, else no hint.
        expect(
            matrix_error(
                429,
                json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 1500}),
            )
            .header("Retry-After", "7"),
            true,
            Some(ms(7000)),
            "M_LIMIT_EXCEEDED Too Many Requests (HTTP 429): the homeserver's rate limit was hit",
        ),
        expect(
            matrix_error(429, json!({"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": 1500})),
            true,
            Some(ms(1500)),
            "HTTP 429",
        ),
        expect(matrix_error(429, json!({"errcode": "M_LIMIT_EXCEEDED", "error": "x"})), true, None, "HTTP 429"),
        // An absurd wait is no hint (the router's own backoff applies).
        expect(
            matrix_error(429, json!({"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": 1e15})),
            true,
            None,
            "HTTP 429",
        ),
        expect(
            matrix_error(429, json!({"errcode": "M_LIMIT_EXCEEDED", "error": "x", "retry_after_ms": -5})),
            true,
            None,
            "HTTP 429",
        ),
        // A reverse proxy's answers, not the homeserver's JSON.
        expect(Reply::new(502, "<html>Bad Gateway</html>"), true, None, "<html>Bad Gateway</html> (HTTP 502)"),
        expect(Reply::new(503, "").header("Retry-After", "30"), true, Some(ms(30_000)), "no error text (HTTP 503)"),
        expect(Reply::new(504, "timeout"), true, None, "HTTP 504"),
        expect(Reply::new(501, ""), false, None, "HTTP 501"),
        expect(Reply::new(200, "<html>welcome</html>"), false, None, "HTTP 200 without an event_id"),
        expect(Reply::new(302, ""), false, None, "HTTP 302"),
    ];
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let shown = standin.url("");
    for (reply, transient, wait, text) in cases {
        service.force([Forced::Reply(reply)]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{text}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait, "{text}: {err:?}");
        assert!(err.to_string().contains(&text), "{err} lacks {text}");
        assert!(err.to_string().starts_with(&format!("{shown}: ")), "{err}");
        assert_error_clean(&err);
    }
    // The connection closed without an answer.
    service.force([Forced::Reply(Reply::hang_up())]);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_clean(&err);
    assert!(service.messages().is_empty());
    sink.send(&ban()).await.unwrap();
}

#[tokio::test]
async fn the_stand_in_s_own_refusals_are_classified() {
    let (service, standin) = homeserver();
    // A token the homeserver does not know.
    let wrong = super::new("ops", Config { token: Some(Secret::new("syt_other")), ..config(&standin) }).unwrap();
    let err = wrong.send(&ban()).await.unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("M_UNKNOWN_TOKEN Unrecognised access token (HTTP 401)"),
        "{err}"
    );
    // A room the bot has not joined.
    let elsewhere =
        super::new("ops", Config { room_id: Some("!other:example.org".into()), ..config(&standin) }).unwrap();
    let err = elsewhere.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("M_FORBIDDEN User @bot:example.org not in room !other:example.org (HTTP 403): the bot's account may not post in the room: invite it"), "{err}");
    // A homeserver URL with a path the server does not serve.
    let prefixed = super::new("ops", Config { homeserver: Some(standin.url("/matrix")), ..config(&standin) }).unwrap();
    let err = prefixed.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("M_UNRECOGNIZED"), "{err}");
    assert!(service.messages().is_empty());

    // The rate limit, as Synapse counts it: Retry-After obeyed exactly.
    service.rate_limit(Some((0.5, 1.0)));
    let sink = sink_for(&standin);
    sink.send(&ban()).await.unwrap();
    let mut next = ban();
    next.time = Some(1_700_000_001.0);
    let err = sink.send(&next).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("M_LIMIT_EXCEEDED Too Many Requests (HTTP 429)"), "{err}");
    assert_eq!(err.retry_after_hint(), Some(Duration::from_secs(2)), "Retry-After: ceil(retry_after_ms / 1000)");
    // The retry of the first, already delivered, is no new message and costs no token.
    sink.send(&ban()).await.unwrap();
    assert_eq!(service.messages().len(), 1);
}

#[tokio::test]
async fn room_ids_travel_percent_encoded() {
    let (service, standin) = homeserver();
    // Opaque ids: historic ones hold `/`, spaces and more; newer ones no `:server`.
    for room in
        ["!we ird/room?x=1&y#z:example.org", "!ü😀+%:example.org", "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"]
    {
        service.join(room);
        let sink = super::new("ops", Config { room_id: Some(room.into()), ..config(&standin) }).unwrap();
        sink.send(&ban()).await.unwrap();
        assert_eq!(service.messages().last().unwrap().room_id, room);
    }
    let paths: Vec<String> = standin.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths[0].starts_with(
            "/_matrix/client/v3/rooms/%21we%20ird%2Froom%3Fx%3D1%26y%23z%3Aexample.org/send/m.room.message/f2b-"
        ),
        "{}",
        paths[0]
    );
    assert!(paths[1].contains("/rooms/%21%C3%BC%F0%9F%98%80%2B%25%3Aexample.org/send/"), "{}", paths[1]);
}

#[tokio::test]
async fn closed_refused_slow_and_untrusted_connections() {
    // Nobody listening.
    let port = StandIn::reserve_port();
    let cfg = |url: String, timeout| Config {
        homeserver: Some(url),
        room_id: Some(ROOM.into()),
        token: Some(Secret::new(TOKEN)),
        timeout,
        ..Config::default()
    };
    let err = super::new("ops", cfg(format!("http://127.0.0.1:{port}"), None)).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err}");
    assert!(err.to_string().starts_with(&format!("http://127.0.0.1:{port}: ")), "{err}");
    assert_error_clean(&err);

    // A server that never answers.
    let (service, standin) = homeserver();
    service.delay(Duration::from_secs(3));
    let err = super::new("ops", cfg(standin.url(""), Some(0.3))).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_error_clean(&err);

    // A certificate nothing trusts: permanent.
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let addr = tls.addr;
    let err = super::new("ops", cfg(format!("https://127.0.0.1:{}", addr.port()), None))
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn the_token_is_in_no_debug_check_preview_or_config_error() {
    let (_service, standin) = homeserver();
    let sink = sink_for(&standin);
    assert_no_secret(&format!("{sink:?}"));
    assert_no_secret(&format!("{:?}", config(&standin)));
    assert!(sink.check().is_empty(), "{:?}", sink.check());
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    let txn = super::txn::Transactions::preview("event", &[&ban()]);
    assert!(
        preview.starts_with(&format!(
            "PUT {}/_matrix/client/v3/rooms/{ROOM_PATH}/send/m.room.message/{txn} with `Authorization: Bearer` and the access token (not shown), this JSON body:\n{{\n",
            standin.url("")
        )),
        "{preview}"
    );
    assert!(preview.contains("\"msgtype\": \"m.notice\""), "{preview}");
    // A start has no time: the preview shows where the nonce goes, and remembers nothing.
    let start = Event::jail_event(EventKind::Start, "sshd", "h");
    assert!(sink.preview(&start).unwrap().contains("-NONCE with"), "{}", sink.preview(&start).unwrap());

    // Config errors name the key and never the value.
    let err = |c: Config| super::new("ops", c).unwrap_err().to_string();
    let e = err(Config { token: Some(Secret::new(format!("{TOKEN}\nX: y"))), ..config(&standin) });
    assert!(e.contains("`token` holds a character a header cannot carry"), "{e}");
    assert_no_secret(&e);
    let e = err(Config { token: None, ..config(&standin) });
    assert!(e.contains("missing `token` (or `token_file`)"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, [TOKEN.as_bytes(), b"\xff"].concat()).unwrap();
    let e = err(Config { token: None, token_file: Some(file.clone()), ..config(&standin) });
    assert!(e.contains("not valid UTF-8"), "{e}");
    assert_no_secret(&e);
    let e = err(Config { token_file: Some(file), ..config(&standin) });
    assert!(e.contains("not both"), "{e}");
    let e = err(Config { token_file: Some(dir.path().join("missing")), token: None, ..config(&standin) });
    assert!(e.contains("cannot read `token_file` file"), "{e}");
    // A secret of the wrong type names the key only (through the config loader's serde).
    let parsed: Result<Config, _> =
        serde_json::from_value(json!({"homeserver": "https://m.example", "token": 123456789}));
    let e = parsed.unwrap_err().to_string();
    assert!(e.contains("`token` must be a string") && !e.contains("123456789"), "{e}");
}

#[tokio::test]
async fn config_errors_name_the_key_and_say_what_to_do() {
    let (_service, standin) = homeserver();
    let err = |c: Config| super::new("ops", c).unwrap_err().to_string();
    for (homeserver, why) in [
        (None, "missing `homeserver`"),
        (Some(""), "missing `homeserver`"),
        (
            Some("matrix.example.org"),
            "`homeserver` is not a valid URL: it has no scheme: write it as https://…: `matrix.example.org`",
        ),
        (Some("ftp://matrix.example.org"), "`homeserver` must be an https:// URL: `ftp://matrix.example.org`"),
        (Some("https://matrix.example.org/_matrix/client/v3"), "`homeserver` must be the base URL alone"),
        (Some("https://matrix.example.org/?x=1"), "`homeserver` must be the base URL alone"),
    ] {
        let e = err(Config { homeserver: homeserver.map(str::to_owned), ..config(&standin) });
        assert!(e.contains(why), "{homeserver:?}: {e} lacks {why}");
    }
    for (room, why) in [
        (None, "missing `room_id`"),
        (Some("  "), "missing `room_id`"),
        (Some("#security:example.org"), "`room_id` = `#security:example.org` is a room alias, not a room id: give the id, which starts with `!` (in Element: Room settings → Advanced → Internal room ID; or ask the homeserver: GET /_matrix/client/v3/directory/room/%23security%3Aexample.org)"),
        (Some("security"), "`room_id` = `security` is not a room id: it starts with `!`"),
        (Some("!"), "is not a room id"),
        (Some("!a\nb:example.org"), "`room_id` = `!a b:example.org` is not a room id"),
    ] {
        let e = err(Config { room_id: room.map(str::to_owned), ..config(&standin) });
        assert!(e.contains(why), "{room:?}: {e} lacks {why}");
    }
    let e = err(Config { timeout: Some(0.0), ..config(&standin) });
    assert!(e.contains("`timeout` = 0"), "{e}");
    // Unknown keys are refused (a typo is not silently ignored).
    let parsed: Result<Config, _> = serde_json::from_value(json!({"homeserver": "https://m.example", "room": "!x"}));
    assert!(parsed.unwrap_err().to_string().contains("unknown field `room`"));
}

#[tokio::test]
async fn check_warns_about_a_readable_token_file_and_plain_http() {
    use std::os::unix::fs::PermissionsExt;
    let (_service, standin) = homeserver();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sink = super::new("ops", Config { token: None, token_file: Some(file.clone()), ..config(&standin) }).unwrap();
    let warnings = sink.check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("mode 644"), "{warnings:?}");
    assert_no_secret(&warnings[0]);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink.check().is_empty());

    let warns = |url: &str| {
        let lines = super::new("ops", Config { homeserver: Some(url.into()), ..config(&standin) }).unwrap().check();
        lines.iter().for_each(|l| assert_no_secret(l));
        lines.iter().any(|l| l.contains("plain http://") && l.contains("the access token"))
    };
    assert!(warns("http://matrix.example.org"));
    assert!(warns("http://192.0.2.10:8008"));
    assert!(!warns("https://matrix.example.org"));
    assert!(!warns("http://127.0.0.1:8008"));
    assert!(!warns("http://localhost:8008"));
}

#[test]
fn pacing_follows_synapse_s_default_rate() {
    let standin = StandIn::start(Arc::new(|_: &f2b_notify_standins::Request, _| Reply::new(200, "{}")));
    let sink = sink_for(&standin);
    assert_eq!(sink.min_interval(), Duration::from_secs(5));
    assert_eq!(sink.kind(), "matrix");
    assert_eq!(sink.name(), "ops");
}

// --- Conversation: references, unbans in their ban's thread, storms edited in place. ---

fn unban() -> Event {
    unban_at(1_700_000_600.25)
}

/// An unban at `time`: Fail2Ban's time tells two unbans apart (and their transaction ids).
fn unban_at(time: f64) -> Event {
    let mut e = Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example");
    e.time = Some(time);
    e
}

fn storm(n: usize) -> Digest {
    Digest::new(
        (0..n)
            .map(|i| {
                let mut e = Event::target_event(EventKind::Ban, "sshd", format!("198.18.{}.{}", i / 256, i % 256), "h");
                e.time = Some(1_700_000_000.0 + i as f64);
                e
            })
            .collect(),
    )
}

/// Whether `text` names `ip` on its own (198.18.0.1 is not in 198.18.0.10).
fn names(text: &str, ip: &str) -> usize {
    text.match_indices(ip).filter(|(at, _)| !text[at + ip.len()..].starts_with(|c: char| c.is_ascii_digit())).count()
}

#[tokio::test]
async fn a_ban_returns_its_event_id_and_its_unban_is_in_its_thread() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let ban_ref = sink.post(&ban(), None).await.unwrap().expect("a reference");
    assert_eq!(ban_ref.as_str(), service.messages()[0].event_id);
    let reply_ref = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect("the reply's reference");
    assert_ne!(reply_ref, ban_ref);
    let reply = service.shown_event(reply_ref.as_str()).unwrap();
    assert_eq!(reply.thread_root.as_deref(), Some(ban_ref.as_str()));
    assert_eq!(reply.in_reply_to.as_deref(), Some(ban_ref.as_str()));
    assert_eq!(
        reply.content["m.relates_to"],
        json!({
            "rel_type": "m.thread",
            "event_id": ban_ref.as_str(),
            "is_falling_back": true,
            "m.in_reply_to": { "event_id": ban_ref.as_str() },
        })
    );
    // Otherwise the unban's own content: a notice that mentions nobody.
    assert_eq!((reply.content["msgtype"].as_str(), &reply.content["m.mentions"]), (Some("m.notice"), &json!({})));
    assert!(reply.body().starts_with("Fail2Ban (sshd) unbanned IP 203.0.113.7"), "{}", reply.body());
    assert_eq!(service.counts(), (2, 0));
}

#[tokio::test]
async fn an_unban_whose_ban_the_homeserver_forgot_is_posted_on_its_own() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    service.purge(ban_ref.as_str());
    let r = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect("posted on its own");
    let shown = service.shown_event(r.as_str()).unwrap();
    assert!(shown.thread_root.is_none() && shown.content.get("m.relates_to").is_none(), "{:?}", shown.content);
    assert_eq!(standin.requests().len(), 3, "the ban, the refused reply, the unban on its own");
    // A reference that is no event id is no thread: posted at once, on its own.
    for (i, bad) in ["C1:1.2", "$a b", "$"].into_iter().enumerate() {
        let r = sink.post(&unban_at(1_700_001_000.0 + i as f64), MessageRef::new(bad).as_ref()).await.unwrap().unwrap();
        assert!(service.shown_event(r.as_str()).unwrap().thread_root.is_none(), "{bad}");
    }
    // Other refusals of a reply are what they always were: not sent again without it.
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    service.leave(ROOM);
    let before = standin.requests().len();
    let err = sink.post(&unban_at(1_700_002_000.0), Some(&ban_ref)).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("M_FORBIDDEN"), "{err}");
    assert_eq!(standin.requests().len(), before + 1);
}

/// A storm is one message: posted once, then edited twice; every edit a new event replacing
/// the original, with its own transaction id.
#[tokio::test]
async fn a_storm_is_one_message_edited_in_place() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let first = sink.post_digest(&storm(10), None).await.unwrap().expect("a reference");
    let second = sink.post_digest(&storm(60), Some(&first)).await.unwrap();
    let third = sink.post_digest(&storm(150), second.as_ref()).await.unwrap();
    assert_eq!((second.as_ref(), third.as_ref()), (Some(&first), Some(&first)), "edits name the original");
    assert_eq!(service.counts(), (1, 2));
    let shown = service.shown();
    assert_eq!(shown.len(), 1);
    assert_eq!((shown[0].event_id.as_str(), shown[0].edits), (first.as_str(), 2));
    let body = shown[0].body();
    assert!(body.starts_with("Fail2Ban on h: 150 bans in 1 jail"), "{body}");
    for i in 0..150 {
        let ip = format!("198.18.{}.{}", i / 256, i % 256);
        assert_eq!(names(body, &ip), 1, "{ip}");
        let html = shown[0].content["formatted_body"].as_str().unwrap();
        assert_eq!(names(html, &ip), 1, "{ip}");
    }
    // The edits as the spec has them: the fallback `* ` and the new content, which holds no
    // relation of its own; mentions off in both.
    let messages = service.messages();
    for edit in &messages[1..] {
        let c = &edit.content;
        assert_eq!(c["m.relates_to"], json!({ "rel_type": "m.replace", "event_id": first.as_str() }));
        assert_eq!(c["body"].as_str().unwrap(), format!("* {}", c["m.new_content"]["body"].as_str().unwrap()));
        assert!(c["formatted_body"].as_str().unwrap().starts_with("* <p><b>Fail2Ban on h: "));
        assert!(c["m.new_content"].get("m.relates_to").is_none());
        assert_eq!((&c["m.mentions"], &c["m.new_content"]["m.mentions"]), (&json!({}), &json!({})));
        assert_eq!(c["msgtype"], "m.notice");
    }
    // Three sends, three transaction ids.
    let txns: Vec<String> = standin.requests().iter().map(|r| txn_of(&r.path).to_owned()).collect();
    assert_eq!(txns.len(), 3);
    assert!(txns[0] != txns[1] && txns[1] != txns[2] && txns[0] != txns[2], "{txns:?}");
}

/// The edit's transaction id comes from what it holds, like a message's: a retry after a
/// lost answer is recognised; the same events edited into another message are another edit.
#[tokio::test]
async fn an_edit_whose_answer_was_lost_is_in_the_room_once() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let first = sink.post_digest(&storm(5), None).await.unwrap().unwrap();
    service.force([Forced::Lose]);
    assert!(sink.post_digest(&storm(8), Some(&first)).await.unwrap_err().is_transient());
    assert_eq!(service.counts(), (1, 1), "the homeserver stored the edit");
    // Retried by a new process (a worker restarted): the same transaction.
    assert_eq!(sink_for(&standin).post_digest(&storm(8), Some(&first)).await.unwrap(), Some(first.clone()));
    assert_eq!(service.counts(), (1, 1));
    let requests = standin.requests();
    assert_eq!(requests[1].path, requests[2].path);
    // The same events into another storm's message: another edit, another id.
    let other = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    sink.post_digest(&storm(8), Some(&other)).await.unwrap();
    assert_eq!(service.counts(), (2, 2));
    let last = standin.requests().pop().unwrap();
    assert_ne!(txn_of(&last.path), txn_of(&requests[1].path));
    assert_eq!(service.shown_event(other.as_str()).unwrap().edits, 1);
    assert_eq!(service.shown_event(first.as_str()).unwrap().edits, 1);
}

#[tokio::test]
async fn an_edit_of_a_message_the_homeserver_forgot_posts_a_new_one() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let first = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    service.purge(first.as_str());
    let second = sink.post_digest(&storm(20), Some(&first)).await.unwrap().expect("a new message");
    assert_ne!(second, first);
    let shown = service.shown_event(second.as_str()).unwrap();
    assert_eq!((shown.edits, names(shown.body(), "198.18.0.19")), (0, 1));
    assert!(shown.content.get("m.relates_to").is_none());
    // Other failures are what they always were: no new message in the edit's place.
    for (reply, transient) in [
        (Reply::json(429, &json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2000})), true),
        (Reply::json(403, &json!({"errcode": "M_FORBIDDEN", "error": "not in room"})), false),
        (Reply::json(400, &json!({"errcode": "M_BAD_JSON", "error": "bad"})), false),
        (Reply::new(502, "<html>Bad Gateway</html>"), true),
    ] {
        service.force([Forced::Reply(reply)]);
        let err = sink.post_digest(&storm(30), Some(&second)).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err}");
        assert_error_clean(&err);
    }
    // The purged message went with the purge: the new one is all the room holds.
    assert_eq!(service.counts(), (1, 0));
    // A reference that is no event id: a new message, no edit tried.
    let before = standin.requests().len();
    let r = sink.post_digest(&storm(3), MessageRef::new("C1:1.2").as_ref()).await.unwrap().unwrap();
    assert_eq!((standin.requests().len(), service.shown_event(r.as_str()).unwrap().edits), (before + 1, 0));
}

/// An edit holds the digest twice (the fallback and the new content): a storm near the event
/// limit keeps its whole list in the new content and a short fallback, within the limit.
#[tokio::test]
async fn a_large_storm_edit_stays_within_the_event_limit() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let first = sink.post_digest(&storm(100), None).await.unwrap().unwrap();
    sink.post_digest(&storm(5000), Some(&first)).await.unwrap();
    let edit = service.messages().pop().unwrap();
    assert!(edit.is_edit());
    assert!(json_size(&edit.content) <= MAX_CONTENT, "{}", json_size(&edit.content));
    assert_eq!(edit.content["body"], "* Fail2Ban on h: 5000 bans in 1 jail");
    let shown = service.shown_event(first.as_str()).unwrap();
    assert_eq!(shown.content, edit.content["m.new_content"]);
    assert!(shown.body().contains("more address(es) not listed here"), "{:.200}", shown.body());
    // The first ones are listed (about 2000 fit), and the rest counted exactly.
    let listed = (0..5000).filter(|i| names(shown.body(), &format!("198.18.{}.{}", i / 256, i % 256)) == 1).count();
    assert!(listed > 1500, "{listed}");
    assert!(shown.body().contains(&format!("… and {} more address(es) not listed here", 5000 - listed)));
}

/// A server's answer is not trusted: an event id of the wrong shape is no reference, and the
/// message, which the homeserver stored, is no failure.
#[tokio::test]
async fn hostile_answers_give_no_reference_not_a_failure() {
    let (service, standin) = homeserver();
    let sink = sink_for(&standin);
    let huge = format!("${}", "A".repeat(100_000));
    for id in [json!("$abc\nX-Injected: 1"), json!(huge), json!("no-dollar"), json!("$a b"), json!(7)] {
        service.force([Forced::Reply(Reply::json(200, &json!({ "event_id": id })))]);
        let got = sink.post(&ban(), None).await;
        if id.is_string() {
            assert_eq!(got.unwrap(), None, "{:.60}", id.to_string());
        } else {
            assert!(got.is_err(), "an event_id that is no string is no homeserver's answer");
        }
    }
    // An edit's answer names a new event: the reference stays the original's.
    let first = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    service.force([Forced::Reply(Reply::json(200, &json!({ "event_id": "$x\ny" })))]);
    assert_eq!(sink.post_digest(&storm(3), Some(&first)).await.unwrap(), Some(first));
}

#[tokio::test]
async fn the_token_shows_in_no_conversation_error() {
    let (_service, standin) = homeserver();
    let sink = sink_for(&standin);
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    let wrong =
        super::new("ops", Config { token: Some(Secret::new("syt_SECRET_but_wrong")), ..config(&standin) }).unwrap();
    let errors =
        [wrong.post(&unban(), Some(&r)).await.unwrap_err(), wrong.post_digest(&storm(3), Some(&r)).await.unwrap_err()];
    for e in &errors {
        assert!(e.to_string().contains("M_UNKNOWN_TOKEN"), "{e}");
        assert_error_clean(e);
    }
    assert_no_secret(&format!("{wrong:?}"));
    // The token travels in the header only.
    for req in standin.requests() {
        assert!(!req.path.contains("SECRET") && !req.body.contains("SECRET"), "{}", req.path);
    }
}
