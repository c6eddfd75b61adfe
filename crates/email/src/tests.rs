//! The email sink against a real SMTP server on loopback (aiosmtpd, started by the test on
//! port 0 and stopped by its PID), and the sendmail transport against a recording stand-in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use f2b_notify_core::{Context, Event, EventKind, Secret, Sink, SinkError};
use serde_json::Value;

use super::{Config, EmailSink, OneOrMany};

const PASSWORD: &str = "SECRET-smtp-pass";

/// A running `tests/smtp_server.py`.
struct Smtp {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtp {
    fn start(args: &[&str]) -> Self {
        assert!(
            Command::new("/usr/bin/python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success()),
            "python3-aiosmtpd is not installed: the README's test command installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let portfile = dir.path().join("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--portfile")
            .arg(&portfile)
            .arg("--outdir")
            .arg(&out)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the SMTP server");
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&portfile) {
                break p.trim().parse().unwrap();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "SMTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, port, out, _dir: dir }
    }

    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(msg: &'a Value, name: &str) -> Vec<&'a str> {
    msg["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

fn base(url: String) -> Config {
    Config {
        url: Some(url),
        from: Some("Fail2Ban <fail2ban@example.com>".into()),
        to: OneOrMany::Many(vec!["ops@example.com".into(), "Sec Team <sec@example.com>".into()]),
        timeout: Some(5.0),
        ..Config::default()
    }
}

fn ban() -> Event {
    let mut e = Event::target_event(EventKind::Ban, "sshd", "203.0.113.7", "host.example");
    e.failures = Some(5);
    e.bantime = Some(600);
    e.time = Some(1_700_000_000.0);
    e.user = Some("root".into());
    e.matches = Some("Nov 14 sshd[1]: Failed password for root from 203.0.113.7\nNov 14 sshd[2]: Failed password for root from 203.0.113.7".into());
    e
}

fn assert_no_secret(e: &SinkError) {
    assert!(!e.to_string().contains("SECRET") && !format!("{e:?}").contains("SECRET"), "{e:?}");
}

/// A test CA and a server certificate for localhost / 127.0.0.1 signed by it, as PEM files.
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "f2b-notify test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_pem, cert_pem, key_pem) = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    (ca_pem, cert_pem, key_pem)
}

#[tokio::test]
async fn plain_smtp_message_parsed_back() {
    let server = Smtp::start(&[]);
    let mut cfg = base(format!("smtp://127.0.0.1:{}", server.port));
    cfg.cc = OneOrMany::One("audit@example.com".into());
    cfg.reply_to = Some("noc@example.com".into());
    let sink = EmailSink::new("mail", cfg).unwrap();
    sink.send(&ban()).await.unwrap();
    sink.send(&Event::target_event(EventKind::Unban, "sshd", "203.0.113.7", "host.example")).await.unwrap();
    let msgs = server.messages();
    assert_eq!(msgs.len(), 2);
    let m = &msgs[0];
    assert_eq!(m["mail_from"], "fail2ban@example.com");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.com", "sec@example.com", "audit@example.com"]));
    assert_eq!(header(m, "Subject"), ["[Fail2Ban] sshd: banned 203.0.113.7 from host.example"]);
    assert_eq!(header(m, "From"), ["Fail2Ban <fail2ban@example.com>"]);
    assert_eq!(header(m, "To"), ["ops@example.com, Sec Team <sec@example.com>"]);
    assert_eq!(header(m, "Cc"), ["audit@example.com"]);
    assert_eq!(header(m, "Reply-To"), ["noc@example.com"]);
    assert_eq!(header(m, "Date").len(), 1);
    let id = header(m, "Message-ID");
    assert!(id.len() == 1 && id[0].starts_with("<f2b-notify.ban.") && id[0].ends_with("@example.com>"), "{id:?}");
    // Ban and unban of one address share the thread id; message ids differ.
    let thread = header(m, "References");
    assert_eq!(thread, ["<f2b-notify.host.example.sshd.203.0.113.7@example.com>"]);
    assert_eq!(header(&msgs[1], "References"), thread);
    assert_eq!(header(&msgs[1], "In-Reply-To"), thread);
    assert_ne!(header(&msgs[1], "Message-ID"), id);
    assert_eq!(header(&msgs[1], "Subject"), ["[Fail2Ban] sshd: unbanned 203.0.113.7 from host.example"]);
    let text = m["text"].as_str().unwrap();
    assert!(text.starts_with("Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n\n"), "{text}");
    for want in [
        "Jail:      sshd",
        "Address:   203.0.113.7",
        "Failures:  5",
        "Ban time:  10 min",
        "Time:      2023-11-14T22:13:20Z",
        "Host:      host.example",
        "User:      root",
        "Matched log lines:\n  Nov 14 sshd[1]: Failed password",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert!(m["html"].is_null(), "no HTML part unless asked");
    assert_eq!(m["tls"], false);
}

#[tokio::test]
async fn a_digest_is_one_mail_naming_every_address() {
    let server = Smtp::start(&[]);
    let sink = EmailSink::new("mail", base(format!("smtp://127.0.0.1:{}", server.port))).unwrap();
    let mut events: Vec<Event> = (0..120)
        .map(|i| Event::target_event(EventKind::Ban, "sshd", format!("198.18.0.{i}"), "host.example"))
        .collect();
    events.push(Event::target_event(EventKind::Unban, "web", "198.18.1.1", "host.example"));
    sink.send_digest(&f2b_notify_core::Digest::new(events)).await.unwrap();
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(header(&msgs[0], "Subject"), ["[Fail2Ban] host.example: 120 bans, 1 unban in 2 jails"]);
    let text = msgs[0]["text"].as_str().unwrap();
    for i in 0..120 {
        assert!(text.contains(&format!("198.18.0.{i},")) || text.contains(&format!("198.18.0.{i}\n")), "{i} missing");
    }
    assert!(text.contains("web:\n  unbanned 1: 198.18.1.1\n"), "{text}");
}

/// What enrichment finds about a Japanese address, and Fail2Ban's 4th ban of it.
fn enriched(mut e: Event) -> Event {
    e.bancount = Some(4);
    e.context = Context::example();
    e
}

#[tokio::test]
async fn what_enrichment_found_is_in_the_body_and_a_digest_says_where_the_bans_come_from() {
    let server = Smtp::start(&[]);
    let mut cfg = base(format!("smtp://127.0.0.1:{}", server.port));
    cfg.html = true;
    let sink = EmailSink::new("mail", cfg).unwrap();
    sink.send(&enriched(ban())).await.unwrap();
    let mut events: Vec<Event> = (1..=3)
        .map(|i| enriched(Event::target_event(EventKind::Ban, "sshd", format!("198.18.0.{i}"), "host.example")))
        .collect();
    events[2].context.asn = Some(64501);
    events[2].context.as_org = Some("Other Net".into());
    sink.send_digest(&f2b_notify_core::Digest::new(events)).await.unwrap();
    let msgs = server.messages();
    // The default subject is as it was.
    assert_eq!(header(&msgs[0], "Subject"), ["[Fail2Ban] sshd: banned 203.0.113.7 from host.example"]);
    let text = msgs[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s), the 4th time\n\n"), "{text}");
    assert!(
        text.contains(
            "User:      root\nHost name: h.example (unconfirmed)\nLocation:  Tokyo, Japan (JP)\n\
             Network:   AS64500 Example Net\nRepeat:    4th ban\n"
        ),
        "{text}"
    );
    let html = msgs[0]["html"].as_str().unwrap();
    assert!(
        html.contains("<tr><th align=\"left\">Host name</th><td><code>h.example (unconfirmed)</code></td></tr>"),
        "{html}"
    );
    let digest = msgs[1]["text"].as_str().unwrap();
    assert!(
        digest.starts_with(
            "Fail2Ban on host.example: 3 bans in 1 jail\n\
             Banned: 3 addresses, 2 of them from AS64500 Example Net, 1 from AS64501 Other Net; countries: Japan 3\n"
        ),
        "{digest}"
    );
    assert_eq!(header(&msgs[1], "Subject"), ["[Fail2Ban] host.example: 3 bans in 1 jail"]);
}

#[tokio::test]
async fn log_text_never_reaches_a_header() {
    let server = Smtp::start(&[]);
    let mut cfg = base(format!("smtp://127.0.0.1:{}", server.port));
    // Even a subject template that asks for the user, or the PTR name (the attacker's own
    // reverse zone's), gets nothing of them.
    cfg.subject = Some("{{ jail }} {{ user }}{{ matches }} {{ id }}{{ hostname }} [{{ context }}]".into());
    cfg.html = true;
    let sink = EmailSink::new("mail", cfg).unwrap();
    let mut e = ban();
    e.jail = "sshd\r\nX-Injected: jail".into();
    e.user = Some("evil\r\nBcc: victim@example.net".into());
    e.matches = Some("line\r\nX-Injected: matches\n<script>alert(1)</script>".into());
    e.context.hostname = Some("ptr\r\nBcc: ptr-victim@example.net <b>x</b>".into());
    e.context.country = Some("Land\r\nX-Injected: country <script>x</script>".into());
    e.context.country_code = Some("XX".into());
    sink.send(&e).await.unwrap();
    let m = &server.messages()[0];
    let raw = m["raw_headers"].as_str().unwrap();
    assert!(!raw.contains("evil") && !raw.contains("victim") && !raw.contains("Bcc"), "{raw}");
    assert!(!raw.contains("ptr"), "{raw}");
    assert!(!raw.lines().any(|l| l.starts_with("X-Injected")), "{raw}");
    assert_eq!(m["rcpt_tos"].as_array().unwrap().len(), 2);
    // The country stays (a subject may want it), on the subject's one line.
    assert_eq!(
        header(m, "Subject"),
        ["sshd X-Injected: jail 203.0.113.7 [Land X-Injected: country <script>x</script> (XX)]"]
    );
    // The log text is in the body, as data.
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("User:      evil  Bcc: victim@example.net"), "{text}");
    assert!(text.contains("\nHost name: ptr  Bcc: ptr-victim@example.net <b>x</b>\n"), "{text}");
    assert!(text.contains("\nLocation:  Land  X-Injected: country <script>x</script> (XX)\n"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("Bcc") || l.starts_with("X-Injected")), "{text}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"), "{html}");
    assert!(html.contains("<code>ptr  Bcc: ptr-victim@example.net &lt;b&gt;x&lt;/b&gt;</code>"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
}

#[tokio::test]
async fn a_cr_lf_in_the_id_fakes_no_line_in_the_body_or_the_digest() {
    let server = Smtp::start(&[]);
    let mut cfg = base(format!("smtp://127.0.0.1:{}", server.port));
    cfg.html = true;
    let sink = EmailSink::new("mail", cfg).unwrap();
    let evil = "198.51.100.1\r\nFAKE LINE: banned 10.0.0.1";
    let mut e = ban();
    e.id = Some(evil.into());
    e.ip = None;
    e.host = "host.example\r\nFAKE LINE: host".into();
    sink.send(&e).await.unwrap();
    let digest = vec![e.clone(), Event::target_event(EventKind::Unban, "sshd", evil, "host.example")];
    sink.send_digest(&f2b_notify_core::Digest::new(digest)).await.unwrap();
    let msgs = server.messages();
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        let text = m["text"].as_str().unwrap();
        assert!(!text.lines().any(|l| l.trim_start().starts_with("FAKE")), "{text}");
        let raw = m["raw_headers"].as_str().unwrap();
        assert!(!raw.lines().any(|l| l.starts_with("FAKE")), "{raw}");
    }
    let text = msgs[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Fail2Ban (sshd) banned 198.51.100.1  FAKE LINE: banned 10.0.0.1 (not an IP address) for 5 failure(s)\n\n"
        ),
        "{text}"
    );
    assert!(text.contains("Banned id: 198.51.100.1  FAKE LINE: banned 10.0.0.1 (not an IP address)\n"), "{text}");
    let html = msgs[0]["html"].as_str().unwrap();
    assert!(!html.contains("\nFAKE") && !html.contains("\rFAKE"), "{html}");
    let digest = msgs[1]["text"].as_str().unwrap();
    assert!(digest.contains("  banned 1: 198.51.100.1  FAKE LINE: banned 10.0.0.1\n"), "{digest}");
    assert!(digest.contains("  unbanned 1: 198.51.100.1  FAKE LINE: banned 10.0.0.1\n"), "{digest}");
}

#[test]
fn check_warns_when_the_password_would_travel_in_clear() {
    let mut cfg = base("smtp://mail.example.com:587".into());
    cfg.username = Some("f2b".into());
    cfg.password = Some(Secret::new(PASSWORD));
    for (url, warns) in [
        ("smtp://mail.example.com:587", true),
        ("smtp://mail.example.com:587?tls=opportunistic", true),
        ("smtp://10.0.0.1", true),
        ("smtp://mail.example.com:587?tls=required", false),
        ("smtps://mail.example.com", false),
        ("smtp://127.0.0.1:25", false),
        ("smtp://localhost:25", false),
        ("smtp://[::1]:25", false),
    ] {
        let sink = EmailSink::new("mail", Config { url: Some(url.into()), ..cfg.clone() }).unwrap();
        let lines = sink.check();
        assert_eq!(lines.iter().any(|l| l.contains("unencrypted")), warns, "{url}: {lines:?}");
        assert!(!lines.join(" ").contains("SECRET"), "{lines:?}");
    }
    // Without a password nothing secret travels: no warning for a plain relay.
    let sink = EmailSink::new("mail", base("smtp://mail.example.com:25".into())).unwrap();
    assert!(sink.check().is_empty());
}

#[tokio::test]
async fn auth_plain_and_login() {
    for mech in ["PLAIN", "LOGIN"] {
        let server = Smtp::start(&["--auth", &format!("f2b:{PASSWORD}"), "--auth-mech", mech]);
        let mut cfg = base(format!("smtp://127.0.0.1:{}", server.port));
        cfg.username = Some("f2b".into());
        cfg.password = Some(Secret::new(PASSWORD));
        let sink = EmailSink::new("mail", cfg.clone()).unwrap();
        assert!(!format!("{sink:?}").contains("SECRET"), "password in Debug");
        sink.send(&ban()).await.unwrap();
        assert_eq!(server.messages()[0]["auth_login"], format!("{mech}:f2b"));

        cfg.password = Some(Secret::new("SECRET-wrong"));
        let err = EmailSink::new("mail", cfg).unwrap().send(&ban()).await.unwrap_err();
        assert!(err.is_permanent(), "{mech}: {err:?}");
        assert!(err.to_string().contains("535"), "{err}");
        assert_no_secret(&err);
    }
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let server = Smtp::start(&["--starttls", cert, key]);
    let mut cfg = base(format!("smtp://localhost:{}?tls=required", server.port));
    cfg.ca_file = Some(ca.clone());
    EmailSink::new("mail", cfg).unwrap().send(&ban()).await.unwrap();
    assert_eq!(server.messages()[0]["tls"], true);
    // Without the CA the server is not trusted: a permanent failure, no mail.
    let err = EmailSink::new("mail", base(format!("smtp://localhost:{}?tls=required", server.port)))
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("the server's TLS certificate is not trusted"), "{err}");
    assert_eq!(server.messages().len(), 1);

    let server = Smtp::start(&["--tls", cert, key]);
    let mut cfg = base(format!("smtps://127.0.0.1:{}", server.port));
    cfg.ca_file = Some(ca);
    cfg.username = None;
    EmailSink::new("mail", cfg).unwrap().send(&ban()).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn server_refusals_are_classified() {
    let server = Smtp::start(&["--reject-rcpt", "451 4.3.0 Try again later"]);
    let err = EmailSink::new("mail", base(format!("smtp://127.0.0.1:{}", server.port)))
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("Try again later"), "{err}");

    let server = Smtp::start(&["--reject-rcpt", "550 5.1.1 No such user"]);
    let err = EmailSink::new("mail", base(format!("smtp://127.0.0.1:{}", server.port)))
        .unwrap()
        .send(&ban())
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("No such user"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_and_dead_one_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // accept, never greet
        }
    });
    let mut cfg = base(format!("smtp://127.0.0.1:{port}"));
    cfg.timeout = Some(0.5);
    let started = Instant::now();
    let err = EmailSink::new("mail", cfg).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    task.abort();
    let _ = task.await;

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = EmailSink::new("mail", base(format!("smtp://127.0.0.1:{dead}"))).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn sendmail_transport_with_a_recording_stand_in() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sendmail");
    let record = dir.path().join("record");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{r}.args'\ncat > '{r}.stdin'\n", r = record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = Config { url: None, sendmail: Some(script.clone()), ..base(String::new()) };
    let sink = EmailSink::new("mail", cfg).unwrap();
    let mut e = ban();
    e.user = Some("--help; rm -rf /".into());
    sink.send(&e).await.unwrap();
    let args = std::fs::read_to_string(dir.path().join("record.args")).unwrap();
    assert_eq!(args, "-i\n-f\nfail2ban@example.com\n--\nops@example.com\nsec@example.com\n");
    let stdin = std::fs::read_to_string(dir.path().join("record.stdin")).unwrap();
    assert!(stdin.contains("Subject: [Fail2Ban] sshd: banned 203.0.113.7 from host.example"), "{stdin}");

    // A sendmail that fails is a permanent error; one that hangs hits the timeout.
    std::fs::write(&script, "#!/bin/sh\necho 'no such user' >&2\nexit 67\n").unwrap();
    let err = sink.send(&ban()).await.unwrap_err();
    assert!(err.is_permanent() && err.to_string().contains("sendmail"), "{err:?}");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 5\n").unwrap();
    let cfg = Config { url: None, sendmail: Some(script), timeout: Some(0.3), ..base(String::new()) };
    let err = EmailSink::new("mail", cfg).unwrap().send(&ban()).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("no answer within"), "{err:?}");
}

/// An address lettre refuses is named with its value and what is wrong with it, never
/// lettre's bare "Invalid input".
#[test]
fn a_bad_address_says_what_is_wrong() {
    let ok = base("smtp://127.0.0.1:25".into());
    let cases: [(&str, &str, &str); 18] = [
        ("to", "ops-at-example.com", "it has no `@`; write `ops@example.com` or `Ops <ops@example.com>`"),
        ("to", "", "it is empty"),
        ("to", "a@example.com, b@example.com", "give a list, `to = [\"a@example.com\", \"b@example.com\"]`"),
        ("to", "a@example.com b@example.com", "more than one address"),
        ("from", "a@example.com;b@example.com", "more than one address; `from` takes one"),
        ("to", "Ops <ops@example.com", "angle brackets do not pair up"),
        ("to", "ops@example.com>", "angle brackets do not pair up"),
        ("to", "Ops <ops@example.com> and more", "text after the `>`"),
        ("to", "Ops Team ops@example.com", "`Ops Team <ops@example.com>`"),
        ("to", "ops@exa mple.com", "it holds a space"),
        ("to", "ops@@example.com", "more than one `@`"),
        ("to", "@example.com", "nothing before the `@`"),
        ("to", "ops@", "no domain after the `@`"),
        ("to", "ops@[192.0.2.1]", "address literal"),
        ("reply_to", "ops@example..com", "the domain `example..com` is not a host name"),
        ("cc", "ops@-example.com", "the domain `-example.com` is not a host name"),
        ("to", "\"a b\"@example.com", "the part before the `@` (`\"a b\"`) is not valid"),
        ("to", ".ops@example.com", "the part before the `@` (`.ops`) is not valid: a dot at an end"),
    ];
    for (key, value, why) in cases {
        let mut cfg = ok.clone();
        match key {
            "to" => cfg.to = OneOrMany::One(value.into()),
            "cc" => cfg.cc = OneOrMany::Many(vec!["fine@example.com".into(), value.into()]),
            "from" => cfg.from = Some(value.into()),
            _ => cfg.reply_to = Some(value.into()),
        }
        let err = EmailSink::new("mail", cfg).unwrap_err().to_string();
        assert!(err.starts_with(&format!("`{key}` = {value:?} is not an email address: ")), "{err}");
        assert!(err.contains(why), "{err:?} lacks {why:?}");
        assert!(!err.to_lowercase().contains("invalid input"), "{err}");
    }
}

#[test]
fn config_errors_name_the_bad_value() {
    let ok = base("smtp://127.0.0.1:25".into());
    let cases: Vec<(Config, &str)> = vec![
        (Config { from: Some("not an address".into()), ..ok.clone() }, "`from` = \"not an address\""),
        (
            Config { to: OneOrMany::Many(vec!["a@example.com".into(), "bad@@x".into()]), ..ok.clone() },
            "`to` = \"bad@@x\"",
        ),
        (Config { to: OneOrMany::None, ..ok.clone() }, "missing `to`"),
        (Config { cc: OneOrMany::One("a\nb@example.com".into()), ..ok.clone() }, "`cc`"),
        (Config { reply_to: Some("x".into()), ..ok.clone() }, "`reply_to` = \"x\""),
        (Config { url: Some(format!("smtp://user:{PASSWORD}@host:25")), ..ok.clone() }, "must not hold credentials"),
        // Without a scheme too, and before any other message could quote it.
        (Config { url: Some(format!("user:{PASSWORD}@host:x")), ..ok.clone() }, "must not hold credentials"),
        (Config { url: Some("http://host".into()), ..ok.clone() }, "scheme must be smtp or smtps"),
        (Config { url: Some("smtp://host:x".into()), ..ok.clone() }, "port"),
        (Config { url: Some("smtp://host?tls=maybe".into()), ..ok.clone() }, "tls=required"),
        (Config { url: None, ..ok.clone() }, "missing `url`"),
        (Config { sendmail: Some("/usr/sbin/sendmail".into()), ..ok.clone() }, "not both"),
        (Config { username: Some("u".into()), ..ok.clone() }, "`username` needs `password`"),
        (Config { timeout: Some(120.0), ..ok.clone() }, "`timeout`"),
        (Config { subject: Some("{% if %}".into()), ..ok.clone() }, "`subject`"),
        (
            Config { ca_file: Some("/nonexistent/ca.pem".into()), url: Some("smtps://h".into()), ..ok.clone() },
            "cannot read `ca_file`",
        ),
    ];
    for (cfg, want) in cases {
        let err = EmailSink::new("mail", cfg).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}

#[test]
fn a_dry_run_shows_the_mail_as_sent_and_never_the_password() {
    let mut cfg = base("smtp://mail.example.com:587?tls=required".into());
    cfg.username = Some("f2b".into());
    cfg.password = Some(Secret::new(PASSWORD));
    let sink = EmailSink::new("mail", cfg).unwrap();
    let shown = sink.preview(&ban()).unwrap();
    assert!(shown.starts_with("a mail sent over SMTP:\n"), "{shown}");
    assert!(shown.contains("\r\nSubject: ") && shown.contains("\r\nTo: "), "{shown}");
    assert!(shown.contains("203.0.113.7"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
}
