// An in-memory stand-in for the castmesh room API (/api/v1 auth, rooms, streams and the room
// WebSocket of docs/protocol.md), serving web/dist with SPA fallback and test media under
// /media/. Used to develop and test the web UI without the C++ server.
//
//   node mock/server.mjs [--port 8090] [--dist ../../web/dist] [--media DIR]
//
// Prints "listening on http://127.0.0.1:PORT" once ready.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const PORT = Number(arg('port', process.env.PORT ?? 8090));
const DIST = resolve(arg('dist', join(here, '../../../web/dist')));
const MEDIA = arg('media', process.env.MEDIA_DIR ?? '');
// A real castmesh to take /live/* media and /api/v1/streams from (e.g. http://127.0.0.1:18080).
const UPSTREAM = arg('upstream', process.env.MOCK_UPSTREAM ?? '');

function proxy(req, res) {
  const u = new URL(req.url, UPSTREAM);
  const p = httpRequest(u, { method: req.method, headers: { ...req.headers, host: u.host } }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  p.on('error', () => {
    if (!res.headersSent) err(res, 502, 'unavailable', 'Upstream unavailable');
    else res.destroy();
  });
  req.pipe(p);
}

const PERMS = ['control_playback', 'seek', 'manage_playlist', 'manage_members', 'chat', 'manage_live'];
const ROLE_DEFAULTS = {
  creator: PERMS,
  admin: PERMS,
  member: ['control_playback', 'seek', 'manage_playlist', 'chat'],
  guest: ['chat'],
};

let nextId = 1;
const users = new Map(); // id -> {id, username, password, role}
const sessions = new Map(); // token -> userId
const rooms = new Map(); // id -> room
const streams = [];

function publicUser(u) {
  return { id: u.id, username: u.username, role: u.role };
}

function newToken(userId) {
  const t = randomBytes(24).toString('base64url');
  sessions.set(t, userId);
  return t;
}

function makeRoom(name, creator, password = '', allowGuests = false) {
  const id = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x');
  const room = {
    id,
    name,
    password,
    allow_guests: allowGuests,
    creator_id: creator.id,
    settings: { auto_advance: true, pause_on_buffering: false, guests_can_control: false },
    publish_key: randomBytes(12).toString('hex'),
    members: new Map(),
    items: [],
    chat: [],
    state: { item_id: 0, position_s: 0, rate: 1, playing: false, updated_at_ms: Date.now(), version: 1 },
    conns: new Set(),
    buffering: new Set(),
    endedFor: new Set(),
  };
  room.members.set(creator.id, { user_id: creator.id, role: 'creator', grants: new Set(), revokes: new Set(), banned: false, kicked_until_ms: 0 });
  rooms.set(id, room);
  return room;
}

function perms(room, m) {
  const base = new Set(ROLE_DEFAULTS[m.role] ?? []);
  if (m.role === 'guest' && room.settings.guests_can_control) {
    base.add('control_playback');
    base.add('seek');
  }
  for (const g of m.grants) base.add(g);
  for (const r of m.revokes) base.delete(r);
  return PERMS.filter((p) => base.has(p));
}

function summary(room) {
  const online = new Set([...room.conns].map((c) => c.userId)).size;
  const creator = users.get(room.creator_id);
  return {
    id: room.id,
    name: room.name,
    has_password: !!room.password,
    allow_guests: room.allow_guests,
    online,
    creator: creator ? creator.username : null,
    settings: room.settings,
  };
}

function memberJson(room, userId) {
  const m = room.members.get(userId);
  const u = users.get(userId);
  return {
    user_id: userId,
    username: u?.username ?? '?',
    role: m.role,
    permissions: perms(room, m),
    grants: [...m.grants],
    revokes: [...m.revokes],
    banned: m.banned,
    kicked_until_ms: m.kicked_until_ms,
  };
}

// ---- HTTP ------------------------------------------------------------------------------------

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
const err = (res, status, code, message) => send(res, status, { error: message, code });

function readBody(req) {
  return new Promise((ok) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      try {
        ok(data ? JSON.parse(data) : {});
      } catch {
        ok(null);
      }
    });
  });
}

