//! `f2b-notify notify`: what Fail2Ban's action runs for every event. In queue mode it does no
//! network I/O: stdout and file sinks are written here, everything else is spooled for the
//! worker, which is started if none runs. Whatever a sink does, the exit is 0 (Fail2Ban runs
//! a failed action again, which would send everything twice).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use f2b_notify_core::{Event, Renderer};
use f2b_notify_fastpath::args::{self, OPTIONS};

use super::{build_sinks, deliver, ensure_worker, host_name, runtime, worker_args, DELIVERY_DEADLINE};
use crate::cli::NotifyArgs;
use crate::config::{self, Loaded, Mode, Sources};
use crate::route::{Decision, Table};
use crate::spool::{Entry, Spool};

/// Turns `notify`'s arguments into an event, by the action contract's rules (the front end
/// applies the very same `check`): empty values count as not given; a missing jail or id is
/// an error naming the argument; a malformed number or flag is set aside, and said in the
/// returned lines, so that the event still goes out.
pub fn event_from_args(a: NotifyArgs, host: String) -> anyhow::Result<(Event, Vec<String>)> {
    let values: [Option<&str>; OPTIONS.len()] = [
        Some(a.jail.as_str()),
        a.ip.as_deref(),
        a.failures.as_deref(),
        a.time.as_deref(),
        a.bantime.as_deref(),
        a.restored.as_deref(),
        a.user.as_deref(),
        a.matches.as_deref(),
        a.bancount.as_deref(),
    ];
    let (notify, set_aside) = args::check(a.event.into(), &values).map_err(|e| anyhow!(e.to_string()))?;
    let said = set_aside.iter().map(|e| format!("{e}: the event is sent without it")).collect();
    Ok((Event::from_notify(notify, host), said))
}

