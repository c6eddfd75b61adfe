//! The config values of a Gotify sink that need more than serde's types: the priority per
//! event (one number for every event, or a table), and the server's base URL turned into the
//! address messages are posted to.

use f2b_notify_core::{flatten, truncate_chars, value_kind, ConfigError, EventKind, PerEvent};
use f2b_notify_http::{parse_url, Url, UrlKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A value from the config for an error message: one line, and short.
fn shown(value: &str) -> String {
    truncate_chars(&flatten(value), 64).into_owned()
}

/// A Gotify message priority, 0 to 10. Gotify itself stores any integer (S: model/message.go,
/// no validation); its clients read 0 to 10. The Android app files each message in a
/// notification channel by priority (D: github.com/gotify/android#message-priorities; S:
/// `NotificationSupport.convertPriorityToChannel`): 0 (or less) minimal importance, no icon
/// in the status bar; 1–3 low, an icon without sound; 4–7 default, with sound; 8 and more high
/// importance, with sound and vibration, shown as a heads-up notification over the current
/// app. The web UI plays a sound from 4 (D: https://gotify.net/docs/priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(u8);

impl Priority {
    /// The highest priority the clients know.
    pub const MAX: u8 = 10;
    /// A ban: 8, the lowest priority the Android app shows as a heads-up notification, with
    /// sound and vibration.
    pub const BAN: Self = Self(8);
    /// An unban: 4, the lowest with sound; no heads-up.
    pub const UNBAN: Self = Self(4);
    /// A jail's start or stop: 2, an icon in the status bar without sound.
    pub const JAIL: Self = Self(2);

    /// A priority from 0 to 10.
    pub fn new(n: u8) -> Option<Self> {
        (n <= Self::MAX).then_some(Self(n))
    }

    /// The number sent.
    pub fn get(self) -> u8 {
        self.0
    }

    fn from_value(v: &Value, key: &str) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(Self::new)
                .ok_or_else(|| format!("`{key}` = `{n}` is not a Gotify priority: use a whole number from 0 to 10")),
            other => {
                Err(format!("`{key}` must be a priority (a whole number from 0 to 10), not {}", value_kind(other)))
            }
        }
    }
}

/// The priority of each event's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priorities(pub PerEvent<Priority>);

impl Default for Priorities {
    /// A ban is worth a heads-up notification (8); an unban a sound (4); a jail's start and
    /// stop only an icon (2).
    fn default() -> Self {
        Self(PerEvent { start: Priority::JAIL, stop: Priority::JAIL, ban: Priority::BAN, unban: Priority::UNBAN })
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
    /// One priority for every event (`priority = 5`), or a table of some events
    /// (`priority = { ban = 10 }`; the others keep their defaults).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        PerEvent::read(&value, "priority", Self::default().0, Priority::from_value)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's base URL as configured, without a trailing `/` (shown in `test --dry-run`).
    pub base: String,
    /// `POST` here: the base URL's path (a reverse proxy's prefix, if any) and `/message`.
    pub endpoint: Url,
    /// `check`'s warning when the URL is plain http:// to another machine.
    pub cleartext: Option<String>,
}

/// Checks `url` (the server's base URL) and makes the message endpoint from it. A URL with a
/// user or password, a query or a fragment is refused without being quoted (`https://u:p@…`,
/// `?token=…` carry credentials); any other mistake quotes it, as the admin wrote it, so that
/// it can be found and fixed (the address of a Gotify server is not a secret).
pub fn target(text: &str) -> Result<Target, ConfigError> {
    let text = text.trim();
    let authority = text.split_once("://").map_or(text, |(_, rest)| rest).split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(ConfigError::new(
            "`url` must not hold a user name or password (not shown): give the application token as `token` or `token_file`",
        ));
    }
    if text.contains(['?', '#']) {
        return Err(ConfigError::new(
            "`url` must not have a query or fragment (`?…`, `#…`; not shown): write only the server's base URL, and the application token as `token` or `token_file` (sent in a header, never in the URL)",
        ));
    }
    let (url, cleartext) = parse_url(text, "url", UrlKind::Public, "the application token")?;
    let path = url.path().trim_end_matches('/');
    if path.rsplit('/').next() == Some("message") {
        return Err(ConfigError::new(format!(
            "`url` `{}` ends in `/message`: write the server's base URL (https://gotify.example.com, or with the reverse proxy's path prefix, https://example.com/gotify); `/message` is added",
            shown(text)
        )));
    }
    let mut endpoint = url.clone();
    endpoint.set_path(&format!("{path}/message"));
    let base = text.trim_end_matches('/').to_owned();
    Ok(Target { base, endpoint, cleartext })
}

/// Whether `token` looks like a Gotify *client* token (the web UI's Clients page: a phone's
/// or browser's, for reading messages), which cannot send: `C` and 14 characters on v2
/// servers (S: auth/token.go, `clientPrefix`), `gtfy_client…` on newer ones.
pub fn looks_like_client_token(token: &str) -> bool {
    (token.len() == 15 && token.starts_with('C')) || token.starts_with("gtfy_client")
}

/// In the configuration reference: one priority, or a table of them per event.
impl schemars::JsonSchema for Priorities {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Priorities".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "object"] })
    }
}
