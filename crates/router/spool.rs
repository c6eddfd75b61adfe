//! The spool: where `notify` leaves events for the background worker, durably.
//!
//! ```text
//! SPOOL/              mode 0700
//!   tmp/              events being written (then fsync, then rename into new/)
//!   new/              events not yet handed to their sinks
//!   sinks/NAME/       each sink's own queue: a hard link per event, removed once delivered,
//!                     so a broken sink never delays or duplicates the others; `X.json.retried`
//!                     beside an event holds when `queue retry` gave it a fresh `max_age`
//!   dead/NAME/        what a sink gave up on, each with a `.reason` file beside it (whose
//!                     mtime says when; deleted after `dead_retention`)
//!   corrupt/          files that could not be read, with a `.reason` file
//!   state/NAME.json   each sink's progress and last error, for `f2b-notify queue`
//!   worker.lock       held (flock) by the one worker; holds its PID
//!   follow.lock       held (flock) by a `deliver --follow` waiting for worker.lock: an
//!                     on-demand worker that sees it held hands the spool over
//!   worker.log        the detached worker's stderr
//! ```
//!
//! Every file is created with mode 0600. What both programs write (`tmp/`, `new/`, the entry
//! format, file names, starting the worker) is the action contract in the fastpath crate;
//! this module reads it and keeps the worker's own directories.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use f2b_notify_core::Event;
use f2b_notify_fastpath::spool as fastpath_spool;
use f2b_notify_fastpath::trust::{self, Untrusted};
use f2b_notify_fastpath::{entry, layout, Errno};

/// `O_NOFOLLOW` for `OpenOptionsExt::custom_flags`: no file of the spool is opened through a
/// symbolic link.
const O_NOFOLLOW: i32 = linux_raw_sys::general::O_NOFOLLOW as i32;
/// `O_NONBLOCK`: opening a FIFO put in a file's place does not wait for a writer.
const O_NONBLOCK: i32 = linux_raw_sys::general::O_NONBLOCK as i32;

use crate::os::StdOs;
use serde::{Deserialize, Serialize};

/// One spooled event and the sinks it is for, as read back. (It is written only by the
/// action contract's writer, `f2b_notify_fastpath::entry`: tests may serialize it to forge
/// files, the program never does.)
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Format version, for upgrades.
    pub version: u32,
    /// When `notify` wrote it, seconds since the epoch.
    pub enqueued_at: f64,
    /// The sinks the route chose when the event happened.
    pub sinks: Vec<String>,
    /// Why no route chose the sinks (the config did not load): the worker routes the event
    /// once a config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrouted: Option<String>,
    /// The event itself.
    pub event: Event,
}

impl Entry {
    /// A new entry for `event`, stamped now.
    pub fn new(event: Event, sinks: Vec<String>) -> Self {
        Self { version: entry::VERSION, enqueued_at: now_epoch(), sinks, unrouted: None, event }
    }

    /// A new entry for `event` that no route could take, because `reason`.
    pub fn unrouted(event: Event, reason: String) -> Self {
        Self { version: entry::VERSION, enqueued_at: now_epoch(), sinks: Vec::new(), unrouted: Some(reason), event }
    }
}

/// Where the worker's current config routes an event that was spooled unrouted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// To these sinks (maybe none: the route wants no such event).
    Sinks(Vec<String>),
    /// Nowhere, because (said in the worker's log).
    Dropped(String),
}

/// What one [`Spool::fan_out`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    /// Events handed to their sinks' queues (or dropped by the route).
    pub handed: usize,
    /// Events spooled unrouted that still wait for a config that loads.
    pub waiting: usize,
}

/// A sink's progress as the worker last saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkState {
    /// Failed tries in a row.
    pub attempts: u32,
    /// The last error, if the last try failed.
    pub last_error: Option<String>,
    /// When the next try is due (epoch seconds), if waiting.
    pub next_try_at: Option<f64>,
    /// When a message last went out (epoch seconds).
    pub last_delivered_at: Option<f64>,
    /// Events delivered by this worker run.
    pub delivered: u64,
    /// When `last_error` happened (epoch seconds). Missing in state files of older versions.
    #[serde(default)]
    pub last_error_at: Option<f64>,
    /// The alert sinks were told that this sink is in trouble, and not yet that it recovered
    /// (kept here so that the worker that sees it recover says so, whichever it is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alert_open: bool,
}

