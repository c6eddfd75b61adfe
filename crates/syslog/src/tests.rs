//! The sink's unit tests: datagrams read back from a socket in a temporary directory and
//! checked against RFC 5424's grammar (a strict parser below) or the local RFC 3164 form,
//! hostile text, every failure class, and the config's checks.

use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2b_notify_core::{Alert, Context, Digest, Event, EventKind, Sink, Templates};
use figment::providers::{Format as _, Toml};
use figment::Figment;

use super::*;

/// A message in RFC 5424 form, taken apart.
#[derive(Debug)]
struct Parsed {
    pri: u8,
    timestamp: String,
    host: String,
    app: String,
    procid: String,
    msgid: String,
    /// Each SD-ELEMENT: its SD-ID and its parameters, values unescaped.
    sd: Vec<(String, Vec<(String, String)>)>,
    bom: bool,
    msg: String,
}

fn sd_name_ok(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic() && !"=]\"".contains(c))
}

/// Parses `bytes` by RFC 5424's ABNF (section 6), failing the test on any deviation.
fn parse5424(bytes: &[u8]) -> Parsed {
    let s = std::str::from_utf8(bytes).expect("a datagram is UTF-8");
    assert!(!s.chars().any(|c| c.is_control()), "control character in {s:?}");
    let rest = s.strip_prefix('<').unwrap_or_else(|| panic!("no PRI: {s:?}"));
    let (pri, rest) = rest.split_once('>').expect("PRI closes");
    assert!((1..=3).contains(&pri.len()) && pri.bytes().all(|b| b.is_ascii_digit()), "PRI {pri:?}");
    let pri: u8 = pri.parse().unwrap();
    assert!(pri <= 191, "PRIVAL {pri}");
    let rest = rest.strip_prefix("1 ").unwrap_or_else(|| panic!("VERSION 1 then SP: {s:?}"));
    let mut parts = rest.splitn(6, ' ');
    let mut next = |what: &str| parts.next().unwrap_or_else(|| panic!("no {what} in {s:?}")).to_owned();
    let (timestamp, host, app, procid, msgid, rest) =
        (next("TIMESTAMP"), next("HOSTNAME"), next("APP-NAME"), next("PROCID"), next("MSGID"), next("SD"));
    if timestamp != "-" {
        let b = timestamp.as_bytes();
        let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
        assert!(
            digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && b[10] == b'T'
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19),
            "TIMESTAMP {timestamp:?}"
        );
        let tail = &timestamp[19..];
        let tail = tail.strip_suffix('Z').unwrap_or_else(|| panic!("TIMESTAMP not in UTC: {timestamp:?}"));
        if !tail.is_empty() {
            let frac = tail.strip_prefix('.').expect("TIME-SECFRAC");
            assert!((1..=6).contains(&frac.len()) && frac.bytes().all(|b| b.is_ascii_digit()), "{timestamp:?}");
        }
        let second: u8 = timestamp[17..19].parse().unwrap();
        assert!(second <= 59, "TIME-SECOND {second}");
    }
    for (name, field, max) in
        [("HOSTNAME", &host, 255), ("APP-NAME", &app, 48), ("PROCID", &procid, 128), ("MSGID", &msgid, 32)]
    {
        assert!((1..=max).contains(&field.len()), "{name} {field:?} has {} characters", field.len());
        assert!(field.chars().all(|c| c.is_ascii_graphic()), "{name} {field:?} is not PRINTUSASCII");
    }
    // STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
    let mut sd = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let after_sd = if rest.starts_with('-') {
        1
    } else {
        loop {
            match chars.next() {
                Some((_, '[')) => {}
                Some((i, _)) => break i,
                None => break rest.len(),
            }
            let mut id = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == ' ' || c == ']' {
                    break;
                }
                id.push(c);
                chars.next();
            }
            assert!(sd_name_ok(&id), "SD-ID {id:?}");
            let mut params = Vec::new();
            loop {
                match chars.next() {
                    Some((_, ']')) => break,
                    Some((_, ' ')) => {}
                    other => panic!("{other:?} in SD-ELEMENT of {s:?}"),
                }
                let mut name = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    name.push(c);
                }
                assert!(sd_name_ok(&name), "PARAM-NAME {name:?}");
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "PARAM-VALUE opens with a quote");
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => {
                            let c = chars.next().map(|(_, c)| c).expect("escaped character");
                            assert!(matches!(c, '"' | '\\' | ']'), "needless escape of {c:?}");
                            value.push(c);
                        }
                        Some('"') => break,
                        Some(']') => panic!("unescaped ] in a PARAM-VALUE of {s:?}"),
                        Some(c) => value.push(c),
                        None => panic!("PARAM-VALUE not closed in {s:?}"),
                    }
                }
                params.push((name, value));
            }
            sd.push((id, params));
        }
    };
    let msg = &rest[after_sd..];
    let msg = if msg.is_empty() { msg } else { msg.strip_prefix(' ').expect("SP before MSG") };
    let (bom, msg) = match msg.strip_prefix('\u{feff}') {
        Some(m) => (true, m),
        None => (false, msg),
    };
    Parsed { pri, timestamp, host, app, procid, msgid, sd, bom, msg: msg.to_owned() }
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(1_700_000_000.5);
    e
}

