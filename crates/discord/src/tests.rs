//! The Discord sink against the Discord stand-in (`f2b_notify_standins::discord`), a real HTTP
//! server on loopback that keeps Discord's documented contract: the route and token, the
//! User-Agent, every limit, `allowed_mentions`, the rate limits and their 429s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, MessageRef, Secret, Sink, SinkError, Templates};
use f2b_notify_standins::discord::{self as standin, Service};
use f2b_notify_standins::{Reply, StandIn};
use serde_json::{json, Value};

use super::{Config, DiscordSink};
use crate::message::{units, MAX_TOTAL};

const ID: &str = "1234567890123456789";
/// The webhook's token: it must never show up in any error, Debug, check line or preview.
const TOKEN: &str = "SECRETtoken_xyzzy-42";

/// A webhook on loopback and its stand-in.
struct Hook {
    service: Arc<Service>,
    server: StandIn,
}

impl Hook {
    /// Under limits no test reaches, unless it is about them.
    fn new() -> Self {
        let hook = Self::strict();
        hook.service.limits((1000, Duration::from_secs(1)), (1000, Duration::from_secs(1)));
        hook
    }

    /// Under Discord's own limits.
    fn strict() -> Self {
        let service = Service::new(ID, TOKEN);
        let server = StandIn::start(service.responder());
        Self { service, server }
    }

    fn url(&self) -> String {
        self.server.url(&self.service.path())
    }

    fn sink(&self) -> DiscordSink {
        sink_with(Config { url: Some(Secret::new(self.url())), ..Config::default() })
    }

    /// Every request that reached the server, accepted or not.
    fn requests(&self) -> usize {
        self.server.requests().len()
    }
}

fn sink_with(config: Config) -> DiscordSink {
    super::new("ops", config).unwrap()
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(1_700_000_000.0);
    e.user = Some("root".into());
    e.matches = Some("sshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password for root".into());
    e
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET") && !text.contains(TOKEN), "secret leaked: {text}");
}

fn assert_error_has_no_secret(e: &SinkError) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
}

