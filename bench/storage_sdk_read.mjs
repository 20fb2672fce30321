// One cold read through the unmodified official firebase@12 JS SDK, for
// bench/storage_bench.py (which starts the server and runs this once per read):
//
//   node bench/storage_sdk_read.mjs --port 9000 --ns bench --path /big --mode get
//
// It connects (not timed: the SDK is loaded and `.info/connected` is true first),
// then times one read on that fresh client and prints one JSON line
// {"ms": …, "leaves": …, "json_bytes": …}.
//
// --mode get   `get()`: the wire protocol's `g` request (firebase-server has none)
// --mode once  `onValue(…, {onlyOnce: true})`: a listen, what an app's first onValue costs
// --modules    a folder whose node_modules holds firebase (default: tests/node of this checkout)
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    ns: { type: 'string', default: 'bench' },
    path: { type: 'string', default: '/' },
    mode: { type: 'string', default: 'get' },
    modules: { type: 'string', default: new URL('../tests/node/', import.meta.url).pathname },
    'timeout-s': { type: 'string', default: '600' },
  },
});
const require = createRequire(`${args.modules.replace(/\/$/, '')}/package.json`);
const { initializeApp } = require('firebase/app');
const fdb = require('firebase/database');

const port = Number(args.port);
const app = initializeApp({ projectId: 'demo', databaseURL: `http://127.0.0.1:${port}?ns=${args.ns}` });
const db = fdb.getDatabase(app);
fdb.connectDatabaseEmulator(db, '127.0.0.1', port);

function countLeaves(v) {
  if (v === null || typeof v !== 'object') return v === null ? 0 : 1;
  let n = 0;
  for (const x of Object.values(v)) n += countLeaves(x);
  return n;
}

function connected() {
  return new Promise((resolve) => {
    const off = fdb.onValue(fdb.ref(db, '.info/connected'), (s) => { if (s.val() === true) { off(); resolve(); } });
  });
}

function read(ref) {
  if (args.mode === 'get') return fdb.get(ref).then((s) => s.val());
  return new Promise((resolve, reject) => fdb.onValue(ref, (s) => resolve(s.val()), reject, { onlyOnce: true }));
}

setTimeout(() => {
  console.log(JSON.stringify({ error: `no answer within ${args['timeout-s']} s` }));
  process.exit(1);
}, Number(args['timeout-s']) * 1000).unref();

await connected();
const start = performance.now();
const value = await read(fdb.ref(db, args.path));
const ms = performance.now() - start;
console.log(JSON.stringify({ ms, leaves: countLeaves(value), json_bytes: JSON.stringify(value ?? null).length }));
process.exit(0);