fn sink(config: Config) -> SyslogSink {
    SyslogSink::new("log", config).unwrap()
}

fn rfc5424(sd_id: Option<&str>) -> Config {
    Config { format: Format::Rfc5424, sd_id: sd_id.map(str::to_owned), ..Config::default() }
}

const NOW: Duration = Duration::from_secs(1_750_000_000);

fn bytes(sink: &SyslogSink, event: &Event) -> Vec<u8> {
    sink.datagram(event, 4242, UNIX_EPOCH + NOW).unwrap().bytes(MAX_DATAGRAM)
}

/// A socket in a temporary directory standing in for the system log.
struct StandIn {
    dir: tempfile::TempDir,
    socket: UnixDatagram,
}

impl StandIn {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixDatagram::bind(dir.path().join("log.sock")).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self { dir, socket }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("log.sock")
    }

    fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0; 65536];
        let n = self.socket.recv(&mut buf).expect("a datagram");
        buf.truncate(n);
        buf
    }

    fn nothing_more(&self) -> bool {
        self.socket.set_nonblocking(true).unwrap();
        let got = self.socket.recv(&mut [0; 16]);
        self.socket.set_nonblocking(false).unwrap();
        got.is_err()
    }
}

#[test]
fn rfc5424_header_fields_and_message() {
    let s = sink(rfc5424(None));
    let p = parse5424(&bytes(&s, &ban()));
    assert_eq!(p.pri, 10 * 8 + 5, "authpriv.notice");
    assert_eq!(p.timestamp, "2023-11-14T22:13:20.500000Z", "the ban's own time");
    assert_eq!(
        (p.host.as_str(), p.app.as_str(), p.procid.as_str(), p.msgid.as_str()),
        ("host.example", "f2b-notify", "4242", "ban")
    );
    assert!(p.sd.is_empty() && !p.bom);
    assert_eq!(p.msg, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
    // Exactly what is on the wire.
    assert_eq!(
        String::from_utf8(bytes(&s, &ban())).unwrap(),
        "<85>1 2023-11-14T22:13:20.500000Z host.example f2b-notify 4242 ban - Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)"
    );
    // A jail start has no time of its own: the time it is sent.
    let start = Event::jail_event(EventKind::Start, "sshd", "host.example");
    let p = parse5424(&bytes(&s, &start));
    assert_eq!((p.pri, p.msgid.as_str()), (10 * 8 + 6, "start"), "authpriv.info");
    assert_eq!(p.timestamp, "2025-06-15T15:06:40.000000Z");
    // A time RFC 3339 cannot write is replaced by the time of sending, and never panics.
    for t in [f64::NAN, -1.0, 1e300, f64::INFINITY] {
        let mut e = ban();
        e.time = Some(t);
        assert_eq!(parse5424(&bytes(&s, &e)).timestamp, "2025-06-15T15:06:40.000000Z", "{t}");
    }
    let far = s.datagram(&start, 1, UNIX_EPOCH + Duration::from_secs(300_000_000_000)).unwrap();
    assert_eq!(parse5424(&far.bytes(MAX_DATAGRAM)).timestamp, "-");
}

#[test]
fn facility_and_severity_make_the_pri() {
    use serde::de::value::{Error, StrDeserializer};
    let names = [
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local7", 23),
    ];
    for (name, code) in names {
        let facility = Facility::deserialize(StrDeserializer::<Error>::new(name)).unwrap();
        assert_eq!(facility.code(), code, "{name}");
        for format in [Format::Rfc3164, Format::Rfc5424] {
            let s = sink(Config { facility, format, ..Config::default() });
            for (kind, severity) in
                [(EventKind::Ban, 5), (EventKind::Unban, 5), (EventKind::Start, 6), (EventKind::Stop, 6)]
            {
                let e = if kind.has_target() {
                    Event::target_event(kind, "sshd", "192.0.2.1", "h")
                } else {
                    Event::jail_event(kind, "sshd", "h")
                };
                let text = String::from_utf8(bytes(&s, &e)).unwrap();
                assert!(text.starts_with(&format!("<{}>", code * 8 + severity)), "{name} {kind}: {text}");
            }
        }
    }
    // The kernel's facility is not a program's to use; unknown names are refused.
    for bad in ["kern", "security", "local8", "AUTHPRIV"] {
        assert!(Facility::deserialize(StrDeserializer::<Error>::new(bad)).is_err(), "{bad}");
    }
}

#[test]
fn rfc3164_is_what_syslog_3_writes() {
    let s = sink(Config::default());
    assert_eq!(
        String::from_utf8(bytes(&s, &ban())).unwrap(),
        "<85>f2b-notify[4242]: Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)"
    );
    let s = sink(Config { tag: "fail2ban.notify".into(), facility: Facility::Local3, ..Config::default() });
    let unban = Event::target_event(EventKind::Unban, "sshd", "2001:db8::1", "h");
    assert_eq!(
        String::from_utf8(bytes(&s, &unban)).unwrap(),
        "<157>fail2ban.notify[4242]: Fail2Ban (sshd) unbanned IP 2001:db8::1"
    );
}

/// A hostile event: CR/LF, NUL, a forged PRI and header, a Unicode line separator, C1 and
/// escape characters in every field the attacker or a careless config reaches.
fn hostile() -> Event {
    let forged = "<13>1 2020-01-01T00:00:00Z forged evil - - - FAKE";
    let mut e = Event::target_event(
        EventKind::Ban,
        "ssh\"d]\\\n<14>x",
        format!("198.51.100.1\r\n{forged}"),
        "h\r\nFAKE HOST\0x",
    );
    e.user = Some(format!("root\r\n{forged}\0\u{1b}[31m\u{2028}\u{85}]\"\\"));
    e.matches = Some(format!("line 1\n{forged}\rline 3\0\u{2029}end"));
    // What enrichment found is the attacker's too: a PTR name is whatever its zone says.
    e.context.hostname = Some(format!("ptr\r\n{forged}]\"\\"));
    e.context.as_org = Some(format!("org\n{forged}\u{2028}"));
    e.context.asn = Some(64500);
    e
}

#[test]
fn hostile_text_stays_one_line_in_both_forms() {
    let templates =
        Templates { ban: Some("{{ jail }}|{{ id }}|{{ user }}|{{ matches }}".into()), ..Templates::default() };
    for format in [Format::Rfc3164, Format::Rfc5424] {
        let sd_id = (format == Format::Rfc5424).then(|| "fail2ban@32473".to_owned());
        let s = sink(Config { format, sd_id, templates: templates.clone(), ..Config::default() });
        let raw = bytes(&s, &hostile());
        let text = String::from_utf8(raw).unwrap();
        assert!(!text.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'), "{format:?}: {text:?}");
        // One record: the real PRI starts it, and the forged ones are words inside the line.
        assert!(text.starts_with("<85>"), "{text}");
        // Five in the message (id, user, matches, host name, network), four more in the
        // structured data (id, user, hostname, as_org).
        let forged = if format == Format::Rfc5424 { 9 } else { 5 };
        assert_eq!(text.matches("<13>").count(), forged, "{text}");
        assert!(text.match_indices("<13>").all(|(i, _)| text[..i].ends_with(' ')), "{text}");
        assert!(text.match_indices("<14>").all(|(i, _)| text[..i].ends_with(' ')), "{text}");
        if format == Format::Rfc5424 {
            let p = parse5424(text.as_bytes());
            // The host's space, CR/LF and NUL cannot shift the fields after it.
            assert_eq!((p.host.as_str(), p.app.as_str(), p.msgid.as_str()), ("h__FAKE_HOST_x", "f2b-notify", "ban"));
            // The structured data reads back as the flattened values, escapes undone.
            let (id, params) = &p.sd[0];
            assert_eq!(id, "fail2ban@32473");
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("jail"), Some("ssh\"d]\\ <14>x"));
            assert_eq!(get("id"), Some("198.51.100.1  <13>1 2020-01-01T00:00:00Z forged evil - - - FAKE"));
            assert_eq!(get("user"), Some("root  <13>1 2020-01-01T00:00:00Z forged evil - - - FAKE  [31m  ]\"\\"));
            assert_eq!(get("failures"), None);
            assert_eq!(get("hostname"), Some("ptr  <13>1 2020-01-01T00:00:00Z forged evil - - - FAKE]\"\\"));
            assert_eq!(get("as_org"), Some("org <13>1 2020-01-01T00:00:00Z forged evil - - - FAKE "));
            assert_eq!(p.sd.len(), 1, "no second element forged");
            assert!(!p.bom, "the flattened message is ASCII: no byte order mark");
            assert!(p.msg.starts_with("ssh\"d]\\ <14>x|198.51.100.1  <13>1"), "{}", p.msg);
        } else {
            assert!(text.starts_with("<85>f2b-notify[4242]: ssh\"d]\\ <14>x|198.51.100.1  <13>1 "), "{text}");
        }
    }
}

#[test]
fn a_message_in_utf8_starts_with_the_byte_order_mark() {
    let s = sink(Config {
        templates: Templates { ban: Some("{{ user }}".into()), ..Templates::default() },
        ..rfc5424(None)
    });
    let mut e = ban();
    e.user = Some("jürgen".into());
    let raw = bytes(&s, &e);
    let p = parse5424(&raw);
    assert!(p.bom && p.msg == "jürgen", "{p:?}");
    assert!(raw.ends_with(b" - \xef\xbb\xbfj\xc3\xbcrgen"), "{raw:?}");
    // Plain ASCII is MSG-ANY: no mark. RFC 3164 has none either.
    e.user = Some("juergen".into());
    assert!(!parse5424(&bytes(&s, &e)).bom);
    let s = sink(Config {
        templates: Templates { ban: Some("{{ user }}".into()), ..Templates::default() },
        ..Config::default()
    });
    e.user = Some("jürgen".into());
    assert_eq!(String::from_utf8(bytes(&s, &e)).unwrap(), "<85>f2b-notify[4242]: jürgen");
}

#[test]
fn structured_data_fields_and_limits() {
    let s = sink(rfc5424(Some("fail2ban@32473")));
    let mut e = ban();
    e.restored = true;
    e.user = Some("é".repeat(1000));
    let p = parse5424(&bytes(&s, &e));
    assert_eq!(p.sd.len(), 1);
    let names: Vec<&str> = p.sd[0].1.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["jail", "id", "failures", "bantime", "restored", "user"]);
    let user = &p.sd[0].1[5].1;
    assert!(user.chars().count() <= 128 && user.ends_with("chars]"), "{user}");
    // A start has only its jail.
    let start = Event::jail_event(EventKind::Start, "sshd", "h");
    assert_eq!(parse5424(&bytes(&s, &start)).sd[0].1, [("jail".to_owned(), "sshd".to_owned())]);
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[test]
fn what_enrichment_found_is_on_the_line_and_in_the_structured_data() {
    let line = "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time \
                [Host name: h.example (unconfirmed); Location: Tokyo, Japan (JP); Network: AS64500 Example Net]";
    let s = sink(Config::default());
    assert_eq!(String::from_utf8(bytes(&s, &enriched(ban()))).unwrap(), format!("<85>f2b-notify[4242]: {line}"));
    let s = sink(rfc5424(Some("fail2ban@32473")));
    let p = parse5424(&bytes(&s, &enriched(ban())));
    assert_eq!(p.msg, line);
    let params: Vec<(&str, &str)> = p.sd[0].1.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        params,
        [
            ("jail", "sshd"),
            ("id", "203.0.113.7"),
            ("failures", "5"),
            ("bantime", "600"),
            ("hostname", "h.example"),
            ("hostname_confirmed", "0"),
            ("country", "Japan"),
            ("country_code", "JP"),
            ("city", "Tokyo"),
            ("asn", "64500"),
            ("as_org", "Example Net"),
            ("bancount", "4"),
        ]
    );
    // Only what is known; a repeat alone adds nothing to the line (the text says it).
    let mut some = ban();
    some.bancount = Some(2);
    some.context.country_code = Some("JP".into());
    let p = parse5424(&bytes(&s, &some));
    assert_eq!(p.msg, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 2nd time [Location: JP]");
    let names: Vec<&str> = p.sd[0].1.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["jail", "id", "failures", "bantime", "country_code", "bancount"]);
    some.context = Context::default();
    assert_eq!(
        parse5424(&bytes(&s, &some)).msg,
        "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 2nd time"
    );
}

