// `window.__castmesh`: read-only hooks for end-to-end tests and troubleshooting.
//   state()  -> the room playback state as last received (plus derived fields), or null
//   drift()  -> local position minus the room position in seconds, or null
//   player   -> the <video> element of the room (or of the live preview), or null

import type { SyncEngine } from './sync';

interface Active {
  engine: SyncEngine | null;
  video: HTMLVideoElement | null;
  extra: () => Record<string, unknown>;
}

const active: Active = { engine: null, video: null, extra: () => ({}) };

export function setActive(engine: SyncEngine | null, video: HTMLVideoElement | null, extra?: () => Record<string, unknown>): void {
  active.engine = engine;
  active.video = video;
  active.extra = extra ?? (() => ({}));
}

export function installDebugHooks(): void {
  const hooks = {
    state: () => {
      const s = active.engine?.snapshot();
      return s ? { ...s, ...active.extra() } : null;
    },
    drift: () => active.engine?.lastDrift ?? null,
    get player() {
      return active.video;
    },
    get engine() {
      return active.engine;
    },
  };
  Object.defineProperty(window, '__castmesh', { value: hooks, configurable: true });
}
