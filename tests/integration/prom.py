#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""prom.py - /metrics and /healthz of turnstile-bridge for the bash tests.

Parses with Prometheus' own text parser (Debian's python3-prometheus-client,
text_string_to_metric_families): a scrape it cannot parse fails.

  prom.py scrape HOST:PORT FILE        parse /metrics, write "sample{labels} value" lines to FILE
  prom.py value FILE NAME [K=V...]     print the value of that sample (exit 1 if absent)
  prom.py health HOST:PORT             print the status code, then the body of /healthz
  prom.py dashboard FILE JSON          every metric name the Grafana dashboard queries is a
                                       family or sample in FILE (a parsed scrape)
  prom.py hostile HOST:PORT MAXCONN    hostile clients (see hostile()); prints one line each
"""
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(addr, path, timeout=10):
    try:
        with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def scrape(addr, out):
    status, headers, body = get(addr, "/metrics")
    if status != 200:
        sys.exit("scrape: status %d" % status)
    if not headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"):
        sys.exit("scrape: content type %r" % headers.get("Content-Type"))
    lines = []
    families = 0
    for fam in text_string_to_metric_families(body):
        families += 1
        lines.append("# family %s %s" % (fam.name, fam.type))
        for s in fam.samples:
            labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
            lines.append("%s{%s} %r" % (s.name, labels, s.value))
    if families == 0:
        sys.exit("scrape: no metric family")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def value(path, name, want):
    want = dict(kv.split("=", 1) for kv in want)
    for line in open(path):
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$", line.strip())
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'([a-zA-Z_]\w*)="([^"]*)"', m.group(2)))
        if all(labels.get(k) == v for k, v in want.items()):
            v = float(m.group(3))
            print(int(v) if v == int(v) else v)
            return
    sys.exit(1)


def dashboard(path, dash):
    names = set()
    for line in open(path):
        if line.startswith("# family "):
            names.add(line.split()[2])
        elif not line.startswith("#"):
            names.add(re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1))
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(json.load(open(dash)))
    used = set()
    for e in exprs:
        used.update(re.findall(r"\b((?:turnstile)_[a-z0-9_]+)", e))
    missing = sorted(used - names)
    print("%d queries, %d metric names, missing: %s" % (len(exprs), len(used),
                                                        " ".join(missing) or "none"))
    sys.exit(1 if missing or not exprs else 0)


def raw(addr, data, read=True, timeout=5):
    """Sends data on a new connection; returns the first response line ("" if none)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return s
        got = b""
        while b"\r\n" not in got:
            c = s.recv(4096)
            if not c:
                break
            got += c
        return got.split(b"\r\n", 1)[0].decode(errors="replace")
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        if read:
            s.close()


def hostile(addr, maxconn):
    # unknown path, POST, other methods, a path with .., a huge header, a huge request line
    print("unknown path:", raw(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"))
    print("POST:", raw(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"))
    print("DELETE:", raw(addr, b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
    print("dotdot:", raw(addr, b"GET /../metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
    print("huge header:", raw(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                              b"a" * 200000 + b"\r\n\r\n"))
    print("huge line:", raw(addr, b"GET /metrics?" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
    print("garbage:", raw(addr, b"\x00\x01\x02 nonsense\r\n\r\n"))
    # more connections than the bound, each sending half a request and keeping it open
    port = addr.rsplit(":", 1)[1]
    held = []
    for _ in range(maxconn * 4):
        try:
            held.append(raw(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", read=False))
        except OSError:
            pass
    time.sleep(1)
    # the connections the bridge accepted (the others wait in the kernel's queue, no process owns them)
    ss = subprocess.run(["ss", "-Htnp", "state", "established", "( sport = :%s )" % port],
                        capture_output=True, text=True).stdout
    accepted = sum(1 for line in ss.splitlines() if "turnstile-bri" in line)
    print("opened: %d, accepted by the bridge at once: %d" % (len(held), accepted))
    # while they are all held: a scrape is served once the server timed out the idle ones
    t0 = time.monotonic()
    try:
        status, _, body = get(addr, "/metrics", timeout=60)
    except OSError as e:
        status, body = 0, str(e)
    print("scrape while held: %d (%d bytes)" % (status, len(body)))
    closed = 0
    for s in held:
        s.settimeout(0.2)
        try:
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except OSError:
            closed += 1
    print("closed by the server meanwhile: %d of %d" % (closed, len(held)))
    for s in held:
        s.close()


def main():
    cmd = sys.argv[1]
    if cmd == "scrape":
        scrape(sys.argv[2], sys.argv[3])
    elif cmd == "value":
        value(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "health":
        try:
            status, _, body = get(sys.argv[2], "/healthz")
        except OSError as e:
            status, body = 0, str(e)
        print(status)
        print(body, end="")
    elif cmd == "dashboard":
        dashboard(sys.argv[2], sys.argv[3])
    elif cmd == "hostile":
        hostile(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
