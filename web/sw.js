// The service worker: keeps the app's shell for offline use, shows a
// notification for each push (one per account and folder: a newer one
// replaces the older), and opens the message when one is tapped. Mail
// itself is kept by the app in IndexedDB (js/store.js), not here.

const SHELL = 'lemonade-shell-v1';
const FILES = [
  '/',
  '/index.html',
  '/manifest.webmanifest',
  '/css/app.css',
  '/icons/icon.svg',
  '/icons/icon-192.png',
  '/js/app.js',
  '/js/api.js',
  '/js/dom.js',
  '/js/session.js',
  '/js/store.js',
  '/js/signin.js',
  '/js/folders.js',
  '/js/list.js',
  '/js/message.js',
  '/js/frame.js',
  '/js/settings.js',
  '/js/push.js',
  '/js/compose.js',
  '/js/outbox.js',
  '/js/outbox-store.js',
  '/js/uploads.js',
  '/css/compose.css',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(SHELL)
      .then((cache) => Promise.all(FILES.map((f) => cache.add(new Request(f, { cache: 'no-cache' })).catch(() => {}))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('lemonade-shell') && k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The shell: network first (so a new version shows at once), the cached
// copy when offline. The API is never cached here.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/v1/') || url.pathname === '/sw.js') return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(async () => {
        const cache = await caches.open(SHELL);
        const hit = await cache.match(event.request, { ignoreSearch: true, ignoreVary: true });
        if (hit) return hit;
        if (event.request.mode === 'navigate') return cache.match('/index.html', { ignoreVary: true });
        return Response.error();
      }),
  );
});

/** The notification a push payload (src/notify/payload.rs) shows, or null. */
function notificationOf(p) {
  const account = p.account_id || '';
  if (p.type === 'mail') {
    const mailbox = p.mailbox || 'INBOX';
    const messages = Array.isArray(p.messages) ? p.messages : [];
    const newest = messages.reduce((a, m) => (!a || (m.uid || 0) > (a.uid || 0) ? m : a), null);
    const count = p.count || messages.length || 1;
    const tag = `mail:${account}:${mailbox}`;
    if (!newest) {
      return {
        title: count === 1 ? 'New mail' : `${count} new messages`,
        options: { body: `In ${mailbox}`, tag, renotify: true, data: { hash: `#/mb/${encodeURIComponent(mailbox)}` } },
      };
    }
    const from = newest.from ? newest.from.name || newest.from.email || '' : '';
    const lines = [newest.subject || '(no subject)'];
    if (newest.preview) lines.push(newest.preview);
    if (count > 1) lines.push(`and ${count - 1} more in ${mailbox}`);
    return {
      title: from || 'New mail',
      options: {
        body: lines.join('\n'),
        tag,
        renotify: true,
        icon: '/icons/icon-192.png',
        data: { hash: `#/m/${encodeURIComponent(mailbox)}/${newest.uid}`, uid: newest.uid },
      },
    };
  }
  if (p.type === 'test') {
    return { title: 'Notifications work', options: { body: 'This is a test from your mail gateway.', tag: `test:${account}` } };
  }
  if (p.type === 'account' || p.type === 'reauth') {
    return {
      title: 'Your mail needs attention',
      options: { body: 'Sign in again to keep getting mail.', tag: `account:${account}`, data: { hash: '#/settings' } },
    };
  }
  return null;
}

/** The app icon's badge: the folder's unread count, when the push says it. */
async function setBadge(p) {
  if (typeof p.unseen !== 'number' || !('setAppBadge' in self.navigator)) return;
  try {
    await (p.unseen > 0 ? self.navigator.setAppBadge(p.unseen) : self.navigator.clearAppBadge());
  } catch {
    // Badges are a nicety; a browser that refuses keeps working.
  }
}

/** Mail read, moved or deleted elsewhere: its folder's notification goes
 * when it shows one of those messages, or when nothing is unread. */
async function clearRead(p) {
  const uids = Array.isArray(p.uids) ? p.uids : [];
  const tag = `mail:${p.account_id || ''}:${p.mailbox || 'INBOX'}`;
  for (const n of await self.registration.getNotifications({ tag })) {
    if (p.unseen === 0 || (n.data && uids.includes(n.data.uid))) n.close();
  }
}

self.addEventListener('push', (event) => {
  let payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch {
    payload = {};
  }
  if (payload.type === 'read') {
    event.waitUntil(Promise.all([clearRead(payload), setBadge(payload)]));
    return;
  }
  const shown = notificationOf(payload);
  if (!shown) return;
  event.waitUntil(Promise.all([self.registration.showNotification(shown.title, shown.options), setBadge(payload)]));
});

/** Opens what a notification points at: in an open window of the app, else a new one. */
async function openFromNotification(notification) {
  notification.close();
  const hash = (notification.data && notification.data.hash) || '#/mb/INBOX';
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const client of windows) {
    if (new URL(client.url).origin === self.location.origin) {
      client.postMessage({ type: 'open', hash });
      return client.focus().catch(() => client);
    }
  }
  return self.clients.openWindow('/' + hash);
}
// The tests call it directly: headless Chromium cannot tap a notification.
self.openFromNotification = openFromNotification;

self.addEventListener('notificationclick', (event) => {
  event.waitUntil(openFromNotification(event.notification));
});
