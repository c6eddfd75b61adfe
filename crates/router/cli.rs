//! The command line: `notify`, `check`, `test`, `action`, `deliver`, `queue`, `setup`,
//! `report` (and the hidden `generate`).
//!
//! Values that Fail2Ban passes come from log lines: a user name may be `--help` or `-x`, so
//! every value argument accepts a leading hyphen and is taken as data.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use f2b_notify_core::EventKind;
use f2b_notify_fastpath::Kind;

/// Routes Fail2Ban's jail start/stop and ban/unban events to Slack, Discord, Telegram, Teams,
/// Matrix, ntfy, Gotify, Pushover, Alertmanager, any webhook, email, the system log and stdout.
#[derive(Debug, Parser)]
#[command(name = "f2b-notify", version = crate::registry::version(), about, max_term_width = 100)]
pub struct Cli {
    /// Config file to read; repeat to merge several, later ones win. Default:
    /// /etc/f2b-notify/config.toml then /etc/f2b-notify/conf.d/*.toml. F2B_NOTIFY_CONFIG
    /// (paths separated by `:`) does the same.
    #[arg(long = "config", short = 'c', value_name = "FILE", global = true)]
    pub config: Vec<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report one Fail2Ban event (what the action file runs).
    Notify(NotifyArgs),
    /// Validate the config, the spool and the Fail2Ban action file; print the sinks and the
    /// routing table, and every problem found (exit 2 if any).
    Check(CheckArgs),
    /// Deliver a sample event through a jail's route now and print each sink's result;
    /// exit 1 if any failed.
    Test(TestArgs),
    /// Print the Fail2Ban action file (config/action.d/f2b-notify.conf) with `bin` set to this
    /// binary's absolute path.
    Action,
    /// Deliver what is in the spool (started by `notify` in queue mode; exits when idle).
    Deliver(DeliverArgs),
    /// Show pending and dead events; `retry` or `purge` the dead ones.
    Queue(QueueArgs),
    /// Wire f2b-notify into Fail2Ban in one command (`--undo` takes it out again).
    ///
    /// Writes the action file (action.d/f2b-notify.conf, `bin` = this binary), appends the
    /// action to the chosen jails' own actions (jail.d/f2b-notify.local), creates a starter
    /// config (mode 0600) if there is none, then runs `fail2ban-client -t` and `check`. Prints
    /// each file it writes, and records them in f2b-notify-setup.json there for `--undo`.
    Setup(SetupArgs),
    /// Summarise what Fail2Ban did, from its own database (read-only): bans per jail, new and
    /// repeat addresses, the top addresses, the change against the period before.
    ///
    /// Prints a table (or JSON), or sends it now through one sink of the config with --to
    /// (exit 1 if that fails). The database is --db, else the `dbfile` of Fail2Ban's config,
    /// else /var/lib/fail2ban/fail2ban.sqlite3.
    Report(ReportArgs),
    /// Write the man pages, the shell completions or the configuration reference (for
    /// packagers; README's key tables come from it).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// `generate`'s arguments.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    pub what: GenerateWhat,
    /// The directory to write into; for `readme`, the README to update (default README.md).
    pub path: Option<PathBuf>,
}

/// What `generate` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenerateWhat {
    /// `man` and `config-man` into DIR/man, `completions` into DIR/completions.
    All,
    /// f2b-notify(1) and a page per subcommand.
    Man,
    /// f2b-notify.toml(5), every configuration key.
    ConfigMan,
    /// bash (`f2b-notify`), zsh (`_f2b-notify`) and fish (`f2b-notify.fish`) completions.
    Completions,
    /// The configuration's key tables, as README.md has them, on stdout.
    ConfigMd,
    /// Rewrite the key tables between README's `<!-- keys:… -->` markers.
    Readme,
}

/// `report`'s arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The period: the last DURATION until now (`1h`, `24h`, `7d`); the change is against the
    /// DURATION before it.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = since)]
    pub since: Since,
    /// Fail2Ban's database (default: the `dbfile` of Fail2Ban's config).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Fail2Ban's configuration directory: `dbfile` and `dbpurgeage` are read from its
    /// fail2ban.conf, fail2ban.d/*.conf, fail2ban.local and fail2ban.d/*.local.
    #[arg(long, value_name = "DIR", default_value = "/etc/fail2ban")]
    pub fail2ban_dir: PathBuf,
    /// Send the report now through this sink of the config (`[sinks.NAME]`), as a plain
    /// message, instead of printing it; exit 1 if the sink fails.
    #[arg(long, value_name = "SINK")]
    pub to: Option<String>,
    /// text (a readable table) or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

/// A report's period: its length and the words it was given in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// Whole seconds, at least one.
    pub secs: u64,
    /// As given (`24h`), for the report's lines.
    pub text: String,
}

/// `--since`: a length humantime reads (`90m`, `24h`, `7d`, `1h 30m`), from a second to a
/// hundred years.
fn since(text: &str) -> Result<Since, String> {
    let d =
        humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a length like 24h or 7d: {e}"))?;
    if d.as_secs() == 0 {
        return Err(format!("`{text}` is shorter than a second"));
    }
    // Far beyond any database, and small enough for the report's arithmetic on epoch seconds.
    if d.as_secs() > 100 * 366 * 86400 {
        return Err(format!("`{text}` is longer than a hundred years"));
    }
    Ok(Since { secs: d.as_secs(), text: text.trim().to_owned() })
}

