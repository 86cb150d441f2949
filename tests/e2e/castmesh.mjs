// Starting a real castmesh server and an ffmpeg RTMP publisher for the live tests.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO, sleep, waitFor } from './lib.mjs';

/// The castmesh binary: $CASTMESH_BIN, else the first build directory that has one.
export function findCastmesh() {
  if (process.env.CASTMESH_BIN) return existsSync(process.env.CASTMESH_BIN) ? process.env.CASTMESH_BIN : null;
  for (const dir of ['build-web', 'build-lead', 'build', 'build-itest']) {
    for (const p of [join(REPO, dir, 'src/castmesh'), join(REPO, dir, 'castmesh')]) if (existsSync(p)) return p;
  }
  return null;
}

/// A TCP port that was free a moment ago on 127.0.0.1.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Starts `castmesh serve` on random ports in a scratch directory; resolves {url, rtmp, stop()}.
export async function startCastmesh(bin, extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'castmesh-e2e-'));
  const http = await freePort();
  const rtmp = await freePort();
  const child = spawn(bin, ['serve'], {
    cwd: dir,
    env: {
      ...process.env,
      CASTMESH_SERVER__HOST: '127.0.0.1',
      CASTMESH_SERVER__PORT: String(http),
      CASTMESH_RTMP__HOST: '127.0.0.1',
      CASTMESH_RTMP__PORT: String(rtmp),
      CASTMESH_DATABASE__URL: `sqlite:${join(dir, 'castmesh.db')}`,
      CASTMESH_WEB__ROOT: join(REPO, 'web/dist'),
      CASTMESH_SERVER__LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${http}`;
  try {
    const how = await waitFor(
      async () => {
        if (child.exitCode !== null) return 'exited';
        const r = await fetch(`${url}/healthz`).catch(() => null);
        return r?.ok ? 'up' : null;
      },
      { timeout: 15_000, what: 'castmesh /healthz' },
    );
    if (how === 'exited') throw new Error(`castmesh exited ${child.exitCode}: ${log}`);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    url,
    rtmp: `rtmp://127.0.0.1:${rtmp}`,
    log: () => log,
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        const t = setTimeout(() => child.kill('SIGKILL'), 8000);
        child.once('exit', () => {
          clearTimeout(t);
          r();
        });
        child.kill('SIGTERM');
      }),
  };
}

/// Publishes a real-time test pattern (H.264 + AAC, 1 s GOP) to `rtmpUrl` with ffmpeg.
export function publish(rtmpUrl, seconds = 120) {
  const child = spawn(
    'ffmpeg',
    [
      '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
      '-t', String(seconds),
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '30',
      '-c:a', 'aac', '-ac', '2', '-b:a', '96k',
      '-f', 'flv', rtmpUrl,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  return {
    err: () => err,
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
        sleep(5000).then(() => child.kill('SIGKILL'));
      }),
  };
}
