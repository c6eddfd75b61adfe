//! Ban and unban as one conversation, end to end: events go in through `f2b-notify notify`
//! (what Fail2Ban's action runs), the worker posts with the Slack Web API sink to the Slack
//! stand-in (which follows chat.postMessage's and chat.update's documented contract), and
//! what the channel shows is checked: the unban is a reply in its ban's thread even when the
//! worker was killed between the two, and a storm of 500 bans is one message, edited in place
//! at the sink's pace, whose final text names every address.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use f2b_notify_standins::slack::Service;
use f2b_notify_standins::StandIn;

use crate::util::{kill_worker, run, wait_for, worker_pid, Dir, WorkerGuard};

const TOKEN: &str = "xoxb-S3CRET-conversation";
const WAIT: Duration = Duration::from_secs(90);

struct Setup {
    dir: Dir,
    config: PathBuf,
    spool: PathBuf,
    slack: Arc<Service>,
    _server: StandIn,
    _worker: WorkerGuard,
}

/// A slack-api sink posting to `#security` (a name, as most configs give it: the sink learns
/// the channel's id from Slack's answers).
fn setup() -> Setup {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let slack = Service::new(TOKEN);
    slack.add_channel("C0SECURITY", "security");
    let server = StandIn::start(slack.responder());
    let config = dir.write(
        "notify.toml",
        &format!(
            "host = \"h.example\"\n[delivery]\nspool = \"{}\"\nidle_exit = 30\n\n[sinks.api]\ntype = \"slack-api\"\ntoken = \"{TOKEN}\"\nchannel = \"#security\"\nurl = \"{}\"\n\n[jails.\"*\"]\nsinks = [\"api\"]\n",
            spool.display(),
            server.url("/api/"),
        ),
    );
    Setup { _worker: WorkerGuard(spool.clone()), dir, config, spool, slack, _server: server }
}

impl Setup {
    fn notify(&self, kind: &str, ip: &str) {
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let mut c = self.dir.cmd();
        c.arg("--config").arg(&self.config).args([
            "notify",
            kind,
            "--jail",
            "sshd",
            "--ip",
            ip,
            "--time",
            &format!("{time:.3}"),
            "--bantime",
            "600",
        ]);
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(!r.stderr.contains("S3CRET"), "{}", r.stderr);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.spool.join("worker.log")).unwrap_or_default()
    }
}

#[test]
fn an_unban_replies_in_its_bans_thread_even_after_the_worker_was_killed() {
    let s = setup();
    s.notify("ban", "203.0.113.7");
    let ban = wait_for("the ban in the channel", WAIT, || {
        s.slack.messages().into_iter().find(|m| m.shown().contains("203.0.113.7"))
    });
    assert_eq!(ban.thread_ts, None, "the ban is a message of its own");
    // The worker dies (SIGKILL: nothing is saved on the way out) before the unban comes.
    let pid = wait_for("the worker", WAIT, || worker_pid(&s.spool));
    kill_worker(&s.spool);
    wait_for("the worker gone", WAIT, || (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()));
    s.notify("unban", "203.0.113.7");
    let reply = wait_for("the unban in the channel", WAIT, || {
        s.slack.messages().into_iter().find(|m| m.ts != ban.ts && m.shown().contains("unbanned IP 203.0.113.7"))
    });
    assert!(reply.replies_to(&ban), "the unban is a reply in the ban's thread: {reply:?} / ban {}", ban.ts);
    assert_eq!(reply.thread_ts.as_deref(), Some(ban.ts.as_str()));
    assert!(!reply.reply_broadcast, "not shown in the channel as well");
    // Another address's unban, whose ban this sink never posted, is a message of its own.
    s.notify("unban", "198.51.100.1");
    let alone = wait_for("the other unban", WAIT, || {
        s.slack.messages().into_iter().find(|m| m.shown().contains("unbanned IP 198.51.100.1"))
    });
    assert_eq!(alone.thread_ts, None);
    assert!(!s.log().contains("S3CRET"), "{}", s.log());
}

#[test]
fn a_storm_of_500_bans_is_one_message_that_keeps_counting() {
    let s = setup();
    let ips: Vec<String> = (0..500).map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1)).collect();
    let started = Instant::now();
    for ip in &ips {
        s.notify("ban", ip);
    }
    // Every address named in what the channel shows.
    let all_named = |text: &str| {
        ips.iter().all(|ip| {
            text.match_indices(ip.as_str())
                .any(|(at, _)| !text[at + ip.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
    };
    let storm =
        wait_for("one message naming all 500", WAIT, || s.slack.messages().into_iter().find(|m| all_named(&m.shown())));
    let took = started.elapsed();
    // Let a late edit land before counting.
    std::thread::sleep(Duration::from_secs(2));
    let messages = s.slack.messages();
    assert_eq!(
        messages.len(),
        1,
        "one message for the whole storm: {:?}",
        messages.iter().map(|m| &m.ts).collect::<Vec<_>>()
    );
    assert_eq!(s.slack.post_calls(), 1, "one chat.postMessage");
    let updates = s.slack.update_calls();
    assert!(updates >= 1, "the storm's message was edited");
    // An edit is a message for pacing: at most one per second (the sink's pace) while the
    // storm lasted, and so a few, not one per ban.
    assert!(updates as f64 <= took.as_secs_f64() + 3.0, "{updates} edits in {:.1} s: not paced", took.as_secs_f64());
    assert!(updates < 500, "{updates} edits: one per ban");
    let text = s.slack.message(&storm.ts).unwrap().shown();
    assert!(text.contains("500 bans"), "the final count: {text}");
    assert!(!s.log().contains("S3CRET"), "{}", s.log());
}
