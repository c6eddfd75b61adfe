//! The system log, for what must be seen even when nothing else works: an event that could
//! not be kept (the spool cannot be written) is named there, and so is an event that went only
//! to a stdout nobody reads (no config file, and Fail2Ban discards the action's stdout). One
//! datagram per message to `/dev/log` (journald and rsyslog both listen there), in the classic
//! `<PRI>TAG[PID]: MSG` form. `F2B_NOTIFY_SYSLOG` names another socket (tests listen on their
//! own).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

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

/// Sends `message` (flattened to one line, cut at 2,000 characters) as an error of facility
/// `daemon`; says whether the system log took it.
pub fn error(message: &str) -> bool {
    send(ERR, message)
}

/// Sends `message` as a warning of facility `daemon`; says whether the system log took it.
pub fn warning(message: &str) -> bool {
    send(WARNING, message)
}

/// Never waits: this runs in the action, under Fail2Ban's global lock, and a system log that
/// does not read (its queue full) would hold up every ban. Such a message counts as not taken.
fn send(severity: u8, message: &str) -> bool {
    let line: String = flatten(message).chars().take(2000).collect();
    let datagram = format!("<{}>f2b-notify[{}]: {line}", DAEMON * 8 + severity, std::process::id());
    UnixDatagram::unbound()
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(|s| s.send_to(datagram.as_bytes(), socket()))
        .is_ok()
}
