/**
 * Key pairs: list with type, both fingerprints, tags and bound instances, filtered as you type; create
 * (the private key offered once as NAME.pem), import (paste or file, the parser's error under the field),
 * delete, attach to and detach from instances.
 */
import { ApiError, call, callAllPages } from '../api.js';
import { announce, field, h, openDialog, replace, setFieldError, table, when } from '../dom.js';
import { region } from '../session.js';
import { keyFacts } from '../ssh-key-facts.js';
import {
  busy,
  button,
  errorBox,
  errorText,
  formDialog,
  isTagError,
  page,
  tagList,
  tagParams,
  tagsInput,
  type Instance,
  type KeyPair,
} from './common.js';

interface Loaded {
  readonly pairs: readonly KeyPair[];
  readonly instances: readonly Instance[];
}

async function load(): Promise<Loaded> {
  const [pairs, instances] = await Promise.all([
    callAllPages<KeyPair>('DescribeKeyPairs', { RegionId: region(), IncludePublicKey: 'true' }, (r) => [
      ...((r['KeyPairs'] as { KeyPair: KeyPair[] } | undefined)?.KeyPair ?? []),
    ]),
    callAllPages<Instance>('DescribeInstances', { RegionId: region() }, (r) => [
      ...((r['Instances'] as { Instance: Instance[] } | undefined)?.Instance ?? []),
    ]).catch(() => [] as Instance[]),
  ]);
  return { pairs, instances };
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/x-pem-file' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 10_000);
}

/** Maps an API error to the field it is about, so the message appears next to that field. */
function fieldFor(err: unknown, fields: Record<string, HTMLElement>): HTMLElement | undefined {
  if (!(err instanceof ApiError)) return undefined;
  if (err.code.startsWith('InvalidPublicKeyBody') || err.code.includes('PublicKey')) return fields['key'];
  if (
    err.code.includes('KeyPairName') ||
    err.code.includes('KeyPair.AlreadyExist') ||
    err.code.includes('Duplicate')
  ) {
    return fields['name'];
  }
  return undefined;
}

function createDialog(refresh: () => void): void {
  openDialog('Create key pair', (close) => {
    const name = h('input', {
      name: 'name',
      required: true,
      maxlength: 128,
      autocomplete: 'off',
      // Browsers compile `pattern` with the `v` flag, where a `-` in a class must be escaped.
      pattern: '[A-Za-z][A-Za-z0-9._:\\-]{1,127}',
    });
    const tags = tagsInput();
    const type = h(
      'select',
      { name: 'type' },
      h('option', { value: 'rsa' }, 'RSA 2048'),
      h('option', { value: 'ed25519' }, 'Ed25519'),
    );
    const formError = h('div', { class: 'form-error', role: 'alert' });
    const form = h(
      'form',
      { class: 'form', novalidate: true },
      formError,
      field('Name', name, '2 to 128 characters: letters, digits, . _ - and :, starting with a letter.'),
      field('Type', type),
      field('Tags (optional)', tags, 'key=value pairs, separated by commas.'),
      h(
        'div',
        { class: 'actions' },
        button('Cancel', close),
        h('button', { type: 'submit', class: 'primary' }, 'Create'),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      setFieldError(name, undefined);
      replace(formError);
      void busy(form, async () => {
        try {
          const res = await call<{ KeyPairName: string; KeyPairFingerPrint: string; PrivateKeyBody: string }>(
            'CreateKeyPair',
            {
              RegionId: region(),
              KeyPairName: name.value.trim(),
              KeyType: type.value,
              ...tagParams(tags.value),
            },
          );
          showPrivateKey(form, res.KeyPairName, res.KeyPairFingerPrint, res.PrivateKeyBody, close);
          announce(`Key pair ${res.KeyPairName} created.`);
          refresh();
        } catch (err) {
          const target = isTagError(err) ? tags : fieldFor(err, { name });
          if (target !== undefined) setFieldError(target, errorText(err));
          else replace(formError, errorBox(err));
        }
      });
    });
    return [form];
  });
}

