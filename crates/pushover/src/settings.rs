//! The config values of a Pushover sink that need more than serde's types: the priority per
//! event (one value for every event, or a table), and the shapes Pushover gives its keys,
//! device names and URLs (D: https://pushover.net/api, `#identifiers`, `#messages`,
//! `#priority`, `#limits`).

use f2b_notify_core::{flatten, truncate_chars, value_kind, ConfigError, EventKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A value from the config for an error message: one line, and short.
pub(crate) fn shown(value: &str) -> String {
    truncate_chars(&flatten(value), 64).into_owned()
}

/// A Pushover priority, -2 to 2 (D: `#priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(i8);

impl Priority {
    /// -2: no notification at all, only a badge in the app.
    pub const LOWEST: Self = Self(-2);
    /// -1: a quiet notification, no sound or vibration.
    pub const LOW: Self = Self(-1);
    /// 0: the user's default sound and vibration (quiet hours respected).
    pub const NORMAL: Self = Self(0);
    /// 1: bypasses the user's quiet hours.
    pub const HIGH: Self = Self(1);
    /// 2: repeated every `retry` seconds until acknowledged or `expire` runs out.
    pub const EMERGENCY: Self = Self(2);

    /// The number Pushover takes.
    pub fn get(self) -> i8 {
        self.0
    }

    /// A number from -2 to 2, or a name: `lowest`, `low`, `normal`, `high`, `emergency`
    /// (the names Pushover's documentation gives the numbers), in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "-2" | "lowest" => Self::LOWEST,
            "-1" | "low" => Self::LOW,
            "0" | "normal" => Self::NORMAL,
            "1" | "high" => Self::HIGH,
            "2" | "emergency" => Self::EMERGENCY,
            _ => return None,
        })
    }

    fn from_value(v: &Value, key: &str) -> Result<Self, String> {
        let parsed = match v {
            Value::Number(n) => n.as_i64().filter(|n| (-2..=2).contains(n)).map(|n| Self(n as i8)),
            Value::String(s) => Self::parse(s),
            other => {
                return Err(format!("`{key}` must be a priority (-2 to 2, or a name), not {}", value_kind(other)));
            }
        };
        let text = match v {
            Value::String(s) => shown(s),
            other => other.to_string(),
        };
        parsed.ok_or_else(|| {
            format!(
                "`{key}` = `{text}` is not a Pushover priority: use -2 to 2, or lowest, low, normal, high, emergency"
            )
        })
    }
}

/// The priority of each event's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priorities {
    /// A jail started.
    pub start: Priority,
    /// A jail stopped.
    pub stop: Priority,
    /// An address was banned.
    pub ban: Priority,
    /// An address was unbanned.
    pub unban: Priority,
}

impl Default for Priorities {
    /// A ban notifies with the user's sound; the rest arrive quietly.
    fn default() -> Self {
        Self { start: Priority::LOW, stop: Priority::LOW, ban: Priority::NORMAL, unban: Priority::LOW }
    }
}

impl Priorities {
    /// The priority for `kind`.
    pub fn get(&self, kind: EventKind) -> Priority {
        match kind {
            EventKind::Start => self.start,
            EventKind::Stop => self.stop,
            EventKind::Ban => self.ban,
            EventKind::Unban => self.unban,
        }
    }

    fn set(&mut self, kind: EventKind, p: Priority) {
        match kind {
            EventKind::Start => self.start = p,
            EventKind::Stop => self.stop = p,
            EventKind::Ban => self.ban = p,
            EventKind::Unban => self.unban = p,
        }
    }

    /// The config key of the first event whose priority is 2 (emergency), as written:
    /// `priority` when one value is given for all, `priority.ban` in a table.
    pub fn emergency_key(&self, table: bool) -> Option<String> {
        EventKind::ALL.into_iter().find(|&k| self.get(k) == Priority::EMERGENCY).map(|k| {
            if table {
                format!("priority.{k}")
            } else {
                "priority".to_owned()
            }
        })
    }
}

/// The `priority` key as written: whether it was a table matters for naming the key in an
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriorityConfig {
    /// The priority per event.
    pub values: Priorities,
    /// Whether the config gave a table (`priority = { ban = 1 }`).
    pub table: bool,
}

