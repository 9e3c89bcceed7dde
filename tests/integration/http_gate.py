#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""http_gate.py DIR [PORT] - a gate controller with an HTTP/JSON API, for tests.

Serves GET /counters on 127.0.0.1:PORT (0 or absent: a free port) with the
JSON text in DIR/counters.json, as the file is at the time of the request.
DIR/mode makes it hostile instead (docs/http.md, tests/integration/test_agent_http.sh):
normal, huge (an endless body), deep (JSON nested 1,000 deep), garbage,
slow (the document one byte every 0.3 s), negative, float, string, bignum
(10^23), status500, trailing (bytes after the document). Without the bearer
token in $GATE_TOKEN a request gets 401. Each request appends its mode to
DIR/requests. Writes the port to DIR/port once listening; stops on SIGTERM."""
import http.server
import os
import signal
import sys
import time

DIR = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
TOKEN = os.environ.get("GATE_TOKEN", "")


def read(name, default=""):
    try:
        with open(os.path.join(DIR, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Gate(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, length=True):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        mode = read("mode", "normal")
        with open(os.path.join(DIR, "requests"), "a") as f:
            f.write(mode + "\n")
        if self.path != "/counters":
            return self.send(404, b"{}")
        if TOKEN and self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.send(401, b'{"error":"token"}')
        doc = read("counters.json", "{}").encode()
        try:
            if mode == "huge":      # no length, no end: the agent must stop reading
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                chunk = b'{"pad":"' + b"x" * 65536
                for _ in range(1000):
                    self.wfile.write(chunk)
            elif mode == "deep":
                self.send(200, b'{"a":' * 1000 + b"1" + b"}" * 1000)
            elif mode == "garbage":
                self.send(200, b"\x00\xffnot json {{")
            elif mode == "slow":    # every byte in time, the whole too late
                self.send_response(200)
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                for b in doc:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.3)
            elif mode in ("negative", "float", "string", "bignum"):
                bad = {"negative": b"-5", "float": b"5.5", "string": b'"12"',
                       "bignum": b"100000000000000000000000"}[mode]
                self.send(200, b'{"gates":[{"in":' + bad + b',"out":1},{"in":1,"out":1}]}')
            elif mode == "status500":
                self.send(500, doc)
            elif mode == "trailing":
                self.send(200, doc + b" {}")
            else:
                self.send(200, doc)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", PORT), Gate)
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
tmp = os.path.join(DIR, "port.tmp")
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, os.path.join(DIR, "port"))
server.serve_forever()
