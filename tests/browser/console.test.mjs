// The web console (issue 14) in Debian's Chromium against a production-mode `rtdb serve`, driven by
// tests/e2e/test_console_browser.py: CONSOLE_URL is the URL the server printed (with its admin
// token), RTDB_PORT its port. A firebase@12 page (helpers.mjs' harness) listens while the console
// edits. Screenshots go to CONSOLE_SHOTS. Not run by test_browser.py (that server is an emulator).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openPage, openDb } from './helpers.mjs';

const CONSOLE_URL = process.env.CONSOLE_URL;
if (!CONSOLE_URL || !CONSOLE_URL.includes('/?token=')) throw new Error('CONSOLE_URL (the printed console URL with ?token=) is not set');
const BASE = CONSOLE_URL.split('/?')[0];
const TOKEN = new URL(CONSOLE_URL).searchParams.get('token');
const NS = 'shopdb';
const FRESH = `fresh-${process.pid}`;
const SHOTS = process.env.CONSOLE_SHOTS || path.join(os.tmpdir(), `console-shots-${process.pid}`);
mkdirSync(SHOTS, { recursive: true });

const RULES = `{
  "rules": {
    ".read": true,
    "locked": {
      ".write": "auth != null && auth.uid == 'keeper'"
    }
  }
}`;

async function rest(method, p, { body, token = TOKEN, params = '' } = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(`${BASE}/${p}.json?ns=${NS}${params}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let fb; // the firebase@12 client page
let fbHandle;
let context;
let page; // the console
const pageErrors = [];
const requests = [];

const row = (p) => page.locator(`.row[data-path="${p}"]`);
const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });

async function expand(p) {
  const r = row(p);
  await r.locator('.twisty').waitFor();
  if ((await r.getAttribute('aria-expanded')) !== 'true') await r.locator('button.twisty').click();
  await page.waitForFunction((q) => document.querySelector(`.row[data-path="${q}"]`)?.getAttribute('aria-expanded') === 'true', p);
}

// Set up once, from the first test (helpers.mjs launches the browser in its own `before` hook).
let ready;
const setUp = () => (ready ??= setUpOnce());

async function setUpOnce() {
  // the page and its files, served by rtdb serve itself
  for (const [file, type] of [['/', 'text/html'], ['/.console/static/app.js', 'text/javascript'], ['/.console/static/app.css', 'text/css']]) {
    const res = await fetch(BASE + file);
    assert.equal(res.status, 200, `GET ${file}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    assert.ok(res.headers.get('content-type').startsWith(type), `GET ${file}: ${res.headers.get('content-type')}`);
  }
  // existing data and rules, written through REST with the admin token
  assert.equal((await rest('PUT', 'shop', { body: { name: 'Corner shop', price: 12, items: { apple: { stock: 3 }, pear: { stock: 5 } } } })).status, 200);
  assert.equal((await rest('PUT', 'locked', { body: { door: 'shut' } })).status, 200);
  const deployed = await fetch(`${BASE}/.settings/rules.json?ns=${NS}`, { method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}` }, body: RULES });
  assert.equal(deployed.status, 200, await deployed.text());

  fb = await openPage();
  fbHandle = await openDb(fb, NS);
  await fb.ev((h) => window.rt.watch(h, 'shop'), fbHandle);
  await fb.waitEvent((e) => e.p === 'shop' && e.v && e.v.price === 12);

  context = fb.context; // one browser; the console gets its own page (and sessionStorage)
  page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 800 });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text()); });
  // failed responses other than the refusals the tests provoke: 401 at sign-in, 400 for the broken
  // rules, and the invalid namespace name (the server answers that one with 404)
  page.on('response', (r) => {
    const refused = [400, 401].includes(r.status()) || (r.status() === 404 && r.url().endsWith('/.console/api/namespaces'));
    if (r.status() >= 400 && !refused) pageErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
}

after(async () => {
  await context?.close();
});

test('a wrong token is refused; the printed token signs in and leaves the address bar', async () => {
  await setUp();
  await page.goto(`${BASE}/?token=not-the-token`);
  await page.locator('#login').waitFor();
  await page.locator('#login-error', { hasText: 'refused' }).waitFor();
  assert.ok(!page.url().includes('token='), page.url());
  await page.fill('#login-token', `${TOKEN}x`);
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error', { hasText: 'refused' }).waitFor();
  assert.equal(await page.locator('#shell').isVisible(), false);
  await shot('01-login-refused');

  // the token typed into the sign-in box
  await page.fill('#login-token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.locator('#shell').waitFor();
  await page.locator('.badge.mode-production').waitFor();

  // the printed URL itself, in a new tab: signed in at once, the token gone from the address bar
  const tab = await context.newPage();
  await tab.goto(CONSOLE_URL);
  await tab.locator('#shell').waitFor();
  assert.equal(await tab.locator('#login').isVisible(), false);
  assert.ok(!tab.url().includes('token='), tab.url());
  assert.equal(await tab.evaluate(() => sessionStorage.getItem('rtdb.console.token')), TOKEN);
  await tab.close();
});

test('the tree shows the existing data', async () => {
  await setUp();
  await page.goto(`${BASE}/#/data?ns=${NS}`);
  await row('/shop').waitFor();
  await row('/locked').waitFor();
  await expand('/shop');
  await row('/shop/name').locator('.v-str', { hasText: '"Corner shop"' }).waitFor();
  await row('/shop/price').locator('.v-num', { hasText: '12' }).waitFor();
  await expand('/shop/items');
  await expand('/shop/items/apple');
  await row('/shop/items/apple/stock').locator('.v-num', { hasText: '3' }).waitFor();
  await page.locator('.live.on').first().waitFor();
  await shot('02-tree');
});

