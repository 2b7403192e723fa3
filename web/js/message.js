// One message: its headers and text, the HTML version on request (see
// frame.js), attachments with their sizes (downloaded on tap), and what can
// be done with it: flag, read/unread, move, delete, reply, forward.

import { api, describeError, seg } from './api.js';
import { h, size, status, when, who } from './dom.js';
import { go, href } from './app.js';
import { frame } from './frame.js';
import { mailboxes } from './folders.js';
import * as store from './store.js';

function addresses(list) {
  return (list || []).map((a) => (a.name ? `${a.name} <${a.email}>` : a.email)).join(', ');
}

async function load(mailbox, uid) {
  const key = `msg:${mailbox}:${uid}`;
  try {
    const { data } = await api('GET', `/v1/messages/${seg(mailbox)}/${uid}`);
    await store.put('mail', key, data).catch(() => {});
    return { message: data, fresh: true };
  } catch (e) {
    const kept = await store.get('mail', key).catch(() => null);
    if (kept && (e.code === 'offline' || e.status >= 500)) return { message: kept, fresh: false, error: e };
    throw e;
  }
}

/** Changes the kept copies (message and list entry) after a flag change. */
async function keepFlags(mailbox, uid, flags) {
  const key = `msg:${mailbox}:${uid}`;
  const kept = await store.get('mail', key).catch(() => null);
  if (kept) await store.put('mail', key, { ...kept, flags }).catch(() => {});
  const list = await store.get('mail', `list:${mailbox}`).catch(() => null);
  if (list) {
    list.messages = list.messages.map((m) => (m.uid === uid ? { ...m, flags } : m));
    await store.put('mail', `list:${mailbox}`, list).catch(() => {});
  }
}

async function forgetFromList(mailbox, uid) {
  const list = await store.get('mail', `list:${mailbox}`).catch(() => null);
  if (list) {
    list.messages = list.messages.filter((m) => m.uid !== uid);
    await store.put('mail', `list:${mailbox}`, list).catch(() => {});
  }
  await store.del('mail', `msg:${mailbox}:${uid}`).catch(() => {});
}

/** About the file's own size: base64 takes 78 bytes a line for 57. */
function fileSize(p) {
  return (p.encoding || '').toLowerCase() === 'base64' ? Math.round((p.size * 57) / 78) : p.size;
}

function attachments(mailbox, uid, parts) {
  const files = (parts || []).filter((p) => p.filename || p.disposition === 'attachment');
  if (!files.length) return null;
  return h('section', { 'aria-label': 'Attachments' },
    h('h3', {}, `Attachments (${files.length})`),
    h('ul', { class: 'attachments' }, files.map((p) => {
      const note = h('span', { class: 'muted', 'aria-live': 'polite' });
      const name = p.filename || `part ${p.part}`;
      return h('li', {},
        h('span', { class: 'name' }, name, ' ', h('span', { class: 'muted' }, size(fileSize(p)))),
        note,
        h('button', { type: 'button', class: 'btn', 'aria-label': `Download ${name}`, onclick: async () => {
          note.textContent = 'Downloading…';
          try {
            const { data } = await api('GET', `/v1/messages/${seg(mailbox)}/${uid}/parts/${seg(p.part)}`, { headers: { Accept: '*/*' } });
            const url = URL.createObjectURL(data);
            const a = h('a', { href: url, download: name });
            document.body.append(a);
            a.click();
            a.remove();
            setTimeout(() => URL.revokeObjectURL(url), 60000);
            note.textContent = '';
          } catch (e) {
            note.textContent = describeError(e);
          }
        } }, 'Download'));
    })));
}

function htmlSection(mailbox, uid, part) {
  const box = h('div', { class: 'html-box' });
  let html = null;
  const show = (remoteImages) => {
    const { el, held } = frame(html, { remoteImages });
    box.replaceChildren(el, held
      ? h('button', { type: 'button', class: 'btn', id: 'show-images', onclick: () => show(true) }, `Show ${held} remote image${held > 1 ? 's' : ''}`)
      : null);
  };
  const button = h('button', { type: 'button', class: 'btn', id: 'show-html', onclick: async () => {
    button.disabled = true;
    try {
      const { data } = await api('GET', `/v1/messages/${seg(mailbox)}/${uid}/parts/${seg(part)}`, { headers: { Accept: '*/*' } });
      html = await data.text();
      button.remove();
      show(false);
    } catch (e) {
      button.disabled = false;
      box.replaceChildren(status(describeError(e), 'error'));
    }
  } }, 'Show formatted version');
  return h('div', {}, button, box);
}

