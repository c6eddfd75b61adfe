//! The delivery worker (`f2b-notify deliver`): drains the spool in the background so that the
//! action Fail2Ban waits for never touches the network.
//!
//! Per sink, independently: the first event after a quiet period goes out alone and at once;
//! whatever piles up while the sink is busy, pacing (`min_interval`) or waiting to retry goes
//! out as one digest. Transient failures are retried with exponential backoff and jitter, a
//! `Retry-After` exactly as given up to [`RETRY_AFTER_MAX`] (and never past `max_age`);
//! permanent failures and events older than `max_age` go to
//! the dead-letter directory with the reason. Files leave a sink's queue only after that sink
//! delivered them, so a SIGKILL at any moment loses nothing; at most the one message that was
//! in flight is sent again.
//!
//! A sink cannot stall or loop the worker: a send that has not returned after
//! [`SEND_DEADLINE`] counts as a transient failure, and a batch that was in flight when a
//! worker died (see [`inflight`]) or whose send panicked is retried alone; if that happens to
//! it a second time it goes to the dead letters as having crashed the worker.
//!
//! It never burns a core while it waits: it sleeps until the first waiting lane is due, a
//! send ends, or a new event lands in `new/` ([`watch`], inotify); a regular look once a
//! second only stats the directories, and a sink's queue is read again only when its mtime
//! changed ([`crate::spool::Queue`]). The spool is bounded: past `max_pending` events for a
//! sink the oldest go to the dead letters, and dead letters are deleted after
//! `dead_retention`. A send that timed out may have been received, so it is retried later
//! than one that was refused ([`maybe_delivered`]).
//!
//! An on-demand worker hands the spool over to a `deliver --follow` that waits for it (see
//! [`Spool::announce_follower`]): it starts no new send, and exits once its sends are done.
//!
//! The config is read again when one of its files changes ([`reload`]), before anything is
//! routed or judged: a sink added mid-storm gets its events, and one the config does not name
//! (any more, or not yet) keeps its events waiting for [`UNCONFIGURED_GRACE`] before they go
//! to the dead letters. A config that does not load keeps the last one that did; with none
//! at all (broken when the worker started), nothing is judged and events spooled unrouted
//! wait in `new/` until it loads.
//!
//! The scheduler runs on tokio's clock, so its tests run with a paused clock (`tests.rs`).

mod alerts;
mod conversation;
mod enriched;
pub(crate) mod inflight;
mod reload;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use f2b_notify_core::{Alert, Digest, Event, MessageRef, Sink, SinkError};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::config::{Config, DeliveryConfig, Sources};
use crate::registry;
use crate::route::{Decision, Table};
use crate::spool::{now_epoch, DirStamp, Queue, Routed, SinkState, Spool};

/// The least time between two looks at the spool: new events that arrive faster than this
/// (a storm) are handed out together. Also how often the worker looks for new events when
/// inotify cannot tell it.
const POLL: Duration = Duration::from_millis(50);
/// How often the worker looks at the spool when nothing wakes it: a stat of each directory
/// (`queue retry` moves events straight into a sink's queue, which inotify on `new/` does not
/// see; and a watch can be lost), and whether a `deliver --follow` waits for the spool.
const CHECK: Duration = Duration::from_secs(1);
/// How often a worker deletes the dead letters older than `dead_retention` (and once when it
/// starts).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Past this size the worker's log (`SPOOL/worker.log`) is renamed `worker.log.1`, replacing
/// the one before, and a new one is started: at most 2 MiB of log, whatever a sink does.
/// (A starting worker's log is rotated the same way by `notify`.)
const LOG_MAX: u64 = f2b_notify_fastpath::layout::WORKER_LOG_MAX;
/// How often a running worker looks at the size of its log: one `stat`.
const LOG_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often a `deliver --follow` tries to take the spool while another worker holds it.
const LOCK_RETRY: Duration = Duration::from_millis(250);
/// After a send that timed out, the least wait before the next try: the server may have
/// received the message (only its answer was late), and a server slower than the timeout
/// would otherwise get every try. The normal backoff is also multiplied by
/// [`TIMEOUT_BACKOFF_FACTOR`].
pub const TIMEOUT_BACKOFF_MIN: Duration = Duration::from_secs(30);
/// How much longer than after a refused connection the worker waits after a timeout.
const TIMEOUT_BACKOFF_FACTOR: u32 = 4;
/// First retry delay; doubles per failure up to `retry_max`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// How long to wait before trying again to build a sink whose config is broken.
const REBUILD_AFTER: Duration = Duration::from_secs(60);
/// The longest one send may take. Sinks have their own timeouts (at most 30 s); this bounds
/// a sink that ignores its own, so that its lane cannot stay in flight for ever.
pub const SEND_DEADLINE: Duration = Duration::from_secs(60);
/// A batch that was in flight this many times when a worker died (or its send panicked) goes
/// to the dead letters instead of being sent again.
const CRASHES_TO_BURY: u32 = 2;
/// The longest wait a sink's `Retry-After` can impose: one hour, and never more than
/// `max_age` (by then the events are dead letters anyway), whatever the sink reports. A
/// remote that asks for more is broken or hostile: obeyed, `18446744073709551615` s would
/// overflow the clock (a panic in every new worker) and 10^9 s would stall the sink until a
/// restart. Sinks already treat such answers as no hint (`SinkError::MAX_RETRY_AFTER`); this
/// bound holds for any sink, including one built outside this repository.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// How long the events of a sink that the config does not name wait for it to come back
/// (an edit in progress, a rename) before they go to the dead letters; never longer than
/// `max_age`. They are listed by `f2b-notify queue` meanwhile, with the reason.
pub const UNCONFIGURED_GRACE: Duration = Duration::from_secs(3600);
/// How often a worker without a config that loads looks at its waiting sinks again.
const CONFIG_WAIT: Duration = Duration::from_secs(5);

/// `now + wait`, never a panic: a wait so long that the clock cannot hold it (only a config
/// value near `u64::MAX` seconds can be) becomes [`RETRY_AFTER_MAX`].
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).or_else(|| now.checked_add(RETRY_AFTER_MAX)).unwrap_or(now)
}

/// Builds the sink of a name: `None` when the config has no such sink, `Some(Err)` when it
/// has one that cannot be built now (for example an unreadable secret file).
pub type SinkFactory<'a> = Box<dyn Fn(&str) -> Option<anyhow::Result<Arc<dyn Sink>>> + 'a>;

/// Routes an event that `notify` spooled unrouted (its config did not load then).
pub type RouteFn<'a> = Box<dyn Fn(&Event) -> Routed + 'a>;

/// What a worker delivers with: its settings, how to build a sink, how to route.
pub type Settings<'a> = (DeliveryConfig, SinkFactory<'a>, RouteFn<'a>);

/// Says whether the config changed since it last asked: `None` when not, else the new
/// settings or why the new config does not load.
pub type ConfigWatch<'a> = Box<dyn FnMut() -> Option<Result<Settings<'a>, String>> + 'a>;

