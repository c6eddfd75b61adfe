//! The Web API sink against real HTTP servers on loopback (port 0): wiremock for the
//! classification of every answer, and the Slack stand-in (`f2b_notify_standins::slack`),
//! which keeps chat.postMessage's and chat.update's contract, for threads and edits.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Digest, Event, EventKind, MessageRef, Secret, Sink, SinkError};
use f2b_notify_standins::slack::{self as standin, Service};
use f2b_notify_standins::{Reply, StandIn};
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
    assert_eq!(from_file.api().auth.to_str().unwrap(), format!("Bearer {TOKEN}"));
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

// ---- Threads and edits, against the stand-in ----

/// The configured channel's id in the stand-in, and another channel's.
const SECURITY: &str = "C0SEC0001";
const OLD: &str = "C0OLD0002";

/// A workspace with `#security` and `#old`, on loopback.
struct Workspace {
    slack: Arc<Service>,
    server: StandIn,
}

impl Workspace {
    fn new() -> Self {
        let slack = Service::new(TOKEN);
        slack.add_channel(SECURITY, "security");
        slack.add_channel(OLD, "old");
        let server = StandIn::start(slack.responder());
        Self { slack, server }
    }

    /// A sink posting to `channel` (a name or an id), as a worker just started has it.
    fn sink(&self, channel: &str) -> ApiSink {
        self.sink_with(Config { channel: Some(channel.into()), ..Config::default() })
    }

    fn sink_with(&self, config: Config) -> ApiSink {
        super::new(
            "api",
            Config {
                token: config.token.clone().or_else(|| Some(Secret::new(TOKEN))),
                url: Some(self.server.url("/api/")),
                ..config
            },
        )
        .unwrap()
    }

    /// The message a reference names, as the channel shows it now.
    fn message(&self, r: &MessageRef) -> standin::Message {
        let (channel, ts) = r.as_str().split_once(':').unwrap();
        let m = self.slack.message(ts).unwrap_or_else(|| panic!("no message {r:?}"));
        assert_eq!(m.channel, channel, "{r:?}");
        m
    }

    fn calls(&self) -> (usize, usize) {
        (self.slack.post_calls(), self.slack.update_calls())
    }
}

fn unban() -> Event {
    Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example")
}

fn storm(n: usize) -> Digest {
    Digest::new(
        (0..n)
            .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.18.{}.{}", i / 256, i % 256), "h"))
            .collect(),
    )
}

#[tokio::test]
async fn a_ban_posted_returns_its_reference() {
    let w = Workspace::new();
    let r = w.sink("#security").post(&ban(), None).await.unwrap().expect("a reference");
    let m = w.message(&r);
    // The channel's id as Slack answered it, not the configured name: chat.update needs it.
    assert!(r.as_str().starts_with("C0SEC0001:"), "{r:?}");
    assert_eq!((m.thread_ts.as_deref(), m.visible), (None, true));
    assert_eq!(m.text, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
    assert_eq!(m.posted["channel"], "#security");
    // `send` is the same post, its reference dropped.
    w.sink("#security").send(&unban()).await.unwrap();
    assert_eq!(w.slack.messages().len(), 2);
}

#[tokio::test]
async fn an_unban_replies_in_its_bans_thread() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    let reply_ref = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect("the reply's reference");
    let (parent, reply) = (w.message(&ban_ref), w.message(&reply_ref));
    assert!(reply.replies_to(&parent), "{reply:?}");
    assert_eq!(reply.thread_ts.as_deref(), Some(parent.ts.as_str()));
    assert!(!reply.reply_broadcast && reply.posted.get("reply_broadcast").is_none());
    assert_eq!(reply.text, "Fail2Ban (sshd) unbanned IP 203.0.113.7");
    assert_ne!(reply_ref, ban_ref);

    // A worker started later (the reference came from the spool's state) replies in the
    // thread too, in one call: the channel given by name is checked after the fact.
    let before = w.calls();
    let later = w.sink("#security").post(&unban(), Some(&ban_ref)).await.unwrap().unwrap();
    assert!(w.message(&later).replies_to(&parent));
    assert_eq!(w.calls(), (before.0 + 1, 0));
    // And one configured by the channel's id knows it from the start.
    let by_id = w.sink(SECURITY).post(&unban(), Some(&ban_ref)).await.unwrap().unwrap();
    assert!(w.message(&by_id).replies_to(&parent));
}

