//! `f2b-notify generate` (hidden, for packagers and for this repository): the man pages
//! f2b-notify(1) and one per subcommand (from the clap definitions, clap_mangen), the
//! configuration's f2b-notify.toml(5) and README.md's key tables (from the config types' docs,
//! `crate::reference`), and the bash, zsh and fish completions (clap_complete). The package is
//! built with them: `packaging/build-deb.sh` runs `generate all target/release/assets`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, roman, Inline, Roff};

use crate::cli::{Cli, GenerateArgs, GenerateWhat};
use crate::reference::{self, Row, Section};

/// Runs `generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let dir = || args.path.clone().context("give the directory to write into");
    match args.what {
        GenerateWhat::All => {
            let dir = dir()?;
            man_pages(&dir.join("man"))?;
            config_man_page(&dir.join("man"))?;
            completions(&dir.join("completions"))?;
        }
        GenerateWhat::Man => man_pages(&dir()?)?,
        GenerateWhat::ConfigMan => config_man_page(&dir()?)?,
        GenerateWhat::Completions => completions(&dir()?)?,
        GenerateWhat::ConfigMd => print!("{}", reference::markdown()),
        GenerateWhat::Readme => {
            let path = args.path.clone().unwrap_or_else(|| PathBuf::from("README.md"));
            let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let updated = reference::update_readme(&text, &reference::sections())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if updated != text {
                fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))?;
                println!("updated the key tables in {}", path.display());
            } else {
                println!("{}: the key tables are up to date", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    fs::write(path, body).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// The manual's name in the page headers.
const MANUAL: &str = "f2b-notify manual";

fn source() -> String {
    format!("f2b-notify {}", env!("CARGO_PKG_VERSION"))
}

/// f2b-notify.1 and f2b-notify-SUBCOMMAND.1 for every subcommand that is not hidden; the
/// main page ends with the environment, files, exit status and related pages.
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    create_dir(dir)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).manual(MANUAL).source(source());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    main_page_sections().to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = dir.join(format!("f2b-notify-{}.1", sub.get_name()));
        if !path.is_file() {
            bail!("clap_mangen wrote no {}", path.display());
        }
        println!("{}", path.display());
    }
    write(&dir.join("f2b-notify.1"), &page)?;
    write(&dir.join("f2b-notify-enqueue.1"), front_end_page().render().as_bytes())
}

/// f2b-notify-enqueue(1): the action's front end, which has no clap definition of its own
/// (it takes `notify`'s command line).
fn front_end_page() -> Roff {
    let mut r = Roff::new();
    let source = source();
    r.control("TH", ["f2b-notify-enqueue", "1", "", &source, MANUAL]);
    r.control("SH", ["NAME"]);
    r.text([roman("f2b-notify-enqueue - the Fail2Ban action's fast front end to f2b-notify notify")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("f2b-notify-enqueue"), roman(" [--config FILE]... notify EVENT --jail NAME [OPTIONS]")]);
    r.control("SH", ["DESCRIPTION"]);
    for p in [
        "What the action file runs (`<bin>-enqueue` when it is installed beside `<bin>`): a small static program without the C library, so that Fail2Ban, which holds one global lock while any action runs, waits as little as possible. It takes `f2b-notify notify`'s command line, see f2b-notify-notify(1).",
        "When the plan that `f2b-notify notify` left in /run/f2b-notify still holds (the same config files, environment and binary), it writes the event to the spool itself, starts the delivery worker unless one runs (or the service marks the spool as its own), and exits 0. Anything else, and it runs `f2b-notify` with the same arguments, which handles the event in full. Given anything but `notify`, it runs `f2b-notify` with the same arguments.",
        "`F2B_NOTIFY_LOG=debug` makes it say on stderr which way it went and why.",
    ] {
        r.control("PP", []);
        r.text(parse(p));
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman("f2b-notify(1), f2b-notify-notify(1), f2b-notify.toml(5)")]);
    r
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO of f2b-notify(1).
fn main_page_sections() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    r.text(parse(
        "0: delivered, spooled or deliberately dropped (a sink failure is logged and still exits 0: Fail2Ban would run the action again); 1: `test` saw a sink fail; 2: bad arguments, a bad config, or an event that could be neither spooled nor named in the system log.",
    ));
    r.control("SH", ["ENVIRONMENT"]);
    for (name, text) in [
        ("F2B_NOTIFY_CONFIG", "Config files, separated by `:`, as repeated `--config`."),
        ("F2B_NOTIFY_CONFIG_DIR", "Moves the default config directory from /etc/f2b-notify."),
        ("F2B_NOTIFY_LOG", "`info` or `debug`: log more on stderr."),
        ("F2B_NOTIFY_RUN_DIR", "Moves the fast path's plans from /run/f2b-notify."),
        ("F2B_NOTIFY_SYSLOG", "Sends f2b-notify's own system-log messages to this datagram socket instead of /dev/log."),
        ("F2B_NOTIFY_KEY__SUBKEY", "Any other variable sets a config key, `__` between keys: F2B_NOTIFY_SINKS__OPS__URL (see f2b-notify.toml(5))."),
    ] {
        r.control("TP", []);
        r.text([bold(name)]);
        r.text(parse(text));
    }
    r.control("SH", ["FILES"]);
    for (name, text) in [
        ("/etc/f2b-notify/config.toml, /etc/f2b-notify/conf.d/*.toml", "The configuration, see f2b-notify.toml(5)."),
        ("/etc/fail2ban/action.d/f2b-notify.conf", "The Fail2Ban action (`f2b-notify action` prints it)."),
        (
            "/var/spool/f2b-notify",
            "The spool: events waiting for delivery, dead letters (`f2b-notify queue`), the on-demand worker's worker.log.",
        ),
        ("/run/f2b-notify", "The action's fast-path plans, a cache."),
        ("/usr/share/doc/f2b-notify/examples", "One small config per sink type, and a drop-in for the service."),
    ] {
        r.control("TP", []);
        r.text([bold(name)]);
        r.text(parse(text));
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "f2b-notify.toml(5), f2b-notify-notify(1), f2b-notify-check(1), f2b-notify-setup(1), f2b-notify-queue(1), fail2ban-client(1), jail.conf(5), systemd.exec(5)",
    )]);
    r
}

