// Signing in: with the IMAP and SMTP settings (presets for well-known
// providers fill them in), or with a provider's button when the gateway
// has OAuth providers set up.

import { api, describeError, ApiError } from './api.js';
import { h, status } from './dom.js';
import { begin } from './session.js';

/** Well-known providers' servers; `domains` pick a preset from the address. */
export const PRESETS = {
  gmail: { label: 'Gmail', domains: ['gmail.com', 'googlemail.com'], imap: ['imap.gmail.com', 993, 'tls'], smtp: ['smtp.gmail.com', 465, 'tls'] },
  outlook: { label: 'Outlook.com / Microsoft 365', domains: ['outlook.com', 'hotmail.com', 'live.com', 'msn.com'], imap: ['outlook.office365.com', 993, 'tls'], smtp: ['smtp.office365.com', 587, 'starttls'] },
  yahoo: { label: 'Yahoo Mail', domains: ['yahoo.com', 'ymail.com'], imap: ['imap.mail.yahoo.com', 993, 'tls'], smtp: ['smtp.mail.yahoo.com', 465, 'tls'] },
  icloud: { label: 'iCloud Mail', domains: ['icloud.com', 'me.com', 'mac.com'], imap: ['imap.mail.me.com', 993, 'tls'], smtp: ['smtp.mail.me.com', 587, 'starttls'] },
  fastmail: { label: 'Fastmail', domains: ['fastmail.com', 'fastmail.fm'], imap: ['imap.fastmail.com', 993, 'tls'], smtp: ['smtp.fastmail.com', 465, 'tls'] },
  gmx: { label: 'GMX', domains: ['gmx.com', 'gmx.net', 'gmx.de'], imap: ['imap.gmx.com', 993, 'tls'], smtp: ['mail.gmx.com', 465, 'tls'] },
  custom: { label: 'Other (enter the servers)', domains: [], imap: ['', 993, 'tls'], smtp: ['', 465, 'tls'] },
};

const PROVIDER_NAMES = { google: 'Google', microsoft: 'Microsoft' };

/** Finishes a provider sign-in when the browser came back with ?grant= or ?error=. */
async function finishProviderSignIn(root) {
  const params = new URLSearchParams(location.search);
  const grant = params.get('grant');
  const error = params.get('error');
  if (!grant && !error) return false;
  history.replaceState(null, '', location.pathname + location.hash);
  if (error) {
    root.append(status(describeError(new ApiError(400, error, error)), 'error'));
    return false;
  }
  const { data } = await api('POST', '/v1/oauth/redeem', { json: { grant } });
  begin({ token: data.token, accountId: data.account_id, email: '' });
  location.hash = '#/mb/INBOX';
  return true;
}

function serverFields(prefix, title) {
  const id = (k) => `${prefix}-${k}`;
  return h('fieldset', {},
    h('legend', {}, title),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: id('host') }, 'Server'), h('input', { id: id('host'), name: id('host'), autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' })),
      h('div', { class: 'field' }, h('label', { for: id('port') }, 'Port'), h('input', { id: id('port'), name: id('port'), type: 'number', min: 1, max: 65535, inputmode: 'numeric' })),
      h('div', { class: 'field' }, h('label', { for: id('security') }, 'Security'),
        h('select', { id: id('security'), name: id('security') },
          h('option', { value: 'tls' }, 'TLS'), h('option', { value: 'starttls' }, 'STARTTLS'), h('option', { value: 'plain' }, 'None (unencrypted)')))));
}

function fill(form, key) {
  const preset = PRESETS[key] || PRESETS.custom;
  for (const side of ['imap', 'smtp']) {
    const [host, port, security] = preset[side];
    form.elements[`${side}-host`].value = host;
    form.elements[`${side}-port`].value = port;
    form.elements[`${side}-security`].value = security;
  }
  form.querySelector('details').open = key === 'custom';
}

function guessPreset(email) {
  const domain = (email.split('@')[1] || '').toLowerCase();
  return Object.keys(PRESETS).find((k) => PRESETS[k].domains.includes(domain)) || null;
}

function login(form, side, username, password) {
  const f = (k) => form.elements[`${side}-${k}`].value.trim();
  return { host: f('host'), port: Number(f('port')), security: f('security'), username, password };
}

async function submit(form, message) {
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  const username = form.elements.username.value.trim() || email;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  message.replaceChildren(status('Signing in…'));
  try {
    const json = { email, imap: login(form, 'imap', username, password) };
    if (form.elements['smtp-host'].value.trim()) json.smtp = login(form, 'smtp', username, password);
    const { data } = await api('POST', '/v1/accounts', { json });
    form.elements.password.value = '';
    begin({ token: data.token, accountId: data.account_id, email });
    location.hash = '#/mb/INBOX';
  } catch (e) {
    message.replaceChildren(status(describeError(e), 'error'));
    form.elements.password.focus();
  } finally {
    button.disabled = false;
  }
}

async function providerButtons(root) {
  let names = [];
  try {
    names = (await api('GET', '/v1/oauth/providers')).data.providers || [];
  } catch {
    return;
  }
  if (!names.length) return;
  const box = h('div', { class: 'providers' });
  for (const name of names) {
    box.append(h('button', { type: 'button', class: 'btn', onclick: async () => {
      try {
        const app = `${location.origin}/`;
        const { data } = await api('POST', '/v1/oauth/start', { json: { provider: name, app_redirect_uri: app } });
        location.assign(data.authorize_url);
      } catch (e) {
        root.append(status(describeError(e), 'error'));
      }
    } }, `Sign in with ${PROVIDER_NAMES[name] || name}`));
  }
  root.querySelector('.signin').prepend(h('h2', {}, 'Sign in'), box, h('p', { class: 'muted' }, 'or with your mail server settings:'));
}

/** The sign-in screen. */
export async function showSignIn(root) {
  const message = h('div', { 'aria-live': 'polite' });
  const presetSelect = h('select', { id: 'preset', name: 'preset' },
    Object.entries(PRESETS).map(([k, p]) => h('option', { value: k }, p.label)));
  const form = h('form', { class: 'signin', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email address'),
      h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, autocapitalize: 'none' })),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'),
      h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'field' }, h('label', { for: 'preset' }, 'Mail provider'), presetSelect),
    h('details', {},
      h('summary', {}, 'Server settings'),
      h('div', { class: 'field' }, h('label', { for: 'username' }, 'User name (if not the address)'),
        h('input', { id: 'username', name: 'username', autocomplete: 'off', autocapitalize: 'none' })),
      serverFields('imap', 'Incoming mail (IMAP)'),
      serverFields('smtp', 'Outgoing mail (SMTP)')),
    message,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); submit(form, message); });
  presetSelect.addEventListener('change', () => fill(form, presetSelect.value));
  form.elements.email.addEventListener('change', () => {
    const guess = guessPreset(form.elements.email.value.trim());
    if (guess) { presetSelect.value = guess; fill(form, guess); }
  });
  root.replaceChildren(h('div', { class: 'signin' }, h('h2', {}, 'Sign in to your mail'), form));
  fill(form, 'gmail');
  presetSelect.value = 'gmail';
  if (await finishProviderSignIn(root)) return;
  await providerButtons(root);
}
