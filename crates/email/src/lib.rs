//! The email sink: one message per event, over SMTP (lettre's async transport: plain,
//! STARTTLS, implicit TLS, AUTH PLAIN/LOGIN) or through a local `sendmail` binary.
//!
//! Fail2Ban's own mail actions need a local MTA and have no timeout; this sink needs neither
//! and always has a timeout. Values that come from the log (user, matched lines) go only into
//! the body, never into a header; the subject is rendered without them and stripped of
//! control characters, so a newline in a jail or host name cannot inject a header either.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use f2b_notify_core::OneOrMany;
use f2b_notify_core::{
    async_trait, is_loopback_host, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError,
    Templates,
};
use lettre::message::MessageBuilder;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Deserializer};

mod body;
#[cfg(test)]
mod tests;

/// Default time one delivery may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a config may ask for: half of Fail2Ban's 60 s action timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Configuration of a `type = "email"` sink. Give exactly one of `url` and `sendmail`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `smtp://host:25` (no TLS), `smtp://host:587?tls=required` (STARTTLS;
    /// `tls=opportunistic` too), `smtps://host:465` (implicit TLS); no credentials in it
    ///
    /// The SMTP server; credentials go in `username` and `password`. `smtp://localhost:25`
    /// reaches a local MTA from inside the packaged service's sandbox as it is.
    pub url: Option<String>,
    /// instead of `url`: path of a sendmail-compatible binary
    ///
    /// For example `/usr/sbin/sendmail`. The packaged service's sandbox does not let a local
    /// MTA's sendmail queue the mail: with the service, use the drop-in
    /// `/usr/share/doc/f2b-notify/examples/sendmail.conf`, or `url = "smtp://localhost:25"`.
    pub sendmail: Option<PathBuf>,
    /// SMTP AUTH user name (PLAIN or LOGIN, as the server offers)
    pub username: Option<String>,
    /// SMTP AUTH password, a secret: inline or `F2B_NOTIFY_SINKS__NAME__PASSWORD`; or
    /// `password_file`
    #[serde(default, deserialize_with = "password")]
    pub password: Option<Secret>,
    /// a file holding the SMTP password (mode 0600; `check` warns when others can read it)
    pub password_file: Option<PathBuf>,
    /// an extra CA certificate (PEM) to trust, for a relay with a private CA
    pub ca_file: Option<PathBuf>,
    /// seconds one delivery may take, default 10, at most 30; covers a server that never
    /// greets, and sendmail
    pub timeout: Option<f64>,
    /// required: the sender, like `Fail2Ban <fail2ban@example.com>`
    pub from: Option<String>,
    /// required: the recipients, one address or a list
    #[serde(default)]
    pub to: OneOrMany,
    /// copy recipients, one address or a list
    #[serde(default)]
    pub cc: OneOrMany,
    /// where replies go
    pub reply_to: Option<String>,
    /// subject template; default `[Fail2Ban] sshd: banned 203.0.113.7 from host.example`
    ///
    /// minijinja; `user` and `matches` are empty here: log text never reaches a header. Nor
    /// does the PTR name (`hostname`, and `context` leaves it out), which whoever owns the
    /// banned address's reverse zone wrote; `country`, `country_code`, `asn` and `as_org` are
    /// there.
    pub subject: Option<String>,
    /// also send an HTML alternative (default false: plain text only)
    #[serde(default)]
    pub html: bool,
    /// the body's first line per event (minijinja)
    #[serde(default)]
    pub templates: Templates,
}

/// `password` is a secret: a value of the wrong type is an error naming the key, never the
/// value.
fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "password")
}

#[derive(Debug)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Sendmail(AsyncSendmailTransport<Tokio1Executor>),
}

/// A built email sink.
#[derive(Debug)]
pub struct EmailSink {
    name: String,
    transport: Transport,
    password_source: Option<SecretSource>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    reply_to: Option<Mailbox>,
    subject: Renderer,
    body: Renderer,
    html: bool,
    timeout: Duration,
    /// `check`'s warning when the password would cross the network unencrypted.
    cleartext: Option<String>,
}

fn address(key: &str, value: &str) -> Result<Mailbox, ConfigError> {
    Mailbox::from_str(value.trim()).map_err(|e| {
        let why = address_problem(key, value.trim()).unwrap_or_else(|| e.to_string().to_lowercase());
        ConfigError::new(format!("`{key}` = {value:?} is not an email address: {why}"))
    })
}

