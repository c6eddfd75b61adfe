//! The Telegram sink against the Bot API's loopback stand-in (f2b-notify-standins'
//! `telegram`, a real HTTP server on port 0 that parses the HTML as Telegram does), and
//! against servers that fail in every other way.

use std::sync::Arc;
use std::time::Duration;

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, MessageRef, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::telegram::{self as tg, Message, Service};
use f2b_notify_standins::{Reply, Request, StandIn};
use serde_json::{json, Value};

use super::{ChatIdValue, Config, TelegramSink};

/// The test token: neither it nor its secret half may show up in any error, Debug, check
/// line or preview.
const TOKEN: &str = "123456789:AAsecretTOKENpart_x-42";
const SECRET_HALF: &str = "AAsecretTOKENpart_x-42";
const CHAT: i64 = -1_001_234_567_890;

/// The stand-in with the test token and chat, rate limits off (most tests send quickly).
struct Bot {
    service: Arc<Service>,
    server: StandIn,
}

fn bot() -> Bot {
    let service = Service::new(TOKEN);
    service.add_chat(&CHAT.to_string());
    service.set_rate_limits(false);
    let server = StandIn::start(service.responder());
    Bot { service, server }
}

impl Bot {
    fn url(&self) -> String {
        self.server.url("")
    }

    fn config(&self) -> Config {
        config(self.url())
    }

    fn sink(&self) -> TelegramSink {
        super::new("tg", self.config()).unwrap()
    }

    fn accepted(&self) -> Vec<Message> {
        self.service.accepted()
    }

    fn last(&self) -> Message {
        self.accepted().pop().expect("an accepted message")
    }
}

fn config(api_url: String) -> Config {
    Config {
        token: Some(Secret::new(TOKEN)),
        chat_id: Some(ChatIdValue::from(CHAT)),
        api_url: Some(api_url),
        ..Config::default()
    }
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "web1.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.user = Some("root".into());
    e.matches = Some("Failed password for root from 203.0.113.7\nFailed password for root from 203.0.113.7".into());
    e
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(TOKEN) && !text.contains(SECRET_HALF), "token leaked: {text}");
}

fn assert_error_has_no_secret(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

#[tokio::test]
async fn exact_request_for_each_event_kind() {
    let bot = bot();
    let sink = bot.sink();
    sink.send(&ban()).await.unwrap();
    let requests = bot.server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", format!("/bot{TOKEN}/sendMessage").as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = "Fail2Ban (sshd) banned IP <code>203.0.113.7</code> for 5 failure(s)\n\
        \n<b>Jail:</b> sshd\
        \n<b>Address:</b> <code>203.0.113.7</code>\
        \n<b>Failures:</b> 5\
        \n<b>Ban time:</b> 10 min\
        \n<b>Host:</b> <code>web1.example</code>\
        \n<b>User:</b> <code>root</code>\
        \n\n<b>Matched log lines:</b>\
        \n<pre>Failed password for root from 203.0.113.7\nFailed password for root from 203.0.113.7</pre>";
    assert_eq!(
        r.json(),
        json!({
            "chat_id": CHAT,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "disable_notification": false,
        })
    );
    let m = bot.last();
    assert!(m.text.starts_with("Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\nJail: sshd\n"), "{}", m.text);
    assert_eq!(m.entity_texts("code"), ["203.0.113.7", "203.0.113.7", "web1.example", "root"]);
    assert_eq!(m.entity_texts("pre").len(), 1);
    assert!(m.auto.is_empty(), "{:?}", m.auto);

    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "web1.example");
    sink.send(&unban).await.unwrap();
    assert_eq!(
        bot.last().body["text"],
        "Fail2Ban (sshd) unbanned IP <code>2001:db8::1</code>\n\
         \n<b>Jail:</b> sshd\n<b>Address:</b> <code>2001:db8::1</code>\n<b>Host:</b> <code>web1.example</code>"
    );
    // Fail2Ban's unban carries the ticket's matches too: only a ban shows them.
    let mut unban = unban;
    unban.matches = Some("x".into());
    sink.send(&unban).await.unwrap();
    assert!(!bot.last().text.contains("Matched"));
    let start = Event::jail_event(EventKind::Start, "sshd", "web1");
    sink.send(&start).await.unwrap();
    assert_eq!(bot.last().body["text"], "Fail2Ban (sshd) jail started on web1\n\n<b>Jail:</b> sshd\n<b>Host:</b> web1");
    let stop = Event::jail_event(EventKind::Stop, "nginx-http-auth", "web1.example");
    sink.send(&stop).await.unwrap();
    assert_eq!(
        bot.last().body["text"],
        "Fail2Ban (nginx-http-auth) jail stopped on <code>web1.example</code>\n\n<b>Jail:</b> nginx-http-auth\n<b>Host:</b> <code>web1.example</code>"
    );
    // A restored ban, an id that is not an address, a manual ban (0 failures), permanent.
    let mut other = Event::target_event(EventKind::Ban, "postfix", "bob@example", "h");
    other.failures = Some(0);
    other.bantime = Some(-1);
    other.restored = true;
    sink.send(&other).await.unwrap();
    assert_eq!(
        bot.last().body["text"],
        "Fail2Ban (postfix) banned <code>bob@example</code> (not an IP address) (restored at restart)\n\
         \n<b>Jail:</b> postfix\n<b>Banned id (not an IP address):</b> <code>bob@example</code>\
         \n<b>Ban time:</b> permanent\n<b>Host:</b> h\n<b>Restored:</b> yes, at Fail2Ban's restart"
    );
    assert!(bot.last().auto.is_empty());
    assert_eq!(bot.accepted().len(), 6);
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn a_ban_shows_what_enrichment_found_and_a_digest_where_the_bans_come_from() {
    let bot = bot();
    let sink = bot.sink();
    sink.send(&enriched(ban())).await.unwrap();
    let text = "Fail2Ban (sshd) banned IP <code>203.0.113.7</code> for 5 failure(s), the 4th time\n\
        \n<b>Jail:</b> sshd\
        \n<b>Address:</b> <code>203.0.113.7</code>\
        \n<b>Failures:</b> 5\
        \n<b>Ban time:</b> 10 min\
        \n<b>Host:</b> <code>web1.example</code>\
        \n<b>User:</b> <code>root</code>\
        \n<b>Host name:</b> <code>h.example</code> (unconfirmed)\
        \n<b>Location:</b> <code>Tokyo, Japan (JP)</code>\
        \n<b>Network:</b> AS64500 Example Net\
        \n<b>Repeat:</b> 4th ban\
        \n\n<b>Matched log lines:</b>\
        \n<pre>Failed password for root from 203.0.113.7\nFailed password for root from 203.0.113.7</pre>";
    let m = bot.last();
    assert_eq!(m.body["text"], text);
    assert!(m.auto.is_empty(), "{:?}", m.auto);

    let mut events: Vec<Event> = (1..=3)
        .map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("203.0.113.{i}"), "web1")))
        .collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("@admin <b>Org</b> evil.example".into());
    events[2].context.country = Some("#Evil".into());
    events[2].context.country_code = Some("EV".into());
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = bot.last();
    assert_eq!(
        m.body["text"],
        "Fail2Ban on web1: 3 bans in 1 jail\n<b>Banned:</b> <code>3 addresses, 2 of them from AS64500 Example Net, \
         1 from AS64501 @admin &lt;b&gt;Org&lt;/b&gt; evil.example; countries: Japan 2, #Evil 1</code>\n\
         <pre>sshd: banned 3:\n203.0.113.1, 203.0.113.2, 203.0.113.3</pre>"
    );
    assert!(m.auto.is_empty(), "{:?}", m.auto);
}

