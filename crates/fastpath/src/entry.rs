//! A spool entry as JSON: the one writer of the format, used by both programs; the worker
//! reads it back with serde (the router's `spool::Entry`).

use alloc::string::String;
use core::fmt::Write;

use crate::args::Notify;

/// The format's version, the entry's first field.
pub const VERSION: u32 = 1;

/// The entry for `notify`, bound for `sinks`, from `host`, written at `enqueued_at` (seconds
/// since the epoch).
pub fn json(notify: &Notify, sinks: &[String], host: &str, enqueued_at: f64) -> String {
    write(notify, sinks, None, host, enqueued_at)
}

/// The entry for `notify` when the config did not load, so no route could choose its sinks:
/// `reason` says why, and the worker routes it once a config loads (nothing is dropped for a
/// config mistake). Written only by the full binary.
pub fn unrouted(notify: &Notify, host: &str, enqueued_at: f64, reason: &str) -> String {
    write(notify, &[], Some(reason), host, enqueued_at)
}

fn write(notify: &Notify, sinks: &[String], unrouted: Option<&str>, host: &str, enqueued_at: f64) -> String {
    let mut s = String::with_capacity(256 + notify.matches.as_ref().map_or(0, |m| m.len() + m.len() / 8));
    let _ = write!(s, "{{\"version\":{VERSION},\"enqueued_at\":");
    float(&mut s, enqueued_at);
    s.push_str(",\"sinks\":[");
    for (i, sink) in sinks.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        string(&mut s, sink);
    }
    s.push(']');
    if let Some(reason) = unrouted {
        s.push_str(",\"unrouted\":");
        string(&mut s, reason);
    }
    s.push_str(",\"event\":{\"kind\":\"");
    s.push_str(notify.kind.as_str());
    s.push_str("\",\"jail\":");
    string(&mut s, &notify.jail);
    if let Some(id) = &notify.id {
        s.push_str(",\"id\":");
        string(&mut s, id);
    }
    if let Some(ip) = notify.ip {
        let _ = write!(s, ",\"ip\":\"{ip}\"");
    }
    if let Some(n) = notify.failures {
        let _ = write!(s, ",\"failures\":{n}");
    }
    if let Some(t) = notify.time {
        s.push_str(",\"time\":");
        float(&mut s, t);
    }
    if let Some(b) = notify.bantime {
        let _ = write!(s, ",\"bantime\":{b}");
    }
    // Left out when not given, as entries before it had none: a worker of the version before
    // (an upgrade) reads the entry as it always did.
    if let Some(n) = notify.bancount {
        let _ = write!(s, ",\"bancount\":{n}");
    }
    let _ = write!(s, ",\"restored\":{}", notify.restored);
    if let Some(user) = &notify.user {
        s.push_str(",\"user\":");
        string(&mut s, user);
    }
    if let Some(matches) = &notify.matches {
        s.push_str(",\"matches\":");
        string(&mut s, matches);
    }
    s.push_str(",\"host\":");
    string(&mut s, host);
    s.push_str("}}");
    s
}

/// A finite number as JSON that reads back as the same `f64`: the shortest text that does
/// (`{}` and `{:e}` of an f64 both are), in exponent form when very large or very small
/// (serde_json's reader turns a 309-digit decimal into "number out of range"), and a whole
/// number keeps a `.0` so that it stays a float.
fn float(out: &mut String, value: f64) {
    let start = out.len();
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        let _ = write!(out, "{value:e}");
    } else {
        let _ = write!(out, "{value}");
    }
    if !out[start..].contains(['.', 'e', 'E']) {
        out.push_str(".0");
    }
}

/// A JSON string: quotes, backslashes and control characters escaped; everything else as is
/// (the text is UTF-8 already).
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::args::Kind;

    #[test]
    fn hostile_text_is_valid_json_and_reads_back_the_same() {
        let nasty = "<!channel> \"quoted\" back\\slash \u{1} tab\t nl\n é 💥 $(reboot)";
        let n = Notify {
            kind: Kind::Ban,
            jail: String::from("ssh\"d"),
            id: Some(String::from("2001:db8::1")),
            ip: "2001:db8::1".parse().ok(),
            failures: Some(3),
            time: Some(1_700_000_000.123_456_7),
            bantime: Some(-1),
            restored: true,
            user: Some(String::from(nasty)),
            matches: Some(String::from(nasty)),
            bancount: Some(u64::MAX),
        };
        let text = json(&n, &[String::from("ops"), String::from("mail")], "h\"ost", 1_764_000_000.5);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"]["user"], nasty);
        assert_eq!(v["event"]["matches"], nasty);
        assert_eq!(v["event"]["jail"], "ssh\"d");
        assert_eq!(v["event"]["ip"], "2001:db8::1");
        assert_eq!(v["event"]["time"].as_f64(), Some(1_700_000_000.123_456_7));
        assert_eq!(v["event"]["bantime"], -1);
        assert_eq!(v["event"]["restored"], true);
        assert_eq!(v["event"]["bancount"].as_u64(), Some(u64::MAX), "a whole number, exactly");
        assert_eq!(v["enqueued_at"].as_f64(), Some(1_764_000_000.5));
        assert_eq!(v["sinks"], serde_json::json!(["ops", "mail"]));
        assert_eq!(v["event"]["host"], "h\"ost");
    }

    /// Jail `j` started at `time`, nothing else known.
    fn started_at(time: f64) -> Notify {
        Notify {
            kind: Kind::Start,
            jail: String::from("j"),
            id: None,
            ip: None,
            failures: None,
            time: Some(time),
            bantime: None,
            restored: false,
            user: None,
            matches: None,
            bancount: None,
        }
    }

    #[test]
    fn numbers_read_back_exactly() {
        for t in [
            0.0,
            5.0,
            1e9,
            1_700_000_000.123_456_7,
            1e-7,
            0.000_012_5,
            1e16,
            123_456_789_012_345_680.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let text = json(&started_at(t), &[], "h", t);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{t}: {e}: {text}"));
            assert_eq!(v["event"]["time"].as_f64(), Some(t), "{text}");
            assert_eq!(v["enqueued_at"].as_f64(), Some(t), "{text}");
        }
    }

    #[test]
    fn absent_fields_are_left_out() {
        let n = started_at(5.0);
        let v: serde_json::Value = serde_json::from_str(&json(&n, &[], "h", 1.0)).unwrap();
        let event = v["event"].as_object().unwrap();
        let mut keys: std::vec::Vec<&str> = event.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["host", "jail", "kind", "restored", "time"]);
        assert_eq!(v["event"]["time"].as_f64(), Some(5.0));
    }
}
