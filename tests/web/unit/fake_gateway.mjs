// An in-memory stand-in for the gateway's upload and send routes, with the
// same rules (Upload-Offset must match; one key, one send), and faults to
// script: a connection dropped after part of a chunk arrived, a lost answer,
// no connection at all. For the unit tests of uploads.js and outbox.js; the
// browser tests run against the real gateway.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class FakeGateway {
  constructor() {
    this.uploads = new Map();
    this.sends = new Map();
    this.keys = new Map();
    this.requests = [];
    this.online = true;
    /** Called before each request; may throw to fail it, or return a
     *  function to run after the server did its work (a lost answer). */
    this.fault = null;
    this.nextId = 1;
    this.statusScript = ['queued', 'stored', 'done'];
  }

  headers(map) {
    const lower = Object.fromEntries(Object.entries(map).map(([k, v]) => [k.toLowerCase(), v]));
    return { get: (name) => lower[name.toLowerCase()] ?? null };
  }

  /** The api(method, path, {json, body, headers}) interface of api.js. */
  api = async (method, path, options = {}) => {
    this.requests.push({ method, path, headers: options.headers ?? {} });
    if (!this.online) throw new TypeError('Failed to fetch');
    const fault = this.fault?.(method, path, options);
    const answer = await this.route(method, path, options, fault);
    if (typeof fault === 'function') fault();
    return answer;
  };

  async route(method, path, options, fault) {
    const header = (n) => {
      const h = options.headers ?? {};
      const k = Object.keys(h).find((x) => x.toLowerCase() === n);
      return k === undefined ? undefined : h[k];
    };
    let m;
    if (method === 'POST' && path === '/v1/uploads') {
      const id = `u${this.nextId++}`;
      const up = { id, length: Number(header('upload-length')), bytes: new Uint8Array(0) };
      up.metadata = header('upload-metadata');
      this.uploads.set(id, up);
      return this.uploadAnswer(up, 201);
    }
    if ((m = path.match(/^\/v1\/uploads\/([^/]+)$/))) {
      const up = this.uploads.get(decodeURIComponent(m[1]));
      if (!up) throw new ApiError(404, 'not_found', 'no such upload');
      if (method === 'HEAD') return this.uploadAnswer(up, 200);
      if (method === 'PATCH') {
        const offset = Number(header('upload-offset'));
        if (offset !== up.bytes.length) {
          throw new ApiError(409, 'offset_mismatch', `the upload is at offset ${up.bytes.length}`);
        }
        const chunk = new Uint8Array(await options.body.arrayBuffer());
        const keep = typeof fault === 'number' ? fault : chunk.length;
        const bytes = new Uint8Array(up.bytes.length + keep);
        bytes.set(up.bytes);
        bytes.set(chunk.subarray(0, keep), up.bytes.length);
        up.bytes = bytes;
        if (keep < chunk.length) throw new TypeError('network error: connection reset');
        return this.uploadAnswer(up, 200);
      }
    }
    if (method === 'POST' && path === '/v1/send') {
      const key = header('idempotency-key');
      if (key && this.keys.has(key)) return this.sendAnswer(this.sends.get(this.keys.get(key)));
      for (const a of options.json.attachments) {
        if (a.upload_id) {
          const up = this.uploads.get(a.upload_id);
          if (!up) throw new ApiError(422, 'unknown_upload', 'unknown upload');
          if (up.bytes.length < up.length) throw new ApiError(422, 'upload_incomplete', 'incomplete');
        }
      }
      const send = { id: `s${this.nextId++}`, json: options.json, step: 0 };
      this.sends.set(send.id, send);
      if (key) this.keys.set(key, send.id);
      return this.sendAnswer(send);
    }
    if (method === 'GET' && (m = path.match(/^\/v1\/send\/([^/]+)$/))) {
      const send = this.sends.get(m[1]);
      if (!send) throw new ApiError(404, 'not_found', 'no such send');
      send.step = Math.min(send.step + 1, this.statusScript.length - 1);
      return this.sendAnswer(send);
    }
    throw new ApiError(404, 'not_found', `no route ${method} ${path}`);
  }

  uploadAnswer(up, status) {
    const complete = up.bytes.length >= up.length;
    return {
      status,
      headers: this.headers({ 'Upload-Offset': String(up.bytes.length) }),
      data: { upload_id: up.id, size: up.bytes.length, length: up.length, sha256: complete ? 'x' : '' },
    };
  }

  sendAnswer(send) {
    const status = this.statusScript[send.step];
    const data = { send_id: send.id, status, bytes: {} };
    if (status === 'failed') data.error = { code: 'smtp_rejected', message: '550 no such user' };
    return { status: status === 'done' || status === 'failed' ? 200 : 202, headers: this.headers({}), data };
  }
}

/** A store like outbox-store.js, in memory (structured clones, as IndexedDB). */
export function memoryStore() {
  const records = new Map();
  return {
    records,
    put: async (r) => void records.set(r.id, structuredClone(r)),
    get: async (id) => (records.has(id) ? structuredClone(records.get(id)) : undefined),
    del: async (id) => void records.delete(id),
    list: async () => [...records.values()].map((r) => structuredClone(r)),
  };
}
