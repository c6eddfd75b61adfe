//! Enrichment for f2b-notify: who a banned address is.
//!
//! [`Enricher::lookup`] finds, for one address, its reverse DNS name (forward-confirmed), its
//! country and city (a MaxMind-format City or Country database: GeoLite2 or DB-IP Lite) and
//! its network (a MaxMind-format ASN database). It never fails and never takes longer than the
//! configured budget: a lookup that is slow or fails leaves its field out of the
//! [`Context`]. [`Enricher::lookup_many`] does the same for a digest's addresses, side by side
//! within one budget, and [`Summary`] counts them by country and network.
//!
//! The worker runs this, never Fail2Ban's action: a DNS server that does not answer delays a
//! message by the budget at most, and never a ban.
//!
//! ```no_run
//! # async fn demo() -> Result<(), f2b_notify_enrich::Problem> {
//! use f2b_notify_enrich::{Config, Enricher};
//! let config = Config { dns: true, geoip: Some("/var/lib/GeoIP/GeoLite2-City.mmdb".into()), ..Config::default() };
//! let enricher = Enricher::new(config)?;
//! let ctx = enricher.lookup("203.0.113.7".parse().unwrap()).await;
//! println!("{}", ctx.describe()); // host.example (unconfirmed) · Tokyo, Japan (JP) · AS64500 Example Net
//! # Ok(()) }
//! ```

use std::net::IpAddr;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

mod cache;
mod config;
mod dns;
mod error;
mod geo;

pub use config::{Config, DEFAULT_BUDGET, DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL, MAX_BUDGET};
// What a lookup finds, and its digest summary, are plain data every sink reads: they live in
// core, which has no network dependency, and are re-exported here.
pub use error::Problem;
pub use f2b_notify_core::{clean, Context, Count, Summary, MAX_HOSTNAME, MAX_NAME};

use cache::Cache;
use dns::{Dns, Outcome};
use geo::{Database, Kind};

/// How many DNS lookups of a digest run at once (hickory's default for requests in flight).
const CONCURRENCY: usize = 32;

/// The lookups of an `[enrich]` config, ready: databases read, resolver set up, an empty
/// cache. Build one per worker and share it (`&self` everywhere; `Send + Sync`).
#[derive(Debug)]
pub struct Enricher {
    config: Config,
    place: Option<Database>,
    network: Option<Database>,
    dns: Option<Dns>,
    cache: Cache,
}

impl Enricher {
    /// Reads the databases and sets up the resolver of `config`. The error is the first of
    /// [`Config::check`]'s problems, on one line naming the key and file.
    ///
    /// Needs no runtime (`f2b-notify check` can call it); the lookups need tokio's, with its
    /// time and I/O drivers: the resolver makes its sockets on first use.
    pub fn new(config: Config) -> Result<Self, Problem> {
        Self::build(&config).map_err(|mut problems| problems.remove(0))
    }

    /// What the worker builds: the lookups of `config` that can be set up, and the problems
    /// of those that cannot (a database missing or unreadable, a budget out of range: then
    /// 1 s), so that a broken database costs its fields and not the others, nor any message.
    /// `None` when `config` asks for no lookup.
    pub fn lenient(config: &Config) -> (Option<Self>, Vec<Problem>) {
        if !config.is_enabled() {
            return (None, Vec::new());
        }
        let mut problems = Vec::new();
        let enricher = Self::assemble(config, &mut problems);
        (Some(enricher), problems)
    }

