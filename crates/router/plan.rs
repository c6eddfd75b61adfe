//! Writes the plan that lets `f2b-notify-enqueue` spool the next events of a jail itself,
//! without starting this binary (see the f2b-notify-fastpath crate for why and how).
//!
//! Best effort: a plan that cannot be written only means the next event takes this binary
//! again. A plan is never written from a config file changed in the last two seconds: a
//! further edit within the same tick of the file system's clock, keeping the size, would not
//! change the file's identity, and the plan would go stale unnoticed.

use std::ffi::{CString, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use f2b_notify_core::Event;
use f2b_notify_fastpath::trust::{self, Untrusted};
use f2b_notify_fastpath::{plan, Ident, JailRoute, Kind, Plan};

use crate::config::{Loaded, Mode, Sources};
use crate::os::StdOs;
use crate::route::Table;

/// How old every config file must be before a plan may rely on it.
const SETTLED: Duration = Duration::from_secs(2);

pub(crate) fn ident(m: &fs::Metadata) -> Ident {
    Ident {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
    }
}

/// Where the plans are.
pub fn run_dir() -> PathBuf {
    std::env::var_os(plan::RUN_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(plan::DEFAULT_RUN_DIR), PathBuf::from)
}

/// Records `event`'s jail route in the plan for this invocation (`configs`: the `--config`
/// values as given). Says why not, at debug level, when it cannot.
pub fn record(
    configs: &[PathBuf],
    sources: &Sources,
    loaded: &Loaded,
    table: &Table,
    event: &Event,
    worker: Vec<OsString>,
) {
    if let Err(why) = try_record(configs, sources, loaded, table, event, worker) {
        tracing::debug!("no plan for the fast path: {why}");
    }
}

fn try_record(
    configs: &[PathBuf],
    sources: &Sources,
    loaded: &Loaded,
    table: &Table,
    event: &Event,
    worker: Vec<OsString>,
) -> Result<(), String> {
    if loaded.config.delivery.mode != Mode::Queue {
        return Err("direct mode".into());
    }
    let Some(route) = table.find(&event.jail) else { return Err("no route".into()) };
    // The front end writes straight into the plan's spool: only into one that is this set's
    // for sure (claimed by it), never one another set may claim first.
    if !crate::sets::is_ours(&loaded.config.delivery.spool, sources) {
        return Err("the spool is not claimed by this set of config files yet".into());
    }
    let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    let cwd = cwd.as_os_str().as_bytes();
    let configs: Vec<&[u8]> = configs.iter().map(|c| c.as_os_str().as_bytes()).collect();
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.into_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    let exe = std::env::current_exe().and_then(fs::metadata).map_err(|e| format!("cannot find this binary: {e}"))?;
    let settled = SystemTime::now() - SETTLED;
    let mut paths = Vec::new();
    for path in sources.watched(&loaded.files) {
        match fs::metadata(&path) {
            Ok(m) => {
                let changed =
                    m.modified().ok().max(SystemTime::UNIX_EPOCH.checked_add(Duration::new(
                        m.ctime().max(0) as u64,
                        m.ctime_nsec().clamp(0, 999_999_999) as u32,
                    )));
                if changed.is_none_or(|t| t > settled) {
                    return Err(format!("{} changed in the last {} s", path.display(), SETTLED.as_secs()));
                }
                paths.push((path.into_os_string().into_vec(), Some(ident(&m))));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => paths.push((path.into_os_string().into_vec(), None)),
            Err(e) => return Err(format!("cannot stat {}: {e}", path.display())),
        }
    }
    let fresh = Plan {
        inputs: plan::inputs_hash(cwd, &configs, env.iter().map(Vec::as_slice)),
        exe: ident(&exe),
        paths,
        spool: std::path::absolute(&loaded.config.delivery.spool)
            .unwrap_or_else(|_| loaded.config.delivery.spool.clone())
            .into_os_string()
            .into_vec(),
        host: loaded.config.host.clone().filter(|h| !h.is_empty()),
        worker: worker.into_iter().map(OsString::into_vec).collect(),
        jails: Vec::new(),
    };
    let dir = std::path::absolute(run_dir()).map_err(|e| format!("no run directory: {e}"))?;
    // The front end acts on what the plan says: a plan in a directory others could change
    // could make it drop events. An untrusted run directory turns the fast path off, loudly.
    let trusted = trusted_run_dir(&dir).map_err(|u| {
        tracing::warn!("the action's fast path is off: refusing to use {u}");
        format!("untrusted run directory {}", dir.display())
    })?;
    if !trusted {
        return Err(format!("cannot create {}", dir.display()));
    }
    let file = dir.join(plan::file_name(cwd, &configs));
    let old = CString::new(file.as_os_str().as_bytes()).ok().and_then(|c| plan::load(&StdOs, &c));
    let mut plan = match old {
        Some(old) if old.same_source(&fresh) => old,
        _ => fresh,
    };
    let mut events = 0;
    for kind in Kind::ALL {
        if route.config.events.iter().any(|k| k.as_str() == kind.as_str()) {
            events |= kind.bit();
        }
    }
    let jail = JailRoute {
        name: event.jail.clone(),
        events,
        restored: route.config.restored,
        inline: route.config.sinks.iter().any(|n| loaded.config.sinks.get(n).is_some_and(|c| c.delivered_inline())),
        sinks: route.config.sinks.clone(),
    };
    if !plan.set_jail(jail) && file.exists() {
        return Ok(());
    }
    write(&file, plan.render().as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Creates the run directory (0700) when missing and checks it and its ancestors.
fn trusted_run_dir(dir: &Path) -> Result<bool, Untrusted> {
    let bytes = dir.as_os_str().as_bytes();
    trust::ancestors(&StdOs, bytes)?;
    if !trust::dir(&StdOs, bytes)? && fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).is_err() {
        return Ok(false);
    }
    trust::dir(&StdOs, bytes)
}

/// Replaces `file` (0600, in the trusted run directory) through a new temporary file and a
/// rename, so the front end reads either the old plan or the new one. Not fsynced: after a
/// crash, a torn plan fails to parse and costs one slow event.
fn write(file: &Path, text: &[u8]) -> std::io::Result<()> {
    crate::spool::write_private(file, text, false)
}
