//! `f2b-notify check` as an administrator runs it: every problem in one run, one line each on
//! stderr naming the file (or environment variable), the key and the value, exit 2; the spool's
//! writability; the Fail2Ban action file's program.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::{run, Dir, Run};

/// `check` with these config files, Fail2Ban's directory in the test's own.
fn check(dir: &Dir, configs: &[&Path], env: &[(&str, &str)]) -> Run {
    let mut c = dir.cmd();
    for f in configs {
        c.arg("--config").arg(f);
    }
    c.arg("check").arg("--fail2ban-dir").arg(dir.path().join("fail2ban"));
    c.envs(env.iter().copied());
    run(c)
}

/// The problems `check` printed: every stderr line, each one problem.
fn problems(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .map(|l| l.strip_prefix("f2b-notify: ").unwrap_or_else(|| panic!("not a problem line: {l:?}")))
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Five mistakes of five kinds across two files: each is named with its own file, key and
/// value, in one run; nothing else is printed; exit 2. The sink whose address is wrong is
/// defined in one file and gets the address from the other: the other is named. `test`, like
/// every other command, stops at the first.
#[cfg(all(feature = "email", feature = "slack-webhook"))]
#[test]
fn five_mistakes_in_two_files_are_all_named() {
    let dir = Dir::new();
    let a = dir.write(
        "a.toml",
        r#"
[sinks.console]
type = "stdout"

[sinks.ops]
type = "slack-webhok"
url = "https://hooks.example.com/services/T0/B0/X"

[sinks.mail]
type = "email"
url = "smtp://127.0.0.1:25"
from = "Fail2Ban <f2b@example.com>"

[jails.sshd]
sinks = ["console", "mail", "pagr"]
"#,
    );
    let b = dir.write(
        "b.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\nmax_age = \"a week\"\nretry_mx = 60\n\n[sinks.mail]\nto = \"ops-at-example.com\"\n",
            dir.path().join("spool").display()
        ),
    );
    let r = check(&dir, &[&a, &b], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(r.stdout, "", "a config with problems has no summary");
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let want = [
        format!("{b}: key `delivery.max_age`: `a week` is not a duration (seconds, or like \"5m\", \"1h 30m\")"),
        format!("{b}: key `delivery.retry_mx`: unknown field `retry_mx` (did you mean `retry_max`?)"),
        format!("{a}: key `jails.sshd.sinks`: no sink named `pagr` (defined sinks: console, mail, ops)"),
        format!(
            "{b}: sink `mail`: `to` = \"ops-at-example.com\" is not an email address: it has no `@`; write `ops@example.com` or `Ops <ops@example.com>`"
        ),
    ];
    let got = problems(&r);
    for w in &want {
        assert!(got.contains(&w.as_str()), "missing {w:?} in\n{}", r.stderr);
    }
    // The list of types grows with every sink: its start and the suggestion are checked.
    let mistyped = format!("{a}: key `sinks.ops.type`: `slack-webhok` is not one of `stdout`, `slack-webhook`, ");
    assert!(
        got.iter().any(|p| p.starts_with(&mistyped) && p.ends_with("` (did you mean `slack-webhook`?)")),
        "missing {mistyped:?} in\n{}",
        r.stderr
    );
    assert_eq!(got.len(), 5, "{}", r.stderr);

    // The other commands say the first problem, on one line, the same way.
    let mut c = dir.cmd();
    c.arg("-c").arg(&a).arg("-c").arg(&b).args(["test", "--jail", "sshd"]);
    let t = run(c);
    assert_eq!(t.code, Some(2));
    assert_eq!(t.stderr, format!("f2b-notify: {}\n", got[0]));
}

/// The same kinds of mistakes in the build that has only the stdout sink: a type it left out
/// is one more problem, named with the feature to rebuild with.
#[test]
fn every_problem_is_one_line_with_its_file() {
    let dir = Dir::new();
    let a = dir.write("a.toml", "hots = \"x\"\n[sinks.console]\ntype = \"stdout\"\nformat = \"xml\"\n[sinks.ghost]\npath = \"/tmp/x\"\n[jails.sshd]\nsinks = [\"consol\"]\nevents = [\"bann\"]\n");
    let b = dir.write("b.toml", "[delivery]\nidle_exit = \"soon\"\nbatch_max = 0\n[sinks.console]\ncolour = \"red\"\n");
    let broken = dir.write("broken.toml", "[sinks.c\n");
    let r = check(&dir, &[&a, &broken, &b], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let (a, b, broken) = (a.display().to_string(), b.display().to_string(), broken.display().to_string());
    let want = [
        format!("{broken}: TOML parse error at line 1, column 9"),
        format!("{b}: key `delivery.idle_exit`: `soon` is not a duration"),
        format!("{a}: key `hots`: unknown field `hots` (did you mean `host`?)"),
        format!("{a}: key `jails.sshd.events`: `bann` is not one of `start`, `stop`, `ban` or `unban` (did you mean `ban`?)"),
        format!("{b}: key `sinks.console.colour`: unknown field `colour`: expected `format`, `path` or `templates`"),
        format!("{a}: key `sinks.console.format`: `xml` is not one of `text` or `json`"),
        format!("{a}: key `sinks.ghost`: missing field `type`"),
        format!("{b}: key `delivery.batch_max`: must be at least 1"),
        format!("{a}: key `jails.sshd.sinks`: no sink named `consol`; did you mean `console`? (defined sinks: console, ghost)"),
    ];
    let got = problems(&r);
    assert_eq!(got.len(), want.len(), "{}", r.stderr);
    for (got, want) in got.iter().zip(&want) {
        assert!(got.starts_with(want.as_str()), "{got:?} does not start with {want:?}");
    }
}

/// `F2B_NOTIFY_SINKS__OPZ__FORMAT` when the files define `[sinks.ops]`: the variable is named,
/// with what is wrong and the sink it may have meant, not "missing field `type`".
#[test]
fn an_env_override_for_an_undefined_sink_says_so() {
    let dir = Dir::new();
    let cfg = dir.write("c.toml", "[sinks.ops]\ntype = \"stdout\"\n[jails.\"*\"]\nsinks = [\"ops\"]\n");
    let r = check(&dir, &[&cfg], &[("F2B_NOTIFY_SINKS__OPZ__FORMAT", "json")]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        problems(&r),
        ["environment variable F2B_NOTIFY_SINKS__OPZ__FORMAT: key `sinks.opz.format`: no config file defines a sink `opz` for it to override; did you mean `ops`? (defined sinks: ops); a sink from the environment alone needs its type too (F2B_NOTIFY_SINKS__OPZ__TYPE)"]
    );
    // Overriding the sink that is there is fine.
    let r = check(&dir, &[&cfg], &[("F2B_NOTIFY_SINKS__OPS__FORMAT", "json")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// Secrets among other problems: a token of the wrong type from the environment and a webhook
/// URL without its scheme are named by key and place, never shown.
#[cfg(all(feature = "slack-webhook", feature = "slack-api"))]
#[test]
fn a_secret_is_never_shown() {
    let dir = Dir::new();
    let cfg = dir.write(
        "c.toml",
        "[sinks.hook]\ntype = \"slack-webhook\"\nurl = \"hooks.slack.com/services/T0/B0/SECRETpath\"\n[sinks.api]\ntype = \"slack-api\"\nchannel = \"#c\"\ntokn = \"xoxb-SECRET-typo\"\n[jails.\"*\"]\nsinks = [\"hook\", \"api\"]\n",
    );
    let r = check(&dir, &[&cfg], &[("F2B_NOTIFY_SINKS__API__TOKEN", "987654321")]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let c = cfg.display();
    let got = problems(&r);
    assert!(
        got.contains(&"environment variable F2B_NOTIFY_SINKS__API__TOKEN: key `sinks.api.token`: must be a string, not an integer: put it in quotes (a secret's value is never shown)"),
        "{}",
        r.stderr
    );
    assert!(
        got.contains(&format!("{c}: key `sinks.api.tokn`: unknown field `tokn` (did you mean `token`?)").as_str()),
        "{}",
        r.stderr
    );
    assert!(
        got.contains(&format!("{c}: sink `hook`: `url` is not a valid URL: it has no scheme: write it as https://… (the URL is the secret: not shown)").as_str()),
        "{}",
        r.stderr
    );
    assert_eq!(got.len(), 3, "{}", r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("SECRET") && !all.contains("987654321"), "a secret leaked: {all}");
}

/// Installs `DIR/fail2ban/action.d/f2b-notify.conf`: the shipped file with `bin` set.
fn action_file(dir: &Dir, bin: &Path) -> PathBuf {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/action.d/f2b-notify.conf")).unwrap();
    let body = shipped.replace("bin = /usr/bin/f2b-notify", &format!("bin = {}", bin.display()));
    assert_ne!(body, shipped, "the shipped action file has no `bin = /usr/bin/f2b-notify`");
    dir.write("fail2ban/action.d/f2b-notify.conf", &body)
}

/// A program file with this mode.
fn program(dir: &Dir, name: &str, mode: u32) -> PathBuf {
    let p = dir.write(name, "#!/bin/sh\nexit 0\n");
    chmod(&p, mode);
    p
}

/// When the action file is there, its `bin` (and the front end beside it, if any) must exist
/// and be executable; a problem names the file, the key and the value. A `.local` file
/// overrides the `.conf`, as in Fail2Ban.
#[test]
fn the_action_files_program_is_checked() {
    let dir = Dir::new();
    let cfg = dir.write("c.toml", "[sinks.c]\ntype = \"stdout\"\n[jails.\"*\"]\nsinks = [\"c\"]\n");
    let conf = dir.path().join("fail2ban/action.d/f2b-notify.conf");

    // No action file: said, and not a problem.
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("fail2ban action: {} not found", conf.display())), "{}", r.stdout);

    let bin = dir.path().join("bin/f2b-notify");
    action_file(&dir, &bin);
    let at = format!("{}: [Init] key `bin`", conf.display());
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let want =
        format!("{at}: `{}` does not exist: install f2b-notify there, or set `bin` to where it is", bin.display());
    assert!(problems(&r)[0].starts_with(&want), "{}", r.stderr);
    assert_eq!(problems(&r).len(), 1, "{}", r.stderr);

    program(&dir, "bin/f2b-notify", 0o644);
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(problems(&r), [format!("{at}: `{}` is not executable (mode 0644): chmod 755 it", bin.display())]);

    // Executable, but no front end beside it: works, and the warning says what it costs.
    chmod(&bin, 0o755);
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("fail2ban action: {}: bin = {} (executable)", conf.display(), bin.display())));
    assert!(r.stdout.contains(&format!("{at}: there is no {}-enqueue beside", bin.display())), "{}", r.stdout);

    // A front end the action would skip.
    let front = program(&dir, "bin/f2b-notify-enqueue", 0o600);
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        problems(&r),
        [format!(
            "{at}: the front end {} is not executable (mode 0600): chmod 755 it; the action skips it and starts f2b-notify for every event",
            front.display()
        )]
    );
    chmod(&front, 0o755);
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("bin = {} (executable; front end {})", bin.display(), front.display())),
        "{}",
        r.stdout
    );

    // A directory is no program; a relative path is refused; a `.local` wins over the `.conf`.
    action_file(&dir, &dir.path().join("bin"));
    let r = check(&dir, &[&cfg], &[]);
    assert!(problems(&r)[0].ends_with("bin` is not a file"), "{}", r.stderr);
    action_file(&dir, Path::new("f2b-notify"));
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(problems(&r), [format!("{at}: the program f2b-notify is not absolute")]);
    action_file(&dir, &dir.path().join("my bin/f2b-notify"));
    let r = check(&dir, &[&cfg], &[]);
    assert!(problems(&r)[0].contains("which Fail2Ban or the shell would interpret"), "{}", r.stderr);
    let local = dir.write("fail2ban/action.d/f2b-notify.local", &format!("[Init]\nbin = {}\n", bin.display()));
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("fail2ban action: {}: bin = {}", local.display(), bin.display())));
}

