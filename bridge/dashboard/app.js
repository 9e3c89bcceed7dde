// SPDX-License-Identifier: Apache-2.0
// turnstile-edge live dashboard (docs/dashboard.md).
//
// A static page served by mosquitto itself (a websockets listener with http_dir); it connects
// back to the same listener over MQTT/WebSockets with MQTT.js and subscribes to the agents'
// retained status and state and to the bridge's retained per-station window summaries:
//
//   turnstile/v1/<station>/<agent>/status   {"state":"online"|"offline","reason",...,"backlog"}
//   turnstile/v1/<station>/<agent>/state    {"backlog","clock","warnings","turnstiles":[...,"warning"],"devices":[...]}
//   turnstile/v1/<station>/window           {"window_start_ms","window_end_ms","date","time",
//                                            "turnstiles":[{"ca","unit","scp",...,"entries","exits"}]}
//
// Everything is drawn from these messages as they arrive (no reload, no polling). Windows
// accumulate in the page from the moment it opened (the broker retains only the latest).
//
// URL parameters (all optional): username, password (a kiosk signs in without the form),
// url (the broker's WebSocket URL; default: this page's host and port, path /mqtt, ws: or
// wss: as the page came), windows (how many windows per station the chart keeps, default 96),
// insecure=1 (send a password over ws:// to a host that is not loopback; refused otherwise).
//
// Data from the broker is only ever put into the page as text (textContent, setAttribute),
// never as HTML.

import mqtt from 'mqtt';

const TOPICS = ['turnstile/v1/+/+/status', 'turnstile/v1/+/+/state', 'turnstile/v1/+/window'];
const params = new URLSearchParams(location.search);
const MAX_WINDOWS = intParam('windows', 1, 5000, 96);
const BROKER_URL = params.get('url') || defaultUrl();

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $('conn'),
  signout: $('signout'),
  login: $('login'),
  why: $('login-why'),
  username: $('username'),
  password: $('password'),
  stations: $('stations'),
  empty: $('empty'),
  counters: $('counters'),
};

// --- the model ----------------------------------------------------------------------------
/** station id -> {id, agents: Map(agent id -> agent), windows: Map(start ms -> window)} */
const stations = new Map();
const counts = { messages: 0, malformed: 0, refusedTopics: [] };
const dirty = new Set();
let client = null;
let frame = 0;

function intParam(name, lo, hi, dflt) {
  const v = Number.parseInt(params.get(name) ?? '', 10);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
}

/** True when a password would cross a network unencrypted (ws:// to a host not on loopback). */
function unencryptedRemote(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'ws:' && !/^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(u.hostname);
  } catch {
    return false;
  }
}

