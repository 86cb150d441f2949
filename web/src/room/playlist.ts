// Playlist panel: add a URL or one of the server's live streams, remove, reorder (drag and
// drop or the up/down buttons), play an item. All changes go over the room socket.

import { api } from '../api';
import { h, icon, replace } from '../dom';
import { kindOfUrl } from '../player';
import type { PlaylistItem, StreamInfo } from '../types';
import { ErrorSlot, emptyState } from '../ui';
import type { RoomCtx } from './ctx';

export function validateMediaUrl(raw: string): string | null {
  const url = raw.trim();
  if (!url) return 'Paste the address of a video (.m3u8, .mp4, .flv…).';
  if (url.length > 2048) return 'That address is too long.';
  if (url.startsWith('/')) return null;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'Only http:// and https:// addresses can be played.';
  } catch {
    return 'That does not look like a valid address.';
  }
  return null;
}

export class PlaylistPanel {
  readonly el: HTMLElement;
  private list: HTMLElement;
  private addBox: HTMLElement;
  private urlInput: HTMLInputElement;
  private titleInput: HTMLInputElement;
  private liveSelect: HTMLSelectElement;
  private liveAdd: HTMLButtonElement;
  private error = new ErrorSlot();
  private dragId: number | null = null;
  private streams: StreamInfo[] = [];

  constructor(private readonly ctx: RoomCtx) {
    this.urlInput = h('input', {
      class: 'input',
      placeholder: 'https://example.com/video.m3u8',
      'aria-label': 'Video address',
      spellcheck: 'false',
    });
    this.titleInput = h('input', { class: 'input', placeholder: 'Title (optional)', maxlength: '200', 'aria-label': 'Title' });
    const addBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, icon('plus', 16), 'Add');
    const urlForm = h(
      'form',
      {
        class: 'pl-add',
        on: {
          submit: (ev: SubmitEvent) => {
            ev.preventDefault();
            const problem = validateMediaUrl(this.urlInput.value);
            if (problem) return this.error.set(problem);
            this.error.set(null);
            const title = this.titleInput.value.trim();
            this.ctx.send({ type: 'playlist_add', kind: 'url', url: this.urlInput.value.trim(), ...(title ? { title } : {}) });
            this.urlInput.value = '';
            this.titleInput.value = '';
          },
        },
      },
      this.error.el,
      this.urlInput,
      h('div', { class: 'row' }, h('div', { class: 'grow' }, this.titleInput), addBtn),
    );
    this.liveSelect = h('select', { class: 'input', 'aria-label': 'Live stream' });
    this.liveAdd = h('button', { type: 'button', class: 'btn' }, icon('radio', 16), 'Add live');
    this.liveAdd.addEventListener('click', () => {
      const v = this.liveSelect.value;
      if (!v) return;
      this.ctx.send({ type: 'playlist_add', kind: 'live', url: v, title: `Live: ${v}` });
    });
    this.liveSelect.addEventListener('focus', () => void this.loadStreams());
    this.addBox = h(
      'div',
      { class: 'panel-foot', style: 'border-top:0;border-bottom:1px solid var(--border)' },
      urlForm,
      h('div', { class: 'row', style: 'margin-top:8px' }, h('div', { class: 'grow' }, this.liveSelect), this.liveAdd),
    );
    this.list = h('div', { class: 'panel-scroll', role: 'list' });
    this.el = h('div', { class: 'panel' }, this.addBox, this.list);

