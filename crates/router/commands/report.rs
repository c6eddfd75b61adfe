//! `f2b-notify report`: what Fail2Ban did over a period (the last 24 hours by default), read
//! from Fail2Ban's own SQLite database: the bans per jail, the addresses banned and how many of
//! them had been banned before (repeat offenders), the top addresses, and the change against
//! the period before. Printed as a table or as JSON, or sent now through one sink of the config
//! (`--to`) as a plain message (the sink's alert): never through the spool, since a report that
//! arrives late is stale, and the timer that runs `report` shows a failure where it is seen.
//!
//! The database is Fail2Ban's, and Fail2Ban writes it while we read. It is opened read-only
//! (SQLite then never creates, changes or repairs the file), with a busy timeout: Fail2Ban
//! keeps its rollback journal in memory (`journal_mode = MEMORY`) and locks the file only while
//! it commits, so a reader waits a moment at worst. Every number comes from one read
//! transaction, so they agree with each other. A database someone else could have written is
//! refused, as the spool is: the report would say whatever they wanted, to whoever reads it.
//!
//! What the database can tell is bounded by Fail2Ban itself: it deletes bans older than its
//! `dbpurgeage` (1 day by default), and `fail2ban-client set JAIL unbanip` deletes the
//! address's bans in that jail. The report says when its period, or the period before it,
//! reaches further back than `dbpurgeage`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use f2b_notify_core::{Alert, Sink};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use serde::Serialize;

use super::{host_name, kernel_host_name, load, runtime, DELIVERY_DEADLINE};
use crate::cli::{ReportArgs, ReportFormat, Since};
use crate::config::Sources;
use crate::jailconf::JailConf;
use crate::registry;
use crate::suggest::did_you_mean;

/// Where Fail2Ban keeps its database when its config does not say (fail2ban.conf's default).
pub const DEFAULT_DB: &str = "/var/lib/fail2ban/fail2ban.sqlite3";

/// Fail2Ban's default `dbpurgeage`: bans older than this are deleted from the database.
const DEFAULT_PURGE_AGE: u64 = 24 * 60 * 60;

/// How long to wait for Fail2Ban to finish a write: it holds the lock for one commit, far less.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many addresses (and countries, networks) the report lists.
const TOP: usize = 10;

/// The section of fail2ban.conf that holds `dbfile` and `dbpurgeage`.
const DEFINITION: &str = "Definition";

