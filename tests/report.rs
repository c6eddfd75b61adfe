//! `f2b-notify report` against a database that the real Fail2Ban (Debian's package) fills: a
//! private `fail2ban-server` with its database in a file, two jails, bans from log lines and
//! from `fail2ban-client`, one address banned twice; the report counts exactly that, while the
//! server runs and writes, and after it stopped. Then `--to`: a stdout sink writing a file and
//! a Slack stand-in that fails.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{append_ssh_failures, run, wait_for, Dir, Fail2Ban};

const WAIT: Duration = Duration::from_secs(60);

/// `report --format json` with these arguments; panics unless it succeeded.
fn report_json(dir: &Dir, args: &[&str]) -> Value {
    let r = run({
        let mut c = dir.cmd();
        c.args(["report", "--format", "json"]).args(args);
        c
    });
    assert_eq!(r.code, Some(0), "report {args:?} failed: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

fn jail_lines(report: &Value) -> Value {
    report["jails"].clone()
}

/// Waits until Fail2Ban's observer has written the bans: it does so after the ban, on its
/// own thread.
fn wait_bans(dir: &Dir, db: &Path, bans: u64) -> Value {
    let db = db.display().to_string();
    wait_for(&format!("{bans} bans in Fail2Ban's database"), WAIT, || {
        let r = report_json(dir, &["--db", &db, "--since", "1h"]);
        (r["bans"] == bans).then_some(r)
    })
}

fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.18.{}.{}", i / 256, i % 256)).collect()
}

#[test]
fn counts_what_the_real_fail2ban_banned_while_it_runs_and_after() {
    let dir = Dir::new();
    let db = dir.path().join("fail2ban.sqlite3");
    // Fail2Ban::start writes a fail2ban.conf whose database is in memory; a fail2ban.local
    // beside it, as an administrator's, puts it in a file. `report` finds it there too.
    dir.write("f2b/fail2ban.local", &format!("[Definition]\ndbfile = {}\n", db.display()));
    let auth_log = dir.write("auth.log", "");
    let web_log = dir.write("web.log", "");
    // `web` bans for 2 s, counting repeat bans (bantime.increment), so that an address can be
    // banned again soon: `unbanip` would delete its bans from the database instead.
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
action = dummy[target="{d}/dummy-sshd"]

[web]
enabled = true
filter = sshd
logpath = {web}
bantime = 2
bantime.increment = true
action = dummy[target="{d}/dummy-web"]
"#,
        auth = auth_log.display(),
        web = web_log.display(),
        d = dir.path().display(),
    );
    let mut f2b = Fail2Ban::start(dir.path(), &jail_local);
    assert!(db.is_file(), "Fail2Ban did not create its database: {}", f2b.log());

    // sshd: one ban from log lines, two by hand (IPv4 and IPv6).
    append_ssh_failures(&auth_log, "203.0.113.7", "root", 3);
    f2b.client(&["set", "sshd", "banip", "203.0.113.8", "2001:db8::5"]);
    // web: 198.51.100.9 twice (banned again once its 2 s ban ended), and sshd's 203.0.113.7.
    f2b.client(&["set", "web", "banip", "198.51.100.9", "203.0.113.7"]);
    wait_bans(&dir, &db, 5);
    wait_for("web's bans to end", WAIT, || {
        f2b.client(&["status", "web"]).contains("Currently banned:\t0").then_some(())
    });
    f2b.client(&["set", "web", "banip", "198.51.100.9"]);
    // A ban taken back by hand is deleted from the database: the report cannot count it.
    f2b.client(&["set", "sshd", "banip", "192.0.2.50"]);
    wait_bans(&dir, &db, 7);
    f2b.client(&["set", "sshd", "unbanip", "192.0.2.50"]);

    let r = wait_bans(&dir, &db, 6);
    assert_eq!((r["bans"].clone(), r["addresses"].clone()), (json!(6), json!(4)), "{r:#}");
    // 198.51.100.9's second ban has Fail2Ban's bancount 2: a repeat offender.
    assert_eq!((r["new_addresses"].clone(), r["repeat_addresses"].clone()), (json!(3), json!(1)), "{r:#}");
    assert_eq!(
        jail_lines(&r),
        json!([{"jail": "sshd", "bans": 3, "addresses": 3}, {"jail": "web", "bans": 3, "addresses": 2}])
    );
    assert_eq!(
        r["top"],
        json!([
            {"ip": "198.51.100.9", "bans": 2, "jails": ["web"], "repeat": true},
            {"ip": "203.0.113.7", "bans": 2, "jails": ["sshd", "web"], "repeat": false},
            {"ip": "203.0.113.8", "bans": 1, "jails": ["sshd"], "repeat": false},
            {"ip": "2001:db8::5", "bans": 1, "jails": ["sshd"], "repeat": false},
        ])
    );
    assert_eq!(r["previous"]["bans"], 0);
    assert_eq!(r["change"], json!({"bans": 6, "bans_percent": null, "addresses": 4, "addresses_percent": null}));
    assert_eq!(r["notes"], json!([]), "an hour is within Fail2Ban's default dbpurgeage");
    assert_eq!(r["database"], db.display().to_string());

    // The database found through Fail2Ban's config, and the text form.
    let conf = dir.path().join("f2b");
    let conf = conf.to_str().unwrap();
    assert_eq!(report_json(&dir, &["--fail2ban-dir", conf, "--since", "1h"])["bans"], 6);
    let text = run({
        let mut c = dir.cmd();
        c.args(["report", "--fail2ban-dir", conf, "--since", "1h"]);
        c
    });
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    for line in [
        "6 bans of 4 addresses in the last 1h\n",
        "\n6 bans of 4 addresses: 3 new, 1 banned before\n",
        "\njail   bans  addresses\nsshd      3          3\nweb       3          2\n",
        "\n198.51.100.9       2  web (banned before)\n",
        "\n203.0.113.7        2  sshd, web\n",
    ] {
        assert!(text.stdout.contains(line), "no {line:?} in:\n{}", text.stdout);
    }

    // While Fail2Ban writes: 200 more bans, 10 per client call, and reports read meanwhile.
    let socket = f2b.socket.clone();
    let f2b_dir = f2b.dir.clone();
    let writer = std::thread::spawn(move || {
        for chunk in addresses(200).chunks(10) {
            let status = std::process::Command::new("fail2ban-client")
                .arg("-c")
                .arg(&f2b_dir)
                .arg("-s")
                .arg(&socket)
                .args(["set", "sshd", "banip"])
                .args(chunk)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("fail2ban-client");
            assert!(status.success());
        }
    });
    let db_arg = db.display().to_string();
    let (mut last, mut reads) = (6, 0);
    while !writer.is_finished() {
        let r = report_json(&dir, &["--db", &db_arg, "--since", "1h"]);
        let bans = r["bans"].as_u64().unwrap();
        assert!((last..=206).contains(&bans), "{bans} bans after {last}");
        let per_jail: u64 = r["jails"].as_array().unwrap().iter().map(|j| j["bans"].as_u64().unwrap()).sum();
        assert_eq!(per_jail, bans, "one read transaction: the jails add up");
        last = bans;
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 1, "the reports did not overlap Fail2Ban's writes");
    let r = wait_bans(&dir, &db, 206);
    assert_eq!((r["addresses"].clone(), r["new_addresses"].clone()), (json!(204), json!(203)));

    // Stopped: the database keeps every ban.
    f2b.stop();
    let r = report_json(&dir, &["--db", &db_arg, "--since", "1h"]);
    assert_eq!((r["bans"].clone(), r["addresses"].clone()), (json!(206), json!(204)));
    assert_eq!(jail_lines(&r)[0], json!({"jail": "sshd", "bans": 203, "addresses": 203}));
}

