//! f2b-notify: the binary Fail2Ban runs as an action. It turns the action's arguments into an
//! event, finds the jail's route in the config and hands the event to that route's sinks.
//!
//! Exit codes: 0 when the event was delivered or deliberately dropped (a sink failure is
//! reported on stderr but still exits 0, because a non-zero exit makes Fail2Ban run the action
//! again and duplicate what already went out); 1 when `test` saw a sink fail; 2 for bad
//! arguments or a bad config, with one line on stderr that Fail2Ban logs.

mod cli;
mod commands;
mod config;
mod jailconf;
mod os;
mod plan;
mod reference;
mod registry;
mod route;
mod sets;
mod spool;
mod suggest;
mod syslog;
mod trusted;
mod worker;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    // The worker's log is a file read later: each line says when. A command's lines are read
    // as they come (or by Fail2Ban, which stamps them itself).
    init_logging(matches!(cli.command, cli::Command::Deliver(_)));
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: Fail2Ban logs stderr, and a multi-line error is hard to read there.
            let text = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "f2b-notify: {text}");
            ExitCode::from(2)
        }
    }
}

/// Help and version go out as clap prints them; a usage error becomes one line.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    // clap's message sits above the usage block; some messages continue on the next lines
    // ("the following required arguments were not provided:\n  --jail <JAIL>").
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let first = message.join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    let _ = writeln!(std::io::stderr(), "f2b-notify: {first} (see `f2b-notify --help`)");
    ExitCode::from(2)
}

/// stderr for the log, ignoring any failure to write: what cannot be logged is dropped.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Warnings and errors to stderr, with the time (UTC) when `timed`; `F2B_NOTIFY_LOG=debug`
/// (or info, trace) for more.
fn init_logging(timed: bool) {
    let level = std::env::var(f2b_notify_fastpath::layout::LOG_ENV)
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::WARN);
    // A log line that cannot be written (the worker's log is on the spool's disk, which may
    // be full) is lost, never a panic: with `panic = "abort"` tracing's own report of the
    // failure, an `eprintln!` to the same full file, would kill the worker (and it did).
    let fmt = tracing_subscriber::fmt()
        .with_writer(|| QuietStderr)
        .log_internal_errors(false)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    if timed {
        fmt.with_timer(tracing_subscriber::fmt::time::SystemTime).init();
    } else {
        fmt.without_time().init();
    }
}
