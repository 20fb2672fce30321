// Dropping a namespace (DELETE /.namespace.json) while the official SDK listens to it: its
// listeners see null, the SDK reconnects by itself, onDisconnect writes registered before
// the drop do not bring the namespace back, and later writes are heard as usual.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, onDisconnect, query, orderByKey, limitToFirst } from 'firebase/database';
import { HOST, PORT, freshNamespace, openDb, waitConnected, watchValue } from './helpers.mjs';

async function drop(ns) {
  const response = await fetch(`http://${HOST}:${PORT}/.namespace.json?ns=${ns}`, {
    method: 'DELETE', headers: { Authorization: 'Bearer owner' },
  });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

async function restGet(ns, path) {
  const response = await fetch(`http://${HOST}:${PORT}/${path}.json?ns=${ns}`);
  return response.json();
}

test('listeners of a dropped namespace see null, reconnect, and hear the writes that follow', async () => {
  const ns = freshNamespace('drop');
  const writer = openDb(ns);
  const listener = openDb(ns);
  try {
    await set(ref(writer.db, 'rooms'), { a: { topic: 'x' }, b: { topic: 'y' }, c: { topic: 'z' } });
    await onDisconnect(ref(listener.db, 'presence/me')).set('gone');
    const whole = watchValue(ref(listener.db, 'rooms'));
    const first = watchValue(query(ref(listener.db, 'rooms'), orderByKey(), limitToFirst(1)));
    await whole.acc.waitFor((it) => it.at(-1)?.c?.topic === 'z', 10000, 'the rooms');
    await first.acc.waitFor((it) => it.at(-1)?.a?.topic === 'x', 10000, 'the first room');

    const answer = await drop(ns);
    assert.equal(answer.dropped, true);
    await whole.acc.waitFor((it) => it.at(-1) === null, 10000, 'null after the drop');
    await first.acc.waitFor((it) => it.at(-1) === null, 10000, 'the query null after the drop');
    await waitConnected(listener.db, true); // the server closed the socket: the SDK came back
    assert.equal(await restGet(ns, ''), null); // the onDisconnect write was discarded with the namespace

    await set(ref(writer.db, 'rooms/d'), { topic: 'new' });
    await whole.acc.waitFor((it) => it.at(-1)?.d?.topic === 'new', 10000, 'a write after the drop');
    await first.acc.waitFor((it) => it.at(-1)?.d?.topic === 'new', 10000, 'the query after the drop');
    assert.deepEqual(whole.acc.last(), { d: { topic: 'new' } });
    whole.off();
    first.off();
  } finally {
    await writer.close();
    await listener.close();
  }
});
