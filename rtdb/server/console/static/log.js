// The Log view: the server's recent requests and rule denials, then live ones (an SSE stream open
// only while the view is shown: the server records requests only while someone watches).
import { streamUrl, liveStream } from './api.js';
import { h, fmtBytes } from './dom.js';

const KEEP = 2000;

const time = (t) => {
  const d = new Date(t);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

export class LogView {
  constructor(el, app) {
    this.el = el;
    this.app = app;
    this.entries = [];
    this.seen = new Set();
    this.filter = 'all';
    this.stream = null;
    this.paused = false;
    const seg = (value, label) => h('button.seg', { type: 'button', dataset: { filter: value }, onclick: () => this.setFilter(value) }, label);
    this.segs = h('div.segmented#log-filter', seg('all', 'All'), seg('request', 'Requests'), seg('denied', 'Denials'));
    this.nsOnly = h('input#log-ns-only', { type: 'checkbox', onchange: () => this.render() });
    this.hideAdmin = h('input#log-hide-admin', { type: 'checkbox', checked: true, onchange: () => this.render() });
    this.pauseBtn = h('button.btn', { type: 'button', onclick: () => this.togglePause() }, 'Pause');
    this.live = h('span.live', h('span.dot'), 'offline');
    this.count = h('span.muted.small');
    this.body = h('tbody#log-rows');
    el.append(
      h('header.view-head', h('div', h('h1', 'Log'), h('p.muted.small', 'Requests and rule denials, newest first')), h('div.head-right', this.live)),
      h('div.toolbar', this.segs,
        h('label.check', this.nsOnly, ' this namespace only'),
        h('label.check', { title: 'The console itself reads as admin' }, this.hideAdmin, ' hide admin requests'),
        h('span.spacer'), this.count, this.pauseBtn,
        h('button.btn', { type: 'button', onclick: () => { this.entries = []; this.render(); } }, 'Clear')),
      h('div.table-wrap', h('table.log',
        h('thead', h('tr', ['Time', 'Kind', 'Method', 'Path', 'Namespace', 'Status', 'ms', 'Bytes', 'uid', 'Via'].map((c) => h('th', c)))),
        this.body)));
    this.setFilter('all');
  }

  show() {
    this.connect();
    this.render();
  }

  hide() { this.disconnect(); }

  suspend() { this.disconnect(); }

  namespaceChanged() { this.render(); }

  connect() {
    this.disconnect();
    this.stream = liveStream(() => streamUrl('/.console/api/log'), {
      badge: this.live,
      events: { log: (entry) => this.add(entry) },
    });
  }

  disconnect() {
    this.stream?.close();
    this.stream = null;
  }

  add(entry) {
    if (this.seen.has(entry.id)) return; // a reconnected stream sends the recent entries again
    this.seen.add(entry.id);
    this.entries.push(entry);
    if (this.entries.length > KEEP) {
      for (const old of this.entries.splice(0, this.entries.length - KEEP)) this.seen.delete(old.id);
    }
    if (!this.paused && this.visible(entry)) {
      this.body.prepend(...this.rows(entry));
      while (this.body.rows.length > KEEP * 2) this.body.lastChild.remove();
      this.updateCount();
    }
  }

  visible(e) {
    if (this.filter !== 'all' && e.kind !== this.filter) return false;
    if (this.nsOnly.checked && e.ns !== this.app.ns) return false;
    if (this.hideAdmin.checked && e.kind === 'request' && e.uid === '(admin)') return false;
    return true;
  }

  setFilter(value) {
    this.filter = value;
    for (const b of this.segs.children) b.classList.toggle('active', b.dataset.filter === value);
    this.render();
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseBtn.textContent = this.paused ? 'Resume' : 'Pause';
    if (!this.paused) this.render();
  }

  updateCount() {
    const shown = this.entries.filter((e) => this.visible(e)).length;
    this.count.textContent = `${shown} of ${this.entries.length}`;
  }

  render() {
    const rows = [];
    for (let i = this.entries.length - 1; i >= 0; i -= 1) if (this.visible(this.entries[i])) rows.push(...this.rows(this.entries[i]));
    this.body.replaceChildren(...rows);
    if (!rows.length) this.body.append(h('tr.empty', h('td', { colspan: 10 }, 'Nothing yet. Requests appear here as they are answered.')));
    this.updateCount();
  }

  rows(e) {
    const denied = e.kind === 'denied';
    const status = h(`span.status.s${String(e.status)[0]}`, String(e.status));
    const main = h(`tr.entry.${e.kind}`, { dataset: { id: e.id } },
      h('td.mono.muted', time(e.t)),
      h('td', h(`span.badge.k-${e.kind}`, denied ? 'denied' : 'request')),
      h('td.mono', e.method),
      h('td.mono.path', e.path),
      h('td.mono', e.ns),
      h('td', status),
      h('td.num', denied ? '' : e.ms.toFixed(1)),
      h('td.num', denied ? '' : fmtBytes(e.bytes)),
      h('td.mono', e.uid ?? h('span.muted', '—')),
      h('td.muted', e.transport || '—'));
    if (!denied) return [main];
    const trace = h('ol.trace', { hidden: true }, (e.trace || []).map((l) => h(`li${/→ true\b/.test(l) ? '.t-true' : /→ false\b|denied/.test(l) ? '.t-false' : ''}`, l)));
    const detail = h('tr.rule-row', h('td'), h('td', { colspan: 9 },
      h('div.rule-line', h('span.muted', 'rule '), h('code.rule', e.rule || 'no rule allowed it'),
        e.trace?.length ? h('button.btn.small.ghost', { type: 'button', onclick: (ev) => { trace.hidden = !trace.hidden; ev.target.textContent = trace.hidden ? 'trace' : 'hide trace'; } }, 'trace') : null),
      trace));
    return [main, detail];
  }
}
