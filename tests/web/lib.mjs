// Steps the browser test specs share.

/** Fills the sign-in form with the test servers (the "Other" preset). */
export async function fillSignIn(page, env, password) {
  await page.getByLabel('Email address').fill(env.WEB_EMAIL);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Mail provider').selectOption('custom');
  await page.getByLabel('User name (if not the address)').fill(env.WEB_USER);
  await page.locator('#imap-host').fill(env.WEB_IMAP_HOST);
  await page.locator('#imap-port').fill(env.WEB_IMAP_PORT);
  await page.locator('#imap-security').selectOption('plain');
  await page.locator('#smtp-host').fill(env.WEB_IMAP_HOST);
  await page.locator('#smtp-port').fill(env.WEB_SMTP_PORT);
  await page.locator('#smtp-security').selectOption('plain');
}


/** The seeded message's row in the list on screen. */
export function row(page, subject) {
  const exact = new RegExp(`^${subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( · attachment)?$`);
  return page.locator('ul.messages li').filter({ has: page.locator('.subject', { hasText: exact }) });
}

/** What the oracle says a mailbox holds: [{uid, subject, flags}]. */
export async function held(t, mailbox) {
  return (await t.oracle('GET', `/mailbox/${encodeURIComponent(mailbox)}`)).messages;
}
