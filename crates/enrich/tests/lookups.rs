//! The lookups against real parts: MaxMind-format databases written by the test and read by
//! the `maxminddb` crate, and a DNS server on the loopback asked by hickory's resolver.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use f2b_notify_enrich::{Config, Context, Enricher, Summary};
use f2b_notify_standins::dns::{reverse, DnsServer, Reply, A, AAAA, PTR};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn geo_config(dir: &Path) -> Config {
    Config {
        geoip: Some(f2b_notify_standins::mmdb::city(dir)),
        asn: Some(f2b_notify_standins::mmdb::asn(dir)),
        ..Config::default()
    }
}

fn dns_config(server: &DnsServer) -> Config {
    Config { dns: true, dns_server: Some(server.addr), ..Config::default() }
}

/// The zone of the DNS tests.
fn zone() -> DnsServer {
    let r = |addr: &str| reverse(ip(addr));
    let fwd = |name: &str, qtype, addrs: &[&str]| {
        ((name.to_string(), qtype), Reply::Addrs(addrs.iter().map(|a| ip(a)).collect()))
    };
    // 4 labels: 63 + 63 + 63 + 61 characters and 3 dots = 253, the longest name DNS carries.
    let longest: Vec<Vec<u8>> = [63, 63, 63, 61].iter().map(|&n| vec![b'a'; n]).collect();
    // A name of newlines: 4 characters each in DNS's escaped form (`\010`), so more than 253.
    let escaped: Vec<Vec<u8>> = [60, 60].iter().map(|&n| vec![b'\n'; n]).collect();
    // Five labels of 63: longer than the 255 octets DNS allows a name.
    let too_long: Vec<Vec<u8>> = (0..5).map(|_| vec![b'b'; 63]).collect();
    DnsServer::start(
        vec![
            ((r("203.0.113.7"), PTR), Reply::ptr("host7.example.net")),
            fwd("host7.example.net", A, &["192.0.2.1", "203.0.113.7"]),
            ((r("203.0.113.8"), PTR), Reply::ptr("mail.google.example")),
            fwd("mail.google.example", A, &["192.0.2.99"]),
            ((r("203.0.113.9"), PTR), Reply::Ptr(vec![b"evil\nname".to_vec(), b"\xe2\x80\xaeexample".to_vec()])),
            ((r("203.0.113.10"), PTR), Reply::Ptr(longest)),
            ((r("203.0.113.11"), PTR), Reply::Ptr(escaped)),
            ((r("203.0.113.12"), PTR), Reply::Ptr(too_long)),
            ((r("203.0.113.13"), PTR), Reply::ptr("slow-forward.example")),
            (("slow-forward.example".to_string(), A), Reply::Silent),
            ((r("203.0.113.14"), PTR), Reply::Silent),
            ((r("2001:db8::7"), PTR), Reply::ptr("v6host.example.net")),
            fwd("v6host.example.net", AAAA, &["2001:db8::7"]),
            ((r("10.0.0.5"), PTR), Reply::ptr("nas.lan")),
            fwd("nas.lan", A, &["10.0.0.5"]),
        ],
        Reply::NxDomain,
    )
}

#[tokio::test]
async fn country_city_and_network_from_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::new(geo_config(dir.path())).unwrap();

    let tokyo = e.lookup(ip("203.0.113.7")).await;
    assert_eq!(tokyo.country.as_deref(), Some("Japan"));
    assert_eq!(tokyo.country_code.as_deref(), Some("JP"));
    assert_eq!(tokyo.city.as_deref(), Some("Tokyo"));
    assert_eq!(tokyo.asn, Some(64501));
    // The hostile organisation name: one line, no bidi isolate, no zero-width space.
    assert_eq!(tokyo.as_org.as_deref(), Some("Evil Corp Ltd"));
    assert_eq!(tokyo.hostname, None, "no DNS without `dns = true`");
    assert_eq!(tokyo.describe(), "Tokyo, Japan (JP) · AS64501 Evil Corp Ltd");

    let hostile = e.lookup(ip("203.0.113.200")).await;
    assert_eq!(hostile.city.as_deref(), Some("Evil Citytxt.exe"));

    let us = e.lookup(ip("198.51.100.1")).await;
    assert_eq!(
        us,
        Context {
            country: Some("United States".into()),
            country_code: Some("US".into()),
            asn: Some(64500),
            as_org: Some("Example Net".into()),
            ..Context::default()
        }
    );

    let v6 = e.lookup(ip("2001:db8::1")).await;
    assert_eq!((v6.city.as_deref(), v6.country_code.as_deref(), v6.asn), (Some("Berlin"), Some("DE"), Some(64502)));

    // An IPv4-mapped IPv6 address is its IPv4 address.
    assert_eq!(e.lookup(ip("::ffff:203.0.113.7")).await, tokyo);

    // Addresses missing from both databases: every field absent.
    for missing in ["192.0.2.1", "10.0.0.1", "2001:db9::1"] {
        let ctx = e.lookup(ip(missing)).await;
        assert!(ctx.is_empty(), "{missing}: {ctx:?}");
        assert_eq!(serde_json::to_string(&ctx).unwrap(), "{}");
    }
}

