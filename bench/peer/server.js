// Minimal Node + Socket.IO room server, the peer for bench/run_rooms.sh. It does for a seek
// what SyncStream does: a client emits `seek`, the server updates the room's playback state and
// broadcasts it to everyone in the room (io.to(room).emit). Events:
//   client -> server: join {room}, seek {version, position_s}
//   server -> client: welcome {state} (to the joiner), state {state, reason, server_time_ms}
// Usage: node server.js PORT   (listens on 127.0.0.1 only)
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { attachRoomHandlers, makeRooms } = require('./rooms');

const port = Number(process.argv[2] || 3000);
const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });
const room = makeRooms();
attachRoomHandlers(io, room);

httpServer.listen(port, '127.0.0.1', () => console.log(`peer listening on 127.0.0.1:${port}`));
