//! `f2b-notify check`: validates the config and prints what it means: the files read, the
//! host name, the delivery mode, the sinks and the routing table, then any warnings, then any
//! problems (a spool or run directory that would be refused); exit 2 when there is one.

use std::process::ExitCode;

use std::os::unix::ffi::OsStrExt;

use f2b_notify_fastpath::trust;

use super::{action, host_name, load};
use crate::config::{self, Mode, Sources};
use crate::os::StdOs;
use crate::registry;
use crate::route::Table;
use crate::spool::Spool;

/// Runs `check`.
pub fn run(sources: &Sources) -> anyhow::Result<ExitCode> {
    let (out, code) = report(sources)?;
    print!("{out}");
    Ok(code)
}

/// What `check` prints, and its exit code (2 when there is a problem); an error when the
/// config does not load or a sink cannot be built.
pub fn report(sources: &Sources) -> anyhow::Result<(String, ExitCode)> {
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
    // Directories root writes into for every ban: a problem here is an error, not a warning.
    let mut problems = Vec::new();
    if delivery.mode == Mode::Queue {
        if let Err(u) = Spool::new(&delivery.spool).verify() {
            problems.push(format!("the spool: refusing to use {u}"));
        }
        let run_dir = crate::plan::run_dir();
        let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
        let bytes = run_dir.as_os_str().as_bytes();
        if let Err(u) = trust::ancestors(&StdOs, bytes).and_then(|()| trust::dir(&StdOs, bytes)) {
            problems.push(format!("the run directory (the action's fast path is off): refusing to use {u}"));
        }
    }
    let front = std::env::current_exe().ok().map(|e| e.with_file_name(action::FRONT_END));
    match front.filter(|f| f.is_file()) {
        Some(f) => out.push_str(&format!(
            "action front end: {} (spools queued events without starting f2b-notify)\n",
            f.display()
        )),
        None if delivery.mode == Mode::Queue => warnings.push(action::NO_FRONT_END.to_owned()),
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
    if !problems.is_empty() {
        out.push_str("problems:\n");
        for p in &problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    Ok((out, if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }))
}
