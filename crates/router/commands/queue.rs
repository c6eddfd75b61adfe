//! `f2b-notify queue`: what waits in the spool or died there, per sink: pending, in flight,
//! dead, the last error with its time and the next try; dead letters counted per sink, jail
//! and reason (20 000 dead events are a few lines, `--all` prints each); `retry` moves the
//! dead letters back with a fresh `max_age` (and starts a worker), `purge` deletes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use super::ensure_worker;
use crate::cli::{QueueAction, QueueArgs};
use crate::config::Sources;
use crate::spool::{now_epoch, Spool};
use crate::worker::inflight;

/// How many dead events (and corrupt files) of a sink are shown one by one without `--all`:
/// enough to see what they are, few enough that a flood of them stays readable.
const SHOWN: usize = 10;

/// Runs `queue`.
pub fn run(sources: &Sources, args: QueueArgs) -> anyhow::Result<ExitCode> {
    // A config that does not load still has a spool to look at: the one `notify` spools
    // into meanwhile (events wait there unrouted).
    let spool = match crate::config::load(sources) {
        Ok(loaded) => Spool::new(&loaded.config.delivery.spool),
        Err(e) => {
            eprintln!("f2b-notify: the config does not load: {e}");
            Spool::new(crate::config::fallback_spool(sources))
        }
    };
    if !spool.root().exists() {
        println!("spool {}: empty (nothing was ever queued)", spool.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    // Nothing is read, moved or deleted as root in directories others could change.
    spool.verify().map_err(|u| anyhow::anyhow!("refusing to use {u}"))?;
    match args.action {
        QueueAction::Retry => {
            let n = spool.retry_dead()?;
            println!("moved {n} dead event(s) back to their queues (their max_age starts again now)");
            if n > 0 {
                ensure_worker(&spool, sources)?;
            }
        }
        QueueAction::Purge => {
            let n = spool.purge_dead()?;
            println!("purged {n} dead event(s)");
        }
        QueueAction::List => print!("{}", report(&spool, args.all)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// An epoch time as UTC, to the second, with how long ago it was.
fn when(epoch: f64) -> String {
    // A time from a state file is data: one past the year 9999 (or not a number) is shown as
    // it is, never a panic.
    if !(0.0..253_402_300_800.0).contains(&epoch) {
        return format!("{epoch} s since the epoch");
    }
    let at = UNIX_EPOCH + Duration::from_secs_f64(epoch);
    let ago = Duration::from_secs((now_epoch() - epoch).max(0.0) as u64);
    format!("{}, {} ago", humantime::format_rfc3339_seconds(at), humantime::format_duration(ago))
}

/// One dead event as `queue` has always printed it: `dead `api`: sshd ban 192.0.2.1: reason`.
fn dead_line(sink: &str, file: &std::path::Path) -> String {
    let what = match Spool::load(file) {
        Ok(e) => format!("{} {} {}", e.event.jail, e.event.kind, e.event.id.unwrap_or_default()),
        Err(_) => "(unreadable)".to_owned(),
    };
    format!("  dead `{sink}`: {what}: {}\n", Spool::reason_of(file))
}

/// The listing: the worker, what waits in `new/`, then per sink its line (pending, in
/// flight, dead, last error and when, next try), its dead letters counted per jail and
/// reason, and the first [`SHOWN`] of them (every one with `all`); then the corrupt files.
pub fn report(spool: &Spool, all: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    let worker = spool.worker()?;
    let service = spool.service_marked();
    match worker {
        Some(pid) if service => writeln!(out, "spool {}: the service's worker running (pid {pid})", spool.root().display())?,
        Some(pid) => writeln!(out, "spool {}: worker running (pid {pid})", spool.root().display())?,
        None if service => writeln!(
            out,
            "spool {}: no worker running, and it is marked as the service's ({}): events wait for the service to run (`systemctl status f2b-notify`); remove that file if no service serves it any more",
            spool.root().display(),
            spool.service_mark().display()
        )?,
        None => writeln!(out, "spool {}: no worker running", spool.root().display())?,
    }
    let new = spool.unrouted()?.len();
    let unrouted = spool.unrouted_reasons()?;
    if new > unrouted.len() {
        writeln!(out, "new: {} event(s) not yet handed to their sinks", new - unrouted.len())?;
    }
    if let Some(last) = unrouted.last() {
        writeln!(
            out,
            "new: {} event(s) spooled while the config did not load wait for one that does (last: {last})",
            unrouted.len()
        )?;
    }
    let mut names: Vec<String> = spool.sink_names()?;
    names.extend(spool.dead_sinks()?);
    names.sort();
    names.dedup();
    for name in &names {
        let pending = spool.pending(name)?.len();
        let dead = spool.dead(name)?;
        write!(out, "sink `{name}`: {pending} pending")?;
        // The batch marked in flight: being sent by the running worker, or left by a worker
        // that died with it (the next one sends it again alone).
        if let Ok(Some(mark)) = inflight::read(spool, name) {
            let n = mark.present_files(spool, name).len();
            if n > 0 && pending > 0 {
                let how = if worker.is_some() { "in flight" } else { "in flight when a worker died" };
                write!(out, " ({n} {how} since {})", when(mark.since))?;
            }
        }
        write!(out, ", {} dead", dead.len())?;
        if let Some(state) = spool.load_state(name) {
            if let Some(err) = &state.last_error {
                write!(out, "; last error: {err}")?;
                if let Some(at) = state.last_error_at {
                    write!(out, " (at {})", when(at))?;
                }
            }
            if let (Some(at), true) = (state.next_try_at, pending > 0) {
                write!(out, "; next try in {:.0} s", (at - now_epoch()).max(0.0))?;
            }
        }
        out.push('\n');
        if dead.is_empty() {
            continue;
        }
        // Per jail: how many, and each distinct reason with its count.
        let mut jails: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for f in &dead {
            let jail = Spool::load(f).map(|e| e.event.jail).unwrap_or_else(|_| "(unreadable)".to_owned());
            *jails.entry(jail).or_default().entry(Spool::reason_of(f)).or_default() += 1;
        }
        for (jail, reasons) in &jails {
            let n: usize = reasons.values().sum();
            writeln!(out, "  dead `{name}`, jail {jail}: {n} event(s)")?;
            for (reason, count) in reasons {
                writeln!(out, "    {count} × {reason}")?;
            }
        }
        let shown = if all { dead.len() } else { dead.len().min(SHOWN) };
        for f in &dead[..shown] {
            out.push_str(&dead_line(name, f));
        }
        if shown < dead.len() {
            writeln!(
                out,
                "  … and {} more dead event(s) of `{name}` (`f2b-notify queue --all` lists every one)",
                dead.len() - shown
            )?;
        }
    }
    let corrupt: Vec<PathBuf> = spool.corrupt()?;
    if !corrupt.is_empty() {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for f in &corrupt {
            *reasons.entry(Spool::reason_of(f)).or_default() += 1;
        }
        writeln!(out, "corrupt: {} file(s) in {}", corrupt.len(), spool.root().join("corrupt").display())?;
        for (reason, count) in &reasons {
            writeln!(out, "    {count} × {reason}")?;
        }
        let shown = if all { corrupt.len() } else { corrupt.len().min(SHOWN) };
        for f in &corrupt[..shown] {
            writeln!(out, "  corrupt {}: {}", f.display(), Spool::reason_of(f))?;
        }
        if shown < corrupt.len() {
            writeln!(out, "  … and {} more (`f2b-notify queue --all` lists every one)", corrupt.len() - shown)?;
        }
    }
    // Where every error above is told in full, with its time.
    let log = spool.root().join("worker.log");
    if log.exists() {
        writeln!(
            out,
            "the worker's log: {} (timestamped; a `deliver --follow` service logs to its journal instead)",
            log.display()
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Entry, SinkState};
    use f2b_notify_core::{Event, EventKind};

    /// 20 000 dead events in two jails with two reasons: a few lines, each count right;
    /// `--all` a line for each.
    #[test]
    fn twenty_thousand_dead_events_are_a_few_lines_and_all_lists_each() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.ensure().unwrap();
        let queue = spool.sink_dir("hook");
        std::fs::create_dir_all(&queue).unwrap();
        let mut files = Vec::new();
        for i in 0..20_000u32 {
            let jail = if i % 4 == 0 { "nginx" } else { "sshd" };
            let entry = Entry::new(
                Event::target_event(
                    EventKind::Ban,
                    jail,
                    format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    "h",
                ),
                vec!["hook".to_owned()],
            );
            let f = queue.join(format!("{:020}-1-{i}.json", 1_700_000_000_000_000_000u64 + u64::from(i)));
            std::fs::write(&f, serde_json::to_vec(&entry).unwrap()).unwrap();
            files.push(f);
        }
        spool.bury("hook", &files[..15_000], "not delivered within max_age (1day); last error: HTTP 503").unwrap();
        spool.bury("hook", &files[15_000..19_999], "permanent failure: no_service").unwrap();
        let state = SinkState {
            last_error: Some("HTTP 503".into()),
            last_error_at: Some(now_epoch() - 90.0),
            next_try_at: Some(now_epoch() + 30.0),
            ..SinkState::default()
        };
        spool.save_state("hook", &state).unwrap();

        let out = report(&spool, false).unwrap();
        assert!(out.lines().count() < 25, "{} lines:\n{out}", out.lines().count());
        assert!(out.contains("sink `hook`: 1 pending, 19999 dead; last error: HTTP 503 (at "), "{out}");
        assert!(out.contains(", 1m 30s ago); next try in 30 s") || out.contains(", 1m 31s ago); next try in"), "{out}");
        assert!(out.contains("  dead `hook`, jail nginx: 5000 event(s)\n"), "{out}");
        assert!(out.contains("  dead `hook`, jail sshd: 14999 event(s)\n"), "{out}");
        assert!(out.contains("    3750 × not delivered within max_age (1day); last error: HTTP 503\n"), "{out}");
        assert!(out.contains("    1250 × permanent failure: no_service\n"), "{out}");
        assert!(out.contains("    3749 × permanent failure: no_service\n"), "{out}");
        assert!(out.contains("  dead `hook`: nginx ban 10.0.0.0: not delivered within max_age"), "{out}");
        assert!(out.contains("… and 19989 more dead event(s) of `hook`"), "{out}");

        let all = report(&spool, true).unwrap();
        let each = all.lines().filter(|l| l.starts_with("  dead `hook`: ")).count();
        assert_eq!(each, 19_999);
        assert!(!all.contains("more dead event(s)"));
    }
}
