/** Sign-in: user name and password, then the TOTP code when the user has MFA; lockout shown plainly. */
import { ApiError, post, setCsrfToken } from '../api.js';
import { field, h, replace, setFieldError } from '../dom.js';
import type { SessionInfo } from '../session.js';
import { busy, errorBox } from './common.js';

export function signInPage(
  root: HTMLElement,
  notice: string | undefined,
  done: (s: SessionInfo) => void,
): void {
  document.title = 'Sign in · Keyward console';
  const user = h('input', {
    name: 'userName',
    autocomplete: 'username',
    required: true,
    maxlength: 64,
    autocapitalize: 'off',
    spellcheck: 'false',
  });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    maxlength: 256,
  });
  const totp = h('input', {
    name: 'totpCode',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: 6,
    pattern: '[0-9]{6}',
  });
  const totpField = field('Authenticator code', totp, 'The 6-digit code from your authenticator app.');
  totpField.hidden = true;
  const formError = h('div', { class: 'form-error' });
  const form = h(
    'form',
    { class: 'form sign-in', novalidate: true, 'aria-labelledby': 'page-title' },
    h('div', { class: 'brand big' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'K'), 'Keyward'),
    h('h1', { id: 'page-title' }, 'Sign in to the console'),
    notice === undefined ? null : h('div', { class: 'alert info', role: 'status' }, notice),
    formError,
    field('User name', user),
    field('Password', password),
    totpField,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    replace(formError);
    setFieldError(totp, undefined);
    if (user.value.trim() === '' || password.value === '') {
      replace(
        formError,
        h('div', { class: 'alert error', role: 'alert' }, 'Enter your user name and password.'),
      );
      return;
    }
    void busy(form, async () => {
      try {
        const s = await post<SessionInfo>('/console/api/sign-in', {
          userName: user.value.trim(),
          password: password.value,
          ...(totp.value.trim() !== '' && { totpCode: totp.value.trim() }),
        });
        setCsrfToken(s.CsrfToken);
        password.value = '';
        done(s);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'Console.MfaRequired') {
          totpField.hidden = false;
          if (totp.value !== '') setFieldError(totp, err.message);
          totp.focus();
          return;
        }
        replace(formError, errorBox(err));
        password.select();
      }
    });
  });
  replace(root, h('section', { class: 'sign-in-page' }, form));
  user.focus();
}
