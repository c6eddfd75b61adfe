//! What Pushover's answers mean (D: https://pushover.net/api#response and `#friendly`).
//!
//! Success is HTTP 200 with `{"status":1,"request":"…"}`. Anything else is classified as
//! Pushover asks its clients to:
//!
//! - a **4xx**, or a `status` other than 1: "your input was invalid … repeating your same
//!   request will not work, no matter how many times you retry it", and many refused requests
//!   within a few minutes get the sending address blocked: **permanent**. The body is
//!   `{"errors":[…],"status":0,"request":"…"}` with one key per invalid parameter (`"token":
//!   "invalid"`, `"retry": "is too small, …"`): the errors are the error text, and the
//!   parameter says what to check.
//! - **429**, the one exception: the application's monthly message quota is used up (D:
//!   `#limits`). No `Retry-After` is sent; `X-Limit-App-Reset` says when the quota renews (the
//!   1st of the month), so the wait is until then, at most an hour at a time (the router's
//!   longest), then again (F: the 429 with `"token":"invalid"` and these headers in
//!   github.com/Tautulli/Tautulli/issues/396).
//! - a **5xx**, any other answer, or none: "You can repeat your same request again, but no
//!   sooner than 5 seconds from your last request": **transient**, with a wait of at least
//!   5 s that doubles with each failure in a row (see [`backoff`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::SinkError;
use f2b_notify_http::{clean, describe, Answer};
use serde_json::Value;

/// The least wait before repeating a request that failed without Pushover's verdict.
pub const RETRY_FLOOR: Duration = Duration::from_secs(5);
/// The most [`backoff`] grows to: the router's default `retry_max`.
pub const RETRY_CAP: Duration = Duration::from_secs(300);
/// The wait after a 429 that says nothing usable about the reset: the longest a sink may
/// ask for (the quota renews once a month).
pub const QUOTA_WAIT: Duration = SinkError::MAX_RETRY_AFTER;
/// The wait after a 429 whose reset time has passed by this machine's clock: Pushover's
/// clock, or the header, is behind; ask again a little later rather than in an hour.
pub const QUOTA_CLOCK_WAIT: Duration = Duration::from_secs(300);

/// The wait before repeating a request after the `failures`-th failure in a row without
/// Pushover's verdict: 5 s, doubling, at most [`RETRY_CAP`].
pub fn backoff(failures: u32) -> Duration {
    RETRY_FLOOR.saturating_mul(1u32 << failures.saturating_sub(1).min(10)).min(RETRY_CAP)
}

/// The application's message quota, from the `X-Limit-App-*` headers every messages call
/// returns (D: `#limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Messages a month (`X-Limit-App-Limit`).
    pub limit: Option<u64>,
    /// Messages left this month (`X-Limit-App-Remaining`).
    pub remaining: Option<u64>,
    /// When the quota renews, Unix seconds (`X-Limit-App-Reset`).
    pub reset: Option<u64>,
}

impl Quota {
    /// The quota an answer reports, if it reports any.
    pub fn of(answer: &Answer) -> Option<Self> {
        let number = |name: &str| answer.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let q = Self {
            limit: number("x-limit-app-limit"),
            remaining: number("x-limit-app-remaining"),
            reset: number("x-limit-app-reset"),
        };
        (q != Self::default()).then_some(q)
    }

    /// The reset as an RFC 3339 time (UTC).
    pub fn reset_text(&self) -> Option<String> {
        let secs = self.reset.filter(|&s| s < 100_000_000_000)?;
        Some(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string())
    }

    /// How long until the reset, by this machine's clock: [`QUOTA_WAIT`] when unknown,
    /// [`QUOTA_CLOCK_WAIT`] when it has passed; never more than [`QUOTA_WAIT`].
    pub fn wait(&self, now: SystemTime) -> Duration {
        let Some(reset) = self.reset else { return QUOTA_WAIT };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        match Duration::from_secs(reset).checked_sub(now) {
            Some(wait) if !wait.is_zero() => wait.min(QUOTA_WAIT),
            _ => QUOTA_CLOCK_WAIT,
        }
    }
}

/// Pushover's error body taken apart: the errors, and the invalid parameters with what is
/// wrong with each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The `errors` array.
    pub errors: Vec<String>,
    /// Each key other than `errors`, `status`, `request` and `receipt` whose value is text:
    /// the parameter and Pushover's word on it (`invalid`, `is too small, …`).
    pub params: Vec<(String, String)>,
}