/// What is wrong with an address lettre refused, in words: lettre's own error is most often
/// just "Invalid input". `None` when none of the usual mistakes explains it.
fn address_problem(key: &str, value: &str) -> Option<String> {
    const LIKE: &str = "write `ops@example.com` or `Ops <ops@example.com>`";
    if value.is_empty() {
        return Some(format!("it is empty; {LIKE}"));
    }
    if value.chars().any(char::is_control) {
        return Some("it holds a line break or another control character".to_owned());
    }
    let several = if matches!(key, "to" | "cc") {
        format!("it holds more than one address: give a list, `{key} = [\"a@example.com\", \"b@example.com\"]`")
    } else {
        format!("it holds more than one address; `{key}` takes one")
    };
    if value.contains([',', ';']) || value.matches('@').count() > 1 && value.split_whitespace().count() > 1 {
        return Some(several);
    }
    let spec = match (value.find('<'), value.rfind('>')) {
        (None, None) => value,
        (Some(open), Some(close))
            if open < close && value.matches('<').count() == 1 && value.matches('>').count() == 1 =>
        {
            if !value[close + 1..].trim().is_empty() {
                return Some(format!("there is text after the `>`; {LIKE}"));
            }
            &value[open + 1..close]
        }
        _ => return Some(format!("its angle brackets do not pair up; {LIKE}")),
    };
    if let Some((user, _)) = spec.rsplit_once('@').filter(|(user, _)| user.contains('"')) {
        return Some(format!("the part before the `@` (`{user}`) is not valid: quoted names are not supported"));
    }
    if spec.contains(char::is_whitespace) {
        return Some(if !value.contains('<') && value.rsplit(' ').next().is_some_and(|w| w.contains('@')) {
            "a name goes before the address in angle brackets: `Ops Team <ops@example.com>`".to_owned()
        } else {
            format!("it holds a space; {LIKE}")
        });
    }
    let Some((user, domain)) = spec.split_once('@') else {
        return Some(format!("it has no `@`; {LIKE}"));
    };
    Some(if domain.contains('@') {
        "it has more than one `@`".to_owned()
    } else if user.is_empty() {
        "there is nothing before the `@`".to_owned()
    } else if domain.is_empty() {
        "there is no domain after the `@`".to_owned()
    } else if domain.starts_with('[') {
        "an address literal (`[192.0.2.1]`) is not supported: use a host name".to_owned()
    } else if domain.starts_with(['.', '-']) || domain.ends_with(['.', '-']) || domain.contains("..") {
        format!("the domain `{domain}` is not a host name (a dot or hyphen at an end, or two dots in a row)")
    } else if user.starts_with('.') || user.ends_with('.') || user.contains("..") {
        format!("the part before the `@` (`{user}`) is not valid: a dot at an end or two dots in a row")
    } else {
        return None;
    })
}