#[tokio::test]
async fn forum_topic_silent_and_channel_username() {
    let bot = bot();
    bot.service.add_thread(&CHAT.to_string(), 42);
    bot.service.add_chat("@f2b_alerts");
    let sink =
        super::new("tg", Config { message_thread_id: Some(42), disable_notification: true, ..bot.config() }).unwrap();
    sink.send(&Event::jail_event(EventKind::Start, "sshd", "h")).await.unwrap();
    let body = bot.last().body;
    assert_eq!((body["message_thread_id"].clone(), body["disable_notification"].clone()), (json!(42), json!(true)));
    // A channel by @username, and a chat's number given as a string (as in TOML "-100…").
    for (given, sent) in [("@f2b_alerts", json!("@f2b_alerts")), ("-1001234567890", json!(CHAT))] {
        let sink = super::new("tg", Config { chat_id: Some(given.into()), ..bot.config() }).unwrap();
        sink.send(&Event::jail_event(EventKind::Stop, "sshd", "h")).await.unwrap();
        assert_eq!(bot.last().body["chat_id"], sent);
    }
}

#[tokio::test]
async fn templates_override_the_first_line_in_html() {
    let bot = bot();
    let templates = Templates {
        ban: Some("<b>{{ jail }}</b>: {{ id }} by {{ user }} ({{ bantime_human }})".into()),
        ..Templates::default()
    };
    let mut e = ban();
    e.user = Some("@admin <b>x</b>".into());
    let sink = super::new("tg", Config { templates, ..bot.config() }).unwrap();
    sink.send(&e).await.unwrap();
    let m = bot.last();
    assert!(
        m.body["text"].as_str().unwrap().starts_with(
            "<b>sshd</b>: <code>203.0.113.7</code> by <code>@admin &lt;b&gt;x&lt;/b&gt;</code> (10 min)\n"
        ),
        "{}",
        m.body["text"]
    );
    assert!(m.text.starts_with("sshd: 203.0.113.7 by @admin <b>x</b> (10 min)\n"), "{}", m.text);
    assert!(m.auto.is_empty(), "{:?}", m.auto);
}

/// A template with a tag Telegram does not support: refused as HTML, then sent in the same
/// call as plain text that says why.
#[tokio::test]
async fn html_telegram_cannot_parse_is_sent_again_as_plain_text() {
    let bot = bot();
    let templates = Templates { ban: Some("<p>{{ jail }}</p> banned {{ ip }}".into()), ..Templates::default() };
    let sink = super::new("tg", Config { templates: templates.clone(), ..bot.config() }).unwrap();
    sink.send(&ban()).await.unwrap();
    let requests = bot.server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json()["parse_mode"], "HTML");
    assert!(requests[1].json().get("parse_mode").is_none(), "{}", requests[1].body);
    let m = bot.last();
    assert!(m.text.starts_with("sshd banned 203.0.113.7\n\nJail: sshd\n"), "{}", m.text);
    assert!(
        m.text.ends_with(
            "\n\n(sent as plain text: Telegram could not parse its HTML: Unsupported start tag \"p\" at byte offset 0)"
        ),
        "{}",
        m.text
    );
    assert_eq!(m.body["link_preview_options"], json!({"is_disabled": true}));

    // Refused as plain text too (it cannot be, but say the server does): permanent, once.
    let bot = bot_forcing([
        tg::error(400, "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"),
        tg::error(400, "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 5"),
    ]);
    let sink = super::new("tg", Config { templates, ..bot.config() }).unwrap();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("Can't find end of the entity") && err.to_string().contains("bug"), "{err}");
    assert_eq!(bot.server.requests().len(), 2);
    assert!(bot.accepted().is_empty());
}

fn bot_forcing(replies: impl IntoIterator<Item = Reply>) -> Bot {
    let bot = bot();
    bot.service.force(replies);
    bot
}

