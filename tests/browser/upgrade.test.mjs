// Default settings with the WebSocket-failure flag preset: long-polling first, then the upgrade to
// /.ws?s=<session> (spec long-polling.md §2, §4; §5.5 row 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, openDb, freshNamespace, withDiagnostics, PING, ACK, N_B64 } from './helpers.mjs';

test('flag preset: starts on /.lp, upgrades to /.ws?s=, clears the flag; a reconnect goes straight to WebSocket', async () => {
  const ns = freshNamespace('up');
  const c = await openPage({ wsFailureFlag: true });
  await withDiagnostics({ c }, async () => {
    const h = await openDb(c, ns);
    await c.ev((h) => window.rt.set(h, 'x', 1), h);
    assert.ok(c.net.lp[0].includes('start=t'), 'the first request is /.lp?start=t');
    await c.page.waitForFunction(() => window.__logs.some((l) => l.includes('cleaning up and promoting a connection')),
      null, { timeout: 15000 });
    const sec = c.net.ws.find((w) => /[?&]s=[^&]+/.test(w.url));
    assert.ok(sec, 'a secondary WebSocket with s=<session id>');
    assert.deepEqual(JSON.parse(sec.recv[0]), { t: 'c', d: { t: 'a', d: {} } }, 'the server speaks first with a');
    assert.equal(sec.sent.filter((f) => f === PING).length, 2, 'two client pings');
    assert.ok(sec.sent.includes(ACK), 'the client sent a');
    assert.ok(c.net.lp.some((u) => u.includes(N_B64)), 'n went over long-polling');
    assert.equal(await c.ev(() => localStorage.getItem('firebase:previous_websocket_failure')), null, 'flag cleared');
    await c.ev((h) => window.rt.set(h, 'y', 2), h);
    assert.ok(sec.sent.some((f) => f.includes('"p":"/y"')), 'later writes travel on the socket');
    const lpBefore = c.net.lp.length;
    await c.ev((h) => window.rt.offline(h), h);
    await c.ev((h) => window.rt.online(h), h);
    assert.equal(await c.ev((h) => window.rt.get(h, 'x'), h), 1);
    const direct = c.net.ws.filter((w) => w !== sec && !/[?&]s=/.test(w.url));
    assert.equal(direct.length, 1, 'the reconnect is one WebSocket without s=');
    assert.ok(c.net.lp.slice(lpBefore).every((u) => !u.includes('start=t')), 'no new long-polling session');
    for (const r of c.net.lpResponses) assert.match(r.type ?? '', r.url.includes('dframe=t') ? /^text\/html/ : /^application\/javascript/);
  });
  await c.context.close();
});
