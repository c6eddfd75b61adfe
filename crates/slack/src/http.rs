//! What is Slack's own in talking to Slack: the meaning of its error strings, which of them
//! are worth retrying whatever the status says, and `{"ok": false}` answers to Web API calls.
//! The client, timeouts, `Retry-After` and transport errors are the shared HTTP layer's
//! (`f2b_notify_http`).

use f2b_notify_core::SinkError;
use f2b_notify_http::{clean, describe, parse_retry_after};
use serde::Deserialize;

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

/// Classifies a non-success HTTP answer from Slack: the shared status table, except that
/// Slack's `rate_limited`/`ratelimited` strings are transient whatever the status.
pub fn classify_status(status: u16, retry_after: Option<&str>, body: &str) -> SinkError {
    let code = clean(body);
    let message = describe(&code, Some(status), explain(&code));
    let wait = parse_retry_after(retry_after);
    if transient_code(&code) && !(200..300).contains(&status) && status != 501 {
        return SinkError::Transient { message, retry_after: wait };
    }
    f2b_notify_http::classify_status(status, wait, message)
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
    let message = describe(&code, None, explain(&code));
    if transient_code(&code) {
        Err(SinkError::Transient { message, retry_after: parse_retry_after(retry_after) })
    } else {
        Err(SinkError::permanent(message))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
