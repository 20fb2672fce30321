// An idle long-polling session past the client's 25 s keepalive: nothing stalls
// (spec long-polling.md §3.7; §5.5 row 5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, openDb, freshNamespace, withDiagnostics } from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('an idle long-polling session past 25 s still receives a write from another client', { timeout: 90000 }, async () => {
  const ns = freshNamespace('idle');
  const c = await openPage();
  const w = await openPage();
  await withDiagnostics({ c, w }, async () => {
    await c.ev(() => window.rt.forceLongPolling());
    const h = await openDb(c, ns);
    await c.ev((h) => window.rt.watch(h, 'v'), h);
    await c.waitEvent((e) => e.p === 'v' && e.v === null);
    await sleep(31000); // the idle time under test
    const hw = await openDb(w, ns);
    const t0 = Date.now();
    await w.ev((h) => window.rt.set(h, 'v', 'after idle'), hw);
    await c.waitEvent((e) => e.p === 'v' && e.v === 'after idle', null, 10000);
    console.log(`write after 31 s idle arrived in ${Date.now() - t0} ms; /.lp requests during the session: ${c.net.lp.length}`);
    assert.equal(c.net.ws.length, 0);
    assert.equal(c.net.lp.filter((u) => u.includes('start=t')).length, 1, 'the same session throughout');
  });
  await c.context.close();
  await w.context.close();
});

