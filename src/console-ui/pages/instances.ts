/**
 * Instances: the list (status refreshed every 5 seconds while shown), one instance's detail with its host
 * key fingerprints, and Connect with the OS user to log on as.
 */
import { call, callAllPages } from '../api.js';
import { announce, field, h, replace, table, when } from '../dom.js';
import { region } from '../session.js';
import {
  button,
  errorBox,
  errorText,
  formDialog,
  isTagError,
  page,
  showOnce,
  statusBadge,
  tagList,
  tagParams,
  tagsInput,
  type Instance,
} from './common.js';

const POLL_MS = 5000;

function address(i: Instance): string {
  return i.KeywardAgent.SshAddress || i.InnerIpAddress.IpAddress[0] || '—';
}

function connectHref(id: string, osUser: string): string {
  return `#/terminal/${encodeURIComponent(id)}/${encodeURIComponent(osUser)}`;
}

/**
 * Runs `tick` now and every POLL_MS while `el` is in the document. Refreshes after the first are marked
 * background: they do not keep an idle console session alive.
 */
function poll(el: HTMLElement, tick: (background: boolean) => Promise<void>): void {
  const loop = async (background: boolean): Promise<void> => {
    if (!el.isConnected) return;
    await tick(background);
    if (el.isConnected) {
      window.setTimeout(() => {
        void loop(true);
      }, POLL_MS);
    }
  };
  void loop(false);
}

/** A one-time enrollment token and the command that enrolls a host with it. */
function addInstanceDialog(): void {
  const ttl = h(
    'select',
    { name: 'ttl' },
    h('option', { value: '900' }, '15 minutes'),
    h('option', { value: '3600' }, '1 hour'),
    h('option', { value: '86400' }, '24 hours'),
  );
  formDialog(
    'Add an instance',
    [
      h(
        'p',
        {},
        'On the host, as root, one command downloads the agent (no Node.js needed), checks its SHA-256, enrolls the host with a one-time token and starts the agent under systemd.',
      ),
      field('The token is valid for', ttl),
    ],
    'Create token',
    async () => {
      const res = await call<{ Token: string; ExpireTime: string }>('CreateEnrollmentToken', {
        RegionId: region(),
        TtlSeconds: ttl.value,
      });
      const script = `${location.origin}/agent/v1/install.sh`;
      showOnce('Enrollment token', `It works once, until ${when(res.ExpireTime)}, and is not shown again.`, [
        ['Token', res.Token],
        ['On the host', `curl -fsSL ${script} | sudo sh -s -- --token ${res.Token}`],
        // The console cannot tell a public CA from a private one; the host needs that CA's certificate.
        ...(location.protocol === 'https:'
          ? [
              [
                'If a private CA signed this server’s certificate (its PEM copied to the host as ca.pem)',
                `curl -fsSL --cacert ca.pem ${script} | sudo sh -s -- --token ${res.Token} --ca ca.pem`,
              ] as [string, string],
            ]
          : []),
      ]);
      return 'Enrollment token created.';
    },
  );
}

export function instancesPage(root: HTMLElement): void {
  const list = h(
    'div',
    { class: 'list', 'aria-live': 'polite' },
    h('p', { class: 'loading' }, 'Loading instances…'),
  );
  const updated = h('span', { class: 'muted small' });
  replace(root, page('Instances', [updated, button('Add instance…', addInstanceDialog, 'primary')], list));
  poll(list, async (background) => {
    try {
      const all = await callAllPages<Instance>(
        'DescribeInstances',
        { RegionId: region() },
        (r) => [...((r['Instances'] as { Instance: Instance[] } | undefined)?.Instance ?? [])],
        { background },
      );
      const rows = all.map((i) =>
        h(
          'tr',
          { 'data-instance': i.InstanceId },
          h(
            'th',
            { scope: 'row' },
            h('a', { href: `#/instances/${i.InstanceId}` }, i.InstanceName || i.InstanceId),
            h('div', { class: 'muted small mono' }, i.InstanceId),
          ),
          h('td', {}, statusBadge(i.Status)),
          h('td', {}, i.OSName || '—'),
          h('td', { class: 'mono' }, address(i)),
          h('td', {}, i.KeyPairName === '' ? h('span', { class: 'muted' }, 'none') : i.KeyPairName),
          h('td', {}, tagList(i.Tags.Tag)),
          h(
            'td',
            { class: 'row-actions' },
            h(
              'a',
              {
                class: 'button primary',
                href: connectHref(i.InstanceId, 'root'),
                'aria-label': `Connect to ${i.InstanceName || i.InstanceId} as root`,
              },
              'Connect',
            ),
          ),
        ),
      );
      replace(
        list,
        table(
          'Instances',
          ['Instance', 'Status', 'OS', 'Address', 'Key pair', 'Tags', ''],
          rows,
          'No instances yet. Add one: a token and the one command that installs the agent on a host (or keyward instance enroll-token).',
        ),
      );
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      replace(list, errorBox(err));
    }
  });
}