#[test]
fn database_problems_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let city = f2b_notify_standins::mmdb::city(d);
    let asn = f2b_notify_standins::mmdb::asn(d);
    let text = d.join("GeoLite2-City.mmdb.txt");
    std::fs::write(&text, "this is not\na database\n").unwrap();
    let empty = d.join("empty.mmdb");
    std::fs::write(&empty, "").unwrap();
    let missing = d.join("nowhere/GeoLite2-ASN.mmdb");

    let cases = [
        (Config { geoip: Some(missing.clone()), ..Config::default() }, "enrich.geoip", &missing, "cannot read it"),
        (Config { asn: Some(missing.clone()), ..Config::default() }, "enrich.asn", &missing, "cannot read it"),
        (Config { geoip: Some(text.clone()), ..Config::default() }, "enrich.geoip", &text, "not a MaxMind-format"),
        (Config { asn: Some(empty.clone()), ..Config::default() }, "enrich.asn", &empty, "not a MaxMind-format"),
        (Config { asn: Some(d.to_path_buf()), ..Config::default() }, "enrich.asn", &d.to_path_buf(), "cannot read it"),
        (Config { geoip: Some(asn.clone()), ..Config::default() }, "enrich.geoip", &asn, "is a GeoLite2-ASN database"),
        (Config { asn: Some(city.clone()), ..Config::default() }, "enrich.asn", &city, "is a GeoLite2-City database"),
    ];
    for (config, key, path, why) in cases {
        let problem = Enricher::new(config.clone()).unwrap_err();
        let line = problem.to_string();
        assert_eq!(problem.key(), key);
        assert_eq!(problem.path(), Some(path.as_path()));
        assert!(line.starts_with(&format!("key `{key}`: {}: ", path.display())), "{line}");
        assert!(line.contains(why), "{line}");
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert_eq!(config.check(), vec![problem]);
    }

    // `check` lists every problem at once.
    let both = Config { geoip: Some(missing.clone()), asn: Some(text.clone()), ..Config::default() };
    let problems = both.check();
    assert_eq!(problems.iter().map(|p| p.key()).collect::<Vec<_>>(), ["enrich.geoip", "enrich.asn"]);

    // Good files: no problem.
    assert!(Config { geoip: Some(city), asn: Some(asn), ..Config::default() }.check().is_empty());

    // DNS is set up outside any runtime too (`f2b-notify check`), from `dns_server` or from
    // the system's /etc/resolv.conf.
    let server = "127.0.0.1:5353".parse().ok();
    assert!(Config { dns: true, dns_server: server, ..Config::default() }.check().is_empty());
    for p in (Config { dns: true, ..Config::default() }).check() {
        assert_eq!(p.key(), "enrich.dns");
        assert!(p.to_string().contains("/etc/resolv.conf"), "{p}");
    }
}

