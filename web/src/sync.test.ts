import { describe, expect, it } from 'vitest';
import { ClockSync, SyncEngine, decideCorrection, extrapolate, type SyncHost, type SyncMedia } from './sync';
import type { PlaybackState, PlaylistItem, Welcome } from './types';

class FakeMedia implements SyncMedia {
  private t = 0;
  get currentTime(): number {
    return this.t;
  }
  set currentTime(v: number) {
    this.t = v;
    this.seeks.push(v);
  }
  /// Moves the playhead as playback would (not a seek).
  setTime(v: number): void {
    this.t = v;
  }
  playbackRate = 1;
  paused = true;
  seeking = false;
  ended = false;
  readyState = 4;
  duration = 600;
  plays = 0;
  seeks: number[] = [];
  playResult: 'ok' | 'blocked' = 'ok';
  play(): Promise<void> {
    this.plays++;
    if (this.playResult === 'blocked') {
      const e = new Error('blocked');
      e.name = 'NotAllowedError';
      return Promise.reject(e);
    }
    this.paused = false;
    return Promise.resolve();
  }
  pause(): void {
    this.paused = true;
  }
}

class TrackedMedia extends FakeMedia {}

function makeHost(media: SyncMedia | null = new TrackedMedia()) {
  const sent: Record<string, unknown>[] = [];
  let now = 1_000_000;
  let edge: number | null = null;
  const host: SyncHost = {
    now: () => now,
    send: (m) => sent.push(m),
    media: () => media,
    liveEdge: () => edge,
  };
  return {
    host,
    sent,
    media: media as TrackedMedia,
    advance(ms: number) {
      now += ms;
    },
    setNow(ms: number) {
      now = ms;
    },
    get now() {
      return now;
    },
    setEdge(e: number | null) {
      edge = e;
    },
  };
}

const vod: PlaylistItem = { id: 1, kind: 'url', url: 'https://x/a.m3u8', title: 'A', position: 0, added_by: 1 };
const vod2: PlaylistItem = { id: 2, kind: 'url', url: 'https://x/b.mp4', title: 'B', position: 1, added_by: 1 };
const live: PlaylistItem = { id: 3, kind: 'live', url: 'live/cam', title: 'Cam', position: 2, added_by: 1 };

function state(p: Partial<PlaybackState> = {}): PlaybackState {
  return { item_id: 1, position_s: 0, rate: 1, playing: false, updated_at_ms: 1_000_000, version: 1, ...p };
}

function welcome(s: PlaybackState, serverTime = 1_000_000, items = [vod, vod2, live]): Welcome {
  return {
    type: 'welcome',
    v: 1,
    server_time_ms: serverTime,
    room: { id: 'r', name: 'R', settings: {} },
    you: { user_id: 1, username: 'a', role: 'member', permissions: ['control_playback', 'seek'] },
    state: s,
    playlist: { items },
    members: [],
    chat: [],
  };
}

describe('extrapolate', () => {
  it('advances by elapsed time times rate while playing', () => {
    const s = state({ playing: true, position_s: 10, rate: 2, updated_at_ms: 5000 });
    expect(extrapolate(s, 6500)).toBeCloseTo(13);
  });
  it('stays frozen while paused', () => {
    const s = state({ playing: false, position_s: 10, updated_at_ms: 5000 });
    expect(extrapolate(s, 99_000)).toBe(10);
  });
  it('never goes negative', () => {
    const s = state({ playing: true, position_s: 0, updated_at_ms: 5000 });
    expect(extrapolate(s, 4000)).toBe(0);
  });
});

