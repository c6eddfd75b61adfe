//! Helpers for the integration tests: running the built binary in a clean environment, and
//! running a real Fail2Ban server on a private config dir, socket and log.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_f2b-notify"))
}

/// The action's front end (crates/fastpath), built beside the binary.
pub fn enqueue_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_f2b-notify-enqueue"))
}

/// A scratch directory with a way to run the binary in it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Self { tmp: tempfile::Builder::new().prefix("f2b-notify-test").tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `body` to `name` in the directory and returns the full path.
    pub fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, body).expect("write");
        p
    }

    /// The binary with no inherited `F2B_NOTIFY_*` variables and a config directory that
    /// does not exist, so nothing from the machine's /etc leaks into a test.
    pub fn cmd(&self) -> Command {
        self.cmd_of(&bin())
    }

    /// The front end, set up as `cmd` sets up the binary.
    pub fn enqueue_cmd(&self) -> Command {
        self.cmd_of(&enqueue_bin())
    }

    pub fn cmd_of(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy().to_ascii_uppercase();
            // A proxy from the machine would carry loopback test traffic elsewhere.
            if name.starts_with("F2B_NOTIFY_") || name.ends_with("_PROXY") {
                c.env_remove(k);
            }
        }
        c.env("F2B_NOTIFY_CONFIG_DIR", self.path().join("no-etc"));
        // The front end's plans stay in the test's directory, not in the machine's /run.
        c.env("F2B_NOTIFY_RUN_DIR", self.path().join("run"));
        // System-log messages go where a test's `Syslog` listens (nowhere, when none does),
        // never to the machine's /dev/log.
        c.env("F2B_NOTIFY_SYSLOG", self.path().join(SYSLOG_SOCKET));
        c.current_dir(self.path());
        c.stdin(Stdio::null());
        c
    }
}

/// The result of a run, as text.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: Command) -> Run {
    // A binary a test has just copied may be "busy" for a moment: a child another test forks
    // at that instant holds the copy's write descriptor until it execs (close-on-exec), and
    // exec refuses a file open for writing. Retried, as that child's exec is a matter of
    // microseconds.
    let mut tries = 0;
    let Output { status, stdout, stderr } = loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.expect("run f2b-notify"),
        }
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a JSON-lines file; a missing file is empty.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A `fail2ban-server` running in the foreground on a private directory. Stopped by its PID
/// when dropped.
pub struct Fail2Ban {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    /// Fail2Ban's log file.
    log_file: PathBuf,
}

/// Where Debian's package keeps the stock filters and actions we copy.
const STOCK: &str = "/etc/fail2ban";

impl Fail2Ban {
    /// Writes a private Fail2Ban config into `dir` (fail2ban.conf, the given jail.local,
    /// the stock sshd filter and dummy action, and the project's own f2b-notify action) and
    /// starts the server. Panics (never skips) when Fail2Ban is not installed.
    pub fn start(dir: &Path, jail_local: &str) -> Self {
        Self::start_with(dir, jail_local, "INFO", &[])
    }

    /// As `start`, with Fail2Ban's log level (at DEBUG it logs what actions print on stderr)
    /// and extra variables for the server, which its actions inherit.
    pub fn start_with(dir: &Path, jail_local: &str, loglevel: &str, env: &[(&str, &str)]) -> Self {
        let action = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/action.d/f2b-notify.conf");
        Self::start_with_action(dir, jail_local, loglevel, env, &action)
    }

