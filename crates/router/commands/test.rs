//! `f2b-notify test`: sends a sample event through a jail's route now, bypassing the spool,
//! and prints each sink's result with what it means; exit 1 if any sink failed. With
//! `--dry-run` it sends nothing and prints what each sink would send. With `[enrich]`, the
//! sample address is looked up first, as the worker would, and what was found is printed.

use std::process::ExitCode;

use anyhow::anyhow;
use f2b_notify_core::{Event, EventKind, SinkError};

use super::{build_sinks, deliver, host_name, load, runtime, DELIVERY_DEADLINE};
use crate::cli::TestArgs;
use crate::config::Sources;
use crate::route::Table;

/// Runs `test`.
pub fn run(sources: &Sources, args: TestArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(sources)?;
    let table = Table::new(&loaded.config.jails);
    let route = table.find(&args.jail).ok_or_else(|| anyhow!("jail `{}` matches no route in the config", args.jail))?;
    let kind: EventKind = args.event;
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
    event.time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64());
    event.matches = Some("f2b-notify test: sample event, not a real attack".to_owned());
    // `[enrich]` as the worker does it, so that `test --ip ADDR` shows what the lookups find.
    if loaded.config.enrich.is_enabled() && event.ip.is_some() {
        let (vetted, refused) = crate::trusted::vet_enrich(loaded.config.enrich.clone());
        let (enricher, problems) = f2b_notify_enrich::Enricher::lenient(&vetted);
        for p in refused.into_iter().chain(problems.iter().map(ToString::to_string)) {
            println!("enrich: {p}");
        }
        if let Some(enricher) = enricher {
            runtime()?.block_on(enricher.enrich(std::slice::from_mut(&mut event)));
            let found = event.context.describe();
            match found.is_empty() {
                true => println!(
                    "enrich: nothing found for {} (within {})",
                    args.ip,
                    humantime::format_duration(enricher.config().budget)
                ),
                false => println!("enrich: {found}"),
            }
        }
    }
    if args.dry_run {
        println!(
            "jail `{}` takes route `{}`; what a sample {kind} event would send (nothing is sent):",
            args.jail, route.pattern
        );
    } else {
        println!("jail `{}` takes route `{}`; sending a sample {kind} event", args.jail, route.pattern);
    }
    if !route.config.events.contains(&kind) {
        println!("note: this route does not send {kind} events from Fail2Ban; sending the sample anyway");
    }
    let sinks = build_sinks(&loaded, &route.config.sinks)?;
    if args.dry_run {
        let mut failed = false;
        for sink in &sinks {
            match sink.preview(&event) {
                Ok(text) => println!("\nsink `{}` ({}): {text}", sink.name(), sink.kind()),
                Err(e) => {
                    failed = true;
                    println!("\nsink `{}` ({}): FAILED: {}", sink.name(), sink.kind(), explain(&e));
                }
            }
        }
        return Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
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

/// The error and what it means for the operator (also `report`'s, for `--to`).
pub(super) fn explain(e: &SinkError) -> String {
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
