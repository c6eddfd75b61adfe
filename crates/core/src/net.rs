//! Where a secret may travel unencrypted: only to this machine.

use std::net::IpAddr;

/// Whether `host` (a URL's host: a name, an IPv4 address, or an IPv6 address with or without
/// brackets) is this machine: `localhost`, 127.0.0.0/8, `::1` (also as `::ffff:127.x.y.z`).
/// Other names are not resolved: a name that happens to point at loopback today may not
/// tomorrow, and a warning that depends on DNS would come and go.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in
            ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "[::ffff:127.0.0.1]"]
        {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "hooks.slack.com",
            "localhost.example.com",
            "mylocalhost",
            "128.0.0.1",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "[2001:db8::1]",
            "[::ffff:10.0.0.1]",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
