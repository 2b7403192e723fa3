// Notifications: subscribing this browser with the gateway's VAPID key and
// registering it as a device (POST /v1/devices), or removing it again.

import { api } from './api.js';
import { remember, session } from './session.js';

/** The payload tiers, in the words the settings show. */
export const TIERS = [
  ['preview', 'Sender, subject and the first lines of the message'],
  ['headers', 'Sender and subject only'],
  ['count', 'Only how many new messages there are'],
];

/** Why this browser cannot get notifications, or null when it can try. */
export function unsupported() {
  if (!('serviceWorker' in navigator)) return 'This browser cannot run the notification helper (no service workers).';
  if (!('PushManager' in window)) return 'This browser does not support push notifications. On an iPhone, add this app to the home screen first.';
  if (!('Notification' in window)) return 'This browser cannot show notifications.';
  return null;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromB64url(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A failure to subscribe, in words. */
export class PushUnavailable extends Error {}

/** Subscribes this browser and registers it; resolves the device id. */
export async function turnOn({ payload, mailboxes }) {
  const why = unsupported();
  if (why) throw new PushUnavailable(why);
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') throw new PushUnavailable('Notifications are blocked for this site. Allow them in the browser’s site settings to turn them on.');
  const registration = await navigator.serviceWorker.ready;
  const { data } = await api('GET', '/v1/push/vapid');
  let subscription;
  try {
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: fromB64url(data.public_key),
    });
  } catch (e) {
    throw new PushUnavailable(`This browser could not subscribe to notifications (${e.message || e.name}). Everything else keeps working.`);
  }
  const keys = {
    p256dh: b64url(subscription.getKey('p256dh')),
    auth: b64url(subscription.getKey('auth')),
  };
  const answer = await api('POST', '/v1/devices', {
    json: { subscription: { endpoint: subscription.endpoint, keys }, payload, mailboxes },
  });
  remember({ deviceId: answer.data.device_id });
  return answer.data;
}

/** Removes this browser's device and its subscription. */
export async function turnOff() {
  const s = session();
  if (s && s.deviceId) {
    try {
      await api('DELETE', `/v1/devices/${encodeURIComponent(s.deviceId)}`);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    remember({ deviceId: null });
  }
  if ('serviceWorker' in navigator) {
    const registration = await navigator.serviceWorker.getRegistration();
    const subscription = registration && registration.pushManager ? await registration.pushManager.getSubscription() : null;
    if (subscription) await subscription.unsubscribe().catch(() => {});
  }
}
