// /live — the streams being published to this server, with a preview player.

import { ApiError, api } from '../api';
import { setActive } from '../debug';
import { fmtDuration, h, icon, replace } from '../dom';
import { type LiveProtocol, Player, liveUrl } from '../player';
import type { Page } from '../router';
import type { StreamInfo } from '../types';
import { copyText, emptyState } from '../ui';

export function fmtBitrate(kbps: number): string {
  if (!Number.isFinite(kbps) || kbps <= 0) return '—';
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbps` : `${Math.round(kbps)} kbps`;
}

export function fmtVideo(s: StreamInfo): string {
  const v = s.video;
  if (!v || !v.codec) return 'No video';
  const res = v.width && v.height ? ` ${v.width}×${v.height}` : '';
  const fps = v.fps ? ` @ ${Math.round(v.fps * 100) / 100} fps` : '';
  return `${v.codec}${res}${fps}`;
}

export function fmtAudio(s: StreamInfo): string {
  const a = s.audio;
  if (!a || !a.codec) return 'No audio';
  const rate = a.sample_rate ? ` ${(a.sample_rate / 1000).toFixed(1).replace(/\.0$/, '')} kHz` : '';
  const ch = a.channels === 1 ? ' mono' : a.channels === 2 ? ' stereo' : a.channels ? ` ${a.channels} ch` : '';
  return `${a.codec}${rate}${ch}`;
}

export function livePage(): Page {
  const list = h('div', { class: 'stream-list' });
  const previewBox = h('div', { class: 'preview' });
  const player = new Player();
  player.video.muted = true;
  player.video.autoplay = true;
  player.video.controls = true;
  player.video.setAttribute('data-testid', 'preview-video');
  let proto: LiveProtocol = 'hls';
  let selected: string | null = null;
  let streams: StreamInfo[] = [];
  let timer: number | undefined;
  let destroyed = false;
  let loaded = false;
  const playerError = h('div', { class: 'player-overlay error' });
  playerError.style.display = 'none';
  player.onError = (msg) => {
    playerError.style.display = msg ? '' : 'none';
    player.video.controls = !msg;
    replace(playerError, icon('alert', 30), h('p', null, msg ?? ''));
  };
  setActive(null, player.video);

  const protoSel = h('select', { class: 'input select-sm', 'aria-label': 'Protocol' }, h('option', { value: 'hls' }, 'HLS'), h('option', { value: 'flv' }, 'HTTP-FLV'));
  protoSel.addEventListener('change', () => {
    proto = protoSel.value === 'flv' ? 'flv' : 'hls';
    loadPreview();
    renderPreview();
  });

  const loadPreview = () => {
    if (!selected) {
      player.unload();
      return;
    }
    void player.load({ url: liveUrl(selected, proto), kind: proto, live: true }).then(() => {
      void player.video.play()?.catch(() => {});
    });
  };

  // The <video> must stay in the document while playing (removing it pauses it), so only the
  // info card is redrawn on every refresh.
  const playerWrap = h('div', { class: 'player' }, player.video, playerError);
  const infoCard = h('div', { class: 'card preview-info' });
  const renderPreview = () => {
    const s = streams.find((x) => x.key === selected);
    if (!s) {
      replace(
        previewBox,
        h('div', { class: 'card' }, emptyState('eye', 'Preview', streams.length ? 'Select a stream to watch it here.' : 'Streams appear here when someone goes live.', null, true)),
      );
      return;
    }
    if (!previewBox.contains(playerWrap)) replace(previewBox, playerWrap, infoCard);
    const url = new URL(liveUrl(s.key, proto), window.location.href).toString();
    replace(
      infoCard,
      h(
        'div',
        { class: 'row', style: 'justify-content:space-between;margin-bottom:10px' },
        h('h3', { class: 'ellipsis' }, s.key),
        protoSel,
      ),
      h(
        'div',
        { class: 'keybox' },
        h('input', { class: 'input input-mono', readOnly: true, value: url, 'aria-label': 'Playback URL' }),
        h('button', { class: 'btn btn-icon', title: 'Copy URL', 'aria-label': 'Copy URL', on: { click: () => void copyText(url) } }, icon('copy', 16)),
      ),
      h(
        'div',
        { class: 'stream-stats' },
        stat('HLS', String(s.subscribers?.hls ?? 0)),
        stat('HTTP-FLV', String(s.subscribers?.httpflv ?? 0)),
        stat('RTMP', String(s.subscribers?.rtmp ?? 0)),
        stat('Dropped GOPs', String(s.dropped_gops ?? 0)),
      ),
    );
  };

  const select = (key: string) => {
    if (selected === key) return;
    selected = key;
    renderList();
    renderPreview();
    loadPreview();
  };

  const renderList = () => {
    if (streams.length === 0) {
      const host = window.location.hostname;
      replace(
        list,
        h(
          'div',
          { class: 'card' },
          emptyState(
            'radio',
            'Nobody is live right now',
            h('span', null, 'Point OBS or ffmpeg at ', h('code', { class: 'inline' }, `rtmp://${host}:1935/live/<stream>`), ' and the stream shows up here.'),
          ),
        ),
      );
      return;
    }
    replace(
      list,
      ...streams.map((s) =>
        h(
          'div',
          {
            class: `card stream-row${s.key === selected ? ' selected' : ''}`,
            role: 'button',
            tabindex: '0',
            dataset: { key: s.key },
            on: {
              click: () => select(s.key),
              keydown: (e: KeyboardEvent) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  select(s.key);
                }
              },
            },
          },
          h('div', { class: 'room-thumb', style: { background: 'linear-gradient(135deg,#ff4d5e,#7c6cff)' } }, icon('radio', 20)),
          h(
            'div',
            { class: 's-main' },
            h(
              'div',
              { class: 's-name' },
              h('span', { class: 'ellipsis' }, s.key),
              s.publishing !== false ? h('span', { class: 'badge badge-live' }, 'LIVE') : h('span', { class: 'badge' }, 'Idle'),
              // Only a cluster names the owner; a single node's rows stay as they were.
              s.owner ? h('span', { class: 'badge stream-owner', title: 'The cluster node the publisher is connected to' }, `on ${s.owner}`) : null,
            ),
            h(
              'div',
              { class: 'stream-stats' },
              stat('Video', fmtVideo(s)),
              stat('Audio', fmtAudio(s)),
              stat('Bitrate', fmtBitrate(s.bitrate_kbps)),
              stat('Viewers', String(s.subscribers?.total ?? 0)),
              stat('Uptime', fmtDuration(s.uptime_ms ?? 0)),
            ),
          ),
        ),
      ),
    );
  };

  const load = async () => {
    try {
      const r = await api.streams();
      if (destroyed) return;
      streams = [...(r.streams ?? [])].sort((a, b) => a.key.localeCompare(b.key));
      loaded = true;
      if (selected && !streams.some((s) => s.key === selected)) {
        selected = null;
        player.unload();
      }
      if (!selected && streams.length) {
        select(streams[0].key);
        return;
      }
      renderList();
      renderPreview();
    } catch (e) {
      if (destroyed || loaded) return;
      replace(
        list,
        h('div', { class: 'card' }, emptyState('alert', 'Could not load streams', (e as ApiError).message, h('button', { class: 'btn', on: { click: () => void load() } }, icon('refresh', 16), 'Try again'))),
      );
    }
  };

  replace(list, ...Array.from({ length: 3 }, () => h('div', { class: 'skeleton', style: { height: '86px' } })));
  renderPreview();
  void load();
  timer = window.setInterval(() => void load(), 3000);

  const el = h(
    'div',
    { class: 'page page-wide' },
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Live'), h('p', null, 'Streams being published right now (in a cluster: on any node).'))),
    h('div', { class: 'live-layout' }, list, previewBox),
  );
  return {
    el,
    title: 'Live',
    destroy() {
      destroyed = true;
      window.clearInterval(timer);
      player.destroy();
      setActive(null, null);
    },
  };
}

function stat(k: string, v: string): HTMLElement {
  return h('div', { class: 'stat' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v));
}
