//! The ntfy sink against the ntfy stand-in (`f2b_notify_standins::ntfy`, the service's
//! documented contract) on a loopback port: the exact request per event, digest and alert;
//! hostile text arriving inert and within ntfy's limits; every failure class; and no secret
//! (nor the topic) in any error, `Debug`, `check` line or preview.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::ntfy::{error, Auth, Service};
use f2b_notify_standins::{Reply, Request, StandIn};
use figment::providers::{Format as _, Toml};
use figment::Figment;
use serde_json::{json, Value};

use super::*;

/// The test access token: it must never show up in any error, Debug or check line.
const TOKEN: &str = "tk_SECRETtoken0000000000000000000";
/// The test password, likewise.
const PASSWORD: &str = "SECRETpassw0rd";
/// The topic: not a secret in config errors, but never in delivery errors or Debug.
const TOPIC: &str = "alerts_TOPICxyzzy";

/// A stand-in expecting the token, and a sink configured with it.
fn token_setup() -> (Arc<Service>, StandIn, NtfySink) {
    let service = Service::new(Auth::Token(TOKEN.into()));
    let server = StandIn::start(service.responder());
    let sink = sink(with_token(server.url(&format!("/{TOPIC}"))));
    (service, server, sink)
}

fn with_token(url: String) -> Config {
    Config { url: Some(url), token: Some(Secret::new(TOKEN)), ..Config::default() }
}

fn sink(config: Config) -> NtfySink {
    super::new("push", config).unwrap()
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
    for secret in ["SECRET", "TOPICxyzzy", "/alerts"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

fn assert_error_clean(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

#[tokio::test]
async fn exact_request_for_each_event_kind() {
    let (service, server, sink) = token_setup();
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        // The JSON form: POST to the server's root, the token in the header only.
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
        assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(!r.body.contains(TOKEN));
        // No header carries anything of the event.
        for (name, value) in &r.headers {
            assert!(!value.contains("sshd") && !value.contains("203.0.113.7"), "{name}: {value}");
        }
    }
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "topic": TOPIC,
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\nJail: sshd\nAddress: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\n\nMatched log lines:\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again",
            "priority": 4,
            "tags": ["no_entry"],
        })
    );
    assert_eq!(
        got[1],
        json!({
            "topic": TOPIC,
            "title": "Fail2Ban (sshd) unban on host.example",
            "message": "Fail2Ban (sshd) unbanned IP 2001:db8::1\n\nJail: sshd\nAddress: 2001:db8::1\nHost: host.example",
            "priority": 3,
            "tags": ["white_check_mark"],
        })
    );
    let jail = |what: &str, tag: &str| {
        json!({
            "topic": TOPIC,
            "title": format!("Fail2Ban (sshd) jail {what} on host.example"),
            "message": format!("Fail2Ban (sshd) jail {what} on host.example\n\nJail: sshd\nHost: host.example"),
            "priority": 2,
            "tags": [tag],
        })
    };
    assert_eq!(got[2], jail("started", "arrow_forward"));
    assert_eq!(got[3], jail("stopped", "stop_sign"));
    // What ntfy stored: the same, priority 3 left out as ntfy does.
    let stored = service.accepted();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0]["title"], "Fail2Ban (sshd) ban on host.example");
    assert_eq!(stored[0]["priority"], 4);
    assert!(stored[1].get("priority").is_none());
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_and_where_a_digests_bans_come_from() {
    for markdown in [false, true] {
        let (_service, server, _) = token_setup();
        let mut config = with_token(server.url(&format!("/{TOPIC}")));
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
        events[2].context.country = Some("<b>Evil</b>".into());
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
                 countries: Japan 2, \\<b\\>Evil\\</b\\> 1\n\n**sshd**:\n- banned 3: `203.0.113.1`, `203.0.113.2`, `203.0.113.3`"
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
                 countries: Japan 2, <b>Evil</b> 1\nsshd:\n  banned 3: 203.0.113.1, 203.0.113.2, 203.0.113.3"
            );
        }
        // The title stays the host's, the jail's and the event's: no enrichment in a header.
        assert_eq!(got[0]["title"], "Fail2Ban (sshd) ban on host.example");
        assert_eq!(got[1]["title"], "Fail2Ban on h: 3 bans in 1 jail");
    }
}