    /// As `start_with`, with this action file as `action.d/f2b-notify.conf` (the installed
    /// package's, for tests/installed.rs).
    pub fn start_with_action(
        dir: &Path,
        jail_local: &str,
        loglevel: &str,
        env: &[(&str, &str)],
        action: &Path,
    ) -> Self {
        assert!(
            Path::new("/usr/bin/fail2ban-server").exists(),
            "fail2ban is not installed: the README's test command installs it (apt-get install -y fail2ban)"
        );
        let conf = dir.join("f2b");
        for sub in ["filter.d", "action.d", "jail.d", "run"] {
            std::fs::create_dir_all(conf.join(sub)).expect("mkdir");
        }
        for f in ["filter.d/common.conf", "filter.d/sshd.conf", "action.d/dummy.conf"] {
            std::fs::copy(Path::new(STOCK).join(f), conf.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
        std::fs::copy(action, conf.join("action.d/f2b-notify.conf")).expect("copy action");
        let socket = conf.join("run/f2b.sock");
        let pidfile = conf.join("run/f2b.pid");
        std::fs::write(
            conf.join("fail2ban.conf"),
            format!(
                "[Definition]\nloglevel = {loglevel}\nlogtarget = {log}\nsocket = {sock}\npidfile = {pid}\ndbfile = :memory:\n",
                log = conf.join("fail2ban.log").display(),
                sock = socket.display(),
                pid = pidfile.display(),
            ),
        )
        .expect("fail2ban.conf");
        std::fs::write(conf.join("jail.conf"), "[DEFAULT]\n").expect("jail.conf");
        std::fs::write(conf.join("jail.local"), jail_local).expect("jail.local");
        let mut cmd = Command::new("fail2ban-server");
        // The actions inherit this: the front end's plans stay in the test's directory.
        cmd.env("F2B_NOTIFY_RUN_DIR", dir.join("plans"));
        let log_file = conf.join("fail2ban.log");
        Self::spawn(cmd, &conf, socket, &pidfile, &conf.join("server.stderr"), log_file, env)
    }

    /// Starts `fail2ban-server` on a config directory prepared beforehand: its socket, pid file
    /// and stderr go to `run` (created), outside the config directory, which the server
    /// leaves as it was; its log is `run/fail2ban.log` (for [`stock_fail2ban_dir`]'s copy in
    /// `DIR/f2b`, `run` is `DIR/f2b-run`). `env` is passed to the server, and so to its actions.
    pub fn start_prepared(conf: &Path, run: &Path, env: &[(&str, &str)]) -> Self {
        assert!(
            Path::new("/usr/bin/fail2ban-server").exists(),
            "fail2ban is not installed: the README's test command installs it (apt-get install -y fail2ban)"
        );
        std::fs::create_dir_all(run).expect("mkdir");
        let (socket, pidfile, stderr) = (run.join("f2b.sock"), run.join("f2b.pid"), run.join("server.stderr"));
        Self::spawn(Command::new("fail2ban-server"), conf, socket, &pidfile, &stderr, run.join("fail2ban.log"), env)
    }

    /// Runs `cmd` (fail2ban-server) in the foreground on `conf` and waits until it answers.
    fn spawn(
        mut cmd: Command,
        conf: &Path,
        socket: PathBuf,
        pidfile: &Path,
        stderr: &Path,
        log_file: PathBuf,
        env: &[(&str, &str)],
    ) -> Self {
        let child = cmd
            .args(["-f", "-x", "-c"])
            .arg(conf)
            .arg("-s")
            .arg(&socket)
            .arg("-p")
            .arg(pidfile)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("start fail2ban-server");
        let f2b = Self { dir: conf.to_owned(), socket, child: Some(child), log_file };
        wait_for("fail2ban-server to answer ping", Duration::from_secs(30), || {
            f2b.client_quiet(&["ping"]).then_some(())
        });
        f2b
    }

    fn client_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("fail2ban-client");
        c.arg("-c").arg(&self.dir).arg("-s").arg(&self.socket).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn client_quiet(&self, args: &[&str]) -> bool {
        self.client_cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// Runs `fail2ban-client` against this server; panics with its output on failure.
    pub fn client(&self, args: &[&str]) -> String {
        let out = self.client_cmd(args).output().expect("run fail2ban-client");
        assert!(
            out.status.success(),
            "fail2ban-client {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fail2Ban's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Stops the server the way an administrator does, then waits for its process to exit.
    pub fn stop(&mut self) {
        self.client(&["stop"]);
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if child.try_wait().expect("wait").is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("fail2ban-server did not exit after `stop`");
        }
    }
}

impl Drop for Fail2Ban {
    fn drop(&mut self) {
        // Stopped by the PID we started, whatever happened in the test.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Files of the machine's Fail2Ban configuration that are the administrator's or
/// f2b-notify's, not the package's: [`stock_fail2ban_dir`] leaves them out.
const NOT_STOCK: [&str; 6] = [
    "jail.local",
    "fail2ban.local",
    "action.d/dummy.local",
    "jail.d/f2b-notify.local",
    "action.d/f2b-notify.conf",
    "f2b-notify-setup.json",
];

/// A private copy of this machine's Fail2Ban configuration as the package ships it
/// (/etc/fail2ban: jail.conf, paths, filters, actions, jail.d/defaults-debian.conf) in
/// `dir/f2b`, set up to run in the test: `jail_local` as jail.local, a fail2ban.local that puts
/// the log, socket and pid file in `dir/f2b-run` and the database in memory, and a
/// dummy.local that sends the `dummy` firewall action's lines to `dir/dummy-target`. Returns
/// the copy's path. Panics (never skips) when Fail2Ban is not installed.
pub fn stock_fail2ban_dir(dir: &Path, jail_local: &str) -> PathBuf {
    assert!(
        Path::new(STOCK).join("jail.conf").is_file(),
        "fail2ban is not installed: the README's test command installs it (apt-get install -y fail2ban)"
    );
    let conf = dir.join("f2b");
    copy_tree(Path::new(STOCK), &conf, Path::new(""));
    let run = dir.join("f2b-run");
    std::fs::write(
        conf.join("fail2ban.local"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {run}/fail2ban.log\nsocket = {run}/f2b.sock\npidfile = {run}/f2b.pid\ndbfile = :memory:\n",
            run = run.display()
        ),
    )
    .expect("fail2ban.local");
    std::fs::write(
        conf.join("action.d/dummy.local"),
        format!("[Init]\ntarget = {}\n", dir.join("dummy-target").display()),
    )
    .expect("dummy.local");
    std::fs::write(conf.join("jail.local"), jail_local).expect("jail.local");
    conf
}

/// Copies the tree `src` to `dst` (modes kept, links as links), without [`NOT_STOCK`] files.
fn copy_tree(src: &Path, dst: &Path, rel: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dst).expect("mkdir");
    let mode = std::fs::metadata(src).expect("stat").permissions().mode();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
    for entry in std::fs::read_dir(src).expect("read the stock config") {
        let entry = entry.expect("entry");
        let rel = rel.join(entry.file_name());
        if NOT_STOCK.iter().any(|n| Path::new(n) == rel) {
            continue;
        }
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            copy_tree(&from, &to, &rel);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).expect("readlink"), &to).expect("symlink");
        } else {
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
}

/// Every entry below `root`, sorted: its relative path, type, mode, and content (a file's
/// bytes, a link's target). Equal snapshots mean a byte-identical tree.
pub fn snapshot(root: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let rel = path.strip_prefix(root).expect("below root").display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.push((rel, "link".to_owned(), mode, target.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                out.push((rel, "dir".to_owned(), mode, Vec::new()));
                stack.push(path);
            } else {
                out.push((rel, "file".to_owned(), mode, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Appends sshd "Authentication failure" lines, timestamped now, to an auth log.
pub fn append_ssh_failures(log: &Path, ip: &str, user: &str, count: usize) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open auth log");
    for i in 0..count {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        writeln!(f, "{now} testhost sshd[{}]: Authentication failure for {user} from {ip}", 1000 + i).expect("append");
    }
    f.flush().expect("flush");
}

/// The secret part of the stand-in's webhook URL; tests assert it never leaks.
pub const WEBHOOK_SECRET: &str = "T0/B0/SECRETwebhook";
/// The stand-in's bot token; tests assert it never leaks.
pub const API_TOKEN: &str = "xoxb-SECRET-api-token";

/// A Slack stand-in on loopback (port 0): an incoming webhook at `/services/…` and
/// `chat.postMessage` under `/api/` that checks the bearer token. It answers success unless
/// built with [`Slack::failing`].
pub struct Slack {
    server: Option<wiremock::MockServer>,
    rt: tokio::runtime::Runtime,
}

impl Slack {
    pub fn start() -> Self {
        Self::with(wiremock::ResponseTemplate::new(200).set_body_string("ok"), serde_json::json!({"ok": true}))
    }

    /// Both endpoints answer `status` with `body` and, when given, `Retry-After`.
    pub fn failing(status: u16, body: &str, retry_after: Option<&str>) -> Self {
        let mut webhook = wiremock::ResponseTemplate::new(status).set_body_string(body);
        if let Some(ra) = retry_after {
            webhook = webhook.insert_header("Retry-After", ra);
        }
        Self::with(webhook, serde_json::json!({"ok": false, "error": body}))
    }

    fn with(webhook: wiremock::ResponseTemplate, api: serde_json::Value) -> Self {
        use wiremock::matchers::{header, method, path};
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let server = rt.block_on(async {
            let server = wiremock::MockServer::start().await;
            wiremock::Mock::given(method("POST"))
                .and(path(format!("/services/{WEBHOOK_SECRET}")))
                .respond_with(webhook)
                .mount(&server)
                .await;
            wiremock::Mock::given(method("POST"))
                .and(path("/api/chat.postMessage"))
                .and(header("authorization", format!("Bearer {API_TOKEN}").as_str()))
                .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(api))
                .mount(&server)
                .await;
            server
        });
        Self { server: Some(server), rt }
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/services/{WEBHOOK_SECRET}", self.uri())
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/", self.uri())
    }

    fn uri(&self) -> String {
        self.server.as_ref().expect("running").uri()
    }

    /// Config for two sinks, `hook` (webhook, URL from a 0600 file) and `api` (token from the
    /// environment is not used here: from a file too), written into `dir`.
    pub fn sinks_toml(&self, dir: &Dir) -> String {
        use std::os::unix::fs::PermissionsExt;
        let url_file = dir.write("secrets/hook.url", &format!("{}\n", self.webhook_url()));
        let token_file = dir.write("secrets/api.token", &format!("{API_TOKEN}\n"));
        for f in [&url_file, &token_file] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        format!(
            r##"
[sinks.hook]
type = "slack-webhook"
url_file = "{}"
timeout = 5

[sinks.api]
type = "slack-api"
token_file = "{}"
channel = "#security"
url = "{}"
"##,
            url_file.display(),
            token_file.display(),
            self.api_url()
        )
    }

    /// Every request received so far: (which endpoint, JSON body).
    pub fn requests(&self) -> Vec<(&'static str, serde_json::Value)> {
        let server = self.server.as_ref().expect("running");
        let reqs = self.rt.block_on(server.received_requests()).unwrap_or_default();
        reqs.iter()
            .map(|r| {
                let which = if r.url.path().starts_with("/api/") { "api" } else { "hook" };
                (which, serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
            })
            .collect()
    }
}

impl Drop for Slack {
    fn drop(&mut self) {
        // The server's tasks live on this runtime: shut it down from inside it.
        let _guard = self.rt.enter();
        self.server.take();
    }
}

/// A real SMTP server on loopback (the email crate's aiosmtpd script, Debian's
/// python3-aiosmtpd), port 0, stopped by its PID. Delivered messages are JSON files.
pub struct Smtp {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl Smtp {
    pub fn start(dir: &Path) -> Self {
        let out = dir.join("smtp-mail");
        std::fs::create_dir_all(&out).expect("mkdir");
        let portfile = dir.join("smtp-port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/email/tests/smtp_server.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--portfile")
            .arg(&portfile)
            .arg("--outdir")
            .arg(&out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the SMTP server (python3-aiosmtpd)");
        let mut smtp = Self { child, port: 0, out };
        smtp.port = wait_for("the SMTP server's port", Duration::from_secs(20), || {
            std::fs::read_to_string(&portfile).ok().and_then(|p| p.trim().parse().ok())
        });
        smtp
    }

    /// Delivered messages in arrival order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .expect("read mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read mail")).expect("mail JSON"))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unused_imports)] // a build without the web sinks uses none of them
pub use f2b_notify_standins::{slack_ok, Reply, Request, Responder, StandIn};

/// The PID of the spool's live delivery worker, from its lock file (a stale PID is none).
pub fn worker_pid(spool: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(spool.join("worker.lock")).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline).contains("deliver").then_some(pid)
}

/// Kills the spool's delivery worker, if one runs, by the PID in its lock file.
pub fn kill_worker(spool: &Path) -> Option<u32> {
    signal_worker(spool, rustix::process::Signal::KILL)
}

/// Sends `signal` to the spool's delivery worker, if one runs, by the PID in its lock file.
pub fn signal_worker(spool: &Path, signal: rustix::process::Signal) -> Option<u32> {
    let pid = worker_pid(spool)?;
    let target = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::kill_process(target, signal).ok()?;
    Some(pid)
}

/// Stops the spool's worker when a test ends, however it ends.
pub struct WorkerGuard(pub PathBuf);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        kill_worker(&self.0);
        // And the workers of other config sets' spools inside it (SPOOL/sets/ID).
        for entry in std::fs::read_dir(self.0.join("sets")).into_iter().flatten().flatten() {
            kill_worker(&entry.path());
        }
    }
}

/// A system log on a private socket (what `F2B_NOTIFY_SYSLOG` points f2b-notify at): every
/// datagram it receives, as text. Like journald it reads all the time (a thread of its own),
/// so that a sender never finds its queue full because the test had not looked yet.
pub struct Syslog {
    pub path: PathBuf,
    socket: std::sync::Arc<std::os::unix::net::UnixDatagram>,
    /// What the reader took, behind the lock it holds while it waits for a datagram, so that
    /// [`Syslog::messages`] never misses one that is between the socket and this list.
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Where [`Syslog`] listens in a test's directory, and where [`Dir::cmd`] points
/// `F2B_NOTIFY_SYSLOG`.
pub const SYSLOG_SOCKET: &str = "syslog.sock";

impl Syslog {
    pub fn start(dir: &Path) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let path = dir.join(SYSLOG_SOCKET);
        let socket = Arc::new(std::os::unix::net::UnixDatagram::bind(&path).expect("bind the syslog socket"));
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sock, into, stopped) = (Arc::clone(&socket), Arc::clone(&received), Arc::clone(&stop));
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::Relaxed) {
                let mut list = into.lock().expect("log");
                if let Ok(n) = sock.recv(&mut buf) {
                    list.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
                drop(list);
                std::thread::yield_now();
            }
        });
        Self { path, socket, received, stop, reader: Some(reader) }
    }

    /// What arrived since the last call (everything sent before the call).
    pub fn messages(&self) -> Vec<String> {
        let mut list = self.received.lock().expect("log");
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            list.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        std::mem::take(&mut *list)
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}
