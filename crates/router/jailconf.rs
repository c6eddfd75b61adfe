//! Reads Fail2Ban's jail configuration the way Fail2Ban 1.0 reads it, as far as `setup` needs
//! it: which files in which order (`jail.conf`, `jail.d/*.conf`, `jail.local`,
//! `jail.d/*.local`, each with its `[INCLUDES]` and the `.local` beside an included `.conf`),
//! and the raw value of each option per section, with the file that set it last. Fail2Ban's
//! own settings (`fail2ban.conf` and the rest, for `report`) are read by the same rules.
//!
//! Values are not interpolated: `setup` copies `[DEFAULT]`'s `action` as written, and Fail2Ban
//! interpolates the copy as it did the original. The line rules are Python configparser's
//! with Fail2Ban's settings: `#` and `;` start a comment line, `;` after white space starts
//! an inline comment, a line indented deeper than its option continues the value, option
//! names are lower case, a later file's value replaces an earlier one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The section every jail inherits from.
pub const DEFAULT: &str = "DEFAULT";

/// One option's raw value: its lines, trimmed, and the file that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The value's lines (the first is what follows `=`).
    pub lines: Vec<String>,
    /// Where it was set last.
    pub file: PathBuf,
}

/// The merged jail configuration.
#[derive(Debug, Default)]
pub struct JailConf {
    /// Section, then option (lower case), then the last value.
    sections: BTreeMap<String, BTreeMap<String, Value>>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

impl JailConf {
    /// Reads the jail configuration of the Fail2Ban directory `dir`, leaving out the file
    /// `skip` (setup's own, which is about to be replaced).
    pub fn read(dir: &Path, skip: &Path) -> io::Result<Self> {
        Self::read_files(files(dir, "jail", skip)?)
    }

    /// Reads Fail2Ban's own settings in `dir` (`fail2ban.conf`, `fail2ban.d/*.conf`,
    /// `fail2ban.local`, `fail2ban.d/*.local`): Fail2Ban reads them by the same rules as the
    /// jails' (`report` takes `dbfile` and `dbpurgeage` from `[Definition]`).
    pub fn read_server(dir: &Path) -> io::Result<Self> {
        Self::read_files(files(dir, "fail2ban", Path::new(""))?)
    }

    fn read_files(files: Vec<PathBuf>) -> io::Result<Self> {
        let mut conf = Self::default();
        for file in files {
            let text = std::fs::read(&file)?;
            let text = String::from_utf8_lossy(&text);
            for (section, option, lines) in parse(&text) {
                conf.sections.entry(section).or_default().insert(option, Value { lines, file: file.clone() });
            }
            conf.files.push(file);
        }
        Ok(conf)
    }

    /// The value a section sets itself.
    pub fn own(&self, section: &str, option: &str) -> Option<&Value> {
        self.sections.get(section).and_then(|s| s.get(option))
    }

    /// The value a jail sees: its own, else `[DEFAULT]`'s.
    pub fn effective(&self, jail: &str, option: &str) -> Option<&Value> {
        self.own(jail, option).or_else(|| self.own(DEFAULT, option))
    }

    /// The jails: every section but `[DEFAULT]`, `[INCLUDES]`, `[Definition]`-like ones and
    /// conditional sections (`[sshd?family=inet6]`).
    pub fn jails(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str).filter(|s| {
            !s.contains('?') && !["DEFAULT", "INCLUDES", "Definition", "Init"].contains(s) && valid_jail_name(s)
        })
    }

    /// Whether the jail is enabled (configparser's true words).
    pub fn enabled(&self, jail: &str) -> bool {
        self.effective(jail, "enabled")
            .and_then(|v| v.lines.first())
            .is_some_and(|v| ["1", "yes", "true", "on"].contains(&v.to_ascii_lowercase().as_str()))
    }

    /// Whether the jail is defined (has a section of its own).
    pub fn has(&self, jail: &str) -> bool {
        self.sections.contains_key(jail)
    }
}

/// Whether `name` is a jail name setup will write as a section header: letters, digits and
/// `- _ .`, not one of Fail2Ban's own section names.
pub fn valid_jail_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !["default", "includes", "known"].contains(&name.to_ascii_lowercase().as_str())
}

