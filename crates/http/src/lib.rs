//! The HTTP layer every web sink shares, written once: one client (rustls with the system's
//! roots, proxies from `HTTPS_PROXY`/`NO_PROXY`, no redirects, a bounded timeout), one
//! exchange that reads at most [`MAX_BODY`] of an answer, `Retry-After` from headers and from
//! the numbers services put in their JSON bodies, and the classification of failures as
//! transient or permanent.
//!
//! Every error text is built from status codes, the I/O cause and the service's own error
//! string, never from the request: reqwest puts the URL (for a webhook, the secret; for
//! Telegram, the token is in the path) into its errors, so those are rebuilt from their kind.

use std::time::Duration;

use f2b_notify_core::{ConfigError, SinkError};

pub use reqwest::{header, Client, Method, RequestBuilder, Url};

#[cfg(test)]
mod tests;

/// How long one request may take. Default 5 s; at most 30 s, half of Fail2Ban's action timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeout(pub Duration);

impl Timeout {
    /// The default when the config says nothing.
    pub const DEFAULT: Duration = Duration::from_secs(5);
    /// The most a config may ask for.
    pub const MAX: Duration = Duration::from_secs(30);

    /// Checks a `timeout` value from the config (seconds).
    pub fn from_config(secs: Option<f64>) -> Result<Self, ConfigError> {
        let Some(secs) = secs else { return Ok(Self(Self::DEFAULT)) };
        if !(secs > 0.0 && secs <= Self::MAX.as_secs_f64()) {
            return Err(ConfigError::new(format!(
                "`timeout` = {secs} must be more than 0 and at most {} seconds (Fail2Ban kills actions after 60 s)",
                Self::MAX.as_secs()
            )));
        }
        Ok(Self(Duration::from_secs_f64(secs)))
    }
}

/// An HTTP client for a sink: rustls, the system's proxies, no redirects (a redirect would
/// carry the request, and its secret, elsewhere), and `timeout` for the whole request.
pub fn client(timeout: Timeout) -> Result<Client, ConfigError> {
    client_trusting(timeout, None)
}

