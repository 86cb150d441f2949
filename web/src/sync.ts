// Playback synchronisation for a room (docs/protocol.md, "Client sync algorithm").
//
// The engine owns no DOM: it talks to a media element through `SyncMedia` and to the room
// socket through `SyncHost.send`, so every rule here is unit-tested with a fake media element
// and a fake clock (sync.test.ts).

import type { PlaybackState, PlaylistItem, ServerMessage, Welcome } from './types';

/// |drift| above this many seconds: seek.
export const SEEK_THRESHOLD_S = 1;
/// |drift| above this many seconds (and up to SEEK_THRESHOLD_S): nudge playbackRate.
export const NUDGE_THRESHOLD_S = 0.05;
/// How many pong samples the clock estimator keeps.
export const CLOCK_SAMPLES = 10;
/// Default distance behind the live edge until the server says otherwise (`live` message).
export const DEFAULT_LIVE_OFFSET_S = 3;

export function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/// The server position of `state` at server time `serverNowMs` (seconds, never negative).
export function extrapolate(state: PlaybackState, serverNowMs: number): number {
  if (!state.playing) return Math.max(0, state.position_s);
  const elapsed = (serverNowMs - state.updated_at_ms) / 1000;
  return Math.max(0, state.position_s + elapsed * state.rate);
}

/// Estimates `server clock - local clock` from ping/pong round trips: the sample with the
/// smallest round trip among the last CLOCK_SAMPLES wins.
export class ClockSync {
  private samples: { rtt: number; offset: number }[] = [];
  private seed: number | null = null;

  constructor(private readonly keep = CLOCK_SAMPLES) {}

  /// A rough offset from a server timestamp received without a matching ping (e.g. welcome).
  /// Used only until the first pong arrives.
  seedFrom(serverTimeMs: number, nowMs: number): void {
    this.seed = serverTimeMs - nowMs;
  }

  /// Records one pong: `t` is the client time the ping was sent with, `nowMs` the time it came back.
  addPong(t: number, serverTimeMs: number, nowMs: number): void {
    const rtt = nowMs - t;
    if (!Number.isFinite(rtt) || rtt < 0 || !Number.isFinite(serverTimeMs)) return;
    this.samples.push({ rtt, offset: serverTimeMs + rtt / 2 - nowMs });
    if (this.samples.length > this.keep) this.samples.shift();
  }

  private best(): { rtt: number; offset: number } | null {
    let best: { rtt: number; offset: number } | null = null;
    for (const s of this.samples) if (!best || s.rtt < best.rtt) best = s;
    return best;
  }

  /// Milliseconds to add to the local clock to get server time.
  get offsetMs(): number {
    return this.best()?.offset ?? this.seed ?? 0;
  }

  /// Round trip of the sample in use, or null before the first pong.
  get rttMs(): number | null {
    return this.best()?.rtt ?? null;
  }

  get sampleCount(): number {
    return this.samples.length;
  }

  serverNow(localNowMs: number): number {
    return localNowMs + this.offsetMs;
  }
}

export type CorrectionKind = 'seek' | 'nudge' | 'hold';

export interface Correction {
  kind: CorrectionKind;
  /// local - target, seconds (positive: ahead of the room).
  drift: number;
  seekTo?: number;
  playbackRate: number;
}

/// Step 3 of the algorithm: what to do about `local` vs `target` at room rate `rate`.
/// `force` (after a state change) seeks whenever the drift is above the nudge band.
export function decideCorrection(local: number, target: number, rate: number, force = false): Correction {
  const drift = local - target;
  const abs = Math.abs(drift);
  if (abs > SEEK_THRESHOLD_S || (force && abs > NUDGE_THRESHOLD_S)) {
    return { kind: 'seek', drift, seekTo: target, playbackRate: rate };
  }
  if (abs > NUDGE_THRESHOLD_S) {
    return { kind: 'nudge', drift, playbackRate: rate * (1 - clamp(drift, -0.5, 0.5) * 0.5) };
  }
  return { kind: 'hold', drift, playbackRate: rate };
}

