//! The Pushover sink against the Pushover stand-in (`f2b_notify_standins::pushover`, the
//! service's documented contract) on a loopback port: the exact request per event, digest and
//! alert; hostile text arriving inert and within Pushover's limits; every failure class and
//! its wait; the quota; and neither secret in any URL, header, error, `Debug`, `check` line
//! or preview.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::pushover::{error, quota_exceeded, token_invalid, user_invalid, Service, PATH};
use f2b_notify_standins::{form, Reply, Request, StandIn};
use figment::providers::{Format as _, Toml};
use figment::Figment;
use serde_json::{json, Value};

use super::*;

/// The application token: it must never show up in any URL, header, error, Debug or check
/// line.
const TOKEN: &str = "SECRETappTokenAbcdefghij012345";
/// The user key, likewise.
const USER: &str = "SECRETuserKeyAbcdefghij0123456";

/// A stand-in expecting the token and the user, and a sink configured with them.
fn setup() -> (Arc<Service>, StandIn, PushoverSink) {
    let service = Service::new(TOKEN, USER);
    let server = StandIn::start(service.responder());
    let sink = sink(config(&server));
    (service, server, sink)
}

fn config(server: &StandIn) -> Config {
    Config {
        token: Some(Secret::new(TOKEN)),
        user: Some(Secret::new(USER)),
        api_url: Some(server.url("")),
        ..Config::default()
    }
}

fn sink(config: Config) -> PushoverSink {
    super::new("push", config).unwrap()
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(1_700_000_000.5);
    e.user = Some("root".into());
    e.matches = Some("sshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again".into());
    e
}

/// Each request's form, as a JSON object of strings (in the order sent, then compared
/// without it).
fn forms(server: &StandIn) -> Vec<Value> {
    server
        .requests()
        .iter()
        .map(|r| Value::Object(form(&r.body).into_iter().map(|(k, v)| (k, Value::from(v))).collect()))
        .collect()
}

fn assert_no_secret(text: &str) {
    for secret in ["SECRET", "appToken", "userKey"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

fn assert_error_clean(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

#[test]
fn the_test_keys_have_pushovers_shape() {
    assert!(valid_key(TOKEN) && valid_key(USER));
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
        // A form posted to the Message API; the secrets in the body only.
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", PATH));
        assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert!(r.authorization.is_none());
        for (name, value) in &r.headers {
            assert_no_secret(&format!("{name}: {value}"));
            assert!(!value.contains("sshd") && !value.contains("203.0.113.7"), "{name}: {value}");
        }
        assert!(r.body.starts_with(&format!("token={TOKEN}&user={USER}&title=")), "{}", r.body);
    }
    let got = forms(&server);
    let with_secrets = |v: Value| {
        let mut v = v;
        v["token"] = Value::from(TOKEN);
        v["user"] = Value::from(USER);
        v
    };
    assert_eq!(
        got[0],
        with_secrets(json!({
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\n<b>Jail:</b> sshd\n<b>Address:</b> 203.0.113.7\n<b>Failures:</b> 5\n<b>Ban time:</b> 10 min\n<b>Host:</b> host.example\n<b>User:</b> root\n\n<b>Matched log lines:</b>\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again",
            "priority": "0",
            "html": "1",
            "timestamp": "1700000000",
        }))
    );
    assert_eq!(
        got[1],
        with_secrets(json!({
            "title": "Fail2Ban (sshd) unban on host.example",
            "message": "Fail2Ban (sshd) unbanned IP 2001:db8::1\n\n<b>Jail:</b> sshd\n<b>Address:</b> 2001:db8::1\n<b>Host:</b> host.example",
            "priority": "-1",
            "html": "1",
        }))
    );
    let jail = |what: &str| {
        with_secrets(json!({
            "title": format!("Fail2Ban (sshd) jail {what} on host.example"),
            "message": format!("Fail2Ban (sshd) jail {what} on host.example\n\n<b>Jail:</b> sshd\n<b>Host:</b> host.example"),
            "priority": "-1",
            "html": "1",
        }))
    };
    assert_eq!(got[2], jail("started"));
    assert_eq!(got[3], jail("stopped"));
    // Pushover took all four.
    assert_eq!(service.messages().len(), 4);
    assert_eq!(service.messages()[0].get("priority"), Some("0"));
}

#[tokio::test]
async fn options_reach_the_form() {
    let service = Service::new(TOKEN, USER);
    let server = StandIn::start(service.responder());
    let loaded: Config = load(&format!(
        "token = \"{TOKEN}\"\nuser = \"{USER}\"\napi_url = \"{}/\"\nmonospace = true\ndevice = \"phone,desk_2\"\nsound = \"siren\"\nurl = \"https://grafana.example/d/f2b\"\nurl_title = \"Dashboard\"\npriority = {{ ban = \"emergency\", start = -2 }}\nretry = 60\nexpire = 3600\n[templates]\nban = \"{{{{ jail }}}}: {{{{ id }}}} is out\"\n",
        server.url("")
    ))
    .unwrap();
    let sink = sink(loaded);
    sink.send(&ban()).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "h")).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Stop, "sshd", "h")).await.unwrap();
    let got = forms(&server);
    assert_eq!(
        got[0],
        json!({
            "token": TOKEN,
            "user": USER,
            "title": "Fail2Ban (sshd) ban on host.example",
            "message": "sshd: 203.0.113.7 is out\n\nJail: sshd\nAddress: 203.0.113.7\nFailures: 5\nBan time: 10 min\nHost: host.example\nUser: root\n\nMatched log lines:\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again",
            "priority": "2",
            "retry": "60",
            "expire": "3600",
            "monospace": "1",
            "timestamp": "1700000000",
            "device": "phone,desk_2",
            "sound": "siren",
            "url": "https://grafana.example/d/f2b",
            "url_title": "Dashboard",
        })
    );
    // retry and expire go with priority 2 only.
    assert_eq!((got[1]["priority"].as_str(), got[2]["priority"].as_str()), (Some("-2"), Some("-1")));
    assert!(got[1].get("retry").is_none() && got[1].get("expire").is_none(), "{}", got[1]);
    assert_eq!(service.messages().len(), 3);
    // Plain text: html = false, no monospace.
    let mut plain = config(&server);
    plain.html = Some(false);
    sink_send(plain, &Event::jail_event(EventKind::Stop, "sshd", "h")).await;
    let last = forms(&server).pop().unwrap();
    assert!(last.get("html").is_none() && last.get("monospace").is_none(), "{last}");
    assert_eq!(last["message"], "Fail2Ban (sshd) jail stopped on h\n\nJail: sshd\nHost: h");
}

