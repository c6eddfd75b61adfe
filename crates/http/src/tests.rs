//! The shared HTTP layer's rules: what is retried, what a wait hint may be, what an error may
//! quote, and that no answer or header value can be turned against the worker.

use super::*;

#[test]
fn the_status_table() {
    let w = Some(Duration::from_secs(3));
    for (status, transient) in [
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (302, false),
        (413, false),
        (408, true),
        (429, true),
        (500, true),
        (501, false),
        (502, true),
        (503, true),
        (504, true),
    ] {
        let e = classify_status(status, w, describe("x", Some(status), None));
        assert_eq!(e.is_transient(), transient, "{status}");
        assert!(e.to_string().contains(&format!("(HTTP {status})")), "{e}");
        if matches!(status, 429 | 500 | 502..=504) {
            assert_eq!(e.retry_after_hint(), w, "{status}");
        }
    }
}

#[test]
fn retry_after_headers_are_bounded_whole_seconds() {
    let s = |d: u64| Some(Duration::from_secs(d));
    for (value, wait) in [
        ("7", s(7)),
        (" 30 ", s(30)),
        ("3600", s(3600)),
        ("3601", None),
        ("18446744073709551615", None),
        ("18446744073709551616", None),
        ("-5", None),
        ("1e9", None),
        ("inf", None),
        ("NaN", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ] {
        assert_eq!(parse_retry_after(Some(value)), wait, "{value}");
    }
    assert_eq!(parse_retry_after(None), None);
}

#[test]
fn waits_from_json_bodies() {
    assert_eq!(wait_from_secs(0.64), Some(Duration::from_millis(640)));
    assert_eq!(wait_from_secs(35.0), Some(Duration::from_secs(35)));
    assert_eq!(wait_from_secs(0.0001), Some(Duration::from_millis(1)));
    assert_eq!(wait_from_millis(2000.0), Some(Duration::from_secs(2)));
    for bad in [-1.0, f64::NAN, f64::INFINITY, 3600.5, 1e300] {
        assert_eq!(wait_from_secs(bad), None, "{bad}");
    }
}

#[test]
fn url_problems_in_words() {
    let problem = |u: &str| url_problem(u, &Url::parse(u).unwrap_err());
    assert_eq!(problem("slack.com/api/"), "it has no scheme: write it as https://…");
    assert_eq!(problem(""), "it is empty");
    assert_eq!(problem("https://exa mple.com/"), "it holds a space or a line break");
    assert_eq!(problem("https://example.com:99999/"), "invalid port number");
}

#[test]
fn secret_urls_are_never_quoted() {
    for bad in ["hooks.example.com/SECRET", "ftp://example.com/SECRET", "https://exa mple.com/SECRET", "SECRET"] {
        let e = parse_url(bad, "url", UrlKind::Secret, "the URL").unwrap_err().to_string();
        assert!(!e.contains("SECRET") && e.starts_with("`url` "), "{e}");
    }
    let e = parse_url("ftp://ntfy.example/alerts", "url", UrlKind::Public, "the token").unwrap_err().to_string();
    assert!(e.contains("ftp://ntfy.example/alerts"), "{e}");
    let (url, warning) = parse_url("https://ntfy.example/alerts", "url", UrlKind::Public, "the token").unwrap();
    assert_eq!((url.as_str(), warning), ("https://ntfy.example/alerts", None));
}

#[test]
fn plain_http_warns_unless_loopback() {
    let warn = |u: &str| cleartext_warning(&Url::parse(u).unwrap(), "url", "the token");
    for quiet in [
        "https://hooks.slack.com/services/T0/B0/X",
        "http://127.0.0.1:8080/x",
        "http://localhost:1/",
        "http://[::1]:8080/",
    ] {
        assert_eq!(warn(quiet), None, "{quiet}");
    }
    for loud in ["http://hooks.slack.com/services/T0/B0/SECRET", "http://10.0.0.1/api/", "http://[2001:db8::1]/"] {
        let w = warn(loud).unwrap_or_else(|| panic!("no warning for {loud}"));
        assert!(w.contains("`url` is a plain http:// URL") && w.contains("the token"), "{w}");
        assert!(!w.contains("SECRET") && !w.contains("slack.com") && !w.contains("10.0.0.1"), "{w}");
    }
}

#[test]
fn timeouts_are_bounded() {
    assert_eq!(Timeout::from_config(None).unwrap().0, Timeout::DEFAULT);
    assert_eq!(Timeout::from_config(Some(2.5)).unwrap().0, Duration::from_millis(2500));
    for bad in [0.0, -1.0, 61.0, f64::NAN] {
        assert!(Timeout::from_config(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn error_text_is_one_sane_line() {
    let text = describe(&format!("bad\r\nthing{}", "x".repeat(10_000)), Some(400), Some("meaning"));
    assert!(!text.contains(['\n', '\r']) && text.len() < 300, "{text}");
    assert!(text.ends_with("(HTTP 400): meaning"), "{text}");
}

#[test]
fn header_values_cannot_end_the_header() {
    for (input, want) in [
        ("Banned 203.0.113.7", "Banned 203.0.113.7"),
        ("x\r\nX-Injected: y", "x  X-Injected: y"),
        ("nul\0here", "nul here"),
        ("ünïcode ☃", "?n?code ?"),
    ] {
        assert_eq!(header_text(input).to_str().unwrap(), want, "{input:?}");
    }
    let e = secret_header("tk_abc\nSECRET", "token").unwrap_err().to_string();
    assert!(!e.contains("SECRET") && e.contains("`token`"), "{e}");
    assert!(secret_header("Bearer tk_abc", "token").unwrap().is_sensitive());
}

/// A server that answers with an endless body costs at most [`MAX_BODY`] of memory; a server
/// that is not there is a transient failure whose text holds no URL.
#[tokio::test]
async fn answers_are_read_up_to_a_cap_and_errors_hold_no_url() {
    use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(500).set_body_string("e".repeat(MAX_BODY * 4)).insert_header("Retry-After", "2"),
        )
        .mount(&server)
        .await;
    let timeout = Timeout::from_config(None).unwrap();
    let client = client(timeout).unwrap();
    let answer = exchange(client.post(format!("{}/SECRET", server.uri())), timeout).await.unwrap();
    assert_eq!((answer.status, answer.body.len(), answer.retry_after()), (500, MAX_BODY, Some(Duration::from_secs(2))));
    assert!(!answer.is_success() && answer.body_line().len() <= 200);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = exchange(client.post(format!("http://127.0.0.1:{port}/SECRET")), timeout).await.unwrap_err();
    assert!(e.is_transient() && e.to_string().starts_with("cannot connect"), "{e}");
    assert!(!e.to_string().contains("SECRET") && !e.to_string().contains("127.0.0.1"), "{e}");
}

/// `ca_file`: a missing file and one without a certificate are errors naming the key and the
/// path; none is the plain client. (A private CA trusted through it: the alertmanager sink's
/// tests, against a TLS server on loopback.)
#[test]
fn extra_ca_files_are_checked() {
    let timeout = Timeout::from_config(None).unwrap();
    assert!(client_trusting(timeout, None).is_ok());
    let missing = std::path::Path::new("/nonexistent/ca.pem");
    let e = client_trusting(timeout, Some(missing)).unwrap_err().to_string();
    assert!(e.starts_with("cannot read `ca_file` /nonexistent/ca.pem: "), "{e}");
    let file = std::env::temp_dir().join(format!("f2b-http-ca-{}.pem", std::process::id()));
    std::fs::write(&file, "not a certificate").unwrap();
    let e = client_trusting(timeout, Some(&file)).unwrap_err().to_string();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(e, format!("`ca_file` {} holds no PEM certificate", file.display()));
}
