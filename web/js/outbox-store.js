// Where the outbox keeps its messages (and their files) until they are
// sent: one IndexedDB object store, records keyed by `id`. Blobs and Files
// are kept as they are (IndexedDB stores them), so a message composed
// offline keeps its attachments across a reload.

const DB_NAME = 'lemonade-outbox';
const STORE = 'outbox';

let opening = null;

function open() {
  if (opening) return opening;
  opening = new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => {
      opening = null;
      reject(request.error);
    };
  });
  return opening;
}

async function run(mode, action) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** {put, get, del, list, clear} over the outbox's object store. */
export function outboxStore() {
  return {
    put: (record) => run('readwrite', (s) => s.put(record)),
    get: (id) => run('readonly', (s) => s.get(id)),
    del: (id) => run('readwrite', (s) => s.delete(id)),
    list: async () =>
      ((await run('readonly', (s) => s.getAll())) ?? []).sort((a, b) => a.created - b.created),
    clear: () => run('readwrite', (s) => s.clear()),
  };
}

/** Removes every stored message (sign-out: nothing of the mail stays). */
export async function clearOutbox() {
  await outboxStore().clear();
}
