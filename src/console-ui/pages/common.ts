/** Pieces every page uses: the page frame, error boxes, tag lists, and the shapes of API answers. */
import { ApiError } from '../api.js';
import { announce, h, openDialog, replace, setFieldError, type Child } from '../dom.js';

export interface Tag {
  readonly TagKey: string;
  readonly TagValue: string;
}

export interface KeyPair {
  readonly KeyPairName: string;
  readonly KeyPairFingerPrint: string;
  readonly CreationTime: string;
  readonly PublicKey?: string;
  readonly Tags: { readonly Tag: readonly Tag[] };
}

export interface Instance {
  readonly InstanceId: string;
  readonly InstanceName: string;
  readonly HostName: string;
  readonly OSName: string;
  readonly Status: string;
  readonly KeyPairName: string;
  readonly CreationTime: string;
  readonly InnerIpAddress: { readonly IpAddress: readonly string[] };
  readonly Tags: { readonly Tag: readonly Tag[] };
  readonly KeywardAgent: {
    readonly AgentVersion: string;
    readonly LastSeenTime: string;
    readonly SshAddress: string;
    /** How the server and clients reach sshd: direct, tunnel (through the agent) or auto. */
    readonly SshRoute: string;
    readonly LoginUser: string;
    readonly OSVersion: string;
    readonly Kernel: string;
    readonly HostKeys: {
      readonly HostKey: ReadonlyArray<{ Type: string; PublicKey: string; FingerprintSha256: string }>;
    };
    readonly Binding: {
      readonly KeyPairName: string;
      readonly State: string;
      readonly ErrorCode: string;
      readonly ErrorMessage: string;
    };
    /** Absent from servers before this field. */
    readonly OpenSSHVersion?: string;
    readonly OneTimeLogon?: {
      readonly Status: string;
      readonly ExpiryTimeForm: string;
      readonly Code: string;
      readonly Message: string;
    };
  };
}

/** A page's frame: a heading, an optional toolbar, and the content. */
export function page(title: string, toolbar: Child[], ...content: Child[]): HTMLElement {
  document.title = `${title} · Keyward console`;
  return h(
    'section',
    { class: 'page', 'aria-labelledby': 'page-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'page-title' }, title),
      h('div', { class: 'toolbar' }, ...toolbar),
    ),
    ...content,
  );
}

/** What an error says to a person: the server's message, and its code for a support ticket. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

export function errorBox(err: unknown): HTMLElement {
  const denied = err instanceof ApiError && (err.code === 'Forbidden.RAM' || err.status === 403);
  return h(
    'div',
    { class: denied ? 'alert denied' : 'alert error', role: 'alert' },
    denied ? h('strong', {}, 'Not allowed. ') : null,
    errorText(err),
  );
}

export function tagList(tags: readonly Tag[]): Child {
  if (tags.length === 0) return h('span', { class: 'muted' }, '—');
  return h(
    'ul',
    { class: 'tags' },
    ...tags.map((t) => h('li', {}, t.TagValue === '' ? t.TagKey : `${t.TagKey}=${t.TagValue}`)),
  );
}

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `badge ${status.toLowerCase()}` }, status);
}

export function button(label: string, onClick: (ev: Event) => void, kind = ''): HTMLButtonElement {
  return h('button', { type: 'button', class: kind, on: { click: onClick } }, label);
}

/** Disables a form's controls while `work` runs, so a double click does not send twice. */
export async function busy<T>(form: HTMLElement, work: () => Promise<T>): Promise<T> {
  const controls = [...form.querySelectorAll('button, input, select, textarea')] as HTMLButtonElement[];
  const before = controls.map((c) => c.disabled);
  controls.forEach((c) => (c.disabled = true));
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    controls.forEach((c, i) => (c.disabled = before[i] ?? false));
    form.removeAttribute('aria-busy');
  }
}

export interface FormDialogOptions {
  /** Maps an error to the field it is about, so the message shows there; otherwise above the form. */
  readonly fieldError?: (err: unknown) => HTMLElement | undefined;
  /** Checked before sending; returns the field to focus when something is wrong (its error already set). */
  readonly validate?: () => HTMLElement | undefined;
  readonly danger?: boolean;
  readonly wide?: boolean;
}

/**
 * A dialog with one form: `submit` returns the success message (announced once the dialog closes) or
 * throws, and the error is shown at its field or above the form. Controls are disabled while it runs.
 */
export function formDialog(
  title: string,
  fields: Child[],
  submitLabel: string,
  submit: () => Promise<string>,
  opts: FormDialogOptions = {},
): void {
  openDialog(title, (close) => {
    const formError = h('div', { class: 'form-error', role: 'alert' });
    const form = h(
      'form',
      { class: opts.wide === true ? 'form wide' : 'form', novalidate: true },
      formError,
      ...fields,
      h(
        'div',
        { class: 'actions' },
        button('Cancel', close),
        h('button', { type: 'submit', class: opts.danger === true ? 'danger' : 'primary' }, submitLabel),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      replace(formError);
      form.querySelectorAll('[aria-invalid]').forEach((el) => {
        setFieldError(el as HTMLElement, undefined);
      });
      const invalid = opts.validate?.();
      if (invalid !== undefined) {
        invalid.focus();
        return;
      }
      void busy(form, async () => {
        try {
          const message = await submit();
          close();
          announce(message);
        } catch (err) {
          const target = opts.fieldError?.(err);
          if (target !== undefined) {
            setFieldError(target, errorText(err));
            target.focus();
          } else replace(formError, errorBox(err));
        }
      });
    });
    return [form];
  });
}

/** A text field for tags: `key=value, other-key` (up to 20, as the API allows). */
export function tagsInput(name = 'tags'): HTMLInputElement {
  return h('input', { name, autocomplete: 'off', placeholder: 'env=prod, team=ops' });
}

/** `k=v, k2` → {PREFIX.1.Key: k, PREFIX.1.Value: v, PREFIX.2.Key: k2}; the server checks the rest. */
export function tagParams(text: string, prefix = 'Tag'): Record<string, string> {
  const out: Record<string, string> = {};
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  parts.forEach((part, i) => {
    const eq = part.indexOf('=');
    const n = String(i + 1);
    out[`${prefix}.${n}.Key`] = (eq === -1 ? part : part.slice(0, eq)).trim();
    if (eq !== -1) out[`${prefix}.${n}.Value`] = part.slice(eq + 1).trim();
  });
  return out;
}

/** Whether an API error is about tags (so it is shown at the tags field). */
export function isTagError(err: unknown): boolean {
  return err instanceof ApiError && /Tag/i.test(err.code);
}

/** A secret shown once in a dialog: selectable text, a Copy button, and the warning that it is not kept. */
export function showOnce(
  title: string,
  warning: string,
  rows: ReadonlyArray<readonly [string, string]>,
): void {
  openDialog(title, (close) => [
    h('div', { class: 'alert warning', role: 'alert' }, h('strong', {}, 'Copy it now. '), warning),
    h(
      'dl',
      { class: 'facts' },
      ...rows.flatMap(([k, v]) => [
        h('dt', {}, k),
        h(
          'dd',
          {},
          h('code', { class: 'secret', tabindex: 0 }, v),
          ' ',
          button(
            'Copy',
            () => {
              void navigator.clipboard?.writeText(v).catch(() => undefined);
            },
            'link',
          ),
        ),
      ]),
    ),
    h('div', { class: 'actions' }, button('Done', close, 'primary')),
  ]);
}