/// A private `fail2ban-server` with an `sshd` jail (a dummy firewall action) and its
/// database in a file of `dir`: the database's path and the server.
fn sshd_with_db(dir: &Dir) -> (std::path::PathBuf, Fail2Ban) {
    let db = dir.path().join("fail2ban.sqlite3");
    dir.write("f2b/fail2ban.local", &format!("[Definition]\ndbfile = {}\n", db.display()));
    let log = dir.write("auth.log", "");
    let jail_local = format!(
        "[sshd]\nenabled = true\nbackend = polling\nfilter = sshd\nlogpath = {}\naction = dummy[target=\"{}/dummy\"]\n",
        log.display(),
        dir.path().display()
    );
    (db, Fail2Ban::start(dir.path(), &jail_local))
}

/// A small Fail2Ban database for the `--to` tests, filled by the real server: one ban.
#[cfg(any(feature = "stdout", feature = "slack-webhook"))]
fn one_ban_db(dir: &Dir) -> std::path::PathBuf {
    let (db, f2b) = sshd_with_db(dir);
    f2b.client(&["set", "sshd", "banip", "192.0.2.1"]);
    wait_bans(dir, &db, 1);
    db
}

#[cfg(feature = "stdout")]
#[test]
fn to_sends_the_report_through_a_sink_now() {
    let dir = Dir::new();
    let db = one_ban_db(&dir);
    let out = dir.path().join("report.jsonl");
    let cfg = dir.write(
        "notify.toml",
        &format!(
            "host = \"e2e.example\"\n[sinks.file]\ntype = \"stdout\"\nformat = \"json\"\npath = \"{}\"\n",
            out.display()
        ),
    );
    let send = |extra: &[&str]| {
        run({
            let mut c = dir.cmd();
            c.arg("--config").arg(&cfg).args(["report", "--since", "1h", "--db"]).arg(&db).args(extra);
            c
        })
    };
    let r = send(&["--to", "file"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "report sent through sink `file` (stdout)\n");
    let lines = crate::util::json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["alert"], "Fail2Ban on e2e.example: 1 ban of 1 address in the last 1h");
    let text = lines[0]["text"].as_str().unwrap();
    assert!(text.contains("\n1 ban of 1 address: 1 new, 0 banned before\n"), "{text}");
    assert!(text.contains("\n192.0.2.1          1  sshd"), "{text}");
    assert_eq!(lines[0]["recovered"], false);
    // --format json sends the JSON.
    let r = send(&["--to", "file", "--format", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let sent: Value = serde_json::from_str(crate::util::json_lines(&out)[1]["text"].as_str().unwrap()).unwrap();
    assert_eq!((sent["bans"].clone(), sent["host"].clone()), (json!(1), json!("e2e.example")));
    // A sink that is not in the config: one line, exit 2, nothing read.
    let r = send(&["--to", "fil"]);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr, "f2b-notify: no sink named `fil` in the config (did you mean `file`?)\n");
    // The shipped service's command line is one `report` takes (its sink is the admin's to
    // name: `slack`, the starter config's, is not in this one).
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/f2b-notify-report.service"))
        .expect("the report service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/f2b-notify"));
    let words: Vec<&str> = words.collect();
    assert_eq!(words[..3], ["report", "--since", "24h"]);
    let r = run({
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(&words).arg("--db").arg(&db);
        c
    });
    assert_eq!((r.code, r.stderr.as_str()), (Some(2), "f2b-notify: no sink named `slack` in the config\n"));
}

