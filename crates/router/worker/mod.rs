//! The delivery worker (`f2b-notify deliver`): drains the spool in the background so that the
//! action Fail2Ban waits for never touches the network.
//!
//! Per sink, independently: the first event after a quiet period goes out alone and at once;
//! whatever piles up while the sink is busy, pacing (`min_interval`) or waiting to retry goes
//! out as one digest. Transient failures are retried with exponential backoff and jitter, a
//! `Retry-After` exactly as given; permanent failures and events older than `max_age` go to
//! the dead-letter directory with the reason. Files leave a sink's queue only after that sink
//! delivered them, so a SIGKILL at any moment loses nothing; at most the one message that was
//! in flight is sent again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{Digest, Event, Sink, SinkError};

use crate::config::{DeliveryConfig, Loaded};
use crate::registry;
use crate::spool::{now_epoch, SinkState, Spool};

/// How often the worker looks at the spool.
const POLL: Duration = Duration::from_millis(50);
/// First retry delay; doubles per failure up to `retry_max`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// How long to wait before trying again to build a sink whose config is broken.
const REBUILD_AFTER: Duration = Duration::from_secs(60);

/// One sink's lane.
struct Lane {
    sink: Option<Arc<dyn Sink>>,
    min_interval: Duration,
    ready_at: Instant,
    in_flight: bool,
    state: SinkState,
}

/// What a finished delivery reports.
struct Outcome {
    sink: String,
    files: Vec<PathBuf>,
    result: Result<(), SinkError>,
}

/// Exponential backoff with ±20% jitter, capped.
fn backoff(attempts: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    let base = exp.min(cap);
    // Jitter from the clock's nanoseconds: enough to keep several workers apart.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let factor = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
    base.mul_f64(factor).min(cap)
}

