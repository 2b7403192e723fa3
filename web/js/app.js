// The app's shell: the header, the hash router and the screens it shows.
// Routes: #/signin, #/folders, #/mb/MAILBOX, #/m/MAILBOX/UID,
// #/search?mb=MAILBOX&q=WORDS, #/settings, #/compose?mode=…&mailbox=…&uid=…

import { dataUsed, onDataUsed } from './api.js';
import { h, size } from './dom.js';
import { end, signedIn } from './session.js';
import { clearAll } from './store.js';

const main = () => document.getElementById('main');

/** The current route: its name, path segments and query. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || '', parts: parts.slice(1), query: new URLSearchParams(query) };
}

/** Goes to a route: go('m', 'INBOX', 5) is #/m/INBOX/5. */
export function go(...parts) {
  location.hash = href(...parts);
}

/** The href of a route. */
export function href(...parts) {
  let query = '';
  if (parts.length && typeof parts[parts.length - 1] === 'object') {
    query = '?' + new URLSearchParams(parts.pop()).toString();
  }
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/') + query;
}

const screens = {
  signin: async (root) => (await import('./signin.js')).showSignIn(root),
  folders: async (root) => (await import('./folders.js')).showFolders(root),
  mb: async (root, r) => (await import('./list.js')).showList(root, r.parts[0] || 'INBOX'),
  inbox: async (root) => (await import('./list.js')).showList(root, 'INBOX'),
  search: async (root, r) =>
    (await import('./list.js')).showSearch(root, r.query.get('mb') || 'INBOX', r.query.get('q') || ''),
  m: async (root, r) => (await import('./message.js')).showMessage(root, r.parts[0], Number(r.parts[1])),
  settings: async (root) => (await import('./settings.js')).showSettings(root),
  compose: async (root, r) =>
    (await import('./compose.js')).openCompose(root, {
      mode: r.query.get('mode') || 'new',
      mailbox: r.query.get('mailbox') || undefined,
      uid: r.query.has('uid') ? Number(r.query.get('uid')) : undefined,
    }),
};

let showing = 0;

async function render() {
  const r = route();
  if (!signedIn() && r.name !== 'signin') return go('signin');
  if (signedIn() && (r.name === 'signin' || r.name === '')) return go('mb', 'INBOX');
  const hash = location.hash;
  document.body.dataset.route = r.name;
  header();
  const root = main();
  const mine = ++showing;
  // Each screen draws into a view of its own: a slower earlier screen that
  // finishes late draws into a view no longer shown.
  const view = h('div', { class: 'view' }, h('p', { class: 'notice', role: 'status' }, 'Loading…'));
  root.replaceChildren(view);
  root.setAttribute('aria-busy', 'true');
  delete document.body.dataset.shown;
  try {
    const show = screens[r.name] || screens.inbox;
    await show(view, r, () => mine === showing);
  } catch (e) {
    console.error(e);
    const { describeError } = await import('./api.js');
    view.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, describeError(e)));
  } finally {
    if (mine === showing) {
      root.removeAttribute('aria-busy');
      document.body.dataset.shown = hash;
    }
  }
}

function header() {
  const bar = document.getElementById('bar');
  if (!signedIn()) {
    bar.replaceChildren(h('h1', {}, 'Lemonade Mail'));
    return;
  }
  const r = route();
  const mailbox = r.name === 'mb' || r.name === 'm' ? r.parts[0] : r.query.get('mb') || 'INBOX';
  bar.replaceChildren(
    h('a', { class: 'brand', href: href('mb', 'INBOX') }, h('h1', {}, 'Lemonade Mail')),
    h('nav', { 'aria-label': 'Main' },
      h('a', { href: href('folders'), class: 'btn' }, 'Folders'),
      h('a', { href: href('compose', { mode: 'new' }), class: 'btn primary', id: 'write' }, 'Write'),
      h('a', { href: href('settings'), class: 'btn' }, 'Settings')),
    h('form', { class: 'search', role: 'search', onsubmit: (ev) => {
      ev.preventDefault();
      const q = ev.target.elements.q.value.trim();
      if (q) go('search', { mb: mailbox, q });
    } },
    h('label', { for: 'q', class: 'visually-hidden' }, 'Search mail'),
    h('input', { id: 'q', name: 'q', type: 'search', placeholder: 'Search', value: r.name === 'search' ? r.query.get('q') : '' }),
    h('button', { type: 'submit', class: 'btn' }, 'Search')),
  );
}

function showDataUsed({ received, sent }) {
  const el = document.getElementById('data-used');
  if (el) el.textContent = `Data used: ${size(received)} received, ${size(sent)} sent`;
}

function showOnline(online = navigator.onLine) {
  document.body.classList.toggle('offline', !online);
  const el = document.getElementById('online');
  if (el) el.textContent = online ? '' : 'Offline: showing what was loaded before.';
}

async function registerWorker() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  } catch (e) {
    console.warn('service worker not registered', e);
  }
  navigator.serviceWorker.addEventListener('message', (ev) => {
    if (ev.data && ev.data.type === 'open' && ev.data.hash) location.hash = ev.data.hash;
  });
}

// The token was revoked (signed out elsewhere, account removed): forget
// everything kept here and ask to sign in again.
window.addEventListener('lemonade:unauthorized', async () => {
  await clearAll().catch(() => {});
  end();
  go('signin');
});
window.addEventListener('hashchange', render);
window.addEventListener('online', () => showOnline(true));
window.addEventListener('offline', () => showOnline(false));
window.addEventListener('lemonade:reachable', (ev) => showOnline(ev.detail));
onDataUsed(showDataUsed);
showDataUsed(dataUsed());
showOnline();
registerWorker();
render();
// Messages sent while offline (or when the app was closed) go out now, and
// whenever the connection returns.
if (signedIn()) import('./outbox.js').then((m) => m.startOutbox()).catch((e) => console.warn('outbox', e));
