//! Queue mode with the real Fail2Ban and a loopback Slack stand-in: the action only spools,
//! a detached worker delivers, folds storms into digests, paces, retries, obeys Retry-After,
//! buries permanent failures, survives SIGKILL, sets aside a batch that was in flight when the
//! worker was killed twice, and moves corrupt files aside.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::util::{bin, kill_worker, run, slack_ok, Dir, Fail2Ban, Reply, Request, StandIn, WorkerGuard};

const WAIT: Duration = Duration::from_secs(90);

/// A private Fail2Ban whose `sshd` jail sends bans to two Slack sinks (`hook`, `api`) at
/// `base` through f2b-notify in queue mode.
struct Setup {
    dir: Dir,
    f2b: Fail2Ban,
    spool: PathBuf,
    config: PathBuf,
    _worker: WorkerGuard,
}

fn setup(dir: Dir, base: &str) -> Setup {
    setup_with(dir, base, r#"["ban"]"#)
}

fn setup_with(dir: Dir, base: &str, events: &str) -> Setup {
    let spool = dir.path().join("spool");
    let config = dir.write(
        "notify.toml",
        &format!(
            r##"
host = "storm.example"
[delivery]
spool = "{spool}"
idle_exit = 2
retry_max = 5

[sinks.hook]
type = "slack-webhook"
url = "{base}/services/T0/B0/X"

[sinks.api]
type = "slack-api"
token = "xoxb-test"
channel = "#security"
url = "{base}/api/"

[jails.sshd]
sinks = ["hook", "api"]
events = {events}
"##,
            spool = spool.display()
        ),
    );
    let log = dir.write("auth.log", "");
    let jail_local = format!(
        "[DEFAULT]\nbackend = polling\nmaxretry = 2\nfindtime = 600\nbantime = 3600\n\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = log.display(),
        d = dir.path().display(),
        bin = bin().display(),
        cfg = config.display(),
    );
    let f2b = Fail2Ban::start(dir.path(), &jail_local);
    Setup { _worker: WorkerGuard(spool.clone()), dir, f2b, spool, config }
}

fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.18.{}.{}", i / 256, i % 256)).collect()
}

/// Bans every address with one `fail2ban-client set sshd banip …` (Fail2Ban runs the action
/// once per address, one after another).
fn ban(setup: &Setup, ips: &[String]) {
    let mut args = vec!["set", "sshd", "banip"];
    args.extend(ips.iter().map(String::as_str));
    setup.f2b.client(&args);
}

/// Whether `requests` together name every address (each shown in a code span).
fn missing(requests: &[Request], ips: &[String]) -> Vec<String> {
    let all: String = requests.iter().map(|r| r.body.as_str()).collect::<Vec<_>>().join("\n");
    ips.iter().filter(|ip| !all.contains(&format!("`{ip}`"))).cloned().collect()
}

fn wait_named(server: &StandIn, prefix: &str, ips: &[String]) -> Vec<Request> {
    crate::util::wait_for(&format!("{prefix} to name all {} addresses", ips.len()), WAIT, || {
        let reqs = server.requests_to(prefix);
        missing(&reqs, ips).is_empty().then_some(reqs)
    })
}

#[test]
fn storm_of_200_bans_becomes_a_few_paced_digests() {
    let server = StandIn::start(slack_ok());
    let mut setup = setup_with(Dir::new(), &server.url(""), r#"["ban", "unban", "stop"]"#);
    let ips = addresses(200);
    ban(&setup, &ips);
    for prefix in ["/services/", "/api/"] {
        let reqs = wait_named(&server, prefix, &ips);
        assert!(reqs.len() >= 2 && reqs.len() <= 15, "{prefix}: {} requests for 200 bans", reqs.len());
        assert!(reqs.iter().skip(1).any(|r| r.body.contains("bans in 1 jail")), "{prefix}: no digest");
        // Slack's pace: about one message per second per sink.
        for pair in reqs.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_millis(950), "{prefix}: {gap:?} between two messages");
        }
    }
    // Stopping Fail2Ban unbans all 200 one action at a time: a few digests again.
    let before = server.requests_to("/services/").len();
    setup.f2b.stop();
    let unbans = crate::util::wait_for("the stop-time unbans", WAIT, || {
        let reqs: Vec<Request> = server.requests_to("/services/").into_iter().skip(before).collect();
        let all: String = reqs.iter().map(|r| r.body.as_str()).collect();
        (missing(&reqs, &ips).is_empty() && all.contains("jail stop")).then_some(reqs)
    });
    assert!(unbans.len() <= 15, "{} messages for 200 unbans and a stop", unbans.len());
    assert!(unbans.iter().any(|r| r.body.contains(" unbans")), "no unban digest");
    // The worker exits on its own once idle.
    crate::util::wait_for("the worker to exit when idle", Duration::from_secs(30), || {
        let mut c = std::process::Command::new(bin());
        c.arg("-c").arg(&setup.config).arg("queue");
        run(c).stdout.contains("no worker running").then_some(())
    });
    assert!(std::fs::read_dir(setup.spool.join("sinks/hook")).unwrap().next().is_none());
}

