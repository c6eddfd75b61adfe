//! No config file at all: the built-in default writes every event to stdout, which Fail2Ban
//! discards. With stdout not a terminal, `notify` also names the event in the system log, with
//! where it looked for a config; on a terminal (someone trying it by hand) it does not. These
//! run in every build: the behaviour does not depend on a sink feature.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{run, Dir, Syslog};

const BAN: [&str; 7] = ["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures=5"];

#[test]
fn no_config_and_no_terminal_puts_the_event_in_the_system_log() {
    let dir = Dir::new();
    let syslog = Syslog::start(dir.path());
    let mut c = dir.cmd();
    c.args(BAN);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n");
    assert_eq!(r.stderr, "", "nothing more for Fail2Ban's log");
    let logged = syslog.messages();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let etc = dir.path().join("no-etc");
    assert!(logged[0].starts_with("<28>f2b-notify["), "daemon.warning: {}", logged[0]);
    assert!(
        logged[0].contains(&format!(
            "]: no config file found (looked for {}/config.toml and {}/conf.d/*.toml)",
            etc.display(),
            etc.display()
        )),
        "{}",
        logged[0]
    );
    assert!(logged[0].ends_with(": Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)"), "{}", logged[0]);

    // stdout on /dev/null is no terminal either; a hostile id stays on one line.
    let mut c = dir.cmd();
    c.args(["notify", "unban", "--jail", "sshd", "--ip", "198.51.100.1\r\n<13>FAKE LINE"]).stdout(Stdio::null());
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let logged = syslog.messages();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].ends_with("unbanned 198.51.100.1  <13>FAKE LINE (not an IP address)"), "{}", logged[0]);
    assert!(!logged[0].contains(['\r', '\n']), "{:?}", logged[0]);

    // A config file, even one routing to stdout: nothing goes to the system log.
    let cfg = dir.write("etc/config.toml", "[sinks.out]\ntype = \"stdout\"\n[jails.\"*\"]\nsinks = [\"out\"]\n");
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_CONFIG_DIR", cfg.parent().unwrap()).args(BAN);
    let r = run(c);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n"));
    assert_eq!(syslog.messages(), Vec::<String>::new());
    // No file, but the environment sends the built-in sink to a file: that is read, nothing
    // is lost, nothing to say.
    let mut c = dir.cmd();
    c.env("F2B_NOTIFY_SINKS__STDOUT__PATH", dir.path().join("events.log")).args(BAN);
    let r = run(c);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{}", r.stderr);
    assert!(std::fs::read_to_string(dir.path().join("events.log")).unwrap().contains("banned IP 203.0.113.7"));
    assert_eq!(syslog.messages(), Vec::<String>::new());
    // Bad arguments are said on stderr (exit 2) and are no event to log.
    let mut c = dir.cmd();
    c.args(["notify", "ban", "--jail", "sshd"]);
    assert_eq!(run(c).code, Some(2));
    assert_eq!(syslog.messages(), Vec::<String>::new());
}

/// A pseudo-terminal: the controlling side, and the terminal a child gets as its stdout.
fn pty() -> (OwnedFd, std::fs::File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("open a pty");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes());
    let terminal = std::fs::OpenOptions::new().read(true).write(true).open(name).expect("open the terminal");
    (master, terminal)
}

/// What the child wrote to the terminal: read from the controlling side until `want` shows
/// (the terminal turns `\n` into `\r\n`).
fn read_until(master: OwnedFd, want: &str) -> String {
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut master = std::fs::File::from(master);
    let mut seen = Vec::new();
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen).contains(want) {
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("reading the pty: {e}; so far {:?}", String::from_utf8_lossy(&seen)),
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{want:?} never came: {:?}", String::from_utf8_lossy(&seen));
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn no_config_on_a_terminal_writes_only_to_the_terminal() {
    let dir = Dir::new();
    let syslog = Syslog::start(dir.path());
    let (master, terminal) = pty();
    assert!(rustix::termios::isatty(&terminal), "the child's stdout is a terminal");
    let mut c = dir.cmd();
    // Our copy of the terminal stays open until the output is read, so nothing is lost.
    c.args(BAN).stdout(terminal.try_clone().unwrap()).stderr(Stdio::piped());
    let out = c.output().expect("run f2b-notify");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let shown = read_until(master, "failure(s)\r\n");
    assert_eq!(shown, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\r\n");
    drop(terminal);
    // The datagram would have been sent before the process exited: nothing came.
    assert_eq!(syslog.messages(), Vec::<String>::new());
}
