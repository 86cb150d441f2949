import { ApiError, api, session } from '../api';
import { h, hueOf, icon, replace } from '../dom';
import { joinAndOpen } from '../join';
import { type Page, navigate } from '../router';
import type { RoomSummary } from '../types';
import { ErrorSlot, alertBox, checkbox, emptyState, field, openModal, toast } from '../ui';

function creatorName(c: RoomSummary['creator']): string | null {
  if (!c) return null;
  if (typeof c === 'string') return c;
  if (typeof c === 'object' && c.username) return c.username;
  return null;
}

export function openCreateRoom(): void {
  const error = new ErrorSlot();
  const name = h('input', { class: 'input', placeholder: 'Friday movie night', maxlength: '64', required: true });
  const pw = h('input', { class: 'input', type: 'password', autocomplete: 'new-password', placeholder: 'Leave empty for an open room' });
  const guests = checkbox('Allow guests', 'People without an account can join with a display name.', false);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create room');
  openModal('Create a room', (close) => ({
    body: [error.el, field('Room name', name), field('Password (optional)', pw), guests.el],
    foot: [h('button', { type: 'button', class: 'btn btn-ghost', on: { click: close } }, 'Cancel'), submit],
    onSubmit: async () => {
      const n = name.value.trim();
      if (n.length < 1 || n.length > 64) return error.set('Room names are 1–64 characters.');
      if (pw.value && pw.value.length < 4) return error.set('Use at least 4 characters for the room password, or leave it empty.');
      submit.disabled = true;
      try {
        const r = await api.createRoom(n, pw.value || undefined, guests.input.checked);
        close();
        navigate(`/rooms/${encodeURIComponent(r.room.id)}`);
      } catch (e) {
        error.set((e as ApiError).message);
      } finally {
        submit.disabled = false;
      }
    },
  }));
}

function roomCard(room: RoomSummary): HTMLElement {
  const joinBtn = h('button', { class: 'btn btn-primary btn-sm' }, 'Join');
  joinBtn.addEventListener('click', async () => {
    joinBtn.disabled = true;
    try {
      await joinAndOpen(room);
    } catch (e) {
      toast((e as Error).message, 'error');
    } finally {
      joinBtn.disabled = false;
    }
  });
  const by = creatorName(room.creator);
  const hue = hueOf(room.name);
  return h(
    'article',
    { class: 'card room-card', dataset: { roomId: room.id } },
    h(
      'div',
      { class: 'room-card-head' },
      h(
        'div',
        { class: 'room-thumb', style: { background: `linear-gradient(135deg, hsl(${hue} 55% 42%), hsl(${(hue + 40) % 360} 60% 30%))` } },
        (room.name.trim()[0] ?? '#').toUpperCase(),
      ),
      h(
        'div',
        { class: 'grow' },
        h(
          'div',
          { class: 'room-title' },
          h('span', { class: 'ellipsis', title: room.name }, room.name),
          room.has_password ? h('span', { title: 'Password protected', 'aria-label': 'Password protected' }, icon('lock', 15)) : null,
        ),
        h('div', { class: 'room-meta' }, by ? h('span', { class: 'ellipsis' }, `by ${by}`) : null),
      ),
    ),
    h(
      'div',
      { class: 'room-card-foot' },
      h(
        'div',
        { class: 'row' },
        h(
          'span',
          { class: 'badge', title: `${room.online} online` },
          h('span', { class: `dot${room.online > 0 ? ' dot-on' : ''}` }),
          `${room.online} online`,
        ),
        room.allow_guests ? h('span', { class: 'badge badge-accent' }, 'Guests welcome') : null,
      ),
      joinBtn,
    ),
  );
}

export function roomsPage(): Page {
  const grid = h('div', { class: 'room-grid' });
  const body = h('div', null, grid);
  const loggedIn = !!session.token;
  let timer: number | undefined;
  let destroyed = false;
  let loadedOnce = false;

  replace(
    grid,
    ...Array.from({ length: 6 }, () => h('div', { class: 'skeleton', style: { height: '132px' } })),
  );

  const load = async () => {
    try {
      const r = await api.rooms();
      if (destroyed) return;
      loadedOnce = true;
      const rooms = [...(r.rooms ?? [])].sort((a, b) => b.online - a.online || a.name.localeCompare(b.name));
      if (rooms.length === 0) {
        replace(
          body,
          h(
            'div',
            { class: 'card' },
            emptyState(
              'film',
              'No rooms yet',
              'Create a room, add a video or a live stream, and invite friends to watch in sync.',
              loggedIn ? h('button', { class: 'btn btn-primary', on: { click: openCreateRoom } }, icon('plus', 16), 'Create a room') : null,
            ),
          ),
        );
      } else {
        replace(grid, ...rooms.map(roomCard));
        replace(body, grid);
      }
    } catch (e) {
      if (destroyed) return;
      const err = e as ApiError;
      if (err.status === 401) {
        session.clear();
        navigate(`/login?next=${encodeURIComponent('/')}`, true);
        return;
      }
      if (!loadedOnce) {
        replace(
          body,
          h(
            'div',
            { class: 'card' },
            emptyState(
              'alert',
              'Could not load rooms',
              err.message,
              h('button', { class: 'btn', on: { click: () => void load() } }, icon('refresh', 16), 'Try again'),
            ),
          ),
        );
      }
    }
  };

  if (!loggedIn) {
    // Without a session the list may still be public; if not, load() sends us to sign in.
  }
  void load();
  timer = window.setInterval(() => void load(), 10_000);

  const el = h(
    'div',
    { class: 'page' },
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', null, 'Rooms'), h('p', null, 'Watch videos and live streams together, in sync.')),
      loggedIn
        ? h('button', { class: 'btn btn-primary', on: { click: openCreateRoom } }, icon('plus', 16), 'New room')
        : h('a', { class: 'btn btn-primary', href: '/login' }, 'Sign in to create rooms'),
    ),
    !loggedIn ? alertBox('You are browsing as a visitor. Rooms that welcome guests can be joined with just a name.', 'info') : null,
    body,
  );
  return {
    el,
    title: 'Rooms',
    destroy() {
      destroyed = true;
      window.clearInterval(timer);
    },
  };
}
