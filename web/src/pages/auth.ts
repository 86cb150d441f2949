import { ApiError, api, session } from '../api';
import { h, icon, replace } from '../dom';
import { type Page, navigate } from '../router';
import { ErrorSlot, field } from '../ui';

export const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

export function validateCredentials(username: string, password: string): string | null {
  if (!USERNAME_RE.test(username)) return 'Usernames are 3–32 characters: letters, digits, “_”, “.” or “-”.';
  if (password.length < 8) return 'Passwords need at least 8 characters.';
  if (password.length > 256) return 'Passwords can be at most 256 characters.';
  return null;
}

function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && next !== '/login' ? next : '/';
}

export function authPage(next: string | null): Page {
  if (session.token && session.user && session.user.role !== 'guest') {
    queueMicrotask(() => navigate(safeNext(next), true));
  }
  let mode: 'login' | 'register' = 'login';
  const error = new ErrorSlot();
  const username = h('input', {
    class: 'input',
    name: 'username',
    autocomplete: 'username',
    placeholder: 'your-name',
    required: true,
    maxlength: '32',
    spellcheck: 'false',
    autocapitalize: 'none',
  });
  const password = h('input', {
    class: 'input',
    type: 'password',
    name: 'password',
    autocomplete: 'current-password',
    placeholder: '••••••••',
    required: true,
    maxlength: '256',
  });
  const confirm = h('input', {
    class: 'input',
    type: 'password',
    name: 'confirm',
    autocomplete: 'new-password',
    placeholder: 'Repeat the password',
    maxlength: '256',
  });
  const confirmField = field('Confirm password', confirm);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const tabLogin = h('button', { type: 'button', class: 'tab active', role: 'tab' }, 'Sign in');
  const tabRegister = h('button', { type: 'button', class: 'tab', role: 'tab' }, 'Create account');
  const subtitle = h('p', null, 'Welcome back. Sign in to watch together.');
  const pwHint = h('div', { class: 'hint' }, 'At least 8 characters.');
  const pwField = field('Password', password);
  pwField.appendChild(pwHint);

  const setMode = (m: 'login' | 'register') => {
    mode = m;
    tabLogin.classList.toggle('active', m === 'login');
    tabRegister.classList.toggle('active', m === 'register');
    tabLogin.setAttribute('aria-selected', String(m === 'login'));
    tabRegister.setAttribute('aria-selected', String(m === 'register'));
    confirmField.style.display = m === 'register' ? '' : 'none';
    pwHint.style.display = m === 'register' ? '' : 'none';
    password.autocomplete = m === 'register' ? 'new-password' : 'current-password';
    confirm.required = m === 'register';
    replace(submit, m === 'login' ? 'Sign in' : 'Create account');
    replace(subtitle, m === 'login' ? 'Welcome back. Sign in to watch together.' : 'Create an account to host and join rooms.');
    error.set(null);
  };
  tabLogin.addEventListener('click', () => setMode('login'));
  tabRegister.addEventListener('click', () => setMode('register'));

  const form = h(
    'form',
    {
      novalidate: true,
      on: {
        submit: async (ev: SubmitEvent) => {
          ev.preventDefault();
          const u = username.value.trim();
          const p = password.value;
          if (mode === 'register') {
            const invalid = validateCredentials(u, p);
            if (invalid) return error.set(invalid);
            if (p !== confirm.value) return error.set('The passwords do not match.');
          } else if (!u || !p) {
            return error.set('Enter your username and password.');
          }
          error.set(null);
          submit.disabled = true;
          replace(submit, mode === 'login' ? 'Signing in…' : 'Creating account…');
          try {
            const r = mode === 'login' ? await api.login(u, p) : await api.register(u, p);
            session.set(r.token, r.user);
            navigate(safeNext(next), true);
          } catch (e) {
            const err = e as ApiError;
            if (err.status === 401 && mode === 'login') error.set('Wrong username or password.');
            else if (err.status === 409) error.set('That username is taken. Pick another one.');
            else error.set(err.message);
            password.focus();
          } finally {
            submit.disabled = false;
            replace(submit, mode === 'login' ? 'Sign in' : 'Create account');
          }
        },
      },
    },
    error.el,
    field('Username', username),
    pwField,
    confirmField,
    submit,
  );
  setMode('login');

  const el = h(
    'div',
    { class: 'auth-wrap' },
    h(
      'div',
      { class: 'card auth-card' },
      h(
        'div',
        { class: 'auth-brand' },
        h('span', { class: 'brand-mark' }, icon('play', 20)),
        h('h1', null, 'castmesh'),
        subtitle,
      ),
      h('div', { class: 'tabs', role: 'tablist' }, tabLogin, tabRegister),
      form,
      h(
        'div',
        { class: 'auth-foot' },
        'Got a room link? Open it to join as a guest. ',
        h('a', { href: '/live' }, 'Browse live streams'),
      ),
    ),
  );
  queueMicrotask(() => username.focus());
  return { el, title: 'Sign in' };
}
