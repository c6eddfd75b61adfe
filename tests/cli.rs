//! The built binary, run as Fail2Ban and administrators run it: arguments, exit codes, the
//! config it reads, and what reaches the stdout sink.

use std::time::Duration;

use crate::util::{json_lines, run, Dir, Syslog, WorkerGuard};

/// A config with a JSON-lines file sink for `sshd` and a text stdout fallback.
fn json_config(dir: &Dir, extra: &str) -> std::path::PathBuf {
    let out = dir.path().join("events.jsonl");
    dir.write(
        "config.toml",
        &format!(
            r#"
host = "test.example"
[sinks.file]
type = "stdout"
format = "json"
path = "{}"

[sinks.console]
type = "stdout"

[jails.sshd]
sinks = ["file"]

[jails."*"]
sinks = ["console"]
{extra}
"#,
            out.display()
        ),
    )
}

#[test]
fn no_config_at_all_prints_to_stdout() {
    let dir = Dir::new();
    let mut c = dir.cmd();
    c.args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n");
    assert_eq!(r.stderr, "");
}

#[test]
fn fields_and_hostile_values_arrive_intact() {
    let dir = Dir::new();
    let cfg = json_config(&dir, "");
    let hostile = "--help\"'$(touch pwned)`id`;<!channel>";
    let mut c = dir.cmd();
    c.arg("--config").arg(&cfg).args([
        "notify",
        "ban",
        "--jail",
        "sshd",
        "--ip",
        "2001:db8::7",
        "--failures",
        "3",
        "--time",
        "1700000000.25",
        "--bantime",
        "-1",
        "--restored",
        "0",
        "--bancount",
        "4",
        // Both spellings Fail2Ban might produce: a separate value that looks like an option,
        // and the `=` form the action file uses.
        "--user",
        "--help",
    ]);
    c.arg(format!("--matches={hostile}"));
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines = json_lines(&dir.path().join("events.jsonl"));
    assert_eq!(lines.len(), 1);
    let e = &lines[0];
    assert_eq!(e["kind"], "ban");
    assert_eq!(e["jail"], "sshd");
    assert_eq!(e["id"], "2001:db8::7");
    assert_eq!(e["ip"], "2001:db8::7");
    assert_eq!(e["failures"], 3);
    assert_eq!(e["time"], 1_700_000_000.25);
    assert_eq!(e["bantime"], -1);
    assert_eq!(e["restored"], false);
    assert_eq!(e["bancount"], 4);
    assert_eq!(e["message"], "Fail2Ban (sshd) banned IP 2001:db8::7 for 3 failure(s), the 4th time");
    assert_eq!(e["user"], "--help");
    assert_eq!(e["matches"], hostile);
    assert_eq!(e["host"], "test.example");
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn non_ip_ids_are_accepted_and_said() {
    let dir = Dir::new();
    let mut c = dir.cmd();
    c.args(["notify", "unban", "--jail", "postfix-sasl", "--ip", "mallory@example"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (postfix-sasl) unbanned mallory@example (not an IP address)\n");
}

#[test]
fn empty_tags_count_as_not_given() {
    // A manual `banip` gives failures=0 and no user or matches; F-* tags Fail2Ban has no
    // value for become empty strings.
    let dir = Dir::new();
    let cfg = json_config(&dir, "");
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args([
        "notify",
        "ban",
        "--jail=sshd",
        "--ip=192.0.2.9",
        "--failures=0",
        "--time=",
        "--bantime=",
        "--restored=",
        "--user=",
        "--matches=",
        "--bancount=",
    ]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let e = &json_lines(&dir.path().join("events.jsonl"))[0];
    assert_eq!(e["failures"], 0);
    assert!(e.get("user").is_none() && e.get("matches").is_none() && e.get("time").is_none());
    assert!(e.get("bancount").is_none(), "{e}");
    assert_eq!(e["message"], "Fail2Ban (sshd) banned IP 192.0.2.9");
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    let dir = Dir::new();
    let cases: &[(&[&str], &str)] = &[
        (&["notify", "ban", "--jail", "sshd"], "needs --ip"),
        (&["notify", "ban", "--jail", "sshd", "--ip", ""], "needs --ip"),
        (&["notify", "ban", "--jail", "", "--ip", "1.2.3.4"], "--jail must not be empty"),
        (&["notify", "banned", "--jail", "sshd"], "banned"),
        (&["notify", "start"], "--jail"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, want) in cases {
        let mut c = dir.cmd();
        c.args(*args);
        let r = run(c);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: not one line: {:?}", r.stderr);
        assert!(r.stderr.starts_with("f2b-notify: "), "{:?}", r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: {:?} lacks {want:?}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

#[test]
fn a_bad_value_is_set_aside_and_the_event_still_goes_out() {
    // Fail2Ban would run a failed action again, and the value would be no better the second
    // time: the event goes out without the bad value, which is named on stderr (one line).
    let dir = Dir::new();
    for (arg, want) in [
        ("--failures=many", "--failures `many` is not a whole number: the event is sent without it"),
        (
            "--time=yesterday",
            "--time `yesterday` is not a number of seconds since the epoch: the event is sent without it",
        ),
        ("--time=-5", "--time `-5`"),
        ("--bantime=1.5", "--bantime `1.5` is not a whole number of seconds"),
        ("--restored=2", "--restored `2` must be 0 or 1"),
        ("--bancount=many", "--bancount `many` is not a whole number: the event is sent without it"),
    ] {
        let mut c = dir.cmd();
        c.args(["notify", "ban", "--jail=sshd", "--ip=203.0.113.9", arg]);
        let r = run(c);
        assert_eq!(r.code, Some(0), "{arg}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!("f2b-notify: {want}")) && r.stderr.lines().count() == 1,
            "{arg}: {:?}",
            r.stderr
        );
        assert!(r.stdout.contains("banned IP 203.0.113.9"), "{arg}: the event was not sent: {:?}", r.stdout);
    }
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let cfg = dir.write(
        "bad.toml",
        &format!("[delivery]\nspool = \"{}\"\n[sinks.console]\ntype = \"stdout\"\ncolour = \"red\"\n", spool.display()),
    );
    let named =
        |stderr: &str| stderr.contains("bad.toml") && stderr.contains("sinks.console") && stderr.contains("colour");
    let mut c = dir.cmd();
    c.arg("--config").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(named(&r.stderr), "{:?}", r.stderr);
    // The action says the same, and keeps the event: exit 0 (a re-run would not fix the
    // config), the event spooled unrouted in the spool the config names.
    let syslog = Syslog::start(dir.path());
    let mut c = dir.cmd();
    c.arg("--config").arg(&cfg).args(["notify", "ban", "--jail", "sshd", "--ip", "192.0.2.9"]);
    c.env("F2B_NOTIFY_SYSLOG", &syslog.path);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(named(&r.stderr), "{:?}", r.stderr);
    assert!(r.stderr.contains("the ban of 192.0.2.9 in jail sshd waits in"), "{:?}", r.stderr);
    let logged = crate::util::wait_for("the system log line", Duration::from_secs(5), || {
        let m = syslog.messages();
        (!m.is_empty()).then_some(m)
    });
    assert!(logged[0].starts_with("<27>f2b-notify[") && named(&logged[0]), "{logged:?}");
    let new: Vec<_> = std::fs::read_dir(spool.join("new")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let entry: serde_json::Value = serde_json::from_slice(&std::fs::read(&new[0]).unwrap()).unwrap();
    assert_eq!(entry["event"]["id"], "192.0.2.9");
    assert!(entry["unrouted"].as_str().is_some_and(named), "{entry}");
    // `queue` shows it, and why, with the config still broken.
    let mut c = dir.cmd();
    c.arg("--config").arg(&cfg).arg("queue");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("1 event(s) spooled while the config did not load wait for one that does"),
        "{}",
        r.stdout
    );
}

#[test]
fn config_from_environment_variable_and_env_override() {
    let dir = Dir::new();
    let cfg = json_config(&dir, "");
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG", &cfg).env("F2B_NOTIFY_HOST", "env.example");
    c.args(["notify", "start", "--jail", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let e = &json_lines(&dir.path().join("events.jsonl"))[0];
    assert_eq!(e["host"], "env.example");
    assert_eq!(e["message"], "Fail2Ban (sshd) jail started on env.example");
}

#[test]
fn routing_events_and_restored() {
    let dir = Dir::new();
    let cfg = json_config(
        &dir,
        r#"
[jails."web-*"]
sinks = ["file"]
events = ["ban"]
restored = true
"#,
    );
    let notify = |args: &[&str]| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("notify").args(args);
        run(c)
    };
    // Restored bans stay quiet by default...
    assert_eq!(notify(&["ban", "--jail=sshd", "--ip=192.0.2.1", "--restored=1"]).code, Some(0));
    // ...unless the route asks for them.
    assert_eq!(notify(&["ban", "--jail=web-auth", "--ip=192.0.2.2", "--restored=1"]).code, Some(0));
    // Filtered by `events`.
    assert_eq!(notify(&["unban", "--jail=web-auth", "--ip=192.0.2.2"]).code, Some(0));
    // The fallback goes to the console.
    let r = notify(&["stop", "--jail=postfix"]);
    assert_eq!(r.stdout, format!("Fail2Ban (postfix) jail stopped on test.example\n"));
    let lines = json_lines(&dir.path().join("events.jsonl"));
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|e| (e["jail"].as_str().unwrap().to_owned(), e["kind"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, [("web-auth".to_owned(), "ban".to_owned())]);
    assert_eq!(lines[0]["restored"], true);
    assert_eq!(lines[0]["message"], "Fail2Ban (web-auth) banned IP 192.0.2.2 (restored at restart)");
}

#[test]
fn unrouted_jail_is_dropped_with_a_warning() {
    let dir = Dir::new();
    let cfg = dir.write("c.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.sshd]\nsinks = [\"c\"]\n");
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail", "dovecot", "--ip", "192.0.2.1"]);
    let r = run(c);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("jail `dovecot` matches no route"), "{:?}", r.stderr);
}

#[test]
fn sink_failure_is_reported_but_exits_0() {
    // A non-zero exit would make Fail2Ban run the action again.
    let dir = Dir::new();
    let cfg = dir.write(
        "c.toml",
        "[sinks.file]\ntype = \"stdout\"\npath = \"/nonexistent-dir/out\"\n[jails.\"*\"]\nsinks = [\"file\"]\n",
    );
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail", "sshd", "--ip", "192.0.2.1"]);
    let r = run(c);
    assert_eq!(r.code, Some(0));
    assert!(r.stderr.contains("sink `file`") && r.stderr.contains("/nonexistent-dir/out"), "{:?}", r.stderr);

    // `test` says the same and exits 1.
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["test", "--jail", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.contains("sink `file` (stdout): FAILED"), "{}", r.stdout);
    assert!(r.stdout.contains("permanent"), "{}", r.stdout);
}

#[test]
fn test_command_delivers_a_sample() {
    let dir = Dir::new();
    let cfg = json_config(&dir, "");
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["test", "--jail", "sshd", "--event", "unban", "--ip", "198.51.100.4"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("jail `sshd` takes route `sshd`"), "{}", r.stdout);
    assert!(r.stdout.contains("sink `file` (stdout): ok"), "{}", r.stdout);
    let e = &json_lines(&dir.path().join("events.jsonl"))[0];
    assert_eq!(e["kind"], "unban");
    assert_eq!(e["id"], "198.51.100.4");
}

#[test]
fn check_prints_sinks_and_routes() {
    let dir = Dir::new();
    let cfg = json_config(&dir, "[jails.\"nginx-*\"]\nsinks = [\"file\", \"console\"]\nevents = [\"ban\"]\n");
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let routes: Vec<&str> = r.stdout.lines().skip_while(|l| !l.starts_with("routes")).skip(1).collect();
    assert!(routes[0].trim_start().starts_with("sshd"), "{}", r.stdout);
    assert!(
        routes[1].contains("nginx-*") && routes[1].contains("-> file, console") && routes[1].contains("events: ban;"),
        "{}",
        r.stdout
    );
    assert!(routes[2].trim_start().starts_with('*'), "{}", r.stdout);
    assert!(r.stdout.contains("  console  stdout"), "{}", r.stdout);
    let front = crate::util::enqueue_bin();
    assert!(r.stdout.contains(&format!("action front end: {}", front.display())), "{}", r.stdout);

    // Without the front end beside the binary, check says what that costs.
    let lone = dir.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(crate::util::bin(), lone.join("f2b-notify")).unwrap();
    let mut c = std::process::Command::new(lone.join("f2b-notify"));
    c.env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("no-etc")).arg("-c").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("f2b-notify-enqueue is not installed beside f2b-notify"), "{}", r.stdout);

    // The starter config in config/ (what `setup` writes) says what is missing, then is
    // valid once its secret file exists: every jail to the Slack webhook, nothing else.
    let example =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.toml")).unwrap();
    let etc = dir.path().join("etc");
    let example = dir.write("example.toml", &example.replace("/etc/f2b-notify/", &format!("{}/", etc.display())));
    let check = || {
        let mut c = dir.cmd();
        c.arg("-c").arg(&example).arg("check");
        run(c)
    };
    if cfg!(feature = "slack-webhook") {
        let r = check();
        assert_eq!(r.code, Some(2));
        let url_file = etc.join("slack-webhook.url");
        assert!(
            r.stderr.contains(&format!("sink `slack`: cannot read `url_file` file {}", url_file.display())),
            "{}",
            r.stderr
        );
        dir.write("etc/slack-webhook.url", "https://hooks.slack.com/services/T0/B0/X\n");
        std::fs::set_permissions(&url_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let r = check();
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let section = |name: &str| -> Vec<String> {
            r.stdout
                .lines()
                .skip_while(|l| !l.starts_with(name))
                .skip(1)
                .take_while(|l| l.starts_with("  "))
                .map(|l| l.trim().to_owned())
                .collect()
        };
        assert_eq!(section("sinks:"), ["slack  slack-webhook"], "{}", r.stdout);
        assert_eq!(
            section("routes"),
            ["*  -> slack  [events: start, stop, ban, unban; restored bans: quiet]"],
            "{}",
            r.stdout
        );
        assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
    } else {
        let r = check();
        assert_eq!(r.code, Some(2));
        assert!(r.stderr.contains("which this build does not include"), "{}", r.stderr);
    }
}

#[test]
fn action_prints_the_shipped_action_file_with_this_binary() {
    let dir = Dir::new();
    let mut c = dir.cmd();
    c.arg("action");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/action.d/f2b-notify.conf"),
    )
    .unwrap();
    // The shipped file, except that `bin` is the binary that printed it.
    let this = std::fs::canonicalize(crate::util::bin()).unwrap();
    let ours = format!("\nbin = {}\n", this.display());
    assert!(r.stdout.contains(&ours), "{}", r.stdout);
    assert_eq!(r.stdout.replacen(&ours, "\nbin = /usr/bin/f2b-notify\n", 1), shipped);

    // A copy elsewhere names itself.
    let other = dir.path().join("opt/bin");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(crate::util::bin(), other.join("f2b-notify")).unwrap();
    let mut c = dir.cmd_of(&other.join("f2b-notify"));
    c.arg("action");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("\nbin = {}/f2b-notify\n", other.display())), "{}", r.stdout);

    // A path that Fail2Ban or the shell would read as something else is refused, not printed.
    let odd = dir.path().join("a b");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(crate::util::bin(), odd.join("f2b-notify")).unwrap();
    let mut c = dir.cmd_of(&odd.join("f2b-notify"));
    c.arg("action");
    let r = run(c);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("which Fail2Ban or the shell would interpret") && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
    // Tags in double quotes only: single quotes would turn escaped values into `$f2bV_…` text.
    for line in shipped.lines().filter(|l| l.starts_with("action")) {
        assert!(!line.contains('\''), "single quote in {line}");
        for tag in ["<ip>", "<F-USER>", "<matches>", "<name>"] {
            if line.contains(tag) {
                assert!(line.contains(&format!("=\"{tag}\"")), "{tag} not double-quoted in {line}");
            }
        }
        assert!(!line.contains("<ip-host>"), "DNS lookup in {line}");
    }
}

#[test]
fn output_stays_far_below_the_fail2ban_pipe_limit() {
    let dir = Dir::new();
    let cfg = dir.write("c.toml", "[sinks.c]\ntype = \"stdout\"\nformat = \"json\"\n[jails.\"*\"]\nsinks = [\"c\"]\n");
    let mut c = dir.cmd();
    let big = "Nov 25 sshd: Failed password for root from 192.0.2.1\n".repeat(1_000);
    c.arg("-c")
        .arg(&cfg)
        .args(["notify", "ban", "--jail", "sshd", "--ip", "192.0.2.1"])
        .arg(format!("--matches={big}"));
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.len() < 16 * 1024, "{} bytes", r.stdout.len());
    assert_eq!(r.stdout.lines().count(), 1);
}

#[cfg(not(feature = "slack-webhook"))]
#[test]
fn left_out_sink_type_names_the_feature() {
    let dir = Dir::new();
    let cfg = dir.write("c.toml", "[sinks.ops]\ntype = \"slack-webhook\"\nurl = \"http://127.0.0.1:9/x\"\n");
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("sink `ops` has type `slack-webhook`, which this build does not include: rebuild with `--features slack-webhook`"),
        "{:?}",
        r.stderr
    );
}

/// `check` warns when a sink's URL would carry its secret in clear to another machine, and
/// stays quiet for https:// and for loopback (127.0.0.0/8, ::1, localhost: a local proxy, the
/// tests); the warning never shows the URL.
#[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
#[test]
fn check_warns_about_plain_http_to_another_machine() {
    let dir = Dir::new();
    let sinks = |hook: &str, api: &str| {
        format!(
            "[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{hook}/services/T0/B0/SECRETpath\"\n[sinks.api]\ntype = \"slack-api\"\ntoken = \"xoxb-SECRET\"\nchannel = \"#c\"\nurl = \"{api}\"\n[jails.\"*\"]\nsinks = [\"hook\", \"api\"]\n"
        )
    };
    let check = |name: &str, body: String| {
        let cfg = dir.write(name, &body);
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("check");
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(!r.stdout.contains("SECRET") && !r.stderr.contains("SECRET"), "{}{}", r.stdout, r.stderr);
        r.stdout
    };
    let out = check("clear.toml", sinks("http://hooks.example.com", "http://10.1.2.3:8080/api/"));
    assert!(out.contains("sink `hook`: `url` is a plain http:// URL to another machine: the webhook URL"), "{out}");
    assert!(out.contains("sink `api`: `url` is a plain http:// URL to another machine: the bot token"), "{out}");
    assert!(!out.contains("hooks.example.com") && !out.contains("10.1.2.3"), "{out}");
    for (name, hook, api) in [
        ("tls.toml", "https://hooks.example.com", "https://slack.example.com/api/"),
        ("local.toml", "http://127.0.0.1:9", "http://localhost:9/api/"),
        ("local6.toml", "http://[::1]:9", "http://127.8.9.10/api/"),
    ] {
        let out = check(name, sinks(hook, api));
        assert!(!out.contains("plain http://"), "{name}: {out}");
    }
}
