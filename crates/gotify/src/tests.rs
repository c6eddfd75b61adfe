//! The Gotify sink against the Gotify stand-in (`f2b_notify_standins::gotify`, the service's
//! documented contract) on a loopback port: the exact request per event, digest and alert;
//! hostile text arriving inert and within the cap; every failure class; and no token in any
//! error, `Debug`, `check` line or preview, nor ever in a URL.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::gotify::{self as standin, error, Service};
use f2b_notify_standins::{Reply, Request, StandIn};
use figment::providers::{Format as _, Toml};
use figment::Figment;
use serde_json::{json, Value};

use super::*;

/// The test application token: it must never show up in any error, Debug or check line.
const TOKEN: &str = "ASECRETtoken42";

/// A stand-in behind a proxy prefix expecting the token, and a sink configured with it.
fn setup() -> (Arc<Service>, StandIn, GotifySink) {
    let service = Service::with_prefix(TOKEN, "/gotify");
    let server = StandIn::start(service.responder());
    let sink = sink(with_token(service.base_url(&server)));
    (service, server, sink)
}

fn with_token(url: String) -> Config {
    Config { url: Some(url), token: Some(Secret::new(TOKEN)), ..Config::default() }
}

fn sink(config: Config) -> GotifySink {
    super::new("phone", config).unwrap()
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.user = Some("root".into());
    e.matches = Some("sshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again".into());
    e
}

fn bodies(server: &StandIn) -> Vec<Value> {
    server.requests().iter().map(Request::json).collect()
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET"), "the token leaked: {text}");
}

