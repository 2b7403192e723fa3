// The compose screen: a new message, a reply or a forward.
//
// A reply quotes the original and names it in `in_reply_to`, so the
// gateway sets In-Reply-To and References. A forward quotes the original
// and attaches its attachments by reference ({ref: {mailbox, uid, part}}):
// the gateway takes them from the mail server, nothing is downloaded to the
// phone. Files picked on the phone are uploaded resumably by the outbox.
// Pressing Send hands the message to the outbox (stored, with its
// Idempotency-Key) and this screen shows its status until it is sent.

import { api, describeError, seg } from './api.js';
import { h, size as formatSize } from './dom.js';
import { startOutbox } from './outbox.js';
import { get as kept } from './store.js';

/** The original of a reply or forward: from the gateway, else (offline)
 *  the copy the message screen kept when it was opened (message.js). */
async function loadOriginal(mailbox, uid) {
  try {
    return (await api('GET', `/v1/messages/${seg(mailbox)}/${seg(uid)}`)).data;
  } catch (err) {
    const copy = await kept('mail', `msg:${mailbox}:${uid}`).catch(() => null);
    if (copy && (err.code === 'offline' || err.status >= 500)) return copy;
    throw err;
  }
}

/** The plain addresses in what the person typed ("a@x, B <b@y>"). */
export function parseAddresses(text) {
  return (text ?? '')
    .split(/[,;\n]+/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const angle = s.match(/<([^<>\s]+)>/);
      return angle ? angle[1] : s;
    });
}

const ADDRESS = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/;

function formatAddress(a) {
  if (!a?.email) return '';
  return a.name ? `${a.name} <${a.email}>` : a.email;
}

function prefixed(prefix, subject) {
  const s = subject ?? '';
  return s.toLowerCase().startsWith(prefix.toLowerCase()) ? s : `${prefix} ${s}`;
}

function quoted(text) {
  return (text ?? '')
    .replace(/\n+$/, '')
    .split('\n')
    .map((line) => (line.startsWith('>') ? `>${line}` : `> ${line}`))
    .join('\n');
}

function when(date) {
  const d = new Date(date);
  return Number.isNaN(d.getTime()) ? date ?? '' : d.toLocaleString();
}

/** Parts worth forwarding: the attachments, not the text being quoted. */
export function forwardableParts(message) {
  return (message.parts ?? []).filter(
    (p) =>
      p.part &&
      !p.type.startsWith('multipart/') &&
      p.part !== message.text_part &&
      p.part !== message.html_part &&
      (p.disposition === 'attachment' || p.filename),
  );
}

/** What the form starts with for a reply or forward of `message`. */
export function draftFrom(mode, mailbox, message) {
  const from = formatAddress(message.from);
  if (mode === 'reply') {
    const to = message.reply_to?.length ? message.reply_to : [message.from];
    return {
      to: to.map((a) => a?.email).filter(Boolean).join(', '),
      subject: prefixed('Re:', message.subject),
      text: `\n\nOn ${when(message.date)}, ${from} wrote:\n${quoted(message.text)}\n`,
      in_reply_to: { mailbox, uid: message.uid },
      refs: [],
    };
  }
  const header = [
    '---------- Forwarded message ----------',
    `From: ${from}`,
    `Date: ${when(message.date)}`,
    `Subject: ${message.subject ?? ''}`,
    `To: ${(message.to ?? []).map(formatAddress).join(', ')}`,
  ].join('\n');
  return {
    to: '',
    subject: prefixed('Fwd:', message.subject),
    text: `\n\n${header}\n\n${message.text ?? ''}`,
    refs: forwardableParts(message).map((p) => ({
      ref: { mailbox, uid: message.uid, part: p.part },
      filename: p.filename || `part-${p.part}`,
      size: p.size,
    })),
  };
}

const TITLES = { new: 'New message', reply: 'Reply', forward: 'Forward' };

let stylesAdded = false;
function addStyles() {
  if (stylesAdded) return;
  stylesAdded = true;
  document.head.append(
    h('link', { rel: 'stylesheet', href: new URL('../css/compose.css', import.meta.url).href }),
  );
}

/** Words for a record's state, and whether it is over. */
export function statusText(record, progress, online = true) {
  switch (record.state) {
    case 'waiting':
      return online
        ? 'Waiting to send…'
        : 'No connection. The message is saved and will be sent when you are back online.';
    case 'uploading':
      return progress
        ? `Uploading ${progress.name}: ${formatSize(progress.sent)} of ${formatSize(progress.total)}`
        : 'Uploading attachments…';
    case 'sending':
      return {
        queued: 'Sending…',
        stored: 'Sending: saved to Sent, handing it to the mail server…',
        submitted: 'Sending: the mail server took it, finishing…',
      }[record.status] ?? 'Sending…';
    case 'done':
      return record.note ? `Sent. ${record.note}` : 'Sent.';
    case 'failed':
      return `Not sent: ${record.error?.message ?? 'the gateway did not say why.'}`;
    default:
      return '';
  }
}