#[cfg(feature = "slack-webhook")]
#[test]
fn to_reports_the_sinks_failure() {
    use crate::util::{Reply, StandIn};
    let dir = Dir::new();
    let db = one_ban_db(&dir);
    let slack = StandIn::start(std::sync::Arc::new(|_: &crate::util::Request, _| Reply::new(500, "boom")));
    let cfg = dir.write(
        "notify.toml",
        &format!("[sinks.team]\ntype = \"slack-webhook\"\nurl = \"{}\"\n", slack.url("/services/T0/B0/X")),
    );
    let r = run({
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(["report", "--since", "1h", "--to", "team", "--db"]).arg(&db);
        c
    });
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.starts_with("f2b-notify: the report was not sent: sink `team` (slack-webhook): "), "{}", r.stderr);
    let requests = slack.requests_to("/services/T0/B0/X");
    assert_eq!(requests.len(), 1, "sent once, never retried through the spool");
    assert!(requests[0].body.contains("1 ban of 1 address in the last 1h"), "{}", requests[0].body);
}

/// Countries and networks come from `[enrich]`'s databases (here written by the test), read
/// from the config even without `--to`; DNS is never asked for a report.
#[test]
fn countries_and_networks_from_the_enrich_databases() {
    let dir = Dir::new();
    let (db, f2b) = sshd_with_db(&dir);
    for ip in ["198.51.100.1", "198.51.100.2", "203.0.113.5", "192.0.2.9"] {
        f2b.client(&["set", "sshd", "banip", ip]);
    }
    wait_bans(&dir, &db, 4);
    let city = f2b_notify_standins::mmdb::city(dir.path());
    let asn = f2b_notify_standins::mmdb::asn(dir.path());
    let cfg = dir.write(
        "notify.toml",
        &format!(
            "[enrich]\ngeoip = \"{}\"\nasn = \"{}\"\ndns = true\ndns_server = \"127.0.0.1:9\"\n",
            city.display(),
            asn.display()
        ),
    );
    let r = run({
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(["report", "--format", "json", "--since", "1h", "--db"]).arg(&db);
        c
    });
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        report["countries"],
        json!([
            {"name": "US United States", "addresses": 2, "bans": 2},
            {"name": "JP Japan", "addresses": 1, "bans": 1},
            {"name": "unknown", "addresses": 1, "bans": 1},
        ])
    );
    assert_eq!(report["networks"][0], json!({"name": "AS64500 Example Net", "addresses": 2, "bans": 2}));
    // The text form lists them too.
    let r = run({
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(["report", "--since", "1h", "--db"]).arg(&db);
        c
    });
    assert!(r.stdout.contains("US United States"), "{}", r.stdout);
    assert!(r.stdout.contains("AS64500 Example Net"), "{}", r.stdout);
}
