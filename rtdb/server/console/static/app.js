// The console's entry point: sign-in, the namespace switcher and the views (Data, Rules, Log, Metrics).
import { session, api, adoptUrlToken, setToken, HttpError } from './api.js';
import { h, modal, toast } from './dom.js';
import { DataView } from './data.js';
import { RulesView } from './rules.js';
import { LogView } from './log.js';
import { MetricsView } from './metrics.js';

const NS_KEY = 'rtdb.console.ns';
const $ = (id) => document.getElementById(id);

const app = {
  ns: null,
  view: null,
  views: {},
  started: false,
};

function showLogin(message) {
  $('shell').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('login-token').focus();
  for (const v of Object.values(app.views)) v.suspend?.();
}

session.onUnauthorized = (message) => {
  if (session.mode === 'emulator') return; // nothing to sign in to
  setToken(null);
  showLogin(`Signed out: ${message}`);
};

async function signIn(token) {
  if (token !== undefined) setToken(token);
  let info;
  try {
    info = await api.info({ quiet401: true });
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      const hadToken = Boolean(session.token);
      setToken(null);
      showLogin(hadToken ? `The token was refused: ${err.message}` : '');
      return;
    }
    showLogin(err.message);
    return;
  }
  session.info = info;
  session.mode = info.mode;
  $('login').hidden = true;
  $('shell').hidden = false;
  start();
}

function start() {
  const info = session.info;
  $('sign-out').hidden = info.mode === 'emulator';
  $('server-info').replaceChildren(h('div',
    h(`span.badge.mode-${info.mode}`, info.mode),
    h('span.muted', ` v${info.version}`),
    info.node ? h('div.muted.small', `node ${info.node}`) : null));
  if (!app.started) {
    app.started = true;
    app.views = {
      data: new DataView($('view-data'), app),
      rules: new RulesView($('view-rules'), app),
      log: new LogView($('view-log'), app),
      metrics: new MetricsView($('view-metrics'), app),
    };
    app.views.metrics.startPolling();
    window.addEventListener('hashchange', route);
  } else {
    app.views.metrics.startPolling();
  }
  const fromHash = new URLSearchParams(location.hash.split('?')[1] || '').get('ns');
  app.ns = fromHash || sessionStorage.getItem(NS_KEY) || info.default_namespace;
  fillNamespaces();
  if (app.view) {
    app.views[app.view].hide?.();
    $(`view-${app.view}`).hidden = true;
    app.view = null;
  }
  route();
}

function fillNamespaces() {
  const names = new Set(session.info.namespaces);
  names.add(session.info.default_namespace);
  names.add(app.ns);
  const select = $('ns-select');
  select.replaceChildren(...[...names].sort().map((n) => h('option', { value: n, selected: n === app.ns }, n)));
}

function switchNamespace(ns) {
  if (ns === app.ns) return;
  app.ns = ns;
  sessionStorage.setItem(NS_KEY, ns);
  fillNamespaces();
  location.hash = `#/${app.view || 'data'}?ns=${encodeURIComponent(ns)}`;
  for (const v of Object.values(app.views)) v.namespaceChanged?.(ns);
}

function route() {
  const [, name = 'data', query = ''] = /^#\/?([a-z]*)\??(.*)$/.exec(location.hash) || [];
  const view = app.views[name] ? name : 'data';
  const ns = new URLSearchParams(query).get('ns');
  if (ns && ns !== app.ns) switchNamespace(ns);
  for (const a of $('nav').querySelectorAll('a')) {
    a.classList.toggle('active', a.dataset.view === view);
    a.href = `#/${a.dataset.view}?ns=${encodeURIComponent(app.ns)}`;
  }
  if (app.view !== view) {
    if (app.view) {
      app.views[app.view].hide?.();
      $(`view-${app.view}`).hidden = true;
    }
    app.view = view;
    $(`view-${view}`).hidden = false;
    document.title = `${view[0].toUpperCase()}${view.slice(1)} · ${app.ns} · rtdb console`;
    app.views[view].show();
  }
}

function newNamespaceDialog() {
  const input = h('input#ns-name', { placeholder: 'e.g. my-app', spellcheck: 'false', required: true });
  const err = h('p.error-text', { hidden: true, role: 'alert' });
  const submit = h('button.btn.primary', { type: 'submit' }, 'Create');
  const form = h('form.modal-body', h('label', { for: 'ns-name' }, 'Name'), input,
    h('p.muted.small', 'Letters, digits and dashes. The namespace is created empty.'), err,
    h('div.modal-actions', submit));
  const dlg = modal('New namespace', form);
  input.focus();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const { name } = await api.createNamespace(input.value.trim());
      session.info = await api.info();
      dlg.close();
      toast(`Namespace ${name} created`, 'ok');
      switchNamespace(name);
    } catch (ex) {
      err.hidden = false;
      err.textContent = ex.message;
    } finally {
      submit.disabled = false;
    }
  });
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('login-token').value.trim());
});
$('ns-select').addEventListener('change', (e) => switchNamespace(e.target.value));
// namespaces created elsewhere since sign-in show up when the list is opened
$('ns-select').addEventListener('focus', async () => {
  try {
    session.info = await api.info();
    fillNamespaces();
  } catch { /* a 401 already shows the sign-in box */ }
});
$('ns-new').addEventListener('click', newNamespaceDialog);
$('sign-out').addEventListener('click', () => {
  setToken(null);
  showLogin('');
});

adoptUrlToken();
signIn();
