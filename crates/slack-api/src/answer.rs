//! Reading a Web API answer: whether Slack said `ok`, its error string, and the `channel` and
//! `ts` of the message it posted, which become the sink's [`MessageRef`]s.
//!
//! Two things make this more than one `serde_json::from_str`:
//!
//! - Slack echoes the whole message back (`message`, with every attachment and block), and
//!   the shared HTTP layer reads at most [`MAX_BODY`] of an answer. A storm's digest can be
//!   larger than that, so the echo of a message Slack did post may arrive cut. The fields are
//!   therefore read one by one, in order, and what came before the cut counts: Slack puts
//!   `ok`, `channel` and `ts` first. Failing such a post would make the router send the
//!   digest again, a duplicate of a message that is in the channel.
//! - The answer comes from a server, so nothing in it is trusted to be sane: a `ts` or
//!   `channel` of the wrong shape (a newline, a megabyte, a number) is no reference at all,
//!   never a failure of the message that was posted.

use std::fmt;

use f2b_notify_core::{MessageRef, SinkError};
use f2b_notify_http::MAX_BODY;
use f2b_notify_slack::classify_api_body;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::Value;

/// What a Web API call answered that the sink uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `ok`.
    pub ok: Option<bool>,
    /// `error`, Slack's error string, as sent.
    pub error: Option<String>,
    /// `channel`: the channel's id as Slack resolved it (a name was posted to as `C…`).
    pub channel: Option<String>,
    /// `ts`: the message's timestamp, its id within the channel.
    pub ts: Option<String>,
}

impl Fields {
    /// The message this answer names, when `channel` and `ts` both have Slack's shapes.
    pub fn message(&self) -> Option<Posted> {
        let channel = self.channel.as_deref().filter(|c| channel_id(c))?;
        let ts = self.ts.as_deref().filter(|t| timestamp(t))?;
        Some(Posted { channel: channel.to_owned(), ts: ts.to_owned() })
    }
}

/// A Web API call Slack refused, classified for the router, with Slack's error string when
/// the answer had one (the sink recognises the refusals it works around by it).
#[derive(Debug)]
pub struct Refused {
    /// `error` from an `{"ok": false}` answer.
    pub code: Option<String>,
    /// The error the router gets when the sink does not work around it.
    pub error: SinkError,
}

impl Refused {
    /// A failure with no Slack error string: a transport error or an HTTP status.
    pub fn other(error: SinkError) -> Self {
        Self { code: None, error }
    }

    /// Whether Slack's error string is one of `codes`.
    pub fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

/// A message in a channel: what a [`MessageRef`] of this sink holds, as `CHANNEL:TS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel's id (`C0123ABCD`), as chat.update needs it: chat.update takes no names.
    pub channel: String,
    /// The message's `ts` (`1700000000.123456`).
    pub ts: String,
}

impl Posted {
    /// The reference the router keeps.
    pub fn to_ref(&self) -> Option<MessageRef> {
        MessageRef::new(format!("{}:{}", self.channel, self.ts))
    }

    /// A reference handed back by the router, if it is one this sink could have made. It was
    /// kept in the spool's state, so it may come from an older version or a hand-edited file.
    pub fn from_ref(r: &MessageRef) -> Option<Self> {
        let (channel, ts) = r.as_str().split_once(':')?;
        (channel_id(channel) && timestamp(ts)).then(|| Self { channel: channel.to_owned(), ts: ts.to_owned() })
    }
}

