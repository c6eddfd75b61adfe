#!/usr/bin/env bash
# Benchmark: the whole-process cost of one `notify ban …` by the action's front end and by
# `f2b-notify` (config with several sinks
# and routes; queue mode, and direct delivery to a loopback Slack stand-in) beside one `curl`
# POST to the same stand-in, the classic action's cost. Wall time with hyperfine, peak memory with
# /usr/bin/time -v, and the stripped binary sizes of the stdout-only and the full build.
# Not a test: it prints figures for the README.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi

cargo build --locked --release --quiet
cargo build --locked --release --quiet --no-default-features --features stdout --target-dir target/min
full=target/release/f2b-notify
min=target/min/release/f2b-notify

work=$(mktemp -d)
python3 tests/bench/slack_standin.py "$work/port" &
standin=$!
stop_all() {
  # The queue-mode runs started a delivery worker: stop it by the PID in its lock file.
  for sp in spool spool2; do
    if [ -s "$work/$sp/worker.lock" ]; then kill "$(cat "$work/$sp/worker.lock")" 2>/dev/null || true; fi
  done
  kill $standin 2>/dev/null; wait $standin 2>/dev/null; rm -rf "$work"
}
trap stop_all EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
printf 'http://127.0.0.1:%s/services/T0/B0/X\n' "$port" > "$work/hook.url"
printf 'xoxb-bench\n' > "$work/token"
chmod 600 "$work/hook.url" "$work/token"
# The two network sinks, shared by every config below.
cat > "$work/net.toml" <<TOML
[sinks.hook]
type = "slack-webhook"
url_file = "$work/hook.url"
[sinks.api]
type = "slack-api"
token_file = "$work/token"
channel = "#security"
url = "http://127.0.0.1:$port/api/"
TOML
# (`host` is a top-level key, so it comes before any table.)
{ printf 'host = "bench.example"\n'; cat "$work/net.toml"; cat <<TOML
[sinks.audit]
type = "stdout"
format = "json"
path = "$work/audit.jsonl"
[sinks.console]
type = "stdout"
path = "$work/console.log"
[jails.sshd]
sinks = ["audit", "hook", "api"]
[jails."nginx-*"]
sinks = ["audit", "hook"]
[jails."*"]
sinks = ["console"]
TOML
} > "$work/sinks.toml"
# The same sinks and routes, delivered inside the action (direct) or spooled (queue, the
# default; the worker it starts delivers in the background while the runs go on).
{ cat "$work/sinks.toml"; printf '[delivery]\nmode = "direct"\n'; } > "$work/direct.toml"
{ cat "$work/sinks.toml"; printf '[delivery]\nspool = "%s/spool"\n' "$work"; } > "$work/queue.toml"
cat > "$work/min.toml" <<TOML
[sinks.audit]
type = "stdout"
format = "json"
path = "$work/audit-min.jsonl"
[jails."*"]
sinks = ["audit"]
TOML
# Only spooled sinks: what the action's front end handles by itself.
{ printf '[delivery]\nspool = "%s/spool2"\n' "$work"; cat "$work/net.toml"; printf '[jails.sshd]\nsinks = ["hook", "api"]\n'; } > "$work/spooled.toml"
# The front end's plans go to the scratch directory; f2b-notify writes none from a config
# younger than 2 s.
export F2B_NOTIFY_RUN_DIR="$work/run"
sleep 2.1
args=(notify ban --jail=sshd --ip=203.0.113.7 --failures=5 --time=1700000000.5 --bantime=600 --bancount=1 --restored=0 --user=root "--matches=sshd: Failed password for root from 203.0.113.7")
# The same, as one string for hyperfine (which splits it like a shell).
args_str="notify ban --jail=sshd --ip=203.0.113.7 --failures=5 --time=1700000000.5 --bantime=600 --bancount=1 --restored=0 --user=root '--matches=sshd: Failed password for root from 203.0.113.7'"
enq=target/release/f2b-notify-enqueue
"$full" --config "$work/spooled.toml" "${args[@]}"
F2B_NOTIFY_LOG=debug "$enq" --config "$work/spooled.toml" "${args[@]}" 2>&1 | grep -q "(fast path)" \
  || { echo "f2b-notify-enqueue did not take the fast path" >&2; exit 1; }
curl_cmd="curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data '{\"text\":\"Fail2Ban (sshd) banned IP 203.0.113.7 for 5 failure(s)\"}' http://127.0.0.1:$port/services/T0/B0/X"

echo "== wall time (hyperfine, 3 warm-up runs)"
hyperfine -N --warmup 3 --runs 200 --export-markdown "$work/hyperfine.md" \
  -n "curl POST (baseline)" "$curl_cmd" \
  -n "f2b-notify-enqueue (the action's front end): webhook + api spooled" "$enq --config $work/spooled.toml $args_str" \
  -n "f2b-notify full build, queue mode: webhook + api spooled" "$full --config $work/spooled.toml $args_str" \
  -n "f2b-notify full build, queue mode: JSON file written, webhook + api spooled" "$full --config $work/queue.toml $args_str" \
  -n "f2b-notify full build, direct mode: JSON file + webhook + api (2 POSTs)" "$full --config $work/direct.toml $args_str" \
  -n "f2b-notify stdout-only build: one JSON file sink" "$min --config $work/min.toml $args_str"
cat "$work/hyperfine.md"

echo "== peak memory (max RSS of 20 runs, /usr/bin/time -v)"
peak() {
  local max=0
  for _ in $(seq 20); do
    local kb
    kb=$( /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}')
    [ "$kb" -gt "$max" ] && max=$kb
  done
  echo "$max"
}
c=$(peak sh -c "$curl_cmd")
e=$(peak "$enq" --config "$work/spooled.toml" "${args[@]}")
s2=$(peak "$full" --config "$work/spooled.toml" "${args[@]}")
q=$(peak "$full" --config "$work/queue.toml" "${args[@]}")
f=$(peak "$full" --config "$work/direct.toml" "${args[@]}")
m=$(peak "$min" --config "$work/min.toml" "${args[@]}")
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
echo "curl: ${c} KiB   front end: ${e} KiB ($(ratio "$e" "$c")x)   full, spooled only: ${s2} KiB ($(ratio "$s2" "$c")x)   queue: ${q} KiB ($(ratio "$q" "$c")x)   direct: ${f} KiB ($(ratio "$f" "$c")x)   stdout-only: ${m} KiB ($(ratio "$m" "$c")x)"

echo "== stripped binary size (release profile strips symbols)"
fs=$(stat -c %s "$full"); ms=$(stat -c %s "$min"); es=$(stat -c %s "$enq")
echo "full: $fs bytes   stdout-only: $ms bytes   ($(awk "BEGIN{printf \"%.2f\", $ms/$fs}")x of full)   front end: $es bytes"
