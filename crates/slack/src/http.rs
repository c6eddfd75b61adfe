//! The HTTP side both Slack sinks share: one client setup (rustls, proxies from
//! `HTTPS_PROXY`/`NO_PROXY`, a timeout far below Fail2Ban's 60 s) and the one table that says
//! which of Slack's answers are worth retrying.
//!
//! Error texts carry Slack's own error string and the HTTP status, never the URL or the token:
//! reqwest puts the URL (the webhook secret) into its errors, so those are rebuilt from their
//! kind and their I/O cause only.

use std::time::Duration;

use f2b_notify_core::{ConfigError, SinkError};
use serde::Deserialize;

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

/// An HTTP client for Slack: rustls, the system's proxies, no redirects (a redirect would
/// carry the request elsewhere), and `timeout` for the whole request.
pub fn client(timeout: Timeout) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout.0)
        .connect_timeout(timeout.0.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("f2b-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::new(format!("cannot set up the HTTP client: {}", e.without_url())))
}

/// A warning for `f2b-notify check` when `url` is plain `http://` to a host other than this
/// machine: then `secret` (the webhook URL itself, or the bot token) crosses the network
/// readable by anyone on the path. Loopback stays silent (a local proxy, the tests). The
/// warning names neither the URL nor its host: for a webhook the URL is the secret.
pub fn cleartext_warning(url: &reqwest::Url, key: &str, secret: &str) -> Option<String> {
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

/// What Slack's error strings mean for the operator.
pub fn explain(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_payload" => "Slack rejected the message's JSON (please report this as a bug)",
        "action_prohibited" => "a workspace admin has restricted this webhook",
        "channel_not_found" => "the channel does not exist or the app cannot see it",
        "channel_is_archived" | "is_archived" => "the channel is archived",
        "no_service" | "no_service_id" => "the webhook was disabled or removed: create a new one",
        "no_team" | "team_disabled" => "the workspace is gone or disabled",
        "not_in_channel" => "the app is not in the channel: invite it with /invite",
        // What to do, not only what went wrong: these come back on every message until the
        // operator acts. (A webhook's answer to a bad URL is `invalid_token` too.)
        "invalid_auth" | "invalid_token" => {
            "Slack does not accept the token: slack-api wants the app's Bot User OAuth Token (xoxb-…, on the app's OAuth & Permissions page) in `token` or `token_file`; for slack-webhook, copy the URL again from the app's Incoming Webhooks page"
        }
        "not_authed" => {
            "no token reached Slack: check that `token` or `token_file` holds it (a proxy in between may drop the Authorization header)"
        }
        "token_revoked" => {
            "the token was revoked (the app was uninstalled or the token regenerated): reinstall the app to the workspace and put its new bot token in `token` or `token_file`"
        }
        "token_expired" => {
            "the token expired (the app has token rotation on): turn rotation off and reinstall the app for a bot token that does not expire"
        }
        "account_inactive" => {
            "the token belongs to a deactivated user or a deleted workspace or app: reinstall the app with an active account and use its new bot token"
        }
        "missing_scope" => "the token lacks the chat:write scope",
        "msg_too_long" => "the message is too long",
        "rate_limited" | "ratelimited" => "Slack's rate limit was hit",
        "rollup_error" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            "a problem on Slack's side"
        }
        _ => return None,
    })
}

/// Slack error strings that are worth retrying even though the status or `ok:false` says no.
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "rate_limited" | "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
    )
}

/// The error string as safe, one-line text of sane length.
pub(crate) fn clean(body: &str) -> String {
    f2b_notify_core::flatten(&body.trim().chars().take(200).collect::<String>())
}

fn describe(code: &str, status: Option<u16>) -> String {
    let mut s = if code.is_empty() { "no error text".to_owned() } else { code.to_owned() };
    if let Some(status) = status {
        s.push_str(&format!(" (HTTP {status})"));
    }
    if let Some(meaning) = explain(code) {
        s.push_str(": ");
        s.push_str(meaning);
    }
    s
}

/// Sends a request and returns Slack's answer as the sinks need it: the status, the
/// `Retry-After` header, the body. A request that gets no answer is classified here.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Timeout,
) -> Result<(u16, Option<String>, String), SinkError> {
    let response = request.send().await.map_err(|e| classify_transport(e, timeout))?;
    let status = response.status().as_u16();
    let retry_after =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().await.map_err(|e| classify_transport(e, timeout))?;
    Ok((status, retry_after, text))
}

