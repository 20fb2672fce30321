// A tiny static server for the test page: another loopback origin than rtdb, as real apps are.
// Serves /, /harness.js and the firebase CDN-style builds at /fb/firebase-{app,database}.js.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FB = path.join(HERE, 'node_modules', 'firebase');

// The one import of firebase-database.js names the gstatic URL of firebase-app.js; the import map
// remaps exactly that URL, read from the file so that a firebase bump cannot break it silently.
export function gstaticAppUrl() {
  const src = readFileSync(path.join(FB, 'firebase-database.js'), 'utf8');
  const urls = new Set(src.match(/https:\/\/www\.gstatic\.com\/firebasejs\/[0-9.]+\/firebase-app\.js/g));
  if (urls.size !== 1) throw new Error(`expected one gstatic import in firebase-database.js, found ${[...urls]}`);
  return [...urls][0];
}

export async function startStaticServer(host = '127.0.0.1') {
  const files = {
    '/': ['text/html; charset=utf-8', readFileSync(path.join(HERE, 'page', 'index.html'), 'utf8')
      .replace('__FIREBASE_APP_URL__', gstaticAppUrl())],
    '/harness.js': ['text/javascript', readFileSync(path.join(HERE, 'page', 'harness.js'))],
    '/fb/firebase-app.js': ['text/javascript', readFileSync(path.join(FB, 'firebase-app.js'))],
    '/fb/firebase-database.js': ['text/javascript', readFileSync(path.join(FB, 'firebase-database.js'))],
  };
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': file[0], 'Cache-Control': 'no-store' }).end(file[1]);
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  return {
    url: `http://${host}:${server.address().port}/`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