#[test]
fn retry_after_is_obeyed() {
    let responder: crate::util::Responder = Arc::new(|req: &Request, seen: usize| {
        if req.path.starts_with("/services/") && seen == 0 {
            Reply::new(429, "rate_limited").header("Retry-After", "2")
        } else if req.path.starts_with("/api/") {
            Reply::new(200, r#"{"ok":true}"#)
        } else {
            Reply::new(200, "ok")
        }
    });
    let server = StandIn::start(responder);
    let setup = setup(Dir::new(), &server.url(""));
    let ips = addresses(1);
    ban(&setup, &ips);
    let reqs = crate::util::wait_for("the retry", WAIT, || {
        let r = server.requests_to("/services/");
        (r.len() >= 2).then_some(r)
    });
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_secs(2), "retried {gap:?} after a 429 with Retry-After: 2");
    assert!(missing(&reqs[1..2], &ips).is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.requests_to("/services/").len(), 2, "sent again after success");
    assert_eq!(server.requests_to("/api/").len(), 1);
}

#[test]
fn two_500s_then_200_delivers_once() {
    let responder: crate::util::Responder =
        Arc::new(|req: &Request, seen: usize| match (req.path.starts_with("/api/"), seen) {
            (true, _) => Reply::new(200, r#"{"ok":true}"#),
            (false, 0 | 1) => Reply::new(500, "rollup_error"),
            (false, _) => Reply::new(200, "ok"),
        });
    let server = StandIn::start(responder);
    let setup = setup(Dir::new(), &server.url(""));
    let ips = addresses(1);
    ban(&setup, &ips);
    let reqs = crate::util::wait_for("three tries", WAIT, || {
        let r = server.requests_to("/services/");
        (r.len() >= 3).then_some(r)
    });
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(700), "no backoff");
    std::thread::sleep(Duration::from_secs(3));
    let reqs = server.requests_to("/services/");
    assert_eq!(reqs.len(), 3, "delivered more than once");
    assert!(reqs.iter().all(|r| missing(std::slice::from_ref(r), &ips).is_empty()));
    let _ = &setup.dir;
}

