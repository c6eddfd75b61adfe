//! The `[enrich]` table of the config.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::Problem;

/// The default [`Config::budget`]: 1 s for all the lookups of one message.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(1);
/// The largest [`Config::budget`] accepted: 30 s.
pub const MAX_BUDGET: Duration = Duration::from_secs(30);
/// The default [`Config::cache_ttl`]: one hour.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// The default [`Config::cache_size`]: 4096 addresses.
pub const DEFAULT_CACHE_SIZE: usize = 4096;

/// What the worker adds to a message about each banned address: `[enrich]`.
///
/// Everything is off by default. The lookups run in the worker, never on Fail2Ban's action
/// path, and never delay a message past [`budget`](Self::budget): a lookup that is slow or
/// fails leaves its field out and the message goes out without it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Reverse DNS: look up the PTR name of the banned address (`hostname`). Default `false`.
    ///
    /// Every address is looked up, private, loopback and link-local ones too: attackers on
    /// the LAN exist, and a LAN's own DNS server often names them; public resolvers answer
    /// such queries themselves (RFC 6303) without asking anyone else.
    #[serde(default)]
    pub dns: bool,
    /// Forward-confirm the PTR name: look up the name's A (IPv4) or AAAA (IPv6) records and
    /// check that they contain the banned address. Default `true` (only used with `dns`).
    ///
    /// Whoever controls an address's reverse zone can make its PTR name anything, such as
    /// `mail.google.com`; a name that does not resolve back to the address (or whose check did
    /// not finish within the budget) is kept but marked: `hostname_confirmed = false`, shown as
    /// "(unconfirmed)". With `dns_confirm = false`, `hostname_confirmed` is left out.
    #[serde(default = "yes")]
    pub dns_confirm: bool,
    /// The DNS resolver to ask, `"IP"` or `"IP:port"` (`"[IPv6]:port"`; port 53 by default),
    /// instead of those of the system's `/etc/resolv.conf`. Only that server is asked, by UDP,
    /// and `/etc/hosts` is not read.
    #[serde(default, deserialize_with = "de_server")]
    #[schemars(with = "Option<String>")]
    pub dns_server: Option<SocketAddr>,
    /// A MaxMind-format City or Country database (`.mmdb`), for `country`, `country_code` and
    /// `city`: GeoLite2-City or GeoLite2-Country from MaxMind, or DB-IP's IP to City Lite or
    /// IP to Country Lite. Read into memory once, when the worker starts: a file updated
    /// since is read by the next worker.
    #[serde(default)]
    pub geoip: Option<PathBuf>,
    /// A MaxMind-format ASN database (`.mmdb`), for `asn` and `as_org`: GeoLite2-ASN from
    /// MaxMind, or DB-IP's IP to ASN Lite. Read like `geoip`.
    #[serde(default)]
    pub asn: Option<PathBuf>,
    /// The time all the lookups of one message may take together: seconds (`1`, `0.5`) or
    /// words (`"1s"`, `"500ms"`). Default 1 s, at most 30 s. A digest's addresses are looked up
    /// side by side within one budget; DNS is not asked once it has run out. The database
    /// lookups are local and take microseconds: the budget is in practice the time DNS may take.
    #[serde(default = "default_budget", deserialize_with = "de_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub budget: Duration,
    /// How long a DNS answer is remembered: seconds or words (`"1h"`). Default 1 h. An
    /// address without a name (no PTR record, NXDOMAIN) is remembered a tenth of that (at
    /// least 1 s); a lookup that timed out or failed is not remembered. `0` turns the cache off.
    #[serde(default = "default_cache_ttl", deserialize_with = "de_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub cache_ttl: Duration,
    /// How many addresses the DNS cache holds at most. Default 4096; `0` turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dns: false,
            dns_confirm: true,
            dns_server: None,
            geoip: None,
            asn: None,
            budget: DEFAULT_BUDGET,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

impl Config {
    /// Whether any lookup is configured. A config with none makes [`crate::Enricher::lookup`]
    /// return an empty [`crate::Context`] at once.
    pub fn is_enabled(&self) -> bool {
        self.dns || self.geoip.is_some() || self.asn.is_some()
    }

    /// The problems of this config, one line each, for `f2b-notify check`: a budget out of
    /// range, a database file that is missing, unreadable, not in the MaxMind format or of the
    /// wrong kind, a system resolver configuration that cannot be read. Empty when
    /// [`crate::Enricher::new`] would succeed.
    pub fn check(&self) -> Vec<Problem> {
        crate::Enricher::build(self).err().unwrap_or_default()
    }