fn assert_error_clean(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

fn markdown() -> Value {
    json!({"client::display": {"contentType": "text/markdown"}})
}

#[tokio::test]
async fn exact_request_for_each_event_kind() {
    let (service, server, sink) = setup();
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        // POST to the prefix's /message, the token in X-Gotify-Key only: no query, no
        // Authorization, nothing of it in the body.
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/gotify/message"));
        assert_eq!(r.header("x-gotify-key"), Some(TOKEN));
        assert!(r.authorization.is_none() && !r.path.contains('?') && !r.body.contains(TOKEN));
        assert_eq!(r.header("content-type"), Some("application/json"));
        // No header carries anything of the event.
        for (name, value) in &r.headers {
            assert!(!value.contains("sshd") && !value.contains("203.0.113.7"), "{name}: {value}");
        }
    }
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\n- **Jail:** sshd\n- **Address:** `203.0.113.7`\n- **Failures:** 5\n- **Ban time:** 10 min\n- **Host:** host.example\n- **User:** `root`\n\n**Matched log lines:**\n```\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again\n```",
            "priority": 8,
            "extras": markdown(),
        })
    );
    assert_eq!(
        got[1],
        json!({
            "title": "Fail2Ban (sshd) unban on host.example",
            "message": "Fail2Ban (sshd) unbanned IP 2001:db8::1\n\n- **Jail:** sshd\n- **Address:** `2001:db8::1`\n- **Host:** host.example",
            "priority": 4,
            "extras": markdown(),
        })
    );
    let jail = |what: &str| {
        json!({
            "title": format!("Fail2Ban (sshd) jail {what} on host.example"),
            "message": format!("Fail2Ban (sshd) jail {what} on host.example\n\n- **Jail:** sshd\n- **Host:** host.example"),
            "priority": 2,
            "extras": markdown(),
        })
    };
    assert_eq!(got[2], jail("started"));
    assert_eq!(got[3], jail("stopped"));
    // What Gotify stored: the same, with its id, the application and the date.
    let stored = service.accepted();
    assert_eq!(stored.len(), 4);
    assert_eq!((stored[0]["id"].as_u64(), stored[0]["appid"].as_u64()), (Some(1), Some(standin::APP_ID)));
    assert_eq!(stored[0]["title"], "Fail2Ban (sshd) ban on host.example");
    assert_eq!(stored[0]["priority"], 8);
    assert_eq!(stored[0]["extras"], markdown());
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_and_where_a_digests_bans_come_from() {
    for markdown in [true, false] {
        let (service, server, _) = setup();
        let mut config = with_token(service.base_url(&server));
        config.markdown = markdown;
        let sink = sink(config);
        let mut e = enriched(ban());
        e.matches = None;
        sink.send(&e).await.unwrap();
        let mut events: Vec<Event> = (1..=3)
            .map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("203.0.113.{i}"), "h")))
            .collect();
        events[2].context.asn = Some(64501);
        events[2].context.as_org = Some("Org *x* [a](http://x)".into());
        events[2].context.country = Some("- <b>Evil</b>".into());
        events[2].context.country_code = Some("EV".into());
        sink.send_digest(&Digest::new(events)).await.unwrap();
        let got = bodies(&server);
        let (event, digest) = (got[0]["message"].as_str().unwrap(), got[1]["message"].as_str().unwrap());
        if markdown {
            assert_eq!(
                event,
                "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time\n\n- **Jail:** sshd\n\
                 - **Address:** `203.0.113.7`\n- **Failures:** 5\n- **Ban time:** 10 min\n- **Host:** host.example\n\
                 - **User:** `root`\n- **Host name:** `h.example` (unconfirmed)\n- **Location:** Tokyo, Japan (JP)\n\
                 - **Network:** AS64500 Example Net\n- **Repeat:** 4th ban"
            );
            assert_eq!(
                digest,
                "**Banned:** 3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 Org \\*x\\* \\[a\\](http://x); \
                 countries: Japan 2, - \\<b\\>Evil\\</b\\> 1\n\n**sshd**:\n- banned 3: 203.0.113.1, 203.0.113.2, 203.0.113.3"
            );
        } else {
            assert_eq!(
                event,
                "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time\n\nJail: sshd\n\
                 Address: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\n\
                 Host name: h.example (unconfirmed)\nLocation: Tokyo, Japan (JP)\nNetwork: AS64500 Example Net\n\
                 Repeat: 4th ban"
            );
            assert_eq!(
                digest,
                "Banned: 3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 Org *x* [a](http://x); \
                 countries: Japan 2, - <b>Evil</b> 1\nsshd:\n  banned 3: 203.0.113.1, 203.0.113.2, 203.0.113.3"
            );
        }
        // The title stays the host's, the jail's and the event's: no enrichment in it.
        assert_eq!(got[0]["title"], "Fail2Ban (sshd) ban on host.example");
        assert_eq!(got[1]["title"], "Fail2Ban on h: 3 bans in 1 jail");
    }
}

#[tokio::test]
async fn options_reach_the_body() {
    let service = Service::new(TOKEN);
    let server = StandIn::start(service.responder());
    // The server at the root, a trailing slash, plain text, priorities, a template.
    let config: Config = load(&format!(
        "url = \"{}/\"\ntoken = \"{TOKEN}\"\nmarkdown = false\npriority = {{ ban = 10, start = 0 }}\n[templates]\nban = \"{{{{ jail }}}}: {{{{ id }}}} is out\"\n",
        server.url("")
    ))
    .unwrap();
    let sink = sink(config);
    sink.send(&ban()).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Stop, "sshd", "h")).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "h")).await.unwrap();
    assert_eq!(server.requests()[0].path, "/message");
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "sshd: 203.0.113.7 is out\n\nJail: sshd\nAddress: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\n\nMatched log lines:\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again",
            "priority": 10,
            "extras": {"client::display": {"contentType": "text/plain"}},
        })
    );
    assert_eq!((got[1]["priority"].as_u64(), got[2]["priority"].as_u64()), (Some(2), Some(0)));
    assert_eq!(service.accepted()[2]["priority"], 0);
    // One number for every event.
    let c = load("priority = 5").unwrap();
    assert!(EventKind::ALL.iter().all(|&k| c.priority.get(k).get() == 5));
}