#[test]
fn permanent_failure_goes_to_dead_letters_while_others_deliver() {
    let responder: crate::util::Responder = Arc::new(|req: &Request, _| {
        if req.path.starts_with("/api/") {
            Reply::new(200, r#"{"ok":false,"error":"channel_not_found"}"#)
        } else {
            Reply::new(200, "ok")
        }
    });
    let server = StandIn::start(responder);
    let setup = setup(Dir::new(), &server.url(""));
    let ips = addresses(3);
    ban(&setup, &ips);
    wait_named(&server, "/services/", &ips);
    let dead = setup.spool.join("dead/api");
    crate::util::wait_for("3 dead letters", WAIT, || {
        let n = std::fs::read_dir(&dead)
            .ok()?
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
            .count();
        (n == 3).then_some(())
    });
    let queue = |action: &str| {
        let mut c = std::process::Command::new(bin());
        c.arg("-c").arg(&setup.config).args(["queue", action]);
        run(c)
    };
    let listed = queue("list");
    assert!(
        listed.stdout.contains("sink `api`: 0 pending, 3 dead; last error: channel_not_found"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("dead `api`: sshd ban 198.18.0.0: permanent failure: channel_not_found"),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("sink `hook`: 0 pending, 0 dead"), "{}", listed.stdout);
    // The webhook got each address exactly once.
    let hook = server.requests_to("/services/");
    for ip in &ips {
        assert_eq!(hook.iter().filter(|r| r.body.contains(&format!("`{ip}`"))).count(), 1, "{ip}");
    }
    // retry moves them back (Slack still says no: they return to the dead letters); purge
    // empties the directory and says how many.
    assert!(queue("retry").stdout.contains("moved 3 dead event(s) back"));
    crate::util::wait_for("the retried events to be dead again", WAIT, || {
        let r = server.requests_to("/api/");
        (r.len() >= 2).then_some(())
    });
    crate::util::wait_for("dead again", WAIT, || queue("list").stdout.contains("3 dead").then_some(()));
    assert!(queue("purge").stdout.contains("purged 3 dead event(s)"));
    assert!(queue("list").stdout.contains("sink `api`: 0 pending, 0 dead"));
}

#[test]
fn server_down_for_20_s_then_back_delivers_everything() {
    let port = StandIn::reserve_port();
    let setup = setup(Dir::new(), &format!("http://127.0.0.1:{port}"));
    let ips = addresses(3);
    ban(&setup, &ips);
    std::thread::sleep(Duration::from_secs(20));
    let mut c = std::process::Command::new(bin());
    c.arg("-c").arg(&setup.config).arg("queue");
    let listed = run(c).stdout;
    assert!(listed.contains("sink `hook`: 3 pending") && listed.contains("cannot connect"), "{listed}");
    let server = StandIn::start_on(port, slack_ok());
    for prefix in ["/services/", "/api/"] {
        let reqs = wait_named(&server, prefix, &ips);
        assert!(reqs.len() <= 2, "{prefix}: {} requests", reqs.len());
    }
}

#[test]
fn sigkill_of_the_worker_mid_storm_loses_nothing() {
    // A slow Slack, so the storm is still being delivered when the worker dies.
    let slow: crate::util::Responder = Arc::new(|req: &Request, _| {
        std::thread::sleep(Duration::from_millis(300));
        if req.path.starts_with("/api/") {
            Reply::new(200, r#"{"ok":true}"#)
        } else {
            Reply::new(200, "ok")
        }
    });
    let server = StandIn::start(slow);
    let setup = setup(Dir::new(), &server.url(""));
    let mut ips = addresses(200);
    ban(&setup, &ips);
    crate::util::wait_for("the first delivery", WAIT, || (!server.requests().is_empty()).then_some(()));
    let killed = kill_worker(&setup.spool);
    assert!(killed.is_some(), "no worker to kill");
    // The next ban starts a new worker, which resumes the queue.
    let late = "198.19.0.1".to_owned();
    ban(&setup, std::slice::from_ref(&late));
    ips.push(late);
    for prefix in ["/services/", "/api/"] {
        wait_named(&server, prefix, &ips);
    }
}

#[test]
fn corrupt_spool_file_is_moved_aside() {
    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    dir.write("spool/new/00000000000000000001-1-0.json", "{ this is not an event");
    let setup = setup(dir, &server.url(""));
    let ips = addresses(1);
    ban(&setup, &ips);
    wait_named(&server, "/services/", &ips);
    let aside = setup.spool.join("corrupt/00000000000000000001-1-0.json");
    assert!(aside.exists(), "corrupt file not moved aside");
    let reason = std::fs::read_to_string(setup.spool.join("corrupt/00000000000000000001-1-0.json.reason")).unwrap();
    assert!(reason.contains("not a spooled event"), "{reason}");
    let mut c = std::process::Command::new(bin());
    c.arg("-c").arg(&setup.config).arg("queue");
    assert!(run(c).stdout.contains("corrupt"), "queue does not list the corrupt file");
}

#[test]
fn unwritable_spool_names_the_event_in_the_system_log_and_sends_nothing() {
    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    let syslog = crate::util::Syslog::start(dir.path());
    // The spool's parent is a file: the spool cannot be created.
    dir.write("not-a-dir", "");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}/not-a-dir/spool\"\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            dir.path().display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_SYSLOG", &syslog.path);
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.9.9"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("could not spool the ban of 198.18.9.9 in jail sshd for hook"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let logged = syslog.messages();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].starts_with("<27>f2b-notify[") && logged[0].contains("198.18.9.9"), "{logged:?}");
    // Nothing is sent from the action: under Fail2Ban's lock that would stall banning.
    assert!(server.requests().is_empty());

    // With no system log either, the exit is non-zero: Fail2Ban logs the failure.
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_SYSLOG", dir.path().join("no-such.sock"));
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.9.10"]);
    let r = run(c);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("198.18.9.10 in jail sshd is not delivered"), "{}", r.stderr);
}

#[test]
fn follow_worker_keeps_running_and_notify_starts_no_second_one() {
    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 1\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let mut service = dir.cmd();
    service.arg("-c").arg(&cfg).args(["deliver", "--follow"]);
    let mut service = service.spawn().expect("start deliver --follow");
    let _guard = WorkerGuard(spool.clone());
    crate::util::wait_for("the service to take the spool", Duration::from_secs(10), || {
        std::fs::read_to_string(spool.join("worker.lock")).ok().filter(|p| p.trim() == service.id().to_string())
    });
    for (i, ip) in ["198.18.7.1", "198.18.7.2"].iter().enumerate() {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd"]).arg(format!("--ip={ip}"));
        assert_eq!(run(c).code, Some(0));
        crate::util::wait_for("delivery", WAIT, || (server.requests_to("/services/").len() > i).then_some(()));
        // Well past idle_exit: a --follow worker stays.
        std::thread::sleep(Duration::from_secs(2));
        assert!(service.try_wait().unwrap().is_none(), "deliver --follow exited");
    }
    assert_eq!(std::fs::read_to_string(spool.join("worker.lock")).unwrap().trim(), service.id().to_string());
    service.kill().unwrap();
    service.wait().unwrap();
}

#[test]
fn a_sink_that_cannot_be_built_keeps_its_events_and_says_why() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 2\n[sinks.hook]\ntype = \"slack-webhook\"\nurl_file = \"{}/missing.url\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            dir.path().display()
        ),
    );
    let _guard = WorkerGuard(spool.clone());
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.5.5"]);
    // The action only spools: the broken sink cannot stall or fail it.
    assert_eq!(run(c).code, Some(0));
    let listed = crate::util::wait_for("the worker to report the broken sink", WAIT, || {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("queue");
        let out = run(c).stdout;
        out.contains("cannot build the sink").then_some(out)
    });
    assert!(listed.contains("sink `hook`: 1 pending, 0 dead"), "{listed}");
    assert!(listed.contains("missing.url"), "{listed}");
}

