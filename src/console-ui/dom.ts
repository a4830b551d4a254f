/** A tiny DOM builder: elements from tag, attributes and children. Text is always set as text, never HTML. */
export type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  readonly [name: string]:
    string | number | boolean | undefined | EventListener | Record<string, EventListener>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'object') {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (typeof value === 'function') {
      el.addEventListener(name.replace(/^on/, ''), value);
    } else if (name === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = typeof value === 'string' ? value : String(value);
    } else {
      el.setAttribute(name, value === true ? '' : typeof value === 'string' ? value : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let seq = 0;
/** A unique element id for label/field and field/error pairs. */
export function uid(prefix: string): string {
  seq += 1;
  return `${prefix}-${String(seq)}`;
}

/** A labelled form field with an error line under it (shown through `setFieldError`). */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLDivElement {
  const id = control.id || uid('f');
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  control.setAttribute('aria-describedby', hint === undefined ? errorId : `${hintId} ${errorId}`);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint === undefined ? null : h('p', { class: 'hint', id: hintId }, hint),
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }),
  );
}

export function setFieldError(control: HTMLElement, message: string | undefined): void {
  const err = document.getElementById(`${control.id}-error`);
  if (err === null) return;
  err.textContent = message ?? '';
  err.hidden = message === undefined;
  if (message === undefined) control.removeAttribute('aria-invalid');
  else control.setAttribute('aria-invalid', 'true');
}

/** A modal dialog (native <dialog>: focus moves in, Escape closes, Tab stays inside). */
export function openDialog(title: string, body: (close: () => void) => Child[]): HTMLDialogElement {
  const titleId = uid('dlg');
  const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' });
  const close = (): void => {
    dialog.close();
  };
  dialog.addEventListener('close', () => {
    dialog.remove();
  });
  append(dialog, [
    h(
      'header',
      { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', on: { click: close } }, '×'),
    ),
    ...body(close),
  ]);
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** The polite status line at the top of the page: "Key pair web-1 created.", errors in red. */
export function announce(message: string, kind: 'ok' | 'error' = 'ok'): void {
  const el = document.getElementById('status');
  if (el === null) return;
  el.className = `status ${kind}`;
  el.textContent = message;
  el.hidden = false;
  window.clearTimeout(Number(el.dataset['timer'] ?? '0'));
  if (kind === 'ok') el.dataset['timer'] = String(window.setTimeout(() => (el.hidden = true), 6000));
}

/** A table with a caption, column headers and rows, or `empty` when there are none. */
export function table(
  caption: string,
  headers: readonly string[],
  rows: readonly Node[],
  empty: string,
): Node {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    {},
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...rows),
  );
}

export function when(iso: string): string {
  const d = new Date(iso.length === 17 ? `${iso.slice(0, 16)}:00Z` : iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
