//! `f2b-notify queue`: what waits in the spool or died there, per sink, with the last error;
//! `retry` moves the dead letters back (and starts a worker), `purge` deletes them.

use std::process::ExitCode;

use super::{ensure_worker, load};
use crate::cli::{QueueAction, QueueArgs};
use crate::config::Sources;
use crate::spool::Spool;

/// Runs `queue`.
pub fn run(sources: &Sources, args: QueueArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let spool = Spool::new(&loaded.config.delivery.spool);
    if !spool.root().exists() {
        println!("spool {}: empty (nothing was ever queued)", spool.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    // Nothing is read, moved or deleted as root in directories others could change.
    spool.verify().map_err(|u| anyhow::anyhow!("refusing to use {u}"))?;
    match args.action {
        QueueAction::Retry => {
            let n = spool.retry_dead()?;
            println!("moved {n} dead event(s) back to their queues");
            if n > 0 {
                ensure_worker(&spool, sources)?;
            }
        }
        QueueAction::Purge => {
            let n = spool.purge_dead()?;
            println!("purged {n} dead event(s)");
        }
        QueueAction::List => {
            let mut out = String::new();
            match spool.worker()? {
                Some(pid) => out.push_str(&format!("spool {}: worker running (pid {pid})\n", spool.root().display())),
                None => out.push_str(&format!("spool {}: no worker running\n", spool.root().display())),
            }
            let unrouted = spool.unrouted()?.len();
            if unrouted > 0 {
                out.push_str(&format!("new: {unrouted} event(s) not yet handed to their sinks\n"));
            }
            let mut names: Vec<String> = spool.sink_names()?;
            names.extend(spool.dead_sinks()?);
            names.sort();
            names.dedup();
            for name in &names {
                let pending = spool.pending(name)?.len();
                let dead = spool.dead(name)?.len();
                out.push_str(&format!("sink `{name}`: {pending} pending, {dead} dead"));
                if let Some(state) = spool.load_state(name) {
                    if let Some(err) = &state.last_error {
                        out.push_str(&format!("; last error: {err}"));
                    }
                    if let Some(at) = state.next_try_at {
                        let wait = (at - crate::spool::now_epoch()).max(0.0);
                        if pending > 0 {
                            out.push_str(&format!("; next try in {wait:.0} s"));
                        }
                    }
                }
                out.push('\n');
            }
            for name in spool.dead_sinks()? {
                for f in spool.dead(&name)? {
                    let what = match Spool::load(&f) {
                        Ok(e) => format!("{} {} {}", e.event.jail, e.event.kind, e.event.id.unwrap_or_default()),
                        Err(_) => "(unreadable)".to_owned(),
                    };
                    out.push_str(&format!("  dead `{name}`: {what}: {}\n", Spool::reason_of(&f)));
                }
            }
            for f in spool.corrupt()? {
                out.push_str(&format!("  corrupt {}: {}\n", f.display(), Spool::reason_of(&f)));
            }
            print!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
