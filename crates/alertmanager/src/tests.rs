//! The Alertmanager sink against the loopback stand-in of Alertmanager's API v2
//! (`f2b_notify_standins::alertmanager`), which checks every post as Alertmanager does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Secret, Sink, SinkError};
use f2b_notify_standins::alertmanager::{rfc3339, Service};
use f2b_notify_standins::{Reply, StandIn};
use serde_json::{json, Value};

use super::{AlertmanagerSink, Config, OneOrMany};

/// The basic-auth password and the bearer token of these tests: never in any output.
const PASSWORD: &str = "s3cret-PASSWORD";
const TOKEN: &str = "tk-SECRET-token";

fn config(urls: &[String]) -> Config {
    Config { urls: OneOrMany::Many(urls.to_vec()), ..Config::default() }
}

fn sink_for(urls: &[String]) -> AlertmanagerSink {
    super::new("am", config(urls)).unwrap()
}

/// One Alertmanager stand-in on a loopback port.
struct Am {
    service: Arc<Service>,
    server: StandIn,
}

impl Am {
    fn start() -> Self {
        Self::with(None)
    }

    fn with(authorization: Option<&str>) -> Self {
        let service = Service::new(authorization);
        let server = StandIn::start(service.responder());
        Self { service, server }
    }

    fn url(&self) -> String {
        self.server.url("")
    }
}

/// A free loopback port nobody listens on.
fn dead_url() -> String {
    format!("http://127.0.0.1:{}", StandIn::reserve_port())
}

/// 2023-11-14T22:13:20Z.
const T0: f64 = 1_700_000_000.0;

fn ban(ip: &str, host: &str) -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", ip, host);
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(T0);
    e
}

fn unban(ip: &str, host: &str) -> Event {
    let mut e = Event::target_event(EventKind::Unban, "sshd", ip, host);
    e.time = Some(T0);
    e
}

