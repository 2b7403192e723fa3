// Acting on mail: flag, read/unread, move, delete and search, each checked
// in Dovecot afterwards.
import { held } from './lib.mjs';

async function flagsOf(t, mailbox, uid) {
  const m = (await held(t, mailbox)).find((x) => x.uid === uid);
  return m ? m.flags : null;
}

/** Checks what Dovecot holds (the UI reports an action once the gateway did it). */
async function holds(t, what, check) {
  t.assert.ok(await check(), what);
}

export default async function (t) {
  const { page, assert, uids } = t;
  await t.signIn();
  await t.step('flagging shows in the mailbox', async () => {
    await t.go(`#/m/INBOX/${uids.flag}`);
    // Opening marks it read; the buttons say so once the gateway did.
    await page.getByRole('button', { name: 'Mark unread' }).waitFor();
    await page.locator('#flag').click();
    await page.getByText('Flagged.').waitFor();
    await holds(t, 'flagged in Dovecot', async () => (await flagsOf(t, 'INBOX', uids.flag)).includes('\\Flagged'));
    assert.equal(await page.locator('#flag').innerText(), 'Unflag');
  });
  await t.step('opening marks read, and it can be marked unread', async () => {
    await holds(t, 'seen after opening', async () => (await flagsOf(t, 'INBOX', uids.flag)).includes('\\Seen'));
    await page.getByRole('button', { name: 'Mark unread' }).click();
    await page.getByText('Marked unread.').waitFor();
    await holds(t, 'unread in Dovecot', async () => !(await flagsOf(t, 'INBOX', uids.flag)).includes('\\Seen'));
  });
  await t.step('moving shows in the other folder', async () => {
    await t.go(`#/m/INBOX/${uids.move}`);
    await page.locator('#move-to option[value="Archive"]').waitFor({ state: 'attached' });
    await page.locator('#move-to').selectOption('Archive');
    await page.locator('#move').click();
    await page.waitForFunction(() => location.hash === '#/mb/INBOX');
    const archive = await held(t, 'Archive');
    assert.deepEqual(archive.map((m) => m.subject), ['Move me to Archive']);
    assert.ok(!(await held(t, 'INBOX')).some((m) => m.subject === 'Move me to Archive'));
    await page.waitForSelector('ul.messages li');
    assert.equal(await page.locator('ul.messages li', { hasText: 'Move me to Archive' }).count(), 0);
  });
  await t.step('deleting removes it from the mailbox', async () => {
    await t.go(`#/m/INBOX/${uids.delete}`);
    await page.locator('#delete').click();
    await page.waitForFunction(() => location.hash === '#/mb/INBOX');
    const inbox = await held(t, 'INBOX');
    assert.ok(!inbox.some((m) => m.subject === 'Delete me' && !m.flags.includes('\\Deleted')), 'gone from INBOX');
    await page.waitForSelector('ul.messages li');
    assert.equal(await page.locator('ul.messages li', { hasText: 'Delete me' }).count(), 0);
  });
  await t.step('search finds the message by a word of its text', async () => {
    await page.getByRole('searchbox', { name: 'Search mail' }).fill('pineapple');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'found.' }).waitFor();
    const subjects = await page.locator('ul.messages li .subject').allInnerTexts();
    assert.deepEqual(subjects, ['Fruit order']);
    await t.shot('07-search');
    await t.axe('search');
  });
}
