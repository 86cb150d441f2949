// The room itself once joined: player + controls bound to the room protocol, and the side
// panels (chat, playlist, people, settings).

import { session } from '../api';
import { setActive } from '../debug';
import { fmtTime, h, icon, replace } from '../dom';
import { type LiveProtocol, Player, sourceForItem } from '../player';
import { SyncEngine } from '../sync';
import type { PlaylistItem, RoomSummary, ServerMessage, Welcome } from '../types';
import { copyText, emptyState, toast } from '../ui';
import { ChatPanel } from './chat';
import { type RoomCtx, createCtx, describeChange } from './ctx';
import { MembersPanel } from './members';
import { PlaylistPanel } from './playlist';
import { SettingsPanel } from './settings';
import { RoomSocket, type SocketStatus } from './socket';

const RATES = [0.5, 0.75, 1, 1.25, 1.5, 2];
const LIVE_PROTO_KEY = 'castmesh.liveProtocol';

const ERROR_TEXT: Record<string, string> = {
  forbidden: 'You do not have permission to do that.',
  rate_limited: 'Slow down — you are sending too fast.',
  too_large: 'That message is too long.',
  not_found: 'That item no longer exists.',
  bad_message: 'The server did not accept that request.',
  bad_json: 'The server did not understand that request.',
  unavailable: 'The room is temporarily unavailable.',
  unknown_type: 'The server does not support that action.',
};

export interface RoomViewCallbacks {
  /// The socket could not be opened: re-check membership. Return false to stop retrying.
  failedToOpen(): Promise<boolean>;
  kicked(reason: string, untilMs: number): void;
  /// The server closed the room for good (4004: deleted).
  deleted(): void;
}

export class RoomView {
  readonly el: HTMLElement;
  private ctx: RoomCtx | null = null;
  private readonly engine: SyncEngine;
  private readonly player: Player;
  private readonly socket: RoomSocket;
  private liveProto: LiveProtocol = (localStorage.getItem(LIVE_PROTO_KEY) as LiveProtocol) === 'flv' ? 'flv' : 'hls';
  private loadedKey = '';
  private timers: number[] = [];
  private destroyed = false;
  private seekDragging = false;
  private lastVersionSeen = -1;

  // DOM
  private header = h('div', { class: 'room-header' });
  private connBadge = h('span', { class: 'conn' });
  private playerBox: HTMLElement;
  private overlay = h('div', { class: 'player-overlay' });
  private bufferingEl = h('div', { class: 'player-buffering' }, h('div', { class: 'spinner' }));
  private chips = h('div', { class: 'player-chip' });
  private playBtn = h('button', { class: 'btn btn-primary play-btn', 'aria-label': 'Play' });
  private nextBtn = h('button', { class: 'btn btn-ghost btn-icon', title: 'Next item', 'aria-label': 'Next item' }, icon('next', 18));
  private seek = h('input', { type: 'range', class: 'seek', min: '0', max: '0', step: '0.1', value: '0', 'aria-label': 'Position' });
  private time = h('span', { class: 'time' }, '0:00 / 0:00');
  private rateSel = h('select', { class: 'input select-sm', 'aria-label': 'Speed', title: 'Playback speed' });
  private protoSel = h('select', { class: 'input select-sm', 'aria-label': 'Live protocol', title: 'Live protocol' });
  private muteBtn = h('button', { class: 'btn btn-ghost btn-icon', 'aria-label': 'Mute', title: 'Mute' });
  private volume = h('input', { type: 'range', class: 'volume', min: '0', max: '1', step: '0.05', value: '1', 'aria-label': 'Volume' });
  private fsBtn = h('button', { class: 'btn btn-ghost btn-icon', title: 'Full screen', 'aria-label': 'Full screen' }, icon('expand', 17));
  private nowPlaying = h('div', { class: 'card now-playing' });
  private syncInfo = h('span', { class: 'sync-info' });
  private tabsEl = h('div', { class: 'tabs', role: 'tablist' });
  private sideBody = h('div', { class: 'side-body' });
  private chat: ChatPanel | null = null;
  private playlist: PlaylistPanel | null = null;
  private members: MembersPanel | null = null;
  private settings: SettingsPanel | null = null;
  private activeTab: 'chat' | 'playlist' | 'people' | 'settings' = 'chat';