function authUser(req, url) {
  let token = null;
  const h = req.headers.authorization;
  if (h && h.startsWith('Bearer ')) token = h.slice(7);
  if (!token && url) token = url.searchParams.get('token');
  if (!token && req.headers.cookie) {
    const m = /castmesh_token=([^;]+)/.exec(req.headers.cookie);
    if (m) token = m[1];
  }
  const id = token ? sessions.get(token) : undefined;
  return id ? users.get(id) : null;
}

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
};

function serveFile(req, res, file) {
  const st = statSync(file);
  const type = MIME[extname(file)] ?? 'application/octet-stream';
  const range = req.headers.range && /bytes=(\d*)-(\d*)/.exec(req.headers.range);
  if (range) {
    const start = range[1] ? Number(range[1]) : 0;
    const end = range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
    res.writeHead(206, {
      'Content-Type': type,
      'Content-Range': `bytes ${start}-${end}/${st.size}`,
      'Content-Length': end - start + 1,
      'Accept-Ranges': 'bytes',
      'Access-Control-Allow-Origin': '*',
    });
    createReadStream(file, { start, end }).pipe(res);
    return;
  }
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': st.size, 'Accept-Ranges': 'bytes', 'Access-Control-Allow-Origin': '*' });
  createReadStream(file).pipe(res);
}

function safeJoin(root, p) {
  const full = normalize(join(root, p));
  return full.startsWith(root) ? full : null;
}

