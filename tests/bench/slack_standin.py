#!/usr/bin/env python3
"""A Slack stand-in for benchmarks: answers every POST on loopback with what Slack answers on
success (`ok` for a webhook, {"ok":true} for chat.postMessage), after an optional delay.

Usage: slack_standin.py PORTFILE [DELAY_SECONDS [LOGFILE]] [--rate-limited-while FILE [--retry-after SECS]]
Binds 127.0.0.1 port 0 and writes the port to PORTFILE; with LOGFILE, appends one JSON line
per request: {"t": epoch seconds when answered, "path": ..., "body": ..., "status": ...}.
With --rate-limited-while, every POST is answered 429 with `Retry-After: SECS` (default 2)
and Slack's `rate_limited` body as long as FILE exists (the benchmark removes it to end the
rate limiting); the delay applies to those answers too.
"""
import argparse
import http.server
import json
import os
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("portfile")
ap.add_argument("delay", nargs="?", type=float, default=0.0)
ap.add_argument("logfile", nargs="?")
ap.add_argument("--rate-limited-while", metavar="FILE")
ap.add_argument("--retry-after", default="2")
ARGS = ap.parse_args()
DELAY = ARGS.delay
LOG = open(ARGS.logfile, "a") if ARGS.logfile else None
LOG_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        if DELAY:
            time.sleep(DELAY)
        limited = ARGS.rate_limited_while is not None and os.path.exists(ARGS.rate_limited_while)
        status = 429 if limited else 200
        if LOG is not None:
            with LOG_LOCK:
                LOG.write(json.dumps({"t": time.time(), "path": self.path, "body": data.decode("utf-8", "replace"), "status": status}) + "\n")
                LOG.flush()
        if limited:
            body = b"rate_limited"
        else:
            body = b'{"ok":true}' if self.path.startswith("/api/") else b"ok"
        self.send_response(status)
        if limited:
            self.send_header("Retry-After", ARGS.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(ARGS.portfile, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
