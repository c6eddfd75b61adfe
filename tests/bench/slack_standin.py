#!/usr/bin/env python3
"""A Slack stand-in for benchmarks: answers every POST on loopback with what Slack answers on
success (`ok` for a webhook, {"ok":true} for chat.postMessage), after an optional delay.

Usage: slack_standin.py PORTFILE [DELAY_SECONDS [LOGFILE]]
Binds 127.0.0.1 port 0 and writes the port to PORTFILE; with LOGFILE, appends one JSON line
per request: {"t": epoch seconds when answered, "path": ..., "body": ...}.
"""
import http.server
import json
import sys
import threading
import time

DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
LOG = open(sys.argv[3], "a") if len(sys.argv) > 3 else None
LOG_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        if DELAY:
            time.sleep(DELAY)
        if LOG is not None:
            with LOG_LOCK:
                LOG.write(json.dumps({"t": time.time(), "path": self.path, "body": data.decode("utf-8", "replace")}) + "\n")
                LOG.flush()
        body = b'{"ok":true}' if self.path.startswith("/api/") else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
