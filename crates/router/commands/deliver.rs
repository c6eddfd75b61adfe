//! `f2b-notify deliver`: the delivery worker, started on demand by `notify` (it exits when
//! idle) or run for good by a service manager with `--follow`.

use std::process::ExitCode;

use super::runtime;
use crate::cli::DeliverArgs;
use crate::config::Sources;
use crate::worker;

/// Runs `deliver`.
pub fn run(sources: &Sources, args: DeliverArgs) -> anyhow::Result<ExitCode> {
    // Leave Fail2Ban's process group and session: when an action times out, Fail2Ban kills
    // the action's whole process group. Fails harmlessly when already a session leader.
    let _ = rustix::process::setsid();
    // A config that does not load is said, and the worker waits for it to be fixed: events
    // spooled meanwhile are routed then.
    let mut worker = worker::Worker::from_sources(sources);
    if args.service {
        worker.as_service();
    }
    let spool = worker.spool_root().to_owned();
    let ran = runtime()?.block_on(worker.run(args.follow))?;
    if !ran {
        tracing::info!("another worker is delivering from {}", spool.display());
    }
    Ok(ExitCode::SUCCESS)
}
