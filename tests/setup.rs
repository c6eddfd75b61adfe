//! First run and day two: `cargo run` from a fresh clone, and `f2b-notify setup` against a
//! private copy of Fail2Ban's config, with the real Fail2Ban banning through what it wrote.

use std::process::{Command, Stdio};

use crate::util::{run, Dir};

/// `cargo run -- notify …` in the repository runs the router (the package's `default-run`)
/// and, with no config anywhere, prints the message through the embedded default. Only in
/// the full build: `cargo run` builds the default features into the same target directory,
/// which must not replace the binary a minimal build's tests are running.
#[cfg(all(feature = "stdout", feature = "slack-webhook", feature = "slack-api", feature = "email"))]
#[test]
fn cargo_run_notify_prints_the_message() {
    let dir = Dir::new();
    let mut c = Command::new(env!("CARGO"));
    // As from a shell: without the variables Cargo sets for this test (ring's build script
    // runs again when CARGO_PKG_NAME or OUT_DIR differ, and half the tree would be rebuilt),
    // and without any F2B_NOTIFY_… setting of the machine.
    const SET_BY_CARGO: [&str; 7] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
    ];
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if SET_BY_CARGO.iter().any(|p| name.starts_with(p)) || name.starts_with("F2B_NOTIFY_") {
            c.env_remove(&k);
        }
    }
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--offline", "--"])
        .args(["notify", "ban", "--jail", "sshd", "--ip", "203.0.113.7", "--failures", "5"])
        // No config directory: the embedded default (every event to stdout).
        .env("F2B_NOTIFY_CONFIG_DIR", dir.path().join("no-etc"))
        .env("F2B_NOTIFY_RUN_DIR", dir.path().join("run"))
        .stdin(Stdio::null());
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\n");
    assert_eq!(r.stderr, "");
}
