//! Reverse DNS, with forward confirmation, by hickory's resolver on tokio.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use tokio::time::{timeout_at, Instant};

use crate::cache::Answer;
use crate::error::Problem;
use f2b_notify_core::{clean, MAX_HOSTNAME};

/// The resolver and whether to confirm names.
pub(crate) struct Dns {
    resolver: TokioResolver,
    confirm: bool,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("confirm", &self.confirm).finish_non_exhaustive()
    }
}

/// How one lookup ended.
pub(crate) enum Outcome {
    /// A complete answer (a name, confirmed or not; or no name at all): worth caching.
    Complete(Answer),
    /// What was found before the budget ran out or the server failed: not cached.
    Partial(Answer),
}

impl Dns {
    /// A resolver asking `server`, or those of `/etc/resolv.conf`. Each query may take the
    /// whole budget, once: the budget bounds the lookup anyway.
    pub(crate) fn new(server: Option<SocketAddr>, confirm: bool, budget: Duration) -> Result<Self, Problem> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut ns = NameServerConfig::udp(addr.ip());
                ns.connections = vec![udp];
                let mut b = TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider);
                b.options_mut().use_hosts_file = ResolveHosts::Never;
                b
            }
            None => TokioResolver::builder(provider).map_err(|e| {
                Problem::new(
                    "dns",
                    None,
                    format!("cannot read the system's resolver configuration (/etc/resolv.conf): {e}; set `enrich.dns_server`"),
                )
            })?,
        };
        let opts = builder.options_mut();
        opts.timeout = budget;
        opts.attempts = 1;
        // This crate's cache is the only one: its TTL, not the attacker's zone, says how long
        // a name is kept, and its size bounds memory.
        opts.cache_size = 0;
        let resolver =
            builder.build().map_err(|e| Problem::new("dns", None, format!("cannot set up the DNS resolver: {e}")))?;
        Ok(Self { resolver, confirm })
    }

    /// The PTR name of `ip`, confirmed if asked, by `deadline`.
    pub(crate) async fn lookup(&self, ip: IpAddr, deadline: Instant) -> Outcome {
        let ptr = match timeout_at(deadline, self.resolver.reverse_lookup(ip)).await {
            Err(_elapsed) => return Outcome::Partial(Answer::default()),
            Ok(Err(e)) if e.is_no_records_found() => return Outcome::Complete(Answer::default()),
            Ok(Err(_)) => return Outcome::Partial(Answer::default()),
            Ok(Ok(lookup)) => lookup,
        };
        let Some(name) = ptr.answers().iter().find_map(|r| match &r.data {
            RData::PTR(ptr) => Some(ptr.0.clone()),
            _ => None,
        }) else {
            return Outcome::Complete(Answer::default());
        };
        let Some(hostname) = shown(&name) else {
            return Outcome::Complete(Answer::default());
        };
        if !self.confirm {
            return Outcome::Complete(Answer { hostname: Some(hostname), confirmed: None });
        }
        let forward = match ip {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        };
        let complete =
            |confirmed| Outcome::Complete(Answer { hostname: Some(hostname.clone()), confirmed: Some(confirmed) });
        match timeout_at(deadline, self.resolver.lookup(name, forward)).await {
            Ok(Ok(found)) => complete(found.answers().iter().any(|r| match &r.data {
                RData::A(a) => IpAddr::V4(a.0) == ip,
                RData::AAAA(a) => IpAddr::V6(a.0) == ip,
                _ => false,
            })),
            Ok(Err(e)) if e.is_no_records_found() => complete(false),
            // Not confirmed in time: shown as unconfirmed (whoever runs the name's zone could
            // otherwise dodge the mark by not answering), not cached.
            _ => Outcome::Partial(Answer { hostname: Some(hostname), confirmed: Some(false) }),
        }
    }
}

/// A DNS name as shown: RFC 1035's presentation form from the raw bytes, without the final
/// dot: letters, digits, `-` and `_` as they are, `\.` and `\\` for a dot or backslash inside
/// a label, `\DDD` (decimal) for any other byte (`evil\010name` for a newline). An
/// internationalised name stays in its ASCII form (`xn--…`): the Unicode form could
/// pass off look-alike letters as another name. Cut to 253 characters.
fn shown(name: &Name) -> Option<String> {
    let mut text = String::with_capacity(name.len());
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        for &b in label {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => text.push(char::from(b)),
                b'.' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(b));
                }
                _ => text.push_str(&format!("\\{b:03}")),
            }
        }
    }
    clean(&text, MAX_HOSTNAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(labels: &[&[u8]]) -> Name {
        Name::from_labels(labels.iter().copied()).unwrap()
    }

    #[test]
    fn presentation_form() {
        assert_eq!(shown(&name(&[b"host-7", b"example", b"net"])).as_deref(), Some("host-7.example.net"));
        assert_eq!(shown(&name(&[b"evil\nname", b"example"])).as_deref(), Some(r"evil\010name.example"));
        assert_eq!(shown(&name(&[b"a.b\\c", b"x"])).as_deref(), Some(r"a\.b\\c.x"));
        assert_eq!(shown(&name(&[b"<!channel>"])).as_deref(), Some(r"\060\033channel\062"));
        assert_eq!(shown(&name(&[b"xn--pple-43d", b"com"])).as_deref(), Some("xn--pple-43d.com"));
        assert_eq!(shown(&Name::root()), None);
    }
}
