//! The Fail2Ban action file as installed (`DIR/action.d/f2b-notify.conf`): whether the program
//! its `bin` names, and the front end beside it, are there and can run. Fail2Ban finds out only
//! at the first ban, and then logs a failed action for every event.
//!
//! Fail2Ban reads `f2b-notify.conf`, then `f2b-notify.d/*.conf`, `f2b-notify.local` and
//! `f2b-notify.d/*.local`, later values winning; `bin` is in the `[Init]` section. (A jail may
//! still give its own, `f2b-notify[bin=…]`: that is jail.local's business, not checked here.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::Access;

use crate::jailconf;

/// What `check` says about the action file.
#[derive(Debug, Default)]
pub struct Report {
    /// One line for the summary: which file, which program.
    pub info: Option<String>,
    /// Things that work, though not as well as they could.
    pub warnings: Vec<String>,
    /// Things that make every action fail (or slower than it must be): exit 2.
    pub problems: Vec<String>,
}

/// The action's name in `action.d`.
const NAME: &str = "f2b-notify";

/// Checks the action file in `fail2ban_dir`, if there is one.
pub fn check(fail2ban_dir: &Path) -> Report {
    let action_d = fail2ban_dir.join("action.d");
    let main = action_d.join(format!("{NAME}.conf"));
    let mut report = Report::default();
    if !main.exists() {
        report.info = Some(format!(
            "fail2ban action: {} not found (`f2b-notify action > {}` installs it)",
            main.display(),
            main.display()
        ));
        return report;
    }
    let mut bin: Option<(PathBuf, String)> = None;
    for file in files(&action_d) {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if let Some(value) = ini_value(&text, "Init", "bin") {
                    bin = Some((file, value));
                }
            }
            Err(e) => report.problems.push(format!("{}: cannot read it: {e}", file.display())),
        }
    }
    let Some((file, value)) = bin else {
        report.problems.push(format!(
            "{}: no `bin` in [Init]: the action has no program to run; add `bin = /usr/bin/f2b-notify` (where f2b-notify is)",
            main.display()
        ));
        return report;
    };
    let at = format!("{}: [Init] key `bin`", file.display());
    if value.contains("%(") || value.contains('<') {
        report.warnings.push(format!("{at}: `{value}` is interpolated by Fail2Ban: not checked"));
        return report;
    }
    let program = PathBuf::from(&value);
    if value.is_empty() {
        report.problems.push(format!("{at}: is empty: the action has no program to run"));
        return report;
    }
    // Absolute (Fail2Ban's PATH under systemd is minimal), and nothing Fail2Ban or the
    // shell would read as more than a path.
    if let Err(e) = super::action::fail2ban_word(&program, "the program") {
        report.problems.push(format!("{at}: {e}"));
        return report;
    }
    if let Err(why) = runnable(&program) {
        let here = std::env::current_exe().map(|e| format!(" ({})", e.display())).unwrap_or_default();
        report.problems.push(match why {
            Unrunnable::Missing => {
                format!("{at}: `{value}` does not exist: install f2b-notify there, or set `bin` to where it is{here}")
            }
            other => format!("{at}: `{value}` {other}"),
        });
        return report;
    }
    // The action runs `<bin>-enqueue` when that is executable, `<bin>` otherwise.
    let front = PathBuf::from(format!("{value}-enqueue"));
    let front_note = match runnable(&front) {
        Ok(()) => format!("; front end {}", front.display()),
        Err(Unrunnable::Missing) => {
            report.warnings.push(format!(
                "{at}: there is no {} beside `{value}`: the action starts f2b-notify for every event, which holds Fail2Ban's action lock about twice as long",
                front.display()
            ));
            String::new()
        }
        Err(why) => {
            report.problems.push(format!(
                "{at}: the front end {} {why}; the action skips it and starts f2b-notify for every event",
                front.display()
            ));
            String::new()
        }
    };
    report.info = Some(format!("fail2ban action: {}: bin = {value} (executable{front_note})", file.display()));
    report
}

/// Why a program cannot be run.
#[derive(Debug)]
enum Unrunnable {
    /// Nothing is there.
    Missing,
    /// Something that is not a file is.
    NotFile,
    /// A file without execute permission for this user (the mode).
    NotExecutable(u32),
    /// It cannot even be looked at.
    Unreadable(std::io::Error),
}

impl std::fmt::Display for Unrunnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("does not exist"),
            Self::NotFile => f.write_str("is not a file"),
            Self::NotExecutable(mode) => write!(f, "is not executable (mode {mode:04o}): chmod 755 it"),
            Self::Unreadable(e) => write!(f, "cannot be looked at: {e}"),
        }
    }
}

/// Whether `path` is a file this user may execute (`access(X_OK)`, which the shell's `[ -x ]`
/// in the action also asks).
fn runnable(path: &Path) -> Result<(), Unrunnable> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unrunnable::Missing),
        Err(e) => return Err(Unrunnable::Unreadable(e)),
    };
    if !meta.is_file() {
        return Err(Unrunnable::NotFile);
    }
    match rustix::fs::access(path, Access::EXEC_OK) {
        Ok(()) => Ok(()),
        Err(_) => Err(Unrunnable::NotExecutable(meta.permissions().mode() & 0o7777)),
    }
}

/// The files Fail2Ban reads for the action, in its order (later values win).
fn files(action_d: &Path) -> Vec<PathBuf> {
    let dropins = |ext: &str| jailconf::glob(&action_d.join(format!("{NAME}.d")), ext).unwrap_or_default();
    let mut files = vec![action_d.join(format!("{NAME}.conf"))];
    files.extend(dropins("conf"));
    files.push(action_d.join(format!("{NAME}.local")));
    files.extend(dropins("local"));
    files.retain(|f| f.is_file());
    files
}

/// The last value of `option` in `[section]`, by Fail2Ban's reading of its config files.
fn ini_value(text: &str, section: &str, option: &str) -> Option<String> {
    jailconf::parse(text)
        .into_iter()
        .rfind(|(s, o, _)| s == section && o == option)
        .and_then(|(_, _, lines)| lines.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_is_read_from_init_as_fail2ban_reads_it() {
        let shipped = include_str!("../../../../config/action.d/f2b-notify.conf");
        assert_eq!(ini_value(shipped, "Init", "bin").as_deref(), Some("/usr/bin/f2b-notify"));
        assert_eq!(ini_value(shipped, "Init", "args").as_deref(), Some(""));
        let text = "[Definition]\nbin = /wrong\n[Init]\n# bin = /commented\nBIN: /first\nbin = /last ; a comment\n[Other]\nbin = /other\n";
        assert_eq!(ini_value(text, "Init", "bin").as_deref(), Some("/last"));
        assert_eq!(ini_value("[Definition]\nbin = /x\n", "Init", "bin"), None);
        assert_eq!(ini_value("[init]\nbin = /x\n", "Init", "bin"), None, "section names are case-sensitive");
    }
}