/// Seconds since the epoch of an RFC 3339 time in an alert.
fn secs(alert: &Value, field: &str) -> f64 {
    let text = alert[field].as_str().unwrap_or_else(|| panic!("no {field} in {alert}"));
    rfc3339(text).unwrap_or_else(|| panic!("{field} = {text} is not RFC 3339")) as f64 / 1e9
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Every string in a JSON value.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out)
        }),
        _ => {}
    }
}

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, TOKEN, "SECRET"] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn exact_alert_per_event_kind() {
    let am = Am::start();
    let mut cfg = config(&[am.url()]);
    cfg.labels = [("team".to_owned(), "ops".to_owned())].into();
    let sink = super::new("am", cfg).unwrap();
    let mut b = ban("203.0.113.7", "web1.example");
    b.user = Some("root".into());
    b.matches = Some("2023-11-14 sshd[1]: Failed password for root from 203.0.113.7\n".into());
    sink.send(&b).await.unwrap();
    let accepted = am.service.accepted();
    assert_eq!(
        accepted[0],
        json!({
            "labels": {"alertname": "Fail2BanBan", "jail": "sshd", "ip": "203.0.113.7", "host": "web1.example", "team": "ops"},
            "annotations": {
                "summary": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)",
                "failures": "5",
                "bantime": "10 min",
                "user": "root",
                "matches": "2023-11-14 sshd[1]: Failed password for root from 203.0.113.7"
            },
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:23:20.000Z"
        })
    );
    let req = &am.server.requests()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v2/alerts"));
    assert_eq!(req.header("content-type"), Some("application/json"));

    // The unban: the same labels, resolved now.
    sink.send(&unban("203.0.113.7", "web1.example")).await.unwrap();
    let resolved = &am.service.accepted()[1];
    assert_eq!(resolved["labels"], accepted[0]["labels"]);
    assert_eq!(resolved["annotations"], json!({"summary": "Fail2Ban (sshd) unbanned IP 203.0.113.7"}));
    assert_eq!(resolved["startsAt"], "2023-11-14T22:13:20.000Z");
    assert!((secs(resolved, "endsAt") - now_secs()).abs() < 5.0, "{resolved}");

    // Jail starts and stops are no alerts: nothing is posted, and that is no failure.
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "web1.example")).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Stop, "sshd", "web1.example")).await.unwrap();
    assert_eq!(am.server.requests().len(), 2);

    // A restored ban is the same alert posted again (Alertmanager merges it), marked.
    let mut restored = ban("203.0.113.7", "web1.example");
    restored.restored = true;
    sink.send(&restored).await.unwrap();
    let again = &am.service.accepted()[2];
    assert_eq!(again["labels"], accepted[0]["labels"]);
    assert_eq!(again["annotations"]["restored"], "true");
    assert_eq!(
        again["annotations"]["summary"],
        "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s) (restored at restart)"
    );
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_is_annotated_and_never_a_label() {
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    sink.send(&enriched(ban("203.0.113.7", "web1.example"))).await.unwrap();
    // The unban's lookups found less (DNS too slow this time): still the same alert.
    let mut late = unban("203.0.113.7", "web1.example");
    late.context.country_code = Some("JP".into());
    sink.send(&late).await.unwrap();
    sink.send_digest(&Digest::new(vec![enriched(ban("203.0.113.8", "web1.example"))])).await.unwrap();
    let accepted = am.service.accepted();
    assert_eq!(
        accepted[0],
        json!({
            "labels": {"alertname": "Fail2BanBan", "jail": "sshd", "ip": "203.0.113.7", "host": "web1.example"},
            "annotations": {
                "summary": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time",
                "failures": "5",
                "bantime": "10 min",
                "hostname": "h.example (unconfirmed)",
                "location": "Tokyo, Japan (JP)",
                "network": "AS64500 Example Net",
                "country_code": "JP",
                "asn": "64500",
                "bancount": "4"
            },
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:23:20.000Z"
        })
    );
    assert_eq!(accepted[1]["labels"], accepted[0]["labels"], "the unban resolves the ban's alert");
    assert_eq!(
        accepted[1]["annotations"],
        json!({"summary": "Fail2Ban (sshd) unbanned IP 203.0.113.7", "location": "JP", "country_code": "JP"})
    );
    // A digest is every event's alert, each with its own (Alertmanager groups them).
    assert_eq!(accepted[2]["annotations"]["network"], "AS64500 Example Net");
    assert_eq!(accepted[2]["labels"].as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn permanent_and_timeless_bans() {
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    let mut permanent = ban("203.0.113.8", "h");
    permanent.bantime = Some(-1);
    sink.send(&permanent).await.unwrap();
    let a = &am.service.accepted()[0];
    assert_eq!(a["annotations"]["bantime"], "permanent");
    // Ten years: firing until the unban, not resolved after `resolve_timeout`.
    assert_eq!(secs(a, "endsAt") - secs(a, "startsAt"), 3650.0 * 86_400.0);
    // A ban without a time (a hand-made `notify`) starts now and lasts Fail2Ban's default.
    let mut timeless = Event::target_event(EventKind::Ban, "sshd", "203.0.113.9", "h");
    timeless.time = None;
    sink.send(&timeless).await.unwrap();
    let a = &am.service.accepted()[1];
    assert!((secs(a, "startsAt") - now_secs()).abs() < 5.0, "{a}");
    assert_eq!(secs(a, "endsAt") - secs(a, "startsAt"), 600.0);
    // A ban time past ten years, or a time from the future, stays valid for Alertmanager.
    let mut odd = ban("203.0.113.10", "h");
    odd.bantime = Some(i64::MAX);
    sink.send(&odd).await.unwrap();
    let mut future = unban("203.0.113.10", "h");
    future.time = Some(now_secs() + 86_400.0);
    sink.send(&future).await.unwrap();
    let accepted = am.service.accepted();
    assert_eq!(secs(&accepted[2], "endsAt") - secs(&accepted[2], "startsAt"), 3650.0 * 86_400.0);
    assert!(secs(&accepted[3], "startsAt") <= secs(&accepted[3], "endsAt"), "{}", accepted[3]);
}

#[tokio::test]
async fn jail_alerts_fire_while_a_jail_is_stopped() {
    let am = Am::start();
    let sink = super::new("am", Config { jail_alerts: true, ..config(&[am.url()]) }).unwrap();
    let mut stop = Event::jail_event(EventKind::Stop, "sshd", "web1.example");
    stop.time = Some(T0);
    sink.send(&stop).await.unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "web1.example")).await.unwrap();
    let accepted = am.service.accepted();
    let labels = json!({"alertname": "Fail2BanJail", "jail": "sshd", "host": "web1.example"});
    assert_eq!(accepted[0]["labels"], labels);
    assert_eq!(accepted[0]["annotations"]["summary"], "Fail2Ban (sshd) jail stopped on web1.example");
    assert_eq!(secs(&accepted[0], "endsAt") - T0, 3650.0 * 86_400.0);
    assert_eq!(accepted[1]["labels"], labels);
    assert_eq!(accepted[1]["annotations"]["summary"], "Fail2Ban (sshd) jail started on web1.example");
    assert!((secs(&accepted[1], "endsAt") - now_secs()).abs() < 5.0);
}

