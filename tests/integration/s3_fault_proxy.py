#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""s3_fault_proxy.py - an HTTP proxy in front of S3Proxy that answers as a
failing object store would, for the S3 client's hostile tests.

  s3_fault_proxy.py UPSTREAM_PORT PLAN_FILE PORT_FILE [--conditional KEY_ID_FILE SECRET_FILE]

Listens on a free 127.0.0.1 port (written to PORT_FILE once it listens) and
forwards each request, bytes and headers as they came (the SigV4 signature
covers the Host header, which is kept), to 127.0.0.1:UPSTREAM_PORT. Before
each request it takes the first word of PLAN_FILE (and rewrites the file
without it) and does what it says:
  fwd       forward (also what an empty plan does)
  503, 500, 412, ...   answer that status with an S3 error body, forward nothing
  200       answer 200 with an empty body, forward nothing
  fwd503    forward, then answer 503 to the client (a write that happened
            but whose answer was lost)
  reset     close the connection without answering
  big       answer 200 with a body of 8 MiB (an answer over the client's bound)
  trunc     answer a ListObjectsV2 page that is truncated with the same token forever
  hold      hold the request: forward nothing, answer nothing, write
            "METHOD PATH" to PLAN_FILE.held (a marker for the test, which
            then SIGKILLs the client while the request is in flight), and
            keep the connection until the client closes it (at most 300 s)
  hold:METHOD:REGEX
            the same, but the word stays first in the plan (and the request
            is forwarded as with an empty plan) until a request with that
            method whose path matches the Python regular expression comes,
            e.g. hold:PUT:\.ckpt$ (a checkpoint's PUT) or
            hold:DELETE:/\.part- (a hidden data object's delete)
Every request is appended to PLAN_FILE.log as "METHOD PATH ACTION", then
" If-None-Match=V", " x-goog-if-generation-match=V", " x-amz-security-token"
and " x-amz-copy-source=V" (a server-side copy: where from) for those headers
it carried.

--conditional: conditional writes as AWS S3 documents them, which S3Proxy
2.6.0 ignores. A PUT or POST with If-None-Match: * (or GCS's
x-goog-if-generation-match: 0) on a key that exists is answered 412
PreconditionFailed and not forwarded; the check (a HEAD to S3Proxy, signed
with the credentials in the two files) and the forward are done under one
lock that every PUT, POST and DELETE takes, so two writers racing for a key
cannot both pass it. Such a refusal is logged as action "cond412"; a HEAD
that answers neither 200 nor 404 is answered 503 (the client retries)."""
import http.client
import http.server
import os
import re
import select
import socket
import subprocess
import sys
import threading

UPSTREAM = int(sys.argv[1])
PLAN, PORT_FILE = sys.argv[2], sys.argv[3]
CREDS = None
if len(sys.argv) == 7 and sys.argv[4] == "--conditional":
    with open(sys.argv[5]) as f1, open(sys.argv[6]) as f2:
        CREDS = (f1.readline().strip(), f2.readline().strip())
elif len(sys.argv) != 4:
    sys.exit("usage: s3_fault_proxy.py UPSTREAM_PORT PLAN_FILE PORT_FILE "
             "[--conditional KEY_ID_FILE SECRET_FILE]")
WRITE_LOCK = threading.Lock()


def head_status(host, path):
    """The status S3Proxy answers a signed HEAD of the key in path."""
    name = host.rsplit(":", 1)[0]
    url = f"http://{name}:{UPSTREAM}{path.split('?', 1)[0]}"
    conf = (f'user = "{CREDS[0]}:{CREDS[1]}"\naws-sigv4 = "aws:amz:us-east-1:s3"\n'
            f'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n')
    r = subprocess.run(["curl", "-sS", "-K", "-", "-I", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", "30", url], input=conf, capture_output=True, text=True)
    return r.stdout.strip()


PLAN_LOCK = threading.Lock()


def take(method="", path=""):
    with PLAN_LOCK:
        return take_locked(method, path)


def take_locked(method, path):
    try:
        with open(PLAN) as f:
            words = f.read().split()
    except FileNotFoundError:
        words = []
    if not words:
        return "fwd"
    if words[0].startswith("hold:"):
        _, m, rx = words[0].split(":", 2)
        if m != method or not re.search(rx, path):
            return "fwd"
        words[0] = "hold"
    with open(PLAN + ".new", "w") as f:
        f.write(" ".join(words[1:]))
    os.replace(PLAN + ".new", PLAN)
    return words[0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        action = take(self.command, self.path)
        # the headers a test checks were sent, by name (values only where not secret)
        seen = "".join(f" {h}={self.headers[h]}" for h in ("If-None-Match",
                       "x-goog-if-generation-match") if h in self.headers)
        if "x-amz-security-token" in self.headers:
            seen += " x-amz-security-token"
        if "x-amz-copy-source" in self.headers:
            seen += f" x-amz-copy-source={self.headers['x-amz-copy-source']}"
        with open(PLAN + ".log", "a") as f:
            f.write(f"{self.command} {self.path} {action}{seen}\n")
        if action == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "hold":
            with open(PLAN + ".held.new", "w") as f:
                f.write(f"{self.command} {self.path}\n")
            os.replace(PLAN + ".held.new", PLAN + ".held")
            self.close_connection = True
            for _ in range(3000):   # until the client goes away (at most 300 s)
                r, _, _ = select.select([self.connection], [], [], 0.1)
                if r and not self.connection.recv(65536):
                    break
            return
        if action == "big":
            self.answer(200, b"x" * (8 << 20), "application/octet-stream")
            return
        if action == "trunc":
            self.answer(200, b"<?xml version='1.0'?><ListBucketResult><IsTruncated>true"
                        b"</IsTruncated><NextContinuationToken>same</NextContinuationToken>"
                        b"<ContinuationToken>same</ContinuationToken></ListBucketResult>")
            return
        if action == "200":
            self.answer(200, b"")
            return
        if action.isdigit():
            code = {"412": "PreconditionFailed", "503": "SlowDown"}.get(action, "InternalError")
            self.answer(int(action), f"<?xml version='1.0'?><Error><Code>{code}</Code>"
                        f"<Message>injected</Message></Error>".encode())
            return
        conditional = (self.headers.get("If-None-Match") == "*" or
                       self.headers.get("x-goog-if-generation-match") == "0")
        if CREDS and self.command in ("PUT", "POST", "DELETE"):
            with WRITE_LOCK:
                if conditional and self.command != "DELETE":
                    st = head_status(self.headers.get("Host", "localhost"), self.path)
                    if st != "404":
                        code, status = ("PreconditionFailed", 412) if st == "200" else \
                                       ("SlowDown", 503)
                        with open(PLAN + ".log", "a") as f:
                            f.write(f"{self.command} {self.path} cond{status}\n")
                        self.answer(status, f"<?xml version='1.0'?><Error><Code>{code}</Code>"
                                    f"<Message>conditional write: HEAD {st}</Message>"
                                    f"</Error>".encode())
                        return
                self.forward(action, body)
            return
        self.forward(action, body)

    def forward(self, action, body):
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            up.putheader(k, v)
        up.endheaders(body)
        r = up.getresponse()
        data = r.read()
        if action == "fwd503":
            up.close()
            self.answer(503, b"<Error><Code>SlowDown</Code></Error>")
            return
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        up.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".new", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(PORT_FILE + ".new", PORT_FILE)
server.serve_forever()
