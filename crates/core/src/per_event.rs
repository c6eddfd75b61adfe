//! A sink setting with one value for every event, or a table that sets it for some events
//! (`priority = "high"` or `priority = { ban = "max" }`): ntfy's and Gotify's priorities and
//! ntfy's tags read the same way, here, once.

use serde_json::Value;

use crate::{flatten, truncate_chars, EventKind};

/// One value of `T` per event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerEvent<T> {
    /// A jail started.
    pub start: T,
    /// A jail stopped.
    pub stop: T,
    /// An address was banned.
    pub ban: T,
    /// An address was unbanned.
    pub unban: T,
}

impl<T> PerEvent<T> {
    /// The value for `kind`.
    pub fn get(&self, kind: EventKind) -> &T {
        match kind {
            EventKind::Start => &self.start,
            EventKind::Stop => &self.stop,
            EventKind::Ban => &self.ban,
            EventKind::Unban => &self.unban,
        }
    }

    /// Sets the value for `kind`.
    pub fn set(&mut self, kind: EventKind, value: T) {
        match kind {
            EventKind::Start => self.start = value,
            EventKind::Stop => self.stop = value,
            EventKind::Ban => self.ban = value,
            EventKind::Unban => self.unban = value,
        }
    }
}

impl<T: Clone> PerEvent<T> {
    /// The same value for every event.
    pub fn all(value: T) -> Self {
        Self { start: value.clone(), stop: value.clone(), ban: value.clone(), unban: value }
    }

    /// Reads the config value `value` of the key `key`: a table of events sets those events
    /// (each read by `one`, with the key `KEY.EVENT` for its errors) and keeps `defaults` for
    /// the others; any other value is one value for every event. The error names the key.
    pub fn read(
        value: &Value,
        key: &str,
        defaults: Self,
        one: impl Fn(&Value, &str) -> Result<T, String>,
    ) -> Result<Self, String> {
        match value {
            Value::Object(table) => {
                let mut out = defaults;
                for (event, v) in table {
                    let kind = event.parse::<EventKind>().map_err(|_| {
                        format!(
                            "unknown event `{}` in `{key}`: expected start, stop, ban or unban",
                            truncate_chars(&flatten(event), 64)
                        )
                    })?;
                    out.set(kind, one(v, &format!("{key}.{kind}"))?);
                }
                Ok(out)
            }
            v => one(v, key).map(Self::all),
        }
    }
}

/// What a config value is, in words, for an error ("a number", "a table").
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(v: &Value, key: &str) -> Result<u8, String> {
        v.as_u64().and_then(|n| u8::try_from(n).ok()).ok_or_else(|| format!("`{key}` is {}", value_kind(v)))
    }

    #[test]
    fn one_value_or_a_table_of_some_events() {
        let defaults = PerEvent { start: 1, stop: 1, ban: 8, unban: 4 };
        assert_eq!(PerEvent::read(&serde_json::json!(5), "priority", defaults, number), Ok(PerEvent::all(5)));
        let some = PerEvent::read(&serde_json::json!({"ban": 10}), "priority", defaults, number).unwrap();
        assert_eq!(some, PerEvent { ban: 10, ..defaults });
        assert_eq!(*some.get(EventKind::Unban), 4);
        assert_eq!(
            PerEvent::read(&serde_json::json!({"bann": 10}), "priority", defaults, number),
            Err("unknown event `bann` in `priority`: expected start, stop, ban or unban".to_owned())
        );
        assert_eq!(
            PerEvent::read(&serde_json::json!({"ban": "x"}), "priority", defaults, number),
            Err("`priority.ban` is a string".to_owned())
        );
    }
}
