//! The datagram's layout, RFC 3164 (local form) or RFC 5424, and what keeps event text from
//! changing it.
//!
//! RFC 5424, section 6: `HEADER SP STRUCTURED-DATA [SP MSG]`, HEADER being `<PRI>1 TIMESTAMP
//! HOSTNAME APP-NAME PROCID MSGID`, each header field `-` or 1 to 255 (HOSTNAME), 48
//! (APP-NAME), 128 (PROCID) or 32 (MSGID) characters of PRINTUSASCII (`!` to `~`: no space);
//! TIMESTAMP is RFC 3339 with an upper-case `T` and `Z`, at most six digits of fraction;
//! STRUCTURED-DATA is `-` or `[SD-ID PARAM="VALUE" …]`, where `"`, `\` and `]` in a value must
//! be escaped with `\`; a MSG in UTF-8 starts with a byte order mark, and receivers must take
//! at least 480 octets. The local RFC 3164 form is what the C library's `syslog(3)` sends to
//! `/dev/log`: `<PRI>TAG[PID]: MSG` (its time stamp left out: the system log stamps each
//! message as it arrives).
//!
//! Event text (the rendered message, jail, id, user) can hold anything an attacker put in a
//! log line. Every control character and Unicode line or paragraph separator becomes a space,
//! so one event is one line of one datagram and no text can start a record of its own; a `<`
//! is then only a character inside a line. Header fields take only printable ASCII (anything
//! else becomes `_`), so a space or a newline in a host name cannot shift the fields after it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{truncate_chars, Event};

/// The longest datagram sent: what rsyslog takes by default (8 KiB), far more than one event's
/// text needs. A socket that refuses less gets less (see `socket.rs`).
pub const MAX_DATAGRAM: usize = 8192;

/// The smallest size a datagram is cut to: every syslog receiver must accept 480 octets
/// (RFC 5424, section 6.1).
pub(crate) const MIN_DATAGRAM: usize = 480;

/// What a cut message ends with, so nobody mistakes it for the whole.
const CUT: &str = " … [cut]";

/// Longest structured-data value (characters, before escaping).
const MAX_SD_VALUE: usize = 128;

/// The first second of the year 10000, which RFC 3339 cannot write.
const YEAR_10000: u64 = 253_402_300_800;

/// The byte order mark that starts a UTF-8 MSG (RFC 5424, section 6.4).
const BOM: &str = "\u{feff}";

/// One message, ready to be cut to what the socket takes: its header, the structured data
/// (RFC 5424 only) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    head: String,
    structured: Option<String>,
    message: String,
    bom: bool,
}

