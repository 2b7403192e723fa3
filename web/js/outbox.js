// The outbox: every message the person sends passes through here.
//
// A message is stored (with its files) the moment Send is pressed, with an
// Idempotency-Key made then and kept with it: however often the POST is
// retried (a lost answer, a reload, the connection coming back), the gateway
// sends it once. Messages wait while offline and go out when the connection
// returns (the `online` event) or when the app starts. Each one's status is
// followed (GET /v1/send/{id}) until `done`, or until it failed, with the
// server's reason in words. The logic takes its API function, storage and
// timers as arguments (see `createOutbox`), so tests can drive it.

import { isNetworkError, OfflineError, uploadBlob } from './uploads.js';

/** Record states: waiting (for a connection or its turn), uploading,
 *  sending (POSTed, status followed), done, failed. */
export const FINAL = new Set(['done', 'failed']);

function newKey() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A new outbox record for `message`: {to, cc, bcc, subject, text,
 * in_reply_to?, attachments: [{file: File} | {ref: {mailbox, uid, part},
 * filename?}]}. The Idempotency-Key is made here, once.
 */
export function newRecord(message, now = Date.now()) {
  return {
    id: newKey(),
    key: newKey(),
    created: now,
    state: 'waiting',
    request: {
      to: message.to ?? [],
      cc: message.cc ?? [],
      bcc: message.bcc ?? [],
      subject: message.subject ?? '',
      text: message.text ?? '',
      ...(message.in_reply_to ? { in_reply_to: message.in_reply_to } : {}),
    },
    attachments: (message.attachments ?? []).map((a) =>
      a.file
        ? { file: a.file, name: a.file.name, size: a.file.size, upload: null }
        : { ref: a.ref, filename: a.filename },
    ),
  };
}

/** The JSON body of POST /v1/send for a record whose files are uploaded. */
export function sendBody(record) {
  const attachments = record.attachments.map((a) => {
    if (a.ref) return a.filename ? { ref: a.ref, filename: a.filename } : { ref: a.ref };
    return { upload_id: a.upload.upload_id, filename: a.name };
  });
  return { ...record.request, attachments };
}

/** The record minus its file contents, once they are not needed. */
function withoutFiles(record) {
  return {
    ...record,
    attachments: record.attachments.map((a) => (a.file ? { ...a, file: null } : a)),
  };
}

/** The record was removed from the store while it was being sent. */
class Removed extends Error {}

const POLL_FIRST_MS = 500;
const POLL_MAX_MS = 5000;
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60000;

/**
 * The outbox over `store` ({put(record), get(id), del(id), list()}).
 * Options: `api`, `describeError(err)`, `isOnline()`, `sleep(ms)`,
 * `lock(id, fn)` (runs fn unless another tab is sending that record),
 * `uploadOptions` (passed to uploadBlob, e.g. chunkBytes).
 */