async function act(note, work, done) {
  note.replaceChildren(status('Working…'));
  try {
    await work();
    note.replaceChildren(status(done, 'ok'));
  } catch (e) {
    note.replaceChildren(status(describeError(e), 'error'));
  }
}

function actions(m, mailbox, uid, note, refresh) {
  const flags = new Set(m.flags || []);
  const setFlag = (flag, on, done) => act(note, async () => {
    const json = { mailbox, uids: [uid], [on ? 'add' : 'remove']: [flag] };
    await api('POST', '/v1/messages/flags', { json });
    const now = new Set(m.flags || []);
    if (on) now.add(flag); else now.delete(flag);
    m.flags = [...now];
    await keepFlags(mailbox, uid, m.flags);
    refresh();
  }, done);
  const target = h('select', { id: 'move-to', 'aria-label': 'Move to folder' });
  mailboxes().then(({ list }) => target.append(...list.filter((b) => b.name !== mailbox).map((b) => h('option', { value: b.name }, b.name)))).catch(() => {});
  return h('div', { class: 'actions' },
    h('a', { class: 'btn', id: 'reply', href: href('compose', { mode: 'reply', mailbox, uid }) }, 'Reply'),
    h('a', { class: 'btn', id: 'forward', href: href('compose', { mode: 'forward', mailbox, uid }) }, 'Forward'),
    h('button', { type: 'button', class: 'btn', id: 'flag', 'aria-pressed': String(flags.has('\\Flagged')),
      onclick: () => setFlag('\\Flagged', !flags.has('\\Flagged'), flags.has('\\Flagged') ? 'Flag removed.' : 'Flagged.') },
    flags.has('\\Flagged') ? 'Unflag' : 'Flag'),
    h('button', { type: 'button', class: 'btn', id: 'seen',
      onclick: () => setFlag('\\Seen', !flags.has('\\Seen'), flags.has('\\Seen') ? 'Marked unread.' : 'Marked read.') },
    flags.has('\\Seen') ? 'Mark unread' : 'Mark read'),
    target,
    h('button', { type: 'button', class: 'btn', id: 'move', onclick: () => act(note, async () => {
      if (!target.value) throw new Error('Choose a folder first.');
      await api('POST', '/v1/messages/move', { json: { mailbox, uids: [uid], destination: target.value } });
      await forgetFromList(mailbox, uid);
      go('mb', mailbox);
    }, 'Moved.') }, 'Move'),
    h('button', { type: 'button', class: 'btn', id: 'delete', onclick: () => act(note, async () => {
      await api('POST', '/v1/messages/delete', { json: { mailbox, uids: [uid] } });
      await forgetFromList(mailbox, uid);
      go('mb', mailbox);
    }, 'Deleted.') }, 'Delete'));
}

/** The message screen. */
export async function showMessage(root, mailbox, uid) {
  const { message: m, fresh, error } = await load(mailbox, uid);
  const note = h('div', { 'aria-live': 'polite' });
  const bar = h('div', {});
  const refresh = () => bar.replaceChildren(actions(m, mailbox, uid, note, refresh));
  refresh();
  root.replaceChildren(h('article', { class: 'message' },
    h('p', {}, h('a', { href: href('mb', mailbox) }, `← ${mailbox === 'INBOX' ? 'Inbox' : mailbox}`)),
    fresh ? null : status(`Offline copy. ${describeError(error)}`, 'error'),
    h('h2', {}, m.subject || '(no subject)'),
    h('p', { class: 'meta' }, 'From: ', addresses([m.from].filter(Boolean)) || who(m.from)),
    m.to && m.to.length ? h('p', { class: 'meta' }, 'To: ', addresses(m.to)) : null,
    m.cc && m.cc.length ? h('p', { class: 'meta' }, 'Cc: ', addresses(m.cc)) : null,
    h('p', { class: 'meta' }, when(m.date), ' · ', size(m.size)),
    bar, note,
    h('div', { class: 'body-text', id: 'body-text' }, m.text || ''),
    m.truncated ? h('p', { class: 'muted' }, 'The text is cut short here.') : null,
    m.html_part && fresh ? htmlSection(mailbox, uid, m.html_part) : null,
    attachments(mailbox, uid, m.parts)));
  if (fresh && !(m.flags || []).includes('\\Seen')) {
    api('POST', '/v1/messages/flags', { json: { mailbox, uids: [uid], add: ['\\Seen'] } })
      .then(() => { m.flags = [...(m.flags || []), '\\Seen']; refresh(); return keepFlags(mailbox, uid, m.flags); })
      .catch(() => {});
  }
}