#[test]
fn header_fields_are_printable_ascii_and_cut() {
    let s = sink(rfc5424(None));
    let mut e = ban();
    e.host = "x".repeat(300);
    assert_eq!(parse5424(&bytes(&s, &e)).host.len(), 255);
    e.host = "bücher.example".into();
    assert_eq!(parse5424(&bytes(&s, &e)).host, "b_cher.example");
    e.host = String::new();
    assert_eq!(parse5424(&bytes(&s, &e)).host, "-");
}

#[test]
fn long_messages_are_cut_visibly_and_on_a_character_boundary() {
    let templates = Templates { ban: Some("{{ matches }}".into()), ..Templates::default() };
    for format in [Format::Rfc3164, Format::Rfc5424] {
        let s = sink(Config { format, templates: templates.clone(), ..Config::default() });
        let mut e = ban();
        e.matches = Some("é".repeat(100_000));
        let d = s.datagram(&e, 1, SystemTime::now()).unwrap();
        // `matches` itself was cut to 4000 characters first, which fits in 8 KiB.
        let whole = String::from_utf8(d.bytes(MAX_DATAGRAM)).unwrap();
        assert!(whole.ends_with(" chars]") && whole.len() <= MAX_DATAGRAM, "{format:?}: {}", whole.len());
        for limit in [1000, 481, 480, 10] {
            let b = d.bytes(limit);
            assert!(b.len() <= limit.max(480), "{format:?} {limit}: {} bytes", b.len());
            let text = String::from_utf8(b).expect("cut on a character boundary");
            assert!(text.ends_with(" … [cut]"), "{format:?} {limit}: {text}");
        }
    }
    // Structured data that leaves no room goes; the header stays.
    let s = sink(Config { templates, ..rfc5424(Some("a@1")) });
    let mut e = ban();
    e.user = Some("𝄞".repeat(128));
    e.matches = Some("m".repeat(5000));
    let p = parse5424(&s.datagram(&e, 1, SystemTime::now()).unwrap().bytes(480));
    assert!(p.sd.is_empty() && p.msgid == "ban", "{p:?}");
}

