//! Secrets (webhook URLs, tokens, passwords) in a type that cannot leak them by accident:
//! `Debug` prints a placeholder, there is no `Display`, and reading one from a file never puts
//! its content into an error.

use std::fmt;
use std::path::{Path, PathBuf};

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
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
    fn pair_rules() {
        assert!(SecretSource::from_pair("url", None, None).unwrap_err().0.contains("missing `url`"));
        let both = SecretSource::from_pair("url", Some(Secret::new("a")), Some("/x".into()));
        assert!(both.unwrap_err().0.contains("not both"));
    }
}
