//! End to end with the real Fail2Ban (Debian's package): a private `fail2ban-server` runs the
//! project's own `config/action.d/f2b-notify.conf` beside the `dummy` firewall action, and the
//! stdout sink's JSON-lines files show what arrived, per jail route.

use std::time::Duration;

use serde_json::Value;

#[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
use crate::util::Slack;
#[cfg(feature = "email")]
use crate::util::Smtp;
use crate::util::{append_ssh_failures, bin, json_lines, wait_for, Dir, Fail2Ban};

const WAIT: Duration = Duration::from_secs(40);

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {}", e["kind"].as_str().unwrap_or("?"), e["id"].as_str().unwrap_or("")).trim().to_owned())
        .collect()
}

#[test]
fn real_fail2ban_routes_start_ban_unban_stop() {
    let dir = Dir::new();
    let ssh_out = dir.path().join("ssh.jsonl");
    let web_out = dir.path().join("web.jsonl");
    // With the Slack sinks built, sshd's route also goes to both of them on a loopback
    // stand-in.
    #[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
    let slack = Slack::start();
    #[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
    let (slack_sinks, slack_route) = (slack.sinks_toml(&dir), r#", "hook", "api""#);
    #[cfg(not(all(feature = "slack-webhook", feature = "slack-api")))]
    let (slack_sinks, slack_route) = (String::new(), "");
    // With the email sink built, sshd's bans also go to a real SMTP server on loopback.
    #[cfg(feature = "email")]
    let smtp = Smtp::start(dir.path());
    #[cfg(feature = "email")]
    let mail_sink = format!(
        "[sinks.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"fail2ban@e2e.example\"\nto = \"ops@e2e.example\"\n",
        smtp.port
    );
    #[cfg(not(feature = "email"))]
    let mail_sink = String::new();
    let notify_cfg = dir.write(
        "notify.toml",
        &format!(
            r#"
host = "e2e.example"
# This test is about routing and quoting; queue mode has its own tests (delivery.rs).
[delivery]
mode = "direct"

[sinks.ssh_file]
type = "stdout"
format = "json"
path = "{}"

[sinks.web_file]
type = "stdout"
format = "json"
path = "{}"

{slack_sinks}
{mail_sink}
[jails.sshd]
sinks = ["ssh_file"{slack_route}{mail}]

[jails."web-*"]
sinks = ["web_file"]
"#,
            ssh_out.display(),
            web_out.display(),
            mail = if mail_sink.is_empty() { "" } else { r#", "mail""# },
        ),
    );
    let auth_log = dir.write("auth.log", "");
    let web_log = dir.write("web.log", "");
    let action = |jail: &str| {
        format!(
            "dummy[target=\"{d}/dummy-{jail}\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]",
            d = dir.path().display(),
            bin = bin().display(),
            cfg = notify_cfg.display()
        )
    };
    let jail_local = format!(
        r#"[DEFAULT]
backend = polling
banaction = dummy
maxretry = 2
findtime = 600
bantime = 600
usedns = no

[sshd]
enabled = true
filter = sshd
logpath = {auth}
action = {a1}

[web-manual]
enabled = true
filter = sshd
logpath = {web}
action = {a2}
"#,
        auth = auth_log.display(),
        web = web_log.display(),
        a1 = action("sshd"),
        a2 = action("web-manual"),
    );
    let mut f2b = Fail2Ban::start(dir.path(), &jail_local);

    // Both jails started, each reported to its own route's sink.
    wait_for("start events", WAIT, || {
        (kinds(&json_lines(&ssh_out)) == ["start"] && kinds(&json_lines(&web_out)) == ["start"]).then_some(())
    });

    // A ban from log lines, with a user name an attacker chose.
    let pwned = dir.path().join("pwned");
    let hostile = format!("--help\"'$(touch {p})`touch {p}`;<!channel> <http://x|bank> && echo", p = pwned.display());
    append_ssh_failures(&auth_log, "203.0.113.7", &hostile, 3);
    let ban = wait_for("the sshd ban", WAIT, || json_lines(&ssh_out).into_iter().find(|e| e["kind"] == "ban"));
    assert_eq!(ban["jail"], "sshd");
    assert_eq!(ban["id"], "203.0.113.7");
    assert_eq!(ban["ip"], "203.0.113.7");
    assert!(ban["failures"].as_u64().unwrap_or(0) >= 2, "{ban}");
    assert_eq!(ban["bantime"], 600);
    assert_eq!(ban["restored"], false);
    assert_eq!(ban["host"], "e2e.example");
    assert_eq!(ban["user"], hostile.as_str(), "the user name must arrive intact: {ban}");
    let matches = ban["matches"].as_str().unwrap_or("");
    assert!(matches.contains("Authentication failure for --help"), "{ban}");
    assert!(!pwned.exists(), "a shell ran attacker text");

    // Manual bans (IPv4 and IPv6) in the other jail go to the other route.
    f2b.client(&["set", "web-manual", "banip", "198.51.100.9"]);
    f2b.client(&["set", "web-manual", "banip", "2001:db8::9"]);
    let web = wait_for("the two manual bans", WAIT, || {
        let ev = json_lines(&web_out);
        (ev.len() >= 3).then_some(ev)
    });
    assert_eq!(kinds(&web), ["start", "ban 198.51.100.9", "ban 2001:db8::9"]);
    assert_eq!(web[1]["failures"], 0);
    assert!(web[1].get("user").is_none(), "a manual ban has no user: {}", web[1]);
    assert_eq!(web[2]["ip"], "2001:db8::9");

    // Unban, then stop: Fail2Ban unbans what is left and stops each jail.
    f2b.client(&["set", "sshd", "unbanip", "203.0.113.7"]);
    wait_for("the sshd unban", WAIT, || {
        kinds(&json_lines(&ssh_out)).contains(&"unban 203.0.113.7".to_owned()).then_some(())
    });
    f2b.stop();

    let ssh = kinds(&json_lines(&ssh_out));
    assert_eq!(ssh, ["start", "ban 203.0.113.7", "unban 203.0.113.7", "stop"], "{}", f2b.log());
    let mut web = kinds(&json_lines(&web_out));
    assert_eq!(web.first().map(String::as_str), Some("start"));
    assert_eq!(web.last().map(String::as_str), Some("stop"));
    // The order of the stop-time unbans is Fail2Ban's; each address exactly once.
    web.sort();
    assert_eq!(
        web,
        ["ban 198.51.100.9", "ban 2001:db8::9", "start", "stop", "unban 198.51.100.9", "unban 2001:db8::9"]
    );
    for line in std::fs::read_to_string(&ssh_out).unwrap().lines() {
        assert!(!line.contains("f2bV_"), "a tag arrived as Fail2Ban's shell variable name: {line}");
    }
    assert!(!pwned.exists(), "a shell ran attacker text");
    let log = f2b.log();
    assert!(log.contains("[sshd] Ban 203.0.113.7"), "{log}");
    assert!(!log.contains("ERROR"), "Fail2Ban logged an error:\n{log}");

    #[cfg(feature = "email")]
    {
        let mails = smtp.messages();
        let subjects: Vec<String> = mails
            .iter()
            .map(|m| {
                m["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .find(|h| h[0] == "Subject")
                    .map(|h| h[1].as_str().unwrap_or("").to_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            subjects,
            [
                "[Fail2Ban] sshd: jail started on e2e.example",
                "[Fail2Ban] sshd: banned 203.0.113.7 from e2e.example",
                "[Fail2Ban] sshd: unbanned 203.0.113.7 from e2e.example",
                "[Fail2Ban] sshd: jail stopped on e2e.example",
            ]
        );
        let text = mails[1]["text"].as_str().unwrap_or("");
        assert!(text.contains(&format!("User:      {hostile}")), "{text}");
        assert!(!mails[1]["raw_headers"].as_str().unwrap_or("").contains("channel"), "log text in a header");
    }

    #[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
    {
        let reqs = slack.requests();
        let failures = ban["failures"].as_u64().expect("failures");
        for sink in ["hook", "api"] {
            let texts: Vec<String> = reqs
                .iter()
                .filter(|(w, _)| *w == sink)
                .map(|(_, b)| b["text"].as_str().unwrap_or("").to_owned())
                .collect();
            assert_eq!(
                texts,
                [
                    "Fail2Ban (sshd) jail started on e2e.example".to_owned(),
                    format!("Fail2Ban (sshd) banned IP 203.0.113.7 for {failures} failure(s)"),
                    "Fail2Ban (sshd) unbanned IP 203.0.113.7".to_owned(),
                    "Fail2Ban (sshd) jail stopped on e2e.example".to_owned(),
                ],
                "{sink}"
            );
            let posted = &reqs.iter().filter(|(w, _)| *w == sink).nth(1).expect("ban").1;
            let raw = posted.to_string();
            assert!(!raw.contains("<!channel>") && !raw.contains("<http://x|bank>"), "{sink}: {raw}");
            assert!(raw.contains("&lt;!channel&gt;"), "{sink}: {raw}");
        }
    }
}

/// Fail2Ban's `<bancount>` (how often it banned the address in this jail, this ban included),
/// passed by the action as `--bancount`: with `bantime.increment`, an address banned again
/// after its ban ran out carries 2 and the default text says so; `unbanip` makes Fail2Ban
/// forget the address (it is deleted from Fail2Ban's database), so the next ban is a 1st again.
#[test]
fn a_repeat_ban_carries_fail2bans_bancount() {
    let dir = Dir::new();
    let out = dir.path().join("events.jsonl");
    let notify_cfg = dir.write(
        "notify.toml",
        &format!(
            "host = \"e2e.example\"\n[delivery]\nmode = \"direct\"\n[sinks.file]\ntype = \"stdout\"\nformat = \"json\"\npath = \"{}\"\n[jails.\"*\"]\nsinks = [\"file\"]\n",
            out.display()
        ),
    );
    let log = dir.write("auth.log", "");
    // The firewall action first, as `setup` wires it: Fail2Ban raises the count in another
    // thread (its observer) while the actions run, and only an action that runs after the
    // firewall's sees the raised count (see the README).
    let jail_local = format!(
        "[repeat]\nenabled = true\nbackend = polling\nfilter = sshd\nlogpath = {log}\nusedns = no\nbantime = 2\nbantime.increment = true\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = log.display(),
        d = dir.path().display(),
        bin = bin().display(),
        cfg = notify_cfg.display(),
    );
    let mut f2b = Fail2Ban::start(dir.path(), &jail_local);
    let ip = "203.0.113.20";
    // The `n`th event of `kind` for the address, once it is there.
    let nth = |kind: &str, n: usize| {
        wait_for(&format!("{kind} number {n}"), WAIT, || {
            json_lines(&out).into_iter().filter(|e| e["kind"] == kind && e["id"] == ip).nth(n - 1)
        })
    };

    f2b.client(&["set", "repeat", "banip", ip]);
    let first = nth("ban", 1);
    assert_eq!(first["bancount"], 1, "{first}");
    assert_eq!(first["message"], format!("Fail2Ban (repeat) banned IP {ip}"), "{first}");
    // The 2 s ban runs out by itself: Fail2Ban keeps the address in its database.
    assert_eq!(nth("unban", 1)["bancount"], 1);

    f2b.client(&["set", "repeat", "banip", ip]);
    let second = nth("ban", 2);
    assert_eq!(second["bancount"], 2, "{second}\n{}", f2b.log());
    assert_eq!(second["message"], format!("Fail2Ban (repeat) banned IP {ip}, the 2nd time"), "{second}");

    // Taken back by hand: the unban still counts 2, and then the address is forgotten.
    f2b.client(&["set", "repeat", "unbanip", ip]);
    assert_eq!(nth("unban", 2)["bancount"], 2);
    f2b.client(&["set", "repeat", "banip", ip]);
    let third = nth("ban", 3);
    assert_eq!(third["bancount"], 1, "{third}");
    assert_eq!(third["message"], format!("Fail2Ban (repeat) banned IP {ip}"), "{third}");

    // At stop, Fail2Ban unbans what is left; start and stop have no count.
    f2b.stop();
    let events = json_lines(&out);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap_or("?")).collect();
    assert_eq!(kinds, ["start", "ban", "unban", "ban", "unban", "ban", "unban", "stop"]);
    let counts: Vec<Option<u64>> = events.iter().map(|e| e["bancount"].as_u64()).collect();
    assert_eq!(counts, [None, Some(1), Some(1), Some(2), Some(2), Some(1), Some(1), None]);
    let log = f2b.log();
    assert!(!log.contains("ERROR"), "Fail2Ban logged an error:\n{log}");
}