/// A batch that was in flight when a worker died or its send panicked: it is sent alone
/// (nothing added) until its outcome is known, so that it cannot take newer events down with
/// it, and the count says how often it crashed a worker.
#[derive(Debug, Clone)]
struct Suspect {
    files: Vec<PathBuf>,
    crashes: u32,
    /// How it was planned when its send failed: it is retried the same way (the same edit
    /// of the same storm message, the same reply), so that a send whose answer was lost is
    /// repeated, not turned into a second message when the retry comes after the storm gap.
    plan: Option<conversation::Plan>,
}

/// One sink's lane.
struct Lane {
    /// Whether the config has this sink.
    configured: bool,
    /// Since when the config has not named this sink: its events wait for
    /// [`UNCONFIGURED_GRACE`] from then.
    unconfigured_since: Option<Instant>,
    /// The config changed while a send was in flight: build the sink again once it ends.
    rebuild: bool,
    sink: Option<Arc<dyn Sink>>,
    min_interval: Duration,
    ready_at: Instant,
    /// The batch being sent now, and how many workers it had crashed before this send.
    in_flight: Option<(Vec<PathBuf>, u32)>,
    suspect: Option<Suspect>,
    state: SinkState,
    /// Its bans' messages and its storm's, for replies and edits.
    conversation: conversation::Conversation,
    /// The batch being sent now as planned, for the conversation once it is delivered.
    sending: Option<conversation::Sending>,
}

/// Exponential backoff with ±20% jitter, capped.
fn backoff(attempts: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    let base = exp.min(cap);
    // Jitter from the wall clock's nanoseconds (real even when tokio's clock is paused):
    // enough to keep several workers apart.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let factor = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
    base.mul_f64(factor).min(cap)
}

/// The wait after a send that timed out: four times the usual backoff, at least
/// [`TIMEOUT_BACKOFF_MIN`], at most `retry_max` (or the minimum, when `retry_max` is shorter).
fn timeout_backoff(attempts: u32, cap: Duration) -> Duration {
    let cap = cap.max(TIMEOUT_BACKOFF_MIN);
    backoff(attempts, cap).saturating_mul(TIMEOUT_BACKOFF_FACTOR).clamp(TIMEOUT_BACKOFF_MIN, cap)
}

/// Whether a failure was a timeout, after which the server may have received the message.
/// The sinks say so only in their message ("no answer within 10.0 s", "SMTP: no answer in
/// time", a client's "timed out"); the worker's own deadline says "no answer within 60 s".
/// Slack's `request_timeout` error is its own server timing out, equally uncertain.
pub fn maybe_delivered(e: &SinkError) -> bool {
    if !e.is_transient() {
        return false;
    }
    let m = e.to_string().to_ascii_lowercase();
    ["no answer within", "no answer in time", "timed out", "timeout"].iter().any(|w| m.contains(w))
}

/// "once", "twice", "3 times".
fn times(n: u32) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

/// Why `serve` returned.
enum Stop {
    /// Idle for `idle_exit`, with nothing left to do.
    Idle,
    /// An on-demand worker gave the spool to a `deliver --follow` that waited for it.
    Handover,
    /// Told to stop by this signal.
    Signal(&'static str),
}

/// A signal stream, or `None` when it cannot be set up (then it never fires).
fn signal(kind: SignalKind) -> Option<Signal> {
    tokio::signal::unix::signal(kind).ok()
}

/// The signals that stop the worker: SIGTERM (a service manager) and SIGINT.
struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    fn new() -> Self {
        Self { term: signal(SignalKind::terminate()), int: signal(SignalKind::interrupt()) }
    }

    /// The name of the next stop signal, when it comes.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            () = received(&mut self.term) => "SIGTERM",
            () = received(&mut self.int) => "SIGINT",
        }
    }
}

/// What ended one wait of the worker.
enum Woken {
    /// A send ended.
    Joined(Result<(tokio::task::Id, Result<Option<MessageRef>, SinkError>), JoinError>),
    /// A lane or the next look is due.
    Due,
    /// Something arrived in `new/`.
    New,
    /// Told to stop.
    Signal(&'static str),
}

/// Waits for the next delivery of `s`; never, when there is no stream.
async fn received(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The delivery worker of one spool: its lanes (one per sink) and the sends in flight.
pub struct Worker<'a> {
    spool: Spool,
    delivery: DeliveryConfig,
    build: SinkFactory<'a>,
    lanes: BTreeMap<String, Lane>,
    tasks: JoinSet<Result<Option<MessageRef>, SinkError>>,
    /// Which sink each running send is for: a task that panics reports only its id.
    running: HashMap<tokio::task::Id, String>,
    /// Each sink's queue as last read, kept until its directory changes.
    queues: BTreeMap<String, Queue>,
    /// The sinks that have a queue directory, as last read, and `sinks/` as it was then.
    sink_names: Vec<String>,
    sinks_stamp: DirStamp,
    /// `new/` as last handed out.
    new_stamp: DirStamp,
    /// A `deliver --follow` waits for the spool: start no new send, exit once none runs.
    handing_over: bool,
    /// Routes events spooled unrouted; `None` while no config has loaded.
    route: Option<RouteFn<'a>>,
    /// Says when the config changed (`None`: sinks fixed, as in most tests).
    reload: Option<ConfigWatch<'a>>,
    /// Why no config is loaded: then no sink is judged "not in the config".
    config_error: Option<String>,
    /// The last config error said in the log (said once, not at every look).
    config_said: Option<String>,
    /// Events spooled unrouted that wait in `new/` for a config that loads.
    unrouted_waiting: usize,
    /// Which sinks are in trouble, for `[delivery] alert`.
    alerts: alerts::Alerts,
    /// Alerts being sent: (the alert sink, the subject, how it went).
    alert_tasks: JoinSet<(String, String, Result<(), SinkError>)>,
    /// The host name alerts name.
    host: String,
    /// Where `notify` spools this set's events while its config does not load, when that is
    /// not this worker's spool: what waits there unrouted is taken over at the start.
    strays: Option<PathBuf>,
    /// `deliver --follow --service`: marks the spool as the service's while it runs.
    service: bool,
}

impl<'a> Worker<'a> {
    /// A worker for `delivery.spool` whose sinks come from `build`.
    pub fn new(delivery: DeliveryConfig, build: SinkFactory<'a>) -> Self {
        Self {
            spool: Spool::new(&delivery.spool),
            delivery,
            build,
            lanes: BTreeMap::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            queues: BTreeMap::new(),
            sink_names: Vec::new(),
            sinks_stamp: DirStamp::default(),
            new_stamp: DirStamp::default(),
            handing_over: false,
            route: None,
            reload: None,
            config_error: None,
            config_said: None,
            unrouted_waiting: 0,
            alerts: alerts::Alerts::default(),
            alert_tasks: JoinSet::new(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned()),
            strays: None,
            service: false,
        }
    }

    /// Runs as the spool's service (`deliver --follow --service`): `SPOOL/service` tells
    /// `notify` and the front end to start no worker of their own, from before this worker
    /// waits for the spool until it stops cleanly (a signal), so that none starts while the
    /// service manager restarts it after a crash either. Tells the service manager it is
    /// ready (`sd_notify`) once the mark is there.
    pub fn as_service(&mut self) {
        self.service = true;
    }

    /// The host name alerts name (the config's `host`).
    pub fn set_host(&mut self, host: &str) {
        if !host.is_empty() {
            self.host = host.to_owned();
        }
    }

