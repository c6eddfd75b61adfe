//! The system log, for what must be seen even when nothing else works: an event that could
//! not be kept (the spool cannot be written) is named there. One datagram per message to
//! `/dev/log` (journald and rsyslog both listen there), in the classic `<PRI>TAG[PID]: MSG`
//! form. `F2B_NOTIFY_SYSLOG` names another socket (tests listen on their own).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use f2b_notify_core::flatten;

/// The socket messages go to.
pub fn socket() -> PathBuf {
    std::env::var_os(f2b_notify_fastpath::layout::SYSLOG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from)
}

/// Facility `daemon`, severity `err`.
const DAEMON_ERR: u8 = 3 * 8 + 3;

/// Sends `message` (flattened to one line, cut at 2,000 characters) as an error of facility
/// `daemon`; says whether the system log took it.
pub fn error(message: &str) -> bool {
    let line: String = flatten(message).chars().take(2000).collect();
    let datagram = format!("<{DAEMON_ERR}>f2b-notify[{}]: {line}", std::process::id());
    UnixDatagram::unbound().and_then(|s| s.send_to(datagram.as_bytes(), socket())).is_ok()
}