#[tokio::test]
async fn a_digest_is_every_alert_in_one_post_of_at_most_64() {
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    let mut events: Vec<Event> = (0..100).map(|i| ban(&format!("198.51.100.{i}"), "h")).collect();
    events.insert(0, Event::jail_event(EventKind::Start, "sshd", "h"));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let posts = am.service.posts();
    assert_eq!(posts.iter().map(|p| p.as_array().unwrap().len()).collect::<Vec<_>>(), [64, 36]);
    let ips: Vec<String> =
        am.service.accepted().iter().map(|a| a["labels"]["ip"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ips, (0..100).map(|i| format!("198.51.100.{i}")).collect::<Vec<_>>());

    // A digest that bans and unbans one address posts its last state only; a small one is
    // one post.
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    let digest = Digest::new(vec![ban("192.0.2.1", "h"), ban("192.0.2.2", "h"), unban("192.0.2.1", "h")]);
    sink.send_digest(&digest).await.unwrap();
    let posts = am.service.posts();
    assert_eq!(posts.len(), 1);
    let alerts = posts[0].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(
        (alerts[0]["labels"]["ip"].as_str(), alerts[1]["labels"]["ip"].as_str()),
        (Some("192.0.2.2"), Some("192.0.2.1"))
    );
    assert!(secs(&alerts[1], "endsAt") > now_secs() - 5.0, "the unban is last: {}", alerts[1]);
    assert!(secs(&alerts[1], "endsAt") < now_secs() + 5.0);
    // A digest of jail events only posts nothing.
    let quiet = Digest::new(vec![Event::jail_event(EventKind::Stop, "sshd", "h")]);
    sink.send_digest(&quiet).await.unwrap();
    assert_eq!(am.server.requests().len(), 1);
}

/// Every alert goes to every node. While a node that did not take it may be restarting (it
/// fails for less than `down_after`), the send fails with a wait of a second, so that the
/// router posts it again to every node until all have it.
#[tokio::test]
async fn a_node_that_missed_alerts_is_waited_for_until_down_after() {
    let (a, b) = (Am::start(), Am::start());
    let dead_port = StandIn::reserve_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    let sink = sink_for(&[a.url(), b.url(), dead.clone()]);
    let e = sink.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(1)));
    assert!(
        e.to_string().starts_with(&format!(
            "2 of 3 Alertmanagers took the alerts; posting them again until the others do too (for up to 60 s while a node fails): {dead}: cannot connect"
        )),
        "{e}"
    );
    // The two that took it have it (and notify); nothing is kept aside: the router retries.
    for am in [&a, &b] {
        assert_eq!(am.service.accepted().len(), 1);
    }
    assert_eq!(sink.missed().iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 0, 0]);
    // The node is back: the router's retry reaches all three, and is delivered.
    let c = Service::new(None);
    let _server = StandIn::start_on(dead_port, c.responder());
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    assert_eq!(c.accepted().len(), 1);
    assert_eq!(a.service.accepted().len(), 2, "a repeat is harmless: Alertmanager merges it");
}