#[tokio::test]
async fn options_reach_the_body() {
    let service = Service::new(Auth::Basic("alice".into(), PASSWORD.into()));
    let server = StandIn::start(service.responder());
    let config: Config = load(&format!(
        "url = \"{}\"\nusername = \"alice\"\npassword = \"{PASSWORD}\"\nmarkdown = true\nclick = \"https://grafana.example/d/f2b\"\npriority = {{ ban = \"urgent\", start = 1 }}\ntags = {{ ban = [\"no_entry\", \"ssh\"], stop = [] }}\n[templates]\nban = \"{{{{ jail }}}}: {{{{ id }}}} is out\"\n",
        server.url("/alerts")
    ))
    .unwrap();
    let sink = sink(config);
    sink.send(&ban()).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Stop, "sshd", "h")).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "h")).await.unwrap();
    let r = &server.requests()[0];
    // HTTP Basic, as the stand-in (ntfy) checks it.
    assert!(r.authorization.as_deref().unwrap().starts_with("Basic "));
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "topic": "alerts",
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "sshd: 203.0.113.7 is out\n\n- **Jail:** sshd\n- **Address:** `203.0.113.7`\n- **Failures:** 5\n- **Ban time:** 10 min\n- **Host:** host.example\n- **User:** `root`\n\n**Matched log lines:**\n```\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again\n```",
            "priority": 5,
            "tags": ["no_entry", "ssh"],
            "markdown": true,
            "click": "https://grafana.example/d/f2b",
        })
    );
    assert!(got[1].get("tags").is_none(), "{}", got[1]);
    assert_eq!((got[1]["priority"].as_u64(), got[2]["priority"].as_u64()), (Some(2), Some(1)));
    assert_eq!(service.accepted()[0]["content_type"], "text/markdown");
}

#[tokio::test]
async fn digest_names_every_address_that_fits_and_counts_the_rest_exactly() {
    let (service, server, sink) = token_setup();
    // A small one: everything listed, nothing counted.
    let small = Digest::new(vec![
        Event::jail_event(EventKind::Start, "web", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.1", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.2", "host.example"),
        Event::target_event(EventKind::Unban, "sshd", "203.0.113.1", "host.example"),
    ]);
    sink.send_digest(&small).await.unwrap();
    assert_eq!(
        bodies(&server)[0],
        json!({
            "topic": TOPIC,
            "title": "Fail2Ban on host.example: 2 bans, 1 unban, 1 jail start in 2 jails",
            "message": "web:\n  jail started\nsshd:\n  banned 2: 203.0.113.1, 203.0.113.2\n  unbanned 1: 203.0.113.1",
            "priority": 4,
            "tags": ["no_entry"],
        })
    );
    // A storm: 1000 bans and 200 unbans in one message of at most 4,096 bytes.
    let mut events: Vec<Event> = (0..1000)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.51.{}.{}", i / 256, i % 256), "host.example"))
        .collect();
    events.extend((0..200).map(|i| Event::target_event(EventKind::Unban, "nginx", format!("2001:db8::{i:x}"), "h")));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    assert_eq!(server.requests().len(), 2, "one message per digest");
    let body = &bodies(&server)[1];
    assert_eq!(body["title"], "Fail2Ban on host.example: 1000 bans, 200 unbans in 2 jails");
    let text = body["message"].as_str().unwrap();
    assert!(text.len() <= MAX_MESSAGE, "{}", text.len());
    assert!(text.starts_with("sshd:\n  banned 1000: 198.51.0.0, 198.51.0.1, "), "{text:.80}");
    let listed: Vec<&str> =
        text.lines().filter_map(|l| l.split_once(": ").map(|(_, ids)| ids)).flat_map(|ids| ids.split(", ")).collect();
    // In order, none twice, none made up.
    for (i, id) in listed.iter().enumerate() {
        assert_eq!(*id, format!("198.51.{}.{}", i / 256, i % 256));
    }
    let last = text.lines().last().unwrap();
    assert_eq!(last, format!("… and {} more not listed (ntfy's 4,096-byte message limit)", 1200 - listed.len()));
    assert!(listed.len() > 200, "{}", listed.len());
    // The stand-in (ntfy without attachments) took it as a message.
    assert_eq!(service.accepted()[1]["message"].as_str().unwrap(), text);
}

