// The message list of a folder, newest first: previews, infinite scroll,
// the last copy kept for offline reading, and delta sync with the state
// token whenever the app comes back to the foreground. Search results
// show the same way.

import { api, describeError, seg } from './api.js';
import { h, status, when, who } from './dom.js';
import { href } from './app.js';
import * as store from './store.js';

const PAGE = 40;
let current = null; // the list on screen: {mailbox, messages, state, more, el}

function item(mailbox, m) {
  const unread = !(m.flags || []).includes('\\Seen');
  const flagged = (m.flags || []).includes('\\Flagged');
  return h('li', { class: unread ? 'unread' : '', dataset: { uid: m.uid } },
    h('a', { href: href('m', mailbox, m.uid) },
      h('span', { class: 'from' }, flagged ? h('span', { class: 'flag', 'aria-label': 'Flagged' }, '⚑ ') : null,
        unread ? h('span', { class: 'visually-hidden' }, 'Unread: ') : null, who(m.from) || '(unknown sender)'),
      h('span', { class: 'date' }, when(m.date)),
      h('span', { class: 'subject' }, m.subject || '(no subject)', m.has_attachments ? h('span', { class: 'clip' }, ' · attachment') : null),
      h('span', { class: 'preview' }, m.preview || '')));
}

function draw(list) {
  list.el.replaceChildren(...list.messages.map((m) => item(list.mailbox, m)));
  list.sentinel.textContent = list.more ? 'Loading more…' : list.messages.length ? 'No older messages.' : 'No messages.';
}

function keep(list) {
  const { mailbox, messages, state, more } = list;
  return store.put('mail', `list:${mailbox}`, { messages, state, more }).catch(() => {});
}

function sortNewest(messages) {
  return messages.sort((a, b) => b.uid - a.uid);
}

async function loadMore(list) {
  if (list.loading || !list.more) return;
  list.loading = true;
  try {
    const oldest = list.messages.length ? list.messages[list.messages.length - 1].uid : 0;
    const q = new URLSearchParams({ limit: PAGE });
    if (oldest) q.set('before_uid', oldest);
    const { data } = await api('GET', `/v1/mailboxes/${seg(list.mailbox)}/messages?${q}`);
    const have = new Set(list.messages.map((m) => m.uid));
    list.messages.push(...(data.messages || []).filter((m) => !have.has(m.uid)));
    sortNewest(list.messages);
    list.more = !!data.more;
    if (!list.state) list.state = data.state;
    draw(list);
    await keep(list);
  } catch (e) {
    list.sentinel.replaceChildren(status(describeError(e), 'error'));
  } finally {
    list.loading = false;
  }
}

async function reload(list) {
  const { data } = await api('GET', `/v1/mailboxes/${seg(list.mailbox)}/messages?limit=${PAGE}`);
  list.messages = sortNewest(data.messages || []);
  list.state = data.state;
  list.more = !!data.more;
  draw(list);
  await keep(list);
}

/** Applies the changes since the list's state token (new, flags, vanished). */
async function pull(list) {
  for (;;) {
    const q = new URLSearchParams({ since: list.state });
    const { data } = await api('GET', `/v1/mailboxes/${seg(list.mailbox)}/changes?${q}`);
    const gone = new Set(data.vanished || []);
    const flags = new Map((data.flags || []).map((f) => [f.uid, f.flags]));
    const have = new Set(list.messages.map((m) => m.uid));
    list.messages = list.messages
      .filter((m) => !gone.has(m.uid))
      .map((m) => (flags.has(m.uid) ? { ...m, flags: flags.get(m.uid) } : m));
    list.messages.push(...(data.added || []).filter((m) => !have.has(m.uid) && !gone.has(m.uid)));
    sortNewest(list.messages);
    list.state = data.state;
    if (!data.more) break;
  }
  draw(list);
  await keep(list);
}

/** Brings the list up to date; a state token too old means loading it again. */
async function update(list) {
  try {
    await pull(list);
  } catch (e) {
    if (e.code === 'resync_required' || e.code === 'invalid_state') await reload(list);
    else throw e;
  }
}

/** Delta sync of the list on screen (when the app comes to the foreground). */
export async function sync(list = current) {
  if (!list || !list.state || list.syncing) return;
  list.syncing = true;
  try {
    await update(list);
  } catch (e) {
    console.warn('sync failed', e);
  } finally {
    list.syncing = false;
  }
}

function observe(list) {
  const watcher = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore(list);
  }, { rootMargin: '400px' });
  watcher.observe(list.sentinel);
}

/** The list screen of `mailbox`. */
export async function showList(root, mailbox) {
  const el = h('ul', { class: 'messages', 'aria-label': `Messages in ${mailbox}` });
  const sentinel = h('p', { class: 'sentinel', 'aria-live': 'polite' }, 'Loading…');
  const note = h('div', {});
  const list = { mailbox, messages: [], state: '', more: false, el, sentinel };
  current = list;
  root.replaceChildren(
    h('div', { class: 'listhead' }, h('h2', {}, mailbox === 'INBOX' ? 'Inbox' : mailbox),
      h('button', { type: 'button', class: 'btn', onclick: () => sync(list) }, 'Refresh')),
    note, el, sentinel);
  const kept = await store.get('mail', `list:${mailbox}`).catch(() => null);
  if (kept) {
    Object.assign(list, kept);
    draw(list);
  }
  try {
    if (kept && kept.state) await update(list);
    else await reload(list);
  } catch (e) {
    note.replaceChildren(status(kept ? `Showing the messages loaded before. ${describeError(e)}` : describeError(e), 'error'));
    if (!kept) sentinel.textContent = '';
    return;
  }
  observe(list);
}

/** Search results for `text` in `mailbox`. */
export async function showSearch(root, mailbox, text) {
  const el = h('ul', { class: 'messages', 'aria-label': `Search results in ${mailbox}` });
  root.replaceChildren(h('div', { class: 'listhead' }, h('h2', {}, `Search: ${text}`)), h('p', { class: 'muted' }, `In ${mailbox}`), el);
  const more = h('div', {});
  root.append(more);
  let cursor = '';
  const page = async () => {
    const q = new URLSearchParams({ mailbox, text, limit: 20 });
    if (cursor) q.set('cursor', cursor);
    const { data } = await api('GET', `/v1/search?${q}`);
    el.append(...(data.messages || []).map((m) => item(mailbox, m)));
    cursor = data.next_cursor || '';
    more.replaceChildren(cursor
      ? h('button', { type: 'button', class: 'btn', onclick: () => page().catch((e) => more.replaceChildren(status(describeError(e), 'error'))) }, 'More results')
      : h('p', { class: 'muted', role: 'status' }, `${data.total || 0} found.`));
  };
  await page();
}

function foreground() {
  if (document.visibilityState === 'visible' && current && document.body.contains(current.el)) sync(current);
}

document.addEventListener('visibilitychange', foreground);
window.addEventListener('online', foreground);