test('changes made through REST appear without a reload, highlighted', async () => {
  await setUp();
  const flashes = async (p) => Number((await row(p).getAttribute('data-flashes')) || 0);
  assert.equal(await flashes('/shop/price'), 0);
  assert.equal((await rest('PUT', 'shop/price', { body: 15 })).status, 200);
  await row('/shop/price').locator('.v-num', { hasText: /^15$/ }).waitFor();
  assert.ok((await flashes('/shop/price')) >= 1, 'the changed row flashed');
  // a new key under a shown node, and a whole subtree
  assert.equal((await rest('PATCH', 'shop', { body: { opened: 1999, items: { apple: { stock: 3 }, pear: { stock: 5 }, fig: { stock: 9 } } } })).status, 200);
  await row('/shop/opened').locator('.v-num', { hasText: '1999' }).waitFor();
  await row('/shop/items/fig').waitFor();
  await row('/shop/items/apple/stock').locator('.v-num', { hasText: '3' }).waitFor(); // expanded state kept
  assert.ok((await flashes('/shop/opened')) >= 1);
  await shot('03-live-change');
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
});

test('after a burst of writes and deletes the shown tree equals the database', async () => {
  await setUp();
  assert.equal((await rest('PUT', 'burst', { body: { k000: 0 } })).status, 200);
  await row('/burst').waitFor();
  await expand('/burst');
  // 400 writes from 8 concurrent writers: sets, overwrites and deletes of 60 keys (some windows
  // of the change stream carry more than 200 paths and arrive as one change at /)
  let n = 0;
  const writer = async (w) => {
    for (let j = 0; j < 50; j += 1) {
      n += 1;
      const key = `k${String((w * 7 + j * 13) % 60).padStart(3, '0')}`;
      const res = (w + j) % 5 === 0 ? await rest('DELETE', `burst/${key}`) : await rest('PUT', `burst/${key}`, { body: n });
      assert.equal(res.status, 200);
    }
  };
  await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(writer));
  const expected = (await rest('GET', 'burst')).body || {};
  const shown = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.row[data-path^="/burst/"]')]
    .map((r) => [r.dataset.path.slice('/burst/'.length), r.querySelector('.val').textContent])));
  const want = Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, String(v)]));
  await page.waitForFunction((w) => {
    const got = Object.fromEntries([...document.querySelectorAll('.row[data-path^="/burst/"]')]
      .map((r) => [r.dataset.path.slice('/burst/'.length), r.querySelector('.val').textContent]));
    return JSON.stringify(got, Object.keys(got).sort()) === JSON.stringify(w, Object.keys(w).sort());
  }, want, { timeout: 20000 }).catch(async (err) => {
    assert.deepEqual(await shown(), want, err.message);
  });
  assert.equal((await rest('DELETE', 'burst')).status, 200);
  await row('/burst').waitFor({ state: 'detached' });
});

