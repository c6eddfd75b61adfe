//! The spool's layout and the names both programs agree on: directories, file names, the
//! sink-name rule, and which `F2B_NOTIFY_…` variables are settings rather than config keys.
//!
//! ```text
//! SPOOL/              mode 0700
//!   tmp/              entries being written (then fsync, then rename into new/)
//!   new/              entries not yet handed to their sinks
//!   worker.lock       held (flock) by the one delivery worker; holds its PID
//!   worker.log        the detached worker's stderr
//!   service           while a service's `deliver --follow --service` serves the spool
//! ```
//! (The worker's own directories, `sinks/`, `dead/`, `corrupt/` and `state/`, are described
//! in the router's spool module: only the worker uses them.)

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Where entries are written before they are complete.
pub const TMP: &str = "tmp";
/// Where complete entries wait for the worker.
pub const NEW: &str = "new";
/// The lock the one worker holds.
pub const WORKER_LOCK: &str = "worker.lock";
/// The detached worker's stderr.
pub const WORKER_LOG: &str = "worker.log";
/// Left by `deliver --follow --service` (the packaged systemd unit) while it serves the
/// spool, and removed when it stops cleanly: while it is there, `notify` and the front end
/// start no worker of their own, even while the service is being restarted, so that every
/// delivery runs inside the service's sandbox.
pub const SERVICE_MARK: &str = "service";
/// Past this size the worker's log is renamed `worker.log.1` (replacing the one before) when
/// the next worker starts, or by a running worker.
pub const WORKER_LOG_MAX: u64 = 1 << 20;

/// An entry's file name: the enqueue time in nanoseconds (so names sort in arrival order),
/// the writer's PID and a per-process counter (so they never collide).
pub fn entry_file_name(nanos: u128, pid: u32, seq: u64) -> String {
    format!("{nanos:020}-{pid}-{seq}.json")
}

/// Sink names are `[a-z0-9_]+`: checked when the config loads, and again for every name read
/// from a spool file before it becomes a directory name.
pub fn valid_sink_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Config files to read, `:`-separated, like repeated `--config`.
pub const CONFIG_ENV: &str = "F2B_NOTIFY_CONFIG";
/// Moves the default config directory (tests, packagers).
pub const CONFIG_DIR_ENV: &str = "F2B_NOTIFY_CONFIG_DIR";
/// The log level on stderr (`info`, `debug`, …).
pub const LOG_ENV: &str = "F2B_NOTIFY_LOG";
/// Moves the plans' directory from `/run/f2b-notify`.
pub const RUN_DIR_ENV: &str = "F2B_NOTIFY_RUN_DIR";
/// The system log's socket instead of `/dev/log` (tests).
pub const SYSLOG_ENV: &str = "F2B_NOTIFY_SYSLOG";

/// The `F2B_NOTIFY_…` variables that are settings of the program, not config keys, and
/// whether each one selects which config files are read.
pub const SETTINGS: [(&str, bool); 5] =
    [(CONFIG_ENV, true), (CONFIG_DIR_ENV, true), (LOG_ENV, false), (RUN_DIR_ENV, false), (SYSLOG_ENV, false)];

/// The prefix of every variable f2b-notify reads.
pub const ENV_PREFIX: &str = "F2B_NOTIFY_";

/// Whether the variable `name` is one of `SETTINGS` (and so not a config key).
pub fn is_setting(name: &str) -> bool {
    SETTINGS.iter().any(|(s, _)| *s == name)
}

/// Whether a `NAME=VALUE` entry of the environment can change the loaded config: every
/// `F2B_NOTIFY_…` variable except the settings that do not select files.
pub fn env_changes_config(entry: &[u8]) -> bool {
    entry.starts_with(ENV_PREFIX.as_bytes())
        && !SETTINGS.iter().any(|(name, selects)| {
            !selects && entry.starts_with(name.as_bytes()) && entry.get(name.len()) == Some(&b'=')
        })
}

/// `parts` joined into one C string; `None` when a part holds a NUL byte (which no path
/// can hold).
pub fn c_path(parts: &[&[u8]]) -> Option<CString> {
    let mut p = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 1);
    for part in parts {
        p.extend_from_slice(part);
    }
    CString::new(p).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(entry_file_name(1_764_000_000_123_456_789, 42, 0), "01764000000123456789-42-0.json");
        assert!(entry_file_name(9, 1, 0) < entry_file_name(10, 1, 0), "names sort in time order");
        for ok in ["ops", "a_1", "9"] {
            assert!(valid_sink_name(ok), "{ok}");
        }
        for bad in ["", "Ops", "a-b", "../x", "a b", "é"] {
            assert!(!valid_sink_name(bad), "{bad}");
        }
        assert!(c_path(&[b"/a", b"/b"]).is_some());
        assert!(c_path(&[b"/a\0b"]).is_none());
    }

    #[test]
    fn settings_are_not_config() {
        assert!(env_changes_config(b"F2B_NOTIFY_SINKS__OPS__URL=x"));
        assert!(env_changes_config(b"F2B_NOTIFY_CONFIG=/a.toml"), "selects the files");
        assert!(env_changes_config(b"F2B_NOTIFY_CONFIG_DIR=/etc/x"));
        assert!(env_changes_config(b"F2B_NOTIFY_LOGX=1"), "a different variable");
        assert!(!env_changes_config(b"F2B_NOTIFY_LOG=debug"));
        assert!(!env_changes_config(b"F2B_NOTIFY_RUN_DIR=/tmp"));
        assert!(!env_changes_config(b"PATH=/bin"));
        assert!(is_setting("F2B_NOTIFY_RUN_DIR") && !is_setting("F2B_NOTIFY_HOST"));
    }
}