#[tokio::test]
async fn datagrams_reach_the_socket_one_per_event() {
    let log = StandIn::new();
    let s = sink(Config { socket: log.path(), ..Config::default() });
    s.send(&ban()).await.unwrap();
    let pid = std::process::id();
    assert_eq!(
        log.recv(),
        format!("<85>f2b-notify[{pid}]: Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)").into_bytes()
    );
    // A digest is one datagram per event, in order.
    let events: Vec<Event> =
        (0..5).map(|i| Event::target_event(EventKind::Ban, "sshd", format!("192.0.2.{i}"), "h")).collect();
    s.send_digest(&Digest::new(events)).await.unwrap();
    for i in 0..5 {
        let text = String::from_utf8(log.recv()).unwrap();
        assert!(text.ends_with(&format!("banned IP 192.0.2.{i}")), "{text}");
    }
    assert!(log.nothing_more());
    // The same through RFC 5424, with the hostile event.
    let s = sink(Config { socket: log.path(), ..rfc5424(Some("fail2ban@32473")) });
    s.send(&hostile()).await.unwrap();
    let p = parse5424(&log.recv());
    assert_eq!((p.procid, p.msgid), (pid.to_string(), "ban".to_owned()));
    assert!(log.nothing_more());
}

#[tokio::test]
async fn alerts_are_one_datagram_each_err_or_notice() {
    let log = StandIn::new();
    let pid = std::process::id();
    let mut alert = Alert {
        subject: "f2b-notify on h: sink `ops` failing since 10:00".into(),
        text: "last error: HTTP 503\n12 event(s) waiting\r\n<13>FAKE".into(),
        recovered: false,
    };
    let said = "f2b-notify on h: sink `ops` failing since 10:00: last error: HTTP 503; 12 event(s) waiting ; <13>FAKE";
    for format in [Format::Rfc3164, Format::Rfc5424] {
        let s = sink(Config { socket: log.path(), format, facility: Facility::Daemon, ..Config::default() });
        assert!(s.carries_alerts());
        for (recovered, pri) in [(false, 3 * 8 + 3), (true, 3 * 8 + 5)] {
            alert.recovered = recovered;
            s.send_alert(&alert).await.unwrap();
            let got = String::from_utf8(log.recv()).unwrap();
            assert!(!got.chars().any(char::is_control), "{got:?}");
            if format == Format::Rfc5424 {
                let p = parse5424(got.as_bytes());
                assert_eq!((p.pri, p.msgid.as_str(), p.procid), (pri, "alert", pid.to_string()), "{got}");
                assert!(p.sd.is_empty() && p.msg == said, "{got}");
            } else {
                assert_eq!(got, format!("<{pri}>f2b-notify[{pid}]: {said}"));
            }
        }
    }
    assert!(log.nothing_more());
}

