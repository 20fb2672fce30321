import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get, update, push, remove, query, orderByKey } from 'firebase/database';
import { freshNamespace, openDb, watchValue } from './helpers.mjs';

test('set then get a nested value from another app', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    const value = { profile: { name: 'Ada', langs: ['py', 'js'], age: 36 }, active: true, score: 1.5 };
    await set(ref(a.db, 'users/ada'), value);
    const snap = await get(ref(b.db, 'users/ada'));
    assert.deepEqual(snap.val(), value);
    assert.equal((await get(ref(b.db, 'users/ada/profile/name'))).val(), 'Ada');
    assert.equal((await get(ref(b.db, 'users/nobody'))).exists(), false);
  } finally {
    await a.close();
    await b.close();
  }
});

test('multi-path update applies every path', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    await set(ref(a.db, 'm'), { keep: 1, x: { old: true } });
    await update(ref(a.db), { 'm/x/y': 1, 'm/z/w': 'deep', 'other/flag': true, 'm/x/old': null });
    assert.deepEqual((await get(ref(b.db, 'm'))).val(), { keep: 1, x: { y: 1 }, z: { w: 'deep' } });
    assert.deepEqual((await get(ref(b.db, 'other'))).val(), { flag: true });
  } finally {
    await a.close();
    await b.close();
  }
});

test('push keys keep insertion order', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    for (let i = 0; i < 15; i++) await push(ref(a.db, 'log'), { i });
    const snap = await get(query(ref(b.db, 'log'), orderByKey()));
    const order = [];
    snap.forEach((child) => {
      order.push(child.val().i);
    });
    assert.deepEqual(order, [...Array(15).keys()]);
  } finally {
    await a.close();
    await b.close();
  }
});

test('remove deletes and prunes empty parents', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    await set(ref(a.db, 'r/only/leaf'), 1);
    await set(ref(a.db, 'r/sibling'), 2);
    await remove(ref(a.db, 'r/only/leaf'));
    assert.deepEqual((await get(ref(b.db, 'r'))).val(), { sibling: 2 });
    await remove(ref(a.db, 'r'));
    assert.equal((await get(ref(b.db, 'r'))).exists(), false);
  } finally {
    await a.close();
    await b.close();
  }
});

test('onValue sees every committed value in order, without flicker', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  const b = openDb(ns);
  try {
    const remote = watchValue(ref(b.db, 'k'));
    await remote.acc.waitForCount(1);
    const local = watchValue(ref(a.db, 'k'));
    await local.acc.waitForCount(1);
    await set(ref(a.db, 'k'), 'v1');
    await set(ref(a.db, 'k'), 'v2');
    await remote.acc.waitFor((items) => items.at(-1) === 'v2', 10000, 'v2');
    assert.deepEqual(remote.acc.items, [null, 'v1', 'v2']);
    assert.deepEqual(local.acc.items, [null, 'v1', 'v2']);
    remote.off();
    local.off();
  } finally {
    await a.close();
    await b.close();
  }
});