async fn sink_send(config: Config, event: &Event) {
    sink(config).send(event).await.unwrap();
}

#[tokio::test]
async fn an_ampersand_and_plus_survive_the_form() {
    // A raw `&` would cut the message there (github.com/lobsters/lobsters/issues/1081).
    let (service, _server, _) = setup();
    let server = StandIn::start(service.responder());
    let mut config = config(&server);
    config.html = Some(false);
    let mut e = ban();
    e.matches = Some("a&b=c+d %41 ;".into());
    sink(config).send(&e).await.unwrap();
    let m = &service.messages()[0];
    assert!(m.get("message").unwrap().ends_with("\na&b=c+d %41 ;"), "{:?}", m.get("message"));
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_and_where_a_digests_bans_come_from() {
    let (_service, server, sink) = setup();
    sink.send(&enriched(ban())).await.unwrap();
    let mut events: Vec<Event> =
        (1..=3).map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("203.0.113.{i}"), "h"))).collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("<a href=\"http://evil\">Org</a> & co".into());
    events[2].context.country = Some("<b>Evil</b>".into());
    events[2].context.country_code = Some("EV".into());
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = forms(&server);
    assert_eq!(
        got[0]["message"],
        "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time\n\n<b>Jail:</b> sshd\n\
         <b>Address:</b> 203.0.113.7\n<b>Failures:</b> 5\n<b>Ban time:</b> 10 min\n<b>Host:</b> host.example\n\
         <b>User:</b> root\n<b>Host name:</b> h.example (unconfirmed)\n<b>Location:</b> Tokyo, Japan (JP)\n\
         <b>Network:</b> AS64500 Example Net\n<b>Repeat:</b> 4th ban\n\n<b>Matched log lines:</b>\n\
         sshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password again"
    );
    assert_eq!(got[1]["title"], "Fail2Ban on h: 3 bans in 1 jail");
    assert_eq!(
        got[1]["message"],
        "<b>Banned:</b> 3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 \
         &lt;a href=&quot;http://evil&quot;&gt;Org&lt;/a&gt; &amp; co; countries: Japan 2, &lt;b&gt;Evil&lt;/b&gt; 1\n\
         <b>sshd:</b>\nbanned 3: 203.0.113.1, 203.0.113.2, 203.0.113.3"
    );
    // Plain text shows it as it is.
    let (_service, server, _) = setup();
    let mut config = config(&server);
    config.html = Some(false);
    let plain = super::new("push", config).unwrap();
    plain.send(&enriched(ban())).await.unwrap();
    let message = forms(&server)[0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("\nUser: root\nHost name: h.example (unconfirmed)\nLocation: Tokyo, Japan (JP)\n"),
        "{message}"
    );
}