#[tokio::test]
async fn reverse_dns_names_confirmed_or_marked() {
    let server = zone();
    let e = Enricher::new(dns_config(&server)).unwrap();

    let ok = e.lookup(ip("203.0.113.7")).await;
    assert_eq!(ok.hostname.as_deref(), Some("host7.example.net"));
    assert_eq!(ok.hostname_confirmed, Some(true));
    assert_eq!(ok.describe(), "host7.example.net");

    // A name that resolves elsewhere: kept, marked.
    let forged = e.lookup(ip("203.0.113.8")).await;
    assert_eq!(forged.hostname.as_deref(), Some("mail.google.example"));
    assert_eq!(forged.hostname_confirmed, Some(false));
    assert_eq!(forged.describe(), "mail.google.example (unconfirmed)");

    let v6 = e.lookup(ip("2001:db8::7")).await;
    assert_eq!((v6.hostname.as_deref(), v6.hostname_confirmed), (Some("v6host.example.net"), Some(true)));
    assert_eq!(server.count("v6host.example.net", AAAA), 1);
    assert_eq!(server.count("v6host.example.net", A), 0);

    // Private addresses are looked up too (attackers on the LAN exist).
    let lan = e.lookup(ip("10.0.0.5")).await;
    assert_eq!((lan.hostname.as_deref(), lan.hostname_confirmed), (Some("nas.lan"), Some(true)));

    // NXDOMAIN: no name.
    let none = e.lookup(ip("198.51.100.1")).await;
    assert_eq!(none, Context::default());

    // Without confirmation: the name, and no `hostname_confirmed`; no forward query.
    let server2 = zone();
    let e2 = Enricher::new(Config { dns_confirm: false, ..dns_config(&server2) }).unwrap();
    let plain = e2.lookup(ip("203.0.113.8")).await;
    assert_eq!((plain.hostname.as_deref(), plain.hostname_confirmed), (Some("mail.google.example"), None));
    assert_eq!(server2.count("mail.google.example", A), 0);
}

#[tokio::test]
async fn hostile_names_are_one_line_and_bounded() {
    let server = zone();
    let e = Enricher::new(dns_config(&server)).unwrap();

    // A newline and a right-to-left override in the name: DNS's escaped form, one line.
    let evil = e.lookup(ip("203.0.113.9")).await;
    let name = evil.hostname.unwrap();
    assert_eq!(name, r"evil\010name.\226\128\174example");
    assert!(!name.contains('\n') && !name.contains('\u{202E}'));
    assert_eq!(evil.hostname_confirmed, Some(false), "it has no address");

    let longest = e.lookup(ip("203.0.113.10")).await.hostname.unwrap();
    assert_eq!(longest.chars().count(), 253);
    assert!(!longest.ends_with('…'));

    // 120 newlines are 480 characters escaped: cut to 253.
    let escaped = e.lookup(ip("203.0.113.11")).await.hostname.unwrap();
    assert_eq!(escaped.chars().count(), 253);
    assert!(escaped.ends_with('…') && escaped.starts_with(r"\010\010"));
    assert!(!escaped.contains('\n'));

    // A name longer than DNS allows does not parse: no name, and the lookup still returns.
    let too_long = e.lookup(ip("203.0.113.12")).await;
    assert_eq!(too_long.hostname, None);
}

/// The budget is a contract: a DNS server that never answers delays the message by the
/// budget, not more (with some slack for a loaded machine), and the rest is still there.
#[tokio::test]
async fn a_server_that_never_answers_costs_the_budget_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let server = DnsServer::silent();
    let budget = Duration::from_millis(300);
    let e = Enricher::new(Config {
        budget,
        ..Config { dns: true, dns_server: Some(server.addr), ..geo_config(dir.path()) }
    })
    .unwrap();

    let started = Instant::now();
    let ctx = e.lookup(ip("203.0.113.7")).await;
    let took = started.elapsed();
    assert!(took < budget + Duration::from_millis(500), "took {took:?}");
    assert_eq!(ctx.hostname, None);
    assert_eq!(ctx.country_code.as_deref(), Some("JP"), "the databases still answer");
    assert_eq!(ctx.asn, Some(64501));
    assert!(server.count(&reverse(ip("203.0.113.7")), PTR) >= 1, "the server was asked");

    // A digest of 40 addresses shares one budget.
    let ips: Vec<IpAddr> = (1..=40).map(|i| IpAddr::from([203, 0, 113, i])).collect();
    let started = Instant::now();
    let all = e.lookup_many(&ips).await;
    let took = started.elapsed();
    assert!(took < budget + Duration::from_millis(500), "took {took:?}");
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|c| c.hostname.is_none() && c.country_code.as_deref() == Some("JP")));
    // 32 at a time: the last 8 would start after the budget, and DNS is not asked for them.
    let asked = (1..=40).filter(|&i| server.count(&reverse(IpAddr::from([203, 0, 113, i])), PTR) > 0).count();
    assert_eq!(asked, 32);

    // A timeout is not remembered: the next message asks again.
    let before = server.total();
    e.lookup(ip("203.0.113.7")).await;
    assert!(server.total() > before);
}

