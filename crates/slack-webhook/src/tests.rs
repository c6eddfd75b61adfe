//! The webhook sink against a real HTTP server on loopback (wiremock, port 0).

use std::time::Duration;

use f2b_notify_core::{Event, EventKind, Secret, Sink, SinkError};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{Config, WebhookSink};

/// The secret part of the test webhook URL: it must never show up in any error or Debug.
const SECRET: &str = "T000/B000/SECRETxyzzy";

fn sink_for(url: String, timeout: Option<f64>) -> WebhookSink {
    super::new("ops", Config { url: Some(Secret::new(url)), timeout, ..Config::default() }).unwrap()
}

async fn server_answering(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_string(body);
    if let Some(ra) = retry_after {
        answer = answer.insert_header("Retry-After", ra);
    }
    Mock::given(method("POST")).and(path(format!("/services/{SECRET}"))).respond_with(answer).mount(&server).await;
    server
}

fn url(server: &MockServer) -> String {
    format!("{}/services/{SECRET}", server.uri())
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(-1);
    e
}

async fn received(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

fn assert_no_secret(e: &SinkError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
        assert!(!text.contains("/services/"), "URL leaked: {text}");
    }
}

#[tokio::test]
async fn exact_json_for_each_event_kind() {
    let server = server_answering(200, "ok", None).await;
    let sink = super::new(
        "ops",
        Config {
            url: Some(Secret::new(url(&server))),
            username: Some("fail2ban".into()),
            icon_emoji: Some(":lock:".into()),
            ..Config::default()
        },
    )
    .unwrap();
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let got = received(&server).await;
    let expected_ban = json!({
        "text": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)",
        "username": "fail2ban",
        "icon_emoji": ":lock:",
        "attachments": [{
            "color": "#d50200",
            "fallback": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Jail*\nsshd"},
                    {"type": "mrkdwn", "text": "*Address*\n`203.0.113.7`"},
                    {"type": "mrkdwn", "text": "*Failures*\n5"},
                    {"type": "mrkdwn", "text": "*Ban time*\npermanent"},
                    {"type": "mrkdwn", "text": "*Host*\nhost.example"}
                ]}
            ]
        }]
    });
    assert_eq!(got[0], expected_ban);
    let grey = |text: &str| {
        json!({
            "text": text,
            "username": "fail2ban",
            "icon_emoji": ":lock:",
            "attachments": [{
                "color": "#9e9e9e",
                "fallback": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Jail*\nsshd"},
                        {"type": "mrkdwn", "text": "*Host*\nhost.example"}
                    ]}
                ]
            }]
        })
    };
    assert_eq!(got[1]["text"], "Fail2Ban (sshd) unbanned IP 2001:db8::1");
    assert_eq!(got[1]["attachments"][0]["color"], "#2eb886");
    assert_eq!(got[1]["attachments"][0]["blocks"][1]["fields"][1]["text"], "*Address*\n`2001:db8::1`");
    assert_eq!(got[2], grey("Fail2Ban (sshd) jail started on host.example"));
    assert_eq!(got[3], grey("Fail2Ban (sshd) jail stopped on host.example"));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].headers.get("content-type").unwrap(), "application/json");
}

#[tokio::test]
async fn hostile_input_arrives_as_text() {
    let server = server_answering(200, "ok", None).await;
    let sink = sink_for(url(&server), None);
    let mut e = ban();
    e.user = Some("<!channel>".into());
    e.matches = Some("Failed password for <!here> from <@U123> <http://x|bank> &".into());
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context.hostname = Some("<!channel>.example".into());
    e.context.country = Some("<http://x|bank>".into());
    e.context.as_org = Some("<@U123> & co".into());
    e.context.asn = Some(64500);
    sink.send(&e).await.unwrap();
    let got = &received(&server).await[0];
    let raw = got.to_string();
    for bad in ["<!channel>", "<!here>", "<@U123>", "<http://x|bank>"] {
        assert!(!raw.contains(bad), "{bad} reached Slack unescaped: {raw}");
    }
    let fields = &got["attachments"][0]["blocks"][1]["fields"];
    assert_eq!(fields[5]["text"], "*User*\n`&lt;!channel&gt;`");
    let context = &got["attachments"][0]["blocks"][2]["fields"];
    assert_eq!(context[0]["text"], "*Host name*\n`&lt;!channel&gt;.example`");
    assert_eq!(context[1]["text"], "*Location*\n&lt;http://x|bank&gt;");
    assert_eq!(context[2]["text"], "*Network*\nAS64500 &lt;@U123&gt; &amp; co");
    assert_eq!(
        got["attachments"][0]["blocks"][3]["text"]["text"],
        "*Matched log lines*\n```Failed password for &lt;!here&gt; from &lt;@U123&gt; &lt;http://x|bank&gt; &amp;```"
    );
}

