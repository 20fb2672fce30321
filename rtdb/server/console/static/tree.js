// The tree's model and small renderers: a node of the data view, a request pool, value display.
import { pathStr } from './api.js';
import { h } from './dom.js';

const MAX_SHOWN_CHARS = 300;

export class TreeNode {
  constructor(segs, parent) {
    this.segs = segs;
    this.parent = parent;
    this.kind = 'unknown'; // 'leaf' | 'object' | 'missing'
    this.value = undefined;
    this.expanded = false;
    this.keys = [];
    this.children = new Map();
    this.more = false;
    this.el = null;
  }

  get key() { return this.segs.at(-1); }

  get path() { return pathStr(this.segs); }
}

/** Runs at most `n` of the queued jobs at once. */
export function pool(n) {
  let running = 0;
  const waiting = [];
  const next = () => {
    if (running >= n || !waiting.length) return;
    running += 1;
    const [job, resolve, reject] = waiting.shift();
    job().then(resolve, reject).finally(() => { running -= 1; next(); });
  };
  return (job) => new Promise((resolve, reject) => { waiting.push([job, resolve, reject]); next(); });
}

export function valueView(v) {
  if (v === null) return h('span.v-null', 'null');
  switch (typeof v) {
    case 'string': {
      const shown = v.length > MAX_SHOWN_CHARS ? `${v.slice(0, MAX_SHOWN_CHARS)}…` : v;
      return h('span.v-str', { title: v.length > MAX_SHOWN_CHARS ? `${v.length} characters` : null }, JSON.stringify(shown));
    }
    case 'number': return h('span.v-num', String(v));
    case 'boolean': return h('span.v-bool', String(v));
    default: return h('span.v-obj', JSON.stringify(v));
  }
}

export const ICONS = {
  add: '<svg viewBox="0 0 16 16"><path d="M8 3v10M3 8h10"/></svg>',
  edit: '<svg viewBox="0 0 16 16"><path d="M3 13l1-3.5L11 2.5 13.5 5 6.5 12zM9.5 4l2.5 2.5"/></svg>',
  del: '<svg viewBox="0 0 16 16"><path d="M3 4.5h10M6.5 4.5V3h3v1.5M4.5 4.5l.7 8.5h5.6l.7-8.5"/></svg>',
};
