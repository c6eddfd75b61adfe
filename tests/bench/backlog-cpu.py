#!/usr/bin/env python3
"""Backlog benchmark: the delivery worker's CPU while a big backlog waits for a sink that
refuses every message.

A spool is filled with N ban events (default 100 000) for one Slack webhook sink pointed at a
loopback server that answers every POST with 503 (no Retry-After, so the worker backs off
1 s, 2 s, 4 s ... up to retry_max = 300 s). `f2b-notify deliver --follow` is started on it;
once it has handed every event to the sink's queue and been refused once, its CPU time
(utime + stime from /proc/PID/stat) is measured over --seconds (default 60) and printed as a
share of one core, beside the same measurement of an idle `sleep` process (the floor) and,
with --old-bin, of another build (for example the previous release) on the same backlog.

The target (issue 11): under 2 % of a core at 100 000 events.

Usage: python3 tests/bench/backlog-cpu.py [--bin target/release/f2b-notify] [--old-bin PATH]
           [--events 100000] [--seconds 60]
Without --bin it builds the release binary first (cargo build --release). Not a test: it
measures. Every process it starts is stopped by its PID; its files live in a temp directory
that is removed at the end.
"""
import argparse
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(pid, seconds):
    """The share of one core a process used over `seconds` of wall time."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0)


class Refuse(http.server.BaseHTTPRequestHandler):
    """Answers every request 503, counting them."""

    count = 0

    def do_POST(self):
        Refuse.count += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"service unavailable"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def fill(spool, n):
    """Writes n ban events for sink `hook` into new/, in the action contract's entry format
    (crates/fastpath/src/entry.rs), as n `notify` runs would have."""
    new = os.path.join(spool, "new")
    for d in ("tmp", "new", "sinks", "dead", "corrupt", "state"):
        os.makedirs(os.path.join(spool, d), mode=0o700, exist_ok=True)
    os.chmod(spool, 0o700)
    now = time.time()
    base = time.time_ns()
    for i in range(n):
        ip = f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"
        entry = {
            "version": 1,
            "enqueued_at": now,
            "sinks": ["hook"],
            "event": {"kind": "ban", "jail": "sshd", "id": ip, "ip": ip, "restored": False, "host": "bench.example"},
        }
        name = f"{base + i:020}-1-{i}.json"
        fd = os.open(os.path.join(new, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, json.dumps(entry, separators=(",", ":")).encode())
        os.close(fd)


def write_config(path, spool, url, with_cap_key):
    text = (
        f'[delivery]\nspool = "{spool}"\nretry_max = 300\n'
        + ("# No cap: the whole backlog waits, as it would with an old build.\nmax_pending = 0\n" if with_cap_key else "")
        + f'[sinks.hook]\ntype = "slack-webhook"\nurl = "{url}"\n[jails."*"]\nsinks = ["hook"]\n'
    )
    with open(path, "w") as f:
        f.write(text)


def count(path):
    try:
        return sum(1 for e in os.scandir(path) if e.name.endswith(".json"))
    except FileNotFoundError:
        return 0


def run_worker(binary, work, url, events, seconds, label):
    """Fills a fresh spool, starts `deliver --follow`, waits until the backlog is handed out
    and refused once, measures; returns (cpu share, requests during the measurement)."""
    spool = os.path.join(work, f"spool-{label}")
    config = os.path.join(work, f"config-{label}.toml")
    write_config(config, spool, url, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2B_NOTIFY_") and not k.upper().endswith("_PROXY")}
    env["F2B_NOTIFY_CONFIG_DIR"] = os.path.join(work, "no-etc")
    env["F2B_NOTIFY_RUN_DIR"] = os.path.join(work, "run")
    checked = subprocess.run([binary, "-c", config, "check"], env=env, capture_output=True)
    if checked.returncode != 0:
        # A build without `max_pending` rejects the key: it has no cap anyway.
        write_config(config, spool, url, False)
    print(f"[{label}] filling {spool} with {events} events ...", file=sys.stderr)
    fill(spool, events)
    log = open(os.path.join(work, f"worker-{label}.log"), "w")
    proc = subprocess.Popen([binary, "-c", config, "deliver", "--follow"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"[{label}] the worker exited with {proc.returncode}: see {log.name}")
            handed = count(os.path.join(spool, "new")) == 0 and count(os.path.join(spool, "sinks", "hook")) == events
            if handed and Refuse.count >= 1:
                break
            if time.monotonic() - start > 600:
                raise SystemExit(f"[{label}] the backlog was not handed out in 10 minutes")
            time.sleep(0.5)
        print(f"[{label}] {events} events queued and refused after {time.monotonic() - start:.1f} s; "
              f"measuring {seconds} s ...", file=sys.stderr)
        # Let the fan-out's directory changes settle (the worker trusts an mtime after 1 s).
        time.sleep(3)
        before = Refuse.count
        share = measure(proc.pid, seconds)
        corrupt = count(os.path.join(spool, "corrupt"))
        dead = count(os.path.join(spool, "dead", "hook"))
        if corrupt or dead:
            raise SystemExit(f"[{label}] {corrupt} corrupt and {dead} dead events: the backlog is not what was measured")
        return share, Refuse.count - before
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(spool, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="f2b-notify to measure (default: build target/release/f2b-notify)")
    ap.add_argument("--old-bin", help="another build to measure the same way (for example the previous release)")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "f2b-notify"], cwd=root, check=True)
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
        binary = os.path.join(target, "release", "f2b-notify")
    binary = os.path.abspath(binary)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/X"
    work = tempfile.mkdtemp(prefix="f2b-backlog-")
    rows = []
    try:
        sleeper = subprocess.Popen(["sleep", str(int(args.seconds) + 30)])
        try:
            rows.append(("idle `sleep` process (floor)", measure(sleeper.pid, args.seconds), "-"))
        finally:
            sleeper.kill()
            sleeper.wait()
        if args.old_bin:
            share, reqs = run_worker(os.path.abspath(args.old_bin), work, url, args.events, args.seconds, "old")
            rows.append((f"`deliver --follow`, {os.path.basename(os.path.abspath(args.old_bin))} (old)", share, reqs))
        share, reqs = run_worker(binary, work, url, args.events, args.seconds, "new")
        rows.append(("`deliver --follow`, this build", share, reqs))
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.events} events waiting for a sink that answers 503; CPU over {args.seconds:.0f} s\n")
    print("| process | CPU (share of one core) | requests meanwhile |")
    print("| --- | ---: | ---: |")
    for name, share, reqs in rows:
        print(f"| {name} | {share * 100:.2f} % | {reqs} |")
    ok = rows[-1][1] < 0.02
    print(f"\ntarget under 2 % of a core: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
