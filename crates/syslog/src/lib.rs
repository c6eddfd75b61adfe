//! The syslog sink: one datagram per event to the system log's Unix socket (`/dev/log`, where
//! journald, rsyslog and syslog-ng listen), in the BSD form every local system log parses
//! (RFC 3164, as the C library's `syslog(3)` writes it) or in RFC 5424 form for a receiver set
//! up to read it.
//!
//! Everything that comes from the event is data: `user` and `matches` come from a log line,
//! `jail` and the id from Fail2Ban's tags. No control character reaches a datagram (each
//! becomes a space), so one event is exactly one line; the RFC 5424 header fields are
//! printable US-ASCII without spaces, cut to the RFC's lengths; structured-data values are
//! escaped. See `format.rs` for the layout and `socket.rs` for the sending and its errors.
//!
//! The router spools this sink's events like a network sink's (the action never writes the
//! system log itself): a system log whose queue is full makes a sender wait, which under
//! Fail2Ban's global lock would hold up every ban, and a spooled route keeps the action's
//! fast path.

mod format;
mod socket;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use f2b_notify_core::{
    async_trait, flatten, truncate_chars, Alert, ConfigError, Digest, Event, EventKind, Renderer, Sink, SinkError,
    Templates,
};
use serde::{Deserialize, Deserializer};

pub use format::{Datagram, MAX_DATAGRAM};
use socket::Connection;

/// Longest `matches` text rendered (characters), as in the stdout sink.
const MAX_MATCHES: usize = 4_000;
/// Longest `user` rendered (characters).
const MAX_USER: usize = 256;
/// The most `timeout` may be: half of Fail2Ban's action timeout, as for the other sinks.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Configuration of a `type = "syslog"` sink.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `authpriv` (default), `auth`, `daemon`, `user`, `local0` … `local7`, `mail`, `lpr`,
    /// `news`, `uucp`, `cron`, `ftp`, `syslog`
    ///
    /// `authpriv` because a ban is a security event whose message may carry user
    /// names and log lines: it is the facility for private security messages, which Debian's
    /// rsyslog writes to the root-only `/var/log/auth.log`, beside sshd's own failures. The
    /// severity follows the event, as in Fail2Ban's own log: `notice` for a ban or an unban,
    /// `info` for a jail start or stop.
    #[serde(default)]
    pub facility: Facility,
    /// program name (journald's `SYSLOG_IDENTIFIER`: `journalctl -t f2b-notify`): 1–32 of
    /// `A-Z a-z 0-9 . _ -`; default `f2b-notify`
    ///
    /// RFC 3164 TAG, RFC 5424 APP-NAME; it starts with a letter or a digit.
    #[serde(default = "default_tag", deserialize_with = "tag")]
    pub tag: String,
    /// the system log's datagram socket, absolute; default `/dev/log` (`F2B_NOTIFY_SYSLOG`
    /// does not move it)
    ///
    /// At most 107 bytes. `F2B_NOTIFY_SYSLOG` moves f2b-notify's own messages about events it
    /// could not keep, not this sink's.
    #[serde(default = "default_socket", deserialize_with = "socket")]
    pub socket: PathBuf,
    /// `rfc3164` (default): `<PRI>TAG[PID]: MESSAGE`, what journald and rsyslog parse on
    /// `/dev/log`; `rfc5424`: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MESSAGE`
    ///
    /// `rfc3164` is the form the C library's `syslog(3)` writes to `/dev/log` (no time stamp
    /// and no host name: the system log adds its own). `rfc5424`: `<PRI>1 TIMESTAMP HOSTNAME
    /// APP-NAME PROCID MSGID STRUCTURED-DATA MESSAGE`, with the event's own time (UTC, to the
    /// microsecond), the host name, the event kind (`ban`, `unban`, `start`, `stop`) as MSGID
    /// and `sd_id`'s fields; for a receiver that reads RFC 5424 on this socket (an rsyslog
    /// `imuxsock` input with `useSpecialParser="off"`, which still files messages by their
    /// arrival time unless `ignoreTimestamp="off"`; syslog-ng with `flags(syslog-protocol)`).
    /// journald and rsyslog's default `/dev/log` input do not read it: they keep the whole
    /// line, header and all, as the message, under the program name `1`.
    #[serde(default)]
    pub format: Format,
    /// `rfc5424` only: `NAME@PEN` (your IANA enterprise number); adds `[NAME@PEN jail=… id=…
    /// failures=… bantime=… restored=… user=… hostname=… country_code=… asn=… …]`
    ///
    /// The SD-ID of one structured-data element carrying the event's fields for machines
    /// (`jail`, `id`, `failures`, `bantime`, `restored`, `user`, and what `[enrich]` found and
    /// Fail2Ban's ban count: `hostname`, `hostname_confirmed` (`1` or `0`), `country`,
    /// `country_code`, `city`, `asn`, `as_org`, `bancount`; each only when known), written
    /// `NAME@PEN` with your
    /// organisation's IANA Private Enterprise Number, for example `fail2ban@32473` (32473 is
    /// the number reserved for documentation). Default: none (STRUCTURED-DATA is `-`; the
    /// fields are only in the message text).
    #[serde(default, deserialize_with = "sd_id")]
    pub sd_id: Option<String>,
    /// seconds to wait while the system log's queue is full, default 5, at most 30
    ///
    /// The system log is not reading: after this long the event is retried later. More than 0.
    #[serde(default = "default_timeout", deserialize_with = "timeout")]
    #[schemars(with = "f64")]
    pub timeout: Duration,
    /// the message text per event, flattened to one line
    #[serde(default)]
    pub templates: Templates,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            facility: Facility::default(),
            tag: default_tag(),
            socket: default_socket(),
            format: Format::default(),
            sd_id: None,
            timeout: default_timeout(),
            templates: Templates::default(),
        }
    }
}

