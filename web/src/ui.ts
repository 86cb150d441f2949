// Shared UI pieces: toasts, modal dialogs, empty states, inline errors.

import { type Child, h, icon, replace } from './dom';

let toastRoot: HTMLElement | null = null;

export function toast(message: string, kind: 'info' | 'error' | 'ok' = 'info', ms = 3800): void {
  if (!toastRoot) {
    toastRoot = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toastRoot);
  }
  const ic = kind === 'error' ? 'alert' : kind === 'ok' ? 'check' : 'radio';
  const el = h('div', { class: `toast toast-${kind}` }, icon(ic, 16), h('span', null, message));
  toastRoot.appendChild(el);
  window.setTimeout(() => el.remove(), ms);
}

export function alertBox(message: string, kind: 'error' | 'info' = 'error'): HTMLElement {
  return h(
    'div',
    { class: `alert${kind === 'info' ? ' alert-info' : ''}`, role: kind === 'error' ? 'alert' : 'note' },
    icon(kind === 'error' ? 'alert' : 'radio', 16),
    h('span', null, message),
  );
}

/// An element that shows an inline error (or nothing).
export class ErrorSlot {
  readonly el = h('div', { class: 'error-slot' });
  set(message: string | null): void {
    if (message) replace(this.el, alertBox(message));
    else replace(this.el);
  }
}

export function emptyState(iconName: string, title: string, text: Child, action?: Child, small = false): HTMLElement {
  return h(
    'div',
    { class: `empty${small ? ' empty-sm' : ''}` },
    h('div', { class: 'empty-icon' }, icon(iconName, small ? 20 : 26)),
    h('h3', null, title),
    h('p', null, text),
    action ?? null,
  );
}

export interface ModalHandle {
  dialog: HTMLDialogElement;
  close(): void;
}

/// Opens a modal dialog; `build` receives a close function and returns body and footer.
export function openModal(
  title: string,
  build: (close: () => void) => { body: Child; foot?: Child; onSubmit?: () => void | Promise<void> },
): ModalHandle {
  const dialog = h('dialog', { class: 'modal' }) as HTMLDialogElement;
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const parts = build(close);
  const form = h(
    'form',
    {
      method: 'dialog',
      on: {
        submit: (ev: SubmitEvent) => {
          ev.preventDefault();
          void parts.onSubmit?.();
        },
      },
    },
    h(
      'div',
      { class: 'modal-head' },
      h('h2', null, title),
      h(
        'button',
        { type: 'button', class: 'btn btn-ghost btn-icon btn-sm', 'aria-label': 'Close', on: { click: close } },
        icon('close', 16),
      ),
    ),
    h('div', { class: 'modal-body' }, parts.body),
    parts.foot ? h('div', { class: 'modal-foot' }, parts.foot) : null,
  );
  dialog.appendChild(form);
  dialog.addEventListener('cancel', (e) => {
    e.preventDefault();
    close();
  });
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) close();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  const first = dialog.querySelector<HTMLElement>('input, select, textarea');
  first?.focus();
  return { dialog, close };
}

export function confirmDialog(title: string, text: string, confirmLabel: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const m = openModal(title, (close) => ({
      body: h('p', null, text),
      foot: [
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-ghost',
            on: {
              click: () => {
                done = true;
                close();
                resolve(false);
              },
            },
          },
          'Cancel',
        ),
        h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirmLabel),
      ],
      onSubmit: () => {
        done = true;
        close();
        resolve(true);
      },
    }));
    m.dialog.addEventListener('close', () => {
      if (!done) resolve(false);
    });
  });
}

/// Disables `btn` while `fn` runs and shows a working label.
export async function busy<T>(btn: HTMLButtonElement, label: string, fn: () => Promise<T>): Promise<T> {
  const old = Array.from(btn.childNodes);
  btn.disabled = true;
  replace(btn, label);
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    replace(btn, ...old);
  }
}

export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('div', { class: 'hint' }, hint) : null);
}

export function checkbox(label: string, sub: string | null, checked: boolean): { el: HTMLElement; input: HTMLInputElement } {
  const input = h('input', { type: 'checkbox', checked });
  const el = h('label', { class: 'check' }, input, h('span', { class: 'check-text' }, h('span', null, label), sub ? h('small', null, sub) : null));
  return { el, input };
}

export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    toast('Copied to clipboard', 'ok', 1800);
  } catch {
    toast('Copy failed — select the text and copy it manually.', 'error');
  }
}
