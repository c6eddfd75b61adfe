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
  also, for the breakdown: tags (the no-op with f2b-notify's nine tags, builtin `true`),
  noop-tags (the same run by `exec true`, a glibc program), f2b-notify-filtered (a route that
  sends nothing), f2b-notify-full (the action without the front end: f2b-notify every time)
  curl        the classic action: one curl POST per address to the stand-in (N <= --curl-max)

For each: the time until the firewall action has banned all N (the dummy file has N lines),
the time until every address appeared in a delivered message, the number of HTTP requests,
and the delivery worker's peak memory (VmHWM). Prints a Markdown table.

--full-spool [N] measures instead what a spool that cannot take events costs, and checks that
nothing is lost in silence: the f2b-notify storm of N bans (2000) with a writable spool, and
the same with the spool on a tmpfs of --spool-size (512k; mounted for the run, unmounted
after: root only), which fills after about 125 events. f2b-notify names what it cannot spool
in the system log; F2B_NOTIFY_SYSLOG points it at a datagram socket of the benchmark's. Per
sink of --sinks: `429` answers 429 with Retry-After (--retry-after, 2 s) from before the storm
until every ban is in, then 200; `slow` answers 200 after 2 s. Writable and full runs take
turns, --repeat times each. After the storm it waits (up to --drain-timeout, 120 s) until
every address was either delivered (in the body of a request answered 200) or named in the
system log, and reports per run: the ban time, the full spool's ban time over the writable
one's (target: 1.5x), how many addresses were delivered, named in the system log, or neither
("unaccounted"). Any unaccounted address makes the exit status 1, after saying on stderr
what the spool holds and how the delivery worker ended (the benchmark adopts orphans, so the
detached worker's exit status can be read).

Usage: tests/bench/storm.py --bin target/release/f2b-notify [--sizes 100 1000] [--curl-max 100]
       tests/bench/storm.py --bin target/release/f2b-notify --full-spool [N] [--sinks 429 slow]
Not a test: it measures. Every process it starts is stopped by its PID (the delivery worker
by the PID in its lock file); the only traffic is to the stand-in on 127.0.0.1.
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ADDR = re.compile(r"198\.1[89]\.\d+\.\d+")
# What f2b-notify names in the system log when the spool cannot take an event.
NOT_KEPT = re.compile(r"could not spool the ban of (\S+) in jail storm for ")
# The sinks of --full-spool: (stand-in delay in seconds, rate limited during the storm).
SINKS = {"429": (0.0, True), "slow": (2.0, False)}


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


def become_subreaper():
    """Makes this process the one that adopts its orphaned descendants (Linux), so that the
    delivery worker, which detaches from the action that started it, becomes our child and
    how it ended can be read (see worker_end)."""
    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        print(f"# cannot become a subreaper: {os.strerror(ctypes.get_errno())}", file=sys.stderr)


def worker_end(pid):
    """How the adopted worker PID ended ("exited with status 1", "killed by SIGABRT"), reaping
    it; None while it runs or when it is not our child."""
    try:
        r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return None
    if r is None:
        return None
    if r.si_code == os.CLD_EXITED:
        return f"exited with status {r.si_status}"
    return f"killed by {signal.Signals(r.si_status).name}"


def reap_orphans():
    """Reaps the adopted descendants that ended (our own children are waited for already)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def is_worker(pid):
    """Whether PID is still an f2b-notify process (a PID read earlier may have been reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"f2b-notify" in f.read()
    except OSError:
        return False


class Syslog:
    """A private system log: a Unix datagram socket f2b-notify is pointed at with
    F2B_NOTIFY_SYSLOG. A thread reads it all the time, since a full queue (only
    net.unix.max_dgram_qlen datagrams) would block the action's send and so Fail2Ban."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.stopped = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append(data.decode("utf-8", "replace"))

    def close(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


def run_one(args, kind, n, sink=None, spool_size=None):
    """One storm. By default the stand-in answers after 300 ms. With `sink` (a key of SINKS) and
    optionally `spool_size` (the spool is then a tmpfs of that size), the --full-spool run: the
    system log goes to a private socket, and afterwards the benchmark waits (up to
    --drain-timeout) until every address was delivered or named there, and counts both."""
    tmp = tempfile.mkdtemp(prefix=f"f2b-storm-{kind}-{n}-")
    procs = []
    worker_pids = set()
    mounted = None
    syslog = None
    try:
        log = os.path.join(tmp, "requests.jsonl")
        portfile = os.path.join(tmp, "port")
        limited = os.path.join(tmp, "rate-limited")
        standin_cmd = [sys.executable, os.path.join(HERE, "slack_standin.py"), portfile, "0.3", log]
        if sink is not None:
            delay, rate_limited = SINKS[sink]
            standin_cmd[3] = str(delay)
            if rate_limited:
                # 429 from before the storm until every ban is in; then the sink recovers.
                open(limited, "w").close()
                standin_cmd += ["--rate-limited-while", limited, "--retry-after", str(args.retry_after)]
        standin = subprocess.Popen(standin_cmd)
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
                '--bantime="<bantime>" --bancount="<bancount>" --restored="<restored>" --user="<F-USER>" --matches="<matches>"\nactionunban = true\n'
            )
        with open(os.path.join(conf, "action.d/tags.conf"), "w") as f:
            # The same, but the shell's builtin `true`: Fail2Ban's tag handling without any exec.
            f.write(
                '[Definition]\nactionstart =\nactionstop =\nactioncheck =\n'
                'actionban = true notify ban --jail="<name>" --ip="<ip>" --failures="<failures>" --time="<time>" '
                '--bantime="<bantime>" --bancount="<bancount>" --restored="<restored>" --user="<F-USER>" --matches="<matches>"\nactionunban = true\n'
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
        if spool_size:
            os.mkdir(spool, 0o700)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spool_size},mode=0700", "tmpfs", spool], check=True)
            mounted = spool
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
        if sink is not None:
            syslog = Syslog(os.path.join(tmp, "syslog.sock"))
            env["F2B_NOTIFY_SYSLOG"] = syslog.path
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
            if not kind.startswith("f2b-notify") or kind == "f2b-notify-filtered":
                return
            try:
                worker_pid = int(open(os.path.join(spool, "worker.lock")).read().strip())
                worker_pids.add(worker_pid)
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
        if sink is not None:
            if os.path.exists(limited):
                os.unlink(limited)
            return account(args, kind, n, ips, t0, t_ban, log, syslog, sample_worker, peak, spool_size, sink, conf, spool, worker_pids)

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
        for pid in worker_pids:
            if is_worker(pid):
                kill(pid)
        if syslog is not None:
            syslog.close()
            reap_orphans()
        if mounted:
            # The worker was killed above; lazily all the same, so that nothing left holding a
            # file keeps the tmpfs mounted.
            if subprocess.run(["umount", mounted]).returncode != 0:
                subprocess.run(["umount", "-l", mounted])
        shutil.rmtree(tmp, ignore_errors=True)


def diagnose(spool, missing, worker_pids):
    """Says on stderr where the unaccounted addresses are: the spool's files, how the workers
    ended and the end of their log."""
    print(f"# {len(missing)} unaccounted, e.g. {sorted(missing)[:5]}; the spool:", file=sys.stderr)
    for sub, _, files in sorted(os.walk(spool)):
        print(f"#   {os.path.relpath(sub, spool)}: {len(files)} file(s) {sorted(files)[:4]}", file=sys.stderr)
    try:
        worker_pids.add(int(open(os.path.join(spool, "worker.lock")).read().strip()))
    except (OSError, ValueError) as e:
        print(f"#   worker.lock: {e}", file=sys.stderr)
    for pid in sorted(worker_pids):
        end = worker_end(pid)
        state = end or ("running" if is_worker(pid) else "gone (not adopted: how it ended is unknown)")
        print(f"#   delivery worker PID {pid}: {state}", file=sys.stderr)
    try:
        tail = open(os.path.join(spool, "worker.log"), errors="replace").read().splitlines()[-15:]
        print("#   worker.log ends:\n" + "\n".join("#     " + line for line in tail), file=sys.stderr)
    except OSError as e:
        print(f"#   worker.log: {e}", file=sys.stderr)
    df = subprocess.run(["df", "-k", spool], capture_output=True, text=True).stdout.strip().splitlines()
    print("\n".join("#   df: " + line for line in df), file=sys.stderr)


def account(args, kind, n, ips, t0, t_ban, log, syslog, sample_worker, peak, spool_size, sink, conf, spool, worker_pids):
    """After the storm of a --full-spool run: waits until every address was delivered (in the
    body of a request the stand-in answered 200) or named in the system log, up to
    --drain-timeout, and counts them."""
    wanted = set(ips)
    delivered, logged = set(), set()

    def look():
        sample_worker()
        delivered.clear()
        if os.path.exists(log):
            with open(log) as f:
                for line in f:
                    r = json.loads(line)
                    if r["status"] == 200:
                        delivered.update(ADDR.findall(r["body"]))
        logged.clear()
        for m in list(syslog.messages):
            logged.update(NOT_KEPT.findall(m))
        return not (wanted - delivered - logged)

    deadline = time.time() + args.drain_timeout
    while not look() and time.time() < deadline:
        time.sleep(0.1)
    t_all = time.time() - t0
    requests = []
    if os.path.exists(log):
        with open(log) as f:
            requests = [json.loads(line) for line in f]
    # Fail2Ban logs an action that exits non-zero (f2b-notify does when even the system log
    # cannot take the event).
    try:
        with open(os.path.join(conf, "fail2ban.log")) as f:
            action_errors = sum(1 for line in f if "Failed to execute ban" in line)
    except OSError:
        action_errors = None
    other = [m for m in syslog.messages if not NOT_KEPT.search(m)]
    if wanted - delivered - logged:
        diagnose(spool, wanted - delivered - logged, worker_pids)
    return {
        "kind": kind, "n": n, "sink": sink, "spool": f"tmpfs {spool_size}" if spool_size else "writable",
        "ban": t_ban, "all": t_all,
        "delivered": len(wanted & delivered), "logged": len(wanted & logged),
        "both": len(wanted & delivered & logged), "unaccounted": len(wanted - delivered - logged),
        "requests": len(requests), "ok_requests": sum(1 for r in requests if r["status"] == 200),
        "syslog_other": len(other), "syslog_sample": (syslog.messages[:1] + other[:2]),
        "action_errors": action_errors, "peak_kib": peak[0],
    }


def full_spool(args):
    """--full-spool: each sink of --sinks, a writable spool beside a spool on a tmpfs."""
    become_subreaper()
    rows = []
    for sink in args.sinks:
        pair = {None: [], args.spool_size: []}
        # Writable and full in turn, so that a change in the machine's load hits both alike.
        for _ in range(args.repeat):
            for size in (None, args.spool_size):
                r = run_one(args, "f2b-notify", args.full_spool, sink=sink, spool_size=size)
                shown = {k: v for k, v in r.items() if k != "syslog_sample"}
                print(f"# {sink} sink, {r['spool']} spool: {shown}", file=sys.stderr, flush=True)
                if r["syslog_sample"]:
                    print(f"#   system log, e.g.: {r['syslog_sample']}", file=sys.stderr, flush=True)
                pair[size].append(r)
        for size, runs in pair.items():
            runs.sort(key=lambda r: r["ban"])
            pair[size] = (runs[len(runs) // 2], runs)
        rows.append((sink, pair[None], pair[args.spool_size]))
    print("| sink | spool | N | all banned | vs writable | all accounted for | delivered | named in the system log | unaccounted | HTTP requests (200) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    bad = 0
    for sink, (w, wruns), (f, fruns) in rows:
        for r, runs in ((w, wruns), (f, fruns)):
            # The median run's figures; the accounting must hold in every run.
            unacc = sum(x["unaccounted"] for x in runs)
            bad += unacc
            label = {"429": "429, Retry-After %s s, until the storm is over" % args.retry_after,
                     "slow": "200 after %g s" % SINKS["slow"][0]}[sink]
            print(f"| {label} | {r['spool']} | {r['n']} | {r['ban']:.2f} s | {r['ban'] / w['ban']:.2f}x | "
                  f"{r['all']:.2f} s | {r['delivered']} | {r['logged']} | {unacc} | {r['requests']} ({r['ok_requests']}) |")
    if args.repeat > 1:
        print(f"\nMedian of {args.repeat} runs by ban time; \"unaccounted\" is the sum over all runs.")
    for sink, (w, _), (f, _) in rows:
        ratio = f["ban"] / w["ban"]
        print(f"{sink}: full spool {f['ban']:.2f} s vs writable {w['ban']:.2f} s = {ratio:.2f}x "
              f"(target 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    if bad:
        print(f"{bad} address(es) neither delivered nor named in the system log", file=sys.stderr)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--curl-max", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    ap.add_argument("--kinds", nargs="+", default=["none", "noop", "f2b-notify", "curl"],
                    help="also: tags, noop-tags, f2b-notify-filtered, f2b-notify-full (see above)")
    ap.add_argument("--full-spool", type=int, nargs="?", const=2000, metavar="N",
                    help="instead of the table: the f2b-notify storm of N bans (2000) with a writable "
                         "spool and with the spool on a full tmpfs (see above)")
    ap.add_argument("--sinks", nargs="+", choices=sorted(SINKS), default=["429", "slow"],
                    help="--full-spool: the stand-in answers 429 during the storm, or 200 after 2 s")
    ap.add_argument("--spool-size", default="512k", help="--full-spool: the tmpfs's size")
    ap.add_argument("--retry-after", type=int, default=2, help="--full-spool: the 429's Retry-After")
    ap.add_argument("--drain-timeout", type=float, default=120,
                    help="--full-spool: how long to wait after the storm for every address to be accounted for")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if args.full_spool:
        if os.geteuid() != 0:
            raise SystemExit("--full-spool mounts a tmpfs: run it as root")
        full_spool(args)
        return
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
