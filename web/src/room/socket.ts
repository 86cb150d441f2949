// The room WebSocket: JSON frames, reconnection with backoff, ping schedule
// (five quick pings after connecting, then one every 2 s — docs/protocol.md).

import { session } from '../api';
import type { ServerMessage } from '../types';

export type SocketStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface SocketHandlers {
  message(msg: ServerMessage): void;
  status(status: SocketStatus, info: { code?: number; reason?: string; openedOnce: boolean }): void;
  /// Called after a connection attempt failed before opening (e.g. 401/403/404 on upgrade).
  /// Return false to stop reconnecting.
  failedToOpen(): Promise<boolean>;
  ping(): void;
}

export class RoomSocket {
  private ws: WebSocket | null = null;
  private attempts = 0;
  private stopped = false;
  private reconnectTimer: number | undefined;
  private pingTimers: number[] = [];
  private openedOnce = false;
  private queue: string[] = [];

  constructor(
    private readonly roomId: string,
    private readonly h: SocketHandlers,
  ) {}

  url(): string {
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const token = session.token ?? '';
    return `${proto}//${window.location.host}/api/v1/rooms/${encodeURIComponent(this.roomId)}/ws?token=${encodeURIComponent(token)}`;
  }

  connect(): void {
    if (this.stopped) return;
    this.h.status(this.openedOnce ? 'reconnecting' : 'connecting', { openedOnce: this.openedOnce });
    let opened = false;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.openedOnce = true;
      this.attempts = 0;
      this.h.status('open', { openedOnce: true });
      for (const q of this.queue.splice(0)) ws.send(q);
      this.startPings();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(ev.data) as ServerMessage;
      } catch {
        return;
      }
      if (msg && typeof msg === 'object' && typeof msg.type === 'string') this.h.message(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPings();
      if (this.stopped) return;
      if (ev.code === 4001 || ev.code === 4004) {
        // 4001 kicked (the server already sent the reason), 4004 room deleted.
        this.stopped = true;
        this.h.status('closed', { code: ev.code, reason: ev.reason, openedOnce: this.openedOnce });
        return;
      }
      this.h.status('reconnecting', { code: ev.code, reason: ev.reason, openedOnce: this.openedOnce });
      if (!opened) {
        void this.h.failedToOpen().then((retry) => {
          if (retry) this.scheduleReconnect();
          else this.close();
        });
      } else {
        this.scheduleReconnect();
      }
    };
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.attempts++;
    const delay = Math.min(15_000, 500 * 2 ** Math.min(this.attempts, 5)) * (0.8 + Math.random() * 0.4);
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.connect(), delay);
  }

  private startPings(): void {
    this.stopPings();
    for (let i = 0; i < 5; i++) this.pingTimers.push(window.setTimeout(() => this.h.ping(), i * 150));
    this.pingTimers.push(window.setInterval(() => this.h.ping(), 2000));
  }

  private stopPings(): void {
    for (const t of this.pingTimers) {
      window.clearTimeout(t);
      window.clearInterval(t);
    }
    this.pingTimers = [];
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(msg: Record<string, unknown>): void {
    const text = JSON.stringify(msg);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
    else if (msg.type !== 'ping' && this.queue.length < 20) this.queue.push(text);
  }

  close(): void {
    this.stopped = true;
    window.clearTimeout(this.reconnectTimer);
    this.stopPings();
    const ws = this.ws;
    this.ws = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000);
    this.h.status('closed', { openedOnce: this.openedOnce });
  }
}