/// Attacker text: user names, ids and log lines that try to format, ping, link, add a
/// header or line, or overflow. Each arrives as text, in code, parsed by the stand-in as
/// Telegram would, within the limit, and nothing in it becomes a mention, hashtag, command
/// or link.
#[tokio::test]
async fn hostile_input_arrives_inert_and_within_limits() {
    let bot = bot();
    let sink = bot.sink();
    let hostile = [
        "<!channel>",
        "@everyone",
        "@here",
        "@admin_user",
        "<b>x</b>",
        "<a href=\"http://evil.example\">bank</a>",
        "*_~ bold_italic ~strike~",
        "`code` ```pre```",
        "[a](http://x)",
        "\r\nX-Header: y",
        "&lt; &amp;amp; &#60; &nbsp; & <",
        "#hashtag $USD /start /ban@some_bot",
        "https://evil.example/login www.evil.example",
        "</code></pre><b>",
        "\u{202E}gnp.exe \u{200B}\u{FEFF}\u{FFFD}\u{10FFFF} e\u{301}\u{301}\u{301}",
    ];
    for evil in hostile {
        let mut e = Event::target_event(EventKind::Ban, evil, evil, evil);
        e.user = Some(evil.into());
        e.matches = Some(format!("{evil}\n{evil}"));
        // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
        e.context = hostile_context(evil);
        sink.send(&e).await.unwrap_or_else(|err| panic!("{evil:?}: {err}"));
        let m = bot.last();
        assert!(m.auto.is_empty(), "{evil:?} made {:?} of {}", m.auto, m.text);
        let flat = f2b_notify_core::flatten(evil);
        assert!(m.text.contains(&flat), "{evil:?} not shown as text: {}", m.text);
        for label in ["Host name: ", "Location: ", "Network: AS64500 "] {
            assert!(m.text.contains(&format!("\n{label}{flat}")), "{evil:?} not shown after {label}: {}", m.text);
        }
        // A digest's origins line names the hostile network and country.
        sink.send_digest(&Digest::new(vec![e.clone()])).await.unwrap();
        let m = bot.last();
        assert!(m.auto.is_empty(), "{evil:?} made {:?} of {}", m.auto, m.text);
        assert!(m.text.contains(&format!("\nBanned: 1 address, 1 from AS64500 {flat}")), "{}", m.text);
        assert!(!m.text.contains('\r'), "{:?}", m.text);
        // Every request was accepted at once: no plain-text resend.
        assert_eq!(m.body["parse_mode"], "HTML");
    }
    assert_eq!(bot.server.requests().len(), 2 * hostile.len());

    // 100 KB in every attacker field, and astral characters that count twice in UTF-16.
    let mut e = Event::target_event(EventKind::Ban, "sshd", "i".repeat(100_000), "h");
    e.user = Some("@".repeat(100_000));
    e.matches = Some(format!("{}\n{}", "<".repeat(100_000), "😀".repeat(50_000)));
    sink.send(&e).await.unwrap();
    let m = bot.last();
    assert!(m.utf16_len() <= 4096, "{}", m.utf16_len());
    assert!(m.text.contains("[cut "), "{}", m.text);
    assert!(m.auto.is_empty());
    // 10,000 log lines: the last ones shown, the rest counted.
    let mut e = ban();
    e.matches = Some((0..10_000).map(|i| format!("line {i} from 203.0.113.7")).collect::<Vec<_>>().join("\n"));
    sink.send(&e).await.unwrap();
    let m = bot.last();
    assert!(m.text.contains("9992 earlier line(s) not shown\n"), "{}", m.text);
    assert!(m.text.ends_with("line 9999 from 203.0.113.7"), "{}", m.text);

    // A template that shows the attacker's text raw in its own markup still cannot break
    // out: the values arrive escaped and in code.
    let templates = Templates {
        ban: Some(
            "<i>{{ user }}</i> {{ matches }} {{ id }} {{ jail }} {{ host }} <b>{{ hostname }}</b> {{ country }} \
             {{ city }} {{ as_org }} {{ context }}"
                .into(),
        ),
        ..Templates::default()
    };
    let sink = super::new("tg", Config { templates, ..bot.config() }).unwrap();
    for evil in hostile {
        let mut e = Event::target_event(EventKind::Ban, evil, evil, evil);
        e.user = Some(evil.into());
        e.matches = Some(evil.into());
        e.context = hostile_context(evil);
        sink.send(&e).await.unwrap();
        let m = bot.last();
        assert_eq!(m.body["parse_mode"], "HTML", "{evil:?}");
        assert!(m.auto.is_empty(), "{evil:?} made {:?}", m.auto);
    }
    let mut e = ban();
    e.matches = Some("😀".repeat(100_000));
    sink.send(&e).await.unwrap();
    assert!(bot.last().utf16_len() <= 4096);
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

/// Total addresses a digest's text names plus the ones it counts, per "banned N"/"unbanned
/// N" list.
fn listed_and_counted(text: &str, prefix: &str) -> (usize, usize) {
    let listed = text.matches(prefix).count();
    let counted = text
        .match_indices("… and ")
        .filter_map(|(i, _)| text[i + "… and ".len()..].split(' ').next()?.parse::<usize>().ok())
        .sum();
    (listed, counted)
}

#[tokio::test]
async fn digests_name_every_address_that_fits_and_count_the_rest_exactly() {
    let bot = bot();
    let sink = bot.sink();
    let events = vec![
        Event::jail_event(EventKind::Start, "sshd", "web1.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.1", "web1.example"),
        Event::target_event(EventKind::Ban, "sshd", "203.0.113.2", "web1.example"),
        Event::target_event(EventKind::Unban, "sshd", "203.0.113.1", "web1.example"),
        Event::target_event(EventKind::Ban, "@admin", "2001:db8::1", "web1.example"),
    ];
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = bot.last();
    assert_eq!(
        m.body["text"],
        "Fail2Ban on <code>web1.example</code>: 3 bans, 1 unban, 1 jail start in 2 jails\n\
         <pre>sshd: jail started\nsshd: banned 2:\n203.0.113.1, 203.0.113.2\nsshd: unbanned 1:\n203.0.113.1\n\
         @admin: banned 1:\n2001:db8::1</pre>"
    );
    assert!(m.auto.is_empty());

    // A storm: more than one message can hold.
    let mut events: Vec<Event> = (0..1000)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.51.{}.{}", i / 256, i % 256), "h"))
        .collect();
    events.extend((0..300).map(|i| Event::target_event(EventKind::Unban, "nginx", format!("2001:db8::{i:x}"), "h")));
    events.push(Event::jail_event(EventKind::Stop, "web", "h"));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = bot.last();
    assert!(m.utf16_len() <= 4096, "{}", m.utf16_len());
    assert!(m.text.starts_with("Fail2Ban on h: 1000 bans, 300 unbans, 1 jail stop in 3 jails\n"), "{}", m.text);
    let (sshd, nginx) = m.text.split_once("nginx: unbanned").expect(&m.text);
    let (listed, counted) = listed_and_counted(sshd, "198.51.");
    assert_eq!(listed + counted, 1000, "{}", m.text);
    let (v6_listed, v6_counted) = listed_and_counted(nginx, "2001:db8::");
    assert_eq!(v6_listed + v6_counted, 300, "{}", m.text);
    assert!(listed > 100 && counted > 0, "{listed} {counted}");
    // Every address listed is a whole one, in order.
    for i in 0..listed {
        assert!(m.text.contains(&format!("198.51.{}.{}", i / 256, i % 256)), "address {i}");
    }
    assert!(m.text.contains("sshd: banned 1000:\n"), "{}", m.text);
    assert!(m.text.contains("nginx: unbanned 300:\n"), "{}", m.text);
    assert!(m.text.contains("web: jail stopped"), "{}", m.text);
    assert!(m.text.contains("more (Telegram's 4096-character limit)"), "{}", m.text);
    assert_eq!(m.entity_texts("pre").len(), 1);

    // Hundreds of jails: those that find no room are counted, with their addresses.
    let events: Vec<Event> = (0..400)
        .map(|i| Event::target_event(EventKind::Ban, format!("jail-{i}"), format!("192.0.2.{}", i % 250), "h"))
        .collect();
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let m = bot.last();
    assert!(m.utf16_len() <= 4096);
    let shown = m.text.matches(": banned 1:\n").count();
    let note = m.text.lines().last().unwrap();
    assert_eq!(
        note,
        format!(
            "… and {} more jail(s) with {} address(es) not listed (Telegram's 4096-character limit)",
            400 - shown,
            400 - shown
        )
    );
    // A hostile id in a digest is text in the block.
    let evil = "@admin\r\n</pre><b>x";
    sink.send_digest(&Digest::new(vec![Event::target_event(EventKind::Ban, "sshd", evil, "h")])).await.unwrap();
    let m = bot.last();
    assert!(m.text.contains("@admin  </pre><b>x"), "{}", m.text);
    assert!(m.auto.is_empty());
}

#[tokio::test]
async fn alerts_are_carried() {
    let bot = bot();
    let sink = bot.sink();
    assert!(sink.carries_alerts());
    let alert = Alert {
        subject: "f2b-notify on h: sink `ops` failing since 2024-01-01 00:00:00".into(),
        text: "The slack-webhook sink `ops` has been failing since 2024-01-01 00:00:00.\nLast error: <html> & @admin\n3 event(s) waiting for it.".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    assert_eq!(
        bot.last().body["text"],
        "<b>f2b-notify on h: sink `ops` failing since 2024-01-01 00:00:00</b>\n\n\
         The slack-webhook sink `ops` has been failing since 2024-01-01 00:00:00.\nLast error: &lt;html&gt; &amp; @admin\n3 event(s) waiting for it."
    );
    let long = Alert { subject: "x".repeat(10_000), text: "y\n".repeat(10_000), recovered: true };
    sink.send_alert(&long).await.unwrap();
    assert!(bot.last().utf16_len() <= 4096);
}

/// An answer and how it must be classified: the reply, transient, the wait, text the error
/// must carry.
type Case = (Reply, bool, Option<u64>, &'static str);

#[tokio::test]
async fn every_documented_failure_is_classified() {
    let nginx_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>";
    let cases: Vec<Case> = vec![
        (tg::too_many_requests(35), true, Some(35), "Too Many Requests: retry after 35 (HTTP 429): Telegram's flood control"),
        // The wait from the description when there are no parameters; none at all: no hint.
        (tg::error(429, "Too Many Requests: retry after 7"), true, Some(7), "retry after 7"),
        (tg::error(429, "Too Many Requests"), true, None, "HTTP 429"),
        (tg::error(500, "Internal Server Error"), true, None, "Internal Server Error (HTTP 500): a problem on Telegram's side"),
        (Reply::new(502, nginx_502).header("Content-Type", "text/html"), true, None, "502 Bad Gateway (HTTP 502)"),
        (Reply::new(503, ""), true, None, "no error text (HTTP 503)"),
        (Reply::new(504, "<html><body>gateway timeout</body></html>"), true, None, "HTTP 504"),
        (tg::error(401, "Unauthorized"), false, None, "Unauthorized (HTTP 401): Telegram does not accept the bot token"),
        (tg::error(404, "Not Found"), false, None, "Not Found (HTTP 404): the Bot API knows no such bot"),
        (tg::error(400, "Bad Request: chat not found"), false, None, "chat not found (HTTP 400): the chat does not exist"),
        (
            tg::error(403, "Forbidden: bot was blocked by the user"),
            false,
            None,
            "Forbidden: bot was blocked by the user (HTTP 403): the user blocked the bot: unblock it",
        ),
        (
            tg::error(403, "Forbidden: bot is not a member of the channel chat"),
            false,
            None,
            "(HTTP 403): the bot is not in this chat",
        ),
        (tg::error(403, "Forbidden: bot was kicked from the group chat"), false, None, "add it to the group"),
        (tg::error(403, "Forbidden: bot can't initiate conversation with a user"), false, None, "press Start"),
        (tg::error(403, "Forbidden: user is deactivated"), false, None, "choose another `chat_id`"),
        (tg::error(400, "Bad Request: not enough rights to send text messages to the chat"), false, None, "administrator"),
        (tg::error(400, "Bad Request: message is too long"), false, None, "report this as a bug"),
        (tg::error(400, "Bad Request: message text is empty"), false, None, "report this as a bug"),
        (
            tg::error_with(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                json!({"migrate_to_chat_id": -1001557912345i64}),
            ),
            false,
            None,
            "group chat was upgraded to a supergroup chat (HTTP 400): the group became a supergroup, whose chat_id is -1001557912345: set `chat_id = -1001557912345`",
        ),
        (Reply::new(200, "<html>captive portal</html>"), false, None, "not the Bot API's JSON"),
        (Reply::json(200, &json!({"ok": false})), false, None, "not the Bot API's JSON"),
        // A web server that quotes the path it was asked for: the token is cut out.
        (
            Reply::new(404, &format!("<html><title>404: /bot{TOKEN}/sendMessage not found</title></html>")),
            false,
            None,
            "404: /bot<token>/sendMessage not found (HTTP 404)",
        ),
        (
            Reply::new(502, &format!("upstream for /bot{TOKEN}/sendMessage {}", "x".repeat(300))),
            true,
            None,
            "/bot<token>/sendMessage",
        ),
    ];
    for (reply, transient, wait, text) in cases {
        let bot = bot_forcing([reply]);
        let err = bot.sink().send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err:?}");
        assert_eq!(err.retry_after_hint(), wait.map(Duration::from_secs), "{err:?}");
        assert!(err.to_string().contains(text), "{err} lacks {text}");
        assert_error_has_no_secret(&err);
        assert!(bot.accepted().is_empty());
    }
}

/// The stand-in's own rules (its 401, 404, chat and topic checks, migration and rate
/// limits), met as a misconfigured sink would meet Telegram's.
#[tokio::test]
async fn the_bot_apis_own_refusals() {
    let bot = bot();
    let wrong = Config { token: Some(Secret::new("123456789:AAsomeOTHERtoken")), ..bot.config() };
    let err = super::new("tg", wrong).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("Unauthorized (HTTP 401): "), "{err}");
    assert!(!err.to_string().contains("OTHERtoken"), "{err}");

    // An api_url with a path the Bot API does not have.
    let err = super::new("tg", config(bot.server.url("/proxy"))).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("Not Found (HTTP 404): "), "{err}");
    assert_error_has_no_secret(&err);

    let err = super::new("tg", Config { chat_id: Some((-100_999).into()), ..bot.config() })
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent() && err.to_string().starts_with("Bad Request: chat not found (HTTP 400): "), "{err}");

    let err = super::new("tg", Config { message_thread_id: Some(7), ..bot.config() })
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("message thread not found"), "{err}");

    bot.service.migrate("-4000", -1_009);
    let err = super::new("tg", Config { chat_id: Some((-4000).into()), ..bot.config() })
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("set `chat_id = -1009`"), "{err}");
    assert!(bot.accepted().is_empty());

    // One message a second per chat: the second, sent at once, is told to wait, exactly as
    // long as the body says (no Retry-After header).
    bot.service.set_rate_limits(true);
    let sink = bot.sink();
    sink.send(&ban()).await.unwrap();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.retry_after_hint(), Some(Duration::from_secs(1)));
    assert!(err.to_string().starts_with("Too Many Requests: retry after 1 (HTTP 429)"), "{err}");
    assert_eq!(bot.accepted().len(), 1);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    sink.send(&ban()).await.unwrap();
    assert_eq!(bot.accepted().len(), 2);
    assert_eq!(sink.min_interval(), Duration::from_secs(3));
}

