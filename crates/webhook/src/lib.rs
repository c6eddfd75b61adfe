//! The generic webhook sink: sends every event to any HTTP endpoint (an n8n or Home Assistant
//! webhook, a Mattermost or Rocket.Chat incoming webhook, your own service) with POST or PUT.
//!
//! The body is, by default, the event (or digest, or alert) as JSON with every field, in the
//! schema documented in [`body`]; a minijinja `body` template makes any other shape, with
//! values written as JSON for a JSON content type so that attacker text stays data. Headers
//! are static (never templated: no log line can reach one) and may be secrets, inline or
//! read from files; their values never appear in errors, `Debug`, `check` or the preview.
//!
//! Success is any 2xx. A redirect is not followed (it would carry the body and the secret
//! headers elsewhere) and is permanent; 408, 429 and 5xx other than 501 are transient, with
//! `Retry-After` obeyed; every other answer is permanent, with the endpoint's own (cleaned)
//! words in the message. There is no pacing of its own: `[delivery] min_interval` sets one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use f2b_notify_core::{
    async_trait, Alert, ConfigError, Digest, Event, Renderer, Secret, SecretSource, Sink, SinkError, Templates,
};
use f2b_notify_http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use f2b_notify_http::{classify_status, describe, exchange, parse_url, secret_header, Answer, Timeout, UrlKind};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

pub mod body;
#[cfg(test)]
mod tests;

use body::Bodies;

/// The content type when the config names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// Configuration of a `type = "webhook"` sink.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The endpoint's URL (`https://…`). Treated as a secret, since most webhook URLs carry
    /// their token (Mattermost's `/hooks/…`, Home Assistant's `/api/webhook/…`): prefer
    /// `url_file` or the environment (`F2B_NOTIFY_SINKS__NAME__URL`). Give `url` or
    /// `url_file`, not both.
    #[serde(default, deserialize_with = "url")]
    pub url: Option<Secret>,
    /// A file holding the URL (mode 0600; `check` warns when others can read it).
    pub url_file: Option<PathBuf>,
    /// `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: Method,
    /// Extra request headers, name = value: `headers = { Authorization = "Bearer …" }`.
    /// Every value is treated as a secret (sent marked sensitive, never shown); names are
    /// checked when the config loads. `Content-Type` is `content_type`'s; `Host`,
    /// `Content-Length` and the other framing headers are the HTTP client's.
    #[serde(default, deserialize_with = "headers")]
    pub headers: BTreeMap<String, Secret>,
    /// Headers whose value is read from a file, name = path:
    /// `header_files = { Authorization = "/etc/f2b-notify/hook-auth" }` (the file holds the
    /// whole value, `Bearer …` included; mode 0600, `check` warns otherwise).
    #[serde(default)]
    pub header_files: BTreeMap<String, PathBuf>,
    /// The body's `Content-Type`; default `application/json`. Any `…/json` or `…+json` type
    /// makes `body` a JSON template (values written as JSON, the result checked); another
    /// type (`text/plain`) needs a `body` and sends what it renders as it is.
    pub content_type: Option<String>,
    /// The body as a minijinja template. Default: none, and the body is the event as JSON
    /// with every field (the schema is in the README). Also used for digests without a
    /// `digest_body`, and for alerts.
    pub body: Option<String>,
    /// The body of a digest (several events in one message) as a minijinja template with
    /// `events`, `count`, `host`, `title`, `origins`, `summary` and `text`. Default: `body` if
    /// given, else the digest as JSON.
    pub digest_body: Option<String>,
    /// Per-event templates for `text`, the one-line message (`[sinks.NAME.templates]`).
    #[serde(default)]
    pub templates: Templates,
    /// Seconds one request may take (default 5, at most 30).
    pub timeout: Option<f64>,
}

/// The HTTP method: `POST` or `PUT`, in any case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// POST (the default; what most webhooks take).
    #[default]
    Post,
    /// PUT.
    Put,
}

/// In the configuration reference: `POST` or `PUT`.
impl schemars::JsonSchema for Method {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Method".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": ["POST", "PUT"] })
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_uppercase().as_str() {
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            _ => Err(de::Error::custom(format!(
                "`method` must be `POST` or `PUT`, not `{}`",
                f2b_notify_core::flatten(&text)
            ))),
        }
    }
}