/// A node that has been failing for `down_after` counts as down: sends succeed without it,
/// and what it missed goes to it first when it answers again (the newest state of each alert).
#[tokio::test]
async fn a_node_down_for_down_after_gets_what_it_missed_when_it_is_back() {
    let (a, b) = (Am::start(), Am::start());
    let dead_port = StandIn::reserve_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    let cfg = Config { down_after: Some(0.3), ..config(&[a.url(), b.url(), dead.clone()]) };
    let sink = super::new("am", cfg).unwrap();
    assert!(sink.send(&ban("203.0.113.1", "h")).await.unwrap_err().is_transient());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Down now: the router's retry is delivered, and the next event too.
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    sink.send(&ban("203.0.113.2", "h")).await.unwrap();
    assert_eq!(sink.missed(), [(a.url(), 0), (b.url(), 0), (dead.clone(), 2)]);
    // It answers again: its next post brings what it missed, then the new alert, and the
    // unban of .1 replaces the ban it missed.
    let c = Service::new(None);
    let _server = StandIn::start_on(dead_port, c.responder());
    sink.send(&unban("203.0.113.1", "h")).await.unwrap();
    let posts = c.posts();
    assert_eq!(posts.len(), 1);
    let ips: Vec<(&str, bool)> = posts[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["labels"]["ip"].as_str().unwrap(), (secs(x, "endsAt") - now_secs()).abs() < 5.0))
        .collect();
    assert_eq!(ips, [("203.0.113.2", false), ("203.0.113.1", true)]);
    assert_eq!(sink.missed().iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 0, 0]);
    // Only the new alert went to the nodes that had everything.
    assert_eq!(a.service.posts().last().unwrap().as_array().unwrap().len(), 1);

    // With `down_after = 0` a node is never waited for.
    let sink = super::new("am", Config { down_after: Some(0.0), ..config(&[a.url(), dead_url()]) }).unwrap();
    sink.send(&ban("203.0.113.3", "h")).await.unwrap();
}

#[tokio::test]
async fn a_node_that_refuses_is_not_waited_for_and_keeps_nothing() {
    let (a, b, c) = (Am::start(), Am::start(), Am::start());
    b.service.force([Reply::new(503, "overloaded")]);
    c.service.force([Reply::json(400, &json!("at least one label pair required"))]);
    let cfg = Config { down_after: Some(0.0), ..config(&[a.url(), b.url(), c.url()]) };
    let sink = super::new("am", cfg).unwrap();
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    assert_eq!(sink.missed(), [(a.url(), 0), (b.url(), 1), (c.url(), 0)]);
    sink.send(&ban("203.0.113.2", "h")).await.unwrap();
    assert_eq!(b.service.accepted().len(), 2);
    assert_eq!(c.service.accepted().len(), 1);
    assert_eq!(sink.missed().iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 0, 0]);
    // Within `down_after` too, a refusal is not waited for: a repeat would be refused alike.
    c.service.force([Reply::new(401, "Unauthorized\n")]);
    super::new("am", config(&[a.url(), c.url()])).unwrap().send(&ban("203.0.113.3", "h")).await.unwrap();
}

/// When no node takes the alerts, the send fails: transient if any node may come back (with
/// the shortest wait they all asked for), permanent when every node refused; the text names
/// each node.
#[tokio::test]
async fn no_node_took_it() {
    let (a, b) = (Am::start(), Am::start());
    let dead = dead_url();
    let sink = sink_for(&[a.url(), b.url(), dead.clone()]);
    a.service.force([Reply::new(503, "").header("Retry-After", "7")]);
    b.service.force([Reply::new(401, "Unauthorized\n")]);
    let e = sink.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_transient() && e.retry_after_hint().is_none(), "{e:?}");
    let text = e.to_string();
    assert!(text.starts_with("no Alertmanager took the alerts: "), "{text}");
    assert!(text.contains(&format!("{}: no error text (HTTP 503)", a.url())), "{text}");
    assert!(text.contains(&format!("{}: Unauthorized (HTTP 401): the credentials were refused", b.url())), "{text}");
    assert!(text.contains(&format!("{dead}: cannot connect")), "{text}");
    // What nobody took is the router's to retry: no node keeps it.
    assert_eq!(sink.missed().iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 0, 0]);

    // Every node refused: permanent.
    let sink2 = sink_for(&[a.url(), b.url()]);
    a.service.force([Reply::new(404, "")]);
    b.service.force([Reply::new(401, "")]);
    assert!(sink2.send(&ban("203.0.113.1", "h")).await.unwrap_err().is_permanent());
    // Every node asked to wait: the shortest wait.
    a.service.force([Reply::new(429, "").header("Retry-After", "9")]);
    b.service.force([Reply::new(503, "").header("Retry-After", "3")]);
    let e = sink2.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(3)), "{e:?}");
}