async function api(req, res, url) {
  const path = url.pathname.slice('/api/v1'.length);
  const method = req.method;
  const me = authUser(req);
  const body = method === 'POST' || method === 'PATCH' ? await readBody(req) : {};
  if (body === null) return err(res, 400, 'bad_json', 'Invalid JSON body');

  if (path === '/auth/register' && method === 'POST') {
    const { username = '', password = '' } = body;
    if (!USERNAME.test(username)) return err(res, 400, 'bad_username', 'Usernames are 3–32 characters: letters, digits, _ . -');
    if (password.length < 8) return err(res, 400, 'bad_password', 'Password must be at least 8 characters');
    if ([...users.values()].some((u) => u.username.toLowerCase() === username.toLowerCase())) return err(res, 409, 'conflict', 'Username already taken');
    const u = { id: nextId++, username, password, role: users.size === 0 ? 'admin' : 'user' };
    users.set(u.id, u);
    const token = newToken(u.id);
    return send(res, 201, { user: publicUser(u), token }, { 'Set-Cookie': `castmesh_token=${token}; Path=/; HttpOnly; SameSite=Lax` });
  }
  if (path === '/auth/login' && method === 'POST') {
    const u = [...users.values()].find((x) => x.username === body.username && x.password === body.password && x.role !== 'guest');
    if (!u) return err(res, 401, 'unauthorized', 'Invalid username or password');
    return send(res, 200, { user: publicUser(u), token: newToken(u.id) });
  }
  if (path === '/streams' && method === 'GET') return send(res, 200, { streams });

  if (!me) {
    // Guest join is the one room call that works without a session.
    const g = /^\/rooms\/([^/]+)\/guest$/.exec(path);
    if (!(g && method === 'POST')) return err(res, 401, 'unauthorized', 'Authentication required');
  }
  if (path === '/auth/logout' && method === 'POST') {
    const t = (req.headers.authorization ?? '').slice(7);
    sessions.delete(t);
    return send(res, 204);
  }
  if (path === '/auth/me' && method === 'GET') return send(res, 200, { user: publicUser(me) });
  if (path === '/rooms' && method === 'GET') return send(res, 200, { rooms: [...rooms.values()].map(summary) });
  if (path === '/rooms' && method === 'POST') {
    const name = String(body.name ?? '').trim();
    if (!name || name.length > 64) return err(res, 400, 'bad_name', 'Room names are 1–64 characters');
    const room = makeRoom(name, me, body.password ?? '', !!body.allow_guests);
    return send(res, 201, { room: summary(room) });
  }
  const m = /^\/rooms\/([^/]+)(\/.*)?$/.exec(path);
  if (!m) return err(res, 404, 'not_found', 'Not found');
  const room = rooms.get(m[1]);
  if (!room) return err(res, 404, 'not_found', 'Room not found');
  const sub = m[2] ?? '';
  const mine = me ? room.members.get(me.id) : null;
  const can = (p) => mine && !mine.banned && perms(room, mine).includes(p);

  if (sub === '' && method === 'GET') {
    return send(res, 200, { room: summary(room), you: mine && !mine.banned ? memberJson(room, me.id) : null });
  }
  if (sub === '' && method === 'PATCH') {
    if (!(mine && (mine.role === 'creator' || mine.role === 'admin'))) return err(res, 403, 'forbidden', 'Only room admins can change settings');
    if (body.name !== undefined) room.name = String(body.name);
    if (body.password !== undefined) room.password = String(body.password);
    if (body.allow_guests !== undefined) room.allow_guests = !!body.allow_guests;
    if (body.settings) room.settings = { ...room.settings, ...body.settings };
    return send(res, 200, { room: summary(room) });
  }
  if (sub === '' && method === 'DELETE') {
    if (mine?.role !== 'creator') return err(res, 403, 'forbidden', 'Only the creator can delete the room');
    for (const c of room.conns) c.ws.close(4002, 'room deleted');
    rooms.delete(room.id);
    return send(res, 204);
  }
  if (sub === '/join' && method === 'POST') {
    if (mine?.banned) return err(res, 403, 'banned', 'You are banned from this room');
    if (mine && mine.kicked_until_ms > Date.now()) return err(res, 403, 'kicked', 'You were kicked; try again later');
    if (mine) return send(res, 200, { member: memberJson(room, me.id) });
    if (room.password && body.password !== room.password) return err(res, 403, 'wrong_password', 'Wrong room password');
    room.members.set(me.id, { user_id: me.id, role: 'member', grants: new Set(), revokes: new Set(), banned: false, kicked_until_ms: 0 });
    return send(res, 200, { member: memberJson(room, me.id) });
  }
  if (sub === '/guest' && method === 'POST') {
    if (!room.allow_guests) return err(res, 403, 'forbidden', 'This room does not allow guests');
    if (room.password && body.password !== room.password) return err(res, 403, 'wrong_password', 'Wrong room password');
    const name = String(body.name ?? '');
    if (!USERNAME.test(name)) return err(res, 400, 'bad_name', 'Names are 3–32 characters');
    if ([...users.values()].some((u) => u.username.toLowerCase() === name.toLowerCase())) return err(res, 409, 'conflict', 'Name already taken');
    const u = { id: nextId++, username: name, password: '', role: 'guest' };
    users.set(u.id, u);
    room.members.set(u.id, { user_id: u.id, role: 'guest', grants: new Set(), revokes: new Set(), banned: false, kicked_until_ms: 0 });
    return send(res, 201, { user: publicUser(u), token: newToken(u.id) });
  }
  if (sub === '/members' && method === 'GET') {
    if (!mine) return err(res, 403, 'forbidden', 'Not a member');
    return send(res, 200, { members: [...room.members.keys()].map((id) => memberJson(room, id)) });
  }
  const mm = /^\/members\/(\d+)(\/(kick|ban|unban))?$/.exec(sub);
  if (mm) {
    if (!can('manage_members')) return err(res, 403, 'forbidden', 'You cannot manage members');
    const target = room.members.get(Number(mm[1]));
    if (!target) return err(res, 404, 'not_found', 'No such member');
    if (target.role === 'creator') return err(res, 403, 'forbidden', 'The creator cannot be changed');
    const action = mm[3];
    if (!action && method === 'PATCH') {
      if (body.role) target.role = body.role;
      for (const p of body.grant ?? []) {
        target.grants.add(p);
        target.revokes.delete(p);
      }
      for (const p of body.revoke ?? []) {
        target.revokes.add(p);
        target.grants.delete(p);
      }
      for (const p of body.clear ?? []) {
        target.grants.delete(p);
        target.revokes.delete(p);
      }
      const j = memberJson(room, target.user_id);
      broadcast(room, { type: 'member', member: { user_id: j.user_id, username: j.username, role: j.role, permissions: j.permissions } });
      broadcastPresence(room);
      return send(res, 200, { member: j });
    }
    if (action === 'kick' && method === 'POST') {
      target.kicked_until_ms = Date.now() + 1000 * Number(body.cooldown_secs ?? 60);
      dropUser(room, target.user_id, 'You were kicked', target.kicked_until_ms);
      return send(res, 204);
    }
    if (action === 'ban' && method === 'POST') {
      target.banned = true;
      dropUser(room, target.user_id, 'You were banned', 0);
      return send(res, 204);
    }
    if (action === 'unban' && method === 'POST') {
      target.banned = false;
      return send(res, 204);
    }
  }
  if (sub === '/playlist' && method === 'GET') return send(res, 200, { items: room.items });
  if (sub.startsWith('/chat') && method === 'GET') return send(res, 200, { messages: room.chat.slice(-50) });
  if (sub === '/publish-key') {
    if (!can('manage_live')) return err(res, 403, 'forbidden', 'You cannot manage live settings');
    if (method === 'POST') room.publish_key = randomBytes(12).toString('hex');
    return send(res, 200, { publish_key: room.publish_key, rtmp_url: `rtmp://${(req.headers.host ?? '127.0.0.1').split(':')[0]}:1935/live`, stream: `live/${room.id}` });
  }
  return err(res, 404, 'not_found', 'Not found');
}

