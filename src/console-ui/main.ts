/**
 * The Keyward web console: one page, routed by the URL's #fragment. It asks the server who is signed in,
 * shows the sign-in form or the console, and hands each route to its page module. Everything it shows
 * comes from /console/api/*, which runs the API's actions under the signed-in user's policies.
 */
import { ApiError, get, post, setCsrfToken, whenSignedOut } from './api.js';
import { announce, h, replace } from './dom.js';
import { auditPage } from './pages/audit.js';
import { instancePage, instancesPage } from './pages/instances.js';
import { keyPairsPage } from './pages/key-pairs.js';
import { policiesPage } from './pages/policies.js';
import { sessionPlayerPage, sessionsPage } from './pages/sessions.js';
import { signInPage } from './pages/sign-in.js';
import { terminalPage } from './pages/terminal.js';
import { usersPage } from './pages/users.js';
import { session, setSession, type SessionInfo } from './session.js';
import { errorText } from './pages/common.js';

const NAV: ReadonlyArray<readonly [string, string]> = [
  ['#/key-pairs', 'Key pairs'],
  ['#/instances', 'Instances'],
  ['#/users', 'Users'],
  ['#/policies', 'Policies'],
  ['#/sessions', 'Sessions'],
  ['#/audit', 'Audit log'],
];

const app = document.getElementById('app') as HTMLElement;
let cleanup: (() => void) | undefined;

function shell(): HTMLElement {
  const main = h('main', { id: 'main', tabindex: -1 });
  const signOut = h('button', { type: 'button', class: 'link', id: 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', () => {
    void post('/console/api/sign-out')
      .catch(() => undefined)
      .then(() => {
        showSignIn('You signed out.');
      });
  });
  replace(
    app,
    h(
      'header',
      { class: 'topbar' },
      h(
        'a',
        { class: 'brand', href: '#/instances' },
        h('span', { class: 'logo', 'aria-hidden': 'true' }, 'K'),
        'Keyward',
      ),
      h(
        'nav',
        { 'aria-label': 'Console' },
        h('ul', {}, ...NAV.map(([href, label]) => h('li', {}, h('a', { href }, label)))),
      ),
      h(
        'div',
        { class: 'who' },
        h(
          'span',
          { class: 'user', title: `Session ends ${new Date(session().ExpiresAt).toLocaleString()}` },
          session().UserName,
        ),
        signOut,
      ),
    ),
    h('div', { id: 'status', class: 'status', role: 'status', 'aria-live': 'polite', hidden: true }),
    main,
  );
  return main;
}

/** Runs the current page's cleanup; a failing one must not keep the next page from showing. */
function leavePage(): void {
  const done = cleanup;
  cleanup = undefined;
  try {
    done?.();
  } catch {
    // The page being left is gone either way.
  }
}

function route(): void {
  leavePage();
  for (const d of document.querySelectorAll('dialog')) d.close();
  const main = document.getElementById('main') ?? shell();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [top = '', id, user] = parts;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${top}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.classList.toggle('wide', top === 'terminal');
  switch (top) {
    case 'key-pairs':
      keyPairsPage(main);
      break;
    case 'instances':
      if (id === undefined || id === '') instancesPage(main);
      else instancePage(main, id);
      break;
    case 'terminal':
      if (id === undefined || id === '') location.hash = '#/instances';
      else cleanup = terminalPage(main, id, user === undefined || user === '' ? 'root' : user);
      break;
    case 'users':
      usersPage(main);
      break;
    case 'policies':
      policiesPage(main);
      break;
    case 'audit':
      auditPage(main);
      break;
    case 'sessions':
      if (id === undefined || id === '') sessionsPage(main);
      else cleanup = sessionPlayerPage(main, id);
      break;
    default:
      location.replace('#/instances');
      return;
  }
  if (top !== 'terminal') main.focus({ preventScroll: true });
}

function signedIn(s: SessionInfo): void {
  setSession(s);
  setCsrfToken(s.CsrfToken);
  shell();
  window.addEventListener('hashchange', route);
  route();
}

function showSignIn(notice?: string): void {
  leavePage();
  window.removeEventListener('hashchange', route);
  setSession(undefined);
  setCsrfToken('');
  const main = h('main', { id: 'main', tabindex: -1 });
  replace(app, main);
  signInPage(main, notice, signedIn);
}

whenSignedOut((message) => {
  showSignIn(message);
});

// Signed out is an ordinary answer ({SignedIn: false}), so a first visit logs no failed request.
get<({ SignedIn: true } & SessionInfo) | { SignedIn: false }>('/console/api/session')
  .then((s) => {
    if (s.SignedIn) signedIn(s);
    else showSignIn();
  })
  .catch((err: unknown) => {
    if (err instanceof ApiError && err.code === 'Console.NotSignedIn') showSignIn();
    else {
      showSignIn();
      announce(errorText(err), 'error');
    }
  });