#[tokio::test]
async fn the_token_never_travels_in_the_query() {
    let (service, server, sink) = setup();
    sink.send(&ban()).await.unwrap();
    sink.send_digest(&Digest::new(vec![ban(), ban()])).await.unwrap();
    sink.send_alert(&Alert { subject: "s".into(), text: "t".into(), recovered: false }).await.unwrap();
    assert_eq!(service.accepted().len(), 3);
    for r in server.requests() {
        assert_eq!(r.path, "/gotify/message");
        assert!(r.query("token").is_none());
        assert_eq!(r.header("x-gotify-key"), Some(TOKEN));
    }
    // The stand-in would take the query too (Gotify does): the sink is what keeps it out.
    let form = Request {
        at: std::time::Instant::now(),
        method: "POST".into(),
        path: format!("/gotify/message?token={TOKEN}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"message":"m"}"#.into(),
        authorization: None,
    };
    assert_eq!(service.answer(&form).status, 200);
    // And a token in `url` is refused, without being shown.
    let err = super::new("phone", with_token(format!("https://gotify.example.com/?token={TOKEN}"))).unwrap_err();
    assert!(err.to_string().contains("must not have a query"), "{err}");
    assert_no_secret(&err.to_string());
}

#[tokio::test]
async fn digest_names_every_address_that_fits_and_counts_the_rest_exactly() {
    let (service, server, sink) = setup();
    // A small one: everything listed, nothing counted.
    let small = Digest::new(vec![
        Event::jail_event(EventKind::Start, "web", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.1", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "not-an-ip*", "host.example"),
        Event::target_event(EventKind::Unban, "sshd", "203.0.113.1", "host.example"),
    ]);
    sink.send_digest(&small).await.unwrap();
    assert_eq!(
        bodies(&server)[0],
        json!({
            "title": "Fail2Ban on host.example: 2 bans, 1 unban, 1 jail start in 2 jails",
            "message": "**web**:\n- jail started\n\n**sshd**:\n- banned 2: 203.0.113.1, `not-an-ip*`\n- unbanned 1: 203.0.113.1",
            "priority": 8,
            "extras": markdown(),
        })
    );
    // The router's largest batch (500) of IPv4 addresses: all listed.
    let events: Vec<Event> = (0..500)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.51.{}.{}", i / 256, i % 256), "h"))
        .collect();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let text = bodies(&server)[1]["message"].as_str().unwrap().to_owned();
    assert!(!text.contains("more not listed") && text.contains("198.51.1.243"), "{text:.100}");
    // A storm of 1000 bans and 200 unbans in one message of at most 16 KB.
    let mut events: Vec<Event> = (0..1000)
        .map(|i| {
            Event::target_event(
                EventKind::Ban,
                "sshd",
                format!("2001:db8:aaaa:bbbb:cccc:dddd:{:x}:1", i),
                "host.example",
            )
        })
        .collect();
    events.extend((0..200).map(|i| Event::target_event(EventKind::Unban, "nginx", format!("192.0.2.{i}"), "h")));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    assert_eq!(server.requests().len(), 3, "one message per digest");
    let body = &bodies(&server)[2];
    assert_eq!(body["title"], "Fail2Ban on host.example: 1000 bans, 200 unbans in 2 jails");
    let text = body["message"].as_str().unwrap();
    assert!(text.len() <= MAX_MESSAGE, "{}", text.len());
    assert!(text.starts_with("**sshd**:\n- banned 1000: 2001:db8:aaaa:bbbb:cccc:dddd:0:1, "), "{text:.80}");
    let listed: Vec<&str> =
        text.lines().filter_map(|l| l.split_once(": ").map(|(_, ids)| ids)).flat_map(|ids| ids.split(", ")).collect();
    // In order, none twice, none made up.
    for (i, id) in listed.iter().enumerate() {
        assert_eq!(*id, format!("2001:db8:aaaa:bbbb:cccc:dddd:{:x}:1", i));
    }
    let last = text.lines().last().unwrap();
    assert_eq!(last, format!("… and {} more not listed (the 16 KB message cap)", 1200 - listed.len()));
    assert!(listed.len() > 300, "{}", listed.len());
    assert_eq!(service.accepted()[2]["message"].as_str().unwrap(), text);
    // Plain text: the same layout without Markdown.
    let mut config = with_token(service.base_url(&server));
    config.markdown = false;
    super::new("phone", config).unwrap().send_digest(&small).await.unwrap();
    assert_eq!(
        bodies(&server)[3]["message"],
        "web:\n  jail started\nsshd:\n  banned 2: 203.0.113.1, not-an-ip*\n  unbanned 1: 203.0.113.1"
    );
}

#[tokio::test]
async fn alerts_are_8_and_recoveries_4() {
    let (_service, server, sink) = setup();
    let mut alert = Alert {
        subject: "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07".into(),
        text: "last error: invalid_auth\r\n3 event(s) waiting\n[a](http://x)".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    alert.recovered = true;
    alert.subject = "f2b-notify on h: sink `api` recovered".into();
    alert.text = String::new();
    sink.send_alert(&alert).await.unwrap();
    assert!(sink.carries_alerts());
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "title": "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07",
            "message": "last error: invalid\\_auth  \n3 event(s) waiting  \n\\[a\\](http://x)",
            "priority": 8,
            "extras": markdown(),
        })
    );
    // An empty text is never sent empty (Gotify refuses that).
    assert_eq!((got[1]["priority"].as_u64(), got[1]["message"].as_str()), (Some(4), Some("(no details)")));
}