    pub(crate) fn build(config: &Config) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let enricher = Self::assemble(config, &mut problems);
        if problems.is_empty() {
            Ok(enricher)
        } else {
            Err(problems)
        }
    }

    /// The lookups that can be set up; the others' problems go to `problems`.
    fn assemble(config: &Config, problems: &mut Vec<Problem>) -> Self {
        let mut config = config.clone();
        problems.extend(config.check_values());
        if !problems.is_empty() {
            config.budget = DEFAULT_BUDGET;
        }
        let mut open = |kind, path: &Option<std::path::PathBuf>| {
            let path = path.as_deref()?;
            Database::open(kind, path).map_err(|p| problems.push(p)).ok()
        };
        let place = open(Kind::Place, &config.geoip);
        let network = open(Kind::Network, &config.asn);
        let dns = if config.dns {
            Dns::new(config.dns_server, config.dns_confirm, config.budget).map_err(|p| problems.push(p)).ok()
        } else {
            None
        };
        Self { place, network, dns, cache: Cache::new(config.cache_size, config.cache_ttl), config }
    }

    /// The config this enricher was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What is known about `ip`, within the budget. Never fails: what could not be found in
    /// time is left out.
    pub async fn lookup(&self, ip: IpAddr) -> Context {
        self.lookup_until(ip, Instant::now() + self.config.budget).await
    }

    /// What is known about each of `ips`, in their order, all within one budget: the DNS
    /// lookups run side by side (32 at a time), an address given twice is looked up once.
    pub async fn lookup_many(&self, ips: &[IpAddr]) -> Vec<Context> {
        let deadline = Instant::now() + self.config.budget;
        let mut unique: Vec<IpAddr> = ips.iter().map(|ip| ip.to_canonical()).collect();
        unique.sort_unstable();
        unique.dedup();
        let found: Vec<(IpAddr, Context)> = stream::iter(unique)
            .map(|ip| async move { (ip, self.lookup_until(ip, deadline).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let found: std::collections::HashMap<IpAddr, Context> = found.into_iter().collect();
        ips.iter().map(|ip| found.get(&ip.to_canonical()).cloned().unwrap_or_default()).collect()
    }

    /// What the databases say about `ip` (country, city, network), at once and without
    /// asking DNS: for `f2b-notify report`, which counts hundreds of addresses by country
    /// and network.
    pub fn locate(&self, ip: IpAddr) -> Context {
        let ip = ip.to_canonical();
        let mut ctx = Context::default();
        for db in [&self.place, &self.network].into_iter().flatten() {
            db.fill(ip, &mut ctx);
        }
        ctx
    }

    /// Fills in what the databases say (country, city, network) of each event that has an
    /// address, at once and without DNS: for digests, which show where their addresses come
    /// from and not each one's host name. A storm's hundreds of reverse lookups would ask the
    /// attackers' own reverse zones, for names nobody reads, on every edit of its message.
    pub fn locate_all(&self, events: &mut [f2b_notify_core::Event]) {
        for event in events.iter_mut() {
            if let Some(ip) = event.ip {
                event.context = self.locate(ip);
            }
        }
    }

    /// Fills in the `context` of each event that has an address, all within one budget (see
    /// [`Enricher::lookup_many`]); events without one (jail start and stop, an id that is not
    /// an address) are left as they are.
    pub async fn enrich(&self, events: &mut [f2b_notify_core::Event]) {
        let ips: Vec<IpAddr> = events.iter().filter_map(|e| e.ip).collect();
        if ips.is_empty() {
            return;
        }
        let mut found = self.lookup_many(&ips).await.into_iter();
        for event in events.iter_mut().filter(|e| e.ip.is_some()) {
            event.context = found.next().unwrap_or_default();
        }
    }

    /// `lookup` with a deadline shared with other lookups: the databases are always read,
    /// DNS is asked only before `deadline` and waited for until then.
    pub async fn lookup_until(&self, ip: IpAddr, deadline: Instant) -> Context {
        // An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
        let ip = ip.to_canonical();
        let mut ctx = Context::default();
        for db in [&self.place, &self.network].into_iter().flatten() {
            db.fill(ip, &mut ctx);
        }
        if let Some(dns) = &self.dns {
            let answer = match self.cache.get(ip) {
                Some(answer) => answer,
                None if Instant::now() >= deadline => Default::default(),
                None => match dns.lookup(ip, deadline).await {
                    Outcome::Complete(answer) => {
                        self.cache.put(ip, answer.clone());
                        answer
                    }
                    Outcome::Partial(answer) => answer,
                },
            };
            ctx.hostname = answer.hostname;
            ctx.hostname_confirmed = ctx.hostname.as_ref().and(answer.confirmed);
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_between_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Enricher>();
        send_sync::<Context>();
    }
}
