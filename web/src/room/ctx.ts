// State shared by the panels of one room page.

import type { SyncEngine } from '../sync';
import type { ChatMessage, PlaylistItem, PresenceMember, RoomSettings, RoomSummary, You } from '../types';

export type RoomEvent = 'you' | 'presence' | 'playlist' | 'state' | 'room' | 'chat' | 'member' | 'connection';

export interface RoomCtx {
  roomId: string;
  room: { id: string; name: string; settings: RoomSettings };
  summary: RoomSummary | null;
  you: You;
  presence: PresenceMember[];
  engine: SyncEngine;
  connected: boolean;
  send(msg: Record<string, unknown>): void;
  can(perm: string): boolean;
  isRoomAdmin(): boolean;
  on(ev: RoomEvent, fn: (data?: unknown) => void): void;
  emit(ev: RoomEvent, data?: unknown): void;
  itemTitle(item: PlaylistItem): string;
  usernameOf(userId: number): string | null;
}

export function createCtx(init: {
  roomId: string;
  room: { id: string; name: string; settings: RoomSettings };
  summary: RoomSummary | null;
  you: You;
  engine: SyncEngine;
  send: (msg: Record<string, unknown>) => void;
}): RoomCtx {
  const listeners = new Map<RoomEvent, Set<(data?: unknown) => void>>();
  const ctx: RoomCtx = {
    ...init,
    presence: [],
    connected: false,
    can(perm) {
      return ctx.you.permissions.includes(perm);
    },
    isRoomAdmin() {
      return ctx.you.role === 'creator' || ctx.you.role === 'admin';
    },
    on(ev, fn) {
      if (!listeners.has(ev)) listeners.set(ev, new Set());
      listeners.get(ev)!.add(fn);
    },
    emit(ev, data) {
      listeners.get(ev)?.forEach((fn) => fn(data));
    },
    itemTitle(item) {
      return itemTitle(item);
    },
    usernameOf(userId) {
      return ctx.presence.find((m) => m.user_id === userId)?.username ?? null;
    },
  };
  return ctx;
}

export function itemTitle(item: PlaylistItem): string {
  if (item.title && item.title.trim()) return item.title.trim();
  if (item.kind === 'live') return `Live: ${item.url}`;
  try {
    const u = new URL(item.url, window.location.href);
    const last = decodeURIComponent(u.pathname.split('/').filter(Boolean).pop() ?? '');
    return last || u.host || item.url;
  } catch {
    return item.url;
  }
}

export function describeChange(reason: string, by: string | null, title: string | null): string | null {
  const who = by ?? 'Someone';
  switch (reason) {
    case 'play':
      return `${who} pressed play`;
    case 'pause':
      return `${who} paused`;
    case 'seek':
      return `${who} jumped to a new position`;
    case 'rate':
      return `${who} changed the speed`;
    case 'next':
      return title ? `${who} skipped to “${title}”` : `${who} skipped ahead`;
    case 'set_item':
      return title ? `${who} started “${title}”` : `${who} changed the video`;
    case 'ended':
    case 'auto':
      return title ? `Up next: “${title}”` : null;
    default:
      return null;
  }
}

export type { ChatMessage };
