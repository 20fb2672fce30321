// Shared helpers: apps of the unmodified Firebase JS SDK connected to a running `rtdb serve --emulator`.
import { initializeApp, deleteApp } from 'firebase/app';
import { getDatabase, connectDatabaseEmulator, ref, onValue } from 'firebase/database';

export const HOST = '127.0.0.1';
export const PORT = Number(process.env.RTDB_PORT);
if (!PORT) throw new Error('RTDB_PORT is not set (run through tests/e2e/test_js_sdk.py)');

let counter = 0;

/** A fresh namespace per test keeps tests independent. */
export function freshNamespace(prefix = 't') {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** An app + database on namespace `ns`; call `close()` when done. `mockUserToken` signs the app
 * in as that user the way the SDK does against an emulator (an unsigned token). */
export function openDb(ns, { port = PORT, name, mockUserToken } = {}) {
  counter += 1;
  const app = initializeApp(
    { projectId: 'demo', databaseURL: `http://${HOST}:${port}?ns=${ns}` },
    name ?? `app-${counter}-${Math.random().toString(36).slice(2)}`,
  );
  const db = getDatabase(app);
  connectDatabaseEmulator(db, HOST, port, mockUserToken ? { mockUserToken } : {});
  return { app, db, close: () => deleteApp(app) };
}

/** Collects values and waits for a count, or a predicate, with a timeout (never sleeps blindly). */
export class Accumulator {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => !w.check());
  }
  waitFor(predicate, timeoutMs = 10000, what = 'condition') {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          if (!predicate(this.items)) return false;
          clearTimeout(waiter.timer);
          resolve(this.items);
          return true;
        },
      };
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.items).slice(0, 2000)}`));
      }, timeoutMs);
      if (!waiter.check()) this.waiters.push(waiter);
    });
  }
  waitForCount(n, timeoutMs = 10000) {
    return this.waitFor((items) => items.length >= n, timeoutMs, `${n} items`);
  }
  last() {
    return this.items[this.items.length - 1];
  }
}

/** Subscribe with onValue; returns the accumulator of `snap.val()` and the unsubscribe function. */
export function watchValue(query) {
  const acc = new Accumulator();
  const off = onValue(query, (snap) => acc.push(snap.val()), (err) => acc.push({ error: String(err) }));
  return { acc, off };
}

/** Resolves when `.info/connected` has the wanted value. */
export function waitConnected(db, wanted = true, timeoutMs = 15000) {
  const acc = new Accumulator();
  const off = onValue(ref(db, '.info/connected'), (snap) => acc.push(snap.val()));
  return acc
    .waitFor((items) => items[items.length - 1] === wanted, timeoutMs, `.info/connected=${wanted}`)
    .finally(off);
}
