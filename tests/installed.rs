//! The installed Debian package under the real Fail2Ban: `tests/package.sh` runs this test
//! binary (`cargo test --test installed`) after `dpkg -i`, and `cargo test` does not (it is a
//! `test = false` target). Nothing here is skipped: without the package it fails, naming what
//! is missing.
//!
//! A private `fail2ban-server` (its own config, socket and log in a temp dir, as in the
//! end-to-end test) runs the package's `/etc/fail2ban/action.d/f2b-notify.conf` unchanged:
//! its `bin` is `/usr/bin/f2b-notify`, so the installed front end spools each event and starts
//! the installed worker, which delivers to a loopback webhook stand-in; a file sink written by
//! the installed action gets the same events.

#[path = "util.rs"]
#[allow(unused_imports)] // the helpers of every integration test; this one uses a few
mod util;

use std::path::Path;
use std::time::Duration;

use util::{append_ssh_failures, json_lines, slack_ok, wait_for, Dir, Fail2Ban, StandIn, WorkerGuard};

const WAIT: Duration = Duration::from_secs(60);
const ACTION: &str = "/etc/fail2ban/action.d/f2b-notify.conf";

#[test]
fn the_installed_action_delivers_under_the_real_fail2ban() {
    for path in ["/usr/bin/f2b-notify", "/usr/bin/f2b-notify-enqueue", ACTION] {
        assert!(Path::new(path).is_file(), "{path} is not installed: install the package first (tests/package.sh)");
    }
    let action = std::fs::read_to_string(ACTION).unwrap();
    assert!(action.contains("\nbin = /usr/bin/f2b-notify\n"), "{action}");

    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let events = dir.path().join("events.jsonl");
    let config = dir.write(
        "notify.toml",
        &format!(
            r#"
host = "installed.example"
[delivery]
spool = "{spool}"
idle_exit = 60

[sinks.hook]
type = "slack-webhook"
url = "{url}"

[sinks.file]
type = "stdout"
format = "json"
path = "{events}"

[jails.sshd]
sinks = ["hook", "file"]
"#,
            spool = spool.display(),
            url = server.url("/services/T0/B0/X"),
            events = events.display(),
        ),
    );
    let _worker = WorkerGuard(spool.clone());
    // The installed program checks the config as an administrator would.
    let mut check = std::process::Command::new("/usr/bin/f2b-notify");
    check.arg("--config").arg(&config).arg("check").arg("--fail2ban-dir").arg(dir.path().join("f2b"));
    check.env("F2B_NOTIFY_SYSLOG", dir.path().join("syslog.sock"));

    let auth_log = dir.write("auth.log", "");
    // No `bin`: the action file's own, the installed binary.
    let jail_local = format!(
        "[DEFAULT]\nbackend = polling\nmaxretry = 2\nfindtime = 600\nbantime = 3600\n\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[args=\"--config {cfg}\"]\n",
        log = auth_log.display(),
        d = dir.path().display(),
        cfg = config.display(),
    );
    let syslog = dir.path().join("syslog.sock").display().to_string();
    let mut f2b = Fail2Ban::start_with_action(
        dir.path(),
        &jail_local,
        "INFO",
        &[("F2B_NOTIFY_SYSLOG", syslog.as_str())],
        Path::new(ACTION),
    );
    let checked = util::run(check);
    assert_eq!(checked.code, Some(0), "{}{}", checked.stdout, checked.stderr);
    assert!(checked.stdout.contains("/usr/bin/f2b-notify"), "{}", checked.stdout);

    append_ssh_failures(&auth_log, "198.51.100.7", "root", 3);
    f2b.client(&["set", "sshd", "banip", "2001:db8::77"]);
    for ip in ["198.51.100.7", "2001:db8::77"] {
        wait_for(&format!("the webhook stand-in to get the ban of {ip}"), WAIT, || {
            server.requests_to("/services/").iter().any(|r| r.body.contains(ip)).then_some(())
        });
    }
    let written = wait_for("the file sink to have start and both bans", WAIT, || {
        let lines = json_lines(&events);
        (lines.len() >= 3).then_some(lines)
    });
    let kinds: Vec<String> = written.iter().map(|e| format!("{} {}", e["kind"], e["id"])).collect();
    assert!(kinds.iter().any(|k| k.starts_with("\"start\"")), "{kinds:?}\n{}", f2b.log());
    assert!(kinds.contains(&"\"ban\" \"198.51.100.7\"".to_owned()), "{kinds:?}");
    // The worker the installed action started is the installed one.
    let pid = util::worker_pid(&spool).expect("a worker serving the spool");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(), Path::new("/usr/bin/f2b-notify"));
    f2b.stop();
}
