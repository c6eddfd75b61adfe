//! Discord's answers to Execute Webhook, classified for the router: success, a rate limit to
//! wait out exactly, or an error with Discord's own message and code and what it means for
//! the operator.
//!
//! Sources: <https://discord.com/developers/docs/topics/opcodes-and-status-codes#json> (the
//! codes), <https://discord.com/developers/docs/reference#error-messages> (the `errors`
//! tree of a 50035), <https://discord.com/developers/docs/topics/rate-limits> (429s).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use f2b_notify_core::SinkError;
use f2b_notify_http::{classify_status, clean, describe, wait_from_secs, Answer};
use serde_json::Value;

/// What to do about a token Discord refuses.
const BAD_TOKEN: &str = "Discord does not accept the webhook's token: copy the webhook's URL again (the channel's settings → Integrations → Webhooks → Copy Webhook URL), or create a new webhook, and put it in `url` or `url_file`";

/// What to do about a webhook Discord does not know.
const UNKNOWN_WEBHOOK: &str = "the webhook was deleted or its id is wrong: create a webhook again (the channel's settings → Integrations → Webhooks → New Webhook) and put its URL in `url` or `url_file`; Discord asks that a webhook answering 404 not be used again";

/// What Discord's JSON error codes mean for the operator.
pub fn explain(code: i64) -> Option<&'static str> {
    Some(match code {
        50027 => BAD_TOKEN,
        10015 => UNKNOWN_WEBHOOK,
        10003 => "the channel or thread is gone: check `thread_id` (or, if the channel was deleted, create a webhook in another)",
        50001 | 50013 => "the webhook cannot post there: check `thread_id` (a thread of the webhook's own channel)",
        220001 => "the webhook's channel is a forum or media channel: set `thread_id` to the id of a post in it",
        50006 => "Discord found the message empty (please report this as a bug)",
        50035 => {
            "Discord refused the message's form (please report this as a bug, unless it names `username` or `avatar_url`, which come from the config)"
        }
        50109 | 220002 | 40005 => "Discord refused the request as f2b-notify built it (please report this as a bug)",
        40333 => {
            "Cloudflare in front of Discord refused the request; f2b-notify sends the `DiscordBot` User-Agent Discord asks for, so a proxy in between may change it"
        }
        200000 | 240000 => "Discord's AutoMod blocked the message: its log lines or user name matched one of the server's rules",
        _ => return None,
    })
}

/// What a status means when Discord's JSON does not say.
fn status_meaning(status: u16) -> Option<&'static str> {
    match status {
        401 => Some(BAD_TOKEN),
        404 => Some(UNKNOWN_WEBHOOK),
        _ => None,
    }
}

/// Until when Discord's global rate limit holds, per webhook origin (`https://discord.com`):
/// a 429 with `"global": true` limits every request from this address, so every Discord sink
/// in the worker waits it out, not only the one that was told.
static GLOBAL: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());

/// How much longer a global rate limit learned from an earlier answer holds for `origin`.
pub fn global_wait(origin: &str) -> Option<Duration> {
    let mut map = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
    let until = *map.get(origin)?;
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        map.remove(origin);
        return None;
    }
    Some(left)
}

fn hold_global(origin: &str, wait: Duration) {
    let until = Instant::now() + wait;
    let mut map = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = map.entry(origin.to_owned()).or_insert(until);
    *entry = (*entry).max(until);
}

/// The first leaf of a 50035's `errors` tree, as "In embeds.0.description: Must be 4096 or
/// fewer in length." (nested keys are the JSON path; leaves are `_errors: [{code, message}]`).
pub fn first_form_error(errors: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut Vec<String>) -> Option<String> {
        let obj = v.as_object()?;
        if let Some(first) = obj.get("_errors").and_then(Value::as_array).and_then(|a| a.first()) {
            let message = first["message"].as_str().or(first["code"].as_str()).unwrap_or("invalid");
            return Some(if path.is_empty() {
                message.to_owned()
            } else {
                format!("In {}: {message}", path.join("."))
            });
        }
        for (key, child) in obj {
            path.push(key.clone());
            if let Some(found) = walk(child, path) {
                return Some(found);
            }
            path.pop();
        }
        None
    }
    walk(errors, &mut Vec::new())
}

/// Classifies Discord's answer to a post with `?wait=true`: 200 with the saved message (an
/// `id`) is success, as is any other 2xx (204 is Discord's answer without `wait`); every
/// other answer is an error.
pub fn classify(answer: &Answer, origin: &str) -> Result<(), SinkError> {
    match answer.status {
        200 => {
            let saved: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            if saved["id"].is_string() {
                Ok(())
            } else {
                Err(SinkError::permanent(format!(
                    "unexpected answer to a post with ?wait=true (HTTP 200 without the saved message's id): {}",
                    answer.body_line()
                )))
            }
        }
        s if (200..300).contains(&s) => Ok(()),
        _ => Err(failure(answer, origin)),
    }
}

/// A non-2xx answer as an error: Discord's `message`, `code` and first form error, what they
/// mean, transient or permanent by status (429 and 5xx transient), and for a 429 the wait it
/// asks for.
fn failure(answer: &Answer, origin: &str) -> SinkError {
    let json: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let code = json["code"].as_i64();
    let message = json["message"].as_str().map(clean).filter(|m| !m.is_empty());
    let mut error = match (message, code) {
        (Some(m), Some(c)) => format!("{m}, code {c}"),
        (Some(m), None) => m,
        (None, Some(c)) => format!("code {c}"),
        (None, None) => answer.body_line(),
    };
    if let Some(detail) = first_form_error(&json["errors"]) {
        error = format!("{error}: {}", clean(&detail));
    }
    if answer.status == 429 {
        // The body's float seconds first (the header is whole seconds, rounded up), then the
        // header: "rely on the Retry-After header or retry_after field".
        let wait = json["retry_after"].as_f64().and_then(wait_from_secs).or_else(|| answer.retry_after());
        let global = json["global"].as_bool() == Some(true)
            || answer.header("x-ratelimit-global").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if global {
            if let Some(wait) = wait {
                hold_global(origin, wait);
            }
        }
        let scope = answer.header("x-ratelimit-scope").map(clean).filter(|s| !s.is_empty());
        let mut meaning = if global {
            "Discord's global rate limit, for every request from this address, so every Discord sink waits".to_owned()
        } else {
            "Discord's rate limit for this webhook or its channel".to_owned()
        };
        if let Some(scope) = scope {
            meaning.push_str(&format!(" (scope {scope})"));
        }
        return SinkError::Transient { message: describe(&error, Some(429), Some(&meaning)), retry_after: wait };
    }
    let meaning = code.and_then(explain).or_else(|| status_meaning(answer.status));
    classify_status(answer.status, answer.retry_after(), describe(&error, Some(answer.status), meaning))
}
