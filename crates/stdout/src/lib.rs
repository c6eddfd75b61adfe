//! The stdout sink: one line per event, as text or as a JSON object, written to stdout or
//! appended to a file.
//!
//! Fail2Ban reads an action's stdout only after the process exits, through a pipe: more than
//! about 64 KiB deadlocks the action until its timeout. So every line is capped far below that
//! (the attacker-controlled `matches` and `user` first).

use std::io::Write;
use std::path::PathBuf;

use f2b_notify_core::{
    async_trait, flatten, truncate_chars, Alert, ConfigError, Context, Digest, Event, Renderer, Sink, SinkError,
    Templates,
};
use serde::Deserialize;

/// Longest `matches` text written (characters).
const MAX_MATCHES: usize = 4_000;
/// Longest `user` written (characters).
const MAX_USER: usize = 256;
/// Longest whole line (characters): far under Fail2Ban's 64 KiB pipe.
const MAX_LINE: usize = 8_000;

/// Configuration of a `type = "stdout"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `text` (the message, one line per event; default) or `json` (one object per line with
    /// every field and `message`)
    #[serde(default)]
    pub format: Format,
    /// append to this file instead of stdout (created with mode 0600: its lines hold
    /// attackers' log text)
    ///
    /// The action writes it itself, in queue mode too. The package rotates files in
    /// `/var/log/f2b-notify/` (its logrotate rule); a file elsewhere needs a rule of its own.
    pub path: Option<PathBuf>,
    /// minijinja template for that event's text
    ///
    /// `[sinks.NAME.templates] ban = "…"`; an event without one uses the default text.
    #[serde(default)]
    pub templates: Templates,
}

/// How each event is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The rendered message text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A built stdout sink.
#[derive(Debug)]
pub struct StdoutSink {
    name: String,
    config: Config,
    renderer: Renderer,
}

impl StdoutSink {
    /// Builds the sink; a bad template is reported now.
    pub fn new(name: impl Into<String>, config: Config) -> Result<Self, ConfigError> {
        let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
        Ok(Self { name: name.into(), config, renderer })
    }

    /// The line this sink writes for `event`, without the newline.
    pub fn line(&self, event: &Event) -> Result<String, SinkError> {
        let event = event.capped(MAX_MATCHES, MAX_USER);
        let message = self.renderer.render_plain(&event).map_err(|e| SinkError::permanent(e.to_string()))?;
        let line = match self.config.format {
            // One event, one line: control characters (a newline from a template or a log
            // line) must not forge a second line. What enrichment found ends it.
            Format::Text => match context_note(&event) {
                Some(note) => flatten(&format!("{message} {note}")),
                None => flatten(&message),
            },
            Format::Json => {
                // What enrichment found as keys of the line itself (`hostname`, `country`,
                // `asn`, …), like every other field, instead of the event's nested `context`;
                // left out when unknown, like `user`.
                #[derive(serde::Serialize)]
                struct Line<'a> {
                    #[serde(flatten)]
                    event: &'a Event,
                    #[serde(flatten)]
                    context: &'a Context,
                    message: &'a str,
                }
                let mut event = event;
                // (Borrowed as it is when there is nothing to move: an empty context is no key.)
                let context = if event.context.is_empty() {
                    Context::default()
                } else {
                    std::mem::take(&mut event.to_mut().context)
                };
                serde_json::to_string(&Line { event: &event, context: &context, message: &message })
                    .map_err(|e| SinkError::permanent(format!("cannot encode JSON: {e}")))?
            }
        };
        Ok(truncate_chars(&line, MAX_LINE).into_owned())
    }
}

