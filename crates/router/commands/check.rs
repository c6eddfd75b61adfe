//! `f2b-notify check`: every problem at once, one line each on stderr naming the file (or
//! environment variable), the key and the value, exit 2 when there is one: the config's (see
//! `config::check`), each sink's own (addresses, URLs, secret files, templates: the sink is
//! built), a spool or run directory that would be refused or cannot be written, and a Fail2Ban
//! action file whose program is missing. When the config has none of its own, stdout says
//! what it means: the files read, the host name, the delivery mode and spool, the sinks and
//! the routing table, then any warnings. `setup` shows the same report.

mod action_file;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use f2b_notify_core::Sink;
use f2b_notify_fastpath::trust;

use super::{action, host_name};
use crate::cli::CheckArgs;
use crate::config::{self, Mode, Sources};
use crate::os::StdOs;
use crate::registry;
use crate::route::Table;
use crate::spool::Spool;

/// Runs `check`.
pub fn run(sources: &Sources, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = report(sources, &args.fail2ban_dir);
    print!("{}", report.summary);
    for p in &report.problems {
        eprintln!("f2b-notify: {p}");
    }
    Ok(report.code())
}

/// What `check` finds.
pub struct Report {
    /// What the config means, for stdout; empty when the config has problems of its own.
    pub summary: String,
    /// Every problem, one line each: the file (or environment variable), the key, the value.
    pub problems: Vec<String>,
}

impl Report {
    /// 2 when there is a problem.
    pub fn code(&self) -> ExitCode {
        if self.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    }
}

