//! The action's fast path (crates/fastpath): `f2b-notify-enqueue` spools exactly what
//! `f2b-notify notify` spools, only while the plan still matches the config, the variables
//! and the binary, and hands everything else to `f2b-notify`, which gives the same errors.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{bin, run, slack_ok, Dir, Fail2Ban, Run, StandIn, WorkerGuard};

/// f2b-notify writes no plan from a config file younger than this (see crates/router/plan.rs).
const SETTLE: Duration = Duration::from_millis(2100);

/// A queue-mode config with two webhook sinks at a closed port; routes: `sshd` (ban and
/// unban, restored bans quiet), `web-*` (bans, restored ones too), `console` to stdout.
fn config(dir: &Dir, spool: &Path) -> PathBuf {
    dir.write(
        "notify.toml",
        &format!(
            r#"
[delivery]
spool = "{spool}"

[sinks.hook]
type = "slack-webhook"
url = "http://127.0.0.1:9/services/T0/B0/X"

[sinks.hook2]
type = "slack-webhook"
url = "http://127.0.0.1:9/services/T0/B0/Y"

[sinks.console]
type = "stdout"

[jails.sshd]
sinks = ["hook2", "hook"]
events = ["ban", "unban"]

[jails."web-*"]
sinks = ["hook"]
events = ["ban"]
restored = true

[jails.local]
sinks = ["console"]
"#,
            spool = spool.display()
        ),
    )
}

/// Holds the spool's worker lock, as a running worker would: nothing gets delivered, so
/// every spooled entry stays in `new/` for the test to read.
fn hold_worker_lock(spool: &Path) -> File {
    std::fs::create_dir_all(spool).unwrap();
    let f =
        File::options().create(true).truncate(false).read(true).write(true).open(spool.join("worker.lock")).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    f
}

/// Takes the entries `notify` left in `new/`.
fn take_new(spool: &Path) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(spool.join("new")) else { return Vec::new() };
    let mut files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let v = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}: {}", f.display(), String::from_utf8_lossy(&bytes)));
            std::fs::remove_file(f).unwrap();
            v
        })
        .collect()
}

fn with_args<S: AsRef<OsStr>>(mut cmd: Command, config: &Path, args: &[S]) -> Run {
    cmd.arg("--config").arg(config).args(args).env("F2B_NOTIFY_LOG", "debug");
    run(cmd)
}

/// The entry without its write time, which differs between two runs.
fn comparable(mut entry: Value) -> Value {
    let at = entry.as_object_mut().unwrap().remove("enqueued_at").unwrap().as_f64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - at).abs() < 120.0, "enqueued_at {at} is not now");
    entry
}

