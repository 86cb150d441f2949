// HTTP JSON client for /api/v1. The session token lives in localStorage and goes out as
// `Authorization: Bearer TOKEN`.

import type { ChatMessage, MemberInfo, PlaylistItem, RoomSettings, RoomSummary, StreamInfo, User, You } from './types';

const TOKEN_KEY = 'castmesh.token';
const USER_KEY = 'castmesh.user';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type AuthListener = () => void;
const authListeners = new Set<AuthListener>();

export const session = {
  get token(): string | null {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  get user(): User | null {
    try {
      const raw = localStorage.getItem(USER_KEY);
      return raw ? (JSON.parse(raw) as User) : null;
    } catch {
      return null;
    }
  },
  set(token: string, user: User): void {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    authListeners.forEach((f) => f());
  },
  setUser(user: User): void {
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    authListeners.forEach((f) => f());
  },
  clear(): void {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    authListeners.forEach((f) => f());
  },
  onChange(f: AuthListener): () => void {
    authListeners.add(f);
    return () => authListeners.delete(f);
  },
};

const FRIENDLY: Record<string, string> = {
  unauthorized: 'Please sign in to continue.',
  rate_limited: 'Too many attempts. Please wait a minute and try again.',
  unavailable: 'The server is busy right now. Please try again shortly.',
};

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const obj = (data && typeof data === 'object' ? data : {}) as { error?: string; code?: string };
    const code = obj.code ?? (res.status === 401 ? 'unauthorized' : res.status === 429 ? 'rate_limited' : `http_${res.status}`);
    const message = obj.error || FRIENDLY[code] || `Request failed (${res.status}).`;
    throw new ApiError(res.status, code, message);
  }
  return data as T;
}

export const api = {
  register: (username: string, password: string) =>
    request<{ user: User; token: string }>('POST', '/auth/register', { username, password }),
  login: (username: string, password: string) =>
    request<{ user: User; token: string }>('POST', '/auth/login', { username, password }),
  logout: () => request<void>('POST', '/auth/logout'),
  me: () => request<{ user: User }>('GET', '/auth/me'),

  rooms: () => request<{ rooms: RoomSummary[] }>('GET', '/rooms'),
  createRoom: (name: string, password: string | undefined, allowGuests: boolean) =>
    request<{ room: RoomSummary }>('POST', '/rooms', {
      name,
      ...(password ? { password } : {}),
      allow_guests: allowGuests,
    }),
  room: (id: string) => request<{ room: RoomSummary; you?: You | null }>('GET', `/rooms/${enc(id)}`),
  updateRoom: (
    id: string,
    patch: { name?: string; password?: string; allow_guests?: boolean; settings?: RoomSettings },
  ) => request<{ room: RoomSummary }>('PATCH', `/rooms/${enc(id)}`, patch),
  deleteRoom: (id: string) => request<void>('DELETE', `/rooms/${enc(id)}`),
  join: (id: string, password?: string) =>
    request<{ member: MemberInfo }>('POST', `/rooms/${enc(id)}/join`, password ? { password } : {}),
  guest: (id: string, name: string, password?: string) =>
    request<{ user: User; token: string }>('POST', `/rooms/${enc(id)}/guest`, {
      name,
      ...(password ? { password } : {}),
    }),

  members: (id: string) => request<{ members: MemberInfo[] }>('GET', `/rooms/${enc(id)}/members`),
  updateMember: (
    id: string,
    userId: number,
    patch: { role?: string; grant?: string[]; revoke?: string[]; clear?: string[] },
  ) => request<{ member: MemberInfo }>('PATCH', `/rooms/${enc(id)}/members/${userId}`, patch),
  kick: (id: string, userId: number, cooldownSecs?: number) =>
    request<void>(
      'POST',
      `/rooms/${enc(id)}/members/${userId}/kick`,
      cooldownSecs !== undefined ? { cooldown_secs: cooldownSecs } : {},
    ),
  ban: (id: string, userId: number) => request<void>('POST', `/rooms/${enc(id)}/members/${userId}/ban`, {}),
  unban: (id: string, userId: number) => request<void>('POST', `/rooms/${enc(id)}/members/${userId}/unban`, {}),

  playlist: (id: string) => request<{ items: PlaylistItem[] }>('GET', `/rooms/${enc(id)}/playlist`),
  chat: (id: string, limit = 50) => request<{ messages: ChatMessage[] }>('GET', `/rooms/${enc(id)}/chat?limit=${limit}`),

  publishKey: (id: string) =>
    request<{ publish_key: string; rtmp_url?: string; stream?: string }>('GET', `/rooms/${enc(id)}/publish-key`),
  rotatePublishKey: (id: string) =>
    request<{ publish_key: string; rtmp_url?: string; stream?: string }>('POST', `/rooms/${enc(id)}/publish-key`, {}),

  streams: () => request<{ streams: StreamInfo[] }>('GET', '/streams'),
};

function enc(s: string): string {
  return encodeURIComponent(s);
}
