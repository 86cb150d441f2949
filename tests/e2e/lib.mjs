// Shared helpers for the browser tests: test media and its server, headless Chromium, the
// HTTP API, screenshots.

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