function defaultUrl() {
  if (!location.host) return '';
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/mqtt`;
}

function stationOf(id) {
  let st = stations.get(id);
  if (!st) {
    st = { id, agents: new Map(), windows: new Map() };
    stations.set(id, st);
  }
  return st;
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v) => (typeof v === 'string' ? v : '');

function backlogOf(ag) {
  return num(ag.state?.backlog) ?? num(ag.status?.backlog);
}

function onAgentMessage(stationId, agentId, leaf, doc) {
  const st = stationOf(stationId);
  let ag = st.agents.get(agentId);
  if (!doc) { // an empty retained message: the topic was cleared
    if (ag) {
      ag[leaf] = null;
      if (!ag.status && !ag.state) st.agents.delete(agentId);
    }
    if (!st.agents.size && !st.windows.size) stations.delete(stationId);
    return;
  }
  if (!ag) {
    ag = { id: agentId, status: null, state: null, statusAt: 0, stateAt: 0, backlogTrend: 0 };
    st.agents.set(agentId, ag);
  }
  const before = backlogOf(ag);
  ag[leaf] = doc;
  ag[`${leaf}At`] = Date.now();
  const after = backlogOf(ag);
  if (before !== null && after !== null && after !== before) ag.backlogTrend = Math.sign(after - before);
}

function onWindowMessage(stationId, doc) {
  if (!doc) return; // a cleared window summary: keep what the page has drawn
  const start = num(doc.window_start_ms);
  const end = num(doc.window_end_ms);
  if (start === null || end === null || !Array.isArray(doc.turnstiles)) {
    counts.malformed++;
    return;
  }
  const rows = doc.turnstiles.filter((t) => t && typeof t === 'object');
  const w = {
    start, end, date: str(doc.date), time: str(doc.time), rows,
    entries: rows.reduce((a, t) => a + (num(t.entries) ?? 0), 0),
    exits: rows.reduce((a, t) => a + (num(t.exits) ?? 0), 0),
  };
  const st = stationOf(stationId);
  st.windows.set(start, w); // a window published again (more rows) replaces the earlier one
  if (st.windows.size > MAX_WINDOWS) {
    const keys = [...st.windows.keys()].sort((a, b) => a - b);
    for (const k of keys.slice(0, keys.length - MAX_WINDOWS)) st.windows.delete(k);
  }
}

const decoder = new TextDecoder();

function onMessage(topic, payload) {
  counts.messages++;
  const t = topic.split('/');
  if (t[0] !== 'turnstile' || t[1] !== 'v1') return;
  let doc = null;
  if (payload.length) {
    try {
      doc = JSON.parse(decoder.decode(payload));
    } catch {
      doc = undefined;
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
      counts.malformed++;
      console.warn(`dashboard: ignored a malformed message on ${topic}`);
      return;
    }
  }
  if (t.length === 5 && (t[4] === 'status' || t[4] === 'state')) onAgentMessage(t[2], t[3], t[4], doc);
  else if (t.length === 4 && t[3] === 'window') onWindowMessage(t[2], doc);
  else return;
  markDirty(t[2]);
}

// --- the connection -----------------------------------------------------------------------
function setConn(state, text) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = text;
}

function showLogin(why) {
  ui.why.textContent = why;
  ui.login.hidden = false;
  ui.signout.hidden = true;
  if (!ui.username.value && params.get('username')) ui.username.value = params.get('username');
  (ui.username.value ? ui.password : ui.username).focus();
}

function clearAll() {
  stations.clear();
  counts.messages = 0;
  counts.malformed = 0;
  counts.refusedTopics = [];
  ui.stations.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  renderCounters();
}

/** Connects with these credentials (username '' = anonymous); any earlier client is closed. */
function start(username, password) {
  if (client) client.end(true);
  clearAll();
  if (!BROKER_URL) {
    setConn('error', 'no broker: open this page from the broker (http://BROKER:PORT/) or add ?url=ws://HOST:PORT/mqtt');
    return;
  }
  const who = username ? ` as ${username}` : '';
  if (username && unencryptedRemote(BROKER_URL) && params.get('insecure') !== '1') {
    setConn('refused', `not sending a password to ${BROKER_URL}`);
    showLogin(`The password would cross the network unencrypted (${BROKER_URL}). Open this page with ` +
      '?url=wss://BROKER:8443/mqtt (the broker\'s TLS WebSocket listener), or add &insecure=1 on a network you trust.');
    return;
  }
  setConn('connecting', `connecting to ${BROKER_URL}${who}…`);
  const opts = {
    clientId: `turnstile-dashboard-${Math.random().toString(16).slice(2, 10)}`,
    protocolVersion: 4, // MQTT 3.1.1, as the agents and the bridge
    clean: true,
    keepalive: 30,
    reconnectPeriod: 2000,
    connectTimeout: 10000,
    resubscribe: false, // subscribed again on every 'connect' below
  };
  if (username) {
    opts.username = username;
    opts.password = password;
  }
  const cl = mqtt.connect(BROKER_URL, opts);
  client = cl;
  cl.on('connect', () => {
    if (client !== cl) return;
    setConn('connected', `connected to ${BROKER_URL}${who}`);
    ui.login.hidden = true;
    ui.signout.hidden = !username;
    cl.subscribe(TOPICS, { qos: 1 }, (err, granted) => {
      if (client !== cl) return;
      if (err) {
        setConn('error', `subscription failed: ${err.message}`);
        return;
      }
      counts.refusedTopics = (granted || []).filter((g) => g.qos === 128).map((g) => g.topic);
      renderCounters();
    });
  });
  cl.on('reconnect', () => { if (client === cl) setConn('connecting', `reconnecting to ${BROKER_URL}${who}…`); });
  cl.on('offline', () => { if (client === cl) setConn('disconnected', `connection to ${BROKER_URL} lost; retrying`); });
  cl.on('error', (err) => {
    if (client !== cl) return;
    // CONNACK 4 (bad username or password) or 5 (not authorised): ask, do not hammer
    if (err && (err.code === 4 || err.code === 5)) {
      cl.end(true);
      client = null;
      setConn('refused', `the broker refused the connection${who}`);
      showLogin(username ? `Refused: wrong username or password for ${username}.`
                         : 'This broker needs a username and password.');
      return;
    }
    setConn('error', `${err?.message || err}; retrying`);
  });
  cl.on('message', onMessage);
}

ui.login.addEventListener('submit', (ev) => {
  ev.preventDefault();
  start(ui.username.value.trim(), ui.password.value);
});
ui.signout.addEventListener('click', () => {
  if (client) client.end(true);
  client = null;
  clearAll();
  setConn('idle', 'signed out');
  ui.password.value = '';
  showLogin('');
});

// --- drawing ------------------------------------------------------------------------------
/** An element: h('td', {class: 'x', 'data-y': 1}, 'text', child...). Text only, never HTML. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false) el.append(k);
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function sv(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false) el.append(k);
  return el;
}
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
}

const fmt = new Intl.NumberFormat('en-US');
const n = (v) => (num(v) === null ? '–' : fmt.format(v));

function ageText(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
/** "3 s ago", kept current by the 1 s ticker. */
function age(ms) {
  if (!ms) return '–';
  return h('span', { class: 'age', 'data-t': ms, title: new Date(ms).toLocaleString() }, ageText(ms));
}
function isoMs(s) {
  const t = Date.parse(str(s));
  return Number.isFinite(t) ? t : 0;
}

function statusOf(ag) {
  const s = str(ag.status?.state);
  return s === 'online' || s === 'offline' ? s : 'unknown';
}

function markDirty(id) {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  for (const id of dirty) {
    const old = ui.stations.querySelector(`section.station[data-station="${CSS.escape(id)}"]`);
    const st = stations.get(id);
    if (!st) {
      old?.remove();
      continue;
    }
    const el = renderStation(st);
    if (old) old.replaceWith(el);
    else {
      const after = [...ui.stations.querySelectorAll('section.station')].find((s) => s.dataset.station > id);
      ui.stations.insertBefore(el, after || null);
    }
  }
  dirty.clear();
  ui.empty.hidden = stations.size > 0;
  renderCounters();
}

function renderCounters() {
  const parts = [`${fmt.format(counts.messages)} messages`];
  if (counts.malformed) parts.push(`${fmt.format(counts.malformed)} malformed ignored`);
  if (counts.refusedTopics.length) parts.push(`refused by the broker's ACL: ${counts.refusedTopics.join(', ')}`);
  ui.counters.textContent = parts.join(' · ');
  ui.counters.classList.toggle('warn', counts.refusedTopics.length > 0 || counts.malformed > 0);
}

