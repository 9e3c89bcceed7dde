// SPDX-License-Identifier: Apache-2.0
// The browser half of tests/integration/test_dashboard.sh: Debian's chromium, headless, driven
// by playwright-core (bridge/dashboard/package.json; no browser download). The shell half
// starts mosquitto (two websockets listeners serving the page: anonymous, and with the
// production ACL and a password file), a simulator, an agent, Kafka and the bridge, then runs
// this with:
//   DASH_ANON    http://127.0.0.1:PORT/   the page on the anonymous listener
//   DASH_AUTH    http://127.0.0.1:PORT/   the page on the listener that wants a password
//   DASH_USER, DASH_PASSWORD            the dashboard account
//   DASH_AGENT, DASH_STATION            the agent's ids; DASH_AGENT_PID: SIGTERMed here
//   DASH_ARTIFACTS                      where the screenshots go
//   DASH_WEBHOOK                        a webhook source of station ST-hook (it POSTed):
//                                       shown as a controller there, online
//   DASH_PROD_PAGE, DASH_PROD_WSS       the production config's page listener (http://) and
//                                       TLS WebSocket listener (wss://, test CA): agent p1 of
//                                       station S1 and a window are retained there
// Prints "ok: ..." / "FAIL: ..." per step; exits non-zero on a failure (after a screenshot
// of the page as it was: dashboard-failed.png).
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const anonUrl = env('DASH_ANON');
const authUrl = env('DASH_AUTH');
const user = env('DASH_USER');
const password = env('DASH_PASSWORD');
const agent = env('DASH_AGENT');
const station = env('DASH_STATION');
const agentPid = Number(env('DASH_AGENT_PID'));
const artifacts = env('DASH_ARTIFACTS');
const webhook = env('DASH_WEBHOOK');
const prodPage = env('DASH_PROD_PAGE');
const prodWss = env('DASH_PROD_WSS');
const executablePath = process.env.DASH_CHROMIUM || '/usr/bin/chromium';

let passes = 0;
let current = null; // the page a failure screenshot shows
const log = (s) => process.stdout.write(`${s}\n`);

