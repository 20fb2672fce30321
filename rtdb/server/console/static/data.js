// The Data view: the tree of a namespace, loaded lazily (one shallow read per expanded node, child
// lists in pages), kept live by the console's change stream, with editing, import and export.
import { call, restUrl, streamUrl, pathStr, parsePath, compareKeys, liveStream } from './api.js';
import { TreeNode, pool, valueView, ICONS } from './tree.js';
import { h, toast, confirmDialog, fmtBytes } from './dom.js';
import { openJsonEditor, checkJson } from './editor.js';

const PAGE = 200;
const PARALLEL = 4; // the browser keeps 6 connections per host; the streams hold some

export class DataView {
  constructor(el, app) {
    this.el = el;
    this.app = app;
    this.limit = pool(PARALLEL);
    this.stream = null;
    this.ns = null;
    this.visible = false;
    this.selected = null;
    this.pending = new Set();
    this.refreshing = new Map();
    this.build();
  }

  build() {
    this.selLabel = h('code.sel-path', '/');
    this.base = [];
    this.pathInput = h('input#data-path.path-input', { placeholder: '/', spellcheck: 'false', 'aria-label': 'Open the tree at a path', title: 'Open the tree at a path (Enter)' });
    this.pathInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') this.openAt(parsePath(this.pathInput.value)); });
    this.live = h('span.live', { title: 'Live: changes arrive as they commit' }, h('span.dot'), 'connecting');
    this.fileInput = h('input', { type: 'file', accept: '.json,application/json', hidden: true, onchange: () => this.importFile() });
    const btn = (label, title, fn, id) => h('button.btn', { type: 'button', title, onclick: fn, id }, label);
    this.el.append(
      h('header.view-head',
        h('div', h('h1', 'Data'), h('p.muted.small#data-sub', '')),
        h('div.head-right', this.live)),
      h('div.toolbar',
        h('form.path-form', { onsubmit: (e) => { e.preventDefault(); this.openAt(parsePath(this.pathInput.value)); } },
          h('span.muted.small', 'Path'), this.pathInput,
          this.upBtn = h('button.btn.small', { type: 'button', title: 'Open the parent', onclick: () => this.openAt(this.base.slice(0, -1)) }, '↑')),
        h('span.muted.small', 'Selected'), this.selLabel,
        h('span.spacer'),
        btn('Add child', 'Add a child under the selected node', () => this.add(this.selected || this.root), 'btn-add'),
        btn('Import JSON', 'Replace the selected node with a JSON file', () => this.fileInput.click(), 'btn-import'),
        btn('Export JSON', 'Download the selected node as JSON (format=export)', () => this.exportNode(), 'btn-export'),
        btn('Refresh', 'Read the shown nodes again', () => this.refresh(this.root), 'btn-refresh'),
        this.fileInput),
      this.treeEl = h('div.tree#tree', { role: 'tree' }));
  }

  show() {
    this.visible = true;
    if (this.ns !== this.app.ns || !this.root) this.reset();
    else this.refresh(this.root);
    this.connect();
  }

  hide() {
    this.visible = false;
    this.disconnect();
  }

  suspend() { this.disconnect(); }

  namespaceChanged() {
    if (this.visible) {
      this.disconnect();
      this.reset();
      this.connect();
    }
  }

  /** Shows the tree from `segs` down (a deep node of a huge tree without paging to it). */
  openAt(segs) {
    this.base = segs;
    this.reset();
  }

  reset() {
    if (this.ns !== this.app.ns) this.base = [];
    this.ns = this.app.ns;
    this.el.querySelector('#data-sub').textContent = `Namespace ${this.ns}`;
    this.root = new TreeNode(this.base, null);
    this.pathInput.value = pathStr(this.base);
    this.upBtn.disabled = !this.base.length;
    this.root.expanded = true;
    this.select(this.root);
    this.treeEl.replaceChildren(this.nodeEl(this.root));
    this.refresh(this.root);
  }

  // ---- the change stream ---------------------------------------------------------------
  connect() {
    this.disconnect();
    let opened = false;
    this.stream = liveStream(() => streamUrl('/.console/api/changes', { ns: this.ns }), {
      badge: this.live,
      onOpen: () => {
        if (opened) this.refresh(this.root); // changes may have been missed while reconnecting
        opened = true;
      },
      events: { change: (msg) => this.onChange(msg) },
    });
  }

