//! The webhook sink against the generic endpoint stand-in (`f2b_notify_standins::webhook`),
//! a real HTTP server on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError};
use f2b_notify_standins::webhook::Endpoint;
use f2b_notify_standins::{Reply, StandIn};
use serde_json::{json, Value};

use super::{Config, Method, WebhookSink};

/// The secret part of the URL (long enough to be treated as a token when an answer quotes
/// it back): it must never show up in any error, `Debug`, `check` or preview.
const PATH: &str = "/hooks/SECRETxyzzy0123456789abcdef";
/// A bearer token, likewise.
const TOKEN: &str = "Bearer TOKENsecret-42-abcdefgh";

/// A stand-in endpoint, the server it runs on, and the URL to it.
struct Hook {
    endpoint: Arc<Endpoint>,
    server: StandIn,
}

impl Hook {
    fn new() -> Self {
        Self::with(Endpoint::new(PATH))
    }

    fn with(endpoint: Arc<Endpoint>) -> Self {
        let server = StandIn::start(endpoint.responder());
        Self { endpoint, server }
    }

    fn url(&self) -> String {
        self.server.url(PATH)
    }

    fn config(&self) -> Config {
        Config { url: Some(Secret::new(self.url())), ..Config::default() }
    }

    fn sink(&self) -> WebhookSink {
        super::new("hook", self.config()).unwrap()
    }
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.time = Some(1_700_000_000.5);
    e.bantime = Some(600);
    e
}

/// Every text a failure or the sink shows, checked for the URL's secret part and the token.
fn assert_no_secret(text: &str) {
    for secret in ["SECRETxyzzy", "TOKENsecret", "file-secret-value"] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
}

fn assert_error_has_no_secret(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

#[tokio::test]
async fn default_body_for_each_event_kind_is_exact() {
    let hook = Hook::new();
    let sink = hook.sink();
    let mut with_log = ban();
    with_log.user = Some("root".into());
    with_log.matches = Some("line 1\nline 2".into());
    with_log.restored = true;
    with_log.bantime = Some(-1);
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &with_log, &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let got = hook.endpoint.accepted();
    assert_eq!(got.len(), 5);
    // The exact bytes of the first: keys in the documented order.
    assert_eq!(
        got[0].body,
        r#"{"type":"event","text":"Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)","event":{"kind":"ban","jail":"sshd","id":"203.0.113.7","ip":"203.0.113.7","failures":5,"time":1700000000.5,"bantime":600,"restored":false,"user":null,"matches":null,"host":"host.example","bancount":null,"hostname":null,"hostname_confirmed":null,"country":null,"country_code":null,"city":null,"asn":null,"as_org":null}}"#
    );
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(
        got[1].json(),
        json!({"type": "event", "text": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s) (restored at restart)",
               "event": {"kind": "ban", "jail": "sshd", "id": "203.0.113.7", "ip": "203.0.113.7", "failures": 5,
                         "time": 1700000000.5, "bantime": -1, "restored": true, "user": "root",
                         "matches": "line 1\nline 2", "host": "host.example", "bancount": null, "hostname": null, "hostname_confirmed": null, "country": null,
                         "country_code": null, "city": null, "asn": null, "as_org": null}})
    );
    assert_eq!(
        got[2].json(),
        json!({"type": "event", "text": "Fail2Ban (sshd) unbanned IP 2001:db8::1",
               "event": {"kind": "unban", "jail": "sshd", "id": "2001:db8::1", "ip": "2001:db8::1", "failures": null,
                         "time": null, "bantime": null, "restored": false, "user": null, "matches": null,
                         "host": "host.example", "bancount": null, "hostname": null, "hostname_confirmed": null, "country": null,
                         "country_code": null, "city": null, "asn": null, "as_org": null}})
    );
    let jail = |kind: &str, text: &str| {
        json!({"type": "event", "text": text,
               "event": {"kind": kind, "jail": "sshd", "id": null, "ip": null, "failures": null, "time": null,
                         "bantime": null, "restored": false, "user": null, "matches": null, "host": "host.example", "bancount": null, "hostname": null, "hostname_confirmed": null, "country": null,
                         "country_code": null, "city": null, "asn": null, "as_org": null}})
    };
    assert_eq!(got[3].json(), jail("start", "Fail2Ban (sshd) jail started on host.example"));
    assert_eq!(got[4].json(), jail("stop", "Fail2Ban (sshd) jail stopped on host.example"));
    // No pacing of its own: `[delivery] min_interval` sets one.
    assert_eq!(sink.min_interval(), Duration::ZERO);
}

