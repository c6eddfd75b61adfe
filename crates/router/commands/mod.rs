//! The subcommands, one file each, and what several of them share: loading the config,
//! the host name, building sinks, sending one event to several sinks, starting the worker.

mod action;
mod check;
mod deliver;
mod generate;
mod notify;
mod queue;
mod report;
mod setup;
mod test;

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use f2b_notify_core::{Event, Sink, SinkError};
use f2b_notify_fastpath::worker::{self as fastpath_worker, Started};

use crate::cli::{Cli, Command};
use crate::config::{self, Loaded, Sources};
use crate::os::StdOs;
use crate::registry;
use crate::spool::{io_error, Spool};

/// The Fail2Ban action file, shipped in the binary so `f2b-notify action` and `setup` need no
/// files (they set its `bin` to the running binary: see `action.rs`).
pub const ACTION_FILE: &str = include_str!("../../../config/action.d/f2b-notify.conf");

/// An upper bound on one delivery in the action path, far below Fail2Ban's 60 s action
/// timeout, in case a sink's own timeout misbehaves.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let sources = Sources::from_args(&cli.config);
    match cli.command {
        Command::Action => action::run(),
        Command::Check(args) => check::run(&sources, &args),
        Command::Notify(args) => notify::run(&sources, &cli.config, args),
        Command::Test(args) => test::run(&sources, args),
        Command::Deliver(args) => deliver::run(&sources, args),
        Command::Queue(args) => queue::run(&sources, args),
        Command::Setup(args) => setup::run(&sources, args),
        Command::Report(args) => report::run(&sources, &args),
        Command::Generate(args) => generate::run(args),
    }
}

fn load(sources: &Sources) -> anyhow::Result<Loaded> {
    config::load(sources).map_err(|e| anyhow!(e))
}

/// The configured host name, else the kernel's.
fn host_name(loaded: &Loaded) -> String {
    if let Some(h) = loaded.config.host.as_deref().filter(|h| !h.is_empty()) {
        return h.to_owned();
    }
    kernel_host_name()
}

/// The kernel's host name (`localhost` when it has none).
fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

fn build_sinks(loaded: &Loaded, names: &[String]) -> anyhow::Result<Vec<Arc<dyn Sink>>> {
    names
        .iter()
        .map(|name| {
            let cfg = loaded.config.sinks.get(name).ok_or_else(|| anyhow!("no sink named `{name}`"))?;
            registry::build(name, cfg)
        })
        .collect()
}

/// Sends `event` to every sink at once and returns each sink's result, in order.
async fn deliver(sinks: &[Arc<dyn Sink>], event: &Event, deadline: Duration) -> Vec<Result<(), SinkError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        let sink = Arc::clone(sink);
        let event = event.clone();
        set.spawn(async move {
            let result = match tokio::time::timeout(deadline, sink.send(&event)).await {
                Ok(r) => r,
                Err(_) => Err(SinkError::transient(format!("no answer within {} s", deadline.as_secs()))),
            };
            (i, result)
        });
    }
    let mut results: Vec<Result<(), SinkError>> = (0..sinks.len()).map(|_| Ok(())).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = r,
            Err(e) => tracing::error!("a sink task failed: {e}"),
        }
    }
    results
}

/// Starts a delivery worker unless one holds the spool, the action contract's way (the same
/// code the front end runs): detached, stdin/stdout on /dev/null, stderr to worker.log.
fn ensure_worker(spool: &Spool, sources: &Sources) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the f2b-notify binary")?;
    let exe = CString::new(exe.into_os_string().into_vec()).context("the binary's path holds a NUL byte")?;
    let args: Vec<Vec<u8>> = worker_args(sources).into_iter().map(OsString::into_vec).collect();
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    match fastpath_worker::ensure(&StdOs, spool.root().as_os_str().as_bytes(), &exe, &args) {
        Ok(Started::Started | Started::AlreadyRunning) => Ok(()),
        Ok(Started::LeftToService) => {
            tracing::debug!("{} is the service's: it delivers, no worker started", spool.root().display());
            Ok(())
        }
        Err(e) => Err(io_error(e))
            .with_context(|| format!("cannot start `f2b-notify deliver` for {}", spool.root().display())),
    }
}

/// The arguments that start the worker for these config files. It runs in `/`: it gets the
/// files by absolute path.
fn worker_args(sources: &Sources) -> Vec<OsString> {
    let mut args = Vec::new();
    if let Sources::Explicit(files) = sources {
        for f in files {
            args.push("--config".into());
            args.push(std::path::absolute(f).unwrap_or_else(|_| f.clone()).into_os_string());
        }
    }
    args.push("deliver".into());
    args
}