#[async_trait]
impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "stdout"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let mut line = self.line(event)?;
        line.push('\n');
        self.write(&line)
    }

    /// One line, like an event's: `f2b-notify alert: SUBJECT: TEXT` (JSON: an object with
    /// `alert`, `text` and `recovered`).
    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        let line = match self.config.format {
            Format::Text => {
                flatten(&format!("f2b-notify alert: {}: {}", alert.subject, alert.text.replace('\n', "; ")))
            }
            Format::Json => {
                serde_json::json!({ "alert": alert.subject, "text": alert.text, "recovered": alert.recovered })
                    .to_string()
            }
        };
        let mut line = truncate_chars(&line, MAX_LINE).into_owned();
        line.push('\n');
        self.write(&line)
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let to = match &self.config.path {
            Some(p) => format!("appended to {}", p.display()),
            None => "written to stdout".to_owned(),
        };
        Ok(format!("a line {to}:\n{}", self.line(event)?))
    }

    /// A log keeps every event: a digest is written as its events' lines, in one write.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        let mut text = String::new();
        for event in &digest.events {
            text.push_str(&self.line(event)?);
            text.push('\n');
        }
        self.write(&text)
    }
}

/// What enrichment found, for the end of a text line: `[Host name: h.example (unconfirmed);
/// Location: Tokyo, Japan (JP); Network: AS64500 Example Net]`; `None` when nothing was found.
/// The repeat is left out: the default text says it already ("the 4th time").
fn context_note(event: &Event) -> Option<String> {
    let found: Vec<String> = event
        .context_fields()
        .into_iter()
        .filter(|(label, _)| *label != "Repeat")
        .map(|(label, value)| format!("{label}: {value}"))
        .collect();
    (!found.is_empty()).then(|| format!("[{}]", found.join("; ")))
}

impl StdoutSink {
    /// One write call per batch of lines, so concurrent writers appending to one file do not
    /// interleave inside a line. A file it creates is mode 0600: its lines hold attackers'
    /// user names and log text and the addresses under attack, which are not for every local
    /// user (an existing file keeps its mode).
    fn write(&self, text: &str) -> Result<(), SinkError> {
        match &self.config.path {
            Some(path) => private(std::fs::OpenOptions::new().create(true).append(true))
                .open(path)
                .and_then(|mut f| {
                    // Root appends here: only to a regular file (a FIFO someone planted would
                    // block the action under Fail2Ban's lock; a device is no log).
                    if !f.metadata()?.is_file() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "not a regular file: refusing to write to it",
                        ));
                    }
                    f.write_all(text.as_bytes())
                })
                .map_err(|e| classify_io(&format!("cannot append to {}", path.display()), e)),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| classify_io("cannot write to stdout", e))
            }
        }
    }
}

/// A full disk or a busy file may clear up; a missing directory or a permission problem
/// will not without someone fixing the config.
fn classify_io(what: &str, e: std::io::Error) -> SinkError {
    use std::io::ErrorKind::*;
    let message = format!("{what}: {e}");
    // A symbolic link (ELOOP with O_NOFOLLOW) or a FIFO nobody reads (ENXIO) stays so.
    let refused = [linux_raw_sys::errno::ELOOP, linux_raw_sys::errno::ENXIO];
    if e.raw_os_error().is_some_and(|n| refused.iter().any(|r| *r as i32 == n)) {
        return SinkError::permanent(message);
    }
    match e.kind() {
        NotFound | PermissionDenied | IsADirectory | InvalidInput | BrokenPipe => SinkError::permanent(message),
        _ => SinkError::transient(message),
    }
}

/// Creates files with mode 0600.
#[cfg(unix)]
fn private(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    // Never through a symbolic link (someone who can write the directory could point it at a
    // root-owned file), and never waiting to open (a FIFO): the action runs under
    // Fail2Ban's global lock.
    let flags = linux_raw_sys::general::O_NOFOLLOW | linux_raw_sys::general::O_NONBLOCK;
    options.mode(0o600).custom_flags(flags as i32)
}

/// Elsewhere files get the system's default permissions.
#[cfg(not(unix))]
fn private(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    options
}

