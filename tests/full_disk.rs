//! A spool that runs out of space in the middle of a storm, under the real Fail2Ban: the
//! action must neither hold Fail2Ban up (it sends nothing itself) nor lose an event in
//! silence. Every address is either delivered by the worker or named in the system log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{bin, Dir, Fail2Ban, Reply, Request, StandIn, Syslog, WorkerGuard};

/// A tmpfs of `size` mounted at `dir` for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount a tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, so that a worker still holding a file does not keep it mounted.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_during_a_storm_names_every_event_it_could_not_keep() {
    // The webhook answers 429 for 8 s, then ok: what was spooled waits, then goes out. (For
    // 8 s, not a number of answers: on a loaded machine Fail2Ban bans slowly, and a worker
    // that could deliver meanwhile would keep the spool from filling.)
    let start = std::time::Instant::now();
    storm_on_a_full_spool(Arc::new(move |_: &Request, _| {
        if start.elapsed() < Duration::from_secs(8) {
            Reply::new(429, "rate_limited").header("Retry-After", "1")
        } else {
            Reply::new(200, "ok")
        }
    }));
}

#[test]
fn a_full_spool_with_a_slow_sink_loses_nothing_either() {
    // The worker's log is on the full disk too, and its first lines come only after the disk
    // filled: a log line that cannot be written must not kill the worker (it did: tracing
    // reported the failure with a panicking eprintln!, and panics abort).
    // The first answer takes 8 s (within the sink's 20 s timeout), the others 1.5 s.
    storm_on_a_full_spool(Arc::new(|_: &Request, seen: usize| {
        std::thread::sleep(Duration::from_millis(if seen == 0 { 8000 } else { 1500 }));
        Reply::new(200, "ok")
    }));
}

/// 600 bans under the real Fail2Ban with the spool on a 512 KiB tmpfs and the webhook
/// answering by `responder`: every address is delivered or named in the system log, and
/// nothing is sent from the action itself.
fn storm_on_a_full_spool(responder: crate::util::Responder) {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let _tmpfs = Tmpfs::mount(&spool, "512k");
    let server = StandIn::start(responder);
    let syslog = Syslog::start(dir.path());
    let config = dir.write(
        "notify.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 2\n[sinks.hook]\ntype = \"slack-webhook\"\ntimeout = 20\nurl = \"{}\"\n[jails.sshd]\nsinks = [\"hook\"]\nevents = [\"ban\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    );
    let _worker = WorkerGuard(spool.clone());
    let log = dir.write("auth.log", "");
    let jail_local = format!(
        "[sshd]\nenabled = true\nbackend = polling\nfilter = sshd\nlogpath = {log}\nbantime = 3600\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = log.display(),
        d = dir.path().display(),
        bin = bin().display(),
        cfg = config.display(),
    );
    let syslog_path = syslog.path.display().to_string();
    let f2b = Fail2Ban::start_with(dir.path(), &jail_local, "INFO", &[("F2B_NOTIFY_SYSLOG", &syslog_path)]);
    // 600 bans fill the 512 KiB several times over (a file takes a 4 KiB page); the 2000-ban
    // storm with its timings is the benchmark's (tests/bench/storm.py --full-spool).
    let ips: Vec<String> = (0..600).map(|i| format!("198.18.{}.{}", i / 256, i % 256)).collect();
    let mut args = vec!["set", "sshd", "banip"];
    args.extend(ips.iter().map(String::as_str));
    f2b.client(&args);
    crate::util::wait_for("every firewall ban", Duration::from_secs(120), || {
        let banned = std::fs::read_to_string(dir.path().join("dummy")).unwrap_or_default();
        (banned.lines().filter(|l| l.starts_with('+')).count() >= ips.len()).then_some(())
    });
    let mut logged = String::new();
    let unaccounted =
        crate::util::wait_for("every address delivered or in the system log", Duration::from_secs(120), || {
            logged.push_str(&syslog.messages().join("\n"));
            let delivered: String = server.requests().into_iter().map(|r| r.body).collect();
            let missing: Vec<&String> = ips
                .iter()
                .filter(|ip| {
                    !delivered.contains(&format!("`{ip}`")) && !logged.contains(&format!("ban of {ip} in jail sshd"))
                })
                .collect();
            missing.is_empty().then_some(missing.len())
        });
    assert_eq!(unaccounted, 0);
    // Both happened: the spool took some, then filled up.
    assert!(logged.contains("No space left on device"), "the spool never filled up");
    assert!(server.requests().iter().any(|r| r.body.contains("198.18.0.0")), "nothing was delivered");
    // Nothing was sent from the action itself: every request came from the one worker, paced.
    for pair in server.requests().windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(900), "unpaced requests");
    }
    drop(f2b);
}