/// Runs `report`.
pub fn run(sources: &Sources, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    // The sink first: a mistyped name fails before any work, and the config names the host.
    let mut enrich_config = None;
    let (sink, host) = match &args.to {
        Some(name) => {
            let loaded = load(sources)?;
            enrich_config = Some(loaded.config.enrich.clone());
            let cfg = loaded.config.sinks.get(name).ok_or_else(|| {
                anyhow!(
                    "no sink named `{name}` in the config{}",
                    did_you_mean(name, loaded.config.sinks.keys().map(String::as_str))
                )
            })?;
            let sink = registry::build(name, cfg)?;
            if !sink.carries_alerts() {
                bail!("sink `{name}` (type `{}`) cannot carry the report: it has no plain-message form (the one `[delivery] alert` uses)", sink.kind());
            }
            (Some(sink), host_name(&loaded))
        }
        None => (None, kernel_host_name()),
    };
    let settings = Settings::read(&args.fail2ban_dir, args.db.as_deref())?;
    let (path, origin) = match &settings.db {
        Db::File(path, origin) => (path.clone(), origin),
        Db::Memory(origin) => bail!(
            "Fail2Ban keeps its database in memory (`dbfile = :memory:` in {origin}): there is no file to report on; set dbfile to a file (the default is {DEFAULT_DB}) and restart Fail2Ban"
        ),
        Db::Disabled(origin) => bail!(
            "Fail2Ban keeps no database (`dbfile = None` in {origin}): there is nothing to report on; set dbfile to a file (the default is {DEFAULT_DB}) and restart Fail2Ban"
        ),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let rows = trusted(&path)
        .and_then(|real| open(&real, BUSY_TIMEOUT))
        .and_then(|mut conn| read(&mut conn, &path, now - 2 * args.since.secs as i64, now - args.since.secs as i64));
    // Where the path came from, when the user did not type it.
    let rows = match origin {
        Some(origin) => rows.with_context(|| format!("Fail2Ban's database ({origin})"))?,
        None => rows?,
    };
    let mut report = compute(&rows, now, &args.since, &settings.kept);
    report.host = host;
    report.database = path.display().to_string();
    // Countries and networks from `[enrich]`'s databases (no DNS: a report counts hundreds of
    // addresses). Without `--to` the config is read for them only if it loads.
    let enrich_config = enrich_config.or_else(|| load(sources).ok().map(|l| l.config.enrich));
    let databases = enrich_config.map(|c| crate::trusted::vet_enrich(f2b_notify_enrich::Config { dns: false, ..c }));
    let (databases, refused) = databases.map_or((None, Vec::new()), |(c, p)| (Some(c), p));
    let (enricher, problems) = databases.map(|c| f2b_notify_enrich::Enricher::lenient(&c)).unwrap_or_default();
    for p in refused.into_iter().chain(problems.iter().map(ToString::to_string)) {
        eprintln!("f2b-notify: {p}; the report goes on without it");
    }
    enrich(&mut report, enricher.as_ref().map(|e| e as &dyn Lookup));
    let (subject, body) = match args.format {
        ReportFormat::Text => render_text(&report),
        ReportFormat::Json => (title(&report), serde_json::to_string_pretty(&report)? + "\n"),
    };
    let Some(sink) = sink else {
        if args.format == ReportFormat::Text {
            println!("{subject}");
        }
        print!("{body}");
        return Ok(ExitCode::SUCCESS);
    };
    send(&sink, Alert { subject, text: body.trim_end().to_owned(), recovered: false })
}

/// Sends the report through `sink` now; exit 1 when it failed.
fn send(sink: &Arc<dyn Sink>, alert: Alert) -> anyhow::Result<ExitCode> {
    let result = runtime()?.block_on(async { tokio::time::timeout(DELIVERY_DEADLINE, sink.send_alert(&alert)).await });
    let result = result.unwrap_or_else(|_| {
        Err(f2b_notify_core::SinkError::transient(format!("no answer within {} s", DELIVERY_DEADLINE.as_secs())))
    });
    match result {
        Ok(()) => {
            println!("report sent through sink `{}` ({})", sink.name(), sink.kind());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "f2b-notify: the report was not sent: sink `{}` ({}): {}",
                sink.name(),
                sink.kind(),
                super::test::explain(&e)
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Where the database is, as Fail2Ban's config (or `--db`) says.
#[derive(Debug, PartialEq, Eq)]
enum Db {
    /// A file, and where it was set (`None`: by `--db`).
    File(PathBuf, Option<String>),
    /// `:memory:`, set in the named file.
    Memory(String),
    /// `None`, set in the named file.
    Disabled(String),
}

/// How long Fail2Ban keeps bans (`dbpurgeage`), and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Seconds; `None` when the value could not be read (every ban is then taken as kept).
    pub secs: Option<u64>,
    /// Where it was set: a file and its option, or "Fail2Ban's default dbpurgeage".
    pub origin: String,
    /// The value as written.
    pub text: String,
}

/// What the report takes from Fail2Ban's config.
struct Settings {
    db: Db,
    kept: Kept,
}

impl Settings {
    /// Reads `dbfile` and `dbpurgeage` from the Fail2Ban directory `dir` in Fail2Ban's order;
    /// `db` (`--db`) wins over `dbfile`. A directory that does not exist means Fail2Ban's
    /// defaults; one that cannot be read is an error only when the database's place depends
    /// on it.
    fn read(dir: &Path, db: Option<&Path>) -> anyhow::Result<Self> {
        let conf = match JailConf::read_server(dir) {
            Ok(conf) => Some(conf),
            Err(e) if db.is_none() => {
                return Err(e).with_context(|| {
                    format!("cannot read Fail2Ban's config in {} (for dbfile): pass --db FILE", dir.display())
                })
            }
            Err(_) => None,
        };
        let setting = |option: &str| {
            conf.as_ref()
                .and_then(|c| c.effective(DEFINITION, option))
                .map(|v| (v.lines.join(" ").trim().to_owned(), format!("{} [{DEFINITION}] {option}", v.file.display())))
        };
        let db = match (db, setting("dbfile")) {
            (Some(path), _) => Db::File(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()), None),
            (None, None) => Db::File(PathBuf::from(DEFAULT_DB), Some("Fail2Ban's default dbfile".to_owned())),
            (None, Some((value, origin))) => {
                if value == ":memory:" {
                    Db::Memory(origin)
                } else if value.eq_ignore_ascii_case("none") {
                    Db::Disabled(origin)
                } else if value.contains("%(") || !value.starts_with('/') {
                    // Fail2Ban would interpolate it, or resolve it against its own working
                    // directory: neither is ours to guess.
                    bail!("{origin} is `{value}`, which f2b-notify cannot resolve: pass --db with the database's absolute path")
                } else {
                    Db::File(PathBuf::from(value), Some(origin))
                }
            }
        };
        let kept = match setting("dbpurgeage") {
            Some((text, origin)) => Kept { secs: fail2ban_seconds(&text), origin, text },
            None => Kept {
                secs: Some(DEFAULT_PURGE_AGE),
                origin: "Fail2Ban's default dbpurgeage".to_owned(),
                text: "1d".to_owned(),
            },
        };
        Ok(Self { db, kept })
    }
}

/// Seconds from a Fail2Ban time value as plain settings write it: `86400`, `1d`, `2w`,
/// `1h 30m`, `1d12h` (Fail2Ban's own reader also takes arithmetic: `None` for that).
fn fail2ban_seconds(text: &str) -> Option<u64> {
    const UNITS: [(&[&str], f64); 7] = [
        (&["s", "ss", "sec", "second", "seconds"], 1.0),
        (&["m", "mm", "min", "minute", "minutes"], 60.0),
        (&["h", "hh", "hou", "hour", "hours"], 3600.0),
        (&["d", "dd", "da", "day", "days"], 86400.0),
        (&["w", "ww", "wee", "week", "weeks"], 604_800.0),
        (&["mo", "mon", "month", "months"], 2_629_800.0),
        (&["y", "yy", "yea", "year", "years"], 31_557_600.0),
    ];
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let letters = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..letters];
        let factor = if unit.is_empty() { 1.0 } else { UNITS.iter().find(|(names, _)| names.contains(&unit))?.1 };
        total += number * factor;
        rest = &rest[letters..];
    }
    Some(total.round() as u64)
}

/// The path to open for the database `path` (links resolved), after refusing what others
/// could have written: a directory on the way that others can write (sticky ones like /tmp
/// excepted) or that belongs to someone else, a file that is not a regular file, a file that
/// belongs to someone other than root or this user, or one that group or others can write.
fn trusted(path: &Path) -> anyhow::Result<PathBuf> {
    use crate::trusted::Untrusted;
    let shown = path.display();
    match crate::trusted::trusted_file(path) {
        Ok(real) => Ok(real),
        Err(Untrusted::Missing) => {
            bail!("{shown}: no such file (Fail2Ban creates its database when it starts; pass --db FILE for another)")
        }
        Err(Untrusted::Unreadable(e)) => Err(e).with_context(|| format!("{shown} cannot be looked at")),
        Err(Untrusted::ForeignLink(uid)) => bail!("{shown} is a symbolic link that belongs to uid {uid}, who could point it anywhere: refusing it; pass --db with the file itself"),
        Err(Untrusted::Directory(u)) => bail!("{shown}: refusing a database in a directory others control: {u}"),
        Err(Untrusted::NotAFile) => bail!("{shown} is not a regular file, so not Fail2Ban's database"),
        Err(Untrusted::ForeignOwner(uid)) => bail!("{shown} belongs to uid {uid}, not to root or the user running f2b-notify: refusing a database someone else could have written; run the report as its owner"),
        Err(Untrusted::Writable(mode)) => bail!(
            "{shown} can be written by others (mode {mode:04o}): refusing a database someone else could have written; fix: chmod go-w {shown}"
        ),
    }
}

