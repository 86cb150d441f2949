// Starting a real castmesh server and an ffmpeg RTMP publisher for the live tests.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO, sleep, waitFor } from './lib.mjs';

/// The castmesh binary: $CASTMESH_BIN, else the first build directory that has one. Throws
/// when there is none: these tests only run against the real server.
export function findCastmesh() {
  const cand = process.env.CASTMESH_BIN
    ? [process.env.CASTMESH_BIN]
    : ['build-e2e', 'build-lead', 'build', 'build-itest', 'build-web'].flatMap((d) => [join(REPO, d, 'src/castmesh'), join(REPO, d, 'castmesh')]);
  const bin = cand.find((p) => existsSync(p));
  if (!bin) throw new Error(`no castmesh binary (set CASTMESH_BIN); looked at ${cand.join(', ')}`);
  return bin;
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

/// Starts `castmesh serve` on free loopback ports in a scratch directory (SQLite database there,
/// 1 s HLS segments, the UI from web/dist), waits for /readyz; resolves {url, rtmp, log(), stop()}.
/// stop() sends SIGTERM to its PID (SIGKILL after 8 s).
export async function startCastmesh(bin = findCastmesh(), extraEnv = {}) {
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
      CASTMESH_HLS__TARGET_DURATION_SECS: '1',
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
        const r = await fetch(`${url}/readyz`).catch(() => null);
        return r?.ok ? 'up' : null;
      },
      { timeout: 15_000, what: 'castmesh /readyz' },
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

/// Publishes a real-time 720p30 test pattern with a tone (H.264 ultrafast/zerolatency, 1 s GOP,
/// AAC) to `rtmpUrl` with ffmpeg.
export function publish(rtmpUrl, seconds = 180) {
  const child = spawn(
    'ffmpeg',
    [
      '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
      '-f', 'lavfi', '-i', 'sine',
      '-t', String(seconds),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '30',
      '-c:a', 'aac',
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
