//! End to end with the real Alertmanager (Debian's `prometheus-alertmanager`) and the real
//! Fail2Ban: a three-node Alertmanager cluster on loopback (gossip on 127.0.0.1 ports, each
//! node its own storage) routes to a loopback webhook receiver grouping by `ip`; three private
//! `fail2ban-server`s stand for three hosts (each f2b-notify config names its own `host`) and
//! post every ban to all three nodes through the `alertmanager` sink, in queue mode.
//!
//! What a fleet gets: the same address banned on three hosts is one notification naming the
//! three; their unbans one resolved notification; a node down before the storm loses nothing;
//! the whole cluster down for 20 s loses nothing either (the spool holds the alerts, the worker
//! retries, the cluster notifies once it is back).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, run, wait_for, Dir, Fail2Ban, Reply, Request, StandIn, WorkerGuard};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const WAIT: Duration = Duration::from_secs(30);
/// How long a cluster may take to form: gossip settles in seconds, but a loaded CI machine
/// (the suite runs six tests at once on two cores) has been seen to need more than 30 s.
const FORM_WAIT: Duration = Duration::from_secs(90);
/// One cluster at a time: three Alertmanagers with debug logs per test, three tests at once,
/// starved each other of CPU on two cores and failed to form in time.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());
const HOSTS: [&str; 3] = ["web1.example", "web2.example", "web3.example"];
/// How long a node waits per position in the cluster before it sends what no other node sent
/// (`--cluster.peer-timeout`), and the route's grouping times.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);
const GROUP_WAIT: Duration = Duration::from_secs(3);
const GROUP_INTERVAL: Duration = Duration::from_secs(3);

/// GET over HTTP/1.0 (no chunked answer to decode): the body, if the server answered 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(sock, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    sock.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    // Go answers an HTTP/1.0 request as HTTP/1.0.
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
}

