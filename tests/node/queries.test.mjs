import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ref, set, remove, update, query, orderByChild, orderByKey, orderByValue, limitToLast, limitToFirst,
  startAt, endAt, equalTo, startAfter, endBefore, get,
} from 'firebase/database';
import { freshNamespace, openDb, watchValue } from './helpers.mjs';

const keysOf = (v) => (v === null || v === undefined ? [] : Object.keys(v).sort());

test('orderByChild + limitToLast follows children entering and leaving the window', async () => {
  const ns = freshNamespace();
  const writer = openDb(ns);
  const reader = openDb(ns);
  try {
    await set(ref(writer.db, 'scores'), { a: { score: 5 }, b: { score: 15 }, c: { score: 25 }, d: { score: 35 } });
    const q = query(ref(reader.db, 'scores'), orderByChild('score'), limitToLast(2));
    const { acc, off } = watchValue(q);
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'c,d', 10000, 'c,d');

    await set(ref(writer.db, 'scores/e'), { score: 50 }); // enters, c leaves
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'd,e', 10000, 'd,e');

    await remove(ref(writer.db, 'scores/e')); // leaves: c must come back from outside the window
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'c,d', 10000, 'c,d again');
    assert.deepEqual(acc.last(), { c: { score: 25 }, d: { score: 35 } });

    await update(ref(writer.db, 'scores/a'), { score: 99 }); // a deep change moves a into the window
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'a,d', 10000, 'a,d');

    await set(ref(writer.db, 'scores/d/score'), 1); // d drops out, c refills
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'a,c', 10000, 'a,c');
    assert.deepEqual(acc.last(), { a: { score: 99 }, c: { score: 25 } });
    off();
  } finally {
    await writer.close();
    await reader.close();
  }
});

test('orderByKey ranges', async () => {
  const ns = freshNamespace();
  const writer = openDb(ns);
  const reader = openDb(ns);
  try {
    await set(ref(writer.db, 'k'), { a: 1, b: 2, c: 3, d: 4, e: 5 });
    const q = query(ref(reader.db, 'k'), orderByKey(), startAt('b'), endAt('d'));
    const { acc, off } = watchValue(q);
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'b,c,d', 10000, 'b..d');
    await set(ref(writer.db, 'k/bb'), 9);
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'b,bb,c,d', 10000, 'bb enters');
    await set(ref(writer.db, 'k/f'), 9); // outside the range: no change
    await remove(ref(writer.db, 'k/c'));
    await acc.waitFor((it) => keysOf(it.at(-1)).join() === 'b,bb,d', 10000, 'c leaves');
    off();
    const after = await get(query(ref(reader.db, 'k'), orderByKey(), startAfter('b'), limitToFirst(2)));
    assert.deepEqual(after.val(), { bb: 9, d: 4 });
  } finally {
    await writer.close();
    await reader.close();
  }
});

test('equalTo and exclusive bounds', async () => {
  const ns = freshNamespace();
  const writer = openDb(ns);
  const reader = openDb(ns);
  try {
    await set(ref(writer.db, 'cars'), {
      c1: { color: 'red', n: 10 }, c2: { color: 'blue', n: 10 }, c3: { color: 'red', n: 20 }, c4: { color: 'green', n: 30 },
    });
    const reds = watchValue(query(ref(reader.db, 'cars'), orderByChild('color'), equalTo('red')));
    await reds.acc.waitFor((it) => keysOf(it.at(-1)).join() === 'c1,c3', 10000, 'reds');
    await set(ref(writer.db, 'cars/c2/color'), 'red');
    await reds.acc.waitFor((it) => keysOf(it.at(-1)).join() === 'c1,c2,c3', 10000, 'c2 turns red');
    await set(ref(writer.db, 'cars/c1/color'), 'black');
    await reds.acc.waitFor((it) => keysOf(it.at(-1)).join() === 'c2,c3', 10000, 'c1 not red');
    reds.off();

    const between = await get(query(ref(reader.db, 'cars'), orderByChild('n'), startAfter(10), endBefore(30)));
    assert.deepEqual(keysOf(between.val()), ['c3']);
    const values = await get(query(ref(reader.db, 'cars/c3'), orderByValue(), equalTo(20)));
    assert.deepEqual(values.val(), { n: 20 });
  } finally {
    await writer.close();
    await reader.close();
  }
});