/** The one moment the private key exists outside the user's machine: offered for download, then dropped. */
function showPrivateKey(form: HTMLElement, name: string, md5: string, pem: string, close: () => void): void {
  let key: string | undefined = pem;
  const file = `${name}.pem`;
  const dl = button(
    `Download ${file}`,
    () => {
      if (key === undefined) return;
      download(file, key);
      dl.textContent = `Downloaded ${file}`;
    },
    'primary',
  );
  const done = button('Done', () => {
    key = undefined;
    close();
  });
  form.replaceWith(
    h(
      'div',
      { class: 'form' },
      h(
        'div',
        { class: 'alert warning', role: 'alert' },
        h('strong', {}, 'Download the private key now. '),
        'This is the only time it is shown: Keyward does not keep a copy and cannot show it again.',
      ),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Name'),
        h('dd', {}, name),
        h('dt', {}, 'MD5 fingerprint'),
        h('dd', { class: 'mono' }, md5),
      ),
      h('div', { class: 'actions' }, done, dl),
    ),
  );
  dl.focus();
}

function importDialog(refresh: () => void): void {
  const name = h('input', { name: 'name', required: true, maxlength: 128, autocomplete: 'off' });
  const key = h('textarea', {
    name: 'publicKey',
    rows: 5,
    required: true,
    spellcheck: 'false',
    placeholder: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… user@laptop',
  });
  const fileInput = h('input', { type: 'file', name: 'publicKeyFile', accept: '.pub,text/plain' });
  const tags = tagsInput();
  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0];
    if (f === undefined) return;
    if (f.size > 16_384) {
      setFieldError(key, 'That file is too large to be an OpenSSH public key (over 16 KB).');
      return;
    }
    void f.text().then((text) => {
      key.value = text.trim();
      if (name.value === '') name.value = f.name.replace(/\.pub$/, '').replace(/[^A-Za-z0-9._:-]/g, '-');
    });
  });
  formDialog(
    'Import key pair',
    [
      field('Name', name),
      field('Public key', key, 'One OpenSSH public key line (RSA, Ed25519 or ECDSA), as in a .pub file.'),
      field('…or read it from a file', fileInput),
      field('Tags (optional)', tags, 'key=value pairs, separated by commas.'),
    ],
    'Import',
    async () => {
      const res = await call<{ KeyPairName: string }>('ImportKeyPair', {
        RegionId: region(),
        KeyPairName: name.value.trim(),
        PublicKeyBody: key.value.trim(),
        ...tagParams(tags.value),
      });
      refresh();
      return `Key pair ${res.KeyPairName} imported.`;
    },
    { fieldError: (err) => (isTagError(err) ? tags : fieldFor(err, { name, key })) },
  );
}

function confirmDialog(title: string, text: string, action: string, run: () => Promise<string>): void {
  formDialog(title, [h('p', {}, text)], action, run, { danger: true });
}

function attachDialog(pair: KeyPair, instances: readonly Instance[], refresh: () => void): void {
  const choices = instances.filter((i) => i.KeyPairName !== pair.KeyPairName);
  const select = h(
    'select',
    { name: 'instance', required: true },
    ...choices.map((i) =>
      h(
        'option',
        { value: i.InstanceId },
        `${i.InstanceName || i.InstanceId} (${i.InstanceId}, ${i.Status}${i.KeyPairName === '' ? '' : `, now ${i.KeyPairName}`})`,
      ),
    ),
  );
  formDialog(
    `Attach ${pair.KeyPairName}`,
    [
      h(
        'p',
        {},
        'Binding a key pair disables password logins on the instance; a key pair bound there now is replaced. Keyward applies it live.',
      ),
      choices.length === 0
        ? h('p', { class: 'empty' }, 'No instance to attach to: enroll a host with the Keyward agent first.')
        : field('Instance', select),
    ],
    'Attach',
    async () => {
      if (choices.length === 0) throw new Error('There is no instance to attach to.');
      await call('AttachKeyPair', {
        RegionId: region(),
        KeyPairName: pair.KeyPairName,
        InstanceIds: JSON.stringify([select.value]),
      });
      refresh();
      return `Key pair ${pair.KeyPairName} attached to ${select.value}.`;
    },
  );
}