/// Seconds since the epoch, now.
pub fn now_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub use f2b_notify_fastpath::layout::valid_sink_name;

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// Creates `path` (0700) when missing, then makes sure it can be trusted: a real directory
/// of this user that no one else can write (an existing one may be anything).
pub fn mkdir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    trust::dir(&StdOs, path.as_os_str().as_bytes()).map_err(untrusted)?;
    Ok(())
}

/// A directory that must not be used, as an I/O error carrying the one-line explanation.
pub fn untrusted(u: Untrusted) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("refusing to use {u}"))
}

/// Reads a file without following a symbolic link at its end; only a regular file.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    read_limited(path, u64::MAX)
}

/// [`read_nofollow`], refusing a file of more than `max` bytes. Opened non-blocking and
/// checked to be a regular file before anything is read: a FIFO or a device put in the
/// file's place cannot block the reader or feed it without end.
pub fn read_limited(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = OpenOptions::new().read(true).custom_flags(O_NOFOLLOW | O_NONBLOCK).open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
    }
    if meta.len() > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} bytes, more than {max}", meta.len())));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(1 << 20));
    f.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// The lock a `deliver --follow` holds while it waits for `worker.lock`.
const FOLLOW_LOCK: &str = "follow.lock";

/// The [`RETRIED`] sidecar of a queued event.
fn retried_path(event: &Path) -> PathBuf {
    let mut p = event.as_os_str().to_owned();
    p.push(".");
    p.push(RETRIED);
    PathBuf::from(p)
}