/// (answer, transient?, wait, text the error must hold)
type Case = (Reply, bool, Option<u64>, &'static str);

#[tokio::test]
async fn every_failure_class_of_one_node() {
    let cases: Vec<Case> = vec![
        (
            Reply::json(400, &json!("start time must be before end time")),
            false,
            None,
            "start time must be before end time (HTTP 400): Alertmanager refused the alerts",
        ),
        (
            Reply::json(422, &json!({"code": 602, "message": "0.labels in body is required"})),
            false,
            None,
            "0.labels in body is required (HTTP 422)",
        ),
        (Reply::new(401, "Unauthorized\n"), false, None, "Unauthorized (HTTP 401): the credentials were refused"),
        (Reply::new(403, "Forbidden"), false, None, "Forbidden (HTTP 403): forbidden"),
        (
            Reply::json(404, &json!({"code": 404, "message": "path /x/api/v2/alerts was not found"})),
            false,
            None,
            "path /x/api/v2/alerts was not found (HTTP 404): no Alertmanager API v2 here",
        ),
        (Reply::new(405, ""), false, None, "(HTTP 405): no Alertmanager API v2 here"),
        (Reply::new(413, "too large"), false, None, "too large (HTTP 413)"),
        (Reply::new(415, ""), false, None, "HTTP 415"),
        (Reply::new(302, "").header("Location", "https://elsewhere/"), false, None, "HTTP 302"),
        (Reply::new(429, "Too Many Requests").header("Retry-After", "17"), true, Some(17), "HTTP 429"),
        (Reply::new(429, "").header("Retry-After", "18446744073709551615"), true, None, "HTTP 429"),
        (Reply::json(500, &json!("failed to put alerts")), true, None, "failed to put alerts (HTTP 500)"),
        (Reply::new(501, ""), false, None, "HTTP 501"),
        (Reply::new(502, "<html>bad gateway</html>"), true, None, "HTTP 502"),
        (Reply::new(503, "").header("Retry-After", "2"), true, Some(2), "HTTP 503"),
        (Reply::new(408, ""), true, None, "HTTP 408"),
    ];
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    for (reply, transient, wait, text) in cases {
        am.service.force([reply]);
        let e = sink.send(&ban("203.0.113.1", "h")).await.unwrap_err();
        assert_eq!(e.is_transient(), transient, "{e:?}");
        assert_eq!(e.retry_after_hint(), wait.map(Duration::from_secs), "{e:?}");
        assert!(e.to_string().starts_with(&format!("{}: ", am.url())), "{e}");
        assert!(e.to_string().contains(text), "{e} lacks {text}");
    }
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    // A URL with a path where no Alertmanager is: the stand-in's own 404.
    let wrong = sink_for(&[am.server.url("/alertmanager")]);
    let e = wrong.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("path /alertmanager/api/v2/alerts was not found (HTTP 404)"), "{e}");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let slow = StandIn::start(Arc::new(|_: &f2b_notify_standins::Request, _| {
        std::thread::sleep(Duration::from_secs(2));
        Reply::new(200, "")
    }));
    let sink = super::new("am", Config { timeout: Some(0.3), ..config(&[slow.url("")]) }).unwrap();
    let e = sink.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("no answer within 0.3 s"), "{e}");
    let e = sink_for(&[dead_url()]).send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("cannot connect"), "{e}");
}

#[tokio::test]
async fn basic_auth_and_bearer_token_and_no_secret_in_any_output() {
    // `ops:s3cret-PASSWORD` in base64.
    let basic = "Basic b3BzOnMzY3JldC1QQVNTV09SRA==";
    let am = Am::with(Some(basic));
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("am.pass");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let cfg = Config { username: Some("ops".into()), password_file: Some(pw_file.clone()), ..config(&[am.url()]) };
    let sink = super::new("am", cfg.clone()).unwrap();
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    assert_eq!(am.server.requests()[0].authorization.as_deref(), Some(basic));
    let preview = sink.preview(&ban("203.0.113.1", "h")).unwrap();
    assert!(preview.starts_with(&format!(
        "POST to every Alertmanager ({}/api/v2/alerts), basic auth as \"ops\" (the password is not shown), this JSON body:\n[",
        am.url()
    )), "{preview}");
    for text in [preview, format!("{sink:?}"), format!("{cfg:?}"), sink.check().join("\n")] {
        assert_no_secret(&text);
    }

    // A wrong password: Alertmanager's 401, permanent, and the password in no text.
    let wrong = super::new(
        "am",
        Config { username: Some("ops".into()), password: Some(Secret::new("nope-SECRET")), ..config(&[am.url()]) },
    )
    .unwrap();
    let e = wrong.send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("Unauthorized (HTTP 401)"), "{e}");
    assert_no_secret(&format!("{e} {e:?}"));

    // A bearer token, for a proxy in front of Alertmanager.
    let proxied = Am::with(Some(&format!("Bearer {TOKEN}")));
    let token_file = dir.path().join("am.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let sink = super::new("am", Config { token_file: Some(token_file), ..config(&[proxied.url()]) }).unwrap();
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    assert_eq!(proxied.service.accepted().len(), 1);
    let preview = sink.preview(&ban("203.0.113.1", "h")).unwrap();
    assert!(preview.contains("with a bearer token (not shown)"), "{preview}");
    assert_no_secret(&preview);
    assert_no_secret(&format!("{sink:?}"));
}

