// Official firebase@12 clients through nginx while a node of the cluster is SIGKILLed; driven by
// tests/e2e/test_cluster_chaos.py (a script, not a *.test.mjs file: test_js_sdk.py runs those
// against single servers). Lines of JSON go out on stdout, commands come in on stdin:
//
//   out {"ready": true}                         every client connected, writing and listening
//   in  "recover"                               the node is dead: wait for the clients it held
//   out {"recovered": {...}}                    each of them is back and has written since
//   in  "stop"                                  stop writing, drain, wait for the listeners
//   out {"report": {...}}                       acked writes, listeners' final values
//   in  "close"                                 delete the apps (their onDisconnect ops then run)
//
// Client i writes, one tick at a time, `log/c<i>/<push id>` = n and `counters/c<i>` = n, and
// records each acknowledged write; it listens to `counters` (onValue). Even clients keep a
// presence record the usual way: on every `.info/connected` true, onDisconnect().update() of
// `status/c<i>` = "offline" and `runs/c<i>` += 1, then `status/c<i>` = "online".
import readline from 'node:readline';
import { ref, set, push, get, onValue, onDisconnect, increment } from 'firebase/database';
import { openDb, PORT } from './helpers.mjs';

const N = Number(process.env.RTDB_CHAOS_CLIENTS ?? 30);
const NS = process.env.RTDB_CHAOS_NS;
const TICK_MS = Number(process.env.RTDB_CHAOS_TICK_MS ?? 200);
if (!NS) throw new Error('RTDB_CHAOS_NS is not set (run through tests/e2e/test_cluster_chaos.py)');

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const waitFor = async (predicate, timeoutMs, what) => {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

let writing = true;
const clients = [];
for (let i = 0; i < N; i++) {
  const c = {
    i, ...openDb(NS, { port: PORT }), presence: i % 2 === 0,
    up: false, drops: [], ups: [], acked: [], view: undefined, views: 0, viewAt: [], errors: [], loop: undefined,
  };
  onValue(ref(c.db, '.info/connected'), (snap) => {
    if (c.up && snap.val() !== true) c.drops.push(Date.now());  // .info/connected starts false
    c.up = snap.val() === true;
    if (c.up) c.ups.push(Date.now());
    if (snap.val() === true && c.presence) {
      onDisconnect(ref(c.db)).update({ [`status/c${i}`]: 'offline', [`runs/c${i}`]: increment(1) })
        .then(() => set(ref(c.db, `status/c${i}`), 'online'))
        .catch((err) => c.errors.push(`presence: ${err}`));
    }
  });
  onValue(ref(c.db, 'counters'), (snap) => { c.view = snap.val(); c.views += 1; c.viewAt.push(Date.now()); },
    (err) => c.errors.push(`listen: ${err}`));
  clients.push(c);
}

async function writeLoop(c) {
  for (let n = 1; writing; n++) {
    try {
      const pushed = push(ref(c.db, `log/c${c.i}`), n);
      await Promise.all([pushed, set(ref(c.db, `counters/c${c.i}`), n)]);
      c.acked.push([pushed.key, n, Date.now()]);
    } catch (err) {
      c.errors.push(`write ${n}: ${err}`);  // a rejected write is no ack: it is not recorded
    }
    await sleep(TICK_MS);
  }
}

const isUp = (c) => c.up;
await waitFor(() => clients.every(isUp), 20000, 'every client to connect');
await waitFor(() => clients.every((c) => c.views > 0), 20000, 'every listener');
for (const c of clients) c.loop = writeLoop(c);
await waitFor(() => clients.every((c) => c.acked.length >= 2), 20000, 'every client to write');
emit({ ready: true });

const lines = readline.createInterface({ input: process.stdin });
for await (const command of lines) {
  if (command === 'recover') {
    // the clients the dead node held saw .info/connected go false
    const since = Date.now();
    await waitFor(() => clients.some((c) => c.drops.length > 0), 20000, 'a client to drop');
    await sleep(500);  // the rest of them notice too (the socket closes for all at once)
    const dropped = clients.filter((c) => c.drops.length > 0);
    const droppedAt = Object.fromEntries(dropped.map((c) => [c.i, c.drops[0]]));
    await waitFor(() => dropped.every((c) => isUp(c)), 30000, 'the dropped clients to reconnect');
    const backAt = Object.fromEntries(dropped.map((c) => [c.i, c.ups[c.ups.length - 1]]));
    await waitFor(() => clients.every((c) => c.acked.filter(([, , t]) => t > (backAt[c.i] ?? since)).length >= 3),
      30000, 'every client to write again');
    // an event after the client was back: its listen is in place on a live node
    const heard = (c) => c.viewAt.find((t) => t >= backAt[c.i]);
    await waitFor(() => dropped.every(heard), 15000, 'the dropped clients\' listeners');
    const relistened = dropped.map(heard);
    emit({
      recovered: {
        dropped: dropped.map((c) => c.i),
        presence: dropped.filter((c) => c.presence).map((c) => c.i),
        reconnect_ms: dropped.map((c) => backAt[c.i] - droppedAt[c.i]),
        relistened_ms: dropped.map((c, k) => relistened[k] - droppedAt[c.i]),
      },
    });
  } else if (command === 'stop') {
    writing = false;
    await Promise.all(clients.map((c) => c.loop));
    const reader = openDb(NS, { port: PORT });
    const final = (await get(ref(reader.db, 'counters'))).val();
    await reader.close();
    const same = (c) => JSON.stringify(c.view) === JSON.stringify(final);
    try {
      await waitFor(() => clients.every(same), 20000, 'every listener to reach the final value');
    } catch { /* reported below */ }
    emit({
      report: {
        final,
        converged: clients.filter(same).map((c) => c.i),
        acked: Object.fromEntries(clients.map((c) => [c.i, c.acked.map(([key, n]) => [key, n])])),
        errors: Object.fromEntries(clients.filter((c) => c.errors.length).map((c) => [c.i, c.errors.slice(0, 5)])),
      },
    });
  } else if (command === 'close') {
    await Promise.all(clients.map((c) => c.close()));
    emit({ closed: true });
    break;
  }
}
process.exit(0);