#[tokio::test]
async fn default_digest_and_alert_bodies_are_exact() {
    let hook = Hook::new();
    let sink = hook.sink();
    let digest = Digest::new(vec![
        Event::target_event(EventKind::Ban, "sshd", "192.0.2.1", "h"),
        Event::target_event(EventKind::Ban, "sshd", "192.0.2.2", "h"),
        Event::target_event(EventKind::Unban, "web", "not-an-ip", "h"),
    ]);
    sink.send_digest(&digest).await.unwrap();
    let alert = Alert {
        subject: "f2b-notify: sink `ops` is failing".into(),
        text: "last error: HTTP 503\nsince 10 min".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    assert!(sink.carries_alerts());
    let got = hook.endpoint.bodies();
    let event = |kind: &str, jail: &str, id: &str, ip: Value| {
        json!({"kind": kind, "jail": jail, "id": id, "ip": ip, "failures": null, "time": null, "bantime": null,
               "restored": false, "user": null, "matches": null, "host": "h", "bancount": null, "hostname": null,
               "hostname_confirmed": null, "country": null, "country_code": null, "city": null, "asn": null,
               "as_org": null})
    };
    assert_eq!(
        got[0],
        json!({
            "type": "digest",
            "title": "Fail2Ban on h: 2 bans, 1 unban in 2 jails",
            "origins": null,
            "text": "Fail2Ban on h: 2 bans, 1 unban in 2 jails\n\nsshd:\n  banned 2: 192.0.2.1, 192.0.2.2\n\nweb:\n  unbanned 1: not-an-ip\n",
            "host": "h",
            "count": 3,
            "events": [
                event("ban", "sshd", "192.0.2.1", json!("192.0.2.1")),
                event("ban", "sshd", "192.0.2.2", json!("192.0.2.2")),
                event("unban", "web", "not-an-ip", Value::Null),
            ]
        })
    );
    assert_eq!(
        got[1],
        json!({"type": "alert", "text": "f2b-notify: sink `ops` is failing\nlast error: HTTP 503\nsince 10 min",
               "alert": {"subject": "f2b-notify: sink `ops` is failing", "text": "last error: HTTP 503\nsince 10 min",
                         "recovered": false}})
    );
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_is_in_the_body_the_templates_and_a_digests_origins() {
    let hook = Hook::new();
    hook.sink().send(&enriched(ban())).await.unwrap();
    let mut events: Vec<Event> =
        (1..=3).map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"))).collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("Other Net".into());
    hook.sink().send_digest(&Digest::new(events.clone())).await.unwrap();
    let got = hook.endpoint.accepted();
    // The exact bytes: enrichment's keys after Fail2Ban's, flat, in the documented order.
    assert_eq!(
        got[0].body,
        r#"{"type":"event","text":"Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time","event":{"kind":"ban","jail":"sshd","id":"203.0.113.7","ip":"203.0.113.7","failures":5,"time":1700000000.5,"bantime":600,"restored":false,"user":null,"matches":null,"host":"host.example","bancount":4,"hostname":"h.example","hostname_confirmed":false,"country":"Japan","country_code":"JP","city":"Tokyo","asn":64500,"as_org":"Example Net"}}"#
    );
    let digest = got[1].json();
    let origins = "3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 Other Net; countries: Japan 3";
    assert_eq!(digest["origins"], origins);
    assert!(digest["text"]
        .as_str()
        .unwrap()
        .starts_with(&format!("Fail2Ban on h: 3 bans in 1 jail\nBanned: {origins}\n")));
    assert_eq!(digest["events"][2]["as_org"], "Other Net");

    // The templates have the same values, by the same names.
    let config = Config {
        body: Some(
            r#"{"h": {{ hostname }}, "ok": {{ hostname_confirmed }}, "c": {{ country }}, "cc": {{ country_code }},
"city": {{ city }}, "asn": {{ asn }}, "org": {{ as_org }}, "n": {{ bancount }}, "r": {{ repeat }},
"all": {{ context }}}"#
                .into(),
        ),
        digest_body: Some(r#"{"title": {{ title }}, "origins": {{ origins }}}"#.into()),
        ..hook.config()
    };
    let sink = super::new("t", config).unwrap();
    sink.send(&enriched(ban())).await.unwrap();
    sink.send(&ban()).await.unwrap();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    sink.send_digest(&Digest::new(vec![ban()])).await.unwrap();
    let got = hook.endpoint.bodies();
    assert_eq!(
        got[2],
        json!({"h": "h.example", "ok": false, "c": "Japan", "cc": "JP", "city": "Tokyo", "asn": 64500,
               "org": "Example Net", "n": 4, "r": "4th",
               "all": "h.example (unconfirmed) · Tokyo, Japan (JP) · AS64500 Example Net"})
    );
    // Nothing found: every one of them is null.
    assert_eq!(
        got[3],
        json!({"h": null, "ok": null, "c": null, "cc": null, "city": null, "asn": null, "org": null, "n": null,
               "r": null, "all": null})
    );
    assert_eq!(got[4], json!({"title": "Fail2Ban on h: 3 bans in 1 jail", "origins": origins}));
    assert_eq!(got[5], json!({"title": "Fail2Ban on host.example: 1 ban in 1 jail", "origins": null}));
}

/// A digest names every address, in one request, whatever its size.
#[tokio::test]
async fn a_large_digest_names_every_address() {
    let hook = Hook::new();
    let events: Vec<Event> = (0..500)
        .map(|i| {
            let mut e = Event::target_event(EventKind::Ban, "sshd", format!("2001:db8::{i:x}"), "h");
            e.matches = Some("m".repeat(5_000));
            e
        })
        .collect();
    hook.sink().send_digest(&Digest::new(events)).await.unwrap();
    let body = &hook.endpoint.bodies()[0];
    assert_eq!(body["count"], 500);
    let events = body["events"].as_array().unwrap();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], format!("2001:db8::{i:x}"));
        // Each event's log lines are cut in a digest, visibly.
        let m = e["matches"].as_str().unwrap();
        assert!(m.chars().count() <= super::body::MAX_DIGEST_MATCHES && m.contains("[cut "), "{}", m.len());
    }
    let text = body["text"].as_str().unwrap();
    assert!((0..500).all(|i| text.contains(&format!("2001:db8::{i:x}"))));
}