#[test]
fn preview_is_the_datagram_and_sends_nothing() {
    let log = StandIn::new();
    let s = sink(Config { socket: log.path(), ..rfc5424(Some("fail2ban@32473")) });
    let shown = s.preview(&ban()).unwrap();
    let (first, datagram) = shown.split_once('\n').unwrap();
    assert_eq!(first, format!("a datagram to {} ({} bytes):", log.path().display(), datagram.len()));
    let p = parse5424(datagram.as_bytes());
    assert_eq!((p.procid, p.timestamp.as_str()), (std::process::id().to_string(), "2023-11-14T22:13:20.500000Z"));
    assert_eq!(p.msg, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)");
    assert!(log.nothing_more());
}

#[tokio::test]
async fn a_missing_or_unread_socket_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let s = sink(Config { socket: missing.clone(), ..Config::default() });
    let err = s.send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.message().contains("does not exist") && err.message().contains("missing.sock"), "{err}");
    // A digest fails before sending anything.
    let err = s.send_digest(&Digest::new(vec![ban(), ban()])).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    // A socket left behind by a system log that is gone (restarting): nobody reads it.
    let left = dir.path().join("left.sock");
    drop(UnixDatagram::bind(&left).unwrap());
    let err = sink(Config { socket: left, ..Config::default() }).send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.message().contains("nothing reads"), "{err:?}");
}