    pub(crate) fn check_values(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.budget.is_zero() || self.budget > MAX_BUDGET {
            problems.push(Problem::new(
                "budget",
                None,
                format!(
                    "{} must be more than 0 and at most {}",
                    humantime::format_duration(self.budget),
                    humantime::format_duration(MAX_BUDGET)
                ),
            ));
        }
        problems
    }
}

fn yes() -> bool {
    true
}
fn default_budget() -> Duration {
    DEFAULT_BUDGET
}
fn default_cache_ttl() -> Duration {
    DEFAULT_CACHE_TTL
}
fn default_cache_size() -> usize {
    DEFAULT_CACHE_SIZE
}

/// A duration's schema: seconds or words, like every duration of the config.
fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["number", "string"] })
}

/// A duration given as seconds (`30`, `0.5`) or in words (`"5m"`, `"1h 30m"`), as everywhere
/// in f2b-notify's config.
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
    }
    let bad = |what: &dyn std::fmt::Display| {
        serde::de::Error::custom(format!("`{what}` is not a duration (seconds, or like \"1s\", \"500ms\")"))
    };
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(Duration::from_secs(n)),
        Raw::Float(f) if (0.0..1e12).contains(&f) => Ok(Duration::from_secs_f64(f)),
        Raw::Float(f) => Err(bad(&f)),
        Raw::Text(t) => match t.trim().parse::<f64>() {
            Ok(f) if (0.0..1e12).contains(&f) => Ok(Duration::from_secs_f64(f)),
            _ => humantime::parse_duration(t.trim()).map_err(|_| bad(&t)),
        },
    }
}

/// `"IP"`, `"IP:port"` or `"[IPv6]:port"`; port 53 when none is given.
fn de_server<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_server(&text).map(Some).map_err(serde::de::Error::custom)
}

pub(crate) fn parse_server(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    t.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not a DNS server address (like \"127.0.0.1\", \"127.0.0.1:53\" or \"[::1]:53\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        enrich: Config,
    }

    fn parse(text: &str) -> Result<Config, String> {
        serde_json::from_str::<Doc>(text).map(|d| d.enrich).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_off() {
        let c = parse(r#"{"enrich": {}}"#).unwrap();
        assert_eq!(c, Config::default());
        assert!(!c.is_enabled());
        assert_eq!(c.budget, Duration::from_secs(1));
        assert!(c.dns_confirm);
        assert!(c.check().is_empty());
    }

    #[test]
    fn durations_in_seconds_or_words() {
        let c = parse(r#"{"enrich": {"dns": true, "budget": "750ms", "cache_ttl": 60}}"#).unwrap();
        assert_eq!(c.budget, Duration::from_millis(750));
        assert_eq!(c.cache_ttl, Duration::from_secs(60));
        assert_eq!(parse(r#"{"enrich": {"budget": 0.25}}"#).unwrap().budget, Duration::from_millis(250));
        assert_eq!(parse(r#"{"enrich": {"budget": "2"}}"#).unwrap().budget, Duration::from_secs(2));
        let e = parse(r#"{"enrich": {"budget": "soon"}}"#).unwrap_err();
        assert!(e.contains("`soon` is not a duration"), "{e}");
    }

    #[test]
    fn budget_range_is_checked() {
        for budget in [Duration::ZERO, Duration::from_secs(31)] {
            let c = Config { budget, ..Config::default() };
            let p = c.check();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].key(), "enrich.budget");
            assert!(p[0].to_string().contains("must be more than 0 and at most 30s"), "{}", p[0]);
        }
    }

    #[test]
    fn dns_server_forms() {
        let c = parse(r#"{"enrich": {"dns_server": "127.0.0.1"}}"#).unwrap();
        assert_eq!(c.dns_server, Some("127.0.0.1:53".parse().unwrap()));
        let c = parse(r#"{"enrich": {"dns_server": "[::1]:5353"}}"#).unwrap();
        assert_eq!(c.dns_server, Some("[::1]:5353".parse().unwrap()));
        let c = parse(r#"{"enrich": {"dns_server": "::1"}}"#).unwrap();
        assert_eq!(c.dns_server, Some("[::1]:53".parse().unwrap()));
        let e = parse(r#"{"enrich": {"dns_server": "dns.example:53"}}"#).unwrap_err();
        assert!(e.contains("is not a DNS server address"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse(r#"{"enrich": {"geoip_path": "/x"}}"#).unwrap_err();
        assert!(e.contains("unknown field `geoip_path`"), "{e}");
    }
}
