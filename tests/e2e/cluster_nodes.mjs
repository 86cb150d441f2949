// Cluster-mode helpers for the browser tests: a throwaway redis-server, the test PostgreSQL of
// scripts/pg-test, and castmesh nodes in cluster mode sharing both.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCastmesh, startCastmesh } from './castmesh.mjs';
import { REPO, waitFor } from './lib.mjs';

/// A TCP port that was free a moment ago on 127.0.0.1.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Resolves true when a RESP PING to 127.0.0.1:port answers +PONG within 500 ms.
function ping(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
    s.once('connect', () => s.write('*1\r\n$4\r\nPING\r\n'));
  });
}

/// Starts `redis-server` (no persistence, loopback) on a free port; resolves {url, stop()}
/// (stop() sends SIGTERM to its PID and removes its directory).
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'castmesh-e2e-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--dir', dir], { stdio: 'ignore' });
  const stop = () => new Promise((r) => {
    const fin = () => { rmSync(dir, { recursive: true, force: true }); r(); };
    if (child.exitCode !== null || child.signalCode !== null) return fin();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(t); fin(); });
    child.kill('SIGTERM');
  });
  try {
    await waitFor(async () => child.exitCode === null && (await ping(port)), { timeout: 10_000, interval: 50, what: 'redis-server PING' });
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

/// The test PostgreSQL: $CASTMESH_TEST_PG_URL, else `scripts/pg-test url $CASTMESH_PG_TEST_KEY`.
/// Throws when neither is set (cluster mode needs PostgreSQL).
export function postgresUrl() {
  if (process.env.CASTMESH_TEST_PG_URL) return process.env.CASTMESH_TEST_PG_URL;
  const key = process.env.CASTMESH_PG_TEST_KEY;
  if (!key) throw new Error('cluster tests need PostgreSQL: set CASTMESH_PG_TEST_KEY (scripts/pg-test) or CASTMESH_TEST_PG_URL');
  return execFileSync(join(REPO, 'scripts/pg-test'), ['url', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/// Shared settings of one test cluster: {redisUrl, pgUrl, secret, prefix}.
export function clusterSettings(redisUrl, pgUrl) {
  return {
    redisUrl,
    pgUrl,
    secret: `e2e-${randomBytes(16).toString('hex')}`,
    prefix: `e2e${randomBytes(4).toString('hex')}`,
  };
}

/// Starts one castmesh node in cluster mode (inter-node API on a free loopback port, heartbeat
/// 0.5 s, lease 3 s); resolves what startCastmesh does plus {nodeId, internode}.
export async function startClusterNode(settings, nodeId) {
  const port = await freePort();
  const internode = `127.0.0.1:${port}`;
  const node = await startCastmesh(findCastmesh(), {
    CASTMESH_CLUSTER__ENABLED: 'true',
    CASTMESH_CLUSTER__NODE_ID: nodeId,
    CASTMESH_CLUSTER__LISTEN: internode,
    CASTMESH_CLUSTER__ADVERTISE_ADDR: internode,
    CASTMESH_CLUSTER__HEARTBEAT_INTERVAL: '0.5',
    CASTMESH_CLUSTER__LEADER_LEASE_SECS: '3',
    CASTMESH_REDIS__URL: settings.redisUrl,
    CASTMESH_REDIS__KEY_PREFIX: settings.prefix,
    CASTMESH_DATABASE__URL: settings.pgUrl,
    CASTMESH_SERVER__CLUSTER_SECRET: settings.secret,
  });
  return { ...node, nodeId, internode };
}

/// Waits until every node of `nodes` lists all of them alive in GET /api/v1/cluster/nodes.
export async function waitClusterAlive(nodes, timeout = 15_000) {
  const want = nodes.map((n) => n.nodeId).sort();
  await waitFor(async () => {
    for (const n of nodes) {
      const r = await fetch(`${n.url}/api/v1/cluster/nodes`);
      if (!r.ok) return false;
      const doc = await r.json();
      const alive = doc.nodes.filter((x) => x.state === 'alive').map((x) => x.node_id);
      if (!want.every((id) => alive.includes(id))) return false;
    }
    return true;
  }, { timeout, interval: 100, what: `nodes ${want.join(', ')} alive in every view` });
}