/// An answer and how it must be classified: status, body, `Retry-After`, transient, the wait
/// asked for, and text the error must carry.
type FailureCase<'a> = (u16, &'a str, Option<&'a str>, bool, Option<u64>, &'a str);

#[tokio::test]
async fn every_failure_class() {
    let cases: &[FailureCase] = &[
        (200, "not ok", None, false, None, "without `ok`"),
        (400, "invalid_payload", None, false, None, "invalid_payload (HTTP 400)"),
        (403, "action_prohibited", None, false, None, "action_prohibited (HTTP 403)"),
        (404, "channel_not_found", None, false, None, "channel_not_found (HTTP 404)"),
        (410, "channel_is_archived", None, false, None, "channel_is_archived (HTTP 410)"),
        (429, "rate_limited", Some("17"), true, Some(17), "rate_limited (HTTP 429)"),
        // A hostile or broken Retry-After is no hint: the router's own backoff applies.
        (429, "rate_limited", Some("18446744073709551615"), true, None, "rate_limited (HTTP 429)"),
        (429, "rate_limited", Some("1000000000"), true, None, "rate_limited (HTTP 429)"),
        (500, "rollup_error", None, true, None, "rollup_error (HTTP 500)"),
        (503, "", None, true, None, "HTTP 503"),
    ];
    for &(status, body, ra, transient, wait, text) in cases {
        let server = server_answering(status, body, ra).await;
        let err = sink_for(url(&server), None).send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{status}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait.map(Duration::from_secs), "{status}");
        assert!(err.to_string().contains(text), "{status}: {err}");
        assert_no_secret(&err);
    }
    let server = server_answering(200, "ok", None).await;
    sink_for(url(&server), None).send(&ban()).await.unwrap();
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let err = sink_for(url(&server), Some(0.3)).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn closed_and_refused_connections_are_transient() {
    // A server that accepts and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { break };
            drop(sock);
        }
    });
    let err = sink_for(format!("http://{addr}/services/{SECRET}"), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_no_secret(&err);
    task.abort();
    let _ = task.await;

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = sink_for(format!("http://127.0.0.1:{port}/services/{SECRET}"), None).send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let (addr, der) = (tls.addr, tls.der.clone());
    let hook = format!("https://127.0.0.1:{}/services/{SECRET}", addr.port());
    // The server works: a client that trusts its certificate gets `ok`.
    let trusting =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_der(&der).unwrap()).build().unwrap();
    let answer = trusting.post(&hook).json(&json!({"text": "x"})).send().await.unwrap();
    assert_eq!((answer.status().as_u16(), answer.text().await.unwrap()), (200, "ok".to_owned()));

    // The sink trusts the system's roots only: the certificate is not trusted, and waiting
    // will not change that, so the failure is permanent (dead letters, not retries).
    let err = sink_for(hook, Some(5.0)).send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn check_warns_about_plain_http_to_another_machine() {
    let warn = |url: String| {
        let sink = sink_for(url, None);
        let lines = sink.check();
        for l in &lines {
            assert!(!l.contains("SECRET") && !l.contains("/services/"), "{l}");
        }
        lines.iter().any(|l| l.contains("plain http://"))
    };
    assert!(warn(format!("http://hooks.slack.com/services/{SECRET}")));
    assert!(warn(format!("http://192.0.2.10:8080/services/{SECRET}")));
    assert!(!warn(format!("https://hooks.slack.com/services/{SECRET}")));
    assert!(!warn(format!("http://127.0.0.1:8080/services/{SECRET}")));
    assert!(!warn(format!("http://localhost/services/{SECRET}")));
    assert!(!warn(format!("http://[::1]:8080/services/{SECRET}")));
}

