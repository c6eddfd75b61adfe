//! `[enrich]` end to end: events go in through `f2b-notify notify` (what Fail2Ban's action
//! runs), the worker looks their addresses up — in MaxMind-format databases written by the
//! test and from a DNS server on the loopback — and the webhook stand-in receives what the
//! sink made of it. A DNS server that never answers costs the budget, not the message; an
//! address missing from the databases goes out without context; a database that cannot be
//! read is named by `check` and costs only its own fields.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use f2b_notify_standins::dns::{reverse, DnsServer, Reply, A, PTR};
use f2b_notify_standins::webhook::Endpoint;
use f2b_notify_standins::{mmdb, StandIn};

use crate::util::{run, wait_for, Dir, WorkerGuard};

const WAIT: Duration = Duration::from_secs(60);

/// Every variable of the context, `|`-separated, as the ban's text.
const TEMPLATE: &str =
    "{{ ip }}|{{ hostname }}|{{ hostname_confirmed }}|{{ country_code }}|{{ country }}|{{ city }}|{{ asn }}|{{ as_org }}|{{ context }}";

struct Setup {
    dir: Dir,
    config: PathBuf,
    endpoint: Arc<Endpoint>,
    _server: StandIn,
    _worker: WorkerGuard,
}

/// A webhook sink whose ban text is [`TEMPLATE`], and `enrich` as the `[enrich]` table.
fn setup(enrich: &str) -> Setup {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let endpoint = Endpoint::new("/hook");
    let server = StandIn::start(endpoint.responder());
    let enrich = enrich.replace("DIR", &dir.path().display().to_string());
    let config = dir.write(
        "notify.toml",
        &format!(
            "host = \"h.example\"\n[delivery]\nspool = \"{}\"\nidle_exit = 2\nmin_interval = {{ hook = 1 }}\n\n[enrich]\n{enrich}\n\n[sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\n[sinks.hook.templates]\nban = \"{}\"\n\n[jails.\"*\"]\nsinks = [\"hook\"]\n",
            spool.display(),
            server.url("/hook"),
            TEMPLATE.replace('"', "\\\""),
        ),
    );
    Setup { _worker: WorkerGuard(spool), dir, config, endpoint, _server: server }
}

impl Setup {
    fn ban(&self, ip: &str) {
        let mut c = self.dir.cmd();
        c.arg("--config").arg(&self.config).args(["notify", "ban", "--jail", "sshd", "--ip", ip, "--failures", "3"]);
        let r = run(c);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }

