//! The plan file: what the front end needs to spool an event without reading the config, and
//! what it must check first. A text file of lines, one record a line, fields separated by one
//! space, byte strings in hex:
//!
//! ```text
//! f2b-notify-plan 1
//! inputs HASH                          working directory, --config values, F2B_NOTIFY_… variables
//! exe IDENT                            the f2b-notify binary that wrote the plan
//! file PATH IDENT                      a config file or directory that was read
//! absent PATH                          a config path that did not exist
//! spool PATH
//! host NAME                            only when the config sets `host`
//! worker ARG...                        the arguments that start the delivery worker
//! jail NAME EVENTS RESTORED INLINE SINK,SINK...
//! ```
//!
//! IDENT is `dev ino size mtime mtime_nsec ctime ctime_nsec`. Any change to a config file
//! (even a same-size edit: the times change; even a rename over it: the inode changes), to a
//! config directory (a file added or removed changes its times), to the binary or to the
//! variables makes the plan stale, and the front end hands the event to `f2b-notify`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::args::{Kind, Notify};
use crate::hex;
use crate::os::{FileKind, Open, Os};
use core::ffi::CStr;

/// The first line of every plan; a new format gets a new number.
pub const HEADER: &str = "f2b-notify-plan 1";
/// Where plans live unless `F2B_NOTIFY_RUN_DIR` names another directory: runtime state,
/// owned by root, gone at reboot.
pub const DEFAULT_RUN_DIR: &str = "/run/f2b-notify";
/// The variable that moves the plans (tests use it).
pub use crate::layout::RUN_DIR_ENV;

/// What identifies one state of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Status change time, seconds.
    pub ctime: i64,
    /// Status change time, nanoseconds.
    pub ctime_nsec: i64,
}

/// A jail's route as the full binary resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailRoute {
    /// The jail's name (not the route's pattern).
    pub name: String,
    /// The events the route takes, as `Kind::bit`s.
    pub events: u8,
    /// Whether restored bans are announced.
    pub restored: bool,
    /// Whether one of the sinks is written by the action itself (stdout, file): then only the
    /// full binary can deliver.
    pub inline: bool,
    /// The sinks.
    pub sinks: Vec<String>,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `inputs_hash` of what selected the config.
    pub inputs: u64,
    /// The `f2b-notify` binary that wrote it.
    pub exe: Ident,
    /// Each config path read, with its identity, or `None` when it did not exist.
    pub paths: Vec<(Vec<u8>, Option<Ident>)>,
    /// The spool directory (absolute).
    pub spool: Vec<u8>,
    /// The configured host name; `None`: the kernel's.
    pub host: Option<String>,
    /// The arguments (after the program) that start the delivery worker.
    pub worker: Vec<Vec<u8>>,
    /// The jails seen so far.
    pub jails: Vec<JailRoute>,
}

/// What the front end does with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Nothing: the route does not take this event (or keeps restored bans quiet).
    Quiet,
    /// Spool it for these sinks.
    Spool(&'a [String]),
    /// Hand it to `f2b-notify`.
    Full,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn args_hash(cwd: &[u8], configs: &[&[u8]]) -> u64 {
    let mut h = fnv(FNV_OFFSET, b"f2b-notify\0");
    h = fnv(fnv(h, cwd), b"\0");
    for c in configs {
        h = fnv(fnv(h, c), b"\0");
    }
    h
}

/// The plan file's name for a working directory and `--config` values. The variables are
/// not in the name: a change of them replaces the plan instead of adding one.
pub fn file_name(cwd: &[u8], configs: &[&[u8]]) -> String {
    format!("plan-{:016x}", args_hash(cwd, configs))
}

/// A hash of everything that selects or overrides the config: the working directory (for
/// relative paths), the `--config` values, and every `F2B_NOTIFY_…` variable except
/// `F2B_NOTIFY_LOG` and `F2B_NOTIFY_RUN_DIR` (`env` yields `NAME=VALUE` entries in any
/// order). Only this hash is kept, so a secret set in the environment is not copied into
/// the plan.
pub fn inputs_hash<'a>(cwd: &[u8], configs: &[&[u8]], env: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let (mut sum, mut count) = (0u64, 0u64);
    for entry in env {
        if crate::layout::env_changes_config(entry) {
            sum = sum.wrapping_add(fnv(FNV_OFFSET, entry));
            count += 1;
        }
    }
    let h = fnv(args_hash(cwd, configs), &sum.to_le_bytes());
    fnv(h, &count.to_le_bytes())
}

