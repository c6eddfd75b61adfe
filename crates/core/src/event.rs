//! What Fail2Ban tells us: one jail start/stop or one ban/unban, with the ticket's fields.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use f2b_notify_fastpath::{Kind, Notify};
use serde::{Deserialize, Serialize};

use crate::Context;

/// The four things Fail2Ban runs an action for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
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
        Kind::from(self).as_str()
    }

    /// Whether this kind is about one banned id (and so needs `--ip`).
    pub fn has_target(self) -> bool {
        Kind::from(self).has_target()
    }
}

// The action contract's `Kind` (no_std, no serde) and this serde-aware twin, tied by
// exhaustive matches: a fifth kind cannot be added to one and not the other.
impl From<Kind> for EventKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Start => Self::Start,
            Kind::Stop => Self::Stop,
            Kind::Ban => Self::Ban,
            Kind::Unban => Self::Unban,
        }
    }
}

impl From<EventKind> for Kind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Start => Kind::Start,
            EventKind::Stop => Kind::Stop,
            EventKind::Ban => Kind::Ban,
            EventKind::Unban => Kind::Unban,
        }
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
        Kind::parse(s.as_bytes()).map(Self::from).ok_or_else(|| ParseEventKindError(s.to_owned()))
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
    /// How often Fail2Ban has banned this address, this ban included (`<bancount>`, passed by
    /// the action as `--bancount`): 4 is "banned for the 4th time". Fail2Ban counts bans only
    /// with `bantime.increment`; without it the count stays 0 or 1 and nothing is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bancount: Option<u64>,
    /// What enrichment (`[enrich]`) found about `ip`: its reverse DNS name, country, city and
    /// network. The worker fills it in just before a send; it is never spooled, and empty
    /// when no lookup is configured or none found anything in time.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
}

impl Event {
    /// This event with `matches` and `user` cut to at most `max_matches` and `max_user`
    /// characters (a sink's limits), borrowed when nothing needed cutting.
    pub fn capped(&self, max_matches: usize, max_user: usize) -> std::borrow::Cow<'_, Event> {
        use std::borrow::Cow;
        let mut event = Cow::Borrowed(self);
        if let Some(m) = &event.matches {
            if let Cow::Owned(cut) = crate::truncate_chars(m, max_matches) {
                event.to_mut().matches = Some(cut);
            }
        }
        if let Some(u) = &event.user {
            if let Cow::Owned(cut) = crate::truncate_chars(u, max_user) {
                event.to_mut().user = Some(cut);
            }
        }
        event
    }

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
            bancount: None,
            context: Context::default(),
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
        event.ip = f2b_notify_fastpath::args::parse_ip(&id);
        event.id = Some(id);
        event
    }

    /// "4th" for a `bancount` of 4: the ban's repeat, when Fail2Ban counted more than one.
    /// A ban restored at Fail2Ban's restart (and its unban) carries one more than the ban had
    /// (Fail2Ban reads the count back from its database, then counts the ban again): that one
    /// is not a repeat and is taken off.
    pub fn repeat(&self) -> Option<String> {
        let n = self.bancount?.saturating_sub(u64::from(self.restored));
        (n >= 2).then(|| ordinal(n))
    }

    /// What is known about the banned address beyond the ban, labelled, in the order a reader
    /// wants them: the host name (a [`ContextValue::Name`], which sinks show like the address),
    /// then location, network and repeat as text: `("Location", "Tokyo, Japan (JP)")`,
    /// `("Network", "AS64500 Example Net")`, `("Repeat", "4th ban")`. Not escaped for any
    /// markup: each sink escapes them like any other event text. Empty when enrichment found
    /// nothing and Fail2Ban counted no repeat.
    pub fn context_parts(&self) -> Vec<(&'static str, ContextValue)> {
        let c = &self.context;
        let name = c
            .hostname
            .clone()
            .map(|name| ContextValue::Name { name, unconfirmed: c.hostname_confirmed == Some(false) });
        let text = |v: Option<String>| v.map(ContextValue::Text);
        let repeat = self.repeat().map(|n| format!("{n} ban"));
        [("Host name", name), ("Location", text(c.place())), ("Network", text(c.network())), ("Repeat", text(repeat))]
            .into_iter()
            .filter_map(|(label, value)| Some((label, value?)))
            .collect()
    }

    /// [`Event::context_parts`] as plain text: `("Host name", "h.example (unconfirmed)")`, …
    pub fn context_fields(&self) -> Vec<(&'static str, String)> {
        self.context_parts().into_iter().map(|(label, value)| (label, value.to_string())).collect()
    }

    /// Whether the banned id is something other than an IP address.
    pub fn id_is_not_ip(&self) -> bool {
        self.id.is_some() && self.ip.is_none()
    }

    /// The event that `notify` describes, from `host`.
    pub fn from_notify(n: Notify, host: impl Into<String>) -> Self {
        Self {
            kind: n.kind.into(),
            jail: n.jail,
            id: n.id,
            ip: n.ip,
            failures: n.failures,
            time: n.time,
            bantime: n.bantime,
            restored: n.restored,
            user: n.user,
            matches: n.matches,
            host: host.into(),
            bancount: n.bancount,
            context: Context::default(),
        }
    }

    /// The action contract's view of this event (all but `host`), for the spool's writer.
    pub fn to_notify(&self) -> Notify {
        Notify {
            kind: self.kind.into(),
            jail: self.jail.clone(),
            id: self.id.clone(),
            ip: self.ip,
            failures: self.failures,
            time: self.time,
            bantime: self.bantime,
            restored: self.restored,
            user: self.user.clone(),
            matches: self.matches.clone(),
            bancount: self.bancount,
        }
    }
}

