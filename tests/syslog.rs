//! The syslog sink in the built binary: a route to the system log goes through the spool and
//! the real worker (and keeps the action's fast path), arrives as one datagram per event on a
//! stand-in socket in the test's directory, hostile text flattened; a missing socket keeps the
//! event waiting in `queue` until a system log listens there; `check` and `test` know the sink.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::util::{run, wait_for, Dir, Run, Syslog, WorkerGuard};

const WAIT: Duration = Duration::from_secs(30);

/// f2b-notify writes no plan from a config file younger than this (see crates/router/plan.rs).
const SETTLE: Duration = Duration::from_millis(2100);

/// A forged record in a user name and in log lines: CR/LF, a PRI and an RFC 5424 header,
/// escape, tab, DEL and C1 characters, and what structured data would have to escape. (A NUL
/// cannot be on a command line; the crate's unit tests send one.)
const FORGED: &str = "<13>1 2020-01-01T00:00:00Z evil forged - - - FAKE";

fn hostile_user() -> String {
    format!("root\r\n{FORGED}\u{1b}[31m\t\u{7f}\u{85}]\"\\")
}

fn hostile_matches() -> String {
    format!("Nov 25 sshd: Failed password\n{FORGED}\rsecond line\u{2028}third")
}

/// A queue-mode config: every jail to two syslog sinks on `socket`, `log` in RFC 5424 with
/// structured data and `local` in the default RFC 3164 form with facility local4.
fn config(dir: &Dir, spool: &Path, socket: &Path) -> PathBuf {
    dir.write(
        "notify.toml",
        &format!(
            r#"
host = "syslog.example"
[delivery]
spool = "{spool}"
idle_exit = 3
retry_max = 2

[sinks.log]
type = "syslog"
socket = "{socket}"
format = "rfc5424"
sd_id = "fail2ban@32473"

[sinks.local]
type = "syslog"
socket = "{socket}"
facility = "local4"
tag = "fail2ban-bans"
[sinks.local.templates]
ban = "{{{{ jail }}}} {{{{ id }}}} user={{{{ user }}}} matches={{{{ matches }}}}"

[jails."*"]
sinks = ["log", "local"]
"#,
            spool = spool.display(),
            socket = socket.display()
        ),
    )
}

/// The stand-in system log the sinks write to: `log/syslog.sock` in the test's directory
/// (apart from `F2B_NOTIFY_SYSLOG`'s, where f2b-notify's own messages would go).
fn sink_socket(dir: &Dir) -> PathBuf {
    let d = dir.path().join("log");
    std::fs::create_dir_all(&d).unwrap();
    d.join(crate::util::SYSLOG_SOCKET)
}

/// Waits for `n` datagrams.
fn receive(log: &Syslog, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    wait_for(&format!("{n} datagram(s)"), WAIT, || {
        got.extend(log.messages());
        (got.len() >= n).then_some(())
    });
    assert_eq!(got.len(), n, "{got:?}");
    got
}

/// `notify` with `args`, started so that its PID is known.
fn notify(dir: &Dir, program: &Path, config: &Path, args: &[&str]) -> (u32, Run) {
    let mut c = dir.cmd_of(program);
    c.arg("--config").arg(config).arg("notify").args(args).env("F2B_NOTIFY_LOG", "debug");
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run notify");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (pid, Run { code: out.status.code(), stdout: text(out.stdout), stderr: text(out.stderr) })
}

fn queue(dir: &Dir, config: &Path) -> String {
    let mut c = dir.cmd();
    c.arg("--config").arg(config).arg("queue");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.stdout
}

/// The PID in `<PRI>TAG[PID]: …`.
fn rfc3164_pid(datagram: &str) -> u32 {
    let open = datagram.find('[').unwrap();
    let close = datagram.find("]: ").unwrap();
    datagram[open + 1..close].parse().unwrap()
}

