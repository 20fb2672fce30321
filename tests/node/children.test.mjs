import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ref, set, update, remove, query, orderByChild,
  onChildAdded, onChildChanged, onChildRemoved, onChildMoved,
} from 'firebase/database';
import { Accumulator, freshNamespace, openDb } from './helpers.mjs';

test('child events: added, changed, removed and moved', async () => {
  const ns = freshNamespace();
  const writer = openDb(ns);
  const reader = openDb(ns);
  try {
    await set(ref(writer.db, 'list'), { a: { n: 1 }, b: { n: 2 } });
    const events = new Accumulator();
    const q = query(ref(reader.db, 'list'), orderByChild('n'));
    const offs = [
      onChildAdded(q, (s, prev) => events.push(['added', s.key, s.val().n, prev ?? null])),
      onChildChanged(q, (s, prev) => events.push(['changed', s.key, s.val().n, prev ?? null])),
      onChildRemoved(q, (s) => events.push(['removed', s.key])),
      onChildMoved(q, (s, prev) => events.push(['moved', s.key, prev ?? null])),
    ];
    await events.waitForCount(2);
    assert.deepEqual(events.items, [['added', 'a', 1, null], ['added', 'b', 2, 'a']]);

    await set(ref(writer.db, 'list/c'), { n: 3 });
    await events.waitForCount(3);
    assert.deepEqual(events.items[2], ['added', 'c', 3, 'b']);

    await update(ref(writer.db, 'list/a'), { n: 10 }); // a moves to the end
    await events.waitFor((it) => it.some((e) => e[0] === 'changed'), 10000, 'changed');
    await events.waitFor((it) => it.some((e) => e[0] === 'moved'), 10000, 'moved');
    const tail = events.items.slice(3);
    assert.deepEqual(tail.find((e) => e[0] === 'changed'), ['changed', 'a', 10, 'c']);
    assert.deepEqual(tail.find((e) => e[0] === 'moved'), ['moved', 'a', 'c']);

    await remove(ref(writer.db, 'list/b'));
    await events.waitFor((it) => it.some((e) => e[0] === 'removed'), 10000, 'removed');
    assert.deepEqual(events.last(), ['removed', 'b']);
    offs.forEach((off) => off());
  } finally {
    await writer.close();
    await reader.close();
  }
});
