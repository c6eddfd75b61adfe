//! Root is running f2b-notify: the spool and the run directory must not become a way for
//! another local user to make root write files, and the action must never lose an event in
//! silence. Tested as that user would attack: `nobody` (through `setpriv`) plants symbolic
//! links at the files the programs create, replaces a subdirectory with a link, and forges
//! a plan, in a spool and run directory that were left world-writable.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{run, slack_ok, Dir, StandIn, Syslog, WorkerGuard};

/// f2b-notify writes no plan from a config file younger than this (see crates/router/plan.rs).
const SETTLE: Duration = Duration::from_millis(2100);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs a shell script as `nobody`, with no groups, and requires it to succeed.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-ec", script])
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(out.status.success(), "as nobody: {script}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A queue-mode config: `sshd` bans to one webhook on `server`.
fn config(dir: &Dir, spool: &Path, server: &StandIn) -> PathBuf {
    dir.write(
        "notify.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = 1\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.sshd]\nsinks = [\"hook\"]\nevents = [\"ban\"]\n",
            spool.display(),
            server.url("/services/T0/B0/X")
        ),
    )
}

fn notify(program: Command, config: &Path, ip: &str) -> crate::util::Run {
    let mut cmd = program;
    // The system log is the test's own socket beside the config.
    cmd.env("F2B_NOTIFY_SYSLOG", config.with_file_name("syslog.sock"));
    cmd.env("F2B_NOTIFY_LOG", "debug").arg("--config").arg(config).args(["notify", "ban", "--jail=sshd"]);
    cmd.arg(format!("--ip={ip}"));
    run(cmd)
}

/// Every regular file below `dir`, with its contents.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(snapshot(&p));
        } else if meta.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_world_writable_spool_and_run_dir_cannot_be_turned_against_root() {
    let dir = Dir::new();
    chmod(dir.path(), 0o755); // nobody may walk in, not write
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let run_dir = dir.path().join("run");
    let config = config(&dir, &spool, &server);
    let syslog = Syslog::start(dir.path());
    let _worker = WorkerGuard(spool.clone());
    // Root's files outside the spool, which the attack aims at.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    chmod(&outside, 0o755);
    std::fs::write(outside.join("victim"), "root's own file\n").unwrap();
    chmod(&outside.join("victim"), 0o644);
    let before = snapshot(&outside);

    // A healthy first event sets up the spool, the worker and the plan.
    std::thread::sleep(SETTLE);
    let first = notify(dir.cmd(), &config, "192.0.2.1");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    crate::util::wait_for("the first ban delivered", Duration::from_secs(30), || {
        server.requests().iter().any(|r| r.body.contains("192.0.2.1")).then_some(())
    });
    let plan = std::fs::read_dir(&run_dir).unwrap().next().unwrap().unwrap().path();

    // The mistake: both directories (and what is in the spool) left writable by everyone.
    for d in [&spool, &run_dir] {
        chmod(d, 0o777);
    }
    for sub in ["tmp", "new", "sinks", "sinks/hook", "state", "dead", "corrupt"] {
        if spool.join(sub).exists() {
            chmod(&spool.join(sub), 0o777);
        }
    }
    // The attack: links at every file the programs write, `new/` pointing outside, a
    // corrupt entry whose reason file is a link, and a forged plan that drops sshd's bans.
    let v = outside.join("victim");
    let (s, o) = (spool.display(), outside.display());
    as_nobody(&format!(
        "cd {s}; rm -f worker.log worker.lock; ln -s {v} worker.log; ln -s {v} worker.lock
         mkdir -p state corrupt dead; ln -sf {v} state/hook.json; ln -sf {v} state/hook.json.tmp
         ln -sf {v} corrupt/x.json.reason; ln -sf {v} corrupt/x.json.tmp
         rmdir new; ln -s {o} new",
        v = v.display()
    ));
    let forged = std::fs::read_to_string(&plan).unwrap().replace("jail 73736864 4 ", "jail 73736864 0 ");
    as_nobody(&format!("rm -f {p}; printf '%s' '{forged}' > {p}", p = plan.display()));
    assert_eq!(std::fs::metadata(&plan).unwrap().uid(), 65534);

    // The front end: refuses the forged plan and the run directory, hands over; f2b-notify
    // refuses the spool, says so with the fix, and names the ban in the system log.
    let fast = notify(dir.enqueue_cmd(), &config, "192.0.2.2");
    assert_eq!(fast.code, Some(0), "{}", fast.stderr);
    assert!(fast.stderr.contains("running f2b-notify: the run directory is missing or not trusted"), "{}", fast.stderr);
    assert!(
        fast.stderr.contains(&format!("refusing to use {s} can be written by others (mode 0777); fix: chmod go-w {s}")),
        "{}",
        fast.stderr
    );
    let logged = syslog.messages();
    assert!(
        logged.iter().any(|m| m.starts_with("<27>f2b-notify[")
            && m.contains("could not spool the ban of 192.0.2.2 in jail sshd for hook")
            && m.contains("chmod go-w")),
        "{logged:?}"
    );
    assert!(fast.stderr.contains("the action's fast path is off"), "{}", fast.stderr);
    // The forged plan was neither used nor adopted as root's.
    assert_eq!(std::fs::metadata(&plan).unwrap().uid(), 65534, "f2b-notify rewrote the forged plan as root's");

    // The worker, `queue` and `check` refuse the spool too, loudly.
    for args in [&["deliver"][..], &["queue"], &["queue", "retry"], &["check"]] {
        let mut cmd = dir.cmd();
        cmd.arg("--config").arg(&config).args(args);
        let r = run(cmd);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains(&format!("refusing to use {s}")), "{args:?}: {said}");
    }
    assert_eq!(snapshot(&outside), before, "root changed a file outside the spool");
    assert!(std::fs::read_dir(&outside).unwrap().count() == 1, "root created a file outside the spool");
}

