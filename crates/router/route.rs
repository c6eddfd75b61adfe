//! The routing table: which route a jail's events take. An exact jail name beats a glob, a
//! longer glob beats a shorter one, and `*` comes last.

use f2b_notify_core::{Event, EventKind};

use crate::config::RouteConfig;

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// The pattern as written in the config (`sshd`, `nginx-*`, `*`).
    pub pattern: String,
    glob: Option<glob::Pattern>,
    /// The route's settings.
    pub config: RouteConfig,
}

/// Every route, in the order they are tried.
#[derive(Debug, Default)]
pub struct Table {
    routes: Vec<Route>,
}

/// What the table says about one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Send it to these sinks.
    Send(&'a [String]),
    /// No route matches the jail.
    NoRoute,
    /// The route matches but does not want this kind of event.
    Filtered,
    /// A ban restored at restart, and the route keeps those quiet.
    Restored,
}

impl Table {
    /// Builds the table; patterns were checked when the config was loaded.
    pub fn new<'a>(jails: impl IntoIterator<Item = (&'a String, &'a RouteConfig)>) -> Self {
        let mut routes: Vec<Route> = jails
            .into_iter()
            .map(|(pattern, config)| Route {
                pattern: pattern.clone(),
                glob: is_glob(pattern).then(|| glob::Pattern::new(pattern).ok()).flatten(),
                config: config.clone(),
            })
            .collect();
        routes.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.pattern.cmp(&b.pattern)));
        Self { routes }
    }

    /// The routes in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route `jail` takes, if any.
    pub fn find(&self, jail: &str) -> Option<&Route> {
        self.routes.iter().find(|r| match &r.glob {
            None => r.pattern == jail,
            Some(g) => g.matches(jail),
        })
    }

    /// What to do with `event`.
    pub fn decide(&self, event: &Event) -> Decision<'_> {
        let Some(route) = self.find(&event.jail) else { return Decision::NoRoute };
        if !route.config.events.contains(&event.kind) {
            return Decision::Filtered;
        }
        if event.kind == EventKind::Ban && event.restored && !route.config.restored {
            return Decision::Restored;
        }
        Decision::Send(&route.config.sinks)
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Sort key: exact names first, then globs longest first, `*` alone last.
fn rank(route: &Route) -> (u8, std::cmp::Reverse<usize>) {
    if route.glob.is_none() {
        (0, std::cmp::Reverse(0))
    } else if route.pattern == "*" {
        (2, std::cmp::Reverse(0))
    } else {
        (1, std::cmp::Reverse(route.pattern.chars().count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn table(patterns: &[&str]) -> Table {
        let jails: BTreeMap<String, RouteConfig> = patterns
            .iter()
            .map(|p| {
                let route =
                    RouteConfig { sinks: vec![format!("to-{p}")], events: EventKind::ALL.to_vec(), restored: false };
                (p.to_string(), route)
            })
            .collect();
        Table::new(&jails)
    }

    #[test]
    fn precedence_table() {
        let t = table(&["*", "nginx-*", "nginx-http-*", "sshd", "ssh?", "nginx-http-auth"]);
        let cases = [
            ("sshd", Some("sshd")),                       // exact beats the glob `ssh?` and `*`
            ("sshx", Some("ssh?")),                       // a glob beats `*`
            ("nginx-http-auth", Some("nginx-http-auth")), // exact beats longer globs
            ("nginx-http-404", Some("nginx-http-*")),     // longer glob beats shorter
            ("nginx-botsearch", Some("nginx-*")),
            ("postfix", Some("*")), // `*` is the fallback
            ("", Some("*")),
        ];
        for (jail, want) in cases {
            assert_eq!(t.find(jail).map(|r| r.pattern.as_str()), want, "jail {jail:?}");
        }
        let order: Vec<&str> = t.routes().iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(order, ["nginx-http-auth", "sshd", "nginx-http-*", "nginx-*", "ssh?", "*"]);
    }

    #[test]
    fn no_fallback_means_no_route() {
        let t = table(&["sshd", "nginx-*"]);
        assert!(t.find("postfix").is_none());
        let e = Event::jail_event(EventKind::Start, "postfix", "h");
        assert_eq!(t.decide(&e), Decision::NoRoute);
    }

    #[test]
    fn events_and_restored_filters() {
        let mut jails = BTreeMap::new();
        jails.insert(
            "sshd".to_string(),
            RouteConfig { sinks: vec!["ops".into()], events: vec![EventKind::Ban], restored: false },
        );
        jails.insert(
            "web".to_string(),
            RouteConfig { sinks: vec!["ops".into()], events: EventKind::ALL.to_vec(), restored: true },
        );
        let t = Table::new(&jails);
        let mut ban = Event::target_event(EventKind::Ban, "sshd", "192.0.2.1", "h");
        assert_eq!(t.decide(&ban), Decision::Send(&["ops".to_string()]));
        ban.restored = true;
        assert_eq!(t.decide(&ban), Decision::Restored);
        ban.jail = "web".into();
        assert!(matches!(t.decide(&ban), Decision::Send(_)));
        let unban = Event::target_event(EventKind::Unban, "sshd", "192.0.2.1", "h");
        assert_eq!(t.decide(&unban), Decision::Filtered);
    }
}
