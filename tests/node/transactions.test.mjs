import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get, update, runTransaction, serverTimestamp, increment } from 'firebase/database';
import { freshNamespace, openDb } from './helpers.mjs';

test('concurrent runTransaction from two apps: 100 increments make 100', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  const c = openDb(ns);
  try {
    const bump = (db) => runTransaction(ref(db, 'counter'), (n) => (n ?? 0) + 1);
    const runs = [];
    for (let i = 0; i < 50; i++) {
      runs.push(bump(a.db));
      runs.push(bump(b.db));
    }
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.committed));
    assert.equal((await get(ref(c.db, 'counter'))).val(), 100);
  } finally {
    await a.close();
    await b.close();
    await c.close();
  }
});

test('transaction on an object keeps its priority and sees other writers', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    await set(ref(b.db, 'obj'), { n: 1, s: 'x', '.priority': 3 });
    const result = await runTransaction(ref(a.db, 'obj'), (v) => (v === null ? { n: 0 } : { ...v, n: v.n + 1 }));
    assert.equal(result.committed, true);
    const snap = await get(ref(b.db, 'obj'));
    assert.deepEqual(snap.val(), { n: 2, s: 'x' });
  } finally {
    await a.close();
    await b.close();
  }
});

test('serverTimestamp is resolved by the server', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    const before = Date.now();
    await set(ref(a.db, 'sv'), { at: serverTimestamp(), label: 'x' });
    const value = (await get(ref(b.db, 'sv'))).val();
    assert.equal(value.label, 'x');
    assert.equal(typeof value.at, 'number');
    assert.ok(Math.abs(value.at - before) < 60000, `timestamp ${value.at} vs ${before}`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('increment from two apps adds up', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  const c = openDb(ns);
  try {
    const writes = [];
    for (let i = 0; i < 50; i++) {
      writes.push(update(ref(a.db, 'stats'), { hits: increment(1) }));
      writes.push(set(ref(b.db, 'stats/hits'), increment(1)));
    }
    await Promise.all(writes);
    assert.equal((await get(ref(c.db, 'stats/hits'))).val(), 100);
    await update(ref(a.db, 'stats'), { ratio: increment(0.5) });
    assert.equal((await get(ref(c.db, 'stats/ratio'))).val(), 0.5);
  } finally {
    await a.close();
    await b.close();
    await c.close();
  }
});