/// Text an attacker controls (user, matched lines, even the id), every trick at once.
const HOSTILE: &[&str] = &[
    "<!channel>",
    "@everyone",
    "@here",
    "<b>x</b>",
    "*_~",
    "`code` ``` ````",
    "[a](http://x)",
    "![img](http://x/i.png)",
    "\r\nX-Header: y",
    "\u{202e}evil\u{fffd}\u{feff}\u{0}\u{1b}[31m",
    "\"quoted\" \\back\\",
    "- list\n# heading\n1. one\n---",
];

fn hostile_event(jail: &str, host: &str) -> Event {
    let all = HOSTILE.join(" ");
    let mut e = Event::target_event(EventKind::Ban, jail, format!("198.51.100.1\r\nFAKE-ID: y {all}"), host);
    e.user = Some(format!("{all}\r\nFAKE-USER: y\n{}", "u".repeat(100_000)));
    let mut lines: Vec<String> = HOSTILE.iter().map(|s| format!("Failed password for {s}")).collect();
    lines.push("x".repeat(100_000));
    lines.push(all.clone());
    e.matches = Some(lines.join("\n"));
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context = Context {
        hostname: Some(format!("{all}\r\nFAKE-HOSTNAME: y")),
        hostname_confirmed: Some(false),
        country: Some(format!("{all}\r\nFAKE-COUNTRY: y")),
        country_code: Some("XX".into()),
        city: None,
        asn: Some(64500),
        as_org: Some(format!("{all}\r\nFAKE-ORG: y")),
    };
    e
}