/// Opens the database read-only: SQLite neither creates nor changes the file, and does not
/// follow a link put in its place since [`trusted`] looked. `timeout`: how long to wait for a
/// writer's lock.
fn open(path: &Path, timeout: Duration) -> anyhow::Result<Connection> {
    // Without SQLITE_OPEN_URI: the path is a file name, never a `file:` URI with options.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    // An unreadable file says why (SQLite only says it cannot open it).
    std::fs::File::open(path).with_context(|| format!("{} cannot be read", path.display()))?;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e))?;
    conn.busy_timeout(timeout).map_err(|e| db_error(path, e))?;
    Ok(conn)
}

/// One line for a database error, naming the file and what is wrong.
fn db_error(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            anyhow!(
                "{p} stayed locked by a writer for more than {} s (Fail2Ban locks it while it writes): try again",
                BUSY_TIMEOUT.as_secs()
            )
        }
        Some(ErrorCode::NotADatabase) => {
            anyhow!("{p} is not an SQLite database, so not Fail2Ban's (check dbfile, or --db)")
        }
        Some(ErrorCode::DatabaseCorrupt) => anyhow!("{p} is damaged: {e} (Fail2Ban repairs it when it starts)"),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => anyhow!("{p} cannot be opened: {e}"),
        _ => anyhow!("{p}: cannot read Fail2Ban's database: {e}"),
    }
}

/// One row of Fail2Ban's `bans` table: one ban of one address in one jail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ban {
    jail: String,
    ip: String,
    /// `timeofban`, epoch seconds.
    time: i64,
    /// Fail2Ban's count of this address's bans in the jail (above 1 only with
    /// `bantime.increment`).
    bancount: i64,
}

/// What the report needs from the database.
#[derive(Debug, Default)]
struct Rows {
    /// Every ban from `prev_from` on.
    bans: Vec<Ban>,
    /// The addresses banned before `from`, in any jail (`bans`, and `bips` which keeps each
    /// address's last ban per jail for longer).
    earlier: HashSet<String>,
}

/// Reads the bans from `prev_from` on, and the addresses banned before `from`, in one read
/// transaction. Errors name `shown` (the path as the user gave it).
fn read(conn: &mut Connection, shown: &Path, prev_from: i64, from: i64) -> anyhow::Result<Rows> {
    let e = |e| db_error(shown, e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(e)?;
    let tables: Vec<String> = {
        let mut q = tx.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").map_err(e)?;
        let names = q.query_map([], |r| r.get(0)).map_err(e)?;
        names.collect::<Result<_, _>>().map_err(e)?
    };
    if !tables.iter().any(|t| t == "bans") {
        bail!("{} is not a Fail2Ban database (it has no `bans` table)", shown.display());
    }
    // Fail2Ban before 0.11 (database version 2) kept no ban count.
    let has_bancount: bool = tx
        .query_row("SELECT count(*) > 0 FROM pragma_table_info('bans') WHERE name = 'bancount'", [], |r| r.get(0))
        .map_err(e)?;
    let count = if has_bancount { "bancount" } else { "1" };
    let mut rows = Rows::default();
    {
        let sql = format!(
            "SELECT jail, ip, timeofban, {count} FROM bans WHERE timeofban >= ?1 AND ip IS NOT NULL ORDER BY timeofban"
        );
        let mut q = tx.prepare(&sql).map_err(e)?;
        let found = q
            .query_map([prev_from], |r| {
                Ok(Ban { jail: r.get(0)?, ip: r.get(1)?, time: r.get(2)?, bancount: r.get(3)? })
            })
            .map_err(e)?;
        rows.bans = found.collect::<Result<_, _>>().map_err(e)?;
    }
    {
        let mut sql = "SELECT ip FROM bans WHERE timeofban < ?1 AND ip IS NOT NULL".to_owned();
        if tables.iter().any(|t| t == "bips") {
            sql.push_str(" UNION SELECT ip FROM bips WHERE timeofban < ?1");
        }
        let mut q = tx.prepare(&sql).map_err(e)?;
        let found = q.query_map([from], |r| r.get::<_, String>(0)).map_err(e)?;
        rows.earlier = found.collect::<Result<_, _>>().map_err(e)?;
    }
    tx.finish().map_err(e)?;
    Ok(rows)
}

/// The report, as printed (text or JSON) or sent.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The host it is about.
    pub host: String,
    /// The database read.
    pub database: String,
    /// The period's length, as given (`24h`).
    pub since: String,
    /// Its start, RFC 3339 UTC.
    pub from: String,
    /// Its end (now), RFC 3339 UTC.
    pub to: String,
    /// Bans in the period, all jails.
    pub bans: u64,
    /// Distinct addresses banned in the period.
    pub addresses: u64,
    /// Addresses of the period never banned before it.
    pub new_addresses: u64,
    /// Addresses of the period banned before it (in any jail), or counted by Fail2Ban as
    /// banned again (`bancount` above 1).
    pub repeat_addresses: u64,
    /// Per jail, most bans first.
    pub jails: Vec<JailLine>,
    /// The addresses with the most bans in the period (at most [`TOP`]).
    pub top: Vec<TopAddress>,
    /// The period before, of the same length.
    pub previous: Previous,
    /// The change against the period before; `None` when Fail2Ban no longer keeps all of it.
    pub change: Option<Change>,
    /// Per country, from enrichment's lookups (left out when there were none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries: Option<Vec<Group>>,
    /// Per network, from enrichment's lookups (left out when there were none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Group>>,
    /// What limits the numbers (Fail2Ban's `dbpurgeage`).
    pub notes: Vec<String>,
    /// Every address of the period with its bans, for [`enrich`].
    #[serde(skip)]
    all: Vec<(String, u64)>,
}

/// One jail's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JailLine {
    /// The jail.
    pub jail: String,
    /// Its bans in the period.
    pub bans: u64,
    /// The distinct addresses it banned.
    pub addresses: u64,
}

/// One of the top addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopAddress {
    /// The address (or whatever id Fail2Ban banned).
    pub ip: String,
    /// Its bans in the period.
    pub bans: u64,
    /// The jails that banned it, by name.
    pub jails: Vec<String>,
    /// Whether it is a repeat offender (see [`Report::repeat_addresses`]).
    pub repeat: bool,
}

