// Small DOM helpers shared by the views: element building, modals and toasts.

/** h('div.row', {onclick}, child, 'text', ...) — a tag with optional .classes and #id. */
export function h(spec, props, ...children) {
  const [, tag = 'div', rest = ''] = /^([a-z0-9-]*)(.*)$/i.exec(spec);
  const el = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'html') el.innerHTML = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function toast(message, kind = 'info') {
  const el = h(`div.toast.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, message);
  const box = document.getElementById('toasts');
  box.append(el);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => el.classList.add('leaving'), kind === 'error' ? 6000 : 3000);
  el.addEventListener('transitionend', () => el.remove());
  el.addEventListener('click', () => el.remove());
}

/** A modal dialog; returns {el, close}. `body` is built by the caller; Escape closes it. */
export function modal(title, body, { wide = false, onClose } = {}) {
  const closeBtn = h('button.btn.ghost.icon-btn', { 'aria-label': 'Close', type: 'button' }, '×');
  const box = h(`div.modal${wide ? '.wide' : ''}`, { role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
    h('header.modal-head', h('h2', title), closeBtn), body);
  const backdrop = h('div.backdrop', box);
  const close = () => {
    backdrop.remove();
    document.removeEventListener('keydown', onKey);
    onClose?.();
  };
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  closeBtn.addEventListener('click', close);
  backdrop.addEventListener('mousedown', (e) => { if (e.target === backdrop) close(); });
  document.addEventListener('keydown', onKey);
  document.body.append(backdrop);
  return { el: box, close };
}

/** A yes/no question in a modal; resolves true when confirmed. */
export function confirmDialog(title, message, okLabel = 'Delete') {
  return new Promise((resolve) => {
    let answered = false;
    const ok = h('button.btn.danger', { type: 'button' }, okLabel);
    const cancel = h('button.btn', { type: 'button' }, 'Cancel');
    const dlg = modal(title, h('div.modal-body', h('p', message), h('div.modal-actions', cancel, ok)),
      { onClose: () => { if (!answered) resolve(false); } });
    ok.addEventListener('click', () => { answered = true; dlg.close(); resolve(true); });
    cancel.addEventListener('click', () => dlg.close());
    ok.focus();
  });
}

export const fmtBytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);
