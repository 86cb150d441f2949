import './styles.css';
import { api, session } from './api';
import { avatar, h, icon, replace } from './dom';
import { authPage } from './pages/auth';
import { livePage } from './pages/live';
import { roomPage } from './pages/room';
import { roomsPage } from './pages/rooms';
import { installDebugHooks } from './debug';
import { type Page, fallback, navigate, onPage, route, startRouter } from './router';
import { emptyState } from './ui';

installDebugHooks();

const app = document.getElementById('app')!;
const topbar = h('header', { class: 'topbar' });
const main = h('main', { class: 'grow', style: 'display:flex;flex-direction:column' });
app.append(topbar, main);

let current: Page | null = null;
let currentPath = '/';

function renderTopbar(): void {
  const user = session.user;
  const link = (href: string, label: string) =>
    h(
      'a',
      {
        href,
        class:
          (href === '/' ? currentPath === '/' || currentPath.startsWith('/rooms') : currentPath.startsWith(href))
            ? 'active'
            : '',
      },
      label,
    );
  const right = user
    ? h(
        'div',
        { class: 'userchip' },
        avatar(user.username, 28),
        h('span', { class: 'uname' }, user.username),
        user.role === 'guest' ? h('span', { class: 'badge' }, 'Guest') : null,
        h(
          'button',
          {
            class: 'btn btn-ghost btn-sm',
            title: 'Sign out',
            on: {
              click: async () => {
                try {
                  await api.logout();
                } catch {
                  /* the token may already be gone */
                }
                session.clear();
                navigate('/login');
              },
            },
          },
          icon('logout', 16),
          h('span', { class: 'uname' }, 'Sign out'),
        ),
      )
    : currentPath === '/login'
      ? null
      : h('a', { class: 'btn btn-primary btn-sm', href: '/login' }, 'Sign in');
  replace(
    topbar,
    h(
      'a',
      { class: 'brand', href: '/' },
      h('span', { class: 'brand-mark' }, icon('play', 14)),
      h('span', { class: 'brand-name' }, 'castmesh'),
    ),
    h('nav', { class: 'nav' }, link('/', 'Rooms'), link('/live', 'Live')),
    h('div', { class: 'topbar-spacer' }),
    right,
  );
}

onPage((page, path) => {
  current?.destroy?.();
  current = page;
  currentPath = path;
  document.title = page.title ? `${page.title} · castmesh` : 'castmesh';
  topbar.style.display = path === '/login' ? 'none' : '';
  renderTopbar();
  replace(main, page.el);
  window.scrollTo(0, 0);
});

session.onChange(renderTopbar);

route('/login', (_p, q) => authPage(q.get('next')));
route('/', () => roomsPage());
route('/rooms', () => roomsPage());
route('/rooms/:id', (p) => roomPage(p.id));
route('/live', () => livePage());
fallback(() => ({
  title: 'Not found',
  el: h(
    'div',
    { class: 'page' },
    emptyState(
      'alert',
      'Page not found',
      'There is nothing at this address.',
      h('a', { class: 'btn btn-primary', href: '/' }, 'Back to rooms'),
    ),
  ),
}));

startRouter();

// Refresh who we are once per load (the stored user may be stale or the token expired).
if (session.token) {
  api
    .me()
    .then((r) => session.setUser(r.user))
    .catch((e: { status?: number }) => {
      if (e.status === 401) {
        session.clear();
        if (window.location.pathname !== '/login') navigate(`/login?next=${encodeURIComponent(window.location.pathname)}`, true);
      }
    });
}
