//! What ntfy's answers mean. Success is 200 with the published message as JSON; every error
//! is `{"code":N,"http":H,"error":"…","link":"…"}` (S: `errHTTP.JSON()` in server/errors.go),
//! classified here by its `code` (the `error` text varies: ntfy.sh appends ", increase your
//! limits with a paid plan, see https://ntfy.sh" for free visitors). A proxy in front may
//! answer without ntfy's JSON (a 502 page): then the status alone decides.
//!
//! ntfy sends no `Retry-After` (S: `handleError` sets only Content-Type and CORS), so the
//! wait comes from the documented limit that was hit: one request token every 5 s (D:
//! docs.ntfy.sh/config/#rate-limiting, `visitor-request-limit-replenish`), one login
//! failure forgiven a minute (S: `DefaultVisitorAuthFailureLimitReplenish`), and the daily
//! message quota not before the next day (the router's longest wait, an hour, then again).

use std::time::Duration;

use f2b_notify_core::SinkError;
use f2b_notify_http::{classify_status, clean, describe, Answer};
use serde::Deserialize;

/// The wait after ntfy's request rate limit (42901): one token of the visitor's bucket.
pub const RATE_WAIT: Duration = Duration::from_secs(5);
/// The wait after too many failed logins (42909): one failure forgiven.
pub const AUTH_FAILURE_WAIT: Duration = Duration::from_secs(60);
/// The wait after the daily message quota (42908): the longest a sink may ask for; the
/// quota resets once a day.
pub const QUOTA_WAIT: Duration = SinkError::MAX_RETRY_AFTER;

/// ntfy's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    error: String,
}

/// What an ntfy error code means for the operator, and the wait it implies if it is worth
/// retrying.
fn meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        40101 => {
            "ntfy does not accept the credentials: put a valid access token (tk_…, from the web app's Account page or `ntfy token add USER`) in `token` or `token_file`, or the right `username` and `password`; a server without access control refuses any credentials, so leave them out for it"
        }
        40301 => {
            "this user (or anyone, without `token` or `username`) may not publish to the topic: grant write access (`ntfy access USER TOPIC rw`) or use the token of a user who has it"
        }
        40401 => "this is not an ntfy server's publish address: check `url` (https://SERVER/TOPIC)",
        40009 => "the server refused the topic name: check `url`",
        40010 => "the server does not allow this topic name: choose another in `url`",
        40014 => {
            "the message was over the server's message limit, and the server takes no attachments (please report this as a bug: messages are kept under 4,096 bytes)"
        }
        40007 => "the server refused the priority (please report this as a bug)",
        40000 | 40017 | 40024 | 40011 => "the server refused the request's JSON (please report this as a bug)",
        40057 | 40058 => "the title or the tags are over the server's limit: shorten `tags`",
        41303 => "the server refused the request as too large (please report this as a bug)",
        41301 => "the server's attachment or bandwidth limit was reached",
        42901 => "ntfy's request rate limit was hit (60 at once, then one every 5 s per address or user)",
        42908 => {
            "the daily message quota is used up (250 a day for free accounts on ntfy.sh): messages wait until it resets the next day"
        }
        42909 => {
            "too many failed logins from this address: ntfy refuses it for a while; check `token` or `username` and `password`"
        }
        42904 => "the server's limit on the number of topics was reached",
        50701 => "the topic has no subscriber (UnifiedPush only)",
        _ => return None,
    })
}

/// The wait an error code implies (ntfy sends no `Retry-After`).
fn wait(code: u32, status: u16) -> Option<Duration> {
    match code {
        42908 => Some(QUOTA_WAIT),
        42909 => Some(AUTH_FAILURE_WAIT),
        _ if status == 429 => Some(RATE_WAIT),
        _ => None,
    }
}

/// Classifies ntfy's answer: `Ok` for a published message, else the failure for the router.
pub fn classify(answer: &Answer) -> Result<(), SinkError> {
    if answer.status == 200 {
        // A message is an object with its id (D: docs.ntfy.sh/subscribe/api/#json-message-format).
        let ok = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .is_some_and(|v| v.get("id").is_some_and(serde_json::Value::is_string));
        if ok {
            return Ok(());
        }
        return Err(SinkError::permanent(format!(
            "unexpected answer (HTTP 200 without ntfy's message JSON; is `url` an ntfy server?): {}",
            answer.body_line()
        )));
    }
    // A proxy's `Retry-After`, when there is one, beats the documented guess.
    let header_wait = answer.retry_after();
    match serde_json::from_str::<ErrorBody>(&answer.body) {
        Ok(body) if body.code != 0 => {
            let error = format!("{} [{}]", clean(&body.error), body.code);
            let message = describe(&error, Some(answer.status), meaning(body.code));
            let wait = header_wait.or_else(|| wait(body.code, answer.status));
            Err(classify_status(answer.status, wait, message))
        }
        _ => {
            let message = describe(&answer.body_line(), Some(answer.status), None);
            Err(classify_status(answer.status, header_wait.or_else(|| wait(0, answer.status)), message))
        }
    }
}