    /// The text of each event message received, by address.
    fn texts(&self) -> Vec<String> {
        self.endpoint
            .bodies()
            .into_iter()
            .filter(|b| b["type"] == "event")
            .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn text_of(&self, ip: &str) -> String {
        wait_for(&format!("the ban of {ip}"), WAIT, || {
            self.texts().into_iter().find(|t| t.starts_with(&format!("{ip}|")))
        })
    }
}

/// The zone: 203.0.113.7 is `host7.example.net`, which resolves back to it; 198.51.100.9
/// claims `mail.google.example`, which does not.
fn zone() -> DnsServer {
    let ip = |s: &str| s.parse().unwrap();
    DnsServer::start(
        vec![
            ((reverse(ip("203.0.113.7")), PTR), Reply::ptr("host7.example.net")),
            (("host7.example.net".into(), A), Reply::Addrs(vec![ip("203.0.113.7")])),
            ((reverse(ip("198.51.100.9")), PTR), Reply::ptr("mail.google.example")),
            (("mail.google.example".into(), A), Reply::Addrs(vec![ip("192.0.2.99")])),
        ],
        Reply::NxDomain,
    )
}

fn databases(dir: &Dir) -> String {
    let city = mmdb::city(dir.path());
    let asn = mmdb::asn(dir.path());
    format!("geoip = \"{}\"\nasn = \"{}\"\n", city.display(), asn.display())
}

#[test]
fn who_the_address_is_reaches_the_sink() {
    let dns = zone();
    let probe = Dir::new();
    let s = setup(&format!("dns = true\ndns_server = \"{}\"\n{}", dns.addr, databases(&probe)));
    s.ban("203.0.113.7");
    assert_eq!(
        s.text_of("203.0.113.7"),
        "203.0.113.7|host7.example.net|True|JP|Japan|Tokyo|64501|Evil Corp Ltd|\
host7.example.net · Tokyo, Japan (JP) · AS64501 Evil Corp Ltd",
        "the PTR name forward-confirmed; the hostile network name on one line, without its invisible characters"
    );
    s.ban("198.51.100.9");
    assert_eq!(
        s.text_of("198.51.100.9"),
        "198.51.100.9|mail.google.example|False|US|United States||64500|Example Net|\
mail.google.example (unconfirmed) · United States (US) · AS64500 Example Net",
        "a name that does not resolve back is marked"
    );
}

#[test]
fn a_dns_server_that_never_answers_costs_the_budget_not_the_message() {
    let silent = DnsServer::silent();
    let probe = Dir::new();
    let s = setup(&format!("dns = true\ndns_server = \"{}\"\nbudget = \"300ms\"\n{}", silent.addr, databases(&probe)));
    s.ban("203.0.113.7");
    // No name, but what the databases know.
    assert_eq!(
        s.text_of("203.0.113.7"),
        "203.0.113.7|||JP|Japan|Tokyo|64501|Evil Corp Ltd|Tokyo, Japan (JP) · AS64501 Evil Corp Ltd"
    );
    assert!(silent.total() > 0, "the server was asked");
}

#[test]
fn an_address_missing_from_the_databases_goes_out_without_context() {
    let probe = Dir::new();
    let s = setup(&databases(&probe));
    s.ban("192.0.2.55");
    assert_eq!(s.text_of("192.0.2.55"), "192.0.2.55||||||||");
}

#[test]
fn a_storm_digest_says_where_the_addresses_come_from() {
    let probe = Dir::new();
    let s = setup(&databases(&probe));
    // The first ban goes alone; the others pile up behind the 1 s pacing into a digest.
    for i in 1..=12 {
        s.ban(&format!("198.51.100.{i}"));
    }
    for i in 1..=3 {
        s.ban(&format!("203.0.113.{i}"));
    }
    let digest = wait_for("a digest naming every address", WAIT, || {
        let bodies = s.endpoint.bodies();
        let named = |ip: &str| bodies.iter().any(|b| b.to_string().contains(&format!("\"{ip}\"")));
        let all =
            (1..=12).all(|i| named(&format!("198.51.100.{i}"))) && (1..=3).all(|i| named(&format!("203.0.113.{i}")));
        if !all {
            return None;
        }
        bodies.into_iter().find(|b| b["type"] == "digest")
    });
    let text = digest["text"].as_str().unwrap();
    assert!(text.contains("Banned: "), "{text}");
    assert!(text.contains("from AS64500 Example Net"), "{text}");
    assert!(text.contains("countries: United States"), "{text}");
}

#[test]
fn a_database_that_cannot_be_read_is_named_by_check_and_costs_only_its_fields() {
    let probe = Dir::new();
    let asn = mmdb::asn(probe.path());
    let s = setup(&format!("geoip = \"DIR/GeoLite2-City.mmdb\"\nasn = \"{}\"", asn.display()));
    let mut c = s.dir.cmd();
    c.arg("--config").arg(&s.config).arg("check");
    let r = run(c);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    let line = r.stderr.lines().find(|l| l.contains("enrich.geoip")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(line.contains(&s.config.display().to_string()), "names the file: {line}");
    assert!(line.contains("GeoLite2-City.mmdb"), "names the value: {line}");
    // The worker delivers all the same, with the network the other database knows.
    s.ban("198.51.100.4");
    assert_eq!(s.text_of("198.51.100.4"), "198.51.100.4||||||64500|Example Net|AS64500 Example Net");
}

#[test]
fn test_shows_what_the_lookups_find_for_an_address() {
    let probe = Dir::new();
    let s = setup(&databases(&probe));
    let mut c = s.dir.cmd();
    c.arg("--config").arg(&s.config).args(["test", "--jail", "sshd", "--ip", "198.51.100.4", "--dry-run"]);
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("enrich: United States (US) · AS64500 Example Net\n"), "{}", r.stdout);
    // The preview is the enriched event, as the worker would send it.
    assert!(r.stdout.contains("198.51.100.4|||US|United States||64500|Example Net|"), "{}", r.stdout);
    let mut c = s.dir.cmd();
    c.arg("--config").arg(&s.config).args(["test", "--jail", "sshd", "--ip", "192.0.2.1", "--dry-run"]);
    let r = run(c);
    assert!(r.stdout.contains("enrich: nothing found for 192.0.2.1"), "{}", r.stdout);
}