    /// A worker for the config of `sources`, as `deliver` runs it: it reads the config again
    /// whenever its files change. A config that does not load now is said in the log, and
    /// the worker serves the spool that config would use (as far as it can be told, as
    /// `notify` does), judging nothing until it loads.
    pub fn from_sources(sources: &Sources) -> Worker<'static> {
        let mut reload = reload::Reload::new(sources.clone());
        let first = reload.load();
        let spool = match &first {
            Ok(config) => config.delivery.spool.clone(),
            Err(e) => {
                let spool = crate::config::fallback_spool(sources);
                tracing::error!(
                    "the config does not load: {e}; delivering from {} once it does (events spooled meanwhile wait)",
                    spool.display()
                );
                spool
            }
        };
        let mut worker =
            Worker::new(DeliveryConfig { spool: spool.clone(), ..DeliveryConfig::default() }, Box::new(|_| None));
        match first {
            Ok(config) => {
                if let Some(host) = &config.host {
                    worker.set_host(host);
                }
                // Only a spool this set claimed (as `notify` does when it spools there).
                let stray = crate::sets::resolve(&crate::config::default_spool(), sources);
                if stray != spool && crate::sets::is_ours(&stray, sources) {
                    worker.strays = Some(stray);
                }
                let (delivery, build, route) = settings(config, &spool);
                worker.reconfigure(delivery, build, Some(route));
            }
            Err(e) => {
                worker.config_said = Some(e.clone());
                worker.config_error = Some(e);
            }
        }
        worker.watch_config(Box::new(move || {
            let changed = reload.changed()?;
            Some(changed.map(|config| {
                tracing::warn!("the config changed: read again ({})", reload.describe());
                settings(config, &spool)
            }))
        }));
        worker
    }

    /// Asks `watch` before each look at the spool whether the config changed: `None` when
    /// not, else the new settings or why the new config does not load.
    pub fn watch_config(&mut self, watch: ConfigWatch<'a>) {
        self.reload = Some(watch);
    }

    /// The spool this worker delivers from.
    pub fn spool_root(&self) -> &std::path::Path {
        self.spool.root()
    }

    /// Takes new settings, sinks and routes: lanes are built again (a send in flight keeps
    /// its sink until it ends), keeping the waits that pacing, backoff and `Retry-After`
    /// impose; events spooled unrouted are routed at the next look.
    pub fn reconfigure(&mut self, delivery: DeliveryConfig, build: SinkFactory<'a>, route: Option<RouteFn<'a>>) {
        self.delivery = delivery;
        self.build = build;
        self.route = route;
        self.config_error = None;
        let mut lanes = std::mem::take(&mut self.lanes);
        for (name, lane) in &mut lanes {
            if lane.in_flight.is_some() {
                lane.rebuild = true;
            } else {
                self.rebuild(name, lane);
            }
        }
        self.lanes = lanes;
        self.new_stamp.reset();
    }

    /// Builds a lane's sink again for a new config. A wait for a sink that works stays (a
    /// `Retry-After` is kept whatever the config says); one for a sink that could not be
    /// built or was not configured ends, since the new config may have fixed it.
    fn rebuild(&self, name: &str, lane: &mut Lane) {
        let waited = lane.ready_at;
        let worked = lane.sink.is_some();
        lane.rebuild = false;
        self.build_sink(name, lane);
        if worked && lane.sink.is_some() {
            lane.ready_at = lane.ready_at.max(waited);
        }
        let _ = self.spool.save_state(name, &lane.state);
    }

    /// Reads the config again when one of its files changed; a config that does not load
    /// is said once, and the one loaded before stays.
    fn check_config(&mut self) {
        let Some(watch) = &mut self.reload else {
            return;
        };
        match watch() {
            None => {}
            Some(Ok((delivery, build, route))) => {
                self.config_said = None;
                self.reconfigure(delivery, build, Some(route));
            }
            Some(Err(e)) => {
                if self.config_said.as_ref() != Some(&e) {
                    if self.route.is_some() {
                        tracing::error!(
                            "the config changed and does not load: {e}; delivering with the one loaded before"
                        );
                    } else {
                        tracing::error!("the config still does not load: {e}");
                    }
                    self.config_said = Some(e.clone());
                }
                if self.route.is_none() {
                    self.config_error = Some(e);
                }
            }
        }
    }

    /// Delivers until idle for `idle_exit` (or for ever with `follow`). Returns `Ok(false)`,
    /// doing nothing, when another worker holds the spool; with `follow` it waits for that
    /// worker instead (and `Ok(false)` means it was stopped by a signal while waiting).
    pub async fn run(mut self, follow: bool) -> anyhow::Result<bool> {
        // Root writes here for every event: not into directories others could change.
        self.spool.verify().map_err(|u| anyhow::anyhow!("refusing to use {u}"))?;
        if self.service {
            self.spool
                .mark_service()
                .with_context(|| format!("cannot mark {} as the service's", self.spool.root().display()))?;
            crate::os::notify_service_manager("READY=1");
        }
        let mut signals = Signals::new();
        let Some(mut lock) = self.lock(follow, &mut signals).await? else {
            self.unmark_service();
            return Ok(false);
        };
        write_pid(&mut lock)?;
        // `new/` must exist to be watched (a spool made by an older version may lack one).
        self.spool.ensure()?;
        self.adopt_strays();
        let result = self.serve(lock, follow, &mut signals).await;
        if !matches!(result, Ok(Stop::Idle | Stop::Handover)) {
            // This worker stops on an error of its own (the spool, not a sink) or because it
            // was told to (SIGTERM from a service manager): the batches in flight did not
            // crash it, so their marks must not count against them. They stay queued and go
            // out again from the next worker.
            for name in self.running.values() {
                let _ = inflight::clear(&self.spool, name);
            }
        }
        match &result {
            Ok(Stop::Signal(name)) => tracing::info!(
                "stopped by {name}; {} send(s) in flight will be made again by the next worker",
                self.running.len()
            ),
            Ok(Stop::Handover) => {
                tracing::info!("handed {} over to the `deliver --follow` worker", self.spool.root().display());
            }
            _ => {}
        }
        if result.is_ok() {
            // A clean stop: on-demand workers may serve the spool again. After an error the
            // mark stays, for the service manager restarts the service.
            self.unmark_service();
        }
        result.map(|_| true)
    }

    /// Removes the service's mark (see [`Self::as_service`]), saying why it cannot.
    fn unmark_service(&self) {
        if self.service {
            if let Err(e) = self.spool.unmark_service() {
                tracing::error!("cannot remove {}: {e}", self.spool.service_mark().display());
            }
        }
    }

    /// Takes the spool's lock. Without `follow`, `None` at once when another worker holds it
    /// (`notify` starts workers freely; one is enough). With `follow` (a service that must
    /// stay up), waits for it, holding `follow.lock` meanwhile so that an on-demand worker
    /// hands over; `None` only when a stop signal comes first.
    async fn lock(&self, follow: bool, signals: &mut Signals) -> anyhow::Result<Option<File>> {
        let mut announced = None;
        let mut said = false;
        loop {
            if let Some(lock) = self.spool.try_lock()? {
                return Ok(Some(lock));
            }
            if !follow {
                return Ok(None);
            }
            if announced.is_none() {
                announced = self.spool.announce_follower()?;
            }
            if !said {
                said = true;
                let pid = self.spool.worker().ok().flatten().map_or_else(|| "?".to_owned(), |p| p.to_string());
                tracing::warn!(
                    "another worker (pid {pid}) delivers from {}; waiting for it to hand over",
                    self.spool.root().display()
                );
            }
            tokio::select! {
                () = tokio::time::sleep(LOCK_RETRY) => {}
                name = signals.recv() => {
                    tracing::info!("stopped by {name} while waiting for the spool");
                    return Ok(None);
                }
            }
        }
    }

