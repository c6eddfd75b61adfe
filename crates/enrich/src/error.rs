//! What is wrong with an `[enrich]` config.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem of an `[enrich]` config, shown on one line that names the key and, for a
/// database, the file: ``key `enrich.geoip`: /var/lib/GeoIP/GeoLite2-City.mmdb: cannot read
/// it: No such file or directory (os error 2)``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    key: &'static str,
    path: Option<PathBuf>,
    reason: String,
}

impl Problem {
    pub(crate) fn new(key: &'static str, path: Option<&Path>, reason: impl Into<String>) -> Self {
        let reason = reason.into().replace(['\n', '\r'], " ");
        Self { key, path: path.map(Path::to_path_buf), reason }
    }

    /// The key, with its table: `enrich.geoip`.
    pub fn key(&self) -> String {
        format!("enrich.{}", self.key)
    }

    /// The file the problem is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What is wrong, without the key and path.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `enrich.{}`: ", self.key)?;
        if let Some(path) = &self.path {
            // The path as given in the config, flattened to one line.
            let shown = path.display().to_string().replace(['\n', '\r'], "?");
            write!(f, "{shown}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Problem {}
