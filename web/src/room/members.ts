// Members panel: who is online (presence), everyone else who joined, and admin actions
// (role, per-permission grants/revokes, kick, ban/unban) for members with manage_members.

import { ApiError, api } from '../api';
import { avatar, h, icon, replace } from '../dom';
import { type MemberInfo, PERMISSIONS } from '../types';
import { ErrorSlot, confirmDialog, emptyState, field, openModal, toast } from '../ui';
import type { RoomCtx } from './ctx';

const PERM_LABEL: Record<string, string> = {
  control_playback: 'Play, pause, speed, next',
  seek: 'Seek',
  manage_playlist: 'Edit the playlist',
  manage_members: 'Manage members',
  chat: 'Chat',
  manage_live: 'Publish key and live settings',
};

const ROLE_LABEL: Record<string, string> = { creator: 'Owner', admin: 'Admin', member: 'Member', guest: 'Guest' };

/// Permission names from a list or a bit mask (bit i = PERMISSIONS[i]).
export function permNames(v: string[] | number | undefined): string[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'number') return PERMISSIONS.filter((_, i) => (v & (1 << i)) !== 0);
  return [];
}

export class MembersPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private all: MemberInfo[] = [];
  private loadError: string | null = null;
  private menu: HTMLElement | null = null;
  private loadTimer: number | undefined;

  constructor(private readonly ctx: RoomCtx) {
    this.body = h('div', { class: 'panel-scroll' });
    this.el = h('div', { class: 'panel' }, this.body);
    ctx.on('presence', () => {
      this.render();
      // Someone new may have joined: refresh the full list shortly (coalesced).
      window.clearTimeout(this.loadTimer);
      this.loadTimer = window.setTimeout(() => void this.load(), 800);
    });
    ctx.on('member', () => void this.load());
    ctx.on('you', () => this.render());
    document.addEventListener('click', this.closeMenu, true);
    void this.load();
  }

  destroy(): void {
    window.clearTimeout(this.loadTimer);
    document.removeEventListener('click', this.closeMenu, true);
    this.menu?.remove();
  }

  private closeMenu = (e: Event) => {
    if (this.menu && !this.menu.contains(e.target as Node)) {
      this.menu.remove();
      this.menu = null;
    }
  };

  async load(): Promise<void> {
    try {
      const r = await api.members(this.ctx.roomId);
      this.all = r.members ?? [];
      this.loadError = null;
    } catch (e) {
      this.loadError = (e as ApiError).status === 403 ? null : (e as ApiError).message;
    }
    this.render();
  }

  private render(): void {
    const online = [...this.ctx.presence].sort((a, b) => rank(a.role) - rank(b.role) || a.username.localeCompare(b.username));
    const onlineIds = new Set(online.map((m) => m.user_id));
    const offline = this.all
      .filter((m) => !onlineIds.has(m.user_id))
      .sort((a, b) => Number(!!a.banned) - Number(!!b.banned) || rank(a.role) - rank(b.role) || a.username.localeCompare(b.username));
    const byId = new Map(this.all.map((m) => [m.user_id, m]));
    const children: HTMLElement[] = [];
    children.push(h('div', { class: 'section-title' }, `Online — ${online.length}`));
    if (online.length === 0) children.push(h('div', { class: 'muted', style: 'padding:4px 6px 10px;font-size:13px' }, 'Nobody is connected.'));
    for (const p of online) {
      const info = byId.get(p.user_id);
      children.push(this.row({ ...info, ...p, permissions: info?.permissions }, true, p.connections));
    }
    if (offline.length) {
      children.push(h('div', { class: 'section-title', style: 'margin-top:18px' }, `Offline — ${offline.length}`));
      for (const m of offline) children.push(this.row(m, false, 0));
    }
    if (this.loadError) children.push(h('div', { class: 'muted', style: 'font-size:12px;padding:8px 6px' }, this.loadError));
    if (online.length === 0 && offline.length === 0) {
      replace(this.body, emptyState('users', 'No members yet', 'Share the room link to invite people.', null, true));
      return;
    }
    replace(this.body, ...children);
  }

  private row(m: MemberInfo, isOnline: boolean, connections: number): HTMLElement {
    const me = m.user_id === this.ctx.you.user_id;
    const canManage = this.ctx.can('manage_members') && !me && m.role !== 'creator';
    const sub: string[] = [];
    if (m.banned) sub.push('Banned');
    else if (m.kicked_until_ms && m.kicked_until_ms > Date.now()) sub.push('Kicked');
    if (isOnline) sub.push(connections > 1 ? `Online · ${connections} tabs` : 'Online');
    const moreBtn = canManage
      ? h(
          'button',
          { class: 'btn btn-ghost btn-icon btn-sm', title: 'Manage', 'aria-label': `Manage ${m.username}` },
          icon('settings', 15),
        )
      : null;
    moreBtn?.addEventListener('click', (e) => {
      e.stopPropagation();
      this.openMenu(moreBtn, m);
    });
    return h(
      'div',
      { class: `member${isOnline ? '' : ' offline'}`, dataset: { userId: String(m.user_id) } },
      h('span', { style: 'position:relative;display:inline-flex' }, avatar(m.username, 32)),
      h(
        'div',
        { class: 'm-main' },
        h(
          'div',
          { class: 'm-name' },
          h('span', { class: 'ellipsis' }, m.username),
          me ? h('span', { class: 'muted', style: 'font-weight:400;font-size:12px' }, '(you)') : null,
          h('span', { class: `role role-${m.role}` }, ROLE_LABEL[m.role] ?? m.role),
        ),
        sub.length ? h('div', { class: 'm-sub' }, sub.join(' · ')) : null,
      ),
      h('span', { class: `dot${isOnline ? ' dot-on' : ''}`, title: isOnline ? 'Online' : 'Offline' }),
      moreBtn,
    );
  }

  private openMenu(anchor: HTMLElement, m: MemberInfo): void {
    this.menu?.remove();
    const item = (label: string, ic: string, fn: () => void, danger = false) =>
      h(
        'button',
        {
          type: 'button',
          class: danger ? 'danger' : '',
          on: {
            click: () => {
              this.menu?.remove();
              this.menu = null;
              fn();
            },
          },
        },
        icon(ic, 15),
        label,
      );
    const isAdmin = m.role === 'admin';
    const menu = h(
      'div',
      { class: 'menu', role: 'menu' },
      m.role !== 'guest'
        ? item(isAdmin ? 'Make member' : 'Make admin', 'shield', () => void this.setRole(m, isAdmin ? 'member' : 'admin'))
        : null,
      item('Permissions…', 'key', () => this.editPermissions(m)),
      h('hr'),
      item('Kick…', 'door', () => this.kick(m), true),
      m.banned ? item('Unban', 'check', () => void this.unban(m)) : item('Ban', 'ban', () => void this.ban(m), true),
    );
    document.body.appendChild(menu);
    const r = anchor.getBoundingClientRect();
    menu.style.top = `${r.bottom + window.scrollY + 4}px`;
    menu.style.left = `${Math.max(8, r.right + window.scrollX - 190)}px`;
    this.menu = menu;
  }

  private async setRole(m: MemberInfo, role: string): Promise<void> {
    try {
      await api.updateMember(this.ctx.roomId, m.user_id, { role });
      toast(`${m.username} is now ${role === 'admin' ? 'an admin' : 'a member'}.`, 'ok');
      void this.load();
    } catch (e) {
      toast((e as ApiError).message, 'error');
    }
  }

  private kick(m: MemberInfo): void {
    const error = new ErrorSlot();
    const minutes = h(
      'select',
      { class: 'input' },
      h('option', { value: '60' }, '1 minute'),
      h('option', { value: '600' }, '10 minutes'),
      h('option', { value: '3600' }, '1 hour'),
      h('option', { value: '86400' }, '1 day'),
    );
    const submit = h('button', { type: 'submit', class: 'btn btn-danger' }, 'Kick');
    openModal(`Kick ${m.username}?`, (close) => ({
      body: [
        h('p', null, 'They are disconnected now and cannot rejoin until the cooldown ends.'),
        error.el,
        field('Cooldown', minutes),
      ],
      foot: [h('button', { type: 'button', class: 'btn btn-ghost', on: { click: close } }, 'Cancel'), submit],
      onSubmit: async () => {
        submit.disabled = true;
        try {
          await api.kick(this.ctx.roomId, m.user_id, Number(minutes.value));
          close();
          toast(`${m.username} was kicked.`, 'ok');
          void this.load();
        } catch (e) {
          error.set((e as ApiError).message);
        } finally {
          submit.disabled = false;
        }
      },
    }));
  }

  private async ban(m: MemberInfo): Promise<void> {
    if (!(await confirmDialog(`Ban ${m.username}?`, 'They are removed from the room and cannot join again until unbanned.', 'Ban'))) return;
    try {
      await api.ban(this.ctx.roomId, m.user_id);
      toast(`${m.username} was banned.`, 'ok');
      void this.load();
    } catch (e) {
      toast((e as ApiError).message, 'error');
    }
  }

  private async unban(m: MemberInfo): Promise<void> {
    try {
      await api.unban(this.ctx.roomId, m.user_id);
      toast(`${m.username} can join again.`, 'ok');
      void this.load();
    } catch (e) {
      toast((e as ApiError).message, 'error');
    }
  }

  private editPermissions(m: MemberInfo): void {
    const grants = new Set(permNames(m.grants));
    const revokes = new Set(permNames(m.revokes));
    const choice = new Map<string, 'default' | 'grant' | 'revoke'>();
    for (const p of PERMISSIONS) choice.set(p, revokes.has(p) ? 'revoke' : grants.has(p) ? 'grant' : 'default');
    const error = new ErrorSlot();
    const rows = PERMISSIONS.map((p) => {
      const seg = h('div', { class: 'seg', role: 'radiogroup', 'aria-label': p });
      const draw = () => {
        replace(
          seg,
          ...(['default', 'grant', 'revoke'] as const).map((c) =>
            h(
              'button',
              {
                type: 'button',
                class: `${c}${choice.get(p) === c ? ' on' : ''}`,
                'aria-pressed': String(choice.get(p) === c),
                on: {
                  click: () => {
                    choice.set(p, c);
                    draw();
                  },
                },
              },
              c === 'default' ? 'Role default' : c === 'grant' ? 'Allow' : 'Deny',
            ),
          ),
        );
      };
      draw();
      return h('tr', null, h('td', null, PERM_LABEL[p] ?? p), h('td', null, seg));
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');
    openModal(`Permissions for ${m.username}`, (close) => ({
      body: [
        h('p', null, `Role: ${ROLE_LABEL[m.role] ?? m.role}. “Deny” always wins over the role and over “Allow”.`),
        error.el,
        h('table', { class: 'perm-table' }, h('tbody', null, ...rows)),
      ],
      foot: [h('button', { type: 'button', class: 'btn btn-ghost', on: { click: close } }, 'Cancel'), submit],
      onSubmit: async () => {
        const grant: string[] = [];
        const revoke: string[] = [];
        const clear: string[] = [];
        for (const [p, c] of choice) (c === 'grant' ? grant : c === 'revoke' ? revoke : clear).push(p);
        submit.disabled = true;
        try {
          await api.updateMember(this.ctx.roomId, m.user_id, { grant, revoke, clear });
          close();
          toast(`Permissions of ${m.username} updated.`, 'ok');
          void this.load();
        } catch (e) {
          error.set((e as ApiError).message);
        } finally {
          submit.disabled = false;
        }
      },
    }));
  }
}

function rank(role: string): number {
  return role === 'creator' ? 0 : role === 'admin' ? 1 : role === 'member' ? 2 : 3;
}
