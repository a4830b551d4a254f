/** Users: create (with a console password), set a password, policies, access keys, MFA, delete. */
import { call } from '../api.js';
import { announce, field, h, openDialog, replace, table, when } from '../dom.js';
import { busy, button, errorBox, errorText, formDialog, page, showOnce } from './common.js';

interface User {
  readonly UserName: string;
  readonly DisplayName: string;
  readonly CreateDate: string;
}
interface AccessKey {
  readonly AccessKeyId: string;
  readonly Status: string;
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
            button('Access keys…', () => {
              accessKeysDialog(u.UserName);
            }),
            button('MFA…', () => {
              mfaDialog(u.UserName);
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

  const accessKeysDialog = (userName: string): void => {
    openDialog(`Access keys of ${userName}`, (close) => {
      const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
      const problem = h('div', { class: 'form-error', role: 'alert' });
      const act = (work: () => Promise<unknown>, message: string): void => {
        replace(problem);
        void work()
          .then(() => {
            announce(message);
            void load();
          })
          .catch((err: unknown) => {
            replace(problem, errorBox(err));
          });
      };
      const load = async (): Promise<void> => {
        try {
          const r = await call<{ AccessKeys: { AccessKey: AccessKey[] } }>('ListAccessKeys', {
            UserName: userName,
          });
          replace(
            list,
            table(
              `Access keys of ${userName}`,
              ['Access key ID', 'Status', 'Created', ''],
              r.AccessKeys.AccessKey.map((k) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, k.AccessKeyId),
                  h('td', {}, k.Status),
                  h('td', {}, when(k.CreateDate)),
                  h(
                    'td',
                    { class: 'row-actions' },
                    button(k.Status === 'Active' ? 'Disable' : 'Enable', () => {
                      const status = k.Status === 'Active' ? 'Inactive' : 'Active';
                      act(
                        () =>
                          call('UpdateAccessKey', {
                            UserName: userName,
                            UserAccessKeyId: k.AccessKeyId,
                            Status: status,
                          }),
                        `Access key ${k.AccessKeyId} is ${status}.`,
                      );
                    }),
                    button(
                      'Delete',
                      () => {
                        act(
                          () =>
                            call('DeleteAccessKey', { UserName: userName, UserAccessKeyId: k.AccessKeyId }),
                          `Access key ${k.AccessKeyId} deleted.`,
                        );
                      },
                      'danger-quiet',
                    ),
                  ),
                ),
              ),
              'No access keys: this user cannot call the API or use keyward ssh.',
            ),
          );
        } catch (err) {
          replace(list, errorBox(err));
        }
      };
      void load();
      const create = button(
        'Create access key',
        () => {
          replace(problem);
          void call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>('CreateAccessKey', {
            UserName: userName,
          })
            .then((r) => {
              close();
              showOnce(
                'New access key',
                'The secret is shown only now; Keyward keeps it sealed and cannot show it again.',
                [
                  ['Access key ID', r.AccessKey.AccessKeyId],
                  ['Secret', r.AccessKey.AccessKeySecret],
                ],
              );
            })
            .catch((err: unknown) => {
              replace(problem, errorBox(err));
            });
        },
        'primary',
      );
      return [problem, list, h('div', { class: 'actions' }, button('Close', close), create)];
    });
  };

  const mfaDialog = (userName: string): void => {
    openDialog(`MFA of ${userName}`, (close) => {
      const problem = h('div', { class: 'form-error', role: 'alert' });
      const body = h('div', { class: 'form' });
      const start = button(
        'Set up an authenticator',
        () => {
          replace(problem);
          void call<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
            'CreateVirtualMFADevice',
            { VirtualMFADeviceName: userName },
          )
            .then((r) => {
              bindForm(r.VirtualMFADevice.SerialNumber, r.VirtualMFADevice.Base32StringSeed);
            })
            .catch((err: unknown) => {
              replace(problem, errorBox(err));
            });
        },
        'primary',
      );
      const remove = button(
        'Remove MFA',
        () => {
          replace(problem);
          void call('UnbindMFADevice', { UserName: userName })
            .then(() => {
              close();
              announce(`MFA device of ${userName} removed.`);
            })
            .catch((err: unknown) => {
              replace(problem, errorBox(err));
            });
        },
        'danger-quiet',
      );
      const bindForm = (serial: string, seed: string): void => {
        const uri = `otpauth://totp/Keyward:${encodeURIComponent(userName)}?secret=${seed}&issuer=Keyward`;
        const code1 = h('input', { name: 'code1', inputmode: 'numeric', maxlength: 6, autocomplete: 'off' });
        const code2 = h('input', { name: 'code2', inputmode: 'numeric', maxlength: 6, autocomplete: 'off' });
        const form = h(
          'form',
          { class: 'form' },
          h(
            'div',
            { class: 'alert warning' },
            'Add this seed to the authenticator app now; it is shown only once.',
          ),
          h(
            'dl',
            { class: 'facts' },
            h('dt', {}, 'Seed'),
            h('dd', {}, h('code', { class: 'secret' }, seed)),
            h('dt', {}, 'URI'),
            h('dd', {}, h('code', { class: 'secret' }, uri)),
          ),
          field('First code', code1),
          field('Next code', code2, 'Two consecutive codes from the app prove it has the seed.'),
          h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Bind')),
        );
        form.addEventListener('submit', (ev) => {
          ev.preventDefault();
          replace(problem);
          void busy(form, async () => {
            try {
              await call('BindMFADevice', {
                SerialNumber: serial,
                UserName: userName,
                AuthenticationCode1: code1.value.trim(),
                AuthenticationCode2: code2.value.trim(),
              });
              close();
              announce(`MFA device bound to ${userName}: console sign-in now asks for a code.`);
            } catch (err) {
              replace(problem, errorBox(err));
            }
          });
        });
        replace(body, form);
        code1.focus();
      };
      replace(
        body,
        h(
          'p',
          {},
          'With MFA, signing in to the console also needs a code from an authenticator app (TOTP), and policies can require it (acs:MFAPresent).',
        ),
        h('div', { class: 'actions' }, remove, start),
      );
      return [problem, body];
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
