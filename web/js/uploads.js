// Resumable uploads against the gateway's tus-style upload API.
//
// POST /v1/uploads with Upload-Length creates the upload before any byte is
// sent; PATCH /v1/uploads/{id} with Upload-Offset appends a chunk; HEAD
// answers how much arrived. A chunk cut off by a dropped connection may have
// arrived in part, so after any failure the server's offset is asked for
// and the upload continues from there, never from where the client thinks
// it was. No DOM here: the API function, the wait between attempts and the
// place the upload's state is kept are passed in, so tests can drive it.

/** Bytes per PATCH: small enough that a flaky link loses little. */
export const CHUNK_BYTES = 256 * 1024;

/** Attempts in a row that made no progress before the upload gives up. */
export const MAX_STALLED_ATTEMPTS = 6;

/** Raised when the upload cannot go on until the connection returns. */
export class OfflineError extends Error {
  constructor(cause) {
    super('no connection');
    this.name = 'OfflineError';
    this.cause = cause;
  }
}

/** True for an error that says nothing about the request itself: the
 *  request may not have reached the server, or its answer was lost. */
export function isNetworkError(err) {
  if (!err || err.name === 'AbortError') return false;
  if (err instanceof OfflineError) return true;
  return !(typeof err.status === 'number' && err.status > 0);
}

/** Errors after which asking the offset and going on can help. */
const RESUMABLE_CODES = new Set([
  'offset_mismatch',
  'upload_in_progress',
  'upload_interrupted',
  'upload_stalled',
  'request_timeout',
]);

function retryable(err) {
  if (isNetworkError(err)) return true;
  if (RESUMABLE_CODES.has(err.code)) return true;
  return err.status >= 500 && err.status !== 507;
}

/** base64 of a string's UTF-8 bytes, as tus Upload-Metadata wants. */
export function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The Upload-Metadata header naming a file and its type. */
export function uploadMetadata({ name, type }) {
  const pairs = [];
  if (name) pairs.push(`filename ${base64Utf8(name)}`);
  if (type) pairs.push(`filetype ${base64Utf8(type)}`);
  return pairs.join(',');
}

function header(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name);
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? null : headers[key];
}

function offsetOf(response) {
  const fromHeader = header(response.headers, 'upload-offset');
  if (fromHeader !== null && fromHeader !== undefined && fromHeader !== '') {
    const n = Number(fromHeader);
    if (Number.isSafeInteger(n) && n >= 0) return n;
  }
  const size = response.data && response.data.size;
  if (Number.isSafeInteger(size) && size >= 0) return size;
  throw new Error('the gateway did not say how much of the upload arrived');
}

/** Creates a resumable upload for `file` ({size, type, name}); no bytes yet. */
export async function createUpload(api, file, { signal } = {}) {
  const headers = {
    'Upload-Length': String(file.size),
    'Content-Type': file.type || 'application/octet-stream',
  };
  const metadata = uploadMetadata(file);
  if (metadata) headers['Upload-Metadata'] = metadata;
  const response = await api('POST', '/v1/uploads', {
    body: new Blob([]),
    headers,
    signal,
  });
  return { upload_id: response.data.upload_id, offset: offsetOf(response) };
}

/** How many bytes of the upload the server holds. */
export async function serverOffset(api, uploadId, { signal } = {}) {
  const response = await api('HEAD', `/v1/uploads/${encodeURIComponent(uploadId)}`, { signal });
  return offsetOf(response);
}

/** Appends `chunk` at `offset`; answers the new offset. */
export async function appendChunk(api, uploadId, offset, chunk, { signal } = {}) {
  const response = await api('PATCH', `/v1/uploads/${encodeURIComponent(uploadId)}`, {
    body: chunk,
    headers: {
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
    },
    signal,
  });
  return offsetOf(response);
}

function defaultSleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/**
 * Uploads `blob` (a File or Blob with `size`, `type`, and `name` when a
 * File), continuing the upload `state` describes ({upload_id, offset},
 * both absent for a new one). `onState` gets every new state before the
 * next request, so whoever keeps it can resume after a reload. Answers the
 * final state, {upload_id, offset: size, done: true}.
 *
 * Options: `api` (the client function), `chunkBytes`, `sleep(ms, signal)`,
 * `isOnline()` (false: stop with OfflineError instead of retrying),
 * `onProgress(sent, total)`, `signal`.
 */
export async function uploadBlob(blob, state, options) {
  const {
    api,
    chunkBytes = CHUNK_BYTES,
    sleep = defaultSleep,
    isOnline = () => true,
    onState = () => {},
    onProgress = () => {},
    signal,
  } = options;
  const file = { size: blob.size, type: blob.type, name: state?.name ?? blob.name };
  let current = { ...state };
  let stalled = 0;
  let restarted = false;
  const save = async (next) => {
    current = { ...current, ...next };
    await onState(current);
    onProgress(current.offset ?? 0, file.size);
  };
  for (;;) {
    signal?.throwIfAborted?.();
    try {
      if (!current.upload_id) {
        await save(await createUpload(api, file, { signal }));
      } else if (current.offset === undefined || current.offset === null) {
        await save({ offset: await serverOffset(api, current.upload_id, { signal }) });
      }
      if (current.offset >= file.size) {
        await save({ done: true });
        return current;
      }
      const end = Math.min(current.offset + chunkBytes, file.size);
      const before = current.offset;
      // Unknown until the server says: a failure below asks it.
      const offset = await appendChunk(api, current.upload_id, before, blob.slice(before, end), {
        signal,
      });
      await save({ offset });
      if (offset > before) stalled = 0;
    } catch (err) {
      if (err?.name === 'AbortError' || signal?.aborted) throw err;
      if (err?.status === 404 && current.upload_id && !restarted) {
        // Expired or removed: start again, once.
        restarted = true;
        current = { name: file.name };
        await onState(current);
        continue;
      }
      if (!retryable(err)) throw err;
      if (current.upload_id) {
        // Whatever the failed request did, the server knows the offset;
        // kept so, a resume after a reload asks it too.
        current = { ...current, offset: null };
        await onState(current);
      }
      if (isNetworkError(err) && !isOnline()) throw new OfflineError(err);
      stalled += 1;
      if (stalled >= MAX_STALLED_ATTEMPTS) throw err;
      await sleep(Math.min(500 * 2 ** (stalled - 1), 8000), signal);
    }
  }
}