    async fn serve(&mut self, mut lock: File, follow: bool, signals: &mut Signals) -> anyhow::Result<Stop> {
        let mut new_events = watch::NewEvents::new(&self.spool.new_dir());
        // Without inotify, new events are only found by looking: as often as before.
        let check = if new_events.active() { CHECK } else { POLL };
        let mut idle_since = Instant::now();
        let mut next_prune = Instant::now();
        let mut next_follower_check = Instant::now();
        let mut next_log_check = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_log_check {
                self.rotate_log();
                next_log_check = later(now, LOG_CHECK_EVERY);
            }
            if now >= next_prune {
                self.prune();
                next_prune = later(now, PRUNE_EVERY);
            }
            if !follow && !self.handing_over && now >= next_follower_check {
                next_follower_check = later(now, CHECK);
                if self.spool.follower_waiting().unwrap_or(false) {
                    tracing::info!(
                        "a `deliver --follow` waits for {}: handing over once the {} send(s) in flight end",
                        self.spool.root().display(),
                        self.tasks.len()
                    );
                    self.handing_over = true;
                }
            }
            if self.handing_over && self.tasks.is_empty() {
                return Ok(Stop::Handover);
            }
            let scan = self.scan()?;
            let scanned = Instant::now();
            // Without a config, an on-demand worker can only wait; it does so for `idle_exit`
            // and leaves the spool to the worker of the next event, which may have the config
            // (or environment) fixed. `deliver --follow` waits for the files to be fixed.
            let stuck = self.config_error.is_some() && self.tasks.is_empty();
            if scan.busy && !stuck {
                idle_since = scanned;
            } else if !follow && idle_since.elapsed() >= self.delivery.idle_exit.0 {
                // Let go of the lock first, then look once more: a `notify` that saw the lock
                // held just before has its event in the spool (or its config fixed), and no new
                // worker is coming.
                drop(lock);
                let leave = if stuck && scan.busy {
                    self.check_config();
                    let still = self.config_error.is_some();
                    if still {
                        tracing::warn!(
                            "stopping: the config does not load, and events wait in {} for the worker of the next event",
                            self.spool.root().display()
                        );
                    }
                    still
                } else {
                    self.spool_is_empty()?
                };
                if leave {
                    return Ok(Stop::Idle);
                }
                match self.spool.try_lock()? {
                    Some(l) => lock = l,
                    None => return Ok(Stop::Idle),
                }
                write_pid(&mut lock)?;
                idle_since = Instant::now();
                if stuck && scan.busy {
                    // The config loads now: route what waited at once.
                    continue;
                }
            }
            // Sleep until the next look, or sooner when a waiting lane becomes ready (pacing
            // and Retry-After are kept to the millisecond), the worker may exit, a send ends
            // or an event arrives.
            let mut wake = later(scanned, check).min(next_prune);
            if let Some(ready) = scan.next_ready {
                wake = wake.min(ready);
            }
            if !follow && !scan.busy {
                wake = wake.min(later(idle_since, self.delivery.idle_exit.0));
            }
            let mut arrived = false;
            loop {
                let woken = tokio::select! {
                    joined = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => match joined {
                        Some(joined) => Woken::Joined(joined),
                        None => Woken::Due,
                    },
                    Some(sent) = self.alert_tasks.join_next(), if !self.alert_tasks.is_empty() => {
                        alert_sent(sent);
                        continue;
                    }
                    () = tokio::time::sleep_until(wake) => Woken::Due,
                    () = new_events.changed(), if !arrived => Woken::New,
                    name = signals.recv() => Woken::Signal(name),
                };
                match woken {
                    Woken::Joined(joined) => {
                        self.finish(joined)?;
                        break;
                    }
                    Woken::Due => break,
                    // Look soon, but not sooner than POLL after the last look: a storm is
                    // read in batches, not once per event.
                    Woken::New => {
                        arrived = true;
                        wake = wake.min(later(scanned, POLL).max(Instant::now()));
                    }
                    Woken::Signal(name) => return Ok(Stop::Signal(name)),
                }
            }
        }
    }

    /// Takes over the events `notify` spooled unrouted in the default spool while this set's
    /// config did not load (it could not tell that the config names another spool): they
    /// would wait there for ever, unseen by this worker and by `queue`.
    fn adopt_strays(&self) {
        let Some(other) = &self.strays else { return };
        let other = Spool::new(other);
        if !other.root().is_dir() {
            return;
        }
        if let Err(u) = other.verify() {
            tracing::warn!("not looking for events left unrouted: refusing to use {u}");
            return;
        }
        let mut moved = 0;
        for file in other.unrouted().unwrap_or_default() {
            let Ok(entry) = Spool::load(&file) else { continue };
            if entry.unrouted.is_none() {
                continue;
            }
            match self.spool.enqueue(&entry) {
                Ok(_) => {
                    let _ = std::fs::remove_file(&file);
                    moved += 1;
                }
                Err(e) => {
                    tracing::error!("cannot take over {}: {e}", file.display());
                    break;
                }
            }
        }
        if moved > 0 {
            tracing::warn!(
                "took over {moved} event(s) spooled unrouted in {} while the config did not load",
                other.root().display()
            );
        }
    }

    /// Starts a new `SPOOL/worker.log` once it passed [`LOG_MAX`], keeping the last one as
    /// `worker.log.1`; only when this worker's stderr is that file (a service logs to the
    /// journal, which rotates its own).
    fn rotate_log(&self) {
        use std::os::fd::AsFd;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let log = self.spool.root().join("worker.log");
        let Ok(meta) = std::fs::symlink_metadata(&log) else { return };
        if !meta.is_file() || meta.len() < LOG_MAX {
            return;
        }
        let Ok(ours) = rustix::fs::fstat(std::io::stderr().as_fd()) else { return };
        if ours.st_dev != meta.dev() || ours.st_ino != meta.ino() {
            return;
        }
        let old = self.spool.root().join("worker.log.1");
        // rename() replaces whatever `old` is, a link included, without following it.
        if let Err(e) = std::fs::rename(&log, &old) {
            tracing::warn!("cannot rotate {}: {e}", log.display());
            return;
        }
        let fresh = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(linux_raw_sys::general::O_NOFOLLOW as i32)
            .open(&log);
        match fresh.and_then(|f| rustix::stdio::dup2_stderr(&f).map_err(std::io::Error::from)) {
            Ok(()) => tracing::warn!(
                "{} passed {} KiB: the lines before are in {}",
                log.display(),
                LOG_MAX >> 10,
                old.display()
            ),
            // Still writing to the renamed file: nothing is lost, and the next look tries again.
            Err(e) => tracing::warn!("cannot start a new {}: {e}", log.display()),
        }
    }

    /// Deletes the dead letters older than `dead_retention` (0: kept for ever), saying how
    /// many per sink.
    fn prune(&self) {
        let retention = self.delivery.dead_retention.0;
        if retention.is_zero() {
            return;
        }
        let age = humantime::format_duration(Duration::from_secs(retention.as_secs()));
        match self.spool.prune_dead(retention) {
            Ok(pruned) => {
                for (sink, n) in pruned.per_sink {
                    tracing::warn!("sink `{sink}`: deleted {n} dead letter(s) older than dead_retention ({age})");
                }
            }
            Err(e) => tracing::warn!("cannot delete old dead letters in {}: {e}", self.spool.root().display()),
        }
    }

    fn spool_is_empty(&self) -> anyhow::Result<bool> {
        if !self.spool.unrouted()?.is_empty() {
            return Ok(false);
        }
        for name in self.spool.sink_names()? {
            if !self.spool.pending(&name).map(|p| p.is_empty()).unwrap_or(true) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Hands the events in `new/` to their sinks' queues, when `new/` changed.
    fn hand_out(&mut self) {
        let new = self.spool.new_dir();
        match self.new_stamp.changed(&new) {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::error!("cannot look at {}: {e}", new.display());
                return;
            }
        }
        match self.spool.fan_out(self.route.as_deref()) {
            Ok(out) => {
                if out.waiting > 0 && out.waiting != self.unrouted_waiting {
                    tracing::warn!(
                        "{} event(s) spooled while the config did not load wait in {} for one that does",
                        out.waiting,
                        new.display()
                    );
                }
                self.unrouted_waiting = out.waiting;
            }
            Err(e) => {
                tracing::error!("cannot hand out new events in {}: {e}", self.spool.root().display());
                // Some may still wait there: look again next time.
                self.new_stamp.reset();
            }
        }
    }

    /// One look at the spool: hands out new events, caps the queues and starts every lane
    /// that is ready. Directories whose mtime did not change are not read again, so a look
    /// at a spool where 100 000 events wait costs a few `stat`s.
    fn scan(&mut self) -> anyhow::Result<Scan> {
        // Before anything is routed or judged: the config may have changed since the last look.
        self.check_config();
        self.hand_out();
        let busy = !self.tasks.is_empty() || !self.alert_tasks.is_empty() || self.unrouted_waiting > 0;
        let mut scan = Scan { busy, next_ready: None };
        if self.sinks_stamp.changed(&self.spool.sinks_dir())? {
            self.sink_names = self.spool.sink_names()?;
            let names = &self.sink_names;
            self.queues.retain(|n, _| names.contains(n));
        }
        for name in self.sink_names.clone() {
            let queue = self.queues.entry(name.clone()).or_default();
            let changed = queue.refresh(&self.spool.sink_dir(&name))?;
            if queue.names.is_empty() {
                continue;
            }
            scan.busy = true;
            if !self.lanes.contains_key(&name) {
                let lane = self.open_lane(&name)?;
                self.lanes.insert(name.clone(), lane);
            }
            if changed {
                self.cap(&name)?;
            }
            let lane = &self.lanes[&name];
            if lane.in_flight.is_some() || self.handing_over {
                continue;
            }
            if Instant::now() < lane.ready_at {
                scan.next_ready = Some(scan.next_ready.map_or(lane.ready_at, |t: Instant| t.min(lane.ready_at)));
                continue;
            }
            self.start(&name)?;
        }
        self.raise_due();
        Ok(scan)
    }

    /// Sends the alerts that are due (see [`alerts`]).
    fn raise_due(&mut self) {
        if self.delivery.alert.is_empty() {
            return;
        }
        let (lanes, queues) = (&self.lanes, &self.queues);
        let due = self.alerts.due(self.delivery.alert_after.0, &self.host, |sink| status(lanes, queues, sink));
        for (about, alert) in due {
            if let Some(lane) = self.lanes.get_mut(&about) {
                lane.state.alert_open = true;
                let _ = self.spool.save_state(&about, &lane.state);
            }
            self.raise(&about, alert);
        }
    }

    /// Sends `alert` (about sink `about`) to every alert sink but `about` itself, and says it
    /// in the log.
    fn raise(&mut self, about: &str, alert: Alert) {
        tracing::warn!("alert: {}", alert.subject);
        let targets: Vec<String> = self.delivery.alert.iter().filter(|t| *t != about).cloned().collect();
        if targets.is_empty() {
            tracing::warn!("no alert sink but `{about}` itself, which is the one in trouble: the alert is only here");
        }
        for target in targets {
            let sink = match (self.build)(&target) {
                Some(Ok(sink)) if sink.carries_alerts() => sink,
                Some(Ok(sink)) => {
                    tracing::error!("alert sink `{target}`: a `{}` sink cannot carry alerts", sink.kind());
                    continue;
                }
                Some(Err(e)) => {
                    tracing::error!("alert sink `{target}`: cannot build it: {e:#}");
                    continue;
                }
                None => {
                    tracing::error!("alert sink `{target}` is not in the config");
                    continue;
                }
            };
            let alert = alert.clone();
            self.alert_tasks.spawn(async move {
                let result = match tokio::time::timeout(SEND_DEADLINE, sink.send_alert(&alert)).await {
                    Ok(r) => r,
                    Err(_) => Err(SinkError::transient(format!("no answer within {} s", SEND_DEADLINE.as_secs()))),
                };
                (target, alert.subject, result)
            });
        }
    }

    /// Keeps a sink's queue within `max_pending`: the oldest events past it, except the batch
    /// in flight or set aside to be sent alone, go to the dead letters with the reason (and
    /// the log says how many), never dropped unseen.
    fn cap(&mut self, name: &str) -> anyhow::Result<()> {
        let max = self.delivery.max_pending;
        let Some(queue) = self.queues.get_mut(name) else {
            return Ok(());
        };
        if max == 0 || queue.names.len() <= max {
            return Ok(());
        }
        let dir = self.spool.sink_dir(name);
        let busy: HashSet<PathBuf> = self
            .lanes
            .get(name)
            .map(|lane| {
                let in_flight = lane.in_flight.iter().flat_map(|(files, _)| files.iter());
                in_flight.chain(lane.suspect.iter().flat_map(|s| s.files.iter())).cloned().collect()
            })
            .unwrap_or_default();
        let excess = queue.names.len() - max;
        let oldest: Vec<PathBuf> =
            queue.names.iter().map(|n| dir.join(&**n)).filter(|f| !busy.contains(f)).take(excess).collect();
        let reason = format!(
            "spool cap reached: more than {max} event(s) waited for this sink (max_pending), the oldest were set aside"
        );
        bury(&self.spool, &mut self.alerts, name, &oldest, &reason);
        queue.refresh(&dir)?;
        Ok(())
    }

    /// A new lane for `name`, after looking for the mark of a batch a dead worker left in
    /// flight (this worker holds the spool lock, so the one that wrote it is gone).
    fn open_lane(&mut self, name: &str) -> anyhow::Result<Lane> {
        let mut lane = Lane {
            configured: true,
            unconfigured_since: None,
            rebuild: false,
            sink: None,
            min_interval: Duration::ZERO,
            ready_at: Instant::now(),
            in_flight: None,
            suspect: None,
            conversation: conversation::Conversation::load(&self.spool, name),
            sending: None,
            // Whether the alert sinks were told of trouble that a worker before this one saw:
            // then they hear of the recovery from this one.
            state: SinkState {
                alert_open: self.spool.load_state(name).is_some_and(|s| s.alert_open),
                ..SinkState::default()
            },
        };
        self.build_sink(name, &mut lane);
        // A sink that cannot be built says so in `f2b-notify queue` at once, not only when
        // its rebuild is due.
        if lane.state.last_error.is_some() {
            let _ = self.spool.save_state(name, &lane.state);
        }
        match inflight::read(&self.spool, name) {
            Ok(None) => {}
            Err(why) => {
                tracing::warn!("sink `{name}`: ignoring its in-flight mark ({why})");
                inflight::clear(&self.spool, name)?;
            }
            Ok(Some(mark)) => {
                let files = mark.present_files(&self.spool, name);
                if files.is_empty() {
                    // Delivered or moved aside just before the worker died.
                    inflight::clear(&self.spool, name)?;
                } else {
                    let crashes = mark.crashes + 1;
                    tracing::warn!(
                        "sink `{name}`: a worker died while sending it {} event(s) (pid {}; {} so far)",
                        files.len(),
                        mark.pid,
                        times(crashes)
                    );
                    self.crashed(name, &mut lane, files, crashes, "a worker died with it in flight")?;
                }
            }
        }
        Ok(lane)
    }

    /// (Re)builds the lane's sink and its pacing; a sink that cannot be built is tried again
    /// after [`REBUILD_AFTER`].
    fn build_sink(&self, name: &str, lane: &mut Lane) {
        lane.sink = None;
        lane.ready_at = Instant::now();
        let built = (self.build)(name);
        lane.configured = built.is_some();
        if lane.configured {
            lane.unconfigured_since = None;
            let was_unconfigured = lane.state.last_error.as_deref().is_some_and(|e| e.starts_with(NOT_CONFIGURED));
            if was_unconfigured {
                lane.state.last_error = None;
                lane.state.last_error_at = None;
                lane.state.next_try_at = None;
            }
        } else {
            lane.unconfigured_since.get_or_insert_with(Instant::now);
        }
        match built {
            None => {}
            Some(Ok(sink)) => {
                lane.sink = Some(sink);
                if lane.state.last_error.as_deref().is_some_and(|e| e.starts_with("cannot build the sink")) {
                    lane.state.last_error = None;
                    lane.state.last_error_at = None;
                }
            }
            Some(Err(e)) => {
                lane.state.last_error = Some(format!("cannot build the sink: {e:#}"));
                lane.state.last_error_at = Some(now_epoch());
                lane.ready_at = later(Instant::now(), REBUILD_AFTER);
            }
        }
        lane.min_interval = self
            .delivery
            .min_interval
            .get(name)
            .map(|s| s.0)
            .or_else(|| lane.sink.as_ref().map(|s| s.min_interval()))
            .unwrap_or_default();
    }

    /// A batch crashed a worker (or its send panicked) `crashes` times: the second time it
    /// goes to the dead letters, before that it is sent again alone.
    fn crashed(
        &mut self,
        name: &str,
        lane: &mut Lane,
        files: Vec<PathBuf>,
        crashes: u32,
        how: &str,
    ) -> anyhow::Result<()> {
        if crashes < CRASHES_TO_BURY {
            tracing::warn!(
                "sink `{name}`: {how}; its {} event(s) will be sent again alone (moved to the dead letters if that crashes it {} more)",
                files.len(),
                times(CRASHES_TO_BURY - crashes)
            );
            lane.suspect = Some(Suspect { files, crashes, plan: None });
            return Ok(());
        }
        let reason = format!(
            "crashed the worker {}: each time this batch of {} event(s) was being sent the worker died or the send panicked (last: {how}); not sent again",
            times(crashes),
            files.len()
        );
        bury(&self.spool, &mut self.alerts, name, &files, &reason);
        inflight::clear(&self.spool, name)?;
        lane.suspect = None;
        lane.state.last_error = Some(reason);
        lane.state.last_error_at = Some(now_epoch());
        let _ = self.spool.save_state(name, &lane.state);
        Ok(())
    }

    /// Takes a sink's ready batch: too-old and unreadable files are moved aside, the rest (up
    /// to `batch_max`, or exactly the suspect batch) is sent as one event or one digest in a
    /// task, after marking it in flight.
    fn start(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(lane) = self.lanes.get_mut(name) else {
            return Ok(());
        };
        let empty = Queue::default();
        let queue = self.queues.get(name).unwrap_or(&empty);
        let dir = self.spool.sink_dir(name);
        let Some(sink) = lane.sink.clone() else {
            if !lane.configured {
                let now = Instant::now();
                if let Some(e) = &self.config_error {
                    // No config has loaded: nothing can be judged, everything waits.
                    lane.state.last_error = Some(format!("{NOT_CONFIGURED} yet: the config does not load: {e}"));
                    lane.state.last_error_at = Some(now_epoch());
                    lane.ready_at = later(now, CONFIG_WAIT);
                    let _ = self.spool.save_state(name, &lane.state);
                    return Ok(());
                }
                let grace = UNCONFIGURED_GRACE.min(self.delivery.max_age.0);
                let since = *lane.unconfigured_since.get_or_insert(now);
                let until = later(since, grace);
                if now < until {
                    let left = until - now;
                    if lane.state.last_error.as_deref().is_none_or(|e| !e.starts_with(NOT_CONFIGURED)) {
                        tracing::warn!(
                            "sink `{name}` is not in the config: its {} event(s) wait {} for it to come back, then go to the dead letters",
                            queue.names.len(),
                            humantime::format_duration(Duration::from_secs(left.as_secs()))
                        );
                    }
                    lane.state.last_error = Some(format!(
                        "{NOT_CONFIGURED}: its events wait for it until {}, then go to the dead letters",
                        humantime::format_rfc3339_seconds(SystemTime::now() + left)
                    ));
                    lane.state.last_error_at = Some(now_epoch());
                    lane.state.next_try_at = Some(now_epoch() + left.as_secs_f64());
                    lane.ready_at = until;
                    let _ = self.spool.save_state(name, &lane.state);
                    return Ok(());
                }
                let pending: Vec<PathBuf> = queue.names.iter().map(|n| dir.join(&**n)).collect();
                let reason = format!(
                    "sink `{name}` is not in the config (waited {} for it to come back)",
                    humantime::format_duration(Duration::from_secs(grace.as_secs()))
                );
                bury(&self.spool, &mut self.alerts, name, &pending, &reason);
                inflight::clear(&self.spool, name)?;
                lane.suspect = None;
                return Ok(());
            }
            // The config of this sink is broken (for example an unreadable secret file): try
            // to build it again later; its events wait.
            let mut lane = self.lanes.remove(name).expect("the lane exists");
            self.build_sink(name, &mut lane);
            let _ = self.spool.save_state(name, &lane.state);
            self.lanes.insert(name.to_owned(), lane);
            return Ok(());
        };
        // The queue as read at the last look (oldest first), walked only as far as one batch
        // needs: a backlog of 100 000 costs no more than one of 500.
        let mut crashes = 0;
        let mut alone = None;
        let mut replan = None;
        if let Some(suspect) = &lane.suspect {
            let present: Vec<PathBuf> = suspect
                .files
                .iter()
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| queue.names.binary_search_by(|q| (**q).cmp(n)).is_ok())
                })
                .cloned()
                .collect();
            if present.is_empty() {
                lane.suspect = None;
            } else {
                crashes = suspect.crashes;
                replan = suspect.plan.clone();
                alone = Some(present);
            }
        }
        let pending: Box<dyn Iterator<Item = PathBuf>> = match alone {
            Some(files) => Box::new(files.into_iter()),
            None => Box::new(queue.names.iter().map(|n| dir.join(&**n))),
        };
        let oldest_allowed = now_epoch() - self.delivery.max_age.0.as_secs_f64();
        let mut files = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut expired = Vec::new();
        for file in pending {
            if files.len() >= self.delivery.batch_max {
                break;
            }
            match Spool::load(&file) {
                Ok(entry) if entry.enqueued_at < oldest_allowed && !retried_since(queue, &file, oldest_allowed) => {
                    expired.push(file);
                }
                Ok(entry) => {
                    events.push(entry.event);
                    files.push(file);
                }
                Err(reason) => {
                    tracing::error!("{}: moved to {}/corrupt: {reason}", file.display(), self.spool.root().display());
                    if let Err(e) = self.spool.quarantine(&file, &reason) {
                        tracing::error!("{}: cannot move it to corrupt/ ({e})", file.display());
                    }
                }
            }
        }
        if !expired.is_empty() {
            let age = humantime::format_duration(Duration::from_secs(self.delivery.max_age.0.as_secs()));
            let reason = format!(
                "not delivered within max_age ({age}); last error: {}",
                lane.state.last_error.as_deref().unwrap_or("none")
            );
            bury(&self.spool, &mut self.alerts, name, &expired, &reason);
        }
        if events.is_empty() {
            lane.suspect = None;
            inflight::clear(&self.spool, name)?;
            return Ok(());
        }
        if let Err(e) = inflight::write(&self.spool, name, &files, crashes) {
            // Sent all the same: the mark only guards against a crash loop, and holding back
            // every delivery because of it would be worse.
            tracing::warn!("sink `{name}`: cannot mark the batch in flight ({e}); sending anyway");
        }
        lane.in_flight = Some((files, crashes));
        // An unban replies to its ban's message; a storm's batches edit its message.
        let plan = replan.unwrap_or_else(|| lane.conversation.plan(&events, Instant::now(), lane.min_interval));
        let all = plan.events(events.clone());
        lane.sending = Some(conversation::Sending { plan: plan.clone(), batch: events });
        let task = self.tasks.spawn(async move {
            let send = async {
                match &plan {
                    conversation::Plan::One { reply_to } => sink.post(&all[0], reply_to.as_ref()).await,
                    conversation::Plan::Digest { update, .. } => {
                        sink.post_digest(&Digest::new(all), update.as_ref()).await
                    }
                }
            };
            match tokio::time::timeout(SEND_DEADLINE, send).await {
                Ok(result) => result,
                Err(_) => Err(SinkError::transient(format!(
                    "no answer within {} s (the worker's deadline for one send)",
                    SEND_DEADLINE.as_secs()
                ))),
            }
        });
        self.running.insert(task.id(), name.to_owned());
        Ok(())
    }

    /// A send ended: records its outcome, or, when its task panicked, counts the crash.
    fn finish(
        &mut self,
        joined: Result<(tokio::task::Id, Result<Option<MessageRef>, SinkError>), JoinError>,
    ) -> anyhow::Result<()> {
        let (id, result) = match joined {
            Ok((id, result)) => (id, Ok(result)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(name) = self.running.remove(&id) else {
            return Ok(());
        };
        let Some(mut lane) = self.lanes.remove(&name) else {
            return Ok(());
        };
        let outcome = match result {
            Ok(result) => self.record(&name, &mut lane, result),
            Err(e) => {
                let (files, crashes) = lane.in_flight.take().unwrap_or_default();
                lane.sending = None;
                let how = if e.is_panic() { "its send panicked" } else { "its send was cancelled" };
                tracing::error!("sink `{name}`: {how} with {} event(s)", files.len());
                lane.ready_at = later(Instant::now(), lane.min_interval);
                // The crash is counted in memory; the mark goes, as for any recorded outcome,
                // so that a worker stopping before the retry does not count it twice.
                let counted = self.crashed(&name, &mut lane, files, crashes + 1, how);
                counted.and_then(|()| Ok(inflight::clear(&self.spool, &name)?))
            }
        };
        if lane.rebuild {
            self.rebuild(&name, &mut lane);
        }
        self.lanes.insert(name, lane);
        outcome
    }

    /// The longest this worker obeys a `Retry-After`: [`RETRY_AFTER_MAX`], or `max_age` when
    /// that is shorter.
    fn retry_after_cap(&self) -> Duration {
        RETRY_AFTER_MAX.min(self.delivery.max_age.0)
    }

    /// Records how a delivery went: delivered files leave the queue; a transient failure waits
    /// (Retry-After exactly up to [`Self::retry_after_cap`], else backoff); a permanent one
    /// goes to the dead letters.
    fn record(
        &mut self,
        name: &str,
        lane: &mut Lane,
        result: Result<Option<MessageRef>, SinkError>,
    ) -> anyhow::Result<()> {
        let (files, _) = lane.in_flight.take().unwrap_or_default();
        let sending = lane.sending.take();
        let now = Instant::now();
        match result {
            Ok(posted) => {
                // The messages of its bans before the events leave the queue: an unban after
                // a crash finds its ban, and a crash in between posts the batch again (as any
                // crash after a send does).
                if let Some(sending) = sending {
                    lane.conversation.delivered(sending, posted, now);
                    if let Err(e) = lane.conversation.save(&self.spool, name) {
                        tracing::warn!("sink `{name}`: cannot save its ban messages ({e}): unbans after a restart will not reply to them");
                    }
                }
                let retried = self.queues.get(name).map(|q| &q.retried);
                for f in &files {
                    match std::fs::remove_file(f) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                    // The event first: a crash between the two leaves a stray sidecar (pruned
                    // later), never an event that lost its retry stamp.
                    let stamped =
                        f.file_name().and_then(|n| n.to_str()).is_some_and(|n| retried.is_some_and(|r| r.contains(n)));
                    if stamped {
                        Spool::forget_retried(f)?;
                    }
                }
                lane.suspect = None;
                lane.state.attempts = 0;
                lane.state.last_error = None;
                lane.state.last_error_at = None;
                lane.state.next_try_at = None;
                lane.state.last_delivered_at = Some(now_epoch());
                lane.state.delivered += files.len() as u64;
                lane.ready_at = later(now, lane.min_interval);
                let pending = self.queues.get(name).map_or(0, |q| q.names.len().saturating_sub(files.len()));
                let kind = lane.sink.as_ref().map_or("", |s| s.kind());
                let status = alerts::Status { kind, pending, last_error: None };
                let open = std::mem::take(&mut lane.state.alert_open);
                if let Some(alert) = self.alerts.delivered(name, open, &self.host, &status) {
                    self.raise(name, alert);
                }
            }
            Err(e) if e.is_transient() => {
                // The same batch is tried again, alone, until it is delivered or given up:
                // after a lost answer the service may hold it, and the same message again
                // lets it see so (Matrix's transaction id, Alertmanager's merge) where a
                // batch grown by newer events would be a second message. A suspect batch
                // stays suspect (alone, with its count).
                if lane.suspect.is_none() {
                    let plan = sending.map(|s| s.plan);
                    lane.suspect = Some(Suspect { files: files.clone(), crashes: 0, plan });
                }
                lane.state.attempts += 1;
                // After a timeout the server may have the message: trying again soon would
                // post it again and again to a server slower than the timeout.
                let timed_out = maybe_delivered(&e);
                let wait = match e.retry_after_hint() {
                    Some(wait) => wait.min(self.retry_after_cap()),
                    None if timed_out => timeout_backoff(lane.state.attempts, self.delivery.retry_max.0),
                    None => backoff(lane.state.attempts, self.delivery.retry_max.0),
                }
                .max(lane.min_interval);
                tracing::warn!(
                    "sink `{name}`: {e} (try {}; next in {:.1} s{})",
                    lane.state.attempts,
                    wait.as_secs_f64(),
                    if timed_out { ", later than after a refusal: it may have been received" } else { "" }
                );
                lane.state.last_error = Some(e.to_string());
                lane.state.last_error_at = Some(now_epoch());
                lane.state.next_try_at = Some(now_epoch() + wait.as_secs_f64());
                lane.ready_at = later(now, wait);
                self.alerts.failed(name);
            }
            Err(e) => {
                let reason = format!("permanent failure: {e}");
                bury(&self.spool, &mut self.alerts, name, &files, &reason);
                self.alerts.failed(name);
                lane.suspect = None;
                lane.state.attempts = 0;
                lane.state.last_error = Some(e.to_string());
                lane.state.last_error_at = Some(now_epoch());
                lane.state.next_try_at = None;
                lane.ready_at = later(now, lane.min_interval);
            }
        }
        inflight::clear(&self.spool, name)?;
        let _ = self.spool.save_state(name, &lane.state);
        Ok(())
    }
}

/// Whether `queue retry` moved this event back after `oldest_allowed` (its `max_age` then
/// counts from the retry). Only events the last look saw with a sidecar are read.
fn retried_since(queue: &Queue, file: &std::path::Path, oldest_allowed: f64) -> bool {
    let listed = file.file_name().and_then(|n| n.to_str()).is_some_and(|n| queue.retried.contains(n));
    listed && Spool::retried_at(file).is_some_and(|at| at >= oldest_allowed)
}

/// A loaded config as the worker uses it: its delivery settings (except the spool, which is
/// the worker's, `spool`, for its life), its sinks and its routes.
fn settings(config: Config, spool: &std::path::Path) -> Settings<'static> {
    let config = Arc::new(config);
    if config.delivery.spool != spool {
        tracing::warn!(
            "the config names the spool {}; this worker keeps delivering from {} until it stops",
            config.delivery.spool.display(),
            spool.display()
        );
    }
    let delivery = DeliveryConfig { spool: spool.to_owned(), ..config.delivery.clone() };
    // `[enrich]`: one set of lookups (databases, resolver, cache) for every sink. A lookup that
    // cannot be set up is said in the log and left out; the others and every message go on.
    let (vetted, refused) = crate::trusted::vet_enrich(config.enrich.clone());
    let (enricher, problems) = f2b_notify_enrich::Enricher::lenient(&vetted);
    for p in refused.into_iter().chain(problems.iter().map(ToString::to_string)) {
        tracing::error!("{p}; enrichment goes on without it (`f2b-notify check` says the same)");
    }
    let enricher = enricher.map(Arc::new);
    let sinks = Arc::clone(&config);
    let build: SinkFactory<'static> = Box::new(move |name| {
        let built = sinks.sinks.get(name).map(|c| registry::build(name, c))?;
        Some(built.map(|sink| match &enricher {
            Some(enricher) => enriched::Enriched::wrap(sink, Arc::clone(enricher)),
            None => sink,
        }))
    });
    let table = Table::new(&config.jails);
    let route: RouteFn<'static> = Box::new(move |event| route(&table, &config, event));
    (delivery, build, route)
}

