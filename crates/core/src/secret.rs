//! Secrets (webhook URLs, tokens, passwords) in a type that cannot leak them by accident:
//! `Debug` prints a placeholder, there is no `Display`, and reading one from a file never puts
//! its content into an error.
//!
//! Nor does reading one from the config: serde's usual "invalid type: found unsigned int
//! `123456789`, expected a string" would print a numeric token on every action, so a secret
//! of the wrong type says only which key and which type, whatever the type. That is decided
//! here, by the type, so every `Secret` field of every sink gets it without a list of keys.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::ConfigError;

/// A secret value. Use [`Secret::expose`] only where the value goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file: surrounding white space (the usual trailing newline) is
    /// dropped; a file that is empty or not UTF-8 is an error that does not quote the content.
    pub fn from_file(path: &Path, key: &str) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::new(format!("cannot read `{key}` file {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::new(format!("`{key}` file {} is not valid UTF-8", path.display())))?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ConfigError::new(format!("`{key}` file {} is empty", path.display())));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// In the configuration reference a secret is a string (its own key, `KEY_file`, or the
/// environment).
impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "writeOnly": true })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let visitor = SecretVisitor { key: None };
        d.deserialize_any(visitor)?.ok_or_else(|| visitor.wrong("nothing", false))
    }
}

/// What every "wrong type" message for a secret ends with; [`Secret::key_of_type_error`]
/// recognises the messages by it.
const NOT_SHOWN: &str = "(a secret's value is never shown)";

impl Secret {
    /// For an optional secret field, as `#[serde(default, deserialize_with = "…")]` with a
    /// one-line function that passes the field's name: a value of the wrong type is then an
    /// error that names `key` (and still never the value).
    pub fn deserialize_named<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(SecretVisitor { key: Some(key) })
    }

    /// The key named by a wrong-type error of a secret (`token` in "`token` must be a string,
    /// not an integer: …"), so that the config loader can put it into the key path it shows
    /// (sinks are internally tagged enums, whose errors stop at `sinks.NAME`).
    pub fn key_of_type_error(message: &str) -> Option<&str> {
        if !message.ends_with(NOT_SHOWN) {
            return None;
        }
        let rest = message.strip_prefix('`')?;
        let (key, tail) = rest.split_once('`')?;
        tail.starts_with(" must be a string").then_some(key)
    }
}

/// Takes a string (the secret) or nothing (no secret); every other type is refused with a
/// message that names the key and the type found. It is driven by `deserialize_any`, never
/// `deserialize_string`: given a number, serde's buffered deserializer (what an internally
/// tagged enum like `[sinks.NAME]` goes through) answers `deserialize_string` with its own
/// "invalid type: integer `123456789`", value and all, without asking the visitor. Each
/// `visit_*` is spelled out because serde's defaults put the value into the message too.
#[derive(Clone, Copy)]
struct SecretVisitor {
    key: Option<&'static str>,
}

impl SecretVisitor {
    fn wrong<E: de::Error>(&self, found: &str, scalar: bool) -> E {
        let what = match self.key {
            Some(key) => format!("`{key}`"),
            None => "a secret".to_owned(),
        };
        let fix = if scalar { ": put it in quotes" } else { "" };
        E::custom(format!("{what} must be a string, not {found}{fix} {NOT_SHOWN}"))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Option<Secret>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Secret(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Secret(v)))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Self::Value, E> {
        Ok(Some(Secret(v.to_string())))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.wrong("a boolean", true))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(self.wrong("an integer", true))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        Err(self.wrong("an integer", true))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(self.wrong("an integer", true))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Err(self.wrong("an integer", true))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.wrong("a number", true))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Err(self.wrong("bytes", false))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(self.wrong("a structure", false))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong("a list", false))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong("a table", false))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong("a variant", false))
    }
}

/// Where a sink's secret comes from: given inline (or by `F2B_NOTIFY_…` environment
/// variable, which figment merges as if inline), or from a file.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// The value was in the config or the environment.
    Inline(Secret),
    /// The value is read from this file.
    File(PathBuf),
}

impl SecretSource {
    /// Picks the one source a sink's config gives for `key` (`url` / `url_file`, …).
    /// Both, or neither, is a config error naming the keys.
    pub fn from_pair(key: &str, inline: Option<Secret>, file: Option<PathBuf>) -> Result<Self, ConfigError> {
        match (inline, file) {
            (Some(s), None) => Ok(Self::Inline(s)),
            (None, Some(p)) => Ok(Self::File(p)),
            (Some(_), Some(_)) => Err(ConfigError::new(format!("give either `{key}` or `{key}_file`, not both"))),
            (None, None) => Err(ConfigError::new(format!("missing `{key}` (or `{key}_file`)"))),
        }
    }

