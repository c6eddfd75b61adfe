//! `notify`'s command line: what each argument means, decided here once for both programs.
//!
//! The full binary parses with clap (for `--help` and its error messages) and hands the
//! values to `check`; the front end parses the raw arguments with `parse`, which accepts
//! only the forms the action file uses and says `None` for anything else, so that the front
//! end hands the arguments to `f2b-notify`, which prints the real error (or copes with a form
//! this code does not know, such as `-c FILE`).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

/// The four events, as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The jail started.
    Start,
    /// The jail stopped.
    Stop,
    /// An address was banned.
    Ban,
    /// An address was unbanned.
    Unban,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Start, Kind::Stop, Kind::Ban, Kind::Unban];

    /// The word on the command line and in the spool.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Stop => "stop",
            Kind::Ban => "ban",
            Kind::Unban => "unban",
        }
    }

    /// This kind's bit in a plan's event mask.
    pub fn bit(self) -> u8 {
        match self {
            Kind::Start => 1,
            Kind::Stop => 2,
            Kind::Ban => 4,
            Kind::Unban => 8,
        }
    }

    /// The kind a command-line word names.
    pub fn parse(word: &[u8]) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str().as_bytes() == word)
    }

    /// Whether this kind is about one banned id (and so needs `--ip`).
    pub fn has_target(self) -> bool {
        matches!(self, Kind::Ban | Kind::Unban)
    }
}

impl core::fmt::Display for Kind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `notify`'s arguments do not make an event; the text is the full binary's error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// No `--jail` (clap says so first in the full binary).
    NoJail,
    /// `--jail` is empty.
    EmptyJail,
    /// `--jail` holds a control character.
    JailControl,
    /// `ban`/`unban` without a non-empty `--ip`.
    NoId(Kind),
    /// `--failures` is not a whole number.
    Failures(String),
    /// `--time` is not a finite, non-negative number.
    Time(String),
    /// `--bantime` is not a whole number.
    Bantime(String),
    /// `--restored` is not 0 or 1 (or true/false, yes/no).
    Restored(String),
    /// `--bancount` is not a whole number.
    Bancount(String),
}

impl core::fmt::Display for ArgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgError::NoJail => f.write_str("--jail is required"),
            ArgError::EmptyJail => f.write_str("--jail must not be empty"),
            ArgError::JailControl => f.write_str("--jail must not contain control characters"),
            ArgError::NoId(kind) => write!(f, "`notify {kind}` needs --ip ADDR (a non-empty address or id)"),
            ArgError::Failures(v) => write!(f, "--failures `{v}` is not a whole number"),
            ArgError::Time(v) => write!(f, "--time `{v}` is not a number of seconds since the epoch"),
            ArgError::Bantime(v) => write!(f, "--bantime `{v}` is not a whole number of seconds"),
            ArgError::Restored(v) => write!(f, "--restored `{v}` must be 0 or 1"),
            ArgError::Bancount(v) => write!(f, "--bancount `{v}` is not a whole number"),
        }
    }
}

/// One checked `notify` event, with the fields of the core crate's `Event` except `host`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// What happened.
    pub kind: Kind,
    /// The jail, trimmed.
    pub jail: String,
    /// The banned id, trimmed (ban and unban only).
    pub id: Option<String>,
    /// `id` as an address, when it is one.
    pub ip: Option<IpAddr>,
    /// `--failures`.
    pub failures: Option<u64>,
    /// `--time`.
    pub time: Option<f64>,
    /// `--bantime`.
    pub bantime: Option<i64>,
    /// `--restored`.
    pub restored: bool,
    /// `--user`, as given (attacker-controlled).
    pub user: Option<String>,
    /// `--matches`, as given (attacker-controlled).
    pub matches: Option<String>,
    /// `--bancount`: how often Fail2Ban has banned the id in this jail, this ban included.
    pub bancount: Option<u64>,
}

/// A whole `[--config FILE]... notify KIND --name=value...` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation<'a> {
    /// The `--config` values, in order.
    pub configs: Vec<&'a [u8]>,
    /// The event.
    pub notify: Notify,
}

/// The value options of `notify`, in the order `check` takes their values (`bancount` last:
/// it came last, and the others keep their places).
pub const OPTIONS: [&str; 9] = ["jail", "ip", "failures", "time", "bantime", "restored", "user", "matches", "bancount"];

