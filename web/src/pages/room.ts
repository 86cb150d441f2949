// /rooms/:id — loads the room, asks to join when needed (password or guest), then mounts the
// live room view.

import { ApiError, api, session } from '../api';
import { fmtClock, h, icon, replace } from '../dom';
import { joinErrorMessage, promptGuest } from '../join';
import { RoomView } from '../room/view';
import { type Page, navigate } from '../router';
import type { RoomSummary } from '../types';
import { ErrorSlot, emptyState, field } from '../ui';

export function roomPage(roomId: string): Page {
  const root = h('div', { class: 'page page-wide' });
  let view: RoomView | null = null;
  let destroyed = false;

  const unmount = () => {
    view?.destroy();
    view = null;
  };

  const showMessage = (iconName: string, title: string, text: string, actions: HTMLElement[] = []) => {
    unmount();
    replace(root, h('div', { class: 'card', style: 'max-width:560px;margin:48px auto' }, emptyState(iconName, title, text, h('div', { class: 'row row-wrap', style: 'justify-content:center;margin-top:6px' }, ...actions))));
  };

  const backBtn = () => h('a', { class: 'btn', href: '/' }, 'All rooms');

  const showJoin = (room: RoomSummary | null) => {
    unmount();
    const error = new ErrorSlot();
    const loggedIn = !!session.token && session.user?.role !== 'guest';
    const pw = h('input', { class: 'input', type: 'password', autocomplete: 'off', placeholder: 'Room password' });
    const joinBtn = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Join room');
    const form = h(
      'form',
      {
        on: {
          submit: async (ev: SubmitEvent) => {
            ev.preventDefault();
            if (room?.has_password && !pw.value) return error.set('Enter the room password.');
            joinBtn.disabled = true;
            try {
              await api.join(roomId, room?.has_password ? pw.value : undefined);
              void load();
            } catch (e) {
              if ((e as ApiError).status === 409) return void load();
              error.set(joinErrorMessage(e));
            } finally {
              joinBtn.disabled = false;
            }
          },
        },
      },
      error.el,
      room?.has_password ? field('Password', pw) : null,
      joinBtn,
    );
    const guestBtn =
      room?.allow_guests || !room
        ? h(
            'button',
            {
              type: 'button',
              class: 'btn btn-block',
              style: 'margin-top:10px',
              on: {
                click: async () => {
                  const r: RoomSummary = room ?? { id: roomId, name: 'this room', has_password: false, allow_guests: true, online: 0 };
                  if (await promptGuest(r)) void load();
                },
              },
            },
            icon('user', 16),
            'Join as guest',
          )
        : null;
    const title = room ? room.name : 'Join this room';
    replace(
      root,
      h(
        'div',
        { class: 'card center-card' },
        h('div', { class: 'row', style: 'margin-bottom:8px' }, room?.has_password ? icon('lock', 18) : icon('film', 18), h('h2', { class: 'ellipsis' }, title)),
        h(
          'p',
          null,
          room
            ? `${room.online} watching now.${room.has_password ? ' This room is password protected.' : ''}`
            : 'Sign in or join as a guest to enter this room.',
        ),
        loggedIn
          ? form
          : h(
              'a',
              { class: 'btn btn-primary btn-block', href: `/login?next=${encodeURIComponent(`/rooms/${roomId}`)}` },
              'Sign in to join',
            ),
        guestBtn,
      ),
    );
    if (room?.has_password) queueMicrotask(() => pw.focus());
  };

  const showKicked = (reason: string, untilMs: number) => {
    if (/ban/i.test(reason)) {
      showMessage('ban', 'You were banned from this room', 'A room admin banned you. You cannot rejoin unless they lift the ban.', [backBtn()]);
      return;
    }
    const until = untilMs > Date.now() ? ` You can come back at ${fmtClock(untilMs)}.` : '';
    showMessage('door', 'You were removed from this room', `A room admin removed you.${until}`, [backBtn()]);
  };

  const mount = (room: RoomSummary) => {
    unmount();
    view = new RoomView(roomId, room, {
      failedToOpen: async () => {
        // The upgrade was refused or the network failed: find out which.
        try {
          const r = await api.room(roomId);
          if (!r.you) {
            showJoin(r.room);
            return false;
          }
          return true;
        } catch (e) {
          const err = e as ApiError;
          if (err.status === 401) {
            session.clear();
            navigate(`/login?next=${encodeURIComponent(`/rooms/${roomId}`)}`, true);
            return false;
          }
          if (err.status === 404) {
            showMessage('alert', 'Room not found', 'This room does not exist or was deleted.', [backBtn()]);
            return false;
          }
          if (err.status === 403) {
            showMessage('ban', 'You cannot enter this room', err.message, [backBtn()]);
            return false;
          }
          return true; // network trouble: keep retrying
        }
      },
      kicked: (reason, until) => showKicked(reason, until),
      deleted: () => showMessage('trash', 'This room was deleted', 'The room owner deleted this room.', [backBtn()]),
    });
    replace(root, view.el);
  };

  const load = async () => {
    replace(root, h('div', { class: 'room-layout' }, h('div', { class: 'skeleton', style: { aspectRatio: '16/9' } }), h('div', { class: 'skeleton', style: { height: '520px' } })));
    try {
      const r = await api.room(roomId);
      if (destroyed) return;
      if (r.you) mount(r.room);
      else showJoin(r.room);
    } catch (e) {
      if (destroyed) return;
      const err = e as ApiError;
      if (err.status === 401) {
        if (session.token) session.clear();
        showJoin(null);
      } else if (err.status === 404) {
        showMessage('alert', 'Room not found', 'This room does not exist or was deleted.', [backBtn()]);
      } else if (err.status === 403) {
        showMessage('ban', 'You cannot enter this room', err.message, [backBtn()]);
      } else {
        showMessage('alert', 'Could not open the room', err.message, [
          h('button', { class: 'btn btn-primary', on: { click: () => void load() } }, icon('refresh', 16), 'Try again'),
          backBtn(),
        ]);
      }
    }
  };

  void load();
  return {
    el: root,
    title: 'Room',
    destroy() {
      destroyed = true;
      unmount();
    },
  };
}