/// Parses `Retry-After` in whole seconds (what Slack sends). Anything else counts as no hint,
/// so the router's usual backoff applies: an HTTP date, a negative, fractional or exponent
/// form (`-5`, `1.5`, `1e9`, `inf`), and any wait above [`SinkError::MAX_RETRY_AFTER`] (an
/// hour): a server that asks for `18446744073709551615` seconds is broken or hostile, and
/// obeying it would stall the sink (or overflow the clock).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs = value?.trim().parse::<u64>().ok()?;
    let wait = Duration::from_secs(secs);
    (wait <= SinkError::MAX_RETRY_AFTER).then_some(wait)
}

/// Classifies a non-success HTTP answer: 429 is transient with its `Retry-After`; 408 and 5xx
/// other than 501 are transient; every other status is permanent, except that Slack's
/// `rate_limited`/`ratelimited` strings are transient whatever the status.
pub fn classify_status(status: u16, retry_after: Option<&str>, body: &str) -> SinkError {
    let code = clean(body);
    let message = describe(&code, Some(status));
    let wait = parse_retry_after(retry_after);
    match status {
        429 => SinkError::Transient { message, retry_after: wait },
        408 => SinkError::transient(message),
        501 => SinkError::permanent(message),
        500..=599 => SinkError::Transient { message, retry_after: wait },
        _ if transient_code(&code) => SinkError::Transient { message, retry_after: wait },
        _ => SinkError::permanent(message),
    }
}