#[tokio::test]
async fn timeouts_refusals_and_dropped_connections_never_show_the_token() {
    // A server slower than the timeout.
    let slow: f2b_notify_standins::Responder = Arc::new(|_: &Request, _| {
        std::thread::sleep(Duration::from_secs(2));
        tg::error(500, "late")
    });
    let server = StandIn::start(slow);
    let sink = super::new("tg", Config { timeout: Some(0.3), ..config(server.url("")) }).unwrap();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_error_has_no_secret(&err);

    // Nobody listening.
    let port = StandIn::reserve_port();
    let err = super::new("tg", config(format!("http://127.0.0.1:{port}"))).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err}");
    assert_error_has_no_secret(&err);

    // A server that accepts and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let err = super::new("tg", config(format!("http://{addr}"))).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_permanent_and_never_shows_the_token() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let (addr, der) = (tls.addr, tls.der.clone());
    let base = format!("https://127.0.0.1:{}", addr.port());
    // The server works: a client that trusts its certificate gets the Bot API's success.
    let trusting =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_der(&der).unwrap()).build().unwrap();
    let answer = trusting.post(format!("{base}/bot{TOKEN}/sendMessage")).json(&json!({})).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // The sink trusts the system's roots only.
    let err = super::new("tg", config(base)).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().starts_with("the server's TLS certificate is not trusted: "), "{err}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn debug_preview_and_check_never_show_the_token() {
    let bot = bot();
    let sink = bot.sink();
    assert_no_secret(&format!("{sink:?}"));
    assert_no_secret(&format!("{:?}", bot.config()));
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    assert!(
        preview.starts_with(&format!(
            "POST to {}/bot<token>/sendMessage (the token is not shown), this JSON body:\n{{",
            bot.url()
        )),
        "{preview}"
    );
    assert!(preview.contains("\"parse_mode\": \"HTML\""), "{preview}");
    assert!(preview.contains("<code>203.0.113.7</code>"), "{preview}");
    assert!(bot.server.requests().is_empty(), "a preview sends nothing");
    let default = super::new("tg", Config { api_url: None, ..bot.config() }).unwrap();
    assert!(default.preview(&ban()).unwrap().starts_with("POST to https://api.telegram.org/bot<token>/sendMessage "));
    let with_user = super::new("tg", config("https://user:pass@proxy.example/tg/".into())).unwrap();
    let preview = with_user.preview(&ban()).unwrap();
    assert!(preview.starts_with("POST to https://proxy.example/tg/bot<token>/sendMessage "), "{preview}");
    assert!(sink.check().is_empty());
}

