// Where the outbox keeps its messages (and their files) until they are
// sent: the app's IndexedDB store `outbox` (js/store.js), records keyed by
// their `id`. Blobs and Files are kept as they are (IndexedDB stores them),
// so a message composed offline keeps its attachments across a reload;
// sign-out empties the store with the rest (store.js `clearAll`).

import { del, get, list, put } from './store.js';

const STORE = 'outbox';

/** {put, get, del, list} over the outbox's records, oldest first. */
export function outboxStore() {
  return {
    put: (record) => put(STORE, record.id, record),
    get: (id) => get(STORE, id),
    del: (id) => del(STORE, id),
    list: async () => (await list(STORE)).map(([, record]) => record).sort((a, b) => a.created - b.created),
  };
}