  constructor(
    private readonly roomId: string,
    private summary: RoomSummary | null,
    private readonly cb: RoomViewCallbacks,
  ) {
    this.player = new Player();
    this.player.video.setAttribute('data-testid', 'room-video');
    this.player.onError = () => this.renderOverlay();
    this.engine = new SyncEngine({
      now: () => Date.now(),
      send: (m) => this.socket.send(m),
      media: () => (this.player.source ? this.player.video : null),
      liveEdge: () => this.player.liveEdge(),
      liveFloor: () => this.player.liveFloor(),
    });
    this.socket = new RoomSocket(roomId, {
      message: (m) => this.onMessage(m),
      status: (s, info) => this.onStatus(s, info),
      failedToOpen: () => this.cb.failedToOpen(),
      ping: () => this.engine.ping(),
    });

    this.playerBox = h('div', { class: 'player' }, this.player.video, this.bufferingEl, this.chips, this.overlay);
    this.bufferingEl.style.display = 'none';
    for (const r of RATES) this.rateSel.appendChild(h('option', { value: String(r) }, `${r}×`));
    this.protoSel.append(h('option', { value: 'hls' }, 'HLS'), h('option', { value: 'flv' }, 'HTTP-FLV'));
    this.protoSel.value = this.liveProto;

    const controls = h(
      'div',
      { class: 'controls' },
      this.playBtn,
      this.nextBtn,
      this.time,
      this.seek,
      this.protoSel,
      this.rateSel,
      this.muteBtn,
      this.volume,
      this.fsBtn,
    );

    const main = h('div', { class: 'room-main' }, this.header, this.playerBox, controls, this.nowPlaying);
    const side = h('aside', { class: 'card side' }, this.tabsEl, this.sideBody);
    this.el = h('div', { class: 'room-layout' }, main, side);

    this.wireControls();
    this.wireMedia();
    this.renderHeader(null);
    replace(this.sideBody, h('div', { class: 'panel' }, emptyState('radio', 'Connecting…', 'Joining the room.', null, true)));
    this.renderOverlay();
    this.renderControls();

    this.engine.on((e) => {
      if (e === 'state') this.onStateChanged();
      else if (e === 'playlist') {
        this.ensureSource();
        this.ctx?.emit('playlist');
        this.renderNowPlaying();
        this.renderTabs();
      } else if (e === 'autoplay-blocked') this.renderOverlay();
      else if (e === 'stale') toast('Someone else changed playback first — you are now in sync with them.', 'info', 3000);
    });

    setActive(this.engine, this.player.video, () => ({
      connected: this.ctx?.connected ?? false,
      live_protocol: this.liveProto,
      live_edge_s: this.player.liveEdge(),
      hls_fragments: this.engine.isLive() ? this.player.fragmentStarts() : null,
    }));
    this.socket.connect();
    this.timers.push(window.setInterval(() => this.engine.tick(), 250));
    this.timers.push(window.setInterval(() => this.renderProgress(), 250));
    this.timers.push(window.setInterval(() => this.renderSyncInfo(), 1000));
    document.addEventListener('keydown', this.onKey);
  }

  destroy(): void {
    this.destroyed = true;
    for (const t of this.timers) window.clearInterval(t);
    document.removeEventListener('keydown', this.onKey);
    this.socket.close();
    this.player.destroy();
    this.members?.destroy();
    setActive(null, null);
  }

  // ---- socket -------------------------------------------------------------------------------

  private onStatus(s: SocketStatus, info: { code?: number; openedOnce: boolean }): void {
    if (this.destroyed) return;
    if (this.destroyed) return;
    const connected = s === 'open';
    if (this.ctx) {
      this.ctx.connected = connected;
      this.ctx.emit('connection');
    }
    if (s === 'reconnecting' && info.code === 1008) toast('Disconnected for sending too fast. Reconnecting…', 'error');
    if (s === 'closed' && info.code === 4004) {
      this.cb.deleted();
      return;
    }
    this.renderConn(s);
    this.renderControls();
  }

