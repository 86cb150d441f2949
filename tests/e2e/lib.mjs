// Shared helpers for the browser tests: test media and its server, headless Chromium, the
// HTTP API, screenshots.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '../..');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--mute-audio',
];

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
    timeout: 30_000,
  });
}

/// Generates a 90 s HLS VOD (H.264 640x360 with a 1 s GOP, AAC) in a temp directory once per
/// run: clip.m3u8 plus 2 s MPEG-TS segments.
export async function makeMedia(seconds = 90) {
  const dir = mkdtempSync(join(tmpdir(), 'castmesh-e2e-media-'));
  await run('ffmpeg', [
    '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=30`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30',
    '-c:a', 'aac', '-shortest',
    '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod',
    '-hls_segment_filename', join(dir, 'seg%03d.ts'), join(dir, 'clip.m3u8'),
  ]);
  return dir;
}

const TYPES = { '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t', '.mp4': 'video/mp4' };

/// Serves the files of `dir` on 127.0.0.1 (ephemeral port) with CORS headers, as a third-party
/// media host would; resolves {url, stop()}.
export function startMediaServer(dir) {
  return new Promise((resolve, reject) => {
    const srv = createHttpServer(async (req, res) => {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Headers', '*');
      if (req.method === 'OPTIONS') return res.writeHead(204).end();
      const name = basename(decodeURIComponent(new URL(req.url, 'http://x').pathname));
      try {
        const body = await readFile(join(dir, name));
        res.writeHead(200, { 'Content-Type': TYPES[extname(name)] ?? 'application/octet-stream', 'Content-Length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch {
        res.writeHead(404).end();
      }
    });
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${srv.address().port}`,
        stop: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
      });
    });
  });
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code}): ${err}`))));
  });
}

export class Api {
  constructor(base, token = null) {
    this.base = base;
    this.token = token;
  }
  async req(method, path, body) {
    const res = await fetch(`${this.base}/api/v1${path}`, {
      method,
      headers: {
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${text}`), { status: res.status, data });
    return data;
  }
  async register(username, password = 'correct-horse-battery') {
    const r = await this.req('POST', '/auth/register', { username, password });
    this.token = r.token;
    this.user = r.user;
    return r;
  }
}

/// Signs `page` in by storing the token the UI reads.
export async function signInPage(page, base, token, user) {
  await page.goto(`${base}/login`);
  await page.evaluate(
    ([t, u]) => {
      localStorage.setItem('castmesh.token', t);
      localStorage.setItem('castmesh.user', JSON.stringify(u));
    },
    [token, user],
  );
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, { timeout = 10_000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export function distExists() {
  return existsSync(join(REPO, 'web/dist/index.html'));
}

/// Where screenshots go: $CASTMESH_E2E_ARTIFACTS, else tests/e2e/artifacts (git-ignored).
export const ARTIFACTS = process.env.CASTMESH_E2E_ARTIFACTS ?? join(here, 'artifacts');

/// Saves a full-page PNG of `page` as ARTIFACTS/NAME.png.
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/// The room state as the page's client holds it (window.__castmesh.state()).
export const roomState = (page) => page.evaluate(() => window.__castmesh.state());

/// The page's <video>: { t, paused, rate, ready } or null.
export const videoOf = (page) =>
  page.evaluate(() => {
    const v = window.__castmesh.player;
    return v ? { t: v.currentTime, paused: v.paused, rate: v.playbackRate, ready: v.readyState } : null;
  });

/// A (playing) pauses, seeks to 30 s and sets rate 1.5; B's <video> must reflect each within
/// 500 ms, measured from A's input event in A's page to B's observed state with Date.now() (one
/// machine, one clock). `label` prefixes the log lines. Returns B's final room state.
export async function controlsReachPeer(alice, bob, label) {
  await alice.page.evaluate(() => {
    const mark = () => { if (window.__actAt === null) window.__actAt = Date.now(); };
    document.addEventListener('click', mark, true);
    document.addEventListener('change', mark, true);
  });
  const timed = async (what, action, cond) => {
    await bob.page.evaluate((src) => {
      const f = new Function('v', `return (${src});`);
      window.__seen = new Promise((resolve) => {
        const iv = setInterval(() => {
          const v = window.__castmesh.player;
          if (v && f(v)) {
            clearInterval(iv);
            resolve({ at: Date.now(), t: v.currentTime, paused: v.paused, rate: v.playbackRate });
          }
        }, 5);
        setTimeout(() => { clearInterval(iv); resolve(null); }, 5000);
      });
    }, cond);
    await alice.page.evaluate(() => { window.__actAt = null; });
    const called = Date.now();
    await action();
    const seen = await bob.page.evaluate(() => window.__seen);
    assert.ok(seen, `${what}: B never reflected it`);
    const actAt = await alice.page.evaluate(() => window.__actAt);
    assert.ok(actAt, `${what}: A's input event was not seen`);
    const delay = seen.at - actAt;
    console.log(`${label} ${what}: B reflected ${delay} ms after A's input (${seen.at - called} ms after the test's call); B t=${seen.t.toFixed(3)} paused=${seen.paused} rate=${seen.rate}`);
    assert.ok(delay <= 500, `${what}: B took ${delay} ms`);
    return seen;
  };
  assert.equal((await videoOf(alice.page)).paused, false, 'A is playing');
  await timed('pause', () => alice.page.click('button.play-btn'), 'v.paused');
  const [a, b] = await Promise.all([videoOf(alice.page), videoOf(bob.page)]);
  assert.ok(Math.abs(a.t - b.t) <= 0.3, `paused at ${a.t} vs ${b.t}`);
  const seen = await timed('seek 30 s', () => alice.page.evaluate(() => { window.__actAt = Date.now(); window.__castmesh.engine.seek(30); }), 'v.paused && Math.abs(v.currentTime - 30) <= 0.3');
  assert.ok(Math.abs(seen.t - 30) <= 0.3);
  await timed('rate 1.5', () => alice.page.selectOption('select[aria-label="Speed"]', '1.5'), 'v.paused && Math.abs(v.currentTime - 30) <= 0.3 && v.playbackRate === 1.5');
  const s = await roomState(bob.page);
  assert.equal(s.playing, false);
  assert.equal(s.position_s, 30);
  assert.equal(s.rate, 1.5);
  return s;
}
