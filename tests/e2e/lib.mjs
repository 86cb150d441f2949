// Shared helpers for the browser tests: start a server (the mock or a real castmesh),
// launch headless Chromium, talk to the HTTP API.

import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
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

/// Starts the mock server on an ephemeral port; resolves {url, stop()}.
export function startMock({ media, streams = '', upstream } = {}) {
  return new Promise((resolve, reject) => {
    const args = [join(here, 'mock/server.mjs'), '--port', '0'];
    if (media) args.push('--media', media);
    if (upstream) args.push('--upstream', upstream);
    const child = spawn(process.execPath, args, {
      env: { ...process.env, MOCK_STREAMS: streams },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`mock did not start: ${out}`));
    }, 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          stop: () =>
            new Promise((r) => {
              if (child.exitCode !== null) return r();
              child.once('exit', () => r());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.stderr.on('data', (d) => (out += d));
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!/listening on/.test(out)) reject(new Error(`mock exited ${code}: ${out}`));
    });
  });
}

/// Generates a short test clip (H.264/AAC MP4 plus an HLS VOD copy) once per run.
export async function makeMedia(seconds = 60) {
  const dir = mkdtempSync(join(tmpdir(), 'castmesh-e2e-media-'));
  await run('ffmpeg', [
    '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=size=640x360:rate=30`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30',
    '-c:a', 'aac', '-shortest', '-movflags', '+faststart',
    join(dir, 'clip.mp4'),
  ]);
  await run('ffmpeg', [
    '-loglevel', 'error', '-y', '-i', join(dir, 'clip.mp4'), '-c', 'copy',
    '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod',
    '-hls_segment_filename', join(dir, 'seg%03d.ts'), join(dir, 'clip.m3u8'),
  ]);
  return dir;
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
