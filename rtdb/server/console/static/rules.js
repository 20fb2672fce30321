// The Rules view: the namespace's rules source in an editor with line numbers, deployment with the
// compile error marked at its line and column, and the simulator rendering the rules' trace.
import { api } from './api.js';
import { h, toast } from './dom.js';
import { checkJson } from './editor.js';

/** "…: 3:30: Unexpected end" → {line: 3, col: 30}; null when the message names no position. */
export function errorPosition(message) {
  const m = /(?:^|[\s:])(\d+):(\d+):/.exec(message);
  return m ? { line: Number(m[1]), col: Number(m[2]) } : null;
}

/** A textarea with a line-number gutter and one markable line. */
class CodeEditor {
  constructor(id) {
    this.area = h(`textarea#${id}.code`, { spellcheck: 'false', wrap: 'off', 'aria-label': 'Rules source' });
    this.gutter = h('div.gutter-inner');
    this.band = h('div.err-band', { hidden: true });
    this.el = h('div.code-editor', h('div.gutter', { 'aria-hidden': 'true' }, this.gutter), h('div.code-wrap', this.band, this.area));
    this.lines = 0;
    this.mark = null;
    this.area.addEventListener('input', () => { this.numbers(); this.unmark(); });
    this.area.addEventListener('scroll', () => this.sync());
    this.area.addEventListener('keydown', (e) => {
      if (e.key === 'Tab') {
        e.preventDefault();
        this.area.setRangeText('  ', this.area.selectionStart, this.area.selectionEnd, 'end');
        this.numbers();
      }
    });
  }

  get value() { return this.area.value; }

  set value(text) {
    this.area.value = text;
    this.unmark();
    this.numbers();
  }

  numbers() {
    const n = this.area.value.split('\n').length;
    if (n !== this.lines) {
      this.lines = n;
      this.gutter.replaceChildren(...Array.from({ length: n }, (_, i) => h('div.ln', { dataset: { line: i + 1 } }, String(i + 1))));
      if (this.mark) this.markLine(this.mark.line, this.mark.col, false);
    }
    this.sync();
  }

  lineHeight() {
    return parseFloat(getComputedStyle(this.area).lineHeight) || 20;
  }

  sync() {
    this.gutter.style.transform = `translateY(${-this.area.scrollTop}px)`;
    if (this.mark) {
      const pad = parseFloat(getComputedStyle(this.area).paddingTop) || 0;
      this.band.style.top = `${pad + (this.mark.line - 1) * this.lineHeight() - this.area.scrollTop}px`;
    }
  }

  markLine(line, col, moveCaret = true) {
    this.unmark();
    this.mark = { line, col };
    this.gutter.querySelector(`[data-line="${line}"]`)?.classList.add('err');
    this.band.hidden = false;
    if (moveCaret) {
      const lines = this.area.value.split('\n');
      const offset = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, Math.min(col - 1, (lines[line - 1] || '').length));
      this.area.focus();
      this.area.setSelectionRange(offset, offset);
      const target = (line - 3) * this.lineHeight();
      if (target < this.area.scrollTop || target > this.area.scrollTop + this.area.clientHeight - 3 * this.lineHeight()) this.area.scrollTop = Math.max(0, target);
    }
    this.sync();
  }

  unmark() {
    this.mark = null;
    this.band.hidden = true;
    for (const el of this.gutter.querySelectorAll('.err')) el.classList.remove('err');
  }
}

export class RulesView {
  constructor(el, app) {
    this.el = el;
    this.app = app;
    this.ns = null;
    this.deployed = '';
    this.editor = new CodeEditor('rules-editor');
    this.status = h('span.muted.small#rules-status');
    this.error = h('div.rules-error#rules-error', { role: 'alert', hidden: true });
    this.deployBtn = h('button.btn.primary#rules-deploy', { type: 'button', onclick: () => this.deploy() }, 'Deploy');
    this.reloadBtn = h('button.btn', { type: 'button', onclick: () => this.load() }, 'Reload');
    this.editor.area.addEventListener('input', () => this.dirty());
    this.editor.area.addEventListener('keydown', (e) => {
      if (e.key === 's' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.deploy();
      }
    });
    el.append(
      h('header.view-head', h('div', h('h1', 'Rules'), h('p.muted.small#rules-sub', ''))),
      h('div.rules-layout',
        h('div.card.rules-card',
          h('div.card-head', h('h2', 'Security rules'), h('span.spacer'), this.status, this.reloadBtn, this.deployBtn),
          this.error, this.editor.el,
          h('p.muted.small.hint', 'Ctrl+S deploys. A rules file that does not compile is refused and the one in force stays.')),
        this.simulator()));
  }