/// Classifies a Web API answer that came with HTTP 200: `{"ok": true}` is success,
/// `{"ok": false, "error": "…"}` a failure with Slack's error string.
pub fn classify_api_body(body: &str, retry_after: Option<&str>) -> Result<(), SinkError> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_str(body)
        .map_err(|_| SinkError::permanent(format!("unexpected answer, not Slack's JSON: {}", clean(body))))?;
    if answer.ok {
        return Ok(());
    }
    let code = clean(answer.error.as_deref().unwrap_or(""));
    let message = describe(&code, None);
    if transient_code(&code) {
        Err(SinkError::Transient { message, retry_after: parse_retry_after(retry_after) })
    } else {
        Err(SinkError::permanent(message))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, Retry-After, body, transient?, retry_after, text it must contain)
    type Case<'a> = (u16, Option<&'a str>, &'a str, bool, Option<Duration>, &'a str);

    /// Every status and error class the router's retries depend on.
    #[test]
    fn classification_table() {
        let s = |d: u64| Some(Duration::from_secs(d));
        let cases: &[Case] = &[
            (400, None, "invalid_payload", false, None, "invalid_payload (HTTP 400): Slack rejected"),
            (403, None, "action_prohibited", false, None, "action_prohibited (HTTP 403)"),
            (404, None, "channel_not_found", false, None, "channel_not_found (HTTP 404)"),
            (410, None, "channel_is_archived", false, None, "archived"),
            (401, None, "", false, None, "no error text (HTTP 401)"),
            (413, None, "too big", false, None, "too big (HTTP 413)"),
            (400, None, "rate_limited", true, None, "rate_limited"),
            (403, None, "ratelimited", true, None, "ratelimited"),
            (429, Some("7"), "", true, s(7), "HTTP 429"),
            (429, Some(" 30 "), "rate_limited", true, s(30), "rate limit"),
            (429, None, "", true, None, "HTTP 429"),
            (429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "", true, None, "HTTP 429"),
            (408, None, "", true, None, "HTTP 408"),
            (500, None, "rollup_error", true, None, "rollup_error (HTTP 500)"),
            (501, None, "", false, None, "HTTP 501"),
            (502, None, "<html>bad gateway</html>", true, None, "HTTP 502"),
            (503, Some("2"), "", true, s(2), "HTTP 503"),
            (504, None, "", true, None, "HTTP 504"),
            (302, None, "", false, None, "HTTP 302"),
            // A wait of an hour at most is a hint; anything absurd or malformed is none, and
            // the router's own backoff applies.
            (429, Some("3600"), "", true, s(3600), "HTTP 429"),
            (429, Some("3601"), "", true, None, "HTTP 429"),
            (429, Some("18446744073709551615"), "", true, None, "HTTP 429"),
            (429, Some("18446744073709551616"), "", true, None, "HTTP 429"),
            (429, Some("1000000000"), "", true, None, "HTTP 429"),
            (429, Some("-5"), "", true, None, "HTTP 429"),
            (429, Some("1e9"), "", true, None, "HTTP 429"),
            (429, Some("inf"), "", true, None, "HTTP 429"),
            (429, Some("NaN"), "", true, None, "HTTP 429"),
            (429, Some("1.5"), "", true, None, "HTTP 429"),
            (503, Some("1000000000"), "", true, None, "HTTP 503"),
            (400, Some("1000000000"), "rate_limited", true, None, "rate_limited"),
        ];
        for &(status, ra, body, transient, wait, text) in cases {
            let e = classify_status(status, ra, body);
            assert_eq!(e.is_transient(), transient, "{status} {body}: {e:?}");
            assert_eq!(e.retry_after_hint(), wait, "{status} {body}");
            assert!(e.to_string().contains(text), "{status}: {e} lacks {text}");
        }
    }

    #[test]
    fn api_bodies() {
        assert!(classify_api_body(r#"{"ok":true,"channel":"C1","ts":"1.2"}"#, None).is_ok());
        let cases = [
            ("channel_not_found", false),
            ("not_in_channel", false),
            ("invalid_auth", false),
            ("missing_scope", false),
            ("msg_too_long", false),
            ("rate_limited", true),
            ("ratelimited", true),
            ("internal_error", true),
            ("service_unavailable", true),
        ];
        for (code, transient) in cases {
            let e = classify_api_body(&format!(r#"{{"ok":false,"error":"{code}"}}"#), Some("3")).unwrap_err();
            assert!(explain(code).is_some(), "{code} has no explanation");
            assert_eq!(e.is_transient(), transient, "{code}");
            assert!(e.to_string().starts_with(code), "{e}");
            if transient {
                assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(3)));
            }
        }
        let e = classify_api_body(r#"{"ok":false,"error":"ratelimited"}"#, Some("18446744073709551615")).unwrap_err();
        assert_eq!((e.is_transient(), e.retry_after_hint()), (true, None));
        let e = classify_api_body("<html>captive portal</html>", None).unwrap_err();
        assert!(e.is_permanent() && e.to_string().contains("not Slack's JSON"));
    }

    /// A token Slack refuses says what to do about it, each case its own remedy.
    #[test]
    fn token_errors_say_what_to_do() {
        for (code, remedy) in [
            ("invalid_auth", "Bot User OAuth Token (xoxb-…"),
            ("invalid_token", "copy the URL again"),
            ("not_authed", "check that `token` or `token_file` holds it"),
            ("token_revoked", "reinstall the app"),
            ("token_expired", "turn rotation off"),
            ("account_inactive", "deactivated user"),
        ] {
            let e = classify_api_body(&format!(r#"{{"ok":false,"error":"{code}"}}"#), None).unwrap_err();
            assert!(e.is_permanent(), "{code}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("{code}: ")) && text.contains(remedy), "{text}");
            let e = classify_status(403, None, code);
            assert!(
                e.to_string().starts_with(&format!("{code} (HTTP 403): ")) && e.to_string().contains(remedy),
                "{e}"
            );
        }
    }

    #[test]
    fn url_problems_in_words() {
        let problem = |u: &str| url_problem(u, &reqwest::Url::parse(u).unwrap_err());
        assert_eq!(problem("slack.com/api/"), "it has no scheme: write it as https://…");
        assert_eq!(problem(""), "it is empty");
        assert_eq!(problem("https://exa mple.com/"), "it holds a space or a line break");
        assert_eq!(problem("https://example.com:99999/"), "invalid port number");
    }

    #[test]
    fn error_text_is_one_sane_line() {
        let e = classify_status(400, None, &format!("bad\nthing{}", "x".repeat(10_000)));
        assert!(!e.to_string().contains('\n'));
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn plain_http_warns_unless_loopback() {
        let warn = |u: &str| cleartext_warning(&reqwest::Url::parse(u).unwrap(), "url", "the token");
        for quiet in [
            "https://hooks.slack.com/services/T0/B0/X",
            "http://127.0.0.1:8080/services/T0/B0/X",
            "http://127.9.9.9/api/",
            "http://localhost:1/",
            "http://[::1]:8080/api/",
        ] {
            assert_eq!(warn(quiet), None, "{quiet}");
        }
        for loud in ["http://hooks.slack.com/services/T0/B0/SECRET", "http://10.0.0.1/api/", "http://[2001:db8::1]/"] {
            let w = warn(loud).unwrap_or_else(|| panic!("no warning for {loud}"));
            assert!(w.contains("`url` is a plain http:// URL") && w.contains("the token"), "{w}");
            assert!(!w.contains("SECRET") && !w.contains("slack.com") && !w.contains("10.0.0.1"), "{w}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(Timeout::from_config(None).unwrap().0, Timeout::DEFAULT);
        assert_eq!(Timeout::from_config(Some(2.5)).unwrap().0, Duration::from_millis(2500));
        for bad in [0.0, -1.0, 61.0, f64::NAN] {
            assert!(Timeout::from_config(Some(bad)).is_err(), "{bad}");
        }
    }
}