#[tokio::test]
async fn check_warns_about_a_readable_token_file_and_cleartext_http() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("telegram.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = Config { token: None, token_file: Some(file.clone()), ..config("https://api.telegram.org".into()) };
    let sink = super::new("tg", cfg).unwrap();
    let lines = sink.check();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("mode 644") && lines[0].contains("telegram.token"), "{lines:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink.check().is_empty());
    // The token from the file is the one sent.
    let bot = bot();
    let cfg = Config { token: None, token_file: Some(file), ..bot.config() };
    super::new("tg", cfg).unwrap().send(&ban()).await.unwrap();
    assert_eq!(bot.accepted().len(), 1);

    let warns = |url: &str| {
        let lines = super::new("tg", config(url.to_owned())).unwrap().check();
        lines.iter().for_each(|l| assert_no_secret(l));
        lines.iter().any(|l| l.contains("plain http://") && l.contains("bot token"))
    };
    assert!(warns("http://api.telegram.org"));
    assert!(warns("http://192.0.2.10:8081/"));
    assert!(!warns("https://api.telegram.org"));
    assert!(!warns("http://127.0.0.1:8081"));
    assert!(!warns("http://localhost:8081"));
}

#[test]
fn config_errors_name_the_key_never_the_token() {
    let err = |cfg: Config| super::new("tg", cfg).unwrap_err().to_string();
    let base = || config("https://api.telegram.org".into());
    for (bad, why) in [
        ("", "it is empty"),
        ("bot123456789:AAsecretXYZ", "it starts with `bot`"),
        ("123456789 AAsecretXYZ", "a space or a line break"),
        ("123456789:AAsecretXYZ\n", "a space or a line break"),
        ("AAsecretXYZ", "it has no `:`"),
        ("12345x:AAsecretXYZ", "the bot's number, digits only"),
        (":AAsecretXYZ", "the bot's number, digits only"),
        ("123456789:", "nothing follows the `:`"),
        ("123456789:AAsecret/XYZ", "other than letters, digits"),
        ("https://api.telegram.org/bot123456789:AAsecretXYZ", "it looks like a URL"),
    ] {
        let text = err(Config { token: Some(Secret::new(bad)), ..base() });
        assert!(text.starts_with("`token` is not a Telegram bot token: "), "{text}");
        assert!(text.contains(why), "{text} lacks {why}");
        assert!(!text.contains("secretXYZ") && !text.contains("123456789:"), "{text}");
    }
    // From a file: the file is named, its content is not.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tg.token");
    std::fs::write(&file, "bot123456789:AAsecretXYZ\n").unwrap();
    let text = err(Config { token: None, token_file: Some(file.clone()), ..base() });
    assert!(
        text.starts_with(&format!(
            "`token_file` {} does not hold a Telegram bot token: it starts with `bot`",
            file.display()
        )),
        "{text}"
    );
    assert!(!text.contains("secretXYZ"), "{text}");
    let both = err(Config { token_file: Some(file), ..base() });
    assert!(both.contains("not both"), "{both}");
    assert!(err(Config { token: None, ..base() }).contains("missing `token`"));

    // An api_url with the token in it is refused without being quoted.
    for url in
        [format!("https://api.telegram.org/bot{TOKEN}"), "https://api.telegram.org/bot123:AAsecretXYZ/".to_owned()]
    {
        let text = err(Config { api_url: Some(url), ..base() });
        assert!(text.starts_with("`api_url` holds a bot token"), "{text}");
        assert_no_secret(&text);
        assert!(!text.contains("secretXYZ"), "{text}");
    }
    let text = err(Config { api_url: Some("api.telegram.org".into()), ..base() });
    assert!(text.contains("`api_url` is not a valid URL: it has no scheme"), "{text}");
    let text = err(Config { api_url: Some("ftp://api.telegram.org".into()), ..base() });
    assert!(text.contains("`api_url` must be an https:// URL"), "{text}");
    let text = err(Config { api_url: Some("https://api.telegram.org/?x=1".into()), ..base() });
    assert!(text.contains("without a query"), "{text}");

    assert!(err(Config { chat_id: None, ..base() }).starts_with("missing `chat_id`"));
    for bad in ["channel", "@", "@bad name", "-100x"] {
        let text = err(Config { chat_id: Some(bad.into()), ..base() });
        assert!(text.starts_with("`chat_id` = ") && text.contains("neither a chat's number"), "{text}");
    }
    let text = err(Config { message_thread_id: Some(0), ..base() });
    assert!(text.starts_with("`message_thread_id` = 0 must be"), "{text}");
    let text = err(Config { timeout: Some(60.0), ..base() });
    assert!(text.starts_with("`timeout` = 60"), "{text}");
    let bad = Templates { ban: Some("{% if %}".into()), ..Templates::default() };
    assert!(err(Config { templates: bad, ..base() }).starts_with("template for `ban`"));
}

