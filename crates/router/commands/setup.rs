//! `f2b-notify setup`: wires f2b-notify into Fail2Ban in one command, and `setup --undo` takes
//! it out again.
//!
//! It writes `DIR/action.d/f2b-notify.conf` (the action, `bin` = this binary),
//! `DIR/jail.d/f2b-notify.local` (the action appended to the chosen jails' own actions, or to
//! `[DEFAULT]`'s), and a starter config when there is none; it records what it wrote, and what
//! it replaced, in `DIR/f2b-notify-setup.json`, so that `--undo` removes exactly that and
//! leaves the directory as it was. Then it asks Fail2Ban itself (`fail2ban-client -t`, and
//! `-d` for each jail's actions) and runs `check`.
//!
//! Root runs this, into directories Fail2Ban runs commands from: every directory written is
//! checked as the spool is (its ancestors and itself belong to root and no one else can write
//! them), every file is written through a new temporary file created exclusively without
//! following links and renamed into place, and a file that is a symbolic link is refused.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context};
use f2b_notify_fastpath::trust::{self, Untrusted, Why};
use serde::{Deserialize, Serialize};

use super::action::{self, fail2ban_word};
use super::check;
use crate::cli::SetupArgs;
use crate::config::{Sources, DEFAULT_CONFIG_DIR};
use crate::jailconf::{self, JailConf, DEFAULT};
use crate::os::StdOs;
use crate::spool::{read_nofollow, write_file};

/// The action file, below Fail2Ban's directory.
const ACTION_FILE: &str = "action.d/f2b-notify.conf";
/// The jail file, below Fail2Ban's directory; `.local` files in `jail.d` are read last.
const JAIL_FILE: &str = "jail.d/f2b-notify.local";
/// What setup wrote, below Fail2Ban's directory (Fail2Ban reads no `.json` file).
const RECORD: &str = "f2b-notify-setup.json";
/// The starter config (also a commented example of every key).
const STARTER: &str = include_str!("../../../config/config.toml");
/// The directory the starter's file paths name; replaced by the config's own directory.
const STARTER_DIR: &str = "/etc/f2b-notify/";
/// The record's format.
const RECORD_VERSION: u32 = 1;

/// What setup wrote into one Fail2Ban directory, kept there for `--undo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    /// Directories setup created, parents first.
    dirs: Vec<PathBuf>,
    /// Files setup wrote, in order.
    files: Vec<Written>,
}

/// One file setup wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Written {
    path: PathBuf,
    /// Exactly what setup wrote: `--undo` removes the file only while it still says this.
    content: String,
    mode: u32,
    /// The file it replaced, which `--undo` puts back.
    previous: Option<Previous>,
}

/// A file as it was before setup replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    content: String,
    mode: u32,
}

/// A file setup is about to write.
struct Planned {
    path: PathBuf,
    content: String,
    mode: u32,
    /// What it is, for the report.
    what: String,
}

/// A directory setup may have to create.
struct NeededDir {
    path: PathBuf,
    mode: u32,
}

/// Runs `setup`.
pub fn run(sources: &Sources, args: SetupArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.fail2ban_dir).unwrap_or_else(|_| args.fail2ban_dir.clone());
    if args.undo {
        return undo(&dir, args.dry_run);
    }
    install(sources, &dir, &args)
}