/// stderr without the front end's own debug lines.
fn errors(r: &Run) -> String {
    r.stderr
        .lines()
        .filter(|l| !l.starts_with("f2b-notify-enqueue:") && !l.contains("DEBUG"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fast_path_spools_exactly_what_f2b_notify_spools() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let config = config(&dir, &spool);
    std::thread::sleep(SETTLE);
    let _lock = hold_worker_lock(&spool);

    let hostile = "line1 <!channel> \"q\" $(touch /tmp/f2b-pwned) `id` \\ back\nline2\t é 💥 \u{1} <http://x|bank>";
    let user = format!("--user={hostile}");
    let matches = format!("--matches={hostile}");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "notify",
            "ban",
            "--jail=sshd",
            "--ip=203.0.113.7",
            "--failures=5",
            "--time=1700000000.25",
            "--bantime=600",
            "--restored=0",
            &user,
            &matches,
            "--bancount=2",
        ],
        vec![
            "notify",
            "ban",
            "--jail=sshd",
            "--ip=[2001:db8::1]",
            "--failures=7",
            "--time=1700000000.123456",
            "--bantime=-1",
            "--user=--help",
            "--matches=",
        ],
        vec![
            "notify",
            "unban",
            "--jail=sshd",
            "--ip= user@example ",
            "--restored=1",
            "--failures=",
            "--time=",
            "--bantime=",
            "--user=",
            "--bancount=",
        ],
        vec!["notify", "ban", "--jail=web-1", "--ip=192.0.2.1", "--time=1700000000", "--restored=YES"],
        vec!["notify", "ban", "--jail", " sshd ", "--ip", "192.0.2.9", "--user", "-x", "--bancount", " 7 "],
    ];
    for case in &cases {
        let full = with_args(dir.cmd(), &config, case);
        assert_eq!(full.code, Some(0), "{case:?}: {}", full.stderr);
        let by_full = take_new(&spool);
        assert_eq!(by_full.len(), 1, "{case:?}");
        let fast = with_args(dir.enqueue_cmd(), &config, case);
        assert_eq!(fast.code, Some(0), "{case:?}: {}", fast.stderr);
        assert!(fast.stderr.contains("(fast path)"), "{case:?} did not take the fast path: {}", fast.stderr);
        let by_fast = take_new(&spool);
        assert_eq!(by_fast.len(), 1, "{case:?}");
        assert_eq!(comparable(by_fast[0].clone()), comparable(by_full[0].clone()), "{case:?}");
    }
    assert!(!Path::new("/tmp/f2b-pwned").exists(), "a log line was executed");

    // Events the route does not take: nothing spooled, and no f2b-notify run for them.
    for quiet in [
        vec!["notify", "ban", "--jail=sshd", "--ip=192.0.2.2", "--restored=1"],
        vec!["notify", "start", "--jail=sshd"],
        vec!["notify", "unban", "--jail=web-2", "--ip=192.0.2.2"],
    ] {
        with_args(dir.cmd(), &config, &quiet); // the full binary learns the jail first
        let fast = with_args(dir.enqueue_cmd(), &config, &quiet);
        assert_eq!(fast.code, Some(0), "{quiet:?}: {}", fast.stderr);
        assert!(!fast.stderr.contains("running f2b-notify"), "{quiet:?}: {}", fast.stderr);
        assert!(take_new(&spool).is_empty(), "{quiet:?}");
    }

    // What the fast path does not do, f2b-notify does, with the same output and exit code:
    // bad arguments, a jail with no route, a stdout sink.
    let bad_utf8 = OsStr::from_bytes(b"--user=\xff").to_owned();
    let mut odd: Vec<Vec<std::ffi::OsString>> = [
        &["notify", "ban", "--jail=sshd", "--ip=192.0.2.3", "--failures=many"][..],
        &["notify", "ban", "--jail=sshd", "--ip=192.0.2.3", "--bancount=-2"],
        &["notify", "unban", "--jail=sshd", "--ip=192.0.2.3", "--bancount=<bancount>"],
        &["notify", "ban", "--jail=sshd"],
        &["notify", "ban", "--jail=nowhere", "--ip=192.0.2.3"],
        &["notify", "ban", "--jail=local", "--ip=192.0.2.3", "--user=eve"],
        &["notify", "ban", "--jail=sshd", "--ip=192.0.2.3", "--colour=red"],
        &["-c", "/nonexistent.toml", "notify", "start", "--jail=sshd"],
    ]
    .iter()
    .map(|a| a.iter().map(Into::into).collect())
    .collect();
    odd.push(vec!["notify".into(), "ban".into(), "--jail=sshd".into(), "--ip=192.0.2.4".into(), bad_utf8]);
    for case in &odd {
        let full = with_args(dir.cmd(), &config, case);
        let by_full = take_new(&spool);
        let fast = with_args(dir.enqueue_cmd(), &config, case);
        let by_fast = take_new(&spool);
        assert!(fast.stderr.contains("f2b-notify-enqueue: running f2b-notify"), "{case:?}: {}", fast.stderr);
        assert_eq!((fast.code, errors(&fast), &fast.stdout), (full.code, errors(&full), &full.stdout), "{case:?}");
        assert_eq!(
            by_fast.into_iter().map(comparable).collect::<Vec<_>>(),
            by_full.into_iter().map(comparable).collect::<Vec<_>>(),
            "{case:?}"
        );
    }
}