#[test]
fn config_reads_from_toml_like_values() {
    let read = |v: Value| serde_json::from_value::<Config>(v);
    let c = read(json!({"token": TOKEN, "chat_id": -1001234567890i64, "message_thread_id": 3})).unwrap();
    assert_eq!(c.chat_id, Some(ChatIdValue::from(CHAT)));
    let c = read(json!({"chat_id": "@f2b_alerts"})).unwrap();
    let sink = super::new("tg", Config { token: Some(Secret::new(TOKEN)), ..c }).unwrap();
    assert_eq!(sink.chat_id, super::ChatId::Username("@f2b_alerts".into()));
    let e = read(json!({"chat_id": true})).unwrap_err().to_string();
    assert!(e.contains("a chat's number"), "{e}");
    let e = read(json!({"token": 123456789})).unwrap_err().to_string();
    assert!(e.starts_with("`token` must be a string") && !e.contains("123456789"), "{e}");
    let e = read(json!({"chat": 1})).unwrap_err().to_string();
    assert!(e.contains("unknown field `chat`"), "{e}");
}

// --- Conversation: references, replies under the ban, storms edited in place. ---

fn unban() -> Event {
    Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "web1.example")
}

fn storm(n: usize) -> Digest {
    Digest::new(
        (0..n)
            .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.18.{}.{}", i / 256, i % 256), "h"))
            .collect(),
    )
}

impl Bot {
    /// The message a reference names, as the chat shows it now.
    fn message(&self, r: &MessageRef) -> Message {
        let (chat, id) = r.as_str().split_once(':').unwrap();
        self.service.message(chat, id.parse().unwrap()).unwrap_or_else(|| panic!("no message {r:?}"))
    }
}

#[tokio::test]
async fn a_ban_returns_its_reference_and_its_unban_replies_to_it() {
    let bot = bot();
    let sink = bot.sink();
    let ban_ref = sink.post(&ban(), None).await.unwrap().expect("a reference");
    assert_eq!(ban_ref.as_str(), format!("{CHAT}:1"));
    let reply_ref = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect("the reply's reference");
    assert_eq!(reply_ref.as_str(), format!("{CHAT}:2"));
    let reply = bot.message(&reply_ref);
    assert_eq!(reply.reply_to, Some(1));
    assert_eq!(reply.body["reply_parameters"], json!({"message_id": 1, "allow_sending_without_reply": true}));
    assert!(reply.text.starts_with("Fail2Ban (sshd) unbanned IP 203.0.113.7"), "{}", reply.text);
    assert!(bot.message(&ban_ref).reply_to.is_none());
    // `send` is the same post, its reference dropped.
    sink.send(&unban()).await.unwrap();
    assert_eq!(bot.service.counts(), (3, 0));
}

