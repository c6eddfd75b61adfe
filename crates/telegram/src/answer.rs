//! Reading a successful Bot API answer: whether it says `ok`, and the `message_id` and chat of
//! the message it returns (`sendMessage`'s new message, `editMessageText`'s edited one),
//! which become the sink's [`MessageRef`]s as `CHAT:MESSAGE_ID`.
//!
//! The message comes back whole (its text and entities), and the shared HTTP layer reads at
//! most [`MAX_BODY`] of an answer. So the fields are read one by one, in order, and what came
//! before anything unreadable counts: the Bot API writes `ok` first, then `result` with
//! `message_id` and `chat` before the text. An answer cut at the limit is a message Telegram
//! took; failing it would send it again. Nothing in an answer is trusted to be sane: a
//! `message_id` or chat id that is not an integer of the Bot API's range is no reference,
//! never a failure of the message that was sent.
//! Source: <https://core.telegram.org/bots/api#making-requests>, `#message`.

use std::fmt;

use f2b_notify_core::MessageRef;
use f2b_notify_http::MAX_BODY;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::Value;

/// What a successful answer said that the sink uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `ok`.
    pub ok: Option<bool>,
    /// `result.message_id`.
    pub message_id: Option<i64>,
    /// `result.chat.id`.
    pub chat: Option<i64>,
}

impl Fields {
    /// The message this answer names, when both its ids are sane.
    pub fn message(&self) -> Option<Posted> {
        let (chat, message_id) = (self.chat?, self.message_id?);
        (message_id > 0).then_some(Posted { chat, message_id })
    }
}

/// A message in a chat: what a [`MessageRef`] of this sink holds, as `CHAT:MESSAGE_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// The chat's number (`-1001234567890`), as Telegram answered it.
    pub chat: i64,
    /// The message's id within that chat.
    pub message_id: i64,
}

impl Posted {
    /// The reference the router keeps.
    pub fn to_ref(self) -> Option<MessageRef> {
        MessageRef::new(format!("{}:{}", self.chat, self.message_id))
    }

    /// A reference handed back by the router, if this sink could have made it: it was kept
    /// in the spool's state, so it may come from an older version or a hand-edited file.
    pub fn from_ref(r: &MessageRef) -> Option<Self> {
        let (chat, id) = r.as_str().split_once(':')?;
        let (chat_n, id_n) = (chat.parse::<i64>().ok()?, id.parse::<i64>().ok()?);
        // Written as this sink writes them: no `+`, no leading zeros, a positive id.
        (chat_n.to_string() == chat && id_n.to_string() == id && id_n > 0)
            .then_some(Self { chat: chat_n, message_id: id_n })
    }
}

/// Reads the body of a 2xx answer: its fields, or `None` when it is not the Bot API's JSON
/// saying `ok` (a body cut at the HTTP layer's limit counts for what came before the cut).
pub fn read(body: &str) -> Option<Fields> {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_str(body);
    let complete = de.deserialize_map(Top(&mut fields)).is_ok() && de.end().is_ok();
    let readable = complete || body.len() >= MAX_BODY;
    (readable && fields.ok == Some(true)).then_some(fields)
}

/// The top level: `ok` and `result`.
struct Top<'a>(&'a mut Fields);

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Bot API's answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "ok" => self.0.ok = map.next_value::<Value>()?.as_bool(),
                "result" => map.next_value_seed(MessageSeed(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `result`: the message's `message_id` and `chat.id`; anything else (`true` for an inline
/// message's edit) is taken and names nothing.
struct MessageSeed<'a>(&'a mut Fields);

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "message_id" => self.0.message_id = map.next_value::<Value>()?.as_i64(),
                "chat" => map.next_value_seed(Chat(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `result.chat`: its `id`.
struct Chat<'a>(&'a mut Fields);

impl<'de> DeserializeSeed<'de> for Chat<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Chat<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "id" {
                self.0.chat = map.next_value::<Value>()?.as_i64();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_message_and_its_reference() {
        let f = read(r#"{"ok":true,"result":{"message_id":42,"from":{"id":1},"chat":{"id":-1001234567890,"type":"supergroup"},"date":1,"text":"x"}}"#).unwrap();
        let posted = f.message().unwrap();
        let r = posted.to_ref().unwrap();
        assert_eq!(r.as_str(), "-1001234567890:42");
        assert_eq!(Posted::from_ref(&r), Some(posted));
        // An inline message's edit answers `true`: taken, naming nothing.
        assert_eq!(read(r#"{"ok":true,"result":true}"#).unwrap().message(), None);
    }

    #[test]
    fn not_the_bot_apis_json_or_not_ok() {
        assert!(read(r#"{"ok":false,"error_code":400,"description":"x"}"#).is_none());
        assert!(read("<html>portal</html>").is_none());
        assert!(read(r#"{"ok":true,"result":{"message_id":1}} trailing"#).is_none());
        // Cut short of the limit is a broken answer, not a cut one.
        assert!(read(r#"{"ok":true,"result":{"message_id":1,"text":"ab"#).is_none());
    }

    #[test]
    fn an_answer_cut_at_the_limit_counts_for_what_came_first() {
        let head = r#"{"ok":true,"result":{"message_id":7,"chat":{"id":-100},"text":""#;
        let body = format!("{head}{}", "x".repeat(MAX_BODY - head.len()));
        assert_eq!(read(&body).unwrap().message(), Some(Posted { chat: -100, message_id: 7 }));
    }

    #[test]
    fn hostile_fields_make_no_reference() {
        for result in [
            r#"{"message_id":"7\n8","chat":{"id":-100}}"#,
            r#"{"message_id":99999999999999999999999,"chat":{"id":-100}}"#,
            r#"{"message_id":1.5,"chat":{"id":-100}}"#,
            r#"{"message_id":-3,"chat":{"id":-100}}"#,
            r#"{"message_id":7,"chat":{"id":"-100\n"}}"#,
            r#"{"message_id":7}"#,
        ] {
            let f = read(&format!(r#"{{"ok":true,"result":{result}}}"#));
            assert!(f.as_ref().is_none_or(|f| f.message().is_none()), "{result}: {f:?}");
        }
    }

    #[test]
    fn references_from_the_spool_are_checked() {
        for bad in ["-100", "-100:", ":7", "-100:7:8", "-100:0", "-100:-7", "+100:7", "-100:07", "x:7", "C1:1.2"] {
            let r = MessageRef::new(bad).unwrap();
            assert!(Posted::from_ref(&r).is_none(), "{bad}");
        }
    }
}