    ctx.on('playlist', () => this.render());
    ctx.on('state', () => this.render());
    ctx.on('you', () => this.render());
    void this.loadStreams();
    this.render();
  }

  private async loadStreams(): Promise<void> {
    try {
      const r = await api.streams();
      this.streams = (r.streams ?? []).filter((s) => s.publishing !== false);
    } catch {
      this.streams = [];
    }
    const cur = this.liveSelect.value;
    replace(
      this.liveSelect,
      h('option', { value: '' }, this.streams.length ? 'Pick a live stream…' : 'No live streams right now'),
      ...this.streams.map((s) => h('option', { value: `${s.app}/${s.stream}` }, `${s.app}/${s.stream}`)),
    );
    if (cur && this.streams.some((s) => `${s.app}/${s.stream}` === cur)) this.liveSelect.value = cur;
    this.liveSelect.disabled = this.streams.length === 0;
    this.liveAdd.disabled = this.streams.length === 0;
  }

  private render(): void {
    const canManage = this.ctx.can('manage_playlist');
    const canControl = this.ctx.can('control_playback');
    this.addBox.style.display = canManage ? '' : 'none';
    const items = [...this.ctx.engine.items].sort((a, b) => a.position - b.position);
    const currentId = this.ctx.engine.state?.item_id ?? 0;
    if (items.length === 0) {
      replace(
        this.list,
        emptyState(
          'list',
          'The playlist is empty',
          canManage ? 'Add a video address or a live stream above.' : 'Waiting for someone to add a video.',
          null,
          true,
        ),
      );
      return;
    }
    replace(
      this.list,
      ...items.map((item, i) => this.row(item, i, items, item.id === currentId, canManage, canControl)),
    );
  }

  private move(items: PlaylistItem[], from: number, to: number): void {
    if (to < 0 || to >= items.length || from === to) return;
    const ids = items.map((i) => i.id);
    const [id] = ids.splice(from, 1);
    ids.splice(to, 0, id);
    this.ctx.send({ type: 'playlist_move', item_ids: ids });
  }

  private row(
    item: PlaylistItem,
    index: number,
    items: PlaylistItem[],
    current: boolean,
    canManage: boolean,
    canControl: boolean,
  ): HTMLElement {
    const kind = item.kind === 'live' ? 'LIVE' : kindOfUrl(item.url) === 'hls' ? 'HLS' : kindOfUrl(item.url) === 'flv' ? 'FLV' : 'VIDEO';
    const main = h(
      'div',
      {
        class: 'pl-main',
        title: canControl ? 'Play this now' : item.url,
        on: {
          click: () => {
            if (canControl && !current) this.ctx.engine.setItem(item.id);
          },
        },
      },
      h('div', { class: 'pl-title ellipsis' }, this.ctx.itemTitle(item)),
      h(
        'div',
        { class: 'row' },
        h('span', { class: `badge${item.kind === 'live' ? ' badge-live' : ''}`, style: 'height:18px;font-size:10px' }, kind),
        h('span', { class: 'pl-url ellipsis' }, item.url),
      ),
    );
    const actions = canManage
      ? h(
          'div',
          { class: 'pl-actions' },
          h(
            'button',
            {
              class: 'btn btn-ghost btn-icon btn-sm',
              title: 'Move up',
              'aria-label': 'Move up',
              disabled: index === 0,
              on: { click: () => this.move(items, index, index - 1) },
            },
            icon('up', 15),
          ),
          h(
            'button',
            {
              class: 'btn btn-ghost btn-icon btn-sm',
              title: 'Move down',
              'aria-label': 'Move down',
              disabled: index === items.length - 1,
              on: { click: () => this.move(items, index, index + 1) },
            },
            icon('down', 15),
          ),
          h(
            'button',
            {
              class: 'btn btn-ghost btn-icon btn-sm',
              title: 'Remove',
              'aria-label': 'Remove',
              on: { click: () => this.ctx.send({ type: 'playlist_remove', item_id: item.id }) },
            },
            icon('trash', 15),
          ),
        )
      : null;
    const row = h(
      'div',
      {
        class: `pl-item${current ? ' current' : ''}`,
        role: 'listitem',
        draggable: canManage ? 'true' : undefined,
        dataset: { itemId: String(item.id) },
        'aria-current': current ? 'true' : undefined,
      },
      canManage ? h('span', { class: 'pl-grip', title: 'Drag to reorder' }, icon('grip', 16)) : null,
      h('span', { class: 'pl-index' }, current ? icon('play', 12) : String(index + 1)),
      main,
      actions,
    );
    if (canManage) {
      row.addEventListener('dragstart', (e) => {
        this.dragId = item.id;
        row.classList.add('dragging');
        e.dataTransfer?.setData('text/plain', String(item.id));
        if (e.dataTransfer) e.dataTransfer.effectAllowed = 'move';
      });
      row.addEventListener('dragend', () => {
        this.dragId = null;
        row.classList.remove('dragging');
        this.list.querySelectorAll('.drop-before, .drop-after').forEach((n) => n.classList.remove('drop-before', 'drop-after'));
      });
      row.addEventListener('dragover', (e) => {
        if (this.dragId === null || this.dragId === item.id) return;
        e.preventDefault();
        const r = row.getBoundingClientRect();
        const after = e.clientY > r.top + r.height / 2;
        row.classList.toggle('drop-after', after);
        row.classList.toggle('drop-before', !after);
      });
      row.addEventListener('dragleave', () => row.classList.remove('drop-before', 'drop-after'));
      row.addEventListener('drop', (e) => {
        e.preventDefault();
        row.classList.remove('drop-before', 'drop-after');
        if (this.dragId === null || this.dragId === item.id) return;
        const from = items.findIndex((i) => i.id === this.dragId);
        const r = row.getBoundingClientRect();
        const after = e.clientY > r.top + r.height / 2;
        let to = index + (after ? 1 : 0);
        if (from < to) to--;
        this.move(items, from, to);
      });
    }
    return row;
  }
}
