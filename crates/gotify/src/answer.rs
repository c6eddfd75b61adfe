//! What Gotify's answers mean. Success is 200 with the stored message as JSON; every error is
//! `{"error":"<status text>","errorCode":<status>,"errorDescription":"<text>"}` (S: gotify/server
//! error/handler.go), classified here by its status, with Gotify's description in the error
//! text. A reverse proxy in front may answer without Gotify's JSON (nginx's 413 or 502 page):
//! then the status alone decides, and the proxy's `Retry-After` is obeyed.
//!
//! Gotify has no rate limit of its own (https://github.com/gotify/server/issues/919), so a 429
//! comes from a proxy: transient, after its `Retry-After` if it sends one, else after the
//! router's backoff.

use f2b_notify_core::SinkError;
use f2b_notify_http::{classify_status, clean, describe, Answer};
use serde::Deserialize;

/// Gotify's error body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_code: u16,
    #[serde(default)]
    error_description: String,
}

/// What a status means for the operator, from Gotify's or a proxy's mouth.
fn meaning(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => {
            "Gotify does not know this application token: copy the token of an application (the web UI's Apps page: create one, then reveal its token with the eye icon) into `token` or `token_file`; a client token (the Clients page, a phone's) cannot send messages"
        }
        403 => {
            "these are valid credentials, but not an application's: only an application token (the web UI's Apps page) may send messages"
        }
        400 => "Gotify refused the message (please report this as a bug)",
        404 => {
            "there is no Gotify message endpoint at this address: check `url` (the server's base URL, with the reverse proxy's path prefix if Gotify is served under one, like https://example.com/gotify)"
        }
        413 => {
            "the request was over a body size limit, most likely a reverse proxy's (nginx: `client_max_body_size`); messages are kept under 16 KB, so please raise the limit or report this"
        }
        429 => "something in front of Gotify (a reverse proxy) limits the request rate; Gotify itself has no limit",
        301 | 302 | 303 | 307 | 308 => {
            "the server redirects (not followed: the token would go along): write `url` as the address it redirects to (https:// instead of http://?)"
        }
        _ => return None,
    })
}

/// Classifies Gotify's answer: `Ok` for a stored message, else the failure for the router.
pub fn classify(answer: &Answer) -> Result<(), SinkError> {
    if answer.status == 200 {
        // The stored message, with its numeric id (S: `toExternalMessage`).
        let ok = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .is_some_and(|v| v.get("id").is_some_and(serde_json::Value::is_u64));
        if ok {
            return Ok(());
        }
        return Err(SinkError::permanent(format!(
            "unexpected answer (HTTP 200 without Gotify's message JSON; is `url` the Gotify server's base URL?): {}",
            answer.body_line()
        )));
    }
    let wait = answer.retry_after();
    let error = match serde_json::from_str::<ErrorBody>(&answer.body) {
        Ok(body) if body.error_code != 0 || !body.error_description.is_empty() => {
            match (clean(&body.error), clean(&body.error_description)) {
                (e, d) if e.is_empty() => d,
                (e, d) if d.is_empty() => e,
                (e, d) => format!("{e}: {d}"),
            }
        }
        _ => answer.body_line(),
    };
    Err(classify_status(answer.status, wait, describe(&error, Some(answer.status), meaning(answer.status))))
}
