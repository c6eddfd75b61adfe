#!/usr/bin/env bash
# Runs every test of f2b-notify on a fresh Debian machine that has Rust: installs what the
# tests need (Debian's fail2ban for the end-to-end test, python3-aiosmtpd for the real SMTP
# server of the email tests, prometheus-alertmanager for the alertmanager sink's cluster),
# checks formatting (rustfmt) and lints (clippy, warnings are errors), then builds each sink
# feature alone
# and all together, checks that the minimal build carries no HTTP/SMTP/TLS stack, and runs the
# unit, integration and end-to-end tests in both the full and the minimal build, and last builds,
# installs and purges the Debian package (tests/package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- what the tests need, installed when missing (we run as root on CI machines) ---------
missing=()
command -v fail2ban-server >/dev/null 2>&1 || missing+=(fail2ban)
# The alertmanager sink's end-to-end tests run a real Alertmanager cluster on loopback.
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
# The email tests' SMTP server (aiosmtpd) runs on Debian's Python.
{ [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; } || missing+=(python3-aiosmtpd)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Installing the package may start Debian's own fail2ban service; the tests run their own
# server on private sockets and do not need it.
# Installing prometheus-alertmanager enables and (where systemd runs) starts Debian's service
# on ports 9093/9094. The tests start their own nodes on free loopback ports, so it would not
# clash, but a test machine has no use for it: the one this script installed is stopped and
# disabled (one that was there before is the administrator's, and left alone).
if [[ " ${missing[*]:-} " == *" prometheus-alertmanager "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus-alertmanager.service >/dev/null 2>&1 || true
fi

# --- style: formatting and lints gate everything else --------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings (full build, every crate and test; and the minimal build)"
cargo clippy --locked --workspace --all-targets -- -D warnings
# The installed package's test (tests/installed.rs) is no `cargo test` target: linted here.
cargo clippy --locked --test installed -- -D warnings
cargo clippy --locked --all-targets --no-default-features --features stdout -- -D warnings

# --- security advisories -------------------------------------------------------------------
# The RustSec database lives on GitHub, which these machines cannot reach (and no registry
# they reach carries a copy): checked only when F2B_ADVISORY_DB names a copy, said otherwise.
if [ -d "${F2B_ADVISORY_DB:-}" ]; then
  log "cargo audit against $F2B_ADVISORY_DB"
  command -v cargo-audit >/dev/null || cargo install --locked cargo-audit
  cargo audit --db "$F2B_ADVISORY_DB" --no-fetch --stale
else
  log "advisories: NOT checked (no RustSec advisory database here; set F2B_ADVISORY_DB to a copy)"
fi

# --- every sink feature alone, then all together ------------------------------------------
# The sink features, read from Cargo.toml's [features] table (every feature but `default` is
# a sink type; crates/router/registry.rs's test holds the two lists together).
mapfile -t features < <(awk '/^\[features\]/{on=1; next} /^\[/{on=0} on && /^[a-z]/ && $1 != "default" {print $1}' Cargo.toml)
log "sink features: ${features[*]}"
for f in "${features[@]}"; do
  # Clippy on every target (the tests too): a build with one sink compiles and is lint-clean.
  log "clippy with only --features $f"
  cargo clippy --locked --all-targets --no-default-features --features "$f" -- -D warnings
done

log "the minimal build, and the system log's, have no HTTP, SMTP or TLS stack"
for local in stdout syslog; do
  tree=$(cargo tree --locked -e normal --no-default-features --features "$local")
  for forbidden in reqwest lettre rustls hyper openssl native-tls; do
    if grep -qw "$forbidden" <<<"$tree"; then
      echo "the $local-only build depends on $forbidden:" >&2
      grep -w "$forbidden" <<<"$tree" >&2
      exit 1
    fi
  done
done

log "the full build has one TLS stack: rustls with ring, no OpenSSL, no aws-lc"
full_tree=$(cargo tree --locked -e normal)
for forbidden in native-tls openssl-sys aws-lc-rs aws-lc-sys; do
  if grep -qw "$forbidden" <<<"$full_tree"; then
    echo "full build depends on $forbidden" >&2
    exit 1
  fi
done
grep -qw ring <<<"$full_tree" || { echo "full build lost rustls' ring provider" >&2; exit 1; }

# Most integration tests wait on servers, Fail2Ban and clocks rather than the CPU: run more of
# them at once than there are cores (every test has its own directories, ports and servers).
threads=(-- --test-threads 6)

log "tests: full build (all sinks), every crate, examples built"
cargo test --locked --workspace "${threads[@]}"

log "the example sink runs"
cargo run --locked --quiet --example custom_sink

log "tests: minimal build (stdout only)"
cargo test --locked --no-default-features --features stdout "${threads[@]}"

# --- the Debian package, installed into this machine for real: last, so that nothing else
# runs while it is installed; purged at the end however tests/package.sh ends -------------
log "the Debian package: build, lintian, dpkg -i, man, completions, the unit's sandbox, the installed action under Fail2Ban, dpkg -r, dpkg -P"
bash tests/package.sh
