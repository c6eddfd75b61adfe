//! Config sets sharing a spool. A jail may pass its own `--config` (`f2b-notify[args=…]`), and
//! two sets of config files may name the same spool (the default one, most often). A worker
//! judges what it finds by its own config, so two sets must never share the queues: the first
//! set to use a spool owns it (`SPOOL/owner` names it), and any other set that names the same
//! spool gets its own below it, `SPOOL/sets/ID/`, with its own queues, lock and worker, without
//! being told.
//!
//! A set is identified by what selects its files: the default directory, or the `--config`
//! files (`F2B_NOTIFY_CONFIG`) by absolute path, in order.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::Sources;

/// The owner file of a spool: the id of the set that owns it, then a line describing it.
pub const OWNER: &str = "owner";
/// Where other sets' spools go inside a spool.
pub const SETS: &str = "sets";

/// The set's id: 16 hex digits, a hash of what selects its files.
pub fn set_id(sources: &Sources) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(std::iter::once(&0)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match sources {
        Sources::Default(dir) => {
            eat(b"default");
            eat(absolute(dir).as_os_str().as_bytes());
        }
        Sources::Explicit(files) => {
            eat(b"files");
            for f in files {
                eat(absolute(f).as_os_str().as_bytes());
            }
        }
    }
    format!("{h:016x}")
}

/// What a person reading `SPOOL/owner` (or `queue`) should see about the set.
pub fn describe(sources: &Sources) -> String {
    match sources {
        Sources::Default(dir) => format!("the default config ({})", absolute(dir).display()),
        Sources::Explicit(files) => {
            let names: Vec<String> = files.iter().map(|f| absolute(f).display().to_string()).collect();
            format!("--config {}", names.join(" --config "))
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The spool this set uses when its config names `configured`: `configured` itself unless
/// another set owns it, else `configured/sets/ID`. Nothing is claimed or created here, so
/// that looking (`check`, `queue`, `test`) changes nothing: `notify` claims a spool without an
/// owner when it spools into it ([`claim`]).
pub fn resolve(configured: &Path, sources: &Sources) -> PathBuf {
    let id = set_id(sources);
    match read_owner(&configured.join(OWNER)) {
        Some(owner) if owner != id => configured.join(SETS).join(id),
        _ => configured.to_path_buf(),
    }
}

/// Whether `spool` (as [`resolve`] gave it) is this set's for sure: it names this set as its
/// owner, or it is this set's own place inside another's spool. Only then may the action's
/// fast path be told to write there.
pub fn is_ours(spool: &Path, sources: &Sources) -> bool {
    let id = set_id(sources);
    let inside = spool.file_name().is_some_and(|n| n.as_bytes() == id.as_bytes())
        && spool.parent().and_then(Path::file_name).is_some_and(|n| n.as_bytes() == SETS.as_bytes());
    read_owner(&spool.join(OWNER)).is_some_and(|owner| owner == id) || (inside && spool.is_dir())
}

/// Creates the spool `root` (0700) if need be and claims it for this set; nothing to do when
/// it is this set's already; an error when another set claimed it first (the caller then
/// handles the event another way, and the next event resolves to this set's own spool).
pub fn claim(root: &Path, sources: &Sources) -> io::Result<()> {
    let id = set_id(sources);
    if read_owner(&root.join(OWNER)).is_some_and(|owner| owner == id) {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root)?;
    let owner = claim_owner(root, &id, &describe(sources))?;
    if owner != id {
        return Err(io::Error::other(format!(
            "{} was claimed by another set of config files just now; the next event uses its own spool",
            root.display()
        )));
    }
    Ok(())
}

/// The id of the set that owns `spool`, claiming it for `id` when nobody has yet. The claim is
/// written whole to a temporary file first and then linked to its name, which fails when the
/// name exists: of two sets starting at once exactly one wins, and a full disk leaves no empty
/// owner file behind.
fn claim_owner(spool: &Path, id: &str, description: &str) -> io::Result<String> {
    let path = spool.join(OWNER);
    if let Some(owner) = read_owner(&path) {
        return Ok(owner);
    }
    let tmp = spool.join(format!(".owner.{}.{}", std::process::id(), crate::spool::now_epoch().to_bits()));
    let written = crate::spool::write_private(&tmp, format!("{id}\n{description}\n").as_bytes(), true)
        .and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(id.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_owner(&path).ok_or_else(|| io::Error::other(format!("{}: unreadable owner file", path.display())))
        }
        Err(e) => Err(e),
    }
}

fn read_owner(path: &Path) -> Option<String> {
    let text = crate::spool::read_nofollow(path).ok()?;
    let text = String::from_utf8(text).ok()?;
    let id = text.lines().next()?.trim();
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_set_owns_the_spool_and_others_get_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let a = Sources::Explicit(vec![dir.path().join("a.toml")]);
        let b = Sources::Explicit(vec![dir.path().join("b.toml")]);
        let default = Sources::Default(dir.path().join("etc"));
        assert_ne!(set_id(&a), set_id(&b));
        assert_ne!(set_id(&a), set_id(&default));
        assert_eq!(resolve(&spool, &b), spool, "a spool not created yet is anyone's");
        assert!(!spool.exists(), "looking creates nothing");
        assert!(!is_ours(&spool, &a), "nobody's yet: no fast path into it");
        std::fs::create_dir(&spool).unwrap();
        assert_eq!(resolve(&spool, &b), spool, "an existing spool without an owner is anyone's");
        assert!(!spool.join("owner").exists(), "looking claims nothing");
        claim(&spool, &a).unwrap();
        claim(&spool, &a).unwrap();
        assert!(is_ours(&spool, &a) && !is_ours(&spool, &b));
        assert_eq!(resolve(&spool, &a), spool, "first come");
        assert_eq!(resolve(&spool, &a), spool, "and again");
        assert!(claim(&spool, &b).is_err(), "claimed by a");
        claim(&spool.join("sets").join(set_id(&b)), &b).unwrap();
        assert_eq!(resolve(&spool, &b), spool.join("sets").join(set_id(&b)));
        assert!(is_ours(&resolve(&spool, &b), &b));
        assert!(std::fs::read_dir(&spool).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".owner")));
        assert_eq!(resolve(&spool, &default), spool.join("sets").join(set_id(&default)));
        let owner = std::fs::read_to_string(spool.join("owner")).unwrap();
        assert!(owner.starts_with(&set_id(&a)) && owner.contains("a.toml"), "{owner}");
        // Two files, in another order, are another set.
        let ab = Sources::Explicit(vec![dir.path().join("a.toml"), dir.path().join("b.toml")]);
        let ba = Sources::Explicit(vec![dir.path().join("b.toml"), dir.path().join("a.toml")]);
        assert_ne!(set_id(&ab), set_id(&ba));
    }
}
