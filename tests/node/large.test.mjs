import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get, update } from 'firebase/database';
import { freshNamespace, openDb, watchValue, Accumulator } from './helpers.mjs';
import { onValue } from 'firebase/database';

test('a 1 MB value travels both ways', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    const big = 'é✓x'.repeat(350000); // > 1 MB of UTF-8, split into many frames both ways
    const { acc, off } = watchValue(ref(b.db, 'big'));
    await acc.waitForCount(1);
    await set(ref(a.db, 'big'), big);
    await acc.waitFor((it) => it.at(-1) === big, 20000, 'big value pushed');
    assert.equal((await get(ref(b.db, 'big'))).val().length, big.length);
    const many = {};
    for (let i = 0; i < 5000; i++) many[`k${i}`] = { i, pad: 'p'.repeat(180) };
    await set(ref(a.db, 'bigobj'), many);
    assert.deepEqual((await get(ref(b.db, 'bigobj'))).val(), many);
    off();
  } finally {
    await a.close();
    await b.close();
  }
});

test('200 listeners in one client all receive their values', async () => {
  const ns = freshNamespace();
  const writer = openDb(ns);
  const reader = openDb(ns);
  try {
    const acc = new Accumulator();
    const offs = [];
    for (let i = 0; i < 200; i++) {
      offs.push(onValue(ref(reader.db, `many/item${i}`), (snap) => {
        if (snap.val() !== null) acc.push([i, snap.val()]);
      }));
    }
    const updates = {};
    for (let i = 0; i < 200; i++) updates[`many/item${i}`] = { v: i };
    await update(ref(writer.db), updates);
    await acc.waitForCount(200, 20000);
    assert.deepEqual(new Set(acc.items.map(([i, v]) => i === v.v && i)).size, 200);
    offs.forEach((off) => off());
  } finally {
    await writer.close();
    await reader.close();
  }
});
