// Chat panel. Message text is inserted as text nodes only.

import { avatar, fmtClock, h, icon, replace } from '../dom';
import type { ChatMessage } from '../types';
import { emptyState } from '../ui';
import type { RoomCtx } from './ctx';

const MAX_CHAT = 2000;
const KEEP = 300;

export class ChatPanel {
  readonly el: HTMLElement;
  private list: HTMLElement;
  private scroller: HTMLElement;
  private input: HTMLInputElement;
  private sendBtn: HTMLButtonElement;
  private last: { user_id: number; at: number } | null = null;
  private count = 0;
  private empty: HTMLElement;

  constructor(private readonly ctx: RoomCtx) {
    this.list = h('div', { class: 'chat-list', 'aria-live': 'polite' });
    this.empty = emptyState('chat', 'No messages yet', 'Say hello to everyone in the room.', null, true);
    this.scroller = h('div', { class: 'panel-scroll' }, this.empty, this.list);
    this.input = h('input', {
      class: 'input',
      placeholder: 'Message the room…',
      maxlength: String(MAX_CHAT),
      autocomplete: 'off',
      'aria-label': 'Chat message',
    });
    this.sendBtn = h('button', { type: 'submit', class: 'btn btn-primary btn-icon', 'aria-label': 'Send', title: 'Send' }, icon('chat', 16));
    const form = h(
      'form',
      {
        class: 'chat-form',
        on: {
          submit: (ev: SubmitEvent) => {
            ev.preventDefault();
            const text = this.input.value.trim();
            if (!text || !this.ctx.can('chat')) return;
            this.ctx.send({ type: 'chat', text: text.slice(0, MAX_CHAT) });
            this.input.value = '';
          },
        },
      },
      this.input,
      this.sendBtn,
    );
    this.el = h('div', { class: 'panel' }, this.scroller, h('div', { class: 'panel-foot' }, form));
    ctx.on('you', () => this.updatePermission());
    ctx.on('connection', () => this.updatePermission());
    this.updatePermission();
  }

  private updatePermission(): void {
    const ok = this.ctx.can('chat') && this.ctx.connected;
    this.input.disabled = !ok;
    this.sendBtn.disabled = !ok;
    this.input.placeholder = !this.ctx.can('chat')
      ? 'You cannot chat in this room'
      : this.ctx.connected
        ? 'Message the room…'
        : 'Reconnecting…';
  }

  setHistory(messages: ChatMessage[]): void {
    replace(this.list);
    this.last = null;
    this.count = 0;
    for (const m of messages) this.add(m, false);
    this.toggleEmpty();
    this.scrollToEnd(true);
  }

  /// The panel became visible: keep the newest message in view.
  shown(): void {
    if (this.el.style.display !== 'none') this.scrollToEnd(true);
  }

  private toggleEmpty(): void {
    this.empty.style.display = this.count === 0 ? '' : 'none';
  }

  private nearBottom(): boolean {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  private scrollToEnd(force = false): void {
    if (force || this.nearBottom()) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  add(m: ChatMessage, scroll = true): void {
    const stick = this.nearBottom();
    const cont = this.last && this.last.user_id === m.user_id && m.created_at_ms - this.last.at < 3 * 60_000;
    const mine = m.user_id === this.ctx.you.user_id;
    const row = h(
      'div',
      { class: `chat-msg${cont ? ' cont' : ''}${mine ? ' mine' : ''}`, dataset: { id: String(m.id) } },
      avatar(m.username, 30),
      h(
        'div',
        { class: 'body' },
        cont
          ? null
          : h(
              'div',
              { class: 'who' },
              h('b', null, m.username),
              h('time', { datetime: new Date(m.created_at_ms).toISOString() }, fmtClock(m.created_at_ms)),
            ),
        h('div', { class: 'text' }, m.text),
      ),
    );
    this.list.appendChild(row);
    this.last = { user_id: m.user_id, at: m.created_at_ms };
    this.count++;
    while (this.list.childElementCount > KEEP) this.list.firstElementChild?.remove();
    this.toggleEmpty();
    if (scroll) this.scrollToEnd(stick);
  }

  /// A small activity line (e.g. "alice paused").
  event(text: string): void {
    const stick = this.nearBottom();
    this.list.appendChild(h('div', { class: 'chat-event' }, text));
    this.last = null;
    this.scrollToEnd(stick);
  }
}
