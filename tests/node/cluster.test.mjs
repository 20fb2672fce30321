// The official JS SDK against a cluster: three rtdb nodes sharing PostgreSQL and Redis, and
// nginx in front (run through tests/e2e/test_cluster.py, which sets RTDB_CLUSTER_PORTS to the
// nodes' ports and RTDB_PORT to nginx's). Skipped when run against a single server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, push, get, onChildAdded, runTransaction } from 'firebase/database';
import { Accumulator, freshNamespace, openDb, watchValue, PORT } from './helpers.mjs';

const NODES = (process.env.RTDB_CLUSTER_PORTS ?? '').split(',').filter(Boolean).map(Number);
const skip = NODES.length < 3 ? 'needs RTDB_CLUSTER_PORTS (tests/e2e/test_cluster.py)' : false;

async function closeAll(apps) {
  await Promise.all(apps.map((a) => a.close()));
}

test('listeners on every node and behind nginx see the same onValue and onChildAdded sequences', { skip }, async () => {
  const ns = freshNamespace('cluster');
  const writers = NODES.map((port) => openDb(ns, { port }));
  const listeners = [...NODES, PORT].map((port) => openDb(ns, { port }));
  try {
    const values = listeners.map((l) => watchValue(ref(l.db, 'latest')));
    const added = listeners.map((l) => {
      const acc = new Accumulator();
      onChildAdded(ref(l.db, 'msgs'), (snap) => acc.push([snap.key, snap.val()]));
      return acc;
    });
    await Promise.all(values.map((v) => v.acc.waitForCount(1)));  // the initial null
    const per = 20;
    await Promise.all(writers.map(async (w, k) => {
      const writes = [];
      for (let i = 0; i < per; i++) {
        writes.push(set(ref(w.db, 'latest'), { by: k, i }));
        writes.push(push(ref(w.db, 'msgs'), { by: k, i }));
      }
      await Promise.all(writes);
    }));
    // a fresh app through nginx: get() on an app listening there would answer from its cache
    const reader = openDb(ns, { port: PORT });
    const final = (await get(ref(reader.db, 'latest'))).val();
    await reader.close();
    for (const { acc } of values) {
      await acc.waitFor((items) => JSON.stringify(items[items.length - 1]) === JSON.stringify(final), 15000, 'the final value');
    }
    await Promise.all(added.map((acc) => acc.waitForCount(per * writers.length, 15000)));
    const first = JSON.stringify(values[0].acc.items);
    for (const { acc } of values) assert.equal(JSON.stringify(acc.items), first);
    const firstAdded = JSON.stringify(added[0].items);
    for (const acc of added) assert.equal(JSON.stringify(acc.items), firstAdded);
    const pairs = added[0].items.map(([, v]) => `${v.by}:${v.i}`).sort();
    assert.equal(new Set(pairs).size, per * writers.length);
    for (const { off } of values) off();
  } finally {
    await closeAll([...writers, ...listeners]);
  }
});

test('runTransaction from three apps on three nodes, 50 each, makes exactly 150', { skip }, async () => {
  const ns = freshNamespace('cluster-tx');
  const apps = NODES.map((port) => openDb(ns, { port }));
  const viaNginx = openDb(ns, { port: PORT });
  try {
    const runs = [];
    for (let i = 0; i < 50; i++) {
      for (const a of apps) runs.push(runTransaction(ref(a.db, 'counter'), (n) => (n ?? 0) + 1));
    }
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.committed));
    assert.equal((await get(ref(viaNginx.db, 'counter'))).val(), 150);
    for (const a of apps) assert.equal((await get(ref(a.db, 'counter'))).val(), 150);
  } finally {
    await closeAll([...apps, viaNginx]);
  }
});