#[tokio::test]
async fn an_unban_whose_ban_is_gone_is_sent_on_its_own() {
    let bot = bot();
    let sink = bot.sink();
    let ban_ref = sink.post(&ban(), None).await.unwrap().unwrap();
    // Deleted in Telegram: sent without a reply, in one request.
    bot.service.delete(&CHAT.to_string(), 1);
    let before = bot.server.requests().len();
    let r = sink.post(&unban(), Some(&ban_ref)).await.unwrap().unwrap();
    assert_eq!((bot.message(&r).reply_to, bot.server.requests().len()), (None, before + 1));
    // Refused for the replied message's sake all the same (another forum topic): sent again,
    // on its own.
    bot.service.force([tg::error(400, "Bad Request: message to be replied not found")]);
    let r = sink.post(&unban(), Some(&ban_ref)).await.unwrap().unwrap();
    let m = bot.message(&r);
    assert!(m.reply_to.is_none() && m.body.get("reply_parameters").is_none(), "{:?}", m.body);
    // Other refusals of a reply are what they always were.
    bot.service.force([tg::error(403, "Forbidden: bot was kicked from the supergroup chat")]);
    let err = sink.post(&unban(), Some(&ban_ref)).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("bot was kicked"), "{err}");
}

/// A reference from another chat (the config moved the sink) names some other message here:
/// no reply, no edit. A sink configured by `@username` knows its chat's number once Telegram
/// answered.
#[tokio::test]
async fn references_are_used_only_in_their_own_chat() {
    let bot = bot();
    bot.service.add_chat("@f2bchannel");
    let old = super::new("tg", Config { chat_id: Some((-100_777).into()), ..bot.config() }).unwrap();
    bot.service.add_chat("-100777");
    let elsewhere = old.post(&ban(), None).await.unwrap().unwrap();
    assert_eq!(elsewhere.as_str(), "-100777:1");
    let sink = bot.sink();
    sink.post(&ban(), None).await.unwrap().unwrap();
    let r = sink.post(&unban(), Some(&elsewhere)).await.unwrap().unwrap();
    assert!(bot.message(&r).body.get("reply_parameters").is_none());
    let d = sink.post_digest(&storm(2), Some(&elsewhere)).await.unwrap().unwrap();
    assert_ne!(d, elsewhere);
    assert_eq!(bot.message(&elsewhere).edits, 0);

    let named = super::new("tg", Config { chat_id: Some("@f2bchannel".into()), ..bot.config() }).unwrap();
    let first = named.post(&ban(), None).await.unwrap().unwrap();
    // Answered as the channel's number.
    assert!(first.as_str().starts_with("-100") && first.as_str().ends_with(":1"), "{first:?}");
    // A sink just started with the name does not know that number yet: on its own.
    let fresh = super::new("tg", Config { chat_id: Some("@f2bchannel".into()), ..bot.config() }).unwrap();
    let r = fresh.post(&unban(), Some(&first)).await.unwrap().unwrap();
    assert!(bot.message(&r).reply_to.is_none());
    // Now it does.
    let r = fresh.post(&unban(), Some(&first)).await.unwrap().unwrap();
    assert_eq!(bot.message(&r).reply_to, Some(1));
}

/// A storm is one message: sent once, then edited twice with every event so far.
#[tokio::test]
async fn a_storm_is_one_message_edited_in_place() {
    let bot = bot();
    bot.service.add_thread(&CHAT.to_string(), 42);
    let sink =
        super::new("tg", Config { message_thread_id: Some(42), disable_notification: true, ..bot.config() }).unwrap();
    let first = sink.post_digest(&storm(10), None).await.unwrap().expect("a reference");
    let second = sink.post_digest(&storm(60), Some(&first)).await.unwrap();
    let third = sink.post_digest(&storm(150), second.as_ref()).await.unwrap();
    assert_eq!((second.as_ref(), third.as_ref()), (Some(&first), Some(&first)));
    assert_eq!(bot.service.counts(), (1, 2));
    let m = bot.message(&first);
    assert_eq!(m.edits, 2);
    assert!(m.text.starts_with("Fail2Ban on h: 150 bans in 1 jail"), "{}", m.text);
    // Every address of the storm, once each, in what the chat finally shows.
    for i in 0..150 {
        let ip = format!("198.18.{}.{}", i / 256, i % 256);
        let named = m
            .text
            .match_indices(&ip)
            .filter(|(at, _)| !m.text[at + ip.len()..].starts_with(|c: char| c.is_ascii_digit()))
            .count();
        assert_eq!(named, 1, "{ip}: {}", m.text);
    }
    // editMessageText's own parameters: the message, the text in HTML, previews off; no
    // topic and no notification setting, which it does not take.
    let edit = bot.server.requests().pop().unwrap();
    assert_eq!(edit.path, format!("/bot{TOKEN}/editMessageText"));
    let body = edit.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["chat_id", "link_preview_options", "message_id", "parse_mode", "text"]);
    assert_eq!((body["chat_id"].as_i64(), body["message_id"].as_i64()), (Some(CHAT), Some(1)));
    assert_eq!(body["parse_mode"], "HTML");
}

/// The message may be a single ban's: its fields and matched lines give way to the digest.
#[tokio::test]
async fn a_bans_message_becomes_the_storms() {
    let bot = bot();
    let sink = bot.sink();
    let r = sink.post(&ban(), None).await.unwrap().unwrap();
    let mut events = vec![ban()];
    events.extend(storm(2).events);
    assert_eq!(sink.post_digest(&Digest::new(events), Some(&r)).await.unwrap(), Some(r.clone()));
    let m = bot.message(&r);
    assert!(m.text.starts_with("Fail2Ban on "), "{}", m.text);
    assert!(!m.text.contains("Matched log lines") && m.text.contains("198.18.0.1"), "{}", m.text);
}

#[tokio::test]
async fn an_edit_with_nothing_new_is_done() {
    let bot = bot();
    let sink = bot.sink();
    let r = sink.post_digest(&storm(5), None).await.unwrap().unwrap();
    // The same digest again (a retry after a lost answer): `message is not modified`.
    assert_eq!(sink.post_digest(&storm(5), Some(&r)).await.unwrap(), Some(r.clone()));
    assert_eq!(bot.service.counts(), (1, 0));
    assert_eq!(bot.server.requests().len(), 2);
}