/// How `report` writes the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Lines and aligned columns, for people.
    Text,
    /// One JSON object, for programs.
    Json,
}

/// `setup`'s arguments. The config it creates or checks is the one `--config` (or
/// F2B_NOTIFY_CONFIG, or F2B_NOTIFY_CONFIG_DIR) names, as for every command.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").args(["jails", "all_jails"]))]
pub struct SetupArgs {
    /// Fail2Ban's configuration directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/fail2ban")]
    pub fail2ban_dir: PathBuf,
    /// The jails that get the action, separated by commas. Each keeps its own actions (its
    /// firewall ban comes first); f2b-notify is appended with Fail2Ban's `%(known/action)s`.
    #[arg(long, value_name = "J1,J2", value_delimiter = ',')]
    pub jails: Vec<String>,
    /// Every jail gets the action: appended to `[DEFAULT]`'s `action` (copied from where it is
    /// set) and to the `action` of each jail that sets its own.
    #[arg(long)]
    pub all_jails: bool,
    /// Print what would be written (or, with --undo, removed) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove what setup wrote into this Fail2Ban directory, as its record there lists, and put
    /// back what it replaced. A file changed since setup wrote it is kept, and said.
    #[arg(long, conflicts_with = "which")]
    pub undo: bool,
}

/// `check`'s arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fail2Ban's configuration directory: when its action.d/f2b-notify.conf exists, the
    /// program its `bin` names must be there and executable.
    #[arg(long, value_name = "DIR", default_value = "/etc/fail2ban")]
    pub fail2ban_dir: PathBuf,
}

/// `deliver`'s arguments.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Keep running and watching the spool (for a service manager) instead of exiting when
    /// idle.
    #[arg(long)]
    pub follow: bool,
    /// With --follow, for the systemd unit: while this worker runs, and while the service
    /// manager restarts it after a crash, `notify` starts no worker of its own for this spool
    /// (SPOOL/service marks it; removed on a clean stop), so that every delivery runs in the
    /// service's sandbox. Tells the service manager when it is ready (Type=notify).
    #[arg(long, requires = "follow")]
    pub service: bool,
}

/// `queue`'s arguments.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// list (default), retry (move dead events back to their queues) or purge (delete the
    /// dead events).
    #[arg(value_enum, default_value = "list")]
    pub action: QueueAction,
    /// list: print every dead event and corrupt file on a line of its own (by default they
    /// are counted per sink, jail and reason, with the first few shown).
    #[arg(long)]
    pub all: bool,
}

/// What `queue` does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueueAction {
    /// List pending and dead events with each sink's state and last error.
    List,
    /// Move the dead events back into their sinks' queues.
    Retry,
    /// Delete the dead events, after saying how many.
    Purge,
}

/// The event word (start, stop, ban, unban), parsed by the action contract's rules.
fn event_kind() -> impl clap::builder::TypedValueParser<Value = EventKind> {
    clap::builder::PossibleValuesParser::new(Kind::ALL.map(Kind::as_str)).try_map(|word| word.parse::<EventKind>())
}

/// `notify`'s arguments, named after Fail2Ban's tags. Numbers are taken as text and checked
/// afterwards, so that an empty tag means "not given" rather than an error.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// start, stop, ban or unban.
    #[arg(value_parser = event_kind())]
    pub event: EventKind,
    /// The jail (`<name>`).
    #[arg(long, allow_hyphen_values = true)]
    pub jail: String,
    /// The banned id (`<ip>`): an IPv4/IPv6 address or any other non-empty text.
    #[arg(long, allow_hyphen_values = true, value_name = "ADDR")]
    pub ip: Option<String>,
    /// How many failures led to the ban (`<failures>`).
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    pub failures: Option<String>,
    /// When the ban happened, epoch seconds, possibly fractional (`<time>`).
    #[arg(long, allow_hyphen_values = true, value_name = "EPOCH")]
    pub time: Option<String>,
    /// Ban length in seconds, -1 for permanent (`<bantime>`).
    #[arg(long, allow_hyphen_values = true, value_name = "SECS")]
    pub bantime: Option<String>,
    /// 1 when Fail2Ban restored the ban at restart (`<restored>`).
    #[arg(long, allow_hyphen_values = true, value_name = "0|1")]
    pub restored: Option<String>,
    /// The user name from the log line (`<F-USER>`).
    #[arg(long, allow_hyphen_values = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The matched log lines (`<matches>`).
    #[arg(long, allow_hyphen_values = true, value_name = "TEXT")]
    pub matches: Option<String>,
    /// How often Fail2Ban has banned the address in this jail, this ban included
    /// (`<bancount>`; above 1 only with `bantime.increment`).
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    pub bancount: Option<String>,
}

/// `test`'s arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The jail whose route to try.
    #[arg(long, allow_hyphen_values = true)]
    pub jail: String,
    /// The sample event's kind.
    #[arg(long, value_parser = event_kind(), default_value = "ban")]
    pub event: EventKind,
    /// The sample address (default 192.0.2.1, a documentation address).
    #[arg(long, allow_hyphen_values = true, value_name = "ADDR", default_value = "192.0.2.1")]
    pub ip: String,
    /// Send nothing: print, per sink on the route, exactly what would be sent (the JSON
    /// body, the mail with its headers, the line), with secrets left out.
    #[arg(long)]
    pub dry_run: bool,
}