impl Ident {
    fn write(&self, s: &mut String) {
        let _ = write!(
            s,
            "{} {} {} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime, self.mtime_nsec, self.ctime, self.ctime_nsec
        );
    }

    fn read<'a>(f: &mut impl Iterator<Item = &'a [u8]>) -> Option<Ident> {
        Some(Ident {
            dev: num(f.next()?)?,
            ino: num(f.next()?)?,
            size: num(f.next()?)?,
            mtime: num(f.next()?)?,
            mtime_nsec: num(f.next()?)?,
            ctime: num(f.next()?)?,
            ctime_nsec: num(f.next()?)?,
        })
    }
}

fn num<T: core::str::FromStr>(field: &[u8]) -> Option<T> {
    core::str::from_utf8(field).ok()?.parse().ok()
}

fn text(field: &[u8]) -> Option<String> {
    String::from_utf8(hex::decode(field)?).ok()
}

/// Reads the plan at `path` if it is one this user can trust: a regular file (not a link)
/// owned by this user that no one else can write, under 1 MiB, complete and well-formed.
/// Anything else is no plan: the event goes the slow way and the plan is written anew.
pub fn load<O: Os>(os: &O, path: &CStr) -> Option<Plan> {
    let file = os.open(path, Open::Read).ok()?;
    let meta = os.fstat(&file).ok()?;
    if meta.kind != FileKind::File || meta.uid != os.euid() || meta.mode & 0o022 != 0 || meta.size >= 1 << 20 {
        return None;
    }
    Plan::parse(&os.read_all(&file).ok()?)
}

