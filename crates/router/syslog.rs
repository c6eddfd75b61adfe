//! The system log, for what must be seen even when nothing else works: an event that could
//! not be kept (the spool cannot be written) is named there, and so is an event that went only
//! to a stdout nobody reads (no config file, and Fail2Ban discards the action's stdout). One
//! datagram per message to `/dev/log` (journald and rsyslog both listen there), in the classic
//! `<PRI>TAG[PID]: MSG` form. `F2B_NOTIFY_SYSLOG` names another socket (tests listen on their
//! own).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use f2b_notify_core::flatten;

/// The socket messages go to.
pub fn socket() -> PathBuf {
    std::env::var_os(f2b_notify_fastpath::layout::SYSLOG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from)
}

/// Facility `daemon`.
const DAEMON: u8 = 3;
/// Severity `err`.
const ERR: u8 = 3;
/// Severity `warning`.
const WARNING: u8 = 4;

/// How long a message may wait for a system log whose queue is full (the kernel queues only a
/// few datagrams: `net.unix.max_dgram_qlen`). It is sent from the action, under Fail2Ban's
/// global lock: a system log that does not read must not hold banning up for more than this
/// per event. An error not taken in time is said on stderr with a failed exit instead, which
/// Fail2Ban logs as an error.
pub const WAIT: Duration = Duration::from_secs(1);

/// Sends `message` (flattened to one line, cut at 2,000 characters) as an error of facility
/// `daemon`, waiting at most [`WAIT`] while the system log's queue is full; says whether the
/// system log took it.
pub fn error(message: &str) -> bool {
    send_to(&socket(), ERR, message, Some(WAIT))
}

/// Sends `message` as a warning of facility `daemon`, waiting at most [`WAIT`]; says whether
/// the system log took it.
pub fn warning(message: &str) -> bool {
    send_to(&socket(), WARNING, message, Some(WAIT))
}

/// One datagram to `socket`; `wait`: how long a full queue is waited for.
fn send_to(socket: &Path, severity: u8, message: &str, wait: Option<Duration>) -> bool {
    let line: String = flatten(message).chars().take(2000).collect();
    let datagram = format!("<{}>f2b-notify[{}]: {line}", DAEMON * 8 + severity, std::process::id());
    UnixDatagram::unbound()
        .and_then(|s| s.set_write_timeout(wait).map(|()| s))
        .and_then(|s| s.send_to(datagram.as_bytes(), socket))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Sends warnings from a thread of its own until one is not taken; its count, and how long
    /// that last one waited. A sender that waits for good fails the test instead of hanging it.
    fn fill(path: &Path) -> (usize, Duration) {
        let (done, finished) = mpsc::channel();
        let to = path.to_owned();
        std::thread::spawn(move || {
            let mut sent = 0;
            let mut started = Instant::now();
            while send_to(&to, WARNING, &format!("message {sent}\nFAKE"), Some(WAIT)) {
                sent += 1;
                started = Instant::now();
                assert!(sent < 100_000, "the queue never filled");
            }
            let _ = done.send((sent, started.elapsed()));
        });
        finished.recv_timeout(WAIT * 10).expect("the message gave up after a moment")
    }

    /// A system log that does not read holds a message up for a moment, never for good (it is
    /// sent under Fail2Ban's lock); one that reads within the moment takes it. Every message
    /// is one line.
    #[test]
    fn a_full_queue_holds_a_message_a_moment_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let log = UnixDatagram::bind(&path).unwrap();
        let (sent, waited) = fill(&path);
        assert!(waited >= WAIT && waited < WAIT * 5, "{waited:?} for the message after {sent}");
        // An error waits for a reader that comes within the moment.
        let (done, finished) = mpsc::channel();
        let to = path.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let taken = send_to(&to, ERR, "kept nowhere else", Some(WAIT));
            let _ = done.send((taken, started.elapsed()));
        });
        std::thread::sleep(WAIT / 2);
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        log.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while got.len() < sent + 1 {
            let n = log.recv(&mut buf).expect("a datagram");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let (taken, waited) = finished.recv_timeout(Duration::from_secs(5)).expect("the error was sent");
        // It waited for the reader (which came half a moment after it was started, give or
        // take the thread's start), and no longer.
        assert!(taken && waited >= WAIT / 4, "{taken} after {waited:?}");
        let pid = std::process::id();
        assert_eq!(got[0], format!("<28>f2b-notify[{pid}]: message 0 FAKE"));
        assert_eq!(got[sent], format!("<27>f2b-notify[{pid}]: kept nowhere else"));
    }
}
