import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get, onDisconnect, goOffline, goOnline, serverTimestamp } from 'firebase/database';
import { freshNamespace, openDb, waitConnected, watchValue } from './helpers.mjs';

test('.info/connected follows the connection', async () => {
  const ns = freshNamespace();
  const a = openDb(ns);
  try {
    await set(ref(a.db, 'ping'), 1); // connects
    await waitConnected(a.db, true);
    goOffline(a.db);
    await waitConnected(a.db, false);
    goOnline(a.db);
    await waitConnected(a.db, true);
  } finally {
    await a.close();
  }
});

test('onDisconnect set, update and remove run at disconnect; cancel drops ops', async () => {
  const ns = freshNamespace();
  const leaver = openDb(ns);
  const watcher = openDb(ns);
  try {
    await set(ref(leaver.db, 'presence'), { bob: { online: true }, carol: { state: 'here', n: 1 }, dave: 'here' });
    await onDisconnect(ref(leaver.db, 'presence/alice')).set({ online: false, at: serverTimestamp() });
    await onDisconnect(ref(leaver.db, 'presence/bob')).remove();
    await onDisconnect(ref(leaver.db, 'presence/carol')).update({ state: 'away' });
    await onDisconnect(ref(leaver.db, 'presence/dave')).set('gone');
    await onDisconnect(ref(leaver.db, 'presence/dave')).cancel();

    const { acc, off } = watchValue(ref(watcher.db, 'presence'));
    await acc.waitForCount(1);
    goOffline(leaver.db);
    await acc.waitFor((it) => it.at(-1)?.alice !== undefined && it.at(-1)?.bob === undefined
      && it.at(-1)?.carol?.state === 'away', 10000, 'onDisconnect ops');
    const final = (await get(ref(watcher.db, 'presence'))).val();
    assert.equal(final.alice.online, false);
    assert.equal(typeof final.alice.at, 'number');
    assert.equal(final.bob, undefined);
    assert.deepEqual(final.carol, { state: 'away', n: 1 });
    assert.equal(final.dave, 'here');
    off();
  } finally {
    await leaver.close();
    await watcher.close();
  }
});
