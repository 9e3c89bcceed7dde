#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""webhook.py - clients of the bridge's webhook (bridge/webhook.h) for
test_bridge_webhook.sh.

  webhook.py gen AGENT FIRST COUNT [--json]
      COUNT readings of AGENT, sequence FIRST.., stamped one a second up to
      now (UTC), SCP WH-0..WH-2, known deltas; the CSV body (one a line) or
      the JSON form {"readings": [...]} on stdout.
  webhook.py slow HOST:PORT TOKEN SECONDS
      a slowloris: headers with Content-Length 60000, then one body byte
      every 0.2 s until the bridge closes the connection or SECONDS pass;
      prints "closed after N bytes" or "still open".
  webhook.py huge HOST:PORT TOKEN BYTES
      a chunked body of BYTES bytes (no Content-Length): prints "closed" if
      the bridge closed the connection before taking it all, else the status.
"""
import json
import socket
import sys
import time


def gen(agent, first, count, as_json):
    now = int(time.time()) - count - 5
    lines = []
    for i in range(count):
        seq = first + i
        t = now + i
        tm = time.gmtime(t)
        date = time.strftime("%m-%d-%y", tm)
        clock = time.strftime("%H:%M:%S", tm)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", tm)
        scp = "WH-%d" % (seq % 3)
        entries, exits = seq % 7 + 1, seq % 5
        lines.append(",".join(str(f) for f in [
            "H001", "R900", scp, "WEBHOOK ST", "Z", "IND", date, clock, "REGULAR",
            entries, exits, "%s:%d" % (agent, seq), stamp, t * 1000, 1000 + seq, 500 + seq,
            "", seq]))
    if as_json:
        sys.stdout.write(json.dumps({"readings": lines}) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def slow(addr, token, seconds):
    s = connect(addr)
    s.sendall(("POST /v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: text/csv\r\nContent-Length: 60000\r\n\r\n" % token).encode())
    s.settimeout(0.2)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s.send(b"A")
            sent += 1
            if s.recv(4096) == b"":
                print("closed after %d bytes" % sent)
                return
        except socket.timeout:
            continue
        except OSError:
            print("closed after %d bytes" % sent)
            return
    print("still open")


def huge(addr, token, size):
    s = connect(addr)
    s.sendall(("POST /v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n" % token).encode())
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < size:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        s.sendall(b"0\r\n\r\n")
        answer = s.recv(4096)
    except OSError:
        print("closed")
        return
    print("closed" if not answer else answer.split(b"\r\n")[0].decode(errors="replace"))


def main(argv):
    if argv[1] == "gen":
        gen(argv[2], int(argv[3]), int(argv[4]), "--json" in argv)
    elif argv[1] == "slow":
        slow(argv[2], argv[3], float(argv[4]))
    elif argv[1] == "huge":
        huge(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