#[tokio::test]
async fn thread_replies_off_posts_unbans_on_their_own() {
    let w = Workspace::new();
    let ban_ref = w.sink("#security").post(&ban(), None).await.unwrap().unwrap();
    let sink =
        w.sink_with(Config { channel: Some("#security".into()), thread_replies: Some(false), ..Config::default() });
    let r = sink.post(&unban(), Some(&ban_ref)).await.unwrap().unwrap();
    let m = w.message(&r);
    assert_eq!((m.thread_ts, m.visible), (None, true));
}

/// The config moved the sink to another channel: the ban's `ts` names nothing there, so a
/// reply would be shown nowhere. The unban is posted on its own, visible.
#[tokio::test]
async fn after_a_move_to_another_channel_unbans_are_posted_on_their_own() {
    let w = Workspace::new();
    let old_ref = w.sink("#old").post(&ban(), None).await.unwrap().unwrap();
    assert!(old_ref.as_str().starts_with("C0OLD0002:"));
    let visible_unthreaded = |r: &MessageRef| {
        let m = w.message(r);
        assert_eq!((m.channel.as_str(), m.thread_ts.as_deref(), m.visible), (SECURITY, None, true), "{m:?}");
    };

    // Known from the config (an id): posted on its own at once.
    let (posts, _) = w.calls();
    let r = w.sink(SECURITY).post(&unban(), Some(&old_ref)).await.unwrap().unwrap();
    visible_unthreaded(&r);
    assert_eq!(w.calls().0, posts + 1);

    // A name, and nothing posted yet: the reply lands nowhere, which Slack's answer shows
    // (another channel); it is posted again on its own.
    let sink = w.sink("#security");
    let r = sink.post(&unban(), Some(&old_ref)).await.unwrap().unwrap();
    visible_unthreaded(&r);
    assert_eq!(w.calls().0, posts + 3);
    let lost = w.slack.messages().into_iter().filter(|m| !m.visible).count();
    assert_eq!(lost, 1);
    // Now the sink knows its channel's id: the next one is posted on its own at once.
    let r = sink.post(&unban(), Some(&old_ref)).await.unwrap().unwrap();
    visible_unthreaded(&r);
    assert_eq!(w.calls().0, posts + 4);
}

#[tokio::test]
async fn a_reply_refused_for_the_threads_sake_is_posted_on_its_own() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    for code in ["cannot_reply_to_message", "restricted_action_thread_locked"] {
        w.slack.force([standin::error(code)]);
        let r = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect(code);
        let m = w.message(&r);
        assert_eq!((m.thread_ts, m.visible), (None, true), "{code}");
    }
    // Other refusals of a reply are what they always were.
    w.slack.force([standin::error("not_in_channel")]);
    let err = sink.post(&unban(), Some(&ban_ref)).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("not_in_channel"), "{err}");
}

/// A storm is one message: posted once, then edited with every event so far.
#[tokio::test]
async fn a_storm_is_one_message_edited_in_place() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let first = sink.post_digest(&storm(100), None).await.unwrap().expect("a reference");
    let second = sink.post_digest(&storm(300), Some(&first)).await.unwrap();
    let third = sink.post_digest(&storm(500), second.as_ref()).await.unwrap();
    assert_eq!((second.as_ref(), third.as_ref()), (Some(&first), Some(&first)));
    assert_eq!(w.calls(), (1, 2));
    let messages = w.slack.messages();
    assert_eq!(messages.len(), 1);
    let m = w.message(&first);
    assert_eq!((m.edits, m.parse.as_deref()), (2, Some("none")));
    assert_eq!(m.text, "Fail2Ban on h: 500 bans in 1 jail");
    let shown = m.shown();
    // Every address, each exactly once (not the first digest's left over beside the last's).
    for i in 0..500 {
        let span = format!("`198.18.{}.{}`", i / 256, i % 256);
        assert_eq!(shown.matches(&span).count(), 1, "{span}");
    }
    // The edit carries what chat.update takes: the channel's id and the message's ts, not
    // the poster's name or emoji.
    let sink = w.sink_with(Config {
        channel: Some("#security".into()),
        username: Some("fail2ban".into()),
        icon_emoji: Some(":lock:".into()),
        ..Config::default()
    });
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    sink.post_digest(&storm(3), Some(&r)).await.unwrap();
    let edited = w.message(&r);
    assert_eq!((edited.edits, edited.posted["username"].as_str()), (1, Some("fail2ban")));
    assert!(edited.shown().contains("`198.18.0.2`"));
}

