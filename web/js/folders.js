// The folders, with their unread counts (kept for offline use).

import { api, describeError } from './api.js';
import { h, status } from './dom.js';
import { href } from './app.js';
import * as store from './store.js';

/** The mailboxes: from the gateway, else the last copy kept. */
export async function mailboxes() {
  try {
    const list = (await api('GET', '/v1/mailboxes')).data.mailboxes || [];
    await store.put('mail', 'mailboxes', list).catch(() => {});
    return { list, fresh: true };
  } catch (e) {
    const kept = await store.get('mail', 'mailboxes').catch(() => null);
    if (kept) return { list: kept, fresh: false, error: e };
    throw e;
  }
}

const ROLE_ORDER = ['inbox', 'drafts', 'sent', 'archive', 'junk', 'trash'];

function rank(m) {
  const i = ROLE_ORDER.indexOf(m.role || (m.name === 'INBOX' ? 'inbox' : ''));
  return i < 0 ? ROLE_ORDER.length : i;
}

/** The folders screen. */
export async function showFolders(root) {
  const { list, fresh, error } = await mailboxes();
  const sorted = [...list].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  root.replaceChildren(
    h('h2', {}, 'Folders'),
    fresh ? null : status(`Showing folders from before. ${describeError(error)}`, 'error'),
    h('ul', { class: 'folders' }, sorted.map((m) => h('li', {},
      h('a', { href: href('mb', m.name) },
        h('span', {}, m.name),
        m.unseen ? h('span', { class: 'count', 'aria-label': `${m.unseen} unread` }, m.unseen) : h('span', { class: 'muted' }, m.total ? `${m.total}` : ''))))),
  );
}