#[tokio::test]
async fn hostile_text_arrives_inert_and_within_the_cap() {
    for markdown in [true, false] {
        let (service, server, _) = setup();
        let mut config = with_token(service.base_url(&server));
        config.markdown = markdown;
        // A template that puts the matched lines (at the start of lines) and the user into
        // the lead too.
        config.templates = Templates { ban: Some("{{ matches }} {{ user }}".into()), ..Templates::default() };
        let sink = sink(config);
        let e = hostile_event("ssh-ü", "höst.example");
        sink.send(&e).await.unwrap_or_else(|err| panic!("markdown={markdown}: {err}"));
        sink.send_digest(&Digest::new(vec![e.clone(), e.clone()])).await.unwrap();
        let requests = server.requests();
        assert_eq!(service.accepted().len(), 2, "markdown={markdown}");
        for r in &requests {
            for (name, value) in &r.headers {
                assert!(!name.starts_with("x-header") && !value.contains("X-Header"), "{name}: {value}");
            }
            let body = r.json();
            let title = body["title"].as_str().unwrap();
            // UTF-8 host and jail reach the title intact; no attacker text does.
            assert!(title.starts_with("Fail2Ban") && title.contains("höst.example"), "{title}");
            assert!(!title.contains("198.51") && !title.contains('<') && !title.contains('@'), "{title}");
            let message = body["message"].as_str().unwrap();
            assert!(message.len() <= MAX_MESSAGE, "{}", message.len());
            // The CR/LF in the id and user faked no line; no carriage return is left at all.
            assert!(!message.contains('\r') && !message.lines().any(|l| l.starts_with("FAKE")), "{message:.300}");
            assert!(!message.contains('\u{202e}') && message.contains("\u{fffd}evil"), "{message:.300}");
        }
        let one = requests[0].json()["message"].as_str().unwrap().to_owned();
        assert!(one.contains("[cut "), "the 100 KB user is cut visibly: {one:.200}");
        let digest = requests[1].json()["message"].as_str().unwrap().to_owned();
        assert!(digest.contains("Banned:") && digest.contains("from AS64500 "), "{digest:.400}");
        for label in ["Host name:", "Location:", "Network:"] {
            assert!(one.contains(label), "{label} missing: {one:.2000}");
        }
        if markdown {
            // Nothing outside code can make a link, an image, HTML, a heading, a list or
            // emphasis.
            for text in [&one, &digest] {
                let outside_code = strip_code(text);
                for bad in ["[a](", "![img](", "<b>", "*_~", "<!channel>"] {
                    assert!(!outside_code.contains(bad), "{bad} in markdown: {outside_code:.400}");
                }
                for line in outside_code.lines() {
                    let t = line.trim_start();
                    assert!(
                        !(t.starts_with("# ")
                            || t.starts_with("1. ")
                            || t.starts_with("---")
                            || t.starts_with("- list")),
                        "{line}"
                    );
                }
                assert!(outside_code.contains("\\[a\\](http://x)"), "{outside_code:.400}");
            }
            // The matched lines, in their fenced block, arrive as they were (flattened).
            assert!(one.contains("\nFailed password for [a](http://x)\n"), "{one:.400}");
        } else {
            // Plain text: shown as it is, flattened to lines.
            assert!(one.contains("Failed password for [a](http://x)"), "{one:.400}");
            assert!(one.contains("<b>x</b>"), "{one:.400}");
        }
    }
}

/// The Markdown text outside code spans and fenced blocks (a small CommonMark subset: fences
/// of three or more backticks on their own line, spans of matching backtick runs).
fn strip_code(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let t = line.trim_start();
        if let Some(f) = &fence {
            if t.starts_with(f.as_str()) && t.trim_end().chars().all(|c| c == '`') && t.trim_end().len() >= f.len() {
                fence = None;
            }
            continue;
        }
        if t.starts_with("```") {
            fence = Some(t.chars().take_while(|&c| c == '`').collect());
            continue;
        }
        // Spans: a run of n backticks up to the next run of exactly n.
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' && i + 1 < chars.len() {
                out.push(chars[i]);
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if chars[i] == '`' {
                let n = chars[i..].iter().take_while(|&&c| c == '`').count();
                let mut j = i + n;
                let mut closed = None;
                while j < chars.len() {
                    let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                    if m == n {
                        closed = Some(j + m);
                        break;
                    }
                    j += m.max(1);
                }
                match closed {
                    Some(end) => i = end,
                    None => {
                        out.extend(&chars[i..i + n]);
                        i += n;
                    }
                }
                continue;
            }
            out.push(chars[i]);
            i += 1;
        }
        out.push('\n');
    }
    out
}