/// Lets the hanging stand-in's connections go when a test ends, however it ends.
struct Release(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A stand-in whose webhook (any path but `/api/`) takes the request and answers only once
/// the `Release` is dropped; the Web API (`/api/`) answers `ok` at once.
fn held_webhook() -> (Release, StandIn) {
    let release = Release(Arc::default());
    let held = Arc::clone(&release.0);
    let responder: crate::util::Responder = Arc::new(move |req: &Request, _| {
        if req.path.starts_with("/api/") {
            return Reply::new(200, r#"{"ok":true}"#);
        }
        while !held.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Reply::new(200, "ok")
    });
    (release, StandIn::start(responder))
}

#[test]
fn a_batch_in_flight_when_the_worker_is_killed_twice_goes_to_the_dead_letters() {
    // The webhook's server takes the request and never answers (until the test ends); the
    // API answers at once. The sink's own timeout is long enough to kill the worker mid-send.
    let (_release, server) = held_webhook();
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            r##"
[delivery]
spool = "{spool}"
idle_exit = 2
[sinks.hook]
type = "slack-webhook"
url = "{base}/services/T0/B0/X"
timeout = 20
[sinks.api]
type = "slack-api"
token = "xoxb-test"
channel = "#security"
url = "{base}/api/"
[jails."*"]
sinks = ["hook", "api"]
"##,
            spool = spool.display(),
            base = server.url("")
        ),
    );
    let _worker = WorkerGuard(spool.clone());
    let queue = || {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("queue");
        run(c).stdout
    };
    let ips = addresses(3);
    // `notify` spools the ban and starts a worker (the real binary, detached); then the test
    // waits until `hook` holds the batch, `api` has recorded its delivery, and kills the
    // worker with SIGKILL, as a panic under `panic = "abort"` would end it.
    let ban_and_wait = |ip: &String, hook_requests: usize| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd"]).arg(format!("--ip={ip}"));
        assert_eq!(run(c).code, Some(0));
        crate::util::wait_for("hook to hold the batch and api to be done", WAIT, || {
            let api_got_it = missing(&server.requests_to("/api/"), std::slice::from_ref(ip)).is_empty();
            let api_busy = !api_got_it
                || std::fs::read_dir(spool.join("sinks/api")).ok()?.next().is_some()
                || spool.join("inflight/api.json").exists();
            (server.requests_to("/services/").len() == hook_requests && !api_busy).then_some(())
        });
    };
    let kill = || {
        assert!(spool.join("inflight/hook.json").exists(), "no in-flight mark for hook");
        assert!(kill_worker(&spool).is_some(), "no worker to kill");
        crate::util::wait_for("the killed worker to let go of the spool", WAIT, || {
            queue().contains("no worker running").then_some(())
        });
    };

    ban_and_wait(&ips[0], 1);
    kill();
    // The next worker sends that batch again, alone, though the new event waits for hook.
    ban_and_wait(&ips[1], 2);
    let retry = &server.requests_to("/services/")[1];
    let alone = missing(std::slice::from_ref(retry), &ips[..1]).is_empty();
    assert!(alone && !retry.body.contains(&format!("`{}`", ips[1])), "{}", retry.body);
    kill();
    // The third worker moves it to the dead letters and goes on with the rest.
    ban_and_wait(&ips[2], 3);
    let third = &server.requests_to("/services/")[2];
    let rest = missing(std::slice::from_ref(third), &ips[1..]).is_empty();
    assert!(rest && !third.body.contains(&format!("`{}`", ips[0])), "{}", third.body);
    let listed = queue();
    assert!(listed.contains(&format!("dead `hook`: sshd ban {}: crashed the worker twice", ips[0])), "{listed}");
    assert!(listed.contains("sink `api`: 0 pending, 0 dead"), "{listed}");
    let log = std::fs::read_to_string(spool.join("worker.log")).unwrap_or_default();
    assert!(log.contains("moved to the dead letters: crashed the worker twice"), "{log}");
    // The other sink got every event, once.
    let api = server.requests_to("/api/");
    for ip in &ips {
        assert_eq!(api.iter().filter(|r| r.body.contains(&format!("`{ip}`"))).count(), 1, "{ip}");
    }
}