// ---- room protocol ---------------------------------------------------------------------------

function broadcast(room, msg) {
  const text = JSON.stringify(msg);
  for (const c of room.conns) if (c.ws.readyState === 1) c.ws.send(text);
}

function presence(room) {
  const by = new Map();
  for (const c of room.conns) {
    const cur = by.get(c.userId);
    if (cur) cur.connections++;
    else {
      const m = room.members.get(c.userId);
      by.set(c.userId, { user_id: c.userId, username: users.get(c.userId)?.username, role: m?.role ?? 'member', connections: 1 });
    }
  }
  return [...by.values()];
}

function broadcastPresence(room) {
  broadcast(room, { type: 'presence', members: presence(room) });
}

function dropUser(room, userId, reason, untilMs) {
  for (const c of [...room.conns]) {
    if (c.userId !== userId) continue;
    c.ws.send(JSON.stringify({ type: 'kicked', reason, until_ms: untilMs }));
    c.ws.close(4001, 'kicked');
  }
}

function position(room, now = Date.now()) {
  const s = room.state;
  return s.playing ? s.position_s + ((now - s.updated_at_ms) / 1000) * s.rate : s.position_s;
}

function setState(room, patch, by, reason) {
  const now = Date.now();
  room.state = { ...room.state, position_s: position(room, now), ...patch, updated_at_ms: now, version: room.state.version + 1 };
  broadcast(room, { type: 'state', state: room.state, by, reason, server_time_ms: now });
}

function selectItem(room, itemId, by, reason) {
  room.endedFor.delete(itemId);
  const item = room.items.find((i) => i.id === itemId);
  setState(room, { item_id: itemId, position_s: 0 }, by, reason);
  if (item?.kind === 'live') broadcast(room, { type: 'live', target_offset_s: 3 });
}

