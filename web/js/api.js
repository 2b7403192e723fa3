// The gateway's API: one function for every call, with the session's
// bearer token (never in a URL), error answers turned into ApiError, and
// the bytes received and sent counted for the "data used" figure.

import { token } from './session.js';

let received = 0;
let sent = 0;
const listeners = new Set();

/** An error answer of the gateway: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Bytes received and sent through the API this session. */
export function dataUsed() {
  return { received, sent };
}

/** Calls `fn({received, sent})` whenever the figure changes; returns an unsubscribe. */
export function onDataUsed(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function count(inBytes, outBytes) {
  received += inBytes;
  sent += outBytes;
  for (const fn of listeners) fn({ received, sent });
}

let lastReachable = true;

/** Tells the shell whether the gateway answered (the browser's onLine can be wrong). */
function reachable(yes) {
  if (yes === lastReachable) return;
  lastReachable = yes;
  window.dispatchEvent(new CustomEvent('lemonade:reachable', { detail: yes }));
}

function bodySize(body) {
  if (body == null) return 0;
  if (typeof body === 'string') return new TextEncoder().encode(body).length;
  if (body.byteLength !== undefined) return body.byteLength;
  if (body.size !== undefined) return body.size;
  return 0;
}

/**
 * Calls the API. `json` is sent as the JSON body; `body` as is (a Blob, an
 * ArrayBuffer). Resolves `{status, data, headers}` for 2xx answers, where
 * `data` is the parsed JSON, a Blob for other media, or null; throws
 * ApiError otherwise (status 0, code "offline" when the network failed).
 */
export async function api(method, path, { json, body, headers, signal } = {}) {
  const h = new Headers(headers || {});
  const t = token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  if (json !== undefined) {
    body = JSON.stringify(json);
    h.set('Content-Type', 'application/json');
  }
  if (!h.has('Accept')) h.set('Accept', 'application/json');
  let response;
  try {
    response = await fetch(path, { method, headers: h, body, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    reachable(false);
    throw new ApiError(0, 'offline', 'the gateway cannot be reached');
  }
  reachable(true);
  const type = response.headers.get('Content-Type') || '';
  const raw = response.status === 204 || method === 'HEAD' ? null : await response.blob();
  count((raw ? raw.size : 0) + 200, bodySize(body) + 200);
  if (response.status >= 200 && response.status < 300) {
    let data = raw;
    if (raw && type.startsWith('application/json')) data = JSON.parse(await raw.text());
    else if (raw && raw.size === 0) data = null;
    return { status: response.status, data, headers: response.headers };
  }
  let code = 'http_' + response.status;
  let message = response.statusText;
  if (raw && type.startsWith('application/json')) {
    try {
      const e = JSON.parse(await raw.text()).error;
      if (e && e.code) ({ code, message } = e);
    } catch { /* not the gateway's error shape */ }
  }
  if (response.status === 401 && t) window.dispatchEvent(new CustomEvent('lemonade:unauthorized'));
  throw new ApiError(response.status, code, message);
}

/** A mailbox name or UID as one path segment. */
export function seg(value) {
  return encodeURIComponent(String(value));
}

const WORDS = {
  offline: 'You are offline, or the server cannot be reached. Try again when you have a connection.',
  unauthorized: 'You have been signed out. Please sign in again.',
  imap_auth_failed: 'The mail server did not accept your user name or password.',
  smtp_auth_failed: 'The outgoing mail server did not accept your user name or password.',
  too_many_failed_logins: 'Too many wrong passwords. Please wait a while before trying again.',
  too_many_registrations: 'Too many sign-ins from this network. Please wait a while before trying again.',
  invalid_email: 'That does not look like an email address.',
  invalid_host: 'The server name is not valid.',
  invalid_port: 'The port must be a number from 1 to 65535.',
  invalid_credentials: 'Please fill in the user name and password.',
  plaintext_not_allowed: 'This service only connects to mail servers securely (TLS or STARTTLS).',
  imap_host_not_public: 'That mail server is on a private network this service cannot reach.',
  smtp_host_not_public: 'That outgoing mail server is on a private network this service cannot reach.',
  imap_unreachable: 'The mail server cannot be reached. Check the server name and port.',
  smtp_unreachable: 'The outgoing mail server cannot be reached. Check the server name and port.',
  imap_error: 'The mail server answered with an error. Try again later.',
  imap_refused: 'The mail server refused the request.',
  imap_unavailable: 'The mail server is not available right now. Try again soon.',
  imap_cooling_down: 'The mail server had trouble a moment ago. Try again in a little while.',
  imap_response_too_large: 'That is too large to fetch from the mail server.',
  mailbox_not_found: 'That folder does not exist (any more).',
  unknown_mailbox: 'That folder does not exist (any more).',
  message_not_found: 'That message is no longer there. It may have been moved or deleted.',
  part_not_found: 'That attachment is no longer there.',
  resync_required: 'The folder changed too much; it is being loaded again.',
  invalid_search: 'That search cannot be run. Try other words.',
  unsupported_by_server: 'Your mail server does not support this.',
  reauth_required: 'Your provider asks you to sign in again.',
  account_deleted: 'This account was removed. Please sign in again.',
  invalid_endpoint: 'This browser gave a push address the server cannot use.',
  invalid_keys: 'This browser gave push keys the server cannot use.',
  too_many_devices: 'Too many devices get notifications for this account. Remove one first.',
  push_service_unavailable: 'The browser’s push service cannot be reached right now.',
  push_service_refused: 'The browser’s push service refused the notification.',
  device_gone: 'The notification subscription ended. Turn notifications on again.',
  unknown_provider: 'That sign-in provider is not set up on this server.',
  oauth_grant_invalid: 'The sign-in expired or was already used. Please try again.',
  oauth_state_invalid: 'The sign-in expired or was already used. Please try again.',
  oauth_email_mismatch: 'You signed in with a different address than the one given.',
  oauth_code_rejected: 'The provider did not accept the sign-in. Please try again.',
  provider_unavailable: 'The sign-in provider cannot be reached right now.',
  storage_unavailable: 'The server is busy. Try again in a moment.',
  request_timeout: 'The server took too long. Try again.',
  body_too_large: 'That is too large to send.',
  upload_too_large: 'That file is too large.',
  message_too_large: 'The message is too large for your mail server. Remove some attachments.',
  upload_quota_exceeded: 'You have uploaded too much for now. Send or remove some drafts first.',
  no_recipients: 'Please add at least one recipient.',
  invalid_address: 'One of the addresses is not valid.',
  recipient_rejected: 'The mail server refused one of the recipients.',
  no_smtp_server: 'No outgoing mail server is set up for this account, so it cannot send.',
  smtp_rejected: 'The outgoing mail server refused the message.',
};

/** Words a person understands for an error (an ApiError or any other). */
export function describeError(err) {
  if (!err) return 'Something went wrong.';
  if (err.name === 'AbortError') return 'Stopped.';
  const words = WORDS[err.code];
  if (words) return words;
  if (err.status >= 500) return 'The server had a problem. Try again later.';
  if (err.status === 404) return 'Not found.';
  if (err.status >= 400) return `The request was refused: ${err.message || err.code}.`;
  return err.message || 'Something went wrong.';
}