/// Builds the sink `name` from its config: what the router's registry calls for every sink
/// type (`f2b_notify_<type>::new`).
pub fn new(name: &str, config: Config) -> Result<StdoutSink, ConfigError> {
    StdoutSink::new(name, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use f2b_notify_core::EventKind;

    fn hostile_ban() -> Event {
        let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host");
        e.failures = Some(3);
        e.user = Some("--help\n<!channel>".into());
        e.matches = Some("x".repeat(1_000_000));
        e
    }

    #[tokio::test]
    async fn json_lines_appended_to_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let sink = StdoutSink::new(
            "console",
            Config { format: Format::Json, path: Some(path.clone()), templates: Templates::default() },
        )
        .unwrap();
        sink.send(&hostile_ban()).await.unwrap();
        sink.send(&Event::jail_event(EventKind::Stop, "sshd", "host")).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["kind"], "ban");
        assert_eq!(first["id"], "203.0.113.7");
        assert_eq!(first["user"], "--help\n<!channel>");
        assert_eq!(first["message"], "Fail2Ban (sshd) banned IP 203.0.113.7 for 3 failure(s)");
        assert!(lines[0].len() < 16 * 1024, "line is {} bytes", lines[0].len());
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["kind"], "stop");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Created for the owner alone; a file that was there keeps the mode it had.
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            let shared = dir.path().join("shared.log");
            std::fs::write(&shared, "").unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
            let sink = StdoutSink::new("c", Config { path: Some(shared.clone()), ..Config::default() }).unwrap();
            sink.send(&hostile_ban()).await.unwrap();
            assert_eq!(std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777, 0o640);
        }
    }

    #[test]
    fn text_is_one_line_and_capped() {
        let t = Templates { ban: Some("{{ user }} {{ matches }}".into()), ..Templates::default() };
        let sink = StdoutSink::new("c", Config { templates: t, ..Config::default() }).unwrap();
        let line = sink.line(&hostile_ban()).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("--help <!channel> xxx"));
        assert!(line.chars().count() <= MAX_LINE);
        assert!(line.contains("[cut "));
    }

    #[tokio::test]
    async fn a_cr_lf_in_the_id_fakes_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
        let t = Templates { unban: Some("{{ jail }} {{ host }} {{ id }} {{ user }}".into()), ..Templates::default() };
        let sink =
            StdoutSink::new("c", Config { path: Some(path.clone()), templates: t, ..Config::default() }).unwrap();
        let ban = Event::target_event(EventKind::Ban, "sshd", evil, "h");
        let mut unban = Event::target_event(EventKind::Unban, "sshd\nFAKE", evil, "h\rFAKE");
        unban.user = Some("root\r\nFAKE".into());
        sink.send(&ban).await.unwrap();
        sink.send_digest(&Digest::new(vec![ban.clone(), unban])).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 4, "three lines and the final newline: {text:?}");
        assert!(!text.contains('\r') && !lines.iter().any(|l| l.starts_with("FAKE")), "{text:?}");
        assert_eq!(lines[0], "Fail2Ban (sshd) banned 198.51.100.1  FAKE LINE: banned 10.0.0.1 (not an IP address)");
        assert_eq!(lines[2], "sshd FAKE h FAKE 198.51.100.1  FAKE LINE: banned 10.0.0.1 root  FAKE");
        // JSON keeps the id exactly, escaped inside one line.
        let json = StdoutSink::new("j", Config { format: Format::Json, ..Config::default() }).unwrap();
        let line = json.line(&ban).unwrap();
        assert!(!line.contains(['\r', '\n']));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap()["id"], evil);
    }

    #[tokio::test]
    async fn a_digest_keeps_every_event_as_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let sink = StdoutSink::new("c", Config { path: Some(path.clone()), ..Config::default() }).unwrap();
        let events: Vec<Event> =
            (0..3).map(|i| Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h")).collect();
        sink.send_digest(&Digest::new(events)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "Fail2Ban (sshd) banned IP 192.0.2.0\nFail2Ban (sshd) banned IP 192.0.2.1\nFail2Ban (sshd) banned IP 192.0.2.2\n"
        );
    }

    /// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
    fn enriched(mut e: Event) -> Event {
        e.bancount = Some(4);
        e.context = Context::example();
        e
    }

    #[test]
    fn what_enrichment_found_ends_the_text_line_and_is_flat_in_json() {
        let ban = enriched(Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host"));
        let text = StdoutSink::new("c", Config::default()).unwrap();
        assert_eq!(
            text.line(&ban).unwrap(),
            "Fail2Ban (sshd) banned IP 203.0.113.7, the 4th time [Host name: h.example (unconfirmed); \
             Location: Tokyo, Japan (JP); Network: AS64500 Example Net]"
        );
        let json = StdoutSink::new("j", Config { format: Format::Json, ..Config::default() }).unwrap();
        let line = json.line(&ban).unwrap();
        assert_eq!(
            line,
            r#"{"kind":"ban","jail":"sshd","id":"203.0.113.7","ip":"203.0.113.7","restored":false,"host":"host","bancount":4,"hostname":"h.example","hostname_confirmed":false,"country":"Japan","country_code":"JP","city":"Tokyo","asn":64500,"as_org":"Example Net","message":"Fail2Ban (sshd) banned IP 203.0.113.7, the 4th time"}"#
        );
        // Only what is known; nothing at all when nothing was found, as before.
        let mut some = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host");
        some.context.asn = Some(64500);
        let v: serde_json::Value = serde_json::from_str(&json.line(&some).unwrap()).unwrap();
        assert_eq!(v["asn"], 64500);
        assert!(v.get("context").is_none() && v.get("hostname").is_none() && v.get("country").is_none(), "{v}");
        assert_eq!(text.line(&some).unwrap(), "Fail2Ban (sshd) banned IP 203.0.113.7 [Network: AS64500]");
        some.context = Context::default();
        assert_eq!(
            json.line(&some).unwrap(),
            r#"{"kind":"ban","jail":"sshd","id":"203.0.113.7","ip":"203.0.113.7","restored":false,"host":"host","message":"Fail2Ban (sshd) banned IP 203.0.113.7"}"#
        );
    }

    #[test]
    fn a_hostile_context_adds_no_line() {
        let mut ban = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host");
        ban.context.hostname = Some("ptr\r\nFAKE LINE: banned 10.0.0.1 <!channel>".into());
        ban.context.as_org = Some("org\nFAKE ORG \u{1b}[31m".into());
        ban.context.asn = Some(1);
        let text = StdoutSink::new("c", Config::default()).unwrap();
        let line = text.line(&ban).unwrap();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.ends_with("[Host name: ptr  FAKE LINE: banned 10.0.0.1 <!channel>; Network: AS1 org FAKE ORG  [31m]"),
            "{line}"
        );
        let json = StdoutSink::new("j", Config { format: Format::Json, ..Config::default() }).unwrap();
        let line = json.line(&ban).unwrap();
        assert!(!line.contains(['\r', '\n']), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["hostname"], "ptr\r\nFAKE LINE: banned 10.0.0.1 <!channel>", "JSON keeps the value exactly");
    }

    #[tokio::test]
    async fn missing_directory_is_permanent() {
        let sink =
            StdoutSink::new("c", Config { path: Some("/nonexistent-dir/x/out".into()), ..Config::default() }).unwrap();
        let err = sink.send(&hostile_ban()).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(err.to_string().contains("/nonexistent-dir/x/out"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_a_fifo_or_a_directory_at_the_path_is_refused_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("root-only");
        std::fs::write(&target, "untouched\n").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo.log");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for path in [link, fifo, dir.path().to_path_buf()] {
            let sink = StdoutSink::new("file", Config { path: Some(path.clone()), ..Config::default() }).unwrap();
            let err = sink.send(&hostile_ban()).await.unwrap_err();
            assert!(err.is_permanent(), "{}: {err}", path.display());
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    }
}