impl Datagram {
    /// `<PRI>TAG[PID]: MESSAGE`.
    pub(crate) fn rfc3164(pri: u8, tag: &str, pid: u32, text: &str) -> Self {
        Self { head: format!("<{pri}>{tag}[{pid}]:"), structured: None, message: one_line(text), bom: false }
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MESSAGE` for an event:
    /// its own time, its host, its kind as MSGID.
    pub(crate) fn rfc5424(
        pri: u8,
        event: &Event,
        tag: &str,
        pid: u32,
        now: SystemTime,
        sd_id: Option<&str>,
        text: &str,
    ) -> Self {
        let header = [&timestamp(event.time, now), &event.host, tag, &pid.to_string(), event.kind.as_str()];
        let structured = sd_id.map_or_else(|| "-".to_owned(), |id| structured_data(id, event));
        Self::rfc5424_with(pri, header, structured, text)
    }

    /// The same for a message about f2b-notify itself (an alert): sent now, from `host`,
    /// MSGID `alert`, no structured data.
    pub(crate) fn rfc5424_alert(pri: u8, host: &str, tag: &str, pid: u32, now: SystemTime, text: &str) -> Self {
        let header = [&timestamp(None, now), host, tag, &pid.to_string(), "alert"];
        Self::rfc5424_with(pri, header, "-".to_owned(), text)
    }

    /// `header`: TIMESTAMP (already written), HOSTNAME, APP-NAME, PROCID, MSGID.
    fn rfc5424_with(pri: u8, header: [&str; 5], structured: String, text: &str) -> Self {
        let [time, host, app, procid, msgid] = header;
        let head = format!(
            "<{pri}>1 {time} {} {} {} {}",
            header_field(host, 255),
            header_field(app, 48),
            header_field(procid, 128),
            header_field(msgid, 32),
        );
        let message = one_line(text);
        let bom = !message.is_ascii();
        Self { head, structured: Some(structured), message, bom }
    }

    /// The datagram in at most `limit` bytes (at least [`MIN_DATAGRAM`] are always allowed):
    /// the message is cut first, with a visible mark; structured data that would leave no room
    /// goes (`-`), the header always stays whole.
    pub fn bytes(&self, limit: usize) -> Vec<u8> {
        let limit = limit.max(MIN_DATAGRAM);
        let mut out = self.head.clone();
        if let Some(sd) = &self.structured {
            out.push(' ');
            // Room for a few words of the message at least; the fields are in it anyway.
            out.push_str(if out.len() + sd.len() + 1 + 64 > limit { "-" } else { sd });
        }
        out.push(' ');
        let bom = if self.bom { BOM } else { "" };
        let room = limit.saturating_sub(out.len() + bom.len());
        out.push_str(bom);
        out.push_str(&fit(&self.message, room));
        out.into_bytes()
    }
}

/// One line: every control character (CR, LF, NUL, tab, escape, C1) and the Unicode line and
/// paragraph separators become a space.
pub(crate) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c }).collect()
}

/// `s` in at most `max` bytes, cut on a character boundary and marked when cut.
fn fit(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let (keep, mark) = if max >= CUT.len() { (max - CUT.len(), CUT) } else { (max, "") };
    let end = (0..=keep).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}{mark}", &s[..end]).into()
}

/// A header field: printable US-ASCII only (anything else, a space included, becomes `_`),
/// at most `max` characters, `-` (the RFC's NILVALUE) when empty.
pub(crate) fn header_field(s: &str, max: usize) -> String {
    let field: String = s.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).take(max).collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// The event's own time (Fail2Ban's ban time) when it has one, else `now`; RFC 3339 in UTC
/// to the microsecond. `-` for a time RFC 3339 cannot write (past the year 9999).
fn timestamp(time: Option<f64>, now: SystemTime) -> String {
    let own = time.filter(|t| t.is_finite() && *t >= 0.0 && *t < YEAR_10000 as f64);
    let t = own.map_or(now, |t| UNIX_EPOCH + Duration::from_secs_f64(t));
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() < YEAR_10000 => humantime::format_rfc3339_micros(t).to_string(),
        _ => "-".to_owned(),
    }
}

/// `[SD-ID jail="…" id="…" failures="…" bantime="…" restored="1" user="…" hostname="…"
/// hostname_confirmed="0" country="…" country_code="…" city="…" asn="…" as_org="…"
/// bancount="…"]`, the fields the event has, each value one line, at most [`MAX_SD_VALUE`]
/// characters, escaped.
fn structured_data(sd_id: &str, event: &Event) -> String {
    let mut out = format!("[{sd_id}");
    let mut param = |name: &str, value: &str| {
        out.push_str(&format!(" {name}=\"{}\"", sd_value(value)));
    };
    param("jail", &event.jail);
    if let Some(id) = &event.id {
        param("id", id);
    }
    if let Some(n) = event.failures {
        param("failures", &n.to_string());
    }
    if let Some(n) = event.bantime {
        param("bantime", &n.to_string());
    }
    if event.restored {
        param("restored", "1");
    }
    if let Some(user) = &event.user {
        param("user", user);
    }
    // What enrichment found, by the names of the template variables and the JSON forms.
    let c = &event.context;
    if let Some(name) = &c.hostname {
        param("hostname", name);
    }
    if let Some(confirmed) = c.hostname_confirmed {
        param("hostname_confirmed", if confirmed { "1" } else { "0" });
    }
    for (name, value) in [("country", &c.country), ("country_code", &c.country_code), ("city", &c.city)] {
        if let Some(v) = value {
            param(name, v);
        }
    }
    if let Some(asn) = c.asn {
        param("asn", &asn.to_string());
    }
    if let Some(org) = &c.as_org {
        param("as_org", org);
    }
    if let Some(n) = event.bancount {
        param("bancount", &n.to_string());
    }
    out.push(']');
    out
}

/// What enrichment found, for the end of the message line: `[Host name: h.example
/// (unconfirmed); Location: Tokyo, Japan (JP); Network: AS64500 Example Net]`; `None` when
/// nothing was found. The repeat is left out: the default text says it already ("the 4th
/// time"), and the structured data has `bancount`. Its values are one line by now (and
/// flattened again with the whole message).
pub(crate) fn context_note(event: &Event) -> Option<String> {
    let found: Vec<String> = event
        .context_fields()
        .into_iter()
        .filter(|(label, _)| *label != "Repeat")
        .map(|(label, value)| format!("{label}: {value}"))
        .collect();
    (!found.is_empty()).then(|| format!("[{}]", found.join("; ")))
}

/// A PARAM-VALUE: one line, cut, with `"`, `\` and `]` escaped (RFC 5424, section 6.3.3).
fn sd_value(s: &str) -> String {
    let line = one_line(s);
    let cut = truncate_chars(&line, MAX_SD_VALUE);
    let mut out = String::with_capacity(cut.len() + 8);
    for c in cut.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An SD-ID for `sd_id`: SD-NAME (1 to 32 of PRINTUSASCII but `=`, space, `]` and `"`) in
/// the form `NAME@PEN`: RFC 5424 keeps names without `@` for IANA's registry, and the part
/// after it must be a private enterprise number (digits, dotted sub-numbers allowed).
pub(crate) fn valid_sd_id(id: &str) -> bool {
    let sd_name = (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_graphic() && !"=]\"".contains(c));
    let Some((name, pen)) = id.split_once('@') else { return false };
    sd_name
        && !name.is_empty()
        && !pen.is_empty()
        && pen.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}