  private onMessage(msg: ServerMessage): void {
    if (this.destroyed) return;
    if (msg.type === 'welcome') {
      this.onWelcome(msg);
      return;
    }
    const handled = this.engine.handle(msg);
    if (!this.ctx) return;
    switch (msg.type) {
      case 'state': {
        const item = this.engine.currentItem();
        if (msg.by?.user_id !== this.ctx.you.user_id) {
          const text = describeChange(msg.reason, msg.by?.username ?? null, item ? this.ctx.itemTitle(item) : null);
          if (text) this.chat?.event(text);
        }
        break;
      }
      case 'chat':
        this.chat?.add(msg.message);
        break;
      case 'presence':
        this.ctx.presence = msg.members ?? [];
        this.ctx.emit('presence');
        this.renderHeader(null);
        this.renderTabs();
        break;
      case 'member':
        if (msg.member.user_id === this.ctx.you.user_id) {
          this.ctx.you = { ...this.ctx.you, ...msg.member };
          this.ctx.emit('you');
          this.renderControls();
          this.renderTabs();
          toast(`Your role in this room is now ${msg.member.role}.`, 'info');
        }
        this.ctx.emit('member', msg.member);
        break;
      case 'kicked':
        this.cb.kicked(msg.reason, msg.until_ms);
        break;
      case 'error':
        if (!handled) toast(ERROR_TEXT[msg.code] ?? msg.message ?? 'Something went wrong.', 'error');
        break;
    }
  }

  private onWelcome(w: Welcome): void {
    const first = !this.ctx;
    if (first) {
      this.ctx = createCtx({
        roomId: this.roomId,
        room: w.room,
        summary: this.summary,
        you: w.you,
        engine: this.engine,
        send: (m) => this.socket.send(m),
      });
      this.ctx.connected = true;
      this.chat = new ChatPanel(this.ctx);
      this.playlist = new PlaylistPanel(this.ctx);
      this.members = new MembersPanel(this.ctx);
      this.settings = new SettingsPanel(this.ctx);
      this.ctx.on('room', () => this.renderHeader(null));
    } else {
      this.ctx!.room = w.room;
      this.ctx!.you = w.you;
      this.ctx!.connected = true;
      this.ctx!.emit('you');
      this.ctx!.emit('room');
    }
    const ctx = this.ctx!;
    ctx.presence = w.members ?? [];
    this.engine.welcome(w);
    this.chat!.setHistory(w.chat ?? []);
    ctx.emit('presence');
    ctx.emit('connection');
    this.renderHeader(null);
    this.renderTabs();
    this.renderControls();
  }

  // ---- state -> player ----------------------------------------------------------------------

  private onStateChanged(): void {
    const s = this.engine.state;
    if (s && s.version !== this.lastVersionSeen) this.lastVersionSeen = s.version;
    this.ensureSource();
    this.engine.tick();
    this.ctx?.emit('state');
    this.renderControls();
    this.renderNowPlaying();
    this.renderOverlay();
  }

  private ensureSource(): void {
    const item = this.engine.currentItem();
    const key = item ? `${item.id}|${item.kind}|${item.url}|${item.kind === 'live' ? this.liveProto : ''}` : '';
    if (key === this.loadedKey) return;
    this.loadedKey = key;
    if (!item) {
      this.player.unload();
    } else {
      void this.player.load(sourceForItem(item, this.liveProto));
    }
    this.renderOverlay();
    this.renderControls();
  }

  private wireMedia(): void {
    const v = this.player.video;
    for (const ev of ['loadstart', 'waiting', 'playing', 'canplay', 'canplaythrough', 'ended', 'loadedmetadata']) {
      v.addEventListener(ev, () => {
        if (!this.player.source) return;
        this.engine.mediaEvent(ev);
        if (ev === 'loadedmetadata' || ev === 'canplay') this.engine.tick();
        this.renderBuffering();
        if (ev === 'playing' || ev === 'loadedmetadata') this.renderOverlay();
      });
    }
    v.addEventListener('play', () => this.renderControls());
    v.addEventListener('pause', () => this.renderControls());
    v.addEventListener('volumechange', () => this.renderVolume());
    v.addEventListener('durationchange', () => this.renderProgress());
  }

  // ---- controls -----------------------------------------------------------------------------

