// History-API router: pages are functions that build an element and may clean up on leave.

export interface Page {
  el: HTMLElement;
  title?: string;
  /// Full-width layout without the centred page container.
  wide?: boolean;
  destroy?(): void;
}

export type PageFactory = (params: Record<string, string>, query: URLSearchParams) => Page;

interface Route {
  pattern: RegExp;
  keys: string[];
  factory: PageFactory;
}

const routes: Route[] = [];
let notFound: PageFactory | null = null;
let onRender: ((page: Page, path: string) => void) | null = null;

export function route(path: string, factory: PageFactory): void {
  const keys: string[] = [];
  const src = path
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) {
        keys.push(seg.slice(1));
        return '([^/]+)';
      }
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  routes.push({ pattern: new RegExp(`^${src}/?$`), keys, factory });
}

export function fallback(factory: PageFactory): void {
  notFound = factory;
}

export function onPage(fn: (page: Page, path: string) => void): void {
  onRender = fn;
}

export function navigate(path: string, replaceState = false): void {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

export function currentPath(): string {
  return window.location.pathname;
}

export function render(): void {
  const path = window.location.pathname;
  const query = new URLSearchParams(window.location.search);
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
    onRender?.(r.factory(params, query), path);
    return;
  }
  if (notFound) onRender?.(notFound({}, query), path);
}

export function startRouter(): void {
  window.addEventListener('popstate', render);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href || !href.startsWith('/') || href.startsWith('//') || a.dataset.external !== undefined) return;
    e.preventDefault();
    navigate(href);
  });
  render();
}