  disconnect() {
    this.stream?.close();
    this.stream = null;
  }

  onChange(msg) {
    for (const change of msg.changes) this.applyChange(change);
  }

  applyChange(change) {
    const segs = parsePath(change.path);
    const base = this.base;
    if (segs.length <= base.length) { // at or above the shown root: read it again if it is inside
      if (segs.every((k, j) => k === base[j])) this.schedule(this.root);
      return;
    }
    if (!base.every((k, j) => k === segs[j])) return; // elsewhere
    let node = this.root;
    let i = base.length;
    while (i < segs.length && node.expanded && node.children.has(segs[i])) {
      node = node.children.get(segs[i]);
      i += 1;
    }
    for (let n = node; n; n = n.parent) {
      if (this.refreshing.has(n)) { // a read under way may predate this change: read again after it
        this.schedule(n);
        return;
      }
    }
    const known = 'value' in change && !change.large;
    const primitive = known && (change.value === null || typeof change.value !== 'object');
    if (i === segs.length) { // a shown node changed
      if (primitive && change.value === null) {
        if (node.parent) this.removeChild(node.parent, node.key);
        else this.schedule(node);
      } else if (primitive) {
        this.setLeaf(node, change.value);
        this.flash(node);
      } else {
        this.schedule(node);
      }
      return;
    }
    if (!node.expanded || node.kind !== 'object') { // below a collapsed node (or a leaf that became an object)
      if (node.kind !== 'object') this.schedule(node);
      else this.flash(node);
      return;
    }
    // below an expanded node, under a child it does not show: a new child, unless past the loaded page
    const key = segs[i];
    if (node.more && compareKeys(key, node.keys.at(-1)) > 0) return;
    if (primitive && change.value === null && i === segs.length - 1) return; // removed before we saw it
    const child = this.insertChild(node, key);
    if (primitive && i === segs.length - 1) {
      this.setLeaf(child, change.value);
      this.flash(child);
    } else {
      this.schedule(child);
    }
  }

  /** Refreshes `node` soon, once even if several changes name it. */
  schedule(node) {
    if (!this.pending.size) queueMicrotask(() => this.flushPending());
    this.pending.add(node);
  }

  flushPending() {
    const nodes = [...this.pending];
    this.pending.clear();
    const inside = (n) => { for (let p = n.parent; p; p = p.parent) if (nodes.includes(p)) return true; return false; };
    for (const n of nodes) if (!inside(n)) this.refresh(n).then(() => this.flash(n));
  }

