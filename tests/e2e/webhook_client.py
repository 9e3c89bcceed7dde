#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""webhook_client.py - the e2e proof's webhook source (docs/e2e.md, "The webhook source").

  webhook_client.py URL TOKEN AGENT DIR

POSTs readings of AGENT (IDs AGENT:1, AGENT:2, ...) to the bridge's webhook, BATCH
a request, as a system that pushes its counts would: a request that gets no 200
(the client's own TIMEOUT_S passed, a 503, the connection refused while the bridge
restarts) is sent again, the same bytes, until it gets one. Readings are stamped
with the wall clock when made; SCP WH-0..WH-2 of CA H001 UNIT R900, known deltas.
Only once a batch got its 200 is the next one made.

Writes to DIR: sent.csv (every reading made, the batch appended before its
first try), head ("AGENT N": numbers 1..N made), pending (the readings of a batch
that never got its 200: "AGENT SEQ SEQ ENTRIES EXITS", the e2e store format) and
stats ("requests R retries T timeouts O errors E", updated after every batch).
Stops when DIR/stop exists, after the batch in hand got its 200 (or STOP_GRACE_S
of retrying), and then writes pending.
"""
import http.client
import os
import sys
import time
import urllib.parse

BATCH = 10
TIMEOUT_S = 2.0
PAUSE_S = 0.3
STOP_GRACE_S = 180


def reading(agent, seq, t):
    tm = time.gmtime(t)
    entries, exits = seq % 7 + 1, seq % 5
    fields = ["H001", "R900", "WH-%d" % (seq % 3), "WEBHOOK ST", "Z", "IND",
              time.strftime("%m-%d-%y", tm), time.strftime("%H:%M:%S", tm), "REGULAR",
              entries, exits, "%s:%d" % (agent, seq), time.strftime("%Y-%m-%d %H:%M:%S", tm),
              int(t * 1000), 1000 + seq, 500 + seq, "", seq]
    return ",".join(str(f) for f in fields), entries, exits


def post(url, token, body):
    """The HTTP status, or 0 when no answer came (timeout, refused, reset)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S)
    try:
        c.request("POST", u.path, body=body, headers={
            "Authorization": "Bearer " + token, "Content-Type": "text/csv"})
        r = c.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        c.close()


def main():
    url, token, agent, out = sys.argv[1:5]
    stop = os.path.join(out, "stop")
    st = {"requests": 0, "retries": 0, "timeouts": 0, "errors": 0}
    seq = 1
    with open(os.path.join(out, "sent.csv"), "a") as sent:
        while not os.path.exists(stop):
            now = time.time()
            batch = [reading(agent, seq + i, now) for i in range(BATCH)]
            body = "".join(line + "\n" for line, _, _ in batch).encode()
            sent.write(body.decode())
            sent.flush()
            with open(os.path.join(out, "head"), "w") as f:
                f.write("%s %d\n" % (agent, seq + BATCH - 1))
            give_up = None
            while True:
                st["requests"] += 1
                code = post(url, token, body)
                if code == 200:
                    break
                st["retries"] += 1
                st["timeouts" if code in (0, 503) else "errors"] += 1
                if code not in (0, 503):
                    sys.stderr.write("webhook_client: %s:%d..: HTTP %d\n" % (agent, seq, code))
                if os.path.exists(stop):
                    give_up = give_up or time.monotonic() + STOP_GRACE_S
                    if time.monotonic() > give_up:
                        with open(os.path.join(out, "pending"), "w") as f:
                            for i, (_, e, x) in enumerate(batch):
                                f.write("%s %d %d %d %d\n" % (agent, seq + i, seq + i, e, x))
                        return
                time.sleep(0.5)
            with open(os.path.join(out, "stats"), "w") as f:
                f.write("requests %(requests)d retries %(retries)d timeouts %(timeouts)d "
                        "errors %(errors)d\n" % st)
            seq += BATCH
            time.sleep(PAUSE_S)
    open(os.path.join(out, "pending"), "a").close()


if __name__ == "__main__":
    main()