impl Refusal {
    /// Reads a body; `None` if it is not Pushover's JSON.
    pub fn parse(body: &str) -> Option<Self> {
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) else { return None };
        let errors: Vec<String> = match o.get("errors") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(clean).collect(),
            _ => Vec::new(),
        };
        let params: Vec<(String, String)> = o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "errors" | "status" | "request" | "receipt"))
            .filter_map(|(k, v)| v.as_str().map(|v| (clean(k), clean(v))))
            .collect();
        (o.contains_key("status") || !errors.is_empty()).then_some(Self { errors, params })
    }

    /// Whether Pushover refused the application token or the user key: nothing can be sent
    /// until the config changes.
    pub fn credentials(&self) -> bool {
        self.params.iter().any(|(k, _)| k == "token" || k == "user")
    }

    /// The error text: the errors, and each invalid parameter Pushover named with its word
    /// where the errors do not already say it.
    fn text(&self) -> String {
        let mut text = self.errors.join("; ");
        for (param, why) in &self.params {
            if !self.errors.iter().any(|e| e.contains(why.as_str())) {
                let sep = if text.is_empty() { "" } else { "; " };
                text.push_str(&format!("{sep}{param}: {why}"));
            }
        }
        text
    }

    /// What the invalid parameter means for the operator.
    fn meaning(&self) -> Option<String> {
        let (param, _) = self.params.first()?;
        Some(match param.as_str() {
            "token" => "Pushover does not accept the application token: check `token` (the API Token/Key of your application at https://pushover.net/apps)".to_owned(),
            "user" => "Pushover does not accept the user key: check `user` (the user key on your dashboard at https://pushover.net, or a group key; keys are case-sensitive)".to_owned(),
            "device" => "Pushover does not know the device: check `device` (a device's name on your dashboard)".to_owned(),
            "sound" => "Pushover does not know the sound: check `sound` (see https://pushover.net/api#sounds)".to_owned(),
            "priority" | "retry" | "expire" => {
                "check `priority`, `retry` (at least 30 seconds) and `expire` (at most 10800 seconds)".to_owned()
            }
            "url" | "url_title" => format!("check `{param}`"),
            "message" | "title" | "html" | "monospace" | "timestamp" => {
                "Pushover refused the message f2b-notify built (please report this as a bug)".to_owned()
            }
            _ => return None,
        })
    }
}

/// Classifies Pushover's answer: `Ok` for a queued message, else the failure for the router.
/// `failures` counts this failure and those in a row before it (for [`backoff`]).
pub fn classify(answer: &Answer, failures: u32, now: SystemTime) -> Result<(), SinkError> {
    let refusal = Refusal::parse(&answer.body);
    let status = answer.status;
    if status == 200 {
        let ok = serde_json::from_str::<Value>(&answer.body).ok().and_then(|v| v.get("status").and_then(Value::as_i64));
        return match (ok, refusal) {
            (Some(1), _) => Ok(()),
            (Some(_), Some(r)) => Err(SinkError::permanent(describe(&r.text(), Some(status), r.meaning().as_deref()))),
            _ => Err(SinkError::permanent(format!(
                "unexpected answer (HTTP 200 without Pushover's JSON; is `api_url` Pushover's API?): {}",
                answer.body_line()
            ))),
        };
    }
    let text = refusal.as_ref().map_or_else(|| answer.body_line(), Refusal::text);
    match status {
        429 => {
            // The errors alone: the body's `"token":"invalid"` is not about the token.
            let text = match &refusal {
                Some(r) if !r.errors.is_empty() => r.errors.join("; "),
                _ => text,
            };
            let quota = Quota::of(answer).unwrap_or_default();
            let limit = quota.limit.map_or_else(String::new, |l| format!(" of {l} messages"));
            let reset = quota.reset_text().map_or_else(String::new, |r| format!(", renewed at {r}"));
            let meaning = format!(
                "the application's monthly message quota{limit} is used up (Pushover renews it on the 1st of each month{reset}): the events wait in the queue and are tried again every hour, or at the renewal if that comes sooner"
            );
            Err(SinkError::retry_after(describe(&text, Some(status), Some(&meaning)), quota.wait(now)))
        }
        400..=499 => {
            let meaning = refusal.as_ref().and_then(Refusal::meaning).or_else(|| match status {
                404 => Some(
                    "this is not Pushover's messages address: check `api_url` (https://api.pushover.net)".to_owned(),
                ),
                _ => None,
            });
            Err(SinkError::permanent(describe(&text, Some(status), meaning.as_deref())))
        }
        300..=399 => Err(SinkError::permanent(describe(
            &text,
            Some(status),
            Some("a redirect, which f2b-notify does not follow: check `api_url` (https://api.pushover.net)"),
        ))),
        _ => {
            let wait = backoff(failures).max(answer.retry_after().unwrap_or_default());
            Err(SinkError::retry_after(describe(&text, Some(status), Some("a problem on Pushover's side")), wait))
        }
    }
}
