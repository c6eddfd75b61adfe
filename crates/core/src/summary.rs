//! A digest's addresses counted by country and by network.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::Context;

/// How many addresses share one country or one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// What is counted, as a key: the country code (`CN`) or the network (`AS4134`).
    pub key: String,
    /// How it is shown: `China`, `AS4134 CHINANET-BACKBONE` (the key when nothing better is known).
    pub label: String,
    /// How many addresses.
    pub count: usize,
}

/// A digest's addresses counted by country and by network, the largest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// How many addresses in all.
    pub addresses: usize,
    /// The most frequent networks (autonomous systems), at most `top`.
    pub networks: Vec<Count>,
    /// The most frequent countries, at most `top`.
    pub countries: Vec<Count>,
}

impl Summary {
    /// Counts `contexts` (one per address) and keeps the `top` largest networks and
    /// countries; equal counts in the order of their keys. Addresses whose country or network
    /// is unknown are counted in `addresses` only.
    pub fn of(contexts: &[Context], top: usize) -> Self {
        let networks = ranked(
            contexts.iter().filter_map(|c| Some((format!("AS{}", c.asn?), c.network().unwrap_or_default()))),
            top,
        );
        let countries = ranked(
            contexts.iter().filter_map(|c| {
                let key = c.country_code.clone().or_else(|| c.country.clone())?;
                let label = c.country.clone().unwrap_or_else(|| key.clone());
                Some((key, label))
            }),
            top,
        );
        Self { addresses: contexts.len(), networks, countries }
    }

    /// One plain-text line (not escaped for any markup): `41 addresses, 30 of them from AS4134
    /// CHINANET, 5 from AS4837 CHINA169; countries: China 35, Russia 4`.
    pub fn line(&self) -> String {
        let mut out = format!("{} address{}", self.addresses, if self.addresses == 1 { "" } else { "es" });
        for (i, n) in self.networks.iter().enumerate() {
            let of_them = if i == 0 && self.addresses > 1 { " of them" } else { "" };
            out.push_str(&format!(", {}{of_them} from {}", n.count, n.label));
        }
        if !self.countries.is_empty() {
            let countries: Vec<String> = self.countries.iter().map(|c| format!("{} {}", c.label, c.count)).collect();
            out.push_str(&format!("; countries: {}", countries.join(", ")));
        }
        out
    }
}

fn ranked(items: impl Iterator<Item = (String, String)>, top: usize) -> Vec<Count> {
    let mut counts: HashMap<String, Count> = HashMap::new();
    for (key, label) in items {
        counts.entry(key.clone()).or_insert(Count { key, label, count: 0 }).count += 1;
    }
    let mut counts: Vec<Count> = counts.into_values().collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    counts.truncate(top);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(code: Option<&str>, country: Option<&str>, asn: Option<u32>, org: Option<&str>) -> Context {
        Context {
            country_code: code.map(Into::into),
            country: country.map(Into::into),
            asn,
            as_org: org.map(Into::into),
            ..Context::default()
        }
    }

    #[test]
    fn counts_by_network_and_country() {
        let mut all = Vec::new();
        all.extend((0..30).map(|_| ctx(Some("CN"), Some("China"), Some(4134), Some("CHINANET"))));
        all.extend((0..5).map(|_| ctx(Some("CN"), Some("China"), Some(4837), Some("CHINA169"))));
        all.extend((0..4).map(|_| ctx(Some("RU"), Some("Russia"), Some(64500), None)));
        all.extend((0..2).map(|_| Context::default()));
        let s = Summary::of(&all, 2);
        assert_eq!(s.addresses, 41);
        assert_eq!(
            s.networks,
            vec![
                Count { key: "AS4134".into(), label: "AS4134 CHINANET".into(), count: 30 },
                Count { key: "AS4837".into(), label: "AS4837 CHINA169".into(), count: 5 },
            ]
        );
        assert_eq!(s.countries[0], Count { key: "CN".into(), label: "China".into(), count: 35 });
        assert_eq!(s.countries[1], Count { key: "RU".into(), label: "Russia".into(), count: 4 });
        assert_eq!(
            s.line(),
            "41 addresses, 30 of them from AS4134 CHINANET, 5 from AS4837 CHINA169; countries: China 35, Russia 4"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["networks"][0]["count"], 30);
    }

    #[test]
    fn small_and_unknown() {
        assert_eq!(Summary::of(&[], 3).line(), "0 addresses");
        assert_eq!(Summary::of(&[Context::default(), Context::default()], 3).line(), "2 addresses");
        let one = [ctx(Some("JP"), None, Some(64500), None)];
        assert_eq!(Summary::of(&one, 3).line(), "1 address, 1 from AS64500; countries: JP 1");
    }

    #[test]
    fn ties_in_key_order() {
        let all = [ctx(Some("RU"), None, None, None), ctx(Some("BR"), None, None, None)];
        let s = Summary::of(&all, 1);
        assert_eq!(s.countries, vec![Count { key: "BR".into(), label: "BR".into(), count: 1 }]);
    }
}