/// Removes a file; one that is already gone is not an error.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The `.json` files of a directory, sorted by name (arrival order).
fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files)
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    layout::entry_file_name(nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The action contract's system-call error as the standard library's.
pub fn io_error(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}

/// Replaces `path` with `text` (0600) through a new temporary file beside it and a rename, so
/// that a reader sees the old file or the new one. The temporary file has a name no one can
/// guess in advance and is created exclusively, never through a symbolic link; it is removed
/// if anything fails. `durable`: fsync before the rename.
pub fn write_private(path: &Path, text: &[u8], durable: bool) -> io::Result<()> {
    write_file(path, text, 0o600, durable)
}

/// [`write_private`] with the file's `mode` (set on the temporary file before the rename:
/// the file never has another mode under its own name).
pub fn write_file(path: &Path, text: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.{nanos}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(O_NOFOLLOW).open(&tmp)?;
        f.write_all(text)?;
        if mode != 0o600 {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        if durable {
            f.sync_data()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The extension of the sidecar `queue retry` leaves beside an event it moved back
/// (`X.json.retried`): the event's `max_age` counts from the time in it, not from when it was
/// spooled, so that a retried event is not dead again at once. The event's own file is the
/// action contract's and is never rewritten: its `enqueued_at` stays as it was.
pub const RETRIED: &str = "retried";

/// How long a directory's mtime must be in the past before an unchanged mtime is taken to mean
/// an unchanged directory. The kernel stamps directories from a coarse clock (a few ms per
/// tick): a file added in the same tick as a look leaves the mtime as that look saw it, so a
/// recent mtime proves nothing and the directory is read again.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
thread_local! {
    /// How many times this thread read a sink's queue directory (the worker's tests check
    /// that a waiting worker does not).
    pub static LISTINGS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Tells, from its mtime alone, whether a directory may have changed since the last look, so
/// that a worker waiting on a backlog of 100 000 events stats its queue instead of reading it.
#[derive(Debug, Default, Clone)]
pub struct DirStamp {
    seen: Option<SystemTime>,
    settled: bool,
}

impl DirStamp {
    /// Whether `dir` may have changed since the last call (always on the first one, and while
    /// its mtime is younger than [`SETTLE`]). A directory that does not exist has not changed
    /// until it appears.
    pub fn changed(&mut self, dir: &Path) -> io::Result<bool> {
        let mtime = match fs::symlink_metadata(dir) {
            Ok(m) => Some(m.modified()?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let unchanged = self.settled && mtime == self.seen;
        self.seen = mtime;
        // A clock set back makes every mtime "in the future": never settled, read each time
        // (slower, never wrong).
        self.settled = mtime.is_none_or(|m| SystemTime::now().duration_since(m).is_ok_and(|age| age >= SETTLE));
        Ok(!unchanged)
    }

    /// Forgets the last look: the next [`Self::changed`] says yes.
    pub fn reset(&mut self) {
        self.settled = false;
    }
}

/// A sink's queue as last read: its events' file names, oldest first, and which of them have
/// a [`RETRIED`] sidecar. Read again only when the directory changed.
#[derive(Debug, Default, Clone)]
pub struct Queue {
    stamp: DirStamp,
    /// Event file names (`….json`), sorted (arrival order).
    pub names: Vec<Box<str>>,
    /// The event file names that have a `.retried` sidecar.
    pub retried: std::collections::HashSet<Box<str>>,
}

impl Queue {
    /// Reads `dir` again if it may have changed; returns whether it did.
    pub fn refresh(&mut self, dir: &Path) -> io::Result<bool> {
        if !self.stamp.changed(dir)? {
            return Ok(false);
        }
        #[cfg(test)]
        LISTINGS.with(|n| n.set(n.get() + 1));
        let mut names = Vec::new();
        let mut retried = std::collections::HashSet::new();
        match fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    let Ok(name) = e?.file_name().into_string() else { continue };
                    if let Some(event) = name.strip_suffix(&format!(".{RETRIED}")) {
                        retried.insert(Box::from(event));
                    } else if name.ends_with(".json") {
                        names.push(name.into_boxed_str());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.stamp.reset();
                return Err(e);
            }
        }
        names.sort_unstable();
        retried.retain(|r| names.binary_search(r).is_ok());
        self.names = names;
        self.retried = retried;
        Ok(true)
    }
}

/// Dead letters deleted for being older than the retention period, per sink.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// (sink, how many) for each sink that lost some.
    pub per_sink: Vec<(String, usize)>,
}

impl Spool {
    /// The spool at `root` (nothing is created yet); a relative path is taken from the
    /// working directory now.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self { root: std::path::absolute(&root).unwrap_or(root) }
    }

    /// Whether the directories both programs write (the spool's ancestors, the spool, `tmp/`
    /// and `new/`) can be trusted; `Ok(false)` when some do not exist yet.
    pub fn trusted_for_notify(&self) -> Result<bool, Untrusted> {
        trust::spool(&StdOs, self.root.as_os_str().as_bytes())
    }

    /// Whether the whole spool can be trusted: its ancestors and every directory in it that
    /// exists (the worker and `queue` check this before they touch anything).
    pub fn verify(&self) -> Result<(), Untrusted> {
        let os = StdOs;
        let root = self.root.as_os_str().as_bytes();
        trust::ancestors(&os, root)?;
        if !trust::dir(&os, root)? {
            return Ok(());
        }
        for d in [layout::TMP, layout::NEW, "sinks", "dead", "corrupt", "state", "inflight", crate::sets::SETS] {
            let dir = self.dir(d);
            if trust::dir(&os, dir.as_os_str().as_bytes())? && matches!(d, "sinks" | "dead") {
                // Listed without following links: a link here is reported, not entered.
                for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    trust::dir(&os, entry.path().as_os_str().as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// The spool directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `new/`: events not yet handed to their sinks.
    pub fn new_dir(&self) -> PathBuf {
        self.dir(layout::NEW)
    }

    /// `sinks/`: the sinks' queues.
    pub fn sinks_dir(&self) -> PathBuf {
        self.dir("sinks")
    }

    /// The queue directory of one sink.
    pub fn sink_dir(&self, sink: &str) -> PathBuf {
        self.root.join("sinks").join(sink)
    }

    /// The dead-letter directory of one sink.
    pub fn dead_dir(&self, sink: &str) -> PathBuf {
        self.root.join("dead").join(sink)
    }

    /// Creates the spool's directories (mode 0700) if missing.
    pub fn ensure(&self) -> io::Result<()> {
        for d in [layout::TMP, layout::NEW, "sinks", "dead", "corrupt", "state"] {
            mkdir(&self.dir(d))?;
        }
        Ok(())
    }

    /// Writes an event durably: temp file, fsync, rename into `new/`. Once this returns, a
    /// crash or SIGKILL of any process cannot lose the event. (The directory is not fsynced:
    /// that would cost every ban a second journal commit under Fail2Ban's lock, and the
    /// rename is journaled in order after the file's data.)
    pub fn enqueue(&self, entry: &Entry) -> io::Result<PathBuf> {
        let name = unique_name();
        let notify = entry.event.to_notify();
        let text = match &entry.unrouted {
            None => f2b_notify_fastpath::entry::json(&notify, &entry.sinks, &entry.event.host, entry.enqueued_at),
            Some(why) => f2b_notify_fastpath::entry::unrouted(&notify, &entry.event.host, entry.enqueued_at, why),
        };
        let root = self.root.as_os_str().as_bytes();
        // The directories exist after the first event: create them only when missing, so the
        // action path makes no needless system calls.
        // The directories are checked before anything is written into them (and again once
        // created: someone may have made one first).
        if !self.trusted_for_notify().map_err(untrusted)? {
            self.ensure()?;
            self.trusted_for_notify().map_err(untrusted)?;
        }
        fastpath_spool::write(&StdOs, root, &name, text.as_bytes()).map_err(io_error)?;
        Ok(self.dir(layout::NEW).join(name))
    }

    /// Reads one spooled file.
    pub fn load(path: &Path) -> Result<Entry, String> {
        let bytes = read_nofollow(path).map_err(|e| format!("cannot read: {e}"))?;
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| format!("not a spooled event: {e}"))?;
        if entry.version != entry::VERSION {
            return Err(format!("unknown spool format version {}", entry.version));
        }
        if let Some(bad) = entry.sinks.iter().find(|s| !valid_sink_name(s)) {
            return Err(format!("bad sink name {bad:?}"));
        }
        Ok(entry)
    }

    /// Hands every event in `new/` to its sinks' queues (hard links, idempotent, so a crash
    /// half-way only means doing it again). Unreadable files are moved aside. An event spooled
    /// unrouted (the config did not load) is routed by `route` now, or, without one, stays in
    /// `new/` and is counted as waiting.
    pub fn fan_out(&self, route: Option<&dyn Fn(&Event) -> Routed>) -> io::Result<FanOut> {
        let mut out = FanOut::default();
        let files = json_files(&self.dir(layout::NEW))?;
        if files.is_empty() {
            return Ok(out);
        }
        let mut done = Vec::new();
        for file in files {
            let entry = match Self::load(&file) {
                Ok(e) => e,
                Err(reason) => {
                    // Said in the worker's log as well as beside the file: nothing leaves
                    // the queues unnoticed.
                    tracing::error!("{}: moved to {}/corrupt: {reason}", file.display(), self.root.display());
                    self.quarantine(&file, &reason)?;
                    continue;
                }
            };
            let sinks = match (&entry.unrouted, route) {
                (None, _) => entry.sinks,
                (Some(_), None) => {
                    out.waiting += 1;
                    continue;
                }
                (Some(why), Some(route)) => match route(&entry.event) {
                    Routed::Sinks(sinks) => {
                        tracing::info!(
                            "{}: routed now to {} (spooled unrouted: {why})",
                            file.display(),
                            if sinks.is_empty() { "no sink".to_owned() } else { sinks.join(", ") }
                        );
                        sinks
                    }
                    Routed::Dropped(because) => {
                        tracing::warn!("{}: spooled unrouted ({why}), and now {because}", file.display());
                        done.push(file);
                        continue;
                    }
                },
            };
            let name = file.file_name().map(PathBuf::from).unwrap_or_default();
            for sink in &sinks {
                if !valid_sink_name(sink) {
                    continue;
                }
                let dir = self.sink_dir(sink);
                mkdir(&dir)?;
                match fs::hard_link(&file, dir.join(&name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            done.push(file);
        }
        // No fsync here: the event's data was fsynced by `notify`, a killed process cannot
        // undo a link or an unlink, and journaling filesystems commit these metadata changes
        // in order (the link before the unlink that follows it). A directory fsync per poll
        // would also stall every `notify` fsync behind a journal commit during a storm.
        out.handed = done.len();
        for file in done {
            fs::remove_file(file)?;
        }
        Ok(out)
    }

    /// Why events spooled unrouted wait in `new/`: the reason of each, oldest first.
    pub fn unrouted_reasons(&self) -> io::Result<Vec<String>> {
        Ok(self.unrouted()?.iter().filter_map(|f| Self::load(f).ok().and_then(|e| e.unrouted)).collect())
    }

    /// The sinks that have a queue directory.
    pub fn sink_names(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = match fs::read_dir(self.dir("sinks")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_sink_name(n))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(names)
    }

    /// A sink's pending event files, oldest first.
    pub fn pending(&self, sink: &str) -> io::Result<Vec<PathBuf>> {
        json_files(&self.sink_dir(sink))
    }

    /// Files in `new/` not yet handed out.
    pub fn unrouted(&self) -> io::Result<Vec<PathBuf>> {
        json_files(&self.dir(layout::NEW))
    }

    /// A sink's dead letters.
    pub fn dead(&self, sink: &str) -> io::Result<Vec<PathBuf>> {
        json_files(&self.dead_dir(sink))
    }

    /// Every sink that has dead letters.
    pub fn dead_sinks(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = match fs::read_dir(self.dir("dead")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_sink_name(n))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(names)
    }

    /// Files moved aside as unreadable.
    pub fn corrupt(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = match fs::read_dir(self.dir("corrupt")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_none_or(|x| x != "reason"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        files.sort();
        Ok(files)
    }

    /// Moves a sink's files to its dead-letter directory, each with the reason beside it.
    pub fn bury(&self, sink: &str, files: &[PathBuf], reason: &str) -> io::Result<()> {
        let dir = self.dead_dir(sink);
        mkdir(&dir)?;
        for f in files {
            let Some(name) = f.file_name() else { continue };
            let dest = dir.join(name);
            // Without its reason (a full disk) the event is still moved: `queue` says so, and
            // the reason is in the worker's log.
            if let Err(e) = write_private(&dest.with_extension("json.reason"), format!("{reason}\n").as_bytes(), false)
            {
                tracing::warn!("{}: cannot write its reason ({e}): {reason}", dest.display());
            }
            match fs::rename(f, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            // A dead letter's age no longer matters; `queue retry` stamps it again.
            remove_if_present(&retried_path(f))?;
        }
        Ok(())
    }

    /// Moves an unreadable file to `corrupt/` with the reason beside it.
    pub fn quarantine(&self, file: &Path, reason: &str) -> io::Result<()> {
        let dir = self.dir("corrupt");
        mkdir(&dir)?;
        let name = file.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(unique_name()));
        let dest = dir.join(&name);
        if let Err(e) =
            write_private(&dir.join(format!("{}.reason", name.display())), format!("{reason}\n").as_bytes(), false)
        {
            tracing::warn!("{}: cannot write its reason ({e}): {reason}", dest.display());
        }
        match fs::rename(file, &dest) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The reason a dead letter or corrupt file was moved aside.
    pub fn reason_of(file: &Path) -> String {
        let mut p = file.as_os_str().to_owned();
        p.push(".reason");
        match read_nofollow(Path::new(&p)) {
            Ok(text) => String::from_utf8_lossy(&text).trim().to_owned(),
            Err(_) => "(no reason recorded: see the worker's log)".to_owned(),
        }
    }

    /// Moves every dead letter back into its sink's queue; returns how many. Each gets a
    /// [`RETRIED`] sidecar with the time now, written before the event is moved (a worker
    /// never sees it back without the stamp), so that its `max_age` starts again.
    pub fn retry_dead(&self) -> io::Result<usize> {
        let now = format!("{}\n", now_epoch());
        let mut n = 0;
        for sink in self.dead_sinks()? {
            let queue = self.sink_dir(&sink);
            mkdir(&queue)?;
            for f in self.dead(&sink)? {
                let Some(name) = f.file_name() else { continue };
                let reason = f.with_extension("json.reason");
                let back = queue.join(name);
                write_private(&retried_path(&back), now.as_bytes(), false)?;
                fs::rename(&f, &back)?;
                let _ = fs::remove_file(reason);
                n += 1;
            }
        }
        Ok(n)
    }

    /// When `queue retry` last moved this queued event back (its [`RETRIED`] sidecar), if it
    /// did.
    pub fn retried_at(event: &Path) -> Option<f64> {
        let text = read_nofollow(&retried_path(event)).ok()?;
        std::str::from_utf8(&text).ok()?.trim().parse().ok().filter(|t: &f64| t.is_finite())
    }

    /// Removes the [`RETRIED`] sidecar of a queued event (delivered, or moved aside).
    pub fn forget_retried(event: &Path) -> io::Result<()> {
        remove_if_present(&retried_path(event))
    }

    /// Deletes the dead letters moved aside more than `retention` ago (the time of their
    /// `.reason` file, written when they were moved; the event's own mtime when it has none).
    /// Also removes `.retried` sidecars left without their event for as long (a crash between
    /// a delivery and the sidecar's removal).
    pub fn prune_dead(&self, retention: std::time::Duration) -> io::Result<Pruned> {
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
            return Ok(Pruned::default());
        };
        let old = |p: &Path| fs::symlink_metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
        let mut pruned = Pruned::default();
        for sink in self.dead_sinks()? {
            let mut n = 0;
            for f in self.dead(&sink)? {
                let reason = f.with_extension("json.reason");
                let buried_long_ago = if reason.exists() { old(&reason) } else { old(&f) };
                if buried_long_ago {
                    remove_if_present(&f)?;
                    remove_if_present(&reason)?;
                    n += 1;
                }
            }
            if n > 0 {
                pruned.per_sink.push((sink, n));
            }
        }
        for sink in self.sink_names()? {
            let dir = self.sink_dir(&sink);
            for e in fs::read_dir(&dir)?.flatten() {
                let path = e.path();
                let Some(event) = path.to_str().and_then(|p| p.strip_suffix(&format!(".{RETRIED}"))) else {
                    continue;
                };
                if !Path::new(event).exists() && old(&path) {
                    remove_if_present(&path)?;
                }
            }
        }
        Ok(pruned)
    }

    /// Deletes every dead letter; returns how many.
    pub fn purge_dead(&self) -> io::Result<usize> {
        let mut n = 0;
        for sink in self.dead_sinks()? {
            for f in self.dead(&sink)? {
                let _ = fs::remove_file(f.with_extension("json.reason"));
                fs::remove_file(f)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Saves a sink's state for `f2b-notify queue`.
    pub fn save_state(&self, sink: &str, state: &SinkState) -> io::Result<()> {
        mkdir(&self.dir("state"))?;
        let body = serde_json::to_vec(state).map_err(io::Error::other)?;
        write_private(&self.dir("state").join(format!("{sink}.json")), &body, false)
    }

    /// A sink's last saved state.
    pub fn load_state(&self, sink: &str) -> Option<SinkState> {
        let bytes = read_nofollow(&self.dir("state").join(format!("{sink}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves, durably, the messages of a sink's bans (see `worker::conversation`).
    pub fn save_threads(&self, sink: &str, body: &[u8]) -> io::Result<()> {
        mkdir(&self.dir("state"))?;
        write_private(&self.dir("state").join(format!("{sink}.threads.json")), body, true)
    }

    /// The messages of a sink's bans as last saved (`None` when there are none yet), at most
    /// `max` bytes.
    pub fn load_threads(&self, sink: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        match read_limited(&self.dir("state").join(format!("{sink}.threads.json")), max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `SPOOL/service` (see `layout::SERVICE_MARK`).
    pub fn service_mark(&self) -> PathBuf {
        self.dir(layout::SERVICE_MARK)
    }

    /// Leaves `SPOOL/service` (creating the spool if needed), holding this process's PID and
    /// what the file means.
    pub fn mark_service(&self) -> io::Result<()> {
        self.ensure()?;
        let text = format!(
            "{}\nleft by `f2b-notify deliver --follow --service`, removed when it stops cleanly: while it is here, `notify` starts no worker of its own\n",
            std::process::id()
        );
        write_private(&self.service_mark(), text.as_bytes(), true)
    }

    /// Removes `SPOOL/service`; one that is not there is not an error.
    pub fn unmark_service(&self) -> io::Result<()> {
        remove_if_present(&self.service_mark())
    }

    /// Whether a service marks the spool as its own (a regular file, not a link).
    pub fn service_marked(&self) -> bool {
        fs::symlink_metadata(self.service_mark()).is_ok_and(|m| m.is_file())
    }

    /// Tries to become the spool's one worker: `Some(lock)` if no other worker holds it.
    /// The lock file then holds this process's PID.
    pub fn try_lock(&self) -> io::Result<Option<File>> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(O_NOFOLLOW)
                .open(self.dir(layout::WORKER_LOCK))
        };
        let f = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure()?;
                open()?
            }
            other => other?,
        };
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Says that a `deliver --follow` waits for the spool: holds `follow.lock` while the
    /// returned file is open (`None` when another one already waits). An on-demand worker
    /// that sees it held ([`Self::follower_waiting`]) hands the spool over.
    pub fn announce_follower(&self) -> io::Result<Option<File>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(O_NOFOLLOW)
            .open(self.dir(FOLLOW_LOCK))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a `deliver --follow` waits for the spool (holds `follow.lock`). The lock dies
    /// with its process, so a follower that was killed never holds up an on-demand worker.
    pub fn follower_waiting(&self) -> io::Result<bool> {
        let f = match OpenOptions::new().read(true).custom_flags(O_NOFOLLOW).open(self.dir(FOLLOW_LOCK)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match f.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(fs::TryLockError::WouldBlock) => Ok(true),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a worker holds the lock now, and its PID.
    pub fn worker(&self) -> io::Result<Option<u32>> {
        use std::os::unix::fs::MetadataExt;
        let path = self.dir(layout::WORKER_LOCK);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Looked up in /proc/locks, not by taking the lock: a worker that tries the lock while
        // `queue` holds it for a moment would believe another worker has the spool and leave.
        let locks = fs::read_to_string("/proc/locks")?;
        let dev = meta.dev();
        let (major, minor) = ((dev >> 8) & 0xfff | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff));
        let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:123456 0 EOF`
        let held = locks.lines().any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.get(1) == Some(&"FLOCK") && f.get(3) == Some(&"WRITE") && f.get(5) == Some(&id.as_str())
        });
        if !held {
            return Ok(None);
        }
        Ok(Some(read_nofollow(&path).ok().and_then(|s| String::from_utf8(s).ok()?.trim().parse().ok()).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use f2b_notify_core::EventKind;
    use std::os::unix::fs::PermissionsExt;

    fn entry(ip: &str, sinks: &[&str]) -> Entry {
        Entry::new(Event::target_event(EventKind::Ban, "sshd", ip, "h"), sinks.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn enqueue_fan_out_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let a = spool.enqueue(&entry("192.0.2.1", &["hook", "api"])).unwrap();
        spool.enqueue(&entry("192.0.2.2", &["hook"])).unwrap();
        assert_eq!(fs::metadata(spool.root()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(spool.fan_out(None).unwrap().handed, 2);
        assert!(spool.unrouted().unwrap().is_empty());
        assert_eq!(spool.sink_names().unwrap(), ["api", "hook"]);
        let hook = spool.pending("hook").unwrap();
        assert_eq!(hook.len(), 2);
        assert_eq!(Spool::load(&hook[0]).unwrap().event.id.as_deref(), Some("192.0.2.1"));
        assert_eq!(spool.pending("api").unwrap().len(), 1);
        // Idempotent: nothing new, nothing doubled.
        assert_eq!(spool.fan_out(None).unwrap().handed, 0);
        assert_eq!(spool.pending("hook").unwrap().len(), 2);
    }

    #[test]
    fn every_field_reads_back_bancount_too() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let mut event = Event::target_event(EventKind::Ban, "sshd", "2001:db8::7", "h");
        (event.failures, event.time, event.bantime, event.restored) = (Some(3), Some(1.7e9), Some(1200), true);
        (event.user, event.matches, event.bancount) = (Some("root".into()), Some("a\nb".into()), Some(3));
        let written = spool.enqueue(&Entry::new(event.clone(), vec!["hook".into()])).unwrap();
        let read = Spool::load(&written).unwrap();
        assert_eq!(read.event, event);
        // Restored: Fail2Ban counted this ban once more at its restart.
        assert_eq!(read.event.repeat().as_deref(), Some("2nd"));
        assert_eq!(read.sinks, ["hook"]);
    }

    #[test]
    fn an_entry_of_the_version_before_bancount_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        // Byte for byte what the previous version's writer made of a ban.
        let old = r#"{"version":1,"enqueued_at":1764000000.5,"sinks":["hook"],"event":{"kind":"ban","jail":"sshd","id":"192.0.2.1","ip":"192.0.2.1","failures":5,"time":1700000000.25,"bantime":600,"restored":false,"user":"root","host":"h"}}"#;
        let path = dir.path().join("old.json");
        fs::write(&path, old).unwrap();
        let entry = Spool::load(&path).unwrap();
        assert_eq!(entry.event.bancount, None);
        assert_eq!(entry.event.repeat(), None);
        assert_eq!((entry.event.failures, entry.event.bantime), (Some(5), Some(600)));
        assert_eq!(entry.event.user.as_deref(), Some("root"));
        // The same event written now is the same text: nothing new appears without a bancount.
        let now = f2b_notify_fastpath::entry::json(&entry.event.to_notify(), &entry.sinks, "h", entry.enqueued_at);
        assert_eq!(now, old);
    }

    #[test]
    fn corrupt_files_are_moved_aside_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.ensure().unwrap();
        fs::write(dir.path().join("new/00000000000000000001-1-0.json"), b"{ not json").unwrap();
        let evil = serde_json::to_vec(&entry("192.0.2.1", &["../../etc"])).unwrap();
        fs::write(dir.path().join("new/00000000000000000002-1-0.json"), evil).unwrap();
        spool.enqueue(&entry("192.0.2.3", &["hook"])).unwrap();
        assert_eq!(spool.fan_out(None).unwrap().handed, 1);
        let corrupt = spool.corrupt().unwrap();
        assert_eq!(corrupt.len(), 2);
        assert!(Spool::reason_of(&corrupt[0]).contains("not a spooled event"));
        assert!(Spool::reason_of(&corrupt[1]).contains("bad sink name"));
        assert_eq!(spool.pending("hook").unwrap().len(), 1);
    }

    #[test]
    fn dead_letters_retry_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.enqueue(&entry("192.0.2.1", &["api"])).unwrap();
        spool.enqueue(&entry("192.0.2.2", &["api"])).unwrap();
        spool.fan_out(None).unwrap();
        let pending = spool.pending("api").unwrap();
        spool.bury("api", &pending, "channel_not_found").unwrap();
        assert!(spool.pending("api").unwrap().is_empty());
        let dead = spool.dead("api").unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(Spool::reason_of(&dead[0]), "channel_not_found");
        assert_eq!(spool.retry_dead().unwrap(), 2);
        assert_eq!(spool.pending("api").unwrap().len(), 2);
        spool.bury("api", &spool.pending("api").unwrap(), "again").unwrap();
        assert_eq!(spool.purge_dead().unwrap(), 2);
        assert!(spool.dead("api").unwrap().is_empty());
    }

    #[test]
    fn a_dir_stamp_trusts_an_unchanged_mtime_only_once_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        let mut stamp = DirStamp::default();
        assert!(stamp.changed(&q).unwrap(), "the first look");
        assert!(!stamp.changed(&q).unwrap(), "a missing directory has not changed");
        fs::create_dir(&q).unwrap();
        assert!(stamp.changed(&q).unwrap());
        // Just changed: an unchanged mtime proves nothing yet (same clock tick).
        assert!(stamp.changed(&q).unwrap());
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        File::open(&q).unwrap().set_modified(old).unwrap();
        assert!(stamp.changed(&q).unwrap(), "a different mtime");
        assert!(!stamp.changed(&q).unwrap());
        assert!(!stamp.changed(&q).unwrap());
        fs::write(q.join("1.json"), "{}").unwrap();
        assert!(stamp.changed(&q).unwrap());
        stamp.reset();
        File::open(&q).unwrap().set_modified(old).unwrap();
        assert!(stamp.changed(&q).unwrap());
        assert!(!stamp.changed(&q).unwrap());
        stamp.reset();
        assert!(stamp.changed(&q).unwrap(), "reset forgets");
    }

    #[test]
    fn a_queue_lists_events_and_their_retry_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.enqueue(&entry("192.0.2.1", &["api"])).unwrap();
        spool.enqueue(&entry("192.0.2.2", &["api"])).unwrap();
        spool.fan_out(None).unwrap();
        let pending = spool.pending("api").unwrap();
        spool.bury("api", &pending[..1], "gone").unwrap();
        assert_eq!(spool.retry_dead().unwrap(), 1);
        // A stray stamp without its event is not counted.
        fs::write(spool.sink_dir("api").join("9-9-9.json.retried"), "1").unwrap();
        let mut queue = Queue::default();
        assert!(queue.refresh(&spool.sink_dir("api")).unwrap());
        let names: Vec<String> = pending.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(queue.names.iter().map(|n| n.to_string()).collect::<Vec<_>>(), names);
        assert_eq!(queue.retried.iter().map(|n| n.to_string()).collect::<Vec<_>>(), [names[0].clone()]);
        assert!(Spool::retried_at(&pending[0]).is_some());
        assert!(Spool::retried_at(&pending[1]).is_none());
        // Moved aside again, the stamp goes with it.
        spool.bury("api", &pending[..1], "again").unwrap();
        assert!(Spool::retried_at(&pending[0]).is_none());
    }

    #[test]
    fn dead_letters_are_pruned_by_the_time_they_were_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            spool.enqueue(&entry(ip, &["api", "hook"])).unwrap();
        }
        spool.fan_out(None).unwrap();
        spool.bury("api", &spool.pending("api").unwrap(), "channel_not_found").unwrap();
        spool.bury("hook", &spool.pending("hook").unwrap()[..1], "x").unwrap();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(31 * 86_400);
        for f in &spool.dead("api").unwrap()[..2] {
            File::options().write(true).open(f.with_extension("json.reason")).unwrap().set_modified(long_ago).unwrap();
        }
        let month = std::time::Duration::from_secs(30 * 86_400);
        assert_eq!(spool.prune_dead(month).unwrap(), Pruned { per_sink: vec![("api".to_owned(), 2)] });
        assert_eq!(spool.dead("api").unwrap().len(), 1);
        assert_eq!(spool.dead("hook").unwrap().len(), 1);
        let reasons = fs::read_dir(spool.dead_dir("api")).unwrap().count();
        assert_eq!(reasons, 2, "the event and its reason, nothing else");
        assert_eq!(spool.prune_dead(month).unwrap(), Pruned::default());
    }

    #[test]
    fn one_worker_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let held = spool.try_lock().unwrap().expect("free");
        assert!(spool.try_lock().unwrap().is_none());
        drop(held);
        assert!(spool.try_lock().unwrap().is_some());
    }
}
