//! Reverse DNS, with forward confirmation, by hickory's resolver on tokio.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use tokio::time::{timeout_at, Instant};

use crate::cache::Answer;
use crate::context::{clean, MAX_HOSTNAME};
use crate::error::Problem;

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
        let complete = |confirmed| Outcome::Complete(Answer { hostname: Some(hostname.clone()), confirmed: Some(confirmed) });
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

/// A DNS name as shown: presentation form (hickory escapes every byte that is not a letter,
/// digit, `-` or `_`: `\010`, `\.`), no final dot, cleaned and cut to 253 characters.
fn shown(name: &Name) -> Option<String> {
    let text = name.to_utf8();
    let text = text.strip_suffix('.').unwrap_or(&text);
    clean(text, MAX_HOSTNAME)
}