#[test]
fn a_syslog_route_goes_through_the_spool_and_the_worker_one_datagram_per_event() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let socket = sink_socket(&dir);
    let log = Syslog::start(socket.parent().unwrap());
    let cfg = config(&dir, &spool, &socket);
    let _worker = WorkerGuard(spool.clone());
    // Old enough for a plan, so that the second event can take the fast path.
    std::thread::sleep(SETTLE);
    let (user, matches) = (hostile_user(), hostile_matches());
    let (notify_pid, r) = notify(
        &dir,
        &crate::util::bin(),
        &cfg,
        &[
            "ban",
            "--jail=sshd",
            "--ip=203.0.113.7",
            "--failures=5",
            "--time=1700000000.25",
            &format!("--user={user}"),
            &format!("--matches={matches}"),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "", "the action writes nothing itself");
    let mut got = receive(&log, 2);
    got.sort();
    let worker: u32 = std::fs::read_to_string(spool.join("worker.lock")).unwrap().trim().parse().unwrap();
    assert_ne!(worker, notify_pid, "sent by the worker, not by the action");
    for d in &got {
        assert!(!d.chars().any(|c| c.is_control() || c == '\u{2028}'), "{d:?}");
        // One record: the forged PRIs are words inside the line.
        assert!(d.match_indices("<13>").all(|(i, _)| d[..i].ends_with(' ')), "{d}");
    }
    // local4.notice, RFC 3164, the worker's PID, the template's text flattened.
    let local = &got[0];
    assert!(
        local.starts_with(&format!("<165>fail2ban-bans[{worker}]: sshd 203.0.113.7 user=root  {FORGED} ")),
        "{local}"
    );
    assert_eq!(rfc3164_pid(local), worker);
    assert!(local.ends_with(&format!("matches=Nov 25 sshd: Failed password {FORGED} second line third")), "{local}");
    // authpriv.notice, RFC 5424 with the ban's own time, the host, the worker's PID and the
    // event kind, then the structured data with every value escaped, then the message.
    let rfc5424 = &got[1];
    let head = format!("<85>1 2023-11-14T22:13:20.250000Z syslog.example f2b-notify {worker} ban ");
    assert!(rfc5424.starts_with(&head), "{rfc5424}");
    let sd = format!(
        "[fail2ban@32473 jail=\"sshd\" id=\"203.0.113.7\" failures=\"5\" user=\"root  {FORGED} [31m   \\]\\\"\\\\\"] "
    );
    assert_eq!(&rfc5424[head.len()..head.len() + sd.len()], sd, "{rfc5424}");
    assert_eq!(&rfc5424[head.len() + sd.len()..], "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");

    // The route is spooled, not written inline: the next event takes the action's fast path.
    let (_, r) = notify(&dir, &crate::util::enqueue_bin(), &cfg, &["ban", "--jail=sshd", "--ip=192.0.2.2"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("(fast path)"), "{}", r.stderr);
    let got = receive(&log, 2);
    assert!(got.iter().all(|d| d.contains("192.0.2.2")), "{got:?}");
    delivered_all(&dir, &cfg);
}

/// Waits until neither sink has anything pending (the worker takes an event off its queue
/// just after the send) and checks that nothing is dead.
fn delivered_all(dir: &Dir, cfg: &Path) {
    let done = |out: &String| out.contains("sink `local`: 0 pending") && out.contains("sink `log`: 0 pending");
    let out = wait_for("both queues to empty", WAIT, || Some(queue(dir, cfg)).filter(done));
    assert!(out.contains("sink `local`: 0 pending, 0 dead") && out.contains("sink `log`: 0 pending, 0 dead"), "{out}");
}

#[test]
fn a_missing_socket_keeps_the_event_waiting_until_a_system_log_listens() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let socket = sink_socket(&dir);
    let cfg = config(&dir, &spool, &socket);
    let _worker = WorkerGuard(spool.clone());
    let (_, r) = notify(&dir, &crate::util::bin(), &cfg, &["ban", "--jail=sshd", "--ip=203.0.113.9"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Transient: the event waits in each sink's queue, with the reason, and is not dead.
    let out = wait_for("both sinks to have failed once", WAIT, || {
        let out = queue(&dir, &cfg);
        (out.matches("last error: the system log socket").count() == 2).then_some(out)
    });
    for sink in ["local", "log"] {
        let line = out.lines().find(|l| l.starts_with(&format!("sink `{sink}`"))).unwrap_or_else(|| panic!("{out}"));
        assert!(line.starts_with(&format!("sink `{sink}`: 1 pending")) && line.contains("0 dead"), "{out}");
        assert!(line.contains(&format!("{} does not exist (is the system log running?)", socket.display())), "{out}");
    }
    // The system log comes (back): the worker's next try delivers, once per sink.
    let log = Syslog::start(socket.parent().unwrap());
    let got = receive(&log, 2);
    assert!(got.iter().all(|d| d.contains("203.0.113.9")), "{got:?}");
    delivered_all(&dir, &cfg);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(log.messages(), Vec::<String>::new(), "delivered once");
}

#[test]
fn check_and_test_know_the_syslog_sink() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let socket = sink_socket(&dir);
    let cfg = config(&dir, &spool, &socket);
    let cmd = |args: &[&str]| {
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(args);
        run(c)
    };
    // No system log yet: `check` says so, `test` fails as a temporary problem.
    let r = cmd(&["check"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("  local  syslog\n") && r.stdout.contains("  log    syslog\n"), "{}", r.stdout);
    let missing =
        format!("sink `log`: `socket` {} does not exist now: events wait for a system log there", socket.display());
    assert!(r.stdout.contains(&missing), "{}", r.stdout);
    let r = cmd(&["test", "--jail", "sshd"]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stdout.contains("sink `log` (syslog): FAILED: the system log socket"), "{}", r.stdout);
    assert!(r.stdout.contains("(temporary: a later try may succeed)"), "{}", r.stdout);
    // With one: no warning; `test --dry-run` shows the datagrams and sends nothing; `test`
    // delivers a sample to both sinks now.
    let log = Syslog::start(socket.parent().unwrap());
    let r = cmd(&["check"]);
    assert!(!r.stdout.contains("does not exist"), "{}", r.stdout);
    let r = cmd(&["test", "--jail", "sshd", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let to = format!("a datagram to {} (", socket.display());
    assert!(r.stdout.contains(&format!("sink `log` (syslog): {to}")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("sink `local` (syslog): {to}")), "{}", r.stdout);
    assert!(
        r.stdout.contains(" f2b-notify ") && r.stdout.contains(" ban [fail2ban@32473 jail=\"sshd\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(": sshd 192.0.2.1 user= matches=f2b-notify test: sample event"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.messages(), Vec::<String>::new(), "a dry run sends nothing");
    let r = cmd(&["test", "--jail", "sshd"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(
        r.stdout.contains("sink `log` (syslog): ok") && r.stdout.contains("sink `local` (syslog): ok"),
        "{}",
        r.stdout
    );
    let got = receive(&log, 2);
    assert!(got.iter().all(|d| d.contains("192.0.2.1")), "{got:?}");

    // A mistake in the sink's keys is one line naming the file, the sink and the key.
    for (bad, key) in [
        ("tag = \"f2b notify\"", "`tag` `f2b notify` must be"),
        ("facility = \"kern\"", "kern"),
        ("socket = \"dev/log\"", "`socket` `dev/log` must be an absolute path"),
        ("sd_id = \"fail2ban\"", "`sd_id` `fail2ban` must be NAME@PEN"),
        ("timeout = 60", "`timeout` = 60"),
        ("colour = \"red\"", "colour"),
    ] {
        let bad_cfg = dir.write("bad.toml", &format!("[sinks.log]\ntype = \"syslog\"\n{bad}\n"));
        let mut c = dir.cmd();
        c.arg("--config").arg(&bad_cfg).arg("check");
        let r = run(c);
        assert_eq!(r.code, Some(2), "{bad}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {:?}", r.stderr);
        assert!(
            r.stderr.contains("bad.toml") && r.stderr.contains("sinks.log") && r.stderr.contains(key),
            "{bad}: {}",
            r.stderr
        );
    }
    // Structured data without RFC 5424 is refused when the sink is built.
    let bad_cfg = dir.write("bad.toml", "[sinks.log]\ntype = \"syslog\"\nsd_id = \"a@1\"\n");
    let mut c = dir.cmd();
    c.arg("--config").arg(&bad_cfg).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("sink `log`: `sd_id` needs `format = \"rfc5424\"`"), "{}", r.stderr);
}

/// config/examples/syslog.toml, its two sockets moved to stand-ins in the test's directory:
/// `check` is clean, and `test` sends sshd's sample ban to both, each in its own form.
#[test]
fn the_example_checks_and_its_sinks_deliver() {
    let dir = Dir::new();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/syslog.toml")).unwrap();
    let (plain, structured) = (dir.path().join("plain"), dir.path().join("rfc5424"));
    for d in [&plain, &structured] {
        std::fs::create_dir(d).unwrap();
    }
    let (plain_log, structured_log) = (Syslog::start(&plain), Syslog::start(&structured));
    let text = example
        .replace("\"/dev/log\"", &format!("{:?}", plain_log.path))
        .replace("\"/run/rsyslog/rfc5424.sock\"", &format!("{:?}", structured_log.path));
    let cfg = dir.write("syslog.toml", &text);
    let cmd = |args: &[&str]| {
        let mut c = dir.cmd();
        c.arg("--config").arg(&cfg).args(args);
        run(c)
    };
    let r = cmd(&["check"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let section = |name: &str| -> Vec<String> {
        let lines = r.stdout.lines().skip_while(|l| !l.starts_with(name)).skip(1);
        lines.take_while(|l| l.starts_with("  ")).map(|l| l.trim().to_owned()).collect()
    };
    assert_eq!(section("sinks:"), ["log   syslog", "siem  syslog"], "{}", r.stdout);
    assert_eq!(
        section("routes"),
        [
            "sshd  -> log, siem  [events: ban, unban; restored bans: quiet]",
            "*     -> log  [events: start, stop, ban, unban; restored bans: quiet]"
        ],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warnings:"), "{}", r.stdout);
    let r = cmd(&["test", "--jail", "sshd"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let plain = receive(&plain_log, 1);
    assert!(plain[0].starts_with("<85>f2b-notify["), "authpriv.notice: {}", plain[0]);
    assert!(plain[0].ends_with("]: Fail2Ban (sshd) banned IP 192.0.2.1 for 3 failure(s)"), "{}", plain[0]);
    let structured = receive(&structured_log, 1);
    assert!(structured[0].starts_with("<165>1 "), "local4.notice, RFC 5424: {}", structured[0]);
    assert!(
        structured[0].contains(
            " ban [fail2ban@32473 jail=\"sshd\" id=\"192.0.2.1\" failures=\"3\" bantime=\"600\"] Fail2Ban (sshd) banned"
        ),
        "{}",
        structured[0]
    );
}