/// As [`client`], trusting besides the system's roots the CA certificates (PEM, one or a
/// bundle) in the file `ca_file`: for a server whose certificate a private CA issued (an
/// Alertmanager inside the fleet). `None` is [`client`]. An unreadable file, or one without a
/// certificate, is an error naming the key `ca_file` and the path.
pub fn client_trusting(timeout: Timeout, ca_file: Option<&std::path::Path>) -> Result<Client, ConfigError> {
    let mut builder = Client::builder()
        .timeout(timeout.0)
        .connect_timeout(timeout.0.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("f2b-notify/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::new(format!("cannot read `ca_file` {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
        if certs.is_empty() {
            return Err(ConfigError::new(format!("`ca_file` {} holds no PEM certificate", path.display())));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| ConfigError::new(format!("cannot set up the HTTP client: {}", e.without_url())))
}

/// A warning for `f2b-notify check` when `url` is plain `http://` to a host other than this
/// machine: then `secret` (the webhook URL itself, or a token) crosses the network readable by
/// anyone on the path. Loopback stays silent (a local proxy, the tests). The warning names
/// neither the URL nor its host: for a webhook the URL is the secret.
pub fn cleartext_warning(url: &Url, key: &str, secret: &str) -> Option<String> {
    if url.scheme() != "http" || url.host_str().is_some_and(f2b_notify_core::is_loopback_host) {
        return None;
    }
    Some(format!(
        "`{key}` is a plain http:// URL to another machine: {secret} crosses the network unencrypted; use https://"
    ))
}

/// What is wrong with a URL that does not parse, in words: the parser's own text for a
/// missing scheme is "relative URL without a base". Never quotes the URL (a webhook's is the
/// secret).
pub fn url_problem(text: &str, error: &dyn std::fmt::Display) -> String {
    if text.trim().is_empty() {
        "it is empty".to_owned()
    } else if !text.contains("://") {
        "it has no scheme: write it as https://…".to_owned()
    } else if text.trim().contains(char::is_whitespace) {
        "it holds a space or a line break".to_owned()
    } else {
        error.to_string()
    }
}

/// Whether a URL's text is itself a secret (a webhook URL) or may be quoted in errors (a
/// server's base URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// The URL carries the credential (Slack, Discord and Teams webhooks): never shown.
    Secret,
    /// A server's address (ntfy, Gotify, Matrix): shown in errors.
    Public,
}

/// Parses an `http(s)://` URL from the config key `key`. Returns it and `check`'s warning for
/// a plain http:// URL to another machine (`secret` names what would then cross the network).
/// A secret URL is never quoted, not even its scheme (a token pasted without one may parse
/// as one).
pub fn parse_url(text: &str, key: &str, kind: UrlKind, secret: &str) -> Result<(Url, Option<String>), ConfigError> {
    let hidden = match kind {
        UrlKind::Secret => " (the URL is the secret: not shown)".to_owned(),
        UrlKind::Public => format!(": `{}`", f2b_notify_core::flatten(text)),
    };
    let url = Url::parse(text.trim())
        .map_err(|e| ConfigError::new(format!("`{key}` is not a valid URL: {}{hidden}", url_problem(text, &e))))?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(ConfigError::new(format!("`{key}` must be an https:// URL{hidden}")));
    }
    let warning = cleartext_warning(&url, key, secret);
    Ok((url, warning))
}

/// The most of an answer's body that is read: enough for any service's error JSON, and a
/// hostile or broken server cannot fill the worker's memory.
pub const MAX_BODY: usize = 64 * 1024;

/// A service's answer, as the sinks need it.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers (`Retry-After`, `X-RateLimit-Reset-After`, …).
    pub headers: header::HeaderMap,
    /// The body, at most [`MAX_BODY`] bytes of it, as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Retry-After` header as a wait (see [`parse_retry_after`]).
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after"))
    }

    /// The body as one safe line of sane length, for an error text.
    pub fn body_line(&self) -> String {
        clean(&self.body)
    }
}

/// Sends a request and reads the answer (at most [`MAX_BODY`] of its body). A request that
/// gets no answer is classified here.
pub async fn exchange(request: RequestBuilder, timeout: Timeout) -> Result<Answer, SinkError> {
    let mut response = request.send().await.map_err(|e| classify_transport(e, timeout))?;
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify_transport(e, timeout))? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Parses `Retry-After` in whole seconds. Anything else counts as no hint, so the router's
/// usual backoff applies: an HTTP date, a negative, fractional or exponent form (`-5`, `1.5`,
/// `1e9`, `inf`), and any wait above [`SinkError::MAX_RETRY_AFTER`] (an hour): a server that
/// asks for `18446744073709551615` seconds is broken or hostile, and obeying it would stall
/// the sink (or overflow the clock).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs = value?.trim().parse::<u64>().ok()?;
    let wait = Duration::from_secs(secs);
    (wait <= SinkError::MAX_RETRY_AFTER).then_some(wait)
}

/// A wait a service put in its JSON body, in seconds that may be fractional (Discord's
/// `retry_after: 0.64`, Telegram's `parameters.retry_after: 35`). Rounded up to the next
/// millisecond; negative, non-finite or over an hour is no hint, as for [`parse_retry_after`].
pub fn wait_from_secs(secs: f64) -> Option<Duration> {
    if !(secs.is_finite() && secs >= 0.0 && secs <= SinkError::MAX_RETRY_AFTER.as_secs_f64()) {
        return None;
    }
    Some(Duration::from_millis((secs * 1000.0).ceil() as u64))
}

/// A wait a service put in its JSON body in milliseconds (Matrix's `retry_after_ms`).
pub fn wait_from_millis(ms: f64) -> Option<Duration> {
    wait_from_secs(ms / 1000.0)
}

