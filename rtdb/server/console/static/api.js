// The server: the admin token, fetch with `Authorization: Bearer`, REST paths and the console API.

const TOKEN_KEY = 'rtdb.console.token';

export const session = {
  token: null,
  mode: null, // 'emulator' | 'production' once /info answered
  info: null,
  onUnauthorized: () => {},
};

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Takes `?token=` from the address bar into sessionStorage and out of the URL. */
export function adoptUrlToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  session.token = sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  session.token = token || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The credential sent: the admin token, or in emulator mode the emulator's admin `owner`. */
function credential() {
  return session.token || (session.mode === 'emulator' ? 'owner' : null);
}

/** Sends a request; JSON in and out (`raw: true` sends/returns text). Throws HttpError. */
export async function call(method, url, { body, raw = false, quiet401 = false } = {}) {
  const headers = {};
  const cred = credential();
  if (cred) headers.Authorization = `Bearer ${cred}`;
  let payload;
  if (body !== undefined) {
    payload = raw ? body : JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new HttpError(0, `The server does not answer (${err.message})`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text || res.statusText;
    try { message = JSON.parse(text).error ?? message; } catch { /* not JSON */ }
    if (res.status === 401 && !quiet401) session.onUnauthorized(message);
    throw new HttpError(res.status, message);
  }
  if (raw) return text;
  return text ? JSON.parse(text) : null;
}

/** Path segments → '/a/b' ('/' for the root). */
export const pathStr = (segs) => `/${segs.join('/')}`;
export const parsePath = (s) => String(s).split('/').filter(Boolean);

/** The REST URL of `segs` in namespace `ns` with query parameters. */
export function restUrl(segs, ns, params = {}) {
  const q = new URLSearchParams({ ns, ...params });
  return `/${segs.map(encodeURIComponent).join('/')}.json?${q}`;
}

/** The URL of a console event stream (EventSource cannot send headers: the token goes in it). */
export function streamUrl(path, params = {}, tokenParam = 'token') {
  const q = new URLSearchParams(params);
  const cred = credential();
  if (cred) q.set(tokenParam, cred);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const api = {
  info: (opts) => call('GET', '/.console/api/info', opts),
  createNamespace: (name) => call('POST', '/.console/api/namespaces', { body: { name } }),
  simulate: (req) => call('POST', '/.console/api/simulate', { body: req }),
  metrics: () => call('GET', '/.console/api/metrics'),
  rules: (ns) => call('GET', `/.settings/rules.json?${new URLSearchParams({ ns })}`, { raw: true }),
  deployRules: (ns, text) => call('PUT', `/.settings/rules.json?${new URLSearchParams({ ns })}`, { body: text, raw: true }),
};

/** Firebase's key order: 32-bit integer keys first, numerically; then the others as strings. */
const INT_KEY = /^(0|-?[1-9]\d{0,9})$/;
export function compareKeys(a, b) {
  const ia = INT_KEY.test(a) && Math.abs(Number(a)) <= 2147483648 && Number(a) <= 2147483647;
  const ib = INT_KEY.test(b) && Math.abs(Number(b)) <= 2147483648 && Number(b) <= 2147483647;
  if (ia && ib) return Number(a) - Number(b);
  if (ia) return -1;
  if (ib) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Why `key` cannot be a Firebase key, or null. */
export function keyProblem(key) {
  if (!key) return 'A key cannot be empty';
  if (/[.$#[\]/]/.test(key) || /[\u0000-\u001f\u007f]/.test(key)) return 'A key cannot contain . $ # [ ] / or control characters';
  if (new TextEncoder().encode(key).length > 768) return 'A key is at most 768 bytes';
  return null;
}

/**
 * An EventSource that comes back: the browser reconnects by itself after a dropped stream, but not
 * after a refused one (401, or the server restarting): then ask /info (a 401 signs out) and open
 * it again a little later. `badge` (a `.live` element, optional) shows "live" while the stream
 * is open and "offline" while it is down or closed. Returns {close}.
 */
export function liveStream(url, { badge, onOpen, onDown, events }) {
  let es = null;
  let timer = null;
  let closed = false;
  const show = (on) => {
    if (!badge) return;
    badge.classList.toggle('on', on);
    badge.lastChild.textContent = on ? 'live' : 'offline';
  };
  const open = () => {
    es = new EventSource(url());
    es.addEventListener('open', () => {
      show(true);
      onOpen?.();
    });
    es.addEventListener('error', () => {
      show(false);
      onDown?.();
      if (es.readyState !== EventSource.CLOSED || closed) return;
      timer = setTimeout(async () => {
        try {
          await api.info();
        } catch {
          if (session.mode !== 'emulator' && !session.token) return; // signed out: the sign-in box shows
        }
        if (!closed) open();
      }, 3000);
    });
    for (const [name, fn] of Object.entries(events)) es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  };
  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      es?.close();
      show(false);
    },
  };
}
