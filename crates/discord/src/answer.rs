//! Discord's answers to Execute Webhook and Edit Webhook Message, classified for the router:
//! success (with the saved message's id), a rate limit to wait out exactly, or an error with
//! Discord's own message and code and what it means for the operator.
//!
//! The saved message comes back whole (content and every embed, escaped as JSON), and the
//! shared HTTP layer reads at most [`MAX_BODY`] of an answer: a large digest's may arrive cut.
//! Its fields are read one by one, and what came before the cut counts; a 200 cut at the
//! limit is a message Discord saved, whose id may have been past the cut (Discord puts `id`
//! after `content` and `embeds`): delivered, with no reference, never a failure that would
//! post it again. Nothing in an answer is trusted: an `id` that is not a snowflake (a
//! newline, a megabyte) is no reference.
//!
//! Sources: <https://discord.com/developers/docs/topics/opcodes-and-status-codes#json> (the
//! codes), <https://discord.com/developers/docs/reference#error-messages> (the `errors`
//! tree of a 50035), <https://discord.com/developers/docs/topics/rate-limits> (429s).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use f2b_notify_core::SinkError;
use f2b_notify_http::{classify_status, clean, describe, wait_from_secs, Answer, MAX_BODY};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
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
        10008 => "the message was deleted, or is not this webhook's",
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

/// A request Discord refused: its JSON error `code`, when it had one (the sink works around
/// some refusals of an edit by it), and the error for the router.
#[derive(Debug)]
pub struct Refused {
    /// Discord's JSON error code (`10008` Unknown Message, …).
    pub code: Option<i64>,
    /// The error the router gets when the sink does not work around it.
    pub error: SinkError,
}

impl From<SinkError> for Refused {
    fn from(error: SinkError) -> Self {
        Self { code: None, error }
    }
}

/// Whether `text` is a snowflake as Discord writes one: a 64-bit number in decimal.
pub fn snowflake(text: &str) -> bool {
    (1..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_ok()
}

/// Reads Discord's answer to a post with `?wait=true` or to an edit: 200 with the saved
/// message is success, with its id when that is a snowflake (see the module docs for a cut
/// answer); any other 2xx is success without one (204 is Discord's answer without `wait`);
/// every other answer is refused.
pub fn read(answer: &Answer, origin: &str) -> Result<Option<String>, Refused> {
    match answer.status {
        200 => {
            let (id, complete) = saved_id(&answer.body);
            // A body that is not one JSON object counts only when the limit cut it.
            let cut = !complete && answer.body.len() >= MAX_BODY;
            match id {
                Some(id) if complete || cut => Ok(Some(id).filter(|id| snowflake(id))),
                None if cut => Ok(None),
                _ => Err(SinkError::permanent(format!(
                    "unexpected answer to a post with ?wait=true (HTTP 200 without the saved message's id): {}",
                    answer.body_line()
                ))
                .into()),
            }
        }
        s if (200..300).contains(&s) => Ok(None),
        _ => {
            let code = serde_json::from_str::<Value>(&answer.body).ok().and_then(|v| v["code"].as_i64());
            Err(Refused { code, error: failure(answer, origin) })
        }
    }
}

/// The message's `id` (when it is a string) from the fields read before anything
/// unreadable, and whether the whole body was one JSON object.
fn saved_id(body: &str) -> (Option<String>, bool) {
    let mut id = None;
    let mut de = serde_json::Deserializer::from_str(body);
    let complete = de.deserialize_map(Collect(&mut id)).is_ok() && de.end().is_ok();
    (id, complete)
}

/// Collects a top-level `id` string into a place that outlives a failed parse.
struct Collect<'a>(&'a mut Option<String>);

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "id" {
                if let Value::String(s) = map.next_value::<Value>()? {
                    *self.0 = Some(s);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, headers: Default::default(), body: body.to_owned() }
    }

    #[test]
    fn the_saved_messages_id_or_none() {
        let ok = |body: &str| read(&answer(200, body), "o").map_err(|r| r.error.to_string());
        assert_eq!(
            ok(r#"{"id":"1200000000000000001","channel_id":"1"}"#).unwrap().as_deref(),
            Some("1200000000000000001")
        );
        // Hostile ids: delivered, no reference.
        for id in [r#""1\n2""#, &format!(r#""{}""#, "1".repeat(300)), r#""../x""#, r#""99999999999999999999""#] {
            assert_eq!(ok(&format!(r#"{{"id":{id}}}"#)).unwrap(), None, "{id}");
        }
        // No id at all, or not JSON: not Discord's saved message.
        assert!(ok(r#"{"id":7}"#).unwrap_err().contains("without the saved message's id"));
        assert!(ok("<html>portal</html>").is_err());
        // Cut at the HTTP layer's limit: saved; the id counts when it came before the cut.
        let head = r#"{"type":0,"content":""#;
        let cut = format!("{head}{}", "x".repeat(MAX_BODY - head.len()));
        assert_eq!(ok(&cut).unwrap(), None);
        let head = r#"{"id":"42","content":""#;
        let cut = format!("{head}{}", "x".repeat(MAX_BODY - head.len()));
        assert_eq!(ok(&cut).unwrap().as_deref(), Some("42"));
        assert!(ok(&cut[..1000]).is_err(), "short and broken is no cut answer");
        assert_eq!(read(&answer(204, ""), "o").unwrap(), None);
        let refused = read(&answer(404, r#"{"message":"Unknown Message","code":10008}"#), "o").unwrap_err();
        assert_eq!(refused.code, Some(10008));
        assert!(refused.error.is_permanent() && refused.error.to_string().starts_with("Unknown Message, code 10008"));
    }
}
