/** The audit log: filters, newest first, paged with "Load more", and the hash chain's verification. */
import { call } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { button, errorBox, page } from './common.js';

interface AuditEvent {
  readonly Seq: number;
  readonly Time: string;
  readonly EventType: string;
  readonly Actor: string;
  readonly InstanceId: string | null;
  readonly RemoteAddress: string | null;
  readonly RequestId: string | null;
  readonly Detail: Record<string, unknown> | null;
}

function detailText(d: Record<string, unknown> | null): string {
  if (d === null) return '';
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function auditPage(root: HTMLElement): void {
  const chain = h('div', { class: 'chain', role: 'status' }, 'Verifying the audit chain…');
  const type = h('input', {
    name: 'eventType',
    placeholder: 'e.g. session or console.signin',
    maxlength: 64,
  });
  const actor = h('input', { name: 'actor', placeholder: 'e.g. user/alice', maxlength: 200 });
  const instance = h('input', { name: 'instanceId', placeholder: 'i-…', maxlength: 64 });
  const since = h('input', { name: 'since', type: 'datetime-local' });
  const filters = h(
    'form',
    { class: 'filters', role: 'search' },
    field('Event type', type, 'A type and its subtypes: session covers session.opened.'),
    field('Actor', actor),
    field('Instance', instance),
    field('Since', since),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'),
  );
  const list = h('div', { class: 'list', 'aria-live': 'polite' });
  const more = h('div', {});
  let token = '';
  let rows: Node[] = [];

  const verify = async (): Promise<void> => {
    try {
      const r = await call<{
        Ok: boolean;
        Count: number;
        HeadHash: string;
        AnchorSeq?: number;
        FirstBadSeq?: number;
        Reason?: string;
      }>('VerifyAuditChain');
      const archived =
        r.AnchorSeq === undefined || r.AnchorSeq === 0
          ? ''
          : ` Events 1–${String(r.AnchorSeq)} are archived in segment files (keyward audit verify --segment).`;
      chain.className = `chain alert ${r.Ok ? 'ok' : 'error'}`;
      chain.textContent = r.Ok
        ? `Chain verified: ${String(r.Count)} events, every hash links to the one before (head ${r.HeadHash.slice(0, 16)}…).${archived}`
        : `The chain does NOT verify${r.FirstBadSeq === undefined ? '' : ` at event ${String(r.FirstBadSeq)}`}: ${r.Reason ?? 'an event was changed or removed'}.`;
    } catch (err) {
      replace(chain, errorBox(err));
      chain.className = 'chain';
    }
  };

  const load = async (append: boolean): Promise<void> => {
    const params: Record<string, string> = { MaxResults: '50' };
    if (type.value.trim() !== '') params['EventType'] = type.value.trim().replace(/\.+$/, '');
    if (actor.value.trim() !== '') params['Actor'] = actor.value.trim();
    if (instance.value.trim() !== '') params['InstanceId'] = instance.value.trim();
    if (since.value !== '') params['StartTime'] = new Date(since.value).toISOString();
    if (append && token !== '') params['NextToken'] = token;
    try {
      const r = await call<{ Events: { Event: AuditEvent[] }; NextToken?: string }>(
        'ListAuditEvents',
        params,
      );
      const next = r.Events.Event.map((e) =>
        h(
          'tr',
          {},
          h('td', { class: 'mono small' }, String(e.Seq)),
          h('td', { class: 'small' }, new Date(e.Time).toLocaleString()),
          h('td', { class: 'mono small' }, e.EventType),
          h('td', { class: 'small' }, e.Actor),
          h('td', { class: 'mono small' }, e.InstanceId ?? ''),
          h('td', { class: 'mono small' }, e.RemoteAddress ?? ''),
          h('td', { class: 'small detail' }, detailText(e.Detail)),
        ),
      );
      rows = append ? [...rows, ...next] : next;
      token = r.NextToken ?? '';
      replace(
        list,
        table(
          'Audit events',
          ['#', 'Time', 'Event', 'Actor', 'Instance', 'Address', 'Detail'],
          rows,
          'No event matches.',
        ),
      );
      replace(more, token === '' ? null : button('Load more', () => void load(true)));
    } catch (err) {
      replace(list, errorBox(err));
      replace(more);
    }
  };
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load(false);
  });
  replace(root, page('Audit log', [button('Verify chain', () => void verify())], chain, filters, list, more));
  void verify();
  void load(false);
}