/// Every string in a JSON body.
fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        Value::Object(o) => o.values().for_each(|x| texts(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_exact_request_for_each_event_kind() {
    let hook = Hook::new();
    let sink = sink_with(Config {
        url: Some(Secret::new(hook.url())),
        username: Some("fail2ban".into()),
        avatar_url: Some("https://example.com/f2b.png".into()),
        ..Config::default()
    });
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "host.example");
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let stop = Event::jail_event(EventKind::Stop, "sshd", "host.example");
    for e in [&ban(), &unban, &start, &stop] {
        sink.send(e).await.unwrap();
    }
    let got = hook.service.accepted();
    let poster = |mut body: Value| {
        body["allowed_mentions"] = json!({ "parse": [] });
        body["username"] = json!("fail2ban");
        body["avatar_url"] = json!("https://example.com/f2b.png");
        body
    };
    let field = |name: &str, value: &str| json!({ "name": name, "value": value, "inline": true });
    assert_eq!(
        got[0],
        poster(json!({
            "content": "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)",
            "embeds": [{
                "title": "Banned",
                "color": 0xE74C3C,
                "fields": [
                    field("Host", "host.example"),
                    field("Jail", "sshd"),
                    field("Address", "`203.0.113.7`"),
                    field("Failures", "5"),
                    field("Ban time", "10 min"),
                    field("User", "`root`"),
                ],
                "description": "**Matched log lines**\n```\nsshd[1]: Failed password for root from 203.0.113.7\nsshd[2]: Failed password for root\n```",
                "timestamp": "2023-11-14T22:13:20Z",
            }],
        }))
    );
    assert_eq!(
        got[1],
        poster(json!({
            "content": "Fail2Ban (sshd) unbanned IP 2001:db8::1",
            "embeds": [{
                "title": "Unbanned",
                "color": 0x2ECC71,
                "fields": [field("Host", "host.example"), field("Jail", "sshd"), field("Address", "`2001:db8::1`")],
            }],
        }))
    );
    let jail = |content: &str, title: &str, color: u32| {
        poster(json!({
            "content": content,
            "embeds": [{ "title": title, "color": color, "fields": [field("Host", "host.example"), field("Jail", "sshd")] }],
        }))
    };
    assert_eq!(got[2], jail("Fail2Ban (sshd) jail started on host.example", "Jail started", 0x3498DB));
    assert_eq!(got[3], jail("Fail2Ban (sshd) jail stopped on host.example", "Jail stopped", 0x95A5A6));
    // Posted as given, with ?wait=true, as JSON, with Discord's bot User-Agent.
    for r in hook.service.accepted_requests() {
        assert_eq!(r.path, format!("/api/webhooks/{ID}/{TOKEN}?wait=true"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("user-agent"), Some(super::USER_AGENT));
        assert!(super::USER_AGENT.starts_with("DiscordBot (f2b-notify, "), "{}", super::USER_AGENT);
    }
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn a_ban_shows_what_enrichment_found_after_its_fields() {
    let hook = Hook::new();
    hook.sink().send(&enriched(ban())).await.unwrap();
    let got = &hook.service.accepted()[0];
    assert_eq!(got["content"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time");
    let field = |name: &str, value: &str| json!({ "name": name, "value": value, "inline": true });
    assert_eq!(
        got["embeds"][0]["fields"],
        json!([
            field("Host", "host.example"),
            field("Jail", "sshd"),
            field("Address", "`203.0.113.7`"),
            field("Failures", "5"),
            field("Ban time", "10 min"),
            field("User", "`root`"),
            field("Host name", "`h.example` (unconfirmed)"),
            // Escaped like any text: Discord shows `\(` as `(`.
            field("Location", "Tokyo, Japan \\(JP\\)"),
            field("Network", "AS64500 Example Net"),
            field("Repeat", "4th ban"),
        ])
    );
    // The matched lines are still there, after the fields.
    assert!(got["embeds"][0]["description"].as_str().unwrap().starts_with("**Matched log lines**"));
}

#[tokio::test]
async fn a_digest_says_where_the_bans_come_from() {
    let hook = Hook::new();
    let mut events: Vec<Event> =
        (1..=3).map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"))).collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("@everyone <@&1> *Org*".into());
    events[2].context.country = Some("[Evil](http://evil)".into());
    events[2].context.country_code = Some("EV".into());
    hook.sink().send_digest(&Digest::new(events)).await.unwrap();
    let got = &hook.service.accepted()[0];
    assert_eq!(
        got["content"],
        "Fail2Ban on h: 3 bans in 1 jail\n**Banned:** 3 addresses, 2 of them from AS64500 Example Net, \
         1 from AS64501 @\u{200B}everyone \\<\u{200B}@&1> \\*Org\\*; countries: Japan 2, \\[Evil\\]\\(http://evil\\) 1"
    );
    assert_eq!(listed(got), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
}

#[tokio::test]
async fn a_ban_that_is_not_an_address_restored_and_without_extras() {
    let hook = Hook::new();
    let mut e = Event::target_event(EventKind::Ban, "postfix_sasl", "user@example", "");
    e.restored = true;
    e.failures = Some(0);
    hook.sink().send(&e).await.unwrap();
    let got = &hook.service.accepted()[0];
    assert_eq!(
        got["content"],
        "Fail2Ban (postfix\\_sasl) banned user@example (not an IP address) (restored at restart)"
    );
    assert_eq!(got["embeds"][0]["title"], "Banned (restored at Fail2Ban's restart)");
    assert_eq!(
        got["embeds"][0]["fields"],
        json!([
            { "name": "Jail", "value": "postfix\\_sasl", "inline": true },
            { "name": "Banned id (not an IP address)", "value": "`user@example`", "inline": true },
        ])
    );
    assert!(got["embeds"][0].get("description").is_none() && got.get("username").is_none());
}

#[tokio::test]
async fn templates_set_the_content_with_values_escaped() {
    let hook = Hook::new();
    let templates = Templates { ban: Some("**{{ jail }}**: {{ user }} from {{ ip }}".into()), ..Templates::default() };
    let sink = sink_with(Config { url: Some(Secret::new(hook.url())), templates, ..Config::default() });
    let mut e = ban();
    e.user = Some("*_~`|[a](http://x)<@1>@everyone".into());
    sink.send(&e).await.unwrap();
    // The template's own markdown stays; the values are text.
    assert_eq!(
        hook.service.accepted()[0]["content"],
        "**sshd**: \\*\\_\\~\\`\\|\\[a\\]\\(http://x\\)\\<\u{200B}@1>@\u{200B}everyone from 203.0.113.7"
    );
}

#[tokio::test]
async fn hostile_user_and_matches_arrive_inert() {
    let hook = Hook::new();
    let evil = "<!channel> @everyone @here @EVERYONE <@123> <@&456> <#789> <t:1:R> <b>x</b> *_~ `tick` ```fence``` [a](http://x) ||s|| \r\nX-Header: y";
    let mut e = ban();
    e.user = Some(evil.into());
    e.matches = Some(format!("{evil}\n```\n# heading\n> quote\n{evil}"));
    e.jail = "sshd\r\nX-Header: y".into();
    e.host = "@here".into();
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context.hostname = Some(evil.into());
    e.context.country = Some(evil.into());
    e.context.as_org = Some("@everyone *Org* [a](http://x)".into());
    let templates = Templates { ban: Some("{{ user }} {{ matches }}".into()), ..Templates::default() };
    let sink = sink_with(Config { url: Some(Secret::new(hook.url())), templates, ..Config::default() });
    sink.send(&e).await.unwrap();
    let got = &hook.service.accepted()[0];
    assert_eq!(got["allowed_mentions"], json!({ "parse": [] }));
    let mut all = Vec::new();
    texts(got, &mut all);
    for t in &all {
        let lower = t.to_lowercase();
        assert!(!lower.contains("@everyone") && !lower.contains("@here"), "a mass mention: {t:?}");
        for (i, _) in t.match_indices('<') {
            assert_eq!(t[i + 1..].chars().next(), Some('\u{200B}'), "a tag or mention: {t:?}");
        }
    }
    // One-line values stay one line (matched lines are lines by nature, in their code block).
    for f in got["embeds"][0]["fields"].as_array().unwrap() {
        assert!(!f["value"].as_str().unwrap().contains(['\r', '\n']), "{f}");
    }
    // The code block opens and closes once: the backticks inside became a look-alike.
    let description = got["embeds"][0]["description"].as_str().unwrap();
    assert_eq!(description.matches("```").count(), 2, "{description}");
    assert!(description.contains("ˋˋˋfenceˋˋˋ") && description.contains("\n# heading\n"), "{description}");
    let fields = &got["embeds"][0]["fields"];
    assert_eq!(fields[0]["value"], "@\u{200B}here");
    assert_eq!(fields[1]["value"], "sshd  X-Header: y");
    assert_eq!(
        fields[5]["value"],
        "`<\u{200B}!channel> @\u{200B}everyone @\u{200B}here @\u{200B}EVERYONE <\u{200B}@123> <\u{200B}@&456> <\u{200B}#789> <\u{200B}t:1:R> <\u{200B}b>x<\u{200B}/b> *_~ ˋtickˋ ˋˋˋfenceˋˋˋ [a](http://x) ||s||   X-Header: y`"
    );
    assert_eq!(
        fields[6]["value"],
        "`<\u{200B}!channel> @\u{200B}everyone @\u{200B}here @\u{200B}EVERYONE <\u{200B}@123> <\u{200B}@&456> <\u{200B}#789> <\u{200B}t:1:R> <\u{200B}b>x<\u{200B}/b> *_~ ˋtickˋ ˋˋˋfenceˋˋˋ [a](http://x) ||s||   X-Header: y`"
    );
    assert_eq!(
        fields[7]["value"],
        "\\<\u{200B}!channel> @\u{200B}everyone @\u{200B}here @\u{200B}EVERYONE \\<\u{200B}@123> \\<\u{200B}@&456> \\<\u{200B}#789> \\<\u{200B}t:1:R> \\<\u{200B}b>x\\<\u{200B}/b> \\*\\_\\~ \\`tick\\` \\`\\`\\`fence\\`\\`\\` \\[a\\]\\(http://x\\) \\|\\|s\\|\\|   X-Header: y"
    );
    assert_eq!(fields[8]["value"], "@\u{200B}everyone \\*Org\\* \\[a\\]\\(http://x\\)");
    // Outside code, every markdown character is escaped.
    let content = got["content"].as_str().unwrap();
    assert!(content.starts_with("\\<\u{200B}!channel> @\u{200B}everyone"), "{content}");
    assert!(
        content.contains("\\*\\_\\~ \\`tick\\` \\`\\`\\`fence\\`\\`\\` \\[a\\]\\(http://x\\) \\|\\|s\\|\\|"),
        "{content}"
    );
    assert!(content.contains("\n\\`\\`\\`\n\\# heading\n\\> quote\n"), "{content}");
    // Nothing reached a header.
    let request = &hook.service.accepted_requests()[0];
    assert!(request.headers.iter().all(|(k, _)| k != "x-header"), "{:?}", request.headers);
}

#[tokio::test]
async fn huge_and_odd_input_stays_within_every_limit() {
    let hook = Hook::new();
    let templates = Templates {
        ban: Some("{{ user }} {{ matches }} {{ jail }} {{ host }} {{ id }}".into()),
        ..Templates::default()
    };
    let sink = sink_with(Config { url: Some(Secret::new(hook.url())), templates, ..Config::default() });
    let mut e = ban();
    // 100 KB of every kind: ASCII, markdown characters that double when escaped, emoji that
    // count twice in UTF-16, many lines, and code points that look broken.
    e.user = Some("*".repeat(100_000));
    e.matches = Some(format!("{}\n{}\n{}", "😀".repeat(100_000), "_".repeat(100_000), "line\n".repeat(20_000)));
    e.jail = "j".repeat(100_000);
    e.host = "\u{202E}\u{FEFF}\u{FFFF}\u{10FFFF}\u{0}".repeat(20_000);
    e.id = Some("\u{202E}198.51.100.1\u{FEFF}\u{FFFE}".repeat(5_000));
    // Enrichment cuts its names, but the layout does not count on it.
    e.context.hostname = Some("`".repeat(100_000));
    e.context.city = Some("😀".repeat(100_000));
    e.context.as_org = Some("*".repeat(100_000));
    e.context.asn = Some(64500);
    e.bancount = Some(u64::MAX);
    sink.send(&e).await.unwrap();
    // The stand-in checks every limit: it accepted the message.
    let got = &hook.service.accepted()[0];
    let content = got["content"].as_str().unwrap();
    assert!(units(content) <= 2000 && content.ends_with("… (cut)"), "{}", units(content));
    let embed = &got["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert!(description.contains("… 19992 earlier line(s) not shown"), "{description}");
    assert!(description.ends_with("\n```"), "{description}");
    for f in embed["fields"].as_array().unwrap() {
        let v = f["value"].as_str().unwrap();
        assert!(units(v) <= 1024, "{}", units(v));
    }
    assert!(embed["fields"][0]["value"].as_str().unwrap().ends_with("… (cut)"));
    assert!(embed["fields"][5]["value"].as_str().unwrap().ends_with("… (cut)`"));
    assert_eq!(embed["fields"][6]["name"], "Host name");
    assert!(embed["fields"][6]["value"].as_str().unwrap().ends_with("… (cut)`"));
    assert_eq!(embed["fields"][9]["value"], format!("{}th ban", u64::MAX));
    // Bidi overrides cannot reorder what a reader sees.
    let mut all = Vec::new();
    texts(got, &mut all);
    assert!(all.iter().all(|t| !t.contains('\u{202E}')));
    assert!(embed_units(embed) <= MAX_TOTAL, "{}", embed_units(embed));
}

/// What an embed counts toward Discord's 6000.
fn embed_units(embed: &Value) -> usize {
    let s = |v: &Value| v.as_str().map_or(0, units);
    let fields = embed["fields"].as_array().into_iter().flatten();
    s(&embed["title"]) + s(&embed["description"]) + fields.map(|f| s(&f["name"]) + s(&f["value"])).sum::<usize>()
}

#[tokio::test]
async fn hostile_jails_and_ids_in_a_digest_arrive_inert() {
    let hook = Hook::new();
    let events = vec![
        Event::target_event(EventKind::Ban, "<@&1> *x* @here", "```\n@everyone <#2>", "h @everyone"),
        Event::target_event(EventKind::Unban, "<@&1> *x* @here", "a`b", "h"),
        Event::jail_event(EventKind::Stop, "# web\r\n> quote", "h"),
    ];
    hook.sink().send_digest(&Digest::new(events)).await.unwrap();
    let got = &hook.service.accepted()[0];
    assert_eq!(got["content"], "Fail2Ban on h @\u{200B}everyone: 1 ban, 1 unban, 1 jail stop in 2 jails");
    let embeds = got["embeds"].as_array().unwrap();
    assert_eq!(
        embeds[0]["description"],
        "**\\<\u{200B}@&1> \\*x\\* @\u{200B}here**\nbanned 1:\n```\nˋˋˋ @\u{200B}everyone <\u{200B}#2>\n```\nunbanned 1:\n```\naˋb\n```"
    );
    assert_eq!(embeds[1]["description"], "**\\# web  > quote**: jail stopped");
}

/// Every listed id, from the digest's embeds.
fn listed(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for e in body["embeds"].as_array().unwrap() {
        let d = e["description"].as_str().unwrap();
        for block in d.split("```\n").skip(1) {
            let list = block.split("\n```").next().unwrap();
            out.extend(list.split(", ").map(str::to_owned));
        }
    }
    out
}

#[tokio::test]
async fn the_exact_digest() {
    let hook = Hook::new();
    let mut events = vec![Event::jail_event(EventKind::Start, "web", "h")];
    let mut restored = Event::target_event(EventKind::Ban, "sshd", "192.0.2.2", "h");
    restored.restored = true;
    events.push(Event::target_event(EventKind::Ban, "sshd", "192.0.2.1", "h"));
    events.push(restored);
    events.push(Event::target_event(EventKind::Unban, "sshd", "192.0.2.1", "h"));
    hook.sink().send_digest(&Digest::new(events)).await.unwrap();
    assert_eq!(
        hook.service.accepted()[0],
        json!({
            "content": "Fail2Ban on h: 2 bans (1 restored at Fail2Ban's restart), 1 unban, 1 jail start in 2 jails",
            "embeds": [
                { "description": "**web**: jail started", "color": 0x3498DB },
                {
                    "description": "**sshd**\nbanned 2 (1 restored at restart):\n```\n192.0.2.1, 192.0.2.2\n```\nunbanned 1:\n```\n192.0.2.1\n```",
                    "color": 0xE74C3C,
                },
            ],
            "allowed_mentions": { "parse": [] },
        })
    );
}

#[tokio::test]
async fn a_digest_names_every_address_it_can_and_counts_the_rest_exactly() {
    let hook = Hook::new();
    let sink = hook.sink();
    // 150 addresses fit: all listed, no note.
    let small: Vec<Event> =
        (0..150).map(|i| Event::target_event(EventKind::Ban, "sshd", format!("203.0.113.{i}"), "h")).collect();
    sink.send_digest(&Digest::new(small)).await.unwrap();
    let got = &hook.service.accepted()[0];
    let ids = listed(got);
    assert_eq!(ids, (0..150).map(|i| format!("203.0.113.{i}")).collect::<Vec<_>>());
    assert!(!got["content"].as_str().unwrap().contains("Not listed"), "{got}");

    // A storm: 1000 bans in one jail, 300 unbans in another, 12 jails that only started, and
    // a hostile id. Discord takes at most 10 embeds and 6000 characters: as many addresses
    // as fit are named, in order, and the rest counted exactly.
    let mut events: Vec<Event> =
        (0..1000).map(|i| Event::target_event(EventKind::Ban, "sshd", format!("2001:db8::{i:x}"), "h")).collect();
    events.push(Event::target_event(EventKind::Ban, "sshd", "```@everyone <@1>", "h"));
    events.extend(
        (0..300).map(|i| Event::target_event(EventKind::Unban, "nginx_auth", format!("198.51.100.{}", i % 256), "h")),
    );
    events.extend((0..12).map(|i| Event::jail_event(EventKind::Start, format!("jail{i}"), "h")));
    sink.send_digest(&Digest::new(events)).await.unwrap();
    let got = &hook.service.accepted()[1];
    let embeds = got["embeds"].as_array().unwrap();
    assert!(embeds.len() <= 10);
    let total: usize = embeds.iter().map(|e| units(e["description"].as_str().unwrap())).sum();
    assert!(total <= MAX_TOTAL, "{total}");
    let ids = listed(got);
    let expected: Vec<String> = (0..1000).map(|i| format!("2001:db8::{i:x}")).collect();
    assert_eq!(ids, expected[..ids.len()], "the addresses listed are the first ones, in order");
    assert!(ids.len() > 250, "{}", ids.len());
    let content = got["content"].as_str().unwrap();
    let note = format!("Not listed here: {} more address(es) and 13 more jail(s)", 1301 - ids.len());
    assert!(content.contains(&note), "{content}\n{note}");
    assert!(content.starts_with("Fail2Ban on h: 1001 bans, 300 unbans, 12 jail starts in 14 jails\n"), "{content}");
    assert!(embeds[0]["description"].as_str().unwrap().starts_with("**sshd**\nbanned 1001:\n```\n2001:db8::0, "));
    assert!(embeds[1]["description"]
        .as_str()
        .unwrap()
        .starts_with("**sshd** (continued)\nbanned 1001 (continued):\n```\n"));
}

#[tokio::test]
async fn the_exact_alert() {
    let hook = Hook::new();
    let sink = hook.sink();
    let alert = Alert {
        subject: "f2b-notify on h: sink `mail` failing for 10 min".into(),
        text: "last error: Invalid Webhook Token <@1>\n3 event(s) waiting".into(),
        recovered: false,
    };
    sink.send_alert(&alert).await.unwrap();
    sink.send_alert(&Alert { recovered: true, ..alert }).await.unwrap();
    assert!(sink.carries_alerts());
    let got = hook.service.accepted();
    assert_eq!(
        got[0],
        json!({
            "content": "f2b-notify on h: sink \\`mail\\` failing for 10 min",
            "embeds": [{
                "title": "f2b-notify: delivery problem",
                "color": 0xE74C3C,
                "description": "last error: Invalid Webhook Token \\<\u{200B}@1>\n3 event\\(s\\) waiting",
            }],
            "allowed_mentions": { "parse": [] },
        })
    );
    assert_eq!(got[1]["embeds"][0]["title"], "f2b-notify: delivery recovered");
    assert_eq!(got[1]["embeds"][0]["color"], 0x2ECC71);
}

/// A forced answer and how it must be classified: the reply, transient, the wait asked for
/// (ms), and text the error must carry.
type Case = (Reply, bool, Option<u64>, &'static str);

#[tokio::test]
async fn every_documented_answer_is_classified() {
    let cases: Vec<Case> = vec![
        (
            standin::error(401, 50027, "Invalid Webhook Token"),
            false,
            None,
            "Invalid Webhook Token, code 50027 (HTTP 401): Discord does not accept the webhook's token: copy the webhook's URL again",
        ),
        (
            standin::error(404, 10015, "Unknown Webhook"),
            false,
            None,
            "Unknown Webhook, code 10015 (HTTP 404): the webhook was deleted or its id is wrong: create a webhook again",
        ),
        (standin::error(404, 10003, "Unknown Channel"), false, None, "check `thread_id`"),
        (
            standin::form_error(&["embeds", "0", "description"], "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length."),
            false,
            None,
            "Invalid Form Body, code 50035: In embeds.0.description: Must be 4096 or fewer in length. (HTTP 400)",
        ),
        (standin::error(400, 50006, "Cannot send an empty message"), false, None, "Cannot send an empty message, code 50006 (HTTP 400)"),
        (standin::error(400, 50109, "The request body contains invalid JSON."), false, None, "code 50109 (HTTP 400)"),
        (standin::error(400, 220001, "Webhooks posted to forum channels must have a thread_name or thread_id"), false, None, "set `thread_id`"),
        (standin::error(403, 40333, "internal network error"), false, None, "User-Agent"),
        (standin::error(403, 50013, "Missing Permissions"), false, None, "Missing Permissions, code 50013 (HTTP 403)"),
        (standin::error(413, 40005, "Request entity too large"), false, None, "code 40005 (HTTP 413)"),
        (standin::error(400, 200000, "Message was blocked by automatic moderation"), false, None, "AutoMod"),
        // 429: the body's float seconds, exactly; the header only without them.
        (standin::rate_limited(1.234, false), true, Some(1234), "You are being rate limited. (HTTP 429)"),
        (standin::rate_limited(64.57, false), true, Some(64_570), "scope user"),
        (Reply::new(429, "").header("Retry-After", "7"), true, Some(7000), "HTTP 429"),
        (
            Reply::json(429, &json!({ "message": "You are being rate limited.", "retry_after": 1e12, "global": false }))
                .header("Retry-After", "3"),
            true,
            Some(3000),
            "HTTP 429",
        ),
        (Reply::json(429, &json!({ "message": "x", "retry_after": "soon" })), true, None, "HTTP 429"),
        (Reply::new(500, "{\"message\": \"500: Internal Server Error\", \"code\": 0}"), true, None, "500: Internal Server Error, code 0 (HTTP 500)"),
        (Reply::new(502, "<html>no gateway</html>"), true, None, "<html>no gateway</html> (HTTP 502)"),
        (Reply::new(503, "").header("Retry-After", "2"), true, Some(2000), "HTTP 503"),
        (Reply::new(504, ""), true, None, "HTTP 504"),
        (Reply::new(200, "<html>captive portal</html>"), false, None, "HTTP 200 without the saved message's id"),
    ];
    let hook = Hook::new();
    let sink = hook.sink();
    for (reply, transient, wait, text) in cases {
        let status = reply.status;
        hook.service.force([reply]);
        let err = sink.send(&ban()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{status}: {err:?}");
        assert_eq!(err.retry_after_hint(), wait.map(Duration::from_millis), "{status}: {err}");
        assert!(err.to_string().contains(text), "{status}: {err}\nlacks: {text}");
        assert_error_has_no_secret(&err);
    }
    // 204 (Discord's answer without `wait`) is success too.
    hook.service.force([Reply::new(204, "")]);
    sink.send(&ban()).await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_or_a_deleted_webhook_is_permanent_and_says_what_to_do() {
    let hook = Hook::new();
    let wrong = sink_with(Config {
        url: Some(Secret::new(hook.server.url(&format!("/api/webhooks/{ID}/SECRETwrongtoken")))),
        ..Config::default()
    });
    let err = wrong.send(&ban()).await.unwrap_err();
    assert!(
        err.is_permanent()
            && err.to_string().contains("code 50027")
            && err.to_string().contains("copy the webhook's URL again"),
        "{err}"
    );
    assert_error_has_no_secret(&err);
    hook.service.delete();
    let err = hook.sink().send(&ban()).await.unwrap_err();
    assert!(
        err.is_permanent()
            && err.to_string().contains("code 10015")
            && err.to_string().contains("create a webhook again"),
        "{err}"
    );
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn discords_rate_limits_are_waited_out_exactly() {
    let hook = Hook::strict();
    let sink = hook.sink();
    for _ in 0..5 {
        sink.send(&ban()).await.unwrap();
    }
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("HTTP 429"), "{err}");
    let wait = err.retry_after_hint().expect("a wait");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2), "{wait:?}");
    tokio::time::sleep(wait).await;
    sink.send(&ban()).await.unwrap();
    // The channel's limit, scaled down: its 429 is waited out the same way.
    let hook = Hook::strict();
    hook.service.limits((100, Duration::from_secs(2)), (3, Duration::from_millis(600)));
    let sink = hook.sink();
    for _ in 0..3 {
        sink.send(&ban()).await.unwrap();
    }
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.to_string().contains("scope shared"), "{err}");
    tokio::time::sleep(err.retry_after_hint().unwrap()).await;
    sink.send(&ban()).await.unwrap();
}

#[tokio::test]
async fn a_global_rate_limit_holds_every_discord_sink_back() {
    let hook = Hook::new();
    let (a, b) = (hook.sink(), hook.sink());
    hook.service.force([standin::rate_limited(0.4, true)]);
    let err = a.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("global rate limit"), "{err}");
    assert_eq!(err.retry_after_hint(), Some(Duration::from_millis(400)));
    // The other sink does not even ask: it is told how long is left.
    let before = hook.requests();
    let err = b.send(&ban()).await.unwrap_err();
    assert_eq!(hook.requests(), before);
    assert!(err.to_string().starts_with("not sent: Discord's global rate limit"), "{err}");
    assert!(err.retry_after_hint().is_some_and(|w| w > Duration::ZERO && w <= Duration::from_millis(400)));
    tokio::time::sleep(err.retry_after_hint().unwrap()).await;
    b.send(&ban()).await.unwrap();
}

/// The default pacing against the stand-in's limits scaled down 20 times (5 per 100 ms per
/// webhook, 30 per 3 s per channel): a storm sent every `MIN_INTERVAL` / 20 gets no 429 in
/// more than a window of the channel's limit; every 400 ms / 20 (the webhook's own rate) it
/// does.
#[tokio::test]
async fn the_default_pacing_stays_within_both_limits_in_a_long_storm() {
    assert_eq!(super::MIN_INTERVAL, Duration::from_secs(2));
    let paced = |interval: Duration, n: usize| async move {
        let hook = Hook::strict();
        hook.service.limits((5, Duration::from_millis(100)), (30, Duration::from_secs(3)));
        let sink = hook.sink();
        for i in 0..n {
            let started = Instant::now();
            if let Err(e) = sink.send(&ban()).await {
                return Err(format!("message {i}: {e}"));
            }
            tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
        }
        Ok(())
    };
    paced(super::MIN_INTERVAL / 20, 40).await.unwrap();
    let err = paced(Duration::from_millis(400) / 20, 40).await.unwrap_err();
    assert!(err.contains("HTTP 429"), "{err}");
}

#[tokio::test]
async fn versioned_urls_queries_and_threads_are_kept() {
    let hook = Hook::new();
    // The versioned form, with a thread in the URL and a `wait=false` that must not win.
    let url = hook.server.url(&format!("/api/v10/webhooks/{ID}/{TOKEN}?wait=false&thread_id=555"));
    sink_with(Config { url: Some(Secret::new(url.clone())), ..Config::default() }).send(&ban()).await.unwrap();
    // `thread_id` in the config replaces the URL's.
    let sink = sink_with(Config { url: Some(Secret::new(url)), thread_id: Some("777".into()), ..Config::default() });
    sink.send(&ban()).await.unwrap();
    let paths: Vec<String> = hook.service.accepted_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/api/v10/webhooks/{ID}/{TOKEN}?thread_id=555&wait=true"),
            format!("/api/v10/webhooks/{ID}/{TOKEN}?wait=true&thread_id=777"),
        ]
    );
    let preview = sink.preview(&ban()).unwrap();
    assert!(
        preview.starts_with("POST to the webhook URL (the secret, not shown) with ?wait=true&thread_id=777"),
        "{preview}"
    );
    assert!(preview.contains("\"allowed_mentions\": {\n    \"parse\": []"), "{preview}");
    assert_no_secret(&preview);
}

#[tokio::test]
async fn no_answer_in_time_refused_and_closed_connections_are_transient() {
    // Accepts, then never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let url = format!("http://{addr}/api/webhooks/{ID}/{TOKEN}");
    let sink = sink_with(Config { url: Some(Secret::new(url)), timeout: Some(0.3), ..Config::default() });
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;

    // Accepts and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let err = sink_with(Config {
        url: Some(Secret::new(format!("http://{addr}/api/webhooks/{ID}/{TOKEN}"))),
        ..Config::default()
    })
    .send(&ban())
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_error_has_no_secret(&err);
    task.abort();
    let _ = task.await;

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/api/webhooks/{ID}/{TOKEN}");
    let err = sink_with(Config { url: Some(Secret::new(url)), ..Config::default() }).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err}");
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_failure() {
    let tls = f2b_notify_standins::tls::UntrustedTls::start();
    let (addr, der) = (tls.addr, tls.der.clone());
    let url = format!("https://127.0.0.1:{}/api/webhooks/{ID}/{TOKEN}", addr.port());
    // The server works for a client that trusts its certificate.
    let trusting =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_der(&der).unwrap()).build().unwrap();
    let answer = trusting.post(&url).json(&json!({ "content": "x" })).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // The sink trusts the system's roots only; waiting will not change that.
    let err = sink_with(Config { url: Some(Secret::new(url)), ..Config::default() }).send(&ban()).await.unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().starts_with("the server's TLS certificate is not trusted: "),
        "{err}"
    );
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn the_secret_is_in_no_debug_check_or_preview() {
    let hook = Hook::new();
    let sink = hook.sink();
    assert_no_secret(&format!("{sink:?}"));
    assert_no_secret(&format!("{:?}", Config { url: Some(Secret::new(hook.url())), ..Config::default() }));
    assert!(sink.check().is_empty(), "{:?}", sink.check());
    let preview = sink.preview(&ban()).unwrap();
    assert_no_secret(&preview);
    assert!(preview.contains("\"content\": \"Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\""), "{preview}");
    assert_eq!(sink.kind(), "discord");
    assert_eq!(sink.min_interval(), Duration::from_secs(2));
}

#[test]
fn config_errors_name_the_key_never_the_secret() {
    let bad = |url: &str| {
        super::new("ops", Config { url: Some(Secret::new(url)), ..Config::default() }).unwrap_err().to_string()
    };
    for (url, why) in [
        (format!("discord.com/api/webhooks/{ID}/{TOKEN}"), "`url` is not a valid URL: it has no scheme"),
        (format!("ftp://discord.com/api/webhooks/{ID}/{TOKEN}"), "`url` must be an https:// URL"),
        (format!("https://discord.com/api/webhooks/{ID}/{TOKEN} x"), "`url` is not a Discord webhook URL"),
        (
            format!("https://discord.com/channels/{ID}/{TOKEN}"),
            "`url` is not a Discord webhook URL: its path must end in /webhooks/ID/TOKEN",
        ),
        (format!("https://discord.com/api/webhooks/{ID}"), "its path must end in /webhooks/ID/TOKEN"),
        (format!("https://discord.com/api/webhooks/x{ID}/{TOKEN}"), "its path must end in /webhooks/ID/TOKEN"),
        (format!("https://discord.com/api/webhooks/{ID}/{TOKEN}/slack"), "drop the `/slack` or `/github`"),
        (TOKEN.to_owned(), "`url` is not a valid URL"),
    ] {
        let err = bad(&url);
        assert!(err.contains(why), "{err}\nlacks: {why}");
        assert_no_secret(&err);
        assert!(!err.contains(ID), "{err}");
    }
    let good = format!("https://discord.com/api/webhooks/{ID}/{TOKEN}");
    let with = |config: Config| {
        super::new("ops", Config { url: Some(Secret::new(good.clone())), ..config }).unwrap_err().to_string()
    };
    let e = with(Config { username: Some("x".repeat(81)), ..Config::default() });
    assert!(e.contains("`username` must be 1 to 80 characters, not 81"), "{e}");
    let e = with(Config { avatar_url: Some("not a url".into()), ..Config::default() });
    assert!(e.contains("`avatar_url` is not a valid URL"), "{e}");
    let e = with(Config { timeout: Some(99.0), ..Config::default() });
    assert!(e.contains("`timeout` = 99"), "{e}");
    let e = with(Config {
        templates: Templates { ban: Some("{% if %}".into()), ..Templates::default() },
        ..Config::default()
    });
    assert!(e.contains("template for `ban`"), "{e}");
    let e = with(Config { url_file: Some("/nonexistent/url".into()), ..Config::default() });
    assert!(e.contains("not both"), "{e}");
    let e = super::new("ops", Config::default()).unwrap_err().to_string();
    assert!(e.contains("missing `url` (or `url_file`)"), "{e}");

    // From the config file's values: a secret of the wrong type names the key, not the value.
    let parse = |v: Value| serde_json::from_value::<Config>(v).unwrap_err().to_string();
    let e = parse(json!({ "url": 123456789 }));
    assert!(e.starts_with("`url` must be a string, not an integer") && !e.contains("123456789"), "{e}");
    let e = parse(json!({ "thread_id": "12ab" }));
    assert!(e.contains("`thread_id` = \"12ab\" must be a thread's id: digits"), "{e}");
    let e = parse(json!({ "thread_id": -5 }));
    assert!(e.contains("`thread_id` must be a thread's id"), "{e}");
    let e = parse(json!({ "colour": "red" }));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let c: Config = serde_json::from_value(json!({ "thread_id": 1234567890123456789u64 })).unwrap();
    assert_eq!(c.thread_id.as_deref(), Some("1234567890123456789"));
    let c: Config = serde_json::from_value(json!({ "thread_id": " 42 " })).unwrap();
    assert_eq!(c.thread_id.as_deref(), Some("42"));

    // A file that is not UTF-8 is named; its content is not quoted.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, [good.as_bytes(), b"\xff"].concat()).unwrap();
    let e = super::new("ops", Config { url_file: Some(file), ..Config::default() }).unwrap_err().to_string();
    assert!(e.contains("not valid UTF-8"), "{e}");
    assert_no_secret(&e);
}

#[cfg(unix)]
#[test]
fn check_warns_about_a_readable_file_plain_http_and_a_name_discord_refuses() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, format!("https://discord.com/api/webhooks/{ID}/{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sink = sink_with(Config { url_file: Some(file.clone()), ..Config::default() });
    let warnings = sink.check();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("mode 644"), "{warnings:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sink.check().is_empty());

    let warn = |url: String, username: Option<&str>| {
        let lines =
            sink_with(Config { url: Some(Secret::new(url)), username: username.map(Into::into), ..Config::default() })
                .check();
        lines.iter().for_each(|l| assert_no_secret(l));
        lines
    };
    let plain = warn(format!("http://discord.com/api/webhooks/{ID}/{TOKEN}"), None);
    assert!(plain.len() == 1 && plain[0].contains("plain http://"), "{plain:?}");
    assert!(warn(format!("http://127.0.0.1:9/api/webhooks/{ID}/{TOKEN}"), None).is_empty());
    let named = warn(format!("https://discord.com/api/webhooks/{ID}/{TOKEN}"), Some("Discord Bot"));
    assert!(named.len() == 1 && named[0].contains("\"discord\" or \"clyde\""), "{named:?}");
}

// --- Conversation: references, storms edited in place, unbans on their own. ---

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

fn reference(id: &str) -> MessageRef {
    MessageRef::new(id).unwrap()
}

#[tokio::test]
async fn a_ban_returns_its_reference_and_its_unban_is_a_message_of_its_own() {
    let hook = Hook::new();
    let sink = hook.sink();
    let ban_ref = sink.post(&ban(), None).await.unwrap().expect("a reference");
    let posted = hook.service.messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(ban_ref.as_str(), posted[0].id, "the reference is the saved message's id");
    // Execute Webhook takes no message_reference: the unban is posted as any event is, and
    // its body is exactly what `send` posts, linking to and mentioning nothing.
    let unban_ref = sink.post(&unban(), Some(&ban_ref)).await.unwrap().expect("the unban's reference");
    assert_ne!(unban_ref, ban_ref);
    sink.send(&unban()).await.unwrap();
    let bodies = hook.service.accepted();
    assert_eq!(bodies[1], bodies[2], "a reply is an ordinary post");
    assert!(bodies[1].get("message_reference").is_none());
    assert_eq!(bodies[1]["content"], "Fail2Ban (sshd) unbanned IP 203.0.113.7");
    assert_eq!(bodies[1]["allowed_mentions"], json!({ "parse": [] }));
    assert!(!bodies[1].to_string().contains(ban_ref.as_str()), "{}", bodies[1]);
    assert_eq!(hook.service.counts(), (3, 0));
}

/// A storm is one message: posted once, then edited twice to hold every event so far.
#[tokio::test]
async fn a_storm_is_one_message_edited_in_place() {
    let hook = Hook::new();
    let sink = sink_with(Config {
        url: Some(Secret::new(hook.url())),
        username: Some("fail2ban".into()),
        avatar_url: Some("https://example.com/f2b.png".into()),
        ..Config::default()
    });
    let first = sink.post_digest(&storm(10), None).await.unwrap().expect("a reference");
    let second = sink.post_digest(&storm(60), Some(&first)).await.unwrap();
    let third = sink.post_digest(&storm(150), second.as_ref()).await.unwrap();
    assert_eq!((second.as_ref(), third.as_ref()), (Some(&first), Some(&first)));
    assert_eq!(hook.service.counts(), (1, 2));
    let shown = hook.service.messages();
    assert_eq!(shown.len(), 1);
    let m = &shown[0];
    assert_eq!((m.id.as_str(), m.edits), (first.as_str(), 2));
    assert_eq!(m.body["content"], "Fail2Ban on h: 150 bans in 1 jail");
    // Every address of the storm, once each, in what the channel finally shows.
    let expected: Vec<String> = (0..150).map(|i| format!("198.18.{}.{}", i / 256, i % 256)).collect();
    assert_eq!(listed(&m.body), expected);
    // The poster stays as posted; the edits carried neither name nor avatar, and mentions
    // stayed off.
    assert_eq!(m.body["username"], "fail2ban");
    let requests = hook.service.accepted_requests();
    for edit in &requests[1..] {
        assert_eq!(edit.method, "PATCH");
        assert_eq!(edit.path, format!("/api/webhooks/{ID}/{TOKEN}/messages/{}", first.as_str()));
        assert_eq!(edit.header("user-agent"), Some(super::USER_AGENT));
        let body = edit.json();
        assert_eq!(body["allowed_mentions"], json!({ "parse": [] }));
        assert!(body.get("username").is_none() && body.get("avatar_url").is_none(), "{body}");
    }
}

/// The storm's message may be a single ban's: its embed, fields and matched lines give way to
/// the digest (content and embeds both replaced, nothing of the ban left over).
#[tokio::test]
async fn a_bans_message_becomes_the_storms() {
    let hook = Hook::new();
    let sink = hook.sink();
    let r = sink.post(&ban(), None).await.unwrap().unwrap();
    let mut events = vec![ban()];
    events.extend(storm(3).events);
    assert_eq!(sink.post_digest(&Digest::new(events), Some(&r)).await.unwrap(), Some(r.clone()));
    let m = hook.service.message(r.as_str()).unwrap();
    let text = m.text();
    assert!(m.body["content"].as_str().unwrap().starts_with("Fail2Ban on "), "{text}");
    assert!(!text.contains("Matched log lines") && !text.contains("Banned\n"), "{text}");
    assert_eq!(listed(&m.body), ["203.0.113.7", "198.18.0.0", "198.18.0.1", "198.18.0.2"]);
}

#[tokio::test]
async fn edits_go_to_the_configured_thread() {
    let hook = Hook::new();
    let sink =
        sink_with(Config { url: Some(Secret::new(hook.url())), thread_id: Some("777".into()), ..Config::default() });
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    assert_eq!(sink.post_digest(&storm(3), Some(&r)).await.unwrap(), Some(r.clone()));
    let edit = hook.service.accepted_requests().pop().unwrap();
    assert_eq!(edit.path, format!("/api/webhooks/{ID}/{TOKEN}/messages/{}?thread_id=777", r.as_str()));
    assert_eq!(hook.service.message(r.as_str()).unwrap().edits, 1);
    // The same message from a sink without the thread: Discord looks for it in the channel,
    // finds nothing, and the digest is posted anew there.
    let anew = hook.sink().post_digest(&storm(4), Some(&r)).await.unwrap().unwrap();
    assert_ne!(anew, r);
    assert_eq!(hook.service.counts(), (2, 1));
}

#[tokio::test]
async fn an_edit_refused_for_that_messages_sake_posts_a_new_message() {
    let hook = Hook::new();
    let sink = hook.sink();
    let first = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    // Deleted in Discord: 404 Unknown Message.
    hook.service.delete_message(first.as_str());
    let second = sink.post_digest(&storm(20), Some(&first)).await.unwrap().expect("a new message");
    assert_ne!(second, first);
    let m = hook.service.message(second.as_str()).unwrap();
    assert_eq!((m.edits, listed(&m.body).len()), (0, 20));
    assert_eq!(hook.service.counts(), (2, 0));
    for code in [50083, 30046, 50005] {
        hook.service.force([standin::error(400, code, "refused")]);
        let next = sink.post_digest(&storm(30), Some(&second)).await.unwrap().expect("a new message");
        assert_ne!(next, second, "{code}");
        assert_eq!(hook.service.message(next.as_str()).unwrap().edits, 0);
    }
    assert_eq!(hook.service.counts(), (5, 0));
    // A reference of another shape (an older version's, a hand-edited spool) is no message:
    // posted anew without trying an edit.
    let before = hook.requests();
    for bad in ["C1:1.2", "12ab", "123456789012345678901"] {
        sink.post_digest(&storm(1), Some(&reference(bad))).await.unwrap().unwrap();
    }
    assert_eq!(hook.requests(), before + 3);
    assert_eq!(hook.service.counts(), (8, 0));
}

#[tokio::test]
async fn other_edit_failures_are_classified_as_usual() {
    let hook = Hook::new();
    let sink = hook.sink();
    let r = sink.post_digest(&storm(10), None).await.unwrap().unwrap();
    for (reply, transient, text) in [
        (standin::rate_limited(1.5, false), true, "HTTP 429"),
        (standin::error(401, 50027, "Invalid Webhook Token"), false, "copy the webhook's URL again"),
        (standin::error(404, 10015, "Unknown Webhook"), false, "create a webhook again"),
        (Reply::new(502, "<html>bad gateway</html>"), true, "HTTP 502"),
    ] {
        hook.service.force([reply]);
        let err = sink.post_digest(&storm(20), Some(&r)).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err}");
        assert!(err.to_string().contains(text), "{err}");
        assert_error_has_no_secret(&err);
    }
    // None of them posted a new message in the edit's place.
    assert_eq!(hook.service.counts(), (1, 0));
    // A dead server: the edit's URL (which holds the token) is in no error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = sink_with(Config {
        url: Some(Secret::new(format!("http://127.0.0.1:{port}/api/webhooks/{ID}/{TOKEN}"))),
        ..Config::default()
    });
    let err = dead.post_digest(&storm(2), Some(&r)).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("cannot connect"), "{err}");
    assert_error_has_no_secret(&err);
}

