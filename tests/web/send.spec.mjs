// Sending from the app: a reply with a file from the phone (uploaded
// resumably, through a dropped connection), a forward of an attachment by
// reference (never downloaded), a reply written offline that goes out once
// after reconnecting, and a refusal shown in words. The SMTP sink and the Sent folder are asked through
// the oracle (tests/send/web_oracle.rs).

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { held } from './lib.mjs';

/** A text file of `n` bytes that spans several upload chunks. */
function notes(n) {
  const line = 'Notes for the report: the figures of the third quarter, checked twice.\n';
  return Buffer.from(line.repeat(Math.ceil(n / line.length)).slice(0, n));
}

/** The decoded body of the MIME part of `data` named `filename`. */
function attachment(data, filename) {
  const at = data.indexOf(`filename="${filename}"`);
  if (at < 0) return null;
  const bodyStart = data.indexOf('\r\n\r\n', at) + 4;
  const bodyEnd = data.indexOf('\r\n--', bodyStart);
  return Buffer.from(data.slice(bodyStart, bodyEnd).replace(/\s+/g, ''), 'base64');
}

/** A header's value in a raw message (unfolded). */
function headerOf(data, name) {
  const head = data.slice(0, data.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line ? line.slice(name.length + 1).trim() : null;
}

/** Polls `check` until it answers something truthy (an explicit condition,
 *  bounded so a failure shows instead of hanging). */
async function until(what, check, tries = 150) {
  for (let i = 0; i < tries; i += 1) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`never happened: ${what}`);
}

async function sunk(t, subject) {
  const { messages } = await t.oracle('GET', '/smtp');
  return messages.filter((m) => headerOf(m.data, 'Subject') === subject);
}

async function sentCopies(t, subject) {
  return (await held(t, 'Sent')).filter((m) => m.subject === subject);
}

async function waitForStatus(page, state) {
  await page.locator(`.send-status[data-state="${state}"]`).waitFor({ timeout: 60_000 });
}