#[test]
fn the_plan_goes_stale_when_the_config_or_the_environment_changes() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let etc = dir.path().join("etc");
    dir.write(
        "etc/config.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"http://127.0.0.1:9/services/T0/B0/X\"\n[jails.sshd]\nsinks = [\"hook\"]\nevents = [\"ban\"]\n",
            spool.display()
        ),
    );
    std::thread::sleep(SETTLE);
    let _lock = hold_worker_lock(&spool);
    let ban = |program: Command, extra: &[(&str, &str)]| {
        let mut cmd = program;
        cmd.env("F2B_NOTIFY_CONFIG_DIR", &etc).env("F2B_NOTIFY_LOG", "debug").envs(extra.iter().copied());
        cmd.args(["notify", "ban", "--jail=sshd", "--ip=192.0.2.1"]);
        let r = run(cmd);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        (r.stderr, take_new(&spool))
    };
    ban(dir.cmd(), &[]);
    let (said, spooled) = ban(dir.enqueue_cmd(), &[]);
    assert!(said.contains("(fast path)"), "{said}");
    assert_eq!(spooled.len(), 1);

    // A file added to conf.d takes bans off the route: the front end notices, f2b-notify
    // follows the new config.
    dir.write("etc/conf.d/later.toml", "[jails.sshd]\nevents = [\"unban\"]\n");
    let (said, spooled) = ban(dir.enqueue_cmd(), &[]);
    assert!(said.contains("running f2b-notify: the config changed"), "{said}");
    assert!(spooled.is_empty(), "the new config drops bans");
    std::fs::remove_file(etc.join("conf.d/later.toml")).unwrap();
    let (said, spooled) = ban(dir.enqueue_cmd(), &[]);
    assert!(said.contains("running f2b-notify: the config changed"), "{said}");
    assert_eq!(spooled.len(), 1);

    // A rewrite in place (same size, same text): the times change.
    std::thread::sleep(SETTLE);
    ban(dir.cmd(), &[]);
    assert!(ban(dir.enqueue_cmd(), &[]).0.contains("(fast path)"));
    let text = std::fs::read_to_string(etc.join("config.toml"))
        .unwrap()
        .replace("\"ban\"", "\"xyz\"")
        .replace("\"xyz\"", "\"ban\"");
    std::fs::write(etc.join("config.toml"), text).unwrap();
    assert!(ban(dir.enqueue_cmd(), &[]).0.contains("running f2b-notify: the config changed"));

    // A variable that overrides the config.
    std::thread::sleep(SETTLE);
    ban(dir.cmd(), &[]);
    let (said, spooled) = ban(dir.enqueue_cmd(), &[("F2B_NOTIFY_HOST", "elsewhere")]);
    assert!(said.contains("running f2b-notify: the F2B_NOTIFY_ variables changed"), "{said}");
    assert_eq!(spooled[0]["event"]["host"], "elsewhere");

    // A secret given in the environment never reaches the plan.
    let secret = "http://127.0.0.1:9/services/T0/B0/SECRETSECRET";
    let env = [("F2B_NOTIFY_SINKS__HOOK__URL", secret)];
    ban(dir.cmd(), &env);
    assert!(ban(dir.enqueue_cmd(), &env).0.contains("(fast path)"));
    let plans: Vec<PathBuf> = std::fs::read_dir(dir.path().join("run")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(plans.len(), 1, "{plans:?}");
    let plan = std::fs::read_to_string(&plans[0]).unwrap();
    let hex: String = "SECRETSECRET".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!plan.contains("SECRETSECRET") && !plan.contains(&hex), "{plan}");
    assert_eq!(std::fs::metadata(&plans[0]).unwrap().permissions().mode() & 0o777, 0o600);

    // A plan someone else could have written, or a torn one, is not used.
    std::fs::set_permissions(&plans[0], std::fs::Permissions::from_mode(0o666)).unwrap();
    let (said, spooled) = ban(dir.enqueue_cmd(), &env);
    assert!(said.contains("running f2b-notify: no plan for this config yet"), "{said}");
    assert_eq!(spooled.len(), 1);
    std::fs::write(&plans[0], &plan[..plan.len() / 2]).unwrap();
    std::fs::set_permissions(&plans[0], std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(ban(dir.enqueue_cmd(), &env).0.contains("running f2b-notify: no plan for this config yet"));
}

/// Whether a worker holds the spool's lock.
fn worker_running(spool: &Path) -> bool {
    let Ok(f) = File::options().read(true).write(true).open(spool.join("worker.lock")) else { return false };
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
}

