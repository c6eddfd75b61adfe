//! First run and day two: `cargo run` from a fresh clone, and `f2b-notify setup` against a
//! private copy of Fail2Ban's config, with the real Fail2Ban banning through what it wrote.

use std::path::{Path, PathBuf};

use crate::util::{run, snapshot, stock_fail2ban_dir, Dir, Run};

/// `cargo run -- notify …` in the repository runs the router (the package's `default-run`)
/// and, with no config anywhere, prints the message through the embedded default.
///
/// Cargo builds into a target directory of its own below this build's: `cargo test` builds
/// the binary with the dev-dependencies' features unified in, `cargo run` without them, and in
/// the same directory `cargo run` would put its binary where the running tests' binary is
/// (swapping it under them: the front end's plans would go stale mid-test). The first run
/// builds once (without debug info, which halves that); later runs find it built. Only in the
/// full build: `cargo run` builds the default features, which is what this is about.
#[cfg(all(feature = "stdout", feature = "slack-webhook", feature = "slack-api", feature = "email"))]
#[test]
fn cargo_run_notify_prints_the_message() {
    use std::process::{Command, Stdio};
    let dir = Dir::new();
    let mut c = Command::new(env!("CARGO"));
    // As from a shell: without the variables Cargo sets for this test (ring's build script
    // watches CARGO_PKG_NAME and OUT_DIR, so they would make its build differ from a user's),
    // and without any F2B_NOTIFY_… setting of the machine.
    const SET_BY_CARGO: [&str; 7] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
    ];
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if SET_BY_CARGO.iter().any(|p| name.starts_with(p)) || name.starts_with("F2B_NOTIFY_") {
            c.env_remove(&k);
        }
    }
    let target =
        crate::util::bin().parent().and_then(Path::parent).expect("the target directory").join("cargo-run-test");
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .args(["run", "--quiet", "--offline", "--"])
        .args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"])
        // No config directory: the embedded default (every event to stdout).
        .env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("no-etc"))
        .env("F2B_NOTIFY_RUN_DIR", dir.path().join("run"))
        // stdout is a pipe here, so the no-config notice goes to the system log: a private one.
        .env("F2B_NOTIFY_SYSLOG", dir.path().join("syslog.sock"))
        .stdin(Stdio::null());
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n");
    assert_eq!(r.stderr, "");
}