/** Opens the compose screen in `root`. */
export async function openCompose(root, { mode = 'new', mailbox, uid } = {}) {
  addStyles();
  const kind = TITLES[mode] ? mode : 'new';
  const title = h('h2', { id: 'compose-title' }, TITLES[kind]);
  const error = h('p', { class: 'notice error', role: 'alert', hidden: true });
  const status = h('div', { class: 'send-status', role: 'status', 'aria-live': 'polite' });
  const screen = h('section', { class: 'compose', 'aria-labelledby': 'compose-title' }, title);
  root.replaceChildren(screen);

  let draft = { to: '', subject: '', text: '', refs: [] };
  if (kind !== 'new') {
    const loading = h('p', { class: 'notice', role: 'status' }, 'Loading the original message…');
    screen.append(loading);
    try {
      draft = draftFrom(kind, mailbox, await loadOriginal(mailbox, uid));
    } catch (err) {
      loading.remove();
      screen.append(
        h('p', { class: 'notice error', role: 'alert' }, `The original message could not be loaded. ${describeError(err)}`),
      );
      return;
    }
    loading.remove();
  }

  const form = buildForm(draft, error);
  const waiting = h('section', { class: 'outbox', 'aria-labelledby': 'outbox-title', hidden: true });
  screen.append(waiting, error, form.element, status);
  let sending = null;
  startOutbox().then((outbox) => showWaiting(waiting, outbox, () => sending));
  form.element.addEventListener('submit', async (event) => {
    event.preventDefault();
    const message = form.read();
    const problem = validate(message);
    if (problem) {
      error.textContent = problem;
      error.hidden = false;
      return;
    }
    error.hidden = true;
    if (draft.in_reply_to) message.in_reply_to = draft.in_reply_to;
    form.setBusy(true);
    let outbox;
    let record;
    try {
      outbox = await startOutbox();
      record = await outbox.enqueue(message);
    } catch (err) {
      // Not even stored (storage full or refused): say so, keep the form.
      console.error(err);
      form.setBusy(false);
      error.textContent = `The message could not be saved for sending. ${describeError(err)}`;
      error.hidden = false;
      return;
    }
    sending = record.id;
    form.element.hidden = true;
    showStatus(status, outbox, record, () => {
      // Edited and sent again, it is a new message with a key of its own.
      outbox.dismiss(record.id);
      status.replaceChildren();
      delete status.dataset.state;
      delete status.dataset.sendId;
      form.element.hidden = false;
      form.setBusy(false);
      form.to.focus();
    });
  });
  if (kind === 'reply') {
    // Written above the quote.
    form.body.focus();
    form.body.setSelectionRange(0, 0);
  } else {
    form.to.focus();
  }
}

function validate(message) {
  const all = [...message.to, ...message.cc];
  if (all.length === 0) return 'Add at least one recipient.';
  const bad = all.find((a) => !ADDRESS.test(a));
  if (bad) return `“${bad}” is not an email address.`;
  return null;
}

function field(id, label, input) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function buildForm(draft, error) {
  const to = h('input', {
    id: 'compose-to', name: 'to', type: 'text', inputmode: 'email', autocomplete: 'email',
    'aria-describedby': 'compose-to-hint', value: draft.to,
  });
  const cc = h('input', { id: 'compose-cc', name: 'cc', type: 'text', inputmode: 'email', autocomplete: 'email' });
  const subject = h('input', { id: 'compose-subject', name: 'subject', type: 'text', value: draft.subject });
  const body = h('textarea', { id: 'compose-body', name: 'text', rows: '12' });
  body.value = draft.text;
  const picker = h('input', { id: 'compose-files', type: 'file', multiple: true });
  const list = h('ul', { class: 'attachments', 'aria-label': 'Attachments' });
  const send = h('button', { type: 'submit', class: 'btn primary' }, 'Send');
  const attachments = draft.refs.map((r) => ({ ...r, forwarded: true }));

  function renderList() {
    list.replaceChildren(
      ...attachments.map((a, i) => {
        const name = a.file ? a.file.name : a.filename;
        const size = a.file ? a.file.size : a.size;
        const remove = h('button', { type: 'button', class: 'btn remove', 'aria-label': `Remove ${name}` }, 'Remove');
        remove.addEventListener('click', () => {
          attachments.splice(i, 1);
          renderList();
          picker.focus();
        });
        return h(
          'li',
          {},
          h(
            'div',
            { class: 'info' },
            h('span', { class: 'name' }, name),
            h('span', { class: 'meta' }, `${formatSize(size)}${a.forwarded ? ', forwarded from the original' : ''}`),
          ),
          remove,
        );
      }),
    );
    list.hidden = attachments.length === 0;
  }
  picker.addEventListener('change', () => {
    for (const file of picker.files) attachments.push({ file });
    picker.value = '';
    renderList();
  });
  renderList();

  const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
  cancel.addEventListener('click', () => history.back());
  const element = h(
    'form',
    { class: 'compose-form', novalidate: true },
    field('compose-to', 'To', to),
    h('p', { id: 'compose-to-hint', class: 'hint' }, 'Separate several addresses with commas.'),
    field('compose-cc', 'Cc', cc),
    field('compose-subject', 'Subject', subject),
    field('compose-body', 'Message', body),
    h('div', { class: 'field' }, h('label', { for: 'compose-files' }, 'Attach files'), picker),
    list,
    h('div', { class: 'actions' }, send, cancel),
  );
  return {
    element,
    to,
    body,
    setBusy(busy) {
      send.disabled = busy;
      error.hidden = true;
    },
    read: () => ({
      to: parseAddresses(to.value),
      cc: parseAddresses(cc.value),
      subject: subject.value,
      text: body.value,
      attachments: attachments.map((a) => (a.file ? { file: a.file } : { ref: a.ref, filename: a.filename })),
    }),
  };
}