impl EmailSink {
    /// Builds the sink: checks every address, the URL, the TLS settings and the templates
    /// now, so `check` names what is wrong.
    pub fn new(name: impl Into<String>, config: Config) -> Result<Self, ConfigError> {
        let from = address("from", config.from.as_deref().ok_or_else(|| ConfigError::new("missing `from`"))?)?;
        let to = config.to.list().into_iter().map(|a| address("to", a)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(ConfigError::new("missing `to` (one address or a list)"));
        }
        let cc = config.cc.list().into_iter().map(|a| address("cc", a)).collect::<Result<Vec<_>, _>>()?;
        let reply_to = config.reply_to.as_deref().map(|a| address("reply_to", a)).transpose()?;
        let timeout = match config.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) if t > 0.0 && t <= MAX_TIMEOUT.as_secs_f64() => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(ConfigError::new(format!(
                    "`timeout` = {t} must be more than 0 and at most {} seconds",
                    MAX_TIMEOUT.as_secs()
                )))
            }
        };
        // One subject template serves every event kind (it can test `kind` itself).
        let subject_source = config.subject.clone().unwrap_or_else(|| body::DEFAULT_SUBJECT.to_owned());
        let subject_templates = Templates {
            start: Some(subject_source.clone()),
            stop: Some(subject_source.clone()),
            ban: Some(subject_source.clone()),
            unban: Some(subject_source),
        };
        let subject = Renderer::new(&subject_templates).map_err(|e| ConfigError::new(format!("`subject`: {e}")))?;
        let body = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;

        let password_source = match (&config.password, &config.password_file) {
            (None, None) => None,
            _ => Some(SecretSource::from_pair("password", config.password.clone(), config.password_file.clone())?),
        };
        let mut cleartext = None;
        let transport = match (&config.url, &config.sendmail) {
            (Some(url), None) => {
                let (transport, warning) = smtp(url, &config, password_source.as_ref(), timeout)?;
                cleartext = warning;
                Transport::Smtp(transport)
            }
            (None, Some(path)) => {
                if config.username.is_some() || password_source.is_some() || config.ca_file.is_some() {
                    return Err(ConfigError::new("`username`, `password` and `ca_file` go with `url`, not `sendmail`"));
                }
                Transport::Sendmail(AsyncSendmailTransport::<Tokio1Executor>::new_with_command(path))
            }
            (Some(_), Some(_)) => return Err(ConfigError::new("give either `url` (SMTP) or `sendmail`, not both")),
            (None, None) => {
                return Err(ConfigError::new("missing `url` (an smtp:// or smtps:// URL) or `sendmail` (a path)"))
            }
        };
        Ok(Self {
            name: name.into(),
            transport,
            password_source,
            from,
            to,
            cc,
            reply_to,
            subject,
            body,
            html: config.html,
            timeout,
            cleartext,
        })
    }

    /// From, To, Cc, Reply-To, Subject, Message-ID: what every mail of this sink has.
    fn headers(&self, subject: String, message_id: String) -> MessageBuilder {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id))
            .user_agent(concat!("f2b-notify/", env!("CARGO_PKG_VERSION")).to_owned());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        builder
    }

    /// One mail for a digest: the title as subject, every address in the body.
    pub fn digest_message(&self, digest: &Digest) -> Result<Message, SinkError> {
        let subject = body::header_safe(&format!("[Fail2Ban] {}: {}", digest.host(), digest.summary()));
        let mut text = digest.plain_text();
        text.push_str("\n-- \nsent by f2b-notify\n");
        self.headers(subject, body::message_id("digest", &self.from))
            .singlepart(SinglePart::plain(text))
            .map_err(|e| SinkError::permanent(format!("cannot build the message: {e}")))
    }

    /// The mail for an alert about f2b-notify itself: its subject (header-safe: the alert
    /// quotes remote error text) and its text.
    pub fn alert_message(&self, alert: &Alert) -> Result<Message, SinkError> {
        let subject = body::header_safe(&format!("[f2b-notify] {}", alert.subject));
        let mut text = alert.text.clone();
        text.push_str("\n-- \nsent by f2b-notify\n");
        self.headers(subject, body::message_id("alert", &self.from))
            .singlepart(SinglePart::plain(text))
            .map_err(|e| SinkError::permanent(format!("cannot build the message: {e}")))
    }

    /// The message for `event`.
    pub fn message(&self, event: &Event) -> Result<Message, SinkError> {
        // The subject sees no log text: a header is no place for attacker input. Nor the PTR
        // name, which whoever owns the address's reverse zone wrote (`context` then leaves it
        // out too); the country and network stay, for a subject that wants them.
        let mut header_event = event.clone();
        header_event.user = None;
        header_event.matches = None;
        header_event.context.hostname = None;
        header_event.context.hostname_confirmed = None;
        let subject = self.subject.render_plain(&header_event).map_err(|e| SinkError::permanent(e.to_string()))?;
        let subject = body::header_safe(&subject);
        let lead = self.body.render_plain(event).map_err(|e| SinkError::permanent(e.to_string()))?;
        let text = body::plain(event, &lead);

        let builder = self
            .headers(subject, body::message_id(event.kind.as_str(), &self.from))
            .in_reply_to(body::thread_id(event, &self.from))
            .references(body::thread_id(event, &self.from));
        let built = if self.html {
            builder.multipart(MultiPart::alternative_plain_html(text, body::html(event, &lead)))
        } else {
            builder.singlepart(SinglePart::plain(text))
        };
        built.map_err(|e| SinkError::permanent(format!("cannot build the message: {e}")))
    }
}