#[test]
fn a_replaced_subdirectory_or_a_foreign_queue_is_refused() {
    let dir = Dir::new();
    let server = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let config = config(&dir, &spool, &server);
    let syslog = Syslog::start(dir.path());
    let _worker = WorkerGuard(spool.clone());
    let first = notify(dir.cmd(), &config, "192.0.2.1");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    crate::util::wait_for("the first ban delivered and the worker gone", Duration::from_secs(30), || {
        let mut q = dir.cmd();
        q.arg("--config").arg(&config).arg("queue");
        (server.requests().len() == 1 && run(q).stdout.contains("no worker running")).then_some(())
    });
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();

    // `new/` replaced by a link (the spool itself still root's, 0700).
    std::fs::remove_dir(spool.join("new")).unwrap();
    std::os::unix::fs::symlink(&outside, spool.join("new")).unwrap();
    let r = notify(dir.cmd(), &config, "192.0.2.2");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let new = spool.join("new");
    assert!(r.stderr.contains(&format!("refusing to use {} is a symbolic link", new.display())), "{}", r.stderr);
    assert!(
        syslog.messages().iter().any(|m| m.contains("could not spool the ban of 192.0.2.2")),
        "not in the system log"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "a file was written through the link");
    std::fs::remove_file(&new).unwrap();
    std::fs::create_dir(&new).unwrap();
    chmod(&new, 0o700);

    // A sink's queue that belongs to someone else: the worker will not touch the spool.
    let queue = spool.join("sinks/hook");
    std::fs::create_dir_all(&queue).unwrap();
    std::os::unix::fs::chown(&queue, Some(65534), Some(65534)).unwrap();
    let mut cmd = dir.cmd();
    cmd.arg("--config").arg(&config).arg("deliver");
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{} belongs to uid 65534", queue.display())), "{}", r.stderr);
}

#[test]
fn the_front_end_out_of_memory_delivers_or_fails_loudly() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let server = StandIn::start(slack_ok());
    let config = config(&dir, &spool, &server);
    let _worker = WorkerGuard(spool.clone());
    std::thread::sleep(SETTLE);
    // Hold the worker's lock: what is spooled stays in new/ to be counted.
    std::fs::create_dir_all(&spool).unwrap();
    chmod(&spool, 0o700);
    let warm = notify(dir.cmd(), &config, "192.0.2.1");
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    crate::util::wait_for("the warm-up ban delivered", Duration::from_secs(30), || {
        (!server.requests().is_empty()).then_some(())
    });
    let lock = std::fs::File::options().read(true).write(true).open(spool.join("worker.lock")).unwrap();
    crate::util::wait_for("the worker to exit", Duration::from_secs(30), || lock.try_lock().ok());
    let spooled = || std::fs::read_dir(spool.join("new")).map(|d| d.count()).unwrap_or(0);
    for (i, kib) in [200_000, 50_000, 10_000, 2_000, 500].into_iter().enumerate() {
        let ip = format!("198.51.100.{i}");
        let before = spooled();
        let mut cmd = dir.cmd_of(Path::new("sh"));
        cmd.arg("-c")
            .arg(format!("ulimit -v {kib}; exec \"$@\""))
            .arg("sh")
            .arg(crate::util::enqueue_bin())
            .env("F2B_NOTIFY_LOG", "debug")
            .arg("--config")
            .arg(&config)
            .args(["notify", "ban", "--jail=sshd"])
            .arg(format!("--ip={ip}"));
        let r = run(cmd);
        let delivered = spooled() == before + 1 || server.requests().iter().any(|q| q.body.contains(&ip));
        // Exit 0 only with the event on disk (or delivered); otherwise a failure Fail2Ban
        // logs: a non-zero exit with a message, or death by a signal.
        match r.code {
            Some(0) => assert!(delivered, "ulimit -v {kib}: exit 0 but the event is nowhere: {}", r.stderr),
            Some(code) => assert!(!r.stderr.trim().is_empty(), "ulimit -v {kib}: exit {code} without a word"),
            None => {}
        }
        if kib == 200_000 {
            assert_eq!((r.code, delivered), (Some(0), true), "the issue's case: {}", r.stderr);
            assert!(r.stderr.contains("(fast path)"), "{}", r.stderr);
        }
    }
}
