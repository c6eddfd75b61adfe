//! MaxMind-format databases written by the tests, in the layout of GeoLite2's City and ASN
//! files, with the Rust writer `mmdb-writer`.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

type Names = BTreeMap<&'static str, String>;

/// GeoLite2-City's layout (the fields read, and some that are not); numbers as in the real
/// files (`geoname_id` is a uint32: the reader refuses a uint64 there).
#[derive(Serialize)]
struct Place {
    continent: Area,
    country: Country,
    city: Option<Area>,
}

#[derive(Serialize)]
struct Area {
    code: Option<&'static str>,
    geoname_id: u32,
    names: Names,
}

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
    geoname_id: u32,
    names: Names,
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// A City database: 203.0.113.0/24 in Tokyo, Japan; 198.51.100.0/24 in the United States (no
/// city); 2001:db8::/32 in Berlin, Germany; a hostile city name for 203.0.113.128/25.
pub fn city(dir: &Path) -> PathBuf {
    let mut w = Writer::new("GeoLite2-City");
    let place = |code: &'static str, country: &str, city: Option<&str>| Place {
        continent: Area { code: Some("AS"), geoname_id: 6_255_147, names: Names::from([("en", "Asia".into())]) },
        country: Country {
            iso_code: code,
            geoname_id: 1_861_060,
            names: Names::from([("en", country.into()), ("de", format!("{country} (de)"))]),
        },
        city: city.map(|c| Area {
            code: None,
            geoname_id: 1_850_147,
            names: Names::from([("en", c.into()), ("ja", "東京".into())]),
        }),
    };
    w.insert(net("203.0.113.0/24"), &place("JP", "Japan", Some("Tokyo"))).unwrap();
    w.insert(net("203.0.113.128/25"), &place("JP", "Japan", Some("Evil\nCity\u{202E}txt.exe"))).unwrap();
    w.insert(net("198.51.100.0/24"), &place("US", "United States", None)).unwrap();
    w.insert(net("2001:db8::/32"), &place("DE", "Germany", Some("Berlin"))).unwrap();
    let path = dir.join("City.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// An ASN database: 198.51.100.0/24 is AS64500 "Example Net", 203.0.113.0/24 AS64501 with a
/// hostile name, 2001:db8::/32 AS64502 "Doc Six".
pub fn asn(dir: &Path) -> PathBuf {
    let mut w = Writer::new("GeoLite2-ASN");
    let a = |n: u32, org: &str| Asn { autonomous_system_number: n, autonomous_system_organization: org.into() };
    w.insert(net("198.51.100.0/24"), &a(64500, "Example Net")).unwrap();
    w.insert(net("203.0.113.0/24"), &a(64501, "Evil\r\nCorp\u{2066}\u{200B} Ltd")).unwrap();
    w.insert(net("2001:db8::/32"), &a(64502, "Doc Six")).unwrap();
    let path = dir.join("ASN.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}