impl Method {
    fn http(self) -> reqwest::Method {
        match self {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        }
    }
}

/// `url` is a secret: a value of the wrong type is an error naming the key, never the value.
fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize_named(d, "url")
}

/// The end of every error about a value of the wrong type, as `f2b_notify_core::Secret`
/// words it (the config loader recognises these errors by it).
const NOT_SHOWN: &str = "(a secret's value is never shown)";

/// `headers`: a table whose values are secrets. Anything else is refused with the key and
/// the type found, never the value (serde's own message would quote it).
fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Secret>, D::Error> {
    d.deserialize_any(HeadersVisitor)
}

struct HeadersVisitor;

fn not_a_table<E: de::Error>(found: &str) -> E {
    E::custom(format!(
        "`headers` must be a table like `headers = {{ Authorization = \"Bearer …\" }}`, not {found} {NOT_SHOWN}"
    ))
}

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = BTreeMap<String, Secret>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table of header names and values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(HeaderValueSeed { name: &name })?;
            out.insert(name, value);
        }
        Ok(out)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(not_a_table("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(not_a_table("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(not_a_table("an integer"))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        Err(not_a_table("an integer"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(not_a_table("an integer"))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Err(not_a_table("an integer"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(not_a_table("a number"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(not_a_table("a list"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// One header's value: a string, or an error naming `headers.NAME` (the form the config
/// loader puts on the key path) and the type, never the value.
struct HeaderValueSeed<'a> {
    name: &'a str,
}

impl HeaderValueSeed<'_> {
    fn wrong<E: de::Error>(&self, found: &str, scalar: bool) -> E {
        let fix = if scalar { ": put it in quotes" } else { "" };
        E::custom(format!("`headers.{}` must be a string, not {found}{fix} {NOT_SHOWN}", self.name))
    }
}

impl<'de> DeserializeSeed<'de> for HeaderValueSeed<'_> {
    type Value = Secret;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Secret, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeaderValueSeed<'_> {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(self.wrong("a boolean", true))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(self.wrong("an integer", true))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(self.wrong("an integer", true))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(self.wrong("an integer", true))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(self.wrong("an integer", true))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(self.wrong("a number", true))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
        Err(self.wrong("nothing", false))
    }
    fn visit_none<E: de::Error>(self) -> Result<Secret, E> {
        Err(self.wrong("nothing", false))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Secret, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(self.wrong("a list", false))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(self.wrong("a table", false))
    }
}

/// Headers the HTTP client writes itself (framing, the connection, the host): one given
/// here would contradict it or smuggle a second request.
const CLIENT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// A built webhook sink.
pub struct WebhookSink {
    name: String,
    url: reqwest::Url,
    url_source: SecretSource,
    method: Method,
    content_type: HeaderValue,
    /// Every extra header, its value marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The files `header_files` named, for `check`.
    header_files: Vec<(String, PathBuf)>,
    /// What must never show in an error text even if the endpoint quotes it back.
    secrets: Vec<Secret>,
    renderer: Renderer,
    bodies: Bodies,
    client: reqwest::Client,
    timeout: Timeout,
    /// `check`'s warning when the URL is plain http:// to another machine.
    cleartext: Option<String>,
}

/// Shows what is safe to show: never the URL or a header's value.
impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &"<secret>")
            .field("method", &self.method)
            .field("content_type", &self.content_type)
            .field("headers", &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds the sink: reads the URL and header files, checks the URL, the headers and the
/// content type, compiles the templates and tries them on hostile samples. Errors name the
/// key, never a secret.
pub fn new(name: impl Into<String>, config: Config) -> Result<WebhookSink, ConfigError> {
    let url_source = SecretSource::from_pair("url", config.url, config.url_file)?;
    let url_secret = url_source.load("url")?;
    let (url, cleartext) = parse_url(
        url_secret.expose(),
        "url",
        UrlKind::Secret,
        "the URL (which may be the secret) and every header value",
    )?;
    let (content_type, json) = content_type(config.content_type.as_deref())?;
    if !json && config.body.is_none() {
        return Err(ConfigError::new(format!(
            "`content_type` = {:?} needs a `body` template: without one the body is JSON (leave `content_type` out, or write a `body`)",
            f2b_notify_core::flatten(config.content_type.as_deref().unwrap_or_default())
        )));
    }
    let mut secrets = vec![url_secret.clone()];
    secrets.extend(url_parts(&url));
    let mut headers = Vec::new();
    let mut header_files = Vec::new();
    // Inline values and files, each with the key an error names.
    let mut given: Vec<(String, String, Result<Secret, ConfigError>)> =
        config.headers.into_iter().map(|(name, value)| (format!("headers.{name}"), name, Ok(value))).collect();
    for (name, path) in config.header_files {
        let key = format!("header_files.{name}");
        let loaded = Secret::from_file(&path, &key);
        header_files.push((name.clone(), path));
        given.push((key, name, loaded));
    }
    for (key, raw, value) in given {
        let name = header_name(&raw, &key)?;
        if headers.iter().any(|(n, _): &(HeaderName, HeaderValue)| *n == name) {
            return Err(ConfigError::new(format!(
                "header `{raw}` is given twice (names are not case-sensitive; `headers` and `header_files` share them)"
            )));
        }
        let value = value?;
        headers.push((name, secret_header(value.expose(), &key)?));
        secrets.extend(value_parts(&value));
        secrets.push(value);
    }
    let renderer = Renderer::new(&config.templates).map_err(|e| ConfigError::new(e.to_string()))?;
    let bodies = Bodies::new(config.body.as_deref(), config.digest_body.as_deref(), json, &renderer)
        .map_err(ConfigError::new)?;
    let timeout = Timeout::from_config(config.timeout)?;
    Ok(WebhookSink {
        name: name.into(),
        url,
        url_source,
        method: config.method,
        content_type,
        headers,
        header_files,
        secrets,
        renderer,
        bodies,
        client: f2b_notify_http::client(timeout)?,
        timeout,
        cleartext,
    })
}

/// Checks `content_type`: `type/subtype` with optional parameters, one line. Returns the
/// header and whether it is JSON.
fn content_type(text: Option<&str>) -> Result<(HeaderValue, bool), ConfigError> {
    let text = text.unwrap_or(DEFAULT_CONTENT_TYPE).trim();
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    let well_formed = essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    let value = HeaderValue::from_str(text).ok().filter(|_| well_formed).ok_or_else(|| {
        ConfigError::new(format!(
            "`content_type` = {:?} is not a media type like `application/json` or `text/plain; charset=utf-8`",
            f2b_notify_core::flatten(text)
        ))
    })?;
    let json = essence.ends_with("/json") || essence.ends_with("+json");
    Ok((value, json))
}

/// Checks a header name from the config (`key` names where it was written).
fn header_name(raw: &str, key: &str) -> Result<HeaderName, ConfigError> {
    let shown = f2b_notify_core::flatten(raw);
    let name = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
        ConfigError::new(format!(
            "`{key}`: `{shown}` is not a header name (letters, digits and `-`, no spaces, `:` or line breaks)"
        ))
    })?;
    if name == CONTENT_TYPE {
        return Err(ConfigError::new(format!("`{key}`: set the content type with `content_type`, not as a header")));
    }
    if CLIENT_HEADERS.contains(&name.as_str()) {
        return Err(ConfigError::new(format!(
            "`{key}`: `{shown}` is written by the HTTP client itself and cannot be set"
        )));
    }
    Ok(name)
}

/// The parts of a URL that are likely its token (long path segments, query values, a
/// password), to be kept out of error texts that quote the endpoint's answer.
fn url_parts(url: &reqwest::Url) -> Vec<Secret> {
    let mut parts: Vec<String> = url.path_segments().into_iter().flatten().map(str::to_owned).collect();
    parts.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    parts.extend(url.password().map(str::to_owned));
    parts.into_iter().filter(|p| p.chars().count() >= 16).map(Secret::new).collect()
}

/// The words of a header value long enough to be a token (`Bearer abc…` → `abc…`).
fn value_parts(value: &Secret) -> Vec<Secret> {
    value.expose().split_whitespace().filter(|p| p.chars().count() >= 8).map(Secret::new).collect()
}

/// `text` with every secret replaced by `<redacted>`, longest first.
fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut sorted: Vec<&str> = secrets.iter().map(Secret::expose).filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in sorted {
        if out.contains(s) {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

/// What an endpoint's refusal means for the operator.
fn meaning(status: u16) -> Option<&'static str> {
    Some(match status {
        400 | 422 => "the endpoint rejected the body: check `body` and `content_type` against what it expects",
        401 | 403 => {
            "the endpoint refused the request's credentials: check `headers` / `header_files` (and the token in `url`)"
        }
        404 | 410 => {
            "no webhook at this URL: check `url` (the webhook may have been deleted, or the workflow is not active)"
        }
        405 | 501 => "the endpoint does not take this method: check `method` (POST or PUT)",
        413 => "the body is too large for the endpoint",
        415 => "the endpoint does not take this `content_type`",
        _ => return None,
    })
}

impl WebhookSink {
    /// Sends one body and classifies the answer.
    async fn deliver(&self, body: String) -> Result<(), SinkError> {
        let mut request =
            self.client.request(self.method.http(), self.url.clone()).header(CONTENT_TYPE, self.content_type.clone());
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        let answer = exchange(request.body(body), self.timeout).await?;
        self.classify(&answer)
    }

    /// 2xx is success; a redirect is permanent (not followed); 408, 429 and 5xx but 501 are
    /// transient with `Retry-After`; the rest is permanent, with the endpoint's own words
    /// (secrets it may quote back replaced).
    fn classify(&self, answer: &Answer) -> Result<(), SinkError> {
        if answer.is_success() {
            return Ok(());
        }
        let status = answer.status;
        if (300..400).contains(&status) {
            return Err(SinkError::permanent(format!(
                "the endpoint answered with a redirect (HTTP {status}), which is not followed: it would carry the body and \
                 the headers to another address; put the address it redirects to in `url`"
            )));
        }
        let text = redact(&answer.body, &self.secrets);
        let message = describe(&text, Some(status), meaning(status));
        let wait = answer.retry_after();
        if status == 408 {
            // The shared table gives 408 no wait; a server that names one is obeyed.
            return Err(SinkError::Transient { message, retry_after: wait });
        }
        Err(classify_status(status, wait, message))
    }

    fn rendered(&self, body: Result<String, String>) -> Result<String, SinkError> {
        body.map_err(|e| SinkError::permanent(format!("{e}; nothing was sent")))
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, event: &Event) -> Result<(), SinkError> {
        let body = self.rendered(self.bodies.event(event, &self.renderer))?;
        self.deliver(body).await
    }

    /// One request for the whole digest: every event is in it (`events`), so nothing is cut
    /// or chunked; a digest is at most `[delivery] batch_max` events.
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        let body = self.rendered(self.bodies.digest(digest))?;
        self.deliver(body).await
    }

    fn check(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.url_source.permission_warning("url").into_iter().collect();
        #[cfg(unix)]
        for (name, path) in &self.header_files {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = std::fs::metadata(path) else { continue };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                lines.push(format!(
                    "`header_files.{name}` file {} has mode {:o}: other users may read it; run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ));
            }
        }
        lines.extend(self.cleartext.clone());
        lines
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), SinkError> {
        let body = self.rendered(self.bodies.alert(alert))?;
        self.deliver(body).await
    }

    fn carries_alerts(&self) -> bool {
        true
    }

    fn preview(&self, event: &Event) -> Result<String, SinkError> {
        let shown = self.rendered(self.bodies.event_preview(event, &self.renderer))?;
        let mut headers = vec![format!("Content-Type: {}", self.content_type.to_str().unwrap_or("?"))];
        headers.extend(self.headers.iter().map(|(n, _)| format!("{n}: (not shown)")));
        Ok(format!(
            "{} to the URL in `url` (a secret, not shown), headers {}, this body:\n{shown}",
            self.method.http(),
            headers.join("; ")
        ))
    }
}
