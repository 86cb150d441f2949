// One <video> element that plays HLS (hls.js, or natively where the browser can), HTTP-FLV
// (mpegts.js) or anything the browser plays natively (MP4, WebM). The libraries are loaded on
// first use so the rest of the UI stays small.

import type Hls from 'hls.js';
import type { PlaylistItem } from './types';

export type SourceKind = 'hls' | 'flv' | 'native';
export type LiveProtocol = 'hls' | 'flv';

export interface Source {
  url: string;
  kind: SourceKind;
  live: boolean;
}

/// URL of a stream of this server, `app/stream` -> `/live/app/stream.m3u8` (or `.flv`).
export function liveUrl(appStream: string, proto: LiveProtocol): string {
  const parts = appStream.split('/').filter(Boolean).map(encodeURIComponent);
  return `/live/${parts.join('/')}.${proto === 'hls' ? 'm3u8' : 'flv'}`;
}

export function kindOfUrl(url: string): SourceKind {
  let path = url;
  try {
    path = new URL(url, 'http://x').pathname;
  } catch {
    /* keep the raw string */
  }
  const p = path.toLowerCase();
  if (p.endsWith('.m3u8') || p.endsWith('.m3u')) return 'hls';
  if (p.endsWith('.flv')) return 'flv';
  return 'native';
}

export function sourceForItem(item: PlaylistItem, liveProto: LiveProtocol): Source {
  if (item.kind === 'live') return { url: liveUrl(item.url, liveProto), kind: liveProto, live: true };
  return { url: item.url, kind: kindOfUrl(item.url), live: false };
}

type MpegtsPlayer = import('mpegts.js').default.Player;

export class Player {
  readonly video: HTMLVideoElement;
  source: Source | null = null;
  /// Set when the current source failed for good (shown by the page).
  error: string | null = null;
  onError: (message: string | null) => void = () => {};

  private hls: Hls | null = null;
  /// Recent observations of (playlist edge - wall clock) for live HLS, seconds; see liveEdge().
  private edgeObs: number[] = [];
  private targetDuration = 2;
  private flv: MpegtsPlayer | null = null;
  private loadSeq = 0;
  private retryTimer: number | undefined;

  constructor(video?: HTMLVideoElement) {
    this.video = video ?? document.createElement('video');
    this.video.playsInline = true;
    this.video.preload = 'auto';
    this.video.addEventListener('error', () => {
      if (this.hls || this.flv || !this.source) return; // the libraries report their own errors
      this.fail(this.describeNativeError());
    });
  }

  async load(src: Source): Promise<void> {
    const seq = ++this.loadSeq;
    this.unloadInternal();
    this.source = src;
    this.setError(null);
    try {
      if (src.kind === 'hls') await this.loadHls(src, seq);
      else if (src.kind === 'flv') await this.loadFlv(src, seq);
      else {
        this.video.src = src.url;
        this.video.load();
      }
    } catch (e) {
      if (seq === this.loadSeq) this.fail(`This player could not be loaded (${String(e)}).`);
    }
  }

  private async loadHls(src: Source, seq: number): Promise<void> {
    const { default: HlsCtor } = await import('hls.js');
    if (seq !== this.loadSeq) return;
    if (!HlsCtor.isSupported()) {
      if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
        this.video.src = src.url;
        this.video.load();
        return;
      }
      this.fail('This browser cannot play HLS.');
      return;
    }
    const hls = new HlsCtor({
      enableWorker: true,
      lowLatencyMode: false,
      // The room sync engine manages latency; hls.js must not chase the edge on its own.
      liveSyncDurationCount: 2,
      liveMaxLatencyDurationCount: Infinity,
      maxLiveSyncPlaybackRate: 1,
      backBufferLength: 60,
    });
    this.hls = hls;
    let networkRetries = 0;
    hls.on(HlsCtor.Events.ERROR, (_evt, data) => {
      if (!data.fatal || this.hls !== hls) return;
      if (data.type === HlsCtor.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      if (data.type === HlsCtor.ErrorTypes.NETWORK_ERROR) {
        const code = (data.response as { code?: number } | undefined)?.code;
        const msg =
          code === 404
            ? src.live
              ? 'This stream is not live right now. Retrying…'
              : 'The video was not found (404).'
            : 'Network error while loading the video. Retrying…';
        if (src.live || networkRetries < 3) {
          networkRetries++;
          this.setError(msg);
          window.clearTimeout(this.retryTimer);
          this.retryTimer = window.setTimeout(
            () => {
              if (this.hls !== hls) return;
              hls.loadSource(src.url);
              hls.startLoad();
            },
            Math.min(10_000, 1000 * 2 ** Math.min(networkRetries, 3)),
          );
          return;
        }
        this.fail(code === 404 ? 'The video was not found (404).' : 'The video could not be loaded.');
        return;
      }
      this.fail('The video could not be played.');
    });
    if (src.live) {
      hls.on(HlsCtor.Events.LEVEL_UPDATED, (_evt, data) => {
        if (this.hls !== hls || !data.details.live) return;
        this.targetDuration = data.details.targetduration || this.targetDuration;
        this.edgeObs.push(data.details.edge - performance.now() / 1000);
        if (this.edgeObs.length > 8) this.edgeObs.shift();
      });
    }
    hls.on(HlsCtor.Events.MANIFEST_PARSED, () => {
      networkRetries = 0;
      if (this.error) this.setError(null);
    });
    hls.on(HlsCtor.Events.FRAG_LOADED, () => {
      if (this.error) this.setError(null);
    });
    hls.attachMedia(this.video);
    hls.loadSource(src.url);
  }