#[tokio::test]
async fn digest_names_every_address_that_fits_and_counts_the_rest_exactly() {
    let (service, server, sink) = setup();
    let small = Digest::new(vec![
        Event::jail_event(EventKind::Start, "web", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.1", "host.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.2", "host.example"),
        Event::target_event(EventKind::Unban, "sshd", "203.0.113.1", "host.example"),
    ]);
    sink.send_digest(&small).await.unwrap();
    let got = &forms(&server)[0];
    assert_eq!(got["title"], "Fail2Ban on host.example: 2 bans, 1 unban, 1 jail start in 2 jails");
    assert_eq!(
        got["message"],
        "<b>web:</b> jail started\n<b>sshd:</b>\nbanned 2: 203.0.113.1, 203.0.113.2\nunbanned 1: 203.0.113.1"
    );
    assert_eq!(got["priority"], "0");
    // A storm: 1000 bans and 200 unbans in one message of at most 1,024 characters.
    let mut events: Vec<Event> = (0..1000)
        .map(|i| {
            let mut e =
                Event::target_event(EventKind::Ban, "sshd", format!("198.51.{}.{}", i / 256, i % 256), "host.example");
            e.time = Some(1_700_000_000.0 + f64::from(i));
            e
        })
        .collect();
    events.extend((0..200).map(|i| Event::target_event(EventKind::Unban, "nginx", format!("2001:db8::{i:x}"), "h")));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    assert_eq!(server.requests().len(), 2, "one message per digest");
    let body = &forms(&server)[1];
    assert_eq!(body["title"], "Fail2Ban on host.example: 1000 bans, 200 unbans in 2 jails");
    assert_eq!(body["timestamp"], "1700000999", "the last event's time");
    let text = body["message"].as_str().unwrap();
    assert!(text.chars().count() <= MAX_MESSAGE, "{}", text.chars().count());
    assert!(text.starts_with("<b>sshd:</b>\nbanned 1000: 198.51.0.0, 198.51.0.1, "), "{text:.80}");
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("banned"))
        .filter_map(|l| l.split_once(": ").map(|(_, ids)| ids))
        .flat_map(|ids| ids.split(", "))
        .collect();
    // In order, none twice, none made up.
    for (i, id) in listed.iter().enumerate() {
        assert_eq!(*id, format!("198.51.{}.{}", i / 256, i % 256));
    }
    let last = text.lines().last().unwrap();
    assert_eq!(last, format!("… and {} more not listed (Pushover's 1,024-character limit)", 1200 - listed.len()));
    assert!(listed.len() > 50, "{}", listed.len());
    assert_eq!(service.messages()[1].get("message"), Some(text));
}

#[tokio::test]
async fn alerts_are_normal_and_recoveries_quiet() {
    let (_service, server, sink) = setup();
    let mut alert = Alert {
        subject: "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07".into(),
        text: "last error: invalid_auth <b>\r\n3 event(s) waiting".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    alert.recovered = true;
    alert.subject = "f2b-notify on h: sink `api` recovered".into();
    alert.text = String::new();
    sink.send_alert(&alert).await.unwrap();
    assert!(sink.carries_alerts());
    let got = forms(&server);
    assert_eq!(got[0]["title"], "f2b-notify on h: sink `api` failing since 2026-11-25 12:03:07");
    assert_eq!(got[0]["message"], "last error: invalid_auth &lt;b&gt;\n3 event(s) waiting");
    assert_eq!((got[0]["priority"].as_str(), got[1]["priority"].as_str()), (Some("0"), Some("-1")));
    // An alert without text says its subject: Pushover refuses a blank message.
    assert_eq!(got[1]["message"], "f2b-notify on h: sink `api` recovered");
    assert!(got[0].get("timestamp").is_none());
}

/// Text an attacker controls (user, matched lines, even the id), every trick at once.
const HOSTILE: &[&str] = &[
    "<!channel>",
    "@everyone",
    "@here",
    "<b>x</b>",
    "<a href=\"http://evil\">tap</a>",
    "<font color=\"#ff0000\">red</font>",
    "*_~",
    "`code` ```",
    "[a](http://x)",
    "&amp; &lt;",
    "\r\nX-Header: y",
    "\u{202e}evil\u{fffd}\u{feff}\u{0}\u{1b}[31m",
    "\"quoted\" \\back\\",
    "token=x&user=y&priority=2",
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
        country: Some(format!("<b>tap</b>\r\nFAKE-COUNTRY: y {all}")),
        country_code: Some("XX".into()),
        city: None,
        asn: Some(64500),
        as_org: Some(format!("{all}\r\nFAKE-ORG: y")),
    };
    e
}

