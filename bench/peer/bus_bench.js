// Events per second through Redis with the Socket.IO Redis adapter, the peer of
// castmesh-bus-bench (bench/cluster/run_cluster.sh): two processes stand for two nodes.
//   node bus_bench.js sub REDIS_URL N            node b: prints "ready", counts N room broadcasts
//                                                 arriving through the adapter, prints one JSON line
//   node bus_bench.js pub REDIS_URL N BYTES      node a: io.to('bench').emit('state', ...) N times,
//                                                 as fast as the event loop allows
// Node b has no client sockets; a placeholder id is put in room "bench" so the adapter accepts the
// room's messages (it ignores rooms without local members), and the adapter's local broadcast is
// counted. Each payload carries the publish time (process.hrtime, CLOCK_MONOTONIC, which both
// processes share). Only 127.0.0.1.
'use strict';
const { Server } = require('socket.io');
const { Adapter } = require('socket.io-adapter');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const [mode, redisUrl, nArg, bytesArg] = process.argv.slice(2);
const n = Number(nArg || 100000);
const bytes = Number(bytesArg || 200);
if (!/^redis:\/\/(127\.0\.0\.1|localhost)[:/]/.test(redisUrl || '')) {
  console.error('usage: node bus_bench.js sub|pub redis://127.0.0.1:PORT N [BYTES]');
  process.exit(2);
}

async function makeServer() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const io = new Server({ transports: ['websocket'], serveClient: false, adapter: createAdapter(pubClient, subClient) });
  return { io, pubClient, subClient };
}

async function sub() {
  const { io, pubClient, subClient } = await makeServer();
  const adapter = io.of('/').adapter;
  adapter.addAll('bench-sink', new Set(['bench']));
  let count = 0;
  let first = 0n;
  let last = 0n;
  let firstSent = 0n;
  const lat = [];
  const orig = Adapter.prototype.broadcast;
  let done;
  const finished = new Promise((r) => { done = r; });
  Adapter.prototype.broadcast = function (packet, opts) {
    if (this === adapter && packet.data && packet.data[0] === 'state') {
      const now = process.hrtime.bigint();
      const sent = BigInt(packet.data[1].t);
      if (count === 0) { first = now; firstSent = sent; }
      last = now;
      lat.push(Number(now - sent) / 1e6);
      if (++count >= n) done();
    }
    return orig.call(this, packet, opts);
  };
  const timer = setTimeout(done, 60000);
  // Wait until the adapter is subscribed before telling the publisher to start.
  for (let i = 0; i < 100 && (await adapter.serverCount()) < 1; ++i) await new Promise((r) => setTimeout(r, 20));
  console.log('ready');
  await finished;
  clearTimeout(timer);
  lat.sort((x, y) => x - y);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))] : 0);
  const span = Number(last - firstSent) / 1e9;
  console.log(JSON.stringify({
    events: n, payload_bytes: bytes, received: count, all_delivered: count >= n,
    delivered_per_sec: span > 0 ? Math.round(count / span) : 0,
    tp_latency_ms_p50: Number(pct(50).toFixed(2)), tp_latency_ms_max: Number(pct(100).toFixed(2)),
  }));
  await Promise.allSettled([pubClient.quit(), subClient.quit()]);
  process.exit(0);
}

async function pub() {
  const { io, pubClient, subClient } = await makeServer();
  const pad = 'x'.repeat(Math.max(0, bytes - 40));
  const t0 = process.hrtime.bigint();
  const batch = 1000;
  for (let i = 0; i < n; i += batch) {
    for (let k = i; k < Math.min(n, i + batch); ++k) {
      io.to('bench').emit('state', { t: String(process.hrtime.bigint()), pad });
    }
    await new Promise((r) => setImmediate(r));  // let the Redis client write
  }
  await pubClient.ping();  // replies come in order: every PUBLISH before it has been executed
  const t1 = process.hrtime.bigint();
  console.log(JSON.stringify({ published_per_sec: Math.round(n / (Number(t1 - t0) / 1e9)) }));
  await Promise.allSettled([pubClient.quit(), subClient.quit()]);
  process.exit(0);
}

(mode === 'sub' ? sub() : pub()).catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
