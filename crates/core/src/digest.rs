//! A digest: several events folded into one message, for a storm of bans or a burst that
//! arrived while a sink was busy or rate-limited. It names every address, per jail, so
//! nothing is lost by folding; sinks lay it out within their own limits.
//!
//! Every text this module hands out (host, jail names, ids) is flattened to one line: an id
//! is whatever Fail2Ban's `<ip>` held, and a CR/LF in it must not fake a line of the digest.

use serde::Serialize;

use crate::{flatten, Event, EventKind, Summary};

/// How many networks and countries a digest's origin line names at most.
pub const ORIGINS_TOP: usize = 3;

/// Several events for one sink, in the order they happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// The folded events.
    pub events: Vec<Event>,
}

/// What one jail did within a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JailSummary {
    /// The jail, flattened to one line.
    pub jail: String,
    /// Banned ids, in order, each flattened to one line.
    pub banned: Vec<String>,
    /// How many of the bans Fail2Ban restored from its database at a restart (old bans
    /// announced again, not a new attack).
    pub restored: usize,
    /// Unbanned ids, in order, each flattened to one line.
    pub unbanned: Vec<String>,
    /// How often the jail started.
    pub started: usize,
    /// How often the jail stopped.
    pub stopped: usize,
}

impl JailSummary {
    /// "banned 3" or "banned 3 (2 restored at restart)": the lead of the banned list.
    pub fn banned_lead(&self) -> String {
        match self.restored {
            0 => format!("banned {}", self.banned.len()),
            r => format!("banned {} ({r} restored at restart)", self.banned.len()),
        }
    }