/// The tags in `html`.
fn tags(html: &str) -> Vec<String> {
    html.match_indices('<').map(|(i, _)| html[i..].split_inclusive('>').next().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn hostile_text_arrives_inert_and_within_limits() {
    for (html, monospace) in [(None, false), (Some(false), false), (None, true)] {
        let (service, server, _) = setup();
        let mut config = config(&server);
        config.html = html;
        config.monospace = monospace;
        // A template that puts the matched lines into the lead too.
        config.templates = Templates { ban: Some("<b>{{ user }}</b> {{ matches }}".into()), ..Templates::default() };
        if html == Some(false) || monospace {
            config.templates.ban = Some("{{ user }} {{ matches }}".into());
        }
        let sink = sink(config);
        let e = hostile_event("ssh-ü", "höst.example");
        sink.send(&e).await.unwrap_or_else(|err| panic!("html={html:?}: {err}"));
        sink.send_digest(&Digest::new(vec![e.clone(), e.clone()])).await.unwrap();
        sink.send_alert(&Alert { subject: HOSTILE.join(" "), text: HOSTILE.join("\n"), recovered: false })
            .await
            .unwrap();
        assert_eq!(service.messages().len(), 3, "html={html:?} monospace={monospace}");
        for m in service.messages() {
            // Only what the sink meant to send: no parameter smuggled in by the text.
            let keys: Vec<&str> = m.params.keys().map(String::as_str).collect();
            assert!(
                keys.iter().all(|k| [
                    "token",
                    "user",
                    "title",
                    "message",
                    "priority",
                    "html",
                    "monospace",
                    "timestamp"
                ]
                .contains(k)),
                "{keys:?}"
            );
            assert_ne!(m.get("priority"), Some("2"));
            let title = m.get("title").unwrap();
            assert!(title.chars().count() <= MAX_TITLE);
            let message = m.get("message").unwrap();
            assert!(message.chars().count() <= MAX_MESSAGE, "{}", message.chars().count());
            // The CR/LF in the id and user faked no line; no carriage return is left at all.
            assert!(!message.contains('\r') && !message.lines().any(|l| l.starts_with("FAKE")), "{message:.300}");
            assert!(!message.contains('\u{202e}') && !title.contains('\u{202e}'), "{message:.300}");
            if html.is_none() && !monospace {
                // Only the sink's own bold: every `<` of the text arrives as `&lt;`, every
                // `&` starts an entity the sink wrote.
                for tag in tags(message) {
                    assert!(tag == "<b>" || tag == "</b>", "{tag} in {message:.400}");
                }
                let unescaped =
                    message.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").replace("&quot;", "");
                assert!(!unescaped.contains('&') && !unescaped.contains('"'), "{message:.400}");
            }
        }
        let one = service.messages()[0].get("message").unwrap().to_owned();
        assert!(one.contains("[cut "), "the 100 KB user is cut visibly: {one:.200}");
        let title = service.messages()[0].get("title").unwrap().to_owned();
        assert!(title.starts_with("Fail2Ban (ssh-ü)") && title.ends_with("on höst.example"), "{title}");
        for label in ["Host name:", "Location:", "Network:"] {
            assert!(one.contains(label), "{label} missing: {one}");
        }
        let digest = service.messages()[1].get("message").unwrap().to_owned();
        assert!(digest.contains("Banned:") && digest.contains("from AS64500 "), "{digest}");
        if html.is_none() && !monospace {
            assert!(one.contains("<b>Location:</b> &lt;b&gt;tap&lt;/b&gt;  FAKE-COUNTRY: y"), "{one}");
            assert!(one.contains("&lt;a href=&quot;http://evil&quot;&gt;tap&lt;/a&gt;"), "{one}");
            // (What enrichment found leaves the matched lines no room here: the alert has them.)
            let alert = service.messages()[2].get("message").unwrap().to_owned();
            assert!(alert.contains("&quot;quoted&quot; \\back\\\ntoken=x&amp;user=y&amp;priority=2"), "{alert}");
        } else {
            // Plain text: shown as it is, flattened to lines.
            assert!(one.contains("<a href=\"http://evil\">tap</a>"), "{one}");
            let alert = service.messages()[2].get("message").unwrap().to_owned();
            assert!(alert.contains("\"quoted\" \\back\\\ntoken=x&user=y&priority=2"), "{alert}");
        }
    }
}

#[tokio::test]
async fn the_matched_lines_are_cut_first() {
    let (service, _server, _) = setup();
    let server = StandIn::start(service.responder());
    let sink = sink(config(&server));
    let mut e = ban();
    e.user = Some("u".repeat(500));
    e.jail = "j".repeat(500);
    e.host = "h".repeat(500);
    e.matches = Some((1..=40).map(|i| format!("line {i:02} {}", "x".repeat(120))).collect::<Vec<_>>().join("\n"));
    // Enrichment cuts its names, but the message does not count on it.
    e.context = Context {
        hostname: Some("n".repeat(500)),
        country: Some("c".repeat(500)),
        asn: Some(64500),
        as_org: Some("o".repeat(500)),
        ..Context::default()
    };
    e.bancount = Some(4);
    sink.send(&e).await.unwrap();
    let m = service.messages()[0].get("message").unwrap().to_owned();
    assert!(m.chars().count() <= MAX_MESSAGE, "{}", m.chars().count());
    // Every field is there, each cut to its share.
    for label in [
        "Jail:",
        "Address:",
        "Failures:",
        "Ban time:",
        "Host:",
        "User:",
        "Host name:",
        "Location:",
        "Network:",
        "Repeat:",
    ] {
        assert!(m.contains(&format!("<b>{label}</b> ")), "{label}: {m}");
    }
    assert!(m.contains("<b>Host name:</b> nnn") && m.contains("<b>Repeat:</b> 4th ban"), "{m}");
    // The newest lines that fit, and the exact count of the rest.
    let shown: Vec<&str> = m.lines().filter(|l| l.starts_with("line ")).collect();
    assert!(!shown.is_empty() && shown.last().unwrap().starts_with("line 40 "), "{m}");
    assert!(m.contains(&format!("\n… {} earlier line(s) not shown\n", 40 - shown.len())), "{m}");
    // A line too long for the room left is cut, not left out, when it is the only one.
    let mut e = ban();
    e.matches = Some("y".repeat(5000));
    sink.send(&e).await.unwrap();
    let m = service.messages()[1].get("message").unwrap().to_owned();
    assert!(m.contains("\n<b>Matched log lines:</b>\nyyy") && m.ends_with("chars]"), "{m}");
}

/// An answer and how it must be classified: the reply, transient, the wait asked for, text
/// the error must carry.
type FailureCase = (Reply, bool, Option<Duration>, &'static str);

#[tokio::test]
async fn every_failure_class() {
    let s = Duration::from_secs;
    let cases: Vec<FailureCase> = vec![
        (
            error(400, Some(("message", "cannot be blank")), &["message cannot be blank"]),
            false,
            None,
            "message cannot be blank (HTTP 400): Pushover refused the message f2b-notify built",
        ),
        (
            error(400, Some(("retry", "is too small, must be at least 30 seconds")), &["retry is invalid"]),
            false,
            None,
            "retry is invalid; retry: is too small, must be at least 30 seconds (HTTP 400): check `priority`, `retry`",
        ),
        (error(400, Some(("sound", "invalid")), &["sound is invalid"]), false, None, "check `sound`"),
        (error(400, None, &["something else"]), false, None, "something else (HTTP 400)"),
        (error(404, None, &["resource not found"]), false, None, "check `api_url`"),
        (Reply::new(413, "<html>too large</html>"), false, None, "<html>too large</html> (HTTP 413)"),
        // Pushover says never to repeat a 4xx: a 408 or 409 too.
        (Reply::new(408, ""), false, None, "no error text (HTTP 408)"),
        (Reply::json(200, &json!({"status": 0, "errors": ["odd"], "request": "x"})), false, None, "odd (HTTP 200)"),
        (Reply::new(200, "<html>captive portal</html>"), false, None, "without Pushover's JSON"),
        (Reply::new(301, "").header("Location", "https://x"), false, None, "does not follow"),
        (Reply::new(500, "oops"), true, Some(s(5)), "oops (HTTP 500): a problem on Pushover's side"),
        (Reply::new(502, "<html>bad gateway</html>"), true, Some(s(10)), "(HTTP 502)"),
        // A Retry-After longer than the backoff is obeyed; a shorter one is not.
        (Reply::new(503, "").header("Retry-After", "70"), true, Some(s(70)), "no error text (HTTP 503)"),
        (Reply::new(503, "").header("Retry-After", "1"), true, Some(s(40)), "(HTTP 503)"),
        // The quota without a usable reset: an hour.
        (
            error(429, Some(("token", "invalid")), &["application has exceeded current limit of 7500 messages"]),
            true,
            Some(s(3600)),
            "monthly message quota",
        ),
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
    // The backoff starts again at 5 s after a success.
    service.force([Reply::new(500, "")]);
    assert_eq!(sink.send(&ban()).await.unwrap_err().retry_after_hint(), Some(s(5)));
    assert_eq!(backoff(1), s(5));
    assert_eq!(backoff(7), s(300));
    assert_eq!(backoff(u32::MAX), RETRY_CAP);
}

#[tokio::test]
async fn the_quota_is_known_and_its_429_waits_for_the_renewal() {
    let (service, _server, sink) = setup();
    assert_eq!(sink.quota(), None);
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1800;
    service.set_quota(10_000, 9_000, reset);
    sink.send(&ban()).await.unwrap();
    assert_eq!(sink.quota(), Some(Quota { limit: Some(10_000), remaining: Some(999), reset: Some(reset) }));
    // Used up: Pushover's 429, waiting until the renewal (within the second).
    service.set_quota(10_000, 10_000, reset);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let wait = err.retry_after_hint().unwrap();
    assert!(wait <= Duration::from_secs(1800) && wait > Duration::from_secs(1797), "{wait:?}");
    let text = err.to_string();
    assert!(text.starts_with("application has exceeded current limit of 10000 messages (HTTP 429): the application's monthly message quota of 10000 messages is used up"), "{text}");
    assert!(text.contains("renewed at "), "{text}");
    assert_error_clean(&err);
    // Not taken for a refused token, though the 429 says `"token":"invalid"`.
    service.set_quota(10_000, 0, reset);
    sink.send(&ban()).await.unwrap();
    // A renewal further away than an hour: an hour; a renewal in the past: 5 minutes.
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let q = |reset: u64| Quota { limit: None, remaining: Some(0), reset: Some(reset) };
    assert_eq!(q(secs + 20 * 86_400).wait(now), QUOTA_WAIT);
    assert_eq!(q(secs - 10).wait(now), QUOTA_CLOCK_WAIT);
    assert_eq!(Quota::default().wait(now), QUOTA_WAIT);
    // The stand-in's forced 429 renews two seconds after it is sent: the wait says so.
    service.force([quota_exceeded(10_000, 2)]);
    let wait = sink.send(&ban()).await.unwrap_err().retry_after_hint().unwrap();
    assert!(wait >= Duration::from_millis(1900) && wait <= Duration::from_secs(3), "{wait:?}");
}

#[tokio::test]
async fn a_refused_token_or_user_stops_all_sending() {
    for (reply, key) in [(token_invalid(), "token"), (user_invalid(), "user")] {
        let (service, server, sink) = setup();
        service.force([reply]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(err.to_string().contains(&format!("check `{key}`")), "{err}");
        assert_error_clean(&err);
        // Nothing more goes to Pushover: repeated refusals get the address blocked.
        for _ in 0..3 {
            let again = sink.send(&ban()).await.unwrap_err();
            assert!(again.is_permanent() && again.to_string().starts_with("not sent: Pushover refused"), "{again}");
            assert!(again.to_string().contains(&format!("check `{key}`")), "{again}");
            assert_error_clean(&again);
        }
        assert!(sink.send_alert(&Alert { subject: "s".into(), text: "t".into(), recovered: false }).await.is_err());
        assert_eq!(server.requests().len(), 1);
    }
    // The stand-in refuses a key it does not know, as Pushover does.
    let service = Service::new(TOKEN, "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    let server = StandIn::start(service.responder());
    let err = sink(config(&server)).send(&ban()).await.unwrap_err();
    assert!(err.to_string().starts_with("user identifier is not a valid user, group, or subscribed user key"), "{err}");
    assert_error_clean(&err);
    let service = Service::new("azGDORePK8gMaC0QOYAMyEEuzJnyUi", USER);
    let server = StandIn::start(service.responder());
    let err = sink(config(&server)).send(&ban()).await.unwrap_err();
    assert!(err.to_string().starts_with("application token is invalid"), "{err}");
    // A group of several keys.
    let service = Service::new(TOKEN, USER);
    service.add_user("uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    let server = StandIn::start(service.responder());
    let mut c = config(&server);
    c.user = Some(Secret::new(format!("{USER},uQiRzpo4DXghDmr9QzzfQu27cmVRsG")));
    sink(c).send(&ban()).await.unwrap();
}

#[tokio::test]
async fn an_answer_quoting_a_secret_is_redacted() {
    let (service, _server, sink) = setup();
    service.force([Reply::new(502, &format!("<html>upstream said token={TOKEN}&user={USER}</html>"))]);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.to_string().contains("token=<token>&user=<user>"), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn timeouts_closed_and_refused_connections_are_transient() {
    let service = Service::new(TOKEN, USER);
    let slow = Arc::clone(&service);
    let server = StandIn::start(Arc::new(move |r: &Request, _| {
        std::thread::sleep(Duration::from_millis(1500));
        slow.answer(r)
    }));
    let mut c = config(&server);
    c.timeout = Some(0.3);
    let err = sink(c).send(&ban()).await.unwrap_err();
    // After a timeout Pushover may have the message: the router's longer wait applies.
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_eq!(err.retry_after_hint(), None);
    assert_error_clean(&err);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let closed = sink(Config { api_url: Some(format!("http://{addr}")), ..config(&server) });
    let err = closed.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.retry_after_hint(), Some(Duration::from_secs(5)));
    // A second failure in a row waits twice as long.
    assert_eq!(closed.send(&ban()).await.unwrap_err().retry_after_hint(), Some(Duration::from_secs(10)));
    assert_error_clean(&err);
    task.abort();
    let _ = task.await;

    let port = StandIn::reserve_port();
    let err = sink(Config { api_url: Some(format!("http://127.0.0.1:{port}")), ..config(&server) })
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_transient() && err.to_string().starts_with("cannot connect"), "{err}");
    assert_eq!(err.retry_after_hint(), Some(Duration::from_secs(5)));
    assert_error_clean(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let addr = tls.addr;
    let c = Config {
        token: Some(Secret::new(TOKEN)),
        user: Some(Secret::new(USER)),
        api_url: Some(format!("https://127.0.0.1:{}", addr.port())),
        ..Config::default()
    };
    let err = sink(c).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn preview_shows_the_request_without_the_secrets() {
    let (_service, server, sink) = setup();
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    assert!(
        preview.starts_with(&format!("POST to {} (form-encoded; the application token and the user key in the body, not shown), these parameters:\n{{\n  \"title\": \"Fail2Ban (sshd) ban on host.example\",\n  \"message\": \"Fail2Ban (sshd) banned IP 203.0.113.7", server.url(PATH))),
        "{preview}"
    );
    assert!(preview.contains("\"priority\": 0,\n  \"html\": 1,\n  \"timestamp\": 1700000000\n}"), "{preview}");
    // The preview sent nothing.
    assert!(server.requests().is_empty());
}

fn load(toml: &str) -> Result<Config, String> {
    Figment::new().merge(Toml::string(toml)).extract::<Config>().map_err(|e| e.to_string())
}

#[test]
fn config_defaults_and_value_checks() {
    let c = load("").unwrap();
    let p = c.priority.values;
    assert_eq!([p.start, p.stop, p.ban, p.unban].map(Priority::get), [-1, -1, 0, -1]);
    assert!(c.html.is_none() && !c.monospace && c.device.is_none() && c.sound.is_none());
    let c = load("priority = \"HIGH\"").unwrap();
    assert_eq!((c.priority.values.start, c.priority.table), (Priority::HIGH, false));
    let c = load("priority = -2").unwrap();
    assert_eq!(c.priority.values.ban, Priority::LOWEST);
    let c = load("[priority]\nunban = \"normal\"").unwrap();
    assert_eq!(
        (c.priority.values.unban, c.priority.values.ban, c.priority.table),
        (Priority::NORMAL, Priority::NORMAL, true)
    );
    for (bad, want) in [
        (
            "priority = 3",
            "`priority` = `3` is not a Pushover priority: use -2 to 2, or lowest, low, normal, high, emergency",
        ),
        ("priority = \"loud\"", "`priority` = `loud` is not a Pushover priority"),
        ("priority = { ban = -3 }", "`priority.ban` = `-3` is not a Pushover priority"),
        ("priority = { bann = 1 }", "unknown event `bann` in `priority`: expected start, stop, ban or unban"),
        ("priority = [1]", "`priority` must be a priority (-2 to 2, or a name), not a list"),
        ("priority = 1.5", "`priority` = `1.5` is not a Pushover priority"),
        ("html = \"yes\"", "html"),
        ("tokn = \"x\"", "unknown field: found `tokn`"),
        ("token = 123456789", "`token` must be a string, not an integer"),
        ("user = 123456789", "`user` must be a string, not an integer"),
        ("retry = -5", "retry"),
    ] {
        let err = load(bad).expect_err(bad);
        assert!(err.contains(want), "{bad}: {err}");
        assert!(!err.contains("123456789"), "{err}");
    }
}

#[test]
fn config_errors_name_the_key_never_the_secret() {
    let build = |c: Config| super::new("push", c).map(|_| ()).unwrap_err().to_string();
    let ok = || Config { token: Some(Secret::new(TOKEN)), user: Some(Secret::new(USER)), ..Config::default() };
    let emergency = |table: bool| PriorityConfig {
        values: Priorities { ban: Priority::EMERGENCY, ..Priorities::default() },
        table,
    };
    let cases: Vec<(Config, &str)> = vec![
        (Config::default(), "missing `token` (or `token_file`)"),
        (Config { user: None, ..ok() }, "missing `user` (or `user_file`)"),
        (Config { token: Some(Secret::new("SECRETshort")), ..ok() }, "`token` is not a Pushover application token: an application's API token is 30 letters and digits"),
        (Config { token: Some(Secret::new(format!("{TOKEN}\n"))), ..ok() }, ""),
        (Config { token: Some(Secret::new("SECRET-ppTokenAbcdefghij012345")), ..ok() }, "is not a Pushover application token"),
        (Config { user: Some(Secret::new("SECRET user")), ..ok() }, "`user` is not a Pushover user or group key: a user or group key is 30 letters and digits"),
        (Config { user: Some(Secret::new(format!("{USER}, {USER}"))), ..ok() }, "separated by commas without spaces"),
        (Config { user: Some(Secret::new(vec![USER; 51].join(","))), ..ok() }, "it names 51 keys: Pushover takes at most 50"),
        (Config { token_file: Some("/x".into()), ..ok() }, "give either `token` or `token_file`, not both"),
        (Config { api_url: Some(format!("https://api.pushover.net/{TOKEN}")), ..ok() }, "`api_url` holds the token or the user key"),
        (Config { api_url: Some("api.pushover.net".into()), ..ok() }, "`api_url` is not a valid URL: it has no scheme"),
        (Config { api_url: Some("ftp://api.pushover.net".into()), ..ok() }, "`api_url` must be an https:// URL"),
        (Config { api_url: Some("https://api.pushover.net/?x=1".into()), ..ok() }, "without a user, password, query or fragment"),
        (Config { api_url: Some("https://api.pushover.net/1/messages.json".into()), ..ok() }, "leave out /1/messages.json"),
        (Config { html: Some(true), monospace: true, ..ok() }, "`html` and `monospace` cannot both be true"),
        (Config { priority: emergency(true), ..ok() }, "`priority.ban` = 2 (emergency: repeated until acknowledged) needs `retry` (seconds between repeats, at least 30)"),
        (Config { priority: emergency(false), retry: Some(30), ..ok() }, "`priority` = 2 (emergency: repeated until acknowledged) needs `expire`"),
        (Config { priority: emergency(true), retry: Some(29), expire: Some(60), ..ok() }, "`retry` = 29 is below Pushover's minimum of 30 seconds"),
        (Config { priority: emergency(true), retry: Some(30), expire: Some(10_801), ..ok() }, "`expire` = 10801 must be 1 to 10800 seconds"),
        (Config { expire: Some(0), ..ok() }, "`expire` = 0 must be 1 to 10800"),
        (Config { device: Some("my phone".into()), ..ok() }, "`device` `my phone` is not a Pushover device name"),
        (Config { device: Some("d".repeat(26)), ..ok() }, "is not a Pushover device name"),
        (Config { device: Some("a,,b".into()), ..ok() }, "is not a Pushover device name"),
        (Config { sound: Some("two words".into()), ..ok() }, "`sound` `two words` is not a sound's name"),
        (Config { url: Some("dashboard".into()), ..ok() }, "`url` `dashboard` is not a URL"),
        (Config { url: Some(format!("https://x/{}", "p".repeat(503))), ..ok() }, "is longer than Pushover's 512 characters"),
        (Config { url_title: Some("Dashboard".into()), ..ok() }, "`url_title` needs `url`"),
        (Config { url: Some("https://x".into()), url_title: Some("t".repeat(101)), ..ok() }, "must be one line of 1 to 100 characters"),
        (Config { timeout: Some(31.0), ..ok() }, "at most 30 seconds"),
        (Config { templates: Templates { ban: Some("{% if %}".into()), ..Templates::default() }, ..ok() }, "template for `ban`"),
        (
            Config { templates: Templates { unban: Some("<p>{{ id }}</p>".into()), ..Templates::default() }, ..ok() },
            "template for `unban`: Pushover's HTML has no `<p>`",
        ),
        (
            Config { templates: Templates { ban: Some("<B>x</B> <br/>".into()), ..Templates::default() }, ..ok() },
            "has no `<br>`",
        ),
    ];
    for (config, want) in cases {
        let built = super::new("push", config.clone());
        if want.is_empty() {
            // A trailing newline (pasted) is not part of the key.
            assert!(built.is_ok(), "{:?}", built.err());
            continue;
        }
        let err = build(config);
        assert!(err.contains(want), "{err} lacks {want}");
        assert!(!err.contains("SECRET") && !err.contains("ppToken"), "{err}");
    }
    // Templates with Pushover's tags pass, and any tag when the message is plain text.
    let tagged = Templates {
        ban: Some(
            "<b>{{ id }}</b> <font color=\"#f00\">x</font> <a href=\"https://x\">y</a> <i>i</i> <u>u</u> a < b".into(),
        ),
        ..Templates::default()
    };
    assert!(super::new("push", Config { templates: tagged, ..ok() }).is_ok());
    let other = Templates { ban: Some("<p>{{ id }}</p>".into()), ..Templates::default() };
    assert!(super::new("push", Config { templates: other, html: Some(false), ..ok() }).is_ok());
    // Files: a key that is not one is named by its file, never quoted.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("user");
    std::fs::write(&file, "SECRETnotakey\n").unwrap();
    let err = build(Config { user: None, user_file: Some(file.clone()), ..ok() });
    assert!(
        err.contains(&format!("`user_file` {} does not hold a Pushover user or group key", file.display())),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
    std::fs::write(&file, [USER.as_bytes(), b"\xff"].concat()).unwrap();
    let err = build(Config { user: None, user_file: Some(file), ..ok() });
    assert!(err.contains("`user_file`") && err.contains("not valid UTF-8") && !err.contains("SECRET"), "{err}");
    let err = build(Config { token: None, token_file: Some(dir.path().join("nope")), ..ok() });
    assert!(err.contains("cannot read `token_file`"), "{err}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_check() {
    let (_service, server, sink) = setup();
    assert_no_secret(&format!("{sink:?}"));
    assert!(!format!("{:?}", config(&server)).contains("SECRET"));
    assert!(sink.check().is_empty(), "{:?}", sink.check());
    assert_eq!(sink.min_interval(), MIN_INTERVAL);
    assert_eq!(sink.kind(), "pushover");
    assert_eq!(sink.endpoint().as_str(), server.url(PATH));
    let default = super::new(
        "push",
        Config { token: Some(Secret::new(TOKEN)), user: Some(Secret::new(USER)), ..Config::default() },
    )
    .unwrap();
    assert_eq!(default.endpoint().as_str(), "https://api.pushover.net/1/messages.json");
}

#[cfg(unix)]
#[test]
fn check_warns_about_readable_secret_files_plain_http_and_unused_settings() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (token, user) = (dir.path().join("token"), dir.path().join("user"));
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::write(&user, format!("{USER}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o640)).unwrap();
    let files = || Config { token_file: Some(token.clone()), user_file: Some(user.clone()), ..Config::default() };
    let lines = sink(files()).check();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("`token_file`") && lines[0].contains("mode 644"), "{lines:?}");
    assert!(lines[1].contains("`user_file`") && lines[1].contains("mode 640"), "{lines:?}");
    for line in &lines {
        assert_no_secret(line);
    }
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink(files()).check().is_empty());
    assert!(sink(Config { api_url: Some("http://localhost:8080".into()), ..files() }).check().is_empty());
    let lines = sink(Config { api_url: Some("http://pushover.example.com".into()), ..files() }).check();
    assert_eq!(
        lines,
        ["`api_url` is a plain http:// URL to another machine: every request, with the application token and the user key, crosses the network unencrypted; use https://"]
    );
    let lines = sink(Config { retry: Some(60), ..files() }).check();
    assert_eq!(lines, ["`retry` and `expire` only matter for priority 2 (emergency), which no event of this sink has"]);
}