/// Checks the config of `sources`, the machine (spool, run directory) and the Fail2Ban action
/// file in `fail2ban_dir`.
pub fn report(sources: &Sources, fail2ban_dir: &Path) -> Report {
    let checked = config::check(sources);
    let mut problems = checked.problems.clone();
    let mut warnings = Vec::new();
    // Building a sink checks its own values. Only a sink read exactly as written is built:
    // one with a bad value in it would be built with the default instead.
    let mut sinks: BTreeMap<&str, Arc<dyn Sink>> = BTreeMap::new();
    for (name, cfg) in &checked.config.sinks {
        if !checked.is_sound(name) || !cfg.is_built() {
            continue;
        }
        match registry::build(name, cfg) {
            Ok(sink) => {
                sinks.insert(name, sink);
            }
            Err(e) => problems.push(checked.sink_problem(name, &format!("{e:#}"))),
        }
    }
    // `[enrich]`: a database missing, unreadable or of the wrong kind, a budget out of range.
    // A database others could have written is refused before it is read.
    let place = |key: &str| {
        let path: Vec<&str> = key.split('.').collect();
        checked.origin(&path).or_else(|| checked.origin(&["enrich"])).unwrap_or_else(|| "config".into())
    };
    let (vetted, refused) = crate::trusted::vet_enrich(checked.config.enrich.clone());
    for p in refused {
        let key = p.split('`').nth(1).unwrap_or("enrich").to_owned();
        problems.push(format!("{}: {p}", place(&key)));
    }
    for p in vetted.check() {
        problems.push(format!("{}: {p}", place(&p.key())));
    }
    let loaded = if problems.is_empty() {
        match config::load(sources) {
            Ok(loaded) => Some(loaded),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    } else {
        None
    };

    // What the machine must offer, judged by the config as far as it reads.
    let mut out = String::new();
    let delivery = loaded.as_ref().map_or(&checked.config.delivery, |l| &l.config.delivery);
    if delivery.mode == Mode::Queue && delivery.spool.is_absolute() {
        let spool = match &loaded {
            Some(_) => delivery.spool.clone(),
            None => crate::sets::resolve(&delivery.spool, sources),
        };
        let place = checked.origin(&["delivery", "spool"]).unwrap_or_else(|| "built-in default".to_owned());
        match Spool::new(&spool).verify() {
            Err(u) => problems.push(format!("{place}: key `delivery.spool`: refusing to use {u}")),
            Ok(()) => match writable(&spool) {
                Ok(line) => out.push_str(&format!("spool: {line}\n")),
                Err(why) => problems.push(format!("{place}: key `delivery.spool`: {why}")),
            },
        }
        let run_dir = crate::plan::run_dir();
        let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
        let bytes = run_dir.as_os_str().as_bytes();
        if let Err(u) = trust::ancestors(&StdOs, bytes).and_then(|()| trust::dir(&StdOs, bytes)) {
            problems.push(format!("the run directory (the action's fast path is off): refusing to use {u}"));
        }
    }
    let action = action_file::check(fail2ban_dir);
    out.extend(action.info.map(|line| format!("{line}\n")));
    warnings.extend(action.warnings);
    problems.extend(action.problems);

    let summary = match &loaded {
        Some(loaded) => summary(loaded, &sinks, &out, &mut warnings),
        None => String::new(),
    };
    Report { summary, problems }
}

/// What a config that has no problem of its own means, with `machine`'s lines (the spool, the
/// action file) and the warnings.
fn summary(
    loaded: &config::Loaded,
    sinks: &BTreeMap<&str, Arc<dyn Sink>>,
    machine: &str,
    warnings: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    out.push_str(&format!("config: {}\n", config::describe_files(&loaded.files)));
    out.push_str(&format!("host: {}\n", host_name(loaded)));
    let delivery = &loaded.config.delivery;
    match delivery.mode {
        Mode::Queue => out.push_str(&format!(
            "delivery: queue (spool {}; stdout and file sinks are written by the action itself)\n",
            delivery.spool.display()
        )),
        Mode::Direct => out.push_str("delivery: direct (inside the action; Fail2Ban waits for every sink)\n"),
    }
    out.push_str(machine);
    let front = std::env::current_exe().ok().map(|e| e.with_file_name(action::FRONT_END));
    match front.filter(|f| f.is_file()) {
        Some(f) => out.push_str(&format!(
            "action front end: {} (spools queued events without starting f2b-notify)\n",
            f.display()
        )),
        None if delivery.mode == Mode::Queue => warnings.push(action::NO_FRONT_END.to_owned()),
        None => {}
    }
    out.push_str(&format!("enrich: {}\n", describe_enrich(&loaded.config.enrich)));
    out.push_str("sinks:\n");
    if sinks.is_empty() {
        out.push_str("  (none)\n");
    }
    let width = sinks.keys().map(|n| n.len()).max().unwrap_or(0);
    for (name, sink) in sinks {
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
        for w in warnings.iter() {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out
}

/// What `[enrich]` adds, in a few words: `off`, or `reverse DNS (forward-confirmed, via
/// 127.0.0.1:53); country and city from FILE; network from FILE; within 1s per message`.
fn describe_enrich(c: &f2b_notify_enrich::Config) -> String {
    if !c.is_enabled() {
        return "off (no lookups: messages name the address only)".to_owned();
    }
    let mut parts = Vec::new();
    if c.dns {
        let confirm = if c.dns_confirm { "forward-confirmed" } else { "not confirmed" };
        let server = c.dns_server.map_or_else(|| "the system's resolvers".to_owned(), |s| s.to_string());
        parts.push(format!("reverse DNS ({confirm}, via {server})"));
    }
    // Paths on one line, like every line of `check`.
    let shown = |f: &std::path::Path| f.display().to_string().replace(['\n', '\r'], "?");
    if let Some(f) = &c.geoip {
        parts.push(format!("country and city from {}", shown(f)));
    }
    if let Some(f) = &c.asn {
        parts.push(format!("network from {}", shown(f)));
    }
    format!("{}; within {} per message, in the worker", parts.join("; "), humantime::format_duration(c.budget))
}

/// Whether this user can create entries in the spool, or, while it does not exist yet, create
/// it in the nearest directory above it that does: `access(W_OK|X_OK)`, which creates
/// nothing (root is refused too on a read-only file system). The line for stdout, or the
/// problem.
fn writable(spool: &Path) -> Result<String, String> {
    let mut dir = spool;
    while !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new("/"));
    }
    let uid = rustix::process::getuid().as_raw();
    let refused = match rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK) {
        Ok(()) if dir == spool => return Ok(format!("{} exists and is writable", spool.display())),
        Ok(()) => {
            return Ok(format!(
                "{} is not there yet; {} is writable, so the first event creates it",
                spool.display(),
                dir.display()
            ))
        }
        Err(e) => std::io::Error::from(e),
    };
    // Fail2Ban's actions run as root, as a rule: as another user, say that this is about them.
    let who = if uid == 0 { String::new() } else { format!(" by uid {uid} (the actions run as Fail2Ban's user)") };
    Err(if dir == spool {
        format!("the spool {} cannot be written{who}: {refused}", spool.display())
    } else {
        format!(
            "the spool {} is not there yet and {}, where it would be created, cannot be written{who}: {refused}",
            spool.display(),
            dir.display()
        )
    })
}
