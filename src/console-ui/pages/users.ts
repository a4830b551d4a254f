/** Users: create (with a console password), set a password, attach and detach policies, delete. */
import { call } from '../api.js';
import { announce, field, h, replace, table, when } from '../dom.js';
import { button, errorBox, errorText, formDialog, page } from './common.js';

interface User {
  readonly UserName: string;
  readonly DisplayName: string;
  readonly CreateDate: string;
}
interface Policy {
  readonly PolicyName: string;
  readonly PolicyType: string;
  readonly Description: string;
}

export function usersPage(root: HTMLElement): void {
  const list = h(
    'div',
    { class: 'list', 'aria-live': 'polite' },
    h('p', { class: 'loading' }, 'Loading users…'),
  );
  let policies: Policy[] = [];

  const refresh = async (): Promise<void> => {
    try {
      const [users, pol] = await Promise.all([
        call<{ Users: { User: User[] } }>('ListUsers', { MaxItems: '1000' }),
        call<{ Policies: { Policy: Policy[] } }>('ListPolicies').catch(() => ({
          Policies: { Policy: [] as Policy[] },
        })),
      ]);
      policies = pol.Policies.Policy;
      const attached = await Promise.all(
        users.Users.User.map((u) =>
          call<{ Policies: { Policy: Policy[] } }>('ListPoliciesForUser', { UserName: u.UserName })
            .then((r) => r.Policies.Policy)
            .catch(() => undefined),
        ),
      );
      const rows = users.Users.User.map((u, idx) => {
        const mine = attached[idx];
        return h(
          'tr',
          { 'data-user': u.UserName },
          h(
            'th',
            { scope: 'row' },
            u.UserName,
            u.DisplayName !== u.UserName ? h('div', { class: 'muted small' }, u.DisplayName) : null,
          ),
          h(
            'td',
            {},
            mine === undefined
              ? h('span', { class: 'muted' }, 'not allowed to list')
              : mine.length === 0
                ? h('span', { class: 'muted' }, 'none')
                : h(
                    'ul',
                    { class: 'plain' },
                    ...mine.map((p) =>
                      h(
                        'li',
                        {},
                        `${p.PolicyName} `,
                        h('span', { class: 'muted small' }, p.PolicyType),
                        ' ',
                        button(
                          'Detach',
                          () => {
                            void call('DetachPolicyFromUser', {
                              UserName: u.UserName,
                              PolicyName: p.PolicyName,
                              PolicyType: p.PolicyType,
                            })
                              .then(() => {
                                announce(`Policy ${p.PolicyName} detached from ${u.UserName}.`);
                                void refresh();
                              })
                              .catch((err: unknown) => {
                                announce(errorText(err), 'error');
                              });
                          },
                          'link',
                        ),
                      ),
                    ),
                  ),
          ),
          h('td', {}, when(u.CreateDate)),
          h(
            'td',
            { class: 'row-actions' },
            button('Attach policy…', () => {
              attachDialog(u.UserName);
            }),
            button('Set password…', () => {
              passwordDialog(u.UserName);
            }),
            button(
              'Delete…',
              () => {
                formDialog(
                  `Delete ${u.UserName}`,
                  [
                    h(
                      'p',
                      {},
                      `Delete the user ${u.UserName}? Detach their policies and delete their access keys first.`,
                    ),
                  ],
                  'Delete',
                  async () => {
                    await call('DeleteUser', { UserName: u.UserName });
                    void refresh();
                    return `User ${u.UserName} deleted.`;
                  },
                  { danger: true },
                );
              },
              'danger-quiet',
            ),
          ),
        );
      });
      replace(
        list,
        table(
          'Users',
          ['User', 'Policies', 'Created', 'Actions'],
          rows,
          'No users yet. Create one to give a person console access.',
        ),
      );
    } catch (err) {
      replace(list, errorBox(err));
    }
  };

  const attachDialog = (userName: string): void => {
    const select = h(
      'select',
      { name: 'policy' },
      ...policies.map((p) =>
        h('option', { value: `${p.PolicyType}:${p.PolicyName}` }, `${p.PolicyName} (${p.PolicyType})`),
      ),
    );
    formDialog(`Attach a policy to ${userName}`, [field('Policy', select)], 'Attach', async () => {
      const [type, ...rest] = select.value.split(':');
      const name = rest.join(':');
      await call('AttachPolicyToUser', {
        UserName: userName,
        PolicyName: name,
        PolicyType: type ?? 'Custom',
      });
      void refresh();
      return `Policy ${name} attached to ${userName}.`;
    });
  };

  const passwordDialog = (userName: string): void => {
    const pw = h('input', {
      type: 'password',
      name: 'password',
      autocomplete: 'new-password',
      required: true,
      minlength: 12,
    });
    formDialog(
      `Set the console password of ${userName}`,
      [field('New password', pw, '12 to 128 characters.')],
      'Set password',
      async () => {
        const has = await call('GetLoginProfile', { UserName: userName }).then(
          () => true,
          () => false,
        );
        await call(has ? 'UpdateLoginProfile' : 'CreateLoginProfile', {
          UserName: userName,
          Password: pw.value,
        });
        return `Password of ${userName} set.`;
      },
      { fieldError: () => pw },
    );
  };

  const createDialog = (): void => {
    const name = h('input', { name: 'userName', required: true, maxlength: 64, autocomplete: 'off' });
    const display = h('input', { name: 'displayName', maxlength: 128, autocomplete: 'off' });
    const pw = h('input', { type: 'password', name: 'password', autocomplete: 'new-password' });
    formDialog(
      'Create user',
      [
        field('User name', name, 'Letters, digits, . _ - and @; up to 64 characters.'),
        field('Display name', display),
        field('Console password (optional)', pw, 'Leave empty for a user of the API only.'),
      ],
      'Create',
      async () => {
        await call('CreateUser', {
          UserName: name.value.trim(),
          ...(display.value.trim() !== '' && { DisplayName: display.value.trim() }),
        });
        if (pw.value !== '') {
          try {
            await call('CreateLoginProfile', { UserName: name.value.trim(), Password: pw.value });
          } catch (err) {
            void refresh();
            throw new Error(
              `User ${name.value.trim()} was created, but the password was not set: ${errorText(err)}`,
            );
          }
        }
        void refresh();
        return `User ${name.value.trim()} created.`;
      },
      {
        fieldError: (err) =>
          errorText(err).toLowerCase().includes('password')
            ? pw
            : errorText(err).includes('UserName') || errorText(err).includes('User.')
              ? name
              : undefined,
      },
    );
  };

  replace(root, page('Users', [button('Create user', createDialog, 'primary')], list));
  void refresh();
}
