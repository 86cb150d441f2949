// Clustered Node + Socket.IO room server, the peer for bench/cluster/run_cluster.sh: the same
// rooms as server.js (seek -> io.to(room).emit('state')), but several of these processes share
// one Redis through @socket.io/redis-adapter (the adapter Socket.IO documents for running more
// than one server), so a broadcast made on one node reaches the room's sockets on every node.
// Room state lives in each process's memory; after a seek the node that applied it tells the
// others with io.serverSideEmit('room_state'), so every node welcomes new members with the
// current version.
//   client -> server: join {room}, seek {version, position_s}
//   server -> client: welcome {state} (to the joiner), state {state, reason, server_time_ms}
// HTTP: GET /nodes -> {"servers": N} (processes subscribed to the adapter's request channel,
// from PUBSUB NUMSUB; the adapter's own view of the cluster size).
// Usage: node cluster_server.js PORT REDIS_URL [NODE_NAME]   (listens on 127.0.0.1 only)
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');
const { attachRoomHandlers, makeRooms } = require('./rooms');

const port = Number(process.argv[2] || 3000);
const redisUrl = process.argv[3] || 'redis://127.0.0.1:6379';
const nodeName = process.argv[4] || `node-${port}`;

const room = makeRooms();

let io = null;
const httpServer = http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/nodes' && io) {
    try {
      const servers = await io.of('/').adapter.serverCount();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node: nodeName, servers }));
    } catch (e) {
      res.writeHead(503);
      res.end(JSON.stringify({ error: String(e) }));
    }
    return;
  }
  res.writeHead(404);
  res.end();
});

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  pubClient.on('error', (e) => console.error(`${nodeName}: redis pub: ${e.message}`));
  subClient.on('error', (e) => console.error(`${nodeName}: redis sub: ${e.message}`));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io = new Server(httpServer, {
    transports: ['websocket'],
    serveClient: false,
    adapter: createAdapter(pubClient, subClient),
  });

  // Another node applied a change: mirror it (newer versions only).
  io.on('room_state', (name, state) => {
    const r = room(name);
    if (state && state.version > r.state.version) r.state = state;
  });

  attachRoomHandlers(io, room, (name, state) => io.serverSideEmit('room_state', name, state));

  httpServer.listen(port, '127.0.0.1', () => console.log(`${nodeName} listening on 127.0.0.1:${port} (redis ${redisUrl})`));
}

main().catch((e) => {
  console.error(`${nodeName}: ${e.stack || e}`);
  process.exit(1);
});
