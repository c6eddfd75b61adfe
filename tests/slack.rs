//! The binary with both Slack sinks against a loopback Slack stand-in: what `notify`, `test`
//! and `check` do and print, and that the webhook URL and the token never leak.

use crate::util::{run, Dir, Slack, Syslog, WorkerGuard, API_TOKEN, WEBHOOK_SECRET};

fn config(dir: &Dir, slack: &Slack) -> std::path::PathBuf {
    dir.write(
        "config.toml",
        &format!(
            "host = \"h.example\"\n[delivery]\nmode = \"direct\"\n{}\n[jails.\"*\"]\nsinks = [\"hook\", \"api\"]\n",
            slack.sinks_toml(dir)
        ),
    )
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET"), "secret leaked: {text}");
    assert!(!text.contains(API_TOKEN) && !text.contains(WEBHOOK_SECRET), "secret leaked: {text}");
}

#[test]
fn notify_reaches_both_slack_sinks() {
    let dir = Dir::new();
    let slack = Slack::start();
    let cfg = config(&dir, &slack);
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args([
        "notify",
        "ban",
        "--jail=sshd",
        "--ip=203.0.113.7",
        "--failures=4",
        "--user=<!channel>",
    ]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stderr, "");
    let reqs = slack.requests();
    let mut which: Vec<&str> = reqs.iter().map(|(w, _)| *w).collect();
    which.sort();
    assert_eq!(which, ["api", "hook"]);
    for (w, body) in &reqs {
        assert_eq!(body["text"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 4 failure(s)", "{w}");
        assert!(!body.to_string().contains("<!channel>"), "{w}: {body}");
    }
    let api = &reqs.iter().find(|(w, _)| *w == "api").unwrap().1;
    assert_eq!(api["channel"], "#security");
}

#[test]
fn test_command_explains_slack_errors_without_leaking() {
    let dir = Dir::new();
    let slack = Slack::failing(404, "channel_not_found", None);
    let cfg = config(&dir, &slack);
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["test", "--jail", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("sink `hook` (slack-webhook): FAILED: channel_not_found (HTTP 404): the channel does not exist"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("sink `api` (slack-api): FAILED: channel_not_found: the channel does not exist"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("permanent"), "{}", r.stdout);
    assert_no_secret(&r.stdout);
    assert_no_secret(&r.stderr);

    let slack = Slack::failing(429, "rate_limited", Some("30"));
    let cfg = config(&dir, &slack);
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["test", "--jail", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.contains("asked to wait 30 s"), "{}", r.stdout);
    assert_no_secret(&r.stdout);
}

#[test]
fn notify_failure_logs_no_secret_and_exits_0() {
    let dir = Dir::new();
    let slack = Slack::failing(403, "action_prohibited", None);
    let cfg = config(&dir, &slack);
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "unban", "--jail=sshd", "--ip=203.0.113.7"]);
    let r = run(c);
    assert_eq!(r.code, Some(0));
    assert!(r.stderr.contains("sink `hook`") && r.stderr.contains("action_prohibited"), "{}", r.stderr);
    assert_no_secret(&r.stderr);

    // Nobody listening at all: connection refused, still no secret in the log.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.write(
        "dead.toml",
        &format!(
            "[delivery]\nmode = \"direct\"\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"http://127.0.0.1:{port}/services/{WEBHOOK_SECRET}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n"
        ),
    );
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=203.0.113.7"]);
    let r = run(c);
    assert_eq!(r.code, Some(0));
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    assert_no_secret(&r.stderr);
}

#[test]
fn check_warns_about_readable_secret_files_and_never_prints_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let slack = Slack::start();
    let cfg = config(&dir, &slack);
    std::fs::set_permissions(dir.path().join("secrets/hook.url"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("hook  slack-webhook") && r.stdout.contains("api   slack-api"), "{}", r.stdout);
    assert!(r.stdout.contains("sink `hook`: `url_file`") && r.stdout.contains("mode 644"), "{}", r.stdout);
    assert!(!r.stdout.contains("sink `api`: `token_file`"), "{}", r.stdout);
    assert_no_secret(&r.stdout);
    assert_no_secret(&r.stderr);

    // A bad inline secret from the environment: the error names the variable, not the value.
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).arg("check").env("F2B_NOTIFY_SINKS__API__TOKEN", format!("{API_TOKEN}\u{7f}"));
    let r = run(c);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `api`"), "{}", r.stderr);
    assert_no_secret(&r.stderr);

    // A secret that reads as a number, a boolean or a table: one line naming the variable,
    // the key and the type wanted, never the value (which would be logged on every action).
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let syslog = Syslog::start(dir.path());
    for (value, found) in [("987654321", "an integer"), ("true", "a boolean"), ("{a=424242}", "a table")] {
        for action in [&["check"][..], &["notify", "ban", "--jail=sshd", "--ip=192.0.2.1"]] {
            let mut c = dir.cmd();
            c.arg("-c").arg(&cfg).args(action).env("F2B_NOTIFY_SINKS__API__TOKEN", value);
            // `notify` spools the event unrouted rather than drop it: into the test's spool.
            c.env("F2B_NOTIFY_DELIVERY__SPOOL", &spool).env("F2B_NOTIFY_SYSLOG", &syslog.path);
            let r = run(c);
            assert_eq!(r.code, Some(if action[0] == "check" { 2 } else { 0 }), "{value}: {}", r.stderr);
            let want = format!(
                "environment variable F2B_NOTIFY_SINKS__API__TOKEN: key `sinks.api.token`: must be a string, not {found}"
            );
            assert!(r.stderr.contains(&want), "{value}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            for line in syslog.messages() {
                assert!(line.contains(&want) && !line.contains(value), "{value}: {line}");
            }
            for shown in ["987654321", "true", "424242"] {
                assert!(!r.stderr.contains(shown), "{value}: {}", r.stderr);
            }
        }
    }
}

