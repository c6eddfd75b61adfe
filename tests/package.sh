#!/usr/bin/env bash
# The Debian package, installed for real (as root, on the test machine): build it
# (packaging/build-deb.sh), lintian (no error), `dpkg -i`, then what an administrator relies on:
# the programs and conffiles in place with their modes, `f2b-notify action` naming
# /usr/bin/f2b-notify, the man pages found by `man -w`, the bash completion loaded, the
# unit's `systemd-analyze security` exposure at most 2.5 and nothing enabled, the installed
# action under the real Fail2Ban delivering to a loopback server (tests/installed.rs),
# `setup` taken back by `dpkg -r`, which keeps the conffiles and the spool, and `dpkg -P`,
# which leaves nothing behind. The package is purged however this script ends.
# tests/run-all.sh runs it last: nothing else runs while the machine has the package.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
fail() { echo "package test FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs the package into this machine"

# --- the tools the checks use, installed when missing --------------------------------------
missing=()
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v man >/dev/null 2>&1 || missing+=(man-db)
[ -f /usr/share/bash-completion/bash_completion ] || missing+=(bash-completion)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A package left by an earlier run that was killed would hide what this one installs.
known() { dpkg-query -W -f='${Status}' f2b-notify 2>/dev/null | grep -q 'ok installed\|config-files'; }
if known; then
  log "purging the f2b-notify package an earlier run left"
  dpkg -P f2b-notify >/dev/null
fi
purge() { dpkg -P f2b-notify >/dev/null 2>&1 || true; }
trap purge EXIT

log "build the package"
deb=$(bash packaging/build-deb.sh | tail -n 1)
[ -f "$deb" ] || fail "no package at '$deb'"
echo "$deb"

log "lintian: no error"
lintian_out=$(lintian --fail-on error "$deb" 2>&1) || { echo "$lintian_out"; fail "lintian reports errors"; }
echo "${lintian_out:-no tags}"

log "dpkg -i"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

mode() { stat -c %a "$1"; }
for f in /usr/bin/f2b-notify /usr/bin/f2b-notify-enqueue; do
  [ -x "$f" ] || fail "$f is not installed"
done
[ "$(mode /etc/f2b-notify/config.toml)" = 600 ] || fail "config.toml has mode $(mode /etc/f2b-notify/config.toml)"
[ "$(mode /etc/f2b-notify)" = 700 ] || fail "/etc/f2b-notify has mode $(mode /etc/f2b-notify)"
[ "$(mode /var/spool/f2b-notify)" = 700 ] || fail "the spool has mode $(mode /var/spool/f2b-notify)"
for c in /etc/fail2ban/action.d/f2b-notify.conf /etc/f2b-notify/config.toml /etc/logrotate.d/f2b-notify; do
  dpkg-query -W -f='${Conffiles}\n' f2b-notify | grep -q " $c " || fail "$c is not a conffile"
done
version=$(/usr/bin/f2b-notify --version)
echo "$version"
grep -q 'sinks: stdout, ' <<<"$version" || fail "--version names no sinks"
# `action` prints the installed file: `bin` is where the package put the program.
diff <(/usr/bin/f2b-notify action) /etc/fail2ban/action.d/f2b-notify.conf || fail "f2b-notify action differs from the installed action file"
grep -qx 'bin = /usr/bin/f2b-notify' /etc/fail2ban/action.d/f2b-notify.conf || fail "the action's bin is not /usr/bin/f2b-notify"
[ -f /usr/share/doc/f2b-notify/examples/slack-webhook.toml ] || fail "no config examples"
logrotate -d /etc/logrotate.d/f2b-notify >/dev/null 2>&1 || ! command -v logrotate >/dev/null || fail "logrotate rejects /etc/logrotate.d/f2b-notify"

log "man pages"
for page in f2b-notify f2b-notify.toml f2b-notify-notify f2b-notify-enqueue; do
  man -w "$page" || fail "man -w $page finds nothing"
done
man -w 5 f2b-notify.toml | grep -q man5 || fail "f2b-notify.toml is not in section 5"
# Every key of the configuration reference, as `generate config-md` lists them, is on the page.
page=$(MANWIDTH=200 man f2b-notify.toml 2>/dev/null)
keys=$(/usr/bin/f2b-notify generate config-md | sed -n 's/^| `\([^`]*\)` |.*/\1/p')
[ -n "$keys" ] || fail "generate config-md lists no keys"
while read -r key; do
  grep -qF -- "$key" <<<"$page" || fail "man f2b-notify.toml lacks $key"
done <<<"$keys"

log "completions"
bash -c 'source /usr/share/bash-completion/completions/f2b-notify && complete -p f2b-notify' || fail "bash completion"
[ -f /usr/share/zsh/vendor-completions/_f2b-notify ] || fail "no zsh completion"
[ -f /usr/share/fish/vendor_completions.d/f2b-notify.fish ] || fail "no fish completion"

log "the systemd unit"
unit=$(dpkg -L f2b-notify | grep '/systemd/system/f2b-notify.service$')
[ -n "$unit" ] || fail "no unit installed"
security=$(systemd-analyze security --offline=true "$unit" 2>&1) || { echo "$security"; fail "systemd-analyze security failed"; }
exposure=$(sed -n 's/.*Overall exposure level for f2b-notify.service: \([0-9.]*\).*/\1/p' <<<"$security")
echo "exposure: ${exposure:-?}"
[ -n "$exposure" ] || { echo "$security"; fail "no exposure level in systemd-analyze's output"; }
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }' || { echo "$security"; fail "exposure $exposure is above 2.5"; }
# Nothing the administrator did not ask for: the unit is not enabled.
! ls /etc/systemd/system/*.wants/f2b-notify.service >/dev/null 2>&1 || fail "the package enabled the service"
[ ! -e /etc/fail2ban/jail.d/f2b-notify.local ] || fail "the package enabled a jail"

log "the daily report's units: installed, disabled, calling the packaged program"
for u in f2b-notify-report.service f2b-notify-report.timer; do
  dpkg -L f2b-notify | grep -q "/systemd/system/$u\$" || fail "$u is not installed"
done
grep -q '^ExecStart=/usr/bin/f2b-notify report --since 24h --to ' /usr/lib/systemd/system/f2b-notify-report.service \
  || fail "the report service does not run the packaged program"
! ls /etc/systemd/system/*.wants/f2b-notify-report.timer >/dev/null 2>&1 || fail "the package enabled the report timer"
verify=$(systemd-analyze verify /usr/lib/systemd/system/f2b-notify-report.timer 2>&1) || { echo "$verify"; fail "systemd-analyze verify rejects the report timer"; }

log "the installed action under the real Fail2Ban (tests/installed.rs)"
cargo test --locked --test installed -- --test-threads 1

log "dpkg -r takes setup back out of Fail2Ban, keeps the conffiles and the spool"
setup_ran=no
if [ ! -e /etc/fail2ban/f2b-notify-setup.json ] && [ ! -e /etc/fail2ban/jail.d/f2b-notify.local ]; then
  # The machine's own Fail2Ban config: setup wires sshd, removal must take it back.
  cp -a /etc/fail2ban "${TMPDIR:-/tmp}/f2b-notify-package-test-fail2ban.$$"
  before="${TMPDIR:-/tmp}/f2b-notify-package-test-fail2ban.$$"
  if /usr/bin/f2b-notify setup --jails sshd >/dev/null; then
    setup_ran=yes
    [ -f /etc/fail2ban/jail.d/f2b-notify.local ] || fail "setup wrote no jail.d/f2b-notify.local"
  else
    rm -rf "$before"
    fail "f2b-notify setup --jails sshd failed on this machine's Fail2Ban config"
  fi
fi
touch /var/spool/f2b-notify/kept-by-remove
dpkg -r f2b-notify
for f in /usr/bin/f2b-notify /usr/bin/f2b-notify-enqueue "$unit" /usr/share/man/man1/f2b-notify.1.gz; do
  [ ! -e "$f" ] || fail "dpkg -r left $f"
done
for f in /etc/f2b-notify/config.toml /etc/fail2ban/action.d/f2b-notify.conf /var/spool/f2b-notify/kept-by-remove; do
  [ -e "$f" ] || fail "dpkg -r removed $f"
done
if [ "$setup_ran" = yes ]; then
  [ ! -e /etc/fail2ban/jail.d/f2b-notify.local ] || fail "dpkg -r left setup's jail.d/f2b-notify.local"
  [ ! -e /etc/fail2ban/f2b-notify-setup.json ] || fail "dpkg -r left setup's record"
  # Fail2Ban's directory is as it was before setup.
  diff -r "$before" /etc/fail2ban || fail "/etc/fail2ban differs from before setup"
  rm -rf "$before"
fi

log "dpkg -P leaves nothing behind"
dpkg -P f2b-notify
for f in /etc/f2b-notify /etc/fail2ban/action.d/f2b-notify.conf /etc/logrotate.d/f2b-notify \
  /var/spool/f2b-notify /var/log/f2b-notify /run/f2b-notify /usr/share/doc/f2b-notify \
  /usr/share/bash-completion/completions/f2b-notify; do
  [ ! -e "$f" ] || fail "dpkg -P left $f"
done
! known || fail "dpkg still knows the package"
trap - EXIT
log "package: all checks passed"