  private wireControls(): void {
    this.playBtn.addEventListener('click', () => this.togglePlay());
    this.nextBtn.addEventListener('click', () => this.engine.next());
    this.seek.addEventListener('input', () => {
      this.seekDragging = true;
      this.renderTime(Number(this.seek.value));
    });
    this.seek.addEventListener('change', () => {
      this.seekDragging = false;
      this.engine.seek(Number(this.seek.value));
    });
    this.rateSel.addEventListener('change', () => this.engine.setRate(Number(this.rateSel.value)));
    this.protoSel.addEventListener('change', () => {
      this.liveProto = this.protoSel.value === 'flv' ? 'flv' : 'hls';
      localStorage.setItem(LIVE_PROTO_KEY, this.liveProto);
      this.ensureSource();
    });
    this.muteBtn.addEventListener('click', () => {
      this.player.video.muted = !this.player.video.muted;
    });
    this.volume.addEventListener('input', () => {
      this.player.video.volume = Number(this.volume.value);
      if (this.player.video.muted && Number(this.volume.value) > 0) this.player.video.muted = false;
    });
    this.fsBtn.addEventListener('click', () => {
      if (document.fullscreenElement) void document.exitFullscreen();
      else void this.playerBox.requestFullscreen?.();
    });
    this.player.video.addEventListener('dblclick', () => this.fsBtn.click());
    this.renderVolume();
  }