#[tokio::test]
async fn a_cr_lf_in_the_id_fakes_no_line_in_the_posted_json() {
    let server = server_answering(200, "ok", None).await;
    let sink = sink_for(url(&server), None);
    let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
    sink.send(&Event::target_event(EventKind::Ban, "sshd", evil, "host.example")).await.unwrap();
    let digest = vec![
        Event::target_event(EventKind::Ban, "sshd", evil, "host.example"),
        Event::target_event(EventKind::Unban, "sshd", evil, "host.example"),
    ];
    sink.send_digest(&f2b_notify_core::Digest::new(digest)).await.unwrap();
    let got = received(&server).await;
    assert_eq!(got.len(), 2);
    for body in &got {
        let text = body["text"].as_str().unwrap();
        assert!(!text.contains(['\r', '\n']), "{text:?}");
        let mut texts = Vec::new();
        every_text(body, &mut texts);
        let lines: Vec<&str> = texts.iter().flat_map(|t| t.split(['\r', '\n'])).collect();
        assert!(!lines.iter().any(|l| l.starts_with("FAKE")), "{lines:?}");
    }
    assert_eq!(got[0]["text"], "Fail2Ban (sshd) banned 198.51.100.1  FAKE LINE: banned 10.0.0.1 (not an IP address)");
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
async fn secret_stays_out_of_debug_and_config_errors() {
    let server = server_answering(200, "ok", None).await;
    let sink = sink_for(url(&server), None);
    assert!(!format!("{sink:?}").contains("SECRET"), "{sink:?}");
    let cfg = Config { url: Some(Secret::new(url(&server))), ..Config::default() };
    assert!(!format!("{cfg:?}").contains("SECRET"));

    for (bad, why) in [
        (format!("not a url {SECRET}"), "`url` is not a valid URL: it has no scheme: write it as https://…"),
        (format!("hooks.slack.com/services/{SECRET}"), "it has no scheme"),
        (format!("https://hooks.slack .com/services/{SECRET}"), "it holds a space or a line break"),
        (format!("ftp://x/{SECRET}"), "`url` must be an https:// URL"),
        // A secret without its scheme may parse as one: not even that is shown.
        ("SECRETxyzzy:1234".to_owned(), "`url` must be an https:// URL"),
    ] {
        let err = super::new("ops", Config { url: Some(Secret::new(bad)), ..Config::default() }).unwrap_err();
        assert!(!err.to_string().contains("SECRET") && !err.to_string().contains("ftp"), "{err}");
        assert!(err.to_string().contains(why), "{err} lacks {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, [b"https://hooks.example/".as_slice(), SECRET.as_bytes(), b"\xff"].concat()).unwrap();
    let err = super::new("ops", Config { url_file: Some(file.clone()), ..Config::default() }).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8") && !err.to_string().contains("SECRET"), "{err}");
    let both = Config { url: Some(Secret::new("https://x/")), url_file: Some(file), ..Config::default() };
    assert!(super::new("ops", both).unwrap_err().to_string().contains("not both"));
}

#[cfg(unix)]
#[tokio::test]
async fn check_reports_a_readable_secret_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, format!("https://hooks.example/services/{SECRET}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sink = super::new("ops", Config { url_file: Some(file.clone()), ..Config::default() }).unwrap();
    let warnings = sink.check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("mode 644") && !warnings[0].contains("SECRET"), "{warnings:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink.check().is_empty());
}

#[tokio::test]
async fn channel_override_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "text": "Fail2Ban (sshd) jail stopped on h",
            "channel": "#security",
            "attachments": [{"color": "#9e9e9e", "fallback": "Fail2Ban (sshd) jail stopped on h", "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "Fail2Ban (sshd) jail stopped on h"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Jail*\nsshd"}, {"type": "mrkdwn", "text": "*Host*\nh"}]}
            ]}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let sink = super::new(
        "ops",
        Config { url: Some(Secret::new(url(&server))), channel: Some("#security".into()), ..Config::default() },
    )
    .unwrap();
    sink.send(&Event::jail_event(EventKind::Stop, "sshd", "h")).await.unwrap();
}