/// One Alertmanager process of the cluster, on its own web and gossip ports and storage.
struct Node {
    web: u16,
    gossip: u16,
    storage: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three Alertmanagers gossiping on loopback, and the webhook receiver they notify. Every
/// process is stopped by its PID when the test ends, however it ends.
struct Cluster {
    nodes: Vec<Node>,
    config: PathBuf,
    receiver: StandIn,
    /// Held for the cluster's life (see [`ONE_CLUSTER`]); a test that panicked with it is
    /// no reason to fail the next one.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    fn new(dir: &Path) -> Self {
        let turn = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "prometheus-alertmanager is not installed: the README's test command installs it (apt-get install -y prometheus-alertmanager)"
        );
        let receiver = StandIn::start(Arc::new(|_: &Request, _| Reply::new(200, "")));
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [ip]\n  group_wait: {}s\n  group_interval: {}s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
                GROUP_WAIT.as_secs(),
                GROUP_INTERVAL.as_secs(),
                receiver.url("/hook")
            ),
        )
        .expect("alertmanager.yml");
        let nodes = (0..3)
            .map(|i| Node {
                web: StandIn::reserve_port(),
                gossip: StandIn::reserve_port(),
                storage: dir.join(format!("am{i}")),
                log: dir.join(format!("am{i}.log")),
                child: None,
            })
            .collect();
        Self { nodes, config, receiver, _turn: turn }
    }

    /// The base URLs, for the sinks.
    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("http://127.0.0.1:{}", n.web)).collect()
    }

    fn start(&mut self, i: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("--cluster.peer=127.0.0.1:{}", n.gossip))
            .collect();
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.storage).expect("storage dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log");
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.path={}", node.storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", node.web))
            .arg(format!("--cluster.listen-address=127.0.0.1:{}", node.gossip))
            .args(peers)
            .arg(format!("--cluster.peer-timeout={}s", PEER_TIMEOUT.as_secs()))
            .args(["--cluster.gossip-interval=50ms", "--cluster.pushpull-interval=1s"])
            .args(["--cluster.probe-interval=500ms", "--cluster.probe-timeout=300ms"])
            .args(["--cluster.reconnect-interval=1s", "--cluster.settle-timeout=10s"])
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        node.child = Some(child);
    }

    fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
        self.wait_ready(&[0, 1, 2]);
    }

    /// Waits until each of `nodes` answers, has settled and sees exactly those nodes.
    fn wait_ready(&self, nodes: &[usize]) {
        let formed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.wait_formed(nodes)));
        if formed.is_err() {
            // Say why: each node's last log lines.
            for &i in nodes {
                let log = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                eprintln!(
                    "--- Alertmanager node {i} (web {}, gossip {}):\n{}",
                    self.nodes[i].web,
                    self.nodes[i].gossip,
                    tail.join("\n")
                );
            }
            panic!("the Alertmanager cluster did not form within {} s", FORM_WAIT.as_secs());
        }
    }

    fn wait_formed(&self, nodes: &[usize]) {
        wait_for("the Alertmanager cluster to form", FORM_WAIT, || {
            nodes
                .iter()
                .all(|&i| {
                    let Some(status) = http_get(self.nodes[i].web, "/api/v2/status") else { return false };
                    let status: Value = serde_json::from_str(&status).unwrap_or_default();
                    status["cluster"]["status"] == "ready"
                        && status["cluster"]["peers"].as_array().is_some_and(|p| p.len() == nodes.len())
                })
                .then_some(())
        });
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The alerts node `i` holds for `ip`.
    fn alerts(&self, i: usize, ip: &str) -> Vec<Value> {
        let body = http_get(self.nodes[i].web, "/api/v2/alerts").unwrap_or_default();
        let all: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        all.into_iter().filter(|a| a["labels"]["ip"] == ip).collect()
    }

    /// The webhook notifications so far, as Alertmanager posted them.
    fn notifications(&self) -> Vec<Value> {
        self.receiver.requests_to("/hook").iter().map(Request::json).collect()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.log.display(), std::fs::read_to_string(&n.log).unwrap_or_default()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// One Fail2Ban host: its own server, f2b-notify config (its `host`) and spool.
struct Host {
    f2b: Fail2Ban,
    config: PathBuf,
    spool: PathBuf,
    _worker: WorkerGuard,
}

fn host(dir: &Path, name: &str, urls: &[String], sink_extra: &str) -> Host {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("host dir");
    let spool = dir.join("spool");
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let config = dir.join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"{name}\"\n[delivery]\nspool = \"{spool}\"\nidle_exit = 120\nretry_max = 0.5\n\n[sinks.am]\ntype = \"alertmanager\"\nurls = [{urls}]\ntimeout = 2\nlabels = {{ fleet = \"e2e\" }}\n{sink_extra}\n[jails.\"*\"]\nsinks = [\"am\"]\n",
            spool = spool.display(),
            urls = urls.join(", ")
        ),
    )
    .expect("notify.toml");
    let log = dir.join("auth.log");
    std::fs::write(&log, "").expect("auth.log");
    let jail_local = format!(
        "[DEFAULT]\nbackend = polling\nmaxretry = 2\nfindtime = 600\nbantime = 3600\n\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = log.display(),
        d = dir.display(),
        bin = bin().display(),
        cfg = config.display(),
    );
    let worker = WorkerGuard(spool.clone());
    let f2b = Fail2Ban::start(&dir, &jail_local);
    Host { f2b, config, spool, _worker: worker }
}

/// The three hosts, started at once; `sink_extra` is more of the sink's config.
fn hosts(dir: &Path, urls: &[String], sink_extra: &str) -> Vec<Host> {
    std::thread::scope(|s| {
        let started: Vec<_> = HOSTS.iter().map(|name| s.spawn(move || host(dir, name, urls, sink_extra))).collect();
        started.into_iter().map(|h| h.join().expect("a host did not start")).collect()
    })
}

