//! The config values of an ntfy sink that need more than serde's types: the priority and
//! tags per event (one value for every event, or a table), and the publish URL taken apart
//! into the server's root (where the JSON form is posted) and the topic.

use f2b_notify_core::{flatten, truncate_chars, value_kind, ConfigError, EventKind, PerEvent};
use f2b_notify_http::{parse_url, Url, UrlKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A value from the config for an error message: one line, and short.
fn shown(value: &str) -> String {
    truncate_chars(&flatten(value), 64).into_owned()
}

/// An ntfy message priority, 1 (min) to 5 (max). ntfy's JSON form takes it as a number, so
/// the names are turned into numbers here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(u8);

impl Priority {
    /// 1: no sound or vibration, folded away.
    pub const MIN: Self = Self(1);
    /// 2: no sound or vibration.
    pub const LOW: Self = Self(2);
    /// 3: the default.
    pub const DEFAULT: Self = Self(3);
    /// 4: long vibration, pop-over notification.
    pub const HIGH: Self = Self(4);
    /// 5: very long vibration bursts, pop-over notification.
    pub const MAX: Self = Self(5);

    /// The number ntfy's JSON form takes.
    pub fn get(self) -> u8 {
        self.0
    }

    /// What ntfy accepts for `X-Priority` (D: docs.ntfy.sh/publish/#message-priority):
    /// `1`..`5`, `min`, `low`, `default`, `high`, `max` and `urgent` (5), in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "1" | "min" => Self::MIN,
            "2" | "low" => Self::LOW,
            "3" | "default" => Self::DEFAULT,
            "4" | "high" => Self::HIGH,
            "5" | "max" | "urgent" => Self::MAX,
            _ => return None,
        })
    }

    fn from_value(v: &Value, key: &str) -> Result<Self, String> {
        let parsed = match v {
            Value::Number(n) => n.as_u64().filter(|n| (1..=5).contains(n)).map(|n| Self(n as u8)),
            Value::String(s) => Self::parse(s),
            other => {
                return Err(format!("`{key}` must be a priority (1 to 5, or a name), not {}", value_kind(other)));
            }
        };
        let text = match v {
            Value::String(s) => shown(s),
            other => other.to_string(),
        };
        parsed.ok_or_else(|| {
            format!("`{key}` = `{text}` is not an ntfy priority: use 1 to 5, or min, low, default, high, max (urgent)")
        })
    }
}

/// The priority of each event's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priorities(pub PerEvent<Priority>);

impl Default for Priorities {
    /// A ban is worth a pop-over; an unban is routine; a jail's start and stop are quiet.
    fn default() -> Self {
        Self(PerEvent { start: Priority::LOW, stop: Priority::LOW, ban: Priority::HIGH, unban: Priority::DEFAULT })
    }
}

impl Priorities {
    /// The priority for `kind`.
    pub fn get(&self, kind: EventKind) -> Priority {
        *self.0.get(kind)
    }
}