impl<'de> Deserialize<'de> for PriorityConfig {
    /// One priority for every event (`priority = 1`, `priority = "high"`), or a table of
    /// some events (`priority = { ban = 1 }`; the others keep their defaults).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let mut out = Priorities::default();
        match &value {
            Value::Object(table) => {
                for (key, v) in table {
                    let kind = key.parse::<EventKind>().map_err(|_| {
                        serde::de::Error::custom(format!(
                            "unknown event `{}` in `priority`: expected start, stop, ban or unban",
                            shown(key)
                        ))
                    })?;
                    let p = Priority::from_value(v, &format!("priority.{kind}")).map_err(serde::de::Error::custom)?;
                    out.set(kind, p);
                }
                Ok(Self { values: out, table: true })
            }
            v => {
                let p = Priority::from_value(v, "priority").map_err(serde::de::Error::custom)?;
                Ok(Self { values: Priorities { start: p, stop: p, ban: p, unban: p }, table: false })
            }
        }
    }
}

/// Whether `key` has the shape of Pushover's tokens and keys: 30 of `A-Za-z0-9`, case
/// sensitive (D: `#identifiers`, `#registration`).
pub fn valid_key(key: &str) -> bool {
    key.len() == 30 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The most recipient keys one message may name (D: `#identifiers`).
pub const MAX_USERS: usize = 50;

/// What is wrong with a `user` value's shape, in words that never quote it: a user or group
/// key, or up to 50 separated by commas without spaces.
pub fn user_problem(user: &str) -> Option<String> {
    let keys: Vec<&str> = user.split(',').collect();
    if keys.len() > MAX_USERS {
        return Some(format!("it names {} keys: Pushover takes at most {MAX_USERS} in one message", keys.len()));
    }
    if keys.iter().any(|k| !valid_key(k)) {
        return Some(if keys.len() == 1 {
            "a user or group key is 30 letters and digits (your dashboard at pushover.net shows it)".to_owned()
        } else {
            "each key is 30 letters and digits, separated by commas without spaces".to_owned()
        });
    }
    None
}

/// The most characters of one device name (D: `#messages`).
pub const MAX_DEVICE: usize = 25;

/// Checks `device`: one or more device names separated by commas, each 1 to 25 of
/// `A-Za-z0-9_-` (Pushover sends a message with an unknown device name to all devices
/// instead, so a typo is caught here).
pub fn device(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let ok = |d: &str| {
        (1..=MAX_DEVICE).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !text.split(',').all(ok) {
        return Err(ConfigError::new(format!(
            "`device` `{}` is not a Pushover device name: 1 to {MAX_DEVICE} of A-Z, a-z, 0-9, `_` and `-` (several separated by commas)",
            shown(text)
        )));
    }
    Ok(text.to_owned())
}

/// Checks `sound`: a sound's name (a built-in one such as `pushover`, `siren`, `none`, or
/// one uploaded to the account), without spaces or commas.
pub fn sound(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 100 || text.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
        return Err(ConfigError::new(format!(
            "`sound` `{}` is not a sound's name (like pushover, siren, spacealarm, none; see https://pushover.net/api#sounds)",
            shown(text)
        )));
    }
    Ok(text.to_owned())
}

/// Supplementary URLs hold at most 512 characters (D: `#limits`).
pub const MAX_URL: usize = 512;
/// A URL's title holds at most 100 characters (D: `#limits`).
pub const MAX_URL_TITLE: usize = 100;

/// Checks `url`: a URL (`https://…`, or an app's scheme) without spaces or line breaks, at
/// most 512 characters.
pub fn url(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let bad = |why: &str| ConfigError::new(format!("`url` `{}` {why}", shown(text)));
    if text.chars().count() > MAX_URL {
        return Err(bad(&format!("is longer than Pushover's {MAX_URL} characters")));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("holds a space or a line break"));
    }
    f2b_notify_http::Url::parse(text)
        .map_err(|e| bad(&format!("is not a URL: {}", f2b_notify_http::url_problem(text, &e))))?;
    Ok(text.to_owned())
}

/// Checks `url_title`: one line of at most 100 characters.
pub fn url_title(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_URL_TITLE || text.chars().any(char::is_control) {
        return Err(ConfigError::new(format!(
            "`url_title` `{}` must be one line of 1 to {MAX_URL_TITLE} characters",
            shown(text)
        )));
    }
    Ok(text.to_owned())
}

/// In the configuration reference: one priority (a number or a name), or a table per event.
impl schemars::JsonSchema for PriorityConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PriorityConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string", "object"] })
    }
}