#[tokio::test]
async fn a_mattermost_template_sends_the_text() {
    let hook = Hook::new();
    let config = Config { body: Some(r#"{"text": {{ text | tojson }}}"#.into()), ..hook.config() };
    let sink = super::new("mm", config).unwrap();
    sink.send(&ban()).await.unwrap();
    let digest = Digest::new(vec![ban(), Event::target_event(EventKind::Ban, "sshd", "198.51.100.9", "host.example")]);
    sink.send_digest(&digest).await.unwrap();
    let alert = Alert { subject: "sink `ops` recovered".into(), text: "delivered again".into(), recovered: true };
    sink.send_alert(&alert).await.unwrap();
    let got = hook.endpoint.accepted();
    assert_eq!(got[0].body, r#"{"text": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)"}"#);
    assert_eq!(
        got[1].json(),
        json!({"text": "Fail2Ban on host.example: 2 bans in 1 jail\n\nsshd:\n  banned 2: 203.0.113.7, 198.51.100.9\n"})
    );
    assert_eq!(got[2].json(), json!({"text": "sink `ops` recovered\ndelivered again"}));
    // The per-event text templates shape `text`.
    let config = Config {
        body: Some(r#"{"text": {{ text }}, "username": "fail2ban"}"#.into()),
        templates: f2b_notify_core::Templates {
            ban: Some(":no_entry: **{{ jail }}** banned `{{ id }}` on {{ host }}".into()),
            ..Default::default()
        },
        ..hook.config()
    };
    super::new("mm", config).unwrap().send(&ban()).await.unwrap();
    assert_eq!(
        hook.endpoint.bodies()[3],
        json!({"text": ":no_entry: **sshd** banned `203.0.113.7` on host.example", "username": "fail2ban"})
    );
}

/// Home Assistant and n8n get the fields they branch on; PUT where the endpoint wants it.
#[tokio::test]
async fn a_home_assistant_template_with_put() {
    let hook = Hook::new();
    let body = r#"{"jail": {{ jail }}, "ip": {{ ip }}, "kind": {{ kind }}, "bantime": {{ bantime }},
"for": {{ bantime_human }}, "at": {{ time_iso }}, "user": {{ user }}, "restored": {{ restored }}}"#;
    let config = Config { method: Method::Put, body: Some(body.into()), ..hook.config() };
    let sink = super::new("ha", config).unwrap();
    let mut e = ban();
    e.user = Some("root".into());
    sink.send(&e).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "host.example")).await.unwrap();
    let got = hook.endpoint.accepted();
    assert_eq!(got[0].method, "PUT");
    assert_eq!(
        got[0].json(),
        json!({"jail": "sshd", "ip": "203.0.113.7", "kind": "ban", "bantime": 600, "for": "10 min",
               "at": "2023-11-14T22:13:20Z", "user": "root", "restored": false})
    );
    // Missing values are JSON's null, never minijinja's `none`.
    assert_eq!(
        got[1].json(),
        json!({"jail": "sshd", "ip": null, "kind": "start", "bantime": null, "for": null, "at": null, "user": null,
               "restored": false})
    );
}

#[tokio::test]
async fn a_digest_body_of_its_own() {
    let hook = Hook::new();
    let config = Config {
        body: Some(r#"{"text": {{ text }}}"#.into()),
        digest_body: Some(
            r#"{"count": {{ count }}, "host": {{ host }}, "ips": [{% for e in events %}{{ e.ip }}{% if not loop.last %}, {% endif %}{% endfor %}]}"#
                .into(),
        ),
        ..hook.config()
    };
    let digest = Digest::new(vec![ban(), Event::target_event(EventKind::Ban, "sshd", "198.51.100.9", "host.example")]);
    super::new("ha", config).unwrap().send_digest(&digest).await.unwrap();
    assert_eq!(
        hook.endpoint.bodies()[0],
        json!({"count": 2, "host": "host.example", "ips": ["203.0.113.7", "198.51.100.9"]})
    );
}

#[tokio::test]
async fn a_text_body_is_sent_as_written() {
    let hook = Hook::new();
    let config = Config {
        content_type: Some("text/plain; charset=utf-8".into()),
        body: Some("{{ kind }} {{ ip }} user={{ user }} failures={{ failures }}\n{{ matches }}".into()),
        ..hook.config()
    };
    let sink = super::new("text", config).unwrap();
    let mut e = ban();
    e.matches = Some("a \"quoted\" line\nsecond".into());
    sink.send(&e).await.unwrap();
    let got = hook.endpoint.accepted();
    assert_eq!(got[0].header("content-type"), Some("text/plain; charset=utf-8"));
    // Not JSON-escaped; a missing user prints as nothing.
    assert_eq!(got[0].body, "ban 203.0.113.7 user= failures=5\na \"quoted\" line\nsecond");
}

#[tokio::test]
async fn headers_arrive_and_their_values_show_nowhere() {
    let hook = Hook::with(Endpoint::requiring(PATH, "Authorization", TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook-key");
    std::fs::write(&file, "file-secret-value\n").unwrap();
    let config = Config {
        headers: BTreeMap::from([
            ("Authorization".to_owned(), Secret::new(TOKEN)),
            ("X-Source".to_owned(), Secret::new("fail2ban")),
        ]),
        header_files: BTreeMap::from([("X-Api-Key".to_owned(), file.clone())]),
        ..hook.config()
    };
    assert_no_secret(&format!("{config:?}"));
    let sink = super::new("hook", config).unwrap();
    sink.send(&ban()).await.unwrap();
    let req = &hook.endpoint.accepted()[0];
    assert_eq!(req.header("authorization"), Some(TOKEN));
    assert_eq!(req.header("x-source"), Some("fail2ban"));
    assert_eq!(req.header("x-api-key"), Some("file-secret-value"));
    // Every value goes out marked sensitive (reqwest and hyper never print it).
    assert_eq!(sink.headers.len(), 3);
    assert!(sink.headers.iter().all(|(_, v)| v.is_sensitive()));
    // Debug, check and the preview name the headers, never their values.
    let debug = format!("{sink:?}");
    assert_no_secret(&debug);
    assert!(!debug.contains("fail2ban"), "{debug}");
    assert!(debug.contains("x-api-key"), "{debug}");
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    assert!(!preview.contains("fail2ban\n") && preview.contains("x-source: (not shown)"), "{preview}");
    assert!(preview.starts_with("POST to the URL in `url` (a secret, not shown)"), "{preview}");
    // The default body, indented, keys in the order sent.
    let body = preview.split_once("this body:\n").unwrap().1;
    assert!(
        body.starts_with("{\n  \"type\": \"event\",\n  \"text\": \"Fail2Ban (sshd) banned IP 203.0.113.7"),
        "{body}"
    );
    assert!(body.contains("\n    \"kind\": \"ban\",\n    \"jail\": \"sshd\","), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        serde_json::from_str::<Value>(&hook.endpoint.accepted()[0].body).unwrap()
    );
    for line in sink.check() {
        assert_no_secret(&line);
    }
    // An endpoint that quotes the request back in its refusal: the secrets are cut out.
    hook.endpoint.force([Reply::new(
        403,
        &format!("forbidden: token {TOKEN} key file-secret-value path {PATH} from {}", hook.url()),
    )]);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("forbidden: token <redacted> key <redacted> path /hooks/<redacted>"), "{err}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn a_missing_or_wrong_header_is_a_permanent_401() {
    let hook = Hook::with(Endpoint::requiring(PATH, "Authorization", TOKEN));
    let err = hook.sink().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("(HTTP 401): the endpoint refused the request's credentials"), "{err}");
    let config = Config {
        headers: BTreeMap::from([("Authorization".to_owned(), Secret::new("Bearer wrong-token-value"))]),
        ..hook.config()
    };
    let err = super::new("hook", config).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 401") && !err.to_string().contains("wrong-token"), "{err}");
    assert!(hook.endpoint.accepted().is_empty());
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

const HOSTILE: &str = "<!channel> @everyone @here <b>x</b> *_~ `code` [a](http://x) \"quoted\" \\ \r\nX-Header: y\u{0}\u{1b}[1m \u{202e}\u{fffd} {{ 777*777 }}";

fn hostile_event() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7\r\nX-Header: y", "host\r\nX-Header: y");
    e.user = Some(format!("{HOSTILE}{}", "u".repeat(100_000)));
    e.matches = Some(format!("{HOSTILE}\n{}", "A".repeat(100_000)));
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context = Context {
        hostname: Some(HOSTILE.into()),
        hostname_confirmed: Some(true),
        country: Some(HOSTILE.into()),
        country_code: Some("XX".into()),
        city: None,
        asn: Some(64500),
        as_org: Some(HOSTILE.into()),
    };
    e
}

#[tokio::test]
async fn hostile_input_arrives_as_valid_json_within_limits_and_in_no_header() {
    let hook = Hook::new();
    let templated = Config {
        body: Some(
            r#"{"text": {{ text }}, "user": {{ user }}, "matches": {{ matches | tojson }}, "id": {{ id }},
"hostname": {{ hostname }}, "org": {{ as_org | tojson }}, "context": {{ context }}}"#
                .into(),
        ),
        ..hook.config()
    };
    for sink in [hook.sink(), super::new("t", templated).unwrap()] {
        sink.send(&hostile_event()).await.unwrap();
        sink.send_digest(&Digest::new(vec![hostile_event(), hostile_event()])).await.unwrap();
    }
    let got = hook.endpoint.accepted();
    assert_eq!(got.len(), 4);
    for (i, req) in got.iter().enumerate() {
        // Only the client's own headers and the content type: nothing from the event.
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
        for n in &names {
            assert!(["content-type", "user-agent", "accept", "host", "content-length"].contains(n), "{names:?}");
        }
        assert!(!req.headers.iter().any(|(_, v)| v.contains("X-Header")), "{:?}", req.headers);
        let body: Value = serde_json::from_str(&req.body).expect("valid JSON");
        assert!(req.body.len() < 60_000, "{}", req.body.len());
        let mut texts = Vec::new();
        strings(&body, &mut texts);
        // The matched lines keep their lines; no one-line field holds a line break.
        for t in &texts {
            if !t.starts_with("<!channel>") && !t.starts_with("Fail2Ban on") {
                assert!(!t.contains(['\r', '\n']), "{t:?}");
            }
        }
        // The attacker's text arrives as data: `{{ 777*777 }}` was not evaluated.
        assert!(!req.body.contains("603729"));
        // (The templated digest carries only `text`, the digest's summary of addresses.)
        if i != 3 {
            assert!(texts.iter().any(|t| t.contains("{{ 777*777 }}")), "{texts:?}");
        }
    }
    // The default body: user and matches cut with a visible marker.
    let event = &got[0].json()["event"];
    let user = event["user"].as_str().unwrap();
    assert!(user.chars().count() <= super::body::MAX_USER && user.contains("[cut "), "{user}");
    assert!(
        user.starts_with("<!channel> @everyone @here <b>x</b> *_~ `code` [a](http://x) \"quoted\" \\   X-Header: y")
    );
    let matches = event["matches"].as_str().unwrap();
    assert!(matches.chars().count() <= super::body::MAX_MATCHES && matches.contains("[cut "));
    assert!(matches.starts_with(HOSTILE), "{matches:?}");
    assert_eq!(event["id"], "203.0.113.7  X-Header: y");
    assert_eq!(event["host"], "host  X-Header: y");
    // What enrichment found, one line each.
    let flat = "<!channel> @everyone @here <b>x</b> *_~ `code` [a](http://x) \"quoted\" \\   X-Header: y  [1m \u{202e}\u{fffd} {{ 777*777 }}";
    assert_eq!(event["hostname"], flat);
    assert_eq!(event["as_org"], flat);
    // The template: the same values, JSON-escaped by the auto-escaping or `tojson`.
    let t = got[2].json();
    assert_eq!(t["user"], event["user"]);
    assert_eq!(t["matches"], event["matches"]);
    assert_eq!(t["id"], event["id"]);
    assert_eq!(t["hostname"], event["hostname"]);
    assert_eq!(t["org"], event["as_org"]);
    assert_eq!(t["context"], format!("{flat} · {flat} (XX) · AS64500 {flat}"));
    // A digest's origins: the hostile network and country, one line, as data.
    let origins = got[1].json()["origins"].as_str().unwrap().to_owned();
    assert_eq!(origins, format!("2 addresses, 2 of them from AS64500 {flat}; countries: {flat} 2"));
}

/// The error a config gives, as text.
fn config_error(config: Config) -> String {
    super::new("hook", config).unwrap_err().to_string()
}

#[tokio::test]
async fn template_mistakes_are_config_errors_naming_the_key() {
    let hook = Hook::new();
    let with = |body: Option<&str>, digest_body: Option<&str>| Config {
        body: body.map(str::to_owned),
        digest_body: digest_body.map(str::to_owned),
        ..hook.config()
    };
    // A value in quotes: never valid JSON, whatever the value; the error says what to write.
    let err = config_error(with(Some(r#"{"text": "{{ user }}"}"#), None));
    assert!(err.starts_with("`body` does not give valid JSON: "), "{err}");
    assert!(err.contains("write `\"text\": {{ text }}` or `{{ user | tojson }}`, never `\"{{ user }}\"`"), "{err}");
    assert!(err.contains("(for a ban whose user name"), "{err}");
    let err = config_error(with(Some(r#"{"text": "banned {{ ip }}"}"#), None));
    assert!(err.contains("join text with `~`"), "{err}");
    // Syntax, for each key.
    let err = config_error(with(Some("{% if %}"), None));
    assert!(err.starts_with("`body` is not a valid template: syntax error"), "{err}");
    let err = config_error(with(None, Some("{{ count ")));
    assert!(err.starts_with("`digest_body` is not a valid template: syntax error"), "{err}");
    // A misspelt variable.
    let err = config_error(with(Some(r#"{"u": {{ usr }}}"#), None));
    assert!(err.starts_with("`body` uses `usr`, which is no variable (did you mean `user`?)"), "{err}");
    let err = config_error(with(None, Some(r#"{"n": {{ cuont }}}"#)));
    assert!(err.starts_with("`digest_body` uses `cuont`, which is no variable (did you mean `count`?)"), "{err}");
    // A digest body that is not JSON for a digest.
    let err = config_error(with(None, Some(r#"{"n": {{ count }}"#)));
    assert!(err.starts_with("`digest_body` does not give valid JSON") && err.ends_with("(for a digest)"), "{err}");
    // A template that fails at render time (a number is not iterable).
    let err = config_error(with(Some(r#"[{% for x in failures %}{% endfor %}]"#), None));
    assert!(err.starts_with("`body` cannot be rendered"), "{err}");
    // Text without a template would be JSON: refused.
    let err = config_error(Config { content_type: Some("text/plain".into()), ..hook.config() });
    assert!(err.contains("`content_type` = \"text/plain\" needs a `body` template"), "{err}");
    let err = config_error(Config { content_type: Some("json".into()), ..hook.config() });
    assert!(err.contains("`content_type` = \"json\" is not a media type"), "{err}");
    let err = config_error(Config { content_type: Some("text/plain\r\nX-Evil: 1".into()), ..hook.config() });
    assert!(err.contains("is not a media type"), "{err}");
    // A `+json` type is JSON: the template is checked as such.
    let err = config_error(Config {
        content_type: Some("application/vnd.example+json".into()),
        body: Some(r#"{"a": "{{ id }}"}"#.into()),
        ..hook.config()
    });
    assert!(err.starts_with("`body` does not give valid JSON"), "{err}");
    // Every message: no secret.
    for err in [err, config_error(with(Some("{% if %}"), None))] {
        assert_no_secret(&err);
    }
    // A per-event text template is checked too.
    let err = config_error(Config {
        templates: f2b_notify_core::Templates { ban: Some("{% if %}".into()), ..Default::default() },
        ..hook.config()
    });
    assert!(err.starts_with("template for `ban`"), "{err}");
}

#[test]
fn header_and_url_mistakes_are_config_errors_without_the_secret() {
    let base = || Config { url: Some(Secret::new(format!("https://hooks.example{PATH}"))), ..Config::default() };
    let header =
        |name: &str, value: &str| Config { headers: BTreeMap::from([(name.to_owned(), Secret::new(value))]), ..base() };
    let cases = [
        (header("X Bad", "v"), "`headers.X Bad`: `X Bad` is not a header name"),
        (header("X-A:b", "v"), "is not a header name"),
        (header("Content-Type", "text/plain"), "set the content type with `content_type`"),
        (header("Host", "example.org"), "`Host` is written by the HTTP client itself"),
        (header("Transfer-Encoding", "chunked"), "written by the HTTP client itself"),
        (
            header("Authorization", "Bearer TOKENsecret\r\nX-Injected: 1"),
            "`headers.Authorization` holds a character a header cannot carry",
        ),
        (
            Config {
                headers: BTreeMap::from([("authorization".to_owned(), Secret::new(TOKEN))]),
                header_files: BTreeMap::from([("Authorization".to_owned(), PathBuf::from("/dev/null"))]),
                ..base()
            },
            "header `Authorization` is given twice",
        ),
        (
            Config {
                header_files: BTreeMap::from([("X-Key".to_owned(), PathBuf::from("/nonexistent/key"))]),
                ..base()
            },
            "cannot read `header_files.X-Key` file /nonexistent/key",
        ),
        (Config { url: Some(Secret::new(format!("hooks.example{PATH}"))), ..Config::default() }, "it has no scheme"),
        (
            Config { url: Some(Secret::new(format!("ftp://hooks.example{PATH}"))), ..Config::default() },
            "must be an https:// URL",
        ),
        (Config::default(), "missing `url` (or `url_file`)"),
    ];
    for (config, want) in cases {
        let err = config_error(config);
        assert!(err.contains(want), "{err} lacks {want}");
        assert_no_secret(&err);
    }
}

/// The config loader's view: values of the wrong type name the key, never the value.
#[test]
fn wrongly_typed_headers_name_the_key_never_the_value() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(tag = "type")]
    enum Sinks {
        #[serde(rename = "webhook")]
        Webhook(#[allow(dead_code)] Config),
    }
    let parse = |json: &str| serde_json::from_str::<Sinks>(json).unwrap_err().to_string();
    let err = parse(r#"{"type": "webhook", "headers": {"X-Api-Key": 123456789}}"#);
    assert!(err.starts_with("`headers.X-Api-Key` must be a string, not an integer: put it in quotes"), "{err}");
    assert!(!err.contains("123456789"), "{err}");
    assert_eq!(Secret::key_of_type_error(err.split(" at line").next().unwrap()), Some("headers.X-Api-Key"));
    let err = parse(r#"{"type": "webhook", "headers": "Bearer TOKENsecret"}"#);
    assert!(err.starts_with("`headers` must be a table"), "{err}");
    assert_no_secret(&err);
    let err = parse(r#"{"type": "webhook", "headers": {"A": ["TOKENsecret"]}}"#);
    assert!(err.starts_with("`headers.A` must be a string, not a list"), "{err}");
    assert_no_secret(&err);
    // Methods: POST or PUT, in either case.
    let ok = |json: &str| serde_json::from_str::<Config>(json).unwrap().method;
    assert_eq!(ok(r#"{"method": "put"}"#), Method::Put);
    assert_eq!(ok(r#"{"method": "POST"}"#), Method::Post);
    assert_eq!(ok("{}"), Method::Post);
    let err = serde_json::from_str::<Config>(r#"{"method": "GET"}"#).unwrap_err().to_string();
    assert!(err.starts_with("`method` must be `POST` or `PUT`, not `GET`"), "{err}");
}

/// (forced status, Retry-After, body, transient, wait asked for, text the error must carry)
type FailureCase<'a> = (u16, Option<&'a str>, &'a str, bool, Option<u64>, &'a str);

#[tokio::test]
async fn every_answer_is_classified() {
    let hook = Hook::new();
    let sink = hook.sink();
    for status in [200, 201, 202, 204] {
        hook.endpoint.force([Reply::new(status, "")]);
        sink.send(&ban()).await.unwrap();
    }
    let cases: &[FailureCase] = &[
        (301, None, "", false, None, "redirect (HTTP 301), which is not followed"),
        (302, None, "", false, None, "redirect (HTTP 302), which is not followed"),
        (307, None, "", false, None, "put the address it redirects to in `url`"),
        (308, None, "", false, None, "HTTP 308"),
        (
            400,
            None,
            "{\"message\":\"unexpected field\"}",
            false,
            None,
            "{\"message\":\"unexpected field\"} (HTTP 400): the endpoint rejected the body",
        ),
        (401, None, "", false, None, "no error text (HTTP 401): the endpoint refused the request's credentials"),
        (403, None, "Forbidden", false, None, "Forbidden (HTTP 403)"),
        (
            404,
            None,
            "The requested webhook is not registered.",
            false,
            None,
            "The requested webhook is not registered. (HTTP 404): no webhook at this URL",
        ),
        (405, None, "", false, None, "HTTP 405): the endpoint does not take this method"),
        (410, None, "", false, None, "HTTP 410"),
        (413, None, "", false, None, "too large"),
        (415, None, "", false, None, "does not take this `content_type`"),
        (422, None, "<html>\n<b>bad</b>\n</html>", false, None, "<html> <b>bad</b> </html> (HTTP 422)"),
        (501, None, "", false, None, "HTTP 501"),
        (408, None, "", true, None, "HTTP 408"),
        (408, Some("3"), "", true, Some(3), "HTTP 408"),
        (429, Some("17"), "slow down", true, Some(17), "slow down (HTTP 429)"),
        (429, None, "", true, None, "HTTP 429"),
        // A hostile or broken Retry-After is no hint: the router's own backoff applies.
        (429, Some("18446744073709551615"), "", true, None, "HTTP 429"),
        (429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "", true, None, "HTTP 429"),
        (500, None, "internal", true, None, "internal (HTTP 500)"),
        (502, None, "", true, None, "HTTP 502"),
        (503, Some("2"), "", true, Some(2), "HTTP 503"),
        (504, None, "", true, None, "HTTP 504"),
    ];
    for &(status, wait, body, transient, want_wait, text) in cases {
        let mut reply = Reply::new(status, body);
        if let Some(w) = wait {
            reply = reply.header("Retry-After", w);
        }
        if (300..400).contains(&status) {
            reply = reply.header("Location", &format!("https://elsewhere.example{PATH}"));
        }
        hook.endpoint.force([reply]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{status}: {err:?}");
        assert_eq!(err.retry_after_hint(), want_wait.map(Duration::from_secs), "{status}");
        assert!(err.to_string().contains(text), "{status}: {err} lacks {text}");
        assert_error_has_no_secret(&err);
    }
    // A long answer is cut to one line of sane length.
    hook.endpoint.force([Reply::new(400, &"x".repeat(10_000))]);
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.to_string().len() < 400, "{}", err.to_string().len());
    // No redirect was followed: every request went to the one endpoint.
    assert!(hook.server.requests().iter().all(|r| r.path == PATH));
}

#[tokio::test]
async fn the_stand_in_refuses_a_wrong_path_and_method_like_an_endpoint() {
    let hook = Hook::new();
    let wrong =
        Config { url: Some(Secret::new(hook.server.url("/hooks/OTHERxyzzy0123456789abcdef"))), ..Config::default() };
    let err = super::new("hook", wrong).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("(HTTP 404): no webhook at this URL"), "{err}");
    assert!(!err.to_string().contains("OTHERxyzzy"), "{err}");
    // A body that is not JSON, sent as JSON, is refused (the stand-in checks what arrives).
    let client = reqwest::Client::new();
    let answer =
        client.post(hook.url()).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let answer = client.get(hook.url()).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(answer.headers()["allow"], "POST, PUT");
    assert!(hook.endpoint.accepted().is_empty());
}

#[tokio::test]
async fn no_answer_closed_and_refused_connections_are_transient() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let sink = |url: String, timeout: Option<f64>| {
        super::new("hook", Config { url: Some(Secret::new(url)), timeout, ..Config::default() }).unwrap()
    };
    let err = sink(format!("http://{addr}{PATH}"), Some(0.3)).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err:?}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;

    // A server that hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let err = sink(format!("http://{addr}{PATH}"), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;

    // Nobody listening.
    let port = StandIn::reserve_port();
    let err = sink(format!("http://127.0.0.1:{port}{PATH}"), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err:?}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn an_untrusted_certificate_is_permanent() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let addr = tls.addr;
    let config = Config { url: Some(Secret::new(format!("https://{addr}{PATH}"))), ..Config::default() };
    let err = super::new("hook", config).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_has_no_secret(&err);
}

#[cfg(unix)]
#[tokio::test]
async fn check_reports_readable_secret_files_and_cleartext() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("hook.url");
    std::fs::write(&url_file, format!("http://hooks.example{PATH}\n")).unwrap();
    let key_file = dir.path().join("hook-auth");
    std::fs::write(&key_file, format!("{TOKEN}\n")).unwrap();
    for f in [&url_file, &key_file] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let config = Config {
        url_file: Some(url_file.clone()),
        header_files: BTreeMap::from([("Authorization".to_owned(), key_file.clone())]),
        ..Config::default()
    };
    let sink = super::new("hook", config.clone()).unwrap();
    let lines = sink.check();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("`url_file`") && lines[0].contains("mode 644"), "{lines:?}");
    assert!(lines[1].starts_with("`header_files.Authorization` file") && lines[1].contains("mode 644"), "{lines:?}");
    assert!(lines[2].contains("plain http:// URL to another machine"), "{lines:?}");
    for l in &lines {
        assert_no_secret(l);
    }
    for f in [&url_file, &key_file] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&url_file, format!("https://hooks.example{PATH}\n")).unwrap();
    assert!(super::new("hook", config).unwrap().check().is_empty());
    // Loopback may be plain http.
    assert!(Hook::new().sink().check().is_empty());
}

#[tokio::test]
async fn preview_shows_the_body_and_no_secret() {
    let hook = Hook::new();
    let config = Config {
        method: Method::Put,
        body: Some(r#"{"text": {{ text }}}"#.into()),
        headers: BTreeMap::from([("Authorization".to_owned(), Secret::new(TOKEN))]),
        ..hook.config()
    };
    let preview = super::new("hook", config).unwrap().preview(&ban()).unwrap();
    assert_eq!(
        preview,
        "PUT to the URL in `url` (a secret, not shown), headers Content-Type: application/json; authorization: (not shown), this body:\n{\"text\": \"Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\"}"
    );
    assert!(hook.server.requests().is_empty(), "a preview sends nothing");
}