fn default_tag() -> String {
    "f2b-notify".to_owned()
}

fn default_socket() -> PathBuf {
    PathBuf::from("/dev/log")
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A value for an error message: one line, and short (the value may be anything).
fn shown(value: &str) -> String {
    truncate_chars(&flatten(value), 64).into_owned()
}

fn tag<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let tag = String::deserialize(d)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (1..=32).contains(&tag.len()) && tag.chars().all(allowed) && tag.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        Ok(tag)
    } else {
        Err(serde::de::Error::custom(format!(
            "`tag` `{}` must be 1 to 32 of A-Z, a-z, 0-9, `.`, `_` and `-`, starting with a letter or a digit",
            shown(&tag)
        )))
    }
}

fn socket<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(d)?;
    let bad = |why: &str| serde::de::Error::custom(format!("`socket` `{}` {why}", shown(&path.to_string_lossy())));
    if !path.is_absolute() {
        // The worker runs in `/`, `test` wherever it is started: a relative path would name
        // two different sockets.
        return Err(bad("must be an absolute path"));
    }
    // A Unix socket address holds 108 bytes, the final NUL included.
    if path.as_os_str().len() > 107 {
        return Err(bad("is longer than a Unix socket path may be (107 bytes)"));
    }
    Ok(path)
}

fn sd_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = String::deserialize(d)?;
    if format::valid_sd_id(&id) {
        Ok(Some(id))
    } else {
        Err(serde::de::Error::custom(format!(
            "`sd_id` `{}` must be NAME@PEN (at most 32 printable characters without space, `=`, `]` or `\"`; \
             PEN your organisation's enterprise number), for example `fail2ban@32473`",
            shown(&id)
        )))
    }
}

fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    if secs > 0.0 && secs <= MAX_TIMEOUT.as_secs_f64() {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(serde::de::Error::custom(format!(
            "`timeout` = {secs} must be more than 0 and at most {} seconds",
            MAX_TIMEOUT.as_secs()
        )))
    }
}