/// Runs `fail2ban-client set sshd ARGS…` on every host at once, as when one attacker hits them.
fn on_every_host(hosts: &[Host], args: &[&str]) {
    std::thread::scope(|s| {
        for h in hosts {
            s.spawn(move || {
                let mut all = vec!["set", "sshd"];
                all.extend_from_slice(args);
                h.f2b.client(&all);
            });
        }
    });
}

/// The hosts a notification's alerts name, sorted, each with its status.
fn named(notification: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = notification["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| {
                    (
                        a["labels"]["host"].as_str().unwrap_or("?").to_owned(),
                        a["status"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn all_three(status: &str) -> Vec<(String, String)> {
    HOSTS.iter().map(|h| (h.to_string(), status.to_owned())).collect()
}

/// How long after one notification another would have come if the cluster were going to send
/// a second: a group interval, the last node's wait for its turn, and a margin.
fn quiet_period() -> Duration {
    GROUP_INTERVAL + PEER_TIMEOUT * 2 + Duration::from_secs(2)
}

/// Waits for the first notification whose status is `status`, then for the quiet period.
fn settle_on(cluster: &Cluster, status: &str, what: &str) -> Vec<Value> {
    wait_for(what, WAIT, || cluster.notifications().iter().any(|n| n["status"] == status).then_some(()));
    std::thread::sleep(quiet_period());
    cluster.notifications()
}

#[test]
fn three_hosts_ban_one_address_one_notification_then_one_resolved() {
    let started = Instant::now();
    let dir = Dir::new();
    let mut cluster = Cluster::new(dir.path());
    cluster.start_all();
    let hosts = hosts(dir.path(), &cluster.urls(), "");
    let ip = "203.0.113.50";

    on_every_host(&hosts, &["banip", ip]);
    let firing = settle_on(&cluster, "firing", "the grouped notification");
    assert_eq!(
        firing.len(),
        1,
        "one notification for three hosts, not {}: {firing:#?}\n{}",
        firing.len(),
        cluster.logs()
    );
    let n = &firing[0];
    assert_eq!(n["status"], "firing");
    assert_eq!(n["groupLabels"], serde_json::json!({ "ip": ip }));
    assert_eq!(named(n), all_three("firing"), "{n:#}");
    assert_eq!(n["commonLabels"]["alertname"], "Fail2BanBan");
    assert_eq!(n["commonLabels"]["fleet"], "e2e");
    assert_eq!(n["commonLabels"]["jail"], "sshd");
    let summaries: Vec<&str> =
        n["alerts"].as_array().unwrap().iter().filter_map(|a| a["annotations"]["summary"].as_str()).collect();
    assert!(summaries.iter().all(|s| s.starts_with(&format!("Fail2Ban (sshd) banned IP {ip}"))), "{summaries:?}");
    // Every node has every host's alert (each host posted to all three).
    for i in 0..3 {
        assert_eq!(cluster.alerts(i, ip).len(), 3, "node {i}");
    }

    on_every_host(&hosts, &["unbanip", ip]);
    let all = settle_on(&cluster, "resolved", "the resolved notification");
    let resolved: Vec<&Value> = all.iter().filter(|n| n["status"] == "resolved").collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
    assert_eq!(named(resolved[0]), all_three("resolved"), "{:#}", resolved[0]);
    // Alertmanager flushes a group every group_interval: unbans that straddle a flush give one
    // notification of the group still firing with some alerts resolved before the resolved
    // one. Nothing else: no second firing notification for the same ban.
    for n in all.iter().skip(1).filter(|n| n["status"] != "resolved") {
        assert!(named(n).iter().any(|(_, s)| s == "resolved"), "a repeated firing notification: {n:#}");
    }
    eprintln!("three hosts, one notification: {:.1} s", started.elapsed().as_secs_f64());
}

/// `f2b-notify queue` on a host.
fn queue(h: &Host) -> String {
    let d = Dir::new();
    let mut c = d.cmd();
    c.arg("--config").arg(&h.config).arg("queue");
    run(c).stdout
}

#[test]
fn a_node_killed_before_the_storm_loses_nothing() {
    let started = Instant::now();
    let dir = Dir::new();
    let mut cluster = Cluster::new(dir.path());
    cluster.start_all();
    // The dead node counts as down after 5 s of failing (60 s by default).
    let hosts = hosts(dir.path(), &cluster.urls(), "down_after = 5\n");
    cluster.kill(0);
    // The two others see it gone (so each knows its turn in the cluster).
    cluster.wait_ready(&[1, 2]);
    let ip = "203.0.113.60";

    on_every_host(&hosts, &["banip", ip]);
    let firing = settle_on(&cluster, "firing", "the notification from the surviving nodes");
    assert_eq!(firing.len(), 1, "{firing:#?}\n{}", cluster.logs());
    assert_eq!(named(&firing[0]), all_three("firing"));
    for i in [1, 2] {
        assert_eq!(cluster.alerts(i, ip).len(), 3, "node {i}");
    }
    // Each host posted its alert again, every second, while the node might come back; then
    // counted it down, delivered, and kept the alert for it.
    let dead = &cluster.urls()[0];
    for h in &hosts {
        wait_for("the ban delivered without the dead node", WAIT, || {
            queue(h).contains("sink `am`: 0 pending").then_some(())
        });
        let log = std::fs::read_to_string(h.spool.join("worker.log")).unwrap_or_default();
        assert!(
            log.contains(&format!("sink `am`: 2 of 3 Alertmanagers took the alerts; posting them again until the others do too (for up to 5 s while a node fails): {dead}: cannot connect")),
            "{log}"
        );
        assert!(
            log.contains(&format!("sink `am`: Alertmanager {dead} is down (cannot connect"))
                && log.contains("1 alert(s) another took are kept for it"),
            "{log}"
        );
    }
    // Posting again changed nothing: still the one notification.
    assert_eq!(cluster.notifications().len(), 1, "{:#?}", cluster.notifications());
    eprintln!("a node down: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn the_whole_cluster_down_for_20_s_the_spool_holds_the_alerts() {
    let started = Instant::now();
    let dir = Dir::new();
    let mut cluster = Cluster::new(dir.path());
    cluster.start_all();
    let hosts = hosts(dir.path(), &cluster.urls(), "");
    for i in 0..3 {
        cluster.kill(i);
    }
    let down = Instant::now();
    let ip = "203.0.113.70";

    on_every_host(&hosts, &["banip", ip]);
    // Each host's spool holds its ban, and `queue` says why.
    for h in &hosts {
        wait_for("the failed delivery to show in `queue`", WAIT, || {
            let out = queue(h);
            (out.contains("sink `am`: 1 pending") && out.contains("no Alertmanager took the alerts")).then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(20).saturating_sub(down.elapsed()));
    assert!(cluster.notifications().is_empty());

    for i in 0..3 {
        cluster.start(i);
    }
    // Every host's alert is notified. How many notifications that takes is Alertmanager's:
    // an alert older than `group_wait` (these started 20 s ago, at the ban) is flushed as soon
    // as it arrives, so alerts that reach a node a second apart after an outage may come as a
    // first notification and, a group interval later, one with the rest.
    wait_for("the notifications once the cluster is back", WAIT, || {
        let mut hosts: Vec<(String, String)> = cluster.notifications().iter().flat_map(named).collect();
        hosts.sort();
        hosts.dedup();
        (hosts == all_three("firing")).then_some(())
    });
    for n in cluster.notifications() {
        assert_eq!((n["status"].as_str(), n["groupLabels"]["ip"].as_str()), (Some("firing"), Some(ip)), "{n:#}");
    }
    for h in &hosts {
        wait_for("every node to have the ban", WAIT, || queue(h).contains("sink `am`: 0 pending").then_some(()));
        assert!(queue(h).contains("sink `am`: 0 pending, 0 dead"), "{}", queue(h));
    }
    for i in 0..3 {
        assert_eq!(cluster.alerts(i, ip).len(), 3, "node {i}");
    }
    eprintln!("the cluster down for 20 s: {:.1} s", started.elapsed().as_secs_f64());
}

/// docs/fleet.md's `alertmanager.yml`, run by one real Alertmanager with its Slack webhook on
/// a loopback stand-in (and its group wait cut to a second): three hosts' bans of one address
/// are the one message the guide shows, their unbans the other.
#[test]
fn the_fleet_guides_alertmanager_yml_gives_the_messages_it_shows() {
    let dir = Dir::new();
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md")).unwrap();
    let yml = guide
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(yml, _)| yml))
        .find(|yml| yml.starts_with("global:"))
        .expect("an alertmanager.yml in docs/fleet.md");
    let slack = StandIn::start(crate::util::slack_ok());
    let url_file = dir.write("slack-webhook.url", &slack.url("/services/T0/B0/X"));
    let yml = yml
        .replace("/etc/prometheus/slack-webhook.url", &url_file.display().to_string())
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 2m", "group_interval: 2s");
    let config = dir.write("alertmanager.yml", &yml);
    let web = StandIn::reserve_port();
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("am.log")).unwrap())
        .spawn()
        .expect("start prometheus-alertmanager");
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _am = Stop(child);
    wait_for("Alertmanager to answer", WAIT, || http_get(web, "/-/ready"));

    let notify = |host: &str, args: &[&str]| {
        let cfg = dir.write(
            &format!("{host}.toml"),
            &format!(
                "host = \"{host}\"\n[delivery]\nmode = \"direct\"\n[sinks.fleet]\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:{web}\"]\n[jails.\"*\"]\nsinks = [\"fleet\"]\n"
            ),
        );
        let mut c = dir.cmd();
        c.arg("--config").arg(cfg).arg("notify").args(args);
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    };
    let ban = ["ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5", "--bantime", "3600", "--user"];
    for (host, user) in
        [("web1.example.com", "root"), ("web2.example.com", "admin"), ("web3.example.com", "<!channel> root")]
    {
        notify(host, &[&ban[..], &[user]].concat());
    }
    let message = |n: usize| {
        wait_for("the Slack message", WAIT, || slack.requests().get(n).map(Request::json));
        let m = slack.requests()[n].json();
        let a = &m["attachments"][0];
        let mut lines: Vec<String> = a["text"].as_str().unwrap_or("").lines().map(str::to_owned).collect();
        lines.sort();
        (a["title"].as_str().unwrap_or("").to_owned(), a["color"].as_str().unwrap_or("").to_owned(), lines)
    };
    assert_eq!(
        message(0),
        (
            "Banned 203.0.113.7 on 3 hosts".to_owned(),
            "danger".to_owned(),
            vec![
                "• *web1.example.com* (sshd): banned for 1 h after 5 failure(s), user `root`".to_owned(),
                "• *web2.example.com* (sshd): banned for 1 h after 5 failure(s), user `admin`".to_owned(),
                "• *web3.example.com* (sshd): banned for 1 h after 5 failure(s), user `!channel root`".to_owned(),
            ]
        )
    );
    for host in HOSTS.map(|h| h.replace(".example", ".example.com")) {
        notify(&host, &["unban", "--jail", "sshd", "--ip", "203.0.113.7"]);
    }
    let (title, color, lines) = message(1);
    assert_eq!((title.as_str(), color.as_str()), ("Unbanned 203.0.113.7 on 3 hosts", "good"));
    assert_eq!(
        lines,
        HOSTS.map(|h| format!("• *{}* (sshd): unbanned", h.replace(".example", ".example.com"))).to_vec()
    );
    assert_eq!(slack.requests().len(), 2);
}
