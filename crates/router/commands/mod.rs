//! What each subcommand does.

use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use f2b_notify_core::{Event, EventKind, Sink, SinkError};

use crate::cli::{Cli, Command, DeliverArgs, NotifyArgs, QueueAction, QueueArgs, TestArgs};
use crate::config::{self, Loaded, Mode, Sources};
use crate::registry;
use crate::route::{Decision, Table};
use crate::spool::{Entry, Spool};
use crate::worker;

/// The Fail2Ban action file, shipped in the binary so `f2b-notify action` needs no files.
pub const ACTION_FILE: &str = include_str!("../../config/action.d/f2b-notify.conf");

/// An upper bound on one delivery in the action path, far below Fail2Ban's 60 s action
/// timeout, in case a sink's own timeout misbehaves.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);
/// The bound when the spool cannot be written and the action delivers itself instead.
const FALLBACK_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let sources = Sources::from_args(&cli.config);
    match cli.command {
        Command::Action => {
            print!("{ACTION_FILE}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(&sources),
        Command::Notify(args) => notify(&sources, &cli.config, args),
        Command::Test(args) => test(&sources, args),
        Command::Deliver(args) => deliver_command(&sources, args),
        Command::Queue(args) => queue(&sources, args),
    }
}

fn load(sources: &Sources) -> anyhow::Result<Loaded> {
    config::load(sources).map_err(|e| anyhow!(e))
}

fn host_name(loaded: &Loaded) -> String {
    if let Some(h) = loaded.config.host.as_deref().filter(|h| !h.is_empty()) {
        return h.to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Turns `notify`'s arguments into an event. Empty values (a tag Fail2Ban had nothing for)
/// count as not given; malformed numbers are an error naming the argument.
pub fn event_from_args(args: NotifyArgs, host: String) -> anyhow::Result<Event> {
    let kind: EventKind = args.event.into();
    let jail = args.jail.trim().to_owned();
    if jail.is_empty() {
        bail!("--jail must not be empty");
    }
    if jail.chars().any(char::is_control) {
        bail!("--jail must not contain control characters");
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let mut event = if kind.has_target() {
        let Some(id) = nonempty(args.ip) else { bail!("`notify {kind}` needs --ip ADDR (a non-empty address or id)") };
        Event::target_event(kind, jail, id.trim(), host)
    } else {
        Event::jail_event(kind, jail, host)
    };
    if let Some(v) = nonempty(args.failures) {
        event.failures = Some(v.trim().parse().map_err(|_| anyhow!("--failures `{v}` is not a whole number"))?);
    }
    if let Some(v) = nonempty(args.time) {
        let t: f64 = v.trim().parse().map_err(|_| anyhow!("--time `{v}` is not a number of seconds since the epoch"))?;
        if !t.is_finite() || t < 0.0 {
            bail!("--time `{v}` is not a number of seconds since the epoch");
        }
        event.time = Some(t);
    }
    if let Some(v) = nonempty(args.bantime) {
        event.bantime = Some(v.trim().parse().map_err(|_| anyhow!("--bantime `{v}` is not a whole number of seconds"))?);
    }
    if let Some(v) = nonempty(args.restored) {
        event.restored = match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => bail!("--restored `{v}` must be 0 or 1"),
        };
    }
    event.user = nonempty(args.user);
    event.matches = nonempty(args.matches);
    Ok(event)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
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

fn notify(sources: &Sources, configs: &[std::path::PathBuf], args: NotifyArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let event = event_from_args(args, host_name(&loaded))?;
    let table = Table::new(&loaded.config.jails);
    // Let `f2b-notify-enqueue` take this jail's next events itself.
    crate::plan::record(configs, sources, &loaded, &table, &event, worker_args(sources));
    let names = match table.decide(&event) {
        Decision::Send(names) => names,
        Decision::NoRoute => {
            tracing::warn!("jail `{}` matches no route in the config: {} event dropped", event.jail, event.kind);
            return Ok(ExitCode::SUCCESS);
        }
        Decision::Filtered | Decision::Restored => return Ok(ExitCode::SUCCESS),
    };
    let names = names.to_vec();
    if loaded.config.delivery.mode == Mode::Direct {
        deliver_and_report(&loaded, &names, &event, DELIVERY_DEADLINE)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Queue mode: stdout and file sinks are written here (as cheap as spooling, and stdout
    // exists only here); everything that needs the network goes through the spool.
    let (inline, queued): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| loaded.config.sinks.get(n).is_some_and(|c| c.delivered_inline()));
    if !inline.is_empty() {
        deliver_and_report(&loaded, &inline, &event, DELIVERY_DEADLINE)?;
    }
    if queued.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let spool = Spool::new(&loaded.config.delivery.spool);
    match spool.enqueue(&Entry::new(event.clone(), queued.clone())) {
        Ok(_) => {
            if let Err(e) = ensure_worker(&spool, sources) {
                // The event is safe in the spool; the next event or `f2b-notify deliver`
                // picks it up.
                tracing::error!("event spooled, but the delivery worker could not be started: {e:#}");
            }
        }
        Err(e) => {
            eprintln!(
                "f2b-notify: cannot write to the spool {}: {e}; delivering directly instead",
                spool.root().display()
            );
            deliver_and_report(&loaded, &queued, &event, FALLBACK_DEADLINE)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Delivers `event` to `names` now; failures are logged, not fatal: a non-zero exit would
/// make Fail2Ban run the action again.
fn deliver_and_report(loaded: &Loaded, names: &[String], event: &Event, deadline: Duration) -> anyhow::Result<()> {
    let sinks = build_sinks(loaded, names)?;
    let results = runtime()?.block_on(deliver(&sinks, event, deadline));
    for (sink, result) in sinks.iter().zip(results) {
        if let Err(e) = result {
            let class = if e.is_transient() { "transient" } else { "permanent" };
            tracing::error!("sink `{}`: {} not delivered ({class}): {e}", sink.name(), event.kind);
        }
    }
    Ok(())
}

/// Starts a delivery worker unless one holds the spool. The worker is detached: its own
/// session (it calls setsid), no inherited stdin/stdout (Fail2Ban reads the action's pipes
/// until every holder closes them), stderr to the spool's worker.log.
fn ensure_worker(spool: &Spool, sources: &Sources) -> anyhow::Result<()> {
    let Some(lock) = spool.try_lock()? else { return Ok(()) };
    drop(lock);
    let exe = std::env::current_exe().context("cannot find the f2b-notify binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(spool.log_path())
        .with_context(|| format!("cannot open {}", spool.log_path().display()))?;
    if log.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false) {
        let _ = log.set_len(0);
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.args(worker_args(sources))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .current_dir("/");
    cmd.spawn().context("cannot start `f2b-notify deliver`")?;
    Ok(())
}

/// The arguments that start the worker for these config files. It runs in `/`: it gets the
/// files by absolute path.
fn worker_args(sources: &Sources) -> Vec<std::ffi::OsString> {
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

fn deliver_command(sources: &Sources, args: DeliverArgs) -> anyhow::Result<ExitCode> {
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

fn queue(sources: &Sources, args: QueueArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let spool = Spool::new(&loaded.config.delivery.spool);
    if !spool.root().exists() {
        println!("spool {}: empty (nothing was ever queued)", spool.root().display());
        return Ok(ExitCode::SUCCESS);
    }
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

fn check(sources: &Sources) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let mut out = String::new();
    out.push_str(&format!("config: {}\n", config::describe_files(&loaded.files)));
    out.push_str(&format!("host: {}\n", host_name(&loaded)));
    let delivery = &loaded.config.delivery;
    match delivery.mode {
        Mode::Queue => out.push_str(&format!(
            "delivery: queue (spool {}; stdout and file sinks are written by the action itself)\n",
            delivery.spool.display()
        )),
        Mode::Direct => out.push_str("delivery: direct (inside the action; Fail2Ban waits for every sink)\n"),
    }
    let mut warnings = Vec::new();
    let front = std::env::current_exe().ok().map(|e| e.with_file_name("f2b-notify-enqueue"));
    match front.filter(|f| f.is_file()) {
        Some(f) => out.push_str(&format!("action front end: {} (spools queued events without starting f2b-notify)\n", f.display())),
        None if delivery.mode == Mode::Queue => warnings.push(
            "f2b-notify-enqueue is not installed beside f2b-notify: the action starts f2b-notify for every event, which holds Fail2Ban's action lock about twice as long".to_owned(),
        ),
        None => {}
    }
    out.push_str("sinks:\n");
    if loaded.config.sinks.is_empty() {
        out.push_str("  (none)\n");
    }
    let width = loaded.config.sinks.keys().map(String::len).max().unwrap_or(0);
    for (name, cfg) in &loaded.config.sinks {
        let sink = registry::build(name, cfg)?;
        out.push_str(&format!("  {name:width$}  {}\n", sink.kind()));
        warnings.extend(sink.check().into_iter().map(|w| format!("sink `{name}`: {w}")));
    }
    let table = Table::new(&loaded.config.jails);
    out.push_str("routes (first match wins):\n");
    if table.routes().is_empty() {
        out.push_str("  (none: every event is dropped)\n");
        warnings.push("no [jails.…] route: every event is dropped".to_owned());
    }
    let width = table.routes().iter().map(|r| r.pattern.len()).max().unwrap_or(0);
    for route in table.routes() {
        let events: Vec<&str> = route.config.events.iter().map(|e| e.as_str()).collect();
        out.push_str(&format!(
            "  {:width$}  -> {}  [events: {}; restored bans: {}]\n",
            route.pattern,
            if route.config.sinks.is_empty() { "(no sinks)".to_owned() } else { route.config.sinks.join(", ") },
            events.join(", "),
            if route.config.restored { "announced" } else { "quiet" },
        ));
    }
    if !table.routes().iter().any(|r| r.pattern == "*") && !table.routes().is_empty() {
        warnings.push("no `[jails.\"*\"]` fallback: events of jails that match no route are dropped".to_owned());
    }
    if !warnings.is_empty() {
        out.push_str("warnings:\n");
        for w in &warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn test(sources: &Sources, args: TestArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let table = Table::new(&loaded.config.jails);
    let route = table
        .find(&args.jail)
        .ok_or_else(|| anyhow!("jail `{}` matches no route in the config", args.jail))?;
    let kind: EventKind = args.event.into();
    let host = host_name(&loaded);
    let mut event = if kind.has_target() {
        Event::target_event(kind, &args.jail, &args.ip, host)
    } else {
        Event::jail_event(kind, &args.jail, host)
    };
    if kind == EventKind::Ban {
        event.failures = Some(3);
        event.bantime = Some(600);
    }
    event.time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64());
    event.matches = Some("f2b-notify test: sample event, not a real attack".to_owned());
    println!("jail `{}` takes route `{}`; sending a sample {kind} event", args.jail, route.pattern);
    if !route.config.events.contains(&kind) {
        println!("note: this route does not send {kind} events from Fail2Ban; sending the sample anyway");
    }
    let sinks = build_sinks(&loaded, &route.config.sinks)?;
    let results = runtime()?.block_on(deliver(&sinks, &event, DELIVERY_DEADLINE));
    let mut failed = false;
    for (sink, result) in sinks.iter().zip(results) {
        match result {
            Ok(()) => println!("sink `{}` ({}): ok", sink.name(), sink.kind()),
            Err(e) => {
                failed = true;
                println!("sink `{}` ({}): FAILED: {}", sink.name(), sink.kind(), explain(&e));
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The error and what it means for the operator.
fn explain(e: &SinkError) -> String {
    match e {
        SinkError::Transient { message, retry_after: Some(wait) } => {
            format!("{message} (temporary: the service asked to wait {} s before trying again)", wait.as_secs())
        }
        SinkError::Transient { message, retry_after: None } => {
            format!("{message} (temporary: a later try may succeed)")
        }
        SinkError::Permanent { message } => format!("{message} (permanent: fix the config or the remote side)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> anyhow::Result<Event> {
        let cli = Cli::try_parse_from(std::iter::once("f2b-notify").chain(args.iter().copied()))?;
        match cli.command {
            Command::Notify(a) => event_from_args(a, "h".into()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hyphen_values_are_data() {
        let e = parse(&["notify", "ban", "--jail", "sshd", "--ip", "192.0.2.1", "--user", "--help", "--matches", "-x --y"]).unwrap();
        assert_eq!(e.user.as_deref(), Some("--help"));
        assert_eq!(e.matches.as_deref(), Some("-x --y"));
        let e = parse(&["notify", "ban", "--jail=sshd", "--ip=192.0.2.1", "--bantime", "-1", "--user=-v"]).unwrap();
        assert_eq!(e.bantime, Some(-1));
        assert_eq!(e.user.as_deref(), Some("-v"));
    }

    #[test]
    fn numbers_and_flags() {
        let e = parse(&["notify", "ban", "--jail=j", "--ip= 192.0.2.1 ", "--time=1700000000.75", "--restored=1", "--failures=7"]).unwrap();
        assert_eq!(e.id.as_deref(), Some("192.0.2.1"));
        assert!(e.ip.is_some());
        assert_eq!(e.time, Some(1_700_000_000.75));
        assert!(e.restored);
        assert_eq!(e.failures, Some(7));
        // Restored bans come with an integer time string.
        assert_eq!(parse(&["notify", "ban", "--jail=j", "--ip=x", "--time=1700000000"]).unwrap().time, Some(1_700_000_000.0));
        for bad in ["--time=nan", "--time=-5", "--time=inf", "--failures=-1", "--restored=maybe"] {
            assert!(parse(&["notify", "ban", "--jail=j", "--ip=x", bad]).is_err(), "{bad}");
        }
        // Start and stop need no address and ignore none they get.
        let e = parse(&["notify", "start", "--jail=j"]).unwrap();
        assert!(e.id.is_none());
        assert!(parse(&["notify", "start", "--jail=a\nb"]).is_err());
    }
}
