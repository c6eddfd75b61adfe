//! The delivery guarantees, held for every web sink against its service's stand-in (which
//! follows that service's documented contract, limits and rate included): a storm folds into
//! a few paced digests that name every address and never trip the service's rate limit (a
//! sink that edits its messages keeps the storm in one message, edited in place: what the
//! service finally shows names every address, and every edit is paced like a message); the
//! service's own rate-limit answer is obeyed to the millisecond it names; a permanent refusal
//! sends the events to the dead letters, where `queue` says why; and the secret appears in no
//! output. Events go in through `f2b-notify notify`, the command Fail2Ban's action runs.

// A build without some web sinks (the minimal one: none) uses only part of this file.
#![allow(unused_imports, dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use f2b_notify_standins::{Reply, Request, StandIn};

use crate::util::{run, wait_for, Dir, WorkerGuard};

const WAIT: Duration = Duration::from_secs(60);

/// One sink type's stand-in, running.
struct Service {
    /// The server: every request it got, answered or refused.
    server: StandIn,
    /// The sink's keys after `type`, pointing at the stand-in.
    toml: String,
    /// What the service shows: when each message was posted, and its text now (the body, or
    /// for a message edited since, its latest content).
    accepted: Box<dyn Fn() -> Vec<(Instant, String)>>,
    /// When each post and each edit was accepted, for a service whose messages are edited;
    /// `None`: each message was written once, when `accepted` says.
    writes: Option<Box<dyn Fn() -> Vec<Instant>>>,
    /// Makes the next answers these.
    force: Box<dyn Fn(Vec<Reply>)>,
    /// The secret in the config, which must appear in no output.
    secret: &'static str,
}