/// Parses the arguments after the program name. `None` when they are not a well-formed
/// `notify` command line of the forms the action file uses, or when the full binary would
/// reject them.
pub fn parse<'a>(args: &[&'a [u8]]) -> Option<Invocation<'a>> {
    let mut configs = Vec::new();
    let mut i = 0;
    loop {
        let arg = *args.get(i)?;
        if arg == b"--config" {
            configs.push(*args.get(i + 1)?);
            i += 2;
        } else if let Some(v) = arg.strip_prefix(b"--config=") {
            configs.push(v);
            i += 1;
        } else {
            break;
        }
    }
    if *args.get(i)? != b"notify" {
        return None;
    }
    let kind = Kind::parse(args.get(i + 1)?)?;
    i += 2;
    // Every option takes a value, even one that starts with `-` (clap's
    // `allow_hyphen_values`): `--user --help` is a user named `--help`.
    let mut values: [Option<&str>; OPTIONS.len()] = [None; OPTIONS.len()];
    while i < args.len() {
        let rest = args[i].strip_prefix(b"--")?;
        let (name, value, step) = match rest.iter().position(|&b| b == b'=') {
            Some(eq) => (&rest[..eq], &rest[eq + 1..], 1),
            None => (rest, *args.get(i + 1)?, 2),
        };
        let slot = OPTIONS.iter().position(|o| o.as_bytes() == name)?;
        if values[slot].is_some() {
            return None; // clap: "cannot be used multiple times"
        }
        values[slot] = Some(core::str::from_utf8(value).ok()?);
        i += step;
    }
    for c in &configs {
        core::str::from_utf8(c).ok()?;
    }
    match check(kind, &values) {
        // A value set aside is said on stderr, which only the full binary does.
        Ok((notify, set_aside)) if set_aside.is_empty() => Some(Invocation { configs, notify }),
        _ => None,
    }
}

/// The meaning of `notify`'s values (`v` in the order of `OPTIONS`): surrounding white space
/// is trimmed from the jail, the id and the numbers, and an empty value (a tag Fail2Ban had
/// nothing for) counts as not given; the user and the log lines are kept as given.
///
/// Without a jail, or a ban without an id, there is no event: an error. A malformed number or
/// `--restored` does not lose the event: that value is set aside (the event goes out without
/// it) and returned with the event, for the caller to say so.
pub fn check(kind: Kind, v: &[Option<&str>; OPTIONS.len()]) -> Result<(Notify, Vec<ArgError>), ArgError> {
    let mut set_aside = Vec::new();
    fn nonempty(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.trim().is_empty())
    }
    let jail = v[0].ok_or(ArgError::NoJail)?.trim();
    if jail.is_empty() {
        return Err(ArgError::EmptyJail);
    }
    if jail.chars().any(char::is_control) {
        return Err(ArgError::JailControl);
    }
    let (id, ip) = if kind.has_target() {
        let id = nonempty(v[1]).ok_or(ArgError::NoId(kind))?.trim();
        (Some(String::from(id)), parse_ip(id))
    } else {
        (None, None)
    };
    let failures = nonempty(v[2]).and_then(|s| match s.trim().parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            set_aside.push(ArgError::Failures(String::from(s)));
            None
        }
    });
    let time = nonempty(v[3]).and_then(|s| match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Some(t),
        _ => {
            set_aside.push(ArgError::Time(String::from(s)));
            None
        }
    });
    let bantime = nonempty(v[4]).and_then(|s| match s.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            set_aside.push(ArgError::Bantime(String::from(s)));
            None
        }
    });
    let restored = match nonempty(v[5]) {
        None => false,
        Some(s) => {
            let t = s.trim();
            if ["1", "true", "yes"].iter().any(|w| t.eq_ignore_ascii_case(w)) {
                true
            } else if ["0", "false", "no"].iter().any(|w| t.eq_ignore_ascii_case(w)) {
                false
            } else {
                set_aside.push(ArgError::Restored(String::from(s)));
                false
            }
        }
    };
    let bancount = nonempty(v[8]).and_then(|s| match s.trim().parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            set_aside.push(ArgError::Bancount(String::from(s)));
            None
        }
    });
    let notify = Notify {
        kind,
        jail: String::from(jail),
        id,
        ip,
        failures,
        time,
        bantime,
        restored,
        user: nonempty(v[6]).map(String::from),
        matches: nonempty(v[7]).map(String::from),
        bancount,
    };
    Ok((notify, set_aside))
}