/// A server's answer is not trusted: an id with a newline, a huge one, one that is no
/// snowflake is no reference, and the message, which Discord saved, is no failure.
#[tokio::test]
async fn hostile_answers_give_no_reference_not_a_failure() {
    let hook = Hook::new();
    let sink = hook.sink();
    let huge = "9".repeat(100_000);
    for id in [
        json!("1200000000000000001\nX-Injected: 1"),
        json!(huge),
        json!("../../messages"),
        json!("-5"),
        json!("18446744073709551616"),
    ] {
        let body = json!({ "id": id, "channel_id": "1", "content": "x" }).to_string();
        hook.service.force([Reply::new(200, &body)]);
        assert_eq!(sink.post(&ban(), None).await.unwrap(), None, "{:.60}", body);
        hook.service.force([Reply::new(200, &body)]);
        assert_eq!(sink.post_digest(&storm(2), None).await.unwrap(), None, "{:.60}", body);
    }
    // An answer past the HTTP layer's limit was saved: delivered, its id past the cut.
    let cut = format!(r#"{{"type":0,"content":"{}","id":"1"}}"#, "x".repeat(2 * f2b_notify_http::MAX_BODY));
    hook.service.force([Reply::new(200, &cut)]);
    assert_eq!(sink.post(&ban(), None).await.unwrap(), None);
    // An edit's answer is not read for the reference: the one handed in stays.
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    hook.service.force([Reply::new(200, r#"{"id":"7\n8"}"#)]);
    assert_eq!(sink.post_digest(&storm(3), Some(&r)).await.unwrap(), Some(r));
}

#[tokio::test]
async fn the_token_shows_in_no_conversation_error_debug_or_preview() {
    let hook = Hook::new();
    let sink = hook.sink();
    let r = sink.post_digest(&storm(2), None).await.unwrap().unwrap();
    let wrong = sink_with(Config {
        url: Some(Secret::new(hook.server.url(&format!("/api/webhooks/{ID}/SECRETwrongtoken")))),
        ..Config::default()
    });
    let errors = [
        wrong.post(&ban(), None).await.unwrap_err(),
        wrong.post(&unban(), Some(&r)).await.unwrap_err(),
        wrong.post_digest(&storm(3), Some(&r)).await.unwrap_err(),
    ];
    for e in &errors {
        assert!(e.to_string().contains("code 50027"), "{e}");
        assert_error_has_no_secret(e);
    }
    for text in [format!("{sink:?}"), format!("{wrong:?}"), sink.preview(&unban()).unwrap(), sink.check().join("\n")] {
        assert_no_secret(&text);
    }
    // Every request carried the token in its path only, never in a body.
    for req in hook.server.requests() {
        assert!(!req.body.contains("SECRET"), "{}", req.body);
    }
}