/// How each sink type is tested: its stand-in, and its service's rate-limit and refusal
/// answers.
struct Profile {
    ty: &'static str,
    start: fn() -> Service,
    /// The service asking to wait 2 s, in its own shape.
    rate_limited: fn() -> Reply,
    /// A refusal that retrying cannot fix, and the words `queue` then shows.
    refused: fn() -> (Reply, &'static str),
    /// The least gap the sink keeps between two messages by default (zero: the test paces
    /// it at 1 s).
    pace: Duration,
}

#[cfg(feature = "webhook")]
fn webhook() -> Profile {
    use f2b_notify_standins::webhook::Endpoint;
    Profile {
        ty: "webhook",
        start: || {
            let endpoint = Endpoint::requiring("/hook/S3CRETPATH", "Authorization", "Bearer S3CRETHEADER");
            let server = StandIn::start(endpoint.responder());
            let toml = format!(
                "url = \"{}\"\nheaders = {{ Authorization = \"Bearer S3CRETHEADER\" }}\n",
                server.url("/hook/S3CRETPATH")
            );
            let (a, f) = (Arc::clone(&endpoint), Arc::clone(&endpoint));
            Service {
                server,
                toml,
                accepted: Box::new(move || bodies(a.accepted())),
                force: Box::new(move |r| f.force(r)),
                writes: None,
                secret: "S3CRET",
            }
        },
        rate_limited: || Reply::new(429, "slow down").header("Retry-After", "2"),
        refused: || (Reply::new(410, "this hook is gone"), "this hook is gone (HTTP 410)"),
        pace: Duration::ZERO,
    }
}

#[cfg(feature = "discord")]
fn discord() -> Profile {
    use f2b_notify_standins::discord;
    Profile {
        ty: "discord",
        start: || {
            let service = discord::Service::new("1234567890", "S3CRETtoken");
            let server = StandIn::start(service.responder());
            let toml = format!("url = \"{}\"\n", server.url(&service.path()));
            let (a, f, w) = (Arc::clone(&service), Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                accepted: Box::new(move || a.messages().into_iter().map(|m| (m.at, m.body.to_string())).collect()),
                force: Box::new(move |r| f.force(r)),
                writes: Some(Box::new(move || w.accepted_requests().into_iter().map(|r| r.at).collect())),
                secret: "S3CRET",
            }
        },
        rate_limited: || discord::rate_limited(2.0, false),
        refused: || (discord::error(404, 10015, "Unknown Webhook"), "Unknown Webhook"),
        pace: Duration::from_secs(2),
    }
}

#[cfg(feature = "telegram")]
fn telegram() -> Profile {
    use f2b_notify_standins::telegram;
    const TOKEN: &str = "123456:S3CRET-DEF1234ghIkl-zyx57W2v1u123ew11";
    Profile {
        ty: "telegram",
        start: || {
            let service = telegram::Service::new(TOKEN);
            service.add_chat("-1001234567890");
            let server = StandIn::start(service.responder());
            let toml = format!("token = \"{TOKEN}\"\nchat_id = -1001234567890\napi_url = \"{}\"\n", server.url(""));
            let (a, f, w) = (Arc::clone(&service), Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                // The body of a message's latest request: its text now.
                accepted: Box::new(move || a.accepted().into_iter().map(|m| (m.at, m.body.to_string())).collect()),
                force: Box::new(move |r| f.force(r)),
                writes: Some(Box::new(move || w.writes())),
                secret: "S3CRET",
            }
        },
        rate_limited: || telegram::too_many_requests(2),
        refused: || (telegram::error(400, "Bad Request: chat not found"), "chat not found"),
        pace: Duration::from_secs(3),
    }
}

#[cfg(feature = "matrix")]
fn matrix() -> Profile {
    use f2b_notify_standins::matrix;
    Profile {
        ty: "matrix",
        start: || {
            let service = matrix::Service::new("syt_S3CRET_token", "!room:example.org");
            let server = service.start();
            let toml = format!(
                "homeserver = \"{}\"\nroom_id = \"!room:example.org\"\ntoken = \"syt_S3CRET_token\"\n",
                server.url("")
            );
            let (a, f, w) = (Arc::clone(&service), Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                // What the room shows: each message with its latest edit applied.
                accepted: Box::new(move || a.shown().into_iter().map(|m| (m.at, m.content.to_string())).collect()),
                force: Box::new(move |r| f.force(r.into_iter().map(matrix::Forced::Reply))),
                // Every event stored, edits included.
                writes: Some(Box::new(move || w.messages().into_iter().map(|m| m.at).collect())),
                secret: "S3CRET",
            }
        },
        rate_limited: || matrix::error(429, "M_LIMIT_EXCEEDED", "Too Many Requests").header("Retry-After", "2"),
        refused: || (matrix::error(403, "M_FORBIDDEN", "User not in room"), "M_FORBIDDEN"),
        pace: Duration::from_secs(5),
    }
}

#[cfg(feature = "teams")]
fn teams() -> Profile {
    use f2b_notify_standins::teams;
    Profile {
        ty: "teams",
        start: || {
            let service = teams::Service::new("S3CRETsig");
            let server = service.start();
            let toml = format!("url = \"{}\"\n", service.url(&server));
            let (a, f) = (Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                accepted: Box::new(move || {
                    a.accepted_at().into_iter().map(|(at, body)| (at, body.to_string())).collect()
                }),
                force: Box::new(move |r| f.force(r)),
                writes: None,
                secret: "S3CRET",
            }
        },
        rate_limited: || {
            teams::error(429, "WorkflowRequestsThrottled", "Rate limit is exceeded.").header("Retry-After", "2")
        },
        refused: || (teams::error(404, "WorkflowNotFound", "The workflow was not found."), "WorkflowNotFound"),
        pace: Duration::from_secs(1),
    }
}

#[cfg(feature = "ntfy")]
fn ntfy() -> Profile {
    use f2b_notify_standins::ntfy;
    Profile {
        ty: "ntfy",
        start: || {
            let service = ntfy::Service::new(ntfy::Auth::Token("tk_S3CRETtoken".to_owned()));
            let server = StandIn::start(service.responder());
            let toml = format!("url = \"{}\"\ntoken = \"tk_S3CRETtoken\"\n", server.url("/fail2ban-alerts"));
            let (a, f) = (Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                accepted: Box::new(move || a.accepted_at().into_iter().map(|(at, m)| (at, m.to_string())).collect()),
                force: Box::new(move |r| f.force(r)),
                writes: None,
                secret: "S3CRET",
            }
        },
        // ntfy sends no Retry-After: its documented refill (one request per 5 s) is the wait.
        rate_limited: ntfy::too_many_requests,
        refused: || (ntfy::error(403, 40301, "forbidden"), "forbidden"),
        pace: Duration::from_secs(5),
    }
}

#[cfg(feature = "gotify")]
fn gotify() -> Profile {
    use f2b_notify_standins::gotify;
    Profile {
        ty: "gotify",
        start: || {
            // Behind a proxy's path prefix, as Gotify often is.
            let service = gotify::Service::with_prefix("AS3CRETtoken42", "/gotify");
            let server = StandIn::start(service.responder());
            let toml = format!("url = \"{}\"\ntoken = \"AS3CRETtoken42\"\n", service.base_url(&server));
            let (a, f) = (Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                accepted: Box::new(move || a.accepted_at().into_iter().map(|(at, m)| (at, m.to_string())).collect()),
                force: Box::new(move |r| f.force(r)),
                writes: None,
                secret: "S3CRET",
            }
        },
        // Gotify has no rate limit: a 429 comes from a proxy in front, with its Retry-After.
        rate_limited: || gotify::proxy_rate_limited(2),
        refused: || (gotify::unauthorized(), "you need to provide a valid access token"),
        pace: Duration::from_secs(1),
    }
}

#[cfg(feature = "pushover")]
fn pushover() -> Profile {
    use f2b_notify_standins::pushover;
    const TOKEN: &str = "aS3CRETappTokenBcdefghij012345";
    const USER: &str = "uS3CRETuserKeyBcdefghij0123456";
    Profile {
        ty: "pushover",
        start: || {
            let service = pushover::Service::new(TOKEN, USER);
            let server = StandIn::start(service.responder());
            let toml = format!("token = \"{TOKEN}\"\nuser = \"{USER}\"\napi_url = \"{}\"\n", server.url(""));
            let (a, f) = (Arc::clone(&service), Arc::clone(&service));
            Service {
                server,
                toml,
                accepted: Box::new(move || a.accepted_at().into_iter().map(|(at, m)| (at, m.to_string())).collect()),
                force: Box::new(move |r| f.force(r)),
                writes: None,
                secret: "S3CRET",
            }
        },
        // Pushover's only wait is the monthly quota's 429: until `X-Limit-App-Reset`, here
        // two seconds after the answer.
        rate_limited: || pushover::quota_exceeded(10_000, 2),
        refused: || (pushover::user_invalid(), "user identifier is not a valid user, group, or subscribed user key"),
        pace: Duration::from_secs(5),
    }
}

/// Every web sink this build has.
fn profiles() -> Vec<Profile> {
    vec![
        #[cfg(feature = "webhook")]
        webhook(),
        #[cfg(feature = "discord")]
        discord(),
        #[cfg(feature = "telegram")]
        telegram(),
        #[cfg(feature = "matrix")]
        matrix(),
        #[cfg(feature = "teams")]
        teams(),
        #[cfg(feature = "ntfy")]
        ntfy(),
        #[cfg(feature = "gotify")]
        gotify(),
        #[cfg(feature = "pushover")]
        pushover(),
    ]
}

/// A config with the one sink `out` of `profile`'s type, every event of every jail to it.
struct Setup {
    dir: Dir,
    config: PathBuf,
    spool: PathBuf,
    _worker: WorkerGuard,
}

fn setup(profile: &Profile, service: &Service) -> Setup {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    // A sink with no pace of its own sends each event as it comes: paced here at 1 s (the
    // administrator's `min_interval`), so that a storm still folds into digests.
    let pacing = if profile.pace.is_zero() { "min_interval = { out = 1 }\n" } else { "" };
    let config = dir.write(
        "notify.toml",
        &format!(
            "host = \"web.example\"\n[delivery]\nspool = \"{}\"\nidle_exit = 2\nretry_max = 5\n{pacing}\n[sinks.out]\ntype = \"{}\"\n{}\n[jails.\"*\"]\nsinks = [\"out\"]\n",
            spool.display(),
            profile.ty,
            service.toml
        ),
    );
    Setup { _worker: WorkerGuard(spool.clone()), dir, config, spool }
}

impl Setup {
    fn cmd(&self, args: &[&str]) -> crate::util::Run {
        let mut c = self.dir.cmd();
        c.arg("--config").arg(&self.config).args(args);
        run(c)
    }

