/** Policies: the list, a policy's document, and custom policies written as JSON with errors shown inline. */
import { call } from '../api.js';
import { field, h, openDialog, replace, setFieldError, table, when } from '../dom.js';
import { button, errorBox, errorText, formDialog, page } from './common.js';

interface Policy {
  readonly PolicyName: string;
  readonly PolicyType: string;
  readonly Description: string;
  readonly AttachmentCount: number;
  readonly UpdateDate: string;
}

const EXAMPLE = `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["ecs:DescribeKeyPairs", "ecs:DescribeInstances", "ecs-workbench:LoginInstance"],
      "Resource": "*"
    }
  ]
}`;

/** Where JSON.parse failed, as "line L, column C", from the position in its message. */
function jsonProblem(text: string): string | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'The document must be a JSON object.';
    return undefined;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const m = /position (\d+)/.exec(message);
    if (m === null) return `Not valid JSON: ${message}`;
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    return `Not valid JSON at line ${String(line)}, column ${String(column)}: ${message.replace(/ in JSON at position \d+.*$/, '')}.`;
  }
}

function editor(refresh: () => void): void {
  const name = h('input', { name: 'policyName', required: true, maxlength: 128, autocomplete: 'off' });
  const description = h('input', { name: 'description', maxlength: 1024 });
  const doc = h('textarea', {
    name: 'policyDocument',
    rows: 14,
    spellcheck: 'false',
    class: 'mono',
    value: EXAMPLE,
  });
  doc.addEventListener('input', () => {
    setFieldError(doc, jsonProblem(doc.value));
  });
  formDialog(
    'Create policy',
    [
      field('Name', name),
      field('Description', description),
      field(
        'Policy document (JSON)',
        doc,
        'Statements of Effect, Action and Resource; checked as you type and by the server on save.',
      ),
    ],
    'Create',
    async () => {
      await call('CreatePolicy', {
        PolicyName: name.value.trim(),
        PolicyDocument: doc.value,
        ...(description.value.trim() !== '' && { Description: description.value.trim() }),
      });
      refresh();
      return `Policy ${name.value.trim()} created.`;
    },
    {
      wide: true,
      validate: () => {
        const problem = jsonProblem(doc.value);
        setFieldError(doc, problem);
        return problem === undefined ? undefined : doc;
      },
      fieldError: (err) => {
        const text = errorText(err);
        if (text.includes('PolicyDocument') || text.includes('MalformedPolicy')) return doc;
        return text.includes('PolicyName') || text.includes('Policy.') ? name : undefined;
      },
    },
  );
}

function viewer(p: Policy): void {
  openDialog(`Policy ${p.PolicyName}`, () => {
    const body = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
    void call<{ DefaultPolicyVersion: { PolicyDocument: string } }>('GetPolicy', {
      PolicyName: p.PolicyName,
      PolicyType: p.PolicyType,
    })
      .then((r) => {
        let pretty = r.DefaultPolicyVersion.PolicyDocument;
        try {
          pretty = JSON.stringify(JSON.parse(pretty), null, 2);
        } catch {
          // Shown as stored.
        }
        replace(body, h('p', {}, p.Description), h('pre', { class: 'code', tabindex: 0 }, pretty));
      })
      .catch((err: unknown) => {
        replace(body, errorBox(err));
      });
    return [body];
  });
}

export function policiesPage(root: HTMLElement): void {
  const list = h(
    'div',
    { class: 'list', 'aria-live': 'polite' },
    h('p', { class: 'loading' }, 'Loading policies…'),
  );
  const refresh = async (): Promise<void> => {
    try {
      const res = await call<{ Policies: { Policy: Policy[] } }>('ListPolicies');
      const rows = res.Policies.Policy.map((p) =>
        h(
          'tr',
          { 'data-policy': p.PolicyName },
          h(
            'th',
            { scope: 'row' },
            button(
              p.PolicyName,
              () => {
                viewer(p);
              },
              'link',
            ),
          ),
          h('td', {}, p.PolicyType),
          h('td', {}, p.Description || '—'),
          h('td', {}, String(p.AttachmentCount)),
          h('td', {}, when(p.UpdateDate)),
          h(
            'td',
            { class: 'row-actions' },
            p.PolicyType === 'Custom'
              ? button(
                  'Delete…',
                  () => {
                    formDialog(
                      `Delete ${p.PolicyName}`,
                      [h('p', {}, `Delete the policy ${p.PolicyName}? Detach it from every user first.`)],
                      'Delete',
                      async () => {
                        await call('DeletePolicy', { PolicyName: p.PolicyName });
                        void refresh();
                        return `Policy ${p.PolicyName} deleted.`;
                      },
                      { danger: true },
                    );
                  },
                  'danger-quiet',
                )
              : null,
          ),
        ),
      );
      replace(
        list,
        table('Policies', ['Policy', 'Type', 'Description', 'Users', 'Updated', ''], rows, 'No policies.'),
      );
    } catch (err) {
      replace(list, errorBox(err));
    }
  };
  replace(
    root,
    page(
      'Policies',
      [
        button(
          'Create policy',
          () => {
            editor(() => void refresh());
          },
          'primary',
        ),
      ],
      list,
    ),
  );
  void refresh();
}