/// Past Slack's 50 blocks, the digest names what fits and counts the rest; its echo is
/// larger than the HTTP layer reads, and the post and edit still count as done.
#[tokio::test]
async fn a_storm_past_the_block_limit_and_past_the_answer_limit() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let big = |n: usize| {
        Digest::new(
            (0..n)
                .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("2001:db8:ffff:ffff::{i:x}"), "h"))
                .collect(),
        )
    };
    let r = sink.post_digest(&big(6000), None).await.unwrap().expect("a reference from a cut answer");
    assert_eq!(sink.post_digest(&big(8000), Some(&r)).await.unwrap(), Some(r.clone()));
    let m = w.message(&r);
    let blocks = m.attachments[0]["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 50);
    assert!(m.shown().contains("more not listed here (Slack's block limit)"));
    assert_eq!(m.text, "Fail2Ban on h: 8000 bans in 1 jail");
    assert_eq!(w.calls(), (1, 1));
    // The echo was indeed past what the HTTP layer reads.
    assert!(m.attachments.to_string().len() > f2b_notify_http::MAX_BODY);
}

#[tokio::test]
async fn an_edit_refused_for_that_messages_sake_posts_a_new_message() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let first = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    // Deleted in Slack: `message_not_found`.
    w.slack.delete(first.as_str().split_once(':').unwrap().1);
    let second = sink.post_digest(&storm(20), Some(&first)).await.unwrap().expect("a new message");
    assert_ne!(second, first);
    assert!(w.message(&second).shown().contains("`198.18.0.19`"));
    assert_eq!(w.calls(), (2, 1));
    for code in ["edit_window_closed", "cant_update_message"] {
        w.slack.force([standin::error(code)]);
        let next = sink.post_digest(&storm(30), Some(&second)).await.unwrap().expect(code);
        assert_ne!(next, second, "{code}");
        assert_eq!(w.message(&next).edits, 0);
    }
    assert_eq!(w.calls(), (4, 3));
    // Storms go on in the configured channel: a message in another one is not edited.
    let old = w.sink("#old").post_digest(&storm(1), None).await.unwrap().unwrap();
    let moved = sink.post_digest(&storm(2), Some(&old)).await.unwrap().unwrap();
    assert!(moved.as_str().starts_with("C0SEC0001:"), "{moved:?}");
    assert_eq!((w.message(&old).edits, w.calls().1), (0, 3));
}

#[tokio::test]
async fn other_edit_failures_are_classified_as_usual() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let r = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    w.slack.rate_limit(Some(12));
    let err = sink.post_digest(&storm(20), Some(&r)).await.unwrap_err();
    assert!(err.is_transient() && err.retry_after_hint() == Some(Duration::from_secs(12)), "{err:?}");
    w.slack.rate_limit(None);
    for (reply, transient) in [
        (standin::error("invalid_auth"), false),
        (standin::error("internal_error"), true),
        (Reply::json(503, &json!({})), true),
    ] {
        w.slack.force([reply]);
        let err = sink.post_digest(&storm(20), Some(&r)).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err}");
        assert_no_secret(&err);
    }
    // None of these posted a new message in the edit's place.
    assert_eq!(w.calls(), (1, 4));
    assert_eq!(w.slack.messages().len(), 1);
}