describe('ClockSync', () => {
  it('computes offset = server + rtt/2 - now', () => {
    const c = new ClockSync();
    c.addPong(1000, 50_000, 1100); // rtt 100
    expect(c.offsetMs).toBe(50_000 + 50 - 1100);
    expect(c.rttMs).toBe(100);
  });
  it('keeps the sample with the smallest rtt', () => {
    const c = new ClockSync();
    c.addPong(1000, 50_000, 1300); // rtt 300, offset 48850
    c.addPong(2000, 51_000, 2020); // rtt 20, offset 48990
    c.addPong(3000, 52_500, 3400); // rtt 400
    expect(c.rttMs).toBe(20);
    expect(c.offsetMs).toBe(51_000 + 10 - 2020);
  });
  it('forgets samples older than the last 10', () => {
    const c = new ClockSync();
    c.addPong(0, 10_000, 5); // best rtt, will be evicted
    for (let i = 1; i <= 10; i++) c.addPong(i * 1000, 20_000 + i * 1000, i * 1000 + 50);
    expect(c.sampleCount).toBe(10);
    expect(c.rttMs).toBe(50);
    expect(c.offsetMs).toBe(20_000 + 25 - 50);
  });
  it('uses the seed until a pong arrives and ignores negative rtt', () => {
    const c = new ClockSync();
    expect(c.offsetMs).toBe(0);
    c.seedFrom(10_000, 4000);
    expect(c.offsetMs).toBe(6000);
    c.addPong(5000, 1, 4000);
    expect(c.offsetMs).toBe(6000);
    c.addPong(4000, 9000, 4010);
    expect(c.offsetMs).toBe(9000 + 5 - 4010);
  });
});

describe('decideCorrection', () => {
  it('seeks beyond 1 s of drift', () => {
    expect(decideCorrection(12.5, 10, 1)).toMatchObject({ kind: 'seek', seekTo: 10, playbackRate: 1 });
    expect(decideCorrection(8.9, 10, 1).kind).toBe('seek');
  });
  it('nudges between 0.05 and 1 s: slower when ahead, faster when behind', () => {
    const ahead = decideCorrection(10.4, 10, 1);
    expect(ahead.kind).toBe('nudge');
    expect(ahead.playbackRate).toBeCloseTo(1 - 0.4 * 0.5);
    const behind = decideCorrection(9.8, 10, 2);
    expect(behind.playbackRate).toBeCloseTo(2 * (1 + 0.2 * 0.5));
  });
  it('clamps the nudge at 0.5 s of drift', () => {
    expect(decideCorrection(10.9, 10, 1).playbackRate).toBeCloseTo(0.75);
    expect(decideCorrection(9.1, 10, 1).playbackRate).toBeCloseTo(1.25);
  });
  it('holds the room rate within 0.05 s', () => {
    expect(decideCorrection(10.03, 10, 1.5)).toMatchObject({ kind: 'hold', playbackRate: 1.5 });
  });
  it('forced (after a state change) seeks above the nudge band only', () => {
    expect(decideCorrection(10.2, 10, 1, true).kind).toBe('seek');
    expect(decideCorrection(10.02, 10, 1, true).kind).toBe('hold');
  });
});