/// f2b-notify.toml.5: every key of the configuration, from the config types' docs.
fn config_man_page(dir: &Path) -> anyhow::Result<()> {
    create_dir(dir)?;
    write(&dir.join("f2b-notify.toml.5"), config_man(&reference::sections()).render().as_bytes())
}

/// The configuration's man page.
pub fn config_man(sections: &[Section]) -> Roff {
    let mut r = Roff::new();
    let source = source();
    r.control("TH", ["F2B-NOTIFY.TOML", "5", "", &source, MANUAL]);
    r.control("SH", ["NAME"]);
    r.text([roman("f2b-notify.toml - configuration of f2b-notify, the Fail2Ban notification router")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/f2b-notify/config.toml"), roman(", "), bold("/etc/f2b-notify/conf.d/*.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    for p in [
        "f2b-notify reads TOML: built-in defaults, then /etc/f2b-notify/config.toml, then /etc/f2b-notify/conf.d/*.toml in name order (or instead every `--config FILE` in order), then the environment: `F2B_NOTIFY_` and the key path with `__` between keys (`F2B_NOTIFY_SINKS__CONSOLE__FORMAT=json`). Later sources win. With no config file at all, every event goes to stdout.",
        "Durations are seconds (`30`, `0.5`) or words (`\"5m\"`, `\"1h 30m\"`). Secrets (URLs with tokens, tokens, passwords) are given inline, in a `KEY_file` (mode 0600), or in the environment; never on the command line. `f2b-notify check` names every mistake, one line each with the file, the key and the value.",
        "The sections below list every key. A sink is a table `[sinks.NAME]` whose `type` selects the keys it takes; a route `[jails.PATTERN]` sends a jail's events to sinks.",
    ] {
        r.control("PP", []);
        r.text(parse(p));
    }
    for section in sections {
        if section.id == "config" {
            r.control("SH", ["KEYS"]);
        } else {
            r.control("SH", [format!("SINK TYPE {}", section.id.to_uppercase()).as_str()]);
        }
        for p in &section.intro {
            r.control("PP", []);
            r.text(parse(p));
        }
        for row in &section.rows {
            key(&mut r, row, "4");
        }
    }
    r.control("SH", ["TEMPLATES"]);
    r.text(parse(
        "Every sink renders its text with minijinja templates (`templates.start`, `templates.stop`, `templates.ban`, `templates.unban`). Variables: `kind`, `jail`, `host`, `id`, `ip` (empty when the id is not an address), `is_ip`, `failures`, `time`, `time_iso`, `bantime`, `bantime_human` (`10 min`, `permanent`), `restored`, `user`, `matches`. `user` and `matches` come from the log line and are attacker-controlled: each sink escapes values for its medium before they reach the template.",
    ));
    r.control("SH", ["EXAMPLES"]);
    r.text(parse(
        "/usr/share/doc/f2b-notify/examples/ has one small file per sink type; the starter config (/etc/f2b-notify/config.toml as installed, `f2b-notify setup` writes the same) shows every key, commented.",
    ));
    r.control("SH", ["SEE ALSO"]);
    r.text([roman("f2b-notify(1), f2b-notify-check(1), jail.conf(5)")]);
    r
}

/// One key: its name as the tag, its paragraphs, and the keys of a table it holds.
fn key(r: &mut Roff, row: &Row, indent: &str) {
    r.control("TP", [indent]);
    r.text([bold(row.key.as_str())]);
    for (i, p) in row.doc.iter().enumerate() {
        if i > 0 {
            r.control("IP", []);
        }
        r.text(parse(p));
    }
    if !row.sub.is_empty() {
        r.control("RS", [indent]);
        for sub in &row.sub {
            key(r, sub, indent);
        }
        r.control("RE", []);
    }
}

/// A paragraph of the docs' markdown as roff: `code` in bold, the rest as it is (roff
/// escapes it).
fn parse(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

/// bash, zsh and fish completions, named as each shell's vendor directory expects:
/// `f2b-notify` (bash-completion), `_f2b-notify` (zsh), `f2b-notify.fish`.
fn completions(dir: &Path) -> anyhow::Result<()> {
    create_dir(dir)?;
    for (shell, name) in [(Shell::Bash, "f2b-notify"), (Shell::Zsh, "_f2b-notify"), (Shell::Fish, "f2b-notify.fish")] {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "f2b-notify", &mut out);
        out.flush()?;
        write(&dir.join(name), &out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markdown_becomes_roff_fonts() {
        let r: Roff = parse("a `b` conf.d/*.toml `c`").into_iter().collect();
        let text = r.to_roff();
        assert!(
            text.contains("\\fBb\\fR") && text.contains("conf.d/*.toml") && text.ends_with("\\fBc\\fR\n"),
            "{text}"
        );
    }

    #[test]
    fn the_config_page_has_every_key() {
        let sections = reference::sections();
        let page = config_man(&sections).render();
        for section in &sections {
            for row in &section.rows {
                let escaped = row.key.replace('-', "\\-");
                assert!(page.contains(&escaped), "{} missing from the man page", row.key);
            }
        }
    }
}
