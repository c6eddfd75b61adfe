//! A config value that is one string or a list of them (`to = "a@example.com"` or
//! `to = ["a@…", "b@…"]`; `urls = "http://am:9093"` or a list): email's recipients and
//! Alertmanager's URLs read it the same way.

use serde::Deserialize;

/// One string or a list of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// None given.
    #[default]
    None,
    /// One value.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every value, in order.
    pub fn list(&self) -> Vec<&str> {
        match self {
            Self::None => Vec::new(),
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}