#[tokio::test]
async fn an_edit_refused_for_that_messages_sake_sends_a_new_message() {
    let bot = bot();
    let sink = bot.sink();
    let chat = CHAT.to_string();
    let first = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    // Deleted: `message to edit not found`.
    bot.service.delete(&chat, 1);
    let second = sink.post_digest(&storm(20), Some(&first)).await.unwrap().expect("a new message");
    assert_eq!(second.as_str(), format!("{CHAT}:2"));
    assert!(bot.message(&second).text.contains("198.18.0.19"));
    // Too old to edit: `message can't be edited`.
    bot.service.freeze(&chat, 2);
    let third = sink.post_digest(&storm(30), Some(&second)).await.unwrap().unwrap();
    assert_eq!(third.as_str(), format!("{CHAT}:3"));
    // An id Telegram does not take.
    bot.service.force([tg::error(400, "Bad Request: MESSAGE_ID_INVALID")]);
    let fourth = sink.post_digest(&storm(40), Some(&third)).await.unwrap().unwrap();
    assert_eq!(fourth.as_str(), format!("{CHAT}:4"));
    assert_eq!(bot.service.counts(), (4, 0));
    // A reference of another shape is no message: a new one, no edit tried.
    for bad in ["C1:1.2", "-100:0", "nothing"] {
        let r = sink.post_digest(&storm(1), MessageRef::new(bad).as_ref()).await.unwrap().unwrap();
        assert_eq!(bot.message(&r).edits, 0, "{bad}");
    }
    assert!(bot.server.requests().iter().filter(|r| r.path.ends_with("/editMessageText")).count() == 3);
}

#[tokio::test]
async fn an_edit_telegram_cannot_parse_goes_again_as_plain_text() {
    let bot = bot();
    let sink = bot.sink();
    let r = sink.post_digest(&storm(3), None).await.unwrap().unwrap();
    bot.service
        .force([tg::error(400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0")]);
    assert_eq!(sink.post_digest(&storm(4), Some(&r)).await.unwrap(), Some(r.clone()));
    let m = bot.message(&r);
    assert_eq!((m.edits, m.entities.len()), (1, 0));
    assert!(
        m.text.contains("198.18.0.3")
            && m.text.ends_with(
                "(sent as plain text: Telegram could not parse its HTML: Unsupported start tag \"x\" at byte offset 0)"
            ),
        "{}",
        m.text
    );
    assert_eq!(bot.service.counts(), (1, 1));
}

#[tokio::test]
async fn other_edit_failures_are_classified_as_usual() {
    let bot = bot();
    let sink = bot.sink();
    let r = sink.post_digest(&storm(3), None).await.unwrap().unwrap();
    let page = format!("<html><title>502 Bad Gateway</title>/bot{TOKEN}/editMessageText</html>");
    for (reply, transient, wait) in [
        (tg::too_many_requests(7), true, Some(Duration::from_secs(7))),
        (tg::error(401, "Unauthorized"), false, None),
        (tg::error(400, "Bad Request: chat not found"), false, None),
        (Reply::new(502, &page), true, None),
    ] {
        bot.service.force([reply]);
        let err = sink.post_digest(&storm(4), Some(&r)).await.unwrap_err();
        assert_eq!((err.is_transient(), err.retry_after_hint()), (transient, wait), "{err}");
        assert_error_has_no_secret(&err);
    }
    // None of them sent a new message in the edit's place.
    assert_eq!(bot.service.counts(), (1, 0));
}

/// A server's answer is not trusted: ids that are not integers of the Bot API's range are no
/// reference, and the message, which Telegram took, is no failure.
#[tokio::test]
async fn hostile_answers_give_no_reference_not_a_failure() {
    let bot = bot();
    let sink = bot.sink();
    let answer = |result: &str| Reply::new(200, &format!(r#"{{"ok":true,"result":{result}}}"#));
    let huge = "9".repeat(100_000);
    for result in [
        r#"{"message_id":"7\nX-Injected: 1","chat":{"id":-1001234567890}}"#.to_owned(),
        format!(r#"{{"message_id":{huge},"chat":{{"id":-1001234567890}}}}"#),
        r#"{"message_id":7,"chat":{"id":"-1001234567890"}}"#.to_owned(),
        r#"{"message_id":-7,"chat":{"id":-1001234567890}}"#.to_owned(),
        "true".to_owned(),
    ] {
        bot.service.force([answer(&result)]);
        assert_eq!(sink.post(&ban(), None).await.unwrap(), None, "{:.80}", result);
    }
    // An answer cut at the HTTP layer's limit: sent, its reference from what came first.
    let text = "x".repeat(2 * f2b_notify_http::MAX_BODY);
    bot.service.force([answer(&format!(r#"{{"message_id":9,"chat":{{"id":{CHAT}}},"text":"{text}"}}"#))]);
    assert_eq!(sink.post(&ban(), None).await.unwrap().unwrap().as_str(), format!("{CHAT}:9"));
    // Nothing insane was learnt: references of this chat still work.
    let r = sink.post(&ban(), None).await.unwrap().unwrap();
    assert_eq!(bot.message(&sink.post(&unban(), Some(&r)).await.unwrap().unwrap()).reply_to, Some(1));
}

#[tokio::test]
async fn the_token_shows_in_no_conversation_error() {
    let bot = bot();
    let sink = bot.sink();
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    let wrong =
        super::new("tg", Config { token: Some(Secret::new("123456789:AAsecretTOKENbutWRONG")), ..bot.config() })
            .unwrap();
    let errors =
        [wrong.post(&unban(), Some(&r)).await.unwrap_err(), wrong.post_digest(&storm(3), Some(&r)).await.unwrap_err()];
    for e in &errors {
        assert!(e.to_string().contains("Unauthorized"), "{e}");
        assert!(!e.to_string().contains("AAsecretTOKEN"), "{e}");
    }
    for text in [format!("{sink:?}"), sink.preview(&unban()).unwrap()] {
        assert_no_secret(&text);
    }
}
