// The signed-in session: the bearer token and account, kept in
// localStorage (never in a URL), and signing out.

const KEY = 'lemonade.session';

function read() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

/** The bearer token, or null when signed out. */
export function token() {
  const s = read();
  return s ? s.token : null;
}

/** The account id, or null. */
export function accountId() {
  const s = read();
  return s ? s.accountId : null;
}

/** The whole session: {token, accountId, email, deviceId?}, or null. */
export function session() {
  return read();
}

export function signedIn() {
  return !!token();
}

/** Starts a session after sign-in. */
export function begin({ token, accountId, email }) {
  localStorage.setItem(KEY, JSON.stringify({ token, accountId, email }));
}

/** Remembers something of the session (e.g. the push device id). */
export function remember(fields) {
  const s = read();
  if (s) localStorage.setItem(KEY, JSON.stringify({ ...s, ...fields }));
}

/** Forgets the session (the caller revokes the token first). */
export function end() {
  localStorage.removeItem(KEY);
}