#[tokio::test]
async fn what_only_a_fix_can_change_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let stream = dir.path().join("stream.sock");
    let _listener = UnixListener::bind(&stream).unwrap();
    let not_dir = file.join("log.sock");
    for (path, want) in [
        (file.as_path(), "is not a socket"),
        (dir.path(), "is not a socket"),
        (stream.as_path(), "not a datagram socket"),
        (not_dir.as_path(), "cannot use"),
    ] {
        let err = sink(Config { socket: path.to_owned(), ..Config::default() }).send(&ban()).await.unwrap_err();
        assert!(err.is_permanent() && err.message().contains(want), "{}: {err:?}", path.display());
    }
}

#[tokio::test]
async fn a_full_queue_is_waited_for_then_transient() {
    // Nobody reads: the kernel's queue for the socket fills up (net.unix.max_dgram_qlen
    // datagrams, or the sender's buffer), and the send waits `timeout`, not for ever.
    let log = StandIn::new();
    let s = sink(Config { socket: log.path(), timeout: Duration::from_millis(300), ..Config::default() });
    let events: Vec<Event> = (0..5000)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("10.0.{}.{}", i / 256, i % 256), "h"))
        .collect();
    let started = std::time::Instant::now();
    let err = s.send_digest(&Digest::new(events.clone())).await.unwrap_err();
    assert!(err.is_transient() && err.message().contains("queue is full"), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    // A reader that keeps up, slowly: everything arrives, in order, once.
    while !log.nothing_more() {}
    let path = log.path();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 5000 {
            got.push(String::from_utf8(log.recv()).unwrap());
            if got.len() % 500 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        got
    });
    // The longest wait a config may ask for: a busy test machine may starve the reader.
    let s = sink(Config { socket: path, timeout: MAX_TIMEOUT, ..Config::default() });
    s.send_digest(&Digest::new(events)).await.unwrap();
    let got = reader.join().unwrap();
    for (i, text) in got.iter().enumerate() {
        assert!(text.ends_with(&format!("banned IP 10.0.{}.{}", i / 256, i % 256)), "{i}: {text}");
    }
}