export function createOutbox({
  api,
  store,
  describeError,
  isOnline,
  sleep,
  lock = (id, fn) => fn(),
  uploadOptions = {},
}) {
  const running = new Map();
  const listeners = new Set();
  const progress = new Map();
  const retries = new Map();

  function emit(record) {
    for (const fn of listeners) {
      try {
        fn(record, progress.get(record.id));
      } catch (err) {
        console.error(err);
      }
    }
  }

  async function save(record, { create = false } = {}) {
    // Removed meanwhile (sign-out, discarded): stays removed.
    if (!create && !(await store.get(record.id))) throw new Removed();
    // A sent message is the gateway's (and the Sent folder's) from now on.
    if (record.state === 'done') await store.del(record.id);
    else await store.put(record);
    emit(record);
    return record;
  }

  async function fail(record, err) {
    // Files stay until the gateway has the message, for a retry.
    return save({
      ...(record.send_id ? withoutFiles(record) : record),
      state: 'failed',
      error: {
        code: err?.code ?? '',
        message: describeError(err),
        // The gateway refused it for now (5xx), not for what it is (4xx).
        retryable: !(err?.status > 0 && err.status < 500),
      },
    });
  }

  async function uploadFiles(record) {
    for (let i = 0; i < record.attachments.length; i += 1) {
      const a = record.attachments[i];
      if (!a.file || a.upload?.done) continue;
      record = await save({ ...record, state: 'uploading' });
      await uploadBlob(a.file, { ...(a.upload ?? {}), name: a.name }, {
        api,
        sleep,
        isOnline,
        ...uploadOptions,
        onState: async (upload) => {
          const attachments = record.attachments.slice();
          attachments[i] = { ...attachments[i], upload };
          record = await save({ ...record, attachments });
        },
        onProgress: (sent, total) => {
          progress.set(record.id, { name: a.name, sent, total });
          emit(record);
        },
      });
    }
    progress.delete(record.id);
    return record;
  }

  function fromStatus(record, status) {
    const next = {
      ...record,
      send_id: status.send_id || record.send_id,
      status: status.status,
      state: status.status === 'done' ? 'done' : status.status === 'failed' ? 'failed' : 'sending',
    };
    if (status.status === 'failed') {
      const e = status.error ?? {};
      const reason = describeError({ status: 0, code: e.code, message: e.message, smtp_reply: e.smtp_reply });
      next.error = { code: e.code ?? '', message: reason, smtp_reply: e.smtp_reply ?? '' };
    }
    if (status.status === 'done' && status.error?.code) {
      // Sent, with a note (the Sent copy could not be stored).
      next.note = describeError({ status: 0, code: status.error.code, message: status.error.message });
    }
    return FINAL.has(next.state) ? withoutFiles(next) : next;
  }

  async function post(record) {
    const response = await api('POST', '/v1/send', {
      json: sendBody(record),
      headers: { 'Idempotency-Key': record.key },
    });
    return save(fromStatus(record, response.data));
  }

  async function follow(record) {
    let wait = POLL_FIRST_MS;
    while (!FINAL.has(record.state)) {
      await sleep(wait);
      wait = Math.min(wait * 2, POLL_MAX_MS);
      const response = await api('GET', `/v1/send/${encodeURIComponent(record.send_id)}`);
      record = await save(fromStatus(record, response.data));
    }
    return record;
  }

  async function attempt(record) {
    if (!isOnline()) return save({ ...record, state: 'waiting' });
    if (!record.send_id) {
      record = await uploadFiles(record);
      record = await post(record);
    }
    return follow(record);
  }

  async function afterError(record, err) {
    const latest = await store.get(record.id);
    if (!latest || err instanceof Removed) return undefined;
    if (err instanceof OfflineError || isNetworkError(err)) {
      // Tried again when the connection returns, with the same key; and,
      // when the browser thinks it is online, after a while anyway.
      if (isOnline()) retryLater(record.id);
      return save({ ...latest, state: 'waiting' });
    }
    return fail(latest, err);
  }

  async function run(record) {
    try {
      try {
        return await attempt(record);
      } catch (err) {
        return await afterError(record, err);
      }
    } catch (err) {
      if (err instanceof Removed) return undefined;
      throw err;
    }
  }

  function retryLater(id) {
    const tries = (retries.get(id) ?? 0) + 1;
    retries.set(id, tries);
    const wait = Math.min(RETRY_FIRST_MS * 2 ** (tries - 1), RETRY_MAX_MS);
    // After this run has ended (a new one would be refused while it runs).
    sleep(wait)
      .then(() => running.get(id))
      .then(() => process(id))
      .catch((err) => console.error('outbox', err));
  }

  /** Sends (or goes on sending) one record; one run per record at a time. */
  function process(id) {
    if (running.has(id)) return running.get(id);
    const job = lock(id, async () => {
      const record = await store.get(id);
      if (!record || FINAL.has(record.state)) return record;
      return run(record);
    }).finally(() => running.delete(id));
    running.set(id, job);
    return job;
  }

  return {
    /** Stores `message` and starts sending it; answers the record. */
    async enqueue(message) {
      const record = await save(newRecord(message), { create: true });
      process(record.id);
      return record;
    },
    process,
    /** Sends every record still to go (app start, connection back). */
    async flush() {
      const records = await store.list();
      await Promise.all(records.filter((r) => !FINAL.has(r.state)).map((r) => process(r.id)));
    },
    /** Tries a failed record again, with the same key: a send the gateway
     *  took already is not sent a second time. */
    async retry(id) {
      const record = await store.get(id);
      if (!record || record.state !== 'failed' || record.send_id || !record.error?.retryable) return record;
      await save({ ...record, state: 'waiting', error: undefined });
      return process(id);
    },
    /** Forgets a finished (or given up) record. */
    async dismiss(id) {
      if (!running.has(id)) await store.del(id);
    },
    list: () => store.list(),
    get: (id) => store.get(id),
    /** Calls fn(record, progress?) on every change; answers an unsubscribe. */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

let shared = null;

/** Words for what can go wrong in a send (the rest: api.js's). */
const SEND_WORDS = {
  unknown_upload: 'An attached file expired on the server before the message went out. Attach it again.',
  upload_incomplete: 'An attached file did not finish uploading.',
  unknown_message: 'The message you reply to or forward is no longer there.',
  unknown_part: 'A forwarded attachment is no longer in the original message.',
  unsupported_part: 'A forwarded attachment cannot be sent as it is.',
  reference_gone: 'The message you reply to or forward was deleted before this one went out.',
  sent_copy_failed: 'It was sent, but the copy could not be saved in your Sent folder.',
  sent_copy_gone: 'The copy in your Sent folder was deleted before sending, so nothing was sent. Send it again.',
  too_many_recipients: 'A message may have at most 100 recipients. Send several messages.',
  too_many_attachments: 'A message may have at most 100 attachments.',
  spool_error: 'The server could not store the message. Try again later.',
  account_deleted: 'This account was removed while the message was going out, so it was not sent.',
  upload_stalled: 'The upload stopped. Try again when the connection is better.',
};

function sendWords(describeError) {
  return (err) => {
    const words = SEND_WORDS[err?.code] ?? describeError(err);
    // The mail server's own reply says best why it refused.
    return err?.smtp_reply ? `${words} The server said: ${err.smtp_reply}` : words;
  };
}

function browserLock(id, fn) {
  if (!globalThis.navigator?.locks) return fn();
  // Another tab sending this record already: leave it to that tab.
  return navigator.locks.request(`lemonade-outbox:${id}`, { ifAvailable: true }, (held) =>
    held ? fn() : null,
  );
}

/**
 * The app's outbox, made on first use: sends what waits now and whenever
 * the connection returns. Called by the shell at start and by compose.
 */
export function startOutbox() {
  if (shared) return shared;
  shared = (async () => {
    const [{ api, describeError }, { outboxStore }] = await Promise.all([
      import('./api.js'),
      import('./outbox-store.js'),
    ]);
    const outbox = createOutbox({
      api,
      store: outboxStore(),
      describeError: sendWords(describeError),
      isOnline: () => navigator.onLine !== false,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      lock: browserLock,
    });
    globalThis.addEventListener('online', () => outbox.flush());
    // The shell's word that the gateway answers again (api.js).
    globalThis.addEventListener('lemonade:reachable', (event) => event.detail && outbox.flush());
    outbox.flush();
    return outbox;
  })();
  return shared;
}