    /// "2 started, 1 stopped": the jail events in words, or empty.
    pub fn jail_events(&self) -> String {
        let mut parts = Vec::new();
        if self.started > 0 {
            parts.push(if self.started == 1 {
                "started".to_owned()
            } else {
                format!("started {} times", self.started)
            });
        }
        if self.stopped > 0 {
            parts.push(if self.stopped == 1 {
                "stopped".to_owned()
            } else {
                format!("stopped {} times", self.stopped)
            });
        }
        parts.join(", ")
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Digest {
    /// Folds `events` (at least one).
    pub fn new(events: Vec<Event>) -> Self {
        Self { events }
    }

    /// The host the events came from (the first event's), flattened to one line.
    pub fn host(&self) -> String {
        self.events.first().map(|e| flatten(&e.host)).unwrap_or_default()
    }

    /// Per jail, in order of first appearance.
    pub fn jails(&self) -> Vec<JailSummary> {
        let mut out: Vec<JailSummary> = Vec::new();
        // Grouped by the jail's name as given; only the text shown is flattened.
        let mut names: Vec<&str> = Vec::new();
        for e in &self.events {
            let i = match names.iter().position(|&j| j == e.jail) {
                Some(i) => i,
                None => {
                    names.push(&e.jail);
                    out.push(JailSummary { jail: flatten(&e.jail), ..JailSummary::default() });
                    out.len() - 1
                }
            };
            let j = &mut out[i];
            let id = || e.id.as_deref().map(flatten).unwrap_or_default();
            match e.kind {
                EventKind::Ban => {
                    j.banned.push(id());
                    j.restored += usize::from(e.restored);
                }
                EventKind::Unban => j.unbanned.push(id()),
                EventKind::Start => j.started += 1,
                EventKind::Stop => j.stopped += 1,
            }
        }
        out
    }

    /// Counts of each kind: (bans, unbans, starts, stops).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |k| self.events.iter().filter(|e| e.kind == k).count();
        (n(EventKind::Ban), n(EventKind::Unban), n(EventKind::Start), n(EventKind::Stop))
    }

    /// The most important kind in the digest, for a colour: ban > unban > start/stop.
    pub fn dominant_kind(&self) -> EventKind {
        let (b, u, s, _) = self.counts();
        if b > 0 {
            EventKind::Ban
        } else if u > 0 {
            EventKind::Unban
        } else if s > 0 {
            EventKind::Start
        } else {
            EventKind::Stop
        }
    }

    /// One line: "Fail2Ban on host.example: 150 bans, 3 unbans in 2 jails".
    pub fn title(&self) -> String {
        format!("Fail2Ban on {}: {}", self.host(), self.summary())
    }

    /// What happened, counted: "150 bans, 3 unbans in 2 jails".
    pub fn summary(&self) -> String {
        let (b, u, s, t) = self.counts();
        let mut parts = Vec::new();
        let restored = self.events.iter().filter(|e| e.kind == EventKind::Ban && e.restored).count();
        if b > 0 && restored == b {
            parts.push(format!("{} restored at Fail2Ban's restart", count(b, "ban", "bans")));
        } else if b > 0 && restored > 0 {
            parts.push(format!("{} ({restored} restored at Fail2Ban's restart)", count(b, "ban", "bans")));
        } else if b > 0 {
            parts.push(count(b, "ban", "bans"));
        }
        if u > 0 {
            parts.push(count(u, "unban", "unbans"));
        }
        if s > 0 {
            parts.push(count(s, "jail start", "jail starts"));
        }
        if t > 0 {
            parts.push(count(t, "jail stop", "jail stops"));
        }
        let jails = self.jails().len();
        format!("{} in {}", parts.join(", "), count(jails, "jail", "jails"))
    }

    /// Where the banned addresses come from, counted by network and country (from what
    /// `[enrich]` found), the [`ORIGINS_TOP`] largest of each: `None` when no ban has a known
    /// country or network. [`Summary::line`] says it in one plain-text line ("41 addresses, 30
    /// of them from AS4134 CHINANET, …"), attacker-influenced names included: escape it.
    pub fn origins(&self) -> Option<Summary> {
        let contexts: Vec<crate::Context> =
            self.events.iter().filter(|e| e.kind == EventKind::Ban).map(|e| e.context.clone()).collect();
        let summary = Summary::of(&contexts, ORIGINS_TOP);
        (!summary.networks.is_empty() || !summary.countries.is_empty()).then_some(summary)
    }

    /// The whole digest as plain text: the title, the origins line when enrichment found
    /// something, then per jail what happened and every id.
    pub fn plain_text(&self) -> String {
        let mut out = self.title();
        out.push('\n');
        if let Some(origins) = self.origins() {
            out.push_str(&format!("Banned: {}\n", origins.line()));
        }
        for j in self.jails() {
            out.push('\n');
            out.push_str(&j.jail);
            out.push_str(":\n");
            let events = j.jail_events();
            if !events.is_empty() {
                out.push_str(&format!("  jail {events}\n"));
            }
            if !j.banned.is_empty() {
                out.push_str(&format!("  {}: {}\n", j.banned_lead(), j.banned.join(", ")));
            }
            if !j.unbanned.is_empty() {
                out.push_str(&format!("  unbanned {}: {}\n", j.unbanned.len(), j.unbanned.join(", ")));
            }
        }
        out
    }
}

/// Splits `items` (already formatted) into chunks joined by ", " of at most `max_chars`
/// characters each, so a long list spreads over several blocks instead of being cut.
pub fn chunk_list(items: &[String], max_chars: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    for item in items {
        let n = item.chars().count();
        let extra = if current.is_empty() { n } else { n + 2 };
        if !current.is_empty() && len + extra > max_chars {
            chunks.push(std::mem::take(&mut current));
            len = 0;
        }
        if !current.is_empty() {
            current.push_str(", ");
            len += 2;
        }
        current.push_str(item);
        len += n;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_bans_say_so() {
        let ban = |ip: &str, restored: bool| {
            let mut e = Event::target_event(EventKind::Ban, "sshd", ip, "h");
            e.restored = restored;
            e
        };
        let all = Digest::new(vec![ban("192.0.2.1", true), ban("192.0.2.2", true)]);
        assert_eq!(all.summary(), "2 bans restored at Fail2Ban's restart in 1 jail");
        assert!(
            all.plain_text().contains("  banned 2 (2 restored at restart): 192.0.2.1, 192.0.2.2"),
            "{}",
            all.plain_text()
        );
        let some = Digest::new(vec![ban("192.0.2.1", true), ban("192.0.2.3", false)]);
        assert_eq!(some.summary(), "2 bans (1 restored at Fail2Ban's restart) in 1 jail");
        let none = Digest::new(vec![ban("192.0.2.3", false)]);
        assert_eq!(none.summary(), "1 ban in 1 jail");
        assert_eq!(none.jails()[0].banned_lead(), "banned 1");
    }

    #[test]
    fn folds_per_jail() {
        let mut events = Vec::new();
        events.push(Event::jail_event(EventKind::Start, "web", "h"));
        for i in 0..3 {
            events.push(Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h"));
        }
        events.push(Event::target_event(EventKind::Unban, "sshd", "192.0.2.0", "h"));
        events.push(Event::target_event(EventKind::Ban, "web", "198.51.100.1", "h"));
        let d = Digest::new(events);
        assert_eq!(d.title(), "Fail2Ban on h: 4 bans, 1 unban, 1 jail start in 2 jails");
        let jails = d.jails();
        assert_eq!(jails[0].jail, "web");
        assert_eq!(jails[0].jail_events(), "started");
        assert_eq!(jails[1].banned, ["192.0.2.0", "192.0.2.1", "192.0.2.2"]);
        assert_eq!(jails[1].unbanned, ["192.0.2.0"]);
        assert_eq!(d.dominant_kind(), EventKind::Ban);
        let text = d.plain_text();
        assert!(
            text.contains("sshd:\n  banned 3: 192.0.2.0, 192.0.2.1, 192.0.2.2\n  unbanned 1: 192.0.2.0\n"),
            "{text}"
        );
    }

    #[test]
    fn hostile_ids_jails_and_hosts_add_no_line() {
        let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
        let events = vec![
            Event::target_event(EventKind::Ban, "sshd", evil, "h\nFAKE HOST"),
            Event::target_event(EventKind::Ban, "ssh\rFAKE JAIL", "192.0.2.1", "h"),
            Event::target_event(EventKind::Unban, "sshd", evil, "h"),
        ];
        let d = Digest::new(events);
        let text = d.plain_text();
        // Title, blank, and per jail: a blank line, its name, its lists.
        assert!(!text.lines().any(|l| l.starts_with("FAKE")), "{text}");
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().count(), 8, "{text}");
        assert!(text.contains("banned 1: 198.51.100.1  FAKE LINE: banned 10.0.0.1\n"), "{text}");
        assert_eq!(d.host(), "h FAKE HOST");
        let jails = d.jails();
        assert_eq!(jails.len(), 2);
        assert_eq!(jails[1].jail, "ssh FAKE JAIL");
        assert!(jails.iter().flat_map(|j| j.banned.iter().chain(&j.unbanned)).all(|id| !id.contains(['\r', '\n'])));
    }

    #[test]
    fn origins_count_the_bans_by_network_and_country() {
        let ban = |i: u8, asn: Option<u32>, code: &str| {
            let mut e = Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h");
            e.context.asn = asn;
            e.context.as_org = asn.map(|_| "CHINANET".to_owned());
            e.context.country_code = Some(code.to_owned());
            e
        };
        let mut events: Vec<Event> = (0..30).map(|i| ban(i, Some(4134), "CN")).collect();
        events.extend((30..41).map(|i| ban(i, None, "RU")));
        events.push(Event::target_event(EventKind::Unban, "sshd", "192.0.2.1", "h"));
        let d = Digest::new(events);
        let o = d.origins().unwrap();
        assert_eq!(o.addresses, 41, "unbans are not counted");
        assert_eq!(o.line(), "41 addresses, 30 of them from AS4134 CHINANET; countries: CN 30, RU 11");
        assert!(
            d.plain_text().contains("\nBanned: 41 addresses, 30 of them from AS4134 CHINANET;"),
            "{}",
            d.plain_text()
        );
        let bare = Digest::new(vec![Event::target_event(EventKind::Ban, "sshd", "192.0.2.1", "h")]);
        assert_eq!(bare.origins(), None);
        assert!(!bare.plain_text().contains("Banned:"));
    }

    #[test]
    fn chunks_keep_every_item() {
        let items: Vec<String> = (0..200).map(|i| format!("203.0.113.{i}")).collect();
        let chunks = chunk_list(&items, 100);
        assert!(chunks.iter().all(|c| c.chars().count() <= 100));
        let back: Vec<&str> = chunks.iter().flat_map(|c| c.split(", ")).collect();
        assert_eq!(back, items.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