export default async function (t) {
  const { page, context, assert } = t;
  await t.signIn();
  const sends = [];
  const uploads = [];
  const partDownloads = [];
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (path === '/v1/send' && r.method() === 'POST') sends.push(r.headers()['idempotency-key']);
    if (path.startsWith('/v1/uploads')) uploads.push(`${r.method()} ${path}`);
    if (path.includes('/parts/')) partDownloads.push(path);
  });

  await t.step('the upload and outbox logic passes its unit tests (tests/web/unit/)', async () => {
    const dir = fileURLToPath(new URL('./unit/', import.meta.url));
    const run = spawnSync(process.execPath, ['--test', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, `node --test ${dir}:\n${run.stdout}${run.stderr}`);
  });

  await t.step('a new message shows the compose screen', async () => {
    await t.go('#/compose?mode=new');
    await page.getByLabel('To').waitFor();
    await t.shot('compose-new');
    await t.axe('compose');
    await page.getByRole('button', { name: 'Send' }).click();
    const alert = page.locator('.compose [role="alert"]');
    await alert.waitFor();
    assert.match(await alert.innerText(), /at least one recipient/);
  });

  const file = notes(600 * 1024);
  await t.step('reply with a file attachment, through a dropped upload', async () => {
    await t.go(`#/m/INBOX/${t.uids.report}`);
    await page.locator('#reply').click();
    await page.waitForFunction(() => document.getElementById('compose-to')?.value);
    assert.equal(await page.getByLabel('To').inputValue(), 'bob@test.local');
    assert.equal(await page.getByLabel('Subject').inputValue(), 'Re: the report');
    const body = page.getByLabel('Message', { exact: true });
    assert.match(await body.inputValue(), /wrote:\n> See attached\./);
    await body.fill(`Here are my notes.\n${await body.inputValue()}`);
    await page.getByLabel('Attach files').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: file });
    await page.locator('.attachments li', { hasText: 'notes.txt' }).waitFor();
    await t.shot('compose-reply');
    await t.axe('compose (reply)');
    // The second chunk's connection drops before it arrives: the upload
    // asks the gateway where it stands and goes on from there.
    let patches = 0;
    await page.route('**/v1/uploads/*', (route) =>
      route.request().method() === 'PATCH' && ++patches === 2 ? route.abort('connectionreset') : route.fallback(),
    );
    await page.getByRole('button', { name: 'Send' }).click();
    await waitForStatus(page, 'done');
    await page.unroute('**/v1/uploads/*');
    await t.shot('compose-sent');
    await t.axe('compose (sent)');
    assert.ok(patches >= 2, `the dropped chunk was tried (${patches} PATCH)`);
    assert.ok(uploads.some((u) => u.startsWith('HEAD ')), `the offset was asked after the drop: ${uploads}`);

    const [message, ...more] = await until('the reply reaches the sink', () => sunk(t, 'Re: the report').then((m) => m.length && m));
    assert.equal(more.length, 0, 'one reply sent');
    assert.deepEqual(message.rcpt_to, ['bob@test.local']);
    assert.equal(headerOf(message.data, 'In-Reply-To'), '<orig@test.local>');
    assert.match(headerOf(message.data, 'References'), /<older@test.local>\s*<orig@test.local>/);
    assert.ok(message.data.includes('Here are my notes.'));
    assert.ok(attachment(message.data, 'notes.txt')?.equals(file), 'the file arrives whole, byte for byte');
    const copies = await until('the Sent copy', () => sentCopies(t, 'Re: the report').then((c) => c.length && c));
    assert.equal(copies.length, 1, 'one copy in Sent');
  });

  await t.step('forward an attachment by reference, without downloading it', async () => {
    const uploadsBefore = uploads.length;
    await t.go(`#/m/INBOX/${t.uids.report}`);
    await page.locator('#forward').click();
    // The compose screen's list: the message screen's, with the same
    // file, may still be showing for a moment.
    const forwarded = page.locator('.compose .attachments li', { hasText: 'report.bin' });
    await forwarded.waitFor();
    assert.match(await forwarded.innerText(), /forwarded from the original/);
    assert.equal(await page.getByLabel('Subject').inputValue(), 'Fwd: the report');
    await page.getByLabel('To').fill('Dave <dave@test.local>, erin@test.local');
    await t.shot('compose-forward');
    await t.axe('compose (forward)');
    await page.setViewportSize({ width: 1280, height: 800 });
    try {
      await t.shot('compose-forward-desktop');
      await t.axe('compose (forward, desktop)');
    } finally {
      await page.setViewportSize({ width: 360, height: 740 });
    }
    await page.getByRole('button', { name: 'Send' }).click();
    await waitForStatus(page, 'done');
    assert.deepEqual(partDownloads, [], 'no attachment was downloaded');
    assert.equal(uploads.length, uploadsBefore, 'nothing was uploaded');

    const [message, ...more] = await until('the forward reaches the sink', () => sunk(t, 'Fwd: the report').then((m) => m.length && m));
    assert.equal(more.length, 0, 'one forward sent');
    assert.deepEqual([...message.rcpt_to].sort(), ['dave@test.local', 'erin@test.local']);
    assert.ok(message.data.includes('---------- Forwarded message ----------'));
    assert.ok(attachment(message.data, 'report.bin')?.equals(Buffer.alloc(5000, 7)), 'the original attachment, whole');
    const copies = await until('the Sent copy', () => sentCopies(t, 'Fwd: the report').then((c) => c.length && c));
    assert.equal(copies.length, 1, 'one copy in Sent');
  });

  await t.step('a reply written offline goes out after reconnecting, once', async () => {
    const subject = 'Re: Welcome to Lemonade';
    // Opened while online, so the app has it to reply to offline.
    await t.go(`#/m/INBOX/${t.uids.welcome}`);
    await page.getByRole('heading', { name: 'Welcome to Lemonade' }).waitFor();
    const postsBefore = sends.length;
    await context.setOffline(true);
    try {
      await page.locator('#reply').click();
      await page.waitForFunction(() => document.getElementById('compose-to')?.value);
      assert.equal(await page.getByLabel('Subject').inputValue(), subject);
      const body = page.getByLabel('Message', { exact: true });
      await body.fill(`No signal here; this goes out when there is.\n${await body.inputValue()}`);
      await page.getByLabel('Attach files').setInputFiles({ name: 'ticket.txt', mimeType: 'text/plain', buffer: Buffer.from('Seat 42, coach 7.') });
      await page.getByRole('button', { name: 'Send' }).click();
      await waitForStatus(page, 'waiting');
      assert.match(await page.locator('.send-status').innerText(), /No connection/);
      await t.shot('compose-offline');
      await t.axe('compose (offline)');
      // Left for the inbox, then Write: it is listed as not sent yet.
      await t.go('#/mb/INBOX');
      await page.locator('#write').click();
      await page.waitForFunction(() => !document.getElementById('main').hasAttribute('aria-busy'));
      const left = page.locator('.outbox li', { hasText: subject });
      await left.waitFor();
      assert.match(await left.innerText(), /To bob@test\.local\. No connection/);
      await t.shot('compose-not-sent-yet');
      await t.axe('compose (not sent yet)');
      assert.deepEqual(await sunk(t, subject), [], 'nothing sent while offline');
    } finally {
      await context.setOffline(false);
    }
    // Sent, it leaves the list (and the outbox).
    await page.locator('.outbox').waitFor({ state: 'hidden', timeout: 60_000 });
    const keys = sends.slice(postsBefore);
    assert.equal(new Set(keys).size, 1, `one Idempotency-Key for the message: ${keys}`);
    const [message, ...more] = await until('the offline reply reaches the sink', () => sunk(t, subject).then((m) => m.length && m));
    assert.equal(more.length, 0, 'sent exactly once');
    assert.match(headerOf(message.data, 'In-Reply-To') ?? '', /^<.+@test\.local>$/, 'a reply, though written offline');
    assert.ok(message.data.includes('No signal here'));
    assert.ok(attachment(message.data, 'ticket.txt')?.equals(Buffer.from('Seat 42, coach 7.')));
    const copies = await until('the Sent copy', () => sentCopies(t, subject).then((c) => c.length && c));
    assert.equal(copies.length, 1, 'one copy in Sent');
  });

  await t.step('a send the gateway refuses shows its reason in words, and can be edited', async () => {
    const subject = 'Gone before the reply';
    const { uid } = await t.oracle('POST', `/append/INBOX?subject=${encodeURIComponent(subject)}`);
    await t.go(`#/compose?mode=reply&mailbox=INBOX&uid=${uid}`);
    await page.waitForFunction(() => document.getElementById('compose-to')?.value);
    const deleted = await page.evaluate(async (gone) => {
      const { token } = JSON.parse(localStorage.getItem('lemonade.session'));
      const answer = await fetch('/v1/messages/delete', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ mailbox: 'INBOX', uids: [gone] }),
      });
      return answer.status;
    }, uid);
    assert.equal(deleted, 200, 'the original is deleted before the reply goes');
    await page.getByRole('button', { name: 'Send' }).click();
    await waitForStatus(page, 'failed');
    assert.match(
      await page.locator('.send-status').innerText(),
      /Not sent: The message you reply to or forward is no longer there\./,
    );
    assert.equal(await page.getByRole('button', { name: 'Try again' }).count(), 0, 'no retry of a refusal');
    await t.shot('compose-failed');
    await t.axe('compose (failed)');
    await page.getByRole('button', { name: 'Edit the message' }).click();
    assert.equal(await page.getByLabel('Subject').inputValue(), `Re: ${subject}`);
    assert.deepEqual(await sunk(t, `Re: ${subject}`), [], 'nothing sent');
  });
}