/// A queue-mode config: `sshd` to one webhook at `slack`; the worker exits after `idle_exit` s.
fn hook_config(dir: &Dir, spool: &Path, slack: &StandIn, idle_exit: u32) -> PathBuf {
    dir.write(
        "notify.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nidle_exit = {idle_exit}\n[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"{}\"\n[jails.sshd]\nsinks = [\"hook\"]\n",
            spool.display(),
            slack.url("/services/T0/B0/X")
        ),
    )
}

#[test]
fn the_fast_path_starts_the_worker_which_delivers() {
    let dir = Dir::new();
    let slack = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let config = hook_config(&dir, &spool, &slack, 1);
    let _worker = WorkerGuard(spool.clone());
    std::thread::sleep(SETTLE);
    let first = with_args(dir.cmd(), &config, &["notify", "ban", "--jail=sshd", "--ip=192.0.2.10"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    crate::util::wait_for("the first worker to deliver and exit", Duration::from_secs(30), || {
        (slack.requests().len() == 1 && !worker_running(&spool)).then_some(())
    });
    let fast = with_args(dir.enqueue_cmd(), &config, &["notify", "ban", "--jail=sshd", "--ip=192.0.2.11"]);
    assert_eq!(fast.code, Some(0), "{}", fast.stderr);
    assert!(fast.stderr.contains("(fast path)"), "{}", fast.stderr);
    let request = crate::util::wait_for("delivery by a worker the front end started", Duration::from_secs(30), || {
        slack.requests().into_iter().find(|r| r.body.contains("192.0.2.11"))
    });
    assert_eq!(request.path, "/services/T0/B0/X");
    // The worker runs the full binary with the config by absolute path, detached.
    let pid = std::fs::read_to_string(spool.join("worker.lock")).unwrap();
    if let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", pid.trim())) {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        assert_eq!(args[0], bin().as_os_str().as_bytes());
        assert_eq!(&args[1..4], [&b"--config"[..], config.as_os_str().as_bytes(), b"deliver"]);
    }
}

#[test]
fn fail2ban_bans_take_the_fast_path() {
    let dir = Dir::new();
    let slack = StandIn::start(slack_ok());
    let spool = dir.path().join("spool");
    let config = hook_config(&dir, &spool, &slack, 3);
    let _worker = WorkerGuard(spool.clone());
    std::thread::sleep(SETTLE);
    let log = dir.write("auth.log", "");
    let jail_local = format!(
        "[sshd]\nenabled = true\nbackend = polling\nfilter = sshd\nlogpath = {log}\nbantime = 3600\naction = dummy[target=\"{d}/dummy\"]\n         f2b-notify[bin=\"{bin}\", args=\"--config {cfg}\"]\n",
        log = log.display(),
        d = dir.path().display(),
        bin = bin().display(),
        cfg = config.display(),
    );
    // At DEBUG, Fail2Ban logs what each action printed on stderr.
    let f2b = Fail2Ban::start_with(dir.path(), &jail_local, "DEBUG", &[("F2B_NOTIFY_LOG", "debug")]);
    let ips: Vec<String> = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    crate::util::wait_for("the start message", Duration::from_secs(30), || {
        (!slack.requests().is_empty()).then_some(())
    });
    let mut args = vec!["set", "sshd", "banip"];
    args.extend(ips.iter().map(String::as_str));
    f2b.client(&args);
    crate::util::wait_for("every ban delivered", Duration::from_secs(60), || {
        let bodies: String = slack.requests().into_iter().map(|r| r.body).collect();
        ips.iter().all(|ip| bodies.contains(&format!("`{ip}`"))).then_some(())
    });
    let fast = f2b.log().matches("spooled ban of jail sshd (fast path)").count();
    assert_eq!(fast, ips.len(), "every ban after the start event takes the fast path:\n{}", f2b.log());

    // Once the worker has gone idle and exited, the front end starts the next one itself,
    // detached: Fail2Ban (which at DEBUG reads the action's pipes until every holder closes
    // them) is not kept waiting, and the ban is delivered.
    crate::util::wait_for("the worker to exit when idle", Duration::from_secs(30), || {
        (!worker_running(&spool)).then_some(())
    });
    // Fail2Ban bans the second address only after the first one's f2b-notify action is done.
    f2b.client(&["set", "sshd", "banip", "198.51.100.99", "198.51.100.100"]);
    crate::util::wait_for("the second firewall ban", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.path().join("dummy")).unwrap_or_default().contains("198.51.100.100").then_some(())
    });
    crate::util::wait_for("delivery by the worker the front end started", Duration::from_secs(30), || {
        slack.requests().into_iter().any(|r| r.body.contains("`198.51.100.99`")).then_some(())
    });
    // The worker holds none of the action's pipes: stdin and stdout are /dev/null, stderr its log.
    let pid = std::fs::read_to_string(spool.join("worker.lock")).unwrap();
    let fd = |n: u32| {
        std::fs::read_link(format!("/proc/{}/fd/{n}", pid.trim()))
            .unwrap_or_else(|e| panic!("worker {pid} fd {n}: {e}"))
    };
    assert_eq!((fd(0), fd(1)), (PathBuf::from("/dev/null"), PathBuf::from("/dev/null")));
    assert_eq!(fd(2), spool.join("worker.log"));
    assert_eq!(f2b.log().matches("spooled ban of jail sshd (fast path)").count(), ips.len() + 2);
}