#[tokio::test]
async fn hostile_text_stays_in_annotations_and_within_limits() {
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    let hostile = [
        "<!channel>",
        "@everyone",
        "@here",
        "<b>x</b>",
        "*_~",
        "`rm -rf /`",
        "[a](http://x)",
        "\r\nX-Header: y",
        "{{ .Annotations }}",
        "\u{202e}evil\u{feff}\u{fffd}\u{0}",
    ]
    .join(" ");
    let mut e = ban("198.51.100.1\r\nFAKE: 10.0.0.1", "web1\nFAKE host");
    e.jail = "sshd\r\nFAKE jail".into();
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context = Context {
        hostname: Some(format!("{hostile}{}", "h".repeat(1000))),
        hostname_confirmed: Some(true),
        country: Some(hostile.clone()),
        country_code: Some("X\r\nFAKE: cc".into()),
        city: None,
        asn: Some(64500),
        as_org: Some(hostile.clone()),
    };
    e.user = Some(format!("{hostile}{}", "u".repeat(100_000)));
    e.matches = Some(format!(
        "{hostile}\n{}\n{}",
        "m".repeat(100_000),
        (0..50).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n")
    ));
    sink.send(&e).await.unwrap();
    let a = &am.service.accepted()[0];
    // Labels: the name, and one line each of the jail, the id and the host.
    let labels = a["labels"].as_object().unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["alertname", "host", "ip", "jail"]);
    assert_eq!(labels["ip"], "198.51.100.1  FAKE: 10.0.0.1");
    assert_eq!(labels["jail"], "sshd  FAKE jail");
    assert_eq!(labels["host"], "web1 FAKE host");
    let mut texts = Vec::new();
    strings(&a["labels"], &mut texts);
    assert!(texts.iter().all(|t| !t.contains(char::is_control)), "{texts:?}");
    // Log text is in the annotations only, as data, and cut with a visible marker.
    let user = a["annotations"]["user"].as_str().unwrap();
    assert!(
        user.starts_with("<!channel> @everyone @here <b>x</b> *_~ `rm -rf /` [a](http://x)   X-Header: y"),
        "{user}"
    );
    assert!(user.chars().count() <= 200 && user.contains("[cut "), "{}", user.len());
    assert!(!user.contains(['\r', '\n', '\0']), "{user:?}");
    let matches = a["annotations"]["matches"].as_str().unwrap();
    let lines: Vec<&str> = matches.lines().collect();
    // 53 lines: the hostile one (its CR LF makes two), the long one, and 50 short ones.
    assert_eq!(lines[0], "… 43 earlier line(s) not shown");
    assert_eq!(lines.len(), 11);
    assert_eq!(lines[10], "line 49");
    assert!(lines.iter().all(|l| l.chars().count() <= 300), "{lines:?}");
    assert!(matches.chars().count() <= 11 * 300);
    // So is what enrichment found: one line each, cut, and no label.
    let annotations = a["annotations"].as_object().unwrap();
    for key in ["hostname", "location", "network", "country_code", "asn"] {
        let v = annotations[key].as_str().unwrap();
        assert!(!v.contains(char::is_control) && v.chars().count() <= 300, "{key}: {v:?}");
    }
    assert!(annotations["hostname"].as_str().unwrap().starts_with("<!channel> @everyone @here <b>x</b>"));
    assert!(annotations["hostname"].as_str().unwrap().contains("[cut "));
    assert_eq!(annotations["country_code"], "X  FAKE: cc");
    // The summary is one line: the id's line break cannot start another.
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(!summary.contains(['\r', '\n']), "{summary:?}");
    // The post was valid JSON Alertmanager took as it is.
    assert_eq!(am.service.posts().len(), 1);
    assert_eq!(am.server.requests()[0].json()[0], *a);
}

