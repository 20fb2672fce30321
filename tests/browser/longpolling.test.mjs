// forceLongPolling(): every operation over /.lp, never a WebSocket (spec long-polling.md §5.5 rows 1, 2, 6, 7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOST, PORT, openPage, openDb, freshNamespace, withDiagnostics, deployRules } from './helpers.mjs';

async function lpPage() {
  const c = await openPage();
  await c.ev(() => window.rt.forceLongPolling());
  return c;
}

function assertOnlyLongPolling(c) {
  assert.equal(c.net.ws.length, 0, 'no WebSocket opened');
  assert.ok(c.net.lp[0].includes('start=t') && /[?&]cb=\d+/.test(c.net.lp[0]), c.net.lp[0]);
  assert.ok(c.net.lp.some((u) => u.includes('dframe=t')), 'dframe requested');
  for (const r of c.net.lpResponses) {
    const want = r.url.includes('dframe=t') ? /^text\/html/ : /^application\/javascript/;
    assert.match(r.type ?? '', want, r.url);
    assert.equal(r.xfo, undefined, `X-Frame-Options on ${r.url}`);
  }
}

test('forceLongPolling: set, get, onValue (default and query), update, serverTimestamp, unicode, 50 KB, transaction', async () => {
  const ns = freshNamespace('lp');
  const c = await lpPage();
  await withDiagnostics({ c }, async () => {
    const h = await openDb(c, ns);
    await c.ev((h) => window.rt.watch(h, 'room'), h);
    await c.ev((h) => window.rt.watch(h, 'scores', { by: 'n', last: 2 }), h);
    const val = { n: 1, s: 'héllo ✓ 😀 日本語 \u2028' };
    await c.ev(([h, v]) => window.rt.set(h, 'room/a', v), [h, val]);
    assert.deepEqual(await c.ev((h) => window.rt.get(h, 'room/a'), h), val);
    await c.waitEvent((e, v) => e.p === 'room' && e.v?.a?.s === v, val.s);
    await c.ev((h) => window.rt.update(h, 'scores', { x: { n: 3 }, y: { n: 1 }, z: { n: 2 } }), h);
    await c.waitEvent((e) => e.q && e.keys.join() === 'z,x');
    await c.ev((h) => window.rt.update(h, 'scores', { 'y/n': 9 }), h);
    await c.waitEvent((e) => e.q && e.keys.join() === 'x,y');
    const before = Date.now();
    await c.ev((h) => window.rt.setTs(h, 'ts'), h);
    const ts = await c.ev((h) => window.rt.get(h, 'ts'), h);
    assert.ok(typeof ts === 'number' && Math.abs(ts - before) < 60000, String(ts));
    const big = `${'x'.repeat(25000)}${'é😀'.repeat(8000)}`; // ~50 KB of UTF-8: dozens of URL segments
    await c.ev(([h, b]) => window.rt.set(h, 'big', b), [h, big]);
    assert.equal(await c.ev((h) => window.rt.get(h, 'big'), h), big);
    assert.deepEqual(await c.ev((h) => window.rt.tx(h, 'counter'), h), { committed: true, v: 1 });
    assert.ok(c.net.lp.filter((u) => u.includes('seg')).length > 20, 'the big write went in many segments');
    assertOnlyLongPolling(c);
  });
  await c.context.close();
});

test('forceLongPolling: two pages contending on one transaction both commit (hash-mismatch retry)', async () => {
  const ns = freshNamespace('tx');
  const a = await lpPage();
  const b = await lpPage();
  await withDiagnostics({ a, b }, async () => {
    const ha = await openDb(a, ns);
    const hb = await openDb(b, ns);
    await a.ev((h) => window.rt.get(h, 'n'), ha);
    await b.ev((h) => window.rt.get(h, 'n'), hb);
    const runs = [];
    for (let i = 0; i < 5; i += 1) {
      runs.push(a.ev((h) => window.rt.tx(h, 'n'), ha), b.ev((h) => window.rt.tx(h, 'n'), hb));
    }
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.committed));
    assert.equal(await a.ev((h) => window.rt.get(h, 'n'), ha), 10);
    const logs = [...(await a.logs()), ...(await b.logs())];
    assert.ok(logs.some((l) => l.includes('datastale')), 'at least one hash mismatch was retried');
    assert.ok([...a.net.lp, ...b.net.lp].some((u) => u.includes('seg')));
    assertOnlyLongPolling(a);
    assertOnlyLongPolling(b);
  });
  await a.context.close();
  await b.context.close();
});

test('forceLongPolling: mockUserToken signs in; rules see auth.uid', async () => {
  const ns = freshNamespace('auth');
  await deployRules(ns, { users: { $uid: { '.read': 'auth != null && auth.uid === $uid', '.write': 'auth != null && auth.uid === $uid' } } });
  const c = await lpPage();
  await withDiagnostics({ c }, async () => {
    const alice = await openDb(c, ns, { token: { sub: 'alice' } });
    await c.ev((h) => window.rt.set(h, 'users/alice', { name: 'Alice' }), alice);
    assert.deepEqual(await c.ev((h) => window.rt.get(h, 'users/alice'), alice), { name: 'Alice' });
    const denied = await c.ev((h) => window.rt.set(h, 'users/bob', 1).then(() => 'ok', (e) => String(e)), alice);
    assert.match(denied, /PERMISSION_DENIED|permission_denied/i);
    const anon = await openDb(c, ns);
    const anonDenied = await c.ev((h) => window.rt.get(h, 'users/alice').then(() => 'ok', (e) => String(e)), anon);
    assert.match(anonDenied, /denied/i);
    assertOnlyLongPolling(c);
  });
  await c.context.close();
});

for (const how of ['goOffline', 'deleteApp']) {
  test(`forceLongPolling: ${how}() runs the onDisconnect writes`, async () => {
    const ns = freshNamespace('od');
    const c = await lpPage();
    const obs = await openPage();
    await withDiagnostics({ c, obs }, async () => {
      const h = await openDb(c, ns);
      const ho = await openDb(obs, ns);
      await obs.ev((h) => window.rt.watch(h, 'presence'), ho);
      await c.ev((h) => window.rt.onDisc(h, 'presence', 'gone'), h);
      await c.ev((h) => window.rt.set(h, 'presence', 'here'), h);
      await obs.waitEvent((e) => e.p === 'presence' && e.v === 'here');
      const t0 = Date.now();
      if (how === 'goOffline') await c.ev((h) => window.rt.offline(h), h);
      else await c.ev((h) => window.rt.close(h), h);
      await obs.waitEvent((e) => e.p === 'presence' && e.v === 'gone');
      console.log(`onDisconnect after ${how}(): ${Date.now() - t0} ms; /.lp?disconn= requested: ${c.net.lp.some((u) => u.includes('disconn=t'))}`);
      assertOnlyLongPolling(c);
    });
    await c.context.close();
    await obs.context.close();
  });
}

test('a WebSocket to /.ws?s=<unknown session> gets a reset, not a handshake', async () => {
  const c = await openPage();
  await withDiagnostics({ c }, async () => {
    await c.ev((url) => window.rt.probe(url), `ws://${HOST}:${PORT}/.ws?v=5&s=bogus&ns=x`);
    await c.page.waitForFunction(() => window.__wsProbe.length > 0, null, { timeout: 10000 });
    const first = JSON.parse(c.net.ws[0].recv[0] ?? (await c.ev(() => window.__wsProbe[0])));
    assert.equal(first.t, 'c');
    assert.equal(first.d.t, 'r');
  });
  await c.context.close();
});