  show() {
    if (this.ns !== this.app.ns) this.load();
  }

  namespaceChanged() {
    this.ns = null;
    if (!this.el.hidden) this.load();
  }

  async load() {
    this.ns = this.app.ns;
    this.el.querySelector('#rules-sub').textContent = `Namespace ${this.ns}`;
    this.error.hidden = true;
    this.status.textContent = 'loading…';
    try {
      const text = await api.rules(this.ns);
      this.deployed = text;
      this.editor.value = text;
      this.status.textContent = 'in force';
      this.status.className = 'muted small';
    } catch (err) {
      this.status.textContent = '';
      this.showError(err.message);
    }
  }

  dirty() {
    const changed = this.editor.value !== this.deployed;
    this.status.textContent = changed ? 'edited, not deployed' : 'in force';
    this.status.className = changed ? 'small warn-text' : 'muted small';
  }

  showError(message) {
    const at = errorPosition(message);
    this.error.hidden = false;
    this.error.replaceChildren(
      h('strong', at ? `Line ${at.line}, column ${at.col}` : 'Not deployed'),
      h('span', ` — ${message}`));
    if (at) this.editor.markLine(at.line, at.col);
  }

  async deploy() {
    const text = this.editor.value;
    this.deployBtn.disabled = true;
    this.error.hidden = true;
    this.editor.unmark();
    try {
      await api.deployRules(this.ns, text);
      this.deployed = text;
      this.dirty();
      this.status.textContent = `deployed ${new Date().toLocaleTimeString()}`;
      toast('Rules deployed', 'ok');
    } catch (err) {
      this.showError(err.message);
      this.status.textContent = 'not deployed';
      this.status.className = 'small error-text';
    } finally {
      this.deployBtn.disabled = false;
    }
  }

  // ---- the simulator ---------------------------------------------------------------------
  simulator() {
    const op = h('select#sim-op', ['read', 'write', 'update'].map((o) => h('option', { value: o }, o)));
    const path = h('input#sim-path', { value: '/', spellcheck: 'false' });
    const auth = h('textarea#sim-auth.code.small-area', { spellcheck: 'false', rows: 3 });
    auth.value = '{"uid": "alice"}';
    const value = h('textarea#sim-value.code.small-area', { spellcheck: 'false', rows: 4 });
    value.value = '"hello"';
    const valueField = h('div.field', { hidden: true }, h('label', { for: 'sim-value' }, 'Value (JSON; an object of paths for update)'), value);
    const formError = h('p.error-text', { role: 'alert', hidden: true });
    this.result = h('div.sim-result#sim-result');
    op.addEventListener('change', () => { valueField.hidden = op.value === 'read'; });
    const form = h('form.sim-form',
      h('div.field-row',
        h('div.field', h('label', { for: 'sim-op' }, 'Operation'), op),
        h('div.field.grow', h('label', { for: 'sim-path' }, 'Path'), path)),
      h('div.field', h('label', { for: 'sim-auth' }, 'auth (JSON, null for a signed-out user)'), auth),
      valueField, formError,
      h('div.modal-actions', h('button.btn.primary#sim-run', { type: 'submit' }, 'Simulate')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      formError.hidden = true;
      const a = checkJson(auth.value || 'null');
      const v = op.value === 'read' ? { ok: true, value: null } : checkJson(value.value);
      if (!a.ok || !v.ok || (a.value !== null && typeof a.value !== 'object')) {
        formError.hidden = false;
        formError.textContent = !a.ok ? `auth: ${a.message}` : !v.ok ? `value: ${v.message}` : 'auth must be an object or null';
        return;
      }
      try {
        const res = await api.simulate({ ns: this.app.ns, op: op.value, path: path.value || '/', auth: a.value, value: v.value });
        this.renderDecision(op.value, path.value || '/', res);
      } catch (err) {
        formError.hidden = false;
        formError.textContent = err.message;
      }
    });
    return h('div.card.sim-card', h('div.card-head', h('h2', 'Simulate a request')),
      h('p.muted.small', 'What the deployed rules decide now, on the current data. Nothing is written.'), form, this.result);
  }

  renderDecision(op, path, res) {
    const verdict = res.allowed ? 'allowed' : 'denied';
    this.result.replaceChildren(
      h(`div.verdict.${verdict}`, h('span.badge', res.allowed ? 'ALLOWED' : 'DENIED'), h('span', ` ${op} ${path}`)),
      h('ol.trace', res.trace.map((line) => h(`li${/→ true\b/.test(line) ? '.t-true' : /→ false\b|denied/.test(line) ? '.t-false' : ''}`, line))));
  }
}
