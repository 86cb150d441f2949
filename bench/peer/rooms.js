// The peer's room logic, shared by server.js (one process) and cluster_server.js (several
// processes on one Redis). A client emits `seek`; the server checks the version, updates the
// room's playback state and broadcasts it to the room (io.to(room).emit).
//   client -> server: join {room}, seek {version, position_s}
//   server -> client: welcome {state} (to the joiner), state {state, reason, server_time_ms}
'use strict';

/// Room states by name, created on first use.
function makeRooms() {
  const rooms = new Map();  // name -> {state}
  return function room(name) {
    let r = rooms.get(name);
    if (!r) {
      r = { state: { item_id: 1, position_s: 0, rate: 1, playing: true, updated_at_ms: Date.now(), version: 1 } };
      rooms.set(name, r);
    }
    return r;
  };
}

/// Adds the join/seek handlers to `io`. `onApplied(name, state)` (optional) runs after a seek
/// was applied and broadcast.
function attachRoomHandlers(io, room, onApplied) {
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
      if (onApplied) onApplied(joined, r.state);
    });
  });
}

module.exports = { makeRooms, attachRoomHandlers };