/// The period before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Previous {
    /// Its start, RFC 3339 UTC (it ends where the report's period starts).
    pub from: String,
    /// Its bans.
    pub bans: u64,
    /// Its distinct addresses.
    pub addresses: u64,
    /// Whether Fail2Ban still keeps all of it (its `dbpurgeage` reaches back that far).
    pub complete: bool,
}

/// The change against the period before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Bans now minus bans before.
    pub bans: i64,
    /// The same in percent of before, one decimal; `None` when there were none before.
    pub bans_percent: Option<f64>,
    /// Addresses now minus addresses before.
    pub addresses: i64,
    /// The same in percent of before; `None` when there were none before.
    pub addresses_percent: Option<f64>,
}

/// Addresses and bans of one country or network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The country or network as the lookup names it, or `unknown`.
    pub name: String,
    /// Its distinct addresses in the period.
    pub addresses: u64,
    /// Their bans.
    pub bans: u64,
}

/// RFC 3339 UTC for epoch seconds.
fn utc(secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// A length in Fail2Ban's words: `2d`, `36h`, `90m`, `45s`.
fn length(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The report for the period `[now - since, now]` from `rows`, Fail2Ban keeping bans as
/// `kept` says. Host and database are the caller's to fill in.
fn compute(rows: &Rows, now: i64, since: &Since, kept: &Kept) -> Report {
    let len = since.secs as i64;
    let from = now - len;
    let prev_from = from - len;
    let current = rows.bans.iter().filter(|b| b.time >= from && b.time <= now);
    let mut jails: BTreeMap<&str, (u64, BTreeSet<&str>)> = BTreeMap::new();
    // Per address: bans, jails, highest bancount.
    let mut addrs: BTreeMap<&str, (u64, BTreeSet<&str>, i64)> = BTreeMap::new();
    let mut bans = 0;
    for b in current {
        bans += 1;
        let j = jails.entry(&b.jail).or_default();
        j.0 += 1;
        j.1.insert(&b.ip);
        let a = addrs.entry(&b.ip).or_default();
        a.0 += 1;
        a.1.insert(&b.jail);
        a.2 = a.2.max(b.bancount);
    }
    let repeat = |ip: &str, bancount: i64| bancount > 1 || rows.earlier.contains(ip);
    let repeats = addrs.iter().filter(|(ip, a)| repeat(ip, a.2)).count() as u64;
    let mut jail_lines: Vec<JailLine> = jails
        .iter()
        .map(|(jail, (n, ips))| JailLine { jail: (*jail).to_owned(), bans: *n, addresses: ips.len() as u64 })
        .collect();
    jail_lines.sort_by(|a, b| b.bans.cmp(&a.bans).then_with(|| a.jail.cmp(&b.jail)));
    let mut top: Vec<TopAddress> = addrs
        .iter()
        .map(|(ip, (n, js, count))| TopAddress {
            ip: (*ip).to_owned(),
            bans: *n,
            jails: js.iter().map(|j| (*j).to_owned()).collect(),
            repeat: repeat(ip, *count),
        })
        .collect();
    top.sort_by(|a, b| b.bans.cmp(&a.bans).then_with(|| by_address(&a.ip, &b.ip)));
    let all = top.iter().map(|t| (t.ip.clone(), t.bans)).collect();
    top.truncate(TOP);

    let before: Vec<&Ban> = rows.bans.iter().filter(|b| b.time >= prev_from && b.time < from).collect();
    let before_addrs: HashSet<&str> = before.iter().map(|b| b.ip.as_str()).collect();
    let kept_secs = kept.secs.unwrap_or(u64::MAX);
    let mut notes = Vec::new();
    if kept.secs.is_none() {
        notes.push(format!(
            "cannot read dbpurgeage `{}` ({}): the numbers assume Fail2Ban keeps every ban",
            kept.text, kept.origin
        ));
    }
    if since.secs > kept_secs {
        notes.push(format!(
            "Fail2Ban deletes bans older than {} ({}): only the last {} of this period are counted; raise dbpurgeage for longer reports",
            kept.text, kept.origin, kept.text
        ));
    }
    let complete = since.secs.saturating_mul(2) <= kept_secs;
    if !complete {
        notes.push(format!(
            "no comparison with the previous {p}: it reaches back {back}, and Fail2Ban deletes bans older than {kept} ({origin}); set `dbpurgeage = {back}` or more in fail2ban.local for one",
            p = since.text.clone(),
            back = length(since.secs.saturating_mul(2)),
            kept = kept.text,
            origin = kept.origin,
        ));
    }
    let addresses = addrs.len() as u64;
    let previous =
        Previous { from: utc(prev_from), bans: before.len() as u64, addresses: before_addrs.len() as u64, complete };
    let change = complete.then(|| Change {
        bans: bans as i64 - previous.bans as i64,
        bans_percent: percent(bans, previous.bans),
        addresses: addresses as i64 - previous.addresses as i64,
        addresses_percent: percent(addresses, previous.addresses),
    });
    Report {
        host: String::new(),
        database: String::new(),
        since: since.text.clone(),
        from: utc(from),
        to: utc(now),
        bans,
        addresses,
        new_addresses: addresses - repeats,
        repeat_addresses: repeats,
        jails: jail_lines,
        top,
        previous,
        change,
        countries: None,
        networks: None,
        notes,
        all,
    }
}

/// Addresses in numeric order (IPv4 first), ids that are not addresses after them by text.
fn by_address(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| s.parse::<IpAddr>().ok();
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (x, y) => y.is_some().cmp(&x.is_some()).then_with(|| a.cmp(b)),
    }
}

/// `now` against `before` in percent, one decimal; `None` when `before` is 0.
fn percent(now: u64, before: u64) -> Option<f64> {
    (before > 0).then(|| ((now as f64 - before as f64) * 1000.0 / before as f64).round() / 10.0)
}

/// What enrichment can say about an address, for the report's countries and networks:
/// `[enrich]`'s databases ([`f2b_notify_enrich::Enricher::locate`]).
pub trait Lookup {
    /// The address's country as the report shows it (`CN China`), or `None` when unknown.
    fn country(&self, ip: IpAddr) -> Option<String>;
    /// The address's network as the report shows it (`AS4134 CHINANET`), or `None`.
    fn network(&self, ip: IpAddr) -> Option<String>;
}

impl Lookup for f2b_notify_enrich::Enricher {
    fn country(&self, ip: IpAddr) -> Option<String> {
        let c = self.locate(ip);
        match (c.country_code, c.country) {
            (Some(code), Some(name)) => Some(format!("{code} {name}")),
            (code, name) => code.or(name),
        }
    }
    fn network(&self, ip: IpAddr) -> Option<String> {
        self.locate(ip).network()
    }
}

/// Adds the countries and networks of the period's addresses to `report` from `lookup`: per
/// country and per network, the addresses and their bans, most addresses first (the first
/// [`TOP`]; what the lookup does not know, or an id that is not an address, counts as
/// `unknown`). Without a lookup the report has neither.
pub fn enrich(report: &mut Report, lookup: Option<&dyn Lookup>) {
    let Some(lookup) = lookup else { return };
    let mut countries: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut networks: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (ip, bans) in &report.all {
        let addr: Option<IpAddr> = ip.parse().ok();
        let country = addr.and_then(|a| lookup.country(a)).unwrap_or_else(|| "unknown".to_owned());
        let network = addr.and_then(|a| lookup.network(a)).unwrap_or_else(|| "unknown".to_owned());
        for (map, key) in [(&mut countries, country), (&mut networks, network)] {
            let g = map.entry(key).or_default();
            g.0 += 1;
            g.1 += bans;
        }
    }
    let ranked = |map: BTreeMap<String, (u64, u64)>| {
        let mut groups: Vec<Group> =
            map.into_iter().map(|(name, (addresses, bans))| Group { name, addresses, bans }).collect();
        groups
            .sort_by(|a, b| b.addresses.cmp(&a.addresses).then(b.bans.cmp(&a.bans)).then_with(|| a.name.cmp(&b.name)));
        groups.truncate(TOP);
        groups
    };
    report.countries = Some(ranked(countries));
    report.networks = Some(ranked(networks));
}

/// The report's one-line title: the mail subject, the notification's first line.
fn title(r: &Report) -> String {
    format!(
        "Fail2Ban on {}: {} {} of {} {} in the last {}",
        r.host,
        r.bans,
        plural(r.bans, "ban", "bans"),
        r.addresses,
        plural(r.addresses, "address", "addresses"),
        r.since
    )
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `+2 (+50%)`, `-1 (-20%)`, `+6 (none before)`.
fn signed(diff: i64, pct: Option<f64>) -> String {
    match pct {
        Some(p) => format!("{diff:+} ({p:+}%)"),
        None => format!("{diff:+} (none before)"),
    }
}

/// The text form: the title, and the body (the lines under it). Columns are aligned with
/// spaces for a terminal, and each line still reads as a sentence where a service shows the
/// text in a proportional font.
fn render_text(r: &Report) -> (String, String) {
    let mut out = String::new();
    let (from, to) = (r.from.replace('T', " ").replace('Z', ""), r.to.replace('T', " ").replace('Z', ""));
    out.push_str(&format!("period: {from} to {to} UTC\n"));
    if r.bans == 0 {
        out.push_str("no bans\n");
    } else {
        out.push_str(&format!(
            "{} {} of {} {}: {} new, {} banned before\n",
            r.bans,
            plural(r.bans, "ban", "bans"),
            r.addresses,
            plural(r.addresses, "address", "addresses"),
            r.new_addresses,
            r.repeat_addresses
        ));
    }
    match &r.change {
        Some(c) => out.push_str(&format!(
            "against the previous {}: bans {}, addresses {}\n",
            r.since,
            signed(c.bans, c.bans_percent),
            signed(c.addresses, c.addresses_percent)
        )),
        None => out.push_str(&format!("against the previous {}: not known (see the note below)\n", r.since)),
    }
    if !r.jails.is_empty() {
        let width = r.jails.iter().map(|j| j.jail.chars().count()).max().unwrap_or(0).max("jail".len());
        out.push_str(&format!("\n{:width$}  {:>5}  {:>9}\n", "jail", "bans", "addresses"));
        for j in &r.jails {
            out.push_str(&format!("{:width$}  {:>5}  {:>9}\n", j.jail, j.bans, j.addresses));
        }
    }
    if !r.top.is_empty() {
        let width = r.top.iter().map(|t| t.ip.chars().count()).max().unwrap_or(0).max("top addresses".len());
        out.push_str(&format!("\n{:width$}  {:>5}  jails\n", "top addresses", "bans"));
        for t in &r.top {
            let again = if t.repeat { " (banned before)" } else { "" };
            out.push_str(&format!("{:width$}  {:>5}  {}{again}\n", t.ip, t.bans, t.jails.join(", ")));
        }
    }
    for (label, groups) in [("countries", &r.countries), ("networks", &r.networks)] {
        let Some(groups) = groups.as_ref().filter(|g| !g.is_empty()) else { continue };
        let width = groups.iter().map(|g| g.name.chars().count()).max().unwrap_or(0).max(label.len());
        out.push_str(&format!("\n{label:width$}  {:>9}  {:>5}\n", "addresses", "bans"));
        for g in groups {
            out.push_str(&format!("{:width$}  {:>9}  {:>5}\n", g.name, g.addresses, g.bans));
        }
    }
    out.push_str(&format!("\nfrom {}\n", r.database));
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    (title(r), out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Fail2Ban's schema, exactly as Fail2Ban 1.0.2 creates it (database version 4):
    /// `Fail2BanDb._CREATE_SCRIPTS` in fail2ban/server/database.py.
    const FAIL2BAN_SCHEMA: &str = "\
        CREATE TABLE IF NOT EXISTS fail2banDb(version INTEGER);\
        CREATE TABLE IF NOT EXISTS jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);\
        CREATE INDEX IF NOT EXISTS jails_name ON jails(name);\
        CREATE TABLE IF NOT EXISTS logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT, lastfilepos INTEGER DEFAULT 0, FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE, UNIQUE(jail, path),UNIQUE(jail, path, firstlinemd5));\
        CREATE INDEX IF NOT EXISTS logs_path ON logs(path);\
        CREATE INDEX IF NOT EXISTS logs_jail_path ON logs(jail, path);\
        CREATE TABLE IF NOT EXISTS bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON, FOREIGN KEY(jail) REFERENCES jails(name) );\
        CREATE INDEX IF NOT EXISTS bans_jail_timeofban_ip ON bans(jail, timeofban);\
        CREATE INDEX IF NOT EXISTS bans_jail_ip ON bans(jail, ip);\
        CREATE INDEX IF NOT EXISTS bans_ip ON bans(ip);\
        CREATE TABLE IF NOT EXISTS bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name) );\
        CREATE INDEX IF NOT EXISTS bips_timeofban ON bips(timeofban);\
        CREATE INDEX IF NOT EXISTS bips_ip ON bips(ip);\
        INSERT INTO fail2banDb(version) VALUES(4);";

    const NOW: i64 = 1_700_000_000;

    fn hour() -> Since {
        Since { secs: 3600, text: "1h".to_owned() }
    }

    fn day_kept() -> Kept {
        Kept { secs: Some(86400), origin: "Fail2Ban's default dbpurgeage".to_owned(), text: "1d".to_owned() }
    }

    /// A Fail2Ban database in `dir`, opened for writing the way Fail2Ban opens it.
    fn fail2ban_db(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("fail2ban.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;")
            .unwrap();
        conn.execute_batch(FAIL2BAN_SCHEMA).unwrap();
        (path, conn)
    }

    /// What Fail2Ban's `addBan` writes for one ban.
    fn ban(conn: &Connection, jail: &str, ip: &str, time: i64, bancount: i64) {
        conn.execute("INSERT OR IGNORE INTO jails(name, enabled) VALUES(?1, 1)", [jail]).unwrap();
        let data = r#"{"matches": ["sshd: Authentication failure"], "failures": 3}"#;
        conn.execute(
            "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) VALUES(?1, ?2, ?3, 600, ?4, ?5)",
            rusqlite::params![jail, ip, time, bancount, data],
        )
        .unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO bips(ip, jail, timeofban, bantime, bancount, data) VALUES(?1, ?2, ?3, 600, ?4, ?5)",
            rusqlite::params![ip, jail, time, bancount, data],
        )
        .unwrap();
    }

    fn report_of(path: &Path, since: &Since, kept: &Kept) -> Report {
        let mut conn = open(&trusted(path).unwrap(), BUSY_TIMEOUT).unwrap();
        let rows = read(&mut conn, path, NOW - 2 * since.secs as i64, NOW - since.secs as i64).unwrap();
        let mut r = compute(&rows, NOW, since, kept);
        r.host = "web1".to_owned();
        r.database = path.display().to_string();
        r
    }

    /// Two jails over two hours and older history: every count, at the periods' edges too.
    fn sample(conn: &Connection) {
        // Long before: an address that comes back (kept by `bans` within dbpurgeage).
        ban(conn, "sshd", "203.0.113.9", NOW - 50_000, 1);
        // Before the previous period: only "banned before".
        ban(conn, "web", "192.0.2.4", NOW - 7201, 1);
        // The previous period, [now - 2h, now - 1h).
        ban(conn, "sshd", "192.0.2.2", NOW - 7200, 1);
        ban(conn, "web", "192.0.2.3", NOW - 5000, 1);
        ban(conn, "sshd", "192.0.2.1", NOW - 3601, 1);
        // The period, [now - 1h, now].
        ban(conn, "sshd", "2001:db8::1", NOW - 3600, 1);
        ban(conn, "sshd", "198.51.100.1", NOW - 3000, 1);
        ban(conn, "sshd", "198.51.100.1", NOW - 1000, 1);
        ban(conn, "web", "198.51.100.1", NOW - 500, 1);
        ban(conn, "sshd", "192.0.2.1", NOW - 100, 1);
        ban(conn, "web", "203.0.113.5", NOW - 10, 3);
        ban(conn, "sshd", "203.0.113.9", NOW, 1);
        // A clock that jumped: not in any period.
        ban(conn, "sshd", "192.0.2.99", NOW + 10, 1);
    }

    fn top(ip: &str, bans: u64, jails: &[&str], repeat: bool) -> TopAddress {
        TopAddress { ip: ip.to_owned(), bans, jails: jails.iter().map(|j| (*j).to_owned()).collect(), repeat }
    }

    #[test]
    fn counts_jails_new_and_repeat_addresses_top_and_change() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        sample(&conn);
        let r = report_of(&path, &hour(), &day_kept());
        assert_eq!((r.bans, r.addresses), (7, 5));
        // Repeat: 192.0.2.1 and 203.0.113.9 were banned before, 203.0.113.5 has bancount 3.
        assert_eq!((r.new_addresses, r.repeat_addresses), (2, 3));
        assert_eq!(
            r.jails,
            [
                JailLine { jail: "sshd".to_owned(), bans: 5, addresses: 4 },
                JailLine { jail: "web".to_owned(), bans: 2, addresses: 2 }
            ]
        );
        assert_eq!(
            r.top,
            [
                top("198.51.100.1", 3, &["sshd", "web"], false),
                top("192.0.2.1", 1, &["sshd"], true),
                top("203.0.113.5", 1, &["web"], true),
                top("203.0.113.9", 1, &["sshd"], true),
                top("2001:db8::1", 1, &["sshd"], false),
            ]
        );
        assert_eq!(
            r.previous,
            Previous { from: "2023-11-14T20:13:20Z".to_owned(), bans: 3, addresses: 3, complete: true }
        );
        assert_eq!(
            r.change,
            Some(Change { bans: 4, bans_percent: Some(133.3), addresses: 2, addresses_percent: Some(66.7) })
        );
        assert_eq!((r.from.as_str(), r.to.as_str()), ("2023-11-14T21:13:20Z", "2023-11-14T22:13:20Z"));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn the_text_and_the_json() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        sample(&conn);
        let r = report_of(&path, &hour(), &day_kept());
        let (subject, body) = render_text(&r);
        assert_eq!(subject, "Fail2Ban on web1: 7 bans of 5 addresses in the last 1h");
        let expected = format!(
            "period: 2023-11-14 21:13:20 to 2023-11-14 22:13:20 UTC
7 bans of 5 addresses: 2 new, 3 banned before
against the previous 1h: bans +4 (+133.3%), addresses +2 (+66.7%)

jail   bans  addresses
sshd      5          4
web       2          2

top addresses   bans  jails
198.51.100.1       3  sshd, web
192.0.2.1          1  sshd (banned before)
203.0.113.5        1  web (banned before)
203.0.113.9        1  sshd (banned before)
2001:db8::1        1  sshd

from {}
",
            path.display()
        );
        assert_eq!(body, expected);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["bans"], 7);
        assert_eq!(json["new_addresses"], 2);
        assert_eq!(json["jails"][0], serde_json::json!({"jail": "sshd", "bans": 5, "addresses": 4}));
        assert_eq!(
            json["top"][0],
            serde_json::json!({"ip": "198.51.100.1", "bans": 3, "jails": ["sshd", "web"], "repeat": false})
        );
        assert_eq!(json["change"]["bans_percent"], 133.3);
        assert!(json.get("countries").is_none() && json.get("all").is_none(), "{json}");
        // No bans, and nothing before: said plainly.
        let empty = tempfile::tempdir().unwrap();
        let (path, _conn) = fail2ban_db(empty.path());
        let r = report_of(&path, &hour(), &day_kept());
        let (subject, body) = render_text(&r);
        assert_eq!(subject, "Fail2Ban on web1: 0 bans of 0 addresses in the last 1h");
        assert!(
            body.contains("\nno bans\nagainst the previous 1h: bans +0 (none before), addresses +0 (none before)\n"),
            "{body}"
        );
    }

    #[test]
    fn an_address_fail2ban_purged_from_bans_but_keeps_in_bips_is_a_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        ban(&conn, "recidive", "192.0.2.7", NOW - 10 * 86400, 1);
        conn.execute("DELETE FROM bans", []).unwrap(); // Fail2Ban's purge of `bans`
        ban(&conn, "sshd", "192.0.2.7", NOW - 60, 1);
        let r = report_of(&path, &hour(), &day_kept());
        assert_eq!((r.addresses, r.repeat_addresses), (1, 1));
    }

    #[test]
    fn periods_longer_than_fail2ban_keeps_bans_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        sample(&conn);
        let day = Since { secs: 86400, text: "24h".to_owned() };
        let r = report_of(&path, &day, &day_kept());
        assert_eq!(r.change, None);
        assert!(!r.previous.complete);
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("no comparison with the previous 24h: it reaches back 2d"), "{}", r.notes[0]);
        assert!(r.notes[0].contains("set `dbpurgeage = 2d` or more"), "{}", r.notes[0]);
        let (_, body) = render_text(&r);
        assert!(body.contains("against the previous 24h: not known (see the note below)\n"), "{body}");
        let week = Since { secs: 7 * 86400, text: "7d".to_owned() };
        let r = report_of(&path, &week, &day_kept());
        assert!(r.notes[0].contains("only the last 1d of this period are counted"), "{:?}", r.notes);
        let kept = Kept { secs: Some(14 * 86400), origin: "x".to_owned(), text: "2w".to_owned() };
        assert!(report_of(&path, &week, &kept).notes.is_empty());
        let unknown = Kept { secs: None, origin: "/etc/fail2ban/fail2ban.local".to_owned(), text: "2*d".to_owned() };
        let r = report_of(&path, &week, &unknown);
        assert!(r.change.is_some());
        assert!(r.notes[0].starts_with("cannot read dbpurgeage `2*d` (/etc/fail2ban/fail2ban.local)"), "{:?}", r.notes);
    }

    #[test]
    fn fail2ban_time_values() {
        for (text, secs) in [
            ("86400", Some(86400)),
            ("1d", Some(86400)),
            ("2w", Some(1_209_600)),
            ("1h 30m", Some(5400)),
            ("1d12h", Some(129_600)),
            ("36 hours", Some(129_600)),
            ("1.5d", Some(129_600)),
            ("1mo", Some(2_629_800)),
            ("", None),
            ("1d+1h", None),
            ("forever", None),
        ] {
            assert_eq!(fail2ban_seconds(text), secs, "{text:?}");
        }
    }

    #[test]
    fn dbfile_and_dbpurgeage_come_from_fail2bans_config_in_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = |name: &str, body: &str| {
            let p = d.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        // No directory: Fail2Ban's defaults.
        let s = Settings::read(&d.join("none"), None).unwrap();
        assert_eq!(s.db, Db::File(PathBuf::from(DEFAULT_DB), Some("Fail2Ban's default dbfile".to_owned())));
        assert_eq!(s.kept, day_kept());
        w("fail2ban.conf", "[DEFAULT]\n[Definition]\ndbfile = /var/lib/fail2ban/fail2ban.sqlite3\ndbpurgeage = 1d\n");
        w("fail2ban.d/a.conf", "[Definition]\ndbfile = /srv/a.sqlite3\n");
        w("fail2ban.local", "[Definition]\ndbfile = /srv/b.sqlite3\n");
        w("fail2ban.d/z.local", "[Definition]\ndbpurgeage = 8d ; a week and a day\n");
        let s = Settings::read(d, None).unwrap();
        let dbfile = format!("{} [Definition] dbfile", d.join("fail2ban.local").display());
        assert_eq!(s.db, Db::File(PathBuf::from("/srv/b.sqlite3"), Some(dbfile)));
        let origin = format!("{} [Definition] dbpurgeage", d.join("fail2ban.d/z.local").display());
        assert_eq!(s.kept, Kept { secs: Some(8 * 86400), origin, text: "8d".to_owned() });
        // --db wins.
        let s = Settings::read(d, Some(Path::new("/x/y.sqlite3"))).unwrap();
        assert_eq!(s.db, Db::File(PathBuf::from("/x/y.sqlite3"), None));
        let origin = format!("{} [Definition] dbfile", d.join("fail2ban.local").display());
        w("fail2ban.local", "[Definition]\ndbfile = :memory:\n");
        assert_eq!(Settings::read(d, None).unwrap().db, Db::Memory(origin.clone()));
        w("fail2ban.local", "[Definition]\ndbfile = None\n");
        assert_eq!(Settings::read(d, None).unwrap().db, Db::Disabled(origin));
        w("fail2ban.local", "[Definition]\ndbfile = %(here)s/f.sqlite3\n");
        let e = Settings::read(d, None).err().unwrap().to_string();
        assert!(e.contains("is `%(here)s/f.sqlite3`, which f2b-notify cannot resolve: pass --db"), "{e}");
    }

    #[test]
    fn a_database_others_could_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _conn) = fail2ban_db(dir.path());
        let err = |p: &Path| trusted(p).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert_eq!(trusted(&path).unwrap(), std::fs::canonicalize(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(err(&path).contains("can be written by others (mode 0666)"), "{}", err(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        // A link of ours to it is followed; a directory others can write is refused.
        let link = dir.path().join("link.sqlite3");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(trusted(&link).is_ok());
        let open_dir = dir.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::copy(&path, open_dir.join("f.sqlite3")).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = err(&open_dir.join("f.sqlite3"));
        assert!(
            e.contains("refusing a database in a directory others control") && e.contains("can be written by others"),
            "{e}"
        );
        let e = err(&dir.path().join("missing.sqlite3"));
        assert!(e.contains("missing.sqlite3: no such file"), "{e}");
        assert!(err(dir.path()).contains("is not a regular file"));
    }

    /// Opens and reads `path` as `report` does, for the error.
    fn read_error(path: &Path, timeout: Duration) -> String {
        let result = open(path, timeout).and_then(|mut c| read(&mut c, path, 0, 0).map(|_| ()));
        format!("{:#}", result.expect_err("an error"))
    }

    #[test]
    fn one_line_naming_the_file_for_each_kind_of_bad_database() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "this is not a database, it is a long enough text file to have a header\n".repeat(4))
            .unwrap();
        assert_eq!(
            read_error(&text, BUSY_TIMEOUT),
            format!("{} is not an SQLite database, so not Fail2Ban's (check dbfile, or --db)", text.display())
        );
        let other = dir.path().join("other.sqlite3");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE t(x);").unwrap();
        assert_eq!(
            read_error(&other, BUSY_TIMEOUT),
            format!("{} is not a Fail2Ban database (it has no `bans` table)", other.display())
        );
        // Held by a writer beyond the timeout.
        let (path, writer) = fail2ban_db(dir.path());
        writer.execute_batch("BEGIN EXCLUSIVE; INSERT INTO jails(name) VALUES('sshd');").unwrap();
        let e = read_error(&path, Duration::from_millis(200));
        assert!(e.starts_with(&format!("{} stayed locked by a writer for more than", path.display())), "{e}");
        writer.execute_batch("COMMIT;").unwrap();
        // Unreadable (as root, every file is readable: then there is nothing to see).
        if rustix::process::geteuid().as_raw() != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o200)).unwrap();
            let e = read_error(&path, BUSY_TIMEOUT);
            assert!(e.starts_with(&format!("{} cannot be read", path.display())), "{e}");
        }
    }

    #[test]
    fn reading_changes_nothing_and_is_safe_while_fail2ban_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        sample(&conn);
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let _ = report_of(&path, &hour(), &day_kept());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["fail2ban.sqlite3"], "nothing created beside it");

        // A writer committing bans one by one, as Fail2Ban does, while reports are read.
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let conn = Connection::open(&writer_path).unwrap();
            conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;").unwrap();
            for i in 0..300 {
                ban(&conn, "stress", &format!("198.18.{}.{}", i / 256, i % 256), NOW - 1, 1);
            }
        });
        let mut last = 0;
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let r = report_of(&path, &hour(), &day_kept());
            assert!(r.bans >= last, "the counts went back: {} after {last}", r.bans);
            // One transaction: the jails add up to the total.
            assert_eq!(r.jails.iter().map(|j| j.bans).sum::<u64>(), r.bans);
            last = r.bans;
            reads += 1;
        }
        writer.join().unwrap();
        assert_eq!(report_of(&path, &hour(), &day_kept()).bans, 7 + 300);
    }

    #[test]
    fn a_database_from_before_fail2ban_0_11_has_no_bancount() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, data JSON);")
            .unwrap();
        conn.execute("INSERT INTO bans VALUES('sshd', '192.0.2.1', ?1, '{}')", [NOW - 5]).unwrap();
        let r = report_of(&path, &hour(), &day_kept());
        assert_eq!((r.bans, r.new_addresses), (1, 1));
    }

    struct FakeLookup;

    impl Lookup for FakeLookup {
        fn country(&self, ip: IpAddr) -> Option<String> {
            match ip {
                IpAddr::V4(v4) if v4.octets()[0] == 198 => Some("NL Netherlands".to_owned()),
                IpAddr::V4(_) => Some("US United States".to_owned()),
                IpAddr::V6(_) => None,
            }
        }
        fn network(&self, ip: IpAddr) -> Option<String> {
            ip.is_ipv4().then(|| "AS64500 EXAMPLE".to_owned())
        }
    }

    #[test]
    fn enrichment_adds_countries_and_networks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = fail2ban_db(dir.path());
        sample(&conn);
        let mut r = report_of(&path, &hour(), &day_kept());
        enrich(&mut r, None);
        assert!(r.countries.is_none() && r.networks.is_none());
        enrich(&mut r, Some(&FakeLookup));
        let g = |name: &str, addresses, bans| Group { name: name.to_owned(), addresses, bans };
        assert_eq!(
            r.countries.as_deref().unwrap(),
            [g("US United States", 3, 3), g("NL Netherlands", 1, 3), g("unknown", 1, 1)]
        );
        assert_eq!(r.networks.as_deref().unwrap(), [g("AS64500 EXAMPLE", 4, 6), g("unknown", 1, 1)]);
        let (_, body) = render_text(&r);
        assert!(body.contains("\ncountries         addresses   bans\nUS United States          3      3\n"), "{body}");
        assert_eq!(serde_json::to_value(&r).unwrap()["networks"][0]["addresses"], 4);
    }
}
