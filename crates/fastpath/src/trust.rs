//! Whether a directory can be trusted with root's files: the spool and the run directory are
//! written by root for every ban an attacker causes, so a directory that someone else can
//! change (owned by them, writable by them, or a symbolic link they could point elsewhere)
//! would turn those writes against root. Both programs check with these functions before
//! they write; a directory that fails is refused with one line naming it and the fix.
//!
//! The rules: every ancestor of the directory (followed through links: a link in a trusted
//! parent cannot be changed by others) belongs to root or to this user and others cannot
//! write it, unless it is sticky like /tmp (others cannot rename or remove what is not
//! theirs); the directory itself, and each subdirectory used, is a real directory (not a
//! link), belongs to this user, and no one else can write it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::layout::c_path;
use crate::os::{Errno, FileKind, Meta, Os};

/// Why a directory is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// It is a symbolic link.
    Symlink,
    /// It is not a directory.
    NotDir,
    /// It belongs to someone else.
    Owner(u32),
    /// Group or others can write it.
    Writable(u32),
    /// It cannot be looked at.
    Stat(Errno),
}

/// A directory that must not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The directory.
    pub path: String,
    /// Why.
    pub why: Why,
    /// Whether it is an ancestor (checked less strictly, and fixed the same way).
    pub ancestor: bool,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.path;
        match &self.why {
            Why::Symlink => write!(f, "{p} is a symbolic link, which anyone who can change it could point elsewhere; fix: make it a real directory (mkdir -m 0700 {p})"),
            Why::NotDir => write!(f, "{p} is not a directory; fix: remove it, or choose another [delivery] spool"),
            Why::Owner(uid) => write!(f, "{p} belongs to uid {uid}, not to the user running f2b-notify; fix: chown root {p} (or remove it)"),
            Why::Writable(mode) => write!(f, "{p} can be written by others (mode {mode:04o}); fix: chmod go-w {p}"),
            Why::Stat(e) => write!(f, "{p} cannot be checked: {e}"),
        }
    }
}

fn untrusted(path: &[u8], why: Why, ancestor: bool) -> Untrusted {
    Untrusted { path: String::from_utf8_lossy(path).into_owned(), why, ancestor }
}

/// Checks `meta` of the directory `path` itself: `Ok(())` when trusted.
fn judge_dir(path: &[u8], meta: &Meta, euid: u32) -> Result<(), Untrusted> {
    match meta.kind {
        FileKind::Dir => {}
        FileKind::Symlink => return Err(untrusted(path, Why::Symlink, false)),
        _ => return Err(untrusted(path, Why::NotDir, false)),
    }
    if meta.uid != euid {
        return Err(untrusted(path, Why::Owner(meta.uid), false));
    }
    if meta.mode & 0o022 != 0 {
        return Err(untrusted(path, Why::Writable(meta.mode), false));
    }
    Ok(())
}

/// Checks the directory `path` itself (not its ancestors). `Ok(false)` when it does not
/// exist.
pub fn dir<O: Os>(os: &O, path: &[u8]) -> Result<bool, Untrusted> {
    let c = c_path(&[path]).ok_or_else(|| untrusted(path, Why::Stat(Errno::INVAL), false))?;
    match os.lstat(&c) {
        Ok(meta) => judge_dir(path, &meta, os.euid()).map(|()| true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(untrusted(path, Why::Stat(e), false)),
    }
}

/// Checks every ancestor of the absolute path `path` ("/", "/var", "/var/spool" for
/// "/var/spool/f2b-notify"). Ancestors that do not exist yet are fine (they will be created
/// by this user).
pub fn ancestors<O: Os>(os: &O, path: &[u8]) -> Result<(), Untrusted> {
    if path.first() != Some(&b'/') {
        return Err(untrusted(path, Why::Stat(Errno::INVAL), true));
    }
    let euid = os.euid();
    let mut ends: Vec<usize> = Vec::new();
    ends.push(1); // "/"
    for (i, b) in path.iter().enumerate().skip(1) {
        if *b == b'/' && path[i - 1] != b'/' {
            ends.push(i);
        }
    }
    for end in ends {
        let p = &path[..end];
        let c = c_path(&[p]).ok_or_else(|| untrusted(p, Why::Stat(Errno::INVAL), true))?;
        let meta = match os.stat(&c) {
            Ok(m) => m,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(untrusted(p, Why::Stat(e), true)),
        };
        if meta.kind != FileKind::Dir {
            return Err(untrusted(p, Why::NotDir, true));
        }
        if meta.uid != 0 && meta.uid != euid {
            return Err(untrusted(p, Why::Owner(meta.uid), true));
        }
        let sticky = meta.mode & 0o1000 != 0;
        if meta.mode & 0o022 != 0 && !sticky {
            return Err(untrusted(p, Why::Writable(meta.mode), true));
        }
    }
    Ok(())
}

/// The directories of the spool that both programs write: its ancestors, the spool itself,
/// `tmp/` and `new/`. `Ok(false)` when one of them does not exist yet.
pub fn spool<O: Os>(os: &O, spool: &[u8]) -> Result<bool, Untrusted> {
    ancestors(os, spool)?;
    let mut all = dir(os, spool)?;
    for sub in [crate::layout::TMP, crate::layout::NEW] {
        let p =
            c_path(&[spool, b"/", sub.as_bytes()]).ok_or_else(|| untrusted(spool, Why::Stat(Errno::INVAL), false))?;
        all &= dir(os, p.to_bytes())?;
    }
    Ok(all)
}
