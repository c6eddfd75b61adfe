//! The Web API sink against a real HTTP server on loopback (wiremock, port 0).

use std::time::Duration;

use f2b_notify_core::{Event, EventKind, Secret, Sink, SinkError};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{ApiSink, Config};

/// The test token: it must never show up in any error or Debug output.
const TOKEN: &str = "xoxb-SECRET-token-42";

fn sink_for(base: String, timeout: Option<f64>) -> ApiSink {
    super::new(
        "api",
        Config {
            token: Some(Secret::new(TOKEN)),
            channel: Some("#security".into()),
            url: Some(base),
            timeout,
            ..Config::default()
        },
    )
    .unwrap()
}

/// A Slack stand-in that checks the path and the bearer token, like Slack does.
async fn slack(status: u16, body: Value, retry_after: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_json(body);
    if let Some(ra) = retry_after {
        answer = answer.insert_header("Retry-After", ra);
    }
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

fn base(server: &MockServer) -> String {
    format!("{}/api", server.uri())
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.user = Some("<!channel>".into());
    e
}

fn assert_no_secret(e: &SinkError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("SECRET"), "token leaked: {text}");
    }
}

#[tokio::test]
async fn posts_with_bearer_token_and_the_shared_layout() {
    let server = slack(200, json!({"ok": true, "channel": "C1", "ts": "1.2"}), None).await;
    let sink = sink_for(base(&server), None);
    sink.send(&ban()).await.unwrap();
    sink.send(&Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example")).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].headers.get("authorization").unwrap(), &format!("Bearer {TOKEN}"));
    assert_eq!(requests[0].headers.get("content-type").unwrap(), "application/json");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["channel"], "#security");
    assert_eq!(body["text"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
    assert_eq!(body["attachments"][0]["color"], "#d50200");
    assert_eq!(body["attachments"][0]["blocks"][1]["fields"][5]["text"], "*User*\n`&lt;!channel&gt;`");
    assert!(!body.to_string().contains("<!channel>"));
    // The token goes in the header only, never in the body.
    assert!(!String::from_utf8_lossy(&requests[0].body).contains(TOKEN));
    let unban: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(unban["text"], "Fail2Ban (sshd) unbanned IP 203.0.113.7");
    assert_eq!(unban["attachments"][0]["color"], "#2eb886");
}

/// An answer and how it must be classified: status, JSON body, `Retry-After`, transient,
/// the wait asked for, and text the error must carry.
type FailureCase<'a> = (u16, Value, Option<&'a str>, bool, Option<u64>, &'a str);

#[tokio::test]
async fn ok_false_and_http_failures() {
    let cases: Vec<FailureCase> = vec![
        (
            200,
            json!({"ok": false, "error": "channel_not_found"}),
            None,
            false,
            None,
            "channel_not_found: the channel does not exist",
        ),
        (
            200,
            json!({"ok": false, "error": "not_in_channel"}),
            None,
            false,
            None,
            "not_in_channel: the app is not in the channel",
        ),
        (200, json!({"ok": false, "error": "invalid_auth"}), None, false, None, "invalid_auth"),
        (
            200,
            json!({"ok": false, "error": "missing_scope", "needed": "chat:write"}),
            None,
            false,
            None,
            "missing_scope",
        ),
        (200, json!({"ok": false, "error": "msg_too_long"}), None, false, None, "msg_too_long"),
        (200, json!({"ok": false, "error": "ratelimited"}), Some("4"), true, Some(4), "ratelimited"),
        (429, json!({"ok": false, "error": "rate_limited"}), Some("9"), true, Some(9), "HTTP 429"),
        (500, json!({}), None, true, None, "HTTP 500"),
        (503, json!({}), None, true, None, "HTTP 503"),
        (404, json!({}), None, false, None, "HTTP 404"),
    ];
    for (status, body, ra, transient, wait, text) in cases {
        let server = slack(status, body.clone(), ra).await;
        let err = sink_for(base(&server), None).send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{status} {body}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait.map(Duration::from_secs), "{status} {body}");
        assert!(err.to_string().contains(text), "{status} {body}: {err}");
        assert_no_secret(&err);
    }
}

#[tokio::test]
async fn timeouts_and_dead_servers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let err = sink_for(base(&server), Some(0.2)).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within"), "{err}");
    assert_no_secret(&err);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let err = sink_for(format!("http://{addr}/api"), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_no_secret(&err);
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn config_errors_and_debug_never_show_the_token() {
    let sink = sink_for("http://127.0.0.1:9/api".into(), None);
    assert!(!format!("{sink:?}").contains("SECRET"), "{sink:?}");

    let no_channel = super::new("api", Config { token: Some(Secret::new(TOKEN)), ..Config::default() }).unwrap_err();
    assert!(no_channel.to_string().contains("missing `channel`"));
    let bad_header = super::new(
        "api",
        Config {
            token: Some(Secret::new(format!("{TOKEN}\nX-Evil: 1"))),
            channel: Some("#c".into()),
            ..Config::default()
        },
    )
    .unwrap_err();
    assert!(bad_header.to_string().contains("`token`") && !bad_header.to_string().contains("SECRET"), "{bad_header}");
    let missing = super::new("api", Config { channel: Some("#c".into()), ..Config::default() }).unwrap_err();
    assert!(missing.to_string().contains("missing `token`"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = super::new(
        "api",
        Config {
            token_file: Some(file),
            channel: Some("#c".into()),
            url: Some("http://127.0.0.1:9".into()),
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(from_file.poster().auth.to_str().unwrap(), format!("Bearer {TOKEN}"));
    assert!(!format!("{from_file:?}").contains("SECRET"));
}

/// Every string in a JSON body.
fn every_text<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| every_text(x, out)),
        Value::Object(o) => o.values().for_each(|x| every_text(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn a_cr_lf_in_the_id_fakes_no_line_in_the_posted_json() {
    let server = slack(200, json!({"ok": true}), None).await;
    let sink = sink_for(base(&server), None);
    let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
    let mut e = Event::target_event(EventKind::Ban, "sshd", evil, "host.example\r\nFAKE LINE: host");
    e.user = Some("root\nFAKE LINE: user".into());
    sink.send(&e).await.unwrap();
    let digest = vec![e.clone(), Event::target_event(EventKind::Unban, "sshd\nFAKE LINE: jail", evil, "h")];
    sink.send_digest(&f2b_notify_core::Digest::new(digest)).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(!body["text"].as_str().unwrap().contains(['\r', '\n']), "{body}");
        let mut texts = Vec::new();
        every_text(&body, &mut texts);
        let lines: Vec<&str> = texts.iter().flat_map(|t| t.split(['\r', '\n'])).collect();
        assert!(!lines.iter().any(|l| l.starts_with("FAKE")), "{lines:?}");
    }
}

#[test]
fn check_warns_about_a_plain_http_api_base_to_another_machine() {
    let warns = |base: &str| sink_for(base.to_owned(), None).check().iter().any(|l| l.contains("plain http://"));
    assert!(warns("http://slack.example.com/api/"));
    assert!(!warns("https://slack.com/api/"));
    assert!(!warns("http://127.0.0.1:9/api/"));
    assert!(!warns("http://localhost:9/api/"));
    let lines = sink_for("http://slack.example.com/api/".into(), None).check();
    assert!(lines.iter().all(|l| !l.contains("SECRET")), "{lines:?}");
}
