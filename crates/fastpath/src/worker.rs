//! Starting the delivery worker, the one way both programs do it: unless a worker holds the
//! spool's lock, start `f2b-notify deliver` with stdin and stdout on /dev/null and stderr
//! appended to the spool's `worker.log` (renamed `worker.log.1` first when it has grown past
//! `WORKER_LOG_MAX`), in `/`. The worker leaves the action's session itself (setsid), so
//! Fail2Ban neither waits for it (it holds none of the action's pipes) nor kills it with the
//! action's process group.
//!
//! A spool that a service serves (`SERVICE_MARK`, left by `deliver --follow --service`) gets
//! no worker from here, even while the service is down between two starts: it delivers from
//! its sandbox. That costs one `lstat`, and only when no worker holds the lock.

use alloc::vec::Vec;
use core::ffi::CStr;

use crate::layout::{c_path, SERVICE_MARK, WORKER_LOCK, WORKER_LOG, WORKER_LOG_MAX};
use crate::os::{Errno, FileKind, Open, Os};

/// What `ensure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A worker holds the spool: nothing to do.
    AlreadyRunning,
    /// A new worker was started.
    Started,
    /// No worker holds the spool, but a service marks it as its own (it is starting or being
    /// restarted): it delivers, no worker was started.
    LeftToService,
}

/// Starts `exe args…` as the worker of the spool at `spool` unless one holds its lock.
pub fn ensure<O: Os>(os: &O, spool: &[u8], exe: &CStr, args: &[&[u8]]) -> Result<Started, Errno> {
    let lock_path = c_path(&[spool, b"/", WORKER_LOCK.as_bytes()]).ok_or(Errno::INVAL)?;
    let lock = os.open(&lock_path, Open::Lock)?;
    if !os.try_lock(&lock)? {
        return Ok(Started::AlreadyRunning);
    }
    let mark = c_path(&[spool, b"/", SERVICE_MARK.as_bytes()]).ok_or(Errno::INVAL)?;
    if os.lstat(&mark).is_ok_and(|m| m.kind == FileKind::File && m.uid == os.euid()) {
        return Ok(Started::LeftToService);
    }
    // Let go before the worker takes it: if another `notify` starts a worker in between,
    // one of the two finds the lock held and exits at once.
    drop(lock);
    let log_path = c_path(&[spool, b"/", WORKER_LOG.as_bytes()]).ok_or(Errno::INVAL)?;
    let mut log = os.open(&log_path, Open::Append)?;
    if os.fstat(&log).is_ok_and(|m| m.size > WORKER_LOG_MAX) {
        // The lines before stay in `worker.log.1` (replacing older ones): at most twice the
        // cap on disk, and the last errors are still there to read.
        let old = c_path(&[spool, b"/", WORKER_LOG.as_bytes(), b".1"]).ok_or(Errno::INVAL)?;
        if os.rename(&log_path, &old).is_ok() {
            drop(log);
            log = os.open(&log_path, Open::Append)?;
        } else {
            let _ = os.truncate(&log);
        }
    }
    let null = os.open(c"/dev/null", Open::ReadWrite)?;
    let args = args.iter().map(|a| c_path(&[a])).collect::<Option<Vec<_>>>().ok_or(Errno::INVAL)?;
    let mut argv: Vec<&CStr> = Vec::with_capacity(args.len() + 1);
    argv.push(exe);
    argv.extend(args.iter().map(|a| a.as_c_str()));
    os.spawn(&argv, &null, &log)?;
    Ok(Started::Started)
}