#[tokio::test]
async fn alerts_about_other_sinks_fire_and_resolve() {
    let am = Am::start();
    let sink = sink_for(&[am.url()]);
    assert!(sink.carries_alerts());
    let failing = Alert {
        subject: "f2b-notify on web1.example: sink `api` failing since 2026-11-25 12:03:07".into(),
        text: "The slack-api sink `api` has been failing since 2026-11-25 12:03:07.\nLast error: <!channel>".into(),
        recovered: false,
    };
    sink.send_alert(&failing).await.unwrap();
    let recovered = Alert {
        subject: "f2b-notify on web1.example: sink `api` recovered".into(),
        text: "The slack-api sink `api` delivered again.".into(),
        recovered: true,
    };
    sink.send_alert(&recovered).await.unwrap();
    let accepted = am.service.accepted();
    let labels = json!({"alertname": "F2bNotifySinkFailing", "host": "web1.example", "sink": "api"});
    assert_eq!(accepted[0]["labels"], labels);
    assert_eq!(accepted[0]["annotations"]["summary"], failing.subject);
    assert_eq!(accepted[0]["annotations"]["description"], failing.text);
    let day = secs(&accepted[0], "endsAt") - secs(&accepted[0], "startsAt");
    assert!((day - 86_400.0).abs() < 1.0, "{day}");
    assert_eq!(accepted[1]["labels"], labels);
    assert!(secs(&accepted[1], "endsAt") <= now_secs() + 1.0);
}

#[tokio::test]
async fn previews() {
    let sink = sink_for(&["http://am1:9093".into(), "https://example.com/alertmanager/".into()]);
    let p = sink.preview(&ban("203.0.113.7", "h")).unwrap();
    assert!(p.starts_with(
        "POST to every Alertmanager (http://am1:9093/api/v2/alerts, https://example.com/alertmanager/api/v2/alerts), this JSON body:\n"
    ), "{p}");
    let body: Value = serde_json::from_str(p.split_once(":\n").unwrap().1).unwrap();
    assert_eq!(body[0]["labels"]["alertname"], "Fail2BanBan");
    assert_eq!(
        sink.preview(&Event::jail_event(EventKind::Start, "sshd", "h")).unwrap(),
        "nothing: a jail start is no alert unless `jail_alerts = true`"
    );
}