/// `check` on one of config/examples/, its `/etc/f2b-notify/` and `/var/log/` moved into the
/// test's directory, with each secret file it names (created here, mode 0600) holding `secret`.
fn check_example(dir: &Dir, name: &str, secrets: &[(&str, &str)]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/examples").join(name)).unwrap();
    let etc = dir.path().join("etc");
    let text = text
        .replace("/etc/f2b-notify/", &format!("{}/", etc.display()))
        .replace("/var/log/", &format!("{}/", dir.path().join("log").display()));
    for (file, secret) in secrets {
        assert!(text.contains(&format!("{}\"", etc.join(file).display())), "{name} does not name {file}");
        let path = dir.write(&format!("etc/{file}"), &format!("{secret}\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = dir.write(name, &text);
    let mut c = dir.cmd();
    c.arg("--config").arg(&cfg).arg("check");
    run(c)
}

/// The lines of one section of `check`'s output (`sinks:`, `routes`, `warnings:`), trimmed.
fn section(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with(name))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The stdout example: two sinks, a JSON log for sshd (which it then writes, mode 0600) and
/// text for the rest.
#[test]
fn example_stdout_checks_and_writes_a_private_log() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let r = check_example(&dir, "stdout.toml", &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["audit    stdout", "console  stdout"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        [
            "sshd  -> audit  [events: ban, unban; restored bans: quiet]",
            "*     -> console  [events: start, stop, ban, unban; restored bans: quiet]"
        ],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
    std::fs::create_dir_all(dir.path().join("log/f2b-notify")).unwrap();
    let mut c = dir.cmd();
    c.arg("--config").arg(dir.path().join("stdout.toml"));
    c.args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"]);
    let r = run(c);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{}", r.stderr);
    let log = dir.path().join("log/f2b-notify/events.jsonl");
    let lines = crate::util::json_lines(&log);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    // The other jails' template.
    let mut c = dir.cmd();
    c.arg("--config").arg(dir.path().join("stdout.toml"));
    c.args(["notify", "ban", "--jail", "dovecot", "--ip", "203.0.113.8", "--time", "1700000000", "--bantime", "600"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "2023-11-14T22:13:20Z dovecot: banned 203.0.113.8 for 10 min\n");
}

#[cfg(feature = "slack-webhook")]
#[test]
fn example_slack_webhook_checks() {
    let dir = Dir::new();
    // `check` builds the sink (reads and checks the URL) and sends nothing.
    let r =
        check_example(&dir, "slack-webhook.toml", &[("slack-webhook.url", "https://hooks.slack.com/services/T0/B0/X")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["ops  slack-webhook"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> ops  [events: start, stop, ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // Without the secret file, check names it.
    let dir = Dir::new();
    let r = check_example(&dir, "slack-webhook.toml", &[]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("sink `ops`: cannot read `url_file` file") && r.stderr.contains("slack-webhook.url"),
        "{}",
        r.stderr
    );
}

#[cfg(feature = "slack-api")]
#[test]
fn example_slack_api_checks() {
    let dir = Dir::new();
    let r = check_example(&dir, "slack-api.toml", &[("slack.token", "xoxb-0000-example")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["security  slack-api"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> security  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
}

#[cfg(feature = "discord")]
#[test]
fn example_discord_checks() {
    let dir = Dir::new();
    // `check` builds the sink (reads and checks the URL) and sends nothing.
    let url = "https://discord.com/api/webhooks/1234567890123456789/SECRETtoken";
    let r = check_example(&dir, "discord.toml", &[("discord.url", url)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["discord  discord"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> discord  [events: start, stop, ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // A URL that is not a webhook's is named by its key, never quoted.
    let dir = Dir::new();
    let r = check_example(&dir, "discord.toml", &[("discord.url", "https://discord.com/channels/1/SECRET")]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `discord`: `url` is not a Discord webhook URL"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRET"), "{}", r.stderr);
}

#[cfg(feature = "email")]
#[test]
fn example_email_checks() {
    let dir = Dir::new();
    let r = check_example(&dir, "email.toml", &[("smtp.pass", "example-password")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["mail  email"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        [
            "sshd     -> mail  [events: ban, unban; restored bans: quiet]",
            "nginx-*  -> mail  [events: ban, unban; restored bans: quiet]"
        ],
        "{}",
        r.stdout
    );
    // Only jails it names get mail, as it says; STARTTLS, so no warning about the password.
    assert_eq!(
        section(&r.stdout, "warnings:"),
        ["no `[jails.\"*\"]` fallback: events of jails that match no route are dropped"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("example-password"), "{}", r.stdout);
}

#[cfg(feature = "webhook")]
#[test]
fn example_webhook_checks() {
    let dir = Dir::new();
    let secrets = [
        ("webhook.url", "https://n8n.example.com/webhook/SECRET-0f3c9a7e-5b1d"),
        ("webhook.auth", "Bearer SECRET-token-1234"),
        ("chat.url", "https://chat.example.com/hooks/SECRETxyz0123456789"),
    ];
    // `check` builds both sinks (reads the files, tries the chat template) and sends nothing.
    let r = check_example(&dir, "webhook.toml", &secrets);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["automation  webhook", "chat        webhook"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> automation, chat  [events: start, stop, ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // Without the header's file, check names it and the key.
    let dir = Dir::new();
    let r = check_example(&dir, "webhook.toml", &secrets[..1]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("sink `automation`: cannot read `header_files.Authorization` file")
            && r.stderr.contains("webhook.auth")
            && !r.stderr.contains("SECRET"),
        "{}",
        r.stderr
    );
}

#[cfg(feature = "telegram")]
#[test]
fn example_telegram_checks() {
    let dir = Dir::new();
    let token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
    let r = check_example(&dir, "telegram.toml", &[("telegram.token", token)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["telegram  telegram"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> telegram  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
    assert!(!r.stdout.contains("ABC-DEF1234") && !r.stderr.contains("ABC-DEF1234"), "{}", r.stdout);
    // A token file that holds something else: named, never quoted.
    let dir = Dir::new();
    let r = check_example(&dir, "telegram.toml", &[("telegram.token", "bot123456:AAsecretXYZ")]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(
        r.stderr.contains("sink `telegram`: `token_file` ")
            && r.stderr.contains("telegram.token does not hold a Telegram bot token: it starts with `bot`"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("secretXYZ"), "{}", r.stderr);
}

#[cfg(feature = "matrix")]
#[test]
fn example_matrix_checks() {
    let dir = Dir::new();
    let r = check_example(&dir, "matrix.toml", &[("matrix.token", "syt_ZXhhbXBsZQ_example_0000")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["security  matrix"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> security  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("syt_"), "{}", r.stdout);
    // Without the token file, check names it.
    let dir = Dir::new();
    let r = check_example(&dir, "matrix.toml", &[]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("sink `security`: cannot read `token_file` file") && r.stderr.contains("matrix.token"),
        "{}",
        r.stderr
    );
}

#[cfg(feature = "teams")]
#[test]
fn example_teams_checks() {
    let dir = Dir::new();
    let url = "https://0123abcd.de.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/0f8fad5bd9cb469fa16570867728950e/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETsig";
    let r = check_example(&dir, "teams.toml", &[("teams.url", url)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["teams  teams"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> teams  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
    for part in ["SECRETsig", "powerplatform", "0f8fad5b"] {
        assert!(!r.stdout.contains(part) && !r.stderr.contains(part), "{}{}", r.stdout, r.stderr);
    }
}

#[cfg(feature = "ntfy")]
#[test]
fn example_ntfy_checks() {
    let dir = Dir::new();
    // `check` builds the sink (reads the token, takes the URL apart) and sends nothing.
    let r = check_example(&dir, "ntfy.toml", &[("ntfy.token", "tk_SECRET0example0token000000000")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["phone  ntfy"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> phone  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // Without the token file, check names it.
    let dir = Dir::new();
    let r = check_example(&dir, "ntfy.toml", &[]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `phone`: cannot read `token_file` file"), "{}", r.stderr);
}

#[cfg(feature = "alertmanager")]
#[test]
fn example_alertmanager_checks() {
    let dir = Dir::new();
    let r = check_example(&dir, "alertmanager.toml", &[("alertmanager.pass", "example-password")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["fleet  alertmanager"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> fleet  [events: ban, unban; restored bans: announced]"],
        "{}",
        r.stdout
    );
    // https:// with basic auth, the password in a private file: nothing to warn about.
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("example-password"), "{}", r.stdout);
}

#[cfg(feature = "gotify")]
#[test]
fn example_gotify_checks() {
    let dir = Dir::new();
    // `check` builds the sink (reads the token, checks the URL) and sends nothing.
    let r = check_example(&dir, "gotify.toml", &[("gotify.token", "ASECRETexample1")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["gotify  gotify"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> gotify  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // A client token in the file: a warning that says so, without the token.
    let dir = Dir::new();
    let r = check_example(&dir, "gotify.toml", &[("gotify.token", "CSECRETclient12")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("looks like a client token") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // Without the token file, check names it.
    let dir = Dir::new();
    let r = check_example(&dir, "gotify.toml", &[]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `gotify`: cannot read `token_file` file"), "{}", r.stderr);
}

#[cfg(feature = "pushover")]
#[test]
fn example_pushover_checks() {
    let dir = Dir::new();
    // `check` builds the sink (reads both secrets, checks their shape) and sends nothing.
    let secrets =
        [("pushover.token", "SECRETappTokenAbcdefghij012345"), ("pushover.user", "SECRETuserKeyAbcdefghij0123456")];
    let r = check_example(&dir, "pushover.toml", &secrets);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(section(&r.stdout, "sinks:"), ["phone  pushover"], "{}", r.stdout);
    assert_eq!(
        section(&r.stdout, "routes"),
        ["*  -> phone  [events: ban, unban; restored bans: quiet]"],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:") && !r.stdout.contains("SECRET"), "{}", r.stdout);
    // Without the user key's file, check names it.
    let dir = Dir::new();
    let r = check_example(&dir, "pushover.toml", &secrets[..1]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `phone`: cannot read `user_file` file"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRET"), "{}", r.stderr);
}

/// jail.local for the stock copy: the `dummy` firewall action instead of iptables, and sshd
/// reading `auth` by polling (as an administrator's jail.local would, the stock jail.conf and
/// jail.d/defaults-debian.conf do the rest).
fn jail_local(auth: &Path, extra: &str) -> String {
    format!(
        "[DEFAULT]\nbanaction = dummy\nbackend = polling\nusedns = no\nmaxretry = 2\nfindtime = 600\nbantime = 600\n{extra}\n[sshd]\nbackend = polling\nlogpath = {}\n",
        auth.display()
    )
}

/// `f2b-notify setup` with these arguments, the config directory `etc` in the test's
/// directory (F2B_NOTIFY_CONFIG_DIR, as for every command), plus `env`.
fn setup(dir: &Dir, conf: &Path, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("etc"));
    c.envs(env.iter().copied());
    c.arg("setup").arg("--fail2ban-dir").arg(conf).args(args);
    run(c)
}

/// The binary as the kernel names it (what the action's `bin` says).
fn this_binary() -> PathBuf {
    std::fs::canonicalize(crate::util::bin()).unwrap()
}

/// Setup into a copy of the stock Fail2Ban config, then the real Fail2Ban on that copy: the
/// jail bans with its firewall action (dummy) and f2b-notify delivers the ban through the
/// starter config to a loopback Slack stand-in once the URL file exists; `--undo` then leaves
/// the copy byte for byte as it was.
#[cfg(feature = "slack-webhook")]
#[test]
fn setup_then_fail2ban_bans_and_notifies_and_undo_restores_the_dir() {
    use crate::util::{append_ssh_failures, slack_ok, wait_for, Fail2Ban, StandIn, WorkerGuard};
    const WAIT: std::time::Duration = std::time::Duration::from_secs(40);
    let dir = Dir::new();
    let auth = dir.write("auth.log", "");
    let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, ""));
    let before = snapshot(&conf);
    let cfg = dir.path().join("etc/web.toml");
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    // The spool is the only thing the test changes in the starter, from the environment.
    let env = [("F2B_NOTIFY_DELIVERY__SPOOL", spool.as_path())];
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_DELIVERY__SPOOL", &spool);
    c.arg("--config").arg(&cfg).arg("setup").arg("--fail2ban-dir").arg(&conf).args(["--jails", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let said = |want: &str| assert!(r.stdout.contains(want), "{want:?} not in:\n{}", r.stdout);
    said(&format!("wrote {}/action.d/f2b-notify.conf (the action; bin = {})", conf.display(), this_binary().display()));
    said(&format!("wrote {}/jail.d/f2b-notify.local (appends f2b-notify to the action of sshd)", conf.display()));
    said(&format!("wrote {} (the starter config", cfg.display()));
    said(&format!("wrote {}/f2b-notify-setup.json", conf.display()));
    said(&format!("action front end: {}", this_binary().with_file_name("f2b-notify-enqueue").display()));
    said(&format!("fail2ban-client -t: Fail2Ban's config in {} is valid", conf.display()));
    // Fail2Ban's own view: the firewall action first, then f2b-notify.
    said("jail sshd runs: dummy, f2b-notify\n");
    let url_file = cfg.with_file_name("slack-webhook.url");
    said(&format!("problem: {}: sink `slack`: cannot read `url_file` file {}", cfg.display(), url_file.display()));
    // The config is private; the action runs this binary with that config.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode(&cfg), mode(cfg.parent().unwrap())), (0o600, 0o700));
    let action = std::fs::read_to_string(conf.join("action.d/f2b-notify.conf")).unwrap();
    assert!(action.contains(&format!("\nbin = {}\n", this_binary().display())), "{action}");
    let jail = std::fs::read_to_string(conf.join("jail.d/f2b-notify.local")).unwrap();
    assert!(
        jail.contains(&format!("[sshd]\n# %(known/action)s is this jail's action as the files read before this one set it.\naction = %(known/action)s\n         f2b-notify[args=\"--config {}\"]\n", cfg.display())),
        "{jail}"
    );

    // The secret the starter asks for: the stand-in's webhook URL.
    let slack = StandIn::start(slack_ok());
    std::fs::write(&url_file, format!("{}\n", slack.url("/services/T0/B0/SETUP"))).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_DELIVERY__SPOOL", &spool).arg("--config").arg(&cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);

    let plans = dir.path().join("plans");
    let mut f2b = Fail2Ban::start_prepared(
        &conf,
        &dir.path().join("f2b-run"),
        &[("F2B_NOTIFY_DELIVERY__SPOOL", spool.to_str().unwrap()), ("F2B_NOTIFY_RUN_DIR", plans.to_str().unwrap())],
    );
    let texts = || -> Vec<String> {
        slack
            .requests_to("/services/T0/B0/SETUP")
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["text"].as_str().unwrap_or("").to_owned()
            })
            .collect()
    };
    wait_for("the start of sshd at the stand-in", WAIT, || {
        texts().iter().any(|t| t.contains("(sshd) jail started")).then_some(())
    });
    append_ssh_failures(&auth, "203.0.113.7", "root", 3);
    let target = dir.path().join("dummy-target");
    wait_for("the firewall action's ban", WAIT, || {
        std::fs::read_to_string(&target).unwrap_or_default().contains("+203.0.113.7").then_some(())
    });
    // Alone ("banned IP …") or folded into a digest ("1 ban in 1 jail", the address below).
    let bodies = || slack.requests_to("/services/T0/B0/SETUP").into_iter().map(|r| r.body).collect::<Vec<_>>();
    wait_for("the ban at the stand-in", WAIT, || {
        bodies().iter().any(|b| b.contains("203.0.113.7") && b.contains(" ban")).then_some(())
    });
    f2b.stop();
    // "(sshd) jail stopped on …", or "… 1 jail stop in 1 jail" with the stop-time unban.
    wait_for("the stop at the stand-in", WAIT, || texts().iter().any(|t| t.contains("jail stop")).then_some(()));
    let log = f2b.log();
    assert!(log.contains("[sshd] Ban 203.0.113.7"), "{log}");
    assert!(!log.contains("ERROR"), "Fail2Ban logged an error:\n{log}");
    crate::util::kill_worker(&spool);

    // Undo: the copy is as it was, byte for byte and mode for mode; the config setup wrote is
    // gone, its directory kept for the secret the administrator put there.
    let r = setup(&dir, &conf, &["--undo"], &env);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    for want in [
        format!("removed {}/jail.d/f2b-notify.local", conf.display()),
        format!("removed {}/action.d/f2b-notify.conf", conf.display()),
        format!("removed {}\n", cfg.display()),
        format!("kept {}: it is not empty", cfg.parent().unwrap().display()),
        format!("removed {}/f2b-notify-setup.json", conf.display()),
    ] {
        assert!(r.stdout.contains(&want), "{want:?} not in:\n{}", r.stdout);
    }
    assert!(snapshot(&conf) == before, "the Fail2Ban directory differs after --undo");
    assert!(!cfg.exists() && url_file.exists());
}

/// `--dry-run` prints what it would write and writes nothing; `--undo --dry-run` removes
/// nothing. A file setup replaces (an action file from a manual install) is put back by
/// `--undo`, content and mode.
#[test]
fn dry_run_writes_nothing_and_undo_puts_back_what_setup_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let auth = dir.write("auth.log", "");
    let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, ""));
    let old_action = conf.join("action.d/f2b-notify.conf");
    std::fs::write(&old_action, "# from a manual install\n[Definition]\nactionban = true\n[Init]\nbin = /old\n")
        .unwrap();
    std::fs::set_permissions(&old_action, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = snapshot(&conf);
    let etc = dir.path().join("etc");

    let r = setup(&dir, &conf, &["--jails", "sshd", "--dry-run"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    for want in [
        format!("would replace {} (mode 0644; the action; bin = {}):", old_action.display(), this_binary().display()),
        format!("    bin = {}\n", this_binary().display()),
        format!(
            "would write {}/jail.d/f2b-notify.local (mode 0644; appends f2b-notify to the action of sshd):",
            conf.display()
        ),
        "    action = %(known/action)s\n             f2b-notify\n".to_owned(),
        format!("would create {} (mode 0700)", etc.display()),
        format!("would write {}/config.toml (mode 0600; the starter config", etc.display()),
        format!("    url_file = \"{}/slack-webhook.url\"\n", etc.display()),
        "nothing was written".to_owned(),
    ] {
        assert!(r.stdout.contains(&want), "{want:?} not in:\n{}", r.stdout);
    }
    assert!(snapshot(&conf) == before, "--dry-run changed the Fail2Ban directory");
    assert!(!etc.exists(), "--dry-run created the config directory");

    let r = setup(&dir, &conf, &["--jails", "sshd"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("wrote {} (the action", old_action.display())), "{}", r.stdout);
    // The F2B_NOTIFY_CONFIG_DIR config is the one created, and setup says what that takes.
    assert!(etc.join("config.toml").is_file());
    assert!(r.stdout.contains("note: F2B_NOTIFY_CONFIG_DIR names"), "{}", r.stdout);
    let after = snapshot(&conf);
    assert!(after != before);
    let r = setup(&dir, &conf, &["--undo", "--dry-run"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("would be restored {} (as it was before setup)", old_action.display())),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("nothing was changed (--dry-run)"), "{}", r.stdout);
    assert!(snapshot(&conf) == after, "--undo --dry-run changed the Fail2Ban directory");
    assert!(etc.join("config.toml").is_file());

    let r = setup(&dir, &conf, &["--undo"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("restored {} (as it was before setup)", old_action.display())), "{}", r.stdout);
    assert!(snapshot(&conf) == before, "the Fail2Ban directory differs after --undo");
    assert!(!etc.exists());
    // Nothing left to undo.
    let r = setup(&dir, &conf, &["--undo"], &[]);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.starts_with("nothing to undo: "), "{}", r.stdout);
}

/// `--all-jails`: `[DEFAULT]`'s action as jail.local sets it, then f2b-notify; a jail that sets
/// its own action gets f2b-notify appended there. Fail2Ban's own reading shows both. Running
/// setup again changes nothing; a file edited since is neither overwritten nor removed.
#[test]
fn all_jails_default_and_own_actions_then_edits_are_kept() {
    let dir = Dir::new();
    let auth = dir.write("auth.log", "");
    let second = dir.path().join("second-target");
    let web = dir.path().join("web-target");
    let extra = format!(
        "action = %(action_)s\n         dummy[actname=second, target=\"{}\"]\n\n[web]\nenabled = true\nfilter = sshd\nbackend = polling\nlogpath = {}\naction = dummy[actname=webonly, target=\"{}\"]\n",
        second.display(),
        auth.display(),
        web.display()
    );
    let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, &extra));
    let before = snapshot(&conf);
    let r = setup(&dir, &conf, &["--all-jails"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("appends f2b-notify to the action of [DEFAULT], web)"), "{}", r.stdout);
    assert!(r.stdout.contains("jail sshd runs: dummy, second, f2b-notify\n"), "{}", r.stdout);
    assert!(r.stdout.contains("jail web runs: webonly, f2b-notify\n"), "{}", r.stdout);
    let jail_file = conf.join("jail.d/f2b-notify.local");
    let text = std::fs::read_to_string(&jail_file).unwrap();
    let default = format!(
        "[DEFAULT]\n# [DEFAULT]'s action as set in\n#   {}\n# then f2b-notify. This copy wins (this file is read last): after changing [DEFAULT]'s\n# action there, run `f2b-notify setup --all-jails` again.\naction = %(action_)s\n         dummy[actname=second, target=\"{}\"]\n         f2b-notify\n",
        conf.join("jail.local").display(),
        second.display()
    );
    assert!(text.contains(&default), "{text}");
    assert!(text.contains("\n[web]\n# %(known/action)s is this jail's action as the files read before this one set it.\naction = %(known/action)s\n         f2b-notify\n"), "{text}");

    // Again: the same files, said unchanged.
    let r = setup(&dir, &conf, &["--all-jails"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("unchanged {} (", jail_file.display())), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("config: {}/config.toml (exists; left as it is)", dir.path().join("etc").display())),
        "{}",
        r.stdout
    );

    // Edited since: setup refuses to overwrite it, --undo keeps it (exit 1) and removes the rest.
    std::fs::write(&jail_file, format!("{text}# mine now\n")).unwrap();
    let edited = snapshot(&conf);
    let r = setup(&dir, &conf, &["--all-jails"], &[]);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{} changed since setup wrote it", jail_file.display())), "{}", r.stderr);
    assert!(snapshot(&conf) == edited);
    let r = setup(&dir, &conf, &["--undo"], &[]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("kept {}: it changed since setup wrote it", jail_file.display())),
        "{}",
        r.stdout
    );
    let mut left = snapshot(&conf);
    left.retain(|(p, ..)| p != "jail.d/f2b-notify.local");
    assert!(left == before, "--undo left more than the edited file");
    assert!(jail_file.is_file());
}

/// Each refusal is one line naming the path (exit 2) and changes nothing.
#[test]
fn setup_refuses_links_writable_dirs_and_files_it_did_not_write() {
    use std::os::unix::fs::PermissionsExt;
    type Case = (&'static str, &'static [&'static str], fn(&Path, &Path), fn(&Path, &Path) -> String);
    let cases: [Case; 8] = [
        (
            "a link at the action file",
            &["--jails", "sshd"],
            |conf, dir| {
                std::os::unix::fs::symlink(dir.join("elsewhere"), conf.join("action.d/f2b-notify.conf")).unwrap()
            },
            |conf, _| format!("refusing to write {}/action.d/f2b-notify.conf: it is a symbolic link", conf.display()),
        ),
        (
            "a jail.d others can write",
            &["--jails", "sshd"],
            |conf, _| std::fs::set_permissions(conf.join("jail.d"), std::fs::Permissions::from_mode(0o777)).unwrap(),
            |conf, _| {
                format!(
                    "refusing to use {}/jail.d can be written by others (mode 0777); fix: chmod go-w",
                    conf.display()
                )
            },
        ),
        (
            "a jail file setup did not write",
            &["--jails", "sshd"],
            |conf, _| std::fs::write(conf.join("jail.d/f2b-notify.local"), "[sshd]\nenabled = true\n").unwrap(),
            |conf, _| format!("{}/jail.d/f2b-notify.local exists and setup did not write it", conf.display()),
        ),
        (
            "no jail named",
            &[],
            |_, _| {},
            |_, _| "say which jails get the action: --jails J1,J2 or --all-jails (enabled jails here: sshd)".to_owned(),
        ),
        (
            "a jail that does not exist",
            &["--jails", "sshd,nosuch"],
            |_, _| {},
            |_, _| "no jail `nosuch` in Fail2Ban's config (enabled jails: sshd)".to_owned(),
        ),
        (
            "a jail whose action appends already",
            &["--jails", "sshd"],
            |conf, _| {
                let mut text = std::fs::read_to_string(conf.join("jail.local")).unwrap();
                text.push_str("action = %(known/action)s\n         dummy[actname=extra]\n");
                std::fs::write(conf.join("jail.local"), text).unwrap();
            },
            |conf, _| {
                format!(
                    "[sshd] action in {}/jail.local already appends to an earlier action with %(known/action)s",
                    conf.display()
                )
            },
        ),
        (
            "a link where the config goes",
            &["--jails", "sshd"],
            |_, dir| {
                std::fs::create_dir(dir.join("etc")).unwrap();
                std::os::unix::fs::symlink(dir.join("elsewhere.toml"), dir.join("etc/config.toml")).unwrap();
            },
            |_, dir| format!("refusing to write {}/etc/config.toml: it is a symbolic link", dir.display()),
        ),
        (
            "not Fail2Ban's directory",
            &["--jails", "sshd"],
            |conf, _| {
                std::fs::remove_file(conf.join("jail.conf"))
                    .and_then(|()| std::fs::remove_file(conf.join("jail.local")))
                    .unwrap()
            },
            |conf, _| format!("{} has no jail.conf or jail.local", conf.display()),
        ),
    ];
    for (what, args, spoil, want) in cases {
        let dir = Dir::new();
        let auth = dir.write("auth.log", "");
        let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, ""));
        spoil(&conf, dir.path());
        let before = snapshot(&conf);
        let etc_before = dir.path().join("etc").exists();
        let r = setup(&dir, &conf, args, &[]);
        assert_eq!(r.code, Some(2), "{what}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
        let want = want(&conf, dir.path());
        assert!(
            r.stderr.starts_with("f2b-notify: ") && r.stderr.contains(&want),
            "{what}: {want:?} not in {}",
            r.stderr
        );
        assert!(snapshot(&conf) == before, "{what}: the Fail2Ban directory changed");
        assert_eq!(dir.path().join("etc").exists(), etc_before, "{what}");
        assert!(!dir.path().join("elsewhere").exists() && !dir.path().join("elsewhere.toml").exists(), "{what}");
    }
}

/// When Fail2Ban's test passes before setup writes and fails after, setup takes back what it
/// wrote. (A stand-in `fail2ban-client` first on the PATH says so; the real one fails the same
/// way for configs setup itself cannot foresee.)
#[test]
fn what_fail2ban_rejects_is_taken_back() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let auth = dir.write("auth.log", "");
    let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, ""));
    let before = snapshot(&conf);
    let count = dir.path().join("tests-run");
    let client = dir.write(
        "bin/fail2ban-client",
        &format!(
            "#!/bin/sh\n# -t passes once (before setup writes), then fails; -d lists nothing.\ncase \"$*\" in *-t*)\n  if [ -e {c} ]; then echo 'ERROR   Failed during configuration: stand-in rejects jail sshd' >&2; exit 255; fi\n  touch {c}; echo 'OK: configuration test is successful';;\nesac\n",
            c = count.display()
        ),
    );
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", client.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("etc")).env("PATH", &path);
    c.arg("setup").arg("--fail2ban-dir").arg(&conf).args(["--jails", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert!(count.exists(), "the stand-in did not run");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "Fail2Ban's test of {} fails with setup's files, so they were removed again: Failed during configuration: stand-in rejects jail sshd",
            conf.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains(&format!("wrote {}/jail.d/f2b-notify.local", conf.display())), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("removed {}/jail.d/f2b-notify.local", conf.display())), "{}", r.stdout);
    assert!(snapshot(&conf) == before, "the Fail2Ban directory differs after the roll-back");
    assert!(!dir.path().join("etc").exists());

    // A second run that fails takes back only itself: the first run's files and record stay.
    std::fs::remove_file(&count).unwrap();
    let r = setup(&dir, &conf, &["--jails", "sshd"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let first = snapshot(&conf);
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("etc")).env("PATH", &path);
    c.arg("setup").arg("--fail2ban-dir").arg(&conf).arg("--all-jails");
    let r = run(c);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("put back {}/jail.d/f2b-notify.local (as it was before)", conf.display())),
        "{}",
        r.stdout
    );
    assert!(snapshot(&conf) == first, "the second run was not taken back exactly");
    assert!(dir.path().join("etc/config.toml").is_file());
}

/// Without its front end beside it, setup says what that costs; without fail2ban-client it
/// writes the files and says that Fail2Ban's own test was not run.
#[test]
fn setup_says_what_is_missing_around_it() {
    let dir = Dir::new();
    let auth = dir.write("auth.log", "");
    let conf = stock_fail2ban_dir(dir.path(), &jail_local(&auth, ""));
    let before = snapshot(&conf);
    let lone = dir.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(crate::util::bin(), lone.join("f2b-notify")).unwrap();
    let mut c = dir.cmd_of(&lone.join("f2b-notify"));
    c.env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("etc")).env("PATH", dir.path().join("no-bin"));
    c.arg("setup").arg("--fail2ban-dir").arg(&conf).args(["--jails", "sshd"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    for want in [
        format!("note: f2b-notify-enqueue is not installed beside f2b-notify: the action starts f2b-notify for every event, which holds Fail2Ban's action lock about twice as long: install it in {}\n", lone.display()),
        "note: fail2ban-client is not installed here: Fail2Ban's own test of its config was not run\n".to_owned(),
        format!("wrote {}/action.d/f2b-notify.conf (the action; bin = {}/f2b-notify)", conf.display(), lone.display()),
    ] {
        assert!(r.stdout.contains(&want), "{want:?} not in:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("jail sshd runs"), "{}", r.stdout);
    let r = setup(&dir, &conf, &["--undo"], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(snapshot(&conf) == before);
}
