// Settings: notifications (how much they show, which folders), a test
// push, signing out (revoking the token, forgetting all mail kept here)
// and removing this device.

import { api, dataUsed, describeError } from './api.js';
import { h, size, status } from './dom.js';
import { go } from './app.js';
import { mailboxes } from './folders.js';
import { TIERS, PushUnavailable, turnOff, turnOn, unsupported } from './push.js';
import { end, session } from './session.js';
import * as store from './store.js';

function notifications(note) {
  const s = session() || {};
  const why = unsupported();
  const section = h('section', { 'aria-labelledby': 'notif-h' }, h('h3', { id: 'notif-h' }, 'Notifications'));
  if (why) {
    section.append(status(why, 'error'));
    return section;
  }
  const tiers = h('fieldset', {}, h('legend', {}, 'What a notification shows'),
    TIERS.map(([value, words], i) => h('label', { class: 'check' },
      h('input', { type: 'radio', name: 'tier', value, checked: i === 0 }), words)));
  const folders = h('fieldset', {}, h('legend', {}, 'Folders that notify'));
  const fill = (list) => folders.append(...list.map((m) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'folder', value: m.name, checked: m.name === 'INBOX' }), m.name)));
  mailboxes().then(({ list }) => fill(list)).catch(() => fill([{ name: 'INBOX' }]));
  const form = h('form', {}, tiers, folders,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'notify-on' }, s.deviceId ? 'Update notifications' : 'Turn on notifications'),
      s.deviceId ? h('button', { type: 'button', class: 'btn', id: 'notify-test', onclick: async () => {
        try {
          await api('POST', `/v1/devices/${encodeURIComponent(s.deviceId)}/test`);
          note.replaceChildren(status('A test notification is on its way.', 'ok'));
        } catch (e) {
          note.replaceChildren(status(describeError(e), 'error'));
        }
      } }, 'Send a test') : null,
      s.deviceId ? h('button', { type: 'button', class: 'btn', id: 'remove-device', onclick: async () => {
        try {
          await turnOff();
          note.replaceChildren(status('This device no longer gets notifications.', 'ok'));
          go('settings');
        } catch (e) {
          note.replaceChildren(status(describeError(e), 'error'));
        }
      } }, 'Remove this device') : null));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const payload = form.elements.tier.value;
    const chosen = [...form.querySelectorAll('input[name=folder]:checked')].map((i) => i.value);
    note.replaceChildren(status('Turning on notifications…'));
    try {
      if (session().deviceId) await turnOff();
      await turnOn({ payload, mailboxes: chosen.length ? chosen : ['INBOX'] });
      note.replaceChildren(status('Notifications are on for this device.', 'ok'));
    } catch (e) {
      note.replaceChildren(status(e instanceof PushUnavailable ? e.message : describeError(e), 'error'));
    }
  });
  section.append(s.deviceId ? h('p', {}, 'This device gets notifications.') : h('p', {}, 'This device does not get notifications yet.'), form);
  return section;
}

/** Signs out: removes this device, revokes the token, forgets all mail kept here. */
export async function signOut() {
  await turnOff().catch(() => {});
  await api('DELETE', '/v1/tokens/current').catch(() => {});
  await store.clearAll().catch(() => {});
  end();
  go('signin');
}

/** The settings screen. */
export async function showSettings(root) {
  const s = session() || {};
  const note = h('div', { 'aria-live': 'polite' });
  const { received, sent } = dataUsed();
  root.replaceChildren(h('div', { class: 'settings' },
    h('h2', {}, 'Settings'),
    s.email ? h('p', {}, 'Signed in as ', h('strong', {}, s.email)) : null,
    note,
    notifications(note),
    h('section', { 'aria-labelledby': 'data-h' }, h('h3', { id: 'data-h' }, 'Data used'),
      h('p', {}, `This session: ${size(received)} received, ${size(sent)} sent.`)),
    h('section', { 'aria-labelledby': 'account-h' }, h('h3', { id: 'account-h' }, 'Account'),
      h('p', {}, 'Signing out removes this device, ends the session on the server and deletes all mail kept in this browser.'),
      h('button', { type: 'button', class: 'primary', id: 'sign-out', onclick: signOut }, 'Sign out'))));
}
