//! Whether a file that root is about to read can be trusted: Fail2Ban's database for `report`,
//! the `[enrich]` databases for the worker. Root runs f2b-notify, so a file that another user
//! could have written, or that sits in a directory another user controls (and so could swap),
//! could say anything: it is refused, with the reason, and the caller says what to do.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use f2b_notify_fastpath::trust;

use crate::os::StdOs;

/// Why a file is not trusted.
#[derive(Debug)]
pub enum Untrusted {
    /// There is no such file.
    Missing,
    /// It cannot be looked at or resolved.
    Unreadable(std::io::Error),
    /// A symbolic link that belongs to another user, who could point it anywhere.
    ForeignLink(u32),
    /// A directory on the way that others control.
    Directory(trust::Untrusted),
    /// Not a regular file.
    NotAFile,
    /// Owned by another user than root or the one running f2b-notify.
    ForeignOwner(u32),
    /// Group or others can write it (the mode).
    Writable(u32),
}

/// The real path of `path` (links resolved) when it is a regular file that only root or the
/// user running f2b-notify could have written, in directories only they control; a link is
/// followed only when it is theirs.
pub fn trusted_file(path: &Path) -> Result<PathBuf, Untrusted> {
    let link = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Untrusted::Missing,
        _ => Untrusted::Unreadable(e),
    })?;
    let euid = rustix::process::geteuid().as_raw();
    if link.file_type().is_symlink() && link.uid() != 0 && link.uid() != euid {
        return Err(Untrusted::ForeignLink(link.uid()));
    }
    let real = std::fs::canonicalize(path).map_err(Untrusted::Unreadable)?;
    trust::ancestors(&StdOs, real.as_os_str().as_bytes()).map_err(Untrusted::Directory)?;
    let meta = std::fs::metadata(&real).map_err(Untrusted::Unreadable)?;
    if !meta.is_file() {
        return Err(Untrusted::NotAFile);
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(Untrusted::ForeignOwner(meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Untrusted::Writable(meta.mode() & 0o7777));
    }
    Ok(real)
}

/// `[enrich]` with each database checked by [`trusted_file`]: one that is refused is taken
/// out (its fields are then missing) and named in the problems, one line each naming the key
/// and the file. A missing or unreadable file is left in: the lookups say so themselves.
pub fn vet_enrich(mut config: f2b_notify_enrich::Config) -> (f2b_notify_enrich::Config, Vec<String>) {
    let mut problems = Vec::new();
    for (key, slot) in [("geoip", &mut config.geoip), ("asn", &mut config.asn)] {
        let Some(path) = slot.clone() else { continue };
        let shown = path.display().to_string().replace(['\n', '\r'], "?");
        let refused = match trusted_file(&path) {
            Ok(real) => {
                *slot = Some(real);
                continue;
            }
            Err(Untrusted::Missing | Untrusted::Unreadable(_) | Untrusted::NotAFile) => continue,
            Err(Untrusted::ForeignLink(uid)) => {
                format!("a symbolic link that belongs to uid {uid}, who could point it anywhere: name the file itself")
            }
            Err(Untrusted::Directory(u)) => format!("in a directory others control: {u}"),
            Err(Untrusted::ForeignOwner(uid)) => {
                format!("belongs to uid {uid}, not to root or the user running f2b-notify: it could say anything")
            }
            Err(Untrusted::Writable(mode)) => {
                format!("others can write it (mode {mode:04o}): it could say anything; fix: chmod go-w {shown}")
            }
        };
        problems.push(format!("key `enrich.{key}`: {shown}: refusing it: {refused}"));
        *slot = None;
    }
    (config, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_database_others_can_write_is_refused_and_taken_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("City.mmdb");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let config = f2b_notify_enrich::Config { geoip: Some(file.clone()), ..Default::default() };
        let (vetted, problems) = vet_enrich(config);
        assert_eq!(vetted.geoip, None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("key `enrich.geoip`: "), "{}", problems[0]);
        assert!(problems[0].contains("mode 0666"), "{}", problems[0]);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = f2b_notify_enrich::Config { geoip: Some(file.clone()), ..Default::default() };
        let (vetted, problems) = vet_enrich(config);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(vetted.geoip, Some(std::fs::canonicalize(&file).unwrap()));
        // A missing file is the lookups' to report (they name it the same way).
        let config = f2b_notify_enrich::Config { asn: Some(dir.path().join("nope.mmdb")), ..Default::default() };
        let (vetted, problems) = vet_enrich(config);
        assert!(problems.is_empty());
        assert!(vetted.asn.is_some());
    }
}
