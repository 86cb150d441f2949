// Minimal Node + Socket.IO room server, the peer for bench/run_rooms.sh. It does for a seek
// what SyncStream does: a client emits `seek`, the server updates the room's playback state and
// broadcasts it to everyone in the room (io.to(room).emit). Events:
//   client -> server: join {room}, seek {version, position_s}
//   server -> client: welcome {state} (to the joiner), state {state, reason, server_time_ms}
// Usage: node server.js PORT   (listens on 127.0.0.1 only)
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 3000);
const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });
const rooms = new Map();  // name -> {state}

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { state: { item_id: 1, position_s: 0, rate: 1, playing: true, updated_at_ms: Date.now(), version: 1 } };
    rooms.set(name, r);
  }
  return r;
}

io.on('connection', (socket) => {
  let joined = null;
  socket.on('join', (msg) => {
    if (!msg || typeof msg.room !== 'string') return;
    joined = msg.room;
    socket.join(joined);
    socket.emit('welcome', { state: room(joined).state });
  });
  socket.on('seek', (msg) => {
    if (joined === null || !msg || typeof msg.position_s !== 'number' || msg.position_s < 0) return;
    const r = room(joined);
    if (msg.version !== r.state.version) {
      socket.emit('error_msg', { code: 'stale_version', state: r.state });
      return;
    }
    r.state = { ...r.state, position_s: msg.position_s, updated_at_ms: Date.now(), version: r.state.version + 1 };
    io.to(joined).emit('state', { state: r.state, reason: 'seek', server_time_ms: Date.now() });
  });
});

httpServer.listen(port, '127.0.0.1', () => console.log(`peer listening on 127.0.0.1:${port}`));