/// A server's answer is not trusted: a `ts` with a newline, a huge one, or none at all is no
/// reference, and the message, which Slack took, is not a failure.
#[tokio::test]
async fn hostile_answers_give_no_reference_not_a_failure() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let huge = "9".repeat(100_000);
    // In Slack's order, `ok` first: a huge field after it is cut by the HTTP layer's limit.
    let answer = |channel: &str, ts: &str| format!(r#"{{"ok":true,"channel":{channel},"ts":{ts}}}"#);
    for body in [
        answer(r#""C0SEC0001""#, r#""1700000000.000001\nX-Injected: 1""#),
        answer(r#""C0SEC0001""#, &format!(r#""1.{huge}""#)),
        answer(r#""C0SEC0001\n""#, r#""1700000000.000001""#),
        answer(&format!(r#""C{huge}""#), r#""1700000000.000001""#),
        answer("7", "1700000000.000001"),
        answer(r#""C0SEC0001""#, r#"{"ts":"1700000000.000001"}"#),
        r#"{"ok":true}"#.to_owned(),
    ] {
        w.slack.force([Reply::new(200, &body)]);
        assert_eq!(sink.post(&ban(), None).await.unwrap(), None, "{:.80}", body);
        w.slack.force([Reply::new(200, &body)]);
        assert_eq!(sink.post_digest(&storm(2), None).await.unwrap(), None);
    }
    // Nothing sane was learnt: a reply is still checked against Slack's answer.
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    assert!(w.message(&sink.post(&unban(), Some(&ban_ref)).await.unwrap().unwrap()).visible);
    // A reference of the wrong shape handed back (an old or edited spool) is no thread.
    for bad in ["C0SEC0001", "C0SEC0001:soon", "c0sec0001:1.2", ":1700000000.000001"] {
        let r = sink.post(&unban(), MessageRef::new(bad).as_ref()).await.unwrap().unwrap();
        assert_eq!(w.message(&r).thread_ts, None, "{bad}");
        let r = sink.post_digest(&storm(1), MessageRef::new(bad).as_ref()).await.unwrap().unwrap();
        assert_eq!(w.message(&r).edits, 0, "{bad}");
    }
}

#[tokio::test]
async fn the_token_shows_nowhere() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    let wrong = w.sink_with(Config {
        token: Some(Secret::new("xoxb-SECRET-but-wrong")),
        channel: Some("#security".into()),
        ..Config::default()
    });
    let errors = [
        wrong.post(&ban(), None).await.unwrap_err(),
        wrong.post(&unban(), Some(&r)).await.unwrap_err(),
        wrong.post_digest(&storm(3), Some(&r)).await.unwrap_err(),
    ];
    for e in &errors {
        assert!(e.to_string().starts_with("invalid_auth"), "{e}");
        assert_no_secret(e);
    }
    for text in [format!("{sink:?}"), format!("{wrong:?}"), sink.preview(&ban()).unwrap(), sink.check().join("\n")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    let preview = sink.preview(&ban()).unwrap();
    assert!(preview.contains("/api/chat.postMessage with `Authorization: Bearer` and the token (not shown)"));
    // Every request carried the token in its header only.
    for req in w.server.requests() {
        assert!(!req.body.contains("SECRET"), "{}", req.body);
    }
}

#[tokio::test]
async fn alerts_post_in_the_channel() {
    let w = Workspace::new();
    let sink = w.sink("#security");
    let alert = Alert { subject: "sink `mail` failing".into(), text: "<!here> smtp".into(), recovered: false };
    assert!(sink.carries_alerts());
    sink.send_alert(&alert).await.unwrap();
    let m = &w.slack.messages()[0];
    assert!(m.shown().contains("&lt;!here&gt; smtp") && !m.shown().contains("<!here>"), "{}", m.shown());
    assert_eq!(sink.min_interval(), Duration::from_secs(1));
}

/// A worker started mid-storm: configured by id, it edits the storm's message; by name, it
/// does not know yet that the message is in its channel and posts anew (then edits that one).
#[tokio::test]
async fn a_worker_started_mid_storm() {
    let w = Workspace::new();
    let first = w.sink("#security").post_digest(&storm(10), None).await.unwrap().unwrap();
    let by_id = w.sink(SECURITY).post_digest(&storm(20), Some(&first)).await.unwrap();
    assert_eq!((by_id.as_ref(), w.calls()), (Some(&first), (1, 1)));
    let sink = w.sink("#security");
    let anew = sink.post_digest(&storm(30), Some(&first)).await.unwrap().unwrap();
    assert_ne!(anew, first);
    assert_eq!(w.calls(), (2, 1));
    assert_eq!(sink.post_digest(&storm(40), Some(&anew)).await.unwrap(), Some(anew.clone()));
    assert_eq!((w.calls(), w.message(&anew).edits), ((2, 2), 1));
}