#[tokio::test]
async fn alerts_are_high_and_recoveries_default() {
    let (_service, server, sink) = token_setup();
    let mut alert = Alert {
        subject: "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07".into(),
        text: "last error: invalid_auth\r\n3 event(s) waiting\n[a](http://x)".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    alert.recovered = true;
    alert.subject = "f2b-notify on h: sink `api` recovered".into();
    sink.send_alert(&alert).await.unwrap();
    assert!(sink.carries_alerts());
    let got = bodies(&server);
    assert_eq!(
        got[0],
        json!({
            "topic": TOPIC,
            "title": "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07",
            "message": "last error: invalid_auth\n3 event(s) waiting\n[a](http://x)",
            "priority": 4,
            "tags": ["warning"],
        })
    );
    assert_eq!((got[1]["priority"].as_u64(), &got[1]["tags"]), (Some(3), &json!(["white_check_mark"])));
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
];

fn hostile_event(jail: &str, host: &str) -> Event {
    let all = HOSTILE.join(" ");
    let mut e = Event::target_event(EventKind::Ban, jail, format!("198.51.100.1\r\nFAKE-ID: y {all}"), host);
    e.user = Some(format!("{all}\r\nFAKE-USER: y\n{}", "u".repeat(100_000)));
    let mut lines: Vec<String> = HOSTILE.iter().map(|s| format!("Failed password for {s}")).collect();
    lines.push("\"".repeat(100_000));
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
async fn hostile_text_arrives_inert_and_within_limits() {
    for markdown in [false, true] {
        let (service, server, _) = token_setup();
        let mut config = with_token(server.url(&format!("/{TOPIC}")));
        config.markdown = markdown;
        // A template that puts the matched lines into the lead too.
        config.templates = Templates { ban: Some("{{ user }} {{ matches }}".into()), ..Templates::default() };
        let sink = sink(config);
        let e = hostile_event("ssh-ü", "höst.example");
        sink.send(&e).await.unwrap_or_else(|err| panic!("markdown={markdown}: {err}"));
        sink.send_digest(&Digest::new(vec![e.clone(), e.clone()])).await.unwrap();
        let requests = server.requests();
        assert_eq!(service.accepted().len(), 2, "markdown={markdown}");
        for r in &requests {
            assert!(r.body.len() <= MAX_JSON, "{}", r.body.len());
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
            // Nothing outside code can make a link, an image, HTML or emphasis.
            for text in [&one, &digest] {
                let outside_code = strip_code(text);
                for bad in ["[a](", "![img](", "<b>", "*_~", "<!channel>"] {
                    assert!(!outside_code.contains(bad), "{bad} in markdown: {outside_code:.400}");
                }
                assert!(outside_code.contains("\\[a\\](http://x)"), "{outside_code:.400}");
            }
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

#[tokio::test]
async fn quotes_cannot_push_the_json_over_its_limit() {
    let (service, server, _) = token_setup();
    let mut config = with_token(server.url(&format!("/{TOPIC}")));
    config.click = Some(format!("https://example.com/{}", "p".repeat(900)));
    config.templates = Templates { ban: Some("{{ matches }}".into()), ..Templates::default() };
    let sink = sink(config);
    let mut e = ban();
    e.matches = Some("\"\\".repeat(50_000));
    sink.send(&e).await.unwrap();
    let r = &server.requests()[0];
    assert!(r.body.len() <= MAX_JSON, "{}", r.body.len());
    assert!(r.json()["message"].as_str().unwrap().contains("[cut "));
    assert_eq!(service.accepted().len(), 1);
}

/// An answer and how it must be classified: the reply, transient, the wait asked for, text
/// the error must carry.
type FailureCase = (Reply, bool, Option<Duration>, &'static str);

#[tokio::test]
async fn every_failure_class() {
    let s = Duration::from_secs;
    let cases: Vec<FailureCase> = vec![
        (error(400, 40024, "invalid request: request body must be valid JSON"), false, None, "[40024] (HTTP 400)"),
        (error(400, 40014, "invalid request: attachments not allowed"), false, None, "attachments not allowed"),
        (error(400, 40007, "invalid priority parameter"), false, None, "refused the priority"),
        (error(400, 40009, "invalid request: topic invalid"), false, None, "check `url`"),
        (error(401, 40101, "unauthorized"), false, None, "put a valid access token (tk_…"),
        (error(403, 40301, "forbidden"), false, None, "ntfy access USER TOPIC rw"),
        (error(404, 40401, "page not found"), false, None, "not an ntfy server's publish address"),
        (error(413, 41303, "invalid request: JSON body too large"), false, None, "[41303] (HTTP 413)"),
        (error(429, 42901, "limit reached: too many requests, please be nice"), true, Some(s(5)), "rate limit"),
        (
            error(
                429,
                42901,
                "limit reached: too many requests, please be nice, increase your limits with a paid plan, see https://ntfy.sh",
            ),
            true,
            Some(s(5)),
            "[42901] (HTTP 429)",
        ),
        (error(429, 42908, "limit reached: daily message quota reached"), true, Some(s(3600)), "daily message quota"),
        (error(429, 42909, "limit reached: too many auth failures"), true, Some(s(60)), "too many failed logins"),
        (error(500, 50001, "internal server error"), true, None, "[50001] (HTTP 500)"),
        // A proxy's page: no ntfy JSON, the status decides; its Retry-After is obeyed.
        (Reply::new(502, "<html>bad gateway</html>"), true, None, "<html>bad gateway</html> (HTTP 502)"),
        (Reply::new(503, "").header("Retry-After", "7"), true, Some(s(7)), "no error text (HTTP 503)"),
        (Reply::new(429, "slow down"), true, Some(s(5)), "slow down (HTTP 429)"),
        (Reply::new(200, "<html>captive portal</html>"), false, None, "without ntfy's message JSON"),
        (Reply::new(200, "{\"ok\":true}"), false, None, "without ntfy's message JSON"),
        (Reply::new(302, ""), false, None, "HTTP 302"),
    ];
    let (service, _server, sink) = token_setup();
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
}

#[tokio::test]
async fn the_stand_in_refuses_what_ntfy_refuses() {
    // A wrong token: 401, permanent, what to do.
    let service = Service::new(Auth::Token("tk_the_right_one".into()));
    let server = StandIn::start(service.responder());
    let sink = sink(with_token(server.url(&format!("/{TOPIC}"))));
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("unauthorized [40101] (HTTP 401): "), "{err}");
    assert_error_clean(&err);
    // The right user without write permission: 403.
    let (service, _server, sink) = token_setup();
    service.deny_write();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("forbidden [40301] (HTTP 403): "), "{err}");
    // Anonymous to a server with access control: 403 too.
    let service = Service::new(Auth::Token(TOKEN.into()));
    let server = StandIn::start(service.responder());
    let anonymous = super::new("push", Config { url: Some(server.url("/alerts")), ..Config::default() }).unwrap();
    assert!(anonymous.send(&ban()).await.unwrap_err().to_string().contains("[40301]"));
    // Credentials to a server without access control: 401.
    let service = Service::new(Auth::Open);
    let server = StandIn::start(service.responder());
    let err = sink_for_basic(server.url("/alerts"), "wrong").send(&ban()).await.unwrap_err();
    assert!(err.to_string().contains("[40101]") && err.to_string().contains("leave them out"), "{err}");
    assert_error_clean(&err);
    // The request limit: a burst of 2, then a 429 whose wait is ntfy's 5 s.
    let (service, _server, sink) = token_setup();
    service.set_rate(2, Duration::from_secs(60));
    sink.send(&ban()).await.unwrap();
    sink.send(&ban()).await.unwrap();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("[42901] (HTTP 429)"), "{err}");
    assert_eq!(err.retry_after_hint(), Some(RATE_WAIT));
    assert_eq!(sink.min_interval(), Duration::from_secs(5));
}

fn sink_for_basic(url: String, password: &str) -> NtfySink {
    sink(Config {
        url: Some(url),
        username: Some("alice".into()),
        password: Some(Secret::new(format!("{PASSWORD}{password}"))),
        ..Config::default()
    })
}

#[tokio::test]
async fn basic_authentication() {
    let service = Service::new(Auth::Basic("alice".into(), PASSWORD.into()));
    let server = StandIn::start(service.responder());
    sink_for_basic(server.url("/alerts"), "").send(&ban()).await.unwrap();
    let err = sink_for_basic(server.url("/alerts"), "x").send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("[40101]"), "{err}");
    assert_error_clean(&err);
    assert_eq!(service.accepted().len(), 1);
}

#[tokio::test]
async fn timeouts_closed_and_refused_connections_are_transient() {
    let service = Service::new(Auth::Token(TOKEN.into()));
    let slow = Arc::clone(&service);
    let server = StandIn::start(Arc::new(move |r: &Request, _| {
        std::thread::sleep(Duration::from_millis(1500));
        slow.answer(r)
    }));
    let mut config = with_token(server.url(&format!("/{TOPIC}")));
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
    let err = sink(with_token(format!("http://{addr}/{TOPIC}"))).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_clean(&err);
    task.abort();
    let _ = task.await;

    let port = StandIn::reserve_port();
    let err = sink(with_token(format!("http://127.0.0.1:{port}/{TOPIC}"))).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().starts_with("cannot connect"), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let addr = tls.addr;
    let err = sink(with_token(format!("https://127.0.0.1:{}/{TOPIC}", addr.port()))).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn preview_shows_the_request_without_the_secret() {
    let (_service, server, sink) = token_setup();
    let preview = sink.preview(&ban()).unwrap();
    assert!(!preview.contains("SECRET"), "{preview}");
    assert!(preview.starts_with(&format!("POST to {} (ntfy's JSON publish form; topic in the body) with `Authorization: Bearer` and the access token (not shown), this JSON body:\n{{", server.url("/"))), "{preview}");
    // In the order people read it; the topic shown (only the administrator runs this).
    assert!(
        preview.contains(&format!(
            "{{\n  \"topic\": \"{TOPIC}\",\n  \"title\": \"Fail2Ban (sshd) ban on host.example\",\n  \"message\": \"Fail2Ban (sshd) banned IP 203.0.113.7"
        )),
        "{preview}"
    );
    // The preview sent nothing.
    assert!(server.requests().is_empty());
    let basic = sink_for_basic(server.url("/alerts"), "");
    let preview = basic.preview(&ban()).unwrap();
    assert!(preview.contains("as `alice` and the password (not shown)") && !preview.contains("SECRET"), "{preview}");
}

fn load(toml: &str) -> Result<Config, String> {
    Figment::new().merge(Toml::string(toml)).extract::<Config>().map_err(|e| e.to_string())
}

#[test]
fn config_defaults_and_value_checks() {
    let c = load("url = \"https://ntfy.sh/alerts\"").unwrap();
    assert_eq!(c.priority, Priorities::default());
    assert_eq!([c.priority.start, c.priority.stop, c.priority.ban, c.priority.unban].map(Priority::get), [2, 2, 4, 3]);
    assert_eq!(c.tags, Tags::default());
    assert_eq!(c.tags.get(EventKind::Ban), ["no_entry"]);
    assert!(!c.markdown && c.click.is_none());
    // One value for every event, or some events.
    let c = load("priority = \"MAX\"\ntags = [\"f2b\", \"ssh\"]").unwrap();
    assert_eq!(c.priority.start, Priority::MAX);
    assert_eq!(c.tags.get(EventKind::Stop), ["f2b", "ssh"]);
    let c = load("priority = 1\ntags = []").unwrap();
    assert_eq!(c.priority.ban, Priority::MIN);
    assert!(c.tags.get(EventKind::Ban).is_empty());
    let c = load("[priority]\nunban = \"low\"\n[tags]\nunban = [\"x\"]").unwrap();
    assert_eq!((c.priority.unban, c.priority.ban), (Priority::LOW, Priority::HIGH));
    assert_eq!(
        (c.tags.get(EventKind::Unban), c.tags.get(EventKind::Ban)),
        (&["x".to_owned()][..], &["no_entry".to_owned()][..])
    );
    for name in ["min", "low", "default", "high", "max", "urgent", "1", "5", " High "] {
        assert!(Priority::parse(name).is_some(), "{name}");
    }
    for (bad, want) in [
        (
            "priority = 6",
            "`priority` = `6` is not an ntfy priority: use 1 to 5, or min, low, default, high, max (urgent)",
        ),
        ("priority = \"loud\"", "`priority` = `loud` is not an ntfy priority"),
        ("priority = { ban = 0 }", "`priority.ban` = `0` is not an ntfy priority"),
        ("priority = { bann = 4 }", "unknown event `bann` in `priority`: expected start, stop, ban or unban"),
        ("priority = [4]", "`priority` must be a priority (1 to 5, or a name), not a list"),
        ("tags = \"no_entry\"", "`tags` must be a list of strings, not a string"),
        ("tags = [1]", "`tags` must be a list of strings, not a list holding a number"),
        ("tags = [\"a,b\"]", "`tags`: `a,b` is not a tag"),
        ("tags = { ban = [\"\"] }", "`tags.ban`: `` is not a tag"),
        ("tags = { x = [] }", "unknown event `x` in `tags`"),
        (&format!("tags = [\"{}\"]", "t".repeat(513)), "513 bytes of tags: ntfy takes at most 512"),
        ("markdown = \"yes\"", "markdown"),
        ("urll = \"x\"", "unknown field: found `urll`"),
        ("token = 123456789", "`token` must be a string, not an integer"),
        ("password = true", "`password` must be a string, not a boolean"),
    ] {
        let err = load(bad).expect_err(bad);
        assert!(err.contains(want), "{bad}: {err}");
        assert!(!err.contains("123456789"), "{err}");
    }
}

#[test]
fn config_errors_name_the_key_never_the_secret() {
    let build = |c: Config| super::new("push", c).map(|_| ()).unwrap_err().to_string();
    let url = |u: &str| Config { url: Some(u.into()), ..Config::default() };
    let cases: Vec<(Config, &str)> = vec![
        (Config::default(), "missing `url`: the server and topic, like https://ntfy.sh/YOUR-TOPIC"),
        (url("https://ntfy.sh/"), "`url` `https://ntfy.sh/` names no topic"),
        (url("https://ntfy.sh"), "names no topic"),
        (url("ntfy.sh/alerts"), "`url` is not a valid URL: it has no scheme"),
        (url("ftp://ntfy.sh/alerts"), "`url` must be an https:// URL"),
        (url("https://ntfy.sh/al erts"), "the topic `al%20erts` is not an ntfy topic name"),
        (url(&format!("https://ntfy.sh/{}", "t".repeat(65))), "is not an ntfy topic name"),
        (url("https://ntfy.sh/docs"), "does not allow the topic name `docs`"),
        (url("https://alice:SECRETpw@ntfy.sh/alerts"), "`url` must not hold a user name or password (not shown)"),
        (url("https://tk_SECRET@ntfy.sh/alerts"), "must not hold a user name or password"),
        (url("https://ntfy.sh/alerts?auth=SECRETauth"), "`url` must not have a query or fragment"),
        (url("https://ntfy.sh/alerts#SECRET"), "must not have a query or fragment"),
        (
            Config { token: Some(Secret::new(TOKEN)), username: Some("alice".into()), ..url("https://ntfy.sh/a") },
            "give either `token` (an access token) or `username` and `password`, not both",
        ),
        (
            Config { token: Some(Secret::new(TOKEN)), token_file: Some("/x".into()), ..url("https://ntfy.sh/a") },
            "give either `token` or `token_file`, not both",
        ),
        (Config { username: Some("alice".into()), ..url("https://ntfy.sh/a") }, "`username` needs `password`"),
        (
            Config { password: Some(Secret::new(PASSWORD)), ..url("https://ntfy.sh/a") },
            "`password` needs `username` (an access token goes in `token` instead)",
        ),
        (
            Config {
                username: Some("al:ice".into()),
                password: Some(Secret::new(PASSWORD)),
                ..url("https://ntfy.sh/a")
            },
            "`username` `al:ice` cannot hold a `:`",
        ),
        (
            Config { token: Some(Secret::new(format!("{TOKEN}\nX-Evil: 1"))), ..url("https://ntfy.sh/a") },
            "`token` holds a character a header cannot carry",
        ),
        (Config { token: Some(Secret::new("  ")), ..url("https://ntfy.sh/a") }, "`token` is empty"),
        (Config { click: Some("not a url".into()), ..url("https://ntfy.sh/a") }, "`click` `not a url`"),
        (Config { click: Some("dashboard".into()), ..url("https://ntfy.sh/a") }, "`click` `dashboard` is not a URL"),
        (Config { timeout: Some(31.0), ..url("https://ntfy.sh/a") }, "at most 30 seconds"),
        (
            Config {
                templates: Templates { ban: Some("{% if %}".into()), ..Templates::default() },
                ..url("https://ntfy.sh/a")
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
    let err = build(Config { token_file: Some(file), ..url("https://ntfy.sh/a") });
    assert!(err.contains("`token_file`") && err.contains("not valid UTF-8") && !err.contains("SECRET"), "{err}");
    let err = build(Config {
        password_file: Some(dir.path().join("nope")),
        username: Some("a".into()),
        ..url("https://ntfy.sh/a")
    });
    assert!(err.contains("cannot read `password_file`"), "{err}");
}

#[test]
fn the_url_is_taken_apart() {
    for (url, endpoint, topic) in [
        ("https://ntfy.sh/alerts", "https://ntfy.sh/", "alerts"),
        ("https://ntfy.sh/alerts/", "https://ntfy.sh/", "alerts"),
        (" https://ntfy.example.com:8443/ntfy/f2b_Alerts-1 ", "https://ntfy.example.com:8443/ntfy/", "f2b_Alerts-1"),
        ("http://127.0.0.1:8080/a_b", "http://127.0.0.1:8080/", "a_b"),
    ] {
        let t = settings::target(url, "x").unwrap();
        assert_eq!((t.endpoint.as_str(), t.topic.as_str()), (endpoint, topic), "{url}");
        assert!(!format!("{t:?}").contains(topic), "{t:?}");
    }
}

#[tokio::test]
async fn secret_and_topic_stay_out_of_debug_and_check() {
    let (_service, server, sink) = token_setup();
    assert_no_secret(&format!("{sink:?}"));
    let config = with_token(server.url(&format!("/{TOPIC}")));
    assert!(!format!("{config:?}").contains("SECRET"));
    assert!(sink.check().is_empty(), "{:?}", sink.check());
    let basic = sink_for_basic(server.url("/alerts"), "");
    assert_no_secret(&format!("{basic:?}"));
}

#[cfg(unix)]
#[test]
fn check_warns_about_readable_secret_files_plain_http_and_odd_tokens() {
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
    let lines = sink(config("https://ntfy.sh/alerts", &file)).check();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("`token_file`") && lines[0].contains("mode 644"), "{lines:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink(config("https://ntfy.sh/alerts", &file)).check().is_empty());
    assert!(sink(config("http://localhost:8080/alerts", &file)).check().is_empty());
    let lines = sink(config("http://ntfy.example.com/alerts", &file)).check();
    assert_eq!(
        lines,
        ["`url` is a plain http:// URL to another machine: the access token crosses the network unencrypted; use https://"]
    );
    let anonymous = sink(Config { url: Some("http://10.0.0.5/alerts".into()), ..Config::default() }).check();
    assert!(anonymous[0].contains("the topic (all it takes to read and write it) and every message"), "{anonymous:?}");
    let odd = sink(Config {
        url: Some("https://ntfy.sh/a".into()),
        token: Some(Secret::new("SECRETnotatoken")),
        ..Config::default()
    });
    let lines = odd.check();
    assert!(
        lines.len() == 1 && lines[0].contains("does not start with `tk_`") && !lines[0].contains("SECRET"),
        "{lines:?}"
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let basic = sink(Config {
        url: Some("https://ntfy.sh/a".into()),
        username: Some("alice".into()),
        password_file: Some(pw),
        ..Config::default()
    });
    let lines = basic.check();
    assert!(lines.len() == 1 && lines[0].contains("`password_file`") && !lines[0].contains("SECRET"), "{lines:?}");
}