/// The same on tokio's paused clock: the lookup ends exactly when the default budget (1 s)
/// runs out.
#[tokio::test(start_paused = true)]
async fn the_budget_on_a_paused_clock() {
    let server = DnsServer::silent();
    let e = Enricher::new(dns_config(&server)).unwrap();
    assert_eq!(e.config().budget, Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    let ctx = e.lookup(ip("203.0.113.7")).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(ctx.is_empty());
}

/// A PTR name whose forward zone never answers: the name, marked unconfirmed (its owner
/// cannot dodge the mark by not answering), within the budget, and not remembered.
#[tokio::test]
async fn a_confirmation_that_never_comes_is_unconfirmed() {
    let server = zone();
    let budget = Duration::from_millis(300);
    let e = Enricher::new(Config { budget, ..dns_config(&server) }).unwrap();
    let started = Instant::now();
    let ctx = e.lookup(ip("203.0.113.13")).await;
    assert!(started.elapsed() < budget + Duration::from_millis(500), "took {:?}", started.elapsed());
    assert_eq!((ctx.hostname.as_deref(), ctx.hostname_confirmed), (Some("slow-forward.example"), Some(false)));
    e.lookup(ip("203.0.113.13")).await;
    assert_eq!(server.count(&reverse(ip("203.0.113.13")), PTR), 2);

    // A PTR query that is never answered, among answered ones: those get their names.
    let all = e.lookup_many(&[ip("203.0.113.14"), ip("203.0.113.7")]).await;
    assert_eq!(all[0].hostname, None);
    assert_eq!(all[1].hostname.as_deref(), Some("host7.example.net"));
}

#[tokio::test]
async fn answers_are_cached_names_and_their_absence() {
    let server = zone();
    let e = Enricher::new(Config { cache_ttl: Duration::from_secs(1), ..dns_config(&server) }).unwrap();
    let named = ip("203.0.113.7");
    let nx = ip("198.51.100.1");
    for _ in 0..3 {
        assert_eq!(e.lookup(named).await.hostname.as_deref(), Some("host7.example.net"));
        assert_eq!(e.lookup(nx).await.hostname, None);
    }
    assert_eq!(server.count(&reverse(named), PTR), 1);
    assert_eq!(server.count("host7.example.net", A), 1);
    assert_eq!(server.count(&reverse(nx), PTR), 1, "NXDOMAIN is remembered too");

    // Both expire (with a 1 s TTL, the negative TTL is 1 s too).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.lookup(named).await;
    e.lookup(nx).await;
    assert_eq!(server.count(&reverse(named), PTR), 2);
    assert_eq!(server.count(&reverse(nx), PTR), 2);

    // cache_size = 0: no cache.
    let server = zone();
    let e = Enricher::new(Config { cache_size: 0, ..dns_config(&server) }).unwrap();
    e.lookup(named).await;
    e.lookup(named).await;
    assert_eq!(server.count(&reverse(named), PTR), 2);
}

#[tokio::test]
async fn a_digest_looked_up_together_and_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let server = zone();
    let e = Enricher::new(Config { dns: true, dns_server: Some(server.addr), ..geo_config(dir.path()) }).unwrap();
    let ips = [
        ip("203.0.113.7"),
        ip("198.51.100.1"),
        ip("203.0.113.7"),
        ip("198.51.100.2"),
        ip("198.51.100.3"),
        ip("192.0.2.1"),
    ];
    let all = e.lookup_many(&ips).await;
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].hostname.as_deref(), Some("host7.example.net"));
    assert_eq!(all[0], all[2]);
    assert_eq!(server.count(&reverse(ips[0]), PTR), 1, "an address given twice is looked up once");
    assert_eq!(all[1].asn, Some(64500));
    assert!(all[5].is_empty());

    let s = Summary::of(&all, 3);
    assert_eq!(s.addresses, 6);
    assert_eq!(s.networks[0].label, "AS64500 Example Net");
    assert_eq!(s.networks[0].count, 3);
    assert_eq!(
        s.line(),
        "6 addresses, 3 of them from AS64500 Example Net, 2 from AS64501 Evil Corp Ltd; countries: United States 3, Japan 2"
    );
}

#[tokio::test]
async fn nothing_configured_asks_nobody() {
    let server = zone();
    let e = Enricher::new(Config { dns_server: Some(server.addr), ..Config::default() }).unwrap();
    assert!(e.lookup(ip("203.0.113.7")).await.is_empty());
    assert!(e.lookup_many(&[ip("203.0.113.7")]).await[0].is_empty());
    assert_eq!(server.total(), 0);
}
