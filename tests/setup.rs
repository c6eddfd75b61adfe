//! First run and day two: `cargo run` from a fresh clone, and `f2b-notify setup` against a
//! private copy of Fail2Ban's config, with the real Fail2Ban banning through what it wrote.

use std::process::{Command, Stdio};

use crate::util::{run, Dir};

/// `cargo run -- notify …` in the repository runs the router (the package's `default-run`)
/// and, with no config anywhere, prints the message through the embedded default. Only in
/// the full build: `cargo run` builds the default features into the same target directory,
/// which must not replace the binary a minimal build's tests are running.
#[cfg(all(feature = "stdout", feature = "slack-webhook", feature = "slack-api", feature = "email"))]
#[test]
fn cargo_run_notify_prints_the_message() {
    let dir = Dir::new();
    let mut c = Command::new(env!("CARGO"));
    // As from a shell: without the variables Cargo sets for this test (ring's build script
    // runs again when CARGO_PKG_NAME or OUT_DIR differ, and half the tree would be rebuilt),
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
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--offline", "--"])
        .args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"])
        // No config directory: the embedded default (every event to stdout).
        .env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("no-etc"))
        .env("F2B_NOTIFY_RUN_DIR", dir.path().join("run"))
        .stdin(Stdio::null());
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n");
    assert_eq!(r.stderr, "");
}

/// `check` on one of config/examples/, its `/etc/f2b-notify/` and `/var/log/` moved into the
/// test's directory, with each secret file it names (created here, mode 0600) holding `secret`.
fn check_example(dir: &Dir, name: &str, secrets: &[(&str, &str)]) -> crate::util::Run {
    use std::os::unix::fs::PermissionsExt;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
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
    std::fs::create_dir(dir.path().join("log")).unwrap();
    let mut c = dir.cmd();
    c.arg("--config").arg(dir.path().join("stdout.toml"));
    c.args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"]);
    let r = run(c);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{}", r.stderr);
    let log = dir.path().join("log/f2b-notify.jsonl");
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
