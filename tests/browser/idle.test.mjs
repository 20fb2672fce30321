// Long waits over long-polling, in one file so that node --test runs them beside the others:
// an idle session past the client's 25 s keepalive, and a tab closed without goOffline
// (spec long-polling.md §3.7, §3.10; §5.5 rows 2 and 5).
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

test('a context closed without goOffline: its onDisconnect write reaches an observer within 60 s', { timeout: 90000 }, async () => {
  const ns = freshNamespace('tab');
  const c = await openPage();
  const obs = await openPage();
  await withDiagnostics({ c, obs }, async () => {
    await c.ev(() => window.rt.forceLongPolling());
    const h = await openDb(c, ns);
    const ho = await openDb(obs, ns);
    await obs.ev((h) => window.rt.watch(h, 'presence'), ho);
    await c.ev((h) => window.rt.onDisc(h, 'presence', 'gone'), h);
    await c.ev((h) => window.rt.set(h, 'presence', 'here'), h);
    await obs.waitEvent((e) => e.p === 'presence' && e.v === 'here');
    const t0 = Date.now();
    await c.context.close(); // no goOffline, no clean close
    await obs.waitEvent((e) => e.p === 'presence' && e.v === 'gone', null, 60000);
    const seen = await obs.ev(() => window.__events.find((e) => e.p === 'presence' && e.v === 'gone').t);
    console.log(`onDisconnect after a context close: ${seen - t0} ms; /.lp?disconn= requested: ${c.net.lp.some((u) => u.includes('disconn=t'))}`);
  });
  await obs.context.close();
});