    fn ban(&self, ip: &str) {
        // As Fail2Ban's action gives it: with the ban's time and length.
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let time = format!("{time:.3}");
        let r = self.cmd(&[
            "notify",
            "ban",
            "--jail",
            "sshd",
            "--ip",
            ip,
            "--failures",
            "5",
            "--time",
            &time,
            "--bantime",
            "600",
            "--user",
            "<!channel> @everyone",
        ]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
}

fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.51.100.{i}")).collect()
}

/// Requests as (arrival, body).
#[cfg(feature = "webhook")]
fn bodies(requests: Vec<Request>) -> Vec<(Instant, String)> {
    requests.into_iter().map(|r| (r.at, r.body)).collect()
}

fn missing(messages: &[(Instant, String)], ips: &[String]) -> Vec<String> {
    let all: String = messages.iter().map(|(_, body)| body.as_str()).collect::<Vec<_>>().join("\n");
    // An address is named when it stands on its own (198.51.100.1 is not in 198.51.100.10).
    ips.iter()
        .filter(|ip| {
            !all.match_indices(ip.as_str())
                .any(|(at, _)| !all[at + ip.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .cloned()
        .collect()
}

#[test]
fn a_storm_becomes_a_few_paced_digests_naming_every_address() {
    for profile in profiles() {
        let service = (profile.start)();
        let setup = setup(&profile, &service);
        let ips = addresses(60);
        for ip in &ips {
            setup.ban(ip);
        }
        // Every address named in what the service finally shows (an edited message counts
        // for its latest text only).
        let got = wait_for(&format!("{}: every address", profile.ty), WAIT, || {
            let got = (service.accepted)();
            missing(&got, &ips).is_empty().then_some(got)
        });
        // Every write paced, an edit like a message.
        let mut writes: Vec<Instant> = match &service.writes {
            Some(writes) => writes(),
            None => got.iter().map(|(at, _)| *at).collect(),
        };
        writes.sort();
        assert!(writes.len() >= got.len(), "{}: {} writes for {} messages", profile.ty, writes.len(), got.len());
        assert!(writes.len() < 30, "{}: {} messages and edits for 60 bans", profile.ty, writes.len());
        let pace = profile.pace.max(Duration::from_secs(1));
        for pair in writes.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap + Duration::from_millis(50) >= pace, "{}: {gap:?} between two messages", profile.ty);
        }
        if service.writes.is_some() {
            // A storm is one message edited in place (two when the first ban went out
            // before the storm was seen to start and the next batch came too late for it).
            assert!(got.len() <= 2, "{}: {} messages for one storm", profile.ty, got.len());
        }
        let queue = setup.cmd(&["queue"]);
        assert!(!queue.stdout.contains(service.secret), "{}: {}", profile.ty, queue.stdout);
    }
}

#[test]
fn the_services_rate_limit_answer_is_obeyed() {
    for profile in profiles() {
        let service = (profile.start)();
        (service.force)(vec![(profile.rate_limited)()]);
        let setup = setup(&profile, &service);
        setup.ban("203.0.113.7");
        let got = wait_for(&format!("{}: the retry", profile.ty), WAIT, || {
            let got = (service.accepted)();
            (!got.is_empty()).then_some(got)
        });
        assert!(missing(&got, &["203.0.113.7".to_owned()]).is_empty(), "{}", profile.ty);
        let first = service.server.requests()[0].at;
        let gap = got[0].0 - first;
        assert!(gap >= Duration::from_secs(2), "{}: retried {gap:?} after being asked to wait 2 s", profile.ty);
        // No later than the wait or the sink's own pace (a failed try counts as a message).
        let due = profile.pace.max(Duration::from_secs(2));
        assert!(
            gap < due + Duration::from_secs(3),
            "{}: retried only {gap:?} after being asked to wait 2 s",
            profile.ty
        );
        // The worker's log names the failed try, without the secret.
        let log = std::fs::read_to_string(setup.spool.join("worker.log")).unwrap_or_default();
        assert!(!log.contains(service.secret), "{}: {log}", profile.ty);
    }
}

#[test]
fn a_permanent_refusal_is_a_dead_letter_with_the_services_words() {
    for profile in profiles() {
        let service = (profile.start)();
        let (reply, words) = (profile.refused)();
        (service.force)(vec![reply]);
        let setup = setup(&profile, &service);
        setup.ban("203.0.113.9");
        let listed = wait_for(&format!("{}: the dead letter", profile.ty), WAIT, || {
            let listed = setup.cmd(&["queue", "list"]).stdout;
            listed.contains("1 dead").then_some(listed)
        });
        assert!(listed.contains(words), "{}: {listed}", profile.ty);
        assert!(!listed.contains(service.secret), "{}: {listed}", profile.ty);
        assert!((service.accepted)().is_empty(), "{}", profile.ty);
    }
}

/// Matrix deduplicates a message by its transaction id: a worker killed after the homeserver
/// stored a message but before the answer came leaves the batch marked in flight; the next
/// worker sends exactly that batch again with the same transaction id, and the room holds the
/// message once. A lost answer (the connection closed after the message was stored) is the
/// same story within one worker, and for an edit of a storm's message as for a message.
#[cfg(feature = "matrix")]
#[test]
fn matrix_a_message_whose_answer_was_lost_is_in_the_room_once() {
    use f2b_notify_standins::matrix;
    let profile = matrix();
    let service = matrix::Service::new("syt_S3CRET_token", "!room:example.org");
    let server = service.start();
    let toml =
        format!("homeserver = \"{}\"\nroom_id = \"!room:example.org\"\ntoken = \"syt_S3CRET_token\"\n", server.url(""));
    let running =
        Service { server, toml, accepted: Box::new(Vec::new), force: Box::new(|_| ()), writes: None, secret: "S3CRET" };
    let setup = setup(&profile, &running);
    // How many messages the room shows that name `ip` (a storm's message edited to hold it
    // is one, whatever its edits).
    let named = |ip: &str| service.shown().iter().filter(|m| m.content.to_string().contains(ip)).count();
    // How often the first request that carried `ip` went out (the same transaction id each
    // time: the same path).
    let sent = |ip: &str| {
        let requests = running.server.requests();
        let first = requests.iter().find(|r| r.body.contains(ip)).map(|r| r.path.clone()).expect("a request");
        requests.iter().filter(|r| r.path == first).count()
    };

    // Killed between the request and the answer.
    service.delay(Duration::from_secs(30));
    setup.ban("203.0.113.1");
    wait_for("the homeserver to store the first ban", WAIT, || (named("203.0.113.1") == 1).then_some(()));
    let pid = crate::util::kill_worker(&setup.spool).expect("a worker was sending");
    service.delay(Duration::ZERO);
    // Gone, its lock released (an event in between would find the lock still held and wait
    // for the next one, as Fail2Ban's next event would start the worker).
    wait_for("the killed worker to be gone", WAIT, || {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (state.is_empty() || state.contains(") Z ")).then_some(())
    });
    // The next event starts a worker, which sends the batch in flight first, alone (then the
    // second ban, which may edit that message: the worker's storm).
    setup.ban("203.0.113.2");
    wait_for("the second ban", WAIT, || (named("203.0.113.2") == 1).then_some(()));
    assert_eq!(sent("203.0.113.1"), 2, "the first ban was sent twice, the second time after the kill");
    assert_eq!(named("203.0.113.1"), 1, "the room shows the first ban once: {:#?}", service.shown());

    // The answer lost on the way back, and a ban while the worker waits to try again: the
    // retry is the same transaction (the lost send alone), the new ban comes after.
    service.force([matrix::Forced::Lose]);
    setup.ban("203.0.113.3");
    wait_for("the homeserver to store the third ban", WAIT, || (named("203.0.113.3") == 1).then_some(()));
    setup.ban("203.0.113.4");
    wait_for("the fourth ban", WAIT, || (named("203.0.113.4") == 1).then_some(()));
    assert_eq!(sent("203.0.113.3"), 2, "the third ban's send went out twice");
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        assert_eq!(named(ip), 1, "{ip}: {:#?}", service.shown());
    }
    // Four sends stored (posts or edits), the retries recognised.
    let txns: Vec<String> = service.messages().iter().map(|m| m.txn_id.clone()).collect();
    assert_eq!(txns.len(), 4, "{txns:?}");
}

/// Under the real Fail2Ban, one jail routed to every web sink this build has: a ban from log
/// lines with a user name an attacker chose reaches every service, each message names the
/// address, the secret of none appears in the worker's log, and no shell ran the name.
#[test]
fn one_jail_under_the_real_fail2ban_reaches_every_web_sink() {
    let profiles = profiles();
    let services: Vec<Service> = profiles.iter().map(|p| (p.start)()).collect();
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let mut config = format!("host = \"every.example\"\n[delivery]\nspool = \"{}\"\nidle_exit = 5\n", spool.display());
    let names: Vec<String> = profiles.iter().map(|p| format!("to_{}", p.ty.replace('-', "_"))).collect();
    for ((profile, service), name) in profiles.iter().zip(&services).zip(&names) {
        config.push_str(&format!("\n[sinks.{name}]\ntype = \"{}\"\n{}", profile.ty, service.toml));
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    config.push_str(&format!("\n[jails.sshd]\nsinks = [{}]\nevents = [\"ban\"]\n", quoted.join(", ")));
    let config = dir.write("notify.toml", &config);
    let _worker = WorkerGuard(spool.clone());
    let auth_log = dir.write("auth.log", "");
    let jail_local = format!(
        "[DEFAULT]\nbackend = polling\nmaxretry = 2\nfindtime = 600\nbantime = 600\n\n[sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = auth_log.display(),
        d = dir.path().display(),
        bin = crate::util::bin().display(),
        cfg = config.display(),
    );
    let _f2b = crate::util::Fail2Ban::start(dir.path(), &jail_local);
    let pwned = dir.path().join("pwned");
    let hostile = format!("@everyone<b>$(touch {p})`touch {p}`</b>*_~[a](http://x)", p = pwned.display());
    crate::util::append_ssh_failures(&auth_log, "203.0.113.77", &hostile, 3);
    for (profile, service) in profiles.iter().zip(&services) {
        let got = wait_for(&format!("{}: the ban", profile.ty), WAIT, || {
            let got = (service.accepted)();
            missing(&got, &["203.0.113.77".to_owned()]).is_empty().then_some(got)
        });
        assert_eq!(got.len(), 1, "{}: {got:?}", profile.ty);
    }
    let log = std::fs::read_to_string(spool.join("worker.log")).unwrap_or_default();
    for service in &services {
        assert!(!log.contains(service.secret), "{log}");
    }
    assert!(!pwned.exists(), "a shell ran attacker text");
}
