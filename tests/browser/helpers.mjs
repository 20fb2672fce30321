// Shared by the *.test.mjs files: Debian's Chromium through playwright-core, one fresh context per
// client, network recording (/.lp requests and responses, WebSocket frames) and __logs on failure.
import { before, after } from 'node:test';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startStaticServer } from './serve.mjs';

export const EXE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const HOST = '127.0.0.1';
export const PORT = Number(process.env.RTDB_PORT);
export const PING = '{"t":"c","d":{"t":"p","d":{}}}';
export const ACK = '{"t":"c","d":{"t":"a","d":{}}}';
export const N_B64 = 'eyJ0IjoiYyIsImQiOnsidCI6Im4iLCJkIjp7fX19'; // web-safe base64 of {"t":"c","d":{"t":"n","d":{}}}

let browser;
let site;
let seq = 0;

before(async () => {
  // No skip: the browser tests always run, and a missing Chromium is a failure.
  if (!existsSync(EXE)) throw new Error(`Chromium not found at ${EXE} (make install, or set CHROMIUM_PATH)`);
  site = await startStaticServer(HOST);
  browser = await chromium.launch({
    executablePath: EXE,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await site?.close();
});

export const freshNamespace = (tag) => `br-${tag}-${process.pid}-${Date.now().toString(36)}-${(seq += 1)}`;

/** A fresh context and page on the test site; `net` records what the page sends and receives. */
export async function openPage({ wsFailureFlag = false } = {}) {
  const context = await browser.newContext();
  if (wsFailureFlag) {
    await context.addInitScript(() => localStorage.setItem('firebase:previous_websocket_failure', 'true'));
  }
  const page = await context.newPage();
  const net = { lp: [], lpResponses: [], ws: [] };
  page.on('request', (r) => { if (r.url().includes('/.lp?')) net.lp.push(r.url()); });
  page.on('response', (r) => {
    if (r.url().includes('/.lp?')) {
      const headers = r.headers();
      net.lpResponses.push({ url: r.url(), status: r.status(), type: headers['content-type'], xfo: headers['x-frame-options'] });
    }
  });
  page.on('websocket', (ws) => {
    const e = { url: ws.url(), sent: [], recv: [], closed: false };
    net.ws.push(e);
    ws.on('framesent', (f) => e.sent.push(String(f.payload)));
    ws.on('framereceived', (f) => e.recv.push(String(f.payload)));
    ws.on('close', () => { e.closed = true; });
  });
  await page.goto(site.url);
  await page.waitForFunction(() => window.rt);
  const client = {
    context, page, net,
    ev: (fn, arg) => page.evaluate(fn, arg),
    /** Waits for a value event matching `pred` (a function source run in the page). */
    waitEvent: (pred, arg, timeout = 15000) => page.waitForFunction(
      ([src, a]) => window.__events.some((e) => (0, eval)(src)(e, a)), [String(pred), arg], { timeout }),
    logs: () => page.evaluate(() => window.__logs).catch(() => ['<page closed>']),
  };
  return client;
}

/** Runs `body`; on failure, adds the clients' SDK logs and network records to the error. */
export async function withDiagnostics(clients, body) {
  try {
    return await body();
  } catch (err) {
    const parts = [];
    for (const [name, c] of Object.entries(clients)) {
      const logs = await c.logs();
      parts.push(`--- ${name} __logs ---\n${logs.slice(-150).join('\n')}`);
      parts.push(`--- ${name} /.lp requests ---\n${c.net.lp.slice(-60).join('\n')}`);
      parts.push(`--- ${name} /.lp responses ---\n${c.net.lpResponses.slice(-60).map((r) => JSON.stringify(r)).join('\n')}`);
      parts.push(`--- ${name} websockets ---\n${JSON.stringify(c.net.ws, null, 1).slice(-8000)}`);
    }
    err.message += `\n${parts.join('\n')}`;
    throw err;
  }
}

/** Deploys rules for one namespace through REST (emulator mode: `owner` is admin). */
export async function deployRules(ns, rules, port = PORT) {
  const res = await fetch(`http://${HOST}:${port}/.settings/rules.json?ns=${ns}`, {
    method: 'PUT', headers: { Authorization: 'Bearer owner' }, body: JSON.stringify({ rules }),
  });
  if (!res.ok) throw new Error(`deploying rules: ${res.status} ${await res.text()}`);
}

export async function openDb(client, ns, { port = PORT, token } = {}) {
  return client.ev((a) => window.rt.open(a), { host: HOST, port, ns, token });
}