#[test]
fn a_worker_stopped_by_sigterm_mid_send_leaves_the_batch_queued_not_counted_as_a_crash() {
    // As a service manager stops `deliver --follow`: SIGTERM while a send hangs, twice. The
    // batch did not crash the worker, so it is neither set aside nor sent alone; it goes out
    // once the server answers again.
    let (release, server) = held_webhook();
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 2\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\ntimeout = 20\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let _worker = WorkerGuard(spool.clone());
    let queue = || {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("queue");
        run(c).stdout
    };
    let ips = addresses(3);
    let ban = |ip: &String| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd"]).arg(format!("--ip={ip}"));
        assert_eq!(run(c).code, Some(0));
    };
    for (i, ip) in ips[..2].iter().enumerate() {
        ban(ip);
        crate::util::wait_for("the send to hang", WAIT, || {
            (server.requests().len() == i + 1 && spool.join("inflight/hook.json").exists()).then_some(())
        });
        assert!(crate::util::signal_worker(&spool, rustix::process::Signal::TERM).is_some(), "no worker");
        crate::util::wait_for("the worker to stop", WAIT, || queue().contains("no worker running").then_some(()));
        assert!(!spool.join("inflight/hook.json").exists(), "a stop by SIGTERM left the batch marked as crashing");
    }
    // The second worker sent the first ban again together with the second: not alone.
    assert!(missing(&server.requests()[1..2], &ips[..2]).is_empty(), "{}", server.requests()[1].body);
    drop(release);
    ban(&ips[2]);
    wait_named(&server, "/services/", &ips);
    crate::util::wait_for("the queue to empty", WAIT, || {
        queue().contains("sink `hook`: 0 pending, 0 dead").then_some(())
    });
}

/// A process a test started, stopped by its PID however the test ends.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The PID in the spool's lock file.
fn lock_pid(spool: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(spool.join("worker.lock")).ok()?.trim().parse().ok()
}