/// An answer and how it must be classified: the reply, transient, the wait asked for, text
/// the error must carry.
type FailureCase = (Reply, bool, Option<Duration>, &'static str);

#[tokio::test]
async fn every_failure_class() {
    let s = Duration::from_secs;
    let cases: Vec<FailureCase> = vec![
        (
            standin::unauthorized(),
            false,
            None,
            "Unauthorized: you need to provide a valid access token or user credentials to access this api (HTTP 401): Gotify does not know this application token",
        ),
        (standin::forbidden(), false, None, "Forbidden: you are not allowed to access this api (HTTP 403): "),
        (error(403, "local authentication is disabled"), false, None, "local authentication is disabled (HTTP 403)"),
        (error(400, "Field 'message' is required"), false, None, "Field 'message' is required (HTTP 400): Gotify refused"),
        (error(404, "page not found"), false, None, "page not found (HTTP 404): there is no Gotify message endpoint"),
        (standin::proxy_too_large(), false, None, "(HTTP 413): the request was over a body size limit"),
        (standin::proxy_rate_limited(7), true, Some(s(7)), "(HTTP 429): something in front of Gotify"),
        (Reply::new(429, "slow down"), true, None, "slow down (HTTP 429)"),
        (error(500, "database is locked"), true, None, "Internal Server Error: database is locked (HTTP 500)"),
        (Reply::new(502, "<html>bad gateway</html>"), true, None, "<html>bad gateway</html> (HTTP 502)"),
        (Reply::new(503, "").header("Retry-After", "9"), true, Some(s(9)), "no error text (HTTP 503)"),
        (Reply::new(501, ""), false, None, "HTTP 501"),
        (Reply::new(200, "<html>captive portal</html>"), false, None, "without Gotify's message JSON"),
        (Reply::new(200, "{\"id\":\"x\"}"), false, None, "without Gotify's message JSON"),
        (Reply::new(307, "").header("Location", "/gotify/message"), false, None, "the server redirects"),
        (Reply::hang_up(), true, None, "connection"),
    ];
    let (service, _server, sink) = setup();
    for (reply, transient, wait, text) in cases {
        let shown = format!("{} {}", reply.status, reply.body.trim());
        service.force([reply]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{shown}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait, "{shown}");
        assert!(err.to_string().contains(text), "{shown}: {err} lacks {text}");
        assert_error_clean(&err);
    }
    sink.send(&ban()).await.unwrap();
    assert_eq!(sink.min_interval(), Duration::from_secs(1));
}

#[tokio::test]
async fn the_stand_in_refuses_what_gotify_refuses() {
    // A wrong token: 401, permanent, what to do.
    let service = Service::with_prefix("Athe_right_one", "/gotify");
    let server = StandIn::start(service.responder());
    let wrong = sink(with_token(service.base_url(&server)));
    let err = wrong.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("Unauthorized: you need to provide"), "{err}");
    assert!(err.to_string().contains("Apps page"), "{err}");
    assert_error_clean(&err);
    // A client token: Gotify knows it, but it cannot send: 401 too.
    service.add_client_token(TOKEN);
    assert!(wrong.send(&ban()).await.unwrap_err().to_string().contains("(HTTP 401)"));
    // The wrong path prefix (the proxy serves Gotify under /gotify): 404, permanent.
    let err = sink(with_token(server.url(""))).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("Not Found: page not found (HTTP 404): "), "{err}");
    // A proxy's body cap under the message: 413, permanent.
    let (service, _server, sink) = setup();
    service.set_body_limit(Some(200));
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("413 Request Entity Too Large"), "{err}");
    // Its usual 1 MB takes any message.
    service.set_body_limit(Some(1 << 20));
    sink.send(&hostile_event("sshd", "h")).await.unwrap();
    assert_eq!(service.accepted().len(), 1);
}