/// Whether an `action` value already runs f2b-notify (a line naming the action `f2b-notify`,
/// with or without options).
pub fn runs_f2b_notify(value: &Value) -> bool {
    value.lines.iter().any(|l| l == "f2b-notify" || l.starts_with("f2b-notify["))
}

/// Whether an `action` value appends to the action set before it (`%(known/action)s`): Fail2Ban
/// keeps one earlier value per section, so a second append in a later file would refer to
/// the first append, which refers to itself.
pub fn appends_known(value: &Value) -> bool {
    value.lines.iter().any(|l| l.contains("%(known/action)s"))
}

/// The files Fail2Ban reads for `name` (`jail`, `fail2ban`), in order, without `skip`.
fn files(dir: &Path, name: &str, skip: &Path) -> io::Result<Vec<PathBuf>> {
    let dropins = dir.join(format!("{name}.d"));
    let mut top = vec![dir.join(format!("{name}.conf"))];
    top.extend(glob(&dropins, "conf")?);
    top.push(dir.join(format!("{name}.local")));
    top.extend(glob(&dropins, "local")?);
    top.retain(|p| p.is_file() && p != skip);
    let mut out = Vec::new();
    for f in with_locals(&top) {
        includes(&f, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// `DIR/*.EXT` as Python's glob lists it: sorted, without hidden files.
pub(crate) fn glob(dir: &Path, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && name.ends_with(&format!(".{ext}"))
            })
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    found.sort();
    Ok(found)
}

/// Each file followed by the `.local` beside it, when that exists and is not listed already.
fn with_locals(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        out.push(f.clone());
        let local = f.with_extension("local");
        if !files.contains(&local) && local.is_file() {
            out.push(local);
        }
    }
    out
}

/// `file` with what its `[INCLUDES]` put before and after it, recursively (a file already
/// being included is not included again).
fn includes(file: &Path, seen: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if seen.iter().any(|s| s == file) || !file.is_file() {
        return Ok(());
    }
    let text = std::fs::read(file)?;
    let parsed = parse(&String::from_utf8_lossy(&text));
    let listed = |which: &str| -> Vec<PathBuf> {
        let base = file.parent().unwrap_or(Path::new("/"));
        let names = parsed.iter().rfind(|(s, o, _)| s == "INCLUDES" && o == which);
        let names = names.map(|(_, _, lines)| lines.clone()).unwrap_or_default();
        names.iter().filter(|n| !n.is_empty()).map(|n| base.join(n)).collect()
    };
    let (before, after) = (listed("before"), listed("after"));
    seen.push(file.to_owned());
    for f in with_locals(&before) {
        includes(&f, seen, out)?;
    }
    out.push(file.to_owned());
    for f in with_locals(&after) {
        includes(&f, seen, out)?;
    }
    seen.pop();
    Ok(())
}