  private async loadFlv(src: Source, seq: number): Promise<void> {
    const { default: mpegts } = await import('mpegts.js');
    if (seq !== this.loadSeq) return;
    if (!mpegts.isSupported()) {
      this.fail('This browser cannot play HTTP-FLV (Media Source Extensions are missing).');
      return;
    }
    mpegts.LoggingControl.enableAll = false;
    const url = new URL(src.url, window.location.href).toString();
    const p = mpegts.createPlayer(
      { type: 'flv', isLive: src.live, url, cors: true },
      {
        enableWorker: false,
        enableStashBuffer: !src.live,
        lazyLoad: !src.live,
        liveBufferLatencyChasing: false,
        autoCleanupSourceBuffer: true,
      },
    );
    this.flv = p;
    p.on(mpegts.Events.ERROR, (type: string, detail: string) => {
      if (this.flv !== p) return;
      const notFound = String(detail).includes('Invalid') || String(detail).includes('Exception');
      this.setError(
        src.live
          ? 'This stream is not live right now. Retrying…'
          : `The video could not be loaded (${type}${notFound ? '' : `: ${detail}`}).`,
      );
      if (src.live) {
        window.clearTimeout(this.retryTimer);
        this.retryTimer = window.setTimeout(() => {
          if (this.flv !== p) return;
          p.unload();
          p.load();
        }, 3000);
      }
    });
    p.on(mpegts.Events.MEDIA_INFO, () => {
      if (this.error) this.setError(null);
    });
    p.attachMediaElement(this.video);
    p.load();
  }

  /// Media time of the reference live position: hls.js liveSyncPosition, else the end of the
  /// seekable range (HLS) or of the buffer (FLV). Null while unknown.
  liveEdge(): number | null {
    if (!this.source?.live) return null;
    if (this.hls) {
      // Each playlist reload shows the edge some time after the server published it; the
      // observation with the shortest such delay among the recent reloads, advanced by the
      // wall clock, is a smooth estimate that every viewer of the stream shares. The reference
      // sits two target durations behind it so the segment holding it is always loaded.
      if (this.edgeObs.length > 0) {
        const best = Math.max(...this.edgeObs);
        return best + performance.now() / 1000 - 2 * this.targetDuration;
      }
      const p = this.hls.liveSyncPosition;
      if (p !== null && Number.isFinite(p)) return p;
    }
    const ranges = this.flv ? this.video.buffered : this.video.seekable;
    if (ranges && ranges.length > 0) {
      const end = ranges.end(ranges.length - 1);
      if (Number.isFinite(end)) return end;
    }
    return null;
  }

  /// Earliest playable media time of a live source (start of the buffered range for FLV, of
  /// the seekable window for HLS); null when unknown.
  liveFloor(): number | null {
    if (!this.source?.live) return null;
    const ranges = this.flv ? this.video.buffered : this.video.seekable;
    if (ranges && ranges.length > 0) {
      const start = ranges.start(0);
      if (Number.isFinite(start)) return start;
    }
    return null;
  }

  /// HLS only: media sequence number -> start time (media seconds) of the fragments of the
  /// playing level, for comparing the timelines of two players of the same stream.
  fragmentStarts(): Record<number, number> | null {
    const hls = this.hls;
    if (!hls || hls.currentLevel < 0) return null;
    const details = hls.levels[hls.currentLevel]?.details;
    if (!details) return null;
    const out: Record<number, number> = {};
    for (const f of details.fragments) if (typeof f.sn === 'number') out[f.sn] = f.start;
    return out;
  }

  /// Seconds behind the live edge, null when not live.
  latency(): number | null {
    const edge = this.liveEdge();
    return edge === null ? null : Math.max(0, edge - this.video.currentTime);
  }

  unload(): void {
    this.loadSeq++;
    this.unloadInternal();
    this.source = null;
    this.setError(null);
  }

  private unloadInternal(): void {
    window.clearTimeout(this.retryTimer);
    this.edgeObs = [];
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.flv) {
      try {
        this.flv.pause();
        this.flv.unload();
        this.flv.detachMediaElement();
        this.flv.destroy();
      } catch {
        /* already torn down */
      }
      this.flv = null;
    }
    this.video.removeAttribute('src');
    try {
      this.video.load();
    } catch {
      /* nothing loaded */
    }
  }

  destroy(): void {
    this.unload();
  }

  private describeNativeError(): string {
    const e = this.video.error;
    if (!e) return 'The video could not be played.';
    switch (e.code) {
      case MediaError.MEDIA_ERR_NETWORK:
        return 'Network error while loading the video.';
      case MediaError.MEDIA_ERR_DECODE:
        return 'The video could not be decoded.';
      case MediaError.MEDIA_ERR_SRC_NOT_SUPPORTED:
        return 'This video format or address is not supported.';
      default:
        return 'The video could not be played.';
    }
  }

  private fail(message: string): void {
    this.setError(message);
  }

  private setError(message: string | null): void {
    if (this.error === message) return;
    this.error = message;
    this.onError(message);
  }
}
