// A small IndexedDB store: the last loaded message lists and opened
// messages (for reading offline), the outbox of sends made offline, and
// odds and ends. `clearAll()` removes everything at sign-out.

const DB = 'lemonade';
const VERSION = 1;
/** The object stores: `mail` (lists, messages), `outbox`, `meta`. */
export const STORES = ['mail', 'outbox', 'meta'];

let opening = null;

function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, VERSION);
      req.onupgradeneeded = () => {
        for (const name of STORES) {
          if (!req.result.objectStoreNames.contains(name)) req.result.createObjectStore(name);
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    opening.catch(() => { opening = null; });
  }
  return opening;
}

async function run(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const req = fn(tx.objectStore(store));
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export function put(store, key, value) {
  return run(store, 'readwrite', (s) => s.put(value, key));
}

export function get(store, key) {
  return run(store, 'readonly', (s) => s.get(key));
}

export function del(store, key) {
  return run(store, 'readwrite', (s) => s.delete(key));
}

/** Every `[key, value]` of a store, in key order. */
export async function list(store) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const out = [];
    const tx = db.transaction(store, 'readonly');
    const req = tx.objectStore(store).openCursor();
    req.onsuccess = () => {
      const cursor = req.result;
      if (cursor) {
        out.push([cursor.key, cursor.value]);
        cursor.continue();
      }
    };
    tx.oncomplete = () => resolve(out);
    tx.onerror = () => reject(tx.error);
  });
}

/** Empties every store and the service worker's mail caches. */
export async function clearAll() {
  for (const name of STORES) await run(name, 'readwrite', (s) => s.clear());
  if (self.caches) {
    for (const key of await caches.keys()) {
      if (key.startsWith('lemonade-mail')) await caches.delete(key);
    }
  }
}