describe('SyncEngine', () => {
  it('seeks to the extrapolated position after welcome and starts playing', async () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    // Server clock is 2 s ahead of ours; the state was anchored 3 s ago (server time).
    const serverNow = h.now + 2000;
    e.welcome(welcome(state({ playing: true, position_s: 20, updated_at_ms: serverNow - 3000 }), serverNow));
    e.tick();
    expect(h.media.seeks.at(-1)).toBeCloseTo(23);
    expect(h.media.plays).toBe(1);
    await Promise.resolve();
    expect(h.media.paused).toBe(false);
  });

  it('nudges playbackRate for small drift and restores the rate once in sync', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ playing: true, position_s: 0, updated_at_ms: h.now })));
    e.tick(); // initial forced correction
    h.advance(10_000);
    h.media.setTime(10.3); // 0.3 s ahead
    h.media.seeks.length = 0;
    e.tick();
    expect(h.media.seeks).toEqual([]);
    expect(h.media.playbackRate).toBeCloseTo(0.85);
    expect(e.lastDrift).toBeCloseTo(0.3);
    h.advance(1000);
    h.media.setTime(11.01);
    e.tick();
    expect(h.media.playbackRate).toBe(1);
  });

  it('seeks on large drift but not twice within the cooldown', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host, { seekCooldownMs: 1500 });
    e.welcome(welcome(state({ playing: true, position_s: 0, updated_at_ms: h.now })));
    e.tick();
    h.advance(5000);
    h.media.setTime(2); // 3 s behind
    h.media.seeks.length = 0;
    e.tick();
    expect(h.media.seeks).toEqual([5]);
    h.advance(500);
    h.media.setTime(3); // still behind (seek did not land)
    e.tick();
    expect(h.media.seeks).toEqual([5]);
    expect(h.media.playbackRate).toBeCloseTo(1.25);
    h.advance(1500);
    e.tick();
    expect(h.media.seeks.length).toBe(2);
  });

  it('pauses and freezes at the paused position', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ playing: true, position_s: 0, updated_at_ms: h.now })));
    e.tick();
    h.advance(4000);
    h.media.setTime(4);
    e.handle({
      type: 'state',
      state: state({ playing: false, position_s: 4.5, updated_at_ms: h.now, version: 2 }),
      by: { user_id: 2, username: 'bob' },
      reason: 'pause',
      server_time_ms: h.now,
    });
    e.tick();
    expect(h.media.paused).toBe(true);
    expect(h.media.currentTime).toBeCloseTo(4.5);
    expect(e.lastChange?.by?.username).toBe('bob');
  });

  it('sends commands with the last seen version', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    expect(e.play()).toBe(false); // no state yet
    e.welcome(welcome(state({ version: 7 })));
    h.media.setTime(12.3456);
    e.pause();
    e.seek(42);
    e.setRate(9);
    e.next();
    e.setItem(2);
    e.play();
    expect(h.sent).toEqual([
      { type: 'pause', version: 7, position_s: 12.346 },
      { type: 'seek', version: 7, position_s: 42 },
      { type: 'rate', version: 7, rate: 4 },
      { type: 'next', version: 7 },
      { type: 'set_item', version: 7, item_id: 2 },
      { type: 'play', version: 7 },
    ]);
  });

  it('adopts the server state carried by stale_version and uses its version next', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ version: 3 })));
    e.seek(10);
    const current = state({ version: 9, position_s: 77, playing: false, item_id: 2 });
    expect(e.handle({ type: 'error', code: 'stale_version', message: 'stale', state: current })).toBe(true);
    expect(e.state).toEqual(current);
    expect(e.currentItem()?.id).toBe(2);
    e.tick();
    expect(h.media.currentTime).toBeCloseTo(77);
    e.play();
    expect(h.sent.at(-1)).toEqual({ type: 'play', version: 9 });
  });

  it('ignores states older than the one held', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ version: 5, position_s: 50 })));
    e.handle({ type: 'state', state: state({ version: 4, position_s: 1 }), by: null, reason: 'seek', server_time_ms: 0 });
    expect(e.state?.position_s).toBe(50);
  });

  it('holds live items target_offset_s behind the live edge and reports the offset', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host, { liveReportMs: 5000 });
    e.welcome(welcome(state({ item_id: 3, playing: true })));
    e.handle({ type: 'live', target_offset_s: 4 });
    h.setEdge(100);
    e.tick();
    expect(h.media.currentTime).toBeCloseTo(96);
    expect(h.sent).toContainEqual({ type: 'live_offset', seconds: 4 });
    // Falling behind by 0.5 s: speed up.
    h.advance(1000);
    h.setEdge(101.5);
    h.media.setTime(97);
    e.tick();
    expect(e.lastDrift).toBeCloseTo(-0.5);
    expect(h.media.playbackRate).toBeCloseTo(1.25);
  });

  it('never targets a live position before the start of the playable range', () => {
    const h = makeHost();
    let floor: number | null = 10;
    h.host.liveFloor = () => floor;
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ item_id: 3, playing: true })));
    h.setEdge(11); // only one second buffered so far
    expect(e.target()).toBe(10);
    h.setEdge(20);
    expect(e.target()).toBe(17);
    floor = null;
    h.setEdge(2);
    expect(e.target()).toBe(0);
  });

  it('live items ignore the room rate and stay paused while the room is paused', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ item_id: 3, playing: false, rate: 2 })));
    h.setEdge(50);
    h.media.paused = false;
    e.tick();
    expect(h.media.paused).toBe(true);
    expect(h.media.playbackRate).toBe(1);
  });

  it('reports buffering on waiting and ready on playing, only on changes', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state()));
    e.mediaEvent('playing'); // initial ready: nothing sent
    e.mediaEvent('waiting');
    e.mediaEvent('waiting');
    e.mediaEvent('playing');
    e.mediaEvent('canplay');
    expect(h.sent).toEqual([
      { type: 'buffering', buffering: true },
      { type: 'buffering', buffering: false },
    ]);
  });

  it('a new source counts as buffering until the media can play', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ playing: false })));
    h.media.readyState = 0;
    e.mediaEvent('loadstart');
    e.tick();
    expect(h.sent).toEqual([{ type: 'buffering', buffering: true }]);
    h.media.readyState = 4; // canplay missed: the tick notices readiness
    e.tick();
    expect(h.sent.at(-1)).toEqual({ type: 'buffering', buffering: false });
  });

  it('sends ended once per item', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ item_id: 1, playing: true })));
    e.mediaEvent('ended');
    e.mediaEvent('ended');
    expect(h.sent.filter((m) => m.type === 'ended')).toEqual([{ type: 'ended', item_id: 1 }]);
    e.handle({ type: 'state', state: state({ item_id: 2, version: 2 }), by: null, reason: 'auto', server_time_ms: 0 });
    e.mediaEvent('ended');
    expect(h.sent.filter((m) => m.type === 'ended')).toEqual([
      { type: 'ended', item_id: 1 },
      { type: 'ended', item_id: 2 },
    ]);
  });

  it('clock offset from pongs shifts the target', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ playing: true, position_s: 0, updated_at_ms: h.now }), h.now));
    // The server is actually 1 s ahead of us: a pong with a 40 ms round trip says so.
    const t = h.now;
    h.advance(40);
    e.handle({ type: 'pong', t, server_time_ms: t + 1000 + 20 });
    expect(e.clock.offsetMs).toBe(1000);
    expect(e.target()).toBeCloseTo(1.04);
  });

  it('flags blocked autoplay and stops retrying until asked', async () => {
    const h = makeHost();
    h.media.playResult = 'blocked';
    const e = new SyncEngine(h.host);
    const events: string[] = [];
    e.on((ev) => events.push(ev));
    e.welcome(welcome(state({ playing: true, updated_at_ms: h.now })));
    e.tick();
    await Promise.resolve();
    await Promise.resolve();
    expect(e.autoplayBlocked).toBe(true);
    expect(events).toContain('autoplay-blocked');
    e.tick();
    expect(h.media.plays).toBe(1);
    h.media.playResult = 'ok';
    e.retryAutoplay();
    expect(h.media.plays).toBe(2);
  });

  it('does nothing to the media while it has no metadata', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ playing: true, position_s: 30, updated_at_ms: h.now })));
    h.media.readyState = 0;
    e.tick();
    expect(h.media.seeks).toEqual([]);
  });

  it('pauses the media when the room has no current item', () => {
    const h = makeHost();
    const e = new SyncEngine(h.host);
    e.welcome(welcome(state({ item_id: 0, playing: true })));
    h.media.paused = false;
    e.tick();
    expect(h.media.paused).toBe(true);
    expect(e.currentItem()).toBeNull();
  });
});