/// One value of [`Event::context_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// The PTR name (whatever the owner of the address's reverse zone wrote), to be shown like
    /// the address (in code where the sink has it), with "(unconfirmed)" after it when it does
    /// not resolve back to the address.
    Name {
        /// The name.
        name: String,
        /// It did not resolve back to the address.
        unconfirmed: bool,
    },
    /// Plain text.
    Text(String),
}

impl ContextValue {
    /// " (unconfirmed)" for an unconfirmed name, else empty: what follows the name.
    pub fn note(&self) -> &'static str {
        match self {
            Self::Name { unconfirmed: true, .. } => " (unconfirmed)",
            _ => "",
        }
    }
}

impl std::fmt::Display for ContextValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name { name, .. } => write!(f, "{name}{}", self.note()),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// "1st", "2nd", "3rd", "4th", "11th", "21st", "112th".
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_and_repeats() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111, 112].into_iter().map(ordinal).collect();
        assert_eq!(
            words,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th", "112th"]
        );
        let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "h");
        assert_eq!(e.repeat(), None);
        e.bancount = Some(1);
        assert_eq!(e.repeat(), None, "a first ban is no repeat");
        e.bancount = Some(4);
        assert_eq!(e.repeat().as_deref(), Some("4th"));
        // Restored at a restart: Fail2Ban counted the same ban twice.
        e.restored = true;
        assert_eq!(e.repeat().as_deref(), Some("3rd"));
        e.bancount = Some(2);
        assert_eq!(e.repeat(), None, "a first ban, restored");
        e.restored = false;
        e.bancount = Some(4);
        assert_eq!(e.context_fields(), [("Repeat", "4th ban".to_owned())]);
        e.context.hostname = Some("h.example".into());
        e.context.hostname_confirmed = Some(false);
        e.context.asn = Some(64500);
        assert_eq!(
            e.context_fields(),
            [
                ("Host name", "h.example (unconfirmed)".to_owned()),
                ("Network", "AS64500".to_owned()),
                ("Repeat", "4th ban".to_owned())
            ]
        );
    }

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