  private onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    if (document.querySelector('dialog[open]')) return;
    if (e.key === ' ' || e.key === 'k') {
      e.preventDefault();
      this.togglePlay();
    } else if (e.key === 'm') {
      this.player.video.muted = !this.player.video.muted;
    } else if (e.key === 'f') {
      this.fsBtn.click();
    }
  };

  private togglePlay(): void {
    const s = this.engine.state;
    if (!s || !this.ctx?.can('control_playback')) return;
    if (this.engine.autoplayBlocked) {
      this.unblockAutoplay();
      if (s.playing) return;
    }
    if (s.playing) this.engine.pause();
    else this.engine.play();
  }

  private unblockAutoplay(): void {
    // Runs inside a click: the browser allows play() now.
    const v = this.player.video;
    const p = v.play();
    if (p) {
      p.then(
        () => this.engine.retryAutoplay(),
        () => {
          v.muted = true;
          this.engine.retryAutoplay();
        },
      );
    }
    this.engine.autoplayBlocked = false;
    this.renderOverlay();
  }

  private renderControls(): void {
    const ctx = this.ctx;
    const s = this.engine.state;
    const item = this.engine.currentItem();
    const live = item?.kind === 'live';
    const canControl = !!ctx?.can('control_playback') && !!ctx?.connected;
    const canSeek = !!ctx?.can('seek') && !!ctx?.connected && !!item && !live;
    const playing = !!s?.playing;
    replace(this.playBtn, icon(playing ? 'pause' : 'play', 18));
    this.playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    this.playBtn.title = !ctx?.can('control_playback') ? 'You cannot control playback in this room' : playing ? 'Pause (space)' : 'Play (space)';
    this.playBtn.disabled = !canControl || !item;
    const items = this.engine.items;
    this.nextBtn.disabled = !canControl || items.length === 0;
    this.seek.disabled = !canSeek;
    this.seek.style.visibility = live ? 'hidden' : '';
    this.rateSel.disabled = !canControl || live || !item;
    this.rateSel.value = String(RATES.includes(s?.rate ?? 1) ? (s?.rate ?? 1) : 1);
    if (s && !RATES.includes(s.rate)) {
      // A rate set elsewhere: show it as an extra option.
      const v = String(s.rate);
      if (![...this.rateSel.options].some((o) => o.value === v)) this.rateSel.appendChild(h('option', { value: v }, `${s.rate}×`));
      this.rateSel.value = v;
    }
    this.protoSel.style.display = live ? '' : 'none';
    this.rateSel.style.display = live ? 'none' : '';
    this.renderChips();
    this.renderProgress();
  }

  private renderChips(): void {
    const item = this.engine.currentItem();
    const live = item?.kind === 'live';
    const s = this.engine.state;
    replace(
      this.chips,
      live ? h('span', { class: 'badge badge-live' }, 'LIVE') : null,
      s && !live && s.rate !== 1 ? h('span', { class: 'badge' }, `${s.rate}×`) : null,
    );
  }

  private renderVolume(): void {
    const v = this.player.video;
    replace(this.muteBtn, icon(v.muted || v.volume === 0 ? 'mute' : 'volume', 17));
    this.muteBtn.setAttribute('aria-label', v.muted ? 'Unmute' : 'Mute');
    this.muteBtn.title = v.muted ? 'Unmute (m)' : 'Mute (m)';
    this.volume.value = String(v.muted ? 0 : v.volume);
  }

  private renderProgress(): void {
    const item = this.engine.currentItem();
    const v = this.player.video;
    if (!item) {
      this.seek.max = '0';
      this.seek.value = '0';
      replace(this.time, '0:00 / 0:00');
      return;
    }
    if (item.kind === 'live') {
      const lat = this.player.latency();
      replace(this.time, lat === null ? 'LIVE' : `LIVE −${lat.toFixed(1)}s`);
      return;
    }
    const dur = Number.isFinite(v.duration) ? v.duration : 0;
    this.seek.max = String(dur || 0);
    if (!this.seekDragging) {
      const pos = this.player.source && v.readyState >= 1 ? v.currentTime : (this.engine.roomPosition() ?? 0);
      this.seek.value = String(Math.min(pos, dur || pos));
      this.renderTime(pos);
    }
    this.renderBuffering();
  }

  private renderTime(pos: number): void {
    const v = this.player.video;
    const dur = Number.isFinite(v.duration) ? v.duration : 0;
    replace(this.time, `${fmtTime(pos)} / ${dur ? fmtTime(dur) : '–:––'}`);
  }

  private renderBuffering(): void {
    const v = this.player.video;
    const s = this.engine.state;
    const show = !!this.player.source && !this.player.error && !!s?.playing && (v.readyState < 3 || v.seeking) && !this.engine.autoplayBlocked;
    this.bufferingEl.style.display = show ? '' : 'none';
  }

  private renderOverlay(): void {
    const item = this.engine.currentItem();
    const ctx = this.ctx;
    let content: Element[] | null = null;
    let cls = 'player-overlay';
    if (!ctx) {
      content = [h('div', { class: 'spinner' }), h('p', null, 'Connecting to the room…')];
    } else if (!item) {
      const hasItems = this.engine.items.length > 0;
      content = [
        icon('film', 36),
        h('h3', null, hasItems ? 'Nothing is playing' : 'The playlist is empty'),
        h(
          'p',
          null,
          hasItems
            ? ctx.can('control_playback')
              ? 'Pick an item in the playlist to start watching together.'
              : 'Waiting for someone to start the playlist.'
            : ctx.can('manage_playlist')
              ? 'Add a video address or a live stream in the Playlist tab.'
              : 'Waiting for someone to add a video.',
        ),
      ];
      if (hasItems && ctx.can('control_playback')) {
        const first = [...this.engine.items].sort((a, b) => a.position - b.position)[0];
        content.push(
          h('button', { class: 'btn btn-primary', on: { click: () => this.engine.setItem(first.id) } }, icon('play', 16), 'Start the playlist'),
        );
      } else if (!hasItems && ctx.can('manage_playlist')) {
        content.push(h('button', { class: 'btn btn-primary', on: { click: () => this.showTab('playlist') } }, icon('plus', 16), 'Add a video'));
      }
    } else if (this.player.error) {
      cls += ' error';
      content = [icon('alert', 34), h('h3', null, 'Playback problem'), h('p', null, this.player.error)];
    } else if (this.engine.autoplayBlocked) {
      content = [
        h('button', { class: 'btn btn-primary', style: 'height:48px;padding:0 22px;font-size:15px', on: { click: () => this.unblockAutoplay() } }, icon('play', 18), 'Join playback'),
        h('p', null, 'The room is playing. Your browser needs a click before it plays sound.'),
      ];
    }
    if (content) {
      this.overlay.className = cls;
      replace(this.overlay, ...content);
      this.overlay.style.display = '';
    } else {
      replace(this.overlay);
      this.overlay.style.display = 'none';
    }
    this.renderBuffering();
  }

  private renderNowPlaying(): void {
    const item = this.engine.currentItem();
    const ctx = this.ctx;
    if (!item || !ctx) {
      replace(
        this.nowPlaying,
        h('div', { class: 'grow' }, h('div', { class: 'np-title' }, 'Nothing playing'), h('div', { class: 'np-sub' }, `${this.engine.items.length} in the playlist`)),
        this.syncInfo,
      );
      return;
    }
    const items = [...this.engine.items].sort((a, b) => a.position - b.position);
    const idx = items.findIndex((i) => i.id === item.id);
    const next: PlaylistItem | undefined = items[idx + 1];
    const change = this.engine.lastChange;
    const by = change?.by?.username;
    const sub: string[] = [];
    sub.push(`${idx + 1} of ${items.length}`);
    if (next) sub.push(`Up next: ${ctx.itemTitle(next)}`);
    if (by) sub.push(`Last change by ${by}`);
    replace(
      this.nowPlaying,
      h(
        'div',
        { class: 'grow', style: 'min-width:0' },
        h('div', { class: 'np-title ellipsis' }, ctx.itemTitle(item)),
        h('div', { class: 'np-sub ellipsis' }, sub.join(' · ')),
      ),
      this.syncInfo,
    );
  }

  private renderSyncInfo(): void {
    const d = this.engine.lastDrift;
    const rtt = this.engine.clock.rttMs;
    const parts: string[] = [];
    if (d !== null && this.engine.state?.playing) parts.push(`drift ${d >= 0 ? '+' : ''}${(d * 1000).toFixed(0)} ms`);
    if (rtt !== null) parts.push(`rtt ${rtt.toFixed(0)} ms`);
    replace(this.syncInfo, parts.join(' · '));
    this.syncInfo.title = 'Distance from the room position and round trip to the server';
  }

  private renderConn(s: SocketStatus): void {
    const label = s === 'open' ? 'Connected' : s === 'closed' ? 'Disconnected' : s === 'connecting' ? 'Connecting…' : 'Reconnecting…';
    replace(this.connBadge, h('span', { class: `dot${s === 'open' ? ' dot-on' : ''}` }), label);
  }

  private renderHeader(_: null): void {
    const name = this.ctx?.room.name ?? this.summary?.name ?? 'Room';
    const online = this.ctx?.presence.length ?? this.summary?.online ?? 0;
    replace(
      this.header,
      h(
        'div',
        { style: 'min-width:0' },
        h(
          'h1',
          null,
          h('span', { class: 'ellipsis' }, name),
          this.summary?.has_password ? h('span', { title: 'Password protected', style: 'color:var(--warn);display:inline-flex' }, icon('lock', 17)) : null,
        ),
        h('div', { class: 'row', style: 'margin-top:4px;gap:14px' }, this.connBadge, h('span', { class: 'conn' }, icon('users', 14), `${online} here`)),
      ),
      h(
        'div',
        { class: 'row' },
        h('button', { class: 'btn btn-sm', on: { click: () => void copyText(window.location.href) } }, icon('link', 15), 'Copy invite link'),
        session.user?.role === 'guest' ? null : h('a', { class: 'btn btn-ghost btn-sm', href: '/' }, icon('door', 15), 'Leave'),
      ),
    );
    document.title = `${name} · castmesh`;
  }

  // ---- side tabs ----------------------------------------------------------------------------

  private showTab(tab: 'chat' | 'playlist' | 'people' | 'settings'): void {
    this.activeTab = tab;
    this.renderTabs();
    if (tab === 'chat') this.chat?.shown();
  }

  private renderTabs(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const showSettings = ctx.isRoomAdmin() || ctx.can('manage_members') || ctx.can('manage_live');
    if (!showSettings && this.activeTab === 'settings') this.activeTab = 'chat';
    const tab = (id: typeof this.activeTab, label: string, count?: number) =>
      h(
        'button',
        {
          type: 'button',
          class: `tab${this.activeTab === id ? ' active' : ''}`,
          role: 'tab',
          'aria-selected': String(this.activeTab === id),
          dataset: { tab: id },
          on: { click: () => this.showTab(id) },
        },
        h('span', null, label),
        count !== undefined ? h('span', { class: 'count' }, String(count)) : null,
      );
    replace(
      this.tabsEl,
      tab('chat', 'Chat'),
      tab('playlist', 'Playlist', this.engine.items.length),
      tab('people', 'People', ctx.presence.length),
      showSettings ? tab('settings', 'Settings') : null,
    );
    const panels: [typeof this.activeTab, HTMLElement][] = [
      ['chat', this.chat!.el],
      ['playlist', this.playlist!.el],
      ['people', this.members!.el],
      ['settings', this.settings!.el],
    ];
    if (this.sideBody.childElementCount !== panels.length || !this.sideBody.contains(this.chat!.el)) {
      replace(this.sideBody, ...panels.map(([, el]) => el));
    }
    for (const [id, el] of panels) el.style.display = id === this.activeTab ? '' : 'none';
  }
}
