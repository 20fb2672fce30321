// Signing in against an emulator the way Firebase's own tooling does: the SDK's `mockUserToken`
// and `@firebase/rules-unit-testing`. Both send unsigned tokens dated 1970 (iat 0, exp 3600),
// which an emulator-mode server must accept and never treat as expired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, set, get } from 'firebase/database';
import {
  initializeTestEnvironment, assertFails, assertSucceeds,
} from '@firebase/rules-unit-testing';
import { HOST, PORT, freshNamespace, openDb, watchValue } from './helpers.mjs';

const OWN_PROFILES = {
  rules: {
    users: {
      $uid: {
        '.read': 'auth != null && auth.uid === $uid',
        '.write': 'auth != null && auth.uid === $uid',
      },
    },
  },
};

async function deployRules(ns, rules) {
  const response = await fetch(`http://${HOST}:${PORT}/.settings/rules.json?ns=${ns}`, {
    method: 'PUT',
    headers: { Authorization: 'Bearer owner' },
    body: JSON.stringify(rules),
  });
  assert.equal(response.status, 200, await response.text());
}

// writes reject with code PERMISSION_DENIED; get() with the server's "Permission denied"
function isDenied(err) {
  assert.ok(err.code === 'PERMISSION_DENIED' || /^permission denied$/i.test(err.message), String(err));
  return true;
}

/** `promise`, or a rejection if it has not settled within `ms`: a server that calls the token
 * expired makes the SDK retry forever, and the run must end (closing the apps) rather than hang. */
function settles(promise, what, ms = 15000) {
  let timer;
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} never settled (token refused as expired?)`)), ms);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

test('mockUserToken signs the SDK in: rules see auth.uid, and the session keeps it', { timeout: 60000 }, async () => {
  const ns = freshNamespace();
  await deployRules(ns, OWN_PROFILES);
  const alice = openDb(ns, { mockUserToken: { sub: 'alice' } });
  const bob = openDb(ns, { mockUserToken: { sub: 'bob' } });
  const anonymous = openDb(ns);
  try {
    await settles(set(ref(alice.db, 'users/alice'), { name: 'Alice' }), "alice's first write");
    await assert.rejects(set(ref(alice.db, 'users/bob'), { name: 'not Alice' }), isDenied);
    await assert.rejects(get(ref(bob.db, 'users/alice')), isDenied);
    await assert.rejects(set(ref(anonymous.db, 'users/alice'), { name: 'nobody' }), isDenied);

    // a listen under alice's token lives on and follows her writes (no revocation at "exp")
    const { acc, off } = watchValue(ref(alice.db, 'users/alice'));
    await acc.waitFor((items) => items.at(-1)?.name === 'Alice', 10000, "alice's profile");
    await set(ref(alice.db, 'users/alice/name'), 'Alice B.');
    await acc.waitFor((items) => items.at(-1)?.name === 'Alice B.', 10000, 'the renamed profile');
    assert.ok(acc.items.every((item) => !item.error), JSON.stringify(acc.items));
    off();
    assert.deepEqual((await get(ref(alice.db, 'users/alice'))).val(), { name: 'Alice B.' });
  } finally {
    await alice.close();
    await bob.close();
    await anonymous.close();
  }
});

test('@firebase/rules-unit-testing: allowed and denied operations, rules disabled, clearing', { timeout: 60000 }, async () => {
  const projectId = freshNamespace('demo');
  const testEnv = await initializeTestEnvironment({
    projectId,
    database: { host: HOST, port: PORT, rules: JSON.stringify(OWN_PROFILES) },
  });
  try {
    const alice = testEnv.authenticatedContext('alice').database();
    const nobody = testEnv.unauthenticatedContext().database();

    await settles(assertSucceeds(alice.ref('users/alice').set({ name: 'Alice' })), "alice's first write");
    await assertFails(alice.ref('users/bob').set({ name: 'not Alice' }));
    await assertFails(nobody.ref('users/alice').once('value'));
    await assertFails(nobody.ref('users/alice').set(null));
    const own = await assertSucceeds(alice.ref('users/alice').once('value'));
    assert.deepEqual(own.val(), { name: 'Alice' });

    // the rules were loaded into the namespace named after the project
    const deployed = await fetch(`http://${HOST}:${PORT}/.settings/rules.json?ns=${projectId}`, {
      headers: { Authorization: 'Bearer owner' },
    });
    assert.deepEqual(JSON.parse(await deployed.text()), OWN_PROFILES);

    await testEnv.withSecurityRulesDisabled(async (context) => {
      await context.database().ref('users/bob').set({ name: 'Bob' });
    });
    await assertFails(alice.ref('users/bob').once('value'));

    await testEnv.clearDatabase();
    const left = await fetch(`http://${HOST}:${PORT}/.json?ns=${projectId}`, {
      headers: { Authorization: 'Bearer owner' },
    });
    assert.equal(await left.text(), 'null');
  } finally {
    await testEnv.cleanup();
  }
});