impl Plan {
    /// The plan as its file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{HEADER}\ninputs {:016x}", self.inputs);
        s.push_str("exe ");
        self.exe.write(&mut s);
        s.push('\n');
        for (path, ident) in &self.paths {
            match ident {
                Some(id) => {
                    let _ = write!(s, "file {} ", hex::encode(path));
                    id.write(&mut s);
                    s.push('\n');
                }
                None => {
                    let _ = writeln!(s, "absent {}", hex::encode(path));
                }
            }
        }
        let _ = writeln!(s, "spool {}", hex::encode(&self.spool));
        if let Some(host) = &self.host {
            let _ = writeln!(s, "host {}", hex::encode(host.as_bytes()));
        }
        s.push_str("worker");
        for arg in &self.worker {
            let _ = write!(s, " {}", hex::encode(arg));
        }
        s.push('\n');
        for j in &self.jails {
            let sinks: Vec<String> = j.sinks.iter().map(|n| hex::encode(n.as_bytes())).collect();
            let sinks = if sinks.is_empty() { String::from("-") } else { sinks.join(",") };
            let _ = writeln!(
                s,
                "jail {} {} {} {} {sinks}",
                hex::encode(j.name.as_bytes()),
                j.events,
                u8::from(j.restored),
                u8::from(j.inline)
            );
        }
        s
    }

    /// Reads a plan; `None` for anything but a complete, well-formed plan of this format.
    pub fn parse(file: &[u8]) -> Option<Plan> {
        let mut lines = file.split(|&b| b == b'\n');
        if lines.next()? != HEADER.as_bytes() {
            return None;
        }
        let (mut inputs, mut exe, mut spool, mut worker) = (None, None, None, None);
        let mut plan = Plan {
            inputs: 0,
            exe: Ident { dev: 0, ino: 0, size: 0, mtime: 0, mtime_nsec: 0, ctime: 0, ctime_nsec: 0 },
            paths: Vec::new(),
            spool: Vec::new(),
            host: None,
            worker: Vec::new(),
            jails: Vec::new(),
        };
        let mut ended = false;
        for line in lines {
            if line.is_empty() {
                ended = true; // only the end of the file may follow
                continue;
            }
            if ended {
                return None;
            }
            let mut f = line.split(|&b| b == b' ');
            match f.next()? {
                b"inputs" => inputs = Some(u64::from_str_radix(core::str::from_utf8(f.next()?).ok()?, 16).ok()?),
                b"exe" => exe = Some(Ident::read(&mut f)?),
                b"file" => {
                    let path = hex::decode(f.next()?)?;
                    plan.paths.push((path, Some(Ident::read(&mut f)?)));
                }
                b"absent" => plan.paths.push((hex::decode(f.next()?)?, None)),
                b"spool" => spool = Some(hex::decode(f.next()?)?),
                b"host" => plan.host = Some(text(f.next()?)?),
                b"worker" => worker = Some(f.by_ref().map(hex::decode).collect::<Option<Vec<_>>>()?),
                b"jail" => {
                    let name = text(f.next()?)?;
                    let events = num(f.next()?)?;
                    let restored = f.next()? == b"1";
                    let inline = f.next()? == b"1";
                    let sinks = f.next()?;
                    let sinks = if sinks == b"-" {
                        Vec::new()
                    } else {
                        sinks.split(|&b| b == b',').map(text).collect::<Option<Vec<_>>>()?
                    };
                    plan.jails.push(JailRoute { name, events, restored, inline, sinks });
                }
                _ => return None,
            }
            if f.next().is_some() {
                return None;
            }
        }
        if !ended {
            return None; // cut short: the last line has no newline
        }
        plan.inputs = inputs?;
        plan.exe = exe?;
        plan.spool = spool?;
        plan.worker = worker?;
        if plan.spool.first() != Some(&b'/') || plan.worker.is_empty() {
            return None;
        }
        Some(plan)
    }

    /// Whether `other` was made from the same config, binary and inputs (its jails aside).
    pub fn same_source(&self, other: &Plan) -> bool {
        (self.inputs, &self.exe, &self.paths, &self.spool, &self.host, &self.worker)
            == (other.inputs, &other.exe, &other.paths, &other.spool, &other.host, &other.worker)
    }

    /// Adds or replaces a jail's route; `false` when the plan already said the same.
    pub fn set_jail(&mut self, route: JailRoute) -> bool {
        match self.jails.iter_mut().find(|j| j.name == route.name) {
            Some(j) if *j == route => false,
            Some(j) => {
                *j = route;
                true
            }
            None => {
                self.jails.push(route);
                true
            }
        }
    }

    /// What to do with `n` (the plan having been checked to be current).
    pub fn decide(&self, n: &Notify) -> Decision<'_> {
        let Some(route) = self.jails.iter().find(|j| j.name == n.jail) else { return Decision::Full };
        if route.events & n.kind.bit() == 0 || (n.kind == Kind::Ban && n.restored && !route.restored) {
            return Decision::Quiet;
        }
        if route.inline {
            return Decision::Full;
        }
        if route.sinks.is_empty() {
            return Decision::Quiet;
        }
        Decision::Spool(&route.sinks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Plan {
        let id = |n| Ident {
            dev: 2049,
            ino: n,
            size: 300,
            mtime: 1_764_000_000,
            mtime_nsec: 123,
            ctime: 1_764_000_001,
            ctime_nsec: 456,
        };
        Plan {
            inputs: 0xdead_beef,
            exe: id(7),
            paths: vec![
                (b"/etc/f2b-notify/config.toml".to_vec(), Some(id(8))),
                (b"/etc/f2b-notify/conf.d".to_vec(), None),
            ],
            spool: b"/var/spool/f2b notify".to_vec(),
            host: Some(String::from("web 1")),
            worker: vec![b"--config".to_vec(), b"/x.toml".to_vec(), b"deliver".to_vec()],
            jails: vec![
                JailRoute {
                    name: String::from("sshd"),
                    events: 4 | 8,
                    restored: false,
                    inline: false,
                    sinks: vec![String::from("ops"), String::from("mail")],
                },
                JailRoute {
                    name: String::from("web"),
                    events: 15,
                    restored: true,
                    inline: true,
                    sinks: vec![String::from("console")],
                },
                JailRoute { name: String::from("quiet"), events: 15, restored: true, inline: false, sinks: vec![] },
            ],
        }
    }

    #[test]
    fn renders_and_parses_back() {
        let plan = sample();
        let text = plan.render();
        assert_eq!(Plan::parse(text.as_bytes()), Some(plan.clone()));
        assert!(!text.contains("web 1"), "text fields are hex");
        let cut = &text.as_bytes()[..text.len() - 1];
        assert_eq!(Plan::parse(cut), None, "a plan without its last newline is cut short");
        assert_eq!(Plan::parse(text.replace("plan 1", "plan 2").as_bytes()), None);
        assert_eq!(Plan::parse(text.replace("spool ", "spool f").as_bytes()), None, "odd hex");
        assert_eq!(Plan::parse(format!("{text}junk 1\n").as_bytes()), None);
    }

    #[test]
    fn decisions() {
        let plan = sample();
        let n = |kind, jail: &str, restored| Notify {
            kind,
            jail: String::from(jail),
            id: None,
            ip: None,
            failures: None,
            time: None,
            bantime: None,
            restored,
            user: None,
            matches: None,
            bancount: None,
        };
        assert_eq!(plan.decide(&n(Kind::Ban, "sshd", false)), Decision::Spool(&plan.jails[0].sinks));
        assert_eq!(plan.decide(&n(Kind::Start, "sshd", false)), Decision::Quiet);
        assert_eq!(plan.decide(&n(Kind::Ban, "sshd", true)), Decision::Quiet);
        assert_eq!(plan.decide(&n(Kind::Unban, "sshd", true)), Decision::Spool(&plan.jails[0].sinks));
        assert_eq!(plan.decide(&n(Kind::Ban, "web", false)), Decision::Full);
        assert_eq!(plan.decide(&n(Kind::Ban, "quiet", false)), Decision::Quiet);
        assert_eq!(plan.decide(&n(Kind::Ban, "unknown", false)), Decision::Full);
    }

    #[test]
    fn inputs() {
        let cwd = b"/";
        let a = inputs_hash(cwd, &[b"/a.toml"], [&b"F2B_NOTIFY_X=1"[..], b"PATH=/bin", b"F2B_NOTIFY_LOG=debug"]);
        assert_eq!(a, inputs_hash(cwd, &[b"/a.toml"], [&b"F2B_NOTIFY_X=1"[..]]), "other variables do not count");
        assert_ne!(a, inputs_hash(cwd, &[b"/a.toml"], [&b"F2B_NOTIFY_X=2"[..]]));
        assert_ne!(a, inputs_hash(cwd, &[b"/a.toml"], []));
        assert_ne!(a, inputs_hash(b"/tmp", &[b"/a.toml"], [&b"F2B_NOTIFY_X=1"[..]]));
        assert_ne!(a, inputs_hash(cwd, &[b"/a.toml", b"/b.toml"], [&b"F2B_NOTIFY_X=1"[..]]));
        let two = inputs_hash(cwd, &[], [&b"F2B_NOTIFY_A=1"[..], b"F2B_NOTIFY_B=2"]);
        assert_eq!(two, inputs_hash(cwd, &[], [&b"F2B_NOTIFY_B=2"[..], b"F2B_NOTIFY_A=1"]), "order does not count");
        assert_eq!(file_name(cwd, &[b"/a.toml"]), file_name(cwd, &[b"/a.toml"]));
        assert_ne!(file_name(cwd, &[b"/a.toml"]), file_name(cwd, &[b"/b.toml"]));
    }
}