/// `check` says whether the spool can be written, and creates nothing to find out: the spool
/// itself, or before it exists the directory it would be created in. As a user who cannot
/// write there (`nobody`, through setpriv), that is a problem naming the key and where it was
/// set.
#[test]
fn the_spool_must_be_writable() {
    let dir = Dir::new();
    let spool = dir.path().join("spool");
    let cfg = dir.write(
        "c.toml",
        &format!(
            "[delivery]\nspool = \"{}\"\n[sinks.c]\ntype = \"stdout\"\n[jails.\"*\"]\nsinks = [\"c\"]\n",
            spool.display()
        ),
    );
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = format!(
        "spool: {} is not there yet; {} is writable, so the first event creates it",
        spool.display(),
        dir.path().display()
    );
    assert!(r.stdout.contains(&line), "{}", r.stdout);
    assert!(!spool.exists(), "check created the spool");

    std::fs::create_dir(&spool).unwrap();
    chmod(&spool, 0o700);
    let r = check(&dir, &[&cfg], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("spool: {} exists and is writable", spool.display())), "{}", r.stdout);
    // (Loading the config claimed the spool for this set of files: `owner` is in it.)
    std::fs::remove_dir_all(&spool).unwrap();

    // As nobody: the directory is root's (0755), nobody may read the config but not write.
    chmod(dir.path(), 0o755);
    chmod(&cfg, 0o644);
    let mut c = dir.cmd_of(Path::new("setpriv"));
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(crate::util::bin());
    c.arg("--config").arg(&cfg).arg("check").arg("--fail2ban-dir").arg(dir.path().join("fail2ban"));
    let r = run(c);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert_eq!(
        problems(&r),
        [format!(
            "{}: key `delivery.spool`: the spool {} is not there yet and {}, where it would be created, cannot be written by uid 65534 (the actions run as Fail2Ban's user): Permission denied (os error 13)",
            cfg.display(),
            spool.display(),
            dir.path().display()
        )]
    );
    assert!(!spool.exists(), "check created the spool");
}
