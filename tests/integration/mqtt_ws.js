// SPDX-License-Identifier: Apache-2.0
// mqtt_ws.js - a scriptable MQTT client over WebSockets (mosquitto 2.0.11's own clients
// cannot speak them), for tests/integration/test_broker_acl.sh. MQTT.js from the dashboard's
// node_modules (scripts/dashboard-build; run with NODE_PATH=<build-dashboard>/node_modules).
//
//   node mqtt_ws.js URL USER PASSWORD [--ca FILE] [--sub TOPIC]... [--pub TOPIC MESSAGE]...
//                   [--retain] [--wait MS]
//
// Connects with MQTT 5 (so that the broker's PUBACK and SUBACK carry reason codes), subscribes
// (QoS 1), publishes (QoS 1), then prints what arrives for MS milliseconds (default 1500).
// One line per event on stdout:
//   connect ok | connect refused CODE (REASON)        (then exit 3)
//   suback TOPIC CODE          0/1/2 granted QoS, >= 128 refused (135: not authorized)
//   puback TOPIC CODE          0 accepted (or no subscriber: 16), >= 128 refused
//   message TOPIC PAYLOAD
// Exit 0 after the wait; 3 when the connection is refused; 1 on anything else.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const [url, username, password, ...rest] = process.argv.slice(2);
if (!url || username === undefined || password === undefined) {
  process.stderr.write('usage: mqtt_ws.js URL USER PASSWORD [--ca FILE] [--sub T]... [--pub T M]... [--retain] [--wait MS]\n');
  process.exit(2);
}
const subs = [];
const pubs = [];
let ca = null;
let retain = false;
let waitMs = 1500;
for (let i = 0; i < rest.length; i++) {
  switch (rest[i]) {
    case '--ca': ca = fs.readFileSync(rest[++i]); break;
    case '--sub': subs.push(rest[++i]); break;
    case '--pub': pubs.push([rest[i + 1], rest[i + 2]]); i += 2; break;
    case '--retain': retain = true; break;
    case '--wait': waitMs = Number(rest[++i]); break;
    default: process.stderr.write(`mqtt_ws.js: unknown argument ${rest[i]}\n`); process.exit(2);
  }
}

const out = (s) => process.stdout.write(`${s}\n`);
const client = mqtt.connect(url, {
  username,
  password,
  protocolVersion: 5,
  clientId: `ws-test-${process.pid}`,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 10000,
  ca: ca || undefined,
  rejectUnauthorized: true,
});
const deadline = setTimeout(() => { out('timeout'); process.exit(1); }, 20000 + waitMs);

client.on('error', (err) => {
  if (err.code !== undefined && !client.connected) {
    out(`connect refused ${err.code} (${err.message})`);
    process.exit(3);
  }
  out(`error ${err.code === undefined ? '' : err.code} ${err.message}`);
});
client.on('message', (topic, payload) => out(`message ${topic} ${payload.toString()}`));
client.on('connect', async () => {
  out('connect ok');
  for (const t of subs) {
    const granted = await new Promise((resolve) => {
      client.subscribe(t, { qos: 1 }, (err, g) => resolve(err ? [{ topic: t, qos: err.code ?? 128 }] : g));
    });
    for (const g of granted) out(`suback ${g.topic} ${g.qos}`);
  }
  for (const [t, m] of pubs) {
    const code = await new Promise((resolve) => {
      client.publish(t, m, { qos: 1, retain }, (err, packet) =>
        resolve(err ? (err.code ?? 128) : ((packet && packet.reasonCode) || 0)));
    });
    out(`puback ${t} ${code}`);
  }
  setTimeout(() => {
    clearTimeout(deadline);
    client.end(false, () => process.exit(0));
  }, waitMs);
});
let connected = false;
client.on('connect', () => { connected = true; });
client.on('close', () => {
  if (client.disconnecting) return;
  if (!connected) {
    out('connect refused closed (the broker closed the connection)');
    process.exit(3);
  }
  out('closed by the broker');
  process.exit(1);
});
