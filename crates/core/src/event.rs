//! What Fail2Ban tells us: one jail start/stop or one ban/unban, with the ticket's fields.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four things Fail2Ban runs an action for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `actionstart`: the jail started.
    Start,
    /// `actionstop`: the jail stopped.
    Stop,
    /// `actionban`: an address (or other id) was banned.
    Ban,
    /// `actionunban`: an address was unbanned.
    Unban,
}

impl EventKind {
    /// Every kind, in the order an administrator reads them.
    pub const ALL: [EventKind; 4] = [Self::Start, Self::Stop, Self::Ban, Self::Unban];

    /// The lowercase name used on the command line, in config and in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Ban => "ban",
            Self::Unban => "unban",
        }
    }

    /// Whether this kind is about one banned id (and so needs `--ip`).
    pub fn has_target(self) -> bool {
        matches!(self, Self::Ban | Self::Unban)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a word that is not `start`, `stop`, `ban` or `unban`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown event `{0}`: expected one of start, stop, ban, unban")]
pub struct ParseEventKindError(pub String);

impl FromStr for EventKind {
    type Err = ParseEventKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(Self::Start),
            "stop" => Ok(Self::Stop),
            "ban" => Ok(Self::Ban),
            "unban" => Ok(Self::Unban),
            other => Err(ParseEventKindError(other.to_owned())),
        }
    }
}

/// One event from Fail2Ban.
///
/// `user` and `matches` come straight from a log line, so they are attacker-controlled: every
/// sink must treat them as data (escape them for mrkdwn, keep them out of mail headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The jail's name (`<name>`).
    pub jail: String,
    /// The banned id as Fail2Ban gave it (`<ip>`); usually an address, but any text is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `id` parsed as an IPv4/IPv6 address, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// How many failures led to the ban (`<failures>`; 0 for a manual `banip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// When the ban happened, seconds since the epoch (`<time>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The ban's length in seconds (`<bantime>`); -1 means permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bantime: Option<i64>,
    /// Whether Fail2Ban restored this ban from its database at restart (`<restored>`).
    #[serde(default)]
    pub restored: bool,
    /// The user name the log line named (`<F-USER>`): attacker-controlled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The matched log lines (`<matches>`): attacker-controlled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// The name of the host that runs Fail2Ban.
    pub host: String,
}

impl Event {
    /// A jail start/stop event.
    pub fn jail_event(kind: EventKind, jail: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            kind,
            jail: jail.into(),
            id: None,
            ip: None,
            failures: None,
            time: None,
            bantime: None,
            restored: false,
            user: None,
            matches: None,
            host: host.into(),
        }
    }

    /// A ban/unban event for `id`; `ip` is filled in when `id` is an address.
    pub fn target_event(
        kind: EventKind,
        jail: impl Into<String>,
        id: impl Into<String>,
        host: impl Into<String>,
    ) -> Self {
        let id = id.into();
        let mut event = Self::jail_event(kind, jail, host);
        event.ip = parse_ip(&id);
        event.id = Some(id);
        event
    }

    /// Whether the banned id is something other than an IP address.
    pub fn id_is_not_ip(&self) -> bool {
        self.id.is_some() && self.ip.is_none()
    }
}

/// Parses an address the way Fail2Ban prints them; IPv6 may come in brackets.
fn parse_ip(id: &str) -> Option<IpAddr> {
    let trimmed = id.trim();
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        let err = "bann".parse::<EventKind>().unwrap_err();
        assert!(err.to_string().contains("`bann`"));
    }

    #[test]
    fn target_ids() {
        let v4 = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "h");
        assert_eq!(v4.ip, Some("203.0.113.7".parse().unwrap()));
        let v6 = Event::target_event(EventKind::Ban, "sshd", "2001:db8::1", "h");
        assert!(v6.ip.unwrap().is_ipv6());
        let bracketed = Event::target_event(EventKind::Ban, "sshd", "[2001:db8::1]", "h");
        assert!(bracketed.ip.is_some());
        let other = Event::target_event(EventKind::Ban, "sshd", "user@example", "h");
        assert!(other.ip.is_none());
        assert!(other.id_is_not_ip());
        assert!(!v4.id_is_not_ip());
    }
}