/// The subset of HTMLMediaElement the engine drives.
export interface SyncMedia {
  currentTime: number;
  playbackRate: number;
  readonly paused: boolean;
  readonly seeking: boolean;
  readonly ended: boolean;
  readonly readyState: number;
  readonly duration: number;
  play(): Promise<void> | void;
  pause(): void;
}

export interface SyncHost {
  /// Local wall clock in Unix ms.
  now(): number;
  /// Sends one protocol message (a JSON object) on the room socket.
  send(msg: Record<string, unknown>): void;
  /// The media element playing the current item, or null while none is loaded.
  media(): SyncMedia | null;
  /// For live items: the media time of the reference live position (hls.js liveSyncPosition,
  /// else the end of the seekable/buffered range); null when unknown.
  liveEdge(): number | null;
  /// For live items: the earliest playable media time (start of the seekable or buffered
  /// range); the live target never goes below it. Optional.
  liveFloor?(): number | null;
}

export type SyncEvent = 'state' | 'playlist' | 'live' | 'autoplay-blocked' | 'stale';

export interface SyncOptions {
  /// After a drift seek, further drift seeks wait this long (ms) unless the room state changes.
  seekCooldownMs: number;
  /// How often a live client reports its live offset (ms).
  liveReportMs: number;
}

const HAVE_METADATA = 1;
const HAVE_FUTURE_DATA = 3;

export class SyncEngine {
  readonly clock = new ClockSync();
  state: PlaybackState | null = null;
  items: PlaylistItem[] = [];
  liveTargetOffsetS = DEFAULT_LIVE_OFFSET_S;
  /// Last measured drift in seconds (local - target), null when not measurable.
  lastDrift: number | null = null;
  lastCorrection: Correction | null = null;
  /// The browser refused to start playback without a user gesture.
  autoplayBlocked = false;
  /// Who made the last state change and why (for the UI).
  lastChange: { by: { user_id: number; username: string } | null; reason: string } | null = null;

  private forceSeek = false;
  private lastSeekAt = -Infinity;
  private bufferingSent: boolean | null = null;
  private endedSentFor: number | null = null;
  private lastLiveReportAt = -Infinity;
  private playInFlight = false;
  private listeners = new Set<(e: SyncEvent) => void>();
  private readonly opts: SyncOptions;

  constructor(
    private readonly host: SyncHost,
    opts: Partial<SyncOptions> = {},
  ) {
    this.opts = { seekCooldownMs: 1500, liveReportMs: 5000, ...opts };
  }