#[tokio::test]
async fn timeouts_closed_and_refused_connections_are_transient() {
    let service = Service::new(TOKEN);
    let slow = Arc::clone(&service);
    let server = StandIn::start(Arc::new(move |r: &Request, _| {
        std::thread::sleep(Duration::from_millis(1500));
        slow.answer(r)
    }));
    let mut config = with_token(server.url(""));
    config.timeout = Some(0.3);
    let err = sink(config).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_error_clean(&err);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let err = sink(with_token(format!("http://{addr}"))).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_clean(&err);
    task.abort();
    let _ = task.await;

    let port = StandIn::reserve_port();
    let err = sink(with_token(format!("http://127.0.0.1:{port}"))).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().starts_with("cannot connect"), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let addr = tls.addr;
    let err = sink(with_token(format!("https://127.0.0.1:{}", addr.port()))).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn preview_shows_the_request_without_the_token() {
    let (service, server, sink) = setup();
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    let base = service.base_url(&server);
    assert!(
        preview.starts_with(&format!(
            "POST to {base}/message (Gotify at {base}) with `X-Gotify-Key` and the application token (not shown), this JSON body:\n{{"
        )),
        "{preview}"
    );
    // In the order people read it.
    assert!(
        preview.contains(
            "{\n  \"title\": \"Fail2Ban (sshd) ban on host.example\",\n  \"message\": \"Fail2Ban (sshd) banned IP 203.0.113.7"
        ),
        "{preview}"
    );
    assert!(
        preview.contains(
            "\"priority\": 8,\n  \"extras\": {\n    \"client::display\": {\n      \"contentType\": \"text/markdown\""
        ),
        "{preview}"
    );
    // The preview sent nothing.
    assert!(server.requests().is_empty());
}

fn load(toml: &str) -> Result<Config, String> {
    Figment::new().merge(Toml::string(toml)).extract::<Config>().map_err(|e| e.to_string())
}

#[test]
fn config_defaults_and_value_checks() {
    let c = load("url = \"https://gotify.example.com\"").unwrap();
    assert_eq!(c.priority, Priorities::default());
    assert_eq!([c.priority.start, c.priority.stop, c.priority.ban, c.priority.unban].map(Priority::get), [2, 2, 8, 4]);
    assert!(c.markdown);
    let c = load("[priority]\nunban = 0\n").unwrap();
    assert_eq!((c.priority.unban.get(), c.priority.ban.get()), (0, 8));
    for (bad, want) in [
        ("priority = 11", "`priority` = `11` is not a Gotify priority: use a whole number from 0 to 10"),
        ("priority = -1", "`priority` = `-1` is not a Gotify priority"),
        ("priority = 2.5", "`priority` = `2.5` is not a Gotify priority"),
        ("priority = \"high\"", "`priority` must be a priority (a whole number from 0 to 10), not a string"),
        ("priority = { ban = 20 }", "`priority.ban` = `20` is not a Gotify priority"),
        ("priority = { bann = 4 }", "unknown event `bann` in `priority`: expected start, stop, ban or unban"),
        ("priority = [4]", "not a list"),
        ("markdown = \"yes\"", "markdown"),
        ("urll = \"x\"", "unknown field: found `urll`"),
        ("click = \"x\"", "unknown field: found `click`"),
        ("token = 123456789", "`token` must be a string, not an integer"),
    ] {
        let err = load(bad).expect_err(bad);
        assert!(err.contains(want), "{bad}: {err}");
        assert!(!err.contains("123456789"), "{err}");
    }
}

#[test]
fn config_errors_name_the_key_never_the_secret() {
    let build = |c: Config| super::new("phone", c).map(|_| ()).unwrap_err().to_string();
    let url = |u: &str| Config { url: Some(u.into()), token: Some(Secret::new(TOKEN)), ..Config::default() };
    let cases: Vec<(Config, &str)> = vec![
        (Config::default(), "missing `url`: the Gotify server's base URL, like https://gotify.example.com"),
        (Config { url: Some("https://g.example".into()), ..Config::default() }, "missing `token` (or `token_file`)"),
        (
            url("gotify.example.com"),
            "`url` is not a valid URL: it has no scheme: write it as https://…: `gotify.example.com`",
        ),
        (url("ftp://gotify.example.com"), "`url` must be an https:// URL: `ftp://gotify.example.com`"),
        (url("https://admin:SECRETpw@gotify.example.com"), "`url` must not hold a user name or password (not shown)"),
        (url("https://ASECRET@gotify.example.com"), "must not hold a user name or password"),
        (url("https://gotify.example.com/?token=SECRET"), "`url` must not have a query or fragment"),
        (url("https://gotify.example.com/#SECRET"), "must not have a query or fragment"),
        (url("https://gotify.example.com/message"), "`url` `https://gotify.example.com/message` ends in `/message`"),
        (
            Config { token_file: Some("/x".into()), ..url("https://gotify.example.com") },
            "give either `token` or `token_file`, not both",
        ),
        (
            Config { token: Some(Secret::new(format!("{TOKEN}\nX-Evil: 1"))), ..url("https://g.example") },
            "`token` holds a character a header cannot carry",
        ),
        (Config { token: Some(Secret::new("  ")), ..url("https://g.example") }, "`token` is empty"),
        (Config { timeout: Some(31.0), ..url("https://g.example") }, "at most 30 seconds"),
        (
            Config {
                templates: Templates { ban: Some("{% if %}".into()), ..Templates::default() },
                ..url("https://g.example")
            },
            "template for `ban`",
        ),
    ];
    for (config, want) in cases {
        let err = build(config);
        assert!(err.contains(want), "{err} lacks {want}");
        assert!(!err.contains("SECRET"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, [TOKEN.as_bytes(), b"\xff"].concat()).unwrap();
    let err = build(Config { token: None, token_file: Some(file), ..url("https://g.example") });
    assert!(err.contains("`token_file`") && err.contains("not valid UTF-8") && !err.contains("SECRET"), "{err}");
    let err = build(Config { token: None, token_file: Some(dir.path().join("nope")), ..url("https://g.example") });
    assert!(err.contains("cannot read `token_file`"), "{err}");
}

#[test]
fn the_endpoint_keeps_the_prefix() {
    for (url, endpoint) in [
        ("https://gotify.example.com", "https://gotify.example.com/message"),
        ("https://gotify.example.com/", "https://gotify.example.com/message"),
        (" https://example.com:8443/gotify/ ", "https://example.com:8443/gotify/message"),
        ("https://example.com/apps/gotify", "https://example.com/apps/gotify/message"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/message"),
    ] {
        let t = settings::target(url).unwrap();
        assert_eq!(t.endpoint.as_str(), endpoint, "{url}");
    }
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_check() {
    let (_service, server, sink) = setup();
    assert_no_secret(&format!("{sink:?}"));
    let config = with_token(server.url("/gotify"));
    assert_no_secret(&format!("{config:?}"));
    assert!(sink.check().is_empty(), "{:?}", sink.check());
}

#[cfg(unix)]
#[test]
fn check_warns_about_a_readable_token_file_plain_http_and_client_tokens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = |url: &str, file: &std::path::Path| Config {
        url: Some(url.into()),
        token_file: Some(file.into()),
        ..Config::default()
    };
    let lines = sink(config("https://gotify.example.com", &file)).check();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("`token_file`") && lines[0].contains("mode 644"), "{lines:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink(config("https://gotify.example.com", &file)).check().is_empty());
    assert!(sink(config("http://localhost:8080", &file)).check().is_empty());
    let lines = sink(config("http://gotify.example.com", &file)).check();
    assert_eq!(
        lines,
        ["`url` is a plain http:// URL to another machine: the application token crosses the network unencrypted; use https://"]
    );
    for client in ["CSECRETclient12", "gtfy_client.SECRET"] {
        let lines = sink(Config {
            url: Some("https://g.example".into()),
            token: Some(Secret::new(client)),
            ..Config::default()
        })
        .check();
        assert!(
            lines.len() == 1 && lines[0].contains("looks like a client token") && !lines[0].contains("SECRET"),
            "{lines:?}"
        );
    }
}