export function keyPairsPage(root: HTMLElement): void {
  const search = h('input', {
    type: 'search',
    placeholder: 'Filter by name, fingerprint or tag',
    'aria-label': 'Filter key pairs',
  });
  const list = h(
    'div',
    { class: 'list', 'aria-live': 'polite' },
    h('p', { class: 'loading' }, 'Loading key pairs…'),
  );
  let loaded: Loaded = { pairs: [], instances: [] };

  const render = (): void => {
    const q = search.value.trim().toLowerCase();
    const bound = new Map<string, Instance[]>();
    for (const i of loaded.instances) {
      if (i.KeyPairName !== '') bound.set(i.KeyPairName, [...(bound.get(i.KeyPairName) ?? []), i]);
    }
    const rows = loaded.pairs
      .map((p) => ({ p, facts: p.PublicKey === undefined ? undefined : keyFacts(p.PublicKey) }))
      .filter(
        ({ p, facts }) =>
          q === '' ||
          [
            p.KeyPairName,
            p.KeyPairFingerPrint,
            facts?.sha256 ?? '',
            ...p.Tags.Tag.map((t) => `${t.TagKey}=${t.TagValue}`),
          ]
            .join(' ')
            .toLowerCase()
            .includes(q),
      )
      .map(({ p, facts }) => {
        const on = bound.get(p.KeyPairName) ?? [];
        return h(
          'tr',
          { 'data-key-pair': p.KeyPairName },
          h('th', { scope: 'row' }, p.KeyPairName, h('div', { class: 'muted small' }, when(p.CreationTime))),
          h('td', {}, facts?.type ?? '—'),
          h(
            'td',
            { class: 'mono small' },
            h('div', {}, `MD5 ${p.KeyPairFingerPrint}`),
            h('div', {}, facts?.sha256 ?? ''),
          ),
          h('td', {}, tagList(p.Tags.Tag)),
          h(
            'td',
            {},
            on.length === 0
              ? h('span', { class: 'muted' }, 'none')
              : h(
                  'ul',
                  { class: 'plain' },
                  ...on.map((i) =>
                    h(
                      'li',
                      {},
                      h('a', { href: `#/instances/${i.InstanceId}` }, i.InstanceName || i.InstanceId),
                      ' ',
                      button(
                        'Detach',
                        () => {
                          confirmDialog(
                            'Detach key pair',
                            `Detach ${p.KeyPairName} from ${i.InstanceName || i.InstanceId}? Password logins are enabled again on that host.`,
                            'Detach',
                            async () => {
                              await call('DetachKeyPair', {
                                RegionId: region(),
                                KeyPairName: p.KeyPairName,
                                InstanceIds: JSON.stringify([i.InstanceId]),
                              });
                              void refresh();
                              return `Key pair ${p.KeyPairName} detached from ${i.InstanceId}.`;
                            },
                          );
                        },
                        'link',
                      ),
                    ),
                  ),
                ),
          ),
          h(
            'td',
            { class: 'row-actions' },
            button('Attach…', () => {
              attachDialog(p, loaded.instances, () => void refresh());
            }),
            button(
              'Delete…',
              () => {
                confirmDialog(
                  'Delete key pair',
                  `Delete ${p.KeyPairName}? This cannot be undone. A key pair bound to an instance must be detached first.`,
                  'Delete',
                  async () => {
                    await call('DeleteKeyPairs', {
                      RegionId: region(),
                      KeyPairNames: JSON.stringify([p.KeyPairName]),
                    });
                    void refresh();
                    return `Key pair ${p.KeyPairName} deleted.`;
                  },
                );
              },
              'danger-quiet',
            ),
          ),
        );
      });
    replace(
      list,
      h(
        'p',
        { class: 'muted small' },
        `${String(rows.length)} of ${String(loaded.pairs.length)} key pairs (at most 500 per region).`,
      ),
      table(
        'Key pairs',
        ['Name', 'Type', 'Fingerprints', 'Tags', 'Bound to', 'Actions'],
        rows,
        q === '' ? 'No key pairs yet: create one or import a public key.' : 'No key pair matches the filter.',
      ),
    );
  };

  const refresh = async (): Promise<void> => {
    try {
      loaded = await load();
      render();
    } catch (err) {
      replace(list, errorBox(err));
    }
  };
  search.addEventListener('input', render);
  replace(
    root,
    page(
      'Key pairs',
      [
        search,
        button('Import…', () => {
          importDialog(() => void refresh());
        }),
        button(
          'Create key pair',
          () => {
            createDialog(() => void refresh());
          },
          'primary',
        ),
      ],
      list,
    ),
  );
  void refresh();
}