function handle(room, conn, msg) {
  const me = users.get(conn.userId);
  const m = room.members.get(conn.userId);
  const by = { user_id: me.id, username: me.username };
  const reply = (o) => conn.ws.send(JSON.stringify({ ...o, ...(msg.ref !== undefined ? { ref: msg.ref } : {}) }));
  const need = (p) => {
    if (perms(room, m).includes(p)) return true;
    reply({ type: 'error', code: 'forbidden', message: `Missing permission ${p}` });
    return false;
  };
  const versioned = () => {
    if (msg.version === room.state.version) return true;
    reply({ type: 'error', code: 'stale_version', message: 'State changed', state: room.state });
    return false;
  };
  switch (msg.type) {
    case 'ping':
      return reply({ type: 'pong', t: msg.t, server_time_ms: Date.now() });
    case 'play':
      if (!need('control_playback') || !versioned()) return;
      return setState(room, { playing: true, ...(msg.position_s !== undefined ? { position_s: msg.position_s } : {}) }, by, 'play');
    case 'pause':
      if (!need('control_playback') || !versioned()) return;
      return setState(room, { playing: false, ...(msg.position_s !== undefined ? { position_s: msg.position_s } : {}) }, by, 'pause');
    case 'seek':
      if (!need('seek') || !versioned()) return;
      return setState(room, { position_s: Math.max(0, Number(msg.position_s) || 0) }, by, 'seek');
    case 'rate':
      if (!need('control_playback') || !versioned()) return;
      return setState(room, { rate: Math.min(4, Math.max(0.25, Number(msg.rate) || 1)) }, by, 'rate');
    case 'next': {
      if (!need('control_playback') || !versioned()) return;
      const idx = room.items.findIndex((i) => i.id === room.state.item_id);
      const nxt = room.items[idx + 1];
      return selectItem(room, nxt ? nxt.id : 0, by, 'next');
    }
    case 'set_item':
      if (!need('control_playback') || !versioned()) return;
      if (!room.items.some((i) => i.id === msg.item_id)) return reply({ type: 'error', code: 'not_found', message: 'No such item' });
      return selectItem(room, msg.item_id, by, 'set_item');
    case 'buffering':
      if (msg.buffering) room.buffering.add(conn);
      else room.buffering.delete(conn);
      if (room.settings.pause_on_buffering) {
        if (room.buffering.size > 0 && room.state.playing) {
          room.waiting = true;
          setState(room, { playing: false }, null, 'buffering');
        } else if (room.buffering.size === 0 && room.waiting) {
          room.waiting = false;
          setState(room, { playing: true }, null, 'buffering');
        }
      }
      return;
    case 'ended': {
      if (msg.item_id !== room.state.item_id || room.endedFor.has(msg.item_id) || !room.settings.auto_advance) return;
      room.endedFor.add(msg.item_id);
      const idx = room.items.findIndex((i) => i.id === room.state.item_id);
      const nxt = room.items[idx + 1];
      if (nxt) selectItem(room, nxt.id, null, 'auto');
      else setState(room, { playing: false }, null, 'ended');
      return;
    }
    case 'chat': {
      if (!need('chat')) return;
      const text = String(msg.text ?? '');
      if (!text || text.length > 2000) return reply({ type: 'error', code: 'bad_message', message: 'Chat text must be 1..2000 characters' });
      const message = { id: nextId++, user_id: me.id, username: me.username, text, created_at_ms: Date.now() };
      room.chat.push(message);
      if (room.chat.length > 200) room.chat.shift();
      return broadcast(room, { type: 'chat', message });
    }
    case 'playlist_add': {
      if (!need('manage_playlist')) return;
      if (!['url', 'live'].includes(msg.kind) || !msg.url) return reply({ type: 'error', code: 'bad_message', message: 'kind and url required' });
      room.items.push({ id: nextId++, kind: msg.kind, url: String(msg.url), title: String(msg.title ?? ''), position: room.items.length, added_by: me.id });
      return broadcast(room, { type: 'playlist', items: room.items });
    }
    case 'playlist_remove':
      if (!need('manage_playlist')) return;
      room.items = room.items.filter((i) => i.id !== msg.item_id).map((i, k) => ({ ...i, position: k }));
      broadcast(room, { type: 'playlist', items: room.items });
      if (room.state.item_id === msg.item_id) setState(room, { item_id: 0, position_s: 0, playing: false }, by, 'set_item');
      return;
    case 'playlist_move': {
      if (!need('manage_playlist')) return;
      const ids = msg.item_ids ?? [];
      if (ids.length !== room.items.length || !ids.every((id) => room.items.some((i) => i.id === id))) {
        return reply({ type: 'error', code: 'bad_message', message: 'item_ids must list every item' });
      }
      room.items = ids.map((id, k) => ({ ...room.items.find((i) => i.id === id), position: k }));
      return broadcast(room, { type: 'playlist', items: room.items });
    }
    case 'live_offset':
      return;
    default:
      return reply({ type: 'error', code: 'unknown_type', message: `Unknown type ${msg.type}` });
  }
}