    /// Loads the secret now.
    pub fn load(&self, key: &str) -> Result<Secret, ConfigError> {
        match self {
            Self::Inline(s) => Ok(s.clone()),
            Self::File(p) => Secret::from_file(p, &format!("{key}_file")),
        }
    }

    /// A warning when the secret's file can be read by users other than its owner, for
    /// `f2b-notify check`.
    pub fn permission_warning(&self, key: &str) -> Option<String> {
        #[cfg(unix)]
        if let Self::File(p) = self {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).ok()?.permissions().mode();
            if mode & 0o077 != 0 {
                return Some(format!(
                    "`{key}_file` {} has mode {:o}: other users may read it; run `chmod 600 {}`",
                    p.display(),
                    mode & 0o777,
                    p.display()
                ));
            }
        }
        let _ = key;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = Secret::new("xoxb-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        let src = SecretSource::Inline(s);
        assert!(!format!("{src:?}").contains("very-secret"));
    }

    #[test]
    fn file_errors_do_not_quote_content() {
        let dir = std::env::temp_dir().join(format!("f2b-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad");
        std::fs::write(&bad, b"hunter2\xff\xfe").unwrap();
        let err = Secret::from_file(&bad, "token_file").unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8") && !err.contains("hunter2"), "{err}");
        let good = dir.join("good");
        std::fs::write(&good, "  https://hooks.example/x\n").unwrap();
        assert_eq!(Secret::from_file(&good, "url_file").unwrap().expose(), "https://hooks.example/x");
        std::fs::write(&good, "\n").unwrap();
        assert!(Secret::from_file(&good, "url_file").unwrap_err().to_string().contains("empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_of_the_wrong_type_names_the_key_never_the_value() {
        use serde::de::value::{BoolDeserializer, Error, MapDeserializer, SeqDeserializer, StrDeserializer};
        use serde::de::IntoDeserializer;
        let named = |r: Result<Option<Secret>, Error>| r.unwrap_err().to_string();
        let cases: Vec<(String, &str)> = vec![
            (
                named(Secret::deserialize_named(IntoDeserializer::<Error>::into_deserializer(123456789u64), "token")),
                "an integer",
            ),
            (
                named(Secret::deserialize_named(IntoDeserializer::<Error>::into_deserializer(-123456789i64), "token")),
                "an integer",
            ),
            (
                named(Secret::deserialize_named(IntoDeserializer::<Error>::into_deserializer(123456789u128), "token")),
                "an integer",
            ),
            (
                named(Secret::deserialize_named(IntoDeserializer::<Error>::into_deserializer(-123456789i128), "token")),
                "an integer",
            ),
            (
                named(Secret::deserialize_named(IntoDeserializer::<Error>::into_deserializer(1234.56789f64), "token")),
                "a number",
            ),
            (named(Secret::deserialize_named(BoolDeserializer::<Error>::new(true), "token")), "a boolean"),
            (
                named(Secret::deserialize_named(
                    MapDeserializer::<_, Error>::new(vec![("a", 123456789u64)].into_iter()),
                    "token",
                )),
                "a table",
            ),
            (
                named(Secret::deserialize_named(
                    SeqDeserializer::<_, Error>::new(vec![123456789u64].into_iter()),
                    "token",
                )),
                "a list",
            ),
        ];
        for (msg, found) in cases {
            assert!(msg.starts_with(&format!("`token` must be a string, not {found}")), "{msg}");
            for value in ["123456789", "1234.56789", "true"] {
                assert!(!msg.contains(value), "{msg}");
            }
            assert_eq!(Secret::key_of_type_error(&msg), Some("token"), "{msg}");
        }
        // The plain impl (a secret not declared with its name) is just as quiet.
        let plain = Secret::deserialize(IntoDeserializer::<Error>::into_deserializer(123456789u64)).unwrap_err();
        assert!(plain.to_string().starts_with("a secret must be a string") && !plain.to_string().contains("123"));
        // A string is the secret; nothing at all is no secret.
        let s = Secret::deserialize_named(StrDeserializer::<Error>::new("xoxb-1"), "token").unwrap();
        assert_eq!(s.unwrap().expose(), "xoxb-1");
        let none = Secret::deserialize_named(serde::de::value::UnitDeserializer::<Error>::new(), "token").unwrap();
        assert!(none.is_none());
        assert_eq!(Secret::key_of_type_error("invalid type: found unsigned int `1`, expected a string"), None);
    }

    #[test]
    fn pair_rules() {
        assert!(SecretSource::from_pair("url", None, None).unwrap_err().0.contains("missing `url`"));
        let both = SecretSource::from_pair("url", Some(Secret::new("a")), Some("/x".into()));
        assert!(both.unwrap_err().0.contains("not both"));
    }
}
