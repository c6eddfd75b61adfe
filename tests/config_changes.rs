//! What administrators do to a running system, under the real Fail2Ban: edit the config
//! mid-storm, point two jails at two configs that share one spool, break the config for a
//! while. Nothing may be lost, judged by the wrong config or sent to the wrong place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{bin, run, slack_ok, wait_for, Dir, Fail2Ban, Reply, Request, StandIn, WorkerGuard};

const WAIT: Duration = Duration::from_secs(90);

/// A config at `path` with a Slack webhook sink per name (each at its own path of `server`)
/// and every jail routed to all of them.
fn write_config(path: &Path, spool: &Path, server: &StandIn, sinks: &[&str], extra: &str) {
    let mut text = format!("[delivery]\nspool = \"{}\"\nidle_exit = 5\n", spool.display());
    for name in sinks {
        text.push_str(&format!(
            "[sinks.{name}]\ntype = \"slack-webhook\"\nurl = \"{}\"\n{extra}",
            server.url(&format!("/services/T0/{name}/X"))
        ));
    }
    let list: Vec<String> = sinks.iter().map(|s| format!("\"{s}\"")).collect();
    text.push_str(&format!("[jails.\"*\"]\nsinks = [{}]\n", list.join(", ")));
    // As editors save: a new file renamed over the old one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A private Fail2Ban with one jail per (name, config), each with its own log.
fn fail2ban(dir: &Dir, jails: &[(&str, &Path)]) -> Fail2Ban {
    let mut local = String::from("[DEFAULT]\nbackend = polling\nbantime = 3600\n");
    for (name, config) in jails {
        let log = dir.write(&format!("{name}.log"), "");
        local.push_str(&format!(
            "\n[{name}]\nenabled = true\nfilter = sshd\nlogpath = {log}\naction = dummy[target=\"{d}/dummy-{name}\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
            log = log.display(),
            d = dir.path().display(),
            bin = bin().display(),
            cfg = config.display(),
        ));
    }
    Fail2Ban::start(dir.path(), &local)
}

fn addresses(net: u8, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.{net}.{}.{}", i / 256, i % 256)).collect()
}

fn ban(f2b: &Fail2Ban, jail: &str, ips: &[String]) {
    let mut args = vec!["set", jail, "banip"];
    args.extend(ips.iter().map(String::as_str));
    f2b.client(&args);
}

/// The addresses named in the requests to sink `name`.
fn delivered(server: &StandIn, name: &str, among: &[String]) -> Vec<String> {
    let bodies: String =
        server.requests_to(&format!("/services/T0/{name}/")).iter().map(|r: &Request| r.body.clone()).collect();
    among.iter().filter(|ip| bodies.contains(&format!("`{ip}`"))).cloned().collect()
}

fn wait_delivered(server: &StandIn, name: &str, ips: &[String]) {
    wait_for(&format!("sink `{name}` to name all {} addresses", ips.len()), WAIT, || {
        (delivered(server, name, ips).len() == ips.len()).then_some(())
    });
}

fn queue(config: &Path) -> String {
    let mut c = std::process::Command::new(bin());
    c.arg("-c").arg(config).arg("queue").arg("--all");
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.stdout
}

/// The pid `queue` shows for the running worker.
fn worker_pid(config: &Path) -> Option<String> {
    let out = queue(config);
    let at = out.find("worker running (pid ")? + "worker running (pid ".len();
    Some(out[at..].chars().take_while(char::is_ascii_digit).collect())
}

/// One jail, `sshd`, whose config (`notify.toml`) routes every event to `sinks` at a webhook
/// stand-in, under a private Fail2Ban. (Fields drop in order: Fail2Ban first, the directory
/// last.)
struct Bed {
    f2b: Fail2Ban,
    _worker: WorkerGuard,
    server: StandIn,
    spool: PathBuf,
    config: PathBuf,
    dir: Dir,
}

fn bed(sinks: &[&str]) -> Bed {
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let config = dir.path().join("notify.toml");
    write_config(&config, &spool, &server, sinks, "");
    let f2b = fail2ban(&dir, &[("sshd", &config)]);
    Bed { f2b, _worker: WorkerGuard(spool.clone()), server, spool, config, dir }
}

/// Two sets of config files, `a.toml` and `b.toml`, naming the same spool; both call their
/// sink `hook`, only the URL differs (b's posts to `/services/T0/other/`). `extra` is appended
/// to both (after their route).
fn two_sets(dir: &Dir, spool: &Path, server: &StandIn, extra: &str) -> (PathBuf, PathBuf) {
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    write_config(&a, spool, server, &["hook"], "");
    let text = std::fs::read_to_string(&a).unwrap() + extra;
    std::fs::write(&b, text.replace("/services/T0/hook/", "/services/T0/other/")).unwrap();
    std::fs::write(&a, text).unwrap();
    (a, b)
}

fn assert_nothing_dead(config: &Path) {
    let out = queue(config);
    assert!(!out.contains("dead `") && !out.lines().any(|l| l.contains("pending") && !l.contains(", 0 dead")), "{out}");
}

#[test]
fn a_sink_added_mid_storm_gets_every_event_after_the_edit_and_nothing_dies() {
    let b = bed(&["hook"]);
    let (f2b, server, spool, config) = (&b.f2b, &b.server, &b.spool, &b.config);
    let before = addresses(18, 200);
    ban(f2b, "sshd", &before);
    // Mid-storm: the worker is delivering with the old config.
    wait_for("the first message", WAIT, || (!server.requests().is_empty()).then_some(()));
    let pid = worker_pid(config).expect("a worker delivers");
    write_config(config, spool, server, &["hook", "sec"], "");
    let after = addresses(19, 100);
    ban(f2b, "sshd", &after);
    wait_delivered(server, "sec", &after);
    wait_delivered(server, "hook", &before);
    wait_delivered(server, "hook", &after);
    // The running worker read the config again; it did not take a restart.
    assert_eq!(worker_pid(config).as_deref(), Some(pid.as_str()), "{}", queue(config));
    let log = std::fs::read_to_string(spool.join("worker.log")).unwrap();
    assert!(log.contains("the config changed: read again"), "{log}");
    assert!(!log.contains("dead letters"), "{log}");
    assert_nothing_dead(config);
}

#[test]
fn two_configs_sharing_one_spool_each_deliver_their_own_events_to_their_own_sinks() {
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let (a, b) = two_sets(&dir, &spool, &server, "");
    let f2b = fail2ban(&dir, &[("sshd", &a), ("sshd-b", &b)]);
    let ips_a = addresses(18, 30);
    let ips_b = addresses(19, 30);
    for (a_half, b_half) in ips_a.chunks(10).zip(ips_b.chunks(10)) {
        ban(&f2b, "sshd", a_half);
        ban(&f2b, "sshd-b", b_half);
    }
    wait_delivered(&server, "hook", &ips_a);
    wait_delivered(&server, "other", &ips_b);
    assert_eq!(delivered(&server, "hook", &ips_b), Vec::<String>::new(), "b's events at a's sink");
    assert_eq!(delivered(&server, "other", &ips_a), Vec::<String>::new(), "a's events at b's sink");
    // The second set got its own spool inside the first.
    let sets: Vec<PathBuf> = std::fs::read_dir(spool.join("sets")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_nothing_dead(&a);
    assert_nothing_dead(&b);
}

#[test]
fn a_config_broken_for_a_while_then_fixed_loses_nothing() {
    let b = bed(&["hook"]);
    let (f2b, server, spool, config, dir) = (&b.f2b, &b.server, &b.spool, &b.config, &b.dir);
    let first = addresses(18, 10);
    ban(f2b, "sshd", &first);
    wait_delivered(server, "hook", &first);
    wait_for("the worker to exit when idle", WAIT, || worker_pid(config).is_none().then_some(()));
    // A typo: every event while it lasts is spooled unrouted, none dropped, none sent.
    write_config(config, spool, server, &["hook"], "colour = \"red\"\n");
    let broken = addresses(19, 10);
    ban(f2b, "sshd", &broken);
    wait_for("the bans to be spooled", WAIT, || {
        queue(config).contains("10 event(s) spooled while the config did not load").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(delivered(server, "hook", &broken).is_empty(), "sent with a config that does not load");
    let banned = std::fs::read_to_string(dir.path().join("dummy-sshd")).unwrap();
    assert_eq!(banned.lines().filter(|l| l.starts_with('+')).count(), 20, "{banned}");
    // Fixed: what waited goes out, and so does what comes next.
    write_config(config, spool, server, &["hook"], "");
    let fixed = addresses(20, 10);
    ban(f2b, "sshd", &fixed);
    wait_delivered(server, "hook", &broken);
    wait_delivered(server, "hook", &fixed);
    assert!(!queue(config).contains("spooled while the config did not load"));
    assert_nothing_dead(config);
    // Fail2Ban ran each action once: the broken config did not fail the action.
    assert!(!f2b.log().contains("Failed to execute ban"), "{}", f2b.log());
}

#[test]
fn a_broken_token_is_told_to_the_alert_sink_once_and_its_recovery_once_nothing_more() {
    let dir = Dir::new();
    // The Web API stand-in takes one token; any other is `invalid_token`, as Slack answers.
    let responder: crate::util::Responder = std::sync::Arc::new(|req: &Request, _| {
        if !req.path.starts_with("/api/") {
            Reply::new(200, "ok")
        } else if req.authorization.as_deref() == Some("Bearer xoxb-good") {
            Reply::new(200, r#"{"ok":true}"#)
        } else {
            Reply::new(200, r#"{"ok":false,"error":"invalid_token"}"#)
        }
    });
    let server = StandIn::start(responder);
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let config = dir.path().join("notify.toml");
    let write = |token: &str| {
        let text = format!(
            "[delivery]\nspool = \"{spool}\"\nidle_exit = 60\nalert = [\"ops\"]\nalert_after = 3\n[sinks.api]\ntype = \"slack-api\"\ntoken = \"{token}\"\nchannel = \"#sec\"\nurl = \"{api}\"\n[sinks.ops]\ntype = \"slack-webhook\"\nurl = \"{ops}\"\n[jails.\"*\"]\nsinks = [\"api\"]\n",
            spool = spool.display(),
            api = server.url("/api/"),
            ops = server.url("/services/T0/ops/X"),
        );
        let tmp = config.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &config).unwrap();
    };
    write("xoxb-bad");
    let f2b = fail2ban(&dir, &[("sshd", &config)]);
    let alerts = || server.requests_to("/services/T0/ops/");
    let broken = addresses(18, 3);
    ban(&f2b, "sshd", &broken);
    let first = wait_for("the alert", WAIT, || alerts().first().cloned());
    assert!(first.body.contains("sink `api`") && first.body.contains("invalid_token"), "{}", first.body);
    assert!(first.body.contains("moved to the dead letters"), "{}", first.body);
    assert!(!first.body.contains("xoxb-bad"), "the token is in the alert: {}", first.body);
    // Fixed: the next ban goes out, and the alert sink hears of the recovery.
    write("xoxb-good");
    std::thread::sleep(Duration::from_secs(3));
    let fixed = addresses(19, 1);
    ban(&f2b, "sshd", &fixed);
    wait_for("the recovery", WAIT, || (alerts().len() >= 2).then_some(()));
    // Two alert periods more: nothing else is said.
    std::thread::sleep(Duration::from_secs(7));
    let all = alerts();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[1].body.contains("sink `api` recovered"), "{}", all[1].body);
    let delivered: String = server.requests_to("/api/").iter().map(|r| r.body.clone()).collect();
    assert!(delivered.contains(&fixed[0]));
}

#[test]
fn the_fast_path_never_writes_into_a_spool_another_config_set_claimed() {
    // Two sets name one spool; both routes send bans only, so the first events (jail starts)
    // spool nothing. The fast path's plan must not point a set at a spool the other one
    // claims first.
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let (a, b) = two_sets(&dir, &spool, &server, "events = [\"ban\"]\n");
    // Plans are only written from config files older than two seconds.
    std::thread::sleep(Duration::from_millis(2100));
    let notify = |config: &Path, args: &[&str]| {
        let mut c = dir.enqueue_cmd();
        c.arg("--config").arg(config).args(args);
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    };
    notify(&a, &["notify", "start", "--jail=sshd"]);
    notify(&b, &["notify", "start", "--jail=web"]);
    notify(&b, &["notify", "ban", "--jail=web", "--ip=198.19.0.1"]);
    let ips_a = addresses(18, 3);
    for ip in &ips_a {
        notify(&a, &["notify", "ban", "--jail=sshd", &format!("--ip={ip}")]);
    }
    wait_delivered(&server, "hook", &ips_a);
    wait_delivered(&server, "other", &["198.19.0.1".to_owned()]);
    assert_eq!(delivered(&server, "other", &ips_a), Vec::<String>::new(), "a's bans at b's sink");
    assert_nothing_dead(&a);
    assert_nothing_dead(&b);
}

#[test]
fn a_syntax_error_in_one_file_still_spools_into_the_spool_another_file_names() {
    // The default directory: config.toml names the spool and the sink, conf.d/x.toml breaks
    // the TOML itself. The event must wait in config.toml's spool (where this set's worker and
    // `queue` look), and go out once the file is fixed.
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("conf.d")).unwrap();
    write_config(&etc.join("config.toml"), &spool, &server, &["hook"], "");
    let main = std::fs::read_to_string(etc.join("config.toml")).unwrap();
    std::fs::write(etc.join("config.toml"), format!("host = \"named.example\"\n{main}")).unwrap();
    let broken = etc.join("conf.d/x.toml");
    std::fs::write(&broken, "[delivery\nmax_age = \"2d\"\n").unwrap();
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", &etc).args(["notify", "ban", "--jail=sshd", "--ip=198.18.7.7"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("x.toml") && r.stderr.contains(&format!("waits in {}", spool.display())), "{}", r.stderr);
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", &etc).arg("queue");
    let r = run(c);
    assert!(r.stdout.contains("1 event(s) spooled while the config did not load"), "{}{}", r.stdout, r.stderr);
    std::fs::write(&broken, "[delivery]\nmax_age = \"2d\"\n").unwrap();
    wait_delivered(&server, "hook", &["198.18.7.7".to_owned()]);
    // With the host name the config gives, though the config did not load then.
    assert!(server.requests().iter().any(|r| r.body.contains("named.example")), "{:?}", server.requests());
}
