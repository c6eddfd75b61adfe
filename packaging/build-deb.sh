#!/usr/bin/env bash
# Builds the Debian package from a clean checkout: installs cargo-deb when it is missing,
# builds the release binaries, writes the man pages and shell completions with the binary
# just built (`f2b-notify generate all`: from the clap definitions and the config types'
# docs), then packages without building again. cargo deb prints the package's path.
#   bash packaging/build-deb.sh && dpkg -i target/debian/f2b-notify_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
target="${CARGO_TARGET_DIR:-target}"
cargo build --locked --release
rm -rf "$target/release/assets"
"$target/release/f2b-notify" generate all "$target/release/assets" >/dev/null
# The daily report's units, with the packaged program's path (the files in config/ are for a
# hand install in /usr/local/bin). Installed disabled: the administrator names the sink first.
mkdir -p "$target/release/assets/systemd"
sed 's#/usr/local/bin/f2b-notify#/usr/bin/f2b-notify#g' config/f2b-notify-report.service >"$target/release/assets/systemd/f2b-notify-report.service"
cp config/f2b-notify-report.timer "$target/release/assets/systemd/"
# Compressed as Debian's policy wants (cargo-deb leaves files under target/ as they are).
gzip -9n "$target"/release/assets/man/*.[15]
cargo deb --locked --no-build --quiet
