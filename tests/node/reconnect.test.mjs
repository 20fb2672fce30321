import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ref, set, get } from 'firebase/database';
import { freshNamespace, openDb, waitConnected, watchValue } from './helpers.mjs';

const RTDB_BIN = process.env.RTDB_BIN;
const TMP = process.env.RTDB_TMP;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(port, dataDir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().endsWith('_proxy')));
  const proc = spawn(RTDB_BIN, ['serve', '--emulator', '--port', String(port), '--data-dir', dataDir], {
    stdio: 'ignore',
    env,
  });
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`rtdb serve exited with ${proc.exitCode}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) return proc;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('rtdb serve did not start');
}

async function stopServer(proc) {
  if (proc.exitCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  await exited;
}

test('clients reconnect after a server restart, keep their listens and replay writes', { skip: !RTDB_BIN }, async () => {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(TMP, 'restart-'));
  let server = await startServer(port, dataDir);
  const ns = freshNamespace();
  const listener = openDb(ns, { port });
  const writer = openDb(ns, { port });
  try {
    const { acc, off } = watchValue(ref(listener.db, 'room/msg'));
    await set(ref(writer.db, 'room/msg'), 'before');
    await acc.waitFor((it) => it.at(-1) === 'before', 10000, 'before');
    await waitConnected(listener.db, true);

    await stopServer(server);
    await waitConnected(listener.db, false);
    server = await startServer(port, dataDir);
    await waitConnected(listener.db, true, 30000);
    await waitConnected(writer.db, true, 30000);

    await set(ref(writer.db, 'room/msg'), 'after');
    await acc.waitFor((it) => it.at(-1) === 'after', 15000, 'after');
    assert.equal((await get(ref(listener.db, 'room/msg'))).val(), 'after');
    off();
  } finally {
    await listener.close();
    await writer.close();
    await stopServer(server);
  }
});