function showStatus(container, outbox, record, edit) {
  const text = h('p', { class: 'status-text notice' });
  const actions = h('div', { class: 'actions' });
  const back = h('a', { href: '#/mb/INBOX', class: 'btn' }, 'Back to the inbox');
  const heading = h('h3', {}, 'Sending');
  container.replaceChildren(heading, text, actions);
  let last = { record, progress: null };

  function render() {
    const { record: r, progress } = last;
    container.dataset.state = r.state;
    heading.textContent = { waiting: 'Waiting to send', done: 'Sent', failed: 'Not sent' }[r.state] ?? 'Sending';
    if (r.send_id) container.dataset.sendId = r.send_id;
    text.textContent = statusText(r, progress, navigator.onLine !== false);
    const buttons = [];
    if (r.state === 'failed' && !r.send_id && r.error?.retryable) {
      const retry = h('button', { type: 'button', class: 'btn primary' }, 'Try again');
      retry.addEventListener('click', () => outbox.retry(r.id));
      buttons.push(retry);
    }
    if (r.state === 'failed') {
      const change = h('button', { type: 'button', class: 'btn' }, 'Edit the message');
      change.addEventListener('click', () => {
        stop();
        edit();
      });
      buttons.push(change);
    }
    if (r.state === 'done' || r.state === 'failed' || r.state === 'waiting') buttons.push(back);
    actions.replaceChildren(...buttons);
  }
  const onConnection = () => render();
  const unsubscribe = outbox.subscribe((r, progress) => {
    if (!container.isConnected) {
      // The person left this screen; the outbox goes on without it.
      stop();
      return;
    }
    if (r.id !== record.id) return;
    last = { record: r, progress };
    render();
    if (r.state === 'done') stop();
  });
  function stop() {
    unsubscribe();
    globalThis.removeEventListener('online', onConnection);
    globalThis.removeEventListener('offline', onConnection);
  }
  globalThis.addEventListener('online', onConnection);
  globalThis.addEventListener('offline', onConnection);
  outbox.get(record.id).then((r) => {
    // Only if nothing newer arrived meanwhile.
    if (r && last.record === record) last = { ...last, record: r };
    render();
  });
}

/** The other messages not sent yet (offline, or refused), below the form,
 *  so one sent earlier and left is not forgotten. */
function showWaiting(section, outbox, current) {
  const list = h('ul', { class: 'attachments' });
  section.replaceChildren(h('h3', { id: 'outbox-title' }, 'Not sent yet'), list);
  let drawing = Promise.resolve();
  const draw = () => {
    drawing = drawing.then(async () => {
      const records = (await outbox.list()).filter((r) => r.id !== current() && r.state !== 'done');
      list.replaceChildren(...records.map((r) => waitingItem(r, outbox, draw)));
      section.hidden = records.length === 0;
    });
  };
  const unsubscribe = outbox.subscribe(() => (section.isConnected ? draw() : unsubscribe()));
  draw();
}

function waitingItem(record, outbox, redraw) {
  const subject = record.request.subject || '(no subject)';
  const to = [...record.request.to, ...record.request.cc].join(', ');
  const buttons = [];
  if (record.state === 'failed') {
    const forget = h('button', { type: 'button', class: 'btn', 'aria-label': `Discard “${subject}”` }, 'Discard');
    forget.addEventListener('click', () => outbox.dismiss(record.id).then(redraw));
    buttons.push(forget);
  }
  if (record.state === 'failed' && !record.send_id && record.error?.retryable) {
    const retry = h('button', { type: 'button', class: 'btn', 'aria-label': `Try “${subject}” again` }, 'Try again');
    retry.addEventListener('click', () => outbox.retry(record.id));
    buttons.push(retry);
  }
  return h(
    'li',
    { 'data-state': record.state },
    h(
      'div',
      { class: 'info' },
      h('span', { class: 'name' }, subject),
      h('span', { class: 'meta' }, `To ${to}. ${statusText(record, null, navigator.onLine !== false)}`),
    ),
    ...buttons,
  );
}