/// Runs `notify` (`configs`: the `--config` values as given, for the fast path's plan).
pub fn run(sources: &Sources, configs: &[PathBuf], args: NotifyArgs) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(sources) {
        Ok(loaded) => loaded,
        Err(e) => return spool_unrouted(sources, args, e),
    };
    let (event, set_aside) = event_from_args(args, host_name(&loaded))?;
    say_set_aside(set_aside);
    let table = Table::new(&loaded.config.jails);
    // The spool this jail's route needs is claimed for this set of config files first (if it
    // cannot be, the enqueue below says why): the fast path may only be told to write into a
    // spool that is this set's for sure.
    let spooled = |n: &String| loaded.config.sinks.get(n).is_some_and(|c| !c.delivered_inline());
    let claimed = (loaded.config.delivery.mode == Mode::Queue
        && table.find(&event.jail).is_some_and(|r| r.config.sinks.iter().any(spooled)))
    .then(|| crate::sets::claim(&loaded.config.delivery.spool, sources));
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
    if loaded.files.is_empty() && names.iter().any(|n| loaded.config.sinks.get(n).is_some_and(|c| c.writes_to_stdout()))
    {
        no_config_file(sources, &event);
    }
    if loaded.config.delivery.mode == Mode::Direct {
        deliver_and_report(&loaded, &names, &event, DELIVERY_DEADLINE)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Queue mode: stdout and file sinks are written here (as cheap as spooling, and stdout
    // exists only here); everything that needs the network goes through the spool.
    let (inline, queued): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| loaded.config.sinks.get(n).is_some_and(|c| c.delivered_inline()));
    if !inline.is_empty() {
        deliver_and_report(&loaded, &inline, &event, DELIVERY_DEADLINE)?;
    }
    if queued.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let spool = Spool::new(&loaded.config.delivery.spool);
    // A spool without an owner (new, or made by an older version) is claimed for this set of
    // config files (see crates/router/sets.rs), above unless the route needed no spool then.
    let claimed = claimed.unwrap_or_else(|| crate::sets::claim(spool.root(), sources));
    match claimed.and_then(|()| spool.enqueue(&Entry::new(event.clone(), queued.clone()))) {
        Ok(_) => {
            if let Err(e) = ensure_worker(&spool, sources) {
                // The event is safe in the spool; the next event or `f2b-notify deliver`
                // picks it up.
                tracing::error!("event spooled, but the delivery worker could not be started: {e:#}");
            }
        }
        Err(e) => {
            // What waits in the spool must still go out (and make room): a worker that died
            // on the full disk is started again, whatever became of this event.
            let _ = ensure_worker(&spool, sources);
            not_kept(&spool, &event, &queued, &e)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// No config file: the built-in default writes every event to stdout, and when stdout is not
/// a terminal (Fail2Ban runs the action with a pipe and discards what comes out) nobody would
/// ever see the event, nor learn why. So it goes to the system log too, with where the config
/// was looked for. Cheap enough for the action: one `isatty` and, without a terminal, one
/// datagram, which waits at most a second for a system log that is not reading. An
/// administrator trying `notify` by hand sees the line on the terminal and nothing goes to
/// the log.
fn no_config_file(sources: &Sources, event: &Event) {
    if rustix::termios::isatty(std::io::stdout()) {
        return;
    }
    let looked_for = match sources {
        Sources::Default(dir) => {
            format!("{} and {}/*.toml", dir.join("config.toml").display(), dir.join("conf.d").display())
        }
        Sources::Explicit(_) => format!("{} names no file", config::CONFIG_ENV),
    };
    let text = Renderer::default().render_plain(event).unwrap_or_else(|_| describe(event));
    let line = format!(
        "no config file found (looked for {looked_for}): the built-in default writes events to stdout, which nobody reads here: {text}"
    );
    if !crate::syslog::warning(&line) {
        tracing::debug!("the system log ({}) did not take: {line}", crate::syslog::socket().display());
    }
}

/// One line on stderr, which Fail2Ban logs; a stderr that cannot be written is no reason to
/// stop (`eprintln!` would panic, and panics abort).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "f2b-notify: {line}");
}

/// One line each on stderr, which Fail2Ban logs; the exit stays 0 (a re-run would not fix
/// the value and would send the event twice).
fn say_set_aside(lines: Vec<String>) {
    for line in lines {
        say(&line);
    }
}

/// The config does not load (a typo, a bad value, an unreadable file): the event is not
/// dropped for it. It is spooled unrouted, in the spool that config would use as far as can
/// be told, and the worker routes it once the config loads; the error is said on stderr and
/// in the system log, and the exit is 0 (running the action again would not fix the config).
fn spool_unrouted(sources: &Sources, args: NotifyArgs, error: String) -> anyhow::Result<ExitCode> {
    let host = config::fallback_host(sources).unwrap_or_else(super::kernel_host_name);
    let (event, set_aside) = event_from_args(args, host)?;
    say_set_aside(set_aside);
    let spool = Spool::new(config::fallback_spool(sources));
    let what = describe(&event);
    let line =
        format!("the config does not load: {error}; the {what} waits in {} until it does", spool.root().display());
    let claimed = crate::sets::claim(spool.root(), sources);
    match claimed.and_then(|()| spool.enqueue(&Entry::unrouted(event.clone(), error))) {
        Ok(_) => {
            say(&line);
            crate::syslog::error(&line);
            if let Err(e) = ensure_worker(&spool, sources) {
                tracing::error!("event spooled, but the delivery worker could not be started: {e:#}");
            }
        }
        Err(e) => not_kept(&spool, &event, &["(no route: the config does not load)".to_owned()], &e)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// "ban of 192.0.2.1 in jail sshd", "start of jail sshd".
fn describe(event: &Event) -> String {
    match &event.id {
        Some(id) => format!("{} of {id} in jail {}", event.kind, event.jail),
        None => format!("{} of jail {}", event.kind, event.jail),
    }
}

/// The spool could not take the event (disk full, read-only, refused as untrusted). Nothing is
/// sent from here: under Fail2Ban's lock that would hold up banning for every sink's timeout
/// and send a storm unpaced. The event is named with the reason in the system log (and on
/// stderr), and the exit is 0 so that Fail2Ban does not run the action again; if even the
/// system log cannot take it, the exit is 2 and Fail2Ban logs the failure.
fn not_kept(spool: &Spool, event: &Event, sinks: &[String], e: &std::io::Error) -> anyhow::Result<()> {
    let what = describe(event);
    let line = format!(
        "could not spool the {what} for {}: {}: {e}; it is not delivered",
        sinks.join(", "),
        spool.root().display()
    );
    // The system log first: stderr may be unwritable too, and the event must be named.
    let logged = crate::syslog::error(&line);
    say(&line);
    if logged {
        Ok(())
    } else {
        anyhow::bail!(
            "the system log ({}) did not take it either (within {} s): the {what} is not delivered",
            crate::syslog::socket().display(),
            crate::syslog::WAIT.as_secs()
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> anyhow::Result<Event> {
        let cli = Cli::try_parse_from(std::iter::once("f2b-notify").chain(args.iter().copied()))?;
        match cli.command {
            Command::Notify(a) => event_from_args(a, "h".into()).map(|(e, _)| e),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hyphen_values_are_data() {
        let e =
            parse(&["notify", "ban", "--jail", "sshd", "--ip", "192.0.2.1", "--user", "--help", "--matches", "-x --y"])
                .unwrap();
        assert_eq!(e.user.as_deref(), Some("--help"));
        assert_eq!(e.matches.as_deref(), Some("-x --y"));
        let e = parse(&["notify", "ban", "--jail=sshd", "--ip=192.0.2.1", "--bantime", "-1", "--user=-v"]).unwrap();
        assert_eq!(e.bantime, Some(-1));
        assert_eq!(e.user.as_deref(), Some("-v"));
    }

    #[test]
    fn numbers_and_flags() {
        let e = parse(&[
            "notify",
            "ban",
            "--jail=j",
            "--ip= 192.0.2.1 ",
            "--time=1700000000.75",
            "--restored=1",
            "--failures=7",
            "--bancount",
            "2",
        ])
        .unwrap();
        assert_eq!(e.id.as_deref(), Some("192.0.2.1"));
        assert!(e.ip.is_some());
        assert_eq!(e.time, Some(1_700_000_000.75));
        assert!(e.restored);
        assert_eq!(e.failures, Some(7));
        assert_eq!(e.bancount, Some(2));
        // Restored bans come with an integer time string.
        assert_eq!(
            parse(&["notify", "ban", "--jail=j", "--ip=x", "--time=1700000000"]).unwrap().time,
            Some(1_700_000_000.0)
        );
        // A malformed value is set aside, not the event.
        for bad in
            ["--time=nan", "--time=-5", "--time=inf", "--failures=-1", "--restored=maybe", "--bancount=<bancount>"]
        {
            let e = parse(&["notify", "ban", "--jail=j", "--ip=x", bad]).unwrap();
            assert_eq!(
                (e.time, e.failures, e.restored, e.bancount, e.id.as_deref()),
                (None, None, false, None, Some("x")),
                "{bad}"
            );
        }
        assert_eq!(parse(&["notify", "ban", "--jail=j", "--ip=x", "--bancount= "]).unwrap().bancount, None);
        // Start and stop need no address and ignore none they get.
        let e = parse(&["notify", "start", "--jail=j"]).unwrap();
        assert!(e.id.is_none());
        assert!(parse(&["notify", "start", "--jail=a\nb"]).is_err());
    }
}
