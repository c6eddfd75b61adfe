//! `f2b-notify deliver`: the delivery worker, started on demand by `notify` (it exits when
//! idle) or run for good by a service manager with `--follow`.

use std::process::ExitCode;

use super::{load, runtime};
use crate::cli::DeliverArgs;
use crate::config::Sources;
use crate::worker;

/// Runs `deliver`.
pub fn run(sources: &Sources, args: DeliverArgs) -> anyhow::Result<ExitCode> {
    // Leave Fail2Ban's process group and session: when an action times out, Fail2Ban kills
    // the action's whole process group. Fails harmlessly when already a session leader.
    let _ = rustix::process::setsid();
    let loaded = load(sources)?;
    let ran = runtime()?.block_on(worker::run(&loaded, args.follow))?;
    if !ran {
        tracing::info!("another worker is delivering from {}", loaded.config.delivery.spool.display());
    }
    Ok(ExitCode::SUCCESS)
}