/// An address the way Fail2Ban prints it (surrounding white space ignored); IPv6 may come in
/// brackets.
pub fn parse_ip(id: &str) -> Option<IpAddr> {
    let id = id.trim();
    let bare = id.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(id);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn p(args: &[&str]) -> Option<Invocation<'static>> {
        let owned: Vec<&'static [u8]> = args
            .iter()
            .map(|a| -> &'static [u8] { alloc::boxed::Box::leak(alloc::boxed::Box::from(a.as_bytes())) })
            .collect();
        parse(&owned)
    }

    #[test]
    fn the_action_files_forms() {
        let inv = p(&[
            "--config",
            "/a.toml",
            "--config=/b.toml",
            "notify",
            "ban",
            "--jail=sshd",
            "--ip= 2001:db8::1 ",
            "--failures=5",
            "--time=1700000000.25",
            "--bantime=-1",
            "--restored=0",
            "--user=--help",
            "--matches=",
            "--bancount=3",
        ])
        .unwrap();
        assert_eq!(inv.configs, [&b"/a.toml"[..], b"/b.toml"]);
        let n = inv.notify;
        assert_eq!((n.kind, n.jail.as_str(), n.id.as_deref()), (Kind::Ban, "sshd", Some("2001:db8::1")));
        assert!(n.ip.is_some_and(|ip| ip.is_ipv6()));
        assert_eq!((n.failures, n.time, n.bantime, n.restored), (Some(5), Some(1_700_000_000.25), Some(-1), false));
        assert_eq!((n.user.as_deref(), n.matches, n.bancount), (Some("--help"), None, Some(3)));
        let start = p(&["notify", "start", "--jail", "nginx-x"]).unwrap().notify;
        assert_eq!((start.kind, start.id, start.bancount), (Kind::Start, None, None));
        // Both forms; empty is not given.
        for (arg, want) in [
            (&["--bancount", " 2 "][..], Some(2)),
            (&["--bancount=0"], Some(0)),
            (&["--bancount=18446744073709551615"], Some(u64::MAX)),
            (&["--bancount="], None),
            (&["--bancount", " "], None),
            (&[], None),
        ] {
            let mut args = alloc::vec!["notify", "ban", "--jail=j", "--ip=192.0.2.1"];
            args.extend_from_slice(arg);
            assert_eq!(p(&args).map(|i| i.notify.bancount), Some(want), "{arg:?}");
        }
        let other = p(&["notify", "unban", "--jail=j", "--ip", "user@host", "--restored=YES"]).unwrap().notify;
        assert_eq!((other.ip, other.restored), (None, true));
    }

    #[test]
    fn what_the_full_binary_decides() {
        for bad in [
            &["notify", "ban", "--jail=sshd"][..],            // no --ip
            &["notify", "ban", "--jail=sshd", "--ip=  "],     // empty --ip
            &["notify", "start", "--jail= "],                 // empty jail
            &["notify", "start", "--jail=a\nb"],              // control character
            &["notify", "start"],                             // no --jail
            &["notify", "bann", "--jail=j"],                  // unknown event
            &["notify", "start", "--jail=j", "--jail=k"],     // twice
            &["notify", "start", "--jail=j", "--colour=red"], // unknown option
            &["notify", "start", "--jail=j", "extra"],        // stray argument
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--failures=x"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--time=-1"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--time=inf"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bantime=1.5"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--restored=maybe"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount=-1"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount=2.0"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount=18446744073709551616"],
            // A Fail2Ban without the tag (before 0.10) leaves it as it is, like `<restored>`.
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount=<bancount>"],
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount=1", "--bancount=2"],
            // No value.
            &["notify", "ban", "--jail=j", "--ip=1.2.3.4", "--bancount"],
            &["-c", "/a.toml", "notify", "start", "--jail=j"], // left to clap
            &["check"],
            &[],
        ] {
            assert!(p(bad).is_none(), "{bad:?}");
        }
        assert!(parse(&[b"notify", b"start", b"--jail=\xff"]).is_none(), "not UTF-8");
    }

    #[test]
    fn errors_name_the_argument_and_value() {
        let mut v: [Option<&str>; OPTIONS.len()] = [Some("j"), None, None, None, None, None, None, None, None];
        assert_eq!(
            check(Kind::Ban, &v).unwrap_err().to_string(),
            "`notify ban` needs --ip ADDR (a non-empty address or id)"
        );
        v[1] = Some("192.0.2.1");
        // A malformed number or flag is set aside: the event goes out without it.
        for (slot, value, text) in [
            (2, "-1", "--failures `-1` is not a whole number"),
            (3, " nan", "--time ` nan` is not a number of seconds since the epoch"),
            (4, "1.5", "--bantime `1.5` is not a whole number of seconds"),
            (5, "maybe", "--restored `maybe` must be 0 or 1"),
            (8, "twice", "--bancount `twice` is not a whole number"),
        ] {
            let mut w = v;
            w[slot] = Some(value);
            let (n, set_aside) = check(Kind::Ban, &w).unwrap();
            assert_eq!(set_aside.iter().map(ToString::to_string).collect::<Vec<_>>(), [text]);
            assert_eq!((n.failures, n.time, n.bantime, n.restored, n.bancount), (None, None, None, false, None));
            assert_eq!(n.id.as_deref(), Some("192.0.2.1"));
            assert!(
                p(&["notify", "ban", "--jail=j", "--ip=192.0.2.1", &alloc::format!("--{}={value}", OPTIONS[slot])])
                    .is_none(),
                "the front end hands over"
            );
        }
        v[0] = Some(" ");
        assert_eq!(check(Kind::Start, &v).unwrap_err(), ArgError::EmptyJail);
        v[0] = None;
        assert_eq!(check(Kind::Start, &v).unwrap_err(), ArgError::NoJail);
    }
}
