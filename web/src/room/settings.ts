// Room settings (name, password, guests, playback behaviour) and the publish key panel.

import { ApiError, api } from '../api';
import { h, icon, replace } from '../dom';
import { navigate } from '../router';
import { ErrorSlot, alertBox, checkbox, confirmDialog, copyText, field, toast } from '../ui';
import type { RoomCtx } from './ctx';

export function defaultRtmpUrl(hostname: string): string {
  return `rtmp://${hostname}:1935/live`;
}

export class SettingsPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private publish: HTMLElement;
  private danger: HTMLElement;

  constructor(private readonly ctx: RoomCtx) {
    this.body = h('div');
    this.publish = h('div');
    this.danger = h('div');
    this.el = h('div', { class: 'panel' }, h('div', { class: 'panel-scroll' }, this.body, this.publish, this.danger));
    ctx.on('room', () => this.renderSettings());
    ctx.on('you', () => {
      this.renderSettings();
      void this.renderPublish();
    });
    this.renderSettings();
    void this.renderPublish();
  }

  private renderSettings(): void {
    if (!this.ctx.isRoomAdmin() && !this.ctx.can('manage_members')) {
      replace(this.body);
      replace(this.danger);
      return;
    }
    const s = this.ctx.room.settings ?? {};
    const error = new ErrorSlot();
    const name = h('input', { class: 'input', value: this.ctx.room.name, maxlength: '64' });
    const hasPw = this.ctx.summary?.has_password ?? false;
    const pw = h('input', {
      class: 'input',
      type: 'password',
      autocomplete: 'new-password',
      placeholder: hasPw ? 'Leave empty to keep the current password' : 'No password',
    });
    const removePw = checkbox('Remove the password', 'Anyone who can see the room can join.', false);
    const guests = checkbox('Allow guests', 'People without an account can join with a display name.', !!this.ctx.summary?.allow_guests);
    const autoAdvance = checkbox('Auto-advance', 'Play the next item when the current one ends.', s.auto_advance !== false);
    const waitBuffer = checkbox('Wait for everyone', 'Pause the room while someone is buffering.', !!s.pause_on_buffering);
    const guestsControl = checkbox('Guests can control playback', 'Guests may play, pause and seek.', !!s.guests_can_control);
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save changes');
    const form = h(
      'form',
      {
        on: {
          submit: async (ev: SubmitEvent) => {
            ev.preventDefault();
            const n = name.value.trim();
            if (!n || n.length > 64) return error.set('Room names are 1–64 characters.');
            const patch: Parameters<typeof api.updateRoom>[1] = {
              name: n,
              allow_guests: guests.input.checked,
              settings: {
                ...s,
                auto_advance: autoAdvance.input.checked,
                pause_on_buffering: waitBuffer.input.checked,
                guests_can_control: guestsControl.input.checked,
              },
            };
            if (removePw.input.checked) patch.password = '';
            else if (pw.value) patch.password = pw.value;
            save.disabled = true;
            try {
              const r = await api.updateRoom(this.ctx.roomId, patch);
              error.set(null);
              if (r?.room) {
                this.ctx.summary = { ...(this.ctx.summary ?? r.room), ...r.room };
                this.ctx.room = { ...this.ctx.room, name: r.room.name ?? n, settings: r.room.settings ?? patch.settings! };
              } else {
                this.ctx.room = { ...this.ctx.room, name: n, settings: patch.settings! };
              }
              this.ctx.emit('room');
              toast('Room settings saved.', 'ok');
            } catch (e) {
              error.set((e as ApiError).message);
            } finally {
              save.disabled = false;
            }
          },
        },
      },
      h('div', { class: 'section-title' }, 'Room'),
      error.el,
      field('Name', name),
      field('Password', pw),
      hasPw ? removePw.el : null,
      guests.el,
      h('div', { class: 'section-title', style: 'margin-top:18px' }, 'Playback'),
      autoAdvance.el,
      waitBuffer.el,
      guestsControl.el,
      h('div', { class: 'row', style: 'margin-top:8px' }, save),
    );
    const danger =
      this.ctx.you.role === 'creator'
        ? h(
            'div',
            { style: 'margin-top:24px' },
            h('div', { class: 'section-title' }, 'Danger zone'),
            h(
              'button',
              {
                class: 'btn btn-danger',
                on: {
                  click: async () => {
                    const ok = await confirmDialog(
                      'Delete this room?',
                      'The playlist, chat and members are removed for everyone. This cannot be undone.',
                      'Delete room',
                    );
                    if (!ok) return;
                    try {
                      await api.deleteRoom(this.ctx.roomId);
                      toast('Room deleted.', 'ok');
                      navigate('/');
                    } catch (e) {
                      toast((e as ApiError).message, 'error');
                    }
                  },
                },
              },
              icon('trash', 16),
              'Delete room',
            ),
          )
        : null;
    replace(this.body, form);
    replace(this.danger, danger);
  }

  private async renderPublish(): Promise<void> {
    if (!this.ctx.can('manage_live')) {
      replace(this.publish);
      return;
    }
    replace(this.publish, h('div', { class: 'section-title', style: 'margin-top:24px' }, 'Go live'), h('div', { class: 'muted' }, 'Loading…'));
    try {
      const r = await api.publishKey(this.ctx.roomId);
      this.drawPublish(r);
    } catch (e) {
      replace(
        this.publish,
        h('div', { class: 'section-title', style: 'margin-top:24px' }, 'Go live'),
        alertBox((e as ApiError).message),
      );
    }
  }

  private drawPublish(r: { publish_key: string; rtmp_url?: string; stream?: string }): void {
    const server = r.rtmp_url || defaultRtmpUrl(window.location.hostname);
    const key = r.publish_key;
    let shown = false;
    const keyInput = h('input', { class: 'input', readOnly: true, value: key, type: 'password', 'aria-label': 'Stream key' });
    const showBtn = h('button', { type: 'button', class: 'btn btn-icon', title: 'Show key', 'aria-label': 'Show key' }, icon('eye', 16));
    showBtn.addEventListener('click', () => {
      shown = !shown;
      keyInput.type = shown ? 'text' : 'password';
    });
    const rotate = h('button', { type: 'button', class: 'btn btn-danger btn-sm' }, icon('refresh', 14), 'New key');
    rotate.addEventListener('click', async () => {
      const ok = await confirmDialog('Create a new stream key?', 'The current key stops working; update it in your streaming software.', 'Create new key');
      if (!ok) return;
      try {
        this.drawPublish(await api.rotatePublishKey(this.ctx.roomId));
        toast('New stream key created.', 'ok');
      } catch (e) {
        toast((e as ApiError).message, 'error');
      }
    });
    const serverInput = h('input', { class: 'input', readOnly: true, value: server, 'aria-label': 'Server' });
    replace(
      this.publish,
      h('div', { class: 'section-title', style: 'margin-top:24px' }, 'Go live'),
      h(
        'ol',
        { class: 'steps' },
        h('li', null, 'In OBS, open Settings → Stream and choose “Custom”.'),
        h('li', null, 'Paste the server and the stream key below.'),
        h('li', null, 'Start streaming, then add the stream to the playlist.'),
      ),
      h('div', { class: 'label' }, 'Server'),
      h('div', { class: 'keybox' }, serverInput, h('button', { type: 'button', class: 'btn btn-icon', title: 'Copy', 'aria-label': 'Copy server', on: { click: () => void copyText(server) } }, icon('copy', 16))),
      h('div', { class: 'label' }, 'Stream key'),
      h(
        'div',
        { class: 'keybox' },
        keyInput,
        showBtn,
        h('button', { type: 'button', class: 'btn btn-icon', title: 'Copy', 'aria-label': 'Copy stream key', on: { click: () => void copyText(key) } }, icon('copy', 16)),
      ),
      h('div', { class: 'row', style: 'justify-content:space-between' }, h('span', { class: 'muted', style: 'font-size:12px' }, 'Keep the key secret: anyone with it can stream into this room.'), rotate),
    );
  }
}
