//! What enrichment found about one address, and how its text is made safe to carry.

use serde::{Deserialize, Serialize};

/// The longest DNS name, in its presentation form without the final dot.
pub const MAX_HOSTNAME: usize = 253;
/// The longest country, city or network name kept.
pub const MAX_NAME: usize = 128;

/// What enrichment found about one address. Every field is optional: a lookup that is not
/// configured, found nothing, failed or ran out of budget leaves its field out (`None`, and
/// absent from the JSON form).
///
/// The text fields are attacker-influenced: `hostname` is whatever the owner of the address's
/// reverse zone put there, and the databases are third-party data. Each is flattened to one
/// line, cut to a sane length (a name ends with "…" when cut) and stripped of control and
/// bidirectional-override characters. That does **not** make them safe for any markup:
/// sinks must still escape them like any other event text (Slack's `<!channel>`, HTML, Markdown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// The PTR name of the address, without the final dot: `host-7.example.net`. Bytes that
    /// are not letters, digits, `-` or `_` are in DNS's escaped form (`evil\010name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Whether `hostname` resolves back to the address: `true` confirmed, `false` not
    /// confirmed (the check found other addresses, none, or did not finish within the
    /// budget); absent without a `hostname` or with `dns_confirm = false`. Show a `false`
    /// name as "(unconfirmed)": anybody can claim any name in their own reverse zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_confirmed: Option<bool>,
    /// The country's English name: `Japan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The country's ISO 3166-1 alpha-2 code: `JP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// The city's English name: `Tokyo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The autonomous system number of the network: `4134` (shown as `AS4134`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The autonomous system's organisation: `CHINANET-BACKBONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

impl Context {
    /// A full example, for documentation and for the sinks' tests: `h.example` (unconfirmed),
    /// Tokyo, Japan (JP), AS64500 Example Net.
    pub fn example() -> Self {
        Self {
            hostname: Some("h.example".into()),
            hostname_confirmed: Some(false),
            country: Some("Japan".into()),
            country_code: Some("JP".into()),
            city: Some("Tokyo".into()),
            asn: Some(64500),
            as_org: Some("Example Net".into()),
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The hostname as it should be shown: `host.example`, or `host.example (unconfirmed)`.
    pub fn hostname_shown(&self) -> Option<String> {
        let name = self.hostname.as_ref()?;
        Some(match self.hostname_confirmed {
            Some(false) => format!("{name} (unconfirmed)"),
            _ => name.clone(),
        })
    }

    /// Where the address is: `Tokyo, Japan (JP)`, `Japan (JP)`, `JP`.
    pub fn place(&self) -> Option<String> {
        let country = match (&self.country, &self.country_code) {
            (Some(name), Some(code)) => Some(format!("{name} ({code})")),
            (Some(name), None) => Some(name.clone()),
            (None, Some(code)) => Some(code.clone()),
            (None, None) => None,
        };
        match (&self.city, country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (Some(city), None) => Some(city.clone()),
            (None, country) => country,
        }
    }

    /// The network: `AS64500 Example Net`, `AS64500`, or the organisation alone.
    pub fn network(&self) -> Option<String> {
        match (self.asn, &self.as_org) {
            (Some(asn), Some(org)) => Some(format!("AS{asn} {org}")),
            (Some(asn), None) => Some(format!("AS{asn}")),
            (None, Some(org)) => Some(org.clone()),
            (None, None) => None,
        }
    }

    /// Everything found, on one plain-text line (not escaped for any markup):
    /// `host.example (unconfirmed) · Tokyo, Japan (JP) · AS64500 Example Net`; empty when
    /// nothing was found.
    pub fn describe(&self) -> String {
        [self.hostname_shown(), self.place(), self.network()].into_iter().flatten().collect::<Vec<_>>().join(" · ")
    }
}

/// `text` flattened to one line: control characters, line and paragraph separators become
/// spaces, runs of spaces one space; bidirectional overrides and isolates, zero-width and
/// other invisible format characters are removed; cut to `max` characters (the last one "…"
/// when cut). `None` when nothing is left.
pub fn clean(text: &str, max: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut space = false;
    for c in text.chars() {
        if invisible(c) {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    if out.is_empty() || max == 0 {
        return None;
    }
    if out.chars().count() > max {
        out = out.chars().take(max - 1).collect::<String>();
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    Some(out)
}

/// Format characters (Unicode category Cf) and the like that change how text around them
/// reads without showing themselves.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_without_controls_or_bidi() {
        assert_eq!(clean("evil\nname\r\n.example", 253).as_deref(), Some("evil name .example"));
        assert_eq!(clean("  a\t\tb  ", 10).as_deref(), Some("a b"));
        assert_eq!(clean("abc\u{202E}fed\u{2066}x\u{200B}y\u{FEFF}", 50).as_deref(), Some("abcfedxy"));
        assert_eq!(clean("line\u{2028}sep\u{0085}nel\u{0007}", 50).as_deref(), Some("line sep nel"));
        assert_eq!(clean("\u{202E}\n\u{200B}", 50), None);
        assert_eq!(clean("", 50), None);
        assert_eq!(clean("東京", 50).as_deref(), Some("東京"));
    }

    #[test]
    fn cut_to_length() {
        let long = "a".repeat(300);
        let cut = clean(&long, MAX_HOSTNAME).unwrap();
        assert_eq!(cut.chars().count(), MAX_HOSTNAME);
        assert!(cut.ends_with('…'));
        assert_eq!(clean("abcdef", 6).as_deref(), Some("abcdef"));
        assert_eq!(clean("ab defg", 4).as_deref(), Some("ab…"));
        assert_eq!(clean("ééééé", 3).as_deref(), Some("éé…"));
    }

    #[test]
    fn shown_forms() {
        let mut c = Context::example();
        assert_eq!(c.describe(), "h.example (unconfirmed) · Tokyo, Japan (JP) · AS64500 Example Net");
        c.hostname_confirmed = Some(true);
        c.city = None;
        c.as_org = None;
        assert_eq!(c.describe(), "h.example · Japan (JP) · AS64500");
        assert_eq!(Context::default().describe(), "");
        assert!(Context::default().is_empty());
    }

    #[test]
    fn json_leaves_absent_fields_out() {
        let c = Context { country_code: Some("JP".into()), asn: Some(64500), ..Context::default() };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"country_code":"JP","asn":64500}"#);
        assert_eq!(serde_json::from_str::<Context>(&json).unwrap(), c);
        assert_eq!(serde_json::from_str::<Context>("{}").unwrap(), Context::default());
    }
}