/// The start of a lane's last error while the config does not name its sink.
const NOT_CONFIGURED: &str = "not in the config";

/// Where the current config sends an event spooled unrouted: its route's sinks, except a
/// stdout sink writing to stdout (the worker has none; the event is said in its log instead).
fn route(table: &Table, config: &Config, event: &Event) -> Routed {
    match table.decide(event) {
        Decision::Send(names) => {
            let (to_stdout, sinks): (Vec<&String>, Vec<&String>) =
                names.iter().partition(|n| config.sinks.get(*n).is_some_and(|c| c.writes_to_stdout()));
            for n in to_stdout {
                tracing::warn!(
                    "sink `{n}` writes to the action's stdout, which is gone: {} {} not written there",
                    event.kind,
                    event.id.as_deref().unwrap_or(&event.jail)
                );
            }
            Routed::Sinks(sinks.into_iter().cloned().collect())
        }
        Decision::NoRoute => Routed::Dropped(format!("jail `{}` matches no route in the config", event.jail)),
        Decision::Filtered => Routed::Sinks(Vec::new()),
        Decision::Restored => Routed::Sinks(Vec::new()),
    }
}

/// Moves `files` of sink `name` to the dead letters with `reason`: said in the log and counted
/// for the alerts. A move that fails (a full disk) leaves them queued, and says so.
fn bury(spool: &Spool, alerts: &mut alerts::Alerts, name: &str, files: &[PathBuf], reason: &str) {
    tracing::error!("sink `{name}`: {} event(s) moved to the dead letters: {reason}", files.len());
    if let Err(e) = spool.bury(name, files, reason) {
        tracing::error!(
            "sink `{name}`: cannot move {} event(s) to the dead letters ({e}); they stay queued",
            files.len()
        );
        return;
    }
    alerts.buried(name, files.len(), reason);
}