/// Runs the worker until it has been idle for `idle_exit` (or forever with `follow`).
/// Returns early, doing nothing, when another worker holds the spool.
pub async fn run(loaded: &Loaded, follow: bool) -> anyhow::Result<bool> {
    let delivery = loaded.config.delivery.clone();
    let spool = Spool::new(&delivery.spool);
    let Some(mut lock) = spool.try_lock()? else { return Ok(false) };
    write_pid(&mut lock)?;

    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    let mut tasks: tokio::task::JoinSet<Outcome> = tokio::task::JoinSet::new();
    let mut idle_since = Instant::now();
    loop {
        if let Err(e) = spool.fan_out() {
            tracing::error!("cannot hand out new events in {}: {e}", spool.root().display());
        }
        let mut busy = !tasks.is_empty();
        for name in spool.sink_names()? {
            let pending = spool.pending(&name)?;
            if pending.is_empty() {
                continue;
            }
            busy = true;
            let lane = match lanes.entry(name.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let lane = e.insert(new_lane(loaded, &delivery, &name));
                    // A sink that cannot be built says so in `f2b-notify queue` at once, not
                    // only when its rebuild is due.
                    if lane.state.last_error.is_some() {
                        let _ = spool.save_state(&name, &lane.state);
                    }
                    lane
                }
            };
            if lane.in_flight || Instant::now() < lane.ready_at {
                continue;
            }
            start(&spool, &delivery, loaded, &name, lane, pending, &mut tasks)?;
        }
        if busy {
            idle_since = Instant::now();
        } else if !follow && idle_since.elapsed() >= delivery.idle_exit.0 {
            // Let go of the lock first, then look once more: a `notify` that saw the lock
            // held just before has its event in the spool, and no new worker is coming.
            drop(lock);
            if spool.unrouted()?.is_empty() && spool.sink_names()?.iter().all(|n| spool.pending(n).map(|p| p.is_empty()).unwrap_or(true)) {
                return Ok(true);
            }
            match spool.try_lock()? {
                Some(l) => lock = l,
                None => return Ok(true),
            }
            write_pid(&mut lock)?;
            idle_since = Instant::now();
        }
        tokio::select! {
            done = tasks.join_next(), if !tasks.is_empty() => {
                if let Some(Ok(outcome)) = done {
                    finish(&spool, &delivery, &mut lanes, outcome)?;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

fn write_pid(lock: &mut File) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()
}

fn new_lane(loaded: &Loaded, delivery: &DeliveryConfig, name: &str) -> Lane {
    let mut state = SinkState::default();
    let sink = match loaded.config.sinks.get(name) {
        None => None,
        Some(cfg) => match registry::build(name, cfg) {
            Ok(s) => Some(s),
            Err(e) => {
                state.last_error = Some(format!("cannot build the sink: {e:#}"));
                None
            }
        },
    };
    let min_interval = delivery
        .min_interval
        .get(name)
        .map(|s| s.0)
        .or_else(|| sink.as_ref().map(|s| s.min_interval()))
        .unwrap_or_default();
    let ready_at = if sink.is_none() && loaded.config.sinks.contains_key(name) {
        Instant::now() + REBUILD_AFTER
    } else {
        Instant::now()
    };
    Lane { sink, min_interval, ready_at, in_flight: false, state }
}

/// Takes a sink's ready batch: too-old and unreadable files are moved aside, the rest (up to
/// `batch_max`) is sent as one event or one digest in a task.
fn start(
    spool: &Spool,
    delivery: &DeliveryConfig,
    loaded: &Loaded,
    name: &str,
    lane: &mut Lane,
    pending: Vec<PathBuf>,
    tasks: &mut tokio::task::JoinSet<Outcome>,
) -> anyhow::Result<()> {
    if !loaded.config.sinks.contains_key(name) {
        spool.bury(name, &pending, &format!("sink `{name}` is not in the config any more"))?;
        return Ok(());
    }
    let Some(sink) = lane.sink.clone() else {
        // The config of this sink is broken (for example an unreadable secret file): try to
        // build it again later; its events wait.
        *lane = new_lane(loaded, delivery, name);
        let _ = spool.save_state(name, &lane.state);
        return Ok(());
    };
    let oldest_allowed = now_epoch() - delivery.max_age.0.as_secs_f64();
    let mut files = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut expired = Vec::new();
    for file in pending {
        if files.len() >= delivery.batch_max {
            break;
        }
        match Spool::load(&file) {
            Ok(entry) if entry.enqueued_at < oldest_allowed => expired.push(file),
            Ok(entry) => {
                events.push(entry.event);
                files.push(file);
            }
            Err(reason) => spool.quarantine(&file, &reason)?,
        }
    }
    if !expired.is_empty() {
        let age = humantime::format_duration(Duration::from_secs(delivery.max_age.0.as_secs()));
        spool.bury(name, &expired, &format!("not delivered within max_age ({age}); last error: {}", lane.state.last_error.as_deref().unwrap_or("none")))?;
    }
    if events.is_empty() {
        return Ok(());
    }
    lane.in_flight = true;
    let sink_name = name.to_owned();
    tasks.spawn(async move {
        let result = if events.len() == 1 {
            sink.send(&events[0]).await
        } else {
            sink.send_digest(&Digest::new(events)).await
        };
        Outcome { sink: sink_name, files, result }
    });
    Ok(())
}

/// Records how a delivery went: delivered files leave the queue; a transient failure waits
/// (Retry-After exactly, else backoff); a permanent one goes to the dead letters.
fn finish(spool: &Spool, delivery: &DeliveryConfig, lanes: &mut BTreeMap<String, Lane>, outcome: Outcome) -> anyhow::Result<()> {
    let Some(lane) = lanes.get_mut(&outcome.sink) else { return Ok(()) };
    lane.in_flight = false;
    let now = Instant::now();
    match outcome.result {
        Ok(()) => {
            for f in &outcome.files {
                match std::fs::remove_file(f) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            lane.state.attempts = 0;
            lane.state.last_error = None;
            lane.state.next_try_at = None;
            lane.state.last_delivered_at = Some(now_epoch());
            lane.state.delivered += outcome.files.len() as u64;
            lane.ready_at = now + lane.min_interval;
        }
        Err(e) if e.is_transient() => {
            lane.state.attempts += 1;
            let wait = match e.retry_after_hint() {
                Some(wait) => wait,
                None => backoff(lane.state.attempts, delivery.retry_max.0),
            }
            .max(lane.min_interval);
            tracing::warn!("sink `{}`: {} (try {}; next in {:.1} s)", outcome.sink, e, lane.state.attempts, wait.as_secs_f64());
            lane.state.last_error = Some(e.to_string());
            lane.state.next_try_at = Some(now_epoch() + wait.as_secs_f64());
            lane.ready_at = now + wait;
        }
        Err(e) => {
            tracing::error!("sink `{}`: {e}: {} event(s) moved to the dead letters", outcome.sink, outcome.files.len());
            spool.bury(&outcome.sink, &outcome.files, &format!("permanent failure: {e}"))?;
            lane.state.attempts = 0;
            lane.state.last_error = Some(e.to_string());
            lane.state.next_try_at = None;
            lane.ready_at = now + lane.min_interval;
        }
    }
    let _ = spool.save_state(&outcome.sink, &lane.state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let cap = Duration::from_secs(300);
        for attempts in 1..=20 {
            let b = backoff(attempts, cap);
            let expected = BACKOFF_BASE.saturating_mul(1 << (attempts - 1).min(16)).min(cap);
            assert!(b <= cap, "{attempts}: {b:?}");
            assert!(b >= expected.mul_f64(0.8) && b <= expected.mul_f64(1.2), "{attempts}: {b:?} vs {expected:?}");
        }
        assert!(backoff(30, Duration::from_secs(5)) <= Duration::from_secs(5));
    }
}