#[test]
fn deliver_follow_waits_for_an_on_demand_worker_which_hands_the_spool_over() {
    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 60\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let _guard = WorkerGuard(spool.clone());
    let start = |follow: bool, log: &str| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("deliver");
        if follow {
            c.arg("--follow");
        }
        c.stderr(std::fs::File::create(dir.path().join(log)).unwrap());
        Started(c.spawn().expect("start deliver"))
    };
    // A worker as `notify` starts it, which would stay a minute before exiting when idle.
    let mut on_demand = start(false, "on-demand.log");
    crate::util::wait_for("the on-demand worker to take the spool", WAIT, || {
        (lock_pid(&spool) == Some(on_demand.0.id())).then_some(())
    });
    // The service starts meanwhile: it must wait, not exit 0 (systemd would leave it dead).
    let mut service = start(true, "service.log");
    let handed_over = crate::util::wait_for("the on-demand worker to hand over", Duration::from_secs(10), || {
        on_demand.0.try_wait().unwrap()
    });
    assert!(handed_over.success(), "{handed_over:?}");
    crate::util::wait_for("the service to take the spool", Duration::from_secs(5), || {
        (lock_pid(&spool) == Some(service.0.id())).then_some(())
    });
    assert!(service.0.try_wait().unwrap().is_none(), "deliver --follow exited");
    let said = std::fs::read_to_string(dir.path().join("service.log")).unwrap();
    assert!(said.contains("waiting for it to hand over"), "{said}");
    // It delivers, and stays.
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.6.1"]);
    assert_eq!(run(c).code, Some(0));
    wait_named(&server, "/services/", &["198.18.6.1".to_owned()]);
    assert!(service.0.try_wait().unwrap().is_none(), "deliver --follow exited");
    assert_eq!(lock_pid(&spool), Some(service.0.id()));
}