// ---- server ----------------------------------------------------------------------------------

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (UPSTREAM && (url.pathname.startsWith('/live/') || url.pathname.startsWith('/api/v1/streams'))) return proxy(req, res);
    if (url.pathname.startsWith('/api/v1/')) return await api(req, res, url);
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
    if (url.pathname.startsWith('/media/') && MEDIA) {
      const f = safeJoin(resolve(MEDIA), decodeURIComponent(url.pathname.slice(7)));
      if (f && existsSync(f) && statSync(f).isFile()) return serveFile(req, res, f);
      return err(res, 404, 'not_found', 'No such media');
    }
    if (url.pathname.startsWith('/live/')) return err(res, 404, 'not_found', 'No such stream');
    const f = safeJoin(DIST, decodeURIComponent(url.pathname));
    if (f && existsSync(f) && statSync(f).isFile()) return serveFile(req, res, f);
    return serveFile(req, res, join(DIST, 'index.html'));
  } catch (e) {
    console.error(e);
    if (!res.headersSent) err(res, 500, 'internal', 'Internal error');
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 16384 });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const m = /^\/api\/v1\/rooms\/([^/]+)\/ws$/.exec(url.pathname);
  const refuse = (code, text) => {
    socket.write(`HTTP/1.1 ${code} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    socket.destroy();
  };
  if (!m) return refuse(404, 'Not Found');
  const room = rooms.get(m[1]);
  if (!room) return refuse(404, 'Not Found');
  const me = authUser(req, url);
  if (!me) return refuse(401, 'Unauthorized');
  const mem = room.members.get(me.id);
  if (!mem || mem.banned || mem.kicked_until_ms > Date.now()) return refuse(403, 'Forbidden');
  wss.handleUpgrade(req, socket, head, (ws) => {
    const conn = { ws, userId: me.id };
    room.conns.add(conn);
    const now = Date.now();
    ws.send(
      JSON.stringify({
        type: 'welcome',
        v: 1,
        server_time_ms: now,
        room: { id: room.id, name: room.name, settings: room.settings },
        you: (({ user_id, username, role, permissions }) => ({ user_id, username, role, permissions }))(memberJson(room, me.id)),
        state: room.state,
        playlist: { items: room.items },
        members: presence(room),
        chat: room.chat.slice(-50),
      }),
    );
    const cur = room.items.find((i) => i.id === room.state.item_id);
    if (cur?.kind === 'live') ws.send(JSON.stringify({ type: 'live', target_offset_s: 3 }));
    broadcastPresence(room);
    ws.on('message', (data) => {
      let msg;
      try {
        msg = JSON.parse(String(data));
      } catch {
        return ws.send(JSON.stringify({ type: 'error', code: 'bad_json', message: 'Invalid JSON' }));
      }
      if (!msg || typeof msg.type !== 'string') return ws.send(JSON.stringify({ type: 'error', code: 'bad_message', message: 'type required' }));
      handle(room, conn, msg);
    });
    ws.on('close', () => {
      room.conns.delete(conn);
      if (room.buffering.delete(conn) && room.buffering.size === 0 && room.waiting) {
        room.waiting = false;
        setState(room, { playing: true }, null, 'buffering');
      }
      broadcastPresence(room);
    });
  });
});

// Test hooks: seed data and fake live streams.
if (process.env.MOCK_STREAMS) {
  for (const key of process.env.MOCK_STREAMS.split(',')) {
    const [app, stream] = key.split('/');
    streams.push({
      key,
      app,
      stream,
      publishing: true,
      video: { codec: 'H264', width: 1920, height: 1080, fps: 30 },
      audio: { codec: 'AAC', sample_rate: 48000, channels: 2 },
      bitrate_kbps: 4500,
      subscribers: { rtmp: 0, httpflv: 1, hls: 3, total: 4 },
      uptime_ms: 754000,
      bytes_in: 123456789,
      dropped_gops: 0,
    });
  }
}

server.listen(PORT, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