impl std::ops::Deref for Priorities {
    type Target = PerEvent<Priority>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Priorities {
    /// One priority for every event (`priority = "high"`, `priority = 4`), or a table of some
    /// events (`priority = { ban = "max" }`; the others keep their defaults).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        PerEvent::read(&value, "priority", Self::default().0, Priority::from_value)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// All of a message's tags together may hold at most 512 bytes (ntfy v2.28 refuses more
/// with 40058; D: github.com/binwiederhier/ntfy/releases/tag/v2.28.0).
pub const MAX_TAGS_BYTES: usize = 512;

/// The tags of each event's message. A tag that is an emoji short code (`no_entry`,
/// `warning`) is shown as the emoji in front of the title; any other is shown as text below
/// the message (D: docs.ntfy.sh/publish/#tags-emojis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(pub PerEvent<Vec<String>>);

impl Default for Tags {
    /// ⛔ for a ban, ✅ for an unban, ▶️ and 🛑 for a jail's start and stop.
    fn default() -> Self {
        let one = |t: &str| vec![t.to_owned()];
        Self(PerEvent {
            start: one("arrow_forward"),
            stop: one("stop_sign"),
            ban: one("no_entry"),
            unban: one("white_check_mark"),
        })
    }
}

impl std::ops::Deref for Tags {
    type Target = PerEvent<Vec<String>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Tags {
    /// The tags for `kind`.
    pub fn get(&self, kind: EventKind) -> &[String] {
        self.0.get(kind)
    }

    /// A list of tags: strings without a comma (the server joins the JSON list with commas
    /// into its `X-Tags` header and splits it again, S: transformBodyJSON) or a control
    /// character, together at most [`MAX_TAGS_BYTES`].
    fn list(v: &Value, key: &str) -> Result<Vec<String>, String> {
        let Value::Array(items) = v else {
            return Err(format!("`{key}` must be a list of strings, not {}", value_kind(v)));
        };
        let mut out = Vec::new();
        for item in items {
            let Value::String(tag) = item else {
                return Err(format!("`{key}` must be a list of strings, not a list holding {}", value_kind(item)));
            };
            let tag = tag.trim();
            if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_control) {
                return Err(format!(
                    "`{key}`: `{}` is not a tag: a tag is not empty and holds no comma or line break",
                    shown(tag)
                ));
            }
            out.push(tag.to_owned());
        }
        let joined = out.iter().map(String::len).sum::<usize>() + out.len().saturating_sub(1);
        if joined > MAX_TAGS_BYTES {
            return Err(format!(
                "`{key}` holds {joined} bytes of tags: ntfy takes at most {MAX_TAGS_BYTES} in all (joined by commas)"
            ));
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Tags {
    /// One list for every event (`tags = ["fail2ban"]`, `tags = []` for none), or a table of
    /// some events (`tags = { ban = ["no_entry", "sshd"] }`; the others keep their defaults).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        PerEvent::read(&value, "tags", Self::default().0, Self::list).map(Self).map_err(serde::de::Error::custom)
    }
}

/// Topic names ntfy's web app uses for itself, refused as topics with 400 40010 (S:
/// `disallowedTopics` in server/server.go).
const DISALLOWED_TOPICS: &[&str] =
    &["docs", "static", "file", "app", "account", "settings", "pricing", "signup", "login", "reset-password"];

/// ntfy's topic rule: 1 to 64 of `A-Z a-z 0-9 _ -` (S: `topicRegex` in server/server.go).
pub fn valid_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len()) && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The publish URL taken apart: the JSON form is posted to the server's root (`endpoint`),
/// the topic goes in the body.
#[derive(Clone)]
pub struct Target {
    /// Where the JSON form is posted: the URL without its last path segment, ending in `/`
    /// (`https://ntfy.sh/`, or `https://example.com/ntfy/` behind a proxy's path prefix).
    pub endpoint: Url,
    /// The topic.
    pub topic: String,
    /// `check`'s warning when the URL is plain http:// to another machine.
    pub cleartext: Option<String>,
}

/// The topic is not a password of the kind `token` is, but on a server without access
/// control it is all it takes to read and write the topic: `Debug` does not show it.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("endpoint", &self.endpoint.as_str()).field("topic", &"<not shown>").finish()
    }
}

/// Takes `url` apart. A URL with a user or password, a query or a fragment is refused
/// without being quoted (`https://u:p@…`, `?auth=…` carry credentials); any other mistake
/// quotes it, as the admin wrote it, so that it can be found and fixed. `secret` names what
/// would cross the network unencrypted over plain http://.
pub fn target(text: &str, secret: &str) -> Result<Target, ConfigError> {
    let text = text.trim();
    let authority = text.split_once("://").map_or(text, |(_, rest)| rest).split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(ConfigError::new(
            "`url` must not hold a user name or password (not shown): give them as `username` and `password`, or an access token as `token`",
        ));
    }
    if text.contains(['?', '#']) {
        return Err(ConfigError::new(
            "`url` must not have a query or fragment (`?…`, `#…`; not shown): write only the server and the topic, and an access token as `token`",
        ));
    }
    let (url, cleartext) = parse_url(text, "url", UrlKind::Public, secret)?;
    let path = url.path().trim_end_matches('/');
    let (parent, topic) = path.rsplit_once('/').unwrap_or(("", path));
    let example = "write it as https://ntfy.sh/YOUR-TOPIC (or https://your-server/YOUR-TOPIC)";
    if topic.is_empty() {
        return Err(ConfigError::new(format!("`url` `{}` names no topic: {example}", shown(text))));
    }
    if !valid_topic(topic) {
        return Err(ConfigError::new(format!(
            "`url` `{}`: the topic `{}` is not an ntfy topic name: 1 to 64 of A-Z, a-z, 0-9, `_` and `-`",
            shown(text),
            shown(topic)
        )));
    }
    if DISALLOWED_TOPICS.contains(&topic) {
        return Err(ConfigError::new(format!(
            "`url` `{}`: ntfy does not allow the topic name `{topic}` (its web app uses it): choose another",
            shown(text)
        )));
    }
    let mut endpoint = url.clone();
    endpoint.set_path(&format!("{parent}/"));
    Ok(Target { endpoint, topic: topic.to_owned(), cleartext })
}

/// The longest `click` URL taken: ntfy sets no limit of its own, but the JSON body must stay
/// under 8,192 bytes with the message in it.
pub const MAX_CLICK: usize = 1024;

/// Checks `click`: a URL (`https://…`, `mailto:…`, `geo:…`, `ntfy://…`) without spaces or
/// line breaks, at most [`MAX_CLICK`] bytes.
pub fn click(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let bad = |why: &str| ConfigError::new(format!("`click` `{}` {why}", shown(text)));
    if text.len() > MAX_CLICK {
        return Err(bad(&format!("is longer than {MAX_CLICK} bytes")));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("holds a space or a line break"));
    }
    Url::parse(text).map_err(|e| bad(&format!("is not a URL: {}", f2b_notify_http::url_problem(text, &e))))?;
    Ok(text.to_owned())
}

/// In the configuration reference: one priority, or a table of them per event.
impl schemars::JsonSchema for Priorities {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Priorities".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string", "object"] })
    }
}

/// In the configuration reference: one list of tags, or a table of lists per event.
impl schemars::JsonSchema for Tags {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tags".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["array", "object"] })
    }
}