export function instancePage(root: HTMLElement, id: string): void {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading the instance…'));
  let current: Instance | undefined;
  const rename = (): void => {
    const name = h('input', { name: 'instanceName', maxlength: 128, value: current?.InstanceName ?? '' });
    formDialog(
      'Rename instance',
      [field('Name', name)],
      'Rename',
      async () => {
        await call('ModifyInstanceAttribute', {
          RegionId: region(),
          InstanceId: id,
          InstanceName: name.value.trim(),
        });
        void tick();
        return `Instance ${id} renamed to ${name.value.trim()}.`;
      },
      { fieldError: () => name },
    );
  };
  const setRoute = (): void => {
    const select = h(
      'select',
      { name: 'sshRoute' },
      ...SSH_ROUTES.map(([value, label]) =>
        h('option', { value, ...(value === current?.KeywardAgent.SshRoute && { selected: true }) }, label),
      ),
    );
    formDialog(
      'SSH route',
      [
        field(
          'Route',
          select,
          'How the console and keyward ssh reach sshd on this host; the tunnel needs no inbound port.',
        ),
      ],
      'Save',
      async () => {
        await call('ModifyInstanceAttribute', { RegionId: region(), InstanceId: id, SshRoute: select.value });
        void tick();
        return `The SSH route of ${id} is now ${select.value}.`;
      },
    );
  };
  const addTags = (): void => {
    const tags = tagsInput();
    formDialog(
      'Add tags',
      [field('Tags', tags, 'key=value pairs, separated by commas; a key already there gets the new value.')],
      'Add',
      async () => {
        await call('TagResources', {
          RegionId: region(),
          ResourceType: 'instance',
          'ResourceId.1': id,
          ...tagParams(tags.value),
        });
        void tick();
        return `Tags added to ${id}.`;
      },
      { fieldError: (err) => (isTagError(err) ? tags : undefined) },
    );
  };
  const revoke = (): void => {
    formDialog(
      'Revoke instance',
      [
        h(
          'p',
          {},
          `Revoke ${id}? Its agent is disconnected and can never connect again with its identity; to manage the host again, enroll it anew. Its key pair binding is forgotten.`,
        ),
      ],
      'Revoke',
      async () => {
        await call('DeleteInstance', { RegionId: region(), InstanceId: id });
        location.hash = '#/instances';
        return `Instance ${id} revoked.`;
      },
      { danger: true },
    );
  };
  replace(
    root,
    page(
      id,
      [
        button('Rename…', rename),
        button('SSH route…', setRoute),
        button('Add tags…', addTags),
        button('Revoke…', revoke, 'danger-quiet'),
        h('a', { href: '#/instances' }, '← All instances'),
      ],
      body,
    ),
  );
  let osUserValue = 'root';
  const untag = (key: string): void => {
    void call('UntagResources', {
      RegionId: region(),
      ResourceType: 'instance',
      'ResourceId.1': id,
      'TagKey.1': key,
    })
      .then(() => {
        announce(`Tag ${key} removed from ${id}.`);
        void tick();
      })
      .catch((err: unknown) => {
        announce(errorText(err), 'error');
      });
  };
  const tick = async (background = false): Promise<void> => {
    try {
      const res = await call<{ Instances: { Instance: Instance[] } }>(
        'DescribeInstances',
        { RegionId: region(), InstanceIds: JSON.stringify([id]) },
        { background },
      );
      const i = res.Instances.Instance[0];
      if (i === undefined) {
        replace(
          body,
          h('div', { class: 'alert error', role: 'alert' }, `There is no instance ${id} in this region.`),
        );
        return;
      }
      current = i;
      document.getElementById('page-title')?.replaceChildren(i.InstanceName || i.InstanceId);
      const a = i.KeywardAgent;
      if (body.querySelector('form') !== null) {
        // Keep the Connect form (and what is typed in it); refresh only the facts.
        body.querySelector('.facts')?.replaceWith(facts(i, untag));
        return;
      }
      const osUser = h('input', {
        name: 'osUser',
        value: osUserValue,
        required: true,
        maxlength: 32,
        autocomplete: 'off',
        // Browsers compile `pattern` with the `v` flag, where a `-` in a class must be escaped.
        pattern: '[a-z_][a-z0-9_.\\-]*',
      });
      osUser.addEventListener('input', () => (osUserValue = osUser.value));
      const form = h(
        'form',
        { class: 'connect' },
        field('Log on as (OS user)', osUser),
        h('button', { type: 'submit', class: 'primary' }, 'Connect'),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        location.hash = connectHref(i.InstanceId, osUser.value.trim() || 'root');
      });
      replace(
        body,
        form,
        facts(i, untag),
        h('h2', {}, 'Host keys'),
        table(
          'Host keys',
          ['Type', 'SHA256 fingerprint'],
          a.HostKeys.HostKey.map((k) =>
            h('tr', {}, h('td', {}, k.Type), h('td', { class: 'mono' }, k.FingerprintSha256)),
          ),
          'The agent reported no host keys.',
        ),
      );
    } catch (err) {
      replace(body, errorBox(err));
    }
  };
  poll(body, tick);
}

