// Shapes of the HTTP API (/api/v1) and of the room WebSocket protocol (docs/protocol.md).

export interface User {
  id: number;
  username: string;
  role: string; // "root" | "admin" | "user" | "guest"
}

export interface RoomSummary {
  id: string;
  name: string;
  has_password: boolean;
  allow_guests: boolean;
  online: number;
  creator?: number | string | { id?: number; username?: string } | null;
  settings?: RoomSettings;
}

export interface RoomSettings {
  pause_on_buffering?: boolean;
  auto_advance?: boolean;
  guests_can_control?: boolean;
  [key: string]: unknown;
}

export const PERMISSIONS = [
  'control_playback',
  'seek',
  'manage_playlist',
  'manage_members',
  'chat',
  'manage_live',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export interface You {
  user_id: number;
  username: string;
  role: string; // "creator" | "admin" | "member" | "guest"
  permissions: string[];
}

export interface MemberInfo {
  user_id: number;
  username: string;
  role: string;
  permissions?: string[];
  grants?: string[] | number;
  revokes?: string[] | number;
  banned?: boolean;
  kicked_until_ms?: number;
  connections?: number;
}

export interface PresenceMember {
  user_id: number;
  username: string;
  role: string;
  connections: number;
}

export type ItemKind = 'url' | 'live';

export interface PlaylistItem {
  id: number;
  kind: ItemKind;
  url: string;
  title: string;
  position: number;
  added_by: number;
}

export interface PlaybackState {
  item_id: number;
  position_s: number;
  rate: number;
  playing: boolean;
  updated_at_ms: number;
  version: number;
}

export interface ChatMessage {
  id: number;
  user_id: number;
  username: string;
  text: string;
  created_at_ms: number;
}

export interface StreamInfo {
  key: string;
  app: string;
  stream: string;
  publishing: boolean;
  video: { codec: string; width: number; height: number; fps: number };
  audio: { codec: string; sample_rate: number; channels: number };
  bitrate_kbps: number;
  subscribers: { rtmp: number; httpflv: number; hls: number; total: number };
  uptime_ms: number;
  bytes_in: number;
  dropped_gops: number;
  // Cluster mode only (absent on a single node): the node that holds the publisher, its lease
  // epoch, "H264,AAC", when the publish started (Unix ms), and each alive node's viewers.
  owner?: string;
  epoch?: number;
  codecs?: string;
  started_ms?: number;
  nodes?: StreamNodeInfo[];
}

/// One alive cluster node's view of a stream in GET /api/v1/streams (cluster mode).
export interface StreamNodeInfo {
  node_id: string;
  viewers: { rtmp: number; httpflv: number; hls: number; total: number };
  relay: boolean; // this node runs an edge relay of the stream
}

export interface Welcome {
  type: 'welcome';
  v: number;
  server_time_ms: number;
  room: { id: string; name: string; settings: RoomSettings };
  you: You;
  state: PlaybackState;
  playlist: { items: PlaylistItem[] };
  members: PresenceMember[];
  chat: ChatMessage[];
}

export interface Actor {
  user_id: number;
  username: string;
}

export type ServerMessage =
  | Welcome
  | { type: 'state'; state: PlaybackState; by: Actor | null; reason: string; server_time_ms: number }
  | { type: 'pong'; t: number; server_time_ms: number }
  | { type: 'chat'; message: ChatMessage }
  | { type: 'presence'; members: PresenceMember[] }
  | { type: 'playlist'; items: PlaylistItem[] }
  | { type: 'member'; member: You }
  | { type: 'live'; target_offset_s: number }
  | { type: 'kicked'; reason: string; until_ms: number }
  | { type: 'error'; code: string; message?: string; ref?: string | number; state?: PlaybackState };