#[test]
fn the_service_mark_keeps_on_demand_workers_away_until_the_service_stops_cleanly() {
    use std::os::unix::net::UnixDatagram;
    let server = StandIn::start(slack_ok());
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let mark = spool.join("service");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 60\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let _guard = WorkerGuard(spool.clone());
    // The service manager's socket: `Type=notify` waits for READY=1.
    let notify_socket = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&notify_socket).unwrap();
    manager.set_read_timeout(Some(WAIT)).unwrap();
    let start_service = |log: &str| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).args(["deliver", "--follow", "--service"]).env("NOTIFY_SOCKET", &notify_socket);
        c.stderr(std::fs::File::create(dir.path().join(log)).unwrap());
        let service = Started(c.spawn().expect("start deliver --follow --service"));
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).expect("READY=1 from the service");
        assert_eq!(&buf[..n], b"READY=1");
        assert!(mark.is_file(), "no {} once ready", mark.display());
        crate::util::wait_for("the service to take the spool", WAIT, || {
            (lock_pid(&spool) == Some(service.0.id())).then_some(())
        });
        service
    };
    let notify = |ip: &str, front_end: bool| {
        let mut c = if front_end { dir.enqueue_cmd() } else { dir.cmd() };
        c.arg("--config").arg(&cfg).args(["notify", "ban", "--jail=sshd"]).arg(format!("--ip={ip}"));
        c.env("F2B_NOTIFY_LOG", "debug");
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        r.stderr
    };
    let queue = || {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).arg("queue");
        run(c).stdout
    };

    let mut service = start_service("service-1.log");
    assert!(queue().contains("the service's worker running"), "{}", queue());
    // A crash (the service manager restarts it after RestartSec): the mark stays, so the
    // events of the meantime start no worker outside the service's sandbox.
    service.0.kill().unwrap();
    service.0.wait().unwrap();
    assert!(mark.is_file(), "a crash removed the mark");
    // No plan is written from a config changed in the last two seconds.
    std::thread::sleep(Duration::from_millis(2100));
    notify("198.18.8.1", false);
    // The plan is written: the front end spools by itself and leaves the event to the service.
    let said = notify("198.18.8.2", true);
    assert!(said.contains("(fast path)") && said.contains("the spool is the service's"), "{said}");
    notify("198.18.8.3", true);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(crate::util::worker_pid(&spool), None, "notify started a worker for the service's spool");
    assert!(server.requests_to("/services/").is_empty());
    let listed = queue();
    assert!(listed.contains("no worker running, and it is marked as the service's"), "{listed}");
    assert!(listed.contains("new: 3 event(s)"), "{listed}");

    // Restarted, it delivers what waited; stopped cleanly (SIGTERM), it removes the mark.
    let mut service = start_service("service-2.log");
    wait_named(&server, "/services/", &["198.18.8.1".into(), "198.18.8.2".into(), "198.18.8.3".into()]);
    let pid = rustix::process::Pid::from_raw(service.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = crate::util::wait_for("the service to stop", WAIT, || service.0.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    assert!(!mark.exists(), "a clean stop left the mark");
    // Without the service, `notify` starts a worker on demand again.
    notify("198.18.8.4", false);
    wait_named(&server, "/services/", &["198.18.8.4".into()]);
}

#[test]
fn a_dead_letter_older_than_max_age_is_delivered_once_retried() {
    // The server is down until the event is dead for max_age (3 s); then it comes up and
    // `queue retry` must deliver it, not bury it again at once for being old.
    let port = StandIn::reserve_port();
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 30\nmax_age = 3\nretry_max = 1\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"http://127.0.0.1:{port}/services/T0/B0/X\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
        ),
    );
    let _guard = WorkerGuard(spool.clone());
    let queue = |action: &str| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&cfg).args(["queue", action]);
        run(c).stdout
    };
    let mut c = dir.cmd();
    c.arg("-c").arg(&cfg).args(["notify", "ban", "--jail=sshd", "--ip=198.18.6.2"]);
    assert_eq!(run(c).code, Some(0));
    let listed = crate::util::wait_for("the event to die of max_age", WAIT, || {
        let out = queue("list");
        out.contains("sink `hook`: 0 pending, 1 dead").then_some(out)
    });
    assert!(listed.contains("1 × not delivered within max_age (3s)"), "{listed}");
    let server = StandIn::start_on(port, slack_ok());
    assert!(queue("retry").contains("moved 1 dead event(s) back"));
    wait_named(&server, "/services/", &["198.18.6.2".to_owned()]);
    crate::util::wait_for("the queue to empty", WAIT, || {
        queue("list").contains("sink `hook`: 0 pending, 0 dead").then_some(())
    });
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_workers_log_is_timestamped_and_rotated_past_1_mib() {
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let _worker = WorkerGuard(spool.clone());
    let config = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 2\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let notify = |ip: &str| {
        let mut c = dir.cmd();
        c.arg("-c").arg(&config).args(["notify", "ban", "--jail=sshd", &format!("--ip={ip}")]);
        assert_eq!(run(c).code, Some(0));
    };
    let log = spool.join("worker.log");
    let old = spool.join("worker.log.1");
    let filler = |n: usize| format!("{n} old line\n").repeat((1 << 20) / 10 + 1);
    // A worker that starts finds the log past 1 MiB: the lines before move to worker.log.1.
    notify("192.0.2.1");
    crate::util::wait_for("the first delivery", WAIT, || (!server.requests().is_empty()).then_some(()));
    crate::util::wait_for("the first worker to exit", WAIT, || crate::util::worker_pid(&spool).is_none().then_some(()));
    std::fs::write(&log, filler(1)).unwrap();
    notify("192.0.2.2");
    crate::util::wait_for("the second delivery", WAIT, || (server.requests().len() == 2).then_some(()));
    assert_eq!(std::fs::read_to_string(&old).unwrap(), filler(1));
    assert!(std::fs::metadata(&log).unwrap().len() < 10_000);
    // A running worker rotates its own log when it passes 1 MiB (here: a service whose
    // stderr is the spool's log, as `notify` starts one).
    crate::util::wait_for("the second worker to exit", WAIT, || {
        crate::util::worker_pid(&spool).is_none().then_some(())
    });
    let stderr = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut c = dir.cmd();
    c.arg("-c").arg(&config).args(["deliver", "--follow"]).stderr(stderr);
    let mut follow = c.spawn().unwrap();
    crate::util::wait_for("the service", WAIT, || crate::util::worker_pid(&spool).map(|_| ()));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(filler(2).as_bytes()).unwrap();
    }
    let text = crate::util::wait_for("a new log", WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("the lines before are in").then_some(text)
    });
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(std::fs::read_to_string(&old).unwrap().ends_with(&filler(2)));
    // Each line starts with its time, UTC: 2026-11-25T10:00:00.123456Z.
    let line = text.lines().next().unwrap();
    let b = line.as_bytes();
    assert!(b.len() > 28 && b[4] == b'-' && b[10] == b'T' && line[..28].contains('Z'), "{line}");
    // `queue` says where the log is.
    let mut c = dir.cmd();
    c.arg("-c").arg(&config).arg("queue");
    assert!(run(c).stdout.contains(&format!("the worker's log: {}", log.display())));
}