/// The syslog facilities a program may use (the kernel's, 0, is left out: the system log
/// would file it as `user`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)] // the names are syslog's own
pub enum Facility {
    User = 1,
    Mail = 2,
    Daemon = 3,
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    #[default]
    Authpriv = 10,
    Ftp = 11,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

impl Facility {
    /// The facility's number, as in PRI (`facility * 8 + severity`).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The severity of an event's message, as Fail2Ban logs it: bans and unbans are `notice`
/// (5), jail starts and stops `info` (6).
pub fn severity(kind: EventKind) -> u8 {
    match kind {
        EventKind::Ban | EventKind::Unban => 5,
        EventKind::Start | EventKind::Stop => 6,
    }
}

/// How a message is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `<PRI>TAG[PID]: MESSAGE`: what every local system log parses on `/dev/log`.
    #[default]
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MESSAGE`.
    Rfc5424,
}

/// A built syslog sink.
#[derive(Debug)]
pub struct SyslogSink {
    name: String,
    config: Config,
    renderer: Renderer,
}

impl SyslogSink {
    /// Builds the sink; a bad template, or `sd_id` without `format = "rfc5424"`, is reported
    /// now.
    pub fn new(name: impl Into<String>, config: Config) -> Result<Self, ConfigError> {
        if config.sd_id.is_some() && config.format != Format::Rfc5424 {
            return Err(ConfigError::new(
                "`sd_id` needs `format = \"rfc5424\"`: RFC 3164 messages have no structured data",
            ));
        }
        let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
        Ok(Self { name: name.into(), config, renderer })
    }

    /// The datagram this sink sends for `event` from process `pid` at `now` (the RFC 5424
    /// time stamp when the event has no time of its own).
    pub fn datagram(&self, event: &Event, pid: u32, now: SystemTime) -> Result<Datagram, SinkError> {
        let event = event.capped(MAX_MATCHES, MAX_USER);
        let mut text = self.renderer.render_plain(&event).map_err(|e| SinkError::permanent(e.to_string()))?;
        // What enrichment found goes on the message's one line: RFC 3164 has no other place
        // for it (RFC 5424's structured data has it too, field by field).
        if let Some(note) = format::context_note(&event) {
            text.push(' ');
            text.push_str(&note);
        }
        let pri = self.config.facility.code() * 8 + severity(event.kind);
        Ok(match self.config.format {
            Format::Rfc3164 => Datagram::rfc3164(pri, &self.config.tag, pid, &text),
            Format::Rfc5424 => {
                Datagram::rfc5424(pri, &event, &self.config.tag, pid, now, self.config.sd_id.as_deref(), &text)
            }
        })
    }

    /// The datagram for an alert about another sink: severity `err` (notifications are not
    /// getting through), `notice` when it says that one recovered; the subject and the
    /// details on one line.
    pub fn alert_datagram(&self, alert: &Alert, pid: u32, now: SystemTime) -> Datagram {
        let severity = if alert.recovered { 5 } else { 3 };
        let pri = self.config.facility.code() * 8 + severity;
        let text = format!("{}: {}", alert.subject, alert.text.replace('\n', "; "));
        match self.config.format {
            Format::Rfc3164 => Datagram::rfc3164(pri, &self.config.tag, pid, &text),
            Format::Rfc5424 => Datagram::rfc5424_alert(pri, &kernel_host_name(), &self.config.tag, pid, now, &text),
        }
    }

    fn connect(&self) -> Result<Connection, SinkError> {
        Connection::open(&self.config.socket, self.config.timeout)
    }
}

#[async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "syslog"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let datagram = self.datagram(event, std::process::id(), SystemTime::now())?;
        self.connect()?.send(&datagram).await
    }

    /// A log keeps one record per event: a digest is one datagram per event, in order, so
    /// that every ban can be searched and counted like any other. Every datagram is built
    /// before the first is sent; if the system log fails part-way, the router sends the whole
    /// batch again later, and the events before the failure appear twice.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        let (pid, now) = (std::process::id(), SystemTime::now());
        let datagrams =
            digest.events.iter().map(|e| self.datagram(e, pid, now)).collect::<Result<Vec<_>, SinkError>>()?;
        let connection = self.connect()?;
        for datagram in &datagrams {
            connection.send(datagram).await?;
        }
        Ok(())
    }

    /// A socket that is not there now is worth a word: events wait for it.
    fn check(&self) -> Vec<String> {
        check_socket(&self.config.socket).into_iter().collect()
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        let datagram = self.alert_datagram(alert, std::process::id(), SystemTime::now());
        self.connect()?.send(&datagram).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    /// The datagram as it would be sent now by this process (the worker's own PID and clock
    /// go into the real one).
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let datagram = self.datagram(event, std::process::id(), SystemTime::now())?;
        let bytes = datagram.bytes(MAX_DATAGRAM);
        Ok(format!(
            "a datagram to {} ({} bytes):\n{}",
            self.config.socket.display(),
            bytes.len(),
            String::from_utf8_lossy(&bytes)
        ))
    }
}

/// The kernel's host name, for an alert's HOSTNAME (an alert carries no event, and so no
/// configured `host`); empty (written `-`) when there is none.
fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

fn check_socket(path: &Path) -> Option<String> {
    let p = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => None,
        Ok(_) => Some(format!("`socket` {p} is not a socket: every event will be set aside")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("`socket` {p} does not exist now: events wait for a system log there"))
        }
        Err(e) => Some(format!("`socket` {p}: {e}")),
    }
}

#[cfg(test)]
mod tests;

/// Builds the sink `name` from its config: what the router's registry calls for every sink
/// type (`f2b_notify_<type>::new`).
pub fn new(name: &str, config: Config) -> Result<SyslogSink, ConfigError> {
    SyslogSink::new(name, config)
}