/// Writes the files, asks Fail2Ban, runs `check`.
fn install(sources: &Sources, dir: &Path, args: &SetupArgs) -> anyhow::Result<ExitCode> {
    let mut out = Report::default();
    let bin = action::running_binary()?;
    let bin_text = fail2ban_word(&bin, "the binary's path")?.to_owned();
    let front = bin.with_file_name(action::FRONT_END);
    if front.is_file() {
        out.say(format!("action front end: {} (the action runs it first)", front.display()));
    } else {
        out.note(format!("{}: install it in {}", action::NO_FRONT_END, bin.parent().unwrap_or(&bin).display()));
    }
    fail2ban_dir(dir)?;
    let record_path = dir.join(RECORD);
    let old = read_record(&record_path)?;
    let conf = JailConf::read(dir, &dir.join(JAIL_FILE))
        .with_context(|| format!("cannot read Fail2Ban's jail config in {}", dir.display()))?;

    let config = config_plan(sources)?;
    let mut plan = vec![Planned {
        path: dir.join(ACTION_FILE),
        content: action::render(&bin)?,
        mode: 0o644,
        what: format!("the action; bin = {bin_text}"),
    }];
    let jails = jail_plan(&conf, args, &config.action_options, &mut out)?;
    if let Some((content, what)) = jails {
        plan.push(Planned { path: dir.join(JAIL_FILE), content, mode: 0o644, what });
    }
    if let Some((path, content)) = &config.create {
        plan.push(Planned {
            path: path.clone(),
            content: content.clone(),
            mode: 0o600,
            what: "the starter config: every jail to a Slack webhook whose URL file you create".to_owned(),
        });
    } else {
        out.say(format!("config: {} (exists; left as it is)", config.describe));
    }
    if let Some(note) = &config.note {
        out.note(note.clone());
    }

    // Every directory written into: trusted, or created (and then trusted).
    let mut needed = vec![
        NeededDir { path: dir.join("action.d"), mode: 0o755 },
        NeededDir { path: dir.join("jail.d"), mode: 0o755 },
    ];
    if let Some((path, _)) = &config.create {
        // The config's directory, created (0700: it holds secrets) or checked as it is.
        let parent = path.parent().unwrap_or(Path::new("/"));
        let mut chain = missing_dirs(parent);
        if chain.is_empty() {
            chain.push(parent.to_owned());
        }
        needed.extend(chain.into_iter().map(|path| NeededDir { path, mode: 0o700 }));
    }
    let mut to_create = Vec::new();
    for d in &needed {
        if !trusted_dir(&d.path)? {
            to_create.push(d);
        }
    }

    // What each file replaces, and whether it may.
    let mut record = old.clone().unwrap_or(Record { version: RECORD_VERSION, ..Record::default() });
    let mut entries = Vec::new();
    for p in &plan {
        let current = read_regular(&p.path)?;
        let earlier = old.as_ref().and_then(|r| r.files.iter().find(|w| w.path == p.path));
        let previous = match (earlier, &current) {
            (Some(w), Some(cur)) if cur.content != w.content => bail!(
                "{} changed since setup wrote it, and setup does not overwrite edits; fix: move it away and run setup again (or keep it, and edit it yourself)",
                p.path.display()
            ),
            (Some(w), _) => w.previous.clone(),
            (None, Some(_)) if p.path == dir.join(JAIL_FILE) => bail!(
                "{} exists and setup did not write it; fix: move it away (or merge it by hand) and run setup again",
                p.path.display()
            ),
            (None, cur) => cur.clone(),
        };
        entries.push(Written { path: p.path.clone(), content: p.content.clone(), mode: p.mode, previous });
    }
    for e in entries {
        record.files.retain(|w| w.path != e.path);
        record.files.push(e);
    }
    for d in &to_create {
        if !record.dirs.contains(&d.path) {
            record.dirs.push(d.path.clone());
        }
    }

    if args.dry_run {
        for d in &to_create {
            out.say(format!("would create {} (mode {:04o})", d.path.display(), d.mode));
        }
        for p in &plan {
            let verb = if p.path.exists() { "replace" } else { "write" };
            // The starter config is mostly comments (an example of every key): its settings
            // say what it does.
            let starter = config.create.as_ref().is_some_and(|(path, _)| *path == p.path);
            let shown = if starter { " (its settings; the comments left out)" } else { "" };
            out.say(format!("would {verb} {} (mode {:04o}; {}){shown}:", p.path.display(), p.mode, p.what));
            for line in p.content.lines() {
                if !starter || !(line.trim().is_empty() || line.trim_start().starts_with('#')) {
                    out.say(format!("    {line}"));
                }
            }
        }
        out.say(format!("would write {} (what setup wrote, for --undo)", record_path.display()));
        out.say("would then run `fail2ban-client -t` and `f2b-notify check`; nothing was written".to_owned());
        out.print();
        return Ok(ExitCode::SUCCESS);
    }

    // Fail2Ban's verdict before anything is written, to tell a config setup broke from one
    // that was broken already.
    let tested = fail2ban_client().map(|c| {
        let before = test_config(&c, dir);
        (c, before)
    });
    // How each file was before this run, to take the run back if Fail2Ban rejects it.
    let mut before_run = Vec::new();
    for p in &plan {
        before_run.push((p.path.clone(), read_regular(&p.path)?));
    }

    for d in &to_create {
        fs::DirBuilder::new()
            .mode(d.mode)
            .create(&d.path)
            .with_context(|| format!("cannot create {}", d.path.display()))?;
        fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))
            .with_context(|| format!("cannot set the mode of {}", d.path.display()))?;
        trusted_dir(&d.path)?;
        out.say(format!("created {} (mode {:04o})", d.path.display(), d.mode));
    }
    // The record first: if anything below fails, --undo still knows every file setup meant
    // to write (one it never wrote still holds its previous content and is left alone).
    write_record(&record_path, &record)?;
    for p in &plan {
        let unchanged = read_regular(&p.path)?.is_some_and(|c| c.content == p.content && c.mode == p.mode);
        write_file(&p.path, p.content.as_bytes(), p.mode, true)
            .with_context(|| format!("cannot write {}", p.path.display()))?;
        let verb = if unchanged { "unchanged" } else { "wrote" };
        out.say(format!("{verb} {} ({})", p.path.display(), p.what));
    }
    out.say(format!("wrote {} (what setup wrote, for `f2b-notify setup --undo`)", record_path.display()));

    match &tested {
        None => out.note("fail2ban-client is not installed here: Fail2Ban's own test of its config was not run".to_owned()),
        Some((c, before)) => match test_config(c, dir) {
            Ok(()) => out.say(format!("fail2ban-client -t: Fail2Ban's config in {} is valid", dir.display())),
            Err(after) if before.is_ok() => {
                // Left in place, the next reload would stop Fail2Ban from starting.
                out.print();
                take_back(&before_run, &to_create, old.as_ref(), &record_path)?;
                bail!("Fail2Ban's test of {} fails with setup's files, so they were removed again: {after}", dir.display());
            }
            Err(after) => out.note(format!(
                "fail2ban-client -t fails, as it did before setup wrote anything (fix that, then reload Fail2Ban): {after}"
            )),
        },
    }
    if let Some((c, _)) = &tested {
        verify(c, dir, &conf, args, &mut out);
    }

    out.say("check:".to_owned());
    let report = check::report(sources, dir);
    for line in report.summary.lines() {
        out.say(format!("  {line}"));
    }
    for problem in &report.problems {
        out.say(format!("  problem: {problem}"));
    }
    let ok = report.problems.is_empty();
    if !ok {
        out.say(format!(
            "next: fix what check says in {}, then run `f2b-notify check` and `f2b-notify test --jail JAIL`; until then events wait in the spool",
            config.describe
        ));
    }
    out.say("next: reload Fail2Ban to run the action: fail2ban-client reload".to_owned());
    out.print();
    Ok(ExitCode::SUCCESS)
}