/// What an alert says about `sink`: its type, how many events wait, its last error.
fn status<'a>(lanes: &'a BTreeMap<String, Lane>, queues: &BTreeMap<String, Queue>, sink: &str) -> alerts::Status<'a> {
    let lane = lanes.get(sink);
    alerts::Status {
        kind: lane.and_then(|l| l.sink.as_ref()).map_or("", |s| s.kind()),
        pending: queues.get(sink).map_or(0, |q| q.names.len()),
        last_error: lane.and_then(|l| l.state.last_error.as_deref()),
    }
}

/// Logs how sending an alert went.
fn alert_sent(sent: Result<(String, String, Result<(), SinkError>), JoinError>) {
    match sent {
        Ok((target, _, Ok(()))) => tracing::info!("alert sink `{target}`: alert delivered"),
        Ok((target, subject, Err(e))) => {
            tracing::error!("alert sink `{target}`: could not send the alert \"{subject}\": {e}")
        }
        Err(e) => tracing::error!("an alert's send failed: {e}"),
    }
}

/// What one look at the spool found.
struct Scan {
    /// Something is pending or in flight.
    busy: bool,
    /// When the first lane that waits (pacing, backoff) becomes ready.
    next_ready: Option<Instant>,
}

fn write_pid(lock: &mut File) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()
}