test('an edit in the console reaches the database and a listening firebase@12 client', async () => {
  await setUp();
  await row('/shop/price').hover();
  await row('/shop/price').locator('.act-edit').click();
  await page.locator('#json-editor').waitFor();
  assert.equal(await page.inputValue('#json-editor'), '15');
  await page.fill('#json-editor', '42.5');
  await page.click('#editor-save');
  await page.locator('#json-editor').waitFor({ state: 'detached' });
  assert.deepEqual((await rest('GET', 'shop/price')).body, 42.5);
  await fb.waitEvent((e) => e.p === 'shop' && e.v && e.v.price === 42.5);
  await row('/shop/price').locator('.v-num', { hasText: '42.5' }).waitFor();

  // a whole subtree, added as a new child of /shop
  await row('/shop').locator('.act-add').click();
  await page.fill('#editor-key', 'owner');
  await page.fill('#json-editor', '{"name": "Ada", "since": 2020}');
  await shot('04-editor');
  await page.click('#editor-save');
  await page.locator('#json-editor').waitFor({ state: 'detached' });
  assert.deepEqual((await rest('GET', 'shop/owner')).body, { name: 'Ada', since: 2020 });
  await fb.waitEvent((e) => e.p === 'shop' && e.v && e.v.owner && e.v.owner.name === 'Ada');
  await row('/shop/owner').waitFor();
});

test('a delete in the console reaches the database and a listening firebase@12 client', async () => {
  await setUp();
  await row('/shop/items/pear').hover();
  await row('/shop/items/pear').locator('.act-del').click();
  await page.locator('.modal', { hasText: 'Delete /shop/items/pear' }).waitFor();
  await page.locator('.modal .btn.danger').click();
  await row('/shop/items/pear').waitFor({ state: 'detached' });
  assert.equal((await rest('GET', 'shop/items/pear')).body, null);
  assert.deepEqual(Object.keys((await rest('GET', 'shop/items')).body).sort(), ['apple', 'fig']);
  await fb.waitEvent((e) => e.p === 'shop' && e.v && e.v.items && !('pear' in e.v.items) && 'fig' in e.v.items);
});

test('invalid JSON is refused in the editor before any request', async () => {
  await setUp();
  await row('/shop/name').locator('.act-edit').click();
  await page.locator('#json-editor').waitFor();
  const before = requests.length;
  await page.fill('#json-editor', '{"name": "Broken",');
  await page.locator('.json-status.bad', { hasText: 'Invalid JSON' }).waitFor();
  await page.click('#editor-save');
  await page.locator('.json-status.bad', { hasText: 'Invalid JSON' }).waitFor();
  await shot('05-invalid-json');
  assert.ok(await page.locator('#json-editor').isVisible(), 'the editor stays open');
  const writes = requests.slice(before).filter((r) => r.method !== 'GET');
  assert.deepEqual(writes, [], 'nothing was sent');
  await page.keyboard.press('Escape');
  assert.equal((await rest('GET', 'shop/name')).body, 'Corner shop');
  // a bad key is refused the same way
  await row('/shop').locator('.act-add').click();
  await page.fill('#editor-key', 'a.b');
  await page.locator('.json-status.bad', { hasText: 'cannot contain' }).waitFor();
  await page.click('#editor-save');
  await page.keyboard.press('Escape');
  assert.deepEqual(requests.slice(before).filter((r) => r.method !== 'GET'), []);
});