#[test]
fn proxies_from_the_environment_are_honoured() {
    use crate::util::{slack_ok, StandIn};
    let dir = Dir::new();
    let proxy = StandIn::start(slack_ok());
    let direct = StandIn::start(slack_ok());
    // `slack.invalid` is never resolved: the proxy on loopback receives the request.
    let cfg = dir.write(
        "proxy.toml",
        &format!(
            "[delivery]\nmode = \"direct\"\n[sinks.via_proxy]\ntype = \"slack-webhook\"\nurl = \"http://slack.invalid/services/T0/B0/X\"\n[sinks.bypass]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"via_proxy\", \"bypass\"]\n",
            direct.url("/services/T1/B1/Y")
        ),
    );
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.1.1"]);
    c.env("HTTP_PROXY", proxy.url("")).env("NO_PROXY", "127.0.0.1");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stderr, "");
    let via = proxy.requests();
    assert_eq!(via.len(), 1, "{via:?}");
    assert_eq!(via[0].path, "http://slack.invalid/services/T0/B0/X");
    // NO_PROXY: the loopback sink went straight to its server.
    let straight = direct.requests();
    assert_eq!(straight.len(), 1);
    assert_eq!(straight[0].path, "/services/T1/B1/Y");
}

#[test]
fn a_dry_run_prints_each_sinks_payload_sends_nothing_and_shows_no_secret() {
    let dir = Dir::new();
    let slack = Slack::start();
    let cfg = config(&dir, &slack);
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["test", "--jail", "sshd", "--ip", "<!channel>", "--dry-run"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("nothing is sent"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("sink `hook` (slack-webhook): POST to the webhook URL (the secret, not shown), this JSON body:"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("sink `api` (slack-api): POST to {}", slack.api_url())), "{}", r.stdout);
    // The payload as it would go: Slack's escaping, the channel.
    assert!(r.stdout.contains("&lt;!channel&gt;") && !r.stdout.contains("<!channel>"), "{}", r.stdout);
    assert!(r.stdout.contains("\"channel\": \"#security\""), "{}", r.stdout);
    assert_no_secret(&r.stdout);
    assert_no_secret(&r.stderr);
    assert!(slack.requests().is_empty(), "a dry run sent something");
}