/// Takes back this run: each file as it was before it (removed if it was not there), the
/// directories it created, and the record as it was.
fn take_back(
    before_run: &[(PathBuf, Option<Previous>)],
    created: &[&NeededDir],
    old: Option<&Record>,
    record_path: &Path,
) -> anyhow::Result<()> {
    for (path, was) in before_run.iter().rev() {
        match was {
            Some(prev) => {
                write_file(path, prev.content.as_bytes(), prev.mode, true)
                    .with_context(|| format!("cannot put back {}", path.display()))?;
                println!("put back {} (as it was before)", path.display());
            }
            None => {
                fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
                println!("removed {}", path.display());
            }
        }
    }
    for d in created.iter().rev() {
        fs::remove_dir(&d.path).with_context(|| format!("cannot remove {}", d.path.display()))?;
        println!("removed {}", d.path.display());
    }
    match old {
        Some(record) => write_record(record_path, record)?,
        None => {
            fs::remove_file(record_path).with_context(|| format!("cannot remove {}", record_path.display()))?;
            println!("removed {}", record_path.display());
        }
    }
    Ok(())
}

/// `--undo`: removes what the record lists, puts back what setup replaced.
fn undo(dir: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    fail2ban_dir(dir)?;
    let record_path = dir.join(RECORD);
    let mut out = Report::default();
    if read_record(&record_path)?.is_none() {
        println!(
            "nothing to undo: {} does not exist (setup did not write into {})",
            record_path.display(),
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let kept = undo_record(&record_path, dry_run, &mut out)?;
    if dry_run {
        out.say("nothing was changed (--dry-run)".to_owned());
    } else {
        out.say("next: reload Fail2Ban: fail2ban-client reload".to_owned());
    }
    out.print();
    Ok(if kept { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Undoes the record at `record_path`; true when a file was kept because it changed.
fn undo_record(record_path: &Path, dry_run: bool, out: &mut Report) -> anyhow::Result<bool> {
    let record = read_record(record_path)?.ok_or_else(|| anyhow!("{} disappeared", record_path.display()))?;
    let would = if dry_run { "would be " } else { "" };
    let mut kept = false;
    for w in record.files.iter().rev() {
        let parent = w.path.parent().unwrap_or(Path::new("/"));
        trusted_dir(parent)?;
        let current = match read_regular(&w.path) {
            Ok(c) => c,
            Err(e) => {
                kept = true;
                out.say(format!("kept {}: {e:#}", w.path.display()));
                continue;
            }
        };
        match current {
            None => out.say(format!("already gone: {}", w.path.display())),
            Some(cur) if cur.content == w.content => match &w.previous {
                Some(prev) => {
                    if !dry_run {
                        write_file(&w.path, prev.content.as_bytes(), prev.mode, true)
                            .with_context(|| format!("cannot restore {}", w.path.display()))?;
                    }
                    out.say(format!("{}restored {} (as it was before setup)", would, w.path.display()));
                }
                None => {
                    if !dry_run {
                        fs::remove_file(&w.path).with_context(|| format!("cannot remove {}", w.path.display()))?;
                    }
                    out.say(format!("{}removed {}", would, w.path.display()));
                }
            },
            // Setup stopped before writing it.
            Some(cur) if w.previous.as_ref().is_some_and(|p| p.content == cur.content) => {
                out.say(format!("not written by setup, left as it is: {}", w.path.display()))
            }
            Some(_) => {
                kept = true;
                out.say(format!(
                    "kept {}: it changed since setup wrote it (remove it yourself if you no longer want it)",
                    w.path.display()
                ));
            }
        }
    }
    for d in record.dirs.iter().rev() {
        let empty = fs::read_dir(d).map(|mut rd| rd.next().is_none());
        match empty {
            Ok(true) => {
                if !dry_run {
                    fs::remove_dir(d).with_context(|| format!("cannot remove {}", d.display()))?;
                }
                out.say(format!("{}removed {}", would, d.display()));
            }
            Ok(false) if dry_run => out.say(format!("{}removed {} once empty", would, d.display())),
            Ok(false) => out.say(format!("kept {}: it is not empty", d.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.say(format!("already gone: {}", d.display())),
            Err(e) => out.say(format!("kept {}: {e}", d.display())),
        }
    }
    if !dry_run {
        fs::remove_file(record_path).with_context(|| format!("cannot remove {}", record_path.display()))?;
    }
    out.say(format!("{}removed {}", would, record_path.display()));
    Ok(kept)
}

/// Where the config is and whether setup creates it.
struct ConfigPlan {
    /// The file to create and its text, when there is no config yet.
    create: Option<(PathBuf, String)>,
    /// The config's files, for the report.
    describe: String,
    /// The action's options that make Fail2Ban's actions read this config: `--config` files.
    action_options: String,
    /// Something the administrator should know.
    note: Option<String>,
}

/// Finds the config the way every command does (`--config`, F2B_NOTIFY_CONFIG,
/// F2B_NOTIFY_CONFIG_DIR) and decides whether to create it.
fn config_plan(sources: &Sources) -> anyhow::Result<ConfigPlan> {
    match sources {
        Sources::Default(cdir) => {
            let cdir = std::path::absolute(cdir).unwrap_or_else(|_| cdir.clone());
            let existing = sources.files().map_err(|e| anyhow!(e))?;
            let note = (cdir != Path::new(DEFAULT_CONFIG_DIR)).then(|| {
                format!(
                    "F2B_NOTIFY_CONFIG_DIR names {}: Fail2Ban's actions read it only when fail2ban-server runs with the same F2B_NOTIFY_CONFIG_DIR (actions inherit its environment); otherwise they read {DEFAULT_CONFIG_DIR} (or give --config FILE to setup instead)",
                    cdir.display()
                )
            });
            let main = cdir.join("config.toml");
            if existing.is_empty() {
                let text = starter(&main)?;
                Ok(ConfigPlan {
                    create: Some((main.clone(), text)),
                    describe: main.display().to_string(),
                    action_options: String::new(),
                    note,
                })
            } else {
                let describe = existing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                Ok(ConfigPlan { create: None, describe, action_options: String::new(), note })
            }
        }
        Sources::Explicit(files) => {
            let files: Vec<PathBuf> =
                files.iter().map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())).collect();
            let mut words = Vec::new();
            for f in &files {
                words.push(format!("--config {}", fail2ban_word(f, "the config file's path")?));
            }
            let action_options = format!("[args=\"{}\"]", words.join(" "));
            let missing: Vec<&PathBuf> = files.iter().filter(|f| fs::symlink_metadata(f).is_err()).collect();
            let describe = files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            match (files.as_slice(), missing.as_slice()) {
                (_, []) => Ok(ConfigPlan { create: None, describe, action_options, note: None }),
                ([one], [_]) => {
                    let text = starter(one)?;
                    Ok(ConfigPlan { create: Some((one.clone(), text)), describe, action_options, note: None })
                }
                (_, missing) => bail!(
                    "setup creates a config only for a single --config FILE; missing: {}",
                    missing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }
}

/// The starter config for `path`: its file paths moved into `path`'s directory.
fn starter(path: &Path) -> anyhow::Result<String> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let parent = fail2ban_word(parent, "the config's directory")?;
    let parent = if parent.ends_with('/') { parent.to_owned() } else { format!("{parent}/") };
    Ok(STARTER.replace(STARTER_DIR, &parent))
}

/// The jail file's text and what it does, or `None` when no jail needs it.
fn jail_plan(
    conf: &JailConf,
    args: &SetupArgs,
    options: &str,
    out: &mut Report,
) -> anyhow::Result<Option<(String, String)>> {
    let line = format!("f2b-notify{options}");
    let mut text = String::from(
        "# Written by `f2b-notify setup`: adds the f2b-notify action after each jail's own actions\n# (the firewall bans first, then f2b-notify is told). `f2b-notify setup --undo` removes this\n# file while it is as setup wrote it; once you edit it, setup leaves it to you.\n",
    );
    let mut sections = Vec::new();
    let append = |jail: &str| {
        format!(
            "\n[{jail}]\n# %(known/action)s is this jail's action as the files read before this one set it.\naction = %(known/action)s\n         {line}\n"
        )
    };
    if args.all_jails {
        text.push_str(
            "# Every jail: [DEFAULT] below, and a section for each enabled jail that sets its own action
# (which [DEFAULT]'s does not reach). After enabling another such jail, run
# `f2b-notify setup --all-jails` again.
",
        );
        match conf.own(DEFAULT, "action") {
            Some(v) if jailconf::runs_f2b_notify(v) => {
                out.say(format!("[DEFAULT] action in {} already runs f2b-notify: left as it is", v.file.display()))
            }
            Some(v) if jailconf::appends_known(v) => bail!("{}", twice(DEFAULT, v)),
            prior => {
                let from = prior.map_or("no file (it had none)".to_owned(), |v| v.file.display().to_string());
                let _ = write!(
                    text,
                    "\n[DEFAULT]\n# [DEFAULT]'s action as set in\n#   {from}\n# then f2b-notify. This copy wins (this file is read last): after changing [DEFAULT]'s\n# action there, run `f2b-notify setup --all-jails` again.\naction = "
                );
                let mut lines: Vec<&str> =
                    prior.map(|v| v.lines.iter().map(String::as_str).collect()).unwrap_or_default();
                lines.retain(|l| !l.is_empty());
                lines.push(&line);
                let _ = writeln!(text, "{}", lines.join("\n         "));
                sections.push("[DEFAULT]".to_owned());
            }
        }
        // A jail that sets its own action does not inherit [DEFAULT]'s.
        for jail in conf.jails().filter(|j| conf.enabled(j)) {
            if let Some(v) = conf.own(jail, "action") {
                if jailconf::appends_known(v) {
                    bail!("{}", twice(jail, v));
                }
                if jailconf::runs_f2b_notify(v) {
                    out.say(format!("jail {jail}: its action in {} already runs f2b-notify", v.file.display()));
                } else {
                    text.push_str(&append(jail));
                    sections.push(jail.to_owned());
                }
            }
        }
    } else {
        if args.jails.iter().all(|j| j.trim().is_empty()) {
            let enabled: Vec<&str> = conf.jails().filter(|j| conf.enabled(j)).collect();
            bail!(
                "say which jails get the action: --jails J1,J2 or --all-jails (enabled jails here: {})",
                if enabled.is_empty() { "none".to_owned() } else { enabled.join(", ") }
            );
        }
        let mut seen = Vec::new();
        for jail in args.jails.iter().map(|j| j.trim()).filter(|j| !j.is_empty()) {
            if seen.contains(&jail) {
                continue;
            }
            seen.push(jail);
            if !jailconf::valid_jail_name(jail) {
                bail!("`{jail}` is not a jail name setup writes (letters, digits and - _ . only)");
            }
            if !conf.has(jail) {
                let enabled: Vec<&str> = conf.jails().filter(|j| conf.enabled(j)).collect();
                bail!(
                    "no jail `{jail}` in Fail2Ban's config (enabled jails: {})",
                    if enabled.is_empty() { "none".to_owned() } else { enabled.join(", ") }
                );
            }
            if let Some(v) = conf.own(jail, "action").filter(|v| jailconf::appends_known(v)) {
                bail!("{}", twice(jail, v));
            }
            match conf.effective(jail, "action") {
                Some(v) if jailconf::runs_f2b_notify(v) => {
                    out.say(format!(
                        "jail {jail}: its action in {} already runs f2b-notify: left as it is",
                        v.file.display()
                    ));
                    continue;
                }
                _ => {}
            }
            if !conf.enabled(jail) {
                out.note(format!("jail {jail} is not enabled: the action runs once it is"));
            }
            text.push_str(&append(jail));
            sections.push(jail.to_owned());
        }
    }
    if sections.is_empty() {
        return Ok(None);
    }
    Ok(Some((text, format!("appends f2b-notify to the action of {}", sections.join(", ")))))
}

/// Why setup cannot append to an `action` that already appends with `%(known/action)s`.
fn twice(section: &str, v: &jailconf::Value) -> String {
    format!(
        "[{section}] action in {} already appends to an earlier action with %(known/action)s, which Fail2Ban cannot do twice in one section; fix: add a line `f2b-notify` to that action there yourself",
        v.file.display()
    )
}

/// Asks Fail2Ban which actions each jail runs now and says whether f2b-notify is among them,
/// once, after another action.
fn verify(client: &Path, dir: &Path, conf: &JailConf, args: &SetupArgs, out: &mut Report) {
    let actions = match dump(client, dir) {
        Ok(a) => a,
        Err(e) => return out.note(format!("fail2ban-client -d failed, so each jail's actions were not checked: {e}")),
    };
    let wanted: Vec<String> = if args.all_jails {
        actions.iter().map(|(j, _)| j.clone()).collect()
    } else {
        args.jails.iter().map(|j| j.trim().to_owned()).collect()
    };
    for jail in wanted {
        let Some((_, list)) = actions.iter().find(|(j, _)| *j == jail) else {
            if conf.has(&jail) {
                out.say(format!("jail {jail}: not enabled, so Fail2Ban runs none of its actions yet"));
            }
            continue;
        };
        let ours = list.iter().filter(|a| *a == "f2b-notify").count();
        let shown = if list.is_empty() { "(none)".to_owned() } else { list.join(", ") };
        match ours {
            1 if list.len() > 1 => out.say(format!("jail {jail} runs: {shown}")),
            1 => out.note(format!("jail {jail} runs only f2b-notify: nothing bans there (give it a banaction)")),
            0 => out.note(format!(
                "jail {jail} runs {shown} and not f2b-notify: a file read after {JAIL_FILE} sets its action"
            )),
            n => out.note(format!(
                "jail {jail} runs f2b-notify {n} times ({shown}): remove it from the jail's action where it was added by hand"
            )),
        }
    }
}

/// `fail2ban-client -c DIR -d`: each enabled jail and its actions, in order.
fn dump(client: &Path, dir: &Path) -> Result<Vec<(String, Vec<String>)>, String> {
    let output = Command::new(client)
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if !output.status.success() {
        return Err(summary(&output));
    }
    Ok(parse_dump(&String::from_utf8_lossy(&output.stdout)))
}

/// The jails and their actions in `fail2ban-client -d`'s output.
fn parse_dump(text: &str) -> Vec<(String, Vec<String>)> {
    let mut jails: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        // Python's repr of each command: ['add', 'sshd', 'auto'], ['set', 'sshd', 'addaction', 'dummy'].
        let words: Vec<&str> = line
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(", ")
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .collect();
        match words.as_slice() {
            ["add", jail, ..] => jails.push(((*jail).to_owned(), Vec::new())),
            ["set", jail, "addaction", name] => {
                if let Some((_, list)) = jails.iter_mut().find(|(j, _)| j == jail) {
                    list.push((*name).to_owned());
                }
            }
            _ => {}
        }
    }
    jails
}

/// `fail2ban-client -c DIR -t`: Ok, or what Fail2Ban said, on one line.
fn test_config(client: &Path, dir: &Path) -> Result<(), String> {
    let output = Command::new(client)
        .arg("-c")
        .arg(dir)
        .arg("-t")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(summary(&output))
    }
}

/// Fail2Ban's error lines without their time stamps, on one line.
fn summary(output: &std::process::Output) -> String {
    errors(&format!("{}\n{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout)))
}

/// The `ERROR` lines of Fail2Ban's output, each once, else its last line.
fn errors(text: &str) -> String {
    let mut said: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(at) = line.find("ERROR") {
            let what = line[at + "ERROR".len()..].trim_start_matches(':').trim().to_owned();
            if !what.is_empty() && !said.contains(&what) {
                said.push(what);
            }
        }
    }
    if said.is_empty() {
        said.extend(text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(str::to_owned));
    }
    said.join("; ")
}

/// `fail2ban-client` on the PATH.
fn fail2ban_client() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fail2ban-client"))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Checks that `dir` is a Fail2Ban configuration directory setup may write into.
fn fail2ban_dir(dir: &Path) -> anyhow::Result<()> {
    if !trusted_dir(dir)? {
        bail!("{} does not exist: is Fail2Ban installed? (--fail2ban-dir names another directory)", dir.display());
    }
    if !dir.join("jail.conf").is_file() && !dir.join("jail.local").is_file() {
        bail!(
            "{} has no jail.conf or jail.local: it is not a Fail2Ban configuration directory (--fail2ban-dir names another)",
            dir.display()
        );
    }
    Ok(())
}

/// Whether `path` exists as a directory root may write into: it and its ancestors belong to
/// this user (or root) and no one else can write them. An error names the path and the fix.
fn trusted_dir(path: &Path) -> anyhow::Result<bool> {
    let bytes = path.as_os_str().as_bytes();
    trust::ancestors(&StdOs, bytes).and_then(|()| trust::dir(&StdOs, bytes)).map_err(refuse)
}

/// The one-line refusal for a directory that is not safe to write into.
fn refuse(u: Untrusted) -> anyhow::Error {
    match u.why {
        Why::NotDir => anyhow!("refusing to use {}: it is not a directory", u.path),
        _ => anyhow!("refusing to use {u}"),
    }
}

/// The directories from the first missing ancestor of `dir` down to `dir`.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        dir.ancestors().take_while(|d| fs::symlink_metadata(d).is_err()).map(Path::to_owned).collect();
    out.reverse();
    out
}

/// The regular file at `path`, read without following a link; `None` when there is none. A
/// link or anything but a regular file is an error naming the path.
fn read_regular(path: &Path) -> anyhow::Result<Option<Previous>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot look at {}: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        bail!(
            "refusing to write {}: it is a symbolic link; fix: remove the link (setup writes a file of its own)",
            path.display()
        );
    }
    if !meta.is_file() {
        bail!("refusing to write {}: it is not a regular file", path.display());
    }
    let bytes = read_nofollow(path).with_context(|| format!("cannot read {}", path.display()))?;
    let content =
        String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8 text: setup leaves it alone", path.display()))?;
    Ok(Some(Previous { content, mode: meta.mode() & 0o7777 }))
}

/// The record, if setup wrote into this directory before.
fn read_record(path: &Path) -> anyhow::Result<Option<Record>> {
    let Some(file) = read_regular(path)? else { return Ok(None) };
    let record: Record = serde_json::from_str(&file.content)
        .map_err(|e| anyhow!("{} is not a record setup can read ({e}); fix: move it away", path.display()))?;
    if record.version != RECORD_VERSION {
        bail!("{} has version {}, which this f2b-notify does not know", path.display(), record.version);
    }
    Ok(Some(record))
}

fn write_record(path: &Path, record: &Record) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(record).context("cannot serialize the setup record")?;
    text.push('\n');
    write_file(path, text.as_bytes(), 0o600, true).with_context(|| format!("cannot write {}", path.display()))
}

/// What setup says, in order: plain lines, and notes (what needs attention) marked so.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn say(&mut self, line: String) {
        self.lines.push(line);
    }

    fn note(&mut self, line: String) {
        self.lines.push(format!("note: {line}"));
    }

    fn print(&mut self) {
        for line in self.lines.drain(..) {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2bans_dump_gives_each_jails_actions_in_order() {
        let text = "['set', 'loglevel', 'INFO']\n['add', 'sshd', 'polling']\n['set', 'sshd', 'addaction', 'dummy']\n['multi-set', 'sshd', 'action', 'dummy', [['actionban', 'x']]]\n['set', 'sshd', 'addaction', 'f2b-notify']\n['add', 'web', 'auto']\n['set', 'web', 'addaction', 'webonly']\n['start', 'sshd']\n";
        let jails = parse_dump(text);
        assert_eq!(
            jails,
            [
                ("sshd".to_owned(), vec!["dummy".to_owned(), "f2b-notify".to_owned()]),
                ("web".to_owned(), vec!["webonly".to_owned()])
            ]
        );
    }

    #[test]
    fn fail2bans_errors_on_one_line() {
        let text = "2026-11-26 02:06:16,507 fail2ban.configreader   [18378]: WARNING 'allowipv6' not defined\n2026-11-26 02:06:16,513 fail2ban                [18378]: ERROR   Failed during configuration: Have not found any log file for sshd jail\nERROR: test configuration failed\n";
        assert_eq!(
            errors(text),
            "Failed during configuration: Have not found any log file for sshd jail; test configuration failed"
        );
        assert_eq!(errors("something odd\n\n"), "something odd");
    }

    #[test]
    fn the_starter_moves_into_the_configs_directory() {
        let text = starter(Path::new("/srv/f2b/web.toml")).unwrap();
        assert!(text.contains("url_file = \"/srv/f2b/slack-webhook.url\""), "{text}");
        assert!(!text.contains(STARTER_DIR));
        assert!(starter(Path::new("/srv/my dir/c.toml")).is_err());
    }
}