test('import and export of JSON files', async () => {
  await setUp();
  await row('/shop/items').click();
  await page.locator('.sel-path', { hasText: '/shop/items' }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#btn-export')]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.deepEqual(exported, (await rest('GET', 'shop/items', { params: '&format=export' })).body);
  assert.deepEqual(Object.keys(exported).sort(), ['apple', 'fig']);

  const file = { kiwi: { stock: 7 }, lime: { stock: 1 } };
  await page.setInputFiles('.toolbar input[type=file]', { name: 'items.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)) });
  await page.locator('.modal', { hasText: 'items.json' }).locator('.btn.danger').click();
  await row('/shop/items/kiwi').waitFor();
  await row('/shop/items/apple').waitFor({ state: 'detached' });
  assert.deepEqual((await rest('GET', 'shop/items')).body, file);
  // an invalid file is refused before any request
  const before = requests.length;
  await page.setInputFiles('.toolbar input[type=file]', { name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from('{"x": ') });
  await page.locator('.toast.error', { hasText: 'bad.json' }).waitFor();
  assert.deepEqual(requests.slice(before).filter((r) => r.method !== 'GET'), []);
  await shot('06-data-view');
});

test('rules deployment shows the compile error at its line and column', async () => {
  await setUp();
  await page.click('#nav a[data-view=rules]');
  await page.locator('#rules-editor').waitFor();
  await page.waitForFunction(() => document.querySelector('#rules-editor').value.includes('keeper'));
  const broken = RULES.replace('"auth != null && auth.uid == \'keeper\'"', '"auth != null && auth.uid =="');
  const lines = broken.split('\n');
  assert.equal(lines[4].trim(), '".write": "auth != null && auth.uid =="');
  // what the server says, to compare the marked position with
  const res = await fetch(`${BASE}/.settings/rules.json?ns=${NS}`, { method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}` }, body: broken });
  assert.equal(res.status, 400);
  const message = (await res.json()).error;
  const [, line, col] = /(\d+):(\d+):/.exec(message);
  assert.equal(Number(line), 5, message);

  await page.fill('#rules-editor', broken);
  await page.click('#rules-deploy');
  await page.locator('#rules-error', { hasText: `Line 5, column ${col}` }).waitFor();
  assert.ok((await page.textContent('#rules-error')).includes(message.split(': ').at(-1)));
  assert.deepEqual(await page.$$eval('.ln.err', (els) => els.map((e) => e.dataset.line)), ['5']);
  const caret = await page.$eval('#rules-editor', (t) => t.value.slice(0, t.selectionStart).split('\n').length);
  assert.equal(caret, 5);
  await shot('07-rules-error');
  // the rules in force did not change
  const inForce = await fetch(`${BASE}/.settings/rules.json?ns=${NS}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.ok((await inForce.text()).includes("auth.uid == 'keeper'"));

  // fixed and deployed
  await page.fill('#rules-editor', RULES.replace('keeper', 'warden'));
  assert.equal(await page.locator('.ln.err').count(), 0);
  await page.click('#rules-deploy');
  await page.locator('#rules-status', { hasText: 'deployed' }).waitFor();
  const now = await fetch(`${BASE}/.settings/rules.json?ns=${NS}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.ok((await now.text()).includes("auth.uid == 'warden'"));
});

test('the simulator renders the rules trace', async () => {
  await setUp();
  await page.selectOption('#sim-op', 'write');
  await page.fill('#sim-path', '/locked/door');
  await page.fill('#sim-auth', '{"uid": "visitor"}');
  await page.fill('#sim-value', '"open"');
  await page.click('#sim-run');
  await page.locator('#sim-result .verdict.denied').waitFor();
  await page.locator('#sim-result .trace li.t-false', { hasText: '/rules/locked/.write' }).waitFor();
  await page.fill('#sim-auth', '{"uid": "warden"}');
  await page.click('#sim-run');
  await page.locator('#sim-result .verdict.allowed').waitFor();
  await shot('08-simulator');
});

test('a denied request appears in the log with the rule that decided', async () => {
  await setUp();
  await page.click('#nav a[data-view=log]');
  await page.locator('#view-log .live.on').waitFor();
  await page.click('#log-filter [data-filter=denied]');
  const denied = await rest('PUT', 'locked/door', { body: 'open', token: null });
  assert.equal(denied.status, 401);
  const entry = page.locator('tr.entry.denied', { has: page.locator('td.path', { hasText: '/locked/door' }) });
  await entry.first().waitFor();
  const ruleRow = page.locator('tr.rule-row').first();
  await ruleRow.locator('code.rule', { hasText: "/rules/locked/.write" }).waitFor();
  assert.match(await ruleRow.locator('code.rule').textContent(), /auth != null && auth\.uid == 'warden'.*false/);
  assert.equal(await page.locator('tr.entry.request').count(), 0, 'the filter shows denials only');
  await page.click('#log-filter [data-filter=all]');
  await page.locator('tr.entry.request', { has: page.locator('td.path', { hasText: '/locked/door.json' }) }).first().waitFor();
  await ruleRow.locator('button', { hasText: 'trace' }).click();
  await ruleRow.locator('.trace li', { hasText: 'write denied at /locked/door' }).waitFor();
  await shot('09-log');
});

test('metrics are charted', async () => {
  await setUp();
  await page.click('#nav a[data-view=metrics]');
  // two polls make a rate: wait for a drawn line in each chart
  for (const id of ['requests', 'writes', 'events', 'denied']) {
    await page.waitForFunction((i) => (document.querySelector(`#chart-${i} polyline`)?.getAttribute('points') || '').split(' ').length >= 2, id, { timeout: 20000 });
  }
  assert.equal(await page.locator('#chart-connections polyline').count(), 3);
  await shot('10-metrics');
});

test('the tree opens at a path, and stays live there', async () => {
  await setUp();
  await page.click('#nav a[data-view=data]');
  await page.fill('#data-path', '/shop/items');
  await page.press('#data-path', 'Enter');
  await row('/shop/items').locator('.key.root', { hasText: '/shop/items' }).waitFor();
  await row('/shop/items/kiwi').waitFor();
  assert.equal(await row('/shop').count(), 0);
  assert.equal((await rest('PUT', 'shop/items/kiwi/stock', { body: 8 })).status, 200);
  await expand('/shop/items/kiwi');
  await row('/shop/items/kiwi/stock').locator('.v-num', { hasText: '8' }).waitFor();
  assert.equal((await rest('PUT', 'shop/items/plum', { body: { stock: 2 } })).status, 200);
  await row('/shop/items/plum').waitFor();
  assert.equal((await rest('PUT', 'shop/name', { body: 'Elsewhere' })).status, 200); // outside: not shown
  await page.click('.path-form button'); // up: /shop
  await row('/shop/name').locator('.v-str', { hasText: '"Elsewhere"' }).waitFor();
  await page.fill('#data-path', '/');
  await page.press('#data-path', 'Enter');
  await row('/shop').waitFor();
});

test('a namespace is created and switched to', async () => {
  await setUp();
  await page.click('#nav a[data-view=data]');
  await page.click('#ns-new');
  await page.fill('#ns-name', 'bad name!');
  await page.click('.modal button[type=submit]');
  await page.locator('.modal .error-text', { hasText: 'Invalid namespace' }).waitFor();
  await page.fill('#ns-name', FRESH);
  await page.click('.modal button[type=submit]');
  await page.waitForFunction((f) => document.querySelector('#ns-select').value === f, FRESH);
  await row('/').locator('.val', { hasText: 'empty' }).waitFor();
  assert.ok(page.url().includes(`ns=${FRESH}`));
  // a write in the new namespace shows up live
  await fetch(`${BASE}/hello.json?ns=${FRESH}`, { method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}` }, body: '"world"' });
  await row('/hello').locator('.v-str', { hasText: '"world"' }).waitFor();
  await page.selectOption('#ns-select', NS);
  await row('/shop').waitFor();
});

test('the console page had no script errors', async () => {
  await setUp();
  await setUp();
  assert.deepEqual(pageErrors, []);
});
