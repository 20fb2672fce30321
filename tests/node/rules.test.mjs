import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get, onDisconnect } from 'firebase/database';
import { HOST, PORT, freshNamespace, openDb, watchValue } from './helpers.mjs';

/** Deploy rules for one namespace through the REST settings endpoint (emulator mode: `owner` is admin). */
async function deployRules(ns, rules) {
  const response = await fetch(`http://${HOST}:${PORT}/.settings/rules.json?ns=${ns}`, {
    method: 'PUT',
    headers: { Authorization: 'Bearer owner' },
    body: JSON.stringify({ rules }),
  });
  assert.equal(response.status, 200, await response.text());
}

test('a write the rules deny is rejected with PERMISSION_DENIED and reverted locally', async () => {
  const ns = freshNamespace();
  await deployRules(ns, {
    open: { '.read': true, '.write': true },
    locked: { '.read': true, '.write': false },
  });
  const a = openDb(ns);
  try {
    await set(ref(a.db, 'open/x'), 1);
    const { acc, off } = watchValue(ref(a.db, 'locked'));
    await acc.waitForCount(1);
    assert.equal(acc.last(), null);
    await assert.rejects(set(ref(a.db, 'locked/x'), 1), (err) => {
      assert.equal(err.code, 'PERMISSION_DENIED');
      return true;
    });
    // the listener saw the optimistic value, then the revert
    await acc.waitFor((items) => items.length >= 3, 10000, 'optimistic value and revert');
    assert.deepEqual(acc.items.slice(0, 3), [null, { x: 1 }, null]);
    assert.equal((await get(ref(a.db, 'locked'))).val(), null);
    off();
  } finally {
    await a.close();
  }
});

test('an onDisconnect write the rules deny is refused when it is registered', async () => {
  const ns = freshNamespace();
  await deployRules(ns, {
    presence: { $uid: { '.read': true, '.write': true, '.validate': 'newData.isBoolean()' } },
  });
  const a = openDb(ns);
  try {
    await onDisconnect(ref(a.db, 'presence/ann')).set(false);
    await assert.rejects(onDisconnect(ref(a.db, 'presence/ann')).set('away'), (err) => {
      assert.match(String(err.message ?? err), /permission_denied|PERMISSION_DENIED/i);
      return true;
    });
    await assert.rejects(onDisconnect(ref(a.db, 'elsewhere')).set(1), /permission_denied/i);
  } finally {
    await a.close();
  }
  const b = openDb(ns);
  try {
    // only the accepted op ran when the first client left
    assert.equal((await get(ref(b.db, 'presence/ann'))).val(), false);
  } finally {
    await b.close();
  }
});
