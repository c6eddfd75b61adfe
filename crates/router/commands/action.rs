//! `f2b-notify action`: prints the Fail2Ban action file with `bin` set to this binary's own
//! absolute path, so that the printed file runs the program that printed it (and its front
//! end beside it). `setup` writes the same text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::ACTION_FILE;

/// The `[Init]` line of the shipped action file that names the binary.
const SHIPPED_BIN_LINE: &str = "bin = /usr/bin/f2b-notify";

/// The front end's name: the action runs `<bin>-enqueue` when it is there.
pub const FRONT_END: &str = "f2b-notify-enqueue";

/// What the action costs without the front end, for `check` and `setup`.
pub const NO_FRONT_END: &str = "f2b-notify-enqueue is not installed beside f2b-notify: the action starts f2b-notify for every event, which holds Fail2Ban's action lock about twice as long";

/// Runs `action`.
pub fn run() -> anyhow::Result<ExitCode> {
    print!("{}", render(&running_binary()?)?);
    Ok(ExitCode::SUCCESS)
}

/// The absolute path of the running binary, as the kernel knows it (links resolved).
pub fn running_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running f2b-notify binary")?;
    // A binary replaced while it runs is `/path (deleted)`: that path runs nothing.
    if !exe.is_file() {
        bail!("the running binary {} is no longer there (replaced or removed while running)", exe.display());
    }
    Ok(exe)
}

/// The action file with `bin` set to `bin`; otherwise the shipped file, byte for byte.
pub fn render(bin: &Path) -> anyhow::Result<String> {
    let bin = fail2ban_word(bin, "the binary's path")?;
    Ok(ACTION_FILE.replacen(SHIPPED_BIN_LINE, &format!("bin = {bin}"), 1))
}

/// `path` as text that means itself in Fail2Ban's config and, unquoted, in the shell the
/// action runs: absolute, and made of letters, digits and `/ . _ - + @` only. Anything else
/// (`%` is Fail2Ban's interpolation, `<…>` its tags, `;` a comment, quotes, `$`, backticks
/// and spaces the shell's) could change what the action runs, so it is refused, not quoted.
pub fn fail2ban_word<'a>(path: &'a Path, what: &str) -> anyhow::Result<&'a str> {
    let text = path.to_str().with_context(|| format!("{what} {} is not UTF-8", path.display()))?;
    if !path.is_absolute() {
        bail!("{what} {} is not absolute", text.escape_debug());
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+@".contains(c);
    if let Some(c) = text.chars().find(|c| !plain(*c)) {
        bail!(
            "{what} {} holds {c:?}, which Fail2Ban or the shell would interpret; fix: use a path of letters, digits and / . _ - + @ only",
            text.escape_debug()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_has_the_bin_line_once() {
        assert_eq!(ACTION_FILE.matches(SHIPPED_BIN_LINE).count(), 1);
        let out = render(Path::new("/opt/f2b/bin/f2b-notify")).unwrap();
        assert!(out.contains("\nbin = /opt/f2b/bin/f2b-notify\n"), "{out}");
        assert!(!out.contains(SHIPPED_BIN_LINE));
        assert_eq!(out.replace("bin = /opt/f2b/bin/f2b-notify", SHIPPED_BIN_LINE), ACTION_FILE);
    }

    #[test]
    fn paths_fail2ban_or_the_shell_would_interpret_are_refused() {
        for bad in ["/a b/f2b-notify", "/a/%(x)s", "/a/<ip>", "/a/$(id)", "/a/\"x", "/a/x;y", "/a/`id`", "/a/x\ny"] {
            let e = fail2ban_word(Path::new(bad), "the binary's path").unwrap_err().to_string();
            assert!(e.contains("which Fail2Ban or the shell would interpret") && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(fail2ban_word(Path::new("relative/f2b-notify"), "x").unwrap_err().to_string().contains("not absolute"));
        assert_eq!(fail2ban_word(Path::new("/usr/bin/f2b-notify"), "x").unwrap(), "/usr/bin/f2b-notify");
    }
}