/// Slack's conversation ids: upper-case letters and digits (`C024BE91L`, `G…`, `D…`).
pub fn channel_id(text: &str) -> bool {
    (2..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Slack's message timestamps: seconds, a dot, a sequence (`1503435956.000247`).
pub fn timestamp(text: &str) -> bool {
    let Some((secs, seq)) = text.split_once('.') else { return false };
    [secs, seq].iter().all(|part| (1..=20).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads an HTTP 200 answer: the fields of `{"ok": true, …}`, or the refusal of
/// `{"ok": false, "error": …}` classified as every Slack answer is (`classify_api_body`).
pub fn read(body: &str, retry_after: Option<&str>) -> Result<Fields, Refused> {
    let (fields, complete) = fields(body);
    // An answer cut by the HTTP layer's limit counts for what it said before the cut.
    let readable = complete || body.len() >= MAX_BODY;
    match fields.ok {
        Some(true) if readable => Ok(fields),
        Some(false) if complete => {
            let error = match classify_api_body(body, retry_after) {
                Err(e) => e,
                // Cannot happen (`ok` is false), but a refusal must stay one.
                Ok(()) => SinkError::permanent("Slack answered `ok: false`"),
            };
            Err(Refused { code: fields.error, error })
        }
        // Not Slack's JSON at all: said as every Slack answer says it.
        _ => Err(Refused::other(
            classify_api_body(body, retry_after)
                .err()
                .unwrap_or_else(|| SinkError::permanent("unexpected answer, not Slack's JSON")),
        )),
    }
}

/// The top-level fields of `body` that came before anything unreadable, and whether the
/// whole body was one JSON object.
fn fields(body: &str) -> (Fields, bool) {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_str(body);
    let complete = de.deserialize_map(Collect(&mut fields)).is_ok() && de.end().is_ok();
    (fields, complete)
}

/// Collects the fields it knows into a [`Fields`] that outlives a failed parse.
struct Collect<'a>(&'a mut Fields);

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let text = |v: Value| match v {
            Value::String(s) => Some(s),
            _ => None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "ok" => self.0.ok = map.next_value::<Value>()?.as_bool(),
                "error" => self.0.error = text(map.next_value()?),
                "channel" => self.0.channel = text(map.next_value()?),
                "ts" => self.0.ts = text(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_message_and_its_reference() {
        let f = read(r#"{"ok":true,"channel":"C0123ABCD","ts":"1700000000.123456","message":{}}"#, None).unwrap();
        let posted = f.message().unwrap();
        let r = posted.to_ref().unwrap();
        assert_eq!(r.as_str(), "C0123ABCD:1700000000.123456");
        assert_eq!(Posted::from_ref(&r), Some(posted));
    }

    #[test]
    fn refusals_keep_slacks_string_and_todays_classification() {
        let r = read(r#"{"ok":false,"error":"message_not_found"}"#, None).unwrap_err();
        assert!(r.is(&["message_not_found"]) && r.error.is_permanent(), "{r:?}");
        let r = read(r#"{"ok":false,"error":"ratelimited"}"#, Some("7")).unwrap_err();
        assert!(r.error.is_transient() && r.error.retry_after_hint() == Some(std::time::Duration::from_secs(7)));
        let r = read("<html>captive portal</html>", None).unwrap_err();
        assert!(r.code.is_none() && r.error.to_string().contains("not Slack's JSON"), "{r:?}");
        // `ok: true` followed by garbage, in a body that was not cut: not trusted.
        let r = read(r#"{"ok":true,"ts":"1.2"} trailing"#, None).unwrap_err();
        assert!(r.error.is_permanent(), "{r:?}");
    }

    /// An echo cut at the HTTP layer's limit still says the message was posted, and where.
    #[test]
    fn an_answer_cut_at_the_limit_counts_for_what_came_first() {
        let head = r#"{"ok":true,"channel":"C1","ts":"1700000000.000100","message":{"text":""#;
        let body = format!("{head}{}", "x".repeat(MAX_BODY - head.len()));
        let f = read(&body, None).unwrap();
        assert_eq!(f.message().unwrap().ts, "1700000000.000100");
        // The same cut body, shorter than the limit, is not a cut answer but a broken one.
        assert!(read(&body[..1000], None).is_err());
        // A refusal must be whole to count as one.
        let cut = format!(r#"{{"ok":false,"error":"x","pad":"{}"#, "y".repeat(MAX_BODY));
        assert!(read(&cut[..MAX_BODY], None).unwrap_err().code.is_none());
    }

    /// A hostile server's `ts` or `channel` is no reference, and the post still succeeded.
    #[test]
    fn hostile_fields_make_no_reference() {
        let huge = "1".repeat(300);
        for (channel, ts) in [
            (r#""C1""#, r#""1700000000.1\nX""#),
            (r#""C1""#, &format!(r#""{huge}.1""#)[..]),
            (r#""C1""#, "1700000000.1"),
            (r#""C1""#, r#""../../etc""#),
            (r#""C1:2""#, r#""1.2""#),
            (r#""c-lower""#, r#""1.2""#),
            (r#"{"id":"C1"}"#, r#""1.2""#),
            (r#""C1""#, "null"),
        ] {
            let f = read(&format!(r#"{{"ok":true,"channel":{channel},"ts":{ts}}}"#), None).unwrap();
            assert!(f.message().is_none(), "{channel} {ts}: {f:?}");
        }
        assert!(read(r#"{"ok":true}"#, None).unwrap().message().is_none());
    }

    #[test]
    fn references_from_the_spool_are_checked() {
        for bad in ["C1", "C1:", ":1.2", "C1:1.2:3", "c1:1.2", "C1:1.x", "C1:.2"] {
            let r = MessageRef::new(bad).unwrap();
            assert!(Posted::from_ref(&r).is_none(), "{bad}");
        }
    }
}