async function step(name, fn) {
  const t0 = Date.now();
  const note = await fn();
  passes++;
  log(`ok: ${name}${note ? ` (${note})` : ''} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
}

const stationSel = `section.station[data-station="${station}"]`;
const agentSel = `${stationSel} tr.agent[data-agent="${agent}"]`;

// people counted since the agent started, summed over its turnstiles, as the page shows them
function counted(page) {
  return page.evaluate((sel) => [...document.querySelectorAll(sel)]
    .reduce((a, tr) => a + Number(tr.dataset.entriesCounted || 0) + Number(tr.dataset.exitsCounted || 0), 0),
  `${stationSel} tr.turnstile[data-agent="${agent}"]`);
}
function waitCountedAbove(page, v, timeout) {
  return page.waitForFunction(([sel, v0]) => [...document.querySelectorAll(sel)]
    .reduce((a, tr) => a + Number(tr.dataset.entriesCounted || 0) + Number(tr.dataset.exitsCounted || 0), 0) > v0,
  [`${stationSel} tr.turnstile[data-agent="${agent}"]`, v], { timeout, polling: 200 });
}
function waitWindows(page, atLeast, timeout) {
  return page.waitForFunction(([sel, k]) => {
    const svg = document.querySelector(sel);
    return svg && Number(svg.dataset.windows) >= k && Number(svg.dataset.entries) + Number(svg.dataset.exits) > 0;
  }, [`${stationSel} svg.chart`, atLeast], { timeout, polling: 200 });
}
const chartInfo = (page) => page.$eval(`${stationSel} svg.chart`, (s) =>
  `${s.dataset.windows} windows, ${s.dataset.entries} entries, ${s.dataset.exits} exits, ${s.querySelectorAll('rect.bar').length} bars`);
const connected = (page) => page.waitForSelector('#conn[data-state="connected"]', { timeout: 15000 });

async function main() {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    timeout: 30000,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const watch = (page, name) => {
    page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`${name}: console: ${m.text()}`); });
  };
  try {
    // --- anonymous listener: the page as the demo serves it -----------------------------
    const live = await context.newPage();
    watch(live, 'anonymous page');
    current = live;
    await step('the page loads from mosquitto (http_dir) and connects over MQTT/WebSockets', async () => {
      await live.goto(anonUrl, { waitUntil: 'load', timeout: 15000 });
      await connected(live);
      return await live.$eval('#conn', (e) => e.textContent);
    });
    await step('the style sheet applies (mosquitto sends no Content-Type)', async () => {
      const bg = await live.$eval('header.top', (e) => getComputedStyle(e).backgroundColor);
      if (bg !== 'rgb(23, 50, 77)') throw new Error(`header background ${bg}`);
    });
    await step(`the agent ${agent} is shown online (retained status)`, async () => {
      await live.waitForSelector(`${agentSel}[data-status="online"]`, { timeout: 15000 });
    });
    let first = 0;
    await step('counts appear', async () => {
      await waitCountedAbove(live, 0, 20000);
      first = await counted(live);
      return `${first} people counted`;
    });
    await step('and then change, live', async () => {
      await waitCountedAbove(live, first, 20000);
      return `${first} -> ${await counted(live)}`;
    });
    await step('device link state and error counts are shown', async () => {
      const dev = await live.waitForSelector(`${stationSel} tr.device[data-agent="${agent}"][data-link="up"]`, { timeout: 10000 });
      const cells = await dev.$$eval('td', (tds) => tds.map((t) => t.textContent));
      if (cells.length !== 13) throw new Error(`device row has ${cells.length} cells`);
      return cells.slice(1, 7).join(' | ');
    });
    await step("the agent's backlog is shown", async () => {
      const b = await live.$eval(agentSel, (tr) => tr.dataset.backlog);
      if (b === '' || !Number.isFinite(Number(b))) throw new Error(`backlog '${b}'`);
      return `backlog ${b}`;
    });
    await step(`the webhook source ${webhook} is shown as a controller of ST-hook, online`, async () => {
      const sel = 'section.station[data-station="ST-hook"]';
      await live.waitForSelector(`${sel} tr.agent[data-agent="${webhook}"][data-status="online"]`, { timeout: 30000 });
      return (await live.$eval(sel, (s) => `${s.dataset.online} of ${s.dataset.agents} controllers online`));
    });
    await step('the window chart gets data from the bridge', async () => {
      await waitWindows(live, 1, 45000);
      return await chartInfo(live);
    });
    await step('and accumulates windows as they arrive', async () => {
      await waitWindows(live, 3, 30000);
      return await chartInfo(live);
    });
    await step('the turnstiles show their share of the latest window', async () => {
      const cells = await live.$$eval(`${stationSel} tr.turnstile td:nth-child(9)`, (tds) => tds.map((t) => t.textContent));
      if (!cells.some((c) => /\d+ \/ \d+/.test(c))) throw new Error(`last-window cells: ${cells.join(', ')}`);
      return cells.join(', ');
    });
    await step('screenshot of the live page', async () => {
      const file = path.join(artifacts, 'dashboard.png');
      await live.screenshot({ path: file, fullPage: true });
      return file;
    });

    // --- the listener with the production ACL: login form, wrong and right password, kiosk URL
    const login = await context.newPage();
    watch(login, 'login page');
    current = login;
    await step('with credentials required, the page asks for them', async () => {
      await login.goto(authUrl, { waitUntil: 'load', timeout: 15000 });
      await login.waitForSelector('#login:not([hidden])', { timeout: 15000 });
      return await login.$eval('#login-why', (e) => e.textContent);
    });
    await step('a wrong password is refused', async () => {
      await login.fill('#username', user);
      await login.fill('#password', 'not-the-password');
      await login.click('#login button[type=submit]');
      await login.waitForFunction(() => /Refused/.test(document.getElementById('login-why').textContent) &&
        document.getElementById('conn').dataset.state === 'refused', null, { timeout: 15000 });
      return await login.$eval('#login-why', (e) => e.textContent);
    });
    await step(`signing in as ${user} in the form works (ACL: status, state, window)`, async () => {
      await login.fill('#password', password);
      await login.click('#login button[type=submit]');
      await connected(login);
      await login.waitForSelector(`${agentSel}[data-status="online"]`, { timeout: 15000 });
      await waitCountedAbove(login, 0, 15000);
      await waitWindows(login, 1, 15000); // the retained window
      if (!(await login.isHidden('#login'))) throw new Error('the form is still shown');
      return await chartInfo(login);
    });
    await step('screenshot of the signed-in page', async () => {
      const file = path.join(artifacts, 'dashboard-login.png');
      await login.screenshot({ path: file, fullPage: true });
      return file;
    });
    await login.close();

    const kiosk = await context.newPage();
    watch(kiosk, 'kiosk page');
    current = kiosk;
    await step('a kiosk signs in from the URL (?username=&password=)', async () => {
      const u = new URL(authUrl);
      u.searchParams.set('username', user);
      u.searchParams.set('password', password);
      await kiosk.goto(u.toString(), { waitUntil: 'load', timeout: 15000 });
      await connected(kiosk);
      await kiosk.waitForSelector(`${agentSel}[data-status="online"]`, { timeout: 15000 });
      await waitCountedAbove(kiosk, 0, 15000);
      const c = await counted(kiosk);
      await waitCountedAbove(kiosk, c, 20000);
      if (!(await kiosk.isHidden('#login'))) throw new Error('the form is shown');
      return `counts ${c} -> ${await counted(kiosk)}, signed in as ${user}`;
    });

    // --- the agent stops: its clean-shutdown status (retained) marks it offline everywhere
    await step(`SIGTERM to the agent (pid ${agentPid}): both pages mark it offline`, async () => {
      process.kill(agentPid, 'SIGTERM');
      for (const p of [live, kiosk]) {
        current = p;
        await p.waitForSelector(`${agentSel}[data-status="offline"]`, { timeout: 20000 });
      }
      const text = await live.$eval(`${agentSel} td:nth-child(2)`, (e) => e.textContent);
      if (!/offline/.test(text)) throw new Error(`status cell '${text}'`);
      await live.waitForSelector(`${stationSel} .pill.down`, { timeout: 5000 });
      return text.trim();
    });
    current = live;
    await step('screenshot with the agent offline', async () => {
      const file = path.join(artifacts, 'dashboard-offline.png');
      await live.screenshot({ path: file, fullPage: true });
      return file;
    });
    // --- the production broker config: page over HTTP, MQTT over wss (test CA: not checked)
    const tls = await browser.newContext({ viewport: { width: 1280, height: 700 }, ignoreHTTPSErrors: true });
    const prod = await tls.newPage();
    watch(prod, 'production page');
    current = prod;
    const prodUrl = (q) => {
      const u = new URL(prodPage);
      for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
      return u.toString();
    };
    await step('production config: the page over HTTP, MQTT over wss as the dashboard account', async () => {
      await prod.goto(prodUrl({ url: prodWss, username: user, password }), { waitUntil: 'load', timeout: 15000 });
      await connected(prod);
      const s1 = 'section.station[data-station="S1"]';
      await prod.waitForSelector(`${s1} tr.agent[data-agent="p1"][data-status="online"]`, { timeout: 10000 });
      await prod.waitForSelector(`${s1} tr.device[data-link="backoff"]`, { timeout: 5000 });
      await prod.waitForSelector(`${s1} tr.turnstile[data-entries-counted="12"]`, { timeout: 5000 });
      await prod.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.windows) === 1,
        `${s1} svg.chart`, { timeout: 5000 });
      return await prod.$eval('#conn', (e) => e.textContent);
    });
    await step("the agent's anomaly warning is shown under its turnstile, with the hint", async () => {
      const s1 = 'section.station[data-station="S1"]';
      await prod.waitForSelector(`${s1} tr.turnstile[data-turnstile="T2"][data-warning="yes"] .badge.warn`, { timeout: 5000 });
      if (await prod.$(`${s1} tr.turnstile[data-turnstile="T1"][data-warning]`)) throw new Error('T1 is marked too');
      const text = await prod.$eval(`${s1} tr.turnstile-warning[data-turnstile="T2"]`, (e) => e.textContent);
      if (!/T2: every reading of entries .* word order .*turnstile-agent --probe -c FILE/.test(text)) throw new Error(text);
      const agentNote = await prod.$eval(`${s1} tr.agent[data-agent="p1"] .warnings`, (e) => e.textContent);
      if (agentNote !== '1 turnstile counting only anomalies') throw new Error(agentNote);
      const file = path.join(artifacts, 'dashboard-warning.png');
      await prod.screenshot({ path: file, fullPage: true });
      return `${text.slice(0, 60)}…; ${file}`;
    });
    await step("production config: MQTT on the page listener itself sees nothing (mount_point)", async () => {
      await prod.goto(prodUrl({ username: user, password }), { waitUntil: 'load', timeout: 15000 });
      await connected(prod);
      await prod.waitForTimeout(1500);
      const n = await prod.$$eval('section.station', (s) => s.length);
      if (n) throw new Error(`${n} stations shown`);
      return await prod.$eval('#conn', (e) => e.textContent);
    });
    await step('no password is sent unencrypted to a host that is not loopback', async () => {
      await prod.goto(prodUrl({ url: 'ws://dashboard.invalid:1/mqtt', username: user, password }), { waitUntil: 'load', timeout: 15000 });
      await prod.waitForSelector('#login:not([hidden])', { timeout: 5000 });
      const why = await prod.$eval('#login-why', (e) => e.textContent);
      if (!/unencrypted/.test(why)) throw new Error(why);
      return why.slice(0, 60);
    });
    await tls.close();

    await step('no script error nor failed request in any page', async () => {
      // (a refused login is a CONNACK on an open WebSocket, not a browser error)
      if (errors.length) throw new Error(errors.join('; '));
    });
  } catch (e) {
    log(`FAIL: ${e.message.split('\n')[0]}`);
    if (errors.length) log(`page errors: ${errors.join('; ')}`);
    if (current) {
      const file = path.join(artifacts, 'dashboard-failed.png');
      await current.screenshot({ path: file, fullPage: true }).catch(() => {});
      log(`screenshot of the failing page: ${file}`);
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
  log(`browser: ${passes} steps passed`);
}

const guard = setTimeout(() => { log('FAIL: the browser test took over 150 s'); process.exit(1); }, 150000);
main().catch((e) => { log(`FAIL: ${e.stack || e}`); process.exitCode = 1; }).finally(() => clearTimeout(guard));