function renderStation(st) {
  const agents = [...st.agents.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const windows = [...st.windows.values()].sort((a, b) => a.start - b.start);
  const online = agents.filter((a) => statusOf(a) === 'online').length;
  const names = new Set();
  for (const a of agents) for (const t of a.state?.turnstiles || []) if (str(t?.station)) names.add(t.station);
  if (!names.size && windows.length) for (const t of windows.at(-1).rows) if (str(t.station)) names.add(t.station);
  const health = !agents.length ? 'none' : online === agents.length ? 'all' : online ? 'some' : 'down';

  return h('section', { class: 'station', 'data-station': st.id, 'data-online': online, 'data-agents': agents.length },
    h('header', {},
      h('h2', {}, st.id, names.size ? h('span', { class: 'names' }, [...names].join(' · ')) : null),
      h('span', { class: `pill ${health}` },
        agents.length ? `${online} of ${agents.length} controller${agents.length === 1 ? '' : 's'} online` : 'no controller seen')),
    h('div', { class: 'cols' },
      h('div', { class: 'col' }, h('h3', {}, 'Controllers'), agentTable(agents)),
      h('div', { class: 'col chartbox' }, h('h3', {}, 'Entries and exits per window'), chart(windows))),
    h('h3', {}, 'Devices'), deviceTable(agents),
    h('h3', {}, 'Turnstiles'), turnstileTable(agents, windows.at(-1)));
}

function table(cls, head, rows, emptyText) {
  if (!rows.length) return h('p', { class: 'none' }, emptyText);
  return h('div', { class: 'scroll' },
    h('table', { class: cls },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: /^[#]/.test(c) ? 'r' : null }, c.replace(/^#/, ''))))),
      h('tbody', {}, rows)));
}

function agentTable(agents) {
  const rows = agents.map((a) => {
    const status = statusOf(a);
    const reason = str(a.status?.reason);
    const backlog = backlogOf(a);
    const trend = a.backlogTrend > 0 ? ['▲', 'growing'] : a.backlogTrend < 0 ? ['▼', 'draining'] : null;
    const storeErr = str(a.status?.store_error);
    const warnings = num(a.state?.warnings) ?? 0;
    const stateTime = isoMs(a.state?.time) || a.stateAt;
    return h('tr', { class: `agent ${status}`, 'data-agent': a.id, 'data-status': status, 'data-backlog': backlog ?? '' },
      h('td', {}, h('b', {}, a.id)),
      h('td', {}, h('span', { class: `badge ${status}` }, status), reason && status === 'offline' ? h('span', { class: 'reason' }, ` ${reason}`) : null,
        warnings > 0 ? h('div', { class: 'err warnings' }, `${warnings} turnstile${warnings === 1 ? '' : 's'} counting only anomalies`) : null),
      h('td', { class: 'r backlog' }, n(backlog),
        trend ? h('span', { class: `trend ${trend[1]}`, title: `backlog ${trend[1]}` }, ` ${trend[0]}`) : null,
        storeErr ? h('div', { class: 'err' }, `store: ${storeErr}`) : null),
      h('td', {}, str(a.state?.clock) || '–'),
      h('td', {}, str(a.status?.version) || '–'),
      h('td', {}, isoMs(a.status?.started) ? age(isoMs(a.status.started)) : '–'),
      h('td', {}, age(stateTime)));
  });
  return table('agents', ['Controller', 'Status', '#Backlog', 'Clock', 'Version', 'Started', 'Last state'], rows,
    'No controller has published yet.');
}

function deviceTable(agents) {
  const rows = [];
  for (const a of agents) {
    const stale = statusOf(a) !== 'online';
    for (const d of a.state?.devices || []) {
      if (!d || typeof d !== 'object') continue;
      const link = ['up', 'backoff', 'down'].includes(d.link) ? d.link : 'unknown';
      const rtt = num(d.rtt_us);
      rows.push(h('tr', { class: `device${stale ? ' stale' : ''}`, 'data-agent': a.id, 'data-device': str(d.name), 'data-link': link },
        h('td', {}, a.id), h('td', {}, h('b', {}, str(d.name))), h('td', {}, str(d.kind)),
        h('td', {}, h('span', { class: `badge link-${link}` }, link)),
        ['polls', 'errors', 'timeouts', 'exceptions', 'crc_errors', 'short_responses', 'connect_errors'].map((k) =>
          h('td', { class: `r${k !== 'polls' && num(d[k]) > 0 ? ' bad' : ''}` }, n(d[k]))),
        h('td', { class: 'err' }, str(d.last_error)),
        h('td', { class: 'r' }, rtt === null || rtt <= 0 ? '–' : rtt >= 1000 ? `${(rtt / 1000).toFixed(1)} ms` : `${rtt} µs`)));
    }
  }
  return table('devices', ['Controller', 'Device', 'Kind', 'Link', '#Polls', '#Errors', '#Timeouts', '#Exceptions',
    '#CRC', '#Short', '#Connect', 'Last error', '#RTT'], rows, 'No device state yet.');
}

const tkey = (t) => `${str(t.ca)}\u0000${str(t.unit)}\u0000${str(t.scp)}`;

function turnstileTable(agents, lastWindow) {
  const inWindow = new Map();
  for (const r of lastWindow?.rows || []) {
    const k = tkey(r);
    const v = inWindow.get(k) || [0, 0];
    inWindow.set(k, [v[0] + (num(r.entries) ?? 0), v[1] + (num(r.exits) ?? 0)]);
  }
  const rows = [];
  for (const a of agents) {
    const stale = statusOf(a) !== 'online';
    for (const t of a.state?.turnstiles || []) {
      if (!t || typeof t !== 'object') continue;
      const w = inWindow.get(tkey(t));
      const warning = str(t.warning);
      rows.push(h('tr', {
        class: `turnstile${stale ? ' stale' : ''}${warning ? ' warn' : ''}`, 'data-agent': a.id, 'data-turnstile': str(t.name),
        'data-entries-counted': num(t.entries_counted) ?? '', 'data-exits-counted': num(t.exits_counted) ?? '',
        'data-warning': warning ? 'yes' : null,
      },
      h('td', {}, a.id), h('td', {}, h('b', {}, str(t.name)),
        warning ? h('span', { class: 'badge warn', title: warning }, '⚠ anomalies') : null),
      h('td', {}, str(t.ca)), h('td', {}, str(t.unit)), h('td', {}, str(t.scp)), h('td', {}, str(t.station)),
      h('td', { class: 'r in' }, n(t.entries_counted)), h('td', { class: 'r out' }, n(t.exits_counted)),
      h('td', { class: 'r' }, w ? `${fmt.format(w[0])} / ${fmt.format(w[1])}` : '–'),
      h('td', { class: 'r dim' }, `${n(t.entries)} / ${n(t.exits)}`),
      h('td', {}, num(t.time_ms) > 0 ? age(t.time_ms) : '–')));
      // the agent's anomaly warning (docs/mqtt.md, "The anomaly warning"), under its row
      if (warning) {
        rows.push(h('tr', { class: `turnstile-warning${stale ? ' stale' : ''}`, 'data-agent': a.id, 'data-turnstile': str(t.name) },
          h('td', { colspan: 11 },
            h('span', { class: 'warn-text' }, `⚠ ${str(t.name)}: ${warning}.`),
            h('span', { class: 'hint' }, ` Check the turnstile's register map in ${a.id}'s config (order, width, ` +
              'entries_address, exits_address); turnstile-agent --probe -c FILE shows the registers read in every order.'))));
      }
    }
  }
  return table('turnstiles', ['Controller', 'Turnstile', 'CA', 'UNIT', 'SCP', 'Station', '#Entries', '#Exits',
    '#Last window in / out', '#Registers', 'Last reading'], rows, 'No turnstile state yet.');
}

/** Grouped bars, entries and exits, one group per window, oldest on the left. */
function chart(windows) {
  const W = 640, H = 190, L = 46, R = 8, T = 12, B = 34;
  const pw = W - L - R, ph = H - T - B;
  const last = windows.at(-1);
  const total = windows.reduce((a, w) => [a[0] + w.entries, a[1] + w.exits], [0, 0]);
  const box = h('div', { class: 'chart-wrap' });
  if (!windows.length) {
    box.append(h('p', { class: 'none' }, 'No closed window yet: the bridge publishes one after each checkpoint.'));
    box.append(sv('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-windows': 0, role: 'img', 'aria-label': 'no windows yet' }));
    return box;
  }
  const max = niceMax(Math.max(1, ...windows.map((w) => Math.max(w.entries, w.exits))));
  const slots = Math.max(windows.length, 12);
  const slot = pw / slots;
  const bw = Math.max(1, slot * 0.4);
  const y = (v) => T + ph - (v / max) * ph;
  const svg = sv('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'xMidYMid meet', role: 'img',
    'data-windows': windows.length, 'data-entries': total[0], 'data-exits': total[1],
    'aria-label': `${windows.length} windows; latest ending ${last.date} ${last.time}: ${last.entries} entries, ${last.exits} exits`,
  });
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      sv('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt.format(Math.round(v))));
  }
  windows.forEach((w, i) => {
    const x0 = L + i * slot + (slot - 2 * bw) / 2;
    svg.append(sv('g', { class: 'win', 'data-start': w.start },
      sv('title', {}, `${w.date} ${w.time} (window end, station time): ${fmt.format(w.entries)} entries, ${fmt.format(w.exits)} exits, ${w.rows.length} rows`),
      sv('rect', { class: 'bar in', x: x0, y: y(w.entries), width: bw, height: Math.max(0, T + ph - y(w.entries)) }),
      sv('rect', { class: 'bar out', x: x0 + bw, y: y(w.exits), width: bw, height: Math.max(0, T + ph - y(w.exits)) })));
  });
  // time labels (window end, station time) under every k-th group, at least 70 px apart
  const every = Math.max(1, Math.ceil(70 / slot));
  for (let i = windows.length - 1; i >= 0; i -= every) {
    const x = L + i * slot + slot / 2;
    svg.append(sv('line', { class: 'axis', x1: x, x2: x, y1: T + ph, y2: T + ph + 4 }),
      sv('text', { class: 'tick', x, y: H - B + 16, 'text-anchor': 'middle' }, windows[i].time));
  }
  svg.append(sv('text', { class: 'tick', x: L, y: H - 4 }, windows[0].date === last.date ? last.date : `${windows[0].date} – ${last.date}`),
    sv('line', { class: 'axis', x1: L, x2: W - R, y1: T + ph, y2: T + ph }));
  box.append(
    h('div', { class: 'legend' },
      h('span', { class: 'key in' }, 'entries'), h('span', { class: 'key out' }, 'exits'),
      h('span', { class: 'latest' }, `latest window ending ${last.date} ${last.time}: `,
        h('b', { class: 'in' }, fmt.format(last.entries)), ' in, ', h('b', { class: 'out' }, fmt.format(last.exits)), ' out')),
    svg);
  return box;
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

setInterval(() => {
  for (const el of document.querySelectorAll('.age[data-t]')) el.textContent = ageText(Number(el.dataset.t));
}, 1000);

// --- go -----------------------------------------------------------------------------------
window.turnstileDashboard = { stations, counts }; // for the console and the browser test
start(params.get('username') || '', params.get('password') || '');