  flash(node) {
    const row = node.el?.firstChild;
    if (!row || !row.isConnected) return;
    row.classList.remove('flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('flash');
    row.dataset.flashes = String(Number(row.dataset.flashes || 0) + 1);
  }

  // ---- loading -------------------------------------------------------------------------
  get(segs, params) {
    return this.limit(() => call('GET', restUrl(segs, this.ns, params)));
  }

  /** Reads `node` again: its kind or value and, when expanded, its children (same count).
   * Calls while one runs make it run once more; all of them resolve after that. */
  refresh(node) {
    const running = this.refreshing.get(node);
    if (running) {
      running.again = true;
      return running.done;
    }
    const state = { again: false, done: null };
    this.refreshing.set(node, state);
    state.done = (async () => {
      do {
        state.again = false;
        try {
          await this.load(node);
        } catch (err) {
          this.showError(node, err);
        }
      } while (state.again);
      this.refreshing.delete(node);
    })();
    return state.done;
  }

  async load(node) {
    if (node.expanded) {
      await this.loadChildren(node, Math.max(PAGE, node.keys.length), null);
    } else {
      this.setFromListing(node, await this.get(node.segs, { shallow: 'true', limitToFirst: '1' }));
    }
  }

  setFromListing(node, listing) {
    if (listing === null) {
      node.kind = 'missing';
      node.value = null;
      if (node.parent) {
        this.removeChild(node.parent, node.key);
        return false;
      }
      node.keys = [];
      node.children.clear();
      node.more = false;
      this.renderChildren(node);
    } else if (typeof listing === 'object') {
      node.kind = 'object';
    } else {
      this.setLeaf(node, listing);
      return false;
    }
    this.renderRow(node);
    return node.kind === 'object';
  }

  setLeaf(node, value) {
    node.kind = 'leaf';
    node.value = value;
    node.expanded = false;
    node.keys = [];
    node.children.clear();
    node.more = false;
    if (node.el) node.el.lastChild.replaceChildren();
    this.renderRow(node);
  }

  /** Lists `count` children of `node` (after key `after`, or from the start) and reads each. */
  async loadChildren(node, count, after) {
    const params = { shallow: 'true', limitToFirst: String(count + 1) };
    if (after !== null) params.startAfter = JSON.stringify(after);
    node.loading = true;
    this.renderRow(node);
    let listing;
    try {
      listing = await this.get(node.segs, params);
    } finally {
      node.loading = false;
    }
    if (!this.setFromListing(node, listing)) return;
    let keys = Object.keys(listing).sort(compareKeys);
    const more = keys.length > count;
    if (more) keys = keys.slice(0, count);
    if (after === null) {
      const keep = new Set(keys);
      for (const k of node.children.keys()) if (!keep.has(k)) node.children.delete(k);
      node.keys = keys;
    } else {
      node.keys = node.keys.concat(keys.filter((k) => !node.children.has(k)));
    }
    for (const k of keys) if (!node.children.has(k)) node.children.set(k, new TreeNode([...node.segs, k], node));
    node.more = more;
    this.renderChildren(node);
    await Promise.all(keys.map((k) => this.refresh(node.children.get(k))));
  }

  insertChild(node, key) {
    let child = node.children.get(key);
    if (child) return child;
    child = new TreeNode([...node.segs, key], node);
    node.children.set(key, child);
    let at = node.keys.findIndex((k) => compareKeys(k, key) > 0);
    if (at < 0) at = node.keys.length;
    node.keys.splice(at, 0, key);
    if (node.kind !== 'object') node.kind = 'object';
    this.renderRow(node);
    this.renderChildren(node);
    return child;
  }

  removeChild(node, key) {
    const child = node.children.get(key);
    if (!child) return;
    node.children.delete(key);
    node.keys = node.keys.filter((k) => k !== key);
    child.el?.remove();
    if (this.selected === child) this.select(node);
    this.flash(node);
    if (!node.keys.length && !node.more) this.schedule(node); // maybe gone itself now
    else this.renderChildren(node);
  }

  showError(node, err) {
    if (node.el) node.el.firstChild.querySelector('.val').replaceChildren(h('span.error-text', err.message));
    if (err.status !== 401) toast(`${node.path}: ${err.message}`, 'error');
  }

  // ---- rendering -----------------------------------------------------------------------
  nodeEl(node) {
    if (node.el) return node.el;
    const row = h('div.row', {
      role: 'treeitem', tabindex: '-1', dataset: { path: node.path },
      onclick: (e) => { if (!e.target.closest('.actions')) this.select(node); },
    });
    node.el = h('div.node', row, h('div.children', { role: 'group' }));
    this.renderRow(node);
    return node.el;
  }

  renderRow(node) {
    if (!node.el) return;
    const row = node.el.firstChild;
    const isObject = node.kind === 'object';
    const twisty = isObject
      ? h('button.twisty', { type: 'button', 'aria-label': node.expanded ? 'Collapse' : 'Expand', onclick: () => this.toggle(node) },
        node.expanded ? '▾' : '▸')
      : h('span.twisty.none');
    const keyEl = node !== this.root
      ? h('span.key', node.key)
      : h('span.key.root', this.ns, h('span.muted', ` ${node.path}`));
    let val;
    if (node.loading || node.kind === 'unknown') val = h('span.muted.loading', '…');
    else if (node.kind === 'missing') val = h('span.muted', node.segs.length ? 'null: no data here' : 'empty: no data yet');
    else if (isObject) val = node.expanded ? (node.more ? h('span.muted.small', `first ${node.keys.length} keys`) : h('span.muted.small', `${node.keys.length} ${node.keys.length === 1 ? 'key' : 'keys'}`)) : h('span.v-collapsed', '{…}');
    else val = valueView(node.value);
    const action = (name, title, fn) => h(`button.act.act-${name}`, { type: 'button', title, 'aria-label': title, html: ICONS[name], onclick: fn });
    const actions = h('span.actions',
      isObject || node.kind === 'missing' || node === this.root ? action('add', 'Add child', () => this.add(node)) : null,
      action('edit', 'Edit JSON', () => this.edit(node)),
      node.kind !== 'missing' ? action('del', 'Delete', () => this.remove(node)) : null);
    row.classList.toggle('selected', this.selected === node);
    row.setAttribute('aria-expanded', isObject ? String(node.expanded) : null);
    if (!isObject) row.removeAttribute('aria-expanded');
    const colon = isObject || node.kind === 'missing' || node === this.root ? [] : [h('span.colon', ':')];
    row.replaceChildren(twisty, keyEl, ...colon, h('span.val', val), actions);
    if (node.kind === 'leaf') row.querySelector('.val').addEventListener('dblclick', () => this.edit(node));
    else if (isObject) keyEl.addEventListener('dblclick', () => this.toggle(node));
  }

  renderChildren(node) {
    const box = node.el?.lastChild;
    if (!box) return;
    if (!node.expanded) {
      box.replaceChildren();
      return;
    }
    const els = node.keys.map((k) => this.nodeEl(node.children.get(k)));
    if (node.more) {
      els.push(h('div.row.more-row', h('span.twisty.none'),
        h('button.btn.small.more', { type: 'button', onclick: (e) => { e.target.disabled = true; this.more(node); } },
          `Show ${PAGE} more`)));
    }
    box.replaceChildren(...els);
    this.renderRow(node);
  }

  async toggle(node) {
    node.expanded = !node.expanded;
    this.renderRow(node);
    if (node.expanded) {
      await this.refresh(node);
    } else {
      this.renderChildren(node);
    }
  }

  async more(node) {
    try {
      await this.loadChildren(node, PAGE, node.keys.at(-1));
    } catch (err) {
      this.showError(node, err);
    }
  }

  select(node) {
    const before = this.selected;
    this.selected = node;
    if (before && before !== node) this.renderRow(before);
    this.renderRow(node);
    this.selLabel.textContent = node.path;
  }

  // ---- writes --------------------------------------------------------------------------
  async write(segs, text, { push = false } = {}) {
    const result = await call(push ? 'POST' : 'PUT', restUrl(segs, this.ns), { body: text, raw: true });
    toast(push ? `Added ${pathStr(segs)}/${JSON.parse(result).name}` : `Saved ${pathStr(segs)}`, 'ok');
    return result;
  }

  add(node) {
    openJsonEditor({ mode: 'add', segs: node.segs, initial: '""', save: (segs, text, opts) => this.write(segs, text, opts) });
  }

  async edit(node) {
    let text;
    try {
      text = node.kind === 'leaf' ? JSON.stringify(node.value) : await call('GET', restUrl(node.segs, this.ns), { raw: true });
    } catch (err) {
      toast(err.message, 'error');
      return;
    }
    if (text.length > 4 * 1048576 && !(await confirmDialog('A large value', `${node.path} is ${fmtBytes(text.length)} of JSON. Open it in the editor anyway?`, 'Open'))) return;
    const parsed = JSON.parse(text);
    const initial = parsed !== null && typeof parsed === 'object' && text.length < 1048576 ? JSON.stringify(parsed, null, 2) : text;
    openJsonEditor({ mode: 'edit', segs: node.segs, initial, save: (segs, body) => this.write(segs, body) });
  }

  async remove(node) {
    const what = node.segs.length ? `${node.path} and everything under it` : `everything in namespace ${this.ns}`;
    if (!(await confirmDialog('Delete', `Delete ${what}?`))) return;
    try {
      await call('DELETE', restUrl(node.segs, this.ns));
      toast(`Deleted ${node.path}`, 'ok');
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  async importFile() {
    const file = this.fileInput.files[0];
    this.fileInput.value = '';
    if (!file) return;
    const node = this.selected || this.root;
    const text = await file.text();
    const res = checkJson(text);
    if (!res.ok) {
      toast(`${file.name}: ${res.message}`, 'error');
      return;
    }
    if (!(await confirmDialog('Import JSON', `Replace ${node.path} in ${this.ns} with ${file.name} (${fmtBytes(file.size)})?`, 'Import'))) return;
    try {
      await call('PUT', restUrl(node.segs, this.ns, { print: 'silent' }), { body: text, raw: true });
      toast(`Imported ${file.name} at ${node.path}`, 'ok');
      this.refresh(node);
    } catch (err) {
      toast(`Import refused: ${err.message}`, 'error');
    }
  }

  async exportNode() {
    const node = this.selected || this.root;
    try {
      const text = await call('GET', restUrl(node.segs, this.ns, { format: 'export' }), { raw: true });
      const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
      const a = h('a', { href: url, download: `${[this.ns, ...node.segs].join('-')}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      toast(err.message, 'error');
    }
  }
}