/// A small deterministic generator (xorshift64*), so that a failing vector can be replayed:
/// the seed and the vector are in the failure message.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// One random `notify` command line: mostly well-formed (so that most take the fast path),
/// with values drawn from valid, empty, malformed and hostile text, options in any order
/// and either form, and now and then a repeated or unknown option, a stray word, a bad
/// event word or a `-c`.
fn random_vector(rng: &mut Rng, long: &str) -> Vec<String> {
    // Each pool: values the contract accepts first, then `|`, then values it rejects.
    const KINDS: &str = "ban ban ban ban unban unban start stop | bann";
    let jails = ["sshd", "sshd", "sshd", "sshd", "web-1", " web-2 ", "nowhere", "local", "|", "", " ", "ss\nhd"];
    let ids = [
        "203.0.113.7",
        "2001:db8::1",
        "[2001:db8::2]",
        " 192.0.2.1 ",
        "user@example",
        "--help",
        "1.2.3.4.5",
        "::ffff:1.2.3.4",
        "é💥",
        "a\"b\\c",
        "|",
        "",
        "  ",
    ];
    let counts =
        ["5", "0", "", " 7 ", "18446744073709551615", "+3", "|", "-1", "x", "1.5", "18446744073709551616", "1e3"];
    let bantimes =
        ["600", "-1", "0", "", " 3600 ", "9223372036854775807", "-0", "|", "1.5", "x", "9223372036854775808", "1e3"];
    let times = [
        "1700000000",
        "1700000000.25",
        "1700000000.1234567891234",
        "",
        "1e9",
        "0.000001",
        " 12 ",
        "1.7976931348623157e308",
        "|",
        "-5",
        "abc",
        "inf",
        "NaN",
    ];
    let restored = ["0", "1", "", "YES", "no", "True", " 1 ", "|", "maybe", "2", "-1"];
    let bancounts =
        ["1", "2", "0", "", " 3 ", "18446744073709551615", "|", "-1", "x", "1.5", "18446744073709551616", "<bancount>"];
    let text = [
        "root",
        "",
        "--help",
        "-x",
        "<!channel> @everyone <http://x|bank>",
        "$(touch /tmp/f2b-pwned) `id` ; rm -rf /",
        "quote \" back \\ slash",
        "line1\nline2\r\nX-Header: y",
        "tab\there \u{1}\u{1b}[31m\u{7f}",
        "é 💥 \u{202e}rtl \u{feff}",
        "a=b=c",
        " padded ",
        "\u{8}\u{c}",
        "\\u0000 \\n",
    ];
    // A value from `pool`: now and then (one in `bad`) one that is rejected.
    let value = |rng: &mut Rng, pool: &[&str], bad: usize| -> String {
        let split = pool.iter().position(|v| *v == "|").unwrap_or(pool.len());
        let (good, rejected) = (&pool[..split], pool.get(split + 1..).unwrap_or(&[]));
        if !rejected.is_empty() && rng.below(bad) == 0 { rng.pick(rejected) } else { rng.pick(good) }.to_owned()
    };
    let kinds: Vec<&str> = KINDS.split(' ').collect();
    let mut v = vec!["notify".to_owned(), value(rng, &kinds, 40)];
    let mut options: Vec<(&str, String)> = vec![("jail", value(rng, &jails, 25))];
    for (name, pool) in [
        ("ip", &ids[..]),
        ("failures", &counts[..]),
        ("time", &times[..]),
        ("bantime", &bantimes[..]),
        ("restored", &restored[..]),
        ("user", &text[..]),
        ("matches", &text[..]),
        ("bancount", &bancounts[..]),
    ] {
        if rng.below(4) != 0 || (name == "ip" && rng.below(20) != 0) {
            let value = if (name == "matches" || name == "user") && rng.below(20) == 0 {
                long.to_owned()
            } else {
                value(rng, pool, 25)
            };
            options.push((name, value));
        }
    }
    if rng.below(30) == 0 {
        options.push(("jail", "again".to_owned()));
    }
    if rng.below(30) == 0 {
        options.push(("colour", "red".to_owned()));
    }
    if rng.below(40) == 0 {
        options.retain(|(n, _)| *n != "jail");
    }
    for i in (1..options.len()).rev() {
        options.swap(i, rng.below(i + 1));
    }
    for (name, value) in options {
        if rng.below(3) == 0 {
            v.push(format!("--{name}"));
            v.push(value);
        } else {
            v.push(format!("--{name}={value}"));
        }
    }
    match rng.below(60) {
        0 => v.push("stray".to_owned()),
        1 => v.splice(0..0, ["-c".to_owned(), "/nonexistent.toml".to_owned()]).for_each(drop),
        _ => {}
    }
    v
}

