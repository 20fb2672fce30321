// The JSON editor: a modal with a textarea that refuses invalid JSON (and bad keys) before any
// request is made.
import { h, modal, toast } from './dom.js';
import { keyProblem, pathStr } from './api.js';

/** Where a JSON.parse error points, as "line L, column C" when the engine says a position. */
function describe(err, text) {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return err.message;
  const pos = Number(m[1]);
  const before = text.slice(0, pos).split('\n');
  return `${err.message.replace(/ in JSON at position \d+.*$/, '')} (line ${before.length}, column ${before.at(-1).length + 1})`;
}

export function checkJson(text) {
  if (!text.trim()) return { ok: false, message: 'Enter a JSON value (null deletes)' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: `Invalid JSON: ${describe(err, text)}` };
  }
}

/**
 * Opens the editor. `mode` 'edit' replaces the value at `segs`; 'add' writes a new child of `segs`
 * (an empty key: a push id). `save(segs, text, {push})` performs the write.
 */
export function openJsonEditor({ mode, segs, initial = '', save }) {
  const adding = mode === 'add';
  const title = adding ? `Add a child to ${pathStr(segs)}` : `Edit ${pathStr(segs)}`;
  const keyInput = adding ? h('input#editor-key', { placeholder: 'key (leave empty for a push id)', spellcheck: 'false' }) : null;
  const area = h('textarea#json-editor.code', { spellcheck: 'false', rows: 16, 'aria-label': 'JSON value' });
  area.value = initial;
  const status = h('p.json-status', { role: 'status' });
  const saveBtn = h('button.btn.primary#editor-save', { type: 'submit' }, adding ? 'Add' : 'Save');
  const format = h('button.btn', { type: 'button' }, 'Format');
  const form = h('form.modal-body.editor',
    adding ? [h('label', { for: 'editor-key' }, 'Key'), keyInput] : null,
    h('label', { for: 'json-editor' }, 'Value (JSON)'), area, status,
    h('div.modal-actions', format, h('span.spacer'), h('button.btn', { type: 'button', onclick: () => dlg.close() }, 'Cancel'), saveBtn));
  const dlg = modal(title, form, { wide: true });

  const validate = () => {
    const problem = adding && keyInput.value ? keyProblem(keyInput.value) : null;
    const res = checkJson(area.value);
    const message = problem || (!res.ok ? res.message : null);
    status.textContent = message || 'Valid JSON';
    status.classList.toggle('bad', Boolean(message));
    area.classList.toggle('invalid', !res.ok);
    area.setAttribute('aria-invalid', String(!res.ok));
    return message ? null : res;
  };
  area.addEventListener('input', validate);
  keyInput?.addEventListener('input', validate);
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Tab') {
      e.preventDefault();
      area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
      validate();
    } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  format.addEventListener('click', () => {
    const res = validate();
    if (res) area.value = JSON.stringify(res.value, null, 2);
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const res = validate();
    if (!res) {
      status.classList.add('shake');
      status.addEventListener('animationend', () => status.classList.remove('shake'), { once: true });
      area.focus();
      return; // refused here: nothing is sent
    }
    saveBtn.disabled = true;
    try {
      const key = adding ? keyInput.value : null;
      await save(adding && key ? [...segs, key] : segs, JSON.stringify(res.value), { push: adding && !key });
      dlg.close();
    } catch (err) {
      status.textContent = `The server refused it: ${err.message}`;
      status.classList.add('bad');
      toast(err.message, 'error');
    } finally {
      saveBtn.disabled = false;
    }
  });
  validate();
  (keyInput || area).focus();
  return dlg;
}
