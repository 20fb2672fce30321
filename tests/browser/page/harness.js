// A small RPC surface for page.evaluate(): keeps app handles, records value events and SDK logs.
import { initializeApp, deleteApp } from '/fb/firebase-app.js';
import {
  getDatabase, connectDatabaseEmulator, forceLongPolling, forceWebSockets, enableLogging, ref, set, get,
  update, onValue, query, orderByChild, limitToLast, runTransaction, onDisconnect, goOffline, goOnline,
  serverTimestamp,
} from '/fb/firebase-database.js';

window.__logs = [];
enableLogging((m) => window.__logs.push(`${Date.now()} ${m}`));
window.__events = [];
window.__wsProbe = [];
const apps = new Map();
let n = 0;
const dbOf = (h) => apps.get(h).db;

window.rt = {
  forceLongPolling, forceWebSockets,
  open({ host, port, ns, token }) {
    n += 1;
    const app = initializeApp({ projectId: 'demo-rtdb', databaseURL: `http://${host}:${port}?ns=${ns}` }, `app${n}`);
    const db = getDatabase(app);
    connectDatabaseEmulator(db, host, port, token ? { mockUserToken: token } : {});
    apps.set(n, { app, db });
    return n;
  },
  set: (h, p, v) => set(ref(dbOf(h), p), v).then(() => true),
  setTs: (h, p) => set(ref(dbOf(h), p), serverTimestamp()).then(() => true),
  update: (h, p, v) => update(ref(dbOf(h), p), v).then(() => true),
  get: async (h, p) => (await get(ref(dbOf(h), p))).val(),
  // Value events of a path, or of a query ordered by child `by`, last `last` children.
  watch(h, p, { by, last } = {}) {
    const r = by ? query(ref(dbOf(h), p), orderByChild(by), limitToLast(last)) : ref(dbOf(h), p);
    onValue(r, (s) => {
      const keys = [];
      s.forEach((c) => { keys.push(c.key); });
      window.__events.push({ h, p, q: Boolean(by), v: s.val(), keys, t: Date.now() });
    }, (e) => window.__events.push({ h, p, error: String(e), t: Date.now() }));
    return true;
  },
  async tx(h, p) {
    const r = await runTransaction(ref(dbOf(h), p), (v) => (v || 0) + 1);
    return { committed: r.committed, v: r.snapshot.val() };
  },
  onDisc: (h, p, v) => onDisconnect(ref(dbOf(h), p)).set(v).then(() => true),
  offline: (h) => { goOffline(dbOf(h)); return true; },
  online: (h) => { goOnline(dbOf(h)); return true; },
  close: (h) => deleteApp(apps.get(h).app).then(() => true),
  // A raw WebSocket; collects the frames it receives in __wsProbe.
  probe(url) {
    const ws = new WebSocket(url);
    ws.onmessage = (e) => window.__wsProbe.push(String(e.data));
    ws.onclose = (e) => window.__wsProbe.push(`closed ${e.code}`);
    return true;
  },
};