#[tokio::test]
async fn a_datagram_too_long_for_the_socket_is_cut_and_sent() {
    let log = StandIn::new();
    // The smallest send buffer the kernel allows (about 4.5 KiB) refuses an 8 KiB datagram.
    let socket = UnixDatagram::unbound().unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&socket, 1).unwrap();
    socket.connect(log.path()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let connection = socket::Connection::with(socket, &log.path(), Duration::from_secs(1));
    let templates = Templates { ban: Some("{{ matches }}".into()), ..Templates::default() };
    for format in [Format::Rfc3164, Format::Rfc5424] {
        let s = sink(Config { format, templates: templates.clone(), ..Config::default() });
        let mut e = ban();
        e.matches = Some("é".repeat(3_999));
        let d = s.datagram(&e, 7, SystemTime::now()).unwrap();
        let whole = d.bytes(MAX_DATAGRAM);
        assert!(whole.len() > 7_900 && !whole.ends_with(" … [cut]".as_bytes()), "{} bytes", whole.len());
        connection.send(&d).await.unwrap();
        let got = String::from_utf8(log.recv()).expect("cut on a character boundary");
        assert!(got.len() <= whole.len() / 2, "{} bytes", got.len());
        assert!(got.ends_with("éé … [cut]"), "{format:?}: …{}", &got[got.len() - 40..]);
        if format == Format::Rfc5424 {
            assert_eq!(parse5424(got.as_bytes()).procid, "7");
        } else {
            assert!(got.starts_with("<85>f2b-notify[7]: éé"), "{}", &got[..40]);
        }
    }
}