#[test]
fn config_errors_name_the_key_and_never_a_secret() {
    let err = |cfg: Config| super::new("am", cfg).unwrap_err().to_string();
    let url = |u: &str| config(&[u.to_owned()]);
    assert!(err(Config::default()).starts_with("missing `urls`"));
    let e = err(url("http://ops:SECRETpw@am1:9093"));
    assert!(e.contains("must not hold credentials") && !e.contains("SECRET"), "{e}");
    assert!(
        err(url("am1:9093")).contains("`urls` is not a valid URL") || err(url("am1:9093")).contains("`urls` must be")
    );
    assert!(err(url("http://am1:9093/api/v2/alerts")).contains("is an API path; give the Alertmanager's base URL"));
    assert!(err(url("http://am1:9093/api/v2/")).contains("is an API path"));
    assert!(err(url("http://am1:9093/?x=1")).contains("must not have a query"));
    assert!(err(config(&["http://am1:9093".into(), "http://am1:9093/".into()])).contains("names http://am1:9093 twice"));
    let labels = |k: &str, v: &str| Config { labels: [(k.to_owned(), v.to_owned())].into(), ..url("http://am1:9093") };
    assert!(err(labels("team-name", "ops")).contains("\"team-name\" is not a label name"));
    assert!(err(labels("1x", "ops")).contains("is not a label name"));
    assert!(err(labels("__meta", "ops")).contains("reserved"));
    assert!(err(labels("host", "x")).contains("`host` is set by the sink itself"));
    assert!(err(labels("team", "")).contains("`labels.team` is empty"));
    assert!(err(labels("team", "a\nb")).contains("line break"));
    let both = Config {
        username: Some("ops".into()),
        password: Some(Secret::new(PASSWORD)),
        token: Some(Secret::new(TOKEN)),
        ..url("http://am1:9093")
    };
    assert!(err(both).contains("not both"));
    let e = err(Config { password: Some(Secret::new(PASSWORD)), ..url("http://am1:9093") });
    assert_eq!(e, "`password` needs `username`");
    let e = err(Config { username: Some("ops".into()), ..url("http://am1:9093") });
    assert_eq!(e, "`username` needs `password` or `password_file`");
    let e =
        err(Config { username: Some("o:ps".into()), password: Some(Secret::new(PASSWORD)), ..url("http://am1:9093") });
    assert!(e.contains("must not be empty or hold a `:`"), "{e}");
    let e = err(Config { token: Some(Secret::new(format!("{TOKEN}\n"))), ..url("http://am1:9093") });
    assert!(e.contains("`token` holds a character a header cannot carry") && !e.contains("SECRET"), "{e}");
    let e = err(Config {
        username: Some("ops".into()),
        password: Some(Secret::new(format!("{PASSWORD}\r\n"))),
        ..url("http://am1:9093")
    });
    assert!(e.contains("`password` holds a line break") && !e.contains("SECRET"), "{e}");
    let e = err(Config { ca_file: Some("/nonexistent/ca.pem".into()), ..url("http://am1:9093") });
    assert!(e.starts_with("cannot read `ca_file` /nonexistent/ca.pem"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let e = err(Config { ca_file: Some(not_pem), ..url("http://am1:9093") });
    assert!(e.ends_with("holds no PEM certificate"), "{e}");
    assert!(err(Config { timeout: Some(60.0), ..url("http://am1:9093") }).contains("`timeout`"));
    assert!(err(Config { down_after: Some(-1.0), ..url("http://am1:9093") })
        .contains("`down_after` = -1 must be from 0 to 3600"));
    // One URL as a plain string is a list of one.
    super::new("am", Config { urls: OneOrMany::One("http://am1:9093".into()), ..Config::default() }).unwrap();
}

#[cfg(unix)]
#[test]
fn check_warns_about_readable_secrets_and_credentials_in_clear() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("am.pass");
    std::fs::write(&file, PASSWORD).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = |urls: &[&str]| Config {
        username: Some("ops".into()),
        password_file: Some(file.clone()),
        ..config(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>())
    };
    let warnings = super::new("am", cfg(&["https://am1.example:9093", "http://127.0.0.1:9093"])).unwrap().check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("mode 644"), "{warnings:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let warnings = super::new("am", cfg(&["http://am1.example:9093", "https://am2.example"])).unwrap().check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "`urls` is a plain http:// URL to another machine: the basic-auth password crosses the network unencrypted"
        ) && warnings[0].ends_with("(http://am1.example:9093)"),
        "{warnings:?}"
    );
    for w in &warnings {
        assert_no_secret(w);
    }
    // Without credentials, plain http carries nothing secret.
    assert!(sink_for(&["http://am1.example:9093".into()]).check().is_empty());
}

/// A TLS server on loopback whose certificate (for 127.0.0.1) was made now: nothing the system
/// trusts issued it. It answers every request 200. Returns its address, the certificate as
/// PEM, and its task.
async fn tls_server() -> (std::net::SocketAddr, String, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // Headers, then the body of Content-Length bytes.
                loop {
                    let Ok(n @ 1..) = tls.read(&mut buf).await else { return };
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, cert.pem(), task)
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_only() {
    let (addr, pem, task) = tls_server().await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    // The system's roots alone do not trust it: permanent (waiting does not change that).
    let e = sink_for(std::slice::from_ref(&url)).send(&ban("203.0.113.1", "h")).await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("the server's TLS certificate is not trusted"), "{e}");
    // With its CA (here the certificate itself) in `ca_file`, it is.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let sink = super::new("am", Config { ca_file: Some(ca), ..config(&[url]) }).unwrap();
    sink.send(&ban("203.0.113.1", "h")).await.unwrap();
    task.abort();
    let _ = task.await;
}

#[test]
fn errors_are_classified_without_a_node() {
    // A node whose failure was transient makes the whole send transient.
    let failures = vec![
        ("http://a".to_owned(), SinkError::permanent("x")),
        ("http://b".to_owned(), SinkError::retry_after("y", Duration::from_secs(4))),
    ];
    let e = super::combine(&failures);
    assert!(e.is_transient());
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(4)));
    assert_eq!(e.to_string(), "no Alertmanager took the alerts: http://a: x; http://b: y");
    assert_eq!(super::error_text(r#""at least one label pair required""#), "at least one label pair required");
    assert_eq!(super::error_text(r#"{"code":602,"message":"m"}"#), "m");
    assert_eq!(super::error_text("<html>"), "<html>");
}