#[test]
fn differential_run_of_random_and_hostile_argument_vectors() {
    const VECTORS: usize = 2500;
    const SEED: u64 = 0x5eed_f2b0_0000_0001;
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let config = config(&dir, &spool);
    std::thread::sleep(SETTLE);
    let _lock = hold_worker_lock(&spool);
    // The full binary writes each jail's route into the plan the first time it sees it.
    for jail in ["sshd", "web-1", "web-2"] {
        let r = with_args(dir.cmd(), &config, &["notify", "ban", &format!("--jail={jail}"), "--ip=192.0.2.1"]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    take_new(&spool);
    let long = "x\u{1}\"é".repeat(2500);
    let mut rng = Rng(SEED);
    let mut fast_paths = 0;
    let mut spooled = 0;
    for i in 0..VECTORS {
        let case = random_vector(&mut rng, &long);
        let full = with_args(dir.cmd(), &config, &case);
        let by_full = take_new(&spool);
        let fast = with_args(dir.enqueue_cmd(), &config, &case);
        let by_fast = take_new(&spool);
        let shown = format!("vector {i} of seed {SEED:#x}: {case:?}");
        assert_eq!((fast.code, errors(&fast), &fast.stdout), (full.code, errors(&full), &full.stdout), "{shown}");
        assert_eq!(
            by_fast.into_iter().map(comparable).collect::<Vec<_>>(),
            by_full.iter().cloned().map(comparable).collect::<Vec<_>>(),
            "{shown}"
        );
        // Spooled or deliberately dropped by the front end itself, without f2b-notify.
        fast_paths += usize::from(!fast.stderr.contains("f2b-notify-enqueue: running f2b-notify"));
        spooled += by_full.len();
    }
    assert!(!Path::new("/tmp/f2b-pwned").exists(), "a log line was executed");
    // The vectors reach both sides of the contract: many are handled by the front end
    // itself, many are handed over (bad values, unknown jails, a stdout route), many spooled.
    assert!(fast_paths > VECTORS * 2 / 5, "only {fast_paths} of {VECTORS} were handled by the front end");
    assert!(VECTORS - fast_paths > VECTORS / 5, "only {} of {VECTORS} were handed over", VECTORS - fast_paths);
    assert!(spooled > VECTORS / 4, "only {spooled} of {VECTORS} were spooled ({fast_paths} handled by the front end)");
}
