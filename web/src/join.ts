// Joining a room: as a member (with the room password when it has one) or as a guest.

import { ApiError, api, session } from './api';
import { h } from './dom';
import { navigate } from './router';
import type { RoomSummary } from './types';
import { ErrorSlot, field, openModal } from './ui';

export const GUEST_NAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

export function joinErrorMessage(e: unknown): string {
  const err = e as ApiError;
  if (err.status === 403) {
    if (/ban/i.test(err.message) || err.code === 'banned') return 'You are banned from this room.';
    if (/kick|cooldown/i.test(err.message) || err.code === 'kicked') return err.message || 'You were removed from this room recently. Try again later.';
    if (/password/i.test(err.message) || err.code === 'wrong_password' || err.code === 'bad_password') return 'Wrong room password.';
    return err.message || 'You cannot join this room.';
  }
  if (err.status === 401) return 'Wrong room password.';
  if (err.status === 404) return 'This room no longer exists.';
  return err.message || 'Could not join the room.';
}

/// Asks for the room password (when needed) and joins; resolves true once a member.
export function promptJoin(room: RoomSummary): Promise<boolean> {
  return new Promise((resolve) => {
    const error = new ErrorSlot();
    const pw = h('input', { class: 'input', type: 'password', autocomplete: 'off', placeholder: 'Room password' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Join room');
    let settled = false;
    const m = openModal(`Join “${room.name}”`, (close) => ({
      body: [h('p', null, 'This room is protected. Enter its password to join.'), error.el, field('Password', pw)],
      foot: [
        h('button', { type: 'button', class: 'btn btn-ghost', on: { click: close } }, 'Cancel'),
        submit,
      ],
      onSubmit: async () => {
        if (!pw.value) return error.set('Enter the room password.');
        submit.disabled = true;
        try {
          await api.join(room.id, pw.value);
          settled = true;
          close();
          resolve(true);
        } catch (e) {
          if ((e as ApiError).status === 409) {
            settled = true;
            close();
            resolve(true);
            return;
          }
          error.set(joinErrorMessage(e));
          pw.select();
        } finally {
          submit.disabled = false;
        }
      },
    }));
    m.dialog.addEventListener('close', () => {
      if (!settled) resolve(false);
    });
  });
}

/// Joins as a guest (name, plus the room password when it has one); stores the guest token.
export function promptGuest(room: RoomSummary): Promise<boolean> {
  return new Promise((resolve) => {
    const error = new ErrorSlot();
    const name = h('input', {
      class: 'input',
      autocomplete: 'nickname',
      placeholder: 'e.g. movie-fan',
      maxlength: '32',
      spellcheck: 'false',
    });
    const pw = h('input', { class: 'input', type: 'password', autocomplete: 'off', placeholder: 'Room password' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Join as guest');
    let settled = false;
    const m = openModal(`Join “${room.name}” as a guest`, (close) => ({
      body: [
        h('p', null, 'Pick a display name. Guests can watch and chat; no account needed.'),
        error.el,
        field('Display name', name, '3–32 characters: letters, digits, “_”, “.” or “-”.'),
        room.has_password ? field('Room password', pw) : null,
      ],
      foot: [h('button', { type: 'button', class: 'btn btn-ghost', on: { click: close } }, 'Cancel'), submit],
      onSubmit: async () => {
        const n = name.value.trim();
        if (!GUEST_NAME_RE.test(n)) return error.set('Display names are 3–32 characters: letters, digits, “_”, “.” or “-”.');
        if (room.has_password && !pw.value) return error.set('Enter the room password.');
        submit.disabled = true;
        try {
          const r = await api.guest(room.id, n, room.has_password ? pw.value : undefined);
          session.set(r.token, r.user);
          settled = true;
          close();
          resolve(true);
        } catch (e) {
          const err = e as ApiError;
          error.set(err.status === 409 ? 'That name is taken. Pick another one.' : joinErrorMessage(e));
        } finally {
          submit.disabled = false;
        }
      },
    }));
    m.dialog.addEventListener('close', () => {
      if (!settled) resolve(false);
    });
  });
}

/// The Join button of the room list: becomes a member when needed, then opens the room.
export async function joinAndOpen(room: RoomSummary): Promise<void> {
  if (!session.token) {
    if (room.allow_guests) {
      if (await promptGuest(room)) navigate(`/rooms/${encodeURIComponent(room.id)}`);
    } else navigate(`/login?next=${encodeURIComponent(`/rooms/${room.id}`)}`);
    return;
  }
  let isMember = false;
  try {
    const r = await api.room(room.id);
    isMember = !!r.you;
  } catch {
    /* fall through: the join call reports the problem */
  }
  if (!isMember) {
    if (room.has_password) {
      if (!(await promptJoin(room))) return;
    } else {
      try {
        await api.join(room.id);
      } catch (e) {
        if ((e as ApiError).status !== 409) throw new Error(joinErrorMessage(e));
      }
    }
  }
  navigate(`/rooms/${encodeURIComponent(room.id)}`);
}