/// Sets up the SMTP transport from the URL; with it, `check`'s warning when the password
/// would cross the network unencrypted (lettre sends AUTH over a plain connection when told
/// to, and `tls=opportunistic` falls back to one if a man in the middle strips STARTTLS).
fn smtp(
    url: &str,
    config: &Config,
    password: Option<&SecretSource>,
    timeout: Duration,
) -> Result<(AsyncSmtpTransport<Tokio1Executor>, Option<String>), ConfigError> {
    // First, before any message quotes the URL: one with credentials (`user:pass@`, with or
    // without a scheme) is never shown.
    if url.contains('@') {
        return Err(ConfigError::new(
            "`url` must not hold credentials: put the user in `username` and the password in `password_file`",
        ));
    }
    let bad = |why: &str| ConfigError::new(format!("`url` = {url:?}: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected smtp://host:port or smtps://host:port"))?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a.trim_end_matches('/'), Some(q)),
        None => (rest.trim_end_matches('/'), None),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?))
        }
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let tls_mode = match query {
        None => None,
        Some(q) => match q.strip_prefix("tls=") {
            Some(mode @ ("required" | "opportunistic")) => Some(mode),
            _ => return Err(bad("the only option is tls=required or tls=opportunistic")),
        },
    };
    let tls_params = || -> Result<TlsParameters, ConfigError> {
        let mut b = TlsParameters::builder(host.to_owned());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ConfigError::new(format!("cannot read `ca_file` {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| ConfigError::new(format!("`ca_file` {} is not a PEM certificate: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| ConfigError::new(format!("TLS setup failed: {e}")))
    };
    let (tls, default_port) = match (scheme, tls_mode) {
        ("smtps", None) => (Tls::Wrapper(tls_params()?), 465),
        ("smtps", Some(_)) => return Err(bad("smtps:// is always TLS; tls= goes with smtp://")),
        ("smtp", None) => (Tls::None, 25),
        ("smtp", Some("required")) => (Tls::Required(tls_params()?), 587),
        ("smtp", Some(_)) => (Tls::Opportunistic(tls_params()?), 587),
        _ => return Err(bad("the scheme must be smtp or smtps")),
    };
    let cleartext = (password.is_some() && !matches!(tls, Tls::Wrapper(_) | Tls::Required(_)) && !is_loopback_host(host))
        .then(|| {
            "`url` is smtp:// without tls=required to another machine: the SMTP password may cross the network unencrypted; use smtps:// or ?tls=required".to_owned()
        });
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(timeout));
    match (&config.username, password) {
        (Some(user), Some(source)) => {
            let secret = source.load("password")?;
            builder = builder.credentials(Credentials::new(user.clone(), secret.expose().to_owned()));
        }
        (None, None) => {}
        (Some(_), None) => return Err(ConfigError::new("`username` needs `password` or `password_file`")),
        (None, Some(_)) => return Err(ConfigError::new("`password` needs `username`")),
    }
    Ok((builder.build(), cleartext))
}

/// SMTP 4xx, timeouts and broken connections may clear up; 5xx (authentication, a rejected
/// recipient, 501) and TLS failures will not. The text is the server's reply, never the
/// password.
fn classify_smtp(e: &lettre::transport::smtp::Error) -> SinkError {
    let text = one_line(&e.to_string());
    if e.is_timeout() {
        SinkError::transient(format!("SMTP: no answer in time ({text})"))
    } else if e.is_permanent() {
        SinkError::permanent(format!("SMTP: {text}"))
    } else if e.is_transient() {
        SinkError::transient(format!("SMTP: {text}"))
    } else if text.contains("certificate") {
        // A certificate the config does not trust will not become trusted by waiting; lettre
        // reports it as a connection error, hence the look at the text.
        SinkError::permanent(format!("SMTP: the server's TLS certificate is not trusted: {text}"))
    } else if e.is_tls() {
        SinkError::permanent(format!("SMTP TLS: {text}"))
    } else {
        SinkError::transient(format!("SMTP: {text}"))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect()
}

#[async_trait]
impl Sink for EmailSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "email"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        self.deliver(self.message(event)?).await
    }

    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        self.deliver(self.digest_message(digest)?).await
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        self.deliver(self.alert_message(alert)?).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    /// The mail exactly as it would be handed to the server (the password is never in it).
    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let how = match &self.transport {
            Transport::Sendmail(_) => "handed to sendmail",
            _ => "sent over SMTP",
        };
        Ok(format!("a mail {how}:\n{}", String::from_utf8_lossy(&self.message(event)?.formatted())))
    }

    fn check(&self) -> Vec<String> {
        let readable = self.password_source.as_ref().and_then(|s| s.permission_warning("password"));
        readable.into_iter().chain(self.cleartext.clone()).collect()
    }
}

impl EmailSink {
    /// Hands one message to the transport, within the sink's deadline.
    async fn deliver(&self, message: Message) -> Result<(), SinkError> {
        // lettre's SMTP timeout covers each command but not a server that accepts the
        // connection and never greets, and sendmail has none: one deadline covers it all.
        let delivery = async {
            match &self.transport {
                Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| classify_smtp(&e)),
                // sendmail exits non-zero for a bad recipient or a broken MTA setup, and a
                // binary that cannot run will not start working by itself.
                Transport::Sendmail(t) => t
                    .send(message)
                    .await
                    .map_err(|e| SinkError::permanent(format!("sendmail: {}", one_line(&e.to_string())))),
            }
        };
        match tokio::time::timeout(self.timeout, delivery).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::transient(format!(
                "{}: no answer within {} s",
                match self.transport {
                    Transport::Smtp(_) => "SMTP",
                    Transport::Sendmail(_) => "sendmail",
                },
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

/// Builds the sink `name` from its config: what the router's registry calls for every sink
/// type (`f2b_notify_<type>::new`).
pub fn new(name: &str, config: Config) -> Result<EmailSink, ConfigError> {
    EmailSink::new(name, config)
}