/// Classifies a non-success HTTP answer by status alone, the table every service shares: 429
/// is transient with `wait`; 408 and 5xx other than 501 are transient; every other status is
/// permanent. `message` is the service's own error text (see [`describe`]).
pub fn classify_status(status: u16, wait: Option<Duration>, message: String) -> SinkError {
    match status {
        429 | 500..=599 if status != 501 => SinkError::Transient { message, retry_after: wait },
        408 => SinkError::transient(message),
        _ => SinkError::permanent(message),
    }
}

/// An error text: the service's error string (or "no error text") with the HTTP status, and
/// what it means for the operator when that is known.
pub fn describe(error: &str, status: Option<u16>, meaning: Option<&str>) -> String {
    let mut s = if error.is_empty() { "no error text".to_owned() } else { clean(error) };
    if let Some(status) = status {
        s.push_str(&format!(" (HTTP {status})"));
    }
    if let Some(meaning) = meaning {
        s.push_str(": ");
        s.push_str(meaning);
    }
    s
}

/// Text from a remote server as safe, one-line text of sane length (200 characters).
pub fn clean(text: &str) -> String {
    f2b_notify_core::flatten(&text.trim().chars().take(200).collect::<String>())
}

/// The TLS library's verdict on the server's certificate, if that is why a request failed.
/// rustls reports it inside an I/O error (`InvalidData`), whose `source()` skips the error it
/// wraps, hence the look at `get_ref`.
fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut err = err;
    // An I/O error may wrap another (hyper's connector wraps tokio-rustls's): unwrap them.
    while let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
        err = inner;
    }
    let tls = err.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => Some(clean(&tls.to_string())),
        _ => None,
    }
}

/// Classifies a request that got no HTTP answer. Timeouts, refused, reset or closed
/// connections are transient. A server certificate that is not trusted (unknown issuer,
/// expired, issued for another name) is permanent: waiting does not make it trusted, and
/// the batch should reach the dead letters, where `queue` shows why, rather than be retried
/// for `max_age`. The text never includes the URL.
pub fn classify_transport(err: reqwest::Error, timeout: Timeout) -> SinkError {
    let err = err.without_url();
    if err.is_timeout() {
        return SinkError::transient(format!("no answer within {:.1} s", timeout.0.as_secs_f64()));
    }
    // The innermost I/O error says what happened ("Connection refused (os error 111)",
    // "failed to lookup address information: …") and names no URL.
    let mut cause: Option<String> = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(s) = source {
        if let Some(why) = untrusted_certificate(s) {
            return SinkError::permanent(format!("the server's TLS certificate is not trusted: {why}"));
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            cause = Some(clean(&io.to_string()));
        }
        source = s.source();
    }
    let what = if err.is_connect() {
        "cannot connect"
    } else if err.is_builder() {
        "bad request"
    } else {
        "connection failed"
    };
    let message = match cause {
        Some(c) => format!("{what}: {c}"),
        None => format!("{what}: the connection closed without an answer"),
    };
    if err.is_builder() {
        SinkError::permanent(message)
    } else {
        SinkError::transient(message)
    }
}

/// A header value made of text the config or an attacker may have written: control
/// characters (CR, LF, NUL, …) become spaces and anything outside printable ASCII becomes
/// `?`, so that no value can end the header or start another. Never an error.
pub fn header_text(text: &str) -> header::HeaderValue {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_control() {
                ' '
            } else if c.is_ascii() {
                c
            } else {
                '?'
            }
        })
        .collect();
    header::HeaderValue::from_str(safe.trim()).unwrap_or_else(|_| header::HeaderValue::from_static(""))
}

/// A header value holding a secret (a token): marked sensitive, so that reqwest and hyper
/// never print it. An invalid one (a line break pasted with the token) is an error naming
/// `key`, never the value.
pub fn secret_header(value: &str, key: &str) -> Result<header::HeaderValue, ConfigError> {
    let mut v = header::HeaderValue::from_str(value).map_err(|_| {
        ConfigError::new(format!(
            "`{key}` holds a character a header cannot carry (a line break?) (the value is a secret: not shown)"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}