  on(fn: (e: SyncEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: SyncEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  // ---- incoming ---------------------------------------------------------------------------

  welcome(w: Welcome): void {
    this.clock.seedFrom(w.server_time_ms, this.host.now());
    this.items = [...(w.playlist?.items ?? [])];
    this.state = null;
    this.adopt(w.state, { by: null, reason: 'welcome' });
    this.emit('playlist');
  }

  /// Handles the sync-related server messages; returns true when `msg` was one of them.
  handle(msg: ServerMessage): boolean {
    switch (msg.type) {
      case 'welcome':
        this.welcome(msg);
        return true;
      case 'state':
        this.adopt(msg.state, { by: msg.by, reason: msg.reason });
        return true;
      case 'pong':
        this.clock.addPong(msg.t, msg.server_time_ms, this.host.now());
        return true;
      case 'playlist':
        this.items = [...msg.items];
        this.emit('playlist');
        return true;
      case 'live':
        if (Number.isFinite(msg.target_offset_s) && msg.target_offset_s >= 0) {
          this.liveTargetOffsetS = msg.target_offset_s;
          this.forceSeek = true;
          this.emit('live');
        }
        return true;
      case 'error':
        if (msg.code === 'stale_version' && msg.state) {
          this.adopt(msg.state, { by: null, reason: 'stale_version' }, true);
          this.emit('stale');
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  /// Takes over a server state. Older versions than the one held are ignored unless `always`
  /// (a stale_version reply carries the current state, which always wins).
  adopt(
    s: PlaybackState,
    change: { by: { user_id: number; username: string } | null; reason: string },
    always = false,
  ): void {
    if (!s) return;
    if (!always && this.state && s.version < this.state.version) return;
    if (this.state && this.state.item_id !== s.item_id) {
      this.endedSentFor = null;
      this.lastDrift = null;
    }
    this.state = { ...s };
    this.lastChange = change;
    this.forceSeek = true;
    this.emit('state');
  }

  // ---- derived ----------------------------------------------------------------------------

  currentItem(): PlaylistItem | null {
    if (!this.state || !this.state.item_id) return null;
    return this.items.find((i) => i.id === this.state!.item_id) ?? null;
  }

  isLive(): boolean {
    return this.currentItem()?.kind === 'live';
  }

  serverNow(): number {
    return this.clock.serverNow(this.host.now());
  }

  /// The room position right now for on-demand items (seconds), null without a state.
  roomPosition(): number | null {
    return this.state ? extrapolate(this.state, this.serverNow()) : null;
  }

  /// Where the local media should be right now (media seconds), null when unknown.
  target(): number | null {
    if (!this.state) return null;
    if (this.isLive()) {
      const edge = this.host.liveEdge();
      if (edge === null || !Number.isFinite(edge)) return null;
      const floor = this.host.liveFloor?.() ?? null;
      let t = edge - this.liveTargetOffsetS;
      if (floor !== null && Number.isFinite(floor) && floor <= edge) t = Math.max(t, floor);
      return Math.max(0, t);
    }
    let t = extrapolate(this.state, this.serverNow());
    const m = this.host.media();
    if (m && Number.isFinite(m.duration) && m.duration > 0) t = Math.min(t, m.duration);
    return t;
  }

  // ---- outgoing commands ------------------------------------------------------------------

  /// Sends `type` with the last seen version. Returns false when there is no state yet.
  command(type: string, extra: Record<string, unknown> = {}): boolean {
    if (!this.state) return false;
    this.host.send({ type, version: this.state.version, ...extra });
    return true;
  }

  play(): boolean {
    this.autoplayBlocked = false;
    return this.command('play');
  }

  pause(): boolean {
    const m = this.host.media();
    if (m && !this.isLive() && m.readyState >= HAVE_METADATA && Number.isFinite(m.currentTime)) {
      return this.command('pause', { position_s: round3(m.currentTime) });
    }
    return this.command('pause');
  }

  seek(positionS: number): boolean {
    return this.command('seek', { position_s: round3(Math.max(0, positionS)) });
  }

  setRate(rate: number): boolean {
    return this.command('rate', { rate: clamp(rate, 0.25, 4) });
  }

  next(): boolean {
    return this.command('next');
  }

  setItem(itemId: number): boolean {
    return this.command('set_item', { item_id: itemId });
  }

  ping(): void {
    this.host.send({ type: 'ping', t: this.host.now() });
  }

  /// Reports local buffering; only changes are sent.
  reportBuffering(buffering: boolean): void {
    if (this.bufferingSent === buffering) return;
    if (this.bufferingSent === null && !buffering) {
      this.bufferingSent = false;
      return;
    }
    this.bufferingSent = buffering;
    this.host.send({ type: 'buffering', buffering });
  }

  get buffering(): boolean {
    return this.bufferingSent === true;
  }

  /// Reports that the current item ended locally (once per item).
  reportEnded(): void {
    const item = this.currentItem();
    if (!item || item.kind === 'live' || this.endedSentFor === item.id) return;
    this.endedSentFor = item.id;
    this.host.send({ type: 'ended', item_id: item.id });
  }

  /// Feeds HTMLMediaElement events that matter for the protocol.
  mediaEvent(name: string): void {
    switch (name) {
      case 'loadstart':
        // A new source: this client is not ready until it can play.
        this.bufferingSent = null;
        this.reportBuffering(true);
        this.forceSeek = true;
        break;
      case 'waiting':
        this.reportBuffering(true);
        break;
      case 'playing':
      case 'canplay':
      case 'canplaythrough':
        this.reportBuffering(false);
        break;
      case 'ended':
        this.reportEnded();
        break;
      case 'loadedmetadata':
        this.forceSeek = true;
        break;
    }
  }

  /// Called after a user gesture unblocked autoplay (e.g. the page muted the player).
  retryAutoplay(): void {
    this.autoplayBlocked = false;
    this.tick();
  }

  // ---- the loop ---------------------------------------------------------------------------

  /// One correction step; the page calls it every 250 ms and after every state change.
  tick(): void {
    const m = this.host.media();
    const s = this.state;
    if (!m || !s) return;
    const item = this.currentItem();
    if (!item) {
      if (!m.paused) m.pause();
      this.lastDrift = null;
      return;
    }
    const live = item.kind === 'live';
    const rate = live ? 1 : s.rate;
    const now = this.host.now();

    if (this.bufferingSent === true && m.readyState >= HAVE_FUTURE_DATA && !m.seeking) {
      this.reportBuffering(false);
    }

    if (!s.playing) {
      if (!m.paused) m.pause();
      if (m.playbackRate !== rate) m.playbackRate = rate;
      if (live) {
        this.lastDrift = null;
        return;
      }
    }
    if (m.readyState < HAVE_METADATA || m.seeking) return;

    const target = this.target();
    if (target === null) {
      this.lastDrift = null;
      if (s.playing) this.ensurePlaying(m);
      return;
    }

    // An on-demand item that has reached its end stays there; the server advances the room.
    if (!live && m.ended && Number.isFinite(m.duration) && target >= m.duration - 0.5) {
      this.lastDrift = 0;
      this.reportEnded();
      return;
    }

    const force = this.forceSeek || !s.playing;
    let c = decideCorrection(m.currentTime, target, rate, force);
    if (c.kind === 'seek' && !force && now - this.lastSeekAt < this.opts.seekCooldownMs) {
      // A drift seek just happened and has not settled: nudge meanwhile.
      c = { kind: 'nudge', drift: c.drift, playbackRate: rate * (1 - clamp(c.drift, -0.5, 0.5) * 0.5) };
    }
    this.lastCorrection = c;
    this.lastDrift = c.drift;
    this.forceSeek = false;

    if (c.kind === 'seek' && c.seekTo !== undefined) {
      m.currentTime = c.seekTo;
      this.lastSeekAt = now;
      if (m.playbackRate !== rate) m.playbackRate = rate;
    } else if (s.playing) {
      if (Math.abs(m.playbackRate - c.playbackRate) > 1e-6) m.playbackRate = c.playbackRate;
    }

    if (s.playing) this.ensurePlaying(m);

    if (live && s.playing && now - this.lastLiveReportAt >= this.opts.liveReportMs) {
      const edge = this.host.liveEdge();
      if (edge !== null) {
        this.lastLiveReportAt = now;
        this.host.send({ type: 'live_offset', seconds: round3(Math.max(0, edge - m.currentTime)) });
      }
    }
  }

  private ensurePlaying(m: SyncMedia): void {
    if (!m.paused || this.autoplayBlocked || this.playInFlight) return;
    let p: Promise<void> | void;
    try {
      p = m.play();
    } catch (e) {
      this.onPlayError(e);
      return;
    }
    if (p && typeof (p as Promise<void>).then === 'function') {
      this.playInFlight = true;
      (p as Promise<void>).then(
        () => {
          this.playInFlight = false;
        },
        (e: unknown) => {
          this.playInFlight = false;
          this.onPlayError(e);
        },
      );
    }
  }

  private onPlayError(e: unknown): void {
    if (e && typeof e === 'object' && (e as { name?: string }).name === 'NotAllowedError') {
      this.autoplayBlocked = true;
      this.emit('autoplay-blocked');
    }
  }

  /// A plain snapshot for debugging hooks and tests.
  snapshot(): Record<string, unknown> | null {
    if (!this.state) return null;
    return {
      ...this.state,
      item: this.currentItem(),
      live: this.isLive(),
      live_target_offset_s: this.liveTargetOffsetS,
      target_s: this.target(),
      clock_offset_ms: this.clock.offsetMs,
      rtt_ms: this.clock.rttMs,
      buffering: this.buffering,
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
