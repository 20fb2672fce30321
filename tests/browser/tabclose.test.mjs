// A tab closed without goOffline over long-polling: no clean close, perhaps no dframe disconn
// (spec long-polling.md §3.10; §5.5 row 2).
import { test } from 'node:test';
import { openPage, openDb, freshNamespace, withDiagnostics } from './helpers.mjs';

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