/** The routes ModifyInstanceAttribute accepts, as the console names them. */
const SSH_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ['direct', 'direct: the server dials the SSH address'],
  ['tunnel', "tunnel: through the agent's connection (no inbound port)"],
  ['auto', 'auto: direct when the address answers, else the tunnel'],
];

/** Ready / Not ready with the host's code and what to change / Unknown (an agent that does not report it). */
function logonReadiness(l: Instance['KeywardAgent']['OneTimeLogon']): string {
  if (l === undefined || l.Status === 'Unknown') return 'unknown (the agent does not report it)';
  const form = l.ExpiryTimeForm === '' ? '' : ` (expiry-time: ${l.ExpiryTimeForm})`;
  const why = l.Code === '' ? '' : ` — ${l.Code}: ${l.Message}`;
  return `${l.Status === 'Ready' ? 'ready' : 'not ready'}${form}${why}`;
}

function facts(i: Instance, untag: (key: string) => void): HTMLElement {
  const a = i.KeywardAgent;
  const rows: Array<[string, Node | string]> = [
    ['Instance ID', i.InstanceId],
    ['Status', statusBadge(i.Status)],
    ['Host name', i.HostName || '—'],
    ['OS', `${i.OSName} ${a.OSVersion}`.trim() || '—'],
    ['Kernel', a.Kernel || '—'],
    ['SSH address', address(i)],
    ['SSH route', SSH_ROUTES.find(([r]) => r === a.SshRoute)?.[1] ?? (a.SshRoute || '—')],
    ['Addresses', i.InnerIpAddress.IpAddress.join(', ') || '—'],
    ['Key pair', i.KeyPairName || 'none (password logins allowed)'],
    ['Binding', a.Binding.State + (a.Binding.ErrorMessage === '' ? '' : `: ${a.Binding.ErrorMessage}`)],
    ['Agent', `${a.AgentVersion}, last seen ${when(a.LastSeenTime)}`],
    ['OpenSSH', a.OpenSSHVersion || '—'],
    ['One-time logon', logonReadiness(a.OneTimeLogon)],
    ['Enrolled', when(i.CreationTime)],
  ];
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of rows) dl.append(h('dt', {}, k), h('dd', {}, v));
  const tags = h('dd', {});
  if (i.Tags.Tag.length === 0) replace(tags, tagList([]));
  else {
    replace(
      tags,
      h(
        'ul',
        { class: 'tags' },
        ...i.Tags.Tag.map((t) =>
          h(
            'li',
            {},
            t.TagValue === '' ? t.TagKey : `${t.TagKey}=${t.TagValue}`,
            ' ',
            h(
              'button',
              {
                type: 'button',
                class: 'icon small',
                'aria-label': `Remove tag ${t.TagKey}`,
                on: {
                  click: () => {
                    untag(t.TagKey);
                  },
                },
              },
              '×',
            ),
          ),
        ),
      ),
    );
  }
  dl.append(h('dt', {}, 'Tags'), tags);
  return dl;
}
