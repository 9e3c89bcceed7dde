#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""paho_pub.py - the reference pipeline's way: a Python publisher with paho-mqtt, same window.

Loads FILE (one message a line, e.g. the reading lines fill-store --lines
writes) into memory, connects (MQTT 3.1.1, clean session, TCP_NODELAY as
the agent) and publishes every line to TOPIC at QoS 1 with at most W
messages not yet PUBACKed: max_inflight_messages_set(W), W messages at the
CONNACK, then one more in each on_publish callback, all in paho's one
network loop (loop_forever), which is the fastest way to drive paho (no
second thread contending for the GIL). It disconnects when the last PUBACK
has arrived and prints:
  RESULT published=N elapsed_s=E rate=R cpu_s=C
(E: from the CONNACK to the last PUBACK; C: user+sys CPU seconds, loading
FILE included).

Written for Debian 12's python3-paho-mqtt (1.6.x API); run it with
/usr/bin/python3 (Debian's packages are not on other Pythons' path).

Usage: paho_pub.py -p PORT [-H HOST] -t TOPIC -f FILE [-w W]   (W default 100)
"""
import argparse
import resource
import socket
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("-w", "--window", type=int, default=100)
    a = ap.parse_args()
    if not 1 <= a.window <= 65535:
        ap.error("window: 1..65535")
    with open(a.file, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    n = len(lines)
    if n == 0:
        sys.exit("paho_pub: nothing to publish in " + a.file)

    topic, window = a.topic, a.window
    st = {"next": 0, "acked": 0, "inflight": 0, "t0": 0.0, "t1": 0.0}

    def fill(client):
        while st["inflight"] < window and st["next"] < n:
            info = client.publish(topic, lines[st["next"]], qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                print("paho_pub: publish: " + mqtt.error_string(info.rc), file=sys.stderr)
                return
            st["next"] += 1
            st["inflight"] += 1

    def on_connect(client, userdata, flags, rc):
        if rc != 0:
            sys.exit("paho_pub: connection refused: " + mqtt.connack_string(rc))
        if not st["t0"]:
            st["t0"] = time.monotonic()
        fill(client)

    def on_publish(client, userdata, mid):
        st["inflight"] -= 1
        st["acked"] += 1
        if st["acked"] == n:
            st["t1"] = time.monotonic()
            client.disconnect()
            return
        fill(client)

    c = mqtt.Client(client_id="", clean_session=True, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    c.on_connect = on_connect
    c.on_publish = on_publish
    c.connect(a.host, a.port, 60)
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.loop_forever()
    if st["acked"] != n:
        sys.exit("paho_pub: stopped after %d of %d PUBACKs" % (st["acked"], n))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    el = st["t1"] - st["t0"]
    print("RESULT published=%d elapsed_s=%.3f rate=%.0f cpu_s=%.2f"
          % (n, el, n / el if el > 0 else 0, ru.ru_utime + ru.ru_stime))


if __name__ == "__main__":
    main()
