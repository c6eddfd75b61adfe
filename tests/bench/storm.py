#!/usr/bin/env python3
"""Storm benchmark: how long Fail2Ban takes to ban N addresses at once with each notifier.

The real Fail2Ban (Debian's package) runs a private server with `banaction = dummy` (no
firewall: the dummy action appends "+ADDR" to a file) and one jail; `fail2ban-client set storm
banip` hands it N addresses at once. A loopback Slack stand-in answers every POST after 300 ms.
Four actions are compared, each beside the dummy firewall action:

  none        the firewall action alone
  noop        a shell action that does nothing (actionban = true): the floor for any action,
              since Fail2Ban pays a shell and a process per action
  f2b-notify  this project's action file, queue mode, one Slack webhook sink (the action runs
              f2b-notify-enqueue, the front end beside --bin)
  also, for the breakdown: tags (the no-op with f2b-notify's eight tags, builtin `true`),
  noop-tags (the same run by `exec true`, a glibc program), f2b-notify-filtered (a route that
  sends nothing), f2b-notify-full (the action without the front end: f2b-notify every time)
  curl        the classic action: one curl POST per address to the stand-in (N <= --curl-max)

For each: the time until the firewall action has banned all N (the dummy file has N lines),
the time until every address appeared in a delivered message, the number of HTTP requests,
and the delivery worker's peak memory (VmHWM). Prints a Markdown table.

Usage: tests/bench/storm.py --bin target/release/f2b-notify [--sizes 100 1000] [--curl-max 100]
Not a test: it measures. Every process it starts is stopped by its PID.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ADDR = re.compile(r"198\.1[89]\.\d+\.\d+")


def wait(what, limit, fn, every=0.02):
    start = time.time()
    while True:
        v = fn()
        if v:
            return v
        if time.time() - start > limit:
            raise SystemExit(f"timed out after {limit} s waiting for {what}")
        time.sleep(every)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_one(args, kind, n):
    tmp = tempfile.mkdtemp(prefix=f"f2b-storm-{kind}-{n}-")
    procs = []
    worker_pid = None
    try:
        log = os.path.join(tmp, "requests.jsonl")
        portfile = os.path.join(tmp, "port")
        standin = subprocess.Popen([sys.executable, os.path.join(HERE, "slack_standin.py"), portfile, "0.3", log])
        procs.append(standin)
        port = int(wait("stand-in", 10, lambda: os.path.exists(portfile) and open(portfile).read().strip()))

        conf = os.path.join(tmp, "f2b")
        for sub in ("filter.d", "action.d"):
            os.makedirs(os.path.join(conf, sub))
        for f in ("filter.d/common.conf", "filter.d/sshd.conf", "action.d/dummy.conf"):
            shutil.copy(os.path.join("/etc/fail2ban", f), os.path.join(conf, f))
        shutil.copy(os.path.join(ROOT, "config/action.d/f2b-notify.conf"), os.path.join(conf, "action.d"))
        with open(os.path.join(conf, "action.d/noop.conf"), "w") as f:
            f.write("[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban = true\nactionunban = true\n")
        with open(os.path.join(conf, "action.d/nooptags.conf"), "w") as f:
            # The no-op with f2b-notify's arguments: what Fail2Ban's tag handling costs alone.
            f.write(
                '[Definition]\nactionstart =\nactionstop =\nactioncheck =\n'
                'actionban = exec true notify ban --jail="<name>" --ip="<ip>" --failures="<failures>" --time="<time>" '
                '--bantime="<bantime>" --restored="<restored>" --user="<F-USER>" --matches="<matches>"\nactionunban = true\n'
            )
        with open(os.path.join(conf, "action.d/tags.conf"), "w") as f:
            # The same, but the shell's builtin `true`: Fail2Ban's tag handling without any exec.
            f.write(
                '[Definition]\nactionstart =\nactionstop =\nactioncheck =\n'
                'actionban = true notify ban --jail="<name>" --ip="<ip>" --failures="<failures>" --time="<time>" '
                '--bantime="<bantime>" --restored="<restored>" --user="<F-USER>" --matches="<matches>"\nactionunban = true\n'
            )
        with open(os.path.join(conf, "action.d/curl.conf"), "w") as f:
            f.write(
                "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n"
                "actionban = curl -s -o /dev/null -X POST -H 'Content-Type: application/json' "
                "--data '{\"text\":\"Fail2Ban (<name>) banned IP <ip>\"}' http://127.0.0.1:%d/services/curl\n"
                "actionunban =\n" % port
            )
        sock, pidfile = os.path.join(conf, "f2b.sock"), os.path.join(conf, "f2b.pid")
        with open(os.path.join(conf, "fail2ban.conf"), "w") as f:
            f.write(f"[Definition]\nloglevel = INFO\nlogtarget = {conf}/fail2ban.log\nsocket = {sock}\npidfile = {pidfile}\ndbfile = :memory:\n")
        with open(os.path.join(conf, "jail.conf"), "w") as f:
            f.write("[DEFAULT]\n")
        spool = os.path.join(tmp, "spool")
        notify_cfg = os.path.join(tmp, "notify.toml")
        with open(notify_cfg, "w") as f:
            f.write(
                f'[delivery]\nspool = "{spool}"\nidle_exit = 60\n'
                f'[sinks.hook]\ntype = "slack-webhook"\nurl = "http://127.0.0.1:{port}/services/T0/B0/X"\n'
                f'[jails."*"]\nsinks = ["hook"]\nevents = ["ban"]\n'
            )
        dummy = os.path.join(tmp, "dummy")
        action = f'dummy[target="{dummy}"]'
        if kind == "noop":
            action += "\n         noop"
        elif kind == "noop-tags":
            action += "\n         nooptags"
        elif kind == "tags":
            action += "\n         tags"
        elif kind == "f2b-notify-filtered":
            action += f'\n         f2b-notify[bin="{args.bin}", args="--config {notify_cfg}.filtered"]'
            with open(notify_cfg + ".filtered", "w") as f:
                f.write('[sinks.c]\ntype = "stdout"\n[jails."*"]\nsinks = ["c"]\nevents = ["start"]\n')
        elif kind == "f2b-notify":
            action += f'\n         f2b-notify[bin="{args.bin}", args="--config {notify_cfg}"]'
        elif kind == "f2b-notify-full":
            # The same without the front end: a `bin` with no f2b-notify-enqueue beside it.
            os.makedirs(os.path.join(tmp, "bin"))
            os.symlink(args.bin, os.path.join(tmp, "bin", "f2b-notify"))
            action += f'\n         f2b-notify[bin="{tmp}/bin/f2b-notify", args="--config {notify_cfg}"]'
        elif kind == "curl":
            action += "\n         curl"
        authlog = os.path.join(tmp, "auth.log")
        open(authlog, "w").close()
        with open(os.path.join(conf, "jail.local"), "w") as f:
            f.write(f"[storm]\nenabled = true\nbackend = polling\nfilter = sshd\nlogpath = {authlog}\nbantime = 3600\naction = {action}\n")
        # f2b-notify writes no plan for the front end from a config file changed in the last
        # two seconds; a real config is older than that.
        time.sleep(2.1)
        env = dict(os.environ, F2B_NOTIFY_RUN_DIR=os.path.join(tmp, "run"))
        server = subprocess.Popen(
            ["fail2ban-server", "-f", "-x", "-c", conf, "-s", sock, "-p", pidfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        procs.append(server)
        client = ["fail2ban-client", "-c", conf, "-s", sock]
        wait("fail2ban", 30, lambda: subprocess.run(client + ["ping"], capture_output=True).returncode == 0, 0.1)
        wait("the jail's start action", 30, lambda: os.path.exists(dummy), 0.05)

        ips = [f"198.18.{i // 256}.{i % 256}" for i in range(n)]
        t0 = time.time()
        subprocess.run(client + ["set", "storm", "banip"] + ips, check=True, capture_output=True)

        peak = [0]

        def sample_worker():
            nonlocal worker_pid
            if not kind.startswith("f2b-notify") or kind == "f2b-notify-filtered":
                return
            try:
                worker_pid = int(open(os.path.join(spool, "worker.lock")).read().strip())
                for line in open(f"/proc/{worker_pid}/status"):
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass

        def banned():
            sample_worker()
            try:
                return sum(1 for line in open(dummy) if line.startswith("+")) >= n
            except OSError:
                return False

        wait("all bans", 3600, banned)
        t_ban = time.time() - t0

        t_all = None
        requests = 0
        if kind in ("f2b-notify", "f2b-notify-full", "curl"):
            def delivered():
                sample_worker()
                if not os.path.exists(log):
                    return False
                seen = set()
                for line in open(log):
                    seen.update(ADDR.findall(json.loads(line)["body"]))
                return len(seen & set(ips)) == n

            wait("delivery of every address", 3600, delivered, 0.05)
            t_all = time.time() - t0
            requests = sum(1 for _ in open(log))
            times = sorted(json.loads(line)["t"] for line in open(log))
            gaps = [b - a for a, b in zip(times, times[1:])]
            min_gap = min(gaps) if gaps else None
            pace = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        else:
            min_gap, pace = None, None
        return {"kind": kind, "n": n, "ban": t_ban, "all": t_all, "requests": requests, "peak_kib": peak[0], "min_gap": min_gap, "pace": pace}
    finally:
        for p in procs:
            kill(p.pid)
            p.wait()
        if worker_pid:
            kill(worker_pid)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--curl-max", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    ap.add_argument("--kinds", nargs="+", default=["none", "noop", "f2b-notify", "curl"],
                    help="also: tags, noop-tags, f2b-notify-filtered, f2b-notify-full (see above)")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    rows = []
    for n in args.sizes:
        results = {}
        for kind in args.kinds:
            if kind == "curl" and n > args.curl_max:
                continue
            runs = []
            for _ in range(1 if kind == "curl" else args.repeat):
                runs.append(run_one(args, kind, n))
                print(f"# {kind} N={n}: {runs[-1]}", file=sys.stderr, flush=True)
            runs.sort(key=lambda r: r["ban"])
            results[kind] = runs[len(runs) // 2]
        floor = results["noop"]["ban"]
        for kind, r in results.items():
            rows.append((r, r["ban"] / floor))
    print("| action | N | all banned | vs no-op | all delivered | HTTP requests | requests/s (first to last) | shortest gap | worker peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r, ratio in rows:
        delivered = f"{r['all']:.2f} s" if r["all"] is not None else "-"
        reqs = str(r["requests"]) if r["all"] is not None else "-"
        pace = f"{r['pace']:.2f}" if r.get("pace") else "-"
        gap = f"{r['min_gap']:.2f} s" if r.get("min_gap") is not None else "-"
        peak = f"{r['peak_kib'] / 1024:.1f} MiB" if r["peak_kib"] else "-"
        print(f"| {r['kind']} | {r['n']} | {r['ban']:.2f} s | {ratio:.2f}x | {delivered} | {reqs} | {pace} | {gap} | {peak} |")


if __name__ == "__main__":
    main()