/// One file's `(section, option, value lines)`, in order (also the action file's, for `check`).
pub(crate) fn parse(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut section: Option<String> = None;
    // The option being read (its index in `out`) and the indent of its line.
    let mut current: Option<(usize, usize)> = None;
    for raw in text.lines() {
        let line = strip_comment(raw);
        let value = line.trim();
        if value.is_empty() {
            // A blank line inside a value is part of it (dropped at the end if trailing);
            // a comment line is not.
            if let (Some((i, _)), false) = (current, is_comment(raw)) {
                out[i].2.push(String::new());
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some((i, at)) = current.filter(|(_, at)| indent > *at) {
            out[i].2.push(value.to_owned());
            current = Some((i, at));
            continue;
        }
        if let Some(header) = value.strip_prefix('[').and_then(|v| v.rfind(']').map(|end| &v[..end])) {
            section = Some(header.to_owned());
            current = None;
            continue;
        }
        let Some(sect) = &section else { continue };
        let Some(at) = value.find(['=', ':']) else {
            current = None;
            continue;
        };
        let option = value[..at].trim().to_ascii_lowercase();
        out.push((sect.clone(), option, vec![value[at + 1..].trim().to_owned()]));
        current = Some((out.len() - 1, indent));
    }
    for (_, _, lines) in &mut out {
        while lines.len() > 1 && lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
    }
    out
}

/// A whole-line comment (`#` or `;` first).
fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#') || t.starts_with(';')
}

/// The line without its comment: all of it for a comment line, from a `;` that follows white
/// space otherwise.
fn strip_comment(line: &str) -> &str {
    if is_comment(line) {
        return "";
    }
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b';' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_like_configparser() {
        let text = "# head\n[DEFAULT]\nbanaction = nftables ; inline\naction = %(action_)s\n         dummy[target=\"/x;y\"]\n\n  # comment in value\n         other\n\nenabled=false\n[sshd]\nEnabled: true\nport    = ssh\n[sshd?family=inet6]\nx = 1\n";
        let got = parse(text);
        let find = |s: &str, o: &str| got.iter().rfind(|(a, b, _)| a == s && b == o).map(|(_, _, l)| l.clone());
        assert_eq!(find("DEFAULT", "banaction"), Some(lines(&["nftables"])));
        // A `;` inside a word is not a comment; the blank line inside the value stays.
        assert_eq!(find("DEFAULT", "action"), Some(lines(&["%(action_)s", "dummy[target=\"/x;y\"]", "", "other"])));
        assert_eq!(find("DEFAULT", "enabled"), Some(lines(&["false"])));
        assert_eq!(find("sshd", "enabled"), Some(lines(&["true"])));
        assert_eq!(find("sshd", "port"), Some(lines(&["ssh"])));
        assert_eq!(find("sshd?family=inet6", "x"), Some(lines(&["1"])));
    }

    #[test]
    fn files_in_fail2bans_order_and_the_last_value_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = |name: &str, body: &str| {
            let p = d.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        w("jail.conf", "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\naction = %(action_)s\n[sshd]\nport = ssh\n");
        w("paths.conf", "[DEFAULT]\nsshd_log = /var/log/auth.log\n");
        w("paths.local", "[DEFAULT]\nsshd_log = /var/log/secure\n");
        w("jail.d/b.conf", "[sshd]\nenabled = true\n");
        w("jail.d/a.conf", "[web]\nenabled = true\naction = %(action_mwl)s\n");
        w("jail.local", "[DEFAULT]\naction = %(action_mw)s\n");
        w("jail.d/z.local", "[web]\nenabled = false\n");
        w("jail.d/.hidden.local", "[sshd]\nenabled = false\n");
        w("jail.d/f2b-notify.local", "[DEFAULT]\naction = skipped\n");
        let conf = JailConf::read(d, &d.join("jail.d/f2b-notify.local")).unwrap();
        let names: Vec<String> = conf.files.iter().map(|p| p.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(
            names,
            [
                "paths.conf",
                "paths.local",
                "jail.conf",
                "jail.d/a.conf",
                "jail.d/b.conf",
                "jail.local",
                "jail.d/z.local"
            ]
        );
        let action = conf.effective("sshd", "action").unwrap();
        assert_eq!((action.lines.clone(), action.file.clone()), (lines(&["%(action_mw)s"]), d.join("jail.local")));
        assert_eq!(conf.effective("web", "action").unwrap().lines, lines(&["%(action_mwl)s"]));
        assert_eq!(conf.own(DEFAULT, "sshd_log").unwrap().lines, lines(&["/var/log/secure"]));
        assert!(conf.enabled("sshd") && !conf.enabled("web"));
        assert_eq!(conf.jails().collect::<Vec<_>>(), ["sshd", "web"]);
    }

    #[test]
    fn names_and_f2b_notify_lines() {
        for ok in ["sshd", "nginx-http-auth", "a_b.c"] {
            assert!(valid_jail_name(ok), "{ok}");
        }
        for bad in ["", "DEFAULT", "Includes", "a b", "a]", "a%b", "a\nb", "known"] {
            assert!(!valid_jail_name(bad), "{bad:?}");
        }
        let v = |l: &[&str]| Value { lines: lines(l), file: PathBuf::new() };
        assert!(runs_f2b_notify(&v(&["%(action_)s", "f2b-notify"])));
        assert!(runs_f2b_notify(&v(&["%(action_)s", "f2b-notify[args=\"--config /x\"]"])));
        assert!(!runs_f2b_notify(&v(&["%(action_)s", "f2b-notify-other"])));
        assert!(appends_known(&v(&["%(known/action)s", "dummy"])) && !appends_known(&v(&["%(action_)s"])));
    }
}