fn load(toml: &str) -> Result<Config, String> {
    Figment::new().merge(Toml::string(toml)).extract::<Config>().map_err(|e| e.to_string())
}

#[test]
fn config_defaults_and_checks() {
    let c = load("").unwrap();
    assert_eq!(c.facility, Facility::Authpriv);
    assert_eq!(c.tag, "f2b-notify");
    assert_eq!(c.socket, Path::new("/dev/log"));
    assert_eq!(c.format, Format::Rfc3164);
    assert_eq!((c.sd_id, c.timeout), (None, Duration::from_secs(5)));
    let c = load("facility = \"local5\"\ntag = \"f2b_web-1.x\"\nsocket = \"/run/x.sock\"\nformat = \"rfc5424\"\nsd_id = \"f2b@32473.1\"\ntimeout = 0.5\n[templates]\nban = \"{{ id }}\"\n").unwrap();
    assert_eq!((c.facility, c.format, c.timeout), (Facility::Local5, Format::Rfc5424, Duration::from_millis(500)));
    assert_eq!((c.tag.as_str(), c.sd_id.as_deref()), ("f2b_web-1.x", Some("f2b@32473.1")));
    for (bad, want) in [
        ("tag = \"f2b notify\"", "`tag` `f2b notify` must be 1 to 32"),
        ("tag = \"\"", "`tag` `` must be"),
        ("tag = \"-x\"", "starting with a letter or a digit"),
        ("tag = \"f2b[1]:\"", "`tag`"),
        (&format!("tag = \"{}\"", "a".repeat(33)), "`tag`"),
        ("tag = \"é\"", "`tag`"),
        ("socket = \"dev/log\"", "`socket` `dev/log` must be an absolute path"),
        (&format!("socket = \"/{}\"", "s".repeat(107)), "longer than a Unix socket path"),
        ("sd_id = \"fail2ban\"", "`sd_id` `fail2ban` must be NAME@PEN"),
        ("sd_id = \"f2b@x\"", "`sd_id`"),
        ("sd_id = \"f 2b@1\"", "`sd_id`"),
        ("sd_id = \"f=b@1\"", "`sd_id`"),
        ("sd_id = \"@1\"", "`sd_id`"),
        (&format!("sd_id = \"{}@1\"", "a".repeat(31)), "`sd_id`"),
        ("timeout = 0", "`timeout` = 0 must be more than 0"),
        ("timeout = 31", "at most 30 seconds"),
        ("facility = \"kern\"", "found `kern`"),
        ("format = \"json\"", "found `json`"),
        ("sockett = \"/dev/log\"", "found `sockett`"),
    ] {
        let err = load(bad).expect_err(bad);
        assert!(err.contains(want), "{bad}: {err}");
    }
    // Structured data needs RFC 5424; a template that does not compile is said at once.
    let err = SyslogSink::new("x", Config { sd_id: Some("a@1".into()), ..Config::default() }).unwrap_err();
    assert!(err.to_string().contains("`sd_id` needs `format = \"rfc5424\"`"), "{err}");
    let t = Templates { stop: Some("{% if %}".into()), ..Templates::default() };
    assert!(SyslogSink::new("x", Config { templates: t, ..Config::default() }).is_err());
}

#[test]
fn check_says_when_the_socket_is_not_there() {
    let log = StandIn::new();
    assert!(sink(Config { socket: log.path(), ..Config::default() }).check().is_empty());
    let missing = log.dir.path().join("nope.sock");
    let warnings = sink(Config { socket: missing, ..Config::default() }).check();
    assert!(warnings.len() == 1 && warnings[0].contains("nope.sock does not exist now"), "{warnings:?}");
    let file = log.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let warnings = sink(Config { socket: file, ..Config::default() }).check();
    assert!(warnings.len() == 1 && warnings[0].contains("is not a socket"), "{warnings:?}");
}
