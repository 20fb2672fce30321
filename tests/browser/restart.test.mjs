// A page loaded while rtdb is down: its first WebSocket fails and sets the flag, so the SDK comes in
// through /.lp once rtdb starts, then upgrades (spec long-polling.md §2.4; §5.5 row 4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { openPage, openDb, freshNamespace, withDiagnostics, HOST } from './helpers.mjs';

const RTDB_BIN = process.env.RTDB_BIN;
const TMP = process.env.RTDB_TMP || os.tmpdir();

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, HOST, () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function startServer(port, dataDir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().endsWith('_proxy')));
  const proc = spawn(RTDB_BIN, ['serve', '--emulator', '--port', String(port), '--data-dir', dataDir], { stdio: 'ignore', env });
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`rtdb serve exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`http://${HOST}:${port}/healthz`)).ok) return proc;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('rtdb serve did not start');
}

test('a page loaded while rtdb is down gets its data through /.lp once rtdb starts, then upgrades', { timeout: 90000 }, async () => {
  assert.ok(RTDB_BIN, 'RTDB_BIN names the rtdb executable');
  const port = await freePort();
  const ns = freshNamespace('down');
  const c = await openPage();
  let server;
  try {
    await withDiagnostics({ c }, async () => {
      const h = await openDb(c, ns, { port });
      await c.ev((h) => window.rt.watch(h, 'greeting'), h);
      await c.page.waitForFunction(() => localStorage.getItem('firebase:previous_websocket_failure') === 'true',
        null, { timeout: 15000 });
      server = await startServer(port, mkdtempSync(path.join(TMP, 'browser-down-')));
      const res = await fetch(`http://${HOST}:${port}/greeting.json?ns=${ns}`, {
        method: 'PUT', headers: { Authorization: 'Bearer owner' }, body: JSON.stringify('hello'),
      });
      assert.equal(res.status, 200);
      // The SDK's backoff after a failed attempt is 1 s doubling (random), so allow a while.
      await c.waitEvent((e) => e.p === 'greeting' && e.v === 'hello', null, 60000);
      assert.ok(c.net.lp.some((u) => u.includes('start=t')), 'came in through /.lp');
      await c.page.waitForFunction(() => window.__logs.some((l) => l.includes('cleaning up and promoting a connection')),
        null, { timeout: 15000 });
      assert.ok(c.net.ws.some((w) => /[?&]s=[^&]+/.test(w.url)), 'upgraded on /.ws?s=');
      assert.equal(await c.ev(() => localStorage.getItem('firebase:previous_websocket_failure')), null);
    });
  } finally {
    await c.context.close();
    if (server && server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
  }
});
